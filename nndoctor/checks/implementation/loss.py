"""The loss: chance level at initialisation, the inputs it receives, whether it fits the task."""

from __future__ import annotations

import math
import statistics
from typing import Any

import torch

from nndoctor.checks import causes
from nndoctor.checks.registry import CheckContext, register_check
from nndoctor.probes.broadcasts import LossBroadcast
from nndoctor.probes.recording import ElementwiseLoss, LossCall, StepRecord
from nndoctor.report.model import Where

_BINARY = ("binary_cross_entropy", "binary_cross_entropy_with_logits")
# Losses comparing each output element with the target element at its place: shapes that
# differ broadcast silently (Poisson's negative log-likelihood without even a warning).
_ELEMENTWISE = (
    "mse_loss",
    "l1_loss",
    "smooth_l1_loss",
    "huber_loss",
    "poisson_nll_loss",
    "gaussian_nll_loss",
    *_BINARY,
)


def _first_call(steps: list[StepRecord]) -> tuple[StepRecord, LossCall] | None:
    for s in steps:
        if s.loss_calls:
            return s, s.loss_calls[0]
    return None


def chance_loss(call: LossCall) -> tuple[float, str] | None:
    """The loss of an uninformed predictor for this call, and how it was derived."""
    reduction = call.kwargs.get("reduction", "mean")
    if reduction not in ("mean", "sum"):
        return None
    shape = call.input_shape
    if call.fn in ("cross_entropy", "nll_loss") and len(shape) >= 2:
        c = shape[1]
        value, how = math.log(c), f"ln({c}) for {c}-class cross-entropy (uniform prediction)"
        per = math.prod(shape) / c
    elif call.fn in _BINARY:
        value, how = math.log(2), "ln 2 per output (p = 0.5)"
        per = math.prod(shape)
        pos_weight = call.kwargs.get("pos_weight")
        if pos_weight is not None:
            # Positives weighted w: ln 2 per negative, w ln 2 per positive.
            positives = call.target.mean if call.target is not None else math.nan
            if not isinstance(pos_weight, (int, float)) or not 0 <= positives <= 1:
                return None  # a weight per class, or targets not read: no single level
            value *= pos_weight * positives + (1 - positives)
            how = f"ln 2 per output, positives weighted {pos_weight:g} ({positives:.0%} positive)"
    elif call.fn == "mse_loss" and call.target is not None and math.isfinite(call.target.std):
        # An initialised network knows nothing of the targets, their mean included: its
        # outputs sit near zero, so its loss is their mean square, not their variance (the
        # floor of a constant that has learned the mean, a step or two of the bias away).
        mean = call.target.mean if math.isfinite(call.target.mean) else 0.0
        value = call.target.std**2 + mean**2
        how = "the mean square of the targets (outputs near zero, as initialised)"
        per = math.prod(shape)
    else:
        return None
    if reduction == "sum":
        value, how = value * per, how + f", summed over {int(per)} elements"
    return value, how


@register_check(
    id="loss-not-at-chance",
    reasons=(17,),
    severity="warning",
    symptom=True,
    # Its finding is a loss far *above* chance: confident outputs from the first step, which
    # large initial weights or unscaled inputs make; a wrong loss input mostly does not (a
    # softmax before cross-entropy starts near chance, probabilities into NLLLoss below it).
    differential=(
        (28, "the scale of the last layer's weights and bias at initialisation"),
        (12, "the scale of the inputs"),
        (19, "what the loss is fed: logits, probabilities or log-probabilities"),
        (8, "a class prior in the targets (class-imbalance)"),
    ),
)
def loss_not_at_chance(ctx: CheckContext) -> None:
    """The loss at initialisation is far from the chance level of the task.

    Why it matters:
        A freshly initialised model should be uninformed: C-class cross-entropy starts
        near ln(C), binary cross-entropy near ln 2 per output, MSE near the mean square
        of the targets (outputs near zero: the mean of the targets is not known yet, and
        the bias learns it within a few steps). A much higher start means outputs that
        are confidently wrong from the first step — a bad initialisation, unscaled
        inputs, a wrong loss input — and the first part of training is spent undoing it.

    What is measured:
        The recognised loss at the initial weights (the first observed step, or the mean
        over a few captured batches evaluated on a copy at the initial weights), against
        the chance value derived from the loss call and its targets. A loss far above
        chance is then compared with a healthy twin: the same model re-drawn by PyTorch's
        default initialisation (every module's ``reset_parameters``), on a copy, or, where
        the training step cannot be rebuilt in-process, in one replay of the script up to
        its first backward. When the twin starts as high, the start is built into the
        model or its loss — a margin on the target's logit or a fixed logit scale, as
        metric-learning heads (ArcFace, CosFace) have by design — and the finding is an
        info, not a warning. So is a start below ``chance_ratio_error`` times chance that the
        script's own steps undo at once: the median of its observed loss from step
        ``chance_recovery_steps`` on below the bar (TabNet's output mapping starts with a
        large gain and costs a step or two).
        Where no reduced loss call has a chance level (a focal loss built on
        ``binary_cross_entropy_with_logits(..., reduction="none")``, a masked sequence
        loss), the first unreduced call of the first step is judged instead: the mean of
        its elements against the per-element chance level (ln 2 per binary output, ln C
        per C-class position, the targets' mean square for MSE), with the same factors and
        no healthy twin (its elements are read from the observed step only). A detector
        whose classification bias starts at the prior, -log((1 - p) / p), sits far below
        it; that bias of the wrong sign starts every anchor confident of every class.

    How to fix:
        Use the framework's default initialisation (or Kaiming/Xavier), keep the last
        layer's weights small, initialise its bias to the class prior (or to the target
        mean for regression), and standardise the inputs.

    Example:
        Before::

            nn.init.normal_(model.head.weight, std=5.0)   # confident logits at step 0

        After::

            nn.init.zeros_(model.head.weight)             # or PyTorch's default init
            nn.init.constant_(model.head.bias, 0.0)
    """
    first = _first_call(ctx.recording.steps)
    chance = chance_loss(first[1]) if first is not None else None
    if first is None or chance is None:
        elementwise = _first_elementwise(ctx.recording.steps)
        if elementwise is not None:
            _judge_elementwise(ctx, *elementwise)
            return
    if first is None:
        ctx.skip("no recognised torch loss was called (a custom loss has no defined chance level)")
    step, call = first
    if chance is None:
        ctx.skip(f"no chance level is defined for {call.fn} with these arguments")
    value, how = chance
    initial = call.value
    source = f"the loss at step {step.step}"
    lab = ctx.services
    if lab is not None and lab.available and step.step == 0:
        model = lab.fresh_model()
        losses = lab.evaluate(model, lab.batches(4))
        finite = [x for x in losses if math.isfinite(x)]
        if finite:
            initial = sum(finite) / len(finite)
            source = f"the mean loss of the initial weights over {len(finite)} batch(es)"
    if not math.isfinite(initial):
        ctx.skip("the initial loss is not finite (see the non-finite check)")
    t = ctx.thresholds
    ratio = initial / value if value > 0 else math.inf
    ctx.note(f"initial loss {initial:.4g} vs chance {value:.4g} ({how})")
    bar = value * t.chance_ratio_warning + t.chance_abs_margin
    if initial <= bar:
        return
    where = Where(step=step.step, file=call.file, line=call.line)
    evidence: dict[str, Any] = {
        "initial_loss": initial,
        "chance": value,
        "ratio": ratio,
        "loss": call.fn,
    }
    twin, missing = _default_init_loss(lab, call.fn) if step.step == 0 else (None, "")
    if twin is not None:
        evidence["default_init_loss"] = twin
        ctx.note(
            f"the same model re-drawn by PyTorch's default initialisation starts at {twin:.4g}"
        )
    elif missing:
        ctx.note(f"no healthy twin: {missing}")
    if twin is not None and twin > bar:
        # The healthy twin starts as high: what lifts the loss is built into the model or
        # its loss (a margin on the target's logit, a fixed logit scale as in ArcFace or
        # CosFace, inputs on a large scale), not an initialisation someone chose.
        ctx.finding(
            title="The loss starts far above chance, as the model is built",
            message=(
                f"The {call.fn} loss starts at {initial:.4g} ({source}), {ratio:.1f}× the chance "
                f"level {value:.4g} — {how}. The same model re-drawn by PyTorch's default "
                f"initialisation starts at {twin:.4g}, as high: the initialisation is not why. "
                "A margin or a fixed scale on the logits does this by design; so do inputs on a "
                "large scale."
            ),
            fix=(
                "Nothing, if the loss has a margin or a logit scale by design. Otherwise "
                "standardise the inputs and look at what the last layer computes."
            ),
            severity="info",
            reasons=(17,),
            where=where,
            evidence=evidence,
        )
        return
    severity = (
        "error" if initial > value * t.chance_ratio_error + t.chance_abs_margin else "warning"
    )
    # Far above chance (the error band) is a gross fault however fast an optimizer copes.
    undone = (
        _undone_by(ctx.recording.steps, call.fn, bar, t.chance_recovery_steps)
        if severity == "warning"
        else None
    )
    if undone is not None:
        evidence["median_loss_after"] = undone
        ctx.finding(
            title="The loss starts above chance and the first steps undo it",
            message=(
                f"The {call.fn} loss starts at {initial:.4g} ({source}), {ratio:.1f}× the chance "
                f"level {value:.4g} — {how}; from step {t.chance_recovery_steps} of the script's "
                f"own run on, its median is {undone:.4g}, below {bar:.4g}: the confident start "
                f"cost about {t.chance_recovery_steps} steps, no more."
            ),
            fix=(
                "Nothing needed. A smaller last-layer initialisation (PyTorch's default, or the "
                "bias at the class prior) would save those first steps."
            ),
            severity="info",
            reasons=(17,),
            where=where,
            evidence=evidence,
        )
        return
    twin_said = (
        f" Re-drawn by PyTorch's default initialisation, the same model starts at {twin:.4g}."
        if twin is not None
        else f" (No healthy twin to compare with: {missing}.)"
        if missing
        else ""
    )
    ctx.finding(
        title="The loss at initialisation is far above chance",
        message=(
            f"The {call.fn} loss starts at {initial:.4g} ({source}), {ratio:.1f}× the chance "
            f"level {value:.4g} — {how}. The model is confidently wrong before it has learned "
            f"anything.{twin_said}"
        ),
        fix=(
            "Check the initialisation of the last layers (default init, small output weights, "
            "bias at the class prior or target mean) and that the inputs are standardised."
        ),
        severity=severity,
        reasons=(17, 28),
        where=where,
        evidence=evidence,
    )


