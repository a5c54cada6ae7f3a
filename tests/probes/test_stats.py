"""Device-side statistics the probes copy to the host once per step."""

from __future__ import annotations

import pytest
import torch

from nndoctor.probes.stats import activation_stats, class_counts, tensor_stats


def test_class_counts_leave_out_ignore_index_and_out_of_range_targets() -> None:
    # A segmentation-style target: -100 marks pixels the loss ignores.
    target = torch.tensor([[0, 2, -100], [2, 2, -100]])
    assert class_counts(target, 3).tolist() == [1.0, 0.0, 3.0]
    assert class_counts(torch.tensor([5, 1]), 3).tolist() == [0.0, 1.0, 0.0]


@pytest.mark.parametrize("shape", [(64, 3, 32, 32), (16, 1, 28, 28), (8, 3, 64, 64), (4096, 20)])
@pytest.mark.parametrize("value", [0.7, 255.0, 1e-3, -3.3, 0.5])
def test_constant_batches_have_zero_std(shape: tuple[int, ...], value: float) -> None:
    x = torch.full(shape, value)
    for stats in (tensor_stats(x), activation_stats(x)):
        assert stats[1].item() == 0.0
        assert stats[0].item() == pytest.approx(value, rel=1e-5)


def test_a_near_constant_image_batch_keeps_its_small_std() -> None:
    # |mean| ≫ std: E[x²] - E[x]² in float32 loses this std entirely; the centred form keeps it.
    g = torch.Generator().manual_seed(0)
    x = 0.7 + 1e-3 * torch.randn(64, 3, 32, 32, generator=g)
    assert tensor_stats(x)[1].item() == pytest.approx(x.double().std().item(), rel=1e-3)


def test_non_finite_values_still_show_in_the_moments() -> None:
    x = torch.tensor([1.0, float("nan"), 2.0])
    assert torch.isnan(tensor_stats(x)[1]) and torch.isnan(activation_stats(x)[1])


def test_class_counts_leave_out_the_targets_the_loss_ignores() -> None:
    # Padding is often a valid class index (0): the loss skips it, and so do the counts.
    target = torch.tensor([0, 0, 0, 0, 1, 2, 2, -100])
    assert class_counts(target, 3).tolist() == [4.0, 1.0, 2.0]
    assert class_counts(target, 3, ignore_index=0).tolist() == [0.0, 1.0, 2.0]


def test_the_constant_prior_is_the_loss_of_the_best_constant_fitted_to_the_batch() -> None:
    import torch.nn.functional as F

    from nndoctor.probes.stats import constant_prior_loss

    g = torch.Generator().manual_seed(0)
    logits = torch.randn(64, 5, generator=g)
    labels = torch.randint(0, 5, (64,), generator=g)
    freq = torch.bincount(labels, minlength=5).float() / 64
    constant = freq.clamp_min(1e-12).log().expand(64, 5)
    prior = constant_prior_loss("cross_entropy", logits, labels, {})
    assert prior is not None and float(prior) == pytest.approx(
        float(F.cross_entropy(constant, labels)), rel=1e-5
    )
    # Ignored targets are no sample.
    masked = labels.clone()
    masked[:10] = -100
    freq = torch.bincount(masked[10:], minlength=5).float() / 54
    expected = -(freq * freq.clamp_min(1e-12).log()).sum()
    assert float(constant_prior_loss("cross_entropy", logits, masked, {})) == pytest.approx(
        float(expected), rel=1e-5
    )

    values = torch.randn(64, 3, generator=g)
    mse = constant_prior_loss("mse_loss", torch.zeros(64, 3), values, {})
    assert float(mse) == pytest.approx(
        float(F.mse_loss(values.mean(0).expand(64, 3), values)), rel=1e-5
    )
    binary = (torch.rand(64, 4, generator=g) < 0.3).float()
    q = binary.mean(0).clamp(1e-7, 1 - 1e-7)
    bce = F.binary_cross_entropy(q.expand(64, 4), binary)
    prior = constant_prior_loss("binary_cross_entropy_with_logits", torch.zeros(64, 4), binary, {})
    assert float(prior) == pytest.approx(float(bce), rel=1e-5)
    # Label smoothing: the best constant is the smoothed class frequencies.
    smooth = (0.9 * torch.bincount(labels, minlength=5).float() / 64 + 0.1 / 5).log()
    smoothed = constant_prior_loss("cross_entropy", logits, labels, {"label_smoothing": 0.1})
    assert smoothed is not None and float(smoothed) == pytest.approx(
        float(F.cross_entropy(smooth.expand(64, 5), labels, label_smoothing=0.1)), rel=1e-5
    )
    # ... and no other constant does better.
    other = (torch.bincount(labels, minlength=5).float() / 64).clamp_min(1e-3).log()
    assert float(F.cross_entropy(other.expand(64, 5), labels, label_smoothing=0.1)) > float(
        smoothed
    )
    # Class probabilities as targets: the best constant is their mean distribution.
    soft = torch.softmax(torch.randn(64, 5, generator=g), dim=1)
    best = soft.mean(0).log().expand(64, 5)
    prior = constant_prior_loss("cross_entropy", logits, soft, {})
    assert prior is not None and float(prior) == pytest.approx(
        float(F.cross_entropy(best, soft)), rel=1e-5
    )
    assert float(F.cross_entropy(best + 0.1 * torch.randn(5, generator=g), soft)) > float(prior)
    # Settings that change what the loss measures: no prior.
    assert (
        constant_prior_loss(
            "cross_entropy", logits, labels, {"label_smoothing": 0.1, "weight": torch.ones(5)}
        )
        is None
    )
    assert constant_prior_loss("mse_loss", torch.zeros(64, 3), values, {"reduction": "sum"}) is None


def test_the_constant_prior_follows_class_weights_and_pos_weight() -> None:
    import torch.nn.functional as F

    from nndoctor.probes.stats import constant_prior_loss

    g = torch.Generator().manual_seed(1)
    labels = torch.randint(0, 3, (90,), generator=g)
    weight = torch.tensor([1.0, 2.0, 5.0])
    prior = constant_prior_loss("cross_entropy", torch.zeros(90, 3), labels, {"weight": weight})
    # The best constant is found numerically: no log-probability vector does better.
    loss = _minimum(lambda z: F.cross_entropy(z.expand(90, 3), labels, weight=weight), 3)
    assert float(prior) == pytest.approx(loss, rel=1e-4)

    targets = (torch.rand(90, 2, generator=g) < 0.2).float()
    pos_weight = torch.tensor([3.0, 0.5])
    prior = constant_prior_loss(
        "binary_cross_entropy_with_logits", torch.zeros(90, 2), targets, {"pos_weight": pos_weight}
    )
    loss = _minimum(
        lambda z: F.binary_cross_entropy_with_logits(
            z.expand(90, 2), targets, pos_weight=pos_weight
        ),
        2,
    )
    assert float(prior) == pytest.approx(loss, rel=1e-4)


def _minimum(loss_of, size: int) -> float:
    """The smallest value of ``loss_of`` over constant vectors of ``size``, numerically."""
    z = torch.zeros(size, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([z], max_iter=200, tolerance_grad=1e-12, tolerance_change=1e-15)

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = loss_of(z.float())
        loss.backward()
        return loss

    opt.step(closure)
    return float(loss_of(z.float().detach()))
