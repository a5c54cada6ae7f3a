"""Wild cases, twelfth group: Forward-Forward, a Fourier Neural Operator, Barlow Twins,
Bayes by Backprop, N-BEATS, a Masked Autoencoder, a Hierarchical Attention Network and a
graph auto-encoder.

The healthy scripts live in ``examples/wild/``, each in the manner of a well-known public
PyTorch training script (written here, not copied): Hinton's Forward-Forward as in the
PyTorch examples (one optimizer per layer, layers trained greedily on detached outputs,
positive and negative data by an overlaid label); a 1-D Fourier Neural Operator as in
neuraloperator's ``fourier_1d.py`` (complex ``cfloat`` parameters, ``rfft``/``irfft``, a
Burgers solver in the script, a relative L2 loss); Barlow Twins as in the official
``main.py`` (the cross-correlation of batch-normalised embeddings, a hand-written LARS,
then a linear probe); Bayes by Backprop as in the Blundell-style tutorials (weights
sampled every forward, the ELBO's complexity term divided by the number of batches);
N-BEATS with the generic architecture (doubly residual stacks, windows scaled by their
lookback); a scaled-down Masked Autoencoder as in facebookresearch/mae (``argsort``
masking, ``norm_pix_loss`` on masked patches, then a probe); a Hierarchical Attention
Network (packed bidirectional GRUs, masked attention at word and sentence level); and a
graph auto-encoder as in tkipf/gae (a sparse normalised adjacency from the training edges,
an inner-product decoder, fresh negatives each epoch). Each fault is one bug as it arrives
in code in that style, measured to do real harm.

Names start with ``wild-``. They were written without running nndoctor on them; three of
the eight scripts (Forward-Forward, Barlow Twins and the Hierarchical Attention Network),
with their faults, were drawn at random (seed 20261205) for ``test`` before the first
measurement; the rest are ``dev``.
"""

from __future__ import annotations

from nndoctor.faults.registry import Edit, Fault, HealthyCase, register_fault, register_healthy

FORWARD_FORWARD = "wild-forward-forward"
FNO_BURGERS = "wild-fno-burgers"
BARLOW_TWINS = "wild-barlow-twins"
BAYES_BY_BACKPROP = "wild-bayes-by-backprop"
NBEATS_FORECAST = "wild-nbeats-forecast"
MAE_MASKED_PATCHES = "wild-mae-masked-patches"
HAN_DOCUMENTS = "wild-han-documents"
GAE_LINKS = "wild-graph-autoencoder-links"

