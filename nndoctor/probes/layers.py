"""Kinds of layer, one tuple of ``torch.nn`` classes each, matched with ``issubclass``.

Checks ask "is this module a ReLU?" through :func:`is_kind` on the class the Recording
kept, so a subclass (``class MyReLU(nn.ReLU)``, a Lazy or quantisation-aware layer) is
what its base is. Class names are kept in the Recording too, for messages only.
"""

from __future__ import annotations

from torch import nn

LayerKind = tuple[type[nn.Module], ...]

LINEAR: LayerKind = (nn.Linear,)
# A convolution's weight is [out, in / groups, *kernel]: the output width on axis 0.
CONV: LayerKind = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
# A transposed convolution's weight is [in, out / groups, *kernel]: axis 0 is the input.
CONV_TRANSPOSE: LayerKind = (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)
# Layers with a weight matrix (or kernel) that maps features to features.
WEIGHTED: LayerKind = LINEAR + (nn.Bilinear,) + CONV + CONV_TRANSPOSE
# Lookup tables: a step's gradient touches only the rows seen in the batch.
EMBEDDING: LayerKind = (nn.Embedding, nn.EmbeddingBag)
RECURRENT: LayerKind = (nn.RNN, nn.LSTM, nn.GRU, nn.RNNCell, nn.LSTMCell, nn.GRUCell)

RELU: LayerKind = (nn.ReLU, nn.ReLU6)
# Bounded activations whose gradient vanishes at the bounds. nn.ReLU6 inherits from
# nn.Hardtanh but is a ReLU in use: ask ``is_kind(cls, SATURATING, unless=RELU)``.
SATURATING: LayerKind = (nn.Sigmoid, nn.Tanh, nn.Hardtanh)

BATCH_NORM: LayerKind = (
    nn.BatchNorm1d,
    nn.BatchNorm2d,
    nn.BatchNorm3d,
    nn.SyncBatchNorm,
    nn.LazyBatchNorm1d,
    nn.LazyBatchNorm2d,
    nn.LazyBatchNorm3d,
)
INSTANCE_NORM: LayerKind = (
    nn.InstanceNorm1d,
    nn.InstanceNorm2d,
    nn.InstanceNorm3d,
    nn.LazyInstanceNorm1d,
    nn.LazyInstanceNorm2d,
    nn.LazyInstanceNorm3d,
)
# Layers that standardise their own input (so the raw input scale matters little, and a
# frozen affine part is usually on purpose).
NORM: LayerKind = (
    BATCH_NORM
    + INSTANCE_NORM
    + (nn.LayerNorm, nn.GroupNorm)
    + ((nn.RMSNorm,) if hasattr(nn, "RMSNorm") else ())  # torch >= 2.4
)
DROPOUT: LayerKind = (
    nn.Dropout,
    nn.Dropout1d,
    nn.Dropout2d,
    nn.Dropout3d,
    nn.AlphaDropout,
    nn.FeatureAlphaDropout,
)
# Layers whose forward differs between train() and eval().
MODE_DEPENDENT: LayerKind = BATCH_NORM + INSTANCE_NORM + DROPOUT + (nn.RReLU,)


def is_kind(cls: type | None, kind: LayerKind, *, unless: LayerKind = ()) -> bool:
    """Whether ``cls`` is a layer of ``kind`` (a subclass counts), and not of ``unless``."""
    return (
        isinstance(cls, type) and issubclass(cls, kind) and not (unless and issubclass(cls, unless))
    )


def torch_class(name: str) -> type[nn.Module] | None:
    """The ``torch.nn`` module class called ``name``, if there is one (a Recording built
    from class names alone, as in tests, still has classes to match kinds on)."""
    cls = getattr(nn, name, None)
    return cls if isinstance(cls, type) and issubclass(cls, nn.Module) else None
