"""Activations of the observed steps (reasons 28, 35): dead ReLUs, saturated sigmoid/tanh,
and activation scales that drift with depth at initialisation.
"""

from __future__ import annotations

import math

from nndoctor.checks import causes
from nndoctor.checks.registry import CheckContext, register_check
from nndoctor.checks.training.observed import (
    capped,
    fmt3,
    forward_steps,
    output_module,
    weighted_layers,
)
from nndoctor.probes.layers import RELU, SATURATING
from nndoctor.probes.recording import StepRecord
from nndoctor.report.model import Severity, Where

# -- dead ReLUs (35, 28) ---------------------------------------------------------------


@register_check(
    id="dead-relus",
    reasons=(35, 28),
    severity="warning",
    # Dead units make a model learn less; they do not make its steps large (the reverse:
    # steps large enough to make the loss diverge kill ReLUs, see loss-diverging).
    explains=causes.FIT_SYMPTOMS
    | (causes.INSTABILITY_SYMPTOMS - causes.DIVERGENCE_SYMPTOMS)
    | frozenset({"params-without-grad"}),
)
def dead_relus(ctx: CheckContext) -> None:
    """ReLU layers whose output is zero almost everywhere ("dead ReLUs").

    Why it matters:
        A ReLU passes no gradient where its output is zero. A layer that outputs
        zero for (almost) every unit and sample blocks the signal forward and the
        gradient backward: the layers before it stop learning and the network
        acts as if it were much smaller. Units rarely recover once dead.

    What is measured:
        For every ``nn.ReLU``/``nn.ReLU6`` module, the share of exactly-zero outputs
        at each observed training step, averaged over the steps. A warning at
        ``dead_relu_fraction`` (0.9) and above; an error when the output is zero
        everywhere at every step (``dead_relu_error_fraction``). The mean of the
        layer feeding the ReLU is shown: a large negative value points to the bias
        initialisation or to a learning rate that pushed the pre-activations down.

    How to fix:
        Initialise with He/Kaiming (``nn.init.kaiming_normal_(w, nonlinearity="relu")``)
        and zero or small biases; put a normalisation layer (BatchNorm/LayerNorm)
        before the ReLU; lower the learning rate if the units died during training;
        or use LeakyReLU/GELU, which keep a gradient for negative inputs.

    Example:
        Before::

            layer = nn.Linear(64, 64)
            nn.init.constant_(layer.bias, -5.0)    # every pre-activation negative

        After::

            layer = nn.Linear(64, 64)
            nn.init.kaiming_normal_(layer.weight, nonlinearity="relu")
            nn.init.zeros_(layer.bias)
    """
    t = ctx.thresholds
    steps = forward_steps(ctx.recording)
    relus = ctx.recording.modules_of_kind(RELU)
    if not relus:
        ctx.skip("the model has no nn.ReLU modules (a functional relu is not observed per layer)")
    if not steps:
        ctx.skip("no training forward pass was observed")
    worst = 0.0
    for name in relus:
        seen = [(s, s.activations[name]) for s in steps if name in s.activations]
        if not seen:
            continue
        fracs = [a.zero_frac for _, a in seen]
        mean_frac = sum(fracs) / len(fracs)
        worst = max(worst, mean_frac)
        if mean_frac < t.dead_relu_fraction:
            continue
        fully_dead = min(fracs) >= t.dead_relu_error_fraction
        first = next(s for s, a in seen if a.zero_frac >= t.dead_relu_fraction)
        evidence: dict[str, float | int | str] = {
            "zero_fraction_mean": round(mean_frac, 4),
            "zero_fraction_min": round(min(fracs), 4),
            "steps": len(seen),
        }
        feeding = _module_before(first, name)
        cause = ""
        if feeding is not None:
            pre = first.activations[feeding]
            evidence["input_module"] = feeding
            evidence["input_mean"] = pre.mean
            evidence["input_std"] = pre.std
            if pre.mean < -pre.std:
                cause = (
                    f" Its input ({feeding}) has mean {fmt3(pre.mean)} and std {fmt3(pre.std)}: "
                    "nearly every pre-activation is negative."
                )
        ctx.finding(
            title=f"ReLU {name} is {'completely ' if fully_dead else ''}dead",
            message=(
                f"{name} outputs exactly zero for {mean_frac:.1%} of its units on average over "
                f"{len(seen)} observed steps (lowest {min(fracs):.1%}); no gradient flows back "
                f"through those units.{cause}"
            ),
            fix=(
                "Initialise the layer before it with kaiming_normal_(nonlinearity='relu') and "
                "zero biases, add BatchNorm/LayerNorm before the ReLU, lower the learning rate "
                "if the units died while training, or use LeakyReLU/GELU."
            ),
            severity=Severity.ERROR if fully_dead else None,
            where=Where(module=name, step=first.step),
            evidence=evidence,
        )
    ctx.note(f"{len(relus)} ReLU module(s); highest mean zero fraction {worst:.1%}")


