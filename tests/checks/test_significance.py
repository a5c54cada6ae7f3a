"""The two-sample variance test keeps its stated error rate on discrete and heavy-tailed data."""

from __future__ import annotations

import torch

from nndoctor.checks.preprocessing.inputs import tensor_channel_stats
from nndoctor.checks.significance import two_sided_level, variance_ratio_p

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
