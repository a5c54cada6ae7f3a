"""A triplet loss given (anchor, negative, positive)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from subjects import serious

from nndoctor.engine import Selection, check_script
from nndoctor.report.model import Report

SCRIPT = textwrap.dedent(
    """
    import torch
    import torch.nn.functional as F
    from torch import nn

    torch.manual_seed(0)
    prototypes = torch.randn(10, 32)
    net = nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 16))
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    criterion = nn.TripletMarginLoss(margin=1.0)

    def view(labels):
        # A sample of its class: the class prototype plus noise.
        return prototypes[labels] + 0.5 * torch.randn(len(labels), 32)

    for step in range(30):
        labels = torch.randint(0, 10, (64,))
        others = (labels + torch.randint(1, 10, (64,))) % 10
        anchor, positive, negative = net(view(labels)), net(view(labels)), net(view(others))
        loss = LOSS
        opt.zero_grad()
        loss.backward()
        opt.step()
    """
)


def _check(tmp_path: Path, loss: str) -> Report:
    path = tmp_path / "triplet.py"
    path.write_text(SCRIPT.replace("LOSS", loss))
    return check_script(
        str(path), steps=10, phase_steps=0, selection=Selection(select=("triplet-order",))
    )


@pytest.mark.fires("triplet-order")
def test_a_triplet_loss_given_the_negative_as_positive_is_found(tmp_path: Path) -> None:
    report = _check(tmp_path, "criterion(anchor, negative, positive)")
    (finding,) = serious(report, "triplet-order")
    assert 19 in finding.reasons
    assert finding.evidence["positive_farther"] > finding.evidence["samples"] / 2


@pytest.mark.silent("triplet-order")
def test_a_triplet_loss_in_order_passes(tmp_path: Path) -> None:
    report = _check(tmp_path, "criterion(anchor, positive, negative)")
    assert not serious(report, "triplet-order")


def test_the_functional_loss_by_keyword_is_read_too(tmp_path: Path) -> None:
    report = _check(
        tmp_path, "F.triplet_margin_loss(anchor=anchor, positive=negative, negative=positive)"
    )
    assert serious(report, "triplet-order")


def test_mined_triplets_are_not_judged(tmp_path: Path) -> None:
    # Batch-hard mining picks the farthest positive and the nearest negative on purpose:
    # rows picked by index are left out, whatever their distances.
    mined = (
        "criterion(anchor, positive[torch.cdist(anchor, positive).argmax(1)], "
        "negative[torch.cdist(anchor, negative).argmin(1)])"
    )
    report = _check(tmp_path, mined)
    result = report.result("triplet-order")
    assert result.status.value == "skipped" and "mined" in result.detail
