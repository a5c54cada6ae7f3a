"""Activation, weight, gradient and loss statistics (reasons 28, 33, 35, 36)."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from subjects import batches, blobs, healthy_classifier, mlp, reasons_of, run, serious
from torch import nn

from nndoctor.checks.lab import Lab
from nndoctor.checks.thresholds import DEFAULT_THRESHOLDS
from nndoctor.engine import Selection, run_checks
from nndoctor.probes.recording import Recording, StepRecord
from nndoctor.probes.training import TrainingProbe
from nndoctor.report.model import Finding

STATISTICS = (
    "dead-relus",
    "saturated-activations",
    "activation-scale-drift",
    "weights-constant-init",
    "gradient-norm-spread",
    "update-ratio",
    "loss-diverging",
)


def healthy_convnet(seed: int = 0) -> dict[str, Any]:
    """A small conv net with BatchNorm on 8x8 images whose class shifts one channel."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 4, (128,), generator=g)
    x = torch.randn(128, 3, 8, 8, generator=g)
    for c in range(3):
        x[y == c + 1, c] += 1.0
    torch.manual_seed(seed)
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
        nn.Conv2d(8, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 4),
    )  # fmt: skip
    return {
        "model": model,
        "data": batches(x, y, 16),
        "loss_fn": nn.CrossEntropyLoss(),
        "optimizer": torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9),
    }


def deep_mlp(
    depth: int, act: type[nn.Module] = nn.ReLU, width: int = 32, seed: int = 0
) -> nn.Sequential:
    """``depth`` Linear layers with ``act`` between them, PyTorch default init."""
    torch.manual_seed(seed)
    layers: list[nn.Module] = [nn.Linear(10, width), act()]
    for _ in range(depth - 2):
        layers += [nn.Linear(width, width), act()]
    layers.append(nn.Linear(width, 3))
    return nn.Sequential(*layers)


def observe(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    data: list[tuple[torch.Tensor, torch.Tensor]],
    steps: int,
    scheduler: Any = None,
) -> Recording:
    """A hand-written training loop under the training probe (what a script would do)."""
    recording = Recording()
    with TrainingProbe(recording) as probe:
        probe.attach_model(model)
        probe.attach_optimizer(optimizer)
        for i in range(steps):
            x, y = data[i % len(data)]
            optimizer.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
    return recording


def checks_on(recording: Recording, check: str) -> list[Finding]:
    """Run one check on a recording made by hand; its findings."""
    results, findings = run_checks(None, recording, Lab(None), selection=Selection(select=(check,)))
    (result,) = [r for r in results if r.check == check]
    assert result.status.value in ("passed", "failed"), result.detail
    return findings


