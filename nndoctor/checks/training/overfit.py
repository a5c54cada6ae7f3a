"""Overfit a tiny batch (reason 27): the first experiment of the recipe."""

from __future__ import annotations

import math

import torch

from nndoctor.capture.replay import ReplayResult
from nndoctor.checks.lab import KNOWN_GOOD_LR, Lab, TrainResult, last_tenth_median
from nndoctor.checks.nan import divergence_evidence, divergence_text
from nndoctor.checks.registry import CheckContext, register_check
from nndoctor.report.series import Curve, ExperimentCurves
from nndoctor.subject import OptimizerSpec


@register_check(
    id="cannot-overfit-tiny-batch",
    reasons=(27,),
    severity="error",
    kind="experiment",
    priority=10,
    symptom=True,
    explains=frozenset({"loss-accuracy-disagree", "give-it-time"}),
    differential=(
        (
            19,
            "the loss input: probabilities or log-probabilities where logits belong (loss-input-mismatch)",
        ),
        (23, "frozen parameters or parameters missing from the optimizer (params-* checks)"),
        (36, "the learning rate (learning-rate-out-of-range, a range test)"),
        (28, "the initialisation: activation statistics at step 0"),
        (22, "a custom layer's backward (custom-layer-gradient)"),
        (24, "capacity: a layer of width 1 or a too-small model"),
        (30, "regularisation that stays on: dropout, weight decay"),
    ),
)
def cannot_overfit_tiny_batch(ctx: CheckContext) -> None:
    """The model cannot drive the loss near zero on one tiny batch.

    Why it matters:
        Any healthy model can memorise a handful of samples. If it cannot, no amount of
        data or time will help: the bug is in the model, the loss, the optimiser settings
        or the wiring between them. This is the single most informative experiment.

    What is measured:
        A copy of the model, from its initial weights, is trained on the first few samples
        of the first batch with the user's optimiser settings and regularisation off
        (dropout 0, weight decay 0) for a fixed number of steps (``overfit_steps``); a run
        whose loss fell below half its start without fitting is redone
        ``overfit_extension`` times longer before it is judged (when the experiment budget
        has room for it), and a longer run whose loss still falls clearly over its last
        third (``overfit_still_falling``) is slow, not stuck: a note. If the user's settings
        fail, the same with Adam(lr=1e-3). The finding says how far each got. A model whose
        forward is random by design (a VAE's sampled latent; noise, augmentation or mixup
        that ``forward`` applies in training mode, which stays on with dropout off) has a
        loss floor above zero at an unknown height: there, a clear fall of the loss is all
        that can be asked. The same
        holds for a script replayed on one fixed batch that it changes at random on the way
        to the model (mixup, noise added in the loop), or beside which it draws a part of
        the model's input anew at every step (negative samples). A model whose forward writes
        state its next call reads (MoCo's queue of negatives, a memory bank: two eval-mode
        calls on one input disagree) is not tried: on one fixed batch its negatives become
        that batch's own keys. Neither is a replayed loss that moves at rate 0 (the script
        replayed on the tiny batch with the model fixed, ``carried_state_steps`` steps, by
        more than ``carried_state_rtol`` of its first value): it reads state the script
        keeps between steps beside the model (a queue of negatives in a variable of the
        loop, a momentum encoder), where the same holds; that replay cut short by its time
        limit decides nothing, and the check is skipped. Nor is a replayed loss that no one set of parameters
        descends: networks trained in turn against each other (a GAN), or a backward pass
        through a gradient reversal (DANN's feature extractor ascends the domain loss). A
        replay the script itself ends
        part-way (a learning-rate schedule stepped past its planned end on a loader that
        never ends) is judged on the steps it ran, or skipped when those are too few. A
        replayed loss that ends clearly lower on twice the tiny batch (the same steps) than
        on the tiny batch couples the samples of a batch (Barlow Twins' cross-correlation:
        memorising more samples is never easier for a mean or sum over samples), and its
        floor on a few samples is unknown: a clear fall is all that can be asked there too.
        A run whose loss held the fit for five consecutive steps and rose after (steps that
        overshoot once the regularisation that damped them is off) memorised the batch: a
        note, the rate being the rate checks' to judge. A script replayed without a
        DataLoader (batches cut by hand, data drawn at every step) draws its second step's
        batch again at every step: the random streams are rewound after each step and the
        rows it cut from tensors are handed out again, cut to the tiny batch (data drawn
        anew that no cut reaches stays the script's own batch). A script that feeds its
        model one whole array it holds at every step (full-batch training) gets the tiny
        batch written into that array in place: its first rows repeated down its length,
        and the same rows of every held array of as many rows (its targets) alike, so a
        loss averaged over the rows is the tiny batch's. Whether that batch is all
        the loss reads is not known (a target the script computes from the model as it
        trains, rows of another length), so only a loss that does not fall (by
        ``learned_fraction``) is a finding there. Batches that still differ between steps
        (a buffer written in place, a rollout of the policy being trained) leave the
        experiment skipped.

    How to fix:
        If only the fallback fits: lower or raise the learning rate, or change optimiser.
        If neither fits: look for a loss that cannot reach zero (wrong loss input, labels
        not matching inputs), frozen or unused layers, a bottleneck too narrow (24), or
        regularisation that is still on (30).

    Example:
        Before::

            opt = torch.optim.SGD(model.parameters(), lr=10.0)

        After::

            opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    """
    lab: Lab = ctx.services
    if lab is not None and not lab.available and lab.script is not None:
        _overfit_by_replay(ctx, lab)
        return
    if lab is None or not lab.available:
        why = lab.unavailable_reason if lab is not None else "no subject"
        ctx.skip(f"{why}; declare a Subject (nndoctor.check) to run it")
    t = ctx.thresholds
    subject = lab.subject
    assert subject is not None
    if lab.forward_carries_state():
        ctx.skip(
            "the model's forward writes state its next call reads (two eval-mode calls on one "
            "input disagree: a queue of negatives, a memory bank): on one fixed batch it would "
            "be trained against what it wrote from that batch, so a tiny batch tells nothing"
        )
    user = lab.overfit_user(t)
    spec = lab.optimizer_spec()
    chart = lab.hand_back(_overfit_curves(ctx, f"tiny batch, {spec.describe()}", user.losses))
    _skip_if_not_finite_from_start(ctx, user)
    evidence = {
        "steps": len(user.losses),
        "initial_loss": user.initial,
        "final_loss": user.final,
        "best_loss": user.best,
        "optimizer": spec.describe(),
    }
    if lab.fits(user, t):
        ctx.note(
            f"fit a tiny batch with {spec.describe()}: loss {user.initial:.4g} → {user.final:.4g} "
            f"in {len(user.losses)} steps"
        )
        return
    if _fit_then_lost(ctx, lab, user, spec.describe()) or _noise_floor(ctx, lab, user):
        return
    fallback_spec = OptimizerSpec.of(torch.optim.Adam, lr=KNOWN_GOOD_LR)
    fallback = lab.overfit_known_good(t)
    chart.curves.append(_curve(f"tiny batch, {fallback_spec.describe()}", fallback.losses))
    evidence.update(
        fallback_optimizer=fallback_spec.describe(),
        fallback_final_loss=fallback.final,
        fallback_best_loss=fallback.best,
    )
    how_far = _how_far(user)
    if user.trace is not None:
        evidence.update(divergence_evidence(user))
        how_far += f" ({divergence_text(user)})"
    if lab.fits(fallback, t):
        # The model and data can fit: the optimiser is the problem, which the optimiser
        # and learning-rate checks (34, 36) report with their own evidence.
        ctx.finding(
            title="A tiny batch is fit only with a different optimiser setting",
            message=(
                f"With {spec.describe()} the loss on a batch of {t.overfit_batch_size} samples "
                f"{how_far}; with {fallback_spec.describe()} it falls to {fallback.final:.4g}. "
                "The model and data can fit: the optimiser settings cannot."
            ),
            fix="See optimizer-underperforms and learning-rate-out-of-range for the optimiser settings.",
            severity="info",
            reasons=(27, 34, 36),
            evidence=evidence,
        )
        return
    if _slow_not_stuck(ctx, lab, user):
        return
    ctx.finding(
        title="Cannot overfit a tiny batch",
        message=(
            f"Trained from the initial weights on {t.overfit_batch_size} samples for {len(user.losses)} steps "
            f"with regularisation off, the loss {how_far} with the user's optimiser and reached only "
            f"{fallback.final:.4g} with {fallback_spec.describe()}. A healthy model memorises a tiny batch."
        ),
        fix=(
            "Look for a loss that cannot reach zero (loss input, labels), frozen or unused layers, a "
            "too-narrow bottleneck (reason 24), or regularisation still active (reason 30)."
        ),
        reasons=(27, 24, 30),
        evidence=evidence,
    )


