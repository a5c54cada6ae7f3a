"""Soft Actor-Critic with automatic entropy tuning on an inverted pendulum: healthy.

In the manner of CleanRL's ``sac_continuous_action.py`` (Haarnoja et al. 2018, the version
with a learned temperature): the environment is the classic Pendulum-v1 written in the
script with ``math`` (state angle and angular velocity, observation [cos, sin, velocity],
torque in [-2, 2], g = 10, dt = 0.05, velocity clipped to +-8, reward
-(theta^2 + 0.1 thetadot^2 + 0.001 u^2) with theta wrapped to [-pi, pi]), episodes cut at
100 steps (5 seconds, enough for a swing-up) from a random angle and velocity. A numpy
``ReplayBuffer`` of transitions sampled uniformly; the first 1,000 steps take uniformly
random actions (``learning_starts``).

``Actor`` is an MLP to a mean and a log standard deviation squashed by tanh into [-5, 2];
``get_action`` draws ``rsample()`` from the Gaussian, squashes it with tanh, rescales it to
the action bounds and corrects the log-probability by log(scale * (1 - tanh^2) + 1e-6)
summed over the action dimensions; its deterministic action is the squashed mean.
``SoftQNetwork`` is an MLP on the concatenated observation and action; two of them with
target copies loaded from their state dicts and updated by Polyak averaging (tau = 0.005)
every step. The critics regress on r + gamma * (1 - done) * (min of the target Qs of the
next state and a fresh next action - alpha * its log-probability), computed under
``torch.no_grad()``, with the sum of the two MSE losses; the actor, every second step for
two updates, minimises alpha * log pi - min Q of its reparameterised action; the
temperature is learned through ``log_alpha`` against the target entropy -action_dim.
Three Adam optimizers (actor 1e-3, critics 1e-3, alpha 3e-3), MLPs of width 64, batches of
128, 7,000 environment steps. Top-level functions and ``main()`` with argparse; prints the
mean episodic return of every 10 episodes with the critic loss and alpha, then the mean
return of the deterministic policy over 20 evaluation episodes against that of a random
policy on the same starting states.

Healthy: nndoctor should report no warning and no error.

    python examples/wild/sac_pendulum.py
    nndoctor check examples/wild/sac_pendulum.py
"""

import argparse
import math
import random
from typing import NamedTuple

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.optim as optim

# -----------------------------------------------------------------------------
# environment: Pendulum-v1 dynamics


class PendulumEnv:
    max_speed = 8.0
    max_torque = 2.0
    dt = 0.05
    g = 10.0
    m = 1.0
    length = 1.0

    def __init__(self, max_episode_steps, rng):
        self.max_episode_steps = max_episode_steps
        self.rng = rng
        self.observation_dim = 3
        self.action_dim = 1
        self.action_low = np.array([-self.max_torque], dtype=np.float32)
        self.action_high = np.array([self.max_torque], dtype=np.float32)

    def reset(self, state=None):
        if state is None:
            state = (self.rng.uniform(-math.pi, math.pi), self.rng.uniform(-1.0, 1.0))
        self.th, self.thdot = state
        self.steps = 0
        return self._obs()

    def _obs(self):
        return np.array([math.cos(self.th), math.sin(self.th), self.thdot], dtype=np.float32)

    def step(self, action):
        u = float(np.clip(action[0], -self.max_torque, self.max_torque))
        th, thdot = self.th, self.thdot
        angle = ((th + math.pi) % (2 * math.pi)) - math.pi
        cost = angle**2 + 0.1 * thdot**2 + 0.001 * u**2

        newthdot = (
            thdot
            + (3 * self.g / (2 * self.length) * math.sin(th) + 3.0 / (self.m * self.length**2) * u)
            * self.dt
        )
        newthdot = min(max(newthdot, -self.max_speed), self.max_speed)
        self.th = th + newthdot * self.dt
        self.thdot = newthdot
        self.steps += 1
        truncated = self.steps >= self.max_episode_steps
        return self._obs(), -cost, False, truncated


# -----------------------------------------------------------------------------
# replay buffer


class ReplayBufferSamples(NamedTuple):
    observations: torch.Tensor
    actions: torch.Tensor
    next_observations: torch.Tensor
    dones: torch.Tensor
    rewards: torch.Tensor


