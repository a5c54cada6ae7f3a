"""CLIP-style contrastive training of an image tower and a text tower: healthy.

In the manner of the CLIP paper's pseudo-code and of open_clip's training loop, at toy
scale: the "images" are generated 3x18x18 scenes, one coloured shape (8 colours, 5
shapes, 2 sizes) in one cell of a 3x3 grid over a noisy background, and each comes with
a caption drawn from a small grammar ("a big red cross at the top left", "the top left
has a large red plus", ...) with synonyms, word orders and optional words, tokenised
with BOS/EOS and padded. Every combination of attributes appears 12 times; the pairs
are shuffled and split into 8,000 training and 640 validation pairs. The image tower
is a small BatchNorm CNN flattened into a two-layer projection; the text tower is
token + learned position embeddings into a causal ``nn.TransformerEncoder`` (batch
first, with a padding mask) whose final LayerNorm output at the EOS token is projected,
as CLIP does. Both embeddings are L2-normalised, the logits are the cosine similarities
times ``exp(logit_scale)`` (a learnable log-temperature initialised at log(1/0.07) and
clamped to at most log(100) after every step), and the loss is the symmetric
cross-entropy of the batch's similarity matrix against ``arange(batch)``. AdamW with
weight decay on weight matrices only (not on biases, norms, the token and position
embeddings or the temperature), linear warm-up then cosine decay by ``LambdaLR``
stepped every batch, a ``DataLoader`` over a ``TensorDataset``. A ``main()`` with
argparse; prints per epoch the training loss, the temperature and the validation
recall@1 in both directions (over all 640 validation pairs, a hit when the retrieved
item shows or describes the same scene).

Healthy: nndoctor should report no warning and no error.

    python examples/wild/clip_two_tower.py
    nndoctor check examples/wild/clip_two_tower.py
"""

import argparse
import itertools
import math

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

COLOURS = {
    "red": (1.0, 0.1, 0.1),
    "green": (0.1, 0.9, 0.1),
    "blue": (0.15, 0.25, 1.0),
    "yellow": (1.0, 0.95, 0.1),
    "cyan": (0.1, 0.9, 0.9),
    "magenta": (0.9, 0.1, 0.9),
    "white": (1.0, 1.0, 1.0),
    "orange": (1.0, 0.55, 0.0),
}
SHAPES = {
    "square": ["square", "block"],
    "ring": ["ring", "frame"],
    "cross": ["cross", "plus"],
    "bar": ["bar", "dash"],
    "pole": ["pole", "stick"],
}
SIZES = {"small": ["small", "little", "tiny"], "large": ["large", "big"]}
ROWS, COLS = ["top", "middle", "bottom"], ["left", "centre", "right"]
PAD, BOS, EOS = 0, 1, 2
WORDS = sorted(
    {"a", "the", "there", "is", "has", "at", "in", "of", "image", "picture", "shows"}
    | set(COLOURS)
    | {w for names in SHAPES.values() for w in names}
    | {w for names in SIZES.values() for w in names}
    | set(ROWS)
    | set(COLS)
)
VOCAB = {w: i + 3 for i, w in enumerate(WORDS)}
MAX_LEN = 13


def shape_mask(shape, size):
    k = 5 if size == "large" else 3
    m = np.zeros((k, k), dtype=np.float32)
    c = k // 2
    if shape == "square":
        m[:] = 1
    elif shape == "ring":
        m[:] = 1
        m[1:-1, 1:-1] = 0
    elif shape == "cross":
        m[c, :] = 1
        m[:, c] = 1
    elif shape == "bar":
        m[c, :] = 1
    else:  # pole
        m[:, c] = 1
    return m


def render(colour, shape, size, row, col, rng):
    img = 0.15 * rng.standard_normal((3, 18, 18)).astype(np.float32)
    m = shape_mask(shape, size)
    k = len(m)
    y = 6 * row + rng.integers(0, 7 - k)
    x = 6 * col + rng.integers(0, 7 - k)
    rgb = np.clip(np.array(COLOURS[colour]) + 0.08 * rng.standard_normal(3), 0, 1)
    img[:, y : y + k, x : x + k] += rgb[:, None, None].astype(np.float32) * m
    return img


def describe(colour, shape, size, row, col, rng):
    pick = lambda options: options[rng.integers(len(options))]  # noqa: E731
    thing = [pick(["a", "the"]), pick(SIZES[size]), colour, pick(SHAPES[shape])]
    if rng.random() < 0.3:
        thing = [thing[0], thing[2], thing[1], thing[3]]  # "a red big cross"
    where = [ROWS[row], COLS[col]]
    template = rng.integers(4)
    if template == 0:
        words = thing + [pick(["at", "in"]), "the"] + where
    elif template == 1:
        words = ["there", "is"] + thing + [pick(["at", "in"]), "the"] + where
    elif template == 2:
        words = ["the"] + where + ["has"] + thing
    else:
        words = ["the", pick(["image", "picture"]), "shows"] + thing + ["at", "the"] + where
    ids = [BOS] + [VOCAB[w] for w in words] + [EOS]
    return ids + [PAD] * (MAX_LEN - len(ids))


