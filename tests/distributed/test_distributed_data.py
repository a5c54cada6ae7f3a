"""The distributed checks about data: every rank reading the same batches (reason 3), a
DistributedSampler whose epoch never advances (reason 7). Two ranks, gloo, CPU."""

from __future__ import annotations

import pytest
from ranks_harness import check_rank0, findings_of


@pytest.mark.fires("ranks-read-same-batches")
def test_every_rank_reading_the_same_batches_is_found(monkeypatch: pytest.MonkeyPatch) -> None:
    report, others = check_rank0(
        monkeypatch, "ddp_same_batches.py", select=("ranks-read-same-batches",)
    )
    assert [p.returncode for p in others] == [0], others[0].stderr[-2000:]
    assert others[0].stdout == ""  # rank 0 alone prints
    (finding,) = findings_of(report, "ranks-read-same-batches")
    assert finding.reasons == [3]
    assert finding.severity.value == "error"
    assert finding.where.ranks == (0, 1)
    (pair,) = finding.evidence["pairs"]
    assert pair["shared_steps"] == pair["steps"] >= 19
    assert report.run.distributed["world_size"] == 2


@pytest.mark.fires("sampler-epoch-not-set")
def test_a_sampler_whose_epoch_never_advances_is_found(monkeypatch: pytest.MonkeyPatch) -> None:
    report, others = check_rank0(
        monkeypatch, "ddp_no_set_epoch.py", select=("sampler-epoch-not-set",), steps=12
    )
    assert [p.returncode for p in others] == [0], others[0].stderr[-2000:]
    (finding,) = findings_of(report, "sampler-epoch-not-set")
    assert finding.reasons == [7]
    assert finding.severity.value == "warning"
    assert finding.where.ranks is None  # on every rank
    assert finding.evidence["passes"] >= 2 and finding.evidence["epoch"] == 0
    assert finding.evidence["ranks"] == [0, 1]


@pytest.mark.fires("uneven-step-counts")
def test_a_rank_that_runs_out_of_batches_is_found_without_a_hang(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Rank 1 has 4 batches an epoch, rank 0 has 6: after rank 1's last step rank 0 waits in
    # DDP's all-reduce, which times out (the job's own timeout is bounded during a check).
    report, others = check_rank0(
        monkeypatch, "ddp_uneven_shards.py", select=("uneven-step-counts",)
    )
    assert [p.returncode for p in others] == [0], others[0].stderr[-2000:]
    (finding,) = findings_of(report, "uneven-step-counts")
    assert finding.reasons == [3] and finding.severity.value == "error"
    assert finding.where.ranks == (1,)
    assert finding.evidence["finished"] == [1]
    ranks = {r["rank"]: r for r in report.run.distributed["ranks"]}
    assert ranks[1]["stop_reason"] == "script finished" and ranks[1]["steps"] == 8
    assert ranks[0]["error"] is not None  # its all-reduce timed out instead of hanging
    assert "rank 0 then waited in a collective" in finding.message


@pytest.mark.slow  # CI has the check's other case: a rank that runs out of batches
@pytest.mark.fires("uneven-step-counts")
def test_a_rank_that_skips_a_step_is_found(monkeypatch: pytest.MonkeyPatch) -> None:
    report, others = check_rank0(monkeypatch, "ddp_skip_step.py", select=("uneven-step-counts",))
    assert [p.returncode for p in others] == [0], others[0].stderr[-2000:]
    (finding,) = findings_of(report, "uneven-step-counts")
    assert finding.evidence["steps"] == {"0": 1, "1": 0}
    assert finding.where.ranks == (1,)
