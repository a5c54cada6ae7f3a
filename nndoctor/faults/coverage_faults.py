"""Faults that complete the coverage of reasons with few natural bugs in the other
families: a batch as large as the dataset (11), a width-one hidden layer (24), targets
whose noise swamps the signal (5)."""

from __future__ import annotations

from nndoctor.faults.registry import Edit, Fault, register_fault

for fault in (
    Fault(
        "cnn-batch-is-the-dataset",
        "cnn",
        11,
        "dev",
        "batch size raised to the whole training split (1024): one optimizer step per epoch",
        edits=(
            Edit(
                'parser.add_argument("--batch-size", type=int, default=32)',
                'parser.add_argument("--batch-size", type=int, default=1024)',
            ),
        ),
    ),
    Fault(
        "mlp-hidden-width-1",
        "mlp",
        24,
        "dev",
        "hidden width default typed as 1: every class must pass through one ReLU unit",
        edits=(
            Edit(
                'parser.add_argument("--hidden", type=int, default=64)',
                'parser.add_argument("--hidden", type=int, default=1)',
            ),
        ),
    ),
    Fault(
        "regression-noise-swamps-target",
        "regression",
        5,
        "dev",
        "target noise typed as 10.0 instead of 0.1: the target is almost pure noise of the inputs",
        also=(6,),
        edits=(
            Edit(
                "y = y + 0.1 * torch.randn(n, generator=g)",
                "y = y + 10.0 * torch.randn(n, generator=g)",
            ),
        ),
    ),
):
    register_fault(fault)
