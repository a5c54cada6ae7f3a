"""How much slower is a script under ``nndoctor check`` than the same script run plainly?

Two measurements, both reported as ratios (DESIGN.md: cost is measured, never
asserted with a wall-clock threshold in a test).

1. End to end, per example (``examples/*.py``), each a fresh interpreter:

   - ``plain``:   ``python script.py`` stopped after N optimizer steps. The scripts are
     unmodified and most train for several epochs, so the step count is enforced by
     a tiny wrapper (``python overhead.py --plain-run SCRIPT N``) that runs the
     script as ``__main__`` with one global optimizer step post-hook counting steps
     and raising ``SystemExit(0)`` after the N-th. The hook costs a Python call per
     step; nothing else is added.
   - ``observe``: ``nndoctor check SCRIPT --steps N --select <every observation check>``:
     capture, probes, the observation checks and the report; no experiments.
   - ``full``:    ``nndoctor check SCRIPT --steps N``: the default run, experiments included.

   Every mode is repeated ``--repeats`` times, interleaved (plain, observe, full,
   plain, ...) so that a change in machine load hits all three alike; the table
   gives the median seconds and the ratio of medians to ``plain``. All three pay
   the interpreter start and ``import torch``; nndoctor also imports its CLI.

2. The probes alone, in one process, steady state: the same training step of a
   model with and without :class:`nndoctor.probes.training.TrainingProbe` attached
   (its global loss/backward/optimizer instrumentation and per-module hooks), after
   warm-up, in alternating blocks; the ratio of the median per-step times. This is
   the price a long run pays under ``nndoctor.watch`` with sampling every step.

Usage::

    python benchmarks/overhead.py                      # all examples, 3 repeats, 20 steps
    python benchmarks/overhead.py --repeats 5 --examples healthy_mlp healthy_cnn
    python benchmarks/overhead.py --probe-only          # only the in-process probe ratio
    python benchmarks/overhead.py --json results.json   # where the numbers go (default: overhead.json)

See benchmarks/README.md for what the numbers mean.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import runpy
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"


# -- the plain baseline: run a script for N optimizer steps ---------------------------------


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


# -- end to end -----------------------------------------------------------------------------


def observation_checks() -> list[str]:
    from nndoctor.checks.registry import all_checks

    return [c.id for c in all_checks() if c.kind == "observation"]


def commands(script: Path, steps: int, observe_ids: list[str]) -> dict[str, list[str]]:
    py = sys.executable
    check = [
        py,
        "-m",
        "nndoctor",
        "check",
        str(script),
        "--steps",
        str(steps),
        "--fail-on",
        "never",
    ]
    return {
        "plain": [py, str(Path(__file__).resolve()), "--plain-run", str(script), str(steps)],
        "observe": [*check, "--select", ",".join(observe_ids)]
        if observe_ids
        else [*check, "--quick"],
        "full": check,
    }


def timed(cmd: list[str], cwd: str, env: dict[str, str]) -> tuple[float, int]:
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
    observe_ids = observation_checks()
    rows = []
    with tempfile.TemporaryDirectory(
        prefix="nndoctor-bench-"
    ) as cwd:  # scripts write here, if anything
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
                "extra_seconds_observe": med["observe"] - med["plain"],
                "extra_seconds_full": med["full"] - med["plain"],
            }
            rows.append(row)
            print(
                f"  {script.name:28s} plain {med['plain']:6.2f}s  observe {med['observe']:6.2f}s "
                f"(x{row['ratio_observe']:.2f})  full {med['full']:6.2f}s (x{row['ratio_full']:.2f})",
                flush=True,
            )
    return rows


# -- the probes alone ---------------------------------------------------------------------


def _subjects(device: str) -> dict[str, Callable[[], tuple[Any, Any, Any, Any]]]:
    """Models shaped like the examples', plus a wider one, with one fixed batch each."""
    import torch
    from torch import nn

    def mlp() -> tuple[Any, Any, Any, Any]:  # as in healthy_mlp.py
        model = nn.Sequential(
            nn.Linear(16, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 4)
        )
        return model, torch.randn(64, 16), torch.randint(0, 4, (64,)), torch.optim.Adam

    def cnn() -> tuple[Any, Any, Any, Any]:  # SmallCNN from healthy_cnn.py
        ns = runpy.run_path(str(EXAMPLES / "healthy_cnn.py"), run_name="bench")
        return (
            ns["SmallCNN"](),
            torch.randn(32, 3, 16, 16),
            torch.randint(0, 4, (32,)),
            torch.optim.SGD,
        )

    def wide_mlp() -> tuple[
        Any, Any, Any, Any
    ]:  # compute-bound: the hooks' fixed cost matters less
        layers: list[nn.Module] = []
        for i in range(4):
            layers += [nn.Linear(512 if i else 256, 512), nn.ReLU()]
        model = nn.Sequential(*layers, nn.Linear(512, 10))
        return model, torch.randn(256, 256), torch.randint(0, 10, (256,)), torch.optim.Adam

    del device
    return {
        "mlp (healthy_mlp)": mlp,
        "cnn (healthy_cnn)": cnn,
        "wide mlp 4x512, batch 256": wide_mlp,
    }


