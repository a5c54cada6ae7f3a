"""reshape-reorders-axes: a transpose written as a view, in the model's own code."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from subjects import SequenceLoss, run
from torch import nn

from nndoctor.checks.implementation.reshapes import (
    class_axis_not_innermost,
    cuts_across,
    relabelled_back,
    reorders_axes,
)
from nndoctor.engine import Selection, check_script
from nndoctor.probes.reshapes import ReshapeEvent
from nndoctor.report.model import Report


def _clouds(
    n: int = 128, points: int = 16, seed: int = 0
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Point clouds ``(batch, points, 3)``: a sphere's surface (0) or a cube's filling (1)."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 2, (n,), generator=g)
    x = torch.randn(n, points, 3, generator=g)
    sphere = x / x.norm(dim=2, keepdim=True)
    cube = torch.rand(n, points, 3, generator=g) * 2 - 1
    x = torch.where(y[:, None, None] == 0, sphere, cube)
    return [(x[i : i + 32], y[i : i + 32]) for i in range(0, n, 32)]


class PointNet(nn.Module):
    """A shared per-point MLP (1x1 convolutions), max-pooled over the points."""

    def __init__(self, as_view: bool) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.point_mlp = nn.Sequential(nn.Conv1d(3, 16, 1), nn.ReLU(), nn.Conv1d(16, 32, 1))
        self.head = nn.Linear(32, 2)
        self.as_view = as_view

    def forward(self, points: torch.Tensor) -> torch.Tensor:
        if self.as_view:
            x = points.view(points.size(0), 3, -1)  # the bug: relabels, moves nothing
        else:
            x = points.transpose(2, 1)  # (batch, 3, n_points) for Conv1d
        features = self.point_mlp(x).max(dim=2).values  # (batch, 32)
        return self.head(features.reshape(features.size(0), -1))


def _check(model: nn.Module) -> Report:
    return run(
        select=["reshape-reorders-axes"],
        model=model,
        data=_clouds(),
        loss_fn=nn.CrossEntropyLoss(),
        optimizer=torch.optim.Adam(model.parameters()),
    )


@pytest.mark.fires("reshape-reorders-axes")
def test_a_transpose_written_as_a_view_is_found_with_its_line() -> None:
    report = _check(PointNet(as_view=True))
    (finding,) = report.by_check("reshape-reorders-axes")
    assert finding.reasons == [25] and finding.severity.value == "error"
    (reshape,) = finding.evidence["reshapes"]
    assert reshape["before"] == [32, 16, 3] and reshape["after"] == [32, 3, 16]
    assert finding.where.file == __file__ and finding.where.line is not None


@pytest.mark.silent("reshape-reorders-axes")
def test_a_transpose_and_a_flatten_are_silent() -> None:
    report = _check(PointNet(as_view=False))
    assert report.by_check("reshape-reorders-axes") == []
    assert "none reorders axes" in report.result("reshape-reorders-axes").detail


class SequenceFirstHead(nn.Module):
    """A GRU over sequence-first input whose last hidden state ``(layers, batch, hidden)``
    is read per sample; ``as_view`` reads it with a view instead of a transpose."""

    def __init__(self, as_view: bool) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.rnn = nn.GRU(3, 8, num_layers=2)
        self.head = nn.Linear(16, 2)
        self.as_view = as_view

    def forward(self, points: torch.Tensor) -> torch.Tensor:
        _, h = self.rnn(points.transpose(0, 1))  # h: (layers, batch, hidden)
        if self.as_view:
            per_sample = h.view(h.size(1), h.size(0), -1)  # the bug: layers read as samples
        else:
            per_sample = h.transpose(0, 1)  # (batch, layers, hidden)
        return self.head(per_sample.reshape(per_sample.size(0), -1))


@pytest.mark.fires("reshape-reorders-axes")
def test_a_hidden_state_read_per_sample_with_a_view_is_found() -> None:
    report = _check(SequenceFirstHead(as_view=True))
    (finding,) = report.by_check("reshape-reorders-axes")
    assert finding.evidence["reshapes"][0]["after"] == [32, 2, 8]


@pytest.mark.silent("reshape-reorders-axes")
def test_a_hidden_state_transposed_is_silent() -> None:
    report = _check(SequenceFirstHead(as_view=False))
    assert report.by_check("reshape-reorders-axes") == []


@pytest.mark.parametrize(
    ("before", "after", "reorders"),
    [
        ((32, 16, 3), (32, 3, 16), True),
        ((64, 24), (24, 64, 1), True),  # sequence-first by view
        ((8, 3, 4, 5), (8, 4, 5, 3), True),  # channels last by view
        ((32, 1, 7), (32, 7, 1), False),  # a unit axis moved
        ((32, 16, 3), (32, 48), False),  # a flatten
        ((32, 48), (32, 16, 3), False),  # a split
        ((4, 4, 6), (4, 4, 6), False),
        ((32, 6, 4), (32, 4, 6, 1), True),
        ((32, 6, 4), (32, 2, 3, 4), False),
    ],
)
def test_which_reshapes_reorder_axes(
    before: tuple[int, ...], after: tuple[int, ...], reorders: bool
) -> None:
    assert reorders_axes(before, after) is reorders


SEQUENCE_FIRST_SCRIPT = """
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

