"""PPO with the clipped surrogate objective on a vectorised cart-pole: healthy.

In the manner of the CleanRL single-file ``ppo.py`` (scaled down to run in a minute on
one CPU thread): the environment is a batch of 8 cart-poles written in the script and
vectorised in torch (the usual Euler-integrated physics, +1 reward per step, an episode
ends when the pole passes 12 degrees, the cart leaves the track or 500 steps have
passed, as in CartPole-v1, and a finished copy is reset at once, returning the first
observation of its next episode). ``Agent`` holds separate actor and critic MLPs with
``Tanh``, orthogonally initialised through CleanRL's ``layer_init`` (gain sqrt(2) on the
hidden layers, 0.01 on the policy output, 1 on the value output), with ``get_value`` and
``get_action_and_value``. Each iteration collects 128 steps from the 8 copies into
preallocated storage tensors, computes GAE (gamma 0.99, lambda 0.95) backwards from the
bootstrapped value of the next observation, flattens the batch and runs 4 epochs over 4
shuffled minibatches: probability ratio against the stored log-probabilities, advantages
normalised per minibatch, clipped surrogate (clip coefficient 0.2), clipped value loss,
entropy bonus, ``loss = pg_loss - ent_coef * entropy_loss + vf_coef * v_loss``; Adam
(``lr=1e-3, eps=1e-5``) with the learning rate annealed linearly to zero over the 195
iterations (200,000 environment steps), ``clip_grad_norm_(0.5)``. A ``main()`` with
argparse; prints every 10 iterations the mean episodic return of the episodes finished
since the last print, the losses, the approximate KL, the clip fraction and the
explained variance, then the return of the deterministic policy on 8 new episodes.

Healthy: nndoctor should report no warning and no error.

    python examples/wild/ppo_clip.py
    nndoctor check examples/wild/ppo_clip.py
"""

import argparse
import math
import random

import numpy as np
import torch
import torch.nn as nn
import torch.optim as optim
from torch.distributions.categorical import Categorical


class VecCartPole:
    """``num_envs`` cart-poles stepped together; actions 0 (push left) / 1 (push right)."""

    gravity, masscart, masspole, length, force_mag, tau = 9.8, 1.0, 0.1, 0.5, 10.0, 0.02
    theta_limit = 12 * 2 * math.pi / 360
    x_limit = 2.4
    single_observation_shape = (4,)
    single_action_n = 2

    def __init__(self, num_envs: int, max_episode_steps: int, seed: int) -> None:
        self.num_envs, self.max_episode_steps = num_envs, max_episode_steps
        self.g = torch.Generator().manual_seed(seed)
        self.state = torch.zeros(num_envs, 4)
        self.elapsed = torch.zeros(num_envs, dtype=torch.long)

    def _reset_where(self, which: torch.Tensor) -> None:
        k = int(which.sum())
        if k:
            self.state[which] = torch.rand(k, 4, generator=self.g) * 0.1 - 0.05
            self.elapsed[which] = 0

    def reset(self) -> torch.Tensor:
        self._reset_where(torch.ones(self.num_envs, dtype=torch.bool))
        return self.state.clone()

    def step(self, action: torch.Tensor):
        x, x_dot, theta, theta_dot = self.state.unbind(dim=1)
        force = torch.where(action == 1, self.force_mag, -self.force_mag)
        total_mass = self.masspole + self.masscart
        polemass_length = self.masspole * self.length
        cos, sin = torch.cos(theta), torch.sin(theta)
        temp = (force + polemass_length * theta_dot**2 * sin) / total_mass
        theta_acc = (self.gravity * sin - cos * temp) / (
            self.length * (4.0 / 3.0 - self.masspole * cos**2 / total_mass)
        )
        x_acc = temp - polemass_length * theta_acc * cos / total_mass
        x, x_dot = x + self.tau * x_dot, x_dot + self.tau * x_acc
        theta, theta_dot = theta + self.tau * theta_dot, theta_dot + self.tau * theta_acc
        self.state = torch.stack([x, x_dot, theta, theta_dot], dim=1)
        self.elapsed += 1
        terminated = (x.abs() > self.x_limit) | (theta.abs() > self.theta_limit)
        truncated = self.elapsed >= self.max_episode_steps
        reward = torch.ones(self.num_envs)
        self._reset_where(terminated | truncated)  # auto-reset
        return self.state.clone(), reward, terminated, truncated


def layer_init(layer: nn.Linear, std: float = np.sqrt(2), bias_const: float = 0.0) -> nn.Linear:
    torch.nn.init.orthogonal_(layer.weight, std)
    torch.nn.init.constant_(layer.bias, bias_const)
    return layer


