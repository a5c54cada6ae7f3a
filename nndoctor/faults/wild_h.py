"""Wild cases, eighth set: setups unlike the ones nndoctor was tuned on, and real bugs in them.

The healthy scripts live in ``examples/wild/``, each in the manner of a well-known public
PyTorch training script (written here, not copied): SimSiam self-supervised pre-training
on generated shapes (two views augmented in torch by ``affine_grid``/``grid_sample``
crops and flips, jitter and noise; projector ending in a non-affine BatchNorm, a
bottleneck predictor, the symmetric negative cosine loss against detached targets, SGD
with a per-epoch cosine schedule and a fixed predictor lr) followed by a linear probe on
the frozen encoder kept in ``eval()`` with its own SGD and cross-entropy; and a PixelCNN
on generated binary strokes (a ``MaskedConv2d`` subclass of ``nn.Conv2d`` that writes a
type-A or type-B mask into its weights before each convolution, one logit per pixel under
``BCEWithLogitsLoss``, inputs in {-1, 1}, Adam, test NLL in nats per image, sampling pixel
by pixel). Each fault is one bug as it arrives in code in that style.

Names start with ``wild-``; all cases and faults here are ``dev``.
"""

from __future__ import annotations

from nndoctor.faults.registry import Edit, Fault, HealthyCase, register_fault, register_healthy

SIMSIAM = "wild-simsiam-probe"
PIXELCNN = "wild-pixelcnn-binary"

for case in (
    HealthyCase(
        SIMSIAM,
        "dev",
        "SimSiam on generated 16x16 shapes: two views augmented in torch, BatchNorm CNN with "
        "a 3-layer projector (frozen bias before a non-affine BN) and a bottleneck "
        "predictor, symmetric negative cosine loss against detached targets, SGD + cosine "
        "schedule per epoch with a fixed predictor lr; then a linear probe on the frozen "
        "encoder in eval() with its own SGD and CE; probe accuracy 0.78 (random encoder: "
        "0.24)",
        script="wild/simsiam_probe.py",
    ),
    HealthyCase(
        PIXELCNN,
        "dev",
        "PixelCNN on generated binary 12x12 strokes: MaskedConv2d (mask written into "
        "weight.data before each conv), 7x7 type A then six 3x3 type B with ReLU, one logit "
        "per pixel, inputs in {-1, 1}, BCEWithLogitsLoss on the {0, 1} pixels, Adam, test "
        "NLL 15 nats per image (independent pixels: 53), sampling pixel by pixel",
        script="wild/pixelcnn_binary.py",
    ),
):
    register_healthy(case)


for fault in (
    # --- SimSiam and its linear probe ---------------------------------------------------
    Fault(
        "wild-simsiam-no-stop-gradient",
        SIMSIAM,
        18,
        "dev",
        "forward returns z1 and z2 without .detach(): the targets of the negative cosine "
        "loss are no longer stop-gradient, both branches pull towards each other and the "
        "outputs partly collapse (std of the normalised outputs falls from 0.086 to 0.053, "
        "the loss reaches -0.91 instead of -0.76); the linear probe on the frozen encoder "
        "gets 0.61 test accuracy instead of 0.78",
        also=(21,),
        edits=(
            Edit(
                "return p1, p2, z1.detach(), z2.detach()",
                "return p1, p2, z1, z2",
            ),
        ),
    ),
    Fault(
        "wild-simsiam-cosine-lr-goes-negative",
        SIMSIAM,
        36,
        "dev",
        "the half-cycle cosine is written as init_lr * cos(pi * epoch / epochs), without "
        "0.5 * (1 + ...): the lr reaches 0 half-way and is negative for the remaining "
        "epochs, so SGD climbs the loss; it rises from -0.71 at epoch 7 back to -0.08, the "
        "encoder's features blow up (the probe's training loss ends at 1.9e4) and the probe's "
        "test accuracy is 0.18, chance (healthy: 0.78)",
        also=(29,),
        edits=(
            Edit(
                "cur_lr = init_lr * 0.5 * (1.0 + math.cos(math.pi * epoch / epochs))",
                "cur_lr = init_lr * math.cos(math.pi * epoch / epochs)",
            ),
        ),
    ),
    # --- PixelCNN -----------------------------------------------------------------------
    Fault(
        "wild-pixelcnn-first-mask-type-b",
        PIXELCNN,
        22,
        "dev",
        "the first masked convolution is built with mask type 'B': it sees the very pixel "
        "it predicts, so the network learns to copy its input; the training loss falls to "
        "0.0000 per pixel and the test NLL to 0.00 nats per image (healthy: 15.1), while "
        "all eight samples drawn pixel by pixel come out blank (lit pixels 0.000; data "
        "0.120)",
        also=(25, 21),
        edits=(
            Edit(
                'layers = [MaskedConv2d("A", 1, fm, 7, 1, 3)]',
                'layers = [MaskedConv2d("B", 1, fm, 7, 1, 3)]',
            ),
        ),
    ),
    Fault(
        "wild-pixelcnn-scaled-inputs-as-targets",
        PIXELCNN,
        19,
        "dev",
        "the loss is given the inputs scaled to {-1, 1} as targets instead of the {0, 1} "
        "pixels: BCEWithLogitsLoss accepts the target -1 silently and is then unbounded "
        "below, the background logits are driven to minus infinity; the training loss "
        "reaches -8e18 per pixel after 8 epochs, the test NLL 5e20 nats per image "
        "(healthy: 15.1) and the samples are blank",
        also=(18,),
        edits=(Edit("loss = criterion(logits, x)", "loss = criterion(logits, inputs)"),),
    ),
):
    register_fault(fault)
