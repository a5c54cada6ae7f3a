"""Multi-label image tagging with the Asymmetric Loss and an EMA of the weights: healthy.

In the manner of the ``ASL`` repository (Ridnik et al., "Asymmetric Loss For Multi-Label
Classification", 2021: its ``train.py``, ``src/loss_functions/losses.py`` and
``ModelEma``), at toy scale: the images are generated 3x24x24 pictures, each holding one
to three objects of eight kinds (disc, ring, square, frame, plus, cross, triangle, bar),
drawn without repetition with very unequal frequencies (the commonest tag is on about half
of the images, the rarest on about 7%), of random size, position and colour on a noisy
background; 6,000 for training and 2,000 for testing. The target of an image is the
multi-hot vector of the kinds it contains.

``TagNet`` is a small CNN (three Conv-BatchNorm-ReLU stages of 16, 32 and 64 channels
with max pooling, global average pooling) with a linear head of one logit per tag.
``AsymmetricLoss`` is written as in ``losses.py``: the sigmoid is taken inside the loss,
the negatives' probabilities are shifted by the probability margin ``clip`` = 0.05, and
the log-likelihoods are weighted by the asymmetric focusing factors (gamma_neg = 4, gamma_pos = 0) computed with gradients
disabled (``disable_torch_grad_focal_loss``); the loss is summed over the batch. AdamW
(lr 2e-3, weight decay 1e-4) with ``OneCycleLR`` stepped after every batch (20% warm-up),
12 epochs of batches of 64. A ``ModelEma`` copy of the model (``deepcopy``, kept in eval
mode, every entry of the state dict, buffers included, averaged with decay 0.99) is
updated after each optimizer step and used for evaluation. Top-level functions and
``main()`` with argparse; prints the training loss and the test mAP (average precision
per tag computed by hand, then averaged) of the model and of the EMA model every 2 epochs,
then the final mAP of the EMA model against the mAP of random scores (the mean tag
frequency).

Healthy: nndoctor should report no warning and no error.

    python examples/wild/asl_multilabel.py
    nndoctor check examples/wild/asl_multilabel.py
"""

import argparse
from copy import deepcopy

import torch
import torch.nn as nn
from torch.utils.data import DataLoader, TensorDataset

SIZE = 24
TAGS = ["disc", "ring", "square", "frame", "plus", "cross", "triangle", "bar"]
TAG_WEIGHTS = torch.tensor([8.0, 6.0, 4.0, 3.0, 2.0, 1.5, 1.0, 0.8])
MAX_OBJECTS = 3


def shape_masks(cy, cx, r):
    """Boolean masks (n, kinds, SIZE, SIZE) of every kind of shape at the given places."""
    ys, xs = torch.meshgrid(torch.arange(SIZE) + 0.5, torch.arange(SIZE) + 0.5, indexing="ij")
    dy, dx = ys - cy, xs - cx
    dist = torch.sqrt(dy**2 + dx**2)
    cheb = torch.maximum(dy.abs(), dx.abs())
    return torch.stack(
        [
            dist <= r,  # disc
            (dist <= r) & (dist >= r - 1.5),  # ring
            cheb <= 0.8 * r,  # square
            (cheb <= 0.8 * r) & (cheb >= 0.8 * r - 1.2),  # frame
            ((dy.abs() <= 1.0) | (dx.abs() <= 1.0)) & (cheb <= r),  # plus
            (((dy - dx).abs() <= 1.2) | ((dy + dx).abs() <= 1.2)) & (cheb <= r),  # cross
            (dy <= 0.7 * r) & (dy >= 2 * dx.abs() - r),  # triangle
            (dy.abs() <= 1.0) & (dx.abs() <= r),  # bar
        ],
        dim=1,
    )


def make_images(n, g):
    n_objects = torch.randint(1, MAX_OBJECTS + 1, (n,), generator=g)
    kinds = torch.multinomial(TAG_WEIGHTS.expand(n, -1), MAX_OBJECTS, generator=g)
    background = 0.25 * torch.rand(n, 3, 1, 1, generator=g)
    images = background + 0.12 * torch.randn(n, 3, SIZE, SIZE, generator=g)
    targets = torch.zeros(n, len(TAGS))
    rows = torch.arange(n)
    for slot in range(MAX_OBJECTS):
        present = n_objects > slot
        cy = 4.5 + 15 * torch.rand(n, 1, 1, generator=g)
        cx = 4.5 + 15 * torch.rand(n, 1, 1, generator=g)
        r = 3.0 + 1.5 * torch.rand(n, 1, 1, generator=g)
        mask = shape_masks(cy, cx, r)[rows, kinds[:, slot]]
        mask = (mask & present[:, None, None])[:, None].float()
        colour = 0.35 + 0.65 * torch.rand(n, 3, 1, 1, generator=g)
        images = mask * colour + (1 - mask) * images
        targets[rows[present], kinds[present, slot]] = 1.0
    return images, targets


