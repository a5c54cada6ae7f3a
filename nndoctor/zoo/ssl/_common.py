"""Pieces every self-supervised subject shares: the conv trunk, the batch stream, the train loop.

The trunk is a small AlexNet-like stack of four named stages (``conv1`` …
``conv4``) so the linear-probe protocol can read features at several depths,
as in the evaluation tables of Zhang et al. 2016/2017 and Noroozi & Favaro 2016
(there on AlexNet's conv1–conv5; here on a trunk small enough for two CPU cores).

A pretext task is a *batch builder* ``make_batch(images, generator) -> batch``
over standardised scenes (``nndoctor.zoo.data``): :class:`PretextBatches`
turns it into a deterministic, re-iterable stream (same seed → same batches),
and :func:`train_subject` is the plain training loop the ``train()`` of every
family uses.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import Tensor, nn

from nndoctor.subject import OptimizerSpec, Subject, move_to
from nndoctor.zoo.data import DEFAULT_SIZE, make_scenes

# -- configuration --------------------------------------------------------------------

STAGES = ("conv1", "conv2", "conv3", "conv4")
WIDTHS = (32, 64, 96, 128)  # channels of conv1..conv4
POOL_SIZE = 4096  # unlabelled scenes in the pretext pool
BATCH_SIZE = 64
LEARNING_RATE = 1e-3  # Adam
STREAM_LENGTH = 100_000  # batches in one pass of a PretextBatches stream (never reached)
LOSS_END_WINDOW = 0.1  # loss_end is the mean over the last 10 % of steps

ProgressFn = Callable[[int, int, float], None]
MakeBatch = Callable[[Any, torch.Generator | None], Any]


# -- trunk ----------------------------------------------------------------------------


class Stage(nn.Module):
    """3×3 conv → BatchNorm → ReLU (→ 2×2 max-pool), in VGG/AlexNet order.

    The pool closes the stage, so the probe reads each stage after its pooling
    (and a stage's max-pool only ever sees its own ReLU's outputs). It uses
    ``ceil_mode`` so the trunk also runs on small odd-sized tiles (9 → 5 → 3 → 2).
    """

    def __init__(self, in_channels: int, out_channels: int, pool: bool) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU()
        self.pool = nn.MaxPool2d(2, ceil_mode=True) if pool else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        return self.pool(self.relu(self.bn(self.conv(x))))


class ConvTrunk(nn.Module):
    """conv1..conv4; an [N, C, H, W] input becomes an [N, widths[-1], ⌈H/8⌉, ⌈W/8⌉] map."""

    def __init__(self, in_channels: int = 3, widths: tuple[int, ...] = WIDTHS) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.widths = tuple(widths)
        chans = (in_channels, *self.widths)
        for i, name in enumerate(STAGES):
            # conv1..conv3 halve the resolution, conv4 keeps it: 32 → 16 → 8 → 4 → 4.
            self.add_module(name, Stage(chans[i], chans[i + 1], pool=i < len(STAGES) - 1))

    @property
    def out_channels(self) -> int:
        return self.widths[-1]

    def features(self, x: Tensor) -> dict[str, Tensor]:
        """The output of every stage, by name (for the linear probe)."""
        out = {}
        for name in STAGES:
            x = getattr(self, name)(x)
            out[name] = x
        return out

    def forward(self, x: Tensor) -> Tensor:
        for name in STAGES:
            x = getattr(self, name)(x)
        return x

    def pooled(self, x: Tensor) -> Tensor:
        """Global-average-pooled conv4 features: [N, C, H, W] → [N, widths[-1]]."""
        return self(x).mean(dim=(2, 3))


class PretextModel(nn.Module):
    """Base of every pretext model: a ``trunk`` plus heads.

    ``probe_features(images)`` maps standardised RGB scenes to the trunk's
    features at every stage; a model whose trunk sees something else (the
    lightness channel for colorization) overrides it.
    """

    trunk: ConvTrunk

    def probe_features(self, images: Tensor) -> dict[str, Tensor]:
        return self.trunk.features(images)


# -- data -----------------------------------------------------------------------------


def scene_pool(seed: int = 0, n: int = POOL_SIZE, size: int = DEFAULT_SIZE) -> Tensor:
    """The unlabelled pretext pool: ``n`` standardised scenes [n, 3, size, size]."""
    images, _ = make_scenes(n, seed=seed, size=size)
    return images


class ScenePool:
    """A scene pool rendered on first use and then kept, so building a subject is cheap.

    Calling it returns the images [n, 3, size, size], or ``(images, arange(n))``
    with ``with_ids`` (one surrogate class per image, for Exemplar).
    """

    def __init__(
        self, seed: int = 0, n: int = POOL_SIZE, size: int = DEFAULT_SIZE, with_ids: bool = False
    ) -> None:
        self.seed, self.n, self.size, self.with_ids = seed, n, size, with_ids
        self._images: Tensor | None = None

    def __call__(self) -> Tensor | tuple[Tensor, Tensor]:
        if self._images is None:
            self._images = scene_pool(self.seed, self.n, self.size)
        if self.with_ids:
            return self._images, torch.arange(self.n)
        return self._images


class PretextBatches:
    """A deterministic stream of pretext batches over an image pool.

    Each pass shuffles the pool (epochs without replacement, as a DataLoader with
    ``shuffle=True``) and applies ``make_batch`` to every ``batch_size`` slice
    (a tensor, or a tuple of tensors when the pool is a tuple such as images and ids),
    The pool may be a callable (a :class:`ScenePool`), rendered on the first pass.
    with one ``torch.Generator`` seeded by ``seed`` for both. Iterating again
    restarts from the seed, so the same seed always gives the same batches.
    """

    def __init__(
        self,
        images: Tensor | tuple[Tensor, ...] | Callable[[], Tensor | tuple[Tensor, ...]],
        make_batch: MakeBatch,
        batch_size: int = BATCH_SIZE,
        seed: int = 0,
        device: torch.device | str = "cpu",
        length: int = STREAM_LENGTH,
    ) -> None:
        self.images = images
        self.make_batch = make_batch
        self.batch_size = batch_size
        self.seed = seed
        self.device = device
        self.length = length

    def __len__(self) -> int:
        return self.length

    def pool(self) -> tuple[Tensor, ...]:
        """The pool's tensors (rendering a lazy :class:`ScenePool` now)."""
        pool = self.images() if callable(self.images) else self.images
        return pool if isinstance(pool, tuple) else (pool,)

    def __iter__(self) -> Iterator[Any]:
        pool = self.pool()
        size = len(pool[0])
        if size < self.batch_size:
            raise ValueError(f"pool of {size} images is smaller than a batch ({self.batch_size})")
        g = torch.Generator().manual_seed(self.seed)
        per_epoch = size // self.batch_size
        produced = 0
        while produced < self.length:
            order = torch.randperm(size, generator=g)
            for i in range(per_epoch):
                if produced >= self.length:
                    return
                idx = order[i * self.batch_size : (i + 1) * self.batch_size]
                items = tuple(t[idx] for t in pool)
                batch = self.make_batch(items[0] if len(items) == 1 else items, g)
                yield move_to(batch, self.device)
                produced += 1


