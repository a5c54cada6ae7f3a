"""A small EfficientDet-style detector (Tan, Pang & Le, "EfficientDet: Scalable and
Efficient Object Detection", CVPR 2020).

What is kept from the paper, scaled down to 64-pixel canvases and two CPU cores:

* a compound-scaled backbone of MBConv blocks (inverted residuals with depthwise
  convolutions and squeeze-and-excitation, Tan & Le 2019, "EfficientNet");
* a repeated BiFPN (section 3): a top-down path, then a bottom-up path in which
  every intermediate level also takes the *extra same-level edge* from the layer's
  input; each node fuses its inputs with *fast normalised fusion*
  ``O = sum_i w_i I_i / (eps + sum_j w_j)`` with ``w_i = ReLU(w_i)`` learned per
  node (equation 2, ``eps = FAST_FUSION_EPS``), followed by a depthwise-separable
  convolution, batch norm and swish. The topology is data
  (:func:`bifpn_topology`), built once per number of levels, as in
  ``effdet/config/fpn_config.py``;
* class and box nets whose convolution weights are shared across levels (batch
  norm stays per level, as in the reference implementation);
* anchors of 3 octave scales x 3 aspect ratios per location, focal loss
  (Lin et al. 2017, alpha = 0.25, gamma = 2) for classes and a Huber (smooth-L1)
  loss on R-CNN box deltas for positive anchors;
* a compound-scaling table (section 4.2) from one coefficient phi
  (:func:`compound_config`).

The three levels have strides 4, 8 and 16 (16x16, 8x8 and 4x4 at 64 pixels): the
objects span 8 to 30 pixels, the range the paper's P3-P7 covers at 512 pixels.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

from nndoctor.subject import OptimizerSpec, Subject, Task
from nndoctor.zoo.detection._training import train_and_evaluate
from nndoctor.zoo.detection.boxes import (
    MAX_DETECTIONS,
    Detections,
    box_iou,
    decode_boxes,
    encode_boxes,
    evaluate_detector,
    select_detections,
)
from nndoctor.zoo.detection.shapes import (
    NUM_CLASSES,
    PAD_CLASS,
    ShapesConfig,
    ShapesDetection,
    collate_detection,
)
from nndoctor.zoo.registry import ZooEntry, register_zoo

# Equation 2 of the paper: fast normalised fusion adds this to the sum of the weights.
FAST_FUSION_EPS = 1e-4
# Focal loss (Lin et al. 2017, section 3.2): the paper's alpha and gamma.
FOCAL_ALPHA = 0.25
FOCAL_GAMMA = 2.0
# Class logits start at this probability (Lin et al. 2017, section 4.1, "prior").
PRIOR_PROBABILITY = 0.01
# Box regression: Huber loss with this delta on the deltas, weighted against the class
# loss by BOX_LOSS_WEIGHT (the reference implementation's 0.1 and 50).
HUBER_DELTA = 0.1
BOX_LOSS_WEIGHT = 50.0
# Anchor matching (RetinaNet): IoU >= 0.5 positive, < 0.4 background, between ignored;
# every ground truth also claims its best anchor so that none is left unmatched.
POSITIVE_IOU = 0.5
NEGATIVE_IOU = 0.4
# Anchors: 3 octave scales x 3 aspect ratios per location (section 4.1 / RetinaNet);
# the base size is ANCHOR_SCALE x stride (the paper uses 4 at strides 8-128; 2 here
# fits 8-30 pixel objects at strides 4-16).
ANCHOR_SCALE = 2.0
OCTAVE_SCALES: tuple[float, ...] = (2**0, 2 ** (1 / 3), 2 ** (2 / 3))
ASPECT_RATIOS: tuple[tuple[float, float], ...] = ((1.0, 1.0), (1.4, 0.7), (0.7, 1.4))
# Squeeze-and-excitation bottleneck, relative to the block's input channels (EfficientNet).
SE_RATIO = 0.25
# Post-processing and evaluation.
SCORE_THRESHOLD = 0.01
NMS_IOU_THRESHOLD = 0.5
PRE_NMS_TOP_K = 300

# Training recipe for `train()` and the example script.
BATCH_SIZE = 32
LEARNING_RATE = 5e-3
WEIGHT_DECAY = 1e-4
DEFAULT_STEPS = 1200


# -- config: the compound-scaling table ---------------------------------------------

# Section 4.2 at 512 pixels: W_bifpn = 64 * 1.35^phi, D_bifpn = 3 + phi,
# D_box = D_class = 3 + floor(phi / 3), R = 512 + 128 phi, backbone EfficientNet-B{phi}.
# The same laws, from a base sized for 64-pixel canvases:
BIFPN_BASE_WIDTH = 16
BIFPN_WIDTH_FACTOR = 1.35
BIFPN_BASE_DEPTH = 2
HEAD_BASE_DEPTH = 2
BASE_RESOLUTION = 64
RESOLUTION_STEP = 16
# EfficientNet-B0..B2 (width, depth) coefficients (Tan & Le 2019, table of variants).
BACKBONE_COEFFICIENTS: tuple[tuple[float, float], ...] = ((1.0, 1.0), (1.0, 1.1), (1.1, 1.2))


@dataclass(frozen=True)
class StageSpec:
    """One backbone stage of MBConv blocks (EfficientNet-B0 notation)."""

    expand: int  # expansion ratio of the inverted bottleneck
    kernel: int  # depthwise kernel size
    stride: int  # of the first block
    channels: int  # output channels before width scaling
    repeats: int  # blocks before depth scaling


# A narrow EfficientNet-B0: a stride-2 stem then these stages. Expansion 4 instead of
# 6 and fewer, narrower stages keep it cheap; the last three stages give the levels.
BASE_STAGES: tuple[StageSpec, ...] = (
    StageSpec(expand=1, kernel=3, stride=1, channels=8, repeats=1),  # stride 2
    StageSpec(expand=4, kernel=3, stride=2, channels=16, repeats=1),  # stride 4 -> P2
    StageSpec(expand=4, kernel=5, stride=2, channels=24, repeats=2),  # stride 8 -> P3
    StageSpec(expand=4, kernel=3, stride=2, channels=40, repeats=2),  # stride 16 -> P4
)
STEM_CHANNELS = 16
LEVEL_STRIDES: tuple[int, ...] = (4, 8, 16)


@dataclass(frozen=True)
class EfficientDetConfig:
    """One row of the compound-scaling table."""

    phi: int
    width_coefficient: float
    depth_coefficient: float
    resolution: int
    bifpn_width: int
    bifpn_depth: int
    head_depth: int
    num_classes: int = NUM_CLASSES

    @property
    def num_anchors(self) -> int:
        return len(OCTAVE_SCALES) * len(ASPECT_RATIOS)


def _round_to(value: float, divisor: int) -> int:
    """Round to the nearest multiple of ``divisor`` (at least ``divisor``)."""
    return max(divisor, int(round(value / divisor)) * divisor)


def compound_config(phi: int) -> EfficientDetConfig:
    """The row for ``phi`` of the scaled-down compound-scaling table."""
    width, depth = BACKBONE_COEFFICIENTS[phi]
    return EfficientDetConfig(
        phi=phi,
        width_coefficient=width,
        depth_coefficient=depth,
        resolution=BASE_RESOLUTION + RESOLUTION_STEP * phi,
        bifpn_width=_round_to(BIFPN_BASE_WIDTH * BIFPN_WIDTH_FACTOR**phi, 8),
        bifpn_depth=BIFPN_BASE_DEPTH + phi,
        head_depth=HEAD_BASE_DEPTH + phi // 3,
    )


COMPOUND_TABLE: tuple[EfficientDetConfig, ...] = tuple(
    compound_config(phi) for phi in range(len(BACKBONE_COEFFICIENTS))
)


# -- BiFPN topology as data -----------------------------------------------------------


@dataclass(frozen=True)
class FusionNode:
    """A BiFPN node: the level it outputs and the features it fuses.

    ``inputs`` index the layer's feature list: ``0 .. L-1`` are the layer's inputs
    (finest level first), ``L + k`` is the output of node ``k``.
    """

    level: int
    inputs: tuple[int, ...]


@dataclass(frozen=True)
class BiFPNTopology:
    """The nodes of one BiFPN layer, in evaluation order, and which feature each level outputs."""

    num_levels: int
    nodes: tuple[FusionNode, ...]
    outputs: tuple[int, ...]


def bifpn_topology(num_levels: int) -> BiFPNTopology:
    """The BiFPN of figure 2(d) for ``num_levels`` levels.

    Top-down, from the second coarsest level to the finest: fuse the input at the
    level with the coarser top-down feature. Bottom-up, from the second finest level
    to the coarsest: fuse the input at the level (the extra same-level edge), the
    top-down node at the level (intermediate levels only) and the finer output.
    """
    nodes: list[FusionNode] = []

    def add(level: int, inputs: tuple[int, ...]) -> int:
        nodes.append(FusionNode(level, inputs))
        return num_levels + len(nodes) - 1

    top_down = {num_levels - 1: num_levels - 1}  # level -> feature on the top-down path
    for level in range(num_levels - 2, -1, -1):
        top_down[level] = add(level, (level, top_down[level + 1]))
    out = {0: top_down[0]}
    for level in range(1, num_levels):
        middle = (top_down[level],) if level < num_levels - 1 else ()
        out[level] = add(level, (level, *middle, out[level - 1]))
    return BiFPNTopology(num_levels, tuple(nodes), tuple(out[lv] for lv in range(num_levels)))


# -- blocks ----------------------------------------------------------------------------


class ConvBNSwish(nn.Sequential):
    """Conv (no bias) -> BN -> swish; ``groups=channels`` makes it depthwise."""

    def __init__(
        self, c_in: int, c_out: int, kernel: int, stride: int = 1, groups: int = 1
    ) -> None:
        super().__init__(
            nn.Conv2d(c_in, c_out, kernel, stride, kernel // 2, groups=groups, bias=False),
            nn.BatchNorm2d(c_out),
            nn.SiLU(),
        )


class SqueezeExcitation(nn.Module):
    """Channel gates from global context: x * sigmoid(W2 swish(W1 mean(x)))."""

    def __init__(self, channels: int, squeezed: int) -> None:
        super().__init__()
        self.reduce = nn.Conv2d(channels, squeezed, 1)
        self.expand = nn.Conv2d(squeezed, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.mean(dim=(2, 3), keepdim=True)  # (B, C, 1, 1)
        return x * torch.sigmoid(self.expand(F.silu(self.reduce(s))))


class MBConv(nn.Module):
    """Inverted residual: 1x1 expand -> depthwise kxk -> SE -> 1x1 project (linear)."""

    def __init__(self, c_in: int, c_out: int, expand: int, kernel: int, stride: int) -> None:
        super().__init__()
        hidden = c_in * expand
        self.expand = ConvBNSwish(c_in, hidden, 1) if expand != 1 else nn.Identity()
        self.depthwise = ConvBNSwish(hidden, hidden, kernel, stride, groups=hidden)
        self.se = SqueezeExcitation(hidden, max(1, int(c_in * SE_RATIO)))
        self.project = nn.Sequential(nn.Conv2d(hidden, c_out, 1, bias=False), nn.BatchNorm2d(c_out))
        self.residual = stride == 1 and c_in == c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.project(self.se(self.depthwise(self.expand(x))))  # (B, c_out, H/s, W/s)
        return x + y if self.residual else y


class EfficientNetBackbone(nn.Module):
    """Stem and MBConv stages scaled by the config's width and depth coefficients.

    Returns the features of the last three stages (strides 4, 8, 16).
    """

    def __init__(self, cfg: EfficientDetConfig) -> None:
        super().__init__()
        c_in = _round_to(STEM_CHANNELS * cfg.width_coefficient, 4)
        self.stem = ConvBNSwish(3, c_in, 3, stride=2)
        stages = []
        for spec in BASE_STAGES:
            c_out = _round_to(spec.channels * cfg.width_coefficient, 4)
            repeats = math.ceil(spec.repeats * cfg.depth_coefficient)
            blocks = []
            for i in range(repeats):
                stride = spec.stride if i == 0 else 1
                blocks.append(MBConv(c_in, c_out, spec.expand, spec.kernel, stride))
                c_in = c_out
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.ModuleList(stages)
        self.out_channels = [
            _round_to(s.channels * cfg.width_coefficient, 4) for s in BASE_STAGES[-3:]
        ]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.stem(x)  # (B, stem, H/2, W/2)
        features = []
        for stage in self.stages:
            x = stage(x)  # (B, c, H/stride, W/stride)
            features.append(x)
        return features[-3:]


class SeparableConv(nn.Sequential):
    """Depthwise 3x3 then pointwise 1x1: the BiFPN's and the heads' convolution."""

    def __init__(self, c_in: int, c_out: int, bias: bool = False) -> None:
        super().__init__(
            nn.Conv2d(c_in, c_in, 3, padding=1, groups=c_in, bias=False),
            nn.Conv2d(c_in, c_out, 1, bias=bias),
        )


class FastNormalizedFusion(nn.Module):
    """``sum_i w_i x_i`` with ``w_i = ReLU(v_i) / (FAST_FUSION_EPS + sum_j ReLU(v_j))``.

    Equation 2 of the paper: as good as a softmax over the weights and cheaper; the
    weights start equal (all ``v_i = 1``).
    """

    def __init__(self, num_inputs: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(num_inputs))

    def fusion_weights(self) -> torch.Tensor:
        w = F.relu(self.weight)  # (n,)
        return w / (FAST_FUSION_EPS + w.sum())

    def forward(self, inputs: list[torch.Tensor]) -> torch.Tensor:
        w = self.fusion_weights()
        return sum(w[i] * x for i, x in enumerate(inputs))  # (B, C, H, W)


class FusionNodeModule(nn.Module):
    """Resample the inputs to the node's level, fuse them, swish, separable conv, BN."""

    def __init__(self, node: FusionNode, levels_of: list[int], width: int) -> None:
        super().__init__()
        self.node = node
        # Steps to go from each input's level to the node's level (+ coarser, - finer).
        self.shifts = [node.level - levels_of[i] for i in node.inputs]
        self.fuse = FastNormalizedFusion(len(node.inputs))
        self.conv = SeparableConv(width, width)
        self.bn = nn.BatchNorm2d(width)

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        inputs = [
            _resample(features[i], shift)
            for i, shift in zip(self.node.inputs, self.shifts, strict=True)
        ]
        return self.bn(self.conv(F.silu(self.fuse(inputs))))  # (B, W, H_level, W_level)


