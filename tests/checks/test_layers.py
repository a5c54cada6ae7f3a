"""Custom layers: the float64 gradient check, batch independence, bottlenecks."""

from __future__ import annotations

from collections import namedtuple
from pathlib import Path
from typing import Any

import pytest
import torch
from subjects import SequenceLoss, batches, blobs, run
from torch import nn

from nndoctor.engine import Selection, check_script
from nndoctor.report.model import Report


class _WrongSquare(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):  # noqa: ANN001, ANN205
        ctx.save_for_backward(x)
        return x * x

    @staticmethod
    def backward(ctx, grad):  # noqa: ANN001, ANN205
        (x,) = ctx.saved_tensors
        return grad * x  # the bug: d(x²)/dx is 2x


class _Square(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):  # noqa: ANN001, ANN205
        ctx.save_for_backward(x)
        return x * x

    @staticmethod
    def backward(ctx, grad):  # noqa: ANN001, ANN205
        (x,) = ctx.saved_tensors
        return 2 * grad * x


class _ReLU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):  # noqa: ANN001, ANN205
        ctx.save_for_backward(x)
        return x.clamp(min=0)

    @staticmethod
    def backward(ctx, grad):  # noqa: ANN001, ANN205
        (x,) = ctx.saved_tensors
        return grad * (x > 0)


class _Exp(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):  # noqa: ANN001, ANN205
        y = x.exp()
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad):  # noqa: ANN001, ANN205
        (y,) = ctx.saved_tensors
        return grad * y


class SquareLayer(nn.Module):
    def __init__(self, bug: bool) -> None:
        super().__init__()
        self.bug = bug

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (_WrongSquare if self.bug else _Square).apply(x)


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
    return {
        "model": model,
        "data": batches(x, y),
        "loss_fn": nn.CrossEntropyLoss(),
        "optimizer": torch.optim.Adam(model.parameters(), lr=1e-3),
    }


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
    # Net is checked too: its graph holds SquareLayer's custom backward.
    assert "2 user-defined module class(es)" in report.result("custom-layer-gradient").detail


class FrozenTeacherLoss(nn.Module):
    """A distillation-style module: the teacher's output is computed without gradients."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.student, self.teacher = nn.Linear(10, 3), nn.Linear(10, 3).requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            target = self.teacher(x).softmax(1)
        return -(target * self.student(x).log_softmax(1)).sum(1).mean().expand(len(x), 1)


@pytest.mark.silent("custom-layer-gradient")
def test_gradients_stopped_on_purpose_in_torch_operations_are_not_wrong_gradients() -> None:
    x, y = blobs()
    model = FrozenTeacherLoss()
    report = run(
        select=["custom-layer-gradient"],
        model=model,
        data=batches(x, y),
        loss_fn=lambda out, _y: out.mean(),
        optimizer=torch.optim.SGD(model.student.parameters(), lr=0.1),
    )
    assert report.by_check("custom-layer-gradient") == []
    assert "0 user-defined module class(es)" in report.result("custom-layer-gradient").detail


class _GradientReversal(torch.autograd.Function):
    """DANN's gradient reversal layer: identity forward, negated and scaled backward."""

    @staticmethod
    def forward(ctx, x, lambd):  # noqa: ANN001, ANN205
        ctx.lambd = lambd
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):  # noqa: ANN001, ANN205
        return -ctx.lambd * grad, None


class _SurrogateSpike(torch.autograd.Function):
    """A spiking neuron's Heaviside step with the fast-sigmoid surrogate derivative."""

    @staticmethod
    def forward(ctx, v):  # noqa: ANN001, ANN205
        ctx.save_for_backward(v)
        return (v > 0).to(v.dtype)

    @staticmethod
    def backward(ctx, grad):  # noqa: ANN001, ANN205
        (v,) = ctx.saved_tensors
        return grad / (10 * v.abs() + 1) ** 2


class _BinarizeSTE(torch.autograd.Function):
    """BinaryNet's sign with the straight-through estimator, written in the new style."""

    @staticmethod
    def forward(x):  # noqa: ANN001, ANN205
        return torch.where(x >= 0, 1.0, -1.0).to(x.dtype)

    @staticmethod
    def setup_context(ctx, inputs, output):  # noqa: ANN001, ANN205
        ctx.save_for_backward(inputs[0])

    @staticmethod
    def backward(ctx, grad):  # noqa: ANN001, ANN205
        (x,) = ctx.saved_tensors
        return grad * (x.abs() <= 1)


spike_fn = _SurrogateSpike.apply  # kept at module level, as the spiking-network tutorials do


