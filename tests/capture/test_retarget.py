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


CRITIC_FIRST_GAN = """
gen = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 10))
critic = nn.Sequential(nn.Linear(10, 16), nn.ReLU(), nn.Linear(16, 1))
c_opt = torch.optim.Adam(critic.parameters(), lr=1e-4)
g_opt = torch.optim.Adam({g_params}.parameters(), lr=1e-4)
for it in range(60):
    real_score = critic(X[:32, :10]).mean()
    with torch.no_grad():
        fake = gen(torch.randn(32, 4))
    c_loss = critic(fake).mean() - real_score
    c_opt.zero_grad(); c_loss.backward(); c_opt.step()
    g_loss = -critic(gen(torch.randn(32, 4))).mean()
    g_opt.zero_grad(); gen.zero_grad(); g_loss.backward(); g_opt.step()
"""


@pytest.mark.fires(CHECK)
def test_a_generator_whose_optimizer_holds_the_critics_parameters_is_reported(
    tmp_path: Path,
) -> None:
    # The critic is called first in a training forward and observed; the generator's
    # gradients arrive with its own loss and no optimizer holds its parameters.
    path = _script(tmp_path, CRITIC_FIRST_GAN.format(g_params="critic"))
    report = check_script(path, steps=6, phase_steps=0, selection=Selection(select=(CHECK,)))
    assert report.run.observed
    (finding,) = [f for f in report.findings if f.check == CHECK]
    assert finding.reasons == [23] and finding.severity.value == "error"
    assert finding.title == "Sequential receives gradients but no optimizer holds its parameters"
    assert finding.evidence["with_gradient"] == 4 and finding.evidence["parameters"] == 4
    assert "random initial weights" in finding.message


@pytest.mark.silent(CHECK)
def test_a_generator_with_its_own_optimizer_is_not_reported(tmp_path: Path) -> None:
    path = _script(tmp_path, CRITIC_FIRST_GAN.format(g_params="gen"))
    report = check_script(path, steps=6, phase_steps=0, selection=Selection(select=(CHECK,)))
    assert report.run.observed
    assert report.result(CHECK).status.value == "passed"
    assert report.findings == []


@pytest.mark.silent(CHECK)
def test_a_teacher_updated_as_a_moving_average_is_not_reported(tmp_path: Path) -> None:
    # The teacher is called with autograd on and gets gradients no optimizer uses, but an
    # exponential moving average trains it: it changes.
    path = _script(
        tmp_path,
        """
        import copy
        student = nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Linear(32, 2))
        teacher = copy.deepcopy(student)
        opt = torch.optim.SGD(student.parameters(), lr=0.1)
        for i in range(0, 512, 32):
            xb = X[i:i + 32]
            target = teacher(xb).softmax(-1)
            loss = F.cross_entropy(student(xb), Y[i:i + 32]) + F.mse_loss(student(xb).softmax(-1), target)
            opt.zero_grad(); teacher.zero_grad(); loss.backward(); opt.step()
            with torch.no_grad():
                for t, s in zip(teacher.parameters(), student.parameters()):
                    t.mul_(0.9).add_(0.1 * s)
        """,
    )
    report = check_script(path, steps=6, phase_steps=0, selection=Selection(select=(CHECK,)))
    assert report.run.observed
    assert report.findings == []


def test_the_gradients_of_a_network_whose_optimizer_never_steps_are_counted_when_they_come(
    tmp_path: Path,
) -> None:
    # The generator is found first; its gradients arrive after the discriminator's first
    # step, and its optimizer's step() was replaced by the discriminator's.
    path = _script(
        tmp_path,
        """
        gen = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 10))
        disc = nn.Sequential(nn.Linear(10, 16), nn.ReLU(), nn.Linear(16, 1))
        d_opt = torch.optim.Adam(disc.parameters(), lr=1e-4)
        g_opt = torch.optim.Adam(gen.parameters(), lr=1e-4)
        for it in range(30):
            fake = gen(torch.randn(32, 4))
            d_loss = F.softplus(disc(fake.detach())).mean() + F.softplus(-disc(X[:32])).mean()
            d_opt.zero_grad(); d_loss.backward(); d_opt.step()
            g_loss = F.softplus(-disc(fake)).mean()
            g_opt.zero_grad(); g_loss.backward(); d_opt.step()  # g_opt.step() meant
        """,
    )
    report = check_script(path, steps=5, phase_steps=0, selection=Selection(select=(CHECK,)))
    assert not report.run.observed
    assert report.run.likely_reasons == [23]
    assert "4 of its 4 trainable parameter tensor(s) receive gradients" in report.run.error


@pytest.mark.fires(CHECK)
def test_a_generator_whose_optimizer_never_steps_after_the_critic_is_reported(
    tmp_path: Path,
) -> None:
    path = _script(
        tmp_path, CRITIC_FIRST_GAN.format(g_params="gen").replace("g_opt.step()", "c_opt.step()")
    )
    report = check_script(path, steps=12, phase_steps=0, selection=Selection(select=(CHECK,)))
    assert report.run.observed
    (finding,) = [f for f in report.findings if f.check == CHECK]
    assert finding.reasons == [23] and finding.severity.value == "error"
    assert finding.title == "Sequential's optimizer never steps"
    assert finding.evidence["optimizers_never_stepped"] == ["Adam"]
    assert finding.evidence["other_steps"] >= 10
