"""Device-side statistics for probes.

Every function here takes tensors on their own device and returns a small
tensor on that device. Nothing here calls ``.item()``, ``.cpu()``, ``.tolist()``
or branches on a tensor's value, so these are safe inside hooks of a CUDA model
(no host synchronisation). Decoding into Python numbers happens once per step,
in :mod:`nndoctor.probes.recording`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

# Layout of the vectors returned below; the recording decodes with these names.
ACTIVATION_FIELDS = ("mean", "std", "zero_frac", "sat_frac", "min", "max")
TENSOR_FIELDS = ("mean", "std", "min", "max", "zero_frac", "integral", "fp_sum", "fp_weighted")
LOGIT_FIELDS = ("min", "max", "rowsum_dev", "logsumexp_dev")

_FINGERPRINT_SAMPLES = 1 << 16

# Sigmoid/tanh outputs within this distance of an asymptote count as saturated.
SATURATION_MARGIN = 0.01


def _as_float(x: torch.Tensor) -> torch.Tensor:
    x = x.detach()
    if x.dtype in (torch.float16, torch.bfloat16) or not x.is_floating_point():
        return x.float()
    return x


def _moments(
    xf: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and std from two single-pass reductions with no temporary tensor (per layer, per
    step: the hot path).

    ``torch.var_mean`` is 20-40x slower than ``sum`` on the CPU (measured: 538 µs against
    33 µs on 65k elements); ``vector_norm`` reads the tensor once without materialising
    ``x * x``. The E[x²] - E[x]² form cancels when |mean| ≫ std (a constant 0.7 image batch
    gets a std near 1e-2), which activation statistics can afford, except for constancy
    itself: a tensor whose min equals its max has std 0.
    """
    n = xf.numel()
    mean = xf.sum() / n
    mean_sq = torch.linalg.vector_norm(xf).square() / n
    std = (mean_sq - mean.square()).clamp_min(0).sqrt()
    return mean, torch.where(lo == hi, torch.zeros_like(std), std)


