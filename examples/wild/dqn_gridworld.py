"""DQN on a gridworld with walls and lava written in the script: healthy.

In the manner of the PyTorch DQN tutorial and the classic DQN implementations
(``Transition`` namedtuple, ``ReplayMemory`` over a ``deque``, ``select_action`` with
an exponentially decaying epsilon, ``optimize_model``), on a small environment
written here instead of Gym: an 8x8 gridworld with interior walls, three lava cells
and a goal. Each episode starts on a random free cell; the four moves cost -0.02
each, bumping into a wall leaves the agent in place, lava ends the episode with -1,
the goal ends it with +1, and an episode is cut after 50 moves (a time limit: the
last state is still bootstrapped). The observation is the agent's row and column,
each one-hot (16 values). ``DQN`` is a ReLU MLP giving the four action values; the
policy network is trained on random mini-batches of 64 transitions from a replay
memory of 10,000 with the TD target r + gamma * max_a' Q_target(s', a') (no
bootstrap past lava or goal) under ``F.smooth_l1_loss``, Adam, gradient norm clipped
at 10; the target network is a copy synced every 250 steps. A top-level script with
argparse; prints the mean return of the last 50 training episodes, and at the end the
greedy policy's mean return and success rate from every free start cell against the
optimal return (breadth-first search).

Healthy: nndoctor should report no warning and no error.

    python examples/wild/dqn_gridworld.py
    nndoctor check examples/wild/dqn_gridworld.py
"""

import argparse
import math
import random
from collections import deque, namedtuple

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

LAYOUT = [
    "........",
    ".####...",
    "....#.L.",
    ".L..#...",
    "....#.#.",
    "..###.#G",
    "......#.",
    "...L....",
]
MOVES = [(-1, 0), (1, 0), (0, -1), (0, 1)]  # up, down, left, right
STEP_REWARD, GOAL_REWARD, LAVA_REWARD = -0.02, 1.0, -1.0


class GridWorld:
    def __init__(self, layout, max_steps=50, seed=0):
        self.grid = np.array([list(row) for row in layout])
        self.size = self.grid.shape[0]
        self.max_steps = max_steps
        self.free = [tuple(p) for p in np.argwhere(self.grid == ".")]
        self.rng = random.Random(seed)

    def observe(self):
        obs = np.zeros(2 * self.size, dtype=np.float32)
        obs[self.pos[0]] = 1.0
        obs[self.size + self.pos[1]] = 1.0
        return obs

    def reset(self, start=None):
        self.pos = start if start is not None else self.rng.choice(self.free)
        self.steps = 0
        return self.observe()

    def step(self, action):
        r, c = self.pos[0] + MOVES[action][0], self.pos[1] + MOVES[action][1]
        if 0 <= r < self.size and 0 <= c < self.size and self.grid[r, c] != "#":
            self.pos = (r, c)
        self.steps += 1
        cell = self.grid[self.pos]
        reward, terminated = STEP_REWARD, False
        if cell == "G":
            reward, terminated = GOAL_REWARD, True
        elif cell == "L":
            reward, terminated = LAVA_REWARD, True
        truncated = self.steps >= self.max_steps
        return self.observe(), reward, terminated, truncated

    def optimal_return(self, start):
        frontier, dist = deque([start]), {start: 0}
        while frontier:
            pos = frontier.popleft()
            if self.grid[pos] == "G":
                return dist[pos] * STEP_REWARD + GOAL_REWARD - STEP_REWARD
            if self.grid[pos] == "L":
                continue
            for dr, dc in MOVES:
                nxt = (pos[0] + dr, pos[1] + dc)
                if 0 <= nxt[0] < self.size and 0 <= nxt[1] < self.size and self.grid[nxt] != "#":
                    if nxt not in dist:
                        dist[nxt] = dist[pos] + 1
                        frontier.append(nxt)
        return self.max_steps * STEP_REWARD


Transition = namedtuple("Transition", ("state", "action", "reward", "next_state", "terminated"))


class ReplayMemory:
    def __init__(self, capacity):
        self.memory = deque([], maxlen=capacity)

    def push(self, *args):
        self.memory.append(Transition(*args))

    def sample(self, batch_size):
        return random.sample(self.memory, batch_size)

    def __len__(self):
        return len(self.memory)


