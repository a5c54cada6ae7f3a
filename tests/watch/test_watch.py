"""nndoctor.watch on small seeded training loops: what it flags, and what it leaves alone."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.optim.optimizer as optim_mod
from torch import nn
from torch.nn.modules import module as module_mod

import nndoctor
from nndoctor.watch import Watcher, WatchReport, WatchStopped

STEPS = 200


def _data(n: int = 1024) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(n, 20, generator=g)
    return x, (x[:, 0] + x[:, 1] > 0).long()


def _mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Linear(20, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 2)
    )


def _train(
    model: nn.Module,
    opt: torch.optim.Optimizer,
    steps: int = STEPS,
    *,
    boost_at: int | None = None,
    batches: Any = None,
    watcher: Watcher | None = None,
) -> None:
    x, y = _data()
    for step in range(steps):
        if step == boost_at:
            for g in opt.param_groups:
                g["lr"] *= 1000
        i = (step * 64) % len(x)
        xb, yb = (x[i : i + 64], y[i : i + 64]) if batches is None else batches(step)
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(xb), yb)
        loss.backward()
        opt.step()


def _watched(every: int | None = None, **kw: Any) -> WatchReport:
    model = _mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    with nndoctor.watch(model, opt, every=every, quiet=True) as w:
        _train(model, opt, **kw)
    return w.report


def _loud(report: WatchReport) -> list[str]:
    return [f"{f.check}@{f.where.step}" for f in report.alerts if f.severity.value != "info"]


def test_a_healthy_run_gives_no_warning_or_error_and_fills_the_report() -> None:
    report = _watched()
    assert _loud(report) == []
    assert report.steps_seen == STEPS
    assert 1 <= report.steps_sampled <= STEPS
    assert report.periods[0] == (0, 1)
    s = report.series
    assert s.steps[0] == 0 and s.steps[-1] == STEPS - 1
    assert len(s.loss) == len(s.steps) and s.loss[0] > s.loss[-1]
    assert all(len(v) == len(s.steps) for v in s.activation_mean.values())
    assert "1" in s.activation_zero_frac and "0.weight" in s.grad_norm
    assert report.overhead == report.overhead  # measured (not nan)


def test_a_learning_rate_multiplied_at_step_100_is_flagged_where_it_happened() -> None:
    report = _watched(boost_at=100)
    first = next(f for f in report.alerts if f.severity.value == "error")
    assert set(first.reasons) & {36, 37}
    assert 100 <= first.where.step <= 103, first.where


def test_sentinel_verdicts_do_not_depend_on_the_sampling_period() -> None:
    def verdicts(every: int) -> list[tuple[str, int | None, str]]:
        report = _watched(every=every, boost_at=100)
        return [
            (f.check, f.where.step, f.severity.value)
            for f in report.alerts
            if f.check in ("watch-divergence", "watch-non-finite", "watch-plateau")
        ]

    one, five = verdicts(1), verdicts(5)
    assert one and one == five


class RowNorm(nn.Module):
    """Divides each row by its norm: an all-zero row gives 0/0."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x / x.norm(dim=1, keepdim=True)


