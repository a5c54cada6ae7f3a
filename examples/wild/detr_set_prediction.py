"""DETR-style set prediction of coloured rectangles with Hungarian matching: healthy.

In the manner of DETR's ``main.py``, ``models/detr.py`` and ``models/matcher.py`` (Carion
et al. 2020, "End-to-End Object Detection with Transformers"), made tiny: the data are
generated 24x24 RGB images (uint8, height x width x channel) on a noisy dark background
with 1 to 4 non-overlapping rectangles (4 to 11 pixels a side) of 3 classes told apart by
their colour (red, green, blue, with jitter; class frequencies 0.5 / 0.3 / 0.2), 4,000
for training and 500 held out. A ``Dataset`` turns each image into a normalised
channel-first tensor and its target dict ``{"labels", "boxes"}`` with the boxes converted
from pixel corners to normalised ``(cx, cy, w, h)``; a ``collate_fn`` stacks the images and
keeps the targets as a list of dicts (one image may hold 1 box, the next 4).

``DETR`` is a small convolutional backbone (Conv-BatchNorm-ReLU, two stride-2 stages to a
6x6 feature map), a 1x1 ``input_proj``, a sine position embedding, and a post-norm
Transformer written out as in DETR's ``transformer.py`` (``nn.MultiheadAttention``, the
positions added to queries and keys in every layer, 2 encoder and 2 decoder layers, width
64, 4 heads), decoding N=6 learned object queries from a zero target; a class head with a
"no object" class and a 3-layer MLP box head through a sigmoid. ``HungarianMatcher``
assigns predictions to targets per image under ``torch.no_grad()`` on the cost
5 * L1(box) - 1 * p(class) - 2 * GIoU; the assignment is a brute-force
``linear_sum_assignment`` over the injective maps of the (at most 4) targets to the 6
queries. ``SetCriterion`` computes the cross-entropy over all queries with the unmatched
ones labelled "no object" and that class down-weighted by ``eos_coef=0.1`` in the weight
vector, and the L1 and 1 - GIoU losses of the matched boxes normalised by the number of
boxes; the weighted sum (1, 5, 2) is minimised by AdamW with two parameter groups (the
backbone at a lower learning rate), ``clip_grad_norm_`` and a ``StepLR`` dropping the rate
by 10 for the last epochs. Top-level functions and ``main()`` with argparse, a
``train_one_epoch`` and an ``evaluate`` under ``torch.no_grad()``; prints the epoch's
losses and class error, then on the held-out images the matched classification accuracy
and the mean IoU of the matched boxes, against predicting the most common class and the
mean training box.

Healthy: nndoctor should report no warning and no error.

    python examples/wild/detr_set_prediction.py
    nndoctor check examples/wild/detr_set_prediction.py
"""

import argparse
import itertools
import math
import random
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

CLASSES = ("red", "green", "blue")
COLOURS = np.array([[200, 50, 40], [40, 190, 60], [50, 70, 210]], dtype=np.float32)
CLASS_FREQ = (0.5, 0.3, 0.2)

# -----------------------------------------------------------------------------
# box utilities (util/box_ops.py)


def box_cxcywh_to_xyxy(x):
    x_c, y_c, w, h = x.unbind(-1)
    b = [(x_c - 0.5 * w), (y_c - 0.5 * h), (x_c + 0.5 * w), (y_c + 0.5 * h)]
    return torch.stack(b, dim=-1)


def box_xyxy_to_cxcywh(x):
    x0, y0, x1, y1 = x.unbind(-1)
    b = [(x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0), (y1 - y0)]
    return torch.stack(b, dim=-1)


def box_area(boxes):
    return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])


def box_iou(boxes1, boxes2):
    area1 = box_area(boxes1)
    area2 = box_area(boxes2)
    lt = torch.max(boxes1[:, None, :2], boxes2[:, :2])
    rb = torch.min(boxes1[:, None, 2:], boxes2[:, 2:])
    wh = (rb - lt).clamp(min=0)
    inter = wh[:, :, 0] * wh[:, :, 1]
    union = area1[:, None] + area2 - inter
    iou = inter / union
    return iou, union


