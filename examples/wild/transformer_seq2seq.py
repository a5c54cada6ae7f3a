"""Toy translation with ``nn.Transformer`` in its sequence-first layout: healthy.

In the manner of the PyTorch tutorial "Language Translation with nn.Transformer and
torchtext", without torchtext: a generated source language of 24 words stands in for
Multi30k, and the "translation" is a deterministic transduction: the target sentence is
the source sentence reversed, each word mapped to its own target word by a fixed
permutation. Sentences have 3 to 10 words. Special symbols as in the tutorial (``<unk>``
0, ``<pad>`` 1, ``<bos>`` 2, ``<eos>`` 3); each sentence is wrapped in ``<bos>`` ...
``<eos>`` and a ``collate_fn`` pads a batch with ``pad_sequence`` into sequence-first
``(seq_len, batch)`` tensors. ``Seq2SeqTransformer``: ``TokenEmbedding`` (scaled by
``sqrt(d_model)``), a sinusoidal ``PositionalEncoding`` buffer of shape ``(max_len, 1,
d_model)`` with dropout, ``nn.Transformer`` with its default ``batch_first=False``
(2 encoder and 2 decoder layers, d_model 64, 4 heads), and a linear ``generator``.
Xavier-uniform initialisation of every matrix. ``create_mask`` builds the float causal
target mask with ``nn.Transformer.generate_square_subsequent_mask`` and the boolean
source and target key padding masks from ``<pad>`` (transposed to ``(batch,
seq_len)``). Teacher forcing: the decoder reads the target without its last token
(``<bos>`` first) and is scored against the target shifted by one, by
``nn.CrossEntropyLoss(ignore_index=PAD_IDX, label_smoothing=0.1)`` over the flattened
logits; batches of 64 from a shuffled ``DataLoader``. Adam with ``betas=(0.9, 0.98),
eps=1e-9`` at base lr 1.0 and the Noam schedule ``factor * d_model^-0.5 *
min(step^-0.5, step * warmup^-1.5)`` (factor 0.25, 200 warm-up steps, a peak of 2.2e-3)
applied by a ``LambdaLR`` stepped after every optimiser step. Validation by batched
greedy decoding (``encode`` once, then ``decode`` token by token from ``<bos>``): token
accuracy and the share of sentences translated exactly. ``main()`` with argparse; prints
the training and validation loss, the learning rate and the greedy-decoding scores each
epoch.

Healthy: nndoctor should report no warning and no error.

    python examples/wild/transformer_seq2seq.py
    nndoctor check examples/wild/transformer_seq2seq.py
"""

import argparse
import math

import torch
import torch.nn as nn
from torch.nn.utils.rnn import pad_sequence
from torch.utils.data import DataLoader

UNK_IDX, PAD_IDX, BOS_IDX, EOS_IDX = 0, 1, 2, 3
N_SPECIAL, N_WORDS, MIN_LEN, MAX_LEN = 4, 24, 3, 10


def make_pairs(n: int, mapping: torch.Tensor, g: torch.Generator):
    pairs = []
    for _ in range(n):
        length = int(torch.randint(MIN_LEN, MAX_LEN + 1, (1,), generator=g))
        src = torch.randint(N_SPECIAL, N_SPECIAL + N_WORDS, (length,), generator=g)
        tgt = mapping[src.flip(0)]
        pairs.append((src, tgt))
    return pairs


def collate_fn(batch):
    bos, eos = torch.tensor([BOS_IDX]), torch.tensor([EOS_IDX])
    src_batch = [torch.cat([bos, src, eos]) for src, _ in batch]
    tgt_batch = [torch.cat([bos, tgt, eos]) for _, tgt in batch]
    src_batch = pad_sequence(src_batch, padding_value=PAD_IDX)  # (src_len, batch)
    tgt_batch = pad_sequence(tgt_batch, padding_value=PAD_IDX)  # (tgt_len, batch)
    return src_batch, tgt_batch


