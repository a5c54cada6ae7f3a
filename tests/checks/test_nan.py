"""NaN tracing: the first step, module and operation."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from subjects import batches, blobs, healthy_classifier, mlp, run
from torch import nn

from nndoctor.engine import Selection, check_script


@pytest.mark.silent("non-finite-values")
def test_no_nan_in_a_healthy_run() -> None:
    report = run(select=["non-finite-values"], **healthy_classifier())
    assert report.by_check("non-finite-values") == []
    assert "no non-finite value" in report.result("non-finite-values").detail


@pytest.mark.silent("non-finite-values")
def test_integer_token_inputs_are_not_taken_for_nan() -> None:
    # Token ids carry no statistics (only shape and dtype): they cannot be non-finite.
    torch.manual_seed(0)
    tokens = torch.randint(0, 20, (256, 6))
    labels = tokens[:, 0] % 3
    model = nn.Sequential(nn.Embedding(20, 8), nn.Flatten(), nn.Linear(48, 3))
    report = run(
        select=["non-finite-values", "input-not-finite"],
        model=model,
        data=batches(tokens, labels),
        loss_fn=nn.CrossEntropyLoss(),
        optimizer=torch.optim.Adam(model.parameters(), lr=1e-3),
    )
    assert report.findings == []


class LogOfRelu(nn.Module):
    """The bug: log of a ReLU output, which is exactly zero for half the units."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.log(torch.relu(x))


@pytest.mark.fires("non-finite-values")
def test_log_of_zero_is_traced_to_its_module_op_and_line() -> None:
    x, y = blobs()
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(10, 16), LogOfRelu(), nn.Linear(16, 3))
    report = run(
        select=["non-finite-values"],
        model=model,
        data=[(x[:32], y[:32])],
        loss_fn=nn.CrossEntropyLoss(),
        optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
    )
    (finding,) = report.by_check("non-finite-values")
    assert finding.reasons == [37]
    assert finding.where.step == 0
    assert finding.where.module == "1"
    assert finding.where.op == "log"
    assert finding.where.file.endswith("test_nan.py")
    assert "log of zero" in finding.message


def test_nan_in_the_data_names_reason_1() -> None:
    x, y = blobs()
    x[5, 3] = float("nan")
    model = mlp()
    report = run(
        select=["non-finite-values"],
        model=model,
        data=[(x[:32], y[:32])],
        loss_fn=F.cross_entropy,
        optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
    )
    (finding,) = report.by_check("non-finite-values")
    assert finding.reasons == [1, 37]
    assert finding.evidence["phase"] == "input"


def test_divergence_from_a_huge_learning_rate_is_seen_in_gradients_or_weights() -> None:
    kwargs = healthy_classifier()
    kwargs["optimizer"] = torch.optim.SGD(kwargs["model"].parameters(), lr=1e6)
    report = run(select=["non-finite-values"], **kwargs)
    (finding,) = report.by_check("non-finite-values")
    assert finding.where.step > 0
    assert finding.evidence["phase"] in ("forward", "loss", "backward", "gradient", "weights")


def _hand_written_bce(model: nn.Module, batch: tuple) -> torch.Tensor:
    """The bug: BCE written out by hand. Once a memorised sample's sigmoid rounds to exactly 1,
    its ``(1 - y) * log(1 - p)`` is 0 * -inf = NaN."""
    x, y = batch
    p = torch.sigmoid(model(x).squeeze(1))
    return -(y * torch.log(p) + (1 - y) * torch.log(1 - p)).mean()


def _stable_bce(model: nn.Module, batch: tuple) -> torch.Tensor:
    x, y = batch
    return F.binary_cross_entropy_with_logits(model(x).squeeze(1), y)


def _binary(loss_fn: object, lr: float) -> dict:
    x, y = blobs(classes=2)
    model = mlp(classes=1)
    return {
        "model": model,
        "data": batches(x, y.float()),
        "loss_fn": loss_fn,
        "optimizer": torch.optim.Adam(model.parameters(), lr=lr),
    }


@pytest.mark.fires("nonfinite-in-experiment")
def test_a_tiny_batch_run_that_overflows_is_traced_to_its_op_and_step() -> None:
    # The observed 20 steps stay finite; memorising 8 samples saturates a sigmoid to 1.0.
    report = run(select=["nonfinite-in-experiment"], **_binary(_hand_written_bce, lr=0.01))
    (finding,) = report.by_check("nonfinite-in-experiment")
    assert finding.reasons == [37]
    assert finding.severity.value == "warning"
    assert finding.where.step > 0
    assert finding.where.op == "log"
    assert finding.where.file.endswith("test_nan.py")
    assert "log of zero" in finding.message


@pytest.mark.silent("nonfinite-in-experiment")
def test_a_stable_loss_stays_finite_on_the_tiny_batch() -> None:
    report = run(
        select=["nonfinite-in-experiment"],
        **_binary(_stable_bce, lr=0.01),
    )
    assert report.result("nonfinite-in-experiment").status == "passed"
    assert report.by_check("nonfinite-in-experiment") == []


