"""Faults planted in the zoo: edits of the plain zoo scripts (``examples/zoo/*.py``) and
transformations of the zoo subjects checked through the Python API (``api-*``).

Script faults are exact text edits of a copy of a zoo script, the way the bug would
arrive in a user's training script. Subject faults transform a freshly built zoo
subject (its batches, model, loss or optimiser) before the doctor sees it; each
transform is a module-level function so the bench's child interpreter can import it
by name through the registry.

Splits follow the bases: faults on a ``test`` base are ``test`` (with a few ``dev``
exceptions on the API subjects), the rest ``dev``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from nndoctor.faults.registry import Edit, Fault, register_fault
from nndoctor.subject import OptimizerSpec, Subject

# -- helpers --------------------------------------------------------------------------------


class MappedBatches:
    """A re-iterable view of a subject's batch source with ``fn(batch, generator)`` applied.

    The generator is re-seeded at every pass, so the faulty stream stays deterministic
    (the same batches on every iteration, as the healthy stream is).
    """

    def __init__(
        self,
        source: Iterable[Any] | Callable[[], Iterable[Any]],
        fn: Callable[[Any, torch.Generator], Any],
        seed: int = 0,
    ) -> None:
        self.source = source
        self.fn = fn
        self.seed = seed

    def __iter__(self) -> Iterator[Any]:
        source = self.source() if callable(self.source) else self.source
        g = torch.Generator().manual_seed(self.seed)
        for batch in source:
            yield self.fn(batch, g)


def map_batches(
    subject: Subject, fn: Callable[[Any, torch.Generator], Any], seed: int = 0
) -> Subject:
    """``subject`` whose every batch is passed through ``fn(batch, generator)``."""
    subject.batches = MappedBatches(subject.batches, fn, seed)
    return subject


def scale_learning_rate(subject: Subject, factor: float) -> Subject:
    """``subject`` whose optimiser runs at ``factor`` times its learning rate."""
    spec = subject.optimizer
    assert spec is not None
    defaults = dict(spec.defaults)
    defaults["lr"] = defaults["lr"] * factor
    groups = [{**g, "lr": g["lr"] * factor} if "lr" in g else dict(g) for g in spec.groups]
    subject.optimizer = OptimizerSpec(spec.cls, defaults, groups)
    return subject


def set_loss_fn(subject: Subject, loss_fn: Callable[[nn.Module, Any], torch.Tensor]) -> Subject:
    """``subject`` trained with ``loss_fn(model, batch)`` instead of its own loss."""
    subject.loss_fn = loss_fn
    subject.criterion = None
    return subject


# -- api-rotation -----------------------------------------------------------------------------


def freeze_rotation_trunk(subject: Subject) -> Subject:
    """The trunk left at ``requires_grad_(False)`` (a linear-probe recipe) while training
    from scratch: only the 4-way linear classifier learns, on random features."""
    subject.model.trunk.requires_grad_(False)
    return subject


def _shuffle_images_not_labels(batch: Any, g: torch.Generator) -> Any:
    images, labels = batch
    return images[torch.randperm(len(images), generator=g)], labels


def rotation_images_shuffled_apart(subject: Subject) -> Subject:
    """The images of every batch re-shuffled while their labels are left in place."""
    return map_batches(subject, _shuffle_images_not_labels)


def rotation_lr_x1000(subject: Subject) -> Subject:
    """Adam at lr 1.0 instead of 1e-3 (the rate of an SGD recipe, ×1000)."""
    return scale_learning_rate(subject, 1000.0)


# -- api-relative-position -----------------------------------------------------------------


def rebuild_pretext_batches(subject: Subject, make_batch: Callable[..., Any]) -> Subject:
    """``subject`` whose pretext stream (same pool, batch size and seed) uses ``make_batch``."""
    from nndoctor.zoo.ssl._common import PretextBatches

    stream = subject.batches() if callable(subject.batches) else subject.batches
    assert isinstance(stream, PretextBatches), "a zoo pretext subject streams PretextBatches"
    pool, size, seed, device = stream.images, stream.batch_size, stream.seed, stream.device
    subject.batches = lambda: PretextBatches(pool, make_batch, size, seed, device)
    return subject


def relative_position_one_label_per_batch(
    images: torch.Tensor, generator: torch.Generator | None = None
) -> tuple[tuple[torch.Tensor, torch.Tensor], torch.Tensor]:
    """``relative_position.make_batch`` with the position drawn once per batch, not per pair."""
    from nndoctor.zoo.ssl._common import crop, grid_origins, uniform_ints
    from nndoctor.zoo.ssl.relative_position import GAP, JITTER, NEIGHBOURS, NUM_POSITIONS, PATCH

    n, size = images.shape[0], images.shape[-1]
    slack = grid_origins(size, PATCH, GAP, JITTER)
    labels = torch.randint(0, NUM_POSITIONS, (1,), generator=generator).expand(n)  # the bug: (1,)
    oy = uniform_ints(n, JITTER, JITTER + slack, generator)
    ox = uniform_ints(n, JITTER, JITTER + slack, generator)
    cell = PATCH + GAP
    rows_cols = torch.tensor(NEIGHBOURS)[labels]

    def patch_at(row: torch.Tensor | int, col: torch.Tensor | int) -> torch.Tensor:
        jy = uniform_ints(n, -JITTER, JITTER, generator)
        jx = uniform_ints(n, -JITTER, JITTER, generator)
        return crop(images, oy + row * cell + jy, ox + col * cell + jx, PATCH)

    centre = patch_at(1, 1)
    neighbour = patch_at(rows_cols[:, 0], rows_cols[:, 1])
    return (centre, neighbour), labels.contiguous()


def relative_position_single_label_batches(subject: Subject) -> Subject:
    """The neighbour position drawn once per batch: every batch holds a single label."""
    return rebuild_pretext_batches(subject, relative_position_one_label_per_batch)


class _ReLUThenDropout(nn.Sequential):
    """ReLU followed by dropout: the pair classifier's activation with dropout added."""

    def __init__(self, p: float) -> None:
        super().__init__(nn.ReLU(), nn.Dropout(p))


