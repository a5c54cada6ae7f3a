"""Following the network the optimizer trains when the script calls another one first."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from nndoctor.capture.runner import run_script
from nndoctor.engine import Selection, check_script

HEAD = """
import torch
from torch import nn
import torch.nn.functional as F
torch.manual_seed(0)
X = torch.randn(512, 10)
Y = (X[:, 0] - X[:, 1] > 0).long()
"""

CHECK = "params-not-in-optimizer"


def _script(tmp_path: Path, body: str) -> str:
    path = tmp_path / "train.py"
    path.write_text(HEAD + textwrap.dedent(body))
    return str(path)


FEATURES_THEN_HEAD = """
backbone = nn.Sequential(nn.Linear(10, 32), nn.ReLU())
head = nn.Sequential(nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 2))
opt = torch.optim.SGD(head.parameters(), lr=0.1)
for epoch in range(10):
    for i in range(0, 512, 32):
        {features}
        loss = F.cross_entropy(head(f), Y[i:i + 32])
        opt.zero_grad(); loss.backward(); opt.step()
"""


@pytest.mark.silent(CHECK)
def test_a_feature_extractor_under_no_grad_is_set_aside_and_the_head_observed(
    tmp_path: Path,
) -> None:
    path = _script(
        tmp_path,
        FEATURES_THEN_HEAD.format(
            features="with torch.no_grad():\n            f = backbone(X[i:i + 32])"
        ),
    )
    capture = run_script(path, steps=5, phase_steps=0)
    assert capture.observed and capture.steps == 5
    # The head, from the weights it had before its optimizer's first step.
    assert capture.model is not None and len(capture.model) == 3
    assert capture.recording.optimizer_class == "SGD"
    first_weight = next(iter(capture.initial_state.values()))
    assert not (first_weight == capture.model[0].weight).all()
    report = check_script(path, steps=5, phase_steps=0, selection=Selection(select=(CHECK,)))
    assert report.run.observed
    assert report.result(CHECK).status.value == "passed"
    assert report.findings == []


@pytest.mark.fires(CHECK)
def test_an_encoder_no_optimizer_holds_is_reported_while_its_decoder_is_observed(
    tmp_path: Path,
) -> None:
    path = _script(tmp_path, FEATURES_THEN_HEAD.format(features="f = backbone(X[i:i + 32])"))
    report = check_script(path, steps=5, phase_steps=0, selection=Selection(select=(CHECK,)))
    assert report.run.observed and report.run.steps_observed == 5
    (finding,) = [f for f in report.findings if f.check == CHECK]
    assert finding.reasons == [23] and finding.severity.value == "error"
    assert "Sequential receives gradients but no optimizer holds its parameters" in finding.title
    assert finding.evidence["with_gradient"] == 2


def test_an_optimizer_that_never_steps_its_network_is_named_as_the_likely_cause(
    tmp_path: Path,
) -> None:
    path = _script(
        tmp_path,
        """
        encoder = nn.Sequential(nn.Linear(10, 32), nn.ReLU())
        decoder = nn.Linear(32, 2)
        enc_opt = torch.optim.Adam(encoder.parameters(), lr=1e-3)
        dec_opt = torch.optim.Adam(decoder.parameters(), lr=1e-3)
        for i in range(0, 512, 32):
            loss = F.cross_entropy(decoder(encoder(X[i:i + 32])), Y[i:i + 32])
            enc_opt.zero_grad(); dec_opt.zero_grad()
            loss.backward()
            dec_opt.step()  # enc_opt.step() forgotten
        """,
    )
    report = check_script(path, steps=5, phase_steps=0, selection=Selection(select=(CHECK,)))
    assert not report.run.observed
    assert report.run.likely_reasons == [23]
    assert "the Adam optimizer holding its parameters never stepped" in report.run.error
    assert "stepped 16 time(s) over Linear" in report.run.error


def test_a_critic_stepped_several_times_per_generator_step_keeps_the_generator(
    tmp_path: Path,
) -> None:
    # The network found first has an optimizer of its own that steps later (every fifth
    # step here): it is not set aside.
    path = _script(
        tmp_path,
        """
        gen = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 10))
        critic = nn.Sequential(nn.Linear(10, 16), nn.ReLU(), nn.Linear(16, 1))
        g_opt = torch.optim.Adam(gen.parameters(), lr=1e-4)
        c_opt = torch.optim.Adam(critic.parameters(), lr=1e-4)
        for it in range(60):
            fake = gen(torch.randn(32, 4))
            c_loss = critic(fake.detach()).mean() - critic(X[:32]).mean()
            c_opt.zero_grad(); c_loss.backward(); c_opt.step()
            if it % 5 == 4:
                g_loss = -critic(gen(torch.randn(32, 4))).mean()
                g_opt.zero_grad(); g_loss.backward(); g_opt.step()
        """,
    )
    capture = run_script(path, steps=3, phase_steps=0)
    assert capture.observed and capture.steps == 3
    assert capture.recording.unstepped is None
    assert capture.model is not None and capture.model[-1].out_features == 10  # the generator