def generalized_box_iou(boxes1, boxes2):
    """GIoU of every pair, boxes in (x0, y0, x1, y1)."""
    iou, union = box_iou(boxes1, boxes2)
    lt = torch.min(boxes1[:, None, :2], boxes2[:, :2])
    rb = torch.max(boxes1[:, None, 2:], boxes2[:, 2:])
    wh = (rb - lt).clamp(min=0)
    area = wh[:, :, 0] * wh[:, :, 1]
    return iou - (area - union) / area


# -----------------------------------------------------------------------------
# data


def make_image(rng, size):
    img = rng.normal(30.0, 8.0, size=(size, size, 3))
    n = int(rng.integers(1, 5))
    boxes, labels = [], []
    while len(boxes) < n:
        w, h = rng.integers(4, 12, size=2)
        x0, y0 = rng.integers(0, size - w + 1), rng.integers(0, size - h + 1)
        box = np.array([x0, y0, x0 + w, y0 + h], dtype=np.float32)
        # keep the rectangles apart (one pixel of background between them)
        if any(
            box[0] <= b[2] and b[0] <= box[2] and box[1] <= b[3] and b[1] <= box[3] for b in boxes
        ):
            continue
        label = int(rng.choice(len(CLASSES), p=CLASS_FREQ))
        colour = COLOURS[label] + rng.normal(0.0, 15.0, size=3)
        img[y0 : y0 + h, x0 : x0 + w] = colour + rng.normal(0.0, 6.0, size=(h, w, 3))
        boxes.append(box)
        labels.append(label)
    img = np.clip(img, 0, 255).astype(np.uint8)
    return img, np.stack(boxes), np.array(labels, dtype=np.int64)


class ShapesDetection(Dataset):
    def __init__(self, images, boxes, labels, mean, std):
        self.images, self.boxes, self.labels = images, boxes, labels
        self.mean = torch.as_tensor(mean, dtype=torch.float32)[:, None, None]
        self.std = torch.as_tensor(std, dtype=torch.float32)[:, None, None]

    def __len__(self):
        return len(self.images)

    def __getitem__(self, idx):
        img = self.images[idx]
        h, w = img.shape[:2]
        image = torch.from_numpy(img).permute(2, 0, 1).float() / 255.0
        image = (image - self.mean) / self.std
        boxes = box_xyxy_to_cxcywh(torch.from_numpy(self.boxes[idx]))
        boxes = boxes / torch.tensor([w, h, w, h], dtype=torch.float32)
        target = {"labels": torch.from_numpy(self.labels[idx]), "boxes": boxes}
        return image, target


def collate_fn(batch):
    images, targets = tuple(zip(*batch, strict=True))
    return torch.stack(images), list(targets)


# -----------------------------------------------------------------------------
# model


class Backbone(nn.Module):
    def __init__(self, num_channels=64):
        super().__init__()

        def block(c_in, c_out, stride):
            return [
                nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False),
                nn.BatchNorm2d(c_out),
                nn.ReLU(inplace=True),
            ]

        self.body = nn.Sequential(
            *block(3, 32, 1), *block(32, 48, 2), *block(48, num_channels, 2)
        )
        self.num_channels = num_channels

    def forward(self, x):
        return self.body(x)


