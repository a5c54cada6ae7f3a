"""Mean Teacher semi-supervised learning on generated glyph images with 5% labels: healthy.

In the manner of the authors' PyTorch ``main.py`` for Mean Teacher (Tarvainen & Valpola,
"Mean teachers are better role models", 2017): the data are generated 16x16 grey images of
six shapes (disc, ring, square, frame, plus, cross) of random size, position and contrast
with pixel noise, 3,000 for training and 2,000 for testing, standardised with the training
statistics. Only 5% of the training images keep their label (25 per class); the others are
marked ``NO_LABEL = -1``. A ``TwoStreamBatchSampler`` builds every batch of 128 from 64
unlabelled and 64 labelled indices (an epoch is one pass over the unlabelled ones), and
every batch is augmented twice, as ``TransformTwice`` does (a random translation of up to
two pixels with reflected borders, then Gaussian noise): one view for the student, the
other for the teacher.

``MLP`` is an ``nn.Module`` on the flattened pixels (the permutation-invariant setting) of
two Linear-BatchNorm-LeakyReLU(0.1) blocks of width 256 and a linear classifier. The teacher
is a second instance built by ``create_model(ema=True)`` whose parameters are detached and
set to ``requires_grad_(False)``; it runs in train mode like the student, and after every
optimizer step ``update_ema_variables(model, ema_model, alpha, global_step)`` moves its
parameters towards the student's with ``alpha = min(1 - 1 / (global_step + 1), 0.99)``.
The loss is ``nn.CrossEntropyLoss(reduction="sum", ignore_index=NO_LABEL)`` divided by the
batch size, plus the consistency cost (the squared error between the student's and the
teacher's softmax, summed, divided by the number of classes and the batch size) whose
weight 10 follows the sigmoid ramp-up ``exp(-5 (1 - t)^2)`` over the first 10 epochs. SGD
with Nesterov momentum 0.9 and weight decay 1e-4, the learning rate set at every iteration
by ``adjust_learning_rate`` (a linear warm-up over 2 epochs, then a cosine ramp-down), 40
epochs. Top-level functions and ``main()`` with argparse; prints the class loss, the
consistency loss and the test accuracy of student and teacher every 5 epochs, then the final
test accuracy of the student and of the teacher against the same MLP trained for as many
steps on the 150 labelled images alone (chance: 0.167).

Healthy: nndoctor should report no warning and no error.

    python examples/wild/mean_teacher_semi.py
    nndoctor check examples/wild/mean_teacher_semi.py
"""

import argparse
import itertools

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, Sampler, TensorDataset

NO_LABEL = -1
N_CLASSES, SIZE = 6, 16


def make_glyphs(n, g):
    """16x16 grey images of six shapes of random size, position and contrast, with noise."""
    ys, xs = torch.meshgrid(torch.arange(SIZE) + 0.5, torch.arange(SIZE) + 0.5, indexing="ij")
    labels = torch.randint(0, N_CLASSES, (n,), generator=g)
    cy = 5.5 + 5 * torch.rand(n, 1, 1, generator=g)
    cx = 5.5 + 5 * torch.rand(n, 1, 1, generator=g)
    r = 3.0 + 2.5 * torch.rand(n, 1, 1, generator=g)
    dy, dx = ys - cy, xs - cx
    dist = torch.sqrt(dy**2 + dx**2)
    cheb = torch.maximum(dy.abs(), dx.abs())
    masks = torch.stack(
        [
            dist <= r,  # disc
            (dist <= r) & (dist >= r - 1.5),  # ring
            cheb <= 0.8 * r,  # square
            (cheb <= 0.8 * r) & (cheb >= 0.8 * r - 1.2),  # frame
            ((dy.abs() <= 0.9) | (dx.abs() <= 0.9)) & (cheb <= r),  # plus
            (((dy - dx).abs() <= 1.2) | ((dy + dx).abs() <= 1.2)) & (cheb <= r),  # cross
        ],
        dim=1,
    )
    shape = masks[torch.arange(n), labels].float()
    contrast = 0.7 + 0.3 * torch.rand(n, 1, 1, generator=g)
    images = contrast * shape + 0.15 * torch.randn(n, SIZE, SIZE, generator=g)
    return images[:, None], labels