def pair_classifier_dropout_09(subject: Subject) -> Subject:
    """Dropout p=0.9 after every activation of the pair classifier (fc6, fc7)."""
    subject.model.head.relu = _ReLUThenDropout(0.9)
    return subject


def pair_classifier_init_std_1(subject: Subject) -> Subject:
    """The pair classifier's linear layers re-initialised with ``normal_(std=1.0)``:
    activations grow ~10× per layer and the logits start in the thousands."""
    with torch.no_grad():
        for layer in (subject.model.head.fc6, subject.model.head.fc7, subject.model.head.fc8):
            nn.init.normal_(layer.weight, mean=0.0, std=1.0)
            nn.init.zeros_(layer.bias)
    return subject


# -- api-yolov3 ----------------------------------------------------------------------------


def _yolo_loss_variant(
    outputs: list[torch.Tensor],
    targets: torch.Tensor,
    anchors: torch.Tensor,
    strides: tuple[int, ...],
    box_gain: float = 1.0,
    mask_by_multiplication: bool = False,
) -> torch.Tensor:
    """``yolov3.yolo_loss`` as a user might rewrite it, with one of two bugs.

    ``box_gain`` multiplies the coordinate term; ``mask_by_multiplication`` computes the
    coordinate targets for every (padded) ground-truth row and masks the padding by
    multiplying with 0, so the log of the padding's zero width is taken.
    """
    from nndoctor.zoo.detection.boxes import box_iou, wh_iou, xyxy_to_cxcywh
    from nndoctor.zoo.detection.shapes import PAD_CLASS
    from nndoctor.zoo.detection.yolov3 import IGNORE_THRESHOLD, decode_scale

    batch, m = targets.shape[:2]
    n_anchors = anchors.shape[1]
    image_area = float(outputs[0].shape[2] * strides[0] * outputs[0].shape[3] * strides[0])
    valid = targets[..., 0] != PAD_CLASS  # (B, M)
    gt_cls = targets[..., 0].long().clamp(min=0)
    gt_boxes = targets[..., 1:]
    gt = xyxy_to_cxcywh(gt_boxes)  # (B, M, 4)
    best = wh_iou(gt[..., 2:].reshape(-1, 2), anchors.reshape(-1, 2)).argmax(1).view(batch, m)
    scale_of, anchor_of = best // n_anchors, best % n_anchors

    loss = targets.new_zeros(())
    for s, (out, stride) in enumerate(zip(outputs, strides, strict=True)):
        _, _, h, w, _ = out.shape
        boxes, obj_logit, _ = decode_scale(out, anchors[s], stride)
        iou = box_iou(boxes.detach().view(batch, -1, 4), gt_boxes)
        iou = iou.masked_fill(~valid[:, None, :], 0.0)
        ignore = (iou.max(dim=2).values > IGNORE_THRESHOLD).view(batch, n_anchors, h, w)

        b_idx, m_idx = torch.nonzero(valid & (scale_of == s), as_tuple=True)
        a_idx = anchor_of[b_idx, m_idx]
        centre = gt[b_idx, m_idx, :2] / stride
        gx = centre[:, 0].floor().long().clamp(0, w - 1)
        gy = centre[:, 1].floor().long().clamp(0, h - 1)

        obj_target = torch.zeros_like(obj_logit)
        obj_target[b_idx, a_idx, gy, gx] = 1.0
        obj_weight = (~ignore).to(obj_logit.dtype)
        obj_weight[b_idx, a_idx, gy, gx] = 1.0
        loss = loss + F.binary_cross_entropy_with_logits(
            obj_logit, obj_target, weight=obj_weight, reduction="sum"
        )

        if mask_by_multiplication:
            # Every (image, row) at once, padding included; the padding is masked out below.
            mask = (valid & (scale_of == s)).to(out.dtype)  # (B, M)
            centre_all = gt[..., :2] / stride  # (B, M, 2)
            cx = centre_all[..., 0].floor().long().clamp(0, w - 1)
            cy = centre_all[..., 1].floor().long().clamp(0, h - 1)
            rows = torch.arange(batch, device=out.device)[:, None].expand(batch, m)
            pred_all = out[rows, anchor_of, cy, cx]  # (B, M, 5 + C)
            wh_all = gt[..., 2:]
            offset_all = centre_all - torch.stack([cx, cy], dim=-1).to(out.dtype)
            log_scale_all = torch.log(wh_all / anchors[s][anchor_of])  # log(0) on padding rows
            weight_all = 2.0 - wh_all.prod(dim=-1) / image_area
            xy_all = (torch.sigmoid(pred_all[..., :2]) - offset_all).pow(2).sum(dim=-1)
            wh_all_err = (pred_all[..., 2:4] - log_scale_all).pow(2).sum(dim=-1)
            loss = loss + (mask * weight_all * (xy_all + wh_all_err)).sum()
            pred = out[b_idx, a_idx, gy, gx]
        else:
            pred = out[b_idx, a_idx, gy, gx]
            wh = gt[b_idx, m_idx, 2:]
            offset = centre - torch.stack([gx, gy], dim=1).to(centre.dtype)
            log_scale = torch.log(wh / anchors[s][a_idx])
            box_weight = 2.0 - wh.prod(dim=1) / image_area
            xy_err = (torch.sigmoid(pred[:, :2]) - offset).pow(2).sum(dim=1)
            wh_err = (pred[:, 2:4] - log_scale).pow(2).sum(dim=1)
            loss = loss + box_gain * (box_weight * (xy_err + wh_err)).sum()
        cls_target = F.one_hot(gt_cls[b_idx, m_idx], pred.shape[1] - 5).to(pred.dtype)
        loss = loss + F.binary_cross_entropy_with_logits(pred[:, 5:], cls_target, reduction="sum")
    return loss / batch