# -- patch helpers -------------------------------------------------------------------------


def crop(images: Tensor, top: Tensor, left: Tensor, size: int) -> Tensor:
    """One ``size``×``size`` crop per image at its own (top, left): [N, C, H, W] → [N, C, size, size]."""
    n = images.shape[0]
    ar = torch.arange(size, device=images.device)
    rows = (top.view(n, 1) + ar).view(n, 1, size, 1)  # [N, 1, size, 1]
    cols = (left.view(n, 1) + ar).view(n, 1, 1, size)  # [N, 1, 1, size]
    batch = torch.arange(n, device=images.device).view(n, 1, 1, 1)
    chans = torch.arange(images.shape[1], device=images.device).view(1, -1, 1, 1)
    return images[batch, chans, rows, cols]


def grid_origins(size: int, patch: int, gap: int, jitter: int) -> int:
    """The largest top-left offset of a 3×3 grid of ``patch`` cells with ``gap`` and ``jitter``.

    Raises if the grid does not fit into ``size`` pixels.
    """
    span = 3 * patch + 2 * gap + 2 * jitter
    if span > size:
        raise ValueError(
            f"3×3 grid of {patch}px patches, gap {gap}, jitter {jitter} needs {span}px"
        )
    return size - span


def uniform_ints(n: int, low: int, high: int, generator: torch.Generator | None) -> Tensor:
    """``n`` integers uniform in [low, high] (inclusive)."""
    return torch.randint(low, high + 1, (n,), generator=generator)


# -- subjects -------------------------------------------------------------------------


