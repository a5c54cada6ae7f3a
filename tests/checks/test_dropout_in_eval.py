"""Dropout that stays on after model.eval() (reason 32)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from subjects import batches, blobs, run
from torch import nn


class FunctionalDropoutNet(nn.Module):
    """An MLP with functional dropout; ``follow_mode`` False is the bug."""

    def __init__(self, follow_mode: bool) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.hidden = nn.Linear(10, 32)
        self.out = nn.Linear(32, 3)
        self.follow_mode = follow_mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.hidden(x))
        if self.follow_mode:
            h = F.dropout(h, 0.5, training=self.training)
        else:
            h = F.dropout(h, 0.5)  # the bug: training defaults to True
        return self.out(h)


class SamplingNet(nn.Module):
    """Noise drawn on purpose in every mode (a VAE's reparameterisation): not dropout."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.mu = nn.Linear(10, 3)
        self.log_std = nn.Linear(10, 3)
        self.drop = nn.Dropout(0.3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.drop(x)
        return self.mu(x) + self.log_std(x).exp() * torch.randn(x.shape[0], 3)


def _check(model: nn.Module):
    x, y = blobs()
    return run(
        select=["dropout-in-eval-mode"],
        model=model,
        data=batches(x, y),
        loss_fn=nn.CrossEntropyLoss(),
        optimizer=torch.optim.Adam(model.parameters(), lr=1e-3),
    )


@pytest.mark.fires("dropout-in-eval-mode")
def test_functional_dropout_without_the_mode_is_caught_with_its_line() -> None:
    report = _check(FunctionalDropoutNet(follow_mode=False))
    (finding,) = report.by_check("dropout-in-eval-mode")
    assert finding.reasons == [32]
    assert finding.severity.value == "warning"
    assert finding.where.file is not None and finding.where.file.endswith("test_dropout_in_eval.py")
    assert "F.dropout(h, 0.5)" in finding.message


@pytest.mark.silent("dropout-in-eval-mode")
@pytest.mark.parametrize("make", [lambda: FunctionalDropoutNet(True), SamplingNet])
def test_dropout_that_follows_the_mode_and_deliberate_sampling_are_silent(make) -> None:
    report = _check(make())
    assert report.by_check("dropout-in-eval-mode") == []
    assert report.result("dropout-in-eval-mode").status.value == "passed"


def test_the_check_leaves_the_random_streams_as_they_were() -> None:
    model = FunctionalDropoutNet(follow_mode=False)
    x, y = blobs()
    torch.manual_seed(123)
    before = torch.get_rng_state()
    run(
        select=["dropout-in-eval-mode"],
        model=model,
        data=batches(x, y),
        loss_fn=nn.CrossEntropyLoss(),
        optimizer=torch.optim.Adam(model.parameters(), lr=1e-3),
    )
    assert torch.equal(torch.get_rng_state(), before)
