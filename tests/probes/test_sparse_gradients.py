"""Sparse gradients (``nn.Embedding(sparse=True)`` with ``SparseAdam``, as word2vec trains):
observed like dense ones. Their norms count the rows that repeated indices add up."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import torch
from torch import nn

from nndoctor.engine import Selection, check_script
from nndoctor.probes.recording import Recording
from nndoctor.probes.stats import param_norms
from nndoctor.probes.training import TrainingProbe

SKIP_GRAM = """
import torch, torch.nn as nn
torch.manual_seed(0)
V, D = 200, 16


class SkipGram(nn.Module):
    def __init__(self):
        super().__init__()
        self.u = nn.Embedding(V, D, sparse=True)
        self.v = nn.Embedding(V, D, sparse=True)

    def forward(self, center, context, negatives):
        u = self.u(center)
        pos = (u * self.v(context)).sum(-1)
        neg = torch.bmm(self.v(negatives), u.unsqueeze(2)).squeeze(2)
        return -(nn.functional.logsigmoid(pos) + nn.functional.logsigmoid(-neg).sum(1)).mean()


model = SkipGram()
opt = torch.optim.SparseAdam(model.parameters(), lr=1e-2)
for step in range(100):
    center = torch.randint(0, V, (64,))
    context = (center + torch.randint(1, 3, (64,))) % V
    loss = model(center, context, torch.randint(0, V, (64, 5)))
    {zero_grad}
    loss.backward()
    opt.step()
"""

CHECKS = ("zero-grad-missing", "params-without-grad", "params-not-changing")


def test_the_norm_of_a_sparse_gradient_is_its_dense_norm() -> None:
    emb = nn.Embedding(10, 4, sparse=True)
    emb(torch.tensor([1, 1, 3])).sum().backward()  # row 1 twice: its two entries add up
    grad = emb.weight.grad
    assert grad is not None and grad.is_sparse
    assert param_norms([grad]).tolist() == pytest.approx([grad.to_dense().norm().item()])

    rec = Recording()
    with TrainingProbe(rec) as probe:
        probe.attach_model(emb)
        opt = torch.optim.SparseAdam(emb.parameters(), lr=0.1)
        for _ in range(3):
            opt.zero_grad()
            emb(torch.tensor([1, 1, 3])).sum().backward()
            opt.step()
    assert not rec.crashes and len(rec.steps) == 3
    assert rec.steps[0].grad_norms["weight"] == pytest.approx(grad.to_dense().norm().item())


def _check(tmp_path: Path, zero_grad: str) -> object:
    path = tmp_path / "sgns.py"
    path.write_text(textwrap.dedent(SKIP_GRAM.replace("{zero_grad}", zero_grad)))
    return check_script(str(path), steps=20, phase_steps=0, selection=Selection(select=CHECKS))


@pytest.mark.silent("zero-grad-missing")
@pytest.mark.silent("params-not-changing")
def test_a_skip_gram_model_with_sparse_adam_is_observed(tmp_path: Path) -> None:
    report = _check(tmp_path, "opt.zero_grad()")
    assert report.run.observed and report.run.steps_observed == 20
    assert report.subject["optimizer"].startswith("SparseAdam")


@pytest.mark.fires("zero-grad-missing")
def test_sparse_gradients_left_to_accumulate_are_found(tmp_path: Path) -> None:
    report = _check(tmp_path, "pass")
    (finding,) = report.by_check("zero-grad-missing")
    assert finding.severity.value == "error"
