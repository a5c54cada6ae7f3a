"""Frozen or unoptimised parameters (23), zero_grad (26, 36) and train/eval mode (32)."""

from __future__ import annotations

import warnings
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from subjects import batches, blobs, healthy_classifier, mlp, run, serious
from torch import nn

from nndoctor.checks.lab import Lab
from nndoctor.engine import Selection, run_checks
from nndoctor.probes.recording import Recording
from nndoctor.probes.training import TrainingProbe
from nndoctor.report.model import Finding

PARAMETERS = (
    "params-not-in-optimizer",
    "params-without-grad",
    "params-not-changing",
    "params-frozen",
    "zero-grad-missing",
    "train-in-eval-mode",
)


def healthy_convnet(seed: int = 0) -> dict[str, Any]:
    """A small conv net with BatchNorm and Dropout on 8x8 images."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 4, (128,), generator=g)
    x = torch.randn(128, 3, 8, 8, generator=g)
    for c in range(3):
        x[y == c + 1, c] += 1.0
    torch.manual_seed(seed)
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
        nn.Conv2d(8, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.1), nn.Linear(16, 4),
    )  # fmt: skip
    return {
        "model": model,
        "data": batches(x, y, 16),
        "loss_fn": nn.CrossEntropyLoss(),
        "optimizer": torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9),
    }


def classifier(model: nn.Module, optimizer: torch.optim.Optimizer, **extra: Any) -> dict[str, Any]:
    x, y = blobs()
    return {
        "model": model,
        "data": batches(x, y),
        "loss_fn": nn.CrossEntropyLoss(),
        "optimizer": optimizer,
        **extra,
    }


class TwoHeads(nn.Module):
    """A trunk and two heads; ``forward`` uses only ``head`` (``aux`` is the bug)."""

    def __init__(self, detach_trunk: bool = False) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.trunk = nn.Sequential(nn.Linear(10, 32), nn.ReLU())
        self.head = nn.Linear(32, 3)
        self.aux = nn.Linear(32, 3)
        self.detach_trunk = detach_trunk

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.trunk(x)
        if self.detach_trunk:
            h = h.detach()  # the bug: the trunk never learns
        return self.head(h)


# -- silent on healthy subjects ----------------------------------------------------------


@pytest.mark.silent("params-not-in-optimizer")
@pytest.mark.silent("params-without-grad")
@pytest.mark.silent("params-not-changing")
@pytest.mark.silent("params-frozen")
@pytest.mark.silent("zero-grad-missing")
@pytest.mark.silent("train-in-eval-mode")
@pytest.mark.parametrize("make", [healthy_classifier, healthy_convnet], ids=["mlp", "convnet-bn"])
def test_healthy_subjects_raise_no_parameter_finding(make) -> None:
    report = run(select=PARAMETERS, **make())
    assert report.findings == []
    for check in PARAMETERS:
        assert report.result(check).status.value == "passed", (check, report.result(check).detail)


# -- not in the optimizer ---------------------------------------------------------------------


@pytest.mark.fires("params-not-in-optimizer")
def test_layer_left_out_of_the_optimizer_is_an_error() -> None:
    model = mlp()
    params = [*model[0].parameters(), *model[2].parameters()]  # the bug: model[4] forgotten
    report = run(
        select=["params-not-in-optimizer"], **classifier(model, torch.optim.Adam(params, lr=1e-3))
    )
    (finding,) = report.by_check("params-not-in-optimizer")
    assert finding.reasons == [23]
    assert finding.severity.value == "error"
    assert finding.where.module == "4"
    assert finding.evidence["parameters"] == ["4.weight", "4.bias"]
    assert finding.evidence["with_gradient"] == 2
    assert "add_param_group" in finding.fix


@pytest.mark.fires("params-not-in-optimizer")
def test_unused_layer_left_out_of_the_optimizer_is_a_warning() -> None:
    model = TwoHeads()
    params = [*model.trunk.parameters(), *model.head.parameters()]
    report = run(
        select=["params-not-in-optimizer"], **classifier(model, torch.optim.SGD(params, lr=0.1))
    )
    (finding,) = report.by_check("params-not-in-optimizer")
    assert finding.severity.value == "warning"
    assert finding.where.module == "aux"
    assert finding.evidence["with_gradient"] == 0


# -- no gradient ----------------------------------------------------------------------------------


@pytest.mark.fires("params-without-grad")
def test_unused_head_never_gets_a_gradient() -> None:
    model = TwoHeads()
    report = run(
        select=["params-without-grad"],
        **classifier(model, torch.optim.Adam(model.parameters(), lr=1e-3)),
    )
    (finding,) = report.by_check("params-without-grad")
    assert finding.reasons == [23]
    assert finding.severity.value == "warning"
    assert finding.where.module == "aux"
    assert finding.evidence["parameters"] == ["aux.weight", "aux.bias"]
    assert finding.evidence["module_ran"] is False
    assert finding.evidence["steps"] == 20


class SwitchedHead(TwoHeads):
    """``aux`` is called in ``forward`` only when asked for (a DANN's domain classifier
    under a reversal coefficient), and this training never asks."""

    def forward(self, x: torch.Tensor, with_aux: bool = False) -> torch.Tensor:
        h = self.trunk(x)
        return self.head(h) + self.aux(h) if with_aux else self.head(h)


class NestedHeads(nn.Module):
    """The two heads one level down, in a ModuleDict the encoder's forward indexes."""

    def __init__(self) -> None:
        super().__init__()
        self.encoder = TwoHeads()
        self.encoder.heads = nn.ModuleDict({"main": self.encoder.head})

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)


