"""Wild cases, fourteenth group: word2vec with negative sampling, Gatys style transfer,
attention-based multiple-instance learning, a Neural ODE, Deep Embedded Clustering, a
mixed-precision classifier with gradient accumulation, a joint energy-based model and
minibatch GraphSAGE.

The healthy scripts live in ``examples/wild/``, each in the manner of a well-known public
PyTorch training script (written here, not copied): skip-gram with negative sampling as in
the PyTorch SGNS repos (two ``nn.Embedding(sparse=True)`` tables, ``SparseAdam``, negatives
drawn with ``torch.multinomial``, no ``DataLoader``); neural style transfer as in the PyTorch
tutorial (a small CNN pre-trained on generated textures, then frozen, and the image itself
optimised by ``optim.LBFGS`` with a clamping closure); gated-attention deep MIL as in
AttentionDeepMIL (a ``DataLoader`` of one bag per batch, its instances the batch axis, a
hand-written clamped likelihood); a Neural ODE as in torchdiffeq's ``ode_demo`` (a
hand-written RK4 solver back-propagated through, ``RMSprop``); Deep Embedded Clustering as
in pt-dec (an autoencoder pre-trained, then cluster centres as a parameter trained with a
KL divergence to a sharpened target recomputed every few iterations); a timm-style image
classifier (``torch.autocast`` in bfloat16, gradient accumulation over four micro-batches,
``clip_grad_norm_``, two AdamW parameter groups, ``OneCycleLR``, label smoothing); a joint
energy-based model as in wgrathwohl/JEM (SGLD samples from a replay buffer through
``torch.autograd.grad`` on the inputs); and minibatch GraphSAGE as in the PyG/DGL sampling
examples (two hops of sampled neighbours gathered in code). Each fault is one bug as it
arrives in code in that style, measured to do real harm.

Names start with ``wild-``. They were written without running nndoctor on them; three of
the eight scripts (attention MIL, DEC and GraphSAGE), with their faults, were drawn at
random (seed 2026120539) for ``test`` before the first measurement; the rest are ``dev``.
"""

from __future__ import annotations

from nndoctor.faults.registry import Edit, Fault, HealthyCase, register_fault, register_healthy

WORD2VEC_SGNS = "wild-word2vec-sgns"
NEURAL_STYLE_LBFGS = "wild-neural-style-lbfgs"
ATTENTION_MIL = "wild-attention-mil-bags"
NEURAL_ODE = "wild-neural-ode-spirals"
DEC_CLUSTERING = "wild-dec-clustering"
AMP_ACCUM_CLASSIFIER = "wild-amp-accum-classifier"
JEM_ENERGY_MODEL = "wild-jem-energy-model"
GRAPHSAGE_MINIBATCH = "wild-graphsage-minibatch"

