"""Named-entity tagging with a batched BiLSTM-CRF: healthy.

In the manner of the PyTorch tutorial "Advanced: Making Dynamic Decisions and the Bi-LSTM
CRF", written for mini-batches: a generated language stands in for a NER corpus.
Sentences of 5 to 25-odd filler words contain person, location and organisation mentions of
one to three words, tagged in the BIO scheme (``B-PER``, ``I-PER``, ``B-LOC``, ...,
``O`` on about three quarters of the tokens). A mention is a head word of its type,
sometimes followed by type-specific tail words; a fifth of the head words are ambiguous
between persons and locations, and only the context tells them apart (a cue word before
the mention: "mr", "in", "at", ...; or a tail word after it), while cues are left out of
a third of the mentions. As in the tutorial the tag set carries ``<START>`` and
``<STOP>``, and ``transitions[i, j]`` is the score of going to tag ``i`` from tag ``j``
(transitions into ``<START>`` and out of ``<STOP>`` pinned at -10000). ``BiLSTM_CRF``:
``nn.Embedding(padding_idx=0)``, a bidirectional ``nn.LSTM(batch_first=True)``, a linear
layer to the emission scores, and the CRF written by hand over a padding mask: the
negative log-likelihood is the log partition function (the forward algorithm, a
``logsumexp`` per step, kept unchanged past each sentence's end) minus the gold path's
score, averaged over the batch; Viterbi decoding with back-pointers. ``NERDataset`` and
a padding ``collate_fn`` (words and tags padded with 0, mask from the lengths) feed a
shuffled ``DataLoader`` of 32 sentences; SGD with momentum 0.9 and weight decay 1e-4,
``clip_grad_norm_(5.0)``. ``main()`` with argparse; prints the training loss and the
validation entity-level precision, recall and F1 (exact spans and types) each epoch.

Healthy: nndoctor should report no warning and no error.

    python examples/wild/bilstm_crf.py
    nndoctor check examples/wild/bilstm_crf.py
"""

import argparse
import random

import torch
import torch.nn as nn
from torch.nn.utils.rnn import pad_sequence
from torch.utils.data import DataLoader, Dataset

START_TAG, STOP_TAG = "<START>", "<STOP>"
TAGS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG", START_TAG, STOP_TAG]
TAG_TO_IX = {t: i for i, t in enumerate(TAGS)}
CUES = {
    "PER": ["mr", "mrs", "dr", "told"],
    "LOC": ["in", "near", "to"],
    "ORG": ["at", "joined", "by"],
}
TAILS = {"PER": ["jr", "sr"], "LOC": ["city", "river", "bay"], "ORG": ["inc", "group", "bank"]}
LETTERS = "abdefgiklmnoprstuvz"


