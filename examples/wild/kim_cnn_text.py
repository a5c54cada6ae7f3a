"""Sentence classification with Kim's CNN over frozen pretrained word vectors: healthy.

In the manner of the PyTorch ports of Kim (2014), "Convolutional Neural Networks for
Sentence Classification", in its CNN-static variant: a generated corpus stands in for a
four-topic sentence data set. Sentences of 6 to 30 words are drawn from a vocabulary of
a few hundred words; the topic is told by the cue words that occur (two or three of its
own, in 30% of them one of another topic as a distractor), and 3% of the labels are
redrawn at random. Since nothing can be downloaded, a fixed "pretrained" word-vector
table keyed by word strings stands in for word2vec/GloVe: 64-d random vectors in which
the cue words of a topic share a direction. As in Kim's code the vocabulary is built
from the training sentences (most frequent first, ``<pad>`` = 0, ``<unk>`` = 1), words
missing from the table get U(-0.25, 0.25) vectors and the padding row is zero;
sentences are padded to a fixed length of 40. ``KimCNN`` loads the matrix with
``nn.Embedding.from_pretrained(..., freeze=True)``, permutes the embedded sentence to
``(batch, channels, length)`` and runs parallel ``nn.Conv1d`` filters of widths 3, 4
and 5 (100 maps each) with ReLU and max-over-time pooling, concatenates them, applies
dropout 0.5 and a linear layer.
``nn.CrossEntropyLoss``; Adadelta (lr 1.0, rho 0.95) over the parameters that require
a gradient, as in the paper; after each step the rows of the output layer are
renormalised to an L2 norm of at most 3 (Kim's max-norm constraint); mini-batches of 50
from a shuffled ``DataLoader`` over a ``TensorDataset``. ``main()`` with argparse;
prints the training loss and accuracy and the validation accuracy (``eval()`` +
``no_grad``) each epoch.

Healthy: nndoctor should report no warning and no error.

    python examples/wild/kim_cnn_text.py
    nndoctor check examples/wild/kim_cnn_text.py
"""

import argparse
import random
from collections import Counter

import torch
import torch.nn as nn
from torch.utils.data import DataLoader, TensorDataset

TOPICS = ["sports", "politics", "science", "food"]
N_CUES, N_FILLERS, EMB_DIM, MAX_LEN = 16, 360, 64, 40
SYLLABLES = [
    "ka",
    "lo",
    "mi",
    "ne",
    "ru",
    "sa",
    "ti",
    "vo",
    "be",
    "da",
    "fu",
    "go",
    "he",
    "ji",
    "pa",
    "zu",
]


def make_words(rng: random.Random, n: int, taken: set) -> list[str]:
    words = []
    while len(words) < n:
        word = "".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 3)))
        if word not in taken:
            taken.add(word)
            words.append(word)
    return words


def load_word_vectors(fillers, cues) -> dict[str, torch.Tensor]:
    """The "pretrained" table: a fixed file in real life, so it does not depend on --seed."""
    g = torch.Generator().manual_seed(2014)
    vectors = {}
    for word in fillers:
        vectors[word] = 0.5 * torch.randn(EMB_DIM, generator=g)
    for topic_cues in cues:
        direction = torch.randn(EMB_DIM, generator=g)
        direction = direction / direction.norm() * 2.0
        for word in topic_cues:
            vectors[word] = direction + 0.3 * torch.randn(EMB_DIM, generator=g)
    return vectors


def make_corpus(rng: random.Random, n: int, fillers, cues):
    sentences, labels = [], []
    for _ in range(n):
        label = rng.randrange(len(TOPICS))
        words = [rng.choice(fillers) for _ in range(rng.randint(6, 30))]
        inserts = [rng.choice(cues[label]) for _ in range(rng.randint(2, 3))]
        if rng.random() < 0.3:
            other = rng.choice([t for t in range(len(TOPICS)) if t != label])
            inserts.append(rng.choice(cues[other]))
        for word in inserts:
            words.insert(rng.randint(0, len(words)), word)
        if rng.random() < 0.03:
            label = rng.randrange(len(TOPICS))
        sentences.append(words[:MAX_LEN])
        labels.append(label)
    return sentences, labels


