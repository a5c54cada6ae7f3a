"""The dataset as a whole: class balance, its size, batch size against it."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import torch
from subjects import blobs, mlp, run
from torch import nn
from torch.nn import functional as F
from torch.nn.modules.loss import _Loss
from torch.utils.data import DataLoader, TensorDataset

import nndoctor
from nndoctor.checks.fingerprints import distinct_rows
from nndoctor.engine import Selection, check_script


def _loader(x: torch.Tensor, y: torch.Tensor, batch_size: int = 32) -> DataLoader:
    return DataLoader(
        TensorDataset(x, y),
        batch_size=batch_size,
        shuffle=True,
        generator=torch.Generator().manual_seed(0),
    )


def _check(
    select: list[str], x: torch.Tensor, y: torch.Tensor, batch_size: int = 32, **kwargs
) -> object:
    model = mlp(classes=int(y.max()) + 1)
    return run(
        select=select,
        model=model,
        data=_loader(x, y, batch_size),
        loss_fn=nn.CrossEntropyLoss(**kwargs),
        optimizer=torch.optim.Adam(model.parameters(), lr=1e-3),
    )


@pytest.mark.silent("class-imbalance")
@pytest.mark.silent("too-few-examples")
@pytest.mark.silent("batch-too-large")
def test_a_balanced_dataset_of_fair_size_with_small_batches() -> None:
    x, y = blobs(n=512)
    report = _check(["class-imbalance", "too-few-examples", "batch-too-large"], x, y)
    assert report.findings == []
    assert "16 step(s) per epoch" in report.result("batch-too-large").detail


@pytest.mark.fires("class-imbalance")
def test_a_rare_class_without_weights_is_reported_and_weights_silence_it() -> None:
    x, y = blobs(n=1024)
    y = torch.where(torch.rand(1024, generator=torch.Generator().manual_seed(0)) < 0.95, 0, y)
    (finding,) = _check(["class-imbalance"], x, y).by_check("class-imbalance")
    assert finding.reasons == [8] and finding.evidence["ratio"] >= 10
    weighted = _check(["class-imbalance"], x, y, weight=torch.tensor([0.1, 1.0, 1.0]))
    assert weighted.by_check("class-imbalance") == []


def _moderately_imbalanced() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Three classes at about 70 / 20 / 10 % (below the imbalance ratio that warns without
    weights), and the counts of the whole set."""
    x, _ = blobs(n=1024)
    u = torch.rand(1024, generator=torch.Generator().manual_seed(1))
    y = torch.where(u < 0.7, 0, torch.where(u < 0.9, 1, 2))
    return x, y, torch.bincount(y, minlength=3).float()


@pytest.mark.fires("class-imbalance")
def test_class_weights_computed_from_the_counts_not_their_inverse_are_reported() -> None:
    x, y, counts = _moderately_imbalanced()
    report = _check(["class-imbalance"], x, y, weight=counts / counts.sum())
    (finding,) = report.by_check("class-imbalance")
    assert finding.reasons == [8] and "favour the frequent classes" in finding.title
    assert finding.evidence["pairs"] == 3


@pytest.mark.silent("class-imbalance")
def test_inverse_frequency_class_weights_pass() -> None:
    x, y, counts = _moderately_imbalanced()
    for weight in (counts.sum() / (3 * counts), (counts.sum() / counts).sqrt()):
        report = _check(["class-imbalance"], x, y, weight=weight)
        assert report.by_check("class-imbalance") == []
        assert report.result("class-imbalance").status.value == "passed"


def _binary(pos_weight: float) -> object:
    """A binary classifier on about 20% positives, trained with ``pos_weight``."""
    x, _ = blobs(n=1024)
    y = (torch.rand(1024, 1, generator=torch.Generator().manual_seed(2)) < 0.2).float()
    model = mlp(classes=1)
    return run(
        select=["class-imbalance"],
        model=model,
        data=_loader(x, y),
        loss_fn=nn.BCEWithLogitsLoss(pos_weight=torch.tensor([pos_weight])),
        optimizer=torch.optim.Adam(model.parameters(), lr=1e-3),
    )