torch.manual_seed(0)
t = torch.arange(2048, dtype=torch.float32)
series = torch.sin(t / 8) + 0.1 * torch.randn(2048)
windows = series.unfold(0, 25, 1)[:1024]  # (window, 25)
x, y = windows[:, :24], windows[:, 24:]
loader = DataLoader(TensorDataset(x, y), batch_size=32, shuffle=True, drop_last=True)


class Forecaster(nn.Module):
    def __init__(self):
        super().__init__()
        self.rnn = nn.GRU(1, 16)  # sequence first: (seq_len, batch, 1)
        self.head = nn.Linear(16, 1)

    def forward(self, src):
        out, _ = self.rnn(src)
        return self.head(out[-1])


model = Forecaster()
opt = torch.optim.Adam(model.parameters(), lr=1e-2)
for epoch in range(2):
    for xb, yb in loader:
        src = {layout}
        loss = nn.functional.mse_loss(model(src), yb)
        opt.zero_grad()
        loss.backward()
        opt.step()
"""


def _sequence_first(tmp_path: Path, layout: str) -> Report:
    script = tmp_path / "forecast.py"
    script.write_text(SEQUENCE_FIRST_SCRIPT.replace("{layout}", layout))
    return check_script(
        str(script), phase_steps=0, selection=Selection(select=("reshape-reorders-axes",))
    )


@pytest.mark.fires("reshape-reorders-axes")
@pytest.mark.parametrize(
    "layout",
    [
        "xb.view(xb.size(1), xb.size(0), 1)  # the bug",
        # A copy on the way (as to another device) is compared by value.
        "xb.view(xb.size(1), xb.size(0), 1).clone()  # the bug, copied",
    ],
)
def test_a_batch_brought_sequence_first_with_a_view_in_the_loop_is_found(
    tmp_path: Path, layout: str
) -> None:
    report = _sequence_first(tmp_path, layout)
    (finding,) = report.by_check("reshape-reorders-axes")
    (reshape,) = finding.evidence["reshapes"]
    assert reshape["before"] == [32, 24] and reshape["after"] == [24, 32, 1]
    assert reshape["between"] == "loader and model"


@pytest.mark.silent("reshape-reorders-axes")
def test_a_batch_brought_sequence_first_with_a_transpose_is_silent(tmp_path: Path) -> None:
    report = _sequence_first(tmp_path, "xb.transpose(0, 1).unsqueeze(-1)")
    assert report.by_check("reshape-reorders-axes") == []
    assert report.result("reshape-reorders-axes").status.value == "passed"


class TileTower(nn.Module):
    """One tower for each of 9 tiles, their embeddings (width 64) concatenated per image:
    at a batch of 64 the merge turns (576, 64) into (64, 576), sizes met by coincidence."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.tower = nn.Linear(4, 64)
        self.head = nn.Linear(9 * 64, 2)

    def forward(self, tiles: torch.Tensor) -> torch.Tensor:
        n = tiles.shape[0]
        x = self.tower(tiles.flatten(0, 1))  # (9n, 64)
        return self.head(x.view(n, 9 * 64))  # (n, 576)


