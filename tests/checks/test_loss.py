"""Loss at chance, loss inputs and the custom-layer gradient check."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from subjects import batches, blobs, healthy_classifier, mlp, reasons_of, run, serious
from torch import nn


@pytest.mark.silent("loss-not-at-chance")
@pytest.mark.silent("loss-input-mismatch")
def test_healthy_classifier_starts_at_chance_with_logits_into_ce() -> None:
    report = run(select=["loss-not-at-chance", "loss-input-mismatch"], **healthy_classifier())
    assert serious(report) == []
    detail = report.result("loss-not-at-chance").detail
    assert "chance 1.099" in detail  # ln 3


@pytest.mark.fires("loss-not-at-chance")
def test_huge_output_init_starts_far_above_chance() -> None:
    kwargs = healthy_classifier()
    with torch.no_grad():
        kwargs["model"][-1].weight.mul_(60.0)
    report = run(select=["loss-not-at-chance"], **kwargs)
    (finding,) = report.by_check("loss-not-at-chance")
    assert finding.reasons == [17, 28]
    assert finding.evidence["chance"] == pytest.approx(1.0986, abs=1e-3)
    assert finding.evidence["ratio"] > 3
    assert finding.severity.value == "error"


def test_chance_for_binary_and_regression_losses() -> None:
    x, y = blobs(classes=2)
    model = mlp(classes=1)
    data = [(xb, yb.float().unsqueeze(1)) for xb, yb in batches(x, y)]
    report = run(select=["loss-not-at-chance"], model=model, data=data, loss_fn=nn.BCEWithLogitsLoss(),
                 optimizer=torch.optim.Adam(model.parameters()))
    assert "chance 0.6931" in report.result("loss-not-at-chance").detail
    assert serious(report) == []


@pytest.mark.fires("loss-input-mismatch")
def test_softmax_before_cross_entropy_is_an_error() -> None:
    kwargs = healthy_classifier()
    kwargs["model"] = nn.Sequential(kwargs["model"], nn.Softmax(dim=1))
    kwargs["optimizer"] = torch.optim.Adam(kwargs["model"].parameters())
    report = run(select=["loss-input-mismatch"], **kwargs)
    (finding,) = report.by_check("loss-input-mismatch")
    assert finding.reasons == [19]
    assert finding.severity.value == "error"
    assert "Softmax" in finding.title
    assert finding.evidence["max_rowsum_minus_1"] < 1e-3


def test_raw_logits_into_nll_loss() -> None:
    kwargs = healthy_classifier()
    kwargs["loss_fn"] = nn.NLLLoss()
    report = run(select=["loss-input-mismatch"], **kwargs)
    (finding,) = report.by_check("loss-input-mismatch")
    assert "NLLLoss" in finding.title and 19 in finding.reasons


def test_sigmoid_before_bce_with_logits() -> None:
    x, y = blobs(classes=2)
    model = nn.Sequential(mlp(classes=1), nn.Sigmoid())
    data = [(xb, yb.float().unsqueeze(1)) for xb, yb in batches(x, y)]
    report = run(select=["loss-input-mismatch"], model=model, data=data, loss_fn=nn.BCEWithLogitsLoss(),
                 optimizer=torch.optim.Adam(model.parameters()))
    (finding,) = report.by_check("loss-input-mismatch")
    assert "Sigmoid" in finding.title


def test_broadcasting_output_and_target_shapes() -> None:
    x, _ = blobs()
    target = x[:, :1].sum(1) * 2  # shape (N,), the model outputs (N, 1)
    model = mlp(classes=1)
    data = [(x[i : i + 32], target[i : i + 32]) for i in range(0, 256, 32)]
    with pytest.warns(UserWarning):
        report = run(select=["loss-input-mismatch"], model=model, data=data, loss_fn=F.mse_loss,
                     optimizer=torch.optim.Adam(model.parameters()))
    (finding,) = report.by_check("loss-input-mismatch")
    assert finding.reasons == [19, 25]
    assert finding.evidence["broadcast_shape"] == [32, 32]


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
    assert finding.where.file.endswith("test_implementation.py")
    assert finding.evidence["rel_error"] > 0.1


@pytest.mark.silent("custom-layer-gradient")
def test_correct_custom_layers_pass_the_gradient_check() -> None:
    report = run(select=["custom-layer-gradient"], **_net_kwargs(bug=False))
    assert report.by_check("custom-layer-gradient") == []
    assert "2 user-defined module class(es)" in report.result("custom-layer-gradient").detail
