"""Contrastive Predictive Coding on generated 1-D signals, then a linear probe: healthy.

In the manner of "Representation Learning with Contrastive Predictive Coding" (van den
Oord, Li and Vinyals) and the PyTorch re-implementations of its audio experiment: the
signals are generated "utterances" of 1,024 samples by 8 "speakers", each speaker a
fundamental frequency and a harmonic profile of its own; an utterance is 8 syllables of
128 samples, each at a random interval above the speaker's pitch (a melody drawn per
syllable) with a random phase and a smooth loudness envelope, a random overall gain and
Gaussian noise. Unsupervised stage: ``CPC`` holds a strided ``Conv1d`` encoder (four
convolutions with BatchNorm and ReLU, total stride 32: 32 latent steps ``z`` of 64
channels, transposed from ``(batch, channels, time)`` to ``(batch, time, channels)``), a
``GRU(batch_first=True)`` autoregressive model giving the context ``c_t``, and one
linear predictor ``W_k`` per step ahead, k = 1..4, in an ``nn.ModuleList``. The InfoNCE
loss, at 8 context steps ``t`` drawn at random per batch: each prediction ``W_k c_t`` is
scored by a dot product against the ``z`` at ``t + k`` of every sequence and every drawn
step in the batch (512 candidates: its own is the positive, the other sequences' and the
other steps' are the negatives) through ``F.cross_entropy`` against ``arange``; the
InfoNCE accuracy is the share of predictions whose positive scores highest. Adam at lr
1e-3 over the whole model, batches of 64 from a shuffled ``DataLoader`` over unlabelled
utterances. Then the linear probe: the model is put in ``eval()`` and its time-averaged
contexts are extracted under ``torch.no_grad()`` through an unshuffled ``DataLoader``
for a small labelled set (20 utterances per speaker); ``nn.Linear`` on those frozen
features (standardised with the labelled set's statistics) is trained with Adam and
cross-entropy and scored on held-out utterances, next to the same probe on a randomly
initialised CPC model. ``main()`` with argparse; prints the InfoNCE loss and accuracy
(training and held-out) each epoch and the probe accuracies at the end.

Healthy: nndoctor should report no warning and no error.

    python examples/wild/cpc_infonce.py
    nndoctor check examples/wild/cpc_infonce.py
"""

import argparse
import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

SEQ_LEN, SYLLABLE = 1024, 128
N_SPEAKERS, N_HARMONICS = 8, 4
INTERVALS = torch.tensor([1.0, 9 / 8, 5 / 4, 4 / 3, 3 / 2, 5 / 3])


def make_speakers(g):
    f0 = 0.012 * (1.0 + 0.07 * torch.randperm(N_SPEAKERS, generator=g).float())
    timbre = torch.rand(N_SPEAKERS, N_HARMONICS, generator=g) ** 2
    timbre = timbre / timbre.sum(dim=1, keepdim=True)
    return f0, timbre


def make_utterances(n, speakers, g):
    """(n, 1, SEQ_LEN) waveforms and the speaker of each."""
    f0, timbre = speakers
    speaker = torch.randint(0, N_SPEAKERS, (n,), generator=g)
    n_syl = SEQ_LEN // SYLLABLE
    pitch = f0[speaker, None] * INTERVALS[torch.randint(0, len(INTERVALS), (n, n_syl), generator=g)]
    phase = 2 * math.pi * torch.rand(n, n_syl, 1, generator=g)
    t = torch.arange(SYLLABLE).float()
    harmonics = torch.arange(1, N_HARMONICS + 1).float()
    angle = 2 * math.pi * pitch[..., None, None] * t[:, None] * harmonics + phase[..., None]
    wave = (timbre[speaker][:, None, None, :] * torch.sin(angle)).sum(-1)  # (n, n_syl, SYLLABLE)
    loudness = 0.5 + torch.rand(n, n_syl, 1, generator=g)
    envelope = torch.sin(math.pi * (t + 0.5) / SYLLABLE).sqrt()
    wave = (wave * loudness * envelope).reshape(n, SEQ_LEN)
    gain = torch.exp(torch.empty(n, 1).uniform_(-0.5, 0.5, generator=g))
    wave = gain * wave + 0.1 * torch.randn(n, SEQ_LEN, generator=g)
    return wave.unsqueeze(1), speaker


