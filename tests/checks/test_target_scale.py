"""targets-not-standardized (reason 12): regression targets in raw units that hold training
back, against the same targets standardised; silent on standardised targets, on a scale
the model copes with, and on losses that are not of a value."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from subjects import batches, healthy_classifier, run, serious
from torch import nn

from nndoctor.engine import Selection, check_script

CHECK = "targets-not-standardized"


def regression(y_scale: float, y_shift: float, loss: nn.Module, seed: int = 0) -> dict[str, Any]:
    """A smooth 12-feature regression whose standardised target is scaled and shifted."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(512, 12, generator=g)
    w = torch.randn(12, generator=g)
    y = x @ w + 0.3 * torch.sin(3 * x[:, 0]) + 0.1 * torch.randn(512, generator=g)
    y = ((y - y.mean()) / y.std() * y_scale + y_shift).unsqueeze(1)
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(12, 64), nn.ReLU(), nn.Linear(64, 1))
    return {
        "model": model,
        "data": batches(x, y),
        "loss_fn": loss,
        "optimizer": torch.optim.Adam(model.parameters(), lr=1e-3),
    }


@pytest.mark.fires("targets-not-standardized")
def test_prices_in_the_thousands_under_a_huber_loss_hold_training_back() -> None:
    report = run(select=[CHECK], **regression(2000.0, 3000.0, nn.HuberLoss()))
    (finding,) = report.by_check(CHECK)
    assert finding.reasons == [12] and finding.severity.value == "warning"
    assert finding.evidence["loss"] == "huber_loss" and finding.evidence["flagged"] == 1
    assert finding.evidence["raw_relative_final"] > 0.9  # barely past the constant
    assert finding.evidence["standardised_relative_final"] < 0.5
    assert "pred * std + mean" in finding.fix


@pytest.mark.fires("targets-not-standardized")
def test_an_offset_target_under_mse_holds_training_back() -> None:
    report = run(select=[CHECK], **regression(3.0, 25.0, nn.MSELoss()))
    (finding,) = report.by_check(CHECK)
    assert finding.evidence["loss"] == "mse_loss"
    assert finding.evidence["raw_relative_initial"] > 10  # the start is far from the data


@pytest.mark.silent("targets-not-standardized")
def test_standardised_targets_are_silent() -> None:
    report = run(select=[CHECK], **regression(1.0, 0.0, nn.HuberLoss()))
    assert serious(report, CHECK) == []
    assert "all of order one" in report.result(CHECK).detail


@pytest.mark.silent("targets-not-standardized")
def test_a_wide_target_the_model_copes_with_is_a_note() -> None:
    # Std 20 under MSE with SGD: large gradients move the output quickly, and the copy on
    # these targets ends as well as its standardised twin.
    kwargs = regression(20.0, 0.0, nn.MSELoss())
    kwargs["optimizer"] = torch.optim.SGD(kwargs["model"].parameters(), lr=1e-4, momentum=0.9)
    report = run(select=[CHECK], **kwargs)
    assert serious(report, CHECK) == []
    assert "not what holds training back" in report.result(CHECK).detail


def test_a_classifier_is_not_judged() -> None:
    report = run(select=[CHECK], **healthy_classifier())
    assert report.result(CHECK).status.value == "skipped"


OFFSET_SCRIPT = """
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

g = torch.Generator().manual_seed(0)
x = torch.randn(512, 12, generator=g)
w = torch.randn(12, generator=g)
y = x @ w + 0.3 * torch.sin(3 * x[:, 0]) + 0.1 * torch.randn(512, generator=g)
y = ((y - y.mean()) / y.std() + 6.0).unsqueeze(1)  # scores around 6, std 1
torch.manual_seed(0)
model = nn.Sequential(nn.Linear(12, 64), nn.ReLU(), nn.Linear(64, 1))
optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
loader = DataLoader(TensorDataset(x, y), batch_size=32, shuffle=True)  # 16 steps an epoch
for epoch in range({epochs}):
    for xb, yb in loader:
        optimizer.zero_grad()
        nn.functional.mse_loss(model(xb), yb).backward()
        optimizer.step()
"""


def _offset_run(tmp_path: Path, epochs: int) -> Any:
    path = tmp_path / "train.py"
    path.write_text(OFFSET_SCRIPT.format(epochs=epochs))
    return check_script(str(path), steps=20, selection=Selection(select=(CHECK,)))


@pytest.mark.fires("targets-not-standardized")
def test_an_offset_that_costs_a_short_run_most_of_its_steps(tmp_path: Path) -> None:
    # 10 epochs plan 160 steps: 5% of them (8 steps) past the twin's 60 is all the delay
    # the raw copy is allowed, and it needs hundreds.
    report = _offset_run(tmp_path, epochs=10)
    (finding,) = report.by_check(CHECK)
    assert finding.evidence["planned_steps"] == 160
    assert finding.evidence["catch_up_steps_trained"] == 68
    assert finding.evidence["caught_up_at_step"] is None
    assert "never reaches" in finding.message


@pytest.mark.silent("targets-not-standardized")
def test_the_same_offset_in_a_long_run_is_a_delay(tmp_path: Path) -> None:
    # 2000 epochs plan 32,000 steps: the raw copy reaches the standardised one's level a few
    # hundred steps later, a small share of the run.
    report = _offset_run(tmp_path, epochs=2000)
    assert report.by_check(CHECK) == []
    result = report.result(CHECK)
    assert result.status.value == "passed"
    assert "the scale delays the run" in result.detail
    assert "of the 32000 the script plans" in result.detail


@pytest.mark.silent("targets-not-standardized")
def test_a_sorted_set_trained_whole_is_judged_on_rows_spread_over_it() -> None:
    # sin(x) over an ordered grid, the whole set each step: its first rows are neighbours
    # whose targets barely vary (std about 0.01), the set's own std is 0.7.
    x = torch.linspace(-3.14, 3.14, 2000).unsqueeze(1)
    y = torch.sin(x)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(1, 32), nn.Tanh(), nn.Linear(32, 1))
    report = run(
        select=[CHECK],
        model=model,
        data=lambda: iter([(x, y)] * 50),
        loss_fn=nn.MSELoss(),
        optimizer=torch.optim.Adam(model.parameters(), lr=1e-2),
    )
    assert report.by_check(CHECK) == []
    assert "all of order one" in report.result(CHECK).detail