def classifier(model: nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    x, y = blobs()
    return {
        "model": model,
        "data": batches(x, y),
        "loss_fn": nn.CrossEntropyLoss(),
        "optimizer": optimizer,
    }


# -- silent on healthy subjects ----------------------------------------------------------


@pytest.mark.silent("dead-relus")
@pytest.mark.silent("activation-scale-drift")
@pytest.mark.silent("weights-constant-init")
@pytest.mark.silent("gradient-norm-spread")
@pytest.mark.silent("update-ratio")
@pytest.mark.silent("loss-diverging")
@pytest.mark.parametrize("make", [healthy_classifier, healthy_convnet], ids=["mlp", "convnet-bn"])
def test_healthy_subjects_raise_no_statistics_finding(make) -> None:
    report = run(select=STATISTICS, **make())
    assert report.findings == []
    for check in STATISTICS:
        assert report.result(check).status.value in ("passed", "skipped"), check
    assert report.result("activation-scale-drift").status.value == "passed"
    assert report.result("update-ratio").status.value == "passed"


@pytest.mark.silent("activation-scale-drift")
@pytest.mark.parametrize("depth", [3, 6])
@pytest.mark.parametrize("bias", [True, False])
def test_default_init_mlps_up_to_six_layers_do_not_drift(depth: int, bias: bool) -> None:
    torch.manual_seed(0)
    model = deep_mlp(depth)
    if not bias:
        for m in model.modules():
            if isinstance(m, nn.Linear):
                m.bias = None
    report = run(
        select=["activation-scale-drift"],
        **classifier(model, torch.optim.SGD(model.parameters(), lr=0.1)),
    )
    assert report.result("activation-scale-drift").status.value == "passed"
    assert report.findings == []


# -- dead ReLUs ------------------------------------------------------------------------------


@pytest.mark.fires("dead-relus")
def test_large_negative_bias_kills_the_relu() -> None:
    model = mlp()
    nn.init.constant_(model[0].bias, -10.0)  # every pre-activation of layer 0 is negative
    report = run(
        select=["dead-relus"], **classifier(model, torch.optim.Adam(model.parameters(), lr=1e-3))
    )
    (finding,) = report.by_check("dead-relus")
    assert finding.reasons == [28, 35]
    assert finding.severity.value == "error"  # zero everywhere, at every step
    assert finding.where.module == "1" and finding.where.step == 0
    assert finding.evidence["zero_fraction_mean"] == 1.0
    assert finding.evidence["input_module"] == "0"
    assert finding.evidence["input_mean"] < -5
    assert "kaiming" in finding.fix


@pytest.mark.fires("dead-relus")
def test_mostly_dead_relu_is_a_warning() -> None:
    model = mlp()
    with torch.no_grad():
        model[0].bias.fill_(-1.5)  # ~93% of pre-activations negative, not all
    report = run(
        select=["dead-relus"], **classifier(model, torch.optim.SGD(model.parameters(), lr=1e-3))
    )
    (finding,) = report.by_check("dead-relus")
    assert finding.severity.value == "warning"
    assert DEFAULT_THRESHOLDS.dead_relu_fraction <= finding.evidence["zero_fraction_mean"] < 1.0


class LeakyFreeReLU(nn.ReLU):
    """A user's own ReLU subclass: still a ReLU to the checks."""


@pytest.mark.fires("dead-relus")
def test_a_subclass_of_relu_is_a_relu() -> None:
    model = mlp()
    model[1] = LeakyFreeReLU()
    nn.init.constant_(model[0].bias, -10.0)
    report = run(
        select=["dead-relus"], **classifier(model, torch.optim.Adam(model.parameters(), lr=1e-3))
    )
    (finding,) = report.by_check("dead-relus")
    assert finding.where.module == "1"
    assert finding.evidence["zero_fraction_mean"] == 1.0


# -- saturated sigmoid / tanh ---------------------------------------------------------------


@pytest.mark.fires("saturated-activations")
def test_huge_weights_saturate_the_sigmoid() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(10, 32), nn.Sigmoid(), nn.Linear(32, 3))
    nn.init.normal_(model[0].weight, std=30.0)
    report = run(
        select=["saturated-activations"],
        **classifier(model, torch.optim.SGD(model.parameters(), lr=0.1)),
    )
    (finding,) = report.by_check("saturated-activations")
    assert finding.reasons == [28, 35]
    assert finding.severity.value == "warning"
    assert finding.where.module == "1"
    assert finding.evidence["saturated_fraction_mean"] >= 0.9
    assert finding.evidence["input_std"] > 50


@pytest.mark.silent("saturated-activations")
def test_tanh_with_xavier_init_is_not_saturated() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Linear(10, 32), nn.Tanh(), nn.Linear(32, 32), nn.Tanh(), nn.Linear(32, 3)
    )
    for m in model.modules():
        if isinstance(m, nn.Linear):
            nn.init.xavier_uniform_(m.weight)
    report = run(
        select=["saturated-activations"],
        **classifier(model, torch.optim.Adam(model.parameters(), lr=1e-3)),
    )
    assert report.result("saturated-activations").status.value == "passed"
    assert report.findings == []


# -- activation std with depth --------------------------------------------------------------


def _init_normal(model: nn.Module, std: float) -> None:
    for m in model.modules():
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, std=std)
            nn.init.zeros_(m.bias)


@pytest.mark.fires("activation-scale-drift")
def test_std_10_init_explodes_with_depth() -> None:
    model = deep_mlp(6)
    _init_normal(model, 10.0)
    report = run(
        select=["activation-scale-drift"],
        **classifier(model, torch.optim.SGD(model.parameters(), lr=0.01)),
    )
    (finding,) = report.by_check("activation-scale-drift")
    assert finding.reasons == [28, 35]
    assert "explode" in finding.title
    assert finding.where.step == 0 and finding.where.module == "8"  # last hidden Linear
    assert finding.evidence["std_ratio"] > 1e6
    assert finding.evidence["per_layer_factor"] > 10