def _undone_by(steps: list[StepRecord], fn: str, bar: float, by: int) -> float | None:
    """The median of the script's own ``fn`` loss over its observed steps from step ``by``
    on, where it lies below ``bar`` (a high start the first steps undid); None otherwise,
    or where fewer than three such steps were observed."""
    later = [
        s.loss_calls[0].value
        for s in steps
        if s.step >= by and s.loss_calls and s.loss_calls[0].fn == fn
    ]
    if len(later) < 3 or not all(math.isfinite(v) for v in later):
        return None
    middle = statistics.median(later)
    return middle if middle <= bar else None


def elementwise_chance(call: ElementwiseLoss) -> tuple[float, str] | None:
    """The per-element loss of an uninformed predictor for an unreduced loss call, and how
    it was derived; None where no single level is written here."""
    shape = call.input_shape
    if call.fn in ("cross_entropy", "nll_loss") and len(shape) >= 2:
        if call.kwargs.get("weight") is not None or call.kwargs.get("label_smoothing"):
            return None
        c = shape[1]
        return math.log(c), f"ln({c}) per element for {c}-class cross-entropy (uniform prediction)"
    if call.fn in _BINARY:
        if call.kwargs.get("pos_weight") is not None or call.kwargs.get("weight") is not None:
            return None
        return math.log(2), "ln 2 per element (p = 0.5)"
    if call.fn == "mse_loss" and math.isfinite(call.target_mean_square):
        return call.target_mean_square, "the mean square of the targets (outputs near zero)"
    return None


def _first_elementwise(
    steps: list[StepRecord],
) -> tuple[StepRecord, ElementwiseLoss, float, str] | None:
    """The first unreduced loss call of the first observed step with a chance level."""
    for s in steps[:1]:
        for call in s.elementwise_losses:
            chance = elementwise_chance(call)
            if chance is not None and math.isfinite(call.value):
                return s, call, *chance
    return None


def _judge_elementwise(
    ctx: CheckContext, step: StepRecord, call: ElementwiseLoss, value: float, how: str
) -> None:
    """An unreduced loss (a focal loss's binary cross-entropy, a masked sequence loss): the
    mean of its elements at the first step against the per-element chance level. There is
    no healthy twin: the elements are read from the observed step only."""
    t = ctx.thresholds
    initial = call.value
    ctx.note(
        f"initial {call.fn} per element (reduction='none') {initial:.4g} vs chance {value:.4g} "
        f"({how})"
    )
    bar = value * t.chance_ratio_warning + t.chance_abs_margin
    if initial <= bar:
        return
    ratio = initial / value if value > 0 else math.inf
    severity = (
        "error" if initial > value * t.chance_ratio_error + t.chance_abs_margin else "warning"
    )
    ctx.finding(
        title="The loss at initialisation is far above chance",
        message=(
            f"The {call.fn} loss, computed per element (reduction='none'), averages {initial:.4g} "
            f"per element at step {step.step}, {ratio:.1f}× the chance level {value:.4g} — {how}. "
            "The model is confidently wrong before it has learned anything: look at the "
            "initialisation of the layer that makes these outputs (a bias set to a prior of the "
            "wrong sign, large output weights)."
        ),
        fix=(
            "Check the initialisation of the last layers (default init, small output weights, "
            "a bias at the class prior: -log((1 - p) / p) for a rare positive class) and that "
            "the inputs are standardised."
        ),
        severity=severity,
        reasons=(17, 28),
        where=Where(step=step.step, file=call.file, line=call.line),
        evidence={
            "initial_loss": initial,
            "chance": value,
            "ratio": ratio,
            "loss": call.fn,
            "reduction": "none",
        },
    )


def _default_init_loss(lab: Any, fn: str) -> tuple[float | None, str]:
    """The initial loss ``fn`` of the model re-drawn by PyTorch's default initialisation (the
    healthy twin of the user's initialisation), or None and why it could not be had: the
    mean over a few captured batches on a copy, or, where the training step cannot be
    rebuilt in-process (a margin head called with the labels outside the model), the first
    step of the script replayed with every module re-drawn."""
    if lab is None:
        return None, ""
    if lab.available and lab.has_model:
        try:
            losses = lab.evaluate(lab.default_initialised_model(), lab.batches(4))
        except (RuntimeError, ValueError, TypeError, IndexError) as exc:
            return None, f"re-drawing the copy failed ({type(exc).__name__})"
        finite = [x for x in losses if math.isfinite(x)]
        return (sum(finite) / len(finite), "") if finite else (None, "its loss is not finite")
    if lab.script is None:
        return None, ""
    result = lab.replay("default-init")
    if result.timed_out:
        # Said, not hidden: a replay cut by its time limit concludes nothing.
        return None, "the replay of the script was cut by its time limit"
    value = (result.initial_terms or {}).get(fn) if result.ok else None
    if value is None or not math.isfinite(value):
        return None, f"the replay of the script gave no finite {fn} ({result.error or 'no loss'})"
    return value, ""


def _probabilities_as_logits(ctx: CheckContext, tol: float) -> int:
    """A Categorical built from ``logits=`` (or ``F.gumbel_softmax`` called on logits) that
    are probabilities: every value in [0, 1] and every row summing to 1. Its log_prob is then log_softmax of probabilities, whose
    rows differ by at most 1 between a class's certainty and its absence. The number of
    findings (0 or 1)."""
    seen = ctx.recording.distribution_logits
    bad = [
        d
        for d in seen
        if d.min >= 0 and d.max <= 1 and d.rowsum_dev < tol and d.shape and d.shape[-1] >= 2
    ]
    if not bad:
        return 0
    d = bad[0]
    if d.distribution == "gumbel_softmax":
        consequence = (
            "its samples are drawn nearly uniformly whatever the input, so what the encoder "
            "says barely reaches the decoder"
        )
        fix = "Pass the raw scores (or the log of the probabilities) to F.gumbel_softmax."
    else:
        consequence = "its log_prob (the loss) gives squashed gradients"
        fix = (
            f"Pass the raw scores as logits (no softmax), or the probabilities as "
            f"{d.distribution}(probs=...)."
        )
    ctx.finding(
        title=f"Probabilities passed as logits to {d.distribution}",
        message=(
            f"{d.distribution}(logits=...) was given values in [{d.min:.3g}, {d.max:.3g}] whose rows "
            f"sum to 1 (max deviation {d.rowsum_dev:.2g}; {len(bad)} of {len(seen)} such "
            f"calls read): these are probabilities, a softmax already applied. As logits "
            f"they are normalised again, so the most certain choice of {d.shape[-1]} gets at most "
            f"e/(e + {d.shape[-1] - 1}) of the probability, and {consequence}."
        ),
        fix=fix,
        where=Where(step=d.step, file=d.file, line=d.line),
        evidence={
            "distribution": d.distribution,
            "logits_min": d.min,
            "logits_max": d.max,
            "max_rowsum_minus_1": d.rowsum_dev,
            "shape": list(d.shape),
        },
    )
    return 1


