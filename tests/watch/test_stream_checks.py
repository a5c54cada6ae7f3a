"""The stream checks and the sampler on synthetic rows: each rule fires where it should and
stays silent on its healthy twin."""

from __future__ import annotations

import math

from nndoctor.watch.rows import Sample, StepRow
from nndoctor.watch.sampling import Sampler
from nndoctor.watch.stream_checks import (
    LossMetricDisagreement,
    Plateau,
    ScalerTrouble,
    StreamContext,
    UpdateRatio,
)


def _run(check: object, rows: list[StepRow], ctx: StreamContext | None = None) -> list:
    ctx = ctx or StreamContext()
    out = []
    for row in rows:
        out += check.on_step(row, ctx)  # type: ignore[attr-defined]
    return out


def test_plateau_fires_on_a_flat_loss_far_above_its_start_and_not_on_a_falling_one() -> None:
    flat = [StepRow(step=i, loss=2.0 if i < 200 else 1.5, loss_seen=True) for i in range(600)]
    found = _run(Plateau(), flat)
    assert [f.where.step for f in found] == [599] and found[0].severity.value == "info"
    falling = [StepRow(step=i, loss=2.0 * 0.998**i, loss_seen=True) for i in range(600)]
    assert _run(Plateau(), falling) == []


def test_persistent_grad_scaler_skips_are_flagged_but_occasional_ones_are_not() -> None:
    def rows(skip_every: int) -> list[StepRow]:
        return [
            StepRow(step=i, loss=1.0, loss_seen=True, scale=1024.0, skipped=i % skip_every == 0)
            for i in range(60)
        ]

    assert _run(ScalerTrouble(), rows(10)) == []
    found = _run(ScalerTrouble(), rows(1))
    assert found and found[0].check == "watch-grad-scaler" and found[0].reasons == [37]
    collapsed = [StepRow(step=0, loss=1.0, loss_seen=True, scale=0.25)]
    assert _run(ScalerTrouble(), collapsed)[0].title == "The loss scale collapsed"


def test_loss_metric_disagreement_needs_a_metric_that_stays_put() -> None:
    def rows(metric: float | None) -> list[StepRow]:
        return [
            StepRow(
                step=i,
                loss=2.0 * 0.98**i,
                loss_seen=True,
                metric=math.nan if metric is None else metric + (0.004 * i if metric > 0.5 else 0),
            )
            for i in range(100)
        ]

    assert _run(LossMetricDisagreement(), rows(None)) == []  # no metric: skipped
    assert _run(LossMetricDisagreement(), rows(0.6)) == []  # accuracy rises with the loss
    found = _run(LossMetricDisagreement(), rows(0.3))
    assert found and found[0].reasons == [21]


def test_update_ratio_fires_only_when_sustained_over_sampled_steps() -> None:
    ctx = StreamContext(param_shapes={"w": (8, 8), "b": (8,)})

    def sample(step: int, ratio: float) -> Sample:
        return Sample(
            step=step,
            weight_norms={"w": 1.0, "b": 1.0},
            update_norms={"w": ratio, "b": 100.0},  # biases are not weight matrices
        )

    check = UpdateRatio()
    spikes = [sample(s, 0.5 if s % 2 else 1e-3) for s in range(20)]
    assert [f for s in spikes for f in check.on_sample(s, ctx)] == []
    check = UpdateRatio()
    found = [f for s in [sample(s, 2.0) for s in range(10)] for f in check.on_sample(s, ctx)]
    assert len(found) == 1 and found[0].severity.value == "error" and found[0].where.step == 0


