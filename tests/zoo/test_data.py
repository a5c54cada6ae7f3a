"""The procedural scenes: deterministic, standardised, labelled, canonically oriented."""

from __future__ import annotations

import pytest
import torch

from nndoctor.zoo import data


def test_same_seed_gives_identical_scenes_and_labels() -> None:
    a, la = data.make_scenes(64, seed=7)
    b, lb = data.make_scenes(64, seed=7)
    assert torch.equal(a, b) and torch.equal(la, lb)
    c, _ = data.make_scenes(64, seed=8)
    assert not torch.equal(a, c)


def test_a_larger_set_starts_with_the_smaller_one() -> None:
    # Chunks draw from one generator in order: the first CHUNK scenes of a larger set
    # of the same seed are the scenes of the smaller set.
    small, ls = data.make_scenes(data.CHUNK, seed=1)
    large, ll = data.make_scenes(data.CHUNK + 3, seed=1)
    assert torch.equal(small, large[: data.CHUNK]) and torch.equal(ls, ll[: data.CHUNK])


def test_the_same_seed_gives_the_same_scenes_at_every_size() -> None:
    _, labels32 = data.make_scenes(40, seed=5, size=32)
    x64, labels64 = data.make_scenes(40, seed=5, size=64)
    assert torch.equal(labels32, labels64)
    small = torch.nn.functional.avg_pool2d(data.to_unit_rgb(x64), 2)
    big = data.to_unit_rgb(data.make_scenes(40, seed=5, size=32)[0])
    assert (small - big).abs().mean() < 0.05  # the same layout, up to noise and aliasing


def test_shapes_dtypes_and_labels() -> None:
    x, y = data.make_scenes(300, seed=0)
    assert x.shape == (300, 3, 32, 32) and x.dtype == torch.float32
    assert y.shape == (300,) and y.dtype == torch.int64
    assert set(y.tolist()) == set(range(data.NUM_CLASSES))
    x48, _ = data.make_scenes(10, seed=0, size=48)
    assert x48.shape == (10, 3, 48, 48)


def test_scenes_are_standardised_per_channel() -> None:
    x, _ = data.make_scenes(1000, seed=3)
    mean = x.mean(dim=(0, 2, 3))
    std = x.std(dim=(0, 2, 3))
    assert mean.abs().max() < 0.1, mean
    assert (std - 1).abs().max() < 0.1, std


def test_standardisation_round_trip() -> None:
    rgb, _ = data.render_scenes(16, seed=2)
    assert rgb.min() >= 0 and rgb.max() <= 1
    back = data.to_unit_rgb(data.standardise(rgb))
    torch.testing.assert_close(back, rgb, atol=1e-5, rtol=0)


def test_canonical_orientation_sky_above_ground() -> None:
    # Sky is bluer than the ground: the top rows have more blue than red, on average.
    rgb, _ = data.render_scenes(200, seed=4)
    top, bottom = rgb[:, :, :6], rgb[:, :, -6:]
    blueness_top = (top[:, 2] - top[:, 0]).mean()
    blueness_bottom = (bottom[:, 2] - bottom[:, 0]).mean()
    assert blueness_top > blueness_bottom + 0.1


def test_hsv_primaries() -> None:
    h = torch.tensor([0.0, 1 / 3, 2 / 3])
    rgb = data.hsv_to_rgb(h, torch.ones(3), torch.ones(3))
    torch.testing.assert_close(rgb, torch.eye(3))


def test_generation_is_fast_enough_to_build_subjects() -> None:
    import time

    start = time.perf_counter()
    data.make_scenes(512, seed=0)
    # ~0.1 s on two idle cores; the bound only catches an accidental slow path.
    assert time.perf_counter() - start < 10


def test_digits_probe_set_is_optional() -> None:
    digits = data.digits_probe_set()
    try:
        import sklearn  # noqa: F401
    except ImportError:
        assert digits is None
        return
    assert digits is not None
    x, y = digits
    assert x.shape[1:] == (3, 32, 32) and len(x) == len(y)
    assert abs(float(x.mean())) < 1e-3


@pytest.mark.slow
def test_channel_constants_match_the_generator() -> None:
    mean, std = data.measure_channel_stats(n=20_000)
    assert mean == pytest.approx(data.SCENE_MEAN, abs=2e-3)
    assert std == pytest.approx(data.SCENE_STD, abs=2e-3)
