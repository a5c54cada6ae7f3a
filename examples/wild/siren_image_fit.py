"""A SIREN fitted to one image as a function of its pixel coordinates: healthy.

In the manner of the SIREN authors' "explore_siren" notebook (Sitzmann et al., "Implicit
Neural Representations with Periodic Activation Functions", 2020): the image is a generated
64x64 grayscale picture (a few soft blobs, a disc with a sharp edge, a patch of stripes
whose frequency rises across it and a ring), defined analytically on [-1, 1]^2 and scaled
to [-1, 1] like the notebook's ``Normalize(0.5, 0.5)``. ``ImageFitting`` holds the 4,096
pixel centres from ``get_mgrid`` (coordinates in [-1, 1]) and their values, flattened to
``(N, 2)`` and ``(N, 1)``; the ``DataLoader`` yields that single full batch.

``Siren`` is an ``nn.Module`` of ``SineLayer``s, ``sin(omega_0 * (W x + b))`` with
``omega_0 = 30``, initialised as in the paper: the first layer uniform in ``±1/in``, the
others uniform in ``±sqrt(6/in)/omega_0``; 2 inputs, 3 hidden layers of 128 features and a
linear output layer with the hidden layers' init. Like the notebook, ``forward`` returns the
output and the coordinates (cloned, with ``requires_grad``) so that derivatives of the fit
can be taken. The loss is the mean squared error over all pixels, Adam with lr 1e-4, 500
steps on the full batch. Top-level functions and ``main()`` with argparse; prints the loss
and PSNR every 100 steps, then the final PSNR on the 64x64 training grid and on a 128x128
grid of new points between the pixels (the generated image can be evaluated anywhere),
against the PSNR of predicting the mean pixel value, and the relative error of the fitted
image's gradient (by autograd through the coordinates) against the true one.

Healthy: nndoctor should report no warning and no error.

    python examples/wild/siren_image_fit.py
    nndoctor check examples/wild/siren_image_fit.py
"""

import argparse
import math

import torch
import torch.nn as nn
from torch.utils.data import DataLoader, Dataset


def get_mgrid(sidelen, dim=2):
    """A flattened grid of pixel-centre coordinates in [-1, 1], shape (sidelen**dim, dim)."""
    tensors = tuple(dim * [torch.linspace(-1, 1, steps=sidelen)])
    mgrid = torch.stack(torch.meshgrid(*tensors, indexing="ij"), dim=-1)
    return mgrid.reshape(-1, dim)


def make_image_fn(g):
    """A random analytic grayscale image on [-1, 1]^2 with values in [0, 1]."""
    blobs = 3
    centres = 1.4 * torch.rand(blobs, 2, generator=g) - 0.7
    widths = 0.15 + 0.2 * torch.rand(blobs, generator=g)
    heights = 0.3 + 0.4 * torch.rand(blobs, generator=g)
    disc_centre = 1.0 * torch.rand(2, generator=g) - 0.5
    disc_radius = 0.25 + 0.1 * torch.rand(1, generator=g).item()
    angle = math.pi * torch.rand(1, generator=g).item()
    ring_centre = 1.0 * torch.rand(2, generator=g) - 0.5

    def image(coords):
        y, x = coords[..., 0], coords[..., 1]
        value = torch.zeros_like(x)
        for c, w, h in zip(centres, widths, heights, strict=True):
            value = value + h * torch.exp(-((y - c[0]) ** 2 + (x - c[1]) ** 2) / (2 * w**2))
        r_disc = torch.sqrt((y - disc_centre[0]) ** 2 + (x - disc_centre[1]) ** 2)
        value = value + 0.5 * torch.sigmoid((disc_radius - r_disc) / 0.03)
        u = x * math.cos(angle) + y * math.sin(angle)
        stripes = 0.5 + 0.5 * torch.sin(2 * math.pi * (3 + 3 * (u + 1)) * u)
        value = value + 0.35 * stripes * torch.sigmoid((0.4 - y.abs() - 0.2 * x) / 0.05)
        r_ring = torch.sqrt((y - ring_centre[0]) ** 2 + (x - ring_centre[1]) ** 2)
        value = value + 0.4 * torch.exp(-((r_ring - 0.45) ** 2) / (2 * 0.03**2))
        return value.clamp(0, 1.5) / 1.5

    return image


class ImageFitting(Dataset):
    def __init__(self, image_fn, sidelen):
        super().__init__()
        self.coords = get_mgrid(sidelen, 2)
        img = image_fn(self.coords).reshape(sidelen, sidelen)
        img = (img - 0.5) / 0.5  # the notebook's Normalize(0.5, 0.5)
        self.pixels = img.reshape(-1, 1)

    def __len__(self):
        return 1

    def __getitem__(self, idx):
        if idx > 0:
            raise IndexError
        return self.coords, self.pixels


