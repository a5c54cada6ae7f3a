"""A tiny NeRF fitted to renderings of a generated scene from random rays: healthy.

In the manner of the "tiny_nerf" notebook and nerf-pytorch's ``run_nerf.py`` (Mildenhall
et al., "NeRF: Representing Scenes as Neural Radiance Fields for View Synthesis", 2020):
the scene is analytic, three coloured spheres (soft-edged density of 40 per unit inside,
colours that shade across each sphere) over a black background, and the ground-truth
32x32 images are rendered by the script's own volume renderer (``render_scene``, 256
evenly spaced samples per ray, transmittance from the cumulative optical depth) from 24
camera poses on the upper hemisphere at radius 4 (``pose_spherical``, Blender-style
camera-to-world matrices, drawn from the seed), with one more pose held out for testing.
``get_rays`` gives every pixel's ray origin and direction; the training rays of all views
are stacked with their colours and shuffled, and batches of 512 random rays are taken in
turn (reshuffled when exhausted, ``use_batching`` style); the spheres cover about a fifth
of each image.

``NeRF`` is an MLP of 4 ReLU layers of width 64 with the input concatenated again before
the third (the skip connection), taking the positional encoding of the 3-D point
(``get_embedder``: the point and ``sin``/``cos`` of it at 6 octaves) and returning raw
RGB and density. ``render_rays`` samples 32 depths per ray between near=2.5 and far=5.5,
stratified with uniform jitter in training, and ``raw2outputs`` composites them: sigmoid
colours, ``alpha = 1 - exp(-relu(sigma) * delta)``, weights = alpha times the transmittance
``cumprod(1 - alpha)`` shifted by one sample (exclusive), summed to the pixel colour. MSE
on RGB (``img2mse``), Adam with lr 1e-3 decayed exponentially by hand every iteration
(``lrate * 0.1 ** (step / (lrate_decay * 1000))``, written into the param groups), 1,000
iterations. Top-level functions and ``main()`` with argparse; prints the training loss and
PSNR every 100 iterations and the held-out view's PSNR every 500, then the final held-out
PSNR against the PSNR of predicting the training images' mean colour everywhere.

Healthy: nndoctor should report no warning and no error.

    python examples/wild/nerf_tiny_rays.py
    nndoctor check examples/wild/nerf_tiny_rays.py
"""

import argparse
import math

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

# -----------------------------------------------------------------------------
# the scene: analytic density and colour, and the ground-truth renderer

SPHERES = (
    # centre, radius, colour at the top, colour at the bottom
    ((0.45, 0.0, 0.15), 0.45, (0.95, 0.25, 0.15), (0.55, 0.05, 0.05)),
    ((-0.5, 0.35, -0.1), 0.35, (0.2, 0.45, 0.95), (0.05, 0.1, 0.45)),
    ((-0.1, -0.55, -0.25), 0.3, (0.3, 0.9, 0.35), (0.9, 0.85, 0.2)),
)


def scene_fields(pts):
    """Density and colour of the generated scene at points ``(..., 3)``."""
    sigma = torch.zeros(pts.shape[:-1])
    rgb_sum = torch.zeros(pts.shape)
    for centre, radius, top, bottom in SPHERES:
        centre = torch.tensor(centre)
        d = (pts - centre).norm(dim=-1)
        density = 40.0 * torch.sigmoid((radius - d) / 0.01)
        s = ((pts[..., 2] - centre[2]) / radius).clamp(-1, 1) * 0.5 + 0.5
        colour = torch.tensor(bottom) + s[..., None] * (torch.tensor(top) - torch.tensor(bottom))
        sigma = sigma + density
        rgb_sum = rgb_sum + density[..., None] * colour
    rgb = rgb_sum / (sigma[..., None] + 1e-8)
    return sigma, rgb


@torch.no_grad()
def render_scene(rays_o, rays_d, near, far, n_samples=256):
    """Ground truth: the analytic fields composited along each ray (midpoint rule)."""
    edges = torch.linspace(near, far, n_samples + 1)
    mids = 0.5 * (edges[1:] + edges[:-1])
    delta = (edges[1:] - edges[:-1]) * rays_d.norm(dim=-1, keepdim=True)
    pts = rays_o[:, None, :] + rays_d[:, None, :] * mids[None, :, None]
    sigma, rgb = scene_fields(pts)
    tau = sigma * delta
    trans = torch.exp(-(torch.cumsum(tau, dim=1) - tau))
    w = trans * (1.0 - torch.exp(-tau))
    return (w[..., None] * rgb).sum(dim=1)


# -----------------------------------------------------------------------------
# cameras and rays


def trans_t(t):
    return torch.tensor([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, t], [0, 0, 0, 1]]).float()


def rot_phi(phi):
    c, s = math.cos(phi), math.sin(phi)
    return torch.tensor([[1, 0, 0, 0], [0, c, -s, 0], [0, s, c, 0], [0, 0, 0, 1]]).float()