def test_a_noisy_cost_estimate_never_samples_more_often_than_the_smallest_k() -> None:
    # The sampled cost swings 100x every ten samples (a loaded machine): k keeps moving, and
    # no move may bring a sample forward to the next step.
    sampler = Sampler(budget=0.02)
    sampled_steps = []
    for step in range(2000):
        sampled = sampler.sampled(step)
        if sampled:
            sampled_steps.append(step)
        cost = (20e-3 if (len(sampled_steps) // 10) % 2 else 0.2e-3) if sampled else 0.0
        sampler.note_step(step, 10e-3 + cost, 1e-5, cost, sampled)
    assert len(sampler.periods) > 2, "the swings must move k for this test to mean anything"
    smallest = min(k for _, k in sampler.periods[1:])
    after_warmup = [s for s in sampled_steps if s >= sampler.warmup]
    gaps = [b - a for a, b in zip(after_warmup, after_warmup[1:], strict=False)]
    assert gaps and min(gaps) >= smallest


def test_a_slow_first_step_does_not_keep_the_sampler_at_every_step() -> None:
    # The first step's wall time runs from attach (the script's set-up, first calls): 5 s
    # here, then 10 ms steps whose sample costs 1 ms: k must widen right after the warm-up.
    sampler = Sampler(budget=0.02)
    for step in range(20):
        sampled = sampler.sampled(step)
        own = 1e-3 if sampled else 1e-5
        wall = 5.0 if step == 0 else 10e-3 + own
        sampler.note_step(step, wall, 1e-5, own - 1e-5, sampled)
    assert sampler.periods[1][0] == sampler.warmup and sampler.period >= 6
    assert sampler.overhead > 0.01  # the 5 s of set-up do not dilute the estimate


def test_the_sampler_widens_k_when_sampling_is_expensive_and_keeps_a_fixed_k() -> None:
    adaptive = Sampler(budget=0.02)
    step = 0
    while step < 400:
        sampled = adaptive.sampled(step)
        # a 10 ms step; a sampled step costs 1 ms of watch's time, others 0.01 ms
        own = 1e-3 if sampled else 1e-5
        adaptive.note_step(step, 10e-3 + own, 1e-5, own - 1e-5, sampled)
        step += 1
    # (0.01 + 1/k) ms within 2 % of 10 ms: k >= 6
    assert adaptive.period >= 6 and adaptive.periods[0] == (0, 1)
    assert 0 < adaptive.overhead <= 0.03
    fixed = Sampler(every=5)
    for s in range(20):
        fixed.note_step(s, 10e-3, 1e-5, 5e-3, fixed.sampled(s))
    assert fixed.periods == [(0, 5)] and [s for s in range(20) if fixed.sampled(s)] == [
        0,
        5,
        10,
        15,
    ]


def test_one_interrupted_warm_up_step_does_not_stop_sampling_for_a_thousand_steps() -> None:
    # A 30 ms step, 0.3 ms of always-on hooks, 0.9 ms more on a sampled step: k = 3 fits the
    # 2 % budget. Step 1 was interrupted inside a hook (15 ms, a busy machine): one such
    # step must not set k to the maximum until the next sample, a thousand steps on.
    sampler = Sampler(budget=0.02)
    sampled_steps = []
    for step in range(300):
        sampled = sampler.sampled(step)
        if sampled:
            sampled_steps.append(step)
        always = 15e-3 if step == 1 else 0.3e-3
        cost = 0.9e-3 if sampled else 0.0
        sampler.note_step(step, 30e-3 + always + cost, always, cost, sampled)
    later = [s for s in sampled_steps if s >= 50]
    assert 3 <= sampler.period <= 4, sampler.periods
    assert len(later) >= (300 - 50) // 5, sampler.periods
    assert 0 < sampler.overhead <= 0.03


def test_every_stream_check_has_a_manual_in_nndoctor_explain() -> None:
    from typer.testing import CliRunner

    from nndoctor.cli import app
    from nndoctor.watch.stream_checks import STREAM_CHECKS

    runner = CliRunner(env={"COLUMNS": "200", "NO_COLOR": "1"})
    for check in STREAM_CHECKS:
        manual = runner.invoke(app, ["explain", check.id])
        assert manual.exit_code == 0, manual.output
        assert "stream check (watch)" in manual.stdout and "How to fix:" in manual.stdout
        for reason in check.reasons:
            assert check.id in runner.invoke(app, ["explain", str(reason)]).stdout
