"""The adversarial probe: which way each network's loss pushes the critic's score of the
other's outputs, with global hooks that never outlive their steps."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.modules import module as module_mod

from nndoctor.probes.adversarial import MAX_ADVERSARIAL_STEPS
from nndoctor.probes.recording import Recording
from nndoctor.probes.training import TrainingProbe


def _gan_steps(iterations: int, fake_label: float = 0.0) -> tuple[Recording, int]:
    torch.manual_seed(0)
    netG, netD = nn.Linear(4, 2), nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Linear(8, 1))
    optD = torch.optim.SGD(netD.parameters(), lr=0.01)
    optG = torch.optim.SGD(netG.parameters(), lr=0.01)
    bce = nn.BCEWithLogitsLoss()
    rec = Recording()
    with TrainingProbe(rec) as probe:
        probe.attach_model(netG)
        for _ in range(iterations):
            fake = netG(torch.randn(16, 4))
            d_fake = netD(fake.detach())
            optD.zero_grad()
            (
                bce(netD(torch.randn(16, 2)), torch.ones(16, 1))
                + bce(d_fake, torch.full_like(d_fake, fake_label))
            ).backward()
            optD.step()
            optG.zero_grad()
            g_fake = netD(fake)
            bce(g_fake, torch.ones_like(g_fake)).backward()
            optG.step()
        hooks_while_open = len(module_mod._global_forward_hooks)
    return rec, hooks_while_open


def test_pushes_are_labelled_by_the_optimizer_that_steps_next() -> None:
    rec, _ = _gan_steps(3)
    sides = [(p.side, p.critic, p.producer) for p in rec.critic_pushes]
    assert sides == [("critic", "Sequential", "Linear"), ("producer", "Sequential", "Linear")] * 3
    for p in rec.critic_pushes:
        push = p.grad_sum / p.grad_abs_sum
        # Fakes labelled 0 are pushed down by the critic, up by the producer.
        assert push == 1.0 if p.side == "critic" else push == -1.0


def test_global_hooks_are_gone_after_the_watched_steps_and_after_close() -> None:
    before = len(module_mod._global_forward_hooks)
    rec, while_open = _gan_steps(MAX_ADVERSARIAL_STEPS)  # two optimizer steps each
    assert while_open == before  # removed once the watched steps were taken
    assert len(module_mod._global_forward_hooks) == before
    assert len({p.step for p in rec.critic_pushes}) == MAX_ADVERSARIAL_STEPS


def test_a_forward_that_raises_does_not_upset_the_count_of_nested_calls() -> None:
    class Breaks(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = nn.Linear(2, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            self.inner(x)
            raise ValueError("a user error")

    rec = Recording()
    with TrainingProbe(rec):
        try:
            Breaks()(torch.randn(3, 2))
        except ValueError:
            pass
        netG, netD = nn.Linear(2, 2), nn.Linear(2, 1)
        optD = torch.optim.SGD(netD.parameters(), lr=0.1)
        optD.step()  # a step resets the count of open calls
        netD(netG(torch.randn(3, 2)).detach()).sum().backward()
        optD.step()
    assert [p.side for p in rec.critic_pushes] == ["critic"]
    assert not rec.crashes