def rot_theta(th):
    c, s = math.cos(th), math.sin(th)
    return torch.tensor([[c, 0, -s, 0], [0, 1, 0, 0], [s, 0, c, 0], [0, 0, 0, 1]]).float()


def pose_spherical(theta, phi, radius):
    c2w = trans_t(radius)
    c2w = rot_phi(phi / 180.0 * math.pi) @ c2w
    c2w = rot_theta(theta / 180.0 * math.pi) @ c2w
    blender = torch.tensor([[-1, 0, 0, 0], [0, 0, 1, 0], [0, 1, 0, 0], [0, 0, 0, 1]]).float()
    return blender @ c2w


def get_rays(H, W, focal, c2w):
    i, j = torch.meshgrid(
        torch.arange(W, dtype=torch.float32), torch.arange(H, dtype=torch.float32), indexing="xy"
    )
    dirs = torch.stack([(i - W * 0.5) / focal, -(j - H * 0.5) / focal, -torch.ones_like(i)], -1)
    rays_d = torch.sum(dirs[..., None, :] * c2w[:3, :3], -1)
    rays_o = c2w[:3, -1].expand(rays_d.shape)
    return rays_o, rays_d


# -----------------------------------------------------------------------------
# the model


class Embedder:
    def __init__(self, multires):
        self.freq_bands = 2.0 ** torch.linspace(0.0, multires - 1, multires)
        self.out_dim = 3 + 3 * 2 * multires

    def embed(self, inputs):
        out = [inputs]
        for freq in self.freq_bands:
            for p_fn in (torch.sin, torch.cos):
                out.append(p_fn(inputs * freq))
        return torch.cat(out, -1)


def get_embedder(multires):
    embedder = Embedder(multires)
    return embedder.embed, embedder.out_dim


class NeRF(nn.Module):
    def __init__(self, D=4, W=96, input_ch=39, output_ch=4, skips=(2,)):
        super().__init__()
        self.skips = skips
        layers = [nn.Linear(input_ch, W)]
        for i in range(D - 1):
            layers.append(nn.Linear(W + input_ch if i + 1 in skips else W, W))
        self.pts_linears = nn.ModuleList(layers)
        self.output_linear = nn.Linear(W, output_ch)

    def forward(self, x):
        h = x
        for i, layer in enumerate(self.pts_linears):
            if i in self.skips:
                h = torch.cat([x, h], -1)
            h = F.relu(layer(h))
        return self.output_linear(h)


# -----------------------------------------------------------------------------
# volume rendering


def raw2outputs(raw, z_vals, rays_d):
    dists = z_vals[..., 1:] - z_vals[..., :-1]
    dists = torch.cat([dists, torch.full_like(dists[..., :1], 1e10)], -1)
    dists = dists * torch.norm(rays_d[..., None, :], dim=-1)

    rgb = torch.sigmoid(raw[..., :3])
    alpha = 1.0 - torch.exp(-F.relu(raw[..., 3]) * dists)
    # exclusive cumulative product: the light that reaches each sample
    ones = torch.ones_like(alpha[..., :1])
    transmittance = torch.cumprod(torch.cat([ones, 1.0 - alpha + 1e-10], -1), dim=-1)
    weights = alpha * transmittance[..., :-1]
    rgb_map = torch.sum(weights[..., None] * rgb, -2)
    acc_map = torch.sum(weights, -1)
    return rgb_map, acc_map


def render_rays(model, embed_fn, rays_o, rays_d, near, far, n_samples, perturb):
    t_vals = torch.linspace(0.0, 1.0, n_samples)
    z_vals = near * (1.0 - t_vals) + far * t_vals
    z_vals = z_vals.expand(rays_o.shape[0], n_samples)
    if perturb:
        # stratified sampling: one uniform depth in each bin
        mids = 0.5 * (z_vals[..., 1:] + z_vals[..., :-1])
        upper = torch.cat([mids, z_vals[..., -1:]], -1)
        lower = torch.cat([z_vals[..., :1], mids], -1)
        t_rand = torch.rand(z_vals.shape)
        z_vals = lower + (upper - lower) * t_rand
    pts = rays_o[..., None, :] + rays_d[..., None, :] * z_vals[..., :, None]
    raw = model(embed_fn(pts))
    return raw2outputs(raw, z_vals, rays_d)


@torch.no_grad()
def render_image(model, embed_fn, H, W, focal, c2w, args, chunk=4096):
    rays_o, rays_d = get_rays(H, W, focal, c2w)
    rays_o, rays_d = rays_o.reshape(-1, 3), rays_d.reshape(-1, 3)
    rgb = []
    for k in range(0, rays_o.shape[0], chunk):
        rays_o_k, rays_d_k = rays_o[k : k + chunk], rays_d[k : k + chunk]
        rgb_map, _ = render_rays(
            model, embed_fn, rays_o_k, rays_d_k, args.near, args.far, args.N_samples, False
        )
        rgb.append(rgb_map)
    return torch.cat(rgb).reshape(H, W, 3)


def img2mse(x, y):
    return torch.mean((x - y) ** 2)