def _fit_then_lost(ctx: CheckContext, lab: Lab, result: TrainResult, how: str) -> bool:
    """The run held the batch fit for five steps (the window of its final loss) and rose
    after: the model can memorise it, which is what the check asks; that the steps then
    overshoot (at this rate, with the regularisation that damps them off) is the rate
    checks' to judge. Says so and returns True then."""
    t = ctx.thresholds
    if result.error or result.diverged:
        return False
    floor = result.floor if math.isfinite(result.floor) else None
    if not lab.fits_loss(result.initial, result.best_held, t, floor=floor):
        return False
    ctx.note(
        f"fit a tiny batch with {how}: the loss went {result.initial:.4g} → "
        f"{result.best_held:.4g} (held for five steps) and ended at {result.final:.4g}; the "
        "model memorises the batch, and whether the rate overshoots is "
        "learning-rate-out-of-range's to say"
    )
    return True


def _curve(label: str, losses: list[float]) -> Curve:
    return Curve(label, [float(i) for i in range(len(losses))], [float(x) for x in losses])


def _overfit_curves(ctx: CheckContext, label: str, losses: list[float]) -> ExperimentCurves:
    """The tiny-batch run against the observed run's own loss, for the report's chart."""
    # In the criterion's units, as every experiment records them (a loss divided over
    # accumulated micro-batches is multiplied back).
    scale = ctx.recording.criterion_scale()
    own = [(s.step, s.loss / scale) for s in ctx.recording.steps if s.loss_seen]
    return ExperimentCurves(
        check=ctx.spec.id,
        title="Overfitting one tiny batch, against the observed training loss",
        x_label="step",
        y_label="loss",
        curves=[
            _curve(label, losses),
            Curve("observed training loss", [float(x) for x, _ in own], [y for _, y in own]),
        ],
    )


