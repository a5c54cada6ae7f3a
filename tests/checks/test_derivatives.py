"""derivative-without-graph: a derivative inside the loss taken without create_graph."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

import nndoctor
from nndoctor.engine import Selection, check_script

CHECK = "derivative-without-graph"

PENALISED = """
import torch
from torch import nn
torch.manual_seed(0)
critic = nn.Sequential(nn.Linear(2, 32), nn.Tanh(), nn.Linear(32, 1))
opt = torch.optim.Adam(critic.parameters(), lr=1e-3)
real = torch.randn(512, 2) + 2.0
for step in range(30):
    x = real[torch.randint(0, 512, (64,))]
    fake = torch.randn(64, 2)
    alpha = torch.rand(64, 1)
    x_hat = (alpha * x + (1 - alpha) * fake).requires_grad_(True)
    g = torch.autograd.grad(critic(x_hat).sum(), x_hat, {graph})[0]
    {use}
    opt.zero_grad()
    loss.backward()
    opt.step()
"""

PENALTY = "loss = critic(fake).mean() - critic(x).mean() + 10 * ((g.norm(dim=1) - 1) ** 2).mean()"


def _check(tmp_path: Path, graph: str, use: str = PENALTY) -> nndoctor.Report:
    path = tmp_path / "penalised.py"
    path.write_text(textwrap.dedent(PENALISED).format(graph=graph, use=use))
    return check_script(str(path), steps=10, timeout=600.0, selection=Selection(select=(CHECK,)))


@pytest.mark.fires("derivative-without-graph")
def test_a_gradient_penalty_without_create_graph_is_an_error(tmp_path: Path) -> None:
    report = _check(tmp_path, graph="retain_graph=True")
    (finding,) = report.by_check(CHECK)
    assert finding.reasons == [18, 26] and finding.severity.value == "error"
    assert finding.evidence["relative_change"] > 1e-3
    script = (tmp_path / "penalised.py").read_text().splitlines()
    line = next(i for i, text in enumerate(script, start=1) if "autograd.grad" in text)
    assert finding.evidence["line"] == line and f"penalised.py:{line}" in finding.message


def test_a_penalty_with_create_graph_has_nothing_to_replay(tmp_path: Path) -> None:
    report = _check(tmp_path, graph="create_graph=True")
    result = report.result(CHECK)
    assert result.status.value == "skipped" and "no derivative was taken" in result.detail


@pytest.mark.silent("derivative-without-graph")
def test_an_input_gradient_that_only_builds_an_adversarial_input_passes(tmp_path: Path) -> None:
    # FGSM-style: the derivative moves the input, which the model is then trained on.
    use = "loss = (critic(x_hat + 0.1 * g / (g.norm() + 1e-8)) - 1).pow(2).mean()"
    report = _check(tmp_path, graph="retain_graph=True", use=use)
    result = report.result(CHECK)
    assert report.by_check(CHECK) == []
    assert result.status.value == "passed" and "builds a model input" in result.detail


@pytest.mark.silent("derivative-without-graph")
def test_a_derivative_that_is_only_logged_passes(tmp_path: Path) -> None:
    use = "loss = critic(fake).mean() - critic(x).mean(); logged = g.norm(dim=1).mean().item()"
    report = _check(tmp_path, graph="retain_graph=True", use=use)
    result = report.result(CHECK)
    assert report.by_check(CHECK) == []
    assert (
        result.status.value == "passed" and "changes the gradient by 0 of its norm" in result.detail
    )
