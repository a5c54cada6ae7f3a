"""A spiking neural network trained with surrogate gradients: healthy.

In the manner of the snnTorch and SpyTorch surrogate-gradient tutorials, written in plain
torch: the data are small 10x10 grey-level images of five generated glyphs (a horizontal
bar, a vertical bar, the two diagonals and a hollow square, each shifted at random, with
a random brightness and background noise), rate-coded into 25 time steps of Bernoulli
spikes whose firing probability is the pixel intensity. The network ``SNN`` has two
layers of leaky integrate-and-fire neurons over ``nn.Linear`` (100 -> 128 -> 5, decay
``beta = 0.9``, threshold 1): at every time step the membrane decays, integrates the
layer's input current and is reset by subtraction of the threshold where the neuron
spiked the step before (the reset is detached, as in snnTorch). A spike is emitted by
``SurrGradSpike``, a ``torch.autograd.Function`` whose forward is the Heaviside step of
``mem - threshold`` and whose backward is the fast-sigmoid surrogate derivative
``grad / (scale * |x| + 1)^2``. The loss is the cross-entropy of the output layer's spike
counts over the 25 steps (rate-coded outputs); the prediction is the neuron that fires
most. A ``TensorDataset`` and a shuffling ``DataLoader``, Adam with a ``StepLR`` halving,
a ``main()`` with argparse; prints the training loss and accuracy and the test accuracy
(the data are re-encoded into fresh spike trains at every pass) after every epoch.

Healthy: nndoctor should report no warning and no error.

    python examples/wild/snn_surrogate.py
    nndoctor check examples/wild/snn_surrogate.py
"""

import argparse

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

SIZE = 10
NUM_CLASSES = 5


