"""Experiments on the training setup: regularisation (30), the optimiser (34), the learning rate (36)."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from subjects import batches, blobs, healthy_classifier, mlp, run
from torch import nn

from nndoctor.checks.lab import Lab
from nndoctor.checks.thresholds import DEFAULT_THRESHOLDS
from nndoctor.checks.training import experiments as training_experiments
from nndoctor.checks.training.experiments import RangeTest, _suggest
from nndoctor.engine import Selection, check_script, run_checks
from nndoctor.probes.recording import Recording

REGULARISATION = "regularisation-prevents-fit"
OPTIMIZER = "optimizer-underperforms"
LR_RANGE = "learning-rate-out-of-range"


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    # Small CPU models are launch-bound: extra intra-op threads only wait on each other on a
    # busy two-core machine (the same measure as tests/test_examples.py).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def regularised(
    p: float, optimizer: type[torch.optim.Optimizer] = torch.optim.Adam, **hyper: Any
) -> dict[str, Any]:
    """A small MLP classifier with dropout ``p`` after each hidden layer."""
    x, y = blobs()
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Linear(10, 32),
        nn.ReLU(),
        nn.Dropout(p),
        nn.Linear(32, 32),
        nn.ReLU(),
        nn.Dropout(p),
        nn.Linear(32, 3),
    )
    hyper.setdefault("lr", 1e-3)
    return {
        "model": model,
        "data": batches(x, y),
        "loss_fn": nn.CrossEntropyLoss(),
        "optimizer": optimizer(model.parameters(), **hyper),
    }


def sgd(lr: float, **hyper: Any) -> dict[str, Any]:
    kwargs = healthy_classifier()
    kwargs["optimizer"] = torch.optim.SGD(kwargs["model"].parameters(), lr=lr, **hyper)
    return kwargs


# -- regularisation prevents the fit (30) -----------------------------------------------


@pytest.mark.fires("regularisation-prevents-fit")
def test_heavy_dropout_and_weight_decay_prevent_the_fit() -> None:
    # The bug: dropout 0.9 (meant as keep-probability) and weight_decay=1.0 (meant 1e-4).
    report = run(select=[REGULARISATION], **regularised(0.9, weight_decay=1.0))
    (finding,) = report.by_check(REGULARISATION)
    assert finding.reasons == [30] and finding.severity.value == "warning"
    ev = finding.evidence
    assert ev["final_loss_regularisation_off"] < 0.1
    assert ev["final_loss_regularisation_on"] > 0.5
    assert ev["dropout"] == {"2": 0.9, "5": 0.9} and ev["weight_decay"] == [1.0]
    # Each alone is enough to block the fit here, and the finding says so.
    assert ev["final_loss_dropout_only"] > 0.5 and ev["final_loss_weight_decay_only"] > 0.5
    assert "each alone" in ev["culprit"]
    assert "instead of 0.9" in finding.fix and "instead of 1" in finding.fix


@pytest.mark.fires("regularisation-prevents-fit")
def test_heavy_dropout_alone_is_named() -> None:
    report = run(select=[REGULARISATION], **regularised(0.9))
    (finding,) = report.by_check(REGULARISATION)
    assert finding.evidence["culprit"] == "dropout"
    assert "weight_decay" not in finding.fix


@pytest.mark.silent("regularisation-prevents-fit")
def test_moderate_regularisation_still_fits() -> None:
    report = run(select=[REGULARISATION], **regularised(0.2, weight_decay=1e-4))
    assert report.by_check(REGULARISATION) == []
    result = report.result(REGULARISATION)
    assert result.status.value == "passed" and "fits a tiny batch" in result.detail


@pytest.mark.silent("regularisation-prevents-fit")
def test_dropout_that_slows_the_fit_short_of_the_line_does_not_prevent_it() -> None:
    # Dropout 0.6 on this tiny batch ends just above the fit line, yet makes most of the
    # fall the model makes without it: it slows memorisation, as it is meant to.
    report = run(select=[REGULARISATION], **regularised(0.6))
    assert report.by_check(REGULARISATION) == []
    assert "of the progress made without it remains" in report.result(REGULARISATION).detail


def test_nothing_to_switch_off_is_skipped() -> None:
    report = run(select=[REGULARISATION], **healthy_classifier())
    result = report.result(REGULARISATION)
    assert result.status.value == "skipped" and "no dropout" in result.detail


# -- the optimiser underperforms a known-good one (34) -------------------------------------


@pytest.mark.fires("optimizer-underperforms")
def test_sgd_at_a_tiny_rate_without_momentum_falls_behind_adam() -> None:
    report = run(select=[OPTIMIZER], **sgd(1e-4))
    (finding,) = report.by_check(OPTIMIZER)
    # Another class than Adam: the optimiser first, its learning rate second.
    assert finding.reasons == [34, 36] and finding.severity.value == "warning"
    ev = finding.evidence
    assert ev["gap"] >= DEFAULT_THRESHOLDS.optimizer_gap_factor
    assert ev["known_good_final_loss"] < 0.1 < ev["user_final_loss"]
    assert (
        ev["user_optimizer"].startswith("SGD(lr=0.0001")
        and ev["known_good_optimizer"] == "Adam(lr=0.001)"
    )


@pytest.mark.fires("optimizer-underperforms")
def test_a_diverging_optimiser_falls_behind_adam() -> None:
    report = run(select=[OPTIMIZER], **sgd(5.0))
    (finding,) = report.by_check(OPTIMIZER)
    assert finding.evidence["user_diverged"] is True
    assert "diverged" in finding.message


def adam(lr: float) -> dict[str, Any]:
    kwargs = healthy_classifier()
    kwargs["optimizer"] = torch.optim.Adam(kwargs["model"].parameters(), lr=lr)
    return kwargs


@pytest.mark.silent("optimizer-underperforms")
def test_adam_at_a_slower_rate_the_range_test_accepts_is_no_fault(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Adam against Adam differs in its settings only. Where the range test, run with those
    # settings, finds the loss responding around the user's rate (as it does for a
    # Transformer at Adam(1e-4)), a slower fit of a tiny batch is a choice for a longer run.
    accepting = RangeTest(
        lrs=[1e-6, 1e-3], losses=[1.0, 0.5], initial=1.0, onset=5e-5, steep=5e-4,
        minimum=2e-2, low=5e-5, high=2e-3, conclusive=True,
    )  # fmt: skip
    monkeypatch.setattr(training_experiments, "lr_range_test", lambda lab, t: accepting)
    report = run(select=[OPTIMIZER], **adam(1e-4))
    detail = report.result(OPTIMIZER).detail
    assert report.result(OPTIMIZER).status.value == "passed"
    assert "slower on a tiny batch" in detail and "5e-05 to 0.002" in detail, detail


@pytest.mark.fires("optimizer-underperforms")
def test_adam_at_a_rate_the_range_test_finds_far_too_low_falls_behind() -> None:
    # On this subject the range test puts 1e-4 twenty times below its range.
    report = run(select=[OPTIMIZER], **adam(1e-4))
    (finding,) = report.by_check(OPTIMIZER)
    assert set(finding.reasons) == {34, 36}


@pytest.mark.silent("optimizer-underperforms")
def test_sgd_with_momentum_keeps_up() -> None:
    report = run(select=[OPTIMIZER], **sgd(0.1, momentum=0.9))
    assert report.by_check(OPTIMIZER) == []
    assert report.result(OPTIMIZER).status.value == "passed"
    assert "Adam(lr=0.001)" in report.result(OPTIMIZER).detail


@pytest.mark.silent("optimizer-underperforms")
def test_the_known_good_optimiser_is_not_compared_with_itself() -> None:
    report = run(select=[OPTIMIZER], **healthy_classifier())
    assert report.by_check(OPTIMIZER) == []
    assert "already the known-good" in report.result(OPTIMIZER).detail


def test_the_tiny_batch_run_is_shared_between_experiments(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[bool] = []
    train = Lab.train

    def counting(self: Lab, *args: Any, **kwargs: Any) -> Any:
        calls.append(kwargs.get("regularisation", True))
        return train(self, *args, **kwargs)

    monkeypatch.setattr(Lab, "train", counting)
    run(
        select=[REGULARISATION, OPTIMIZER],
        **regularised(0.2, torch.optim.SGD, lr=0.1, momentum=0.9),
    )
    # One user run with regularisation off (shared), one with it on, one Adam run: not four.
    assert sorted(calls) == [False, False, True]


# -- learning-rate range test (36) --------------------------------------------------------


@pytest.mark.fires("learning-rate-out-of-range")
def test_a_rate_far_too_high_is_reported_with_the_range() -> None:
    report = run(select=[LR_RANGE], **sgd(5.0))
    (finding,) = report.by_check(LR_RANGE)
    assert finding.reasons == [36] and finding.severity.value == "warning"
    ev = finding.evidence
    low, high = ev["proposed_range"]
    assert ev["direction"] == "too high" and ev["user_lr"] == 5.0
    assert 5.0 > DEFAULT_THRESHOLDS.lr_outside_factor * high and low < high
    assert ev["diverged_at_lr"] is not None and ev["diverged_at_lr"] < 5.0
    assert len(ev["curve"]) >= 5 and all(len(point) == 2 for point in ev["curve"])
    assert f"{high:.3g}" in finding.fix
    # What the sweep suggests was tried: the user's rate trained worse than the proposed one.
    assert not ev["trial_user_tail_loss"] < ev["trial_proposed_tail_loss"]
    assert ev["trial_proposed_lr"] == pytest.approx(high)
    # ... on the script's own batches (32 samples), not ones cut for the sweep: a rate is
    # chosen for a batch size.
    assert ev["trial_batch_size"] == 32 > DEFAULT_THRESHOLDS.experiment_batch_size


def _sweep_calling_every_rate_too_high(lab: Lab, t: Any) -> RangeTest:
    """A conclusive sweep whose loss turned up at 1e-4 (proposing up to 1e-5)."""
    return RangeTest(
        lrs=[1e-6, 1e-5, 1e-4, 1e-3],
        losses=[1.0, 0.9, 0.8, 2.0],
        initial=1.0,
        onset=1e-6,
        steep=1e-5,
        minimum=1e-4,
        low=1e-6,
        high=1e-5,
        conclusive=True,
    )


@pytest.mark.silent("learning-rate-out-of-range")
def test_a_sweep_calling_a_working_rate_too_high_is_overruled_by_training(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Adam at 1e-2 on blobs trains; a sweep of single steps that puts its upper end at 1e-5
    # is wrong about it, and the two copies trained on the same batches show it.
    monkeypatch.setattr(training_experiments, "lr_range_test", _sweep_calling_every_rate_too_high)
    x, y = blobs()
    model = mlp()
    report = run(
        select=[LR_RANGE],
        model=model,
        data=batches(x, y),
        loss_fn=nn.CrossEntropyLoss(),
        optimizer=torch.optim.Adam(model.parameters(), lr=1e-2),
    )
    assert not report.by_check(LR_RANGE)
    detail = report.result(LR_RANGE).detail
    assert "is not shown to be too high" in detail and "at lr=0.01" in detail


@pytest.mark.fires("learning-rate-out-of-range")
def test_a_rate_far_too_low_is_reported() -> None:
    report = run(select=[LR_RANGE], **sgd(1e-6))
    (finding,) = report.by_check(LR_RANGE)
    ev = finding.evidence
    assert ev["direction"] == "too low"
    assert ev["factor_outside"] > DEFAULT_THRESHOLDS.lr_outside_factor
    assert not ev["low_open"]


@pytest.mark.silent("learning-rate-out-of-range")
@pytest.mark.parametrize(
    "kwargs",
    [healthy_classifier, lambda: sgd(0.05, momentum=0.9)],
    ids=["adam-1e-3", "sgd-0.05-momentum"],
)
def test_common_rates_lie_in_the_proposed_range(kwargs: Any) -> None:
    report = run(select=[LR_RANGE], **kwargs())
    assert report.by_check(LR_RANGE) == []
    result = report.result(LR_RANGE)
    assert result.status.value == "passed" and "proposed range" in result.detail


def _regression(lr: float) -> dict[str, Any]:
    # A linear target through a small MLP with SGD(momentum=0.9). Trained for real: lr 0.05
    # fits it (noisily), lr 0.3 blows the loss up from 4 to several hundred.
    torch.manual_seed(0)
    x = torch.randn(512, 10)
    y = x @ torch.randn(10, 1)
    model = mlp(classes=1)
    return {
        "model": model,
        "data": batches(x, y),
        "loss_fn": nn.MSELoss(),
        "optimizer": torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9),
    }


@pytest.mark.silent("learning-rate-out-of-range")
def test_a_rate_between_the_cautious_upper_end_and_the_lowest_loss_is_not_called_out() -> None:
    # The proposed upper end is a tenth of the rate of the lowest loss, but rates up to about
    # that minimum train.
    report = run(select=[LR_RANGE], **_regression(0.05))
    assert report.by_check(LR_RANGE) == []
    assert (
        "above it, but within 10x of the rate of the lowest loss" in report.result(LR_RANGE).detail
    )


@pytest.mark.fires("learning-rate-out-of-range")
def test_a_rate_past_where_the_range_test_diverged_is_too_high() -> None:
    (finding,) = run(select=[LR_RANGE], **_regression(0.3)).by_check(LR_RANGE)
    ev = finding.evidence
    assert ev["direction"] == "too high"
    assert ev["diverged_at_lr"] is not None and ev["diverged_at_lr"] < 0.3


def test_the_range_test_is_deterministic() -> None:
    first = run(select=[LR_RANGE], **sgd(5.0)).by_check(LR_RANGE)[0].evidence
    second = run(select=[LR_RANGE], **sgd(5.0)).by_check(LR_RANGE)[0].evidence
    assert first == second


def test_the_range_ends_follow_the_curve() -> None:
    t = DEFAULT_THRESHOLDS
    lrs = [1e-6 * 10 ** (7 * i / 59) for i in range(60)]
    # Flat, then a fall between indices 20 and 40, then a rise: both ends are measured.
    losses = [
        1.0 if i < 20 else max(0.1, 1.0 - 0.045 * (i - 20)) if i <= 40 else 0.1 + 0.1 * (i - 40)
        for i in range(60)
    ]
    test = RangeTest(lrs=lrs, losses=losses, initial=1.0)
    _suggest(test, t)
    assert test.conclusive and not test.low_open and not test.high_open
    assert lrs[19] <= test.onset <= lrs[24]
    assert test.minimum == pytest.approx(lrs[40], rel=0.5)
    assert test.low == test.onset and test.high == pytest.approx(test.minimum / 10)
    # Still falling at the largest rate: no upper end to hold anyone to.
    falling = RangeTest(lrs=lrs, losses=[1.0 - 0.015 * i for i in range(60)], initial=1.0)
    _suggest(falling, t)
    assert falling.conclusive and falling.high_open and falling.low_open
    # Never falling: inconclusive, nothing proposed.
    flat = RangeTest(lrs=lrs, losses=[1.0] * 60, initial=1.0)
    _suggest(flat, t)
    assert not flat.conclusive and math.isnan(flat.low)


@pytest.mark.parametrize("check", [REGULARISATION, OPTIMIZER, LR_RANGE])
def test_without_a_replayable_subject_each_experiment_says_how_to_enable_it(check: str) -> None:
    lab = Lab(None, unavailable_reason="the loss is not a recognised torch loss")
    results, findings = run_checks(None, Recording(), lab, selection=Selection(select=(check,)))
    (result,) = [r for r in results if r.check == check]
    assert findings == []
    assert result.status.value == "skipped"
    assert "not a recognised torch loss" in result.detail and "declare a Subject" in result.detail


def test_a_curve_too_short_to_smooth_is_inconclusive_but_still_shown() -> None:
    test = RangeTest(lrs=[1e-6, 1e-5, 1e-4], losses=[1.0, 0.5, 0.2], initial=1.0)
    _suggest(test, DEFAULT_THRESHOLDS)
    assert not test.conclusive
    assert test.curve() == [[1e-6, 1.0], [1e-5, 0.5], [1e-4, 0.2]]


# -- the same test for a custom loss: the script replayed at scaled rates ------------------

# A custom loss (written out, no torch loss call) on batches the script slices by hand: no
# copy of the step can be rebuilt in-process and no DataLoader can be substituted, so the
# rate is tried by replaying the script itself.
HAND_FED_CUSTOM_LOSS = """
import torch
from torch import nn
torch.manual_seed(0)
x = torch.randn(512, 8); y = (x[:, :2].sum(1) > 0).long()
model = nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 2))
opt = {optimizer}
{schedule}
for epoch in range(40):
    perm = torch.randperm(512)
    for i in range(0, 512, 32):
        idx = perm[i:i + 32]
        logits = model(x[idx])
        loss = (logits.logsumexp(1) - logits.gather(1, y[idx, None]).squeeze(1)).mean()
        opt.zero_grad(); loss.backward(); opt.step(){step}
