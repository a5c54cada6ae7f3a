"""Overfit a tiny batch."""

from __future__ import annotations

import pytest
import torch
from subjects import healthy_classifier, run
from torch import nn


@pytest.mark.silent("cannot-overfit-tiny-batch")
def test_a_healthy_model_memorises_a_tiny_batch() -> None:
    report = run(select=["cannot-overfit-tiny-batch"], **healthy_classifier())
    assert report.by_check("cannot-overfit-tiny-batch") == []
    assert report.result("cannot-overfit-tiny-batch").status.value == "passed"


@pytest.mark.fires("cannot-overfit-tiny-batch")
def test_a_width_one_bottleneck_cannot_fit() -> None:
    kwargs = healthy_classifier()
    torch.manual_seed(0)
    # The bug: a bottleneck of width 1 followed by a ReLU, 3 classes cannot be separated.
    model = nn.Sequential(nn.Linear(10, 1), nn.ReLU(), nn.Linear(1, 3))
    kwargs.update(model=model, optimizer=torch.optim.Adam(model.parameters(), lr=1e-3))
    report = run(select=["cannot-overfit-tiny-batch"], **kwargs)
    (finding,) = report.by_check("cannot-overfit-tiny-batch")
    assert finding.reasons == [24, 27, 30]
    assert finding.evidence["final_loss"] > 0.1


def test_a_learning_rate_of_zero_fits_only_with_the_fallback() -> None:
    kwargs = healthy_classifier()
    kwargs["optimizer"] = torch.optim.SGD(kwargs["model"].parameters(), lr=1e-6)
    report = run(select=["cannot-overfit-tiny-batch"], **kwargs)
    (finding,) = report.by_check("cannot-overfit-tiny-batch")
    assert finding.severity.value == "info"  # the optimiser checks carry the warning
    assert set(finding.reasons) == {27, 34, 36}
    assert finding.evidence["fallback_final_loss"] < 0.1