def _resample(x: torch.Tensor, shift: int) -> torch.Tensor:
    """Max-pool 3x3/2 per level down (shift > 0), nearest 2x per level up (shift < 0)."""
    for _ in range(shift):
        x = F.max_pool2d(x, kernel_size=3, stride=2, padding=1)
    if shift < 0:
        x = F.interpolate(x, scale_factor=2.0 ** (-shift), mode="nearest")
    return x


class BiFPNLayer(nn.Module):
    """One BiFPN layer built from a :class:`BiFPNTopology`: L features in, L features out."""

    def __init__(self, topology: BiFPNTopology, width: int) -> None:
        super().__init__()
        self.topology = topology
        levels_of = list(range(topology.num_levels))  # level of every feature, by index
        nodes = []
        for node in topology.nodes:
            nodes.append(FusionNodeModule(node, levels_of, width))
            levels_of.append(node.level)
        self.nodes = nn.ModuleList(nodes)

    def forward(self, inputs: list[torch.Tensor]) -> list[torch.Tensor]:
        features = list(inputs)
        for node in self.nodes:
            features.append(node(features))
        return [features[i] for i in self.topology.outputs]


class HeadNet(nn.Module):
    """Class or box net: separable convs shared across levels, batch norm per level.

    ``forward`` maps per-level features (B, W, H_l, W_l) to per-level predictions
    (B, H_l * W_l * A, outputs_per_anchor), anchors ordered by row, column, anchor.
    """

    def __init__(
        self, width: int, depth: int, num_levels: int, num_anchors: int, outputs_per_anchor: int
    ) -> None:
        super().__init__()
        self.convs = nn.ModuleList([SeparableConv(width, width) for _ in range(depth)])
        self.bns = nn.ModuleList(
            [
                nn.ModuleList([nn.BatchNorm2d(width) for _ in range(depth)])
                for _ in range(num_levels)
            ]
        )
        self.predict = SeparableConv(width, num_anchors * outputs_per_anchor, bias=True)
        self.outputs_per_anchor = outputs_per_anchor

    def forward(self, features: list[torch.Tensor]) -> list[torch.Tensor]:
        outputs = []
        for level, x in enumerate(features):
            for conv, bn in zip(self.convs, self.bns[level], strict=True):
                x = F.silu(bn(conv(x)))  # (B, W, H_l, W_l)
            y = self.predict(x)  # (B, A * K, H_l, W_l)
            b = y.shape[0]
            outputs.append(y.permute(0, 2, 3, 1).reshape(b, -1, self.outputs_per_anchor))
        return outputs