def make_lexicon(rng: random.Random, n_heads: int = 40, n_fillers: int = 300):
    taken = {w for ws in (*CUES.values(), *TAILS.values()) for w in ws}

    def new_word():
        while True:
            word = "".join(rng.choice(LETTERS) for _ in range(rng.randint(3, 7)))
            if word not in taken:
                taken.add(word)
                return word

    heads = {kind: [new_word() for _ in range(n_heads)] for kind in CUES}
    shared = [new_word() for _ in range(n_heads // 4)]  # both persons and places
    heads["PER"] += shared
    heads["LOC"] += shared
    fillers = [new_word() for _ in range(n_fillers)]
    return heads, fillers


def make_sentences(rng: random.Random, n: int, heads, fillers):
    data = []
    for _ in range(n):
        words, tags = [], []
        length = rng.randint(5, 25)
        while len(words) < length:
            if rng.random() < 0.18:
                kind = rng.choice(list(CUES))
                if rng.random() < 0.65:
                    words.append(rng.choice(CUES[kind]))
                    tags.append("O")
                mention = [rng.choice(heads[kind])]
                mention += [rng.choice(TAILS[kind]) for _ in range(rng.choice([0, 0, 1, 2]))]
                words += mention
                tags += [f"B-{kind}"] + [f"I-{kind}"] * (len(mention) - 1)
            else:
                words.append(rng.choice(fillers))
                tags.append("O")
        data.append((words, tags))
    return data


class NERDataset(Dataset):
    def __init__(self, data, word_to_ix):
        self.data = data
        self.word_to_ix = word_to_ix

    def __len__(self):
        return len(self.data)

    def __getitem__(self, idx):
        words, tags = self.data[idx]
        word_ids = torch.tensor([self.word_to_ix.get(w, 1) for w in words])
        tag_ids = torch.tensor([TAG_TO_IX[t] for t in tags])
        return word_ids, tag_ids


def collate_fn(batch):
    words, tags = zip(*batch, strict=True)
    lengths = torch.tensor([len(w) for w in words])
    words = pad_sequence(words, batch_first=True, padding_value=0)
    tags = pad_sequence(tags, batch_first=True, padding_value=0)
    mask = torch.arange(words.size(1))[None, :] < lengths[:, None]
    return words, tags, mask


class BiLSTM_CRF(nn.Module):
    def __init__(self, vocab_size, tag_to_ix, embedding_dim, hidden_dim):
        super().__init__()
        self.tag_to_ix = tag_to_ix
        self.tagset_size = len(tag_to_ix)
        self.word_embeds = nn.Embedding(vocab_size, embedding_dim, padding_idx=0)
        self.lstm = nn.LSTM(
            embedding_dim, hidden_dim // 2, num_layers=1, bidirectional=True, batch_first=True
        )
        self.hidden2tag = nn.Linear(hidden_dim, self.tagset_size)
        # transitions[i, j]: score of transitioning *to* i *from* j
        self.transitions = nn.Parameter(torch.randn(self.tagset_size, self.tagset_size))
        self.transitions.data[tag_to_ix[START_TAG], :] = -10000
        self.transitions.data[:, tag_to_ix[STOP_TAG]] = -10000

    def _get_lstm_features(self, sentences):
        lstm_out, _ = self.lstm(self.word_embeds(sentences))
        return self.hidden2tag(lstm_out)  # (batch, seq, tags)

    def _forward_alg(self, feats, mask):
        batch_size = feats.size(0)
        forward_var = torch.full((batch_size, self.tagset_size), -10000.0)
        forward_var[:, self.tag_to_ix[START_TAG]] = 0.0
        for t in range(feats.size(1)):
            # (batch, next, prev): previous scores + transition prev -> next + emission of next
            scores = forward_var[:, None, :] + self.transitions[None] + feats[:, t, :, None]
            next_var = torch.logsumexp(scores, dim=2)
            forward_var = torch.where(mask[:, t, None], next_var, forward_var)
        terminal_var = forward_var + self.transitions[self.tag_to_ix[STOP_TAG]]
        return torch.logsumexp(terminal_var, dim=1)

    def _score_sentence(self, feats, tags, mask):
        batch_size = feats.size(0)
        start = torch.full((batch_size, 1), self.tag_to_ix[START_TAG], dtype=torch.long)
        prev_tags = torch.cat([start, tags[:, :-1]], dim=1)
        emit = feats.gather(2, tags.unsqueeze(2)).squeeze(2)
        trans = self.transitions[tags, prev_tags]
        score = ((emit + trans) * mask).sum(dim=1)
        last_tags = tags.gather(1, (mask.sum(dim=1) - 1).unsqueeze(1)).squeeze(1)
        return score + self.transitions[self.tag_to_ix[STOP_TAG], last_tags]

    def neg_log_likelihood(self, sentences, tags, mask):
        feats = self._get_lstm_features(sentences)
        forward_score = self._forward_alg(feats, mask)
        gold_score = self._score_sentence(feats, tags, mask)
        return (forward_score - gold_score).mean()

    def _viterbi_decode(self, feats, mask):
        batch_size = feats.size(0)
        forward_var = torch.full((batch_size, self.tagset_size), -10000.0)
        forward_var[:, self.tag_to_ix[START_TAG]] = 0.0
        backpointers = []
        for t in range(feats.size(1)):
            scores = forward_var[:, None, :] + self.transitions[None]
            best_scores, best_prev = scores.max(dim=2)
            backpointers.append(best_prev)
            forward_var = torch.where(mask[:, t, None], best_scores + feats[:, t], forward_var)
        terminal_var = forward_var + self.transitions[self.tag_to_ix[STOP_TAG]]
        best_last = terminal_var.argmax(dim=1)
        lengths = mask.sum(dim=1).tolist()
        paths = []
        for b in range(batch_size):
            best_tag = best_last[b].item()
            path = [best_tag]
            for t in range(lengths[b] - 1, 0, -1):
                best_tag = backpointers[t][b, best_tag].item()
                path.append(best_tag)
            paths.append(path[::-1])
        return paths

    def forward(self, sentences, mask):
        return self._viterbi_decode(self._get_lstm_features(sentences), mask)


def entity_spans(tags):
    spans, start, kind = set(), None, None
    for i, tag in enumerate([*tags, "O"]):
        if start is not None and not (tag.startswith("I-") and tag[2:] == kind):
            spans.add((start, i, kind))
            start = None
        if tag.startswith("B-") or (tag.startswith("I-") and start is None):
            start, kind = i, tag[2:]
    return spans


@torch.no_grad()
def evaluate(model, loader):
    model.eval()
    n_pred = n_gold = n_hit = 0
    for words, tags, mask in loader:
        for path, gold, n in zip(model(words, mask), tags, mask.sum(dim=1).tolist(), strict=True):
            pred = entity_spans([TAGS[i] for i in path])
            true = entity_spans([TAGS[i] for i in gold[:n].tolist()])
            n_pred, n_gold, n_hit = n_pred + len(pred), n_gold + len(true), n_hit + len(pred & true)
    precision, recall = n_hit / max(n_pred, 1), n_hit / max(n_gold, 1)
    return precision, recall, 2 * precision * recall / max(precision + recall, 1e-9)


def main():
    parser = argparse.ArgumentParser(description="batched BiLSTM-CRF NER tagger")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--embedding-dim", type=int, default=32)
    parser.add_argument("--hidden-dim", type=int, default=64)
    parser.add_argument("--n-train", type=int, default=3000)
    parser.add_argument("--n-val", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    rng = random.Random(args.seed)

    heads, fillers = make_lexicon(rng)
    train_data = make_sentences(rng, args.n_train, heads, fillers)
    val_data = make_sentences(rng, args.n_val, heads, fillers)
    word_to_ix = {"<pad>": 0, "<unk>": 1}
    for words, _ in train_data:
        for word in words:
            word_to_ix.setdefault(word, len(word_to_ix))

    train_loader = DataLoader(
        NERDataset(train_data, word_to_ix),
        batch_size=args.batch_size,
        shuffle=True,
        collate_fn=collate_fn,
    )
    val_loader = DataLoader(NERDataset(val_data, word_to_ix), batch_size=250, collate_fn=collate_fn)

    model = BiLSTM_CRF(len(word_to_ix), TAG_TO_IX, args.embedding_dim, args.hidden_dim)
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9, weight_decay=1e-4)

    for epoch in range(1, args.epochs + 1):
        model.train()
        total, batches = 0.0, 0
        for words, tags, mask in train_loader:
            model.zero_grad()
            loss = model.neg_log_likelihood(words, tags, mask)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            optimizer.step()
            total, batches = total + loss.item(), batches + 1
        precision, recall, f1 = evaluate(model, val_loader)
        print(
            f"epoch {epoch:2d}  loss {total / batches:.3f}  val precision {precision:.3f}  "
            f"recall {recall:.3f}  F1 {f1:.3f}"
        )


if __name__ == "__main__":
    main()