@register_check(
    id="loss-input-mismatch",
    reasons=(19,),
    severity="error",
    # Raw scores where log-probabilities belong (NLLLoss, KLDivLoss) leave the loss without
    # a floor: the mismatch is why it falls for ever.
    explains=causes.FIT_SYMPTOMS | causes.INSTABILITY_SYMPTOMS | frozenset({"loss-without-floor"}),
)
def loss_input_mismatch(ctx: CheckContext) -> None:
    """The loss receives the wrong kind of input: probabilities, logits or shapes it does not expect.

    Why it matters:
        CrossEntropyLoss applies log-softmax itself: feeding it softmax outputs squashes
        the gradients and the loss plateaus; so does a sigmoid or tanh left on the class
        scores, which caps how sure the softmax can be. NLLLoss expects log-probabilities, BCELoss
        probabilities, BCEWithLogitsLoss raw logits, KLDivLoss log-probabilities as its input.
        Elementwise losses broadcast silently
        when output and target shapes differ ((N, 1) against (N,) becomes (N, N)), so
        every prediction is compared with every target.

    What is measured:
        For every recognised loss call: the range of the input, whether its rows sum to one
        (probabilities) or have zero logsumexp (log-probabilities), the input and target
        shapes and dtypes, and for binary cross-entropy the targets' range ([0, 1]). Inputs
        of BCEWithLogitsLoss inside [0, 1] at every step read as sigmoid outputs unless a
        learned linear map (a linear layer, a convolution, a matrix product) produced every
        one of them: its outputs are unbounded, and a few early logits near a positive bias
        lie in [0, 1] by chance. Logits of CrossEntropyLoss or BCEWithLogitsLoss made by an
        operation that bounds them on both sides (a sigmoid, a tanh, a hardtanh, a clamp,
        read from the input's autograd node) are a finding when the floor that range sets
        the loss, ``log(1 + (C - 1) e^-(hi - lo))`` for C classes, the smaller of
        ``softplus(-hi)`` and ``softplus(lo)`` for binary logits, is at least
        ``squashed_scores_floor_share`` of the loss at chance (``log C``, ``log 2``). For the
        first few ``torch.distributions.Categorical`` built from ``logits=`` (a policy's, a
        classifier's whose loss is ``-dist.log_prob(y)``) and ``F.gumbel_softmax`` calls (a
        categorical VAE's latent): the same range and row sums, since probabilities passed
        as logits are squashed the same way.
        A loss written by hand is read from the autograd graph of the first
        ``LOSS_BROADCAST_STEPS`` (3) steps' backward passes, between the loss and the last
        layers that produced what it reads (the model's outputs, a critic called beside
        it): the elementwise operations (``-``, ``*``, ``/``, ``torch.where`` ...) whose
        result is larger than an operand made from the model. An output holding the batch
        stretched along a new axis as long as the batch (``(N, 1) - (N,)`` gives ``(N, N)``),
        or one number reduced from a tensor holding the batch, a few elementwise steps
        back, stretched to the batch (a pair distance summed over the whole batch, then
        multiplied by each pair's label), is a finding when every other operand is without
        gradient (a target, a label): stretches written on purpose (``unsqueeze``,
        ``x[:, None]``) and between two things the model made (contrastive pairs, an output
        centred by its batch mean) are how pairwise and batch-level losses are built.

    How to fix:
        Give CrossEntropyLoss and BCEWithLogitsLoss the raw logits (no softmax/sigmoid in the
        model's forward), give NLLLoss and KLDivLoss log_softmax outputs, and make output and target shapes
        equal for elementwise losses, hand-written ones too (``out.squeeze(1)`` or
        ``target.unsqueeze(1)``); reduce a per-sample quantity over its features only
        (``.sum(dim=1)``), the batch last.

    Example:
        Before::

            logits = model(x)
            loss = nn.CrossEntropyLoss()(logits.softmax(dim=1), y)

        After::

            loss = nn.CrossEntropyLoss()(model(x), y)
    """
    tol = ctx.thresholds.probability_sum_tolerance
    distributions = _probabilities_as_logits(ctx, tol)
    calls = [(s, c) for s in ctx.recording.steps for c in s.loss_calls]
    if not calls:
        if _hand_written_broadcast(ctx):
            return
        if ctx.recording.loss_graphs_searched:
            ctx.note(
                f"no recognised torch loss was called; {ctx.recording.loss_graphs_searched} "
                "backward pass(es) of the hand-written loss searched: no output broadcast "
                "against a target of another shape"
            )
            return
        seen = ctx.recording.distribution_logits
        if seen:
            if not distributions:
                ctx.note(f"the logits of {len(seen)} Categorical distribution(s) inspected")
            return
        ctx.skip("no recognised torch loss was called")
    by_fn: dict[str, list[tuple[StepRecord, LossCall]]] = {}
    for s, c in calls:
        by_fn.setdefault(c.fn, []).append((s, c))
    ctx.note(f"{len(calls)} loss call(s) of {', '.join(sorted(by_fn))} inspected")
    for fn, items in by_fn.items():
        stats = [c.input_stats for _, c in items if c.input_stats]
        step0, c0 = items[0]
        where = Where(step=step0.step, file=c0.file, line=c0.line)
        if not stats:
            continue
        lo = min(s["min"] for s in stats)
        hi = max(s["max"] for s in stats)
        if not (math.isfinite(lo) and math.isfinite(hi)):
            # Non-finite loss inputs are the NaN check's finding; their kind cannot be judged.
            continue
        rowsum = max(s["rowsum_dev"] for s in stats)
        lse = max(s["logsumexp_dev"] for s in stats)
        evidence = {
            "loss": fn,
            "input_min": lo,
            "input_max": hi,
            "max_rowsum_minus_1": rowsum,
            "max_abs_logsumexp": lse,
            "input_shape": list(c0.input_shape),
        }
        if (
            fn == "cross_entropy"
            and lo >= 0
            and hi <= 1
            and rowsum < tol
            and len(c0.input_shape) >= 2
        ):
            ctx.finding(
                title="Softmax applied before CrossEntropyLoss",
                message=(
                    f"The input of cross_entropy lies in [{lo:.3g}, {hi:.3g}] and every row sums to 1 "
                    f"(max deviation {rowsum:.2g}): these are probabilities, but cross_entropy applies "
                    "log-softmax itself, so the gradients are squashed and training stalls."
                ),
                fix="Remove the softmax: pass the raw logits to CrossEntropyLoss (apply softmax only for predictions).",
                where=where,
                evidence=evidence,
            )
        elif fn == "cross_entropy" and (squashed := _squashed_scores(items)) is not None:
            _report_squashed_scores(ctx, squashed, c0, where, evidence)
        elif fn == "nll_loss" and (hi > tol or lse > 0.01):
            kind = "probabilities (softmax)" if lo >= 0 and rowsum < tol else "raw logits"
            ctx.finding(
                title=f"NLLLoss receives {kind}, not log-probabilities",
                message=(
                    f"nll_loss expects log-probabilities (all ≤ 0, logsumexp 0 per row) but its input lies in "
                    f"[{lo:.3g}, {hi:.3g}] with |logsumexp| up to {lse:.3g}: the loss is not a likelihood and "
                    "can fall without bound."
                ),
                fix="Apply log_softmax before NLLLoss, or use CrossEntropyLoss on the raw logits.",
                where=where,
                evidence=evidence,
            )
        elif fn == "kl_div" and not c0.kwargs.get("log_target") and (hi > tol or lse > 0.01):
            kind = "probabilities (softmax)" if lo >= 0 and rowsum < tol else "raw scores"
            ctx.finding(
                title=f"KLDivLoss receives {kind}, not log-probabilities",
                message=(
                    f"kl_div expects its input as log-probabilities (all ≤ 0, logsumexp 0 per row) "
                    f"but it lies in [{lo:.3g}, {hi:.3g}] with |logsumexp| up to {lse:.3g}: the "
                    "divergence computed is not KL(target || model), and its gradient does not "
                    "pull the model's distribution towards the target's."
                ),
                fix=(
                    "Pass log_softmax(student_logits / T) as the input (the target stays "
                    "probabilities, or log-probabilities with log_target=True)."
                ),
                where=where,
                evidence=evidence,
            )
        elif (
            fn == "binary_cross_entropy_with_logits"
            and lo >= 0
            and hi <= 1
            # One value at every step (logits of exactly 0 from zeroed weights) says nothing
            # of what made it; a sigmoid does, and so does a spread that never leaves [0, 1].
            and (hi > lo or any(c.input_op == "sigmoid" for _, c in items))
            # ...unless a learned linear map made every one of them: its outputs have no
            # bounded range, and early logits near a positive bias, or a few of them (one
            # bag per step), lie in [0, 1] by chance.
            and not all(c.input_op in LEARNED_MAPS for _, c in items)
        ):
            ctx.finding(
                title="Sigmoid applied before BCEWithLogitsLoss",
                message=(
                    f"The input of binary_cross_entropy_with_logits stays in [{lo:.3g}, {hi:.3g}] at every "
                    "observed step: these look like sigmoid outputs, which the loss passes through a "
                    "second sigmoid, so predictions can never leave (0.5, 0.73)."
                ),
                fix="Remove the sigmoid from the model output; BCEWithLogitsLoss applies it.",
                where=where,
                evidence=evidence,
            )
        elif (
            fn == "binary_cross_entropy_with_logits"
            and (squashed := _squashed_scores(items)) is not None
        ):
            _report_squashed_scores(ctx, squashed, c0, where, evidence)
        _check_shapes(ctx, fn, c0, where)
        if fn in _BINARY:
            _check_binary_targets(ctx, fn, items, where)
    if not any("broadcast_shape" in f.evidence for f in ctx.findings):
        # A recognised loss beside a hand-written one (a term added to it).
        _hand_written_broadcast(ctx)


