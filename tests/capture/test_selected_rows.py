"""A loss on rows of the output picked by an index (a graph's labelled nodes), full-batch,
with the validation loss computed after the update in eval mode without no_grad (pygcn)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from nndoctor.capture.runner import run_script
from nndoctor.capture.subject import subject_from_capture
from nndoctor.engine import Selection, check_script

NODES = """
import torch
import torch.nn as nn
import torch.nn.functional as F

torch.manual_seed(0)
n, classes = {n}, 4
labels = torch.randint(0, classes, (n,))
same = labels[:, None] == labels[None, :]
adj = (torch.rand(n, n) < torch.where(same, 20 / n, 1.6 / n)).float()  # degree ~ 6.5 at any n
adj = ((adj + adj.T) > 0).float() + torch.eye(n)
adj = adj / adj.sum(1, keepdim=True)
topics = (torch.rand(classes, 256) < 0.1).float()
features = (torch.rand(n, 256) < 0.05).float() + topics[labels] * (torch.rand(n, 256) < 0.4).float()
features = features / features.sum(1, keepdim=True).clamp(min=1)
{edit}
idx_train, idx_val = torch.arange({train}), torch.arange({train}, n)


class GCN(nn.Module):
    def __init__(self):
        super().__init__()
        self.w1 = nn.Linear(256, 64)
        self.w2 = nn.Linear(64, classes)

    def forward(self, x, adj):
        x = F.dropout(F.relu(adj @ self.w1(x)), 0.5, self.training)
        return F.log_softmax(self.w2(x), dim=1)


model = GCN()
optimizer = torch.optim.Adam(model.parameters(), lr=0.01, weight_decay=5e-4)
for epoch in range(200):
    model.train()
    optimizer.zero_grad()
    output = model(features, adj)
    loss_train = F.nll_loss(output[idx_train], labels[idx_train])
    loss_train.backward()
    optimizer.step()
    model.eval()
    output = model(features, adj)  # no torch.no_grad(), as pygcn
    loss_val = F.nll_loss(output[idx_val], labels[idx_val])
"""
SELECTED = ("cannot-overfit-tiny-batch", "train-in-eval-mode", "labels-not-connected")


def _script(tmp_path: Path, edit: str = "", n: int = 400, train: int = 300) -> str:
    path = tmp_path / "nodes.py"
    path.write_text(textwrap.dedent(NODES.format(edit=edit, n=n, train=train)))
    return str(path)


def test_the_labelled_rows_are_replayed_and_dealt_into_batches(tmp_path: Path) -> None:
    capture = run_script(_script(tmp_path), steps=8, phase_steps=0)
    subject, why = subject_from_capture(capture)
    assert subject is not None, why
    batches = subject.batches()
    # The same graph every step: its 300 labelled rows dealt into disjoint batches.
    assert len(batches) >= 4
    rows = [set(b["loss_index"].tolist()) for b in batches]
    assert sum(len(r) for r in rows) == 300 and len(set().union(*rows)) == 300
    # Every step starts at its training forward, not at the evaluation after the update.
    assert all(s.model_training for s in capture.recording.steps)
    assert all(len(s.loss_calls) == 1 for s in capture.recording.steps)


@pytest.mark.silent("cannot-overfit-tiny-batch")
@pytest.mark.silent("train-in-eval-mode")
@pytest.mark.silent("labels-not-connected")
def test_a_healthy_node_classifier_is_replayed_and_quiet(tmp_path: Path) -> None:
    report = check_script(_script(tmp_path), steps=10, selection=Selection(select=SELECTED))
    assert report.subject["replayable"]
    assert report.result("cannot-overfit-tiny-batch").status == "passed"
    assert "follow the inputs" in report.result("labels-not-connected").detail
    assert report.findings == []


@pytest.mark.fires("labels-not-connected")
def test_node_labels_shuffled_apart_from_the_graph_are_found(tmp_path: Path) -> None:
    # 900 labelled nodes: on 300 the copies' held-out answers cannot rule out a useful
    # gain over chance (the equivalence test's bound stays above a tenth).
    edit = "labels = labels[torch.randperm(n, generator=torch.Generator().manual_seed(1))]"
    report = check_script(
        _script(tmp_path, edit, n=1000, train=900),
        steps=10,
        selection=Selection(select=("labels-not-connected",)),
    )
    (finding,) = report.by_check("labels-not-connected")
    assert finding.reasons == [4]


@pytest.mark.silent("input-not-standardized")
def test_node_features_normalised_per_row_are_advice_however_the_twin_trains(
    tmp_path: Path,
) -> None:
    # Each node's features divided by their sum (pygcn's row normalisation): tiny values
    # per feature, and a copy on them standardised per feature may well train faster;
    # a normalisation chosen per sample is no missing one.
    report = check_script(
        _script(tmp_path), steps=10, selection=Selection(select=("input-not-standardized",))
    )
    result = report.result("input-not-standardized")
    assert result.status == "passed"
    for finding in report.by_check("input-not-standardized"):
        assert finding.severity.value == "info"
