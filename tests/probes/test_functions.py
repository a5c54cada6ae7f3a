"""Custom autograd Functions: found in a graph, calls recorded, differentiated as their forward."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from nndoctor.probes.functions import (
    custom_function_classes,
    differentiated_through_forward,
    gradient_multiple,
    recorded_function_calls,
    run_forward,
)
from nndoctor.probes.recording import Recording
from nndoctor.probes.training import TrainingProbe


class _Cube(torch.autograd.Function):
    """x³ with a wrong backward (3x instead of 3x²), in the classic form."""

    @staticmethod
    def forward(ctx, x):  # noqa: ANN001, ANN205
        ctx.save_for_backward(x)
        return x**3

    @staticmethod
    def backward(ctx, grad):  # noqa: ANN001, ANN205
        (x,) = ctx.saved_tensors
        return grad * 3 * x


class _Scaled(torch.autograd.Function):
    """x·k in the new form (forward without ctx, setup_context apart), a wrong backward."""

    @staticmethod
    def forward(x, k):  # noqa: ANN001, ANN205
        return x * k

    @staticmethod
    def setup_context(ctx, inputs, output):  # noqa: ANN001, ANN205
        ctx.k = inputs[1]

    @staticmethod
    def backward(ctx, grad):  # noqa: ANN001, ANN205
        return grad, None


cube = _Cube.apply  # bound once, as scripts do: the patches must still reach it


def test_the_classes_in_a_graph_are_found_in_order_and_once() -> None:
    x = torch.randn(3, requires_grad=True)
    total = (cube(_Scaled.apply(x, 2.0)) + cube(x)).sum()
    assert custom_function_classes(total) == [_Cube, _Scaled]
    assert custom_function_classes((x * 2).sum()) == []


def test_calls_are_recorded_through_a_bound_apply_and_in_both_forms() -> None:
    x = torch.tensor([1.0, 2.0])
    with recorded_function_calls([_Cube, _Scaled]) as calls:
        cube(_Scaled.apply(x, 3.0))
    assert [c.function for c in calls] == [_Scaled, _Cube]
    assert calls[0].args[1] == 3.0
    assert torch.equal(calls[1].args[0], torch.tensor([3.0, 6.0]))
    assert torch.equal(calls[1].outputs[0], torch.tensor([27.0, 216.0]))
    assert torch.equal(run_forward(_Cube, (x,)), torch.tensor([1.0, 8.0]))
    assert torch.equal(run_forward(_Scaled, (x, 2.0)), torch.tensor([2.0, 4.0]))


def test_inside_the_block_the_backward_is_the_forwards_derivative_and_after_it_the_users() -> None:
    before = {cls: dict(vars(cls)) for cls in (_Cube, _Scaled)}
    x = torch.tensor([1.0, 2.0], requires_grad=True)
    with differentiated_through_forward([_Cube, _Scaled]):
        (g,) = torch.autograd.grad(cube(_Scaled.apply(x, 2.0)).sum(), x)
    assert torch.allclose(g, 3 * (2 * x.detach()) ** 2 * 2)  # d/dx (2x)³
    (g,) = torch.autograd.grad(cube(_Scaled.apply(x, 2.0)).sum(), x)
    assert torch.allclose(g, 3 * (2 * x.detach()))  # the hand-written (wrong) backward again
    assert {cls: dict(vars(cls)) for cls in (_Cube, _Scaled)} == before


def test_the_classes_are_restored_after_an_error_in_the_block() -> None:
    before = dict(vars(_Cube))
    try:
        with recorded_function_calls([_Cube]), differentiated_through_forward([_Cube]):
            raise KeyError("boom")
    except KeyError:
        pass
    assert dict(vars(_Cube)) == before


class _Reversal(torch.autograd.Function):
    """DANN's gradient reversal: the identity forward, the gradient times -lambda backward."""

    @staticmethod
    def forward(ctx, x, lambda_):  # noqa: ANN001, ANN205
        ctx.lambda_ = lambda_
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):  # noqa: ANN001, ANN205
        return grad.neg() * ctx.lambda_, None


def test_gradient_multiple_is_the_number_a_backward_scaled_the_gradient_by() -> None:
    g = torch.randn(4, 3)
    assert gradient_multiple((-0.3 * g, None), (g,)) == pytest.approx(-0.3)
    assert gradient_multiple((g * torch.rand(4, 3),), (g,)) is None  # no one number
    assert gradient_multiple((torch.zeros(4, 3),), (torch.zeros(4, 3),)) is None  # nothing came in


def test_the_probe_records_a_gradient_reversal_and_removes_its_node_hooks() -> None:
    torch.manual_seed(0)
    features, label_head, domain_head = nn.Linear(6, 8), nn.Linear(8, 3), nn.Linear(8, 1)
    model = nn.ModuleDict({"f": features, "c": label_head, "d": domain_head})
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y, d = torch.randn(16, 6), torch.randint(0, 3, (16,)), torch.rand(16, 1).round()
    rec = Recording()
    with TrainingProbe(rec) as probe:
        probe.attach_model(features)
        for step in range(3):
            opt.zero_grad()
            h = features(x)
            # The coefficient starts at 0 (DANN's schedule): a multiple of 0, then negative.
            reversed_h = _Reversal.apply(h, 0.5 * step)
            loss = nn.functional.cross_entropy(label_head(h), y)
            loss = loss + nn.functional.binary_cross_entropy_with_logits(domain_head(reversed_h), d)
            loss.backward()
            opt.step()
            assert not probe._node_handles
    assert rec.gradient_multiples["_Reversal"] == pytest.approx([0.0, -0.5, -1.0])
    assert rec.gradient_reversals == ["_Reversal"] and rec.competing_objectives


def test_a_gradient_scaled_by_a_positive_number_competes_with_nothing() -> None:
    rec = Recording()
    w = nn.Linear(4, 1)
    with TrainingProbe(rec) as probe:
        probe.attach_model(w)
        _Scaled.apply(w(torch.randn(5, 4)), 2.0).sum().backward()
    assert rec.gradient_multiples == {"_Scaled": [1.0]}
    assert rec.gradient_reversals == [] and not rec.competing_objectives