def _centred_moments(
    xf: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and std that stay exact when |mean| ≫ std (a near-constant batch of images):
    the tensor is centred on the midpoint of its range before the one-pass form, so the
    cancellation is bounded by the spread itself (|mean - shift| ≤ (max - min) / 2). One
    temporary, affordable for the batch tensors (a couple per step), not per layer."""
    n = xf.numel()
    shift = (lo + hi) / 2
    centred = torch.linalg.vector_norm(xf - shift).square() / n
    offset = xf.sum() / n - shift
    std = (centred - offset.square()).clamp_min(0).sqrt()
    return offset + shift, torch.where(lo == hi, torch.zeros_like(std), std)


def activation_stats(x: torch.Tensor, saturating: str | None = None) -> torch.Tensor:
    """[mean, std, zero fraction, saturated fraction, min, max] of an activation.

    A non-finite value anywhere makes mean/std non-finite, which is how module-level
    NaN tracing sees it without a separate kernel.
    """
    xf = _as_float(x)
    if xf.numel() == 0:
        return torch.zeros(len(ACTIVATION_FIELDS), device=x.device)
    lo, hi = torch.aminmax(xf)
    mean, std = _moments(xf, lo, hi)
    zero_frac = 1.0 - torch.count_nonzero(xf) / xf.numel()
    if saturating == "sigmoid":
        sat = ((xf < SATURATION_MARGIN) | (xf > 1 - SATURATION_MARGIN)).float().mean()
    elif saturating == "tanh":
        sat = (xf.abs() > 1 - SATURATION_MARGIN).float().mean()
    else:
        sat = torch.zeros((), device=x.device)
    return torch.stack([mean, std, zero_frac, sat, lo, hi]).float()


def tensor_stats(x: torch.Tensor) -> torch.Tensor:
    """Statistics of a batch tensor: moments, range, zero share, integrality, fingerprint."""
    xf = _as_float(x)
    if xf.numel() == 0:
        return torch.zeros(len(TENSOR_FIELDS), device=x.device)
    lo, hi = torch.aminmax(xf)
    mean, std = _centred_moments(xf, lo, hi)
    zero_frac = 1.0 - torch.count_nonzero(xf) / xf.numel()
    integral = (xf == xf.round()).all().float()
    fp = _sampled_sums(xf.reshape(-1))
    return torch.cat([torch.stack([mean, std, lo, hi, zero_frac, integral]), fp]).float()


def _sampled_sums(flat: torch.Tensor) -> torch.Tensor:
    """The fingerprint of a flat tensor: the sum and the position-weighted sum of up to
    ``_FINGERPRINT_SAMPLES`` evenly strided elements."""
    stride = max(1, flat.numel() // _FINGERPRINT_SAMPLES)
    sample = flat[::stride]
    # Position weights make the fingerprint order-sensitive (a permuted batch differs).
    w = torch.linspace(0.5, 1.5, sample.numel(), device=sample.device)
    return torch.stack([sample.sum(), (sample * w).sum()])


def fingerprint(x: torch.Tensor) -> torch.Tensor:
    """Element count and the two fingerprint values of :func:`tensor_stats` (a sum and a
    position-weighted sum over sampled elements), on the device: enough to tell whether
    one tensor argument repeats another."""
    xf = _as_float(x).reshape(-1)
    count = torch.tensor([float(xf.numel())], device=x.device)
    return torch.cat([count, _sampled_sums(xf)]).float()


def channel_stats(x: torch.Tensor, max_channels: int = 4096) -> torch.Tensor | None:
    """Per-channel (axis 1) mean, std and kurtosis (the fourth central moment over the
    squared variance: 3 for normal data, about 1/p for a 0/1 channel that is 1 with a small
    probability p; NaN for a constant channel), shape [3, C]; None when it does not apply."""
    if x.dim() < 2 or x.shape[1] > max_channels or x.numel() == 0:
        return None
    xf = _as_float(x)
    dims = [0, *range(2, xf.dim())]
    var, mean = torch.var_mean(xf, dim=dims, correction=0)
    # One temporary the input's size, raised to the fourth power in place.
    centred = xf - mean.reshape([1, -1] + [1] * (xf.dim() - 2))
    fourth = centred.square_().square_().mean(dim=dims)
    return torch.stack([mean, var.sqrt(), fourth / var.square()]).float()


def class_counts(target: torch.Tensor, num_classes: int, ignore_index: int = -100) -> torch.Tensor:
    """Counts of integer class targets, without a data-dependent output size (no sync).

    Targets outside ``[0, num_classes)`` and targets equal to the loss's ``ignore_index``
    (padding, often a valid index such as 0) count for no class: the loss never sees them.
    """
    t = target.detach().reshape(-1).long()
    valid = (t >= 0) & (t < num_classes) & (t != ignore_index)
    counts = torch.zeros(num_classes, device=target.device)
    return counts.scatter_add_(0, t.clamp(0, num_classes - 1), valid.to(counts.dtype))


def next_position_match(target: torch.Tensor, source: torch.Tensor) -> torch.Tensor:
    """The largest share, over the axes of ``source``, of positions where ``target`` holds
    the source's value one position further along that axis (1 for next-token targets
    ``y = x`` shifted by one; near chance for targets unrelated to the inputs). A target
    shorter than the source along one axis (an autoregressive model whose loss leaves out
    its first receptive field, ``targets[:, rf:]``) is matched there from the start and
    from the end of the source, one position on. NaN when the two cannot be aligned."""
    if source.dim() == 0:
        return _nan_share(source)
    if target.numel() == source.numel():
        t = target.detach().reshape(source.shape)
        shares = [_shifted_share(t, source, d, 1) for d, n in enumerate(source.shape) if n >= 2]
    else:
        t = _unflattened(target.detach(), source)
        d = _shorter_axis(t, source)
        if d is None:
            return _nan_share(source)
        # Labels shifted inside the model line up with its outputs from the start.
        offsets = {1} if t.dim() != target.dim() else {1, source.shape[d] - t.shape[d] + 1}
        shares = [_shifted_share(t, source, d, k) for k in sorted(offsets)]
    if not shares:
        return _nan_share(source)
    return torch.stack(shares).amax().reshape(1)


def two_positions_match(
    target: torch.Tensor, source: torch.Tensor, ignore_index: int = -100
) -> torch.Tensor:
    """The largest share, over the axes of ``source``, of ``target``'s scored positions
    (not ``ignore_index``) that hold the source's value two positions further along that
    axis: 1 for next-token labels shifted twice (once where the batch is built, once more
    inside the model). A target shorter than the source along one axis is matched from
    the start and from the end of the source. NaN when the two cannot be aligned."""
    if source.dim() == 0:
        return _nan_share(source)
    if target.numel() == source.numel():
        t = target.detach().reshape(source.shape)
        cases = [(t, d, 2) for d, n in enumerate(source.shape) if n >= 3]
    else:
        t = _unflattened(target.detach(), source)
        d = _shorter_axis(t, source)
        if d is None:
            return _nan_share(source)
        offsets = {2} if t.dim() != target.dim() else {2, source.shape[d] - t.shape[d] + 2}
        cases = [(t, d, k) for k in sorted(offsets)]
    shares = []
    for t, d, k in cases:
        n = min(t.shape[d], source.shape[d] - k)
        if n <= 0:
            continue
        head = t.narrow(d, 0, n)
        scored = head != ignore_index
        hits = ((head == source.narrow(d, k, n)) & scored).sum()
        count = scored.sum()
        shares.append(torch.where(count > 0, hits / count.clamp(min=1), math.nan))
    if not shares:
        return _nan_share(source)
    return torch.stack(shares).float().nan_to_num(-1.0).amax().reshape(1)


def same_position_match(
    target: torch.Tensor, source: torch.Tensor, ignore_index: int = -100
) -> torch.Tensor:
    """The share of ``target``'s scored positions (not ``ignore_index``) that hold the
    source's value at the same position: 1 for targets that are the model's own input
    (next-token targets left unshifted); the rate of repeated neighbours for targets one
    position on. A target shorter than the source along one axis (a loss that leaves out
    the first receptive field) is matched against the source's start and its end. NaN when
    the two cannot be aligned or no position is scored."""
    if source.dim() == 0:
        return _nan_share(source)
    if target.numel() == source.numel():
        t = target.detach().reshape(source.shape)
        pairs = [(t, source)]
    else:
        t = _unflattened(target.detach(), source)
        d = _shorter_axis(t, source)
        if d is None:
            return _nan_share(source)
        n = t.shape[d]
        starts = {0} if t.dim() != target.dim() else {0, source.shape[d] - n}
        pairs = [(t, source.narrow(d, k, n)) for k in sorted(starts)]
    shares = []
    for t, s in pairs:
        scored = t != ignore_index
        hits = ((t == s) & scored).sum()
        count = scored.sum()
        shares.append(torch.where(count > 0, hits / count.clamp(min=1), math.nan))
    return torch.stack(shares).amax().reshape(1).float()


def target_columns_in_input(
    target: torch.Tensor, source: torch.Tensor, max_elements: int = 1 << 24
) -> torch.Tensor:
    """For per-sample targets smaller than the per-sample input (batch first, or a
    sequence-first input): per
    target column, the largest share of samples for which one input column holds exactly
    its value; the smallest of those over the target's columns. 1 when every target column
    is a copy of an input feature (the last value of a window, a target column left among
    the features). NaN when not comparable, or when a target column is constant (a
    constant matches a constant feature by nature)."""
    n = target.shape[0] if target.dim() else 0
    if source.dim() >= 2 and source.shape[0] != n and source.shape[1] == n:
        source = source.movedim(1, 0)  # sequence-first: (seq_len, batch, ...)
    if n < 2 or source.dim() < 2 or source.shape[0] != n:
        return _nan_share(source)
    t = target.detach().reshape(n, -1)
    s = source.detach().reshape(n, -1)
    if t.shape[1] >= s.shape[1] or n * t.shape[1] * s.shape[1] > max_elements:
        return _nan_share(source)
    t = t.to(s.dtype)
    spread = (t.amax(0) > t.amin(0)).all()
    share = (s.unsqueeze(2) == t.unsqueeze(1)).float().mean(0)  # (input columns, target columns)
    least = share.amax(0).amin()
    return torch.where(spread, least, math.nan).reshape(1).float()


def _nan_share(source: torch.Tensor) -> torch.Tensor:
    return torch.full((1,), math.nan, device=source.device)


def _unflattened(target: torch.Tensor, source: torch.Tensor) -> torch.Tensor:
    """``target`` in ``source``'s layout with its last axis one position shorter, where it is
    that flattened: the labels a causal model shifts inside ``forward`` before its loss
    (``labels[:, 1:].reshape(-1)`` against ``input_ids`` of shape ``(batch, length)``)."""
    if target.dim() >= source.dim() or source.dim() < 2 or source.shape[-1] < 3:
        return target
    shorter = (*source.shape[:-1], source.shape[-1] - 1)
    return target.reshape(shorter) if target.numel() == math.prod(shorter) else target


def _shorter_axis(target: torch.Tensor, source: torch.Tensor) -> int | None:
    """The one axis along which ``target`` is shorter than ``source``, all others equal."""
    if target.dim() != source.dim():
        return None
    differ = [d for d in range(source.dim()) if target.shape[d] != source.shape[d]]
    if len(differ) != 1 or not 2 <= target.shape[differ[0]] < source.shape[differ[0]]:
        return None
    return differ[0]


def _shifted_share(t: torch.Tensor, source: torch.Tensor, d: int, k: int) -> torch.Tensor:
    """Share of ``t``'s leading positions along ``d`` equal to ``source`` from position ``k``."""
    n = min(t.shape[d], source.shape[d] - k)
    return (t.narrow(d, 0, n) == source.narrow(d, k, n)).float().mean()


