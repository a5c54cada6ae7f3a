"""Toy translation with a GRU encoder and a Bahdanau attention decoder: healthy.

In the manner of the PyTorch tutorial "NLP From Scratch: Translation with a Sequence to
Sequence Network and Attention", without its French-English files: a small source
grammar (determiner, up to two adjectives and a noun as subject, a verb, an object of the
same shape, an optional adverb) is generated in code and "translated" by a fixed rule
with reordering: every word maps to its own target word, the object comes before the
verb, and inside a noun phrase the noun comes first, then the adjectives in reverse
order, then the determiner. A ``Lang`` class builds the ``word2index`` / ``index2word``
vocabularies with ``SOS_token = 0``, ``EOS_token = 1`` and a padding index 2; sentences
end with EOS and are padded to ``MAX_LENGTH`` into a ``TensorDataset`` served by a
shuffled ``DataLoader`` (batches of 64). ``EncoderRNN``: embedding, dropout and a
``GRU(batch_first=True)``. ``AttnDecoderRNN``: one ``forward_step`` per target position,
the query being the decoder's hidden state, ``BahdanauAttention`` (additive scores
``Va(tanh(Wa(query) + Ua(keys)))`` with padded source positions masked out, softmax over
the source positions, ``bmm`` for the context), the context concatenated to the embedded
input of a ``GRU``, a linear output layer and ``F.log_softmax`` over the target
vocabulary. Teacher forcing with a ratio of 0.5, drawn per batch: either the true
previous target word or the decoder's own detached greedy guess is fed back. The loss is
``nn.NLLLoss(ignore_index=PAD_token)`` over the flattened log-probabilities; two Adam
optimizers, ``encoder_optimizer`` and ``decoder_optimizer``, zeroed and stepped together
in ``train_epoch``. Held-out pairs are decoded greedily (no teacher forcing): token
accuracy and the share of sentences translated exactly. ``main()`` with argparse; prints
the training loss and the greedy-decoding scores after every epoch.

Healthy: nndoctor should report no warning and no error.

    python examples/wild/bahdanau_gru_translate.py
    nndoctor check examples/wild/bahdanau_gru_translate.py
"""

import argparse
import random

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

SOS_token, EOS_token, PAD_token = 0, 1, 2
MAX_LENGTH = 11  # 10 words at most, then EOS

DETERMINERS = {"the": "le", "a": "un", "every": "chaque", "no": "nul"}
ADJECTIVES = {
    "big": "grand",
    "small": "petit",
    "red": "rouge",
    "green": "vert",
    "old": "vieux",
    "young": "jeune",
    "happy": "gai",
    "quiet": "calme",
}
NOUNS = {
    "dog": "chien",
    "cat": "chat",
    "bird": "oiseau",
    "horse": "cheval",
    "child": "enfant",
    "farmer": "fermier",
    "fox": "renard",
    "mouse": "souris",
    "teacher": "maitre",
    "king": "roi",
}
VERBS = {
    "sees": "voit",
    "likes": "aime",
    "follows": "suit",
    "finds": "trouve",
    "calls": "appelle",
    "hears": "entend",
    "helps": "aide",
    "watches": "regarde",
}
ADVERBS = {"today": "aujourdhui", "often": "souvent", "again": "encore", "slowly": "lentement"}
DICTIONARY = {**DETERMINERS, **ADJECTIVES, **NOUNS, **VERBS, **ADVERBS}


class Lang:
    def __init__(self, name):
        self.name = name
        self.word2index = {}
        self.index2word = {SOS_token: "SOS", EOS_token: "EOS", PAD_token: "PAD"}
        self.n_words = 3

    def addSentence(self, sentence):
        for word in sentence.split(" "):
            self.addWord(word)

    def addWord(self, word):
        if word not in self.word2index:
            self.word2index[word] = self.n_words
            self.index2word[self.n_words] = word
            self.n_words += 1


def random_noun_phrase(rng):
    n_adj = rng.choice([0, 0, 1, 1, 2])
    return (
        [rng.choice(list(DETERMINERS))],
        rng.sample(list(ADJECTIVES), n_adj),
        rng.choice(list(NOUNS)),
    )


def translate_noun_phrase(det, adjs, noun):
    return [DICTIONARY[noun]] + [DICTIONARY[a] for a in reversed(adjs)] + [DICTIONARY[det[0]]]