"""


def _hand_fed(tmp_path: Any, optimizer: str, schedule: str = "", step: str = "") -> str:
    script = tmp_path / "train.py"
    script.write_text(
        HAND_FED_CUSTOM_LOSS.format(optimizer=optimizer, schedule=schedule, step=step)
    )
    return str(script)


def _check_script(script: str) -> Any:
    from nndoctor.engine import check_script

    # Replays re-run the script in a subprocess: a busy two-core machine gets time enough.
    return check_script(script, timeout=600.0, selection=Selection(select=(LR_RANGE,)))


@pytest.mark.fires("learning-rate-out-of-range")
def test_a_custom_loss_at_a_rate_far_too_low_is_found_by_replaying_the_script(
    tmp_path: Any,
) -> None:
    # SGD keeping an Adam-sized rate on a loss the doctor cannot rebuild: it barely moves.
    report = _check_script(_hand_fed(tmp_path, "torch.optim.SGD(model.parameters(), lr=1e-4)"))
    (finding,) = report.by_check(LR_RANGE)
    ev = finding.evidence
    assert finding.reasons == [36] and ev["direction"] == "too low"
    assert ev["method"] == "script replay (custom loss)" and ev["user_lr"] == 1e-4
    assert ev["fall_share"] < DEFAULT_THRESHOLDS.lr_replay_fall_share
    assert ev["p_value"] < DEFAULT_THRESHOLDS.lr_replay_alpha
    assert ev["best_scale"] in (10.0, 100.0) and "lr=" in finding.fix


@pytest.mark.silent("learning-rate-out-of-range")
def test_a_custom_loss_at_a_working_rate_is_not_called_too_low(tmp_path: Any) -> None:
    report = _check_script(
        _hand_fed(tmp_path, "torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)")
    )
    assert report.by_check(LR_RANGE) == []
    result = report.result(LR_RANGE)
    assert result.status.value == "passed" and "replaying the script 60 steps" in result.detail


@pytest.mark.slow  # two script replays; the rule it covers is two lines
def test_a_warm_up_over_the_replayed_steps_is_not_judged(tmp_path: Any) -> None:
    # The first steps of a warm-up are slow by design: a rate trial there says nothing.
    script = _hand_fed(
        tmp_path,
        "torch.optim.SGD(model.parameters(), lr=1e-4)",
        schedule="sched = torch.optim.lr_scheduler.LinearLR(opt, 0.01, 1.0, total_iters=500)",
        step="; sched.step()",
    )
    result = _check_script(script).result(LR_RANGE)
    assert result.status.value == "skipped" and "warm-up" in result.detail


def test_a_rate_replay_scales_every_step_and_leaves_the_schedule_as_written(
    tmp_path: Any,
) -> None:
    from nndoctor.capture.replay import ReplayPlan, run_replay

    script = _hand_fed(
        tmp_path,
        "torch.optim.SGD(model.parameters(), lr=0.1)",
        schedule="sched = torch.optim.lr_scheduler.StepLR(opt, step_size=5, gamma=0.5)",
        step="; sched.step()",
    )
    plan = ReplayPlan(script, [], "rate", steps=12, overrides={"lr_scale": 10.0}, timeout=600)
    result = run_replay(plan)
    assert result.ok and result.steps == 12 and len(result.losses) == 12
    # The script's own rates, as its scheduler set them, not the scaled ones.
    assert result.rates == pytest.approx([0.1] * 5 + [0.05] * 5 + [0.025] * 2)


def test_a_rate_replay_cut_by_its_time_limit_is_skipped(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from nndoctor.capture.replay import ReplayResult

    cut = ReplayResult(False, losses=[0.7, 0.69], error="timeout", steps=2, rates=[1e-4] * 2)
    monkeypatch.setattr(Lab, "replays", lambda self, mode, plans: [cut] * len(plans))
    script = _hand_fed(tmp_path, "torch.optim.SGD(model.parameters(), lr=1e-4)")
    result = _check_script(script).result(LR_RANGE)
    assert result.status.value == "skipped" and "time limit" in result.detail


def _scripted_rate_replays(catch_up_step: int | None) -> Any:
    """Replays of a rate far too low, as ``Lab.replays`` returns them: the initial model flat
    at 0.7; the script's rates falling a twentieth as far as 100x them, which level off at
    0.3; a longer replay at the script's rates that reaches 0.3 at ``catch_up_step`` (never:
    None)."""
    from nndoctor.capture.replay import ReplayResult

    def wobble(i: int) -> float:
        return 0.002 * ((i * 7) % 5 - 2)

    def curve(scale: float, steps: int) -> list[float]:
        if scale == 0.0:
            return [0.7 + wobble(i) for i in range(steps)]
        if scale == 100.0:
            return [max(0.3, 0.7 - 0.05 * i) + wobble(i) for i in range(steps)]
        slope = 0.0005 * scale
        losses = [0.7 - slope * i + wobble(i) for i in range(steps)]
        if scale == 1.0 and catch_up_step is not None:
            losses = [v if i < catch_up_step - 12 else 0.28 for i, v in enumerate(losses)]
        return losses

    def replays(self: Lab, mode: str, plans: list[dict[str, Any]]) -> list[ReplayResult]:
        out = []
        for plan in plans:
            scale, steps = plan["overrides"]["lr_scale"], plan["steps"]
            losses = curve(scale, steps)
            out.append(ReplayResult(True, losses=losses, steps=steps, rates=[1e-4] * steps))
        return out

    return replays


@pytest.mark.parametrize("catch_up_step", [80, None])
def test_a_replayed_rate_that_only_trails_over_the_planned_run_is_a_note(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch, catch_up_step: int | None
) -> None:
    # The script plans 40 epochs of 16 steps: 640, of which 5% (32) past the 60 compared.
    monkeypatch.setattr(Lab, "replays", _scripted_rate_replays(catch_up_step))
    script = _hand_fed(tmp_path, "torch.optim.SGD(model.parameters(), lr=1e-4)")
    report = _check_script(script)
    result = report.result(LR_RANGE)
    if catch_up_step is not None:
        assert report.by_check(LR_RANGE) == []
        assert "slower, not too low for the run the script plans" in result.detail
        assert "at step 80: a delay of 20 steps, 3.1% of the 640" in result.detail
    else:
        (finding,) = report.by_check(LR_RANGE)
        assert finding.evidence["planned_steps"] == 640
        assert finding.evidence["catch_up_steps_trained"] == 92
        assert finding.evidence["caught_up_at_step"] is None
        assert "never reaches" in finding.message


LONG_RUN = """
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

