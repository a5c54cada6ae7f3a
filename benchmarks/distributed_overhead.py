"""What do nndoctor's collectives cost a DDP step? Ratios to the plain DDP step.

Two ranks (``--world``) on the CPU, gloo, started with ``torch.multiprocessing`` on a free
port. Each rank trains the same DDP model on fixed batches (so data loading is not
measured) in four modes:

- ``ddp``:              the DDP step alone (zero_grad, forward, loss, backward with DDP's
  all-reduce, optimizer step): the reference of every ratio;
- ``check-agreement``:  plus, after every optimizer step, the stop agreement ``nndoctor
  check`` makes in a distributed job: one all-reduce of four integers on nndoctor's own gloo
  group (:meth:`nndoctor.distributed.channel.Channel.all_max`);
- ``check-rank-probe``: plus the rank probe's per-step checksums (the norm of every
  parameter, gradient and buffer; :class:`nndoctor.probes.distributed.RankProbe`), i.e.
  everything the distributed capture adds to a step; the training probe itself is measured
  by ``benchmarks/overhead.py``;
- ``watch-exchange``:   plus what ``nndoctor watch`` adds in a job: one all-gather of each
  rank's notes (a payload the size of a sampled step's per-parameter norms) every
  ``--every`` steps (50, as ``NNDOCTOR_DIST_EVERY``).

Timing: one *block* is a mode entered afresh, ``--warmup`` untimed steps, then ``--steps``
timed steps, in wall time (a DDP step waits for its peer: CPU time would miss it); both
ranks run the same blocks in the same order (their collectives must match) and rank 0's
times are reported. A *round* runs one block of every mode, the order rotated from round to
round, so a change in machine load hits every mode alike; a mode's figure is the median
over ``--repeats`` rounds of its milliseconds per step, its ratio that median over the
``ddp`` median, and ``ratio_paired`` the median over rounds of each block over the same
round's ``ddp`` block. On a shared machine the blocks least disturbed by other work are
the closest to the intrinsic cost: ``ratio_fastest`` is a mode's fastest block over the
fastest ``ddp`` block.

Settings: ``tiny-mlp`` (16-64-4, batch 32: a step of well under a millisecond, where any
fixed cost shows most) and ``mlp`` (256-1024-1024-10, batch 64).

Usage::

    python benchmarks/distributed_overhead.py --json benchmarks/results/distributed-overhead-cpu.json
    python benchmarks/distributed_overhead.py --settings mlp --repeats 9
    python benchmarks/distributed_overhead.py --quick        # tiny, 2 steps: does it run?
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import socket
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from nndoctor.distributed.channel import Channel  # noqa: E402
from nndoctor.probes.distributed import RankProbe  # noqa: E402

MODES = ("ddp", "check-agreement", "check-rank-probe", "watch-exchange")
SETTINGS = {
    "tiny-mlp": ((16, 64, 4), 32),
    "mlp": ((256, 1024, 1024, 10), 64),
}


def build(setting: str, quick: bool) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    widths, batch = SETTINGS[setting]
    if quick:
        widths, batch = (8, 8, 2), 4
    layers: list[nn.Module] = []
    for a, b in zip(widths, widths[1:], strict=False):
        layers += [nn.Linear(a, b), nn.ReLU()]
    torch.manual_seed(0)
    model = nn.Sequential(*layers[:-1])
    g = torch.Generator().manual_seed(dist.get_rank())
    x = torch.randn(batch, widths[0], generator=g)
    y = torch.randint(0, widths[-1], (batch,), generator=g)
    return model, x, y


class Modes:
    """The per-step additions of each mode, around one DDP model and optimizer."""

    def __init__(self, ddp: nn.Module, optimizer: torch.optim.Optimizer, every: int) -> None:
        self.channel = Channel(timeout=120.0)
        self.probe = RankProbe()
        self.probe.attach(ddp.module)
        self.optimizer = optimizer
        self.every = every
        names = [n for n, _ in ddp.module.named_parameters()]
        self.notes = {"grads": dict.fromkeys(names, 1.0), "weights": dict.fromkeys(names, 1.0)}
        self.step = 0

    def after_step(self, mode: str) -> None:
        self.step += 1
        if mode in ("check-agreement", "check-rank-probe"):
            if mode == "check-rank-probe":
                self.probe.step_ended(self.optimizer)
            self.channel.all_max([0, 0, 0, 0])
        elif mode == "watch-exchange" and self.step % self.every == 0:
            self.channel.all_gather(self.notes)

    def reset(self) -> None:
        # A fresh probe per block: its per-step lists must not grow across blocks.
        model, self.probe = self.probe.model, RankProbe()
        if model is not None:
            self.probe.attach(model)


def run_block(step: Callable[[], None], modes: Modes, mode: str, warmup: int, steps: int) -> float:
    """Milliseconds per step of ``steps`` timed steps of ``mode`` after ``warmup``."""
    modes.reset()
    for _ in range(warmup):
        step()
        modes.after_step(mode)
    dist.barrier()
    start = time.perf_counter()
    for _ in range(steps):
        step()
        modes.after_step(mode)
    elapsed = time.perf_counter() - start
    return 1000.0 * elapsed / steps


def measure(setting: str, args: argparse.Namespace) -> dict[str, Any]:
    from torch.nn.parallel import DistributedDataParallel as DDP

    model, x, y = build(setting, args.quick)
    ddp = DDP(model)
    optimizer = torch.optim.SGD(ddp.parameters(), lr=0.01, momentum=0.9)
    criterion = nn.CrossEntropyLoss()

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        criterion(ddp(x), y).backward()
        optimizer.step()

    modes = Modes(ddp, optimizer, args.every)
    blocks: dict[str, list[float]] = {m: [] for m in MODES}
    for r in range(args.repeats):
        order = MODES[r % len(MODES) :] + MODES[: r % len(MODES)]
        for mode in order:
            blocks[mode].append(run_block(step, modes, mode, args.warmup, args.steps))
    modes.probe.close()
    modes.channel.close()
    params = sum(p.numel() for p in model.parameters())
    return {"setting": setting, "parameters": params, "blocks": blocks}


def summarise(result: dict[str, Any]) -> list[dict[str, Any]]:
    blocks = result["blocks"]
    base = statistics.median(blocks["ddp"])
    rows = []
    for mode in MODES:
        ms = statistics.median(blocks[mode])
        paired = statistics.median(a / b for a, b in zip(blocks[mode], blocks["ddp"], strict=True))
        rows.append(
            {
                "setting": result["setting"],
                "parameters": result["parameters"],
                "mode": mode,
                "ms_per_step": ms,
                "ratio": ms / base,
                "ratio_paired": paired,
                "ratio_fastest": min(blocks[mode]) / min(blocks["ddp"]),
                "blocks_ms": blocks[mode],
            }
        )
    return rows


def worker(rank: int, world: int, port: int, args: argparse.Namespace, out: Any) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(args.threads)
    dist.init_process_group(
        "gloo", rank=rank, world_size=world, timeout=datetime.timedelta(seconds=120)
    )
    try:
        rows = []
        for setting in args.settings:
            rows += summarise(measure(setting, args))
        if rank == 0:
            out.put(rows)
        dist.barrier()
    finally:
        dist.destroy_process_group()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| setting | parameters | mode | ms/step | ratio | ratio (paired) | ratio (fastest) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['setting']} | {r['parameters']:,} | {r['mode']} | {r['ms_per_step']:.3f} "
            f"| {r['ratio']:.3f} | {r['ratio_paired']:.3f} | {r['ratio_fastest']:.3f} |"
        )
    return "\n".join(lines)


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--world", type=int, default=2)
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--every", type=int, default=50, help="watch's exchange interval")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per rank")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--quick", action="store_true", help="tiny sizes, 2 steps, 1 round")
    args = parser.parse_args(argv)
    if args.quick:
        args.steps, args.warmup, args.repeats, args.every = 2, 1, 1, 2
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse(argv)
    ctx = mp.get_context("spawn")
    out = ctx.SimpleQueue()
    ranks = mp.start_processes(
        worker,
        args=(args.world, free_port(), args, out),
        nprocs=args.world,
        start_method="spawn",
        join=False,
    )
    rows = out.get()  # read before joining: a full pipe would block rank 0's put
    while not ranks.join():
        pass
    result = {
        "world": args.world,
        "backend": "gloo",
        "device": "cpu",
        "threads_per_rank": args.threads,
        "steps": args.steps,
        "warmup": args.warmup,
        "repeats": args.repeats,
        "every": args.every,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "rows": rows,
    }
    sys.stdout.write(table(rows) + "\n")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
