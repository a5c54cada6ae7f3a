"""DDPG on a point-mass reaching task, with target networks and a replay buffer: healthy.

In the manner of the well-known PyTorch DDPG implementations (sfujim/TD3's ``DDPG.py`` and
the many scripts that copy it; Lillicrap et al. 2016): the environment is written here,
``PointMassReach``, a 2-D point mass on the square [-1, 1]^2 pushed by a force in
[-1, 1]^2 with damped velocity; the state is (position, velocity, goal), six numbers; the
reward is minus the distance to the goal minus a small action cost; the goal and start
are drawn at random at each reset and every episode lasts 50 steps (the time limit is not
a terminal state, so ``done`` stays 0 as in the reference's ``done_bool``).

``Actor`` is an MLP 6-128-128-2 with a ``tanh`` output scaled by ``max_action``; ``Critic``
an MLP Q(s, a) over the concatenated state and action, 8-128-128-1. Each has its own
``torch.optim.Adam`` and a target copy made with ``copy.deepcopy``, updated after every
training step by Polyak averaging by hand (``tau = 0.005``). A ``ReplayBuffer`` of numpy
arrays stores (s, a, s', r, not_done) and samples batches of 128. Of the 10,000
environment steps, the first 1,000 are random actions; afterwards the action is the
actor's plus Gaussian noise (std 0.1 of the bound), clipped, and one training step follows
every environment step. The critic regresses onto ``r + gamma * not_done * Q'(s', pi'(s'))``
computed under ``torch.no_grad()`` (``gamma = 0.95``) with ``F.mse_loss``; the actor
minimises ``-Q(s, pi(s)).mean()``. Top-level functions and classes, ``main()`` with
argparse; prints the critic and actor losses and the average evaluation return (10 fixed
episodes, no noise) every 2,000 steps, then the final evaluation return against a random
policy and a zero-action policy.

Healthy: nndoctor should report no warning and no error.

    python examples/wild/ddpg_reacher.py
    nndoctor check examples/wild/ddpg_reacher.py
"""

import argparse
import copy

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


class PointMassReach:
    """A point mass on [-1, 1]^2 that has to reach a random goal within 50 steps."""

    state_dim, action_dim, max_action = 6, 2, 1.0

    def __init__(self, seed=0, max_steps=50):
        self.rng = np.random.default_rng(seed)
        self.max_steps = max_steps

    def reset(self):
        self.pos = self.rng.uniform(-1.0, 1.0, size=2)
        self.vel = np.zeros(2)
        self.goal = self.rng.uniform(-1.0, 1.0, size=2)
        self.t = 0
        return self._state()

    def _state(self):
        return np.concatenate([self.pos, self.vel, self.goal]).astype(np.float32)

    def step(self, action):
        action = np.clip(action, -self.max_action, self.max_action)
        self.vel = 0.8 * self.vel + 0.3 * action
        self.pos = np.clip(self.pos + 0.1 * self.vel, -1.0, 1.0)
        self.t += 1
        distance = np.linalg.norm(self.pos - self.goal)
        reward = -distance - 0.05 * float(np.sum(action**2))
        done = self.t >= self.max_steps
        return self._state(), reward, done


class ReplayBuffer:
    def __init__(self, state_dim, action_dim, max_size=int(1e5)):
        self.max_size = max_size
        self.ptr = 0
        self.size = 0

        self.state = np.zeros((max_size, state_dim), dtype=np.float32)
        self.action = np.zeros((max_size, action_dim), dtype=np.float32)
        self.next_state = np.zeros((max_size, state_dim), dtype=np.float32)
        self.reward = np.zeros((max_size, 1), dtype=np.float32)
        self.not_done = np.zeros((max_size, 1), dtype=np.float32)

    def add(self, state, action, next_state, reward, done):
        self.state[self.ptr] = state
        self.action[self.ptr] = action
        self.next_state[self.ptr] = next_state
        self.reward[self.ptr] = reward
        self.not_done[self.ptr] = 1.0 - done

        self.ptr = (self.ptr + 1) % self.max_size
        self.size = min(self.size + 1, self.max_size)

    def sample(self, batch_size, rng):
        ind = rng.integers(0, self.size, size=batch_size)
        return (
            torch.from_numpy(self.state[ind]),
            torch.from_numpy(self.action[ind]),
            torch.from_numpy(self.next_state[ind]),
            torch.from_numpy(self.reward[ind]),
            torch.from_numpy(self.not_done[ind]),
        )


class Actor(nn.Module):
    def __init__(self, state_dim, action_dim, max_action, hidden=128):
        super().__init__()
        self.l1 = nn.Linear(state_dim, hidden)
        self.l2 = nn.Linear(hidden, hidden)
        self.l3 = nn.Linear(hidden, action_dim)
        self.max_action = max_action

    def forward(self, state):
        a = F.relu(self.l1(state))
        a = F.relu(self.l2(a))
        return self.max_action * torch.tanh(self.l3(a))