def test_a_head_forward_calls_on_a_branch_not_taken_is_a_note() -> None:
    model = SwitchedHead()
    report = run(
        select=["params-without-grad"],
        **classifier(model, torch.optim.Adam(model.parameters(), lr=1e-3)),
    )
    (finding,) = report.by_check("params-without-grad")
    assert finding.severity.value == "info" and finding.where.module == "aux"
    assert finding.evidence["called_in"] == "SwitchedHead.forward calls `aux`"


def test_a_layer_forward_never_names_is_still_a_warning_one_level_down() -> None:
    # TwoHeads.forward names `head`, never `aux`: the encoder's own code decides.
    model = NestedHeads()
    report = run(
        select=["params-without-grad"],
        **classifier(model, torch.optim.Adam(model.parameters(), lr=1e-3)),
    )
    (finding,) = report.by_check("params-without-grad")
    assert finding.severity.value == "warning" and finding.where.module == "encoder.aux"


@pytest.mark.fires("params-without-grad")
def test_detached_trunk_is_an_error() -> None:
    model = TwoHeads(detach_trunk=True)
    model.aux = None  # only the detach bug here
    report = run(
        select=["params-without-grad"],
        **classifier(model, torch.optim.Adam(model.parameters(), lr=1e-3)),
    )
    (finding,) = report.by_check("params-without-grad")
    assert finding.severity.value == "error"
    assert finding.where.module == "trunk.0"
    assert finding.evidence["module_ran"] is True
    assert "detach" in finding.message


@pytest.mark.fires("params-without-grad")
def test_layer_after_a_dead_relu_gets_exactly_zero_gradient() -> None:
    model = mlp()
    nn.init.constant_(model[0].bias, -10.0)  # ReLU 1 dead: layer 2's weight gradient is 0
    report = run(
        select=["params-without-grad"],
        **classifier(model, torch.optim.SGD(model.parameters(), lr=0.1)),
    )
    findings = report.by_check("params-without-grad")
    zero = [f for f in findings if "exactly zero" in f.title]
    assert {f.where.module for f in zero} == {"0", "2"}
    # A gradient that vanishes at every step on a parameter of the graph: 23 and 35.
    assert all(f.reasons == [23, 35] for f in zero)
    assert (
        "2.weight" in zero[-1].evidence["parameters"]
        or "2.weight" in zero[0].evidence["parameters"]
    )


@pytest.mark.silent("params-without-grad")
def test_a_bias_that_cancels_in_a_difference_of_two_passes_is_only_redundant() -> None:
    # A siamese tower: the loss reads tower(a) - tower(b), so the last bias cancels exactly.
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(256, 6, generator=g), torch.randn(256, 6, generator=g)
    same = (a[:, 0] * b[:, 0] > 0).float()
    tower = mlp(features=6)

    def contrastive(model: nn.Module, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        x1, x2, y = batch
        d = (model(x1) - model(x2)).norm(dim=1)
        return (y * d**2 + (1 - y) * torch.clamp(2.0 - d, min=0) ** 2).mean()

    report = run(
        select=["params-without-grad"],
        model=tower,
        data=[(a[i : i + 32], b[i : i + 32], same[i : i + 32]) for i in range(0, 256, 32)],
        loss_fn=contrastive,
        optimizer=torch.optim.Adam(tower.parameters(), lr=1e-3),
    )
    (finding,) = report.by_check("params-without-grad")
    assert finding.severity.value == "info" and "bias of 4" in finding.title
    assert finding.evidence["parameters"] == ["4.bias"]


# -- never changing ----------------------------------------------------------------------------


@pytest.mark.silent("params-not-changing")
def test_a_bias_a_normalisation_cancels_is_left_as_it_was_by_rounding() -> None:
    # A convolution with its default bias, then BatchNorm: the bias's gradient is rounding
    # noise (about 1e-8), and SGD at lr=1e-3 moves it by less than float32 can hold.
    g = torch.Generator().manual_seed(0)
    x = torch.randn(256, 3, 8, 8, generator=g)
    y = torch.randint(0, 4, (256,), generator=g)
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1),
        nn.BatchNorm2d(16),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(16, 4),
    )
    report = run(
        select=["params-not-changing"],
        model=model,
        data=batches(x, y, size=16),
        loss_fn=nn.CrossEntropyLoss(),
        optimizer=torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9),
    )
    assert report.by_check("params-not-changing") == []
    detail = report.result("params-not-changing").detail
    assert "(0.bias) got gradients too small" in detail, detail


@pytest.mark.fires("params-not-changing")
def test_learning_rate_zero_changes_nothing() -> None:
    model = mlp()
    report = run(
        select=["params-not-changing"],
        **classifier(model, torch.optim.SGD(model.parameters(), lr=0.0)),
    )
    findings = report.by_check("params-not-changing")
    assert {f.where.module for f in findings} == {"0", "2", "4"}
    for f in findings:
        assert f.reasons == [23] and f.severity.value == "error"
        assert f.evidence["lr"] == [0.0]
        assert "0" in f.message and "learning rate" in f.fix


