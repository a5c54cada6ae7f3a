"""The detection zoo: generated data, BiFPN pieces, both detectors' shapes, loss and training."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from nndoctor.subject import Subject
from nndoctor.zoo.detection import efficientdet, yolov3
from nndoctor.zoo.detection.boxes import box_iou
from nndoctor.zoo.detection.shapes import (
    NUM_CLASSES,
    PAD_CLASS,
    ShapesConfig,
    ShapesDetection,
    collate_detection,
    generate_shapes,
    split_targets,
    standardise,
)
from nndoctor.zoo.registry import get_zoo

ROOT = Path(__file__).resolve().parents[2]
DETECTORS = ("yolov3", "efficientdet")


# -- data ----------------------------------------------------------------------------


def test_same_seed_same_data_and_splits_differ() -> None:
    a, b = generate_shapes(16, seed=3), generate_shapes(16, seed=3)
    assert torch.equal(a.pixels, b.pixels)
    assert torch.equal(a.boxes, b.boxes) and torch.equal(a.labels, b.labels)
    assert not torch.equal(a.pixels, generate_shapes(16, seed=4).pixels)
    train, val = ShapesDetection("train", size=8), ShapesDetection("val", size=8)
    assert not torch.equal(train.data.pixels, val.data.pixels)


def test_objects_lie_inside_the_canvas_with_padding_last() -> None:
    cfg = ShapesConfig()
    data = generate_shapes(256, seed=0, config=cfg)
    present = data.labels != PAD_CLASS  # (N, M)
    counts = present.sum(1)
    assert counts.min() >= cfg.min_objects and counts.max() <= cfg.max_objects
    # Objects first, padding after.
    assert torch.equal(present, torch.arange(cfg.max_objects) < counts[:, None])
    b = data.boxes[present]
    assert (b[:, :2] >= 0).all() and (b[:, 2:] <= cfg.image_size).all()
    size = (b[:, 2:] - b[:, :2]).prod(1).sqrt()
    assert size.min() >= cfg.min_size - 1e-3 and size.max() <= cfg.max_size + 1e-3
    assert set(data.labels[present].tolist()) == set(range(NUM_CLASSES))


def test_shapes_fill_their_boxes() -> None:
    # A lone shape: the pixels that differ from the background lie inside its box,
    # and cover about 1, pi/4 or 1/2 of it (rectangle, ellipse, triangle).
    cfg = ShapesConfig(min_objects=1, max_objects=1, min_size=20, max_size=30, noise_std=0.0)
    data = generate_shapes(64, seed=0, config=cfg)
    expected = torch.tensor([1.0, math.pi / 4, 0.5])
    for pixels, box, label in zip(data.pixels, data.boxes[:, 0], data.labels[:, 0], strict=True):
        x1, y1, x2, y2 = box.tolist()
        inner = pixels[:, math.ceil(y1) : math.floor(y2), math.ceil(x1) : math.floor(x2)]
        background = pixels[:, 0, 0] if x1 > 1 or y1 > 1 else pixels[:, -1, -1]
        far = (inner.float() - background.float()[:, None, None]).abs().amax(0) > 40
        assert far.float().mean() == pytest.approx(float(expected[label]), abs=0.15)


def test_standardised_inputs_have_zero_mean_unit_std() -> None:
    # CHANNEL_MEAN / CHANNEL_STD were measured on the seed-0 training split; another
    # seed and split must land close (each image's background colour is random, so a
    # set of 1024 images has a mean within a few hundredths of a std).
    images = standardise(ShapesDetection("val", size=1024, seed=1).data.pixels)
    mean, std = images.mean(dim=(0, 2, 3)), images.std(dim=(0, 2, 3))
    torch.testing.assert_close(mean, torch.zeros(3), atol=0.1, rtol=0)
    torch.testing.assert_close(std, torch.ones(3), atol=0.1, rtol=0)


def test_collate_pads_variable_numbers_of_boxes() -> None:
    items = [
        (torch.zeros(3, 4, 4), torch.tensor([[1.0, 0, 0, 2, 2]])),
        (torch.ones(3, 4, 4), torch.tensor([[0.0, 0, 0, 1, 1], [2.0, 1, 1, 3, 3]])),
        (torch.ones(3, 4, 4), torch.zeros(0, 5)),
    ]
    images, targets = collate_detection(items)
    assert images.shape == (3, 3, 4, 4) and targets.shape == (3, 2, 5)
    assert targets[:, :, 0].tolist() == [[1, PAD_CLASS], [0, 2], [PAD_CLASS, PAD_CLASS]]
    (b0, l0), (b1, l1), (b2, l2) = split_targets(targets)
    assert l0.tolist() == [1] and l1.tolist() == [0, 2] and len(l2) == 0
    torch.testing.assert_close(b1, torch.tensor([[0.0, 0, 1, 1], [1, 1, 3, 3]]))


# -- EfficientDet pieces ------------------------------------------------------------------


def test_fast_normalised_fusion_against_hand_computation() -> None:
    fusion = efficientdet.FastNormalizedFusion(3)
    with torch.no_grad():
        fusion.weight.copy_(torch.tensor([2.0, -1.0, 1.0]))  # ReLU -> 2, 0, 1
    eps = efficientdet.FAST_FUSION_EPS
    assert eps == 1e-4
    expected = torch.tensor([2 / (3 + eps), 0.0, 1 / (3 + eps)])
    torch.testing.assert_close(fusion.fusion_weights(), expected)
    inputs = [torch.full((1, 2, 2, 2), v) for v in (1.0, 5.0, 4.0)]
    out = fusion(inputs)
    torch.testing.assert_close(out, torch.full((1, 2, 2, 2), (2 * 1 + 1 * 4) / (3 + eps)))
    # Gradient of the fused sum with respect to the raw weights, by hand:
    # d/dv_i [sum_j w_j x_j] = relu'(v_i) (x_i - O) / (eps + S), O = fused value, S = 3.
    out.sum().backward()
    fused = (2 * 1 + 1 * 4) / (3 + eps)
    hand = torch.tensor([(1 - fused), 0.0, (4 - fused)]) / (3 + eps) * 8  # 8 elements
    torch.testing.assert_close(fusion.weight.grad, hand)


def test_bifpn_topology_is_the_papers_graph() -> None:
    t = efficientdet.bifpn_topology(3)
    # Inputs 0, 1, 2 (finest first); top-down node 3 at level 1, node 4 at level 0;
    # bottom-up node 5 at level 1 with the extra same-level edge from input 1; node 6.
    assert [(n.level, n.inputs) for n in t.nodes] == [
        (1, (1, 2)),
        (0, (0, 3)),
        (1, (1, 3, 4)),
        (2, (2, 5)),
    ]
    assert t.outputs == (4, 5, 6)
    t5 = efficientdet.bifpn_topology(5)  # P3-P7 as in the paper
    assert len(t5.nodes) == 8
    assert [len(n.inputs) for n in t5.nodes] == [2, 2, 2, 2, 3, 3, 3, 2]


def test_compound_scaling_table_grows_with_phi() -> None:
    d0, d1 = efficientdet.compound_config(0), efficientdet.compound_config(1)
    assert (d0.bifpn_width, d0.bifpn_depth, d0.head_depth, d0.resolution) == (16, 2, 2, 64)
    assert d1.bifpn_width > d0.bifpn_width and d1.bifpn_depth == d0.bifpn_depth + 1
    assert d1.resolution > d0.resolution and d1.depth_coefficient > d0.depth_coefficient
    n0 = sum(p.numel() for p in efficientdet.EfficientDet(d0).parameters())
    model = efficientdet.EfficientDet(d1).eval()
    assert sum(p.numel() for p in model.parameters()) > n0
    with torch.no_grad():  # D1 runs at its own resolution, 80: levels 20, 10 and 5 wide
        class_logits, box_deltas = model(torch.zeros(1, 3, d1.resolution, d1.resolution))
    assert [c.shape[1] for c in class_logits] == [n * n * d1.num_anchors for n in (20, 10, 5)]
    assert sum(b.shape[1] for b in box_deltas) == model.anchors.shape[0]


def test_focal_loss_against_hand_computation() -> None:
    logits = torch.tensor([0.0, 2.0])
    targets = torch.tensor([1.0, 0.0])
    p = torch.sigmoid(logits)
    hand = torch.stack(
        [
            -0.25 * (1 - p[0]) ** 2 * torch.log(p[0]),
            -0.75 * p[1] ** 2 * torch.log(1 - p[1]),
        ]
    )
    torch.testing.assert_close(efficientdet.focal_loss(logits, targets), hand)


def test_anchor_matching_positive_ignored_and_forced() -> None:
    anchors = torch.tensor([[0.0, 0, 10, 10], [0, 0, 10, 8], [0, 0, 10, 5.5], [30, 30, 40, 40]])
    # One object equal to anchor 0; anchor 1 has IoU .8 (positive), 2 has .55, 3 is far.
    targets = torch.tensor([[[2.0, 0, 0, 10, 10]]])
    matched, _ = efficientdet.match_anchors(anchors, targets)
    assert matched.tolist() == [[0, 0, 0, -1]]
    # A tiny object overlaps no anchor by 0.4, yet claims its best one.
    targets = torch.tensor([[[1.0, 30, 30, 33, 33], [PAD_CLASS, 0, 0, 0, 0]]])
    matched, _ = efficientdet.match_anchors(anchors, targets)
    assert matched.tolist() == [[-1, -1, -1, 0]]


# -- YOLOv3 pieces -----------------------------------------------------------------------


def test_yolo_decoding_follows_the_paper() -> None:
    anchors = torch.tensor([[10.0, 20.0]])
    out = torch.zeros(1, 1, 2, 2, 5 + NUM_CLASSES)
    out[0, 0, 1, 0, :4] = torch.tensor([0.0, 0.0, math.log(2.0), 0.0])
    boxes, _, _ = yolov3.decode_scale(out, anchors, stride=8)
    # Cell (row 1, column 0): centre ((sigma(0) + 0) * 8, (sigma(0) + 1) * 8) = (4, 12),
    # size (10 e^{log 2}, 20 e^0) = (20, 20).
    torch.testing.assert_close(boxes[0, 0, 1, 0], torch.tensor([-6.0, 2.0, 14.0, 22.0]))


def test_yolo_assigns_one_prior_and_ignores_good_overlaps() -> None:
    anchors = torch.tensor([[[8.0, 8.0], [12, 12], [16, 16]], [[20, 20], [24, 24], [28, 28]]])
    strides = (8, 16)
    outputs = [
        torch.zeros(1, 3, 4, 4, 5 + NUM_CLASSES, requires_grad=True),
        torch.zeros(1, 3, 2, 2, 5 + NUM_CLASSES, requires_grad=True),
    ]
    # A 12x12 object centred at (12, 12): best prior 12x12 at stride 8, cell (1, 1).
    targets = torch.tensor([[[1.0, 6, 6, 18, 18]]])
    yolov3.yolo_loss(outputs, targets, anchors, strides).backward()
    obj_grad = [o.grad[..., 4] for o in outputs]
    negative = [(g < 0).nonzero().tolist() for g in obj_grad]
    assert negative == [[[0, 1, 1, 1]], []]  # only the assigned prior is pushed up
    # Priors that already predict the object well (IoU > 0.5) get no objectness loss.
    boxes, _, _ = yolov3.decode_scale(outputs[0].detach(), anchors[0], 8)
    iou = box_iou(boxes.view(-1, 4), targets[0, :, 1:]).view(3, 4, 4)
    ignored = iou > yolov3.IGNORE_THRESHOLD
    ignored[1, 1, 1] = False
    assert ignored.any()
    assert (obj_grad[0][0][ignored] == 0).all()
    assert (obj_grad[0][0][~ignored & (obj_grad[0][0] >= 0)] > 0).all()
    # Class and box gradients only at the assigned prior.
    others = outputs[0].grad[..., [0, 1, 2, 3, 5, 6, 7]].abs().sum(-1)
    assert others.nonzero().tolist() == [[0, 1, 1, 1]]


# -- the registered subjects ------------------------------------------------------------


@pytest.fixture(scope="module", params=DETECTORS)
def subject(request: pytest.FixtureRequest) -> Subject:
    return get_zoo(request.param).build(seed=0)


def test_registered_with_a_script() -> None:
    for name in DETECTORS:
        entry = get_zoo(name)
        assert entry.family == "detection" and entry.default_steps > 0
        assert (ROOT / entry.script).is_file()


def test_output_shapes_at_each_scale(subject: Subject) -> None:
    images, targets = subject.take_batches(1)[0]
    assert images.shape[1:] == (3, 64, 64) and targets.shape[-1] == 5
    with torch.no_grad():
        out = subject.forward_output(subject.model, (images[:2], targets[:2]))
    if subject.name == "yolov3":
        a = 3
        assert [tuple(o.shape) for o in out] == [
            (2, a, 8, 8, 5 + NUM_CLASSES),
            (2, a, 4, 4, 5 + NUM_CLASSES),
            (2, a, 2, 2, 5 + NUM_CLASSES),
        ]
    else:
        class_logits, box_deltas = out
        a = subject.model.cfg.num_anchors
        assert [tuple(c.shape) for c in class_logits] == [
            (2, 16 * 16 * a, NUM_CLASSES),
            (2, 8 * 8 * a, NUM_CLASSES),
            (2, 4 * 4 * a, NUM_CLASSES),
        ]
        assert [tuple(b.shape) for b in box_deltas] == [
            (2, 16 * 16 * a, 4),
            (2, 8 * 8 * a, 4),
            (2, 4 * 4 * a, 4),
        ]
        assert subject.model.anchors.shape == (21 * 16 * a, 4)


def test_one_step_gives_every_parameter_a_gradient_and_changes_it(subject: Subject) -> None:
    model = subject.model
    state = {k: v.clone() for k, v in model.state_dict().items()}
    try:
        optimizer = subject.optimizer.build(model)
        batch = subject.take_batches(1)[0]
        loss = subject.compute_loss(model, batch)
        assert torch.isfinite(loss) and loss > 0
        optimizer.zero_grad()
        loss.backward()
        no_grad = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
        zero_grad = [
            n for n, p in model.named_parameters() if p.grad is not None and not p.grad.any()
        ]
        assert no_grad == [] and zero_grad == []
        before = {n: p.detach().clone() for n, p in model.named_parameters()}
        optimizer.step()
        unchanged = [n for n, p in model.named_parameters() if torch.equal(p, before[n])]
        assert unchanged == []
        assert torch.isfinite(subject.compute_loss(model, batch))
    finally:
        model.load_state_dict(state)


def test_same_seed_same_batches_and_first_loss(subject: Subject) -> None:
    name = "yolov3" if subject.name == "yolov3" else "efficientdet"
    again = get_zoo(name).build(seed=0)
    first, second = subject.take_batches(2), again.take_batches(2)
    for (x1, t1), (x2, t2) in zip(first, second, strict=True):
        assert torch.equal(x1, x2) and torch.equal(t1, t2)
    assert not torch.equal(first[0][0], first[1][0])  # shuffled, not one batch repeated
    torch.testing.assert_close(
        subject.compute_loss(subject.model, first[0]), again.compute_loss(again.model, second[0])
    )


def test_loss_falls_on_a_small_batch(subject: Subject) -> None:
    # A few steps on 8 images drive the loss well down: a fast form of the slow runs.
    model = subject.model
    state = {k: v.clone() for k, v in model.state_dict().items()}
    try:
        images, targets = subject.take_batches(1)[0]
        batch = (images[:8], targets[:8])
        optimizer = subject.optimizer.build(model)
        losses = []
        for _ in range(15):
            loss = subject.compute_loss(model, batch)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        assert losses[-1] < 0.7 * losses[0]
    finally:
        model.load_state_dict(state)


# -- full training (slow: left out of CI) ------------------------------------------------

# AP@0.5 on the validation split after the default steps (seed 0, two CPU cores):
# measured 0.939 (YOLOv3, 2000 steps, ~110 s) and 0.987 (EfficientDet-D0, 1200 steps,
# ~100 s); the floors sit a little under.
AP50_FLOOR = {"yolov3": 0.90, "efficientdet": 0.95}


@pytest.mark.slow
@pytest.mark.parametrize("name", DETECTORS)
def test_full_training_reaches_the_ap_floor(name: str) -> None:
    result = get_zoo(name).train(seed=0)
    assert result["loss_end"] < 0.25 * result["loss_start"]
    assert result["ap50"] >= AP50_FLOOR[name]
    assert 0 < result["ap"] <= result["ap50"]
