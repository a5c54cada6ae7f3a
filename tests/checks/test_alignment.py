"""Dense targets mirrored against their inputs: a flip applied to the image and not its mask."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest
import torch
from subjects import run, serious
from torch import nn
from torch.utils.data import DataLoader, Dataset

from nndoctor.checks.data.alignment import alignment, dense_pairs
from nndoctor.checks.thresholds import DEFAULT_THRESHOLDS
from nndoctor.engine import Selection, check_script

SIZE = 16


def shapes(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Images (n, 1, 16, 16): a bright rectangle off-centre on a noisy background; masks
    (n, 16, 16): 1 on the rectangle."""
    g = torch.Generator().manual_seed(seed)
    images = 0.1 * torch.randn(n, 1, SIZE, SIZE, generator=g)
    masks = torch.zeros(n, SIZE, SIZE, dtype=torch.long)
    for i in range(n):
        top, left = torch.randint(0, SIZE - 6, (2,), generator=g).tolist()
        h, w = torch.randint(3, 6, (2,), generator=g).tolist()
        masks[i, top : top + h, left : left + w] = 1
        images[i, 0, top : top + h, left : left + w] += 1.0
    return images, masks


class Flipped(Dataset):
    """Random horizontal flips of the image, and of the mask too unless ``image_only``;
    ``always`` mirrors every mask and no image (a consistent task)."""

    def __init__(self, image_only: bool = False, always: bool = False) -> None:
        self.images, self.masks = shapes(256)
        self.image_only, self.always = image_only, always
        self.g = torch.Generator().manual_seed(1)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        image, mask = self.images[i], self.masks[i]
        if self.always:
            return image, mask.flip(-1)
        if torch.rand(1, generator=self.g).item() < 0.5:
            image = image.flip(-1)
            if not self.image_only:
                mask = mask.flip(-1)
        return image, mask


def _segment(dataset: Dataset) -> object:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 2, 1))
    return run(
        select=["target-misaligned"],
        model=model,
        data=DataLoader(dataset, batch_size=32, shuffle=True),
        loss_fn=nn.CrossEntropyLoss(),
        optimizer=torch.optim.Adam(model.parameters()),
    )


@pytest.mark.fires("target-misaligned")
def test_an_image_flipped_without_its_mask_is_found() -> None:
    report = _segment(Flipped(image_only=True))
    (finding,) = serious(report, "target-misaligned")
    assert finding.reasons[0] == 3
    assert finding.evidence["mirrorings"] == ["horizontal flip"]
    # About half the samples were flipped alone.
    assert 0.25 < finding.evidence["mirrored"] / finding.evidence["samples"] < 0.75


@pytest.mark.silent("target-misaligned")
def test_an_image_flipped_with_its_mask_passes() -> None:
    report = _segment(Flipped())
    assert not serious(report, "target-misaligned")


def test_a_mask_mirrored_for_every_sample_is_a_consistent_task_not_a_broken_pairing() -> None:
    report = _segment(Flipped(always=True))
    assert not serious(report, "target-misaligned")
    assert report.result("target-misaligned").status.value == "passed"


def test_targets_of_another_size_or_kind_are_not_compared() -> None:
    images, masks = shapes(8)
    t = DEFAULT_THRESHOLDS
    assert dense_pairs([(images, masks[:, :5, :5])], None, t) is None  # no whole fraction
    assert dense_pairs([(images, masks[:, :8, :12])], None, t) is None  # two factors
    assert dense_pairs([(images, masks[:, ::2, ::2])], None, t) is not None  # output stride 2
    # A detector's target grid at stride 4: offsets and sizes per cell, no picture.
    assert dense_pairs([(images, torch.rand(8, 6, 4, 4))], None, t) is None
    assert dense_pairs([(images, torch.zeros(8, dtype=torch.long))], None, t) is None
    assert dense_pairs([(images.flatten(1), masks.flatten(1))], None, t) is None
    assert dense_pairs([(images, masks)], None, t) is not None


