"""Knowledge distillation (Hinton et al.): a healthy training script.

First trains a wide teacher MLP with dropout on a 10-class problem (three Gaussian
clusters per class in 20 features, generated in code), then a much smaller
student on the same data with functional losses only:
``alpha * KL(softmax(t/T) || softmax(s/T)) * T^2 + (1 - alpha) * CE(s, y)`` with
``F.kl_div(..., reduction="batchmean")``, T = 4, computed by a ``Distiller`` module
(as in the Keras distillation example) that holds both networks and keeps the teacher
frozen in eval mode under ``torch.no_grad()``. Teacher: Adam; student: SGD with
momentum and a cosine schedule per epoch. ``DataLoader`` over a ``TensorDataset``,
plain functions and ``main()`` with argparse.

Healthy: nndoctor should report no warning and no error.
"""

import argparse

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset


def make_data(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Three Gaussian clusters per class, scattered among those of the other classes."""
    g = torch.Generator().manual_seed(seed)
    centers = torch.randn(30, 20, generator=g) * 0.9
    cluster = torch.randint(0, 30, (n,), generator=g)
    x = centers[cluster] + 0.8 * torch.randn(n, 20, generator=g)
    return x, cluster % 10


def mlp(hidden: int, dropout: float) -> nn.Module:
    return nn.Sequential(
        nn.Linear(20, hidden), nn.ReLU(), nn.Dropout(dropout),
        nn.Linear(hidden, hidden), nn.ReLU(), nn.Dropout(dropout),
        nn.Linear(hidden, 10),
    )


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    with torch.no_grad():
        return (model(x).argmax(dim=1) == y).float().mean().item()


def train_teacher(teacher: nn.Module, loader: DataLoader, epochs: int) -> None:
    optimizer = torch.optim.Adam(teacher.parameters(), lr=1e-3)
    teacher.train()
    for _ in range(epochs):
        for x, y in loader:
            optimizer.zero_grad()
            F.cross_entropy(teacher(x), y).backward()
            optimizer.step()


class Distiller(nn.Module):
    """Holds a frozen teacher and the student; ``forward`` returns the distillation loss."""

    def __init__(self, student: nn.Module, teacher: nn.Module, temperature: float, alpha: float) -> None:
        super().__init__()
        self.student, self.teacher = student, teacher.requires_grad_(False)
        self.temperature, self.alpha = temperature, alpha

    def train(self, mode: bool = True) -> "Distiller":
        super().train(mode)
        self.teacher.eval()  # the teacher stays frozen: no dropout in its targets
        return self

    def forward(self, x: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            teacher_logits = self.teacher(x)
        student_logits = self.student(x)
        t = self.temperature
        soft = F.kl_div(
            F.log_softmax(student_logits / t, dim=1),
            F.softmax(teacher_logits / t, dim=1),
            reduction="batchmean",
        ) * t**2
        hard = F.cross_entropy(student_logits, targets)
        return self.alpha * soft + (1 - self.alpha) * hard


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--teacher-epochs", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--temperature", type=float, default=4.0)
    parser.add_argument("--alpha", type=float, default=0.7)
    args = parser.parse_args()
    torch.manual_seed(args.seed)

    x, y = make_data(6000, args.seed)
    x_train, y_train, x_val, y_val = x[:5000], y[:5000], x[5000:], y[5000:]
    loader = DataLoader(TensorDataset(x_train, y_train), batch_size=64, shuffle=True)

    teacher = mlp(256, dropout=0.3)
    train_teacher(teacher, loader, args.teacher_epochs)
    print(f"teacher val accuracy {accuracy(teacher, x_val, y_val):.3f}")

    student = mlp(32, dropout=0.0)
    distiller = Distiller(student, teacher, args.temperature, args.alpha)
    optimizer = torch.optim.SGD(student.parameters(), lr=0.05, momentum=0.9)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=args.epochs)
    for epoch in range(args.epochs):
        distiller.train()
        for xb, yb in loader:
            loss = distiller(xb, yb)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        scheduler.step()
        print(f"epoch {epoch + 1}: loss {loss.item():.4f}  student val accuracy "
              f"{accuracy(student, x_val, y_val):.3f}")


if __name__ == "__main__":
    main()