def yolov3_loss_log_of_padding(model: nn.Module, batch: Any) -> torch.Tensor:
    """The YOLOv3 loss with the box targets computed over the padded rows (log of 0)."""
    images, targets = batch
    return _yolo_loss_variant(
        model(images),
        targets.to(images.device),
        model.anchors,
        model.strides,
        mask_by_multiplication=True,
    )


def yolov3_loss_box_x1000(model: nn.Module, batch: Any) -> torch.Tensor:
    """The YOLOv3 loss with the coordinate term weighted 1000 instead of 1."""
    images, targets = batch
    return _yolo_loss_variant(
        model(images), targets.to(images.device), model.anchors, model.strides, box_gain=1000.0
    )


def yolov3_log_of_padding(subject: Subject) -> Subject:
    """A vectorised rewrite of the box loss that takes log(w / p_w) of the padding rows."""
    return set_loss_fn(subject, yolov3_loss_log_of_padding)


def yolov3_box_loss_x1000(subject: Subject) -> Subject:
    """The box-coordinate term of the YOLOv3 loss weighted ×1000 against objectness/classes."""
    return set_loss_fn(subject, yolov3_loss_box_x1000)


class _FreezeBatchNormOnTrain:
    """Mixin: ``train()`` puts every BatchNorm back into eval mode (a ``freeze_bn`` helper)."""

    def train(self, mode: bool = True):  # type: ignore[no-untyped-def]
        super().train(mode)  # type: ignore[misc]
        for module in self.modules():  # type: ignore[attr-defined]
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.eval()
        return self