@pytest.mark.fires("class-imbalance")
def test_a_pos_weight_of_positives_over_negatives_is_reported() -> None:
    # The inverse of the usual negatives / positives: the rare positives weigh a quarter.
    (finding,) = _binary(0.25).by_check("class-imbalance")
    assert finding.reasons == [8] and "favour the frequent classes" in finding.title
    negatives, positives = finding.evidence["class_counts"]
    assert negatives > 3 * positives and finding.evidence["class_weights"] == [1.0, 0.25]


@pytest.mark.silent("class-imbalance")
def test_a_pos_weight_of_negatives_over_positives_passes() -> None:
    report = _binary(4.0)
    assert report.by_check("class-imbalance") == []
    assert "pos_weight 4" in report.result("class-imbalance").detail


@pytest.mark.fires("too-few-examples")
def test_two_examples_per_class() -> None:
    x, y = blobs(n=20, classes=10)
    (finding,) = _check(["too-few-examples"], x, y, batch_size=4).by_check("too-few-examples")
    assert finding.reasons == [9] and finding.evidence["per_class"] == 2


class _TwoViews(nn.Module):
    """Scores every first view of the batch against every second view: (N, N) logits."""

    def __init__(self) -> None:
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 16))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z1, z2 = self.encoder(x[:, 0]), self.encoder(x[:, 1])
        return F.normalize(z1, dim=1) @ F.normalize(z2, dim=1).T / 0.1


class _InfoNCE(_Loss):
    """The positive of row i is column i (a criterion: applied to the model's output)."""

    def forward(self, logits: torch.Tensor, _: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits, torch.arange(len(logits)))


def test_positions_in_the_batch_are_no_classes_of_the_data() -> None:
    # InfoNCE: 1024 pairs in batches of 128, target arange(128): 128 "classes", 8 per
    # class if they were classes of the data set; they are positions in each batch.
    g = torch.Generator().manual_seed(0)
    base = torch.randn(1024, 1, 8, generator=g)
    views = base + 0.1 * torch.randn(1024, 2, 8, generator=g)
    model = _TwoViews()
    report = run(
        select=["too-few-examples"],
        model=model,
        data=_loader(views, torch.zeros(1024), batch_size=128),
        loss_fn=_InfoNCE(),
        optimizer=torch.optim.Adam(model.parameters(), lr=1e-3),
    )
    assert report.by_check("too-few-examples") == []
    assert "in-batch positions" in report.result("too-few-examples").detail


@pytest.mark.fires("batch-too-large")
def test_a_batch_of_nearly_the_whole_dataset() -> None:
    x, y = blobs(n=600)
    (finding,) = _check(["batch-too-large"], x, y, batch_size=512).by_check("batch-too-large")
    assert finding.reasons == [11] and finding.evidence["steps_per_epoch"] == 2


@pytest.mark.silent("class-imbalance")
def test_ignored_targets_are_not_counted_as_class_zero() -> None:
    # Balanced classes, but most targets are ignore_index (-100), as for unlabelled pixels.
    x, y = blobs(n=1024)
    y = torch.where(torch.rand(1024, generator=torch.Generator().manual_seed(0)) < 0.8, -100, y)
    model = mlp(classes=3)
    report = run(
        select=["class-imbalance"],
        model=model,
        data=_loader(x, y),
        loss_fn=nn.CrossEntropyLoss(ignore_index=-100),
        optimizer=torch.optim.Adam(model.parameters(), lr=1e-3),
    )
    assert report.by_check("class-imbalance") == []