def _squashed_scores(items: list[tuple[StepRecord, LossCall]]) -> tuple[str, float, float] | None:
    """The bounding operation (a sigmoid, a tanh, a clamp) that made a loss's logits at
    every call, and the range it squashes them into; None where the logits are unbounded
    on either side at any call (a ``Linear``, a ReLU, a log-softmax)."""
    ranges = {c.input_range for _, c in items}
    if len(ranges) != 1:
        return None
    (bounds,) = ranges
    if bounds is None or not (math.isfinite(bounds[1]) and math.isfinite(bounds[2])):
        return None
    return bounds


def _class_count(call: LossCall) -> int:
    """The classes of a cross-entropy input: its second axis, or its only one unbatched."""
    shape = call.input_shape
    return int(shape[1]) if len(shape) >= 2 else int(shape[0]) if shape else 0


def _squashed_floor(fn: str, lo: float, hi: float, call: LossCall) -> tuple[float, float, str]:
    """The lowest loss logits within [lo, hi] allow, the loss at chance, and why, in words.
    Cross-entropy's softmax favours the true class over each of the other C - 1 by at most
    ``e^(hi - lo)``: at least ``log(1 + (C - 1) e^-(hi - lo))``. BCE with logits reaches at
    best ``softplus(-hi)`` on a positive and ``softplus(lo)`` on a negative: at least the
    smaller of the two, against ``log 2``."""
    if fn == "cross_entropy":
        classes = _class_count(call)
        if classes < 2:
            return 0.0, math.nan, ""
        floor = math.log1p((classes - 1) * math.exp(-(hi - lo)))
        how = (
            f"the softmax cross_entropy applies can favour the true class over each of the "
            f"other {classes - 1} by at most a factor e^{hi - lo:.4g}"
        )
        return floor, math.log(classes), how
    floor = min(math.log1p(math.exp(-hi)), math.log1p(math.exp(lo)))
    sure = 1 / (1 + math.exp(-hi)), 1 / (1 + math.exp(-lo))
    how = (
        f"the sigmoid the loss applies maps them into [{sure[1]:.3g}, {sure[0]:.3g}], "
        "never near 0 or 1"
    )
    return floor, math.log(2), how


def _report_squashed_scores(
    ctx: CheckContext,
    squashed: tuple[str, float, float],
    call: LossCall,
    where: Where,
    evidence: dict[str, Any],
) -> None:
    """Cross-entropy or BCE with logits on logits that a bounded operation made: a finding
    when the floor that range sets the loss (``_squashed_floor``) is at least
    ``squashed_scores_floor_share`` of the loss at chance."""
    op, lo, hi = squashed
    fn = call.fn
    floor, chance, how = _squashed_floor(fn, lo, hi, call)
    if not how:
        return
    ctx.note(
        ctx.detail + f"; {fn}'s logits come from {op}, in [{lo:.4g}, {hi:.4g}]: the loss "
        f"cannot fall below {floor:.4g} (chance {chance:.4g})"
    )
    if floor < ctx.thresholds.squashed_scores_floor_share * chance:
        return
    loss = "CrossEntropyLoss" if fn == "cross_entropy" else "BCEWithLogitsLoss"
    ctx.finding(
        title=f"{op.capitalize()} applied to the logits before {loss}",
        message=(
            f"The logits given to {fn} come from {op}, so they lie in [{lo:.4g}, {hi:.4g}]: "
            f"{how}, and the loss cannot fall below {floor:.4g} ({floor / chance:.0%} of the "
            f"{chance:.4g} of a uniform guess) however well the model classifies. Its gradient "
            f"shrinks as the {op} saturates, and training stalls near that floor."
        ),
        fix=(
            f"Remove the {op} from the model's output: {loss} takes raw, unbounded logits (a "
            "final Linear layer) and applies the "
            + ("softmax" if fn == "cross_entropy" else "sigmoid")
            + " itself."
        ),
        where=where,
        evidence={
            **evidence,
            "score_op": op,
            "score_range": [lo, hi],
            **({"classes": _class_count(call)} if fn == "cross_entropy" else {}),
            "loss_floor": floor,
            "chance_loss": chance,
        },
    )


# The autograd nodes of learned linear maps (nn.Linear, convolutions, matrix products, an
# embedding lookup): what they produce is unbounded, whatever range it shows early on.
LEARNED_MAPS = frozenset(
    {"addmm", "mm", "bmm", "baddbmm", "addbmm", "mv", "addmv", "convolution", "embedding"}
)


def _check_binary_targets(
    ctx: CheckContext, fn: str, items: list[tuple[StepRecord, LossCall]], where: Where
) -> None:
    """Binary cross-entropy takes targets in [0, 1] (probabilities of the positive class):
    outside it, -(y log p + (1 - y) log(1 - p)) has no lowest point, and training drives
    the outputs to the ends until the loss is hugely negative."""
    targets = [
        c.target for _, c in items if c.target is not None and c.target.measured and c.target.finite
    ]
    if not targets:
        return
    lo = min(x.min for x in targets)
    hi = max(x.max for x in targets)
    if lo >= 0.0 and hi <= 1.0:
        return
    ctx.finding(
        title=f"{fn} targets lie outside [0, 1]",
        message=(
            f"The targets of {fn} range over [{lo:.4g}, {hi:.4g}], but binary cross-entropy "
            "reads them as probabilities in [0, 1]: outside that range the loss has no lowest "
            "point, and training drives the outputs to the ends while the loss falls below "
            "zero without bound."
        ),
        fix=(
            "Give the loss targets in [0, 1]: the 0/1 labels, not a rescaled copy of them "
            "(for inputs scaled to [-1, 1], the targets are (x + 1) / 2)."
        ),
        reasons=(19, 18),
        where=where,
        evidence={"loss": fn, "target_min": lo, "target_max": hi},
    )


# Losses that compare an output with a target value of the same kind, so the target must lie
# where the output can go.
_VALUE_LOSSES = ("mse_loss", "l1_loss", "smooth_l1_loss", "huber_loss", "binary_cross_entropy")


