"""Charts of a run, drawn from a :class:`~nndoctor.report.series.RunSeries` alone.

One figure per chart, each with a stable file name (``--plots DIR`` writes them as PNGs,
the HTML report embeds them): the loss with the findings marked at their steps, the
gradient norm per layer, activation statistics per layer, the update/weight ratio per
layer, and one chart per experiment that handed back curves (the learning-rate range test,
the tiny batch against the observed loss). Missing values (``nan``) leave gaps.

Many layers do not fit on one chart: at most ``max_layers`` lines are drawn, chosen so that
the chart still shows the extremes (first and last layer, any layer with a non-finite value,
the largest and smallest typical value, then layers spread over the depth), and the caption
says how many were left out. matplotlib's object API with the Agg canvas: no pyplot state,
no display needed. It only draws: every number comes from the series.
"""

from __future__ import annotations

import io
import math
import re
import statistics
from dataclasses import dataclass
from pathlib import Path

from nndoctor.checks.thresholds import DEFAULT_THRESHOLDS, Thresholds
from nndoctor.report.series import ExperimentCurves, Marker, RunSeries

MAX_LAYERS = 8
NOTHING_TO_PLOT = "nothing to plot: no step was observed and no experiment handed back a curve"

_SEVERITY_COLOUR = {"error": "#c62828", "warning": "#ef6c00", "info": "#0277bd"}
_WIDTH, _HEIGHT, _DPI = 8.0, 3.6, 100
_LABEL_CHARS = 60


@dataclass
class Chart:
    """One drawn chart: a stable name (the PNG's file name without suffix), a title, the PNG
    bytes and a note saying what was left out (empty when nothing was)."""

    name: str
    title: str
    png: bytes
    note: str = ""


def charts(
    series: RunSeries, *, max_layers: int = MAX_LAYERS, thresholds: Thresholds = DEFAULT_THRESHOLDS
) -> list[Chart]:
    """Every chart ``series`` has data for, in reading order; empty for an empty series."""
    out: list[Chart] = []
    if series.steps:
        out.append(_loss_chart(series))
        out += _layer_chart(
            "gradient-flow",
            "Gradient norm per layer",
            "gradient norm (log)",
            series.steps,
            series.grad_norm,
            max_layers,
            log=True,
        )
        out += _activation_chart(series, max_layers)
        out += _layer_chart(
            "update-ratio",
            "Update / weight ratio per layer",
            "|update| / |weight| (log)",
            series.steps,
            series.update_ratio,
            max_layers,
            log=True,
            band=(thresholds.update_ratio_low, thresholds.update_ratio_high),
        )
    names: dict[str, int] = {}
    for exp in series.experiments:
        chart = _experiment_chart(exp)
        if chart is None:
            continue
        # The same experiment twice (two runs of a check) gets -2, -3: names stay stable.
        names[chart.name] = names.get(chart.name, 0) + 1
        if names[chart.name] > 1:
            chart.name += f"-{names[chart.name]}"
        out.append(chart)
    return out


def write_pngs(series: RunSeries, folder: str | Path, **kwargs: object) -> list[Path]:
    """Write one PNG per chart into ``folder`` (created if needed); returns the paths written,
    none for an empty series (see :data:`NOTHING_TO_PLOT`)."""
    drawn = charts(series, **kwargs)  # type: ignore[arg-type]
    if not drawn:
        return []
    root = Path(folder)
    root.mkdir(parents=True, exist_ok=True)
    paths = []
    for chart in drawn:
        path = root / f"{chart.name}.png"
        path.write_bytes(chart.png)
        paths.append(path)
    return paths


# -- the charts ---------------------------------------------------------------------------


def _loss_chart(series: RunSeries) -> Chart:
    fig, ax = _figure()
    finite = [(s, v) for s, v in zip(series.steps, series.loss, strict=False) if _finite(v)]
    note = ""
    if finite:
        ax.plot(series.steps, series.loss, marker=".", color="#1f4e79", label="training loss")
        bad = [
            s
            for s, v in zip(series.steps, series.loss, strict=False)
            if not math.isnan(v) and not math.isfinite(v)
        ]
        if bad:
            # inf or nan losses cannot be drawn at a height: marked along the bottom.
            ax.plot(bad, [min(v for _, v in finite)] * len(bad), "x", color="#c62828")
            note = f"non-finite loss at step(s) {_steps_text(bad)} (crosses along the bottom)"
    else:
        _say(ax, "no finite loss was observed")
        note = "no finite loss was observed"
    _draw_markers(ax, series.markers)
    _step_axis(ax)
    ax.set_ylabel("loss")
    ax.set_title("Training loss, findings marked at their steps")
    if finite or series.markers:
        ax.legend(loc="best", fontsize=7)
    return _done("loss", "Training loss, findings marked at their steps", fig, note)


