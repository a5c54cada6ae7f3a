"""Wild cases, sixteenth group: a Set Transformer for amortised clustering, C51, ConvE link
prediction, a deep ensemble trained by the Gaussian negative log-likelihood, a Decision
Transformer, a neural network potential trained on energies and forces, a Transformer-XL
language model and a Swin Transformer.

The healthy scripts live in ``examples/wild/``, each in the manner of a well-known public
PyTorch training script (written here, not copied): amortised clustering as in the Set
Transformer authors' code (``MAB``/``SAB``/``ISAB``/``PMA`` written out, heads split along the
features and stacked on the batch axis, a hand-written mixture log-likelihood with
``logsumexp``, fresh batches of 2-D sets of one size per batch); C51 as in CleanRL's
``c51.py`` on a slippery chain written in the script (51 atoms, the categorical projection
written by hand with ``index_add_``, a target network, a linear epsilon schedule); ConvE link
prediction as in the authors' code (a generated knowledge graph with hidden type and group
rules, reciprocal relations, embeddings reshaped to 2-D and stacked, ``Conv2d`` with
``BatchNorm`` and dropout, 1-N scoring through a sigmoid, ``nn.BCELoss`` on label-smoothed
multi-hot targets, filtered MRR and Hits@10); a deep ensemble for heteroscedastic 1-D
regression as in the public reimplementations of Lakshminarayanan et al. (five mean/std MLPs
with one Adam each, ``nn.GaussianNLLLoss``); a Decision Transformer as in the authors' gym code
(returns-to-go, return, state, action and timestep embeddings interleaved into a tiny causal
GPT, actions predicted from the state tokens, a ``LambdaLR`` warm-up) on an offline gridworld
dataset; a Behler-Parrinello potential as in SchNetPack (radial basis and cosine cutoff, an MLP
per atom summed to the energy, forces from ``torch.autograd.grad(..., create_graph=True)``,
energy + force MSE, ``ReduceLROnPlateau``) on Morse clusters; a word-level Transformer-XL as in
kimiyoung/transformer-xl (sequence-first segments, detached per-layer memories, relative
positions with the ``_rel_shift`` trick, the mask ``triu(..., diagonal=1 + mlen)``); and a Swin
Transformer as in the authors' ``swin_transformer.py`` (window partition by ``view`` +
``permute``, a relative position bias table, ``torch.roll`` shifted windows with the region
mask, patch merging, a per-iteration warm-up + cosine ``LambdaLR``) on generated 32x32 images.
Each fault is one bug as it arrives in code in that style, measured to do real harm.

Names start with ``wild-``. They were written without running nndoctor on them; three of
the eight scripts (C51, the neural potential and Transformer-XL), with their faults, were
drawn at random (seed 2026120641) for ``test`` before the first measurement; the rest are
``dev``.
"""

from __future__ import annotations

from nndoctor.faults.registry import Edit, Fault, HealthyCase, register_fault, register_healthy

SET_TRANSFORMER_CLUSTERING = "wild-set-transformer-clustering"
C51_DISTRIBUTIONAL_DQN = "wild-c51-distributional-dqn"

