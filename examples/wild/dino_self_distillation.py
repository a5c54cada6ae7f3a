"""DINO self-distillation with no labels on generated glyphs, then a k-NN probe: healthy.

In the manner of the facebookresearch ``main_dino.py`` (Caron et al. 2021, "Emerging
Properties in Self-Supervised Vision Transformers"), scaled down to 16x16 grey images
generated in code: one of eight glyphs (disc, ring, square outline, plus, cross, triangle,
pairs of horizontal and of vertical bars) of random size and position, with a random
brightness on a background of a random gradient, a distracting blob and pixel noise,
standardised with the training images' mean and std. The pre-training sees no labels.
``DataAugmentationDINO`` is a per-image transform of the ``Dataset``: two global crops
(scale 0.4 to 1, resized to 16x16) and four local crops (scale 0.2 to 0.5, resized to 8x8),
each flipped at random with brightness/contrast jitter and noise; the ``DataLoader``
(batches of 64) collates them into a list of six batched views.

The backbone is a small BatchNorm CNN ending in global average pooling (so that it takes
both resolutions); ``MultiCropWrapper`` runs it once per group of crops of one resolution
and the ``DINOHead`` on all of them: a 3-layer GELU MLP with BatchNorm (``use_bn_in_head``)
to a 64-d bottleneck, l2-normalised, then a weight-normalised last layer of 256 prototypes
whose norm is frozen (``norm_last_layer``). The teacher is built like the student, loads
its state dict and has ``requires_grad = False``; it sees only the two global crops and is
updated by an exponential moving average whose momentum follows a cosine schedule from
0.99 to 1. ``DINOLoss`` centres the teacher's outputs with a running ``center`` buffer
(momentum 0.9, updated after each loss) and sharpens them with a teacher temperature that
warms up linearly from 0.03 to 0.04 over the first 5 epochs; the student's outputs are
divided by 0.1; the loss is the cross-entropy between every teacher view and every student
view except the identical ones, averaged over the pairs. It starts near ln 256 = 5.5 and
ends near 2.4. AdamW on two parameter groups (no weight decay on biases and 1-d
parameters), with the lr (linear warm-up over 2 epochs then cosine, scaled by
batch_size / 256) and the weight decay (cosine from 0.04 to 0.4, first group only) written
into the param groups every iteration from precomputed ``cosine_scheduler`` arrays,
gradient clipping per parameter (``clip_gradients``) and the last layer frozen during the
first epoch (``cancel_gradients_last_layer``); 14 epochs. Top-level functions and
``main()`` with argparse; prints the loss, lr, weight decay and teacher momentum per
epoch, then the weighted k-NN accuracy (k = 20, T = 0.07, as in ``eval_knn.py``) of the
teacher's frozen, normalised backbone features on 1,000 held-out glyphs, against chance
(1/8), the same k-NN on the raw pixels and on the backbone at initialisation (its
BatchNorm statistics estimated on the training images).

Healthy: nndoctor should report no warning and no error.

    python examples/wild/dino_self_distillation.py
    nndoctor check examples/wild/dino_self_distillation.py
"""

import argparse
import copy
import math

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

NUM_CLASSES = 8
SIZE = 16


# -----------------------------------------------------------------------------
# data