class TagNet(nn.Module):
    def __init__(self, num_classes=len(TAGS)):
        super().__init__()

        def stage(c_in, c_out):
            return nn.Sequential(
                nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
                nn.BatchNorm2d(c_out),
                nn.ReLU(inplace=True),
            )

        self.body = nn.Sequential(
            stage(3, 16),
            nn.MaxPool2d(2),
            stage(16, 32),
            nn.MaxPool2d(2),
            stage(32, 64),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.head = nn.Linear(64, num_classes)

    def forward(self, x):
        return self.head(self.body(x))


class AsymmetricLoss(nn.Module):
    def __init__(
        self, gamma_neg=4, gamma_pos=1, clip=0.05, eps=1e-8, disable_torch_grad_focal_loss=True
    ):
        super().__init__()
        self.gamma_neg = gamma_neg
        self.gamma_pos = gamma_pos
        self.clip = clip
        self.disable_torch_grad_focal_loss = disable_torch_grad_focal_loss
        self.eps = eps

    def forward(self, x, y):
        """x: input logits, y: multi-label binarized vector (targets)."""
        # Calculating Probabilities
        x_sigmoid = torch.sigmoid(x)
        xs_pos = x_sigmoid
        xs_neg = 1 - x_sigmoid

        # Asymmetric Clipping
        if self.clip is not None and self.clip > 0:
            xs_neg = (xs_neg + self.clip).clamp(max=1)

        # Basic CE calculation
        los_pos = y * torch.log(xs_pos.clamp(min=self.eps))
        los_neg = (1 - y) * torch.log(xs_neg.clamp(min=self.eps))
        loss = los_pos + los_neg

        # Asymmetric Focusing
        if self.gamma_neg > 0 or self.gamma_pos > 0:
            if self.disable_torch_grad_focal_loss:
                torch.set_grad_enabled(False)
            pt0 = xs_pos * y
            pt1 = xs_neg * (1 - y)  # pt = p if t > 0 else 1-p
            pt = pt0 + pt1
            one_sided_gamma = self.gamma_pos * y + self.gamma_neg * (1 - y)
            one_sided_w = torch.pow(1 - pt, one_sided_gamma)
            if self.disable_torch_grad_focal_loss:
                torch.set_grad_enabled(True)
            loss *= one_sided_w

        return -loss.sum()


class ModelEma(nn.Module):
    """An exponential moving average of a model's weights and buffers (timm's ModelEma)."""

    def __init__(self, model, decay=0.9997):
        super().__init__()
        self.module = deepcopy(model)
        self.module.eval()
        self.decay = decay

    def _update(self, model, update_fn):
        with torch.no_grad():
            for ema_v, model_v in zip(
                self.module.state_dict().values(), model.state_dict().values(), strict=True
            ):
                ema_v.copy_(update_fn(ema_v, model_v))

    def update(self, model):
        self._update(model, update_fn=lambda e, m: self.decay * e + (1.0 - self.decay) * m)

    def set(self, model):
        self._update(model, update_fn=lambda e, m: m)


def average_precision(scores, targets):
    """AP of one tag: the mean of the precision at the rank of every positive."""
    order = torch.argsort(scores, descending=True)
    hits = targets[order]
    precision_at_k = hits.cumsum(0) / torch.arange(1, len(hits) + 1)
    return (precision_at_k * hits).sum() / hits.sum().clamp(min=1)


def mean_average_precision(scores, targets):
    aps = [average_precision(scores[:, k], targets[:, k]) for k in range(targets.shape[1])]
    return 100 * torch.stack(aps).mean().item()


@torch.no_grad()
def validate(model, loader):
    model.eval()
    scores, targets = [], []
    for images, target in loader:
        scores.append(torch.sigmoid(model(images)))
        targets.append(target)
    return mean_average_precision(torch.cat(scores), torch.cat(targets))


def train_epoch(model, ema, loader, criterion, optimizer, scheduler):
    model.train()
    total, n = 0.0, 0
    for images, target in loader:
        output = model(images)
        loss = criterion(output, target)
        model.zero_grad()
        loss.backward()
        optimizer.step()
        scheduler.step()
        ema.update(model)
        total += loss.item()
        n += images.shape[0]
    return total / n


def main():
    parser = argparse.ArgumentParser(description="ASL multi-label tagging with a model EMA")
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--weight-decay", type=float, default=1e-4)
    parser.add_argument("--ema-decay", type=float, default=0.99)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    g = torch.Generator().manual_seed(args.seed)
    x_train, y_train = make_images(6000, g)
    x_test, y_test = make_images(2000, g)
    mean = x_train.mean(dim=(0, 2, 3), keepdim=True)
    std = x_train.std(dim=(0, 2, 3), keepdim=True)
    x_train, x_test = (x_train - mean) / std, (x_test - mean) / std
    freq = y_train.mean(dim=0)
    print(
        "tag frequencies: "
        + ", ".join(f"{t} {f:.2f}" for t, f in zip(TAGS, freq.tolist(), strict=True))
    )

    train_loader = DataLoader(
        TensorDataset(x_train, y_train), batch_size=args.batch_size, shuffle=True
    )
    test_loader = DataLoader(TensorDataset(x_test, y_test), batch_size=500)

    model = TagNet()
    ema = ModelEma(model, args.ema_decay)
    criterion = AsymmetricLoss(gamma_neg=4, gamma_pos=0, clip=0.05)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer,
        max_lr=args.lr,
        steps_per_epoch=len(train_loader),
        epochs=args.epochs,
        pct_start=0.2,
    )

    for epoch in range(1, args.epochs + 1):
        loss = train_epoch(model, ema, train_loader, criterion, optimizer, scheduler)
        if epoch % 2 == 0:
            map_model = validate(model, test_loader)
            map_ema = validate(ema.module, test_loader)
            print(
                f"epoch {epoch:2d}  loss {loss:.4f}  test mAP {map_model:.2f}  "
                f"EMA test mAP {map_ema:.2f}"
            )

    map_ema = validate(ema.module, test_loader)
    map_random = 100 * y_test.mean(dim=0).mean().item()
    print(f"final: EMA model test mAP {map_ema:.2f}  (random scores: {map_random:.2f})")


if __name__ == "__main__":
    main()