@pytest.mark.fires("params-not-changing")
def test_one_param_group_with_lr_zero() -> None:
    model = mlp()
    optimizer = torch.optim.Adam(
        [
            {"params": model[0].parameters(), "lr": 0.0},
            {"params": [*model[2].parameters(), *model[4].parameters()]},
        ],
        lr=1e-3,
    )
    report = run(select=["params-not-changing"], **classifier(model, optimizer))
    (finding,) = report.by_check("params-not-changing")
    assert finding.where.module == "0"
    assert finding.evidence["lr"] == [0.0]


# -- frozen ---------------------------------------------------------------------------------------


@pytest.mark.fires("params-frozen")
def test_frozen_weight_in_the_optimizer_while_its_bias_trains() -> None:
    model = mlp()
    model[2].weight.requires_grad_(False)  # the bug: a leftover freeze
    report = run(
        select=["params-frozen"], **classifier(model, torch.optim.Adam(model.parameters(), lr=1e-3))
    )
    (finding,) = report.by_check("params-frozen")
    assert finding.reasons == [23]
    assert finding.severity.value == "warning"
    assert finding.where.module == "2"
    assert finding.evidence["frozen"] == ["2.weight"]
    assert finding.evidence["frozen_in_optimizer"] == ["2.weight"]
    assert finding.evidence["trainable"] == ["2.bias"]


@pytest.mark.fires("params-frozen")
def test_a_frozen_bias_before_a_relu_is_a_leftover() -> None:
    model = mlp()
    model[2].bias.requires_grad_(False)  # the bug: the layer's bias is fixed at its draw
    report = run(
        select=["params-frozen"], **classifier(model, torch.optim.Adam(model.parameters(), lr=1e-3))
    )
    (finding,) = serious(report, "params-frozen")
    assert finding.evidence["frozen"] == ["2.bias"] and finding.where.module == "2"


@pytest.mark.silent("params-frozen")
def test_a_frozen_bias_before_batchnorm_does_nothing() -> None:
    # SimSiam's projector: the bias before the last BatchNorm is frozen on purpose, since
    # the norm subtracts any per-channel constant (in the reference code, as a "hack").
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Linear(10, 32), nn.BatchNorm1d(32), nn.ReLU(),
        nn.Linear(32, 16), nn.BatchNorm1d(16, affine=False), nn.Linear(16, 3),
    )  # fmt: skip
    model[3].bias.requires_grad_(False)
    report = run(
        select=["params-frozen"], **classifier(model, torch.optim.Adam(model.parameters(), lr=1e-3))
    )
    assert not serious(report)
    (result,) = [r for r in report.checks if r.check == "params-frozen"]
    assert "3.bias" in result.detail and "no effect" in result.detail


@pytest.mark.fires("params-frozen")
def test_frozen_head_in_the_optimizer_is_a_warning() -> None:
    model = mlp()
    model[4].requires_grad_(False)  # the last layer frozen while the trunk trains
    report = run(
        select=["params-frozen"], **classifier(model, torch.optim.Adam(model.parameters(), lr=1e-3))
    )
    (finding,) = report.by_check("params-frozen")
    assert finding.severity.value == "warning" and finding.where.module == "4"


def _pretrained_mlp() -> nn.Module:
    """An MLP whose layers were trained (as a loaded checkpoint's are)."""
    model = mlp()
    x, y = blobs(seed=1)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(100):
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
    return model


@pytest.mark.fires("params-frozen")
def test_a_randomly_initialised_backbone_frozen_is_a_warning() -> None:
    model = mlp()
    model[0].requires_grad_(False)  # the bug: frozen as in a fine-tuning recipe, never loaded
    model[2].requires_grad_(False)
    trainable = [p for p in model.parameters() if p.requires_grad]
    report = run(
        select=["params-frozen"], **classifier(model, torch.optim.Adam(trainable, lr=1e-3))
    )
    (finding,) = report.by_check("params-frozen")
    assert finding.severity.value == "warning" and finding.reasons == [23]
    assert "random initialisation" in finding.title
    assert finding.evidence["count"] == 4


@pytest.mark.fires("params-frozen")
def test_a_whole_layer_frozen_before_batchnorm_is_frozen_not_partly_frozen() -> None:
    # Its bias feeds a BatchNorm (which cancels it), and its weight is frozen too: the
    # layer is frozen whole, at its random draw, not half frozen.
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Linear(10, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Linear(32, 3),
    )  # fmt: skip
    model[0].requires_grad_(False)
    report = run(
        select=["params-frozen"], **classifier(model, torch.optim.Adam(model.parameters(), lr=1e-3))
    )
    titles = [f.title for f in serious(report, "params-frozen")]
    assert titles and not any("partly frozen" in t for t in titles), titles


def test_the_default_init_test_keeps_its_stated_error_rate_and_sees_training() -> None:
    from nndoctor.checks.training.default_init import at_default_init

    torch.manual_seed(0)
    layers = [nn.Linear(32, 16) for _ in range(300)] + [nn.Conv2d(3, 8, 3) for _ in range(300)]
    called_trained = sum(at_default_init(m, 1e-3) is False for m in layers)
    assert called_trained <= 4  # 1e-3 of 600, with room for chance (P(X > 4) < 1e-3)
    trained = _pretrained_mlp()
    assert at_default_init(trained[0], 1e-3) is False and at_default_init(trained[2], 1e-3) is False
    assert at_default_init(nn.BatchNorm1d(8), 1e-3) is None


