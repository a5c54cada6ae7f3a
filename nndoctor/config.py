"""Configuration for ``nndoctor check`` from ``[tool.nndoctor]`` in a ``pyproject.toml``.

The file is found the way ruff finds its own: from the current directory upwards,
the first ``pyproject.toml`` that holds a ``[tool.nndoctor]`` table (a
``pyproject.toml`` without one is passed over, so a sub-package's own file does not
hide the project's settings). ``--config PATH`` names the file instead.

Recognised keys (kebab-case, as TOML in ``pyproject.toml`` usually is)::

    [tool.nndoctor]
    select = ["loss-input-mismatch", 27]   # check ids or reason numbers
    ignore = ["give-it-time"]
    steps = 20
    timeout = 120
    fail-on = "error"                      # error | warning | never
    quick = false
    experiment-seconds = 40                # time for experiments, most informative first
    seed = 0                               # torch, numpy and random, before the script runs

    [tool.nndoctor.thresholds]             # fields of nndoctor.Thresholds
    overfit_steps = 200

A command-line flag replaces the value from the file (``--select`` replaces
``select``, it does not add to it). An unknown key, a value of the wrong type or an
unknown check id is a :class:`ConfigError` with a one-line message naming the file
and the key; the CLI maps it to exit code 2.
"""

from __future__ import annotations

import difflib
import sys
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

FAIL_ON = ("error", "warning", "never")
SECTION = "tool.nndoctor"

# key in the file -> attribute of Config
_KEYS = {
    "select": "select",
    "ignore": "ignore",
    "steps": "steps",
    "timeout": "timeout",
    "fail-on": "fail_on",
    "quick": "quick",
    "experiment-seconds": "experiment_seconds",
    "seed": "seed",
    "thresholds": "thresholds",
}


class ConfigError(Exception):
    """A configuration that cannot be used; the message is one line."""


@dataclass(frozen=True)
class Config:
    """Settings from ``[tool.nndoctor]``; ``None`` means "not set, use the default"."""

    path: Path | None = None
    select: tuple[str, ...] | None = None
    ignore: tuple[str, ...] | None = None
    steps: int | None = None
    timeout: float | None = None
    fail_on: str | None = None
    quick: bool | None = None
    experiment_seconds: float | None = None
    seed: int | None = None
    thresholds: dict[str, Any] = field(default_factory=dict)

    def merged(self, **flags: Any) -> Config:
        """This config with every flag that is not None put over it (the command line wins)."""
        given = {k: v for k, v in flags.items() if v is not None}
        unknown = set(given) - {f.name for f in fields(self)}
        if unknown:
            raise TypeError(f"unknown settings: {sorted(unknown)}")
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values.update(given)
        return Config(**values)


