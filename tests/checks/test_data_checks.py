"""Data checks (reasons 1, 3, 7, 10): each fires on a real injected bug, and stays silent
on healthy subjects."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from subjects import batches, blobs, healthy_classifier, mlp, run, serious
from torch import nn
from torch.utils.data import DataLoader, IterableDataset, TensorDataset

from nndoctor.checks.registry import CheckContext, SkipCheck, get_check
from nndoctor.probes.recording import LoaderInfo, Recording, StepRecord

SANITY = (
    "input-not-finite",
    "input-constant",
    "batch-repeated",
    "input-uint8-range",
    "input-channels-last",
)
SHUFFLING = ("targets-sorted", "single-label-batches", "loader-not-shuffled")


# -- small subjects ----------------------------------------------------------------------


def classifier(x: torch.Tensor, y: torch.Tensor, size: int = 32, **extra: Any) -> dict[str, Any]:
    """An MLP classifier on (x, y) fed as consecutive slices (the order given)."""
    model = mlp(features=x.shape[1], classes=int(y.max()) + 1)
    return {
        "model": model,
        "data": batches(x, y, size),
        "loss_fn": nn.CrossEntropyLoss(),
        "optimizer": torch.optim.Adam(model.parameters(), lr=1e-3),
        **extra,
    }


def images(
    n: int = 128, size: int = 8, classes: int = 4, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Unit-range RGB images [n, 3, size, size] whose class sets the brightest channel."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, classes, (n,), generator=g)
    x = torch.rand(n, 3, size, size, generator=g) * 0.6
    x[torch.arange(n), y % 3] += 0.4 * (y[:, None, None] // 3 + 1) / 2
    return x.clamp(0, 1), y


class SmallConvNet(nn.Module):
    def __init__(self, in_channels: int = 3, classes: int = 4) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, 8, 3, padding=1)
        self.head = nn.Linear(8, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # [N, C, H, W] → [N, 8, H, W] → pooled [N, 8] → logits [N, classes]
        return self.head(torch.relu(self.conv(x)).mean((2, 3)))


def conv_subject(x: torch.Tensor, y: torch.Tensor, in_channels: int = 3) -> dict[str, Any]:
    torch.manual_seed(0)
    model = SmallConvNet(in_channels, int(y.max()) + 1)
    return {
        "model": model,
        "data": batches(x, y, 16),
        "loss_fn": nn.CrossEntropyLoss(),
        "optimizer": torch.optim.Adam(model.parameters(), lr=1e-3),
    }


def standardised(x: torch.Tensor) -> torch.Tensor:
    return (x - x.mean((0, 2, 3), keepdim=True)) / x.std((0, 2, 3), keepdim=True)


class TokenModel(nn.Module):
    """Token ids [N, T] (any integer dtype) → embeddings → mean over T → logits."""

    def __init__(self, vocab: int = 256, classes: int = 3) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, 16)
        self.head = nn.Linear(16, classes)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(tokens.long()).mean(1))


def token_subject(dtype: torch.dtype) -> dict[str, Any]:
    g = torch.Generator().manual_seed(0)
    tokens = torch.randint(0, 200, (256, 12), generator=g).to(dtype)
    y = (tokens[:, 0] % 3).long()
    torch.manual_seed(0)
    model = TokenModel()
    return {
        "model": model,
        "data": batches(tokens, y),
        "loss_fn": nn.CrossEntropyLoss(),
        "optimizer": torch.optim.Adam(model.parameters(), lr=1e-3),
    }


# -- data sanity -------------------------------------------------------------------------


@pytest.mark.silent("input-not-finite")
@pytest.mark.silent("input-constant")
@pytest.mark.silent("batch-repeated")
@pytest.mark.silent("targets-sorted")
@pytest.mark.silent("single-label-batches")
def test_healthy_classifier_is_silent() -> None:
    report = run(select=SANITY + SHUFFLING, **healthy_classifier())
    assert serious(report) == []
    passed = {c.check for c in report.checks if c.status.value == "passed"}
    assert {"input-not-finite", "input-constant", "batch-repeated", "targets-sorted"} <= passed


@pytest.mark.silent("input-uint8-range")
@pytest.mark.silent("input-channels-last")
@pytest.mark.silent("input-not-finite")
def test_healthy_conv_net_on_standardised_images_is_silent() -> None:
    x, y = images()
    report = run(select=SANITY + SHUFFLING, **conv_subject(standardised(x), y))
    assert serious(report) == []
    statuses = {c.check: c.status.value for c in report.checks}
    assert statuses["input-channels-last"] == "passed"
    assert statuses["input-uint8-range"] == "passed"


@pytest.mark.fires("input-not-finite")
def test_nan_in_inputs_is_an_error_at_its_step() -> None:
    x, y = blobs()
    x[70, 4] = float("nan")  # in the third batch of 32
    report = run(select=["input-not-finite"], **classifier(x, y))
    (f,) = report.by_check("input-not-finite")
    assert f.severity.value == "error"
    assert set(f.reasons) == {1, 37}
    assert f.where.step == 2 and f.evidence["first_step"] == 2
    # 8 batches cycled over 20 steps: the bad one is seen at steps 2, 10 and 18.
    assert f.evidence["nonfinite_steps"] == 3


@pytest.mark.fires("input-constant")
def test_all_zero_inputs_are_an_error() -> None:
    x, y = blobs()
    report = run(select=["input-constant"], **classifier(torch.zeros_like(x), y))
    (f,) = report.by_check("input-constant")
    assert f.severity.value == "error" and set(f.reasons) == {1, 3}
    assert f.evidence["all_zero_steps"] == f.evidence["steps"] == 20
    assert "all zeros" in f.message


@pytest.mark.fires("input-constant")
def test_some_constant_batches_are_a_warning() -> None:
    x, y = blobs()
    x[:32] = 0.5  # the first batch of every epoch is one grey value
    report = run(select=["input-constant"], **classifier(x, y))
    (f,) = report.by_check("input-constant")
    assert f.severity.value == "warning"
    assert f.evidence["constant_steps"] == 3 and f.evidence["all_zero_steps"] == 0
    assert f.evidence["value"] == pytest.approx(0.5)


@pytest.mark.fires("input-constant")
@pytest.mark.parametrize("value", [0.7, 0.5, 255.0])
@pytest.mark.parametrize("size", [32, 16])
def test_constant_image_batches_are_reported(value: float, size: int) -> None:
    # Image-sized batches: a one-pass float32 variance gave these a std near 1e-2.
    x, y = images(n=64, size=size)
    report = run(select=["input-constant"], **conv_subject(torch.full_like(x, value), y))
    (f,) = report.by_check("input-constant")
    assert f.severity.value == "error" and 1 in f.reasons
    assert f.evidence["value"] == pytest.approx(value)


@pytest.mark.fires("batch-repeated")
def test_a_source_that_repeats_one_batch() -> None:
    x, y = blobs()
    first = batches(x, y)[0]
    kwargs = classifier(x, y)
    kwargs["data"] = lambda: iter([first] * 50)  # next(iter(loader)) every step
    report = run(select=["batch-repeated"], **kwargs)
    (f,) = report.by_check("batch-repeated")
    assert f.severity.value == "error" and set(f.reasons) == {1, 3}
    assert f.evidence["repeated_steps"] == 19 and f.evidence["share"] == 1.0


@pytest.mark.fires("input-uint8-range")
def test_raw_pixels_to_a_conv_net() -> None:
    x, y = images()
    raw = (x * 255).round()
    report = run(select=["input-uint8-range"], **conv_subject(raw, y))
    (f,) = report.by_check("input-uint8-range")
    assert f.severity.value == "warning" and f.reasons == [1]
    assert f.evidence["min"] == 0 and 200 < f.evidence["max"] <= 255
    assert f.where.module == "conv"


@pytest.mark.fires("input-uint8-range")
def test_uint8_images_cast_inside_the_model() -> None:
    x, y = images()
    kwargs = conv_subject((x * 255).round().to(torch.uint8), y)
    kwargs["model"] = _CastToFloat(kwargs["model"])  # same parameters: the optimizer still fits
    report = run(select=["input-uint8-range"], **kwargs)
    (f,) = report.by_check("input-uint8-range")
    assert f.evidence["dtype"] == "uint8"


class _CastToFloat(nn.Module):
    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x.float())


@pytest.mark.silent("input-uint8-range")
def test_unit_range_images_and_token_ids_are_not_raw_pixels() -> None:
    x, y = images()
    report = run(select=["input-uint8-range"], **conv_subject(x, y))
    assert report.by_check("input-uint8-range") == []
    # uint8 token ids to an nn.Embedding are ids, not pixels.
    report = run(select=["input-uint8-range"], **token_subject(torch.uint8))
    assert report.by_check("input-uint8-range") == []
    status = {c.check: c for c in report.checks}["input-uint8-range"]
    assert status.status.value == "skipped" and "Embedding" in status.detail


@pytest.mark.fires("input-channels-last")
def test_nhwc_images_to_a_conv_built_with_in_channels_h() -> None:
    x, y = images(size=8)
    nhwc = standardised(x).permute(0, 2, 3, 1).contiguous()  # [N, 8, 8, 3]
    report = run(select=["input-channels-last"], **conv_subject(nhwc, y, in_channels=8))
    (f,) = report.by_check("input-channels-last")
    assert f.severity.value == "error" and f.reasons == [1]
    assert f.where.module == "conv"
    assert f.evidence["shape"] == [16, 8, 8, 3] and f.evidence["in_channels"] == 8


# -- shuffling ---------------------------------------------------------------------------


def sorted_blobs(classes: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    x, y = blobs(classes=classes)
    order = torch.argsort(y, stable=True)
    return x[order], y[order]


@pytest.mark.fires("targets-sorted")
@pytest.mark.fires("single-label-batches")
def test_targets_sorted_by_class() -> None:
    x, y = sorted_blobs()
    report = run(select=SHUFFLING, **classifier(x, y))
    (f,) = report.by_check("targets-sorted")
    assert f.severity.value == "warning" and f.reasons == [7]
    assert f.evidence["class_drift_ratio"] > 3
    assert f.evidence["sortedness"] == 1.0
    (g,) = report.by_check("single-label-batches")
    assert 10 in g.reasons
    assert g.evidence["share"] >= 0.5 and g.evidence["expected_share"] < 0.01


@pytest.mark.fires("single-label-batches")
@pytest.mark.fires("targets-sorted")
def test_single_class_batches_in_long_runs() -> None:
    x, y = sorted_blobs()
    report = run(select=SHUFFLING, **classifier(x, y, size=8))
    (g,) = report.by_check("single-label-batches")
    assert set(g.reasons) == {7, 10}  # runs of one class: sorted data
    assert g.evidence["single_label_batches"] >= 18
    (f,) = report.by_check("targets-sorted")
    assert f.evidence["longest_run"] >= 4


@pytest.mark.fires("single-label-batches")
def test_binary_targets_one_class_per_batch() -> None:
    x, y = sorted_blobs(classes=2)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(10, 16), nn.ReLU(), nn.Linear(16, 1))
    data = [(xb, yb.float()[:, None]) for xb, yb in batches(x, y, 16)]
    report = run(
        select=["single-label-batches"],
        model=model,
        data=data,
        loss_fn=nn.BCEWithLogitsLoss(),
        optimizer=torch.optim.Adam(model.parameters(), lr=1e-3),
    )
    (g,) = report.by_check("single-label-batches")
    assert g.evidence["classes"] == 2 and g.evidence["share"] >= 0.9


@pytest.mark.fires("single-label-batches")
def test_every_batch_the_same_class() -> None:
    x, y = blobs(n=1024, classes=4)
    order = torch.argsort(y, stable=True)
    report = run(select=["single-label-batches"], **classifier(x[order], y[order], size=8))
    (g,) = report.by_check("single-label-batches")
    assert g.evidence["classes_seen"] == 1 and g.evidence["classes"] == 4
    assert set(g.reasons) == {7, 10}


def test_a_run_of_the_class_holding_most_of_the_data_is_no_evidence() -> None:
    from nndoctor.checks.data.shuffling import _Mix, majority_chance, run_chance

    # A class holding 62.5% of 32-sample batches is their majority about 90% of the
    # time: 19 such batches in a row arise by chance; 10 of a 50/50 class do not.
    assert 0.85 < majority_chance([0.375, 0.625], 32, 1) < 0.95
    mostly = [_Mix(i, [12.0, 20.0], 32, 32) for i in range(20)]
    assert run_chance(mostly, 19, 1) > 0.05
    halves = [_Mix(i, [32.0, 0.0] if i < 10 else [0.0, 32.0], 32, 32) for i in range(20)]
    assert run_chance(halves, 10, 0) < 0.05


@pytest.mark.fires("targets-sorted")
def test_regression_targets_sorted() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(512, 6, generator=g)
    target = x @ torch.randn(6, 1, generator=g)
    order = torch.argsort(target[:, 0])
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 1))
    report = run(
        select=["targets-sorted"],
        model=model,
        data=batches(x[order], target[order]),
        loss_fn=nn.MSELoss(),
        optimizer=torch.optim.Adam(model.parameters(), lr=1e-3),
    )
    (f,) = report.by_check("targets-sorted")
    assert f.evidence["sortedness"] == 1.0


@pytest.mark.silent("targets-sorted")
@pytest.mark.silent("single-label-batches")
def test_in_batch_order_with_the_same_mix_every_step_is_fine() -> None:
    # Built on purpose in class order (all four rotations of eight images, or contrastive
    # labels arange(N)): the batch gradient does not depend on the order inside a batch.
    g = torch.Generator().manual_seed(0)
    data = [
        (torch.randn(32, 10, generator=g), torch.arange(4).repeat_interleave(8)) for _ in range(8)
    ]
    model = mlp(classes=4)
    report = run(
        select=SHUFFLING,
        model=model,
        data=data,
        loss_fn=nn.CrossEntropyLoss(),
        optimizer=torch.optim.Adam(model.parameters(), lr=1e-3),
    )
    assert serious(report) == []
    status = {c.check: c for c in report.checks}
    assert status["targets-sorted"].status.value == "passed"
    assert "ratio 0.00" in status["targets-sorted"].detail


@pytest.mark.silent("single-label-batches")
@pytest.mark.silent("targets-sorted")
def test_heavy_imbalance_alone_is_not_single_label_batches() -> None:
    # 97% class 0, shuffled: many batches hold class 0 only, as random sampling predicts.
    g = torch.Generator().manual_seed(1)
    x = torch.randn(640, 10, generator=g)
    y = (torch.rand(640, generator=g) < 0.03).long()
    y[0] = 1
    report = run(select=SHUFFLING, **classifier(x, y))
    assert serious(report) == []
    detail = {c.check: c.detail for c in report.checks}["single-label-batches"]
    assert "hold one class" in detail


@pytest.mark.fires("loader-not-shuffled")
def test_a_training_dataloader_without_shuffle_over_data_stored_by_class() -> None:
    x, y = blobs()
    order = y.argsort(stable=True)
    kwargs = classifier(x[order], y[order])
    kwargs["data"] = DataLoader(TensorDataset(x[order], y[order]), batch_size=32)
    report = run(select=["loader-not-shuffled"], **kwargs)
    (f,) = report.by_check("loader-not-shuffled")
    assert f.severity.value == "warning" and f.reasons == [7]
    assert f.evidence["sampler"] == "SequentialSampler" and f.evidence["dataset_len"] == 256
    assert f.evidence["batches_ordered"] and "differ beyond chance" in f.message


@pytest.mark.silent("loader-not-shuffled")
def test_an_unshuffled_loader_over_data_stored_at_random_is_advice() -> None:
    # The quickstart tutorial's training loader: no shuffle, over a data set whose stored
    # order is already random; its batches are random draws, every epoch the same ones.
    x, y = blobs()
    kwargs = classifier(x, y)
    kwargs["data"] = DataLoader(TensorDataset(x, y), batch_size=32)
    report = run(select=["loader-not-shuffled"], **kwargs)
    (f,) = report.by_check("loader-not-shuffled")
    assert f.severity.value == "info" and not f.evidence["batches_ordered"]
    assert "as random draws of the data would" in f.message


@pytest.mark.silent("loader-not-shuffled")
def test_a_shuffled_dataloader_passes() -> None:
    x, y = blobs()
    kwargs = classifier(x, y)
    kwargs["data"] = DataLoader(TensorDataset(x, y), batch_size=32, shuffle=True)
    report = run(select=SHUFFLING, **kwargs)
    assert serious(report) == []
    assert {c.check: c.status.value for c in report.checks}["loader-not-shuffled"] == "passed"


class _Stream(IterableDataset):
    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.x, self.y = x, y

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(zip(self.x, self.y, strict=True))


def test_an_iterable_dataset_is_not_judged() -> None:
    x, y = blobs()
    kwargs = classifier(x, y)
    kwargs["data"] = DataLoader(_Stream(x, y), batch_size=32)
    report = run(select=["loader-not-shuffled"], **kwargs)
    status = {c.check: c for c in report.checks}["loader-not-shuffled"]
    assert status.status.value == "skipped" and "IterableDataset" in status.detail


def _run_check(check_id: str, recording: Recording) -> CheckContext:
    ctx = CheckContext(spec=get_check(check_id), subject=None, recording=recording)
    get_check(check_id).func(ctx)
    return ctx


def test_an_unshuffled_evaluation_loader_is_not_judged() -> None:
    def info(index: int, shuffle: bool, under_no_grad: bool) -> LoaderInfo:
        sampler = "RandomSampler" if shuffle else "SequentialSampler"
        return LoaderInfo(
            index, sampler, shuffle, 32, 1000, "TensorDataset", False, 0, under_no_grad
        )

    rec = Recording(
        steps=[StepRecord(step=i, loader=0) for i in range(5)],
        loaders=[info(0, True, False), info(1, False, True)],
    )
    assert _run_check("loader-not-shuffled", rec).findings == []
    # The same loaders, but the unshuffled one fed the training steps.
    rec.loaders = [info(0, False, False), info(1, True, True)]
    (f,) = _run_check("loader-not-shuffled", rec).findings
    assert f.evidence["loader"] == 0
    # A loader seen only under no_grad (validation) is never judged.
    rec.steps = [StepRecord(step=i, loader=1) for i in range(5)]
    with pytest.raises(SkipCheck):
        _run_check("loader-not-shuffled", rec)


# Minibatch node classification: the model reads the whole feature matrix and the node ids
# of the batch (a DataLoader over the training nodes); ``{draw}`` gives each step its ids.
SAMPLED_NODES = """
import torch, torch.nn as nn, torch.nn.functional as F
from torch.utils.data import DataLoader
torch.manual_seed(0)
labels = torch.randint(0, 4, (600,))
features = torch.randn(4, 16)[labels] + torch.randn(600, 16)

