"""loss-diverging (reason 36) on scripts: a loss that rises because the steps climb it, and
one that rises because its objective moves while the model improves."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_momentum_queue import TINY_MOCO

from nndoctor.engine import Selection, check_script
from nndoctor.report.model import Report

CHECK = "loss-diverging"

# MoCo at the paper's settings: 4096 negatives at temperature 0.07, the queue filled with
# random keys at first. Real keys take their place 32 at a time, and as they do the
# negatives get harder: the loss climbs for the first hundred steps by design.
LARGE_QUEUE = (
    TINY_MOCO.replace("K=256, m=0.99, T=0.2", "K=4096, m=0.999, T=0.07")
    .replace("nn.Linear(32, 8))", "nn.Linear(32, 128))")
    .replace("torch.randn(8, K)", "torch.randn(128, K)")
)

# Gradient ascent: SGD told to maximise the cross-entropy it is given.
ASCENT = """
import torch
from torch import nn
torch.manual_seed(0)
x = torch.randn(1024, 20)
y = (x[:, :3].sum(1) > 0).long() + (x[:, 3] > 1).long()
model = nn.Sequential(nn.Linear(20, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 3))
opt = torch.optim.SGD(model.parameters(), lr=0.08, maximize=True)
for epoch in range(2):
    for i in range(0, 1024, 32):
        loss = nn.functional.cross_entropy(model(x[i:i + 32]), y[i:i + 32])
        opt.zero_grad(); loss.backward(); opt.step()
"""


def _check(tmp_path: Path, source: str) -> Report:
    path = tmp_path / "train.py"
    path.write_text(source)
    return check_script(str(path), steps=20, selection=Selection(select=(CHECK,)))


@pytest.mark.silent(CHECK)
def test_a_loss_that_rises_as_a_queue_of_negatives_fills_is_no_divergence(
    tmp_path: Path,
) -> None:
    report = _check(tmp_path, LARGE_QUEUE)
    assert report.by_check(CHECK) == []
    detail = report.result(CHECK).detail
    assert "the model got better at a fixed task" in detail, detail


@pytest.mark.fires(CHECK)
def test_a_loss_the_steps_climb_rises_on_a_fixed_objective_too(tmp_path: Path) -> None:
    (finding,) = _check(tmp_path, ASCENT).by_check(CHECK)
    assert finding.title == "The loss rises steadily" and finding.reasons == [36]
    evidence = finding.evidence
    assert evidence["fixed_objective_trained"] > 10 * evidence["fixed_objective_start"]
