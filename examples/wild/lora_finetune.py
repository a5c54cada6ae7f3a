"""LoRA fine-tuning of a pre-trained MLP classifier, written by hand: healthy.

In the manner of the minimal LoRA tutorials and of ``loralib`` (Hu et al., "LoRA: Low-Rank
Adaptation of Large Language Models", 2021): the data are generated sensor readings, 48
features on their natural scales (offsets in the tens, spreads from 0.5 to 20) produced
by a fixed nonlinear map of 8 hidden factors plus noise. Task A labels each reading with
one of 10 classes by the largest of 10 linear scores of the hidden factors; task B, the
related task to adapt to, uses the same inputs and classes with scores turned 60 degrees
towards a second set of directions, so that the pre-trained model gets about a third of
task B right. The features are standardised with task A's training statistics, and the
same standardisation is applied to task B, as a fine-tuning pipeline must.

``MLP`` is an ``nn.Module`` 48-256-256-256-10 with ReLU, pre-trained on 20,000 task-A
examples with ``nn.CrossEntropyLoss`` and Adam (lr 1e-3, 8 epochs, batches of 128). Then
``model.requires_grad_(False)`` freezes every weight, and the second and third hidden
``nn.Linear``s (the first layer and the head stay as they are, the way LoRA is put on a few
chosen projections) are replaced by ``LoRALinear`` wrappers as ``loralib`` builds them:
the frozen layer plus ``(x @ lora_A.T @ lora_B.T) * alpha / r`` with ``r = 8``,
``alpha = 16``, ``lora_A`` Kaiming-uniform and ``lora_B`` at zero, so the wrapped model
starts exactly at the pre-trained one. Only the LoRA parameters (those with
``requires_grad``) go to AdamW (lr 3e-3, weight decay 0.01), trained on 3,000 task-B
examples for 30 epochs. Top-level functions and ``main()`` with argparse; prints the
pre-training loss and task-A accuracy, the number of trainable and total parameters, the
task-B loss and test accuracy every 5 epochs, and the task-B test accuracy before and
after fine-tuning (chance: 0.10) with the task-A accuracy the adapted model keeps.

Healthy: nndoctor should report no warning and no error.

    python examples/wild/lora_finetune.py
    nndoctor check examples/wild/lora_finetune.py
"""

import argparse
import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

N_FACTORS, N_FEATURES, N_CLASSES = 8, 48, 10


def make_world(g):
    """The fixed sensor map and the two tasks' class directions."""
    mix = torch.randn(N_FACTORS, N_FEATURES, generator=g) / math.sqrt(N_FACTORS)
    offset = 50 * torch.rand(N_FEATURES, generator=g)
    scale = 0.5 + 19.5 * torch.rand(N_FEATURES, generator=g)
    w_a = torch.randn(N_FACTORS, N_CLASSES, generator=g)
    w_other = torch.randn(N_FACTORS, N_CLASSES, generator=g)
    angle = math.radians(60)
    w_b = math.cos(angle) * w_a + math.sin(angle) * w_other
    return mix, offset, scale, w_a, w_b


def make_data(n, world, task, g):
    mix, offset, scale, w_a, w_b = world
    z = torch.randn(n, N_FACTORS, generator=g)
    h = torch.tanh(1.5 * z @ mix) + 0.3 * (z @ mix) ** 2
    x = offset + scale * (h + 0.05 * torch.randn(n, N_FEATURES, generator=g))
    y = (z @ (w_a if task == "A" else w_b)).argmax(dim=1)
    return x, y


class MLP(nn.Module):
    def __init__(self, in_features=N_FEATURES, hidden=256, n_classes=N_CLASSES):
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden)
        self.fc2 = nn.Linear(hidden, hidden)
        self.fc3 = nn.Linear(hidden, hidden)
        self.head = nn.Linear(hidden, n_classes)

    def forward(self, x):
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        x = F.relu(self.fc3(x))
        return self.head(x)


