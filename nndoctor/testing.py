"""Assertions for a test suite: the doctor's experiments as one-line tests.

Each assertion takes the model, batch(es) and loss the way a test already has
them, runs the registered checks behind it through the engine (on copies: the
model, optimizer and random state passed in are left bit-identical) and raises
:class:`DoctorAssertionError` — an ``AssertionError`` — whose message reads like
the console report: what was measured against what was expected, where, the
reasons, the fix. Each returns the :class:`~nndoctor.report.model.Report` when it
passes, for further asserts::

    from nndoctor.testing import assert_overfits, assert_healthy

    def test_model_can_memorise_a_batch():
        assert_overfits(model, (x, y), nn.CrossEntropyLoss())

``batch``/``data`` is one batch (a tensor, a tuple or list of tensors such as
``(x, y)``, a dict) or several (a list of such batches, a ``DataLoader``, a
zero-argument callable returning an iterable). ``loss_fn`` is a criterion applied
as ``loss_fn(model(x), y)`` (an ``nn.*Loss`` or a ``torch.nn.functional`` loss) or
any ``loss_fn(model, batch) -> loss``. ``optimizer`` is the test's optimizer (its
class and hyperparameters are used on copies) or None for Adam(lr=1e-3).

This module does not import pytest: the assertions work under unittest too. The
pytest plugin (``nndoctor.pytest_plugin``) adds fixtures.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
from torch import nn

from nndoctor.checks.thresholds import DEFAULT_THRESHOLDS, Thresholds
from nndoctor.config import validate_checks
from nndoctor.engine import Selection, check_subject, split_loss
from nndoctor.report.model import Finding, Report, Severity, Status
from nndoctor.subject import OptimizerSpec, Subject, Task

__all__ = [
    "DoctorAssertionError",
    "assert_all_params_train",
    "assert_batch_independent",
    "assert_finite",
    "assert_healthy",
    "assert_loss_at_chance",
    "assert_no_nan_in_backward",
    "assert_overfits",
    "format_finding",
    "subject_of",
]

# The checks behind each targeted assertion (ids from the registry).
OVERFIT_CHECKS = ("cannot-overfit-tiny-batch",)
CHANCE_CHECKS = ("loss-not-at-chance",)
PARAMETER_CHECKS = (
    "params-not-in-optimizer",
    "params-without-grad",
    "params-not-changing",
    "params-frozen",
)
BATCH_CHECKS = ("batch-dependence",)
FINITE_CHECKS = ("input-not-finite", "non-finite-values")
BACKWARD_CHECKS = ("non-finite-values",)


class DoctorAssertionError(AssertionError):
    """A failed nndoctor assertion; ``report`` and ``findings`` hold what was found."""

    def __init__(self, message: str, report: Report, findings: Sequence[Finding] = ()) -> None:
        super().__init__(message)
        self.report = report
        self.findings = list(findings)


# -- building the subject ---------------------------------------------------------------


def subject_of(
    model: nn.Module,
    data: Any,
    loss_fn: Callable[..., torch.Tensor] | None,
    optimizer: torch.optim.Optimizer | OptimizerSpec | None = None,
    *,
    task: Task | None = None,
    inputs: Callable[[Any], Any] | None = None,
    targets: Callable[[Any], Any] | None = None,
    name: str | None = None,
) -> Subject:
    """A :class:`Subject` from what a test holds (one batch or many, a criterion or a loss function)."""
    if loss_fn is None:
        criterion, step_loss = None, _output_sum
    else:
        criterion, step_loss = split_loss(loss_fn)
    if isinstance(optimizer, torch.optim.Optimizer):
        spec: OptimizerSpec | None = OptimizerSpec.from_optimizer(optimizer, model)
    elif optimizer is None or isinstance(optimizer, OptimizerSpec):
        spec = optimizer
    else:
        raise TypeError(
            f"optimizer must be a torch optimizer or an OptimizerSpec, not {type(optimizer)}"
        )
    extra: dict[str, Any] = {}
    if inputs is not None:
        extra["inputs"] = inputs
    if targets is not None:
        extra["targets"] = targets
    return Subject(
        model=model,
        batches=as_batches(data),
        criterion=criterion,
        loss_fn=step_loss,
        optimizer=spec,
        task=task or Task(),
        name=name or type(model).__name__,
        **extra,
    )


def as_batches(data: Any) -> Iterable[Any] | Callable[[], Iterable[Any]]:
    """``data`` as a source of batches: one batch becomes a list of one.

    A tensor, a dict, or a tuple/list whose items are all tensors (``(x, y)``, or the
    ``[x, y]`` a DataLoader yields) is one batch; a list or tuple of such batches, a
    DataLoader, any other iterable or a callable is a source of batches.
    """
    if isinstance(data, (torch.Tensor, dict)):
        return [data]
    if isinstance(data, (tuple, list)):
        if data and all(isinstance(x, torch.Tensor) for x in data):
            return [data]
        return list(data)
    return data


def _output_sum(model: nn.Module, batch: Any) -> torch.Tensor:
    """A stand-in loss for experiments that need none (batch independence): the output, summed."""
    from nndoctor.subject import call_model, default_inputs

    out = call_model(model, default_inputs(batch))
    if isinstance(out, torch.Tensor):
        return out.float().sum() * 0.0
    tensors = [
        t for t in (out.values() if isinstance(out, dict) else out) if isinstance(t, torch.Tensor)
    ]
    return sum((t.float().sum() * 0.0 for t in tensors), torch.zeros(()))


# -- the assertions ----------------------------------------------------------------------


def assert_overfits(
    model: nn.Module,
    batch: Any,
    loss_fn: Callable[..., torch.Tensor],
    optimizer: torch.optim.Optimizer | OptimizerSpec | None = None,
    *,
    steps: int | None = None,
    samples: int | None = None,
    task: Task | None = None,
    thresholds: Thresholds | None = None,
    seed: int = 0,
    inputs: Callable[[Any], Any] | None = None,
    targets: Callable[[Any], Any] | None = None,
) -> Report:
    """A copy of ``model`` can drive the loss near zero on the first ``samples`` samples of ``batch``.

    Trained from its initial weights for ``steps`` steps (default 150) on ``samples``
    samples (default 8), with ``optimizer``'s settings and dropout and weight decay off.
    Fails when the loss does not fall below a tenth of its first value (or below 0.1
    for a classification loss) — also when only a known-good Adam(lr=1e-3) fits, since
    then the optimiser settings under test cannot.
    """
    __tracebackhide__ = True
    changes: dict[str, Any] = {}
    if steps is not None:
        changes["overfit_steps"] = steps
    if samples is not None:
        changes["overfit_batch_size"] = samples
    t = (thresholds or DEFAULT_THRESHOLDS).with_changes(**changes)
    subject = subject_of(
        model, batch, loss_fn, optimizer, task=task, inputs=inputs, targets=targets
    )
    expected = (
        f"the loss on {t.overfit_batch_size} samples falls below {t.overfit_target_fraction:.0%} of its "
        f"first value (or below {t.overfit_ce_target:g} for a classification loss) within "
        f"{t.overfit_steps} steps"
    )
    # Any finding fails, the info one included: it says only another optimiser fits.
    return _run("assert_overfits", subject, OVERFIT_CHECKS, Severity.INFO, expected, t, seed)


def assert_loss_at_chance(
    model: nn.Module,
    batch: Any,
    loss_fn: Callable[..., torch.Tensor],
    *,
    task: Task | None = None,
    thresholds: Thresholds | None = None,
    seed: int = 0,
    inputs: Callable[[Any], Any] | None = None,
    targets: Callable[[Any], Any] | None = None,
) -> Report:
    """At its initial weights the model's loss on ``batch`` is near the chance level.

    Chance is ln(C) for C-class cross-entropy, ln 2 per output for binary
    cross-entropy, the target variance for MSE. ``loss_fn`` must be a recognised
    torch loss (a custom loss has no defined chance level: the assertion fails and
    says so).
    """
    __tracebackhide__ = True
    t = thresholds or DEFAULT_THRESHOLDS
    subject = subject_of(model, batch, loss_fn, None, task=task, inputs=inputs, targets=targets)
    expected = (
        f"an initial loss at most {t.chance_ratio_warning:g}× the chance level "
        f"(+ {t.chance_abs_margin:g})"
    )
    return _run(
        "assert_loss_at_chance", subject, CHANCE_CHECKS, Severity.WARNING, expected, t, seed
    )


def assert_all_params_train(
    model: nn.Module,
    data: Any,
    loss_fn: Callable[..., torch.Tensor],
    optimizer: torch.optim.Optimizer | OptimizerSpec | None = None,
    *,
    steps: int = 3,
    task: Task | None = None,
    thresholds: Thresholds | None = None,
    seed: int = 0,
    inputs: Callable[[Any], Any] | None = None,
    targets: Callable[[Any], Any] | None = None,
) -> Report:
    """Over ``steps`` training steps of a copy, every parameter trains.

    Every parameter is in ``optimizer``, requires grad, receives a non-zero gradient
    and changes at the updates. Pass the test's own optimizer: a layer left out of its
    parameter groups is the bug this catches most often.
    """
    __tracebackhide__ = True
    t = thresholds or DEFAULT_THRESHOLDS
    subject = subject_of(model, data, loss_fn, optimizer, task=task, inputs=inputs, targets=targets)
    expected = (
        "every parameter in the optimizer, with requires_grad=True, a non-zero gradient and a "
        f"non-zero update at the {steps} observed step(s)"
    )
    return _run(
        "assert_all_params_train",
        subject,
        PARAMETER_CHECKS,
        Severity.WARNING,
        expected,
        t,
        seed,
        steps,
    )


def assert_batch_independent(
    model: nn.Module,
    batch: Any,
    *,
    thresholds: Thresholds | None = None,
    seed: int = 0,
    inputs: Callable[[Any], Any] | None = None,
) -> Report:
    """Each sample's output depends on that sample only (no reshape or reduction across the batch).

    On a float64 copy in eval mode (BatchNorm's legitimate train-mode mixing is
    excluded), every sample of the first four of ``batch`` is changed in turn and the
    outputs of the others are compared. No loss is needed.
    """
    __tracebackhide__ = True
    t = thresholds or DEFAULT_THRESHOLDS
    subject = subject_of(model, batch, None, None, inputs=inputs)
    expected = (
        f"no sample's output changing by more than {t.batch_dependence_rtol:g} (relative) when "
        "another sample changes"
    )
    return _run(
        "assert_batch_independent", subject, BATCH_CHECKS, Severity.WARNING, expected, t, seed
    )


def assert_finite(
    model: nn.Module,
    data: Any,
    loss_fn: Callable[..., torch.Tensor],
    optimizer: torch.optim.Optimizer | OptimizerSpec | None = None,
    *,
    steps: int = 10,
    task: Task | None = None,
    thresholds: Thresholds | None = None,
    seed: int = 0,
    inputs: Callable[[Any], Any] | None = None,
    targets: Callable[[Any], Any] | None = None,
) -> Report:
    """Over ``steps`` training steps of a copy, inputs, activations, loss, gradients and weights stay finite.

    On a NaN or infinity the failure names the first step, phase and module where it
    appeared and, from a replay of that step, the operation that produced it.
    """
    __tracebackhide__ = True
    t = thresholds or DEFAULT_THRESHOLDS
    subject = subject_of(model, data, loss_fn, optimizer, task=task, inputs=inputs, targets=targets)
    expected = f"finite inputs, activations, loss, gradients and weights over {steps} step(s)"
    return _run("assert_finite", subject, FINITE_CHECKS, Severity.WARNING, expected, t, seed, steps)


def assert_no_nan_in_backward(
    model: nn.Module,
    batch: Any,
    loss_fn: Callable[..., torch.Tensor],
    *,
    task: Task | None = None,
    thresholds: Thresholds | None = None,
    seed: int = 0,
    inputs: Callable[[Any], Any] | None = None,
    targets: Callable[[Any], Any] | None = None,
) -> Report:
    """One forward and backward pass of a copy on ``batch`` gives finite gradients everywhere.

    A NaN or infinity in the backward pass (``sqrt`` at zero, ``log`` near zero, a
    division by a tiny number) fails with the module and the operation that produced
    it; one already in the forward pass or the loss fails too, since the backward pass
    inherits it.
    """
    __tracebackhide__ = True
    t = thresholds or DEFAULT_THRESHOLDS
    subject = subject_of(model, batch, loss_fn, None, task=task, inputs=inputs, targets=targets)
    expected = "finite gradients of every module output and every parameter after one backward pass"
    return _run(
        "assert_no_nan_in_backward", subject, BACKWARD_CHECKS, Severity.WARNING, expected, t, seed
    )


def assert_healthy(
    model: nn.Module,
    data: Any,
    loss_fn: Callable[..., torch.Tensor],
    optimizer: torch.optim.Optimizer | OptimizerSpec | None = None,
    *,
    fail_on: str = "warning",
    select: Iterable[str] = (),
    ignore: Iterable[str] = (),
    quick: bool = False,
    steps: int = 20,
    task: Task | None = None,
    thresholds: Thresholds | None = None,
    seed: int = 0,
    inputs: Callable[[Any], Any] | None = None,
    targets: Callable[[Any], Any] | None = None,
) -> Report:
    """The whole check on a declared subject finds nothing at ``fail_on`` severity or above.

    ``fail_on`` is ``"warning"`` (default: a healthy model draws no warning) or
    ``"error"``; ``select``/``ignore`` take check ids or reason numbers, as on the
    command line. Given a single batch, the checks that judge a stream of batches
    (``batch-repeated``) are left out. A check that crashes fails the assertion too:
    nndoctor could not tell.
    """
    __tracebackhide__ = True
    if fail_on not in ("error", "warning"):
        raise ValueError(f"fail_on must be 'error' or 'warning', not {fail_on!r}")
    chosen = tuple(str(k) for k in select)
    ignored = [str(k) for k in ignore]
    # An unknown id would select nothing, and nothing passes: refuse it instead.
    validate_checks(chosen, "select")
    validate_checks(ignored, "ignore")
    if _is_one_batch(data):
        ignored.append("batch-repeated")
    t = thresholds or DEFAULT_THRESHOLDS
    subject = subject_of(model, data, loss_fn, optimizer, task=task, inputs=inputs, targets=targets)
    selection = Selection(chosen, tuple(ignored), quick)
    report = check_subject(subject, steps=steps, selection=selection, thresholds=t, seed=seed)
    expected = f"no finding of severity {fail_on} or above from any check"
    _judge("assert_healthy", report, None, Severity(fail_on), expected)
    return report


def _is_one_batch(data: Any) -> bool:
    batches = as_batches(data)
    return isinstance(batches, list) and len(batches) == 1 and batches[0] is data


# -- judging and the message ---------------------------------------------------------------


def _run(
    name: str,
    subject: Subject,
    checks: tuple[str, ...],
    gate: Severity,
    expected: str,
    thresholds: Thresholds,
    seed: int,
    steps: int = 1,
) -> Report:
    """Observe ``steps`` steps of a copy, run ``checks``, and judge them for assertion ``name``."""
    __tracebackhide__ = True
    selection = Selection(checks)
    report = check_subject(
        subject, steps=steps, selection=selection, thresholds=thresholds, seed=seed
    )
    _judge(name, report, checks, gate, expected)
    return report


def _judge(
    name: str, report: Report, checks: Sequence[str] | None, gate: Severity, expected: str
) -> None:
    """Raise :class:`DoctorAssertionError` when ``report`` fails ``name``'s contract.

    ``checks`` None means every check (``assert_healthy``): then skipped checks are
    fine; a targeted assertion fails when its check could not run.
    """
    __tracebackhide__ = True
    problems: list[str] = []
    run = report.run
    if run.error is not None:
        problems.append(f"the training step of the copy raised: {run.error}")
    results = [c for c in report.checks if checks is None or c.check in checks]
    for c in results:
        if c.status == Status.CRASHED:
            problems.append(f"check {c.check} crashed (nndoctor could not tell): {c.detail}")
        elif c.status == Status.SKIPPED and checks is not None:
            problems.append(f"check {c.check} could not run: {c.detail}")
    findings = [
        f
        for f in report.findings
        if (checks is None or f.check in checks) and f.severity.rank >= gate.rank
    ]
    if not problems and not findings:
        return
    ran = ", ".join(checks) if checks is not None else "every check"
    head = f"{name}: "
    if findings:
        head += f"{len(findings)} finding(s) from {ran}"
    else:
        head += f"{ran} could not give an answer"
    lines = [head, f"expected  {expected}"]
    for p in problems:
        lines.append(f"problem   {p}")
    for f in findings:
        lines.append("")
        lines.append(format_finding(f))
    if run.traceback and run.error is not None:
        lines += ["", run.traceback.rstrip()]
    raise DoctorAssertionError("\n".join(lines), report, findings)


def format_finding(f: Finding) -> str:
    """One finding as plain text, in the console report's order."""
    reasons = ", ".join(str(r) for r in f.reasons)
    lines = [f"{f.severity.value.upper()} {f.title}  [{f.check} · reasons {reasons}]"]
    lines.append(f"  {f.message}")
    where = f.where.describe()
    if where:
        lines.append(f"  where     {where}")
    if f.evidence:
        shown = ", ".join(f"{k}={_fmt(v)}" for k, v in list(f.evidence.items())[:10])
        lines.append(f"  measured  {shown}")
    lines.append(f"  fix       {f.fix}")
    lines.append(f"  manual    nndoctor explain {f.check}")
    return "\n".join(lines)


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, (list, tuple)):
        shown = ", ".join(_fmt(x) for x in list(v)[:6])
        return f"[{shown}{', …' if len(v) > 6 else ''}]"
    if dataclasses.is_dataclass(v) and not isinstance(v, type):
        return str(dataclasses.asdict(v))
    return str(v)
