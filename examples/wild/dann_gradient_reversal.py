"""Domain-adversarial training (DANN) with a gradient-reversal layer: healthy.

In the manner of the DANN reference implementations in PyTorch (Ganin & Lempitsky,
"Unsupervised Domain Adaptation by Backpropagation", 2015, and the popular ``DANN``
repository written after it, with the paper's optimiser): the source domain is the
inter-twinning moons of the paper's toy experiment, generated here, 2,000 labelled points;
the target domain is the same two moons rotated by 35 degrees about their centre, 2,000
points whose labels are never used in training, and 2,000 more to test on.

``GradReverse`` is a ``torch.autograd.Function`` that is the identity in the forward pass
and multiplies the gradient by ``-lambda`` in the backward pass. ``DANN`` is an
``nn.Module`` with a feature extractor (an MLP 2-64-64 with ReLU), a label classifier and a
domain classifier (MLPs 64-64-2) behind the gradient reversal; ``forward(x, alpha)`` returns
the class logits and the domain logits. Each step takes a batch of 64 labelled source points
and 64 target points: ``nn.CrossEntropyLoss`` on the source labels plus the domain loss of
source (label 0) and target (label 1) points. Training progress ``p`` goes from 0 to 1 over
the run; the reversal's coefficient follows ``2 / (1 + exp(-10 p)) - 1`` and SGD with
momentum 0.9 is annealed to ``0.01 / (1 + 10 p) ** 0.75``, both set at every step. A
source-only model (the same network trained on the label loss alone, same schedule) is
trained first as the baseline. Top-level functions and ``main()`` with argparse; prints the
losses, the domain accuracy and the target accuracy every 20 epochs, then the source and
target test accuracy of the source-only model and of the DANN model.

Healthy: nndoctor should report no warning and no error.

    python examples/wild/dann_gradient_reversal.py
    nndoctor check examples/wild/dann_gradient_reversal.py
"""

import argparse
import math

import torch
import torch.nn as nn
from torch.autograd import Function


def make_moons(n, g, noise=0.1):
    """Two inter-twinning half circles, centred at the origin, with their labels."""
    labels = torch.randint(0, 2, (n,), generator=g)
    t = math.pi * torch.rand(n, generator=g)
    upper = torch.stack([torch.cos(t), torch.sin(t)], dim=1)
    lower = torch.stack([1 - torch.cos(t), 0.5 - torch.sin(t)], dim=1)
    x = torch.where(labels[:, None] == 0, upper, lower)
    x = x - torch.tensor([0.5, 0.25]) + noise * torch.randn(n, 2, generator=g)
    return x, labels


def rotate(x, degrees):
    a = math.radians(degrees)
    rotation = torch.tensor([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    return x @ rotation.T


class GradReverse(Function):
    @staticmethod
    def forward(ctx, x, alpha):
        ctx.alpha = alpha
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad_output):
        output = grad_output.neg() * ctx.alpha
        return output, None


class DANN(nn.Module):
    def __init__(self, hidden=64):
        super().__init__()
        self.feature = nn.Sequential(
            nn.Linear(2, hidden),
            nn.ReLU(),
            nn.Linear(hidden, hidden),
            nn.ReLU(),
        )
        self.class_classifier = nn.Sequential(
            nn.Linear(hidden, hidden),
            nn.ReLU(),
            nn.Linear(hidden, 2),
        )
        self.domain_classifier = nn.Sequential(
            nn.Linear(hidden, hidden),
            nn.ReLU(),
            nn.Linear(hidden, 2),
        )

    def forward(self, input_data, alpha):
        feature = self.feature(input_data)
        reverse_feature = GradReverse.apply(feature, alpha)
        class_output = self.class_classifier(feature)
        domain_output = self.domain_classifier(reverse_feature)
        return class_output, domain_output


@torch.no_grad()
def accuracy(model, x, y):
    model.eval()
    class_output, _ = model(x, 0.0)
    model.train()
    return (class_output.argmax(dim=1) == y).float().mean().item()


def train(model, x_src, y_src, x_tgt, x_tgt_test, y_tgt_test, args, adapt):
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9)
    loss_class = nn.CrossEntropyLoss()
    loss_domain = nn.CrossEntropyLoss()
    len_dataloader = len(x_src) // args.batch_size

    for epoch in range(args.epochs):
        src_order = torch.randperm(len(x_src))
        tgt_order = torch.randperm(len(x_tgt))
        domain_correct = domain_total = 0
        for i in range(len_dataloader):
            p = float(i + epoch * len_dataloader) / args.epochs / len_dataloader
            alpha = 2.0 / (1.0 + math.exp(-10 * p)) - 1
            for param_group in optimizer.param_groups:
                param_group["lr"] = args.lr / (1.0 + 10 * p) ** 0.75

            idx_s = src_order[i * args.batch_size : (i + 1) * args.batch_size]
            idx_t = tgt_order[i * args.batch_size : (i + 1) * args.batch_size]
            s_data, s_label = x_src[idx_s], y_src[idx_s]
            t_data = x_tgt[idx_t]

            optimizer.zero_grad()
            class_output, domain_output = model(s_data, alpha)
            err_s_label = loss_class(class_output, s_label)
            loss = err_s_label
            if adapt:
                domain_label = torch.zeros(len(s_data), dtype=torch.long)
                err_s_domain = loss_domain(domain_output, domain_label)
                _, t_domain_output = model(t_data, alpha)
                t_domain_label = torch.ones(len(t_data), dtype=torch.long)
                err_t_domain = loss_domain(t_domain_output, t_domain_label)
                loss = loss + err_s_domain + err_t_domain
                domain_correct += (domain_output.argmax(1) == 0).sum().item()
                domain_correct += (t_domain_output.argmax(1) == 1).sum().item()
                domain_total += len(s_data) + len(t_data)
            loss.backward()
            optimizer.step()

        if (epoch + 1) % 20 == 0:
            line = f"  epoch {epoch + 1:3d}  class loss {err_s_label.item():.4f}"
            if adapt:
                domain_loss = (err_s_domain + err_t_domain).item() / 2
                line += f"  domain loss {domain_loss:.4f}"
                line += f"  domain acc {domain_correct / domain_total:.3f}  alpha {alpha:.3f}"
            line += f"  target acc {accuracy(model, x_tgt_test, y_tgt_test):.3f}"
            print(line)


def main():
    parser = argparse.ArgumentParser(description="DANN on rotated two moons")
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--rotation", type=float, default=35.0)
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    g = torch.Generator().manual_seed(args.seed)
    x_src, y_src = make_moons(args.n, g)
    x_src_test, y_src_test = make_moons(args.n, g)
    x_tgt, _ = make_moons(args.n, g)  # target labels are never used in training
    x_tgt = rotate(x_tgt, args.rotation)
    x_tgt_test, y_tgt_test = make_moons(args.n, g)
    x_tgt_test = rotate(x_tgt_test, args.rotation)

    print("source only:")
    source_only = DANN()
    train(source_only, x_src, y_src, x_tgt, x_tgt_test, y_tgt_test, args, adapt=False)
    print("DANN:")
    model = DANN()
    train(model, x_src, y_src, x_tgt, x_tgt_test, y_tgt_test, args, adapt=True)

    for name, m in (("source only", source_only), ("DANN", model)):
        src_acc = accuracy(m, x_src_test, y_src_test)
        tgt_acc = accuracy(m, x_tgt_test, y_tgt_test)
        print(f"final: {name:11s}  source test acc {src_acc:.3f}  target test acc {tgt_acc:.3f}")


if __name__ == "__main__":
    main()