# -- model -------------------------------------------------------------------------------


class EfficientDet(nn.Module):
    """Backbone -> 1x1 projections to the BiFPN width -> repeated BiFPN -> shared heads.

    ``forward(images (B, 3, R, R))`` returns ``(class_logits, box_deltas)``, lists over
    levels (strides 4, 8, 16) of (B, H_l * W_l * A, C) and (B, H_l * W_l * A, 4).
    ``anchors`` (N, 4) is a buffer holding every level's anchors in the same order.
    """

    def __init__(self, cfg: EfficientDetConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.backbone = EfficientNetBackbone(cfg)
        width = cfg.bifpn_width
        self.project = nn.ModuleList(
            [
                nn.Sequential(nn.Conv2d(c, width, 1, bias=False), nn.BatchNorm2d(width))
                for c in self.backbone.out_channels
            ]
        )
        topology = bifpn_topology(len(LEVEL_STRIDES))
        self.bifpn = nn.ModuleList([BiFPNLayer(topology, width) for _ in range(cfg.bifpn_depth)])
        levels, a = len(LEVEL_STRIDES), cfg.num_anchors
        self.class_net = HeadNet(width, cfg.head_depth, levels, a, cfg.num_classes)
        self.box_net = HeadNet(width, cfg.head_depth, levels, a, 4)
        self.register_buffer("anchors", torch.cat(generate_anchors(cfg.resolution)))
        # Prior-probability bias: every class starts at p = PRIOR_PROBABILITY.
        nn.init.constant_(
            self.class_net.predict[-1].bias, -math.log((1 - PRIOR_PROBABILITY) / PRIOR_PROBABILITY)
        )

    def forward(self, images: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        features = self.backbone(images)  # strides 4, 8, 16
        features = [proj(f) for proj, f in zip(self.project, features, strict=True)]
        for layer in self.bifpn:
            features = layer(features)  # (B, W, R/s, R/s) per level
        return self.class_net(features), self.box_net(features)


# -- anchors, matching, loss ---------------------------------------------------------------


def generate_anchors(image_size: int) -> list[torch.Tensor]:
    """Anchors xyxy per level, (H_l * W_l * A, 4), ordered by row, column, anchor.

    Centred on cell centres; size ANCHOR_SCALE * stride * octave scale, stretched by
    the aspect ratio (w, h).
    """
    levels = []
    for stride in LEVEL_STRIDES:
        n = math.ceil(image_size / stride)
        centres = (torch.arange(n, dtype=torch.float32) + 0.5) * stride
        cy, cx = torch.meshgrid(centres, centres, indexing="ij")  # (n, n)
        sizes = torch.tensor(
            [
                (ANCHOR_SCALE * stride * octave * rw, ANCHOR_SCALE * stride * octave * rh)
                for octave in OCTAVE_SCALES
                for rw, rh in ASPECT_RATIOS
            ]
        )  # (A, 2)
        centre = torch.stack([cx, cy], dim=-1).view(n * n, 1, 2)
        boxes = torch.cat([centre - sizes / 2, centre + sizes / 2], dim=-1)  # (n*n, A, 4)
        levels.append(boxes.view(-1, 4))
    return levels


def match_anchors(
    anchors: torch.Tensor, targets: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """RetinaNet matching of anchors (N, 4) to padded targets (B, M, 5).

    Returns ``matched`` (B, N) — the index of the matched ground truth, -1 for
    background, -2 for ignored — and each anchor's best IoU with a ground truth (B, N).
    """
    valid = targets[..., 0] != PAD_CLASS  # (B, M)
    iou = box_iou(anchors, targets[..., 1:])  # (B, N, M) by broadcasting
    iou = iou.masked_fill(~valid[:, None, :], -1.0)
    best_iou, best_gt = iou.max(dim=2)  # (B, N)
    matched = torch.where(best_iou >= POSITIVE_IOU, best_gt, torch.full_like(best_gt, -2))
    matched = torch.where(best_iou < NEGATIVE_IOU, torch.full_like(best_gt, -1), matched)
    # Each ground truth also claims its best anchor (no object is left without one).
    best_anchor = iou.argmax(dim=1)  # (B, M)
    b_idx, m_idx = torch.nonzero(valid, as_tuple=True)
    matched[b_idx, best_anchor[b_idx, m_idx]] = m_idx
    return matched, best_iou


def focal_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Elementwise FL(p_t) = -alpha_t (1 - p_t)^gamma log(p_t) (Lin et al. 2017, eq. 5)."""
    p = torch.sigmoid(logits)
    ce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    p_t = p * targets + (1 - p) * (1 - targets)
    alpha_t = FOCAL_ALPHA * targets + (1 - FOCAL_ALPHA) * (1 - targets)
    return alpha_t * (1 - p_t) ** FOCAL_GAMMA * ce


def efficientdet_loss(
    class_logits: list[torch.Tensor],
    box_deltas: list[torch.Tensor],
    targets: torch.Tensor,
    anchors: torch.Tensor,
) -> torch.Tensor:
    """Focal loss over non-ignored anchors + BOX_LOSS_WEIGHT x Huber over positives.

    Both are normalised by the number of positive anchors in the batch, as in the
    paper's reference implementation. ``targets`` (B, M, 5) padded as in ``shapes``.
    """
    logits = torch.cat(class_logits, dim=1)  # (B, N, C)
    deltas = torch.cat(box_deltas, dim=1)  # (B, N, 4)
    matched, _ = match_anchors(anchors, targets)  # (B, N)
    positive = matched >= 0
    num_positive = positive.sum().clamp(min=1).to(logits.dtype)

    gt = targets.gather(1, matched.clamp(min=0).unsqueeze(-1).expand(-1, -1, 5))  # (B, N, 5)
    cls_target = F.one_hot(gt[..., 0].long().clamp(min=0), logits.shape[-1]).to(logits.dtype)
    cls_target = cls_target * positive.unsqueeze(-1)  # background: all zeros
    not_ignored = (matched != -2).unsqueeze(-1).to(logits.dtype)
    cls_loss = (focal_loss(logits, cls_target) * not_ignored).sum() / num_positive

    box_target = encode_boxes(gt[..., 1:][positive], anchors.expand_as(deltas)[positive])  # (P, 4)
    box_loss = F.huber_loss(deltas[positive], box_target, delta=HUBER_DELTA, reduction="sum")
    box_loss = box_loss / (4 * num_positive)
    return cls_loss + BOX_LOSS_WEIGHT * box_loss


def efficientdet_batch_loss(
    model: EfficientDet, batch: tuple[torch.Tensor, torch.Tensor]
) -> torch.Tensor:
    """The training loss of ``model`` on a collated ``(images, targets)`` batch."""
    images, targets = batch
    class_logits, box_deltas = model(images)
    return efficientdet_loss(class_logits, box_deltas, targets.to(images.device), model.anchors)


# -- post-processing and evaluation ----------------------------------------------------------


@torch.no_grad()
def postprocess(
    class_logits: list[torch.Tensor],
    box_deltas: list[torch.Tensor],
    anchors: torch.Tensor,
    score_threshold: float = SCORE_THRESHOLD,
    iou_threshold: float = NMS_IOU_THRESHOLD,
    max_detections: int = MAX_DETECTIONS,
) -> list[Detections]:
    """Sigmoid class scores, decoded boxes, then top-k and NMS per class per image."""
    scores = torch.sigmoid(torch.cat(class_logits, dim=1))  # (B, N, C)
    deltas = torch.cat(box_deltas, dim=1)  # (B, N, 4)
    boxes = decode_boxes(deltas, anchors.expand_as(deltas))  # (B, N, 4)
    return select_detections(
        boxes, scores, score_threshold, iou_threshold, max_detections, PRE_NMS_TOP_K
    )


def evaluate(model: EfficientDet, dataset: Dataset, batch_size: int = 128) -> dict[str, Any]:
    """AP@0.5 and AP@[.5:.95] of ``model`` on ``dataset`` (in eval mode, restored after)."""

    def predict(images: torch.Tensor) -> list[Detections]:
        class_logits, box_deltas = model(images)
        return postprocess(class_logits, box_deltas, model.anchors)

    return evaluate_detector(model, predict, dataset, model.cfg.num_classes, batch_size)


# -- zoo entry -----------------------------------------------------------------------------


def shapes_config(cfg: EfficientDetConfig) -> ShapesConfig:
    """Canvases at the config's resolution (objects scale with it)."""
    return ShapesConfig(image_size=cfg.resolution)


def make_loader(dataset: Dataset, seed: int = 0, batch_size: int = BATCH_SIZE) -> DataLoader:
    """A shuffling DataLoader whose order depends only on ``seed``."""
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=True,
        drop_last=True,
        collate_fn=collate_detection,
        generator=torch.Generator().manual_seed(seed),
    )


def build_model(seed: int = 0, phi: int = 0) -> EfficientDet:
    """A freshly initialised EfficientDet-phi (the caller's RNG is left alone)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return EfficientDet(compound_config(phi))


def build(seed: int = 0, device: str | torch.device = "cpu", phi: int = 0) -> Subject:
    """The healthy EfficientDet subject: model, shuffled training batches, loss, AdamW."""
    model = build_model(seed, phi).to(device)
    train_set = ShapesDetection("train", seed=seed, config=shapes_config(model.cfg))

    def batches() -> DataLoader:
        return make_loader(train_set, seed)

    return Subject(
        model=model,
        batches=batches,
        loss_fn=efficientdet_batch_loss,
        optimizer=OptimizerSpec.of(torch.optim.AdamW, lr=LEARNING_RATE, weight_decay=WEIGHT_DECAY),
        task=Task.detection(NUM_CLASSES),
        name=f"efficientdet-d{phi}",
        loader=batches(),
    )


def train(
    steps: int | None = None,
    device: str | torch.device = "cpu",
    seed: int = 0,
    progress: Callable[[int, int, float], None] | None = None,
) -> dict[str, Any]:
    """Train EfficientDet-D0 for ``steps`` steps (cosine learning rate), evaluate on val.

    Returns ``loss_start`` (first step), ``loss_end`` (mean of the last 20 steps),
    ``ap50``, ``ap``, ``ap75``, ``steps``, ``seconds`` (wall clock, training and
    evaluation) and ``cpu_seconds`` (CPU time of this process over the same span).
    """
    steps = DEFAULT_STEPS if steps is None else steps
    return train_and_evaluate(
        build(seed, device),
        steps,
        device,
        progress,
        lambda m: evaluate(m, ShapesDetection("val", seed=seed, config=shapes_config(m.cfg))),
    )


ENTRY = register_zoo(
    ZooEntry(
        name="efficientdet",
        family="detection",
        learns="boxes and classes of rectangles, ellipses, triangles via a BiFPN (EfficientDet-D0-style)",
        build=build,
        train=train,
        default_steps=DEFAULT_STEPS,
        script="examples/zoo/efficientdet.py",
    )
)
