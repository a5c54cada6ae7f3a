"""``[tool.nndoctor]`` in pyproject.toml: finding it, validating it, and the flags over it.

The parsing tests are pure; the precedence tests run ``nndoctor check`` on
``examples/softmax_before_ce.py`` restricted to reason 19 (one cheap check, one
error-severity finding), from a temporary project folder.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

from nndoctor.cli import EXIT_FINDINGS, EXIT_OK, EXIT_USAGE, app
from nndoctor.config import Config, ConfigError, find_pyproject, load, parse

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
SOFTMAX = EXAMPLES / "softmax_before_ce.py"  # loss-input-mismatch (reason 19), an error
HEALTHY = EXAMPLES / "healthy_mlp.py"

runner = CliRunner(env={"COLUMNS": "200", "NO_COLOR": "1"})


def pyproject(folder: Path, body: str) -> Path:
    path = folder / "pyproject.toml"
    path.write_text(textwrap.dedent(body), encoding="utf-8")
    return path


# -- parsing -----------------------------------------------------------------------------


def test_every_key_is_read_with_its_type() -> None:
    config = parse(
        {
            "select": ["loss-input-mismatch", 27, "17,23"],
            "ignore": "give-it-time",
            "steps": 5,
            "timeout": 30,
            "fail-on": "warning",
            "quick": True,
            "experiment-seconds": 10,
            "seed": 3,
            "thresholds": {"overfit_steps": 50, "chance_ratio_warning": 2},
        }
    )
    assert config.select == ("loss-input-mismatch", "27", "17", "23")
    assert config.ignore == ("give-it-time",)
    assert (config.steps, config.timeout, config.fail_on, config.quick, config.seed) == (
        5,
        30.0,
        "warning",
        True,
        3,
    )
    assert config.experiment_seconds == 10.0
    # An integer is a fine float threshold (TOML writes 2 for 2.0) and becomes one.
    assert config.thresholds == {"overfit_steps": 50, "chance_ratio_warning": 2.0}
    assert isinstance(config.thresholds["chance_ratio_warning"], float)


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"stpes": 5}, "unknown key 'stpes' (did you mean 'steps'?)"),
        ({"fail_on": "error"}, "unknown key 'fail_on' (did you mean 'fail-on'?)"),
        ({"colour": True}, "unknown key 'colour' (known keys: select, ignore, steps"),
        ({"steps": 0}, "steps: expected a whole number of steps of at least 1, got 0"),
        ({"steps": "20"}, "steps: expected a whole number of steps of at least 1, got '20'"),
        ({"timeout": -1}, "timeout: expected a positive number of seconds, got -1"),
        (
            {"experiment-seconds": 0},
            "experiment-seconds: expected a positive number of seconds, got 0",
        ),
        ({"fail-on": "errors"}, "fail-on: expected one of error, warning, never, got 'errors'"),
        ({"quick": "yes"}, "quick: expected true or false, got 'yes'"),
        ({"select": ["no-such-check"]}, "select: unknown check id 'no-such-check'"),
        ({"ignore": [38]}, "ignore: reason numbers run from 1 to 37, not 38"),
        (
            {"thresholds": {"overfit_stpes": 5}},
            "unknown threshold 'overfit_stpes' (did you mean 'overfit_steps'?)",
        ),
        (
            {"thresholds": {"overfit_steps": 1.5}},
            "thresholds.overfit_steps: expected a whole number, got 1.5",
        ),
        (
            {"thresholds": {"chance_ratio_warning": True}},
            "chance_ratio_warning: expected a number, got True",
        ),
    ],
)
def test_bad_configuration_is_one_clear_line(table: dict, message: str, tmp_path: Path) -> None:
    path = tmp_path / "pyproject.toml"
    with pytest.raises(ConfigError) as caught:
        parse(table, path)
    text = str(caught.value)
    assert message in text
    assert text.startswith(f"{path}: [tool.nndoctor]")
    assert "\n" not in text


def test_the_nearest_pyproject_with_the_table_is_found_from_below(tmp_path: Path) -> None:
    root = pyproject(tmp_path, "[tool.nndoctor]\nsteps = 7\n")
    # A nested project's pyproject.toml without the table does not hide the outer one.
    inner = tmp_path / "pkg" / "src"
    inner.mkdir(parents=True)
    pyproject(tmp_path / "pkg", "[project]\nname = 'pkg'\n")
    assert find_pyproject(inner) == root
    assert load(start=inner).steps == 7
    # ...but one with its own table wins.
    nested = pyproject(tmp_path / "pkg", "[tool.nndoctor]\nsteps = 3\n")
    assert find_pyproject(inner) == nested and load(start=inner).steps == 3


def test_a_pyproject_without_the_table_means_every_default(tmp_path: Path) -> None:
    config = load(pyproject(tmp_path, "[project]\nname = 'x'\n"))
    assert config == Config(path=tmp_path / "pyproject.toml")


def test_flags_replace_what_the_file_says() -> None:
    config = Config(select=("19",), steps=5, fail_on="never", thresholds={"overfit_steps": 9})
    merged = config.merged(select=("27",), steps=None, fail_on="error", quick=None)
    assert merged.select == ("27",) and merged.steps == 5 and merged.fail_on == "error"
    assert merged.thresholds == {"overfit_steps": 9}


# -- the command line over the file --------------------------------------------------------


def check(*args: str | Path) -> object:
    return runner.invoke(app, ["check", *map(str, args)])


def test_the_file_sets_select_steps_and_fail_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pyproject(
        tmp_path,
        """
        [tool.nndoctor]
        select = [19]
        steps = 3
        fail-on = "never"
        """,
    )
    monkeypatch.chdir(tmp_path)
    report_path = tmp_path / "report.json"
    result = check(SOFTMAX, "--json", report_path)
    assert result.exit_code == EXIT_OK, result.output  # fail-on never, from the file
    report = json.loads(report_path.read_text())
    assert report["run"]["step_budget"] == 3 and report["run"]["steps_observed"] == 3
    ran = [c["check"] for c in report["checks"] if c["status"] != "skipped"]
    assert ran == ["loss-input-mismatch"]
    assert [f["check"] for f in report["findings"]] == ["loss-input-mismatch"]


def test_command_line_flags_override_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pyproject(
        tmp_path,
        """
        [tool.nndoctor]
        select = ["give-it-time"]
        steps = 3
        fail-on = "never"
        """,
    )
    monkeypatch.chdir(tmp_path)
    report_path = tmp_path / "report.json"
    result = check(
        SOFTMAX, "--select", "19", "--steps", "4", "--fail-on", "error", "--json", report_path
    )
    assert result.exit_code == EXIT_FINDINGS, result.output
    report = json.loads(report_path.read_text())
    assert report["run"]["step_budget"] == 4
    assert [c["check"] for c in report["checks"] if c["status"] != "skipped"] == [
        "loss-input-mismatch"
    ]


def test_thresholds_from_the_file_reach_the_checks(tmp_path: Path) -> None:
    # A healthy classifier starts near ln(4); a ratio limit of 0.5 makes that "far above
    # chance". Its twin re-drawn by PyTorch's default initialisation starts as high, so the
    # finding is an info (with the default limits there is none at all).
    config = pyproject(
        tmp_path,
        """
        [tool.nndoctor]
        select = ["loss-not-at-chance"]
        steps = 2

        [tool.nndoctor.thresholds]
        chance_ratio_warning = 0.5
        chance_abs_margin = 0
        """,
    )
    report_path = tmp_path / "report.json"
    result = check(HEALTHY, "--config", config, "--fail-on", "warning", "--json", report_path)
    assert result.exit_code == EXIT_OK, result.output
    findings = json.loads(report_path.read_text())["findings"]
    assert [(f["check"], f["severity"]) for f in findings] == [("loss-not-at-chance", "info")]
    assert findings[0]["evidence"]["ratio"] > 0.5


def test_an_unknown_key_in_the_file_is_a_usage_error_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pyproject(tmp_path, "[tool.nndoctor]\nfail_on = 'warning'\n")
    monkeypatch.chdir(tmp_path)
    result = check(SOFTMAX)
    assert result.exit_code == EXIT_USAGE
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert (
        "pyproject.toml: [tool.nndoctor]: unknown key 'fail_on' (did you mean 'fail-on'?)"
        in lines[0]
    )
    assert "Traceback" not in result.output


def test_a_missing_config_file_and_broken_toml_are_usage_errors(tmp_path: Path) -> None:
    result = check(SOFTMAX, "--config", tmp_path / "absent.toml")
    assert result.exit_code == EXIT_USAGE and "no such configuration file" in result.stderr
    broken = tmp_path / "pyproject.toml"
    broken.write_text("[tool.nndoctor\nsteps = 3\n", encoding="utf-8")
    result = check(SOFTMAX, "--config", broken)
    assert result.exit_code == EXIT_USAGE and "cannot be read as TOML" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_broken_pyproject_found_from_below_is_an_error_not_the_defaults(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("[tool.nndoctor]\nsteps = \n", encoding="utf-8")
    inner = tmp_path / "src"
    inner.mkdir()
    with pytest.raises(ConfigError, match="cannot be read as TOML"):
        load(start=inner)
