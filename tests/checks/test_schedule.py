"""learning-rate-schedule: the scheduler judged on the plan a copy of it reads ahead."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import torch

from nndoctor.engine import Selection, check_script
from nndoctor.probes.schedule import planned_rates

CHECK = "learning-rate-schedule"

SCRIPT = """
import math, torch, torch.nn as nn
from torch.utils.data import DataLoader, TensorDataset
torch.manual_seed(0)
x = torch.randn(6400, 10)
y = (x[:, 0] > 0).long()
loader = DataLoader(TensorDataset(x, y), batch_size=64, shuffle=True)  # 100 batches an epoch
model = nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Linear(32, 2))
optimizer = torch.optim.{optimizer}
scheduler = torch.optim.lr_scheduler.{scheduler}
for epoch in range({epochs}):
    for xb, yb in loader:
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(xb), yb).backward()
        optimizer.step()
        {per_batch}
    {per_epoch}
"""


def _check(
    tmp_path: Path, optimizer: str, scheduler: str, per_batch: bool, epochs: int = 5
) -> object:
    path = tmp_path / "train.py"
    stepped = "scheduler.step()"
    path.write_text(
        textwrap.dedent(SCRIPT).format(
            epochs=epochs,
            optimizer=optimizer,
            scheduler=scheduler,
            per_batch=stepped if per_batch else "pass",
            per_epoch="pass" if per_batch else stepped,
        )
    )
    return check_script(str(path), steps=20, selection=Selection(select=(CHECK,)))


@pytest.mark.fires("learning-rate-schedule")
def test_a_per_epoch_step_schedule_stepped_per_batch(tmp_path: Path) -> None:
    report = _check(
        tmp_path, "SGD(model.parameters(), lr=0.1)", "StepLR(optimizer, 3, gamma=0.5)", True
    )
    (finding,) = report.by_check(CHECK)
    assert 36 in finding.reasons
    assert finding.evidence["steps_per_epoch"] == 100
    assert finding.evidence["lr_end_of_first_epoch"] < 1e-3 * 0.1


@pytest.mark.fires("learning-rate-schedule")
def test_a_step_schedule_that_halves_the_epoch_first_then_collapses(tmp_path: Path) -> None:
    # Per batch, StepLR(20, 0.1) is at a hundredth of its rate half way through the first
    # epoch (100 batches) and below a thousandth from batch 80: 22 steps' worth at the
    # peak rate in all, however long the run.
    report = _check(
        tmp_path, "SGD(model.parameters(), lr=0.1)", "StepLR(optimizer, 20, gamma=0.1)", True
    )
    (finding,) = report.by_check(CHECK)
    assert finding.evidence["collapsed_at_step"] == 81
    assert finding.evidence["median_lr_first_epoch"] > 1e-3 * 0.1
    assert 20 < finding.evidence["learning_in_peak_steps"] < 25


@pytest.mark.fires("learning-rate-schedule")
def test_a_step_schedule_idle_for_most_of_the_planned_run(tmp_path: Path) -> None:
    # Per batch, StepLR(10, 0.5) is at 0.002 of its rate at the end of the first epoch (no
    # collapse within it) and below 0.001 from step 101 on: 400 of the 500 steps the loops
    # plan (5 epochs of 100 batches) train at nothing.
    report = _check(
        tmp_path, "Adam(model.parameters(), lr=1e-3)", "StepLR(optimizer, 10, gamma=0.5)", True
    )
    (finding,) = report.by_check(CHECK)
    assert 36 in finding.reasons
    assert finding.evidence["planned_steps"] == 500
    assert finding.evidence["idle_from_step"] == 101
    assert finding.evidence["idle_share"] == pytest.approx(0.8)
    assert "at nothing for 80% of the planned run" in finding.title


@pytest.mark.silent("learning-rate-schedule")
def test_a_step_schedule_that_decays_by_the_end_of_a_short_run(tmp_path: Path) -> None:
    # The same schedule over a one-epoch run: it reaches a thousandth of its peak as the run
    # ends, which is what a schedule sized for the run does.
    report = _check(
        tmp_path,
        "Adam(model.parameters(), lr=1e-3)",
        "StepLR(optimizer, 10, gamma=0.5)",
        True,
        epochs=1,
    )
    assert report.by_check(CHECK) == []
    assert report.result(CHECK).status == "passed"
    assert "plan `for epoch in range(1)` (1)" in report.result(CHECK).detail


@pytest.mark.fires("learning-rate-schedule")
def test_a_warm_up_that_never_ends(tmp_path: Path) -> None:
    report = _check(
        tmp_path,
        "AdamW(model.parameters(), lr=1e-3)",
        "LambdaLR(optimizer, lambda s: (s + 1) / 50)",
        True,
    )
    (finding,) = report.by_check(CHECK)
    assert finding.evidence["factor"] > 3 and "still rising" in finding.message


@pytest.mark.fires("learning-rate-schedule")
def test_a_one_cycle_sized_in_batches_stepped_per_epoch(tmp_path: Path) -> None:
    report = _check(
        tmp_path,
        "SGD(model.parameters(), lr=0.01, momentum=0.9)",
        "OneCycleLR(optimizer, max_lr=0.1, epochs=5, steps_per_epoch=len(loader))",
        False,
    )
    (finding,) = report.by_check(CHECK)
    assert 36 in finding.reasons
    assert finding.evidence["planned_steps"] == 500 and finding.evidence["epochs"] == 5
    assert finding.evidence["peak_lr_in_run"] < 0.01 < finding.evidence["planned_peak_lr"]
    assert "stepped once per epoch" in finding.title


@pytest.mark.fires("learning-rate-schedule")
def test_a_warm_up_written_in_batches_stepped_per_epoch(tmp_path: Path) -> None:
    # A LambdaLR's length is inside its function: read ahead, it peaks after 199 steps; the
    # run's 5 epochs take 5 of its steps.
    report = _check(
        tmp_path,
        "AdamW(model.parameters(), lr=1e-3)",
        "LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / 200))",
        False,
    )
    (finding,) = report.by_check(CHECK)
    assert 36 in finding.reasons and "stepped once per epoch" in finding.title
    assert finding.evidence["planned_epochs"] == 5
    assert finding.evidence["peak_at_scheduler_step"] == 199
    assert finding.evidence["peak_lr_in_run"] < 0.5 * finding.evidence["planned_peak_lr"]


# Iterations of a fixed number of steps, batches drawn by hand (no loader tells an
# epoch): a warm-up of 200 steps stepped once per iteration of {inner} steps.
ITERATIONS = """
import torch, torch.nn as nn
torch.manual_seed(0)
x = torch.randn(6400, 10)
y = (x[:, 0] > 0).long()
model = nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Linear(32, 2))
optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / 200))
for iteration in range({outer}):
    for _ in range({inner}):
        idx = torch.randint(0, 6400, (64,))
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(x[idx]), y[idx]).backward()
        optimizer.step()
        {per_step}
    {per_iteration}
