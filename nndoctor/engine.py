"""The engine: observe steps, run the registered checks, assemble the Report.

Two entry points share everything after observation:
- :func:`check` for a declared Subject (the Python API and the pytest plugin);
- :func:`check_script` for an unmodified training script (``nndoctor check``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import os
import random
import time
import traceback
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from nndoctor.capture.phases import script_sources
from nndoctor.capture.replay import ReplayServer
from nndoctor.checks.lab import SINGLE_THREAD_MAX_PARAMS, Lab, training_modes
from nndoctor.checks.registry import CheckContext, CheckSpec, Refutation, SkipCheck, all_checks
from nndoctor.checks.thresholds import DEFAULT_THRESHOLDS, Thresholds
from nndoctor.copying import deepcopy_detached, set_training
from nndoctor.diagnosis import attach as attach_diagnosis
from nndoctor.diagnosis import merge_diagnoses
from nndoctor.probes.recording import Recording
from nndoctor.probes.schedule import recorded_peak
from nndoctor.probes.series import build_series
from nndoctor.probes.training import TrainingProbe
from nndoctor.report.model import CheckResult, Finding, Report, RunInfo, Severity, Status
from nndoctor.report.progress import ProgressEvent
from nndoctor.subject import OptimizerSpec, Subject, Task, positional_call

DEFAULT_STEPS = 20
DEFAULT_TIMEOUT = 120.0


DEFAULT_EXPERIMENT_SECONDS = 40.0


@dataclass(frozen=True)
class Selection:
    """Which checks run: ``select``/``ignore`` hold check ids or reason numbers.

    ``experiment_seconds`` bounds the time spent in experiments: once spent, the
    remaining experiments are skipped and say so.
    """

    select: tuple[str, ...] = ()
    ignore: tuple[str, ...] = ()
    quick: bool = False
    experiment_seconds: float = DEFAULT_EXPERIMENT_SECONDS

    def why_not(self, spec: CheckSpec) -> str | None:
        """None when ``spec`` runs, else why it is left out."""

        def matches(keys: tuple[str, ...]) -> bool:
            return any(k == spec.id or (k.isdigit() and int(k) in spec.reasons) for k in keys)

        if self.select and not matches(self.select):
            return "not selected (--select)"
        if self.ignore and matches(self.ignore):
            return "ignored (--ignore)"
        if self.quick and not spec.quick:
            return "an experiment left out by --quick"
        return None


def versions() -> dict[str, str]:
    from nndoctor import __version__

    return {"nndoctor": __version__, "torch": torch.__version__}


# -- random state ----------------------------------------------------------------------


@contextlib.contextmanager
def preserved_rng(seed: int | None = 0) -> Iterator[None]:
    """Save every RNG the user may rely on, optionally seed, and restore on exit."""
    py_state = random.getstate()
    np_state = np.random.get_state()
    cpu_state = torch.get_rng_state()
    cuda_states = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None
    try:
        if seed is not None:
            torch.manual_seed(seed)
            random.seed(seed)
            np.random.seed(seed)
        yield
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)
        torch.set_rng_state(cpu_state)
        if cuda_states is not None:
            torch.cuda.set_rng_state_all(cuda_states)


# -- running checks --------------------------------------------------------------------


def run_checks(
    subject: Subject | None,
    recording: Recording,
    lab: Lab,
    *,
    thresholds: Thresholds = DEFAULT_THRESHOLDS,
    selection: Selection = Selection(),
    progress: Callable[[ProgressEvent], None] | None = None,
) -> tuple[list[CheckResult], list[Finding]]:
    """Run every registered check; a check that raises is reported as crashed."""
    results: list[CheckResult] = []
    findings: list[Finding] = []
    clock = ExperimentClock(lab)  # before the experiments' own thread setting
    with _experiment_threads(lab):
        _run_each(
            subject, recording, lab, thresholds, selection, progress, clock, results, findings
        )
    findings.sort(key=lambda f: (-f.severity.rank, f.check))
    for crash in recording.crashes:
        results.append(
            CheckResult(
                f"probe:{crash.probe}",
                [],
                "observation",
                Status.CRASHED,
                f"a probe hook raised and was removed: {crash.error}",
            )
        )
    return results, findings


# Lines of the script's own output shown when it could not be observed.
OUTPUT_TAIL_LINES = 20


@contextlib.contextmanager
def _experiment_threads(lab: Lab) -> Iterator[None]:
    with _one_thread(lab.small_on_cpu):
        yield


@contextlib.contextmanager
def _one_thread(small: bool) -> Iterator[None]:
    threads = torch.get_num_threads()
    try:
        if small:
            torch.set_num_threads(1)
        yield
    finally:
        torch.set_num_threads(threads)


class ExperimentClock:
    """What a check costs against the experiment budget: the processor time the check
    process and its replays used, divided by the threads the work can spread over (torch's
    threads where the model is on the CPU, one thread driving an accelerator).

    That is about the seconds the work takes on an idle machine. The wall clock would
    count other work on the machine too, so that a busy one runs out of budget sooner
    and leaves experiments out that an idle one runs: the verdict would depend on the
    load. Processor time does not grow with the load."""

    def __init__(self, lab: Lab) -> None:
        self._lab = lab
        self.spread = max(1, torch.get_num_threads()) if lab.device.type == "cpu" else 1
        self._cpu = 0.0
        self._replays = 0.0

    def start(self) -> None:
        self._cpu = time.process_time()
        self._replays = self._lab.replay_cpu_seconds

    def seconds(self) -> float:
        """Since :meth:`start`."""
        used = time.process_time() - self._cpu + self._lab.replay_cpu_seconds - self._replays
        return used / self.spread


def _run_each(
    subject: Subject | None,
    recording: Recording,
    lab: Lab,
    thresholds: Thresholds,
    selection: Selection,
    progress: Callable[[ProgressEvent], None] | None,
    clock: ExperimentClock,
    results: list[CheckResult],
    findings: list[Finding],
) -> None:
    spent = 0.0
    refuted: dict[str, Refutation] = {}
    specs = ordered_checks()
    if recording.distributed is None:
        # The checks comparing the ranks of a distributed job are no part of a single run.
        specs = [s for s in specs if not s.distributed]
    total = sum(selection.why_not(s) is None for s in specs)
    index = 0
    for spec in specs:
        why = selection.why_not(spec)
        if why is None and spec.kind == "experiment" and spent >= selection.experiment_seconds:
            why = (
                f"the experiment budget of {selection.experiment_seconds:.0f}s was spent "
                "(raise it with --experiment-seconds)"
            )
        if why is not None:
            results.append(CheckResult(spec.id, list(spec.reasons), spec.kind, Status.SKIPPED, why))
            continue
        index += 1
        if progress is not None:
            progress(_check_event(spec, index, total, spent, selection, findings))
        ctx = CheckContext(
            spec=spec,
            subject=subject,
            recording=recording,
            thresholds=thresholds,
            budget="quick" if selection.quick else "default",
            services=lab,
        )
        start = time.perf_counter()
        clock.start()
        handed_back = len(lab.curves)
        try:
            with preserved_rng(seed=0):
                spec.func(ctx)
        except SkipCheck as skip:
            status, detail = Status.SKIPPED, str(skip)
        except Exception as exc:  # noqa: BLE001 - a crashing check is reported, not raised
            status = Status.CRASHED
            detail = _crash_line(exc)
            ctx.detail = traceback.format_exc(limit=-3)
            ctx.findings.clear()  # a check that did not finish concludes nothing
            del lab.curves[handed_back:]
        else:
            serious = [f for f in ctx.findings if f.severity != Severity.INFO]
            status = Status.FAILED if serious else Status.PASSED
            detail = ctx.detail or (f"{len(ctx.findings)} finding(s)" if ctx.findings else "")
        took = time.perf_counter() - start
        counted = clock.seconds() if spec.kind == "experiment" else None
        spent += counted or 0.0
        results.append(
            CheckResult(
                spec.id,
                list(spec.reasons),
                spec.kind,
                status,
                detail,
                took,
                conclusive=ctx.conclusive or status is not Status.PASSED,
                budget_seconds=counted,
            )
        )
        findings.extend(ctx.findings)
        if status is not Status.CRASHED:
            merge_refutations(refuted, ctx.refuted)
    _apply_refutations(refuted, results, findings)
    if progress is not None:
        progress(_check_event(None, index, total, spent, selection, findings))


def merge_refutations(into: dict[str, Refutation], new: dict[str, Refutation]) -> None:
    """Add ``new`` to ``into``; where two experiments refute one finding, the one that also
    refutes an error stands, whichever ran last (a tiny-batch comparison, which refutes
    warnings only, must not undo a rate trial that tested the claim itself)."""
    for key, refutation in new.items():
        held = into.get(key)
        if held is None or refutation.errors or not held.errors:
            into[key] = refutation


def _apply_refutations(
    refuted: dict[str, Refutation], results: list[CheckResult], findings: list[Finding]
) -> None:
    """Warnings an experiment refuted become notes that say why; a check left with no
    warning or error then passed. Errors stand, as they rest on evidence of their own,
    unless the experiment tested the very claim the error makes (``refute(errors=True)``)."""
    touched: set[str] = set()
    for f in findings:
        refutation = refuted.get(f"{f.check}:{f.aspect}")
        if refutation is None:
            continue
        if f.severity == Severity.WARNING or (refutation.errors and f.severity == Severity.ERROR):
            f.severity = Severity.INFO
            f.message = f"{f.message} {refutation.why}"
            f.evidence["refuted"] = refutation.why
            touched.add(f.check)
    for i, r in enumerate(results):
        if r.check in touched and r.status is Status.FAILED:
            if not any(f.check == r.check and f.severity != Severity.INFO for f in findings):
                results[i] = dataclasses.replace(
                    r, status=Status.PASSED, detail=f"{r.detail} (refuted by an experiment)"
                )


def _check_event(
    spec: CheckSpec | None,
    index: int,
    total: int,
    spent: float,
    selection: Selection,
    findings: list[Finding],
) -> ProgressEvent:
    """The progress event of a check starting (``spec``) or of all checks done (None)."""
    loud = [f for f in findings if f.severity != Severity.INFO]
    return ProgressEvent(
        phase="check" if spec is not None else "done",
        check=spec.id if spec is not None else "",
        kind=spec.kind if spec is not None else "",
        index=index,
        total=total,
        experiment_spent=spent,
        experiment_budget=selection.experiment_seconds,
        errors=sum(f.severity == Severity.ERROR for f in loud),
        warnings=sum(f.severity == Severity.WARNING for f in loud),
        found=tuple(dict.fromkeys(f.check for f in loud)),
        started=time.monotonic(),
    )


def ordered_checks() -> list[CheckSpec]:
    """Observations first (registration order), then experiments by their declared priority,
    most informative first, so that a spent budget leaves out the least informative."""
    specs = all_checks()
    observations = [s for s in specs if s.kind != "experiment"]
    experiments = sorted(
        (s for s in specs if s.kind == "experiment"), key=lambda s: (s.priority, s.order)
    )
    return observations + experiments


# -- the Python API -------------------------------------------------------------------


def check(
    model: nn.Module,
    data: Iterable[Any] | Callable[[], Iterable[Any]],
    loss_fn: Callable[..., torch.Tensor],
    optimizer: torch.optim.Optimizer | OptimizerSpec | None = None,
    *,
    task: Task | None = None,
    steps: int = DEFAULT_STEPS,
    select: Iterable[str] = (),
    ignore: Iterable[str] = (),
    quick: bool = False,
    thresholds: Thresholds | None = None,
    inputs: Callable[[Any], Any] | None = None,
    targets: Callable[[Any], Any] | None = None,
    name: str | None = None,
) -> Report:
    """Diagnose ``model`` trained on ``data`` with ``loss_fn``; returns a :class:`Report`.

    ``loss_fn`` is either a criterion applied as ``loss_fn(model(x), y)`` (any
    ``nn.Module`` loss or a ``torch.nn.functional`` loss) or, for anything else,
    a callable ``loss_fn(model, batch) -> loss``. Pass ``criterion=``/``loss_fn=``
    explicitly through :class:`Subject` and :func:`check_subject` when in doubt.

    The user's model, optimizer and random state are left exactly as they were:
    observation and experiments run on copies.
    """
    criterion, step_loss = split_loss(loss_fn)
    spec = _optimizer_spec(optimizer, model)
    subject = Subject(
        model=model,
        batches=data,
        criterion=criterion,
        loss_fn=step_loss,
        optimizer=spec,
        task=task or Task(),
        name=name or type(model).__name__,
        **({"inputs": inputs} if inputs else {}),
        **({"targets": targets} if targets else {}),
    )
    return check_subject(
        subject,
        steps=steps,
        selection=Selection(tuple(select), tuple(ignore), quick),
        thresholds=thresholds,
    )


def split_loss(loss_fn: Callable[..., Any]) -> tuple[Any, Any]:
    """(criterion, None) for a recognised criterion, else (None, loss_fn)."""
    from torch.nn.modules.loss import _Loss

    fn = getattr(loss_fn, "__wrapped__", loss_fn)
    if isinstance(loss_fn, _Loss) or getattr(fn, "__module__", "") == "torch.nn.functional":
        return loss_fn, None
    return None, loss_fn


def _optimizer_spec(optimizer: Any, model: nn.Module) -> OptimizerSpec | None:
    if optimizer is None or isinstance(optimizer, OptimizerSpec):
        return optimizer
    if isinstance(optimizer, torch.optim.Optimizer):
        return OptimizerSpec.from_optimizer(optimizer, model)
    raise TypeError(
        f"optimizer must be a torch optimizer or an OptimizerSpec, got {type(optimizer)}"
    )


def check_subject(
    subject: Subject,
    *,
    steps: int = DEFAULT_STEPS,
    selection: Selection = Selection(),
    thresholds: Thresholds | None = None,
    seed: int = 0,
) -> Report:
    """Observe ``steps`` training steps of a copy of ``subject``, run the checks, report."""
    start = time.perf_counter()
    user_model = subject.model
    initial = {k: v.detach().clone() for k, v in user_model.state_dict().items()}
    run = RunInfo(target=subject.name, step_budget=steps)
    small = (
        subject.device().type == "cpu"
        and sum(p.numel() for p in user_model.parameters()) <= SINGLE_THREAD_MAX_PARAMS
    )
    with preserved_rng(seed), _one_thread(small):
        recording, observe_error = _observe(subject, steps)
    run.steps_observed = len([s for s in recording.steps if s.loss_seen])
    run.stop_reason = "step budget" if observe_error is None else "training step raised"
    if observe_error is not None:
        run.error, run.traceback = observe_error
        run.observed = run.steps_observed > 0
    datasets = {0: subject.batches.dataset} if isinstance(subject.batches, DataLoader) else {}
    lab = Lab(
        subject,
        initial_state=initial,
        datasets=datasets,
        modules_in_eval=training_modes(recording.steps),
    )
    t_checks = time.perf_counter()
    _infer_task(subject, recording)
    if subject.batch_axis is None:
        # As for a script: the observed batches say which axis holds the samples.
        subject.batch_axis = recording.input_batch_axis()
    results, findings = run_checks(
        subject, recording, lab, thresholds=thresholds or DEFAULT_THRESHOLDS, selection=selection
    )
    run.seconds = time.perf_counter() - start
    return attach_diagnosis(
        Report(
            run=run,
            subject=subject.describe(),
            checks=results,
            findings=findings,
            timings={"observe": t_checks - start, "checks": time.perf_counter() - t_checks},
            versions=versions(),
            series=build_series(recording, findings, lab.curves),
        )
    )


def _infer_task(subject: Subject, recording: Recording) -> None:
    """Fill in a missing task hint from the recorded loss calls."""
    if subject.task.kind != "custom":
        return
    from nndoctor.capture.subject import task_from_loss

    for step in recording.steps:
        for call in step.loss_calls:
            subject.task = task_from_loss(
                call.fn, call.input_shape, call.target_shape, call.target_dtype
            )
            return


def _observe(subject: Subject, steps: int) -> tuple[Recording, tuple[str, str] | None]:
    """Train a copy for ``steps`` steps under the training probe."""
    model = deepcopy_detached(subject.model)
    set_training(model, True)
    assert subject.optimizer is not None
    optimizer = subject.optimizer.build(model)
    recording = Recording()
    probe = TrainingProbe(recording)
    error = None
    batches = subject.iter_batches()
    first = None
    loader_index = _note_loader(recording, subject.batches)
    with probe:
        probe.attach_model(model)
        probe.attach_optimizer(optimizer)
        try:
            for _ in range(steps):
                batch = next(batches, None)
                if batch is None:
                    batches = subject.iter_batches()
                    batch = next(batches, None)
                    if batch is None:
                        break
                first = first if first is not None else batch
                probe.note_loader(loader_index)
                optimizer.zero_grad()
                if subject.criterion is not None:
                    out = subject.forward_output(model, batch)
                    loss = _live(subject.criterion)(out, subject.targets(batch))
                else:
                    loss = subject.compute_loss(model, batch)
                loss.backward()
                optimizer.step()
        except Exception as exc:  # noqa: BLE001 - reported as the run's error
            error = (f"{type(exc).__name__}: {exc}", traceback.format_exc())
    del first
    return recording, error


def _live(criterion: Callable[..., Any]) -> Callable[..., Any]:
    """A torch.nn.functional loss looked up now, so the probe's wrapper sees the call."""
    import torch.nn.functional as F

    if getattr(criterion, "__module__", "") == "torch.nn.functional":
        return getattr(F, criterion.__name__, criterion)
    return criterion


