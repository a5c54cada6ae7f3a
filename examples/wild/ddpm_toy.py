"""A denoising diffusion probabilistic model (DDPM) on 8x8 bar images: healthy.

In the manner of the minimal DDPM tutorials (the "diffusion from scratch" notebooks that
follow Ho et al., 2020): the data are 8x8 single-channel images in [-1, 1], each showing
one full horizontal or vertical bar (16 possible images) with a little pixel noise. A
linear beta schedule over 200 steps gives ``alphas_cumprod``; each training batch draws
a random timestep per image and fresh Gaussian noise ``eps``, forms
``x_t = sqrt(alpha_bar_t) x0 + sqrt(1 - alpha_bar_t) eps`` and trains the network to
predict ``eps`` with ``F.mse_loss``. The network ``DenoiserMLP`` is a residual MLP on the
flattened image (pre-``LayerNorm`` blocks with ``SiLU``) conditioned on the timestep
through a sinusoidal embedding and a small MLP whose output is added inside each block.
Adam with a constant learning rate; an exponential moving average of the weights kept in
a ``copy.deepcopy`` of the model and updated after every step with ``lerp_``; the EMA
model is the one sampled. Evaluation runs the ancestral DDPM sampler from pure noise
with the EMA model and compares the samples with the data: the mean pixel value, the
share of samples that are a clean bar, and how many of the 16 bars appear. A ``main()``
with argparse and a ``Diffusion`` class holding the schedule; prints the loss every 200
steps and the sample statistics every 800 steps.

Healthy: nndoctor should report no warning and no error.

    python examples/wild/ddpm_toy.py
    nndoctor check examples/wild/ddpm_toy.py
"""

import argparse
import copy
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

SIZE = 8


def bar_templates() -> torch.Tensor:
    """The 16 clean images: a bright row or column on a dark background, in [-1, 1]."""
    images = -torch.ones(2 * SIZE, 1, SIZE, SIZE)
    for i in range(SIZE):
        images[i, 0, i, :] = 1.0
        images[SIZE + i, 0, :, i] = 1.0
    return images


TEMPLATES = bar_templates()


def sample_bars(n: int, generator: torch.Generator) -> torch.Tensor:
    index = torch.randint(0, len(TEMPLATES), (n,), generator=generator)
    noise = 0.05 * torch.randn(n, 1, SIZE, SIZE, generator=generator)
    return (TEMPLATES[index] + noise).clamp(-1, 1)


def sinusoidal_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32) / half)
    args = t.float()[:, None] * freqs[None, :]
    return torch.cat([torch.sin(args), torch.cos(args)], dim=-1)


