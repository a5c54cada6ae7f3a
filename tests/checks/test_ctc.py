"""ctc-input-invalid: targets holding the blank, scores that are not log-probabilities,
inputs too short for their targets."""

from __future__ import annotations

from typing import Any

import pytest
import torch
import torch.nn.functional as F
from subjects import run, serious
from torch import nn

import nndoctor
from nndoctor.probes.stats import ctc_facts

FRAMES, CLASSES, FEATURES = 12, 6, 8  # class 0 is the blank


class FrameClassifier(nn.Module):
    """Per-frame class scores of a (T, N, F) feature sequence: (T, N, C)."""

    def __init__(self, normalise_dim: int | None = -1) -> None:
        super().__init__()
        self.rnn = nn.GRU(FEATURES, 16)
        self.out = nn.Linear(16, CLASSES)
        self.normalise_dim = normalise_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, _ = self.rnn(x)
        scores = self.out(h)
        return scores if self.normalise_dim is None else scores.log_softmax(self.normalise_dim)


def ctc_subject(
    *, first_label: int = 1, normalise_dim: int | None = -1, frames: int = FRAMES
) -> dict[str, Any]:
    """Label sequences of 2-4 ids from ``first_label`` whose frames carry their one-hot
    codes (padded targets, time-first inputs)."""
    g = torch.Generator().manual_seed(0)
    data = []
    for _ in range(4):
        n = 8
        lengths = torch.randint(2, 5, (n,), generator=g)
        targets = torch.randint(first_label, first_label + CLASSES - 1, (n, 4), generator=g)
        x = 0.1 * torch.randn(FRAMES, n, FEATURES, generator=g)
        for i in range(n):
            for j in range(int(lengths[i])):
                x[3 * j, i, int(targets[i, j]) % FEATURES] += 1.0
        data.append((x, targets, torch.full((n,), frames), lengths))
    torch.manual_seed(0)
    model = FrameClassifier(normalise_dim)

    def loss_fn(net: nn.Module, batch: Any) -> torch.Tensor:
        x, targets, input_lengths, target_lengths = batch
        return F.ctc_loss(net(x), targets, input_lengths, target_lengths, zero_infinity=True)

    return {
        "model": model,
        "data": data,
        "loss_fn": loss_fn,
        "optimizer": torch.optim.Adam(model.parameters(), lr=1e-3),
    }


@pytest.mark.silent("ctc-input-invalid")
def test_a_healthy_ctc_setup_is_silent() -> None:
    report = run(select=["ctc-input-invalid"], **ctc_subject())
    assert not serious(report)
    (result,) = [r for r in report.checks if r.check == "ctc-input-invalid"]
    assert result.status.value == "passed"
    assert "0 blank and 0 out-of-range target labels" in result.detail


@pytest.mark.fires("ctc-input-invalid")
def test_labels_counted_from_zero_collide_with_the_blank() -> None:
    report = run(select=["ctc-input-invalid"], **ctc_subject(first_label=0))
    (finding,) = serious(report, "ctc-input-invalid")
    assert finding.severity.value == "error"
    assert 19 in finding.reasons and 3 in finding.reasons
    assert finding.evidence["blank_labels"] > 0
    assert "blank label (0)" in finding.title


@pytest.mark.fires("ctc-input-invalid")
@pytest.mark.parametrize("normalise_dim", [None, 0])
def test_raw_logits_or_a_softmax_over_time_are_not_log_probabilities(
    normalise_dim: int | None,
) -> None:
    report = run(select=["ctc-input-invalid"], **ctc_subject(normalise_dim=normalise_dim))
    (finding,) = serious(report, "ctc-input-invalid")
    assert finding.aspect == "scores"
    assert finding.evidence["normalisation_error"] > 0.05


@pytest.mark.fires("ctc-input-invalid")
def test_inputs_shorter_than_their_targets_need() -> None:
    report = run(select=["ctc-input-invalid"], **ctc_subject(frames=3))
    (finding,) = serious(report, "ctc-input-invalid")
    assert finding.aspect == "lengths"
    assert finding.evidence["too_short"] > 0


def test_ctc_facts_count_blanks_repeats_and_normalisation() -> None:
    log_probs = torch.randn(5, 2, 4).log_softmax(-1)
    # Sample 0: labels [1, 1] need 3 frames (a blank between the repeats); sample 1: [0, 2]
    # holds the blank. Concatenated and padded layouts agree.
    padded = torch.tensor([[1, 1, 3], [0, 2, 3]])
    concatenated = torch.tensor([1, 1, 0, 2])
    for targets in (padded, concatenated):
        blanks, outside, short, off = ctc_facts(
            log_probs, targets, torch.tensor([2, 5]), torch.tensor([2, 2]), blank=0
        ).tolist()
        assert (blanks, outside, short) == (1, 0, 1)
        assert off < 1e-5
    raw = ctc_facts(log_probs + 1.0, padded, torch.tensor([5, 5]), torch.tensor([2, 2]), 0)
    assert raw[3].item() == pytest.approx(1.0, abs=1e-5)


def test_the_probe_leaves_ctc_loss_as_it_found_it() -> None:
    before = F.ctc_loss
    nndoctor.check(select=["ctc-input-invalid"], **ctc_subject())
    assert F.ctc_loss is before