def _note_loader(recording: Recording, source: Any) -> int | None:
    from torch.utils.data import DataLoader, RandomSampler

    from nndoctor.probes.recording import LoaderInfo

    if not isinstance(source, DataLoader):
        return None
    try:
        n = len(source.dataset)  # type: ignore[arg-type]
    except TypeError:
        n = None
    recording.loaders.append(
        LoaderInfo(
            index=0,
            sampler=type(source.sampler).__name__,
            shuffle=isinstance(source.sampler, RandomSampler),
            batch_size=source.batch_size,
            dataset_len=n,
            dataset=type(source.dataset).__name__,
            drop_last=source.drop_last,
            num_workers=source.num_workers,
        )
    )
    return 0


def take(iterable: Iterable[Any], n: int) -> list[Any]:
    return list(itertools.islice(iterable, n))


# -- unmodified scripts -------------------------------------------------------------


def check_script(
    script: str,
    argv: list[str] | None = None,
    *,
    steps: int = DEFAULT_STEPS,
    timeout: float = DEFAULT_TIMEOUT,
    device: str | None = None,
    selection: Selection = Selection(),
    thresholds: Thresholds | None = None,
    progress: Callable[[ProgressEvent], None] | None = None,
    seed: int | None = 0,
    keep_scratch: bool = False,
    phase_steps: int | None = None,
) -> Report:
    """Run ``script`` under observation for ``steps`` optimizer steps, then diagnose it.

    A script that trains in stages is followed into its second phase: after the budget
    it runs on, unobserved, for at most ``phase_steps`` (default 1000) more optimizer
    steps; a new optimizer starting there is observed and diagnosed too, its findings
    marked ``where.phase == 2``. ``phase_steps=0`` stops at the budget.

    What the script saves with ``torch.save`` lands in a scratch folder, removed afterwards
    unless ``keep_scratch`` (the report then names it).

    torch, numpy and ``random`` are seeded with ``seed`` before the script runs (None:
    left as they are), so an unseeded script is diagnosed the same way every run; a
    script that seeds itself wins. Their states are restored afterwards: the script
    runs in this process, and the caller's random streams must not depend on it.

    Raises :class:`nndoctor.capture.runner.ScriptError` when the script cannot be run
    at all (missing file). A script that crashes, never steps or times out gives a
    Report with ``run.observed`` False and the reason.
    """
    with preserved_rng(seed):
        return _check_script(
            script,
            argv,
            steps=steps,
            timeout=timeout,
            device=device,
            selection=selection,
            thresholds=thresholds,
            progress=progress,
            keep_scratch=keep_scratch,
            phase_steps=phase_steps,
            seed=seed,
        )