def pretext_subject(
    name: str,
    model_class: Callable[[], nn.Module],
    make_batch: MakeBatch,
    batch_size: int,
    pool: ScenePool,
    seed: int,
    device: str,
    **fields: Any,
) -> Subject:
    """A fresh pretext subject: ``model_class()`` initialised from ``seed`` on ``device``,
    a seeded stream of ``make_batch`` batches over ``pool``, Adam at ``LEARNING_RATE``.

    ``fields`` are the rest of the :class:`Subject` (criterion or loss_fn, task, …).
    """
    torch.manual_seed(seed)
    model = model_class().to(device)
    return Subject(
        model=model,
        batches=lambda: PretextBatches(pool, make_batch, batch_size, seed, device),
        optimizer=OptimizerSpec.of(torch.optim.Adam, lr=LEARNING_RATE),
        name=name,
        **fields,
    )


TrainFn = Callable[..., dict[str, Any]]


def pretext_trainer(
    build: Callable[[int, str], Subject], default_steps: int, **train_options: Any
) -> TrainFn:
    """The ``train(steps, device, seed, progress)`` of a family: build a fresh subject and
    run :func:`train_subject` with ``train_options`` (chance, metric, metric_name)."""

    def train(
        steps: int | None = None,
        device: str = "cpu",
        seed: int = 0,
        progress: ProgressFn | None = None,
    ) -> dict[str, Any]:
        """Train from scratch; returns loss_start, loss_end, chance, seconds and the family's metric."""
        return train_subject(
            build(seed, device), steps or default_steps, seed, progress, **train_options
        )

    return train


# -- training -------------------------------------------------------------------------


def accuracy(logits: Tensor, labels: Tensor) -> float:
    """Top-1 accuracy; logits [N, C, ...], labels [N, ...]."""
    return (logits.argmax(dim=1) == labels).float().mean().item()


def batch_accuracy(model: nn.Module, batch: tuple[Tensor, Tensor]) -> float:
    """Top-1 accuracy of ``model`` on an ``(inputs, labels)`` batch."""
    inputs, labels = batch
    return accuracy(model(inputs), labels)


def train_subject(
    subject: Subject,
    steps: int,
    seed: int = 0,
    progress: ProgressFn | None = None,
    chance: float | None = None,
    metric: Callable[[nn.Module, Any], float] | None = None,
    metric_name: str = "accuracy",
    metric_batches: int = 8,
) -> dict[str, Any]:
    """Train ``subject.model`` in place for ``steps`` optimizer steps; return the metrics.

    ``loss_start`` is the first step's loss (the model at initialisation),
    ``loss_end`` the mean over the last ``LOSS_END_WINDOW`` of the steps.
    ``metric(model, batch)`` (e.g. pretext accuracy) is averaged in eval mode over
    ``metric_batches`` fresh batches from a differently seeded stream.
    """
    torch.manual_seed(seed)
    model = subject.model
    model.train()
    assert subject.optimizer is not None
    optimizer = subject.optimizer.build(model)
    losses: list[float] = []
    start = time.perf_counter()
    batches = subject.iter_batches()
    for step in range(steps):
        batch = next(batches)
        loss = subject.compute_loss(model, batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        if progress is not None:
            progress(step + 1, steps, losses[-1])
    seconds = time.perf_counter() - start
    window = max(1, math.ceil(LOSS_END_WINDOW * len(losses)))
    result: dict[str, Any] = {
        "steps": steps,
        "loss_start": losses[0] if losses else float("nan"),
        "loss_end": sum(losses[-window:]) / window if losses else float("nan"),
        "chance": chance,
        "seconds": round(seconds, 2),
    }
    if metric is not None:
        result[metric_name] = evaluate(subject, metric, metric_batches)
    return result


def evaluate(
    subject: Subject, metric: Callable[[nn.Module, Any], float], n_batches: int = 8
) -> float:
    """Mean of ``metric(model, batch)`` in eval mode over held-out batches.

    The batches come from the subject's stream with its seed shifted, so they are
    new views of the pool (new rotations, crops, jitters), not the training batches.
    """
    source = subject.batches() if callable(subject.batches) else subject.batches
    if isinstance(source, PretextBatches):
        source = PretextBatches(
            source.images,
            source.make_batch,
            source.batch_size,
            seed=source.seed + 99_991,
            device=source.device,
            length=n_batches,
        )
    model = subject.model
    was_training = model.training
    model.eval()
    values = []
    with torch.no_grad():
        for i, batch in enumerate(source):
            if i >= n_batches:
                break
            values.append(metric(model, batch))
    model.train(was_training)
    return sum(values) / max(1, len(values))