"""


@pytest.mark.parametrize("per_step", [False, True])
def test_a_warm_up_stepped_once_per_iteration_of_steps_drawn_by_hand(
    tmp_path: Path, per_step: bool
) -> None:
    path = tmp_path / "train.py"
    stepped = "scheduler.step()"
    path.write_text(
        textwrap.dedent(ITERATIONS).format(
            outer=4,
            inner=250,
            per_step=stepped if per_step else "pass",
            per_iteration="pass" if per_step else stepped,
        )
    )
    report = check_script(str(path), steps=20, selection=Selection(select=(CHECK,)))
    if per_step:
        assert report.by_check(CHECK) == []
        return
    (finding,) = report.by_check(CHECK)
    assert 36 in finding.reasons and "stepped once per epoch" in finding.title
    assert "innermost loop's 250 steps" in report.result(CHECK).detail


@pytest.mark.silent("learning-rate-schedule")
@pytest.mark.parametrize(
    ("optimizer", "scheduler", "per_batch"),
    [
        ("SGD(model.parameters(), lr=0.1)", "StepLR(optimizer, 3, gamma=0.5)", False),
        ("SGD(model.parameters(), lr=0.1)", "CosineAnnealingLR(optimizer, T_max=500)", True),
        # One epoch's cosine, restarted every epoch: half the epoch above half the peak.
        ("SGD(model.parameters(), lr=0.1)", "CosineAnnealingLR(optimizer, T_max=100)", True),
        ("SGD(model.parameters(), lr=0.01)", "OneCycleLR(optimizer, 0.1, total_steps=500)", True),
        # Sized for one epoch and stepped per batch: its anneal to max_lr / 2.5e5 ends the plan.
        ("SGD(model.parameters(), lr=0.01)", "OneCycleLR(optimizer, 0.1, total_steps=100)", True),
        # Per batch and steep, but still 100 steps' worth at the peak rate in all.
        ("SGD(model.parameters(), lr=0.1)", "ExponentialLR(optimizer, gamma=0.99)", True),
        # Sized in epochs and stepped per epoch, as meant.
        ("SGD(model.parameters(), lr=0.01)", "OneCycleLR(optimizer, 0.1, total_steps=5)", False),
        # Sized in batches but a cosine decay: stepped per epoch it keeps its peak rate.
        ("SGD(model.parameters(), lr=0.1)", "CosineAnnealingLR(optimizer, T_max=500)", False),
        (
            "AdamW(model.parameters(), lr=1e-3)",
            "LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / 200))",
            True,
        ),
        # A warm-up written in epochs and stepped per epoch: past it by the second epoch.
        (
            "AdamW(model.parameters(), lr=1e-3)",
            "LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / 2))",
            False,
        ),
    ],
)
def test_healthy_schedules(tmp_path: Path, optimizer: str, scheduler: str, per_batch: bool) -> None:
    report = _check(tmp_path, optimizer, scheduler, per_batch)
    assert report.run.observed
    assert report.by_check(CHECK) == []
    assert report.result(CHECK).status == "passed"


def test_reading_the_plan_leaves_scheduler_and_optimizer_as_they_were() -> None:
    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=3, gamma=0.5)
    for _ in range(4):
        optimizer.step()
        scheduler.step()
    before = (optimizer.param_groups[0]["lr"], scheduler.last_epoch, scheduler.get_last_lr())
    plan = planned_rates(scheduler, optimizer, 7)
    assert plan == pytest.approx([0.05, 0.025, 0.025, 0.025, 0.0125, 0.0125, 0.0125])
    assert (
        optimizer.param_groups[0]["lr"],
        scheduler.last_epoch,
        scheduler.get_last_lr(),
    ) == before


def test_a_plan_ends_where_the_scheduler_refuses_to_step() -> None:
    optimizer = torch.optim.SGD(torch.nn.Linear(3, 2).parameters(), lr=0.1)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=1.0, total_steps=30)
    plan = planned_rates(scheduler, optimizer, 100)
    assert len(plan) == 30 and plan[-1] < plan[10]  # it refuses step 31: the plan ends there


def test_a_plateau_scheduler_is_recognised_and_has_no_plan_to_read(tmp_path: Path) -> None:
    # ReduceLROnPlateau steps through a step(metric) of its own: it is a scheduler the
    # script drives, whose next rates depend on the metric, not one missing.
    path = tmp_path / "train.py"
    script = textwrap.dedent(SCRIPT).format(
        epochs=5,
        optimizer="SGD(model.parameters(), lr=0.1)",
        scheduler="ReduceLROnPlateau(optimizer, patience=2)",
        per_batch="pass",
        per_epoch="pass",
    )
    script = script.replace(
        "        optimizer.step()\n", "        optimizer.step()\n        scheduler.step(1.0)\n"
    )
    path.write_text(script)
    report = check_script(str(path), steps=20, selection=Selection(select=(CHECK,)))
    result = report.result(CHECK)
    assert result.status == "skipped" and "ReduceLROnPlateau" in result.detail
    assert "no plan to read ahead" in result.detail


PLATEAU = """
import torch, torch.nn as nn
from torch.utils.data import DataLoader, TensorDataset
torch.manual_seed(0)
x = torch.randn(1280, 10)
y = (x[:, 0] > 0).long()
loader = DataLoader(TensorDataset(x, y), batch_size=64, shuffle=True)
model = nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Linear(32, 2))
optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="{mode}", patience=0)
for epoch in range(3):
    for xb, yb in loader:
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(xb), yb).backward()
        optimizer.step()
    with torch.no_grad():
        val_accuracy = (model(x).argmax(1) == y).float().mean().item()
    scheduler.step(val_accuracy)
