"""The shuffled-label experiment for a script whose loss no copy can rebuild (reason 4).

A custom loss, a recognised loss on a transformed output or several terms summed: the
experiment cannot train copies in this process, but it can re-run the script (see
:mod:`nndoctor.capture.replay`, mode ``pairing``) with each sample's target taken from
another sample by a fixed random permutation, and compare the losses the script itself
computes with those of an unchanged replay. The replays are seeded alike and read the
same samples, so the only difference between them is the pairing.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

import torch
from torch.utils._pytree import tree_flatten

from nndoctor.capture.replay import ReplayResult
from nndoctor.checks.lab import Lab, TrainResult, same_noise
from nndoctor.checks.registry import CheckContext
from nndoctor.checks.significance import mean_with_margin, student_t_quantile
from nndoctor.copying import set_training
from nndoctor.noise import noise_like


@dataclass
class PairingGain:
    """How much lower the unchanged replay's loss runs than the re-paired replays' over
    the later half of their steps, in the loss's own units."""

    gain: float  # mean over those steps of (re-paired replays' mean loss - unchanged loss)
    lower: float  # one-sided confidence bounds on it, at the experiment's level
    upper: float
    level: float  # the re-paired replays' mean loss there: what no pairing reaches
    steps: int

    def describe(self, over: str = "over") -> str:
        return (
            f"{over} steps {self.steps // 2 + 1}-{self.steps} of the script replayed with every "
            f"sample's target taken from another sample, its loss averaged {self.level:.4g}; "
            f"with the real pairing it ran {self.gain:.3g} lower (confidence bounds "
            f"{self.lower:.3g} to {self.upper:.3g})"
        )


def pairing_gain(
    real: list[float], repaired: list[list[float]], blocks: int, alpha: float
) -> PairingGain | None:
    """The gain of the real pairing over the re-paired replays on the later half of the
    steps all of them ran, with confidence bounds. The lower bound allows for the noise
    along a run: ``blocks`` consecutive block means of the per-step gains (neighbouring
    steps' losses are correlated; blocks of them far less); a gain above it shows a
    pairing, and the check passes on it. The upper bound, which a finding rests on, also
    allows for the noise between pairings: how far the re-paired replays' own means over
    those steps lie apart (Student's prediction interval for one more replay beside their
    mean), since each re-pairing is one permutation drawn, and so, where the labels carry
    nothing, is the real one, which then lands above or below the others' mean by as much
    as they differ among themselves. None when too few steps were run for that."""
    steps = min(len(real), *(len(r) for r in repaired))
    start = steps // 2
    if steps - start < 2 * blocks:
        return None
    gains, levels = [], []
    for t in range(start, steps):
        null = statistics.fmean(r[t] for r in repaired)
        gains.append(null - real[t])
        levels.append(null)
    if not all(math.isfinite(v) for v in gains + levels):
        return None
    size = len(gains) // blocks
    means = [statistics.fmean(gains[i * size : (i + 1) * size]) for i in range(blocks)]
    gain, margin = mean_with_margin(means, alpha)
    wide = margin
    if len(repaired) >= 2:
        each = [statistics.fmean(r[start:steps]) for r in repaired]
        k = len(each)
        between = student_t_quantile(alpha, k - 1) * statistics.stdev(each) * math.sqrt(1 + 1 / k)
        wide = max(margin, between)
    return PairingGain(
        gain=gain,
        lower=gain - margin,
        upper=gain + wide,
        level=statistics.fmean(levels),
        steps=steps,
    )