def mse2psnr(x):
    return -10.0 * torch.log10(x)


# -----------------------------------------------------------------------------


def main():
    parser = argparse.ArgumentParser(description="tiny NeRF on a generated scene")
    parser.add_argument("--N_iters", type=int, default=1000)
    parser.add_argument("--N_rand", type=int, default=512, help="rays per batch")
    parser.add_argument("--N_samples", type=int, default=32, help="samples per ray")
    parser.add_argument("--n_views", type=int, default=24)
    parser.add_argument("--H", type=int, default=32)
    parser.add_argument("--multires", type=int, default=6)
    parser.add_argument("--netdepth", type=int, default=4)
    parser.add_argument("--netwidth", type=int, default=64)
    parser.add_argument("--lrate", type=float, default=1e-3)
    parser.add_argument("--lrate_decay", type=float, default=1.0, help="in 1000 steps")
    parser.add_argument("--near", type=float, default=2.5)
    parser.add_argument("--far", type=float, default=5.5)
    parser.add_argument("--i_print", type=int, default=100)
    parser.add_argument("--i_testset", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)

    # --- data: ground-truth renderings from random poses on the upper hemisphere
    H = W = args.H
    focal = 0.5 * W / math.tan(0.5 * 0.6911)
    thetas = np.random.uniform(-180.0, 180.0, args.n_views + 1)
    phis = np.random.uniform(-75.0, -10.0, args.n_views + 1)
    poses = torch.stack([pose_spherical(th, ph, 4.0) for th, ph in zip(thetas, phis, strict=True)])
    images = []
    for c2w in poses:
        rays_o, rays_d = get_rays(H, W, focal, c2w)
        rgb = render_scene(rays_o.reshape(-1, 3), rays_d.reshape(-1, 3), args.near, args.far)
        images.append(rgb.reshape(H, W, 3))
    images = torch.stack(images)
    i_train, i_test = np.arange(args.n_views), args.n_views
    print(f"Loaded {len(images)} renderings {H}x{W}, focal {focal:.1f}")
    print(f"train views {len(i_train)}, test view [{i_test}]")

    # use_batching: all training rays with their colours, shuffled
    rays = torch.stack([torch.stack(get_rays(H, W, focal, poses[i]), 0) for i in i_train])
    # rays: (N, ro+rd, H, W, 3)
    rays_rgb = torch.cat([rays, images[i_train][:, None]], 1)  # (N, ro+rd+rgb, H, W, 3)
    rays_rgb = rays_rgb.permute(0, 2, 3, 1, 4).reshape(-1, 3, 3)
    rays_rgb = rays_rgb[torch.randperm(rays_rgb.shape[0])]
    print(f"{rays_rgb.shape[0]} training rays, batches of {args.N_rand}")

    # --- model
    embed_fn, input_ch = get_embedder(args.multires)
    model = NeRF(D=args.netdepth, W=args.netwidth, input_ch=input_ch)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lrate, betas=(0.9, 0.999))

    mean_rgb = images[i_train].reshape(-1, 3).mean(0)
    baseline_psnr = mse2psnr(img2mse(mean_rgb.expand_as(images[i_test]), images[i_test])).item()

    i_batch = 0
    for global_step in range(1, args.N_iters + 1):
        batch = rays_rgb[i_batch : i_batch + args.N_rand]
        batch_rays, target_s = batch[:, :2], batch[:, 2]
        i_batch += args.N_rand
        if i_batch >= rays_rgb.shape[0]:
            rays_rgb = rays_rgb[torch.randperm(rays_rgb.shape[0])]
            i_batch = 0

        rays_o, rays_d = batch_rays[:, 0], batch_rays[:, 1]
        rgb, acc = render_rays(
            model, embed_fn, rays_o, rays_d, args.near, args.far, args.N_samples, True
        )
        optimizer.zero_grad()
        img_loss = img2mse(rgb, target_s)
        loss = img_loss
        psnr = mse2psnr(img_loss)
        loss.backward()
        optimizer.step()

        # exponential learning rate decay, as in run_nerf.py
        decay_rate = 0.1
        decay_steps = args.lrate_decay * 1000
        new_lrate = args.lrate * (decay_rate ** (global_step / decay_steps))
        for param_group in optimizer.param_groups:
            param_group["lr"] = new_lrate

        if global_step % args.i_print == 0:
            print(
                f"[TRAIN] Iter: {global_step} Loss: {loss.item():.5f} "
                f"PSNR: {psnr.item():.2f} lr: {new_lrate:.2e}"
            )
        if global_step % args.i_testset == 0 or global_step == args.N_iters:
            rgb_test = render_image(model, embed_fn, H, W, focal, poses[i_test], args)
            test_psnr = mse2psnr(img2mse(rgb_test, images[i_test])).item()
            print(f"[TEST] Iter: {global_step} held-out view PSNR: {test_psnr:.2f}")

    print(f"held-out view PSNR {test_psnr:.2f} dB (mean colour baseline {baseline_psnr:.2f} dB)")


if __name__ == "__main__":
    main()
