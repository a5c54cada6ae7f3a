"""The loss still falling at the end of the budget: "give it time" (reason 31), never a warning."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import torch
from subjects import batches, blobs, healthy_classifier, mlp, run, serious
from torch import nn

from nndoctor.checks.training.progress import falling_share, theil_sen_slope

CHECK = "give-it-time"


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    # Small CPU models are launch-bound: extra intra-op threads only wait on each other on a
    # busy two-core machine (the same measure as tests/test_examples.py).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def slow_but_healthy() -> dict[str, Any]:
    """Plain SGD at lr=0.01 with momentum on a learnable problem: sound, and slow."""
    kwargs = healthy_classifier()
    kwargs["optimizer"] = torch.optim.SGD(kwargs["model"].parameters(), lr=0.01, momentum=0.9)
    return kwargs


def noisy_labels_plateau() -> dict[str, Any]:
    """Blobs with 40% of the labels redrawn at random: the loss flattens well above zero."""
    x, y = blobs(n=512)
    g = torch.Generator().manual_seed(1)
    redrawn = torch.rand(len(y), generator=g) < 0.4
    y = torch.where(redrawn, torch.randint(0, 3, (len(y),), generator=g), y)
    model = mlp()
    return {
        "model": model,
        "data": batches(x, y, 64),
        "loss_fn": nn.CrossEntropyLoss(),
        "optimizer": torch.optim.Adam(model.parameters(), lr=1e-2),
        "steps": 40,
    }


@pytest.mark.fires("give-it-time")
def test_a_slow_steady_descent_is_told_to_give_it_time() -> None:
    report = run(select=[CHECK], **slow_but_healthy())
    (finding,) = report.by_check(CHECK)
    assert finding.reasons == [31]
    assert finding.severity.value == "info"  # not a bug: never a warning
    assert serious(report) == []
    assert report.result(CHECK).status.value == "passed"
    ev = finding.evidence
    assert ev["steps"] == 20 and ev["window_steps"] == 10
    assert ev["relative_slope_per_step"] > 0.01
    assert ev["falling_share"] > 0.7
    assert ev["last_loss"] < ev["first_loss"]
    assert "Not a bug" in finding.message and "Train longer" in finding.fix


@pytest.mark.silent("give-it-time")
def test_a_loss_that_has_flattened_is_silent() -> None:
    report = run(select=[CHECK], **noisy_labels_plateau())
    assert report.by_check(CHECK) == []
    result = report.result(CHECK)
    assert result.status.value == "passed"
    # The note shows the plateau: well under 1% per step, no steady fall.
    rate = float(result.detail.split("over the last 20: ")[1].split("%")[0])
    assert abs(rate) < 1.0


@pytest.mark.silent("give-it-time")
def test_a_loss_already_near_zero_is_not_told_to_wait() -> None:
    kwargs = healthy_classifier()
    kwargs["optimizer"] = torch.optim.Adam(kwargs["model"].parameters(), lr=1e-2)
    report = run(select=[CHECK], steps=40, **kwargs)
    assert report.by_check(CHECK) == []


def test_a_diverging_run_is_not_told_to_wait() -> None:
    kwargs = healthy_classifier()
    kwargs["optimizer"] = torch.optim.SGD(kwargs["model"].parameters(), lr=5.0)
    report = run(select=[CHECK], **kwargs)
    assert report.by_check(CHECK) == []


def test_too_few_steps_are_skipped() -> None:
    report = run(select=[CHECK], steps=5, **slow_but_healthy())
    result = report.result(CHECK)
    assert result.status.value == "skipped" and "at least 8" in result.detail


def test_robust_slope_ignores_one_noisy_batch() -> None:
    values = [10.0 - i for i in range(10)]
    values[4] = 100.0  # one outlier batch
    assert theil_sen_slope(values) == pytest.approx(-1.0)
    assert theil_sen_slope([3.0]) == 0.0
    assert falling_share([3.0, 2.0, 1.0]) == 1.0
    assert falling_share([1.0, 2.0, 1.0, 2.0]) == pytest.approx(1 / 6)  # only (2, 1) falls
