"""Wild cases, eleventh group: spiking and binarised networks, a categorical VAE, an RBM,
MoCo, a message-passing network, DeepAR and DCN-V2.

The healthy scripts live in ``examples/wild/``, each in the manner of a well-known public
PyTorch training script (written here, not copied): a spiking network of leaky
integrate-and-fire neurons trained through a surrogate gradient (an ``autograd.Function``
with a Heaviside forward, SpyTorch style); a BinaryNet-style MLP whose weights and
activations are binarised by a straight-through ``autograd.Function``; a categorical VAE
with ``F.gumbel_softmax(hard=True)`` and an annealed temperature; a Bernoulli RBM trained by
CD-1 on the free-energy difference; MoCo v2 with a momentum key encoder, shuffled
BatchNorm and a queue of negatives, then a linear probe; a Gilmer-style MPNN over batched
molecules (offset edge indices, ``index_add_`` messages, set2set readout); DeepAR with a
Gaussian likelihood (``nn.GaussianNLLLoss``, negative as it fits) and mean scaling; and a
DCN-V2 click-through model over hashed fields. Each fault is one bug as it arrives in code
in that style, measured to do real harm.

Names start with ``wild-``. They were written without running nndoctor on them; three of
the eight scripts (the binarised MLP, DeepAR and the RBM), with their faults, were drawn at
random (seed 20261207) for ``test`` before the first measurement; the rest are ``dev``.
"""

from __future__ import annotations

from nndoctor.faults.registry import Edit, Fault, HealthyCase, register_fault, register_healthy

SNN = "wild-snn-surrogate"
BNN = "wild-bnn-ste"
GUMBEL_VAE = "wild-gumbel-vae"
RBM_CD = "wild-rbm-cd"
MOCO = "wild-moco-queue"
MPNN = "wild-mpnn-molecules"
DEEPAR = "wild-deepar-gaussian"
DCN = "wild-dcn-ctr"

for case in (
    HealthyCase(
        SNN,
        "dev",
        "two-layer leaky integrate-and-fire SNN in plain torch on rate-coded (Bernoulli, 25 "
        "steps) 10x10 glyphs: SurrGradSpike autograd Function (Heaviside forward, fast-sigmoid "
        "surrogate backward), detached reset by subtraction, CE on output spike counts, Adam + "
        "StepLR, DataLoader",
        script="wild/snn_surrogate.py",
    ),
    HealthyCase(
        BNN,
        "test",
        "binarized MLP (BinaryNet style) on standardised 12x12 gratings: BinarizeLinear "
        "subclassing nn.Linear with sign weights and inputs through a straight-through "
        "autograd Function (grad * (|x| <= 1)), BatchNorm1d + Hardtanh, latent weights clamped "
        "to [-1, 1] after each step, CrossEntropyLoss, Adam + ExponentialLR per epoch",
        script="wild/bnn_ste_mlp.py",
    ),
    HealthyCase(
        GUMBEL_VAE,
        "dev",
        "categorical VAE on generated binary 16x16 shapes: MLP encoder to logits of 10 "
        "variables x 10 categories, F.gumbel_softmax(hard=True) straight-through with the "
        "temperature annealed exponentially to 0.5, MLP decoder to Bernoulli logits, loss = "
        "BCE-with-logits summed per image + KL(q || uniform), Adam, DataLoader",
        script="wild/gumbel_vae.py",
    ),
    HealthyCase(
        RBM_CD,
        "test",
        "Bernoulli RBM (64 visible, 64 hidden) on noisy 8x8 bars and stripes: CD-1 Gibbs "
        "sampling with relu(sign(p - rand)), loss = mean free energy of the data minus that "
        "of the detached negative samples (can be negative), SGD with momentum 0.9, DataLoader",
        script="wild/rbm_cd.py",
    ),
    HealthyCase(
        MOCO,
        "dev",
        "MoCo v2 on generated shapes: query CNN + MLP head and a key encoder copied with "
        "requires_grad=False, momentum update (m=0.99) under no_grad, keys computed on a shuffled "
        "batch with split BN and unshuffled, a queue buffer of 2048 normalised keys with a pointer, "
        "logits [l_pos, l_neg]/0.2 with zero labels and CrossEntropyLoss, SGD + cosine; then a "
        "linear probe on the frozen backbone in eval mode",
        script="wild/moco_queue.py",
    ),
    HealthyCase(
        MPNN,
        "dev",
        "MPNN in plain torch on generated molecules (5-20 atoms, one-hot atoms and bonds): collate "
        "concatenating graphs with offset edge indices and a batch vector, edge-conditioned messages "
        "summed by index_add_, GRU update, set2set readout with a per-graph softmax, target "
        "standardised with training statistics, MSE, Adam + ReduceLROnPlateau",
        script="wild/mpnn_molecules.py",
    ),
    HealthyCase(
        DEEPAR,
        "test",
        "DeepAR on 300 generated hourly series of very different levels: each window divided "
        "by 1 + mean |z| of its conditioning range, LSTM(batch_first=True) over the scaled lags "
        "1 and 24, time features and an nn.Embedding of the series, Gaussian head (softplus "
        "sigma), nn.GaussianNLLLoss with teacher forcing (negative as it fits), Adam + "
        "clip_grad_norm_ + StepLR, Dataset/DataLoader of windows, ancestral sampling of 100 "
        "paths for the held-out day",
        script="wild/deepar_gaussian.py",
    ),
    HealthyCase(
        DCN,
        "dev",
        "DCN-V2 on generated click logs (10 hashed long-tailed categorical fields, 3 "
        "log1p-standardised counts, 10% clicks from a hidden logistic model with crosses): "
        "per-field nn.Embedding with std 1e-4 init, cross network x0 * (W x + b) + x in "
        "parallel with a ReLU MLP, one logit, BCEWithLogitsLoss + 1e-4 L2 on the embedding "
        "tables, Adam, DataLoader with batch 2048, AUC computed by hand",
        script="wild/dcn_ctr.py",
    ),
):
    register_healthy(case)