def _how_far(result: TrainResult) -> str:
    if result.error:
        return f"could not be trained ({result.error})"
    if result.diverged:
        return f"diverged to a non-finite value after {len(result.losses)} steps (from {result.initial:.4g})"
    return f"went from {result.initial:.4g} to {result.final:.4g} (best {result.best:.4g})"


def _overfit_by_replay(ctx: CheckContext, lab: Lab) -> None:
    """The same experiment for a custom loss: re-run the script on one tiny batch."""
    t = ctx.thresholds
    competing = ctx.recording.competing_objectives
    if competing:
        # Competing objectives (a GAN; DANN's domain loss at chance, the feature extractor's
        # aim) do not fall to zero together on any batch, by design: no lowest value is a fit.
        ctx.skip(f"{competing}: the loss has no minimum a tiny batch could reach")
    # The replay records the loss the script back-propagates: a loss divided over k
    # accumulated micro-batches is judged, like every experiment's, in the criterion's
    # units, or a k-th of it would pass the absolute fit target.
    scale = ctx.recording.criterion_scale()
    # A replay that has fit ends there: the steps after it could only say so again.
    fit_rule = lab.fit_rule(t, scale=scale)
    user = lab.overfit_replay(t, scale)
    if user.timed_out:
        # A replay cut short has too few steps to judge; that is no evidence of a failure to fit.
        ctx.skip(
            f"{lab.unavailable_reason}, and the script replay hit its time limit after "
            f"{len(user.losses)} of {t.overfit_steps} steps"
        )
    if user.error and not user.losses:
        ctx.skip(f"{lab.unavailable_reason}, and re-running the script failed: {user.error}")
    repeated = user.repeated_draws and not user.inputs_vary and user.input_steps >= 2
    if not user.substituted and not repeated:
        ctx.skip(
            f"{lab.unavailable_reason}, and the script feeds batches without a DataLoader that a "
            "replay could substitute, nor from random draws a replay could repeat; declare a "
            "Subject (nndoctor.check) to run it"
        )
    if not user.losses:
        # Steps without a loss read (a backward pass given its gradient, from a tensor of
        # many elements): nothing was measured, which is no failure to fit.
        ctx.skip(
            f"{lab.unavailable_reason}, and the script replay ran {user.steps} steps without "
            "a backward pass from a one-element loss to read"
        )
    if user.error and len(user.losses) < t.overfit_steps:
        # The script raised part-way (its own schedule run past its end on a loader that
        # never ends, say): a run cut short is no evidence of a failure to fit.
        ctx.skip(
            f"{lab.unavailable_reason}, and the script replay raised after {len(user.losses)} of "
            f"{t.overfit_steps} steps: {user.error}"
        )
    result = TrainResult(losses=[v / scale for v in user.losses])
    decided = user
    varies = user.inputs_vary
    _skip_if_not_finite_from_start(ctx, result)
    if lab.deserves_longer_run(result, t):
        steps = t.overfit_steps * t.overfit_extension
        longer = lab.replay(
            "overfit",
            steps=steps,
            batch_size=t.overfit_batch_size,
            fit_rule=fit_rule,
            overrides={"uncut": True} if user.repeated_draws and not user.batch_cut else {},
        )
        if longer.timed_out:
            # The longer run is what decides a loss still falling at the end of the short
            # one; cut short by the clock, it decides nothing, and the short run must not
            # decide in its place (a verdict never depends on the machine's speed).
            ctx.skip(
                f"{lab.unavailable_reason}; the tiny batch was not fit in {len(result.losses)} "
                f"steps of the script replay, and the longer replay that decides hit its time "
                f"limit after {len(longer.losses)} of {steps} steps"
            )
        # Where the script raised before the longer budget, its steps up to there count.
        if len(longer.losses) > len(result.losses):
            result = TrainResult(losses=[v / scale for v in longer.losses])
            decided = longer
            varies = varies or longer.inputs_vary
    batch = _replayed_batch(user, t.overfit_batch_size)
    lab.hand_back(_overfit_curves(ctx, f"{batch}, script replay", result.losses))
    evidence = {
        "steps": len(result.losses),
        "initial_loss": result.initial,
        "final_loss": result.final,
        "best_loss": result.best,
        "method": "script replay (custom loss)",
        "batch": batch,
    }
    if lab.fits(result, t):
        ctx.note(
            f"fit {batch} by replaying the script: loss {result.initial:.4g} → {result.final:.4g} "
            f"in {len(result.losses)} steps"
        )
        return
    if (
        _recognised_terms_fit(ctx, lab, decided, scale)
        or _noise_floor(ctx, lab, result)
        or _augmented_floor(ctx, result, varies)
        or _slow_not_stuck(ctx, lab, result)
        or _drawn_again_learns(ctx, result, decided)
        or (not user.repeated_draws and _batch_coupled_floor(ctx, lab, result))
        or (decided.tiled and _whole_arrays_learn(ctx, lab, result, scale))
    ):
        return
    _skip_if_loss_reads_carried_state(ctx, lab, user)
    ctx.finding(
        title="Cannot overfit a tiny batch",
        message=(
            f"Replaying the script on {batch} for {len(result.losses)} steps "
            f"(its own loss and optimiser, dropout and weight decay off), the loss {_how_far(result)}. "
            "A healthy model memorises a tiny batch."
        ),
        fix=(
            "Look for a loss that cannot reach zero, frozen or unused layers, a too-narrow bottleneck "
            "(reason 24), regularisation still active (reason 30), or a learning rate far off (reason 36)."
        ),
        reasons=(27, 24, 30),
        evidence=evidence,
    )


