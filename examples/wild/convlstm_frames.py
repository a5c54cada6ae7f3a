"""Next-frame prediction of bouncing squares with a ConvLSTM encoder-forecaster: healthy.

In the manner of the ``ConvLSTM_pytorch`` module (``ConvLSTMCell`` on the concatenated input
and hidden state, one convolution split into the i, f, o, g gates; ``ConvLSTM`` stacking
cells over layers with ``batch_first``, ``return_all_layers`` and ``_init_hidden``) and the
Moving-MNIST encoder-forecaster training scripts built on it, which group-normalise the gate
convolution as done here. The videos are generated in the script like a small Moving MNIST:
two 3x3 squares bouncing off the walls of a 16x16 frame at one pixel per frame, stored
sequence-first ``(T, N, H, W)`` as ``mnist_test_seq.npy`` is; each clip has 10 frames, the
first 5 are read and the next 5 predicted (1,024 training and 256 validation clips). A
``Dataset`` cuts input and target frames and a ``collate_fn`` stacks them along dimension
1, so batches stay sequence-first ``(T, B, C, H, W)`` as in that code.

``EncoderForecaster``: a strided ``Conv2d`` stem applied per frame (16x16 -> 8x8), a 2-layer
``ConvLSTM`` encoder (``batch_first=False``: it permutes to ``(B, T, ...)`` itself) whose
last states start a 2-layer ``ConvLSTM`` forecaster that is fed zeros (teacher forcing off),
a ``ConvTranspose2d`` head back to 16x16 and a sigmoid. ``nn.BCELoss`` per pixel, Adam (lr
2e-3), ``clip_grad_value_(10.0)``, ``ReduceLROnPlateau`` on the validation loss stepped per
epoch. Top-level functions and ``main()`` with argparse; prints the training loss every 20
iterations and, per epoch, the validation BCE and MSE; at the end the validation MSE per
pixel against the copy-last-frame baseline and an empty (all-zero) frame.

Healthy: nndoctor should report no warning and no error.

    python examples/wild/convlstm_frames.py
    nndoctor check examples/wild/convlstm_frames.py
"""

import argparse
import random

import numpy as np
import torch
import torch.nn as nn
from torch.utils.data import DataLoader, Dataset


def generate_moving_squares(n_videos, n_frames=10, size=16, n_squares=2, square=3, rng=None):
    """Bouncing squares, uint8 in {0, 255}, sequence-first (n_frames, n_videos, size, size)."""
    rng = rng if rng is not None else np.random.default_rng(0)
    data = np.zeros((n_frames, n_videos, size, size), dtype=np.uint8)
    lim = size - square
    for i in range(n_videos):
        for _ in range(n_squares):
            y, x = rng.integers(0, lim + 1, size=2)
            vy, vx = rng.choice([-1, 1], size=2)
            for t in range(n_frames):
                data[t, i, y : y + square, x : x + square] = 255
                if not 0 <= y + vy <= lim:
                    vy = -vy
                if not 0 <= x + vx <= lim:
                    vx = -vx
                y, x = y + vy, x + vx
    return data


class MovingSquares(Dataset):
    def __init__(self, data, n_frames_input=5, n_frames_output=5):
        super().__init__()
        self.data = data  # (T, N, H, W) uint8
        self.n_frames_input = n_frames_input
        self.n_frames_output = n_frames_output

    def __len__(self):
        return self.data.shape[1]

    def __getitem__(self, idx):
        frames = torch.from_numpy(self.data[:, idx]).float().div(255.0).unsqueeze(1)  # (T,1,H,W)
        inputs = frames[: self.n_frames_input]
        targets = frames[self.n_frames_input : self.n_frames_input + self.n_frames_output]
        return inputs, targets


def collate_seq_first(batch):
    """Stack along dimension 1: (T, B, C, H, W)."""
    inputs = torch.stack([b[0] for b in batch], dim=1)
    targets = torch.stack([b[1] for b in batch], dim=1)
    return inputs, targets


