"""Gatys et al. neural style transfer optimised by L-BFGS through a frozen CNN: healthy.

In the manner of the PyTorch tutorial ``neural_style_tutorial.py`` (Gatys, Ecker and
Bethge, "A Neural Algorithm of Artistic Style"), without torchvision: the feature network
is a small VGG-like stack (four Conv-BatchNorm-ReLU blocks, max pooling after the second
and the fourth) that the script first trains for 300 Adam steps on a generated texture
classification task (six classes of 24x24 textures: horizontal, vertical and the two
diagonal stripes, checkerboards and dot grids, of random period, phase and colours, with
noise), then freezes: ``cnn.eval()`` and ``requires_grad_(False)``. A ``Normalization``
module with the texture set's channel mean and std comes first, as the tutorial's
ImageNet normalisation does.

The content image (3x64x64) is a disc, a square and a triangle of different colours on a
soft two-tone background; the style image is a colourful texture of diagonal stripes over
a checkerboard. As in the tutorial, ``get_style_model_and_losses`` walks the CNN's
children, renames them (``conv_i``, ``bn_i``, ``relu_i``, ``pool_i``), and inserts a
``ContentLoss`` (MSE to the detached content features) after ``conv_3`` and a
``StyleLoss`` (MSE between Gram matrices normalised by the number of elements) after
``conv_1`` ... ``conv_4``, then trims the layers after the last loss. The input image is a
clone of the content image optimised with ``optim.LBFGS([input_img])``; each ``closure()``
clamps the image to [0, 1] under ``no_grad``, zeroes the gradients, runs the model and
returns the weighted loss (style weight 1e6, content weight 1), for 300 closure
evaluations. Top-level functions and ``main()`` with argparse; prints the texture
classifier's accuracy, the style and content losses every 50 evaluations, and a final
comparison of the output with the unoptimised content image (style loss reduced by a
factor, content loss still small).

Healthy: nndoctor should report no warning and no error.

    python examples/wild/neural_style_lbfgs.py
    nndoctor check examples/wild/neural_style_lbfgs.py
"""

import argparse

import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.optim as optim

N_TEXTURES = 6


def make_textures(n, size, g):
    """Random textures of six classes, with their labels."""
    ys, xs = torch.meshgrid(torch.arange(size).float(), torch.arange(size).float(), indexing="ij")
    labels = torch.randint(0, N_TEXTURES, (n,), generator=g)
    period = 4 + 6 * torch.rand(n, 1, 1, generator=g)
    phase = 2 * torch.pi * torch.rand(n, 1, 1, generator=g)
    freq = 2 * torch.pi / period
    patterns = torch.stack(
        [
            torch.sin(freq * ys + phase),  # horizontal stripes
            torch.sin(freq * xs + phase),  # vertical stripes
            torch.sin(freq * (xs + ys) / 1.414 + phase),  # diagonal
            torch.sin(freq * (xs - ys) / 1.414 + phase),  # anti-diagonal
            torch.sin(freq * xs + phase) * torch.sin(freq * ys + phase),  # checkerboard
            torch.cos(freq * xs + phase) + torch.cos(freq * ys + phase) - 1.0,  # dots
        ],
        dim=1,
    )
    mask = (patterns[torch.arange(n), labels] > 0).float()[:, None]
    colour_a = torch.rand(n, 3, 1, 1, generator=g)
    colour_b = torch.rand(n, 3, 1, 1, generator=g)
    noise = 0.08 * torch.randn(n, 3, size, size, generator=g)
    images = (mask * colour_a + (1 - mask) * colour_b + noise).clamp(0, 1)
    return images, labels


def make_content_image(size=64):
    ys, xs = torch.meshgrid(torch.arange(size).float(), torch.arange(size).float(), indexing="ij")
    img = torch.empty(3, size, size)
    top = torch.tensor([0.75, 0.85, 0.95])[:, None, None]
    bottom = torch.tensor([0.55, 0.75, 0.45])[:, None, None]
    t = (ys / size)[None]
    img[:] = (1 - t) * top + t * bottom
    disc = ((ys - 20) ** 2 + (xs - 18) ** 2) <= 11**2
    square = ((ys - 42).abs() <= 10) & ((xs - 44).abs() <= 10)
    triangle = (ys >= 36) & (ys <= 58) & ((xs - 16).abs() <= (ys - 36) * 0.6)
    for shape, colour in (
        (disc, (0.9, 0.2, 0.1)),
        (square, (0.1, 0.3, 0.8)),
        (triangle, (0.95, 0.8, 0.1)),
    ):
        img[:, shape] = torch.tensor(colour)[:, None]
    return img[None]


