"""A scaled-down Masked Autoencoder (MAE) on generated shape images, then a linear probe: healthy.

In the manner of facebookresearch/mae (``models_mae.py`` and ``main_pretrain.py``, He et
al. 2022), scaled down to small images: 1x16x16 pictures of eight kinds (disc, ring,
square frame, plus sign, and horizontal, vertical, diagonal and checkerboard textures of
random frequency) with random size, position, contrast and background and pixel noise,
6,000 for pre-training and probe training and 2,000 for testing. The images are cut into
4x4 patches (16 patches of 16 pixels).

``MaskedAutoencoderViT`` is an ``nn.Module`` as in ``models_mae.py``: a ``Conv2d`` patch
embedding to dimension 64, fixed 2-D sin-cos positional embeddings (``requires_grad=False``)
with a slot for the cls token, a learnable cls token, two pre-norm transformer blocks
(``nn.MultiheadAttention`` with 4 heads, GELU MLP) and a final LayerNorm. ``random_masking``
keeps 25% of the patches per image: uniform noise is ``argsort``-ed into ``ids_shuffle``,
``ids_restore`` is the ``argsort`` of that, ``ids_keep`` the first 4 indices, and the visible
patches are taken with ``torch.gather``; the binary mask (1 = removed) is unshuffled with
``ids_restore``. The lightweight decoder (dimension 32, one block) appends learnable mask
tokens to the embedded visible tokens, unshuffles them into place with ``torch.gather``,
adds its own sin-cos positional embeddings and predicts the 16 pixels of every patch.
Loss: the per-patch mean squared error against the patch normalised by its own mean and
variance (``norm_pix_loss``), averaged over the MASKED patches only. AdamW (betas 0.9,
0.95, weight decay 0.05) with a per-step ``LambdaLR`` of linear warm-up (5 epochs) and
cosine decay over 30 epochs, batches of 128 from a shuffled ``DataLoader``.

Then a linear probe: the encoder is frozen (``eval()``, ``no_grad``) and run on every whole
image (mask ratio 0); the features (the mean of the patch tokens, as with ``global_pool``)
are standardised with the training statistics and a linear classifier is trained on them
with Adam. The same probe is trained on the features of a randomly initialised encoder as
the baseline. Top-level functions and ``main()`` with argparse; prints the reconstruction
loss every 5 epochs, the held-out masked reconstruction loss, and the probe accuracies of
the pre-trained and of the random encoder (chance is 0.125).

Healthy: nndoctor should report no warning and no error.

    python examples/wild/mae_masked_patches.py
    nndoctor check examples/wild/mae_masked_patches.py
"""

import argparse
import math

import torch
import torch.nn as nn
from torch.utils.data import DataLoader, TensorDataset

IMG_SIZE, PATCH = 16, 4
N_CLASSES = 8


def make_images(n, g):
    ys, xs = torch.meshgrid(
        torch.arange(IMG_SIZE) + 0.5, torch.arange(IMG_SIZE) + 0.5, indexing="ij"
    )
    labels = torch.randint(0, N_CLASSES, (n,), generator=g)
    cy = 5 + 6 * torch.rand(n, 1, 1, generator=g)
    cx = 5 + 6 * torch.rand(n, 1, 1, generator=g)
    r = 3.0 + 2.5 * torch.rand(n, 1, 1, generator=g)
    dy, dx = ys - cy, xs - cx
    dist = torch.sqrt(dy**2 + dx**2)
    cheb = torch.maximum(dy.abs(), dx.abs())
    freq = 2 * math.pi / (3.0 + 3.0 * torch.rand(n, 1, 1, generator=g))
    phase = 2 * math.pi * torch.rand(n, 1, 1, generator=g)
    patterns = torch.stack(
        [
            (dist <= r).float(),  # disc
            ((dist <= r) & (dist >= r - 1.5)).float(),  # ring
            ((cheb <= 0.8 * r) & (cheb >= 0.8 * r - 1.2)).float(),  # frame
            (((dy.abs() <= 1.0) | (dx.abs() <= 1.0)) & (cheb <= r)).float(),  # plus
            (torch.sin(freq * ys + phase) > 0).float(),  # horizontal stripes
            (torch.sin(freq * xs + phase) > 0).float(),  # vertical stripes
            (torch.sin(freq * (xs + ys) / math.sqrt(2) + phase) > 0).float(),  # diagonal
            ((torch.sin(freq * xs + phase) * torch.sin(freq * ys)) > 0).float(),  # checker
        ],
        dim=1,
    )
    pattern = patterns[torch.arange(n), labels]
    contrast = 0.5 + 0.5 * torch.rand(n, 1, 1, generator=g)
    background = 0.3 * torch.rand(n, 1, 1, generator=g)
    noise = 0.1 * torch.randn(n, IMG_SIZE, IMG_SIZE, generator=g)
    images = background + contrast * pattern + noise
    return images[:, None], labels