def make_glyphs(n, g):
    """(n, 1, SIZE, SIZE) images in roughly [0, 1] and their glyph labels."""
    ys, xs = torch.meshgrid(torch.arange(SIZE) + 0.5, torch.arange(SIZE) + 0.5, indexing="ij")
    labels = torch.randint(0, NUM_CLASSES, (n,), generator=g)
    cy = 4.5 + 7 * torch.rand(n, 1, 1, generator=g)
    cx = 4.5 + 7 * torch.rand(n, 1, 1, generator=g)
    r = 2.5 + 2.0 * torch.rand(n, 1, 1, generator=g)
    dy, dx = ys - cy, xs - cx
    dist = torch.sqrt(dy**2 + dx**2)
    cheb = torch.maximum(dy.abs(), dx.abs())
    glyphs = torch.stack(
        [
            dist <= r,  # disc
            (dist <= r) & (dist >= r - 1.2),  # ring
            (cheb <= r) & (cheb >= r - 1.2),  # square outline
            ((dy.abs() <= 0.8) | (dx.abs() <= 0.8)) & (cheb <= r),  # plus
            (((dy - dx).abs() <= 1.0) | ((dy + dx).abs() <= 1.0)) & (cheb <= r),  # cross
            (dy <= 0.7 * r) & (dy >= 2 * dx.abs() - r),  # triangle
            (((dy - 0.5 * r).abs() <= 0.7) | ((dy + 0.5 * r).abs() <= 0.7)) & (dx.abs() <= r),
            (((dx - 0.5 * r).abs() <= 0.7) | ((dx + 0.5 * r).abs() <= 0.7)) & (dy.abs() <= r),
        ],
        dim=1,
    )
    glyph = glyphs[torch.arange(n), labels].float()

    angle = 2 * math.pi * torch.rand(n, 1, 1, generator=g)
    background = 0.3 * torch.rand(n, 1, 1, generator=g) + 0.03 * (
        torch.cos(angle) * (xs - 8) + torch.sin(angle) * (ys - 8)
    )
    by = 16 * torch.rand(n, 1, 1, generator=g)
    bx = 16 * torch.rand(n, 1, 1, generator=g)
    blob = (
        0.4 * torch.rand(n, 1, 1, generator=g) * torch.exp(-((ys - by) ** 2 + (xs - bx) ** 2) / 8)
    )
    brightness = 0.5 + 0.5 * torch.rand(n, 1, 1, generator=g)
    noise = 0.05 * torch.randn(n, SIZE, SIZE, generator=g)
    images = background + blob + brightness * glyph + noise
    return images.unsqueeze(1), labels


def random_resized_crop(img, size, scale):
    """Crop a random box of ``scale`` of the area (aspect 3/4 to 4/3) and resize it."""
    _, h, w = img.shape
    area = h * w * np.random.uniform(*scale)
    aspect = math.exp(np.random.uniform(math.log(3 / 4), math.log(4 / 3)))
    ch = int(round(min(h, max(2, math.sqrt(area / aspect)))))
    cw = int(round(min(w, max(2, math.sqrt(area * aspect)))))
    top = np.random.randint(0, h - ch + 1)
    left = np.random.randint(0, w - cw + 1)
    crop = img[:, top : top + ch, left : left + cw]
    return F.interpolate(crop[None], size=(size, size), mode="bilinear", align_corners=False)[0]


def color_jitter(img, strength):
    mean = img.mean()
    contrast = 1 + strength * np.random.uniform(-1, 1)
    brightness = strength * np.random.uniform(-0.5, 0.5)
    return (img - mean) * contrast + mean + brightness


