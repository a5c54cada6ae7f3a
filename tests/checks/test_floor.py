"""loss-without-floor: a loss term whose sign rewards moving the weights without bound."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from subjects import TinyVAE, healthy_classifier, run
from torch import nn

from nndoctor.checks.implementation.floor import _runaway
from nndoctor.checks.thresholds import DEFAULT_THRESHOLDS
from nndoctor.diagnosis import diagnose
from nndoctor.engine import Selection, check_script
from nndoctor.report.model import Finding, Severity

# A VAE fed by hand (no DataLoader): the replay runs the script as written.
VAE_SCRIPT = """
import torch, torch.nn as nn
torch.manual_seed(0)
x = torch.tanh(torch.randn(512, 2) @ torch.randn(2, 16))
enc = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 4))
dec = nn.Sequential(nn.Linear(2, 32), nn.ReLU(), nn.Linear(32, 16))
model = nn.ModuleDict({{"enc": enc, "dec": dec}})
opt = torch.optim.Adam(model.parameters(), lr=1e-3)
for epoch in range(20):
    perm = torch.randperm(512)
    for i in range(0, 512, 32):
        batch = x[perm[i:i + 32]]
        mu, logvar = enc(batch).chunk(2, dim=1)
        recon = dec(mu + torch.randn_like(mu) * (0.5 * logvar).exp())
        kld = {sign}0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(dim=1).mean()
        loss = ((recon - batch) ** 2).sum(dim=1).mean() + kld
        opt.zero_grad()
        loss.backward()
        opt.step()
"""

# Regression with a learned variance: the negative log-likelihood goes below zero and
# falls quickly at first as the variance shrinks, then slows at the noise's level.
GAUSSIAN_NLL_SCRIPT = """
import torch, torch.nn as nn
torch.manual_seed(0)
x = torch.rand(512, 1) * 6 - 3
y = torch.sin(x) + 0.05 * torch.randn(512, 1)
net = nn.Sequential(nn.Linear(1, 64), nn.Tanh(), nn.Linear(64, 2))
opt = torch.optim.Adam(net.parameters(), lr=1e-2)
for epoch in range(100):
    perm = torch.randperm(512)
    for i in range(0, 512, 64):
        idx = perm[i:i + 64]
        mu, logvar = net(x[idx]).chunk(2, dim=1)
        loss = 0.5 * (logvar + (y[idx] - mu) ** 2 / logvar.exp()).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
