"""fastText-style text classification with ``nn.EmbeddingBag``: healthy.

In the manner of the text-classification tutorial built on ``EmbeddingBag`` and of
fastText's supervised mode: a generated news corpus of four topics stands in for
AG_NEWS. A document is 8 to 60 words drawn from a Zipf-like common vocabulary and from
its topic's words; some words are shared by two topics and only their pairs with a
following "cue" word tell the topics apart, so bigrams carry part of the signal. Each
document becomes a flat list of token ids: its word ids, then its bigrams hashed into
20,000 buckets after the vocabulary (fastText's ``wordNgrams=2``). A ``collate_batch``
function concatenates a batch's lists into one 1-D tensor and builds the ``offsets``
of each document (the cumulative sum of the lengths, shifted to start at 0).
``TextClassificationModel`` is ``nn.EmbeddingBag(mode="mean")`` and a linear layer,
initialised uniformly; ``nn.CrossEntropyLoss``; plain SGD whose learning rate decays
linearly to zero over the whole run through ``LambdaLR`` stepped every batch, as
fastText does; gradient clipping. ``train`` / ``evaluate`` functions and a top-level
script with argparse; prints the training loss and accuracy every 100 batches and the
validation accuracy every epoch.

Healthy: nndoctor should report no warning and no error.

    python examples/wild/fasttext_bag.py
    nndoctor check examples/wild/fasttext_bag.py
"""

import argparse
import itertools
import random

import torch
from torch import nn
from torch.utils.data import DataLoader

NUM_CLASS, VOCAB, BUCKETS = 4, 3000, 20000
COMMON = list(range(0, 2000))
TOPIC = [list(range(2000 + 200 * c, 2000 + 200 * (c + 1))) for c in range(NUM_CLASS)]
SHARED = list(range(2800, 2900))  # each shared word belongs to two topics
CUES = list(range(2900, 3000))


def make_corpus(n: int, rng: random.Random) -> list[tuple[list[int], int]]:
    zipf = [1.0 / (rank + 1) for rank in range(len(COMMON))]
    docs = []
    for _ in range(n):
        label = rng.randrange(NUM_CLASS)
        words = []
        for _ in range(rng.randint(8, 60)):
            r = rng.random()
            if r < 0.08:
                words.append(rng.choice(TOPIC[label]))
            elif r < 0.16:
                # a shared word followed by the cue that belongs to this topic
                shared = rng.choice(SHARED)
                words += [shared, CUES[(shared + label) % len(CUES)]]
            else:
                words.append(rng.choices(COMMON, weights=zipf)[0])
        docs.append((words, label))
    return docs


def bigram_ids(words: list[int]) -> list[int]:
    return [VOCAB + (a * 116049371 + b) % BUCKETS for a, b in itertools.pairwise(words)]


def collate_batch(batch):
    label_list, text_list, offsets = [], [], [0]
    for words, label in batch:
        label_list.append(label)
        ids = words + bigram_ids(words)
        text_list.append(torch.tensor(ids, dtype=torch.int64))
        offsets.append(len(ids))
    labels = torch.tensor(label_list, dtype=torch.int64)
    offsets = torch.tensor(offsets[:-1]).cumsum(dim=0)
    text = torch.cat(text_list)
    return labels, text, offsets


class TextClassificationModel(nn.Module):
    def __init__(self, vocab_size: int, embed_dim: int, num_class: int) -> None:
        super().__init__()
        self.embedding = nn.EmbeddingBag(vocab_size, embed_dim, mode="mean")
        self.fc = nn.Linear(embed_dim, num_class)
        self.init_weights()

    def init_weights(self) -> None:
        initrange = 0.5
        self.embedding.weight.data.uniform_(-initrange, initrange)
        self.fc.weight.data.uniform_(-initrange, initrange)
        self.fc.bias.data.zero_()

    def forward(self, text: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
        return self.fc(self.embedding(text, offsets))


def train(model, dataloader, criterion, optimizer, scheduler, epoch):
    model.train()
    total_acc, total_count, total_loss = 0, 0, 0.0
    for idx, (label, text, offsets) in enumerate(dataloader, 1):
        optimizer.zero_grad()
        predicted_label = model(text, offsets)
        loss = criterion(predicted_label, label)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        total_acc += (predicted_label.argmax(1) == label).sum().item()
        total_count += label.size(0)
        total_loss += loss.item() * label.size(0)
        if idx % 100 == 0:
            print(
                f"| epoch {epoch:3d} | {idx:4d}/{len(dataloader):4d} batches | "
                f"lr {scheduler.get_last_lr()[0]:.3f} | loss {total_loss / total_count:.4f} "
                f"| accuracy {total_acc / total_count:.3f}"
            )
            total_acc, total_count, total_loss = 0, 0, 0.0


def evaluate(model, dataloader):
    model.eval()
    total_acc, total_count = 0, 0
    with torch.no_grad():
        for label, text, offsets in dataloader:
            predicted_label = model(text, offsets)
            total_acc += (predicted_label.argmax(1) == label).sum().item()
            total_count += label.size(0)
    return total_acc / total_count


parser = argparse.ArgumentParser(description="fastText-style EmbeddingBag classifier")
parser.add_argument("--epochs", type=int, default=5)
parser.add_argument("--batch-size", type=int, default=64)
parser.add_argument("--embed-dim", type=int, default=64)
parser.add_argument("--lr", type=float, default=10.0)
parser.add_argument("--seed", type=int, default=0)
args = parser.parse_args()

torch.manual_seed(args.seed)
rng = random.Random(args.seed)
train_data = make_corpus(12000, rng)
valid_data = make_corpus(2000, rng)
train_dataloader = DataLoader(
    train_data, batch_size=args.batch_size, shuffle=True, collate_fn=collate_batch
)
valid_dataloader = DataLoader(valid_data, batch_size=256, collate_fn=collate_batch)

model = TextClassificationModel(VOCAB + BUCKETS, args.embed_dim, NUM_CLASS)
criterion = torch.nn.CrossEntropyLoss()
optimizer = torch.optim.SGD(model.parameters(), lr=args.lr)
total_steps = args.epochs * len(train_dataloader)
scheduler = torch.optim.lr_scheduler.LambdaLR(
    optimizer, lambda step: max(0.0, 1.0 - step / total_steps)
)

for epoch in range(1, args.epochs + 1):
    train(model, train_dataloader, criterion, optimizer, scheduler, epoch)
    accu_val = evaluate(model, valid_dataloader)
    print(f"| end of epoch {epoch:3d} | valid accuracy {accu_val:8.3f}")