def _check_script(
    script: str,
    argv: list[str] | None,
    *,
    steps: int,
    timeout: float,
    device: str | None,
    selection: Selection,
    thresholds: Thresholds | None,
    progress: Callable[[ProgressEvent], None] | None,
    keep_scratch: bool = False,
    phase_steps: int | None = None,
    seed: int | None = None,
) -> Report:
    from nndoctor.capture.phases import PHASE_SEARCH_STEPS
    from nndoctor.capture.runner import run_script
    from nndoctor.distributed.capture import DistributedCapture

    phase_steps = PHASE_SEARCH_STEPS if phase_steps is None else phase_steps

    start = time.perf_counter()
    on_step = None
    if progress is not None:
        began = time.monotonic()
        report_step = progress

        def on_step(done: int) -> None:
            report_step(ProgressEvent("observe", step=done, steps=steps, started=began))

        on_step(0)
    capture = run_script(
        script,
        argv,
        steps=steps,
        timeout=timeout,
        keep_scratch=keep_scratch,
        on_step=on_step,
        phase_steps=phase_steps,
        # Dormant unless the script starts a process group of several ranks.
        distributed=DistributedCapture(script),
    )
    capture.seed = seed  # replays start from the same random state as this run
    if capture.distributed is not None:
        from nndoctor.distributed.check import diagnose_rank

        return diagnose_rank(
            capture,
            selection,
            lambda chosen: _diagnose_capture(
                capture,
                script,
                argv,
                steps,
                device,
                chosen,
                thresholds,
                progress,
                start,
                keep_scratch,
            ),
        )
    report = _diagnose_capture(
        capture, script, argv, steps, device, selection, thresholds, progress, start, keep_scratch
    )
    if capture.phase_note:
        report.run.notes.append(capture.phase_note)
    if capture.direct_forwards and capture.observed:
        report.run.notes.append(
            f"the script calls {', '.join(capture.direct_forwards)}.forward directly, which "
            "runs no module hooks: from the first optimizer step on, those calls were observed "
            "as calls of the module (the first step itself was not observed)"
        )
    if capture.kept_eager:
        report.run.notes.append(
            f"the script compiles {', '.join(capture.kept_eager)} with torch.jit, whose "
            "compiled modules run no Python hooks: while observed it ran eagerly (the same "
            "forward, uncompiled)"
        )
    second = capture.next_phase
    if second is not None and second.observed:
        later = _diagnose_capture(
            second,
            script,
            argv,
            steps,
            device,
            selection,
            thresholds,
            progress,
            start,
            keep_scratch,
        )
        report = _with_second_phase(report, later)
    return report