def encode(sentences, stoi) -> torch.Tensor:
    ids = torch.zeros(len(sentences), MAX_LEN, dtype=torch.long)
    for i, words in enumerate(sentences):
        ids[i, : len(words)] = torch.tensor([stoi.get(w, 1) for w in words])
    return ids


class KimCNN(nn.Module):
    def __init__(self, vectors, n_classes, kernel_sizes=(3, 4, 5), n_filters=100, dropout=0.5):
        super().__init__()
        self.embedding = nn.Embedding.from_pretrained(vectors, freeze=True, padding_idx=0)
        self.convs = nn.ModuleList(nn.Conv1d(vectors.size(1), n_filters, k) for k in kernel_sizes)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(n_filters * len(kernel_sizes), n_classes)

    def forward(self, x):
        x = self.embedding(x)  # (batch, length, emb)
        x = x.permute(0, 2, 1)  # (batch, emb, length) for Conv1d
        pooled = [torch.relu(conv(x)).max(dim=2).values for conv in self.convs]
        return self.fc(self.dropout(torch.cat(pooled, dim=1)))


def main():
    parser = argparse.ArgumentParser(description="Kim CNN-static sentence classifier")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=50)
    parser.add_argument("--lr", type=float, default=1.0)
    parser.add_argument("--n-train", type=int, default=6000)
    parser.add_argument("--n-val", type=int, default=1000)
    parser.add_argument("--max-norm", type=float, default=3.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.manual_seed(args.seed)

    lex_rng = random.Random(7)  # the language itself is fixed, like the vector file
    taken = set()
    fillers = make_words(lex_rng, N_FILLERS, taken)
    cues = [make_words(lex_rng, N_CUES, taken) for _ in TOPICS]
    word_vectors = load_word_vectors(fillers, cues)

    rng = random.Random(args.seed)
    train_sents, train_labels = make_corpus(rng, args.n_train, fillers, cues)
    val_sents, val_labels = make_corpus(rng, args.n_val, fillers, cues)

    counts = Counter(w for words in train_sents for w in words)
    itos = ["<pad>", "<unk>"] + [w for w, _ in counts.most_common()]
    stoi = {w: i for i, w in enumerate(itos)}
    vectors = torch.empty(len(itos), EMB_DIM).uniform_(-0.25, 0.25)
    vectors[0] = 0.0
    for i, word in enumerate(itos):
        if word in word_vectors:
            vectors[i] = word_vectors[word]
    print(f"vocabulary {len(itos)} words, {sum(w in word_vectors for w in itos)} with vectors")

    train_set = TensorDataset(encode(train_sents, stoi), torch.tensor(train_labels))
    val_x, val_y = encode(val_sents, stoi), torch.tensor(val_labels)
    train_loader = DataLoader(train_set, batch_size=args.batch_size, shuffle=True)

    model = KimCNN(vectors, len(TOPICS))
    criterion = nn.CrossEntropyLoss()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adadelta(params, lr=args.lr, rho=0.95, eps=1e-6)

    for epoch in range(1, args.epochs + 1):
        model.train()
        total, correct, seen = 0.0, 0, 0
        for x, y in train_loader:
            optimizer.zero_grad()
            logits = model(x)
            loss = criterion(logits, y)
            loss.backward()
            optimizer.step()
            with torch.no_grad():
                model.fc.weight.renorm_(2, 0, args.max_norm)
            total += loss.item() * len(y)
            correct += (logits.argmax(dim=1) == y).sum().item()
            seen += len(y)

        model.eval()
        with torch.no_grad():
            val_acc = (model(val_x).argmax(dim=1) == val_y).float().mean().item()
        print(
            f"epoch {epoch:2d}  loss {total / seen:.4f}  train acc {correct / seen:.3f}  "
            f"val acc {val_acc:.3f}"
        )


if __name__ == "__main__":
    main()
