"""Two-sample tests the checks share, without a statistics library.

A statistic computed from a handful of samples is noisy: three held-out rows have a
sample standard deviation that lands anywhere between a tenth and twice the true one,
and a mean difference divided by such a standard deviation is far from normal. The
tests here use the exact small-sample distributions (Student's t for means, Fisher's F
for variances), through the regularised incomplete beta function, so that a check's
error rate is the one it states whatever the sample sizes.
"""

from __future__ import annotations

import math

import torch

# Lentz's continued fraction for the incomplete beta function (Numerical Recipes 6.4):
# iterations and the relative accuracy it stops at.
_BETA_ITERATIONS = 300
_BETA_EPS = 1e-14
_TINY = 1e-300


def regularized_beta(x: float, a: float, b: float) -> float:
    """I_x(a, b), the regularised incomplete beta function, for 0 <= x <= 1, a, b > 0."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = (
        math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    )
    # The continued fraction converges fast for x < (a + 1) / (a + b + 2); the symmetry
    # I_x(a, b) = 1 - I_{1-x}(b, a) covers the rest.
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _beta_fraction(x, a, b) / a
    return 1.0 - math.exp(log_front) * _beta_fraction(1.0 - x, b, a) / b


def _beta_fraction(x: float, a: float, b: float) -> float:
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > _TINY else _TINY)
    result = d
    for m in range(1, _BETA_ITERATIONS + 1):
        for numerator in (
            m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
            -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1)),
        ):
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > _TINY else _TINY)
            c = 1.0 + numerator / c
            c = c if abs(c) > _TINY else _TINY
            result *= d * c
        if abs(d * c - 1.0) < _BETA_EPS:
            break
    return result


def two_sided_level(z: float) -> float:
    """The two-sided error rate of a normal test at ``z`` standard errors (4: 6.3e-5)."""
    return math.erfc(z / math.sqrt(2.0))


def pooled_t_p(mean1: float, std1: float, n1: int, mean2: float, std2: float, n2: int) -> float:
    """Two-sided p of Student's two-sample t-test that two samples share their mean, with
    the variance pooled: the test of samples drawn from one distribution, whose variance
    the larger sample estimates well. (Welch's test, which estimates each variance apart,
    takes three held-out rows that happen to lie close together for a sample of its own
    tiny spread.) 1.0 when the samples hold fewer than three items together, or no spread."""
    df = n1 + n2 - 2
    if n1 < 1 or n2 < 1 or df < 1:
        return 1.0
    pooled = ((n1 - 1) * std1 * std1 + (n2 - 1) * std2 * std2) / df
    if pooled <= 0.0:
        return 1.0 if mean1 == mean2 else 0.0
    t = abs(mean1 - mean2) / math.sqrt(pooled * (1.0 / n1 + 1.0 / n2))
    return regularized_beta(df / (df + t * t), df / 2.0, 0.5)


def variance_ratio_p(
    std1: float,
    n1: int,
    std2: float,
    n2: int,
    kurtosis1: float = 3.0,
    kurtosis2: float = 3.0,
) -> float:
    """Two-sided p that two samples share their variance (1.0 when either sample has fewer
    than two items).

    For normal data (kurtosis 3 or less) this is the F-test. The F-test assumes normality
    and is far from its stated rate for heavy-tailed or discrete data: a 0/1 channel that
    is 1 in 3 % of the samples has kurtosis 33, and its sample variance varies eleven
    times as much as a normal one's. Then the larger of the F-test's p and that of
    Layard's test is taken: the log of the variance ratio is normal with variance
    ``(k - 1) (1/(n1 - 1) + 1/(n2 - 1))``, ``k`` the two samples' kurtosis averaged by
    their sizes, each about its own spread.

    One sample without spread and the other with some: all ``n`` items of the first are
    alike with probability at most ``(1 - 1/(k + 3))^n``, ``k`` the kurtosis of the other
    (no value of a distribution of kurtosis ``k`` is drawn with probability above
    ``1 - 1/(k + 3)``; met with equality by two-point distributions); that bound is the p."""
    if n1 < 2 or n2 < 2:
        return 1.0
    k1 = kurtosis1 if math.isfinite(kurtosis1) else 3.0
    k2 = kurtosis2 if math.isfinite(kurtosis2) else 3.0
    if std1 <= 0.0 or std2 <= 0.0:
        if std1 == std2:
            return 1.0
        # Only the sample with spread says how likely a run of equal values is.
        k, n = (k2, n1) if std1 <= 0.0 else (k1, n2)
        return (1.0 - 1.0 / (max(k, 1.0) + 3.0)) ** n
    d1, d2 = n2 - 1, n1 - 1
    f = (std2 * std2) / (std1 * std1)
    below = regularized_beta(d1 * f / (d1 * f + d2), d1 / 2.0, d2 / 2.0)
    p = min(1.0, 2.0 * min(below, 1.0 - below))
    # Each sample's kurtosis is taken about its own spread, so that a change of scale (what
    # the test looks for) does not inflate it (Shoemaker's form of Layard's test).
    kurtosis = (n1 * k1 + n2 * k2) / (n1 + n2)
    if kurtosis <= 3.0:
        return p
    z = abs(math.log(f)) / math.sqrt((kurtosis - 1.0) * (1.0 / d1 + 1.0 / d2))
    return max(p, two_sided_level(z))


# Up to this many values without ties, the trend test's p-value is exact.
_EXACT_TREND_MAX = 12


def falling_trend_p(values: list[float]) -> float:
    """One-sided p-value of Mann-Kendall's trend test that ``values`` fall over time.

    S counts the pairs (earlier, later) where the later value is lower minus those where
    it is higher; without a trend (values exchangeable) S has mean 0 and variance
    n(n-1)(2n+5)/18, less for ties. Up to ``_EXACT_TREND_MAX`` values without ties the
    p-value is exact (the share of the n! orders with at least as many falling pairs);
    otherwise the normal approximation with continuity correction is used (close from
    about eight values on; at five it gives 0.014 where the exact value is 1/120)."""
    n = len(values)
    if n < 3:
        return 1.0
    s = 0
    falling = 0
    for i in range(n):
        for j in range(i + 1, n):
            s += (values[j] < values[i]) - (values[j] > values[i])
            falling += values[j] < values[i]
    counts: dict[float, int] = {}
    for v in values:
        counts[v] = counts.get(v, 0) + 1
    if n <= _EXACT_TREND_MAX and len(counts) == n:
        orders = _orders_by_falling_pairs(n)
        return sum(orders[falling:]) / math.factorial(n)
    ties = sum(c * (c - 1) * (2 * c + 5) for c in counts.values() if c > 1)
    variance = (n * (n - 1) * (2 * n + 5) - ties) / 18.0
    if variance <= 0 or s <= 0:
        return 1.0
    z = (s - 1) / math.sqrt(variance)
    return 0.5 * math.erfc(z / math.sqrt(2.0))


def _orders_by_falling_pairs(n: int) -> list[int]:
    """How many of the n! orders of n distinct values have k falling pairs (inversions),
    for k = 0 .. n(n-1)/2: the Mahonian numbers, built one value at a time (the new last
    value falls below 0 to m - 1 of the m before it)."""
    counts = [1]
    for m in range(1, n):
        grown = [0] * (len(counts) + m)
        for k, c in enumerate(counts):
            for extra in range(m + 1):
                grown[k + extra] += c
        counts = grown
    return counts


def lower_than_p(later: list[float], earlier: list[float]) -> float:
    """One-sided p-value of the Mann-Whitney U test that ``later`` lies below ``earlier``.

    U counts the pairs (earlier, later) where the later value is lower (a tie counts a
    half); without a shift, U has mean n1·n2/2 and variance n1·n2·(n1 + n2 + 1)/12, less
    for ties. The normal approximation with continuity correction is used (close from
    about eight values a side)."""
    n1, n2 = len(later), len(earlier)
    if n1 < 2 or n2 < 2:
        return 1.0
    pooled = sorted(later + earlier)
    counts: dict[float, int] = {}
    for v in pooled:
        counts[v] = counts.get(v, 0) + 1
    u = sum((b > a) + 0.5 * (b == a) for a in later for b in earlier)
    n = n1 + n2
    ties = sum(c**3 - c for c in counts.values() if c > 1)
    variance = n1 * n2 / 12.0 * ((n + 1) - ties / (n * (n - 1)))
    excess = u - n1 * n2 / 2.0
    if variance <= 0 or excess <= 0:
        return 1.0
    z = (excess - 0.5) / math.sqrt(variance)
    return 0.5 * math.erfc(z / math.sqrt(2.0))


def mean_above_zero_p(values: list[float]) -> float:
    """One-sided p-value of Student's one-sample t-test that the mean of ``values`` is
    above zero (1 for fewer than two values or a mean at or below zero)."""
    n = len(values)
    if n < 2:
        return 1.0
    mean = sum(values) / n
    var = sum((v - mean) ** 2 for v in values) / (n - 1)
    if mean <= 0:
        return 1.0
    if var == 0:
        return 0.0
    return student_t_above(mean / math.sqrt(var / n), n - 1)


def mean_with_margin(values: list[float], alpha: float) -> tuple[float, float]:
    """The mean of ``values`` (two or more) and the half-width of its one-sided confidence
    bound at level ``alpha`` (Student's t): the lower bound is ``mean - margin``, the
    upper ``mean + margin``."""
    n = len(values)
    mean = sum(values) / n
    spread = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1) / n)
    return mean, student_t_quantile(alpha, n - 1) * spread


def student_t_above(t: float, dof: float) -> float:
    """P(T > t) for Student's t with ``dof`` degrees of freedom."""
    if math.isinf(t):
        return 0.0 if t > 0 else 1.0
    tail = 0.5 * regularized_beta(dof / (dof + t * t), dof / 2.0, 0.5)
    return tail if t >= 0 else 1.0 - tail


def student_t_quantile(p: float, dof: float) -> float:
    """The ``t`` with P(T > t) = ``p`` (0 < p < 0.5), by bisection."""
    low, high = 0.0, 1.0
    while student_t_above(high, dof) > p:
        high *= 2.0
    for _ in range(100):
        mid = 0.5 * (low + high)
        low, high = (mid, high) if student_t_above(mid, dof) > p else (low, mid)
    return 0.5 * (low + high)


# Series and continued fraction for the incomplete gamma function (Numerical Recipes 6.2).
_GAMMA_ITERATIONS = 500


def chi_square_above_p(x: float, dof: float) -> float:
    """P(X >= x) for X chi-square distributed with ``dof`` degrees of freedom: the
    regularised upper incomplete gamma function Q(dof / 2, x / 2)."""
    if x <= 0.0:
        return 1.0
    a, h = dof / 2.0, x / 2.0
    log_front = a * math.log(h) - h - math.lgamma(a)
    if h < a + 1.0:
        # P(a, h) by its series; Q = 1 - P.
        term = total = 1.0 / a
        for n in range(1, _GAMMA_ITERATIONS + 1):
            term *= h / (a + n)
            total += term
            if abs(term) < abs(total) * _BETA_EPS:
                break
        return max(0.0, 1.0 - total * math.exp(log_front))
    # Q(a, h) by Lentz's continued fraction.
    b = h + 1.0 - a
    c = 1.0 / _TINY
    d = 1.0 / b
    result = d
    for i in range(1, _GAMMA_ITERATIONS + 1):
        numerator = -i * (i - a)
        b += 2.0
        d = numerator * d + b
        d = 1.0 / (d if abs(d) > _TINY else _TINY)
        c = b + numerator / c
        c = c if abs(c) > _TINY else _TINY
        result *= d * c
        if abs(d * c - 1.0) < _BETA_EPS:
            break
    return min(1.0, result * math.exp(log_front))


def homogeneity_p(counts: list[list[float]]) -> float:
    """The chi-square test of homogeneity: p that the rows of a contingency table (groups
    by categories) share one distribution. Categories no row holds are left out; 1.0 for
    fewer than two rows or categories."""
    rows = [r for r in counts if sum(r) > 0]
    if len(rows) < 2:
        return 1.0
    columns = [j for j in range(len(rows[0])) if sum(r[j] for r in rows) > 0]
    if len(columns) < 2:
        return 1.0
    total = sum(r[j] for r in rows for j in columns)
    row_sums = [sum(r[j] for j in columns) for r in rows]
    col_sums = [sum(r[j] for r in rows) for j in columns]
    statistic = 0.0
    for r, rs in zip(rows, row_sums, strict=True):
        for j, cs in zip(columns, col_sums, strict=True):
            expected = rs * cs / total
            statistic += (r[j] - expected) ** 2 / expected
    return chi_square_above_p(statistic, (len(rows) - 1) * (len(columns) - 1))


def one_way_anova_p(groups: list[list[float]]) -> float:
    """The one-way analysis of variance: p that groups of values share one mean (the F-test
    of the spread between group means against the spread within them). 1.0 for fewer than
    two groups, too few values, or no spread within the groups."""
    groups = [g for g in groups if g]
    n = sum(len(g) for g in groups)
    k = len(groups)
    if k < 2 or n <= k:
        return 1.0
    grand = sum(sum(g) for g in groups) / n
    means = [sum(g) / len(g) for g in groups]
    between = sum(len(g) * (m - grand) ** 2 for g, m in zip(groups, means, strict=True)) / (k - 1)
    within = sum((v - m) ** 2 for g, m in zip(groups, means, strict=True) for v in g) / (n - k)
    if within <= 0.0:
        return 1.0 if between <= 0.0 else 0.0
    f = between / within
    d1, d2 = k - 1, n - k
    return regularized_beta(d2 / (d2 + d1 * f), d2 / 2.0, d1 / 2.0)


def binomial_tail(n: int, k: int, p: float) -> float:
    """P(X >= k) for X ~ Binomial(n, p)."""
    if k <= 0:
        return 1.0
    if p <= 0.0:
        return 0.0
    if p >= 1.0:
        return 1.0
    terms = (
        _log_choose(n, i) + i * math.log(p) + (n - i) * math.log1p(-p) for i in range(k, n + 1)
    )
    return min(1.0, sum(math.exp(x) for x in terms))


def _log_choose(n: int, k: int) -> float:
    return math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)