@pytest.mark.silent("params-frozen")
def test_frozen_backbone_for_fine_tuning_is_only_a_note() -> None:
    model = _pretrained_mlp()
    model[0].requires_grad_(False)
    model[2].requires_grad_(False)
    trainable = [p for p in model.parameters() if p.requires_grad]
    report = run(
        select=["params-frozen"], **classifier(model, torch.optim.Adam(trainable, lr=1e-3))
    )
    assert serious(report) == []
    (finding,) = report.by_check("params-frozen")
    assert finding.severity.value == "info"
    assert finding.evidence["count"] == 4 and finding.evidence["in_optimizer"] == 0


@pytest.mark.silent("params-frozen")
def test_frozen_backbone_passed_with_all_parameters_is_still_only_a_note() -> None:
    model = _pretrained_mlp()
    model[0].requires_grad_(False)  # freeze, then optimizer(model.parameters()): common and fine
    report = run(
        select=["params-frozen"], **classifier(model, torch.optim.SGD(model.parameters(), lr=0.1))
    )
    assert serious(report) == []
    (finding,) = report.by_check("params-frozen")
    assert finding.evidence["in_optimizer"] == 2


# -- zero_grad ---------------------------------------------------------------------------------


def hand_loop(zero_grad: str | None, steps: int = 8) -> Recording:
    """A training loop written by hand, under the training probe.

    ``zero_grad``: None (the bug: never called), "before" the forward, or "after"
    ``optimizer.step()``.
    """
    x, y = blobs()
    data = batches(x, y)
    model = mlp()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    recording = Recording()
    with TrainingProbe(recording) as probe:
        probe.attach_model(model)
        probe.attach_optimizer(optimizer)
        for i in range(steps):
            xb, yb = data[i % len(data)]
            if zero_grad == "before":
                optimizer.zero_grad()
            F.cross_entropy(model(xb), yb).backward()
            optimizer.step()
            if zero_grad == "after":
                model.zero_grad()
    return recording


def checks_on(recording: Recording, check: str) -> list[Finding]:
    results, findings = run_checks(None, recording, Lab(None), selection=Selection(select=(check,)))
    (result,) = [r for r in results if r.check == check]
    assert result.status.value in ("passed", "failed"), result.detail
    return findings


@pytest.mark.fires("zero-grad-missing")
def test_loop_without_zero_grad_accumulates_gradients() -> None:
    (finding,) = checks_on(hand_loop(zero_grad=None), "zero-grad-missing")
    assert finding.reasons == [26, 36]
    assert finding.severity.value == "error"
    assert finding.where.step == 1
    assert finding.evidence["steps_missing"] == 7 and finding.evidence["later_steps"] == 7
    assert finding.evidence["grad_norm_growth"] > 2  # the applied gradient is a running sum
    assert "zero_grad()" in finding.fix


@pytest.mark.silent("zero-grad-missing")
@pytest.mark.parametrize("where", ["before", "after"])
def test_zero_grad_before_forward_or_after_step_is_fine(where: str) -> None:
    assert checks_on(hand_loop(zero_grad=where), "zero-grad-missing") == []


# -- train / eval mode ------------------------------------------------------------------------


@pytest.mark.fires("train-in-eval-mode")
def test_training_in_eval_mode_with_batchnorm_and_dropout() -> None:
    kwargs = healthy_convnet()
    criterion = kwargs.pop("loss_fn")

    def loss_fn(model: nn.Module, batch: Any) -> torch.Tensor:
        model.eval()  # the bug: left in eval mode after a validation pass
        x, y = batch
        return criterion(model(x), y)

    report = run(select=["train-in-eval-mode"], loss_fn=loss_fn, **kwargs)
    (finding,) = report.by_check("train-in-eval-mode")
    assert finding.reasons == [32]
    assert finding.severity.value == "warning"
    assert finding.where.step == 0
    assert finding.evidence["eval_steps"] == finding.evidence["steps"] == 20
    assert finding.evidence["mode_dependent_modules"] == 3  # two BatchNorm2d, one Dropout
    assert "model.train()" in finding.fix


@pytest.mark.fires("train-in-eval-mode")
def test_eval_mode_without_mode_dependent_modules_is_a_note() -> None:
    model = mlp()

    def loss_fn(m: nn.Module, batch: Any) -> torch.Tensor:
        m.eval()
        return F.cross_entropy(m(batch[0]), batch[1])

    report = run(
        select=["train-in-eval-mode"],
        **classifier(model, torch.optim.SGD(model.parameters(), lr=0.1), loss_fn=loss_fn),
    )
    assert serious(report) == []
    (finding,) = report.by_check("train-in-eval-mode")
    assert finding.severity.value == "info" and "no effect yet" in finding.message


def eval_mode_probe(frozen: slice) -> dict[str, Any]:
    """The convnet trained in eval() mode throughout, with the layers in ``frozen`` frozen
    and left out of the optimizer."""
    kwargs = healthy_convnet()
    model, criterion = kwargs["model"], kwargs.pop("loss_fn")
    for layer in model[frozen]:
        layer.requires_grad_(False)
    kwargs["optimizer"] = torch.optim.SGD(
        [p for p in model.parameters() if p.requires_grad], lr=0.05, momentum=0.9
    )

    def loss_fn(net: nn.Module, batch: Any) -> torch.Tensor:
        net.eval()
        x, y = batch
        return criterion(net(x), y)

    return {**kwargs, "loss_fn": loss_fn}


