"""Batches cut by hand: the epoch length from the array the script holds, and the copies
of the model it holds (nndoctor.capture.source_data, EvaluatedCopyRecorder.adopt_held)."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import numpy as np
import torch

from nndoctor.capture.runner import run_script
from nndoctor.capture.source_data import (
    _share_held,
    epoch_from_source,
    held_values,
    permute_rows,
    whole_arrays,
)
from nndoctor.probes.recording import Recording, StepRecord, TensorSummary
from nndoctor.probes.training import sample_projection

HAND_CUT = """
import torch, torch.nn as nn
from torch.optim.swa_utils import AveragedModel
torch.manual_seed(0)
everything = torch.randn(1000, 8)
x = everything[:640].clone()          # the training split: 20 steps of 32 an epoch
y = (x[:, 0] > 0).long()
val = everything[640:].clone()
model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Dropout(0.1), nn.Linear(32, 2))
ema = AveragedModel(model)
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)


def main():
    for epoch in range(3):
        perm = torch.randperm(len(x))
        for i in range(0, len(x), 32):
            idx = perm[i : i + 32]
            xb = {inputs}
            loss = nn.functional.cross_entropy(model(xb), y[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            ema.update_parameters(model)
        model.eval()
        with torch.no_grad():
            print("val", model(val).argmax(1).float().mean().item())
            hidden = ema.module[1](ema.module[0](val))   # the average, evaluated by parts
            print("ema", ema.module[3](hidden).argmax(1).float().mean().item())
        {resume}


main()
"""


def _script(tmp_path: Path, inputs: str = "x[idx]", resume: str = "pass") -> str:
    path = tmp_path / "hand_cut.py"
    path.write_text(textwrap.dedent(HAND_CUT).format(inputs=inputs, resume=resume))
    return str(path)


def test_the_training_array_held_by_the_script_gives_the_epoch(tmp_path: Path) -> None:
    recording = run_script(_script(tmp_path), steps=8).recording
    # The watch followed the script to its first evaluation, at the end of the first epoch: the
    # smallest held array holding the samples is the training split (640 rows, 20 steps),
    # not the data before the split (1000 rows).
    assert recording.epoch_watch_end == "training resumed after the first evaluation pass"
    after = recording.mode_after_evaluation
    assert after is not None and after.step == 20 and not after.model_training


def test_copies_evaluated_by_their_parts_are_copies_evaluated(tmp_path: Path) -> None:
    recording = run_script(_script(tmp_path, resume="model.train()"), steps=8).recording
    (copy,) = recording.evaluated_copies
    assert copy.network == "Sequential" and copy.step == 20
    assert not copy.at_initial_weights and copy.model_changed


def test_inputs_changed_on_the_way_leave_the_epoch_unknown(tmp_path: Path) -> None:
    # Noise added to every batch: no held array holds those samples; no watch, as before.
    path = _script(tmp_path, inputs="x[idx] + 0.1 * torch.randn(len(idx), 8)")
    recording = run_script(path, steps=8).recording
    assert recording.epoch_watch_end == "" and recording.mode_after_evaluation is None


def test_a_share_held_counts_fingerprints_within_rounding() -> None:
    candidate = np.array([3.0, -1.5, 10.0, 0.25])
    recorded = np.array([3.0 * (1 + 1e-7), 10.0, 7.0])
    assert _share_held(candidate, recorded) == 2 / 3


def test_the_smallest_array_holding_the_samples_is_the_source() -> None:
    everything = torch.randn(300, 3, 4)
    train = everything[:200].clone()  # noqa: F841 - held by this frame, found through it
    batches = [train[torch.randperm(200)[:25]] for _ in range(4)]
    recording = Recording()
    for step, xb in enumerate(batches):
        prints = xb.reshape(25, -1) @ sample_projection(12)
        recording.steps.append(
            StepRecord(
                step=step,
                inputs=TensorSummary(tuple(xb.shape), "float32"),
                sample_fingerprints=prints.tolist(),
            )
        )
    frame = sys._getframe()
    assert epoch_from_source(recording, [frame]) == 8  # 200 rows in batches of 25
    assert epoch_from_source(Recording(), [frame]) is None
    assert any(v is everything for v in held_values([frame]))


def test_the_whole_arrays_fed_beside_the_input_are_its_samples_other_elements() -> None:
    data = np.random.default_rng(0).normal(size=(64, 5)).astype(np.float32)
    x, y = torch.from_numpy(data[:, :4]), torch.from_numpy(data[:, 4:])
    labels = np.arange(64) % 3
    labels_t = torch.from_numpy(labels)  # the same memory as labels: re-paired once
    order = torch.randperm(64)  # sample numbers, not contents
    weights = torch.ones(64, requires_grad=True)  # learned, never written
    other = torch.randn(10, 4)  # other rows: no sample of these
    frame = sys._getframe()
    sources, partners = whole_arrays([x.clone()], [frame])
    assert any(s.data_ptr() == x.data_ptr() for s in sources)
    # data holds the input's elements and is left out; y's view of it is the target.
    assert any(p.data_ptr() == y.data_ptr() for p in partners)
    assert sum(p.data_ptr() == labels_t.data_ptr() for p in partners) == 1
    assert not any(p.data_ptr() == x.data_ptr() for p in partners)
    assert not any(p is order or p is weights or p is other for p in partners)
    before = y.clone()
    partner = torch.roll(torch.arange(64), 1)
    assert permute_rows(partners, partner) == len(partners)
    assert torch.equal(y, before[partner]) and torch.equal(torch.from_numpy(data[:, :4]), x)
    assert np.array_equal(labels, (np.arange(64) % 3)[partner.numpy()])
    # A model input no held array equals (normalised on the way) has no held samples.
    assert whole_arrays([x * 2], [frame]) == ([], [])