def _module_before(step: StepRecord, name: str) -> str | None:
    """The leaf module whose forward completed just before ``name`` at ``step``."""
    order = list(step.activations)
    i = order.index(name)
    for prev in reversed(order[:i]):
        if not name.startswith(prev + ".") and not (prev == "" and name):
            return prev
    return None


# -- saturated sigmoid / tanh (35, 28) -------------------------------------------------


@register_check(
    id="saturated-activations",
    reasons=(35, 28),
    severity="warning",
    explains=causes.FIT_SYMPTOMS | causes.INSTABILITY_SYMPTOMS,
)
def saturated_activations(ctx: CheckContext) -> None:
    """Sigmoid or tanh layers stuck at their asymptotes.

    Why it matters:
        The derivative of a sigmoid or tanh is almost zero near its asymptotes.
        A layer whose outputs sit there passes almost no gradient back: the
        layers before it stop learning (vanishing gradients), and the layer's
        output carries little more than a sign.

    What is measured:
        For every ``nn.Sigmoid``/``nn.Tanh``/``nn.Hardtanh`` module, the share of
        outputs within 0.01 of an asymptote, averaged over the observed steps;
        a warning at ``saturated_fraction`` (0.9) and above. The module producing
        the model's output is judged at the first ``stats_early_steps`` steps only:
        confident outputs later in training are learning, not a fault. The std of
        the layer feeding it is shown (large pre-activations saturate).

    How to fix:
        Scale the initialisation down (Xavier/Glorot for tanh/sigmoid:
        ``nn.init.xavier_uniform_``), standardise the inputs, add a normalisation
        layer before the nonlinearity, or use ReLU-family activations in hidden
        layers. For an output sigmoid feeding BCELoss, drop the sigmoid and use
        ``BCEWithLogitsLoss`` on the logits.

    Example:
        Before::

            nn.init.normal_(layer.weight, std=5.0)      # pre-activations ~ ±50
            h = torch.sigmoid(layer(x))

        After::

            nn.init.xavier_uniform_(layer.weight)
            h = torch.sigmoid(layer(x))
    """
    t = ctx.thresholds
    rec = ctx.recording
    steps = forward_steps(rec)
    names = rec.modules_of_kind(SATURATING, unless=RELU)
    if not names:
        ctx.skip("the model has no nn.Sigmoid/nn.Tanh/nn.Hardtanh modules")
    if not steps:
        ctx.skip("no training forward pass was observed")
    out_module = output_module(rec, steps[0])
    worst = 0.0
    for name in names:
        window = steps[: t.stats_early_steps] if name == out_module else steps
        seen = [(s, s.activations[name]) for s in window if name in s.activations]
        if not seen:
            continue
        fracs = [a.sat_frac for _, a in seen]
        mean_frac = sum(fracs) / len(fracs)
        worst = max(worst, mean_frac)
        if mean_frac < t.saturated_fraction:
            continue
        first = next(s for s, a in seen if a.sat_frac >= t.saturated_fraction)
        evidence: dict[str, float | int | str] = {
            "saturated_fraction_mean": round(mean_frac, 4),
            "steps": len(seen),
            "output_module": name == out_module,
        }
        feeding = _module_before(first, name)
        detail = ""
        if feeding is not None:
            pre = first.activations[feeding]
            evidence["input_module"] = feeding
            evidence["input_std"] = pre.std
            detail = f" Its input ({feeding}) has std {fmt3(pre.std)}."
        kind = rec.module_types[name]
        ctx.finding(
            title=f"{kind} {name} is saturated",
            message=(
                f"{mean_frac:.1%} of the outputs of {name} ({kind}) lie within 0.01 of an "
                f"asymptote, averaged over {len(seen)} step(s); their gradient is close to "
                f"zero, so the layers before it barely learn.{detail}"
            ),
            fix=(
                "Use a smaller initialisation (xavier_uniform_ for sigmoid/tanh), standardise "
                "the inputs, add a normalisation layer before the activation, or switch hidden "
                "layers to ReLU/GELU; for an output sigmoid use BCEWithLogitsLoss on the logits."
            ),
            where=Where(module=name, step=first.step),
            evidence=evidence,
        )
    ctx.note(f"{len(names)} sigmoid/tanh module(s); highest saturated share {worst:.1%}")


# -- activation std with depth at initialisation (28, 35) -------------------------------


