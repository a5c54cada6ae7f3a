"""Copies of the model the script evaluates (an EMA, a reference model): found among the
modules it calls, and judged by evaluated-copy-stale."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from subjects import serious

from nndoctor.capture.runner import run_script
from nndoctor.engine import Selection, check_script

EMA_EVALUATED = """
import copy, torch, torch.nn as nn
from torch.utils.data import DataLoader, TensorDataset
torch.manual_seed(0)
x = torch.randn(800, 8)
y = (x[:, 0] > 0).long()
loader = DataLoader(TensorDataset(x, y), batch_size=32, shuffle=True)  # 25 steps an epoch
val = torch.randn(128, 8)
model = nn.Sequential(nn.Linear(8, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Linear(32, 2))
ema = copy.deepcopy(model)
optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
for epoch in range(3):
    model.train()
    for xb, yb in loader:
        optimizer.zero_grad()
        loss = nn.functional.cross_entropy(model(xb), yb)
        {reference}
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            {update}
    ema.eval()
    with torch.no_grad():
        print("val", ema(val).argmax(1).float().mean().item())
"""

OVER_PARAMETERS = (
    "for e, m in zip(ema.parameters(), model.parameters()): e.mul_(0.9).add_(m, alpha=0.1)"
)
OVER_STATE = (
    "for e, m in zip(ema.state_dict().values(), model.state_dict().values()): "
    "e.copy_(m) if not e.is_floating_point() else e.mul_(0.9).add_(m, alpha=0.1)"
)


def _script(tmp_path: Path, update: str, reference: str = "pass") -> str:
    path = tmp_path / "ema.py"
    path.write_text(textwrap.dedent(EMA_EVALUATED).format(update=update, reference=reference))
    return str(path)


def _judge(path: str) -> list:
    report = check_script(path, steps=20, selection=Selection(select=("evaluated-copy-stale",)))
    return [report, serious(report)]


@pytest.mark.fires("evaluated-copy-stale")
def test_an_average_over_parameters_leaves_batch_norm_untracked(tmp_path: Path) -> None:
    path = _script(tmp_path, OVER_PARAMETERS)
    (copy,) = run_script(path, steps=20).recording.evaluated_copies
    assert copy.network == "Sequential" and copy.step == 25 and copy.batch_norms == 1
    assert copy.batch_norms_untracked == ["1"] and not copy.at_initial_weights
    _, (finding,) = _judge(path)
    assert finding.reasons == [32] and finding.severity.value == "error"
    assert "BatchNorm statistics were never updated" in finding.title


@pytest.mark.fires("evaluated-copy-stale")
def test_an_average_never_updated_holds_the_initial_weights(tmp_path: Path) -> None:
    path = _script(tmp_path, "pass")
    _, found = _judge(path)
    titles = [f.title for f in found]
    # Never updated: its BatchNorm buffers are the initial ones too, a consequence of the
    # cause named.
    assert titles == ["The evaluated copy still holds the model's initial weights"]
    path = _script(tmp_path, "pass")
    text = Path(path).read_text().replace("nn.BatchNorm1d(32), ", "")
    Path(path).write_text(text)
    _, (finding,) = _judge(path)
    assert finding.title == "The evaluated copy still holds the model's initial weights"
    assert finding.reasons == [21, 23]


@pytest.mark.silent("evaluated-copy-stale")
def test_an_average_over_the_state_dict_and_a_reference_model_are_silent(
    tmp_path: Path,
) -> None:
    report, found = _judge(_script(tmp_path, OVER_STATE))
    assert found == [] and report.result("evaluated-copy-stale").status.value == "passed"
    # A copy called under no_grad at every training step is a reference model (DPO's, a
    # frozen teacher): fixed by design, not judged.
    reference = (
        "with torch.no_grad():\n            ref = ema(xb)\n        loss = loss + 0.0 * ref.sum()"
    )
    report, found = _judge(_script(tmp_path, "pass", reference))
    assert found == []
    assert "a reference model used in training" in report.result("evaluated-copy-stale").detail
