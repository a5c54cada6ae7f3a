"""Custom autograd Functions: found in a graph, calls recorded, differentiated as their forward."""

from __future__ import annotations

import torch

from nndoctor.probes.functions import (
    custom_function_classes,
    differentiated_through_forward,
    recorded_function_calls,
    run_forward,
)


class _Cube(torch.autograd.Function):
    """x³ with a wrong backward (3x instead of 3x²), in the classic form."""

    @staticmethod
    def forward(ctx, x):  # noqa: ANN001, ANN205
        ctx.save_for_backward(x)
        return x**3

    @staticmethod
    def backward(ctx, grad):  # noqa: ANN001, ANN205
        (x,) = ctx.saved_tensors
        return grad * 3 * x


class _Scaled(torch.autograd.Function):
    """x·k in the new form (forward without ctx, setup_context apart), a wrong backward."""

    @staticmethod
    def forward(x, k):  # noqa: ANN001, ANN205
        return x * k

    @staticmethod
    def setup_context(ctx, inputs, output):  # noqa: ANN001, ANN205
        ctx.k = inputs[1]

    @staticmethod
    def backward(ctx, grad):  # noqa: ANN001, ANN205
        return grad, None


cube = _Cube.apply  # bound once, as scripts do: the patches must still reach it


def test_the_classes_in_a_graph_are_found_in_order_and_once() -> None:
    x = torch.randn(3, requires_grad=True)
    total = (cube(_Scaled.apply(x, 2.0)) + cube(x)).sum()
    assert custom_function_classes(total) == [_Cube, _Scaled]
    assert custom_function_classes((x * 2).sum()) == []


def test_calls_are_recorded_through_a_bound_apply_and_in_both_forms() -> None:
    x = torch.tensor([1.0, 2.0])
    with recorded_function_calls([_Cube, _Scaled]) as calls:
        cube(_Scaled.apply(x, 3.0))
    assert [c.function for c in calls] == [_Scaled, _Cube]
    assert calls[0].args[1] == 3.0
    assert torch.equal(calls[1].args[0], torch.tensor([3.0, 6.0]))
    assert torch.equal(calls[1].outputs[0], torch.tensor([27.0, 216.0]))
    assert torch.equal(run_forward(_Cube, (x,)), torch.tensor([1.0, 8.0]))
    assert torch.equal(run_forward(_Scaled, (x, 2.0)), torch.tensor([2.0, 4.0]))


def test_inside_the_block_the_backward_is_the_forwards_derivative_and_after_it_the_users() -> None:
    before = {cls: dict(vars(cls)) for cls in (_Cube, _Scaled)}
    x = torch.tensor([1.0, 2.0], requires_grad=True)
    with differentiated_through_forward([_Cube, _Scaled]):
        (g,) = torch.autograd.grad(cube(_Scaled.apply(x, 2.0)).sum(), x)
    assert torch.allclose(g, 3 * (2 * x.detach()) ** 2 * 2)  # d/dx (2x)³
    (g,) = torch.autograd.grad(cube(_Scaled.apply(x, 2.0)).sum(), x)
    assert torch.allclose(g, 3 * (2 * x.detach()))  # the hand-written (wrong) backward again
    assert {cls: dict(vars(cls)) for cls in (_Cube, _Scaled)} == before


def test_the_classes_are_restored_after_an_error_in_the_block() -> None:
    before = dict(vars(_Cube))
    try:
        with recorded_function_calls([_Cube]), differentiated_through_forward([_Cube]):
            raise KeyError("boom")
    except KeyError:
        pass
    assert dict(vars(_Cube)) == before
