"""A small YOLOv3-style detector (Redmon & Farhadi, "YOLOv3: An Incremental Improvement", 2018).

What is kept from the paper, at a width and depth that train on two CPU cores:

* a Darknet-style backbone: strided 3x3 convolutions between stages of residual
  blocks (1x1 bottleneck then 3x3), batch norm and leaky ReLU everywhere;
* an FPN-like neck: from the coarsest scale down, a lateral 1x1 convolution,
  2x nearest upsampling and concatenation with the backbone feature of the finer
  scale (section 2.3, "Predictions Across Scales");
* predictions at 3 scales (strides 8, 16, 32) with 3 priors each, the 9 priors
  being k-means clusters of the training boxes under the distance 1 - IoU;
* box decoding b_x = sigma(t_x) + c_x, b_y = sigma(t_y) + c_y (in grid cells),
  b_w = p_w e^{t_w}, b_h = p_h e^{t_h} (section 2.1);
* logistic objectness: each ground truth is assigned the one prior (of all 9) whose
  shape overlaps it most, in the cell holding its centre; a prior that is not
  assigned but whose predicted box overlaps some ground truth by more than
  :data:`IGNORE_THRESHOLD` incurs no objectness loss (section 2.1);
* independent sigmoid class scores trained with binary cross-entropy (section 2.2).

The coordinates use the sum of squared errors of the paper (on sigma(t_xy) against
the offset in the cell, and on t_wh against log(w / p_w)), weighted by
``2 - w h / (W H)`` as the Darknet code does so that small boxes count more.
At 64x64 the three grids are 8x8, 4x4 and 2x2.
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
    MAX_LOG_SCALE,
    Detections,
    box_iou,
    evaluate_detector,
    kmeans_anchors,
    select_detections,
    wh_iou,
    xyxy_to_cxcywh,
)
from nndoctor.zoo.detection.shapes import (
    NUM_CLASSES,
    PAD_CLASS,
    ShapesDetection,
    collate_detection,
)
from nndoctor.zoo.registry import ZooEntry, register_zoo

# Section 2.1: a prior not assigned to a ground truth is ignored (no objectness loss)
# when its prediction overlaps a ground truth by more than this.
IGNORE_THRESHOLD = 0.5
# Darknet's leaky ReLU slope.
LEAKY_SLOPE = 0.1
# Objectness starts at this probability (the prior-probability bias of Lin et al. 2017,
# "Focal Loss for Dense Object Detection", section 4.1), so that the many background
# priors do not swamp the first steps.
PRIOR_PROBABILITY = 0.01
# Post-processing and evaluation.
SCORE_THRESHOLD = 0.01
NMS_IOU_THRESHOLD = 0.5
PRE_NMS_TOP_K = 300

# Training recipe for `train()` and the example script.
BATCH_SIZE = 32
LEARNING_RATE = 2e-3
WEIGHT_DECAY = 5e-4
DEFAULT_STEPS = 2000


# -- config -------------------------------------------------------------------------


@dataclass(frozen=True)
class YoloConfig:
    """Widths and depths of a narrow Darknet.

    The stem has stride 2 (Darknet-53's full-resolution first layer costs more than
    the rest of this small network); stage ``i`` then has stride ``2 ** (i + 2)``.
    """

    num_classes: int = NUM_CLASSES
    image_size: int = 64
    stem_width: int = 16
    stage_widths: tuple[int, ...] = (32, 64, 96, 128)  # strides 4, 8, 16, 32
    stage_depths: tuple[int, ...] = (1, 2, 2, 1)  # residual blocks per stage
    neck_widths: tuple[int, ...] = (32, 48, 64)  # per output scale, strides 8, 16, 32
    anchors_per_scale: int = 3

    @property
    def strides(self) -> tuple[int, ...]:
        """Strides of the three output scales: the last three backbone stages."""
        n = len(self.stage_widths)
        return tuple(2 ** (i + 2) for i in range(n - 3, n))


# -- blocks -------------------------------------------------------------------------


class ConvBNLeaky(nn.Sequential):
    """Conv (no bias: batch norm follows) -> BN -> leaky ReLU, Darknet's basic unit."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int = 1) -> None:
        super().__init__(
            nn.Conv2d(c_in, c_out, kernel, stride, kernel // 2, bias=False),
            nn.BatchNorm2d(c_out),
            nn.LeakyReLU(LEAKY_SLOPE),
        )


class DarknetResidual(nn.Module):
    """x + conv3x3(conv1x1(x)): the 1x1 halves the channels, the 3x3 restores them."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.reduce = ConvBNLeaky(channels, channels // 2, 1)
        self.expand = ConvBNLeaky(channels // 2, channels, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.expand(self.reduce(x))


class Darknet(nn.Module):
    """Stem, then per stage a stride-2 3x3 convolution and residual blocks.

    Returns the features of the last three stages (strides 8, 16, 32).
    """

    def __init__(self, cfg: YoloConfig) -> None:
        super().__init__()
        self.stem = ConvBNLeaky(3, cfg.stem_width, 3, stride=2)
        stages = []
        c_in = cfg.stem_width
        for width, depth in zip(cfg.stage_widths, cfg.stage_depths, strict=True):
            blocks = [ConvBNLeaky(c_in, width, 3, stride=2)]
            blocks += [DarknetResidual(width) for _ in range(depth)]
            stages.append(nn.Sequential(*blocks))
            c_in = width
        self.stages = nn.ModuleList(stages)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.stem(x)  # (B, stem, H / 2, W / 2)
        features = []
        for stage in self.stages:
            x = stage(x)  # (B, width, H / stride, W / stride)
            features.append(x)
        return features[-3:]


class ConvSet(nn.Sequential):
    """1x1 -> 3x3 -> 1x1, the alternation Darknet-53's neck uses (three of its five)."""

    def __init__(self, c_in: int, width: int) -> None:
        super().__init__(
            ConvBNLeaky(c_in, width, 1),
            ConvBNLeaky(width, 2 * width, 3),
            ConvBNLeaky(2 * width, width, 1),
        )


class YoloHead(nn.Sequential):
    """3x3 conv then a 1x1 prediction of A x (4 box + 1 objectness + C classes) per cell."""

    def __init__(self, width: int, anchors: int, num_classes: int) -> None:
        super().__init__(
            ConvBNLeaky(width, 2 * width, 3),
            nn.Conv2d(2 * width, anchors * (5 + num_classes), 1),
        )


# -- model --------------------------------------------------------------------------


class YOLOv3(nn.Module):
    """Darknet backbone, FPN-like neck and three heads.

    ``forward(images (B, 3, H, W))`` returns, per scale from stride 8 to 32, the raw
    predictions ``(B, A, H_s, W_s, 5 + C)``: t_x, t_y, t_w, t_h, objectness logit,
    class logits. ``anchors`` (3, A, 2) are the prior sizes in pixels, finest scale
    first; they are a buffer, so they follow the model across devices and copies.
    """

    def __init__(self, cfg: YoloConfig, anchors: torch.Tensor) -> None:
        super().__init__()
        self.cfg = cfg
        self.register_buffer("anchors", anchors.float().reshape(3, cfg.anchors_per_scale, 2))
        self.backbone = Darknet(cfg)
        c8, c16, c32 = cfg.stage_widths[-3:]
        n8, n16, n32 = cfg.neck_widths
        # Coarsest scale first; each finer scale concatenates an upsampled lateral.
        self.set32 = ConvSet(c32, n32)
        self.lateral32 = ConvBNLeaky(n32, n16, 1)
        self.set16 = ConvSet(c16 + n16, n16)
        self.lateral16 = ConvBNLeaky(n16, n8, 1)
        self.set8 = ConvSet(c8 + n8, n8)
        a, c = cfg.anchors_per_scale, cfg.num_classes
        self.heads = nn.ModuleList([YoloHead(n, a, c) for n in (n8, n16, n32)])
        self._init_prior_bias()

    def _init_prior_bias(self) -> None:
        """Objectness bias at logit(PRIOR_PROBABILITY), class biases at 0 (p = 0.5 each)."""
        a, c = self.cfg.anchors_per_scale, self.cfg.num_classes
        for head in self.heads:
            bias = head[-1].bias.detach().view(a, 5 + c)
            bias.zero_()
            bias[:, 4] = -math.log((1 - PRIOR_PROBABILITY) / PRIOR_PROBABILITY)

    @property
    def strides(self) -> tuple[int, ...]:
        return self.cfg.strides

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        f8, f16, f32 = self.backbone(images)  # (B, c8, H/8, W/8), (B, c16, ...), (B, c32, ...)
        p32 = self.set32(f32)  # (B, n32, H/32, W/32)
        up = F.interpolate(self.lateral32(p32), scale_factor=2.0, mode="nearest")
        p16 = self.set16(torch.cat([f16, up], dim=1))  # (B, n16, H/16, W/16)
        up = F.interpolate(self.lateral16(p16), scale_factor=2.0, mode="nearest")
        p8 = self.set8(torch.cat([f8, up], dim=1))  # (B, n8, H/8, W/8)
        outputs = []
        a, c = self.cfg.anchors_per_scale, self.cfg.num_classes
        for head, p in zip(self.heads, (p8, p16, p32), strict=True):
            y = head(p)  # (B, A * (5 + C), H_s, W_s)
            b, _, h, w = y.shape
            y = y.view(b, a, 5 + c, h, w).permute(0, 1, 3, 4, 2)  # (B, A, H_s, W_s, 5 + C)
            outputs.append(y)
        return outputs


# -- decoding -----------------------------------------------------------------------


def decode_scale(
    output: torch.Tensor, anchors: torch.Tensor, stride: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Boxes xyxy in pixels (B, A, H, W, 4), objectness and class logits of one scale.

    b_xy = (sigma(t_xy) + c_xy) * stride, b_wh = p_wh * e^{t_wh} with ``anchors`` (A, 2).
    """
    _, a, h, w, _ = output.shape
    gy, gx = torch.meshgrid(
        torch.arange(h, device=output.device), torch.arange(w, device=output.device), indexing="ij"
    )
    cell = torch.stack([gx, gy], dim=-1).to(output.dtype)  # (H, W, 2) as c_x, c_y
    centre = (torch.sigmoid(output[..., :2]) + cell) * stride  # (B, A, H, W, 2)
    size = anchors.view(1, a, 1, 1, 2) * torch.exp(output[..., 2:4].clamp(max=MAX_LOG_SCALE))
    boxes = torch.cat([centre - size / 2, centre + size / 2], dim=-1)  # (B, A, H, W, 4)
    return boxes, output[..., 4], output[..., 5:]


# -- loss ---------------------------------------------------------------------------


def yolo_loss(
    outputs: list[torch.Tensor],
    targets: torch.Tensor,
    anchors: torch.Tensor,
    strides: tuple[int, ...],
) -> torch.Tensor:
    """YOLOv3 loss summed over priors and averaged over images.

    ``outputs`` as returned by :class:`YOLOv3`; ``targets`` (B, M, 5) padded as in
    ``shapes.collate_detection``; ``anchors`` (S, A, 2) in pixels.
    """
    batch, m = targets.shape[:2]
    n_anchors = anchors.shape[1]
    image_area = float(outputs[0].shape[2] * strides[0] * outputs[0].shape[3] * strides[0])
    valid = targets[..., 0] != PAD_CLASS  # (B, M)
    gt_cls = targets[..., 0].long().clamp(min=0)  # (B, M)
    gt_boxes = targets[..., 1:]  # (B, M, 4)
    gt = xyxy_to_cxcywh(gt_boxes)  # (B, M, 4)
    # One prior per ground truth: the best of all S x A prior shapes by centred IoU.
    best = wh_iou(gt[..., 2:].reshape(-1, 2), anchors.reshape(-1, 2)).argmax(1).view(batch, m)
    scale_of, anchor_of = best // n_anchors, best % n_anchors  # (B, M)

    loss = targets.new_zeros(())
    for s, (out, stride) in enumerate(zip(outputs, strides, strict=True)):
        _, _, h, w, _ = out.shape
        boxes, obj_logit, _ = decode_scale(out, anchors[s], stride)
        # Ignore non-assigned priors whose (detached) prediction already overlaps a ground truth.
        iou = box_iou(boxes.detach().view(batch, -1, 4), gt_boxes)  # (B, A*H*W, M)
        iou = iou.masked_fill(~valid[:, None, :], 0.0)
        ignore = (iou.max(dim=2).values > IGNORE_THRESHOLD).view(batch, n_anchors, h, w)

        b_idx, m_idx = torch.nonzero(valid & (scale_of == s), as_tuple=True)  # (K,), (K,)
        a_idx = anchor_of[b_idx, m_idx]
        centre = gt[b_idx, m_idx, :2] / stride  # (K, 2) in cells
        gx = centre[:, 0].floor().long().clamp(0, w - 1)
        gy = centre[:, 1].floor().long().clamp(0, h - 1)

        obj_target = torch.zeros_like(obj_logit)  # (B, A, H, W)
        obj_target[b_idx, a_idx, gy, gx] = 1.0
        obj_weight = (~ignore).to(obj_logit.dtype)
        obj_weight[b_idx, a_idx, gy, gx] = 1.0
        loss = loss + F.binary_cross_entropy_with_logits(
            obj_logit, obj_target, weight=obj_weight, reduction="sum"
        )

        pred = out[b_idx, a_idx, gy, gx]  # (K, 5 + C)
        wh = gt[b_idx, m_idx, 2:]  # (K, 2) in pixels
        offset = centre - torch.stack([gx, gy], dim=1).to(centre.dtype)  # (K, 2) in [0, 1)
        log_scale = torch.log(wh / anchors[s][a_idx])  # (K, 2)
        box_weight = 2.0 - wh.prod(dim=1) / image_area  # (K,) small boxes weigh more
        xy_err = (torch.sigmoid(pred[:, :2]) - offset).pow(2).sum(dim=1)
        wh_err = (pred[:, 2:4] - log_scale).pow(2).sum(dim=1)
        loss = loss + (box_weight * (xy_err + wh_err)).sum()
        cls_target = F.one_hot(gt_cls[b_idx, m_idx], pred.shape[1] - 5).to(pred.dtype)
        loss = loss + F.binary_cross_entropy_with_logits(pred[:, 5:], cls_target, reduction="sum")
    return loss / batch


def yolov3_batch_loss(model: YOLOv3, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """The training loss of ``model`` on a collated ``(images, targets)`` batch."""
    images, targets = batch
    return yolo_loss(model(images), targets.to(images.device), model.anchors, model.strides)


# -- post-processing and evaluation -----------------------------------------------------


@torch.no_grad()
def postprocess(
    outputs: list[torch.Tensor],
    anchors: torch.Tensor,
    strides: tuple[int, ...],
    score_threshold: float = SCORE_THRESHOLD,
    iou_threshold: float = NMS_IOU_THRESHOLD,
    max_detections: int = MAX_DETECTIONS,
) -> list[Detections]:
    """Decode every scale, score = sigma(objectness) * sigma(class), then NMS per class."""
    boxes, scores = [], []
    for s, (out, stride) in enumerate(zip(outputs, strides, strict=True)):
        b, obj, cls = decode_scale(out, anchors[s], stride)
        batch = out.shape[0]
        boxes.append(b.reshape(batch, -1, 4))  # (B, P_s, 4)
        scores.append(
            (torch.sigmoid(obj).unsqueeze(-1) * torch.sigmoid(cls)).reshape(
                batch, -1, cls.shape[-1]
            )
        )
    return select_detections(
        torch.cat(boxes, 1),
        torch.cat(scores, 1),
        score_threshold,
        iou_threshold,
        max_detections,
        PRE_NMS_TOP_K,
    )


@torch.no_grad()
def evaluate(model: YOLOv3, dataset: Dataset, batch_size: int = 128) -> dict[str, Any]:
    """AP@0.5 and AP@[.5:.95] of ``model`` on ``dataset`` (in eval mode, restored after)."""

    def predict(images: torch.Tensor) -> list[Detections]:
        return postprocess(model(images), model.anchors, model.strides)

    return evaluate_detector(model, predict, dataset, model.cfg.num_classes, batch_size)


# -- zoo entry ----------------------------------------------------------------------


def make_anchors(dataset: ShapesDetection, cfg: YoloConfig, seed: int = 0) -> torch.Tensor:
    """3 x A priors (3, A, 2) from k-means (1 - IoU) on the training boxes, small to large."""
    boxes = dataset.all_boxes()
    k = 3 * cfg.anchors_per_scale
    return kmeans_anchors(boxes[:, 2:] - boxes[:, :2], k, seed=seed).view(
        3, cfg.anchors_per_scale, 2
    )


def make_loader(
    dataset: ShapesDetection, seed: int = 0, batch_size: int = BATCH_SIZE
) -> DataLoader:
    """A shuffling DataLoader whose order depends only on ``seed``."""
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=True,
        drop_last=True,
        collate_fn=collate_detection,
        generator=torch.Generator().manual_seed(seed),
    )


def build_model(
    seed: int = 0, cfg: YoloConfig | None = None, train_set: ShapesDetection | None = None
) -> YOLOv3:
    """A freshly initialised YOLOv3 whose priors come from ``train_set`` (the seed's split)."""
    cfg = cfg or YoloConfig()
    train_set = train_set or ShapesDetection("train", seed=seed)
    with torch.random.fork_rng(devices=[]):  # leave the caller's RNG alone
        torch.manual_seed(seed)
        return YOLOv3(cfg, make_anchors(train_set, cfg, seed))


def build(seed: int = 0, device: str | torch.device = "cpu") -> Subject:
    """The healthy YOLOv3 subject: model, shuffled training batches, loss, AdamW."""
    train_set = ShapesDetection("train", seed=seed)
    model = build_model(seed, train_set=train_set).to(device)

    def batches() -> DataLoader:
        return make_loader(train_set, seed)

    return Subject(
        model=model,
        batches=batches,
        loss_fn=yolov3_batch_loss,
        optimizer=OptimizerSpec.of(torch.optim.AdamW, lr=LEARNING_RATE, weight_decay=WEIGHT_DECAY),
        task=Task.detection(NUM_CLASSES),
        name="yolov3",
        loader=batches(),
    )


def train(
    steps: int | None = None,
    device: str | torch.device = "cpu",
    seed: int = 0,
    progress: Callable[[int, int, float], None] | None = None,
) -> dict[str, Any]:
    """Train the subject for ``steps`` steps (cosine learning rate) and evaluate on val.

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
        lambda m: evaluate(m, ShapesDetection("val", seed=seed)),
    )


ENTRY = register_zoo(
    ZooEntry(
        name="yolov3",
        family="detection",
        learns="boxes and classes of rectangles, ellipses, triangles at 3 scales (YOLOv3-style)",
        build=build,
        train=train,
        default_steps=DEFAULT_STEPS,
        script="examples/zoo/yolov3.py",
    )
)
