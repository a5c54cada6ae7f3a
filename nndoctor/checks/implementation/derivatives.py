"""Derivatives inside the loss (gradient penalties, physics residuals) taken without their
graph (reasons 26, 18): the loss's gradient misses their terms."""

from __future__ import annotations

import os

from nndoctor.checks import causes
from nndoctor.checks.lab import Lab
from nndoctor.checks.registry import CheckContext, register_check
from nndoctor.report.model import Where


@register_check(
    id="derivative-without-graph",
    reasons=(26, 18),
    severity="error",
    kind="experiment",
    quick=True,
    priority=14,
    explains=causes.FIT_SYMPTOMS,
)
def derivative_without_graph(ctx: CheckContext) -> None:
    """A derivative that is part of the loss was taken without ``create_graph=True``.

    Why it matters:
        A gradient penalty (WGAN-GP, R1), a physics-informed residual (``u_t - nu * u_xx``)
        or a Jacobian regulariser puts a derivative of the network into the loss.
        ``torch.autograd.grad`` returns it as a constant unless it is asked for its graph:
        the loss still has the term, its value looks right, but the term's own dependence
        on the weights is missing from the gradient, so the optimiser never reduces it.
        Nothing fails; the penalty simply does not act.

    What is measured:
        The probe records ``torch.autograd.grad`` calls in training steps without
        ``create_graph``, of outputs that carry a graph, against tensors the script marked
        as requiring a gradient (parameters and tensors computed from them are left out:
        first-order meta-learning drops the second order on purpose). Where there is one,
        the script is replayed with those calls made with ``create_graph=True``, and at the
        first backward after one the parameters' gradient is computed twice from the same
        graph: with the paths through the derivatives closed (the script's own gradient,
        exactly) and open. An error when opening them changes the gradient by more than
        ``derivative_graph_change`` (1e-4) of its norm: far above float32 rounding, the
        only other difference, since a term that is small at initialisation (a small
        diffusion coefficient) is still missing from every step. A derivative that fed a module's
        input (an adversarial example, ``x + eps * grad.sign()``) is an input the script
        chose to hold fixed, and is only noted.

    How to fix:
        Pass ``create_graph=True`` to every ``torch.autograd.grad`` whose result enters the
        loss (``retain_graph=True`` alone keeps the forward graph, not the derivative's).

    Example:
        Before::

            g = torch.autograd.grad(critic(x_hat).sum(), x_hat, retain_graph=True)[0]
            loss = wasserstein + 10 * ((g.norm(dim=1) - 1) ** 2).mean()

        After::

            g = torch.autograd.grad(critic(x_hat).sum(), x_hat, create_graph=True)[0]
    """
    rec = ctx.recording
    calls = [c for s in rec.steps for c in s.derivative_calls]
    if not calls:
        ctx.skip("no derivative was taken without its graph in a training step")
    lab: Lab | None = ctx.services
    if lab is None or lab.script is None:
        ctx.skip("taking the derivatives with their graph needs a replay of the script")
    result = lab.replay("derivatives")
    facts = result.derivatives
    first = calls[0]
    at = f"{os.path.basename(first.file)}:{first.line}" if first.file else "the script"
    if facts is None:
        why = result.error or "no backward followed the derivative"
        ctx.skip(f"the replay did not reach a backward after the derivative at {at} ({why})")
    change = facts["relative_change"]
    if facts["feeds_model"]:
        ctx.note(
            f"the derivative taken without its graph at {at} builds a model input (such as "
            "an adversarial example): holding it fixed is a choice"
        )
        return
    ctx.note(
        f"the derivative at {at} taken with its graph changes the gradient by {change:.2g} "
        "of its norm"
    )
    if change <= ctx.thresholds.derivative_graph_change:
        return
    ctx.finding(
        title="A derivative in the loss is taken without its graph",
        message=(
            f"torch.autograd.grad at {at} is called without create_graph=True, so the "
            "derivative enters the loss as a constant. Taken with its graph, the gradient on "
            f"the weights changes by {change:.2g} of its norm ({facts['missing_norm']:.3g} "
            f"against {facts['gradient_norm']:.3g}): the term built from it is in the loss's "
            "value but not in its gradient, and the optimiser never reduces it."
        ),
        fix="Pass create_graph=True to torch.autograd.grad wherever its result enters the loss.",
        where=Where(file=first.file, line=first.line),
        evidence={
            "relative_change": change,
            "missing_norm": facts["missing_norm"],
            "gradient_norm": facts["gradient_norm"],
            "file": first.file,
            "line": first.line,
        },
    )
