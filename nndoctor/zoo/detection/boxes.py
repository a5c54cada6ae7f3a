"""Box utilities shared by the detectors: IoU, NMS, box coding, k-means anchors, AP.

Boxes are ``(x1, y1, x2, y2)`` tensors in pixels (see ``shapes.py``). Average
precision follows the COCO evaluation (Lin et al., "Microsoft COCO: Common Objects
in Context", 2014; the ``pycocotools`` ``COCOeval``): detections are matched
greedily in order of score to the unmatched ground truth of highest IoU, the
precision envelope is sampled at 101 recall points, AP is averaged over the
classes that have ground truth, and AP@[.5:.95] averages over IoU thresholds
0.50, 0.55, ..., 0.95. There are no crowd regions or area ranges here, and at most
:data:`MAX_DETECTIONS` detections per image count, as in COCO.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from nndoctor.zoo.detection.shapes import collate_detection, one_thread, split_targets

# COCO: recall sampled at 0, 0.01, ..., 1 (101 points) and IoU thresholds .5:.05:.95.
RECALL_POINTS = 101
COCO_IOU_THRESHOLDS: tuple[float, ...] = tuple(round(0.5 + 0.05 * i, 2) for i in range(10))
MAX_DETECTIONS = 100
# exp() of a predicted log-scale is clamped here so that an untrained network cannot
# overflow it (the same bound as torchvision's BoxCoder: log(1000 / 16)).
MAX_LOG_SCALE = math.log(1000.0 / 16)


@dataclass(frozen=True)
class Detections:
    """Detections of one image: ``boxes`` (K, 4) xyxy, ``scores`` (K,), ``labels`` (K,) long."""

    boxes: torch.Tensor
    scores: torch.Tensor
    labels: torch.Tensor


# -- geometry ------------------------------------------------------------------


def box_area(boxes: torch.Tensor) -> torch.Tensor:
    """Areas (...,) of boxes (..., 4)."""
    return (boxes[..., 2] - boxes[..., 0]).clamp(min=0) * (boxes[..., 3] - boxes[..., 1]).clamp(
        min=0
    )


def box_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Pairwise IoU of boxes a (N, 4) and b (M, 4) -> (N, M); leading batch dims broadcast.

    Works for ``a`` (..., N, 4) and ``b`` (..., M, 4) with matching leading dims.
    Boxes of zero area have IoU 0 with everything.
    """
    lt = torch.maximum(a[..., :, None, :2], b[..., None, :, :2])  # (..., N, M, 2)
    rb = torch.minimum(a[..., :, None, 2:], b[..., None, :, 2:])
    inter = (rb - lt).clamp(min=0).prod(-1)  # (..., N, M)
    union = box_area(a)[..., :, None] + box_area(b)[..., None, :] - inter
    return inter / union.clamp(min=1e-9)


def wh_iou(wh_a: torch.Tensor, wh_b: torch.Tensor) -> torch.Tensor:
    """IoU of boxes given only by size, as if centred on the same point: (N, 2), (M, 2) -> (N, M).

    The similarity YOLOv2/v3 use both to cluster anchors and to pick a ground
    truth's prior.
    """
    inter = torch.minimum(wh_a[:, None, 0], wh_b[None, :, 0]) * torch.minimum(
        wh_a[:, None, 1], wh_b[None, :, 1]
    )  # (N, M)
    area_a = wh_a[:, 0] * wh_a[:, 1]
    area_b = wh_b[:, 0] * wh_b[:, 1]
    return inter / (area_a[:, None] + area_b[None, :] - inter).clamp(min=1e-9)


def xyxy_to_cxcywh(boxes: torch.Tensor) -> torch.Tensor:
    """(..., 4) corners -> (..., 4) centre x, centre y, width, height."""
    x1, y1, x2, y2 = boxes.unbind(-1)
    return torch.stack([(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1], dim=-1)


def cxcywh_to_xyxy(boxes: torch.Tensor) -> torch.Tensor:
    """(..., 4) centre x, centre y, width, height -> (..., 4) corners."""
    cx, cy, w, h = boxes.unbind(-1)
    return torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], dim=-1)