@pytest.mark.silent("reshape-reorders-axes")
def test_sizes_that_meet_by_coincidence_at_one_batch_size_are_silent() -> None:
    g = torch.Generator().manual_seed(0)
    data = [
        (torch.randn(64, 9, 4, generator=g), torch.randint(0, 2, (64,), generator=g))
        for _ in range(3)
    ]
    model = TileTower()
    report = run(
        select=["reshape-reorders-axes"],
        model=model,
        data=data,
        loss_fn=nn.CrossEntropyLoss(),
        optimizer=torch.optim.Adam(model.parameters()),
    )
    assert report.by_check("reshape-reorders-axes") == []
    assert report.result("reshape-reorders-axes").status.value == "passed"


KEYWORD_SCRIPT = """
import torch
from torch import nn

torch.manual_seed(0)


class Tagger(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(50, 8)
        self.rnn = nn.GRU(8, 8, num_layers=2, batch_first=True)
        self.head = nn.Linear(16, 2)

    def forward(self, input_ids=None, labels=None):
        _, h = self.rnn(self.embed(input_ids))  # h: (layers, batch, hidden)
        logits = self.head({read}.reshape(input_ids.size(0), -1))
        return {"loss": nn.functional.cross_entropy(logits, labels), "logits": logits}


model = Tagger()
opt = torch.optim.SGD(model.parameters(), lr=0.1)
for step in range(30):
    ids = torch.randint(0, 50, (32, 12))
    batch = {"input_ids": ids, "labels": (ids[:, 0] > 25).long()}
    loss = model(**batch)["loss"]
    opt.zero_grad()
    loss.backward()
    opt.step()
"""


@pytest.mark.parametrize(
    ("read", "fires"),
    [
        pytest.param(
            "h.view(h.size(1), h.size(0), -1)",
            True,
            marks=pytest.mark.fires("reshape-reorders-axes"),
        ),
        pytest.param("h.transpose(0, 1)", False, marks=pytest.mark.silent("reshape-reorders-axes")),
    ],
)
def test_a_model_called_with_keywords_only_is_replayed(
    tmp_path: Path, read: str, fires: bool
) -> None:
    script = tmp_path / "tagger.py"
    script.write_text(KEYWORD_SCRIPT.replace("{read}", read))
    report = check_script(
        str(script), phase_steps=0, selection=Selection(select=("reshape-reorders-axes",))
    )
    assert report.result("reshape-reorders-axes").status.value == ("failed" if fires else "passed")
    assert len(report.by_check("reshape-reorders-axes")) == int(fires)