_FROZEN_BN_CLASSES: dict[type, type] = {}


def freeze_batchnorm_on_train(model: nn.Module) -> nn.Module:
    """``model`` whose ``train()`` keeps its BatchNorm layers in eval mode."""
    cls = type(model)
    if cls not in _FROZEN_BN_CLASSES:
        # Same name as the model class: the report must not give the fault away.
        _FROZEN_BN_CLASSES[cls] = type(
            cls.__name__, (_FreezeBatchNormOnTrain, cls), {"__module__": cls.__module__}
        )
    model.__class__ = _FROZEN_BN_CLASSES[cls]
    model.train()
    return model


def yolov3_batchnorm_frozen(subject: Subject) -> Subject:
    """BatchNorm frozen in eval mode (a pretrained-backbone ``freeze_bn``) on a model
    trained from scratch: its statistics stay at 0/1 and nothing is normalised."""
    freeze_batchnorm_on_train(subject.model)
    return subject


# -- api-efficientdet ----------------------------------------------------------------------


def _fusion_with_eps_typo(self: nn.Module) -> torch.Tensor:
    w = F.relu(self.weight)
    return w / (1e5 + w.sum())  # eps 1e5, meant 1e-5 (paper: 1e-4)


def bifpn_fusion_eps_1e5(subject: Subject) -> Subject:
    """Every BiFPN fast-normalised fusion divides by ``1e5 + sum(w)`` (eps typed 1e5):
    the fused features are ~1e-5 of their inputs and the fusion weights barely any gradient."""
    from nndoctor.zoo.detection.efficientdet import FastNormalizedFusion

    cls = type(
        FastNormalizedFusion.__name__,
        (FastNormalizedFusion,),
        {"__module__": FastNormalizedFusion.__module__},
    )
    cls.fusion_weights = _fusion_with_eps_typo  # type: ignore[method-assign]
    for module in subject.model.modules():
        if isinstance(module, FastNormalizedFusion):
            module.__class__ = cls
    return subject


class RepeatFirstBatch:
    """The first batch of a source, yielded again and again (``next(iter(loader))`` hoisted
    out of the training loop)."""

    def __init__(self, source: Iterable[Any] | Callable[[], Iterable[Any]]) -> None:
        self.source = source

    def __iter__(self) -> Iterator[Any]:
        source = self.source() if callable(self.source) else self.source
        first = next(iter(source))
        while True:
            yield first


def efficientdet_same_batch(subject: Subject) -> Subject:
    """Every step trains on the same first batch of 32 canvases."""
    subject.batches = RepeatFirstBatch(subject.batches)
    return subject


def efficientdet_prior_bias_sign(subject: Subject) -> Subject:
    """The focal-loss prior bias written with the wrong sign: every anchor starts at
    p(class) = 0.99 instead of 0.01, so the thousands of background anchors dominate."""
    from nndoctor.zoo.detection.efficientdet import PRIOR_PROBABILITY

    with torch.no_grad():
        bias = subject.model.class_net.predict[-1].bias
        nn.init.constant_(bias, math.log((1 - PRIOR_PROBABILITY) / PRIOR_PROBABILITY))
    return subject


# -- script faults --------------------------------------------------------------------------

