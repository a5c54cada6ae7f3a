"""What does watching a training run cost? Ratios to the plain training step.

The main measurement (the default) runs, in one process and per setting, the same
training step (forward, loss, backward, optimizer step on a fixed batch) in six modes:

- ``plain``:          the training step alone;
- ``watch-default``:  inside ``nndoctor.watch(model, optimizer)`` (adaptive sampling,
  overhead budget 2 %);
- ``watch-full``:     inside ``nndoctor.watch(model, optimizer, every=1)``;
- ``check-probes``:   with :class:`nndoctor.probes.training.TrainingProbe` attached, as
  ``nndoctor check`` observes a script (global loss, backward, ``zero_grad`` and
  optimizer instrumentation and per-module hooks);
- ``detect-anomaly``: under ``torch.autograd.detect_anomaly()``;
- ``item-hooks``:     a forward hook on every leaf module calling ``.item()`` on the mean
  and the standard deviation of its output, the usual hand-written monitor.

Settings: ``small-cnn`` (a four-convolution CNN of 20-50 ms per step on one CPU core),
``resnet18`` (a BasicBlock ResNet-18 for 32x32 inputs at batch 128) and ``yolov3`` (the
zoo's YOLOv3-style detector with its own loss and optimizer). On CPU always; on CUDA
where a device is present, where the watch modes also run with
``torch.cuda.set_sync_debug_mode("error")`` to find any hook that synchronises with the host.

Timing: one *block* is a mode entered afresh, ``warmup`` untimed steps, then ``steps``
timed steps. A *round* runs one block of every mode, in an order rotated from round to
round; ``--repeats`` rounds interleave the modes so that a change in machine load hits
them alike. A mode's figure is the median over rounds of its milliseconds per step, and
its ratio is that median over the plain step's. On the CPU with one torch thread a block
is timed in the thread's CPU time (see :func:`step_clock`: a busy machine barely moves it);
elsewhere in wall time, and on CUDA the device is synchronised around every timed block. Entering and leaving a mode is not timed: a long run pays it
once.

The older end-to-end measurement (``--end-to-end``) times whole ``nndoctor check`` runs
of the examples against plain runs of the same scripts, each a fresh interpreter.

Usage::

    python benchmarks/overhead.py --threads 1 --json benchmarks/results/overhead-cpu.json
    python benchmarks/overhead.py --settings small-cnn --repeats 9
    python benchmarks/overhead.py --device cuda --json benchmarks/results/overhead-cuda.json
    python benchmarks/overhead.py --quick                 # tiny sizes, 2 steps: does it run?
    python benchmarks/overhead.py --end-to-end --examples healthy_mlp healthy_cnn

See benchmarks/README.md for what the numbers mean.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import platform
import runpy
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"

MODES = ("plain", "watch-default", "watch-full", "check-probes", "detect-anomaly", "item-hooks")
WATCH_MODES = ("watch-default", "watch-full")
SETTINGS = ("small-cnn", "resnet18", "yolov3")
SYNC_SUFFIX = " [sync=error]"

# Timed steps per block, untimed warm-up steps per block, and rounds, per setting and
# device kind. ResNet-18 at batch 128 takes seconds per step on a CPU core, so it gets
# few steps there; the table's "steps" column says how many were timed.
DEFAULTS: dict[tuple[str, str], tuple[int, int, int]] = {
    ("small-cnn", "cpu"): (30, 10, 7),
    ("resnet18", "cpu"): (3, 1, 3),
    ("yolov3", "cpu"): (6, 4, 5),
    ("small-cnn", "cuda"): (100, 20, 7),
    ("resnet18", "cuda"): (50, 10, 7),
    ("yolov3", "cuda"): (50, 10, 7),
}
QUICK = (2, 1, 1)
# Fewer timed steps than this in a setting, and the table says so.
FEW_STEPS = 10


# -- the plain baseline of the end-to-end measurement: a script for N optimizer steps -----


class _Enough(BaseException):  # noqa: N818 - a control-flow signal, not an error
    """Raised from the step hook; a BaseException so the script's ``except Exception`` lets it pass."""