class Agent(nn.Module):
    def __init__(self, obs_dim: int, n_actions: int, hidden: int = 64) -> None:
        super().__init__()
        self.critic = nn.Sequential(
            layer_init(nn.Linear(obs_dim, hidden)),
            nn.Tanh(),
            layer_init(nn.Linear(hidden, hidden)),
            nn.Tanh(),
            layer_init(nn.Linear(hidden, 1), std=1.0),
        )
        self.actor = nn.Sequential(
            layer_init(nn.Linear(obs_dim, hidden)),
            nn.Tanh(),
            layer_init(nn.Linear(hidden, hidden)),
            nn.Tanh(),
            layer_init(nn.Linear(hidden, n_actions), std=0.01),
        )

    def get_value(self, x: torch.Tensor) -> torch.Tensor:
        return self.critic(x)

    def get_action_and_value(self, x: torch.Tensor, action: torch.Tensor | None = None):
        logits = self.actor(x)
        probs = Categorical(logits=logits)
        if action is None:
            action = probs.sample()
        return action, probs.log_prob(action), probs.entropy(), self.critic(x)


@torch.no_grad()
def evaluate(agent: Agent, episodes: int, max_episode_steps: int, seed: int) -> float:
    envs = VecCartPole(episodes, max_episode_steps, seed)
    obs = envs.reset()
    total = torch.zeros(episodes)
    alive = torch.ones(episodes, dtype=torch.bool)
    for _ in range(max_episode_steps):
        action = agent.actor(obs).argmax(dim=1)
        obs, reward, terminated, truncated = envs.step(action)
        total += reward * alive
        alive &= ~(terminated | truncated)
    return total.mean().item()


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="PPO (clipped objective) on a vectorised cart-pole"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--total-timesteps", type=int, default=200_000)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--num-envs", type=int, default=8)
    parser.add_argument("--num-steps", type=int, default=128)
    parser.add_argument("--max-episode-steps", type=int, default=500)
    parser.add_argument("--anneal-lr", type=int, default=1)
    parser.add_argument("--gamma", type=float, default=0.99)
    parser.add_argument("--gae-lambda", type=float, default=0.95)
    parser.add_argument("--num-minibatches", type=int, default=4)
    parser.add_argument("--update-epochs", type=int, default=4)
    parser.add_argument("--norm-adv", type=int, default=1)
    parser.add_argument("--clip-coef", type=float, default=0.2)
    parser.add_argument("--clip-vloss", type=int, default=1)
    parser.add_argument("--ent-coef", type=float, default=0.01)
    parser.add_argument("--vf-coef", type=float, default=0.5)
    parser.add_argument("--max-grad-norm", type=float, default=0.5)
    args = parser.parse_args()
    args.batch_size = args.num_envs * args.num_steps
    args.minibatch_size = args.batch_size // args.num_minibatches
    args.num_iterations = args.total_timesteps // args.batch_size
    return args


