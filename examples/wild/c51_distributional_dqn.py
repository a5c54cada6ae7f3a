"""C51 (categorical distributional DQN) on a stochastic chain written in the script: healthy.

In the manner of CleanRL's ``c51.py`` (Bellemare et al. 2017): the environment is a chain of
16 cells written in the script instead of Gym. Episodes start on cell 3; the two actions
move left or right, but the move slips to the other direction with probability 0.2. Each
move costs 0.05; the left end (cell 0) ends the episode with a sure reward of 1, the right
end (cell 15) with a lottery: 8 with probability 0.6, otherwise 0; episodes are cut after
60 moves (a time limit, so the last state is still bootstrapped). The observation is the
one-hot cell. A random walk mostly falls off the near, poor end; the far end is worth
about four times more on average, and the returns are random, so their distributions are
bimodal.

``QNetwork`` is CleanRL's MLP (120, 84) to ``n_actions * n_atoms`` logits with the 51 atoms
between v_min = -10 and v_max = 10 in a buffer; ``get_action`` takes the softmax over the
atoms of each action, the Q values as the expectation over the atoms, the greedy action,
and returns the probability mass function of the chosen (or given) action. A numpy
``ReplayBuffer`` of 10,000 transitions, epsilon-greedy with ``linear_schedule`` from 1 to
0.05 over half of the 30,000 steps, learning from step 1,000 every 4 steps on batches of
128: under ``torch.no_grad()`` the target network's pmf of its greedy next action is moved
to r + gamma * z (gamma 0.99, no bootstrap past a terminal cell), clamped to [v_min,
v_max] and projected back on the atoms by hand (lower and upper indices ``l`` and ``u``,
``index_add_`` per sample); the loss is the cross-entropy between the projected target
and the predicted log-probabilities of the taken action. Adam (lr 1e-3, eps 0.01 /
batch_size); the target network is a copy synced every 500 steps. ``main()`` with
argparse; prints the mean return of the last 50 episodes, the loss and epsilon every
3,000 steps, then the mean return of the greedy policy over 500 episodes against a random
policy and the always-right policy on the same seeds.

Healthy: nndoctor should report no warning and no error.

    python examples/wild/c51_distributional_dqn.py
    nndoctor check examples/wild/c51_distributional_dqn.py
"""

import argparse
import random
from typing import NamedTuple

import numpy as np
import torch
import torch.nn as nn
import torch.optim as optim

# -----------------------------------------------------------------------------
# environment: a slippery chain with a safe end and a lottery end


class StochasticChain:
    def __init__(self, length=16, start=3, slip=0.2, step_cost=0.05, max_steps=60, seed=0):
        self.length = length
        self.start = start
        self.slip = slip
        self.step_cost = step_cost
        self.max_steps = max_steps
        self.n_actions = 2
        self.rng = np.random.default_rng(seed)

    def _obs(self):
        obs = np.zeros(self.length, dtype=np.float32)
        obs[self.pos] = 1.0
        return obs

    def reset(self):
        self.pos, self.steps = self.start, 0
        return self._obs()

    def step(self, action):
        move = 1 if action == 1 else -1
        if self.rng.random() < self.slip:
            move = -move
        self.pos += move
        self.steps += 1
        reward, terminated = -self.step_cost, False
        if self.pos == 0:
            reward, terminated = reward + 1.0, True
        elif self.pos == self.length - 1:
            reward, terminated = reward + (8.0 if self.rng.random() < 0.6 else 0.0), True
        truncated = self.steps >= self.max_steps
        return self._obs(), reward, terminated, truncated


# -----------------------------------------------------------------------------
# replay buffer


class ReplayBufferSamples(NamedTuple):
    observations: torch.Tensor
    actions: torch.Tensor
    next_observations: torch.Tensor
    dones: torch.Tensor
    rewards: torch.Tensor


