"""pix2pix: a U-Net generator and a PatchGAN discriminator on paired label maps: healthy.

In the manner of the pix2pix model of the pytorch-CycleGAN-and-pix2pix repository (Isola
et al.): the pairs are generated 32x32 pictures, ``A`` a label map (the silhouette of a
disc, square, triangle, diamond or ring of random size and position filled with the flat
label colour of its kind on black, as in the facades labels) and ``B`` the rendered picture
(the object painted in its kind's colour with a light from the upper left, a drop shadow
on a page with a vertical gradient, a little colour jitter and pixel noise), both 3x32x32
in [-1, 1]; 1,500 pairs for training and 500 held out. ``UnetGenerator`` is built from
nested ``UnetSkipConnectionBlock`` modules (five 4x4 stride-2 downsamplings to 1x1,
LeakyReLU down, ReLU and transposed convolutions up, BatchNorm, each block's input
concatenated to its output, Tanh at the end) and ``NLayerDiscriminator`` is a PatchGAN
scoring 6x6 overlapping patches of the concatenated (A, B) pair; both initialised from
N(0, 0.02) as ``init_weights`` does.

``GANLoss`` is the vanilla one (``nn.BCEWithLogitsLoss`` against a target tensor of ones
or zeros shaped like the prediction) and the generator also gets ``lambda_L1 = 100``
times the L1 distance to the target. One step is ``optimize_parameters``: the discriminator
is trained on the real pair and on the detached fake pair (loss halved), then its
``requires_grad`` is switched off and the generator is trained to fool it plus the L1
term. Two Adam optimizers (lr 2e-4, betas (0.5, 0.999)), each with a ``LambdaLR`` that
keeps the rate for the first half of the epochs and then decays it linearly towards zero,
stepped once per epoch; batches of 16, 8 epochs. Top-level functions and ``main()`` with
argparse; prints the losses every 2 epochs and the held-out L1 (generator in eval mode),
then the final held-out L1 of the generator next to the L1 of predicting the input itself
and of predicting the mean training picture.

Healthy: nndoctor should report no warning and no error.

    python examples/wild/pix2pix_edges.py
    nndoctor check examples/wild/pix2pix_edges.py
"""

import argparse

import torch
import torch.nn as nn

SIZE = 32
# Flat label colours of the input map, one per kind of shape (as in the facades labels).
LABELS = torch.tensor(
    [
        [1.0, 0.0, 0.0],  # disc
        [0.0, 1.0, 0.0],  # square
        [0.0, 0.0, 1.0],  # triangle
        [1.0, 1.0, 0.0],  # diamond
        [1.0, 0.0, 1.0],  # ring
    ]
)
# The colour each kind of object is painted in the target picture.
PAINT = torch.tensor(
    [
        [0.80, 0.35, 0.20],  # disc: brick
        [0.25, 0.55, 0.35],  # square: moss
        [0.30, 0.35, 0.70],  # triangle: slate blue
        [0.85, 0.70, 0.30],  # diamond: ochre
        [0.55, 0.30, 0.55],  # ring: plum
    ]
)


def make_pairs(n, g):
    """Label maps A and rendered pictures B, both (n, 3, 32, 32) in [-1, 1]."""
    ys, xs = torch.meshgrid(torch.arange(SIZE) + 0.5, torch.arange(SIZE) + 0.5, indexing="ij")
    kind = torch.randint(0, len(LABELS), (n,), generator=g)
    r = 5.0 + 6.0 * torch.rand(n, 1, 1, generator=g)
    cy = r + 1 + (SIZE - 2 * r - 4) * torch.rand(n, 1, 1, generator=g)
    cx = r + 1 + (SIZE - 2 * r - 4) * torch.rand(n, 1, 1, generator=g)
    dy, dx = ys - cy, xs - cx
    dist = torch.sqrt(dy**2 + dx**2)
    regions = torch.stack(
        [
            dist <= r,  # disc
            torch.maximum(dy.abs(), dx.abs()) <= 0.8 * r,  # square
            (dy <= 0.7 * r) & (dy >= 2 * dx.abs() - r),  # triangle
            dy.abs() + dx.abs() <= r,  # diamond
            (dist <= r) & (dist >= 0.5 * r),  # ring
        ],
        dim=1,
    )
    mask = regions[torch.arange(n), kind].float()[:, None]
    a = mask * LABELS[kind][:, :, None, None]
    a = 2.0 * a - 1.0

    # The picture: a lit object with a drop shadow on a page with a vertical gradient.
    page = (0.75 + 0.2 * ys / SIZE).expand(n, 3, SIZE, SIZE)
    shadow = nn.functional.pad(mask, (2, 0, 2, 0))[:, :, :SIZE, :SIZE]
    page = page * (1 - 0.4 * shadow)
    light = torch.sqrt((dy + 0.5 * r) ** 2 + (dx + 0.5 * r) ** 2) / (2 * r)
    shade = (1.25 - 0.7 * light).clamp(0.3, 1.3)[:, None]
    paint = PAINT[kind] + 0.04 * torch.randn(n, 3, generator=g)
    obj = (paint[:, :, None, None] * shade).clamp(0, 1)
    picture = mask * obj + (1 - mask) * page
    picture = picture + 0.02 * torch.randn(n, 3, SIZE, SIZE, generator=g)
    b = (2.0 * picture - 1.0).clamp(-1, 1)
    return a, b


