"""Every way people step: optimizers that need a closure, full-batch training."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from subjects import serious

from nndoctor.engine import check_script

LBFGS_SCRIPT = """
import torch, torch.nn as nn
torch.manual_seed(0)
t = torch.linspace(0, 20, 1000)
x, y = torch.sin(t).unsqueeze(1), torch.cos(t).unsqueeze(1)
model = nn.Sequential(nn.Linear(1, 32), nn.Tanh(), nn.Linear(32, 1))
opt = torch.optim.LBFGS(model.parameters(), lr=0.8)
for i in range(30):
    def closure():
        opt.zero_grad()
        loss = nn.functional.mse_loss(model(x), y)
        loss.backward()
        return loss
    opt.step(closure)
"""


@pytest.mark.silent("batch-repeated")
@pytest.mark.silent("cannot-overfit-tiny-batch")
def test_lbfgs_with_a_closure_on_the_whole_data_is_healthy(tmp_path: Path) -> None:
    path = tmp_path / "lbfgs.py"
    path.write_text(textwrap.dedent(LBFGS_SCRIPT))
    report = check_script(str(path), steps=20)
    assert report.run.observed and report.run.steps_observed == 20
    assert serious(report) == []
    # Several closure evaluations per step are one loss, not several terms: the experiments
    # run, stepping their copies with a closure of their own.
    assert report.result("cannot-overfit-tiny-batch").status == "passed"
    assert "full-batch training" in report.result("batch-repeated").detail
