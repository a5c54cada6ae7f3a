"""Named-entity tagging with a BiLSTM over word embeddings and a char-CNN: healthy.

In the manner of the BiLSTM-CNN sequence-labelling tutorials (Ma and Hovy style, without
the CRF): a generated language stands in for a NER corpus. Sentences of filler words
contain person, location and organisation names of one or two words, tagged in the BIO
scheme (``O``, ``B-PER``, ``I-PER``, ``B-LOC``, ...; ``O`` is about three quarters of the
tokens). Names are spelt with class-specific endings (``-son``, ``-ia``, ``-corp``, ...),
and some are announced by cue words ("mr", "in", "at"); the validation sentences use
names never seen in training, which the word embedding maps to ``<unk>`` and only the
characters can tell apart. ``NERDataset`` returns word ids, char ids and tag ids; the
``collate_fn`` pads words with 0, characters with 0 and tags with -100. ``BiLSTMTagger``
concatenates an ``nn.Embedding(padding_idx=0)`` word vector with a char-CNN vector (char
embedding, ``Conv1d``, max over the characters) per word, runs a bidirectional
``nn.LSTM(batch_first=True)`` and a dropout and a linear layer to the tag logits.
``nn.CrossEntropyLoss(ignore_index=-100)`` over ``logits.view(-1, n_tags)`` and
``tags.view(-1)``; Adam; ``clip_grad_norm_``; ``DataLoader``s; ``main()`` with argparse.
Prints the training loss and the validation token accuracy (padding excluded) and the
accuracy on the name tokens each epoch.

Healthy: nndoctor should report no warning and no error.

    python examples/wild/bilstm_tagger.py
    nndoctor check examples/wild/bilstm_tagger.py
"""

import argparse
import random

import torch
import torch.nn as nn
from torch.nn.utils.rnn import pad_sequence
from torch.utils.data import DataLoader, Dataset

TAGS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG"]
ENDINGS = {"PER": ["son", "ez", "ova"], "LOC": ["ia", "burg", "stan"], "ORG": ["corp", "tech", "ink"]}
CUES = {"PER": ["mr", "mrs", "dr"], "LOC": ["in", "near", "from"], "ORG": ["at", "joined", "for"]}
LETTERS = "abcdefghijklmnoprstuvw"
CHARS = "<pad>", "<unk>", *sorted(set(LETTERS + "".join(e for es in ENDINGS.values() for e in es) + "xyzq"))
CHAR_IDS = {c: i for i, c in enumerate(CHARS)}
MAX_WORD_LEN = 12


def random_stem(rng: random.Random) -> str:
    return "".join(rng.choice(LETTERS) for _ in range(rng.randint(2, 5)))


def make_lexicon(rng: random.Random, n_names: int) -> dict[str, list[str]]:
    # a third of the names have a neutral ending: only a cue word or memory tells their class
    return {
        kind: [random_stem(rng) + rng.choice([*ends, "an", "el", "or"]) for _ in range(n_names)]
        for kind, ends in ENDINGS.items()
    }


def make_sentences(n: int, rng: random.Random, lexicon, fillers):
    sentences = []
    for _ in range(n):
        words, tags = [], []
        length = rng.randint(6, 24)
        while len(words) < length:
            if rng.random() < 0.22:
                kind = rng.choice(list(ENDINGS))
                if rng.random() < 0.6:
                    words.append(rng.choice(CUES[kind]))
                    tags.append("O")
                for i in range(rng.choice([1, 1, 2])):
                    words.append(rng.choice(lexicon[kind]))
                    tags.append(("B-" if i == 0 else "I-") + kind)
            else:
                words.append(rng.choice(fillers))
                tags.append("O")
        sentences.append((words, tags))
    return sentences


class NERDataset(Dataset):
    def __init__(self, sentences, word_to_ix) -> None:
        self.items = []
        for words, tags in sentences:
            word_ids = torch.tensor([word_to_ix.get(w, 1) for w in words])
            char_ids = torch.zeros(len(words), MAX_WORD_LEN, dtype=torch.long)
            for i, w in enumerate(words):
                ids = [CHAR_IDS.get(c, 1) for c in w[:MAX_WORD_LEN]]
                char_ids[i, : len(ids)] = torch.tensor(ids)
            tag_ids = torch.tensor([TAGS.index(t) for t in tags])
            self.items.append((word_ids, char_ids, tag_ids))

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, idx):
        return self.items[idx]


