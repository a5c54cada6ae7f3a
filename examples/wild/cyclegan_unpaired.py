"""CycleGAN between outlined and filled shapes, trained on unpaired images: healthy.

In the manner of the CycleGAN implementations of ``pytorch-CycleGAN-and-pix2pix`` and of
PyTorch-GAN's ``cyclegan.py`` (Zhu et al. 2017), at toy scale: the two image domains are
generated 1x16x16 pictures in [-1, 1] of a disc or a square of random position and size,
domain A drawn in outline (a stroke 1.5 pixels wide) and domain B filled, with a little
pixel noise. The training images of the two domains are separate random draws (512 each;
an unaligned ``Dataset`` pairs each A image with a random B image), so nothing tells the
model which filled shape belongs to which outline. The 400 held-out test shapes are drawn
in pairs (the same shape outlined and filled) so that the translations can be scored.

``GeneratorResNet`` is the ResNet generator of the paper (reflection padding, 7x7 input
and output convolutions, two stride-2 downsamplings, three residual blocks with
``InstanceNorm2d``, upsampling by ``nn.Upsample`` + convolution, ``Tanh`` output) and
``Discriminator`` a PatchGAN (4x4 stride-2 convolutions, LeakyReLU, InstanceNorm) that
scores 4x4 patches; all convolution weights from N(0, 0.02) as in ``weights_init_normal``.
Losses as in the paper: least-squares adversarial losses (``nn.MSELoss`` against patch
targets of ones and zeros), a cycle-consistency ``nn.L1Loss`` weighted by 10 and an
identity ``nn.L1Loss`` (each generator fed an image of its target domain must leave it
unchanged) weighted by 5. One Adam over ``itertools.chain`` of both generators'
parameters, one Adam per discriminator (lr 1e-3 at this scale, betas (0.5, 0.999)),
batches of 8; the discriminators are trained on fakes drawn from a ``ReplayBuffer`` of the
last 50 generated images, and ``LambdaLR`` keeps the learning rates constant for the first
3 of the 6 epochs, then decays them linearly towards zero. Top-level functions and classes
and ``main()`` with argparse; prints the discriminator loss and the generator loss with
its adversarial, cycle and identity parts every 50 batches, after each epoch the L1 error
and the foreground IoU of both translations of the paired test shapes against their true
counterparts, and at the end the same next to the untranslated images (an outline scored
against its filled shape and the other way round).

Healthy: nndoctor should report no warning and no error.

    python examples/wild/cyclegan_unpaired.py
    nndoctor check examples/wild/cyclegan_unpaired.py
"""

import argparse
import itertools
import random

import torch
import torch.nn as nn
from torch.utils.data import DataLoader, Dataset

SIZE = 16


def draw_shapes(n, g):
    """n shapes, each returned both outlined (domain A) and filled (domain B)."""
    ys, xs = torch.meshgrid(torch.arange(SIZE) + 0.5, torch.arange(SIZE) + 0.5, indexing="ij")
    is_disc = torch.rand(n, 1, 1, generator=g) < 0.5
    cy = 4.5 + 7.0 * torch.rand(n, 1, 1, generator=g)
    cx = 4.5 + 7.0 * torch.rand(n, 1, 1, generator=g)
    r = 3.0 + 2.5 * torch.rand(n, 1, 1, generator=g)
    dy, dx = ys - cy, xs - cx
    dist = torch.where(is_disc, torch.sqrt(dy**2 + dx**2), torch.maximum(dy.abs(), dx.abs()))
    inside = (r - dist + 0.5).clamp(0, 1)
    stroke = inside * (dist - (r - 1.5) + 0.5).clamp(0, 1)
    outlined = 2 * stroke - 1 + 0.05 * torch.randn(n, SIZE, SIZE, generator=g)
    filled = 2 * inside - 1 + 0.05 * torch.randn(n, SIZE, SIZE, generator=g)
    return outlined[:, None].clamp(-1, 1), filled[:, None].clamp(-1, 1)


