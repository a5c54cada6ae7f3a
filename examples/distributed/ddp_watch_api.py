"""``nndoctor.watch`` inside a DDP script (gloo, CPU): every rank watches, rank 0 reports.

The healthy DDP script with its loop inside ``with nndoctor.watch(model, optimizer)``.
``--accumulate-without-sync`` plants a bug: two micro-batches per step, both under
``no_sync()``, so no gradient is ever all-reduced. At the end each rank prints how many
alerts its report holds; rank 0's holds every rank's.

    torchrun --nproc-per-node 2 examples/distributed/ddp_watch_api.py --accumulate-without-sync
"""

import argparse

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.utils.data import DataLoader, TensorDataset
from torch.utils.data.distributed import DistributedSampler

import nndoctor


def make_data(n, features, classes, seed):
    g = torch.Generator().manual_seed(seed)
    centers = torch.randn(classes, features, generator=g) * 1.5
    y = torch.arange(n) % classes
    y = y[torch.randperm(n, generator=g)]
    x = centers[y] + torch.randn(n, features, generator=g)
    return (x - x.mean(0)) / x.std(0), y


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--accumulate-without-sync", action="store_true")
    args = parser.parse_args()

    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    torch.manual_seed(0)
    x, y = make_data(512, 16, 4, seed=0)
    dataset = TensorDataset(x, y)
    sampler = DistributedSampler(dataset, shuffle=True, seed=0)
    loader = DataLoader(dataset, batch_size=32, sampler=sampler)
    model = DDP(nn.Sequential(nn.Linear(16, 64), nn.ReLU(), nn.Linear(64, 4)))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3 * world)
    criterion = nn.CrossEntropyLoss()

    with nndoctor.watch(model, optimizer, every=2) as w:
        for epoch in range(args.epochs):
            sampler.set_epoch(epoch)
            for i, (xb, yb) in enumerate(loader):
                if args.accumulate_without_sync:
                    with model.no_sync():
                        (criterion(model(xb), yb) / 2).backward()
                    if i % 2 == 1:
                        optimizer.step()
                        optimizer.zero_grad()
                else:
                    optimizer.zero_grad()
                    criterion(model(xb), yb).backward()
                    optimizer.step()
    checks = sorted({a.check for a in w.report.alerts})
    print(f"rank {rank}: {len(w.report.alerts)} alert(s) {checks}", flush=True)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