class ConvLSTMCell(nn.Module):
    def __init__(self, input_dim, hidden_dim, kernel_size, bias):
        """
        input_dim: Number of channels of input tensor.
        hidden_dim: Number of channels of hidden state.
        kernel_size: (int, int) Size of the convolutional kernel.
        bias: Whether or not to add the bias.
        """
        super().__init__()

        self.input_dim = input_dim
        self.hidden_dim = hidden_dim

        self.kernel_size = kernel_size
        self.padding = kernel_size[0] // 2, kernel_size[1] // 2
        self.bias = bias

        self.conv = nn.Conv2d(
            in_channels=self.input_dim + self.hidden_dim,
            out_channels=4 * self.hidden_dim,
            kernel_size=self.kernel_size,
            padding=self.padding,
            bias=self.bias,
        )
        # group normalisation of the gate pre-activations, as in the Moving-MNIST ConvLSTMs
        self.norm = nn.GroupNorm(4 * self.hidden_dim // 16, 4 * self.hidden_dim)

    def forward(self, input_tensor, cur_state):
        h_cur, c_cur = cur_state

        combined = torch.cat([input_tensor, h_cur], dim=1)  # concatenate along channel axis

        combined_conv = self.norm(self.conv(combined))
        cc_i, cc_f, cc_o, cc_g = torch.split(combined_conv, self.hidden_dim, dim=1)
        i = torch.sigmoid(cc_i)
        f = torch.sigmoid(cc_f)
        o = torch.sigmoid(cc_o)
        g = torch.tanh(cc_g)

        c_next = f * c_cur + i * g
        h_next = o * torch.tanh(c_next)

        return h_next, c_next

    def init_hidden(self, batch_size, image_size):
        height, width = image_size
        return (
            torch.zeros(batch_size, self.hidden_dim, height, width, device=self.conv.weight.device),
            torch.zeros(batch_size, self.hidden_dim, height, width, device=self.conv.weight.device),
        )


class ConvLSTM(nn.Module):
    """
    input_dim: Number of channels in input
    hidden_dim: Number of hidden channels (int or list per layer)
    kernel_size: Size of kernel in convolutions
    num_layers: Number of LSTM layers stacked on each other
    batch_first: Whether or not dimension 0 is the batch or not
    return_all_layers: Return the list of computations for all layers
    Input: a 5-D tensor (t, b, c, h, w) or (b, t, c, h, w)
    Output: layer_output_list (batch-first outputs) and last_state_list ([h, c] per layer)
    """

    def __init__(
        self,
        input_dim,
        hidden_dim,
        kernel_size,
        num_layers,
        batch_first=False,
        bias=True,
        return_all_layers=False,
    ):
        super().__init__()

        # Make sure that both `kernel_size` and `hidden_dim` are lists having len == num_layers
        kernel_size = self._extend_for_multilayer(kernel_size, num_layers)
        hidden_dim = self._extend_for_multilayer(hidden_dim, num_layers)
        if not len(kernel_size) == len(hidden_dim) == num_layers:
            raise ValueError("Inconsistent list length.")

        self.input_dim = input_dim
        self.hidden_dim = hidden_dim
        self.kernel_size = kernel_size
        self.num_layers = num_layers
        self.batch_first = batch_first
        self.bias = bias
        self.return_all_layers = return_all_layers

        cell_list = []
        for i in range(0, self.num_layers):
            cur_input_dim = self.input_dim if i == 0 else self.hidden_dim[i - 1]
            cell_list.append(
                ConvLSTMCell(
                    input_dim=cur_input_dim,
                    hidden_dim=self.hidden_dim[i],
                    kernel_size=self.kernel_size[i],
                    bias=self.bias,
                )
            )
        self.cell_list = nn.ModuleList(cell_list)

    def forward(self, input_tensor, hidden_state=None):
        if not self.batch_first:
            # (t, b, c, h, w) -> (b, t, c, h, w)
            input_tensor = input_tensor.permute(1, 0, 2, 3, 4)

        b, _, _, h, w = input_tensor.size()

        if hidden_state is None:
            hidden_state = self._init_hidden(batch_size=b, image_size=(h, w))

        layer_output_list = []
        last_state_list = []

        seq_len = input_tensor.size(1)
        cur_layer_input = input_tensor

        for layer_idx in range(self.num_layers):
            h, c = hidden_state[layer_idx]
            output_inner = []
            for t in range(seq_len):
                h, c = self.cell_list[layer_idx](
                    input_tensor=cur_layer_input[:, t, :, :, :], cur_state=[h, c]
                )
                output_inner.append(h)

            layer_output = torch.stack(output_inner, dim=1)
            cur_layer_input = layer_output

            layer_output_list.append(layer_output)
            last_state_list.append([h, c])

        if not self.return_all_layers:
            layer_output_list = layer_output_list[-1:]
            last_state_list = last_state_list[-1:]

        return layer_output_list, last_state_list

    def _init_hidden(self, batch_size, image_size):
        init_states = []
        for i in range(self.num_layers):
            init_states.append(self.cell_list[i].init_hidden(batch_size, image_size))
        return init_states

    @staticmethod
    def _extend_for_multilayer(param, num_layers):
        if not isinstance(param, list):
            param = [param] * num_layers
        return param


class EncoderForecaster(nn.Module):
    def __init__(self, in_channels=1, stem_channels=16, hidden=32, num_layers=2):
        super().__init__()
        self.stem_channels = stem_channels
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, stem_channels, 3, stride=2, padding=1),
            nn.LeakyReLU(0.2, inplace=True),
        )
        self.encoder = ConvLSTM(
            stem_channels, hidden, (3, 3), num_layers, batch_first=False, return_all_layers=True
        )
        self.forecaster = ConvLSTM(
            stem_channels, hidden, (3, 3), num_layers, batch_first=False, return_all_layers=False
        )
        self.head = nn.Sequential(
            nn.ConvTranspose2d(hidden, stem_channels, 4, stride=2, padding=1),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(stem_channels, in_channels, 1),
        )

    def forward(self, inputs, n_future):
        """inputs: (T, B, C, H, W) -> predicted frames (n_future, B, C, H, W) in [0, 1]."""
        seq_len, batch_size, channels, height, width = inputs.size()
        x = self.stem(inputs.reshape(seq_len * batch_size, channels, height, width))
        x = x.reshape(seq_len, batch_size, *x.shape[1:])

        _, states = self.encoder(x)

        # teacher forcing off: the forecaster only gets the encoder's states
        zeros = x.new_zeros(n_future, batch_size, *x.shape[2:])
        outputs, _ = self.forecaster(zeros, states)
        y = outputs[-1]  # (B, n_future, hidden, h, w)

        y = self.head(y.reshape(batch_size * n_future, *y.shape[2:]))
        y = y.reshape(batch_size, n_future, channels, height, width).transpose(0, 1)
        return torch.sigmoid(y)


