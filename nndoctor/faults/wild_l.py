"""Wild cases, twelfth set: setups unlike the ones nndoctor was tuned on, and real bugs in them.

The healthy scripts live in ``examples/wild/``, each in the manner of a well-known public
PyTorch training script (written here, not copied): a WGAN-GP on eight 2-D Gaussians
(ReLU MLP critic and generator, five critic steps per generator step, the gradient
penalty on random interpolates through ``torch.autograd.grad(create_graph=True)``, the
critic's ``requires_grad`` switched off for the generator's step, Adam with
``betas=(0.5, 0.9)``); CLIP-style contrastive training of a BatchNorm CNN image tower
and a causal Transformer text tower on generated scenes and their captions (pooling at
the EOS token, L2-normalised embeddings, a clamped learnable log-temperature, symmetric
cross-entropy over the batch's similarity matrix, AdamW with warm-up and cosine decay,
retrieval recall@1); DeepSurv on a generated censored cohort (SELU/AlphaDropout MLP to
a log-risk, a hand-written Cox partial likelihood over each batch sorted by descending
duration with ``logcumsumexp``, Adam with weight decay, Harrell's C-index); second-order
MAML on sine waves (a functional MLP run with per-task fast weights, one inner SGD step
with ``create_graph=True``, Adam over meta-batches of 25 tasks, post-adaptation MSE on
held-out tasks); and FixMatch on generated shape images (5 labels per class, weak and
strong augmentations written in torch, one forward pass over the concatenated views,
pseudo-labels above 0.95 confidence, Nesterov SGD with the FixMatch cosine decay, an EMA
model for evaluation). Each fault is one bug as it arrives in code in that style.

Names start with ``wild-``. Split: the survival model and MAML, with their faults, are ``test``
(drawn at random with the first half of the group, seed 20261214, before the first
measurement), the rest ``dev``.
"""

from __future__ import annotations

from nndoctor.faults.registry import Edit, Fault, HealthyCase, register_fault, register_healthy

WGAN = "wild-wgan-gp"
CLIP = "wild-clip-two-tower"
DEEPSURV = "wild-deepsurv-cox"
MAML = "wild-maml-sine"
FIXMATCH = "wild-fixmatch-semi"

for case in (
    HealthyCase(
        WGAN,
        "dev",
        "WGAN-GP on eight 2-D Gaussians: 5 critic steps per generator step, gradient penalty "
        "(lambda 0.1) on interpolates by autograd.grad(create_graph=True), critic "
        "requires_grad toggled around the generator's step, unbounded critic and generator "
        "costs that are not minimised to zero, Adam betas=(0.5, 0.9)",
        script="wild/wgan_gp.py",
    ),
    HealthyCase(
        CLIP,
        "dev",
        "CLIP-style two-tower contrastive training: BatchNorm CNN image tower, causal "
        "Transformer text tower pooled at EOS, normalised embeddings, log-parameterised "
        "temperature clamped in place after each step, symmetric cross-entropy against "
        "arange(batch) (loss starts at ln 128), AdamW with warm-up + cosine by LambdaLR, "
        "recall@1 on validation pairs",
        script="wild/clip_two_tower.py",
    ),
    HealthyCase(
        DEEPSURV,
        "test",
        "DeepSurv Cox model on censored survival data: SELU/AlphaDropout MLP to a log-risk, "
        "hand-written partial likelihood (sort by descending time, logcumsumexp, mean over "
        "events; the loss stays near the log of the batch size), Adam with weight decay, "
        "StepLR, C-index validation with the best weights kept",
        script="wild/deepsurv_cox.py",
    ),
    HealthyCase(
        MAML,
        "test",
        "second-order MAML on sine waves: functional MLP with a task axis on the fast "
        "weights (meta-weights expanded over the meta-batch), inner SGD step by "
        "autograd.grad(create_graph=True), outer Adam, noisy meta-loss (fresh tasks every "
        "step), held-out post-adaptation MSE",
        script="wild/maml_sine.py",
    ),
    HealthyCase(
        FIXMATCH,
        "dev",
        "FixMatch with 30 labels and 6,000 unlabelled images: weak/strong augmentation in "
        "torch, one forward over labelled, weak and strong views, confidence-masked pseudo-"
        "label loss (zero while nothing passes 0.95), Nesterov SGD with the 7/16 cosine "
        "decay per step, EMA model (buffers copied) evaluated in eval()",
        script="wild/fixmatch_semi.py",
    ),
):
    register_healthy(case)


