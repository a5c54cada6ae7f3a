"""The NaN tracer: the first operation that makes a non-finite value, and where."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import torch

from nndoctor.probes.trace import _NonFiniteTracer, trace_first_nonfinite


def test_the_first_operation_making_a_nan_is_named_with_its_line() -> None:
    x = torch.tensor([1.0, 0.0, -1.0], requires_grad=True)

    def step() -> None:
        y = torch.log(x)  # log(-1) is NaN
        y.sum().backward()

    event = trace_first_nonfinite(step)
    assert event is not None and event.op == "log" and event.phase == "forward"
    assert event.inputs_finite and event.file == __file__


class _Op:
    """Stands in for an aten op whose output holds NaN bits."""

    def __init__(self, name: str) -> None:
        self.overloadpacket = SimpleNamespace(__name__=name)

    def __call__(self, *args: Any, **kwargs: Any) -> torch.Tensor:
        return torch.tensor([float("nan")])


def test_uninitialised_memory_from_empty_is_not_a_computed_nan() -> None:
    # torch.empty_like may return whatever the allocator's memory held, NaN bits included;
    # the op that then writes into it is what counts.
    tracer = _NonFiniteTracer()
    tracer.__torch_dispatch__(_Op("empty_like"), ())
    assert tracer.event is None
    tracer.__torch_dispatch__(_Op("div"), ())
    assert tracer.event is not None and tracer.event.op == "div"
