"""The reshape recorder: the user's own reshapes, with their module and line, and nothing else."""

from __future__ import annotations

import torch
from torch import nn

from nndoctor.probes.reshapes import recorded_reshapes


class _PointHead(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.mlp = nn.Conv1d(3, 8, 1)
        self.attn = nn.MultiheadAttention(8, 2, batch_first=True)
        self.weight = nn.Parameter(torch.randn(24))

    def forward(self, points: torch.Tensor) -> torch.Tensor:
        x = points.transpose(1, 2)  # (batch, 3, n)
        h = self.mlp(x).transpose(1, 2)  # (batch, n, 8)
        h = h + self.attn(h, h, h, need_weights=False)[0]
        w = self.weight.view(3, 8)  # a parameter relabelled: not recorded
        return h.reshape(h.size(0), -1) + w.sum()  # (batch, n * 8)


def test_records_the_users_reshapes_with_shapes_module_and_line() -> None:
    model = _PointHead()
    with torch.no_grad(), recorded_reshapes(model) as events:
        model(torch.randn(4, 10, 3))
    # MultiheadAttention reshapes its heads inside torch: tested code, left out.
    assert [(e.op, e.before, e.after, e.module) for e in events] == [
        ("reshape", (4, 10, 8), (4, 80), "<root>")
    ]
    assert events[0].file == __file__ and events[0].line > 0


def test_the_recorder_leaves_nothing_behind() -> None:
    model = _PointHead()
    with recorded_reshapes(model):
        pass
    assert all(not m._forward_pre_hooks and not m._forward_hooks for m in model.modules())
    with recorded_reshapes(None) as events:
        torch.randn(2, 3).view(3, 2)
    assert len(events) == 1
    torch.randn(2, 3).view(3, 2)
    assert len(events) == 1  # the mode is gone after the block


def test_a_constant_tensor_is_marked() -> None:
    with recorded_reshapes(None) as events:
        torch.ones(4, 6).view(6, 4)
        torch.arange(24.0).view(6, 4)
    assert [e.constant for e in events] == [True, False]
