"""Co-teaching of two small CNNs on glyphs with corrupted training labels: healthy.

In the manner of the authors' ``Co-teaching`` repository (Han et al. 2018, ``main.py``,
``loss.py`` and ``data/utils.py``): the data are generated 12x12 glyphs of 10 classes, each
class a template of three random strokes, drawn shifted by up to one pixel, with a random
stroke intensity, one random distractor stroke and Gaussian pixel noise (std 0.3),
standardised with the training mean and std; 3,000 training and 2,000 test images. The
training labels are corrupted once by ``noisify_multiclass_symmetric`` (a transition matrix
with 1 - 0.45 on the diagonal: a label is replaced by one of the 9 other classes with
probability 0.45); the clean labels are kept only for ``noise_or_not``, and the test set
keeps its clean labels. The ``Dataset`` returns ``(img, noisy_label, index)``.

``CNN`` is a small BatchNorm / LeakyReLU convolutional network (three 3x3 convolutions, the
second strided, global average pooling, a linear head), without dropout. Two of them are
trained together: each computes its per-sample cross-entropy on the batch
(``reduction="none"``), sorts it with ``np.argsort`` and keeps the ``1 - forget_rate``
fraction with the smallest loss; each network is then updated on the samples its *peer*
selected (``loss_coteaching``, the summed loss divided by ``num_remember``). The forget rate
is ramped linearly from 0 to 0.45 over the first 10 epochs (``rate_schedule``). Adam
(lr 1e-3) whose learning rate and betas are set by hand at the start of every epoch from
``alpha_plan`` / ``beta1_plan``: from epoch 15 of 30 the rate decays linearly towards 0 and
beta1 drops from 0.9 to 0.1, as in the repository. A third, "standard" network with the
same architecture and schedule is trained on all the noisy labels for comparison (it
memorises them: its clean test accuracy falls back after a peak). Top-level functions and
``main()`` with argparse; prints per epoch the training accuracy on the noisy labels, the
label precision ("pure ratio", share of clean labels) of the samples each network selected
and the clean test accuracy of the three networks; at the end the test accuracy of both
co-taught networks and the label precision against the standard network and chance (10%).
The noisy training labels are the point of the method, not a bug.

Healthy: nndoctor should report no warning and no error.

    python examples/wild/coteaching_noisy.py
    nndoctor check examples/wild/coteaching_noisy.py
"""

import argparse

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

# -----------------------------------------------------------------------------
# data: stroke glyphs with symmetric label noise


def draw_stroke(img, r0, c0, r1, c1, value):
    n = 2 * max(abs(r1 - r0), abs(c1 - c0)) + 1
    rr = np.clip(np.round(np.linspace(r0, r1, n)).astype(int), 0, img.shape[0] - 1)
    cc = np.clip(np.round(np.linspace(c0, c1, n)).astype(int), 0, img.shape[1] - 1)
    img[rr, cc] = np.maximum(img[rr, cc], value)


def random_stroke(rng, size):
    return rng.integers(1, size - 1, size=4)


def make_glyphs(rng, templates, n, size=12):
    labels = rng.integers(len(templates), size=n)
    images = np.zeros((n, 1, size, size), dtype=np.float32)
    for k in range(n):
        img = np.zeros((size + 2, size + 2), dtype=np.float32)
        value = rng.uniform(0.6, 1.0)
        for r0, c0, r1, c1 in templates[labels[k]]:
            draw_stroke(img, r0 + 1, c0 + 1, r1 + 1, c1 + 1, value)
        draw_stroke(img, *(random_stroke(rng, size) + 1), rng.uniform(0.3, 0.8))
        dr, dc = rng.integers(0, 3, size=2)
        images[k, 0] = img[dr : dr + size, dc : dc + size]
    images += rng.normal(0.0, 0.3, size=images.shape).astype(np.float32)
    return images, labels