class SineLayer(nn.Module):
    def __init__(self, in_features, out_features, bias=True, is_first=False, omega_0=30.0):
        super().__init__()
        self.omega_0 = omega_0
        self.is_first = is_first
        self.in_features = in_features
        self.linear = nn.Linear(in_features, out_features, bias=bias)
        self.init_weights()

    def init_weights(self):
        with torch.no_grad():
            if self.is_first:
                bound = 1 / self.in_features
            else:
                bound = math.sqrt(6 / self.in_features) / self.omega_0
            self.linear.weight.uniform_(-bound, bound)

    def forward(self, x):
        return torch.sin(self.omega_0 * self.linear(x))


class Siren(nn.Module):
    def __init__(
        self,
        in_features,
        hidden_features,
        hidden_layers,
        out_features,
        first_omega_0=30.0,
        hidden_omega_0=30.0,
    ):
        super().__init__()
        layers = [SineLayer(in_features, hidden_features, is_first=True, omega_0=first_omega_0)]
        for _ in range(hidden_layers):
            layers.append(SineLayer(hidden_features, hidden_features, omega_0=hidden_omega_0))
        final_linear = nn.Linear(hidden_features, out_features)
        with torch.no_grad():
            bound = math.sqrt(6 / hidden_features) / hidden_omega_0
            final_linear.weight.uniform_(-bound, bound)
        layers.append(final_linear)
        self.net = nn.Sequential(*layers)

    def forward(self, coords):
        # allows to take derivative w.r.t. input
        coords = coords.clone().detach().requires_grad_(True)
        output = self.net(coords)
        return output, coords


def gradient(y, x):
    return torch.autograd.grad(y, [x], grad_outputs=torch.ones_like(y), create_graph=False)[0]


def psnr(pred, target):
    """PSNR in dB of images in [-1, 1], measured on the [0, 1] scale."""
    mse = ((pred / 2 - target / 2) ** 2).mean().item()
    return 10 * math.log10(1.0 / mse)


def main():
    parser = argparse.ArgumentParser(description="SIREN fitted to a generated image")
    parser.add_argument("--sidelen", type=int, default=64)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--hidden-layers", type=int, default=3)
    parser.add_argument("--total-steps", type=int, default=500)
    parser.add_argument("--steps-til-summary", type=int, default=100)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    g = torch.Generator().manual_seed(args.seed)
    image_fn = make_image_fn(g)
    dataset = ImageFitting(image_fn, args.sidelen)
    dataloader = DataLoader(dataset, batch_size=1, pin_memory=False, num_workers=0)

    img_siren = Siren(
        in_features=2,
        out_features=1,
        hidden_features=args.hidden,
        hidden_layers=args.hidden_layers,
    )
    optim = torch.optim.Adam(lr=args.lr, params=img_siren.parameters())

    model_input, ground_truth = next(iter(dataloader))
    baseline = psnr(ground_truth.mean().expand_as(ground_truth), ground_truth)
    print(f"{args.sidelen}x{args.sidelen} image; PSNR of predicting the mean: {baseline:.2f} dB")

    for step in range(1, args.total_steps + 1):
        model_output, coords = img_siren(model_input)
        loss = ((model_output - ground_truth) ** 2).mean()

        optim.zero_grad()
        loss.backward()
        optim.step()

        if step % args.steps_til_summary == 0:
            print(
                f"step {step:4d}  loss {loss.item():.6f}  PSNR {psnr(model_output, ground_truth):.2f} dB"
            )

    # Evaluate on the training grid and on a finer grid of points between the pixels.
    fine = get_mgrid(2 * args.sidelen, 2)[None] * (args.sidelen - 1) / args.sidelen
    fine_truth = (image_fn(fine) - 0.5) / 0.5
    with torch.no_grad():
        train_pred, _ = img_siren(model_input)
    fine_out, fine_coords = img_siren(fine)
    fine_psnr = psnr(fine_out.detach().squeeze(-1), fine_truth)
    pred_grad = gradient(fine_out, fine_coords)
    true_coords = fine.clone().requires_grad_(True)
    true_grad = gradient((image_fn(true_coords) - 0.5) / 0.5, true_coords)
    grad_err = ((pred_grad - true_grad).norm() / true_grad.norm()).item()
    print(f"final: PSNR on the training pixels {psnr(train_pred, ground_truth):.2f} dB")
    print(f"final: PSNR on new points between the pixels {fine_psnr:.2f} dB")
    print(f"final: relative error of the image gradient {grad_err:.3f}")


if __name__ == "__main__":
    main()
