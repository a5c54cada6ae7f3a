"""benchmarks/overhead.py runs end to end on tiny settings and produces its table.

No timing is asserted: only that every setting and mode gets a row, that the plain
step is the reference of the ratios, that instrumentation is removed after each block,
and that the JSON and the Markdown table carry the same rows.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
import torch
import torch.nn.functional as F

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "overhead.py"


@pytest.fixture(scope="module")
def overhead() -> ModuleType:
    spec = importlib.util.spec_from_file_location("nndoctor_bench_overhead", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up here
    spec.loader.exec_module(module)
    return module


def _check_rows(overhead: ModuleType, result: dict, settings: list[str], device: str) -> None:
    rows = result["rows"]
    for setting in settings:
        mine = [r for r in rows if r["setting"] == setting and r["device"].startswith(device)]
        assert [r["mode"] for r in mine][: len(overhead.MODES)] == list(overhead.MODES)
        plain = mine[0]
        assert plain["ratio"] == pytest.approx(1.0)
        assert plain["blocks"] == 1 and plain["steps"] == 2 and plain["ms_per_step"] > 0
        for row in mine[1:]:
            if row["unavailable"]:  # only the watch modes may be missing
                assert row["mode"] in overhead.WATCH_MODES, row
                assert row["ratio"] is None and row["blocks"] == 0
            else:
                assert row["ratio"] == pytest.approx(row["ms_per_step"] / plain["ms_per_step"])
                assert len(row["all_ms_per_step"]) == row["blocks"] == 1
        item = next(r for r in mine if r["mode"] == "item-hooks")
        assert item["info"][0]["layers_hooked"] > 3
        for row in mine:  # the watch saw every step of its block, warm-up included
            if row["mode"] in overhead.WATCH_MODES and not row["unavailable"]:
                assert row["info"][0]["steps_seen"] == row["warmup"] + row["steps"]
        probes = next(r for r in mine if r["mode"] == "check-probes")
        assert probes["info"][0]["steps_recorded"] >= 2  # warm-up and timed steps were observed


@pytest.fixture
def one_thread() -> Iterator[None]:
    """``--threads 1`` sets torch's thread count for the process: put it back after."""
    threads = torch.get_num_threads()
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _quick_main(
    overhead: ModuleType, settings: list[str], out: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # One thread: two threads on a busy two-core machine make tiny steps erratic and slow.
    args = ["--quick", "--settings", ",".join(settings), "--device", "cpu", "--threads", "1"]
    result = overhead.main([*args, "--quiet", "--json", str(out)])
    _check_rows(overhead, result, settings, "cpu")
    assert json.loads(out.read_text()) == json.loads(json.dumps(result))
    assert result["environment"]["torch"] == torch.__version__

    table = capsys.readouterr().out.strip().splitlines()
    assert table[0].startswith("| setting | mode | median ms/step | ratio to plain | steps |")
    assert len(table) == 2 + len(result["rows"]) == 2 + len(settings) * len(overhead.MODES)
    assert all(line.count("|") == table[0].count("|") for line in table)


def test_quick_run_gives_a_row_per_mode(
    overhead: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str], one_thread: None
) -> None:
    _quick_main(overhead, ["small-cnn"], tmp_path / "overhead.json", capsys)


@pytest.mark.slow
def test_quick_run_of_every_setting(
    overhead: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str], one_thread: None
) -> None:
    _quick_main(overhead, list(overhead.SETTINGS), tmp_path / "overhead.json", capsys)


@pytest.mark.parametrize("setting", ["resnet18", "yolov3"])
def test_quick_workloads_train(overhead: ModuleType, setting: str) -> None:
    workload = overhead.build_workload(setting, "cpu", quick=True)
    assert setting in workload.label and workload.batches
    before = [p.detach().clone() for p in workload.model.parameters()]
    workload.step()
    moved = [
        not torch.equal(a, p) for a, p in zip(before, workload.model.parameters(), strict=True)
    ]
    assert sum(moved) > len(moved) // 2  # one optimizer step updated the weights


def test_modes_remove_their_instrumentation(overhead: ModuleType) -> None:
    workload = overhead.build_workload("small-cnn", "cpu", quick=True)
    modules = list(workload.model.modules())
    cross_entropy, backward = F.cross_entropy, torch.Tensor.backward
    for mode in ("check-probes", "item-hooks", "detect-anomaly"):
        seconds, _ = overhead.run_block(workload, mode, warmup=0, steps=1)
        assert seconds > 0
        assert all(not m._forward_hooks and not m._forward_pre_hooks for m in modules), mode
        assert F.cross_entropy is cross_entropy and torch.Tensor.backward is backward, mode
        assert not torch.is_anomaly_enabled(), mode


def test_unknown_setting_is_refused(overhead: ModuleType) -> None:
    with pytest.raises(SystemExit, match="unknown setting"):
        overhead.main(["--quick", "--settings", "small-cnn,vgg", "--quiet"])


@pytest.mark.cuda
def test_quick_cuda_run_adds_the_sync_debug_rows(overhead: ModuleType) -> None:
    result = overhead.run(settings=["small-cnn"], devices=["cuda"], quick=True)
    _check_rows(overhead, result, ["small-cnn"], "cuda")
    sync_rows = [r for r in result["rows"] if r["mode"].endswith(overhead.SYNC_SUFFIX)]
    assert [r["mode"] for r in sync_rows] == [
        m + overhead.SYNC_SUFFIX for m in overhead.WATCH_MODES
    ]
    for row in sync_rows:
        assert row["unavailable"] or row["synchronised"] in (True, False)
    assert torch.cuda.get_sync_debug_mode() == 0
