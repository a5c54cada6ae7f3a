"""DDP on the CPU (gloo) where one rank's shard holds a feature in other units.

Each rank reads its own shard, prepared ahead of time; in rank 1's shard the first feature
was written in milliseconds where every other shard has seconds, a thousand times larger
than its neighbours. Only rank 1's inputs are off: the report names the rank (reason 12).

    torchrun --nproc-per-node 2 -m nndoctor check examples/distributed/ddp_rank1_raw_features.py
"""

import argparse

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.utils.data import DataLoader, TensorDataset


def make_data(n, features, classes, seed):
    g = torch.Generator().manual_seed(seed)
    centers = torch.randn(classes, features, generator=g) * 1.5
    y = torch.arange(n) % classes
    y = y[torch.randperm(n, generator=g)]
    x = centers[y] + torch.randn(n, features, generator=g)
    return (x - x.mean(0)) / x.std(0), y


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-3)
    args = parser.parse_args()

    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    torch.manual_seed(0)

    x, y = make_data(512, 16, 4, seed=0)
    in_ms = x[256:].clone()
    in_ms[:, 0] *= 1000  # shard 1 was written with its first feature in milliseconds
    shards = [(x[:256], y[:256]), (in_ms, y[256:])]
    x_mine, y_mine = shards[rank]
    loader = DataLoader(TensorDataset(x_mine, y_mine), batch_size=args.batch_size, shuffle=True)

    model = DDP(
        nn.Sequential(
            nn.Linear(16, 64),
            nn.BatchNorm1d(64),
            nn.ReLU(),
            nn.Linear(64, 64),
            nn.ReLU(),
            nn.Linear(64, 4),
        )
    )
    # One step averages the gradients of world * batch_size samples: scale the rate with it.
    global_batch = args.batch_size * world
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr * world)
    criterion = nn.CrossEntropyLoss()

    for epoch in range(args.epochs):
        total = 0.0
        for xb, yb in loader:
            optimizer.zero_grad()
            loss = criterion(model(xb), yb)
            loss.backward()
            optimizer.step()
            total += loss.item()
        if rank == 0:
            print(f"epoch {epoch + 1}: loss {total / len(loader):.4f} (global batch {global_batch})")
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