def _skip_if_loss_reads_carried_state(ctx: CheckContext, lab: Lab, replay: ReplayResult) -> None:
    """Skips when the replayed loss reads state the script carries between steps beside the
    model and the batch (a queue of negatives kept in a variable of the script, a momentum
    encoder following the model): replayed on the tiny batch at rate 0 (parameters fixed,
    the batch and the random streams the same at every step, so weights sampled in the
    forward and noise added in the loop are too), such a loss still moves. On
    one fixed batch its negatives become that batch's own keys, so its lowest value is
    unknown and a tiny batch tells nothing."""
    t = ctx.thresholds
    rec = ctx.recording
    groups = next((s.hyperparameters for s in rec.steps if s.hyperparameters), [])
    if rec.step_source == "manual" or not groups or not all("lr" in g for g in groups):
        # Updates by hand, or an optimizer without an ``lr`` to set to 0: the model would
        # not stay fixed, and a loss that falls is no evidence of state.
        return
    uncut = {"uncut": True} if replay.repeated_draws and not replay.batch_cut else {}
    still = lab.replay(
        "overfit",
        steps=t.carried_state_steps,
        batch_size=t.overfit_batch_size,
        overrides={"lr": 0.0, "same_draws": True, **uncut},
    )
    losses = still.losses
    if still.timed_out:
        # Cut short by the clock it decides nothing, and the finding must not stand in its
        # place: a verdict never depends on the machine's speed.
        ctx.skip(
            f"{lab.unavailable_reason}; the tiny batch was not fit by the script replay, and the "
            f"replay at rate 0 that decides whether its loss reads state kept between steps hit "
            f"its time limit after {len(losses)} of {t.carried_state_steps} steps"
        )
    if still.error or len(losses) < t.carried_state_steps:
        return
    if not all(map(math.isfinite, losses)):
        return
    first = losses[0]
    moved = max(abs(v - first) for v in losses)
    if moved <= t.carried_state_rtol * max(abs(first), 1e-12):
        return
    ctx.skip(
        f"replayed on the tiny batch at rate 0 (the model fixed), the loss still moves "
        f"({first:.4g} → {losses[-1]:.4g} over {len(losses)} steps): it reads state the script "
        "carries between steps (a queue of negatives, a momentum encoder), which on one fixed "
        "batch fills with that batch's own keys, so a tiny batch tells nothing"
    )