def get_1d_sincos_pos_embed(embed_dim, pos):
    omega = torch.arange(embed_dim // 2, dtype=torch.float64) / (embed_dim / 2.0)
    omega = 1.0 / 10000**omega
    out = pos.reshape(-1).double()[:, None] * omega[None, :]
    return torch.cat([torch.sin(out), torch.cos(out)], dim=1)


def get_2d_sincos_pos_embed(embed_dim, grid_size, cls_token=False):
    grid_h, grid_w = torch.meshgrid(
        torch.arange(grid_size, dtype=torch.float64),
        torch.arange(grid_size, dtype=torch.float64),
        indexing="ij",
    )
    emb_h = get_1d_sincos_pos_embed(embed_dim // 2, grid_h)
    emb_w = get_1d_sincos_pos_embed(embed_dim // 2, grid_w)
    pos_embed = torch.cat([emb_h, emb_w], dim=1)
    if cls_token:
        pos_embed = torch.cat([torch.zeros(1, embed_dim, dtype=torch.float64), pos_embed], dim=0)
    return pos_embed.float()


class Block(nn.Module):
    def __init__(self, dim, num_heads, mlp_ratio=2.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, num_heads, batch_first=True)
        self.norm2 = nn.LayerNorm(dim)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, x):
        h = self.norm1(x)
        x = x + self.attn(h, h, h, need_weights=False)[0]
        x = x + self.mlp(self.norm2(x))
        return x


class MaskedAutoencoderViT(nn.Module):
    def __init__(
        self,
        img_size=IMG_SIZE,
        patch_size=PATCH,
        in_chans=1,
        embed_dim=64,
        depth=2,
        num_heads=4,
        decoder_embed_dim=32,
        decoder_depth=1,
        decoder_num_heads=4,
        norm_pix_loss=True,
    ):
        super().__init__()
        self.patch_size = patch_size
        self.in_chans = in_chans
        self.grid = img_size // patch_size
        num_patches = self.grid**2

        # encoder
        self.patch_embed = nn.Conv2d(in_chans, embed_dim, patch_size, stride=patch_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(
            torch.zeros(1, num_patches + 1, embed_dim), requires_grad=False
        )
        self.blocks = nn.ModuleList(Block(embed_dim, num_heads) for _ in range(depth))
        self.norm = nn.LayerNorm(embed_dim)

        # decoder
        self.decoder_embed = nn.Linear(embed_dim, decoder_embed_dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, decoder_embed_dim))
        self.decoder_pos_embed = nn.Parameter(
            torch.zeros(1, num_patches + 1, decoder_embed_dim), requires_grad=False
        )
        self.decoder_blocks = nn.ModuleList(
            Block(decoder_embed_dim, decoder_num_heads) for _ in range(decoder_depth)
        )
        self.decoder_norm = nn.LayerNorm(decoder_embed_dim)
        self.decoder_pred = nn.Linear(decoder_embed_dim, patch_size**2 * in_chans)

        self.norm_pix_loss = norm_pix_loss
        self.initialize_weights()

    def initialize_weights(self):
        pos = get_2d_sincos_pos_embed(self.pos_embed.shape[-1], self.grid, cls_token=True)
        self.pos_embed.data.copy_(pos[None])
        dec = get_2d_sincos_pos_embed(self.decoder_pos_embed.shape[-1], self.grid, cls_token=True)
        self.decoder_pos_embed.data.copy_(dec[None])

        w = self.patch_embed.weight.data
        nn.init.xavier_uniform_(w.view(w.shape[0], -1))
        nn.init.normal_(self.cls_token, std=0.02)
        nn.init.normal_(self.mask_token, std=0.02)
        self.apply(self._init_weights)

    def _init_weights(self, m):
        if isinstance(m, nn.Linear):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.constant_(m.bias, 0)
        elif isinstance(m, nn.LayerNorm):
            nn.init.constant_(m.bias, 0)
            nn.init.constant_(m.weight, 1.0)

    def patchify(self, imgs):
        p, h = self.patch_size, self.grid
        x = imgs.reshape(imgs.shape[0], self.in_chans, h, p, h, p)
        x = torch.einsum("nchpwq->nhwpqc", x)
        return x.reshape(imgs.shape[0], h * h, p * p * self.in_chans)

    def random_masking(self, x, mask_ratio):
        N, L, D = x.shape
        len_keep = int(L * (1 - mask_ratio))

        noise = torch.rand(N, L, device=x.device)
        ids_shuffle = torch.argsort(noise, dim=1)
        ids_restore = torch.argsort(ids_shuffle, dim=1)

        ids_keep = ids_shuffle[:, :len_keep]
        x_masked = torch.gather(x, dim=1, index=ids_keep.unsqueeze(-1).repeat(1, 1, D))

        mask = torch.ones([N, L], device=x.device)
        mask[:, :len_keep] = 0
        mask = torch.gather(mask, dim=1, index=ids_restore)
        return x_masked, mask, ids_restore

    def forward_encoder(self, x, mask_ratio):
        x = self.patch_embed(x).flatten(2).transpose(1, 2)
        x = x + self.pos_embed[:, 1:, :]
        x, mask, ids_restore = self.random_masking(x, mask_ratio)

        cls_token = self.cls_token + self.pos_embed[:, :1, :]
        x = torch.cat((cls_token.expand(x.shape[0], -1, -1), x), dim=1)
        for blk in self.blocks:
            x = blk(x)
        return self.norm(x), mask, ids_restore

    def forward_decoder(self, x, ids_restore):
        x = self.decoder_embed(x)

        n_mask = ids_restore.shape[1] + 1 - x.shape[1]
        mask_tokens = self.mask_token.repeat(x.shape[0], n_mask, 1)
        x_ = torch.cat([x[:, 1:, :], mask_tokens], dim=1)
        x_ = torch.gather(x_, dim=1, index=ids_restore.unsqueeze(-1).repeat(1, 1, x.shape[2]))
        x = torch.cat([x[:, :1, :], x_], dim=1)

        x = x + self.decoder_pos_embed
        for blk in self.decoder_blocks:
            x = blk(x)
        x = self.decoder_pred(self.decoder_norm(x))
        return x[:, 1:, :]

    def forward_loss(self, imgs, pred, mask):
        target = self.patchify(imgs)
        if self.norm_pix_loss:
            mean = target.mean(dim=-1, keepdim=True)
            var = target.var(dim=-1, keepdim=True)
            target = (target - mean) / (var + 1.0e-6) ** 0.5

        loss = (pred - target) ** 2
        loss = loss.mean(dim=-1)  # mean loss per patch
        loss = (loss * mask).sum() / mask.sum()  # mean loss on removed patches
        return loss

    def forward(self, imgs, mask_ratio=0.75):
        latent, mask, ids_restore = self.forward_encoder(imgs, mask_ratio)
        pred = self.forward_decoder(latent, ids_restore)
        loss = self.forward_loss(imgs, pred, mask)
        return loss, pred, mask


def warmup_cosine(warmup_steps, total_steps):
    def lr_lambda(step):
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1.0 + math.cos(math.pi * progress))

    return lr_lambda


def train_one_epoch(model, loader, optimizer, scheduler, mask_ratio):
    model.train()
    total, n = 0.0, 0
    for imgs, _ in loader:
        loss, _, _ = model(imgs, mask_ratio=mask_ratio)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        scheduler.step()
        total += loss.item() * imgs.shape[0]
        n += imgs.shape[0]
    return total / n


@torch.no_grad()
def eval_reconstruction(model, images, mask_ratio):
    model.eval()
    torch.manual_seed(1234)
    loss, _, _ = model(images, mask_ratio=mask_ratio)
    return loss.item()


@torch.no_grad()
def extract_features(model, images):
    model.eval()
    latent, _, _ = model.forward_encoder(images, mask_ratio=0.0)
    return latent[:, 1:].mean(dim=1)


def linear_probe(model, x_train, y_train, x_test, y_test, epochs=30):
    f_train, f_test = extract_features(model, x_train), extract_features(model, x_test)
    mean, std = f_train.mean(dim=0), f_train.std(dim=0) + 1e-6
    f_train, f_test = (f_train - mean) / std, (f_test - mean) / std

    head = nn.Linear(f_train.shape[1], N_CLASSES)
    optimizer = torch.optim.Adam(head.parameters(), lr=1e-2)
    criterion = nn.CrossEntropyLoss()
    for _ in range(epochs):
        for idx in torch.randperm(len(y_train)).split(256):
            optimizer.zero_grad()
            criterion(head(f_train[idx]), y_train[idx]).backward()
            optimizer.step()
    with torch.no_grad():
        return (head(f_test).argmax(dim=1) == y_test).float().mean().item()


def main():
    parser = argparse.ArgumentParser(description="MAE pre-training on generated images")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--warmup-epochs", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--weight-decay", type=float, default=0.05)
    parser.add_argument("--mask-ratio", type=float, default=0.75)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    g = torch.Generator().manual_seed(args.seed)
    x_train, y_train = make_images(6000, g)
    x_test, y_test = make_images(2000, g)

    loader = DataLoader(
        TensorDataset(x_train, y_train), batch_size=args.batch_size, shuffle=True, drop_last=True
    )
    random_encoder = MaskedAutoencoderViT()
    model = MaskedAutoencoderViT()
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=args.lr, betas=(0.9, 0.95), weight_decay=args.weight_decay
    )
    steps_per_epoch = len(loader)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        warmup_cosine(args.warmup_epochs * steps_per_epoch, args.epochs * steps_per_epoch),
    )

    for epoch in range(1, args.epochs + 1):
        loss = train_one_epoch(model, loader, optimizer, scheduler, args.mask_ratio)
        if epoch % 5 == 0 or epoch == 1:
            lr = scheduler.get_last_lr()[0]
            print(f"epoch {epoch:3d}  lr {lr:.2e}  train loss {loss:.4f}")

    print(f"held-out masked reconstruction loss {eval_reconstruction(model, x_test, 0.75):.4f}")
    print(f"  (random encoder: {eval_reconstruction(random_encoder, x_test, 0.75):.4f})")
    acc = linear_probe(model, x_train, y_train, x_test, y_test)
    acc_random = linear_probe(random_encoder, x_train, y_train, x_test, y_test)
    print(f"linear probe test accuracy: MAE encoder {acc:.3f}  random encoder {acc_random:.3f}")


if __name__ == "__main__":
    main()
