"""Decision Transformer on an offline gridworld dataset of mixed-quality trajectories: healthy.

In the manner of the authors' gym code (kzl/decision-transformer ``experiment.py``,
``decision_transformer.py`` and ``SequenceTrainer``) and its minimal reimplementations,
with the GPT-2 backbone replaced by a tiny causal transformer written out as in minGPT.
The environment is written in the script: a 6x6 grid, the agent and the goal placed at
random, observation (agent x, y, goal x, y), four moves, reward -0.05 per step and +1 on
reaching the goal (the episode ends), episodes cut at 20 steps. The offline dataset is 800
trajectories of a behaviour policy that follows a shortest path to the goal but takes a
uniformly random move with probability epsilon, epsilon drawn per trajectory from [0, 1],
so that good and near-random behaviour are mixed (returns from -1 to 1). Returns-to-go
are computed per trajectory by ``discount_cumsum(rewards, 1.0)``; states are standardised
with the dataset's mean and standard deviation.

``get_batch()`` samples trajectories in proportion to their length and a random start in
each, cuts a context window of K = 10 steps (states, actions, returns-to-go, timesteps)
and pads it on the left with an attention mask of zeros. ``DecisionTransformer`` embeds
the return (Linear), the state (Linear) and the action (Embedding + Tanh, as in the Atari
code) separately, adds a learned timestep embedding to each, interleaves them into tokens
(R_1, s_1, a_1, R_2, ...), applies a LayerNorm and 2 pre-norm causal self-attention blocks
(width 64, 4 heads, masked with the causal and the padding mask), and predicts each action
from the hidden state of its state token; cross-entropy over the unpadded steps. AdamW
(lr 1e-3, weight decay 1e-4) with a linear warm-up over 200 steps by ``LambdaLR`` stepped
after every optimizer step, gradients clipped at 0.25, 4 iterations of 250 steps.
Top-level functions and ``main()`` with argparse; prints the mean action loss of every
iteration, then evaluates ``evaluate_episode_rtg`` (one episode at a time, the raw states
standardised with the dataset's statistics before each ``get_action``, the action sampled
from the softmax, the target return decremented by each reward) conditioned on a high
(+1) and a low (-1) target return over 100 episodes, against the behaviour data's mean
return, a random policy and the shortest-path policy on the same starting positions.

Healthy: nndoctor should report no warning and no error.

    python examples/wild/decision_transformer.py
    nndoctor check examples/wild/decision_transformer.py
"""

import argparse
import math
import random

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

# -----------------------------------------------------------------------------
# environment and offline data


class GridWorld:
    moves = np.array([[0, 1], [0, -1], [1, 0], [-1, 0]])

    def __init__(self, size=6, max_ep_len=20):
        self.size = size
        self.max_ep_len = max_ep_len
        self.state_dim = 4
        self.act_dim = len(self.moves)

    def reset(self, rng):
        self.pos = rng.integers(self.size, size=2)
        self.goal = rng.integers(self.size, size=2)
        while (self.goal == self.pos).all():
            self.goal = rng.integers(self.size, size=2)
        self.t = 0
        return self._obs()

    def _obs(self):
        return np.concatenate([self.pos, self.goal]).astype(np.float32)

    def step(self, action):
        self.pos = np.clip(self.pos + self.moves[action], 0, self.size - 1)
        self.t += 1
        if (self.pos == self.goal).all():
            return self._obs(), 1.0, True
        return self._obs(), -0.05, self.t >= self.max_ep_len


def shortest_path_action(obs, rng):
    delta = obs[2:] - obs[:2]
    good = [a for a, m in enumerate(GridWorld.moves) if (m * delta).sum() > 0]
    return int(rng.choice(good))


def collect_trajectories(env, n_trajectories, rng):
    trajectories = []
    for _ in range(n_trajectories):
        epsilon = rng.random()
        obs, done = env.reset(rng), False
        observations, actions, rewards = [], [], []
        while not done:
            if rng.random() < epsilon:
                action = int(rng.integers(env.act_dim))
            else:
                action = shortest_path_action(obs, rng)
            observations.append(obs)
            actions.append(action)
            obs, reward, done = env.step(action)
            rewards.append(reward)
        trajectories.append(
            {
                "observations": np.array(observations),
                "actions": np.array(actions),
                "rewards": np.array(rewards, dtype=np.float32),
            }
        )
    return trajectories


def discount_cumsum(x, gamma):
    discount_cumsum = np.zeros_like(x)
    discount_cumsum[-1] = x[-1]
    for t in reversed(range(x.shape[0] - 1)):
        discount_cumsum[t] = x[t] + gamma * discount_cumsum[t + 1]
    return discount_cumsum


