"""Scoring bench runs: found / other / missed, top-1, exact and false alarms."""

from __future__ import annotations

from typing import Any

from nndoctor.bench.runner import Outcome
from nndoctor.bench.score import false_alarms, fault_verdict, reason_matrix, summarise


def finding(check: str, severity: str, *reasons: int) -> dict[str, Any]:
    return {"check": check, "severity": severity, "reasons": list(reasons), "title": check}


def fault(
    findings: list[dict[str, Any]], accepted: tuple[int, ...] = (19, 18), **kw: Any
) -> Outcome:
    return Outcome(
        name="f",
        seed=0,
        split=kw.pop("split", "dev"),
        fault=True,
        accepted=list(accepted),
        findings=findings,
        **kw,
    )


def test_found_top1_and_exact() -> None:
    v = fault_verdict(fault([finding("loss-input-mismatch", "error", 19)]))
    assert (v.status, v.top1, v.exact, v.first) == ("found", True, True, "loss-input-mismatch")


def test_found_but_a_symptom_first_is_not_top1_nor_exact() -> None:
    v = fault_verdict(
        fault(
            [
                finding("cannot-overfit-tiny-batch", "error", 24, 27, 30),
                finding("loss-input-mismatch", "error", 19),
            ]
        )
    )
    assert (v.status, v.top1, v.exact) == ("found", False, False)


def test_a_diagnosis_decides_top1_when_the_report_has_one() -> None:
    o = fault(
        [
            finding("cannot-overfit-tiny-batch", "error", 27),
            finding("loss-input-mismatch", "error", 19),
        ],
        diagnosis=[{"check": "loss-input-mismatch", "reasons": [19]}],
    )
    assert fault_verdict(o).top1


def test_infos_are_not_alarms() -> None:
    v = fault_verdict(fault([finding("give-it-time", "info", 31)]))
    assert v.status == "missed" and not v.top1
    healthy = Outcome("h", 0, "dev", False, findings=[finding("give-it-time", "info", 31)])
    assert false_alarms(healthy) == []


def test_only_other_reasons_is_other() -> None:
    assert fault_verdict(fault([finding("class-imbalance", "warning", 8)])).status == "other"


def test_a_crashed_script_counts_by_its_likely_reasons() -> None:
    o = fault([finding("not-observed", "error", 19, 25)], observed=False, likely_reasons=[19, 25])
    assert fault_verdict(o).status == "found"


def test_a_bench_error_is_no_verdict() -> None:
    o = fault([], error="exit 1, no report")
    assert fault_verdict(o).status == "error"
    summary = summarise([o])["dev"]
    assert summary.errors == 1 and summary.faults == 0 and summary.recall is None


def test_summary_per_split_and_all() -> None:
    outcomes = [
        fault([finding("loss-input-mismatch", "error", 19)], split="dev"),
        fault([], split="test"),
        Outcome("h", 0, "dev", False, findings=[finding("class-imbalance", "warning", 8)]),
        Outcome("h", 1, "dev", False, findings=[]),
    ]
    s = summarise(outcomes)
    assert list(s) == ["dev", "test", "all"]
    assert (s["dev"].recall, s["dev"].top1_rate, s["dev"].false_alarm_rate) == (1.0, 1.0, 0.5)
    assert (s["test"].recall, s["test"].missed) == (0.0, 1)
    assert (s["all"].faults, s["all"].found, s["all"].healthy_runs, s["all"].alarm_runs) == (
        2,
        1,
        2,
        1,
    )
    assert s["dev"].alarms_by_check["class-imbalance"] == 1


def test_reason_matrix_marks_accepted_and_other_reasons() -> None:
    names, rows = reason_matrix([fault([finding("class-imbalance", "warning", 8)], accepted=(19,))])
    assert names == ["f"]
    assert rows[0][8 - 1] == 1 and rows[0][19 - 1] == -1 and rows[0][0] == 0


def test_symptoms_only_score_top1_by_the_differential() -> None:
    o = fault(
        [finding("cannot-overfit-tiny-batch", "error", 27)],
        accepted=(19,),
        diagnosis=[],
        differential=[{"reason": 19, "look_at": "the loss input"}],
    )
    v = fault_verdict(o)
    assert v.top1 and v.first == "differential:19" and v.status == "other"


def test_list_top1_is_the_most_severe_finding() -> None:
    o = fault(
        [
            finding("loss-input-mismatch", "warning", 19),
            finding("cannot-overfit-tiny-batch", "error", 27),
        ],
        diagnosis=[{"check": "loss-input-mismatch", "reasons": [19]}],
    )
    v = fault_verdict(o)
    assert v.top1 and not v.list_top1