def test_ignored_pixels_and_large_images_are_handled() -> None:
    # An ignored border, and images larger than the side the fit pools them down to.
    images, masks = shapes(64)
    images = images.repeat_interleave(6, -1).repeat_interleave(6, -2)  # 96 x 96
    masks = masks.repeat_interleave(6, -1).repeat_interleave(6, -2)
    masks[:, :, :6] = 255
    pairs = dense_pairs([(images, masks)], 255, DEFAULT_THRESHOLDS)
    assert pairs is not None and pairs.x.shape[-1] <= DEFAULT_THRESHOLDS.alignment_max_side
    assert pairs.phi.shape[1] == 2  # the ignored value is no class
    fit = alignment(pairs, DEFAULT_THRESHOLDS.alignment_unrelated)
    best_mirror, _ = fit.best_mirror()
    assert bool((fit.own <= best_mirror).all())  # every sample fits its own mask best


SCRIPT = textwrap.dedent(
    """
    import torch
    from torch import nn
    from torch.utils.data import DataLoader, TensorDataset

    SIZE = 16
    g = torch.Generator().manual_seed(0)
    images = 0.1 * torch.randn(256, 1, SIZE, SIZE, generator=g)
    masks = torch.zeros(256, SIZE, SIZE, dtype=torch.long)
    for i in range(256):
        top, left = torch.randint(0, SIZE - 6, (2,), generator=g).tolist()
        masks[i, top:top + 4, left:left + 5] = 1
        images[i, 0, top:top + 4, left:left + 5] += 1.0
    masks[:, :1] = 255  # an unlabelled border row
    model = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 2, 1))
    opt = torch.optim.Adam(model.parameters())
    criterion = nn.CrossEntropyLoss(ignore_index=255)
    for epoch in range(2):
        for image, mask in DataLoader(TensorDataset(images, masks), batch_size=32, shuffle=True):
            if torch.rand(1).item() < 0.5:
                image = image.flip(-1)  # FLIP_MASK
            loss = criterion(model(image), mask) + 0.0 * model(image).pow(2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
    """
)


@pytest.mark.fires("target-misaligned")
def test_a_script_flipping_whole_batches_of_images_alone_is_found(tmp_path: Path) -> None:
    # A loss of two terms: no in-process subject, the pairs come from the captured batches.
    path = tmp_path / "segment.py"
    path.write_text(SCRIPT)
    report = check_script(
        str(path), steps=16, phase_steps=0, selection=Selection(select=("target-misaligned",))
    )
    assert serious(report, "target-misaligned")


@pytest.mark.silent("target-misaligned")
def test_a_script_flipping_image_and_mask_together_passes(tmp_path: Path) -> None:
    path = tmp_path / "segment.py"
    path.write_text(
        SCRIPT.replace(
            "image = image.flip(-1)  # FLIP_MASK", "image, mask = image.flip(-1), mask.flip(-1)"
        )
    )
    report = check_script(
        str(path), steps=16, phase_steps=0, selection=Selection(select=("target-misaligned",))
    )
    assert not serious(report, "target-misaligned")


def test_the_fit_keeps_no_more_samples_than_its_memory_bound() -> None:
    # 59 classes on 64 x 64 images: each sample holds 4,096 pixels x 61 features.
    t = DEFAULT_THRESHOLDS
    masks = torch.arange(60).repeat_interleave(70)[: 64 * 64].reshape(64, 64)
    masks = masks.expand(200, 64, 64).clone()
    images = torch.randn(200, 1, 64, 64)
    pairs = dense_pairs([(images, masks)], None, t)
    assert pairs is not None
    per_sample = 64 * 64 * (1 + len(masks.unique()) + 1)
    assert pairs.x.shape[0] == t.alignment_max_elements // per_sample < 200


def smooth_images(n: int, side: int, seed: int = 0) -> torch.Tensor:
    """(n, 1, side, side) grey images: a few soft blobs of random size, place and level."""
    g = torch.Generator().manual_seed(seed)
    ys, xs = torch.meshgrid(torch.arange(side).float(), torch.arange(side).float(), indexing="ij")
    img = 0.5 * torch.ones(n, side, side)
    for _ in range(4):
        cy, cx = (side * torch.rand(2, n, 1, 1, generator=g)).unbind(0)
        size = side / 12 + side / 6 * torch.rand(n, 1, 1, generator=g)
        level = torch.rand(n, 1, 1, generator=g) - 0.5
        img = img + level * torch.sigmoid(size - ((ys - cy) ** 2 + (xs - cx) ** 2).sqrt())
    return img[:, None]