for case in (
    HealthyCase(
        WORD2VEC_SGNS,
        "dev",
        "word2vec skip-gram with negative sampling on a generated topical corpus (300 words, "
        "14 clusters + 20 frequent function words): subsampling redrawn every epoch, dynamic "
        "window, 5 negatives per pair from unigram^0.75 via torch.multinomial, two "
        "nn.Embedding(sparse=True) tables (output table initialised at zero, so the first "
        "step's input gradients are zero), loss -logsigmoid(u.v) - sum logsigmoid(-u.v_neg) "
        "with clamped scores that plateaus near 1.95, SparseAdam + LambdaLR linear decay",
        script="wild/word2vec_sgns.py",
    ),
    HealthyCase(
        NEURAL_STYLE_LBFGS,
        "dev",
        "Gatys style transfer as in the PyTorch tutorial: a small Conv-BN-ReLU CNN trained for "
        "300 steps on generated textures, then eval() and requires_grad_(False); ContentLoss "
        "and Gram-matrix StyleLoss modules inserted after conv layers with detached targets; "
        "the only optimised tensor is the image (a clone of the content), optim.LBFGS with a "
        "closure that clamps it to [0, 1] in place, so the weighted loss (style weight 1e6) "
        "spikes by 100x at some evaluations before settling",
        script="wild/neural_style_lbfgs.py",
    ),
    HealthyCase(
        ATTENTION_MIL,
        "test",
        "gated-attention deep MIL (AttentionDeepMIL style) on generated bags of 5-20 noisy 1x12x12 "
        "glyphs, positive iff one is the target glyph: DataLoader with batch_size=1 whose "
        "1 x K x 1 x 12 x 12 bag is squeezed so the instances are the batch, conv + fc features, "
        "tanh * sigmoid attention softmaxed over the instances, Linear + Sigmoid bag probability, "
        "the repo's clamped -(y log p + (1-y) log(1-p)) on a 1x1 tensor, Adam with weight decay "
        "10e-5, the model forwarded twice per step (loss and error); it overfits the 300 "
        "training bags (train loss 0.003-0.04, held-out loss 0.25-0.38)",
        script="wild/attention_mil_bags.py",
    ),
    HealthyCase(
        NEURAL_ODE,
        "dev",
        "Neural ODE (torchdiffeq ode_demo style) on one 2-D spiral trajectory: a hand-written "
        "fixed-grid RK4 odeint looped in Python and backpropagated through (10 steps per batch, "
        "999 for the full trajectory), get_batch() of 20 random windows with numpy indices, an "
        "MLP 2-50-2 with tanh on y**3 initialised from N(0, 0.1), a batch L1 loss below 0.01 "
        "within 250 iterations, RMSprop lr 1e-3 with CosineAnnealingLR stepped per iteration, "
        "a full-trajectory loss that jumps around before settling",
        script="wild/neural_ode_spirals.py",
    ),
    HealthyCase(
        DEC_CLUSTERING,
        "test",
        "Deep Embedded Clustering on 3,000 generated 50-D points (six anisotropic 2-D Gaussian "
        "clusters through a fixed random tanh map): MLP autoencoder 50-256-128-10 pre-trained "
        "with MSE + Adam, cluster centres an nn.Parameter set by a torch k-means on the codes, "
        "then Student's t soft assignment Q and a detached target P recomputed on the whole set "
        "every 30 iterations, F.kl_div(q.log(), p) (a small KL that barely moves), SGD with "
        "momentum, early stop on label changes; no labels used in training",
        script="wild/dec_clustering.py",
    ),
    HealthyCase(
        AMP_ACCUM_CLASSIFIER,
        "dev",
        "small ResNet (stride-2 stem, three BasicBlocks with zero-init last BN) on generated "
        "3x32x32 shapes of 10 classes: torch.autocast('cpu', bfloat16) around forward and loss, "
        "gradient accumulation over 4 micro-batches of 32 (loss / 4, step every 4), "
        "clip_grad_norm_, AdamW with norms and biases in a no-decay group, OneCycleLR per "
        "optimizer step (near-chance loss for the first epochs of warm-up), label smoothing 0.1 "
        "(the loss never nears zero), evaluate() under eval() and inference_mode",
        script="wild/amp_accum_classifier.py",
    ),
    HealthyCase(
        JEM_ENERGY_MODEL,
        "dev",
        "JEM (wgrathwohl/JEM style) on four labelled 2-D blobs and rings: SiLU MLP classifier "
        "whose logits' logsumexp is -E(x), two cycling DataLoader iterators over the same data, "
        "20 SGLD steps per iteration through torch.autograd.grad w.r.t. the samples with "
        "x.data updates and the model toggled to eval() and back inside the step, replay buffer "
        "of 10,000 points re-initialised with probability 0.05, loss = CE + (E(data) - "
        "E(samples)), a term that hovers around zero and changes sign, Adam",
        script="wild/jem_energy_model.py",
    ),
    HealthyCase(
        GRAPHSAGE_MINIBATCH,
        "test",
        "minibatch GraphSAGE in plain torch on a generated 2,000-node SBM graph with noisy "
        "community-indicator features: fixed-size neighbour sampling with replacement from CSR "
        "arrays (10 then 10), features gathered per hop, SAGE layers on concat(self, mean of "
        "neighbours) with L2-normalised outputs (bounded embeddings), input dropout, only 8 "
        "steps per epoch over 500 labelled nodes, stochastic sampled evaluation so the "
        "validation accuracy wobbles, CE, Adam with weight decay",
        script="wild/graphsage_minibatch.py",
    ),
):
    register_healthy(case)


