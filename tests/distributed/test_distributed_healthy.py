"""A healthy two-rank DDP job: every check that compares ranks runs, and none says a word.

One run of examples/distributed/ddp_healthy.py (a DistributedSampler with set_epoch, one
DDP model holding every trained module, BatchNorm whose statistics DDP broadcasts, the
learning rate scaled with the global batch) serves as the silent case of them all. Each
check's firing case is in the test module of its family. SyncBatchNorm itself needs GPU
modules under DDP, so the silent case of buffers-diverge-across-ranks is DDP's broadcast.
"""

from __future__ import annotations

import pytest
from ranks_harness import check_rank0

DISTRIBUTED_CHECKS = (
    "ranks-read-same-batches",
    "sampler-epoch-not-set",
    "grads-differ-across-ranks",
    "params-diverge-across-ranks",
    "buffers-diverge-across-ranks",
    "uneven-step-counts",
    "lr-not-scaled-with-world",
)


@pytest.mark.silent("ranks-read-same-batches")
@pytest.mark.silent("sampler-epoch-not-set")
@pytest.mark.silent("grads-differ-across-ranks")
@pytest.mark.silent("params-diverge-across-ranks")
@pytest.mark.silent("buffers-diverge-across-ranks")
@pytest.mark.silent("uneven-step-counts")
@pytest.mark.silent("lr-not-scaled-with-world")
def test_a_healthy_job_is_silent_on_every_rank_comparison(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # 12 steps: past the first epoch (8 steps a rank), so the sampler is iterated twice.
    report, others = check_rank0(monkeypatch, "ddp_healthy.py", select=DISTRIBUTED_CHECKS, steps=12)
    assert [p.returncode for p in others] == [0], others[0].stderr[-2000:]
    assert others[0].stdout == ""  # rank 0 alone prints
    assert not report.findings
    assert {c.check: c.status.value for c in report.checks if c.check in DISTRIBUTED_CHECKS} == (
        dict.fromkeys(DISTRIBUTED_CHECKS, "passed")
    )
    assert [r["steps"] for r in report.run.distributed["ranks"]] == [12, 12]
