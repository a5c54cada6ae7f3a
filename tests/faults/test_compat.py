"""The compatibility suite (examples/compat/, nndoctor/faults/compat.py): as wide as promised,
every fault applies to its base and changes what the script runs, every script takes --seed
and describes itself, and the dev/test split is fixed and about a third test."""

from __future__ import annotations

import ast
import os
import subprocess
import sys

import pytest

from nndoctor.bench.runner import examples_root
from nndoctor.faults import apply_edits, faults, get_healthy, healthy_cases
from nndoctor.faults.registry import Fault, HealthyCase

EXAMPLES = examples_root()
COMPAT = EXAMPLES / "compat"
CASES = healthy_cases(select="compat-*")
FAULTS = faults(select="compat-*")
HEALTHY_LINE = "Healthy: nndoctor should report no warning and no error."


def test_the_suite_is_as_wide_as_promised() -> None:
    assert len(CASES) >= 15
    assert all(c.name.startswith("compat-") and c.script for c in CASES)
    assert all(f.name.startswith("compat-") for f in FAULTS)
    per_base = {c.name: sum(f.base == c.name for f in FAULTS) for c in CASES}
    assert all(2 <= n <= 3 for n in per_base.values()), per_base


def test_every_script_in_the_folder_is_a_case() -> None:
    scripts = {f"compat/{p.name}" for p in COMPAT.glob("*.py")}
    assert scripts == {c.script for c in CASES}


def test_about_a_third_is_test_and_a_fault_shares_its_base_split() -> None:
    share = sum(c.split == "test" for c in CASES) / len(CASES)
    assert 0.25 <= share <= 0.45
    for fault in FAULTS:
        assert fault.split == get_healthy(fault.base).split, fault.name


def test_the_readme_states_the_split() -> None:
    readme = (COMPAT / "README.md").read_text(encoding="utf-8")
    for case in CASES:
        assert case.script is not None
        name = case.script.split("/")[-1]
        row = next((line for line in readme.splitlines() if f"`{name}`" in line), None)
        assert row is not None, f"{name} is not in examples/compat/README.md"
        assert f"| {case.split} |" in row, f"{name}: the README's split is not {case.split}"


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_script_parses_reads_a_seed_and_says_it_is_healthy(case: HealthyCase) -> None:
    assert case.script is not None
    text = (EXAMPLES / case.script).read_text(encoding="utf-8")
    tree = ast.parse(text)
    doc = ast.get_docstring(tree)
    assert doc and HEALTHY_LINE in doc, (
        f"{case.script}: the docstring must end with {HEALTHY_LINE!r}"
    )
    assert doc.split(HEALTHY_LINE)[0].strip(), "the docstring says what it trains"
    assert "--seed" in text
    # Nothing is downloaded or read from disk: the data is generated in the script.
    for banned in ("urlopen", "requests.", "from_pretrained", "download=True", "np.load(", "open("):
        assert banned not in text, f"{case.script} uses {banned}"


@pytest.mark.parametrize("fault", FAULTS, ids=lambda f: f.name)
def test_fault_applies_once_changes_code_and_compiles(fault: Fault) -> None:
    base = get_healthy(fault.base)
    assert base.script is not None
    text = (EXAMPLES / base.script).read_text(encoding="utf-8")
    edited = apply_edits(text, fault.edits, fault=fault.name)
    # The edit must change what runs, not only a comment or the docstring.
    assert ast.dump(ast.parse(edited)) != ast.dump(ast.parse(text)), fault.name
    assert fault.what and fault.reason not in fault.also


def test_a_script_takes_its_seed_from_the_command_line() -> None:
    # The cheapest script, run for real: two seeds give two different fits, one seed twice
    # the same (data and initialisation follow --seed).
    script = COMPAT / "poly_regression.py"

    def run(seed: int) -> str:
        done = subprocess.run(
            [sys.executable, str(script), "--seed", str(seed)],
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "OMP_NUM_THREADS": "1"},
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    first = run(0)
    assert "Actual function" in first
    assert run(0) == first
    assert run(1) != first