for fault in (
    # --- WGAN-GP --------------------------------------------------------------------------
    Fault(
        "wild-wgan-gp-penalty-without-create-graph",
        WGAN,
        26,
        "dev",
        "the penalty's gradient is taken without create_graph=True: the gradient norm is "
        "computed but is a constant for autograd, so the penalty adds to the critic's cost "
        "and nothing to its gradient; the critic is unconstrained, the penalty grows from "
        "1.3e4 to 2-3e5 and the Wasserstein estimate swings between -721 and 1957; after "
        "1,250 iterations the generated points are 0.99 from the nearest centre on "
        "average, 0.8% within 0.1, no mode covered (healthy, seeds 0-2: 0.10-0.12, 71-76%, "
        "all 8 modes)",
        also=(18, 35, 36),
        edits=(
            Edit(
                "        create_graph=True,\n        retain_graph=True,\n",
                "        retain_graph=True,\n",
            ),
        ),
    ),
    Fault(
        "wild-wgan-gp-critic-requires-grad-not-restored",
        WGAN,
        23,
        "dev",
        "the loop that switches the critic's requires_grad back on before its own steps is "
        "missing: after the first generator step the critic is frozen (its cost still "
        "backpropagates to the interpolates only), the generator follows the frozen "
        "critic's slope off to infinity: its cost falls steadily to -5.4e4 while the mean "
        "distance to the nearest centre grows to 3.3e5 (healthy: 0.12, W estimate 0.16)",
        also=(21,),
        edits=(Edit("    for p in netD.parameters():\n        p.requires_grad = True\n", ""),),
    ),
    Fault(
        "wild-wgan-gp-g-optimizer-over-critic-params",
        WGAN,
        23,
        "dev",
        "optimizerG is built over netD.parameters(): the generator's gradients are computed "
        "and never used, and its 'step' moves the critic (frozen then: requires_grad is off, "
        "so its stale gradients are applied again); after 1,250 iterations no mode is "
        "covered, mean distance to the nearest centre 1.32 (healthy 0.12)",
        edits=(
            Edit(
                "optimizerG = torch.optim.Adam(netG.parameters()",
                "optimizerG = torch.optim.Adam(netD.parameters()",
            ),
        ),
    ),
    Fault(
        "wild-wgan-gp-g-stepped-by-critic-optimizer",
        WGAN,
        23,
        "dev",
        "the generator update calls optimizerD.step() where optimizerG.step() was meant: the "
        "generator's gradients are never used and the critic takes a sixth step on the stale "
        "gradients of its last one; after 1,250 iterations no mode is covered, mean distance "
        "1.32 (healthy 0.12)",
        edits=(
            Edit(
                "    G_cost.backward()\n    optimizerG.step()\n",
                "    G_cost.backward()\n    optimizerD.step()\n",
            ),
        ),
    ),
    # --- CLIP-style two towers ------------------------------------------------------------
    Fault(
        "wild-clip-eos-by-argmax-token-id",
        CLIP,
        22,
        "dev",
        "the text tower pools at text.argmax(dim=-1), CLIP's trick that only works when EOS "
        "has the highest token id; here it is id 2, so the feature is taken at the word "
        "with the highest id ('the', 'top', 'white', ...), whose causal attention has not "
        "seen the rest of the caption; after 8 epochs the loss is 2.43 instead of 0.36 and "
        "validation recall@1 (image to text / text to image) 0.123 / 0.078 instead of "
        "0.864 / 0.895",
        also=(25, 4),
        edits=(
            Edit(
                "eos = (text == EOS).int().argmax(dim=-1)  # position of the EOS token",
                "eos = text.argmax(dim=-1)  # position of the EOS token",
            ),
        ),
    ),
    Fault(
        "wild-clip-captions-not-shuffled-with-images",
        CLIP,
        4,
        "dev",
        "the images are split by the shuffled indices but the captions by plain slicing: "
        "every pair matches an image with the caption of another scene; the loss stays near "
        "ln 128 = 4.85 for 4 epochs (4.63 at epoch 4) and then falls only by memorising the "
        "fixed wrong pairs (2.98 after 8 epochs) while validation recall@1 stays at "
        "0.002 / 0.000 (healthy: loss 0.36, recall@1 0.864 / 0.895)",
        also=(3, 21),
        edits=(
            Edit(
                "tokens[train_idx], tokens[val_idx]",
                "tokens[: -args.n_val], tokens[-args.n_val :]",
            ),
        ),
    ),
    # --- DeepSurv ------------------------------------------------------------------------
    Fault(
        "wild-deepsurv-steplr-stepped-per-batch",
        DEEPSURV,
        36,
        "test",
        "scheduler.step() is indented into the batch loop: StepLR(step_size=15, gamma=0.5) "
        "meant for epochs halves the learning rate every 15 batches, so it is below 1e-4 "
        "after 100 batches (in the sixth epoch) and training stops there; the validation "
        "C-index stays at 0.643 from epoch 10 on and the test C-index is 0.61 / 0.64 / 0.66 "
        "on seeds 0-2 instead of 0.71 / 0.74 / 0.74",
        also=(33,),
        edits=(
            Edit(
                "            total, batches = total + loss.item(), batches + 1\n"
                "        scheduler.step()\n",
                "            total, batches = total + loss.item(), batches + 1\n"
                "            scheduler.step()\n",
            ),
        ),
    ),
    Fault(
        "wild-deepsurv-loss-arguments-swapped",
        DEEPSURV,
        19,
        "test",
        "cox_ph_loss(log_risk, duration, event) is called with the events and durations "
        "swapped: batches are sorted by the 0/1 indicator and the durations weight the "
        "terms, so long survivors count most and the risk is learnt backwards; the "
        "validation C-index falls to 0.28 and the test C-index is 0.40 / 0.37 / 0.36 on "
        "seeds 0-2 instead of 0.71 / 0.74 / 0.74",
        also=(18,),
        edits=(
            Edit(
                "loss = cox_ph_loss(model(xb), tb, eb)",
                "loss = cox_ph_loss(model(xb), eb, tb)",
            ),
        ),
    ),
    # --- MAML ----------------------------------------------------------------------------
    Fault(
        "wild-maml-init-by-module-names",
        MAML,
        28,
        "test",
        "the initialisation tests '\"weight\" in name' as for nn.Linear modules, but the "
        "ParameterDict names are w0, b0, ...: every weight is zero-initialised with the "
        "biases, the hidden units are dead symmetric copies, only the last bias receives a "
        "gradient and the model stays a constant: the meta-loss stays at 4.2 and the "
        "held-out MSE is 4.04 before and after 10 adaptation steps (healthy, seeds 0-2: "
        "0.29 / 0.15 / 0.22 after 10 steps)",
        also=(23, 35),
        edits=(Edit('if name.startswith("w"):', 'if "weight" in name:'),),
    ),
    Fault(
        "wild-maml-query-on-meta-weights",
        MAML,
        18,
        "test",
        "the query loss is computed with model(x_query) instead of model(x_query, "
        "fast_weights): the adapted weights are built and then ignored, the outer loop "
        "trains the meta-weights to fit all tasks at once (meta-loss stuck near 3.0) and "
        "nothing makes them easy to adapt; held-out MSE after 1 / 10 steps 2.43 / 1.56 "
        "(healthy 0.49 / 0.29, meta-loss 0.56)",
        also=(5,),
        edits=(
            Edit(
                "meta_loss = task_mse(model(x_query, fast_weights), y_query).mean()",
                "meta_loss = task_mse(model(x_query), y_query).mean()",
            ),
        ),
    ),
    # --- FixMatch ------------------------------------------------------------------------
    Fault(
        "wild-fixmatch-cutout-mask-inverted",
        FIXMATCH,
        13,
        "dev",
        "the Cutout mask is inverted (inside.float() for (~inside).float()): the strong "
        "view keeps only a 7x7 patch of the image and greys out the rest, so the "
        "consistency targets ask the model to recognise shapes it cannot see; after 1,000 "
        "steps the unlabelled loss is 0.62 instead of 0.18, only 46% of the unlabelled "
        "images pass the threshold instead of 80%, and the EMA test accuracy is 0.63 "
        "instead of 0.855 (0.39 with the labelled loss alone)",
        also=(21,),
        edits=(
            Edit(
                "keep = (~inside).float()[:, None]",
                "keep = inside.float()[:, None]",
            ),
        ),
    ),
    Fault(
        "wild-fixmatch-labeled-repeat-interleave",
        FIXMATCH,
        3,
        "dev",
        "the labelled images are repeated with repeat_interleave while their labels are "
        "repeated with repeat: the labelled set pairs each image with a cycle of other "
        "images' labels; the labelled loss stays at 1.78 (ln 6 = 1.79), no pseudo-label "
        "passes the threshold (mask 0.000) and the EMA test accuracy is 0.165, chance, "
        "instead of 0.855",
        also=(4, 6),
        edits=(
            Edit(
                "pool_x[labeled_idx].repeat(repeats, 1, 1, 1)",
                "pool_x[labeled_idx].repeat_interleave(repeats, dim=0)",
            ),
        ),
    ),
):
    register_fault(fault)