class MaskedPool(nn.Module):
    """Averages the points under a mask of ones built (batch, points) and read with a view
    as (points, batch): a constant has no order to lose."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.head = nn.Linear(3, 2)

    def forward(self, points: torch.Tensor) -> torch.Tensor:
        mask = torch.ones(points.size(0), points.size(1)).view(points.size(1), points.size(0))
        weights = mask.t().unsqueeze(-1) / points.size(1)  # (batch, points, 1)
        return self.head((points * weights).sum(1))


@pytest.mark.silent("reshape-reorders-axes")
def test_a_constant_mask_relabelled_is_silent() -> None:
    report = _check(MaskedPool())
    assert report.by_check("reshape-reorders-axes") == []
    assert report.result("reshape-reorders-axes").status.value == "passed"


class SubPixel(nn.Module):
    """ESPCN's last layer: r * r channels per output pixel, rearranged into an image r times
    larger, by ``nn.PixelShuffle`` or by a bare view (the bug)."""

    def __init__(self, as_view: bool, r: int = 3) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(1, r * r, 3, padding=1)
        self.shuffle = nn.PixelShuffle(r)
        self.as_view, self.r = as_view, r

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)  # (batch, r * r, h, w)
        if self.as_view:
            return y.view(y.size(0), 1, y.size(2) * self.r, y.size(3) * self.r)
        return self.shuffle(y)  # (batch, 1, h * r, w * r)


def _upscale(model: nn.Module) -> Report:
    g = torch.Generator().manual_seed(0)
    target = torch.rand(64, 1, 48, 48, generator=g)
    source = nn.functional.avg_pool2d(target, 3)
    return run(
        select=["reshape-reorders-axes"],
        model=model,
        data=[(source[i : i + 16], target[i : i + 16]) for i in range(0, 64, 16)],
        loss_fn=nn.MSELoss(),
        optimizer=torch.optim.Adam(model.parameters()),
    )


@pytest.mark.fires("reshape-reorders-axes")
def test_sub_pixel_channels_viewed_as_rows_are_found() -> None:
    report = _upscale(SubPixel(as_view=True))
    (finding,) = report.by_check("reshape-reorders-axes")
    assert finding.title.startswith("A view or reshape cuts across axes")
    assert finding.evidence["reshapes"][0]["after"][1:] == [1, 48, 48]


@pytest.mark.silent("reshape-reorders-axes")
def test_pixel_shuffle_passes() -> None:
    report = _upscale(SubPixel(as_view=False))
    assert not report.by_check("reshape-reorders-axes")


class GroupNormByHand(nn.Module):
    def __init__(self, channels: int = 32, groups: int = 8) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.groups = groups
        self.conv = nn.Conv2d(1, channels, 3, padding=1)
        self.head = nn.Conv2d(channels, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        n, c, h, w = y.shape
        grouped = y.view(n, self.groups, -1)  # (n, G, C/G * h * w)
        mean, std = grouped.mean(-1, keepdim=True), grouped.std(-1, keepdim=True)
        normed = ((grouped - mean) / (std + 1e-5)).view(n, c, h, w)
        return nn.functional.interpolate(self.head(normed), scale_factor=3)


def test_a_hand_written_group_norm_splits_and_merges_at_factors() -> None:
    report = _upscale(GroupNormByHand())
    assert not report.by_check("reshape-reorders-axes")
    assert report.result("reshape-reorders-axes").status.value == "passed"


@pytest.mark.parametrize(
    ("before", "after", "cuts"),
    [
        ((8, 9, 16, 16), (8, 1, 48, 48), True),  # sub-pixel channels as rows
        ((8, 3, 32, 32), (8, 16, 192), True),  # 16 "patches" that are no patches
        ((8, 32, 5, 5), (8, 8, 100), False),  # groups of channels
        ((8, 1, 28, 28), (8, 784), False),
        ((8, 784), (8, 1, 28, 28), False),
        ((128, 512), (8, 16, 512), False),  # (batch * time) back to (batch, time)
        ((8, 6, 4), (8, 4, 6), True),  # a reordering cuts across too
    ],
)
def test_which_reshapes_cut_across_axes(
    before: tuple[int, ...], after: tuple[int, ...], cuts: bool
) -> None:
    assert cuts_across(before, after) is cuts


class _FlatTagLoss(nn.modules.loss._Loss):
    """Cross-entropy over every position of (batch, tags, positions) scores, flattened to
    (rows, tags) by a bare view (the bug), after moving the tag axis last, or not at all."""

    def __init__(self, how: str) -> None:
        super().__init__()
        self.how = how

    def forward(self, scores: torch.Tensor, tags: torch.Tensor) -> torch.Tensor:
        c = scores.shape[1]
        if self.how == "view":
            return nn.functional.cross_entropy(scores.view(-1, c), tags.view(-1))
        if self.how == "permute":
            return nn.functional.cross_entropy(
                scores.permute(0, 2, 1).reshape(-1, c), tags.reshape(-1)
            )
        return nn.functional.cross_entropy(scores, tags)  # (N, C, T) with (N, T)


def _tagger(how: str) -> Report:
    """A 1-D convolutional tagger: 3 tags per position of 20, from 4 input channels."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(256, 4, 20, generator=g)
    y = (x[:, 0] > 0).long() + (x[:, 1] > 0.5).long()
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv1d(4, 16, 3, padding=1), nn.ReLU(), nn.Conv1d(16, 3, 1))
    return run(
        select=["reshape-reorders-axes"],
        model=model,
        data=[(x[i : i + 32], y[i : i + 32]) for i in range(0, 256, 32)],
        loss_fn=_FlatTagLoss(how),
        optimizer=torch.optim.Adam(model.parameters(), lr=1e-2),
    )


@pytest.mark.fires("reshape-reorders-axes")
def test_class_scores_flattened_from_the_position_axis_are_found() -> None:
    report = _tagger("view")
    (finding,) = report.by_check("reshape-reorders-axes")
    assert finding.title.startswith("Class scores flattened")
    assert finding.evidence["reshapes"][0]["before"] == [32, 3, 20]
    assert finding.evidence["reshapes"][0]["after"] == [640, 3]


@pytest.mark.silent("reshape-reorders-axes")
@pytest.mark.parametrize("how", ["permute", "unflattened"])
def test_class_scores_moved_last_or_left_unflattened_pass(how: str) -> None:
    report = _tagger(how)
    assert not report.by_check("reshape-reorders-axes")
    assert report.result("reshape-reorders-axes").status.value == "passed"


