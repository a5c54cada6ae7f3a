"""benchmarks/distributed_overhead.py runs end to end on tiny sizes (two ranks, gloo) and
produces its rows. No time is asserted: only the table's structure and its reference."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from ranks_harness import HARD_TIMEOUT, ROOT

BENCH = ROOT / "benchmarks" / "distributed_overhead.py"
MODES = ["ddp", "check-agreement", "check-rank-probe", "watch-exchange"]


@pytest.mark.slow  # a benchmark of its own (~10 s of two ranks); run with -m slow
def test_the_distributed_overhead_benchmark_runs(tmp_path: Path) -> None:
    out = tmp_path / "overhead.json"
    done = subprocess.run(
        [sys.executable, str(BENCH), "--quick", "--json", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=HARD_TIMEOUT,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["world"] == 2 and result["backend"] == "gloo"
    for setting in ("tiny-mlp", "mlp"):
        rows = [r for r in result["rows"] if r["setting"] == setting]
        assert [r["mode"] for r in rows] == MODES
        assert rows[0]["ratio"] == pytest.approx(1.0)  # the DDP step is the reference
        assert all(r["ms_per_step"] > 0 and len(r["blocks_ms"]) == 1 for r in rows)
    assert done.stdout.count("| tiny-mlp |") == len(MODES)
