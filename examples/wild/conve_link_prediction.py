"""ConvE link prediction with 1-N scoring on a generated knowledge graph: healthy.

In the manner of the ConvE authors' code (Dettmers et al. 2018, "Convolutional 2D Knowledge
Graph Embeddings", ``model.py`` and ``main.py``) and of the pykeen / CompGCN ports of it: the
knowledge graph is generated in the script. 800 entities each have a hidden type (one of 8)
and a hidden group (one of 40). Each of 12 relations is a rule: it applies to heads of 6 of
the types, sends each type to a fixed tail type and each group to a fixed tail group (a
hidden permutation per relation), and links a head to the entities (at most 3) of that tail
type and group. A held-out triple can therefore be predicted from the other triples of its
head and tail, once their type and group have been learned. The 15,000 or so triples are
split 90/10 into training and held-out test triples. As in ConvE, every training triple
(h, r, t) also gives the reciprocal triple (t, r + 12, h), and the training examples are the
distinct queries (e1, rel) with the multi-hot vector of all their answers (``sr2o``); shuffled
hand-made batches of 128 queries.

``ConvE`` has entity and relation ``nn.Embedding`` tables of dimension 64 (Xavier-normal
init), reshaped to 8x8 images and stacked into a 16x8 input, ``BatchNorm2d`` and dropout on
it, a 3x3 ``Conv2d`` to 32 feature maps with ``BatchNorm2d``, ReLU and ``Dropout2d``, a
projection back to 64 dimensions with dropout, ``BatchNorm1d`` and ReLU, then scores
against every entity embedding at once (1-N scoring) plus a per-entity bias, through a
sigmoid. The loss is ``nn.BCELoss`` over all 800 entities against the multi-hot targets
smoothed as in ConvE, ``(1 - 0.1) * e2_multi + 1 / num_entities``; Adam (lr 0.01), all
three dropouts at 0.1 (the graph is small), 30 epochs. A ``main()`` with argparse; each
epoch prints the mean loss, and every 5 epochs the filtered MRR and Hits@10 of the held-out
triples (tail and head prediction, the head through the reciprocal relation, in
``model.eval()`` under ``torch.no_grad()``); at the end the same against a random ranking of
the entities. The ranking metrics stay at chance for the first 5 to 8 epochs while the loss
creeps down, then rise.

Healthy: nndoctor should report no warning and no error.

    python examples/wild/conve_link_prediction.py
    nndoctor check examples/wild/conve_link_prediction.py
"""

import argparse
from collections import defaultdict

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.init import xavier_normal_


def generate_graph(num_entities, num_relations, num_types, num_groups, rng):
    """Triples (h, r, t) that follow one hidden rule per relation."""
    types = rng.integers(num_types, size=num_entities)
    groups = rng.integers(num_groups, size=num_entities)
    triples = set()
    for r in range(num_relations):
        domain = rng.choice(num_types, size=6, replace=False)
        type_map = rng.permutation(num_types)
        group_map = rng.permutation(num_groups)
        for h in np.flatnonzero(np.isin(types, domain)):
            tails = np.flatnonzero((types == type_map[types[h]]) & (groups == group_map[groups[h]]))
            tails = tails[tails != h]
            if len(tails) > 3:
                tails = rng.choice(tails, size=3, replace=False)
            for t in tails:
                triples.add((int(h), r, int(t)))
    triples = np.array(sorted(triples))
    return triples[rng.permutation(len(triples))]


class ConvE(nn.Module):
    def __init__(self, args, num_entities, num_relations):
        super().__init__()
        self.emb_e = nn.Embedding(num_entities, args.embedding_dim)
        self.emb_rel = nn.Embedding(num_relations, args.embedding_dim)
        self.inp_drop = nn.Dropout(args.input_drop)
        self.hidden_drop = nn.Dropout(args.hidden_drop)
        self.feature_map_drop = nn.Dropout2d(args.feat_drop)
        self.loss = nn.BCELoss()
        self.emb_dim1 = args.embedding_shape1
        self.emb_dim2 = args.embedding_dim // self.emb_dim1

        self.conv1 = nn.Conv2d(1, 32, (3, 3), 1, 0, bias=True)
        self.bn0 = nn.BatchNorm2d(1)
        self.bn1 = nn.BatchNorm2d(32)
        self.bn2 = nn.BatchNorm1d(args.embedding_dim)
        self.register_parameter("b", nn.Parameter(torch.zeros(num_entities)))
        hidden_size = 32 * (2 * self.emb_dim1 - 2) * (self.emb_dim2 - 2)
        self.fc = nn.Linear(hidden_size, args.embedding_dim)

    def init(self):
        xavier_normal_(self.emb_e.weight.data)
        xavier_normal_(self.emb_rel.weight.data)

    def forward(self, e1, rel):
        e1_embedded = self.emb_e(e1).view(-1, 1, self.emb_dim1, self.emb_dim2)
        rel_embedded = self.emb_rel(rel).view(-1, 1, self.emb_dim1, self.emb_dim2)

        stacked_inputs = torch.cat([e1_embedded, rel_embedded], 2)

        stacked_inputs = self.bn0(stacked_inputs)
        x = self.inp_drop(stacked_inputs)
        x = self.conv1(x)
        x = self.bn1(x)
        x = F.relu(x)
        x = self.feature_map_drop(x)
        x = x.view(x.shape[0], -1)
        x = self.fc(x)
        x = self.hidden_drop(x)
        x = self.bn2(x)
        x = F.relu(x)
        x = torch.mm(x, self.emb_e.weight.transpose(1, 0))
        x += self.b.expand_as(x)
        pred = torch.sigmoid(x)

        return pred