class PositionEmbeddingSine(nn.Module):
    def __init__(self, num_pos_feats=32, temperature=10000):
        super().__init__()
        self.num_pos_feats = num_pos_feats
        self.temperature = temperature
        self.scale = 2 * math.pi

    def forward(self, x):
        b, _, h, w = x.shape
        not_mask = torch.ones(b, h, w, device=x.device)
        y_embed = not_mask.cumsum(1)
        x_embed = not_mask.cumsum(2)
        eps = 1e-6
        y_embed = y_embed / (y_embed[:, -1:, :] + eps) * self.scale
        x_embed = x_embed / (x_embed[:, :, -1:] + eps) * self.scale
        dim_t = torch.arange(self.num_pos_feats, dtype=torch.float32, device=x.device)
        dim_t = self.temperature ** (2 * (dim_t // 2) / self.num_pos_feats)
        pos_x = x_embed[:, :, :, None] / dim_t
        pos_y = y_embed[:, :, :, None] / dim_t
        pos_x = torch.stack((pos_x[:, :, :, 0::2].sin(), pos_x[:, :, :, 1::2].cos()), dim=4)
        pos_y = torch.stack((pos_y[:, :, :, 0::2].sin(), pos_y[:, :, :, 1::2].cos()), dim=4)
        pos = torch.cat((pos_y.flatten(3), pos_x.flatten(3)), dim=3).permute(0, 3, 1, 2)
        return pos


class TransformerEncoderLayer(nn.Module):
    def __init__(self, d_model, nhead, dim_feedforward, dropout):
        super().__init__()
        self.self_attn = nn.MultiheadAttention(d_model, nhead, dropout=dropout)
        self.linear1 = nn.Linear(d_model, dim_feedforward)
        self.linear2 = nn.Linear(dim_feedforward, d_model)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)

    def forward(self, src, pos):
        q = k = src + pos
        src2 = self.self_attn(q, k, value=src)[0]
        src = self.norm1(src + self.dropout1(src2))
        src2 = self.linear2(self.dropout(F.relu(self.linear1(src))))
        return self.norm2(src + self.dropout2(src2))


class TransformerDecoderLayer(nn.Module):
    def __init__(self, d_model, nhead, dim_feedforward, dropout):
        super().__init__()
        self.self_attn = nn.MultiheadAttention(d_model, nhead, dropout=dropout)
        self.multihead_attn = nn.MultiheadAttention(d_model, nhead, dropout=dropout)
        self.linear1 = nn.Linear(d_model, dim_feedforward)
        self.linear2 = nn.Linear(dim_feedforward, d_model)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.norm3 = nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)
        self.dropout3 = nn.Dropout(dropout)

    def forward(self, tgt, memory, pos, query_pos):
        q = k = tgt + query_pos
        tgt2 = self.self_attn(q, k, value=tgt)[0]
        tgt = self.norm1(tgt + self.dropout1(tgt2))
        tgt2 = self.multihead_attn(query=tgt + query_pos, key=memory + pos, value=memory)[0]
        tgt = self.norm2(tgt + self.dropout2(tgt2))
        tgt2 = self.linear2(self.dropout(F.relu(self.linear1(tgt))))
        return self.norm3(tgt + self.dropout3(tgt2))


class Transformer(nn.Module):
    def __init__(self, d_model=64, nhead=4, num_encoder_layers=2, num_decoder_layers=2,
                 dim_feedforward=128, dropout=0.1):
        super().__init__()
        self.encoder_layers = nn.ModuleList(
            TransformerEncoderLayer(d_model, nhead, dim_feedforward, dropout)
            for _ in range(num_encoder_layers)
        )
        self.decoder_layers = nn.ModuleList(
            TransformerDecoderLayer(d_model, nhead, dim_feedforward, dropout)
            for _ in range(num_decoder_layers)
        )
        self.decoder_norm = nn.LayerNorm(d_model)
        self.d_model = d_model
        for p in self.parameters():
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)

    def forward(self, src, query_embed, pos_embed):
        # flatten NxCxHxW to HWxNxC (sequence first, as nn.MultiheadAttention expects)
        bs = src.shape[0]
        src = src.flatten(2).permute(2, 0, 1)
        pos_embed = pos_embed.flatten(2).permute(2, 0, 1)
        query_embed = query_embed.unsqueeze(1).repeat(1, bs, 1)
        tgt = torch.zeros_like(query_embed)

        memory = src
        for layer in self.encoder_layers:
            memory = layer(memory, pos_embed)
        hs = tgt
        for layer in self.decoder_layers:
            hs = layer(hs, memory, pos_embed, query_embed)
        hs = self.decoder_norm(hs)
        return hs.transpose(0, 1)  # (bs, num_queries, d_model)


class MLP(nn.Module):
    def __init__(self, input_dim, hidden_dim, output_dim, num_layers):
        super().__init__()
        self.num_layers = num_layers
        h = [hidden_dim] * (num_layers - 1)
        self.layers = nn.ModuleList(
            nn.Linear(n, k) for n, k in zip([input_dim] + h, h + [output_dim], strict=True)
        )

    def forward(self, x):
        for i, layer in enumerate(self.layers):
            x = F.relu(layer(x)) if i < self.num_layers - 1 else layer(x)
        return x


