"""Wild cases, seventeenth group: DINO self-distillation, one-class Deep SVDD, a tiny NeRF,
conditional flow matching, an S4D state-space classifier, a ConvLSTM next-frame predictor, DETR
set prediction and a Hamiltonian Neural Network.

The healthy scripts live in ``examples/wild/``, each in the manner of a well-known public
PyTorch training script (written here, not copied): DINO self-distillation as in the
facebookresearch ``main_dino.py`` (a student and an EMA teacher sharing a BatchNorm CNN
backbone and a ``DINOHead`` with a weight-normalised last layer, multi-crop views through
``MultiCropWrapper``, a centred and sharpened teacher with a warmed-up temperature, lr / weight
decay / teacher momentum set from cosine schedules every iteration, a weighted k-NN probe) on
generated glyphs; and one-class Deep SVDD as in the authors' ``Deep-SVDD-PyTorch`` (a bias-free
LeNet with ``affine=False`` BatchNorm, the center ``c`` from an initial forward pass with eps
handling, ``mean ||phi(x) - c||^2``, Adam with a ``MultiStepLR`` milestone, the AUC of the
distance score) on generated seven-segment digits; a tiny NeRF as in the "tiny_nerf" notebook
and nerf-pytorch (ground-truth views of three analytic spheres rendered by the script,
positional encoding, stratified samples with random jitter, alpha compositing with an exclusive
``cumprod`` of the transmittance, shuffled batches of random rays, the lr decayed exponentially
by hand in the param groups every iteration); and conditional flow matching as in Lipman et
al.'s standalone notebook and ``torchcfm`` (straight paths from N(0, I) to eight Gaussians,
regression of the velocity ``x1 - x0`` with a time embedding, midpoint integration of the
learned ODE, kernel MMD and mode hits of the samples); an S4D sequence classifier as in the
``state-spaces`` repository's minimal ``s4d.py`` example (complex diagonal A initialised
S4D-Lin and stored as real parameters, a learned log step, a Vandermonde kernel applied by FFT
convolution, a tied-mask ``DropoutNd``, ``GLU``, A and dt in their own AdamW parameter group)
on long noisy sequences with a few marked signs; and next-frame prediction of bouncing squares
with a ConvLSTM encoder-forecaster as in ``ConvLSTM_pytorch`` and the Moving-MNIST scripts
(sequence-first batches, a forecaster fed zeros from the encoder's states, ``BCELoss``,
``ReduceLROnPlateau``); DETR set prediction as in DETR's ``main.py`` and ``HungarianMatcher``
(a small CNN backbone and a post-norm Transformer decoding 6 learned object queries, a class
head with a "no object" class down-weighted by ``eos_coef``, a sigmoid ``(cx, cy, w, h)`` box
head, a brute-force Hungarian assignment per image on a class + L1 + GIoU cost, AdamW with a
lower-rate backbone group) on generated images of coloured rectangles; and a Hamiltonian Neural
Network as in Greydanus et al.'s ``hnn`` (a scalar H(q, p) whose symplectic gradient, taken by
``torch.autograd.grad(create_graph=True)`` in the forward, is fitted to the time derivatives of
noisy pendulum trajectories, against an MLP baseline, with RK4 rollouts judged by their energy
drift).
Each fault is one bug as it arrives in code in that style, measured to do real harm.
"""

from __future__ import annotations

from nndoctor.faults.registry import Edit, Fault, HealthyCase, register_fault, register_healthy

DINO_SELF_DISTILLATION = "wild-dino-self-distillation"
DEEP_SVDD_ANOMALY = "wild-deep-svdd-anomaly"

