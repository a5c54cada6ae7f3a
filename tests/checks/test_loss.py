"""The loss checks: chance level, loss inputs."""

from __future__ import annotations

import math
import textwrap
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from subjects import batches, blobs, healthy_classifier, mlp, run, serious
from torch import nn

import nndoctor
from nndoctor.engine import Selection, check_script
from nndoctor.report.model import Report


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


class _CosineHead(nn.Module):
    """A normalised-weight classifier with a fixed logit scale (CosFace, ArcFace): its
    weight is a bare parameter, as such heads write it, with no ``reset_parameters``."""

    def __init__(self, features: int, classes: int, scale: float = 30.0) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(classes, features))
        self.scale = scale

    def forward(self, embedding: torch.Tensor) -> torch.Tensor:
        cosine = F.normalize(embedding, dim=1) @ F.normalize(self.weight, dim=1).t()
        return self.scale * cosine  # (batch, classes) in [-scale, scale]


class _AdditiveMarginLoss(nn.modules.loss._Loss):
    """Cross-entropy with the target's scaled cosine lowered by ``scale * margin``."""

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        margin = 30.0 * 0.35 * F.one_hot(target, logits.shape[1])
        return F.cross_entropy(logits - margin, target)


def _cosine_margin_subject() -> dict[str, Any]:
    """Embeddings into a scaled cosine head, an additive margin on the target's logit in
    the loss (AM-softmax / CosFace): by design the loss starts far above ln(C)."""
    x, y = blobs(n=512, features=10, classes=8)
    torch.manual_seed(0)
    body = nn.Sequential(nn.Linear(10, 64), nn.ReLU(), nn.Linear(64, 32))
    model = nn.Sequential(body, _CosineHead(32, 8))
    return {
        "model": model,
        "data": batches(x, y, size=64),
        "loss_fn": _AdditiveMarginLoss(),
        "optimizer": torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9),
    }


@pytest.mark.silent("loss-not-at-chance")
def test_a_margin_and_a_logit_scale_by_design_are_no_bad_initialisation() -> None:
    report = run(select=["loss-not-at-chance"], **_cosine_margin_subject())
    assert serious(report) == []
    (info,) = report.by_check("loss-not-at-chance")
    # The healthy twin, PyTorch's default initialisation, starts as far above ln 8.
    assert info.severity.value == "info"
    assert info.evidence["default_init_loss"] > 2 * math.log(8)
    assert info.evidence["initial_loss"] > 2 * math.log(8)


@pytest.mark.fires("loss-not-at-chance")
def test_the_default_initialisation_twin_brings_a_huge_init_back_to_chance() -> None:
    kwargs = healthy_classifier()
    with torch.no_grad():
        kwargs["model"][-1].weight.mul_(60.0)
    (finding,) = run(select=["loss-not-at-chance"], **kwargs).by_check("loss-not-at-chance")
    assert finding.severity.value == "error"
    assert finding.evidence["default_init_loss"] < 1.5 * math.log(3)
    assert "default initialisation" in finding.message


# Embeddings into a head called with the labels outside the model (as metric-learning
# scripts write it): the training step cannot be rebuilt in-process, so the twin is the
# script replayed with every module re-drawn. ``{head}`` builds the head, ``{call}`` calls it.
SEPARATE_HEAD = """
import torch
import torch.nn.functional as F
from torch import nn

torch.manual_seed(0)
g = torch.Generator().manual_seed(0)
centers = torch.randn(8, 16, generator=g) * 2
y_all = torch.randint(0, 8, (1024,), generator=g)
x_all = centers[y_all] + torch.randn(1024, 16, generator=g)


class AdditiveMarginHead(nn.Module):
    def __init__(self, features, classes, s=30.0, m=0.35):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(classes, features))
        self.s, self.m = s, m

    def forward(self, embedding, labels):
        cosine = F.normalize(embedding) @ F.normalize(self.weight).t()
        return self.s * (cosine - self.m * F.one_hot(labels, cosine.shape[1]))


embedder = nn.Sequential(nn.Linear(16, 64), nn.ReLU(), nn.Linear(64, 32))
{head}
opt = torch.optim.SGD([*embedder.parameters(), *head.parameters()], lr=0.05, momentum=0.9)
for step in range(60):
    idx = torch.randint(0, 1024, (64,), generator=g)
    x, y = x_all[idx], y_all[idx]
    loss = F.cross_entropy({call}, y)
    opt.zero_grad()
    loss.backward()
    opt.step()
"""


def _separate_head(tmp_path: Path, head: str, call: str) -> nndoctor.Report:
    path = tmp_path / "metric.py"
    path.write_text(textwrap.dedent(SEPARATE_HEAD.format(head=head, call=call)))
    return check_script(
        str(path), steps=20, phase_steps=0, selection=Selection(select=("loss-not-at-chance",))
    )


@pytest.mark.silent("loss-not-at-chance")
def test_a_margin_head_outside_the_model_is_judged_on_the_replayed_twin(tmp_path: Path) -> None:
    report = _separate_head(tmp_path, "head = AdditiveMarginHead(32, 8)", "head(embedder(x), y)")
    assert serious(report) == []
    (info,) = report.by_check("loss-not-at-chance")
    assert info.evidence["default_init_loss"] > 2 * math.log(8)