def train_epoch(net, loader, optimizer, lossfunction, epoch, args):
    net.train()
    train_losses = []
    for i, (inputs, targets) in enumerate(loader):
        optimizer.zero_grad()
        pred = net(inputs, n_future=targets.size(0))  # (T_out, B, 1, H, W)
        loss = lossfunction(pred, targets)
        loss.backward()
        torch.nn.utils.clip_grad_value_(net.parameters(), clip_value=10.0)
        optimizer.step()
        train_losses.append(loss.item())
        if i % args.log_interval == 0:
            print(f"epoch {epoch} iter {i:3d} | train loss {loss.item():.4f}")
    return float(np.mean(train_losses))


@torch.no_grad()
def validate(net, loader, lossfunction):
    net.eval()
    bce, mse, copy_mse, zero_mse, n = 0.0, 0.0, 0.0, 0.0, 0
    for inputs, targets in loader:
        pred = net(inputs, n_future=targets.size(0))
        bs = targets.size(1)
        bce += lossfunction(pred, targets).item() * bs
        mse += ((pred - targets) ** 2).mean().item() * bs
        last = inputs[-1:].expand_as(targets)
        copy_mse += ((last - targets) ** 2).mean().item() * bs
        zero_mse += (targets**2).mean().item() * bs
        n += bs
    return bce / n, mse / n, copy_mse / n, zero_mse / n


def main():
    parser = argparse.ArgumentParser(description="ConvLSTM next-frame prediction")
    parser.add_argument("--batch_size", default=16, type=int, help="mini-batch size")
    parser.add_argument("--lr", default=2e-3, type=float, help="learning rate")
    parser.add_argument("--epochs", default=6, type=int, help="number of epochs")
    parser.add_argument("--frames_input", default=5, type=int, help="frames read")
    parser.add_argument("--frames_output", default=5, type=int, help="frames predicted")
    parser.add_argument("--n_train", default=1024, type=int, help="training videos")
    parser.add_argument("--n_val", default=256, type=int, help="validation videos")
    parser.add_argument("--log_interval", default=20, type=int, help="iterations per print")
    parser.add_argument("--seed", default=0, type=int, help="random seed")
    args = parser.parse_args()

    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)

    n_frames = args.frames_input + args.frames_output
    train_data = generate_moving_squares(args.n_train, n_frames, rng=rng)
    val_data = generate_moving_squares(args.n_val, n_frames, rng=rng)
    trainFolder = MovingSquares(train_data, args.frames_input, args.frames_output)
    validFolder = MovingSquares(val_data, args.frames_input, args.frames_output)
    trainLoader = DataLoader(
        trainFolder, batch_size=args.batch_size, shuffle=True, collate_fn=collate_seq_first
    )
    validLoader = DataLoader(
        validFolder, batch_size=args.batch_size, shuffle=False, collate_fn=collate_seq_first
    )

    net = EncoderForecaster()
    lossfunction = nn.BCELoss()
    optimizer = torch.optim.Adam(net.parameters(), lr=args.lr)
    pla_lr_scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=0.5, patience=1)

    for epoch in range(args.epochs):
        train_loss = train_epoch(net, trainLoader, optimizer, lossfunction, epoch, args)
        valid_loss, valid_mse, copy_mse, zero_mse = validate(net, validLoader, lossfunction)
        pla_lr_scheduler.step(valid_loss)
        print(
            f"[{epoch}/{args.epochs}] train_loss: {train_loss:.4f} valid_loss: {valid_loss:.4f} "
            f"valid_mse: {valid_mse:.4f} lr: {optimizer.param_groups[0]['lr']:.1e}"
        )

    print(
        f"final validation MSE per pixel {valid_mse:.4f} "
        f"(copy last frame {copy_mse:.4f}, empty frame {zero_mse:.4f})"
    )


if __name__ == "__main__":
    main()
