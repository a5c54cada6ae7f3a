"""The significance tests keep their stated error rates: the two-sample variance test on
discrete and heavy-tailed data, the confidence bound of the pairing's equivalence test."""

from __future__ import annotations

import math

import pytest
import torch

from nndoctor.checks.preprocessing.inputs import tensor_channel_stats
from nndoctor.checks.significance import (
    binomial_upper_bound,
    chi_square_above_p,
    lower_than_p,
    mean_with_margin,
    neighbours_closer_p,
    student_t_above,
    student_t_quantile,
    two_sided_level,
    variance_ratio_p,
)

LEVEL = two_sided_level(4.0)  # the split check's level


def _p(a: torch.Tensor, b: torch.Tensor, *, with_kurtosis: bool = True) -> float:
    sa, sb = tensor_channel_stats(a[:, None]), tensor_channel_stats(b[:, None])
    k1, k2 = (sa.kurtosis[0], sb.kurtosis[0]) if with_kurtosis else (3.0, 3.0)
    return variance_ratio_p(sa.std[0], sa.n, sb.std[0], sb.n, k1, k2)


def test_a_sparse_zero_one_channel_of_one_distribution_is_no_change() -> None:
    # A grid world's one-hot state: a cell is occupied in 3 % of the samples. Two samples of
    # it differ in std by more than the F-test allows, often; with the kurtosis, never.
    g = torch.Generator().manual_seed(0)
    plain = kurtosis = 0
    for _ in range(300):
        a = (torch.rand(320, generator=g) < 0.03).double()
        b = (torch.rand(48, generator=g) < 0.03).double()
        if a.std() == 0 or b.std() == 0:
            continue
        plain += _p(a, b, with_kurtosis=False) < LEVEL
        kurtosis += _p(a, b) < LEVEL
    assert plain > 0  # the F-test alone alarms on these
    assert kurtosis == 0


def test_a_rescaled_heavy_tailed_channel_is_still_found() -> None:
    torch.manual_seed(1)
    laplace = torch.distributions.Laplace(0.0, 1.0)
    a = laplace.sample((2000,)).double()
    assert tensor_channel_stats(a[:, None]).kurtosis[0] > 4.5  # Laplace: 6
    assert _p(a, 4.0 * laplace.sample((500,)).double()) < LEVEL


def test_two_samples_of_one_heavy_tailed_channel_are_no_change() -> None:
    torch.manual_seed(3)
    t3 = torch.distributions.StudentT(3.0)  # a fat-tailed feature (returns, counts)
    alarms = sum(
        _p(t3.sample((400,)).double(), t3.sample((100,)).double()) < LEVEL for _ in range(300)
    )
    assert alarms == 0


def test_normal_data_keep_the_f_test() -> None:
    g = torch.Generator().manual_seed(2)
    a, b = torch.randn(400, generator=g).double(), 1.5 * torch.randn(400, generator=g).double()
    assert _p(a, b) == _p(a, b, with_kurtosis=False)


def test_a_run_of_zeros_in_a_sparse_channel_is_likely_and_in_a_normal_one_not() -> None:
    # 16 evaluation samples with the cell empty: 0.97^16 = 0.61 for a 3 % cell.
    sparse = variance_ratio_p(0.17, 320, 0.0, 16, kurtosis1=1 / (0.03 * 0.97) - 3)
    assert sparse > 0.5
    # 200 equal values of a normal channel are no sampling noise.
    assert variance_ratio_p(1.0, 320, 0.0, 200, kurtosis1=3.0) < LEVEL


