"""Keyword spotting with log-mel features, SpecAugment and a 1-D CNN: healthy.

In the manner of the speech-commands keyword-spotting tutorials, without torchaudio:
half-second "utterances" at 8 kHz are generated in code, 6 keywords made of tones
(a rising chirp, a falling chirp, a low tone, a high tone, a two-note figure and a
warbling tone), each with a random pitch offset, length, onset and loudness, a little
harmonic, and background noise at a random level. ``LogMel`` computes the features in
code: ``torch.stft`` (Hann window, 256-point FFT, hop 64) to a power spectrogram, a
hand-made triangular mel filterbank of 40 bands, the log, then a per-utterance mean and
variance normalisation. ``spec_augment`` zeroes one random band of up to 6 mel channels
and one span of up to 10 frames in every training utterance (training only). ``KWSNet``:
four ``Conv1d`` + ``BatchNorm1d`` + ReLU layers over time (mel bands as channels, two
of them strided), global average pooling and a linear classifier. Label-smoothed
``nn.CrossEntropyLoss(label_smoothing=0.1)``; SGD with Nesterov momentum and weight
decay, ``CosineAnnealingLR`` stepped per batch; a ``Dataset`` of waveforms and
``DataLoader``s; the features computed on each batch in the loop; ``main()`` with
argparse. Prints the training loss and the validation accuracy each epoch.

Healthy: nndoctor should report no warning and no error.

    python examples/wild/kws_conv1d.py
    nndoctor check examples/wild/kws_conv1d.py
"""

import argparse
import math

import torch
import torch.nn as nn
from torch.utils.data import DataLoader, Dataset

SAMPLE_RATE = 8000
N_SAMPLES = 4000  # half a second
KEYWORDS = ["up", "down", "low", "high", "two", "warble"]


def synthesize(label: int, g: torch.Generator) -> torch.Tensor:
    """One utterance of keyword ``label``: a tone figure somewhere in background noise."""
    dur = 0.18 + 0.14 * torch.rand(1, generator=g).item()
    onset = (0.5 - dur) * torch.rand(1, generator=g).item()
    pitch = 2 ** (0.45 * torch.randn(1, generator=g).item())
    t = torch.arange(int(dur * SAMPLE_RATE)) / SAMPLE_RATE
    u = t / dur
    if label == 0:
        freq = pitch * (400 + 1400 * u)
    elif label == 1:
        freq = pitch * (1800 - 1400 * u)
    elif label == 2:
        freq = pitch * 500 * torch.ones_like(u)
    elif label == 3:
        freq = pitch * 1500 * torch.ones_like(u)
    elif label == 4:
        freq = pitch * torch.where(u < 0.5, 700.0, 1200.0)
    else:
        freq = pitch * (1000 + 250 * torch.sin(2 * math.pi * 12 * t))
    phase = 2 * math.pi * torch.cumsum(freq, 0) / SAMPLE_RATE
    envelope = torch.sin(math.pi * u) ** 0.5
    tone = envelope * (torch.sin(phase) + 0.3 * torch.sin(2 * phase))
    wave = torch.zeros(N_SAMPLES)
    start = int(onset * SAMPLE_RATE)
    wave[start : start + len(tone)] = tone
    loudness = 10 ** (-torch.rand(1, generator=g).item())  # 0.1 to 1
    noise = (0.3 + 1.2 * torch.rand(1, generator=g).item()) * torch.randn(N_SAMPLES, generator=g)
    return loudness * (wave + noise)


class SyntheticCommands(Dataset):
    def __init__(self, n: int, seed: int) -> None:
        g = torch.Generator().manual_seed(seed)
        self.labels = torch.randint(0, len(KEYWORDS), (n,), generator=g)
        self.waves = torch.stack([synthesize(int(y), g) for y in self.labels])

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        return self.waves[i], self.labels[i]


