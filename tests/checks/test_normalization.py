"""Normalisation checks (reason 12): fire on unscaled inputs, silent on the many healthy
ways inputs are scaled (standardised, unit-range images, binary and sparse features,
token ids, a model that normalises its own input)."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from subjects import batches, blobs, healthy_classifier, mlp, run, serious
from test_data_checks import conv_subject, images, standardised, token_subject
from torch import nn

CHECKS = ("input-not-standardized", "feature-scales-differ")


def tabular(x: torch.Tensor, y: torch.Tensor, model: nn.Module | None = None) -> dict[str, Any]:
    model = model or mlp(features=x.shape[1], classes=int(y.max()) + 1)
    return {
        "model": model,
        "data": batches(x, y),
        "loss_fn": nn.CrossEntropyLoss(),
        "optimizer": torch.optim.Adam(model.parameters(), lr=1e-3),
    }


def status(report: Any, check: str) -> Any:
    return {c.check: c for c in report.checks}[check]


# -- fires -------------------------------------------------------------------------------


@pytest.mark.fires("input-not-standardized")
def test_raw_pixels_to_a_conv_net_are_not_standardised() -> None:
    x, y = images()
    report = run(select=CHECKS, **conv_subject((x * 255).round(), y))
    (f,) = report.by_check("input-not-standardized")
    assert f.severity.value == "warning" and f.reasons == [12]
    assert f.evidence["unit"] == "channel" and f.evidence["flagged"] == 3
    assert f.evidence["worst_std"] > 10
    assert f.where.module == "conv"
    assert report.by_check("feature-scales-differ") == []  # every channel equally off


@pytest.mark.fires("input-not-standardized")
@pytest.mark.fires("feature-scales-differ")
def test_some_features_scaled_by_a_thousand() -> None:
    x, y = blobs()
    x[:, :3] *= 1000
    report = run(select=CHECKS, **tabular(x, y))
    (f,) = report.by_check("input-not-standardized")
    assert f.evidence["unit"] == "feature" and f.evidence["flagged"] == 3
    assert {s["index"] for s in f.evidence["flagged_stats"]} == {0, 1, 2}
    (g,) = report.by_check("feature-scales-differ")
    assert g.severity.value == "warning" and g.reasons == [12]
    assert g.evidence["largest"] in (0, 1, 2) and g.evidence["ratio"] > 500


@pytest.mark.fires("input-not-standardized")
def test_a_feature_with_a_large_offset() -> None:
    x, y = blobs()
    x[:, 5] = 2020 + x[:, 5]  # a year, 2020 ± 1: a near-constant huge bias
    report = run(select=["input-not-standardized"], **tabular(x, y))
    (f,) = report.by_check("input-not-standardized")
    assert f.evidence["worst"] == 5 and f.evidence["worst_mean"] == pytest.approx(2020, abs=1)


@pytest.mark.fires("input-not-standardized")
def test_features_standardised_with_statistics_of_another_scale() -> None:
    # Every value near -1.25, the features a ripple of std 0.002 on it (statistics taken on
    # a scale 500 times the data's): the copy on them does not move in the twin's steps,
    # its standardised twin falls by half, though neither ends near zero.
    x, y = blobs()
    report = run(select=["input-not-standardized"], **tabular(x * 0.002 - 1.25, y))
    (f,) = report.by_check("input-not-standardized")
    assert f.severity.value == "warning" and f.evidence["standardising_helps"]
    assert f.evidence["raw_final_loss"] < 10 * f.evidence["standardised_final_loss"]


@pytest.mark.fires("feature-scales-differ")
def test_one_global_scale_keeps_the_ratio() -> None:
    x, y = blobs()
    x[:, 0] *= 1000
    x = x / x.abs().max()  # one scale for all features: the ratio survives
    report = run(select=["feature-scales-differ"], **tabular(x, y))
    (g,) = report.by_check("feature-scales-differ")
    assert g.evidence["largest"] == 0 and g.evidence["ratio"] > 500


class CategoriesAndColumns(nn.Module):
    """A tabular model fed category ids first and continuous columns second."""

    def __init__(self, columns: int) -> None:
        super().__init__()
        self.embed = nn.Embedding(5, 4)
        self.head = nn.Sequential(nn.Linear(4 + columns, 16), nn.ReLU(), nn.Linear(16, 3))

    def forward(self, categories: torch.Tensor, columns: torch.Tensor) -> torch.Tensor:
        return self.head(torch.cat([self.embed(categories), columns], dim=1))


def ids_then_columns(columns: torch.Tensor, y: torch.Tensor) -> dict[str, Any]:
    categories = torch.randint(0, 5, (len(y),), generator=torch.Generator().manual_seed(2))
    torch.manual_seed(0)
    model = CategoriesAndColumns(columns.shape[1])
    data = [
        ((categories[i : i + 32], columns[i : i + 32]), y[i : i + 32]) for i in range(0, len(y), 32)
    ]
    return {
        "model": model,
        "data": data,
        "loss_fn": nn.CrossEntropyLoss(),
        "optimizer": torch.optim.Adam(model.parameters(), lr=1e-3),
    }


@pytest.mark.fires("feature-scales-differ")
def test_columns_behind_category_ids_are_measured() -> None:
    # The first model input holds ids: the columns after them are what is measured.
    x, y = blobs()
    x[:, 0] *= 1000
    x = x / x.abs().max()  # one scale for all columns: the ratio survives
    report = run(select=CHECKS, **ids_then_columns(x, y))
    (g,) = report.by_check("feature-scales-differ")
    assert g.evidence["largest"] == 0 and g.evidence["ratio"] > 500


@pytest.mark.silent("feature-scales-differ")
@pytest.mark.silent("input-not-standardized")
def test_standardised_columns_behind_category_ids_pass() -> None:
    x, y = blobs()
    report = run(select=CHECKS, **ids_then_columns(x, y))
    assert serious(report) == []
    assert status(report, "feature-scales-differ").status.value == "passed"
    assert status(report, "input-not-standardized").status.value == "passed"


class CategoriesThenBatchNorm(CategoriesAndColumns):
    """As above, with a BatchNorm1d over the embedded categories and the columns, the first
    layer the columns meet (TabNet and many tabular models standardise raw columns so)."""

    def __init__(self, columns: int) -> None:
        super().__init__(columns)
        self.norm = nn.BatchNorm1d(4 + columns)

    def forward(self, categories: torch.Tensor, columns: torch.Tensor) -> torch.Tensor:
        return self.head(self.norm(torch.cat([self.embed(categories), columns], dim=1)))


def test_raw_columns_behind_embeddings_into_a_batchnorm_are_left_to_it() -> None:
    x, y = blobs()
    x[:, 0] *= 1000  # wildly apart, but the BatchNorm after the embeddings rescales them
    subject = ids_then_columns(x, y)
    torch.manual_seed(0)
    subject["model"] = CategoriesThenBatchNorm(x.shape[1])
    subject["optimizer"] = torch.optim.Adam(subject["model"].parameters(), lr=1e-3)
    report = run(select=CHECKS, **subject)
    assert serious(report) == []
    for check in CHECKS:
        assert status(report, check).status.value == "skipped"
        assert "first layer after the embeddings, norm" in status(report, check).detail
    # The same columns into the model without the BatchNorm are found (test above).


class TokensAndMask(nn.Module):
    """Token ids and an additive attention mask (-inf above the diagonal), as a word-level
    Transformer language model is called."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(50, 8)
        self.head = nn.Linear(8, 3)

    def forward(self, tokens: torch.Tensor, src_mask: torch.Tensor) -> torch.Tensor:
        scores = torch.zeros(tokens.shape[0], tokens.shape[0]) + src_mask
        mixed = scores.softmax(-1) @ self.embed(tokens)
        return self.head(mixed)