def _with_second_phase(report: Report, later: Report) -> Report:
    """One report for both phases: the second phase's findings and checks marked with
    ``phase`` 2, each phase diagnosed on its own (a cause in one phase never explains a
    symptom in the other) and the causes of both ranked together."""
    for f in later.findings:
        f.where = dataclasses.replace(f.where, phase=2)
    for c in later.checks:
        c.phase = 2
    report.checks += later.checks
    report.run.notes += [f"phase 2: {n}" for n in later.run.notes]
    if later.run.error:
        report.run.notes.append(f"phase 2: {later.run.error}")
    report.subject = {**report.subject, "phase 2": later.subject}
    report.timings["phase 2 checks"] = later.timings.get("checks", 0.0)
    report.run.seconds = later.run.seconds
    report.findings = report.findings + later.findings
    report.diagnosis = merge_diagnoses(report.diagnosis, later.diagnosis)
    report.findings = report.diagnosis.ordered_findings(report.findings)
    return report


def _diagnose_capture(
    capture: Any,
    script: str,
    argv: list[str] | None,
    steps: int,
    device: str | None,
    selection: Selection,
    thresholds: Thresholds | None,
    progress: Callable[[ProgressEvent], None] | None,
    start: float,
    keep_scratch: bool,
) -> Report:
    from nndoctor.capture.subject import captured_task, subject_from_capture
    from nndoctor.checks.crash import diagnose_crash

    run = RunInfo(
        target=script,
        argv=list(argv or []),
        steps_observed=capture.steps,
        step_budget=steps,
        stop_reason=capture.stop_reason,
    )
    if capture.recording.saves_redirected:
        changed = capture.recording.saves_redirected
        where = (
            f"they went to {capture.scratch_dir}, kept"
            if keep_scratch
            else "they went to a scratch folder, removed afterwards (--keep-scratch keeps it)"
        )
        shown = ", ".join(
            os.path.relpath(p) if p.startswith(os.getcwd()) else p for p in changed[:3]
        )
        run.notes.append(
            f"the script wrote, moved or removed {len(changed)} path(s) ({shown}{', …' if len(changed) > 3 else ''}); "
            f"{where}, and the user's files are unchanged"
        )
    if capture.exception is not None:
        exc = capture.exception
        run.error = f"the script raised {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        run.traceback = capture.traceback
        diagnosis = diagnose_crash(f"{type(exc).__name__}: {exc}", capture.traceback)
        if diagnosis is not None:
            run.likely_cause, run.likely_reasons = diagnosis.cause, list(diagnosis.reasons)
    if not capture.observed:
        run.observed = False
        run.output_tail = "\n".join(capture.stdout_tail.splitlines()[-OUTPUT_TAIL_LINES:])
        if run.error is None:
            if capture.model is None:
                run.error = (
                    f"no model was found: no module with parameters was called ({capture.stop_reason})"
                    + (
                        _compiled_network_advice(capture.compiled_networks)
                        or _plain_parameters_advice(
                            capture.recording.plain_parameters,
                            capture.recording.module_parameters_reached,
                        )
                    )
                )
            else:
                run.error = f"no optimizer step was reached ({capture.stop_reason})" + _why_no_step(
                    capture
                )
                unstepped = _never_stepped(capture)
                if unstepped is not None and run.likely_cause is None:
                    # Left out of training by omission: reason 23.
                    run.likely_cause = (
                        f"the optimizer of {unstepped.module} never steps: its parameters are "
                        "never updated"
                    )
                    run.likely_reasons = [23]
                backwards = _backwards_without_gradient(capture)
                if backwards and run.likely_cause is None:
                    # Nothing to update: the loss is constant in the weights (19, 18).
                    run.likely_cause = (
                        f"all {backwards} backward passes left every parameter's gradient at "
                        "exactly zero: the loss does not depend on the weights (a log_softmax "
                        "or softmax over an axis of size 1 or the wrong axis, an output "
                        "detached or rebuilt from .item() before the loss)"
                    )
                    run.likely_reasons = [19, 18]
    elif run.error is not None:
        likely = (
            f" (likely: {run.likely_cause}; reasons {', '.join(map(str, run.likely_reasons))})"
            if run.likely_cause
            else ""
        )
        run.notes.append(
            f"the script raised after {capture.steps} step(s){likely}; the observed steps were "
            "diagnosed"
        )
    if capture.observed and capture.recording.step_source == "manual":
        run.notes.append(
            "no optimizer object: a step is a backward pass"
            + (
                " (torch.autograd.grad on the parameters)"
                if capture.recording.gradients_taken
                else ""
            )
            + " followed by the script's own update of the parameters"
        )

    subject_desc: dict[str, Any] = {}
    results: list[CheckResult] = []
    findings: list[Finding] = []
    curves: list[Any] = []
    t_checks = time.perf_counter()
    if capture.observed:
        subject, why = subject_from_capture(capture)
        if subject is None and why:
            run.notes.append(f"experiments on copies are limited: {why}")
        subject_desc = _describe_capture(capture, subject)
        with ReplayServer() as replay_server:
            lab = _capture_lab(capture, subject, why, device, replay_server)
            results, findings = run_checks(
                subject,
                capture.recording,
                lab,
                thresholds=thresholds or DEFAULT_THRESHOLDS,
                selection=selection,
                progress=progress,
            )
        curves = lab.curves
    elif capture.model is not None:
        subject_desc = {
            "model": type(capture.model).__name__,
            "task": captured_task(capture).describe(),
        }
    run.seconds = time.perf_counter() - start
    return attach_diagnosis(
        Report(
            run=run,
            subject=subject_desc,
            checks=results,
            findings=findings,
            timings={"script": capture.seconds, "checks": time.perf_counter() - t_checks},
            versions=versions(),
            series=build_series(capture.recording, findings, curves),
        )
    )


