"""DDP on the CPU (gloo) whose ranks hold shards of different lengths.

The data comes in five files of 64 samples; each rank takes every world-size-th file, so
rank 0 gets three and rank 1 two. Rank 1 runs out of batches first and its script ends
while rank 0 waits in DDP's all-reduce for a gradient that never comes: a real run hangs
until the collective times out (reason 3).

    torchrun --nproc-per-node 2 -m nndoctor check examples/distributed/ddp_uneven_shards.py
"""

import argparse

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.utils.data import ConcatDataset, DataLoader, TensorDataset


def make_data(n, features, classes, seed):
    g = torch.Generator().manual_seed(seed)
    centers = torch.randn(classes, features, generator=g) * 1.5
    y = torch.arange(n) % classes
    y = y[torch.randperm(n, generator=g)]
    x = centers[y] + torch.randn(n, features, generator=g)
    return (x - x.mean(0)) / x.std(0), y


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-3)
    args = parser.parse_args()

    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    torch.manual_seed(0)

    x, y = make_data(320, 16, 4, seed=0)
    files = [TensorDataset(x[i : i + 64], y[i : i + 64]) for i in range(0, 320, 64)]
    shard = ConcatDataset(files[rank::world])  # every world-th file: 3 for rank 0, 2 for rank 1
    loader = DataLoader(shard, batch_size=args.batch_size, shuffle=True)

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
