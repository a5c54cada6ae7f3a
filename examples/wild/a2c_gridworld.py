"""Advantage actor-critic (A2C) on a gridworld written in the script: healthy.

In the manner of the single-file A2C implementations (synchronous parallel
environments, n-step returns, the loss and hyper-parameters of the OpenAI baselines
A2C): the environment is a batch of 16 gridworlds of 6 x 6 cells, vectorised in torch
in the script itself, in which an agent placed at random must walk to a goal placed at
random; the observation is two flattened one-hot planes (agent, goal), the four actions
move up, down, left or right (walls stop the move), each step costs 0.01 and reaching
the goal gives +1 and ends the episode, as does the 40th step; a finished world is
reset at once. ``ActorCritic`` is a shared ReLU trunk with a policy head (action logits)
and a value head, orthogonally initialised (small gain on the policy head). Every update
collects 5 steps from the 16 worlds with actions sampled from a ``Categorical``, builds
the n-step returns backwards from the bootstrapped value of the last observation (cut
at episode ends), and minimises ``policy_loss - 0.01 * entropy + 0.5 * value_loss`` with
the advantages ``returns - values`` detached in the policy term; RMSprop
(``lr=7e-4, alpha=0.99, eps=1e-5``) with the gradient norm clipped at 0.5. A ``main()``
with argparse; prints the mean return and length of the episodes finished in the last
200 updates, and a greedy evaluation at the end.

Healthy: nndoctor should report no warning and no error.

    python examples/wild/a2c_gridworld.py
    nndoctor check examples/wild/a2c_gridworld.py
"""

import argparse
import math

import torch
from torch import nn
from torch.distributions import Categorical

MOVES = torch.tensor([[-1, 0], [1, 0], [0, -1], [0, 1]])


