"""Procedural scenes for the self-supervised zoo: seeded, deterministic, no downloads.

Every scene has a *canonical orientation*: one upright object, lit from above,
resting on the ground with its shadow beneath. Outdoor scenes show a sky
gradient above, a textured ground below and a horizon between them; close-ups
(half the scenes) show the object larger on a plain backdrop, so that knowing
"up" or placing parts also needs the object, not only the horizon.
The object's class (its shape) is the label the linear probe predicts:

    0 box   1 ball   2 pyramid   3 tower   4 tree   5 house

The object's colour is drawn independently of its class (only the tree's brown
trunk is class-specific), so a probe must read shape, not colour — with a
colour cue, features that merely keep colour (a random trunk's) would score
well. ``SceneConfig.class_hue_p`` restores a class-preferred hue if wanted.
Sun, clouds, the ground's material and texture, and the
object's size and place vary per scene, so the pretext tasks have something to
learn (rotation and relative position from the sky/ground layout, jigsaw from
continuity, colorization from the materials, counting from additive parts).

Rendering is vectorised in torch (coordinate grids and masks, ``SUPERSAMPLE``×
supersampled and average-pooled for anti-aliasing), in chunks to bound memory;
a few thousand 32×32 scenes take well under a second on two CPU cores.

Images are returned standardised per channel with the fixed constants
``SCENE_MEAN`` / ``SCENE_STD`` (measured over 20 000 scenes of seed 0 at
32×32, see :func:`measure_channel_stats`), so a batch of scenes has per-channel
mean ≈ 0 and std ≈ 1. :func:`to_unit_rgb` undoes the standardisation.

Optional: :func:`digits_probe_set` offers scikit-learn's bundled 8×8 digits as
a second, real-image probe set when scikit-learn is importable (never required).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

# -- constants -----------------------------------------------------------------

CLASS_NAMES = ("box", "ball", "pyramid", "tower", "tree", "house")
NUM_CLASSES = len(CLASS_NAMES)

# Preferred object hue per class (HSV hue in [0, 1)), used with probability
# SceneConfig.class_hue_p (0 by default: colour says nothing about the class).
CLASS_HUES = (0.0, 0.15, 0.6, 0.8, 0.33, 0.07)
CLASS_HUE_JITTER = 0.08

# Per-channel statistics of unit-range RGB scenes (seed 0, 20 000 scenes, 32×32),
# used to standardise every scene; recomputed by ``measure_channel_stats``.
SCENE_MEAN = (0.4931, 0.5169, 0.5194)
SCENE_STD = (0.1773, 0.1707, 0.2172)

DEFAULT_SIZE = 32
CLOSE_UP_SCALE = 1.35  # objects in close-ups are this much larger
SUPERSAMPLE = 2  # render at 2× and average-pool: smooth edges, no aliasing shortcuts
CHUNK = 256  # scenes rendered at once (bounds the memory of the 2× canvases)
PIXEL_NOISE = 0.015  # sensor noise, std in unit RGB
# The pixel noise comes from its own generator (seeded seed + NOISE_SEED_OFFSET), so the
# scene parameters drawn for a seed do not depend on the image size.
NOISE_SEED_OFFSET = 2**32


@dataclass(frozen=True)
class SceneConfig:
    """How scenes are drawn; all lengths are fractions of the image side."""

    size: int = DEFAULT_SIZE
    horizon: tuple[float, float] = (0.42, 0.62)  # horizon row, top of the ground
    object_size: tuple[float, float] = (0.26, 0.44)  # object height scale
    sun_p: float = 0.6
    clouds_max: int = 2
    class_hue_p: float = 0.0  # probability that the object takes its class's preferred hue
    studio_p: float = 0.5  # probability of a close-up on a plain backdrop (no sky, no ground)


# -- colour helpers --------------------------------------------------------------


def hsv_to_rgb(h: Tensor, s: Tensor, v: Tensor) -> Tensor:
    """HSV in [0, 1] (any equal shapes) → RGB stacked on a new last dim."""
    k = torch.stack([(5 + h * 6) % 6, (3 + h * 6) % 6, (1 + h * 6) % 6], dim=-1)
    f = (torch.minimum(k, 4 - k)).clamp(0, 1)
    return v.unsqueeze(-1) - (v * s).unsqueeze(-1) * f


def standardise(rgb: Tensor) -> Tensor:
    """Unit-range RGB [N, 3, H, W] → standardised with ``SCENE_MEAN`` / ``SCENE_STD``."""
    mean = rgb.new_tensor(SCENE_MEAN).view(1, 3, 1, 1)
    std = rgb.new_tensor(SCENE_STD).view(1, 3, 1, 1)
    return (rgb - mean) / std


def to_unit_rgb(images: Tensor) -> Tensor:
    """Standardised scenes [N, 3, H, W] → RGB in [0, 1] (inverse of :func:`standardise`)."""
    mean = images.new_tensor(SCENE_MEAN).view(1, 3, 1, 1)
    std = images.new_tensor(SCENE_STD).view(1, 3, 1, 1)
    return (images * std + mean).clamp(0, 1)


# -- rendering -------------------------------------------------------------------


def _uniform(g: torch.Generator, n: int, lo: float, hi: float) -> Tensor:
    return torch.rand(n, generator=g) * (hi - lo) + lo


def _paint(canvas: Tensor, mask: Tensor, colour: Tensor) -> Tensor:
    """Alpha-blend ``colour`` [N or 1, 3, 1, 1] or [N, 3, H, W] into canvas where mask [N, 1, H, W].

    The colour is expanded to the canvas first: a product in which *both* operands
    broadcast ([N, 3, 1, 1] · [N, 1, H, W]) takes a slow path in torch, ~10× slower.
    """
    return torch.lerp(canvas, colour.expand_as(canvas), mask)


def _render_chunk(n: int, cfg: SceneConfig, g: torch.Generator) -> tuple[Tensor, Tensor]:
    """``n`` scenes as unit RGB [n, 3, S, S] (before pooling S = size·SUPERSAMPLE) and labels [n]."""
    side = cfg.size * SUPERSAMPLE
    # Pixel-centre coordinates in [0, 1]; y grows downwards: [1, 1, S, S] each.
    coords = (torch.arange(side, dtype=torch.float32) + 0.5) / side
    yy = coords.view(1, 1, side, 1).expand(1, 1, side, side)
    xx = coords.view(1, 1, 1, side).expand(1, 1, side, side)

    def col(t: Tensor) -> Tensor:  # [n] → [n, 1, 1, 1] for broadcasting over the canvas
        return t.view(-1, 1, 1, 1)

    labels = torch.randint(0, NUM_CLASSES, (n,), generator=g)

    # Sky: a vertical gradient from a deep zenith colour to a pale horizon colour.
    horizon = col(_uniform(g, n, *cfg.horizon))
    sky_hue = _uniform(g, n, 0.52, 0.68)
    warm = torch.rand(n, generator=g) < 0.2  # some dusk skies: warmer horizon
    zenith = hsv_to_rgb(sky_hue, _uniform(g, n, 0.55, 0.9), _uniform(g, n, 0.45, 0.8))
    low_hue = torch.where(warm, _uniform(g, n, 0.02, 0.12), sky_hue)
    low = hsv_to_rgb(low_hue, _uniform(g, n, 0.15, 0.45), _uniform(g, n, 0.85, 1.0))
    t = (yy / horizon).clamp(0, 1)  # 0 at the top, 1 at the horizon: [n, 1, S, S]
    full = (n, 3, side, side)
    canvas = torch.lerp(zenith.view(n, 3, 1, 1).expand(full), low.view(n, 3, 1, 1).expand(full), t)

    # Sun: a bright disc somewhere in the sky.
    has_sun = col((torch.rand(n, generator=g) < cfg.sun_p).float())
    sun_x, sun_r = col(_uniform(g, n, 0.1, 0.9)), col(_uniform(g, n, 0.05, 0.09))
    sun_y = col(_uniform(g, n, 0.1, 0.3)) * horizon / 0.5
    sun = ((xx - sun_x) ** 2 + (yy - sun_y) ** 2 < sun_r**2).float() * has_sun
    canvas = _paint(canvas, sun, canvas.new_tensor([1.0, 0.95, 0.6]).view(1, 3, 1, 1))

    # Clouds: flat white ellipses high in the sky.
    for _ in range(cfg.clouds_max):
        has = col((torch.rand(n, generator=g) < 0.5).float())
        cx, cy = col(_uniform(g, n, 0.0, 1.0)), col(_uniform(g, n, 0.08, 0.3)) * horizon / 0.5
        rx, ry = col(_uniform(g, n, 0.1, 0.2)), col(_uniform(g, n, 0.03, 0.06))
        cloud = (((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2 < 1).float() * has
        canvas = _paint(canvas, 0.85 * cloud, canvas.new_tensor([0.97, 0.97, 1.0]).view(1, 3, 1, 1))

    # Ground: a material (grass, sand, soil, rock) lit more in front, with a texture of
    # perspective stripes (finer towards the horizon) and blotches.
    material_hue = torch.tensor([0.27, 0.12, 0.07, 0.1])
    material_sat = torch.tensor([0.65, 0.45, 0.6, 0.15])
    material = torch.randint(0, 4, (n,), generator=g)
    ground_rgb = hsv_to_rgb(
        (material_hue[material] + _uniform(g, n, -0.04, 0.04)) % 1.0,
        (material_sat[material] + _uniform(g, n, -0.1, 0.1)).clamp(0, 1),
        _uniform(g, n, 0.45, 0.75),
    ).view(n, 3, 1, 1)
    depth = ((yy - horizon) / (1 - horizon)).clamp(0, 1)  # 0 at the horizon, 1 at the bottom
    freq = col(_uniform(g, n, 12.0, 24.0))
    phase = col(_uniform(g, n, 0.0, 2 * math.pi))
    slant = col(_uniform(g, n, -1.0, 1.0))
    stripes = torch.sin(freq * (xx - 0.5 + slant * (yy - horizon)) / (0.3 + depth) + phase)
    blotch = torch.sin(col(_uniform(g, n, 5, 11)) * xx + phase) * torch.sin(
        col(_uniform(g, n, 5, 11)) * yy * 3 + 2 * phase
    )
    shade = 0.75 + 0.4 * depth + 0.08 * stripes + 0.07 * blotch
    ground = (yy >= horizon).float()
    canvas = _paint(canvas, ground, ground_rgb.expand(full) * shade)

    # Close-ups (probability studio_p): a plain backdrop with a symmetric vignette fills
    # the frame, so only the object itself — upright, lit from above, its shadow
    # beneath — shows which way is up and how its parts are arranged.
    studio = col((torch.rand(n, generator=g) < cfg.studio_p).float())
    backdrop = hsv_to_rgb(
        torch.rand(n, generator=g), _uniform(g, n, 0.05, 0.35), _uniform(g, n, 0.4, 0.9)
    ).view(n, 3, 1, 1)
    vignette = 1 - 0.6 * ((xx - 0.5) ** 2 + (yy - 0.5) ** 2)  # [1, 1, S, S]
    canvas = _paint(canvas, studio.expand(n, 1, side, side), backdrop.expand(full) * vignette)

    # The object rests on the ground: its base on a row below the horizon; nearer
    # objects (lower base) are drawn larger, as in perspective. Close-ups show it larger.
    outdoor_base = horizon + col(_uniform(g, n, 0.1, 0.85)) * (0.97 - horizon)
    studio_base = col(_uniform(g, n, 0.75, 0.95))
    base = torch.where(studio > 0, studio_base, outdoor_base)
    near = torch.where(studio > 0, torch.ones_like(base), (base - horizon) / (1 - horizon))
    s = col(_uniform(g, n, *cfg.object_size)) * (0.7 + 0.45 * near)
    s = s * torch.where(studio > 0, CLOSE_UP_SCALE, 1.0)
    cx = col(_uniform(g, n, 0.22, 0.78))
    top = base - s
    dx, rel = (xx - cx).abs(), (yy - top) / s  # rel: 0 at the object's top, 1 at its base

    # Shadow on the ground under the object.
    shadow = (((xx - cx - 0.05) / (0.5 * s + 0.04)) ** 2 + ((yy - base) / 0.03) ** 2 < 1).float()
    canvas = _paint(canvas, 0.45 * shadow, torch.zeros(1, 3, 1, 1))

    inside = (rel >= 0) & (rel <= 1)
    half = 0.5 * s
    masks = {
        "box": inside & (dx <= 0.45 * s),
        "ball": (xx - cx) ** 2 + (yy - (base - half)) ** 2 <= half**2,
        "pyramid": inside & (dx <= 0.55 * s * rel),
        "tower": inside & (dx <= 0.16 * s),
        "tree": (inside & (rel >= 0.55) & (dx <= 0.08 * s))
        | ((xx - cx) ** 2 + (yy - (top + 0.3 * s)) ** 2 <= (0.32 * s) ** 2),
        "house": (inside & (rel >= 0.45) & (dx <= 0.4 * s))
        | (inside & (rel < 0.45) & (dx <= 0.5 * s * rel / 0.45)),
    }
    shape = torch.zeros(n, 1, side, side, dtype=torch.bool)
    for k, name in enumerate(CLASS_NAMES):
        shape |= masks[name] & (labels == k).view(n, 1, 1, 1)

    # Object colour: a random hue, or with class_hue_p the class's hue (jittered).
    class_hue = torch.tensor(CLASS_HUES)[labels] + _uniform(g, n, -1, 1) * CLASS_HUE_JITTER
    use_class_hue = torch.rand(n, generator=g) < cfg.class_hue_p
    hue = torch.where(use_class_hue, class_hue, torch.rand(n, generator=g)) % 1.0
    obj_rgb = hsv_to_rgb(hue, _uniform(g, n, 0.55, 0.95), _uniform(g, n, 0.5, 0.95))
    # Lit from above: the top of the object is brighter than its base.
    light = 1.15 - 0.35 * rel.clamp(0, 1)
    obj = obj_rgb.view(n, 3, 1, 1).expand(full) * light
    is_tree = (labels == 4).view(n, 1, 1, 1)
    trunk_part = (
        is_tree
        & (rel >= 0.55)
        & (dx <= 0.08 * s)
        & ~((xx - cx) ** 2 + (yy - (top + 0.3 * s)) ** 2 <= (0.32 * s) ** 2)
    )
    obj = _paint(obj, trunk_part.float(), canvas.new_tensor([0.4, 0.26, 0.13]).view(1, 3, 1, 1))
    canvas = _paint(canvas, shape.float(), obj)
    return canvas.clamp(0, 1), labels


def render_scenes(
    n: int, seed: int = 0, config: SceneConfig | None = None
) -> tuple[Tensor, Tensor]:
    """``n`` scenes as unit-range RGB [n, 3, size, size] and their object classes [n].

    Deterministic: the same ``seed`` and ``config`` give bit-identical images, and
    the same scenes (labels, layout) at every ``size``.
    """
    cfg = config or SceneConfig()
    g = torch.Generator().manual_seed(seed)
    noise = torch.Generator().manual_seed(seed + NOISE_SEED_OFFSET)
    images, labels = [], []
    for start in range(0, n, CHUNK):
        m = min(CHUNK, n - start)
        hi, lab = _render_chunk(m, cfg, g)
        img = F.avg_pool2d(hi, SUPERSAMPLE)  # [m, 3, S, S] → [m, 3, size, size]
        img = img + PIXEL_NOISE * torch.randn(img.shape, generator=noise)
        images.append(img.clamp(0, 1))
        labels.append(lab)
    if not images:
        return torch.zeros(0, 3, cfg.size, cfg.size), torch.zeros(0, dtype=torch.long)
    return torch.cat(images), torch.cat(labels)


def make_scenes(
    n: int, seed: int = 0, size: int = DEFAULT_SIZE, config: SceneConfig | None = None
) -> tuple[Tensor, Tensor]:
    """``n`` standardised scenes [n, 3, size, size] (float32) and object classes [n] (int64).

    The images are standardised per channel with ``SCENE_MEAN`` / ``SCENE_STD``:
    per-channel mean ≈ 0 and std ≈ 1 over any few hundred scenes.
    """
    cfg = config or SceneConfig(size=size)
    rgb, labels = render_scenes(n, seed, cfg)
    return standardise(rgb), labels


def measure_channel_stats(
    n: int = 20_000, seed: int = 0, size: int = DEFAULT_SIZE
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std of unit-range scenes (how ``SCENE_MEAN``/``SCENE_STD`` were set)."""
    rgb, _ = render_scenes(n, seed, SceneConfig(size=size))
    mean = rgb.mean(dim=(0, 2, 3))
    std = rgb.std(dim=(0, 2, 3))
    return tuple(round(v, 4) for v in mean.tolist()), tuple(round(v, 4) for v in std.tolist())


# -- optional real-image probe set -------------------------------------------------------


def digits_probe_set(size: int = DEFAULT_SIZE) -> tuple[Tensor, Tensor] | None:
    """scikit-learn's bundled 8×8 digits as standardised 3-channel images, or None.

    Returns ``(images [1797, 3, size, size], labels [1797])`` (ten classes),
    upsampled bilinearly and standardised to mean 0, std 1 over the whole set;
    ``None`` when scikit-learn is not installed (it is never required).
    """
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        return None
    digits = load_digits()
    x = torch.as_tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0  # [N, 1, 8, 8]
    x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    x = x.expand(-1, 3, -1, -1).contiguous()  # grey → 3 channels: [N, 3, size, size]
    x = (x - x.mean()) / x.std()
    return x, torch.as_tensor(digits.target, dtype=torch.long)
