"""Copies of models that keep tensors of an autograd graph (a REINFORCE policy's log-probs)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import torch
from torch import nn

from nndoctor.copying import deepcopy_detached
from nndoctor.engine import Selection, check_script


class Policy(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Linear(4, 2)
        self.saved_log_probs: list[torch.Tensor] = []
        self.cache = {"last": None}


def test_graph_tensors_a_module_keeps_are_copied_detached() -> None:
    policy = Policy()
    logp = torch.log_softmax(policy.net(torch.randn(3, 4)), -1)[:, 0]
    policy.saved_log_probs.append(logp)
    policy.cache["last"] = logp * 2
    with pytest.raises(RuntimeError, match="graph leaves"):
        import copy

        copy.deepcopy(policy)
    twin = deepcopy_detached(policy)
    (kept,) = twin.saved_log_probs
    assert kept.grad_fn is None and torch.equal(kept, logp.detach())
    assert twin.cache["last"].grad_fn is None
    # The user's own tensors keep their graph, and the parameters are separate copies.
    assert policy.saved_log_probs[0] is logp and logp.grad_fn is not None
    assert twin.net.weight is not policy.net.weight
    assert torch.equal(twin.net.weight, policy.net.weight)


REINFORCE = """
import torch
from torch import nn
from torch.distributions import Categorical
torch.manual_seed(0)


class Policy(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Sequential(nn.Linear(3, 32), nn.ReLU(), nn.Linear(32, 3))
        self.saved_log_probs = []
        self.rewards = []

    def forward(self, x):
        return torch.softmax(self.fc(x), dim=-1)


policy = Policy()
optimizer = torch.optim.Adam(policy.parameters(), lr=1e-2)
for episode in range(200):
    for t in range(8):
        state = torch.randn(1, 3)
        m = Categorical(policy(state))
        action = m.sample()
        policy.saved_log_probs.append(m.log_prob(action))
        policy.rewards.append(1.0 if action.item() == int(state.argmax()) else 0.0)
    returns = torch.tensor(policy.rewards)
    returns = (returns - returns.mean()) / (returns.std() + 1e-6)
    loss = torch.cat([-lp * r for lp, r in zip(policy.saved_log_probs, returns)]).sum()
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    del policy.rewards[:]
    del policy.saved_log_probs[:]
"""


def test_a_reinforce_policy_keeping_its_log_probs_is_checked(tmp_path: Path) -> None:
    path = tmp_path / "reinforce.py"
    path.write_text(textwrap.dedent(REINFORCE))
    report = check_script(
        str(path),
        steps=5,
        phase_steps=0,
        selection=Selection(select=("cannot-overfit-tiny-batch",)),
    )
    assert report.run.observed and report.run.steps_observed == 5
    assert report.run.error is None
    assert report.result("cannot-overfit-tiny-batch").status.value != "crashed"