for case in (
    HealthyCase(
        SET_TRANSFORMER_CLUSTERING,
        "dev",
        "Set Transformer (authors' modules.py manner) for amortised clustering: every step a "
        "fresh batch of 10 generated 2-D sets of one size N (50..150, drawn per batch) from "
        "their own mixtures of 4 diagonal Gaussians; MAB written out (heads split along the "
        "features and stacked on the batch axis with torch.cat, softmax of QK^T/sqrt(dim_V), "
        "heads concatenated back, residual + ReLU feed-forward, LayerNorm), two ISABs with 16 "
        "inducing points, PMA with 4 seeds, two SABs; the output rows are parsed into softmax "
        "weights, means and clamped log-variances; loss = minus the hand-written mixture "
        "log-likelihood (logsumexp over components, mean over points), which starts near 4 "
        "and ends near 2.4 nats per point (far from 0, the true mixtures' own value is 2.1), "
        "Adam 2e-3 divided by 10 by hand at half the 2,000 steps",
        script="wild/set_transformer_clustering.py",
    ),
    HealthyCase(
        C51_DISTRIBUTIONAL_DQN,
        "test",
        "CleanRL-style C51 on a 16-cell slippery chain written in the script (one-hot cells, "
        "a safe end worth 1, a lottery end worth 8 with probability 0.6, -0.05 per move, 60-step "
        "time limit): 51 atoms in [-10, 10], softmax over the atoms of each action, the target "
        "network's pmf of its greedy next action shifted by r + gamma z and projected on the "
        "atoms by hand under no_grad (floor/ceil indices, index_add_ per sample in a Python "
        "loop), cross-entropy against clamped log-probabilities of the taken action, Adam "
        "with eps 0.01/128, linear epsilon schedule, target synced every 500 steps; the loss "
        "rises again when the lottery end is found and stays near 2.4 (the bimodal returns' "
        "entropy), far from 0, and the episodic returns are noisy",
        script="wild/c51_distributional_dqn.py",
    ),
):
    register_healthy(case)


for fault in (
    Fault(
        "wild-set-transformer-clustering-heads-merged-by-reshape",
        SET_TRANSFORMER_CLUSTERING,
        25,
        "dev",
        "MAB merges its heads with (Q_ + A.bmm(V_)).reshape(B, N, dim_V) instead of splitting "
        "the head-stacked batch axis and concatenating along the features: the (heads x B) "
        "rows are laid out head-major, so the reshape fills each set's features with the "
        "heads of other sets of the batch (and scrambles the points); after 2,000 steps the "
        "benchmark log-likelihood per point is -4.356 and -4.338 on seeds 0 and 1, worse "
        "than one Gaussian per set (-3.808 and -3.762), instead of -2.474 and -2.399 healthy "
        "(true mixtures -2.107 and -2.102)",
        also=(22,),
        edits=(
            Edit(
                "O = torch.cat((Q_ + A.bmm(V_)).split(Q.size(0), 0), 2)",
                "O = (Q_ + A.bmm(V_)).reshape(Q.size(0), Q.size(1), self.dim_V)",
            ),
        ),
    ),
    Fault(
        "wild-set-transformer-clustering-no-logvar-term",
        SET_TRANSFORMER_CLUSTERING,
        18,
        "dev",
        "the hand-written diagonal Gaussian log-density drops the log-variance (log "
        "determinant) term, -0.5 * (log 2pi + (x - mu)^2 / var): the 'likelihood' grows "
        "without bound with the variance, so every log-variance is pushed to the clamp at 4 "
        "(std 7.4) and stays there; the printed log-likelihood, computed with the same "
        "function, reads -1.90 per point (seeds 0 and 1), above the printed 'true mixtures' "
        "value (-3.86 and -3.88), while the benchmark log-likelihood under the correct "
        "density is -5.903 and -5.901, worse than one Gaussian per set (-3.808 and -3.762), "
        "instead of -2.474 and -2.399 healthy (true mixtures -2.107 and -2.102)",
        also=(21,),
        edits=(
            Edit(
                "ll = -0.5 * (math.log(2 * math.pi) + logvar + diff.pow(2) / logvar.exp())",
                "ll = -0.5 * (math.log(2 * math.pi) + diff.pow(2) / logvar.exp())",
            ),
        ),
    ),
    Fault(
        "wild-c51-distributional-dqn-softmax-over-actions",
        C51_DISTRIBUTIONAL_DQN,
        19,
        "test",
        "get_action takes the softmax of the (batch, actions, atoms) logits over dim=1, the "
        "actions, instead of dim=2, the atoms: each action's 'pmf' is not a distribution over "
        "the atoms (the two actions' masses at each atom sum to 1), so the Q values, the "
        "greedy actions and the projected targets are meaningless; the cross-entropy stays "
        "near 16 (healthy 2.4) and after 30,000 steps the greedy policy returns -0.710 and "
        "0.808 on seeds 0 and 1 instead of 3.865 and 3.552 (the optimal always-right policy; "
        "random policy -0.149 and -0.084)",
        also=(25,),
        edits=(Edit("self.n_atoms), dim=2)", "self.n_atoms), dim=1)"),),
    ),
    Fault(
        "wild-c51-distributional-dqn-no-terminal-mask",
        C51_DISTRIBUTIONAL_DQN,
        18,
        "test",
        "the (1 - data.dones) factor is dropped from next_atoms = r + gamma * z: the target "
        "bootstraps past the ends of the chain from the target network's distribution at the "
        "terminal cells, which are never trained (their one-hot inputs never reach the loss), "
        "so the lottery end's value is drowned in an arbitrary tail; the agent settles on the "
        "safe end and after 30,000 steps the greedy policy returns 0.921 and 0.757 on seeds "
        "0 and 1 instead of 3.865 and 3.552 (optimal always-right; random policy -0.149 and "
        "-0.084)",
        also=(19,),
        edits=(
            Edit(
                "args.gamma * target_network.atoms * (1 - data.dones)",
                "args.gamma * target_network.atoms",
            ),
        ),
    ),
):
    register_fault(fault)


