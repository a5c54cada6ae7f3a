"""target-among-inputs (reasons 3, 4): a regression target that is one of the input's features."""

from __future__ import annotations

from pathlib import Path

import pytest

from nndoctor.engine import Selection, check_script
from nndoctor.report.model import Report

CHECK = "target-among-inputs"

# A sliding-window forecaster; {layout} feeds the window batch first or sequence first.
FORECASTER = """
import math, torch, torch.nn as nn
torch.manual_seed(0)
t = torch.arange(3000, dtype=torch.float32)
s = torch.sin(t * 2 * math.pi / 40) + 0.1 * torch.randn(3000)
W = 24
x = torch.stack([s[i:i + W] for i in range(2900)])
y = torch.stack([s[{target}] for i in range(2900)]).unsqueeze(1)
model = nn.Sequential(nn.Linear(W, 64), nn.ReLU(), nn.Linear(64, 1))
opt = torch.optim.Adam(model.parameters(), 1e-3)
for epoch in range(2):
    perm = torch.randperm(2900)
    for i in range(0, 2900, 64):
        idx = perm[i:i + 64]
        loss = nn.functional.mse_loss(model(x[idx]), y[idx])
        opt.zero_grad(); loss.backward(); opt.step()
"""

# Tabular regression, the target column {kept} among the features.
TABULAR = """
import torch, torch.nn as nn
torch.manual_seed(0)
f = torch.randn(2048, 6)
y = f[:, :3].sum(1, keepdim=True) + 0.1 * torch.randn(2048, 1)
x = {features}
model = nn.Sequential(nn.Linear(x.shape[1], 32), nn.ReLU(), nn.Linear(32, 1))
opt = torch.optim.Adam(model.parameters(), 1e-3)
loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=64, shuffle=True)
for xb, yb in loader:
    loss = nn.functional.mse_loss(model(xb), yb)
    opt.zero_grad(); loss.backward(); opt.step()
"""

AUTOENCODER = """
import torch, torch.nn as nn
torch.manual_seed(0)
x = torch.rand(2048, 32)
model = nn.Sequential(nn.Linear(32, 8), nn.ReLU(), nn.Linear(8, 32))
opt = torch.optim.Adam(model.parameters(), 1e-3)
for i in range(0, 2048, 64):
    loss = nn.functional.mse_loss(model(x[i:i + 64]), x[i:i + 64])
    opt.zero_grad(); loss.backward(); opt.step()
"""


def _check(tmp_path: Path, script: str) -> Report:
    path = tmp_path / "train.py"
    path.write_text(script)
    return check_script(str(path), steps=10, selection=Selection(select=(CHECK,)))


@pytest.mark.fires("target-among-inputs")
def test_a_window_whose_target_is_its_own_last_value_is_found(tmp_path: Path) -> None:
    report = _check(tmp_path, FORECASTER.format(target="i + W - 1"))
    (finding,) = report.by_check(CHECK)
    assert set(finding.reasons) == {3, 4}
    assert finding.evidence["min_share"] == 1.0


@pytest.mark.silent("target-among-inputs")
def test_a_window_whose_target_follows_it_passes(tmp_path: Path) -> None:
    report = _check(tmp_path, FORECASTER.format(target="i + W"))
    assert report.result(CHECK).status == "passed"


@pytest.mark.fires("target-among-inputs")
def test_a_target_column_left_among_the_features_is_found(tmp_path: Path) -> None:
    report = _check(tmp_path, TABULAR.format(kept="kept", features="torch.cat([f, y], 1)"))
    assert report.by_check(CHECK)


@pytest.mark.silent("target-among-inputs")
def test_features_without_the_target_column_pass(tmp_path: Path) -> None:
    report = _check(tmp_path, TABULAR.format(kept="dropped", features="f"))
    assert report.result(CHECK).status == "passed"


def test_an_autoencoder_reconstructing_its_input_is_not_measured(tmp_path: Path) -> None:
    report = _check(tmp_path, AUTOENCODER)
    assert report.result(CHECK).status == "skipped"
    assert report.by_check(CHECK) == []
