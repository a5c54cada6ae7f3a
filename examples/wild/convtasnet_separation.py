"""A small Conv-TasNet separating two generated sources, with utterance-level PIT: healthy.

In the manner of the Conv-TasNet PyTorch implementations (Luo & Mesgarani 2019, as
kaituoxu/Conv-TasNet and asteroid write it): every mixture is 0.25 s at 8 kHz of two
sources, a harmonic tone (fundamental 120-400 Hz with a 4-7 Hz vibrato, 3-7 harmonics
with a random spectral tilt) and either a train of decaying, ringing clicks (15-45 per
second) or amplitude-modulated high-passed noise, each normalised and mixed at a random
level difference of -5 to 5 dB; the order in which the two sources are stored is random,
so the separator must be trained with permutation invariant training. 2,400 training
mixtures and 400 held out.

``ConvTasNet`` is an ``nn.Module``: a learned 1-D conv encoder (N=32 filters of L=16
samples, stride 8, ReLU), a temporal convolutional separator (global layer norm, a 1x1
bottleneck to B=32 channels, then R=1 repeat of X=4 temporal blocks; each block a 1x1
conv to H=64, PReLU, gLN, a dilated depthwise conv (kernel 3, dilation 2^x), PReLU,
gLN and a 1x1 conv back to B, with a residual connection), a 1x1 conv to one mask per
source with a softmax over the sources, and a transposed-conv decoder applied to each
masked encoder output. The loss is the negative scale-invariant SNR, taking for each
mixture the better of the two source orders (utterance-level PIT); Adam at 1e-3 with
``clip_grad_norm_(max_norm=5)``, batches of 16 from a shuffled ``DataLoader`` over a
``TensorDataset`` for 4 epochs, the learning rate halved after the third (StepLR).
Top-level functions and ``main()`` with argparse; prints the training loss every 50
batches and the held-out SI-SNR after every epoch, then the final SI-SNR improvement
over the unprocessed mixture.

Healthy: nndoctor should report no warning and no error.

    python examples/wild/convtasnet_separation.py
    nndoctor check examples/wild/convtasnet_separation.py
"""

import argparse
import itertools
import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

SAMPLE_RATE, SEGMENT = 8000, 2000
EPS = 1e-8


def harmonic_tone(n, g):
    t = torch.arange(SEGMENT) / SAMPLE_RATE
    f0 = 120 + 280 * torch.rand(n, 1, generator=g)
    vib_rate = 4 + 3 * torch.rand(n, 1, generator=g)
    vib_depth = 0.01 + 0.03 * torch.rand(n, 1, generator=g)
    vib_phase = 2 * math.pi * torch.rand(n, 1, generator=g)
    freq = f0 * (1 + vib_depth * torch.sin(2 * math.pi * vib_rate * t + vib_phase))
    phase = 2 * math.pi * torch.cumsum(freq, dim=1) / SAMPLE_RATE
    n_harmonics = torch.randint(3, 8, (n, 1), generator=g)
    tilt = 0.5 + 1.0 * torch.rand(n, 1, generator=g)
    wave = torch.zeros(n, SEGMENT)
    for k in range(1, 8):
        amp = (k <= n_harmonics).float() / k**tilt
        amp = amp * (k * freq < SAMPLE_RATE / 2).float()
        wave = wave + amp * torch.sin(k * phase + 2 * math.pi * torch.rand(n, 1, generator=g))
    return wave


def click_train(n, g):
    rate = 15 + 30 * torch.rand(n, 1, generator=g)
    period = (SAMPLE_RATE / rate).round().long()
    offset = (torch.rand(n, 1, generator=g) * period).long()
    idx = torch.arange(SEGMENT)
    impulses = ((idx - offset) % period == 0).float()
    jitter = 0.5 + 0.5 * torch.rand(n, SEGMENT, generator=g)
    taps = torch.arange(48)
    decay = torch.exp(-taps / (4 + 8 * torch.rand(n, 1, generator=g)))
    ring_freq = 600 + 1800 * torch.rand(n, 1, generator=g)
    kernel = (decay * torch.sin(2 * math.pi * ring_freq * taps / SAMPLE_RATE)).flip(1)
    clicks = F.pad((impulses * jitter)[None], (47, 0))  # one channel per example
    return F.conv1d(clicks, kernel[:, None], groups=n)[0]


