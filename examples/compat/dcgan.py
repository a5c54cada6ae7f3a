"""A DCGAN on generated 16x16 images: two optimisers, BatchNorm, BCELoss: healthy.

In the manner of the PyTorch DCGAN example: the "dataset" is 16x16 grey images of a
bright disc of random centre and radius on a dark background, scaled to [-1, 1]
and served by a ``DataLoader``. The generator is a stack of ``ConvTranspose2d`` +
``BatchNorm2d`` + ReLU ending in Tanh; the discriminator a stack of strided
``Conv2d`` + ``BatchNorm2d`` + LeakyReLU ending in a Sigmoid, both initialised by
``weights_init`` (N(0, 0.02), BatchNorm weights N(1, 0.02)). ``nn.BCELoss``, two
Adams (lr 2e-4, betas (0.5, 0.999)). Each iteration: (1) update D on a real batch
labelled 1 and a detached fake batch labelled 0, (2) update G so that D labels its
fakes 1. argparse, top-level loop. Prints both losses, D(x) and D(G(z)).

Healthy: nndoctor should report no warning and no error.

    python examples/compat/dcgan.py
    nndoctor check examples/compat/dcgan.py
"""

import argparse

import torch
import torch.nn as nn
import torch.optim as optim
from torch.utils.data import DataLoader, TensorDataset

parser = argparse.ArgumentParser()
parser.add_argument("--batchSize", type=int, default=64)
parser.add_argument("--nz", type=int, default=16, help="size of the latent z vector")
parser.add_argument("--ngf", type=int, default=32)
parser.add_argument("--ndf", type=int, default=32)
parser.add_argument("--niter", type=int, default=5, help="number of epochs to train for")
parser.add_argument("--lr", type=float, default=0.0002, help="learning rate, default=0.0002")
parser.add_argument("--beta1", type=float, default=0.5, help="beta1 for adam. default=0.5")
parser.add_argument("--seed", type=int, default=0, help="manual seed")
opt = parser.parse_args()
torch.manual_seed(opt.seed)


def discs(n: int, size: int = 16) -> torch.Tensor:
    """n images of one bright disc each, in [-1, 1]."""
    coords = torch.arange(size).float()
    cy, cx = torch.rand(n, 1, 1) * 8 + 4, torch.rand(n, 1, 1) * 8 + 4
    radius = torch.rand(n, 1, 1) * 2.5 + 2
    dist = ((coords.view(1, -1, 1) - cy) ** 2 + (coords.view(1, 1, -1) - cx) ** 2).sqrt()
    image = torch.sigmoid(3 * (radius - dist))
    return (image * 2 - 1).unsqueeze(1)


dataset = TensorDataset(discs(4096))
dataloader = DataLoader(dataset, batch_size=opt.batchSize, shuffle=True, drop_last=True)
nz, ngf, ndf, nc = opt.nz, opt.ngf, opt.ndf, 1


# custom weights initialization called on netG and netD
def weights_init(m):
    classname = m.__class__.__name__
    if classname.find("Conv") != -1:
        torch.nn.init.normal_(m.weight, 0.0, 0.02)
    elif classname.find("BatchNorm") != -1:
        torch.nn.init.normal_(m.weight, 1.0, 0.02)
        torch.nn.init.zeros_(m.bias)


class Generator(nn.Module):
    def __init__(self):
        super().__init__()
        self.main = nn.Sequential(
            # input is Z, going into a convolution
            nn.ConvTranspose2d(nz, ngf * 2, 4, 1, 0, bias=False),
            nn.BatchNorm2d(ngf * 2),
            nn.ReLU(True),
            # state size. (ngf*2) x 4 x 4
            nn.ConvTranspose2d(ngf * 2, ngf, 4, 2, 1, bias=False),
            nn.BatchNorm2d(ngf),
            nn.ReLU(True),
            # state size. (ngf) x 8 x 8
            nn.ConvTranspose2d(ngf, nc, 4, 2, 1, bias=False),
            nn.Tanh(),
            # state size. (nc) x 16 x 16
        )

    def forward(self, input):
        return self.main(input)


class Discriminator(nn.Module):
    def __init__(self):
        super().__init__()
        self.main = nn.Sequential(
            # input is (nc) x 16 x 16
            nn.Conv2d(nc, ndf, 4, 2, 1, bias=False),
            nn.LeakyReLU(0.2, inplace=True),
            # state size. (ndf) x 8 x 8
            nn.Conv2d(ndf, ndf * 2, 4, 2, 1, bias=False),
            nn.BatchNorm2d(ndf * 2),
            nn.LeakyReLU(0.2, inplace=True),
            # state size. (ndf*2) x 4 x 4
            nn.Conv2d(ndf * 2, 1, 4, 1, 0, bias=False),
            nn.Sigmoid(),
        )

    def forward(self, input):
        return self.main(input).view(-1, 1).squeeze(1)


netG = Generator()
netG.apply(weights_init)
netD = Discriminator()
netD.apply(weights_init)

criterion = nn.BCELoss()
real_label = 1.0
fake_label = 0.0

# setup optimizer
optimizerD = optim.Adam(netD.parameters(), lr=opt.lr, betas=(opt.beta1, 0.999))
optimizerG = optim.Adam(netG.parameters(), lr=opt.lr, betas=(opt.beta1, 0.999))

for epoch in range(opt.niter):
    for (real_cpu,) in dataloader:
        ############################
        # (1) Update D network: maximize log(D(x)) + log(1 - D(G(z)))
        ###########################
        # train with real
        netD.zero_grad()
        batch_size = real_cpu.size(0)
        label = torch.full((batch_size,), real_label, dtype=real_cpu.dtype)

        output = netD(real_cpu)
        errD_real = criterion(output, label)
        errD_real.backward()
        D_x = output.mean().item()

        # train with fake
        noise = torch.randn(batch_size, nz, 1, 1)
        fake = netG(noise)
        label.fill_(fake_label)
        output = netD(fake.detach())
        errD_fake = criterion(output, label)
        errD_fake.backward()
        D_G_z1 = output.mean().item()
        errD = errD_real + errD_fake
        optimizerD.step()

        ############################
        # (2) Update G network: maximize log(D(G(z)))
        ###########################
        netG.zero_grad()
        label.fill_(real_label)  # fake labels are real for generator cost
        output = netD(fake)
        errG = criterion(output, label)
        errG.backward()
        D_G_z2 = output.mean().item()
        optimizerG.step()

    print(f"[{epoch}/{opt.niter}] Loss_D: {errD.item():.4f} Loss_G: {errG.item():.4f} "
          f"D(x): {D_x:.4f} D(G(z)): {D_G_z1:.4f} / {D_G_z2:.4f}")
with torch.no_grad():
    sample = netG(torch.randn(256, nz, 1, 1))
    print(f"generated images: mean {sample.mean():.3f} (real {dataset.tensors[0].mean():.3f}), "
          f"pixels above 0: {(sample > 0).float().mean():.3f} (real {(dataset.tensors[0] > 0).float().mean():.3f})")