def make_style_image(size=64):
    ys, xs = torch.meshgrid(torch.arange(size).float(), torch.arange(size).float(), indexing="ij")
    stripes = (torch.sin(2 * torch.pi * (xs + ys) / 9) > 0).float()
    checker = (
        (torch.div(xs, 8, rounding_mode="floor") + torch.div(ys, 8, rounding_mode="floor")) % 2
    ).float()
    c1 = torch.tensor([0.95, 0.6, 0.1])[:, None, None]
    c2 = torch.tensor([0.2, 0.1, 0.5])[:, None, None]
    c3 = torch.tensor([0.1, 0.7, 0.6])[:, None, None]
    img = stripes * c1 + (1 - stripes) * (checker * c2 + (1 - checker) * c3)
    return img[None]


class TextureNet(nn.Module):
    def __init__(self):
        super().__init__()

        def block(c_in, c_out):
            return [nn.Conv2d(c_in, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU()]

        self.features = nn.Sequential(
            *block(3, 16),
            *block(16, 16),
            nn.MaxPool2d(2),
            *block(16, 32),
            *block(32, 32),
            nn.MaxPool2d(2),
        )
        self.classifier = nn.Linear(32, N_TEXTURES)

    def forward(self, x):
        return self.classifier(self.features(x).mean(dim=(2, 3)))


def pretrain_feature_net(g, steps=300, batch_size=32):
    """Train the feature network on generated textures; return it and the input statistics."""
    x_train, y_train = make_textures(4000, 24, g)
    x_test, y_test = make_textures(1000, 24, g)
    mean = x_train.mean(dim=(0, 2, 3))
    std = x_train.std(dim=(0, 2, 3))
    norm = Normalization(mean, std)

    net = TextureNet()
    optimizer = optim.Adam(net.parameters(), lr=3e-3)
    net.train()
    for step in range(1, steps + 1):
        idx = torch.randint(0, len(x_train), (batch_size,), generator=g)
        loss = F.cross_entropy(net(norm(x_train[idx])), y_train[idx])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step % 100 == 0:
            print(f"pretrain step {step}  loss {loss.item():.3f}")
    net.eval()
    with torch.no_grad():
        acc = (net(norm(x_test)).argmax(dim=1) == y_test).float().mean().item()
    print(f"texture classifier test accuracy {acc:.3f} (chance {1 / N_TEXTURES:.3f})")
    return net, mean, std


class Normalization(nn.Module):
    def __init__(self, mean, std):
        super().__init__()
        self.mean = mean.clone().view(-1, 1, 1)
        self.std = std.clone().view(-1, 1, 1)

    def forward(self, img):
        return (img - self.mean) / self.std


class ContentLoss(nn.Module):
    def __init__(self, target):
        super().__init__()
        self.target = target.detach()

    def forward(self, input):
        self.loss = F.mse_loss(input, self.target)
        return input


def gram_matrix(input):
    a, b, c, d = input.size()  # a=batch size, b=number of feature maps, (c,d)=dimensions
    features = input.view(a * b, c * d)
    G = torch.mm(features, features.t())
    return G.div(a * b * c * d)


class StyleLoss(nn.Module):
    def __init__(self, target_feature):
        super().__init__()
        self.target = gram_matrix(target_feature).detach()

    def forward(self, input):
        G = gram_matrix(input)
        self.loss = F.mse_loss(G, self.target)
        return input


content_layers_default = ["conv_3"]
style_layers_default = ["conv_1", "conv_2", "conv_3", "conv_4"]


def get_style_model_and_losses(
    cnn,
    normalization_mean,
    normalization_std,
    style_img,
    content_img,
    content_layers=content_layers_default,
    style_layers=style_layers_default,
):
    normalization = Normalization(normalization_mean, normalization_std)
    content_losses = []
    style_losses = []
    model = nn.Sequential(normalization)

    i = 0
    for layer in cnn.children():
        if isinstance(layer, nn.Conv2d):
            i += 1
            name = f"conv_{i}"
        elif isinstance(layer, nn.ReLU):
            name = f"relu_{i}"
            layer = nn.ReLU(inplace=False)
        elif isinstance(layer, nn.MaxPool2d):
            name = f"pool_{i}"
        elif isinstance(layer, nn.BatchNorm2d):
            name = f"bn_{i}"
        else:
            raise RuntimeError(f"Unrecognized layer: {layer.__class__.__name__}")

        model.add_module(name, layer)

        if name in content_layers:
            target = model(content_img).detach()
            content_loss = ContentLoss(target)
            model.add_module(f"content_loss_{i}", content_loss)
            content_losses.append(content_loss)

        if name in style_layers:
            target_feature = model(style_img).detach()
            style_loss = StyleLoss(target_feature)
            model.add_module(f"style_loss_{i}", style_loss)
            style_losses.append(style_loss)

    for i in range(len(model) - 1, -1, -1):
        if isinstance(model[i], ContentLoss) or isinstance(model[i], StyleLoss):
            break
    model = model[: (i + 1)]
    return model, style_losses, content_losses


def run_style_transfer(
    cnn,
    normalization_mean,
    normalization_std,
    content_img,
    style_img,
    input_img,
    num_steps=300,
    style_weight=1000000,
    content_weight=1,
):
    print("Building the style transfer model..")
    model, style_losses, content_losses = get_style_model_and_losses(
        cnn, normalization_mean, normalization_std, style_img, content_img
    )
    input_img.requires_grad_(True)
    model.eval()
    model.requires_grad_(False)
    optimizer = optim.LBFGS([input_img])

    print("Optimizing..")
    run = [0]
    while run[0] <= num_steps:

        def closure():
            with torch.no_grad():
                input_img.clamp_(0, 1)

            optimizer.zero_grad()
            model(input_img)
            style_score = 0
            content_score = 0

            for sl in style_losses:
                style_score += sl.loss
            for cl in content_losses:
                content_score += cl.loss

            style_score *= style_weight
            content_score *= content_weight

            loss = style_score + content_score
            loss.backward()

            run[0] += 1
            if run[0] % 50 == 0:
                print(
                    f"run {run[0]}:  Style Loss : {style_score.item():4f} "
                    f"Content Loss: {content_score.item():4f}"
                )
            return style_score + content_score

        optimizer.step(closure)

    with torch.no_grad():
        input_img.clamp_(0, 1)
    return input_img, model, style_losses, content_losses


@torch.no_grad()
def weighted_losses(model, style_losses, content_losses, img, style_weight, content_weight):
    model(img)
    style = style_weight * sum(sl.loss for sl in style_losses).item()
    content = content_weight * sum(cl.loss for cl in content_losses).item()
    return style, content


def main():
    parser = argparse.ArgumentParser(description="Neural style transfer with L-BFGS")
    parser.add_argument("--num-steps", type=int, default=300)
    parser.add_argument("--style-weight", type=float, default=1e6)
    parser.add_argument("--content-weight", type=float, default=1.0)
    parser.add_argument("--pretrain-steps", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    g = torch.Generator().manual_seed(args.seed)
    net, cnn_normalization_mean, cnn_normalization_std = pretrain_feature_net(
        g, steps=args.pretrain_steps
    )
    cnn = net.features.eval()
    cnn.requires_grad_(False)

    content_img = make_content_image()
    style_img = make_style_image()
    assert style_img.size() == content_img.size(), "style and content must have the same size"
    input_img = content_img.clone()

    output, model, style_losses, content_losses = run_style_transfer(
        cnn,
        cnn_normalization_mean,
        cnn_normalization_std,
        content_img,
        style_img,
        input_img,
        num_steps=args.num_steps,
        style_weight=args.style_weight,
        content_weight=args.content_weight,
    )

    style_0, content_0 = weighted_losses(
        model, style_losses, content_losses, content_img, args.style_weight, args.content_weight
    )
    style_1, content_1 = weighted_losses(
        model, style_losses, content_losses, output, args.style_weight, args.content_weight
    )
    print(f"final: content image  style loss {style_0:.3f}  content loss {content_0:.3f}")
    print(f"final: output image   style loss {style_1:.3f}  content loss {content_1:.3f}")
    print(f"final: style loss reduced by a factor {style_0 / max(style_1, 1e-12):.1f}")


if __name__ == "__main__":
    main()