@pytest.mark.fires("loss-not-at-chance")
def test_a_huge_head_init_outside_the_model_is_found_against_the_replayed_twin(
    tmp_path: Path,
) -> None:
    head = "head = nn.Linear(32, 8)\nnn.init.normal_(head.weight, std=5.0)"
    report = _separate_head(tmp_path, head, "head(embedder(x))")
    (finding,) = report.by_check("loss-not-at-chance")
    assert finding.severity.value in ("warning", "error")
    assert finding.evidence["default_init_loss"] < 1.5 * math.log(8) + 0.1


def test_the_twin_leaves_the_random_streams_as_they_were() -> None:
    kwargs = healthy_classifier()
    with torch.no_grad():
        kwargs["model"][-1].weight.mul_(60.0)
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    run(select=["loss-not-at-chance"], **kwargs)
    assert torch.equal(torch.rand(3), expected)


def _binary_logits(
    check: str, model: nn.Module, optimizer: torch.optim.Optimizer | None = None
) -> nndoctor.Report:
    """``check`` on ``model`` trained with BCEWithLogitsLoss on two blobs (targets (N, 1))."""
    x, y = blobs(classes=2)
    return run(
        select=[check],
        model=model,
        data=[(xb, yb.float().unsqueeze(1)) for xb, yb in batches(x, y)],
        loss_fn=nn.BCEWithLogitsLoss(),
        optimizer=optimizer or torch.optim.Adam(model.parameters()),
    )


def test_chance_for_binary_and_regression_losses() -> None:
    report = _binary_logits("loss-not-at-chance", mlp(classes=1))
    assert "chance 0.6931" in report.result("loss-not-at-chance").detail
    assert serious(report) == []