def _drawn_again_learns(ctx: CheckContext, result: TrainResult, replay: ReplayResult) -> bool:
    """A replay without a DataLoader made its one batch itself: the random streams rewound,
    rows cut by hand handed out again. Whether that is all of what the loss reads is not
    known (targets the script computes from the model as it trains: a bootstrapped value,
    a teacher's output; rows of another length left uncut), and data drawn anew that no
    cut reaches is the script's own batch, perhaps far more than a tiny one. Memorising it
    cannot be asked: a loss that clearly fell (by ``learned_fraction``) says the model
    learns on it, and only a loss that did not is evidence. Says so and returns True then."""
    t = ctx.thresholds
    if not replay.repeated_draws:
        return False
    if not (result.initial > 0 and result.best < (1 - t.learned_fraction) * result.initial):
        return False
    ctx.note(
        f"{_replayed_batch(replay, t.overfit_batch_size)} was not fit in {len(result.losses)} "
        "steps, but the model learns on it: "
        f"{result.initial:.4g} → {result.best:.4g} (best); a batch the replay makes itself, "
        "without a DataLoader, is asked no more than that"
    )
    return True


def _replayed_batch(replay: ReplayResult, tiny: int) -> str:
    """The batch a script replay fit, in words: the tiny batch its loader was cut to, or
    the script's own batch, drawn again at every step."""
    if replay.substituted:
        return f"one batch of {tiny} samples"
    if replay.tiled:
        return (
            f"one batch of {tiny} samples (the first rows of the arrays the script trains on "
            "whole, repeated down their length)"
        )
    if replay.batch_cut:
        return f"one batch of {tiny} samples (rows the script cut by hand, the same at every step)"
    n = replay.batch_rows
    rows = f"{n} sample{'' if n == 1 else 's'}" if n else "samples"
    return f"one batch of {rows} (the script's own draw, repeated at every step)"


