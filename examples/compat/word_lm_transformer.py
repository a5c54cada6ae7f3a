"""A word-level Transformer language model, sequence-first, with SGD and StepLR: healthy.

In the manner of the PyTorch "language modeling with nn.Transformer" tutorial and
the word-language-model example: generated sentences (a small grammar of who does
what to whom, where and when) become word ids; ``batchify`` lays the text out as
``batch_size`` columns ``(n_rows, batch)``, and ``get_batch`` reads ``bptt`` rows
with the next words as flattened targets. ``TransformerModel`` (embedding scaled by
sqrt(d_model), sinusoidal ``PositionalEncoding`` with dropout, ``nn.TransformerEncoder``
with the default sequence-first layout and a square causal mask, a linear decoder)
returns ``log_softmax`` for ``nn.NLLLoss``. SGD at lr 5 with ``StepLR`` (gamma 0.95
per epoch), ``clip_grad_norm_(0.5)``, a top-level script with constants.
Prints the training and validation perplexity.

Healthy: nndoctor should report no warning and no error.

    python examples/compat/word_lm_transformer.py
    nndoctor check examples/compat/word_lm_transformer.py
"""

import math
import random
import sys

import torch
import torch.nn.functional as F
from torch import nn

SEED = int(sys.argv[sys.argv.index("--seed") + 1]) if "--seed" in sys.argv else 42
torch.manual_seed(SEED)

PEOPLE = ["anna", "the baker", "my uncle", "the pilot", "a student", "the mayor"]
ACTIONS = ["paints", "sells", "repairs", "carries", "opens", "buys"]
THINGS = ["a boat", "the door", "some bread", "an old clock", "the window", "a bicycle"]
WHEN = ["in the morning", "at night", "on monday", "after lunch"]


def make_text(sentences: int, rng: random.Random) -> list[str]:
    words: list[str] = []
    for _ in range(sentences):
        words += f"{rng.choice(PEOPLE)} {rng.choice(ACTIONS)} {rng.choice(THINGS)}".split()
        if rng.random() < 0.5:
            words += rng.choice(WHEN).split()
        words.append("<eos>")
    return words


rng = random.Random(SEED)
train_words, val_words = make_text(5000, rng), make_text(500, rng)
vocab = {w: i for i, w in enumerate(sorted(set(train_words + val_words)))}
ntokens = len(vocab)


def batchify(words: list[str], bsz: int) -> torch.Tensor:
    data = torch.tensor([vocab[w] for w in words], dtype=torch.long)
    seq_len = data.size(0) // bsz
    data = data[: seq_len * bsz]
    return data.view(bsz, seq_len).t().contiguous()  # (seq_len, bsz)


bptt = 32


def get_batch(source: torch.Tensor, i: int) -> tuple[torch.Tensor, torch.Tensor]:
    seq_len = min(bptt, len(source) - 1 - i)
    data = source[i : i + seq_len]
    target = source[i + 1 : i + 1 + seq_len].reshape(-1)
    return data, target


class PositionalEncoding(nn.Module):
    def __init__(self, d_model: int, dropout: float = 0.1, max_len: int = 5000) -> None:
        super().__init__()
        self.dropout = nn.Dropout(p=dropout)
        position = torch.arange(max_len).unsqueeze(1)
        div_term = torch.exp(torch.arange(0, d_model, 2) * (-math.log(10000.0) / d_model))
        pe = torch.zeros(max_len, 1, d_model)
        pe[:, 0, 0::2] = torch.sin(position * div_term)
        pe[:, 0, 1::2] = torch.cos(position * div_term)
        self.register_buffer("pe", pe)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (seq_len, batch, d_model)"""
        x = x + self.pe[: x.size(0)]
        return self.dropout(x)


class TransformerModel(nn.Module):
    def __init__(self, ntoken: int, d_model: int, nhead: int, d_hid: int, nlayers: int, dropout: float = 0.2) -> None:
        super().__init__()
        self.pos_encoder = PositionalEncoding(d_model, dropout)
        encoder_layers = nn.TransformerEncoderLayer(d_model, nhead, d_hid, dropout)
        self.transformer_encoder = nn.TransformerEncoder(encoder_layers, nlayers, enable_nested_tensor=False)
        self.embedding = nn.Embedding(ntoken, d_model)
        self.d_model = d_model
        self.linear = nn.Linear(d_model, ntoken)
        initrange = 0.1
        self.embedding.weight.data.uniform_(-initrange, initrange)
        self.linear.bias.data.zero_()
        self.linear.weight.data.uniform_(-initrange, initrange)

    def forward(self, src: torch.Tensor, src_mask: torch.Tensor) -> torch.Tensor:
        src = self.embedding(src) * math.sqrt(self.d_model)
        src = self.pos_encoder(src)
        output = self.transformer_encoder(src, src_mask, is_causal=True)
        output = self.linear(output)
        return F.log_softmax(output, dim=-1)


train_data = batchify(train_words, 20)
val_data = batchify(val_words, 10)
model = TransformerModel(ntokens, d_model=64, nhead=2, d_hid=128, nlayers=2, dropout=0.2)
criterion = nn.NLLLoss()
lr = 5.0
optimizer = torch.optim.SGD(model.parameters(), lr=lr)
scheduler = torch.optim.lr_scheduler.StepLR(optimizer, 1.0, gamma=0.95)


def evaluate(eval_model: nn.Module, data_source: torch.Tensor) -> float:
    eval_model.eval()
    total_loss = 0.0
    with torch.no_grad():
        for i in range(0, data_source.size(0) - 1, bptt):
            data, targets = get_batch(data_source, i)
            src_mask = nn.Transformer.generate_square_subsequent_mask(data.size(0))
            output = eval_model(data, src_mask)
            total_loss += data.size(0) * criterion(output.view(-1, ntokens), targets).item()
    return total_loss / (len(data_source) - 1)


for epoch in range(1, 4):
    model.train()
    total, batches = 0.0, 0
    for i in range(0, train_data.size(0) - 1, bptt):
        data, targets = get_batch(train_data, i)
        src_mask = nn.Transformer.generate_square_subsequent_mask(data.size(0))
        output = model(data, src_mask)
        loss = criterion(output.view(-1, ntokens), targets)
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 0.5)
        optimizer.step()
        total, batches = total + loss.item(), batches + 1
    val_loss = evaluate(model, val_data)
    print(f"| epoch {epoch} | lr {scheduler.get_last_lr()[0]:.2f} | train ppl {math.exp(total / batches):6.2f} "
          f"| valid ppl {math.exp(val_loss):6.2f}")
    scheduler.step()
