"""Lottery tickets: iterative magnitude pruning with rewinding, torch.nn.utils.prune: healthy.

In the manner of the lottery ticket experiments of Frankle & Carbin ("The Lottery Ticket
Hypothesis", LeNet-300-100) as PyTorch reimplementations write them with
``torch.nn.utils.prune``: the data are generated 16x16 glyphs of ten classes (each class
a prototype of three random strokes; a sample is its prototype shifted by up to two
pixels, with random stroke intensity, a random background level and pixel noise), 12,000
for training and 2,000 for testing, standardised with the training statistics. The model
is a LeNet-300-100 style MLP (256-300-100-10, ReLU) whose initial weights are kept in a
deep copy of its ``state_dict``.

Round 0 trains the dense network; each of the 3 following rounds prunes 20% of the
remaining weights of every hidden layer (10% of the output layer's, half the rate as in
the paper) by ``prune.l1_unstructured`` -- the masks live in ``weight_mask`` buffers
applied by forward pre-hooks to ``weight_orig`` --, rewinds the surviving weights and the
biases to their initial values by copying the saved ones into ``weight_orig`` and
``bias``, and retrains. Every round trains for 8 epochs with its own SGD (momentum 0.9,
lr 0.05, weight decay 5e-4 on the weights only, two parameter groups) and its own
``MultiStepLR`` (x0.1 after epochs 4 and 6), shuffled batches of 64,
``nn.CrossEntropyLoss``. Top-level functions and ``main()`` with argparse; prints the loss
every 4 epochs and, per round, the test accuracy and the sparsity of the pruned layers;
at the end ``prune.remove`` makes the last masks permanent and the final sparsity and
accuracy are printed next to chance (0.10).

Healthy: nndoctor should report no warning and no error.

    python examples/wild/lottery_ticket_pruning.py
    nndoctor check examples/wild/lottery_ticket_pruning.py
"""

import argparse
import copy

import torch
import torch.nn as nn
import torch.nn.utils.prune as prune
from torch.utils.data import DataLoader, TensorDataset

N_CLASSES, SIZE = 10, 16


def make_prototypes(g):
    """Three random line strokes per class, drawn on a 16x16 canvas."""
    ys, xs = torch.meshgrid(torch.arange(SIZE).float(), torch.arange(SIZE).float(), indexing="ij")
    prototypes = torch.zeros(N_CLASSES, SIZE, SIZE)
    for c in range(N_CLASSES):
        for _ in range(3):
            p0 = 3 + 10 * torch.rand(2, generator=g)
            p1 = 3 + 10 * torch.rand(2, generator=g)
            d = p1 - p0
            t = ((ys - p0[0]) * d[0] + (xs - p0[1]) * d[1]) / (d @ d + 1e-6)
            t = t.clamp(0, 1)
            dist = torch.sqrt((ys - p0[0] - t * d[0]) ** 2 + (xs - p0[1] - t * d[1]) ** 2)
            prototypes[c] = torch.maximum(prototypes[c], (1.2 - dist).clamp(0, 1))
    return prototypes


def make_glyphs(n, prototypes, g):
    labels = torch.randint(0, N_CLASSES, (n,), generator=g)
    images = prototypes[labels].clone()
    shifts = torch.randint(-2, 3, (n, 2), generator=g)
    for i in range(n):
        images[i] = torch.roll(images[i], shifts=tuple(shifts[i].tolist()), dims=(0, 1))
    intensity = 0.5 + torch.rand(n, 1, 1, generator=g)
    background = 0.3 * torch.rand(n, 1, 1, generator=g)
    images = intensity * images + background + 0.35 * torch.randn(n, SIZE, SIZE, generator=g)
    return images.flatten(1), labels


class LeNet300100(nn.Module):
    def __init__(self, in_features=SIZE * SIZE, n_classes=N_CLASSES):
        super().__init__()
        self.fc1 = nn.Linear(in_features, 300)
        self.fc2 = nn.Linear(300, 100)
        self.fc3 = nn.Linear(100, n_classes)

    def forward(self, x):
        x = torch.relu(self.fc1(x))
        x = torch.relu(self.fc2(x))
        return self.fc3(x)


def prunable_layers(model):
    return [(name, m) for name, m in model.named_modules() if isinstance(m, nn.Linear)]


def prune_round(model, rate, output_rate):
    layers = prunable_layers(model)
    for i, (_, module) in enumerate(layers):
        amount = output_rate if i == len(layers) - 1 else rate
        prune.l1_unstructured(module, name="weight", amount=amount)


def rewind(model, initial_state):
    """Surviving weights (and biases) back to their values at initialisation."""
    with torch.no_grad():
        for name, module in prunable_layers(model):
            module.weight_orig.copy_(initial_state[f"{name}.weight"])
            module.bias.copy_(initial_state[f"{name}.bias"])


def sparsity(model):
    zeros = total = 0
    for _, module in prunable_layers(model):
        zeros += (module.weight == 0).sum().item()
        total += module.weight.numel()
    return zeros / total


def make_optimizer(model, lr, weight_decay):
    decay = [p for n, p in model.named_parameters() if "bias" not in n]
    no_decay = [p for n, p in model.named_parameters() if "bias" in n]
    return torch.optim.SGD(
        [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0}],
        lr=lr,
        momentum=0.9,
    )


def train_epoch(model, loader, criterion, optimizer):
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
def accuracy(model, loader):
    model.eval()
    correct = n = 0
    for x, y in loader:
        correct += (model(x).argmax(1) == y).sum().item()
        n += len(y)
    return correct / n


def main():
    parser = argparse.ArgumentParser(description="Lottery tickets by iterative magnitude pruning")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--prune-rate", type=float, default=0.2)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--weight-decay", type=float, default=5e-4)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    g = torch.Generator().manual_seed(args.seed)
    prototypes = make_prototypes(g)
    x_train, y_train = make_glyphs(12000, prototypes, g)
    x_test, y_test = make_glyphs(2000, prototypes, g)
    mean, std = x_train.mean(), x_train.std()
    x_train, x_test = (x_train - mean) / std, (x_test - mean) / std

    train_loader = DataLoader(
        TensorDataset(x_train, y_train), batch_size=args.batch_size, shuffle=True
    )
    test_loader = DataLoader(TensorDataset(x_test, y_test), batch_size=1000)

    model = LeNet300100()
    initial_state = copy.deepcopy(model.state_dict())
    criterion = nn.CrossEntropyLoss()

    for round_idx in range(args.rounds + 1):
        if round_idx > 0:
            prune_round(model, args.prune_rate, args.prune_rate / 2)
            rewind(model, initial_state)
        optimizer = make_optimizer(model, args.lr, args.weight_decay)
        milestones = [args.epochs // 2, 3 * args.epochs // 4]
        scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones, gamma=0.1)
        for epoch in range(1, args.epochs + 1):
            loss = train_epoch(model, train_loader, criterion, optimizer)
            scheduler.step()
            if epoch % 4 == 0:
                print(f"round {round_idx}  epoch {epoch}  train loss {loss:.4f}")
        acc = accuracy(model, test_loader)
        print(f"round {round_idx}: test acc {acc:.4f}  sparsity {sparsity(model):.3f}")

    for _, module in prunable_layers(model):
        prune.remove(module, "weight")
    print(f"final: test acc {accuracy(model, test_loader):.4f}  sparsity {sparsity(model):.3f}")
    print(f"chance: {1 / N_CLASSES:.2f}")


if __name__ == "__main__":
    main()
