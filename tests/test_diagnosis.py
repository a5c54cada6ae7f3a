"""The diagnosis: causes first with the findings they explain, symptoms nested, a
differential when only symptoms were found; links declared in the registry."""

from __future__ import annotations

from pathlib import Path

from nndoctor.checks import causes
from nndoctor.checks.registry import all_checks
from nndoctor.diagnosis import diagnose
from nndoctor.report.model import HARMLESS, CheckResult, Finding, Severity, Status


def finding(check: str, severity: str = "error", *reasons: int) -> Finding:
    return Finding(check, list(reasons) or [1], Severity(severity), check, "m", "fix")


def test_a_cause_explains_its_symptoms() -> None:
    overfit = finding("cannot-overfit-tiny-batch", "error", 27)
    chance = finding("loss-not-at-chance", "warning", 17)
    softmax = finding("loss-input-mismatch", "error", 19)
    d = diagnose([overfit, chance, softmax])
    assert [c.lead.check for c in d.causes] == ["loss-input-mismatch"]
    assert {f.check for f in d.causes[0].explains} == {
        "cannot-overfit-tiny-batch",
        "loss-not-at-chance",
    }
    assert d.causes[0].confidence == "high" and not d.independent and not d.differential
    assert (softmax.role, overfit.role, chance.role) == ("cause", "symptom", "symptom")
    ordered = d.ordered_findings([overfit, chance, softmax])
    assert ordered[0] is softmax


def test_symptoms_alone_give_a_differential_not_a_cause() -> None:
    overfit = finding("cannot-overfit-tiny-batch", "error", 27)
    chance = finding("loss-not-at-chance", "warning", 17)
    d = diagnose([overfit, chance])
    assert d.causes == [] and {f.check for f in d.independent} == {overfit.check, chance.check}
    reasons = [lead.reason for lead in d.differential]
    # 19 and 28 are pointed to by both symptoms; 19 comes first in the lead symptom's list.
    assert reasons[:2] == [19, 28]
    assert set(d.differential[0].pointed_to_by) == {overfit.check, chance.check}
    assert overfit.role == "independent"


def results_for(reason: int, *, conclusive: bool = True) -> list[CheckResult]:
    """Every registered check covering ``reason`` passed (to a conclusion or not)."""
    return [
        CheckResult(s.id, list(s.reasons), s.kind, Status.PASSED, "", conclusive=conclusive)
        for s in all_checks()
        if reason in s.reasons
    ]


def test_a_reason_every_check_cleared_goes_last_in_the_differential() -> None:
    chance = finding("loss-not-at-chance", "warning", 17, 28)
    d = diagnose([chance], results=results_for(19))
    reasons = [lead.reason for lead in d.differential]
    assert reasons[0] == 28 and reasons[-1] == 19  # 19 was looked at: nothing found
    last = d.differential[-1]
    assert "loss-input-mismatch" in last.checked_clean
    assert "nothing found" in last.text and last.to_dict()["checked_clean"]
    assert d.differential[0].checked_clean == ()


def test_an_inconclusive_or_missing_check_leaves_a_reason_in_place() -> None:
    chance = finding("loss-not-at-chance", "warning", 17, 28)
    in_place = [lead.reason for lead in diagnose([chance]).differential]
    assert in_place[0] == 28
    inconclusive = diagnose([chance], results=results_for(28, conclusive=False))
    assert [lead.reason for lead in inconclusive.differential] == in_place
    one_skipped = results_for(28)
    one_skipped[0] = CheckResult(one_skipped[0].check, [28], "observation", Status.SKIPPED)
    assert [lead.reason for lead in diagnose([chance], results=one_skipped).differential] == (
        in_place
    )
    # A reason some finding names is not clear, whatever its checks' statuses.
    named = finding("loss-not-at-chance", "warning", 17, 19)
    named_order = [lead.reason for lead in diagnose([named], results=results_for(19)).differential]
    assert named_order == [lead.reason for lead in diagnose([named]).differential]
    assert named_order[-1] != 19


def test_an_info_that_explains_an_unexplained_symptom_leads_as_a_weak_cause() -> None:
    chance = finding("loss-not-at-chance", "warning", 17)
    scales = finding("feature-scales-differ", "info", 12)
    unrelated = finding("class-imbalance", "info", 8)
    d = diagnose([chance, scales, unrelated])
    assert [c.lead.check for c in d.causes] == ["feature-scales-differ"]
    assert d.causes[0].confidence == "low" and d.causes[0].explains == [chance]
    assert (scales.role, chance.role, unrelated.role) == ("cause", "symptom", "independent")
    assert d.independent == [] and d.differential == []
    assert d.ordered_findings([chance, unrelated, scales])[:2] == [scales, chance]


def test_an_info_its_own_evidence_shows_harmless_never_leads_as_a_cause() -> None:
    # A redundant bias (zero gradient that cancels) says nothing about a failure to fit.
    overfit = finding("cannot-overfit-tiny-batch", "error", 27)
    bias = finding("params-without-grad", "info", 23)
    bias.aspect = HARMLESS
    d = diagnose([overfit, bias])
    assert d.causes == [] and bias.role == "independent"
    assert d.differential and overfit.role == "independent"