def sortedness(target: torch.Tensor) -> torch.Tensor:
    """Share of adjacent pairs that are non-decreasing, for a 1-D target batch."""
    t = target.detach().reshape(target.shape[0], -1)[:, 0].float()
    if t.numel() < 2:
        return torch.ones((), device=target.device)
    return (t[1:] >= t[:-1]).float().mean()


def positive_farther(
    anchor: torch.Tensor,
    positive: torch.Tensor,
    negative: torch.Tensor,
    distance: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
) -> torch.Tensor:
    """How many triplets have their positive strictly farther from the anchor than their
    negative (computed on the device, read later)."""
    with torch.no_grad():
        return (distance(anchor, positive) > distance(anchor, negative)).sum()


def ctc_facts(
    log_probs: torch.Tensor,
    targets: torch.Tensor,
    input_lengths: torch.Tensor,
    target_lengths: torch.Tensor,
    blank: int,
) -> torch.Tensor:
    """What makes a CTC loss call ill-posed, as four numbers (computed on the device, read
    later): target labels equal to the blank, target labels outside ``[0, C)``, samples
    whose input is shorter than any alignment of their target needs (its length plus one
    blank between each pair of equal neighbours), and the largest distance of a frame's
    ``logsumexp`` over the classes from 0 (0 for log-probabilities over the last axis).

    ``log_probs`` is ``(T, N, C)`` or ``(T, C)``; ``targets`` ``(N, S)`` padded or the
    labels of the whole batch concatenated (1-D)."""
    if log_probs.dim() == 2:
        log_probs = log_probs.unsqueeze(1)
    frames, n, classes = log_probs.shape
    device = log_probs.device
    input_lengths = input_lengths.to(device).reshape(-1).long()
    target_lengths = target_lengths.to(device).reshape(-1).long()
    targets = targets.to(device).long()
    if targets.dim() == 2:
        positions = torch.arange(targets.shape[1], device=device)
        valid = positions.unsqueeze(0) < target_lengths.unsqueeze(1)
        repeats = ((targets[:, 1:] == targets[:, :-1]) & valid[:, 1:]).sum(dim=1)
    else:
        targets = targets.reshape(-1)
        valid = torch.ones_like(targets, dtype=torch.bool)
        owner = torch.repeat_interleave(
            torch.arange(n, device=device), target_lengths, output_size=targets.numel()
        )
        same = (targets[1:] == targets[:-1]) & (owner[1:] == owner[:-1])
        repeats = torch.zeros(n, dtype=torch.long, device=device).index_add_(
            0, owner[1:], same.long()
        )
    blanks = ((targets == blank) & valid).sum()
    outside = (((targets < 0) | (targets >= classes)) & valid).sum()
    too_short = (input_lengths < target_lengths + repeats).sum()
    frame_valid = torch.arange(frames, device=device).unsqueeze(1) < input_lengths.unsqueeze(0)
    total = torch.logsumexp(log_probs.detach().float(), dim=-1).abs()
    off = torch.where(frame_valid, total, torch.zeros_like(total)).amax()
    return torch.stack([blanks.float(), outside.float(), too_short.float(), off.float()])


