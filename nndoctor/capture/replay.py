"""Replays: re-run the user's script in a subprocess with substitutions.

When the loss is not a recognised torch loss (detection, self-supervised and other
custom losses), an experiment cannot rebuild the training step in-process. It can
re-run the script itself, with the user's own loss, augmentation and loop, and
change only what the experiment needs:

- ``overfit``: every DataLoader yields the first batch (cut to a few samples) forever,
  dropout is off and weight decay is zero; the loss of each step is recorded;
- ``trace``: the script runs unchanged to step ``k``, where a dispatch mode finds the
  first operation producing a non-finite value;
- ``terms``: at step ``k``, the gradient each recognised loss term contributes to the
  loss that is back-propagated;
- ``derivatives``: ``torch.autograd.grad`` calls without ``create_graph`` (of outputs
  with a graph, against tensors that are not parameters) are made with it; at the first
  backward after one, the parameters' gradient is taken with and without the paths
  through those derivatives, and whether one of them fed a model's input is noted;
- ``default-init``: every module with parameters is re-drawn by its own
  ``reset_parameters`` (PyTorch's default initialisation, seeded, the script's random
  streams untouched) when it is first called, and the value of each recognised loss at
  the first backward is recorded: the healthy twin of the script's own initialisation;
- ``rate``: the script runs unchanged for ``steps`` optimizer steps, except that every
  step is taken at ``overrides["lr_scale"]`` times the rate the script set for it; the
  loss of each step is recorded (a learning-rate trial on the script's own stream).

A subprocess per replay isolates global state; checkpoints still go to a scratch
folder, so a replay never writes into the user's tree.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class ReplayPlan:
    script: str
    argv: list[str]
    mode: str  # "overfit", "trace", "terms", "derivatives", "default-init" or "rate"
    steps: int = 150
    batch_size: int = 8
    trace_step: int = 0
    timeout: float = 120.0
    overrides: dict[str, Any] = field(default_factory=dict)  # optimizer hyperparameters


@dataclass
class ReplayResult:
    ok: bool
    losses: list[float] = field(default_factory=list)
    error: str | None = None
    event: dict[str, Any] | None = None
    substituted: bool = False  # a DataLoader was found and substituted
    steps: int = 0
    terms: list[dict[str, Any]] | None = None  # "terms": each loss term's gradient contribution
    timed_out: bool = False  # stopped by the time limit: what it holds is unfinished
    # The model's input differed between training steps although the loaders fed one fixed
    # batch: the script transforms it at random on its way (augmentation, mixup).
    inputs_vary: bool = False
    # "derivatives": the relative change of the parameters' gradient when the derivatives
    # taken without a graph keep theirs, whether one of them fed a model's input, and where
    # the first such derivative was taken.
    derivatives: dict[str, Any] | None = None
    # "default-init": the first value of each recognised loss (by function name) at the
    # first backward.
    initial_terms: dict[str, float] | None = None
    # "rate": the first group's rate as the script set it at each step, before scaling.
    rates: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.timed_out = self.timed_out or self.error == TIMEOUT


TIMEOUT = "timeout"  # the error of a replay stopped by its time limit


def run_replay(plan: ReplayPlan) -> ReplayResult:
    """Run ``plan`` in a fresh Python process; never raises for a failing script."""
    plan = ReplayPlan(**{**asdict(plan), "script": os.path.abspath(plan.script)})
    with (
        tempfile.TemporaryDirectory(prefix="nndoctor-replay-") as tmp,
        tempfile.TemporaryDirectory(prefix="nndoctor-replay-cwd-") as cwd,
    ):
        _mirror(os.getcwd(), cwd)
        plan_path = os.path.join(tmp, "plan.json")
        out_path = os.path.join(tmp, "result.json")
        with open(plan_path, "w", encoding="utf-8") as f:
            json.dump(asdict(plan), f)
        env = {**os.environ, "PYTHONHASHSEED": "0"}
        try:
            proc = subprocess.run(
                [sys.executable, "-m", "nndoctor.capture._replay_child", plan_path, out_path],
                cwd=cwd,
                env=env,
                capture_output=True,
                text=True,
                timeout=plan.timeout + 30,
            )
        except subprocess.TimeoutExpired:
            return ReplayResult(
                False,
                error=f"the replay did not finish within {plan.timeout + 30:.0f}s",
                timed_out=True,
            )
        if not os.path.exists(out_path):
            tail = (proc.stderr or "").strip().splitlines()[-1:] or ["no output"]
            return ReplayResult(False, error=f"the replay failed: {tail[0]}")
        with open(out_path, encoding="utf-8") as f:
            data = json.load(f)
        return ReplayResult(**data)


def _mirror(source: str, target: str) -> None:
    """Link every entry of ``source`` into ``target``: the replayed script reads its relative
    paths as usual, while files it creates land in the scratch folder, not the user's tree."""
    try:
        entries = os.listdir(source)
    except OSError:
        return
    for name in entries:
        try:
            os.symlink(os.path.join(source, name), os.path.join(target, name))
        except OSError:
            continue