def _replayed(ctx: CheckContext, lab: Lab) -> tuple[ReplayResult, list[ReplayResult]]:
    t = ctx.thresholds
    plans = [{"steps": t.pairing_replay_steps}] + [
        {"steps": t.pairing_replay_steps, "overrides": {"pair_seed": seed}}
        for seed in range(1, t.pairing_replay_nulls + 1)
    ]
    real, *repaired = lab.replays("pairing", plans)
    for r in (real, *repaired):
        if r.timed_out:
            # Cut short by the clock, the replays decide nothing (a verdict never depends
            # on the machine's speed).
            ctx.skip(
                f"{lab.unavailable_reason}, and a replay of the script hit its time limit after "
                f"{len(r.losses)} of {t.pairing_replay_steps} steps"
            )
        if r.error and len(r.losses) < t.pairing_replay_steps:
            ctx.skip(
                f"{lab.unavailable_reason}, and a replay of the script ended after "
                f"{len(r.losses)} of {t.pairing_replay_steps} steps: {r.error or 'the script ended'}"
            )
    if real.paired and real.stored_targets is False:
        ctx.skip(
            f"{lab.unavailable_reason}, and the samples' elements beside the input are drawn "
            "anew at each read (noise, random negatives): there is no stored pairing to test"
        )
    first = [r.losses[0] for r in repaired if r.losses]
    if (
        real.paired
        and real.losses
        and all(math.isclose(v, real.losses[0], rel_tol=1e-6) for v in first)
    ):
        # Same model, same inputs, other targets, same first loss: what was re-paired
        # (sample ids, a label the loss does not read) is not what the loss learns from.
        ctx.skip(
            f"{lab.unavailable_reason}, and taking the samples' other elements from other "
            "samples leaves the first loss unchanged: the loss does not read them"
        )
    if not real.paired:
        ctx.skip(
            f"{lab.unavailable_reason}, and no DataLoader read samples of two elements or more "
            "from a map-style dataset, nor did the script cut a sample's input and another "
            "element by the same rows from tensors of its own, or feed its model a whole "
            "array it holds beside others of as many rows, that a replay could re-pair"
        )
    return real, repaired


def _memorises(lab: Lab, ctx: CheckContext) -> bool | None:
    """Whether the script, replayed on one tiny batch, fits it by the tiny-batch
    experiment's rule, or, where its loss has a floor above zero (a random forward, the
    batch changed at random on its way to the model), lowers it by ``learned_fraction``:
    a model that can memorise. None when that replay cannot say."""
    t = ctx.thresholds
    scale = ctx.recording.criterion_scale()
    tiny = lab.overfit_replay(t, scale)
    # A batch cut by hand counts as one tiny batch where the replay handed the same rows
    # out again at every step (cannot-overfit-tiny-batch's rule).
    repeated = tiny.repeated_draws and not tiny.inputs_vary and tiny.input_steps >= 2
    if tiny.timed_out or not (tiny.substituted or repeated) or len(tiny.losses) < 5:
        return None
    result = TrainResult(losses=[v / scale for v in tiny.losses])
    if not math.isfinite(result.initial):
        return None
    if lab.fits(result, t):
        return True
    floored = tiny.inputs_vary or lab.stochastic_forward()
    return (
        floored and result.initial > 0 and result.final < (1 - t.learned_fraction) * result.initial
    )


def _reads_input(lab: Lab, ctx: CheckContext) -> bool | None:
    """Whether the initial model's output moves (by ``input_sensitivity`` of its size) when
    its first observed input is replaced by noise of the same statistics: a model that
    does not read its input learns no pairing either, and that is its own bug (reason 2).
    None when the model's positional input was not kept."""
    calls = lab.model_inputs(1) if lab.has_model else []
    if not calls:
        return None
    gen = torch.Generator().manual_seed(0)
    noisy = tuple(noise_like(a, gen) if isinstance(a, torch.Tensor) else a for a in calls[0])
    model = set_training(lab.fresh_model(), False)
    outs = []
    with torch.no_grad():
        for args in (calls[0], noisy):
            with same_noise(lab.device):
                out = model(*args)
            leaves, _ = tree_flatten(out)
            outs.append(
                [x.float() for x in leaves if isinstance(x, torch.Tensor) and x.is_floating_point()]
            )
    real, fake = outs
    if (
        not real
        or len(real) != len(fake)
        or any(a.shape != b.shape for a, b in zip(real, fake, strict=True))
    ):
        return None
    size = math.sqrt(sum(float(a.pow(2).sum()) for a in real))
    moved = math.sqrt(sum(float((a - b).pow(2).sum()) for a, b in zip(real, fake, strict=True)))
    if size == 0:
        return None  # an output of zeros (a zero-initialised head) says nothing either way
    return moved / size > ctx.thresholds.input_sensitivity