def _offset_regression(scale: float) -> dict:
    """Targets scaled to [0, 1] (mean ~0.5, std ~0.1), as a min-max scaler leaves them."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(256, 8, generator=g)
    y = 0.5 + 0.1 * torch.tanh(x[:, :1])
    model = mlp(features=8, classes=1)
    with torch.no_grad():
        model[-1].weight.mul_(scale)
    return {
        "model": model,
        "data": batches(x, y),
        "loss_fn": nn.MSELoss(),
        "optimizer": torch.optim.Adam(model.parameters(), lr=1e-3),
    }


@pytest.mark.silent("loss-not-at-chance")
def test_regression_targets_off_zero_start_at_their_mean_square() -> None:
    # An initialised network's outputs sit near zero: against targets around 0.5 its MSE
    # is their mean square (~0.26), thirty times their variance, and nothing is wrong.
    report = run(select=["loss-not-at-chance"], **_offset_regression(1.0))
    assert serious(report) == []
    assert "mean square of the targets" in report.result("loss-not-at-chance").detail


@pytest.mark.fires("loss-not-at-chance")
def test_regression_outputs_far_from_zero_at_initialisation() -> None:
    report = run(select=["loss-not-at-chance"], **_offset_regression(300.0))
    (finding,) = report.by_check("loss-not-at-chance")
    assert finding.evidence["ratio"] > 3 and finding.evidence["loss"] == "mse_loss"


@pytest.mark.silent("loss-not-at-chance")
def test_positives_weighted_in_bce_raise_its_chance_level() -> None:
    # 20% positives weighted 6: an uninformed model starts at ln 2 x (6 x 0.2 + 0.8).
    g = torch.Generator().manual_seed(0)
    x = torch.randn(512, 10, generator=g)
    y = (x[:, :1] > 0.85).float()
    model = mlp(classes=1)
    report = run(
        select=["loss-not-at-chance"],
        model=model,
        data=batches(x, y),
        loss_fn=nn.BCEWithLogitsLoss(pos_weight=torch.tensor([6.0])),
        optimizer=torch.optim.Adam(model.parameters(), lr=1e-3),
    )
    assert serious(report) == []
    assert "positives weighted 6" in report.result("loss-not-at-chance").detail


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


def _squashed_classifier(head: nn.Module) -> object:
    kwargs = healthy_classifier()
    kwargs["model"] = nn.Sequential(kwargs["model"], head)
    kwargs["optimizer"] = torch.optim.Adam(kwargs["model"].parameters())
    return run(select=["loss-input-mismatch"], **kwargs)


@pytest.mark.fires("loss-input-mismatch")
@pytest.mark.parametrize(("head", "op"), [(nn.Sigmoid(), "sigmoid"), (nn.Tanh(), "tanh")])
def test_sigmoid_or_tanh_on_the_class_scores_before_cross_entropy(head: nn.Module, op: str) -> None:
    (finding,) = _squashed_classifier(head).by_check("loss-input-mismatch")
    assert finding.reasons == [19]
    assert finding.evidence["score_op"] == op
    classes, width = finding.evidence["classes"], 1.0 if op == "sigmoid" else 2.0
    floor = math.log1p((classes - 1) * math.exp(-width))
    assert finding.evidence["loss_floor"] == pytest.approx(floor)


@pytest.mark.silent("loss-input-mismatch")
def test_logits_soft_capped_or_through_a_relu_before_cross_entropy_pass() -> None:
    # A tanh times a cap (Gemma's soft-capping) is a multiplication, not a squash; a ReLU
    # bounds the scores on one side only.
    class SoftCap(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return 30.0 * torch.tanh(x / 30.0)

    for head in (SoftCap(), nn.ReLU()):
        report = _squashed_classifier(head)
        assert report.result("loss-input-mismatch").status.value == "passed"
        assert report.by_check("loss-input-mismatch") == []


@pytest.mark.fires("loss-input-mismatch")
def test_tanh_on_the_logits_before_bce_with_logits() -> None:
    report = _binary_logits("loss-input-mismatch", nn.Sequential(mlp(classes=1), nn.Tanh()))
    (finding,) = report.by_check("loss-input-mismatch")
    assert finding.title == "Tanh applied to the logits before BCEWithLogitsLoss"
    assert finding.evidence["loss_floor"] == pytest.approx(math.log1p(math.exp(-1.0)))


@pytest.mark.silent("loss-input-mismatch")
def test_binary_logits_clamped_wide_pass() -> None:
    # Clamped to [-10, 10] (against overflow), the loss can still fall to 4.5e-5.
    class Clamp(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x.clamp(-10.0, 10.0)

    report = _binary_logits("loss-input-mismatch", nn.Sequential(mlp(classes=1), Clamp()))
    assert report.result("loss-input-mismatch").status.value == "passed"
    assert "cannot fall below 4.54e-05" in report.result("loss-input-mismatch").detail


def test_raw_logits_into_nll_loss() -> None:
    kwargs = healthy_classifier()
    kwargs["loss_fn"] = nn.NLLLoss()
    report = run(select=["loss-input-mismatch"], **kwargs)
    (finding,) = report.by_check("loss-input-mismatch")
    assert "NLLLoss" in finding.title and 19 in finding.reasons


class _KDLoss(nn.modules.loss._Loss):
    """KL divergence to a fixed soft target plus cross-entropy, as distillation writes it."""

    def __init__(self, student_input: str) -> None:
        super().__init__()
        self.student_input = student_input

    def forward(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        inp = logits.log_softmax(1) if self.student_input == "log_softmax" else logits.softmax(1)
        target = torch.full_like(logits, 1 / logits.shape[1])
        return F.kl_div(inp, target, reduction="batchmean") + F.cross_entropy(logits, y)


def _distillation(student_input: str) -> object:
    kwargs = healthy_classifier()
    kwargs["loss_fn"] = _KDLoss(student_input)
    return run(select=["loss-input-mismatch"], **kwargs)


@pytest.mark.fires("loss-input-mismatch")
def test_probabilities_into_kl_div() -> None:
    (finding,) = _distillation("softmax").by_check("loss-input-mismatch")
    assert "KLDivLoss receives probabilities" in finding.title and 19 in finding.reasons


@pytest.mark.silent("loss-input-mismatch")
def test_log_probabilities_into_kl_div() -> None:
    report = _distillation("log_softmax")
    assert report.by_check("loss-input-mismatch") == []
    assert "kl_div" in report.result("loss-input-mismatch").detail


def test_sigmoid_before_bce_with_logits() -> None:
    report = _binary_logits("loss-input-mismatch", nn.Sequential(mlp(classes=1), nn.Sigmoid()))
    (finding,) = report.by_check("loss-input-mismatch")
    assert "Sigmoid" in finding.title


@pytest.mark.silent("loss-input-mismatch")
def test_logits_of_exactly_zero_are_no_sigmoid_output() -> None:
    # Zeroed weights make every logit 0 at every step: inside [0, 1], but no sigmoid made
    # them (the bug is the initialisation, which other checks name).
    model = mlp(classes=1)
    for layer in model:
        if isinstance(layer, nn.Linear):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)
    report = _binary_logits(
        "loss-input-mismatch", model, torch.optim.SGD(model.parameters(), lr=0.0)
    )
    assert report.by_check("loss-input-mismatch") == []


@pytest.mark.silent("loss-input-mismatch")
def test_early_logits_of_a_linear_layer_inside_0_1_are_no_sigmoid_output() -> None:
    # One sample per step and a positive bias: the first logits all lie in [0, 1], yet a
    # linear layer made them (its outputs are unbounded).
    model = mlp(classes=1)
    last = [m for m in model if isinstance(m, nn.Linear)][-1]
    with torch.no_grad():
        last.weight.mul_(0.05)
        last.bias.fill_(0.4)
    x, y = blobs()
    target = (y % 2).float()
    data = [(x[i : i + 1], target[i : i + 1, None]) for i in range(20)]
    report = run(
        select=["loss-input-mismatch"],
        model=model,
        data=data,
        loss_fn=nn.BCEWithLogitsLoss(),
        optimizer=torch.optim.SGD(model.parameters(), lr=1e-3),
        steps=20,
    )
    assert "binary_cross_entropy_with_logits" in report.result("loss-input-mismatch").detail
    assert report.by_check("loss-input-mismatch") == []


def test_broadcasting_output_and_target_shapes() -> None:
    x, _ = blobs()
    target = x[:, :1].sum(1) * 2  # shape (N,), the model outputs (N, 1)
    model = mlp(classes=1)
    data = [(x[i : i + 32], target[i : i + 32]) for i in range(0, 256, 32)]
    with pytest.warns(UserWarning):
        report = run(
            select=["loss-input-mismatch"],
            model=model,
            data=data,
            loss_fn=F.mse_loss,
            optimizer=torch.optim.Adam(model.parameters()),
        )
    (finding,) = report.by_check("loss-input-mismatch")
    assert finding.reasons == [19, 25]
    assert finding.evidence["broadcast_shape"] == [32, 32]


@pytest.mark.parametrize("flat", [True, False])
def test_a_gaussian_nll_mean_of_another_shape_than_its_target_broadcasts(flat: bool) -> None:
    x, _ = blobs()
    target = x[:, :1] * 2  # shape (N, 1)
    model = mlp(classes=2)

    def loss_fn(net: nn.Module, batch: Any) -> torch.Tensor:
        out = net(batch[0])
        # out[:, 0] is (N,): against (N, 1) targets every mean meets every target.
        mean, raw = (out[:, 0], out[:, 1]) if flat else (out[:, :1], out[:, 1:])
        return F.gaussian_nll_loss(mean, batch[1], F.softplus(raw) + 1e-3)

    report = run(
        select=["loss-input-mismatch"],
        model=model,
        data=[(x[i : i + 32], target[i : i + 32]) for i in range(0, 256, 32)],
        loss_fn=loss_fn,
        optimizer=torch.optim.Adam(model.parameters()),
    )
    findings = report.by_check("loss-input-mismatch")
    if flat:
        (finding,) = findings
        assert finding.reasons == [19, 25] and finding.evidence["broadcast_shape"] == [32, 32]
    else:
        assert findings == []


def counts_subject(squeeze: bool) -> dict[str, Any]:
    """Poisson regression of counts from a log-rate output of shape (N, 1)."""
    x, _ = blobs()
    g = torch.Generator().manual_seed(0)
    counts = torch.poisson((0.5 * x[:, 0]).exp(), generator=g)  # shape (N,)
    model = mlp(classes=1)

    def loss_fn(net: nn.Module, batch: Any) -> torch.Tensor:
        log_rate = net(batch[0])
        return F.poisson_nll_loss(log_rate.squeeze(1) if squeeze else log_rate, batch[1])

    return {
        "model": model,
        "data": [(x[i : i + 32], counts[i : i + 32]) for i in range(0, 256, 32)],
        "loss_fn": loss_fn,
        "optimizer": torch.optim.Adam(model.parameters(), lr=1e-3),
    }


@pytest.mark.fires("loss-input-mismatch")
def test_poisson_counts_broadcast_against_an_unsqueezed_output() -> None:
    # No warning from torch here: (N, 1) against (N,) silently becomes (N, N).
    report = run(select=["loss-input-mismatch"], **counts_subject(squeeze=False))
    (finding,) = serious(report, "loss-input-mismatch")
    assert finding.evidence["broadcast_shape"] == [32, 32]


@pytest.mark.silent("loss-input-mismatch")
def test_poisson_counts_on_a_squeezed_output_are_fine() -> None:
    report = run(select=["loss-input-mismatch"], **counts_subject(squeeze=True))
    assert not serious(report)
    (result,) = [r for r in report.checks if r.check == "loss-input-mismatch"]
    assert result.status.value == "passed"


def binary_pixels(scaled_targets: bool) -> dict[str, Any]:
    """Per-pixel BCE-with-logits on binary images fed to the model scaled to {-1, 1}."""
    g = torch.Generator().manual_seed(0)
    pixels = (torch.rand(256, 16, generator=g) < 0.3).float()
    inputs = 2 * pixels - 1
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 16))
    targets = inputs if scaled_targets else pixels
    return {
        "model": model,
        "data": [(inputs[i : i + 32], targets[i : i + 32]) for i in range(0, 256, 32)],
        "loss_fn": nn.BCEWithLogitsLoss(),
        "optimizer": torch.optim.Adam(model.parameters(), lr=1e-3),
    }


@pytest.mark.fires("loss-input-mismatch")
def test_binary_cross_entropy_against_targets_in_minus_one_to_one() -> None:
    report = run(select=["loss-input-mismatch"], **binary_pixels(scaled_targets=True))
    (finding,) = serious(report, "loss-input-mismatch")
    assert finding.reasons == [18, 19]
    assert finding.evidence["target_min"] == -1.0 and finding.evidence["target_max"] == 1.0


@pytest.mark.silent("loss-input-mismatch")
def test_binary_cross_entropy_against_zero_one_pixels_is_fine() -> None:
    report = run(select=["loss-input-mismatch"], **binary_pixels(scaled_targets=False))
    assert not serious(report)
    (result,) = [r for r in report.checks if r.check == "loss-input-mismatch"]
    assert result.status.value == "passed"


@pytest.mark.silent("loss-mismatches-task")
def test_cross_entropy_on_class_indices_fits_the_task() -> None:
    report = run(select=["loss-mismatches-task"], **healthy_classifier())
    assert report.by_check("loss-mismatches-task") == []


def _one_output_regression(classes: int, target: Any) -> nndoctor.Report:
    """A one-output MLP on ``classes`` blobs trained with MSE on ``target(x, y)``."""
    x, y = blobs(classes=classes)
    model = mlp(classes=1)
    return run(
        select=["loss-mismatches-task"],
        model=model,
        data=[(xb, target(xb, yb)) for xb, yb in batches(x, y)],
        loss_fn=nn.MSELoss(),
        optimizer=torch.optim.Adam(model.parameters()),
    )


@pytest.mark.fires("loss-mismatches-task")
def test_mse_on_class_indices_and_ce_over_one_class() -> None:
    report = _one_output_regression(5, lambda x, y: y.float().unsqueeze(1))
    (finding,) = report.by_check("loss-mismatches-task")
    assert finding.reasons == [18] and finding.evidence["target_max"] == 4
    model = mlp(classes=1)
    x, y = blobs(classes=2)
    report = run(
        select=["loss-mismatches-task"],
        model=model,
        data=batches(x, y * 0),
        loss_fn=nn.CrossEntropyLoss(),
        optimizer=torch.optim.Adam(model.parameters()),
    )
    (finding,) = report.by_check("loss-mismatches-task")
    assert finding.severity.value == "error" and "single class" in finding.title


def test_mse_on_binary_labels_is_a_classification_trained_as_a_regression() -> None:
    # A Hugging Face classifier configured with num_labels=1 regresses its 0/1 labels.
    report = _one_output_regression(2, lambda x, y: y.float().unsqueeze(1))
    (finding,) = report.by_check("loss-mismatches-task")
    assert finding.reasons == [18] and "binary labels" in finding.title


def test_mse_on_a_rating_scale_fits_the_task() -> None:
    # Star ratings 1-5, quality scores 3-9: whole units of a scale, not class indices
    # (which count from 0).
    report = _one_output_regression(5, lambda x, y: (y + 1).float().unsqueeze(1))
    assert report.by_check("loss-mismatches-task") == []
    assert report.result("loss-mismatches-task").status.value == "passed"


def test_mse_on_a_continuous_target_in_the_unit_interval_fits_the_task() -> None:
    report = _one_output_regression(2, lambda x, y: torch.sigmoid(x[:, :1]))
    assert report.by_check("loss-mismatches-task") == []
    assert report.result("loss-mismatches-task").status.value == "passed"


def test_bce_on_one_hot_single_label_targets() -> None:
    x, y = blobs(classes=4)
    model = mlp(classes=4)
    data = [(xb, F.one_hot(yb, 4).float()) for xb, yb in batches(x, y)]
    report = run(
        select=["loss-mismatches-task"],
        model=model,
        data=data,
        loss_fn=nn.BCEWithLogitsLoss(),
        optimizer=torch.optim.Adam(model.parameters()),
    )
    (finding,) = report.by_check("loss-mismatches-task")
    assert "single-label" in finding.title


class TwoHeads(nn.Module):
    def __init__(self, shared: bool = True) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.body = nn.Linear(10, 16)
        self.cls = nn.Linear(16, 3)
        self.reg = nn.Linear(16, 2) if shared else nn.Linear(10, 2)
        self.shared = shared

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = torch.relu(self.body(x))
        return self.cls(h), self.reg(h if self.shared else x)


def _two_head_loss(box_scale: float):
    def loss_fn(model: nn.Module, batch: tuple) -> torch.Tensor:
        x, y = batch
        logits, boxes = model(x)
        return F.cross_entropy(logits, y) + F.mse_loss(boxes, x[:, :2] * box_scale)

    return loss_fn


def _two_head_report(box_scale: float, shared: bool = True) -> nndoctor.Report:
    model = TwoHeads(shared)
    return run(
        select=["loss-term-dominates"],
        model=model,
        data=batches(*blobs()),
        loss_fn=_two_head_loss(box_scale=box_scale),
        optimizer=torch.optim.Adam(model.parameters()),
    )


@pytest.mark.fires("loss-term-dominates")
@pytest.mark.parametrize(
    ("box_scale", "low", "high"),
    # Targets in pixels; targets in the hundreds (a price) under one output scale.
    [(1000.0, 1000, math.inf), (250.0, 100, 1000)],
)
def test_an_unscaled_regression_term_dominates_the_classification_term(
    box_scale: float, low: float, high: float
) -> None:
    (finding,) = _two_head_report(box_scale).by_check("loss-term-dominates")
    assert finding.reasons == [20] and low < finding.evidence["ratio"] < high
    assert "mse_loss" in finding.message


@pytest.mark.silent("loss-term-dominates")
def test_terms_on_disjoint_parameters_cannot_drown_each_other() -> None:
    # The box head reads the input, not the body: the classification term alone moves the
    # body and its head, however large the box term, as a VQ-VAE's codebook loss alone
    # moves its codebook.
    report = _two_head_report(1000.0, shared=False)
    assert report.by_check("loss-term-dominates") == []
    assert (
        "largest ratio on the parameters two terms both move 0"
        in report.result("loss-term-dominates").detail
    )


@pytest.mark.silent("loss-term-dominates")
@pytest.mark.parametrize("box_scale", [1.0, 3.0])  # balanced; a few times apart
def test_balanced_terms_pass(box_scale: float) -> None:
    report = _two_head_report(box_scale)
    assert report.by_check("loss-term-dominates") == []
    assert report.result("loss-term-dominates").status.value == "passed"
    assert "cross_entropy=" in report.result("loss-term-dominates").detail


@pytest.mark.silent("loss-term-dominates")
def test_a_weight_drawn_anew_at_each_step_dominating_once_is_no_finding() -> None:
    # Mixup-like: each batch carries its own weight, extreme on the first batch only.
    x, y = blobs()
    data = [
        (x[i : i + 32], y[i : i + 32], torch.tensor(1e-5 if i == 0 else 0.5))
        for i in range(0, 256, 32)
    ]

    def mixed(model: nn.Module, batch: tuple) -> torch.Tensor:
        xb, yb, lam = batch
        logits, boxes = model(xb)
        return lam * F.cross_entropy(logits, yb) + (1 - lam) * F.mse_loss(boxes, xb[:, :2])

    model = TwoHeads()
    report = run(
        select=["loss-term-dominates"],
        model=model,
        data=data,
        loss_fn=mixed,
        optimizer=torch.optim.Adam(model.parameters()),
    )
    assert report.by_check("loss-term-dominates") == []
    assert "at the next step" in report.result("loss-term-dominates").detail


def _hand_written_report(scale: float, penalty: float = 0.0) -> nndoctor.Report:
    """Two recognised terms (cross-entropy, MSE on one box coordinate) and a box term by
    hand, as detection losses are written, weighted by ``scale``; an L2 penalty by hand."""

    def loss_fn(model: nn.Module, batch: tuple) -> torch.Tensor:
        x, y = batch
        logits, boxes = model(x)
        by_hand = (boxes[:, 1] - x[:, 1]).pow(2).mean()
        weights = sum(p.pow(2).sum() for p in model.parameters())
        return (
            F.cross_entropy(logits, y)
            + F.mse_loss(boxes[:, 0], x[:, 0])
            + scale * by_hand
            + penalty * weights
        )

    model = TwoHeads()
    return run(
        select=["loss-term-dominates"],
        model=model,
        data=batches(*blobs()),
        loss_fn=loss_fn,
        optimizer=torch.optim.Adam(model.parameters()),
    )


def test_a_hand_written_term_scaled_up_dominates_the_recognised_ones() -> None:
    (finding,) = _hand_written_report(1000.0).by_check("loss-term-dominates")
    assert finding.reasons == [20]
    assert finding.evidence["ratio"] > 100
    assert "plain torch" in finding.title


@pytest.mark.silent("loss-term-dominates")
@pytest.mark.parametrize(("scale", "penalty"), [(1.0, 0.0), (1.0, 1e-4)])
def test_a_hand_written_term_of_their_size_or_a_small_penalty_passes(
    scale: float, penalty: float
) -> None:
    report = _hand_written_report(scale, penalty)
    assert report.by_check("loss-term-dominates") == []
    result = report.result("loss-term-dominates")
    assert result.status.value == "passed"
    assert "the rest of the loss (plain torch)" in result.detail


def _regression(head: nn.Module, targets: torch.Tensor) -> dict:
    torch.manual_seed(0)
    x = torch.rand(128, 8)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 1), head)
    return {
        "model": model,
        "data": list(batches(x, targets)),
        "loss_fn": nn.MSELoss(),
        "optimizer": torch.optim.Adam(model.parameters(), lr=1e-3),
    }


@pytest.mark.fires("bounded-output-vs-targets")
def test_sigmoid_output_against_pixel_valued_targets() -> None:
    torch.manual_seed(1)
    targets = torch.randint(0, 256, (128, 1)).float()
    report = run(select=["bounded-output-vs-targets"], **_regression(nn.Sigmoid(), targets))
    (finding,) = report.by_check("bounded-output-vs-targets")
    assert finding.reasons == [19]
    assert finding.evidence["output_op"] == "sigmoid"
    assert finding.evidence["target_max"] > 200


def test_tanh_output_against_targets_in_zero_to_two() -> None:
    torch.manual_seed(1)
    targets = 2 * torch.rand(128, 1)
    report = run(select=["bounded-output-vs-targets"], **_regression(nn.Tanh(), targets))
    (finding,) = report.by_check("bounded-output-vs-targets")
    assert finding.evidence["output_range"] == [-1.0, 1.0]


def test_relu_output_against_standardised_targets() -> None:
    torch.manual_seed(1)
    targets = torch.randn(128, 1)
    report = run(select=["bounded-output-vs-targets"], **_regression(nn.ReLU(), targets))
    (finding,) = report.by_check("bounded-output-vs-targets")
    assert finding.evidence["output_op"] == "relu"


@pytest.mark.fires("bounded-output-vs-targets")
def test_elu_left_after_the_last_layer_against_targets_far_below_minus_one() -> None:
    # A flow-matching velocity: differences of points, reaching -5 and beyond.
    torch.manual_seed(1)
    targets = 3 * torch.randn(128, 1)
    report = run(select=["bounded-output-vs-targets"], **_regression(nn.ELU(), targets))
    (finding,) = report.by_check("bounded-output-vs-targets")
    assert finding.reasons == [19]
    assert finding.evidence["output_op"] == "elu"
    assert finding.evidence["output_range"] == [-1.0, math.inf]


def test_a_clamp_to_the_unit_interval_against_targets_in_zero_to_ten() -> None:
    torch.manual_seed(1)
    targets = 10 * torch.rand(128, 1)
    clamp = nn.Hardtanh(0.0, 1.0)
    report = run(select=["bounded-output-vs-targets"], **_regression(clamp, targets))
    (finding,) = report.by_check("bounded-output-vs-targets")
    assert finding.evidence["output_range"] == [0.0, 1.0]


@pytest.mark.silent("bounded-output-vs-targets")
def test_relu6_and_elu_against_targets_within_their_range_pass() -> None:
    # ReLU6 is a hardtanh(0, 6): judged on the bounds it was given, not tanh's [-1, 1].
    torch.manual_seed(1)
    for head, targets in ((nn.ReLU6(), 6 * torch.rand(128, 1)), (nn.ELU(), torch.rand(128, 1))):
        report = run(select=["bounded-output-vs-targets"], **_regression(head, targets))
        assert report.result("bounded-output-vs-targets").status == "passed"
        assert report.by_check("bounded-output-vs-targets") == []


@pytest.mark.silent("bounded-output-vs-targets")
def test_bounded_outputs_against_targets_in_range_and_linear_outputs_pass() -> None:
    torch.manual_seed(1)
    in_unit = torch.rand(128, 1)
    for head, targets in ((nn.Sigmoid(), in_unit), (nn.Identity(), 255 * in_unit)):
        report = run(select=["bounded-output-vs-targets"], **_regression(head, targets))
        assert report.result("bounded-output-vs-targets").status == "passed"
        assert report.by_check("bounded-output-vs-targets") == []


class _FocalLoss(nn.modules.loss._Loss):
    """The focal loss of RetinaNet (gamma 2), normalised by the positives."""

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        ce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
        p = torch.sigmoid(logits)
        p_t = p * target + (1 - p) * (1 - target)
        return ((1 - p_t) ** 2 * ce).sum() / target.sum().clamp(min=1.0)


def _focal_detector(prior_bias: float) -> nndoctor.Report:
    """A dense binary head over 64 anchors, trained by a focal loss built on an unreduced
    binary cross-entropy (as detectors write it); the head's bias starts at ``prior_bias``."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(256, 8, generator=g)
    y = (torch.rand(256, 64, generator=g) < 0.02).float()  # a rare positive class
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 64))
    with torch.no_grad():
        model[-1].bias.fill_(prior_bias)

    return run(
        select=["loss-not-at-chance"],
        model=model,
        data=list(zip(x.split(32), y.split(32), strict=True)),
        loss_fn=_FocalLoss(),
        optimizer=torch.optim.Adam(model.parameters()),
    )


