"""Skip-gram word2vec with negative sampling on a generated topical corpus: healthy.

In the manner of the many PyTorch "word2vec SGNS" repositories (Mikolov et al. 2013, the
``SkipGramModel`` with ``u_embeddings`` / ``v_embeddings`` and ``SparseAdam``): the corpus
is generated from a small topic model, a vocabulary of 300 words in which 280 content
words fall into 14 topical clusters of 20 and 20 function words are shared by all topics.
Each sentence (6 to 14 tokens) draws one topic; each token is a function word with
probability 0.35 (Zipfian over the function words), a word of another random topic with
probability 0.10 and otherwise a word of the sentence's topic (Zipfian within the topic),
so words of one cluster co-occur. 4,000 sentences, about 40,000 tokens.

Each epoch the frequent words are subsampled with word2vec's keep probability
``(sqrt(f / t) + 1) * t / f`` (t = 1e-3) and (center, context) pairs are drawn within a
dynamic window (a random size from 1 to 3 for every center). ``SkipGramModel`` holds two
``nn.Embedding(300, 50, sparse=True)`` tables, the input (center) vectors initialised
uniformly in +-0.5/dim and the output (context) vectors at zero; for every pair 5
negatives are drawn with ``torch.multinomial`` from the unigram distribution raised to
the 0.75; the loss is ``-logsigmoid(u . v) - sum_k logsigmoid(-u . v_neg_k)`` averaged over
the batch (scores clamped to +-10), trained by ``torch.optim.SparseAdam`` with batches of
1,024 pairs for 5 epochs and a linearly decaying learning rate. Top-level functions and
``main()`` with argparse; prints the loss every 100 steps and the mean loss per epoch,
then the nearest-neighbour cluster purity of the input embeddings (the share of the 10
cosine nearest neighbours of every content word that belong to its topic) against the
purity of random embeddings.

Healthy: nndoctor should report no warning and no error.

    python examples/wild/word2vec_sgns.py
    nndoctor check examples/wild/word2vec_sgns.py
"""

import argparse

import torch
import torch.nn as nn
import torch.nn.functional as F

N_TOPICS, WORDS_PER_TOPIC, N_FUNCTION = 14, 20, 20
VOCAB_SIZE = N_TOPICS * WORDS_PER_TOPIC + N_FUNCTION


def build_vocab():
    """Function words first, then the content words topic by topic."""
    words = [f"fn{j}" for j in range(N_FUNCTION)]
    words += [f"topic{k}_w{j}" for k in range(N_TOPICS) for j in range(WORDS_PER_TOPIC)]
    topic_of = torch.full((VOCAB_SIZE,), -1, dtype=torch.long)
    topic_of[N_FUNCTION:] = torch.arange(N_TOPICS).repeat_interleave(WORDS_PER_TOPIC)
    return words, topic_of


def generate_corpus(n_sentences, g):
    """Sentences (lists of word ids) from a one-topic-per-sentence model."""
    fn_probs = 1.0 / torch.arange(1, N_FUNCTION + 1).float()
    topic_probs = 1.0 / torch.arange(1, WORDS_PER_TOPIC + 1).float() ** 0.7
    sentences = []
    for _ in range(n_sentences):
        topic = torch.randint(0, N_TOPICS, (1,), generator=g).item()
        length = torch.randint(6, 15, (1,), generator=g).item()
        kind = torch.rand(length, generator=g)
        fn_words = torch.multinomial(fn_probs, length, replacement=True, generator=g)
        own = torch.multinomial(topic_probs, length, replacement=True, generator=g)
        other_topic = torch.randint(0, N_TOPICS, (length,), generator=g)
        topic_words = N_FUNCTION + topic * WORDS_PER_TOPIC + own
        noise_words = N_FUNCTION + other_topic * WORDS_PER_TOPIC + own
        ids = torch.where(kind < 0.35, fn_words, torch.where(kind < 0.45, noise_words, topic_words))
        sentences.append(ids)
    return sentences


def subsample(sentences, word_freq, t=1e-3):
    """word2vec's subsampling of frequent words, redrawn every epoch."""
    keep_prob = ((word_freq / t).sqrt() + 1) * t / word_freq
    kept = []
    for ids in sentences:
        mask = torch.rand(len(ids)) < keep_prob[ids]
        if mask.sum() > 1:
            kept.append(ids[mask])
    return kept


def skipgram_pairs(sentences, window):
    """All (center, context) pairs within a dynamic window, as two aligned tensors."""
    tokens = torch.cat(sentences)
    lengths = torch.tensor([len(s) for s in sentences])
    sent_id = torch.arange(len(sentences)).repeat_interleave(lengths)
    reduced = torch.randint(1, window + 1, (len(tokens),))
    centers, contexts = [], []
    for offset in range(1, window + 1):
        for sign in (-1, 1):
            pos = torch.arange(len(tokens))
            ctx = pos + sign * offset
            valid = (ctx >= 0) & (ctx < len(tokens)) & (reduced >= offset)
            pos, ctx = pos[valid], ctx[valid]
            same = sent_id[pos] == sent_id[ctx]
            centers.append(tokens[pos[same]])
            contexts.append(tokens[ctx[same]])
    return torch.cat(centers), torch.cat(contexts)


