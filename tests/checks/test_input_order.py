"""inputs-in-order (reason 7): batches that walk through the data in its stored order,
seen in the inputs whatever the loss; silent on random batches, on batches that differ by
design but come in a random order, and at its stated error rate on random batches."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from subjects import batches, run, serious
from torch import nn

from nndoctor.checks.data.shuffling import input_order
from nndoctor.checks.registry import CheckContext, SkipCheck, get_check
from nndoctor.checks.thresholds import Thresholds
from nndoctor.probes.recording import Recording, StepRecord, TensorSummary


def signal_rows(n: int = 1024, seed: int = 0) -> torch.Tensor:
    """Rows of a slowly varying 4-feature signal, stored in time order (a sensor log)."""
    g = torch.Generator().manual_seed(seed)
    t = torch.linspace(0, 1, n)[:, None]
    phase = torch.tensor([0.0, 1.0, 2.0, 3.0])
    x = torch.sin(6.0 * t + phase) + 0.3 * torch.randn(n, 4, generator=g)
    return (x - x.mean(0)) / x.std(0)


def autoencoder(x: torch.Tensor) -> dict[str, Any]:
    """An autoencoder on ``x`` fed as consecutive slices, with a loss written by hand (no
    recognised torch loss, no class targets: only the inputs show the order)."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 4))

    def reconstruction(net: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        inputs, target = batch
        return (net(inputs) - target).pow(2).sum(dim=1).mean()

    return {
        "model": model,
        "data": batches(x, x, 32),
        "loss_fn": reconstruction,
        "optimizer": torch.optim.Adam(model.parameters(), lr=1e-3),
    }


@pytest.mark.fires("inputs-in-order")
def test_rows_fed_in_their_stored_order() -> None:
    report = run(select=["inputs-in-order"], **autoencoder(signal_rows()))
    (f,) = serious(report, "inputs-in-order")
    assert f.reasons == [7] and f.severity.value == "warning"
    assert f.evidence["spread_ratio"] >= 4
    assert f.evidence["order_p"] <= 1e-3 and f.evidence["spread_p"] <= 1e-3


@pytest.mark.silent("inputs-in-order")
def test_the_same_rows_shuffled_are_silent() -> None:
    x = signal_rows()
    x = x[torch.randperm(len(x), generator=torch.Generator().manual_seed(1))]
    report = run(select=["inputs-in-order"], **autoencoder(x))
    (result,) = [r for r in report.checks if r.check == "inputs-in-order"]
    assert result.status.value == "passed", result.detail
    assert not serious(report)


def summaries(means: list[list[float]], std: float = 1.0, batch: int = 32) -> list[StepRecord]:
    """Steps whose (batch, channels) input has the given per-channel batch means."""
    return [
        StepRecord(
            step=i,
            inputs=TensorSummary(
                shape=(batch, len(m)),
                dtype="float32",
                mean=sum(m) / len(m),
                std=std,
                min=-3.0,
                max=3.0,
                channel_mean=m,
                channel_std=[std] * len(m),
            ),
        )
        for i, m in enumerate(means)
    ]


def test_buckets_that_differ_by_design_in_a_random_order_pass() -> None:
    # Batches grouped on purpose (by length, by source) differ far more than random
    # batches, but in a random order consecutive batches are no more alike than any two.
    g = torch.Generator().manual_seed(0)
    levels = [-2.0, 2.0, 0.0, 1.0, -1.0] * 4
    order = torch.randperm(len(levels), generator=g).tolist()
    means = [[levels[i] + 0.01 * float(torch.randn(1, generator=g))] * 3 for i in order]
    result = input_order(summaries(means), Thresholds().input_order_permutations)
    assert result is not None
    assert result.spread_ratio > 4 and result.spread_p < 1e-6
    assert result.order_p > Thresholds().input_order_alpha


def test_random_batches_reject_at_the_stated_rate() -> None:
    # Batches drawn at random from one data set: the order test's p is uniform, so it
    # falls below alpha in about alpha of the runs; the spread test almost never rejects.
    t = Thresholds()
    g = torch.Generator().manual_seed(0)
    data = torch.randn(4096, 3, generator=g)
    rejected_order = rejected_both = 0
    runs = 300
    for _ in range(runs):
        idx = torch.randint(0, len(data), (20, 32), generator=g)
        means = data[idx].mean(dim=1).tolist()
        result = input_order(summaries(means), 400)
        assert result is not None
        rejected_order += result.order_p <= 0.05
        rejected_both += result.order_p <= 0.05 and result.spread_p <= 0.05
    # At alpha 0.05 (a level measurable in 300 runs): 15 expected; a binomial 99.9 % bound.
    assert rejected_order <= 30
    assert rejected_both <= 3
    assert t.input_order_alpha <= 1e-3


def _run(recording: Recording) -> CheckContext:
    ctx = CheckContext(spec=get_check("inputs-in-order"), subject=None, recording=recording)
    get_check("inputs-in-order").func(ctx)
    return ctx


def test_a_network_trained_against_another_is_not_judged() -> None:
    # Inputs that drift step by step: an order, for a model trained on its own...
    drifting = [[0.2 * i, -0.1 * i, 0.05 * i] for i in range(20)]
    alone = _run(Recording(steps=summaries(drifting)))
    assert [f.evidence["spread_ratio"] > 4 for f in alone.findings] == [True]
    # ... and none for a GAN's network, whose first input of a step may be the other
    # network's samples, which move as it learns (each step: its own backward and step,
    # then the other optimizer's after another backward).
    steps = summaries(drifting)
    for s in steps:
        s.foreign_steps, s.backwards = 1, 2
    with pytest.raises(SkipCheck, match="one objective"):
        _run(Recording(steps=steps))


def test_batches_of_successive_rollouts_are_not_compared() -> None:
    # PPO: 16 steps of shuffled minibatches over one rollout, then a rollout of states the
    # improved policy reaches: batch means jump between rollouts by design.
    g = torch.Generator().manual_seed(0)
    means = [[float(v) for v in 0.02 * torch.randn(3, generator=g)] for _ in range(16)]
    means += [[2.0 + 0.02 * float(v) for v in torch.randn(3, generator=g)] for _ in range(4)]
    alone = _run(Recording(steps=summaries(means)))
    assert [f.check for f in alone.findings] == ["inputs-in-order"]
    # The same steps with the no-grad rollout recorded before them: its samples are what
    # the first 16 steps train on, and only those are compared.
    steps = summaries(means)
    rollout = [1.0 + 0.01 * i for i in range(64)]
    for s in steps:
        s.sample_fingerprints = (
            rollout[16 * (s.step % 4) : 16 * (s.step % 4) + 16]
            if s.step < 16
            else [50.0 + 0.01 * (16 * s.step + j) for j in range(16)]
        )
    rec = Recording(steps=steps)
    rec.eval_sample_fingerprints.extend(rollout)
    rec.eval_fingerprint_steps.extend([0] * len(rollout))
    ctx = _run(rec)
    assert not ctx.findings
    assert "renewed by no-grad rollouts: 16 of 20" in ctx.detail
