"""A Pointer Network that learns to sort sequences of random numbers: healthy.

In the manner of the Pointer Networks implementations (Vinyals, Fortunato & Jaitly 2015,
as the popular PyTorch re-implementations write it): every example is a sequence of 10
numbers drawn uniformly from [0, 1), generated on the fly for each batch, and the target
is the order of their positions from the smallest number to the largest
(``torch.argsort``). The held-out set is 2,000 sequences drawn once.

``PointerNet`` is an ``nn.Module``: each number goes through ``nn.Linear(1, 32)``, an
``nn.LSTM(batch_first=True)`` encoder of 64 units reads the sequence, and an
``nn.LSTMCell`` decoder starts from the encoder's final state with a learned first input.
At every decoding step an additive (Bahdanau) attention ``v^T tanh(W1 e_j + W2 d_t)`` scores
every input position and, after the positions already pointed at are masked with
``-inf``, its ``log_softmax`` over the positions IS the output distribution. In training
the decoder is teacher-forced: the next input is the embedding of the number at the
target position, which is also the position masked next; at evaluation it is greedy
(the argmax is fed back and masked). The loss is ``F.nll_loss`` over all the pointers,
Adam at 1e-3, batches of 128, 1,000 steps, ``clip_grad_norm_`` at 2.0. Top-level
functions and ``main()`` with argparse; prints the training loss every 100 steps with the
held-out pointer accuracy and the share of sequences sorted exactly by greedy decoding,
against a random permutation (1/10! exact, 1/10 of the pointers).

Healthy: nndoctor should report no warning and no error.

    python examples/wild/pointer_net_sort.py
    nndoctor check examples/wild/pointer_net_sort.py
"""

import argparse
import math

import torch
import torch.nn as nn
import torch.nn.functional as F


def make_batch(batch_size, seq_len, g):
    x = torch.rand(batch_size, seq_len, generator=g)
    return x, torch.argsort(x, dim=1)


class Attention(nn.Module):
    """Additive attention whose scores are the pointer logits."""

    def __init__(self, hidden_size):
        super().__init__()
        self.w1 = nn.Linear(hidden_size, hidden_size, bias=False)
        self.w2 = nn.Linear(hidden_size, hidden_size, bias=False)
        self.v = nn.Linear(hidden_size, 1, bias=False)

    def forward(self, encoder_outputs, decoder_state):
        # encoder_outputs: (batch, seq, hidden); decoder_state: (batch, hidden)
        scores = self.v(torch.tanh(self.w1(encoder_outputs) + self.w2(decoder_state)[:, None]))
        return scores.squeeze(-1)


class PointerNet(nn.Module):
    def __init__(self, embedding_size=32, hidden_size=64):
        super().__init__()
        self.embedding = nn.Linear(1, embedding_size)
        self.encoder = nn.LSTM(embedding_size, hidden_size, batch_first=True)
        self.decoder = nn.LSTMCell(embedding_size, hidden_size)
        self.attention = Attention(hidden_size)
        self.decoder_start = nn.Parameter(torch.empty(embedding_size).uniform_(-1, 1))

    def forward(self, x, targets=None):
        batch_size, seq_len = x.shape
        embedded = self.embedding(x.unsqueeze(-1))
        encoder_outputs, (h, c) = self.encoder(embedded)
        h, c = h[0], c[0]
        decoder_input = self.decoder_start.expand(batch_size, -1)
        mask = torch.zeros(batch_size, seq_len, dtype=torch.bool)
        rows = torch.arange(batch_size)
        log_pointers, pointers = [], []
        for t in range(seq_len):
            h, c = self.decoder(decoder_input, (h, c))
            scores = self.attention(encoder_outputs, h)
            scores = scores.masked_fill(mask, float("-inf"))
            log_p = F.log_softmax(scores, dim=1)
            pointer = targets[:, t] if targets is not None else log_p.argmax(dim=1)
            mask = mask.clone()
            mask[rows, pointer] = True
            decoder_input = embedded[rows, pointer]
            log_pointers.append(log_p)
            pointers.append(pointer)
        return torch.stack(log_pointers, dim=1), torch.stack(pointers, dim=1)


@torch.no_grad()
def evaluate(model, x, y):
    model.eval()
    _, pointers = model(x)
    pointer_acc = (pointers == y).float().mean().item()
    exact = (pointers == y).all(dim=1).float().mean().item()
    model.train()
    return pointer_acc, exact


def main():
    parser = argparse.ArgumentParser(description="Pointer Network sorting numbers")
    parser.add_argument("--seq-len", type=int, default=10)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--clip", type=float, default=2.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    g = torch.Generator().manual_seed(args.seed)
    x_test, y_test = make_batch(2000, args.seq_len, g)

    model = PointerNet()
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)

    running = 0.0
    for step in range(1, args.steps + 1):
        x, y = make_batch(args.batch_size, args.seq_len, g)
        log_pointers, _ = model(x, targets=y)
        loss = F.nll_loss(log_pointers.reshape(-1, args.seq_len), y.reshape(-1))
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), args.clip)
        optimizer.step()
        running += loss.item()
        if step % 100 == 0:
            pointer_acc, exact = evaluate(model, x_test, y_test)
            print(
                f"step {step:5d}  loss {running / 100:.4f}  pointer acc {pointer_acc:.3f}  "
                f"exact sort {exact:.3f}"
            )
            running = 0.0

    pointer_acc, exact = evaluate(model, x_test, y_test)
    print(
        f"final: exact sort {exact:.3f}, pointer acc {pointer_acc:.3f} "
        f"(a random permutation: exact {1 / math.factorial(args.seq_len):.1e}, "
        f"pointer acc {1 / args.seq_len:.3f})"
    )


if __name__ == "__main__":
    main()
