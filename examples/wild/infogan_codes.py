"""InfoGAN with a categorical and two continuous latent codes on five 2-D strokes: healthy.

In the manner of the common PyTorch InfoGAN implementations (eriklindernoren's
``PyTorch-GAN`` ``implementations/infogan/infogan.py``, after Chen et al. 2016): the data are
20,000 points drawn from five "strokes", short segments (length 1) set tangentially on a
circle of radius 2 at angles 2 pi k / 5, a point uniform along its stroke plus Gaussian
noise of standard deviation 0.04, the five strokes equally likely; a shuffled
``DataLoader`` over a ``TensorDataset`` of (point, stroke) pairs, the stroke ids only used
for the final evaluation. The generator takes 8-D standard normal noise ``z``, a one-hot
categorical code over ``n_classes = 5`` values (``to_categorical``) and a 2-D continuous
code uniform in [-1, 1], concatenated, through a LeakyReLU MLP to a point. The
discriminator is a LeakyReLU MLP trunk with three heads: ``adv_layer`` (Linear + Sigmoid,
real/fake through ``nn.BCELoss``), ``aux_layer`` (logits over the categorical code) and
``latent_layer`` (the continuous codes). Three Adam optimizers with ``betas=(0.5, 0.999)``:
``optimizer_G`` over the generator, ``optimizer_D`` over the discriminator, and
``optimizer_info`` over ``itertools.chain`` of both for the information loss
``lambda_cat * CrossEntropyLoss(pred_label, gt_labels) + lambda_con * MSELoss(pred_code,
code_input)`` (lambda_cat = 1, lambda_con = 0.1) on a fresh generated batch whose sampled
labels are both the one-hot input and the target. Each batch: generator step, then the
discriminator on real points and ``gen_imgs.detach()`` (averaged BCE), then the information
step. numpy draws the latent inputs as in the original. Top-level script with argparse;
prints the D, G and info losses each epoch with the mode purity of 2,000 generated points
per categorical value, and at the end the purity, the one-to-one accuracy (best matching of
code values to strokes) against chance (0.20), and the share of points on a stroke against
that of a Gaussian with the data's mean and covariance.

Healthy: nndoctor should report no warning and no error.

    python examples/wild/infogan_codes.py
    nndoctor check examples/wild/infogan_codes.py
"""

import argparse
import itertools
import math

import numpy as np
import torch
import torch.nn as nn
from torch.utils.data import DataLoader, TensorDataset

parser = argparse.ArgumentParser()
parser.add_argument("--n_epochs", type=int, default=20, help="number of epochs of training")
parser.add_argument("--batch_size", type=int, default=128, help="size of the batches")
parser.add_argument("--lr", type=float, default=2e-4, help="adam: learning rate")
parser.add_argument("--b1", type=float, default=0.5, help="adam: decay of first order momentum")
parser.add_argument("--b2", type=float, default=0.999, help="adam: decay of second order momentum")
parser.add_argument("--latent_dim", type=int, default=8, help="dimensionality of the latent space")
parser.add_argument("--code_dim", type=int, default=2, help="latent code")
parser.add_argument("--n_classes", type=int, default=5, help="number of classes for dataset")
parser.add_argument("--hidden", type=int, default=128, help="width of the MLPs")
parser.add_argument("--seed", type=int, default=0)
opt = parser.parse_args()
print(opt)

np.random.seed(opt.seed)
torch.manual_seed(opt.seed)

N_STROKES, RADIUS, STROKE_LEN, NOISE = 5, 2.0, 1.0, 0.04
angles = np.arange(N_STROKES) * 2 * math.pi / N_STROKES
CENTERS = RADIUS * np.stack([np.cos(angles), np.sin(angles)], axis=1)
TANGENTS = np.stack([-np.sin(angles), np.cos(angles)], axis=1)


def make_strokes(n):
    stroke = np.random.randint(0, N_STROKES, n)
    t = np.random.uniform(-0.5, 0.5, n) * STROKE_LEN
    points = CENTERS[stroke] + t[:, None] * TANGENTS[stroke] + NOISE * np.random.randn(n, 2)
    return points.astype(np.float32), stroke


