"""A 1-D Fourier Neural Operator learning the viscous Burgers solution operator: healthy.

In the manner of the neuraloperator repository's ``fourier_1d.py`` (Li et al., "Fourier
Neural Operator for Parametric Partial Differential Equations", 2021): the data are
solved here, not loaded. Initial conditions u0 on the periodic unit interval are drawn
from a Gaussian random field (spectrum 625 (4 pi^2 k^2 + 25)^-2, as in the paper), and
the viscous Burgers equation u_t + (u^2 / 2)_x = nu u_xx (nu = 0.02) is integrated to
T = 1 by a pseudo-spectral solver (2/3 dealiasing, diffusion by an integrating factor,
the nonlinear term by RK4, dt = 0.005) on a 128-point grid: 800 pairs (u0, u(T)) for
training and 200 for testing. The solution decays to about a quarter of the initial
amplitude while its fronts steepen, so predicting u0 unchanged is worse than predicting 0.

``FNO1d`` lifts the input channels (u0(x), x) to width 48 with ``fc0`` (``nn.Linear``),
then applies 4 Fourier layers, each the sum of a ``SpectralConv1d`` and a 1x1
``nn.Conv1d`` skip, with GELU between them; ``SpectralConv1d`` takes ``torch.fft.rfft`` of
its input, multiplies the 16 lowest modes by complex weights (an ``nn.Parameter`` of
``torch.cfloat``, ``scale * torch.rand``) with an einsum over the channels, zeroes the
others and returns ``torch.fft.irfft(out_ft, n=x.size(-1))``. ``fc1`` (GELU) and ``fc2``
project back to one channel. The loss is the relative L2 error of each sample, summed
over the batch (``LpLoss(size_average=False)``); Adam (lr 1e-3, weight decay 1e-4) with
``StepLR(step_size=5, gamma=0.5)`` stepped once per epoch; 20 epochs of batches of 20
from a shuffled ``DataLoader``. Top-level functions and ``main()`` with argparse; prints
every 5 epochs the training MSE and relative L2 error and the test relative L2 error,
then the final test error next to that of predicting u0 unchanged (and of predicting 0).

Healthy: nndoctor should report no warning and no error.

    python examples/wild/fno_burgers.py
    nndoctor check examples/wild/fno_burgers.py
"""

import argparse
import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset


def gaussian_random_field(n, s, g):
    """Samples of N(0, 625 (-Laplacian + 25 I)^-2) on a periodic grid of s points."""
    k = torch.fft.rfftfreq(s, d=1.0 / s)
    sqrt_eig = 25.0 / (4 * math.pi**2 * k**2 + 25.0)
    sqrt_eig[0] = 0.0
    coeff = torch.complex(
        torch.randn(n, k.numel(), generator=g), torch.randn(n, k.numel(), generator=g)
    )
    return torch.fft.irfft(sqrt_eig * coeff, n=s) * s / math.sqrt(2)


def burgers_solve(u0, nu=0.02, t_final=1.0, dt=5e-3):
    """Integrate u_t + (u^2/2)_x = nu u_xx to t_final (periodic, pseudo-spectral)."""
    s = u0.shape[-1]
    k = torch.fft.rfftfreq(s, d=1.0 / s).to(torch.float64)
    ik = 2j * math.pi * k
    dealias = (k < s / 3).to(torch.float64)
    decay = torch.exp(-nu * (2 * math.pi * k) ** 2 * dt / 2)

    def nonlinear(v_hat):
        u = torch.fft.irfft(v_hat, n=s)
        return -0.5 * ik * dealias * torch.fft.rfft(u**2)

    u_hat = torch.fft.rfft(u0.to(torch.float64))
    for _ in range(round(t_final / dt)):
        # integrating-factor RK4: diffusion exactly, advection explicitly
        k1 = nonlinear(u_hat)
        k2 = nonlinear(decay * (u_hat + 0.5 * dt * k1))
        k3 = nonlinear(decay * u_hat + 0.5 * dt * k2)
        k4 = nonlinear(decay**2 * u_hat + dt * decay * k3)
        u_hat = decay**2 * (u_hat + dt / 6 * k1) + decay * dt / 3 * (k2 + k3) + dt / 6 * k4
    return torch.fft.irfft(u_hat, n=s).float()


class LpLoss:
    """Relative Lp error between batches of functions."""

    def __init__(self, p=2, size_average=True, reduction=True):
        self.p = p
        self.reduction = reduction
        self.size_average = size_average

    def rel(self, x, y):
        num_examples = x.size()[0]
        diff_norms = torch.norm(
            x.reshape(num_examples, -1) - y.reshape(num_examples, -1), self.p, 1
        )
        y_norms = torch.norm(y.reshape(num_examples, -1), self.p, 1)
        if self.reduction:
            if self.size_average:
                return torch.mean(diff_norms / y_norms)
            return torch.sum(diff_norms / y_norms)
        return diff_norms / y_norms

    def __call__(self, x, y):
        return self.rel(x, y)