class ReplayBuffer:
    def __init__(self, buffer_size, obs_dim, rng):
        self.buffer_size = buffer_size
        self.rng = rng
        self.observations = np.zeros((buffer_size, obs_dim), dtype=np.float32)
        self.next_observations = np.zeros((buffer_size, obs_dim), dtype=np.float32)
        self.actions = np.zeros((buffer_size, 1), dtype=np.int64)
        self.rewards = np.zeros((buffer_size, 1), dtype=np.float32)
        self.dones = np.zeros((buffer_size, 1), dtype=np.float32)
        self.pos = 0
        self.full = False

    def add(self, obs, next_obs, action, reward, done):
        self.observations[self.pos] = obs
        self.next_observations[self.pos] = next_obs
        self.actions[self.pos] = action
        self.rewards[self.pos] = reward
        self.dones[self.pos] = done
        self.pos += 1
        if self.pos == self.buffer_size:
            self.full, self.pos = True, 0

    def sample(self, batch_size):
        upper = self.buffer_size if self.full else self.pos
        idx = self.rng.integers(0, upper, size=batch_size)
        return ReplayBufferSamples(
            torch.from_numpy(self.observations[idx]),
            torch.from_numpy(self.actions[idx]),
            torch.from_numpy(self.next_observations[idx]),
            torch.from_numpy(self.dones[idx]),
            torch.from_numpy(self.rewards[idx]),
        )


# -----------------------------------------------------------------------------
# network


class QNetwork(nn.Module):
    def __init__(self, obs_dim, n_actions, n_atoms=51, v_min=-10, v_max=10):
        super().__init__()
        self.n_atoms = n_atoms
        self.register_buffer("atoms", torch.linspace(v_min, v_max, steps=n_atoms))
        self.n = n_actions
        self.network = nn.Sequential(
            nn.Linear(obs_dim, 120),
            nn.ReLU(),
            nn.Linear(120, 84),
            nn.ReLU(),
            nn.Linear(84, self.n * n_atoms),
        )

    def get_action(self, x, action=None):
        logits = self.network(x)
        # probability mass function for each action
        pmfs = torch.softmax(logits.view(len(x), self.n, self.n_atoms), dim=2)
        q_values = (pmfs * self.atoms).sum(2)
        if action is None:
            action = torch.argmax(q_values, 1)
        return action, pmfs[torch.arange(len(x)), action]


def linear_schedule(start_e: float, end_e: float, duration: int, t: int):
    slope = (end_e - start_e) / duration
    return max(slope * t + start_e, end_e)


def evaluate(env, policy, episodes):
    returns = []
    for _ in range(episodes):
        obs, done, total = env.reset(), False, 0.0
        while not done:
            obs, reward, terminated, truncated = env.step(policy(obs))
            total += reward
            done = terminated or truncated
        returns.append(total)
    return float(np.mean(returns))