class DQN(nn.Module):
    def __init__(self, n_observations, n_actions):
        super().__init__()
        self.layer1 = nn.Linear(n_observations, 128)
        self.layer2 = nn.Linear(128, 128)
        self.layer3 = nn.Linear(128, n_actions)

    def forward(self, x):
        x = F.relu(self.layer1(x))
        x = F.relu(self.layer2(x))
        return self.layer3(x)


parser = argparse.ArgumentParser(description="DQN on a gridworld")
parser.add_argument("--steps", type=int, default=10000)
parser.add_argument("--batch-size", type=int, default=64)
parser.add_argument("--gamma", type=float, default=0.97)
parser.add_argument("--eps-start", type=float, default=1.0)
parser.add_argument("--eps-end", type=float, default=0.05)
parser.add_argument("--eps-decay", type=float, default=2000)
parser.add_argument("--target-update", type=int, default=250)
parser.add_argument("--lr", type=float, default=5e-4)
parser.add_argument("--seed", type=int, default=0)
args = parser.parse_args()
random.seed(args.seed)
torch.manual_seed(args.seed)

env = GridWorld(LAYOUT, seed=args.seed)
n_observations, n_actions = 2 * env.size, len(MOVES)
policy_net = DQN(n_observations, n_actions)
target_net = DQN(n_observations, n_actions)
target_net.load_state_dict(policy_net.state_dict())
optimizer = torch.optim.Adam(policy_net.parameters(), lr=args.lr)
memory = ReplayMemory(10000)
steps_done = 0


def select_action(state):
    global steps_done
    eps_threshold = args.eps_end + (args.eps_start - args.eps_end) * math.exp(
        -1.0 * steps_done / args.eps_decay
    )
    steps_done += 1
    if random.random() > eps_threshold:
        with torch.no_grad():
            return policy_net(torch.from_numpy(state).unsqueeze(0)).argmax(1).item()
    return random.randrange(n_actions)


def optimize_model():
    if len(memory) < 500:
        return None
    batch = Transition(*zip(*memory.sample(args.batch_size), strict=True))
    state_batch = torch.from_numpy(np.stack(batch.state))
    action_batch = torch.tensor(batch.action)
    reward_batch = torch.tensor(batch.reward, dtype=torch.float32)
    next_state_batch = torch.from_numpy(np.stack(batch.next_state))
    terminated_batch = torch.tensor(batch.terminated, dtype=torch.float32)

    state_action_values = policy_net(state_batch).gather(1, action_batch.unsqueeze(1)).squeeze(1)
    with torch.no_grad():
        next_state_values = target_net(next_state_batch).max(1).values
    expected_values = reward_batch + args.gamma * next_state_values * (1 - terminated_batch)

    loss = F.smooth_l1_loss(state_action_values, expected_values)
    optimizer.zero_grad()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(policy_net.parameters(), 10.0)
    optimizer.step()
    return loss.item()


def greedy_evaluation():
    returns, successes = [], 0
    for start in env.free:
        state, total = env.reset(start), 0.0
        while True:
            with torch.no_grad():
                action = policy_net(torch.from_numpy(state).unsqueeze(0)).argmax(1).item()
            state, reward, terminated, truncated = env.step(action)
            total += reward
            if terminated or truncated:
                successes += reward == GOAL_REWARD
                break
        returns.append(total)
    return float(np.mean(returns)), successes / len(env.free)


optimal = float(np.mean([env.optimal_return(start) for start in env.free]))
episode_returns, losses = [], []
state, episode_return = env.reset(), 0.0
for t in range(1, args.steps + 1):
    action = select_action(state)
    next_state, reward, terminated, truncated = env.step(action)
    episode_return += reward
    memory.push(state, action, reward, next_state, terminated)
    state = next_state

    loss = optimize_model()
    if loss is not None:
        losses.append(loss)
    if t % args.target_update == 0:
        target_net.load_state_dict(policy_net.state_dict())

    if terminated or truncated:
        episode_returns.append(episode_return)
        state, episode_return = env.reset(), 0.0

    if t % 1000 == 0:
        print(
            f"step {t:5d} | episodes {len(episode_returns):4d} | "
            f"mean return (last 50) {np.mean(episode_returns[-50:]):6.3f} | "
            f"loss {np.mean(losses[-500:]) if losses else float('nan'):.2e}"
        )

mean_return, success = greedy_evaluation()
print(
    f"greedy policy from every start: mean return {mean_return:.3f} "
    f"(optimal {optimal:.3f}), success rate {success:.2%}"
)