class PositionalEncoding(nn.Module):
    def __init__(self, emb_size: int, dropout: float, maxlen: int = 5000):
        super().__init__()
        den = torch.exp(-torch.arange(0, emb_size, 2) * math.log(10000) / emb_size)
        pos = torch.arange(0, maxlen).reshape(maxlen, 1)
        pos_embedding = torch.zeros((maxlen, emb_size))
        pos_embedding[:, 0::2] = torch.sin(pos * den)
        pos_embedding[:, 1::2] = torch.cos(pos * den)
        pos_embedding = pos_embedding.unsqueeze(-2)
        self.dropout = nn.Dropout(dropout)
        self.register_buffer("pos_embedding", pos_embedding)

    def forward(self, token_embedding: torch.Tensor):
        return self.dropout(token_embedding + self.pos_embedding[: token_embedding.size(0), :])


class TokenEmbedding(nn.Module):
    def __init__(self, vocab_size: int, emb_size: int):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, emb_size)
        self.emb_size = emb_size

    def forward(self, tokens: torch.Tensor):
        return self.embedding(tokens.long()) * math.sqrt(self.emb_size)


class Seq2SeqTransformer(nn.Module):
    def __init__(
        self,
        num_encoder_layers,
        num_decoder_layers,
        emb_size,
        nhead,
        src_vocab_size,
        tgt_vocab_size,
        dim_feedforward=128,
        dropout=0.1,
    ):
        super().__init__()
        self.transformer = nn.Transformer(
            d_model=emb_size,
            nhead=nhead,
            num_encoder_layers=num_encoder_layers,
            num_decoder_layers=num_decoder_layers,
            dim_feedforward=dim_feedforward,
            dropout=dropout,
        )
        self.generator = nn.Linear(emb_size, tgt_vocab_size)
        self.src_tok_emb = TokenEmbedding(src_vocab_size, emb_size)
        self.tgt_tok_emb = TokenEmbedding(tgt_vocab_size, emb_size)
        self.positional_encoding = PositionalEncoding(emb_size, dropout=dropout)

    def forward(
        self,
        src,
        trg,
        src_mask,
        tgt_mask,
        src_padding_mask,
        tgt_padding_mask,
        memory_key_padding_mask,
    ):
        src_emb = self.positional_encoding(self.src_tok_emb(src))
        tgt_emb = self.positional_encoding(self.tgt_tok_emb(trg))
        outs = self.transformer(
            src_emb,
            tgt_emb,
            src_mask,
            tgt_mask,
            None,
            src_padding_mask,
            tgt_padding_mask,
            memory_key_padding_mask,
        )
        return self.generator(outs)

    def encode(self, src, src_mask, src_padding_mask):
        return self.transformer.encoder(
            self.positional_encoding(self.src_tok_emb(src)), src_mask, src_padding_mask
        )

    def decode(self, tgt, memory, tgt_mask, memory_key_padding_mask):
        return self.transformer.decoder(
            self.positional_encoding(self.tgt_tok_emb(tgt)),
            memory,
            tgt_mask,
            memory_key_padding_mask=memory_key_padding_mask,
        )


def create_mask(src, tgt):
    src_seq_len, tgt_seq_len = src.shape[0], tgt.shape[0]
    tgt_mask = nn.Transformer.generate_square_subsequent_mask(tgt_seq_len)
    src_mask = torch.zeros((src_seq_len, src_seq_len)).type(torch.bool)
    src_padding_mask = (src == PAD_IDX).transpose(0, 1)
    tgt_padding_mask = (tgt == PAD_IDX).transpose(0, 1)
    return src_mask, tgt_mask, src_padding_mask, tgt_padding_mask


@torch.no_grad()
def greedy_decode(model, src, max_len):
    src_mask = torch.zeros((src.size(0), src.size(0))).type(torch.bool)
    src_padding_mask = (src == PAD_IDX).transpose(0, 1)
    memory = model.encode(src, src_mask, src_padding_mask)
    ys = torch.full((1, src.size(1)), BOS_IDX, dtype=torch.long)
    for _ in range(max_len - 1):
        tgt_mask = nn.Transformer.generate_square_subsequent_mask(ys.size(0))
        out = model.decode(ys, memory, tgt_mask, src_padding_mask)
        next_word = model.generator(out[-1]).argmax(dim=1)
        ys = torch.cat([ys, next_word[None]], dim=0)
    return ys