@pytest.mark.silent("train-in-eval-mode")
def test_a_linear_probe_on_a_frozen_backbone_in_eval_mode_is_the_protocol() -> None:
    # The convolutions and their BatchNorms frozen, only the head trains: eval() keeps the
    # backbone's statistics fixed, as the linear-probe protocol asks.
    report = run(select=["train-in-eval-mode"], **eval_mode_probe(slice(0, 6)))
    assert serious(report) == []


@pytest.mark.fires("train-in-eval-mode")
def test_eval_mode_with_a_batchnorm_after_the_first_trained_layer_is_a_warning() -> None:
    # Only the first convolution frozen: the BatchNorms and the Dropout shape what trains.
    report = run(select=["train-in-eval-mode"], **eval_mode_probe(slice(0, 1)))
    (finding,) = serious(report, "train-in-eval-mode")
    assert finding.evidence["mode_dependent_modules"] == 3


@pytest.mark.silent("train-in-eval-mode")
def test_frozen_batchnorm_while_fine_tuning_is_a_note() -> None:
    kwargs = healthy_convnet()
    criterion = kwargs.pop("loss_fn")

    def loss_fn(model: nn.Module, batch: Any) -> torch.Tensor:
        model.train()
        model[1].eval()  # frozen BatchNorm statistics, on purpose
        x, y = batch
        return criterion(model(x), y)

    report = run(select=["train-in-eval-mode"], loss_fn=loss_fn, **kwargs)
    assert serious(report) == []
    (finding,) = report.by_check("train-in-eval-mode")
    assert finding.severity.value == "info"
    assert finding.evidence["modules"] == ["1"]


class DoublyResidual(nn.Module):
    """N-BEATS-like blocks: each emits a backcast, subtracted from its input, and a
    forecast, summed; ``returns_backcast`` also returns the final residual (a second output
    that the loss does not read)."""

    def __init__(self, returns_backcast: bool = False) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.hidden = nn.ModuleList(nn.Linear(10, 32) for _ in range(2))
        self.backcast = nn.ModuleList(nn.Linear(32, 10) for _ in range(2))
        self.forecast = nn.ModuleList(nn.Linear(32, 3) for _ in range(2))
        self.returns_backcast = returns_backcast

    def forward(self, x: torch.Tensor) -> Any:
        out = 0
        for hidden, backcast, forecast in zip(
            self.hidden, self.backcast, self.forecast, strict=True
        ):
            h = torch.relu(hidden(x))
            x = x - backcast(h)
            out = out + forecast(h)
        return (out, x) if self.returns_backcast else out


def _doubly_residual(returns_backcast: bool, backcast_term: bool = False) -> Any:
    """``backcast_term``: the loss also reads the returned residual, through a
    ``.detach()`` (its value counts, its gradient is cut)."""
    model = DoublyResidual(returns_backcast)
    x, y = blobs()

    def first_output(net: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        inputs, targets = batch
        out = net(inputs)
        loss = F.cross_entropy(out[0] if isinstance(out, tuple) else out, targets)
        return loss + 0.1 * out[1].detach().pow(2).mean() if backcast_term else loss

    return run(
        select=["params-without-grad"],
        model=model,
        data=batches(x, y),
        loss_fn=first_output if returns_backcast else nn.CrossEntropyLoss(),
        optimizer=torch.optim.Adam(model.parameters(), lr=1e-3),
    )


@pytest.mark.silent("params-without-grad")
def test_a_last_backcast_computed_and_discarded_is_unused_not_cut_off() -> None:
    report = _doubly_residual(returns_backcast=False)
    assert report.result("params-without-grad").status.value == "passed"
    assert not serious(report, "params-without-grad")
    (note,) = report.by_check("params-without-grad")
    assert note.severity.value == "info" and note.where.module == "backcast.1"
    assert note.title == "The output of backcast.1 is computed and discarded"
    assert note.evidence["output_read"] is False


@pytest.mark.silent("params-without-grad")
def test_an_output_the_model_returns_and_the_loss_never_reads_is_a_note() -> None:
    # N-BEATS as published returns the final backcast beside the forecast it trains on.
    report = _doubly_residual(returns_backcast=True)
    assert not serious(report, "params-without-grad")
    (note,) = report.by_check("params-without-grad")
    assert note.severity.value == "info" and note.where.module == "backcast.1"
    assert note.evidence["output_read"] is True
    assert note.evidence["loss_reads_output"] is False


@pytest.mark.fires("params-without-grad")
def test_an_output_the_loss_reads_through_a_detach_is_an_error() -> None:
    report = _doubly_residual(returns_backcast=True, backcast_term=True)
    (finding,) = report.by_check("params-without-grad")
    assert finding.severity.value == "error" and finding.where.module == "backcast.1"


class TokensWithTable(nn.Module):
    """A ViT-style front: a trainable class token and a positional table held by the module
    itself, frozen; ``table`` "sincos" fills it with sines and cosines of the positions (as
    MAE does), "random" leaves it a random draw (a stray freeze)."""

    def __init__(self, table: str) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, 8))
        self.pos_embed = nn.Parameter(torch.randn(1, 6, 8) * 0.02, requires_grad=False)
        if table == "sincos":
            position = torch.arange(6.0)[:, None]
            rate = 1.0 / 100 ** (torch.arange(4.0) / 4)
            sincos = torch.cat([torch.sin(position * rate), torch.cos(position * rate)], dim=1)
            self.pos_embed.data.copy_(sincos[None])
        self.embed = nn.Linear(2, 8)
        self.head = nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.embed(x.reshape(len(x), 5, 2))  # 10 features as 5 tokens of 2
        tokens = torch.cat([self.cls_token.expand(len(x), -1, -1), tokens], dim=1)
        return self.head((tokens + self.pos_embed).mean(dim=1))