@register_check(
    id="bounded-output-vs-targets",
    reasons=(19,),
    severity="error",
    explains=causes.FIT_SYMPTOMS,
)
def bounded_output_vs_targets(ctx: CheckContext) -> None:
    """The loss compares a bounded output (sigmoid, tanh, softmax, ReLU, ELU, a clamp) with targets outside its range.

    Why it matters:
        A sigmoid can only say 0 to 1 and a tanh -1 to 1; an ELU left after the last layer
        never goes below -1, a GELU never below -0.17. Trained against pixels in [0, 255],
        standardised targets with negative values, or a tanh head against targets in [0, 1]
        scaled past 1, the loss has a floor no weights can get below, and the gradient pushes
        the pre-activation to saturation, where it vanishes. The loss stalls far above zero.

    What is measured:
        For every regression-type loss (MSE, L1, Huber, BCE): the last operation that produced
        its input, read from the input's autograd graph (through views, reshapes and
        concatenations, whose every part counts), the range that operation can produce
        (sigmoid, hard sigmoid and softmax [0, 1]; tanh [-1, 1]; ReLU, softplus and exp
        [0, inf); ELU, SELU and CELU from minus their ``alpha`` (times SELU's scale); GELU,
        SiLU, Mish and hard swish from their minimum; hardtanh, ReLU6 and a clamp between
        the bounds they were given), and the range of the targets over the observed steps.
        A finding when the targets reach past the operation's range by more than
        ``bounded_target_excess`` of their own span.

    How to fix:
        Scale the targets into the output's range (``y / 255``, or ``(y + 1) / 2`` for tanh), or
        remove the bounding activation from the output layer (a linear output for standardised
        regression targets).

    Example:
        Before::

            out = torch.sigmoid(self.head(h))          # in (0, 1)
            loss = F.mse_loss(out, image_uint8.float())  # targets in [0, 255]

        After::

            loss = F.mse_loss(out, image_uint8.float() / 255)
    """
    calls = [c for s in ctx.recording.steps for c in s.loss_calls if c.fn in _VALUE_LOSSES]
    if not calls:
        ctx.skip("no regression-type loss (MSE, L1, Huber, BCE) was called")
    bounded = [c for c in calls if c.input_range is not None]
    if not bounded:
        ops = sorted({c.input_op or "no autograd history" for c in calls})
        ctx.note(f"loss inputs come from {', '.join(ops)}: not bounded")
        return
    by_op: dict[tuple[str, tuple[str, float, float]], list[LossCall]] = {}
    for c in bounded:
        assert c.input_range is not None
        by_op.setdefault((c.fn, c.input_range), []).append(c)
    t = ctx.thresholds
    for (fn, (op, lo, hi)), items in by_op.items():
        targets = [c.target for c in items if c.target is not None and c.target.finite]
        if not targets:
            continue
        lo_t = min(x.min for x in targets)
        hi_t = max(x.max for x in targets)
        if not (math.isfinite(lo_t) and math.isfinite(hi_t)):
            continue
        span = max(hi_t - lo_t, 1e-12)
        below, above = lo - lo_t, hi_t - hi
        ctx.note(
            f"{fn} on {op} outputs in [{lo:.4g}, {hi:.4g}]; targets in [{lo_t:.4g}, {hi_t:.4g}]"
        )
        if max(below, above) <= t.bounded_target_excess * span:
            continue
        c0 = items[0]
        ctx.finding(
            title=f"{op} output trained against targets outside its range",
            message=(
                f"The input of {fn} comes from {op}, which can only produce values in [{lo:g}, {hi:g}], "
                f"but the targets range over [{lo_t:.4g}, {hi_t:.4g}]: part of the loss is out of reach "
                "of any weights, and the gradient drives the output into saturation."
            ),
            fix=(
                f"Scale the targets into [{lo:g}, {hi:g}], or drop the {op} from the output layer "
                "(a linear output for unbounded targets)."
            ),
            where=Where(file=c0.file, line=c0.line),
            evidence={
                "loss": fn,
                "output_op": op,
                "output_range": [lo, hi],
                "target_min": lo_t,
                "target_max": hi_t,
            },
        )


@register_check(
    id="ctc-input-invalid",
    reasons=(19, 3),
    severity="error",
    explains=causes.FIT_SYMPTOMS | causes.INSTABILITY_SYMPTOMS,
)
def ctc_input_invalid(ctx: CheckContext) -> None:
    """The CTC loss is given targets or scores it is not defined for.

    Why it matters:
        CTC sums over every alignment of a label sequence to the frames, with a reserved
        *blank* class between labels. It checks little of what it is given: a target that
        contains the blank index (label ids counted from 0 while ``blank=0``) is scored as
        if the blank were a label, so the loss can go negative and that label is never
        decoded; scores that are not log-probabilities over the classes (raw logits, a
        ``log_softmax`` over the time or batch axis) make the sum meaningless; an input
        shorter than its target's shortest alignment has probability zero, an infinite
        loss that ``zero_infinity=True`` silently turns into no gradient at all.

    What is measured:
        Every ``F.ctc_loss`` / ``nn.CTCLoss`` call of the observed training steps: target
        labels equal to ``blank`` or outside ``[0, C)`` (within each target's length), the
        largest distance from 0 of a frame's ``logsumexp`` over the classes (within each
        input's length; above ``ctc_normalisation_tolerance``, the input is not
        log-probabilities), and samples whose input length is below their target length
        plus one blank between each pair of equal neighbours. Each is exact: a healthy
        call has none.

    How to fix:
        Count label ids from 1 when ``blank=0`` (or set ``blank`` to an index no label
        uses); feed ``log_softmax(logits, dim=-1)`` of a ``(T, N, C)`` tensor; pass the
        lengths after any downsampling of the time axis, and drop or pad utterances too
        short for their transcript.

    Example:
        Before::

            char_to_id = {c: i for i, c in enumerate(alphabet)}   # 'a' is 0, the blank
            loss = nn.CTCLoss(blank=0)(log_probs, targets, in_lens, tgt_lens)

        After::

            char_to_id = {c: i + 1 for i, c in enumerate(alphabet)}
    """
    calls = [(s, c) for s in ctx.recording.steps for c in s.ctc_calls]
    if not calls:
        ctx.skip("no CTC loss was called in a training step")
    t = ctx.thresholds
    step, first = calls[0]
    where = Where(step=step.step, file=first.file, line=first.line)
    blank_labels = sum(c.blank_labels for _, c in calls)
    outside = sum(c.labels_outside for _, c in calls)
    too_short = sum(c.too_short for _, c in calls)
    worst = max(calls, key=lambda sc: sc[1].normalisation_error)[1]
    ctx.note(
        f"{len(calls)} CTC call(s), blank={first.blank}, {first.classes} classes: "
        f"{blank_labels} blank and {outside} out-of-range target labels, {too_short} inputs too "
        f"short, largest |logsumexp| of a frame {worst.normalisation_error:.3g}"
    )
    evidence: dict[str, Any] = {
        "calls": len(calls),
        "blank": first.blank,
        "classes": first.classes,
        "log_probs_shape": list(first.log_probs_shape),
    }
    if blank_labels or outside:
        ctx.finding(
            title=(
                f"CTC targets contain the blank label ({first.blank})"
                if blank_labels
                else f"CTC targets outside the {first.classes} classes"
            ),
            message=(
                f"Over {len(calls)} CTC call(s), {blank_labels} target label(s) equal the blank "
                f"index {first.blank} and {outside} lie outside [0, {first.classes}). CTC reserves "
                "the blank for 'no label' between labels: a target holding it is scored as if the "
                "blank were a label (the loss can go below zero), and that label is never decoded."
            ),
            fix=(
                f"Count label ids so that none equals blank={first.blank} (from 1 when blank=0), "
                "or set blank to an index no label uses."
            ),
            reasons=(19, 3),
            where=where,
            aspect="targets",
            evidence={**evidence, "blank_labels": blank_labels, "labels_outside": outside},
        )
    if worst.normalisation_error > t.ctc_normalisation_tolerance:
        made_by = f" (made by {worst.input_op})" if worst.input_op else ""
        ctx.finding(
            title="CTC is fed scores that are not log-probabilities over the classes",
            message=(
                f"A frame's logsumexp over the last axis of CTC's {tuple(worst.log_probs_shape)} "
                f"input{made_by} is {worst.normalisation_error:.3g} away from 0: the values are "
                "not log-probabilities over the classes, so the sum over alignments is not a "
                "likelihood."
            ),
            fix="Feed `logits.log_softmax(dim=-1)` of a (T, N, C) tensor (time first, classes last).",
            reasons=(19, 18),
            where=where,
            aspect="scores",
            evidence={**evidence, "normalisation_error": worst.normalisation_error},
        )
    if too_short:
        ctx.finding(
            title="Inputs too short for their CTC targets",
            message=(
                f"{too_short} sample(s) over {len(calls)} CTC call(s) have fewer frames than "
                "their target needs (its length plus a blank between equal neighbours): their "
                "probability is zero and their loss infinite, or zero with no gradient under "
                "zero_infinity=True."
            ),
            fix=(
                "Pass input lengths after the model's downsampling of time, and drop or pad "
                "utterances too short for their transcript."
            ),
            reasons=(3, 19),
            where=where,
            severity="warning",
            aspect="lengths",
            evidence={**evidence, "too_short": too_short},
        )