def logit_stats(x: torch.Tensor, class_dim: int = 1) -> torch.Tensor:
    """[min, max, max |row sum - 1|, max |logsumexp|] of a loss input along its class axis.

    Rows that sum to one look like probabilities; rows whose logsumexp is zero look
    like log-probabilities.
    """
    xf = _as_float(x)
    if xf.numel() == 0:
        return torch.zeros(len(LOGIT_FIELDS), device=x.device)
    lo, hi = torch.aminmax(xf)
    if xf.dim() > class_dim:
        rowsum = (xf.sum(class_dim) - 1).abs().amax()
        lse = torch.logsumexp(xf, class_dim).abs().amax()
    else:
        rowsum = torch.full((), float("inf"), device=x.device)
        lse = torch.full((), float("inf"), device=x.device)
    return torch.stack([lo, hi, rowsum, lse]).float()


def param_norms(tensors: list[torch.Tensor]) -> torch.Tensor:
    """L2 norm of each tensor in one fused call, stacked into one vector.

    A sparse tensor (the gradient of an ``nn.Embedding(sparse=True)``) has no fused norm:
    it is made dense first, which adds up the rows its repeated indices hold separately
    (the norm of its values alone would miss that) without the host sync of coalescing."""
    if not tensors:
        return torch.zeros(0)
    dense = [t.detach().to_dense() if t.is_sparse else t.detach() for t in tensors]
    return torch.stack(torch._foreach_norm(dense)).float()


