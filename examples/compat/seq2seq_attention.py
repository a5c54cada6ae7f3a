"""A GRU encoder-decoder with additive attention and teacher forcing: healthy.

In the manner of the PyTorch "translation with a sequence to sequence network and
attention" tutorial, batched: the "languages" are generated, a source sentence of
4-8 word ids is "translated" by mapping every word through a fixed dictionary and
reversing the order, with a few words that translate to two. ``EncoderRNN``
(embedding, dropout, batch-first ``nn.GRU``) reads the padded source;
``AttnDecoderRNN`` decodes one token at a time with Bahdanau attention over the
encoder outputs (padding masked out), feeding back either the true previous token
(teacher forcing, with probability 0.5 per batch) or its own prediction, and returns
``log_softmax``; ``nn.NLLLoss(ignore_index=PAD)``. Two Adam optimisers, one per
network, both stepped every batch. Functions ``train_epoch`` / ``evaluate``, argparse.
Prints the loss and the exact-match accuracy of greedy decoding.

Healthy: nndoctor should report no warning and no error.

    python examples/compat/seq2seq_attention.py
    nndoctor check examples/compat/seq2seq_attention.py
"""

import argparse
import random

import torch
import torch.nn as nn
import torch.nn.functional as F

PAD, SOS, EOS = 0, 1, 2
SRC_WORDS, TGT_WORDS = 40, 50


def make_pairs(n: int, seed: int) -> list[tuple[list[int], list[int]]]:
    rng = random.Random(1234)  # the dictionary is fixed across seeds
    dictionary = {w: [rng.randrange(3, TGT_WORDS)] for w in range(3, SRC_WORDS)}
    for w in rng.sample(range(3, SRC_WORDS), 6):
        dictionary[w] = dictionary[w] + [rng.randrange(3, TGT_WORDS)]
    rng = random.Random(seed)
    pairs = []
    for _ in range(n):
        src = [rng.randrange(3, SRC_WORDS) for _ in range(rng.randint(4, 8))]
        tgt = [t for w in reversed(src) for t in dictionary[w]]
        pairs.append((src + [EOS], tgt + [EOS]))
    return pairs


def pad_batch(seqs: list[list[int]]) -> torch.Tensor:
    out = torch.full((len(seqs), max(map(len, seqs))), PAD, dtype=torch.long)
    for i, s in enumerate(seqs):
        out[i, : len(s)] = torch.tensor(s)
    return out


class EncoderRNN(nn.Module):
    def __init__(self, input_size: int, hidden_size: int, dropout_p: float = 0.1) -> None:
        super().__init__()
        self.embedding = nn.Embedding(input_size, hidden_size, padding_idx=PAD)
        self.gru = nn.GRU(hidden_size, hidden_size, batch_first=True)
        self.dropout = nn.Dropout(dropout_p)

    def forward(self, input):
        embedded = self.dropout(self.embedding(input))
        output, hidden = self.gru(embedded)
        return output, hidden


class BahdanauAttention(nn.Module):
    def __init__(self, hidden_size: int) -> None:
        super().__init__()
        self.Wa = nn.Linear(hidden_size, hidden_size)
        self.Ua = nn.Linear(hidden_size, hidden_size)
        self.Va = nn.Linear(hidden_size, 1)

    def forward(self, query, keys, mask):
        scores = self.Va(torch.tanh(self.Wa(query) + self.Ua(keys)))  # (B, S, 1)
        scores = scores.squeeze(2).unsqueeze(1).masked_fill(~mask.unsqueeze(1), float("-inf"))  # (B, 1, S)
        weights = F.softmax(scores, dim=-1)
        context = torch.bmm(weights, keys)
        return context, weights


