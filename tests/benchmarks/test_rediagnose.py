"""benchmarks/rediagnose.py: recorded findings diagnosed again, top-1 counted per split."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "rediagnose.py"


def _module():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("nndoctor_bench_rediagnose", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run(
    name: str, split: str, accepted: list[int], findings: list[tuple[str, str, list[int], str]]
):  # type: ignore[no-untyped-def]
    return {
        "name": name,
        "seed": 0,
        "split": split,
        "fault": True,
        "accepted": accepted,
        "first": "dead-relus",
        "top1": False,
        "findings": [
            {"check": c, "severity": s, "reasons": r, "title": t} for c, s, r, t in findings
        ],
    }


def test_recorded_findings_are_diagnosed_again_by_split(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lr_too_high = [
        ("dead-relus", "warning", [28, 35], "ReLU 4 is dead"),
        ("update-ratio", "error", [33, 36], "Updates are too large for the weights"),
        ("loss-diverging", "warning", [36], "The loss spikes far above its starting value"),
        ("params-frozen", "info", [23], "6 parameter(s) are frozen"),
    ]
    data = {
        "runs": [
            _run("kd-sum", "dev", [20, 36], lr_too_high),
            _run("held-out", "test", [36], lr_too_high),
        ]
    }
    path = tmp_path / "bench.json"
    path.write_text(json.dumps(data))
    rediagnose = _module()
    assert rediagnose.first_cause(data["runs"][0]) == ("differential:36", [36])
    assert rediagnose.main([str(path), "--split", "dev", "--changed"]) == 0
    out = capsys.readouterr().out
    assert "kd-sum seed 0: dead-relus -> differential:36 (True)" in out
    assert "1 dev faults, first cause right 0 -> 1" in out and "held-out" not in out