def _tokens_with_table(table: str) -> Any:
    model = TokensWithTable(table)
    return run(
        select=["params-frozen"],
        **classifier(model, torch.optim.AdamW(model.parameters(), lr=1e-3)),
    )


@pytest.mark.silent("params-frozen")
def test_a_frozen_sincos_table_of_a_custom_module_is_fixed_on_purpose() -> None:
    report = _tokens_with_table("sincos")
    assert report.by_check("params-frozen") == []
    result = report.result("params-frozen")
    assert result.status.value == "passed" and "pos_embed" in result.detail


@pytest.mark.fires("params-frozen")
def test_a_frozen_random_parameter_of_a_custom_module_is_still_a_leftover() -> None:
    (finding,) = serious(_tokens_with_table("random"), "params-frozen")
    assert finding.evidence["frozen"] == ["pos_embed"]


class SpectralMix(nn.Module):
    """A layer with its own weight tensor, held as ``holder`` says: "parameter" (healthy),
    "plain" (``self.w = torch.rand(...)``, the bug), or "table" (a plain attribute holding a
    fixed cosine table, which is no weight)."""

    def __init__(self, holder: str) -> None:
        super().__init__()
        torch.manual_seed(0)
        drawn = torch.rand(10, 10) / 10
        if holder == "parameter":
            self.w = nn.Parameter(drawn)
        elif holder == "plain":
            self.w = drawn
        else:
            self.w = torch.cos(torch.outer(torch.arange(10.0), torch.arange(10.0)) / 10) / 10
        self.head = nn.Linear(10, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(x @ self.w))


def _spectral_mix(holder: str) -> Any:
    model = SpectralMix(holder)
    return run(
        select=["weights-not-registered"],
        **classifier(model, torch.optim.Adam(model.parameters(), lr=1e-3)),
    )


@pytest.mark.fires("weights-not-registered")
def test_a_random_weight_tensor_held_as_a_plain_attribute_never_trains() -> None:
    (finding,) = _spectral_mix("plain").by_check("weights-not-registered")
    assert finding.reasons == [23] and finding.severity.value == "warning"
    assert finding.evidence["attributes"] == ["w"] and finding.evidence["shapes"] == [[10, 10]]
    assert "nn.Parameter" in finding.fix


@pytest.mark.silent("weights-not-registered")
@pytest.mark.parametrize("holder", ["parameter", "table"])
def test_a_registered_weight_or_a_fixed_table_is_silent(holder: str) -> None:
    report = _spectral_mix(holder)
    assert report.by_check("weights-not-registered") == []
    assert report.result("weights-not-registered").status.value == "passed"


class TwoAttentionBlocks(nn.Module):
    """Two blocks of single-head attention; ``keys_from_queries`` is the copy-paste slip
    ``k = self.q(x)`` after ``k = self.k(x)``: every block's key projection is computed and
    never read."""

    def __init__(self, keys_from_queries: bool) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.embed = nn.Linear(4, 8)
        self.q = nn.ModuleList(nn.Linear(8, 8) for _ in range(2))
        self.k = nn.ModuleList(nn.Linear(8, 8) for _ in range(2))
        self.head = nn.Linear(8, 3)
        self.keys_from_queries = keys_from_queries

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.embed(x.view(x.shape[0], -1, 4))  # (batch, tokens, 8)
        for q, k in zip(self.q, self.k, strict=True):
            query, key = q(h), k(h)
            if self.keys_from_queries:
                key = q(h)
            h = h + (query @ key.transpose(1, 2)).softmax(-1) @ h
        return self.head(h.mean(1))


def _attention_blocks(keys_from_queries: bool) -> Any:
    model = TwoAttentionBlocks(keys_from_queries)
    x, y = blobs()
    return run(
        select=["params-without-grad"],
        model=model,
        data=batches(x[:, :8], y),
        loss_fn=nn.CrossEntropyLoss(),
        optimizer=torch.optim.Adam(model.parameters(), lr=1e-3),
    )


@pytest.mark.fires("params-without-grad")
def test_a_projection_computed_and_dropped_in_every_block_is_a_slip() -> None:
    (finding,) = _attention_blocks(keys_from_queries=True).by_check("params-without-grad")
    assert finding.severity.value == "warning"
    assert finding.title == "The output of k.* is computed and discarded in every block"
    assert finding.evidence["blocks"] == ["k.0", "k.1"] and finding.evidence["count"] == 4