def plain_run(script: str, steps: int, argv: list[str]) -> None:
    """Run ``script`` as ``__main__`` and stop it after ``steps`` optimizer steps."""
    import torch.optim.optimizer as optim_mod

    done = 0

    def count(optimizer: Any, args: Any, kwargs: Any) -> None:
        nonlocal done
        done += 1
        if done >= steps:
            raise _Enough

    optim_mod.register_optimizer_step_post_hook(count)
    sys.argv = [script, *argv]
    sys.path.insert(0, os.path.dirname(os.path.abspath(script)))
    try:
        runpy.run_path(script, run_name="__main__")
    except _Enough:
        pass
    if done < steps:
        print(f"note: the script finished after {done} of {steps} steps", file=sys.stderr)


# -- settings -------------------------------------------------------------------------------


@dataclass
class Workload:
    """A model, its optimizer, fixed batches and the loss: one training step, repeatable."""

    setting: str
    label: str  # shown in the table, e.g. "resnet18 (batch 128, 32x32)"
    model: Any
    optimizer: Any
    batches: list[Any]
    loss: Callable[[Any, Any], Any]
    device: str
    _next: int = 0

    def step(self) -> None:
        """One training step on the next batch (cycling through the fixed ones)."""
        batch = self.batches[self._next % len(self.batches)]
        self._next += 1
        self.optimizer.zero_grad()
        self.loss(self.model, batch).backward()
        self.optimizer.step()


def _cross_entropy(model: Any, batch: Any) -> Any:
    import torch.nn.functional as F

    x, y = batch
    # F.cross_entropy is looked up at call time, so the probe's loss wrapper sees it.
    return F.cross_entropy(model(x), y)