def _never_stepped(capture: Any) -> Any:
    """The model found first, when an optimizer holding its parameters exists and never
    stepped while another one did (nndoctor.capture.retarget.Unstepped); None otherwise."""
    unstepped = capture.recording.unstepped
    return unstepped if unstepped is not None and unstepped.holders else None


# A crashed check's detail: the exception's first line, cut (some of torch's messages list
# every dispatch backend over dozens of lines).
CRASH_DETAIL_CHARS = 300


def _crash_line(exc: BaseException) -> str:
    """``Type: first line of the message``, at most ``CRASH_DETAIL_CHARS`` characters."""
    text = str(exc).strip().splitlines()
    line = f"{type(exc).__name__}: {text[0] if text else ''}"
    return line if len(line) <= CRASH_DETAIL_CHARS else line[: CRASH_DETAIL_CHARS - 1] + "…"


def _compiled_network_advice(names: list[str]) -> str:
    """What to do when the network the optimizer trains is a TorchScript module."""
    if not names:
        return ""
    return (
        f". The script calls {', '.join(names)}, a TorchScript module "
        "(torch.jit.ScriptModule with @torch.jit.script_method), whose compiled forward runs "
        "no Python hooks, so nndoctor cannot observe it. Check the network written as a plain "
        "nn.Module (drop torch.jit.ScriptModule and script_method while checking; a module "
        "compiled by torch.jit.script(model) is observed as it is)"
    )


