"""Two networks trained against each other whose losses pull the same way (reasons 18, 19)."""

from __future__ import annotations

from collections import defaultdict

from nndoctor.checks import causes
from nndoctor.checks.registry import CheckContext, register_check
from nndoctor.probes.recording import CriticPush


def _pushes_by_step(pushes: list[CriticPush]) -> dict[tuple[str, int], float]:
    """For each (side, optimizer step): sum(grad) / sum(|grad|) over the critic's outputs in
    the calls that step's update served."""
    total: dict[tuple[str, int], list[float]] = defaultdict(lambda: [0.0, 0.0])
    for p in pushes:
        total[p.side, p.step][0] += p.grad_sum
        total[p.side, p.step][1] += p.grad_abs_sum
    return {k: s / a for k, (s, a) in total.items() if a > 0}


def _direction(push: float) -> str:
    # Gradient descent moves an output against its gradient.
    return "down" if push > 0 else "up"


def _ways(pushes: list[float]) -> str:
    down = sum(v > 0 for v in pushes)
    parts = [
        f"{down} down" if down else "",
        f"{len(pushes) - down} up" if down < len(pushes) else "",
    ]
    return ", ".join(p for p in parts if p) or "none"


@register_check(
    id="generator-not-adversarial",
    reasons=(18, 19),
    severity="error",
    explains=causes.FIT_SYMPTOMS,
)
def generator_not_adversarial(ctx: CheckContext) -> None:
    """A GAN's generator is trained to push the discriminator's score of its samples the
    same way the discriminator is: the two losses cooperate instead of competing.

    Why it matters:
        Adversarial training is a game: the discriminator's loss lowers its "real" score
        for generated samples, the generator's loss raises it. If both move that score the
        same way (the labels swapped in one of the losses: the discriminator told the
        generated samples are real, or the generator trained towards the label the
        discriminator gives fakes), the generator is rewarded for looking fake. Both losses
        fall happily and the samples never approach the data.

    What is measured:
        Every training call of a network on another network's output (a discriminator on
        ``fake`` or ``fake.detach()``) in the first optimizer steps: a hook on its output
        reads the gradient the loss sends back, and ``sum(grad) / sum(|grad|)`` over that
        output says which way gradient descent moves the score (+1: every element down,
        -1: every one up). The optimizer that steps next says whose update that was: the
        critic's, or the producer's. This holds for any loss (binary cross-entropy with any
        label convention, the saturating or non-saturating generator loss, Wasserstein,
        hinge, least squares): a game means opposite pushes. Each of the critic's outputs
        is read on its own (a score and class logits, as an auxiliary-classifier GAN
        returns). The check fires when, for every output judged, in at least
        ``adversarial_min_steps`` (2) steps of each network the push is decisive (at least
        ``adversarial_decisive_push``, 0.5, from zero) and every decisive push of both
        networks goes the same way; a game on any one output is a game (an auxiliary
        output both train alike is meant). A fact about the losses' signs, not an
        estimate.

    How to fix:
        Give the discriminator's loss the fake label for generated samples and the real
        label for data; train the generator towards the real label
        (``criterion(netD(fake), real_label)``), or minimise the negative of the
        discriminator's fake-term.

    Example:
        Before::

            errD = criterion(netD(real), zeros) + criterion(netD(fake.detach()), ones)
            errG = criterion(netD(fake), ones)

        After::

            errD = criterion(netD(real), ones) + criterion(netD(fake.detach()), zeros)
            errG = criterion(netD(fake), ones)
    """
    t = ctx.thresholds
    pushes = ctx.recording.critic_pushes
    if not pushes:
        ctx.skip("no network was trained on another network's output (no GAN-style pair)")
    outputs = sorted({(p.critic, p.producer, p.output) for p in pushes})
    several = {(c, p) for c, p, k in outputs if k > 0}
    judged: dict[tuple[str, str], list[tuple[int, list[float], list[float]]]] = defaultdict(list)
    notes: list[str] = []
    for critic, producer, k in outputs:
        by_step = _pushes_by_step(
            [p for p in pushes if (p.critic, p.producer, p.output) == (critic, producer, k)]
        )
        decisive = {key: v for key, v in by_step.items() if abs(v) >= t.adversarial_decisive_push}
        own = [v for (side, _), v in decisive.items() if side == "critic"]
        other = [v for (side, _), v in decisive.items() if side == "producer"]
        which = f"its output {k}" if (critic, producer) in several else "its score"
        notes.append(
            f"{critic} on {producer}'s outputs: {critic}'s steps pushed {which} "
            f"{_ways(own)}, {producer}'s {_ways(other)} (decisive pushes)"
        )
        if len(own) >= t.adversarial_min_steps and len(other) >= t.adversarial_min_steps:
            judged[critic, producer].append((k, own, other))
    ctx.note("; ".join(notes))
    if not judged:
        ctx.inconclusive(
            ctx.detail + f": fewer than {t.adversarial_min_steps} decisive steps of each "
            "network to compare"
        )
        return
    for (critic, producer), scores in judged.items():
        # A game on any one of the critic's outputs is a game: a second output both
        # networks train the same way (InfoGAN's code, an auxiliary classifier) is meant.
        if any(len({v > 0 for v in own + other}) != 1 for _, own, other in scores):
            continue
        k, own, other = scores[0]
        way = _direction(own[0])
        ctx.finding(
            title=f"{producer} and {critic} are trained the same way: no adversarial game",
            message=(
                f"In {len(own)} of {critic}'s steps its loss pushed its score of {producer}'s "
                f"outputs {way}, and in {len(other)} of {producer}'s steps {producer}'s loss "
                f"pushed that same score {way} too: {producer} is trained towards the score "
                f"{critic} is taught to give {producer}'s outputs, not the score it gives the "
                "data. One of the two losses has its labels swapped."
            ),
            fix=(
                f"{critic}'s loss must give {producer}'s outputs the fake label and the data "
                f"the real one; {producer}'s loss must target the real label "
                "(criterion(netD(fake), real_label))."
            ),
            evidence={
                "critic": critic,
                "producer": producer,
                "output": k,
                "critic_pushes": own,
                "producer_pushes": other,
                "direction": way,
            },
        )
        return