g = torch.Generator().manual_seed(0)
centers = torch.randn(3, 10, generator=g) * 2.0
kind = torch.randint(0, 3, (512,), generator=g)
x = centers[kind]  # three distinct inputs...
noisy = torch.rand(512, generator=g) < 0.3
y = torch.where(noisy, torch.randint(0, 3, (512,), generator=g), kind)  # ...30% relabelled
torch.manual_seed(0)
model = nn.Linear(10, 3)  # no model fits the noise: the loss has a floor well above 0
optimizer = torch.optim.SGD(model.parameters(), lr=0.002, momentum=0.9)
loader = DataLoader(TensorDataset(x, y), batch_size=32, shuffle=True)  # 16 steps an epoch
for epoch in range({epochs}):
    for xb, yb in loader:
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(xb), yb).backward()
        optimizer.step()
"""


def _sweep_calling_the_rate_too_low(lab: Lab, t: Any) -> RangeTest:
    """A conclusive sweep proposing 0.025 to 0.03: SGD at 0.002 is 12.5 times below it."""
    return RangeTest(
        lrs=[1e-3, 1e-2, 1e-1, 1.0, 10.0],
        losses=[1.1, 1.1, 0.9, 0.5, 5.0],
        initial=1.1,
        onset=0.025,
        steep=0.1,
        minimum=0.3,
        low=0.025,
        high=0.03,
        conclusive=True,
    )


@pytest.mark.parametrize("epochs", [2, 2000])
def test_a_rate_called_too_low_is_judged_over_the_run_the_script_plans(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, epochs: int
) -> None:
    # SGD at 0.002 trails SGD at 0.03 over the trial's 60 steps. Trained on, it reaches the
    # faster copy's level some 150 steps later: a short run (2 epochs, 32 steps) cannot
    # afford that, a long one (2000 epochs, 32,000 steps) can, and is only slower.
    monkeypatch.setattr(training_experiments, "lr_range_test", _sweep_calling_the_rate_too_low)
    path = tmp_path / "train.py"
    path.write_text(LONG_RUN.format(epochs=epochs))
    report = check_script(str(path), steps=20, selection=Selection(select=(LR_RANGE,)))
    if epochs == 2:
        (finding,) = report.by_check(LR_RANGE)
        assert finding.evidence["direction"] == "too low"
        # 5% of 32 steps: one step past the trial's 60, and the slower copy needs many more.
        assert finding.evidence["catch_up_steps_trained"] == 61
        assert finding.evidence["caught_up_at_step"] is None
        return
    assert report.by_check(LR_RANGE) == []
    detail = report.result(LR_RANGE).detail
    assert "is slower, not too low for the run the script plans" in detail
    assert "of the 32000 the script plans" in detail


# SGD with momentum at a small rate: it fits a tiny batch far later than Adam(1e-3) does.
# Over a run the script plans long (100 epochs of 100 batches) that delay is a sliver of it.
SLOW_SGD = """
import torch, torch.nn as nn
from torch.utils.data import DataLoader, TensorDataset
torch.manual_seed(0)
x = torch.randn(6400, 20)
y = (x[:, :5].sum(1) > 0).long() + (x[:, 5] > 1).long()
loader = DataLoader(TensorDataset(x, y), batch_size=64, shuffle=True)
model = nn.Sequential(nn.Linear(20, 64), nn.ReLU(), nn.Linear(64, 3))
optimizer = torch.optim.SGD(model.parameters(), lr={lr}, momentum=0.9)
for epoch in range(100):
    for xb, yb in loader:
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(xb), yb).backward()
        optimizer.step()
