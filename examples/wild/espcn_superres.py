"""ESPCN-style single-image super-resolution (x3) on generated images: healthy.

In the manner of the sub-pixel convolution super-resolution examples: grey 56x56
"photographs" (a smooth gradient background, soft-edged discs and boxes, a faint
sinusoidal texture) are generated once and stored as 8-bit images, the way image
files arrive. A ``SuperResolutionDataset`` draws a random 48x48 crop of an image as
the high-resolution target (converted to [0, 1] like ``ToTensor``) and makes its
16x16 low-resolution input by bicubic, antialiased downsampling of that same crop.
``ESPCN`` works entirely at low resolution (5x5 and 3x3 ``Conv2d`` layers with ReLU)
and ends in a convolution to 3*3 channels rearranged by ``nn.PixelShuffle(3)``;
``nn.MSELoss``; Adam with a ``MultiStepLR``; ``DataLoader``s; functions ``train`` and
``test`` called from ``main()`` with argparse. Prints the training loss and, each
epoch, the validation PSNR of the network against plain bicubic upsampling.

Healthy: nndoctor should report no warning and no error.

    python examples/wild/espcn_superres.py
    nndoctor check examples/wild/espcn_superres.py
"""

import argparse
import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

CANVAS, CROP, SCALE = 56, 48, 3


def make_images(n: int, g: torch.Generator) -> torch.Tensor:
    """n grey images, 8-bit, smooth shapes and gradients."""
    ys, xs = torch.meshgrid(
        torch.arange(CANVAS).float(), torch.arange(CANVAS).float(), indexing="ij"
    )
    angle = 2 * math.pi * torch.rand(n, 1, 1, generator=g)
    ramp = (torch.cos(angle) * xs + torch.sin(angle) * ys) / CANVAS
    img = 0.3 + 0.4 * torch.rand(n, 1, 1, generator=g) * ramp
    for _ in range(4):
        cy, cx = (CANVAS * torch.rand(2, n, 1, 1, generator=g)).unbind(0)
        size = 4 + 10 * torch.rand(n, 1, 1, generator=g)
        sharp = 1.0 + 4.0 * torch.rand(n, 1, 1, generator=g)
        level = torch.rand(n, 1, 1, generator=g) - 0.5
        disc = torch.sqrt((ys - cy) ** 2 + (xs - cx) ** 2) - size
        box = torch.maximum((ys - cy).abs(), (xs - cx).abs()) - size
        dist = torch.where(torch.rand(n, 1, 1, generator=g) < 0.5, disc, box)
        img = img + level * torch.sigmoid(-sharp * dist)
    freq = 0.2 + 0.5 * torch.rand(n, 1, 1, generator=g)
    img = img + 0.05 * torch.sin(freq * (xs + ys) + 6.3 * torch.rand(n, 1, 1, generator=g))
    return (img.clamp(0, 1) * 255).round().to(torch.uint8).unsqueeze(1)


def downsample(hr: torch.Tensor, scale: int) -> torch.Tensor:
    lr = F.interpolate(hr.unsqueeze(0), scale_factor=1 / scale, mode="bicubic", antialias=True)
    return lr.squeeze(0).clamp(0, 1)


class SuperResolutionDataset(Dataset):
    def __init__(self, images: torch.Tensor, crop: int, scale: int, random_crop: bool) -> None:
        self.images, self.crop, self.scale = images, crop, scale
        self.random_crop = random_crop

    def __len__(self) -> int:
        return len(self.images)

    def crop_origin(self) -> tuple[int, int]:
        margin = self.images.size(-1) - self.crop
        if self.random_crop:
            top, left = torch.randint(0, margin + 1, (2,)).tolist()
            return top, left
        return margin // 2, margin // 2

    def __getitem__(self, index: int):
        top, left = self.crop_origin()
        patch = self.images[index, :, top : top + self.crop, left : left + self.crop]
        target = patch.float() / 255.0  # what ToTensor() does
        input = downsample(target, self.scale)
        return input, target


class ESPCN(nn.Module):
    def __init__(self, upscale_factor: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 64, kernel_size=5, padding=2)
        self.conv2 = nn.Conv2d(64, 32, kernel_size=3, padding=1)
        self.conv3 = nn.Conv2d(32, upscale_factor**2, kernel_size=3, padding=1)
        self.pixel_shuffle = nn.PixelShuffle(upscale_factor)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.conv1(x))
        x = torch.relu(self.conv2(x))
        return self.pixel_shuffle(self.conv3(x))


def psnr(mse: float) -> float:
    return 10 * math.log10(1.0 / mse)


def train(model, loader, criterion, optimizer, epoch):
    model.train()
    epoch_loss = 0.0
    for iteration, (input, target) in enumerate(loader, 1):
        optimizer.zero_grad()
        loss = criterion(model(input), target)
        epoch_loss += loss.item()
        loss.backward()
        optimizer.step()
        if iteration % 40 == 0:
            print(f"===> Epoch[{epoch}]({iteration}/{len(loader)}): Loss: {loss.item():.5f}")
    print(f"===> Epoch {epoch} Complete: Avg. Loss: {epoch_loss / len(loader):.5f}")


def test(model, loader, criterion):
    model.eval()
    sr_mse = bicubic_mse = 0.0
    with torch.no_grad():
        for input, target in loader:
            prediction = model(input).clamp(0, 1)
            bicubic = F.interpolate(input, scale_factor=SCALE, mode="bicubic").clamp(0, 1)
            sr_mse += criterion(prediction, target).item()
            bicubic_mse += criterion(bicubic, target).item()
    n = len(loader)
    print(f"===> Avg. PSNR: {psnr(sr_mse / n):.2f} dB (bicubic {psnr(bicubic_mse / n):.2f} dB)")


def main():
    parser = argparse.ArgumentParser(description="ESPCN super-resolution on generated images")
    parser.add_argument("--upscale_factor", type=int, default=SCALE)
    parser.add_argument("--batchSize", type=int, default=32)
    parser.add_argument("--testBatchSize", type=int, default=100)
    parser.add_argument("--nEpochs", type=int, default=20)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--seed", type=int, default=0)
    opt = parser.parse_args()
    torch.manual_seed(opt.seed)

    g = torch.Generator().manual_seed(opt.seed)
    train_set = SuperResolutionDataset(make_images(2400, g), CROP, opt.upscale_factor, True)
    test_set = SuperResolutionDataset(make_images(300, g), CROP, opt.upscale_factor, False)
    training_data_loader = DataLoader(train_set, batch_size=opt.batchSize, shuffle=True)
    testing_data_loader = DataLoader(test_set, batch_size=opt.testBatchSize, shuffle=False)

    model = ESPCN(upscale_factor=opt.upscale_factor)
    criterion = nn.MSELoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=opt.lr)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=[15], gamma=0.1)

    for epoch in range(1, opt.nEpochs + 1):
        train(model, training_data_loader, criterion, optimizer, epoch)
        test(model, testing_data_loader, criterion)
        scheduler.step()


if __name__ == "__main__":
    main()