def evaluate(model, loader, loss_fn):
    model.eval()
    losses, tokens_right, tokens, exact, sentences = 0.0, 0, 0, 0, 0
    with torch.no_grad():
        for src, tgt in loader:
            tgt_input, tgt_out = tgt[:-1, :], tgt[1:, :]
            src_mask, tgt_mask, src_padding_mask, tgt_padding_mask = create_mask(src, tgt_input)
            logits = model(
                src,
                tgt_input,
                src_mask,
                tgt_mask,
                src_padding_mask,
                tgt_padding_mask,
                src_padding_mask,
            )
            losses += loss_fn(logits.reshape(-1, logits.shape[-1]), tgt_out.reshape(-1)).item()
            pred = greedy_decode(model, src, tgt.size(0))[1:]
            real = tgt_out != PAD_IDX
            right = (pred == tgt_out) | ~real
            tokens_right += (right & real).sum().item()
            tokens += real.sum().item()
            exact += right.all(dim=0).sum().item()
            sentences += tgt.size(1)
    return losses / len(loader), tokens_right / tokens, exact / sentences


def main():
    parser = argparse.ArgumentParser(description="toy translation with nn.Transformer")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--d-model", type=int, default=64)
    parser.add_argument("--factor", type=float, default=0.25)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--n-train", type=int, default=6000)
    parser.add_argument("--n-val", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.manual_seed(args.seed)

    g = torch.Generator().manual_seed(args.seed)
    mapping = torch.arange(N_SPECIAL + N_WORDS)
    mapping[N_SPECIAL:] = N_SPECIAL + torch.randperm(N_WORDS, generator=g)
    train_iter = make_pairs(args.n_train, mapping, g)
    val_iter = make_pairs(args.n_val, mapping, g)
    train_dataloader = DataLoader(
        train_iter, batch_size=args.batch_size, shuffle=True, collate_fn=collate_fn
    )
    val_dataloader = DataLoader(val_iter, batch_size=250, collate_fn=collate_fn)

    vocab_size = N_SPECIAL + N_WORDS
    model = Seq2SeqTransformer(2, 2, args.d_model, 4, vocab_size, vocab_size)
    for p in model.parameters():
        if p.dim() > 1:
            nn.init.xavier_uniform_(p)

    loss_fn = nn.CrossEntropyLoss(ignore_index=PAD_IDX, label_smoothing=0.1)
    optimizer = torch.optim.Adam(model.parameters(), lr=1.0, betas=(0.9, 0.98), eps=1e-9)

    def noam(step):
        step = max(step, 1)
        return args.factor * args.d_model**-0.5 * min(step**-0.5, step * args.warmup**-1.5)

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda=noam)

    for epoch in range(1, args.epochs + 1):
        model.train()
        losses = 0.0
        for src, tgt in train_dataloader:
            tgt_input = tgt[:-1, :]
            src_mask, tgt_mask, src_padding_mask, tgt_padding_mask = create_mask(src, tgt_input)
            logits = model(
                src,
                tgt_input,
                src_mask,
                tgt_mask,
                src_padding_mask,
                tgt_padding_mask,
                src_padding_mask,
            )

            optimizer.zero_grad()
            tgt_out = tgt[1:, :]
            loss = loss_fn(logits.reshape(-1, logits.shape[-1]), tgt_out.reshape(-1))
            loss.backward()
            optimizer.step()
            scheduler.step()
            losses += loss.item()

        val_loss, token_acc, exact = evaluate(model, val_dataloader, loss_fn)
        print(
            f"Epoch: {epoch}, Train loss: {losses / len(train_dataloader):.3f}, Val loss: {val_loss:.3f}, "
            f"lr: {scheduler.get_last_lr()[0]:.2e}, greedy token acc: {token_acc:.3f}, exact: {exact:.3f}"
        )


if __name__ == "__main__":
    main()