class DomainAdversarialNet(nn.Module):
    """Features, a label head, and a domain head behind gradient reversal; with
    ``square_bug`` the features also pass through a layer whose backward is wrong."""

    def __init__(self, square_bug: bool | None = None) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.features = nn.Linear(10, 16)
        self.square = SquareLayer(square_bug) if square_bug is not None else nn.Identity()
        self.label_head = nn.Linear(16, 3)
        self.domain_head = nn.Linear(16, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.square(torch.tanh(self.features(x)))
        domain = self.domain_head(_GradientReversal.apply(h, 0.5))
        return self.label_head(h) + domain.mean(1, keepdim=True)


class SpikingNet(nn.Module):
    """Two leaky integrate-and-fire layers over a few time steps, spikes by surrogate
    gradient, a binarised (straight-through) input layer; the readout is the spike count."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.fc1 = nn.Linear(10, 16)
        self.fc2 = nn.Linear(16, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = _BinarizeSTE.apply(x)
        v1 = torch.zeros(len(x), 16, dtype=x.dtype)
        v2 = torch.zeros(len(x), 3, dtype=x.dtype)
        count = torch.zeros(len(x), 3, dtype=x.dtype)
        for _ in range(4):
            v1 = 0.9 * v1 + self.fc1(x)
            s1 = spike_fn(v1 - 1.0)
            v1 = v1 - s1
            v2 = 0.9 * v2 + self.fc2(s1)
            s2 = spike_fn(v2 - 1.0)
            v2 = v2 - s2
            count = count + s2 + 0.1 * v2
        return count


def _run_on(model: nn.Module) -> Report:
    x, y = blobs()
    return run(
        select=["custom-layer-gradient"],
        model=model,
        data=batches(x, y),
        loss_fn=nn.CrossEntropyLoss(),
        optimizer=torch.optim.Adam(model.parameters(), lr=1e-3),
    )


@pytest.mark.silent("custom-layer-gradient")
def test_a_gradient_reversal_layer_is_not_a_wrong_gradient() -> None:
    report = _run_on(DomainAdversarialNet())
    assert report.result("custom-layer-gradient").status.value == "passed"
    assert report.by_check("custom-layer-gradient") == []
    detail = report.result("custom-layer-gradient").detail
    assert "_GradientReversal's backward is not gradient-checked" in detail
    assert "passes its input through unchanged" in detail


@pytest.mark.silent("custom-layer-gradient")
def test_surrogate_and_straight_through_gradients_are_not_wrong_gradients() -> None:
    report = _run_on(SpikingNet())
    assert report.result("custom-layer-gradient").status.value == "passed"
    assert report.by_check("custom-layer-gradient") == []
    detail = report.result("custom-layer-gradient").detail
    assert "_SurrogateSpike's backward is not gradient-checked" in detail
    assert "_BinarizeSTE's backward is not gradient-checked" in detail
    assert "piecewise constant" in detail


@pytest.mark.fires("custom-layer-gradient")
def test_a_wrong_backward_beside_a_gradient_reversal_is_still_found() -> None:
    report = _run_on(DomainAdversarialNet(square_bug=True))
    (finding,) = report.by_check("custom-layer-gradient")
    assert finding.where.module == "square"
    # The whole network, reversal and all, is checked too: with the reversal differentiated
    # as its forward, it passes once the square's backward is right.
    assert _run_on(DomainAdversarialNet(square_bug=False)).by_check("custom-layer-gradient") == []


def test_the_functions_are_left_as_they_were_after_the_check() -> None:
    before = {cls: dict(vars(cls)) for cls in (_GradientReversal, _SurrogateSpike, _BinarizeSTE)}
    _run_on(SpikingNet())
    _run_on(DomainAdversarialNet(square_bug=False))
    for cls, attributes in before.items():
        assert dict(vars(cls)) == attributes
    v = torch.tensor([-0.5, 0.5], requires_grad=True)
    spike_fn(v).sum().backward()
    assert torch.allclose(v.grad, 1 / (10 * 0.5 + 1) ** 2 * torch.ones(2))


Pair = namedtuple("Pair", "a b")


class ModelOutput(dict):
    """Like a Hugging Face ModelOutput where transformers does not register it with pytree."""


class PairSquare(nn.Module):
    """A custom layer taking a namedtuple and returning a dict subclass."""

    def __init__(self, bug: bool) -> None:
        super().__init__()
        self.bug = bug

    def forward(self, pair: Pair) -> ModelOutput:
        square = _WrongSquare.apply(pair.a) if self.bug else pair.a * pair.a
        return ModelOutput(out=square + pair.b, aux=pair.b.sum())


class PairNet(nn.Module):
    def __init__(self, bug: bool) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.fc1 = nn.Linear(10, 16)
        self.pair = PairSquare(bug)
        self.fc2 = nn.Linear(16, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.tanh(self.fc1(x))
        return self.fc2(self.pair(Pair(h, 0.5 * h))["out"])


@pytest.mark.parametrize(
    "bug",
    [
        pytest.param(True, marks=pytest.mark.fires("custom-layer-gradient")),
        pytest.param(False, marks=pytest.mark.silent("custom-layer-gradient")),
    ],
)
def test_a_custom_layer_on_a_namedtuple_returning_a_dict_subclass(bug: bool) -> None:
    x, y = blobs()
    model = PairNet(bug)
    report = run(
        select=["custom-layer-gradient"],
        model=model,
        data=batches(x, y),
        loss_fn=nn.CrossEntropyLoss(),
        optimizer=torch.optim.Adam(model.parameters(), lr=1e-3),
    )
    assert report.result("custom-layer-gradient").status.value in ("passed", "failed")
    assert [f.where.module for f in report.by_check("custom-layer-gradient")] == (
        ["pair"] if bug else []
    )


class ShiftedByAKink(nn.Module):
    """Correct (a hand-written ReLU backward), but its parameters sit 3e-8 from ReLU's kink: a finite-difference step of
    1e-7 crosses it along almost every direction, as deep ReLU/max-pool trunks do now and then."""

    def __init__(self) -> None:
        super().__init__()
        self.offset = nn.Parameter(torch.full((16,), 3e-8))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + _ReLU.apply(self.offset)


class NetNearAKink(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.fc1 = nn.Linear(10, 16)
        self.shift = ShiftedByAKink()
        self.fc2 = nn.Linear(16, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.shift(self.fc1(x)))


@pytest.mark.silent("custom-layer-gradient")
def test_a_kink_crossed_by_the_finite_difference_is_not_a_wrong_gradient() -> None:
    x, y = blobs()
    model = NetNearAKink()
    report = run(
        select=["custom-layer-gradient"],
        model=model,
        data=batches(x, y),
        loss_fn=nn.CrossEntropyLoss(),
        optimizer=torch.optim.Adam(model.parameters(), lr=1e-3),
    )
    assert report.by_check("custom-layer-gradient") == []
    assert "2 user-defined module class(es)" in report.result("custom-layer-gradient").detail


class MixesBatch(nn.Module):
    """The bug: a reshape that folds the batch axis into the features."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv1d(1, 4, 3, padding=1)
        self.bn = nn.BatchNorm1d(4)
        self.fc = nn.Linear(40, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.bn(self.conv(x.unsqueeze(1)))  # (N, 4, 10)
        h = h.transpose(0, 1).reshape(x.shape[0], -1)  # mixes samples
        return self.fc(h)


class KeepsBatch(MixesBatch):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.bn(self.conv(x.unsqueeze(1))).flatten(1))


def _batch_dependence(model: nn.Module, loss_fn: nn.Module | None = None) -> Report:
    """batch-dependence alone on ``model`` trained on Gaussian blobs (cross-entropy unless
    ``loss_fn`` is given)."""
    return run(
        select=["batch-dependence"],
        model=model,
        data=batches(*blobs()),
        loss_fn=loss_fn if loss_fn is not None else nn.CrossEntropyLoss(),
        optimizer=torch.optim.Adam(model.parameters()),
    )


@pytest.mark.fires("batch-dependence")
def test_a_reshape_across_the_batch_axis_is_found() -> None:
    model = MixesBatch()
    report = _batch_dependence(model)
    (finding,) = report.by_check("batch-dependence")
    assert finding.reasons == [25] and finding.evidence["relative_change"] > 1e-3


class MaskedLogProbabilities(nn.Module):
    """Log-probabilities over four candidates, the last one masked out (-inf), as a pointer
    network masks the positions it has chosen: normalised over the candidates, or (the
    bug) over the batch."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.fc = nn.Linear(10, 4)
        self.dim = dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scores = self.fc(x)
        masked = torch.zeros_like(scores, dtype=torch.bool)
        masked[:, 3] = True
        return torch.log_softmax(scores.masked_fill(masked, float("-inf")), dim=self.dim)


def _masked_dependence(dim: int) -> Report:
    return _batch_dependence(MaskedLogProbabilities(dim), nn.NLLLoss())


@pytest.mark.fires("batch-dependence")
def test_masked_log_probabilities_normalised_over_the_batch_are_found() -> None:
    # Every sample holds a -inf: its changes are read off its finite values.
    (finding,) = _masked_dependence(0).by_check("batch-dependence")
    assert finding.evidence["relative_change"] > 1e-3


@pytest.mark.silent("batch-dependence")
def test_masked_log_probabilities_normalised_per_sample_pass() -> None:
    assert _masked_dependence(1).by_check("batch-dependence") == []


class DictOutput(nn.Module):
    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> ModelOutput:
        return ModelOutput(logits=self.inner(x))


class LogitsLoss(nn.CrossEntropyLoss):
    def forward(self, out: ModelOutput, target: torch.Tensor) -> torch.Tensor:
        return super().forward(out["logits"], target)


@pytest.mark.fires("batch-dependence")
def test_a_batch_mixing_model_returning_a_dict_subclass_is_found() -> None:
    model = DictOutput(MixesBatch())
    report = run(
        select=["batch-dependence"],
        model=model,
        data=batches(*blobs()),
        loss_fn=LogitsLoss(),
        optimizer=torch.optim.Adam(model.parameters()),
    )
    (finding,) = report.by_check("batch-dependence")
    assert finding.evidence["relative_change"] > 1e-3


@pytest.mark.silent("batch-dependence")
def test_batchnorm_in_train_mode_is_not_a_batch_dependence() -> None:
    model = KeepsBatch()
    report = _batch_dependence(model)
    assert report.by_check("batch-dependence") == []
    assert "BatchNorm checked in eval mode" in report.result("batch-dependence").detail


def _without_running_statistics(model: MixesBatch) -> MixesBatch:
    """``model`` with its batch norm normalising every batch by that batch's own statistics,
    in eval mode too (``track_running_stats=False``), as MAML's networks do by design."""
    model.bn = nn.BatchNorm1d(4, track_running_stats=False)
    return model


@pytest.mark.silent("batch-dependence")
def test_batchnorm_without_running_statistics_is_not_a_batch_dependence() -> None:
    report = _batch_dependence(_without_running_statistics(KeepsBatch()))
    assert report.by_check("batch-dependence") == []
    detail = report.result("batch-dependence").detail
    assert "bn: batch norm without running statistics" in detail


@pytest.mark.fires("batch-dependence")
def test_a_reshape_across_the_batch_behind_batchnorm_without_statistics_is_found() -> None:
    report = _batch_dependence(_without_running_statistics(MixesBatch()))
    (finding,) = report.by_check("batch-dependence")
    assert finding.evidence["relative_change"] > 1e-3


class MinibatchStdDev(nn.Module):
    """ProGAN's minibatch standard deviation, appended to every sample as one more feature;
    with ``centred``, the bug's shape instead: each sample's features minus the batch mean."""

    def __init__(self, centred: bool = False) -> None:
        super().__init__()
        self.centred = centred

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        if self.centred:
            return torch.cat([h, h[:, :1] - h[:, :1].mean(0)], dim=1)
        return torch.cat([h, h.std(dim=0, unbiased=False).mean().expand(h.shape[0], 1)], dim=1)


def _with_batch_statistic(centred: bool) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Linear(10, 16), nn.LeakyReLU(0.2), MinibatchStdDev(centred), nn.Linear(17, 3)
    )


