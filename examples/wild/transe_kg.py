"""TransE knowledge-graph embedding on a generated graph: healthy.

In the manner of the usual PyTorch ports of "Translating Embeddings for Modeling
Multi-relational Data" (Bordes et al. 2013): the knowledge graph is generated in the
script. 1,000 entities have hidden positions in an 8-D latent space and each of 16
relations is a hidden translation of that space; a triple (h, r, t) links a head h to
one of the three entities nearest to its translated position, so the relations are
consistent but not one-to-one. The 14,400 distinct triples are split 90/10 into
training and held-out test triples. The model ``TransE`` has entity and relation
``nn.Embedding`` tables of dimension 50 initialised uniformly in +-6/sqrt(d), the
relations normalised once at initialisation; before each batch the entity embeddings
are renormalised to unit L2 norm in place. Negative triples are made by corrupting the
head or the tail of each positive (one or the other with equal probability) with a
random entity. The score is the L1 distance ||h + r - t||, and
``nn.MarginRankingLoss(margin=1)`` asks each positive to be at least 1 closer than its
negative. Training goes through a shuffled ``DataLoader`` over a ``TensorDataset`` of
the training triples, batches of 128, plain SGD (lr 0.01) on the loss summed over the
batch. A ``main()`` with argparse; every 10 epochs it prints the mean loss, the share
of batch triples still violating the margin, and the filtered mean rank and Hits@10 of
the test triples (head and tail prediction averaged over the 1,000 entities; a random
ranking gives mean rank 500, Hits@10 0.01).

Healthy: nndoctor should report no warning and no error.

    python examples/wild/transe_kg.py
    nndoctor check examples/wild/transe_kg.py
"""

import argparse

import numpy as np
import torch
import torch.nn as nn
from torch.utils.data import DataLoader, TensorDataset


def generate_graph(n_entities, n_relations, heads_per_relation, rng):
    """Triples (h, r, t): t is one of the 3 entities nearest to h's translated position."""
    latent = rng.normal(size=(n_entities, 8))
    shifts = rng.normal(scale=0.6, size=(n_relations, 8))
    triples = set()
    for r in range(n_relations):
        heads = rng.choice(n_entities, size=heads_per_relation, replace=False)
        target = latent[heads] + shifts[r]
        dist = ((target[:, None, :] - latent[None, :, :]) ** 2).sum(-1)
        dist[np.arange(len(heads)), heads] = np.inf
        nearest = np.argsort(dist, axis=1)[:, :3]
        for h, candidates in zip(heads, nearest, strict=True):
            triples.add((int(h), r, int(candidates[rng.integers(3)])))
    triples = np.array(sorted(triples))
    return triples[rng.permutation(len(triples))]


class TransE(nn.Module):
    def __init__(self, entity_count, relation_count, dim=50, norm=1, margin=1.0):
        super().__init__()
        self.entity_count = entity_count
        self.dim = dim
        self.norm = norm
        self.entities_emb = self._init_entity_emb(entity_count)
        self.relations_emb = self._init_relation_emb(relation_count)
        self.criterion = nn.MarginRankingLoss(margin=margin, reduction="sum")

    def _init_entity_emb(self, count):
        emb = nn.Embedding(count, self.dim)
        bound = 6 / np.sqrt(self.dim)
        emb.weight.data.uniform_(-bound, bound)
        return emb

    def _init_relation_emb(self, count):
        emb = nn.Embedding(count, self.dim)
        bound = 6 / np.sqrt(self.dim)
        emb.weight.data.uniform_(-bound, bound)
        emb.weight.data.div_(emb.weight.data.norm(p=2, dim=1, keepdim=True))
        return emb

    def normalize_entities(self):
        w = self.entities_emb.weight.data
        w.div_(w.norm(p=2, dim=1, keepdim=True))

    def distance(self, triplets):
        heads = self.entities_emb(triplets[:, 0])
        relations = self.relations_emb(triplets[:, 1])
        tails = self.entities_emb(triplets[:, 2])
        return (heads + relations - tails).norm(p=self.norm, dim=1)

    def forward(self, positive_triplets, negative_triplets):
        positive_distances = self.distance(positive_triplets)
        negative_distances = self.distance(negative_triplets)
        target = torch.tensor([-1], dtype=torch.float)
        loss = self.criterion(positive_distances, negative_distances, target)
        return loss, positive_distances, negative_distances