# -----------------------------------------------------------------------------
# model: a tiny causal GPT


class CausalSelfAttention(nn.Module):
    def __init__(self, n_embd, n_head, block_size, dropout):
        super().__init__()
        self.n_head = n_head
        self.c_attn = nn.Linear(n_embd, 3 * n_embd)
        self.c_proj = nn.Linear(n_embd, n_embd)
        self.attn_dropout = nn.Dropout(dropout)
        self.resid_dropout = nn.Dropout(dropout)
        self.register_buffer(
            "bias",
            torch.tril(torch.ones(block_size, block_size)).view(1, 1, block_size, block_size),
        )

    def forward(self, x, attention_mask):
        B, T, C = x.size()
        q, k, v = self.c_attn(x).split(C, dim=2)
        k = k.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        q = q.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        v = v.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)

        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)))
        # causal mask and padding mask; finfo.min rather than -inf, as GPT-2 does, so that a
        # padded position with nothing to attend to does not become NaN
        att = att.masked_fill(self.bias[:, :, :T, :T] == 0, torch.finfo(att.dtype).min)
        att = att.masked_fill(attention_mask[:, None, None, :] == 0, torch.finfo(att.dtype).min)
        att = F.softmax(att, dim=-1)
        att = self.attn_dropout(att)
        y = att @ v
        y = y.transpose(1, 2).contiguous().view(B, T, C)
        return self.resid_dropout(self.c_proj(y))


class Block(nn.Module):
    def __init__(self, n_embd, n_head, block_size, dropout):
        super().__init__()
        self.ln_1 = nn.LayerNorm(n_embd)
        self.attn = CausalSelfAttention(n_embd, n_head, block_size, dropout)
        self.ln_2 = nn.LayerNorm(n_embd)
        self.mlp = nn.Sequential(
            nn.Linear(n_embd, 4 * n_embd),
            nn.GELU(),
            nn.Linear(4 * n_embd, n_embd),
            nn.Dropout(dropout),
        )

    def forward(self, x, attention_mask):
        x = x + self.attn(self.ln_1(x), attention_mask)
        return x + self.mlp(self.ln_2(x))


class DecisionTransformer(nn.Module):
    def __init__(
        self, state_dim, act_dim, hidden_size, max_length, max_ep_len, n_layer, n_head, dropout
    ):
        super().__init__()
        self.state_dim = state_dim
        self.act_dim = act_dim
        self.hidden_size = hidden_size
        self.max_length = max_length

        self.embed_timestep = nn.Embedding(max_ep_len, hidden_size)
        self.embed_return = nn.Linear(1, hidden_size)
        self.embed_state = nn.Linear(state_dim, hidden_size)
        self.embed_action = nn.Sequential(nn.Embedding(act_dim, hidden_size), nn.Tanh())
        self.embed_ln = nn.LayerNorm(hidden_size)
        self.drop = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(
            Block(hidden_size, n_head, 3 * max_length, dropout) for _ in range(n_layer)
        )
        self.ln_f = nn.LayerNorm(hidden_size)
        self.predict_action = nn.Linear(hidden_size, act_dim)
        self.apply(self._init_weights)

    def _init_weights(self, module):
        if isinstance(module, (nn.Linear, nn.Embedding)):
            module.weight.data.normal_(mean=0.0, std=0.02)
            if isinstance(module, nn.Linear) and module.bias is not None:
                module.bias.data.zero_()
        elif isinstance(module, nn.LayerNorm):
            module.bias.data.zero_()
            module.weight.data.fill_(1.0)

    def forward(self, states, actions, returns_to_go, timesteps, attention_mask=None):
        batch_size, seq_length = states.shape[0], states.shape[1]
        if attention_mask is None:
            attention_mask = torch.ones((batch_size, seq_length), dtype=torch.long)

        time_embeddings = self.embed_timestep(timesteps)
        state_embeddings = self.embed_state(states) + time_embeddings
        action_embeddings = self.embed_action(actions) + time_embeddings
        returns_embeddings = self.embed_return(returns_to_go) + time_embeddings

        # (R_1, s_1, a_1, R_2, s_2, a_2, ...)
        stacked_inputs = (
            torch.stack((returns_embeddings, state_embeddings, action_embeddings), dim=1)
            .permute(0, 2, 1, 3)
            .reshape(batch_size, 3 * seq_length, self.hidden_size)
        )
        stacked_inputs = self.drop(self.embed_ln(stacked_inputs))
        stacked_attention_mask = (
            torch.stack((attention_mask, attention_mask, attention_mask), dim=1)
            .permute(0, 2, 1)
            .reshape(batch_size, 3 * seq_length)
        )

        x = stacked_inputs
        for block in self.blocks:
            x = block(x, stacked_attention_mask)
        x = self.ln_f(x)

        # x[:, 0] return tokens, x[:, 1] state tokens, x[:, 2] action tokens
        x = x.reshape(batch_size, seq_length, 3, self.hidden_size).permute(0, 2, 1, 3)
        action_preds = self.predict_action(x[:, 1])
        return action_preds

    @torch.no_grad()
    def get_action(self, states, actions, returns_to_go, timesteps, generator=None):
        states = states.reshape(1, -1, self.state_dim)[:, -self.max_length :]
        actions = actions.reshape(1, -1)[:, -self.max_length :]
        returns_to_go = returns_to_go.reshape(1, -1, 1)[:, -self.max_length :]
        timesteps = timesteps.reshape(1, -1)[:, -self.max_length :]

        # pad on the left up to the context length
        pad = self.max_length - states.shape[1]
        attention_mask = torch.cat(
            [torch.zeros(pad, dtype=torch.long), torch.ones(states.shape[1], dtype=torch.long)]
        ).reshape(1, -1)
        states = torch.cat([torch.zeros((1, pad, self.state_dim)), states], dim=1)
        actions = torch.cat([torch.zeros((1, pad), dtype=torch.long), actions], dim=1)
        returns_to_go = torch.cat([torch.zeros((1, pad, 1)), returns_to_go], dim=1)
        timesteps = torch.cat([torch.zeros((1, pad), dtype=torch.long), timesteps], dim=1)

        action_preds = self.forward(states, actions, returns_to_go, timesteps, attention_mask)
        probs = F.softmax(action_preds[0, -1], dim=-1)
        return torch.multinomial(probs, 1, generator=generator).item()