@pytest.mark.silent("batch-dependence")
def test_a_minibatch_standard_deviation_appended_to_every_sample_is_by_design() -> None:
    report = _batch_dependence(_with_batch_statistic(centred=False))
    assert report.by_check("batch-dependence") == []
    assert "one statistic of the whole batch" in report.result("batch-dependence").detail


@pytest.mark.fires("batch-dependence")
def test_features_centred_on_the_batch_mean_are_a_dependence() -> None:
    # The batch mean moves every sample's value by its own amount from its own value: not
    # one statistic shared by all.
    (finding,) = _batch_dependence(_with_batch_statistic(centred=True)).by_check("batch-dependence")
    assert finding.evidence["first_mixing_module"] == "2"


class RepeatedLatent(nn.Module):
    """The bug of an LSTM autoencoder's decoder: the latent repeated over 8 time steps with
    ``repeat(8, 1)`` before a ``view`` that expects ``repeat(1, 8)``; each sample's sequence
    holds the latents of the others. With a batch of 4 every sample's sequence is the same
    (z0, z1, z2, z3, z0, ...): each sample lands in one place of every other row, a
    different place for each sample."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.encode = nn.Linear(10, 6)
        self.decode = nn.Linear(6, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.encode(x)
        steps = z.repeat(8, 1).view(-1, 8, 6)  # the bug: z.repeat(1, 8).view(-1, 8, 6)
        return self.decode(torch.tanh(steps)).mean(1)


@pytest.mark.fires("batch-dependence")
def test_a_sample_copied_into_the_others_rows_is_no_statistic_of_the_batch() -> None:
    (finding,) = _batch_dependence(RepeatedLatent()).by_check("batch-dependence")
    assert finding.evidence["relative_change"] > 1e-3


class CapacityRouter(nn.Module):
    """Top-1 routing of each sample to one of four experts, at most ``capacity`` samples an
    expert per batch: the samples over capacity are dropped (zero output), so a sample's
    output depends on which other samples chose its expert, by design. With
    ``softmax_over_batch``, the gates are normalised over the batch instead of the experts:
    every sample's gate depends on every other sample, continuously."""

    def __init__(self, softmax_over_batch: bool = False) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.router = nn.Linear(10, 4)
        self.experts = nn.ModuleList(nn.Linear(10, 3) for _ in range(4))
        self.softmax_dim = 0 if softmax_over_batch else -1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gates = torch.softmax(self.router(x), dim=self.softmax_dim)
        choice = gates.argmax(-1)
        capacity = max(1, x.shape[0] // 4)
        out = torch.zeros(x.shape[0], 3, dtype=x.dtype)
        for e, expert in enumerate(self.experts):
            idx = torch.nonzero(choice == e, as_tuple=True)[0][:capacity]
            out[idx] = expert(x[idx]) * gates[idx, e : e + 1]
        return out


@pytest.mark.silent("batch-dependence")
def test_capacity_dropping_in_a_mixture_of_experts_is_by_design() -> None:
    report = _batch_dependence(CapacityRouter())
    assert report.by_check("batch-dependence") == []
    result = report.result("batch-dependence")
    assert result.status.value == "passed"
    assert "discrete decisions over the batch" in result.detail


@pytest.mark.fires("batch-dependence")
def test_router_gates_normalised_over_the_batch_are_found() -> None:
    report = _batch_dependence(CapacityRouter(softmax_over_batch=True))
    (finding,) = report.by_check("batch-dependence")
    assert finding.reasons == [25] and finding.severity.value == "error"


@pytest.mark.fires("width-one-bottleneck")
def test_a_hidden_layer_of_width_one() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(10, 1), nn.ReLU(), nn.Linear(1, 3))
    report = run(
        select=["width-one-bottleneck"],
        model=model,
        data=batches(*blobs()),
        loss_fn=nn.CrossEntropyLoss(),
        optimizer=torch.optim.Adam(model.parameters()),
    )
    (finding,) = report.by_check("width-one-bottleneck")
    assert finding.where.module == "0" and finding.reasons == [24]


