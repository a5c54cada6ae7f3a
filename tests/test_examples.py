"""Every script in examples/ under ``check_script``: healthy ones are silent, broken ones are caught.

The table ``EXPECTED`` is the contract: for each example, the reasons (numbers from
REASONS.md) that nndoctor must report with a warning or an error. An ``int`` must
appear in some serious finding; a ``frozenset`` is satisfied by any one of its
members. An empty entry means a healthy script, which must produce no warning and
no error at all.

A second table, ``BUG_VISIBLE``, checks each broken example against the raw
recording, independent of any check: it proves the bug is really in the script
and visible to the probes, so a failing expectation above points at a check, not
at the example.

Each example is run once per session (``check_script`` in-process, the default
20 observed steps); the whole file takes about 40 s on two CPU cores.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch
from torch import nn

from nndoctor.capture.runner import Capture, run_script
from nndoctor.engine import DEFAULT_STEPS, Selection, check_script, preserved_rng
from nndoctor.report.model import Report, Severity, Status

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"

Requirement = int | frozenset[int]

# example -> reasons that must be reported as a warning or an error; () = healthy.
EXPECTED: dict[str, tuple[Requirement, ...]] = {
    "healthy_mlp.py": (),
    "healthy_cnn.py": (),
    "healthy_regression.py": (),
    "healthy_custom_loss.py": (),
    "healthy_transformer.py": (),
    "healthy_lstm.py": (),
    "healthy_bn_regression.py": (),
    "healthy_bf16_cnn.py": (),
    "healthy_vae.py": (),
    "softmax_before_ce.py": (19,),
    "unshuffled_sorted.py": (7, 10),
    "unnormalized_pixels.py": (1, 12),
    "nan_log.py": (37,),
    "frozen_layer.py": (23,),
    "no_zero_grad.py": (frozenset({26, 36}),),
    "dead_relu_init.py": (28, 35),
    "high_lr.py": (36,),
    "eval_mode_training.py": (32,),
    "custom_layer_bad_grad.py": (22, 26),
    "repeated_batch.py": (1, 3),
}
# broken example -> the checks that must report it (a reason can come from several checks;
# the check that exists to find this bug must be the one that does), and the reasons the
# diagnosis' first cause may name.
EXPECTED_CHECKS: dict[str, tuple[tuple[str, ...], frozenset[int]]] = {
    "softmax_before_ce.py": (("loss-input-mismatch",), frozenset({19})),
    "unshuffled_sorted.py": (("loader-not-shuffled", "targets-sorted"), frozenset({7, 10})),
    "unnormalized_pixels.py": (("input-uint8-range", "input-not-standardized"), frozenset({1, 12})),
    "nan_log.py": (("non-finite-values",), frozenset({37})),
    "frozen_layer.py": (("params-not-in-optimizer",), frozenset({23})),
    "no_zero_grad.py": (("zero-grad-missing",), frozenset({26, 36})),
    "dead_relu_init.py": (("dead-relus",), frozenset({28, 35})),
    "high_lr.py": (("learning-rate-out-of-range", "loss-diverging"), frozenset({36})),
    "eval_mode_training.py": (("train-in-eval-mode",), frozenset({32})),
    "custom_layer_bad_grad.py": (("custom-layer-gradient",), frozenset({22, 26})),
    "repeated_batch.py": (("batch-repeated",), frozenset({1, 3})),
}
HEALTHY = sorted(name for name, reasons in EXPECTED.items() if not reasons)
BROKEN = sorted(name for name, reasons in EXPECTED.items() if reasons)


def _flatten(requirements: tuple[Requirement, ...]) -> set[int]:
    out: set[int] = set()
    for r in requirements:
        out |= set(r) if isinstance(r, frozenset) else {r}
    return out


@pytest.fixture(scope="module", autouse=True)
def _one_thread() -> Iterator[None]:
    # These models are tiny and launch-bound: a second intra-op thread buys nothing and, on a
    # busy two-core CI machine, makes every step wait on a descheduled worker.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


_REPORTS: dict[str, Report] = {}


def report_of(name: str) -> Report:
    """The report of ``examples/name``, computed once per session."""
    if name not in _REPORTS:
        with preserved_rng(seed=None):  # the scripts seed the global RNGs; keep other tests apart
            # No experiment budget: on a loaded CI machine a time budget would skip experiments
            # (it may, and says so), and these expectations are about verdicts, not speed.
            _REPORTS[name] = check_script(
                str(EXAMPLES / name),
                [],
                steps=DEFAULT_STEPS,
                selection=Selection(experiment_seconds=math.inf),
            )
    return _REPORTS[name]


def serious(report: Report) -> list:
    return [f for f in report.findings if f.severity in (Severity.WARNING, Severity.ERROR)]


def describe(report: Report) -> str:
    lines = [f"{f.severity.value} {f.check} {f.reasons}: {f.title}" for f in report.findings]
    lines += [
        f"[{c.status.value}] {c.check}: {c.detail}"
        for c in report.checks
        if c.status != Status.PASSED
    ]
    return "\n".join(lines) or "(no findings)"


# -- the table and the scripts agree ------------------------------------------------


def test_every_example_has_an_expectation() -> None:
    scripts = {p.name for p in EXAMPLES.glob("*.py")}
    assert scripts == set(EXPECTED), "add new examples to EXPECTED (and remove deleted ones)"
    assert len(HEALTHY) >= 4 and len(BROKEN) >= 6


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_example_is_a_plain_script_whose_docstring_states_its_reasons(name: str) -> None:
    source = (EXAMPLES / name).read_text(encoding="utf-8")
    assert not re.search(r"^\s*(import|from)\s+nndoctor\b", source, flags=re.M), (
        "examples never import nndoctor"
    )
    assert source.startswith('"""'), "an example starts with a docstring saying what it trains"
    doc = source.split('"""')[1]
    if name in HEALTHY:
        assert "Healthy" in doc
        assert "Expected reasons" not in doc
    else:
        assert "The bug:" in doc and "Fix:" in doc
        paragraph = doc.split("Expected reasons:")[1].split("\n\n")[0]
        stated = {int(n) for n in re.findall(r"\b(\d+) \(", paragraph)}
        assert stated == _flatten(EXPECTED[name])