def make_pairs(reps, rng):
    combos = list(itertools.product(COLOURS, SHAPES, SIZES, range(3), range(3))) * reps
    images = np.stack([render(*c, rng) for c in combos])
    tokens = np.array([describe(*c, rng) for c in combos], dtype=np.int64)
    scene = np.arange(len(combos)) % (len(combos) // reps)  # one id per combination
    return torch.from_numpy(images), torch.from_numpy(tokens), torch.from_numpy(scene)


class ImageEncoder(nn.Module):
    def __init__(self, embed_dim, width=16):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, width, 3, padding=1, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
            nn.Conv2d(width, 2 * width, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(2 * width),
            nn.ReLU(inplace=True),
            nn.Conv2d(2 * width, 2 * width, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(2 * width),
            nn.ReLU(inplace=True),
        )
        self.proj = nn.Sequential(
            nn.Flatten(), nn.Linear(2 * width * 5 * 5, 128), nn.ReLU(), nn.Linear(128, embed_dim)
        )

    def forward(self, x):
        return self.proj(self.features(x))


class TextEncoder(nn.Module):
    def __init__(self, vocab_size, embed_dim, width=64, layers=2, heads=4):
        super().__init__()
        self.token_embedding = nn.Embedding(vocab_size, width, padding_idx=PAD)
        self.positional_embedding = nn.Parameter(torch.randn(MAX_LEN, width) * 0.01)
        layer = nn.TransformerEncoderLayer(
            width, heads, dim_feedforward=4 * width, dropout=0.0, batch_first=True, norm_first=True
        )
        self.transformer = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.ln_final = nn.LayerNorm(width)
        self.text_projection = nn.Linear(width, embed_dim, bias=False)
        mask = torch.ones(MAX_LEN, MAX_LEN, dtype=torch.bool).triu(diagonal=1)  # causal
        self.register_buffer("attn_mask", mask, persistent=False)

    def forward(self, text):
        x = self.token_embedding(text) + self.positional_embedding
        x = self.transformer(x, mask=self.attn_mask, src_key_padding_mask=text == PAD)
        x = self.ln_final(x)
        eos = (text == EOS).int().argmax(dim=-1)  # position of the EOS token
        return self.text_projection(x[torch.arange(x.shape[0]), eos])


class CLIP(nn.Module):
    def __init__(self, embed_dim=64):
        super().__init__()
        self.visual = ImageEncoder(embed_dim)
        self.text = TextEncoder(len(VOCAB) + 3, embed_dim)
        self.logit_scale = nn.Parameter(torch.ones([]) * math.log(1 / 0.07))

    def encode_image(self, image):
        return F.normalize(self.visual(image), dim=-1)

    def encode_text(self, text):
        return F.normalize(self.text(text), dim=-1)

    def forward(self, image, text):
        return self.encode_image(image), self.encode_text(text), self.logit_scale.exp()


def clip_loss(image_features, text_features, logit_scale):
    logits_per_image = logit_scale * image_features @ text_features.T
    logits_per_text = logits_per_image.T
    labels = torch.arange(len(logits_per_image))
    return (
        F.cross_entropy(logits_per_image, labels) + F.cross_entropy(logits_per_text, labels)
    ) / 2


@torch.no_grad()
def evaluate(model, images, tokens, scene):
    model.eval()
    image_features = model.encode_image(images)
    text_features = model.encode_text(tokens)
    sim = image_features @ text_features.T
    i2t = (scene[sim.argmax(dim=1)] == scene).float().mean().item()
    t2i = (scene[sim.argmax(dim=0)] == scene).float().mean().item()
    return i2t, t2i


def main():
    parser = argparse.ArgumentParser(description="CLIP-style two-tower training")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--wd", type=float, default=0.1)
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--reps", type=int, default=12)
    parser.add_argument("--n-val", type=int, default=640)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)

    images, tokens, scene = make_pairs(args.reps, rng)
    perm = torch.from_numpy(rng.permutation(len(images)))
    train_idx, val_idx = perm[: -args.n_val], perm[-args.n_val :]
    train_images, val_images = images[train_idx], images[val_idx]
    train_tokens, val_tokens = tokens[train_idx], tokens[val_idx]
    val_scene = scene[val_idx]
    train_set = TensorDataset(train_images, train_tokens)
    loader = DataLoader(train_set, batch_size=args.batch_size, shuffle=True, drop_last=True)

    model = CLIP()
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and "embedding" not in n]
    no_decay = [
        p for n, p in model.named_parameters() if not (p.ndim >= 2 and "embedding" not in n)
    ]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": args.wd}, {"params": no_decay, "weight_decay": 0.0}],
        lr=args.lr,
        betas=(0.9, 0.98),
        eps=1e-6,
    )
    total_steps = args.epochs * len(loader)

    def lr_lambda(step):
        if step < args.warmup:
            return (step + 1) / args.warmup
        progress = (step - args.warmup) / max(1, total_steps - args.warmup)
        return 0.5 * (1 + math.cos(math.pi * progress))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda)

    for epoch in range(1, args.epochs + 1):
        model.train()
        running = 0.0
        for image, text in loader:
            image_features, text_features, logit_scale = model(image, text)
            loss = clip_loss(image_features, text_features, logit_scale)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            scheduler.step()
            with torch.no_grad():
                model.logit_scale.clamp_(0, math.log(100))
            running += loss.item()
        i2t, t2i = evaluate(model, val_images, val_tokens, val_scene)
        print(
            f"epoch {epoch:2d}: loss {running / len(loader):.4f}, "
            f"temperature {1 / model.logit_scale.exp().item():.4f}, "
            f"val recall@1 image->text {i2t:.3f}, text->image {t2i:.3f}"
        )


if __name__ == "__main__":
    main()