class NamedLinear(nn.Linear):
    """A user's own Linear subclass: still a Linear to the checks."""


@pytest.mark.fires("width-one-bottleneck")
def test_a_subclass_of_linear_is_a_linear() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(NamedLinear(10, 1), nn.ReLU(), NamedLinear(1, 3))
    report = run(
        select=["width-one-bottleneck"],
        model=model,
        data=batches(*blobs()),
        loss_fn=nn.CrossEntropyLoss(),
        optimizer=torch.optim.Adam(model.parameters()),
    )
    (finding,) = report.by_check("width-one-bottleneck")
    assert finding.where.module == "0"
    assert finding.message.startswith("NamedLinear 0 ")


@pytest.mark.silent("width-one-bottleneck")
def test_a_binary_output_of_width_one_is_not_a_bottleneck() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(10, 8), nn.ReLU(), nn.Linear(8, 1))
    x, y = blobs(classes=2)
    data = [(xb, yb.float().unsqueeze(1)) for xb, yb in batches(x, y)]
    report = run(
        select=["width-one-bottleneck"],
        model=model,
        data=data,
        loss_fn=nn.BCEWithLogitsLoss(),
        optimizer=torch.optim.Adam(model.parameters()),
    )
    assert report.by_check("width-one-bottleneck") == []


class GaussianHeads(nn.Module):
    """A trunk with two heads of width one, the mean first: a Gaussian likelihood's
    (DeepAR's, a heteroscedastic regression's) output, not a bottleneck. With
    ``squeezed``, the mean is fed on to a last layer: then it is one."""

    def __init__(self, squeezed: bool = False) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.squeezed = squeezed
        self.trunk = nn.Linear(10, 16)
        self.mu = nn.Linear(16, 1)
        self.sigma = nn.Linear(16, 1 if not squeezed else 16)
        self.out = nn.Linear(1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.trunk(x))
        mu = self.mu(h)
        if self.squeezed:
            return self.out(torch.relu(mu)) + 0 * self.sigma(h).sum(1, keepdim=True)
        return torch.cat([mu, nn.functional.softplus(self.sigma(h))], dim=1)


def _gaussian_run(model: nn.Module, outputs: int) -> Report:
    x = torch.randn(128, 10, generator=torch.Generator().manual_seed(0))
    return run(
        select=["width-one-bottleneck"],
        model=model,
        data=batches(x, x[:, :outputs] * 2),
        loss_fn=nn.MSELoss(),
        optimizer=torch.optim.Adam(model.parameters()),
    )


@pytest.mark.silent("width-one-bottleneck")
def test_heads_of_width_one_side_by_side_are_not_a_bottleneck() -> None:
    report = _gaussian_run(GaussianHeads(), 2)
    assert report.by_check("width-one-bottleneck") == []
    assert "output heads" in report.result("width-one-bottleneck").detail
    assert "mu" in report.result("width-one-bottleneck").detail


@pytest.mark.fires("width-one-bottleneck")
def test_a_width_one_output_fed_on_to_another_layer_is_a_bottleneck() -> None:
    (finding,) = _gaussian_run(GaussianHeads(squeezed=True), 1).by_check("width-one-bottleneck")
    assert finding.where.module == "mu"


