"""Wild cases: a sparse autoencoder, a Switch MoE, SWA and a Wide & Deep CTR model.

The healthy scripts live in ``examples/wild/``, each in the manner of a well-known public
PyTorch training script (written here, not copied): a sparse autoencoder for dictionary
learning as the mechanistic-interpretability trainers write it (synthetic activations
in superposition over known feature directions, a constant rescaling to a mean squared
norm of ``d_model``, a pre-encoder bias, an overcomplete ReLU encoder, L2 reconstruction
plus an L1 penalty, the decoder gradient made orthogonal to its columns before each Adam
step and the columns renormalised after it, recovery of the true features); a Switch
Transformer tagger whose feed-forward parts are top-1 mixture-of-experts layers (router
softmax, capacity factor with token dropping, FFN experts scaled by the router
probability, the ``num_experts * sum f_i * P_i`` load-balancing loss, AdamW with warm-up
and cosine decay); stochastic weight averaging of a BatchNorm CNN with
``torch.optim.swa_utils`` (cosine schedule until ``swa_start``, then ``AveragedModel``
updated every epoch under ``SWALR``, ``update_bn`` at the end); and a Wide & Deep
click-through-rate model (hashed categorical fields and crosses, a dimension-1
``EmbeddingBag`` wide part and an embedding + MLP deep part, ``sparse=True`` tables
trained by ``SparseAdam`` next to ``Adam`` for the MLP, ``BCEWithLogitsLoss``, held-out
AUC and log loss). Each fault is one bug as it arrives in code in that style.

Names start with ``wild-``. Split: four scripts of the group of thirteen in ``wild_q.py`` to
``wild_t.py`` (the GIN graph classifier, the attention GRU translator, SWA and Wide & Deep),
with their faults, are ``test``, drawn at random (seed 20261205) before the first
measurement; the rest ``dev``.
"""

from __future__ import annotations

from nndoctor.faults.registry import Edit, Fault, HealthyCase, register_fault, register_healthy

SAE = "wild-sparse-autoencoder-dict"
MOE = "wild-moe-switch"
SWA = "wild-swa-cnn"
WIDE_DEEP = "wild-wide-deep-ctr"

for case in (
    HealthyCase(
        SAE,
        "dev",
        "sparse autoencoder on synthetic activations in superposition: constant rescaling "
        "to mean squared norm d_model, pre-encoder bias, 512 ReLU latents, summed L2 "
        "reconstruction + L1 on the codes (the penalty keeps the loss far from zero), "
        "decoder gradient projected and columns renormalised in place around each Adam "
        "step, latents dying on purpose; FVE, L0 and true features recovered",
        script="wild/sparse_autoencoder_dict.py",
    ),
    HealthyCase(
        MOE,
        "dev",
        "Switch-Transformer tagger: top-1 router softmax, capacity factor 1.25 with token "
        "dropping (data-dependent indexing, experts that may see no token in a batch), "
        "experts scaled by the router probability, load-balancing loss (about 1 per "
        "layer, never minimised to 0) with coefficient 0.01, CE with ignore_index, AdamW "
        "with warm-up + cosine by LambdaLR per step",
        script="wild/moe_switch.py",
    ),
    HealthyCase(
        SWA,
        "test",
        "SWA with torch.optim.swa_utils: BatchNorm CNN on generated shapes with 10% label "
        "noise, SGD momentum with cosine annealing per epoch until swa_start, then SWALR "
        "(the lr rises again to 0.02) and AveragedModel.update_parameters per epoch, "
        "update_bn on the averaged model; the raw model's accuracy drops in the SWA phase "
        "while the averaged one's is high",
        script="wild/swa_cnn.py",
    ),
    HealthyCase(
        WIDE_DEEP,
        "test",
        "Wide & Deep CTR: hashed categorical fields and crosses, dimension-1 EmbeddingBag "
        "wide part initialised at zero, Embedding + MLP deep part, sparse=True tables "
        "trained by SparseAdam and the MLP by Adam (two optimizers), BCEWithLogitsLoss on "
        "a noisy simulated click (loss floor about 0.35), held-out AUC and log loss; the "
        "test log loss starts rising in the third epoch",
        script="wild/wide_deep_ctr.py",
    ),
):
    register_healthy(case)


