"""SASRec: self-attentive sequential recommendation with sampled negatives: healthy.

In the manner of the PyTorch SASRec implementation by pmixer (Kang & McAuley's model):
the interaction sequences of 3,000 users over 500 items are generated with sequential
structure: the items fall into 20 genres, every item has three likely successors in its
genre, and a user either follows a successor of the last item (70% of the time) or jumps
to a popular item of one of their two favourite genres; sequences are 8 to 40 items long.
As in the original data partition, each user's last item is held out for testing, the one
before it for validation and the rest is for training; sequences are left-padded to a
maximum length of 30 with item 0 as padding.

``SASRec`` is an ``nn.Module``: item embeddings (``padding_idx=0``, scaled by
sqrt(hidden)) plus learned position embeddings (position 0 for padding), dropout, then two
blocks of causal self-attention (``nn.MultiheadAttention`` on time-major tensors with an
upper-triangular boolean mask, layer norm on the queries, residual) and a point-wise
feed-forward of two 1x1 ``Conv1d``; padding positions are zeroed by the timeline mask
after the embedding and after every block. All weight matrices are Xavier-normal
initialised, then the padding rows re-zeroed. Each training sequence gives, for every
position, the next item as positive and one random item the user never interacted with as
negative; the logits are dot products with the item embeddings and the loss is
``nn.BCEWithLogitsLoss`` on both, taken only where the position is not padding. Adam (lr
1e-3, betas (0.9, 0.98)), batches of 128 users, 20 epochs. Top-level functions and
``main()`` with argparse; prints the loss every 5 epochs with the validation HR@10, then
the test HR@10 and NDCG@10 (the held-out item ranked against 100 sampled negatives) next
to those of ranking the candidates by popularity.

Healthy: nndoctor should report no warning and no error.

    python examples/wild/sasrec_next_item.py
    nndoctor check examples/wild/sasrec_next_item.py
"""

import argparse

import numpy as np
import torch
import torch.nn as nn


def generate_sequences(n_users, n_items, rng, n_genres=20):
    """Item ids 1..n_items; a Markov chain of successors inside genres plus genre jumps."""
    items = np.arange(1, n_items + 1)
    genre = items % n_genres
    popularity = 1.0 / (1.0 + rng.permutation(n_items)) ** 0.7
    successors = np.zeros((n_items + 1, 3), dtype=np.int64)
    for i in items:
        same = items[genre == genre[i - 1]]
        successors[i] = rng.choice(same[same != i], size=3, replace=False)

    sequences = []
    for _ in range(n_users):
        favourite = rng.choice(n_genres, size=2, replace=False)
        pool = items[np.isin(genre, favourite)]
        weights = popularity[pool - 1] / popularity[pool - 1].sum()
        length = rng.integers(8, 41)
        seq = [rng.choice(pool, p=weights)]
        while len(seq) < length:
            if rng.random() < 0.7:
                nxt = successors[seq[-1], rng.choice(3, p=[0.6, 0.3, 0.1])]
            else:
                nxt = rng.choice(pool, p=weights)
            seq.append(int(nxt))
        sequences.append(seq)
    return sequences


def data_partition(sequences):
    user_train = [seq[:-2] for seq in sequences]
    user_valid = [seq[-2] for seq in sequences]
    user_test = [seq[-1] for seq in sequences]
    return user_train, user_valid, user_test


def random_neq(low, high, s, rng):
    t = rng.integers(low, high)
    while t in s:
        t = rng.integers(low, high)
    return t


def sample_batch(user_train, users, maxlen, itemnum, rng):
    """For each user: the input sequence, the next item at every position and a negative."""
    seqs = np.zeros((len(users), maxlen), dtype=np.int64)
    pos = np.zeros((len(users), maxlen), dtype=np.int64)
    neg = np.zeros((len(users), maxlen), dtype=np.int64)
    for row, user in enumerate(users):
        history = user_train[user]
        nxt = history[-1]
        idx = maxlen - 1
        ts = set(history)
        for i in reversed(history[:-1]):
            seqs[row, idx] = i
            pos[row, idx] = nxt
            neg[row, idx] = random_neq(1, itemnum + 1, ts, rng)
            nxt = i
            idx -= 1
            if idx == -1:
                break
    return seqs, pos, neg


