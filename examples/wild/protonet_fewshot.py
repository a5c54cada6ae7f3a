"""Prototypical Networks for few-shot classification of generated glyphs: healthy.

In the manner of the common PyTorch implementations of "Prototypical Networks for
Few-shot Learning" (Snell et al. 2017) on Omniglot: the data are 1x28x28 glyphs drawn
in the script, an Omniglot stand-in. Each of 200 classes is a character made of three
quadratic strokes with its own control points; each of its 20 samples is drawn with a
per-sample jitter of the control points, a random rotation, scale and shift, a random
stroke width and pixel noise. 150 classes are for training and the other 50 are only
seen at test time. A hand-written episode sampler draws N-way K-shot episodes (5-way
5-shot with 10 queries per class): for each of N random classes, K support and Q query
images, laid out class by class. The embedding network is the usual four
``Conv2d(3x3)``-``BatchNorm2d``-``ReLU``-``MaxPool2d(2)`` blocks of 64 channels
(28 -> 14 -> 7 -> 3 -> 1, a 64-D embedding). Support and query images go through it
together; the class prototypes are the means of the support embeddings, the logits of
a query are the negative squared Euclidean distances to the prototypes, and
``nn.CrossEntropyLoss`` is taken over the episode's queries. Adam (lr 1e-3) with
``StepLR`` halving the learning rate every 3 epochs of 50 episodes. A ``main()`` with
argparse; prints every epoch the mean training loss and accuracy over its episodes and
the few-shot accuracy on 100 episodes from the held-out classes in ``eval()`` (chance
is 0.20).

Healthy: nndoctor should report no warning and no error.

    python examples/wild/protonet_fewshot.py
    nndoctor check examples/wild/protonet_fewshot.py
"""

import argparse
import math

import torch
import torch.nn as nn

IMAGE_SIZE = 28


def make_class_params(n_classes, generator):
    """Three quadratic strokes per class: (classes, strokes, 3 control points, xy)."""
    return torch.rand(n_classes, 3, 3, 2, generator=generator) * 1.4 - 0.7


def draw_glyphs(strokes, n_samples, generator):
    """Render ``n_samples`` jittered samples of each class's strokes as 28x28 images."""
    n_classes = strokes.shape[0]
    ctrl = strokes[:, None].expand(-1, n_samples, -1, -1, -1).reshape(-1, 3, 3, 2)
    ctrl = ctrl + 0.15 * torch.randn(ctrl.shape, generator=generator)
    n = ctrl.shape[0]
    # points along each quadratic Bezier stroke
    t = torch.linspace(0, 1, 16).view(1, 1, 16, 1)
    p0, p1, p2 = ctrl[:, :, 0:1], ctrl[:, :, 1:2], ctrl[:, :, 2:3]
    pts = (1 - t) ** 2 * p0 + 2 * (1 - t) * t * p1 + t**2 * p2
    pts = pts.reshape(n, -1, 2)
    # per-sample rotation, scale and shift
    angle = (torch.rand(n, generator=generator) - 0.5) * math.radians(45)
    scale = 0.9 + 0.2 * torch.rand(n, generator=generator)
    cos, sin = torch.cos(angle) * scale, torch.sin(angle) * scale
    rot = torch.stack([torch.stack([cos, -sin], -1), torch.stack([sin, cos], -1)], -2)
    shift = 0.35 * (torch.rand(n, 1, 2, generator=generator) - 0.5)
    pts = pts @ rot.transpose(1, 2) + shift
    width = 0.05 + 0.03 * torch.rand(n, 1, generator=generator)
    axis = torch.linspace(-1, 1, IMAGE_SIZE)
    grid = torch.stack(torch.meshgrid(axis, axis, indexing="xy"), -1).view(-1, 2)
    images = []
    for start in range(0, n, 500):
        d2 = torch.cdist(grid[None], pts[start : start + 500]).pow(2).min(dim=2).values
        images.append(torch.exp(-d2 / (2 * width[start : start + 500] ** 2)))
    images = torch.cat(images).view(n, 1, IMAGE_SIZE, IMAGE_SIZE)
    images = images + 0.05 * torch.randn(images.shape, generator=generator)
    images = images.clamp(0, 1)
    return images.view(n_classes, n_samples, 1, IMAGE_SIZE, IMAGE_SIZE)


