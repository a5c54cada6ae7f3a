"""Tabular classification under mixed precision: a healthy training script.

Trains a custom ``nn.Module`` MLP with a hand-written memory-efficient Swish (an
``autograd.Function`` that saves only its input, as in EfficientNet-PyTorch) to sort
tabular rows into three classes. The twelve features come on very different scales
(amounts in thousands, rates in hundredths) and are standardised with the training
split's statistics. The forward pass runs under
``torch.autocast("cpu", dtype=torch.bfloat16)`` with a ``GradScaler`` that is enabled
only on CUDA (as real scripts write it), Kaiming initialisation, AdamW, no scheduler.
A top-level script (argparse at module level) whose loop slices a shuffled index
by hand.

Healthy: nndoctor should report no warning and no error.
"""

import argparse
import math

import torch
import torch.nn.functional as F
from torch import nn

parser = argparse.ArgumentParser()
parser.add_argument("--seed", type=int, default=0)
parser.add_argument("--epochs", type=int, default=12)
parser.add_argument("--batch-size", type=int, default=128)
args = parser.parse_args()
torch.manual_seed(args.seed)
device = torch.device("cpu")


class SwishImplementation(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * torch.sigmoid(x)

    @staticmethod
    def backward(ctx, grad_output):
        (x,) = ctx.saved_tensors
        s = torch.sigmoid(x)
        return grad_output * (s * (1 + x * (1 - s)))


class MemoryEfficientSwish(nn.Module):
    def forward(self, x):
        return SwishImplementation.apply(x)


class MLP(nn.Module):
    def __init__(self, features, hidden, classes):
        super().__init__()
        self.fc1 = nn.Linear(features, hidden)
        self.fc2 = nn.Linear(hidden, hidden)
        self.fc3 = nn.Linear(hidden, classes)
        self.act = MemoryEfficientSwish()
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                nn.init.zeros_(m.bias)

    def forward(self, x):
        x = self.act(self.fc1(x))
        x = self.act(self.fc2(x))
        return self.fc3(x)


# Rows labelled by a fixed random rule, then put on the scales of real tabular columns.
g = torch.Generator().manual_seed(args.seed)
n, features, classes = 6000, 12, 3
z = torch.randn(n, features, generator=g)
w1 = torch.randn(features, 32, generator=g)
w2 = torch.randn(32, classes, generator=g)
y = (torch.tanh(z @ w1 / math.sqrt(features)) @ w2).argmax(dim=1)
scales = 10.0 ** torch.linspace(-2, 3, features)
offsets = torch.rand(features, generator=g) * scales * 5
x = z * scales + offsets

x_train, y_train, x_val, y_val = x[:5000], y[:5000], x[5000:], y[5000:]
mean, std = x_train.mean(dim=0), x_train.std(dim=0)
x_train = (x_train - mean) / std
x_val = (x_val - mean) / std

model = MLP(features, 128, classes).to(device)
optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=1e-4)
scaler = torch.amp.GradScaler(device.type, enabled=device.type == "cuda")

batch_size = args.batch_size
for epoch in range(args.epochs):
    model.train()
    perm = torch.randperm(len(x_train))
    total = 0.0
    for i in range(0, len(x_train), batch_size):
        idx = perm[i : i + batch_size]
        xb, yb = x_train[idx].to(device), y_train[idx].to(device)
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=torch.bfloat16):
            logits = model(xb)
            loss = F.cross_entropy(logits, yb)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        total += loss.item() * len(idx)
    model.eval()
    with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16):
        acc = (model(x_val.to(device)).argmax(dim=1) == y_val.to(device)).float().mean().item()
    print(f"epoch {epoch + 1}: train loss {total / len(x_train):.4f}  val accuracy {acc:.3f}")