class ReplayBuffer:
    def __init__(self, buffer_size, obs_dim, action_dim, rng):
        self.buffer_size = buffer_size
        self.rng = rng
        self.observations = np.zeros((buffer_size, obs_dim), dtype=np.float32)
        self.next_observations = np.zeros((buffer_size, obs_dim), dtype=np.float32)
        self.actions = np.zeros((buffer_size, action_dim), dtype=np.float32)
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
# networks


class SoftQNetwork(nn.Module):
    def __init__(self, obs_dim, action_dim, hidden=64):
        super().__init__()
        self.fc1 = nn.Linear(obs_dim + action_dim, hidden)
        self.fc2 = nn.Linear(hidden, hidden)
        self.fc3 = nn.Linear(hidden, 1)

    def forward(self, x, a):
        x = torch.cat([x, a], 1)
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        return self.fc3(x)


LOG_STD_MAX = 2
LOG_STD_MIN = -5


class Actor(nn.Module):
    def __init__(self, obs_dim, action_dim, action_low, action_high, hidden=64):
        super().__init__()
        self.fc1 = nn.Linear(obs_dim, hidden)
        self.fc2 = nn.Linear(hidden, hidden)
        self.fc_mean = nn.Linear(hidden, action_dim)
        self.fc_logstd = nn.Linear(hidden, action_dim)
        # action rescaling
        self.register_buffer(
            "action_scale", torch.tensor((action_high - action_low) / 2.0, dtype=torch.float32)
        )
        self.register_buffer(
            "action_bias", torch.tensor((action_high + action_low) / 2.0, dtype=torch.float32)
        )

    def forward(self, x):
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        mean = self.fc_mean(x)
        log_std = self.fc_logstd(x)
        log_std = torch.tanh(log_std)
        log_std = LOG_STD_MIN + 0.5 * (LOG_STD_MAX - LOG_STD_MIN) * (log_std + 1)
        return mean, log_std

    def get_action(self, x):
        mean, log_std = self(x)
        std = log_std.exp()
        normal = torch.distributions.Normal(mean, std)
        x_t = normal.rsample()  # reparameterisation trick
        y_t = torch.tanh(x_t)
        action = y_t * self.action_scale + self.action_bias
        log_prob = normal.log_prob(x_t)
        # enforcing the action bound
        log_prob -= torch.log(self.action_scale * (1 - y_t.pow(2)) + 1e-6)
        log_prob = log_prob.sum(1, keepdim=True)
        mean = torch.tanh(mean) * self.action_scale + self.action_bias
        return action, log_prob, mean


def evaluate(env, start_states, policy):
    returns = []
    for state in start_states:
        obs, done, total = env.reset(state), False, 0.0
        while not done:
            obs, reward, terminated, truncated = env.step(policy(obs))
            total += reward
            done = terminated or truncated
        returns.append(total)
    return float(np.mean(returns))