def _plain_parameters_advice(plain: tuple[int, int] | None, of_modules: int = 0) -> str:
    """What to do when the loss reached parameters while no module was called."""
    if plain is None:
        return ""
    count, values = plain
    if of_modules:
        return (
            f". The loss back-propagates into {of_modules} nn.Parameter(s) of a module whose "
            "forward was never called as module(x): a direct module.forward(x) runs no module "
            "hooks, so nndoctor sees no model (it follows such calls only for the parameters "
            "of an optimizer that steps). Call the module, layer(x), or check it through the "
            "Python API: nndoctor.check(model, data, loss_fn=...)"
        )
    return (
        f". The loss back-propagates into {count} plain tensor(s) ({values:,} values) that no "
        "nn.Module holds: nndoctor observes a model through its modules. Put the parameters "
        "in an nn.Module whose forward computes the output the loss takes (nn.Parameter "
        "attributes), or check it through the Python API: nndoctor.check(model, data, "
        "loss_fn=...)"
    )


def _backwards_without_gradient(capture: Any) -> int:
    """The backward passes of a script that never stepped, where every gradient they
    left on the model's parameters was read and exactly zero; 0 otherwise (no backward,
    no gradient read, or one that was not zero)."""
    steps = capture.recording.steps
    norms = [g for s in steps for g in s.grad_norms.values()]
    backwards = sum(s.backwards for s in steps)
    return backwards if norms and all(g == 0.0 for g in norms) else 0