@pytest.mark.fires("loss-not-at-chance")
def test_a_focal_loss_prior_bias_of_the_wrong_sign_starts_far_above_chance() -> None:
    # -log((1 - 0.01) / 0.01) = -4.6 is the prior; +4.6 makes every anchor confident.
    report = _focal_detector(prior_bias=4.6)
    (finding,) = report.by_check("loss-not-at-chance")
    assert finding.reasons == [17, 28]
    assert finding.evidence["reduction"] == "none"
    assert finding.evidence["chance"] == pytest.approx(math.log(2))
    assert finding.severity.value == "error"


@pytest.mark.silent("loss-not-at-chance")
def test_a_focal_loss_with_its_prior_bias_starts_below_chance() -> None:
    report = _focal_detector(prior_bias=-4.6)
    assert not report.by_check("loss-not-at-chance")
    assert "per element (reduction='none')" in report.result("loss-not-at-chance").detail


def _categorical_policy(softmax: bool) -> Report:
    """A classifier trained by ``-Categorical(logits=...).log_prob(y)`` (as policies are),
    its head ending in a softmax or not."""
    x, y = blobs()
    torch.manual_seed(0)
    head = mlp()
    model = nn.Sequential(head, nn.Softmax(dim=1)) if softmax else head

    def nll(net: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        inputs, targets = batch
        dist = torch.distributions.Categorical(logits=net(inputs))
        return -dist.log_prob(targets).mean()

    return run(
        select=["loss-input-mismatch"],
        model=model,
        data=batches(x, y),
        loss_fn=nll,
        optimizer=torch.optim.Adam(model.parameters(), lr=1e-3),
    )


@pytest.mark.fires("loss-input-mismatch")
def test_probabilities_passed_as_categorical_logits_are_an_error() -> None:
    (finding,) = _categorical_policy(softmax=True).by_check("loss-input-mismatch")
    assert finding.reasons == [19] and finding.severity.value == "error"
    assert finding.title == "Probabilities passed as logits to Categorical"
    assert finding.evidence["max_rowsum_minus_1"] < 1e-4


@pytest.mark.silent("loss-input-mismatch")
def test_raw_scores_as_categorical_logits_are_silent() -> None:
    report = _categorical_policy(softmax=False)
    assert report.by_check("loss-input-mismatch") == []
    # The distribution is restored once the check is over.
    assert not hasattr(torch.distributions.Categorical.__init__, "__wrapped__")


def _gumbel_latent_autoencoder(softmax_first: bool) -> Report:
    """A categorical autoencoder: the encoder's scores go through ``F.gumbel_softmax`` to a
    one-hot latent the decoder reads, as a categorical VAE's do; with ``softmax_first`` the
    scores are turned into probabilities before they are passed as logits."""
    x, _ = blobs()
    torch.manual_seed(0)
    encoder, decoder = nn.Linear(x.shape[1], 8), nn.Linear(8, x.shape[1])
    model = nn.ModuleDict({"encoder": encoder, "decoder": decoder})

    def reconstruction(net: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        inputs, _ = batch
        scores = net["encoder"](inputs)
        if softmax_first:
            scores = scores.softmax(dim=-1)
        latent = torch.nn.functional.gumbel_softmax(scores, tau=1.0, hard=True)
        return nn.functional.mse_loss(net["decoder"](latent), inputs)

    return run(
        select=["loss-input-mismatch"],
        model=model,
        data=batches(x, x),
        loss_fn=reconstruction,
        optimizer=torch.optim.Adam(model.parameters(), lr=1e-3),
    )


@pytest.mark.fires("loss-input-mismatch")
def test_probabilities_passed_to_gumbel_softmax_are_an_error() -> None:
    (finding,) = _gumbel_latent_autoencoder(softmax_first=True).by_check("loss-input-mismatch")
    assert finding.reasons == [19] and finding.severity.value == "error"
    assert finding.title == "Probabilities passed as logits to gumbel_softmax"
    assert "F.gumbel_softmax" in finding.fix


@pytest.mark.silent("loss-input-mismatch")
def test_scores_passed_to_gumbel_softmax_are_silent() -> None:
    report = _gumbel_latent_autoencoder(softmax_first=False)
    assert report.by_check("loss-input-mismatch") == []
    assert report.result("loss-input-mismatch").status.value == "passed"
    # F.gumbel_softmax is restored once the check is over.
    assert not hasattr(torch.nn.functional.gumbel_softmax, "__wrapped__")


@pytest.mark.parametrize(("lr", "severity"), [(1e-1, "info"), (1e-6, "warning")])
def test_a_start_above_chance_the_first_steps_undo_is_an_info(lr: float, severity: str) -> None:
    # 1.7x chance: confident from the first step. Stepped at a useful rate, the run's own
    # loss is far below the bar from step 5 on (a cost of a few steps); at a rate that
    # cannot move it, the start stays and is warned about.
    kwargs = healthy_classifier()
    with torch.no_grad():
        kwargs["model"][-1].weight.mul_(12.0)
    kwargs["optimizer"] = torch.optim.Adam(kwargs["model"].parameters(), lr=lr)
    report = run(select=["loss-not-at-chance"], **kwargs)
    (finding,) = report.by_check("loss-not-at-chance")
    assert 1.5 < finding.evidence["ratio"] < 3
    assert finding.severity.value == severity
    assert ("median_loss_after" in finding.evidence) == (severity == "info")


def _hand_written_regression(loss: Any, seed: int = 0) -> Report:
    """A regression MLP with one output per sample, targets of shape (N,), trained with
    the hand-written ``loss(out, y)``."""
    torch.manual_seed(seed)
    x = torch.randn(256, 6)
    y = x[:, 0] - 0.5 * x[:, 1] + 0.1 * torch.randn(256)
    model = nn.Sequential(nn.Linear(6, 32), nn.ReLU(), nn.Linear(32, 1))
    return run(
        select=["loss-input-mismatch"],
        model=model,
        data=batches(x, y, 32),
        loss_fn=lambda m, batch: loss(m(batch[0]), batch[1]),
        optimizer=torch.optim.Adam(model.parameters(), lr=1e-3),
    )


@pytest.mark.fires("loss-input-mismatch")
def test_hand_written_loss_broadcasting_n_by_1_against_n_is_an_error() -> None:
    report = _hand_written_regression(lambda out, y: ((out - y) ** 2).mean())
    (finding,) = report.by_check("loss-input-mismatch")
    assert finding.reasons == [19, 25]
    assert finding.severity.value == "error"
    assert finding.evidence["input_shape"] == [32, 1]
    assert finding.evidence["broadcast_shape"] == [32, 32]
    assert "(32, 32)" in finding.message


@pytest.mark.silent("loss-input-mismatch")
def test_hand_written_loss_on_matching_shapes_is_silent() -> None:
    report = _hand_written_regression(lambda out, y: ((out.squeeze(1) - y) ** 2).mean())
    assert report.by_check("loss-input-mismatch") == []


@pytest.mark.silent("loss-input-mismatch")
def test_a_pairwise_loss_written_on_purpose_is_silent() -> None:
    # Every pair of predictions ordered as their targets are (RankNet), stretched on
    # purpose with [:, None], and every prediction against every target by an explicit
    # unsqueeze of its own.
    def pairwise(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        s = out.squeeze(1)
        order = torch.sign(y[:, None] - y[None, :])
        ranking = F.softplus(-order * (s[:, None] - s[None, :])).mean()
        kernel = torch.exp(-((s.unsqueeze(1) - y) ** 2)).mean()
        return ranking - 0.1 * kernel

    report = _hand_written_regression(pairwise)
    assert report.by_check("loss-input-mismatch") == []


def _siamese(distance: Any, scale: torch.Tensor | None = None) -> Report:
    """A siamese embedding net on pairs labelled same (1) or different (0), trained with
    the contrastive loss on ``distance(a, b)``; with a learned log-``scale``, a term
    weighting each label by its exponential is added (as SAC's temperature loss weights
    each sample's entropy gap)."""
    torch.manual_seed(0)
    centres = torch.randn(4, 8)
    kind = torch.randint(0, 4, (256, 2))
    kind[:128, 1] = kind[:128, 0]
    x1 = centres[kind[:, 0]] + 0.3 * torch.randn(256, 8)
    x2 = centres[kind[:, 1]] + 0.3 * torch.randn(256, 8)
    same = (kind[:, 0] == kind[:, 1]).float()
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4))

    def contrastive(m: nn.Module, batch: Any) -> torch.Tensor:
        a, b, label = m(batch[0]), m(batch[1]), batch[2]
        d = distance(a, b)
        loss = (label * d.pow(2) + (1 - label) * torch.clamp(1.0 - d, min=0).pow(2)).mean()
        return loss if scale is None else loss - 0.01 * (scale.exp() * label).mean()

    perm = torch.randperm(256)
    x1, x2, same = x1[perm], x2[perm], same[perm]
    return run(
        select=["loss-input-mismatch"],
        model=model,
        data=[(x1[i : i + 32], x2[i : i + 32], same[i : i + 32]) for i in range(0, 256, 32)],
        loss_fn=contrastive,
        optimizer=torch.optim.Adam(model.parameters(), lr=1e-3),
    )


@pytest.mark.fires("loss-input-mismatch")
def test_a_distance_summed_over_the_whole_batch_is_applied_to_every_pair() -> None:
    report = _siamese(lambda a, b: torch.sqrt(((a - b) ** 2).sum() + 1e-8))
    (finding,) = report.by_check("loss-input-mismatch")
    assert finding.reasons == [18, 25]
    assert "whole batch" in finding.title
    assert finding.evidence["broadcast_shape"] == [32]


@pytest.mark.silent("loss-input-mismatch")
def test_a_distance_per_pair_and_a_learned_scale_are_silent() -> None:
    # Each pair's own distance, scaled by a learned number (as SAC's temperature scales
    # per-sample terms): one number, but no reduction of the batch.
    report = _siamese(
        lambda a, b: torch.sqrt(((a - b) ** 2).sum(1) + 1e-8),
        scale=torch.zeros((), requires_grad=True),
    )
    assert report.by_check("loss-input-mismatch") == []