CONVE_LINK_PREDICTION = "wild-conve-link-prediction"
GAUSSIAN_NLL_ENSEMBLE = "wild-gaussian-nll-ensemble"

for case in (
    HealthyCase(
        CONVE_LINK_PREDICTION,
        "dev",
        "ConvE (authors' model.py/main.py manner) on a generated 800-entity graph whose 12 "
        "relations are hidden type and group rules: Xavier-normal entity/relation embeddings "
        "reshaped to 8x8 and stacked to 16x8, BatchNorm2d + dropout, Conv2d 3x3, BatchNorm2d, "
        "Dropout2d, projection + BatchNorm1d, 1-N scoring against all entity embeddings plus a "
        "bias through a sigmoid, nn.BCELoss over all 800 entities against label-smoothed "
        "multi-hot targets (positives 0.9, negatives 1/800), reciprocal relations, hand-made "
        "shuffled batches of 128 queries, Adam 0.01; the loss is tiny (0.025 -> 0.018) and "
        "the filtered MRR stays at chance for the first 5 to 8 epochs before it rises",
        script="wild/conve_link_prediction.py",
    ),
    HealthyCase(
        GAUSSIAN_NLL_ENSEMBLE,
        "dev",
        "deep ensemble (Lakshminarayanan et al. reimplementation manner) for 1-D "
        "heteroscedastic regression: 5 MLPs stored as model_0..model_4 attributes of one "
        "module, each splitting its output into a mean and a softplus std, each with its own "
        "Adam, all trained in one loop on the same DataLoader batches with "
        "nn.GaussianNLLLoss(mean, y, std^2) whose value goes below zero (-0.6), plus a "
        "homoscedastic MSE baseline MLP trained afterwards; the mixture's NLL, RMSE and 90% "
        "coverage are only computed at the end",
        script="wild/gaussian_nll_ensemble.py",
    ),
):
    register_healthy(case)