class Critic(nn.Module):
    def __init__(self, state_dim, action_dim, hidden=128):
        super().__init__()
        self.l1 = nn.Linear(state_dim + action_dim, hidden)
        self.l2 = nn.Linear(hidden, hidden)
        self.l3 = nn.Linear(hidden, 1)

    def forward(self, state, action):
        q = F.relu(self.l1(torch.cat([state, action], 1)))
        q = F.relu(self.l2(q))
        return self.l3(q)


class DDPG:
    def __init__(self, state_dim, action_dim, max_action, lr=1e-3, discount=0.95, tau=0.005):
        self.actor = Actor(state_dim, action_dim, max_action)
        self.actor_target = copy.deepcopy(self.actor)
        self.actor_optimizer = torch.optim.Adam(self.actor.parameters(), lr=lr)

        self.critic = Critic(state_dim, action_dim)
        self.critic_target = copy.deepcopy(self.critic)
        self.critic_optimizer = torch.optim.Adam(self.critic.parameters(), lr=lr)

        self.discount = discount
        self.tau = tau

    @torch.no_grad()
    def select_action(self, state):
        state = torch.as_tensor(state).reshape(1, -1)
        return self.actor(state).numpy().flatten()

    def train(self, replay_buffer, batch_size, rng):
        state, action, next_state, reward, not_done = replay_buffer.sample(batch_size, rng)

        # Compute the target Q value
        with torch.no_grad():
            target_Q = self.critic_target(next_state, self.actor_target(next_state))
            target_Q = reward + self.discount * not_done * target_Q

        # Get the current Q estimate and optimize the critic
        current_Q = self.critic(state, action)
        critic_loss = F.mse_loss(current_Q, target_Q)
        self.critic_optimizer.zero_grad()
        critic_loss.backward()
        self.critic_optimizer.step()

        # Compute the actor loss and optimize the actor
        actor_loss = -self.critic(state, self.actor(state)).mean()
        self.actor_optimizer.zero_grad()
        actor_loss.backward()
        self.actor_optimizer.step()

        # Update the frozen target models
        for param, target_param in zip(
            self.critic.parameters(), self.critic_target.parameters(), strict=True
        ):
            target_param.data.copy_(self.tau * param.data + (1 - self.tau) * target_param.data)
        for param, target_param in zip(
            self.actor.parameters(), self.actor_target.parameters(), strict=True
        ):
            target_param.data.copy_(self.tau * param.data + (1 - self.tau) * target_param.data)

        return critic_loss.item(), actor_loss.item()


def evaluate(policy_fn, seed, episodes=10):
    env = PointMassReach(seed=seed + 100)
    total = 0.0
    for _ in range(episodes):
        state, done = env.reset(), False
        while not done:
            state, reward, done = env.step(policy_fn(state))
            total += reward
    return total / episodes


def main():
    parser = argparse.ArgumentParser(description="DDPG on a point-mass reaching task")
    parser.add_argument("--max-timesteps", type=int, default=10_000)
    parser.add_argument("--start-timesteps", type=int, default=1_000)
    parser.add_argument("--eval-freq", type=int, default=2_000)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--expl-noise", type=float, default=0.1)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--discount", type=float, default=0.95)
    parser.add_argument("--tau", type=float, default=0.005)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    rng = np.random.default_rng(args.seed)

    env = PointMassReach(seed=args.seed)
    state_dim, action_dim, max_action = env.state_dim, env.action_dim, env.max_action
    policy = DDPG(state_dim, action_dim, max_action, args.lr, args.discount, args.tau)
    replay_buffer = ReplayBuffer(state_dim, action_dim)

    state, done = env.reset(), False
    episode_return, episode_num = 0.0, 0
    losses = []
    for t in range(1, args.max_timesteps + 1):
        if t <= args.start_timesteps:
            action = rng.uniform(-max_action, max_action, size=action_dim)
        else:
            noise = rng.normal(0, max_action * args.expl_noise, size=action_dim)
            action = (policy.select_action(state) + noise).clip(-max_action, max_action)

        next_state, reward, done = env.step(action)
        # The 50-step limit is a time-out, not a terminal state.
        replay_buffer.add(state, action, next_state, reward, 0.0)
        state = next_state
        episode_return += reward

        if t > args.start_timesteps:
            losses.append(policy.train(replay_buffer, args.batch_size, rng))

        if done:
            state, done = env.reset(), False
            episode_return, episode_num = 0.0, episode_num + 1

        if t % args.eval_freq == 0:
            avg = evaluate(policy.select_action, args.seed)
            critic_loss, actor_loss = np.mean(losses, axis=0) if losses else (0.0, 0.0)
            losses = []
            print(
                f"step {t:6d}  episodes {episode_num:4d}  critic loss {critic_loss:.4f}  "
                f"actor loss {actor_loss:.3f}  eval return {avg:.2f}"
            )

    eval_rng = np.random.default_rng(args.seed + 1)
    random_return = evaluate(lambda s: eval_rng.uniform(-1.0, 1.0, size=action_dim), args.seed)
    zero_return = evaluate(lambda s: np.zeros(action_dim), args.seed)
    final = evaluate(policy.select_action, args.seed)
    print(
        f"final: DDPG eval return {final:.2f}  random policy {random_return:.2f}  "
        f"zero-action policy {zero_return:.2f}"
    )


if __name__ == "__main__":
    main()