class GridWorlds:
    """A batch of gridworlds: observation = one-hot agent cell and one-hot goal cell."""

    def __init__(self, n_envs: int, size: int, max_steps: int, generator: torch.Generator):
        self.n, self.size, self.max_steps, self.g = n_envs, size, max_steps, generator
        self.agent = torch.zeros(n_envs, 2, dtype=torch.long)
        self.goal = torch.zeros(n_envs, 2, dtype=torch.long)
        self.steps = torch.zeros(n_envs, dtype=torch.long)
        self.reset_where(torch.ones(n_envs, dtype=torch.bool))

    @property
    def obs_dim(self) -> int:
        return 2 * self.size * self.size

    def reset_where(self, which: torch.Tensor) -> None:
        k = int(which.sum())
        if k == 0:
            return
        cells = self.size * self.size
        agent = torch.randint(0, cells, (k,), generator=self.g)
        goal = (agent + torch.randint(1, cells, (k,), generator=self.g)) % cells
        self.agent[which] = torch.stack([agent // self.size, agent % self.size], 1)
        self.goal[which] = torch.stack([goal // self.size, goal % self.size], 1)
        self.steps[which] = 0

    def observe(self) -> torch.Tensor:
        cells = self.size * self.size
        obs = torch.zeros(self.n, 2 * cells)
        rows = torch.arange(self.n)
        obs[rows, self.agent[:, 0] * self.size + self.agent[:, 1]] = 1.0
        obs[rows, cells + self.goal[:, 0] * self.size + self.goal[:, 1]] = 1.0
        return obs

    def step(self, actions: torch.Tensor):
        self.agent = (self.agent + MOVES[actions]).clamp(0, self.size - 1)
        self.steps += 1
        reached = (self.agent == self.goal).all(dim=1)
        reward = torch.where(reached, 1.0, -0.01)
        done = reached | (self.steps >= self.max_steps)
        self.reset_where(done)
        return self.observe(), reward, done


class ActorCritic(nn.Module):
    def __init__(self, obs_dim: int, n_actions: int, hidden: int = 128) -> None:
        super().__init__()
        self.trunk = nn.Sequential(
            nn.Linear(obs_dim, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU()
        )
        self.policy = nn.Linear(hidden, n_actions)
        self.value = nn.Linear(hidden, 1)
        for m in self.trunk:
            if isinstance(m, nn.Linear):
                nn.init.orthogonal_(m.weight, gain=math.sqrt(2))
                nn.init.zeros_(m.bias)
        nn.init.orthogonal_(self.policy.weight, gain=0.01)
        nn.init.zeros_(self.policy.bias)
        nn.init.orthogonal_(self.value.weight, gain=1.0)
        nn.init.zeros_(self.value.bias)

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.trunk(obs)
        return self.policy(h), self.value(h).squeeze(-1)


@torch.no_grad()
def evaluate_greedy(model: ActorCritic, size: int, max_steps: int, seed: int) -> float:
    envs = GridWorlds(256, size, max_steps, torch.Generator().manual_seed(seed))
    obs, total = envs.observe(), torch.zeros(256)
    alive = torch.ones(256, dtype=torch.bool)
    for _ in range(max_steps):
        logits, _ = model(obs)
        obs, reward, done = envs.step(logits.argmax(dim=1))
        total += reward * alive
        alive &= ~done
    return total.mean().item()


def main() -> None:
    parser = argparse.ArgumentParser(description="A2C on a vectorised gridworld")
    parser.add_argument("--updates", type=int, default=2000)
    parser.add_argument("--n-envs", type=int, default=16)
    parser.add_argument("--n-steps", type=int, default=5)
    parser.add_argument("--size", type=int, default=6)
    parser.add_argument("--max-steps", type=int, default=40)
    parser.add_argument("--gamma", type=float, default=0.99)
    parser.add_argument("--lr", type=float, default=7e-4)
    parser.add_argument("--entropy-coef", type=float, default=0.01)
    parser.add_argument("--value-coef", type=float, default=0.5)
    parser.add_argument("--max-grad-norm", type=float, default=0.5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.manual_seed(args.seed)

    envs = GridWorlds(
        args.n_envs, args.size, args.max_steps, torch.Generator().manual_seed(args.seed)
    )
    model = ActorCritic(envs.obs_dim, len(MOVES))
    optimizer = torch.optim.RMSprop(model.parameters(), lr=args.lr, alpha=0.99, eps=1e-5)

    obs = envs.observe()
    episode_return = torch.zeros(args.n_envs)
    episode_length = torch.zeros(args.n_envs)
    finished_returns: list[float] = []
    finished_lengths: list[float] = []
    for update in range(1, args.updates + 1):
        log_probs, values, entropies, rewards, masks = [], [], [], [], []
        for _ in range(args.n_steps):
            logits, value = model(obs)
            dist = Categorical(logits=logits)
            action = dist.sample()
            obs, reward, done = envs.step(action)
            log_probs.append(dist.log_prob(action))
            values.append(value)
            entropies.append(dist.entropy())
            rewards.append(reward)
            masks.append(1.0 - done.float())

            episode_return += reward
            episode_length += 1
            finished_returns += episode_return[done].tolist()
            finished_lengths += episode_length[done].tolist()
            episode_return[done] = 0.0
            episode_length[done] = 0.0

        with torch.no_grad():
            _, next_value = model(obs)
        returns = []
        R = next_value
        for step in reversed(range(args.n_steps)):
            R = rewards[step] + args.gamma * R * masks[step]
            returns.insert(0, R)

        log_probs_t = torch.stack(log_probs)
        values_t = torch.stack(values)
        returns_t = torch.stack(returns)
        advantages = returns_t - values_t
        policy_loss = -(advantages.detach() * log_probs_t).mean()
        value_loss = advantages.pow(2).mean()
        entropy = torch.stack(entropies).mean()
        loss = policy_loss - args.entropy_coef * entropy + args.value_coef * value_loss

        optimizer.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), args.max_grad_norm)
        optimizer.step()

        if update % 200 == 0:
            mean_return = sum(finished_returns) / max(1, len(finished_returns))
            mean_length = sum(finished_lengths) / max(1, len(finished_lengths))
            print(
                f"update {update:5d}: episodes {len(finished_returns):4d}, mean return "
                f"{mean_return:.3f}, mean length {mean_length:.1f}, entropy {entropy.item():.3f}, "
                f"value loss {value_loss.item():.4f}"
            )
            finished_returns, finished_lengths = [], []

    greedy = evaluate_greedy(model, args.size, args.max_steps, args.seed + 1)
    print(f"greedy policy: mean return {greedy:.3f} over 256 new worlds")


if __name__ == "__main__":
    main()