# -- box coding ----------------------------------------------------------------


def encode_boxes(boxes: torch.Tensor, anchors: torch.Tensor) -> torch.Tensor:
    """Regression targets of ``boxes`` relative to ``anchors`` (both (..., 4) xyxy) -> (..., 4).

    The R-CNN parametrisation used by RetinaNet and EfficientDet:
    ``t_x = (x - x_a) / w_a``, ``t_y = (y - y_a) / h_a``, ``t_w = log(w / w_a)``,
    ``t_h = log(h / h_a)`` (Girshick et al. 2014, appendix C).
    """
    b, a = xyxy_to_cxcywh(boxes), xyxy_to_cxcywh(anchors)
    txy = (b[..., :2] - a[..., :2]) / a[..., 2:]
    twh = torch.log(b[..., 2:].clamp(min=1e-6) / a[..., 2:])
    return torch.cat([txy, twh], dim=-1)


def decode_boxes(deltas: torch.Tensor, anchors: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`encode_boxes`: deltas (..., 4) and anchors (..., 4) xyxy -> boxes xyxy."""
    a = xyxy_to_cxcywh(anchors)
    cxy = a[..., :2] + deltas[..., :2] * a[..., 2:]
    wh = a[..., 2:] * torch.exp(deltas[..., 2:].clamp(max=MAX_LOG_SCALE))
    return cxcywh_to_xyxy(torch.cat([cxy, wh], dim=-1))


# -- non-maximum suppression -------------------------------------------------------


def nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Greedy NMS: indices (K,) of kept boxes, by decreasing score.

    A box is dropped when its IoU with an already kept, higher-scoring box
    exceeds ``iou_threshold``.
    """
    order = torch.argsort(scores, descending=True, stable=True)
    # (N, N) in score order; the greedy loop runs on NumPy to keep per-box overhead low.
    overlaps = (box_iou(boxes[order], boxes[order]) > iou_threshold).cpu().numpy()
    suppressed = np.zeros(len(order), dtype=bool)
    keep = []
    for i in range(len(order)):
        if suppressed[i]:
            continue
        keep.append(i)
        suppressed |= overlaps[i]
    return order[torch.tensor(keep, dtype=torch.long, device=order.device)]


def batched_nms(
    boxes: torch.Tensor, scores: torch.Tensor, labels: torch.Tensor, iou_threshold: float
) -> torch.Tensor:
    """NMS run separately per class: indices (K,) of kept boxes, by decreasing score.

    Boxes of different classes never suppress each other: each class is shifted by
    an offset larger than every coordinate, so one NMS pass does all classes.
    """
    if boxes.numel() == 0:
        return torch.zeros(0, dtype=torch.long)
    offset = labels.to(boxes) * (boxes.max() - boxes.min() + 1)
    return nms(boxes + offset[:, None], scores, iou_threshold)


def select_detections(
    boxes: torch.Tensor,
    scores: torch.Tensor,
    score_threshold: float,
    iou_threshold: float,
    max_detections: int,
    pre_nms_top_k: int,
) -> list[Detections]:
    """Per image: (box, class) pairs above the threshold, top-k, class-wise NMS, best few.

    ``boxes`` (B, P, 4) and ``scores`` (B, P, C) -> one :class:`Detections` per image.
    """
    num_classes = scores.shape[-1]
    result = []
    for img_boxes, img_scores in zip(boxes.float().cpu(), scores.float().cpu(), strict=True):
        flat = img_scores.reshape(-1)  # (P * C,)
        keep = torch.nonzero(flat > score_threshold).squeeze(1)
        keep = keep[torch.argsort(flat[keep], descending=True)[:pre_nms_top_k]]
        cand_boxes, cand_scores = img_boxes[keep // num_classes], flat[keep]
        cand_labels = keep % num_classes
        kept = batched_nms(cand_boxes, cand_scores, cand_labels, iou_threshold)[:max_detections]
        result.append(Detections(cand_boxes[kept], cand_scores[kept], cand_labels[kept]))
    return result


# -- anchors ---------------------------------------------------------------------


def kmeans_anchors(wh: torch.Tensor, k: int, iterations: int = 100, seed: int = 0) -> torch.Tensor:
    """k cluster centres (k, 2) of box sizes ``wh`` (N, 2) with distance 1 - IoU, by area.

    YOLOv2 (Redmon & Farhadi 2017, section "Dimension Clusters") clusters training
    boxes with d(box, centroid) = 1 - IoU(box, centroid) rather than Euclidean
    distance, so that large boxes do not dominate; YOLOv3 keeps the 9 clusters and
    hands 3 to each scale. Centres start at k boxes drawn by k-means++ seeding with
    a seeded generator, and a centre is the mean of its members.
    """
    with one_thread():  # many tiny operations: see shapes.one_thread
        wh = wh.float()
        g = torch.Generator().manual_seed(seed)
        centres = wh[torch.randint(len(wh), (1,), generator=g)]
        while len(centres) < k:  # k-means++: next centre drawn with probability ~ d^2
            d = (1 - wh_iou(wh, centres)).min(dim=1).values  # (N,)
            centres = torch.cat([centres, wh[torch.multinomial(d**2 + 1e-12, 1, generator=g)]])
        for _ in range(iterations):
            assign = wh_iou(wh, centres).argmax(dim=1)  # (N,) nearest centre: largest IoU
            total = torch.zeros(k, 2).index_add_(0, assign, wh)
            count = torch.bincount(assign, minlength=k).unsqueeze(1)  # (k, 1)
            # The mean of each cluster; an empty cluster keeps its centre.
            new = torch.where(count > 0, total / count.clamp(min=1), centres)
            if torch.allclose(new, centres):
                break
            centres = new
        return centres[torch.argsort(centres.prod(dim=1))]


# -- average precision --------------------------------------------------------------


def interpolated_ap(recall: torch.Tensor, precision: torch.Tensor) -> float:
    """Area under the precision envelope sampled at :data:`RECALL_POINTS` recall values.

    ``recall`` and ``precision`` (D,) are cumulative over detections sorted by
    decreasing score. The envelope at recall r is the best precision at any recall
    >= r; recall points beyond the last reached recall count as precision 0.
    """
    if recall.numel() == 0:
        return 0.0
    envelope = torch.flip(torch.cummax(torch.flip(precision, [0]), dim=0).values, [0])  # (D,)
    points = torch.linspace(0, 1, RECALL_POINTS, dtype=recall.dtype)
    idx = torch.searchsorted(recall, points, side="left")  # first detection reaching r
    reached = idx < len(recall)
    sampled = torch.where(reached, envelope[idx.clamp(max=len(recall) - 1)], 0.0)
    return float(sampled.mean())


def match_detections(
    det_boxes: torch.Tensor, gt_boxes: torch.Tensor, iou_thresholds: Sequence[float]
) -> torch.Tensor:
    """COCO greedy matching within one image and class: is-true-positive (T, D) per threshold.

    ``det_boxes`` (D, 4) must be sorted by decreasing score. Each detection takes
    the unmatched ground truth with the highest IoU that is at least the threshold;
    all thresholds are matched together, one detection at a time.
    """
    n_t, n_d, n_g = len(iou_thresholds), len(det_boxes), len(gt_boxes)
    tp = np.zeros((n_t, n_d), dtype=bool)
    if n_d == 0 or n_g == 0:
        return torch.from_numpy(tp)
    iou = box_iou(det_boxes, gt_boxes).cpu().double().numpy()  # (D, G)
    thresholds = np.asarray(iou_thresholds, dtype=np.float64)  # (T,)
    rows = np.arange(n_t)
    taken = np.zeros((n_t, n_g), dtype=bool)
    for d in range(n_d):
        if iou[d].max() < thresholds.min():
            continue  # overlaps nothing enough at any threshold: a false positive
        candidates = np.where(taken, -1.0, iou[d][None, :])  # (T, G)
        best = candidates.argmax(axis=1)  # (T,)
        hit = candidates[rows, best] >= thresholds
        taken[rows[hit], best[hit]] = True
        tp[:, d] = hit
    return torch.from_numpy(tp)


def evaluate_detections(
    detections: Sequence[Detections],
    ground_truth: Sequence[tuple[torch.Tensor, torch.Tensor]],
    num_classes: int,
    iou_thresholds: Sequence[float] = COCO_IOU_THRESHOLDS,
) -> dict[str, float | list[float]]:
    """COCO-style AP of ``detections`` against ``ground_truth`` (per image ``(boxes, labels)``).

    Returns ``ap50`` (AP at IoU 0.5, mean over classes), ``ap`` (mean over
    classes and ``iou_thresholds``), ``ap75`` when 0.75 is among the thresholds,
    and ``ap_per_class`` (mean over thresholds; NaN for a class without ground
    truth). Classes without ground truth are left out of the means, as in COCO.
    """
    thresholds = list(iou_thresholds)
    # (T,) AP per threshold, for each class with ground truth; NaN rows for the others.
    table = torch.full((num_classes, len(thresholds)), math.nan, dtype=torch.float64)
    for c in range(num_classes):
        scores, tps, n_gt = [], [], 0
        for det, (gt_boxes, gt_labels) in zip(detections, ground_truth, strict=True):
            gt_c = gt_boxes[gt_labels == c]
            n_gt += len(gt_c)
            keep = det.labels == c
            boxes_c, scores_c = det.boxes[keep], det.scores[keep]
            order = torch.argsort(scores_c, descending=True, stable=True)[:MAX_DETECTIONS]
            scores.append(scores_c[order])
            tps.append(match_detections(boxes_c[order], gt_c, thresholds))
        if n_gt == 0:
            continue
        all_scores = torch.cat(scores)  # (D,)
        all_tp = torch.cat(tps, dim=1)  # (T, D)
        order = torch.argsort(all_scores, descending=True, stable=True)
        tp_cum = all_tp[:, order].double().cumsum(dim=1)  # (T, D)
        ranks = torch.arange(1, len(order) + 1, dtype=torch.float64)
        ap_t = [
            interpolated_ap(tp_cum[t] / n_gt, tp_cum[t] / ranks) for t in range(len(thresholds))
        ]
        table[c] = torch.tensor(ap_t, dtype=torch.float64)
    present = ~table[:, 0].isnan()  # (C,)
    if not present.any():
        raise ValueError("no ground-truth boxes: AP is undefined")
    result: dict[str, float | list[float]] = {
        "ap": float(table[present].mean()),
        "ap_per_class": table.mean(dim=1).tolist(),
    }
    for name, threshold in (("ap50", 0.5), ("ap75", 0.75)):
        if threshold in thresholds:
            result[name] = float(table[present, thresholds.index(threshold)].mean())
    return result


@torch.no_grad()
def evaluate_detector(
    model: torch.nn.Module,
    predict: Callable[[torch.Tensor], list[Detections]],
    dataset: Dataset,
    num_classes: int,
    batch_size: int = 128,
) -> dict[str, float | list[float]]:
    """COCO-style AP of ``predict(images)`` over ``dataset`` with ``model`` in eval mode.

    ``dataset`` yields ``(image, target)`` pairs as ``shapes.ShapesDetection`` does;
    the model's train/eval mode is restored afterwards.
    """
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    detections: list[Detections] = []
    ground_truth: list[tuple[torch.Tensor, torch.Tensor]] = []
    try:
        loader = DataLoader(dataset, batch_size=batch_size, collate_fn=collate_detection)
        for images, targets in loader:
            detections += predict(images.to(device))
            ground_truth += split_targets(targets)
    finally:
        model.train(was_training)
    return evaluate_detections(detections, ground_truth, num_classes)
