"""The registry's contract: manuals, reasons, tests per check, and no hooks in checks."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from nndoctor.checks.registry import DOC_HEADINGS, all_checks, register_check
from nndoctor.reasons import REASONS, coverage

TESTS = Path(__file__).resolve().parents[1]
PACKAGE = TESTS.parent / "nndoctor"


def _test_sources() -> str:
    return "\n".join(p.read_text(encoding="utf-8") for p in TESTS.rglob("test_*.py"))


@pytest.mark.parametrize("spec", all_checks(), ids=lambda s: s.id)
def test_every_check_has_a_manual_with_every_heading(spec) -> None:
    doc = spec.doc
    assert doc.splitlines()[0].strip(), f"{spec.id}: the docstring needs a one-line title"
    for heading in DOC_HEADINGS:
        assert re.search(rf"^{heading}:\s*$", doc, flags=re.M), f"{spec.id}: missing '{heading}:'"


@pytest.mark.parametrize("spec", all_checks(), ids=lambda s: s.id)
def test_every_check_has_a_firing_and_a_silent_test(spec) -> None:
    sources = _test_sources()
    assert re.search(rf"fires\(\s*\"{re.escape(spec.id)}\"", sources), (
        f"no @pytest.mark.fires({spec.id!r}) test"
    )
    assert re.search(rf"silent\(\s*\"{re.escape(spec.id)}\"", sources), (
        f"no @pytest.mark.silent({spec.id!r}) test"
    )


def test_ids_are_symptom_slugs_and_reasons_in_range() -> None:
    for spec in all_checks():
        assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", spec.id), spec.id
        assert spec.reasons and all(r in REASONS for r in spec.reasons)


def test_duplicate_ids_are_rejected() -> None:
    existing = all_checks()[0].id
    with pytest.raises(ValueError, match="registered twice"):
        register_check(id=existing, reasons=(1,))(lambda ctx: None)


def test_reasons_out_of_range_are_rejected() -> None:
    with pytest.raises(ValueError, match="1..37"):
        register_check(id="never-registered", reasons=(38,))


def test_refuted_findings_name_registered_checks_and_only_experiments_refute() -> None:
    ids = {spec.id for spec in all_checks()}
    refuting = [spec for spec in all_checks() if spec.refutes]
    assert refuting, "no experiment declares a finding it can refute"
    for spec in refuting:
        assert spec.kind == "experiment", spec.id
        for key in spec.refutes:
            check, _, aspect = key.partition(":")
            assert check in ids and check != spec.id and aspect, (spec.id, key)


def test_a_check_may_refute_only_what_it_declares() -> None:
    from nndoctor.checks.registry import CheckContext, Refutation, get_check
    from nndoctor.probes.recording import Recording

    ctx = CheckContext(
        spec=get_check("optimizer-underperforms"), subject=None, recording=Recording()
    )
    ctx.refute("update-ratio:high", "evidence")
    assert ctx.refuted == {"update-ratio:high": Refutation("evidence")}
    with pytest.raises(ValueError, match="does not declare"):
        ctx.refute("dead-relus:", "evidence")


def test_an_inconclusive_pass_is_marked_so_in_the_report() -> None:
    from nndoctor.checks.lab import Lab
    from nndoctor.checks.registry import get_check
    from nndoctor.engine import Selection, run_checks
    from nndoctor.probes.recording import Recording

    spec = get_check("learning-rate-out-of-range")
    real = spec.func
    try:
        object.__setattr__(spec, "func", lambda ctx: ctx.inconclusive("no evidence either way"))
        results, _ = run_checks(
            None, Recording(), Lab(None), selection=Selection(select=(spec.id,))
        )
    finally:
        object.__setattr__(spec, "func", real)
    (result,) = [r for r in results if r.check == spec.id]
    assert result.status.value == "passed" and result.detail == "no evidence either way"
    assert result.conclusive is False and result.to_dict()["conclusive"] is False


def test_coverage_table_comes_from_the_registry() -> None:
    rows = coverage()
    assert [r["reason"] for r in rows] == list(range(1, 38))
    by_reason = {r["reason"]: {c["check"] for c in r["checks"]} for r in rows}
    for spec in all_checks():
        for reason in spec.reasons:
            assert spec.id in by_reason[reason]


# Registration order breaks ties in the diagnosis ranking, so moving a check to another
# module must not reorder it. New checks may register anywhere; these keep their order.
PINNED_ORDER = (
    "class-imbalance",
    "too-few-examples",
    "batch-too-large",
    "model-ignores-input",
    "labels-not-connected",
    "nothing-generalizes",
    "label-noise",
    "input-not-finite",
    "input-constant",
    "batch-repeated",
    "input-uint8-range",
    "input-channels-last",
    "targets-sorted",
    "single-label-batches",
    "loader-not-shuffled",
    "custom-layer-gradient",
    "batch-dependence",
    "width-one-bottleneck",
    "loss-not-at-chance",
    "loss-input-mismatch",
    "loss-mismatches-task",
    "loss-term-dominates",
    "simpler-task-trains",
    "loss-accuracy-disagree",
    "non-finite-values",
    "input-not-standardized",
    "feature-scales-differ",
    "augmentation-too-strong",
    "pretrained-normalization-mismatch",
    "split-preprocessing-differs",
    "regularisation-prevents-fit",
    "optimizer-underperforms",
    "learning-rate-out-of-range",
    "hyperparameters-out-of-range",
    "learning-rate-schedule",
    "cannot-overfit-tiny-batch",
    "params-not-in-optimizer",
    "params-without-grad",
    "params-not-changing",
    "params-frozen",
    "zero-grad-missing",
    "train-in-eval-mode",
    "give-it-time",
    "dead-relus",
    "saturated-activations",
    "activation-scale-drift",
    "weights-constant-init",
    "gradient-norm-spread",
    "update-ratio",
    "loss-diverging",
)


def test_checks_keep_their_registration_order() -> None:
    # In a fresh interpreter: the test modules import check modules in their own order.
    script = "from nndoctor.checks.registry import all_checks\nfor s in all_checks(): print(s.id)"
    ids = subprocess.run(
        [sys.executable, "-c", script], cwd=TESTS.parent, capture_output=True, text=True, check=True
    ).stdout.split()
    assert [i for i in ids if i in PINNED_ORDER] == [i for i in PINNED_ORDER if i in ids]


@pytest.mark.parametrize("folder", ["checks", "report"])
def test_checks_and_renderers_never_install_hooks(folder: str) -> None:
    hook_calls = re.compile(
        r"register_(module_)?(forward|backward|full_backward)\w*hook|register_hook\(|"
        r"register_optimizer_step|register_step_(pre|post)_hook|register_post_accumulate_grad_hook"
    )
    for path in (PACKAGE / folder).rglob("*.py"):
        assert not hook_calls.search(path.read_text(encoding="utf-8")), f"{path} installs a hook"


def test_no_print_outside_report_and_cli() -> None:
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE).as_posix()
        if rel.startswith("report/") or rel == "cli.py":
            continue
        assert not re.search(r"^\s*print\(", path.read_text(encoding="utf-8"), flags=re.M), rel