def _recognised_terms_fit(ctx: CheckContext, lab: Lab, replay: ReplayResult, scale: float) -> bool:
    """The back-propagated loss is recognised torch losses plus a part written in plain
    torch that the tiny batch cannot take to zero (a Bayesian network's complexity cost
    over all its weights, a penalty on the parameters): the recognised terms, which read
    the batch's targets, are what memorising it must drive down. When they fit, the batch
    was memorised. Says so and returns True then."""
    terms, totals = replay.term_losses, replay.losses
    if not terms or len(terms) != len(totals) or not all(map(math.isfinite, terms)):
        return False
    rest = [total - term for total, term in zip(totals, terms, strict=True)]
    if all(abs(r) <= 1e-6 * max(1.0, abs(total)) for r, total in zip(rest, totals, strict=True)):
        return False  # the loss is its recognised terms: the total's verdict is theirs
    fitted = TrainResult(losses=[v / scale for v in terms])
    if not lab.fits(fitted, ctx.thresholds):
        return False
    n = len(terms)
    ctx.note(
        f"the loss has a part written in plain torch beside its recognised terms, and it does not "
        f"fall to zero ({rest[0] / scale:.4g} → {rest[-1] / scale:.4g} over {n} steps of the "
        f"script replay on the tiny batch); the recognised terms, which read the targets, fit it: "
        f"{fitted.initial:.4g} → {fitted.final:.4g}"
    )
    return True


def _noise_floor(ctx: CheckContext, lab: Lab, result: TrainResult) -> bool:
    """A model whose forward is random by design cannot drive its loss to zero, and how far its
    floor lies is unknown: a run whose loss clearly fell (by ``learned_fraction``) says the model
    learns, and zero loss cannot be asked for. Says so and returns True then."""
    t = ctx.thresholds
    if not (
        result.losses
        and result.final < (1 - t.learned_fraction) * result.initial
        and lab.stochastic_forward()
    ):
        return False
    ctx.note(
        "the model's forward is random (one input, two seeds, two outputs, in eval or in "
        "training mode), so the loss has a floor above zero; on the tiny batch it fell "
        f"{result.initial:.4g} → {result.final:.4g} in "
        f"{len(result.losses)} steps"
    )
    return True


def _slow_not_stuck(ctx: CheckContext, lab: Lab, result: TrainResult) -> bool:
    """The longer run did not fit, but its loss is still falling clearly over its last third:
    the model learns this batch, more slowly than the step budget allows (an ordinal model
    whose thresholds must spread, a small learning rate with Adam). That is no evidence that
    it cannot fit. Says so and returns True then."""
    t = ctx.thresholds
    longer = t.overfit_steps * t.overfit_extension
    if len(result.losses) < longer or not lab.still_learning(result, t):
        return False
    n = len(result.losses)
    ctx.note(
        f"the tiny batch was not fit in {n} steps, but its loss is still falling: "
        f"{result.initial:.4g} → {result.best:.4g} (best), and over the last third "
        f"{result.losses[2 * n // 3 - 1]:.4g} → {result.final:.4g}; slow, not stuck"
    )
    return True