for case in (
    HealthyCase(
        DINO_SELF_DISTILLATION,
        "test",
        "DINO (facebookresearch main_dino.py manner) on generated 16x16 glyphs without labels: "
        "per-image DataAugmentationDINO in the Dataset (2 global 16x16 and 4 local 8x8 crops, "
        "a custom collate to a list of views), BatchNorm CNN backbone run per resolution group "
        "by MultiCropWrapper, DINOHead with BatchNorm, l2-normalised bottleneck and a "
        "weight-normalised last layer whose norm (original0) is frozen; the teacher is a "
        "requires_grad=False copy outside the optimizer, fed only the global crops, moved by a "
        "hand-written EMA with a cosine momentum schedule; centred (running center buffer) "
        "and sharpened teacher softmax, cross-entropy over all non-identical view pairs, "
        "which starts near ln 256 = 5.5 and ends near 2.4 (far from 0); AdamW whose lr and "
        "weight decay are written into the param groups every iteration, per-parameter "
        "gradient clipping, and the last layer's gradients set to None during the first "
        "epoch; k-NN accuracy of the frozen teacher backbone at the end",
        script="wild/dino_self_distillation.py",
    ),
    HealthyCase(
        DEEP_SVDD_ANOMALY,
        "dev",
        "one-class Deep SVDD (authors' Deep-SVDD-PyTorch manner) on generated 16x16 "
        "seven-segment digits of one class: global contrast normalisation + min-max scaling, "
        "a Dataset returning (img, target, index) whose targets are all 0, a bias-free LeNet "
        "(Conv2d/Linear bias=False, BatchNorm2d affine=False, so no BatchNorm parameters), "
        "the center c from a no_grad forward pass in eval() with near-zero coordinates "
        "pushed to +-0.1, loss mean ||phi(x) - c||^2 with no labels (4.4 in the first epoch, "
        "0.07 at the end), Adam lr 1e-3 with weight decay 1e-6 and a MultiStepLR milestone at "
        "epoch 20; test AUC of the distance score on held-out normal and anomalous digits",
        script="wild/deep_svdd_anomaly.py",
    ),
):
    register_healthy(case)


for fault in (
    Fault(
        "wild-dino-self-distillation-same-view-pairs",
        DINO_SELF_DISTILLATION,
        18,
        "test",
        "the pair-skipping test of DINOLoss is inverted, if v != iq: continue instead of "
        "if v == iq: the student is only trained to match the teacher on the very same global "
        "crop, never across views, so nothing makes the features invariant to the "
        "augmentations; the loss falls to 0.49 / 0.58 (healthy 2.34 / 2.44) while the "
        "teacher's 20-NN test accuracy is 0.566 and 0.634 on seeds 0 and 1 instead of 0.842 "
        "and 0.874, no better than the raw pixels (0.596 / 0.609; random backbone 0.484 / "
        "0.563, chance 0.125)",
        also=(21,),
        edits=(Edit("if v == iq:", "if v != iq:"),),
    ),
    Fault(
        "wild-dino-self-distillation-ema-momentum-swapped",
        DINO_SELF_DISTILLATION,
        22,
        "test",
        "the teacher's EMA update is written with the momentum swapped, param_k * (1 - m) + "
        "m * param_q: the teacher is a copy of the student of one step before (effective "
        "momentum 0.01 instead of 0.99 -> 1) and the self-distillation collapses; the 20-NN "
        "test accuracy of the teacher backbone is 0.240 and 0.279 on seeds 0 and 1, below "
        "the random backbone (0.484 / 0.563) and the raw pixels (0.596 / 0.609), instead of "
        "0.842 and 0.874 healthy (chance 0.125)",
        also=(29,),
        edits=(
            Edit(
                "param_k.data.mul_(m).add_((1 - m) * param_q.detach().data)",
                "param_k.data.mul_(1 - m).add_(m * param_q.detach().data)",
            ),
        ),
    ),
    Fault(
        "wild-deep-svdd-anomaly-center-not-averaged",
        DEEP_SVDD_ANOMALY,
        19,
        "dev",
        "init_center_c loses its c /= n_samples: the center is the sum of the 2,000 initial "
        "representations instead of their mean, far from every phi(x), so the loss is a "
        "huge ||c||^2 (39,000 / 119,000 after 30 epochs; healthy 0.076 / 0.055) whose "
        "gradient only pushes all representations along the direction of c; the test AUC "
        "is 57.00% and 56.78% on seeds 0 and 1 instead of 83.97% and 94.88% (chance 50%, "
        "untrained network 62.03% / 48.67%)",
        also=(18,),
        edits=(Edit("        c /= n_samples\n", ""),),
    ),
    Fault(
        "wild-deep-svdd-anomaly-trained-in-eval-mode",
        DEEP_SVDD_ANOMALY,
        32,
        "dev",
        "the net.train() after the center initialisation is missing, so the network is "
        "trained in the eval() mode init_center_c left it in: the BatchNorm layers use their "
        "never-updated running statistics (mean 0, variance 1) and normalise nothing, and "
        "the network nearly collapses onto c (loss 0.0009 against 0.076 / 0.055 healthy); "
        "the test AUC is 78.51% and 85.85% on seeds 0 and 1 instead of 83.97% and 94.88% "
        "(chance 50%, untrained network 62.03% / 48.67%)",
        also=(21,),
        edits=(Edit("        net.train()\n", ""),),
    ),
):
    register_fault(fault)


