"""The self-supervised zoo: every registered subject builds, steps, and is deterministic;
each family's transform does what its paper says; full training runs are marked slow."""

from __future__ import annotations

import importlib
import math
import runpy
import sys
from pathlib import Path

import pytest
import torch

from nndoctor.subject import Subject
from nndoctor.zoo import get_zoo, zoo_entries
from nndoctor.zoo.data import make_scenes
from nndoctor.zoo.ssl import (
    colorization,
    context_encoder,
    counting,
    denoising,
    exemplar,
    jigsaw,
    multitask,
    relative_position,
    rotation,
    split_brain,
)
from nndoctor.zoo.ssl._common import STAGES, ConvTrunk, PretextBatches, crop

ROOT = Path(__file__).resolve().parents[2]
SSL_NAMES = sorted(e.name for e in zoo_entries() if e.family == "ssl")
SMALL_POOL = 128  # scenes per test subject: one batch of the largest pretext batch
FAMILIES = {
    "rotation": rotation,
    "exemplar": exemplar,
    "relative_position": relative_position,
    "jigsaw": jigsaw,
    "denoising": denoising,
    "context_encoder": context_encoder,
    "colorization": colorization,
    "split_brain": split_brain,
    "counting": counting,
    "multitask": multitask,
}


def small_subject(name: str, seed: int = 0) -> Subject:
    return FAMILIES[name].build(seed=seed, pool_size=SMALL_POOL)


@pytest.fixture(scope="module")
def scenes() -> torch.Tensor:
    return make_scenes(8, seed=11)[0]


# -- the registry ---------------------------------------------------------------------------


def test_every_family_is_registered_with_its_script() -> None:
    assert set(SSL_NAMES) == set(FAMILIES)
    for name in SSL_NAMES:
        entry = get_zoo(name)
        assert entry.family == "ssl" and entry.default_steps > 0 and entry.learns
        assert (ROOT / entry.script).is_file(), entry.script


# -- every subject: one step, gradients, determinism --------------------------------------------


@pytest.mark.parametrize("name", SSL_NAMES)
def test_one_step_trains_every_parameter(name: str) -> None:
    subject = small_subject(name)
    model = subject.model
    model.train()
    batch = subject.take_batches(1)[0]
    optimizer = subject.optimizer.build(model)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    loss = subject.compute_loss(model, batch)
    assert loss.ndim == 0 and torch.isfinite(loss)
    optimizer.zero_grad()
    loss.backward()
    no_grad = [
        n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0
    ]
    assert not no_grad, f"parameters without gradient: {no_grad}"
    optimizer.step()
    unchanged = [n for n, p in model.named_parameters() if torch.equal(p, before[n])]
    assert not unchanged, f"parameters not updated: {unchanged}"


@pytest.mark.parametrize("name", SSL_NAMES)
def test_same_seed_same_batches_and_first_loss(name: str) -> None:
    losses, batches = [], []
    for _ in range(2):
        subject = small_subject(name, seed=3)
        batch = subject.take_batches(2)[1]
        subject.model.train()
        losses.append(subject.compute_loss(subject.model, batch).item())
        batches.append(batch)
    assert losses[0] == losses[1]
    flat = [torch.utils._pytree.tree_leaves(b) for b in batches]
    assert all(torch.equal(a, b) for a, b in zip(*flat, strict=True))
    other = small_subject(name, seed=4)
    assert other.compute_loss(other.model, other.take_batches(1)[0]).item() != losses[0]


@pytest.mark.parametrize("name", SSL_NAMES)
def test_initial_loss_is_near_chance(name: str) -> None:
    chance = getattr(FAMILIES[name], "CHANCE", None)
    if chance is None:
        pytest.skip("no chance level for this loss")
    subject = small_subject(name)
    subject.model.train()
    loss = subject.compute_loss(subject.model, subject.take_batches(1)[0]).item()
    assert abs(loss - chance) < 0.1 * chance + 0.1, (loss, chance)


@pytest.mark.parametrize("name", SSL_NAMES)
def test_probe_features_cover_every_stage(name: str, scenes: torch.Tensor) -> None:
    model = small_subject(name).model.eval()
    feats = model.probe_features(scenes)
    assert list(feats) == list(STAGES)
    sides = [f.shape[-1] for f in feats.values()]
    assert sides == [16, 8, 4, 4]
    assert all(f.shape[0] == len(scenes) for f in feats.values())