class TwoStreamBatchSampler(Sampler):
    """Iterate two sets of indices: each batch has primary (unlabelled) and secondary
    (labelled) indices; an epoch is one pass over the primary ones."""

    def __init__(self, primary_indices, secondary_indices, batch_size, secondary_batch_size):
        self.primary_indices = primary_indices
        self.secondary_indices = secondary_indices
        self.secondary_batch_size = secondary_batch_size
        self.primary_batch_size = batch_size - secondary_batch_size

    def __iter__(self):
        primary_iter = np.random.permutation(self.primary_indices)
        secondary_iter = iterate_eternally(self.secondary_indices)
        return (
            list(primary_batch) + list(secondary_batch)
            for (primary_batch, secondary_batch) in zip(
                grouper(primary_iter, self.primary_batch_size),
                grouper(secondary_iter, self.secondary_batch_size),
                strict=False,
            )
        )

    def __len__(self):
        return len(self.primary_indices) // self.primary_batch_size


def iterate_eternally(indices):
    def infinite_shuffles():
        while True:
            yield np.random.permutation(indices)

    return itertools.chain.from_iterable(infinite_shuffles())


def grouper(iterable, n):
    """Collect data into fixed-length chunks: grouper('ABCDEFG', 3) --> ABC DEF"""
    args = [iter(iterable)] * n
    return zip(*args, strict=False)


class MLP(nn.Module):
    def __init__(self, in_features=SIZE * SIZE, hidden=256, n_classes=N_CLASSES):
        super().__init__()

        def block(n_in, n_out):
            return nn.Sequential(nn.Linear(n_in, n_out), nn.BatchNorm1d(n_out), nn.LeakyReLU(0.1))

        self.features = nn.Sequential(block(in_features, hidden), block(hidden, hidden))
        self.classifier = nn.Linear(hidden, n_classes)

    def forward(self, x):
        return self.classifier(self.features(x.flatten(1)))


def create_model(ema=False):
    model = MLP()
    if ema:
        for param in model.parameters():
            param.detach_()
            param.requires_grad_(False)
    return model


def update_ema_variables(model, ema_model, alpha, global_step):
    # Use the true average until the exponential average is more correct
    alpha = min(1 - 1 / (global_step + 1), alpha)
    for ema_param, param in zip(ema_model.parameters(), model.parameters(), strict=True):
        ema_param.data.mul_(alpha).add_(param.data, alpha=1 - alpha)


def sigmoid_rampup(current, rampup_length):
    """Exponential rampup from https://arxiv.org/abs/1610.02242"""
    if rampup_length == 0:
        return 1.0
    current = np.clip(current, 0.0, rampup_length)
    phase = 1.0 - current / rampup_length
    return float(np.exp(-5.0 * phase * phase))


def cosine_rampdown(current, rampdown_length):
    """Cosine rampdown from https://arxiv.org/abs/1608.03983"""
    return float(0.5 * (np.cos(np.pi * current / rampdown_length) + 1))


def adjust_learning_rate(optimizer, epoch, step_in_epoch, total_steps_in_epoch, args):
    epoch = epoch + step_in_epoch / total_steps_in_epoch
    # Linear warm-up, then cosine ramp-down over the whole run
    lr = args.lr * min(1.0, epoch / args.lr_rampup) if args.lr_rampup else args.lr
    lr *= cosine_rampdown(epoch, args.epochs)
    for param_group in optimizer.param_groups:
        param_group["lr"] = lr


def get_current_consistency_weight(epoch, args):
    return args.consistency * sigmoid_rampup(epoch, args.consistency_rampup)


def softmax_mse_loss(input_logits, target_logits):
    """Takes softmax on both sides and returns the summed squared error, per class."""
    assert input_logits.size() == target_logits.size()
    input_softmax = F.softmax(input_logits, dim=1)
    target_softmax = F.softmax(target_logits, dim=1)
    num_classes = input_logits.size()[1]
    return F.mse_loss(input_softmax, target_softmax, reduction="sum") / num_classes


def augment(x, max_shift, noise_std):
    """A random translation of up to max_shift pixels (reflected border) and Gaussian noise."""
    n = x.shape[0]
    shift = torch.randint(-max_shift, max_shift + 1, (n, 2)).float() * 2 / x.shape[-1]
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0] = theta[:, 1, 1] = 1.0
    theta[:, :, 2] = shift
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, padding_mode="reflection", align_corners=False)
    return x + noise_std * torch.randn_like(x)