def main() -> None:
    args = parse_args()
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)

    envs = VecCartPole(args.num_envs, args.max_episode_steps, args.seed)
    obs_shape = envs.single_observation_shape
    agent = Agent(obs_shape[0], envs.single_action_n)
    optimizer = optim.Adam(agent.parameters(), lr=args.learning_rate, eps=1e-5)

    # storage
    obs = torch.zeros((args.num_steps, args.num_envs) + obs_shape)
    actions = torch.zeros((args.num_steps, args.num_envs), dtype=torch.long)
    logprobs = torch.zeros((args.num_steps, args.num_envs))
    rewards = torch.zeros((args.num_steps, args.num_envs))
    dones = torch.zeros((args.num_steps, args.num_envs))
    values = torch.zeros((args.num_steps, args.num_envs))

    global_step = 0
    next_obs = envs.reset()
    next_done = torch.zeros(args.num_envs)
    episodic_return = torch.zeros(args.num_envs)
    finished_returns: list[float] = []

    for iteration in range(1, args.num_iterations + 1):
        if args.anneal_lr:
            frac = 1.0 - (iteration - 1.0) / args.num_iterations
            lrnow = frac * args.learning_rate
            optimizer.param_groups[0]["lr"] = lrnow

        for step in range(0, args.num_steps):
            global_step += args.num_envs
            obs[step] = next_obs
            dones[step] = next_done

            with torch.no_grad():
                action, logprob, _, value = agent.get_action_and_value(next_obs)
                values[step] = value.flatten()
            actions[step] = action
            logprobs[step] = logprob

            next_obs, reward, terminations, truncations = envs.step(action)
            rewards[step] = reward
            next_done = (terminations | truncations).float()

            episodic_return += reward
            ended = next_done.bool()
            finished_returns += episodic_return[ended].tolist()
            episodic_return[ended] = 0.0

        # bootstrap value if not done
        with torch.no_grad():
            next_value = agent.get_value(next_obs).reshape(1, -1)
            advantages = torch.zeros_like(rewards)
            lastgaelam = 0
            for t in reversed(range(args.num_steps)):
                if t == args.num_steps - 1:
                    nextnonterminal = 1.0 - next_done
                    nextvalues = next_value
                else:
                    nextnonterminal = 1.0 - dones[t + 1]
                    nextvalues = values[t + 1]
                delta = rewards[t] + args.gamma * nextvalues * nextnonterminal - values[t]
                advantages[t] = lastgaelam = (
                    delta + args.gamma * args.gae_lambda * nextnonterminal * lastgaelam
                )
            returns = advantages + values

        # flatten the batch
        b_obs = obs.reshape((-1,) + obs_shape)
        b_logprobs = logprobs.reshape(-1)
        b_actions = actions.reshape(-1)
        b_advantages = advantages.reshape(-1)
        b_returns = returns.reshape(-1)
        b_values = values.reshape(-1)

        # optimizing the policy and value network
        b_inds = np.arange(args.batch_size)
        clipfracs = []
        for _epoch in range(args.update_epochs):
            np.random.shuffle(b_inds)
            for start in range(0, args.batch_size, args.minibatch_size):
                end = start + args.minibatch_size
                mb_inds = b_inds[start:end]

                _, newlogprob, entropy, newvalue = agent.get_action_and_value(
                    b_obs[mb_inds], b_actions[mb_inds]
                )
                logratio = newlogprob - b_logprobs[mb_inds]
                ratio = logratio.exp()

                with torch.no_grad():
                    # calculate approx_kl http://joschu.net/blog/kl-approx.html
                    approx_kl = ((ratio - 1) - logratio).mean()
                    clipfracs += [((ratio - 1.0).abs() > args.clip_coef).float().mean().item()]

                mb_advantages = b_advantages[mb_inds]
                if args.norm_adv:
                    mb_advantages = (mb_advantages - mb_advantages.mean()) / (
                        mb_advantages.std() + 1e-8
                    )

                # policy loss
                pg_loss1 = -mb_advantages * ratio
                pg_loss2 = -mb_advantages * torch.clamp(
                    ratio, 1 - args.clip_coef, 1 + args.clip_coef
                )
                pg_loss = torch.max(pg_loss1, pg_loss2).mean()

                # value loss
                newvalue = newvalue.view(-1)
                if args.clip_vloss:
                    v_loss_unclipped = (newvalue - b_returns[mb_inds]) ** 2
                    v_clipped = b_values[mb_inds] + torch.clamp(
                        newvalue - b_values[mb_inds], -args.clip_coef, args.clip_coef
                    )
                    v_loss_clipped = (v_clipped - b_returns[mb_inds]) ** 2
                    v_loss_max = torch.max(v_loss_unclipped, v_loss_clipped)
                    v_loss = 0.5 * v_loss_max.mean()
                else:
                    v_loss = 0.5 * ((newvalue - b_returns[mb_inds]) ** 2).mean()

                entropy_loss = entropy.mean()
                loss = pg_loss - args.ent_coef * entropy_loss + v_loss * args.vf_coef

                optimizer.zero_grad()
                loss.backward()
                nn.utils.clip_grad_norm_(agent.parameters(), args.max_grad_norm)
                optimizer.step()

        y_pred, y_true = b_values.numpy(), b_returns.numpy()
        var_y = np.var(y_true)
        explained_var = np.nan if var_y == 0 else 1 - np.var(y_true - y_pred) / var_y

        if iteration % 10 == 0 or iteration == args.num_iterations:
            mean_return = float(np.mean(finished_returns)) if finished_returns else float("nan")
            print(
                f"iteration {iteration:3d}, global_step {global_step:6d}: episodes "
                f"{len(finished_returns):4d}, mean episodic return {mean_return:6.1f}, "
                f"pg_loss {pg_loss.item():.4f}, v_loss {v_loss.item():.3f}, "
                f"entropy {entropy_loss.item():.3f}, approx_kl {approx_kl.item():.4f}, "
                f"clipfrac {np.mean(clipfracs):.3f}, explained_var {explained_var:.3f}"
            )
            finished_returns = []

    greedy = evaluate(agent, 8, args.max_episode_steps, args.seed + 1000)
    print(f"deterministic policy: mean return {greedy:.1f} over 8 new episodes")


if __name__ == "__main__":
    main()