@pytest.mark.silent("params-without-grad")
def test_attention_blocks_reading_their_keys_pass() -> None:
    report = _attention_blocks(keys_from_queries=False)
    assert report.by_check("params-without-grad") == []


HELD_LAST_LAYER = """
import torch
from torch import nn
torch.manual_seed(0)
x, y = torch.randn(256, 10), torch.randint(0, 3, (256,))
model = nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Linear(32, 3))
opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
for epoch in range(3):
    for i in range(0, 256, 32):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x[i : i + 32]), y[i : i + 32]).backward()
        if epoch < 1:  # DINO's freeze_last_layer: the last layer waits for the first epoch
            for p in {held}:
                p.grad = None
        opt.step()
"""


def _held(tmp_path: Any, held: str) -> Any:
    from nndoctor.engine import check_script

    path = tmp_path / "held.py"
    path.write_text(HELD_LAST_LAYER.format(held=held))
    checks = ("params-without-grad", "params-not-changing")
    return check_script(str(path), steps=6, selection=Selection(select=checks))


@pytest.mark.silent("params-without-grad")
@pytest.mark.silent("params-not-changing")
def test_a_layer_whose_gradient_the_script_removes_before_the_step_is_held(tmp_path: Any) -> None:
    # Its gradient, read after the backward pass while the optimizer was not known yet,
    # never reached the optimizer: no learning rate of zero holds it.
    report = _held(tmp_path, "model[2].parameters()")
    assert report.findings == []
    assert "removed before the step" in report.result("params-without-grad").detail


@pytest.mark.fires("params-without-grad")
def test_every_gradient_removed_before_the_step_is_no_held_layer(tmp_path: Any) -> None:
    # A zero_grad between backward and step: nothing reaches the optimizer.
    (finding, *_) = _held(tmp_path, "model.parameters()").by_check("params-without-grad")
    assert finding.reasons == [23]


EMA_TEACHER = """
import copy
import torch
from torch import nn
torch.manual_seed(0)
x = torch.randn(512, 10)


class Distilled(nn.Module):
    def __init__(self):
        super().__init__()
        self.student = nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Linear(32, 8))
        self.teacher = copy.deepcopy(self.student)
        self.teacher.requires_grad_({grad})

    def forward(self, a, b):
        with torch.no_grad():
            target = nn.functional.normalize(self.teacher(b), dim=1)
        return (nn.functional.normalize(self.student(a), dim=1) - target).pow(2).sum(1).mean()


model = Distilled()
opt = torch.optim.Adam({optimised}.parameters(), lr=1e-3)
for step in range(60):
    xb = x[torch.randint(0, 512, (64,))]
    loss = model(xb + 0.1 * torch.randn_like(xb), xb + 0.1 * torch.randn_like(xb))
    opt.zero_grad()
    loss.backward()
    opt.step()
    with torch.no_grad():
        for s, t in zip(model.student.parameters(), model.teacher.parameters()):
            t.mul_({tau}).add_(s, alpha=1 - {tau})
"""


def _ema_teacher(
    tmp_path: Any, tau: float, grad: bool = False, optimised: str = "model.student"
) -> Any:
    from nndoctor.engine import check_script

    path = tmp_path / "ema.py"
    path.write_text(EMA_TEACHER.format(tau=tau, grad=grad, optimised=optimised))
    checks = ("params-frozen", "params-not-in-optimizer", "params-without-grad")
    return check_script(str(path), steps=6, selection=Selection(select=checks))


@pytest.mark.silent("params-frozen")
def test_an_ema_teacher_outside_the_optimizer_is_maintained_not_frozen(tmp_path: Any) -> None:
    # BYOL's and the mean teacher's target network: no gradient, no optimizer, moved by the
    # script after every step. Its values still pass for the constructor's draw.
    report = _ema_teacher(tmp_path, tau=0.99)
    assert report.by_check("params-frozen") == []
    assert "change between steps without a gradient" in report.result("params-frozen").detail


@pytest.mark.fires("params-frozen")
def test_a_teacher_the_script_never_moves_is_frozen_at_its_random_initialisation(
    tmp_path: Any,
) -> None:
    (finding,) = _ema_teacher(tmp_path, tau=1.0).by_check("params-frozen")
    assert "random initialisation" in finding.title and finding.reasons == [23]


@pytest.mark.silent("params-not-in-optimizer")
def test_an_ema_teacher_left_requiring_grad_is_maintained_not_forgotten(tmp_path: Any) -> None:
    # requires_grad left on and run under no_grad: outside the optimizer, moved by the script.
    report = _ema_teacher(tmp_path, tau=0.99, grad=True)
    assert report.findings == []
    assert "the script updates them itself" in report.result("params-not-in-optimizer").detail


@pytest.mark.silent("params-without-grad")
def test_an_ema_teacher_left_in_the_optimizer_is_maintained_not_unused(tmp_path: Any) -> None:
    # Adam holds the teacher too and skips it (no gradient): the script moves it.
    report = _ema_teacher(tmp_path, tau=0.99, grad=True, optimised="model")
    assert report.findings == []
    assert "the script updates them itself" in report.result("params-without-grad").detail


@pytest.mark.fires("params-not-in-optimizer")
def test_a_teacher_left_requiring_grad_and_never_moved_is_not_in_the_optimizer(
    tmp_path: Any,
) -> None:
    findings = _ema_teacher(tmp_path, tau=1.0, grad=True).by_check("params-not-in-optimizer")
    assert [f.where.module for f in findings] == ["teacher.0", "teacher.2"]
    assert all(f.reasons == [23] for f in findings)