for fault in (
    Fault(
        "wild-snn-surrogate-abs-dropped",
        SNN,
        22,
        "dev",
        "the surrogate's backward divides by (scale * x + 1)^2 instead of (scale * |x| + 1)^2: "
        "for membranes just below threshold the denominator nears zero and the gradient blows "
        "up (fc1's gradient norm 1e7 to 2e10 per step instead of O(1)); the test accuracy ends "
        "at 0.375 (loss 1.38) instead of 0.998",
        also=(35, 26),
        edits=(
            Edit(
                "(SurrGradSpike.scale * torch.abs(input) + 1.0)",
                "(SurrGradSpike.scale * input + 1.0)",
            ),
        ),
    ),
    Fault(
        "wild-snn-surrogate-record-after-loop",
        SNN,
        19,
        "dev",
        "the lines that record the output spikes and membranes are dedented out of the time "
        "loop: the network returns the last step only, so the 'spike counts' fed to the "
        "cross-entropy are 0 or 1 from a single step; the loss stalls at 1.15 and the test "
        "accuracy at 0.738 instead of 0.998",
        also=(22, 18),
        edits=(
            Edit(
                "            spk2_rec.append(spk2)\n            mem2_rec.append(mem2)\n",
                "        spk2_rec.append(spk2)\n        mem2_rec.append(mem2)\n",
            ),
        ),
    ),
    Fault(
        "wild-bnn-ste-sign-without-ste",
        BNN,
        23,
        "test",
        "the weights are binarized with torch.sign instead of the straight-through Binarize "
        "Function: sign's gradient is zero, so no latent weight of any layer ever receives a "
        "gradient and only the biases and BatchNorm parameters train; the test accuracy ends "
        "at 0.312 (loss 1.66) instead of 0.997",
        also=(22, 35),
        edits=(
            Edit(
                "F.linear(input, binarize(self.weight), self.bias)",
                "F.linear(input, torch.sign(self.weight), self.bias)",
            ),
        ),
    ),
    Fault(
        "wild-bnn-ste-lr-decay-per-batch",
        BNN,
        36,
        "test",
        "the per-epoch ExponentialLR(gamma=0.85) is stepped inside the batch loop: the "
        "learning rate falls below 1e-4 within the first 25 of 750 steps (5.8e-56 at the "
        "end), before the binary network leaves its initial plateau; the loss stays at 1.86 "
        "and the test accuracy at 0.264 instead of 0.997",
        also=(29,),
        edits=(
            Edit(
                "            total += loss.item() * len(target)\n        scheduler.step()",
                "            total += loss.item() * len(target)\n            scheduler.step()",
            ),
        ),
    ),
    Fault(
        "wild-gumbel-vae-probs-into-gumbel-softmax",
        GUMBEL_VAE,
        19,
        "dev",
        "the posterior probabilities qy (softmax already applied) are passed to "
        "F.gumbel_softmax, which expects logits: the samples are nearly uniform whatever "
        "the input, the encoder gives up (KL 0.00) and the decoder learns the mean image; "
        "held-out -ELBO 89.9 nats after 30 epochs instead of 56.0",
        also=(2,),
        edits=(
            Edit(
                "F.gumbel_softmax(logits, tau=temp, hard=True)",
                "F.gumbel_softmax(qy, tau=temp, hard=True)",
            ),
        ),
    ),
    Fault(
        "wild-gumbel-vae-bce-mean-reduction",
        GUMBEL_VAE,
        20,
        "dev",
        "the reconstruction BCE is left at its default reduction (mean over the batch and "
        "the 256 pixels) while the KL stays summed over the latent variables: the KL "
        "outweighs it 256-fold, the posterior collapses to the prior (KL 0.00) and the "
        "held-out reconstruction term is 89.9 nats per image instead of 47.8 (-ELBO 56.0)",
        also=(18,),
        edits=(
            Edit(
                ', reduction="sum"\n    ) / x.shape[0]',
                "\n    )",
            ),
        ),
    ),
    Fault(
        "wild-rbm-cd-sampler-inverted",
        RBM_CD,
        22,
        "test",
        "the binary sampler is written relu(sign(rand - p)) instead of relu(sign(p - rand)): "
        "every unit is on with probability 1 - p, the negative phase is the complement of "
        "a real Gibbs chain, the loss runs off to -9e5 and the weights grow without bound; "
        "after 30 epochs the held-out reconstruction error is 31.9 per image instead "
        "of 1.22 and the pseudo-log-likelihood -9.3e5 nats instead of -7.1",
        also=(18,),
        edits=(
            Edit(
                "torch.sign(p - torch.rand_like(p))",
                "torch.sign(torch.rand_like(p) - p)",
            ),
        ),
    ),
    Fault(
        "wild-rbm-cd-free-energy-mean-over-hidden",
        RBM_CD,
        18,
        "test",
        "the free energy averages the hidden units' softplus terms instead of summing them: "
        "the loss no longer matches the RBM that is sampled, the weights get 1/64 of their "
        "CD gradient against the full one for the visible biases; after 30 epochs the "
        "held-out reconstruction error is 11.4 instead of 1.22 and the pseudo-log-likelihood "
        "(of the sampled RBM) -37.1 nats instead of -7.1",
        also=(20, 22),
        edits=(
            Edit(
                ".sum(dim=1)\n        return -hidden_term",
                ".mean(dim=1)\n        return -hidden_term",
            ),
        ),
    ),
    Fault(
        "wild-moco-queue-keys-not-unshuffled",
        MOCO,
        4,
        "dev",
        "the keys computed on the shuffled batch are never put back in order (k[idx_unshuffle] "
        "is lost): each query's positive is the key of another image, the loss stays at chance "
        "(7.61 after 15 epochs, ln 2049 = 7.62; healthy 6.73) and the linear probe's test "
        "accuracy is 0.582, below the random encoder's 0.639 (healthy: 0.817)",
        also=(3, 25, 17),
        edits=(Edit("            k = k[idx_unshuffle]\n", ""),),
    ),
    Fault(
        "wild-moco-queue-momentum-swapped",
        MOCO,
        22,
        "dev",
        "the momentum update is written backwards, param_k * (1 - m) + param_q * m: the key "
        "encoder follows the query encoder with an effective momentum of 0.01, the queue holds "
        "keys from a rapidly changing encoder, the loss sits at chance (7.625, contrastive "
        "accuracy 0.002) and the probe's test accuracy is 0.667 against 0.817 healthy (random "
        "encoder: 0.639)",
        also=(29, 17, 23),
        edits=(
            Edit(
                "param_k.data * self.m + param_q.data * (1.0 - self.m)",
                "param_k.data * (1.0 - self.m) + param_q.data * self.m",
            ),
        ),
    ),
    Fault(
        "wild-mpnn-molecules-collate-no-offset",
        MPNN,
        3,
        "dev",
        "the collate function concatenates the graphs' edge indices without offsetting them by the "
        "atoms before each graph: every bond of the batch connects atoms of the first graph, the "
        "other graphs get no messages; the training loss stays at 0.85 (healthy 0.08) and the test "
        "MAE is 4.80 against 1.95 healthy (predicting the mean: 5.18)",
        also=(25, 4),
        edits=(
            Edit(
                '        edge_indices.append(g["edge_index"] + offset)',
                '        edge_indices.append(g["edge_index"])',
            ),
        ),
    ),
    Fault(
        "wild-mpnn-molecules-softmax-over-batch",
        MPNN,
        25,
        "dev",
        "the set2set attention is softmaxed over all the atoms of the mini-batch instead of within "
        "each graph: a graph's readout depends on the other graphs and on the batch size (64 in "
        "training, 256 in evaluation); the training loss ends at 0.46 (healthy 0.08) and the test "
        "MAE at 7.58, worse than predicting the mean (5.18; healthy 1.95)",
        also=(22,),
        edits=(
            Edit(
                "attention = segment_softmax(scores, batch, num_graphs)",
                "attention = torch.softmax(scores, dim=0)",
            ),
        ),
    ),
    Fault(
        "wild-deepar-gaussian-std-as-variance",
        DEEPAR,
        19,
        "test",
        "nn.GaussianNLLLoss is given the standard deviation sigma where it expects the "
        "variance: the head learns to output the variance, which sampling then uses as a "
        "standard deviation, so the forecast spread is far too narrow; the printed training "
        "NLL looks healthy (-2.23 vs -2.24) and the ND is unchanged (0.075 vs 0.078), but the "
        "80% interval covers 6% of the held-out values instead of 72% and the weighted "
        "quantile loss rises from 0.060 to 0.073",
        also=(18, 21),
        edits=(
            Edit(
                "loss = criterion(mu, scaled[:, HISTORY:], sigma**2)",
                "loss = criterion(mu, scaled[:, HISTORY:], sigma)",
            ),
        ),
    ),
    Fault(
        "wild-deepar-gaussian-unscaled-lags-in-training",
        DEEPAR,
        12,
        "test",
        "the training loop builds the lag inputs from the raw window instead of the scaled "
        "one: the LSTM is trained on raw values (median 50, up to 850) while the targets are "
        "scaled, and the forecast (which scales its lags) feeds it inputs of a different "
        "magnitude; the training NLL still falls to -2.09, but the held-out ND ends at 0.45 "
        "instead of 0.078 (seasonal naive: 0.093) and the 80% coverage at 0.14 instead of 0.72",
        also=(15,),
        edits=(
            Edit(
                "mu, sigma, _ = model(lagged(scaled, HISTORY, WINDOW), cov, series_id)",
                "mu, sigma, _ = model(lagged(window, HISTORY, WINDOW), cov, series_id)",
            ),
        ),
    ),
    Fault(
        "wild-dcn-ctr-embeddings-in-plain-list",
        DCN,
        23,
        "dev",
        "the per-field embeddings are kept in a plain Python list instead of an nn.ModuleList: "
        "they are not registered, model.parameters() leaves them out of Adam, and they stay "
        "at their std-1e-4 initialisation, so the model can only use the numeric fields; "
        "the held-out AUC ends at 0.645 instead of 0.799 and the log-loss at 0.308 instead of "
        "0.264 (base rate: 0.320)",
        also=(33,),
        edits=(
            Edit(
                "self.embeddings = nn.ModuleList([nn.Embedding(v, embed_dim) for v in vocab_sizes])",
                "self.embeddings = [nn.Embedding(v, embed_dim) for v in vocab_sizes]",
            ),
        ),
    ),
    Fault(
        "wild-dcn-ctr-stack-without-field-dim",
        DCN,
        25,
        "dev",
        "the field embeddings are stacked with torch.stack(embs) (dim=0, giving fields x "
        "batch x dim) before the .view(-1, n_fields * embed_dim) meant for batch x fields x "
        "dim: the shapes still fit, but each row now holds one field's embeddings of several "
        "different samples, so the categorical features no longer belong to the click they "
        "are paired with; the held-out AUC ends at 0.642 instead of 0.799 and the log-loss at "
        "0.308 instead of 0.264 (base rate: 0.320)",
        also=(4,),
        edits=(Edit("torch.stack(embs, dim=1).view(", "torch.stack(embs).view("),),
    ),
):
    register_fault(fault)
