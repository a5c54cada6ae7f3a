"""Sequence-to-sequence reversal with a GRU encoder-decoder: a healthy training script.

A tiny encoder-decoder (custom ``nn.Module``s, ``nn.GRU`` with the default
``batch_first=False``, so every tensor is sequence-first) learns to output a sequence
of 3-8 tokens in reverse order, followed by EOS. A ``collate_fn`` sorts each batch by
source length (for ``pack_padded_sequence``) and pads sources and targets; the decoder
is trained with teacher forcing (BOS + target as its input) and
``nn.CrossEntropyLoss(ignore_index=PAD)``; Adam with gradient clipping; ``DataLoader``
over a list of pairs; ``main()`` with argparse. Prints teacher-forced token accuracy
on held-out pairs.

Healthy: nndoctor should report no warning and no error.
"""

import argparse

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_sequence
from torch.utils.data import DataLoader

PAD, BOS, EOS, VOCAB = 0, 1, 2, 13  # tokens 3..12 are the symbols


def make_pairs(n: int, min_len: int, max_len: int, seed: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    pairs = []
    for _ in range(n):
        length = int(torch.randint(min_len, max_len + 1, (1,), generator=g))
        src = torch.randint(3, VOCAB, (length,), generator=g)
        pairs.append((src, torch.cat([src.flip(0), torch.tensor([EOS])])))
    return pairs


def collate(batch):
    """Sequence-first padded tensors, sorted by decreasing source length."""
    batch = sorted(batch, key=lambda pair: len(pair[0]), reverse=True)
    srcs = [src for src, _ in batch]
    tgts = [tgt for _, tgt in batch]
    src_lens = torch.tensor([len(s) for s in srcs])
    src = pad_sequence(srcs, padding_value=PAD)  # (src_len, batch)
    tgt_out = pad_sequence(tgts, padding_value=PAD)  # (tgt_len, batch)
    tgt_in = torch.cat([torch.full((1, tgt_out.size(1)), BOS), tgt_out[:-1]])
    return src, src_lens, tgt_in, tgt_out


class Encoder(nn.Module):
    def __init__(self, emb: int, hidden: int) -> None:
        super().__init__()
        self.embed = nn.Embedding(VOCAB, emb, padding_idx=PAD)
        self.rnn = nn.GRU(emb, hidden)

    def forward(self, src: torch.Tensor, src_lens: torch.Tensor) -> torch.Tensor:
        packed = pack_padded_sequence(self.embed(src), src_lens)
        _, hidden = self.rnn(packed)
        return hidden  # (1, batch, hidden)


class Decoder(nn.Module):
    def __init__(self, emb: int, hidden: int) -> None:
        super().__init__()
        self.embed = nn.Embedding(VOCAB, emb, padding_idx=PAD)
        self.rnn = nn.GRU(emb, hidden)
        self.out = nn.Linear(hidden, VOCAB)

    def forward(self, tgt_in: torch.Tensor, hidden: torch.Tensor) -> torch.Tensor:
        output, _ = self.rnn(self.embed(tgt_in), hidden)
        return self.out(output)  # (tgt_len, batch, vocab)


class Seq2Seq(nn.Module):
    def __init__(self, emb: int = 32, hidden: int = 128) -> None:
        super().__init__()
        self.encoder, self.decoder = Encoder(emb, hidden), Decoder(emb, hidden)

    def forward(self, src, src_lens, tgt_in):
        logits = self.decoder(tgt_in, self.encoder(src, src_lens))
        return logits.transpose(0, 1)  # (batch, tgt_len, vocab)


def token_accuracy(model: nn.Module, loader: DataLoader) -> float:
    model.eval()
    correct = total = 0
    with torch.no_grad():
        for src, src_lens, tgt_in, tgt_out in loader:
            pred = model(src, src_lens, tgt_in).argmax(dim=-1).t()  # (tgt_len, batch)
            mask = tgt_out != PAD
            correct += (pred == tgt_out)[mask].sum().item()
            total += mask.sum().item()
    model.train()
    return correct / total


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--min-len", type=int, default=3)
    parser.add_argument("--max-len", type=int, default=8)
    args = parser.parse_args()
    torch.manual_seed(args.seed)

    pairs = make_pairs(6000, args.min_len, args.max_len, args.seed)
    train_loader = DataLoader(pairs[:5000], batch_size=64, shuffle=True, collate_fn=collate)
    val_loader = DataLoader(pairs[5000:], batch_size=250, collate_fn=collate)

    model = Seq2Seq()
    criterion = nn.CrossEntropyLoss(ignore_index=PAD)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    for epoch in range(args.epochs):
        total = 0.0
        for src, src_lens, tgt_in, tgt_out in train_loader:
            logits = model(src, src_lens, tgt_in)
            loss = criterion(logits.reshape(-1, VOCAB), tgt_out.t().reshape(-1))
            optimizer.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            total += loss.item()
        acc = token_accuracy(model, val_loader)
        print(f"epoch {epoch + 1}: loss {total / len(train_loader):.4f}  val token accuracy {acc:.3f}")


if __name__ == "__main__":
    main()