def test_an_attention_mask_after_token_ids_is_no_measurement() -> None:
    g = torch.Generator().manual_seed(0)
    tokens = torch.randint(0, 50, (128,), generator=g)
    y = torch.randint(0, 3, (128,), generator=g)
    mask = torch.triu(torch.full((32, 32), float("-inf")), diagonal=1)
    torch.manual_seed(0)
    model = TokensAndMask()
    report = run(
        select=(*CHECKS, "input-not-finite"),
        model=model,
        data=[((tokens[i : i + 32], mask), y[i : i + 32]) for i in range(0, 128, 32)],
        loss_fn=nn.CrossEntropyLoss(),
        optimizer=torch.optim.Adam(model.parameters(), lr=1e-3),
    )
    assert serious(report) == []
    assert status(report, "input-not-standardized").status.value == "skipped"


# -- silent ------------------------------------------------------------------------------


@pytest.mark.silent("input-not-standardized")
@pytest.mark.silent("feature-scales-differ")
def test_healthy_classifier_is_standardised() -> None:
    report = run(select=CHECKS, **healthy_classifier())
    assert serious(report) == []
    assert status(report, "input-not-standardized").status.value == "passed"
    assert status(report, "feature-scales-differ").status.value == "passed"


@pytest.mark.silent("input-not-standardized")
@pytest.mark.silent("feature-scales-differ")
def test_images_standardised_or_in_unit_range_pass() -> None:
    x, y = images()
    for inputs in (standardised(x), x):  # x: unit range, mean ≈ 0.5, std ≈ 0.2
        report = run(select=CHECKS, **conv_subject(inputs, y))
        assert serious(report) == []
        assert status(report, "input-not-standardized").status.value == "passed"


