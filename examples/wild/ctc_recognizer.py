"""A CTC sequence recogniser on generated "spoken letter" feature sequences: healthy.

In the manner of the DeepSpeech2-style speech recognition tutorials and of the example in
the ``nn.CTCLoss`` documentation: each utterance is a random word of 3 to 7 letters from
a 12-letter alphabet, turned into a sequence of 16-dimensional feature frames (every
letter a noisy prototype frame held for 3 to 6 frames, with short silences between
letters, always one between two equal letters, and a random per-utterance offset for the
speaker). ``TextTransform`` maps letters to label ids with 0 kept for the CTC blank. A
``Dataset`` and a ``collate_fn`` pad the features into the time-first layout
``(T, N, F)`` and concatenate the targets into one 1-D tensor, with ``input_lengths`` and
``target_lengths``. The model is a ``Conv1d`` front-end (stride 2, ``BatchNorm1d``,
``GELU``) followed by a two-layer bidirectional ``nn.GRU`` in its default time-first
layout and a linear classifier; ``log_softmax`` over the classes gives the
``(T, N, C)`` log-probabilities that ``nn.CTCLoss(blank=0, zero_infinity=True)`` takes
with the input lengths after the stride. Adam, ``clip_grad_norm_`` at 5. Validation by
greedy CTC decoding (arg-max per frame, repeats collapsed, blanks removed) and the label
error rate (edit distance over reference length). A ``main()`` with argparse; prints the
training loss and the validation loss and label error rate every epoch.

Healthy: nndoctor should report no warning and no error.

    python examples/wild/ctc_recognizer.py
    nndoctor check examples/wild/ctc_recognizer.py
"""

import argparse

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

ALPHABET = "abcdefghijkl"
N_FEATURES = 16


class TextTransform:
    """Letters to label ids and back; id 0 is reserved for the CTC blank."""

    def __init__(self) -> None:
        self.char_map = {c: i + 1 for i, c in enumerate(ALPHABET)}
        self.index_map = {i: c for c, i in self.char_map.items()}

    def text_to_int(self, text: str) -> list[int]:
        return [self.char_map[c] for c in text]

    def int_to_text(self, labels: list[int]) -> str:
        return "".join(self.index_map[i] for i in labels)


def make_corpus(n: int, rng: np.random.Generator, prototypes: np.ndarray):
    """Random words and their feature sequences: each letter a noisy prototype held a while."""
    corpus = []
    for _ in range(n):
        word = "".join(rng.choice(list(ALPHABET), size=rng.integers(3, 8)))
        speaker = 0.3 * rng.standard_normal(N_FEATURES)
        frames = [prototypes[0]] * int(rng.integers(1, 4))
        for k, letter in enumerate(word):
            if k > 0:
                gap = rng.integers(1, 3) if letter == word[k - 1] else rng.integers(0, 3)
                frames += [prototypes[0]] * int(gap)
            frames += [prototypes[ALPHABET.index(letter) + 1]] * int(rng.integers(3, 7))
        frames += [prototypes[0]] * int(rng.integers(1, 4))
        feats = np.stack(frames) + speaker + 1.0 * rng.standard_normal((len(frames), N_FEATURES))
        corpus.append((feats.astype(np.float32), word))
    return corpus


class SpokenLetters(Dataset):
    def __init__(self, corpus, text_transform: TextTransform) -> None:
        self.corpus = corpus
        self.text_transform = text_transform

    def __len__(self) -> int:
        return len(self.corpus)

    def __getitem__(self, idx: int):
        feats, word = self.corpus[idx]
        return torch.from_numpy(feats), torch.tensor(self.text_transform.text_to_int(word))


def collate_fn(batch):
    feats, labels = zip(*batch, strict=True)
    input_lengths = torch.tensor([f.size(0) for f in feats])
    target_lengths = torch.tensor([len(y) for y in labels])
    padded = nn.utils.rnn.pad_sequence(feats)  # (T, N, F)
    targets = torch.cat(labels)
    return padded, targets, input_lengths, target_lengths