class DETR(nn.Module):
    def __init__(self, backbone, transformer, num_classes, num_queries):
        super().__init__()
        self.num_queries = num_queries
        self.transformer = transformer
        hidden_dim = transformer.d_model
        self.class_embed = nn.Linear(hidden_dim, num_classes + 1)
        self.bbox_embed = MLP(hidden_dim, hidden_dim, 4, 3)
        self.query_embed = nn.Embedding(num_queries, hidden_dim)
        self.input_proj = nn.Conv2d(backbone.num_channels, hidden_dim, kernel_size=1)
        self.backbone = backbone
        self.position_embedding = PositionEmbeddingSine(hidden_dim // 2)

    def forward(self, samples):
        features = self.backbone(samples)
        pos = self.position_embedding(features)
        hs = self.transformer(self.input_proj(features), self.query_embed.weight, pos)
        outputs_class = self.class_embed(hs)
        outputs_coord = self.bbox_embed(hs).sigmoid()
        return {"pred_logits": outputs_class, "pred_boxes": outputs_coord}


# -----------------------------------------------------------------------------
# matcher and criterion

_PERMS = {}


def linear_sum_assignment(cost):
    """Minimum-cost assignment of the columns (targets) to distinct rows (queries).

    Brute force over the injective maps; returns (row_ind, col_ind) sorted by row, as
    scipy.optimize.linear_sum_assignment does."""
    n_rows, n_cols = cost.shape
    if (n_rows, n_cols) not in _PERMS:
        _PERMS[n_rows, n_cols] = np.array(list(itertools.permutations(range(n_rows), n_cols)))
    perms = _PERMS[n_rows, n_cols].reshape(-1, n_cols)
    total = cost[perms, np.arange(n_cols)].sum(1)
    rows = perms[total.argmin()]
    order = np.argsort(rows)
    return rows[order], order


class HungarianMatcher(nn.Module):
    def __init__(self, cost_class=1.0, cost_bbox=5.0, cost_giou=2.0):
        super().__init__()
        self.cost_class = cost_class
        self.cost_bbox = cost_bbox
        self.cost_giou = cost_giou

    @torch.no_grad()
    def forward(self, outputs, targets):
        bs, num_queries = outputs["pred_logits"].shape[:2]
        out_prob = outputs["pred_logits"].flatten(0, 1).softmax(-1)
        out_bbox = outputs["pred_boxes"].flatten(0, 1)

        tgt_ids = torch.cat([v["labels"] for v in targets])
        tgt_bbox = torch.cat([v["boxes"] for v in targets])

        cost_class = -out_prob[:, tgt_ids]
        cost_bbox = torch.cdist(out_bbox, tgt_bbox, p=1)
        cost_giou = -generalized_box_iou(box_cxcywh_to_xyxy(out_bbox), box_cxcywh_to_xyxy(tgt_bbox))

        C = self.cost_bbox * cost_bbox + self.cost_class * cost_class + self.cost_giou * cost_giou
        C = C.view(bs, num_queries, -1).cpu().numpy()

        sizes = [len(v["boxes"]) for v in targets]
        splits = np.cumsum(sizes)[:-1]
        indices = [linear_sum_assignment(c[i]) for i, c in enumerate(np.split(C, splits, -1))]
        return [
            (torch.as_tensor(i, dtype=torch.int64), torch.as_tensor(j, dtype=torch.int64))
            for i, j in indices
        ]


class SetCriterion(nn.Module):
    def __init__(self, num_classes, matcher, weight_dict, eos_coef):
        super().__init__()
        self.num_classes = num_classes
        self.matcher = matcher
        self.weight_dict = weight_dict
        self.eos_coef = eos_coef
        empty_weight = torch.ones(self.num_classes + 1)
        empty_weight[-1] = self.eos_coef
        self.register_buffer("empty_weight", empty_weight)

    def loss_labels(self, outputs, targets, indices, num_boxes):
        src_logits = outputs["pred_logits"]
        idx = self._get_src_permutation_idx(indices)
        target_classes_o = torch.cat(
            [t["labels"][J] for t, (_, J) in zip(targets, indices, strict=True)]
        )
        target_classes = torch.full(
            src_logits.shape[:2], self.num_classes, dtype=torch.int64, device=src_logits.device
        )
        target_classes[idx] = target_classes_o
        loss_ce = F.cross_entropy(src_logits.transpose(1, 2), target_classes, self.empty_weight)
        with torch.no_grad():
            pred = src_logits[idx].argmax(-1)
            class_error = 100.0 - 100.0 * (pred == target_classes_o).float().mean()
        return {"loss_ce": loss_ce, "class_error": class_error}

    def loss_boxes(self, outputs, targets, indices, num_boxes):
        idx = self._get_src_permutation_idx(indices)
        src_boxes = outputs["pred_boxes"][idx]
        target_boxes = torch.cat(
            [t["boxes"][i] for t, (_, i) in zip(targets, indices, strict=True)], dim=0
        )
        loss_bbox = F.l1_loss(src_boxes, target_boxes, reduction="none")
        loss_giou = 1 - torch.diag(
            generalized_box_iou(box_cxcywh_to_xyxy(src_boxes), box_cxcywh_to_xyxy(target_boxes))
        )
        return {
            "loss_bbox": loss_bbox.sum() / num_boxes,
            "loss_giou": loss_giou.sum() / num_boxes,
        }

    def _get_src_permutation_idx(self, indices):
        batch_idx = torch.cat([torch.full_like(src, i) for i, (src, _) in enumerate(indices)])
        src_idx = torch.cat([src for (src, _) in indices])
        return batch_idx, src_idx

    def forward(self, outputs, targets):
        indices = self.matcher(outputs, targets)
        num_boxes = max(float(sum(len(t["labels"]) for t in targets)), 1.0)
        losses = {}
        losses.update(self.loss_labels(outputs, targets, indices, num_boxes))
        losses.update(self.loss_boxes(outputs, targets, indices, num_boxes))
        return losses


# -----------------------------------------------------------------------------
# training and evaluation (engine.py)


def train_one_epoch(model, criterion, data_loader, optimizer, epoch, max_norm):
    model.train()
    criterion.train()
    sums, n = {}, 0
    for samples, targets in data_loader:
        outputs = model(samples)
        loss_dict = criterion(outputs, targets)
        weight_dict = criterion.weight_dict
        losses = sum(loss_dict[k] * weight_dict[k] for k in loss_dict.keys() if k in weight_dict)

        optimizer.zero_grad()
        losses.backward()
        if max_norm > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)
        optimizer.step()

        for k, v in loss_dict.items():
            sums[k] = sums.get(k, 0.0) + v.item()
        sums["loss"] = sums.get("loss", 0.0) + losses.item()
        n += 1
    return {k: v / n for k, v in sums.items()}


