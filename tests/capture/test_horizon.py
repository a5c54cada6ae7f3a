"""The run a script's loops plan, read at an optimizer step (nndoctor.capture.horizon)."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path
from types import FrameType

import pytest

from nndoctor.capture.horizon import Horizon, read_horizon
from nndoctor.capture.runner import run_script
from nndoctor.capture.source_data import script_frames


def _run(tmp_path: Path, body: str, epoch_length: int | None = None) -> Horizon | None:
    """Run ``body`` as a module whose ``step()`` reads the horizon at the call."""
    path = tmp_path / "train.py"
    path.write_text(textwrap.dedent(body))
    seen: list[Horizon | None] = []

    def step() -> None:
        frames: list[FrameType] = script_frames([str(path)], sys._getframe(1))
        seen.append(read_horizon(frames, epoch_length))

    code = compile(path.read_text(), str(path), "exec")
    exec(code, {"__name__": "__main__", "step": step})  # noqa: S102 - the test's own script
    return seen[0]


def test_an_epoch_range_over_a_dataloader(tmp_path: Path) -> None:
    horizon = _run(
        tmp_path,
        """
        import argparse, torch
        from torch.utils.data import DataLoader, TensorDataset
        args = argparse.Namespace(epochs=12, batch_size=10)
        loader = DataLoader(TensorDataset(torch.zeros(95, 2)), batch_size=args.batch_size)
        for epoch in range(1, args.epochs + 1):
            for i, (xb,) in enumerate(loader):
                step()
        """,
    )
    assert horizon is not None
    assert horizon.steps == 12 * 10 and horizon.exact
    assert horizon.loops == [
        "`for epoch in range(1, args.epochs + 1)` (12)",
        "`for (i, (xb,)) in enumerate(loader)` (10)",
    ]


def test_loops_in_the_caller_multiply_those_of_the_function_that_steps(tmp_path: Path) -> None:
    horizon = _run(
        tmp_path,
        """
        import math
        config = {"epochs": 3}
        data = list(range(1000))

        def train_one_epoch(batches):
            for start in range(0, len(data), 64):
                if start % 2 == 0:
                    step()

        def main():
            for epoch in range(config["epochs"]):
                train_one_epoch(math.ceil(len(data) / 64))

        main()
        """,
    )
    assert horizon is not None and horizon.steps == 3 * 16
    assert not horizon.exact  # the step runs under an if: every other batch
    assert horizon.describe().endswith("passes, 48 steps at most")


def test_a_while_loop_to_a_step_count(tmp_path: Path) -> None:
    horizon = _run(
        tmp_path,
        """
        max_steps, step_no = 250, 0
        while step_no < max_steps:
            step()
            step_no += 1
        """,
    )
    assert horizon is not None and horizon.steps == 250


def test_an_iterable_of_unknown_length_is_the_epoch_if_the_recording_knows_it(
    tmp_path: Path,
) -> None:
    body = """
        def batches():
            while True:
                yield 1
        gen = batches()
        for epoch in range(4):
            for _ in zip(range(7), gen):
                step()
        """
    assert _run(tmp_path, body) is None
    horizon = _run(tmp_path, body, epoch_length=7)
    assert horizon is not None and horizon.steps == 28


@pytest.mark.parametrize(
    "bound",
    [
        "trainer.epochs()",  # a call of the script's own: never made
        "Config().epochs",  # an attribute behind user code
        "10**12",  # no plan, a sentinel (and a power is not read)
    ],
)
def test_lengths_that_would_run_user_code_are_not_read(tmp_path: Path, bound: str) -> None:
    horizon = _run(
        tmp_path,
        f"""
        calls = []
        class Config:
            @property
            def epochs(self):
                calls.append(1)
                return 5
        class Trainer:
            def epochs(self):
                calls.append(1)
                return 5
        trainer = Trainer()
        for epoch in range({bound}):
            step()
            break
        assert len(calls) <= 1  # the script's own evaluation of the bound, none more
        """,
    )
    assert horizon is None


def test_no_loop_around_the_step_plans_nothing(tmp_path: Path) -> None:
    assert _run(tmp_path, "step()\n") is None


ACCUMULATING = """
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset


class EveryOther:
    '''Steps the optimizer at every second call, as an accumulation helper does inside.'''

    def __init__(self, optimizer):
        self.optimizer, self.calls = optimizer, 0

    def step(self):
        self.calls += 1
        if self.calls % 2 == 0:
            self.optimizer.step()
            self.optimizer.zero_grad()


torch.manual_seed(0)
x, y = torch.randn(640, 4), torch.randn(640, 1)
loader = DataLoader(TensorDataset(x, y), batch_size=32, shuffle=True)  # 20 batches an epoch
model = nn.Linear(4, 1)
optimizer = EveryOther(torch.optim.SGD(model.parameters(), lr=0.01))
for epoch in range(5):
    for xb, yb in loader:
        nn.functional.mse_loss(model(xb), yb).backward()
        optimizer.step()
"""


@pytest.mark.parametrize("every_other", [False, True])
def test_steps_skipped_out_of_sight_make_the_plan_an_upper_bound(
    tmp_path: Path, every_other: bool
) -> None:
    source = ACCUMULATING if every_other else ACCUMULATING.replace("EveryOther(", "(")
    path = tmp_path / "train.py"
    path.write_text(source)
    capture = run_script(str(path), steps=5, phase_steps=0)
    horizon = capture.recording.horizon
    assert horizon is not None and horizon.steps == 100
    # Every other batch steps: the loader yields twice as many batches as there are steps.
    assert horizon.exact is not every_other


def test_array_shapes_in_a_loop_bound_are_read(tmp_path: Path) -> None:
    # The shapes of torch's and numpy's own arrays run no user code to give.
    horizon = _run(
        tmp_path,
        """
        import numpy as np, torch
        from torch.utils.data import TensorDataset
        x, w = torch.zeros(1000, 3), np.zeros((4, 5))
        data = TensorDataset(x)
        for epoch in range(w.shape[0] + x.size(1) - 3):
            for start in range(0, x.size(0), 100):
                for k in range(len(data) // 1000 + x.numel() // 3000 - 1):
                    step()
        """,
    )
    assert horizon is not None and horizon.steps == 4 * 10 * 1 and horizon.exact


def test_the_size_of_a_tensor_subclass_is_not_read(tmp_path: Path) -> None:
    horizon = _run(
        tmp_path,
        """
        import torch
        calls = []
        class Counted(torch.Tensor):
            def size(self, *dims):
                calls.append(1)
                return super().size(*dims)
        x = torch.zeros(40, 3).as_subclass(Counted)
        for start in range(0, x.size(0), 10):
            step()
            break
        assert len(calls) <= 1  # the script's own evaluation of the bound, none more
        """,
    )
    assert horizon is None
