"""A diagonal state-space model (S4D) classifying long noisy sequences: healthy.

In the manner of the minimal S4D example of the ``state-spaces`` repository (``s4d.py`` and
its ``example.py``): every sequence has 128 steps and two channels, a value channel of
Gaussian noise and a marker channel that is 1 at 5 random positions; at the marked positions
the value channel holds a sign, +1 or -1, instead of noise. The label is whether the marked
signs sum to more than 0 (two balanced classes), so the network has to find five events
scattered over the whole sequence and carry them to the end. 4,000 training and 1,000
validation sequences are generated once, ``(N, L, 2)``, and served by ``DataLoader``s.

``S4DKernel`` holds a complex diagonal state matrix initialised S4D-Lin (``log_A_real`` =
log 0.5 and ``A_imag`` = pi n, stored as real parameters), a complex ``C`` stored through
``torch.view_as_real`` and a learned ``log_dt`` per channel drawn log-uniformly in
[0.001, 0.1]; it discretises (zero-order hold) and computes the length-L convolution kernel
by a Vandermonde product. ``S4D`` applies the kernel by FFT convolution (``torch.fft.rfft``
and ``irfft`` at length 2L, cut back to L), adds the skip ``D``, GELU, a tied-mask
``DropoutNd`` (p 0.1) and a 1x1 ``Conv1d`` with ``GLU``; ``S4Model`` is a linear encoder to
64 channels, 2 residual post-norm blocks of S4D (64 states) + dropout + ``LayerNorm`` on
``(B, H, L)`` tensors, mean pooling over time and a linear decoder. The kernel registers A and dt with their own optimizer settings
(``_optim``: lr 1e-3, no weight decay) and ``setup_optimizer`` builds AdamW (lr 1e-2, weight
decay 0.01) over the other parameters plus one extra parameter group per setting, with
``CosineAnnealingLR`` stepped per epoch; 8 epochs of batches of 64. Cross-entropy, top-level functions and ``main()``
with argparse; prints the training loss and accuracy and the validation accuracy per epoch,
then the final validation accuracy against chance.

Healthy: nndoctor should report no warning and no error.

    python examples/wild/s4d_sequence.py
    nndoctor check examples/wild/s4d_sequence.py
"""

import argparse
import math

import torch
import torch.nn as nn
import torch.optim as optim
from torch.utils.data import DataLoader, TensorDataset


def make_marked_sign_data(n, seq_len, n_marks=5, noise=1.0):
    """Noise with n_marks signed events; the label is whether their signs sum above 0."""
    x = torch.zeros(n, seq_len, 2)
    x[:, :, 0] = noise * torch.randn(n, seq_len)
    pos = torch.rand(n, seq_len).argsort(dim=1)[:, :n_marks]  # distinct positions
    signs = torch.randint(0, 2, (n, n_marks)).float() * 2 - 1
    rows = torch.arange(n).unsqueeze(1)
    x[rows, pos, 0] = signs
    x[rows, pos, 1] = 1.0
    y = (signs.sum(dim=1) > 0).long()
    return x, y


class DropoutNd(nn.Module):
    def __init__(self, p: float = 0.5, tie=True, transposed=True):
        """
        tie: tie dropout mask across sequence lengths (Dropout1d/2d/3d)
        """
        super().__init__()
        if p < 0 or p >= 1:
            raise ValueError(f"dropout probability has to be in [0, 1), but got {p}")
        self.p = p
        self.tie = tie
        self.transposed = transposed

    def forward(self, X):
        """X: (batch, dim, lengths...)."""
        if self.training:
            if not self.transposed:
                X = X.transpose(-1, -2)
            mask_shape = X.shape[:2] + (1,) * (X.ndim - 2) if self.tie else X.shape
            mask = torch.rand(*mask_shape, device=X.device) < 1.0 - self.p
            X = X * mask * (1.0 / (1 - self.p))
            if not self.transposed:
                X = X.transpose(-1, -2)
        return X


