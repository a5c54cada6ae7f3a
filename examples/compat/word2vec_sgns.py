"""Skip-gram word2vec with negative sampling and sparse embeddings: healthy.

In the manner of the popular PyTorch word2vec re-implementations: a generated corpus
(sentences about animals, foods and places, so that words of one kind share their
contexts) gives (centre, context) pairs within a window of 2; negatives are drawn from
the unigram distribution raised to 3/4. ``SkipGramModel`` holds two ``nn.Embedding``
tables with ``sparse=True`` (centre vectors initialised uniformly in +-0.5/dim,
context vectors at zero, as in the original C code) and computes its own loss in
``forward``: ``-logsigmoid(u.v) - sum logsigmoid(-u.v_neg)``, averaged over the batch.
``optim.SparseAdam``, a ``DataLoader`` over the pairs, ``main()`` with argparse.
Prints the loss and how often a word's nearest neighbour is of its own kind.

Healthy: nndoctor should report no warning and no error.

    python examples/compat/word2vec_sgns.py
    nndoctor check examples/compat/word2vec_sgns.py
"""

import argparse
import random

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

KINDS = {
    "animal": ["cat", "dog", "horse", "goat", "sheep", "fox", "owl", "mouse"],
    "food": ["bread", "cheese", "apple", "soup", "rice", "pear", "cake", "fish"],
    "place": ["city", "village", "forest", "beach", "market", "harbour", "valley", "castle"],
}
TEMPLATES = {
    "animal": ["the {} runs across the field", "a {} sleeps in the barn", "the farmer feeds the {}"],
    "food": ["we eat {} for dinner", "she cooks the {} slowly", "a plate of warm {} on the table"],
    "place": ["they travel to the {}", "the road leads to the {}", "we walk around the old {}"],
}


def make_corpus(sentences: int, seed: int) -> list[list[str]]:
    rng = random.Random(seed)
    out = []
    for _ in range(sentences):
        kind = rng.choice(list(KINDS))
        out.append(rng.choice(TEMPLATES[kind]).format(rng.choice(KINDS[kind])).split())
    return out


class SkipGramModel(nn.Module):
    def __init__(self, emb_size: int, emb_dimension: int) -> None:
        super().__init__()
        self.u_embeddings = nn.Embedding(emb_size, emb_dimension, sparse=True)
        self.v_embeddings = nn.Embedding(emb_size, emb_dimension, sparse=True)
        initrange = 0.5 / emb_dimension
        nn.init.uniform_(self.u_embeddings.weight.data, -initrange, initrange)
        nn.init.constant_(self.v_embeddings.weight.data, 0)

    def forward(self, pos_u, pos_v, neg_v):
        emb_u = self.u_embeddings(pos_u)
        emb_v = self.v_embeddings(pos_v)
        emb_neg_v = self.v_embeddings(neg_v)

        score = torch.sum(torch.mul(emb_u, emb_v), dim=1)
        score = torch.clamp(score, max=10, min=-10)
        score = -F.logsigmoid(score)

        neg_score = torch.bmm(emb_neg_v, emb_u.unsqueeze(2)).squeeze()
        neg_score = torch.clamp(neg_score, max=10, min=-10)
        neg_score = -torch.sum(F.logsigmoid(-neg_score), dim=1)

        return torch.mean(score + neg_score)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dim", type=int, default=32)
    parser.add_argument("--window", type=int, default=2)
    parser.add_argument("--negatives", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.manual_seed(args.seed)

    corpus = make_corpus(4000, args.seed)
    word2id: dict[str, int] = {}
    for sent in corpus:
        for w in sent:
            word2id.setdefault(w, len(word2id))
    counts = torch.zeros(len(word2id))
    centres, contexts = [], []
    for sent in corpus:
        ids = [word2id[w] for w in sent]
        for i, c in enumerate(ids):
            counts[c] += 1
            for j in range(max(0, i - args.window), min(len(ids), i + args.window + 1)):
                if j != i:
                    centres.append(c)
                    contexts.append(ids[j])
    noise = counts.pow(0.75)
    noise /= noise.sum()
    loader = DataLoader(TensorDataset(torch.tensor(centres), torch.tensor(contexts)),
                        batch_size=args.batch_size, shuffle=True)

    model = SkipGramModel(len(word2id), args.dim)
    optimizer = torch.optim.SparseAdam(list(model.parameters()), lr=args.lr)
    for epoch in range(args.epochs):
        total, batches = 0.0, 0
        for pos_u, pos_v in loader:
            neg_v = torch.multinomial(noise, pos_u.size(0) * args.negatives, replacement=True).view(pos_u.size(0), -1)
            optimizer.zero_grad()
            loss = model(pos_u, pos_v, neg_v)
            loss.backward()
            optimizer.step()
            total, batches = total + loss.item(), batches + 1
        with torch.no_grad():
            words = [w for kind in KINDS.values() for w in kind]
            vecs = F.normalize(model.u_embeddings.weight[[word2id[w] for w in words]], dim=1)
            sims = vecs @ vecs.T - 2 * torch.eye(len(words))
            kind_of = torch.arange(len(words)) // 8
            same = (kind_of[sims.argmax(1)] == kind_of).float().mean().item()
        print(f"epoch {epoch + 1}: loss {total / batches:.4f}, nearest neighbour of the same kind {same:.2f}")


if __name__ == "__main__":
    main()
