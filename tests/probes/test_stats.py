"""Device-side statistics the probes copy to the host once per step."""

from __future__ import annotations

import torch

from nndoctor.probes.stats import class_counts


def test_class_counts_leave_out_ignore_index_and_out_of_range_targets() -> None:
    # A segmentation-style target: -100 marks pixels the loss ignores.
    target = torch.tensor([[0, 2, -100], [2, 2, -100]])
    assert class_counts(target, 3).tolist() == [1.0, 0.0, 3.0]
    assert class_counts(torch.tensor([5, 1]), 3).tolist() == [0.0, 1.0, 0.0]