_SCRIPT_FAULTS = (
    # rotation (dev)
    Fault(
        "zoo-rotation-random-turn-after-label",
        "zoo-rotation",
        13,
        "dev",
        "an extra random quarter-turn 'augmentation' is applied after the rotation label is set,"
        " so the label no longer says how the image is rotated",
        also=(4, 5),
        edits=(
            Edit(
                "        return rotate(image.unsqueeze(0), quarter_turns).squeeze(0), quarter_turns",
                "        rotated = rotate(image.unsqueeze(0), quarter_turns)\n"
                "        # Augmentation: a random quarter turn on top, for more variety.\n"
                "        rotated = rotate(rotated, int(torch.randint(0, NUM_ROTATIONS, ())))\n"
                "        return rotated.squeeze(0), quarter_turns",
            ),
        ),
    ),
    # jigsaw (dev)
    Fault(
        "zoo-jigsaw-permutation-not-passed",
        "zoo-jigsaw",
        4,
        "dev",
        "the puzzle maker is called without the item's permutation, so it shuffles the tiles by a"
        " random one while the item is labelled with its own index",
        also=(5, 6),
        edits=(
            Edit(
                "        tiles, _ = make_batch(image.unsqueeze(0), labels=torch.tensor([permutation]))",
                "        tiles, _ = make_batch(image.unsqueeze(0))",
            ),
        ),
    ),
    Fault(
        "zoo-jigsaw-no-shuffle",
        "zoo-jigsaw",
        7,
        "dev",
        "DataLoader with shuffle=False over a dataset ordered scene by scene: every batch is one or"
        " two scenes in consecutive permutations (labels in sorted runs)",
        edits=(
            Edit(
                "loader = DataLoader(Puzzles(images), batch_size=args.batch_size, shuffle=True)",
                "loader = DataLoader(Puzzles(images), batch_size=args.batch_size, shuffle=False)",
            ),
        ),
    ),
    # exemplar (test)
    Fault(
        "zoo-exemplar-softmax-before-ce",
        "zoo-exemplar",
        19,
        "test",
        "softmax applied to the logits before nn.CrossEntropyLoss (which applies log-softmax"
        " itself): over 128 classes the loss can barely move",
        also=(18, 27),
        edits=(
            Edit(
                "            loss = criterion(model(x), y)",
                "            loss = criterion(model(x).softmax(dim=1), y)",
            ),
        ),
    ),
    # relative position (dev)
    Fault(
        "zoo-relative-position-centre-twice",
        "zoo-relative-position",
        2,
        "dev",
        "the centre patch is passed twice (model(centre, centre)): the neighbour whose position is"
        " the label never reaches the model",
        also=(4, 5),
        edits=(
            Edit(
                "            loss = criterion(model(centre, neighbour), y)",
                "            loss = criterion(model(centre, centre), y)",
            ),
        ),
    ),
    # denoising (dev)
    Fault(
        "zoo-denoising-target-is-noisy",
        "zoo-denoising",
        18,
        "dev",
        "the dataset returns the corrupted scene as the target too: the autoencoder is trained to"
        " copy its noisy input (identity), not to restore the clean scene",
        also=(21,),
        edits=(
            Edit(
                "        return corrupt(clean.unsqueeze(0)).squeeze(0), clean",
                "        noisy = corrupt(clean.unsqueeze(0)).squeeze(0)\n        return noisy, noisy",
            ),
        ),
    ),
    Fault(
        "zoo-denoising-raw-pixels",
        "zoo-denoising",
        12,
        "dev",
        "the scene pool is stored as 8-bit pixels and only cast back with .float(), not scaled:"
        " inputs and targets are 0..255 values instead of standardised ones",
        also=(1, 17),
        edits=(
            Edit(
                "from nndoctor.zoo.data import make_scenes\n",
                "from nndoctor.zoo.data import make_scenes, to_unit_rgb\n",
            ),
            Edit(
                "    images, _ = make_scenes(args.scenes, seed=args.seed)  # object labels unused: self-supervised\n",
                "    images, _ = make_scenes(args.scenes, seed=args.seed)  # object labels unused: self-supervised\n"
                "    images = (to_unit_rgb(images) * 255).to(torch.uint8)  # keep the pool as 8-bit pixels\n",
            ),
            Edit("        clean = self.images[i]\n", "        clean = self.images[i].float()\n"),
        ),
    ),
    # context encoder (test)
    Fault(
        "zoo-context-encoder-debug-subset",
        "zoo-context-encoder",
        9,
        "test",
        "a debugging slice left in: the encoder trains on 32 scenes (one batch, the same every step)"
        " instead of 4096",
        also=(3, 11),
        edits=(
            Edit(
                "    loader = DataLoader(MaskedScenes(images), batch_size=args.batch_size, shuffle=True)",
                "    images = images[:32]  # small subset while debugging\n"
                "    loader = DataLoader(MaskedScenes(images), batch_size=args.batch_size, shuffle=True)",
            ),
        ),
    ),
    # colorization (dev)
    Fault(
        "zoo-colorization-centred-per-pixel",
        "zoo-colorization",
        1,
        "dev",
        "the input is 'centred' over the channel axis, which for the one-channel lightness input"
        " makes every input exactly zero",
        also=(2,),
        edits=(
            Edit(
                "            lightness, bins = lightness.to(device), bins.to(device)",
                "            lightness, bins = lightness.to(device), bins.to(device)\n"
                "            lightness = lightness - lightness.mean(dim=1, keepdim=True)  # centre every pixel",
            ),
        ),
    ),
    # split-brain (test)
    Fault(
        "zoo-split-brain-lr-1",
        "zoo-split-brain",
        36,
        "test",
        "Adam's learning rate defaults to 1.0 instead of 1e-3",
        also=(35,),
        edits=(
            Edit(
                'parser.add_argument("--lr", type=float, default=1e-3)',
                'parser.add_argument("--lr", type=float, default=1.0)',
            ),
        ),
    ),
    # counting (dev)
    Fault(
        "zoo-counting-negative-is-self",
        "zoo-counting",
        18,
        "dev",
        "the contrastive 'other' image is the scene itself (x typed for y): the margin term pushes"
        " the counts away from exactly what the equivariance term pulls them to",
        also=(4, 23),
        edits=(
            Edit(
                '"other": downsample(y)[0]}',
                '"other": downsample(x)[0]}',
            ),
        ),
    ),
    # multitask (test)
    Fault(
        "zoo-multitask-rotation-label-redrawn",
        "zoo-multitask",
        16,
        "test",
        "the rotation sample is rotated by a second random draw, not by the quarter-turns it is"
        " labelled with; the summed loss of the three heads still falls and hides it",
        also=(4, 5, 21),
        edits=(
            Edit(
                '            "rotation": (rotation.rotate(x, quarter_turns)[0], quarter_turns),',
                '            "rotation": (\n'
                "                rotation.rotate(x, int(torch.randint(0, rotation.NUM_ROTATIONS, ())))[0],\n"
                "                quarter_turns,\n"
                "            ),",
            ),
        ),
    ),
    Fault(
        "zoo-multitask-colorization-x1000",
        "zoo-multitask",
        20,
        "test",
        "the colorization loss is weighted 1000 against the rotation and relative-position losses,"
        " so its gradient drives the shared trunk alone",
        also=(16,),
        edits=(
            Edit(
                "import DEFAULT_STEPS, MultiTaskNet, greyscale, multitask_loss",
                "import DEFAULT_STEPS, MultiTaskNet, greyscale, task_losses",
            ),
            Edit(
                "            loss = multitask_loss(model, batch)  # sum of the three heads' cross-entropies",
                "            losses = task_losses(model, batch)\n"
                "            # Colorization is averaged over every pixel: weight it up to match the others.\n"
                '            loss = losses["rotation"] + losses["relative_position"] + 1000 * losses["colorization"]',
            ),
        ),
    ),
    # yolov3 (dev)
    Fault(
        "zoo-yolov3-constant-conv-init",
        "zoo-yolov3",
        28,
        "dev",
        "every convolution is initialised with the constant 0.01: all filters of a layer are"
        " identical and stay identical (symmetric weights)",
        also=(24,),
        edits=(
            Edit(
                "    model = YOLOv3(cfg, anchors).to(device)",
                "    model = YOLOv3(cfg, anchors).to(device)\n"
                "    for m in model.modules():  # initialise the convolutions\n"
                "        if isinstance(m, torch.nn.Conv2d):\n"
                "            torch.nn.init.constant_(m.weight, 0.01)",
            ),
        ),
    ),
    Fault(
        "zoo-yolov3-optimizer-heads-only",
        "zoo-yolov3",
        23,
        "dev",
        "the optimiser is given model.heads.parameters() only (a fine-tuning recipe): the randomly"
        " initialised backbone and neck never train",
        edits=(
            Edit(
                "torch.optim.AdamW(model.parameters(),",
                "torch.optim.AdamW(model.heads.parameters(),",
            ),
        ),
    ),
    # efficientdet (test)
    Fault(
        "zoo-efficientdet-eval-mode",
        "zoo-efficientdet",
        32,
        "test",
        "model.eval() instead of model.train() before the loop: BatchNorm normalises with its"
        " initial running statistics (0 and 1) and never updates them",
        also=(35,),
        edits=(Edit("    model.train()\n", "    model.eval()\n"),),
    ),
)

