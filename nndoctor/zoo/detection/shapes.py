"""Generated detection data: coloured rectangles, ellipses and triangles on textured canvases.

A small stand-in for a detection benchmark, drawn in code so that the zoo needs no
downloads and stays deterministic: every canvas holds one to four objects of three
classes whose sizes span about two octaves (sqrt(w h) from 9 to 30 pixels on a
64-pixel canvas) and whose aspect ratios w / h span 1/2 to 2, so that a detector
has to look at several scales and its priors (anchors) at several shapes. Each
shape fills its box (the ellipse is inscribed, the triangle has its apex at the top
centre and its base on the bottom edge), so two classes can share the same box:
the class must come from the shape, not the box. The colour is random and carries
no class information.

Conventions used by every detector in this package:

* boxes are ``(x1, y1, x2, y2)`` in pixels, continuous coordinates, with pixel
  ``(i, j)`` covering ``[j, j + 1) x [i, i + 1)``;
* an image is a float tensor ``(3, H, W)`` standardised per channel with
  :data:`CHANNEL_MEAN` and :data:`CHANNEL_STD` (the stored pixels are ``uint8``,
  like a real image file);
* targets of one image are a ``(n, 5)`` float tensor with columns
  ``class, x1, y1, x2, y2``; :func:`collate_detection` pads them into a
  ``(B, M, 5)`` tensor where padding rows have class ``-1`` (:data:`PAD_CLASS`),
  ``M`` being the largest number of objects in the batch.

The padded tensor keeps a batch a plain ``(images, targets)`` pair of tensors, so
that anything that moves, shuffles or inspects batches needs no special case.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

CLASS_NAMES: tuple[str, ...] = ("rectangle", "ellipse", "triangle")
NUM_CLASSES = len(CLASS_NAMES)
PAD_CLASS = -1  # class id of the padding rows in collated targets

# Per-channel statistics of the pixels (in [0, 1]) of the default training split
# (seed 0, 64x64, 4096 images), measured once with `measure_channel_stats`; the
# generator draws background and object colours symmetrically, so they hardly
# depend on the seed or the size of the set.
CHANNEL_MEAN: tuple[float, float, float] = (0.5002, 0.4986, 0.4987)
CHANNEL_STD: tuple[float, float, float] = (0.1784, 0.1787, 0.1791)

Split = Literal["train", "val"]
# Each split draws from its own generator, so the splits never share a canvas.
_SPLIT_SEED_OFFSET: dict[str, int] = {"train": 0, "val": 7_919}
DEFAULT_SPLIT_SIZE: dict[str, int] = {"train": 4096, "val": 512}
CHUNK = 256  # canvases drawn at once
_TEXTURE_CELLS = 8  # the background texture is coarse noise on an 8 x 8 grid, upsampled


@dataclass(frozen=True)
class ShapesConfig:
    """How canvases are drawn. Sizes are given for a 64-pixel canvas and scale with it."""

    image_size: int = 64
    min_objects: int = 1
    max_objects: int = 4
    # Object size sqrt(w h), log-uniform, in pixels at 64; aspect w / h log-uniform.
    min_size: float = 9.0
    max_size: float = 30.0
    max_aspect: float = 2.0  # aspect ratios from 1 / max_aspect to max_aspect
    # A new object may cover at most this share of an earlier one (intersection over
    # the smaller box): objects may touch and overlap a little, never hide each other.
    max_overlap: float = 0.2
    placement_tries: int = 16
    # Background: a base colour, a smooth texture and pixel noise.
    background_low: float = 0.3
    background_high: float = 0.7
    texture_amplitude: float = 0.05
    noise_std: float = 0.03
    # Object colour = background base +/- a contrast drawn per channel in this range.
    contrast_low: float = 0.25
    contrast_high: float = 0.45

    @property
    def scale(self) -> float:
        return self.image_size / 64.0


@dataclass(frozen=True)
class ShapesData:
    """A generated set: ``pixels`` (N, 3, H, W) uint8, ``boxes`` (N, M, 4), ``labels`` (N, M).

    Rows of ``labels`` equal to :data:`PAD_CLASS` are empty slots.
    """

    pixels: torch.Tensor
    boxes: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return self.pixels.shape[0]


def generate_shapes(n: int, seed: int, config: ShapesConfig | None = None) -> ShapesData:
    """Draw ``n`` canvases from a generator seeded with ``seed``.

    Canvases are drawn vectorised, :data:`CHUNK` at a time from one generator, so
    that a chunk's tensors stay in cache, on one thread (see :func:`one_thread`).
    """
    cfg = config or ShapesConfig()
    g = torch.Generator().manual_seed(seed)
    with one_thread():
        chunks = [_generate_chunk(min(CHUNK, n - i), cfg, g) for i in range(0, n, CHUNK)]
        if not chunks:
            chunks = [_generate_chunk(0, cfg, g)]
        return ShapesData(*(torch.cat(parts) for parts in zip(*chunks, strict=True)))


@contextmanager
def one_thread() -> Iterator[None]:
    """Run torch on one CPU thread inside the block, then restore the thread count.

    Drawing canvases and clustering boxes are many small element-wise operations:
    on one thread they run as fast as on two when the machine is idle, and many
    times faster when other processes compete for the cores (the worker threads
    then wait for each other at every operation).
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _generate_chunk(
    n: int, cfg: ShapesConfig, g: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``n`` canvases: pixels (N, 3, H, W) uint8, boxes (N, M, 4), labels (N, M).

    Objects are placed slot by slot: for each slot every image draws
    ``placement_tries`` candidate boxes at once and keeps the first one that does
    not cover an earlier object by more than ``max_overlap``.
    """
    size, slots = cfg.image_size, cfg.max_objects
    # Pixel centres, so that a shape covers the pixels whose centre lies inside it.
    ys = torch.arange(size, dtype=torch.float32).view(1, size, 1) + 0.5  # (1, H, 1)
    xs = torch.arange(size, dtype=torch.float32).view(1, 1, size) + 0.5  # (1, 1, W)

    image, bg_base = _background(n, cfg, g)  # (N, 3, H, W), (N, 3)

    wanted = torch.randint(cfg.min_objects, cfg.max_objects + 1, (n,), generator=g)  # (N,)
    boxes = torch.zeros(n, slots, 4)
    labels = torch.full((n, slots), PAD_CLASS, dtype=torch.long)
    for k in range(slots):
        cand = _candidate_boxes(n, cfg, g)  # (N, T, 4)
        cls = torch.randint(0, NUM_CLASSES, (n,), generator=g)  # (N,)
        ok = torch.ones(n, cfg.placement_tries, dtype=torch.bool)
        if k > 0:
            cover = _intersection_over_smaller(cand, boxes[:, :k])  # (N, T, k)
            placed = (labels[:, :k] != PAD_CLASS).unsqueeze(1)  # (N, 1, k)
            ok = ((cover <= cfg.max_overlap) | ~placed).all(dim=2)  # (N, T)
        first = ok.int().argmax(dim=1)  # (N,) first acceptable try (0 if none)
        active = (k < wanted) & ok.any(dim=1)  # (N,)
        box = cand[torch.arange(n), first]  # (N, 4)
        mask = _shape_mask(box, cls, ys, xs) & active.view(n, 1, 1)  # (N, H, W)
        colour = _object_colour(bg_base, cfg, g)  # (N, 3)
        image = torch.where(mask.unsqueeze(1), colour.view(n, 3, 1, 1), image)
        boxes[:, k] = torch.where(active.view(n, 1), box, boxes[:, k])
        labels[:, k] = torch.where(active, cls, labels[:, k])

    pixels = (image.clamp(0.0, 1.0) * 255.0).round().to(torch.uint8)  # (N, 3, H, W)
    # Move the objects of each image to the front so that padding sits at the end.
    order = torch.argsort((labels == PAD_CLASS).int(), dim=1, stable=True)  # (N, M)
    labels = labels.gather(1, order)
    boxes = boxes.gather(1, order.unsqueeze(-1).expand(-1, -1, 4))
    return pixels, boxes, labels


def _background(n: int, cfg: ShapesConfig, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Base colour + smooth grey texture (upsampled coarse noise) + pixel noise."""
    size = cfg.image_size
    base = cfg.background_low + (cfg.background_high - cfg.background_low) * torch.rand(
        n, 3, generator=g
    )  # (N, 3)
    coarse = torch.randn(n, 1, _TEXTURE_CELLS, _TEXTURE_CELLS, generator=g)  # (N, 1, 8, 8)
    texture = F.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=False)
    noise = torch.randn(n, 3, size, size, generator=g)  # (N, 3, H, W)
    image = base.view(n, 3, 1, 1) + cfg.texture_amplitude * texture + cfg.noise_std * noise
    return image, base