def assign_strokes(points):
    """Nearest stroke of each point and its distance to that segment."""
    rel = points[:, None, :] - CENTERS[None]  # (n, strokes, 2)
    along = np.clip((rel * TANGENTS[None]).sum(-1), -STROKE_LEN / 2, STROKE_LEN / 2)
    closest = CENTERS[None] + along[..., None] * TANGENTS[None]
    dist = np.linalg.norm(points[:, None, :] - closest, axis=-1)
    return dist.argmin(1), dist.min(1)


def to_categorical(y, num_columns):
    """Returns one-hot encoded Variable"""
    y_cat = np.zeros((y.shape[0], num_columns))
    y_cat[range(y.shape[0]), y] = 1.0
    return torch.as_tensor(y_cat, dtype=torch.float32)


class Generator(nn.Module):
    def __init__(self):
        super().__init__()
        input_dim = opt.latent_dim + opt.n_classes + opt.code_dim
        self.model = nn.Sequential(
            nn.Linear(input_dim, opt.hidden),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Linear(opt.hidden, opt.hidden),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Linear(opt.hidden, opt.hidden),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Linear(opt.hidden, 2),
        )

    def forward(self, noise, labels, code):
        gen_input = torch.cat((noise, labels, code), -1)
        return self.model(gen_input)


class Discriminator(nn.Module):
    def __init__(self):
        super().__init__()
        self.model = nn.Sequential(
            nn.Linear(2, opt.hidden),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Linear(opt.hidden, opt.hidden),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Linear(opt.hidden, opt.hidden),
            nn.LeakyReLU(0.2, inplace=True),
        )
        # Output layers
        self.adv_layer = nn.Sequential(nn.Linear(opt.hidden, 1), nn.Sigmoid())
        self.aux_layer = nn.Linear(opt.hidden, opt.n_classes)
        self.latent_layer = nn.Linear(opt.hidden, opt.code_dim)

    def forward(self, x):
        out = self.model(x)
        validity = self.adv_layer(out)
        label = self.aux_layer(out)
        latent_code = self.latent_layer(out)
        return validity, label, latent_code


# Loss functions
adversarial_loss = nn.BCELoss()
categorical_loss = nn.CrossEntropyLoss()
continuous_loss = nn.MSELoss()

# Loss weights
lambda_cat = 1
lambda_con = 0.1

# Initialize generator and discriminator
generator = Generator()
discriminator = Discriminator()

# Configure data loader
points, strokes = make_strokes(20000)
dataloader = DataLoader(
    TensorDataset(torch.from_numpy(points), torch.from_numpy(strokes)),
    batch_size=opt.batch_size,
    shuffle=True,
    drop_last=True,
)

# Optimizers
optimizer_G = torch.optim.Adam(generator.parameters(), lr=opt.lr, betas=(opt.b1, opt.b2))
optimizer_D = torch.optim.Adam(discriminator.parameters(), lr=opt.lr, betas=(opt.b1, opt.b2))
optimizer_info = torch.optim.Adam(
    itertools.chain(generator.parameters(), discriminator.parameters()),
    lr=opt.lr,
    betas=(opt.b1, opt.b2),
)

# Fixed inputs for evaluation: 2,000 points per value of the categorical code
n_eval = 2000
eval_z = torch.as_tensor(np.random.normal(0, 1, (n_eval, opt.latent_dim)), dtype=torch.float32)
eval_code = torch.as_tensor(np.random.uniform(-1, 1, (n_eval, opt.code_dim)), dtype=torch.float32)


def evaluate():
    """Mode purity per code value, one-to-one accuracy and share of points on a stroke."""
    generator.eval()
    counts = np.zeros((opt.n_classes, N_STROKES))
    on_stroke = 0.0
    with torch.no_grad():
        for c in range(opt.n_classes):
            label_input = to_categorical(np.full(n_eval, c), num_columns=opt.n_classes)
            gen_points = generator(eval_z, label_input, eval_code).numpy()
            mode, dist = assign_strokes(gen_points)
            counts[c] = np.bincount(mode, minlength=N_STROKES)
            on_stroke += (dist < 4 * NOISE).mean() / opt.n_classes
    generator.train()
    purity = (counts.max(1) / counts.sum(1)).mean()
    matched = max(
        counts[range(opt.n_classes), list(perm)].sum()
        for perm in itertools.permutations(range(N_STROKES), opt.n_classes)
    ) / counts.sum()
    return purity, matched, on_stroke


