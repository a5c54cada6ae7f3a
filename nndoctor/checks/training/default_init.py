"""Whether a layer's weights are still exactly what PyTorch's constructor drew.

``nn.Linear``, the convolutions and the recurrent layers draw every weight and bias from
a uniform distribution on ``[-b, b]`` with ``b = 1/sqrt(fan_in)`` (``1/sqrt(hidden_size)``
for the recurrent layers); ``nn.Embedding`` draws from N(0, 1). A tensor that was trained
or loaded from a checkpoint leaves that distribution: values cross ``b``, the histogram is
no longer flat. A Kolmogorov–Smirnov test against the constructor's distribution tells
the two apart; at level ``alpha`` a freshly drawn tensor is called trained with
probability ``alpha`` (the test's stated error rate), and trained weights of any size pass
for fresh ones only when training moved them by less than the test can resolve.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from nndoctor.probes.layers import CONV, CONV_TRANSPOSE, LINEAR, RECURRENT

# The layers whose constructor draws weight and bias uniform on [-1/sqrt(fan_in), ...].
UNIFORM_LAYERS = LINEAR + CONV + CONV_TRANSPOSE
MIN_VALUES = 64  # fewer values say too little either way


def at_default_init(module: nn.Module, alpha: float) -> bool | None:
    """True when every parameter of ``module`` passes for the constructor's own draw, False
    when one does not, None when the module has no known default initialisation."""
    bound: float | None = None
    if isinstance(module, UNIFORM_LAYERS):
        weight = module.weight
        fan_in = weight.shape[1] * math.prod(weight.shape[2:])  # as torch.nn.init computes it
        bound = 1.0 / math.sqrt(fan_in) if fan_in else None
    elif isinstance(module, RECURRENT):
        bound = 1.0 / math.sqrt(module.hidden_size)
    elif isinstance(module, nn.Embedding):
        return _fresh(module.weight.detach().flatten(), _normal_cdf, alpha)
    if bound is None:
        return None
    values = torch.cat([p.detach().flatten() for p in module.parameters(recurse=False)])
    # nn.Linear draws its bias with the same bound; a bias of zeros (a common re-init) is
    # not the default draw and makes the test say "not fresh", which is the cautious side.
    return _fresh(values, lambda v: _uniform_cdf(v, bound), alpha)


def _fresh(values: torch.Tensor, cdf: object, alpha: float) -> bool | None:
    v = values.double().cpu()
    if v.numel() < MIN_VALUES or not torch.isfinite(v).all():
        return None
    return ks_pvalue(v, cdf) > alpha


def ks_pvalue(values: torch.Tensor, cdf: object) -> float:
    """Asymptotic p-value of the one-sample Kolmogorov–Smirnov test of ``values`` against
    the distribution function ``cdf`` (a callable on a tensor)."""
    x, _ = values.sort()
    n = x.numel()
    f = cdf(x)  # type: ignore[operator]
    ranks = torch.arange(1, n + 1, dtype=torch.float64)
    d = float(torch.maximum(ranks / n - f, f - (ranks - 1) / n).max())
    lam = (math.sqrt(n) + 0.12 + 0.11 / math.sqrt(n)) * d
    if lam < 0.3:
        return 1.0
    p = 2.0 * sum((-1) ** (k - 1) * math.exp(-2.0 * k * k * lam * lam) for k in range(1, 101))
    return min(max(p, 0.0), 1.0)


def _uniform_cdf(v: torch.Tensor, bound: float) -> torch.Tensor:
    return ((v + bound) / (2 * bound)).clamp(0.0, 1.0)


def _normal_cdf(v: torch.Tensor) -> torch.Tensor:
    return 0.5 * (1.0 + torch.erf(v / math.sqrt(2.0)))
