"""A small WaveNet on mu-law quantised synthetic audio: healthy.

In the manner of the popular PyTorch WaveNet re-implementations: clips of a synthetic
waveform (each a sum of three sines of random frequency, amplitude and phase with a
little noise, in [-1, 1]) are mu-law companded and quantised to 64 classes. The model
takes the one-hot previous samples, a causal 1x1 convolution lifts them to the residual
channels, and a stack of dilated causal ``nn.Conv1d`` blocks (kernel 2, dilations 1 to
32 twice, left padding by ``F.pad`` so no output sees a later sample) with gated
``tanh * sigmoid`` activations feeds residual and skip 1x1 convolutions (the last block
has only the skip one, its residual output would feed nothing); the summed skips go
through ReLU, 1x1, ReLU, 1x1 to logits shaped (batch, 64, time).
``nn.CrossEntropyLoss`` compares them with the class indices shifted by one sample, so
each output predicts the next sample; the first receptive field is left out of the loss.
Adam, batches drawn at random from the clips by hand. Top-level ``main()`` with argparse;
prints the training loss and the held-out next-sample accuracy.

Healthy: nndoctor should report no warning and no error.

    python examples/wild/wavenet_mulaw.py
    nndoctor check examples/wild/wavenet_mulaw.py
"""

import argparse
import math

import torch
import torch.nn.functional as F
from torch import nn


def mu_law_encode(x: torch.Tensor, quantization_channels: int) -> torch.Tensor:
    mu = quantization_channels - 1
    magnitude = torch.log1p(mu * x.abs()) / math.log1p(mu)
    signal = torch.sign(x) * magnitude
    return ((signal + 1) / 2 * mu + 0.5).long().clamp(0, mu)


def make_clips(n: int, length: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(length, dtype=torch.float32)
    freq = 0.01 + 0.12 * torch.rand(n, 3, 1, generator=g)
    amp = 0.2 + 0.8 * torch.rand(n, 3, 1, generator=g)
    phase = 2 * math.pi * torch.rand(n, 3, 1, generator=g)
    wave = (amp * torch.sin(2 * math.pi * freq * t + phase)).sum(1)
    wave = wave / wave.abs().amax(1, keepdim=True)
    wave = wave + 0.005 * torch.randn(n, length, generator=g)
    return wave.clamp(-1, 1)


class CausalConv1d(nn.Conv1d):
    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int = 2, dilation: int = 1
    ) -> None:
        super().__init__(in_channels, out_channels, kernel_size, dilation=dilation)
        self.left_pad = dilation * (kernel_size - 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(F.pad(x, (self.left_pad, 0)))


class ResidualBlock(nn.Module):
    def __init__(
        self, residual_channels: int, skip_channels: int, dilation: int, last: bool = False
    ) -> None:
        super().__init__()
        self.filter_conv = CausalConv1d(residual_channels, residual_channels, 2, dilation)
        self.gate_conv = CausalConv1d(residual_channels, residual_channels, 2, dilation)
        # The last block's residual output feeds nothing: it has only a skip path.
        self.residual_conv = None if last else nn.Conv1d(residual_channels, residual_channels, 1)
        self.skip_conv = nn.Conv1d(residual_channels, skip_channels, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = torch.tanh(self.filter_conv(x)) * torch.sigmoid(self.gate_conv(x))
        residual = x if self.residual_conv is None else x + self.residual_conv(z)
        return residual, self.skip_conv(z)


class WaveNet(nn.Module):
    def __init__(
        self,
        quantization_channels: int = 64,
        residual_channels: int = 32,
        skip_channels: int = 64,
        dilations: tuple[int, ...] = (1, 2, 4, 8, 16, 32) * 2,
    ) -> None:
        super().__init__()
        self.quantization_channels = quantization_channels
        self.causal = CausalConv1d(quantization_channels, residual_channels, kernel_size=1)
        self.blocks = nn.ModuleList(
            ResidualBlock(residual_channels, skip_channels, d, last=i == len(dilations) - 1)
            for i, d in enumerate(dilations)
        )
        self.end1 = nn.Conv1d(skip_channels, skip_channels, 1)
        self.end2 = nn.Conv1d(skip_channels, quantization_channels, 1)
        self.receptive_field = sum(dilations) + 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.causal(F.one_hot(x, self.quantization_channels).transpose(1, 2).float())
        skips = 0
        for block in self.blocks:
            h, skip = block(h)
            skips = skips + skip
        return self.end2(F.relu(self.end1(F.relu(skips))))


def main() -> None:
    parser = argparse.ArgumentParser(description="WaveNet on mu-law quantised sines")
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--classes", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.manual_seed(args.seed)

    audio = mu_law_encode(make_clips(512, 384, seed=args.seed), args.classes)
    train, valid = audio[:448], audio[448:]
    model = WaveNet(args.classes)
    rf = model.receptive_field
    criterion = nn.CrossEntropyLoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)

    def evaluate() -> tuple[float, float]:
        model.eval()
        with torch.no_grad():
            inputs, targets = valid[:, :-1], valid[:, 1:]
            logits = model(inputs)[:, :, rf:]
            loss = criterion(logits, targets[:, rf:]).item()
            acc = (logits.argmax(1) == targets[:, rf:]).float().mean().item()
        model.train()
        return loss, acc

    for step in range(1, args.steps + 1):
        idx = torch.randint(0, len(train), (args.batch_size,))
        batch = train[idx]
        inputs, targets = batch[:, :-1], batch[:, 1:]
        logits = model(inputs)
        loss = criterion(logits[:, :, rf:], targets[:, rf:])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step % 50 == 0:
            val_loss, val_acc = evaluate()
            print(
                f"step {step}: train loss {loss.item():.3f}, valid loss {val_loss:.3f}, valid acc {val_acc:.3f}"
            )


if __name__ == "__main__":
    main()