@pytest.mark.parametrize(
    ("layout", "loss_input", "wrong"),
    [
        ((32, 3, 20), (640, 3), True),  # (N, C, T) viewed as (N * T, C)
        ((8, 5, 16, 16), (2048, 5), True),  # (N, C, H, W) viewed as (N * H * W, C)
        ((32, 20, 3), (640, 3), False),  # (N, T, C): classes innermost
        ((20, 32, 3), (640, 3), False),  # sequence-first, classes innermost
        ((32, 3, 3), (96, 3), False),  # two axes of C: cannot tell
        ((32, 3, 1, 1), (32, 3), False),  # pooled: unit axes aside
    ],
)
def test_which_flattenings_leave_the_class_axis_inside(
    layout: tuple[int, ...], loss_input: tuple[int, ...], wrong: bool
) -> None:
    assert class_axis_not_innermost(layout, loss_input) is wrong


class RelativeShiftAttention(nn.Module):
    """Sequence-first self-attention with Transformer-XL's relative shift: the (query, key)
    scores against relative positions are padded by a zero column, viewed with the two
    axes' sizes swapped, cut by the first row and viewed back, which shifts row i by i."""

    def __init__(self, vocab: int = 12, width: int = 8) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.embed, self.head = nn.Embedding(vocab, width), nn.Linear(width, vocab)
        self.qkv, self.relative = nn.Linear(width, 3 * width), nn.Parameter(torch.randn(64, width))

    @staticmethod
    def _rel_shift(x: torch.Tensor) -> torch.Tensor:
        zero_pad = torch.zeros((x.size(0), 1, *x.size()[2:]), dtype=x.dtype)
        x_padded = torch.cat([zero_pad, x], dim=1)
        x_padded = x_padded.view(x.size(1) + 1, x.size(0), *x.size()[2:])
        return x_padded[1:].view_as(x)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        h = self.embed(tokens)  # (seq_len, batch, width)
        q, k, v = self.qkv(h).chunk(3, dim=-1)
        n = h.shape[0]
        content = torch.einsum("ibd,jbd->ijb", q, k)  # (query, key, batch)
        position = self._rel_shift(torch.einsum("ibd,jd->ijb", q, self.relative[:n]))
        mask = torch.triu(torch.ones(n, n, dtype=torch.bool), diagonal=1)[:, :, None]
        weights = (content + position).masked_fill(mask, float("-inf")).softmax(dim=1)
        return self.head(torch.einsum("ijb,jbd->ibd", weights, v))  # (seq_len, batch, vocab)


def test_transformer_xls_relative_shift_relabels_and_relabels_back_silently() -> None:
    g = torch.Generator().manual_seed(0)
    stream = torch.randint(0, 12, (7 * 20, 5), generator=g)
    data = [(stream[i : i + 7], stream[i + 1 : i + 8]) for i in range(0, 7 * 19, 7)]
    model = RelativeShiftAttention()
    report = run(
        select=["reshape-reorders-axes"],
        model=model,
        data=data,
        loss_fn=SequenceLoss(),
        optimizer=torch.optim.Adam(model.parameters()),
    )
    assert report.by_check("reshape-reorders-axes") == []
    assert "none reorders axes" in report.result("reshape-reorders-axes").detail


def test_a_relabelling_counts_as_undone_only_when_viewed_back_untouched() -> None:
    # Padded (7, 8) scores viewed as (8, 7), cut to (7, 7) and viewed back: a shift.
    shift = [
        ReshapeEvent("view", (7, 8, 5), (8, 7, 5), "", "m.py", 1),
        ReshapeEvent("view_as", (7, 7, 5), (7, 7, 5), "", "m.py", 2, again_of=0),
    ]
    assert relabelled_back(shift) == {0, 1}
    # The same memory viewed on into a longer axis is no way back.
    onward = [shift[0], ReshapeEvent("view", (8, 7, 5), (4, 14, 5), "", "m.py", 2, again_of=0)]
    assert relabelled_back(onward) == set()
    # Nor is the input, unsliced, read again in its own shape after a transpose-as-view.
    again = [shift[0], ReshapeEvent("view", (7, 8, 5), (7, 8, 5), "", "m.py", 2, again_of=0)]
    assert relabelled_back(again) == set()
