"""A small C3D network classifying the motion in generated video clips: healthy.

In the manner of C3D (Tran et al. 2015) trained as the PyTorch video-classification
reference (``references/video_classification``) trains its models: the "videos" are
generated RGB clips of 12 frames of 16x16 pixels, stored as a decoder returns them
(``uint8``, T x H x W x C), of a coloured Gaussian blob on a noisy background with a
static distractor blob of another colour. The class is the motion of the moving blob:
right, left, down, up, growing or shrinking (six classes), at a random speed from a
random place, so no single frame tells the class. 1,600 clips, a random 1,200 for
training and 400 for validation. The transforms do what the reference's presets do: a
random temporal crop of 8 consecutive frames for training (the centre 8 for validation),
conversion to float in [0, 1], normalisation with per-channel mean and std measured on
the training clips, and the permutation to C x T x H x W for ``nn.Conv3d``.

``C3D`` is an ``nn.Module`` of four 3x3x3 ``Conv3d`` + ``BatchNorm3d`` + ReLU blocks with
``MaxPool3d`` (the first pooling spatial only, (1, 2, 2), as in C3D, so that the early
layers keep the time axis), global average pooling, dropout 0.5 and a linear head,
initialised as torchvision's video models are (Kaiming normal convolutions, BatchNorm at
1 and 0, the head from N(0, 0.01)). ``nn.CrossEntropyLoss``, SGD with momentum 0.9,
Nesterov and weight decay 1e-4, ``MultiStepLR`` (x0.1 at epochs 6 and 9) stepped after
every iteration as the reference does, its milestones converted from epochs to iterations; a
shuffled ``DataLoader`` over a ``Dataset`` of clips. Top-level functions and
``main()`` with argparse; prints per epoch the learning rate, the training loss and
accuracy and the validation loss and clip accuracy (under ``model.eval()`` and
``torch.no_grad()``), then the final validation clip accuracy against chance (1/6).

Healthy: nndoctor should report no warning and no error.

    python examples/wild/c3d_action_clips.py
    nndoctor check examples/wild/c3d_action_clips.py
"""

import argparse

import torch
import torch.nn as nn
from torch.utils.data import DataLoader, Dataset

CLASSES = ["right", "left", "down", "up", "grow", "shrink"]
N_FRAMES, SIZE, CLIP_LEN = 12, 16, 8


def make_videos(n, g):
    """n clips as uint8 tensors (T, H, W, C) and their motion labels."""
    labels = torch.randint(0, len(CLASSES), (n,), generator=g)
    t = torch.arange(N_FRAMES, dtype=torch.float32)[None, :]
    speed = 0.2 + 0.3 * torch.rand(n, 1, generator=g)
    travel = speed * (N_FRAMES - 1)
    # Positions along and across the motion, chosen so that the blob stays in the frame.
    start = 3 + (SIZE - 6 - travel) * torch.rand(n, 1, generator=g)
    along = start + speed * t
    across = (3 + (SIZE - 6) * torch.rand(n, 1, generator=g)).expand(-1, N_FRAMES)
    still = (3 + (SIZE - 6) * torch.rand(n, 1, generator=g)).expand(-1, N_FRAMES)
    sigma = (1.6 + 0.6 * torch.rand(n, 1, generator=g)).expand(-1, N_FRAMES)
    growth = 1.03 + 0.04 * torch.rand(n, 1, generator=g)
    size_path = 0.9 * growth ** (t - (N_FRAMES - 1) / 2)

    cx, cy = along.clone(), across.clone()
    backward = (labels == 1) | (labels == 3)
    cx[backward] = SIZE - along[backward]
    vertical = (labels == 2) | (labels == 3)
    cx[vertical], cy[vertical] = across[vertical], cx[vertical]
    scaling = labels >= 4
    cx[scaling], cy[scaling] = across[scaling], still[scaling]
    sigma = torch.where(scaling[:, None], sigma * size_path, sigma)
    shrink = labels == 5
    sigma[shrink] = sigma[shrink].flip(1)

    grid = torch.arange(SIZE, dtype=torch.float32) + 0.5
    dy = grid[None, None, :, None] - cy[:, :, None, None]
    dx = grid[None, None, None, :] - cx[:, :, None, None]
    blob = torch.exp(-(dx**2 + dy**2) / (2 * sigma[:, :, None, None] ** 2))

    # A static distractor of another colour somewhere in the frame.
    sy = 2 + (SIZE - 4) * torch.rand(n, 1, 1, 1, generator=g)
    sx = 2 + (SIZE - 4) * torch.rand(n, 1, 1, 1, generator=g)
    distractor = torch.exp(-((grid[:, None] - sy) ** 2 + (grid[None, :] - sx) ** 2) / 3.0)
    colour = 0.4 + 0.6 * torch.rand(n, 1, 1, 1, 3, generator=g)
    other = 0.4 + 0.6 * torch.rand(n, 1, 1, 1, 3, generator=g)
    background = 0.2 * torch.rand(n, 1, 1, 1, 3, generator=g)
    frames = background + blob[..., None] * colour + 0.6 * distractor[..., None] * other
    frames = frames + 0.2 * torch.randn(n, N_FRAMES, SIZE, SIZE, 3, generator=g)
    videos = (frames.clamp(0, 1) * 255).round().to(torch.uint8)
    return videos, labels