class _TinyLanguageModel(nn.Module):
    def __init__(self, vocab: int) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.embed = nn.Embedding(vocab, 16)
        self.out = nn.Linear(16, vocab)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.out(self.embed(tokens)).transpose(
            1, 2
        )  # (batch, vocab, time) for cross_entropy


def _skewed_text(n: int = 8192, vocab: int = 30) -> torch.Tensor:
    """Token ids with Zipf-like frequencies: the most common is ~100x the rarest."""
    weights = 1.0 / torch.arange(1, vocab + 1, dtype=torch.float) ** 1.4
    return torch.multinomial(
        weights, n, replacement=True, generator=torch.Generator().manual_seed(0)
    )


def _sequence_check(x: torch.Tensor, y: torch.Tensor, vocab: int = 30) -> object:
    model = _TinyLanguageModel(vocab)
    data = [(x[i : i + 8], y[i : i + 8]) for i in range(0, len(x), 8)]
    return run(
        select=["class-imbalance"],
        model=model,
        data=data,
        loss_fn=nn.CrossEntropyLoss(),
        optimizer=torch.optim.Adam(model.parameters(), lr=1e-3),
    )


@pytest.mark.silent("class-imbalance")
def test_next_token_targets_are_the_texts_own_frequencies() -> None:
    text = _skewed_text()
    windows = text[: 64 * 33].view(64, 33)
    report = _sequence_check(windows[:, :-1], windows[:, 1:])  # y is x one position on
    assert report.by_check("class-imbalance") == []
    assert report.result("class-imbalance").status.value == "passed"
    assert "next-token" in report.result("class-imbalance").detail


@pytest.mark.silent("class-imbalance")
def test_autoregressive_targets_past_the_first_receptive_field_are_the_signals_own() -> None:
    # A WaveNet-style loss leaves out the first receptive field: targets[:, rf:] against
    # inputs a position behind, shorter than the input along time.
    windows = _skewed_text()[: 64 * 41].view(64, 41)
    x, y, rf = windows[:, :-1], windows[:, 1:], 8
    model = _TinyLanguageModel(30)
    report = run(
        select=["class-imbalance"],
        model=model,
        data=[(x[i : i + 8], y[i : i + 8]) for i in range(0, 64, 8)],
        loss_fn=lambda m, b: F.cross_entropy(m(b[0])[:, :, rf:], b[1][:, rf:]),
        optimizer=torch.optim.Adam(model.parameters(), lr=1e-3),
    )
    assert report.by_check("class-imbalance") == []
    assert "next-token" in report.result("class-imbalance").detail


@pytest.mark.silent("class-imbalance")
def test_skewed_tags_per_token_are_the_datas_own_structure() -> None:
    # A tag per token (32 per sample), Zipf-skewed like "O" against names: no choice of
    # samples sets these frequencies, so they are noted, not warned about.
    text = _skewed_text()
    windows = text[: 64 * 33].view(64, 33)
    report = _sequence_check(windows[:, :-1], windows[:, :-1])  # tagging
    assert report.by_check("class-imbalance") == []
    assert "32 class targets per sample" in report.result("class-imbalance").detail


SAMPLER_SCRIPT = """
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset, WeightedRandomSampler
g = torch.Generator().manual_seed(0)
y = torch.cat([torch.zeros(1800), torch.ones(150), torch.full((50,), 2.0)]).long()
x = torch.randn(2000, 8, generator=g) + y.float().unsqueeze(1)
counts = torch.bincount(y).float()
weights = {weights}
sampler = WeightedRandomSampler(weights, num_samples=len(y), generator=g)
loader = DataLoader(TensorDataset(x, y), batch_size=64, sampler=sampler)
model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3))
opt = torch.optim.Adam(model.parameters(), 1e-3)
for xb, yb in loader:
    opt.zero_grad()
    nn.functional.cross_entropy(model(xb), yb).backward()
    opt.step()
"""