def _check_shapes(ctx: CheckContext, fn: str, call: LossCall, where: Where) -> None:
    if fn not in _ELEMENTWISE or call.target_shape is None:
        return
    if tuple(call.input_shape) == tuple(call.target_shape):
        return
    try:
        broadcast = tuple(torch.broadcast_shapes(call.input_shape, call.target_shape))
    except RuntimeError:
        return
    ctx.finding(
        title="Output and target shapes broadcast inside the loss",
        message=(
            f"{fn} compares an output of shape {tuple(call.input_shape)} with a target of shape "
            f"{tuple(call.target_shape)}; they broadcast to {broadcast}, so each prediction is compared "
            "with other samples' targets and the loss cannot be minimised correctly."
        ),
        fix="Make the shapes equal: `out.squeeze(-1)` or `target.view_as(out)` before the loss.",
        reasons=(19, 25),
        where=where,
        evidence={
            "input_shape": list(call.input_shape),
            "target_shape": list(call.target_shape),
            "broadcast_shape": list(broadcast),
        },
    )


def _hand_written_broadcast(ctx: CheckContext) -> bool:
    """A hand-written loss that broadcast what the model made of the batch against
    per-sample targets along the batch axis: the first such operation of the observed
    steps, reported; whether there was one.

    Two shapes count. An output that holds the batch, stretched along a new axis as long
    as the batch, pairs each sample with every other (``(N, 1) - (N,)`` gives ``(N, N)``).
    A single number made by reducing every element of a tensor that holds the batch
    (``((a - b) ** 2).sum()`` where ``.sum(1)`` was meant), a few elementwise steps back,
    stretched back to the batch applies one batch-wide quantity to every sample's own term
    (a learned scale, ``log_alpha.exp()``, is no such number). Either only against
    operands without a gradient (targets, constants): a stretch written on purpose
    (``x.unsqueeze(1)``, ``x[:, None]``) or between two things the model made (every pair
    of embeddings in a contrastive loss, an output centred by its batch mean) is how
    pairwise and batch-level losses are built."""
    rec = ctx.recording
    axis = rec.input_batch_axis()
    for step in rec.steps:
        shape = step.inputs.shape if step.inputs is not None else ()
        batch = shape[axis] if len(shape) > axis else None
        if batch is None or batch < 2:
            continue
        for event in step.loss_broadcasts:
            if event.other_has_grad or event.unsqueezed:
                continue
            if not any(event.result[i] == batch for i in event.new_axes):
                continue
            reduced = event.reduced_from is not None and batch in event.reduced_from
            if batch not in event.operand and not reduced:
                continue
            _report_broadcast(ctx, event, batch, step.step, reduced)
            return True
    return False


# How a report names the elementwise operation of an autograd node (``SubBackward0``).
_OPERATION_WORDS = {
    "Add": "sum",
    "Sub": "difference",
    "Rsub": "difference",
    "Mul": "product",
    "Div": "quotient",
    "Pow": "power",
    "Maximum": "maximum",
    "Minimum": "minimum",
    "Where": "torch.where",
}


def _report_broadcast(
    ctx: CheckContext, event: LossBroadcast, batch: int, step: int, reduced: bool
) -> None:
    op = event.op.removesuffix("Backward0").removesuffix("Backward1")
    operation = _OPERATION_WORDS.get(op, f"{op.lower()} (elementwise)")
    evidence = {
        "input_shape": list(event.operand),
        "broadcast_shape": list(event.result),
        "operation": event.op,
        "batch_size": batch,
    }
    if reduced:
        title = "One number from the whole batch is applied to every sample in the loss"
        message = (
            f"The loss computed by hand reduces what the model made of a batch of {batch} to "
            f"a single number, then takes the {operation} of it and a per-sample tensor "
            f"without gradient (a target, a label) of shape {event.result}: every sample's "
            "term gets the same batch-wide value (a distance summed over the batch where each "
            "pair's own was meant), so no sample is judged on its own output."
        )
        fix = (
            "Reduce over the features only, keeping the batch axis: `.sum(dim=1)` or "
            "`F.pairwise_distance(a, b)` instead of `.sum()`; average over the batch last."
        )
        reasons = (25, 18)
    else:
        title = "Output and target shapes broadcast inside the loss"
        message = (
            f"The loss computed by hand takes the {operation} of an output of shape "
            f"{event.operand} (a batch of {batch}) and a tensor without gradient (a target) "
            f"that broadcast to {event.result}: each prediction is compared with every "
            "sample's target, not its own, and the loss cannot be minimised correctly."
        )
        fix = (
            "Make the shapes equal before the loss: `out.squeeze(-1)` for one value per "
            "sample, or `target.view_as(out)`."
        )
        reasons = (19, 25)
    ctx.finding(
        title=title,
        message=message,
        fix=fix,
        reasons=reasons,
        where=Where(step=step, file=event.file, line=event.line),
        evidence=evidence,
    )


@register_check(
    id="loss-mismatches-task",
    reasons=(18,),
    severity="warning",
    explains=causes.FIT_SYMPTOMS | causes.INSTABILITY_SYMPTOMS,
)
def loss_mismatches_task(ctx: CheckContext) -> None:
    """The loss function does not fit the task its targets describe.

    Why it matters:
        A loss encodes what "right" means. Mean squared error on class indices says class
        3 is closer to class 2 than to class 9; binary cross-entropy on single-label
        one-hot targets treats C exclusive classes as C independent coins; cross-entropy
        over a single output is identically zero and teaches nothing.

    What is measured:
        The recognised loss calls and their targets: integer-valued targets in a small
        range (binary 0/1 labels included) fed to a regression loss with one output per
        sample (indices from 0: targets from another floor, ratings 1-5, are a scale),
        one-hot rows (exactly one positive per sample)
        fed to a binary loss with more than two outputs, cross-entropy over one class.

    How to fix:
        Use CrossEntropyLoss with integer class indices for single-label classification,
        BCEWithLogitsLoss only for independent (multi-label) outputs, and a regression
        loss only for quantities whose differences mean something.

    Example:
        Before::

            loss = F.mse_loss(model(x).squeeze(1), y.float())   # y in {0, ..., 9}

        After::

            loss = F.cross_entropy(model(x), y)                  # model outputs 10 logits
    """
    first = _first_call(ctx.recording.steps)
    if first is None:
        ctx.skip("no recognised torch loss was called")
    step, call = first
    t = call.target
    where = Where(step=step.step, file=call.file, line=call.line)
    ctx.note(f"{call.fn} on targets of shape {call.target_shape} checked against the task")
    if (
        call.fn in ("cross_entropy", "nll_loss")
        and len(call.input_shape) >= 2
        and call.input_shape[1] == 1
    ):
        ctx.finding(
            title="Cross-entropy over a single class is always zero",
            message=(
                f"{call.fn} receives outputs of shape {call.input_shape}: with one class the softmax is "
                "always 1 and the loss is identically 0, so nothing is learned."
            ),
            fix="For a binary task use one logit with BCEWithLogitsLoss, or two logits with CrossEntropyLoss.",
            severity="error",
            where=where,
            evidence={"loss": call.fn, "input_shape": list(call.input_shape)},
        )
        return
    if t is None:
        return
    max_classes = ctx.thresholds.regression_on_classes_max
    # The floor over every observed batch: a small batch may hold no sample of class 0.
    floor = min(
        (
            s.loss_calls[0].target.min
            for s in ctx.recording.steps
            if s.loss_calls and s.loss_calls[0].fn == call.fn and s.loss_calls[0].target
        ),
        default=t.min,
    )
    # Class indices count from 0 (cross-entropy requires it, and so every dataset prepared
    # for classification): integer targets from another floor are a scale (ratings 1-5,
    # quality scores 3-9), a quantity measured in whole units.
    if (
        call.fn in ("mse_loss", "l1_loss", "smooth_l1_loss", "huber_loss")
        and t.integral
        and floor == 0
        and 1 <= t.max <= max_classes
        and 0.0 < t.mean < t.max
        and math.prod(call.input_shape[1:] or (1,)) == 1
    ):
        binary = t.min == 0 and t.max == 1
        ctx.finding(
            title=(
                "A regression loss on binary labels"
                if binary
                else "A regression loss on what look like class indices"
            ),
            message=(
                f"{call.fn} is applied to labels 0 and 1 with one output per sample: a "
                "classification trained as a regression, with a raw output that is no "
                "probability and a loss that still pushes correct, confident outputs back to 0 or 1."
                if binary
                else f"{call.fn} is applied to integer targets in [{t.min:.0f}, {t.max:.0f}] with one "
                "output per sample: if these are classes, the loss treats them as ordered numbers."
            ),
            fix=(
                "Output one logit and use BCEWithLogitsLoss, or two logits with CrossEntropyLoss "
                "(a Hugging Face model: num_labels=2)."
                if binary
                else "If the targets are classes, output one logit per class and use CrossEntropyLoss."
            ),
            where=where,
            evidence={"loss": call.fn, "target_min": t.min, "target_max": t.max},
        )
    if (
        call.fn in _BINARY
        and len(call.input_shape) == 2
        and call.input_shape[1] > 2
        and call.target_shape == call.input_shape
        and t.integral
        and t.min >= 0
        and t.max <= 1
        and abs(t.mean - 1 / call.input_shape[1]) < 1e-6
    ):
        c = call.input_shape[1]
        ctx.finding(
            title="Binary cross-entropy on single-label multi-class targets",
            message=(
                f"{call.fn} receives one-hot targets over {c} classes (exactly one positive per sample): "
                "the classes are exclusive, but the loss treats them as independent."
            ),
            fix="Use CrossEntropyLoss on the logits with class-index targets (`y.argmax(1)`).",
            where=where,
            evidence={"loss": call.fn, "classes": c, "target_mean": t.mean},
        )