# -----------------------------------------------------------------------------
# training and evaluation


def get_batch(trajectories, p_sample, state_mean, state_std, batch_size, max_len, max_ep_len):
    batch_inds = np.random.choice(len(trajectories), size=batch_size, replace=True, p=p_sample)
    s, a, rtg, timesteps, mask, targets = [], [], [], [], [], []
    for i in batch_inds:
        traj = trajectories[i]
        si = random.randint(0, traj["rewards"].shape[0] - 1)

        s_i = traj["observations"][si : si + max_len]
        a_i = traj["actions"][si : si + max_len]
        rtg_i = traj["returns_to_go"][si : si + max_len]
        tlen = s_i.shape[0]
        t_i = np.minimum(np.arange(si, si + tlen), max_ep_len - 1)

        pad = max_len - tlen
        s.append(np.concatenate([np.zeros((pad, s_i.shape[1])), (s_i - state_mean) / state_std]))
        a.append(np.concatenate([np.zeros(pad, dtype=np.int64), a_i]))
        targets.append(np.concatenate([np.full(pad, -100, dtype=np.int64), a_i]))
        rtg.append(np.concatenate([np.zeros(pad), rtg_i])[:, None])
        timesteps.append(np.concatenate([np.zeros(pad, dtype=np.int64), t_i]))
        mask.append(np.concatenate([np.zeros(pad), np.ones(tlen)]))

    return (
        torch.tensor(np.stack(s), dtype=torch.float32),
        torch.tensor(np.stack(a), dtype=torch.long),
        torch.tensor(np.stack(rtg), dtype=torch.float32),
        torch.tensor(np.stack(timesteps), dtype=torch.long),
        torch.tensor(np.stack(mask), dtype=torch.long),
        torch.tensor(np.stack(targets), dtype=torch.long),
    )


def evaluate_episode_rtg(env, model, state_mean, state_std, target_return, rng, generator):
    model.eval()
    state_mean = torch.from_numpy(state_mean).float()
    state_std = torch.from_numpy(state_std).float()
    state = env.reset(rng)
    states = torch.from_numpy(state).reshape(1, env.state_dim)
    actions = torch.zeros(0, dtype=torch.long)
    target_returns = torch.tensor([target_return], dtype=torch.float32)
    timesteps = torch.tensor([0], dtype=torch.long)
    episode_return, t, done = 0.0, 0, False
    while not done:
        # a placeholder for the action to be predicted; the causal mask hides it
        actions = torch.cat([actions, torch.zeros(1, dtype=torch.long)])
        action = model.get_action(
            (states - state_mean) / state_std, actions, target_returns, timesteps, generator
        )
        actions[-1] = action
        state, reward, done = env.step(action)
        episode_return += reward
        t += 1
        states = torch.cat([states, torch.from_numpy(state).reshape(1, env.state_dim)], dim=0)
        target_returns = torch.cat([target_returns, target_returns[-1:] - reward])
        timesteps = torch.cat([timesteps, torch.tensor([min(t, env.max_ep_len - 1)])])
    return episode_return


