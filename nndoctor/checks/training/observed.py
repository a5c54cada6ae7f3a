"""Checks: activation, weight, gradient and loss statistics of the observed steps.

Reasons 28 (weight initialisation), 33 (visualise the training: update/weight
ratios), 35 (exploding / vanishing gradients, dead ReLUs, saturation) and 36
(learning rate too high or too low). Everything here reads numbers the training
probe already recorded; the only tensor work is on the initial state dict, on
the host (``weights-constant-init``).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable

import torch

from nndoctor.checks import causes
from nndoctor.checks.registry import CheckContext, register_check
from nndoctor.probes.layers import EMBEDDING, RELU, SATURATING, WEIGHTED
from nndoctor.probes.recording import Recording, StepRecord, module_of
from nndoctor.report.model import Severity, Where

# The update/weight ratio that cs231n's "babysitting the learning process" calls healthy.
HEALTHY_UPDATE_RATIO = 1e-3
# Per-layer numbers kept in a finding's evidence, at most (the extremes, in layer order).
MAX_EVIDENCE_LAYERS = 32


# -- helpers -------------------------------------------------------------------------


def _g(x: float) -> str:
    return f"{x:.3g}"


def leaf_modules(rec: Recording) -> set[str]:
    """Modules without submodules (their activations are the model's layers)."""
    names = list(rec.module_types)
    parents = {n.rsplit(".", 1)[0] if "." in n else "" for n in names if n}
    return {n for n in names if n not in parents}


def forward_steps(rec: Recording) -> list[StepRecord]:
    """Steps whose forward pass was observed (activations recorded)."""
    return [s for s in rec.steps if s.activations]


def is_matrix(shape: tuple[int, ...]) -> bool:
    """A weight matrix or kernel: at least two axes longer than one (not a bias, not a
    (1, 1, D) token or a (1, N, D) positional table)."""
    return sum(d > 1 for d in shape) >= 2


def is_bias(param: str) -> bool:
    """A bias by name, whatever its shape (a channel-wise layer may hold a 2-D bias)."""
    return "bias" in param.rsplit(".", 1)[-1].lower()


def weight_matrices(rec: Recording) -> list[str]:
    """Trainable weight matrices, excluding biases and lookup tables, in registration order."""
    return [
        n
        for n in rec.param_names
        if is_matrix(rec.param_shapes.get(n, ()))
        and not is_bias(n)
        and rec.requires_grad.get(n, True)
        # An embedding's gradient and update touch only the rows seen in a batch, so its
        # norms say nothing about the learning rate or about vanishing gradients.
        and not rec.is_kind(module_of(n), EMBEDDING)
    ]


def weighted_layers(rec: Recording, step: StepRecord) -> list[str]:
    """Linear/conv leaf modules in the order their forward completed at ``step``."""
    leaves = leaf_modules(rec)
    return [n for n in step.activations if n in leaves and rec.is_kind(n, WEIGHTED)]


def output_module(rec: Recording, step: StepRecord) -> str | None:
    """The last leaf module to complete its forward (the one producing the output)."""
    leaves = leaf_modules(rec)
    order = [n for n in step.activations if n in leaves]
    return order[-1] if order else None


def capped(values: dict[str, float], limit: int = MAX_EVIDENCE_LAYERS) -> dict[str, float]:
    """``values`` if short enough, else its ``limit`` most extreme entries, in their order."""
    if len(values) <= limit:
        return dict(values)
    ranked = sorted(values, key=lambda k: (math.isnan(values[k]), values[k]))
    keep = set(ranked[: limit // 2]) | set(ranked[-(limit - limit // 2) :])
    return {k: v for k, v in values.items() if k in keep}


def median(values: Iterable[float]) -> float:
    vals = [v for v in values if not math.isnan(v)]
    return statistics.median(vals) if vals else math.nan


def learning_rates(step: StepRecord) -> list[float]:
    """The learning rate of each parameter group at ``step`` (numbers only)."""
    out = []
    for group in step.hyperparameters:
        lr = group.get("lr")
        if isinstance(lr, (int, float)) and not isinstance(lr, bool):
            out.append(float(lr))
    return out


# -- dead ReLUs (35, 28) ---------------------------------------------------------------


@register_check(
    id="dead-relus",
    reasons=(35, 28),
    severity="warning",
    explains=causes.FIT_SYMPTOMS | causes.INSTABILITY_SYMPTOMS | frozenset({"params-without-grad"}),
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
                    f" Its input ({feeding}) has mean {_g(pre.mean)} and std {_g(pre.std)}: "
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
            detail = f" Its input ({feeding}) has std {_g(pre.std)}."
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
    explains=causes.FIT_SYMPTOMS | causes.INSTABILITY_SYMPTOMS,
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
        of each ``Linear``/``Conv``/``ConvTranspose`` layer, in forward order.
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
        ctx.skip(f"needs at least two Linear/Conv layers, found {len(layers)}")
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
        f"std of {len(layers)} Linear/Conv outputs at step {step.step}: "
        f"{first} {_g(stds[first])} -> {last} {_g(last_std)} (ratio {_g(ratio)})"
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
                f"At step {step.step} the output std grows from {_g(stds[first])} at {first} to "
                f"{_g(last_std)} at {last} (x{_g(ratio)} over {depth} layer(s), about "
                f"x{_g(per_layer)} per layer; warning above x{_g(t.activation_std_growth)})."
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
                f"{first} has std {_g(stds[first])}: no signal reaches the later layers (a dead "
                "ReLU layer or zero weights before it; see dead-relus and weights-constant-init)."
            )
        else:
            where_module = last
            message = (
                f"At step {step.step} the output std falls from {_g(stds[first])} at {first} to "
                f"{_g(last_std)} at {last} (x{_g(ratio)} over {depth} layer(s), about "
                f"x{_g(per_layer)} per layer; warning below x{_g(t.activation_std_collapse)})."
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


# -- constant or symmetric initial weights (28) -----------------------------------------


@register_check(
    id="weights-constant-init",
    reasons=(28,),
    severity="warning",
    explains=causes.FIT_SYMPTOMS | causes.INSTABILITY_SYMPTOMS,
)
def weights_constant_init(ctx: CheckContext) -> None:
    """Weight matrices initialised to zero, to a constant, or with identical rows.

    Why it matters:
        Units whose incoming weights are identical compute the same output and
        receive the same gradient: they stay identical forever, so a layer of
        N units behaves like one unit ("symmetry"). A weight matrix that is all
        zero passes no signal forward and, with zero biases and ReLU, no gradient
        back. Random initialisation exists to break this symmetry.

    What is measured:
        The model's initial state (before the first update): every trainable
        weight matrix (biases left out, whatever their shape) with more than one
        output unit is tested for all-zero,
        constant, or identical rows (every output unit with the same incoming
        weights). Grouped convolutions are tested for all-zero only. Severity:
        an error when every weight matrix of a model with hidden layers is
        affected (nothing breaks the symmetry); a warning for a single affected
        matrix; an info note for an all-zero *output* layer (a deliberate choice
        in some architectures, e.g. zero-initialised heads) and for single-layer
        models (zero init is fine for linear/logistic regression).

    How to fix:
        Use a random initialisation: leave PyTorch's default, or call
        ``nn.init.kaiming_normal_``/``xavier_uniform_``; initialise biases (not
        weights) to constants.

    Example:
        Before::

            for m in model.modules():
                if isinstance(m, nn.Linear):
                    nn.init.constant_(m.weight, 0.5)

        After::

            for m in model.modules():
                if isinstance(m, nn.Linear):
                    nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                    nn.init.zeros_(m.bias)
    """
    rec = ctx.recording
    state = ctx.services.initial_state() if ctx.services is not None else None
    if state is None:
        ctx.skip("the initial state of the model was not captured")
    matrices = [
        n
        for n in rec.param_names
        if rec.requires_grad.get(n, True)
        and not is_bias(n)
        and n in state
        and state[n].is_floating_point()
        and is_matrix(tuple(state[n].shape))
        and state[n].shape[0] > 1
    ]
    if not matrices:
        ctx.skip("no trainable weight matrix with more than one output unit")
    steps = forward_steps(rec)
    layers = weighted_layers(rec, steps[0]) if steps else []
    output_layer = layers[-1] if layers else None
    bad: list[tuple[str, str, dict[str, float | int | list[int]]]] = []
    for name in matrices:
        kind, ev = _symmetry(state[name], _groups(ctx, module_of(name)))
        if kind is not None:
            bad.append((name, kind, ev))
    ctx.note(
        f"{len(matrices)} weight matri{'x' if len(matrices) == 1 else 'ces'} checked at initialisation"
    )
    if not bad:
        return
    fix = (
        "Use a random initialisation (PyTorch's default, kaiming_normal_ for ReLU, "
        "xavier_uniform_ for tanh/sigmoid); set constants on biases, not on weights."
    )
    if len(matrices) >= 2 and len(bad) == len(matrices):
        ctx.finding(
            title="Every weight matrix starts symmetric",
            message=(
                f"All {len(matrices)} weight matrices are {_kinds(bad)} at initialisation: the "
                "units of each layer compute the same value and get the same gradient, so "
                "they can never become different."
            ),
            fix=fix,
            severity=Severity.ERROR,
            where=Where(module=module_of(bad[0][0]), step=0),
            evidence={
                "count": len(bad),
                "matrices": {n: {"kind": k, **ev} for n, k, ev in bad[:MAX_EVIDENCE_LAYERS]},
            },
        )
        return
    for name, kind, ev in bad:
        module = module_of(name)
        if len(matrices) == 1:
            severity, note = Severity.INFO, " The model has one weight matrix, so this is harmless."
        elif kind == "all zero" and module == output_layer:
            severity = Severity.INFO
            note = (
                " It is the output layer: a zero-initialised head is a deliberate choice in some "
                "architectures (the layers before it get no gradient at the first step only)."
            )
        else:
            severity, note = Severity.WARNING, ""
        ctx.finding(
            title=f"Weight {name} starts {kind}",
            message=(
                f"{name} (shape {list(state[name].shape)}) is {kind} at initialisation: its "
                f"{state[name].shape[0]} output units start identical and receive identical "
                f"gradient from this layer's input.{note}"
            ),
            fix=fix,
            severity=severity,
            where=Where(module=module, step=0),
            evidence={"kind": kind, **ev},
        )


def _groups(ctx: CheckContext, module: str) -> int | None:
    """``groups`` of a convolution, when the subject's model is at hand."""
    if ctx.subject is None:
        return None
    for name, m in ctx.subject.model.named_modules():
        if name == module:
            return int(getattr(m, "groups", 1))
    return None


def _symmetry(
    w: torch.Tensor, groups: int | None
) -> tuple[str | None, dict[str, float | int | list[int]]]:
    """('all zero' | 'constant' | 'identical rows' | None, evidence) for a weight matrix."""
    rows = w.detach().to("cpu", torch.float64).reshape(w.shape[0], -1)
    ev: dict[str, float | int | list[int]] = {"shape": list(w.shape), "units": int(w.shape[0])}
    if not bool(torch.isfinite(rows).all()):
        return None, ev
    if bool((rows == 0).all()):
        return "all zero", ev
    # A grouped (e.g. depthwise) convolution's output units read different input
    # channels, so identical kernels do not make them identical. Without the model
    # at hand, a kernel with one input channel may be depthwise: leave it alone.
    grouped = (groups or 1) > 1 or (groups is None and w.dim() >= 3 and w.shape[1] == 1)
    if grouped:
        return None, ev
    first = rows.reshape(-1)[0]
    if bool((rows == first).all()):
        ev["value"] = float(first)
        return "constant", ev
    if bool((rows == rows[0]).all()):
        ev["row_norm"] = float(rows[0].norm())
        return "identical rows", ev
    return None, ev


def _kinds(bad: list[tuple[str, str, object]]) -> str:
    kinds = sorted({k for _, k, _ in bad})
    return " or ".join(kinds)


# -- per-layer gradient norms spanning orders of magnitude (35) ---------------------------


@register_check(
    id="gradient-norm-spread",
    reasons=(35,),
    severity="warning",
    symptom=True,
    differential=(
        (35, "saturating activations or a deep stack without normalisation"),
        (28, "the initialisation scale"),
        (12, "the scale of the inputs"),
    ),
)
def gradient_norm_spread(ctx: CheckContext) -> None:
    """Per-layer gradient norms spanning many orders of magnitude.

    Why it matters:
        With one learning rate for all layers, a layer whose gradient is 10^5
        times smaller than another's effectively does not train (vanishing
        gradients), while the largest gradients set how high the learning rate
        can go (exploding gradients). Healthy networks keep their per-layer
        weight-gradient norms within one or two orders of magnitude.

    What is measured:
        The L2 norm of each trainable weight matrix's gradient (biases and lookup
        tables left out) at the first ``stats_early_steps`` observed steps,
        median per tensor, and the span log10(max/min) across tensors. Tensors
        whose gradient is exactly zero are left out (``params-without-grad``
        reports them). A warning at ``grad_norm_span_orders`` (5) and above.

    How to fix:
        Add normalisation (BatchNorm/LayerNorm) and residual connections, use
        ReLU-family activations instead of stacked sigmoid/tanh, initialise for
        the nonlinearity (kaiming/xavier); clip gradient norms when the largest
        ones explode (``torch.nn.utils.clip_grad_norm_``).

    Example:
        Before::

            layers = [nn.Linear(64, 64), nn.Sigmoid()] * 10   # gradient shrinks ~x0.1 per layer

        After::

            layers = [nn.Linear(64, 64), nn.LayerNorm(64), nn.ReLU()] * 10
    """
    t = ctx.thresholds
    rec = ctx.recording
    matrices = weight_matrices(rec)
    steps = [s for s in rec.steps if s.grad_norms][: t.stats_early_steps]
    if not steps:
        ctx.skip("no gradients were observed")
    norms = {}
    for name in matrices:
        vals = [s.grad_norms[name] for s in steps if name in s.grad_norms]
        m = median(vals)
        if vals and math.isfinite(m) and m > 0:
            norms[name] = m
    if len(norms) < 2:
        ctx.skip(f"needs gradients of at least two weight matrices, got {len(norms)}")
    hi = max(norms, key=norms.__getitem__)
    lo = min(norms, key=norms.__getitem__)
    span = math.log10(norms[hi] / norms[lo])
    ctx.note(f"{len(norms)} weight gradients span {span:.1f} orders of magnitude ({lo} .. {hi})")
    if span < t.grad_norm_span_orders:
        return
    order = [n for n in rec.param_names if n in norms]
    vanishing_early = order.index(lo) < order.index(hi)
    ctx.finding(
        title=f"Gradient norms span {span:.1f} orders of magnitude across layers",
        message=(
            f"Over the first {len(steps)} step(s) the weight gradient of {lo} has norm "
            f"{_g(norms[lo])} while {hi} has {_g(norms[hi])} ({span:.1f} orders of magnitude; "
            f"warning at {_g(t.grad_norm_span_orders)}): "
            + (
                "gradients vanish on their way back to the first layers."
                if vanishing_early
                else "the gradients of later layers are far larger than those of earlier ones."
            )
        ),
        fix=(
            "Add BatchNorm/LayerNorm and residual connections, use ReLU/GELU instead of stacked "
            "sigmoid/tanh, initialise for the nonlinearity (kaiming/xavier), and clip the "
            "gradient norm if the largest gradients explode."
        ),
        where=Where(module=module_of(lo), step=steps[0].step),
        evidence={
            "span_orders": span,
            "largest": {hi: norms[hi]},
            "smallest": {lo: norms[lo]},
            "grad_norms": capped(norms),
            "steps": len(steps),
        },
    )


# -- update / weight ratio (33, 36) -----------------------------------------------------


@register_check(
    id="update-ratio",
    reasons=(33, 36),
    severity="warning",
    symptom=True,
    differential=(
        (36, "the learning rate (learning-rate-out-of-range)"),
        (12, "the scale of the inputs"),
        (28, "the initialisation"),
    ),
)
def update_ratio(ctx: CheckContext) -> None:
    """Update/weight ratios far from ~1e-3: the learning rate is too high or too low.

    Why it matters:
        The size of each optimizer step relative to the weights is the most direct
        reading of the learning rate. Around 1e-3 per step is healthy (cs231n):
        far above it, each step rewrites the weights and training oscillates or
        diverges; far below it, the weights barely move and training crawls.

    What is measured:
        For each trainable weight matrix in the optimizer (biases and lookup tables
        left out), at each observed step, the norm of the update divided by the
        matrix's norm at the first observed step (its initial scale: dividing by
        the current norm would hide a runaway learning rate, since the weights
        inflate with it); the median over steps per matrix, then the median over
        matrices. A warning above ``update_ratio_high`` (0.1) or below
        ``update_ratio_low`` (1e-5); an error above ``update_ratio_extreme`` (1.0,
        every step as large as the weights themselves). A learning rate rising
        over the observed steps (warm-up) turns a "too low" finding into a note.
        Matrices that never change are left to ``params-not-changing``.

    How to fix:
        Too high: lower the learning rate (by the factor shown) or add warm-up;
        too low: raise it. A learning-rate range test (increase the rate
        exponentially over a few hundred steps, pick a value an order below where
        the loss blows up) finds a good value quickly.

    Example:
        Before::

            optimizer = torch.optim.Adam(model.parameters(), lr=1.0)

        After::

            optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    """
    t = ctx.thresholds
    rec = ctx.recording
    candidates = [n for n in weight_matrices(rec) if n in rec.in_optimizer]
    per_tensor: dict[str, float] = {}
    per_tensor_current: dict[str, float] = {}
    for name in candidates:
        pairs = [
            (s.update_norms[name], s.weight_norms.get(name, math.nan))
            for s in rec.steps
            if name in s.update_norms
        ]
        pairs = [(u, w) for u, w in pairs if math.isfinite(u) and math.isfinite(w)]
        if not pairs or all(u == 0 for u, _ in pairs):
            continue
        ref = next((w for _, w in pairs if w > 0), 0.0)
        if ref <= 0:
            continue
        per_tensor[name] = median(u / ref for u, _ in pairs)
        per_tensor_current[name] = median(u / w for u, w in pairs if w > 0)
    if not per_tensor:
        ctx.skip("no weight matrix in the optimizer changed during the observed steps")
    ratio = median(per_tensor.values())
    ctx.note(f"median update/weight ratio {_g(ratio)} over {len(per_tensor)} weight matrices")
    stepped = [s for s in rec.steps if s.update_norms]
    lrs_first = learning_rates(stepped[0]) if stepped else []
    lrs_last = learning_rates(stepped[-1]) if stepped else []
    evidence = {
        "median_ratio": ratio,
        "healthy_ratio": HEALTHY_UPDATE_RATIO,
        "ratios": capped(per_tensor),
        "ratios_to_current_norm": capped(per_tensor_current),
        "lr": lrs_first,
        "steps": len(stepped),
    }
    lr_text = f" (lr={', '.join(_g(x) for x in lrs_first)})" if lrs_first else ""
    if ratio > t.update_ratio_high:
        worst = max(per_tensor, key=per_tensor.__getitem__)
        factor = ratio / HEALTHY_UPDATE_RATIO
        ctx.finding(
            title="Updates are too large for the weights: learning rate too high",
            message=(
                f"Each step changes the weight matrices by a median {_g(ratio)} of their initial "
                f"norm over {len(stepped)} steps{lr_text}; healthy is about "
                f"{_g(HEALTHY_UPDATE_RATIO)}, warning above {_g(t.update_ratio_high)}. "
                f"Largest: {worst} at {_g(per_tensor[worst])}."
            ),
            fix=(
                f"Lower the learning rate, by up to ~{_g(factor)}x toward an update/weight "
                "ratio of 1e-3 (or run a learning-rate range test); add warm-up for large models."
            ),
            severity=Severity.ERROR if ratio > t.update_ratio_extreme else None,
            where=Where(module=module_of(worst), step=stepped[0].step if stepped else None),
            evidence=evidence,
        )
    elif ratio < t.update_ratio_low:
        smallest = min(per_tensor, key=per_tensor.__getitem__)
        warming = (
            bool(lrs_first)
            and len(lrs_first) == len(lrs_last)
            and any(b > a for a, b in zip(lrs_first, lrs_last, strict=True))
        )
        note = (
            f" The learning rate is still rising (warm-up: {', '.join(_g(x) for x in lrs_last)} "
            "at the last observed step), so this may be expected."
            if warming
            else ""
        )
        ctx.finding(
            title="Updates are tiny compared with the weights: learning rate too low",
            message=(
                f"Each step changes the weight matrices by a median {_g(ratio)} of their initial "
                f"norm over {len(stepped)} steps{lr_text}; healthy is about "
                f"{_g(HEALTHY_UPDATE_RATIO)}, warning below {_g(t.update_ratio_low)}.{note}"
            ),
            fix=(
                f"Raise the learning rate, by up to ~{_g(HEALTHY_UPDATE_RATIO / ratio)}x toward an "
                "update/weight ratio of 1e-3 (or run a learning-rate range test)."
            ),
            severity=Severity.INFO if warming else None,
            where=Where(module=module_of(smallest), step=stepped[0].step if stepped else None),
            evidence={**evidence, "warm_up": warming},
        )


# -- loss diverging (36) ---------------------------------------------------------------------


@register_check(
    id="loss-diverging",
    reasons=(36,),
    severity="error",
    symptom=True,
    differential=(
        (36, "a too-high learning rate (learning-rate-out-of-range)"),
        (26, "gradients accumulated without zero_grad (zero-grad-missing)"),
        (37, "a non-finite value (non-finite-values)"),
        (12, "inputs on a large scale"),
        (29, "optimiser settings out of range"),
    ),
)
def loss_diverging(ctx: CheckContext) -> None:
    """The training loss diverges: rising, spiking, or becoming inf/NaN.

    Why it matters:
        Over the first steps of a healthy run the loss falls or stays flat. A loss
        that climbs steadily, jumps to many times its starting value, or becomes
        non-finite means the optimizer overshoots: most often the learning rate
        is too high (or the gradients explode).

    What is measured:
        The loss at each observed step. An error when it becomes inf/NaN after a
        finite start, or when it rises steadily: the median of the last quarter of
        steps at least ``loss_rise_ratio`` (2) times the median of the first quarter,
        with every loss of the last quarter above every loss of the first. A
        warning when a step's loss exceeds ``loss_spike_ratio`` (10) times the
        first loss (oscillation). The ratio rules apply to positive losses only.

    How to fix:
        Lower the learning rate (try 3-10x lower), add warm-up, clip the gradient
        norm (``torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)``); if the
        loss is huge from the first step, check the initialisation and the loss
        scale instead.

    Example:
        Before::

            optimizer = torch.optim.SGD(model.parameters(), lr=1.0, momentum=0.9)

        After::

            optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    """
    t = ctx.thresholds
    seen = [(s.step, s.loss) for s in ctx.recording.steps if s.loss_seen]
    if len(seen) < 2:
        ctx.skip(f"needs at least two observed losses, got {len(seen)}")
    if not math.isfinite(seen[0][1]):
        ctx.skip("the loss is non-finite from the first step (see the NaN tracing check)")
    fix = (
        "Lower the learning rate 3-10x, add warm-up, and clip the gradient norm "
        "(clip_grad_norm_(model.parameters(), 1.0)); if the loss is huge from the first step, "
        "check the initialisation and the scale of the loss."
    )
    bad = next(((step, v) for step, v in seen if not math.isfinite(v)), None)
    finite = [(step, v) for step, v in seen if math.isfinite(v)]
    peak_step, peak = max(finite, key=lambda sv: sv[1])
    if bad is not None:
        ctx.finding(
            title="The loss diverged to a non-finite value",
            message=(
                f"The loss started at {_g(seen[0][1])}, reached {_g(peak)} at step {peak_step} "
                f"and became {bad[1]} at step {bad[0]}."
            ),
            fix=fix,
            where=Where(step=bad[0]),
            evidence={
                "initial_loss": seen[0][1],
                "max_finite_loss": peak,
                "nonfinite_step": bad[0],
            },
        )
        return
    values = [v for _, v in finite]
    ctx.note(f"{len(values)} losses: first {_g(values[0])}, last {_g(values[-1])}, max {_g(peak)}")
    quarter = max(2, len(values) // 4)
    if len(values) < 2 * quarter or min(values[:quarter]) <= 0:
        return
    head, tail = values[:quarter], values[-quarter:]
    head_m, tail_m = median(head), median(tail)
    if tail_m >= t.loss_rise_ratio * head_m and min(tail) > max(head):
        ctx.finding(
            title="The loss rises steadily",
            message=(
                f"The median loss of the last {quarter} steps ({_g(tail_m)}) is "
                f"{_g(tail_m / head_m)}x that of the first {quarter} ({_g(head_m)}), and every "
                f"late loss is above every early one; peak {_g(peak)} at step {peak_step}."
            ),
            fix=fix,
            where=Where(step=finite[-quarter][0]),
            evidence={
                "first_quarter_median": head_m,
                "last_quarter_median": tail_m,
                "max_loss": peak,
            },
        )
        return
    if peak >= t.loss_spike_ratio * values[0] and peak_step != finite[0][0]:
        ctx.finding(
            title="The loss spikes far above its starting value",
            message=(
                f"The loss jumped to {_g(peak)} at step {peak_step}, {_g(peak / values[0])}x its "
                f"first value {_g(values[0])} (warning at {_g(t.loss_spike_ratio)}x); the last "
                f"loss is {_g(values[-1])}."
            ),
            fix=fix,
            severity=Severity.WARNING,
            where=Where(step=peak_step),
            evidence={"initial_loss": values[0], "max_loss": peak, "last_loss": values[-1]},
        )