def test_chi_square_tail_probabilities_match_the_tables() -> None:
    # Upper quantiles from the standard tables: (x, degrees of freedom, P(X >= x)).
    for x, dof, p in [(3.841, 1, 0.05), (30.144, 19, 0.05), (43.820, 19, 0.001), (9.488, 4, 0.05)]:
        assert abs(chi_square_above_p(x, dof) - p) < 2e-4 * max(1.0, p / 1e-3)
    assert chi_square_above_p(0.0, 5) == 1.0
    # Both branches of the computation agree where they meet (x / 2 = dof / 2 + 1).
    below, above = chi_square_above_p(21.999, 20), chi_square_above_p(22.001, 20)
    assert 0 < below - above < 1e-3
    # The mean of many chi-square draws' tail probabilities is 1/2 (they are uniform).
    g = torch.Generator().manual_seed(0)
    draws = torch.randn(4000, 7, generator=g).pow(2).sum(1)
    mean = sum(chi_square_above_p(float(x), 7) for x in draws) / len(draws)
    assert abs(mean - 0.5) < 0.02


def test_the_binomial_upper_bound_matches_clopper_pearson() -> None:
    # No success in n: the bound solves (1 - p)^n = alpha.
    assert math.isclose(binomial_upper_bound(10, 0, 0.05), 1 - 0.05**0.1, rel_tol=1e-6)
    assert binomial_upper_bound(20, 20, 0.01) == 1.0
    # Half of 100 at 95%: 0.586 (tables).
    assert abs(binomial_upper_bound(100, 50, 0.05) - 0.5864) < 1e-3


def test_the_binomial_upper_bound_covers_the_true_rate_as_often_as_stated() -> None:
    g = torch.Generator().manual_seed(0)
    p, n, alpha = 0.37, 512, 0.05
    draws = (torch.rand(2000, n, generator=g) < p).sum(1).tolist()
    below = sum(binomial_upper_bound(n, int(k), alpha) < p for k in draws)
    assert below <= 2000 * alpha * 1.3  # exact bound: at most alpha, a little less when discrete
    assert below >= 2000 * alpha * 0.5


def test_student_t_tail_and_quantile_match_the_tables() -> None:
    assert abs(student_t_quantile(0.01, 18) - 2.552) < 1e-3
    assert abs(student_t_quantile(0.025, 10) - 2.228) < 1e-3
    assert math.isclose(student_t_above(0.0, 5), 0.5)
    assert math.isclose(student_t_above(-2.228, 10), 0.975, rel_tol=1e-3)


def test_the_mean_s_margin_is_student_t_times_its_standard_error() -> None:
    mean, margin = mean_with_margin([1.0, 2.0, 3.0], 0.05)
    assert mean == 2.0
    assert margin == pytest.approx(2.919986 * (1 / 3) ** 0.5, rel=1e-4)  # t(0.95, 2) = 2.92


def test_mann_whitney_matches_the_textbook_and_its_level_holds() -> None:
    # Every later value below every earlier one, 10 a side: U = 100, z = (50 - 0.5) / 13.23.
    later, earlier = [float(i) for i in range(10)], [float(i) for i in range(10, 20)]
    assert lower_than_p(later, earlier) == pytest.approx(
        0.5 * math.erfc(49.5 / 13.2288 / 2**0.5), rel=1e-3
    )
    assert lower_than_p(earlier, later) == 1.0
    # Exchangeable samples: called lower at 5% about 5% of the time.
    g = torch.Generator().manual_seed(0)
    hits = sum(
        lower_than_p(torch.randn(30, generator=g).tolist(), torch.randn(30, generator=g).tolist())
        < 0.05
        for _ in range(2000)
    )
    assert 0.03 < hits / 2000 < 0.07
    # All tied: no evidence either way.
    assert lower_than_p([1.0] * 8, [1.0] * 8) == 1.0


def test_arranged_values_are_told_from_a_random_draw() -> None:
    g = torch.Generator().manual_seed(0)
    draws = [neighbours_closer_p(torch.randn(8, 8, generator=g), seed=k) for k in range(100)]
    # Exchangeable values: the p-value is uniform, so about 1 in 100 falls at 0.01 or below.
    assert sum(p <= 0.01 for p in draws) <= 5
    assert neighbours_closer_p(torch.linspace(-1, 1, 64).reshape(8, 8)) <= 0.01
    assert neighbours_closer_p(torch.zeros(4, 4)) == 0.0
    assert neighbours_closer_p(torch.tensor(3.0)) == 1.0
