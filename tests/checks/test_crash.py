"""A crashed script's likely cause, read from the exception torch raised."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import torch
from torch import nn

from nndoctor.checks.crash import diagnose_crash
from nndoctor.engine import Selection, check_script


def _error(fn) -> str:
    with pytest.raises(RuntimeError) as info:
        fn()
    return f"RuntimeError: {info.value}"


def test_a_graph_back_propagated_twice_is_a_tensor_shared_by_two_losses() -> None:
    layer = nn.Linear(3, 3)

    def twice() -> None:
        out = torch.tanh(layer(torch.randn(4, 3)))
        out.sum().backward()
        out.pow(2).sum().backward()

    diagnosis = diagnose_crash(_error(twice), None)
    assert diagnosis is not None and diagnosis.reasons == (18, 26)
    assert "detach" in diagnosis.cause


def test_a_value_changed_in_place_after_its_use_is_named() -> None:
    def in_place() -> None:
        x = torch.randn(4, 3, requires_grad=True)
        y = torch.sigmoid(x)
        y += 1  # sigmoid saves its output for the backward pass
        y.sum().backward()

    diagnosis = diagnose_crash(_error(in_place), None)
    assert diagnosis is not None and diagnosis.reasons == (22, 26)


def test_an_unrelated_error_has_no_likely_cause() -> None:
    assert diagnose_crash("KeyError: 'epochs'", None) is None


GAN_NOT_DETACHED = """
import torch
from torch import nn
torch.manual_seed(0)
G = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 2))
D = nn.Sequential(nn.Linear(2, 16), nn.LeakyReLU(0.2), nn.Linear(16, 1))
opt_d = torch.optim.Adam(D.parameters(), 2e-4)
opt_g = torch.optim.Adam(G.parameters(), 2e-4)
bce = nn.BCEWithLogitsLoss()
for step in range(50):
    opt_d.zero_grad()
    d_real = bce(D(torch.randn(32, 2) + 3), torch.ones(32, 1))
    fake = G(torch.randn(32, 4))
    d_loss = d_real + bce(D(fake), torch.zeros(32, 1))  # fake not detached
    d_loss.backward()
    opt_d.step()
    opt_g.zero_grad()
    g_loss = bce(D(fake), torch.ones(32, 1))
    g_loss.backward()
    opt_g.step()
"""


def test_a_script_that_raises_after_its_first_step_names_the_likely_cause(tmp_path: Path) -> None:
    script = tmp_path / "gan.py"
    script.write_text(textwrap.dedent(GAN_NOT_DETACHED))
    report = check_script(
        str(script), phase_steps=0, selection=Selection(select=("zero-grad-missing",))
    )
    assert report.run.steps_observed == 1 and report.run.likely_reasons == [18, 26]
    (note,) = [n for n in report.run.notes if "raised after" in n]
    assert "not detached for the discriminator" in note