@register_check(
    id="activation-scale-drift",
    reasons=(28, 35),
    severity="warning",
    # Outputs far off scale at the start inflate the first loss, so learning their scale
    # takes any input's loss to 1% of it: loss-met-without-data's test then says nothing.
    explains=causes.FIT_SYMPTOMS | causes.INSTABILITY_SYMPTOMS | {"loss-met-without-data"},
)
def activation_scale_drift(ctx: CheckContext) -> None:
    """Activation scale collapsing or exploding with depth at initialisation.

    Why it matters:
        With a good initialisation every layer's output has a similar scale.
        When each layer shrinks (or grows) its input by a constant factor, the
        signal reaching the last layers vanishes into rounding noise (or
        overflows), and the gradients follow: the deep layers receive nothing
        useful to learn from. This is the classic symptom of a weight std chosen
        without regard to fan-in.

    What is measured:
        At the first observed step (the initial weights), the std of the output
        of each ``Linear``/``Conv``/``ConvTranspose`` layer, and of each hand-written
        layer holding a weight matrix of its own (a graph convolution), in forward order.
        The ratio of the last hidden layer's std to the first layer's std
        (the output layer is left out when there are three or more, since a
        zero- or down-scaled head is a deliberate choice). A warning when it falls
        below ``activation_std_collapse`` (1e-3) or rises above
        ``activation_std_growth`` (20). Calibrated so that 3-6 layer MLPs and CNNs
        with PyTorch's default init (std shrinking ~0.4x per ReLU layer) or with
        BatchNorm stay silent.

    How to fix:
        Initialise for the nonlinearity: ``kaiming_normal_(w, nonlinearity="relu")``
        for ReLU nets, ``xavier_uniform_`` for tanh/sigmoid; add BatchNorm or
        LayerNorm between layers; never use a fixed std like 1.0, 10 or 1e-3
        regardless of the layer width.

    Example:
        Before::

            for m in model.modules():
                if isinstance(m, nn.Linear):
                    nn.init.normal_(m.weight, std=1e-3)   # each layer shrinks x0.02

        After::

            for m in model.modules():
                if isinstance(m, nn.Linear):
                    nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                    nn.init.zeros_(m.bias)
    """
    t = ctx.thresholds
    rec = ctx.recording
    steps = forward_steps(rec)
    if not steps:
        ctx.skip("no training forward pass was observed")
    step = steps[0]
    layers = weighted_layers(rec, step)
    if len(layers) < 2:
        ctx.skip(f"needs at least two Linear/Conv (or hand-written) layers, found {len(layers)}")
    stds = {n: step.activations[n].std for n in layers}
    hidden = layers[:-1] if len(layers) >= 3 else layers
    first = next((n for n in hidden if stds[n] > 0 and math.isfinite(stds[n])), None)
    if first is None:
        ctx.skip("the first layers' outputs have zero or non-finite std at the first step")
    last = hidden[-1]
    if last == first:
        ctx.skip("only one layer with a usable std at the first step")
    last_std = stds[last]
    ratio = last_std / stds[first] if math.isfinite(last_std) else math.inf
    depth = hidden.index(last) - hidden.index(first)
    per_layer = ratio ** (1.0 / depth) if 0 < ratio < math.inf else ratio
    ctx.note(
        f"std of {len(layers)} layer outputs at step {step.step}: "
        f"{first} {fmt3(stds[first])} -> {last} {fmt3(last_std)} (ratio {fmt3(ratio)})"
    )
    evidence = {
        "step": step.step,
        "std_ratio": ratio,
        "per_layer_factor": per_layer,
        "layer_std": capped({n: stds[n] for n in layers}),
    }
    if ratio > t.activation_std_growth:
        ctx.finding(
            title="Activations explode with depth at initialisation",
            message=(
                f"At step {step.step} the output std grows from {fmt3(stds[first])} at {first} to "
                f"{fmt3(last_std)} at {last} (x{fmt3(ratio)} over {depth} layer(s), about "
                f"x{fmt3(per_layer)} per layer; warning above x{fmt3(t.activation_std_growth)})."
            ),
            fix=(
                "Initialise weights for the layer's fan-in (kaiming_normal_ for ReLU, "
                "xavier_uniform_ for tanh/sigmoid) instead of a fixed large std, or add "
                "BatchNorm/LayerNorm between layers."
            ),
            where=Where(module=last, step=step.step),
            evidence=evidence,
        )
    elif ratio < t.activation_std_collapse:
        constant = next((n for n in hidden if stds[n] == 0), None)
        if constant is not None:
            # A layer whose output does not vary at all is cut off (a dead layer before it,
            # zero weights), not shrunk: say so rather than quote a per-layer factor of 0.
            where_module = constant
            message = (
                f"At step {step.step} the output of {constant} is constant (std 0) although "
                f"{first} has std {fmt3(stds[first])}: no signal reaches the later layers (a dead "
                "ReLU layer or zero weights before it; see dead-relus and weights-constant-init)."
            )
        else:
            where_module = last
            message = (
                f"At step {step.step} the output std falls from {fmt3(stds[first])} at {first} to "
                f"{fmt3(last_std)} at {last} (x{fmt3(ratio)} over {depth} layer(s), about "
                f"x{fmt3(per_layer)} per layer; warning below x{fmt3(t.activation_std_collapse)})."
            )
        ctx.finding(
            title="Activations vanish with depth at initialisation",
            message=message,
            fix=(
                "Initialise weights for the layer's fan-in (kaiming_normal_ for ReLU, "
                "xavier_uniform_ for tanh/sigmoid) instead of a fixed small std, or add "
                "BatchNorm/LayerNorm between layers."
            ),
            where=Where(module=where_module, step=step.step),
            evidence=evidence,
        )