class AttnDecoderRNN(nn.Module):
    def __init__(self, hidden_size: int, output_size: int, dropout_p: float = 0.1) -> None:
        super().__init__()
        self.embedding = nn.Embedding(output_size, hidden_size)
        self.attention = BahdanauAttention(hidden_size)
        self.gru = nn.GRU(2 * hidden_size, hidden_size, batch_first=True)
        self.out = nn.Linear(hidden_size, output_size)
        self.dropout = nn.Dropout(dropout_p)

    def forward(self, encoder_outputs, encoder_hidden, mask, max_len, target_tensor=None, teacher_forcing=False):
        batch_size = encoder_outputs.size(0)
        decoder_input = torch.full((batch_size, 1), SOS, dtype=torch.long)
        decoder_hidden = encoder_hidden
        decoder_outputs = []
        for i in range(max_len):
            embedded = self.dropout(self.embedding(decoder_input))
            query = decoder_hidden.permute(1, 0, 2)
            context, _ = self.attention(query, encoder_outputs, mask)
            output, decoder_hidden = self.gru(torch.cat((embedded, context), dim=2), decoder_hidden)
            output = self.out(output)
            decoder_outputs.append(output)
            if teacher_forcing and target_tensor is not None:
                decoder_input = target_tensor[:, i].unsqueeze(1)  # Teacher forcing: feed the target as the next input
            else:
                decoder_input = output.argmax(-1).detach()  # use its own prediction as the next input
        decoder_outputs = torch.cat(decoder_outputs, dim=1)
        return F.log_softmax(decoder_outputs, dim=-1)


def train_epoch(pairs, encoder, decoder, encoder_optimizer, decoder_optimizer, criterion, batch_size):
    random.shuffle(pairs)
    total = 0.0
    for start in range(0, len(pairs) - batch_size + 1, batch_size):
        chunk = pairs[start : start + batch_size]
        input_tensor = pad_batch([s for s, _ in chunk])
        target_tensor = pad_batch([t for _, t in chunk])

        encoder_optimizer.zero_grad()
        decoder_optimizer.zero_grad()
        encoder_outputs, encoder_hidden = encoder(input_tensor)
        decoder_outputs = decoder(encoder_outputs, encoder_hidden, input_tensor != PAD, target_tensor.size(1),
                                  target_tensor, teacher_forcing=random.random() < 0.5)
        loss = criterion(decoder_outputs.view(-1, decoder_outputs.size(-1)), target_tensor.view(-1))
        loss.backward()
        encoder_optimizer.step()
        decoder_optimizer.step()
        total += loss.item()
    return total / (len(pairs) // batch_size)


def evaluate(pairs, encoder, decoder) -> float:
    encoder.eval()
    decoder.eval()
    with torch.no_grad():
        input_tensor = pad_batch([s for s, _ in pairs])
        target_tensor = pad_batch([t for _, t in pairs])
        encoder_outputs, encoder_hidden = encoder(input_tensor)
        out = decoder(encoder_outputs, encoder_hidden, input_tensor != PAD, target_tensor.size(1)).argmax(-1)
    encoder.train()
    decoder.train()
    keep = target_tensor != PAD
    return ((out == target_tensor) | ~keep).all(dim=1).float().mean().item()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    random.seed(args.seed)
    torch.manual_seed(args.seed)

    train_pairs = make_pairs(2000, seed=2 * args.seed)
    val_pairs = make_pairs(300, seed=2 * args.seed + 1)
    encoder = EncoderRNN(SRC_WORDS, args.hidden)
    decoder = AttnDecoderRNN(args.hidden, TGT_WORDS)
    encoder_optimizer = torch.optim.Adam(encoder.parameters(), lr=args.lr)
    decoder_optimizer = torch.optim.Adam(decoder.parameters(), lr=args.lr)
    criterion = nn.NLLLoss(ignore_index=PAD)
    for epoch in range(1, args.epochs + 1):
        loss = train_epoch(train_pairs, encoder, decoder, encoder_optimizer, decoder_optimizer, criterion,
                           args.batch_size)
        print(f"epoch {epoch}: loss {loss:.4f}, exact match {evaluate(val_pairs, encoder, decoder):.3f}")


if __name__ == "__main__":
    main()
