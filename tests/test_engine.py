"""The engine: selection, the experiment budget, ordering."""

from __future__ import annotations

from subjects import healthy_classifier

import nndoctor
from nndoctor.engine import Selection, ordered_checks
from nndoctor.subject import OptimizerSpec


def _subject() -> nndoctor.Subject:
    kw = healthy_classifier()
    return nndoctor.Subject(
        model=kw["model"],
        batches=kw["data"],
        criterion=kw["loss_fn"],
        optimizer=OptimizerSpec.from_optimizer(kw["optimizer"], kw["model"]),
    )


def test_a_spent_experiment_budget_skips_the_remaining_experiments_and_says_so() -> None:
    report = nndoctor.check_subject(_subject(), selection=Selection(experiment_seconds=0.0))
    experiments = [c for c in report.checks if c.kind == "experiment"]
    assert experiments and all(c.status.value == "skipped" for c in experiments)
    assert all("experiment budget" in c.detail for c in experiments)
    observations = [c for c in report.checks if c.kind == "observation"]
    assert any(c.status.value == "passed" for c in observations)


def test_quick_runs_observations_and_the_cheap_experiments_only() -> None:
    report = nndoctor.check_subject(_subject(), selection=Selection(quick=True))
    overfit = report.result("cannot-overfit-tiny-batch")
    assert overfit.status.value == "skipped" and "--quick" in overfit.detail
    # A cheap experiment still runs: batch dependence needs one forward of a copy.
    assert report.result("batch-dependence").status.value == "passed"
    assert not any("--quick" in c.detail for c in report.checks if c.kind == "observation")


def test_select_by_reason_number_and_ignore_by_id() -> None:
    report = nndoctor.check_subject(
        _subject(), selection=Selection(select=("23",), ignore=("params-frozen",))
    )
    ran = {c.check for c in report.checks if not c.detail.startswith(("not selected", "ignored"))}
    assert ran and all(23 in report.result(c).reasons for c in ran)
    assert "params-frozen" not in ran


def test_experiments_run_after_observations_most_informative_first() -> None:
    specs = ordered_checks()
    kinds = [s.kind for s in specs]
    assert kinds == sorted(kinds, key=lambda k: k == "experiment")
    experiments = [s.id for s in specs if s.kind == "experiment"]
    assert experiments[0] == "cannot-overfit-tiny-batch"


def test_a_refuted_warning_becomes_a_note_and_an_error_stands() -> None:
    from nndoctor.checks.registry import Refutation
    from nndoctor.engine import _apply_refutations
    from nndoctor.report.model import CheckResult, Finding, Severity, Status

    def finding(check: str, severity: Severity, aspect: str) -> Finding:
        return Finding(check, [36], severity, "title", "message.", "fix", aspect=aspect)

    warned = finding("update-ratio", Severity.WARNING, "high")
    other_side = finding("learning-rate-out-of-range", Severity.WARNING, "low")
    erred = finding("loss-diverging", Severity.ERROR, "high")
    results = [
        CheckResult(f.check, [36], "observation", Status.FAILED, "detail")
        for f in (warned, other_side, erred)
    ]
    refuted = {
        "update-ratio:high": Refutation("A twin trained."),
        "learning-rate-out-of-range:high": Refutation("not this side"),
        "loss-diverging:high": Refutation("A twin trained."),
    }
    _apply_refutations(refuted, results, [warned, other_side, erred])
    assert warned.severity == Severity.INFO and warned.message == "message. A twin trained."
    assert warned.evidence["refuted"] == "A twin trained."
    assert other_side.severity == Severity.WARNING  # another aspect of the check
    assert erred.severity == Severity.ERROR  # errors rest on evidence of their own
    assert [r.status for r in results] == [Status.PASSED, Status.FAILED, Status.FAILED]


def test_an_experiment_that_tests_the_errors_claim_itself_refutes_the_error_too() -> None:
    from nndoctor.checks.registry import Refutation
    from nndoctor.engine import _apply_refutations
    from nndoctor.report.model import CheckResult, Finding, Severity, Status

    erred = Finding("update-ratio", [33, 36], Severity.ERROR, "t", "m.", "f", aspect="high")
    kept = Finding("loss-diverging", [36], Severity.ERROR, "t", "m.", "f", aspect="high")
    results = [
        CheckResult(f.check, [36], "observation", Status.FAILED, "detail") for f in (erred, kept)
    ]
    refuted = {
        "update-ratio:high": Refutation("The rate trains.", errors=True),
        "loss-diverging:high": Refutation("The rate trains."),
    }
    _apply_refutations(refuted, results, [erred, kept])
    assert erred.severity == Severity.INFO and erred.message == "m. The rate trains."
    assert kept.severity == Severity.ERROR  # refuted as a warning only
    assert [r.status for r in results] == [Status.PASSED, Status.FAILED]


def test_a_refutation_of_errors_stands_whichever_experiment_ran_last() -> None:
    # The rate trial refutes update-ratio's error; the tiny-batch comparison, which refutes
    # its warnings only, ran after it in a full run and must not take that back.
    from nndoctor.checks.registry import Refutation
    from nndoctor.engine import merge_refutations

    trial = {"update-ratio:high": Refutation("The rate trains.", errors=True)}
    tiny = {"update-ratio:high": Refutation("SGD fits a tiny batch.")}
    for order in ((trial, tiny), (tiny, trial)):
        merged: dict[str, Refutation] = {}
        for refuted in order:
            merge_refutations(merged, refuted)
        assert merged["update-ratio:high"].errors
    merged = {}
    merge_refutations(merged, tiny)
    assert merged == tiny


def test_the_experiment_clock_counts_processor_time_not_waiting() -> None:
    # A busy machine stretches the wall clock, not the processor time of the work itself:
    # an experiment waiting for the processor spends no budget while it waits.
    import time
    from types import SimpleNamespace

    import torch

    from nndoctor.engine import ExperimentClock

    lab = SimpleNamespace(device=torch.device("cpu"), replay_cpu_seconds=0.0)
    clock = ExperimentClock(lab)  # type: ignore[arg-type]
    assert clock.spread == max(1, torch.get_num_threads())
    clock.start()
    time.sleep(0.5)
    assert clock.seconds() < 0.1
    start = time.process_time()
    while time.process_time() - start < 0.2:
        pass
    lab.replay_cpu_seconds += 4.0  # a replay's own processor time is counted too
    spent = clock.seconds() * clock.spread
    assert 4.2 <= spent < 4.5
    on_accelerator = ExperimentClock(SimpleNamespace(device=torch.device("meta")))  # type: ignore[arg-type]
    assert on_accelerator.spread == 1  # one thread drives the device


def test_a_crashed_checks_detail_is_one_short_line() -> None:
    from nndoctor.engine import CRASH_DETAIL_CHARS, _crash_line

    backends = "'aten::eq' is only available for these backends: " + ", ".join(["CPU"] * 200)
    line = _crash_line(NotImplementedError(f"Could not run 'aten::eq'.\n{backends}"))
    assert line == "NotImplementedError: Could not run 'aten::eq'."
    long = _crash_line(RuntimeError("x" * 1000))
    assert len(long) == CRASH_DETAIL_CHARS and long.endswith("…")
    assert _crash_line(ValueError()) == "ValueError: "
