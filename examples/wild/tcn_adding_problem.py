"""Temporal Convolutional Network on the adding problem: healthy.

In the manner of the ``adding_problem`` experiment of the TCN repository of Bai, Kolter
and Koltun ("An Empirical Evaluation of Generic Convolutional and Recurrent Networks for
Sequence Modeling"). Each sequence has two channels over ``seq_len`` = 100 steps:
numbers drawn uniformly in [0, 1] and a marker channel that is 1 at two random
positions, one in each half; the target is the sum of the two marked numbers, an
``(N, 1)`` tensor. The data are generated once, channels first ``(N, 2, seq_len)``.
``TemporalConvNet``: residual ``TemporalBlock``s, each two causal dilated ``Conv1d``
(padding ``(k - 1) * dilation`` on both sides, the right-hand part cut off by a
``Chomp1d``), ``weight_norm`` (the parametrization), ReLU and dropout, a 1x1
``downsample`` convolution on the residual path where the widths differ; dilation
doubles per level (4 levels of 30 channels, kernel size 7: a receptive field of 181
steps). The ``TCN`` regressor reads the last time step through a linear layer. The
weight-normed convolutions keep PyTorch's default initialisation (in the repository
their ``normal_(0, 0.01)`` is overwritten by the weight-norm hook at the first forward);
the 1x1 ``downsample`` and the linear layer are drawn from N(0, 0.01). Training as in
the repository: manual slicing of the unshuffled training tensors into batches of 32,
``F.mse_loss``, ``clip_grad_norm_`` when ``--clip`` is positive, Adam at lr 4e-3.
Top-level script with argparse; prints the running training loss and, each epoch, the
test MSE against that of always answering 1 (1/6 in expectation; the repository quotes
0.1767).

Healthy: nndoctor should report no warning and no error.

    python examples/wild/tcn_adding_problem.py
    nndoctor check examples/wild/tcn_adding_problem.py
"""

import argparse

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils.parametrizations import weight_norm

parser = argparse.ArgumentParser(description="Sequence Modeling - The Adding Problem")
parser.add_argument("--batch_size", type=int, default=32, help="batch size (default: 32)")
parser.add_argument("--dropout", type=float, default=0.0, help="dropout (default: 0.0)")
parser.add_argument("--clip", type=float, default=1.0, help="gradient clip, -1 means no clip")
parser.add_argument("--epochs", type=int, default=3, help="upper epoch limit (default: 3)")
parser.add_argument("--ksize", type=int, default=7, help="kernel size (default: 7)")
parser.add_argument("--levels", type=int, default=4, help="# of levels (default: 4)")
parser.add_argument("--seq_len", type=int, default=100, help="sequence length (default: 100)")
parser.add_argument("--n_train", type=int, default=16000, help="training sequences")
parser.add_argument("--n_test", type=int, default=1000, help="test sequences")
parser.add_argument("--log-interval", type=int, default=75, metavar="N", help="report interval")
parser.add_argument("--lr", type=float, default=4e-3, help="initial learning rate")
parser.add_argument("--nhid", type=int, default=30, help="number of hidden units per layer")
parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
args = parser.parse_args()

torch.manual_seed(args.seed)


def data_generator(N, seq_length):
    """Numbers in [0, 1] and a two-hot marker channel; the target is the marked sum."""
    X_num = torch.rand(N, 1, seq_length)
    X_mask = torch.zeros(N, 1, seq_length)
    half = seq_length // 2
    first = torch.randint(0, half, (N,))
    second = torch.randint(half, seq_length, (N,))
    rows = torch.arange(N)
    X_mask[rows, 0, first] = 1
    X_mask[rows, 0, second] = 1
    Y = (X_num[rows, 0, first] + X_num[rows, 0, second]).unsqueeze(1)  # (N, 1)
    X = torch.cat((X_num, X_mask), dim=1)
    return X, Y


class Chomp1d(nn.Module):
    def __init__(self, chomp_size):
        super().__init__()
        self.chomp_size = chomp_size

    def forward(self, x):
        return x[:, :, : -self.chomp_size].contiguous()


def causal_conv(n_inputs, n_outputs, kernel_size, stride, dilation, padding):
    conv = nn.Conv1d(
        n_inputs, n_outputs, kernel_size, stride=stride, padding=padding, dilation=dilation
    )
    return weight_norm(conv)


