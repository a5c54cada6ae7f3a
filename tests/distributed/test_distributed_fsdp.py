"""FSDP (``fully_shard``) on the CPU: observed on every rank, experiments left out with the
reason, the checks that compare replicas stand down (shards differ by design)."""

from __future__ import annotations

import pytest
from ranks_harness import check_rank0

FSDP_REASON = "the model is sharded by FSDP"


def test_an_fsdp_job_is_observed_and_says_what_it_cannot_do(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    report, others = check_rank0(
        monkeypatch,
        "fsdp_healthy.py",
        select=(
            "uneven-step-counts",
            "params-diverge-across-ranks",
            "loss-not-at-chance",
            "cannot-overfit-tiny-batch",
            "dead-relus",
        ),
        steps=6,
    )
    assert [p.returncode for p in others] == [0], others[0].stderr[-2000:]
    assert report.run.observed and report.run.steps_observed == 6
    info = report.run.distributed
    assert info["wrapper"] == "FSDP"
    assert [r["steps"] for r in info["ranks"]] == [6, 6]
    status = {c.check: (c.status.value, c.detail) for c in report.checks}
    assert status["uneven-step-counts"][0] == "passed"
    assert status["dead-relus"][0] == "passed"  # observations run on the shards
    assert status["params-diverge-across-ranks"] == (
        "skipped",
        "the parameters are FSDP shards: they differ across ranks by design",
    )
    # A check that runs the model, and every experiment, says why it did not run.
    assert status["loss-not-at-chance"][0] == "skipped"
    assert FSDP_REASON in status["loss-not-at-chance"][1]
    assert status["cannot-overfit-tiny-batch"][0] == "skipped"
    assert FSDP_REASON in status["cannot-overfit-tiny-batch"][1]
    assert not [c for c in report.checks if c.status.value == "crashed"]
    assert not [f for f in report.findings if f.severity.value != "info"]