class AttentionPooling(nn.Module):
    """Attention pooling over a set (attention-based multiple-instance learning, a
    hierarchical attention network): a ``Linear(d, 1)`` scores each element, the softmax
    of the scores weighs the elements' features, the weighted sum feeds the classifier.
    The score layer is one unit wide, but the features reach the classifier around it.
    With ``pool_scores``, the classifier reads the scores alone: then it is a bottleneck."""

    def __init__(self, pool_scores: bool = False) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.pool_scores = pool_scores
        self.embed = nn.Linear(4, 16)
        self.score = nn.Linear(16, 1)
        self.gate = nn.Linear(16, 1)
        self.classifier = nn.Linear(1 if pool_scores else 16, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.tanh(self.embed(x))  # (batch, elements, 16)
        weights = torch.softmax(self.score(h), dim=1)  # (batch, elements, 1)
        if self.pool_scores:
            return self.classifier((weights * self.score(h)).sum(dim=1))
        gated = torch.sigmoid(self.gate(h)) * h
        return self.classifier((weights * gated).sum(dim=1))  # (batch, 3)


def _pooling_run(model: nn.Module) -> Report:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(96, 5, 4, generator=g)
    y = (x[:, :, 0].max(dim=1).values > 1).long() + (x[:, :, 1].mean(dim=1) > 0).long()
    return run(
        select=["width-one-bottleneck"],
        model=model,
        data=batches(x, y),
        loss_fn=nn.CrossEntropyLoss(),
        optimizer=torch.optim.Adam(model.parameters()),
    )


@pytest.mark.silent("width-one-bottleneck")
def test_attention_scores_and_gates_of_width_one_are_not_bottlenecks() -> None:
    report = _pooling_run(AttentionPooling())
    assert report.by_check("width-one-bottleneck") == []
    result = report.result("width-one-bottleneck")
    assert result.status.value == "passed"
    assert "scorers or gates" in result.detail
    assert "score" in result.detail and "gate" in result.detail


@pytest.mark.fires("width-one-bottleneck")
def test_a_classifier_that_reads_only_the_scores_sits_behind_a_bottleneck() -> None:
    (finding,) = _pooling_run(AttentionPooling(pool_scores=True)).by_check("width-one-bottleneck")
    assert finding.where.module == "score" and finding.reasons == [24]


class SampledLatent(nn.Module):
    """A VAE's encoder-sample-decoder path: the output is random by design."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.enc = nn.Linear(10, 4)
        self.dec = nn.Linear(2, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mu, logvar = self.enc(x).chunk(2, dim=1)
        # A hand-written exp backward, so that the gradient check runs on this module.
        return self.dec(mu + torch.randn_like(mu) * _Exp.apply(0.5 * logvar))


@pytest.mark.silent("batch-dependence")
@pytest.mark.silent("custom-layer-gradient")
def test_a_sampled_latent_is_neither_batch_mixing_nor_a_wrong_gradient() -> None:
    # Every forward draws new noise; the comparisons must draw the same noise each time.
    x, y = blobs()
    model = SampledLatent()
    report = run(
        select=["batch-dependence", "custom-layer-gradient"],
        model=model,
        data=batches(x, y),
        loss_fn=nn.CrossEntropyLoss(),
        optimizer=torch.optim.Adam(model.parameters(), lr=1e-3),
    )
    assert report.findings == []
    assert "1 user-defined module class(es)" in report.result("custom-layer-gradient").detail


class SequenceFirstLM(nn.Module):
    """A causal Transformer language model on (seq, batch) token ids and a (seq, seq) mask."""

    def __init__(self, vocab: int = 12, d: int = 16) -> None:
        super().__init__()
        self.emb = nn.Embedding(vocab, d)
        self.encoder = nn.TransformerEncoder(
            nn.TransformerEncoderLayer(d, 2, 32, dropout=0.0), 1, enable_nested_tensor=False
        )
        self.out = nn.Linear(d, vocab)

    def forward(self, src: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.out(self.encoder(self.emb(src), mask))


def test_a_sequence_first_model_with_a_mask_is_checked_along_its_batch_axis() -> None:
    torch.manual_seed(0)
    model = SequenceFirstLM()
    tokens = torch.randint(0, 12, (8, 6))  # (seq, batch)
    mask = nn.Transformer.generate_square_subsequent_mask(8)
    data = [((tokens, mask), torch.randint(0, 12, (8 * 6,))) for _ in range(4)]

    def loss_fn(m: nn.Module, batch: tuple) -> torch.Tensor:
        (src, causal), target = batch
        return nn.functional.cross_entropy(m(src, causal).reshape(-1, 12), target)

    report = run(
        select=["batch-dependence", "custom-layer-gradient"],
        model=model,
        data=data,
        loss_fn=loss_fn,
        optimizer=torch.optim.Adam(model.parameters(), lr=1e-3),
        inputs=lambda batch: batch[0],
    )
    # The encoder layer declares batch_first=False: the batch is the tokens' axis 1, and
    # changing one stream leaves the others alone (position 0 of every stream, changed
    # instead, would reach the later positions through the causal attention).
    result = report.result("batch-dependence")
    assert result.status == "passed" and "along axis 1" in result.detail
    assert report.result("custom-layer-gradient").status == "skipped"
    assert report.findings == []


class _OneHot(nn.Module):
    """Integer ids in, one-hot encoded with ``.float()`` inside: float32 whatever the weights."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.lin = nn.Linear(5, 3)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.lin(torch.nn.functional.one_hot(ids, 5).float())


def test_a_model_that_makes_its_own_float32_tensors_says_so_when_it_cannot_run_in_float64() -> None:
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, 5, (64,), generator=g)
    model = _OneHot()
    report = run(
        select=["batch-dependence"],
        model=model,
        data=[(ids[i : i + 16], ids[i : i + 16] % 3) for i in range(0, 64, 16)],
        loss_fn=nn.CrossEntropyLoss(),
        optimizer=torch.optim.Adam(model.parameters(), lr=1e-3),
    )
    result = report.result("batch-dependence")
    assert result.status.value == "skipped" and "does not run in float64" in result.detail


# An encoder and a decoder, each its own network with its own optimiser (the tutorial
# layout); with ``{dim}`` 0 the decoder's attention is normalised over the batch axis.
ENCODER_DECODER = """
import torch
from torch import nn
import torch.nn.functional as F
torch.manual_seed(0)

class Encoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed, self.gru = nn.Embedding(12, 16), nn.GRU(16, 16, batch_first=True)

    def forward(self, x):
        return self.gru(self.embed(x))

class Decoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.query, self.out = nn.Linear(16, 16), nn.Linear(32, 12)

    def forward(self, outputs, hidden):
        q = self.query(hidden[-1]).unsqueeze(1)                       # (B, 1, 16)
        weights = F.softmax((q * outputs).sum(-1), dim={dim})        # (B, T)
        context = (weights.unsqueeze(-1) * outputs).sum(1)            # (B, 16)
        return self.out(torch.cat([context, hidden[-1]], dim=1))      # (B, 12)

encoder, decoder = Encoder(), Decoder()
opt_e = torch.optim.Adam(encoder.parameters(), lr=1e-3)
opt_d = torch.optim.Adam(decoder.parameters(), lr=1e-3)
x = torch.randint(0, 12, (512, 7)); y = x[:, 0]
for epoch in range(2):
    for i in range(0, 512, 32):
        outputs, hidden = encoder(x[i : i + 32])
        loss = F.cross_entropy(decoder(outputs, hidden), y[i : i + 32])
        opt_e.zero_grad(); opt_d.zero_grad(); loss.backward(); opt_e.step(); opt_d.step()
"""


def _encoder_decoder(tmp_path: Path, dim: int) -> object:
    script = tmp_path / "encoder_decoder.py"
    script.write_text(ENCODER_DECODER.replace("{dim}", str(dim)))
    return check_script(
        str(script), phase_steps=0, selection=Selection(select=("batch-dependence",))
    )