class SuperResolution(Dataset):
    """A 48 x 48 crop of a 54 x 54 image as the target, the crop averaged down by 3 as the
    input; ``apart``: the input from a crop of its own, at a separate random origin;
    ``offset``: the input's crop always that many pixels right of the target's."""

    def __init__(self, apart: bool = False, offset: int = 0) -> None:
        self.images = smooth_images(256, 54)
        self.apart, self.offset = apart, offset
        self.g = torch.Generator().manual_seed(2)

    def __len__(self) -> int:
        return len(self.images)

    def crop(self, i: int, top: int, left: int) -> torch.Tensor:
        return self.images[i, :, top : top + 48, left : left + 48]

    def origin(self, margin: int) -> tuple[int, int]:
        top, left = torch.randint(0, margin + 1, (2,), generator=self.g).tolist()
        return top, left

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        top, left = self.origin(6 - self.offset)
        target = self.crop(i, top, left)
        if self.apart:
            top, left = self.origin(6)
        source = self.crop(i, top, left + self.offset)
        return torch.nn.functional.avg_pool2d(source, 3), target


def _upscale(dataset: Dataset) -> object:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 9, 3, padding=1), nn.PixelShuffle(3))
    return run(
        select=["target-misaligned"],
        model=model,
        data=DataLoader(dataset, batch_size=32, shuffle=True),
        loss_fn=nn.MSELoss(),
        optimizer=torch.optim.Adam(model.parameters()),
    )


@pytest.mark.fires("target-misaligned")
def test_a_high_resolution_target_cropped_apart_from_its_input_is_found() -> None:
    report = _upscale(SuperResolution(apart=True))
    (finding,) = serious(report, "target-misaligned")
    assert finding.title.endswith("shifted against their inputs")
    assert finding.evidence["shifted"] > finding.evidence["samples"] / 2
    assert set(finding.evidence["axes"]) == {"vertical", "horizontal"}


@pytest.mark.silent("target-misaligned")
def test_a_high_resolution_target_cropped_with_its_input_passes() -> None:
    report = _upscale(SuperResolution())
    assert not serious(report, "target-misaligned")
    assert report.result("target-misaligned").status.value == "passed"


def test_one_fixed_offset_is_a_consistent_task_not_a_broken_pairing() -> None:
    # Every input three pixels (one on the input's grid) right of its target: moved one
    # way only, as a consistent pipeline can be.
    report = _upscale(SuperResolution(offset=3))
    assert not serious(report, "target-misaligned")
    moved = re.search(
        r"(\d+) fit their target better moved", report.result("target-misaligned").detail
    )
    assert moved is not None and int(moved.group(1)) > 128  # seen, and judged consistent


class NextFrame(Dataset):
    """A 16 x 16 window of a scene as the input and the window moved by a random velocity
    of up to 3 pixels a side as the target: each sample's content moves its own way, as a
    next frame does."""

    def __init__(self) -> None:
        self.images = smooth_images(256, 22)
        self.g = torch.Generator().manual_seed(3)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        dy, dx = torch.randint(-3, 4, (2,), generator=self.g).tolist()
        frame = self.images[i, :, 3:19, 3:19]
        return frame, self.images[i, :, 3 + dy : 19 + dy, 3 + dx : 19 + dx]


def test_a_same_size_map_moved_per_sample_is_a_next_frame_not_a_broken_pairing() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 1, 3, padding=1))
    report = run(
        select=["target-misaligned"],
        model=model,
        data=DataLoader(NextFrame(), batch_size=32, shuffle=True),
        loss_fn=nn.MSELoss(),
        optimizer=torch.optim.Adam(model.parameters()),
    )
    assert not serious(report, "target-misaligned")
    assert "moved by up to" not in report.result("target-misaligned").detail