class VideoClips(Dataset):
    """Clips of ``CLIP_LEN`` frames cut from each video, normalised and in C x T x H x W."""

    def __init__(self, videos, labels, mean, std, train):
        self.videos, self.labels = videos, labels
        self.mean, self.std = mean, std
        self.train = train

    def __len__(self):
        return len(self.videos)

    def __getitem__(self, index):
        video = self.videos[index]
        if self.train:  # random temporal jitter
            start = torch.randint(0, N_FRAMES - CLIP_LEN + 1, ()).item()
        else:
            start = (N_FRAMES - CLIP_LEN) // 2
        clip = video[start : start + CLIP_LEN].float() / 255.0
        clip = (clip - self.mean) / self.std
        clip = clip.permute(3, 0, 1, 2)  # (T, H, W, C) -> (C, T, H, W)
        return clip, self.labels[index]


def conv_block(c_in, c_out):
    return nn.Sequential(
        nn.Conv3d(c_in, c_out, kernel_size=3, padding=1, bias=False),
        nn.BatchNorm3d(c_out),
        nn.ReLU(inplace=True),
    )


class C3D(nn.Module):
    def __init__(self, num_classes=len(CLASSES), in_channels=3, dropout=0.5):
        super().__init__()
        self.features = nn.Sequential(
            conv_block(in_channels, 16),
            nn.MaxPool3d(kernel_size=(1, 2, 2), stride=(1, 2, 2)),
            conv_block(16, 32),
            nn.MaxPool3d(kernel_size=2, stride=2),
            conv_block(32, 64),
            conv_block(64, 64),
            nn.MaxPool3d(kernel_size=2, stride=2),
        )
        self.avgpool = nn.AdaptiveAvgPool3d(1)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(64, num_classes)

        for m in self.modules():
            if isinstance(m, nn.Conv3d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm3d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.constant_(m.bias, 0)

    def forward(self, x):
        x = self.features(x)
        x = self.avgpool(x).flatten(1)
        return self.fc(self.dropout(x))


def train_one_epoch(model, criterion, optimizer, lr_scheduler, loader):
    model.train()
    total_loss, correct, n = 0.0, 0, 0
    for video, target in loader:
        output = model(video)
        loss = criterion(output, target)

        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        lr_scheduler.step()

        total_loss += loss.item() * video.shape[0]
        correct += (output.argmax(dim=1) == target).sum().item()
        n += video.shape[0]
    return total_loss / n, correct / n


def evaluate(model, criterion, loader):
    model.eval()
    total_loss, correct, n = 0.0, 0, 0
    with torch.no_grad():
        for video, target in loader:
            output = model(video)
            total_loss += criterion(output, target).item() * video.shape[0]
            correct += (output.argmax(dim=1) == target).sum().item()
            n += video.shape[0]
    return total_loss / n, correct / n


def main():
    parser = argparse.ArgumentParser(description="C3D video classification on generated clips")
    parser.add_argument("--n-videos", type=int, default=1600)
    parser.add_argument("--val-fraction", type=float, default=0.25)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--momentum", type=float, default=0.9)
    parser.add_argument("--weight-decay", type=float, default=1e-4)
    parser.add_argument("--lr-milestones", type=int, nargs="+", default=[6, 9])
    parser.add_argument("--lr-gamma", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    g = torch.Generator().manual_seed(args.seed)
    videos, labels = make_videos(args.n_videos, g)
    perm = torch.randperm(args.n_videos, generator=g)
    n_val = int(args.val_fraction * args.n_videos)
    val_idx, train_idx = perm[:n_val], perm[n_val:]

    train_videos = videos[train_idx].float() / 255.0
    mean = train_videos.mean(dim=(0, 1, 2, 3))
    std = train_videos.std(dim=(0, 1, 2, 3))
    dataset = VideoClips(videos[train_idx], labels[train_idx], mean, std, train=True)
    dataset_test = VideoClips(videos[val_idx], labels[val_idx], mean, std, train=False)
    data_loader = DataLoader(dataset, batch_size=args.batch_size, shuffle=True)
    data_loader_test = DataLoader(dataset_test, batch_size=args.batch_size)

    model = C3D()
    criterion = nn.CrossEntropyLoss()
    optimizer = torch.optim.SGD(
        model.parameters(),
        lr=args.lr,
        momentum=args.momentum,
        weight_decay=args.weight_decay,
        nesterov=True,
    )
    # The scheduler is stepped after every iteration: convert the milestones from epochs.
    iters_per_epoch = len(data_loader)
    lr_milestones = [iters_per_epoch * m for m in args.lr_milestones]
    lr_scheduler = torch.optim.lr_scheduler.MultiStepLR(
        optimizer, milestones=lr_milestones, gamma=args.lr_gamma
    )

    for epoch in range(args.epochs):
        lr = optimizer.param_groups[0]["lr"]
        train_loss, train_acc = train_one_epoch(
            model, criterion, optimizer, lr_scheduler, data_loader
        )
        val_loss, val_acc = evaluate(model, criterion, data_loader_test)
        print(
            f"epoch {epoch:2d}  lr {lr:.4f}  train loss {train_loss:.3f}  acc {train_acc:.3f}  "
            f"val loss {val_loss:.3f}  clip acc {val_acc:.3f}"
        )

    _, val_acc = evaluate(model, criterion, data_loader_test)
    chance = 1 / len(CLASSES)
    print(f"final: validation clip accuracy {val_acc:.3f} (chance {chance:.3f})")


if __name__ == "__main__":
    main()