def test_batches_are_inputs_with_mixed_labels_and_standardised() -> None:
    x, y = small_subject("rotation").take_batches(1)[0]
    assert x.shape == (4 * rotation.IMAGES_PER_BATCH, 3, 32, 32)
    assert len(set(y[:8].tolist())) > 1  # shuffled within the batch
    assert torch.bincount(y).tolist() == [rotation.IMAGES_PER_BATCH] * 4
    assert abs(float(x.mean())) < 0.3 and 0.7 < float(x.std()) < 1.3


def test_pretext_stream_is_finite_and_epoch_shuffled() -> None:
    pool = torch.arange(10).float().view(10, 1, 1, 1)
    stream = PretextBatches(pool, lambda x, g: x, batch_size=5, seed=0, length=4)
    got = [b.flatten().tolist() for b in stream]
    assert len(got) == 4 == len(stream)
    assert sorted(got[0] + got[1]) == list(range(10))  # one epoch: every item once
    assert got == [b.flatten().tolist() for b in stream]  # re-iterating restarts from the seed


# -- the trunk and helpers ------------------------------------------------------------------------


def test_trunk_runs_on_tiles_and_full_scenes() -> None:
    trunk = ConvTrunk(3)
    assert trunk(torch.randn(2, 3, 32, 32)).shape == (2, 128, 4, 4)
    assert trunk(torch.randn(2, 3, 8, 8)).shape == (2, 128, 1, 1)
    assert trunk(torch.randn(2, 3, 9, 9)).shape == (2, 128, 2, 2)  # ceil-mode pooling
    assert trunk.pooled(torch.randn(2, 3, 16, 16)).shape == (2, 128)


def test_crop_takes_each_image_at_its_own_place() -> None:
    img = torch.arange(2 * 1 * 6 * 6).float().view(2, 1, 6, 6)
    out = crop(img, torch.tensor([0, 2]), torch.tensor([1, 3]), 2)
    assert torch.equal(out[0, 0], img[0, 0, 0:2, 1:3])
    assert torch.equal(out[1, 0], img[1, 0, 2:4, 3:5])


def coordinate_image(n: int = 16, size: int = 32) -> torch.Tensor:
    """Channel 0 = row index, channel 1 = column index, channel 2 = 0."""
    ys, xs = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    img = torch.stack([ys, xs, torch.zeros_like(ys)]).float()
    return img.unsqueeze(0).expand(n, -1, -1, -1).contiguous()


# -- rotation --------------------------------------------------------------------------------------


def test_rotation_four_quarter_turns_is_identity(scenes: torch.Tensor) -> None:
    assert torch.equal(rotation.rotate(rotation.rotate(scenes, 1), 3), scenes)
    x, y = rotation.make_batch(scenes, torch.Generator().manual_seed(0))
    # Every labelled input is the rotation of some scene by its label.
    for xi, yi in zip(x, y, strict=True):
        back = rotation.rotate(xi.unsqueeze(0), -int(yi))
        assert any(torch.equal(back[0], s) for s in scenes)
    assert rotation.RotationNet()(x).shape == (len(x), 4)


# -- exemplar --------------------------------------------------------------------------------------


def test_exemplar_views_keep_shape_and_labels(scenes: torch.Tensor) -> None:
    g = torch.Generator().manual_seed(0)
    ids = torch.arange(len(scenes))
    views, labels = exemplar.make_batch((scenes, ids), g)
    assert views.shape == scenes.shape and torch.equal(labels, ids)
    assert not torch.allclose(views, scenes)
    assert torch.isfinite(views).all()
    out = exemplar.ExemplarNet()(views)
    assert out.shape == (len(scenes), exemplar.NUM_SURROGATE_CLASSES)


# -- relative position -------------------------------------------------------------------------------


def test_relative_position_neighbour_lies_where_the_label_says() -> None:
    img = coordinate_image()
    g = torch.Generator().manual_seed(0)
    (centre, neighbour), labels = relative_position.make_batch(img, g)
    assert centre.shape == neighbour.shape == (16, 3, 8, 8)
    cell = relative_position.PATCH + relative_position.GAP
    for c, nb, lab in zip(centre, neighbour, labels, strict=True):
        dy = float(nb[0, 0, 0] - c[0, 0, 0])
        dx = float(nb[1, 0, 0] - c[1, 0, 0])
        row, col = relative_position.NEIGHBOURS[int(lab)]
        jitter = 2 * relative_position.JITTER
        assert abs(dy - (row - 1) * cell) <= jitter and abs(dx - (col - 1) * cell) <= jitter
    logits = relative_position.RelativePositionNet()(centre, neighbour)
    assert logits.shape == (16, 8)