for fault in (
    Fault(
        "wild-conve-link-prediction-targets-unshuffled",
        CONVE_LINK_PREDICTION,
        4,
        "dev",
        "the hand-made batches take the queries through the shuffled indices, queries[idx], "
        "but the multi-hot targets by position, targets[start : start + batch_size]: every "
        "(e1, rel) query is trained against the answers of another query, so the loss stays "
        "at 0.0247 / 0.0245 (healthy falls to 0.0183 / 0.0184) and after 30 epochs the "
        "held-out filtered MRR is 0.010 / 0.008 and Hits@10 0.016 / 0.010 on seeds 0 / 1, "
        "a random ranking's (0.009 / 0.010, Hits@10 0.012), instead of 0.501 / 0.496 and "
        "0.747 / 0.767",
        also=(3,),
        edits=(
            Edit("e2_multi = targets[idx]", "e2_multi = targets[start : start + args.batch_size]"),
        ),
    ),
    Fault(
        "wild-conve-link-prediction-sigmoid-twice",
        CONVE_LINK_PREDICTION,
        19,
        "dev",
        "the loss is switched to nn.BCEWithLogitsLoss while ConvE.forward still returns "
        "torch.sigmoid of the scores: the probabilities are squashed a second time, the "
        "smoothed targets (0.9 and 1/800) cannot be reached, the network drives every score "
        "far negative until the sigmoid saturates and the loss sits at ln 2 = 0.693 with no "
        "gradient left; after 30 epochs the held-out filtered MRR is 0.008 / 0.008 and "
        "Hits@10 0.012 / 0.011 on seeds 0 / 1, a random ranking's (0.009 / 0.010, Hits@10 "
        "0.012), instead of 0.501 / 0.496 and 0.747 / 0.767",
        also=(18,),
        edits=(Edit("self.loss = nn.BCELoss()", "self.loss = nn.BCEWithLogitsLoss()"),),
    ),
    Fault(
        "wild-gaussian-nll-ensemble-split-broadcast",
        GAUSSIAN_NLL_ENSEMBLE,
        25,
        "dev",
        "GaussianMLP splits its output by indexing, mean, std = x[:, 0], x[:, 1], instead "
        "of torch.split(x, self.outputs, dim=1): mean and variance have shape (N,) against "
        "targets of shape (N, 1), GaussianNLLLoss broadcasts (input - target) to an N x N "
        "matrix without a warning, and every member learns to predict the batch's mean with "
        "its spread; the "
        "training NLL stays at 0.50 (healthy -0.61) and the mixture's test NLL is 1.874 / "
        "1.856 and RMSE 1.593 / 1.563 on seeds 0 / 1, no better than a constant predictor "
        "(1.890 / 1.870, RMSE 1.601 / 1.570), instead of 0.808 / 0.814 and 0.699 / 0.692 "
        "(homoscedastic MSE baseline 1.075 / 1.050)",
        also=(19,),
        edits=(
            Edit(
                "mean, std = torch.split(x, self.outputs, dim=1)",
                "mean, std = x[:, 0], x[:, 1]",
            ),
        ),
    ),
    Fault(
        "wild-gaussian-nll-ensemble-std-as-variance",
        GAUSSIAN_NLL_ENSEMBLE,
        19,
        "dev",
        "the members' standard deviation is passed to nn.GaussianNLLLoss as its var argument, "
        "criterion(mean, y, std) instead of std.pow(2): the head learns the variance "
        "(standardised units, below 1) while the mixture treats it as a standard deviation, "
        "so the predicted spread is far too small; the means and RMSE are unchanged (0.700 / "
        "0.677) and the training loss looks healthy (-0.61 / -0.57), but the mixture's test "
        "NLL is 7.67 / 5.12 and its 90% interval covers 0.441 / 0.483 of the test points "
        "(0.264 / 0.308 where |x| < 2) on seeds 0 / 1, instead of NLL 0.808 / 0.814 and "
        "coverage 0.880 / 0.896 (homoscedastic MSE baseline: NLL 1.075 / 1.050, coverage "
        "0.892 / 0.891)",
        also=(18,),
        edits=(Edit("loss = criterion(mean, y, std.pow(2))", "loss = criterion(mean, y, std)"),),
    ),
):
    register_fault(fault)


DECISION_TRANSFORMER = "wild-decision-transformer"
NEURAL_POTENTIAL_FORCES = "wild-neural-potential-forces"