NERF_TINY_RAYS = "wild-nerf-tiny-rays"
FLOW_MATCHING_2D = "wild-flow-matching-2d"

for case in (
    HealthyCase(
        NERF_TINY_RAYS,
        "test",
        "tiny NeRF (tiny_nerf notebook / nerf-pytorch run_nerf.py manner) on 24 generated 32x32 "
        "renderings of three analytic spheres over a black background (a fifth of the pixels "
        "lit): all training rays with their colours stacked and shuffled once, batches of 512 "
        "rays taken in turn, positional encoding at 6 octaves, a width-64 ReLU MLP with a skip "
        "concatenation, 32 stratified samples per ray with fresh uniform jitter, relu density "
        "(zero for most empty-space samples) and sigmoid colours alpha-composited by an "
        "exclusive cumprod, MSE on RGB, Adam 1e-3 whose lr is written into the param groups "
        "by hand every iteration (x0.1 over the 1,000 iterations); the loss starts small "
        "(0.045, mostly black pixels), the train PSNR is noisy, and a higher lr (5e-3) "
        "collapses the density to zero",
        script="wild/nerf_tiny_rays.py",
    ),
    HealthyCase(
        FLOW_MATCHING_2D,
        "dev",
        "conditional flow matching / rectified flow (Lipman et al. notebook / torchcfm manner) "
        "from N(0, I) to eight Gaussians on a circle of radius 4: fresh batches of 256 "
        "independent pairs every step, t ~ U(0, 1) per pair, x_t on the straight path plus "
        "sigma 0.01 noise, target x1 - x0, an ELU MLP on a sinusoidal time embedding "
        "concatenated with x_t, nn.MSELoss, Adam 1e-3, 6,000 steps; the inputs are mostly "
        "noise and the loss only falls from 4.5 to 3.8 (the conditional velocity's "
        "irreducible spread), far from 0, while the samples become good",
        script="wild/flow_matching_2d.py",
    ),
):
    register_healthy(case)


