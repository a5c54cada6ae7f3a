"""Wild cases, sixth set: setups unlike the ones nndoctor was tuned on, and real bugs in them.

The healthy scripts live in ``examples/wild/``, each in the manner of a well-known public
PyTorch training script (written here, not copied): a denoising diffusion model (DDPM)
on 8x8 bar images (linear beta schedule, a random timestep per image, the noise ``eps``
predicted from ``x_t = sqrt(alpha_bar_t) x0 + sqrt(1 - alpha_bar_t) eps`` by a residual
MLP with a sinusoidal timestep embedding, an EMA copy of the weights sampled with the
ancestral sampler and judged by sample statistics), and a CTC sequence recogniser on
generated "spoken letter" feature sequences (time-first ``(T, N, F)`` padding collate
with concatenated targets, a strided ``Conv1d`` front-end and a bidirectional GRU,
``log_softmax`` into ``nn.CTCLoss(blank=0)`` with input lengths after the stride,
greedy CTC decoding and a label error rate). Each fault is one bug as it arrives in code
in that style.

Names start with ``wild-``. Split: the DDPM case and its faults are ``test`` (drawn at random
before the first measurement), the rest ``dev``.
"""

from __future__ import annotations

from nndoctor.faults.registry import Edit, Fault, HealthyCase, register_fault, register_healthy

DDPM = "wild-ddpm-toy"
CTC = "wild-ctc-recognizer"

for case in (
    HealthyCase(
        DDPM,
        "test",
        "DDPM on 8x8 bar images: linear beta schedule over 200 steps, random timestep per "
        "image, residual MLP with a sinusoidal timestep embedding predicting the noise, "
        "MSE, Adam, an EMA copy updated by lerp_ and sampled with the ancestral sampler; "
        "after 2,400 steps 93% of samples are clean bars (seeds 0 and 1: 92.6%, 93.8%), "
        "all 16 bars covered",
        script="wild/ddpm_toy.py",
    ),
    HealthyCase(
        CTC,
        "dev",
        "CTC recogniser on generated letter feature sequences: time-first padding collate "
        "with concatenated targets and lengths, strided Conv1d + BatchNorm1d front-end, "
        "bidirectional GRU, log_softmax into CTCLoss(blank=0, zero_infinity=True), Adam + "
        "clip_grad_norm_, greedy decoding; the label error rate ends at 2.5-2.7% after "
        "6 epochs (seeds 0 and 1)",
        script="wild/ctc_recognizer.py",
    ),
):
    register_healthy(case)


for fault in (
    # --- denoising diffusion ------------------------------------------------------------
    Fault(
        "wild-ddpm-uniform-noise",
        DDPM,
        18,
        "test",
        "the forward-process noise is drawn with torch.rand_like (uniform on [0, 1)) "
        "instead of torch.randn_like: the network learns to remove a biased, low-variance "
        "noise and its training loss falls to 0.010 (seed 0; healthy: 0.058), but the sampler "
        "starts from and adds Gaussian noise; after 2,400 steps 2.0% and 5.1% of samples "
        "are clean bars with 4 and 10 of the 16 bars covered (seeds 0 and 1; healthy: "
        "92.6% and 93.8%, 16/16)",
        also=(1, 21),
        edits=(Edit("noise = torch.randn_like(x0)", "noise = torch.rand_like(x0)"),),
    ),
    Fault(
        "wild-ddpm-target-fresh-noise",
        DDPM,
        4,
        "test",
        "the loss's target is a fresh torch.randn_like(x0) instead of the noise that was "
        "mixed into x_t: the target is independent of the input, the loss stays at 1.00 "
        "from the first 200 steps on and the network learns to predict zero; the samples "
        "are noise (seed 1: mean pixel 0.01 against the data's -0.73, no clean bar, 0/16 bars)",
        also=(18,),
        edits=(
            Edit(
                "loss = F.mse_loss(model(x_t, t), noise)",
                "loss = F.mse_loss(model(x_t, t), torch.randn_like(x0))",
            ),
        ),
    ),
    # --- CTC recogniser -----------------------------------------------------------------
    Fault(
        "wild-ctc-log-softmax-over-batch",
        CTC,
        19,
        "dev",
        "log_softmax over dim=1, which in the time-first (T, N, C) layout is the batch, "
        "not the classes: CTCLoss gets per-frame scores that are not distributions over "
        "labels and mix the utterances of a batch; the training loss stalls at 3.0 "
        "(healthy: 0.025) and the validation label error rate ends at 8.7% instead of 2.5% "
        "after 6 epochs (seed 1)",
        also=(25, 18),
        edits=(
            Edit(
                "return F.log_softmax(self.classifier(x), dim=2)",
                "return F.log_softmax(self.classifier(x), dim=1)",
            ),
        ),
    ),
    Fault(
        "wild-ctc-label-collides-with-blank",
        CTC,
        19,
        "dev",
        "the letter-to-id map starts at 0 instead of 1, so the letter 'a' is encoded as "
        "the CTC blank: targets contain the blank, the loss goes negative (-0.16 train, "
        "-0.06 validation) and 'a' can never be decoded; the label error rate stays at "
        "10.1% instead of 2.5% after 6 epochs (seed 1)",
        also=(3, 18),
        edits=(
            Edit(
                "self.char_map = {c: i + 1 for i, c in enumerate(ALPHABET)}",
                "self.char_map = {c: i for i, c in enumerate(ALPHABET)}",
            ),
        ),
    ),
):
    register_fault(fault)