def _regression(lr: float) -> dict:
    x, _ = blobs()
    torch.manual_seed(0)
    y = x @ torch.randn(10, 1)
    model = nn.Linear(10, 1)
    return {
        "model": model,
        "data": batches(x, y),
        "loss_fn": nn.MSELoss(),
        "optimizer": torch.optim.SGD(model.parameters(), lr=lr),
    }


@pytest.mark.fires("non-finite-values")
def test_a_nan_that_ends_a_diverging_loss_is_read_as_the_divergences_effect() -> None:
    report = run(select=["non-finite-values", "loss-diverging"], **_regression(lr=20.0))
    (finding,) = report.by_check("non-finite-values")
    assert finding.reasons == [37] and finding.aspect == "after-growth"
    assert finding.evidence["loss_growth_before"] >= 10
    assert report.by_check("loss-diverging")
    # No cause: the divergence is the symptom to explain, the learning rate first to look at.
    assert report.diagnosis.causes == []
    assert report.diagnosis.differential[0].reason == 36
    assert finding.role != "cause"


def test_a_nan_from_the_first_step_stays_the_cause() -> None:
    x, y = blobs()
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(10, 16), LogOfRelu(), nn.Linear(16, 3))
    report = run(
        select=["non-finite-values", "loss-diverging"],
        model=model,
        data=[(x[:32], y[:32])],
        loss_fn=nn.CrossEntropyLoss(),
        optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
    )
    (finding,) = report.by_check("non-finite-values")
    assert finding.aspect == "" and finding.role == "cause"
    assert report.diagnosis.causes[0].lead is finding


def test_weights_already_non_finite_when_training_begins_are_inherited() -> None:
    kwargs = _regression(lr=0.01)
    with torch.no_grad():
        kwargs["model"].weight[0, 3] = float("inf")  # left so by an earlier run
    report = run(select=["non-finite-values"], **kwargs)
    (finding,) = report.by_check("non-finite-values")
    assert finding.aspect == "inherited" and finding.where.step == 0
    assert "already non-finite when this phase of training began" in finding.message
    assert report.diagnosis.causes == []


LBFGS_DIVERGING = """
import torch
from torch import nn
torch.manual_seed(0)
x = torch.randn(256, 10)
y = x @ torch.randn(10, 1)
model = nn.Sequential(nn.Linear(10, 32), nn.Tanh(), nn.Linear(32, 1))
opt = torch.optim.LBFGS(model.parameters(), lr=30.0, max_iter=5)
for step in range(30):
    def closure():
        opt.zero_grad()
        loss = nn.functional.mse_loss(model(x), y)
        loss.backward()
        return loss
    opt.step(closure)
"""


@pytest.mark.fires("non-finite-values")
def test_an_lbfgs_run_that_overflows_is_replayed_with_its_closure(tmp_path: Path) -> None:
    # The replay that traces the first bad op steps a copy: LBFGS needs a closure there too.
    path = tmp_path / "lbfgs.py"
    path.write_text(textwrap.dedent(LBFGS_DIVERGING))
    report = check_script(
        str(path), steps=20, phase_steps=0, selection=Selection(select=("non-finite-values",))
    )
    assert report.result("non-finite-values").status.value == "failed"
    (finding,) = report.by_check("non-finite-values")
    assert finding.reasons == [37]


class MaskedPointer(nn.Module):
    """Scores over 6 candidate positions, the already-used ones masked to -inf before the
    log-softmax, as a pointer network or an attention does."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.score = nn.Linear(10, 6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scores = self.score(x)
        used = torch.zeros_like(scores, dtype=torch.bool)
        used[:, 3:] = True  # positions 3..5 were pointed at already
        return F.log_softmax(scores.masked_fill(used, float("-inf")), dim=-1)


def _pointer_run(targets_in_reach: bool) -> object:
    x, y = blobs(classes=3)
    if not targets_in_reach:
        y = y + 3  # targets among the masked positions: log-probability -inf, loss inf
    model = MaskedPointer()
    return run(
        select=["non-finite-values"],
        model=model,
        data=batches(x, y),
        loss_fn=nn.NLLLoss(),
        optimizer=torch.optim.Adam(model.parameters(), lr=1e-3),
    )


@pytest.mark.silent("non-finite-values")
def test_positions_masked_to_minus_infinity_on_purpose_are_a_note() -> None:
    report = _pointer_run(targets_in_reach=True)
    assert report.by_check("non-finite-values") == []
    result = report.result("non-finite-values")
    assert result.status.value == "passed"
    assert "masked out on purpose" in result.detail and "masked_fill" in result.detail


@pytest.mark.fires("non-finite-values")
def test_a_mask_that_reaches_the_loss_is_reported() -> None:
    report = _pointer_run(targets_in_reach=False)
    (finding,) = report.by_check("non-finite-values")
    assert finding.reasons == [37]