for case in (
    HealthyCase(
        FORWARD_FORWARD,
        "test",
        "Forward-Forward (mnist_forward_forward style) on generated 12x12 digit glyphs: label "
        "one-hot overlaid on the first 10 pixels (negatives: a wrong label), two Layer(nn.Linear) "
        "144-256-256 each with its own Adam and its own train() overriding nn.Module.train, inputs "
        "divided by their length, goodness = mean squared ReLU activation, softplus loss around "
        "a threshold of 2 (no output layer, no cross-entropy, no backprop between layers), layers "
        "trained one after the other on detached outputs, prediction by the label of highest "
        "summed goodness",
        script="wild/forward_forward.py",
    ),
    HealthyCase(
        FNO_BURGERS,
        "dev",
        "1-D Fourier Neural Operator (neuraloperator fourier_1d.py style) on viscous Burgers "
        "solved in the script (GRF initial conditions, 128 points, u0 -> u(T=1)): fc0 lifting of "
        "(u0, x), 4 SpectralConv1d with complex cfloat nn.Parameter weights on the 16 lowest "
        "rfft modes + 1x1 Conv1d skips, GELU, fc1/fc2 projection; relative L2 loss summed over "
        "the batch (targets of size ~0.15, MSE ~1e-6), Adam with weight decay + StepLR halving "
        "every 5 epochs, DataLoader",
        script="wild/fno_burgers.py",
    ),
    HealthyCase(
        BARLOW_TWINS,
        "test",
        "Barlow Twins (official main.py, scaled down) on generated 1x16x16 shapes: two "
        "asymmetric batch augmentations in torch (affine_grid/grid_sample crops, flips, jitter, "
        "blur, noise), CNN backbone + 3-layer projector with BatchNorm1d, loss on the "
        "cross-correlation of BatchNorm1d(affine=False) embeddings (on-diagonal + lambda * "
        "off-diagonal, stays far above zero, ~15 at the end), hand-written LARS with a trust "
        "ratio and a per-step warm-up + cosine lr set by hand in two param groups; then a "
        "linear probe (CrossEntropyLoss, Adam) on frozen eval-mode features vs a random backbone",
        script="wild/barlow_twins.py",
    ),
    HealthyCase(
        BAYES_BY_BACKPROP,
        "dev",
        "Bayes by Backprop on three interleaved 2-D spirals: BayesianLinear modules with "
        "weight mu and rho (sigma = softplus(rho), rho ~ -4.5 so sigma ~ 0.01), fresh "
        "reparameterised weights every forward, scale-mixture prior, log prior and log "
        "posterior stored on each layer; loss = (log q - log p) / num_batches + summed NLL of "
        "log_softmax averaged over 3 samples, dominated by the complexity term (about 450 of "
        "475 at the end, still falling), noisy per-step outputs, Adam; predictive mean over "
        "20 samples",
        script="wild/bayes_by_backprop.py",
    ),
    HealthyCase(
        NBEATS_FORECAST,
        "dev",
        "N-BEATS generic (2 stacks x 3 blocks of four 128-wide ReLU layers, bias-free theta "
        "layers of 16 and linear backcast/forecast bases) on 300 generated series whose levels "
        "span 1 to 1,000: lookback 48 / horizon 12 windows cut at random points by fancy "
        "indexing (no DataLoader), each divided by its lookback's mean |x|, doubly residual "
        "x = x - backcast / forecast = forecast + f, MAE on the scaled forecast (0.03 within "
        "500 steps), Adam + clip_grad_norm_ + StepLR per step, sMAPE vs seasonal naive",
        script="wild/nbeats_forecast.py",
    ),
    HealthyCase(
        MAE_MASKED_PATCHES,
        "dev",
        "scaled-down MAE (models_mae.py style) on generated 1x16x16 shapes and textures in "
        "4x4 patches: fixed sin-cos pos_embed with requires_grad=False, argsort-of-noise "
        "masking keeping 4 of 16 patches (ids_keep / ids_restore / torch.gather), cls token, "
        "decoder with mask tokens, norm_pix_loss MSE averaged over the masked patches only "
        "(stays near 0.8, noise patches are unpredictable), AdamW + per-step LambdaLR warm-up "
        "and cosine to 0; then a frozen encoder's mean-pooled features, standardised, under "
        "a linear probe vs the same probe on a random encoder",
        script="wild/mae_masked_patches.py",
    ),
    HealthyCase(
        HAN_DOCUMENTS,
        "test",
        "Hierarchical Attention Network on generated documents (300 tokens, 3-8 sentences of "
        "4-14 words, padded to [batch, 8, 14] with PAD 0, five classes of unequal frequency "
        "named by an in-order key bigram in one sentence among reversed or split distractor "
        "phrases): real sentences gathered by a boolean mask, nn.Embedding(padding_idx=0), "
        "bidirectional GRUs over pack_padded_sequence(enforce_sorted=False) at the word and "
        "the sentence level, tanh attention against context vectors u_w / u_s with "
        "masked_fill(-inf) softmax over real words and real sentences, sentence vectors "
        "scattered back into a zero tensor, dropout, CrossEntropyLoss, Adam + "
        "clip_grad_norm_(5), shuffled index mini-batches",
        script="wild/han_documents.py",
    ),
    HealthyCase(
        GAE_LINKS,
        "dev",
        "graph auto-encoder for link prediction on a generated random geometric graph (500 "
        "nodes, about 2,000 edges, 24 noisy Fourier features of position): 85/5/10 edge split "
        "with held-out non-edges, D^-1/2 (A + I) D^-1/2 of the training edges only as a sparse "
        "COO tensor, two-layer GCN (Glorot weights, torch.sparse.mm, linear latent layer), "
        "inner-product decoder, BCE-with-logits on positive and freshly sampled negative "
        "pairs each epoch (a loss that stays near 0.8, far from 0), full-batch Adam at 0.01 "
        "for 200 epochs, ROC-AUC and AP computed in torch against feature cosine",
        script="wild/graph_autoencoder_links.py",
    ),
):
    register_healthy(case)


