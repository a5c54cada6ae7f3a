"""The charts drawn from a RunSeries: stable names, real PNGs, gaps, many layers, nothing.

Series are built by hand (the renderer takes nothing else), so each edge case is exact:
missing values (nan) at some steps, an infinite gradient, thirty layers, an empty run.
The pixels are read back to prove that something was drawn, not a blank canvas.
"""

from __future__ import annotations

import io
import math
from pathlib import Path

import matplotlib.image as mpimg
import numpy as np

from nndoctor.report.plots import MAX_LAYERS, NOTHING_TO_PLOT, charts, pick_layers, write_pngs
from nndoctor.report.series import Curve, ExperimentCurves, Marker, RunSeries

NAN = math.nan
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def gappy_series() -> RunSeries:
    """Ten steps, the loss unseen at steps 3 and 4, one layer unsampled at step 6."""
    steps = list(range(10))
    loss = [2.3 - 0.1 * s for s in steps]
    loss[3] = loss[4] = NAN
    grad = {"0": [0.5 + 0.01 * s for s in steps], "2": [0.05] * 10}
    grad["2"][6] = NAN
    ratio = {"0": [1e-3] * 10, "2": [2e-4] * 9 + [NAN]}
    act = {"0": [0.1 * s for s in steps], "1": [0.5] * 10}
    return RunSeries(
        steps=steps,
        loss=loss,
        learning_rate=[0.1] * 10,
        grad_norm=grad,
        activation_mean=act,
        activation_std={k: [1.0] * 10 for k in act},
        activation_zero_frac={"1": [0.5] * 5 + [NAN] * 5},
        update_ratio=ratio,
        markers=[Marker(step=2, check="loss-input-mismatch", severity="error", label="Softmax")],
        experiments=[
            ExperimentCurves(
                check="learning-rate-out-of-range",
                title="Learning-rate range test",
                x_label="learning rate",
                y_label="loss",
                curves=[Curve("loss", [1e-5, 1e-3, 1e-1, 1.0], [2.3, 2.0, 0.9, NAN])],
                log_x=True,
                x_marks={"your learning rate": 5.0},
            ),
            ExperimentCurves(
                check="cannot-overfit-tiny-batch",
                title="Tiny batch",
                x_label="step",
                y_label="loss",
                curves=[Curve("tiny batch", [0, 1, 2], [2.3, 1.0, 0.1])],
            ),
        ],
    )


def pixels(png: bytes) -> np.ndarray:
    assert png.startswith(PNG_MAGIC)
    return mpimg.imread(io.BytesIO(png), format="png")


def test_a_series_with_gaps_gives_one_png_per_chart_under_stable_names(tmp_path: Path) -> None:
    paths = write_pngs(gappy_series(), tmp_path / "plots")
    assert [p.name for p in paths] == [
        "loss.png",
        "gradient-flow.png",
        "activations.png",
        "update-ratio.png",
        "experiment-learning-rate-out-of-range.png",
        "experiment-cannot-overfit-tiny-batch.png",
    ]
    for path in paths:
        img = pixels(path.read_bytes())
        # Something was drawn: a blank canvas has one colour.
        assert img.shape[0] > 200 and img.shape[1] > 400
        assert float(img[..., :3].std()) > 0.02, path.name


def test_an_empty_series_draws_nothing_and_says_so(tmp_path: Path) -> None:
    assert charts(RunSeries()) == []
    assert write_pngs(RunSeries(), tmp_path / "plots") == []
    assert not (tmp_path / "plots").exists()
    assert "nothing to plot" in NOTHING_TO_PLOT


def test_a_loss_never_finite_still_draws_the_loss_chart_and_says_why() -> None:
    series = RunSeries(steps=[0, 1, 2], loss=[NAN, NAN, NAN])
    drawn = charts(series)
    assert [c.name for c in drawn] == ["loss"]
    assert "no finite loss" in drawn[0].note


def test_many_layers_are_capped_and_the_caption_says_how_many_were_left_out() -> None:
    names = [f"blocks.{i}" for i in range(30)]
    lines = {n: [10.0 ** (-(i % 7))] * 5 for i, n in enumerate(names)}
    lines["blocks.13"] = [1.0, math.inf, 1.0, 1.0, 1.0]
    lines["blocks.17"] = [1e4] * 5  # the largest typical value
    chosen, left_out = pick_layers(lines, MAX_LAYERS, log=True)
    assert len(chosen) == MAX_LAYERS and left_out == 30 - MAX_LAYERS
    for must in ("blocks.0", "blocks.29", "blocks.13", "blocks.17"):
        assert must in chosen
    assert chosen == sorted(chosen, key=names.index)  # still in depth order
    series = RunSeries(steps=list(range(5)), loss=[1.0] * 5, grad_norm=lines)
    flow = next(c for c in charts(series) if c.name == "gradient-flow")
    assert f"{MAX_LAYERS} of 30 layers shown" in flow.note and "22 left out" in flow.note


def test_few_layers_are_all_drawn_without_a_note() -> None:
    chosen, left_out = pick_layers({"a": [1.0], "b": [2.0]}, MAX_LAYERS)
    assert chosen == ["a", "b"] and left_out == 0


def test_the_same_experiment_twice_keeps_distinct_stable_names() -> None:
    exp = gappy_series().experiments[1]
    series = RunSeries(experiments=[exp, exp])
    assert [c.name for c in charts(series)] == [
        "experiment-cannot-overfit-tiny-batch",
        "experiment-cannot-overfit-tiny-batch-2",
    ]


def test_an_experiment_without_points_is_left_out() -> None:
    empty = ExperimentCurves(check="x", title="x", x_label="x", y_label="y", curves=[])
    assert charts(RunSeries(experiments=[empty])) == []