def proportion_excess_p(hits: int, trials: int, base_hits: int, base_trials: int) -> float:
    """One-sided p-value that ``hits`` of ``trials`` is a higher proportion than
    ``base_hits`` of ``base_trials`` (Fisher's exact test: given the hits of both, the
    first's count is hypergeometric when the proportions are equal).

    Exact at any count, and it carries the sampling noise of the base proportion, which a
    binomial test against that proportion taken as known ignores: a rate read from a
    handful of events is often far below the true one."""
    if hits <= 0:
        return 1.0
    total = hits + base_hits
    population = trials + base_trials
    if total > population or trials <= 0:
        return 1.0
    denominator = _log_choose(population, total)
    top = min(total, trials)
    terms = (
        _log_choose(trials, x) + _log_choose(base_trials, total - x) - denominator
        for x in range(hits, top + 1)
        if total - x <= base_trials
    )
    return min(1.0, sum(math.exp(v) for v in terms))


def binomial_upper_bound(n: int, k: int, alpha: float) -> float:
    """The one-sided (1 - alpha) Clopper-Pearson upper confidence bound on a proportion
    seen ``k`` times in ``n``: the largest p under which ``k`` or fewer successes still
    have probability at least ``alpha``. A true proportion above it yields so few
    successes at most ``alpha`` of the time."""
    if n <= 0:
        return 1.0
    if k >= n:
        return 1.0
    lo, hi = k / n, 1.0
    for _ in range(50):  # bisection: P(X <= k) = I_{1-p}(n - k, k + 1) falls as p grows
        mid = (lo + hi) / 2
        if regularized_beta(1.0 - mid, n - k, k + 1) > alpha:
            lo = mid
        else:
            hi = mid
    return hi