for fault in (
    Fault(
        "wild-word2vec-sgns-negative-sign",
        WORD2VEC_SGNS,
        18,
        "dev",
        "the negative-sampling term is written logsigmoid(neg_score) instead of "
        "logsigmoid(-neg_score): the loss rewards high scores for the random negatives as "
        "well as for the true contexts, so every vector is pushed towards one direction; the "
        "mean loss falls to 0.003 (healthy 1.95) while the nearest-neighbour topic purity "
        "after 5 epochs is 0.081 / 0.074 (seeds 0 / 1) instead of 1.000, no better than "
        "random embeddings (0.068 / 0.062)",
        also=(19,),
        edits=(
            Edit(
                "neg_score = -torch.sum(F.logsigmoid(-neg_score), dim=1)",
                "neg_score = -torch.sum(F.logsigmoid(neg_score), dim=1)",
            ),
        ),
    ),
    Fault(
        "wild-word2vec-sgns-output-table-not-optimised",
        WORD2VEC_SGNS,
        23,
        "dev",
        "SparseAdam is given only model.u_embeddings.parameters(): the output (context) "
        "table, initialised at zero, never moves, so the scores stay 0 and the input vectors "
        "receive zero gradients too; the loss sits at 6 ln 2 = 4.159 for all 5 epochs and the "
        "topic purity ends at 0.077 / 0.070 (seeds 0 / 1) instead of 1.000 (random "
        "embeddings: 0.068 / 0.062)",
        also=(17, 33),
        edits=(
            Edit(
                "torch.optim.SparseAdam(list(model.parameters()), lr=args.lr)",
                "torch.optim.SparseAdam(list(model.u_embeddings.parameters()), lr=args.lr)",
            ),
        ),
    ),
    Fault(
        "wild-neural-style-lbfgs-gram-not-normalised",
        NEURAL_STYLE_LBFGS,
        20,
        "dev",
        "gram_matrix returns F F^T without dividing by a*b*c*d: the style term grows by "
        "(channels x pixels)^2, about 2e9 times, dwarfs the content term at style weight 1e6 "
        "(weighted style loss 3.3e13 to 3.6e13 at the start) and L-BFGS makes no progress on it; "
        "after 300 evaluations the output's style loss is 6.5x / 1.5x higher than the "
        "content image's (seeds 0 / 1; healthy: 2,514x / 7,277x lower) and its content loss "
        "10.8 / 5.0 instead of 2.97 / 2.68",
        also=(18,),
        edits=(Edit("    return G.div(a * b * c * d)", "    return G"),),
    ),
    Fault(
        "wild-neural-style-lbfgs-closure-no-zero-grad",
        NEURAL_STYLE_LBFGS,
        26,
        "dev",
        "optimizer.zero_grad() is dropped from the L-BFGS closure: each evaluation adds its "
        "gradient to those of all earlier ones, so L-BFGS builds its directions and curvature "
        "pairs from a running sum that is not the loss's gradient; the style loss never falls "
        "below 13,511 / 9,719 (from 15,816 / 14,082; seeds 0 / 1), the loss turns NaN at "
        "evaluation 40 / 31, and the output image is NaN (healthy: style loss reduced "
        "2,514x / 7,277x)",
        also=(37, 36),
        edits=(
            Edit(
                "            optimizer.zero_grad()\n            model(input_img)",
                "            model(input_img)",
            ),
        ),
    ),
    Fault(
        "wild-attention-mil-bags-softmax-over-branches",
        ATTENTION_MIL,
        25,
        "test",
        "the attention scores, transposed to ATTENTION_BRANCHES x K, are softmaxed over dim=0 "
        "(the single attention branch) instead of dim=1 (the K instances): every weight is "
        "exactly 1, the pooling becomes a plain sum over the bag whatever its size, and the "
        "attention layers V, U and w never receive a gradient; the training bags are still fit "
        "(train error 0.00) but the held-out bag error after 15 epochs is 0.19 and 0.20 (seeds "
        "0 and 1) instead of 0.08 and 0.11 (majority class: 0.475 and 0.385), the held-out "
        "loss 0.48 and 0.66 instead of 0.25 and 0.38",
        also=(22, 23),
        edits=(
            Edit(
                "A = F.softmax(A, dim=1)  # softmax over the K instances",
                "A = F.softmax(A, dim=0)  # softmax over the K instances",
            ),
        ),
    ),
    Fault(
        "wild-attention-mil-bags-loss-log-p-twice",
        ATTENTION_MIL,
        18,
        "test",
        "the hand-written negative log Bernoulli likelihood takes (1 - Y) * log(Y_prob) for the "
        "negative bags instead of (1 - Y) * log(1 - Y_prob): both terms reward a high "
        "probability, the classifier saturates at the clamp (1 - 1e-5) for every bag and the "
        "loss is 0.0000 by the third epoch, while the error never moves; after 15 epochs "
        "every bag is called positive, held-out error 0.475 and 0.615 (seeds 0 and 1; the "
        "fraction of negative bags) instead of 0.08 and 0.11",
        also=(21,),
        edits=(
            Edit(
                "(1.0 - Y) * torch.log(1.0 - Y_prob)",
                "(1.0 - Y) * torch.log(Y_prob)",
            ),
        ),
    ),
    Fault(
        "wild-neural-ode-spirals-batch-state-plus-index",
        NEURAL_ODE,
        3,
        "dev",
        "get_batch() stacks true_y[s] + i instead of true_y[s + i]: the targets are the start "
        "state shifted by 0, 1, ..., 9 in both coordinates, not the states of the trajectory "
        "at the next times, so the network is fitted to a flow drifting along (1, 1), off the "
        "spiral; "
        "after 2,000 iterations the batch loss is still 0.28 and 0.24 (healthy 0.005 and 0.004) "
        "and the full-trajectory L1 loss 517 and 516 (seeds 0 and 1) instead of 0.145 and 0.149 "
        "(constant prediction y0: 1.257)",
        also=(4,),
        edits=(Edit("true_y[s + i] for i", "true_y[s] + i for i"),),
    ),
    Fault(
        "wild-neural-ode-spirals-detach-each-step",
        NEURAL_ODE,
        22,
        "dev",
        "the hand-written odeint detaches the state before every RK4 step "
        "(rk4_step(func, t0, t1 - t0, y.detach())), as if to save memory: the loss at each "
        "time backpropagates through its last step only, not through the trajectory that led "
        "there, so the learnt field is fitted one step at a time and its errors compound over "
        "the 999 steps of the full trajectory; the batch loss is as low as the healthy one "
        "(0.005 and 0.004) but the final full-trajectory L1 loss is 0.241 and 0.261 (seeds 0 "
        "and 1) instead of 0.145 and 0.149 (constant prediction y0: 1.257)",
        also=(26,),
        edits=(
            Edit(
                "y = rk4_step(func, t0, t1 - t0, y)",
                "y = rk4_step(func, t0, t1 - t0, y.detach())",
            ),
        ),
    ),
    Fault(
        "wild-dec-clustering-centres-copy-reversed",
        DEC_CLUSTERING,
        28,
        "test",
        "the k-means initialisation of the cluster centres is copied the wrong way round, "
        "centres.copy_(model.assignment.cluster_centers): the k-means result is overwritten "
        "and the centres stay at their small Xavier-uniform initialisation near the origin, so "
        "DEC starts from arbitrary assignments and sharpens them; the clustering accuracy ends "
        "at 0.725 / 0.520 (seeds 0 / 1) instead of 0.903 / 0.870, below k-means on the raw "
        "inputs (0.863 / 0.821)",
        edits=(
            Edit(
                "model.assignment.cluster_centers.copy_(centres)",
                "centres.copy_(model.assignment.cluster_centers)",
            ),
        ),
    ),
    Fault(
        "wild-dec-clustering-student-t-power-negated",
        DEC_CLUSTERING,
        22,
        "test",
        "the Student's t kernel takes the formula's negative exponent -(alpha + 1) / 2 on top of "
        "the reciprocal 1 / (1 + d^2 / alpha): the soft assignment grows with the distance, "
        "each point is assigned to its farthest centre and the KL to the sharpened target "
        "pulls the embedding apart; the clustering accuracy ends at 0.423 / 0.372 (seeds 0 / "
        "1) instead of 0.903 / 0.870 (k-means on the pretrained codes: 0.885 / 0.835)",
        also=(19,),
        edits=(Edit("power = (self.alpha + 1.0) / 2.0", "power = -(self.alpha + 1.0) / 2.0"),),
    ),
    Fault(
        "wild-amp-accum-classifier-train-mode-never-restored",
        AMP_ACCUM_CLASSIFIER,
        32,
        "dev",
        "model.train() is dropped from train_one_epoch(): the first epoch trains in train mode, "
        "but evaluate() leaves the model in eval() and every later epoch trains with BatchNorm "
        "normalising by running statistics frozen at the end of epoch 1; after 12 epochs the "
        "training loss is 0.783 / 0.787 (seeds 0 / 1) instead of 0.636 / 0.637 and the "
        "held-out accuracy 0.933 / 0.937 instead of 0.977 / 0.979",
        edits=(Edit("    model.train()\n    total, n = 0.0, 0\n", "    total, n = 0.0, 0\n"),),
    ),
    Fault(
        "wild-amp-accum-classifier-onecycle-counts-micro-batches",
        AMP_ACCUM_CLASSIFIER,
        36,
        "dev",
        "OneCycleLR is built with steps_per_epoch = len(train_loader), the number of "
        "micro-batches, while it is stepped once per optimizer step (every 4 micro-batches): "
        "the schedule runs a quarter of its cycle, the warm-up takes the whole run and the "
        "learning rate ends at 2.6e-3 near its peak instead of annealing to ~1e-8; after 12 "
        "epochs the training loss is 0.730 / 0.738 (seeds 0 / 1) instead of 0.636 / 0.637 and "
        "the held-out accuracy 0.968 / 0.862 instead of 0.977 / 0.979",
        also=(29,),
        edits=(
            Edit(
                "steps_per_epoch = math.ceil(len(train_loader) / args.accum_steps)",
                "steps_per_epoch = len(train_loader)",
            ),
        ),
    ),
    Fault(
        "wild-jem-energy-model-classify-unlabeled-batch",
        JEM_ENERGY_MODEL,
        4,
        "dev",
        "the classifier is applied to the p(x) batch x_p_d (from dload_train) while the "
        "cross-entropy takes the labels of the other loader's batch y_lab: inputs and labels "
        "are paired at random, the cross-entropy stays at 1.39 (ln 4) and after 1,200 "
        "iterations the test accuracy is 0.144 (seed 0) and 0.274 (seed 1) instead of 0.988 "
        "and 0.984 (chance 0.25), while the samples still find the data (replay buffer 0.061 "
        "from the nearest data point instead of 0.039)",
        also=(3,),
        edits=(Edit("logits = f.classify(x_lab)", "logits = f.classify(x_p_d)"),),
    ),
    Fault(
        "wild-jem-energy-model-energy-sign-flipped",
        JEM_ENERGY_MODEL,
        18,
        "dev",
        "the generative term is written fp - fq instead of -(fp - fq): the model lowers the "
        "energy of its own SGLD samples and raises that of the data, the samples run away "
        "and the term diverges (-2e17 after 1,200 iterations, the cross-entropy 9e7); the "
        "test accuracy is 0.243 and 0.290 (seeds 0, 1) instead of 0.988 and 0.984, the "
        "energy gap E(noise) - E(data) -9e7 instead of +1.2 and the replay buffer lies 4e8 "
        "from the data instead of 0.04",
        also=(20,),
        edits=(Edit("l_p_x = -(fp - fq)", "l_p_x = fp - fq"),),
    ),
    Fault(
        "wild-graphsage-minibatch-neighbor-view-transposed",
        GRAPHSAGE_MINIBATCH,
        25,
        "test",
        "the sampled neighbours (laid out node by node, num_samples per node) are viewed as "
        "(num_samples, n_nodes, dim) and averaged over dim 0: each node's 'neighbour mean' "
        "mixes neighbours of other nodes of the batch, so the graph signal is lost; after 40 "
        "epochs the training loss is 1.10 (healthy 0.23) and the test accuracy 0.372 and "
        "0.396 (seeds 0, 1) instead of 0.816 and 0.825, below the logistic regression on the "
        "raw features (0.454, 0.466)",
        also=(22,),
        edits=(
            Edit(
                "h_neigh.view(len(h_self), num_samples, -1).mean(dim=1)",
                "h_neigh.view(num_samples, len(h_self), -1).mean(dim=0)",
            ),
        ),
    ),
    Fault(
        "wild-graphsage-minibatch-labels-by-position",
        GRAPHSAGE_MINIBATCH,
        4,
        "test",
        "the training targets are taken as labels[idx], the positions in train_idx, instead "
        "of labels[batch], the node ids: each sampled node is trained on the label of an "
        "unrelated node; the training loss still falls (0.99 after 40 epochs, memorised) but "
        "the test accuracy is 0.193 and 0.260 (seeds 0, 1) instead of 0.816 and 0.825 "
        "(chance 0.2, logistic regression on raw features 0.454)",
        also=(3,),
        edits=(Edit("F.cross_entropy(out, labels[batch])", "F.cross_entropy(out, labels[idx])"),),
    ),
):
    register_fault(fault)
