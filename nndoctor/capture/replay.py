"""Replays: re-run the user's script in a subprocess with substitutions.

When the loss is not a recognised torch loss (detection, self-supervised and other
custom losses), an experiment cannot rebuild the training step in-process. It can
re-run the script itself, with the user's own loss, augmentation and loop, and
change only what the experiment needs:

- ``overfit``: every DataLoader yields the first batch (cut to a few samples) forever,
  dropout is off and weight decay is zero; the loss of each step is recorded. Without a
  DataLoader, every step draws the second step's batch again (random streams rewound,
  rows cut by hand from tensors handed out again, cut to a few samples unless
  ``overrides["uncut"]``; arrays the script feeds whole at every step get their first
  rows written down their length in place);
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
  loss of each step is recorded (a learning-rate trial on the script's own stream);
- ``pairing``: the script runs unchanged for ``steps`` optimizer steps, except that every
  map-style dataset a DataLoader reads is wrapped: with ``overrides["pair_seed"]`` each
  sample keeps its first element (the input) and takes the others (its target, or a
  second input such as a caption) from the sample a fixed random permutation assigns it
  (a re-pairing that holds across epochs); without it, it is left as it is. Rows cut by
  hand and arrays fed whole are re-paired alike (see ``_HandPairs`` and
  ``whole_arrays``). Both read the partner sample, so the script's random streams
  advance alike; the loss of each step is recorded.

A process per replay isolates global state; checkpoints still go to a scratch folder,
so a replay never writes into the user's tree. Within a check run the processes are
forked from one :class:`ReplayServer` that has imported torch once (a new interpreter
per replay where ``fork`` is unavailable), and the independent replays of one experiment
may run side by side (:func:`run_replays`).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import select
import subprocess
import sys

try:
    import resource
except ImportError:  # not on Windows: replays there count no processor time
    resource = None  # type: ignore[assignment]
import tempfile
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class ReplayPlan:
    script: str
    argv: list[str]
    # "overfit", "trace", "terms", "derivatives", "default-init", "rate" or "pairing"
    mode: str
    steps: int = 150
    batch_size: int = 8
    trace_step: int = 0
    timeout: float = 120.0
    # optimizer hyperparameters ("overfit"); "lr_scale" and "noise_inputs" ("rate")
    overrides: dict[str, Any] = field(default_factory=dict)
    # torch, numpy and random seeded with it before the script runs (None: left unseeded).
    seed: int | None = None
    # "overfit": end the replay once the loss has fit (see fit_reached): {"fraction",
    # "floor", "absolute", "scale"}; None: run every step.
    fit_rule: dict[str, Any] | None = None
    # torch's threads in the replay; None: torch's default, or a share of the cores where
    # replays run side by side.
    threads: int | None = None


@dataclass
class ReplayResult:
    ok: bool
    losses: list[float] = field(default_factory=list)
    error: str | None = None
    event: dict[str, Any] | None = None
    substituted: bool = False  # a DataLoader was found and substituted
    # "overfit" without a DataLoader: the random streams were rewound after every step from
    # the second on and the rows the second step cut were handed out again, so each step
    # read what the second did (the first two steps' losses are not in ``losses``);
    # ``inputs_vary`` says whether that made the model's input one batch.
    repeated_draws: bool = False
    # "overfit": the first axis of the model's first input at the last step noted (the
    # samples of the batch, as far as the first axis counts them); 0: none noted.
    batch_rows: int = 0
    # ... and at how many steps the model's input was seen (since the steps forgotten):
    # below two, ``inputs_vary`` has nothing to compare.
    input_steps: int = 0
    # ... and, with ``repeated_draws``, whether rows the script cut from tensors were cut
    # further to the plan's batch size (the batch then is the tiny batch, else the script's).
    batch_cut: bool = False
    # ... by tiling: the script trains on whole arrays it holds (full-batch), and their
    # first rows, as many as the plan's batch size, were repeated down their length in place.
    tiled: bool = False
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
    # "overfit": at each step, the sum of the recognised torch losses (cross-entropy, MSE,
    # ...) called before the step's backward pass; NaN at a step that called none.
    term_losses: list[float] = field(default_factory=list)
    # "rate": the first group's rate as the script set it at each step, before scaling.
    rates: list[float] = field(default_factory=list)
    # "pairing": whether a dataset's samples were wrapped (map-style, two elements or more),
    # and the share of distinct values among the first samples' last elements where all
    # are numbers (None otherwise), which tells sample indices and instance labels apart.
    paired: bool = False
    target_distinct: float | None = None
    # ... and whether one of a sample's re-paired elements reads the same twice (a stored
    # target), not all drawn anew at each read (noise, a random negative); None: not read.
    stored_targets: bool | None = None
    # ... and how many samples with elements to re-pair the replay's datasets were read.
    pairs_read: int = 0
    # "rate" with ``overrides["noise_inputs"]``: how many input tensors were replaced by
    # noise (0: the model read nothing that could be).
    inputs_replaced: int = 0
    # The processor time the replay used (user and system, its loader workers included):
    # what the experiment budget counts, since unlike the wall clock it does not grow
    # with other work on the machine.
    cpu_seconds: float = 0.0

    def __post_init__(self) -> None:
        self.timed_out = self.timed_out or self.error == TIMEOUT


TIMEOUT = "timeout"  # the error of a replay stopped by its time limit


def loss_fit(
    initial: float, final: float, *, fraction: float, floor: float, absolute: float | None
) -> bool:
    """Whether a tiny-batch run has fit: its final loss at the floor (a margin loss whose
    batch meets its margin from the start), within ``absolute`` of it (a classification
    loss), or down to ``fraction`` of the way from its start to the floor."""
    if not math.isfinite(final):
        return False
    if final <= floor:
        return True
    if absolute is not None and final - floor <= absolute:
        return True
    return initial > floor and final - floor <= fraction * (initial - floor)


def fit_reached(losses: list[float], rule: dict[str, Any]) -> bool:
    """``loss_fit`` on a run so far, its losses divided by ``rule["scale"]``: the start, and
    the mean of the last five (as an experiment's final loss is taken)."""
    if len(losses) < 5:
        return False
    # Called after every replayed step: only the start and the last five are read.
    tail = [v / rule["scale"] for v in losses[-5:] if math.isfinite(v)]
    if not tail:
        return False
    return loss_fit(
        losses[0] / rule["scale"],
        sum(tail) / len(tail),
        fraction=rule["fraction"],
        floor=rule["floor"],
        absolute=rule["absolute"],
    )


def run_replay(plan: ReplayPlan, server: ReplayServer | None = None) -> ReplayResult:
    """Run ``plan`` in a fresh Python process; never raises for a failing script.

    With a ``server``, the process is forked from one that has imported torch already
    (seconds saved on every replay of a check run); without one, or where the
    server cannot fork, it is a new interpreter."""
    return run_replays([plan], server)[0]


def run_replays(
    plans: list[ReplayPlan], server: ReplayServer | None = None, parallel: int = 1
) -> list[ReplayResult]:
    """Run independent ``plans`` of one experiment, each as :func:`run_replay` would,
    ``parallel`` at a time where a server can fork them (each child then gets its share
    of the machine's threads); one after another otherwise. Running together changes
    how long they take, never what they record (a replay cut by its time limit says so)."""
    with contextlib.ExitStack() as stack:
        prepared = [_Prepared.make(plan, stack) for plan in plans]
        ended = [("failed", 0.0)] * len(prepared)
        if server is not None and server.usable:
            ended = server.run_batch([p.request() for p in prepared], parallel)
        return [p.result(*end) for p, end in zip(prepared, ended, strict=True)]


@dataclass
class _Prepared:
    """One replay's files: its plan, its result, its log, and its own working folder
    (a mirror of the caller's, so that what it writes lands in scratch)."""

    tmp: str
    cwd: str
    hard_limit: float

    @classmethod
    def make(cls, plan: ReplayPlan, stack: contextlib.ExitStack) -> _Prepared:
        plan = ReplayPlan(**{**asdict(plan), "script": os.path.abspath(plan.script)})
        tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="nndoctor-replay-"))
        cwd = stack.enter_context(tempfile.TemporaryDirectory(prefix="nndoctor-replay-cwd-"))
        _mirror(os.getcwd(), cwd)
        with open(os.path.join(tmp, "plan.json"), "w", encoding="utf-8") as f:
            json.dump(asdict(plan), f)
        return cls(tmp, cwd, plan.timeout + 30)

    def path(self, name: str) -> str:
        return os.path.join(self.tmp, name)

    def request(self) -> dict[str, Any]:
        return {
            "plan": self.path("plan.json"),
            "out": self.path("result.json"),
            "cwd": self.cwd,
            "log": self.path("stderr.txt"),
            "hard_limit": self.hard_limit,
            # The environment as a new interpreter started now would have it: the server's
            # own is the one it was started with.
            "env": _replay_env(),
        }

    def result(self, outcome: str, cpu: float) -> ReplayResult:
        """The replay's result after the server's ``outcome`` ("done", "stopped") and the
        processor seconds it used, or run afresh in a new interpreter ("failed": no
        server, or it did not answer)."""
        out_path = self.path("result.json")
        if outcome == "failed":
            # A file of its own: a replay the lost server forked may still be writing.
            out_path = self.path("result-fresh.json")
            failure, stderr, cpu = _run_fresh(
                self.path("plan.json"), out_path, self.cwd, self.hard_limit
            )
        else:
            failure = _stopped(self.hard_limit) if outcome == "stopped" else None
            stderr = _read(self.path("stderr.txt"))
        if failure is None and not os.path.exists(out_path):
            tail = stderr.strip().splitlines()[-1:] or ["no output"]
            failure = ReplayResult(False, error=f"the replay failed: {tail[0]}")
        if failure is not None:
            failure.cpu_seconds = cpu
            return failure
        with open(out_path, encoding="utf-8") as f:
            data = json.load(f)
        return ReplayResult(**{**data, "cpu_seconds": cpu})


