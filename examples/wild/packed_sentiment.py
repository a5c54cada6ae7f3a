"""Sentiment classification of variable-length sentences with a packed LSTM: healthy.

In the manner of the LSTM sentiment-analysis tutorials: a small generated language
stands in for movie reviews. A sentence is 4 to 40 tokens of filler words, positive
and negative words, and "not", which flips the word after it; the label is 1 when the
sentiment words (negated ones counted the other way) add up to a positive score, 0
when negative (ties are redrawn). Token 0 is the padding index. A ``ReviewDataset``
returns (token tensor, label); a custom ``collate_fn`` pads a batch with
``pad_sequence`` and returns the true lengths. ``SentimentLSTM`` embeds with
``nn.Embedding(padding_idx=0)``, packs with ``pack_padded_sequence(...,
enforce_sorted=False)``, runs a one-layer ``nn.LSTM`` and classifies the last hidden
state through dropout and a linear layer to one logit; ``nn.BCEWithLogitsLoss``;
Adam; gradient clipping; ``DataLoader``s; ``train_epoch`` / ``evaluate`` functions and
a top-level script with argparse. Prints the training loss and the validation
accuracy each epoch.

Healthy: nndoctor should report no warning and no error.

    python examples/wild/packed_sentiment.py
    nndoctor check examples/wild/packed_sentiment.py
"""

import argparse
import random

import torch
import torch.nn as nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_sequence
from torch.utils.data import DataLoader, Dataset

PAD, NOT = 0, 1
POSITIVE = list(range(2, 12))
NEGATIVE = list(range(12, 22))
FILLER = list(range(22, 60))
VOCAB_SIZE = 60


def make_reviews(n: int, rng: random.Random) -> list[tuple[list[int], int]]:
    reviews = []
    while len(reviews) < n:
        tokens, score = [], 0
        for _ in range(rng.randint(4, 40)):
            r = rng.random()
            if r < 0.12:
                tokens.append(NOT)
            elif r < 0.32:
                polarity = 1 if rng.random() < 0.5 else -1
                tokens.append(rng.choice(POSITIVE if polarity > 0 else NEGATIVE))
                score += -polarity if len(tokens) > 1 and tokens[-2] == NOT else polarity
            else:
                tokens.append(rng.choice(FILLER))
        if score != 0:
            reviews.append((tokens, int(score > 0)))
    return reviews


class ReviewDataset(Dataset):
    def __init__(self, reviews: list[tuple[list[int], int]]) -> None:
        self.reviews = reviews

    def __len__(self) -> int:
        return len(self.reviews)

    def __getitem__(self, idx: int):
        tokens, label = self.reviews[idx]
        return torch.tensor(tokens, dtype=torch.long), label


def collate_batch(batch):
    texts = [text for text, _ in batch]
    labels = [label for _, label in batch]
    lengths = torch.tensor([len(t) for t in texts])
    padded = pad_sequence(texts, batch_first=True, padding_value=PAD)
    return padded, lengths, torch.tensor(labels, dtype=torch.float)


class SentimentLSTM(nn.Module):
    def __init__(self, vocab_size: int, embed_dim: int, hidden_dim: int, dropout: float) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embed_dim, padding_idx=PAD)
        self.lstm = nn.LSTM(embed_dim, hidden_dim, batch_first=True)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(hidden_dim, 1)

    def forward(self, text: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        embedded = self.embedding(text)
        packed = pack_padded_sequence(
            embedded, lengths.cpu(), batch_first=True, enforce_sorted=False
        )
        packed_output, (hidden, cell) = self.lstm(packed)
        return self.fc(self.dropout(hidden[-1])).squeeze(1)


def binary_accuracy(logits: torch.Tensor, y: torch.Tensor) -> float:
    return ((logits > 0).float() == y).float().mean().item()


def train_epoch(model, loader, optimizer, criterion):
    model.train()
    epoch_loss = 0.0
    for text, lengths, labels in loader:
        optimizer.zero_grad()
        predictions = model(text, lengths)
        loss = criterion(predictions, labels)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)
        optimizer.step()
        epoch_loss += loss.item()
    return epoch_loss / len(loader)


def evaluate(model, loader, criterion):
    model.eval()
    loss = acc = 0.0
    with torch.no_grad():
        for text, lengths, labels in loader:
            predictions = model(text, lengths)
            loss += criterion(predictions, labels).item()
            acc += binary_accuracy(predictions, labels)
    return loss / len(loader), acc / len(loader)


parser = argparse.ArgumentParser()
parser.add_argument("--epochs", type=int, default=12)
parser.add_argument("--batch-size", type=int, default=64)
parser.add_argument("--lr", type=float, default=3e-3)
parser.add_argument("--seed", type=int, default=0)
args = parser.parse_args()

random.seed(args.seed)
torch.manual_seed(args.seed)
rng = random.Random(args.seed)
train_data = ReviewDataset(make_reviews(4000, rng))
valid_data = ReviewDataset(make_reviews(800, rng))
train_loader = DataLoader(
    train_data, batch_size=args.batch_size, shuffle=True, collate_fn=collate_batch
)
valid_loader = DataLoader(valid_data, batch_size=256, collate_fn=collate_batch)

model = SentimentLSTM(VOCAB_SIZE, embed_dim=32, hidden_dim=64, dropout=0.2)
optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
criterion = nn.BCEWithLogitsLoss()

for epoch in range(args.epochs):
    train_loss = train_epoch(model, train_loader, optimizer, criterion)
    valid_loss, valid_acc = evaluate(model, valid_loader, criterion)
    print(
        f"Epoch {epoch + 1:02}: train loss {train_loss:.3f} | val loss {valid_loss:.3f} | "
        f"val acc {100 * valid_acc:.1f}%"
    )
