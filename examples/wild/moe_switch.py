"""A Switch-Transformer mixture-of-experts layer in a small token tagger: healthy.

In the manner of the Switch Transformer (Fedus et al.) and the PyTorch re-implementations
of its ``SwitchFeedForward`` layer, at toy scale. The task is token tagging on generated
sequences: each sequence starts with a marker of its domain (one of 8) followed by 23
tokens, each a vector of 12 standard normal features, and the tag of a token (one of 8)
is the largest of 8 quadratic forms of its features, ``(x . a_c) * (x . b_c)``, drawn
per domain. A token's tag therefore needs the domain, found through attention, and a
nonlinear function that the feed-forward experts have to supply; the natural routing
is by domain. Fresh sequences are generated for every batch and for the held-out set.

The model is a linear projection of the token features (the domain marker an
``nn.Embedding``) plus learned position embeddings, then two pre-LayerNorm blocks of
``nn.MultiheadAttention(batch_first=True)`` and a ``SwitchFeedForward`` with residual
connections, a final LayerNorm and a linear tagging head. ``SwitchFeedForward`` is a
custom ``nn.Module`` over the flattened tokens: a linear router with a softmax over the 8
experts, top-1 routing, an expert capacity of ``capacity_factor * tokens / experts``
(factor 1.25) with the tokens over capacity dropped (their output is zero, so only the
residual carries them), experts that are two-layer ReLU FFNs in an ``nn.ModuleList``,
and each expert's output scaled by the router probability of its expert so that the
router gets a gradient. The layer also returns the auxiliary load-balancing loss
``num_experts * sum_i f_i * P_i`` (``f_i`` the fraction of tokens sent to expert ``i``,
``P_i`` the mean router probability for it) and the share of dropped tokens. The
training loss is ``CrossEntropyLoss(ignore_index=-100)`` over ``(batch*seq, tags)`` (the
marker position is tagged -100) plus 0.01 times the auxiliary losses of both layers.
AdamW with weight decay, linear warm-up over 200 steps then cosine decay by ``LambdaLR``
stepped every batch, batches of 64 sequences generated on the fly.
A ``main()`` with argparse; prints every 250 steps the loss, the auxiliary loss, the
share of dropped tokens and, on 512 held-out sequences, the tag accuracy and the load
of each expert of the first layer.

Healthy: nndoctor should report no warning and no error.

    python examples/wild/moe_switch.py
    nndoctor check examples/wild/moe_switch.py
"""

import argparse
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

N_FEATURES, N_DOMAINS, SEQ_LEN, N_TAGS = 12, 8, 24, 8


def make_teachers(g):
    """Per domain, one quadratic form per tag: the tag of a token is the largest."""
    wa = torch.randn(N_DOMAINS, N_FEATURES, N_TAGS, generator=g) / N_FEATURES**0.5
    wb = torch.randn(N_DOMAINS, N_FEATURES, N_TAGS, generator=g) / N_FEATURES**0.5
    return wa, wb


def make_batch(teachers, batch_size, g):
    wa, wb = teachers
    domain = torch.randint(0, N_DOMAINS, (batch_size,), generator=g)
    feats = torch.randn(batch_size, SEQ_LEN - 1, N_FEATURES, generator=g)
    scores = (feats @ wa[domain]) * (feats @ wb[domain])
    tags = scores.argmax(dim=-1)
    # position 0 holds the domain marker and has no tag
    tags = torch.cat([torch.full((batch_size, 1), -100), tags], dim=1)
    return feats, domain, tags