def _sampled(tmp_path: Path, weights: str) -> nndoctor.Report:
    path = tmp_path / "sampled.py"
    path.write_text(SAMPLER_SCRIPT.format(weights=weights))
    return check_script(str(path), steps=20, selection=Selection(select=("class-imbalance",)))


@pytest.mark.silent("class-imbalance")
def test_a_sampler_weighted_by_inverse_class_frequency_balances_the_batches(
    tmp_path: Path,
) -> None:
    report = _sampled(tmp_path, "1.0 / counts[y]")
    assert report.by_check("class-imbalance") == []
    assert report.result("class-imbalance").status == "passed"


@pytest.mark.fires("class-imbalance")
def test_a_sampler_weighted_by_the_counts_makes_rare_classes_rarer(tmp_path: Path) -> None:
    report = _sampled(tmp_path, "counts[y]")
    (finding,) = report.by_check("class-imbalance")
    assert finding.reasons == [8]
    assert "WeightedRandomSampler drew" in finding.message


def _features(n: int, features: int = 20, distinct: int | None = None) -> tuple[torch.Tensor, ...]:
    """``n`` samples of ``features`` features and their class; with ``distinct``, the rows
    are copies of that many samples."""
    g = torch.Generator().manual_seed(0)
    rows = distinct or n
    x = torch.randn(rows, features, generator=g)
    y = (x[:, 0] > 0).long()
    index = torch.arange(n) % rows
    return x[index], y[index]


def _check_repeats(x: torch.Tensor, y: torch.Tensor, **loader: object) -> object:
    model = mlp(features=x.shape[1], classes=2)
    data = DataLoader(TensorDataset(x, y), batch_size=32, **loader)
    return run(
        select=["samples-repeat"],
        model=model,
        data=data,
        loss_fn=nn.CrossEntropyLoss(),
        optimizer=torch.optim.Adam(model.parameters(), lr=1e-3),
    )


@pytest.mark.fires("samples-repeat")
def test_a_dataset_of_copies_of_a_few_samples_is_reported() -> None:
    x, y = _features(512, distinct=8)
    report = _check_repeats(x, y, shuffle=True, generator=torch.Generator().manual_seed(0))
    (finding,) = report.by_check("samples-repeat")
    assert finding.reasons == [3, 9]
    assert finding.evidence["distinct"] <= 8 * finding.evidence["steps"]
    assert finding.evidence["share"] <= 0.25


@pytest.mark.silent("samples-repeat")
def test_distinct_samples_drawn_with_replacement_are_no_copies() -> None:
    # A sampler with replacement repeats a sample within a batch now and then, by chance.
    x, y = _features(512)
    sampler = torch.utils.data.RandomSampler(
        TensorDataset(x, y), replacement=True, generator=torch.Generator().manual_seed(0)
    )
    report = _check_repeats(x, y, sampler=sampler)
    assert report.by_check("samples-repeat") == []
    assert report.result("samples-repeat").status.value == "passed"
    assert "distinct samples within their batches" in report.result("samples-repeat").detail


def _replay_memory(states: torch.Tensor, loss_fn: Any) -> Any:
    """``samples-repeat`` on ``states`` drawn 64 at a time, each with a random return."""
    returns = torch.randn(len(states), 1, generator=torch.Generator().manual_seed(1))
    model = mlp(features=states.shape[1], classes=1)
    return run(
        select=["samples-repeat"],
        model=model,
        data=DataLoader(TensorDataset(states, returns), batch_size=64, shuffle=True),
        loss_fn=loss_fn,
        optimizer=torch.optim.Adam(model.parameters(), lr=1e-3),
    )