class Normed(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Linear(20, 32, bias=False)
        self.norm = RowNorm()
        self.head = nn.Linear(32, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.norm(self.embed(x)))


def test_a_nan_injected_at_step_k_is_reported_with_its_op_and_module() -> None:
    torch.manual_seed(0)
    model = Normed()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    x, y = _data()
    k = 37

    def batches(step: int) -> tuple[torch.Tensor, torch.Tensor]:
        xb = x[:64].clone()
        if step == k:
            xb[5] = 0.0
        return xb, y[:64]

    with nndoctor.watch(model, opt, quiet=True) as w:
        _train(model, opt, 60, batches=batches)
    nan = w.report.by_check("watch-non-finite")
    assert len(nan) == 1
    f = nan[0]
    assert f.where.step == k and f.reasons == [37]
    assert f.where.op is not None and f.where.op.startswith("div")
    assert f.where.module == "norm"
    assert "forward" in f.message


def test_dead_relus_are_flagged() -> None:
    model = _mlp()
    with torch.no_grad():
        model[0].bias.fill_(-100.0)  # every pre-activation negative: the ReLU after it is dead
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    with nndoctor.watch(model, opt, every=2, quiet=True) as w:
        _train(model, opt, 40)
    dead = w.report.by_check("watch-dead-units")
    assert [f.where.module for f in dead] == ["1"]
    assert dead[0].severity.value == "error" and 35 in dead[0].reasons


def _hook_state() -> tuple[Any, ...]:
    return (
        len(module_mod._global_forward_hooks),
        len(module_mod._global_forward_pre_hooks),
        len(optim_mod._global_optimizer_pre_hooks),
        len(optim_mod._global_optimizer_post_hooks),
        torch.Tensor.backward,
        torch.amp.GradScaler.scale,
        torch.amp.GradScaler.step,
    )


def test_every_hook_and_patch_is_removed_on_exit_even_on_an_exception() -> None:
    before = _hook_state()
    model = _mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    with pytest.raises(KeyError), nndoctor.watch(model, opt, quiet=True):
        _train(model, opt, 3)
        assert _hook_state() != before  # attached while inside
        raise KeyError("the user's own error")
    assert _hook_state() == before
    for m in model.modules():
        assert not m._forward_hooks and not m._forward_pre_hooks


def _state(model: nn.Module, opt: torch.optim.Optimizer) -> dict[str, Any]:
    return {
        "params": {k: v.clone() for k, v in model.state_dict().items()},
        "opt": {
            k: {n: t.clone() if isinstance(t, torch.Tensor) else t for n, t in v.items()}
            for k, v in opt.state_dict()["state"].items()
        },
        "rng": torch.get_rng_state(),
    }


@pytest.mark.parametrize("nan_at", [None, 20])
def test_model_optimizer_and_rng_end_as_in_a_plain_run(nan_at: int | None) -> None:
    x, y = _data()

    def batches(step: int) -> tuple[torch.Tensor, torch.Tensor]:
        xb = x[:64].clone()
        if step == nan_at:
            xb[3] = 0.0
        return xb, y[:64]

    def run(watched: bool) -> dict[str, Any]:
        torch.manual_seed(0)
        model = nn.Sequential(Normed(), nn.Dropout(0.2))
        opt = torch.optim.Adam(model.parameters(), lr=1e-2)
        torch.manual_seed(5)
        if watched:
            with nndoctor.watch(model, opt, every=1, quiet=True):
                _train(model, opt, 30, batches=batches)
        else:
            _train(model, opt, 30, batches=batches)
        return _state(model, opt)

    plain, watched = run(False), run(True)
    for k, v in plain["params"].items():
        assert torch.equal(v, watched["params"][k]) or (
            v.isnan().all() and watched["params"][k].isnan().all()
        )
    assert torch.equal(plain["rng"], watched["rng"])
    assert plain["opt"].keys() == watched["opt"].keys()


def test_stop_on_error_raises_after_the_alert_and_logs_it(tmp_path: Path) -> None:
    model = _mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    log = tmp_path / "alerts.jsonl"
    seen = []
    with pytest.raises(WatchStopped) as stopped:
        with nndoctor.watch(
            model, opt, log=str(log), stop_on="error", on_alert=seen.append, quiet=True
        ) as w:
            _train(model, opt, boost_at=100)
    assert stopped.value.finding is seen[-1] and w.report.stopped
    assert w.report.steps_seen < STEPS
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert lines[0]["event"] == "start" and lines[-1]["event"] == "end"
    alerts = [line for line in lines if line["event"] == "alert"]
    assert alerts and alerts[-1]["severity"] == "error" and "step" in alerts[-1]["where"]


def test_the_model_stays_picklable_while_watched() -> None:
    model = _mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    with nndoctor.watch(model, opt, quiet=True):
        _train(model, opt, 2)
        buffer = io.BytesIO()
        torch.save(model, buffer)
    assert buffer.tell() > 0


class _NormedSubclass(Normed):
    """Inherits its ``forward``: watch wraps it on this class and must delete it again."""


def test_layer_outputs_are_hooked_on_sampled_steps_only_and_the_class_is_put_back() -> None:
    model = _NormedSubclass()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    hooks_before = len(module_mod._global_forward_hooks)
    hooked: dict[int, bool] = {}
    with nndoctor.watch(model, opt, every=4, quiet=True) as w:
        # Called as each step closes: is the hook there for the step about to run?
        w.on_step_end = lambda step: hooked.__setitem__(
            step, len(module_mod._global_forward_hooks) > hooks_before
        )
        _train(model, opt, 12)
        assert "forward" in vars(_NormedSubclass)  # the model's calls are seen there
    assert hooked == {s: s % 4 == 0 for s in range(1, 13)}
    assert w.report.steps_sampled == 3 and w.report.series.activation_zero_frac
    assert "forward" not in vars(_NormedSubclass)
    assert _NormedSubclass.forward is Normed.forward
    assert len(module_mod._global_forward_hooks) == hooks_before


def test_a_model_with_a_forward_of_its_own_is_still_seen_at_every_call() -> None:
    """A ``forward`` set on the instance is not the class's: the global hook stays on, and
    the NaN replay still finds the batch of the step that made the NaN."""
    torch.manual_seed(0)
    model = Normed()
    model.forward = model.forward  # an instance attribute now, as a wrapper might leave
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    x, y = _data()

    def batches(step: int) -> tuple[torch.Tensor, torch.Tensor]:
        xb = x[:64].clone()
        if step == 9:
            xb[5] = 0.0
        return xb, y[:64]

    with nndoctor.watch(model, opt, every=1000, quiet=True) as w:
        _train(model, opt, 12, batches=batches)
    nan = w.report.by_check("watch-non-finite")
    assert [f.where.step for f in nan] == [9] and nan[0].where.module == "norm"
    assert not hasattr(Normed.forward, "__wrapped__")


def test_a_failing_hook_is_disabled_and_recorded_without_breaking_the_run(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from nndoctor.watch import session

    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("statistics failed")

    monkeypatch.setattr(session, "activation_row", broken)
    model = _mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    with nndoctor.watch(model, opt, every=1, quiet=True) as w:
        _train(model, opt, 5)
    assert any("activations" in c and "statistics failed" in c for c in w.report.crashes)
    assert w.report.steps_seen == 5  # the run and the sentinel went on


def test_a_second_optimizer_is_announced_as_a_new_phase() -> None:
    model = _mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    with nndoctor.watch(model, opt, quiet=True) as w:
        _train(model, opt, 10)
        finetune = torch.optim.Adam(model.parameters(), lr=1e-3)
        _train(model, finetune, 10)
    phases = w.report.by_check("watch-phase")
    assert [f.where.step for f in phases] == [10]
    assert "Adam" in phases[0].message


def test_training_in_eval_mode_is_flagged() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(20, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Linear(32, 2))
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    model.eval()
    with nndoctor.watch(model, opt, quiet=True) as w:
        _train(model, opt, 30)
    found = w.report.by_check("watch-train-eval-mode")
    assert len(found) == 1 and found[0].where.step == 0 and found[0].reasons == [32]


def test_a_grad_scaler_run_reads_the_unscaled_loss() -> None:
    model = _mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    scaler = torch.amp.GradScaler("cpu", init_scale=1024.0)
    x, y = _data()
    losses = []
    with nndoctor.watch(model, opt, quiet=True) as w:
        for _ in range(10):
            opt.zero_grad()
            loss = nn.functional.cross_entropy(model(x[:64]), y[:64])
            losses.append(float(loss.detach()))
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
    assert _loud(w.report) == []
    assert w.report.series.loss == pytest.approx(losses, rel=1e-5)


@pytest.mark.parametrize("keep_weights", [True, False])
def test_a_nan_read_a_step_late_is_replayed_with_the_weights_it_ran_with(
    monkeypatch: pytest.MonkeyPatch, keep_weights: bool
) -> None:
    """What a GPU does: the sentinel's row lands a step later, after the update that the
    NaN gradients spoilt. With the weights kept (the default on a GPU) the op is still named."""
    from nndoctor.watch.stats import AsyncRing

    poll = AsyncRing.poll

    def one_step_late(self: AsyncRing, wait: bool = False) -> list:
        if wait:
            return poll(self, wait=True)
        newest = self._pending.pop() if self._pending else None
        out = poll(self)
        if newest is not None:
            self._pending.append(newest)
        return out

    monkeypatch.setattr(AsyncRing, "poll", one_step_late)
    torch.manual_seed(0)
    model = Normed()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    x, y = _data()

    def batches(step: int) -> tuple[torch.Tensor, torch.Tensor]:
        xb = x[:64].clone()
        if step == 20:
            xb[5] = 0.0
        return xb, y[:64]

    with nndoctor.watch(model, opt, every=1000, keep_weights=keep_weights, quiet=True) as w:
        _train(model, opt, 30, batches=batches)
    (f,) = w.report.by_check("watch-non-finite")
    assert f.where.step == 20
    if keep_weights:
        assert f.where.op is not None and f.where.op.startswith("div") and f.where.module == "norm"
    else:
        assert f.where.op is None and "already non-finite" in f.message


def _train_by_hand(model: nn.Module, steps: int, lr: float, *, boost_at: int | None = None) -> None:
    """The classic word-LM loop: zero_grad, forward, backward, clip, ``p.data.add_``."""
    x, y = _data()
    for step in range(steps):
        rate = lr * (1000 if boost_at is not None and step >= boost_at else 1)
        i = (step * 64) % len(x)
        model.zero_grad()
        loss = nn.functional.cross_entropy(model(x[i : i + 64]), y[i : i + 64])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        for p in model.parameters():
            p.data.add_(p.grad, alpha=-rate)
        with torch.no_grad():  # an evaluation forward is not a step boundary
            model(x[:8])


def test_updates_by_hand_are_watched_as_steps() -> None:
    model = _mlp()
    with nndoctor.watch(model, every=4, quiet=True) as w:
        _train_by_hand(model, STEPS, 0.1)
    report = w.report
    assert report.steps_seen == STEPS and _loud(report) == []
    assert any("updated by hand" in n for n in report.notes)
    s = report.series
    assert s.loss[0] > s.loss[-1] and all(v == v for v in s.loss)
    ratios = [v for v in s.update_ratio["0.weight"] if v == v]
    assert len(ratios) == report.steps_sampled and all(0 < r < 1 for r in ratios)
    assert all(v > 0 for v in s.grad_norm["0.weight"] if v == v)


def test_a_rate_by_hand_boosted_at_step_100_is_flagged_where_it_happened() -> None:
    model = _mlp()
    with nndoctor.watch(model, quiet=True) as w:
        _train_by_hand(model, STEPS, 0.1, boost_at=100)
    first = next(f for f in w.report.alerts if f.severity.value == "error")
    assert set(first.reasons) & {36, 37}
    assert 100 <= first.where.step <= 104, first.where


def test_an_optimizer_run_stops_looking_for_updates_by_hand_at_its_first_step() -> None:
    before = len(module_mod._global_forward_pre_hooks)
    model = _mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    with nndoctor.watch(model, opt, quiet=True) as w:
        _train(model, opt, 2)
        assert len(module_mod._global_forward_pre_hooks) == before
    assert not any("by hand" in n for n in w.report.notes)


def test_reading_a_sample_counts_as_the_cost_of_sampling(monkeypatch: pytest.MonkeyPatch) -> None:
    """Turning a sample into numbers and running the checks on it happens because the step
    was sampled: k must weigh it against the budget, not count it as the always-on cost
    every step pays (that would let k fall below what the budget allows)."""
    import statistics
    import time

    from nndoctor.watch.sampling import Sampler

    decode = Watcher._decode_sample

    def slow_decode(self: Watcher, layout: Any, values: list[float]) -> Any:
        time.sleep(4e-3)
        return decode(self, layout, values)

    seen: list[tuple[bool, float, float]] = []
    note_step = Sampler.note_step

    def recording(self: Sampler, step: int, wall: float, always: float, cost: float, sampled: bool):
        seen.append((sampled, always, cost))
        return note_step(self, step, wall, always, cost, sampled)

    monkeypatch.setattr(Watcher, "_decode_sample", slow_decode)
    monkeypatch.setattr(Sampler, "note_step", recording)
    model = _mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    with nndoctor.watch(model, opt, every=2, quiet=True):
        _train(model, opt, 20)
    sampled = [(always, cost) for s, always, cost in seen if s]
    assert len(sampled) == 10
    assert statistics.median(cost for _, cost in sampled) >= 4e-3
    assert statistics.median(always for always, _ in sampled) < 4e-3


@pytest.mark.parametrize("every", [None, 5])
def test_an_always_on_cost_over_the_budget_is_said(monkeypatch: pytest.MonkeyPatch, every) -> None:
    """Host time is fixed per step: on a short step the sentinel alone can exceed the budget,
    which no sampling period lowers. The run says so (with times fed in, not measured)."""
    from nndoctor.watch.sampling import Sampler

    note_step = Sampler.note_step

    def fixed_times(
        self: Sampler, step: int, wall: float, always: float, cost: float, sampled: bool
    ):
        return note_step(self, step, 1.5e-3, 0.5e-3, 0.0, sampled)  # a 1 ms step, 0.5 ms own

    monkeypatch.setattr(Sampler, "note_step", fixed_times)
    model = _mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    with nndoctor.watch(model, opt, every=every, quiet=True) as w:
        _train(model, opt, 40)
    said = [n for n in w.report.notes if "always-on part" in n]
    if every is None:
        assert len(said) == 1 and "cost 50 % of this run's step time" in said[0]
        assert "0.50 ms of host time per step against a step of 1.00 ms" in said[0]
    else:
        assert said == []  # a fixed period is the user's choice: nothing to say about budget


class SqrtAbs(nn.Module):
    """|x| as sqrt(x * x): finite forward, but 0 * inf = NaN in the backward at x = 0."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sqrt(x * x)


class Rooted(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Linear(20, 32, bias=False)
        self.magnitude = SqrtAbs()
        self.head = nn.Linear(32, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.magnitude(self.embed(x)))


def test_a_nan_made_in_the_backward_pass_names_the_module_whose_forward_made_the_op() -> None:
    torch.manual_seed(0)
    model = Rooted()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    x, y = _data()

    def batches(step: int) -> tuple[torch.Tensor, torch.Tensor]:
        xb = x[:64].clone()
        if step == 25:
            xb[5] = 0.0  # a zero row: embed's output is exactly 0 there
        return xb, y[:64]

    with nndoctor.watch(model, opt, quiet=True) as w:
        _train(model, opt, 30, batches=batches)
    (f,) = w.report.by_check("watch-non-finite")
    assert f.where.step == 25 and f.evidence["op_phase"] == "backward"
    assert f.where.op is not None and f.where.module == "magnitude", f.message
    assert "in module magnitude, in the backward pass" in f.message