class SwitchFeedForward(nn.Module):
    def __init__(self, d_model, d_ff, n_experts, capacity_factor):
        super().__init__()
        self.n_experts = n_experts
        self.capacity_factor = capacity_factor
        self.router = nn.Linear(d_model, n_experts)
        self.experts = nn.ModuleList(
            nn.Sequential(nn.Linear(d_model, d_ff), nn.ReLU(), nn.Linear(d_ff, d_model))
            for _ in range(n_experts)
        )

    def forward(self, x):
        batch_size, seq_len, d_model = x.shape
        x = x.reshape(-1, d_model)
        n_tokens = x.shape[0]

        route_prob = F.softmax(self.router(x), dim=-1)
        route_prob_max, routes = route_prob.max(dim=-1)
        capacity = int(self.capacity_factor * n_tokens / self.n_experts)

        out = x.new_zeros(x.shape)
        dropped = 0
        for i, expert in enumerate(self.experts):
            idx = torch.nonzero(routes == i, as_tuple=True)[0]
            dropped += max(0, len(idx) - capacity)
            idx = idx[:capacity]
            if len(idx):
                out[idx] = expert(x[idx]) * route_prob_max[idx, None]

        counts = torch.bincount(routes, minlength=self.n_experts).float()
        f = counts / n_tokens
        P = route_prob.mean(dim=0)
        aux_loss = self.n_experts * (f * P).sum()
        return out.view(batch_size, seq_len, d_model), aux_loss, f, dropped / n_tokens


class SwitchBlock(nn.Module):
    def __init__(self, d_model, n_heads, d_ff, n_experts, capacity_factor):
        super().__init__()
        self.ln1 = nn.LayerNorm(d_model)
        self.attn = nn.MultiheadAttention(d_model, n_heads, batch_first=True)
        self.ln2 = nn.LayerNorm(d_model)
        self.ffn = SwitchFeedForward(d_model, d_ff, n_experts, capacity_factor)

    def forward(self, x):
        h = self.ln1(x)
        x = x + self.attn(h, h, h, need_weights=False)[0]
        y, aux_loss, load, dropped = self.ffn(self.ln2(x))
        return x + y, aux_loss, load, dropped


class SwitchTagger(nn.Module):
    def __init__(self, d_model=64, n_heads=4, d_ff=128, n_experts=8, capacity_factor=1.25):
        super().__init__()
        self.proj = nn.Linear(N_FEATURES, d_model)
        self.domain = nn.Embedding(N_DOMAINS, d_model)
        self.pos = nn.Parameter(0.02 * torch.randn(SEQ_LEN, d_model))
        self.blocks = nn.ModuleList(
            SwitchBlock(d_model, n_heads, d_ff, n_experts, capacity_factor) for _ in range(2)
        )
        self.ln_f = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, N_TAGS)

    def forward(self, feats, domain):
        x = torch.cat([self.domain(domain)[:, None], self.proj(feats)], dim=1) + self.pos
        aux_total, loads, drops = 0.0, [], []
        for block in self.blocks:
            x, aux_loss, load, dropped = block(x)
            aux_total = aux_total + aux_loss
            loads.append(load)
            drops.append(dropped)
        return self.head(self.ln_f(x)), aux_total, loads, sum(drops) / len(drops)


def main():
    parser = argparse.ArgumentParser(description="Switch-MoE token tagger")
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--weight-decay", type=float, default=0.01)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--aux-coeff", type=float, default=0.01)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    g = torch.Generator().manual_seed(args.seed)
    teachers = make_teachers(g)
    val_feats, val_domain, val_tags = make_batch(teachers, 512, g)

    model = SwitchTagger()
    criterion = nn.CrossEntropyLoss(ignore_index=-100)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)

    def lr_lambda(step):
        if step < args.warmup:
            return (step + 1) / args.warmup
        progress = (step - args.warmup) / max(1, args.steps - args.warmup)
        return 0.5 * (1 + math.cos(math.pi * progress))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda)

    for step in range(1, args.steps + 1):
        model.train()
        feats, domain, tags = make_batch(teachers, args.batch_size, g)
        logits, aux_loss, _, dropped = model(feats, domain)
        ce = criterion(logits.view(-1, N_TAGS), tags.view(-1))
        loss = ce + args.aux_coeff * aux_loss

        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        scheduler.step()

        if step % 250 == 0:
            model.eval()
            with torch.no_grad():
                val_logits, _, loads, val_dropped = model(val_feats, val_domain)
                pred = val_logits[:, 1:].argmax(dim=-1)
                acc = (pred == val_tags[:, 1:]).float().mean().item()
            load = " ".join(f"{v:.2f}" for v in loads[0].tolist())
            print(
                f"step {step:5d}  loss {ce.item():.3f}  aux {aux_loss.item():.3f}  "
                f"dropped {dropped:.3f}  val acc {acc:.3f}  val dropped {val_dropped:.3f}  "
                f"load [{load}]"
            )


if __name__ == "__main__":
    main()