def _per_step_times(
    model: Any, x: Any, y: Any, optimizer: Any, device: str, warmup: int, block: int, repeats: int
) -> tuple[list[float], list[float]]:
    """Seconds per step in alternating blocks: (plain, probed), one entry per round."""
    import torch
    import torch.nn.functional as F

    from nndoctor.probes.recording import Recording
    from nndoctor.probes.training import TrainingProbe

    def step() -> None:
        optimizer.zero_grad()
        # F.cross_entropy is looked up at call time, so the probe's loss wrapper sees it.
        F.cross_entropy(model(x), y).backward()
        optimizer.step()

    def per_step(n: int) -> float:
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(n):
            step()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        return (time.perf_counter() - start) / n

    per_step(warmup)
    plain: list[float] = []
    probed: list[float] = []
    for _ in range(repeats):
        plain.append(per_step(block))
        with TrainingProbe(Recording()) as probe:
            probe.attach_model(model)
            probe.attach_optimizer(optimizer)
            per_step(warmup)  # the hooks warm up too; not timed
            probed.append(per_step(block))
    return plain, probed


def probe_overhead(
    device: str = "cpu", warmup: int = 20, block: int = 50, repeats: int = 7
) -> list[dict[str, Any]]:
    import torch

    rows = []
    for name, build in _subjects(device).items():
        torch.manual_seed(0)
        model, x, y, opt_cls = build()
        model, x, y = model.to(device), x.to(device), y.to(device)
        optimizer = opt_cls(model.parameters(), lr=1e-3)
        plain, probed = _per_step_times(model, x, y, optimizer, device, warmup, block, repeats)
        row = {
            "model": name,
            "parameters": sum(p.numel() for p in model.parameters()),
            "ms_per_step_plain": 1e3 * statistics.median(plain),
            "ms_per_step_probed": 1e3 * statistics.median(probed),
            "ratio": statistics.median(probed) / statistics.median(plain),
            "all_plain_ms": [1e3 * t for t in plain],
            "all_probed_ms": [1e3 * t for t in probed],
        }
        rows.append(row)
        print(
            f"  {name:28s} plain {row['ms_per_step_plain']:7.3f} ms/step  probed "
            f"{row['ms_per_step_probed']:7.3f} ms/step  (x{row['ratio']:.2f})",
            flush=True,
        )
    return rows


# -- report -------------------------------------------------------------------------------


def table(rows: list[dict[str, Any]]) -> str:
    head = "| example | plain s | observe s | observe ratio | full s | full ratio |\n|---|---:|---:|---:|---:|---:|"
    lines = [head]
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


def environment(threads: int | None) -> dict[str, Any]:
    import torch

    import nndoctor

    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "nndoctor": nndoctor.__version__,
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "torch_threads": threads or torch.get_num_threads(),
        "load_average_at_start": load,
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--steps", type=int, default=20, help="optimizer steps per run (nndoctor's default)"
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--examples", nargs="*", help="example names (default: every examples/*.py)"
    )
    parser.add_argument("--probe-only", action="store_true", help="only the in-process probe ratio")
    parser.add_argument("--no-probe", action="store_true", help="skip the in-process probe ratio")
    parser.add_argument("--device", default="cpu", help="device for the probe ratio (cpu or cuda)")
    parser.add_argument(
        "--threads", type=int, help="torch intra-op threads, for every run (OMP_NUM_THREADS)"
    )
    parser.add_argument("--json", default="overhead.json", help="where to write the numbers")
    parser.add_argument("--plain-run", nargs=2, metavar=("SCRIPT", "STEPS"), help=argparse.SUPPRESS)
    args, rest = parser.parse_known_args()

    if args.plain_run:  # the baseline's child process
        plain_run(args.plain_run[0], int(args.plain_run[1]), [a for a in rest if a != "--"])
        return

    env = dict(os.environ)
    if args.threads:
        env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(args.threads)
        import torch

        torch.set_num_threads(args.threads)
    result: dict[str, Any] = {
        "environment": environment(args.threads),
        "steps": args.steps,
        "repeats": args.repeats,
    }
    if not args.probe_only:
        names = args.examples or sorted(p.stem for p in EXAMPLES.glob("*.py"))
        scripts = [EXAMPLES / (n if n.endswith(".py") else f"{n}.py") for n in names]
        print(
            f"end to end: {len(scripts)} example(s), {args.steps} steps, {args.repeats} repeat(s)"
        )
        result["observation_checks"] = observation_checks()
        result["end_to_end"] = end_to_end(scripts, args.steps, args.repeats, env)
        print()
        print(table(result["end_to_end"]))
    if not args.no_probe:
        print("\nprobes alone, steady state, per optimizer step:")
        result["probe_overhead"] = probe_overhead(args.device)
    Path(args.json).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"\nwritten to {args.json}")


if __name__ == "__main__":
    main()