"""


def _plateau(tmp_path: Path, mode: str) -> object:
    path = tmp_path / "plateau.py"
    path.write_text(PLATEAU.format(mode=mode))
    return check_script(str(path), steps=10, selection=Selection(select=(CHECK,)))


@pytest.mark.fires("learning-rate-schedule")
def test_a_plateau_scheduler_waiting_for_its_accuracy_to_fall_is_found(tmp_path: Path) -> None:
    (finding,) = _plateau(tmp_path, "min").by_check(CHECK)
    assert finding.reasons == [36] and finding.evidence["metric"] == "val_accuracy"
    stepped = PLATEAU.splitlines().index("    scheduler.step(val_accuracy)") + 1
    assert finding.where.line == stepped and finding.evidence["built_at"] == 10


@pytest.mark.silent("learning-rate-schedule")
def test_a_plateau_scheduler_waiting_for_its_accuracy_to_rise_is_right(tmp_path: Path) -> None:
    report = _plateau(tmp_path, "max")
    assert report.by_check(CHECK) == []
    assert "stepped on val_accuracy" in report.result(CHECK).detail


@pytest.mark.parametrize(
    ("metric", "direction"),
    [
        ("val_acc", "max"),
        ("metrics['f1']", "max"),
        ("valid_loss.item()", "min"),
        ("perplexity", "min"),
        ("acc_loss", None),  # both: no verdict
        ("m", None),
    ],
)
def test_a_metric_name_says_which_way_it_should_go(metric: str, direction: str | None) -> None:
    from nndoctor.checks.training.schedule import metric_direction

    assert metric_direction(metric) == direction


# Gradients accumulated over four micro-batches: 100 batches an epoch are 25 optimizer
# steps, and a cosine stepped per optimizer step over two epochs ends with the run.
ACCUMULATED = """
import math, torch, torch.nn as nn
from torch.utils.data import DataLoader, TensorDataset
torch.manual_seed(0)
x = torch.randn(6400, 10)
y = (x[:, 0] > 0).long()
loader = DataLoader(TensorDataset(x, y), batch_size=64, shuffle=True)
model = nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Linear(32, 2))
optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
total = 2 * len(loader) // 4
scheduler = torch.optim.lr_scheduler.LambdaLR(
    optimizer, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, total) / total))
)
for epoch in range(2):
    for i, (xb, yb) in enumerate(loader):
        (nn.functional.cross_entropy(model(xb), yb) / 4).backward()
        if (i + 1) % 4 == 0:
            optimizer.step(); scheduler.step(); optimizer.zero_grad()
"""


@pytest.mark.silent("learning-rate-schedule")
def test_an_epoch_of_accumulated_micro_batches_is_counted_in_optimizer_steps(
    tmp_path: Path,
) -> None:
    path = tmp_path / "accumulated.py"
    path.write_text(textwrap.dedent(ACCUMULATED))
    report = check_script(str(path), steps=20, selection=Selection(select=(CHECK,)))
    assert report.by_check(CHECK) == []
    assert "one epoch is 25 steps" in report.result(CHECK).detail