@register_check(
    id="loss-term-dominates",
    reasons=(20,),
    severity="warning",
    kind="experiment",
    priority=14,
    explains=causes.FIT_SYMPTOMS,
)
def loss_term_dominates(ctx: CheckContext) -> None:
    """One term of a multi-term loss dominates the gradient by orders of magnitude.

    Why it matters:
        With loss = a + λ·b, the model follows whichever term has the larger gradient.
        When one term's gradient is orders of magnitude above the other's, the other term
        is effectively switched off in the parameters they share — a common reason why
        one head of a multi-task or detection model never learns.

    What is measured:
        On a copy at the initial weights and one batch, the gradient norm that each
        recognised loss term contributes to the total, including the weight it carries in
        the total. A warning when, over the parameters both terms move, one is
        ``loss_term_ratio`` (100: two orders of magnitude) times another's (terms that
        move disjoint parameters, such as a VQ-VAE's codebook loss beside its
        reconstruction, cannot drown each other; a replayed script compares whole norms). The rest of the loss, the part
        written in plain torch (a box regression by hand beside recognised classification
        terms), is the total's gradient less the recognised terms' weighted gradients: a
        warning too when its norm is ``loss_term_ratio`` times that of their sum (a rest
        that is smaller, a weight penalty, is what a regulariser should be). A term that
        dominates must do so at a second step too: weights drawn at random each step
        (mixup's λ) dominate one step by chance.

    How to fix:
        Rescale the terms so that their gradient contributions are within an order of
        magnitude at the start (or normalise them, e.g. by uncertainty weighting or
        GradNorm), and check each head trains on its own.

    Example:
        Before::

            loss = F.mse_loss(boxes, target_boxes) + F.cross_entropy(logits, labels)  # boxes in pixels

        After::

            loss = F.mse_loss(boxes / img_size, target_boxes / img_size) + F.cross_entropy(logits, labels)
    """
    lab = ctx.services
    multi = [s for s in ctx.recording.steps if len(s.loss_calls) >= 2]
    if not multi:
        ctx.skip(
            "fewer than two recognised loss terms per step (terms in plain torch are not separated)"
        )
    if lab is None or not (lab.available or lab.script is not None):
        ctx.skip("no copy of the training step can be run")
    rows, rest = _split_rest(_term_rows(lab, 0))
    t = ctx.thresholds
    if rest is not None and _rest_dominates(rest, t.loss_term_ratio):
        again = _split_rest(_term_rows(lab, 1))[1]
        if again is None or _rest_dominates(again, t.loss_term_ratio):
            share = rest["grad_norm"] / rest["recognised_norm"]
            named = ", ".join(sorted({r["term"] for r in rows}))
            ctx.finding(
                title="The part of the loss written in plain torch dominates the gradient",
                message=(
                    f"Beside the recognised loss terms ({named}; together a gradient of norm "
                    f"{rest['recognised_norm']:.3g}), the rest of the loss, computed in plain "
                    f"torch, contributes a gradient of norm {rest['grad_norm']:.3g}: {share:.3g}× "
                    "theirs, at two steps. The recognised terms are effectively ignored by the "
                    "optimiser."
                ),
                fix=(
                    "Rescale the hand-written terms (their weights, or targets in normalised "
                    "units) so their gradient is comparable with the other terms' at the start."
                ),
                evidence={
                    "terms": [_without_params(r) for r in rows],
                    "rest": rest,
                    "ratio": share,
                },
            )
            return
    if len(rows) < 2:
        ctx.skip("fewer than two loss terms with a gradient on the model's parameters")
    ratio = _ratio(rows)
    ctx.note(
        "term gradient norms: "
        + ", ".join(f"{r['term']}={r['grad_norm']:.3g}" for r in rows)
        + (f"; the rest of the loss (plain torch) {rest['grad_norm']:.3g}" if rest else "")
        + f"; largest ratio on the parameters two terms both move {ratio:.3g}"
    )
    if ratio < ctx.thresholds.loss_term_ratio:
        return
    # A weight drawn at random each step (mixup's λ and 1 - λ) can make one term dominate
    # one step by chance: a weighting does so at every step, so a second step must agree.
    again = _split_rest(_term_rows(lab, 1))[0]
    if len(again) >= 2 and _ratio(again) < ctx.thresholds.loss_term_ratio:
        ctx.note(
            ctx.detail
            + "; at the next step "
            + ", ".join(f"{r['term']}={r['grad_norm']:.3g}" for r in again)
            + ": the terms' weights change from step to step, and no term dominates throughout"
        )
        return
    big, small = _dominant_pair(rows)
    ctx.finding(
        title="One loss term dominates the gradient",
        message=(
            f"The {big['term']} term contributes a gradient of norm {big['grad_norm']:.3g}, "
            f"and on the parameters both terms move {ratio:.3g}× that of {small['term']} "
            f"({small['grad_norm']:.3g} in all): the smaller term is effectively ignored by "
            "the optimiser there."
        ),
        fix="Rescale the terms (weights or normalised targets) so their gradient norms are comparable at the start.",
        evidence={"terms": [_without_params(r) for r in rows], "ratio": ratio},
    )


def _without_params(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k != "param_sq"}


def _split_rest(
    rows: list[dict[str, Any]],
) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """The recognised terms' rows, and the row of the rest of the loss (None without one)."""
    rest = next((r for r in rows if r.get("rest")), None)
    return [r for r in rows if not r.get("rest")], rest


def _rest_dominates(rest: dict[str, Any], ratio: float) -> bool:
    recognised = rest.get("recognised_norm", 0.0)
    return recognised > 0 and rest["grad_norm"] >= ratio * recognised


def _term_rows(lab: Any, step: int) -> list[dict[str, Any]]:
    """Each recognised term's gradient norm at step ``step`` (its batch, from the initial
    weights in process; the script's own step in a replay). A term with no gradient on the
    model's parameters is not part of its objective: it trains another network (a GAN's
    discriminator terms) or is detached on purpose, and is left out."""
    if lab.available:
        rows = _term_gradients_in_process(lab, step)
    else:
        rows = lab.replay("terms", trace_step=step).terms or []
    return [r for r in rows if math.isfinite(r["grad_norm"]) and r["grad_norm"] > 0]


