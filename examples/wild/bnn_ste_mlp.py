"""A binarized neural network (BinaryNet style) with straight-through estimators: healthy.

In the manner of the public BinaryConnect / BinaryNet PyTorch implementations: the data
are 12x12 grey-level images of oriented gratings (six orientations, 30 degrees apart, each
with a random phase, a jittered spatial frequency and contrast, and pixel noise),
generated in the script, flattened and standardised with the training set's per-pixel
statistics. ``BinarizeLinear`` subclasses ``nn.Linear``: its forward binarizes the layer's
weights with ``sign`` and, for every layer but the first (whose input is the real-valued
image), its input activations too; ``Binarize`` is a ``torch.autograd.Function`` whose
forward is ``sign`` (with +1 at zero) and whose backward is the straight-through
estimator ``grad * (|x| <= 1)``. The model is an MLP of binary layers 144 -> 512 -> 512 ->
6, each followed by ``BatchNorm1d`` and, in the hidden layers, ``Hardtanh``; the real-valued
latent weights are the parameters the optimiser updates, and they are clamped to
[-1, 1] after every step (BinaryConnect's clipping). Cross-entropy on the final
BatchNorm's outputs, Adam with an exponentially decaying learning rate (per epoch),
a ``DataLoader`` over a ``TensorDataset``, a ``main()`` with argparse; prints the training
loss and the test accuracy (``eval()`` mode, BatchNorm's running statistics) every
epoch.

Healthy: nndoctor should report no warning and no error.

    python examples/wild/bnn_ste_mlp.py
    nndoctor check examples/wild/bnn_ste_mlp.py
"""

import argparse
import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

SIZE = 12
NUM_CLASSES = 6


def make_gratings(n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Flattened 12x12 noisy gratings; the label is the orientation (6 classes)."""
    labels = torch.randint(0, NUM_CLASSES, (n,), generator=generator)
    angle = labels.float() * math.pi / NUM_CLASSES
    freq = 0.6 + 0.3 * torch.rand(n, generator=generator)
    phase = 2 * math.pi * torch.rand(n, generator=generator)
    contrast = 0.5 + 0.5 * torch.rand(n, generator=generator)
    coords = torch.arange(SIZE, dtype=torch.float32) - (SIZE - 1) / 2
    yy, xx = torch.meshgrid(coords, coords, indexing="ij")
    proj = torch.cos(angle).view(-1, 1, 1) * xx + torch.sin(angle).view(-1, 1, 1) * yy
    images = contrast.view(-1, 1, 1) * torch.cos(freq.view(-1, 1, 1) * proj + phase.view(-1, 1, 1))
    images = images + 0.8 * torch.randn(images.shape, generator=generator)
    return images.view(n, -1), labels


class Binarize(torch.autograd.Function):
    """sign() forward, straight-through estimator (cancelled outside [-1, 1]) backward."""

    @staticmethod
    def forward(ctx, input):
        ctx.save_for_backward(input)
        return torch.where(input >= 0, 1.0, -1.0)

    @staticmethod
    def backward(ctx, grad_output):
        (input,) = ctx.saved_tensors
        return grad_output * (input.abs() <= 1).to(grad_output.dtype)


binarize = Binarize.apply


class BinarizeLinear(nn.Linear):
    def __init__(self, in_features: int, out_features: int, binarize_input: bool = True) -> None:
        super().__init__(in_features, out_features)
        self.binarize_input = binarize_input

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        if self.binarize_input:
            input = binarize(input)
        return F.linear(input, binarize(self.weight), self.bias)


class BinaryMLP(nn.Module):
    def __init__(self, num_inputs: int, hidden: int, num_classes: int) -> None:
        super().__init__()
        self.fc1 = BinarizeLinear(num_inputs, hidden, binarize_input=False)
        self.bn1 = nn.BatchNorm1d(hidden)
        self.fc2 = BinarizeLinear(hidden, hidden)
        self.bn2 = nn.BatchNorm1d(hidden)
        self.fc3 = BinarizeLinear(hidden, num_classes)
        self.bn3 = nn.BatchNorm1d(num_classes)
        self.htanh = nn.Hardtanh()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.htanh(self.bn1(self.fc1(x)))
        x = self.htanh(self.bn2(self.fc2(x)))
        return self.bn3(self.fc3(x))


def main() -> None:
    parser = argparse.ArgumentParser(description="BinaryNet-style MLP on generated gratings")
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--n-train", type=int, default=5000)
    parser.add_argument("--n-test", type=int, default=2000)
    parser.add_argument("--lr", type=float, default=5e-3)
    parser.add_argument("--lr-decay", type=float, default=0.85)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.manual_seed(args.seed)

    g = torch.Generator().manual_seed(args.seed)
    train_x, train_y = make_gratings(args.n_train, g)
    test_x, test_y = make_gratings(args.n_test, g)
    mean, std = train_x.mean(dim=0), train_x.std(dim=0)
    train_x, test_x = (train_x - mean) / std, (test_x - mean) / std
    train_loader = DataLoader(
        TensorDataset(train_x, train_y), batch_size=args.batch_size, shuffle=True
    )
    test_loader = DataLoader(TensorDataset(test_x, test_y), batch_size=1000)

    model = BinaryMLP(SIZE * SIZE, 512, NUM_CLASSES)
    criterion = nn.CrossEntropyLoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    scheduler = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=args.lr_decay)

    for epoch in range(1, args.epochs + 1):
        model.train()
        total = 0.0
        for data, target in train_loader:
            output = model(data)
            loss = criterion(output, target)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            # BinaryConnect: keep the real-valued latent weights in [-1, 1].
            with torch.no_grad():
                for module in model.modules():
                    if isinstance(module, BinarizeLinear):
                        module.weight.clamp_(-1, 1)
            total += loss.item() * len(target)
        scheduler.step()

        model.eval()
        correct = 0
        with torch.no_grad():
            for data, target in test_loader:
                correct += (model(data).argmax(dim=1) == target).sum().item()
        print(
            f"epoch {epoch:2d}: lr {scheduler.get_last_lr()[0]:.2e}, train loss "
            f"{total / len(train_y):.4f}, test accuracy {correct / len(test_y):.3f}"
        )


if __name__ == "__main__":
    main()