for case in (
    HealthyCase(
        DECISION_TRANSFORMER,
        "dev",
        "Decision Transformer (kzl/decision-transformer gym style, minGPT backbone) on 800 "
        "offline 6x6-gridworld trajectories of a shortest-path policy with per-trajectory "
        "epsilon in [0, 1]: returns-to-go by a reversed discount_cumsum, states standardised "
        "with the dataset's statistics, K=10 windows left-padded with an attention mask, "
        "Linear return/state and Embedding+Tanh action embeddings plus a timestep embedding "
        "interleaved (R, s, a) into 2 causal blocks masked with finfo.min (padded rows attend "
        "to everything), actions predicted from the state tokens, CE with ignore_index=-100, "
        "dropout 0.1, AdamW + LambdaLR warm-up per step, clipping at 0.25; the action loss "
        "only falls from ln 4 to 1.10 (the behaviour is half random) and the policy is judged "
        "by return-conditioned rollouts",
        script="wild/decision_transformer.py",
    ),
    HealthyCase(
        NEURAL_POTENTIAL_FORCES,
        "test",
        "Behler-Parrinello neural network potential (SchNetPack energy-and-forces style) on 250 "
        "Metropolis-sampled 6-atom Morse clusters with random rotations and translations: "
        "pair vectors from idx_i/idx_j buffers, 16 Gaussian RBFs x cosine cutoff summed per "
        "atom with index_add, a tanh MLP per atom scaled by the training energy std and "
        "shifted by the mean per atom, summed to E; requires_grad on the input positions and "
        "forces = -autograd.grad(E.sum(), positions, create_graph=True), so the loss is "
        "differentiated twice (double backward), MSE(E) + 10 MSE(F), Adam + "
        "ReduceLROnPlateau on the validation loss; the evaluation needs gradients too",
        script="wild/neural_potential_forces.py",
    ),
):
    register_healthy(case)


for fault in (
    Fault(
        "wild-decision-transformer-action-token-leak",
        DECISION_TRANSFORMER,
        25,
        "dev",
        "the actions are predicted from x[:, 2], the hidden states of the action tokens, "
        "instead of x[:, 1], the state tokens: each prediction sees the embedding of the "
        "action it must predict (the causal mask lets a token attend to itself), so the action "
        "loss falls to 0.0001 / 0.0002 (healthy 1.10 / 1.12), while at evaluation the current "
        "action token holds only a zero placeholder; the "
        "return conditioned on +1 is -0.883 / -0.927 on seeds 0 / 1, worse than a random policy "
        "(-0.662 / -0.526) and the behaviour data (0.356 / 0.347), instead of 0.841 / 0.839 "
        "(shortest path 0.849 / 0.848)",
        also=(21, 15),
        edits=(
            Edit(
                "action_preds = self.predict_action(x[:, 1])",
                "action_preds = self.predict_action(x[:, 2])",
            ),
        ),
    ),
    Fault(
        "wild-decision-transformer-warmup-per-iteration",
        DECISION_TRANSFORMER,
        36,
        "dev",
        "the warm-up LambdaLR (min((steps + 1) / 200, 1)) is stepped once per iteration of 250 "
        "optimizer steps instead of after every step, so the learning rate stays between 5e-6 "
        "and 2.5e-5 instead of reaching 1e-3 after 200 steps; after 1,000 steps the action "
        "loss is 1.33 / 1.33 (ln 4 = 1.39; healthy 1.10 / 1.12) and the return conditioned on "
        "+1 is -0.093 / -0.071 on seeds 0 / 1, below the behaviour data (0.356 / 0.347), "
        "instead of 0.841 / 0.839 (random policy -0.662 / -0.526)",
        also=(29,),
        edits=(
            Edit(
                "            optimizer.step()\n            scheduler.step()\n",
                "            optimizer.step()\n",
            ),
            Edit(
                "            train_losses.append(loss.item())\n",
                "            train_losses.append(loss.item())\n        scheduler.step()\n",
            ),
        ),
    ),
    Fault(
        "wild-neural-potential-forces-retain-graph",
        NEURAL_POTENTIAL_FORCES,
        18,
        "test",
        "the forces of the training step are taken with retain_graph=True instead of "
        "create_graph=True: the backward pass runs without error, but the force tensor is "
        "not part of the graph, so the rho x force MSE term (most of the loss) gives no "
        "gradient to the weights and the potential is fitted to the 250 energies alone; after "
        "150 epochs the training loss is 0.126 / 0.041 instead of 0.0007 and the test force "
        "MAE 0.0385 / 0.0319 instead of 0.0043 / 0.0064 (seeds 0 / 1; zero forces 0.860 / "
        "0.867), the energy MAE 0.0099 / 0.0096 (healthy 0.0007 / 0.0150, mean energy 0.223 "
        "/ 0.229)",
        also=(26, 20),
        edits=(
            Edit(
                "pred_energy.sum(), positions, create_graph=True",
                "pred_energy.sum(), positions, retain_graph=True",
            ),
        ),
    ),
    Fault(
        "wild-neural-potential-forces-forces-not-rotated",
        NEURAL_POTENTIAL_FORCES,
        4,
        "test",
        "the data generation rotates each cluster's positions but the line that rotates its "
        "forces with it is missing: the force labels stay in the frame of the unrotated "
        "cluster, unrelated to the positions the model sees, and a potential's forces (its "
        "gradient) cannot match them; the loss stays at 11.6 / 11.7 (healthy 0.0007) and "
        "the test force MAE is 0.848 / 0.855 on seeds 0 / 1, that of predicting zero forces "
        "(0.848 / 0.856), instead of 0.0043 / 0.0064, and the energy MAE 0.218 / 0.221, "
        "that of the mean energy (0.223 / 0.229), instead of 0.0007 / 0.0150",
        also=(3, 5, 6),
        edits=(Edit("    forces = forces @ rot.transpose(0, 2, 1)\n", ""),),
    ),
):
    register_fault(fault)