for fault in (
    Fault(
        "wild-nerf-tiny-rays-cumprod-over-rays",
        NERF_TINY_RAYS,
        25,
        "test",
        "raw2outputs takes the transmittance's cumprod over dim=0, the rays of the batch, "
        "instead of dim=-1, the samples along each ray: a ray's weights become the product of "
        "(1 - alpha) over the rays before it in the batch, so any density darkens the rest of "
        "the batch and the network learns to switch the density off; every rendering is black "
        "and the held-out PSNR after 1,000 iterations is 13.01 / 12.80 dB on seeds 0 / 1, "
        "below the mean-colour baseline (13.60 / 13.42 dB), instead of 28.19 / 30.21 dB",
        also=(22,),
        edits=(
            Edit(
                "torch.cumprod(torch.cat([ones, 1.0 - alpha + 1e-10], -1), dim=-1)",
                "torch.cumprod(torch.cat([ones, 1.0 - alpha + 1e-10], -1), dim=0)",
            ),
        ),
    ),
    Fault(
        "wild-nerf-tiny-rays-decay-steps-units",
        NERF_TINY_RAYS,
        36,
        "test",
        "the hand-written exponential decay uses decay_steps = args.lrate_decay instead of "
        "args.lrate_decay * 1000 (the option is in thousands of steps, as in run_nerf.py): "
        "the lr is divided by 10 every iteration (1e-4 after the first, 1e-103 by iteration "
        "100), so the network hardly moves from its initialisation; the loss stays at 0.21 "
        "and the held-out PSNR after 1,000 iterations is 6.68 / 6.71 dB on seeds 0 / 1, far "
        "below the mean-colour baseline (13.60 / 13.42 dB), instead of 28.19 / 30.21 dB",
        also=(33,),
        edits=(Edit("decay_steps = args.lrate_decay * 1000", "decay_steps = args.lrate_decay"),),
    ),
    Fault(
        "wild-flow-matching-2d-velocity-sign",
        FLOW_MATCHING_2D,
        18,
        "dev",
        "the conditional velocity target is written dx_t = x_0 - x_1 instead of x_1 - x_0: "
        "the network learns the field that carries data back to noise (the loss falls exactly "
        "as in the healthy run, 3.83 / 3.84), and integrating it from the source at t = 0 "
        "pushes the samples away from the modes; after 6,000 steps the samples' MMD^2 to the "
        "target is 3.067 / 3.042 with 0 % of them within 3 std of a mode and 0/8 modes hit "
        "(seeds 0 / 1), worse than the Gaussian source itself (1.147 / 1.159), instead of "
        "0.0043 / 0.0096 with 94.9 / 94.7 % near a mode and 8/8 modes",
        also=(19,),
        edits=(Edit("dx_t = x_1 - x_0", "dx_t = x_0 - x_1"),),
    ),
    Fault(
        "wild-flow-matching-2d-elu-on-velocity",
        FLOW_MATCHING_2D,
        19,
        "dev",
        "an nn.ELU() is left after the last Linear of the Flow MLP (the Sequential's "
        "Linear/ELU pattern copied once too often): the predicted velocity components cannot "
        "go below -1 while the targets x1 - x0 reach -5 and beyond, so the flow cannot move "
        "samples far to the left or down; the loss stays at 5.04 / 5.07 (healthy 3.83 / 3.84) "
        "and after 6,000 steps the samples' MMD^2 to the target is 0.217 / 0.224, with "
        "49.4 / 48.9 % within 3 std of a mode and 5/8 modes hit (seeds 0 / 1), instead of "
        "0.0043 / 0.0096, 94.9 / 94.7 % and 8/8 (Gaussian source 1.147 / 1.159, 0.2 / 0.4 %)",
        also=(18, 35),
        edits=(
            Edit(
                "            nn.Linear(h, dim),\n        )",
                "            nn.Linear(h, dim),\n            nn.ELU(),\n        )",
            ),
        ),
    ),
):
    register_fault(fault)


S4D_SEQUENCE = "wild-s4d-sequence"
CONVLSTM_FRAMES = "wild-convlstm-frames"

for case in (
    HealthyCase(
        S4D_SEQUENCE,
        "dev",
        "S4D (state-spaces s4d.py / example.py manner) on 128-step sequences of Gaussian noise "
        "with 5 marked positions holding +-1, labelled by the sign of their sum: complex "
        "diagonal A (S4D-Lin, log_A_real and A_imag as real parameters), complex C through "
        "view_as_real, learned log_dt, a Vandermonde kernel via complex exp and einsum, FFT "
        "convolution with rfft/irfft at 2L, skip D, GELU, a hand-written tied-mask DropoutNd, "
        "Conv1d + GLU, 2 post-norm residual blocks with LayerNorm on transposed (B, H, L) "
        "tensors, mean pooling; A and dt tagged with _optim and put in a second AdamW group "
        "(lr 1e-3, no weight decay) next to the main one (lr 1e-2, decay 0.01), "
        "CosineAnnealingLR per epoch; the loss stays near ln 2 for the first epoch and the "
        "accuracy jumps to 97-99% in the second or third",
        script="wild/s4d_sequence.py",
    ),
    HealthyCase(
        CONVLSTM_FRAMES,
        "test",
        "ConvLSTM encoder-forecaster (ConvLSTM_pytorch / Moving-MNIST manner) predicting the "
        "next 5 frames of 16x16 clips of two bouncing 3x3 squares from 5 frames: data stored "
        "sequence-first (T, N, H, W) uint8, a collate_fn stacking along dim 1 to "
        "(T, B, C, H, W), a strided Conv2d stem run on the merged T*B axis, ConvLSTMCells "
        "whose one gate convolution is GroupNorm-ed and split into i, f, o, g, ConvLSTM "
        "permuting to batch-first itself, the forecaster fed zeros and started from the "
        "encoder's last states, ConvTranspose2d head, sigmoid + BCELoss on sparse frames "
        "(7% of pixels on), Adam, clip_grad_value_(10), ReduceLROnPlateau on the validation "
        "loss; the loss passes the base-rate plateau (0.24) around iteration 40 and ends "
        "near 0.008",
        script="wild/convlstm_frames.py",
    ),
):
    register_healthy(case)


