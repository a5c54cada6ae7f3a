"""Image captioning of generated shape scenes with a CNN encoder and a GRU decoder: healthy.

In the manner of the "show and tell" captioning tutorials (encoder-decoder with teacher
forcing over padded captions): each 32 x 32 RGB image holds one or two shapes (square,
circle or triangle; red, green, blue or yellow; small or large) in distinct quadrants of
a noisy background, and its caption is generated with it, e.g. ``<start> a large red
circle in the top left and a small blue square in the bottom right <end>`` (shapes in
reading order). Captions are padded with ``<pad>`` = 0 to the longest of the batch. The
encoder is a small CNN (``Conv2d``, ``BatchNorm2d``, ``ReLU``, max pooling) whose
flattened features give the decoder's initial hidden state; the decoder embeds the
caption (``padding_idx=0``), runs an ``nn.GRU(batch_first=True)`` over
``pack_padded_sequence(..., enforce_sorted=False)`` and a linear layer to the
vocabulary. Teacher forcing: the decoder reads ``captions[:, :-1]`` and is scored
against ``captions[:, 1:]`` with ``CrossEntropyLoss(ignore_index=0)``. Adam; an
exponential moving average of the weights (and BatchNorm buffers) is kept with
``torch.optim.swa_utils.AveragedModel`` and ``get_ema_multi_avg_fn(0.99)``, updated
after every optimizer step, and it is the averaged model that is validated: greedy
decoding from ``<start>``, token accuracy against the reference caption, and the
share of captions decoded exactly. A top-level script with argparse; prints the
training loss and the validation metrics every epoch.

Healthy: nndoctor should report no warning and no error.

    python examples/wild/caption_gru.py
    nndoctor check examples/wild/caption_gru.py
"""

import argparse

import torch
import torch.nn as nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence, pad_sequence
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

COLOURS = {
    "red": (0.9, 0.1, 0.1),
    "green": (0.1, 0.8, 0.2),
    "blue": (0.2, 0.3, 0.95),
    "yellow": (0.95, 0.9, 0.1),
}
SHAPES = ["square", "circle", "triangle"]
QUADRANTS = [("top", "left"), ("top", "right"), ("bottom", "left"), ("bottom", "right")]
WORDS = ["<pad>", "<start>", "<end>", "a", "small", "large", "in", "the", "and"]
WORDS += list(COLOURS) + SHAPES + ["top", "bottom", "left", "right"]
STOI = {w: i for i, w in enumerate(WORDS)}
PAD, START, END = 0, 1, 2
SIZE = 32


def draw_scene(g: torch.Generator) -> tuple[torch.Tensor, list[int]]:
    image = 0.15 + 0.05 * torch.randn(3, SIZE, SIZE, generator=g)
    yy, xx = torch.meshgrid(torch.arange(SIZE), torch.arange(SIZE), indexing="ij")
    n_shapes = int(torch.randint(1, 3, (1,), generator=g))
    quadrants = sorted(torch.randperm(4, generator=g)[:n_shapes].tolist())
    words = ["<start>"]
    for k, q in enumerate(quadrants):
        colour = list(COLOURS)[int(torch.randint(0, 4, (1,), generator=g))]
        shape = SHAPES[int(torch.randint(0, 3, (1,), generator=g))]
        large = bool(torch.randint(0, 2, (1,), generator=g))
        half = 6 if large else 3
        jitter = torch.randint(-2, 3, (2,), generator=g)
        cy = (8 if q < 2 else 24) + int(jitter[0])
        cx = (8 if q % 2 == 0 else 24) + int(jitter[1])
        dy, dx = yy - cy, xx - cx
        if shape == "square":
            inside = (dy.abs() <= half) & (dx.abs() <= half)
        elif shape == "circle":
            inside = dy**2 + dx**2 <= half**2
        else:
            inside = (dy <= half) & (dy >= -half) & (2 * dx.abs() <= dy + half)
        image[:, inside] = torch.tensor(COLOURS[colour]).unsqueeze(1)
        if k > 0:
            words.append("and")
        words += ["a", "large" if large else "small", colour, shape, "in", "the", *QUADRANTS[q]]
    words.append("<end>")
    return image, [STOI[w] for w in words]