class SkipGramModel(nn.Module):
    def __init__(self, vocab_size, emb_dimension):
        super().__init__()
        self.emb_dimension = emb_dimension
        self.u_embeddings = nn.Embedding(vocab_size, emb_dimension, sparse=True)
        self.v_embeddings = nn.Embedding(vocab_size, emb_dimension, sparse=True)

        initrange = 0.5 / self.emb_dimension
        nn.init.uniform_(self.u_embeddings.weight.data, -initrange, initrange)
        nn.init.constant_(self.v_embeddings.weight.data, 0)

    def forward(self, pos_u, pos_v, neg_v):
        emb_u = self.u_embeddings(pos_u)
        emb_v = self.v_embeddings(pos_v)
        emb_neg_v = self.v_embeddings(neg_v)

        score = torch.sum(torch.mul(emb_u, emb_v), dim=1)
        score = torch.clamp(score, max=10, min=-10)
        score = -F.logsigmoid(score)

        neg_score = torch.bmm(emb_neg_v, emb_u.unsqueeze(2)).squeeze(2)
        neg_score = torch.clamp(neg_score, max=10, min=-10)
        neg_score = -torch.sum(F.logsigmoid(-neg_score), dim=1)

        return torch.mean(score + neg_score)


@torch.no_grad()
def cluster_purity(embeddings, topic_of, k=10):
    """Share of the k cosine nearest neighbours of each content word in its own topic."""
    content = topic_of >= 0
    emb = F.normalize(embeddings[content], dim=1)
    topics = topic_of[content]
    sim = emb @ emb.t()
    sim.fill_diagonal_(-2.0)
    neighbours = sim.topk(k, dim=1).indices
    return (topics[neighbours] == topics[:, None]).float().mean().item()


def main():
    parser = argparse.ArgumentParser(description="word2vec skip-gram with negative sampling")
    parser.add_argument("--sentences", type=int, default=4000)
    parser.add_argument("--dim", type=int, default=50)
    parser.add_argument("--window", type=int, default=3)
    parser.add_argument("--negatives", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    g = torch.Generator().manual_seed(args.seed)
    words, topic_of = build_vocab()
    sentences = generate_corpus(args.sentences, g)
    counts = torch.bincount(torch.cat(sentences), minlength=VOCAB_SIZE).float()
    word_freq = counts / counts.sum()
    noise_dist = counts**0.75
    noise_dist = noise_dist / noise_dist.sum()
    top = counts.argsort(descending=True)[:5].tolist()
    print(
        f"{len(sentences)} sentences, {int(counts.sum())} tokens, vocabulary {VOCAB_SIZE}; "
        f"most frequent: {', '.join(words[i] for i in top)}"
    )

    model = SkipGramModel(VOCAB_SIZE, args.dim)
    optimizer = torch.optim.SparseAdam(list(model.parameters()), lr=args.lr)
    pairs_per_epoch = len(skipgram_pairs(subsample(sentences, word_freq), args.window)[0])
    total_steps = args.epochs * (pairs_per_epoch // args.batch_size + 1)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: max(1.0 - step / total_steps, 0.05)
    )

    step = 0
    for epoch in range(1, args.epochs + 1):
        pos_u, pos_v = skipgram_pairs(subsample(sentences, word_freq), args.window)
        perm = torch.randperm(len(pos_u))
        pos_u, pos_v = pos_u[perm], pos_v[perm]
        running, batches = 0.0, 0
        for i in range(0, len(pos_u), args.batch_size):
            u, v = pos_u[i : i + args.batch_size], pos_v[i : i + args.batch_size]
            neg_v = torch.multinomial(noise_dist, len(u) * args.negatives, replacement=True)
            neg_v = neg_v.view(len(u), args.negatives)

            optimizer.zero_grad()
            loss = model(u, v, neg_v)
            loss.backward()
            optimizer.step()
            scheduler.step()

            running += loss.item()
            batches += 1
            step += 1
            if step % 100 == 0:
                print(f"step {step:5d}  loss {loss.item():.4f}")
        print(f"epoch {epoch}  pairs {len(pos_u)}  mean loss {running / batches:.4f}")

    purity = cluster_purity(model.u_embeddings.weight.detach(), topic_of)
    random_purity = cluster_purity(torch.randn(VOCAB_SIZE, args.dim, generator=g), topic_of)
    chance = (WORDS_PER_TOPIC - 1) / (N_TOPICS * WORDS_PER_TOPIC - 1)
    print(f"final: nearest-neighbour topic purity (k=10) {purity:.3f}")
    print(f"final: random embeddings {random_purity:.3f} (chance {chance:.3f})")


if __name__ == "__main__":
    main()
