"""The lab's copies: they train in the modes the script trained its model in."""

from __future__ import annotations

import torch
from torch import nn

from nndoctor.capture.horizon import Horizon
from nndoctor.checks.lab import Delay, Lab, delay_steps, first_reaching, training_modes
from nndoctor.probes.recording import Recording, StepRecord
from nndoctor.probes.training import TrainingProbe


def _probe_on_frozen_features() -> nn.Module:
    """A backbone with BatchNorm and a linear head: the layout of a linear probe."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 2))


def test_the_modes_are_those_of_the_first_training_forward() -> None:
    steps = [
        StepRecord(step=0, forwards=0, modules_in_eval=["0"]),
        StepRecord(step=1, forwards=1, modules_in_eval=["1"]),
        StepRecord(step=2, forwards=1, modules_in_eval=[]),  # left in another mode later
    ]
    assert training_modes(steps) == frozenset({"1"})
    assert training_modes([]) == frozenset()


def test_copies_keep_the_modules_the_script_kept_in_eval() -> None:
    model = _probe_on_frozen_features()
    lab = Lab(None, model=model, modules_in_eval=frozenset({"1"}))
    copy = lab.fresh_model()
    modes = {name: m.training for name, m in copy.named_modules()}
    assert modes == {"": True, "0": True, "1": False, "2": True, "3": True}
    copy.eval()  # after an evaluation, back to the script's modes
    lab.training_mode(copy)
    assert {name: m.training for name, m in copy.named_modules()} == modes


def test_a_whole_model_kept_in_eval_trains_in_eval() -> None:
    model = _probe_on_frozen_features()
    names = frozenset(name for name, _ in model.named_modules())
    copy = Lab(None, model=model, modules_in_eval=names).fresh_model()
    assert not any(m.training for m in copy.modules())
    # The BatchNorm then normalises with its running statistics, as in the script.
    x = torch.randn(3, 4)
    with torch.no_grad():
        copy(x)
    assert torch.equal(copy[1].running_mean, torch.zeros(8))


def test_without_recorded_modes_copies_train() -> None:
    model = _probe_on_frozen_features().eval()
    copy = Lab(None, model=model).fresh_model()
    assert all(m.training for m in copy.modules())


def test_the_probe_records_every_module_in_eval_even_with_the_model_in_eval() -> None:
    model = _probe_on_frozen_features()
    model.eval()
    model[3].train()
    opt = torch.optim.SGD(model[3].parameters(), lr=0.1)
    recording = Recording()
    with TrainingProbe(recording) as probe:
        probe.attach_model(model)
        probe.attach_optimizer(opt)
        for _ in range(2):
            loss = nn.functional.cross_entropy(model(torch.randn(6, 4)), torch.randint(0, 2, (6,)))
            opt.zero_grad()
            loss.backward()
            opt.step()
    first = recording.steps[0]
    assert not first.model_training
    assert set(first.modules_in_eval) == {"", "0", "1", "2"}


def test_first_reaching_reads_a_window_mean_and_skips_non_finite_values() -> None:
    curve = [5.0, 4.0, 3.0, float("nan"), 1.0, 1.0, 0.5]
    assert first_reaching(curve, 3.0, 1) == 3
    assert first_reaching(curve, 2.0, 1) == 5  # past the NaN
    assert first_reaching(curve, 1.0, 2) == 6  # (1.0 + 1.0) / 2, after the NaN
    assert first_reaching(curve, 0.1, 1) is None


def test_a_trailing_copy_trains_a_share_of_an_exact_plan_only() -> None:
    plan = Horizon(
        steps=10_000, loops=["`for epoch in range(100)` (100)", "`for b in loader` (100)"]
    )
    assert delay_steps(plan, 60, 0.05, 600) == 560
    assert delay_steps(Horizon(steps=20_000), 60, 0.05, 600) == 600  # the cost cap
    assert delay_steps(Horizon(steps=100), 60, 0.05, 600) == 65
    assert delay_steps(Horizon(steps=10), 60, 0.05, 600) is None  # no step to spare
    assert delay_steps(Horizon(steps=10_000, exact=False), 60, 0.05, 600) is None
    assert delay_steps(None, 60, 0.05, 600) is None
    caught = Delay(steps=560, planned=10_000, compared_at=60, level=0.3, caught_up_at=260)
    assert caught.delay == 200
    assert "a delay of 200 steps, 2.0% of the 10000" in caught.describe("this", "that")
    stalled = Delay(steps=560, planned=10_000, compared_at=60, level=0.3, caught_up_at=None)
    assert stalled.delay is None and "never reaches" in stalled.describe("this", "that")
