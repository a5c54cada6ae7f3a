"""Wild cases: a SIREN image fit, a VQ-VAE, DANN with gradient reversal and LoRA fine-tuning.

The healthy scripts live in ``examples/wild/``, each in the manner of a well-known public
PyTorch training script (written here, not copied): a SIREN fitted to one generated 64x64
grayscale image as a function of its pixel coordinates as the authors' "explore_siren"
notebook does it (sine layers with ``omega_0 = 30``, the first layer initialised in
``±1/in`` and the others in ``±sqrt(6/in)/omega_0``, the full batch of 4,096 coordinates
every step, MSE, Adam at 1e-4, PSNR on the pixels and on new points between them); a
VQ-VAE as the popular re-implementations write it (a convolutional encoder to a 4x4 grid of
16-dimensional latents, a 64-code ``nn.Embedding`` codebook, nearest code by ``argmin``,
the straight-through estimator ``z_e + (z_q - z_e).detach()``, codebook loss plus 0.25
times the commitment loss, reconstruction MSE over the data variance, Adam; held-out
reconstruction error and codebook perplexity); domain-adversarial training (DANN) of the
rotated two moons with a gradient-reversal ``torch.autograd.Function``, the
``2 / (1 + exp(-10 p)) - 1`` coefficient schedule and SGD with momentum annealed as
``0.01 / (1 + 10 p) ** 0.75``, against a source-only model; and LoRA fine-tuning written
by hand in the manner of ``loralib`` (an MLP pre-trained on task A in the script, frozen
with ``requires_grad_(False)``, two hidden ``nn.Linear``s wrapped with rank-8 updates,
``lora_A`` Kaiming-uniform and ``lora_B`` at zero, scaling ``alpha / r``, only the LoRA
parameters trained by AdamW on the related task B). Each fault is one bug as it arrives
in code in that style.

Names start with ``wild-``. Split: four scripts of the group of twelve in ``wild_u.py`` to
``wild_w.py`` (the DANN domain adaptation, LoRA fine-tuning, the lottery-ticket pruning and
SimCLR), with their faults, are ``test``, drawn at random (seed 20261206) before the first
measurement; the rest ``dev``.
"""

from __future__ import annotations

from nndoctor.faults.registry import Edit, Fault, HealthyCase, register_fault, register_healthy

SIREN = "wild-siren-image-fit"
VQVAE = "wild-vqvae-codebook"
DANN = "wild-dann-gradient-reversal"
LORA = "wild-lora-finetune"

for case in (
    HealthyCase(
        SIREN,
        "dev",
        "SIREN image fit: 2 input coordinates, sine activations sin(30 * (Wx + b)) (the "
        "first layer's arguments reach ±30 radians), a deliberately tiny uniform init "
        "(±sqrt(6/in)/30) on the hidden layers, the same full batch of all 4,096 pixels at "
        "every step, Adam at 1e-4, coordinates cloned with requires_grad in forward; the "
        "MSE falls to about 1e-5 (PSNR above 50 dB)",
        script="wild/siren_image_fit.py",
    ),
    HealthyCase(
        VQVAE,
        "dev",
        "VQ-VAE: argmin nearest-code quantisation (no gradient through it) bridged by the "
        "straight-through estimator, a 64-code codebook initialised in ±1/64, codebook and "
        "commitment losses on detached copies, reconstruction MSE divided by the data "
        "variance; perplexity climbs from about 3 and some codes stay unused",
        script="wild/vqvae_codebook.py",
    ),
    HealthyCase(
        DANN,
        "test",
        "DANN: a gradient-reversal autograd Function that negates the gradient, a domain "
        "classifier held near chance (domain loss about ln 2) on purpose, every domain "
        "loss computed on a single-label half-batch (source all 0, target all 1), the "
        "reversal coefficient and the SGD lr both changed at every step, a source-only "
        "model trained first in the same script; 2-D inputs, tiny dataset",
        script="wild/dann_gradient_reversal.py",
    ),
    HealthyCase(
        LORA,
        "test",
        "LoRA fine-tuning: an MLP pre-trained in the script and then frozen (about 95% of "
        "the parameters never get a gradient, on purpose), lora_B initialised at zero, "
        "only the LoRA matrices in AdamW, a fine-tuning loss that starts near 9 (a "
        "confident pre-trained model on a changed task, far above ln 10), task-A accuracy "
        "dropping as task B is learnt; two phases with two optimizers",
        script="wild/lora_finetune.py",
    ),
):
    register_healthy(case)