class UnetSkipConnectionBlock(nn.Module):
    def __init__(
        self, outer_nc, inner_nc, input_nc=None, submodule=None, outermost=False, innermost=False
    ):
        super().__init__()
        self.outermost = outermost
        if input_nc is None:
            input_nc = outer_nc
        downconv = nn.Conv2d(input_nc, inner_nc, kernel_size=4, stride=2, padding=1, bias=False)
        downrelu = nn.LeakyReLU(0.2, True)
        downnorm = nn.BatchNorm2d(inner_nc)
        uprelu = nn.ReLU(True)
        upnorm = nn.BatchNorm2d(outer_nc)

        if outermost:
            upconv = nn.ConvTranspose2d(inner_nc * 2, outer_nc, kernel_size=4, stride=2, padding=1)
            model = [downconv, submodule, uprelu, upconv, nn.Tanh()]
        elif innermost:
            upconv = nn.ConvTranspose2d(
                inner_nc, outer_nc, kernel_size=4, stride=2, padding=1, bias=False
            )
            model = [downrelu, downconv, uprelu, upconv, upnorm]
        else:
            upconv = nn.ConvTranspose2d(
                inner_nc * 2, outer_nc, kernel_size=4, stride=2, padding=1, bias=False
            )
            model = [downrelu, downconv, downnorm, submodule, uprelu, upconv, upnorm]
        self.model = nn.Sequential(*model)

    def forward(self, x):
        if self.outermost:
            return self.model(x)
        return torch.cat([x, self.model(x)], 1)


class UnetGenerator(nn.Module):
    """Five downsamplings: 32x32 -> 1x1 at the bottleneck."""

    def __init__(self, input_nc, output_nc, ngf=16):
        super().__init__()
        block = UnetSkipConnectionBlock(ngf * 4, ngf * 4, innermost=True)
        block = UnetSkipConnectionBlock(ngf * 4, ngf * 4, submodule=block)
        block = UnetSkipConnectionBlock(ngf * 2, ngf * 4, submodule=block)
        block = UnetSkipConnectionBlock(ngf, ngf * 2, submodule=block)
        self.model = UnetSkipConnectionBlock(
            output_nc, ngf, input_nc=input_nc, submodule=block, outermost=True
        )

    def forward(self, x):
        return self.model(x)


class NLayerDiscriminator(nn.Module):
    """PatchGAN: a 6x6 map of logits, one per overlapping patch of a 32x32 pair."""

    def __init__(self, input_nc, ndf=16, n_layers=2):
        super().__init__()
        sequence = [
            nn.Conv2d(input_nc, ndf, kernel_size=4, stride=2, padding=1),
            nn.LeakyReLU(0.2, True),
        ]
        nf_mult = 1
        for n in range(1, n_layers):
            nf_mult_prev, nf_mult = nf_mult, min(2**n, 8)
            sequence += [
                nn.Conv2d(ndf * nf_mult_prev, ndf * nf_mult, 4, stride=2, padding=1, bias=False),
                nn.BatchNorm2d(ndf * nf_mult),
                nn.LeakyReLU(0.2, True),
            ]
        nf_mult_prev, nf_mult = nf_mult, min(2**n_layers, 8)
        sequence += [
            nn.Conv2d(ndf * nf_mult_prev, ndf * nf_mult, 4, stride=1, padding=1, bias=False),
            nn.BatchNorm2d(ndf * nf_mult),
            nn.LeakyReLU(0.2, True),
            nn.Conv2d(ndf * nf_mult, 1, kernel_size=4, stride=1, padding=1),
        ]
        self.model = nn.Sequential(*sequence)

    def forward(self, x):
        return self.model(x)


def init_weights(net, init_gain=0.02):
    def init_func(m):
        classname = m.__class__.__name__
        if hasattr(m, "weight") and ("Conv" in classname or "Linear" in classname):
            nn.init.normal_(m.weight, 0.0, init_gain)
            if m.bias is not None:
                nn.init.constant_(m.bias, 0.0)
        elif "BatchNorm2d" in classname:
            nn.init.normal_(m.weight, 1.0, init_gain)
            nn.init.constant_(m.bias, 0.0)

    net.apply(init_func)


class GANLoss(nn.Module):
    def __init__(self):
        super().__init__()
        self.register_buffer("real_label", torch.tensor(1.0))
        self.register_buffer("fake_label", torch.tensor(0.0))
        self.loss = nn.BCEWithLogitsLoss()

    def __call__(self, prediction, target_is_real):
        target = self.real_label if target_is_real else self.fake_label
        return self.loss(prediction, target.expand_as(prediction))