def multiclass_noisify(y, P, random_state=0):
    """Flip the classes of y according to the transition matrix P (rows sum to 1)."""
    assert P.shape[0] == P.shape[1]
    assert np.allclose(P.sum(axis=1), 1.0)
    flipper = np.random.RandomState(random_state)
    new_y = y.copy()
    for idx in np.arange(y.shape[0]):
        i = y[idx]
        flipped = flipper.multinomial(1, P[i, :], 1)[0]
        new_y[idx] = np.where(flipped == 1)[0][0]
    return new_y


def noisify_multiclass_symmetric(y_train, noise, random_state=None, nb_classes=10):
    P = np.ones((nb_classes, nb_classes)) * (noise / (nb_classes - 1))
    np.fill_diagonal(P, 1.0 - noise)
    y_train_noisy = multiclass_noisify(y_train, P=P, random_state=random_state)
    actual_noise = (y_train_noisy != y_train).mean()
    print(f"Actual noise {actual_noise:.2f}")
    return y_train_noisy, actual_noise


class NoisyGlyphs(Dataset):
    def __init__(self, images, labels, noise_rate=0.0, random_state=0, nb_classes=10):
        self.data = torch.from_numpy(images)
        self.train_labels = labels
        if noise_rate > 0:
            self.train_noisy_labels, self.actual_noise_rate = noisify_multiclass_symmetric(
                labels, noise_rate, random_state=random_state, nb_classes=nb_classes
            )
        else:
            self.train_noisy_labels, self.actual_noise_rate = labels.copy(), 0.0
        self.noise_or_not = self.train_noisy_labels == self.train_labels

    def __getitem__(self, index):
        img, target = self.data[index], int(self.train_noisy_labels[index])
        return img, target, index

    def __len__(self):
        return len(self.data)


# -----------------------------------------------------------------------------
# model and loss


class CNN(nn.Module):
    def __init__(self, input_channel=1, n_outputs=10, momentum=0.1):
        super().__init__()
        self.c1 = nn.Conv2d(input_channel, 16, kernel_size=3, stride=1, padding=1)
        self.c2 = nn.Conv2d(16, 32, kernel_size=3, stride=2, padding=1)
        self.c3 = nn.Conv2d(32, 64, kernel_size=3, stride=1, padding=0)
        self.l_c1 = nn.Linear(64, n_outputs)
        self.bn1 = nn.BatchNorm2d(16, momentum=momentum)
        self.bn2 = nn.BatchNorm2d(32, momentum=momentum)
        self.bn3 = nn.BatchNorm2d(64, momentum=momentum)

    def forward(self, x):
        h = F.leaky_relu(self.bn1(self.c1(x)), negative_slope=0.01)
        h = F.leaky_relu(self.bn2(self.c2(h)), negative_slope=0.01)
        h = F.leaky_relu(self.bn3(self.c3(h)), negative_slope=0.01)
        h = F.avg_pool2d(h, kernel_size=h.shape[2])
        h = h.view(h.size(0), h.size(1))
        logit = self.l_c1(h)
        return logit


def loss_coteaching(y_1, y_2, t, forget_rate, ind, noise_or_not):
    loss_1 = F.cross_entropy(y_1, t, reduction="none")
    ind_1_sorted = np.argsort(loss_1.detach().numpy())
    loss_1_sorted = loss_1[ind_1_sorted]

    loss_2 = F.cross_entropy(y_2, t, reduction="none")
    ind_2_sorted = np.argsort(loss_2.detach().numpy())

    remember_rate = 1 - forget_rate
    num_remember = int(remember_rate * len(loss_1_sorted))

    pure_ratio_1 = np.sum(noise_or_not[ind[ind_1_sorted[:num_remember]]]) / float(num_remember)
    pure_ratio_2 = np.sum(noise_or_not[ind[ind_2_sorted[:num_remember]]]) / float(num_remember)

    ind_1_update = ind_1_sorted[:num_remember]
    ind_2_update = ind_2_sorted[:num_remember]
    # exchange: each network learns from the samples its peer found clean
    loss_1_update = F.cross_entropy(y_1[ind_2_update], t[ind_2_update], reduction="sum")
    loss_2_update = F.cross_entropy(y_2[ind_1_update], t[ind_1_update], reduction="sum")

    return loss_1_update / num_remember, loss_2_update / num_remember, pure_ratio_1, pure_ratio_2