def pairing_by_replay(ctx: CheckContext, lab: Lab) -> None:
    """labels-not-connected for a loss no copy can rebuild: see its docstring."""
    t = ctx.thresholds
    if ctx.recording.alternating_objectives:
        # Competing objectives (a GAN) move each other's loss: no pairing shows in it.
        ctx.skip(lab.unavailable_reason)
    real, repaired = _replayed(ctx, lab)
    if real.target_distinct is not None and real.target_distinct > t.distinct_label_share:
        # Sample indices, or one label per sample (instance discrimination): there is no
        # pairing to learn faster than by heart.
        ctx.skip(
            f"{real.target_distinct:.0%} of the samples' last elements are distinct numbers "
            "(indices, or a label per sample): each is learned by heart"
        )
    found = pairing_gain(
        real.losses,
        [r.losses for r in repaired],
        t.pairing_replay_blocks,
        t.label_pairing_alpha,
    )
    if found is None:
        ctx.skip(f"{lab.unavailable_reason}, and the replays ran too few steps to compare")
    if found.lower > 0:
        ctx.note(f"{found.describe()}: the labels follow the inputs")
        return
    if found.upper < 0:
        # Labels without a pairing make the replays exchangeable: the real one runs higher
        # than the re-paired ones beyond chance only where the loss is no pairing to learn
        # (a policy's objective, whose advantages and returns the model's own actions make).
        ctx.inconclusive(
            f"{found.describe()}: the real pairing runs higher than the re-paired ones beyond "
            "chance, which labels disconnected from the inputs do not do (the replays would be "
            "exchangeable): this loss is not lowered by learning a pairing"
        )
        return
    if not (found.level > 0 and found.upper < t.pairing_useful_gain * found.level):
        ctx.inconclusive(
            f"{found.describe()}: not shown to follow the inputs, nor ruled out "
            f"(a tenth of the re-paired level, {t.pairing_useful_gain * found.level:.3g}, is within the bounds)"
        )
        return
    if real.pairs_read < t.pairing_replay_min_samples:
        ctx.inconclusive(
            f"{found.describe()}; but the replay read only {real.pairs_read} samples, fewer "
            f"than {t.pairing_replay_min_samples}: too few for a model that generalises "
            "from many samples (one sample or bag per step) to show its pairing"
        )
        return
    learns = _memorises(lab, ctx)
    if not learns:
        ctx.inconclusive(
            f"{found.describe()}; "
            + (
                "the script replayed on one tiny batch does not fit it either, so the model "
                "may learn nothing at all"
                if learns is False
                else "whether the model learns at all could not be measured"
            )
        )
        return
    if _reads_input(lab, ctx) is False:
        ctx.inconclusive(
            f"{found.describe()}; but the initial model's output does not change when its input "
            "is replaced by noise: it does not read its input (see model-ignores-input), which "
            "takes any pairing away"
        )
        return
    ctx.finding(
        title="Labels are not connected to the inputs",
        message=(
            f"{found.describe('Over')}: the real pairing "
            f"gains less than a tenth of the loss that no pairing reaches (upper bound "
            f"{found.upper:.3g} against {t.pairing_useful_gain * found.level:.3g}), though the "
            "model lowers its loss on a tiny batch. Its targets carry no more about its inputs "
            "than another sample's: typically inputs and labels shuffled or sorted apart, or "
            "labels belonging to other samples."
        ),
        fix=(
            "Shuffle inputs and labels together (one permutation, or a Dataset returning (x, y) "
            "pairs); check that any sort, filter or index applied to one side is applied to the other."
        ),
        evidence={
            "steps": found.steps,
            "gain": found.gain,
            "gain_upper_bound": found.upper,
            "gain_lower_bound": found.lower,
            "repaired_level": found.level,
            "repaired_replays": len(repaired),
            "method": "script replay, targets re-paired by a fixed permutation",
        },
    )
