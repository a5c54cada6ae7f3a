"""2-D keypoint detection by heatmap regression on generated stick figures: healthy.

In the manner of "Simple Baselines for Human Pose Estimation and Tracking" (the
``pose_resnet`` code) and the stacked-hourglass PyTorch repositories, scaled down: the
images are 32x32 grey pictures of a stick figure facing the viewer (a head, a torso,
two arms and two legs at random angles, a random lean, size, position and brightness)
over sensor noise and four stray strokes, with K = 5 keypoints: head, left and right
hand, left and right foot (the figure's left is on the image's right, as in COCO).
``KeypointDataset`` keeps the images and joint coordinates; in training its
``__getitem__`` flips the image horizontally with probability 0.5 and, as
``fliplr_joints`` does, mirrors the joints' x and swaps the left/right pairs; it then
renders the target the way ``generate_target`` does: one Gaussian heatmap (sigma 1 on
the 16x16 heatmap grid, the joint divided by the feature stride of 2) per joint, with a
``target_weight`` of 0 for a joint outside the heatmap. ``PoseNet`` (custom
``nn.Module``): a conv-BatchNorm-ReLU backbone down to 4x4, two
``ConvTranspose2d(k=4, s=2)`` deconvolution layers back to 16x16 and a final 1x1 conv to
K heatmaps, initialised as in the reference (normal std 0.001 for the deconvolutions
and the final layer). ``JointsMSELoss`` is the reference's per-joint
``0.5 * MSELoss`` on heatmaps multiplied by the target weight. Adam (lr 1e-3) with
``MultiStepLR`` per epoch; ``DataLoader`` with shuffling; ``main()`` with argparse.
Evaluation decodes each heatmap by its argmax (``get_max_preds``) with the quarter-pixel
shift toward the higher neighbour, scales back to the image and reports PCK@0.1 (a
joint is correct within 0.1 of the figure's bounding-box size) on a validation set,
printed with the training loss every epoch.

Healthy: nndoctor should report no warning and no error.

    python examples/wild/keypoint_heatmaps.py
    nndoctor check examples/wild/keypoint_heatmaps.py
"""

import argparse

import torch
import torch.nn as nn
from torch.utils.data import DataLoader, Dataset

JOINTS = ("head", "l_hand", "r_hand", "l_foot", "r_foot")
FLIP_PAIRS = ((1, 2), (3, 4))
IMAGE_SIZE = 32
HEATMAP_SIZE = 16


def _segments_to_image(starts, ends, size):
    """Anti-aliased strokes about 1.5 px wide: (n, S, 2) endpoints -> (n, size, size)."""
    ys, xs = torch.meshgrid(torch.arange(size).float(), torch.arange(size).float(), indexing="ij")
    pix = torch.stack([xs, ys], -1).view(1, 1, -1, 2)
    a, b = starts.unsqueeze(2), ends.unsqueeze(2)
    ab = b - a
    t = (((pix - a) * ab).sum(-1) / (ab**2).sum(-1).clamp_min(1e-6)).clamp(0, 1)
    dist = (pix - (a + t.unsqueeze(-1) * ab)).norm(dim=-1)
    ink = (1.3 - dist).clamp(0, 1).amax(dim=1)
    return ink.view(-1, size, size)


def make_figures(n, g):
    """Stick figures and their joints (x, y) in pixels, in the order of JOINTS."""

    def u(lo, hi):
        return lo + (hi - lo) * torch.rand(n, generator=g)

    def polar(length, angle):  # angle from straight down, positive toward the image's right
        return torch.stack([length * torch.sin(angle), length * torch.cos(angle)], -1)

    scale = u(0.8, 1.1)
    hip = torch.stack([u(12.5, 19.5), u(17.0, 20.5)], -1)
    lean = u(-0.25, 0.25)
    up = torch.stack([torch.sin(lean), -torch.cos(lean)], -1)
    neck = hip + (7.0 * scale)[:, None] * up
    head = neck + (3.5 * scale)[:, None] * up
    side = torch.stack([1.8 * scale, torch.zeros(n)], -1)
    l_shoulder, r_shoulder = neck + side, neck - side
    l_hand = l_shoulder + polar(6.0 * scale, u(0.3, 2.5))
    r_hand = r_shoulder + polar(6.0 * scale, -u(0.3, 2.5))
    l_hip, r_hip = hip + 0.7 * side, hip - 0.7 * side
    l_foot = l_hip + polar(8.0 * scale, u(0.05, 0.6))
    r_foot = r_hip + polar(8.0 * scale, -u(0.05, 0.6))

    starts = torch.stack([neck, r_shoulder, l_shoulder, r_shoulder, r_hip, l_hip, r_hip], 1)
    ends = torch.stack([hip, l_shoulder, l_hand, r_hand, l_hip, l_foot, r_foot], 1)
    # stray strokes that are not part of any figure
    c = torch.rand(n, 4, 2, generator=g) * IMAGE_SIZE
    stray_end = c + 5.0 * torch.randn(n, 4, 2, generator=g)
    figure = _segments_to_image(starts, ends, IMAGE_SIZE)
    stray = _segments_to_image(c, stray_end, IMAGE_SIZE)

    ys, xs = torch.meshgrid(
        torch.arange(IMAGE_SIZE).float(), torch.arange(IMAGE_SIZE).float(), indexing="ij"
    )
    head_r = 2.0 * scale[:, None, None]
    head_d = ((xs - head[:, 0, None, None]) ** 2 + (ys - head[:, 1, None, None]) ** 2).sqrt()
    figure = torch.maximum(figure, (head_r + 0.5 - head_d).clamp(0, 1))

    images = torch.maximum(u(0.5, 1.0)[:, None, None] * figure, u(0.3, 0.8)[:, None, None] * stray)
    images = images + 0.2 * torch.randn(n, IMAGE_SIZE, IMAGE_SIZE, generator=g)
    joints = torch.stack([head, l_hand, r_hand, l_foot, r_foot], 1)
    return images.unsqueeze(1), joints