"""


def _slow_sgd(tmp_path: Path, lr: str, **thresholds: Any) -> Any:
    path = tmp_path / "slow_sgd.py"
    path.write_text(SLOW_SGD.format(lr=lr))
    return check_script(
        str(path),
        selection=Selection(select=(OPTIMIZER,)),
        thresholds=dataclasses.replace(DEFAULT_THRESHOLDS, **thresholds),
    )


@pytest.mark.silent("optimizer-underperforms")
def test_an_optimiser_that_fits_the_tiny_batch_soon_enough_for_the_planned_run(
    tmp_path: Path,
) -> None:
    # A gap warned at from 5x and catch-up runs of up to 900 steps keep the example clear of
    # both edges: about 10x behind at 450 steps, it fits the batch by step 600.
    report = _slow_sgd(tmp_path, "0.00037", optimizer_gap_factor=5.0, horizon_delay_max_steps=900)
    assert report.by_check(OPTIMIZER) == []
    detail = report.result(OPTIMIZER).detail
    assert "not held back for the run the script plans" in detail, detail


@pytest.mark.fires("optimizer-underperforms")
def test_an_optimiser_too_slow_even_for_the_planned_run(tmp_path: Path) -> None:
    report = _slow_sgd(tmp_path, "0.0001")
    (finding,) = report.by_check(OPTIMIZER)
    assert finding.evidence["planned_steps"] == 10000
    assert finding.evidence["caught_up_at_step"] is None
    assert "it never gets the loss down to" in finding.message
