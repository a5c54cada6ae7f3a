"""The range a loss input can take, read from the node that made it."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from nndoctor.probes.output_range import output_range

INF = math.inf


def _x() -> torch.Tensor:
    return torch.randn(4, 3, requires_grad=True)


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (torch.sigmoid, ("sigmoid", 0.0, 1.0)),
        (lambda x: F.softmax(x, -1), ("softmax", 0.0, 1.0)),
        (torch.tanh, ("tanh", -1.0, 1.0)),
        (F.relu, ("relu", 0.0, INF)),
        (lambda x: F.elu(x, alpha=2.0), ("elu", -2.0, INF)),
        (lambda x: F.celu(x, alpha=0.5), ("celu", -0.5, INF)),
        (F.relu6, ("relu6", 0.0, 6.0)),
        (lambda x: F.hardtanh(x, -2.0, 3.0), ("hardtanh", -2.0, 3.0)),
        (lambda x: x.clamp(0.0, 1.0), ("clamp", 0.0, 1.0)),
        (lambda x: x.clamp(min=-1.0), ("clamp", -1.0, INF)),
        (lambda x: x.clamp(max=2.0), ("clamp", -INF, 2.0)),
        (F.gelu, ("gelu", -0.17, INF)),
    ],
)
def test_bounding_operations_give_their_range(make, expected) -> None:
    assert output_range(make(_x())) == expected


def test_selu_floor_is_minus_scale_times_alpha() -> None:
    name, lo, hi = output_range(F.selu(_x()))
    assert name == "selu"
    assert lo == pytest.approx(-1.0507 * 1.6733, rel=1e-3)
    assert hi == INF


def test_the_range_is_read_through_views_and_covers_every_part_of_a_concatenation() -> None:
    x = _x()
    assert output_range(torch.sigmoid(x).view(-1)[:5].unsqueeze(1)) == ("sigmoid", 0.0, 1.0)
    both = torch.cat([torch.sigmoid(x), torch.tanh(x)], dim=1)
    assert output_range(both) == ("sigmoid/tanh", -1.0, 1.0)


@pytest.mark.parametrize(
    "make",
    [
        lambda x: x @ torch.randn(3, 2),  # a linear map
        lambda x: torch.cat([torch.sigmoid(x), x * 2], dim=1),  # one part unbounded
        lambda x: x.clamp(torch.zeros(3), torch.ones(3)),  # element-wise bounds: not read
        lambda x: F.leaky_relu(x),
        lambda x: x.detach(),
    ],
)
def test_unbounded_or_unreadable_outputs_have_no_range(make) -> None:
    assert output_range(make(_x())) is None
