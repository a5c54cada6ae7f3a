"""A simpler version of the task, and the accuracy besides the loss."""

from __future__ import annotations

import pytest
import torch
from subjects import batches, blobs, healthy_classifier, run
from torch import nn


@pytest.mark.fires("simpler-task-trains")
def test_two_classes_fit_where_ten_do_not() -> None:
    x, y = blobs(n=512, classes=10, seed=1)
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Linear(10, 2), nn.Tanh(), nn.Linear(2, 10)
    )  # too narrow for 10 classes
    report = run(
        select=["simpler-task-trains"],
        model=model,
        data=batches(x, y, 64),
        loss_fn=nn.CrossEntropyLoss(),
        optimizer=torch.optim.Adam(model.parameters(), lr=1e-2),
    )
    (finding,) = report.by_check("simpler-task-trains")
    assert set(finding.reasons) == {16, 24}
    assert finding.evidence["simple_final_loss"] < finding.evidence["full_final_loss"]


@pytest.mark.silent("simpler-task-trains")
def test_no_simpler_task_needed_when_the_full_one_fits() -> None:
    report = run(select=["simpler-task-trains"], **healthy_classifier())
    assert report.by_check("simpler-task-trains") == []
    assert "full task fits" in report.result("simpler-task-trains").detail


class IgnoresInput(nn.Module):
    """The bug: the input is multiplied by zero, so only the class prior can be learned."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.fc = nn.Linear(10, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x * 0)


@pytest.mark.fires("loss-accuracy-disagree")
def test_loss_falls_while_accuracy_stays_when_the_input_is_ignored() -> None:
    x, y = blobs(n=1024)
    y = torch.where(torch.rand(len(y), generator=torch.Generator().manual_seed(0)) < 0.6, 0, y)
    model = IgnoresInput()
    with torch.no_grad():
        model.fc.bias.copy_(torch.tensor([8.0, 0.0, 0.0]))  # the right argmax, far too confident
    report = run(
        select=["loss-accuracy-disagree"],
        model=model,
        data=batches(x, y),
        loss_fn=nn.CrossEntropyLoss(),
        optimizer=torch.optim.Adam(model.parameters(), lr=0.3),
        steps=30,
    )
    (finding,) = report.by_check("loss-accuracy-disagree")
    assert finding.reasons == [21]


@pytest.mark.silent("loss-accuracy-disagree")
def test_healthy_training_moves_loss_and_accuracy_together() -> None:
    report = run(select=["loss-accuracy-disagree"], **healthy_classifier())
    assert report.by_check("loss-accuracy-disagree") == []
