"""The distributed checks about replicas that stop being one model: gradients that differ
after the all-reduce, parameters and BatchNorm statistics that drift apart. Two ranks,
gloo, CPU."""

from __future__ import annotations

import pytest
from ranks_harness import check_rank0, findings_of

REPLICA_CHECKS = (
    "grads-differ-across-ranks",
    "params-diverge-across-ranks",
    "buffers-diverge-across-ranks",
)


@pytest.mark.fires("grads-differ-across-ranks")
@pytest.mark.fires("params-diverge-across-ranks")
def test_a_head_outside_ddp_is_found(monkeypatch: pytest.MonkeyPatch) -> None:
    report, others = check_rank0(monkeypatch, "ddp_head_outside.py", select=REPLICA_CHECKS, steps=6)
    assert [p.returncode for p in others] == [0], others[0].stderr[-2000:]
    (grads,) = findings_of(report, "grads-differ-across-ranks")
    assert grads.reasons == [26] and grads.where.ranks == (0, 1)
    # The head's weight and bias, and only those: the backbone's are all-reduced.
    assert len(grads.evidence["parameters"]) == 2
    assert grads.evidence["outside_model"] == sorted(grads.evidence["parameters"])
    assert "outside the module DDP wraps" in grads.message
    assert grads.where.step == 1
    (params,) = findings_of(report, "params-diverge-across-ranks")
    assert params.reasons == [23, 26]
    assert len(params.evidence["parameters"]) == 2
    # The gradients that differ explain the parameters that drift.
    assert [c.lead.check for c in report.diagnosis.causes] == ["grads-differ-across-ranks"]


@pytest.mark.slow  # CI has the check's other case: a head outside DDP
@pytest.mark.fires("grads-differ-across-ranks")
def test_accumulation_that_never_synchronises_is_found(monkeypatch: pytest.MonkeyPatch) -> None:
    report, others = check_rank0(
        monkeypatch, "ddp_no_sync.py", select=("grads-differ-across-ranks",), steps=4
    )
    assert [p.returncode for p in others] == [0], others[0].stderr[-2000:]
    (grads,) = findings_of(report, "grads-differ-across-ranks")
    assert grads.evidence["steps_differing"] == grads.evidence["steps_compared"] == 4
    assert not grads.evidence["outside_model"]
    assert "no_sync()" in grads.message


@pytest.mark.fires("buffers-diverge-across-ranks")
def test_batchnorm_statistics_without_broadcast_or_syncbn_are_found(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    report, others = check_rank0(
        monkeypatch, "ddp_bn_not_synced.py", select=REPLICA_CHECKS, steps=6
    )
    assert [p.returncode for p in others] == [0], others[0].stderr[-2000:]
    (finding,) = findings_of(report, "buffers-diverge-across-ranks")
    assert finding.reasons == [32] and finding.where.ranks == (0, 1)
    assert finding.where.module == "1"  # the BatchNorm1d
    assert finding.evidence["differ_at_forward"] >= 2
    # The buffers drift; parameters and gradients stay synchronised.
    assert not findings_of(report, "grads-differ-across-ranks")
    assert not findings_of(report, "params-diverge-across-ranks")


@pytest.mark.slow  # CI has the check's other case: BatchNorm without broadcast
@pytest.mark.fires("buffers-diverge-across-ranks")
def test_syncbatchnorm_named_but_not_in_effect_is_found(monkeypatch: pytest.MonkeyPatch) -> None:
    # DDP's broadcast keeps the statistics equal when a forward begins; after it each rank
    # normalised with its own batch, which SyncBatchNorm (named by the script) would not.
    report, others = check_rank0(
        monkeypatch,
        "ddp_bn_not_synced.py",
        ["--broadcast-buffers"],
        select=("buffers-diverge-across-ranks",),
        steps=4,
    )
    assert [p.returncode for p in others] == [0], others[0].stderr[-2000:]
    (finding,) = findings_of(report, "buffers-diverge-across-ranks")
    assert finding.evidence["differ_at_forward"] == 0
    assert finding.evidence["sync_batchnorm_layers"] == 0
    assert "SyncBatchNorm (line" in finding.message
