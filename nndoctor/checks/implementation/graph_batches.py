"""The samples of a graph batch: the graphs that a vector of graph ids names.

Graph networks batch graphs as one disconnected graph: the nodes of every graph are
concatenated, the edge indices offset, and a vector of graph ids, one per node and sorted
(PyG's ``batch``), says which graph each node belongs to. The tensors of one call then
disagree on their first axis (nodes, edges, graphs), and the samples are the graphs: a
graph's output must depend on its own nodes only. A softmax, normalisation or pooling taken
over all the nodes of the batch instead of within each graph breaks that silently.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from nndoctor.trees import map_tensors, tree_leaves

GRAPHS_CHANGED = 4  # graphs changed in turn, the first of the batch


@dataclass(frozen=True)
class GraphBatch:
    """A vector of graph ids found among a call's inputs, and what it spans."""

    ids: torch.Tensor  # (nodes,) the graph of each node, sorted, 0 .. graphs - 1
    graphs: int
    nodes: int


@dataclass
class GraphDependence:
    """The largest relative change of one graph's outputs when another graph's nodes changed."""

    delta: float
    affected: int
    changed: int
    graphs: int
    changes: int


def graph_batch(call: Any) -> GraphBatch | None:
    """The graph-id vector among ``call``'s tensors: one-dimensional, integer, sorted,
    starting at 0 and rising by at most one (every graph id present), naming fewer graphs
    than nodes, with a floating tensor of node features beside it (as long as the vector).
    None where there is none: a pointer vector of offsets rises by more than one, positions
    name as many groups as entries."""
    tensors = [t for t in tree_leaves(call) if isinstance(t, torch.Tensor)]
    for t in tensors:
        if t.dim() != 1 or t.numel() < 4 or t.is_floating_point() or t.dtype == torch.bool:
            continue
        ids = t.detach().cpu()
        steps = ids[1:] - ids[:-1]
        if int(ids[0]) != 0 or bool((steps < 0).any()) or bool((steps > 1).any()):
            continue
        graphs, nodes = int(ids[-1]) + 1, ids.numel()
        if not 2 <= graphs < nodes:
            continue
        if any(
            o is not t and o.is_floating_point() and o.dim() > 0 and o.shape[0] == nodes
            for o in tensors
        ):
            return GraphBatch(t, graphs, nodes)
    return None


def graph_dependence(
    model: torch.nn.Module, call: tuple[Any, ...], batch: GraphBatch, run: Callable[..., Any]
) -> GraphDependence | None:
    """The first ``GRAPHS_CHANGED`` graphs' node features replaced in turn by noise of their
    own scale; the largest relative change of another graph's outputs (rows of an output
    with one row per graph, or per node, grouped by graph). None where no output has such
    rows. ``run(model, args)`` calls the model; the caller fixes its mode, state and noise."""
    with torch.no_grad():
        base = _graph_rows(run(model, call), batch)
        if not base:
            return None
        worst = GraphDependence(0.0, -1, -1, batch.graphs, min(batch.graphs, GRAPHS_CHANGED))
        for g in range(worst.changes):
            rows = _graph_rows(run(model, _with_graph_changed(call, batch, g)), batch)
            if len(rows) != len(base):
                return None
            for (a, owner), (b, _) in zip(base, rows, strict=True):
                relative = _per_graph_change(a, b, owner, batch.graphs)
                relative[g] = 0.0  # the changed graph itself
                value, index = relative.max(0)
                # One host read per changed graph and output: the change and its graph.
                delta, h = torch.stack([value, index.to(value.dtype)]).tolist()
                if delta > worst.delta:
                    worst.delta, worst.affected, worst.changed = delta, int(h), g
    return worst


def _per_graph_change(
    a: torch.Tensor, b: torch.Tensor, owner: torch.Tensor, graphs: int
) -> torch.Tensor:
    """(graphs,) each graph's largest change of its rows from ``a`` to ``b``, relative to
    their largest magnitude in ``a``."""
    rows = a.shape[0]
    change = (a - b).abs().reshape(rows, -1).amax(1).double()
    scale = a.abs().reshape(rows, -1).amax(1).double()

    def per_graph(values: torch.Tensor) -> torch.Tensor:
        out = torch.zeros(graphs, dtype=values.dtype, device=values.device)
        return out.scatter_reduce(0, owner, values, reduce="amax", include_self=False)

    return per_graph(change) / (per_graph(scale) + 1e-12)


def _with_graph_changed(call: tuple[Any, ...], batch: GraphBatch, g: int) -> tuple[Any, ...]:
    """``call`` with the floating node features of graph ``g`` replaced by seeded noise of
    each tensor's own scale; edges, ids and every other tensor kept."""
    generator = torch.Generator().manual_seed(g)

    def change(t: torch.Tensor) -> torch.Tensor:
        if t is batch.ids or not t.is_floating_point() or t.dim() == 0:
            return t
        if t.shape[0] != batch.nodes:
            return t
        mine = (batch.ids == g).to(t.device)
        noise = torch.randn(t[mine].shape, generator=generator, dtype=t.dtype)
        out = t.detach().clone()
        out[mine] = (noise * (t.std() + 1e-12) + t.mean()).to(t.device)
        return out

    return map_tensors(change, call)


def _graph_rows(out: Any, batch: GraphBatch) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The floating outputs with one row per graph or per node, each with the graph that
    owns each of its rows."""
    found = []
    for t in tree_leaves(out):
        if not isinstance(t, torch.Tensor) or not t.is_floating_point() or t.dim() == 0:
            continue
        if t.shape[0] == batch.graphs:
            found.append((t.detach(), torch.arange(batch.graphs, device=t.device)))
        elif t.shape[0] == batch.nodes:
            found.append((t.detach(), batch.ids.to(t.device)))
    return found