def train(train_loader, model, ema_model, optimizer, epoch, global_step, args):
    class_criterion = nn.CrossEntropyLoss(reduction="sum", ignore_index=NO_LABEL)
    model.train()
    ema_model.train()
    class_total = cons_total = 0.0
    for i, (x, target) in enumerate(train_loader):
        adjust_learning_rate(optimizer, epoch, i, len(train_loader), args)
        input = augment(x, args.max_shift, args.input_noise)
        ema_input = augment(x, args.max_shift, args.input_noise)
        minibatch_size = len(target)

        ema_logit = ema_model(ema_input)
        class_logit = model(input)
        ema_logit = ema_logit.detach()

        class_loss = class_criterion(class_logit, target) / minibatch_size
        consistency_weight = get_current_consistency_weight(epoch + i / len(train_loader), args)
        consistency_loss = (
            consistency_weight * softmax_mse_loss(class_logit, ema_logit) / minibatch_size
        )
        loss = class_loss + consistency_loss

        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        global_step += 1
        update_ema_variables(model, ema_model, args.ema_decay, global_step)

        class_total += class_loss.item()
        cons_total += consistency_loss.item()
    n = len(train_loader)
    return global_step, class_total / n, cons_total / n


def train_supervised(x, y, steps_per_epoch, args):
    """The same MLP, augmentation and optimizer, trained on the labelled images alone."""
    model = create_model()
    optimizer = torch.optim.SGD(
        model.parameters(), lr=args.lr, momentum=0.9, weight_decay=1e-4, nesterov=True
    )
    criterion = nn.CrossEntropyLoss()
    batches = grouper(iterate_eternally(np.arange(len(y))), args.labeled_batch_size)
    model.train()
    for epoch in range(args.epochs):
        for i in range(steps_per_epoch):
            adjust_learning_rate(optimizer, epoch, i, steps_per_epoch, args)
            idx = list(next(batches))
            loss = criterion(model(augment(x[idx], args.max_shift, args.input_noise)), y[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return model


@torch.no_grad()
def validate(model, x, y):
    model.eval()
    return (model(x).argmax(dim=1) == y).float().mean().item()


def main():
    parser = argparse.ArgumentParser(description="Mean Teacher on generated glyphs")
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--labeled-batch-size", type=int, default=64)
    parser.add_argument("--labeled-fraction", type=float, default=0.05)
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--lr-rampup", type=float, default=2)
    parser.add_argument("--ema-decay", type=float, default=0.99)
    parser.add_argument("--consistency", type=float, default=10.0)
    parser.add_argument("--consistency-rampup", type=float, default=10)
    parser.add_argument("--max-shift", type=int, default=2)
    parser.add_argument("--input-noise", type=float, default=0.15)
    parser.add_argument("--n-train", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    rng = np.random.default_rng(args.seed)
    g = torch.Generator().manual_seed(args.seed)

    x_train, y_train = make_glyphs(args.n_train, g)
    x_test, y_test = make_glyphs(2000, g)
    mean, std = x_train.mean(), x_train.std()
    x_train, x_test = (x_train - mean) / std, (x_test - mean) / std
    labels = y_train.numpy()

    # Keep the same number of labels in each class, mark the rest NO_LABEL
    per_class = int(args.labeled_fraction * len(y_train)) // N_CLASSES
    labeled_idxs = np.concatenate(
        [rng.permutation(np.flatnonzero(labels == c))[:per_class] for c in range(N_CLASSES)]
    )
    unlabeled_idxs = np.setdiff1d(np.arange(len(y_train)), labeled_idxs)
    targets = y_train.clone()
    targets[unlabeled_idxs] = NO_LABEL

    batch_sampler = TwoStreamBatchSampler(
        unlabeled_idxs, labeled_idxs, args.batch_size, args.labeled_batch_size
    )
    train_loader = DataLoader(TensorDataset(x_train, targets), batch_sampler=batch_sampler)

    model = create_model()
    ema_model = create_model(ema=True)
    optimizer = torch.optim.SGD(
        model.parameters(), lr=args.lr, momentum=0.9, weight_decay=1e-4, nesterov=True
    )

    global_step = 0
    for epoch in range(args.epochs):
        global_step, class_loss, cons_loss = train(
            train_loader, model, ema_model, optimizer, epoch, global_step, args
        )
        if (epoch + 1) % 5 == 0:
            acc = validate(model, x_test, y_test)
            ema_acc = validate(ema_model, x_test, y_test)
            print(
                f"epoch {epoch + 1:3d}  class loss {class_loss:.4f}  consistency loss "
                f"{cons_loss:.4f}  student acc {acc:.3f}  teacher acc {ema_acc:.3f}"
            )

    supervised = train_supervised(
        x_train[labeled_idxs], y_train[labeled_idxs], len(train_loader), args
    )
    print(f"final: student test acc {validate(model, x_test, y_test):.3f}")
    print(f"final: teacher test acc {validate(ema_model, x_test, y_test):.3f}")
    print(f"final: supervised-only test acc {validate(supervised, x_test, y_test):.3f}")


if __name__ == "__main__":
    main()
