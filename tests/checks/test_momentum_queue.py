"""A MoCo-style script: a momentum encoder and a queue of negatives written in ``forward``,
InfoNCE targets that are all 0 (the positive first among the candidates). Healthy: the
checks that read classes, frozen parameters, batch independence and the tiny batch must
see the construction for what it is."""

from __future__ import annotations

from pathlib import Path

import pytest

from nndoctor.engine import Selection, check_script
from nndoctor.report.model import Report

TINY_MOCO = """
import copy
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

torch.manual_seed(0)
x = torch.randn(512, 16)


class MoCo(nn.Module):
    def __init__(self, K=256, m=0.99, T=0.2):
        super().__init__()
        self.encoder_q = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 8))
        self.encoder_k = copy.deepcopy(self.encoder_q)
        for p in self.encoder_k.parameters():
            p.requires_grad = False
        self.register_buffer("queue", F.normalize(torch.randn(8, K), dim=0))
        self.register_buffer("ptr", torch.zeros(1, dtype=torch.long))
        self.m, self.T, self.K = m, T, K

    def forward(self, im_q, im_k):
        q = F.normalize(self.encoder_q(im_q), dim=1)
        with torch.no_grad():
            for pq, pk in zip(self.encoder_q.parameters(), self.encoder_k.parameters()):
                pk.mul_(self.m).add_(pq.detach(), alpha=1 - self.m)
            k = F.normalize(self.encoder_k(im_k), dim=1)
        l_pos = (q * k).sum(1, keepdim=True)
        l_neg = q @ self.queue.clone().detach()
        logits = torch.cat([l_pos, l_neg], 1) / self.T
        labels = torch.zeros(len(q), dtype=torch.long)
        with torch.no_grad():
            i = int(self.ptr)
            self.queue[:, i : i + len(k)] = k.T
            self.ptr[0] = (i + len(k)) % self.K
        return logits, labels


model = MoCo()
optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
loader = DataLoader(TensorDataset(x), batch_size=32, shuffle=True, drop_last=True)
for epoch in range(3):
    for (xb,) in loader:
        logits, labels = model(xb + 0.1 * torch.randn_like(xb), xb + 0.1 * torch.randn_like(xb))
        loss = F.cross_entropy(logits, labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
"""

CHECKS = (
    "single-label-batches",
    "too-few-examples",
    "params-frozen",
    "batch-dependence",
    "cannot-overfit-tiny-batch",
)


@pytest.fixture()
def report(tmp_path: Path) -> Report:
    path = tmp_path / "moco.py"
    path.write_text(TINY_MOCO)
    return check_script(str(path), steps=20, selection=Selection(select=CHECKS))


def _detail(report: Report, check: str) -> str:
    return report.result(check).detail


@pytest.mark.silent("single-label-batches")
def test_infonce_targets_all_zero_from_a_shuffling_loader_are_no_sorted_data(
    report: Report,
) -> None:
    assert report.by_check("single-label-batches") == []
    assert "targets built per batch" in _detail(report, "single-label-batches")


@pytest.mark.silent("too-few-examples")
def test_the_candidates_of_infonce_are_not_classes_to_count_examples_for(report: Report) -> None:
    assert report.by_check("too-few-examples") == []
    assert "the positive's index among the candidates" in _detail(report, "too-few-examples")


@pytest.mark.silent("params-frozen")
def test_a_momentum_encoder_is_frozen_by_design(report: Report) -> None:
    assert report.by_check("params-frozen") == []
    assert "change between steps without a gradient" in _detail(report, "params-frozen")


@pytest.mark.silent("batch-dependence")
def test_a_queue_written_in_forward_is_no_dependence_between_samples(report: Report) -> None:
    assert report.by_check("batch-dependence") == []


def test_the_tiny_batch_is_not_tried_on_a_forward_that_writes_its_own_state(
    report: Report,
) -> None:
    result = report.result("cannot-overfit-tiny-batch")
    assert result.status.value == "skipped" and "writes state its next call reads" in result.detail


# The same construction kept in the script: the queue a tensor the loop rolls, the key
# encoder a second module started from the first by ``load_state_dict`` and moved by
# momentum, batches drawn by hand. No forward writes state, yet the loss reads the queue.
QUEUE_IN_THE_SCRIPT = """
import torch
import torch.nn as nn
import torch.nn.functional as F

torch.manual_seed(0)
x = torch.randn(512, 16)
encoder_q = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 8))
encoder_k = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 8))
encoder_k.load_state_dict(encoder_q.state_dict())
encoder_k.requires_grad_(False)
queue = F.normalize(torch.randn(128, 8), dim=1)
opt = torch.optim.SGD(encoder_q.parameters(), lr=0.05, momentum=0.9)
for step in range(60):
    xb = x[torch.randint(0, 512, (32,))]
    q = F.normalize(encoder_q(xb + 0.1 * torch.randn_like(xb)), dim=1)
    with torch.no_grad():
        for pk, pq in zip(encoder_k.parameters(), encoder_q.parameters()):
            pk.mul_(0.99).add_(pq, alpha=0.01)
        k = F.normalize(encoder_k(xb + 0.1 * torch.randn_like(xb)), dim=1)
    logits = torch.cat([(q * k).sum(1, keepdim=True), q @ queue.t()], 1) / 0.2
    loss = F.cross_entropy(logits, torch.zeros(32, dtype=torch.long))
    opt.zero_grad(); loss.backward(); opt.step()
    queue = torch.cat([k, queue])[:128]
"""


def test_the_tiny_batch_is_not_asked_of_a_loss_reading_a_queue_the_script_keeps(
    tmp_path: Path,
) -> None:
    path = tmp_path / "moco_loop.py"
    path.write_text(QUEUE_IN_THE_SCRIPT)
    report = check_script(
        str(path), steps=20, selection=Selection(select=("cannot-overfit-tiny-batch",))
    )
    result = report.result("cannot-overfit-tiny-batch")
    assert result.status.value == "skipped", result.detail
    assert "reads state the script carries between steps" in result.detail