class CPC(nn.Module):
    def __init__(self, timestep, n_samples=8, z_dim=64, c_dim=64):
        super().__init__()
        self.timestep = timestep
        self.n_samples = n_samples
        self.encoder = nn.Sequential(
            nn.Conv1d(1, z_dim, kernel_size=8, stride=4, padding=2, bias=False),
            nn.BatchNorm1d(z_dim),
            nn.ReLU(inplace=True),
            nn.Conv1d(z_dim, z_dim, kernel_size=4, stride=2, padding=1, bias=False),
            nn.BatchNorm1d(z_dim),
            nn.ReLU(inplace=True),
            nn.Conv1d(z_dim, z_dim, kernel_size=4, stride=2, padding=1, bias=False),
            nn.BatchNorm1d(z_dim),
            nn.ReLU(inplace=True),
            nn.Conv1d(z_dim, z_dim, kernel_size=4, stride=2, padding=1, bias=False),
            nn.BatchNorm1d(z_dim),
            nn.ReLU(inplace=True),
        )
        self.gru = nn.GRU(z_dim, c_dim, num_layers=1, batch_first=True)
        self.Wk = nn.ModuleList([nn.Linear(c_dim, z_dim) for _ in range(timestep)])

    def encode(self, x):
        z = self.encoder(x)  # (batch, z_dim, steps)
        z = z.transpose(1, 2)  # (batch, steps, z_dim)
        c, _ = self.gru(z)
        return z, c

    def forward(self, x):
        z, c = self.encode(x)
        batch, steps, z_dim = z.shape
        # a few random context steps per batch; every sequence predicts from the same ones
        t_samples = torch.randperm(steps - self.timestep)[: self.n_samples]
        c_t = c[:, t_samples]  # (batch, n_samples, c_dim)
        nce, correct, total = 0.0, 0, 0
        for k in range(1, self.timestep + 1):
            pred = self.Wk[k - 1](c_t).reshape(-1, z_dim)
            target = z[:, t_samples + k].reshape(-1, z_dim)
            scores = pred @ target.t()  # positives on the diagonal
            labels = torch.arange(scores.size(0))
            nce = nce + F.cross_entropy(scores, labels)
            correct += (scores.argmax(dim=1) == labels).sum().item()
            total += labels.numel()
        return nce / self.timestep, correct / total


@torch.no_grad()
def context_features(model, x, batch_size=256):
    """Time-averaged contexts of the frozen model, one row per utterance, in order."""
    model.eval()
    loader = DataLoader(TensorDataset(x), batch_size=batch_size)
    return torch.cat([model.encode(xb)[1].mean(dim=1) for (xb,) in loader])


def linear_probe(model, x_train, y_train, x_test, y_test, epochs=300):
    f_train, f_test = context_features(model, x_train), context_features(model, x_test)
    mean, std = f_train.mean(0), f_train.std(0) + 1e-6
    f_train, f_test = (f_train - mean) / std, (f_test - mean) / std
    probe = nn.Linear(f_train.size(1), N_SPEAKERS)
    optimizer = torch.optim.Adam(probe.parameters(), lr=1e-2)
    for _ in range(epochs):
        optimizer.zero_grad()
        loss = F.cross_entropy(probe(f_train), y_train)
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        return (probe(f_test).argmax(dim=1) == y_test).float().mean().item()


def main():
    parser = argparse.ArgumentParser(description="CPC on generated utterances + linear probe")
    parser.add_argument("--n-unlabelled", type=int, default=4096)
    parser.add_argument("--n-labelled", type=int, default=20, help="per speaker")
    parser.add_argument("--n-test", type=int, default=800)
    parser.add_argument("--timestep", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    g = torch.Generator().manual_seed(args.seed)
    speakers = make_speakers(g)
    x_unlab, _ = make_utterances(args.n_unlabelled, speakers, g)
    x_val, _ = make_utterances(256, speakers, g)
    x_lab, y_lab = make_utterances(args.n_labelled * N_SPEAKERS, speakers, g)
    x_test, y_test = make_utterances(args.n_test, speakers, g)
    loader = DataLoader(TensorDataset(x_unlab), batch_size=args.batch_size, shuffle=True)

    model = CPC(args.timestep)
    random_model = CPC(args.timestep)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)

    for epoch in range(1, args.epochs + 1):
        model.train()
        total_loss, total_acc = 0.0, 0.0
        for (x,) in loader:
            optimizer.zero_grad()
            loss, acc = model(x)
            loss.backward()
            optimizer.step()
            total_loss += loss.item()
            total_acc += acc
        model.eval()
        with torch.no_grad():
            held_out = [
                model(x_val[i : i + args.batch_size]) for i in range(0, len(x_val), args.batch_size)
            ]
        val_loss = sum(loss.item() for loss, _ in held_out) / len(held_out)
        val_acc = sum(acc for _, acc in held_out) / len(held_out)
        print(
            f"epoch {epoch}: InfoNCE {total_loss / len(loader):.4f} "
            f"accuracy {total_acc / len(loader):.3f} | held-out InfoNCE {val_loss:.4f} "
            f"accuracy {val_acc:.3f}"
        )

    probe_acc = linear_probe(model, x_lab, y_lab, x_test, y_test)
    random_acc = linear_probe(random_model, x_lab, y_lab, x_test, y_test)
    print(f"linear probe on CPC features: {probe_acc:.3f} (random encoder: {random_acc:.3f})")


if __name__ == "__main__":
    main()