def find_pyproject(start: Path | None = None) -> Path | None:
    """The nearest ``pyproject.toml`` with a ``[tool.nndoctor]`` table, from ``start`` upwards."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        candidate = folder / "pyproject.toml"
        if candidate.is_file():
            # A file that cannot be read may hold the [tool.nndoctor] the user meant: saying so
            # beats silently checking with the defaults (the error names the file and line).
            data = _read_toml(candidate)
            if "nndoctor" in data.get("tool", {}):
                return candidate
    return None


def load(path: Path | None = None, *, start: Path | None = None) -> Config:
    """The configuration in ``path``, or in the file found from ``start`` (default: cwd).

    No file (or no ``[tool.nndoctor]`` table) gives an empty :class:`Config`.
    """
    if path is None:
        path = find_pyproject(start)
        if path is None:
            return Config()
    elif not path.is_file():
        raise ConfigError(f"no such configuration file: {path}")
    table = _read_toml(path).get("tool", {}).get("nndoctor")
    if table is None:
        return Config(path=path)
    return parse(table, path)


def parse(table: Any, path: Path | None = None) -> Config:
    """Validate a ``[tool.nndoctor]`` table; every problem is a one-line :class:`ConfigError`."""
    where = f"{path}: [{SECTION}]" if path is not None else f"[{SECTION}]"
    if not isinstance(table, dict):
        raise ConfigError(f"{where} must be a table")
    values: dict[str, Any] = {"path": path}
    for key, value in table.items():
        if key not in _KEYS:
            raise ConfigError(f"{where}: unknown key {key!r}{_did_you_mean(key, _KEYS)}")
        name = _KEYS[key]
        values[name] = _CONVERT[name](value, f"{where} {key}")
    return Config(**values)


def _did_you_mean(key: str, known: Any, otherwise: str | None = None) -> str:
    close = difflib.get_close_matches(key.replace("_", "-"), list(known), n=1, cutoff=0.6)
    if not close:
        close = difflib.get_close_matches(key, list(known), n=1, cutoff=0.6)
    if close:
        return f" (did you mean {close[0]!r}?)"
    return f" ({otherwise})" if otherwise else f" (known keys: {', '.join(known)})"


def _read_toml(path: Path) -> dict[str, Any]:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        try:
            import tomli as tomllib
        except ImportError as exc:
            raise ConfigError(
                f"{path}: reading pyproject.toml on Python 3.10 needs the 'tomli' package"
            ) from exc
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: cannot be read as TOML: {exc}") from exc


# -- conversions, one per key ----------------------------------------------------------


def _checks(value: Any, what: str) -> tuple[str, ...]:
    """A list of check ids and reason numbers (a single string or int is accepted too)."""
    items = value if isinstance(value, list) else [value]
    out: list[str] = []
    for item in items:
        if isinstance(item, bool) or not isinstance(item, (str, int)):
            raise ConfigError(f"{what}: expected check ids or reason numbers, got {item!r}")
        for key in str(item).split(","):
            key = key.strip()
            if key:
                out.append(key)
    validate_checks(out, what)
    return tuple(out)


def validate_checks(keys: list[str] | tuple[str, ...], what: str) -> None:
    """Every key is a registered check id or a reason number 1-37."""
    from nndoctor.checks.registry import all_checks

    known = {c.id for c in all_checks()}
    for key in keys:
        if key.isdigit():
            if not 1 <= int(key) <= 37:
                raise ConfigError(f"{what}: reason numbers run from 1 to 37, not {key}")
        elif key not in known:
            raise ConfigError(f"{what}: unknown check id {key!r} (see `nndoctor reasons`)")


def _steps(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{what}: expected a whole number of steps of at least 1, got {value!r}")
    return value


def _timeout(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise ConfigError(f"{what}: expected a positive number of seconds, got {value!r}")
    return float(value)


def _seed(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(f"{what}: expected a whole number of at least 0, got {value!r}")
    return value


def _fail_on(value: Any, what: str) -> str:
    if value not in FAIL_ON:
        raise ConfigError(f"{what}: expected one of {', '.join(FAIL_ON)}, got {value!r}")
    return str(value)


def _quick(value: Any, what: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{what}: expected true or false, got {value!r}")
    return value


def _thresholds(value: Any, what: str) -> dict[str, Any]:
    """Names of :class:`Thresholds` fields with values of the field's type."""
    from nndoctor.checks.thresholds import Thresholds

    if not isinstance(value, dict):
        raise ConfigError(f"{what}: expected a table of threshold names and values")
    types = {f.name: type(getattr(Thresholds(), f.name)) for f in fields(Thresholds)}
    for name, v in value.items():
        if name not in types:
            raise ConfigError(
                f"{what}: unknown threshold {name!r}"
                f"{_did_you_mean(name, types, 'see the fields of nndoctor.Thresholds')}"
            )
        expected = types[name]
        # TOML writes 1 for 1.0: an integer is a fine float, a float is not a fine count.
        allowed = (int, float) if expected is float else (expected,)
        if isinstance(v, bool) or not isinstance(v, allowed):
            kind = "a number" if expected is float else "a whole number"
            raise ConfigError(f"{what}.{name}: expected {kind}, got {v!r}")
    return {k: (float(v) if types[k] is float else v) for k, v in value.items()}


_CONVERT = {
    "select": _checks,
    "ignore": _checks,
    "steps": _steps,
    "timeout": _timeout,
    "fail_on": _fail_on,
    "quick": _quick,
    "experiment_seconds": _timeout,
    "seed": _seed,
    "thresholds": _thresholds,
}
