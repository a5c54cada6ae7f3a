"""Box utilities against hand-computed cases: IoU, NMS, box coding, k-means anchors, AP."""

from __future__ import annotations

import math

import pytest
import torch

from nndoctor.zoo.detection.boxes import (
    COCO_IOU_THRESHOLDS,
    RECALL_POINTS,
    Detections,
    batched_nms,
    box_iou,
    cxcywh_to_xyxy,
    decode_boxes,
    encode_boxes,
    evaluate_detections,
    interpolated_ap,
    kmeans_anchors,
    nms,
    select_detections,
    wh_iou,
    xyxy_to_cxcywh,
)


def boxes(*rows: tuple[float, float, float, float]) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.float32)


# -- IoU --------------------------------------------------------------------------------


def test_iou_of_known_boxes() -> None:
    a = boxes((0, 0, 10, 10))
    b = boxes(
        (0, 0, 10, 10),  # identical: 1
        (5, 0, 15, 10),  # half overlap: 50 / 150
        (20, 20, 30, 30),  # disjoint: 0
        (10, 0, 20, 10),  # touching edge: 0
        (2, 2, 7, 7),  # inside: 25 / 100
    )
    expected = torch.tensor([[1.0, 50 / 150, 0.0, 0.0, 0.25]])
    torch.testing.assert_close(box_iou(a, b), expected)


def test_iou_is_pairwise_and_symmetric() -> None:
    g = torch.Generator().manual_seed(0)
    xy = torch.rand(7, 2, generator=g) * 50
    a = torch.cat([xy, xy + 1 + torch.rand(7, 2, generator=g) * 20], dim=1)
    iou = box_iou(a, a[:5])
    assert iou.shape == (7, 5)
    torch.testing.assert_close(iou[:5], iou[:5].T)
    torch.testing.assert_close(iou.diagonal(), torch.ones(5))


def test_iou_broadcasts_over_a_batch() -> None:
    anchors = boxes((0, 0, 10, 10), (0, 0, 20, 20))  # (2, 4)
    targets = torch.stack([boxes((0, 0, 10, 10)), boxes((0, 0, 20, 20))])  # (2, 1, 4)
    iou = box_iou(anchors, targets)  # (B=2, N=2, M=1)
    torch.testing.assert_close(iou[..., 0], torch.tensor([[1.0, 0.25], [0.25, 1.0]]))


def test_wh_iou_is_iou_of_centred_boxes() -> None:
    wh_a, wh_b = torch.tensor([[10.0, 10.0]]), torch.tensor([[5.0, 20.0], [10.0, 10.0]])
    # 5 x 10 overlap; union 100 + 100 - 50.
    torch.testing.assert_close(wh_iou(wh_a, wh_b), torch.tensor([[50 / 150, 1.0]]))


# -- NMS -----------------------------------------------------------------------------------


def test_nms_keeps_the_best_and_suppresses_overlapping_boxes() -> None:
    b = boxes(
        (0, 0, 10, 10),  # 0: score .9, kept
        (1, 0, 11, 10),  # 1: IoU 90/110 = .82 with box 0, suppressed
        (5, 0, 15, 10),  # 2: IoU 1/3 with box 0, kept
        (30, 30, 40, 40),  # 3: alone, kept
    )
    scores = torch.tensor([0.9, 0.8, 0.7, 0.95])
    assert nms(b, scores, 0.5).tolist() == [3, 0, 2]
    # A stricter threshold also drops box 2 (IoU 1/3 > 0.3).
    assert nms(b, scores, 0.3).tolist() == [3, 0]


def test_nms_suppression_is_greedy_not_transitive() -> None:
    # 1 is suppressed by 0; 2 overlaps 1 but not 0, so it survives.
    b = boxes((0, 0, 10, 10), (4, 0, 14, 10), (8, 0, 18, 10))
    assert nms(b, torch.tensor([0.9, 0.8, 0.7]), 0.4).tolist() == [0, 2]


