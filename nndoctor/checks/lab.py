"""The lab: what experiments use to train and evaluate *copies* of the subject.

Nothing here touches the user's model or optimizer: every model handed out is a
deep copy restored to the initial state, and the random state is forked around
each experiment by the engine.
"""

from __future__ import annotations

import contextlib
import inspect
import math
import os
import statistics
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.utils._pytree import tree_flatten

from nndoctor.capture.replay import (
    ReplayPlan,
    ReplayResult,
    ReplayServer,
    loss_fit,
    run_replay,
    run_replays,
)
from nndoctor.capture.source_calls import CallSite, attribute_calls
from nndoctor.copying import deepcopy_detached, redraw_by_default, set_training
from nndoctor.probes.internals import state_restored_at_each_call
from nndoctor.probes.recording import StepRecord
from nndoctor.probes.trace import OpEvent, nonfinite_traced
from nndoctor.report.series import ExperimentCurves
from nndoctor.subject import (
    OptimizerSpec,
    Subject,
    Task,
    batch_size_of,
    cuttable,
    dealt_rows,
    move_to,
    positional_call,
    same_tensors,
    slice_batch,
    switch_off_dropout,
    take_samples,
)

# The known-good optimiser of the tiny-batch experiments.
KNOWN_GOOD_LR = 1e-3
# Why an experiment that calls the model on its positional arguments alone cannot run.
NO_POSITIONAL_CALL = (
    "the model was called with keyword arguments only, or with keyword arguments it needs; "
    "no positional input alone replays its call"
)


@dataclass
class Delay:
    """A copy that trails another, trained on past the comparison's steps to see when it
    gets to where the other got: ``caught_up_at`` is the first step at which its loss (a
    mean over ``window`` consecutive steps) reaches ``level``, None if not within ``steps``.
    A delay that is a small share of the run the script plans is a cost, not a stall."""

    steps: int  # the steps the trailing copy was trained
    planned: int  # the steps the script's loops plan
    compared_at: int  # the steps of the comparison it trailed in
    level: float
    caught_up_at: int | None

    @property
    def delay(self) -> int | None:
        return None if self.caught_up_at is None else max(0, self.caught_up_at - self.compared_at)

    def describe(self, trailing: str, leading: str) -> str:
        return self.describe_reaching(
            trailing, f"reaches the {self.level:.4g} {leading} reached in {self.compared_at} steps"
        )

    def describe_reaching(self, trailing: str, reaches: str) -> str:
        """The delay in words: ``trailing`` (the copy) ``reaches`` (a verb phrase: "reaches
        the 0.1 Adam reached in 150") or never does."""
        if self.caught_up_at is None:
            over = self.steps - self.compared_at
            return (
                f"trained on for {self.steps} steps, {trailing} never {reaches}: a delay of "
                f"over {over} steps ({over / self.planned:.1%} of the {self.planned} the "
                "script plans)"
            )
        delay = self.caught_up_at - self.compared_at
        return (
            f"trained on, {trailing} {reaches} at step {self.caught_up_at}: a delay of "
            f"{delay} steps, {delay / self.planned:.1%} of the {self.planned} the script plans"
        )

    def evidence(self) -> dict[str, float | int | None]:
        return {
            "planned_steps": self.planned,
            "catch_up_steps_trained": self.steps,
            "caught_up_at_step": self.caught_up_at,
            "delay_steps": self.delay,
        }


def delay_steps(horizon: Any, compared_at: int, share: float, most: int) -> int | None:
    """How long a trailing copy may train to show it only trails: the comparison's steps and
    ``share`` of the run the script's loops plan, at most ``most`` in all; None where the
    plan is unknown or inexact (a step under a condition) or allows no more steps."""
    if horizon is None or not horizon.exact:
        return None
    steps = min(most, compared_at + math.floor(share * horizon.steps))
    return steps if steps > compared_at else None


def trailing_delay(
    horizon: Any,
    compared_at: int,
    level: float,
    window: int,
    t: Any,
    train_on: Callable[[int], list[float] | None],
) -> Delay | None:
    """How far a copy that trailed at ``compared_at`` steps lags: ``train_on(steps)`` trains
    it for the steps :func:`delay_steps` allows and returns its losses (fewer than asked
    where it stopped early; None where it failed), and the first ``window``-step mean at or
    below ``level`` is where it caught up. None where the plan allows no such run or the
    run gave no loss: nothing was measured."""
    steps = delay_steps(horizon, compared_at, t.horizon_delay_share, t.horizon_delay_max_steps)
    if steps is None:
        return None
    losses = train_on(steps)
    if not losses:
        return None
    caught = first_reaching(losses, level, window)
    trained = max(min(len(losses), steps), compared_at)
    return Delay(trained, horizon.steps, compared_at, level, caught)


def first_reaching(curve: list[float], level: float, window: int) -> int | None:
    """The step (counted from 1) that ends the first ``window`` consecutive losses whose mean
    is at or below ``level``; None if none does."""
    for i in range(len(curve) - window + 1):
        part = curve[i : i + window]
        if all(math.isfinite(v) for v in part) and sum(part) / window <= level:
            return i + window
    return None


