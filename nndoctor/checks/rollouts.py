"""No-grad forwards that prepare training rather than evaluate it: a rollout's action
choices, a bootstrapped value, pseudo-labels. Their samples are trained on right after
them; an evaluation's are not (or, where the evaluation set leaks into training, no more
right after it than at any other time)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from nndoctor.checks.fingerprints import distinct_fingerprints, near_fingerprint
from nndoctor.checks.significance import binomial_tail
from nndoctor.probes.recording import Recording

# No-grad forwards whose samples are mostly trained on within this many steps prepare training.
PREPARING_WINDOW = 2


def eval_steps(values: list[Any], steps: list[int]) -> list[int]:
    """The step of each evaluated value, or -1 for each where none was recorded."""
    return steps if len(steps) == len(values) else [-1] * len(values)


def preparing_steps(rec: Recording, alpha: float) -> set[int]:
    """The steps at which the no-grad forwards prepared training rather than evaluated.

    Two tests; either suffices:
    - most of their samples are trained on at that step or the next (``PREPARING_WINDOW``),
      more of them than were trained on in as many steps before it (a pseudo-label, a
      bootstrapped value);
    - their samples are consumed by the phase that follows them: trained on before the next
      no-grad phase far more often than in as many steps after it (without a next phase
      observed: than in as many steps before it; at the first step, in the first quarter
      of the steps from there far more often than in the last quarter). A rollout is trained on for a few epochs of minibatches and
      then replaced; an evaluation set that leaks into training is trained on in any window
      of the same length alike. Each sample met in one window only is as likely to be met in
      either under that symmetry: a binomial test at ``alpha`` (McNemar's exact test), which
      is the rate at which a leaking evaluation is taken for a rollout.
    """
    by_step: dict[int, list[float]] = {}
    steps = eval_steps(rec.eval_sample_fingerprints, rec.eval_fingerprint_steps)
    for v, k in zip(rec.eval_sample_fingerprints, steps, strict=True):
        if k >= 0:
            by_step.setdefault(k, []).append(v)
    if not rec.steps:
        return set()
    first, last = rec.steps[0].step, rec.steps[-1].step

    def trained(lo: int, hi: int) -> list[float]:
        return distinct_fingerprints(
            [v for s in rec.steps if lo <= s.step <= hi for v in s.sample_fingerprints]
        )

    phases = sorted(by_step)
    preparing = set()
    for i, k in enumerate(phases):
        distinct = distinct_fingerprints(by_step[k])
        ahead = trained(k, k + PREPARING_WINDOW - 1)
        behind = trained(k - PREPARING_WINDOW, k - 1)
        next_ = sum(near_fingerprint(ahead, v) for v in distinct)
        before = sum(near_fingerprint(behind, v) for v in distinct)
        if 2 * next_ > len(distinct) and next_ > before:
            preparing.add(k)
            continue
        following = phases[i + 1] if i + 1 < len(phases) else None
        if _consumed_by_next_phase(distinct, k, following, first, last, trained, alpha):
            preparing.add(k)
    return preparing


def _consumed_by_next_phase(
    distinct: list[float],
    k: int,
    following: int | None,
    first: int,
    last: int,
    trained: Callable[[int, int], list[float]],
    alpha: float,
) -> bool:
    """Whether the samples of the no-grad phase at step ``k`` are trained on in the steps up
    to the next phase (``following``) beyond what an equal window after that phase gives
    (see ``preparing_steps``)."""
    if following is not None and last >= following:
        width = min(following - k, last - following + 1)
        versus = (following, following + width - 1)
    elif k > first:
        # The next phase was not observed (or not recorded): the steps from here against as
        # many steps before, as alike as any two windows for an evaluation set that training
        # draws from throughout.
        width = min(last - k + 1, k - first)
        versus = (k - width, k - 1)
    else:
        # Nothing before either: the first quarter of the steps from here against the last.
        width = (last - k + 1) // 4
        versus = (last - width + 1, last)
    if width < 1 or not distinct:
        return False
    ahead = trained(k, k + width - 1)
    other = trained(*versus)
    in_ahead = [near_fingerprint(ahead, v) for v in distinct]
    in_other = [near_fingerprint(other, v) for v in distinct]
    only_ahead = sum(a and not b for a, b in zip(in_ahead, in_other, strict=True))
    only_other = sum(b and not a for a, b in zip(in_ahead, in_other, strict=True))
    if only_ahead <= only_other:
        return False
    return binomial_tail(only_ahead + only_other, only_ahead, 0.5) < alpha