class PointWiseFeedForward(nn.Module):
    def __init__(self, hidden_units, dropout_rate):
        super().__init__()
        self.conv1 = nn.Conv1d(hidden_units, hidden_units, kernel_size=1)
        self.dropout1 = nn.Dropout(p=dropout_rate)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv1d(hidden_units, hidden_units, kernel_size=1)
        self.dropout2 = nn.Dropout(p=dropout_rate)

    def forward(self, inputs):
        outputs = self.dropout1(self.relu(self.conv1(inputs.transpose(-1, -2))))
        outputs = self.dropout2(self.conv2(outputs)).transpose(-1, -2)
        return outputs + inputs


class SASRec(nn.Module):
    def __init__(self, item_num, maxlen, hidden_units=48, num_blocks=2, num_heads=1, dropout=0.2):
        super().__init__()
        self.item_emb = nn.Embedding(item_num + 1, hidden_units, padding_idx=0)
        self.pos_emb = nn.Embedding(maxlen + 1, hidden_units, padding_idx=0)
        self.emb_dropout = nn.Dropout(p=dropout)
        self.attention_layernorms = nn.ModuleList()
        self.attention_layers = nn.ModuleList()
        self.forward_layernorms = nn.ModuleList()
        self.forward_layers = nn.ModuleList()
        for _ in range(num_blocks):
            self.attention_layernorms.append(nn.LayerNorm(hidden_units, eps=1e-8))
            self.attention_layers.append(nn.MultiheadAttention(hidden_units, num_heads, dropout))
            self.forward_layernorms.append(nn.LayerNorm(hidden_units, eps=1e-8))
            self.forward_layers.append(PointWiseFeedForward(hidden_units, dropout))
        self.last_layernorm = nn.LayerNorm(hidden_units, eps=1e-8)

    def log2feats(self, log_seqs):
        seqs = self.item_emb(log_seqs)
        seqs = seqs * self.item_emb.embedding_dim**0.5
        positions = torch.arange(1, log_seqs.shape[1] + 1).expand_as(log_seqs)
        positions = positions * (log_seqs != 0)
        seqs = seqs + self.pos_emb(positions)
        seqs = self.emb_dropout(seqs)

        timeline_mask = log_seqs == 0
        seqs = seqs * ~timeline_mask.unsqueeze(-1)

        tl = seqs.shape[1]
        attention_mask = ~torch.tril(torch.ones((tl, tl), dtype=torch.bool))
        for i in range(len(self.attention_layers)):
            seqs = torch.transpose(seqs, 0, 1)
            Q = self.attention_layernorms[i](seqs)
            mha_outputs, _ = self.attention_layers[i](Q, seqs, seqs, attn_mask=attention_mask)
            seqs = Q + mha_outputs
            seqs = torch.transpose(seqs, 0, 1)

            seqs = self.forward_layernorms[i](seqs)
            seqs = self.forward_layers[i](seqs)
            seqs = seqs * ~timeline_mask.unsqueeze(-1)

        return self.last_layernorm(seqs)

    def forward(self, log_seqs, pos_seqs, neg_seqs):
        log_feats = self.log2feats(log_seqs)
        pos_embs = self.item_emb(pos_seqs)
        neg_embs = self.item_emb(neg_seqs)
        pos_logits = (log_feats * pos_embs).sum(dim=-1)
        neg_logits = (log_feats * neg_embs).sum(dim=-1)
        return pos_logits, neg_logits

    def predict(self, log_seqs, item_indices):
        log_feats = self.log2feats(log_seqs)
        final_feat = log_feats[:, -1, :]
        item_embs = self.item_emb(item_indices)
        return item_embs.matmul(final_feat.unsqueeze(-1)).squeeze(-1)


def candidates_and_inputs(user_train, user_valid, user_target, maxlen, itemnum, rng, test):
    """Left-padded input sequences and [target] + 100 negatives the user never saw."""
    seqs = np.zeros((len(user_train), maxlen), dtype=np.int64)
    items = np.zeros((len(user_train), 101), dtype=np.int64)
    for u, history in enumerate(user_train):
        history = history + [user_valid[u]] if test else history
        tail = history[-maxlen:]
        seqs[u, maxlen - len(tail) :] = tail
        rated = set(history) | {user_target[u]}
        items[u, 0] = user_target[u]
        for j in range(1, 101):
            items[u, j] = random_neq(1, itemnum + 1, rated, rng)
    return torch.from_numpy(seqs), torch.from_numpy(items)