def _draw_markers(ax: object, markers: list[Marker]) -> None:
    by_step: dict[int, list[Marker]] = {}
    for m in markers:
        by_step.setdefault(m.step, []).append(m)
    for step, ms in sorted(by_step.items()):
        worst = min(ms, key=lambda m: ["error", "warning", "info"].index(m.severity))
        label = f"step {step}: " + "; ".join(_short(m.label) for m in ms[:2])
        if len(ms) > 2:
            label += f" (+{len(ms) - 2})"
        ax.axvline(  # type: ignore[attr-defined]
            step,
            color=_SEVERITY_COLOUR.get(worst.severity, "grey"),
            linestyle="--",
            linewidth=1.2,
            label=label,
        )


def _activation_chart(series: RunSeries, max_layers: int) -> list[Chart]:
    panels = [
        ("mean", series.activation_mean),
        ("std", series.activation_std),
        ("zero fraction", series.activation_zero_frac),
    ]
    if not any(lines for _, lines in panels):
        return []
    # One choice of layers for the three panels, so that a colour is one layer throughout.
    key = series.activation_std or series.activation_mean or series.activation_zero_frac
    layers, left_out = pick_layers(key, max_layers)
    from matplotlib.figure import Figure

    fig = Figure(figsize=(_WIDTH, _HEIGHT * 2), dpi=_DPI, layout="constrained")
    axes = fig.subplots(3, 1, sharex=True)
    for ax, (what, lines) in zip(axes, panels, strict=True):
        for i, layer in enumerate(layers):
            if layer in lines:
                ax.plot(
                    series.steps,
                    lines[layer],
                    marker=".",
                    label=_layer_label(layer),
                    color=_colour(i),
                )
        ax.set_ylabel(what)
        ax.grid(alpha=0.3)
    _step_axis(axes[-1])
    axes[0].set_title("Activation statistics per layer")
    axes[0].legend(loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=7)
    return [
        _done(
            "activations", "Activation statistics per layer", fig, _left_out_note(layers, left_out)
        )
    ]


def _layer_chart(
    name: str,
    title: str,
    y_label: str,
    steps: list[int],
    lines: dict[str, list[float]],
    max_layers: int,
    *,
    log: bool = False,
    band: tuple[float, float] | None = None,
) -> list[Chart]:
    if not lines:
        return []
    layers, left_out = pick_layers(lines, max_layers, log=log)
    fig, ax = _figure(legend_outside=True)
    drawn = False
    for i, layer in enumerate(layers):
        ys = [_positive(v) for v in lines[layer]] if log else lines[layer]
        drawn |= any(_finite(v) for v in ys)
        ax.plot(steps, ys, marker=".", label=_layer_label(layer), color=_colour(i))
    if log and drawn:
        ax.set_yscale("log")
    if band is not None and drawn:
        low, high = band
        ax.axhline(
            high, color="grey", linestyle=":", linewidth=1, label=f"{high:g} (too large above)"
        )
        ax.axhline(
            low, color="grey", linestyle="-.", linewidth=1, label=f"{low:g} (too small below)"
        )
    if not drawn:
        _say(ax, "no finite positive value to draw")
    _step_axis(ax)
    ax.set_ylabel(y_label)
    ax.set_title(title)
    ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=7)
    return [_done(name, title, fig, _left_out_note(layers, left_out))]