@pytest.mark.fires("activation-scale-drift")
def test_std_1e3_init_vanishes_with_depth() -> None:
    model = deep_mlp(6)
    _init_normal(model, 1e-3)
    report = run(
        select=["activation-scale-drift"],
        **classifier(model, torch.optim.SGD(model.parameters(), lr=0.01)),
    )
    (finding,) = report.by_check("activation-scale-drift")
    assert "vanish" in finding.title
    assert finding.evidence["std_ratio"] < 1e-6
    assert finding.evidence["per_layer_factor"] < 0.05
    assert reasons_of(report, "activation-scale-drift") == {28, 35}


@pytest.mark.fires("activation-scale-drift")
def test_constant_output_behind_a_dead_layer_is_named() -> None:
    model = deep_mlp(4)
    for m in model.modules():
        if isinstance(m, nn.Linear):
            nn.init.constant_(m.bias, -5.0)  # ReLU 1 dead: layer 2 outputs its bias only
    report = run(
        select=["activation-scale-drift"],
        **classifier(model, torch.optim.SGD(model.parameters(), lr=0.01)),
    )
    (finding,) = report.by_check("activation-scale-drift")
    assert finding.where.module == "2"
    assert "constant (std 0)" in finding.message
    assert finding.evidence["layer_std"]["2"] == 0.0


# -- constant / symmetric initialisation ------------------------------------------------------


@pytest.mark.fires("weights-constant-init")
def test_constant_init_of_every_layer_is_an_error() -> None:
    model = mlp()
    for m in model.modules():
        if isinstance(m, nn.Linear):
            nn.init.constant_(m.weight, 0.5)
    report = run(
        select=["weights-constant-init"],
        **classifier(model, torch.optim.Adam(model.parameters(), lr=1e-3)),
    )
    (finding,) = report.by_check("weights-constant-init")
    assert finding.reasons == [28]
    assert finding.severity.value == "error"
    assert set(finding.evidence["matrices"]) == {"0.weight", "2.weight", "4.weight"}
    assert finding.evidence["matrices"]["2.weight"]["kind"] == "constant"
    assert finding.evidence["matrices"]["2.weight"]["value"] == 0.5


@pytest.mark.fires("weights-constant-init")
def test_identical_rows_in_one_hidden_layer_are_a_warning() -> None:
    model = mlp()
    with torch.no_grad():
        model[2].weight.copy_(model[2].weight[:1].expand_as(model[2].weight))  # every unit the same
    report = run(
        select=["weights-constant-init"],
        **classifier(model, torch.optim.Adam(model.parameters(), lr=1e-3)),
    )
    (finding,) = report.by_check("weights-constant-init")
    assert finding.severity.value == "warning"
    assert finding.where.module == "2"
    assert finding.evidence["kind"] == "identical rows"