def test_batched_nms_never_suppresses_across_classes() -> None:
    b = boxes((0, 0, 10, 10), (0, 0, 10, 10), (0, 0, 10, 10))
    scores = torch.tensor([0.9, 0.8, 0.7])
    labels = torch.tensor([0, 1, 0])
    assert batched_nms(b, scores, labels, 0.5).tolist() == [0, 1]
    assert batched_nms(torch.zeros(0, 4), torch.zeros(0), torch.zeros(0), 0.5).numel() == 0


def test_select_detections_thresholds_and_splits_classes() -> None:
    b = boxes((0, 0, 10, 10), (20, 20, 30, 30)).unsqueeze(0)  # (1, 2, 4)
    s = torch.tensor([[[0.9, 0.6], [0.005, 0.3]]])  # (1, 2, C=2)
    (det,) = select_detections(b, s, 0.01, 0.5, 100, 300)
    assert det.scores.tolist() == pytest.approx([0.9, 0.6, 0.3])
    assert det.labels.tolist() == [0, 1, 1]
    torch.testing.assert_close(det.boxes, boxes((0, 0, 10, 10), (0, 0, 10, 10), (20, 20, 30, 30)))


# -- box coding ----------------------------------------------------------------------------------


def test_encode_of_known_box() -> None:
    anchor = boxes((0, 0, 10, 20))  # centre (5, 10), size 10 x 20
    box = boxes((5, 10, 25, 30))  # centre (15, 20), size 20 x 20
    expected = torch.tensor([[1.0, 0.5, math.log(2.0), 0.0]])
    torch.testing.assert_close(encode_boxes(box, anchor), expected)


def test_encode_decode_round_trip() -> None:
    g = torch.Generator().manual_seed(1)
    xy = torch.rand(50, 2, generator=g) * 60
    box = torch.cat([xy, xy + 2 + torch.rand(50, 2, generator=g) * 30], dim=1)
    anchor = cxcywh_to_xyxy(xyxy_to_cxcywh(box) * torch.tensor([1.1, 0.9, 1.5, 0.7]))
    torch.testing.assert_close(decode_boxes(encode_boxes(box, anchor), anchor), box)
    torch.testing.assert_close(cxcywh_to_xyxy(xyxy_to_cxcywh(box)), box)


def test_decode_clamps_huge_scales() -> None:
    out = decode_boxes(torch.tensor([[0.0, 0.0, 1e4, 1e4]]), boxes((0, 0, 1, 1)))
    assert torch.isfinite(out).all()


# -- k-means anchors -------------------------------------------------------------------------


def test_kmeans_finds_separable_clusters() -> None:
    g = torch.Generator().manual_seed(0)
    centres = torch.tensor([[6.0, 6.0], [12.0, 24.0], [30.0, 15.0]])
    wh = torch.cat([c * (1 + 0.05 * torch.randn(100, 2, generator=g)) for c in centres])
    found = kmeans_anchors(wh, 3, seed=0)
    assert found.shape == (3, 2)
    # Sorted by area (36, 288, 450), each close to a true centre.
    assert (found.prod(1).diff() > 0).all()
    torch.testing.assert_close(found, centres, rtol=0.05, atol=0.0)


def test_kmeans_is_deterministic() -> None:
    wh = torch.rand(200, 2, generator=torch.Generator().manual_seed(3)) * 30 + 4
    torch.testing.assert_close(kmeans_anchors(wh, 9, seed=5), kmeans_anchors(wh, 9, seed=5))


# -- average precision ---------------------------------------------------------------------------


def det(rows: list[tuple[float, float, float, float]], scores: list[float], labels: list[int]):
    return Detections(boxes(*rows), torch.tensor(scores), torch.tensor(labels))


def gt(rows: list[tuple[float, float, float, float]], labels: list[int]):
    return boxes(*rows), torch.tensor(labels)