# -- jigsaw ------------------------------------------------------------------------------------------


def test_permutation_set_has_large_hamming_distance() -> None:
    perms = torch.tensor(jigsaw.permutation_set())
    assert perms.shape == (jigsaw.NUM_PERMUTATIONS, 9)
    assert all(sorted(p) == list(range(9)) for p in perms.tolist())
    assert len({tuple(p) for p in perms.tolist()}) == len(perms)
    assert perms[0].tolist() == list(range(9))
    d = jigsaw.hamming_distances(perms)
    off_diagonal = d[~torch.eye(len(perms), dtype=torch.bool)]
    assert off_diagonal.min() >= 6
    assert off_diagonal.float().mean() > 8
    assert jigsaw.permutation_set() == jigsaw.permutation_set()  # deterministic


def test_jigsaw_tiles_are_shuffled_by_the_labelled_permutation() -> None:
    img = coordinate_image()
    # With the same generator state, input position j shows original tile perm[j].
    plain = jigsaw.cut_tiles(img, torch.Generator().manual_seed(5))
    shuffled, labels = jigsaw.make_batch(img, torch.Generator().manual_seed(5))
    assert shuffled.shape == (16, 9, 3, 8, 8)
    perms = jigsaw.permutation_set()
    for s, p, lab in zip(shuffled, plain, labels, strict=True):
        perm = perms[int(lab)]
        assert all(torch.equal(s[j], p[perm[j]]) for j in range(9))
    assert len(set(labels.tolist())) > 1
    assert jigsaw.JigsawNet()(shuffled).shape == (16, jigsaw.NUM_PERMUTATIONS)


def test_jigsaw_tiles_come_from_their_grid_cells_and_are_mean_free() -> None:
    img = coordinate_image()
    raw = jigsaw.cut_tiles(img, torch.Generator().manual_seed(1))
    slack = 32 - 3 * jigsaw.CELL + jigsaw.CELL - jigsaw.TILE  # grid offset + place in cell
    for k in range(9):
        r, c = divmod(k, 3)
        top, left = raw[:, k, 0, 0, 0], raw[:, k, 1, 0, 0]
        assert ((top >= r * jigsaw.CELL) & (top <= r * jigsaw.CELL + slack)).all()
        assert ((left >= c * jigsaw.CELL) & (left <= c * jigsaw.CELL + slack)).all()
    # Between neighbours in a row there is a gap of random width (0 to 2·(CELL − TILE) px).
    gaps = raw[:, 1, 1, 0, 0] - raw[:, 0, 1, 0, 0] - jigsaw.TILE
    assert gaps.min() >= 0 and gaps.max() <= 2 * (jigsaw.CELL - jigsaw.TILE)
    tiles = jigsaw.cut_tiles(img, torch.Generator().manual_seed(1), normalise=True)
    assert tiles.mean(dim=(3, 4)).abs().max() < 1e-4


# -- denoising and context encoder ---------------------------------------------------------------------


def test_denoising_masks_whole_pixels(scenes: torch.Tensor) -> None:
    noisy, clean = denoising.make_batch(scenes, torch.Generator().manual_seed(0))
    assert torch.equal(clean, scenes)
    destroyed = (noisy == 0).all(dim=1)
    frac = destroyed.float().mean().item()
    assert abs(frac - denoising.MASKING_FRACTION) < 0.05
    kept = ~destroyed
    assert torch.equal(noisy.permute(0, 2, 3, 1)[kept], scenes.permute(0, 2, 3, 1)[kept])
    assert denoising.DenoisingAutoencoder()(noisy).shape == scenes.shape


def test_context_encoder_hides_the_centre_and_predicts_it(scenes: torch.Tensor) -> None:
    masked, centre = context_encoder.make_batch(scenes)
    hole = context_encoder.hole_slice(32)
    assert (hole.start, hole.stop) == (8, 24)
    assert torch.equal(centre, scenes[:, :, 8:24, 8:24])
    assert (masked[:, :, 8:24, 8:24] == 0).all()
    assert torch.equal(masked[:, :, :8], scenes[:, :, :8])
    assert context_encoder.ContextEncoder()(masked).shape == centre.shape