# ----------
#  Training
# ----------

for epoch in range(opt.n_epochs):
    for real_imgs, _ in dataloader:
        batch_size = real_imgs.shape[0]

        # Adversarial ground truths
        valid = torch.ones(batch_size, 1)
        fake = torch.zeros(batch_size, 1)

        # -----------------
        #  Train Generator
        # -----------------

        optimizer_G.zero_grad()

        # Sample noise and labels as generator input
        z = torch.as_tensor(np.random.normal(0, 1, (batch_size, opt.latent_dim)), dtype=torch.float32)
        label_input = to_categorical(
            np.random.randint(0, opt.n_classes, batch_size), num_columns=opt.n_classes
        )
        code_input = torch.as_tensor(
            np.random.uniform(-1, 1, (batch_size, opt.code_dim)), dtype=torch.float32
        )

        # Generate a batch of points
        gen_imgs = generator(z, label_input, code_input)

        # Loss measures generator's ability to fool the discriminator
        validity, _, _ = discriminator(gen_imgs)
        g_loss = adversarial_loss(validity, valid)

        g_loss.backward()
        optimizer_G.step()

        # ---------------------
        #  Train Discriminator
        # ---------------------

        optimizer_D.zero_grad()

        # Loss for real points
        real_pred, _, _ = discriminator(real_imgs)
        d_real_loss = adversarial_loss(real_pred, valid)

        # Loss for fake points
        fake_pred, _, _ = discriminator(gen_imgs.detach())
        d_fake_loss = adversarial_loss(fake_pred, fake)

        # Total discriminator loss
        d_loss = (d_real_loss + d_fake_loss) / 2

        d_loss.backward()
        optimizer_D.step()

        # ------------------
        # Information Loss
        # ------------------

        optimizer_info.zero_grad()

        # Sample labels
        sampled_labels = np.random.randint(0, opt.n_classes, batch_size)

        # Ground truth labels
        gt_labels = torch.as_tensor(sampled_labels, dtype=torch.long)

        # Sample noise, labels and code as generator input
        z = torch.as_tensor(np.random.normal(0, 1, (batch_size, opt.latent_dim)), dtype=torch.float32)
        label_input = to_categorical(sampled_labels, num_columns=opt.n_classes)
        code_input = torch.as_tensor(
            np.random.uniform(-1, 1, (batch_size, opt.code_dim)), dtype=torch.float32
        )

        gen_imgs = generator(z, label_input, code_input)
        _, pred_label, pred_code = discriminator(gen_imgs)

        info_loss = lambda_cat * categorical_loss(pred_label, gt_labels) + lambda_con * continuous_loss(
            pred_code, code_input
        )

        info_loss.backward()
        optimizer_info.step()

    purity, matched, on_stroke = evaluate()
    print(
        f"[Epoch {epoch + 1}/{opt.n_epochs}] [D loss: {d_loss.item():.4f}] "
        f"[G loss: {g_loss.item():.4f}] [info loss: {info_loss.item():.4f}] "
        f"[purity: {purity:.3f}] [on stroke: {100 * on_stroke:.1f}%]"
    )

# Baseline for the share on a stroke: a Gaussian with the data's mean and covariance
gauss = np.random.multivariate_normal(points.mean(0), np.cov(points.T), n_eval)
gauss_on_stroke = (assign_strokes(gauss)[1] < 4 * NOISE).mean()

purity, matched, on_stroke = evaluate()
print(
    f"final: mode purity per code value {purity:.3f}, one-to-one accuracy {matched:.3f} "
    f"(chance {1 / N_STROKES:.2f}), points on a stroke {100 * on_stroke:.1f}% "
    f"(Gaussian fit {100 * gauss_on_stroke:.1f}%)"
)
