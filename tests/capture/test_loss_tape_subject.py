"""A script whose loss is no single recognised call is diagnosed through its loss tape."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from subjects import serious

from nndoctor.capture.runner import run_script
from nndoctor.capture.subject import subject_from_capture
from nndoctor.engine import Selection, check_script

# Cross-entropy plus an auxiliary penalty on the logits: two terms, so no recognised loss
# call is the back-propagated loss; {shuffle} pairs the labels with their inputs or not.
SCRIPT = """
import torch, torch.nn as nn, torch.nn.functional as F
torch.manual_seed(0)
centers = torch.randn(3, 10) * 2
y = torch.randint(0, 3, (2048,))
x = centers[y] + torch.randn(2048, 10)
model = nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Linear(32, 3))
opt = torch.optim.Adam(model.parameters(), lr=1e-2)
for epoch in range(3):
    perm = torch.randperm(2048)
    xs, ys = x[perm], y[{shuffle}]
    for i in range(0, 2048, 64):
        out = model(xs[i:i + 64])
        loss = F.cross_entropy(out, ys[i:i + 64]) + 0.01 * out.pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
"""


def _script(tmp_path: Path, shuffle: str) -> str:
    path = tmp_path / "compound.py"
    path.write_text(textwrap.dedent(SCRIPT.format(shuffle=shuffle)))
    return str(path)


def test_a_compound_loss_gives_a_tape_subject(tmp_path: Path) -> None:
    capture = run_script(_script(tmp_path, "perm"), steps=20, phase_steps=0)
    subject, why = subject_from_capture(capture)
    assert subject is not None, why
    assert subject.task.kind == "classification" and subject.task.num_classes == 3
    batch = subject.take_batches(1)[0]
    target = subject.targets(batch)
    assert target.shape == (64,) and not target.is_floating_point()
    # The user's exact loss: the copy at the run's initial weights gives the first step's.
    first = capture.recording.steps[0].loss
    loss = subject.compute_loss(subject.model, batch).item()
    assert abs(loss - first) < 1e-4 * abs(first)


@pytest.mark.fires("labels-not-connected")
def test_labels_shuffled_apart_from_their_inputs_under_a_compound_loss(tmp_path: Path) -> None:
    report = check_script(
        _script(tmp_path, "torch.randperm(2048)"),
        steps=20,
        phase_steps=0,
        selection=Selection(select=("labels-not-connected",)),
    )
    (finding,) = report.by_check("labels-not-connected")
    assert finding.reasons == [4]


@pytest.mark.silent("labels-not-connected")
def test_the_same_script_healthy_stays_silent(tmp_path: Path) -> None:
    report = check_script(_script(tmp_path, "perm"), steps=20, phase_steps=0)
    assert serious(report) == []
    assert report.result("labels-not-connected").status.value == "passed"