def main():
    parser = argparse.ArgumentParser(description="SAC on an inverted pendulum")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--total-timesteps", type=int, default=7000)
    parser.add_argument("--max-episode-steps", type=int, default=100)
    parser.add_argument("--buffer-size", type=int, default=100_000)
    parser.add_argument("--gamma", type=float, default=0.99)
    parser.add_argument("--tau", type=float, default=0.005)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--learning-starts", type=int, default=1000)
    parser.add_argument("--policy-lr", type=float, default=1e-3)
    parser.add_argument("--q-lr", type=float, default=1e-3)
    parser.add_argument("--alpha-lr", type=float, default=3e-3)
    parser.add_argument("--policy-frequency", type=int, default=2)
    parser.add_argument("--target-network-frequency", type=int, default=1)
    args = parser.parse_args()

    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)

    env = PendulumEnv(args.max_episode_steps, rng)
    obs_dim, action_dim = env.observation_dim, env.action_dim

    actor = Actor(obs_dim, action_dim, env.action_low, env.action_high)
    qf1 = SoftQNetwork(obs_dim, action_dim)
    qf2 = SoftQNetwork(obs_dim, action_dim)
    qf1_target = SoftQNetwork(obs_dim, action_dim)
    qf2_target = SoftQNetwork(obs_dim, action_dim)
    qf1_target.load_state_dict(qf1.state_dict())
    qf2_target.load_state_dict(qf2.state_dict())
    q_optimizer = optim.Adam(list(qf1.parameters()) + list(qf2.parameters()), lr=args.q_lr)
    actor_optimizer = optim.Adam(list(actor.parameters()), lr=args.policy_lr)

    # automatic entropy tuning
    target_entropy = -float(action_dim)
    log_alpha = torch.zeros(1, requires_grad=True)
    alpha = log_alpha.exp().item()
    a_optimizer = optim.Adam([log_alpha], lr=args.alpha_lr)

    rb = ReplayBuffer(args.buffer_size, obs_dim, action_dim, rng)

    obs = env.reset()
    episode_return, episode, qf_loss = 0.0, 0, torch.tensor(0.0)
    recent_returns = []
    for global_step in range(args.total_timesteps):
        if global_step < args.learning_starts:
            action = rng.uniform(env.action_low, env.action_high).astype(np.float32)
        else:
            with torch.no_grad():
                action, _, _ = actor.get_action(torch.from_numpy(obs)[None])
            action = action[0].numpy()

        next_obs, reward, terminated, truncated = env.step(action)
        rb.add(obs, next_obs, action, reward, terminated)
        episode_return += reward
        obs = next_obs
        if terminated or truncated:
            episode += 1
            recent_returns.append(episode_return)
            if episode % 10 == 0:
                print(
                    f"global_step={global_step + 1}, episode={episode}, "
                    f"episodic_return={np.mean(recent_returns):.1f}, "
                    f"qf_loss={qf_loss.item():.3f}, alpha={alpha:.3f}"
                )
                recent_returns = []
            obs, episode_return = env.reset(), 0.0

        if global_step > args.learning_starts:
            data = rb.sample(args.batch_size)
            with torch.no_grad():
                next_state_actions, next_state_log_pi, _ = actor.get_action(data.next_observations)
                qf1_next_target = qf1_target(data.next_observations, next_state_actions)
                qf2_next_target = qf2_target(data.next_observations, next_state_actions)
                min_qf_next_target = (
                    torch.min(qf1_next_target, qf2_next_target) - alpha * next_state_log_pi
                )
                next_q_value = data.rewards.flatten() + (
                    1 - data.dones.flatten()
                ) * args.gamma * min_qf_next_target.view(-1)

            qf1_a_values = qf1(data.observations, data.actions).view(-1)
            qf2_a_values = qf2(data.observations, data.actions).view(-1)
            qf1_loss = F.mse_loss(qf1_a_values, next_q_value)
            qf2_loss = F.mse_loss(qf2_a_values, next_q_value)
            qf_loss = qf1_loss + qf2_loss

            q_optimizer.zero_grad()
            qf_loss.backward()
            q_optimizer.step()

            if global_step % args.policy_frequency == 0:  # TD3 delayed update
                for _ in range(args.policy_frequency):
                    pi, log_pi, _ = actor.get_action(data.observations)
                    qf1_pi = qf1(data.observations, pi)
                    qf2_pi = qf2(data.observations, pi)
                    min_qf_pi = torch.min(qf1_pi, qf2_pi)
                    actor_loss = ((alpha * log_pi) - min_qf_pi).mean()

                    actor_optimizer.zero_grad()
                    actor_loss.backward()
                    actor_optimizer.step()

                    with torch.no_grad():
                        _, log_pi, _ = actor.get_action(data.observations)
                    alpha_loss = (-log_alpha.exp() * (log_pi + target_entropy)).mean()

                    a_optimizer.zero_grad()
                    alpha_loss.backward()
                    a_optimizer.step()
                    alpha = log_alpha.exp().item()

            # update the target networks
            if global_step % args.target_network_frequency == 0:
                for param, target_param in zip(
                    qf1.parameters(), qf1_target.parameters(), strict=True
                ):
                    target_param.data.copy_(
                        args.tau * param.data + (1 - args.tau) * target_param.data
                    )
                for param, target_param in zip(
                    qf2.parameters(), qf2_target.parameters(), strict=True
                ):
                    target_param.data.copy_(
                        args.tau * param.data + (1 - args.tau) * target_param.data
                    )

    # evaluation: deterministic policy vs random actions from the same starting states
    eval_rng = np.random.default_rng(10_000 + args.seed)
    starts = [(eval_rng.uniform(-math.pi, math.pi), eval_rng.uniform(-1, 1)) for _ in range(20)]

    def deterministic(o):
        with torch.no_grad():
            _, _, mean = actor.get_action(torch.from_numpy(o)[None])
        return mean[0].numpy()

    def uniform(o):
        return eval_rng.uniform(env.action_low, env.action_high)

    policy_return = evaluate(env, starts, deterministic)
    random_return = evaluate(env, starts, uniform)
    print(
        f"final: mean return of the deterministic policy {policy_return:.1f} over "
        f"{len(starts)} episodes (random policy: {random_return:.1f})"
    )


if __name__ == "__main__":
    main()
