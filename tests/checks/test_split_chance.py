"""Samples shared between splits are told from fingerprints that collide by chance: one
number per sample, thousands of them, match within float tolerance by chance alone."""

from __future__ import annotations

import torch

from nndoctor.checks.fingerprints import distinct_fingerprints, near_fingerprint
from nndoctor.checks.preprocessing.splits import Recurrence, shared_beyond_chance
from nndoctor.checks.significance import binomial_tail, proportion_excess_p

ALPHA = 0.01


def _fingerprints(rows: torch.Tensor) -> list[float]:
    # As the probe computes them: one fixed random projection per sample, in float32.
    proj = torch.randn(rows.shape[1], generator=torch.Generator().manual_seed(12345))
    return (rows.float() @ proj).tolist()


def _splits(dim: int, train: int, evaluated: int, copied: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    train_rows = torch.randn(train, dim, generator=g)
    eval_rows = torch.randn(evaluated, dim, generator=g)
    eval_rows[:copied] = train_rows[:copied]
    return sorted(_fingerprints(train_rows)), _fingerprints(eval_rows)


def test_independent_low_dimensional_splits_collide_by_chance_and_pass() -> None:
    # A tabular validation set of 1024 rows against 20 steps of 128 training rows: some
    # fingerprints collide, and as many collide when shifted off their values.
    collided = 0
    for seed in range(5):
        train, evaluated = _splits(dim=12, train=2560, evaluated=1024, copied=0, seed=seed)
        shared, expected, p = shared_beyond_chance(train, evaluated)
        collided += shared
        assert p >= ALPHA, (seed, shared, expected)
    assert collided > 0  # the rule this replaces (any match is a leak) alarmed here


def test_duplicated_rows_are_found_beyond_chance() -> None:
    train, evaluated = _splits(dim=12, train=2560, evaluated=1024, copied=40, seed=0)
    shared, expected, p = shared_beyond_chance(train, evaluated)
    assert shared >= 40 and expected < 20 and p < ALPHA


def test_a_small_share_of_copied_images_is_found() -> None:
    # 3% of a validation set of 12x12 images copied from training: beyond what chance matches
    # (a handful of copies among thousands is not: one number per sample collides as often).
    train, evaluated = _splits(dim=144, train=1280, evaluated=512, copied=15, seed=1)
    shared, expected, p = shared_beyond_chance(train, evaluated)
    assert shared >= 15 and expected < 5 and p < ALPHA


def test_an_evaluation_of_the_training_inputs_themselves_is_found() -> None:
    train, _ = _splits(dim=50, train=600, evaluated=1, copied=0, seed=2)
    shared, _, p = shared_beyond_chance(train, list(train))
    assert shared == 600 and p < ALPHA


def test_fishers_exact_test_one_sided() -> None:
    # 3 of 10 against 1 of 10: the textbook table, one-sided p = 0.291.
    assert abs(proportion_excess_p(3, 10, 1, 10) - 0.2910) < 1e-3
    assert proportion_excess_p(0, 10, 5, 10) == 1.0
    # Every row of a large split recurs, none of four training rows does: beyond doubt,
    # where a Poisson approximation of the base rate would not say so.
    assert proportion_excess_p(4096, 4096, 0, 4) < 1e-10


def _discrete_rows(n: int, g: torch.Generator) -> torch.Tensor:
    """Twelve columns of three skewed levels: most rows are unique, a few repeat by nature."""
    levels = torch.tensor([1.0, 2**-0.8, 3**-0.8])
    return torch.multinomial(levels, n * 12, replacement=True, generator=g).view(n, 12).float()


def _steps_and_evaluation(seed: int, copied: int = 0) -> tuple[list[list[float]], list[float]]:
    # Twenty steps of 32 training rows and 256 evaluation rows, disjoint draws of one table.
    g = torch.Generator().manual_seed(seed)
    rows = _discrete_rows(3256, g)
    train, evaluated = rows[:3000], rows[3000:].clone()
    evaluated[:copied] = train[:copied]
    steps = [_fingerprints(train[i * 32 : (i + 1) * 32]) for i in range(20)]
    return steps, _fingerprints(evaluated)


def _recurrence(steps: list[list[float]]) -> Recurrence:
    met = total = 0
    for i, own in enumerate(steps):
        others = distinct_fingerprints([v for j, s in enumerate(steps) if j != i for v in s])
        distinct = distinct_fingerprints(own)
        met += sum(near_fingerprint(others, v) for v in distinct)
        total += len(distinct)
    return Recurrence(met, total)


def test_rare_natural_repeats_keep_the_stated_error_rate() -> None:
    # Taken as a known rate, the few repeats among twenty training steps (about five) make
    # a binomial test at 1% alarm at 4-6%; Fisher's test carries their noise.
    alarms = known_rate_alarms = 0
    for seed in range(100):
        steps, evaluated = _steps_and_evaluation(seed)
        train = distinct_fingerprints([v for s in steps for v in s])
        evaluated = distinct_fingerprints(evaluated)
        recurrence = _recurrence(steps)
        shared, _, p = shared_beyond_chance(train, evaluated, recurrence)
        alarms += shared > 0 and p < ALPHA
        known = binomial_tail(len(evaluated), shared, max(recurrence.rate, 1 / 16 / len(evaluated)))
        known_rate_alarms += shared > 0 and known < ALPHA
    assert alarms <= 3, alarms
    assert known_rate_alarms > alarms


def test_a_few_percent_of_copied_rows_stand_out_from_natural_repeats() -> None:
    found = 0
    for seed in range(20):
        steps, evaluated = _steps_and_evaluation(seed, copied=20)
        train = distinct_fingerprints([v for s in steps for v in s])
        shared, _, p = shared_beyond_chance(
            train, distinct_fingerprints(evaluated), _recurrence(steps)
        )
        found += p < 1e-3
    assert found >= 18, found