@pytest.mark.silent("input-not-standardized")
@pytest.mark.silent("feature-scales-differ")
def test_binary_and_one_hot_features_pass() -> None:
    x, y = blobs()
    g = torch.Generator().manual_seed(3)
    rare = (torch.rand(256, 2, generator=g) < torch.tensor([0.02, 0.5])).float()
    one_hot = nn.functional.one_hot(torch.randint(0, 6, (256,), generator=g), 6).float()
    report = run(select=CHECKS, **tabular(torch.cat([x, rare, one_hot], 1), y))
    assert serious(report) == []
    assert "8 binary left out" in status(report, "input-not-standardized").detail


@pytest.mark.silent("input-not-standardized")
@pytest.mark.silent("feature-scales-differ")
def test_flattened_images_with_rarely_lit_pixels_pass() -> None:
    # 8x8 "digits": a blob somewhere in the middle 4x4, border pixels almost never lit,
    # standardised with one global mean and std (the usual MNIST recipe).
    g = torch.Generator().manual_seed(0)
    n = 512
    img = torch.zeros(n, 8, 8)
    r, c = torch.randint(2, 6, (2, n), generator=g)
    img[torch.arange(n), r, c] = 1.0
    img[torch.arange(n), (r + 1).clamp(max=7), c] = 0.7
    img[torch.arange(n), r, (c - 1).clamp(min=0)] = 0.5
    img[:3, 0, :] = 0.3  # a few samples light the border
    x = img.reshape(n, 64)
    x = (x - x.mean()) / x.std()
    y = (r >= 4).long() + 2 * (c >= 4).long()
    report = run(select=CHECKS, **tabular(x, y))
    assert serious(report) == []


def test_token_ids_are_not_features() -> None:
    for dtype in (torch.int64, torch.uint8):
        report = run(select=CHECKS, **token_subject(dtype))
        assert serious(report) == []
        assert status(report, "input-not-standardized").status.value == "skipped"


def test_a_model_that_normalises_its_input_first() -> None:
    x, y = blobs()
    torch.manual_seed(0)
    model = nn.Sequential(nn.BatchNorm1d(10), nn.Linear(10, 16), nn.ReLU(), nn.Linear(16, 3))
    report = run(select=CHECKS, **tabular(x * 1000 + 50, y, model))
    assert report.by_check("input-not-standardized") == []
    assert "normalises the input itself" in status(report, "input-not-standardized").detail