# -- check_script on every example --------------------------------------------------


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_example_is_observed_for_the_full_step_budget(name: str) -> None:
    report = report_of(name)
    assert report.run.observed, report.run.error
    assert report.run.error is None, report.run.traceback
    assert report.run.steps_observed == DEFAULT_STEPS
    assert report.run.stop_reason == "step budget"


@pytest.mark.parametrize("name", HEALTHY)
def test_healthy_example_has_no_warning_or_error(name: str) -> None:
    report = report_of(name)
    assert serious(report) == [], describe(report)


@pytest.mark.parametrize("name", BROKEN)
def test_broken_example_reports_its_reasons(name: str) -> None:
    report = report_of(name)
    reported = {r for f in serious(report) for r in f.reasons}
    missing = [
        r
        for r in EXPECTED[name]
        if not (reported & r if isinstance(r, frozenset) else r in reported)
    ]
    assert not missing, f"{name}: reasons {missing} not reported\n{describe(report)}"


@pytest.mark.parametrize("name", BROKEN)
def test_broken_example_is_found_by_its_own_checks_and_diagnosed_first(name: str) -> None:
    report = report_of(name)
    checks, first_reasons = EXPECTED_CHECKS[name]
    loud = {f.check for f in serious(report)}
    assert set(checks) <= loud, (
        f"{name}: {sorted(set(checks) - loud)} did not report\n{describe(report)}"
    )
    assert report.diagnosis is not None and report.diagnosis.causes, describe(report)
    first = report.diagnosis.causes[0].findings[0]
    assert set(first.reasons) & first_reasons, (
        f"{name}: the diagnosis opens with {first.check} {first.reasons}"
    )


def test_every_broken_example_names_its_checks() -> None:
    assert set(EXPECTED_CHECKS) == set(BROKEN)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_no_check_crashes_on_an_example(name: str) -> None:
    report = report_of(name)
    crashed = [c for c in report.checks if c.status == Status.CRASHED]
    assert crashed == [], "\n".join(f"{c.check}: {c.detail}" for c in crashed)


# -- the bug is really there: raw recordings, no checks involved ----------------------


def _steps(capture: Capture) -> list:
    return [s for s in capture.recording.steps if s.loss_seen]


