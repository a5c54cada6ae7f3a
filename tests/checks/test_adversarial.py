"""A GAN whose two losses push the discriminator's score of generated samples the same way."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from subjects import serious

from nndoctor.engine import Selection, check_script
from nndoctor.report.model import Report

SCRIPT = textwrap.dedent(
    """
    import torch
    import torch.nn.functional as F
    from torch import nn

    torch.manual_seed(0)
    netG = nn.Sequential(nn.Linear(4, 32), nn.ReLU(), nn.Linear(32, 2))
    netD = nn.Sequential(nn.Linear(2, 32), nn.LeakyReLU(0.2), nn.Linear(32, 1))
    optD = torch.optim.Adam(netD.parameters(), lr=2e-4, betas=(0.5, 0.999))
    optG = torch.optim.Adam(netG.parameters(), lr=2e-4, betas=(0.5, 0.999))
    bce = nn.BCEWithLogitsLoss()

    for step in range(40):
        real = torch.randn(64, 2) * 0.1 + 2.0
        D_FIRST
        fake = netG(torch.randn(64, 4))
        optD.zero_grad()
        d_real, d_fake = netD(real), netD(fake.detach())
        errD = D_LOSS
        errD.backward()
        optD.step()
        optG.zero_grad()
        g_fake = netD(fake)
        errG = G_LOSS
        errG.backward()
        optG.step()
    """
)
ONES, ZEROS = "torch.ones_like(d_real)", "torch.zeros_like(d_real)"
BCE_D = f"bce(d_real, {ONES}) + bce(d_fake, {ZEROS})"
BCE_G = f"bce(g_fake, {ONES})"


def _check(tmp_path: Path, d_loss: str, g_loss: str, d_first: str = "") -> Report:
    path = tmp_path / "gan.py"
    path.write_text(
        SCRIPT.replace("D_LOSS", d_loss).replace("G_LOSS", g_loss).replace("D_FIRST", d_first)
    )
    return check_script(
        str(path),
        steps=8,
        phase_steps=0,
        selection=Selection(select=("generator-not-adversarial",)),
    )


@pytest.mark.fires("generator-not-adversarial")
def test_discriminator_labels_swapped_are_found(tmp_path: Path) -> None:
    report = _check(tmp_path, f"bce(d_real, {ZEROS}) + bce(d_fake, {ONES})", BCE_G)
    (finding,) = serious(report, "generator-not-adversarial")
    assert 18 in finding.reasons
    assert finding.evidence["direction"] == "up"
    assert len(finding.evidence["critic_pushes"]) >= 2


def test_a_generator_trained_towards_the_fake_label_is_found(tmp_path: Path) -> None:
    report = _check(tmp_path, BCE_D, f"bce(g_fake, {ZEROS})")
    (finding,) = serious(report, "generator-not-adversarial")
    assert finding.evidence["direction"] == "down"


def test_found_when_the_discriminator_is_called_first(tmp_path: Path) -> None:
    # The observed model is then the discriminator, the generator the other network.
    report = _check(tmp_path, f"bce(d_real, {ZEROS}) + bce(d_fake, {ONES})", BCE_G, "netD(real)")
    assert serious(report, "generator-not-adversarial")


@pytest.mark.silent("generator-not-adversarial")
def test_the_non_saturating_game_passes(tmp_path: Path) -> None:
    report = _check(tmp_path, BCE_D, BCE_G)
    result = report.result("generator-not-adversarial")
    assert result.status.value == "passed"
    assert "8 down" in result.detail and "8 up" in result.detail


@pytest.mark.parametrize(
    ("d_loss", "g_loss"),
    [
        (BCE_D, f"-bce(g_fake, {ZEROS})"),  # the saturating generator loss
        ("d_fake.mean() - d_real.mean()", "-g_fake.mean()"),  # Wasserstein
        ("F.relu(1 - d_real).mean() + F.relu(1 + d_fake).mean()", "-g_fake.mean()"),  # hinge
        (f"bce(d_real, {ZEROS}) + bce(d_fake, {ONES})", f"bce(g_fake, {ZEROS})"),  # 0 = real
    ],
)
def test_other_adversarial_losses_pass(tmp_path: Path, d_loss: str, g_loss: str) -> None:
    report = _check(tmp_path, d_loss, g_loss)
    assert report.result("generator-not-adversarial").status.value == "passed"
    assert not serious(report, "generator-not-adversarial")


def test_one_network_alone_is_not_judged(tmp_path: Path) -> None:
    path = tmp_path / "plain.py"
    path.write_text(
        textwrap.dedent(
            """
            import torch
            from torch import nn

            torch.manual_seed(0)
            net = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 1))
            opt = torch.optim.SGD(net.parameters(), lr=0.1)
            for step in range(20):
                x = torch.randn(32, 4)
                loss = (net(x).squeeze(1) - x.sum(1)).pow(2).mean()
                opt.zero_grad()
                loss.backward()
                opt.step()
            """
        )
    )
    report = check_script(
        str(path),
        steps=8,
        phase_steps=0,
        selection=Selection(select=("generator-not-adversarial",)),
    )
    assert report.result("generator-not-adversarial").status.value == "skipped"


AUXILIARY = textwrap.dedent(
    """
    import torch
    import torch.nn.functional as F
    from torch import nn

    class Critic(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = nn.Sequential(nn.Linear(2, 32), nn.LeakyReLU(0.2))
            self.score, self.classes = nn.Linear(32, 1), nn.Linear(32, 3)

        def forward(self, x):
            h = self.body(x)
            return self.score(h), self.classes(h)

    torch.manual_seed(0)
    netG, netD = nn.Linear(4 + 3, 2), Critic()
    optD = torch.optim.Adam(netD.parameters(), lr=2e-4, betas=(0.5, 0.999))
    optG = torch.optim.Adam(netG.parameters(), lr=2e-4, betas=(0.5, 0.999))
    bce = nn.BCEWithLogitsLoss()
    for step in range(40):
        labels = torch.randint(0, 3, (64,))
        real = torch.randn(64, 2) * 0.1 + labels[:, None].float()
        fake = netG(torch.cat([torch.randn(64, 4), F.one_hot(labels, 3).float()], 1))
        optD.zero_grad()
        (r_score, r_cls), (f_score, f_cls) = netD(real), netD(fake.detach())
        errD = (bce(r_score, torch.full_like(r_score, REAL)) + bce(f_score, torch.full_like(f_score, FAKE))
                + F.cross_entropy(r_cls, labels) + F.cross_entropy(f_cls, labels))
        errD.backward()
        optD.step()
        optG.zero_grad()
        g_score, g_cls = netD(fake)
        errG = bce(g_score, torch.ones_like(g_score)) + F.cross_entropy(g_cls, labels)
        errG.backward()
        optG.step()
    """
)


@pytest.mark.parametrize(("real", "fake", "found"), [("1.0", "0.0", False), ("0.0", "1.0", True)])
def test_an_auxiliary_classifier_gan_is_judged_on_its_score(
    tmp_path: Path, real: str, fake: str, found: bool
) -> None:
    path = tmp_path / "acgan.py"
    path.write_text(AUXILIARY.replace("REAL", real).replace("FAKE", fake))
    report = check_script(
        str(path),
        steps=8,
        phase_steps=0,
        selection=Selection(select=("generator-not-adversarial",)),
    )
    assert bool(serious(report, "generator-not-adversarial")) is found
    assert "its output 0" in report.result("generator-not-adversarial").detail