for fault in (
    Fault(
        "wild-s4d-sequence-dropout-mask-inverted",
        S4D_SEQUENCE,
        30,
        "dev",
        "DropoutNd builds its mask as torch.rand(...) < self.p instead of < 1.0 - self.p: "
        "with p = 0.1 it keeps 10% of the channels (tied over the sequence) and drops 90% in "
        "every S4D layer and residual branch during training, while evaluation runs without "
        "dropout at about nine times the scale; the final validation accuracy is 90.5 / 58.5 "
        "% on seeds 0 / 1 instead of 98.5 / 99.2 % (chance 50 %, majority class 52.8 / "
        "52.5 %)",
        also=(22, 32),
        edits=(
            Edit(
                "mask = torch.rand(*mask_shape, device=X.device) < 1.0 - self.p",
                "mask = torch.rand(*mask_shape, device=X.device) < self.p",
            ),
        ),
    ),
    Fault(
        "wild-s4d-sequence-log-dt-not-exponentiated",
        S4D_SEQUENCE,
        37,
        "dev",
        "S4DKernel.forward uses dt = self.log_dt instead of torch.exp(self.log_dt): the step "
        "is negative (-6.9 to -2.3), dt * A gets a positive real part of 1.2 to 3.5, the "
        "Vandermonde powers exp(dt A l) overflow to inf within the 128 steps and the kernel, "
        "the logits and the loss are NaN from the first batch; the network predicts one "
        "class throughout and the final validation accuracy is 47.2 / 52.5 % on seeds 0 / 1 "
        "(the share of class 0) instead of 98.5 / 99.2 % (chance 50 %)",
        also=(22, 35),
        edits=(Edit("dt = torch.exp(self.log_dt)  # (H)", "dt = self.log_dt  # (H)"),),
    ),
    Fault(
        "wild-convlstm-frames-view-instead-of-permute",
        CONVLSTM_FRAMES,
        25,
        "test",
        "ConvLSTM.forward turns the sequence-first (t, b, c, h, w) input into batch-first "
        "with input_tensor.view(b, t, c, h, w) instead of permute(1, 0, 2, 3, 4): the "
        "shapes fit, but each clip's 'sequence' is made of frames of neighbouring clips, so "
        "neither the encoder's states nor the forecast belong to the clip whose frames are "
        "the targets, and the network learns only the blurred base rate; the validation MSE "
        "per pixel is 0.0625 / 0.0620 on seeds 0 / 1, barely below an empty frame (0.0687 / "
        "0.0682), instead of 0.0021 / 0.0025 (copy last frame 0.114 / 0.115)",
        also=(22, 4),
        edits=(
            Edit(
                "            input_tensor = input_tensor.permute(1, 0, 2, 3, 4)\n",
                "            t, b, c, h, w = input_tensor.size()\n"
                "            input_tensor = input_tensor.view(b, t, c, h, w)\n",
            ),
        ),
    ),
    Fault(
        "wild-convlstm-frames-state-reset-each-step",
        CONVLSTM_FRAMES,
        22,
        "test",
        "ConvLSTM.forward reads h, c = hidden_state[layer_idx] inside the time loop instead "
        "of before it: every step starts again from the initial state, so the encoder's last "
        "state has seen only the last input frame (no velocity can be inferred) and the "
        "forecaster, fed zeros, predicts the same frame from the encoder's state at every "
        "step; the validation MSE per pixel is 0.0577 / 0.0575 on seeds 0 / 1 instead of "
        "0.0021 / 0.0025 (empty frame 0.0687 / 0.0682, copy last frame 0.114 / 0.115)",
        edits=(
            Edit(
                "            h, c = hidden_state[layer_idx]\n"
                "            output_inner = []\n"
                "            for t in range(seq_len):\n",
                "            output_inner = []\n"
                "            for t in range(seq_len):\n"
                "                h, c = hidden_state[layer_idx]\n",
            ),
        ),
    ),
):
    register_fault(fault)