for fault in (
    Fault(
        "wild-forward-forward-loss-sign",
        FORWARD_FORWARD,
        18,
        "test",
        "the positive term of the goodness loss has its sign flipped, cat([g_pos - threshold, "
        "g_neg - threshold]): both positive and negative goodness are pushed below the "
        "threshold, so each layer learns to switch its units off instead of separating the "
        "true label from the wrong ones: every goodness goes to 0, the loss of both layers "
        "settles at log(1 + e^-2) = 0.127 (healthy: 0.128 and 0.19, so it looks converged) and "
        "every image gets the same label; after 100 epochs per layer the test error is 0.896 / "
        "0.912 (seeds 0 / 1) instead of 0.083 / 0.104 (chance: 0.9)",
        also=(21, 17),
        edits=(
            Edit(
                "[-g_pos + self.threshold, g_neg - self.threshold]",
                "[g_pos - self.threshold, g_neg - self.threshold]",
            ),
        ),
    ),
    Fault(
        "wild-forward-forward-norm-over-batch",
        FORWARD_FORWARD,
        25,
        "test",
        "each layer's input is divided by its norm over the batch dimension, x.norm(2, 0, "
        "keepdim=True), instead of each sample's own length (dim 1): every sample is scaled "
        "by statistics of the others in the batch, the scale differs between the positive "
        "batch, the negative batch and the ten label overlays of prediction (where one label "
        "pixel is set in every row), and the length of the previous layer's activity leaks "
        "through; the second layer's loss stays at 0.50 (healthy 0.19) and the error on the "
        "4,000 training images is 0.540 / 0.557 (seeds 0 / 1) and on the 1,000 test images "
        "0.382 / 0.377, instead of 0.051 / 0.053 and 0.083 / 0.104 (chance: 0.9)",
        also=(12,),
        edits=(Edit("x.norm(2, 1, keepdim=True)", "x.norm(2, 0, keepdim=True)"),),
    ),
    Fault(
        "wild-fno-burgers-weights-not-parameter",
        FNO_BURGERS,
        23,
        "dev",
        "the spectral weights of SpectralConv1d are assigned as a plain complex tensor "
        "(self.scale * torch.rand(..., dtype=torch.cfloat)) instead of wrapped in nn.Parameter: "
        "they are not registered, model.parameters() leaves them out of Adam and they keep "
        "their random initial values, so the Fourier layers are fixed random filters and only "
        "the lifting, the 1x1 skips and the projection train; after 20 epochs the test relative "
        "L2 error is 0.561 / 0.578 (seeds 0 / 1) instead of 0.0057 / 0.0065 (predicting 0: "
        "1.0, predicting u0: 3.2)",
        also=(33,),
        edits=(
            Edit(
                "        self.weights1 = nn.Parameter(\n",
                "        self.weights1 = (\n",
            ),
        ),
    ),
    Fault(
        "wild-fno-burgers-spectral-init-unscaled",
        FNO_BURGERS,
        28,
        "dev",
        "the spectral weights are initialised with torch.rand(in_channels, out_channels, modes, "
        "dtype=torch.cfloat) without the 1 / (in_channels * out_channels) scale: every Fourier "
        "layer multiplies the low modes by a sum of 48 complex weights of size ~0.7, so at step "
        "0 the spectral branch grows ~30x per layer (std 1.1, 7, 212, 6,000; the output's std "
        "is 890 instead of 3e-4) and the targets are ~0.15; after 20 epochs the test relative "
        "L2 error is 1.30 / 1.59 (seeds 0 / 1), worse than predicting 0 (1.0), instead of "
        "0.0057 / 0.0065",
        also=(35,),
        edits=(
            Edit(
                "            self.scale * torch.rand(in_channels, out_channels, self.modes1, "
                "dtype=torch.cfloat)",
                "            torch.rand("
                "in_channels, out_channels, self.modes1, dtype=torch.cfloat)",
            ),
        ),
    ),
    Fault(
        "wild-barlow-twins-same-view-twice",
        BARLOW_TWINS,
        18,
        "test",
        "copy-paste in BarlowTwins.forward: z2 is computed from y1 instead of y2, so both "
        "embeddings are of the same augmented view and the invariance term is trivially "
        "satisfied (on-diagonal loss 0.00, total 2.11 instead of 15.4 at the end): the "
        "network learns no invariance to the augmentations, and the linear probe on its "
        "backbone ends at 0.729 (seed 0) and 0.696 (seed 1) instead of 0.941 and 0.913, "
        "below the probe on a random backbone (0.745, 0.773)",
        also=(3, 21),
        edits=(
            Edit(
                "z2 = self.projector(self.backbone(y2))",
                "z2 = self.projector(self.backbone(y1))",
            ),
        ),
    ),
    Fault(
        "wild-barlow-twins-probe-features-shuffled",
        BARLOW_TWINS,
        4,
        "test",
        "the loader in extract_features is built with shuffle=True: the probe's features come "
        "out in a random order while the labels stay in the original one, so every feature is "
        "paired with a random label (for training and for the test); the pretraining is "
        "untouched, but the linear probe ends at chance, 0.168 (seed 0) and 0.159 (seed 1) "
        "instead of 0.941 and 0.913 (chance 0.167), the random-backbone probe too",
        also=(3,),
        edits=(
            Edit(
                "loader = DataLoader(TensorDataset(images), batch_size=batch_size)",
                "loader = DataLoader(TensorDataset(images), batch_size=batch_size, shuffle=True)",
            ),
        ),
    ),
    Fault(
        "wild-bayes-by-backprop-nll-mean",
        BAYES_BY_BACKPROP,
        20,
        "dev",
        "the NLL in sample_elbo uses F.nll_loss's default reduction='mean' instead of 'sum', "
        "while the complexity term is still divided only by the number of batches: the KL "
        "is weighted 100x (the batch size) too much against the data, the posterior stays at "
        "the prior and the network predicts nothing; after 100 epochs the test accuracy of the "
        "predictive mean is 0.358 (seed 0) and 0.359 (seed 1) instead of 0.957 and 0.967 "
        "(chance 0.333), with a predictive entropy of 1.07 on the test points (max 1.099) "
        "instead of 0.34",
        also=(30, 18),
        edits=(
            Edit(
                'F.nll_loss(outputs.mean(0), target, reduction="sum")',
                "F.nll_loss(outputs.mean(0), target)",
            ),
        ),
    ),
    Fault(
        "wild-bayes-by-backprop-softmax-into-nll",
        BAYES_BY_BACKPROP,
        19,
        "dev",
        "the network's last line applies F.softmax instead of F.log_softmax, so F.nll_loss "
        "receives probabilities and minimises -p (bounded, with vanishing gradients for "
        "confident mistakes) against the full-size complexity term; the training loss ends "
        "below the complexity term alone, the test accuracy of the predictive mean at 0.747 "
        "(seed 0) and 0.555 (seed 1) instead of 0.957 and 0.967, and the 'entropies' computed "
        "from exp(output) are negative (-2.39, -2.56)",
        also=(18,),
        edits=(
            Edit(
                "x = F.log_softmax(self.l3(x, sample), dim=1)",
                "x = F.softmax(self.l3(x, sample), dim=1)",
            ),
        ),
    ),
    Fault(
        "wild-nbeats-forecast-scale-over-batch",
        NBEATS_FORECAST,
        25,
        "dev",
        "window_scale takes x.abs().mean() over the whole batch instead of each lookback's "
        "mean (dim=1): every window of the batch, from series of level 1 to 1,000, is divided "
        "by the same number, so the scaled inputs and targets keep their spread (about 0.01 "
        "to 7) and one window's forecast depends on the others in its batch; the training MAE "
        "still looks normal (0.029), but after 1,500 steps the test sMAPE is 5.80 (seed 1: "
        "5.61) instead of 2.92 (3.04); seasonal naive 8.87 (8.78)",
        also=(12,),
        edits=(
            Edit(
                "return x.abs().mean(dim=1, keepdim=True) + 1e-6",
                "return x.abs().mean() + 1e-6",
            ),
        ),
    ),
    Fault(
        "wild-nbeats-forecast-lookback-overlaps-target",
        NBEATS_FORECAST,
        3,
        "dev",
        "the lookback offsets are written arange(-LOOKBACK + 1, 1) instead of "
        "arange(-LOOKBACK, 0): the last input value of every training window is the first "
        "target value, the network learns to copy it, and at test time (where the lookback "
        "really ends before the horizon) its forecasts are shifted by a step; the training "
        "MAE looks even better than healthy (0.0266 vs 0.0275) but after 1,500 steps the "
        "test sMAPE is 8.49 (seed 1: 8.57) instead of 2.92 (3.04), no better than the "
        "seasonal naive forecast (8.87, 8.78)",
        also=(4, 21),
        edits=(
            Edit(
                "offsets_x = torch.arange(-LOOKBACK, 0)[None, :]",
                "offsets_x = torch.arange(-LOOKBACK + 1, 1)[None, :]",
            ),
        ),
    ),
    Fault(
        "wild-mae-masked-patches-loss-on-visible",
        MAE_MASKED_PATCHES,
        18,
        "dev",
        "random_masking zeroes the mask at len_keep: instead of :len_keep, so after the "
        "unshuffle the mask is 1 on the 4 VISIBLE patches and 0 on the removed ones: the "
        "loss is averaged over the patches the encoder already saw, which the model learns "
        "to copy (train loss 0.003 instead of 0.80, the printed held-out 'masked' loss 0.003 "
        "measures the same wrong thing); after 30 epochs the linear probe reaches 0.806 "
        "(seed 1: 0.789) instead of 0.837 (0.829), against 0.710 (0.729) for a random encoder",
        also=(21,),
        edits=(Edit("mask[:, :len_keep] = 0", "mask[:, len_keep:] = 0"),),
    ),
    Fault(
        "wild-mae-masked-patches-scheduler-per-epoch",
        MAE_MASKED_PATCHES,
        36,
        "dev",
        "the per-step LambdaLR (warm-up over 5 x 46 = 230 steps, cosine to step 1,380) is "
        "stepped once per epoch, after the batch loop: it sees 30 steps in all, the learning "
        "rate never leaves the warm-up and ends at 1.35e-4 instead of peaking at 1e-3; after "
        "30 epochs the train loss is 0.896 (seed 1: 0.895) instead of 0.798 (0.772) and the "
        "linear probe 0.768 (0.780) instead of 0.837 (0.829), random encoder 0.710 (0.729)",
        also=(29,),
        edits=(
            Edit(
                "        scheduler.step()\n        total += loss.item() * imgs.shape[0]\n"
                "        n += imgs.shape[0]\n    return total / n",
                "        total += loss.item() * imgs.shape[0]\n        n += imgs.shape[0]\n"
                "    scheduler.step()\n    return total / n",
            ),
        ),
    ),
    Fault(
        "wild-han-documents-labels-not-shuffled",
        HAN_DOCUMENTS,
        4,
        "test",
        "the training loop indexes the documents with the shuffled batch indices but takes the "
        "labels as labels[start : start + batch_size], in file order: every batch pairs its "
        "documents with another batch's labels, re-drawn each epoch; the training loss stays "
        "at the prior entropy (1.547 after 8 epochs instead of 0.080) and the test accuracy "
        "ends at 0.288 / 0.287 (seeds 0 / 1) instead of 0.956 / 0.947, the majority class "
        "(0.290 / 0.287)",
        also=(3,),
        edits=(
            Edit(
                "loss = criterion(scores, labels[idx])",
                "loss = criterion(scores, labels[start : start + batch_size])",
            ),
        ),
    ),
    Fault(
        "wild-han-documents-sentence-softmax-over-batch",
        HAN_DOCUMENTS,
        25,
        "test",
        "the sentence attention takes torch.softmax(scores, dim=0), over the documents of the "
        "batch, instead of dim=1 over the sentences of each document: a document's weights no "
        "longer sum to one and depend on the other documents in the batch (and on the batch "
        "size at test time); the training accuracy stalls near 0.53 for six epochs and the "
        "test accuracy ends at 0.619 / 0.509 (seeds 0 / 1) instead of 0.956 / 0.947",
        also=(22,),
        edits=(
            Edit(
                "        alphas = torch.softmax(scores, dim=1)\n        documents = ",
                "        alphas = torch.softmax(scores, dim=0)\n        documents = ",
            ),
        ),
    ),
    Fault(
        "wild-graph-autoencoder-links-sigmoid-decoder",
        GAE_LINKS,
        19,
        "dev",
        "the inner-product decoder returns torch.sigmoid(z_i . z_j), as PyG's "
        "InnerProductDecoder does by default, and its output is still fed to "
        "binary_cross_entropy_with_logits: the loss sees probabilities in [0, 1] as logits, "
        "cannot go below 1.0 (it stalls at 1.15 instead of falling to 0.78) and its gradient "
        "vanishes as the sigmoid saturates; the test ROC-AUC ends at 0.874 / 0.896 (seeds 0 / "
        "1) instead of 0.975 / 0.970, barely above the feature cosine (0.838 / 0.812)",
        also=(18,),
        edits=(
            Edit(
                "        return (z[edge_index[0]] * z[edge_index[1]]).sum(dim=-1)\n",
                "        return torch.sigmoid((z[edge_index[0]] * z[edge_index[1]]).sum(dim=-1))\n",
            ),
        ),
    ),
    Fault(
        "wild-graph-autoencoder-links-degree-power-sign",
        GAE_LINKS,
        35,
        "dev",
        "the adjacency is normalised with deg.pow(0.5) instead of deg.pow(-0.5): the "
        "propagation matrix becomes D^1/2 (A + I) D^1/2, whose entries grow with the degrees "
        "(about 8 instead of 1/8), so each GCN layer multiplies the activations by roughly "
        "the squared degree; the logits explode (loss 1.5e6 at epoch 20, still 2e4 at epoch "
        "200 instead of 0.78) and the test ROC-AUC ends at 0.786 / 0.793 (seeds 0 / 1) "
        "instead of 0.975 / 0.970, below the feature cosine (0.838 / 0.812)",
        also=(22, 12),
        edits=(Edit("deg_inv_sqrt = deg.pow(-0.5)", "deg_inv_sqrt = deg.pow(0.5)"),),
    ),
):
    register_fault(fault)
