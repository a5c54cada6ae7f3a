"""Attention-based deep multiple-instance learning over bags of small images: healthy.

In the manner of AMLab-Amsterdam/AttentionDeepMIL (Ilse, Tomczak and Welling, 2018, the
``GatedAttention`` model and ``main.py`` of the repository): a bag is a random number (5 to
20) of 1x12x12 instance images, each one of six noisy glyphs (plus, X, square outline,
horizontal bar, vertical bar, diagonal) at a random offset and contrast; a bag is positive
iff at least one of its instances is the target glyph (the plus), as in the repository's
"MNIST bags" with a target digit, and only the bag label is used for training. 300 bags for
training and 200 held out, about half of them positive. ``Bags`` is a ``Dataset`` returning
``(bag, [bag_label, instance_labels])`` and the ``DataLoader`` has ``batch_size=1``: the
loaded tensor is ``1 x K x 1 x 12 x 12`` and the model squeezes the leading axis so the
instances play the part of the batch.

``GatedAttention`` is an ``nn.Module``: a feature extractor (two convolutions with ReLU and
max pooling, then a fully connected layer to M=256 features per instance), the gated
attention pooling ``w^T (tanh(V h) * sigmoid(U h))`` with a softmax over the K instances,
the attention-weighted sum of the instance features and a classifier ``Linear`` + sigmoid
giving the bag probability. The loss is the repository's negative log Bernoulli
likelihood on the probability clamped to [1e-5, 1 - 1e-5]; Adam with lr 5e-4 and weight
decay 10e-5, one bag per step, 15 epochs. Top-level functions and ``main()`` with argparse;
prints the training loss and error every 3 epochs, then the held-out loss and bag error
next to the error of always predicting the majority class.

Healthy: nndoctor should report no warning and no error.

    python examples/wild/attention_mil_bags.py
    nndoctor check examples/wild/attention_mil_bags.py
"""

import argparse

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

SIZE = 12
N_GLYPHS = 6
TARGET = 0


def glyph_masks():
    ys, xs = torch.meshgrid(torch.arange(SIZE), torch.arange(SIZE), indexing="ij")
    dy, dx = ys - 5.5, xs - 5.5
    box = (dy.abs() <= 3.5) & (dx.abs() <= 3.5)
    masks = [
        ((dy.abs() <= 0.5) | (dx.abs() <= 0.5)) & box,  # plus (the target)
        (((dy - dx).abs() <= 0.5) | ((dy + dx).abs() <= 0.5)) & box,  # X
        box & ~((dy.abs() <= 2.5) & (dx.abs() <= 2.5)),  # square outline
        (dy.abs() <= 1.0) & (dx.abs() <= 3.5),  # horizontal bar
        (dx.abs() <= 1.0) & (dy.abs() <= 3.5),  # vertical bar
        ((dy - dx).abs() <= 1.0) & box,  # diagonal
    ]
    return torch.stack(masks).float()


def make_instances(labels, g):
    n = len(labels)
    images = glyph_masks()[labels]
    shifts = torch.randint(-2, 3, (n, 2), generator=g)
    images = torch.stack(
        [
            torch.roll(img, (int(s[0]), int(s[1])), dims=(0, 1))
            for img, s in zip(images, shifts, strict=True)
        ]
    )
    contrast = 0.6 + 0.8 * torch.rand(n, 1, 1, generator=g)
    noise = 0.35 * torch.randn(n, SIZE, SIZE, generator=g)
    return (contrast * images + noise).unsqueeze(1)


class Bags(Dataset):
    """Bags of glyph images; a bag is positive iff it holds at least one target glyph."""

    def __init__(self, num_bags, g, min_size=5, max_size=20, target_prob=0.06):
        self.bags, self.labels = [], []
        for _ in range(num_bags):
            k = int(torch.randint(min_size, max_size + 1, (1,), generator=g))
            target = torch.rand(k, generator=g) < target_prob
            others = torch.randint(1, N_GLYPHS, (k,), generator=g)
            instance_labels = torch.where(target, torch.full_like(others, TARGET), others)
            self.bags.append(make_instances(instance_labels, g))
            self.labels.append(instance_labels == TARGET)

    def __len__(self):
        return len(self.bags)

    def __getitem__(self, index):
        instance_labels = self.labels[index]
        return self.bags[index], [instance_labels.max(), instance_labels]


