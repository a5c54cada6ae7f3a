"""torch.compile'd models: watch keeps the sentinel and the parameter statistics, and says
that it does not see the compiled layers' activations."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import nndoctor


def _train(backend: str, boost_at: int | None) -> nndoctor.WatchReport:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(20, 32), nn.ReLU(), nn.Linear(32, 2))
    compiled = torch.compile(model, backend=backend)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    x = torch.randn(512, 20)
    y = (x[:, 0] > 0).long()
    with nndoctor.watch(compiled, opt, every=2, quiet=True) as w:
        for step in range(80):
            if step == boost_at:
                for g in opt.param_groups:
                    g["lr"] *= 1000
            i = (step * 64) % 512
            opt.zero_grad()
            nn.functional.cross_entropy(compiled(x[i : i + 64]), y[i : i + 64]).backward()
            opt.step()
    return w.report


@pytest.mark.parametrize("boost_at", [None, 40])
def test_a_compiled_model_is_watched_and_says_what_it_cannot_see(boost_at: int | None) -> None:
    report = _train("eager", boost_at)
    assert report.steps_seen == 80
    assert any("torch.compile" in n and "activations are not observed" in n for n in report.notes)
    assert report.series.activation_mean == {}
    assert "0.weight" in report.series.grad_norm and "0.weight" in report.series.update_ratio
    assert report.crashes == []
    loud = [f for f in report.alerts if f.severity.value != "info"]
    if boost_at is None:
        assert loud == []
    else:
        assert loud and 40 <= loud[0].where.step <= 43 and set(loud[0].reasons) & {36, 37}


@pytest.mark.slow
def test_a_model_compiled_with_inductor_is_watched() -> None:
    report = _train("inductor", 40)
    assert report.steps_seen == 80 and report.alerts