class SharedDecay(nn.Module):
    """An MLP whose hidden units are scaled by exp(-rate) of a hand-held parameter started
    at one rate for every unit (rows identical, as an S4D kernel's ``log_A_real``); with
    ``symmetric`` the layers around it start with identical rows too."""

    def __init__(self, symmetric: bool) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.inp, self.out = nn.Linear(10, 8), nn.Linear(8, 3)
        self.rate = nn.Parameter(torch.full((8, 4), 0.5))
        if symmetric:
            with torch.no_grad():
                self.inp.weight.copy_(self.inp.weight[:1].expand_as(self.inp.weight))
                self.out.weight.fill_(0.1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(torch.relu(self.inp(x)) * torch.exp(-self.rate).mean(1))


@pytest.mark.parametrize(("symmetric", "severity"), [(False, "info"), (True, "error")])
def test_a_hand_held_matrix_its_first_gradient_parts_is_a_note(
    symmetric: bool, severity: str
) -> None:
    # Beside random layers the rate's rows get different gradients and part at once; with
    # every layer symmetric its rows get the same gradient and nothing ever parts them.
    model = SharedDecay(symmetric)
    report = run(
        select=["weights-constant-init"],
        **classifier(model, torch.optim.Adam(model.parameters(), lr=1e-3)),
    )
    findings = report.by_check("weights-constant-init")
    assert [f.severity.value for f in findings] == [severity]
    if severity == "info":
        assert findings[0].evidence["first_gradient_rows_differ"] is True


@pytest.mark.silent("weights-constant-init")
def test_zero_initialised_output_layer_is_only_a_note() -> None:
    model = mlp()
    nn.init.zeros_(model[4].weight)
    report = run(
        select=["weights-constant-init"],
        **classifier(model, torch.optim.Adam(model.parameters(), lr=1e-3)),
    )
    assert serious(report) == []
    (finding,) = report.by_check("weights-constant-init")
    assert finding.severity.value == "info" and finding.where.module == "4"


@pytest.mark.silent("weights-constant-init")
def test_zero_init_of_a_single_layer_model_is_only_a_note() -> None:
    model = nn.Linear(10, 3)
    nn.init.zeros_(model.weight)
    report = run(
        select=["weights-constant-init"],
        **classifier(model, torch.optim.SGD(model.parameters(), lr=0.1)),
    )
    assert serious(report) == []


# -- gradient norm spread -----------------------------------------------------------------------


@pytest.mark.fires("gradient-norm-spread")
def test_deep_sigmoid_net_has_vanishing_gradients() -> None:
    model = deep_mlp(10, act=nn.Sigmoid)  # sigmoid' <= 1/4: gradients shrink ~x0.1 per layer
    report = run(
        select=["gradient-norm-spread"],
        **classifier(model, torch.optim.SGD(model.parameters(), lr=0.1)),
    )
    (finding,) = report.by_check("gradient-norm-spread")
    assert finding.reasons == [35]
    assert finding.severity.value == "warning"
    assert finding.evidence["span_orders"] > DEFAULT_THRESHOLDS.grad_norm_span_orders
    assert finding.where.module == "0"  # the first layer gets the smallest gradient
    assert "vanish" in finding.message


@pytest.mark.silent("gradient-norm-spread")
def test_six_layer_relu_net_gradients_stay_within_two_orders() -> None:
    model = deep_mlp(6)
    report = run(
        select=["gradient-norm-spread"],
        **classifier(model, torch.optim.SGD(model.parameters(), lr=0.1)),
    )
    assert report.findings == []
    assert report.result("gradient-norm-spread").status.value == "passed"


class ZeroTargetDecoder(nn.Module):
    """DETR's first decoder layer: self-attention over zero targets plus query positions.
    Its values are one constant vector, so the attention weights get no gradient: the
    query/key projections' gradient is zero by construction, a rounding residue in float32."""

    def __init__(self, width: int = 16, queries: int = 4, classes: int = 3) -> None:
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(10, width), nn.ReLU())
        self.query_pos = nn.Parameter(torch.randn(queries, width))
        self.self_attn = nn.MultiheadAttention(width, 2, batch_first=True)
        nn.init.normal_(self.self_attn.in_proj_bias)
        self.head = nn.Linear(width, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        memory = self.encoder(x).unsqueeze(1)  # (B, 1, width)
        tgt = torch.zeros(x.shape[0], self.query_pos.shape[0], memory.shape[-1])
        q = tgt + self.query_pos  # (B, queries, width)
        return self.head((self.self_attn(q, q, tgt)[0] + memory).mean(1))


@pytest.mark.silent("gradient-norm-spread")
def test_a_gradient_zero_by_construction_is_a_rounding_residue_not_a_vanishing_one() -> None:
    torch.manual_seed(0)
    model = ZeroTargetDecoder()
    report = run(
        select=["gradient-norm-spread"],
        **classifier(model, torch.optim.SGD(model.parameters(), lr=0.1)),
    )
    assert report.findings == []
    assert "self_attn.in_proj_weight" in report.result("gradient-norm-spread").detail


# -- update / weight ratio --------------------------------------------------------------------


@pytest.mark.fires("update-ratio")
def test_adam_with_lr_1_makes_updates_as_large_as_the_weights() -> None:
    model = mlp()
    report = run(
        select=["update-ratio"], **classifier(model, torch.optim.Adam(model.parameters(), lr=1.0))
    )
    (finding,) = report.by_check("update-ratio")
    assert finding.reasons == [33, 36]
    assert finding.severity.value == "error"
    assert finding.evidence["median_ratio"] > DEFAULT_THRESHOLDS.update_ratio_extreme
    assert finding.evidence["lr"] == [1.0]
    assert "too high" in finding.title and "Lower the learning rate" in finding.fix


@pytest.mark.fires("update-ratio")
def test_adam_with_lr_0_1_is_a_warning_when_the_loss_does_not_fall() -> None:
    model = mlp()
    x, y = blobs()
    y = y[torch.randperm(len(y), generator=torch.Generator().manual_seed(1))]  # nothing to learn
    report = run(
        select=["update-ratio"],
        model=model,
        data=batches(x, y),
        loss_fn=nn.CrossEntropyLoss(),
        optimizer=torch.optim.Adam(model.parameters(), lr=0.1),
    )
    (finding,) = report.by_check("update-ratio")
    assert finding.severity.value == "warning"
    assert DEFAULT_THRESHOLDS.update_ratio_high < finding.evidence["median_ratio"] < 1.0
    assert finding.evidence["loss_falling_p"] >= DEFAULT_THRESHOLDS.update_ratio_training_alpha


@pytest.mark.silent("update-ratio")
def test_large_updates_under_which_the_loss_keeps_falling_are_advice() -> None:
    # Adam at 0.1 on an easy problem: steps a fifth of the weights, and the loss falls
    # step after step. The rate trains; whether a lower one trains better is the range
    # test's question, not this check's.
    model = mlp()
    report = run(
        select=["update-ratio"], **classifier(model, torch.optim.Adam(model.parameters(), lr=0.1))
    )
    (finding,) = report.by_check("update-ratio")
    assert finding.severity.value == "info"
    assert DEFAULT_THRESHOLDS.update_ratio_high < finding.evidence["median_ratio"] < 1.0
    assert finding.evidence["loss_falling_p"] < DEFAULT_THRESHOLDS.update_ratio_training_alpha
    assert "keeps falling" in finding.title


def linear_probe(lr: float) -> dict[str, Any]:
    """A frozen MLP body under a zero-initialised head, the only matrix Adam trains."""
    model = mlp()
    for p in model[:-1].parameters():
        p.requires_grad = False
    nn.init.zeros_(model[-1].weight)
    return classifier(model, torch.optim.Adam(model[-1].parameters(), lr=lr))


@pytest.mark.silent("update-ratio")
def test_a_zero_initialised_head_is_measured_against_its_default_scale() -> None:
    # Against its first non-zero norm (one step's length) every step of a zero-initialised
    # head is as large as the weights; against the norm PyTorch's default initialisation
    # gives that shape, Adam at 1e-3 takes healthy steps.
    report = run(select=["update-ratio"], **linear_probe(1e-3))
    assert not serious(report)
    assert report.result("update-ratio").status.value == "passed"


@pytest.mark.fires("update-ratio")
def test_a_zero_initialised_head_under_a_runaway_rate_still_fires() -> None:
    report = run(select=["update-ratio"], **linear_probe(1.0))
    (finding,) = serious(report, "update-ratio")
    assert finding.evidence["median_ratio"] > DEFAULT_THRESHOLDS.update_ratio_high


class BareMatrixHead(nn.Module):
    """An MLP body under a head written as a bare parameter drawn at N(0, 0.01), as RBM and
    capsule code hold their weights (``F.linear`` with a matrix of its own)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.body = nn.Sequential(nn.Linear(10, 32), nn.ReLU())
        self.W = nn.Parameter(torch.randn(3, 32) * 0.01)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.linear(self.body(x), self.W)


@pytest.mark.parametrize(("lr", "fires"), [(0.05, False), (50.0, True)])
def test_a_bare_matrix_drawn_small_is_measured_against_a_linears_scale(
    lr: float, fires: bool
) -> None:
    # Against its start (norm 0.1) SGD at 0.05 takes steps of a third of it; against the
    # norm nn.Linear's default gives a 3 x 32 matrix they are small. A runaway rate shows.
    model = BareMatrixHead()
    report = run(
        select=["update-ratio"], **classifier(model, torch.optim.SGD(model.parameters(), lr=lr))
    )
    assert bool(serious(report, "update-ratio")) == fires
    if not fires:  # against its start, it was advice that the steps are large
        assert report.by_check("update-ratio") == []


class TextBag(nn.Module):
    """fastText-style: the mean of token embeddings, then one small linear head."""

    def __init__(self) -> None:
        super().__init__()
        self.embedding = nn.EmbeddingBag(2000, 32, mode="mean")
        self.fc = nn.Linear(32, 4)
        nn.init.uniform_(self.embedding.weight, -0.5, 0.5)
        nn.init.uniform_(self.fc.weight, -0.5, 0.5)
        nn.init.zeros_(self.fc.bias)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.fc(self.embedding(tokens))


def text_bag_report(
    lr: float,
    optimizer: type[torch.optim.Optimizer] = torch.optim.SGD,
    select: tuple[str, ...] = ("update-ratio", "optimizer-underperforms"),
) -> Any:
    """``optimizer`` at ``lr`` on random documents with random topics: no loss falls in the
    observed steps, so only an experiment can say whether the rate is too high."""
    g = torch.Generator().manual_seed(0)
    tokens = torch.randint(0, 2000, (640, 20), generator=g)
    topics = torch.randint(0, 4, (640,), generator=g)
    torch.manual_seed(0)
    model = TextBag()
    return run(
        select=list(select),
        model=model,
        data=batches(tokens, topics, 32),
        loss_fn=nn.CrossEntropyLoss(),
        optimizer=optimizer(model.parameters(), lr=lr),
    )


@pytest.mark.silent("update-ratio")
def test_large_sgd_steps_that_fit_a_tiny_batch_are_advice() -> None:
    # The head's steps are a fifth of its weights, but a copy at this rate fits a tiny
    # batch further than Adam(1e-3): SGD steps too large for the loss surface would not.
    report = text_bag_report(lr=10.0)
    (finding,) = report.by_check("update-ratio")
    assert finding.severity.value == "info"
    assert finding.evidence["median_ratio"] > DEFAULT_THRESHOLDS.update_ratio_high
    assert finding.evidence["loss_falling_p"] >= DEFAULT_THRESHOLDS.update_ratio_training_alpha
    assert "optimizer-underperforms" in finding.evidence["refuted"]
    assert report.result("update-ratio").status.value == "passed"
    assert report.findings == [finding]


@pytest.mark.silent("update-ratio")
def test_large_adaptive_steps_at_a_rate_the_range_test_endorses_are_advice() -> None:
    # Adagrad's first steps are about its rate per weight, a tenth of a small head's norm
    # at lr=0.1, with no loss falling in the observed steps: a warning on its own. The
    # range test, run with Adagrad and these settings, puts 0.1 inside the range it
    # proposes: the measured claim wins and the ratio is advice.
    tested = text_bag_report(
        0.1, torch.optim.Adagrad, select=("update-ratio", "learning-rate-out-of-range")
    )
    assert "is inside it" in tested.result("learning-rate-out-of-range").detail
    (finding,) = tested.by_check("update-ratio")
    assert finding.severity.value == "info"
    assert finding.evidence["median_ratio"] > DEFAULT_THRESHOLDS.update_ratio_high
    assert finding.evidence["loss_falling_p"] >= DEFAULT_THRESHOLDS.update_ratio_training_alpha
    assert "learning-rate-out-of-range" in finding.evidence["refuted"]
    assert tested.result("update-ratio").status.value == "passed"


@pytest.mark.fires("update-ratio")
def test_a_tiny_batch_fit_does_not_excuse_large_adam_steps() -> None:
    # Adam memorises a tiny batch at rates too high for real training: its fit is no twin.
    model = mlp()
    x, y = blobs()
    y = y[torch.randperm(len(y), generator=torch.Generator().manual_seed(1))]
    report = run(
        select=["update-ratio", "optimizer-underperforms"],
        model=model,
        data=batches(x, y),
        loss_fn=nn.CrossEntropyLoss(),
        optimizer=torch.optim.Adam(model.parameters(), lr=0.1),
    )
    assert "0.1" in report.result("optimizer-underperforms").detail  # the experiment ran
    (finding,) = report.by_check("update-ratio")
    assert finding.severity.value == "warning" and "refuted" not in finding.evidence


def test_the_falling_trend_test() -> None:
    from nndoctor.checks.significance import falling_trend_p

    falling = [10.0 - i for i in range(10)]
    assert falling_trend_p(falling) < 1e-3
    assert falling_trend_p(falling[::-1]) == 1.0  # rising
    assert falling_trend_p([1.0] * 10) == 1.0  # flat: every pair tied
    zigzag = [1.0, 3.0] * 5
    assert falling_trend_p(zigzag) > 0.1


@pytest.mark.fires("update-ratio")
def test_sgd_with_lr_1e6_barely_moves_the_weights() -> None:
    model = mlp()
    report = run(
        select=["update-ratio"], **classifier(model, torch.optim.SGD(model.parameters(), lr=1e-6))
    )
    (finding,) = report.by_check("update-ratio")
    assert finding.severity.value == "warning"
    assert "too low" in finding.title and "Raise the learning rate" in finding.fix
    assert finding.evidence["median_ratio"] < DEFAULT_THRESHOLDS.update_ratio_low
    assert finding.evidence["warm_up"] is False


def test_tiny_updates_during_warm_up_are_only_a_note() -> None:
    model = mlp()
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-2)
    # A linear warm-up from 1e-4 of the base rate: the first steps barely move the weights.
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: (step + 1) / 10_000)
    x, y = blobs()
    recording = observe(model, optimizer, batches(x, y), steps=20, scheduler=scheduler)
    (finding,) = checks_on(recording, "update-ratio")
    assert finding.severity.value == "info"
    assert finding.evidence["warm_up"] is True
    assert finding.evidence["median_ratio"] < DEFAULT_THRESHOLDS.update_ratio_low


@pytest.mark.fires("update-ratio")
def test_a_rate_scheduled_to_zero_leaves_the_weights_unchanged() -> None:
    model = mlp()
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-2)
    # The bug: a decay sized in epochs, stepped per batch, reaches zero at the third step.
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: max(0.0, 1 - step / 2))
    x, y = blobs()
    recording = observe(model, optimizer, batches(x, y), steps=20, scheduler=scheduler)
    (finding,) = checks_on(recording, "update-ratio")
    assert finding.evidence["median_ratio"] == 0 and "too low" in finding.title
    assert "above zero" in finding.fix


@pytest.mark.silent("update-ratio")
def test_adam_at_its_default_rate_is_healthy() -> None:
    model = deep_mlp(4, width=64)
    report = run(
        select=["update-ratio"], **classifier(model, torch.optim.Adam(model.parameters(), lr=1e-3))
    )
    assert report.findings == []


# -- loss diverging ------------------------------------------------------------------------------


@pytest.mark.fires("loss-diverging")
def test_sgd_momentum_with_lr_1_diverges() -> None:
    model = mlp()
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0, momentum=0.9)
    report = run(select=["loss-diverging"], **classifier(model, optimizer))
    (finding,) = report.by_check("loss-diverging")
    assert finding.reasons == [36]
    assert finding.severity.value == "error"
    assert finding.where.step is not None and finding.where.step > 0
    assert "learning rate" in finding.fix


@pytest.mark.fires("loss-diverging")
def test_adam_with_lr_1_spikes_the_loss() -> None:
    model = mlp()
    report = run(
        select=["loss-diverging"], **classifier(model, torch.optim.Adam(model.parameters(), lr=1.0))
    )
    (finding,) = report.by_check("loss-diverging")
    assert finding.severity.rank >= 1  # warning (spike) or error (rise / non-finite)
    assert finding.evidence["max_loss"] > DEFAULT_THRESHOLDS.loss_spike_ratio * report_first_loss(
        finding
    )


def report_first_loss(finding) -> float:
    return finding.evidence.get("initial_loss", finding.evidence.get("first_quarter_median"))


@pytest.mark.fires("loss-diverging")
def test_huge_learning_rate_makes_the_loss_non_finite() -> None:
    model = mlp()
    report = run(
        select=["loss-diverging"], **classifier(model, torch.optim.SGD(model.parameters(), lr=1e6))
    )
    (finding,) = report.by_check("loss-diverging")
    assert finding.severity.value == "error"
    assert "non-finite" in finding.title
    assert finding.evidence["nonfinite_step"] > 0


# A VQ-VAE's first 20 losses (seed 2 of the bench's healthy script): the codebook loss
# bumps to 7x its start while the encoder's outputs spread, then falls at every step.
_VQ_BUMP = [2.94, 2.78, 2.74, 2.61, 2.56, 2.50, 2.43, 2.47, 2.69, 3.11,
            3.94, 5.72, 9.07, 14.8, 21.6, 20.4, 15.5, 10.9, 7.25, 4.77]  # fmt: skip


def _divergence_findings(losses: list[float]) -> tuple[list[Finding], str]:
    steps = [StepRecord(step=i, loss=v, loss_seen=True) for i, v in enumerate(losses)]
    results, findings = run_checks(
        None, Recording(steps=steps), Lab(None), selection=Selection(select=("loss-diverging",))
    )
    (result,) = [r for r in results if r.check == "loss-diverging"]
    return findings, result.detail


@pytest.mark.silent("loss-diverging")
def test_a_loss_that_bumped_and_falls_through_the_last_quarter_is_no_steady_rise() -> None:
    findings, detail = _divergence_findings(_VQ_BUMP)
    assert findings == []
    assert "a bump it is coming out of" in detail and "p=0.0083" in detail


@pytest.mark.fires("loss-diverging")
def test_the_same_rise_still_climbing_or_wavering_at_the_end_is_an_error() -> None:
    # The last quarter not falling at every step: one step back up is no turn at 1%.
    for tail in ([24.0, 27.1, 30.5, 33.0, 38.2], [20.4, 15.5, 16.0, 10.9, 7.25]):
        findings, _ = _divergence_findings(_VQ_BUMP[:15] + tail)
        (finding,) = findings
        assert finding.title == "The loss rises steadily" and finding.reasons == [36]


def test_the_trend_test_is_exact_for_a_short_series() -> None:
    from nndoctor.checks.significance import falling_trend_p

    assert falling_trend_p([5.0, 4.0, 3.0, 2.0, 1.0]) == pytest.approx(1 / 120)
    assert falling_trend_p([5.0, 4.0, 3.0, 1.0, 2.0]) == pytest.approx(5 / 120)


class GraphConvolution(nn.Module):
    """A hand-written graph convolution (Kipf & Welling): ``adj @ (x @ weight)``."""

    def __init__(self, d_in: int, d_out: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(d_in, d_out))
        nn.init.xavier_uniform_(self.weight)

    def forward(self, x: torch.Tensor, adj: torch.Tensor) -> torch.Tensor:
        return adj @ (x @ self.weight)


class TwoLayerGCN(nn.Module):
    def __init__(self, adj: torch.Tensor) -> None:
        super().__init__()
        self.adj = adj
        self.gc1 = GraphConvolution(8, 16)
        self.gc2 = GraphConvolution(16, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.gc2(torch.relu(self.gc1(x, self.adj)), self.adj)


def _gcn_subject(degree_power: float) -> dict[str, Any]:
    """Node classification on a random graph whose adjacency (self-loops added) is
    normalised as D^p (A + I) D^p: p = -1/2 is Kipf & Welling's, p = +1/2 a sign slip."""
    g = torch.Generator().manual_seed(0)
    nodes = 60
    a = (torch.rand(nodes, nodes, generator=g) < 0.3).float()
    a = ((a + a.T) > 0).float() + torch.eye(nodes)
    d = a.sum(1).pow(degree_power)
    adj = d[:, None] * a * d[None, :]
    x = torch.randn(nodes, 8, generator=g)
    y = (x[:, 0] > 0).long() + (x[:, 1] > 0).long()
    torch.manual_seed(0)
    model = TwoLayerGCN(adj)
    return {
        "model": model,
        "data": [(x, y)] * 4,
        "loss_fn": nn.CrossEntropyLoss(),
        "optimizer": torch.optim.Adam(model.parameters(), lr=0.01),
    }


@pytest.mark.fires("activation-scale-drift")
def test_hand_written_graph_layers_that_grow_with_the_degree_are_named() -> None:
    report = run(select=["activation-scale-drift"], **_gcn_subject(0.5))
    (finding,) = report.by_check("activation-scale-drift")
    assert "explode" in finding.title and finding.where.module == "gc2"
    assert reasons_of(report, "activation-scale-drift") == {28, 35}


@pytest.mark.silent("activation-scale-drift")
def test_hand_written_graph_layers_normalised_by_the_degree_do_not_drift() -> None:
    report = run(select=["activation-scale-drift"], **_gcn_subject(-0.5))
    assert report.result("activation-scale-drift").status.value == "passed"
    assert "gc1" in report.result("activation-scale-drift").detail
    assert report.findings == []


def _zero_weight_start(bias: list[float]) -> nn.Sequential:
    """A hidden Linear with zero weights and the given bias between two random layers:
    with a bias that is not zero, the layer starts at a chosen output (a spatial
    transformer's identity affine)."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Linear(32, 6), nn.Linear(6, 3))
    nn.init.zeros_(model[2].weight)
    with torch.no_grad():
        model[2].bias.copy_(torch.tensor(bias))
    return model


@pytest.mark.silent("weights-constant-init")
def test_zero_weights_starting_at_their_bias_are_a_note() -> None:
    model = _zero_weight_start([1.0, 0.0, 0.0, 0.0, 1.0, 0.0])
    report = run(
        select=["weights-constant-init"],
        **classifier(model, torch.optim.SGD(model.parameters(), lr=0.05)),
    )
    (finding,) = report.by_check("weights-constant-init")
    assert finding.severity.value == "info" and "chosen output" in finding.message
    assert report.result("weights-constant-init").status.value == "passed"


@pytest.mark.fires("weights-constant-init")
def test_zero_weights_and_a_zero_bias_stay_a_warning() -> None:
    model = _zero_weight_start([0.0] * 6)
    report = run(
        select=["weights-constant-init"],
        **classifier(model, torch.optim.SGD(model.parameters(), lr=0.05)),
    )
    (finding,) = report.by_check("weights-constant-init")
    assert finding.severity.value == "warning" and finding.reasons == [28]
    assert finding.where.module == "2"