def _why_no_step(capture: Any) -> str:
    """What the script did instead of a training step, and what to do about it."""
    unstepped = _never_stepped(capture)
    if unstepped is not None:
        return (
            f": {unstepped.describe()}. Call its step() after each backward pass (or build one "
            "optimizer over both networks' parameters)"
        )
    steps = capture.recording.steps
    backwards = sum(s.backwards for s in steps)
    if not any(s.forwards for s in steps) and not backwards:
        if capture.recording.transformed_forwards:
            return (
                ": the model was called only inside torch.func transforms (vmap, grad: "
                "per-sample gradients, functional_call), whose per-sample values nndoctor does "
                "not observe; diagnose the model through the Python API (nndoctor.check with "
                "the model, its data and a loss_fn)"
            )
        return (
            ": the model was called, but never with gradients enabled and a backward pass; if it "
            "trains inside a function nndoctor cannot reach, use the Python API (nndoctor.check)"
        )
    functional = _functional_parameters(capture.recording)
    if functional:
        return functional
    if _backwards_without_gradient(capture):
        return (
            ": backward passes ran, but every gradient they left was zero, so no update could "
            "change the parameters"
        )
    return (
        ": backward passes ran but the parameters never changed; if the script updates weights "
        "another way, diagnose it through the Python API (nndoctor.check with a loss_fn and an "
        "optimizer)"
    )