class KeypointDataset(Dataset):
    def __init__(self, images, joints, is_train, sigma=1.0):
        self.images, self.joints = images, joints
        self.is_train = is_train
        self.sigma = sigma
        self.num_joints = joints.shape[1]

    def __len__(self):
        return len(self.images)

    def fliplr_joints(self, joints):
        joints = joints.clone()
        joints[:, 0] = IMAGE_SIZE - joints[:, 0] - 1
        for a, b in FLIP_PAIRS:
            joints[[a, b]] = joints[[b, a]]
        return joints

    def generate_target(self, joints):
        target_weight = torch.ones(self.num_joints, 1)
        target = torch.zeros(self.num_joints, HEATMAP_SIZE, HEATMAP_SIZE)
        feat_stride = IMAGE_SIZE / HEATMAP_SIZE
        grid = torch.arange(HEATMAP_SIZE).float()
        for joint_id in range(self.num_joints):
            mu_x = joints[joint_id, 0].item() / feat_stride
            mu_y = joints[joint_id, 1].item() / feat_stride
            if not (0 <= mu_x < HEATMAP_SIZE and 0 <= mu_y < HEATMAP_SIZE):
                target_weight[joint_id] = 0
                continue
            gx = torch.exp(-((grid - mu_x) ** 2) / (2 * self.sigma**2))
            gy = torch.exp(-((grid - mu_y) ** 2) / (2 * self.sigma**2))
            target[joint_id] = gy[:, None] * gx[None, :]
        return target, target_weight

    def __getitem__(self, idx):
        image, joints = self.images[idx], self.joints[idx]
        if self.is_train and torch.rand(1).item() < 0.5:
            image = image.flip(-1)
            joints = self.fliplr_joints(joints)
        target, target_weight = self.generate_target(joints)
        return image, target, target_weight, joints


class PoseNet(nn.Module):
    def __init__(self, num_joints, width=16):
        super().__init__()

        def conv_bn(cin, cout, stride):
            return [
                nn.Conv2d(cin, cout, 3, stride, 1, bias=False),
                nn.BatchNorm2d(cout),
                nn.ReLU(inplace=True),
            ]

        self.backbone = nn.Sequential(
            *conv_bn(1, width, 1),
            *conv_bn(width, 2 * width, 2),  # 16x16
            *conv_bn(2 * width, 4 * width, 2),  # 8x8
            *conv_bn(4 * width, 4 * width, 1),
            *conv_bn(4 * width, 8 * width, 2),  # 4x4
        )
        layers, cin = [], 8 * width
        for _ in range(2):  # 4x4 -> 8x8 -> 16x16
            layers += [
                nn.ConvTranspose2d(cin, 4 * width, 4, stride=2, padding=1, bias=False),
                nn.BatchNorm2d(4 * width),
                nn.ReLU(inplace=True),
            ]
            cin = 4 * width
        self.deconv_layers = nn.Sequential(*layers)
        self.final_layer = nn.Conv2d(cin, num_joints, 1)
        self.init_weights()

    def init_weights(self):
        for m in self.deconv_layers.modules():
            if isinstance(m, nn.ConvTranspose2d):
                nn.init.normal_(m.weight, std=0.001)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)
        nn.init.normal_(self.final_layer.weight, std=0.001)
        nn.init.constant_(self.final_layer.bias, 0)

    def forward(self, x):
        return self.final_layer(self.deconv_layers(self.backbone(x)))