def small_cnn(width: int = 16, classes: int = 10) -> Any:
    """Four 3x3 convolutions with ReLU, two max-pools, global average pooling, a linear head."""
    from torch import nn

    w = width
    return nn.Sequential(
        nn.Conv2d(3, w, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(w, w, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(w, 2 * w, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(2 * w, 2 * w, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(2 * w, classes),
    )


def resnet18(width: int = 64, classes: int = 10) -> Any:
    """ResNet-18 (He et al. 2016) for 32x32 inputs: a 3x3 stem without max-pool, four
    stages of two BasicBlocks at widths w, 2w, 4w, 8w (strides 1, 2, 2, 2), average
    pooling and a linear head; 11.2 M parameters at w = 64."""
    import torch
    from torch import nn

    class BasicBlock(nn.Module):
        """Two 3x3 convolutions with batch norm; a 1x1 projection where the shape changes."""

        def __init__(self, c_in: int, c_out: int, stride: int) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(c_out)
            self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(c_out)
            self.relu = nn.ReLU()
            self.shortcut: nn.Module = nn.Identity()
            if stride != 1 or c_in != c_out:
                self.shortcut = nn.Sequential(
                    nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out)
                )

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            out = self.relu(self.bn1(self.conv1(x)))
            return self.relu(self.bn2(self.conv2(out)) + self.shortcut(x))

    layers: list[nn.Module] = [
        nn.Conv2d(3, width, 3, 1, 1, bias=False),
        nn.BatchNorm2d(width),
        nn.ReLU(),
    ]
    c_in = width
    for i, c_out in enumerate((width, 2 * width, 4 * width, 8 * width)):
        layers += [BasicBlock(c_in, c_out, 1 if i == 0 else 2), BasicBlock(c_out, c_out, 1)]
        c_in = c_out
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c_in, classes)]
    return nn.Sequential(*layers)


def build_workload(setting: str, device: str, quick: bool = False) -> Workload:
    """The model, optimizer and batches of ``setting``, seeded; tiny when ``quick``."""
    import torch

    torch.manual_seed(0)
    if setting == "small-cnn":
        # Batch 64 makes a step of 20-50 ms on one quiet CPU core (measured 5.8 ms at 12).
        batch, size = (4, 16) if quick else (64, 32)
        model = small_cnn(8 if quick else 16).to(device)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        batches = [
            (torch.randn(batch, 3, size, size, device=device), torch.randint(0, 10, (batch,)))
            for _ in range(2)
        ]
        batches = [(x, y.to(device)) for x, y in batches]
        label = f"small-cnn (batch {batch}, {size}x{size})"
        return Workload(setting, label, model, optimizer, batches, _cross_entropy, device)
    if setting == "resnet18":
        batch = 4 if quick else 128
        model = resnet18(8 if quick else 64).to(device)
        optimizer = torch.optim.SGD(
            model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4, nesterov=True
        )
        x = torch.randn(batch, 3, 32, 32, device=device)
        y = torch.randint(0, 10, (batch,), device=device)
        label = f"resnet18{' width 8' if quick else ''} (batch {batch}, 32x32)"
        return Workload(setting, label, model, optimizer, [(x, y)], _cross_entropy, device)
    if setting == "yolov3":
        return _yolov3(device, quick)
    raise ValueError(f"unknown setting {setting!r}; known: {', '.join(SETTINGS)}")


def _yolov3(device: str, quick: bool) -> Workload:
    """The zoo's YOLOv3 subject (its model, loss and optimizer), on two fixed batches."""
    import torch

    from nndoctor.zoo.detection import yolov3 as yolo
    from nndoctor.zoo.detection.shapes import ShapesDetection
    from nndoctor.zoo.registry import get_zoo

    if quick:  # a narrow model on a few generated images: seconds less to build
        cfg = yolo.YoloConfig(stem_width=8, stage_widths=(8, 16, 16, 32), neck_widths=(8, 8, 16))
        train_set = ShapesDetection("train", size=16, seed=0)
        model = yolo.build_model(0, cfg, train_set).to(device)
        loader = yolo.make_loader(train_set, 0, batch_size=4)
        loss, optimizer = yolo.yolov3_batch_loss, torch.optim.AdamW(model.parameters())
    else:
        subject = get_zoo("yolov3").build(seed=0, device=device)
        model, loader, loss = subject.model, subject.iter_batches(), subject.compute_loss
        assert subject.optimizer is not None
        optimizer = subject.optimizer.build(model)
    batches = []
    for images, targets in loader:
        batches.append((images.to(device), targets.to(device)))
        if len(batches) == 2:
            break
    batch = batches[0][0].shape[0]
    label = f"yolov3{' narrow' if quick else ''} (batch {batch}, 64x64)"
    return Workload("yolov3", label, model, optimizer, batches, loss, device)


# -- modes ----------------------------------------------------------------------------------


class ModeUnavailable(Exception):
    """The mode cannot run here (``nndoctor.watch`` not importable, say)."""


def watch_function() -> Callable[..., Any]:
    """``nndoctor.watch``, or :class:`ModeUnavailable` saying why not."""
    try:
        from nndoctor.watch import watch  # the context manager, not the package
    except Exception as exc:  # missing, or broken while being written
        why = f"nndoctor.watch not importable ({type(exc).__name__}: {exc})"
        raise ModeUnavailable(why) from exc
    if not callable(watch):
        raise ModeUnavailable("nndoctor.watch.watch is not callable")
    return watch


class ItemHooks:
    """A forward hook on every leaf module reading its output's mean and std with ``.item()``."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.handles: list[Any] = []
        self.last: dict[str, tuple[float, float]] = {}

    def __enter__(self) -> ItemHooks:
        import torch

        for name, module in self.model.named_modules():
            if next(module.children(), None) is not None:
                continue

            def hook(module: Any, args: Any, output: Any, name: str = name) -> None:
                if isinstance(output, torch.Tensor) and output.is_floating_point():
                    out = output.detach()
                    self.last[name] = (out.mean().item(), out.std().item())

            self.handles.append(module.register_forward_hook(hook))
        return self

    def __exit__(self, *exc: object) -> None:
        for handle in self.handles:
            handle.remove()
        self.handles.clear()


@contextlib.contextmanager
def mode_context(mode: str, workload: Workload, info: dict[str, Any]) -> Iterator[None]:
    """Install ``mode``'s instrumentation on ``workload`` for the block; remove it after.

    ``info`` receives what the mode reports about itself (the watch's sampling, say).
    """
    import torch

    if mode == "plain":
        yield
    elif mode in WATCH_MODES:
        watch = watch_function()
        every = 1 if mode == "watch-full" else None
        # The watch prints its alerts as they happen; the benchmark's output is the table.
        with contextlib.redirect_stdout(_Discard()), contextlib.redirect_stderr(_Discard()):
            watcher = watch(workload.model, workload.optimizer, every=every)
            with watcher:
                yield
        info.update(_watch_info(watcher))
    elif mode == "check-probes":
        from nndoctor.probes.recording import Recording
        from nndoctor.probes.training import TrainingProbe

        with TrainingProbe(Recording()) as probe:
            probe.attach_model(workload.model)
            probe.attach_optimizer(workload.optimizer)
            yield
            info["steps_recorded"] = len(probe.recording.steps)
    elif mode == "detect-anomaly":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "Anomaly Detection has been enabled..."
            with torch.autograd.detect_anomaly():
                yield
    elif mode == "item-hooks":
        with ItemHooks(workload.model) as hooks:
            yield
            info["layers_hooked"] = len(hooks.handles)
    else:
        raise ValueError(f"unknown mode {mode!r}; known: {', '.join(MODES)}")


class _Discard:
    """A text sink for ``redirect_stdout``."""

    def write(self, text: str) -> int:
        return len(text)

    def flush(self) -> None:
        pass


def _watch_info(watcher: Any) -> dict[str, Any]:
    """What the watch reported about the block, for the JSON: steps seen and sampled, the
    sampling periods, its own overhead estimate, alerts, crashes and notes."""
    report = getattr(watcher, "report", None)
    if report is None:
        return {}
    out: dict[str, Any] = {}
    for attr in ("steps_seen", "steps_sampled", "overhead"):
        value = getattr(report, attr, None)
        if isinstance(value, (int, float)):
            out[attr] = value
    out["periods"] = [list(p) for p in getattr(report, "periods", [])]
    out["alerts"] = [getattr(f, "title", str(f)) for f in getattr(report, "alerts", [])]
    out["crashes"] = list(getattr(report, "crashes", []))
    out["notes"] = list(getattr(report, "notes", []))
    return out


# -- timing ---------------------------------------------------------------------------------


def _synchronize(device: str) -> None:
    """Wait for the device, outside any sync debug mode (an explicit wait is not a finding)."""
    if not device.startswith("cuda"):
        return
    import torch

    previous = torch.cuda.get_sync_debug_mode()
    torch.cuda.set_sync_debug_mode(0)
    try:
        torch.cuda.synchronize()
    finally:
        torch.cuda.set_sync_debug_mode(previous)


@contextlib.contextmanager
def sync_debug(level: str | None) -> Iterator[list[warnings.WarningMessage]]:
    """``torch.cuda.set_sync_debug_mode(level)`` for the steps only; the warnings it raises
    ("warn") are collected in the yielded list."""
    if level is None:
        yield []
        return
    import torch

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode(level)
        try:
            yield caught
        finally:
            torch.cuda.set_sync_debug_mode(0)


def _sync_sites(caught: Sequence[warnings.WarningMessage]) -> set[str]:
    """``file:line`` of every synchronisation warning: the Python line that made the call."""
    return {
        f"{os.path.relpath(w.filename, ROOT)}:{w.lineno}"
        for w in caught
        if "synchroniz" in str(w.message).lower()
    }


def step_clock(device: str) -> Callable[[], float]:
    """The clock blocks are timed with. On the CPU with one torch thread every kernel,
    backward included, runs on the calling thread, so its CPU time is the step's cost and
    other processes on a busy machine barely move it (wall time moved ×0.8-×1.2 between
    rounds on a loaded 2-core machine). Elsewhere: wall time."""
    import torch

    if device == "cpu" and torch.get_num_threads() == 1:
        return time.thread_time
    return time.perf_counter


def clock_name(device: str) -> str:
    return "thread CPU time" if step_clock(device) is time.thread_time else "wall time"


def run_block(
    workload: Workload, mode: str, warmup: int, steps: int, sync_level: str | None = None
) -> tuple[float, dict[str, Any]]:
    """Seconds per step of ``steps`` timed steps in ``mode`` after ``warmup`` untimed ones,
    and what the mode reported. ``sync_level`` puts the steps under that sync debug mode;
    the sites that synchronised ("warn") land in the info under ``sync_sites``."""
    info: dict[str, Any] = {}
    gc.collect()
    with mode_context(mode, workload, info):
        with sync_debug(sync_level) as caught:
            for _ in range(warmup):
                workload.step()
            clock = step_clock(workload.device)
            _synchronize(workload.device)
            start = clock()
            for _ in range(steps):
                workload.step()
            _synchronize(workload.device)
            seconds = (clock() - start) / steps
        if sync_level is not None:
            info["sync_sites"] = sorted(_sync_sites(caught))
    return seconds, info


@dataclass
class ModeResult:
    """Every block of one mode in one setting."""

    mode: str
    seconds: list[float] = field(default_factory=list)
    info: list[dict[str, Any]] = field(default_factory=list)
    unavailable: str | None = None
    note: str = ""
    synchronised: bool | None = None  # sync debug rows only

    @property
    def median(self) -> float | None:
        return statistics.median(self.seconds) if self.seconds else None


def _plain_sync_sites(workload: Workload) -> set[str]:
    """The plain step's own synchronisations (``torch.nonzero`` in a loss, say)."""
    _, info = run_block(workload, "plain", 1, 2, sync_level="warn")
    return set(info["sync_sites"])


def _sync_row(
    workload: Workload, mode: str, warmup: int, steps: int, plain_sites: set[str]
) -> ModeResult:
    """The watch mode under ``set_sync_debug_mode("error")``: did any hook synchronise?

    Where the plain step synchronises by itself, "error" would stop at the plain code,
    so the row runs under "warn" and counts only sites the plain step does not have.
    """
    row = ModeResult(mode + SYNC_SUFFIX)
    level = "warn" if plain_sites else "error"
    try:
        seconds, info = run_block(workload, mode, warmup, steps, sync_level=level)
    except ModeUnavailable as exc:
        row.unavailable = str(exc)
        return row
    except RuntimeError as exc:
        if "synchroniz" not in str(exc).lower():
            raise
        row.synchronised = True
        row.note = f"a hook synchronised: {_innermost_own_frame(exc)}"
        return row
    row.seconds.append(seconds)
    row.info.append(info)
    extra = sorted(set(info.get("sync_sites", [])) - plain_sites)
    row.synchronised = bool(extra)
    if level == "warn":
        row.note = "debug mode warn (the plain step synchronises by itself); "
    row.note += f"hooks synchronised at {', '.join(extra)}" if extra else "no hook synchronised"
    return row


def _innermost_own_frame(exc: BaseException) -> str:
    """The innermost frame in nndoctor's code of ``exc``'s traceback, as ``file:line``."""
    own = [
        f
        for f in traceback.extract_tb(exc.__traceback__)
        if f.filename.startswith(str(ROOT / "nndoctor"))
    ]
    if not own:
        return str(exc).splitlines()[0]
    frame = own[-1]
    return f"{os.path.relpath(frame.filename, ROOT)}:{frame.lineno}"


def measure_setting(
    workload: Workload,
    modes: Sequence[str],
    steps: int,
    warmup: int,
    repeats: int,
    progress: Callable[[str], None] | None = None,
) -> list[ModeResult]:
    """Interleaved rounds of one block per mode; then, on CUDA, the sync debug rows."""
    results = {mode: ModeResult(mode) for mode in modes}
    for mode in modes:
        if mode in WATCH_MODES:
            try:
                watch_function()
            except ModeUnavailable as exc:
                results[mode].unavailable = str(exc)
    runnable = [m for m in modes if results[m].unavailable is None]
    for _ in range(warmup):  # the first steps of a process (allocator, kernels) are slower
        workload.step()
    for r in range(repeats):
        # Rotated order: no mode always follows the same one.
        for mode in runnable[r % len(runnable) :] + runnable[: r % len(runnable)]:
            seconds, info = run_block(workload, mode, warmup, steps)
            results[mode].seconds.append(seconds)
            results[mode].info.append(info)
            if progress:
                progress(f"round {r + 1}/{repeats} {mode}: {1e3 * seconds:.1f} ms/step")
    rows = list(results.values())
    if workload.device.startswith("cuda"):
        plain_sites = _plain_sync_sites(workload)
        for mode in WATCH_MODES:
            if mode in modes:
                rows.append(_sync_row(workload, mode, warmup, steps, plain_sites))
    return rows


# -- the run --------------------------------------------------------------------------------


def run(
    settings: Sequence[str] = SETTINGS,
    devices: Sequence[str] = ("cpu",),
    modes: Sequence[str] = MODES,
    steps: int | None = None,
    warmup: int | None = None,
    repeats: int | None = None,
    quick: bool = False,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Measure every mode on every setting and device; the result as a JSON-ready dict.

    ``steps``, ``warmup`` and ``repeats`` override the per-setting defaults
    (:data:`DEFAULTS`; :data:`QUICK` when ``quick``).
    """
    if "plain" not in modes:
        modes = ("plain", *modes)
    rows: list[dict[str, Any]] = []
    for device in devices:
        kind = "cuda" if device.startswith("cuda") else "cpu"
        for setting in settings:
            d_steps, d_warmup, d_repeats = QUICK if quick else DEFAULTS[(setting, kind)]
            n, w, r = steps or d_steps, d_warmup if warmup is None else warmup, repeats or d_repeats
            start = time.perf_counter()
            workload = build_workload(setting, device, quick)
            params = sum(p.numel() for p in workload.model.parameters())
            if progress:
                progress(f"{workload.label} on {device}: {params:,} parameters")
            results = measure_setting(workload, modes, n, w, r, progress)
            plain = results[0].median
            for res in results:
                med = res.median
                rows.append(
                    {
                        "setting": setting,
                        "label": workload.label,
                        "device": _device_name(device),
                        "mode": res.mode,
                        "ms_per_step": None if med is None else 1e3 * med,
                        "ratio": None if med is None or not plain else med / plain,
                        "ratio_paired": paired_ratio(res.seconds, results[0].seconds),
                        "steps": n,
                        "warmup": w,
                        "blocks": len(res.seconds),
                        "all_ms_per_step": [1e3 * s for s in res.seconds],
                        "unavailable": res.unavailable,
                        "synchronised": res.synchronised,
                        "note": res.note,
                        "info": res.info,
                        "parameters": params,
                    }
                )
            if progress:
                progress(f"{workload.label} on {device}: {time.perf_counter() - start:.0f} s")
            del workload
            gc.collect()
    return {"environment": environment(), "quick": quick, "rows": rows}


def paired_ratio(seconds: Sequence[float], plain: Sequence[float]) -> float | None:
    """The median over rounds of a block's time over the plain block's of the same round:
    a second view of the ratio that a load drift from round to round does not move."""
    if not seconds or len(seconds) != len(plain) or min(plain) <= 0:
        return None  # not measured in the rounds (unavailable, or a sync debug row)
    return statistics.median(s / p for s, p in zip(seconds, plain, strict=True))


def _device_name(device: str) -> str:
    if device.startswith("cuda"):
        import torch

        return f"cuda ({torch.cuda.get_device_name(torch.device(device))})"
    import torch

    threads = torch.get_num_threads()
    return f"cpu ({threads} thread{'s' if threads > 1 else ''}, {clock_name(device)})"


def table(result: dict[str, Any]) -> str:
    """The Markdown table: one row per setting and mode."""
    lines = [
        "| setting | mode | median ms/step | ratio to plain | steps | device | note |",
        "|---|---|---:|---:|---|---|---|",
    ]
    for row in result["rows"]:
        if row["unavailable"]:
            ms, ratio, note = "—", "unavailable", row["unavailable"]
        else:
            ms = "—" if row["ms_per_step"] is None else f"{row['ms_per_step']:.1f}"
            ratio = "—" if row["ratio"] is None else f"×{row['ratio']:.2f}"
            note = row["note"]
            if row["mode"] == "plain" and row["steps"] * row["blocks"] < FEW_STEPS:
                note = (note + "; " if note else "") + "few steps: slow on this device"
        steps = f"{row['steps']} × {row['blocks']} blocks" if row["blocks"] else "—"
        lines.append(
            f"| {row['label']} | {row['mode']} | {ms} | {ratio} | {steps} | {row['device']} | {note} |"
        )
    return "\n".join(lines)


def environment() -> dict[str, Any]:
    """Versions, threads and load: what a reader needs to compare two runs."""
    import torch

    import nndoctor

    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "nndoctor": nndoctor.__version__,
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "load_average_at_start": load,
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


# -- end to end (whole `nndoctor check` runs of the examples) -------------------------------


def observation_checks() -> list[str]:
    """The ids of every observation check (no experiments)."""
    from nndoctor.checks.registry import all_checks

    return [c.id for c in all_checks() if c.kind == "observation"]


def commands(script: Path, steps: int, observe_ids: list[str]) -> dict[str, list[str]]:
    """The plain, observe and full command lines for one example script."""
    py = sys.executable
    check = [py, "-m", "nndoctor", "check", str(script), "--steps", str(steps)]
    check += ["--fail-on", "never"]
    return {
        "plain": [py, str(Path(__file__).resolve()), "--plain-run", str(script), str(steps)],
        "observe": [*check, "--select", ",".join(observe_ids)]
        if observe_ids
        else [*check, "--quick"],
        "full": check,
    }


def timed(cmd: list[str], cwd: str, env: dict[str, str]) -> tuple[float, int]:
    """Wall-clock seconds and exit code of one command."""
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        tail = proc.stderr.decode(errors="replace").strip().splitlines()[-1:] or [""]
        print(f"    ! exit {proc.returncode}: {' '.join(cmd[-6:])}: {tail[0]}", file=sys.stderr)
    return seconds, proc.returncode


def end_to_end(
    scripts: list[Path], steps: int, repeats: int, env: dict[str, str]
) -> list[dict[str, Any]]:
    """Plain, observe and full runs of every script, interleaved for ``repeats`` rounds."""
    observe_ids = observation_checks()
    rows = []
    with tempfile.TemporaryDirectory(prefix="nndoctor-bench-") as cwd:  # scripts write here
        for script in scripts:
            cmds = commands(script, steps, observe_ids)
            times: dict[str, list[float]] = {mode: [] for mode in cmds}
            codes: dict[str, list[int]] = {mode: [] for mode in cmds}
            for _ in range(repeats):
                for mode, cmd in cmds.items():
                    seconds, rc = timed(cmd, cwd, env)
                    times[mode].append(seconds)
                    codes[mode].append(rc)
            med = {mode: statistics.median(ts) for mode, ts in times.items()}
            row = {
                "example": script.name,
                "seconds": times,
                "exit_codes": codes,
                "median": med,
                "ratio_observe": med["observe"] / med["plain"],
                "ratio_full": med["full"] / med["plain"],
            }
            rows.append(row)
            print(
                f"  {script.name:28s} plain {med['plain']:6.2f}s  observe {med['observe']:6.2f}s "
                f"(x{row['ratio_observe']:.2f})  full {med['full']:6.2f}s (x{row['ratio_full']:.2f})",
                flush=True,
            )
    return rows


def end_to_end_table(rows: list[dict[str, Any]]) -> str:
    """The Markdown table of the end-to-end measurement."""
    lines = [
        "| example | plain s | observe s | observe ratio | full s | full ratio |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        m = r["median"]
        lines.append(
            f"| {r['example']} | {m['plain']:.2f} | {m['observe']:.2f} | {r['ratio_observe']:.2f} "
            f"| {m['full']:.2f} | {r['ratio_full']:.2f} |"
        )
    if rows:
        obs = statistics.median(r["ratio_observe"] for r in rows)
        full = statistics.median(r["ratio_full"] for r in rows)
        lines.append(f"| **median over examples** | | | **{obs:.2f}** | | **{full:.2f}** |")
    return "\n".join(lines)


# -- command line ---------------------------------------------------------------------------


def _devices(spec: str) -> list[str]:
    import torch

    if spec == "auto":
        return ["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"]
    return [d.strip() for d in spec.split(",") if d.strip()]


def _names(spec: str, known: Sequence[str], what: str) -> list[str]:
    names = [n.strip() for n in spec.split(",") if n.strip()]
    unknown = [n for n in names if n not in known]
    if unknown:
        raise SystemExit(f"unknown {what}: {', '.join(unknown)}; known: {', '.join(known)}")
    return names


def main(argv: Sequence[str] | None = None) -> dict[str, Any] | None:
    """The command line; returns the result it wrote (None for the child modes)."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--settings", default=",".join(SETTINGS), help="comma-separated")
    parser.add_argument("--modes", default=",".join(MODES), help="comma-separated")
    parser.add_argument("--device", default="auto", help="cpu, cuda, cpu,cuda or auto")
    parser.add_argument("--steps", type=int, help="timed steps per block (default: per setting)")
    parser.add_argument("--warmup", type=int, help="untimed steps per block (default: per setting)")
    parser.add_argument("--repeats", type=int, help="rounds of blocks (default: per setting)")
    parser.add_argument("--quick", action="store_true", help="tiny models, 2 steps, 1 round")
    parser.add_argument("--threads", type=int, help="torch intra-op threads (and OMP/MKL)")
    parser.add_argument("--json", help="also write the numbers here")
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    parser.add_argument(
        "--end-to-end", action="store_true", help="whole `nndoctor check` runs of the examples"
    )
    parser.add_argument("--examples", nargs="*", help="with --end-to-end (default: all)")
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--plain-run"]:  # the end-to-end baseline's child: the rest is the script's
        plain_run(argv[1], int(argv[2]), [a for a in argv[3:] if a != "--"])
        return None
    args = parser.parse_args(argv)

    env = dict(os.environ)
    if args.threads:
        env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(args.threads)
        import torch

        torch.set_num_threads(args.threads)

    def progress(line: str) -> None:
        if not args.quiet:
            print(f"  {line}", file=sys.stderr, flush=True)

    if args.end_to_end:
        names = args.examples or sorted(p.stem for p in EXAMPLES.glob("*.py"))
        scripts = [EXAMPLES / (n if n.endswith(".py") else f"{n}.py") for n in names]
        steps = args.steps or 20
        repeats = args.repeats or 3
        print(f"end to end: {len(scripts)} example(s), {steps} steps, {repeats} repeat(s)")
        result: dict[str, Any] = {"environment": environment(), "steps": steps}
        result["observation_checks"] = observation_checks()
        result["end_to_end"] = end_to_end(scripts, steps, repeats, env)
        print()
        print(end_to_end_table(result["end_to_end"]))
    else:
        result = run(
            settings=_names(args.settings, SETTINGS, "setting"),
            devices=_devices(args.device),
            modes=_names(args.modes, MODES, "mode"),
            steps=args.steps,
            warmup=args.warmup,
            repeats=args.repeats,
            quick=args.quick,
            progress=progress,
        )
        print(table(result))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
        print(f"\nwritten to {args.json}", file=sys.stderr)
    return result


if __name__ == "__main__":
    main()