def _experiment_chart(exp: ExperimentCurves) -> Chart | None:
    if not any(c.x and c.y for c in exp.curves) and not exp.x_marks:
        return None
    fig, ax = _figure()
    drawn = False
    for i, curve in enumerate(exp.curves):
        n = min(len(curve.x), len(curve.y))
        if n == 0:
            continue
        xs, ys = curve.x[:n], curve.y[:n]
        if exp.log_x:
            xs = [_positive(x) for x in xs]
        drawn |= any(_finite(x) and _finite(y) for x, y in zip(xs, ys, strict=True))
        ax.plot(xs, ys, marker="." if n < 80 else None, label=_short(curve.label), color=_colour(i))
    styles = ["--", ":", "-."]
    for i, (label, x) in enumerate(exp.x_marks.items()):
        if _finite(x) and (not exp.log_x or x > 0):
            ax.axvline(
                x,
                color="#444444",
                linestyle=styles[i % 3],
                linewidth=1,
                label=f"{_short(label)} ({x:.3g})",
            )
            drawn = True
    if exp.log_x and drawn:
        ax.set_xscale("log")
    if not drawn:
        _say(ax, "the experiment produced no finite value")
    ax.set_xlabel(exp.x_label)
    ax.set_ylabel(exp.y_label)
    ax.set_title(exp.title)
    ax.legend(loc="best", fontsize=7)
    return _done(f"experiment-{_slug(exp.check)}", exp.title, fig, "")


# -- choosing layers ------------------------------------------------------------------------


def pick_layers(
    lines: dict[str, list[float]], limit: int = MAX_LAYERS, *, log: bool = False
) -> tuple[list[str], int]:
    """At most ``limit`` layers of ``lines`` (in their own order) and how many were left out.

    Kept first: the first and the last layer, layers with a non-finite value, the layers with
    the largest and the smallest median (of log values when ``log``), then layers evenly
    spread over the rest, so the chart shows the spread through the depth."""
    names = list(lines)
    if len(names) <= limit:
        return names, 0
    chosen: list[str] = []

    def take(name: str) -> None:
        if name not in chosen and len(chosen) < limit:
            chosen.append(name)

    take(names[0])
    take(names[-1])
    for n in names:
        if any(_nonfinite(v) for v in lines[n]):
            take(n)
    typical = {n: _median(lines[n], log) for n in names}
    ranked = sorted((n for n in names if typical[n] is not None), key=lambda n: typical[n])  # type: ignore[arg-type, return-value]
    if ranked:
        take(ranked[-1])
        take(ranked[0])
    rest = [n for n in names if n not in chosen]
    room = limit - len(chosen)
    if room > 0 and rest:
        for i in range(room):
            take(rest[round(i * (len(rest) - 1) / max(room - 1, 1))])
    order = {n: i for i, n in enumerate(names)}
    chosen.sort(key=order.__getitem__)
    return chosen, len(names) - len(chosen)


def _median(values: list[float], log: bool) -> float | None:
    vals = [v for v in values if _finite(v) and (not log or v > 0)]
    if not vals:
        return None
    return statistics.median(math.log10(v) for v in vals) if log else statistics.median(vals)


def _left_out_note(layers: list[str], left_out: int) -> str:
    if not left_out:
        return ""
    return (
        f"{len(layers)} of {len(layers) + left_out} layers shown (first, last, non-finite, the "
        f"largest and smallest typical value, then spread over the depth); {left_out} left out"
    )


# -- drawing helpers ---------------------------------------------------------------------


def _figure(legend_outside: bool = False) -> tuple[object, object]:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(_WIDTH, _HEIGHT), dpi=_DPI, layout="constrained")
    ax = fig.add_subplot()
    ax.grid(alpha=0.3)
    return fig, ax


def _done(name: str, title: str, fig: object, note: str) -> Chart:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")  # type: ignore[attr-defined]
    return Chart(name=name, title=title, png=buf.getvalue(), note=note)


def _step_axis(ax: object) -> None:
    from matplotlib.ticker import MaxNLocator

    ax.set_xlabel("step")  # type: ignore[attr-defined]
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # type: ignore[attr-defined]


def _say(ax: object, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="#555555")  # type: ignore[attr-defined]


_PALETTE = [
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
]


def _colour(i: int) -> str:
    return _PALETTE[i % len(_PALETTE)]


def _layer_label(name: str) -> str:
    return _short(name or "<root>", 40)


def _short(text: str, limit: int = _LABEL_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "experiment"


def _finite(v: float) -> bool:
    return isinstance(v, (int, float)) and math.isfinite(v)


def _nonfinite(v: float) -> bool:
    return isinstance(v, float) and math.isinf(v)


def _positive(v: float) -> float:
    """Log axes cannot show zero or negative values: they become gaps."""
    return v if _finite(v) and v > 0 else math.nan


def _steps_text(steps: list[int], limit: int = 6) -> str:
    shown = ", ".join(str(s) for s in steps[:limit])
    return shown + (", …" if len(steps) > limit else "")
