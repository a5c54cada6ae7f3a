"""Knowledge distillation from a CNN teacher trained in the same script: healthy.

In the manner of the PyTorch knowledge-distillation tutorial: 1x16x16 grey images of 10
texture classes (each class a fixed mixture of oriented gratings, drawn at a random
phase, contrast and noise level, standardised) are generated in code. Stage one trains
a ``TeacherNet`` (three conv layers, dropout in the classifier) for
a few epochs with its own Adam and ``nn.CrossEntropyLoss``. Stage two freezes it
(``teacher.eval()``, ``teacher.requires_grad_(False)``, its logits taken under
``torch.no_grad()``) and trains a much smaller ``StudentNet`` (a two-layer MLP on the
flattened image) with ``nn.KLDivLoss(reduction="batchmean")`` between the student's
``log_softmax(logits / T)`` and the teacher's ``softmax(logits / T)``, multiplied by
T^2 (T = 4), weighted 0.7 against 0.3 of the hard-label cross-entropy. The student has
its own AdamW optimiser. ``DataLoader``s over ``TensorDataset``s; ``train`` / ``test``
functions and a top-level script with argparse. Prints the teacher's, then the
student's loss and test accuracy per epoch.

Healthy: nndoctor should report no warning and no error.

    python examples/wild/distill_student.py
    nndoctor check examples/wild/distill_student.py
"""

import argparse
import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

N_CLASSES = 10


def make_textures(n: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    world = torch.Generator().manual_seed(77)  # the same 10 textures for every seed
    angles = math.pi * torch.rand(N_CLASSES, 3, generator=world)
    freqs = 0.4 + 1.2 * torch.rand(N_CLASSES, 3, generator=world)
    weights = torch.rand(N_CLASSES, 3, generator=world)
    ys, xs = torch.meshgrid(torch.arange(16.0), torch.arange(16.0), indexing="ij")
    labels = torch.randint(0, N_CLASSES, (n,), generator=g)
    images = torch.zeros(n, 16, 16)
    for k in range(3):
        a = angles[labels, k].view(n, 1, 1) + 0.15 * torch.randn(n, 1, 1, generator=g)
        f = freqs[labels, k].view(n, 1, 1)
        phase = 2 * math.pi * torch.rand(n, 1, 1, generator=g)
        wave = torch.sin(f * (xs * torch.cos(a) + ys * torch.sin(a)) + phase)
        images += weights[labels, k].view(n, 1, 1) * wave
    contrast = 0.5 + torch.rand(n, 1, 1, generator=g)
    images = contrast * images + 0.9 * torch.randn(n, 16, 16, generator=g)
    return images.unsqueeze(1), labels


class TeacherNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(32, 64, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(64, 64, 3, padding=1),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(2),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Dropout(0.3), nn.Linear(256, 128), nn.ReLU(), nn.Dropout(0.3), nn.Linear(128, N_CLASSES)
        )

    def forward(self, x):
        return self.classifier(self.features(x))


class StudentNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(256, 64), nn.ReLU(), nn.Linear(64, N_CLASSES))

    def forward(self, x):
        return self.net(x)


def test(model, loader):
    model.eval()
    correct = 0
    with torch.no_grad():
        for inputs, labels in loader:
            correct += (model(inputs).argmax(1) == labels).sum().item()
    return 100.0 * correct / len(loader.dataset)


def train(model, loader, epochs, learning_rate):
    ce_loss = nn.CrossEntropyLoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate)
    for epoch in range(epochs):
        model.train()
        running_loss = 0.0
        for inputs, labels in loader:
            optimizer.zero_grad()
            loss = ce_loss(model(inputs), labels)
            loss.backward()
            optimizer.step()
            running_loss += loss.item()
        print(f"teacher epoch {epoch + 1}/{epochs}: loss {running_loss / len(loader):.4f}, test accuracy {test(model, test_loader):.1f}%")


def train_knowledge_distillation(teacher, student, loader, epochs, learning_rate, T, soft_target_loss_weight, ce_loss_weight):
    ce_loss = nn.CrossEntropyLoss()
    kl_loss = nn.KLDivLoss(reduction="batchmean")
    optimizer = torch.optim.AdamW(student.parameters(), lr=learning_rate, weight_decay=1e-4)

    teacher.eval()
    teacher.requires_grad_(False)
    for epoch in range(epochs):
        student.train()
        running_loss = 0.0
        for inputs, labels in loader:
            optimizer.zero_grad()
            with torch.no_grad():
                teacher_logits = teacher(inputs)
            student_logits = student(inputs)

            soft_targets = F.softmax(teacher_logits / T, dim=-1)
            soft_prob = F.log_softmax(student_logits / T, dim=-1)
            soft_targets_loss = kl_loss(soft_prob, soft_targets) * (T**2)
            label_loss = ce_loss(student_logits, labels)
            loss = soft_target_loss_weight * soft_targets_loss + ce_loss_weight * label_loss

            loss.backward()
            optimizer.step()
            running_loss += loss.item()
        print(f"student epoch {epoch + 1}/{epochs}: loss {running_loss / len(loader):.4f}, test accuracy {test(student, test_loader):.1f}%")


parser = argparse.ArgumentParser(description="knowledge distillation: CNN teacher -> MLP student")
parser.add_argument("--teacher-epochs", type=int, default=6)
parser.add_argument("--student-epochs", type=int, default=12)
parser.add_argument("--batch-size", type=int, default=64)
parser.add_argument("--temperature", type=float, default=4.0)
parser.add_argument("--seed", type=int, default=0)
args = parser.parse_args()
torch.manual_seed(args.seed)

g = torch.Generator().manual_seed(args.seed)
train_x, train_y = make_textures(4000, g)
test_x, test_y = make_textures(1000, g)
mean, std = train_x.mean(), train_x.std()
train_x, test_x = (train_x - mean) / std, (test_x - mean) / std
train_loader = DataLoader(TensorDataset(train_x, train_y), batch_size=args.batch_size, shuffle=True)
test_loader = DataLoader(TensorDataset(test_x, test_y), batch_size=500)

teacher = TeacherNet()
train(teacher, train_loader, epochs=args.teacher_epochs, learning_rate=1e-3)
student = StudentNet()
train_knowledge_distillation(
    teacher,
    student,
    train_loader,
    epochs=args.student_epochs,
    learning_rate=2e-3,
    T=args.temperature,
    soft_target_loss_weight=0.7,
    ce_loss_weight=0.3,
)
