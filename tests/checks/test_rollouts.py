"""No-grad forwards that prepare training (rollouts) against evaluations: a rollout's
samples are consumed by the epochs of minibatches that follow it and then replaced; an
evaluation set that leaks into training is trained on throughout."""

from __future__ import annotations

import random

from nndoctor.checks.rollouts import preparing_steps
from nndoctor.probes.recording import Recording, StepRecord

ALPHA = 1e-3


def _sample(i: int) -> float:
    """A sample's fingerprint: distinct values, far apart beyond float noise."""
    return 1.0 + 0.01 * i


def _ppo_recording(second_phase_recorded: bool) -> Recording:
    """Two rollouts of 64 samples, each trained on for 4 epochs of 4 shuffled minibatches;
    20 steps observed (the second rollout's first epoch). The rollouts' no-grad forwards
    are recorded at the step they precede."""
    rng = random.Random(0)
    rollouts = [[_sample(i) for i in range(64)], [_sample(1000 + i) for i in range(64)]]
    steps = []
    for step in range(20):
        rollout = rollouts[step // 16]
        if step % 4 == 0:
            order = rollout[:]
            rng.shuffle(order)
        part = step % 4
        steps.append(StepRecord(step=step, sample_fingerprints=order[16 * part : 16 * part + 16]))
    rec = Recording(steps=steps)
    phases = [(0, rollouts[0])] + ([(16, rollouts[1])] if second_phase_recorded else [])
    for k, samples in phases:
        rec.eval_sample_fingerprints.extend(samples)
        rec.eval_fingerprint_steps.extend([k] * len(samples))
    return rec


def test_a_rollout_consumed_by_the_next_steps_prepares_training() -> None:
    assert preparing_steps(_ppo_recording(second_phase_recorded=True), ALPHA) == {0, 16}


def test_a_rollout_whose_successor_was_not_recorded_prepares_training() -> None:
    # The first rollout's samples fill the first quarter of the steps from there and are
    # gone from the last quarter.
    assert preparing_steps(_ppo_recording(second_phase_recorded=False), ALPHA) == {0}


def test_an_evaluation_set_that_leaks_into_training_is_no_rollout() -> None:
    # 64 evaluation samples among 512 training samples drawn at random at every step:
    # any two windows of steps meet them alike, so the phase stays an evaluation at
    # (about) the stated rate.
    prepared = 0
    runs = 200
    for seed in range(runs):
        rng = random.Random(seed)
        pool = [_sample(i) for i in range(512)]
        steps = [StepRecord(step=s, sample_fingerprints=rng.sample(pool, 32)) for s in range(40)]
        rec = Recording(steps=steps)
        k = rng.choice([0, 10, 20])
        rec.eval_sample_fingerprints.extend(pool[:64])
        rec.eval_fingerprint_steps.extend([k] * 64)
        prepared += bool(preparing_steps(rec, ALPHA))
    assert prepared <= 2
