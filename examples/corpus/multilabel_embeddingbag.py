"""Multi-label tagging of token sequences with ``nn.EmbeddingBag``: a healthy training script.

Each generated "document" is 10-40 token ids from a vocabulary of 1000; each of six tags
is present when the document contains any of that tag's four trigger tokens (about one
document in ten per tag, tags independent), and simulated annotators get 1% of the tags
wrong. ``TagClassifier`` (a custom ``nn.Module``: an ``nn.EmbeddingBag`` summing the token
embeddings of each document, then a two-layer MLP head with one logit per tag) reads the
documents as one flat tensor of token ids plus the offset where each document starts,
built by a ``collate_fn`` in the manner of the PyTorch text-classification tutorial.
``DataLoader`` with shuffling, an ``nn.BCEWithLogitsLoss`` module over the six tags, Adam
with a little weight decay, a top-level script (``--seed N`` read from ``sys.argv``).
Prints the loss and the micro-F1 on held-out documents.

Healthy: nndoctor should report no warning and no error.

    python examples/corpus/multilabel_embeddingbag.py
    nndoctor check examples/corpus/multilabel_embeddingbag.py
"""

import sys

import torch
from torch import nn
from torch.utils.data import DataLoader

VOCAB, TAGS, TRIGGERS_PER_TAG = 1000, 6, 4
MAX_TOKENS = 64  # longer documents are cut (none are, here)
ANNOTATION_ERROR = 0.01  # share of tags the (simulated) annotators got wrong
seed = int(sys.argv[sys.argv.index("--seed") + 1]) if "--seed" in sys.argv else 0
torch.manual_seed(seed)
g = torch.Generator().manual_seed(seed)

# --- data: documents of random token ids; a tag is on when one of its triggers occurs --
triggers = torch.randperm(VOCAB - 1, generator=g)[: TAGS * TRIGGERS_PER_TAG].view(TAGS, -1) + 1
lengths = torch.randint(10, 41, (22000,), generator=g)
documents = [torch.randint(1, VOCAB, (int(n),), generator=g) for n in lengths]
tags = torch.stack([torch.isin(triggers, doc).any(dim=1) for doc in documents]).float()  # (N, TAGS)
flipped = torch.rand(tags.shape, generator=g) < ANNOTATION_ERROR
tags = torch.where(flipped, 1 - tags, tags)

train_set = list(zip(documents[:20000], tags[:20000], strict=True))
val_set = list(zip(documents[20000:], tags[20000:], strict=True))


def collate_batch(batch):
    """Concatenate the documents of a batch; ``offsets`` marks where each one starts."""
    tokens, offsets, targets = [], [0], []
    for doc, target in batch:
        doc = doc[:MAX_TOKENS]
        tokens.append(doc)
        offsets.append(len(doc))
        targets.append(target)
    offsets = torch.tensor(offsets[:-1]).cumsum(dim=0)
    return torch.cat(tokens), offsets, torch.stack(targets)


class TagClassifier(nn.Module):
    def __init__(self, vocab: int, dim: int, tags: int) -> None:
        super().__init__()
        self.embedding = nn.EmbeddingBag(vocab, dim, mode="sum")
        self.head = nn.Sequential(nn.Linear(dim, dim), nn.ReLU(), nn.Linear(dim, tags))

    def forward(self, tokens: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
        return self.head(self.embedding(tokens, offsets))  # (documents, tags) logits


model = TagClassifier(VOCAB, 64, TAGS)
criterion = nn.BCEWithLogitsLoss()
optimizer = torch.optim.Adam(model.parameters(), lr=2e-3, weight_decay=1e-6)
train_loader = DataLoader(train_set, batch_size=64, shuffle=True, collate_fn=collate_batch)
val_loader = DataLoader(val_set, batch_size=256, collate_fn=collate_batch)

for epoch in range(8):
    model.train()
    total, seen = 0.0, 0
    for tokens, offsets, target in train_loader:
        optimizer.zero_grad()
        loss = criterion(model(tokens, offsets), target)
        loss.backward()
        optimizer.step()
        total += loss.item() * len(target)
        seen += len(target)

    model.eval()
    true_pos = predicted = actual = 0.0
    with torch.no_grad():
        for tokens, offsets, target in val_loader:
            guess = (model(tokens, offsets) > 0).float()
            true_pos += (guess * target).sum().item()
            predicted += guess.sum().item()
            actual += target.sum().item()
    f1 = 2 * true_pos / max(predicted + actual, 1.0)
    print(f"epoch {epoch + 1}: train loss {total / seen:.4f}, validation micro-F1 {f1:.3f}")