@torch.no_grad()
def evaluate(model, matcher, data_loader):
    model.eval()
    correct = total = 0
    ious = []
    for samples, targets in data_loader:
        outputs = model(samples)
        indices = matcher(outputs, targets)
        pred_classes = outputs["pred_logits"].argmax(-1)
        for b, (t, (src, tgt)) in enumerate(zip(targets, indices, strict=True)):
            correct += (pred_classes[b, src] == t["labels"][tgt]).sum().item()
            total += len(tgt)
            iou, _ = box_iou(
                box_cxcywh_to_xyxy(outputs["pred_boxes"][b, src]),
                box_cxcywh_to_xyxy(t["boxes"][tgt]),
            )
            ious.append(torch.diag(iou))
    return correct / total, torch.cat(ious).mean().item()


def get_args_parser():
    parser = argparse.ArgumentParser("tiny DETR on generated rectangles", add_help=True)
    parser.add_argument("--lr", default=1e-3, type=float)
    parser.add_argument("--lr_backbone", default=3e-4, type=float)
    parser.add_argument("--batch_size", default=32, type=int)
    parser.add_argument("--weight_decay", default=1e-4, type=float)
    parser.add_argument("--epochs", default=10, type=int)
    parser.add_argument("--lr_drop", default=8, type=int)
    parser.add_argument("--clip_max_norm", default=0.5, type=float)
    parser.add_argument("--num_queries", default=6, type=int)
    parser.add_argument("--hidden_dim", default=64, type=int)
    parser.add_argument("--dropout", default=0.0, type=float)
    parser.add_argument("--set_cost_class", default=1.0, type=float)
    parser.add_argument("--set_cost_bbox", default=5.0, type=float)
    parser.add_argument("--set_cost_giou", default=2.0, type=float)
    parser.add_argument("--bbox_loss_coef", default=5.0, type=float)
    parser.add_argument("--giou_loss_coef", default=2.0, type=float)
    parser.add_argument("--eos_coef", default=0.1, type=float)
    parser.add_argument("--num_train", default=3000, type=int)
    parser.add_argument("--num_val", default=500, type=int)
    parser.add_argument("--image_size", default=24, type=int)
    parser.add_argument("--seed", default=0, type=int)
    return parser