class JointsMSELoss(nn.Module):
    def __init__(self, use_target_weight=True):
        super().__init__()
        self.criterion = nn.MSELoss(reduction="mean")
        self.use_target_weight = use_target_weight

    def forward(self, output, target, target_weight):
        batch_size, num_joints = output.shape[:2]
        heatmaps_pred = output.reshape(batch_size, num_joints, -1).split(1, 1)
        heatmaps_gt = target.reshape(batch_size, num_joints, -1).split(1, 1)
        loss = 0
        for idx in range(num_joints):
            heatmap_pred = heatmaps_pred[idx].squeeze(1)
            heatmap_gt = heatmaps_gt[idx].squeeze(1)
            if self.use_target_weight:
                loss += 0.5 * self.criterion(
                    heatmap_pred.mul(target_weight[:, idx]), heatmap_gt.mul(target_weight[:, idx])
                )
            else:
                loss += 0.5 * self.criterion(heatmap_pred, heatmap_gt)
        return loss / num_joints


def get_max_preds(heatmaps):
    """(N, K, H, W) heatmaps -> (N, K, 2) argmax coordinates (x, y) and max values."""
    n, k, h, w = heatmaps.shape
    maxvals, idx = heatmaps.reshape(n, k, -1).max(dim=2)
    preds = torch.stack([idx % w, idx // w], -1).float()
    return preds * (maxvals > 0).unsqueeze(-1), maxvals


def get_final_preds(heatmaps):
    coords, _ = get_max_preds(heatmaps)
    h, w = heatmaps.shape[-2:]
    for n in range(coords.shape[0]):
        for k in range(coords.shape[1]):
            hm = heatmaps[n, k]
            px, py = int(coords[n, k, 0] + 0.5), int(coords[n, k, 1] + 0.5)
            if 1 < px < w - 1 and 1 < py < h - 1:
                diff = torch.stack(
                    [hm[py, px + 1] - hm[py, px - 1], hm[py + 1, px] - hm[py - 1, px]]
                )
                coords[n, k] += torch.sign(diff) * 0.25
    return coords * (IMAGE_SIZE / HEATMAP_SIZE)


@torch.no_grad()
def evaluate(model, loader, thr=0.1):
    model.eval()
    correct, total = torch.zeros(len(JOINTS)), 0
    for images, _, _, joints in loader:
        preds = get_final_preds(model(images))
        bbox = (joints.amax(dim=1) - joints.amin(dim=1)).amax(dim=1)  # (N,)
        dist = (preds - joints).norm(dim=-1)  # (N, K)
        correct += (dist <= thr * bbox[:, None]).float().sum(0)
        total += len(images)
    model.train()
    return correct / total


def main():
    parser = argparse.ArgumentParser(description="heatmap keypoint detection (Simple Baselines)")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--lr-step", type=int, nargs="+", default=[5, 7])
    parser.add_argument("--lr-factor", type=float, default=0.1)
    parser.add_argument("--n-train", type=int, default=2400)
    parser.add_argument("--n-val", type=int, default=400)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    g = torch.Generator().manual_seed(args.seed)
    chunks = [make_figures(200, g) for _ in range((args.n_train + args.n_val) // 200)]
    images, joints = torch.cat([c[0] for c in chunks]), torch.cat([c[1] for c in chunks])
    train_set = KeypointDataset(images[: args.n_train], joints[: args.n_train], is_train=True)
    val_set = KeypointDataset(images[args.n_train :], joints[args.n_train :], is_train=False)
    train_loader = DataLoader(train_set, batch_size=args.batch_size, shuffle=True, drop_last=True)
    val_loader = DataLoader(val_set, batch_size=100)

    model = PoseNet(len(JOINTS))
    criterion = JointsMSELoss(use_target_weight=True)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    lr_scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, args.lr_step, args.lr_factor)

    for epoch in range(args.epochs):
        model.train()
        running, batches = 0.0, 0
        for images, target, target_weight, _ in train_loader:
            output = model(images)
            loss = criterion(output, target, target_weight)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            running, batches = running + loss.item(), batches + 1
        lr_scheduler.step()
        pck = evaluate(model, val_loader)
        per_joint = " ".join(
            f"{name} {v:.2f}" for name, v in zip(JOINTS, pck.tolist(), strict=True)
        )
        print(
            f"epoch {epoch + 1:2d}: loss {running / batches:.6f}  "
            f"val PCK@0.1 {pck.mean():.3f} ({per_joint})"
        )


if __name__ == "__main__":
    main()