@pytest.mark.fires("batch-dependence")
def test_a_decoder_beside_its_encoder_that_mixes_the_batch_is_found(tmp_path: Path) -> None:
    report = _encoder_decoder(tmp_path, 0)
    (finding,) = report.by_check("batch-dependence")
    assert finding.evidence["network"] in ("Encoder", "Decoder")
    assert finding.evidence["relative_change"] > 1e-3


@pytest.mark.silent("batch-dependence")
def test_an_encoder_and_decoder_that_keep_samples_apart_are_silent(tmp_path: Path) -> None:
    report = _encoder_decoder(tmp_path, 1)
    assert report.by_check("batch-dependence") == []
    detail = report.result("batch-dependence").detail
    assert "Decoder:" in detail or "Encoder:" in detail


class TokenClassifier(nn.Module):
    """A class token and one attention layer over a (batch, tokens, features) input; the
    head reads the class token. With ``batch_first`` dropped, attention runs across the
    images at each token position, and the class token, the same in every sample, only
    ever meets copies of itself: every output is the same, whatever the inputs."""

    def __init__(self, batch_first: bool, tokens: int = 5, dim: int = 8) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.embed = nn.Linear(2, dim)
        self.cls = nn.Parameter(torch.randn(1, 1, dim))
        self.attn = nn.MultiheadAttention(dim, 2, batch_first=batch_first)
        self.head = nn.Linear(dim, 3)
        self.tokens = tokens

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.embed(x.view(x.shape[0], self.tokens, 2))  # (batch, tokens, dim)
        h = torch.cat([self.cls.expand(x.shape[0], -1, -1), h], dim=1)  # (batch, 1 + tokens, dim)
        h = h + self.attn(h, h, h, need_weights=False)[0]
        return self.head(h[:, 0])


@pytest.mark.fires("batch-dependence")
def test_attention_across_the_batch_is_found_inside_though_the_outputs_do_not_show_it() -> None:
    model = TokenClassifier(batch_first=False)
    report = _batch_dependence(model)
    (finding,) = report.by_check("batch-dependence")
    assert finding.reasons == [25] and finding.where.module == "attn"
    assert finding.evidence["outputs_unchanged"] and finding.evidence["relative_change"] > 1e-3


