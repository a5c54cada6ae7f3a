"""A word-level LSTM language model trained by hand-written SGD: healthy.

In the manner of the classic PyTorch word-language-model example: a corpus of
sentences from a small generated grammar (subject-verb agreement, adjectives,
prepositional phrases) is tokenised into word ids, ``batchify`` cuts it into
``batch_size`` parallel streams laid out sequence-first ``(n_rows, batch)``, and
``get_batch`` reads windows of ``bptt`` rows whose targets are the next words,
flattened. ``RNNModel`` (a custom ``nn.Module``: ``nn.Embedding``, dropout, a
two-layer ``nn.LSTM`` with the default ``batch_first=False``, a linear decoder)
returns log-probabilities for ``nn.NLLLoss``. There is no optimizer object: every
step is ``model.zero_grad(); loss.backward(); clip_grad_norm_``, then
``p.data.add_(p.grad, alpha=-lr)`` for every parameter. The hidden state is carried
from one window to the next, detached by ``repackage_hidden``; the learning rate is
divided by 4 whenever the validation loss stops improving. argparse, ``main()``.
Prints the training and validation perplexity.

Healthy: nndoctor should report no warning and no error.

    python examples/compat/word_lm_lstm.py
    nndoctor check examples/compat/word_lm_lstm.py
"""

import argparse
import math
import random

import torch
import torch.nn as nn

NOUNS = ["dog", "cat", "farmer", "teacher", "child", "bird", "king", "sailor"]
ADJECTIVES = ["old", "small", "happy", "tired", "clever", "quiet"]
VERBS = ["sees", "helps", "follows", "likes", "finds", "calls"]
PLACES = ["the river", "the market", "the hill", "the school", "the forest"]


def noun_phrase(rng: random.Random) -> list[str]:
    words = [rng.choice(["the", "a"])]
    if rng.random() < 0.5:
        words.append(rng.choice(ADJECTIVES))
    return words + [rng.choice(NOUNS)]


def sentence(rng: random.Random) -> list[str]:
    words = noun_phrase(rng) + [rng.choice(VERBS)] + noun_phrase(rng)
    if rng.random() < 0.4:
        words += [rng.choice(["near", "at", "behind"])] + PLACES[rng.randrange(len(PLACES))].split()
    return words + ["<eos>"]