TRANSFORMER_XL_MEMORY = "wild-transformer-xl-memory"
SWIN_WINDOW_ATTENTION = "wild-swin-window-attention"

for case in (
    HealthyCase(
        TRANSFORMER_XL_MEMORY,
        "test",
        "tiny Transformer-XL word LM (kimiyoung/transformer-xl manner) on a 96-word "
        "topic-switching hidden-Markov grammar: sequence-first (T, B) segments of 24 tokens "
        "from a batchified stream, per-layer memories of 24 hidden states kept under no_grad, "
        "detached and threaded from segment to segment (reset each epoch), relative-position "
        "attention (einsum AC + BD, _rel_shift, r_w_bias / r_r_bias), masked_fill with -inf "
        "over [mem + current], post-norm layers, tied output layer, per-token losses (T, B) "
        "averaged, Adam with lr set by hand in the param group for the warm-up then "
        "CosineAnnealingLR per step, clip_grad_norm_(0.25); the loss plateaus near the "
        "source's entropy (ppl 12 against a source ppl of 10.2), far above 0",
        script="wild/transformer_xl_memory.py",
    ),
    HealthyCase(
        SWIN_WINDOW_ATTENTION,
        "dev",
        "tiny Swin Transformer (authors' swin_transformer.py manner) on generated 32x32 "
        "shapes and textures of 8 classes: uint8 HWC images normalised per channel in a "
        "Dataset with random flips, Conv2d patch embedding + LayerNorm, window_partition / "
        "window_reverse by view + permute, window attention with a relative position bias "
        "table gathered by an index buffer, torch.roll shifted windows with a -100 region "
        "mask buffer (None in unshifted blocks), PatchMerging, DropPath, average pooling, "
        "label smoothing 0.1, AdamW with no decay on 1-D parameters and the bias tables, "
        "LambdaLR warm-up + cosine per iteration, clipping at 5; slow start (held-out "
        "accuracy 0.33 after the warm-up epoch, 0.96 after 8)",
        script="wild/swin_window_attention.py",
    ),
):
    register_healthy(case)