def _run_fresh(
    plan_path: str, out_path: str, cwd: str, hard_limit: float
) -> tuple[ReplayResult | None, str, float]:
    """The replay in a new interpreter: (a result if it was stopped, its stderr, the
    processor seconds it used)."""
    before = _children_seconds()
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "nndoctor.capture._replay_child", plan_path, out_path],
            cwd=cwd,
            env=_replay_env(),
            capture_output=True,
            text=True,
            timeout=hard_limit,
        )
    except subprocess.TimeoutExpired:
        # subprocess.run has killed and reaped it: its time is counted.
        return _stopped(hard_limit), "", _children_seconds() - before
    return None, proc.stderr or "", _children_seconds() - before


def _children_seconds() -> float:
    """User and system time of this process's reaped children so far (0 where the
    platform does not say)."""
    if resource is None:
        return 0.0
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _stopped(hard_limit: float) -> ReplayResult:
    return ReplayResult(
        False, error=f"the replay did not finish within {hard_limit:.0f}s", timed_out=True
    )


def _threads_each(parallel: int) -> int | None:
    """Each of ``parallel`` replays running together gets its share of the cores (None:
    one replay alone keeps torch's default)."""
    return None if parallel <= 1 else max(1, (os.cpu_count() or 1) // parallel)


def _replay_env() -> dict[str, str]:
    # torch.cuda.is_available() initialises the CUDA driver in the calling process unless
    # asked to read NVML instead, and a process forked after that cannot use CUDA at all
    # ("Cannot re-initialize CUDA in forked subprocess"): the replay server asks (an
    # import such as torch._dynamo's may call it), so that each forked replay can
    # initialise CUDA for itself.
    return {**os.environ, "PYTHONHASHSEED": "0", "PYTORCH_NVML_BASED_CUDA_CHECK": "1"}


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return ""


class ReplayServer:
    """One process that imports torch and nndoctor once, then forks a fresh process for
    each replay of a check run.

    A check run may replay its script a dozen times; starting a new interpreter and
    importing torch each time costs seconds that the replays themselves do not need. The
    server never runs any of the script itself, so every forked replay starts from the
    same clean state a new interpreter would have after its imports. It starts on the
    first replay (a run that replays nothing pays nothing), runs one replay at a time,
    and is closed with :meth:`close` (or by leaving its ``with`` block). Where ``fork``
    is unavailable, or the server has died, replays fall back to new interpreters.
    """

    def __init__(self) -> None:
        self._proc: subprocess.Popen[str] | None = None
        self._home: tempfile.TemporaryDirectory[str] | None = None
        self._broken = not (hasattr(os, "fork") and sys.platform.startswith("linux"))

    def __enter__(self) -> ReplayServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def usable(self) -> bool:
        return not self._broken

    def run_batch(
        self, requests: list[dict[str, Any]], parallel: int = 1
    ) -> list[tuple[str, float]]:
        """Fork the replays of ``requests``, ``parallel`` at a time, and wait for them all:
        for each, "done", "stopped" (at its hard limit) or "failed" (the server itself did
        not answer: the caller runs that replay afresh), and its processor seconds."""
        failed = [("failed", 0.0)] * len(requests)
        parallel = max(1, min(parallel, len(requests)))
        batch = {"batch": requests, "parallel": parallel, "threads": _threads_each(parallel)}
        # The server stops each replay at its hard limit itself; this only guards against a
        # server that stops answering altogether.
        waves = -(-len(requests) // parallel)
        limit = waves * max((r["hard_limit"] for r in requests), default=0) + 30
        try:
            proc = self._started()
            assert proc.stdin is not None and proc.stdout is not None
            proc.stdin.write(json.dumps(batch) + "\n")
            proc.stdin.flush()
            ready, _, _ = select.select([proc.stdout], [], [], limit)
            reply = json.loads(proc.stdout.readline() or "null") if ready else None
            ended = list(zip(reply["outcomes"], reply["cpu"], strict=True)) if reply else failed
        except (OSError, ValueError, KeyError, TypeError):
            ended = failed
        if len(ended) != len(requests) or any(outcome == "failed" for outcome, _ in ended):
            self._broken = True
            self.close()
            return failed
        return [(str(outcome), float(cpu)) for outcome, cpu in ended]

    def start(self) -> None:
        """Start the server now rather than on the first replay (it imports in the
        background meanwhile)."""
        if self.usable:
            self._started()

    def _started(self) -> subprocess.Popen[str]:
        if self._proc is None:
            # Started in a folder of its own: the interpreter puts its working folder
            # first on the import path, and each replay then gets its own instead.
            self._home = tempfile.TemporaryDirectory(prefix="nndoctor-replay-server-")
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "nndoctor.capture._replay_child", "--serve"],
                cwd=self._home.name,
                env=_replay_env(),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
            )
        return self._proc

    def close(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        try:
            if proc.stdin is not None:
                proc.stdin.close()
            proc.wait(timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            proc.kill()
            proc.wait()
        finally:
            if proc.stdout is not None:
                proc.stdout.close()
            if self._home is not None:
                self._home.cleanup()
                self._home = None


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
