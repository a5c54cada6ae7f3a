"""An MNIST-style convnet on generated digits, Adadelta and StepLR: healthy.

In the manner of the classic PyTorch MNIST example: 28x28 uint8 images of the digits
0-9 are drawn in code (a 5x7 bitmap font scaled up, randomly shifted, thickened and
noised), turned to floats in [0, 1] with ``/ 255`` and normalised with the dataset's
mean and std, and served by ``DataLoader``s. ``Net`` has two convolutions, max-pooling,
two dropouts and two linear layers, and returns ``F.log_softmax``; the loss is
``F.nll_loss``. ``optim.Adadelta`` at lr 1.0 with ``StepLR(step_size=1, gamma=0.7)``
stepped once per epoch; ``train()`` and ``test()`` functions, argparse, ``main()``.
Prints the test loss and accuracy after every epoch.

Healthy: nndoctor should report no warning and no error.

    python examples/compat/mnist_convnet.py
    nndoctor check examples/compat/mnist_convnet.py
"""

import argparse

import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.optim as optim
from torch.optim.lr_scheduler import StepLR
from torch.utils.data import DataLoader, TensorDataset

FONT = [  # 5x7 bitmaps of the digits 0-9
    "01110100011001110101110011000101110", "00100011000010000100001000010001110",
    "01110100010000100010001000100011111", "11111000100010000010000011000101110",
    "00010001100101010010111110001000010", "11111100001111000001000011000101110",
    "00110010001000011110100011000101110", "11111000010001000100010000100001000",
    "01110100011000101110100011000101110", "01110100011000101111000010001001100",
]
GLYPHS = torch.tensor([[int(c) for c in rows] for rows in FONT], dtype=torch.float32).view(10, 1, 7, 5)


def make_digits(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """n uint8 images (n, 1, 28, 28) of random digits, and their labels."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 10, (n,), generator=g)
    glyphs = F.interpolate(GLYPHS[labels], size=(14, 10), mode="nearest")
    glyphs = F.max_pool2d(glyphs, 3, stride=1, padding=1) * (torch.rand(n, 1, 1, 1, generator=g) < 0.5) + glyphs
    images = torch.zeros(n, 1, 28, 28)
    dy = torch.randint(0, 28 - 14, (n,), generator=g)
    dx = torch.randint(0, 28 - 10, (n,), generator=g)
    for i in range(n):
        images[i, :, dy[i] : dy[i] + 14, dx[i] : dx[i] + 10] = glyphs[i].clamp(max=1)
    images = (images * 230 + torch.rand(n, 1, 28, 28, generator=g) * 40).clamp(0, 255)
    return images.to(torch.uint8), labels


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 3, 1)
        self.conv2 = nn.Conv2d(16, 32, 3, 1)
        self.dropout1 = nn.Dropout(0.25)
        self.dropout2 = nn.Dropout(0.5)
        self.fc1 = nn.Linear(32 * 5 * 5, 64)
        self.fc2 = nn.Linear(64, 10)

    def forward(self, x):
        x = F.relu(self.conv1(x))
        x = F.max_pool2d(x, 2)
        x = F.relu(self.conv2(x))
        x = F.max_pool2d(x, 2)
        x = self.dropout1(x)
        x = torch.flatten(x, 1)
        x = F.relu(self.fc1(x))
        x = self.dropout2(x)
        x = self.fc2(x)
        output = F.log_softmax(x, dim=1)
        return output


def train(args, model, train_loader, optimizer, epoch):
    model.train()
    for batch_idx, (data, target) in enumerate(train_loader):
        optimizer.zero_grad()
        output = model(data)
        loss = F.nll_loss(output, target)
        loss.backward()
        optimizer.step()
        if batch_idx % args.log_interval == 0:
            print(f"Train Epoch: {epoch} [{batch_idx * len(data)}/{len(train_loader.dataset)}]\tLoss: {loss.item():.6f}")


def test(model, test_loader):
    model.eval()
    test_loss, correct = 0.0, 0
    with torch.no_grad():
        for data, target in test_loader:
            output = model(data)
            test_loss += F.nll_loss(output, target, reduction="sum").item()  # sum up batch loss
            pred = output.argmax(dim=1, keepdim=True)  # get the index of the max log-probability
            correct += pred.eq(target.view_as(pred)).sum().item()
    test_loss /= len(test_loader.dataset)
    print(f"Test set: Average loss: {test_loss:.4f}, Accuracy: {correct}/{len(test_loader.dataset)}")


def main():
    parser = argparse.ArgumentParser(description="PyTorch MNIST-style Example")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--test-batch-size", type=int, default=500)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--lr", type=float, default=1.0)
    parser.add_argument("--gamma", type=float, default=0.7)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--log-interval", type=int, default=50)
    args = parser.parse_args()
    torch.manual_seed(args.seed)

    train_images, train_labels = make_digits(6000, seed=2 * args.seed)
    test_images, test_labels = make_digits(1000, seed=2 * args.seed + 1)
    train_x = train_images.float() / 255.0
    test_x = test_images.float() / 255.0
    mean, std = train_x.mean().item(), train_x.std().item()
    train_x, test_x = (train_x - mean) / std, (test_x - mean) / std

    train_loader = DataLoader(TensorDataset(train_x, train_labels), batch_size=args.batch_size, shuffle=True)
    test_loader = DataLoader(TensorDataset(test_x, test_labels), batch_size=args.test_batch_size)

    model = Net()
    optimizer = optim.Adadelta(model.parameters(), lr=args.lr)
    scheduler = StepLR(optimizer, step_size=1, gamma=args.gamma)
    for epoch in range(1, args.epochs + 1):
        train(args, model, train_loader, optimizer, epoch)
        test(model, test_loader)
        scheduler.step()


if __name__ == "__main__":
    main()