def am_noise(n, g):
    t = torch.arange(SEGMENT) / SAMPLE_RATE
    noise = torch.randn(n, 1, SEGMENT, generator=g)
    width = torch.randint(3, 9, (1,), generator=g).item()
    smooth = F.avg_pool1d(F.pad(noise, (width - 1, 0)), width, stride=1)[:, 0]
    band = noise[:, 0] - smooth
    mod_rate = 2 + 6 * torch.rand(n, 1, generator=g)
    envelope = 0.5 * (
        1 + torch.sin(2 * math.pi * mod_rate * t + 2 * math.pi * torch.rand(n, 1, generator=g))
    )
    return band * envelope**2


def make_mixtures(n, g):
    tone = harmonic_tone(n, g)
    use_clicks = torch.rand(n, 1, generator=g) < 0.5
    other = torch.where(use_clicks, click_train(n, g), am_noise(n, g))
    sources = torch.stack([tone, other], dim=1)
    sources = sources / sources.pow(2).mean(dim=-1, keepdim=True).sqrt()
    level_db = 10 * torch.rand(n, generator=g) - 5
    gains = torch.stack([10 ** (level_db / 40), 10 ** (-level_db / 40)], dim=1)[..., None]
    sources = 0.1 * gains * sources
    swap = torch.rand(n, generator=g) < 0.5
    sources = torch.where(swap[:, None, None], sources.flip(1), sources)
    mixture = sources.sum(dim=1)
    return mixture, sources


class GlobalLayerNorm(nn.Module):
    """gLN: normalise over both the channel and the time dimension of each utterance."""

    def __init__(self, channels):
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(1, channels, 1))
        self.beta = nn.Parameter(torch.zeros(1, channels, 1))

    def forward(self, y):
        mean = y.mean(dim=1, keepdim=True).mean(dim=2, keepdim=True)
        var = ((y - mean) ** 2).mean(dim=1, keepdim=True).mean(dim=2, keepdim=True)
        return self.gamma * (y - mean) / torch.sqrt(var + EPS) + self.beta


class TemporalBlock(nn.Module):
    def __init__(self, in_channels, hidden, kernel_size, dilation):
        super().__init__()
        padding = (kernel_size - 1) * dilation // 2
        self.net = nn.Sequential(
            nn.Conv1d(in_channels, hidden, 1, bias=False),
            nn.PReLU(),
            GlobalLayerNorm(hidden),
            # depthwise separable convolution
            nn.Conv1d(
                hidden,
                hidden,
                kernel_size,
                padding=padding,
                dilation=dilation,
                groups=hidden,
                bias=False,
            ),
            nn.PReLU(),
            GlobalLayerNorm(hidden),
            nn.Conv1d(hidden, in_channels, 1, bias=False),
        )

    def forward(self, x):
        return x + self.net(x)


class TemporalConvNet(nn.Module):
    def __init__(self, N, B, H, P, X, R, C):
        super().__init__()
        self.C = C
        blocks = [TemporalBlock(B, H, P, dilation=2**x) for _ in range(R) for x in range(X)]
        self.network = nn.Sequential(GlobalLayerNorm(N), nn.Conv1d(N, B, 1, bias=False), *blocks)
        self.mask_conv1x1 = nn.Conv1d(B, C * N, 1, bias=False)

    def forward(self, mixture_w):
        M, N, K = mixture_w.shape
        score = self.mask_conv1x1(self.network(mixture_w))
        score = score.view(M, self.C, N, K)
        return F.softmax(score, dim=1)