def build_queries(triples, num_relations):
    """ConvE's 1-N examples: every (e1, rel) with all its answers, reciprocals included."""
    sr2o = defaultdict(set)
    for h, r, t in triples.tolist():
        sr2o[(h, r)].add(t)
        sr2o[(t, r + num_relations)].add(h)
    return sr2o


def get_label(answer_sets, num_entities):
    e2_multi = torch.zeros(len(answer_sets), num_entities)
    for row, answers in enumerate(answer_sets):
        e2_multi[row, list(answers)] = 1.0
    return e2_multi


@torch.no_grad()
def ranking_and_hits(model, test_triples, all_sr2o, num_relations, num_entities, scorer=None):
    """Filtered MRR and Hits@10 for tail prediction and head prediction (reciprocal)."""
    model.eval()
    ranks = []
    for direction in ("tail", "head"):
        if direction == "tail":
            e1, rel, e2 = test_triples[:, 0], test_triples[:, 1], test_triples[:, 2]
        else:
            e1, rel, e2 = test_triples[:, 2], test_triples[:, 1] + num_relations, test_triples[:, 0]
        for start in range(0, len(e1), 256):
            b_e1, b_rel, b_e2 = (
                e1[start : start + 256],
                rel[start : start + 256],
                e2[start : start + 256],
            )
            pred = model(b_e1, b_rel) if scorer is None else scorer(len(b_e1))
            for i in range(len(b_e1)):
                filt = list(all_sr2o[(int(b_e1[i]), int(b_rel[i]))])
                target_value = pred[i, b_e2[i]].item()
                pred[i, filt] = 0.0
                pred[i, b_e2[i]] = target_value
            _, argsort = torch.sort(pred, 1, descending=True)
            for i in range(len(b_e1)):
                rank = (argsort[i] == b_e2[i]).nonzero()[0, 0].item()
                ranks.append(rank + 1)
    ranks = np.array(ranks, dtype=np.float64)
    return (1.0 / ranks).mean(), (ranks <= 10).mean()


def main():
    parser = argparse.ArgumentParser(description="ConvE link prediction on a generated graph")
    parser.add_argument("--entities", type=int, default=800)
    parser.add_argument("--relations", type=int, default=12)
    parser.add_argument("--types", type=int, default=8)
    parser.add_argument("--groups", type=int, default=40)
    parser.add_argument("--embedding-dim", type=int, default=64)
    parser.add_argument("--embedding-shape1", type=int, default=8)
    parser.add_argument("--input-drop", type=float, default=0.1)
    parser.add_argument("--hidden-drop", type=float, default=0.1)
    parser.add_argument("--feat-drop", type=float, default=0.1)
    parser.add_argument("--label-smoothing", type=float, default=0.1)
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--l2", type=float, default=0.0)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    triples = generate_graph(args.entities, args.relations, args.types, args.groups, rng)
    n_test = len(triples) // 10
    test_triples = torch.from_numpy(triples[:n_test]).long()
    train_sr2o = build_queries(triples[n_test:], args.relations)
    all_sr2o = build_queries(triples, args.relations)
    queries = torch.tensor(list(train_sr2o.keys()), dtype=torch.long)
    targets = get_label(list(train_sr2o.values()), args.entities)
    print(
        f"{len(triples) - n_test} training triples ({len(queries)} 1-N queries with "
        f"reciprocals), {n_test} test triples"
    )

    model = ConvE(args, args.entities, 2 * args.relations)
    model.init()
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr, weight_decay=args.l2)

    n_batches = (len(queries) + args.batch_size - 1) // args.batch_size
    for epoch in range(1, args.epochs + 1):
        model.train()
        perm = torch.randperm(len(queries))
        total_loss = 0.0
        for batch_idx in range(n_batches):
            start = batch_idx * args.batch_size
            idx = perm[start : start + args.batch_size]
            e1 = queries[idx, 0]
            rel = queries[idx, 1]
            e2_multi = targets[idx]
            # label smoothing
            e2_multi = ((1.0 - args.label_smoothing) * e2_multi) + (1.0 / e2_multi.size(1))

            optimizer.zero_grad()
            pred = model.forward(e1, rel)
            loss = model.loss(pred, e2_multi)
            loss.backward()
            optimizer.step()
            total_loss += loss.item()
        line = f"epoch {epoch:3d}: loss {total_loss / n_batches:.5f}"
        if epoch % 5 == 0:
            mrr, hits10 = ranking_and_hits(
                model, test_triples, all_sr2o, args.relations, args.entities
            )
            line += f", test filtered MRR {mrr:.3f}, Hits@10 {hits10:.3f}"
        print(line)

    mrr, hits10 = ranking_and_hits(model, test_triples, all_sr2o, args.relations, args.entities)
    gen = torch.Generator().manual_seed(args.seed)
    rand_mrr, rand_hits10 = ranking_and_hits(
        model,
        test_triples,
        all_sr2o,
        args.relations,
        args.entities,
        scorer=lambda n: torch.rand(n, args.entities, generator=gen),
    )
    print(
        f"final test filtered MRR {mrr:.3f}, Hits@10 {hits10:.3f} "
        f"(random ranking: MRR {rand_mrr:.3f}, Hits@10 {rand_hits10:.3f})"
    )


if __name__ == "__main__":
    main()