def constant_prior_loss(
    fn: str, inp: torch.Tensor, target: Any, kwargs: dict[str, Any]
) -> torch.Tensor | None:
    """The recognised loss ``fn`` of the best constant prediction for this batch, fitted to
    the batch's own targets (so no constant does better on it): the entropy of the class
    frequencies for a class-index loss (weighted by the class weights, as the loss weighs
    them; with label smoothing ``e`` over ``K`` classes, of the smoothed frequencies
    ``(1 - e) f + e / K``, the targets the loss then compares with), the cross-entropy of each output's best constant probability for a binary one
    (its mean, moved by ``pos_weight``), each output's variance for MSE and its mean
    absolute deviation from the median for L1. A 0-d tensor on the targets' device; None
    for a setting whose best constant is not written here (sample weights of a binary
    loss, label smoothing beside class weights or on probability targets, a reduction
    other than the mean) or targets of another layout."""
    if not isinstance(target, torch.Tensor) or target.numel() == 0 or inp.dim() == 0:
        return None
    if kwargs.get("reduction", "mean") != "mean":
        return None
    smoothing = float(kwargs.get("label_smoothing", 0.0) or 0.0)
    weight = kwargs.get("weight")
    if smoothing and (fn != "cross_entropy" or weight is not None):
        return None
    if fn == "cross_entropy" and target.is_floating_point() and target.shape == inp.shape:
        # Class probabilities as targets: the best constant is their mean distribution.
        if weight is not None or inp.dim() < 2:
            return None
        q = target.detach().float().transpose(0, 1).reshape(inp.shape[1], -1).mean(1)
        q = (1 - smoothing) * q + smoothing / inp.shape[1]
        return -torch.xlogy(q, q).sum()
    if fn in ("cross_entropy", "nll_loss"):
        if target.is_floating_point() or inp.dim() < 2:
            return None
        classes = inp.shape[1]
        ignore = kwargs.get("ignore_index", -100)
        flat = target.detach().reshape(-1)
        valid = (flat >= 0) & (flat < classes) & (flat != ignore)
        counts = torch.zeros(classes, device=flat.device, dtype=torch.float32)
        counts.scatter_add_(0, flat.clamp(0, classes - 1).long(), valid.float())
        if isinstance(weight, torch.Tensor) and weight.numel() == classes:
            # The weighted mean of -log p[y] is smallest at p proportional to w_k n_k.
            counts = counts * weight.detach().float().reshape(-1).to(counts.device)
        elif weight is not None:
            return None
        p = counts / counts.sum().clamp_min(1e-12)
        # -sum_k q_k log c_k over the smoothed targets q is smallest at c = q.
        p = (1 - smoothing) * p + smoothing / classes
        return -torch.xlogy(p, p).sum()
    if weight is not None:
        return None
    if fn not in (
        "binary_cross_entropy",
        "binary_cross_entropy_with_logits",
        "mse_loss",
        "l1_loss",
    ):
        return None
    if not target.is_floating_point() or target.numel() != inp.numel():
        return None
    y = _as_float(target).reshape(inp.shape)
    if y.dim() == 0 or y.shape[0] < 2:
        return None
    if fn == "mse_loss":
        return (y - y.mean(0, keepdim=True)).pow(2).mean()
    if fn == "l1_loss":
        return (y - y.median(0, keepdim=True).values).abs().mean()
    mean = y.mean(0, keepdim=True)
    pos_weight = kwargs.get("pos_weight")
    if fn == "binary_cross_entropy_with_logits" and isinstance(pos_weight, torch.Tensor):
        # -[w y log q + (1 - y) log(1 - q)] is smallest at q = w m / (w m + 1 - m).
        w = pos_weight.detach().float().to(y.device)
        q = (w * mean / (w * mean + 1 - mean)).clamp(1e-7, 1 - 1e-7)
        return -(w * y * q.log() + (1 - y) * (-q).log1p()).mean()
    if pos_weight is not None:
        return None
    q = mean.clamp(1e-7, 1 - 1e-7)
    return -(y * q.log() + (1 - y) * (-q).log1p()).mean()


def holds_ids(t: torch.Tensor) -> bool:
    """Whether ``t`` holds ids or indices (an integer tensor other than bool or uint8,
    which hold masks and pixels)."""
    return not t.is_floating_point() and t.dtype not in (torch.bool, torch.uint8)