class DataAugmentationDINO:
    def __init__(self, global_crops_scale, local_crops_scale, local_crops_number):
        self.global_crops_scale = global_crops_scale
        self.local_crops_scale = local_crops_scale
        self.local_crops_number = local_crops_number

    def view(self, image, size, scale, jitter, noise):
        crop = random_resized_crop(image, size, scale)
        if np.random.rand() < 0.5:
            crop = crop.flip(-1)
        crop = color_jitter(crop, jitter)
        return crop + noise * torch.randn_like(crop)

    def __call__(self, image):
        crops = [
            self.view(image, SIZE, self.global_crops_scale, 0.4, 0.05),
            self.view(image, SIZE, self.global_crops_scale, 0.2, 0.02),
        ]
        for _ in range(self.local_crops_number):
            crops.append(self.view(image, SIZE // 2, self.local_crops_scale, 0.4, 0.05))
        return crops


class GlyphDataset(Dataset):
    def __init__(self, images, labels, transform=None):
        self.images, self.labels, self.transform = images, labels, transform

    def __len__(self):
        return len(self.images)

    def __getitem__(self, index):
        image = self.images[index]
        if self.transform is not None:
            image = self.transform(image)
        return image, self.labels[index]


# -----------------------------------------------------------------------------
# model


class ConvBackbone(nn.Module):
    def __init__(self, width=32):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, width, 3, padding=1, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
            nn.Conv2d(width, 2 * width, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(2 * width),
            nn.ReLU(inplace=True),
            nn.Conv2d(2 * width, 2 * width, 3, padding=1, bias=False),
            nn.BatchNorm2d(2 * width),
            nn.ReLU(inplace=True),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.embed_dim = 2 * width

    def forward(self, x):
        return self.features(x)


class DINOHead(nn.Module):
    def __init__(
        self,
        in_dim,
        out_dim,
        use_bn=False,
        norm_last_layer=True,
        nlayers=3,
        hidden_dim=256,
        bottleneck_dim=64,
    ):
        super().__init__()
        layers = [nn.Linear(in_dim, hidden_dim)]
        if use_bn:
            layers.append(nn.BatchNorm1d(hidden_dim))
        layers.append(nn.GELU())
        for _ in range(nlayers - 2):
            layers.append(nn.Linear(hidden_dim, hidden_dim))
            if use_bn:
                layers.append(nn.BatchNorm1d(hidden_dim))
            layers.append(nn.GELU())
        layers.append(nn.Linear(hidden_dim, bottleneck_dim))
        self.mlp = nn.Sequential(*layers)
        self.apply(self._init_weights)
        self.last_layer = nn.utils.parametrizations.weight_norm(
            nn.Linear(bottleneck_dim, out_dim, bias=False)
        )
        self.last_layer.parametrizations.weight.original0.data.fill_(1)
        if norm_last_layer:
            self.last_layer.parametrizations.weight.original0.requires_grad = False

    def _init_weights(self, m):
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.constant_(m.bias, 0)

    def forward(self, x):
        x = self.mlp(x)
        x = F.normalize(x, dim=-1, p=2)
        x = self.last_layer(x)
        return x


class MultiCropWrapper(nn.Module):
    """Runs the backbone once per group of crops of one resolution, the head on all."""

    def __init__(self, backbone, head):
        super().__init__()
        self.backbone = backbone
        self.head = head

    def forward(self, x):
        if not isinstance(x, list):
            x = [x]
        idx_crops = torch.cumsum(
            torch.unique_consecutive(
                torch.tensor([inp.shape[-1] for inp in x]), return_counts=True
            )[1],
            0,
        )
        start_idx, output = 0, []
        for end_idx in idx_crops:
            output.append(self.backbone(torch.cat(x[start_idx:end_idx])))
            start_idx = end_idx
        return self.head(torch.cat(output))


class DINOLoss(nn.Module):
    def __init__(
        self,
        out_dim,
        ncrops,
        warmup_teacher_temp,
        teacher_temp,
        warmup_teacher_temp_epochs,
        nepochs,
        student_temp=0.1,
        center_momentum=0.9,
    ):
        super().__init__()
        self.student_temp = student_temp
        self.center_momentum = center_momentum
        self.ncrops = ncrops
        self.register_buffer("center", torch.zeros(1, out_dim))
        # a linear warm-up of the teacher temperature: a too high one makes training unstable
        self.teacher_temp_schedule = np.concatenate(
            (
                np.linspace(warmup_teacher_temp, teacher_temp, warmup_teacher_temp_epochs),
                np.ones(nepochs - warmup_teacher_temp_epochs) * teacher_temp,
            )
        )

    def forward(self, student_output, teacher_output, epoch):
        """Cross-entropy between the softmax outputs of the teacher and student networks."""
        student_out = student_output / self.student_temp
        student_out = student_out.chunk(self.ncrops)

        # teacher centering and sharpening
        temp = self.teacher_temp_schedule[epoch]
        teacher_out = F.softmax((teacher_output - self.center) / temp, dim=-1)
        teacher_out = teacher_out.detach().chunk(2)

        total_loss = 0
        n_loss_terms = 0
        for iq, q in enumerate(teacher_out):
            for v in range(len(student_out)):
                if v == iq:
                    # we skip cases where student and teacher operate on the same view
                    continue
                loss = torch.sum(-q * F.log_softmax(student_out[v], dim=-1), dim=-1)
                total_loss += loss.mean()
                n_loss_terms += 1
        total_loss /= n_loss_terms
        self.update_center(teacher_output)
        return total_loss

    @torch.no_grad()
    def update_center(self, teacher_output):
        batch_center = torch.sum(teacher_output, dim=0, keepdim=True)
        batch_center = batch_center / len(teacher_output)
        # ema update
        self.center = self.center * self.center_momentum + batch_center * (1 - self.center_momentum)


# -----------------------------------------------------------------------------
# utils


def cosine_scheduler(
    base_value, final_value, epochs, niter_per_ep, warmup_epochs=0, start_warmup_value=0
):
    warmup_schedule = np.array([])
    warmup_iters = warmup_epochs * niter_per_ep
    if warmup_epochs > 0:
        warmup_schedule = np.linspace(start_warmup_value, base_value, warmup_iters)

    iters = np.arange(epochs * niter_per_ep - warmup_iters)
    schedule = final_value + 0.5 * (base_value - final_value) * (
        1 + np.cos(np.pi * iters / len(iters))
    )

    schedule = np.concatenate((warmup_schedule, schedule))
    assert len(schedule) == epochs * niter_per_ep
    return schedule


def get_params_groups(model):
    regularized = []
    not_regularized = []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        # we do not regularize biases nor Norm parameters
        if name.endswith(".bias") or len(param.shape) == 1:
            not_regularized.append(param)
        else:
            regularized.append(param)
    return [{"params": regularized}, {"params": not_regularized, "weight_decay": 0.0}]


def clip_gradients(model, clip):
    norms = []
    for _, p in model.named_parameters():
        if p.grad is not None:
            param_norm = p.grad.data.norm(2)
            norms.append(param_norm.item())
            clip_coef = clip / (param_norm + 1e-6)
            if clip_coef < 1:
                p.grad.data.mul_(clip_coef)
    return norms


def cancel_gradients_last_layer(epoch, model, freeze_last_layer):
    if epoch >= freeze_last_layer:
        return
    for n, p in model.named_parameters():
        if "last_layer" in n:
            p.grad = None


def collate_crops(batch):
    crops = [torch.stack([sample[0][i] for sample in batch]) for i in range(len(batch[0][0]))]
    return crops, torch.stack([sample[1] for sample in batch])


@torch.no_grad()
def extract_features(backbone, images):
    backbone.eval()
    feats = torch.cat([backbone(images[i : i + 512]) for i in range(0, len(images), 512)])
    return F.normalize(feats, dim=1, p=2)


@torch.no_grad()
def knn_classifier(train_features, train_labels, test_features, test_labels, k=20, T=0.07):
    similarity = torch.mm(test_features, train_features.t())
    distances, indices = similarity.topk(k, largest=True, sorted=True)
    candidates = train_labels[indices]
    retrieval_one_hot = F.one_hot(candidates, NUM_CLASSES).float()
    distances_transform = distances.div_(T).exp_()
    probs = torch.sum(retrieval_one_hot * distances_transform.unsqueeze(-1), dim=1)
    predictions = probs.argmax(dim=1)
    return (predictions == test_labels).float().mean().item()


# -----------------------------------------------------------------------------
# training


def train_one_epoch(
    student,
    teacher,
    dino_loss,
    data_loader,
    optimizer,
    lr_schedule,
    wd_schedule,
    momentum_schedule,
    epoch,
    args,
):
    student.train()
    total = 0.0
    for it, (images, _) in enumerate(data_loader):
        # update weight decay and learning rate according to their schedule
        it = len(data_loader) * epoch + it  # global training iteration
        for i, param_group in enumerate(optimizer.param_groups):
            param_group["lr"] = lr_schedule[it]
            if i == 0:  # only the first group is regularized
                param_group["weight_decay"] = wd_schedule[it]

        # teacher and student forward passes + compute dino loss
        teacher_output = teacher(images[:2])  # only the 2 global views pass through the teacher
        student_output = student(images)
        loss = dino_loss(student_output, teacher_output, epoch)

        if not math.isfinite(loss.item()):
            raise SystemExit(f"Loss is {loss.item()}, stopping training")

        # student update
        optimizer.zero_grad()
        loss.backward()
        if args.clip_grad:
            clip_gradients(student, args.clip_grad)
        cancel_gradients_last_layer(epoch, student, args.freeze_last_layer)
        optimizer.step()

        # EMA update for the teacher
        with torch.no_grad():
            m = momentum_schedule[it]  # momentum parameter
            for param_q, param_k in zip(student.parameters(), teacher.parameters(), strict=True):
                param_k.data.mul_(m).add_((1 - m) * param_q.detach().data)

        total += loss.item()
    return total / len(data_loader)


def main():
    parser = argparse.ArgumentParser("DINO", description="DINO self-distillation, then k-NN")
    parser.add_argument("--out_dim", type=int, default=256)
    parser.add_argument("--use_bn_in_head", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--momentum_teacher", type=float, default=0.99)
    parser.add_argument("--warmup_teacher_temp", type=float, default=0.03)
    parser.add_argument("--teacher_temp", type=float, default=0.04)
    parser.add_argument("--warmup_teacher_temp_epochs", type=int, default=5)
    parser.add_argument("--weight_decay", type=float, default=0.04)
    parser.add_argument("--weight_decay_end", type=float, default=0.4)
    parser.add_argument("--clip_grad", type=float, default=3.0)
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=14)
    parser.add_argument("--freeze_last_layer", type=int, default=1)
    parser.add_argument("--lr", type=float, default=0.012, help="lr at batch size 256")
    parser.add_argument("--warmup_epochs", type=int, default=2)
    parser.add_argument("--min_lr", type=float, default=1e-5)
    parser.add_argument("--global_crops_scale", type=float, nargs="+", default=(0.4, 1.0))
    parser.add_argument("--local_crops_number", type=int, default=4)
    parser.add_argument("--local_crops_scale", type=float, nargs="+", default=(0.2, 0.5))
    parser.add_argument("--n_train", type=int, default=2048)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    g = torch.Generator().manual_seed(args.seed)
    train_images, train_labels = make_glyphs(args.n_train, g)
    test_images, test_labels = make_glyphs(1000, g)
    mean, std = train_images.mean(), train_images.std()
    train_images, test_images = (train_images - mean) / std, (test_images - mean) / std

    # ============ preparing data ... ============
    transform = DataAugmentationDINO(
        args.global_crops_scale, args.local_crops_scale, args.local_crops_number
    )
    dataset = GlyphDataset(train_images, train_labels, transform=transform)
    data_loader = DataLoader(
        dataset,
        batch_size=args.batch_size,
        shuffle=True,
        drop_last=True,
        collate_fn=collate_crops,
    )
    print(f"Data loaded: there are {len(dataset)} images.")

    # ============ building student and teacher networks ... ============
    student, teacher = ConvBackbone(), ConvBackbone()
    embed_dim = student.embed_dim
    random_backbone = copy.deepcopy(student)
    student = MultiCropWrapper(
        student,
        DINOHead(embed_dim, args.out_dim, use_bn=args.use_bn_in_head, norm_last_layer=True),
    )
    teacher = MultiCropWrapper(teacher, DINOHead(embed_dim, args.out_dim, args.use_bn_in_head))
    # teacher and student start with the same weights
    teacher.load_state_dict(student.state_dict())
    # there is no backpropagation through the teacher, so no need for gradients
    for p in teacher.parameters():
        p.requires_grad = False

    # ============ preparing loss ... ============
    dino_loss = DINOLoss(
        args.out_dim,
        args.local_crops_number + 2,  # total number of crops = 2 global crops + local_crops_number
        args.warmup_teacher_temp,
        args.teacher_temp,
        args.warmup_teacher_temp_epochs,
        args.epochs,
    )

    # ============ preparing optimizer ... ============
    params_groups = get_params_groups(student)
    optimizer = torch.optim.AdamW(params_groups)  # to use with ViTs

    # ============ init schedulers ... ============
    lr_schedule = cosine_scheduler(
        args.lr * args.batch_size / 256.0,  # linear scaling rule
        args.min_lr,
        args.epochs,
        len(data_loader),
        warmup_epochs=args.warmup_epochs,
    )
    wd_schedule = cosine_scheduler(
        args.weight_decay, args.weight_decay_end, args.epochs, len(data_loader)
    )
    # momentum parameter is increased to 1. during training with a cosine schedule
    momentum_schedule = cosine_scheduler(args.momentum_teacher, 1, args.epochs, len(data_loader))

    print("Starting DINO training !")
    for epoch in range(args.epochs):
        loss = train_one_epoch(
            student,
            teacher,
            dino_loss,
            data_loader,
            optimizer,
            lr_schedule,
            wd_schedule,
            momentum_schedule,
            epoch,
            args,
        )
        it = len(data_loader) * (epoch + 1) - 1
        print(
            f"Epoch: [{epoch + 1}/{args.epochs}] loss: {loss:.4f} lr: {lr_schedule[it]:.6f} "
            f"wd: {wd_schedule[it]:.4f} momentum: {momentum_schedule[it]:.5f}"
        )

    # ============ weighted k-NN on the frozen teacher backbone ... ============
    # baselines: the raw pixels, and the backbone at initialisation with its BatchNorm
    # statistics estimated on the training images
    random_backbone.train()
    with torch.no_grad():
        for i in range(0, len(train_images), args.batch_size):
            random_backbone(train_images[i : i + args.batch_size])
    accuracies = {
        "pixels": knn_classifier(
            F.normalize(train_images.flatten(1), dim=1),
            train_labels,
            F.normalize(test_images.flatten(1), dim=1),
            test_labels,
        )
    }
    for name, backbone in (("random", random_backbone), ("dino", teacher.backbone)):
        train_features = extract_features(backbone, train_images)
        test_features = extract_features(backbone, test_images)
        accuracies[name] = knn_classifier(train_features, train_labels, test_features, test_labels)
    print(
        f"20-NN test accuracy: DINO teacher {accuracies['dino']:.3f}, random backbone "
        f"{accuracies['random']:.3f}, raw pixels {accuracies['pixels']:.3f}, "
        f"chance {1 / NUM_CLASSES:.3f}"
    )


if __name__ == "__main__":
    main()