class LoRALinear(nn.Module):
    """A frozen nn.Linear plus a trainable low-rank update, as loralib's Linear."""

    def __init__(self, linear, r=8, lora_alpha=16):
        super().__init__()
        self.linear = linear
        self.r = r
        self.lora_alpha = lora_alpha
        self.lora_A = nn.Parameter(torch.empty(r, linear.in_features))
        self.lora_B = nn.Parameter(torch.empty(linear.out_features, r))
        self.scaling = self.lora_alpha / self.r
        self.reset_parameters()

    def reset_parameters(self):
        # initialize A the same way as the default for nn.Linear and B to zero
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))
        nn.init.zeros_(self.lora_B)

    def forward(self, x):
        result = self.linear(x)
        lora = x @ self.lora_A.transpose(0, 1) @ self.lora_B.transpose(0, 1)
        return result + lora * self.scaling


def add_lora(model, names, r, lora_alpha):
    for name in names:
        setattr(model, name, LoRALinear(getattr(model, name), r=r, lora_alpha=lora_alpha))
    return model


def train_epoch(model, loader, optimizer, criterion):
    model.train()
    total, n = 0.0, 0
    for x, y in loader:
        optimizer.zero_grad()
        loss = criterion(model(x), y)
        loss.backward()
        optimizer.step()
        total += loss.item() * len(y)
        n += len(y)
    return total / n


@torch.no_grad()
def accuracy(model, x, y):
    model.eval()
    return (model(x).argmax(dim=1) == y).float().mean().item()


def count_parameters(model):
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return trainable, sum(p.numel() for p in model.parameters())


def main():
    parser = argparse.ArgumentParser(description="LoRA fine-tuning of a pre-trained MLP")
    parser.add_argument("--n-pretrain", type=int, default=20_000)
    parser.add_argument("--n-finetune", type=int, default=3_000)
    parser.add_argument("--pretrain-epochs", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--rank", type=int, default=8)
    parser.add_argument("--lora-alpha", type=float, default=16)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    g = torch.Generator().manual_seed(args.seed)
    world = make_world(g)
    xa_train, ya_train = make_data(args.n_pretrain, world, "A", g)
    xa_test, ya_test = make_data(2000, world, "A", g)
    xb_train, yb_train = make_data(args.n_finetune, world, "B", g)
    xb_test, yb_test = make_data(2000, world, "B", g)

    mean, std = xa_train.mean(dim=0), xa_train.std(dim=0)
    xa_train, xa_test = (xa_train - mean) / std, (xa_test - mean) / std
    xb_train, xb_test = (xb_train - mean) / std, (xb_test - mean) / std

    criterion = nn.CrossEntropyLoss()

    # 1. pre-train on task A
    model = MLP()
    loader_a = DataLoader(
        TensorDataset(xa_train, ya_train), batch_size=args.batch_size, shuffle=True
    )
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    for epoch in range(1, args.pretrain_epochs + 1):
        loss = train_epoch(model, loader_a, optimizer, criterion)
        print(f"pre-train epoch {epoch}  loss {loss:.4f}")
    print(f"task A test accuracy after pre-training: {accuracy(model, xa_test, ya_test):.3f}")

    # 2. freeze everything, wrap two hidden layers with LoRA, train only the LoRA weights on B
    model.requires_grad_(False)
    model = add_lora(model, ["fc2", "fc3"], r=args.rank, lora_alpha=args.lora_alpha)
    trainable, total = count_parameters(model)
    print(f"trainable parameters: {trainable:,} of {total:,} ({100 * trainable / total:.1f}%)")
    acc_before = accuracy(model, xb_test, yb_test)
    print(f"task B test accuracy before fine-tuning: {acc_before:.3f}")

    loader_b = DataLoader(
        TensorDataset(xb_train, yb_train), batch_size=args.batch_size, shuffle=True
    )
    lora_params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(lora_params, lr=args.lr, weight_decay=0.01)
    for epoch in range(1, args.epochs + 1):
        loss = train_epoch(model, loader_b, optimizer, criterion)
        if epoch % 5 == 0:
            acc = accuracy(model, xb_test, yb_test)
            print(f"fine-tune epoch {epoch:2d}  loss {loss:.4f}  task B test acc {acc:.3f}")

    acc_after = accuracy(model, xb_test, yb_test)
    print(f"final: task B test accuracy {acc_before:.3f} before, {acc_after:.3f} after")
    acc_a = accuracy(model, xa_test, ya_test)
    print(f"final: task A test accuracy of the adapted model {acc_a:.3f}")


if __name__ == "__main__":
    main()