def random_pair(rng):
    subj, obj = random_noun_phrase(rng), random_noun_phrase(rng)
    verb = rng.choice(list(VERBS))
    adverb = [rng.choice(list(ADVERBS))] if rng.random() < 0.4 else []
    src = subj[0] + subj[1] + [subj[2], verb] + obj[0] + obj[1] + [obj[2]] + adverb
    tgt = (
        translate_noun_phrase(*subj)
        + translate_noun_phrase(*obj)
        + [DICTIONARY[verb]]
        + [DICTIONARY[a] for a in adverb]
    )
    return " ".join(src), " ".join(tgt)


def prepareData(n_pairs, rng):
    input_lang, output_lang = Lang("eng"), Lang("tgt")
    for word, translation in DICTIONARY.items():
        input_lang.addWord(word)
        output_lang.addWord(translation)
    pairs = [random_pair(rng) for _ in range(n_pairs)]
    return input_lang, output_lang, pairs


def indexesFromSentence(lang, sentence):
    return [lang.word2index[word] for word in sentence.split(" ")]


def tensorsFromPairs(input_lang, output_lang, pairs):
    n = len(pairs)
    input_ids = torch.full((n, MAX_LENGTH), PAD_token, dtype=torch.long)
    target_ids = torch.full((n, MAX_LENGTH), PAD_token, dtype=torch.long)
    for idx, (inp, tgt) in enumerate(pairs):
        inp_ids = indexesFromSentence(input_lang, inp) + [EOS_token]
        tgt_ids = indexesFromSentence(output_lang, tgt) + [EOS_token]
        input_ids[idx, : len(inp_ids)] = torch.tensor(inp_ids)
        target_ids[idx, : len(tgt_ids)] = torch.tensor(tgt_ids)
    return input_ids, target_ids


class EncoderRNN(nn.Module):
    def __init__(self, input_size, hidden_size, dropout_p=0.1):
        super().__init__()
        self.hidden_size = hidden_size
        self.embedding = nn.Embedding(input_size, hidden_size)
        self.gru = nn.GRU(hidden_size, hidden_size, batch_first=True)
        self.dropout = nn.Dropout(dropout_p)

    def forward(self, input):
        embedded = self.dropout(self.embedding(input))
        output, hidden = self.gru(embedded)
        return output, hidden


class BahdanauAttention(nn.Module):
    def __init__(self, hidden_size):
        super().__init__()
        self.Wa = nn.Linear(hidden_size, hidden_size)
        self.Ua = nn.Linear(hidden_size, hidden_size)
        self.Va = nn.Linear(hidden_size, 1)

    def forward(self, query, keys, mask):
        # query (batch, 1, hidden), keys (batch, src_len, hidden), mask (batch, src_len)
        scores = self.Va(torch.tanh(self.Wa(query) + self.Ua(keys)))
        scores = scores.squeeze(2).unsqueeze(1)  # (batch, 1, src_len)
        scores = scores.masked_fill(~mask.unsqueeze(1), float("-inf"))
        weights = F.softmax(scores, dim=-1)
        context = torch.bmm(weights, keys)
        return context, weights


class AttnDecoderRNN(nn.Module):
    def __init__(self, hidden_size, output_size, dropout_p=0.1):
        super().__init__()
        self.embedding = nn.Embedding(output_size, hidden_size)
        self.attention = BahdanauAttention(hidden_size)
        self.gru = nn.GRU(2 * hidden_size, hidden_size, batch_first=True)
        self.out = nn.Linear(hidden_size, output_size)
        self.dropout = nn.Dropout(dropout_p)

    def forward(self, encoder_outputs, encoder_hidden, src_mask, target_tensor=None):
        batch_size = encoder_outputs.size(0)
        decoder_input = torch.full((batch_size, 1), SOS_token, dtype=torch.long)
        decoder_hidden = encoder_hidden
        decoder_outputs, attentions = [], []

        for i in range(MAX_LENGTH):
            decoder_output, decoder_hidden, attn_weights = self.forward_step(
                decoder_input, decoder_hidden, encoder_outputs, src_mask
            )
            decoder_outputs.append(decoder_output)
            attentions.append(attn_weights)
            if target_tensor is not None:
                decoder_input = target_tensor[:, i].unsqueeze(1)  # teacher forcing
            else:
                _, topi = decoder_output.topk(1)
                decoder_input = topi.squeeze(-1).detach()  # its own guess

        decoder_outputs = torch.cat(decoder_outputs, dim=1)
        decoder_outputs = F.log_softmax(decoder_outputs, dim=-1)
        attentions = torch.cat(attentions, dim=1)
        return decoder_outputs, decoder_hidden, attentions

    def forward_step(self, input, hidden, encoder_outputs, src_mask):
        embedded = self.dropout(self.embedding(input))
        query = hidden.permute(1, 0, 2)
        context, attn_weights = self.attention(query, encoder_outputs, src_mask)
        input_gru = torch.cat((embedded, context), dim=2)
        output, hidden = self.gru(input_gru, hidden)
        output = self.out(output)
        return output, hidden, attn_weights


