"""Gradient clipping between backward and the update: recorded as part of the update rule."""

from __future__ import annotations

import math

import pytest
import torch
from subjects import blobs, mlp
from torch import nn

from nndoctor.probes.recording import GradClip, Recording
from nndoctor.probes.training import TrainingProbe


def _train(clip, *, by_hand: bool = False, steps: int = 3) -> tuple[Recording, nn.Module]:
    """A few steps of an MLP with ``clip(model)`` between backward and the update (an
    optimizer's step, or ``p -= lr * p.grad`` by hand)."""
    torch.manual_seed(0)
    model = mlp()
    x, y = blobs()
    opt = None if by_hand else torch.optim.SGD(model.parameters(), lr=0.5)
    rec = Recording()
    with TrainingProbe(rec) as probe:
        probe.attach_model(model)
        for i in range(steps):
            model.zero_grad()
            loss = nn.functional.cross_entropy(
                model(x[i * 32 : (i + 1) * 32]), y[i * 32 : (i + 1) * 32]
            )
            loss.backward()
            clip(model)
            if opt is not None:
                opt.step()
            else:
                with torch.no_grad():
                    for p in model.parameters():
                        p -= 0.5 * p.grad
    return rec, model


def _total(norms: dict[str, float]) -> float:
    return math.sqrt(sum(v * v for v in norms.values()))


@pytest.mark.parametrize("by_hand", [False, True])
def test_clip_grad_norm_is_recorded_with_its_limit_and_the_norm_it_clipped(by_hand: bool) -> None:
    rec, model = _train(
        lambda m: torch.nn.utils.clip_grad_norm_(m.parameters(), 0.05), by_hand=by_hand
    )
    names = tuple(n for n, _ in model.named_parameters())
    for step in rec.steps:
        assert step.grad_clip == GradClip("norm", 0.05, 2.0, names)
        assert step.grad_norm_before_clip > 0.05
        # The gradients recorded are the ones the update used: clipped (read again after
        # clipping when the update is by hand, read at the optimizer's step otherwise).
        assert _total(step.grad_norms) == pytest.approx(0.05, rel=1e-3)
    if by_hand:
        # Every update is the clipped gradient times one rate: plain SGD, recognisable.
        ratios = {
            s.update_norms[n] / s.grad_norms[n] for s in rec.steps if s.update_norms for n in names
        }
        assert len(rec.steps) == 3 and ratios
        assert max(ratios) == pytest.approx(min(ratios), rel=1e-3)


def test_clipping_clips_as_without_the_probe_and_the_probe_restores_it() -> None:
    originals = (torch.nn.utils.clip_grad_norm_, torch.nn.utils.clip_grad.clip_grad_norm_)
    # A generator of parameters (read once) reaches torch's clipping whole, by either path.
    rec, _ = _train(
        lambda m: torch.nn.utils.clip_grad.clip_grad_norm_((p for p in m.parameters()), 1e-3)
    )
    assert _total(rec.steps[-1].grad_norms) == pytest.approx(1e-3, rel=1e-3)
    assert rec.steps[-1].grad_clip is not None and rec.steps[-1].grad_clip.limit == 1e-3
    assert (torch.nn.utils.clip_grad_norm_, torch.nn.utils.clip_grad.clip_grad_norm_) == originals


def test_clip_grad_value_and_another_networks_clipping() -> None:
    rec, _ = _train(lambda m: torch.nn.utils.clip_grad_value_(m.parameters(), clip_value=1e-3))
    assert rec.steps[0].grad_clip is not None
    assert (rec.steps[0].grad_clip.kind, rec.steps[0].grad_clip.limit) == ("value", 1e-3)
    assert math.isnan(rec.steps[0].grad_norm_before_clip)
    # Clipping a network the probe does not watch (a GAN's other half) is not this model's rule.
    other = nn.Linear(3, 3)
    other(torch.randn(2, 3)).sum().backward()
    rec, _ = _train(lambda m: torch.nn.utils.clip_grad_norm_(other.parameters(), 0.1))
    assert all(s.grad_clip is None for s in rec.steps)