def _functional_parameters(rec: Any) -> str:
    """Why a model called only inside torch.func transforms never stepped while another
    optimizer did: the tensors that train are handed to it (``functional_call`` with
    parameters stacked by ``stack_module_state``, an ensemble trained as one set of stacked
    tensors), and the module's own parameters are not them. "" otherwise."""
    stepped = [o for o in rec.other_optimizers if o.steps and any(o.with_grad)]
    if not rec.transformed_forwards or not stepped:
        return ""
    optimizer = stepped[0]
    return (
        f": {optimizer.name} stepped {len(optimizer.steps)} time(s) on {optimizer.params} "
        "tensor(s) that no module holds, and the model was called only inside torch.func "
        "transforms (functional_call, vmap) with parameters handed to it: the tensors that "
        "train live outside the module (torch.func.stack_module_state, an ensemble trained "
        "as stacked tensors), so nndoctor sees no step of the model. Diagnose one member "
        "as an nn.Module through the Python API (nndoctor.check with the model, its data "
        "and a loss_fn)"
    )


def _manual_update(capture: Any) -> str | None:
    """How a script without an optimizer object updates its parameters, in words."""
    from nndoctor.capture.subject import manual_sgd

    if capture.recording.step_source != "manual":
        return None
    sgd = manual_sgd(capture.recording)
    if sgd is not None:
        return f"by hand: {sgd.describe()}, inferred from the updates"
    return "by hand (a rule other than plain SGD)"


def _capture_lab(
    capture: Any,
    subject: Subject | None,
    why: str,
    device: str | None,
    replay_server: ReplayServer | None = None,
) -> Lab:
    from nndoctor.capture.runner import trained_state
    from nndoctor.capture.subject import captured_task

    # A replay re-runs the script from its start: of the first phase only, and never one
    # rank of a distributed job (a single process cannot re-run it).
    replayable = capture.phase == 1 and capture.distributed is None
    script = (capture.script, list(capture.argv)) if replayable else None
    sources = tuple(script_sources(capture.script)) if capture.script else ()
    others = [(r.name, r.module, r.args) for r in capture.other_roots]
    modes = training_modes(capture.recording.steps)
    trained = trained_state(capture)
    if subject is not None:
        return Lab(
            subject,
            trained_state=trained,
            device=device,
            script=script,
            datasets=capture.datasets,
            replay_timeout=capture.timeout,
            replay_server=replay_server,
            replay_seed=capture.seed,
            other_models=others,
            modules_in_eval=modes,
            source_paths=sources,
        )
    model = None
    if capture.model is not None:
        model = deepcopy_detached(capture.model)
        if capture.initial_state is not None:
            model.load_state_dict(capture.initial_state)
    inputs: list[tuple[Any, ...]] = []
    if model is not None:
        # Each call as positional arguments alone (see positional_call): None where it cannot be.
        positional = (
            positional_call(model, tuple(b["args"]), b.get("kwargs") or {})
            for b in capture.batches
            if b.get("args")
        )
        inputs = [args for args in positional if args is not None]
    called = [b for b in capture.batches if b.get("args") or b.get("kwargs")]
    return Lab(
        None,
        trained_state=trained,
        device=device,
        unavailable_reason=why,
        model=model,
        model_inputs=inputs or None,
        call_targets=[
            (tuple(b.get("args") or ()), dict(b.get("kwargs") or {}), b["targets"])
            for b in called
            if b.get("targets") is not None
        ],
        model_calls=[(tuple(b.get("args") or ()), dict(b.get("kwargs") or {})) for b in called]
        or None,
        script=script,
        task=captured_task(capture),
        datasets=capture.datasets,
        replay_timeout=capture.timeout,
        replay_server=replay_server,
        replay_seed=capture.seed,
        other_models=others,
        modules_in_eval=modes,
        source_paths=sources,
    )


def _describe_capture(capture: Any, subject: Subject | None) -> dict[str, Any]:
    from nndoctor.capture.subject import captured_task

    model = capture.model
    loss = "not observed"
    for step in capture.recording.steps:
        if step.loss_calls:
            loss = step.loss_calls[0].fn
            break
        if step.loss_seen:
            loss = "custom (plain torch)"
    desc: dict[str, Any] = {
        "name": capture.script,
        "model": type(model).__name__ if model is not None else None,
        "parameters": sum(p.numel() for p in model.parameters()) if model is not None else 0,
        "device": capture.recording.device,
        "task": captured_task(capture).describe(),
        "loss": loss,
        "optimizer": (
            OptimizerSpec.from_optimizers(
                [capture.optimizer, *capture.other_optimizers],
                model,
                recorded_peak(capture.recording),
            ).describe()
            if capture.optimizer is not None and model is not None
            else _manual_update(capture)
        ),
        "replayable": subject is not None,
    }
    return desc