class TemporalBlock(nn.Module):
    def __init__(self, n_inputs, n_outputs, kernel_size, stride, dilation, padding, dropout=0.2):
        super().__init__()
        self.conv1 = causal_conv(n_inputs, n_outputs, kernel_size, stride, dilation, padding)
        self.chomp1 = Chomp1d(padding)
        self.relu1 = nn.ReLU()
        self.dropout1 = nn.Dropout(dropout)

        self.conv2 = causal_conv(n_outputs, n_outputs, kernel_size, stride, dilation, padding)
        self.chomp2 = Chomp1d(padding)
        self.relu2 = nn.ReLU()
        self.dropout2 = nn.Dropout(dropout)

        self.net = nn.Sequential(
            self.conv1,
            self.chomp1,
            self.relu1,
            self.dropout1,
            self.conv2,
            self.chomp2,
            self.relu2,
            self.dropout2,
        )
        self.downsample = nn.Conv1d(n_inputs, n_outputs, 1) if n_inputs != n_outputs else None
        if self.downsample is not None:
            self.downsample.weight.data.normal_(0, 0.01)
        self.relu = nn.ReLU()

    def forward(self, x):
        out = self.net(x)
        res = x if self.downsample is None else self.downsample(x)
        return self.relu(out + res)


class TemporalConvNet(nn.Module):
    def __init__(self, num_inputs, num_channels, kernel_size=2, dropout=0.2):
        super().__init__()
        layers = []
        for i, out_channels in enumerate(num_channels):
            dilation_size = 2**i
            in_channels = num_inputs if i == 0 else num_channels[i - 1]
            layers += [
                TemporalBlock(
                    in_channels,
                    out_channels,
                    kernel_size,
                    stride=1,
                    dilation=dilation_size,
                    padding=(kernel_size - 1) * dilation_size,
                    dropout=dropout,
                )
            ]
        self.network = nn.Sequential(*layers)

    def forward(self, x):
        return self.network(x)


class TCN(nn.Module):
    def __init__(self, input_size, output_size, num_channels, kernel_size, dropout):
        super().__init__()
        self.tcn = TemporalConvNet(
            input_size, num_channels, kernel_size=kernel_size, dropout=dropout
        )
        self.linear = nn.Linear(num_channels[-1], output_size)
        self.linear.weight.data.normal_(0, 0.01)

    def forward(self, x):
        y1 = self.tcn(x)  # (batch, channels, time)
        return self.linear(y1[:, :, -1])


input_channels = 2
n_classes = 1
batch_size = args.batch_size
seq_length = args.seq_len
epochs = args.epochs

print("Producing data...")
X_train, Y_train = data_generator(args.n_train, seq_length)
X_test, Y_test = data_generator(args.n_test, seq_length)

channel_sizes = [args.nhid] * args.levels
kernel_size = args.ksize
model = TCN(input_channels, n_classes, channel_sizes, kernel_size=kernel_size, dropout=args.dropout)
lr = args.lr
optimizer = torch.optim.Adam(model.parameters(), lr=lr)


def train(epoch):
    model.train()
    batch_idx = 1
    total_loss = 0
    for i in range(0, X_train.size(0), batch_size):
        x, y = X_train[i : i + batch_size], Y_train[i : i + batch_size]
        optimizer.zero_grad()
        output = model(x)
        loss = F.mse_loss(output, y)
        loss.backward()
        if args.clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), args.clip)
        optimizer.step()
        batch_idx += 1
        total_loss += loss.item()

        if batch_idx % args.log_interval == 0:
            cur_loss = total_loss / args.log_interval
            processed = min(i + batch_size, X_train.size(0))
            print(
                f"Train Epoch: {epoch:2d} [{processed:6d}/{X_train.size(0):6d} "
                f"({100.0 * processed / X_train.size(0):.0f}%)]\t"
                f"Learning rate: {lr:.4f}\tLoss: {cur_loss:.6f}"
            )
            total_loss = 0


def evaluate():
    model.eval()
    with torch.no_grad():
        output = model(X_test)
        test_loss = F.mse_loss(output, Y_test)
        baseline = F.mse_loss(torch.ones_like(Y_test), Y_test)
        print(
            f"\nTest set: Average loss: {test_loss.item():.6f} "
            f"(always predicting 1: {baseline.item():.4f})\n"
        )
        return test_loss.item()


for ep in range(1, epochs + 1):
    train(ep)
    tloss = evaluate()
