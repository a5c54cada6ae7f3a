"""The script replayed as written beside itself on noise inputs, and the steps a replay of
the script as written runs: what the checks that judge such replays share (the loss met
without data, the model that ignores its input, the loss without a floor)."""

from __future__ import annotations

import math

from nndoctor.capture.replay import ReplayResult
from nndoctor.checks.lab import Lab
from nndoctor.checks.registry import CheckContext


def planned_steps(ctx: CheckContext) -> int:
    """The steps the script's loops plan, where read; the longest run the check asks for
    otherwise."""
    t = ctx.thresholds
    horizon = ctx.recording.horizon
    if horizon is not None and horizon.exact and horizon.steps > 0:
        return int(horizon.steps)
    return t.unbounded_steps * t.unbounded_extension


def noise_runs(ctx: CheckContext, lab: Lab) -> tuple[int, list[float], list[float]]:
    """The steps and the losses of the script replayed as written for them, on its data
    and on noise (``Lab.noise_replays``): ``data_free_steps`` within the planned run, or
    fewer where the script ends first. Skips where no one loss is minimised (a GAN), where
    updates are made by hand (a replay counts optimizer steps), and unless both runs took
    every step with a finite loss and the noise reached the model."""
    t = ctx.thresholds
    if lab.script is None:
        ctx.skip("no script to replay")
    competing = ctx.recording.competing_objectives
    if competing:
        ctx.skip(f"{competing}: no one loss is being minimised")
    if ctx.recording.step_source == "manual":
        ctx.skip("the script updates its parameters by hand (a replay counts optimizer steps)")
    steps = min(t.data_free_steps, planned_steps(ctx))
    if steps < t.unbounded_min_steps:
        ctx.skip(f"the script plans {steps} steps, fewer than {t.unbounded_min_steps}")
    real, noise = lab.noise_replays(steps)
    _require_whole(ctx, real, steps, "on its data")
    _require_whole(ctx, noise, steps, "on noise")
    if noise.inputs_replaced == 0:
        ctx.skip("the model was handed no tensor that noise could replace (keyword arguments)")
    # A script that ended first is judged on the steps both runs took.
    n = min(steps, len(real.losses), len(noise.losses))
    return n, real.losses[:n], noise.losses[:n]


def _require_whole(ctx: CheckContext, run: ReplayResult, steps: int, what: str) -> None:
    """Skip unless ``run`` took its ``steps`` steps, or ran the script to its end in at
    least ``unbounded_min_steps``, with a finite loss at each."""
    if run.timed_out:
        ctx.skip(f"the replay {what} hit its time limit after {len(run.losses)} of {steps} steps")
    if run.error and not run.losses:
        ctx.skip(f"re-running the script {what} failed: {run.error}")
    ended = run.error is None and len(run.losses) >= ctx.thresholds.unbounded_min_steps
    if (len(run.losses) < steps and not ended) or not all(math.isfinite(v) for v in run.losses):
        ctx.skip(
            f"the replay {what} gave {len(run.losses)} of {steps} finite losses"
            + (f" ({run.error})" if run.error else "")
        )