class NormalisedHead(nn.Module):
    """DINO's last layer: weight-normalised, its magnitude g filled with 1 and frozen, so
    that only the direction learns."""

    def __init__(self) -> None:
        super().__init__()
        self.trunk = nn.Sequential(nn.Linear(10, 16), nn.ReLU())
        with warnings.catch_warnings():  # DINO's own, deprecated form: g on the Linear
            warnings.simplefilter("ignore", FutureWarning)
            self.last_layer = nn.utils.weight_norm(nn.Linear(16, 3, bias=False))
        self.last_layer.weight_g.data.fill_(1)
        self.last_layer.weight_g.requires_grad = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.last_layer(nn.functional.normalize(self.trunk(x), dim=-1))


@pytest.mark.silent("params-frozen")
def test_a_frozen_magnitude_held_at_one_is_a_constant_fixed_on_purpose() -> None:
    torch.manual_seed(0)
    model = NormalisedHead()
    report = run(
        select=["params-frozen"],
        **classifier(model, torch.optim.AdamW(model.parameters(), lr=1e-3)),
    )
    assert report.by_check("params-frozen") == []
    assert "a constant the script fixed" in report.result("params-frozen").detail


NORMALISED_HEAD_SCRIPT = """
import warnings
import torch
from torch import nn

torch.manual_seed(0)
x, y = torch.randn(256, 10), torch.randint(0, 3, (256,))
trunk = nn.Sequential(nn.Linear(10, 16), nn.ReLU())
with warnings.catch_warnings():
    warnings.simplefilter("ignore", FutureWarning)
    last_layer = nn.utils.weight_norm(nn.Linear(16, 3, bias=False))
last_layer.weight_g.data.fill_(1)
last_layer.weight_g.requires_grad = False
model = nn.Sequential(trunk, last_layer)
opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
for i in range(0, 256, 32):
    log_p = torch.log_softmax(model(x[i : i + 32]), dim=-1)
    loss = -log_p[torch.arange(32), y[i : i + 32]].mean()  # a loss in plain torch: no Subject
    opt.zero_grad()
    loss.backward()
    opt.step()
"""


@pytest.mark.silent("params-frozen")
def test_a_scripts_frozen_magnitude_held_at_one_is_read_from_the_model_as_it_stands(
    tmp_path: Any,
) -> None:
    # A script keeps no initial state: the values are read from the model's tensors as
    # they stand, which a frozen parameter has not moved from.
    from nndoctor.engine import check_script

    path = tmp_path / "head.py"
    path.write_text(NORMALISED_HEAD_SCRIPT)
    report = check_script(str(path), steps=6, selection=Selection(select=("params-frozen",)))
    assert report.run.error is None, report.run.traceback
    assert report.by_check("params-frozen") == []
    assert "a constant the script fixed" in report.result("params-frozen").detail


AUX_EVERY_FIFTY = """
import torch
from torch import nn
torch.manual_seed(0)
x, y = torch.randn(256, 10), torch.randint(0, 3, (256,))
class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.trunk = nn.Sequential(nn.Linear(10, 32), nn.ReLU())
        self.head = nn.Linear(32, 3)
        self.recon_head = nn.Linear(32, 10)
    def forward(self, x):
        h = self.trunk(x)
        return self.head(h), h
model = Net()
opt = torch.optim.Adam(model.parameters(), lr=1e-3)
for step in range(60):
    i = step % 8 * 32
    logits, h = model(x[i : i + 32])
    loss = nn.functional.cross_entropy(logits, y[i : i + 32])
    {aux}
    opt.zero_grad()
    loss.backward()
    opt.step()
"""


def _aux_head_script(tmp_path: Any, aux: str) -> Any:
    from nndoctor.engine import check_script

    path = tmp_path / "aux.py"
    path.write_text(AUX_EVERY_FIFTY.format(aux=aux))
    return check_script(str(path), steps=6, selection=Selection(select=("params-without-grad",)))


@pytest.mark.silent("params-without-grad")
def test_a_head_the_training_loop_calls_on_a_branch_not_taken_is_a_note(tmp_path: Any) -> None:
    # An auxiliary reconstruction term added every fiftieth step: none of the observed steps.
    report = _aux_head_script(
        tmp_path,
        "if step % 50 == 49:\n"
        "        loss = loss + 0.1 * nn.functional.mse_loss(model.recon_head(h), x[i : i + 32])",
    )
    (finding,) = report.by_check("params-without-grad")
    assert finding.severity.value == "info" and finding.where.module == "recon_head"
    assert finding.evidence["called_in"] == "line 22 of aux.py calls `model.recon_head`"


@pytest.mark.fires("params-without-grad")
def test_a_head_the_script_only_evaluates_is_never_trained(tmp_path: Any) -> None:
    # Called with gradients off only: its predictions come from its initial weights.
    report = _aux_head_script(
        tmp_path,
        "with torch.no_grad():\n        recon = model.recon_head(h)",
    )
    (finding,) = report.by_check("params-without-grad")
    assert finding.severity.value == "warning" and finding.where.module == "recon_head"
    assert finding.reasons == [23]