def test_perfect_predictions_have_ap_one() -> None:
    truth = [gt([(0, 0, 10, 10), (20, 20, 35, 30)], [0, 1]), gt([(5, 5, 15, 25)], [2])]
    dets = [
        det([(0, 0, 10, 10), (20, 20, 35, 30)], [0.9, 0.8], [0, 1]),
        det([(5, 5, 15, 25)], [0.7], [2]),
    ]
    result = evaluate_detections(dets, truth, num_classes=3)
    assert result["ap50"] == pytest.approx(1.0)
    assert result["ap"] == pytest.approx(1.0)
    assert result["ap_per_class"] == pytest.approx([1.0, 1.0, 1.0])


def test_known_ap_for_a_ranking_with_a_false_positive() -> None:
    # Two objects; detections ranked TP (.9), FP (.8), TP (.7).
    # precision 1, 1/2, 2/3 at recall 1/2, 1/2, 1; envelope 1 up to recall 1/2
    # (51 of the 101 recall points: 0, .01, ..., .50) and 2/3 after (50 points).
    truth = [gt([(0, 0, 10, 10), (20, 20, 30, 30)], [0, 0])]
    dets = [det([(0, 0, 10, 10), (40, 40, 50, 50), (20, 20, 30, 30)], [0.9, 0.8, 0.7], [0, 0, 0])]
    expected = (51 * 1.0 + 50 * 2 / 3) / RECALL_POINTS
    result = evaluate_detections(dets, truth, num_classes=1)
    assert result["ap50"] == pytest.approx(expected)
    recall, precision = torch.tensor([0.5, 0.5, 1.0]), torch.tensor([1.0, 0.5, 2 / 3])
    assert interpolated_ap(recall, precision) == pytest.approx(expected)


def test_missed_object_caps_recall() -> None:
    # One of two objects found, no false positive: precision 1 up to recall .5.
    truth = [gt([(0, 0, 10, 10), (20, 20, 30, 30)], [0, 0])]
    dets = [det([(0, 0, 10, 10)], [0.9], [0])]
    assert evaluate_detections(dets, truth, 1)["ap50"] == pytest.approx(51 / 101)


def test_ap_over_iou_thresholds_with_known_ious() -> None:
    # Detection IoUs 0.72 (class 0) and 0.87 (class 1): true positives at thresholds
    # .50-.70 (5 of 10) and .50-.85 (8 of 10).
    truth = [gt([(0, 0, 10, 10), (20, 20, 30, 30)], [0, 1])]
    dets = [det([(0, 0, 10, 7.2), (20, 20, 30, 28.7)], [0.9, 0.9], [0, 1])]
    result = evaluate_detections(dets, truth, 2)
    assert result["ap_per_class"] == pytest.approx([0.5, 0.8])
    assert result["ap"] == pytest.approx(0.65)
    assert result["ap50"] == pytest.approx(1.0)
    assert result["ap75"] == pytest.approx(0.5)
    assert len(COCO_IOU_THRESHOLDS) == 10


def test_wrong_class_and_duplicates_are_false_positives() -> None:
    truth = [gt([(0, 0, 10, 10)], [0])]
    # The duplicate (.8) cannot take an object already matched; the class-1 box is
    # judged against class 1, which has no ground truth and is left out of the mean.
    dets = [det([(0, 0, 10, 10), (0, 0, 10, 10), (0, 0, 10, 10)], [0.9, 0.8, 0.95], [0, 0, 1])]
    result = evaluate_detections(dets, truth, 2)
    assert result["ap50"] == pytest.approx(1.0)
    assert math.isnan(result["ap_per_class"][1])
    # A poorly placed box (IoU .4, a miss at 0.5) ranked above the true positive
    # halves the precision at full recall.
    dets = [det([(0, 0, 10, 10), (0, 0, 10, 4)], [0.8, 0.9], [0, 0])]
    assert evaluate_detections(dets, truth, 1)["ap50"] == pytest.approx(0.5)


def test_empty_ground_truth_is_an_error() -> None:
    with pytest.raises(ValueError, match="no ground-truth"):
        evaluate_detections([det([(0, 0, 1, 1)], [0.5], [0])], [gt([], [])], 1)