def set_requires_grad(nets, requires_grad=False):
    for net in nets:
        for param in net.parameters():
            param.requires_grad = requires_grad


class Pix2PixModel:
    def __init__(self, lr, lambda_l1):
        self.netG = UnetGenerator(3, 3)
        self.netD = NLayerDiscriminator(3 + 3)
        init_weights(self.netG)
        init_weights(self.netD)
        self.criterionGAN = GANLoss()
        self.criterionL1 = nn.L1Loss()
        self.lambda_l1 = lambda_l1
        self.optimizer_G = torch.optim.Adam(self.netG.parameters(), lr=lr, betas=(0.5, 0.999))
        self.optimizer_D = torch.optim.Adam(self.netD.parameters(), lr=lr, betas=(0.5, 0.999))

    def set_input(self, real_a, real_b):
        self.real_A = real_a
        self.real_B = real_b

    def forward(self):
        self.fake_B = self.netG(self.real_A)

    def backward_D(self):
        fake_AB = torch.cat((self.real_A, self.fake_B), 1)
        pred_fake = self.netD(fake_AB.detach())
        self.loss_D_fake = self.criterionGAN(pred_fake, False)
        real_AB = torch.cat((self.real_A, self.real_B), 1)
        pred_real = self.netD(real_AB)
        self.loss_D_real = self.criterionGAN(pred_real, True)
        self.loss_D = (self.loss_D_fake + self.loss_D_real) * 0.5
        self.loss_D.backward()

    def backward_G(self):
        fake_AB = torch.cat((self.real_A, self.fake_B), 1)
        pred_fake = self.netD(fake_AB)
        self.loss_G_GAN = self.criterionGAN(pred_fake, True)
        self.loss_G_L1 = self.criterionL1(self.fake_B, self.real_B) * self.lambda_l1
        self.loss_G = self.loss_G_GAN + self.loss_G_L1
        self.loss_G.backward()

    def optimize_parameters(self):
        self.forward()
        # update D
        set_requires_grad([self.netD], True)
        self.optimizer_D.zero_grad()
        self.backward_D()
        self.optimizer_D.step()
        # update G
        set_requires_grad([self.netD], False)
        self.optimizer_G.zero_grad()
        self.backward_G()
        self.optimizer_G.step()


@torch.no_grad()
def held_out_l1(netG, a, b):
    netG.eval()
    l1 = (netG(a) - b).abs().mean().item()
    netG.train()
    return l1


def main():
    parser = argparse.ArgumentParser(description="pix2pix on generated edge maps")
    parser.add_argument("--n-train", type=int, default=1500)
    parser.add_argument("--n-test", type=int, default=500)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=2e-4)
    parser.add_argument("--lambda-l1", type=float, default=100.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    g = torch.Generator().manual_seed(args.seed)
    train_a, train_b = make_pairs(args.n_train, g)
    test_a, test_b = make_pairs(args.n_test, g)

    model = Pix2PixModel(args.lr, args.lambda_l1)
    n_keep = args.epochs // 2

    def lambda_rule(epoch):
        return 1.0 - max(0, epoch + 1 - n_keep) / float(args.epochs - n_keep + 1)

    schedulers = [
        torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda=lambda_rule)
        for opt in (model.optimizer_G, model.optimizer_D)
    ]

    for epoch in range(1, args.epochs + 1):
        order = torch.randperm(args.n_train)
        totals = {"G_GAN": 0.0, "G_L1": 0.0, "D_real": 0.0, "D_fake": 0.0}
        n_batches = 0
        for i in range(0, args.n_train, args.batch_size):
            idx = order[i : i + args.batch_size]
            model.set_input(train_a[idx], train_b[idx])
            model.optimize_parameters()
            totals["G_GAN"] += model.loss_G_GAN.item()
            totals["G_L1"] += model.loss_G_L1.item()
            totals["D_real"] += model.loss_D_real.item()
            totals["D_fake"] += model.loss_D_fake.item()
            n_batches += 1
        for scheduler in schedulers:
            scheduler.step()
        if epoch % 2 == 0:
            losses = "  ".join(f"{k} {v / n_batches:.3f}" for k, v in totals.items())
            l1 = held_out_l1(model.netG, test_a, test_b)
            print(f"epoch {epoch:2d}  {losses}  held-out L1 {l1:.4f}")

    copy_input = (test_a - test_b).abs().mean().item()
    mean_picture = (train_b.mean(dim=0) - test_b).abs().mean().item()
    print(f"final: held-out L1 {held_out_l1(model.netG, test_a, test_b):.4f}")
    print(f"baseline: L1 of predicting the input {copy_input:.4f}")
    print(f"baseline: L1 of predicting the mean picture {mean_picture:.4f}")


if __name__ == "__main__":
    main()