class SpectralConv1d(nn.Module):
    def __init__(self, in_channels, out_channels, modes1):
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.modes1 = modes1  # number of Fourier modes to multiply, at most floor(N/2) + 1
        self.scale = 1 / (in_channels * out_channels)
        self.weights1 = nn.Parameter(
            self.scale * torch.rand(in_channels, out_channels, self.modes1, dtype=torch.cfloat)
        )

    def compl_mul1d(self, input, weights):
        # (batch, in_channel, x), (in_channel, out_channel, x) -> (batch, out_channel, x)
        return torch.einsum("bix,iox->box", input, weights)

    def forward(self, x):
        batchsize = x.shape[0]
        x_ft = torch.fft.rfft(x)
        out_ft = torch.zeros(
            batchsize, self.out_channels, x.size(-1) // 2 + 1, device=x.device, dtype=torch.cfloat
        )
        out_ft[:, :, : self.modes1] = self.compl_mul1d(x_ft[:, :, : self.modes1], self.weights1)
        return torch.fft.irfft(out_ft, n=x.size(-1))


class FNO1d(nn.Module):
    def __init__(self, modes, width):
        super().__init__()
        self.modes1 = modes
        self.width = width
        self.fc0 = nn.Linear(2, self.width)  # input channel is 2: (a(x), x)

        self.conv0 = SpectralConv1d(self.width, self.width, self.modes1)
        self.conv1 = SpectralConv1d(self.width, self.width, self.modes1)
        self.conv2 = SpectralConv1d(self.width, self.width, self.modes1)
        self.conv3 = SpectralConv1d(self.width, self.width, self.modes1)
        self.w0 = nn.Conv1d(self.width, self.width, 1)
        self.w1 = nn.Conv1d(self.width, self.width, 1)
        self.w2 = nn.Conv1d(self.width, self.width, 1)
        self.w3 = nn.Conv1d(self.width, self.width, 1)

        self.fc1 = nn.Linear(self.width, 128)
        self.fc2 = nn.Linear(128, 1)

    def forward(self, x):
        grid = self.get_grid(x.shape, x.device)
        x = torch.cat((x, grid), dim=-1)
        x = self.fc0(x)
        x = x.permute(0, 2, 1)

        x1 = self.conv0(x)
        x2 = self.w0(x)
        x = F.gelu(x1 + x2)

        x1 = self.conv1(x)
        x2 = self.w1(x)
        x = F.gelu(x1 + x2)

        x1 = self.conv2(x)
        x2 = self.w2(x)
        x = F.gelu(x1 + x2)

        x1 = self.conv3(x)
        x2 = self.w3(x)
        x = x1 + x2

        x = x.permute(0, 2, 1)
        x = F.gelu(self.fc1(x))
        return self.fc2(x)

    def get_grid(self, shape, device):
        batchsize, size_x = shape[0], shape[1]
        gridx = torch.linspace(0, 1, size_x, device=device)
        return gridx.reshape(1, size_x, 1).repeat([batchsize, 1, 1])


def main():
    parser = argparse.ArgumentParser(description="1-D FNO on viscous Burgers")
    parser.add_argument("--ntrain", type=int, default=800)
    parser.add_argument("--ntest", type=int, default=200)
    parser.add_argument("--resolution", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=20)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--step-size", type=int, default=5)
    parser.add_argument("--gamma", type=float, default=0.5)
    parser.add_argument("--modes", type=int, default=16)
    parser.add_argument("--width", type=int, default=48)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    g = torch.Generator().manual_seed(args.seed)
    s = args.resolution
    x_data = gaussian_random_field(args.ntrain + args.ntest, s, g)
    y_data = burgers_solve(x_data)

    x_train, y_train = x_data[: args.ntrain], y_data[: args.ntrain]
    x_test, y_test = x_data[-args.ntest :], y_data[-args.ntest :]
    x_train = x_train.reshape(args.ntrain, s, 1)
    x_test = x_test.reshape(args.ntest, s, 1)

    train_loader = DataLoader(
        TensorDataset(x_train, y_train), batch_size=args.batch_size, shuffle=True
    )
    test_loader = DataLoader(TensorDataset(x_test, y_test), batch_size=args.batch_size)

    model = FNO1d(args.modes, args.width)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr, weight_decay=1e-4)
    scheduler = torch.optim.lr_scheduler.StepLR(
        optimizer, step_size=args.step_size, gamma=args.gamma
    )
    myloss = LpLoss(size_average=False)

    for ep in range(1, args.epochs + 1):
        model.train()
        train_mse = train_l2 = 0.0
        for x, y in train_loader:
            batch_size = x.shape[0]
            optimizer.zero_grad()
            out = model(x)

            mse = F.mse_loss(out.view(batch_size, -1), y.view(batch_size, -1), reduction="mean")
            l2 = myloss(out.view(batch_size, -1), y.view(batch_size, -1))
            l2.backward()  # use the l2 relative loss

            optimizer.step()
            train_mse += mse.item()
            train_l2 += l2.item()
        scheduler.step()

        model.eval()
        test_l2 = 0.0
        with torch.no_grad():
            for x, y in test_loader:
                out = model(x)
                test_l2 += myloss(out.view(x.shape[0], -1), y.view(x.shape[0], -1)).item()

        train_mse /= len(train_loader)
        train_l2 /= args.ntrain
        test_l2 /= args.ntest
        if ep % 5 == 0:
            print(
                f"epoch {ep:3d}  train mse {train_mse:.2e}  train rel L2 {train_l2:.4f}  "
                f"test rel L2 {test_l2:.4f}"
            )

    identity = LpLoss(size_average=True)(x_test.reshape(args.ntest, -1), y_test).item()
    print(
        f"final: test relative L2 {test_l2:.4f}  "
        f"(predicting u0 unchanged: {identity:.4f}, predicting zero: 1.0)"
    )


if __name__ == "__main__":
    main()
