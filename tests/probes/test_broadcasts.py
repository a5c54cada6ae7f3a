"""Broadcasts inside a hand-written loss, read from its autograd graph."""

from __future__ import annotations

import torch
from torch import nn

from nndoctor.probes.broadcasts import loss_broadcasts, stretched_axes


def _regressor() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 8), nn.ReLU(), nn.Linear(8, 1))


def test_stretched_axes_are_the_axes_broadcasting_made() -> None:
    assert stretched_axes((16, 1), (16, 16)) == (1,)
    assert stretched_axes((16,), (16, 16)) == (0,)
    assert stretched_axes((16, 4), (16, 4)) == ()
    assert stretched_axes((16, 4), (16, 5)) == ()  # no broadcast at all
    assert stretched_axes((2, 16, 4), (16, 4)) == ()


def test_an_output_of_n_by_1_against_targets_of_n_is_stretched_to_n_by_n() -> None:
    model = _regressor()
    out = model(torch.randn(16, 3))
    loss = ((out - torch.randn(16)) ** 2).mean()
    (event,) = loss_broadcasts(loss.grad_fn, {out.grad_fn})
    assert (event.op, event.operand, event.result, event.new_axes) == (
        "SubBackward0",
        (16, 1),
        (16, 16),
        (1,),
    )
    assert not event.other_has_grad and not event.unsqueezed


def test_equal_shapes_and_per_feature_weights_stretch_nothing_new() -> None:
    model = _regressor()
    out = model(torch.randn(16, 3))
    squeezed = ((out.squeeze(1) - torch.randn(16)) ** 2).mean()
    assert loss_broadcasts(squeezed.grad_fn, {out.grad_fn}) == []
    wide = nn.Linear(3, 4)(torch.randn(16, 3))
    weighted = (wide * torch.rand(4)).mean()  # (16, 4) * (4,): no axis is new
    assert loss_broadcasts(weighted.grad_fn, {wide.grad_fn}) == []


def test_pairs_of_outputs_are_marked_as_such() -> None:
    model = _regressor()
    z = model(torch.randn(8, 3))
    loss = (z[:, None] - z[None, :]).pow(2).mean()
    events = loss_broadcasts(loss.grad_fn, {z.grad_fn})
    assert events and all(e.other_has_grad and e.unsqueezed for e in events)


def test_the_model_graph_behind_its_outputs_is_not_walked() -> None:
    # The model itself broadcasts (a bias of shape (N, 1) added inside): not the loss's doing.
    class Broadcasting(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.head = nn.Linear(3, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.head(x) + x[:, :1].T.mean(0)  # (N, 1) + (N,) -> (N, N) inside

    out = Broadcasting()(torch.randn(8, 3))
    assert loss_broadcasts(out.mean().grad_fn, {out.grad_fn}) == []
    # The loss itself as the model's output: no loss part to search.
    assert loss_broadcasts(out.grad_fn, {out.grad_fn}) == []


def test_a_network_called_beside_the_model_ends_at_its_last_layer() -> None:
    # An actor observed as the model, a critic called beside it: the critic's value of
    # shape (N, 1) against returns of shape (N,) is found from its last layer.
    actor, critic = nn.Linear(4, 2), nn.Linear(4, 1)
    x = torch.randn(16, 4)
    logits, value = actor(x), critic(x)
    loss = logits.logsumexp(1).mean() + ((value - torch.randn(16)) ** 2).mean()
    events = loss_broadcasts(loss.grad_fn, {logits.grad_fn})
    assert events is not None
    assert [(e.operand, e.result) for e in events] == [((16, 1), (16, 16))]


def test_a_graph_that_records_no_shapes_is_not_searched() -> None:
    assert loss_broadcasts(None, {object()}) is None
    out = nn.Linear(3, 1)(torch.randn(4, 3))
    assert loss_broadcasts(out.sum().grad_fn, set()) is None


def test_a_number_is_traced_back_to_the_reduction_it_came_from() -> None:
    net = nn.Linear(4, 3)
    a, b = net(torch.randn(8, 4)), net(torch.randn(8, 4))
    label = torch.randint(0, 2, (8,)).float()
    d = torch.sqrt(((a - b) ** 2).sum() + 1e-8)  # over the whole batch
    (summed,) = loss_broadcasts((label * d.pow(2)).mean().grad_fn, {a.grad_fn, b.grad_fn})
    assert (summed.operand, summed.result, summed.reduced_from) == ((), (8,), (8, 3))
    # A learned scale is one number made from no reduction.
    log_alpha = torch.zeros((), requires_grad=True)
    logp = net(torch.randn(8, 4))[:, 0]
    loss = -(log_alpha.exp() * (logp + 1).detach()).mean() + logp.mean()
    (scaled,) = loss_broadcasts(loss.grad_fn, {logp.grad_fn})
    assert scaled.operand == () and scaled.reduced_from is None