def collate_fn(batch):
    words, chars, tags = zip(*batch, strict=True)
    words = pad_sequence(words, batch_first=True, padding_value=0)
    chars = pad_sequence(chars, batch_first=True, padding_value=0)
    tags = pad_sequence(tags, batch_first=True, padding_value=-100)
    return words, chars, tags


class CharCNN(nn.Module):
    def __init__(self, n_chars: int, char_dim: int = 16, out_dim: int = 32) -> None:
        super().__init__()
        self.embedding = nn.Embedding(n_chars, char_dim, padding_idx=0)
        self.conv = nn.Conv1d(char_dim, out_dim, kernel_size=3, padding=1)

    def forward(self, chars):  # (batch, seq, max_word_len)
        b, s, w = chars.shape
        x = self.embedding(chars.view(b * s, w)).transpose(1, 2)  # (b*s, char_dim, w)
        x = torch.relu(self.conv(x)).max(dim=2).values
        return x.view(b, s, -1)


class BiLSTMTagger(nn.Module):
    def __init__(self, vocab_size, n_chars, n_tags, word_dim=50, hidden_dim=64, dropout=0.3) -> None:
        super().__init__()
        self.word_embeds = nn.Embedding(vocab_size, word_dim, padding_idx=0)
        self.char_cnn = CharCNN(n_chars)
        self.lstm = nn.LSTM(word_dim + 32, hidden_dim, batch_first=True, bidirectional=True)
        self.dropout = nn.Dropout(dropout)
        self.hidden2tag = nn.Linear(2 * hidden_dim, n_tags)

    def forward(self, words, chars):
        embeds = torch.cat([self.word_embeds(words), self.char_cnn(chars)], dim=-1)
        lstm_out, _ = self.lstm(self.dropout(embeds))
        return self.hidden2tag(self.dropout(lstm_out))


def evaluate(model, loader):
    model.eval()
    correct = total = name_correct = name_total = 0
    with torch.no_grad():
        for words, chars, tags in loader:
            pred = model(words, chars).argmax(dim=-1)
            mask = tags != -100
            names = mask & (tags != 0)
            correct += ((pred == tags) & mask).sum().item()
            total += mask.sum().item()
            name_correct += ((pred == tags) & names).sum().item()
            name_total += names.sum().item()
    return correct / total, name_correct / name_total


def main():
    parser = argparse.ArgumentParser(description="BiLSTM-CNN named-entity tagger")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--clip", type=float, default=5.0)
    parser.add_argument("--word-dropout", type=float, default=0.25)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    rng = random.Random(args.seed)

    fillers = [random_stem(rng) for _ in range(300)]
    train_sents = make_sentences(3000, rng, make_lexicon(rng, 150), fillers)
    val_sents = make_sentences(500, rng, make_lexicon(rng, 30), fillers)  # unseen names

    word_to_ix = {"<pad>": 0, "<unk>": 1}
    for words, _ in train_sents:
        for w in words:
            word_to_ix.setdefault(w, len(word_to_ix))
    train_loader = DataLoader(
        NERDataset(train_sents, word_to_ix), batch_size=args.batch_size, shuffle=True, collate_fn=collate_fn
    )
    val_loader = DataLoader(NERDataset(val_sents, word_to_ix), batch_size=250, collate_fn=collate_fn)

    model = BiLSTMTagger(len(word_to_ix), len(CHARS), len(TAGS))
    loss_function = nn.CrossEntropyLoss(ignore_index=-100)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)

    for epoch in range(1, args.epochs + 1):
        model.train()
        total_loss = 0.0
        for words, chars, tags in train_loader:
            # word dropout: some known words become <unk>, so the char-CNN learns to tag them
            unk = (torch.rand(words.shape) < args.word_dropout) & (words > 1)
            words = words.masked_fill(unk, 1)
            model.zero_grad()
            tag_scores = model(words, chars)
            loss = loss_function(tag_scores.view(-1, len(TAGS)), tags.view(-1))
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), args.clip)
            optimizer.step()
            total_loss += loss.item()
        acc, name_acc = evaluate(model, val_loader)
        print(
            f"epoch {epoch:2d}: train loss {total_loss / len(train_loader):.4f} | "
            f"val token accuracy {100 * acc:.1f}% | on names {100 * name_acc:.1f}%"
        )


if __name__ == "__main__":
    main()