def accuracy(logit, target):
    return (logit.argmax(1) == target).float().mean().item() * 100


# -----------------------------------------------------------------------------
# training


def adjust_learning_rate(optimizer, epoch, alpha_plan, beta1_plan):
    for param_group in optimizer.param_groups:
        param_group["lr"] = alpha_plan[epoch]
        param_group["betas"] = (beta1_plan[epoch], 0.999)  # only change beta1


def train(
    train_loader,
    epoch,
    model1,
    optimizer1,
    model2,
    optimizer2,
    standard,
    optimizer3,
    rate_schedule,
    noise_or_not,
):
    model1.train()
    model2.train()
    standard.train()
    pure_ratio_1_list, pure_ratio_2_list = [], []
    train_total, train_correct, train_correct2, train_correct3 = 0, 0.0, 0.0, 0.0
    for images, labels, indexes in train_loader:
        ind = indexes.numpy().transpose()

        logits1 = model1(images)
        logits2 = model2(images)
        train_total += 1
        train_correct += accuracy(logits1, labels)
        train_correct2 += accuracy(logits2, labels)

        loss_1, loss_2, pure_ratio_1, pure_ratio_2 = loss_coteaching(
            logits1, logits2, labels, rate_schedule[epoch], ind, noise_or_not
        )
        pure_ratio_1_list.append(100 * pure_ratio_1)
        pure_ratio_2_list.append(100 * pure_ratio_2)

        optimizer1.zero_grad()
        loss_1.backward()
        optimizer1.step()
        optimizer2.zero_grad()
        loss_2.backward()
        optimizer2.step()

        # the standard network sees every noisy label
        logits3 = standard(images)
        train_correct3 += accuracy(logits3, labels)
        loss_3 = F.cross_entropy(logits3, labels)
        optimizer3.zero_grad()
        loss_3.backward()
        optimizer3.step()

    return (
        train_correct / train_total,
        train_correct2 / train_total,
        train_correct3 / train_total,
        float(np.mean(pure_ratio_1_list)),
        float(np.mean(pure_ratio_2_list)),
        loss_1.item(),
        loss_3.item(),
    )


@torch.no_grad()
def evaluate(test_loader, *models):
    accs = []
    for model in models:
        model.eval()
        correct, total = 0, 0
        for images, labels, _ in test_loader:
            pred = model(images).argmax(1)
            total += labels.size(0)
            correct += (pred == labels).sum().item()
        accs.append(100 * float(correct) / float(total))
    return accs