def make_glyphs(n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Noisy 10x10 images of five glyphs at random positions, intensities in [0, 1]."""
    labels = torch.randint(0, NUM_CLASSES, (n,), generator=generator)
    images = torch.zeros(n, SIZE, SIZE)
    idx = torch.arange(SIZE)
    for i in range(n):
        r, c = torch.randint(1, SIZE - 1, (2,), generator=generator).tolist()
        glyph = torch.zeros(SIZE, SIZE)
        label = labels[i].item()
        if label == 0:
            glyph[r, max(c - 3, 0) : c + 4] = 1.0
        elif label == 1:
            glyph[max(r - 3, 0) : r + 4, c] = 1.0
        elif label == 2:
            offset = torch.randint(-2, 3, (1,), generator=generator).item()
            glyph[(idx - idx.view(-1, 1) == offset)] = 1.0
        elif label == 3:
            offset = torch.randint(SIZE - 3, SIZE + 2, (1,), generator=generator).item()
            glyph[(idx + idx.view(-1, 1) == offset)] = 1.0
        else:
            top, left = max(r - 2, 0), max(c - 2, 0)
            glyph[top : top + 5, left : left + 5] = 1.0
            glyph[top + 1 : top + 4, left + 1 : left + 4] = 0.0
        brightness = 0.5 + 0.5 * torch.rand(1, generator=generator)
        images[i] = glyph * brightness
    noise = 0.25 * torch.rand(n, SIZE, SIZE, generator=generator)
    return (images + noise).clamp(0, 1).view(n, -1), labels


def rate_encode(images: torch.Tensor, num_steps: int) -> torch.Tensor:
    """Bernoulli spike trains, time first: [num_steps, batch, features]."""
    probs = images.clamp(0, 1).unsqueeze(0).expand(num_steps, *images.shape)
    return torch.bernoulli(probs)


class SurrGradSpike(torch.autograd.Function):
    """Heaviside step forward, fast-sigmoid surrogate derivative backward."""

    scale = 10.0

    @staticmethod
    def forward(ctx, input):
        ctx.save_for_backward(input)
        out = torch.zeros_like(input)
        out[input > 0] = 1.0
        return out

    @staticmethod
    def backward(ctx, grad_output):
        (input,) = ctx.saved_tensors
        grad_input = grad_output.clone()
        grad = grad_input / (SurrGradSpike.scale * torch.abs(input) + 1.0) ** 2
        return grad


spike_fn = SurrGradSpike.apply


class Leaky(nn.Module):
    """Leaky integrate-and-fire neurons with reset by subtraction."""

    def __init__(self, beta: float, threshold: float = 1.0) -> None:
        super().__init__()
        self.beta = beta
        self.threshold = threshold

    def forward(self, cur: torch.Tensor, mem: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        reset = spike_fn(mem - self.threshold).detach()
        mem = self.beta * mem + cur - reset * self.threshold
        spk = spike_fn(mem - self.threshold)
        return spk, mem


class SNN(nn.Module):
    def __init__(self, num_inputs: int, num_hidden: int, num_outputs: int, beta: float) -> None:
        super().__init__()
        self.num_hidden = num_hidden
        self.num_outputs = num_outputs
        self.fc1 = nn.Linear(num_inputs, num_hidden)
        self.lif1 = Leaky(beta)
        self.fc2 = nn.Linear(num_hidden, num_outputs)
        self.lif2 = Leaky(beta)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # x: [num_steps, batch, num_inputs]
        batch_size = x.shape[1]
        mem1 = torch.zeros(batch_size, self.num_hidden)
        mem2 = torch.zeros(batch_size, self.num_outputs)
        spk2_rec, mem2_rec = [], []
        for step in range(x.shape[0]):
            cur1 = self.fc1(x[step])
            spk1, mem1 = self.lif1(cur1, mem1)
            cur2 = self.fc2(spk1)
            spk2, mem2 = self.lif2(cur2, mem2)
            spk2_rec.append(spk2)
            mem2_rec.append(mem2)
        return torch.stack(spk2_rec), torch.stack(mem2_rec)


def main() -> None:
    parser = argparse.ArgumentParser(description="Surrogate-gradient SNN on generated glyphs")
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--num-steps", type=int, default=25)
    parser.add_argument("--n-train", type=int, default=3000)
    parser.add_argument("--n-test", type=int, default=1000)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.manual_seed(args.seed)

    g = torch.Generator().manual_seed(args.seed)
    train_x, train_y = make_glyphs(args.n_train, g)
    test_x, test_y = make_glyphs(args.n_test, g)
    train_loader = DataLoader(
        TensorDataset(train_x, train_y), batch_size=args.batch_size, shuffle=True
    )
    test_loader = DataLoader(TensorDataset(test_x, test_y), batch_size=500)

    net = SNN(SIZE * SIZE, 128, NUM_CLASSES, beta=0.9)
    optimizer = torch.optim.Adam(net.parameters(), lr=args.lr, betas=(0.9, 0.999))
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=5, gamma=0.5)

    for epoch in range(1, args.epochs + 1):
        net.train()
        total_loss, correct, seen = 0.0, 0, 0
        for images, targets in train_loader:
            spikes_in = rate_encode(images, args.num_steps)
            spk_rec, _ = net(spikes_in)
            counts = spk_rec.sum(dim=0)
            loss = F.cross_entropy(counts, targets)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total_loss += loss.item() * len(targets)
            correct += (counts.argmax(dim=1) == targets).sum().item()
            seen += len(targets)
        scheduler.step()

        net.eval()
        test_correct = 0
        with torch.no_grad():
            for images, targets in test_loader:
                spk_rec, _ = net(rate_encode(images, args.num_steps))
                test_correct += (spk_rec.sum(dim=0).argmax(dim=1) == targets).sum().item()
        print(
            f"epoch {epoch:2d}: loss {total_loss / seen:.4f}, train accuracy "
            f"{correct / seen:.3f}, test accuracy {test_correct / len(test_y):.3f}"
        )


if __name__ == "__main__":
    main()