def _ratio(rows: list[dict[str, Any]]) -> float:
    """The largest factor by which one term's gradient exceeds another's on the parameters
    both move (a term can only drown another where they pull on the same weights: a
    codebook loss that reaches only the codebook is not drowned by a reconstruction that
    never reaches it). Rows without per-parameter norms (a replayed script) compare whole
    norms."""
    best = 0.0
    for big in rows:
        for small in rows:
            if big is not small:
                best = max(best, _pair_ratio(big, small))
    return best


def _pair_ratio(big: dict[str, Any], small: dict[str, Any]) -> float:
    a, b = big.get("param_sq"), small.get("param_sq")
    if a is None or b is None or len(a) != len(b):
        return big["grad_norm"] / small["grad_norm"] if small["grad_norm"] > 0 else math.inf
    shared = [(x, y) for x, y in zip(a, b, strict=True) if x > 0 and y > 0]
    if not shared:
        return 0.0
    over = sum(x for x, _ in shared) ** 0.5
    under = sum(y for _, y in shared) ** 0.5
    return over / under if under > 0 else math.inf


def _dominant_pair(rows: list[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The terms of ``_ratio``: the one that dominates, the one dominated."""
    pairs = [(b, s) for b in rows for s in rows if b is not s]
    return max(pairs, key=lambda pair: _pair_ratio(*pair))


def _term_gradients_in_process(lab: Any, step: int = 0) -> list[dict[str, Any]]:
    from nndoctor.probes.trace import loss_term_gradients, recorded_loss_terms

    model = lab.fresh_model()
    batches = lab.batches(step + 1)
    batch = batches[min(step, len(batches) - 1)]
    with recorded_loss_terms() as terms:
        total = lab.loss(model, batch)
    if len(terms) < 2:
        return []
    params = [p for p in model.parameters() if p.requires_grad]
    return loss_term_gradients(total, terms, params)


def _flattened_order(call: Any, inputs: list[Any], batch_axis: int) -> str | None:
    """For a loss input that is the model output reshaped to (rows, classes): whether its
    rows run sample by sample ("samples") or position by position ("positions"), from the
    output's shape before the reshape (``LossCall.input_layout``); None when that shape is
    not (samples, positions, classes) in some order or the batch size does not say which
    axis is which. The flattened targets follow the same order."""
    layout = call.input_layout
    n = _batch_size(inputs, batch_axis)
    if layout is None or len(layout) != 3 or n is None or layout[-1] != call.input_shape[-1]:
        return None
    first, second = layout[0], layout[1]
    if first == n != second:
        return "samples"
    if second == n != first:
        return "positions"
    return None


def _batch_size(inputs: list[Any], batch_axis: int) -> int | None:
    x = next((t for t in inputs if isinstance(t, torch.Tensor) and t.dim() > batch_axis), None)
    return int(x.shape[batch_axis]) if x is not None else None


def _rows_of(
    target: torch.Tensor, inputs: list[Any], batch_axis: int = 0, order: str | None = None
) -> torch.Tensor | None:
    """The targets one row per sequence: as given when 2-D, or a flattened target folded
    back in the ``order`` its loss input's rows run (``_flattened_order``) or else by the
    shape of an integer 2-D model input; ``(T, B)`` sequence-first data (``batch_axis`` 1)
    transposed so that a row is a sequence."""
    if target.dim() == 1 and order is not None:
        n = _batch_size(inputs, batch_axis)
        if n and target.numel() % n == 0:
            return target.reshape(n, -1) if order == "samples" else target.reshape(-1, n).t()
    rows: torch.Tensor | None = None
    if target.dim() == 2:
        rows = target
    elif target.dim() == 1:
        for x in inputs:
            if (
                isinstance(x, torch.Tensor)
                and x.dim() == 2
                and not x.is_floating_point()
                and x.numel() == target.numel()
            ):
                rows = target.reshape(x.shape)
                break
    if rows is None:
        return None
    return rows.t() if batch_axis == 1 else rows


def _inside(ignored: torch.Tensor) -> torch.Tensor:
    """Per row, the ignored positions with a kept position before and after them: not the
    padding that fills a row's end (or its start)."""
    kept = ~ignored
    before = kept.long().cumsum(1) > 0
    after = kept.flip(1).long().cumsum(1).flip(1) > 0
    return ignored & before & after


@register_check(
    id="ignored-class",
    reasons=(18,),
    severity="warning",
    explains=frozenset({"loss-accuracy-disagree", "class-imbalance"}),
)
def ignored_class(ctx: CheckContext) -> None:
    """The loss's ``ignore_index`` is one of the classes the model predicts, and it labels
    real positions.

    Why it matters:
        ``ignore_index`` is meant for positions that are no sample: padding. When it is
        set to a real class (the padding value of the inputs reused for the tags, where
        tag 0 is 'O'), every position of that class is dropped from the loss, while every
        other position pushes that class's logit down: the model learns never to predict
        it, and a metric that counts it collapses while the loss looks fine.

    What is measured:
        The class-index loss's ``ignore_index`` against the number of classes it scores,
        and, in the captured targets laid out one row per sequence (as given, or folded
        back by the shape of the model's token input; transposed for sequence-first
        ``(seq_len, batch)`` data), the positions equal to it that
        sit inside a row, with kept positions before and after them. Padding fills a
        row's end (or start) and is never inside, so any such position is the class
        itself.

    How to fix:
        Pad the targets with a value that is no class (``-100``, the default of
        ``CrossEntropyLoss``) and leave ``ignore_index`` at it.

    Example:
        Before::

            tags = pad_sequence(tags, batch_first=True, padding_value=0)   # tag 0 is 'O'
            loss_fn = nn.CrossEntropyLoss(ignore_index=0)

        After::

            tags = pad_sequence(tags, batch_first=True, padding_value=-100)
            loss_fn = nn.CrossEntropyLoss()
    """
    first = _first_call(ctx.recording.steps)
    if first is None:
        ctx.skip("no recognised torch loss was called")
    step, call = first
    ignore = call.kwargs.get("ignore_index")
    if call.fn not in ("cross_entropy", "nll_loss") or len(call.input_shape) < 2:
        ctx.skip("no class-index loss (cross-entropy, NLL) was called")
    classes = call.input_shape[1]
    if not isinstance(ignore, int) or isinstance(ignore, bool) or not 0 <= ignore < classes:
        ctx.note(f"ignore_index {ignore if ignore is not None else -100} is no class of {classes}")
        return
    lab = ctx.services
    if lab is None or not lab.available:
        ctx.skip("the captured targets are not available to look at")
    subject = lab.subject
    axis = ctx.recording.input_batch_axis()
    inside = kept = rows_seen = 0
    model_inputs = lab.model_inputs(8)
    order = _flattened_order(call, list(model_inputs[0]), axis) if model_inputs else None
    for batch, inputs in zip(lab.batches(8), model_inputs or [()] * 8, strict=False):
        target = subject.targets(batch)
        if not isinstance(target, torch.Tensor) or target.is_floating_point():
            continue
        rows = _rows_of(target, list(inputs), axis, order)
        if rows is None:
            continue
        ignored = rows == ignore
        inside += int(_inside(ignored).sum())
        kept += int((~ignored).sum())
        rows_seen += rows.shape[0]
    if not rows_seen:
        ctx.skip("the targets are not laid out one row per sequence")
    ctx.note(
        f"ignore_index {ignore} is class {ignore} of {classes}; {inside} target positions inside "
        f"{rows_seen} sequences hold it"
    )
    if inside == 0:
        return
    share = inside / max(inside + kept, 1)
    ctx.finding(
        title=f"The loss ignores class {ignore}, which labels real positions",
        message=(
            f"{call.fn} is told ignore_index={ignore}, one of the {classes} classes the model scores, "
            f"and {inside} target positions inside sequences ({share:.0%} of the positions that are "
            "not end padding) hold it: they never reach the loss, while every other position pushes "
            f"class {ignore} down, so the model learns never to predict it."
        ),
        fix=(
            "Pad the targets with -100 (no class) and leave ignore_index at its default; keep "
            f"class {ignore} in the loss."
        ),
        where=Where(step=step.step, file=call.file, line=call.line),
        evidence={"ignore_index": ignore, "classes": classes, "inside": inside, "share": share},
    )
