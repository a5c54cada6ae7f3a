"""YOLOv3-style detection (Redmon & Farhadi 2018) on generated shapes: a plain training script.

Each canvas holds one to four rectangles, ellipses and triangles of many sizes and
aspect ratios; the detector predicts their boxes and classes at three scales, from
nine priors found by k-means on the training boxes. Data, model and loss come
from ``nndoctor.zoo.detection``; the loop below is ordinary PyTorch, and the end
reports AP@0.5 on the validation split. Healthy: nndoctor should report no warning
and no error.

    python examples/zoo/yolov3.py --steps 300
    nndoctor check examples/zoo/yolov3.py
"""

from __future__ import annotations

import argparse

import torch
from torch.utils.data import DataLoader

from nndoctor.zoo.detection.boxes import evaluate_detections
from nndoctor.zoo.detection.shapes import (
    NUM_CLASSES,
    ShapesDetection,
    collate_detection,
    split_targets,
)
from nndoctor.zoo.detection.yolov3 import (
    BATCH_SIZE,
    DEFAULT_STEPS,
    LEARNING_RATE,
    WEIGHT_DECAY,
    YoloConfig,
    YOLOv3,
    make_anchors,
    postprocess,
    yolo_loss,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=DEFAULT_STEPS)
    parser.add_argument("--batch-size", type=int, default=BATCH_SIZE)
    parser.add_argument("--lr", type=float, default=LEARNING_RATE)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    device = torch.device(args.device)
    train_set = ShapesDetection("train", seed=args.seed)
    val_set = ShapesDetection("val", seed=args.seed)
    loader = DataLoader(
        train_set,
        batch_size=args.batch_size,
        shuffle=True,
        drop_last=True,
        collate_fn=collate_detection,
    )

    cfg = YoloConfig()
    anchors = make_anchors(train_set, cfg, seed=args.seed)  # (3, 3, 2) k-means priors
    model = YOLOv3(cfg, anchors).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=WEIGHT_DECAY)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=args.steps)

    model.train()
    step = 0
    while step < args.steps:
        for images, targets in loader:
            images, targets = images.to(device), targets.to(device)
            optimizer.zero_grad()
            loss = yolo_loss(model(images), targets, model.anchors, model.strides)
            loss.backward()
            optimizer.step()
            scheduler.step()
            step += 1
            if step == 1 or step % 50 == 0:
                print(f"step {step:5d}  loss {loss.item():.4f}")
            if step >= args.steps:
                break

    model.eval()
    detections, ground_truth = [], []
    with torch.no_grad():
        for images, targets in DataLoader(val_set, batch_size=128, collate_fn=collate_detection):
            detections += postprocess(model(images.to(device)), model.anchors, model.strides)
            ground_truth += split_targets(targets)
    metrics = evaluate_detections(detections, ground_truth, NUM_CLASSES)
    print(f"val AP@0.5 {metrics['ap50']:.3f}  AP@[.5:.95] {metrics['ap']:.3f}")


if __name__ == "__main__":
    main()