def main():
    parser = argparse.ArgumentParser(description="Co-teaching on noisy glyph labels")
    parser.add_argument("--lr", type=float, default=0.001)
    parser.add_argument("--noise_rate", type=float, default=0.45, help="corruption rate")
    parser.add_argument("--forget_rate", type=float, default=None)
    parser.add_argument("--noise_type", type=str, default="symmetric", choices=["symmetric"])
    parser.add_argument("--num_gradual", type=int, default=10, help="T_k in the paper")
    parser.add_argument("--exponent", type=float, default=1, help="c in the paper")
    parser.add_argument("--n_epoch", type=int, default=30)
    parser.add_argument("--epoch_decay_start", type=int, default=15)
    parser.add_argument("--batch_size", type=int, default=128)
    parser.add_argument("--n_train", type=int, default=3000)
    parser.add_argument("--n_test", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    rng = np.random.default_rng(args.seed)

    # data
    templates = [[random_stroke(rng, 12) for _ in range(3)] for _ in range(10)]
    train_x, train_y = make_glyphs(rng, templates, args.n_train)
    test_x, test_y = make_glyphs(rng, templates, args.n_test)
    mean, std = train_x.mean(), train_x.std()
    train_x, test_x = (train_x - mean) / std, (test_x - mean) / std
    train_dataset = NoisyGlyphs(
        train_x, train_y, noise_rate=args.noise_rate, random_state=args.seed
    )
    test_dataset = NoisyGlyphs(test_x, test_y)
    noise_or_not = train_dataset.noise_or_not

    forget_rate = args.noise_rate if args.forget_rate is None else args.forget_rate

    # Adjust learning rate and betas for the Adam optimizer
    mom1, mom2 = 0.9, 0.1
    alpha_plan = [args.lr] * args.n_epoch
    beta1_plan = [mom1] * args.n_epoch
    for i in range(args.epoch_decay_start, args.n_epoch):
        alpha_plan[i] = float(args.n_epoch - i) / (args.n_epoch - args.epoch_decay_start) * args.lr
        beta1_plan[i] = mom2

    # define drop rate schedule
    rate_schedule = np.ones(args.n_epoch) * forget_rate
    rate_schedule[: args.num_gradual] = np.linspace(0, forget_rate**args.exponent, args.num_gradual)

    g = torch.Generator().manual_seed(args.seed)
    train_loader = DataLoader(
        train_dataset, batch_size=args.batch_size, shuffle=True, drop_last=True, generator=g
    )
    test_loader = DataLoader(test_dataset, batch_size=512, shuffle=False)

    print("building model...")
    cnn1 = CNN(input_channel=1, n_outputs=10)
    optimizer1 = torch.optim.Adam(cnn1.parameters(), lr=args.lr)
    cnn2 = CNN(input_channel=1, n_outputs=10)
    optimizer2 = torch.optim.Adam(cnn2.parameters(), lr=args.lr)
    standard = CNN(input_channel=1, n_outputs=10)
    optimizer3 = torch.optim.Adam(standard.parameters(), lr=args.lr)

    test_acc1, test_acc2, test_acc3 = evaluate(test_loader, cnn1, cnn2, standard)
    print(
        f"Epoch [0/{args.n_epoch}] Test Accuracy on the {len(test_dataset)} test images: "
        f"Model1 {test_acc1:.2f} % Model2 {test_acc2:.2f} % Standard {test_acc3:.2f} %"
    )

    for epoch in range(args.n_epoch):
        adjust_learning_rate(optimizer1, epoch, alpha_plan, beta1_plan)
        adjust_learning_rate(optimizer2, epoch, alpha_plan, beta1_plan)
        adjust_learning_rate(optimizer3, epoch, alpha_plan, beta1_plan)
        train_acc1, train_acc2, train_acc3, pure_1, pure_2, loss_1, loss_3 = train(
            train_loader,
            epoch,
            cnn1,
            optimizer1,
            cnn2,
            optimizer2,
            standard,
            optimizer3,
            rate_schedule,
            noise_or_not,
        )
        test_acc1, test_acc2, test_acc3 = evaluate(test_loader, cnn1, cnn2, standard)
        print(
            f"Epoch [{epoch + 1}/{args.n_epoch}] forget {rate_schedule[epoch]:.2f} "
            f"loss1 {loss_1:.3f} loss3 {loss_3:.3f} | train acc (noisy) {train_acc1:.1f} / "
            f"{train_acc2:.1f} / {train_acc3:.1f} % | pure ratio {pure_1:.1f} / {pure_2:.1f} % "
            f"| test acc {test_acc1:.2f} / {test_acc2:.2f} / standard {test_acc3:.2f} %"
        )

    print(
        f"Final test accuracy (clean labels): co-teaching model1 {test_acc1:.2f} %, "
        f"model2 {test_acc2:.2f} % | label precision of the selected samples {pure_1:.1f} / "
        f"{pure_2:.1f} % (noise rate {train_dataset.actual_noise_rate:.2f}) | standard "
        f"network on all noisy labels {test_acc3:.2f} % | chance 10.00 %"
    )


if __name__ == "__main__":
    main()
