"""The bench corpus: every fault applies to its base and runs as written; the corpus is as
wide as promised; the dev/test split is fixed and about a third test."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from nndoctor.bench.runner import examples_root
from nndoctor.faults import Edit, FaultError, apply_edits, faults, get_healthy, healthy_cases
from nndoctor.faults.registry import Fault, HealthyCase, register_fault, register_healthy

EXAMPLES = examples_root()
# Reasons that are bugs (REASONS.md); 27, 31 and 33 are ways of looking, counted where they fit.
BUG_REASONS = [*range(1, 27), 28, 29, 30, 32, 34, 35, 36, 37]
# Reason 14 (a pretrained model fed other preprocessing) has one fault: the corpus has one
# pretrained setup, and every other mismatch tried on it (raw 0-255 pixels, ImageNet
# constants) left its downstream accuracy at 99-100%, so it was no fault at all.
ONE_FAULT_ONLY = {14}


def test_the_corpus_is_as_wide_as_promised() -> None:
    planted, healthy = faults(), healthy_cases()
    reasons = {f.reason for f in planted}
    assert len(planted) >= 80
    assert len(reasons) >= 30
    assert len(healthy) >= 30


def test_every_bug_reason_has_two_faults() -> None:
    # Primary reasons only: an accepted second reason does not make a fault about it.
    counts = {r: sum(f.reason == r for f in faults()) for r in BUG_REASONS}
    thin = {r: n for r, n in counts.items() if n < (1 if r in ONE_FAULT_ONLY else 2)}
    assert not thin, f"reasons with fewer than two faults: {thin}"


@pytest.mark.parametrize("kind", ["faults", "healthy"])
def test_about_a_third_is_test(kind: str) -> None:
    items = faults() if kind == "faults" else healthy_cases()
    share = sum(i.split == "test" for i in items) / len(items)
    assert 0.25 <= share <= 0.45, f"{share:.0%} of the {kind} are in the test split"


def test_every_healthy_script_exists_and_takes_a_seed() -> None:
    for case in healthy_cases():
        if case.script is None:
            continue
        path = EXAMPLES / case.script
        assert path.is_file(), case.name
        assert "--seed" in path.read_text(encoding="utf-8"), f"{case.script} does not read --seed"


@pytest.mark.parametrize("fault", [f for f in faults() if f.kind == "script"], ids=lambda f: f.name)
def test_script_fault_applies_once_and_compiles(fault: Fault) -> None:
    base = get_healthy(fault.base)
    assert base.script is not None, f"{fault.name}: a script fault on a zoo subject"
    text = (EXAMPLES / base.script).read_text(encoding="utf-8")
    edited = apply_edits(text, fault.edits, fault=fault.name)
    assert edited != text
    compile(edited, f"{fault.name}.py", "exec")


@pytest.mark.parametrize(
    "fault", [f for f in faults() if f.kind == "subject"], ids=lambda f: f.name
)
def test_subject_fault_is_importable_by_name(fault: Fault) -> None:
    # The child process finds the transform through the registry: it must be a named function.
    assert get_healthy(fault.base).zoo is not None
    assert inspect.isfunction(fault.transform) and fault.transform.__name__ != "<lambda>"


def test_apply_edits_demands_exactly_one_match() -> None:
    assert apply_edits("a = 1\nb = 2\n", (Edit("b = 2", "b = 3"),)) == "a = 1\nb = 3\n"
    with pytest.raises(FaultError, match="0 times"):
        apply_edits("a = 1\n", (Edit("b = 2", "b = 3"),))
    with pytest.raises(FaultError, match="2 times"):
        apply_edits("x\nx\n", (Edit("x", "y"),))


def test_registration_rejects_bad_declarations() -> None:
    some = healthy_cases()[0]
    with pytest.raises(ValueError, match="twice"):
        register_healthy(some)
    with pytest.raises(ValueError, match="split"):
        register_healthy(HealthyCase("new-case", "train", "x", script="healthy_mlp.py"))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="exactly one"):
        register_fault(Fault("new-fault", some.name, 4, "dev", "x"))
    with pytest.raises(ValueError, match="1-37"):
        register_fault(Fault("new-fault", some.name, 38, "dev", "x", edits=(Edit("a", "b"),)))


def test_selection_matches_names_and_bases() -> None:
    mlp = [f for f in faults() if f.base == "mlp"]
    assert mlp and set(faults(select="mlp")) >= set(mlp)
    assert all(c.split == "test" for c in healthy_cases("test"))
    assert healthy_cases(select="no-such-case-anywhere") == []
    # Several patterns, comma-separated: the cases matching any one of them.
    both = {c.name for c in healthy_cases(select="mlp,no-such-case-anywhere, cnn")}
    assert {"mlp", "cnn"} <= both
    assert both == {c.name for c in healthy_cases(select="mlp")} | {
        c.name for c in healthy_cases(select="cnn")
    }


def test_the_examples_folder_is_found() -> None:
    assert (EXAMPLES / "healthy_mlp.py").is_file()
    assert isinstance(EXAMPLES, Path)
