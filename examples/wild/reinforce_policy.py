"""REINFORCE on a cart-pole written in the script: healthy.

In the manner of the classic PyTorch reinforcement-learning example: the environment is
a small cart-pole (the usual Euler-integrated physics, a pole that falls past 12 degrees
or a cart that leaves the track ends the episode, +1 reward per step survived, at most
200 steps) written here in plain Python with its own seeded ``random.Random``, so there
is no ``gym`` and no download. ``Policy`` is a two-layer MLP whose softmax gives the
probabilities of pushing left or right; ``select_action`` samples from a
``Categorical`` and keeps the log-probability on the policy; at the end of each episode
``finish_episode`` computes the discounted returns backwards, normalises them over the
episode, and takes one Adam step on ``-(log_prob * return).sum()``. The data is produced
by the policy itself, one episode per optimiser step. argparse, ``main()``; prints the
running reward every 20 episodes and stops once it passes the target.

Healthy: nndoctor should report no warning and no error.

    python examples/wild/reinforce_policy.py
    nndoctor check examples/wild/reinforce_policy.py
"""

import argparse
import math
import random
from collections import deque

import torch
from torch import nn
from torch.distributions import Categorical


class CartPole:
    """Cart-pole balancing: observation (x, x_dot, theta, theta_dot), actions 0 (left) / 1 (right)."""

    gravity, masscart, masspole, length, force_mag, tau = 9.8, 1.0, 0.1, 0.5, 10.0, 0.02
    theta_limit = 12 * 2 * math.pi / 360
    x_limit = 2.4

    def __init__(self, seed: int, max_steps: int = 200) -> None:
        self.rng = random.Random(seed)
        self.max_steps = max_steps

    def reset(self) -> list[float]:
        self.state = [self.rng.uniform(-0.05, 0.05) for _ in range(4)]
        self.steps = 0
        return list(self.state)

    def step(self, action: int) -> tuple[list[float], float, bool]:
        x, x_dot, theta, theta_dot = self.state
        force = self.force_mag if action == 1 else -self.force_mag
        total_mass = self.masspole + self.masscart
        polemass_length = self.masspole * self.length
        cos, sin = math.cos(theta), math.sin(theta)
        temp = (force + polemass_length * theta_dot**2 * sin) / total_mass
        theta_acc = (self.gravity * sin - cos * temp) / (
            self.length * (4.0 / 3.0 - self.masspole * cos**2 / total_mass)
        )
        x_acc = temp - polemass_length * theta_acc * cos / total_mass
        x, x_dot = x + self.tau * x_dot, x_dot + self.tau * x_acc
        theta, theta_dot = theta + self.tau * theta_dot, theta_dot + self.tau * theta_acc
        self.state = [x, x_dot, theta, theta_dot]
        self.steps += 1
        fallen = abs(x) > self.x_limit or abs(theta) > self.theta_limit
        done = fallen or self.steps >= self.max_steps
        return list(self.state), 1.0, done


class Policy(nn.Module):
    def __init__(self, n_obs: int = 4, n_actions: int = 2, hidden: int = 128) -> None:
        super().__init__()
        self.affine1 = nn.Linear(n_obs, hidden)
        self.affine2 = nn.Linear(hidden, n_actions)
        self.saved_log_probs: list[torch.Tensor] = []
        self.rewards: list[float] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.affine1(x))
        return torch.softmax(self.affine2(x), dim=1)


def select_action(policy: Policy, state: list[float]) -> int:
    state_t = torch.tensor(state, dtype=torch.float32).unsqueeze(0)
    probs = policy(state_t)
    m = Categorical(probs)
    action = m.sample()
    policy.saved_log_probs.append(m.log_prob(action))
    return action.item()


def finish_episode(policy: Policy, optimizer: torch.optim.Optimizer, gamma: float) -> float:
    eps = 1e-8
    R = 0.0
    returns: deque[float] = deque()
    for r in policy.rewards[::-1]:
        R = r + gamma * R
        returns.appendleft(R)
    returns_t = torch.tensor(list(returns))
    returns_t = (returns_t - returns_t.mean()) / (returns_t.std() + eps)
    policy_loss = []
    for log_prob, R in zip(policy.saved_log_probs, returns_t, strict=True):
        policy_loss.append(-log_prob * R)
    optimizer.zero_grad()
    loss = torch.cat(policy_loss).sum()
    loss.backward()
    optimizer.step()
    del policy.rewards[:]
    del policy.saved_log_probs[:]
    return loss.item()


def main() -> None:
    parser = argparse.ArgumentParser(description="REINFORCE on a hand-written cart-pole")
    parser.add_argument("--gamma", type=float, default=0.99)
    parser.add_argument("--lr", type=float, default=1e-2)
    parser.add_argument("--episodes", type=int, default=1000)
    parser.add_argument("--target", type=float, default=190.0)
    parser.add_argument("--log-interval", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.manual_seed(args.seed)

    env = CartPole(seed=args.seed)
    policy = Policy()
    optimizer = torch.optim.Adam(policy.parameters(), lr=args.lr)

    running_reward = 10.0
    for i_episode in range(1, args.episodes + 1):
        state, ep_reward = env.reset(), 0.0
        done = False
        while not done:
            action = select_action(policy, state)
            state, reward, done = env.step(action)
            policy.rewards.append(reward)
            ep_reward += reward
        running_reward = 0.05 * ep_reward + 0.95 * running_reward
        loss = finish_episode(policy, optimizer, args.gamma)
        if i_episode % args.log_interval == 0:
            print(
                f"episode {i_episode}\tlast reward {ep_reward:.0f}\t"
                f"average reward {running_reward:.2f}\tloss {loss:.3f}"
            )
        if running_reward > args.target:
            print(f"solved after {i_episode} episodes: average reward {running_reward:.2f}")
            break


if __name__ == "__main__":
    main()