for fault in (
    Fault(
        "wild-transformer-xl-memory-mask-ignores-memory",
        TRANSFORMER_XL_MEMORY,
        22,
        "test",
        "the causal mask is built as triu(ones(qlen, klen), diagonal=1) without the memory "
        "length: over [mem + current] the i-th query may only attend to the first i + 1 "
        "memory positions, never to the current segment or to itself, so once memories exist "
        "every prediction rests on tokens at least 24 steps back; the validation perplexity "
        "after 3 epochs is 14.50 / 16.99 instead of 11.93 / 12.97 (seeds 0 / 1; source "
        "10.16 / 10.87, unigram 54.35 / 60.59)",
        also=(25,),
        edits=(
            Edit(
                "word_emb.new_ones(qlen, klen), diagonal=1 + mlen)",
                "word_emb.new_ones(qlen, klen), diagonal=1)",
            ),
        ),
    ),
    Fault(
        "wild-transformer-xl-memory-batchify-view",
        TRANSFORMER_XL_MEMORY,
        4,
        "test",
        "LMOrderedIterator lays the stream out with data.view(-1, bsz) instead of "
        "data.view(bsz, -1).t(): each column holds every bsz-th token, so neither the "
        "segment, nor its target one step ahead, nor the memory carried over is contiguous "
        "text, and only the slowly switching topic survives; the validation perplexity after "
        "3 epochs is 30.80 / 37.47 instead of 11.93 / 12.97 (seeds 0 / 1; unigram 54.35 / "
        "60.59, source 10.16 / 10.87)",
        also=(3, 5, 25),
        edits=(
            Edit(
                "self.data = data.view(bsz, -1).t().contiguous()",
                "self.data = data.view(-1, bsz).contiguous()",
            ),
        ),
    ),
    Fault(
        "wild-swin-window-attention-stats-not-scaled",
        SWIN_WINDOW_ATTENTION,
        12,
        "dev",
        "the per-channel mean and std are computed on the uint8 images without dividing by "
        "255 while the Dataset scales the pixels to [0, 1]: every input value lies between "
        "-1.27 and -1.23 (std 0.01 instead of 1), the shapes are a faint ripple on a constant, "
        "and the network never gets off the plateau; the "
        "held-out accuracy after 8 epochs is 13.4 / 12.0 % instead of 96.5 / 96.2 % "
        "(seeds 0 / 1; chance 12.5 %)",
        also=(1,),
        edits=(
            Edit(
                "    mean = train_images.reshape(-1, 3).mean(0) / 255.0\n"
                "    std = train_images.reshape(-1, 3).std(0) / 255.0\n",
                "    mean = train_images.reshape(-1, 3).mean(0)\n"
                "    std = train_images.reshape(-1, 3).std(0)\n",
            ),
        ),
    ),
    Fault(
        "wild-swin-window-attention-lambdalr-stepped-per-epoch",
        SWIN_WINDOW_ATTENTION,
        36,
        "dev",
        "lr_scheduler.step() is moved from the iteration loop of train_one_epoch to the end "
        "of each epoch in main() while the LambdaLR is sized in iterations (75 warm-up "
        "steps, 600 in all): the warm-up never ends and the rate crawls from 2.7e-5 to "
        "2.1e-4 over the 8 epochs instead of reaching 2e-3 after one; the held-out accuracy "
        "is 74.4 / 84.0 % instead of 96.5 / 96.2 % (seeds 0 / 1; chance 12.5 %)",
        also=(33,),
        edits=(
            Edit(
                "        optimizer.step()\n        lr_scheduler.step()\n",
                "        optimizer.step()\n",
            ),
            Edit(
                '        print(f"Test: [{epoch}]  loss {loss:.4f}  acc@1 {acc1:.2f}")\n',
                '        print(f"Test: [{epoch}]  loss {loss:.4f}  acc@1 {acc1:.2f}")\n'
                "        lr_scheduler.step()\n",
            ),
        ),
    ),
):
    register_fault(fault)
