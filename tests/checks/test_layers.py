"""Custom layers: the float64 gradient check, batch independence, bottlenecks."""

from __future__ import annotations

import pytest
import torch
from subjects import batches, blobs, run
from torch import nn


class _WrongSquare(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):  # noqa: ANN001, ANN205
        ctx.save_for_backward(x)
        return x * x

    @staticmethod
    def backward(ctx, grad):  # noqa: ANN001, ANN205
        (x,) = ctx.saved_tensors
        return grad * x  # the bug: d(x²)/dx is 2x


class SquareLayer(nn.Module):
    def __init__(self, bug: bool) -> None:
        super().__init__()
        self.bug = bug

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _WrongSquare.apply(x) if self.bug else x * x


class Net(nn.Module):
    def __init__(self, bug: bool) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.fc1 = nn.Linear(10, 16)
        self.square = SquareLayer(bug)
        self.fc2 = nn.Linear(16, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.square(torch.tanh(self.fc1(x))))


def _net_kwargs(bug: bool) -> dict:
    x, y = blobs()
    model = Net(bug)
    return {"model": model, "data": batches(x, y), "loss_fn": nn.CrossEntropyLoss(),
            "optimizer": torch.optim.Adam(model.parameters(), lr=1e-3)}


@pytest.mark.fires("custom-layer-gradient")
def test_wrong_backward_in_a_custom_function_is_found_in_its_module() -> None:
    report = run(select=["custom-layer-gradient"], **_net_kwargs(bug=True))
    (finding,) = report.by_check("custom-layer-gradient")
    assert finding.reasons == [22, 26]
    assert finding.where.module == "square"
    assert finding.where.file.endswith("test_layers.py")
    assert finding.evidence["rel_error"] > 0.1


@pytest.mark.silent("custom-layer-gradient")
def test_correct_custom_layers_pass_the_gradient_check() -> None:
    report = run(select=["custom-layer-gradient"], **_net_kwargs(bug=False))
    assert report.by_check("custom-layer-gradient") == []
    assert "2 user-defined module class(es)" in report.result("custom-layer-gradient").detail
