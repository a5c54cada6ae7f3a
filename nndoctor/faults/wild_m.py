"""Wild cases, thirteenth set: setups unlike the ones nndoctor was tuned on, and real bugs in them.

The healthy scripts live in ``examples/wild/``, each in the manner of a well-known public
PyTorch training script (written here, not copied): 2-D keypoint detection by heatmap
regression after "Simple Baselines for Human Pose Estimation" and the stacked-hourglass
repositories (generated stick figures with five joints, a dataset that flips the image
and mirrors the joints with their left/right pairs swapped, Gaussian target heatmaps on
a grid of half the image's resolution with a per-joint target weight, a conv backbone
and ``ConvTranspose2d`` deconvolution head, the weighted per-joint MSE, Adam with
``MultiStepLR``, argmax decoding and PCK@0.1); and a scaled-down EfficientNet trained
with the timm recipe (MBConv blocks with squeeze-and-excitation, SiLU, BatchNorm and
stochastic depth, label smoothing, RMSprop with eps 1e-3, warm-up and cosine by
``LambdaLR`` per step, an EMA copy of the model's state used for validation). Each fault
is one bug as it arrives in code in that style.

Names start with ``wild-``. Split: three scripts of the group of ten in ``wild_m.py`` to
``wild_p.py`` (the BiLSTM-CRF tagger, Prototypical Networks and the matrix factorisation),
with their faults, are ``test``, drawn at random (seed 20261204) before the first
measurement; the rest ``dev``.
"""

from __future__ import annotations

from nndoctor.faults.registry import Edit, Fault, HealthyCase, register_fault, register_healthy

KEYPOINT = "wild-keypoint-heatmaps"
EFFNET = "wild-effnet-lite"

for case in (
    HealthyCase(
        KEYPOINT,
        "dev",
        "heatmap keypoint regression on stick figures: Gaussian targets (sigma 1) on a 16x16 "
        "grid for 32x32 images, horizontal flips that mirror the joints and swap left/right, "
        "weighted per-joint 0.5 * MSE whose values are small (2e-3 falling to 2e-4) because "
        "the heatmaps are mostly zero, decoder initialised with std 0.001, Adam + "
        "MultiStepLR, argmax decoding and PCK@0.1",
        script="wild/keypoint_heatmaps.py",
    ),
    HealthyCase(
        EFFNET,
        "dev",
        "scaled-down EfficientNet (MBConv, depthwise convs, squeeze-and-excitation, SiLU, "
        "drop-path) on 8 generated texture/shape classes, label smoothing 0.1 (the loss "
        "floors near 0.48), timm-style RMSprop (alpha 0.9, eps 1e-3, momentum 0.9) from lr 0 "
        "through a one-epoch warm-up then cosine to 0 by LambdaLR per step, EMA copy of the "
        "model's state validated in eval()",
        script="wild/effnet_lite.py",
    ),
):
    register_healthy(case)


for fault in (
    # --- keypoint heatmaps ----------------------------------------------------------------
    Fault(
        "wild-keypoint-heatmaps-joints-not-flipped",
        KEYPOINT,
        3,
        "dev",
        "the dataset flips the image but the line that mirrors the joints (fliplr_joints) "
        "is missing: half of the training samples carry the heatmaps of the unflipped "
        "figure, mirrored away from the joints they show, so the targets contradict each "
        "other; after 8 epochs the loss is 1.5e-3 instead of 2.1e-4 and validation PCK@0.1 "
        "0.695 instead of 0.983 (hands 0.58 / 0.68 instead of 0.98)",
        also=(4, 13),
        edits=(
            Edit(
                "            image = image.flip(-1)\n"
                "            joints = self.fliplr_joints(joints)\n",
                "            image = image.flip(-1)\n",
            ),
        ),
    ),
    Fault(
        "wild-keypoint-heatmaps-joints-not-divided-by-stride",
        KEYPOINT,
        19,
        "dev",
        "generate_target places the Gaussians at the joints' image coordinates without "
        "dividing them by the feature stride of 2: on the 16x16 grid every joint lands at "
        "twice its place, the three quarters of the joints that fall off the grid get "
        "target_weight 0 and drop out of the loss, and the rest are taught at the wrong "
        "place; the loss falls lower than the healthy run's (1.1e-4 against 2.1e-4) while "
        "validation PCK@0.1 stays at 0.000-0.004 for 8 epochs (healthy, seeds 0-2: "
        "0.983 / 0.985 / 0.982)",
        also=(18, 21),
        edits=(
            Edit(
                "            mu_x = joints[joint_id, 0].item() / feat_stride\n"
                "            mu_y = joints[joint_id, 1].item() / feat_stride\n",
                "            mu_x = joints[joint_id, 0].item()\n"
                "            mu_y = joints[joint_id, 1].item()\n",
            ),
        ),
    ),
    # --- EfficientNet -----------------------------------------------------------------------
    Fault(
        "wild-effnet-lite-lambdalr-stepped-per-epoch",
        EFFNET,
        36,
        "dev",
        "lr_scheduler.step() sits in the epoch loop while lr_lambda counts optimizer steps: "
        "the one-epoch warm-up of 50 steps lasts the whole run, the first epoch trains at "
        "lr 0 and the last at 3.2e-4 instead of the 2e-3 peak; after 8 epochs the loss is "
        "0.69 instead of 0.48 and the EMA validation accuracy 0.915 instead of 0.998 "
        "(0.48 instead of 0.976 after 3 epochs)",
        also=(33,),
        edits=(
            Edit(
                "            optimizer.step()\n"
                "            lr_scheduler.step()\n"
                "            model_ema.update(model)\n"
                "            running, batches = running + loss.item(), batches + 1\n",
                "            optimizer.step()\n"
                "            model_ema.update(model)\n"
                "            running, batches = running + loss.item(), batches + 1\n"
                "        lr_scheduler.step()\n",
            ),
        ),
    ),
    Fault(
        "wild-effnet-lite-ema-over-parameters-only",
        EFFNET,
        32,
        "dev",
        "ModelEma.update walks model.parameters() instead of the state_dict: the EMA copy's "
        "BatchNorm running means and variances keep their initial 0 and 1, so in eval() it "
        "normalises nothing; the model itself trains (validation accuracy 0.998) but the "
        "EMA model that is validated and kept scores 0.13-0.33 over the 8 epochs, 0.152 at "
        "the end, chance for 8 classes (healthy EMA: 0.998)",
        also=(21,),
        edits=(
            Edit(
                "self.module.state_dict().values(), model.state_dict().values(), strict=True",
                "self.module.parameters(), model.parameters(), strict=True",
            ),
        ),
    ),
):
    register_fault(fault)
