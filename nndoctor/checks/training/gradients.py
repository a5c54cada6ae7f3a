"""Gradients (reason 35): per-layer gradient norms spanning orders of magnitude (exploding
or vanishing gradients).
"""

from __future__ import annotations

import math

from nndoctor.checks.registry import CheckContext, register_check
from nndoctor.checks.training.observed import capped, fmt3, median, weight_matrices
from nndoctor.probes.recording import module_of
from nndoctor.report.model import Where

# float32's machine epsilon: a gradient norm below this share of the largest one in the same
# backward pass is beneath the arithmetic's resolution, a rounding residue, not a gradient.
NUMERICAL_ZERO = 2.0**-23


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
        reports them), and so are those below float32's resolution against all the
        others (under 2^-23 of the next larger: the rounding residue of a gradient
        that is zero by construction, as for the first DETR decoder layer's
        self-attention over zero targets, whose values are one constant; a
        vanishing gradient shrinks layer by layer instead). A warning at
        ``grad_norm_span_orders`` (5) and above.

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
    residues = _rounding_residues(norms)
    for name in residues:
        del norms[name]
    if residues:
        ctx.note(
            f"{len(residues)} gradient(s) below float32's resolution against all others left out "
            f"as rounding residue ({', '.join(residues[:3])})"
        )
    if len(norms) < 2:
        ctx.skip(f"needs gradients of at least two weight matrices, got {len(norms)}")
    hi = max(norms, key=norms.__getitem__)
    lo = min(norms, key=norms.__getitem__)
    span = math.log10(norms[hi] / norms[lo])
    ctx.note(
        (ctx.detail + "; " if residues else "")
        + f"{len(norms)} weight gradients span {span:.1f} orders of magnitude ({lo} .. {hi})"
    )
    if span < t.grad_norm_span_orders:
        return
    order = [n for n in rec.param_names if n in norms]
    vanishing_early = order.index(lo) < order.index(hi)
    ctx.finding(
        title=f"Gradient norms span {span:.1f} orders of magnitude across layers",
        message=(
            f"Over the first {len(steps)} step(s) the weight gradient of {lo} has norm "
            f"{fmt3(norms[lo])} while {hi} has {fmt3(norms[hi])} ({span:.1f} orders of magnitude; "
            f"warning at {fmt3(t.grad_norm_span_orders)}): "
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


def _rounding_residues(norms: dict[str, float]) -> list[str]:
    """The tensors whose gradient norms lie below a gap of float32's resolution (the next
    larger norm over ``1 / NUMERICAL_ZERO`` times theirs): the residues of gradients zero by
    construction. A vanishing gradient shrinks layer by layer, each near the next; residues
    stand apart, orders of magnitude under every real gradient, and are the fewer (one
    gradient that far above all others is an explosion, not the others' residue)."""
    ordered = sorted(norms, key=norms.__getitem__)
    gaps = [
        i
        for i, (small, larger) in enumerate(zip(ordered, ordered[1:], strict=False))
        if norms[small] < NUMERICAL_ZERO * norms[larger] and 2 * (i + 1) < len(ordered)
    ]
    return ordered[: gaps[-1] + 1] if gaps else []