def train_epoch(
    dataloader,
    encoder,
    decoder,
    encoder_optimizer,
    decoder_optimizer,
    criterion,
    teacher_forcing_ratio,
):
    total_loss = 0.0
    for input_tensor, target_tensor in dataloader:
        encoder_optimizer.zero_grad()
        decoder_optimizer.zero_grad()

        src_mask = input_tensor != PAD_token
        encoder_outputs, encoder_hidden = encoder(input_tensor)
        use_teacher_forcing = random.random() < teacher_forcing_ratio
        decoder_outputs, _, _ = decoder(
            encoder_outputs,
            encoder_hidden,
            src_mask,
            target_tensor if use_teacher_forcing else None,
        )

        loss = criterion(
            decoder_outputs.view(-1, decoder_outputs.size(-1)),
            target_tensor.view(-1),
        )
        loss.backward()

        encoder_optimizer.step()
        decoder_optimizer.step()
        total_loss += loss.item()
    return total_loss / len(dataloader)


@torch.no_grad()
def evaluate(encoder, decoder, input_ids, target_ids):
    encoder.eval()
    decoder.eval()
    src_mask = input_ids != PAD_token
    encoder_outputs, encoder_hidden = encoder(input_ids)
    decoder_outputs, _, _ = decoder(encoder_outputs, encoder_hidden, src_mask)
    predicted = decoder_outputs.argmax(dim=-1)
    encoder.train()
    decoder.train()
    # positions up to and including EOS count; after the EOS the prediction is ignored
    valid = target_ids != PAD_token
    correct = (predicted == target_ids) & valid
    token_acc = correct.sum().item() / valid.sum().item()
    exact = (correct | ~valid).all(dim=1).float().mean().item()
    return token_acc, exact


def main():
    parser = argparse.ArgumentParser(description="GRU seq2seq with Bahdanau attention")
    parser.add_argument("--n-pairs", type=int, default=6000)
    parser.add_argument("--n-test", type=int, default=500)
    parser.add_argument("--hidden-size", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--lr", type=float, default=0.001)
    parser.add_argument("--teacher-forcing-ratio", type=float, default=0.5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    random.seed(args.seed)
    torch.manual_seed(args.seed)
    rng = random.Random(args.seed)

    input_lang, output_lang, pairs = prepareData(args.n_pairs + args.n_test, rng)
    input_ids, target_ids = tensorsFromPairs(input_lang, output_lang, pairs)
    train_data = TensorDataset(input_ids[: args.n_pairs], target_ids[: args.n_pairs])
    train_dataloader = DataLoader(train_data, batch_size=args.batch_size, shuffle=True)
    test_inputs, test_targets = input_ids[args.n_pairs :], target_ids[args.n_pairs :]
    print(f"{len(pairs)} pairs, e.g. '{pairs[0][0]}' -> '{pairs[0][1]}'")

    encoder = EncoderRNN(input_lang.n_words, args.hidden_size)
    decoder = AttnDecoderRNN(args.hidden_size, output_lang.n_words)
    encoder_optimizer = torch.optim.Adam(encoder.parameters(), lr=args.lr)
    decoder_optimizer = torch.optim.Adam(decoder.parameters(), lr=args.lr)
    criterion = nn.NLLLoss(ignore_index=PAD_token)

    for epoch in range(1, args.epochs + 1):
        loss = train_epoch(
            train_dataloader,
            encoder,
            decoder,
            encoder_optimizer,
            decoder_optimizer,
            criterion,
            args.teacher_forcing_ratio,
        )
        token_acc, exact = evaluate(encoder, decoder, test_inputs, test_targets)
        print(
            f"epoch {epoch:2d}  loss {loss:.4f}  "
            f"greedy token accuracy {token_acc:.3f}  exact match {exact:.3f}"
        )


if __name__ == "__main__":
    main()