def corrupt(triplets, entity_count):
    """Replace the head or the tail (each with probability 1/2) by a random entity."""
    head_or_tail = torch.randint(high=2, size=(triplets.size(0),))
    random_entities = torch.randint(high=entity_count, size=(triplets.size(0),))
    broken_heads = torch.where(head_or_tail == 1, random_entities, triplets[:, 0])
    broken_tails = torch.where(head_or_tail == 0, random_entities, triplets[:, 2])
    return torch.stack((broken_heads, triplets[:, 1], broken_tails), dim=1)


@torch.no_grad()
def evaluate(model, test_triples, known):
    """Filtered mean rank and Hits@10, head and tail prediction averaged."""
    ent = model.entities_emb.weight
    rel = model.relations_emb.weight
    ranks = []
    for h, r, t in test_triples.tolist():
        tail_dist = (ent[h] + rel[r] - ent).norm(p=model.norm, dim=1)
        head_dist = (ent + rel[r] - ent[t]).norm(p=model.norm, dim=1)
        for dist, true, others in (
            (tail_dist, t, known["tails"][(h, r)]),
            (head_dist, h, known["heads"][(r, t)]),
        ):
            dist = dist.clone()
            dist[[o for o in others if o != true]] = float("inf")
            ranks.append(int((dist < dist[true]).sum()) + 1)
    ranks = np.array(ranks)
    return ranks.mean(), (ranks <= 10).mean()


def main():
    parser = argparse.ArgumentParser(description="TransE on a generated knowledge graph")
    parser.add_argument("--entities", type=int, default=1000)
    parser.add_argument("--relations", type=int, default=16)
    parser.add_argument("--heads-per-relation", type=int, default=900)
    parser.add_argument("--dim", type=int, default=50)
    parser.add_argument("--norm", type=int, default=1)
    parser.add_argument("--margin", type=float, default=1.0)
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    triples = generate_graph(args.entities, args.relations, args.heads_per_relation, rng)
    n_test = len(triples) // 10
    train_triples = torch.from_numpy(triples[n_test:]).long()
    test_triples = torch.from_numpy(triples[:n_test]).long()
    known = {"tails": {}, "heads": {}}
    for h, r, t in triples.tolist():
        known["tails"].setdefault((h, r), set()).add(t)
        known["heads"].setdefault((r, t), set()).add(h)
    print(f"{len(train_triples)} training and {len(test_triples)} test triples")

    train_loader = DataLoader(
        TensorDataset(train_triples), batch_size=args.batch_size, shuffle=True
    )
    model = TransE(args.entities, args.relations, args.dim, args.norm, args.margin)
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr)

    mean_rank, hits10 = evaluate(model, test_triples, known)
    print(f"before training: filtered MR {mean_rank:.1f}, Hits@10 {hits10:.3f}")
    for epoch in range(1, args.epochs + 1):
        model.train()
        total_loss, violations, seen = 0.0, 0, 0
        for (positive_triples,) in train_loader:
            negative_triples = corrupt(positive_triples, args.entities)

            model.normalize_entities()
            optimizer.zero_grad()
            loss, pd, nd = model(positive_triples, negative_triples)
            loss.backward()
            optimizer.step()

            total_loss += loss.item()
            violations += int((pd + args.margin > nd).sum())
            seen += len(positive_triples)
        if epoch % 10 == 0:
            model.eval()
            mean_rank, hits10 = evaluate(model, test_triples, known)
            print(
                f"epoch {epoch:3d}: loss {total_loss / seen:.4f}, "
                f"margin violations {violations / seen:.3f}, "
                f"filtered MR {mean_rank:.1f}, Hits@10 {hits10:.3f}"
            )


if __name__ == "__main__":
    main()