def _candidate_boxes(n: int, cfg: ShapesConfig, g: torch.Generator) -> torch.Tensor:
    """Boxes (N, T, 4) of log-uniform size and aspect ratio, wholly inside the canvas."""
    t = cfg.placement_tries
    lo, hi = math.log(cfg.min_size * cfg.scale), math.log(cfg.max_size * cfg.scale)
    size = torch.exp(lo + (hi - lo) * torch.rand(n, t, generator=g))  # (N, T) sqrt(w h)
    log_aspect = math.log(cfg.max_aspect) * (2 * torch.rand(n, t, generator=g) - 1)
    w = size * torch.exp(log_aspect / 2)
    h = size * torch.exp(-log_aspect / 2)
    x1 = (cfg.image_size - w) * torch.rand(n, t, generator=g)
    y1 = (cfg.image_size - h) * torch.rand(n, t, generator=g)
    return torch.stack([x1, y1, x1 + w, y1 + h], dim=-1)  # (N, T, 4)


def _intersection_over_smaller(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """For each image, intersection / smaller area between (N, T, 4) and (N, K, 4) -> (N, T, K)."""
    lt = torch.maximum(a[:, :, None, :2], b[:, None, :, :2])
    rb = torch.minimum(a[:, :, None, 2:], b[:, None, :, 2:])
    inter = (rb - lt).clamp(min=0).prod(-1)  # (N, T, K)
    area_a = (a[..., 2:] - a[..., :2]).prod(-1)  # (N, T)
    area_b = (b[..., 2:] - b[..., :2]).prod(-1)  # (N, K)
    smaller = torch.minimum(area_a[:, :, None], area_b[:, None, :]).clamp(min=1e-6)
    return inter / smaller


_ELLIPSE = CLASS_NAMES.index("ellipse")
_TRIANGLE = CLASS_NAMES.index("triangle")


def _shape_mask(
    box: torch.Tensor, cls: torch.Tensor, ys: torch.Tensor, xs: torch.Tensor
) -> torch.Tensor:
    """Pixels (N, H, W) whose centre lies inside the shape of class ``cls`` filling ``box``."""
    n = box.shape[0]
    x1, y1, x2, y2 = (box[:, i].view(n, 1, 1) for i in range(4))
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    half_w, half_h = (x2 - x1) / 2, (y2 - y1) / 2
    u, v = (xs - cx) / half_w, (ys - cy) / half_h  # (N, H, W), the box is [-1, 1]^2
    inside_box = (u.abs() <= 1) & (v.abs() <= 1)
    inside_ellipse = u**2 + v**2 <= 1
    # Apex at (0, -1), base from (-1, 1) to (1, 1): the half-width grows as (v + 1) / 2.
    inside_triangle = inside_box & (u.abs() <= (v + 1) / 2)
    c = cls.view(n, 1, 1)
    return torch.where(
        c == _TRIANGLE, inside_triangle, torch.where(c == _ELLIPSE, inside_ellipse, inside_box)
    )


def _object_colour(bg_base: torch.Tensor, cfg: ShapesConfig, g: torch.Generator) -> torch.Tensor:
    """A colour (N, 3) clearly lighter or darker than the background, random in hue."""
    n = bg_base.shape[0]
    sign = torch.where(torch.rand(n, 1, generator=g) < 0.5, -1.0, 1.0)
    contrast = cfg.contrast_low + (cfg.contrast_high - cfg.contrast_low) * torch.rand(
        n, 3, generator=g
    )
    return (bg_base + sign * contrast).clamp(0.0, 1.0)


def standardise(pixels: torch.Tensor) -> torch.Tensor:
    """uint8 pixels (..., 3, H, W) -> float, per channel (x / 255 - mean) / std."""
    mean = torch.tensor(CHANNEL_MEAN).view(3, 1, 1)
    std = torch.tensor(CHANNEL_STD).view(3, 1, 1)
    return (pixels.float() / 255.0 - mean) / std


def measure_channel_stats(data: ShapesData) -> tuple[list[float], list[float]]:
    """Per-channel mean and std of the pixels of ``data`` in [0, 1] (how the constants were set)."""
    x = data.pixels.float() / 255.0  # (N, 3, H, W)
    return x.mean(dim=(0, 2, 3)).tolist(), x.std(dim=(0, 2, 3)).tolist()


class ShapesDetection(Dataset):
    """One split of the generated shapes set.

    ``dataset[i]`` is ``(image, target)``: ``image`` (3, H, W) standardised float,
    ``target`` (n_i, 5) float with columns ``class, x1, y1, x2, y2``.
    Use :func:`collate_detection` as the DataLoader's ``collate_fn``.
    """

    def __init__(
        self,
        split: Split = "train",
        size: int | None = None,
        seed: int = 0,
        config: ShapesConfig | None = None,
    ) -> None:
        if split not in _SPLIT_SEED_OFFSET:
            raise ValueError(f"split must be 'train' or 'val', not {split!r}")
        self.split = split
        self.config = config or ShapesConfig()
        n = DEFAULT_SPLIT_SIZE[split] if size is None else size
        self.data = generate_shapes(n, seed * 100_003 + _SPLIT_SEED_OFFSET[split], self.config)

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        keep = self.data.labels[index] != PAD_CLASS  # (M,)
        target = torch.cat(
            [self.data.labels[index, keep, None].float(), self.data.boxes[index, keep]], dim=1
        )  # (n_i, 5)
        return standardise(self.data.pixels[index]), target

    def all_boxes(self) -> torch.Tensor:
        """Every ground-truth box of the split, (K, 4) — e.g. for k-means anchors."""
        return self.data.boxes[self.data.labels != PAD_CLASS]


def collate_detection(
    batch: list[tuple[torch.Tensor, torch.Tensor]],
) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack images and pad targets: -> images (B, 3, H, W), targets (B, M, 5).

    ``M`` is the largest number of objects in the batch (at least 1); padding rows
    are ``(-1, 0, 0, 0, 0)``.
    """
    images = torch.stack([image for image, _ in batch])  # (B, 3, H, W)
    m = max(1, max(target.shape[0] for _, target in batch))
    targets = torch.zeros(len(batch), m, 5)
    targets[:, :, 0] = PAD_CLASS
    for i, (_, target) in enumerate(batch):
        targets[i, : target.shape[0]] = target
    return images, targets


def split_targets(targets: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Padded targets (B, M, 5) -> per image ``(boxes (n_i, 4), labels (n_i,) long)``."""
    out = []
    for t in targets:
        keep = t[:, 0] != PAD_CLASS
        out.append((t[keep, 1:], t[keep, 0].long()))
    return out