def sample_episode(data, n_way, k_shot, n_query, generator):
    """An N-way K-shot episode: support and query images, class by class."""
    n_classes, n_samples = data.shape[:2]
    classes = torch.randperm(n_classes, generator=generator)[:n_way]
    support, query = [], []
    for c in classes:
        idx = torch.randperm(n_samples, generator=generator)[: k_shot + n_query]
        support.append(data[c, idx[:k_shot]])
        query.append(data[c, idx[k_shot:]])
    return torch.cat(support), torch.cat(query)


def conv_block(in_channels, out_channels):
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, padding=1),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(),
        nn.MaxPool2d(2),
    )


class ProtoNet(nn.Module):
    def __init__(self, x_dim=1, hid_dim=64, z_dim=64):
        super().__init__()
        self.encoder = nn.Sequential(
            conv_block(x_dim, hid_dim),
            conv_block(hid_dim, hid_dim),
            conv_block(hid_dim, hid_dim),
            conv_block(hid_dim, z_dim),
        )

    def forward(self, x):
        x = self.encoder(x)
        return x.view(x.size(0), -1)


def euclidean_dist(x, y):
    """Squared Euclidean distances between the rows of x (n, d) and y (m, d)."""
    n, m, d = x.size(0), y.size(0), x.size(1)
    x = x.unsqueeze(1).expand(n, m, d)
    y = y.unsqueeze(0).expand(n, m, d)
    return torch.pow(x - y, 2).sum(2)


def episode_logits(model, support, query, n_way, k_shot):
    z = model(torch.cat([support, query]))
    z_dim = z.size(-1)
    z_proto = z[: n_way * k_shot].view(n_way, k_shot, z_dim).mean(1)
    z_query = z[n_way * k_shot :]
    return -euclidean_dist(z_query, z_proto)


def evaluate(model, data, args, generator):
    model.eval()
    accs = []
    target = torch.arange(args.n_way).repeat_interleave(args.n_query)
    with torch.no_grad():
        for _ in range(args.test_episodes):
            support, query = sample_episode(data, args.n_way, args.k_shot, args.n_query, generator)
            logits = episode_logits(model, support, query, args.n_way, args.k_shot)
            accs.append((logits.argmax(1) == target).float().mean().item())
    model.train()
    return sum(accs) / len(accs)


def main():
    parser = argparse.ArgumentParser(description="Prototypical Networks on generated glyphs")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--episodes", type=int, default=50, help="episodes per epoch")
    parser.add_argument("--test-episodes", type=int, default=100)
    parser.add_argument("--n-way", type=int, default=5)
    parser.add_argument("--k-shot", type=int, default=5)
    parser.add_argument("--n-query", type=int, default=10)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--lr-step", type=int, default=3, help="epochs between halvings")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    strokes = make_class_params(200, gen)
    glyphs = draw_glyphs(strokes, 20, gen)
    train_data, test_data = glyphs[:150], glyphs[150:]

    model = ProtoNet()
    criterion = nn.CrossEntropyLoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=args.lr_step, gamma=0.5)
    test_gen = torch.Generator().manual_seed(args.seed + 1000)

    print(
        f"before training: test {args.n_way}-way {args.k_shot}-shot accuracy "
        f"{evaluate(model, test_data, args, test_gen):.3f}"
    )
    for epoch in range(1, args.epochs + 1):
        model.train()
        losses, accs = [], []
        for _ in range(args.episodes):
            support, query = sample_episode(train_data, args.n_way, args.k_shot, args.n_query, gen)
            target = torch.arange(args.n_way).repeat_interleave(args.n_query)
            optimizer.zero_grad()
            logits = episode_logits(model, support, query, args.n_way, args.k_shot)
            loss = criterion(logits, target)
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
            accs.append((logits.argmax(1) == target).float().mean().item())
        scheduler.step()
        test_acc = evaluate(model, test_data, args, test_gen)
        print(
            f"epoch {epoch}: train loss {sum(losses) / len(losses):.4f}, "
            f"train acc {sum(accs) / len(accs):.3f}, "
            f"test {args.n_way}-way {args.k_shot}-shot acc {test_acc:.3f}, "
            f"lr {scheduler.get_last_lr()[0]:.2e}"
        )


if __name__ == "__main__":
    main()