class SpeechRecognizer(nn.Module):
    def __init__(self, n_feats: int, n_classes: int, hidden: int = 96) -> None:
        super().__init__()
        self.conv = nn.Conv1d(n_feats, hidden, kernel_size=5, stride=2, padding=2)
        self.bn = nn.BatchNorm1d(hidden)
        self.gru = nn.GRU(hidden, hidden, num_layers=2, bidirectional=True, dropout=0.1)
        self.classifier = nn.Linear(2 * hidden, n_classes)

    @staticmethod
    def output_lengths(input_lengths: torch.Tensor) -> torch.Tensor:
        return (input_lengths + 2 * 2 - 5) // 2 + 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (T, N, F) -> Conv1d wants (N, F, T)
        x = F.gelu(self.bn(self.conv(x.permute(1, 2, 0))))
        x = x.permute(2, 0, 1)  # (T', N, hidden)
        x, _ = self.gru(x)
        return F.log_softmax(self.classifier(x), dim=2)  # (T', N, C)


def greedy_decode(log_probs: torch.Tensor, lengths: torch.Tensor, blank: int = 0):
    best = log_probs.argmax(dim=2).t()  # (N, T')
    decoded = []
    for seq, length in zip(best.tolist(), lengths.tolist(), strict=True):
        out, prev = [], blank
        for label in seq[:length]:
            if label != prev and label != blank:
                out.append(label)
            prev = label
        decoded.append(out)
    return decoded


def edit_distance(a: list[int], b: list[int]) -> int:
    row = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        prev, row[0] = row[0], i
        for j, y in enumerate(b, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (x != y))
    return row[-1]


def evaluate(model, loader, criterion):
    model.eval()
    total_loss, errors, ref_len = 0.0, 0, 0
    with torch.no_grad():
        for feats, targets, input_lengths, target_lengths in loader:
            log_probs = model(feats)
            out_lengths = model.output_lengths(input_lengths)
            total_loss += criterion(log_probs, targets, out_lengths, target_lengths).item()
            refs = torch.split(targets, target_lengths.tolist())
            for hyp, ref in zip(greedy_decode(log_probs, out_lengths), refs, strict=True):
                errors += edit_distance(hyp, ref.tolist())
                ref_len += len(ref)
    model.train()
    return total_loss / len(loader), errors / ref_len


def main() -> None:
    parser = argparse.ArgumentParser(description="CTC recogniser on generated letter sequences")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--n-train", type=int, default=2000)
    parser.add_argument("--n-valid", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    prototypes = rng.standard_normal((len(ALPHABET) + 1, N_FEATURES))
    prototypes[0] *= 0.2  # silence: low energy
    text_transform = TextTransform()
    train_set = SpokenLetters(make_corpus(args.n_train, rng, prototypes), text_transform)
    valid_set = SpokenLetters(make_corpus(args.n_valid, rng, prototypes), text_transform)
    train_loader = DataLoader(
        train_set, batch_size=args.batch_size, shuffle=True, collate_fn=collate_fn
    )
    valid_loader = DataLoader(valid_set, batch_size=100, collate_fn=collate_fn)

    model = SpeechRecognizer(N_FEATURES, len(ALPHABET) + 1)
    criterion = nn.CTCLoss(blank=0, zero_infinity=True)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)

    for epoch in range(1, args.epochs + 1):
        running = 0.0
        for feats, targets, input_lengths, target_lengths in train_loader:
            log_probs = model(feats)
            loss = criterion(
                log_probs, targets, model.output_lengths(input_lengths), target_lengths
            )
            optimizer.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            optimizer.step()
            running += loss.item()
        valid_loss, ler = evaluate(model, valid_loader, criterion)
        print(
            f"epoch {epoch}: train loss {running / len(train_loader):.3f}, "
            f"valid loss {valid_loss:.3f}, label error rate {ler:.1%}"
        )


if __name__ == "__main__":
    main()
