"""batch-dependence on graph batches: graphs concatenated into one disconnected graph, a
vector of graph ids beside them (the way graph libraries batch), the graphs the samples."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from subjects import run
from torch import nn

from nndoctor.checks.implementation.graph_batches import graph_batch
from nndoctor.report.model import Report


def graph_batches(steps: int = 6, graphs: int = 8, seed: int = 0) -> list[tuple[Any, Any]]:
    """Batches of small random graphs (4 to 9 nodes, a ring each), each graph's target the
    mean of its first node feature."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(steps):
        xs, edges, ids, ys, offset = [], [], [], [], 0
        for i in range(graphs):
            n = int(torch.randint(4, 10, (1,), generator=g))
            x = torch.randn(n, 5, generator=g)
            ring = torch.arange(n)
            edges.append(torch.stack([ring, (ring + 1) % n]) + offset)
            xs.append(x)
            ids.append(torch.full((n,), i, dtype=torch.long))
            ys.append(x[:, 0].mean())
            offset += n
        # Node features, edges, the graph id of each node, the number of graphs.
        batch = (torch.cat(xs), torch.cat(edges, dim=1), torch.cat(ids), graphs)
        out.append((batch, torch.stack(ys)))
    return out


class GraphRegressor(nn.Module):
    """One round of mean-neighbour message passing, attention pooling per graph, a linear
    head. ``pool_over_batch`` softmaxes the pooling scores over every node of the batch
    instead of within each graph; ``float32_buffers`` makes its segment sums in
    ``torch.zeros`` buffers of the default dtype, as scripts often do."""

    def __init__(self, pool_over_batch: bool = False, float32_buffers: bool = False) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.embed, self.message = nn.Linear(5, 16), nn.Linear(16, 16)
        self.score, self.head = nn.Linear(16, 1), nn.Linear(16, 1)
        self.pool_over_batch, self.float32_buffers = pool_over_batch, float32_buffers

    def zeros(self, like: torch.Tensor, rows: int) -> torch.Tensor:
        return (
            torch.zeros(rows, like.shape[1])
            if self.float32_buffers
            else like.new_zeros(rows, like.shape[1])
        )

    def forward(
        self, x: torch.Tensor, edge_index: torch.Tensor, ids: torch.Tensor, graphs: int
    ) -> torch.Tensor:
        h = torch.relu(self.embed(x))  # (nodes, 16)
        src, dst = edge_index
        h = h + torch.relu(self.message(self.zeros(h, h.shape[0]).index_add(0, dst, h[src])))
        scores = self.score(h).squeeze(-1)  # (nodes,)
        if self.pool_over_batch:
            weights = torch.softmax(scores, dim=0)
        else:
            top = torch.full((graphs,), -1e9, dtype=scores.dtype).scatter_reduce(
                0, ids, scores, reduce="amax"
            )
            e = (scores - top[ids]).exp()
            weights = e / torch.zeros(graphs, dtype=e.dtype).index_add(0, ids, e)[ids]
        pooled = self.zeros(h, graphs).index_add(0, ids, weights.unsqueeze(-1) * h)  # (graphs, 16)
        return self.head(pooled).squeeze(-1)  # (graphs,)


def _graph_check(model: GraphRegressor) -> Report:
    return run(
        select=["batch-dependence"],
        model=model,
        data=graph_batches(),
        loss_fn=nn.MSELoss(),
        optimizer=torch.optim.Adam(model.parameters(), lr=1e-3),
    )


@pytest.mark.fires("batch-dependence")
def test_pooling_softmaxed_over_every_node_of_the_batch_is_found() -> None:
    report = _graph_check(GraphRegressor(pool_over_batch=True))
    (finding,) = report.by_check("batch-dependence")
    assert finding.reasons == [25] and finding.severity.value == "error"
    assert finding.evidence["unit"] == "graph" and finding.evidence["batch"] == 8
    assert "within each graph" in finding.message


@pytest.mark.silent("batch-dependence")
def test_pooling_within_each_graph_is_silent_in_the_models_own_precision() -> None:
    report = _graph_check(GraphRegressor(float32_buffers=True))
    assert report.by_check("batch-dependence") == []
    detail = report.result("batch-dependence").detail
    assert "8 graphs" in detail and "own precision" in detail


@pytest.mark.fires("batch-dependence")
def test_pooling_over_the_batch_is_found_in_the_models_own_precision() -> None:
    model = GraphRegressor(pool_over_batch=True, float32_buffers=True)
    (finding,) = _graph_check(model).by_check("batch-dependence")
    assert finding.evidence["unit"] == "graph"


class NoisyGraphRegressor(GraphRegressor):
    """Noise drawn in every forward, train or eval (a sampled latent): a change of one
    graph must not be confused with the noise of another call."""

    def forward(
        self, x: torch.Tensor, edge_index: torch.Tensor, ids: torch.Tensor, graphs: int
    ) -> torch.Tensor:
        out = super().forward(x, edge_index, ids, graphs)
        return out + 0.1 * torch.randn_like(out)


@pytest.mark.silent("batch-dependence")
def test_a_graph_model_that_draws_noise_in_every_call_draws_the_same_at_each() -> None:
    report = _graph_check(NoisyGraphRegressor())
    assert report.by_check("batch-dependence") == []
    assert "8 graphs" in report.result("batch-dependence").detail


def test_a_vector_of_offsets_or_positions_is_no_graph_batch() -> None:
    x = torch.randn(6, 3)
    assert graph_batch((x, torch.tensor([0, 0, 1, 1, 1, 2]))) is not None
    assert graph_batch((x, torch.tensor([0, 2, 5, 6, 6, 6]))) is None  # offsets: jumps
    assert graph_batch((x, torch.arange(6))) is None  # one group per entry
    assert graph_batch((x, torch.tensor([0, 0, 1, 1, 0, 2]))) is None  # not sorted
    assert graph_batch((torch.arange(6), torch.tensor([0, 0, 1, 1, 1, 2]))) is None  # no features