class UnalignedDataset(Dataset):
    """Each A image with a random B image, as ``ImageDataset(unaligned=True)`` does."""

    def __init__(self, images_a, images_b):
        self.images_a, self.images_b = images_a, images_b

    def __len__(self):
        return max(len(self.images_a), len(self.images_b))

    def __getitem__(self, index):
        item_a = self.images_a[index % len(self.images_a)]
        item_b = self.images_b[random.randint(0, len(self.images_b) - 1)]
        return {"A": item_a, "B": item_b}


class ReplayBuffer:
    def __init__(self, max_size=50):
        self.max_size = max_size
        self.data = []

    def push_and_pop(self, data):
        to_return = []
        for element in data.data:
            element = torch.unsqueeze(element, 0)
            if len(self.data) < self.max_size:
                self.data.append(element)
                to_return.append(element)
            elif random.uniform(0, 1) > 0.5:
                i = random.randint(0, self.max_size - 1)
                to_return.append(self.data[i].clone())
                self.data[i] = element
            else:
                to_return.append(element)
        return torch.cat(to_return)


class LambdaLR:
    def __init__(self, n_epochs, offset, decay_start_epoch):
        assert n_epochs > decay_start_epoch, "Decay must start before the training session ends!"
        self.n_epochs = n_epochs
        self.offset = offset
        self.decay_start_epoch = decay_start_epoch

    def step(self, epoch):
        return 1.0 - max(0, epoch + self.offset - self.decay_start_epoch) / (
            self.n_epochs - self.decay_start_epoch
        )


def weights_init_normal(m):
    classname = m.__class__.__name__
    if classname.find("Conv") != -1:
        nn.init.normal_(m.weight.data, 0.0, 0.02)
        if m.bias is not None:
            nn.init.constant_(m.bias.data, 0.0)


class ResidualBlock(nn.Module):
    def __init__(self, in_features):
        super().__init__()
        self.block = nn.Sequential(
            nn.ReflectionPad2d(1),
            nn.Conv2d(in_features, in_features, 3),
            nn.InstanceNorm2d(in_features),
            nn.ReLU(inplace=True),
            nn.ReflectionPad2d(1),
            nn.Conv2d(in_features, in_features, 3),
            nn.InstanceNorm2d(in_features),
        )

    def forward(self, x):
        return x + self.block(x)


class GeneratorResNet(nn.Module):
    def __init__(self, channels=1, features=16, num_residual_blocks=3):
        super().__init__()
        out_features = features
        model = [
            nn.ReflectionPad2d(3),
            nn.Conv2d(channels, out_features, 7),
            nn.InstanceNorm2d(out_features),
            nn.ReLU(inplace=True),
        ]
        in_features = out_features

        # Downsampling
        for _ in range(2):
            out_features *= 2
            model += [
                nn.Conv2d(in_features, out_features, 3, stride=2, padding=1),
                nn.InstanceNorm2d(out_features),
                nn.ReLU(inplace=True),
            ]
            in_features = out_features

        # Residual blocks
        for _ in range(num_residual_blocks):
            model += [ResidualBlock(out_features)]

        # Upsampling
        for _ in range(2):
            out_features //= 2
            model += [
                nn.Upsample(scale_factor=2),
                nn.Conv2d(in_features, out_features, 3, stride=1, padding=1),
                nn.InstanceNorm2d(out_features),
                nn.ReLU(inplace=True),
            ]
            in_features = out_features

        # Output layer
        model += [nn.ReflectionPad2d(3), nn.Conv2d(out_features, channels, 7), nn.Tanh()]
        self.model = nn.Sequential(*model)

    def forward(self, x):
        return self.model(x)