class ExperimentCrashed(RuntimeError):
    """An experiment on a copy failed before it could measure anything; the engine reports
    the check as crashed, never as a finding about the user's model."""


@dataclass
class TrainResult:
    losses: list[float] = field(default_factory=list)
    diverged: bool = False
    error: str | None = None
    # For a run that turned non-finite: the first operation making a non-finite value, found by
    # redoing the run with the last finite step and the bad one traced (see Lab.trace_divergence).
    trace: OpEvent | None = None
    # The lowest loss the run's batches allow, where it depends on their targets (Poisson
    # counts, soft binary targets); NaN where it is the loss's own floor (Lab.loss_floor).
    floor: float = math.nan

    @property
    def nonfinite_step(self) -> int | None:
        """The step whose loss was first non-finite."""
        return len(self.losses) - 1 if self.diverged and self.losses else None

    @property
    def initial(self) -> float:
        return self.losses[0] if self.losses else math.nan

    @property
    def final(self) -> float:
        # The mean of the last few steps damps the noise of a single step.
        tail = [x for x in self.losses[-5:] if math.isfinite(x)]
        return sum(tail) / len(tail) if tail else math.nan

    @property
    def best(self) -> float:
        finite = [x for x in self.losses if math.isfinite(x)]
        return min(finite) if finite else math.nan

    @property
    def best_held(self) -> float:
        """The lowest mean of five consecutive losses (the window ``final`` reads): a level
        the run held for that long, not one lucky step."""
        xs = self.losses
        if len(xs) < 5:
            return self.final
        means = [
            sum(xs[i : i + 5]) / 5
            for i in range(len(xs) - 4)
            if all(math.isfinite(x) for x in xs[i : i + 5])
        ]
        return min(means) if means else math.nan


def training_modes(steps: list[StepRecord]) -> frozenset[str]:
    """The modules in eval() mode at the first observed training forward (a
    ``StepRecord.modules_in_eval``): how the script meant its model to train, before any
    evaluation pass could leave it in the wrong mode."""
    first = next((s for s in steps if s.forwards > 0), None)
    return frozenset(first.modules_in_eval) if first is not None else frozenset()


# Small CPU models train many times faster on one thread: the per-op work is too small to
# share, and with two or more threads OpenMP barriers dominate (measured 0.2 s against 27 s
# for 150 steps of a small MLP on a busy two-core machine). Threads spinning at a barrier
# also burn processor time that the experiment budget would count.
SINGLE_THREAD_MAX_PARAMS = 2_000_000