def neighbours_closer_p(
    values: torch.Tensor, permutations: int = 999, seed: int = 0, most: int = 4096
) -> float:
    """Whether the elements of ``values`` are arranged, not drawn independently: the
    smallest, over the axes of two or more elements, of a permutation test's p-value for
    "neighbours along this axis differ less than the same values shuffled do" (the mean
    absolute difference of adjacent elements), multiplied by the number of axes tested
    (Bonferroni). A table built by a formula (sines of positions, a ramp) is arranged; a
    tensor drawn element by element from one distribution is exchangeable, and this p-value
    is uniform for it. 1.0 for a tensor with no axis of two elements; 0.0 for a constant.
    A tensor of more than ``most`` elements is tested on its leading block of at most that
    many (its longest axis halved in turn), which bounds the test's cost."""
    x = values.detach().to(torch.float64).cpu()
    while x.numel() > most:
        d = max(range(x.dim()), key=lambda a: x.shape[a])
        x = x.narrow(d, 0, (x.shape[d] + 1) // 2)
    axes = [d for d in range(x.dim()) if x.shape[d] >= 2]
    if not axes:
        return 1.0
    flat = x.reshape(-1)
    if bool((flat == flat[0]).all()):
        return 0.0
    g = torch.Generator().manual_seed(seed)
    shuffles = [
        flat[torch.randperm(flat.numel(), generator=g)].reshape(x.shape)
        for _ in range(permutations)
    ]
    best = 1.0
    for d in axes:
        observed = float(x.diff(dim=d).abs().mean())
        as_close = sum(float(s.diff(dim=d).abs().mean()) <= observed for s in shuffles)
        best = min(best, (1 + as_close) / (1 + permutations))
    return min(1.0, best * len(axes))