class S4DKernel(nn.Module):
    """Generate convolution kernel from diagonal SSM parameters."""

    def __init__(self, d_model, N=64, dt_min=0.001, dt_max=0.1, lr=None):
        super().__init__()
        # Generate dt
        H = d_model
        log_dt = torch.rand(H) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min)

        C = torch.randn(H, N // 2, dtype=torch.cfloat)
        self.C = nn.Parameter(torch.view_as_real(C))
        self.register("log_dt", log_dt, lr)

        log_A_real = torch.log(0.5 * torch.ones(H, N // 2))
        A_imag = math.pi * torch.arange(N // 2).float().repeat(H, 1)
        self.register("log_A_real", log_A_real, lr)
        self.register("A_imag", A_imag, lr)

    def forward(self, L):
        """returns: (H, L) kernel"""
        # Materialize parameters
        dt = torch.exp(self.log_dt)  # (H)
        C = torch.view_as_complex(self.C)  # (H N)
        A = -torch.exp(self.log_A_real) + 1j * self.A_imag  # (H N)

        # Vandermonde multiplication
        dtA = A * dt.unsqueeze(-1)  # (H N)
        K = dtA.unsqueeze(-1) * torch.arange(L, device=A.device)  # (H N L)
        C = C * (torch.exp(dtA) - 1.0) / A
        K = 2 * torch.einsum("hn, hnl -> hl", C, torch.exp(K)).real

        return K

    def register(self, name, tensor, lr=None):
        """Register a tensor with a configurable learning rate and 0 weight decay"""

        if lr == 0.0:
            self.register_buffer(name, tensor)
        else:
            self.register_parameter(name, nn.Parameter(tensor))

            optim_hp = {"weight_decay": 0.0}
            if lr is not None:
                optim_hp["lr"] = lr
            getattr(self, name)._optim = optim_hp


class S4D(nn.Module):
    def __init__(self, d_model, d_state=64, dropout=0.0, transposed=True, **kernel_args):
        super().__init__()

        self.h = d_model
        self.n = d_state
        self.d_output = self.h
        self.transposed = transposed

        self.D = nn.Parameter(torch.randn(self.h))

        # SSM Kernel
        self.kernel = S4DKernel(self.h, N=self.n, **kernel_args)

        # Pointwise
        self.activation = nn.GELU()
        self.dropout = DropoutNd(dropout) if dropout > 0.0 else nn.Identity()

        # position-wise output transform to mix features
        self.output_linear = nn.Sequential(
            nn.Conv1d(self.h, 2 * self.h, kernel_size=1),
            nn.GLU(dim=-2),
        )

    def forward(self, u, **kwargs):
        """Input and output shape (B, H, L)"""
        if not self.transposed:
            u = u.transpose(-1, -2)
        L = u.size(-1)

        # Compute SSM Kernel
        k = self.kernel(L=L)  # (H L)

        # Convolution
        k_f = torch.fft.rfft(k, n=2 * L)  # (H L)
        u_f = torch.fft.rfft(u, n=2 * L)  # (B H L)
        y = torch.fft.irfft(u_f * k_f, n=2 * L)[..., :L]  # (B H L)

        # Compute D term in state space equation - essentially a skip connection
        y = y + u * self.D.unsqueeze(-1)

        y = self.dropout(self.activation(y))
        y = self.output_linear(y)
        if not self.transposed:
            y = y.transpose(-1, -2)
        return y, None


class S4Model(nn.Module):
    def __init__(
        self, d_input, d_output=2, d_model=64, n_layers=2, dropout=0.1, prenorm=False, lr=1e-3
    ):
        super().__init__()

        self.prenorm = prenorm

        # Linear encoder (d_input = 2 for the value and marker channels)
        self.encoder = nn.Linear(d_input, d_model)

        # Stack S4 layers as residual blocks
        self.s4_layers = nn.ModuleList()
        self.norms = nn.ModuleList()
        self.dropouts = nn.ModuleList()
        for _ in range(n_layers):
            self.s4_layers.append(S4D(d_model, dropout=dropout, transposed=True, lr=lr))
            self.norms.append(nn.LayerNorm(d_model))
            self.dropouts.append(DropoutNd(dropout))

        # Linear decoder
        self.decoder = nn.Linear(d_model, d_output)

    def forward(self, x):
        """Input x is shape (B, L, d_input)"""
        x = self.encoder(x)  # (B, L, d_input) -> (B, L, d_model)

        x = x.transpose(-1, -2)  # (B, L, d_model) -> (B, d_model, L)
        for layer, norm, dropout in zip(self.s4_layers, self.norms, self.dropouts, strict=True):
            # Each iteration of this loop will map (B, d_model, L) -> (B, d_model, L)

            z = x
            if self.prenorm:
                # Prenorm
                z = norm(z.transpose(-1, -2)).transpose(-1, -2)

            # Apply S4 block: we ignore the state input and output
            z, _ = layer(z)

            # Dropout on the output of the S4 block
            z = dropout(z)

            # Residual connection
            x = z + x

            if not self.prenorm:
                # Postnorm
                x = norm(x.transpose(-1, -2)).transpose(-1, -2)

        x = x.transpose(-1, -2)

        # Pooling: average pooling over the sequence length
        x = x.mean(dim=1)

        # Decode the outputs
        x = self.decoder(x)  # (B, d_model) -> (B, d_output)

        return x


def setup_optimizer(model, lr, weight_decay, epochs):
    """
    S4 requires a specific optimizer setup.

    The S4 layer (A, B, C, dt) parameters typically
    require a smaller learning rate (typically 0.001), with no weight decay.

    The rest of the model can be trained with a higher learning rate (e.g. 0.004, 0.01)
    and weight decay (if desired).
    """

    # All parameters in the model
    all_parameters = list(model.parameters())

    # General parameters don't contain the special _optim key
    params = [p for p in all_parameters if not hasattr(p, "_optim")]

    # Create an optimizer with the general parameters
    optimizer = optim.AdamW(params, lr=lr, weight_decay=weight_decay)

    # Add parameters with special hyperparameters
    hps = [p._optim for p in all_parameters if hasattr(p, "_optim")]
    hps = [dict(s) for s in sorted(dict.fromkeys(frozenset(hp.items()) for hp in hps))]
    for hp in hps:
        params = [p for p in all_parameters if getattr(p, "_optim", None) == hp]
        optimizer.add_param_group({"params": params, **hp})

    # Create a lr scheduler
    scheduler = optim.lr_scheduler.CosineAnnealingLR(optimizer, epochs)

    # Print optimizer info
    keys = sorted({k for hp in hps for k in hp.keys()})
    for i, g in enumerate(optimizer.param_groups):
        group_hps = {k: g.get(k, None) for k in keys}
        print(
            " | ".join(
                [f"Optimizer group {i}", f"{len(g['params'])} tensors"]
                + [f"{k} {v}" for k, v in group_hps.items()]
            )
        )

    return optimizer, scheduler


def train(model, trainloader, optimizer, criterion):
    model.train()
    train_loss = 0
    correct = 0
    total = 0
    for inputs, targets in trainloader:
        optimizer.zero_grad()
        outputs = model(inputs)
        loss = criterion(outputs, targets)
        loss.backward()
        optimizer.step()

        train_loss += loss.item()
        _, predicted = outputs.max(1)
        total += targets.size(0)
        correct += predicted.eq(targets).sum().item()
    return train_loss / len(trainloader), 100.0 * correct / total


@torch.no_grad()
def evaluate(model, dataloader, criterion):
    model.eval()
    eval_loss = 0
    correct = 0
    total = 0
    for inputs, targets in dataloader:
        outputs = model(inputs)
        loss = criterion(outputs, targets)
        eval_loss += loss.item()
        _, predicted = outputs.max(1)
        total += targets.size(0)
        correct += predicted.eq(targets).sum().item()
    return eval_loss / len(dataloader), 100.0 * correct / total


def main():
    parser = argparse.ArgumentParser(description="S4D on marked-sign sequences")
    # Optimizer
    parser.add_argument("--lr", default=0.01, type=float, help="Learning rate")
    parser.add_argument("--weight_decay", default=0.01, type=float, help="Weight decay")
    # Scheduler
    parser.add_argument("--epochs", default=8, type=int, help="Training epochs")
    # Dataset
    parser.add_argument("--seq_len", default=128, type=int, help="Sequence length")
    parser.add_argument("--n_marks", default=5, type=int, help="Marked positions (odd)")
    parser.add_argument("--n_train", default=4000, type=int, help="Training sequences")
    parser.add_argument("--n_val", default=1000, type=int, help="Validation sequences")
    parser.add_argument("--batch_size", default=64, type=int, help="Batch size")
    # Model
    parser.add_argument("--n_layers", default=2, type=int, help="Number of layers")
    parser.add_argument("--d_model", default=64, type=int, help="Model dimension")
    parser.add_argument("--d_state", default=64, type=int, help="State size N")
    parser.add_argument("--dropout", default=0.1, type=float, help="Dropout")
    parser.add_argument("--prenorm", action="store_true", help="Prenorm")
    parser.add_argument("--seed", default=0, type=int, help="Random seed")
    args = parser.parse_args()

    torch.manual_seed(args.seed)

    print("==> Preparing data..")
    x_train, y_train = make_marked_sign_data(args.n_train, args.seq_len, args.n_marks)
    x_val, y_val = make_marked_sign_data(args.n_val, args.seq_len, args.n_marks)
    trainset = TensorDataset(x_train, y_train)
    valset = TensorDataset(x_val, y_val)
    trainloader = DataLoader(trainset, batch_size=args.batch_size, shuffle=True)
    valloader = DataLoader(valset, batch_size=args.batch_size, shuffle=False)

    print("==> Building model..")
    model = S4Model(
        d_input=2,
        d_output=2,
        d_model=args.d_model,
        n_layers=args.n_layers,
        dropout=args.dropout,
        prenorm=args.prenorm,
        lr=min(0.001, args.lr),
    )

    criterion = nn.CrossEntropyLoss()
    optimizer, scheduler = setup_optimizer(
        model, lr=args.lr, weight_decay=args.weight_decay, epochs=args.epochs
    )

    val_acc = 0.0
    for epoch in range(args.epochs):
        train_loss, train_acc = train(model, trainloader, optimizer, criterion)
        val_loss, val_acc = evaluate(model, valloader, criterion)
        scheduler.step()
        print(
            f"Epoch: {epoch} | Train loss: {train_loss:.4f} | Train acc: {train_acc:.1f}% "
            f"| Val loss: {val_loss:.4f} | Val acc: {val_acc:.1f}%"
        )

    majority = 100.0 * max(y_val.float().mean().item(), 1 - y_val.float().mean().item())
    print(
        f"final validation accuracy {val_acc:.1f}% (chance 50.0%, majority class {majority:.1f}%)"
    )


if __name__ == "__main__":
    main()