class Lab:
    """Copies, tiny batches and short training runs for experiments."""

    def __init__(
        self,
        subject: Subject | None,
        initial_state: dict[str, torch.Tensor] | None = None,
        device: str | torch.device | None = None,
        unavailable_reason: str = "",
        *,
        model: nn.Module | None = None,
        model_inputs: list[Any] | None = None,
        model_calls: list[tuple[tuple[Any, ...], dict[str, Any]]] | None = None,
        call_targets: list[tuple[tuple[Any, ...], dict[str, Any], Any]] | None = None,
        script: tuple[str, list[str]] | None = None,
        task: Task | None = None,
        datasets: dict[int, Any] | None = None,
        replay_timeout: float = 120.0,
        replay_server: ReplayServer | None = None,
        replay_seed: int | None = None,
        other_models: list[tuple[str, nn.Module, tuple[Any, ...]]] | None = None,
        modules_in_eval: frozenset[str] = frozenset(),
        source_paths: tuple[str, ...] = (),
        trained_state: dict[str, torch.Tensor] | None = None,
    ) -> None:
        self.subject = subject
        # The model's parameters and buffers as the observed steps left them (None where
        # not known): what the steps did, beside the initial state copies start from.
        self._trained_state = trained_state
        # The script's source files (the script and the modules it imported from its
        # folder), read for the calls its own code makes (see source_calls); none for a
        # subject given through the API.
        self.source_paths = source_paths
        # The modules the script kept in eval() mode while it trained (a frozen backbone's
        # BatchNorm, a linear probe on a model in eval()): copies train the same way, or an
        # experiment would measure a different network from the one the script trains.
        self.modules_in_eval = modules_in_eval
        # Other trained networks the script called (a decoder, a GAN's second network):
        # (class name, a copy at its first training call, that call's positional arguments).
        self._other_models = other_models or []
        # Without a replayable loss, a model and the inputs it was called with still
        # allow experiments that need no loss (gradient check, batch independence).
        self._model = model if model is not None else (subject.model if subject else None)
        self._model_inputs = model_inputs
        # The same calls with their keyword arguments (``model(**batch)`` included).
        self._model_calls = model_calls
        # Each kept step's model call (positional and keyword arguments) with the target of
        # its first recognised loss.
        self._call_targets = call_targets
        # An observed script can be re-run with substitutions when nothing else works.
        self.script = script
        # A replay is the script run again: it gets the wall-clock limit the script had.
        self.replay_timeout = replay_timeout
        # Forks each replay from a process that has imported torch already (the caller
        # owns and closes it); None: every replay is a new interpreter.
        self.replay_server = replay_server
        # Each replay seeds torch, numpy and random as the observed run was seeded: an
        # unseeded script then replays the same way every time, and the replays of one
        # experiment see the same data order and initial weights.
        self.replay_seed = replay_seed
        # The processor seconds all replays so far used: the engine adds them to its own
        # when it counts an experiment against the budget.
        self.replay_cpu_seconds = 0.0
        self._task = task if task is not None else Task()
        # Datasets behind the observed DataLoaders (by loader index), for data experiments.
        self.datasets = datasets or {}
        self._memo: dict[str, Any] = {}
        self._initial_state = initial_state
        first = next(self._model.parameters(), None) if self._model is not None else None
        default = first.device if first is not None else torch.device("cpu")
        self.device = torch.device(device) if device is not None else default
        self.unavailable_reason = unavailable_reason
        self._batches: list[Any] | None = None
        # Curves experiments hand back for the plots and the HTML report (plain data).
        self.curves: list[ExperimentCurves] = []

    def hand_back(self, curves: ExperimentCurves) -> ExperimentCurves:
        """Keep an experiment's curves for the report's charts; returns them, so that a
        check can add a curve (a fallback run) to the same chart later."""
        self.curves.append(curves)
        return curves

    @property
    def available(self) -> bool:
        return self.subject is not None

    def initial_state(self) -> dict[str, torch.Tensor] | None:
        if self._initial_state is not None:
            return self._initial_state
        if self.subject is not None:
            return self.subject.model.state_dict()
        return None

    def tensors_now(self) -> dict[str, torch.Tensor]:
        """The model's parameters and buffers as they stand, by name, without a copy: for
        what training leaves where it was (frozen parameters)."""
        return self._model.state_dict() if self._model is not None else {}

    @property
    def task(self) -> Task:
        return self.subject.task if self.subject is not None else self._task

    # -- the tiny-batch runs several experiments share ------------------------------------
    def fits(self, result: TrainResult, t: Any) -> bool:
        """Whether a tiny-batch run fit: near-zero classification loss, or a tenth of the start."""
        if not result.losses or result.error or result.diverged:
            return False
        floor = result.floor if math.isfinite(result.floor) else None
        return self.fits_loss(result.initial, result.final, t, floor=floor)

    def fits_loss(
        self, initial: float, final: float, t: Any, *, floor: float | None = None
    ) -> bool:
        """The same rule for one loss against the loss the run started from, both measured
        above the lowest loss the objective allows (label smoothing raises it above zero;
        ``floor``, where the batches' targets set it: Poisson counts)."""
        rule = self.fit_rule(t, floor=floor)
        return loss_fit(
            initial,
            final,
            fraction=rule["fraction"],
            floor=rule["floor"],
            absolute=rule["absolute"],
        )

    def fit_rule(self, t: Any, *, floor: float | None = None, scale: float = 1.0) -> dict[str, Any]:
        """The rule of :meth:`fits_loss` as a replay takes it (``fit_rule`` of a plan), for
        losses that are ``scale`` times the criterion's (accumulated micro-batches)."""
        classification = self.task.kind in ("classification", "binary", "multilabel")
        return {
            "fraction": t.overfit_target_fraction,
            "floor": self.loss_floor() if floor is None else floor,
            "absolute": t.overfit_ce_target if classification else None,
            "scale": scale,
        }

    def loss_floor(self) -> float:
        """The smallest value the loss can take on any data: 0, except for cross-entropy with
        label smoothing ε over C classes, whose targets keep ε/C on every class, so the loss
        cannot fall below the entropy of that target distribution."""
        eps = self.subject.smoothing() if self.subject is not None else 0.0
        classes = self.task.num_classes or 0
        if eps <= 0 or classes < 2 or self.task.kind != "classification":
            return 0.0
        other = eps / classes
        true = 1.0 - eps + other
        return -(true * math.log(true) + (classes - 1) * other * math.log(other))

    def floor_of(self, batches: list[Any]) -> float:
        """The mean over ``batches`` of the lowest loss their targets allow, where the loss
        says (``Subject.loss_floor``); NaN otherwise."""
        if self.subject is None:
            return math.nan
        floors = [self.subject.loss_floor(b) for b in batches]
        if not floors or any(f is None for f in floors):
            return math.nan
        return sum(f for f in floors if f is not None) / len(floors)

    @staticmethod
    def came_far(result: TrainResult) -> bool:
        """A run whose loss fell at some point to below half of where it started: the model
        learns on this batch, whatever the loss did after (a VQ-VAE's codebook loss spikes
        while its codes catch up with the encoder, then falls again)."""
        losses = [x for x in result.losses if math.isfinite(x)]
        if len(losses) < 20 or result.error or result.diverged:
            return False
        return result.best < 0.5 * result.initial

    def still_learning(self, result: TrainResult, t: Any) -> bool:
        """A run that came far and is still clearly falling over its last third: slow, not
        stuck. The median of its last tenth lies ``overfit_still_falling`` below the median of
        the tenth that ends two thirds in; medians, so that a spike at either window decides
        nothing."""
        if not self.came_far(result):
            return False
        losses = [x for x in result.losses if math.isfinite(x)]
        n = len(losses)
        tenth = max(n // 10, 1)
        mark = 2 * n // 3
        before = losses[mark - tenth : mark]
        return last_tenth_median(losses) < (1 - t.overfit_still_falling) * statistics.median(before)

    def stochastic_forward(self) -> bool:
        """Whether the model's output is random by design (a sampled latent, injected noise): two
        forwards of one input under different seeds disagree, in eval mode or in the mode the
        experiments train in (training mode, the regularisers they switch off at zero: noise
        layers, augmentation or mixup inside ``forward`` stay on). Its loss then has a floor
        above zero, however well it fits."""

        def compute() -> bool:
            return any(
                outs is not None
                and any(
                    not torch.allclose(a, b, rtol=1e-5, atol=1e-7)
                    for a, b in zip(*outs, strict=False)
                )
                for outs in (self._two_eval_forwards((1, 2)), self._two_training_forwards((1, 2)))
            )

        return bool(self.memo("stochastic-forward", compute))

    def forward_carries_state(self) -> bool:
        """Whether the model's forward writes state that its next call reads (a queue of
        negatives, a memory bank, a momentum encoder updated inside it): two eval-mode
        forwards of one input under the same seed disagree. On one fixed batch such a model
        is trained against what it wrote from that batch before (its own keys as negatives),
        so what it can fit there says nothing of what it learns from the data."""

        def compute() -> bool:
            outs = self._two_eval_forwards((1, 1))
            return outs is not None and any(
                not torch.equal(a, b) for a, b in zip(*outs, strict=False)
            )

        return bool(self.memo("forward-carries-state", compute))

    def eval_copy(self) -> tuple[nn.Module, Callable[[], Any]] | None:
        """A fresh copy of the model in eval mode and a call of it on the first recorded
        model input (gradients as the caller sets them); None without a model or an input."""
        calls = self.model_inputs(1) if self._model is not None else []
        if not calls:
            return None
        model = set_training(self.fresh_model(), False)
        return model, lambda: model(*calls[0])

    def _two_eval_forwards(
        self, seeds: tuple[int, int]
    ) -> tuple[list[torch.Tensor], list[torch.Tensor]] | None:
        """The float outputs of two successive eval-mode forwards of one fresh copy on the
        first recorded input, each under its seed; None without a model input."""
        copy = self.eval_copy()
        return None if copy is None else self._two_forwards(copy[1], seeds)

    def _two_training_forwards(
        self, seeds: tuple[int, int]
    ) -> tuple[list[torch.Tensor], list[torch.Tensor]] | None:
        """As :meth:`_two_eval_forwards`, on a fresh copy in training mode with its dropout at
        zero, as the tiny-batch experiments train it; None too where that forward raises."""
        calls = self.model_inputs(1) if self._model is not None else []
        if not calls:
            return None
        model = set_training(self.fresh_model(), True)
        switch_off_dropout(model)
        try:
            return self._two_forwards(lambda: model(*calls[0]), seeds)
        except Exception:  # noqa: BLE001 - a forward that fails in training mode tells nothing
            return None

    def _two_forwards(
        self, run: Callable[[], Any], seeds: tuple[int, int]
    ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """The float output tensors of ``run()`` under each seed, without gradients."""
        outs = []
        with torch.no_grad():
            for seed in seeds:
                with same_noise(self.device, seed):
                    out = run()
                leaves, _ = tree_flatten(out)
                outs.append(
                    [t for t in leaves if isinstance(t, torch.Tensor) and t.is_floating_point()]
                )
        return outs[0], outs[1]

    def deserves_longer_run(self, result: TrainResult, t: Any) -> bool:
        """A tiny-batch run that did not fit but came far (:meth:`came_far`): it is redone
        ``overfit_extension`` times longer before it is judged, whatever its last steps did
        (a slow fall, or a spike it recovers from). Decided by the losses alone, never by the
        time left, so a loaded machine reaches the same verdict as a quiet one."""
        return not self.fits(result, t) and self.came_far(result)

    def _overfit(self, t: Any, optimizer: OptimizerSpec | None) -> TrainResult:
        batch = [self.tiny_batch(t.overfit_batch_size)]
        result = self.train(batch, t.overfit_steps, optimizer=optimizer, regularisation=False)
        if self.deserves_longer_run(result, t):
            result = self.train(
                batch,
                t.overfit_steps * t.overfit_extension,
                optimizer=optimizer,
                regularisation=False,
            )
        if result.diverged:
            result.trace = self.trace_divergence(
                result, batch, optimizer=optimizer, regularisation=False
            )
        return result

    def trace_divergence(
        self,
        result: TrainResult,
        batches: list[Any],
        *,
        optimizer: OptimizerSpec | None = None,
        regularisation: bool = True,
    ) -> OpEvent | None:
        """Redo a run that turned non-finite, with its last finite step (backward and update)
        and the bad forward traced op by op: the first operation making a non-finite value,
        the module running it and the code line. None if the redo does not diverge again at
        the same step (a random forward), or nothing non-finite is traced."""
        bad = result.nonfinite_step
        if bad is None or bad == 0:
            return None
        redo = self.train(
            batches,
            bad + 1,
            optimizer=optimizer,
            regularisation=regularisation,
            trace_from=bad - 1,
        )
        return redo.trace if redo.nonfinite_step == bad else None

    def overfit_user(self, t: Any) -> TrainResult:
        """The user's optimiser on the tiny batch, regularisation off (run once per check run);
        a run that came far without fitting is redone ``overfit_extension`` times longer."""
        return self.memo("overfit-user", lambda: self._overfit(t, None))

    def overfit_known_good(self, t: Any) -> TrainResult:
        """Adam(lr=1e-3) on the same tiny batch, regularisation off (run once per check run)."""
        spec = OptimizerSpec.of(torch.optim.Adam, lr=KNOWN_GOOD_LR)
        return self.memo("overfit-known-good", lambda: self._overfit(t, spec))

    def memo(self, key: str, compute: Callable[[], Any]) -> Any:
        """Run an experiment once per check run; several checks may read its result."""
        if key not in self._memo:
            self._memo[key] = compute()
        return self._memo[key]

    def replay(self, mode: str, **plan: Any) -> ReplayResult:
        """Re-run the observed script in a subprocess (see nndoctor.capture.replay)."""
        result = run_replay(self._plan(mode, plan), self.replay_server)
        self.replay_cpu_seconds += result.cpu_seconds
        return result

    def overfit_replay(self, t: Any, scale: float) -> ReplayResult:
        """The script replayed on one tiny batch (``overfit_steps``, ending once fit), once
        per check run: the tiny-batch experiment judges it, and the replayed shuffled-label
        experiment asks it whether the model learns at all."""

        def replayed() -> ReplayResult:
            plan = {
                "steps": t.overfit_steps,
                "batch_size": t.overfit_batch_size,
                "fit_rule": self.fit_rule(t, scale=scale),
            }
            result = self.replay("overfit", **plan)
            if result.batch_cut and result.error and not result.timed_out:
                # Rows cut by hand to the tiny batch met a size the script fixed (noise
                # drawn for its own batch size): the script's own batch, uncut, is replayed.
                result = self.replay("overfit", **plan, overrides={"uncut": True})
            return result

        return self.memo("overfit-replay", replayed)

    def noise_replays(self, steps: int) -> tuple[ReplayResult, ReplayResult]:
        """The script replayed as written for ``steps`` steps side by side, on its data and
        with every tensor its model is handed replaced by noise like it (see
        ``_InputNoise`` in the replay child), once per check run: two checks read them."""

        def replayed() -> tuple[ReplayResult, ReplayResult]:
            plans = [{"lr_scale": 1.0}, {"lr_scale": 1.0, "noise_inputs": True}]
            real, noise = self.replays("rate", [{"steps": steps, "overrides": o} for o in plans])
            return real, noise

        return self.memo(f"noise-replays-{steps}", replayed)

    def replays(self, mode: str, plans: list[dict[str, Any]]) -> list[ReplayResult]:
        """Several independent replays of one experiment (``plans``: each replay's plan
        fields), run side by side where the model trains on the CPU, one core each, and
        one after another on an accelerator, whose memory they would share."""
        full = [self._plan(mode, p) for p in plans]
        parallel = min(len(full), os.cpu_count() or 1) if self.device.type == "cpu" else 1
        results = run_replays(full, self.replay_server, parallel)
        self.replay_cpu_seconds += sum(r.cpu_seconds for r in results)
        return results

    def _plan(self, mode: str, fields: dict[str, Any]) -> ReplayPlan:
        """A replay of the observed script; it gets the script's wall-clock limit unless
        ``fields`` says otherwise, and one thread for a small model on the CPU, as the
        experiments in this process do."""
        assert self.script is not None
        script, argv = self.script
        defaults = {
            "timeout": self.replay_timeout,
            "seed": self.replay_seed,
            "threads": 1 if self.small_on_cpu else None,
        }
        return ReplayPlan(script=script, argv=argv, mode=mode, **{**defaults, **fields})

    @property
    def small_on_cpu(self) -> bool:
        """Whether experiments train this model on one thread (see SINGLE_THREAD_MAX_PARAMS)."""
        return (
            self.has_model
            and self.device.type == "cpu"
            and self.parameter_count() <= SINGLE_THREAD_MAX_PARAMS
        )

    def parameter_count(self) -> int:
        return sum(p.numel() for p in self._model.parameters()) if self._model is not None else 0

    @property
    def has_model(self) -> bool:
        return self._model is not None

    def caller_of(self, path: str, ran: set[str]) -> tuple[nn.Module, str] | None:
        """For submodule ``path`` of the model, which never ran: the module whose code would
        call it, and the attribute it is held by there. That is the outermost module on the
        path that never ran (``domain_classifier`` for ``domain_classifier.0``), held by the
        nearest module above it that is no container (a ModuleList or Sequential runs its
        children, or is iterated by its owner's code under its own name). None without a
        model or for a path the model does not have."""
        if self._model is None or not path:
            return None
        modules = dict(self._model.named_modules())
        parts = path.split(".")
        cut = next(
            (i for i in range(1, len(parts) + 1) if ".".join(parts[:i]) not in ran), len(parts)
        )
        owner, attr = parts[: cut - 1], parts[cut - 1]
        while owner and isinstance(
            modules.get(".".join(owner)), nn.ModuleList | nn.ModuleDict | nn.Sequential
        ):
            owner, attr = owner[:-1], owner[-1]
        held = modules.get(".".join(owner))
        return (held, attr) if held is not None and path in modules else None

    def calls_in_source(self, attr: str) -> list[CallSite]:
        """Where the script's own code calls a module held by attribute ``attr`` with
        gradients on (``model.aux_head(h)`` in its training loop); none without a script."""
        return attribute_calls(self.source_paths, attr) if attr else []

    def model_inputs(self, n: int = 1) -> list[Any]:
        """Positional-argument tuples the model was called with (first ``n`` batches), its
        keyword arguments put in their places (see ``positional_call``); none when a call
        cannot be made by position (keyword arguments only, a keyword-only one it needs)."""
        if self._model_inputs is not None:
            return [move_to(a, self.device) for a in self._model_inputs[:n]]
        if self.subject is None:
            return []  # the model was called with keyword arguments only
        out = []
        for b in self.batches(n):
            x = self.subject.inputs(b)
            if isinstance(x, dict):
                return []
            args = positional_call(
                self.subject.model,
                x if isinstance(x, tuple) else (x,),
                self.subject.call_keywords(b),
            )
            if args is None:
                return []
            out.append(args)
        return out

    def calls_with_targets(self, n: int = 1) -> list[tuple[tuple[Any, ...], dict[str, Any], Any]]:
        """(positional arguments, keyword arguments, target of the first recognised loss) of
        the model's call at the first ``n`` training steps kept, on the lab's device."""
        if self._call_targets is not None:
            return [move_to(c, self.device) for c in self._call_targets[:n]]
        if self.subject is None:
            return []
        out = []
        for b in self.batches(n):
            x = self.subject.inputs(b)
            args, kwargs = (
                ((), dict(x))
                if isinstance(x, dict)
                else (x if isinstance(x, tuple) else (x,), self.subject.call_keywords(b))
            )
            out.append((args, kwargs, self.subject.targets(b)))
        return out

    def input_target_pairs(self, n: int = 8) -> list[tuple[Any, Any]]:
        """(the model's first input, the target of the step's first recognised loss) of the
        first ``n`` training steps kept: for checks that compare a target with its input."""
        return [(args[0], target) for args, _, target in self.calls_with_targets(n) if args]

    def initial_weights_finite(self) -> bool | None:
        """Whether every weight of the model, as it was when the observed training began,
        is finite (None without a model)."""
        if self._model is None:
            return None
        with torch.no_grad():
            return all(bool(torch.isfinite(p).all()) for p in self._model.parameters())

    def model_calls(self, n: int = 1) -> list[tuple[tuple[Any, ...], dict[str, Any]]]:
        """The (positional, keyword) arguments the model was called with (first ``n``
        batches), keyword-only calls (``model(**batch)``) included."""
        if self._model_calls is not None:
            return [
                (tuple(move_to(a, self.device)), dict(move_to(k, self.device)))
                for a, k in self._model_calls[:n]
            ]
        if self._model_inputs is not None:
            return [(tuple(a), {}) for a in self.model_inputs(n)]
        if self.subject is None:
            return []
        out: list[tuple[tuple[Any, ...], dict[str, Any]]] = []
        for b in self.batches(n):
            x = self.subject.inputs(b)
            if isinstance(x, dict):
                out.append(((), dict(x)))
            else:
                out.append((x if isinstance(x, tuple) else (x,), self.subject.call_keywords(b)))
        return out

    def other_models(self) -> list[tuple[str, nn.Module, tuple[Any, ...]]]:
        """Fresh copies of the other trained networks, each with the positional arguments
        of its first training call, on the lab's device."""
        return [
            (name, deepcopy_detached(model).to(self.device), move_to(args, self.device))
            for name, model, args in self._other_models
        ]

    def fresh_model(self, dtype: torch.dtype | None = None) -> nn.Module:
        """A deep copy of the subject's model at its initial state, on the lab's device."""
        assert self._model is not None
        model = deepcopy_detached(self._model)
        state = self._initial_state
        if state is not None:
            model.load_state_dict(state)
        model = model.to(self.device)
        if dtype is not None:
            model = model.to(dtype)
        return self.training_mode(model)

    def default_initialised_model(self, seed: int = 0) -> nn.Module:
        """A fresh copy whose every module that has ``reset_parameters`` was re-drawn by it
        (PyTorch's own initialisation, seeded, the caller's random streams untouched):
        the healthy twin of a custom initialisation. Parameters of modules without it
        (a hand-made ``nn.Parameter`` on a custom module) keep their initial values."""
        model = self.fresh_model()
        with same_noise(self.device, seed):
            redraw_by_default(model)
        return model

    def training_mode(self, model: nn.Module) -> nn.Module:
        """Put ``model`` (a copy of the subject's model) in the modes the script trained
        it in: train(), except the modules the script kept in eval()."""
        set_training(model, True)
        if self.modules_in_eval:
            for name, module in model.named_modules():
                if name in self.modules_in_eval:
                    set_training(module, False)
        return model

    def batches(self, n: int = 4) -> list[Any]:
        assert self.subject is not None
        if self._batches is None or len(self._batches) < n:
            self._batches = [move_to(b, self.device) for b in self.subject.take_batches(n)]
        return self._batches[:n]

    def small_batches(self, n: int, size: int) -> list[Any]:
        """The first ``n`` batches, each cut to ``size`` samples: experiments that train
        several copies stay cheap whatever the user's batch size. Where the batches are one
        batch repeated (full-batch training), they are no ``n`` batches but one: its rows
        are dealt out instead, every ``n``-th row to the same small batch
        (:func:`dealt_rows`), so that no two share a sample (a copy trained on some of them
        and asked about the others is asked about samples it never saw) and each spreads
        over the whole batch (the first rows of a set in its own order, a sorted grid, are
        neighbours, no sample of its spread). A whole graph, which no cut keeps a graph, has
        its labelled rows dealt when the script's subject is built
        (``capture.subject.labelled_row_subsets``) instead."""
        assert self.subject is not None
        batches = self.batches(n)
        rows = batch_size_of(batches[0], self.subject) if batches else None
        if (
            rows is None
            or len(batches) < 2
            or not cuttable(batches[0], self.subject)
            or not self._one_batch_repeated(batches)
        ):
            return [slice_batch(b, size, self.subject) for b in batches]
        dealt = [
            take_samples(batches[0], index, self.subject) for index in dealt_rows(rows, n, size)
        ]
        return [b for b in dealt if batch_size_of(b, self.subject)]

    def _one_batch_repeated(self, batches: list[Any]) -> bool:
        """Whether ``batches`` all hold the same model inputs and targets, value for value."""
        subject = self.subject
        assert subject is not None
        parts = [(subject.inputs(b), subject.targets(b)) for b in batches]
        return all(same_tensors(p, parts[0]) for p in parts[1:])

    def tiny_batch(self, size: int) -> Any:
        """``size`` samples of the first batch, evenly spaced over it (``spread_rows``): a
        recognised loss is a mean over samples that couples no rows, so which rows make the
        tiny batch matters only for how distinct they are, and the first rows of a batch in
        the data set's order (a sorted set trained whole at every step) are neighbours."""
        batch = self.batches(1)[0]
        return slice_batch(batch, size, self.subject, spread=True)  # type: ignore[arg-type]

    def loss(self, model: nn.Module, batch: Any) -> torch.Tensor:
        """The loss as the script back-propagates it (divided over accumulated
        micro-batches where the script divides it): what copies step on."""
        assert self.subject is not None
        loss = self.subject.compute_loss(model, batch)
        return loss if self.loss_scale == 1.0 else loss * self.loss_scale

    @property
    def loss_scale(self) -> float:
        return self.subject.loss_scale if self.subject is not None else 1.0

    def optimizer_spec(self) -> OptimizerSpec:
        assert self.subject is not None and self.subject.optimizer is not None
        return self.subject.optimizer

    def train(
        self,
        batches: list[Any],
        steps: int,
        *,
        optimizer: OptimizerSpec | None = None,
        overrides: dict[str, Any] | None = None,
        regularisation: bool = True,
        model: nn.Module | None = None,
        loss_fn: Callable[[nn.Module, Any], torch.Tensor] | None = None,
        trace_from: int | None = None,
        after_step: Callable[[int, nn.Module], None] | None = None,
    ) -> TrainResult:
        """Train a fresh copy for ``steps`` steps cycling over ``batches``; the loss per step.

        ``regularisation=False`` switches dropout and weight decay off. From step
        ``trace_from`` on, every op is traced for the first non-finite value (slow: offline
        diagnosis of a run that diverged), kept in the result's ``trace``. ``after_step``
        is called with the steps taken and the model after every step (to look at the
        copy on the way; it must leave the model as it found it).
        """
        model = model if model is not None else self.fresh_model()
        if not regularisation:
            switch_off_dropout(model)
        spec = optimizer or self.optimizer_spec()
        over = dict(overrides or {})
        if not regularisation and "weight_decay" in spec.hyperparameters()[0]:
            over["weight_decay"] = 0.0
        opt = spec.build(model, **over)
        compute = loss_fn or self.loss
        scale = self.loss_scale if loss_fn is None else 1.0
        result = TrainResult(floor=self.floor_of(batches) if loss_fn is None else math.nan)
        i = 0
        try:
            for i in range(steps):
                traced = trace_from is not None and i >= trace_from and result.trace is None
                with nonfinite_traced(model) if traced else contextlib.nullcontext() as tracer:
                    opt.zero_grad(set_to_none=True)
                    batch = batches[i % len(batches)]
                    loss = compute(model, batch)
                    # Recorded in the loss's own units, like a chance level or a constant
                    # prediction's loss; stepped on as back-propagated.
                    value = float(loss.detach()) / scale
                    result.losses.append(value)
                    if math.isfinite(value):
                        descend(opt, spec, compute, model, batch, loss)
                if tracer is not None and tracer.event is not None:
                    result.trace = tracer.event
                if not math.isfinite(value):
                    result.diverged = True
                    break
                if after_step is not None:
                    after_step(i + 1, model)
        except (RuntimeError, ValueError, IndexError) as exc:
            if i == 0:
                # Not one step could be taken on the copy: the experiment is what failed
                # (the user's own run took its steps), which is no evidence about the model.
                raise ExperimentCrashed(
                    f"a copy could not take one training step: {type(exc).__name__}: {exc}"
                ) from exc
            result.error = f"{type(exc).__name__}: {exc}"
        return result

    def objective_as_left(self, optimised: set[str], n: int = 4) -> tuple[float, float] | None:
        """The mean loss on the first ``n`` captured batches of two copies that hold the
        objective as the observed run left it (the buffers, and the parameters no optimizer
        steps: a queue of negatives, a momentum encoder), one with the ``optimised``
        parameters as trained, one with them as they were when the observed training
        began: (trained, at the start). Whether the steps made the model worse at one fixed
        task, where the run's own loss moves with its objective too. None without a
        replayable subject, the two states, or where a copy cannot be evaluated."""
        initial = self.initial_state()
        if self.subject is None or self._trained_state is None or initial is None:
            return None
        now = self._trained_state
        start = {**now, **{k: v for k, v in initial.items() if k in optimised}}
        batches = self.batches(n)
        means = []
        for state in (now, start):
            model = self.fresh_model()
            try:
                model.load_state_dict(state)
                with torch.no_grad(), state_restored_at_each_call(model):
                    with same_noise(self.device):
                        means.append(statistics.fmean(self.evaluate(model, batches)))
            except (RuntimeError, ValueError, TypeError, IndexError, KeyError):
                return None
        return means[0], means[1]

    @torch.no_grad()
    def evaluate(self, model: nn.Module, batches: list[Any]) -> list[float]:
        """The loss on each batch in its own units (not divided over micro-batches)."""
        return [float(self.loss(model, b)) / self.loss_scale for b in batches]


def last_tenth_median(losses: list[float]) -> float:
    """The median of the last tenth of a run's finite losses (NaN without any): where a run
    ended, a spike at its last step deciding nothing."""
    finite = [x for x in losses if math.isfinite(x)]
    return statistics.median(finite[-max(len(finite) // 10, 1) :]) if finite else math.nan


def descend(
    opt: torch.optim.Optimizer,
    spec: OptimizerSpec,
    compute: Callable[[nn.Module, Any], torch.Tensor],
    model: nn.Module,
    batch: Any,
    loss: torch.Tensor,
) -> None:
    """One optimizer step of a copy from the loss ``compute`` gave on ``batch``: backward,
    the script's clipping, and the step, with a closure for optimizers that need one (LBFGS
    evaluates the loss again as often as it likes within one step)."""
    loss.backward()
    spec.clip_gradients(model)
    if needs_closure(opt):
        opt.step(_closure(opt, spec, compute, model, batch, first=loss))
    else:
        opt.step()


def needs_closure(opt: torch.optim.Optimizer) -> bool:
    """Whether ``opt.step`` must be given a closure that re-evaluates the loss (LBFGS)."""
    try:
        closure = inspect.signature(opt.step).parameters.get("closure")
    except (TypeError, ValueError):
        return False
    return closure is not None and closure.default is inspect.Parameter.empty


def _closure(
    opt: torch.optim.Optimizer,
    spec: OptimizerSpec,
    compute: Callable[[nn.Module, Any], torch.Tensor],
    model: nn.Module,
    batch: Any,
    first: torch.Tensor,
) -> Callable[[], torch.Tensor]:
    """The closure of a step whose first evaluation (loss and gradients) already ran: it
    hands that one over, then re-evaluates as the optimizer asks (clipped like the first)."""
    calls = [first]

    def closure() -> torch.Tensor:
        if calls:
            return calls.pop().detach()
        opt.zero_grad(set_to_none=True)
        loss = compute(model, batch)
        loss.backward()
        spec.clip_gradients(model)
        return loss.detach()

    return closure


@contextmanager
def same_noise(device: torch.device | str, seed: int = 0) -> Iterator[None]:
    """Draw every random number inside from a fresh ``seed`` (CPU and the model's CUDA device),
    restoring the streams afterwards: forwards of a stochastic model that are compared with
    each other must draw the same noise."""
    device = torch.device(device)
    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield
