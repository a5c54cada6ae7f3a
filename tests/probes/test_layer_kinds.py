"""Kinds of layer: matched on the recorded class with issubclass, not on its name."""

from __future__ import annotations

import inspect

import pytest
from torch import nn
from torch.nn.modules.linear import NonDynamicallyQuantizableLinear

from nndoctor.probes.layers import (
    CONV,
    DROPOUT,
    EMBEDDING,
    LINEAR,
    MODE_DEPENDENT,
    NORM,
    RELU,
    SATURATING,
    WEIGHTED,
    is_kind,
)
from nndoctor.probes.recording import Recording
from nndoctor.probes.training import TrainingProbe

TORCH_MODULES = [c for _, c in inspect.getmembers(nn, inspect.isclass) if issubclass(c, nn.Module)]


class MyReLU(nn.ReLU):
    pass


class MyLinear(nn.Linear):
    pass


def test_a_subclass_is_of_its_base_kind() -> None:
    assert is_kind(MyReLU, RELU)
    assert is_kind(MyLinear, LINEAR) and is_kind(MyLinear, WEIGHTED)
    assert is_kind(nn.LazyLinear, LINEAR) and is_kind(nn.LazyConv2d, CONV)
    assert is_kind(NonDynamicallyQuantizableLinear, LINEAR)
    assert not is_kind(nn.ConvTranspose2d, CONV) and is_kind(nn.ConvTranspose2d, WEIGHTED)
    assert not is_kind(None, RELU)


def test_relu6_is_a_relu_not_a_saturating_hardtanh() -> None:
    # nn.ReLU6 inherits from nn.Hardtanh.
    assert is_kind(nn.ReLU6, RELU)
    assert is_kind(nn.Hardtanh, SATURATING, unless=RELU)
    assert not is_kind(nn.ReLU6, SATURATING, unless=RELU)


# The built-in classes the checks matched by name before kinds were classes.
MODE_DEPENDENT_PREFIXES = (
    "BatchNorm",
    "SyncBatchNorm",
    "LazyBatchNorm",
    "InstanceNorm",
    "LazyInstanceNorm",
    "Dropout",
    "AlphaDropout",
    "FeatureAlphaDropout",
    "RReLU",
)


@pytest.mark.parametrize(
    ("kind", "matched"),
    [
        (MODE_DEPENDENT, lambda name: name.startswith(MODE_DEPENDENT_PREFIXES)),
        (RELU, lambda name: name in {"ReLU", "ReLU6"}),
        (EMBEDDING, lambda name: name in {"Embedding", "EmbeddingBag"}),
        (DROPOUT, lambda name: name.startswith(("Dropout", "AlphaDropout", "FeatureAlpha"))),
        (CONV, lambda name: name.startswith(("Conv", "LazyConv")) and "Transpose" not in name),
    ],
    ids=["mode-dependent", "relu", "embedding", "dropout", "conv"],
)
def test_a_kind_holds_the_same_builtin_classes_as_the_names_did(kind, matched) -> None:  # noqa: ANN001
    for cls in TORCH_MODULES:
        assert is_kind(cls, kind) == matched(cls.__name__), cls.__name__


def test_every_normalisation_layer_is_a_norm() -> None:
    names = {c.__name__ for c in TORCH_MODULES if is_kind(c, NORM)}
    assert {"BatchNorm2d", "SyncBatchNorm", "LayerNorm", "GroupNorm", "InstanceNorm1d"} <= names
    assert "LocalResponseNorm" not in names


def test_the_probe_records_classes_and_names() -> None:
    model = nn.Sequential(MyLinear(4, 4), MyReLU())
    rec = Recording()
    with TrainingProbe(rec) as probe:
        probe.attach_model(model)
    assert rec.module_types["1"] == "MyReLU"
    assert rec.module_classes["1"] is MyReLU
    assert rec.modules_of_kind(RELU) == ["1"]
    assert rec.modules_of_kind(LINEAR) == ["0"]


def test_a_recording_of_names_alone_resolves_torch_classes() -> None:
    rec = Recording(module_types={"": "Sequential", "0": "Linear", "1": "ReLU", "2": "Mine"})
    assert rec.module_class("1") is nn.ReLU
    assert rec.module_class("2") is None and rec.module_class("missing") is None
    assert rec.modules_of_kind(RELU) == ["1"]
    assert rec.is_kind("0", LINEAR)