class Corpus:
    """Word ids of a generated training and validation text, sharing one dictionary."""

    def __init__(self, sentences: int, seed: int) -> None:
        rng = random.Random(seed)
        self.word2idx: dict[str, int] = {}
        self.train = self.tokenize([sentence(rng) for _ in range(sentences)])
        self.valid = self.tokenize([sentence(rng) for _ in range(sentences // 10)])

    def tokenize(self, sentences: list[list[str]]) -> torch.Tensor:
        ids = []
        for words in sentences:
            for word in words:
                ids.append(self.word2idx.setdefault(word, len(self.word2idx)))
        return torch.tensor(ids, dtype=torch.long)


def batchify(data: torch.Tensor, bsz: int) -> torch.Tensor:
    # Work out how cleanly we can divide the dataset into bsz parts, then lay each part
    # out as one column: (n_rows, bsz).
    nbatch = data.size(0) // bsz
    data = data.narrow(0, 0, nbatch * bsz)
    data = data.view(bsz, -1).t().contiguous()
    return data


def get_batch(source: torch.Tensor, i: int, bptt: int) -> tuple[torch.Tensor, torch.Tensor]:
    seq_len = min(bptt, len(source) - 1 - i)
    data = source[i : i + seq_len]
    target = source[i + 1 : i + 1 + seq_len].view(-1)
    return data, target


def repackage_hidden(h):
    """Wraps hidden states in new Tensors, to detach them from their history."""
    if isinstance(h, torch.Tensor):
        return h.detach()
    return tuple(repackage_hidden(v) for v in h)


class RNNModel(nn.Module):
    def __init__(self, ntoken: int, ninp: int, nhid: int, nlayers: int, dropout: float) -> None:
        super().__init__()
        self.ntoken = ntoken
        self.drop = nn.Dropout(dropout)
        self.encoder = nn.Embedding(ntoken, ninp)
        self.rnn = nn.LSTM(ninp, nhid, nlayers, dropout=dropout)
        self.decoder = nn.Linear(nhid, ntoken)
        self.nhid, self.nlayers = nhid, nlayers
        initrange = 0.1
        nn.init.uniform_(self.encoder.weight, -initrange, initrange)
        nn.init.zeros_(self.decoder.bias)
        nn.init.uniform_(self.decoder.weight, -initrange, initrange)

    def forward(self, input, hidden):
        emb = self.drop(self.encoder(input))
        output, hidden = self.rnn(emb, hidden)
        output = self.drop(output)
        decoded = self.decoder(output).view(-1, self.ntoken)
        return torch.log_softmax(decoded, dim=1), hidden

    def init_hidden(self, bsz: int):
        weight = next(self.parameters())
        return (weight.new_zeros(self.nlayers, bsz, self.nhid), weight.new_zeros(self.nlayers, bsz, self.nhid))


def evaluate(model: RNNModel, criterion: nn.Module, data_source: torch.Tensor, bptt: int, bsz: int) -> float:
    model.eval()
    total_loss = 0.0
    hidden = model.init_hidden(bsz)
    with torch.no_grad():
        for i in range(0, data_source.size(0) - 1, bptt):
            data, targets = get_batch(data_source, i, bptt)
            output, hidden = model(data, hidden)
            hidden = repackage_hidden(hidden)
            total_loss += len(data) * criterion(output, targets).item()
    return total_loss / (len(data_source) - 1)


def main() -> None:
    parser = argparse.ArgumentParser(description="word-level LSTM language model")
    parser.add_argument("--sentences", type=int, default=6000)
    parser.add_argument("--emsize", type=int, default=64)
    parser.add_argument("--nhid", type=int, default=128)
    parser.add_argument("--nlayers", type=int, default=2)
    parser.add_argument("--lr", type=float, default=20)
    parser.add_argument("--clip", type=float, default=0.25)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--batch_size", type=int, default=20)
    parser.add_argument("--bptt", type=int, default=35)
    parser.add_argument("--dropout", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=1111)
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    corpus = Corpus(args.sentences, seed=args.seed)
    eval_batch_size = 10
    train_data = batchify(corpus.train, args.batch_size)
    val_data = batchify(corpus.valid, eval_batch_size)

    ntokens = len(corpus.word2idx)
    model = RNNModel(ntokens, args.emsize, args.nhid, args.nlayers, args.dropout)
    criterion = nn.NLLLoss()

    lr = args.lr
    best_val_loss = None
    for epoch in range(1, args.epochs + 1):
        model.train()
        total_loss, batches = 0.0, 0
        hidden = model.init_hidden(args.batch_size)
        for i in range(0, train_data.size(0) - 1, args.bptt):
            data, targets = get_batch(train_data, i, args.bptt)
            # Starting each batch, we detach the hidden state from how it was previously produced.
            hidden = repackage_hidden(hidden)
            model.zero_grad()
            output, hidden = model(data, hidden)
            loss = criterion(output, targets)
            loss.backward()

            # `clip_grad_norm` helps prevent the exploding gradient problem in RNNs / LSTMs.
            torch.nn.utils.clip_grad_norm_(model.parameters(), args.clip)
            for p in model.parameters():
                p.data.add_(p.grad, alpha=-lr)
            total_loss += loss.item()
            batches += 1
        val_loss = evaluate(model, criterion, val_data, args.bptt, eval_batch_size)
        print(f"| epoch {epoch:2d} | lr {lr:5.2f} | train ppl {math.exp(total_loss / batches):7.2f} "
              f"| valid ppl {math.exp(val_loss):7.2f}")
        if best_val_loss is None or val_loss < best_val_loss:
            best_val_loss = val_loss
        else:
            # Anneal the learning rate if no improvement has been seen in the validation dataset.
            lr /= 4.0


if __name__ == "__main__":
    main()