class ConvTasNet(nn.Module):
    def __init__(self, N=32, L=16, B=32, H=64, P=3, X=4, R=1, C=2):
        super().__init__()
        self.encoder = nn.Conv1d(1, N, L, stride=L // 2, bias=False)
        self.separator = TemporalConvNet(N, B, H, P, X, R, C)
        self.decoder = nn.ConvTranspose1d(N, 1, L, stride=L // 2, bias=False)

    def forward(self, mixture):
        mixture_w = F.relu(self.encoder(mixture.unsqueeze(1)))  # [M, N, K]
        est_mask = self.separator(mixture_w)  # [M, C, N, K]
        masked = mixture_w.unsqueeze(1) * est_mask
        M, C, N, K = masked.shape
        est_source = self.decoder(masked.view(M * C, N, K)).view(M, C, -1)
        T = mixture.shape[-1]
        return F.pad(est_source, (0, T - est_source.shape[-1]))


def si_snr(estimate, reference):
    """Scale-invariant SNR in dB along the last dimension."""
    estimate = estimate - estimate.mean(dim=-1, keepdim=True)
    reference = reference - reference.mean(dim=-1, keepdim=True)
    dot = (estimate * reference).sum(dim=-1, keepdim=True)
    s_target = dot * reference / (reference.pow(2).sum(dim=-1, keepdim=True) + EPS)
    e_noise = estimate - s_target
    ratio = s_target.pow(2).sum(dim=-1) / (e_noise.pow(2).sum(dim=-1) + EPS)
    return 10 * torch.log10(ratio + EPS)


def pit_si_snr_loss(est_source, source):
    """Negative SI-SNR under the best permutation of the sources, per utterance."""
    C = source.shape[1]
    perms = list(itertools.permutations(range(C)))
    snr_set = torch.stack(
        [si_snr(est_source[:, list(p)], source).mean(dim=1) for p in perms], dim=1
    )
    max_snr, _ = torch.max(snr_set, dim=1)
    return -max_snr.mean()


@torch.no_grad()
def evaluate(model, mixture, sources, batch_size=100):
    model.eval()
    est_snr, mix_snr = [], []
    for i in range(0, len(mixture), batch_size):
        mix, ref = mixture[i : i + batch_size], sources[i : i + batch_size]
        est = model(mix)
        per_perm = torch.stack([si_snr(est, ref), si_snr(est.flip(1), ref)], dim=0).mean(dim=2)
        est_snr.append(per_perm.amax(dim=0))
        mix_snr.append(si_snr(mix.unsqueeze(1).expand_as(ref), ref).mean(dim=1))
    model.train()
    return torch.cat(est_snr).mean().item(), torch.cat(mix_snr).mean().item()


def main():
    parser = argparse.ArgumentParser(description="Conv-TasNet on generated two-source mixtures")
    parser.add_argument("--n-train", type=int, default=2400)
    parser.add_argument("--n-test", type=int, default=400)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--max-norm", type=float, default=5.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    g = torch.Generator().manual_seed(args.seed)
    train_mix, train_src = make_mixtures(args.n_train, g)
    test_mix, test_src = make_mixtures(args.n_test, g)
    loader = DataLoader(
        TensorDataset(train_mix, train_src), batch_size=args.batch_size, shuffle=True
    )

    model = ConvTasNet()
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=3, gamma=0.5)

    step, running = 0, 0.0
    for epoch in range(1, args.epochs + 1):
        for mixture, source in loader:
            est_source = model(mixture)
            loss = pit_si_snr_loss(est_source, source)

            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), args.max_norm)
            optimizer.step()

            step += 1
            running += loss.item()
            if step % 50 == 0:
                print(f"epoch {epoch}  step {step:4d}  loss (-SI-SNR) {running / 50:.2f} dB")
                running = 0.0
        scheduler.step()
        est_snr, mix_snr = evaluate(model, test_mix, test_src)
        print(f"epoch {epoch}  held-out SI-SNR {est_snr:.2f} dB (mixture {mix_snr:.2f} dB)")

    print(f"final: held-out SI-SNR {est_snr:.2f} dB, SI-SNR improvement {est_snr - mix_snr:.2f} dB")
    print(f"final: unprocessed mixture SI-SNR {mix_snr:.2f} dB (improvement 0.00 dB)")


if __name__ == "__main__":
    main()