"""


def _check(tmp_path: Path, text: str) -> object:
    path = tmp_path / "train.py"
    path.write_text(text)
    return check_script(str(path), steps=20, selection=Selection(select=("loss-without-floor",)))


@pytest.mark.fires("loss-without-floor")
def test_a_kl_term_with_its_sign_flipped_has_no_floor(tmp_path: Path) -> None:
    report = _check(tmp_path, VAE_SCRIPT.format(sign=""))
    (finding,) = report.by_check("loss-without-floor")
    assert list(finding.reasons) == [18]
    assert finding.severity.value == "error"
    first, middle, last = finding.evidence["median_by_third"]
    assert last < middle < 0 < first
    # The script plans 320 steps: the longer run stops there.
    assert finding.evidence["steps"] == 320


@pytest.mark.silent("loss-without-floor")
def test_the_same_vae_with_the_kl_added_has_a_floor(tmp_path: Path) -> None:
    report = _check(tmp_path, VAE_SCRIPT.format(sign="-"))
    result = report.result("loss-without-floor")
    assert result.status == "passed", result.detail
    assert "200 steps" in result.detail


@pytest.mark.silent("loss-without-floor")
def test_a_likelihood_below_zero_that_slows_down_has_a_floor(tmp_path: Path) -> None:
    report = _check(tmp_path, GAUSSIAN_NLL_SCRIPT)
    result = report.result("loss-without-floor")
    assert result.status == "passed", result.detail
    assert "→ -" in result.detail  # it did go below zero


def _elbo_with_kl_sign(sign: float) -> object:
    def loss_fn(model: nn.Module, batch: tuple[torch.Tensor]) -> torch.Tensor:
        (x,) = batch
        recon, mu, logvar = model(x)
        kl = sign * -0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum() / len(x)
        return nn.functional.mse_loss(recon, x, reduction="sum") / len(x) + kl

    return loss_fn


def _vae_through_the_api(sign: float) -> object:
    g = torch.Generator().manual_seed(0)
    x = torch.tanh(torch.randn(256, 2, generator=g) @ torch.randn(2, 16, generator=g))
    model = TinyVAE()
    return run(
        select=["loss-without-floor"],
        model=model,
        data=[(x[i : i + 32],) for i in range(0, 256, 32)],
        loss_fn=_elbo_with_kl_sign(sign),
        optimizer=torch.optim.Adam(model.parameters(), lr=1e-3),
    )


@pytest.mark.fires("loss-without-floor")
def test_a_subject_whose_kl_rewards_divergence_has_no_floor() -> None:
    report = _vae_through_the_api(-1.0)
    (finding,) = report.by_check("loss-without-floor")
    assert "a copy trained on the observed batches" in finding.message


@pytest.mark.silent("loss-without-floor")
def test_a_subject_with_the_elbo_as_written_has_a_floor() -> None:
    report = _vae_through_the_api(1.0)
    assert report.result("loss-without-floor").status == "passed"


def test_a_recognised_loss_that_is_zero_or_more_runs_nothing() -> None:
    report = run(select=["loss-without-floor"], **healthy_classifier())
    result = report.result("loss-without-floor")
    assert result.status == "skipped"
    assert "cross_entropy at every observed step" in result.detail


def _line(start: float, per_step: float, n: int = 200) -> list[float]:
    return [start + per_step * i for i in range(n)]


def test_a_steady_fall_below_zero_is_a_runaway() -> None:
    assert _runaway(_line(1.0, -0.05), DEFAULT_THRESHOLDS)["fires"]


def test_a_fall_that_slows_down_is_not() -> None:
    decaying = [-3.0 + 4.0 * math.exp(-i / 30) for i in range(200)]
    assert not _runaway(decaying, DEFAULT_THRESHOLDS)["fires"]


def test_a_fall_that_stays_above_minus_its_start_is_not() -> None:
    # From 10 to 0.05: the steady fall of a loss that is zero or more, not below minus 10.
    assert not _runaway(_line(10.0, -0.04975), DEFAULT_THRESHOLDS)["fires"]


def test_a_loss_flat_at_the_end_is_not() -> None:
    flat_end = _line(1.0, -0.05, 134) + [-5.7 + 0.01 * ((-1) ** i) for i in range(66)]
    assert not _runaway(flat_end, DEFAULT_THRESHOLDS)["fires"]


def test_raw_scores_into_nll_explain_a_loss_without_floor() -> None:
    # NLLLoss takes -x[target]: fed raw scores, it falls for ever as the target's score
    # grows. The mismatch is the cause and the missing floor its symptom.
    unbounded = Finding("loss-without-floor", [18], Severity.ERROR, "t", "m", "fix")
    mismatch = Finding("loss-input-mismatch", [19], Severity.ERROR, "t", "m", "fix")
    d = diagnose([unbounded, mismatch])
    assert [c.lead.check for c in d.causes] == ["loss-input-mismatch"]
    assert (mismatch.role, unbounded.role) == ("cause", "symptom")


MANUAL_SCRIPT = """
import torch, torch.nn as nn
torch.manual_seed(0)
x = torch.randn(256, 4)
y = x.sum(dim=1, keepdim=True)
net = nn.Linear(4, 1)
for step in range(3000):
    loss = (net(x) - y).abs().pow(1.5).mean()
    net.zero_grad()
    loss.backward()
    with torch.no_grad():
        for p in net.parameters():
            p -= 0.01 * p.grad
"""


def test_a_custom_loss_stepped_by_hand_is_skipped_without_replaying_the_script(
    tmp_path: Path,
) -> None:
    # A replay counts optimizer steps: one of a script that takes none would run to its end.
    report = _check(tmp_path, MANUAL_SCRIPT)
    result = report.result("loss-without-floor")
    assert result.status == "skipped"
    assert "updates its parameters by hand" in result.detail


def test_a_loss_hovering_near_zero_that_ends_a_little_lower_is_not() -> None:
    # A policy gradient over fresh episodes: -0.14, then -0.10 (it rose), then -0.20. The
    # last third is below minus the first loss and below the middle one, but the loss did
    # not fall all along.
    g = torch.Generator().manual_seed(0)
    noise = (0.01 * torch.randn(200, generator=g)).tolist()
    levels = [-0.14] * 67 + [-0.10] * 67 + [-0.20] * 66
    hovering = [-0.127] + [a + b for a, b in zip(levels, noise, strict=True)][1:]
    assert not _runaway(hovering, DEFAULT_THRESHOLDS)["fires"]