def _softmax_outputs(c: Capture) -> bool:
    calls = [call for s in _steps(c) for call in s.loss_calls]
    return bool(calls) and all(
        call.input_stats["min"] >= 0
        and call.input_stats["max"] <= 1
        and call.input_stats["rowsum_dev"] < 1e-4
        for call in calls
    )


def _single_class_batches(c: Capture) -> bool:
    counts = [
        s.target.class_counts for s in _steps(c) if s.target is not None and s.target.class_counts
    ]
    single = sum(1 for cc in counts if sum(1 for v in cc if v > 0) == 1)
    return not c.recording.loaders[0].shuffle and single >= len(counts) // 2


def _raw_pixels(c: Capture) -> bool:
    inputs = [s.inputs for s in _steps(c)]
    return all(i.integral and i.min >= 0 and i.max > 100 for i in inputs)


def _non_finite_loss(c: Capture) -> bool:
    return not math.isfinite(_steps(c)[0].loss)


def _param_outside_optimizer(c: Capture) -> bool:
    rec = c.recording
    return any(n.startswith("store_embedding") for n in set(rec.param_names) - rec.in_optimizer)


def _gradients_never_zeroed(c: Capture) -> bool:
    steps = _steps(c)
    return not any(s.zero_grad_called for s in steps) and all(
        s.grads_present_at_forward for s in steps[1:]
    )


def _dead_hidden_relus(c: Capture) -> bool:
    first = _steps(c)[0]
    relus = [n for n, t in c.recording.module_types.items() if t == "ReLU"]
    return all(first.activations[n].zero_frac > 0.99 for n in relus)


def _huge_updates(c: Capture) -> bool:
    s = _steps(c)[0]
    ratios = [s.update_norms[n] / s.weight_norms[n] for n in s.update_norms if n.endswith("weight")]
    return min(ratios) > 0.1


def _trains_in_eval_mode(c: Capture) -> bool:
    return all(not s.model_training for s in _steps(c))


def _wrong_custom_gradient(c: Capture) -> bool:
    assert c.model is not None
    swish = next(m for m in c.model.modules() if type(m).__name__ == "Swish")
    x = torch.randn(4, 8, dtype=torch.float64, requires_grad=True)
    return not torch.autograd.gradcheck(swish, (x,), raise_exception=False)


def _same_batch_every_step(c: Capture) -> bool:
    inputs = [s.inputs for s in _steps(c)]
    return all(b.same_as(a) for a, b in zip(inputs, inputs[1:], strict=False))


BUG_VISIBLE: dict[str, Callable[[Capture], bool]] = {
    "softmax_before_ce.py": _softmax_outputs,
    "unshuffled_sorted.py": _single_class_batches,
    "unnormalized_pixels.py": _raw_pixels,
    "nan_log.py": _non_finite_loss,
    "frozen_layer.py": _param_outside_optimizer,
    "no_zero_grad.py": _gradients_never_zeroed,
    "dead_relu_init.py": _dead_hidden_relus,
    "high_lr.py": _huge_updates,
    "eval_mode_training.py": _trains_in_eval_mode,
    "custom_layer_bad_grad.py": _wrong_custom_gradient,
    "repeated_batch.py": _same_batch_every_step,
}


def test_every_broken_example_has_its_bug_described() -> None:
    assert set(BUG_VISIBLE) == set(BROKEN)


@pytest.mark.parametrize("name", BROKEN)
def test_the_bug_is_visible_in_the_raw_recording(name: str) -> None:
    with preserved_rng(seed=None):
        capture = run_script(str(EXAMPLES / name), [], steps=8)
    assert capture.observed and capture.exception is None, capture.traceback
    assert BUG_VISIBLE[name](capture), f"{name}: the recording does not show the bug"


def test_healthy_script_has_none_of_the_bugs() -> None:
    # The raw predicates are not trivially true: a healthy script fails every applicable one.
    with preserved_rng(seed=None):
        capture = run_script(str(EXAMPLES / "healthy_mlp.py"), [], steps=8)
    for name in (
        "softmax_before_ce.py",
        "unshuffled_sorted.py",
        "unnormalized_pixels.py",
        "nan_log.py",
        "no_zero_grad.py",
        "dead_relu_init.py",
        "high_lr.py",
        "eval_mode_training.py",
        "repeated_batch.py",
    ):
        assert not BUG_VISIBLE[name](capture), name
    assert isinstance(capture.model, nn.Sequential)
