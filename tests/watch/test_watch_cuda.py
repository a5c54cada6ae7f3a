"""On a CUDA device: no host synchronisation inside any of watch's hooks, at full rate."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import nndoctor


@pytest.mark.cuda
@pytest.mark.parametrize("every", [1, None])
def test_watch_hooks_never_synchronise_with_the_device(every: int | None) -> None:
    torch.manual_seed(0)
    device = torch.device("cuda")
    model = nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1),
        nn.BatchNorm2d(16),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(16 * 16 * 16, 10),
    ).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = torch.randn(32, 3, 16, 16, device=device)
    y = torch.randint(0, 10, (32,), device=device)
    with nndoctor.watch(model, opt, every=every, quiet=True) as w:
        torch.cuda.set_sync_debug_mode("error")
        try:
            for _ in range(30):
                opt.zero_grad(set_to_none=True)
                # No GradScaler here: its step() reads found_inf on the host by design.
                with torch.autocast("cuda", dtype=torch.bfloat16):
                    loss = nn.functional.cross_entropy(model(x), y)
                loss.backward()
                opt.step()
        finally:
            torch.cuda.set_sync_debug_mode(0)
    report = w.report
    assert report.crashes == [], report.crashes
    assert report.steps_seen == 30
    assert [f.check for f in report.alerts if f.severity.value != "info"] == []
    if every == 1:
        assert report.steps_sampled == 30 and "2" in report.series.activation_zero_frac
