"""A character-level GRU language model on text from a small grammar: healthy.

Generates English-like sentences from a tiny grammar ("the old cats chase a red ball
slowly .", with subject-verb agreement), maps characters to ids, and trains
``CharGRU`` (a custom ``nn.Module``: ``nn.Embedding``, dropout, a two-layer ``nn.GRU``,
a linear decoder) to predict the next character. Batches follow the PyTorch
word-language-model example: the text is cut into ``batch_size`` parallel streams,
read in windows of ``bptt`` characters (truncated backpropagation through time), and
the hidden state is carried from one window to the next, detached. ``F.cross_entropy``
on the flattened logits, Adam, ``clip_grad_norm_``, a config dict at the top in the
manner of nanoGPT, ``main()`` (``--seed N`` read from ``sys.argv``). Prints the training
and validation loss in bits per character.

Healthy: nndoctor should report no warning and no error.

    python examples/corpus/char_gru.py
    nndoctor check examples/corpus/char_gru.py
"""

import math
import random
import sys

import torch
import torch.nn.functional as F
from torch import nn

config = {
    "sentences": 4000,   # training text; validation gets a tenth as many
    "batch_size": 32,    # parallel streams
    "bptt": 64,          # window length for truncated backpropagation
    "embed": 32,
    "hidden": 96,
    "dropout": 0.1,
    "lr": 3e-3,
    "clip": 1.0,
    "epochs": 3,
}

SUBJECTS = [("the cat", "s"), ("a dog", "s"), ("my friend", "s"), ("the old man", "s"), ("she", "s"),
            ("the cats", ""), ("two dogs", ""), ("we", ""), ("the old birds", ""), ("they", "")]
VERBS = ["see", "like", "find", "chase", "want", "keep"]
OBJECTS = ["the ball", "a fish", "the red house", "some bread", "the moon", "a small box", "her hat"]
ENDINGS = ["", "", " today", " slowly", " again", " at night"]


def sentence(rng: random.Random) -> str:
    subject, agreement = rng.choice(SUBJECTS)
    return f"{subject} {rng.choice(VERBS)}{agreement} {rng.choice(OBJECTS)}{rng.choice(ENDINGS)} . "


def make_text(sentences: int, seed: int) -> str:
    rng = random.Random(seed)
    return "".join(sentence(rng) for _ in range(sentences))


def batchify(ids: torch.Tensor, batch_size: int) -> torch.Tensor:
    """(batch_size, length): each row one contiguous stream of the text."""
    length = len(ids) // batch_size
    return ids[: length * batch_size].view(batch_size, length)


class CharGRU(nn.Module):
    def __init__(self, vocab: int, embed: int, hidden: int, dropout: float) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, embed)
        self.drop = nn.Dropout(dropout)
        self.gru = nn.GRU(embed, hidden, num_layers=2, batch_first=True, dropout=dropout)
        self.decoder = nn.Linear(hidden, vocab)

    def forward(self, x: torch.Tensor, h: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        out, h = self.gru(self.drop(self.embed(x)), h)  # out: (B, T, hidden)
        return self.decoder(self.drop(out)), h           # (B, T, vocab)


def evaluate(model: CharGRU, data: torch.Tensor, bptt: int) -> float:
    model.eval()
    total, count, h = 0.0, 0, None
    with torch.no_grad():
        for i in range(0, data.shape[1] - 1, bptt):
            x, y = data[:, i : i + bptt], data[:, i + 1 : i + 1 + bptt]
            x = x[:, : y.shape[1]]
            logits, h = model(x, h)
            total += F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1), reduction="sum").item()
            count += y.numel()
    model.train()
    return total / count / math.log(2)


def main(seed: int = 0) -> None:
    torch.manual_seed(seed)
    train_text = make_text(config["sentences"], seed=2 * seed)
    val_text = make_text(config["sentences"] // 10, seed=2 * seed + 1)
    chars = sorted(set(train_text + val_text))
    index = {c: i for i, c in enumerate(chars)}
    encode = lambda text: torch.tensor([index[c] for c in text])  # noqa: E731
    train = batchify(encode(train_text), config["batch_size"])
    val = batchify(encode(val_text), 8)

    model = CharGRU(len(chars), config["embed"], config["hidden"], config["dropout"])
    optimizer = torch.optim.Adam(model.parameters(), lr=config["lr"])
    bptt = config["bptt"]
    for epoch in range(config["epochs"]):
        h, total, count = None, 0.0, 0
        for i in range(0, train.shape[1] - 1, bptt):
            x, y = train[:, i : i + bptt], train[:, i + 1 : i + 1 + bptt]  # next-character targets
            x = x[:, : y.shape[1]]
            if h is not None:
                h = h.detach()  # truncate backpropagation at the window's start
            logits, h = model(x, h)
            loss = F.cross_entropy(logits.reshape(-1, len(chars)), y.reshape(-1))
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), config["clip"])
            optimizer.step()
            total, count = total + loss.item(), count + 1
        print(f"epoch {epoch + 1}: train {total / count / math.log(2):.3f} bits/char, "
              f"validation {evaluate(model, val, bptt):.3f} bits/char")


if __name__ == "__main__":
    main(int(sys.argv[sys.argv.index("--seed") + 1]) if "--seed" in sys.argv else 0)