for fault in (
    # --- sparse autoencoder ---------------------------------------------------------------
    Fault(
        "wild-sparse-autoencoder-dict-scale-inverted",
        SAE,
        12,
        "dev",
        "the normalisation constant is computed upside down (mean norm / sqrt(d_model) "
        "instead of sqrt(d_model) / mean norm): the activations reach the SAE about 58 "
        "times larger than intended (mean norm ~470 instead of 8), the squared error "
        "outweighs the L1 penalty tuned for the normalised scale and Adam's steps are tiny "
        "against it; after 1,500 steps FVE 0.997 but L0 243 of 512 latents and 0 of the "
        "256 true features recovered, instead of FVE 0.78, L0 11 and 256/256 (seeds 1, 2: "
        "256/256 as well)",
        also=(20, 1),
        edits=(
            Edit(
                "return (d_model**0.5) / norms.mean().item()",
                "return norms.mean().item() / (d_model**0.5)",
            ),
        ),
    ),
    Fault(
        "wild-sparse-autoencoder-dict-decoder-norm-wrong-dim",
        SAE,
        25,
        "dev",
        "the decoder is renormalised along dim=1 (its rows, one per model dimension) instead "
        "of dim=0 (its columns, the dictionary atoms): the atoms are no longer unit-norm, "
        "the gradient projection that assumes they are removes the wrong component, and "
        "the latents die one after the other; after 1,500 steps 228 of 512 latents are "
        "dead, FVE 0.55 and 55 of the 256 true features recovered, instead of 23 dead, "
        "FVE 0.78 and 256/256",
        also=(22, 35),
        edits=(
            Edit(
                "W.div_(W.norm(dim=0, keepdim=True))",
                "W.div_(W.norm(dim=1, keepdim=True))",
            ),
        ),
    ),
    # --- Switch MoE -----------------------------------------------------------------------
    Fault(
        "wild-moe-switch-router-softmax-over-tokens",
        MOE,
        25,
        "dev",
        "the router's softmax is taken over dim=0, the flattened tokens, instead of over "
        "the experts: each gate is a token's share of an expert's column (about 1/1,500 "
        "in training and 1/12,000 on the held-out batch), so the experts' outputs are "
        "scaled to almost nothing and depend on the batch, and the load-balancing loss "
        "is stuck at 0.01; after 1,000 steps training loss 0.71 and held-out accuracy "
        "0.61 instead of 0.21 and 0.94",
        also=(22,),
        edits=(
            Edit(
                "F.softmax(self.router(x), dim=-1)",
                "F.softmax(self.router(x), dim=0)",
            ),
        ),
    ),
    Fault(
        "wild-moe-switch-capacity-from-batch-size",
        MOE,
        22,
        "dev",
        "the expert capacity is computed from the number of sequences (batch_size) instead "
        "of the number of tokens: 10 tokens per expert out of 1,536, so 95% of the tokens "
        "are dropped and pass only through the residual in every layer; after 1,000 steps "
        "training loss 0.82 and held-out accuracy 0.71 instead of 0.21 and 0.94 (dropped "
        "share 0.948 instead of under 0.04)",
        also=(25, 24),
        edits=(
            Edit(
                "capacity_factor * n_tokens /",
                "capacity_factor * batch_size /",
            ),
        ),
    ),
    # --- SWA ------------------------------------------------------------------------------
    Fault(
        "wild-swa-cnn-bn-weight-zero-init",
        SWA,
        28,
        "test",
        "the init loop sets every BatchNorm weight to 0 (the zero-gamma trick meant for the "
        "last BatchNorm of residual branches, applied to a plain CNN): every stage outputs "
        "ReLU(0) = 0, no gradient reaches any convolution or BatchNorm and only the "
        "classifier's bias learns; the training loss stays at 2.08 (ln 8 = 2.08) and both "
        "the model and the SWA model score 0.12 on the test set, chance, instead of 0.85 "
        "and 0.98",
        also=(35, 23),
        edits=(
            Edit(
                "nn.init.constant_(m.weight, 1)",
                "nn.init.constant_(m.weight, 0)",
            ),
        ),
    ),
    Fault(
        "wild-swa-cnn-update-bn-on-model",
        SWA,
        32,
        "test",
        "update_bn is run on model instead of swa_model: the averaged weights keep the "
        "BatchNorm statistics copied when AveragedModel was built, before training, and "
        "are evaluated with them; the SWA model scores 0.924 on the test set instead of "
        "0.982 (seed 1: 0.949 instead of 0.984), three to four times the errors, while the "
        "raw model, whose statistics get recomputed instead, is the one that improves",
        edits=(
            Edit(
                "    update_bn(train_loader, swa_model)\n",
                "    update_bn(train_loader, model)\n",
            ),
        ),
    ),
    # --- Wide & Deep ----------------------------------------------------------------------
    Fault(
        "wild-wide-deep-ctr-wide-not-in-optimizer",
        WIDE_DEEP,
        23,
        "test",
        "the sparse parameters handed to SparseAdam are only the deep embedding table: the "
        "wide EmbeddingBag over the crosses gets gradients that no optimizer applies and "
        "stays at its zero initialisation, so the ad x device and category x hour effects "
        "are left to the deep part; after 3 epochs held-out AUC 0.800 and log loss 0.418 "
        "instead of 0.848 and 0.376 (true probabilities: 0.868 and 0.354)",
        edits=(
            Edit(
                "sparse_params = [model.wide.weight, model.embedding.weight]",
                "sparse_params = [model.embedding.weight]",
            ),
        ),
    ),
    Fault(
        "wild-wide-deep-ctr-sigmoid-before-bce-with-logits",
        WIDE_DEEP,
        19,
        "test",
        "forward returns torch.sigmoid(wide + deep), a click probability, which goes into "
        "BCEWithLogitsLoss as if it were a logit: the loss of a negative is smallest at a "
        "'logit' of 0 and the model cannot go below it, the training loss sits at ln 2 = "
        "0.693 (0.698 over the first epoch) and the held-out AUC is 0.63 (log loss 0.693) "
        "instead of 0.848 (log loss 0.376)",
        edits=(
            Edit(
                "        return wide + deep\n",
                "        return torch.sigmoid(wide + deep)\n",
            ),
        ),
    ),
):
    register_fault(fault)