class NodeClassifier(nn.Module):
    def __init__(self):
        super().__init__()
        self.hidden, self.out = nn.Linear(16, 32), nn.Linear(32, 4)

    def forward(self, x, nodes):
        return self.out(F.relu(self.hidden(x[nodes])))

model = NodeClassifier()
opt = torch.optim.Adam(model.parameters(), lr=1e-2)
loader = DataLoader(torch.arange(500), batch_size=32, shuffle=True)
for epoch in range(3):
    for nodes in loader:
        nodes = {draw}
        loss = F.cross_entropy(model(features, nodes), labels[nodes])
        opt.zero_grad(); loss.backward(); opt.step()
"""


def _sampled_nodes(tmp_path: Any, draw: str) -> Any:
    from nndoctor.engine import Selection, check_script

    path = tmp_path / "nodes.py"
    path.write_text(SAMPLED_NODES.replace("{draw}", draw))
    return check_script(str(path), phase_steps=0, selection=Selection(select=("batch-repeated",)))


@pytest.mark.silent("batch-repeated")
def test_new_node_ids_beside_the_same_feature_matrix_are_a_new_batch(tmp_path: Any) -> None:
    report = _sampled_nodes(tmp_path, "nodes")
    assert report.by_check("batch-repeated") == []
    assert report.result("batch-repeated").detail.startswith("0 of 19 steps repeated")


@pytest.mark.fires("batch-repeated")
def test_the_same_node_ids_at_every_step_repeat_the_batch(tmp_path: Any) -> None:
    # A new iterator of an unshuffled loader at every step: its first batch each time.
    report = _sampled_nodes(tmp_path, "next(iter(DataLoader(torch.arange(500), batch_size=32)))")
    (f,) = report.by_check("batch-repeated")
    assert f.evidence["share"] == 1.0