DETR_SET_PREDICTION = "wild-detr-set-prediction"
HNN_PENDULUM = "wild-hnn-pendulum"

for case in (
    HealthyCase(
        DETR_SET_PREDICTION,
        "dev",
        "tiny DETR (main.py / HungarianMatcher manner) on generated 24x24 images with 1-4 "
        "rectangles of 3 colour classes (frequencies 0.5/0.3/0.2): targets are a list of "
        "dicts of varying length, Conv-BN-ReLU backbone to a 6x6 map, sine positions, a "
        "post-norm Transformer written with nn.MultiheadAttention (sequence first), 6 learned "
        "queries decoded from zeros, class head with a 'no object' class that is the target "
        "of most queries and is weighted 0.1 in the CE weight, sigmoid (cx, cy, w, h) box "
        "head; the matching is a numpy brute-force assignment under no_grad inside the "
        "criterion and reorders the targets; CE + 5 L1 + 2 (1 - GIoU) over the matched pairs, "
        "AdamW with the backbone in a second group at a lower rate, clip_grad_norm_(0.5), "
        "StepLR after 8 of 10 epochs; the loss ends near 1, far from 0 (held-out matched "
        "accuracy 0.97-0.98, mean IoU 0.76-0.79)",
        script="wild/detr_set_prediction.py",
    ),
    HealthyCase(
        HNN_PENDULUM,
        "dev",
        "Hamiltonian Neural Network (Greydanus et al.'s hnn manner) on noisy ideal-pendulum "
        "trajectories: the model's forward takes torch.autograd.grad(H.sum(), x, "
        "create_graph=True) of a scalar tanh MLP (last layer without bias, orthogonal init) "
        "with respect to its input and returns the symplectic gradient, so the output is a "
        "derivative and the loss needs a double backward; the same full batch of 750 points "
        "every one of 2,000 Adam steps, then a second model (an MLP baseline) trained the "
        "same way in the same run; the MSE plateaus at the input-noise floor (0.031-0.034, "
        "against 6.2 for zero derivatives), far from 0",
        script="wild/hnn_pendulum.py",
    ),
):
    register_healthy(case)