def mel_filterbank(n_mels: int, n_fft: int, sample_rate: int) -> torch.Tensor:
    def hz_to_mel(f):
        return 2595 * math.log10(1 + f / 700)

    mel_points = torch.linspace(hz_to_mel(0), hz_to_mel(sample_rate / 2), n_mels + 2)
    hz_points = 700 * (10 ** (mel_points / 2595) - 1)
    bins = torch.linspace(0, sample_rate / 2, n_fft // 2 + 1)
    fb = torch.zeros(n_mels, n_fft // 2 + 1)
    for m in range(n_mels):
        left, center, right = hz_points[m], hz_points[m + 1], hz_points[m + 2]
        rising = (bins - left) / (center - left)
        falling = (right - bins) / (right - center)
        fb[m] = torch.clamp(torch.minimum(rising, falling), min=0)
    return fb


class LogMel(nn.Module):
    def __init__(self, n_fft: int = 256, hop_length: int = 64, n_mels: int = 40) -> None:
        super().__init__()
        self.n_fft, self.hop_length = n_fft, hop_length
        self.register_buffer("window", torch.hann_window(n_fft))
        self.register_buffer("fb", mel_filterbank(n_mels, n_fft, SAMPLE_RATE))

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        spec = torch.stft(
            wave, self.n_fft, hop_length=self.hop_length, window=self.window, return_complex=True
        )
        power = spec.abs() ** 2  # (batch, freq, frames)
        mel = torch.matmul(self.fb, power)  # (batch, n_mels, frames)
        feats = torch.log(mel + 1e-6)
        mean = feats.mean(dim=(1, 2), keepdim=True)
        std = feats.std(dim=(1, 2), keepdim=True)
        return (feats - mean) / (std + 1e-5)


def spec_augment(feats: torch.Tensor, freq_mask: int = 6, time_mask: int = 10) -> torch.Tensor:
    feats = feats.clone()
    n_mels, n_frames = feats.shape[1], feats.shape[2]
    for i in range(feats.shape[0]):
        f = int(torch.randint(0, freq_mask + 1, (1,)))
        f0 = int(torch.randint(0, n_mels - f + 1, (1,)))
        feats[i, f0 : f0 + f, :] = 0
        t = int(torch.randint(0, time_mask + 1, (1,)))
        t0 = int(torch.randint(0, n_frames - t + 1, (1,)))
        feats[i, :, t0 : t0 + t] = 0
    return feats


class KWSNet(nn.Module):
    def __init__(self, n_mels: int = 40, n_classes: int = len(KEYWORDS), width: int = 64) -> None:
        super().__init__()

        def block(c_in, c_out, stride):
            return nn.Sequential(
                nn.Conv1d(c_in, c_out, kernel_size=5, stride=stride, padding=2, bias=False),
                nn.BatchNorm1d(c_out),
                nn.ReLU(inplace=True),
            )

        self.features = nn.Sequential(
            block(n_mels, width, 1),
            block(width, width, 2),
            block(width, width * 2, 1),
            block(width * 2, width * 2, 2),
        )
        self.classifier = nn.Linear(width * 2, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        return self.classifier(x.mean(dim=2))  # global average pooling over time


def evaluate(model, frontend, loader):
    model.eval()
    correct = total = 0
    with torch.no_grad():
        for wave, label in loader:
            pred = model(frontend(wave)).argmax(dim=1)
            correct += (pred == label).sum().item()
            total += len(label)
    return correct / total


def main():
    parser = argparse.ArgumentParser(description="keyword spotting, 1-D CNN on log-mel")
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.manual_seed(args.seed)

    train_set = SyntheticCommands(3000, seed=args.seed)
    val_set = SyntheticCommands(600, seed=10_000 + args.seed)
    train_loader = DataLoader(train_set, batch_size=args.batch_size, shuffle=True, drop_last=True)
    val_loader = DataLoader(val_set, batch_size=200)

    frontend = LogMel()
    model = KWSNet()
    criterion = nn.CrossEntropyLoss(label_smoothing=0.1)
    optimizer = torch.optim.SGD(
        model.parameters(), lr=args.lr, momentum=0.9, nesterov=True, weight_decay=1e-4
    )
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(
        optimizer, T_max=args.epochs * len(train_loader)
    )

    for epoch in range(1, args.epochs + 1):
        model.train()
        running = 0.0
        for wave, label in train_loader:
            feats = spec_augment(frontend(wave))
            loss = criterion(model(feats), label)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            scheduler.step()
            running += loss.item()
        acc = evaluate(model, frontend, val_loader)
        print(f"epoch {epoch:2d}: train loss {running / len(train_loader):.4f}, val accuracy {100 * acc:.1f}%")


if __name__ == "__main__":
    main()