def test_channelwise_fc_mixes_positions_not_channels() -> None:
    layer = context_encoder.ChannelwiseFC(channels=2, positions=4)
    x = torch.zeros(1, 2, 2, 2)
    x[0, 0, 0, 0] = 1.0  # a single input in channel 0
    out = layer(x) - layer(torch.zeros_like(x))
    assert out[0, 1].abs().sum() == 0  # channel 1 untouched
    torch.testing.assert_close(out[0, 0].flatten(), layer.weight[0, 0])


# -- colorization and split-brain -----------------------------------------------------------------------


def test_lab_matches_reference_values() -> None:
    # sRGB white, black, pure red (CIE Lab, D65): hand-checked reference values.
    rgb = torch.tensor([[1.0, 1, 1], [0, 0, 0], [1, 0, 0]]).view(3, 3, 1, 1)
    lab = colorization.rgb_to_lab(rgb).view(3, 3)
    torch.testing.assert_close(lab[0], torch.tensor([100.0, 0, 0]), atol=0.02, rtol=0)
    torch.testing.assert_close(lab[1], torch.tensor([0.0, 0, 0]), atol=0.02, rtol=0)
    torch.testing.assert_close(lab[2], torch.tensor([53.24, 80.09, 67.20]), atol=0.05, rtol=0)


def test_lab_round_trip(scenes: torch.Tensor) -> None:
    from nndoctor.zoo.data import to_unit_rgb

    rgb = to_unit_rgb(scenes).double()
    back = colorization.lab_to_rgb(colorization.rgb_to_lab(rgb))
    torch.testing.assert_close(back, rgb, atol=1e-6, rtol=0)


def test_colour_bins_cover_the_gamut(scenes: torch.Tensor) -> None:
    lightness, bins = colorization.make_batch(scenes)
    assert lightness.shape == (8, 1, 32, 32) and bins.shape == (8, 8, 8)
    assert bins.min() >= 0 and bins.max() < colorization.NUM_AB_BINS
    # The centre of a pixel's bin is within half a bin of its (block-averaged) ab.
    lab = colorization.scenes_to_lab(scenes)
    ab = torch.nn.functional.avg_pool2d(lab[:, 1:], 4)
    centres = colorization.ab_bin_centres()[bins]  # [8, 8, 8, 2]
    assert (centres - ab.permute(0, 2, 3, 1)).abs().max() <= colorization.AB_BIN / 2 + 1e-4
    logits = colorization.ColorizationNet()(lightness)
    assert logits.shape == (8, colorization.NUM_AB_BINS, 8, 8)


def test_split_brain_halves_see_disjoint_channels(scenes: torch.Tensor) -> None:
    (lightness, ab), (ab_bins, l_bins) = split_brain.make_batch(scenes)
    assert lightness.shape == (8, 1, 32, 32) and ab.shape == (8, 2, 32, 32)
    assert l_bins.shape == ab_bins.shape == (8, 8, 8)
    assert l_bins.max() < split_brain.NUM_L_BINS
    model = split_brain.SplitBrainNet()
    ab_logits, l_logits = model(lightness, ab)
    assert ab_logits.shape == (8, colorization.NUM_AB_BINS, 8, 8)
    assert l_logits.shape == (8, split_brain.NUM_L_BINS, 8, 8)
    # F1 only sees L: changing ab leaves its output alone.
    model.eval()
    a1, _ = model(lightness, ab)
    a2, _ = model(lightness, ab + 1)
    assert torch.equal(a1, a2)
    widths = [f.shape[1] for f in model.probe_features(scenes).values()]
    assert widths == list(ConvTrunk().widths)  # both halves together: the full width


# -- counting --------------------------------------------------------------------------------------------


def test_counting_tiles_reassemble_the_image(scenes: torch.Tensor) -> None:
    tiles = counting.tile(scenes)  # [N, 4, 3, 16, 16]
    assert tiles.shape == (8, 4, 3, 16, 16)
    top = torch.cat([tiles[:, 0], tiles[:, 1]], dim=3)
    bottom = torch.cat([tiles[:, 2], tiles[:, 3]], dim=3)
    assert torch.equal(torch.cat([top, bottom], dim=2), scenes)
    assert counting.downsample(scenes).shape == (8, 3, 16, 16)


