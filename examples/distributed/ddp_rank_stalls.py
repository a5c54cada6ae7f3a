"""DDP on the CPU (gloo) where rank 1 stalls mid-run.

At its fifth step rank 1 waits for a file that never comes (an hour's sleep stands for it):
rank 0 waits in DDP's all-reduce. Under nndoctor nothing hangs: the job's collective times
out on rank 0, nndoctor's channel on rank 0 gives up on rank 1, and rank 0 reports, naming
the rank that did not answer.

    NNDOCTOR_DIST_TIMEOUT=10 torchrun --nproc-per-node 2 -m nndoctor check \
        examples/distributed/ddp_rank_stalls.py --timeout 30
"""

import argparse
import time

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.utils.data import DataLoader, TensorDataset
from torch.utils.data.distributed import DistributedSampler


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
    parser.add_argument("--stall-at", type=int, default=5)
    args = parser.parse_args()

    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    torch.manual_seed(0)

    x, y = make_data(512, 16, 4, seed=0)
    dataset = TensorDataset(x, y)
    sampler = DistributedSampler(dataset, shuffle=True, seed=0)
    loader = DataLoader(dataset, batch_size=args.batch_size, sampler=sampler)

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

    step = 0
    for epoch in range(args.epochs):
        sampler.set_epoch(epoch)
        total = 0.0
        for xb, yb in loader:
            step += 1
            if rank == 1 and step == args.stall_at:
                time.sleep(3600)  # waits for a file that never comes
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
