"""A model fed a sparse tensor (a graph's adjacency, as in Kipf & Welling's GCN code):
the checks that cut or fingerprint its inputs run or say why not; none crashes."""

from __future__ import annotations

import textwrap
from pathlib import Path

from nndoctor.engine import Selection, check_script

GCN_SPARSE = """
import torch
from torch import nn
import torch.nn.functional as F

torch.manual_seed(0)
# Two communities (a stochastic block model): the class is the community.
nodes = 120
y = (torch.arange(nodes) >= nodes // 2).long()
same = y[:, None] == y[None, :]
a = (torch.rand(nodes, nodes) < torch.where(same, 0.1, 0.01)).float()
a = ((a + a.T) > 0).float() + torch.eye(nodes)
d = a.sum(1).pow(-0.5)
adj = (d[:, None] * a * d[None, :]).to_sparse()
x = torch.randn(nodes, 8)
x[:, 0] += 0.5 * (2 * y - 1)


class GraphConvolution(nn.Module):
    def __init__(self, d_in, d_out):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(d_in, d_out))
        nn.init.xavier_uniform_(self.weight)

    def forward(self, x, adj):
        return torch.sparse.mm(adj, x @ self.weight)


class GCN(nn.Module):
    def __init__(self):
        super().__init__()
        self.gc1 = GraphConvolution(8, 16)
        self.gc2 = GraphConvolution(16, 2)

    def forward(self, x, adj):
        return self.gc2(F.relu(self.gc1(x, adj)), adj)


model = GCN()
opt = torch.optim.Adam(model.parameters(), lr=0.01)
for epoch in range(30):
    loss = F.cross_entropy(model(x, adj), y)
    opt.zero_grad()
    loss.backward()
    opt.step()
"""

CUTTING = (
    "samples-repeat",
    "custom-layer-gradient",
    "batch-dependence",
    "reshape-reorders-axes",
    "cannot-overfit-tiny-batch",
    "activation-scale-drift",
)


def test_a_sparse_adjacency_input_crashes_no_check(tmp_path: Path) -> None:
    path = tmp_path / "gcn_sparse.py"
    path.write_text(textwrap.dedent(GCN_SPARSE))
    report = check_script(str(path), steps=5, phase_steps=0, selection=Selection(select=CUTTING))
    assert report.run.observed, report.run.error
    statuses = {c: report.result(c).status.value for c in CUTTING}
    assert "crashed" not in statuses.values(), statuses
    # Two hand-written graph layers normalised by the degree: measured, and quiet.
    assert statuses["activation-scale-drift"] == "passed"
    assert not [f for f in report.findings if f.severity.value != "info"]