for fault in (
    # --- SIREN ----------------------------------------------------------------------------
    Fault(
        "wild-siren-image-fit-hidden-init-no-omega",
        SIREN,
        28,
        "dev",
        "the hidden sine layers are initialised in ±sqrt(6/in) without the division by "
        "omega_0 = 30: the arguments of the hidden sines have a standard deviation of 30 "
        "radians instead of 1, each layer outputs a near-random function of its input and "
        "the fit never starts; after 500 "
        "steps PSNR 8.6 dB on the pixels (seed 1: 8.6), below the 13.9 dB of predicting "
        "the mean, instead of 55.3 dB (seed 1: 54.3), and a gradient error of 500 times "
        "the true gradient instead of 0.09",
        also=(35,),
        edits=(
            Edit(
                "bound = math.sqrt(6 / self.in_features) / self.omega_0",
                "bound = math.sqrt(6 / self.in_features)",
            ),
        ),
    ),
    Fault(
        "wild-siren-image-fit-missing-zero-grad",
        SIREN,
        36,
        "dev",
        "optim.zero_grad() is missing from the loop: the gradients of all previous steps "
        "accumulate in .grad and Adam follows their ever-growing sum, so the fit "
        "overshoots and the loss climbs again; after 500 steps PSNR 10.6 dB (seed 1: "
        "10.4), worse than the 13.9 dB of predicting the mean, instead of 55.3 dB (seed "
        "1: 54.3), the loss at 0.33 instead of 1.2e-5",
        also=(35,),
        edits=(Edit("        optim.zero_grad()\n", ""),),
    ),
    # --- VQ-VAE ---------------------------------------------------------------------------
    Fault(
        "wild-vqvae-codebook-straight-through-no-detach",
        VQVAE,
        22,
        "dev",
        "the straight-through estimator is written without .detach(), "
        "z_e + (z_q - z_e): the value is still z_q but the reconstruction gradient now "
        "reaches the codebook and cancels on the encoder, which is left with the "
        "commitment term alone; the codebook collapses and the decoder learns the mean "
        "image: after 1,500 steps held-out normalised reconstruction error 0.936 (seed "
        "1: 0.964), the mean image's 0.935 (0.961), perplexity 1.0 and 1 code in use "
        "(seed 1: 4.3 and 5) instead of 0.234, perplexity 24 and 51 codes (seed 1: 0.238, "
        "25 and 45)",
        also=(23,),
        edits=(
            Edit(
                "quantized = inputs + (quantized - inputs).detach()",
                "quantized = inputs + (quantized - inputs)",
            ),
        ),
    ),
    Fault(
        "wild-vqvae-codebook-view-not-permute",
        VQVAE,
        25,
        "dev",
        "the quantised latents are turned back from BHWC to BCHW with .view(B, C, H, W) "
        "instead of .permute(0, 3, 1, 2): the shape is right but the decoder's 16 "
        "channels and 4x4 positions are scrambled, each channel a mix of code components "
        "from several positions; after 1,500 steps held-out normalised reconstruction "
        "error 0.345 (seed 1: 0.356) instead of 0.234 (seed 1: 0.238)",
        also=(22,),
        edits=(
            Edit(
                "quantized.permute(0, 3, 1, 2).contiguous()",
                "quantized.view(-1, self.embedding_dim, input_shape[1], input_shape[2])",
            ),
        ),
    ),
    # --- DANN -----------------------------------------------------------------------------
    Fault(
        "wild-dann-gradient-reversal-grl-no-neg",
        DANN,
        22,
        "test",
        "GradReverse.backward returns grad_output * alpha without .neg(): the feature "
        "extractor now helps the domain classifier instead of fooling it (domain accuracy "
        "0.83, domain loss 0.33, instead of about 0.55 and ln 2), the domains are pulled "
        "apart and nothing is adapted; after 100 epochs target accuracy 0.736 (seed 1: "
        "0.674), no better than the source-only model's 0.759 (0.696), instead of 0.933 "
        "(seed 1: 0.961)",
        edits=(
            Edit(
                "output = grad_output.neg() * ctx.alpha",
                "output = grad_output * ctx.alpha",
            ),
        ),
    ),
    Fault(
        "wild-dann-gradient-reversal-target-batch-from-source",
        DANN,
        4,
        "test",
        "the 'target' half-batch is indexed from the source inputs (x_src[idx_t], a "
        "copy-paste of the line above): the domain labels 0 and 1 are given to two "
        "batches from the same distribution, the domain classifier cannot beat chance "
        "(domain loss 0.693) and its reversed gradient carries no information about the "
        "target; after 100 epochs target accuracy 0.737 (seed 1: 0.729), the source-only "
        "model's level (0.759, 0.696), instead of 0.933 (seed 1: 0.961)",
        also=(3,),
        edits=(Edit("t_data = x_tgt[idx_t]", "t_data = x_src[idx_t]"),),
    ),
    # --- LoRA -----------------------------------------------------------------------------
    Fault(
        "wild-lora-finetune-lora-a-zero-init",
        LORA,
        28,
        "test",
        "lora_A is initialised with zeros like lora_B (nn.init.zeros_ for the Kaiming "
        "init): the gradient of lora_B is proportional to lora_A and that of lora_A to "
        "lora_B, so with both at zero neither ever moves; after 30 epochs the task-B test accuracy is "
        "0.338 (seed 1: 0.301), exactly the pre-trained model's, and the task-B loss "
        "stays at 9.6 (seed 1: 10.0), instead of 0.887 (seed 1: 0.876) and a loss of 0.10",
        also=(23,),
        edits=(
            Edit(
                "nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))",
                "nn.init.zeros_(self.lora_A)",
            ),
        ),
    ),
    Fault(
        "wild-lora-finetune-task-b-not-standardised",
        LORA,
        14,
        "test",
        "the task-B features are never standardised with the pre-training statistics "
        "(the line that applies mean and std to them is missing): the frozen first layer "
        "gets raw readings with offsets in the tens and spreads up to 20, which the "
        "rank-8 updates of the later layers cannot undo; task-B accuracy 0.221 before "
        "and 0.754 after 30 epochs (seed 1: 0.160 and 0.793), the fine-tuning loss 0.54, "
        "instead of 0.338 and 0.887 (seed 1: 0.301 and 0.876) and 0.10",
        also=(12, 15),
        edits=(
            Edit("    xb_train, xb_test = (xb_train - mean) / std, (xb_test - mean) / std\n", ""),
        ),
    ),
):
    register_fault(fault)
