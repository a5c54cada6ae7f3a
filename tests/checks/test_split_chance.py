"""Samples shared between splits are told from fingerprints that collide by chance: one
number per sample, thousands of them, match within float tolerance by chance alone."""

from __future__ import annotations

import torch

from nndoctor.checks.preprocessing.splits import shared_beyond_chance

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
