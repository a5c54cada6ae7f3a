"""loss-met-without-data: a loss that falls to zero on noise inputs rewards no prediction."""

from __future__ import annotations

from pathlib import Path

import pytest

from nndoctor.checks.implementation.data_free import _met_without_data
from nndoctor.checks.thresholds import DEFAULT_THRESHOLDS
from nndoctor.engine import Selection, check_script

# Skip-gram with negative sampling over 40 words in four clusters of ten: a word's
# contexts are words of its own cluster. The loss is computed inside the model (no copy
# rebuilds it), so only a replay of the script can train on noise.
SKIP_GRAM_SCRIPT = """
import torch, torch.nn as nn, torch.nn.functional as F
torch.manual_seed(0)
V, D = 40, 16
centers = torch.randint(0, V, (4096,))
contexts = (centers // 10) * 10 + torch.randint(0, 10, (4096,))

class SkipGram(nn.Module):
    def __init__(self):
        super().__init__()
        self.u = nn.Embedding(V, D)
        self.v = nn.Embedding(V, D)
        nn.init.uniform_(self.u.weight, -0.5 / D, 0.5 / D)
        nn.init.zeros_(self.v.weight)

    def forward(self, center, context, negatives):
        u = self.u(center)                                          # (B, D)
        pos = (u * self.v(context)).sum(-1).clamp(-10, 10)          # (B,)
        neg = torch.bmm(self.v(negatives), u.unsqueeze(2)).squeeze(2).clamp(-10, 10)  # (B, K)
        return (-F.logsigmoid(pos) - F.logsigmoid({sign}neg).sum(1)).mean()

model = SkipGram()
opt = torch.optim.Adam(model.parameters(), lr=0.05)
for epoch in range(10):
    perm = torch.randperm(4096)
    for i in range(0, 4096, 128):
        idx = perm[i:i + 128]
        negatives = torch.randint(0, V, (len(idx), 5))
        loss = model(centers[idx], contexts[idx], negatives)
        opt.zero_grad()
        loss.backward()
        opt.step()
"""

CHECK = "loss-met-without-data"
IGNORES = ("model-ignores-input",)


# A regression under a loss written by hand (no copy rebuilds it) whose model reads zeros;
# reading its input, as the skip-gram does, it is silent.
REGRESSION_SCRIPT = """
import torch, torch.nn as nn
torch.manual_seed(0)
x = torch.randn(2048, 8)
y = torch.tanh(x @ torch.randn(8, 1))

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(8, 32), nn.Tanh(), nn.Linear(32, 1))

    def forward(self, x):
        return self.net({input})

model = Net()
opt = torch.optim.Adam(model.parameters(), lr=1e-2)
for epoch in range(5):
    perm = torch.randperm(2048)
    for i in range(0, 2048, 64):
        idx = perm[i:i + 64]
        loss = (model(x[idx]) - y[idx]).abs().pow(1.5).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
"""


def _check(tmp_path: Path, text: str, checks: tuple[str, ...] = (CHECK,)) -> object:
    path = tmp_path / "train.py"
    path.write_text(text)
    return check_script(str(path), steps=20, selection=Selection(select=checks))


@pytest.mark.fires("loss-met-without-data")
def test_negatives_scored_with_the_sign_of_positives_need_no_data(tmp_path: Path) -> None:
    report = _check(tmp_path, SKIP_GRAM_SCRIPT.format(sign=""))
    (finding,) = report.by_check(CHECK)
    assert list(finding.reasons) == [18]
    assert finding.severity.value == "error"
    evidence = finding.evidence
    assert evidence["noise_last"] <= 0.01 * evidence["noise_first"]
    assert evidence["steps"] == 200


@pytest.mark.silent("loss-met-without-data")
@pytest.mark.silent("model-ignores-input")
def test_negative_sampling_as_written_needs_the_data(tmp_path: Path) -> None:
    report = _check(tmp_path, SKIP_GRAM_SCRIPT.format(sign="-"), (CHECK, "model-ignores-input"))
    result = report.result(CHECK)
    assert result.status == "passed", result.detail
    assert "on noise" in result.detail
    # The noise reached the model and changed its loss: it reads its input.
    ignores = report.result("model-ignores-input")
    assert ignores.status == "passed", ignores.detail
    assert "replayed" in ignores.detail


@pytest.mark.fires("model-ignores-input")
def test_a_model_that_reads_zeros_instead_of_its_input_ignores_it(tmp_path: Path) -> None:
    report = _check(tmp_path, REGRESSION_SCRIPT.format(input="x.detach() * 0"), IGNORES)
    (finding,) = report.by_check("model-ignores-input")
    assert list(finding.reasons) == [2]
    assert finding.evidence["max_relative_gap"] <= 1e-4
    assert "replayed" in finding.message


def test_a_loss_the_data_lowers_at_nearly_every_step_is_not_met_without_it() -> None:
    t = DEFAULT_THRESHOLDS
    # A one-class objective (a distance to a fixed centre): noise alone falls to 0.5% of
    # its start, but the data is a fifth lower at every step of the last third.
    noise = [10.0] + [0.05 + 0.001 * (i % 7) for i in range(199)]
    lower = [v * 0.8 for v in noise]
    assert not _met_without_data(lower, noise, t)["fires"]
    # The same noise run beside a real run a twentieth lower at every step (ids that occur
    # often, pairs that repeat), or a fifth lower at only half the steps.
    slightly = [v * 0.95 for v in noise]
    assert _met_without_data(slightly, noise, t)["fires"]
    mixed = [v * (0.8 if i % 2 else 1.05) for i, v in enumerate(noise)]
    verdict = _met_without_data(mixed, noise, t)
    assert verdict["fires"] and verdict["p_data_lowers"] > 0.01
    # A loss that goes below zero has no zero to reach.
    assert not _met_without_data([2.0] * 200, [2.0] + [-1.0] * 199, t)["fires"]
    # Nor does one that keeps 2% of its start on noise.
    assert not _met_without_data(mixed, [10.0] + [0.2] * 199, t)["fires"]