class PerSampleEncoder(nn.Module):
    """A hierarchical model in the manner of a hierarchical attention network: each sample
    (a document of 8 "sentences") is encoded by one call of ``sentence_encoder`` on its own
    rows, then pooled. A call's output holds 8 rows, twice the cut batch: every row of the
    call for the changed sample changes, and no other call does."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.sentence_encoder = nn.Sequential(nn.Linear(10, 16), nn.Tanh())
        self.head = nn.Linear(16, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        sentences = x.unsqueeze(1) * torch.linspace(0.5, 1.5, 8)[:, None]  # (batch, 8, 10)
        documents = [self.sentence_encoder(doc).mean(0) for doc in sentences]
        return self.head(torch.stack(documents))


@pytest.mark.silent("batch-dependence")
def test_a_submodule_called_once_per_sample_on_its_rows_mixes_nothing() -> None:
    report = _batch_dependence(PerSampleEncoder())
    assert report.by_check("batch-dependence") == []


class PairwiseScores(nn.Module):
    """Per-sample embeddings, then a similarity matrix of the batch inside the model (a
    submodule's (batch, batch) output, each entry of two samples) that is returned beside
    them; the output scored is per sample. Then a head on tokens flattened with the batch,
    ``(batch * tokens, n)``, with as many columns as the cut batch has samples."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.embed = nn.Linear(2, 4)
        self.head = nn.Linear(4 * 5, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.embed(x.view(x.shape[0] * 5, 2))  # (batch * 5, 4)
        return self.head(tokens.view(x.shape[0], 20))


class Similarity(nn.Module):
    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return z @ z.T  # (batch, batch)


class WithSimilarity(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.inner = PairwiseScores()
        self.similarity = Similarity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.inner(x)
        self.last_similarity = self.similarity(logits)
        return logits


@pytest.mark.silent("batch-dependence")
@pytest.mark.parametrize(
    "build",
    [lambda: TokenClassifier(batch_first=True), WithSimilarity],
    ids=["attention-batch-first", "pairs-and-flattened-tokens"],
)
def test_values_that_keep_samples_apart_inside_are_silent(build: Any) -> None:
    model = build()
    report = _batch_dependence(model)
    assert report.by_check("batch-dependence") == []
    assert report.result("batch-dependence").status == "passed"


def test_the_first_mixing_submodule_is_named_beside_a_mixing_output() -> None:
    model = MixesBatch()
    report = _batch_dependence(model)
    (finding,) = report.by_check("batch-dependence")
    assert finding.evidence["first_mixing_module"] in dict(model.named_modules())
    assert "outputs_unchanged" not in finding.evidence


class SortedPackedLSTM(nn.Module):
    """Sequences sorted by length inside the model, packed, run through an LSTM, unsorted:
    inside, every sample's values sit at another row, and the packed rows interleave the
    samples' time steps; no value of one sample depends on another."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.rnn = nn.LSTM(2, 8, batch_first=True)
        self.proj = nn.Linear(8, 8)
        self.head = nn.Linear(8, 3)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        order = lengths.argsort(descending=True)
        packed = nn.utils.rnn.pack_padded_sequence(x[order], lengths[order], batch_first=True)
        _, (h, _) = self.rnn(packed)  # h: (1, batch, 8), in sorted order
        hidden = self.proj(h[0])  # (batch, 8), still sorted
        return self.head(hidden[order.argsort()])


@pytest.mark.silent("batch-dependence")
def test_a_batch_sorted_and_packed_inside_the_model_keeps_samples_apart() -> None:
    model = SortedPackedLSTM()
    gen = torch.Generator().manual_seed(0)
    data = []
    for _ in range(4):
        x = torch.randn(16, 5, 2, generator=gen)
        lengths = torch.tensor([5, 3, 2, 2] * 4)  # 12 packed rows in the first four: 3 x 4
        data.append(((x, lengths), torch.randint(0, 3, (16,), generator=gen)))

    def loss_fn(m: nn.Module, batch: tuple) -> torch.Tensor:
        (x, lengths), y = batch
        return nn.functional.cross_entropy(m(x, lengths), y)

    report = run(
        select=["batch-dependence"],
        model=model,
        data=data,
        loss_fn=loss_fn,
        optimizer=torch.optim.Adam(model.parameters()),
        inputs=lambda batch: batch[0],
    )
    assert report.by_check("batch-dependence") == []
    assert report.result("batch-dependence").status == "passed"


class PositionsOnTheBatchAxis(nn.Module):
    """Features read as a sequence of 5 positions of 2, a learned position embedding
    added: sliced along the sequence axis (healthy) or, the bug, by the batch axis's size
    and added along it (a sequence-first encoding applied to batch-first tensors)."""

    def __init__(self, along_batch: bool) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.along_batch = along_batch
        self.pe = nn.Parameter(torch.randn(64, 1, 2) if along_batch else torch.randn(1, 64, 2))
        self.head = nn.Linear(10, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        seq = x.view(x.size(0), 5, 2)  # (batch, seq, features)
        pe = self.pe[: seq.size(0)] if self.along_batch else self.pe[:, : seq.size(1)]
        return self.head((seq + pe).flatten(1))


class SamplesInEval(nn.Module):
    """A latent sampled in eval mode too (as many VAEs do): each output is random, so its
    position in the batch says nothing."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Linear(10, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x + 0.1 * torch.randn_like(x))


@pytest.mark.fires("batch-dependence")
def test_a_position_embedding_added_along_the_batch_axis_is_found() -> None:
    report = _batch_dependence(PositionsOnTheBatchAxis(along_batch=True))
    (finding,) = report.by_check("batch-dependence")
    assert finding.reasons == [25] and finding.title.startswith(
        "A sample's output depends on its position"
    )
    assert finding.evidence["order"] == "reversed" and finding.evidence["relative_change"] > 1e-3


@pytest.mark.silent("batch-dependence")
def test_positions_along_the_sequence_and_a_latent_sampled_in_eval_are_silent() -> None:
    for model in (PositionsOnTheBatchAxis(along_batch=False), SamplesInEval()):
        report = _batch_dependence(model)
        (result,) = [r for r in report.checks if r.check == "batch-dependence"]
        assert result.status.value == "passed", result.detail
        assert not report.by_check("batch-dependence")


# A conditional neural process: the model takes a nested query ((context_x, context_y),
# target_x) and tiles each curve's representation over its targets.
NESTED_QUERY = """
import torch
from torch import nn
from torch.distributions import Normal

torch.manual_seed(0)


class CNP(nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(2, 32), nn.ReLU(), nn.Linear(32, 32))
        self.decoder = nn.Sequential(nn.Linear(33, 32), nn.ReLU(), nn.Linear(32, 2))

    def forward(self, query, target_y):
        (context_x, context_y), target_x = query
        batch, targets = target_x.shape[0], target_x.shape[1]
        r = self.encoder(torch.cat([context_x, context_y], -1)).mean(1)
        r = {TILE}
        mu, log_sigma = self.decoder(torch.cat([r, target_x], -1)).chunk(2, -1)
        return Normal(mu, 0.1 + torch.nn.functional.softplus(log_sigma)).log_prob(target_y)


model = CNP()
opt = torch.optim.Adam(model.parameters(), lr=1e-3)
for step in range(40):
    x = torch.rand(16, 12, 1) * 4 - 2
    y = torch.sin(x * (1 + torch.rand(16, 1, 1))) + torch.rand(16, 1, 1)
    query = ((x[:, :6], y[:, :6]), x)
    loss = -model(query, y).mean()
    opt.zero_grad()
    loss.backward()
    opt.step()
"""


def _nested_query_report(tmp_path: Path, tile: str) -> Report:
    path = tmp_path / "cnp.py"
    path.write_text(NESTED_QUERY.replace("{TILE}", tile))
    return check_script(
        str(path), steps=5, phase_steps=0, selection=Selection(select=("batch-dependence",))
    )


@pytest.mark.fires("batch-dependence")
def test_a_tiling_that_mixes_the_batch_inside_a_nested_query_is_found(tmp_path: Path) -> None:
    report = _nested_query_report(tmp_path, "r.repeat(targets, 1).view(batch, targets, -1)")
    (finding,) = report.by_check("batch-dependence")
    assert finding.reasons == [25]


@pytest.mark.silent("batch-dependence")
def test_a_nested_query_is_cut_whole_and_a_right_tiling_is_quiet(tmp_path: Path) -> None:
    report = _nested_query_report(tmp_path, "r.unsqueeze(1).expand(-1, targets, -1)")
    assert report.result("batch-dependence").status.value == "passed"
    assert report.by_check("batch-dependence") == []


class CodesInAFloatMatrix(nn.Module):
    """A tabular model fed one float matrix whose last column holds category codes, cast to
    indices inside (as pytorch-tabnet does); ``mask_over_batch`` normalises its feature mask
    over the batch axis instead of the features."""

    def __init__(self, mask_over_batch: bool) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.embed = nn.Embedding(3, 2)
        self.mask = nn.Linear(10, 10)
        self.head = nn.Linear(10, 3)
        self.dim = 0 if mask_over_batch else 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.cat([x[:, :-1], self.embed(x[:, -1].long())], dim=1)
        return self.head(h * self.mask(h).softmax(self.dim))


def _codes_subject(mask_over_batch: bool) -> Report:
    x, y = blobs()
    x = torch.cat([x[:, :8], (y % 3).float()[:, None]], dim=1)  # codes 0..2, last column
    model = CodesInAFloatMatrix(mask_over_batch)
    return run(
        select=["batch-dependence"],
        model=model,
        data=batches(x, y),
        loss_fn=nn.CrossEntropyLoss(),
        optimizer=torch.optim.Adam(model.parameters(), lr=1e-3),
    )


@pytest.mark.fires("batch-dependence")
def test_category_codes_in_a_float_input_are_changed_by_swapping_samples() -> None:
    # Noise would turn the codes into indices the embedding does not have: the changed
    # sample becomes another real one instead, and the mask over the batch shows.
    (finding,) = _codes_subject(mask_over_batch=True).by_check("batch-dependence")
    assert finding.reasons == [25] and finding.evidence["first_mixing_module"] == "head"


@pytest.mark.silent("batch-dependence")
def test_category_codes_in_a_float_input_with_a_mask_over_features_pass() -> None:
    report = _codes_subject(mask_over_batch=False)
    assert report.by_check("batch-dependence") == []


class _AttentionPooling(nn.Module):
    """Multiple-instance learning: one bag of instances per batch, (1, K, 6) -> (1, 1)."""

    def __init__(self) -> None:
        super().__init__()
        self.feature = nn.Sequential(nn.Linear(6, 16), nn.ReLU())
        self.attention = nn.Linear(16, 1)
        self.classifier = nn.Linear(16, 1)

    def forward(self, bag: torch.Tensor) -> torch.Tensor:
        h = self.feature(bag.squeeze(0))  # (K, 16)
        a = torch.softmax(self.attention(h).t(), dim=1)  # (1, K)
        return self.classifier(a @ h)  # (1, 1)


def test_one_bag_per_batch_is_no_batch_to_cut() -> None:
    # A batch of one sample (a bag of instances) holds fewer samples than the checks cut
    # from it: they take what there is, and batch-dependence says it has nothing to compare.
    g = torch.Generator().manual_seed(0)
    data = [
        (torch.randn(1, int(k), 6, generator=g), torch.tensor([[float(k % 2)]]))
        for k in torch.randint(3, 9, (12,), generator=g)
    ]
    only = ["custom-layer-gradient", "batch-dependence", "reshape-reorders-axes"]
    model = _AttentionPooling()
    report = run(select=only, model=model, data=data, loss_fn=nn.BCEWithLogitsLoss(), steps=12)
    assert {c: report.result(c).status for c in only} == {
        "custom-layer-gradient": "passed",
        "batch-dependence": "skipped",
        "reshape-reorders-axes": "passed",
    }
    assert "at least two samples" in report.result("batch-dependence").detail


class CausalSequenceFirstLM(nn.Module):
    """A language model on sequence-first token ids (seq_len, batch): each position reads
    the running mean of the embeddings up to it, as a causal model does. With ``mix``, the
    bug: a softmax over the batch axis (axis 1) mixes the streams."""

    def __init__(self, vocab: int = 12, mix: bool = False) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.embed, self.head, self.mix = nn.Embedding(vocab, 16), nn.Linear(16, vocab), mix
        self.gate = nn.Linear(16, 1)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        h = self.embed(tokens)  # (seq_len, batch, 16)
        steps = torch.arange(1, h.shape[0] + 1, dtype=h.dtype)[:, None, None]
        h = h.cumsum(0) / steps
        if self.mix:
            h = h * self.gate(h).softmax(dim=1)
        return self.head(h)  # (seq_len, batch, vocab)


def _sequence_first_batches() -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Segments of one token stream per column, seq_len equal to the batch (6 x 6): no
    size, loader or layer says which axis holds the samples."""
    g = torch.Generator().manual_seed(0)
    stream = (torch.arange(6 * 25)[:, None] * 5 + torch.randint(0, 3, (1, 6), generator=g)) % 12
    return [(stream[i : i + 6], stream[i + 1 : i + 7]) for i in range(0, 6 * 24, 6)]


@pytest.mark.parametrize(("mix", "found"), [(False, False), (True, True)])
def test_a_sequence_first_input_read_in_order_is_judged_along_its_batch_axis(
    mix: bool, found: bool
) -> None:
    # Axis 0 (the convention's guess) holds positions: changing one moves only later ones.
    # The samples are then taken along axis 1, where a softmax over the batch still shows.
    model = CausalSequenceFirstLM(mix=mix)
    report = run(
        select=["batch-dependence"],
        model=model,
        data=_sequence_first_batches(),
        loss_fn=SequenceLoss(),
        optimizer=torch.optim.Adam(model.parameters()),
    )
    assert bool(report.by_check("batch-dependence")) == found
    assert "so the samples were taken along axis 1" in report.result("batch-dependence").detail


class DeepKernel(nn.Module):
    """A deep kernel, as Gaussian process regression learns one: per-sample features, then
    the RBF kernel matrix between the batch's samples, (batch, batch), each entry of two
    samples. With ``normalised`` (the bug) it is divided by its sum over the whole batch,
    so every entry depends on every sample."""

    def __init__(self, normalised: bool = False) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.features = nn.Sequential(nn.Linear(10, 8), nn.Tanh(), nn.Linear(8, 2))
        self.normalised = normalised

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.features(x)
        k = torch.exp(-0.5 * torch.cdist(z, z).pow(2))
        return k / k.sum() * k.shape[0] if self.normalised else k


def _gp_nll(model: nn.Module, batch: Any) -> torch.Tensor:
    x, y = batch
    target = y.float()[:, None]
    chol = torch.linalg.cholesky(model(x) + 0.1 * torch.eye(len(x)))
    return 0.5 * (target * torch.cholesky_solve(target, chol)).sum() + chol.diagonal().log().sum()


@pytest.mark.silent("batch-dependence")
def test_a_kernel_matrix_between_the_batchs_samples_keeps_them_apart() -> None:
    # Row i of the kernel holds sample i's similarity to each sample: its entry for a
    # changed sample j is j's to change, and fed in reverse order its columns follow too.
    report = _batch_dependence(DeepKernel(), loss_fn=_gp_nll)
    assert report.by_check("batch-dependence") == []
    assert report.result("batch-dependence").status == "passed"


@pytest.mark.fires("batch-dependence")
def test_a_kernel_normalised_over_the_whole_batch_mixes_it() -> None:
    report = _batch_dependence(DeepKernel(normalised=True), loss_fn=_gp_nll)
    (finding,) = report.by_check("batch-dependence")
    assert finding.reasons == [25]


class OneSentenceTagger(nn.Module):
    """The PyTorch tutorials' LSTM tagger: one sentence of word ids per call, reshaped to
    ``(len, 1, -1)`` for a sequence-first LSTM with a batch of one; a tag score per word."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.embed = nn.Embedding(20, 6)
        self.lstm = nn.LSTM(6, 6)
        self.tags = nn.Linear(6, 3)

    def forward(self, sentence: torch.Tensor) -> torch.Tensor:
        out, _ = self.lstm(self.embed(sentence).view(len(sentence), 1, -1))
        return torch.log_softmax(self.tags(out.view(len(sentence), -1)), dim=1)


def test_one_sentence_per_call_through_a_batch_of_one_is_no_batch() -> None:
    g = torch.Generator().manual_seed(0)
    words = [torch.randint(0, 20, (7,), generator=g) for _ in range(24)]
    data = [(w, (w % 3)) for w in words]
    model = OneSentenceTagger()
    report = run(
        select=["batch-dependence"],
        model=model,
        data=data,
        loss_fn=nn.NLLLoss(),
        optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
    )
    assert report.by_check("batch-dependence") == []
    assert "one sequence per call" in report.result("batch-dependence").detail
