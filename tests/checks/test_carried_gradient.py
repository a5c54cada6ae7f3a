"""gradient-carried-from-other-loss: one network's update carrying another's loss."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

import nndoctor
from nndoctor.engine import Selection, check_script

CHECK = "gradient-carried-from-other-loss"

# A GAN on a ring of points in the manner of the DCGAN example: the generator is the
# first network called, so it is the model; the discriminator's optimizer is the other.
GAN = """
import torch
from torch import nn
torch.manual_seed(0)
netG = nn.Sequential(nn.Linear(4, 32), nn.ReLU(), nn.Linear(32, 2))
netD = nn.Sequential(nn.Linear(2, 32), nn.ReLU(), nn.Linear(32, 1))
optimizerD = torch.optim.Adam(netD.parameters(), lr=1e-3)
optimizerG = torch.optim.Adam(netG.parameters(), lr=1e-3)
criterion = nn.BCEWithLogitsLoss()
angle = torch.rand(2048) * 6.2832
data = torch.stack([angle.cos(), angle.sin()], 1)
for step in range(40):
    real = data[torch.randint(0, 2048, (64,))]
    fake = netG(torch.randn(64, 4))
    optimizerD.zero_grad()
    {zero_both}
    errD = criterion(netD(real), torch.ones(64, 1)) + criterion(netD({handed}), torch.zeros(64, 1))
    errD.backward(retain_graph=True)
    optimizerD.step()
    {zero_g}
    errG = criterion(netD(fake), torch.ones(64, 1))
    errG.backward()
    optimizerG.step()
"""


def _gan(tmp_path: Path, handed: str, zero_both: str, zero_g: str) -> nndoctor.Report:
    path = tmp_path / "gan.py"
    script = textwrap.dedent(GAN).format(handed=handed, zero_both=zero_both, zero_g=zero_g)
    path.write_text(script)
    return check_script(str(path), steps=12, phase_steps=0, selection=Selection(select=(CHECK,)))


@pytest.mark.fires("gradient-carried-from-other-loss")
def test_the_discriminator_loss_carried_into_the_generator_step_is_an_error(
    tmp_path: Path,
) -> None:
    report = _gan(tmp_path, handed="fake", zero_both="optimizerG.zero_grad()", zero_g="")
    (finding,) = report.by_check(CHECK)
    assert finding.reasons == [18, 26] and finding.severity.value == "error"
    assert finding.evidence["steps_carried"] * 2 > finding.evidence["steps_with_other_optimizer"]


@pytest.mark.silent("gradient-carried-from-other-loss")
def test_a_detached_fake_keeps_the_generator_gradient_its_own(tmp_path: Path) -> None:
    report = _gan(tmp_path, handed="fake.detach()", zero_both="optimizerG.zero_grad()", zero_g="")
    assert report.by_check(CHECK) == []
    assert report.result(CHECK).status.value == "passed"


@pytest.mark.silent("gradient-carried-from-other-loss")
def test_zeroing_the_generator_before_its_own_backward_clears_what_was_carried(
    tmp_path: Path,
) -> None:
    report = _gan(tmp_path, handed="fake", zero_both="", zero_g="netG.zero_grad()")
    assert report.by_check(CHECK) == []
    assert "0 of" in report.result(CHECK).detail


def test_one_network_with_one_optimizer_has_nothing_to_carry(tmp_path: Path) -> None:
    path = tmp_path / "plain.py"
    path.write_text(
        textwrap.dedent(
            """
            import torch
            from torch import nn
            torch.manual_seed(0)
            model = nn.Linear(4, 1)
            opt = torch.optim.SGD(model.parameters(), lr=0.1)
            for step in range(20):
                x = torch.randn(32, 4)
                opt.zero_grad()
                nn.functional.mse_loss(model(x), x[:, :1]).backward()
                opt.step()
            """
        )
    )
    report = check_script(str(path), steps=8, phase_steps=0, selection=Selection(select=(CHECK,)))
    assert report.result(CHECK).status.value == "skipped"