class Discriminator(nn.Module):
    def __init__(self, channels=1, features=32):
        super().__init__()
        # Two stride-2 blocks: each output scores a patch of the 16x16 image.
        self.output_shape = (1, SIZE // 2**2, SIZE // 2**2)

        def discriminator_block(in_filters, out_filters, normalize=True):
            layers = [nn.Conv2d(in_filters, out_filters, 4, stride=2, padding=1)]
            if normalize:
                layers.append(nn.InstanceNorm2d(out_filters))
            layers.append(nn.LeakyReLU(0.2, inplace=True))
            return layers

        self.model = nn.Sequential(
            *discriminator_block(channels, features, normalize=False),
            *discriminator_block(features, 2 * features),
            nn.ZeroPad2d((1, 0, 1, 0)),
            nn.Conv2d(2 * features, 1, 4, padding=1),
        )

    def forward(self, img):
        return self.model(img)


def foreground_iou(images, targets):
    """Intersection over union of the foreground (pixels above 0) of paired images."""
    fg, fg_target = images > 0, targets > 0
    intersection = (fg & fg_target).sum(dim=(1, 2, 3)).float()
    union = (fg | fg_target).sum(dim=(1, 2, 3)).float().clamp(min=1)
    return (intersection / union).mean().item()


@torch.no_grad()
def evaluate(G_AB, G_BA, test_a, test_b):
    """Score each translation against the true counterpart of the paired test images."""
    G_AB.eval()
    G_BA.eval()
    fake_b, fake_a = G_AB(test_a), G_BA(test_b)
    G_AB.train()
    G_BA.train()
    return {
        "l1_ab": (fake_b - test_b).abs().mean().item(),
        "l1_ba": (fake_a - test_a).abs().mean().item(),
        "l1_none": (test_a - test_b).abs().mean().item(),
        "iou_ab": foreground_iou(fake_b, test_b),
        "iou_ba": foreground_iou(fake_a, test_a),
        "iou_none": foreground_iou(test_a, test_b),
    }


def main():
    parser = argparse.ArgumentParser(description="CycleGAN on outlined vs filled shapes")
    parser.add_argument("--n_epochs", type=int, default=6)
    parser.add_argument("--decay_epoch", type=int, default=3)
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--lr", type=float, default=0.001)
    parser.add_argument("--b1", type=float, default=0.5)
    parser.add_argument("--b2", type=float, default=0.999)
    parser.add_argument("--n_residual_blocks", type=int, default=3)
    parser.add_argument("--ngf", type=int, default=16)
    parser.add_argument("--ndf", type=int, default=32)
    parser.add_argument("--lambda_cyc", type=float, default=10.0)
    parser.add_argument("--lambda_id", type=float, default=5.0)
    parser.add_argument("--n_train", type=int, default=512)
    parser.add_argument("--seed", type=int, default=0)
    opt = parser.parse_args()

    random.seed(opt.seed)
    torch.manual_seed(opt.seed)
    g = torch.Generator().manual_seed(opt.seed)
    train_a, _ = draw_shapes(opt.n_train, g)
    _, train_b = draw_shapes(opt.n_train, g)
    test_a, test_b = draw_shapes(400, g)

    criterion_GAN = nn.MSELoss()
    criterion_cycle = nn.L1Loss()
    criterion_identity = nn.L1Loss()

    G_AB = GeneratorResNet(1, opt.ngf, opt.n_residual_blocks)
    G_BA = GeneratorResNet(1, opt.ngf, opt.n_residual_blocks)
    D_A = Discriminator(1, opt.ndf)
    D_B = Discriminator(1, opt.ndf)
    for net in (G_AB, G_BA, D_A, D_B):
        net.apply(weights_init_normal)

    optimizer_G = torch.optim.Adam(
        itertools.chain(G_AB.parameters(), G_BA.parameters()), lr=opt.lr, betas=(opt.b1, opt.b2)
    )
    optimizer_D_A = torch.optim.Adam(D_A.parameters(), lr=opt.lr, betas=(opt.b1, opt.b2))
    optimizer_D_B = torch.optim.Adam(D_B.parameters(), lr=opt.lr, betas=(opt.b1, opt.b2))

    lr_scheduler_G = torch.optim.lr_scheduler.LambdaLR(
        optimizer_G, lr_lambda=LambdaLR(opt.n_epochs, 0, opt.decay_epoch).step
    )
    lr_scheduler_D_A = torch.optim.lr_scheduler.LambdaLR(
        optimizer_D_A, lr_lambda=LambdaLR(opt.n_epochs, 0, opt.decay_epoch).step
    )
    lr_scheduler_D_B = torch.optim.lr_scheduler.LambdaLR(
        optimizer_D_B, lr_lambda=LambdaLR(opt.n_epochs, 0, opt.decay_epoch).step
    )

    fake_A_buffer = ReplayBuffer()
    fake_B_buffer = ReplayBuffer()

    dataloader = DataLoader(
        UnalignedDataset(train_a, train_b), batch_size=opt.batch_size, shuffle=True, drop_last=True
    )

    for epoch in range(opt.n_epochs):
        for i, batch in enumerate(dataloader):
            real_A = batch["A"]
            real_B = batch["B"]

            # Adversarial ground truths
            valid = torch.ones((real_A.size(0), *D_A.output_shape))
            fake = torch.zeros((real_A.size(0), *D_A.output_shape))

            # ------------------
            #  Train Generators
            # ------------------
            G_AB.train()
            G_BA.train()
            optimizer_G.zero_grad()

            # Identity loss
            loss_id_A = criterion_identity(G_BA(real_A), real_A)
            loss_id_B = criterion_identity(G_AB(real_B), real_B)
            loss_identity = (loss_id_A + loss_id_B) / 2

            # GAN loss
            fake_B = G_AB(real_A)
            loss_GAN_AB = criterion_GAN(D_B(fake_B), valid)
            fake_A = G_BA(real_B)
            loss_GAN_BA = criterion_GAN(D_A(fake_A), valid)
            loss_GAN = (loss_GAN_AB + loss_GAN_BA) / 2

            # Cycle loss
            recov_A = G_BA(fake_B)
            loss_cycle_A = criterion_cycle(recov_A, real_A)
            recov_B = G_AB(fake_A)
            loss_cycle_B = criterion_cycle(recov_B, real_B)
            loss_cycle = (loss_cycle_A + loss_cycle_B) / 2

            # Total loss
            loss_G = loss_GAN + opt.lambda_cyc * loss_cycle + opt.lambda_id * loss_identity
            loss_G.backward()
            optimizer_G.step()

            # -----------------------
            #  Train Discriminator A
            # -----------------------
            optimizer_D_A.zero_grad()
            loss_real = criterion_GAN(D_A(real_A), valid)
            fake_A_ = fake_A_buffer.push_and_pop(fake_A)
            loss_fake = criterion_GAN(D_A(fake_A_.detach()), fake)
            loss_D_A = (loss_real + loss_fake) / 2
            loss_D_A.backward()
            optimizer_D_A.step()

            # -----------------------
            #  Train Discriminator B
            # -----------------------
            optimizer_D_B.zero_grad()
            loss_real = criterion_GAN(D_B(real_B), valid)
            fake_B_ = fake_B_buffer.push_and_pop(fake_B)
            loss_fake = criterion_GAN(D_B(fake_B_.detach()), fake)
            loss_D_B = (loss_real + loss_fake) / 2
            loss_D_B.backward()
            optimizer_D_B.step()

            loss_D = (loss_D_A + loss_D_B) / 2

            if i % 50 == 0:
                print(
                    f"[Epoch {epoch}/{opt.n_epochs}] [Batch {i}/{len(dataloader)}] "
                    f"[D loss: {loss_D.item():.4f}] [G loss: {loss_G.item():.4f}, "
                    f"adv: {loss_GAN.item():.4f}, cycle: {loss_cycle.item():.4f}, "
                    f"identity: {loss_identity.item():.4f}]"
                )

        # Update learning rates
        lr_scheduler_G.step()
        lr_scheduler_D_A.step()
        lr_scheduler_D_B.step()

        scores = evaluate(G_AB, G_BA, test_a, test_b)
        print(
            f"epoch {epoch}: test L1 A->B {scores['l1_ab']:.3f}, B->A {scores['l1_ba']:.3f}; "
            f"IoU A->B {scores['iou_ab']:.3f}, B->A {scores['iou_ba']:.3f}"
        )

    scores = evaluate(G_AB, G_BA, test_a, test_b)
    print(
        f"final: L1 to the true counterpart A->B {scores['l1_ab']:.3f}, "
        f"B->A {scores['l1_ba']:.3f} (untranslated {scores['l1_none']:.3f})"
    )
    print(
        f"final: foreground IoU with the true counterpart A->B {scores['iou_ab']:.3f}, "
        f"B->A {scores['iou_ba']:.3f} (untranslated {scores['iou_none']:.3f})"
    )


if __name__ == "__main__":
    main()