def make_dataset(n: int, seed: int) -> tuple[torch.Tensor, list[torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    images, captions = [], []
    for _ in range(n):
        image, caption = draw_scene(g)
        images.append(image)
        captions.append(torch.tensor(caption))
    return torch.stack(images), captions


class Captioner(nn.Module):
    def __init__(self, vocab_size: int, embed_dim: int = 64, hidden: int = 256) -> None:
        super().__init__()
        self.encoder = nn.Sequential(
            nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(32 * 4 * 4, hidden),
            nn.Tanh(),
        )
        self.embed = nn.Embedding(vocab_size, embed_dim, padding_idx=PAD)
        self.gru = nn.GRU(embed_dim, hidden, batch_first=True)
        self.fc = nn.Linear(hidden, vocab_size)

    def forward(self, images: torch.Tensor, inputs: torch.Tensor, lengths: torch.Tensor):
        h0 = self.encoder(images).unsqueeze(0)
        packed = pack_padded_sequence(
            self.embed(inputs), lengths, batch_first=True, enforce_sorted=False
        )
        out, _ = self.gru(packed, h0)
        out, _ = pad_packed_sequence(out, batch_first=True, total_length=inputs.shape[1])
        return self.fc(out)

    @torch.no_grad()
    def greedy(self, images: torch.Tensor, max_len: int) -> torch.Tensor:
        h = self.encoder(images).unsqueeze(0)
        token = torch.full((images.shape[0], 1), START)
        outputs = []
        for _ in range(max_len):
            out, h = self.gru(self.embed(token), h)
            token = self.fc(out).argmax(-1)
            outputs.append(token)
        return torch.cat(outputs, dim=1)


def evaluate(model: nn.Module, images: torch.Tensor, captions: torch.Tensor) -> tuple[float, float]:
    """Greedy decoding: token accuracy on the reference tokens after <start>, exact matches."""
    model.eval()
    reference = captions[:, 1:]
    decoded = model.module.greedy(images, reference.shape[1])
    real = reference != PAD
    hits = (decoded == reference) & real
    token_accuracy = (hits.sum() / real.sum()).item()
    exact = (hits.sum(1) == real.sum(1)).float().mean().item()
    return token_accuracy, exact


parser = argparse.ArgumentParser(description="captioning generated shape scenes: CNN + GRU")
parser.add_argument("--epochs", type=int, default=12)
parser.add_argument("--batch-size", type=int, default=64)
parser.add_argument("--n-train", type=int, default=4000)
parser.add_argument("--lr", type=float, default=2e-3)
parser.add_argument("--ema-decay", type=float, default=0.99)
parser.add_argument("--seed", type=int, default=0)
args = parser.parse_args()
torch.manual_seed(args.seed)

train_images, train_captions = make_dataset(args.n_train, args.seed)
val_images, val_captions = make_dataset(500, args.seed + 10_000)
val_padded = pad_sequence(val_captions, batch_first=True, padding_value=PAD)

model = Captioner(len(WORDS))
ema_model = AveragedModel(
    model, multi_avg_fn=get_ema_multi_avg_fn(args.ema_decay), use_buffers=True
)
optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
criterion = nn.CrossEntropyLoss(ignore_index=PAD)

for epoch in range(1, args.epochs + 1):
    model.train()
    perm = torch.randperm(args.n_train)
    total, batches = 0.0, 0
    for i in range(0, args.n_train, args.batch_size):
        idx = perm[i : i + args.batch_size].tolist()
        images = train_images[idx]
        captions = pad_sequence([train_captions[j] for j in idx], batch_first=True)
        lengths = torch.tensor([len(train_captions[j]) - 1 for j in idx])
        inputs, targets = captions[:, :-1], captions[:, 1:]

        logits = model(images, inputs, lengths)
        loss = criterion(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        ema_model.update_parameters(model)
        total += loss.item()
        batches += 1

    token_accuracy, exact = evaluate(ema_model, val_images, val_padded)
    print(
        f"epoch {epoch:2d}: train loss {total / batches:.4f}, EMA model: val token accuracy "
        f"{token_accuracy:.3f}, exact captions {exact:.3f}"
    )
