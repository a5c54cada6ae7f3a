"""The training loop both detectors share: cosine schedule, then evaluation on val."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from nndoctor.subject import Subject


def train_and_evaluate(
    subject: Subject,
    steps: int,
    device: str | torch.device,
    progress: Callable[[int, int, float], None] | None,
    evaluate_val: Callable[[nn.Module], dict[str, Any]],
) -> dict[str, Any]:
    """Train ``subject`` for ``steps`` steps (cosine learning rate) and evaluate on val.

    Returns ``loss_start`` (first step), ``loss_end`` (mean of the last 20 steps),
    ``ap50``, ``ap``, ``ap75``, ``steps``, ``seconds`` (wall clock, training and
    evaluation) and ``cpu_seconds`` (CPU time of this process over the same span).
    """
    start, cpu_start = time.perf_counter(), time.process_time()
    model = subject.model
    assert subject.optimizer is not None
    optimizer = subject.optimizer.build(model)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, steps))
    losses: list[float] = []
    model.train()
    while len(losses) < steps:
        for images, targets in subject.iter_batches():
            loss = subject.compute_loss(model, (images.to(device), targets.to(device)))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            losses.append(loss.item())
            if progress is not None:
                progress(len(losses), steps, losses[-1])
            if len(losses) >= steps:
                break
    metrics = evaluate_val(model)
    tail = losses[-20:]
    return {
        "loss_start": losses[0] if losses else math.nan,
        "loss_end": sum(tail) / len(tail) if tail else math.nan,
        "ap50": metrics["ap50"],
        "ap": metrics["ap"],
        "ap75": metrics.get("ap75"),
        "steps": len(losses),
        "seconds": time.perf_counter() - start,
        "cpu_seconds": time.process_time() - cpu_start,
    }