def main():
    parser = argparse.ArgumentParser(description="C51 on a stochastic chain")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--total-timesteps", type=int, default=30000)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--n-atoms", type=int, default=51)
    parser.add_argument("--v-min", type=float, default=-10)
    parser.add_argument("--v-max", type=float, default=10)
    parser.add_argument("--buffer-size", type=int, default=10000)
    parser.add_argument("--gamma", type=float, default=0.99)
    parser.add_argument("--target-network-frequency", type=int, default=500)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--start-e", type=float, default=1.0)
    parser.add_argument("--end-e", type=float, default=0.05)
    parser.add_argument("--exploration-fraction", type=float, default=0.5)
    parser.add_argument("--learning-starts", type=int, default=1000)
    parser.add_argument("--train-frequency", type=int, default=4)
    parser.add_argument("--eval-episodes", type=int, default=500)
    args = parser.parse_args()

    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)

    env = StochasticChain(seed=args.seed)
    obs_dim, n_actions = env.length, env.n_actions

    q_network = QNetwork(obs_dim, n_actions, args.n_atoms, args.v_min, args.v_max)
    optimizer = optim.Adam(
        q_network.parameters(), lr=args.learning_rate, eps=0.01 / args.batch_size
    )
    target_network = QNetwork(obs_dim, n_actions, args.n_atoms, args.v_min, args.v_max)
    target_network.load_state_dict(q_network.state_dict())

    rb = ReplayBuffer(args.buffer_size, obs_dim, np.random.default_rng(args.seed))

    obs = env.reset()
    episode_return, episode_returns, loss = 0.0, [], torch.tensor(0.0)
    for global_step in range(args.total_timesteps):
        epsilon = linear_schedule(
            args.start_e, args.end_e, args.exploration_fraction * args.total_timesteps, global_step
        )
        if random.random() < epsilon:
            action = random.randrange(n_actions)
        else:
            with torch.no_grad():
                action, _ = q_network.get_action(torch.from_numpy(obs)[None])
            action = action.item()

        next_obs, reward, terminated, truncated = env.step(action)
        rb.add(obs, next_obs, action, reward, terminated)
        episode_return += reward
        obs = next_obs
        if terminated or truncated:
            episode_returns.append(episode_return)
            obs, episode_return = env.reset(), 0.0

        if global_step > args.learning_starts:
            if global_step % args.train_frequency == 0:
                data = rb.sample(args.batch_size)
                with torch.no_grad():
                    _, next_pmfs = target_network.get_action(data.next_observations)
                    next_atoms = data.rewards + args.gamma * target_network.atoms * (1 - data.dones)
                    # projection
                    delta_z = target_network.atoms[1] - target_network.atoms[0]
                    tz = next_atoms.clamp(args.v_min, args.v_max)

                    b = (tz - args.v_min) / delta_z
                    l = b.floor().clamp(0, args.n_atoms - 1)
                    u = b.ceil().clamp(0, args.n_atoms - 1)
                    # (l == u).float() handles the case where b is exactly an integer:
                    # then all the mass goes to l
                    d_m_l = (u + (l == u).float() - b) * next_pmfs
                    d_m_u = (b - l) * next_pmfs
                    target_pmfs = torch.zeros_like(next_pmfs)
                    for i in range(target_pmfs.size(0)):
                        target_pmfs[i].index_add_(0, l[i].long(), d_m_l[i])
                        target_pmfs[i].index_add_(0, u[i].long(), d_m_u[i])

                _, old_pmfs = q_network.get_action(data.observations, data.actions.flatten())
                old_log_pmfs = old_pmfs.clamp(min=1e-5, max=1 - 1e-5).log()
                loss = (-(target_pmfs * old_log_pmfs).sum(-1)).mean()

                optimizer.zero_grad()
                loss.backward()
                optimizer.step()

            # update target network
            if global_step % args.target_network_frequency == 0:
                target_network.load_state_dict(q_network.state_dict())

        if (global_step + 1) % 3000 == 0:
            print(
                f"global_step={global_step + 1}, episodes={len(episode_returns)}, "
                f"episodic_return={np.mean(episode_returns[-50:]):.3f}, "
                f"loss={loss.item():.4f}, epsilon={epsilon:.3f}"
            )

    # evaluation: greedy policy against a random and the always-right policy
    def greedy(o):
        with torch.no_grad():
            action, _ = q_network.get_action(torch.from_numpy(o)[None])
        return action.item()

    eval_seed = 10_000 + args.seed
    greedy_return = evaluate(StochasticChain(seed=eval_seed), greedy, args.eval_episodes)
    eval_rng = random.Random(eval_seed)
    random_return = evaluate(
        StochasticChain(seed=eval_seed), lambda o: eval_rng.randrange(n_actions), args.eval_episodes
    )
    right_return = evaluate(StochasticChain(seed=eval_seed), lambda o: 1, args.eval_episodes)
    print(
        f"final: mean return of the greedy policy {greedy_return:.3f} over {args.eval_episodes} "
        f"episodes (random policy {random_return:.3f}, always right {right_return:.3f})"
    )


if __name__ == "__main__":
    main()