@pytest.mark.silent("samples-repeat")
def test_inputs_that_recur_with_different_targets_are_distinct_rows() -> None:
    # A replay memory over a few states (a row and a column, each one-hot): each state
    # recurs, with the outcome of each move made from it as its target. A row is the input
    # with its target.
    g = torch.Generator().manual_seed(0)
    cells = torch.randint(0, 6, (512,), generator=g)
    states = torch.eye(20)[cells // 3] + torch.eye(20)[10 + cells % 3]
    report = _replay_memory(states, nn.SmoothL1Loss())
    result = report.result("samples-repeat")
    assert report.by_check("samples-repeat") == []
    assert result.status.value == "passed" and "its input and its target" in result.detail


def test_one_hot_states_recur_by_nature() -> None:
    # A replay memory of one-hot states under a loss written by hand (no target to pair
    # with): an input space of 20 values, drawn 64 at a time.
    states = torch.eye(20)[torch.randint(0, 20, (512,), generator=torch.Generator().manual_seed(0))]
    by_hand = _replay_memory(states, lambda net, batch: ((net(batch[0]) - batch[1]) ** 2).mean())
    result = by_hand.result("samples-repeat")
    assert result.status.value == "skipped" and "one-hot" in result.detail


def test_distinct_rows_count_an_input_once_per_target() -> None:
    assert distinct_rows([1.0, 1.0, 1.0, 2.0], [5.0, 5.0, 6.0, 5.0]) == 3
    assert distinct_rows([1.0, 1.0 + 1e-9, math.nan], [5.0, 5.0, 1.0]) == 1
    assert distinct_rows([1.0, 1.0], [math.nan, math.nan]) == 2


def test_small_samples_recur_by_nature_and_are_not_counted() -> None:
    x, y = _features(512, features=4, distinct=8)
    report = _check_repeats(x, y, shuffle=True)
    assert report.result("samples-repeat").status.value == "skipped"
    assert "small input space" in report.result("samples-repeat").detail


class _ImageAndCaption(nn.Module):
    """Scores a caption embedding against an image: two inputs of one row per sample."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.image = nn.Linear(20, 8)
        self.caption = nn.Linear(6, 8)
        self.out = nn.Linear(8, 2)

    def forward(self, image: torch.Tensor, caption: torch.Tensor) -> torch.Tensor:
        return self.out(torch.tanh(self.image(image) + self.caption(caption)))


def test_an_image_repeated_once_per_caption_is_no_copied_sample() -> None:
    g = torch.Generator().manual_seed(0)
    images = torch.randn(128, 20, generator=g).repeat_interleave(4, dim=0)  # 4 captions each
    captions = torch.randn(512, 6, generator=g)
    y = (captions[:, 0] > 0).long()
    model = _ImageAndCaption()
    data = [((images[i : i + 32], captions[i : i + 32]), y[i : i + 32]) for i in range(0, 512, 32)]
    report = run(
        select=["samples-repeat"],
        model=model,
        data=data,
        loss_fn=nn.CrossEntropyLoss(),
        optimizer=torch.optim.Adam(model.parameters(), lr=1e-3),
    )
    result = report.result("samples-repeat")
    assert (
        result.status.value == "skipped" and "another input of one row per sample" in result.detail
    )


def test_constant_batches_are_left_to_input_constant() -> None:
    # All-zero inputs are one sample many times over; input-constant reports them.
    x, y = _features(512)
    report = _check_repeats(torch.zeros_like(x), y, shuffle=True)
    result = report.result("samples-repeat")
    assert result.status.value == "skipped" and "input-constant" in result.detail


def test_one_pair_of_classes_weighted_the_right_way_is_no_inversion() -> None:
    from nndoctor.checks.data.dataset import frequent_classes_favoured

    counts = [700.0, 200.0, 100.0]
    assert frequent_classes_favoured(counts, [0.7, 0.2, 0.1], 0.01) == [(0, 1), (0, 2), (1, 2)]
    assert frequent_classes_favoured(counts, [1.0, 2.0, 0.5], 0.01) == []
    # Counts that differ by chance alone say nothing about the weights' order.
    assert frequent_classes_favoured([52.0, 48.0], [0.52, 0.48], 0.01) == []
