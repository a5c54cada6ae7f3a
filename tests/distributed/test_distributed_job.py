"""A whole distributed job under nndoctor: torchrun, one report from rank 0, a note on the
learning rate and the world size, and a rank that dies without anything hanging."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from ranks_harness import (
    DIST_TIMEOUT,
    EXAMPLES,
    HARD_TIMEOUT,
    ROOT,
    check_rank0,
    findings_of,
    private_tmpdir,
    run_cli_ranks,
)

REPORT_BOX = "─ nndoctor ─"


def torchrun_check(script: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``torchrun --standalone --nproc-per-node 2 -m nndoctor check SCRIPT ARGS``."""
    with private_tmpdir() as tmp:
        return _torchrun_check(script, args, tmp)


def _torchrun_check(
    script: Path, args: tuple[str, ...], tmp: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc-per-node",
            "2",
            "-m",
            "nndoctor",
            "check",
            str(script),
            *args,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=HARD_TIMEOUT,
        env={**os.environ, "NNDOCTOR_DIST_TIMEOUT": "20", "OMP_NUM_THREADS": "1", "TMPDIR": tmp},
    )


def test_a_healthy_ddp_job_under_torchrun_gives_one_quiet_report(tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    done = torchrun_check(EXAMPLES / "ddp_healthy.py", "--json", str(out))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert done.stdout.count(REPORT_BOX) == 1  # rank 0 alone prints
    report = json.loads(out.read_text())
    assert report["summary"]["errors"] == report["summary"]["warnings"] == 0
    assert report["summary"]["crashed"] == 0
    info = report["run"]["distributed"]
    assert info["world_size"] == 2 and info["wrapper"] == "DistributedDataParallel"
    assert [r["steps"] for r in info["ranks"]] == [20, 20]
    assert info["lost"] == []
    ran = {c["check"]: c["status"] for c in report["checks"]}
    for check in (
        "ranks-read-same-batches",
        "sampler-epoch-not-set",
        "grads-differ-across-ranks",
        "params-diverge-across-ranks",
        "buffers-diverge-across-ranks",
        "uneven-step-counts",
    ):
        assert ran[check] == "passed", (check, ran[check])
    # Experiments ran on rank 0, on the module DDP wraps.
    assert ran["cannot-overfit-tiny-batch"] == "passed"


@pytest.mark.fires("lr-not-scaled-with-world")
def test_a_global_batch_growing_without_the_rate_gets_a_note(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    report, others = check_rank0(
        monkeypatch, "ddp_lr_not_scaled.py", select=("lr-not-scaled-with-world",), steps=2
    )
    assert [p.returncode for p in others] == [0], others[0].stderr[-2000:]
    (finding,) = findings_of(report, "lr-not-scaled-with-world")
    assert finding.severity.value == "info" and finding.reasons == [36]
    assert finding.where.file.endswith("ddp_lr_not_scaled.py")
    assert finding.evidence["world_size"] == 2
    assert finding.evidence["learning_rates"] == [0.001]


@pytest.mark.slow  # one rank sleeps past the collective timeout: about 15 s
def test_a_rank_that_arrives_later_than_the_collective_timeout_still_joins(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # The bounded timeout is for collectives that can no longer complete; a rank that
    # starts late (slow data preparation, a busy machine) waits as the script allows.
    late = tmp_path / "ddp_late_rank.py"
    late.write_text(
        (EXAMPLES / "ddp_healthy.py")
        .read_text()
        .replace(
            '    dist.init_process_group("gloo")',
            "    import os, time\n"
            f"    if os.environ['RANK'] == '1': time.sleep({DIST_TIMEOUT + 3})\n"
            '    dist.init_process_group("gloo")',
        )
    )
    report, others = check_rank0(monkeypatch, late, select=("uneven-step-counts",), steps=4)
    assert [p.returncode for p in others] == [0], others[0].stderr[-2000:]
    assert report.run.observed and report.run.distributed["lost"] == []
    assert [r["steps"] for r in report.run.distributed["ranks"]] == [4, 4]


def test_a_rank_killed_mid_run_is_reported_and_nothing_hangs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def kill_rank1(step: int, others: list[subprocess.Popen[str]]) -> None:
        if step == 3 and others[0].poll() is None:
            others[0].kill()

    report, others = check_rank0(
        monkeypatch,
        "ddp_healthy.py",
        select=("uneven-step-counts", "grads-differ-across-ranks"),
        on_step=kill_rank1,
    )
    assert others[0].returncode == -9
    info = report.run.distributed
    assert info["lost"] == [1]
    assert [r["rank"] for r in info["ranks"]] == [0]
    assert any("rank 1 did not answer" in n for n in report.run.notes), report.run.notes
    assert report.run.steps_observed >= 3
    # Nothing left to compare with: the checks that compare ranks say so.
    assert report.result("uneven-step-counts").status.value == "skipped"


def test_under_torchrun_a_killed_rank_still_leaves_rank0s_report(tmp_path: Path) -> None:
    # Rank 1 is SIGKILLed at its fifth step; torchrun then sends SIGTERM to rank 0, which
    # writes its report (observations only) within the launcher's grace period.
    out = tmp_path / "report.json"
    done = torchrun_check(EXAMPLES / "ddp_rank_dies.py", "--json", str(out))
    assert done.returncode != 0  # the job failed: a worker was killed
    assert done.stdout.count(REPORT_BOX) == 1
    run = json.loads(out.read_text())["run"]
    assert run["distributed"]["lost"] == [1]
    assert run["steps_observed"] == 4
    assert any("experiments on copies were left out" in n for n in run["notes"])


@pytest.mark.slow  # CI has two other cases of a rank lost mid-run
def test_rank1_reports_alone_when_rank0_dies() -> None:
    rank0, rank1 = run_cli_ranks(EXAMPLES / "ddp_healthy.py", [], kill_rank0_at_step=1)
    assert rank0.returncode == -9
    assert rank1.returncode == 0, rank1.stderr[-3000:]
    assert rank1.stdout.count(REPORT_BOX) == 1
    assert "rank 0 could not be reached" in rank1.stdout.replace("\n", " ").replace("│", "")


def test_a_finding_seen_on_one_rank_only_names_that_rank(monkeypatch: pytest.MonkeyPatch) -> None:
    # Rank 1's shard holds its first feature in milliseconds: rank 1's observations find
    # it, rank 0's do not, and rank 0's report says where.
    report, others = check_rank0(
        monkeypatch, "ddp_rank1_raw_features.py", select=("feature-scales-differ",), steps=4
    )
    assert [p.returncode for p in others] == [0], others[0].stderr[-2000:]
    (finding,) = findings_of(report, "feature-scales-differ")
    assert finding.where.ranks == (1,)
    assert finding.evidence["largest"] == 0 and finding.evidence["ratio"] > 100
    result = report.result("feature-scales-differ")
    assert result.status.value == "failed" and result.detail.startswith("rank 1: ")
    assert "rank 1" in finding.where.describe()


@pytest.mark.slow  # rank 1 stalls until its time limit: about a minute and a half
def test_a_rank_that_stalls_is_reported_after_the_timeouts(monkeypatch: pytest.MonkeyPatch) -> None:
    # Rank 1 sleeps at its fifth step. Rank 0's DDP all-reduce times out (the job's group,
    # bounded during a check: 6 s here), then nndoctor's channel gives up on rank 1 (12 s)
    # and rank 0 reports; rank 1 itself stops at its time limit (60 s) and ends too.
    report, others = check_rank0(monkeypatch, "ddp_rank_stalls.py", select=("uneven-step-counts",))
    info = report.run.distributed
    assert info["lost"] == [1]
    assert report.run.steps_observed == 4
    assert any("rank 1 did not answer" in n for n in report.run.notes), report.run.notes
    assert others[0].returncode == 0  # rank 1 ended too: nothing was left hanging