class ResidualBlock(nn.Module):
    def __init__(self, hidden: int, emb_dim: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(hidden)
        self.fc1 = nn.Linear(hidden, hidden)
        self.emb = nn.Linear(emb_dim, hidden)
        self.fc2 = nn.Linear(hidden, hidden)

    def forward(self, h: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        z = self.fc1(F.silu(self.norm(h))) + self.emb(emb)
        return h + self.fc2(F.silu(z))


class DenoiserMLP(nn.Module):
    def __init__(self, hidden: int = 256, emb_dim: int = 128, n_blocks: int = 3) -> None:
        super().__init__()
        self.emb_dim = emb_dim
        self.time_mlp = nn.Sequential(
            nn.Linear(emb_dim, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim)
        )
        self.fc_in = nn.Linear(SIZE * SIZE, hidden)
        self.blocks = nn.ModuleList(ResidualBlock(hidden, emb_dim) for _ in range(n_blocks))
        self.norm_out = nn.LayerNorm(hidden)
        self.fc_out = nn.Linear(hidden, SIZE * SIZE)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        emb = self.time_mlp(sinusoidal_embedding(t, self.emb_dim))
        h = self.fc_in(x.flatten(1))
        for block in self.blocks:
            h = block(h, emb)
        return self.fc_out(F.silu(self.norm_out(h))).view_as(x)


class Diffusion:
    def __init__(self, timesteps: int = 200, beta_start: float = 1e-4, beta_end: float = 0.05):
        self.timesteps = timesteps
        self.betas = torch.linspace(beta_start, beta_end, timesteps)
        self.alphas = 1.0 - self.betas
        self.alphas_cumprod = torch.cumprod(self.alphas, dim=0)
        self.sqrt_alphas_cumprod = self.alphas_cumprod.sqrt()
        self.sqrt_one_minus_alphas_cumprod = (1.0 - self.alphas_cumprod).sqrt()
        alphas_cumprod_prev = F.pad(self.alphas_cumprod[:-1], (1, 0), value=1.0)
        self.posterior_variance = (
            self.betas * (1.0 - alphas_cumprod_prev) / (1.0 - self.alphas_cumprod)
        )

    def q_sample(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        a = self.sqrt_alphas_cumprod[t].view(-1, 1, 1, 1)
        s = self.sqrt_one_minus_alphas_cumprod[t].view(-1, 1, 1, 1)
        return a * x0 + s * noise

    @torch.no_grad()
    def sample(self, model: nn.Module, n: int) -> torch.Tensor:
        x = torch.randn(n, 1, SIZE, SIZE)
        for i in reversed(range(self.timesteps)):
            t = torch.full((n,), i, dtype=torch.long)
            eps = model(x, t)
            coef = self.betas[i] / self.sqrt_one_minus_alphas_cumprod[i]
            mean = (x - coef * eps) / self.alphas[i].sqrt()
            if i > 0:
                x = mean + self.posterior_variance[i].sqrt() * torch.randn_like(x)
            else:
                x = mean
        return x.clamp(-1, 1)


def sample_statistics(samples: torch.Tensor) -> tuple[float, float, int]:
    """Mean pixel, share of samples within 2 pixels of a clean bar, bars covered."""
    binary = torch.where(samples > 0, 1.0, -1.0).flatten(1)
    errors = (binary[:, None, :] != TEMPLATES.flatten(1)[None, :, :]).sum(dim=2)
    best, which = errors.min(dim=1)
    clean = best <= 2
    return samples.mean().item(), clean.float().mean().item(), which[clean].unique().numel()


def main() -> None:
    parser = argparse.ArgumentParser(description="DDPM on 8x8 bar images")
    parser.add_argument("--steps", type=int, default=2400)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--ema-decay", type=float, default=0.995)
    parser.add_argument("--n-samples", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    data_gen = torch.Generator().manual_seed(args.seed)
    diffusion = Diffusion()
    model = DenoiserMLP()
    ema_model = copy.deepcopy(model).requires_grad_(False)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)

    data_mean = sample_bars(4096, data_gen).mean().item()
    print(f"data: mean pixel {data_mean:.3f}, 100% clean bars, 16 bars")

    running = 0.0
    for step in range(1, args.steps + 1):
        x0 = sample_bars(args.batch_size, data_gen)
        t = torch.randint(0, diffusion.timesteps, (x0.size(0),))
        noise = torch.randn_like(x0)
        x_t = diffusion.q_sample(x0, t, noise)
        loss = F.mse_loss(model(x_t, t), noise)

        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            for ema_p, p in zip(ema_model.parameters(), model.parameters(), strict=True):
                ema_p.lerp_(p, 1.0 - args.ema_decay)

        running += loss.item()
        if step % 200 == 0:
            print(f"step {step:5d}: loss {running / 200:.4f}")
            running = 0.0
        if step % 800 == 0:
            samples = diffusion.sample(ema_model, args.n_samples)
            mean, clean, covered = sample_statistics(samples)
            print(
                f"  samples: mean pixel {mean:.3f}, clean bars {clean:.1%}, "
                f"bars covered {covered}/16"
            )


if __name__ == "__main__":
    main()
