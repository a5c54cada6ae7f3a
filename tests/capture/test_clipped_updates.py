"""Gradient clipping between backward and the update is part of the update rule.

SGD at lr 5 with the gradient norm clipped to 0.05 takes steps of at most 0.25 (the
word-level language-model recipes run lr 5-20 clipped to 0.25-0.5): replayed without the
clipping, its copies diverge and every experiment blames the learning rate; replayed with
it, they train. The same script with a real bug (the update climbing the gradient, a
learning rate a hundred times larger) is still reported.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from subjects import serious

from nndoctor.engine import Selection, check_script
from nndoctor.report.model import Report

SCRIPT = """
import torch, torch.nn as nn
torch.manual_seed(0)
x = torch.randn(2000, 20)
y = (x[:, :3].sum(1) > 0).long() + (x[:, 3] > 1).long()
model = nn.Sequential(nn.Linear(20, 64), nn.ReLU(), nn.Linear(64, 3))
opt = torch.optim.SGD(model.parameters(), lr={lr})
for epoch in range(3):
    perm = torch.randperm(2000)
    for i in range(0, 2000, 32):
        idx = perm[i:i + 32]
        model.zero_grad()
        loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 0.05)
        {update}
"""

BY_HAND = "for p in model.parameters(): p.data.add_(p.grad, alpha={sign}{lr})"


def _check(
    tmp_path: Path, lr: float, *, by_hand: bool = False, sign: str = "-", only: tuple[str, ...] = ()
) -> Report:
    update = BY_HAND.format(sign=sign, lr=lr) if by_hand else "opt.step()"
    path = tmp_path / "clipped.py"
    path.write_text(textwrap.dedent(SCRIPT.format(lr=lr, update=update)))
    return check_script(str(path), steps=20, phase_steps=0, selection=Selection(select=only))


@pytest.mark.silent("learning-rate-out-of-range")
@pytest.mark.silent("optimizer-underperforms")
@pytest.mark.silent("update-ratio")
def test_sgd_with_clipped_gradients_is_replayed_with_the_clipping(tmp_path: Path) -> None:
    report = _check(tmp_path, 5.0)
    assert serious(report) == []
    assert "gradients clipped to norm 0.05" in report.result("cannot-overfit-tiny-batch").detail
    # The large steps are named in the detail, not judged: clipping set their length.
    assert report.by_check("update-ratio") == []
    assert "not judged here" in report.result("update-ratio").detail


@pytest.mark.silent("hyperparameters-out-of-range")
@pytest.mark.silent("cannot-overfit-tiny-batch")
def test_sgd_by_hand_with_clipping_is_recognised_as_sgd(tmp_path: Path) -> None:
    report = _check(tmp_path, 20.0, by_hand=True)
    assert report.subject["optimizer"] == "by hand: SGD(lr=20.0), inferred from the updates"
    assert "gradients clipped to norm 0.05" in report.result("cannot-overfit-tiny-batch").detail
    assert serious(report) == []
    assert report.by_check("hyperparameters-out-of-range") == []
    assert "lr=20 is above 10" in report.result("hyperparameters-out-of-range").detail


@pytest.mark.fires("loss-diverging")
def test_an_update_by_hand_that_climbs_the_gradient_is_still_found(tmp_path: Path) -> None:
    report = _check(tmp_path, 5.0, by_hand=True, sign="", only=("loss-diverging",))
    (finding,) = report.by_check("loss-diverging")
    assert finding.severity in ("warning", "error") and 36 in finding.reasons


@pytest.mark.fires("update-ratio")
def test_steps_as_large_as_the_weights_are_an_error_even_when_clipped(tmp_path: Path) -> None:
    report = _check(tmp_path, 500.0, only=("update-ratio",))
    (finding,) = report.by_check("update-ratio")
    assert finding.severity == "error" and finding.reasons == [33, 36]
    assert finding.evidence["median_ratio"] > 1.0