class GatedAttention(nn.Module):
    def __init__(self, M=256, L=64):
        super().__init__()
        self.M = M
        self.L = L
        self.ATTENTION_BRANCHES = 1

        self.feature_extractor_part1 = nn.Sequential(
            nn.Conv2d(1, 20, kernel_size=5),
            nn.ReLU(),
            nn.MaxPool2d(2, stride=2),
            nn.Conv2d(20, 50, kernel_size=3),
            nn.ReLU(),
        )
        self.feature_extractor_part2 = nn.Sequential(
            nn.Linear(50 * 2 * 2, self.M),
            nn.ReLU(),
        )

        self.attention_V = nn.Sequential(nn.Linear(self.M, self.L), nn.Tanh())
        self.attention_U = nn.Sequential(nn.Linear(self.M, self.L), nn.Sigmoid())
        self.attention_w = nn.Linear(self.L, self.ATTENTION_BRANCHES)

        self.classifier = nn.Sequential(
            nn.Linear(self.M * self.ATTENTION_BRANCHES, 1),
            nn.Sigmoid(),
        )

    def forward(self, x):
        x = x.squeeze(0)

        H = self.feature_extractor_part1(x)
        H = H.view(-1, 50 * 2 * 2)
        H = self.feature_extractor_part2(H)  # K x M

        A_V = self.attention_V(H)  # K x L
        A_U = self.attention_U(H)  # K x L
        A = self.attention_w(A_V * A_U)  # K x ATTENTION_BRANCHES
        A = torch.transpose(A, 1, 0)  # ATTENTION_BRANCHES x K
        A = F.softmax(A, dim=1)  # softmax over the K instances

        Z = torch.mm(A, H)  # ATTENTION_BRANCHES x M

        Y_prob = self.classifier(Z)
        Y_hat = torch.ge(Y_prob, 0.5).float()
        return Y_prob, Y_hat, A

    def calculate_classification_error(self, X, Y):
        Y = Y.float()
        _, Y_hat, _ = self.forward(X)
        error = 1.0 - Y_hat.eq(Y).float().mean().item()
        return error, Y_hat

    def calculate_objective(self, X, Y):
        Y = Y.float()
        Y_prob, _, A = self.forward(X)
        Y_prob = torch.clamp(Y_prob, min=1e-5, max=1.0 - 1e-5)
        neg_log_likelihood = -1.0 * (Y * torch.log(Y_prob) + (1.0 - Y) * torch.log(1.0 - Y_prob))
        return neg_log_likelihood, A


def train(model, loader, optimizer):
    model.train()
    train_loss = 0.0
    train_error = 0.0
    for data, label in loader:
        bag_label = label[0]
        optimizer.zero_grad()
        loss, _ = model.calculate_objective(data, bag_label)
        train_loss += loss.item()
        error, _ = model.calculate_classification_error(data, bag_label)
        train_error += error
        loss.backward()
        optimizer.step()
    return train_loss / len(loader), train_error / len(loader)


@torch.no_grad()
def test(model, loader):
    model.eval()
    test_loss = 0.0
    test_error = 0.0
    for data, label in loader:
        bag_label = label[0]
        loss, _ = model.calculate_objective(data, bag_label)
        test_loss += loss.item()
        error, _ = model.calculate_classification_error(data, bag_label)
        test_error += error
    return test_loss / len(loader), test_error / len(loader)


def main():
    parser = argparse.ArgumentParser(description="Attention-based deep MIL on glyph bags")
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--lr", type=float, default=0.0005)
    parser.add_argument("--reg", type=float, default=10e-5, help="weight decay")
    parser.add_argument("--num-bags-train", type=int, default=300)
    parser.add_argument("--num-bags-test", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    g = torch.Generator().manual_seed(args.seed)
    train_set = Bags(args.num_bags_train, g)
    test_set = Bags(args.num_bags_test, g)
    train_loader = DataLoader(train_set, batch_size=1, shuffle=True)
    test_loader = DataLoader(test_set, batch_size=1, shuffle=False)

    positive = sum(bool(label.max()) for label in test_set.labels) / len(test_set)
    print(f"bags: {len(train_set)} train, {len(test_set)} test ({positive:.0%} positive)")

    model = GatedAttention()
    optimizer = torch.optim.Adam(
        model.parameters(), lr=args.lr, betas=(0.9, 0.999), weight_decay=args.reg
    )

    for epoch in range(1, args.epochs + 1):
        train_loss, train_error = train(model, train_loader, optimizer)
        if epoch % 3 == 0:
            print(f"Epoch: {epoch}, Loss: {train_loss:.4f}, Train error: {train_error:.4f}")

    test_loss, test_error = test(model, test_loader)
    majority_error = min(positive, 1.0 - positive)
    print(f"Test Set, Loss: {test_loss:.4f}, Test error: {test_error:.4f}")
    print(f"majority-class error: {majority_error:.4f}")


if __name__ == "__main__":
    main()