for fault in (
    Fault(
        "wild-detr-set-prediction-labels-not-permuted",
        DETR_SET_PREDICTION,
        4,
        "dev",
        "SetCriterion.loss_labels concatenates t['labels'] instead of t['labels'][J]: the "
        "matched queries (sorted by query index) get the target labels in their original "
        "order, not in the order of the objects they were matched to, so the class loss "
        "trains a query on another object's class while the boxes stay correctly paired; the "
        "training class error stays at 32 % and the held-out matched accuracy is 0.660 / "
        "0.767 instead of 0.978 / 0.977 (seeds 0 / 1; most common class 0.473 / 0.509), the "
        "mean IoU 0.706 / 0.637 instead of 0.791 / 0.768",
        also=(3, 6, 19),
        edits=(
            Edit(
                '[t["labels"][J] for t, (_, J) in zip(targets, indices, strict=True)]',
                '[t["labels"] for t, (_, J) in zip(targets, indices, strict=True)]',
            ),
        ),
    ),
    Fault(
        "wild-detr-set-prediction-boxes-not-normalized",
        DETR_SET_PREDICTION,
        19,
        "dev",
        "the Dataset converts the boxes to (cx, cy, w, h) but drops the division by the image "
        "size: the targets are in pixels (2 to 22) while the box head ends in a sigmoid, so "
        "no prediction can reach them; the sigmoid saturates at the border and the L1 term "
        "(34 per box, x5) dominates the loss, which stays at 174 from the first epoch; the "
        "held-out mean IoU is 0.000 / 0.000 instead of 0.791 / 0.768 (seeds 0 / 1; the mean "
        "training box 0.069 / 0.076), while the matched class accuracy (0.998 / 0.997) is "
        "unhurt",
        also=(18, 20, 35),
        edits=(
            Edit("        boxes = boxes / torch.tensor([w, h, w, h], dtype=torch.float32)\n", ""),
        ),
    ),
    Fault(
        "wild-hnn-pendulum-dh-unpacked-swapped",
        HNN_PENDULUM,
        22,
        "dev",
        "HNN.forward unpacks the input gradient as dHdp, dHdq = dH.split(1, dim=1) (q is the "
        "first column): the returned field is (dH/dq, -dH/dp) instead of the symplectic "
        "gradient (dH/dp, -dH/dq), a field no scalar H can make equal to the pendulum's "
        "(2p, -3 sin q); the HNN's test derivative MSE is 0.274 / 0.218 instead of 0.037 / "
        "0.033 (seeds 0 / 1; baseline MLP 0.036 / 0.032, zero derivatives 6.16 / 6.15) and "
        "the energy drift of its 20 s rollouts 2.66 / 1.22 instead of 0.026 / 0.030 (baseline "
        "0.230 / 0.098)",
        also=(24, 27),
        edits=(
            Edit(
                "        dHdq, dHdp = dH.split(1, dim=1)\n",
                "        dHdp, dHdq = dH.split(1, dim=1)\n",
            ),
        ),
    ),
    Fault(
        "wild-hnn-pendulum-derivatives-reshaped",
        HNN_PENDULUM,
        3,
        "dev",
        "get_dataset stacks each trajectory's derivatives with np.stack([dx, dy]).reshape(-1, "
        "2) instead of .T: the (2, 30) array is cut row-major into pairs of consecutive dq/dt "
        "values then of dp/dt values, so the targets no longer belong to the (q, p) points "
        "they are paired with; both models fit noise (HNN train MSE 1.6 / 1.3, baseline "
        "2.5 / 2.5) and the test derivative MSE is HNN 12.1 / 10.9 and baseline 6.17 / 6.33, "
        "no better than zero derivatives (6.16 / 6.15), instead of 0.037 / 0.033 (seeds 0 / "
        "1); the baseline's rollouts blow up (energy drift 1805 / 2029)",
        also=(4, 25),
        edits=(
            Edit(
                "        dxs.append(np.stack([dx, dy]).T)\n",
                "        dxs.append(np.stack([dx, dy]).reshape(-1, 2))\n",
            ),
        ),
    ),
    Fault(
        "wild-hnn-pendulum-split-shuffles-each-key",
        HNN_PENDULUM,
        4,
        "dev",
        "get_dataset shuffles before its train/test split with rng.shuffle(data[k]) inside the "
        "loop over the keys 'x' and 'dx': each array is shuffled by its own permutation, so "
        "every (q, p) point is paired with another point's derivatives; the models fit noise "
        "(after 2,000 full-batch steps HNN train MSE 1.16 / 1.20, baseline 1.94 / 2.14) and "
        "the test derivative MSE is HNN 25.9 / 25.8 and baseline 10.2 / 9.76, worse than zero "
        "derivatives (6.13 / 6.07), instead of 0.037 / 0.033 (seeds 0 / 1); the HNN's "
        "rollouts drift (energy drift 21.6 / 103)",
        also=(3,),
        edits=(
            Edit(
                '        split_data[k], split_data["test_" + k] = data[k][:split_ix], '
                "data[k][split_ix:]\n",
                "        rng.shuffle(data[k])\n"
                '        split_data[k], split_data["test_" + k] = data[k][:split_ix], '
                "data[k][split_ix:]\n",
            ),
        ),
    ),
):
    register_fault(fault)