def main(args):
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    random.seed(args.seed)
    rng = np.random.default_rng(args.seed)

    data = [make_image(rng, args.image_size) for _ in range(args.num_train + args.num_val)]
    images = np.stack([d[0] for d in data])
    boxes = [d[1] for d in data]
    labels = [d[2] for d in data]
    n = args.num_train
    mean = images[:n].reshape(-1, 3).mean(0) / 255.0
    std = images[:n].reshape(-1, 3).std(0) / 255.0
    dataset_train = ShapesDetection(images[:n], boxes[:n], labels[:n], mean, std)
    dataset_val = ShapesDetection(images[n:], boxes[n:], labels[n:], mean, std)
    generator = torch.Generator().manual_seed(args.seed)
    data_loader_train = DataLoader(
        dataset_train, batch_size=args.batch_size, shuffle=True, drop_last=True,
        collate_fn=collate_fn, generator=generator,
    )
    data_loader_val = DataLoader(
        dataset_val, batch_size=args.batch_size, shuffle=False, collate_fn=collate_fn
    )

    num_classes = len(CLASSES)
    backbone = Backbone()
    transformer = Transformer(d_model=args.hidden_dim, dropout=args.dropout)
    model = DETR(backbone, transformer, num_classes=num_classes, num_queries=args.num_queries)
    matcher = HungarianMatcher(args.set_cost_class, args.set_cost_bbox, args.set_cost_giou)
    weight_dict = {"loss_ce": 1, "loss_bbox": args.bbox_loss_coef, "loss_giou": args.giou_loss_coef}
    criterion = SetCriterion(num_classes, matcher, weight_dict, args.eos_coef)
    n_parameters = sum(p.numel() for p in model.parameters() if p.requires_grad)
    print("number of params:", n_parameters)

    param_dicts = [
        {
            "params": [
                p for n, p in model.named_parameters() if "backbone" not in n and p.requires_grad
            ]
        },
        {
            "params": [
                p for n, p in model.named_parameters() if "backbone" in n and p.requires_grad
            ],
            "lr": args.lr_backbone,
        },
    ]
    optimizer = torch.optim.AdamW(param_dicts, lr=args.lr, weight_decay=args.weight_decay)
    lr_scheduler = torch.optim.lr_scheduler.StepLR(optimizer, args.lr_drop)

    # baselines from the training set: the most common class and the mean box
    train_labels = np.concatenate(labels[:n])
    common_class = np.bincount(train_labels).argmax()
    val_labels = np.concatenate(labels[n:])
    mean_box = torch.cat([dataset_train[i][1]["boxes"] for i in range(n)]).mean(0, keepdim=True)
    val_boxes = torch.cat([dataset_val[i][1]["boxes"] for i in range(len(dataset_val))])
    mean_box_iou = box_iou(box_cxcywh_to_xyxy(mean_box), box_cxcywh_to_xyxy(val_boxes))[0]

    print("Start training")
    start_time = time.time()
    for epoch in range(args.epochs):
        stats = train_one_epoch(
            model, criterion, data_loader_train, optimizer, epoch, args.clip_max_norm
        )
        lr_scheduler.step()
        acc, miou = evaluate(model, matcher, data_loader_val)
        print(
            f"Epoch: [{epoch}]  loss {stats['loss']:.4f}  loss_ce {stats['loss_ce']:.4f}  "
            f"loss_bbox {stats['loss_bbox']:.4f}  loss_giou {stats['loss_giou']:.4f}  "
            f"class_error {stats['class_error']:.2f}  |  val matched acc {acc:.3f}  "
            f"mean IoU {miou:.3f}"
        )
    print(f"Training time {time.time() - start_time:.1f}s")

    acc, miou = evaluate(model, matcher, data_loader_val)
    common_acc = (val_labels == common_class).mean()
    print(
        f"held-out matched accuracy {acc:.3f} (most common class {common_acc:.3f}), "
        f"mean IoU {miou:.3f} (mean training box {mean_box_iou.mean().item():.3f})"
    )


if __name__ == "__main__":
    main(get_args_parser().parse_args())