def evaluate_policy(env, policy, rng, policy_rng):
    obs, done, episode_return = env.reset(rng), False, 0.0
    while not done:
        if policy == "random":
            action = int(policy_rng.integers(env.act_dim))
        else:
            action = shortest_path_action(obs, policy_rng)
        obs, reward, done = env.step(action)
        episode_return += reward
    return episode_return


def main():
    parser = argparse.ArgumentParser(description="Decision Transformer on an offline gridworld")
    parser.add_argument("--num-trajectories", type=int, default=800)
    parser.add_argument("--K", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--embed-dim", type=int, default=64)
    parser.add_argument("--n-layer", type=int, default=2)
    parser.add_argument("--n-head", type=int, default=4)
    parser.add_argument("--dropout", type=float, default=0.1)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--weight-decay", type=float, default=1e-4)
    parser.add_argument("--warmup-steps", type=int, default=200)
    parser.add_argument("--max-iters", type=int, default=4)
    parser.add_argument("--num-steps-per-iter", type=int, default=250)
    parser.add_argument("--num-eval-episodes", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)

    env = GridWorld()
    trajectories = collect_trajectories(env, args.num_trajectories, rng)
    for traj in trajectories:
        traj["returns_to_go"] = discount_cumsum(traj["rewards"], gamma=1.0)

    states = np.concatenate([traj["observations"] for traj in trajectories], axis=0)
    state_mean, state_std = states.mean(axis=0), states.std(axis=0) + 1e-6
    traj_lens = np.array([len(traj["rewards"]) for traj in trajectories])
    returns = np.array([traj["rewards"].sum() for traj in trajectories])
    p_sample = traj_lens / traj_lens.sum()
    print(
        f"{len(trajectories)} trajectories, {traj_lens.sum()} timesteps; return mean "
        f"{returns.mean():.3f}, std {returns.std():.3f}, max {returns.max():.3f}, "
        f"min {returns.min():.3f}"
    )

    model = DecisionTransformer(
        state_dim=env.state_dim,
        act_dim=env.act_dim,
        hidden_size=args.embed_dim,
        max_length=args.K,
        max_ep_len=env.max_ep_len,
        n_layer=args.n_layer,
        n_head=args.n_head,
        dropout=args.dropout,
    )
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=args.learning_rate, weight_decay=args.weight_decay
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda steps: min((steps + 1) / args.warmup_steps, 1)
    )

    for iteration in range(args.max_iters):
        model.train()
        train_losses = []
        for _ in range(args.num_steps_per_iter):
            states_b, actions_b, rtg_b, timesteps_b, mask_b, targets_b = get_batch(
                trajectories,
                p_sample,
                state_mean,
                state_std,
                args.batch_size,
                args.K,
                env.max_ep_len,
            )
            action_preds = model(states_b, actions_b, rtg_b, timesteps_b, attention_mask=mask_b)
            loss = F.cross_entropy(
                action_preds.reshape(-1, env.act_dim), targets_b.reshape(-1), ignore_index=-100
            )
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 0.25)
            optimizer.step()
            scheduler.step()
            train_losses.append(loss.item())
        print(
            f"iteration {iteration + 1}: training/action_loss {np.mean(train_losses):.4f}  "
            f"lr {scheduler.get_last_lr()[0]:.2e}"
        )

    # evaluation: every policy starts from the same positions and goals
    generator = torch.Generator().manual_seed(args.seed)
    target_high, target_low = 1.0, -1.0
    results = {}
    for policy in ("random", "shortest path"):
        eval_rng = np.random.default_rng(10_000 + args.seed)
        policy_rng = np.random.default_rng(args.seed + 1)
        results[policy] = np.mean(
            [
                evaluate_policy(env, policy, eval_rng, policy_rng)
                for _ in range(args.num_eval_episodes)
            ]
        )
    for target in (target_high, target_low):
        eval_rng = np.random.default_rng(10_000 + args.seed)
        results[f"DT (target {target:+.1f})"] = np.mean(
            [
                evaluate_episode_rtg(env, model, state_mean, state_std, target, eval_rng, generator)
                for _ in range(args.num_eval_episodes)
            ]
        )
    for name, value in results.items():
        print(f"evaluation/return {name}: {value:.3f}")
    print(
        f"final: DT return {results[f'DT (target {target_high:+.1f})']:.3f} conditioned on "
        f"{target_high:+.1f} (behaviour data {returns.mean():.3f}, random policy "
        f"{results['random']:.3f}, shortest path {results['shortest path']:.3f})"
    )


if __name__ == "__main__":
    main()
