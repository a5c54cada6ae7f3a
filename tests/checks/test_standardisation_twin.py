"""Inputs far from standardised: a warning only when their scale holds training back.

Two copies from the initial weights train alike, one on the inputs as they are, one on
them standardised with their observed statistics. Polynomial features of one variable
(x .. x^4) and a row-normalised bag of words are scales the data has, which a model
starts and trains with; features in raw units throw the initialised model off, and
features a thousand times too small leave plain SGD with nothing to learn from.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from subjects import run, serious
from torch import nn

from nndoctor.engine import Selection, check_script

CHECK = "input-not-standardized"


def _regression(x: torch.Tensor, y: torch.Tensor, model: nn.Module, opt: Any) -> dict[str, Any]:
    return {
        "model": model,
        "data": [(x[i : i + 32], y[i : i + 32]) for i in range(0, len(x), 32)],
        "loss_fn": nn.SmoothL1Loss(),
        "optimizer": opt,
    }


def polynomial() -> dict[str, Any]:
    """x, x^2, x^3, x^4 of x ~ N(0, 1) fitted by one Linear: x^4 has std ~10, mean 3."""
    g = torch.Generator().manual_seed(0)
    t = torch.randn(640, generator=g)
    x = torch.stack([t**i for i in range(1, 5)], 1)
    y = x @ torch.tensor([[2.0], [-3.0], [0.5], [1.0]]) + 1.0
    torch.manual_seed(0)
    model = nn.Linear(4, 1)
    return _regression(x, y, model, torch.optim.SGD(model.parameters(), lr=0.1))


def bag_of_words(scale: float = 1.0, sgd: bool = False) -> dict[str, Any]:
    """Documents as word-count rows normalised to sum 1 over 300 words (each feature's std
    is ~0.01), two topics told apart by which words they use."""
    g = torch.Generator().manual_seed(0)
    n, vocab = 512, 300
    y = torch.randint(0, 2, (n,), generator=g)
    rates = torch.full((2, vocab), 0.5)
    rates[0, :150], rates[1, 150:] = 3.0, 3.0
    counts = torch.poisson(rates[y], generator=g)
    x = counts / counts.sum(1, keepdim=True) * scale
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(vocab, 32), nn.ReLU(), nn.Linear(32, 2))
    opt = (
        torch.optim.SGD(model.parameters(), lr=0.1)
        if sgd
        else torch.optim.Adam(model.parameters(), lr=1e-2)
    )
    return {
        "model": model,
        "data": [(x[i : i + 32], y[i : i + 32]) for i in range(0, n, 32)],
        "loss_fn": nn.CrossEntropyLoss(),
        "optimizer": opt,
    }


@pytest.mark.silent(CHECK)
@pytest.mark.parametrize("subject", [polynomial, bag_of_words], ids=["polynomial", "words"])
def test_a_scale_the_data_has_and_the_model_trains_with_is_a_note(subject: Any) -> None:
    report = run(select=[CHECK], **subject())
    (finding,) = report.by_check(CHECK)
    assert finding.severity.value == "info" and finding.reasons == [12]
    assert finding.evidence["standardising_helps"] is False
    assert serious(report) == []


@pytest.mark.fires(CHECK)
def test_features_in_raw_units_throw_the_initialised_model_off() -> None:
    subject = bag_of_words(scale=3000.0)
    report = run(select=[CHECK], **subject)
    (finding,) = report.by_check(CHECK)
    assert finding.severity.value == "warning"
    assert (
        finding.evidence["raw_initial_loss"] > 1.5 * finding.evidence["standardised_initial_loss"]
    )
    assert "changes where training starts" in finding.message


@pytest.mark.fires(CHECK)
def test_features_too_small_for_plain_sgd_to_learn_from_are_found() -> None:
    report = run(select=[CHECK], **bag_of_words(scale=1e-3, sgd=True))
    (finding,) = report.by_check(CHECK)
    assert finding.severity.value == "warning"
    assert "changes how it trains" in finding.message
    assert finding.evidence["raw_final_loss"] > 10 * finding.evidence["standardised_final_loss"]


HAND_WRITTEN_LOSS = """
import torch
from torch import nn

g = torch.Generator().manual_seed(0)
x = torch.randn(512, 8, generator=g)
y = x @ torch.randn(8, 1, generator=g)
x[:, :4] *= 1000.0  # raw units
torch.manual_seed(0)
model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 1))
opt = torch.optim.Adam(model.parameters(), lr=1e-3)
for step in range(40):
    i = (step * 32) % 512
    out = model(x[i : i + 32])
    loss = ((out - y[i : i + 32]) ** 2).mean() + 0.0 * out.abs().mean()
    opt.zero_grad()
    loss.backward()
    opt.step()
"""


@pytest.mark.silent(CHECK)
def test_without_a_twin_the_observation_alone_is_advice(tmp_path: Path) -> None:
    # A hand-written loss: nothing replays it on copies, so nothing shows that the scale
    # holds training back; healthy scripts have such scales too.
    path = tmp_path / "train.py"
    path.write_text(HAND_WRITTEN_LOSS)
    report = check_script(str(path), steps=6, phase_steps=0, selection=Selection(select=(CHECK,)))
    (f,) = report.by_check(CHECK)
    assert f.severity.value == "info" and "not tested" in f.title
    assert "standardising_helps" not in f.evidence
