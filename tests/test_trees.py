"""Nested batches and outputs walked with pytree, opening what isinstance walks opened."""

from __future__ import annotations

from collections import OrderedDict, namedtuple

import torch

from nndoctor.trees import first_tensor, map_tensors, tensors, tree_leaves

Batch = namedtuple("Batch", "x y")


class ModelOutput(dict):
    """Like a Hugging Face ModelOutput where transformers does not register it with pytree."""


class Outputs(OrderedDict):
    """An OrderedDict subclass, unknown to pytree."""


def test_an_unregistered_dict_subclass_is_opened() -> None:
    out = ModelOutput(logits=torch.ones(2, 3), loss=torch.tensor(0.5))
    assert [tuple(t.shape) for t in tensors(out)] == [(2, 3), ()]
    assert first_tensor(out) is out["logits"]
    doubled = map_tensors(lambda t: t * 2, out)
    # Rebuilt as the plain dict it is, as the isinstance walkers rebuilt it.
    assert type(doubled) is dict and float(doubled["loss"]) == 1.0
    assert first_tensor(Outputs(a=torch.zeros(1))) is not None


def test_a_namedtuple_batch_keeps_its_type_and_its_order() -> None:
    batch = Batch(x=torch.zeros(4, 2), y=torch.arange(4))
    found = tensors(batch)
    assert found[0] is batch.x and found[1] is batch.y
    moved = map_tensors(lambda t: t + 1, batch)
    assert isinstance(moved, Batch) and torch.equal(moved.y, batch.y + 1)


def test_nested_containers_keep_non_tensor_leaves_and_visit_tensors_in_order() -> None:
    obj = {"a": [torch.zeros(1), ("s", ModelOutput(z=torch.ones(1)))], "n": None, "k": 3}
    seen: list[float] = []
    out = map_tensors(lambda t: seen.append(float(t)) or t, obj)
    assert seen == [0.0, 1.0]
    assert out["a"][1][0] == "s" and out["n"] is None and out["k"] == 3
    assert tree_leaves(obj)[1:3] == ["s", obj["a"][1][1]["z"]]
    assert first_tensor("text") is None and first_tensor(torch.ones(2)) is not None