def test_infos_stay_advice_when_a_loud_cause_explains_the_symptoms_or_none_are_loud() -> None:
    chance = finding("loss-not-at-chance", "warning", 17)
    softmax = finding("loss-input-mismatch", "error", 19)
    scales = finding("feature-scales-differ", "info", 12)
    d = diagnose([chance, softmax, scales])
    assert [c.lead.check for c in d.causes] == ["loss-input-mismatch"]
    assert scales.role == "independent"
    quiet = diagnose([finding("feature-scales-differ", "info", 12)])
    assert quiet.causes == [] and quiet.empty


def test_a_width_one_layer_explains_the_dead_relus_behind_it() -> None:
    dead = finding("dead-relus", "warning", 35, 28)
    narrow = finding("width-one-bottleneck", "warning", 24)
    overfit = finding("cannot-overfit-tiny-batch", "error", 27)
    d = diagnose([dead, overfit, narrow])
    assert [c.lead.check for c in d.causes] == ["width-one-bottleneck"]
    assert {f.check for f in d.causes[0].explains} == {"dead-relus", "cannot-overfit-tiny-batch"}


def test_activations_off_scale_at_the_start_explain_a_loss_met_without_data() -> None:
    # An inflated first loss makes "1% of the start" reachable by any input.
    met = finding("loss-met-without-data", "error", 18)
    drift = finding("activation-scale-drift", "warning", 28, 35)
    d = diagnose([met, drift])
    assert [c.lead.check for c in d.causes] == ["activation-scale-drift"]
    assert [f.check for f in d.causes[0].explains] == ["loss-met-without-data"]


def test_mutual_explanations_go_to_the_stronger_finding() -> None:
    nan = finding("non-finite-values", "error", 37)
    lr = finding("learning-rate-out-of-range", "warning", 36)
    d = diagnose([lr, nan])
    assert [c.lead.check for c in d.causes] == ["non-finite-values"]
    assert [f.check for f in d.causes[0].explains] == ["learning-rate-out-of-range"]


def test_explanation_is_transitive_and_each_symptom_is_nested_once() -> None:
    frozen = finding("params-frozen", "warning", 23)
    no_grad = finding("params-without-grad", "warning", 23)
    overfit = finding("cannot-overfit-tiny-batch", "error", 27)
    d = diagnose([overfit, no_grad, frozen])
    assert [c.lead.check for c in d.causes] == ["params-frozen"]
    nested = [f.check for c in d.causes for f in c.explains]
    assert sorted(nested) == ["cannot-overfit-tiny-batch", "params-without-grad"]


def test_independent_causes_are_ranked_by_severity() -> None:
    imbalance = finding("class-imbalance", "warning", 8)
    softmax = finding("loss-input-mismatch", "error", 19)
    d = diagnose([imbalance, softmax])
    assert [c.lead.check for c in d.causes] == ["loss-input-mismatch", "class-imbalance"]
    assert d.causes[1].confidence == "low"


def test_infos_are_never_in_the_diagnosis() -> None:
    d = diagnose([finding("give-it-time", "info", 31)])
    assert d.empty and d.differential == []


def test_every_declared_link_names_a_registered_check() -> None:
    ids = {s.id for s in all_checks()}

    def checks(links: frozenset[str]) -> set[str]:
        return {link.split(":", 1)[0] for link in links}

    for name, group in causes.every_group().items():
        assert checks(group) <= ids, (name, checks(group) - ids)
    for spec in all_checks():
        assert checks(spec.explains) <= ids, (spec.id, checks(spec.explains) - ids)
        assert spec.id not in spec.explains
        if spec.symptom:
            assert spec.differential, f"symptom {spec.id} needs a differential"
            assert all(1 <= r <= 37 and text for r, text in spec.differential)


def test_the_engine_holds_no_check_ids() -> None:
    source = (Path(__file__).resolve().parents[1] / "nndoctor" / "engine.py").read_text()
    for spec in all_checks():
        assert f'"{spec.id}"' not in source, spec.id


def test_an_aspect_link_explains_only_that_side_of_a_check() -> None:
    # A frozen layer explains updates too small, not updates that rewrite the weights.
    frozen = finding("params-frozen", "warning", 23)
    tiny = finding("update-ratio", "warning", 33, 36)
    tiny.aspect = "low"
    runaway = finding("update-ratio", "error", 33, 36)
    runaway.aspect = "high"
    d = diagnose([frozen, tiny])
    assert [c.lead.check for c in d.causes] == ["params-frozen"] and d.causes[0].explains == [tiny]
    d = diagnose([frozen, runaway])
    assert d.causes[0].explains == [] and runaway.role == "independent"


def test_dead_relus_beside_a_diverging_loss_are_its_effect_not_the_cause() -> None:
    dead = finding("dead-relus", "warning", 35, 28)
    diverging = finding("loss-diverging", "warning", 36)
    runaway = finding("update-ratio", "error", 33, 36)
    runaway.aspect = "high"
    d = diagnose([dead, runaway, diverging])
    assert d.causes == [] and dead.role == "independent"
    assert d.differential[0].reason == 36
    # Without a diverging loss, dead ReLUs still explain what they cause.
    overfit = finding("cannot-overfit-tiny-batch", "error", 27)
    d = diagnose([dead, overfit])
    assert [c.lead.check for c in d.causes] == ["dead-relus"] and d.causes[0].explains == [overfit]