def hit_rate_ndcg(scores):
    """scores[:, 0] is the held-out item; its rank among the 101 candidates."""
    rank = (scores[:, 1:] > scores[:, :1]).sum(dim=1).float()
    hit = rank < 10
    ndcg = torch.where(hit, 1.0 / torch.log2(rank + 2), torch.zeros_like(rank))
    return hit.float().mean().item(), ndcg.mean().item()


@torch.no_grad()
def evaluate(model, seqs, items):
    model.eval()
    scores = model.predict(seqs, items)
    model.train()
    return hit_rate_ndcg(scores)


def main():
    parser = argparse.ArgumentParser(description="SASRec next-item recommendation")
    parser.add_argument("--n-users", type=int, default=3000)
    parser.add_argument("--n-items", type=int, default=500)
    parser.add_argument("--maxlen", type=int, default=30)
    parser.add_argument("--hidden-units", type=int, default=48)
    parser.add_argument("--num-blocks", type=int, default=2)
    parser.add_argument("--dropout-rate", type=float, default=0.2)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--num-epochs", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    sequences = generate_sequences(args.n_users, args.n_items, rng)
    user_train, user_valid, user_test = data_partition(sequences)
    itemnum = args.n_items
    print(f"{len(sequences)} users, {itemnum} items, {sum(map(len, sequences))} interactions")

    valid_seqs, valid_items = candidates_and_inputs(
        user_train, user_valid, user_valid, args.maxlen, itemnum, rng, test=False
    )
    test_seqs, test_items = candidates_and_inputs(
        user_train, user_valid, user_test, args.maxlen, itemnum, rng, test=True
    )

    model = SASRec(
        itemnum, args.maxlen, args.hidden_units, args.num_blocks, dropout=args.dropout_rate
    )
    for _, param in model.named_parameters():
        if param.dim() > 1:
            nn.init.xavier_normal_(param.data)
    model.pos_emb.weight.data[0, :] = 0
    model.item_emb.weight.data[0, :] = 0

    bce_criterion = nn.BCEWithLogitsLoss()
    adam_optimizer = torch.optim.Adam(model.parameters(), lr=args.lr, betas=(0.9, 0.98))

    model.train()
    num_batch = (len(user_train) + args.batch_size - 1) // args.batch_size
    for epoch in range(1, args.num_epochs + 1):
        order = rng.permutation(len(user_train))
        total = 0.0
        for step in range(num_batch):
            users = order[step * args.batch_size : (step + 1) * args.batch_size]
            seq, pos, neg = sample_batch(user_train, users, args.maxlen, itemnum, rng)
            seq, pos, neg = torch.from_numpy(seq), torch.from_numpy(pos), torch.from_numpy(neg)
            pos_logits, neg_logits = model(seq, pos, neg)
            pos_labels, neg_labels = torch.ones_like(pos_logits), torch.zeros_like(neg_logits)
            adam_optimizer.zero_grad()
            indices = pos != 0
            loss = bce_criterion(pos_logits[indices], pos_labels[indices])
            loss = loss + bce_criterion(neg_logits[indices], neg_labels[indices])
            loss.backward()
            adam_optimizer.step()
            total += loss.item()
        if epoch % 5 == 0:
            hr, _ = evaluate(model, valid_seqs, valid_items)
            print(f"epoch {epoch:2d}  loss {total / num_batch:.4f}  valid HR@10 {hr:.4f}")

    hr, ndcg = evaluate(model, test_seqs, test_items)
    counts = torch.bincount(torch.tensor([i for s in user_train for i in s]), minlength=itemnum + 1)
    pop_hr, pop_ndcg = hit_rate_ndcg(counts[test_items].float())
    print(f"final: test HR@10 {hr:.4f}  NDCG@10 {ndcg:.4f}")
    print(f"popularity: test HR@10 {pop_hr:.4f}  NDCG@10 {pop_ndcg:.4f}")


if __name__ == "__main__":
    main()