def _batch_coupled_floor(ctx: CheckContext, lab: Lab, result: TrainResult) -> bool:
    """The script's loss reaches lower on more samples: replayed on twice the tiny batch for
    as many steps, its loss ends clearly lower (by ``learned_fraction``). Memorising more
    samples is harder, never easier, for a loss that is a mean or sum over samples; a loss
    that couples the samples of a batch (Barlow Twins' cross-correlation over it: of rank
    7 at most on 8 samples, however the model fits them) has a floor that falls as the
    batch grows, and on the tiny batch it is unknown. A run whose loss clearly fell (by
    ``learned_fraction``) then says the model learns. Says so and returns True then."""
    t = ctx.thresholds
    if not (result.losses and result.final < (1 - t.learned_fraction) * result.initial):
        return False
    larger = lab.replay("overfit", steps=len(result.losses), batch_size=2 * t.overfit_batch_size)
    if larger.timed_out or larger.error or len(larger.losses) < len(result.losses):
        return False
    scale = ctx.recording.criterion_scale()
    small = last_tenth_median(result.losses)
    large = last_tenth_median([v / scale for v in larger.losses])
    if not (math.isfinite(large) and large < (1 - t.learned_fraction) * small):
        return False
    ctx.note(
        f"on {2 * t.overfit_batch_size} samples the replayed loss ends lower than on "
        f"{t.overfit_batch_size} ({large:.4g} against {small:.4g} over the last tenth of "
        f"{len(result.losses)} steps): it couples the samples of a batch, whose floor falls as "
        f"the batch grows, so its lowest value on {t.overfit_batch_size} is unknown; on the "
        f"tiny batch it fell {result.initial:.4g} → {result.final:.4g}"
    )
    return True


def _whole_arrays_learn(ctx: CheckContext, lab: Lab, result: TrainResult, scale: float) -> bool:
    """A tiny batch written down the arrays a script trains on whole repeats each of its
    samples many times over: a loss that couples the rows (a contrastive loss, where each
    sample's copies are its negatives too) has a floor there that no model gets under. The
    script is then replayed on its whole arrays as they are, repeated at every step: a loss
    that clearly falls (by ``learned_fraction``) says the model learns, which is all that
    can be asked of a batch whose floor is unknown. Says so and returns True then."""
    t = ctx.thresholds
    whole = lab.replay(
        "overfit",
        steps=len(result.losses),
        batch_size=t.overfit_batch_size,
        overrides={"uncut": True},
    )
    if whole.timed_out or whole.error or len(whole.losses) < len(result.losses):
        return False
    losses = [v / scale for v in whole.losses]
    if not (math.isfinite(losses[0]) and losses[0] > 0):
        return False
    best = min(v for v in losses if math.isfinite(v))
    if best >= (1 - t.learned_fraction) * losses[0]:
        return False
    ctx.note(
        f"one batch of {t.overfit_batch_size} samples written down the arrays the script "
        f"trains on whole was not fit in {len(result.losses)} steps "
        f"({result.initial:.4g} → {result.final:.4g}), but each of its samples appears there "
        "many times over, which a loss coupling the rows (a contrastive one) has a floor for; "
        f"replayed on its whole arrays the loss falls {losses[0]:.4g} → {best:.4g} (best): "
        "the model learns"
    )
    return True


def _augmented_floor(ctx: CheckContext, result: TrainResult, varies: bool) -> bool:
    """The script changed the one fixed batch on its way to the model at random (mixup, noise
    added in the loop, augmentation on the device): the loss on it has a floor above zero
    whose height is unknown, so a run whose loss clearly fell (by ``learned_fraction``) says
    the model learns. Says so and returns True then."""
    t = ctx.thresholds
    if not (varies and result.losses and result.final < (1 - t.learned_fraction) * result.initial):
        return False
    ctx.note(
        "the script changes the fixed batch at random between the loader and the model (mixup, "
        "noise or augmentation in the loop, negatives drawn anew at every step), so the loss on "
        "it has a floor above zero; on the tiny "
        f"batch it fell {result.initial:.4g} → {result.final:.4g} in {len(result.losses)} steps"
    )
    return True


def _skip_if_not_finite_from_start(ctx: CheckContext, result: TrainResult) -> None:
    if result.losses and not math.isfinite(result.losses[0]):
        ctx.skip(
            "the loss is not finite from the first step: nothing can be fit (see non-finite-values)"
        )
