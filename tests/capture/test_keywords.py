"""A model called with positional and keyword arguments (``model(frames, n_future=4)``):
the kept batches hold both, the first one too (met by discovery's global hook, which is
handed positional arguments only), and copies are called as the script called it."""

from __future__ import annotations

import textwrap
from pathlib import Path

import torch

from nndoctor.capture.runner import run_script
from nndoctor.capture.subject import subject_from_capture
from nndoctor.engine import Selection, check_script

FORECASTER = """
import torch, torch.nn as nn
torch.manual_seed(0)

class Forecaster(nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = nn.GRU(4, 16, batch_first=True)
        self.head = nn.Linear(16, 4)

    def forward(self, frames, {horizon}):
        _, h = self.encoder(frames)
        outs, x = [], frames[:, -1:]
        for _ in range(n_future):
            o, h = self.encoder(x, h)
            x = self.head(o)
            outs.append(x)
        return torch.cat(outs, 1)

t = torch.linspace(0, 40, 600)
series = torch.stack([torch.sin(t * (k + 1) / 4) for k in range(4)], 1)
windows = torch.stack([series[i:i + 12] for i in range(0, 580, 2)])
model = Forecaster()
optimizer = torch.optim.Adam(model.parameters(), 1e-3)
for epoch in range(2):
    for i in range(0, len(windows), 32):
        w = windows[i:i + 32]
        loss = nn.functional.mse_loss(model(w[:, :8], n_future=4), w[:, 8:])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
"""


def _script(tmp_path: Path, horizon: str) -> str:
    path = tmp_path / "forecast.py"
    path.write_text(textwrap.dedent(FORECASTER).format(horizon=horizon))
    return str(path)


def test_every_kept_batch_holds_the_keyword_arguments(tmp_path: Path) -> None:
    capture = run_script(_script(tmp_path, "n_future"), steps=4, phase_steps=0)
    assert capture.batches, "no batch was kept"
    assert all(b["kwargs"] == {"n_future": 4} for b in capture.batches)
    subject, why = subject_from_capture(capture)
    assert subject is not None, why
    batch = subject.take_batches(1)[0]
    # The copy's loss is the script's: the horizon replayed, the prediction 4 steps long.
    assert subject.loss_input is not None
    assert subject.loss_input(subject.model, batch).shape[1] == 4
    assert torch.isfinite(subject.compute_loss(subject.model, batch))


SELECTED = ("batch-dependence", "dropout-in-eval-mode", "model-ignores-input")


def _statuses(path: str) -> dict[str, str]:
    report = check_script(path, steps=20, selection=Selection(select=SELECTED))
    return {c.check: c.status for c in report.checks if c.check in SELECTED}


def test_a_keyword_for_a_positional_parameter_is_passed_in_its_place(tmp_path: Path) -> None:
    # model(frames, n_future=4) is model(frames, 4): experiments cut and perturb it so.
    statuses = _statuses(_script(tmp_path, "n_future"))
    assert set(statuses.values()) == {"passed"}, statuses


def test_a_required_keyword_only_argument_skips_positional_experiments(tmp_path: Path) -> None:
    statuses = _statuses(_script(tmp_path, "*, n_future"))
    assert statuses["model-ignores-input"] == "passed"
    # A positional input alone would call the model without its horizon: skipped, said why.
    assert statuses["batch-dependence"] == "skipped"
    assert "crashed" not in statuses.values()