def test_counting_equivariance_shapes_and_collapse_value(scenes: torch.Tensor) -> None:
    batch = counting.make_batch(scenes)
    model = counting.CountingNet()
    whole = model(batch["image"])
    summed = model(batch["tiles"].flatten(0, 1)).view(8, 4, -1).sum(1)
    assert whole.shape == summed.shape == (8, counting.NUM_COUNTS)
    assert (whole >= 0).all()  # counts are non-negative
    assert torch.equal(batch["other"], counting.downsample(scenes.roll(1, 0)))

    class Zero(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.zeros(len(x), counting.NUM_COUNTS)

    # The collapsed solution φ ≡ 0 scores exactly the margin.
    assert counting.counting_loss(Zero(), batch).item() == pytest.approx(counting.MARGIN)


# -- multi-task -------------------------------------------------------------------------------------------


def test_multitask_heads_share_one_trunk() -> None:
    subject = small_subject("multitask")
    batch = subject.take_batches(1)[0]
    out = subject.forward_output(subject.model, batch)
    assert out["rotation"].shape == (4 * multitask.ROTATION_IMAGES, 4)
    assert out["relative_position"].shape[1] == relative_position.NUM_POSITIONS
    assert out["colorization"].shape == (multitask.COLOR_IMAGES, colorization.NUM_AB_BINS, 8, 8)
    trunks = [m for m in subject.model.modules() if isinstance(m, ConvTrunk)]
    assert len(trunks) == 1


# -- example scripts -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", SSL_NAMES)
def test_example_script_runs(
    name: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    script = ROOT / get_zoo(name).script
    argv = [str(script), "--steps", "2", "--batch-size", "16"]
    if name != "exemplar":
        argv += ["--scenes", "64"]
    monkeypatch.setattr(sys, "argv", argv)
    state = torch.random.get_rng_state()
    try:
        runpy.run_path(str(script), run_name="__main__")
    finally:
        torch.random.set_rng_state(state)
    out = capsys.readouterr().out
    assert "step    1  loss" in out
    loss = float(out.split("loss")[1].split()[0])
    assert math.isfinite(loss)


def test_probe_table_shows_accuracy_per_depth_and_the_pretext_loss() -> None:
    probe = importlib.import_module("nndoctor.zoo.ssl.probe")
    accs = {d: 0.25 + 0.1 * i for i, d in enumerate(probe.DEPTHS)}
    rows = [
        {
            "trunk": "random",
            **accs,
            "steps": 0,
            "seconds": 0.0,
            "loss_start": None,
            "loss_end": None,
        },
        {
            "trunk": "rotation",
            **accs,
            "steps": 300,
            "seconds": 41.5,
            "loss_start": 1.386,
            "loss_end": 0.2,
        },
    ]
    text = probe.format_table(rows)
    header, _, random_line, rotation_line = text.splitlines()[:4]
    assert all(d in header for d in probe.DEPTHS)
    assert "25.0%" in random_line and random_line.rstrip().endswith("-")
    assert "1.386 → 0.2" in rotation_line and "41.5" in rotation_line


# -- full training (slow) -----------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("name", SSL_NAMES)
def test_subject_learns(name: str) -> None:
    result = get_zoo(name).train()
    assert result["loss_end"] < 0.7 * result["loss_start"], result
    if result["chance"] is not None:
        assert result["loss_end"] < 0.8 * result["chance"], result
    if name == "counting":
        assert result["loss_end"] < counting.MARGIN, result


@pytest.mark.slow
def test_every_ssl_trunk_beats_random_init_in_the_linear_probe() -> None:
    # Compared from conv2 on: a probe on conv1 (one 3×3 layer on pixels) reads the pixels'
    # colour layout about as well from random filters as from any trained ones.
    probe = importlib.import_module("nndoctor.zoo.ssl.probe")
    rows = probe.linear_probe_table()
    by_trunk = {r["trunk"]: r for r in rows}
    depths = probe.DEPTHS[1:]
    random_best = max(by_trunk["random"][d] for d in depths)
    for name in SSL_NAMES:
        best = max(by_trunk[name][d] for d in depths)
        assert best > random_best, (name, best, random_best)
    assert max(by_trunk["supervised"][d] for d in depths) > random_best + 0.2
