"""updates-climb-gradient (reasons 36, 29): an update rule that adds the gradient."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from subjects import healthy_classifier, run

from nndoctor.engine import Selection, check_script

CHECK = "updates-climb-gradient"

# Updated by hand, as in classic teaching code: the sign of the step is the script's own.
BY_HAND = """
import torch, torch.nn as nn
torch.manual_seed(0)
x = torch.randn(1024, 10)
y = (x[:, :2].sum(1) > 0).long()
model = nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Linear(32, 2))
for epoch in range(2):
    for i in range(0, 1024, 32):
        model.zero_grad()
        loss = nn.functional.cross_entropy(model(x[i:i + 32]), y[i:i + 32])
        loss.backward()
        for p in model.parameters():
            p.data.add_(p.grad.data, alpha={alpha})
"""


def _by_hand(tmp_path: Path, alpha: str):
    path = tmp_path / "by_hand.py"
    path.write_text(BY_HAND.format(alpha=alpha))
    return check_script(str(path), steps=12, selection=Selection(select=(CHECK,)))


@pytest.mark.fires("updates-climb-gradient")
def test_an_update_by_hand_that_adds_the_gradient_is_caught(tmp_path: Path) -> None:
    report = _by_hand(tmp_path, "0.05")
    (finding,) = report.by_check(CHECK)
    assert set(finding.reasons) == {36, 29} and finding.severity == "error"
    assert finding.evidence["manual_update"] is True
    assert finding.evidence["median_cosine"] < -0.99
    assert "adds the gradient" in finding.message


@pytest.mark.silent("updates-climb-gradient")
def test_an_update_by_hand_that_subtracts_the_gradient_passes(tmp_path: Path) -> None:
    report = _by_hand(tmp_path, "-0.05")
    assert "median update/gradient cosine +1.00" in report.result(CHECK).detail


@pytest.mark.silent("updates-climb-gradient")
@pytest.mark.parametrize(
    "make",
    [
        lambda params: torch.optim.Adam(params, lr=1e-3),
        lambda params: torch.optim.SGD(params, lr=0.1, momentum=0.9, nesterov=True),
    ],
    ids=["adam", "sgd-nesterov"],
)
def test_descent_optimisers_step_down_the_gradient(make) -> None:
    kwargs = healthy_classifier()
    kwargs["optimizer"] = make(kwargs["model"].parameters())
    report = run(select=[CHECK], **kwargs)
    assert report.result(CHECK).status == "passed"


def test_an_optimizer_told_to_maximise_is_left_to_the_hyperparameter_check() -> None:
    kwargs = healthy_classifier()
    kwargs["optimizer"] = torch.optim.SGD(kwargs["model"].parameters(), lr=0.1, maximize=True)
    report = run(select=[CHECK, "hyperparameters-out-of-range"], **kwargs)
    assert report.result(CHECK).status == "skipped"
    assert report.by_check("hyperparameters-out-of-range")