_SUBJECT_FAULTS = (
    # api-rotation (dev)
    Fault(
        "api-rotation-frozen-trunk",
        "api-rotation",
        23,
        "dev",
        "the conv trunk is left at requires_grad_(False) while training from scratch: only the"
        " linear classifier learns, on random features",
        also=(33,),
        transform=freeze_rotation_trunk,
    ),
    Fault(
        "api-rotation-images-shuffled-apart",
        "api-rotation",
        4,
        "dev",
        "the rotated images of each batch are shuffled by their own randperm while the labels keep"
        " their order: images and labels no longer correspond",
        also=(5, 6),
        transform=rotation_images_shuffled_apart,
    ),
    Fault(
        "api-rotation-lr-x1000",
        "api-rotation",
        36,
        "dev",
        "Adam at learning rate 1.0 instead of 1e-3",
        also=(35,),
        transform=rotation_lr_x1000,
    ),
    # api-relative-position (test base)
    Fault(
        "api-relative-position-single-label-batches",
        "api-relative-position",
        10,
        "test",
        "the neighbour position is drawn once per batch (randint(..., (1,))) instead of once per"
        " pair: every batch holds a single label",
        also=(7,),
        transform=relative_position_single_label_batches,
    ),
    Fault(
        "api-relative-position-dropout-09",
        "api-relative-position",
        30,
        "test",
        "dropout p=0.9 after every activation of the pair classifier",
        also=(27,),
        transform=pair_classifier_dropout_09,
    ),
    Fault(
        "api-relative-position-init-std-1",
        "api-relative-position",
        35,
        "dev",
        "the pair classifier's linear layers initialised with normal(std=1): activations explode"
        " layer by layer and the softmax starts saturated",
        also=(28, 17),
        transform=pair_classifier_init_std_1,
    ),
    # api-yolov3 (dev)
    Fault(
        "api-yolov3-log-of-padding",
        "api-yolov3",
        37,
        "dev",
        "the box loss is vectorised over the padded target rows and masked by multiplying with 0:"
        " log(0 / p_w) on the padding gives inf, and inf × 0 = NaN",
        transform=yolov3_log_of_padding,
    ),
    Fault(
        "api-yolov3-box-loss-x1000",
        "api-yolov3",
        20,
        "dev",
        "the box-coordinate term of the YOLOv3 loss is weighted 1000 against objectness and classes",
        also=(18,),
        transform=yolov3_box_loss_x1000,
    ),
    Fault(
        "api-yolov3-batchnorm-frozen",
        "api-yolov3",
        32,
        "dev",
        "a freeze_bn train() override from a pretrained-backbone recipe keeps every BatchNorm in"
        " eval mode while the network trains from scratch",
        also=(35,),
        transform=yolov3_batchnorm_frozen,
    ),
    # api-efficientdet (test base)
    Fault(
        "api-efficientdet-fusion-eps-1e5",
        "api-efficientdet",
        22,
        "test",
        "the BiFPN's fast normalised fusion divides by 1e5 + sum(w) (eps typed 1e5): fused"
        " features shrink ~1e5-fold at every node",
        also=(35, 33),
        transform=bifpn_fusion_eps_1e5,
    ),
    Fault(
        "api-efficientdet-same-batch",
        "api-efficientdet",
        3,
        "test",
        "the batch is drawn once, before the loop (batch = next(iter(loader))): every step trains"
        " on the same 32 canvases",
        also=(9,),
        transform=efficientdet_same_batch,
    ),
    Fault(
        "api-efficientdet-prior-bias-sign",
        "api-efficientdet",
        17,
        "dev",
        "the focal-loss prior bias is set to +log((1-p)/p) instead of -log((1-p)/p): every anchor"
        " starts confident that it holds every class",
        also=(28,),
        transform=efficientdet_prior_bias_sign,
    ),
)

for _fault in (*_SCRIPT_FAULTS, *_SUBJECT_FAULTS):
    register_fault(_fault)
