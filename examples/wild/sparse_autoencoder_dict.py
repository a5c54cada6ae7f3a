"""A sparse autoencoder for dictionary learning on synthetic activations: healthy.

In the manner of the sparse autoencoders of mechanistic interpretability (the
"Towards Monosemanticity" recipe and the open-source SAE trainers that follow it), on
activations that are generated with a known answer: 256 ground-truth feature directions,
random unit vectors in a 64-dimensional space (so they are in superposition: four times
more features than dimensions), each active in 2% of the samples with an exponential
magnitude, summed onto a fixed offset and scaled up to the large norms of a residual
stream. 262,144 activations are generated once into an activation buffer, which is read
in shuffled batches of 2,048 (a new permutation per pass). As the SAE trainers do, the
activations are multiplied by one constant estimated from a sample so that their mean
squared norm is ``d_model``, which makes the L1 coefficient independent of the raw
scale.

``SparseAutoencoder`` is a custom ``nn.Module``: a pre-encoder bias ``b_dec`` (the
decoder bias, initialised at the mean activation) is subtracted, an overcomplete
``nn.Linear`` encoder with 512 latents and a ReLU gives the codes, a bias-free linear
decoder plus ``b_dec`` gives the reconstruction. The encoder starts as the transpose of
the decoder, whose columns (the dictionary atoms) start at unit norm. The loss is the
squared L2 reconstruction error summed over the model dimension plus ``l1_coeff`` times
the L1 norm of the codes, both averaged over the batch. Before each step the gradient
component parallel to each decoder column is removed, and after it the columns are
renormalised to unit norm, so that the sparsity penalty cannot be dodged by shrinking
codes and growing atoms. Adam, constant learning rate. A ``main()`` with argparse; prints
every 250 steps the loss, and on 8,192 fresh activations the fraction of variance
explained, the mean L0 of the codes, the dead latents and how many of the 256 true
features are recovered (some decoder column with cosine similarity above 0.9).

Healthy: nndoctor should report no warning and no error.

    python examples/wild/sparse_autoencoder_dict.py
    nndoctor check examples/wild/sparse_autoencoder_dict.py
"""

import argparse

import torch
import torch.nn as nn
import torch.nn.functional as F


class ToyActivations:
    """Sparse non-negative combinations of fixed feature directions, plus an offset."""

    def __init__(self, d_model, n_features, p_active, raw_scale, seed):
        self.g = torch.Generator().manual_seed(seed)
        directions = torch.randn(n_features, d_model, generator=self.g)
        self.directions = directions / directions.norm(dim=1, keepdim=True)
        self.offset = 0.5 * torch.randn(d_model, generator=self.g)
        self.p_active = p_active
        self.raw_scale = raw_scale

    def sample(self, batch_size):
        n_features = self.directions.shape[0]
        active = torch.rand(batch_size, n_features, generator=self.g) < self.p_active
        magnitude = torch.empty(batch_size, n_features).exponential_(1.0, generator=self.g)
        codes = active * magnitude
        return self.raw_scale * (codes @ self.directions + self.offset)


class SparseAutoencoder(nn.Module):
    def __init__(self, d_model, n_latents):
        super().__init__()
        self.b_dec = nn.Parameter(torch.zeros(d_model))
        self.encoder = nn.Linear(d_model, n_latents)
        self.decoder = nn.Linear(n_latents, d_model, bias=False)
        with torch.no_grad():
            atoms = torch.randn(d_model, n_latents)
            self.decoder.weight.copy_(atoms / atoms.norm(dim=0, keepdim=True))
            self.encoder.weight.copy_(self.decoder.weight.t())
            self.encoder.bias.zero_()

    def encode(self, x):
        return F.relu(self.encoder(x - self.b_dec))

    def decode(self, f):
        return self.decoder(f) + self.b_dec

    def forward(self, x):
        f = self.encode(x)
        return self.decode(f), f

    @torch.no_grad()
    def remove_parallel_grad(self):
        W = self.decoder.weight
        W.grad -= (W.grad * W).sum(dim=0, keepdim=True) * W

    @torch.no_grad()
    def normalise_decoder(self):
        W = self.decoder.weight
        W.div_(W.norm(dim=0, keepdim=True))


@torch.no_grad()
def estimate_scale(data, d_model, n_batches=8, batch_size=4096):
    norms = torch.cat([data.sample(batch_size).norm(dim=1) for _ in range(n_batches)])
    return (d_model**0.5) / norms.mean().item()


@torch.no_grad()
def evaluate(sae, data, scale, n=8192):
    x = data.sample(n) * scale
    x_hat, f = sae(x)
    fve = 1 - (x - x_hat).pow(2).sum() / (x - x.mean(dim=0)).pow(2).sum()
    l0 = (f > 0).float().sum(dim=1).mean()
    dead = int(((f > 0).sum(dim=0) == 0).sum())
    atoms = sae.decoder.weight / sae.decoder.weight.norm(dim=0, keepdim=True)
    cos = data.directions @ atoms  # (n_features, n_latents)
    recovered = int((cos.max(dim=1).values > 0.9).sum())
    return fve.item(), l0.item(), dead, recovered


def main():
    parser = argparse.ArgumentParser(description="sparse autoencoder dictionary learning")
    parser.add_argument("--d-model", type=int, default=64)
    parser.add_argument("--n-features", type=int, default=256)
    parser.add_argument("--n-latents", type=int, default=512)
    parser.add_argument("--p-active", type=float, default=0.02)
    parser.add_argument("--raw-scale", type=float, default=12.0)
    parser.add_argument("--buffer-size", type=int, default=2**18)
    parser.add_argument("--batch-size", type=int, default=2048)
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--lr", type=float, default=5e-3)
    parser.add_argument("--l1-coeff", type=float, default=1.5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    data = ToyActivations(
        args.d_model, args.n_features, args.p_active, args.raw_scale, seed=args.seed
    )
    scale = estimate_scale(data, args.d_model)
    buffer = torch.cat([data.sample(4096) for _ in range(args.buffer_size // 4096)])
    buffer = buffer * scale

    sae = SparseAutoencoder(args.d_model, args.n_latents)
    with torch.no_grad():
        sae.b_dec.copy_(buffer[:8192].mean(dim=0))
    optimizer = torch.optim.Adam(sae.parameters(), lr=args.lr)

    def batches():
        while True:
            order = torch.randperm(len(buffer))
            for i in range(0, len(buffer) - args.batch_size + 1, args.batch_size):
                yield buffer[order[i : i + args.batch_size]]

    stream = batches()
    for step in range(1, args.steps + 1):
        x = next(stream)
        x_hat, f = sae(x)
        mse = (x_hat - x).pow(2).sum(dim=-1).mean()
        l1 = f.abs().sum(dim=-1).mean()
        loss = mse + args.l1_coeff * l1

        optimizer.zero_grad()
        loss.backward()
        sae.remove_parallel_grad()
        optimizer.step()
        sae.normalise_decoder()

        if step % 250 == 0:
            fve, l0, dead, recovered = evaluate(sae, data, scale)
            print(
                f"step {step:5d}  loss {loss.item():.3f}  mse {mse.item():.3f}  "
                f"l1 {l1.item():.3f}  FVE {fve:.3f}  L0 {l0:.1f}  dead {dead}  "
                f"recovered {recovered}/{args.n_features}"
            )


if __name__ == "__main__":
    main()
