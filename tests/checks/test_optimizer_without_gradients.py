"""optimizer-without-gradients: an optimizer that keeps stepping over parameters that have
no gradient any more, the model's or another network's."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from nndoctor.engine import Selection, check_script

CHECK = "optimizer-without-gradients"

# A toy GAN: the critic is stepped three times per generator step, and is frozen while the
# generator trains.
GAN = """
import torch, torch.nn as nn
torch.manual_seed(0)
real = torch.randn(4096, 2) * 0.3 + 1.0
critic = nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 1))
gen = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 2))
opt_c = torch.optim.Adam(critic.parameters(), lr=1e-3)
opt_g = torch.optim.Adam(gen.parameters(), lr=1e-3)
for it in range(60):
    {restore}
    for k in range(3):
        x = real[torch.randint(0, 4096, (64,))]
        fake = gen(torch.randn(64, 4)).detach()
        opt_c.zero_grad()
        with torch.set_grad_enabled({critic_grad}):
            loss_c = nn.functional.softplus(-critic(x)).mean() + nn.functional.softplus(critic(fake)).mean()
        if loss_c.requires_grad:
            loss_c.backward()
        opt_c.step()
    for p in critic.parameters():
        p.requires_grad = False
    opt_g.zero_grad()
    {generator_loss}
    opt_g.step()
"""

RESTORE = "for p in critic.parameters():\n        p.requires_grad = True"
GEN_LOSS = "nn.functional.softplus(-critic(gen(torch.randn(64, 4)))).mean().backward()"


def _check(tmp_path: Path, restore: str, critic_grad: bool = True) -> object:
    path = tmp_path / "gan.py"
    script = GAN.format(restore=restore, generator_loss=GEN_LOSS, critic_grad=critic_grad)
    path.write_text(textwrap.dedent(script))
    return check_script(str(path), steps=20, selection=Selection(select=(CHECK,)))


@pytest.mark.fires("optimizer-without-gradients")
def test_a_critic_frozen_for_the_generator_and_never_switched_back(tmp_path: Path) -> None:
    report = _check(tmp_path, "pass")
    (finding,) = report.by_check(CHECK)
    assert finding.reasons == [23] and finding.evidence["steps_without_gradient_at_end"] >= 3
    assert finding.evidence["steps"] > finding.evidence["steps_without_gradient_at_end"]


@pytest.mark.fires("optimizer-without-gradients")
def test_a_critic_whose_loss_is_computed_without_gradients(tmp_path: Path) -> None:
    # The critic's loss is computed under no_grad: its optimizer never meets a gradient,
    # and the generator, observed as the model, trains against a random critic.
    report = _check(tmp_path, RESTORE, critic_grad=False)
    findings = report.by_check(CHECK)
    assert [f.evidence["network"] for f in findings] == ["other"]
    assert findings[0].evidence["steps"] == findings[0].evidence["steps_without_gradient_at_end"]


@pytest.mark.silent("optimizer-without-gradients")
def test_networks_frozen_in_turn_and_switched_back(tmp_path: Path) -> None:
    report = _check(tmp_path, RESTORE)
    assert report.by_check(CHECK) == []
    result = report.result(CHECK)
    assert result.status == "passed" and "another network" in result.detail


def test_a_model_that_never_has_a_gradient_at_its_step_is_left_to_the_checks_that_explain_it(
    tmp_path: Path,
) -> None:
    # zero_grad between backward and step: the first step's gradients are read after the
    # backward pass, before the optimizer is known, and cleared before it steps. The model
    # never has a gradient when its optimizer steps; that is params-not-changing's to say.
    path = tmp_path / "train.py"
    path.write_text(
        textwrap.dedent(
            """
            import torch, torch.nn as nn
            torch.manual_seed(0)
            model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
            opt = torch.optim.SGD(model.parameters(), lr=0.1)
            for _ in range(40):
                x = torch.randn(32, 4)
                loss = nn.functional.cross_entropy(model(x), (x[:, 0] > 0).long())
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                opt.zero_grad(set_to_none=True)
                opt.step()
            """
        )
    )
    report = check_script(str(path), steps=20, selection=Selection(select=(CHECK,)))
    assert report.by_check(CHECK) == []
    result = report.result(CHECK)
    assert result.status == "passed" and "20 step(s), the last 20 without" in result.detail
