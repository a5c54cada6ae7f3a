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


class _RowNorm(nn.Module):
    """Divides each row by its norm: an all-zero row gives 0/0."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x / x.norm(dim=1, keepdim=True)


@pytest.mark.parametrize("how", ["wrapper", "in place"])
def test_a_compiled_model_still_has_its_nan_replayed_and_its_eval_mode_seen(how: str) -> None:
    """``torch.compile(model)`` and ``model.compile()``: the model's own hooks run inside the
    compiled call, so watch observes the call from outside it, for both forms."""
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Linear(20, 32, bias=False), _RowNorm(), nn.BatchNorm1d(32), nn.ReLU(), nn.Linear(32, 2)
    )
    if how == "wrapper":
        called = torch.compile(model, backend="eager")
    else:
        model.compile(backend="eager")
        called = model
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    x = torch.randn(512, 20)
    y = (x[:, 0] > 0).long()
    model.eval()  # and never back to train(): BatchNorm trains on its running statistics
    with nndoctor.watch(called, opt, every=2, quiet=True) as w:
        for step in range(30):
            xb = x[(step * 64) % 512 :][:64].clone()
            if step == 20:
                xb[3] = 0.0
            opt.zero_grad()
            nn.functional.cross_entropy(called(xb), y[(step * 64) % 512 :][:64]).backward()
            opt.step()
    report = w.report
    assert report.crashes == []
    (nan,) = report.by_check("watch-non-finite")
    assert nan.where.step == 20 and nan.where.module == "1", nan.message
    assert nan.where.op is not None and nan.where.op.startswith("div")
    assert [f.where.step for f in report.by_check("watch-train-eval-mode")] == [0]
    assert any("activations are not observed" in n for n in report.notes)
