"""Wild cases, thirteenth group: greedy layer-wise pre-training, a Spatial Transformer
Network, PGD adversarial training, Reptile, DDPG, a Child-Sum Tree-LSTM, a conditional
Neural Process and Conv-TasNet.

The healthy scripts live in ``examples/wild/``, each in the manner of a well-known public
PyTorch training script (written here, not copied): a stacked denoising autoencoder as in
the "SdA" tutorials (three layers pre-trained in turn, each with its own optimizer, on the
detached codes below, then fine-tuned under a linear head with a new optimizer); the
Spatial Transformer tutorial (an identity-initialised localisation head, ``affine_grid`` +
``grid_sample``, ``log_softmax`` + ``nll_loss``); PGD adversarial training as in the fast
adversarial training scripts (an inner attack whose backward passes also reach the model's
gradients, a piecewise-linear rate set by hand); Reptile on sine waves as in OpenAI's demo
(inner SGD by hand, the outer step an interpolation of state dicts, no optimizer object);
DDPG as in sfujim/TD3 (two optimizers, target networks averaged by hand, a replay buffer);
a Child-Sum Tree-LSTM as in treelstm.pytorch (trees processed node by node, gradients of
several trees accumulated per Adagrad step); a conditional Neural Process as in DeepMind's
notebook (Gaussian-process curves drawn afresh each batch, varying context sizes, a Normal
likelihood); and a small Conv-TasNet as in kaituoxu/asteroid (negative SI-SNR with
permutation invariant training). Each fault is one bug as it arrives in code in that style,
measured to do real harm.

Names start with ``wild-``. They were written without running nndoctor on them; three of
the eight scripts (DDPG, Reptile and the Tree-LSTM), with their faults, were drawn at random
(seed 2026120538) for ``test`` before the first measurement; the rest are ``dev``.
"""

from __future__ import annotations

from nndoctor.faults.registry import Edit, Fault, HealthyCase, register_fault, register_healthy

GREEDY_LAYERWISE_SAE = "wild-greedy-layerwise-sae"
SPATIAL_TRANSFORMER = "wild-spatial-transformer"
PGD_ADVERSARIAL_TRAINING = "wild-pgd-adversarial-training"
REPTILE_SINE = "wild-reptile-sine"
DDPG_REACHER = "wild-ddpg-reacher"
TREE_LSTM_SENTIMENT = "wild-tree-lstm-sentiment"
NEURAL_PROCESS_1D = "wild-neural-process-1d"
CONVTASNET_SEPARATION = "wild-convtasnet-separation"

for case in (
    HealthyCase(
        GREEDY_LAYERWISE_SAE,
        "dev",
        "stacked denoising autoencoder (64-128-96-64 sigmoid encoders, linear decoders to "
        "reconstruction logits, masking noise 0.1/0.2/0.3) on generated 8x8 stroke glyphs in "
        "[0, 1]: each layer pre-trained in turn with its own SGD (momentum 0.9) on the "
        "no_grad codes of the layers below, BCE-with-logits summed per example (a "
        "reconstruction loss in the tens that plateaus high for the upper layers, whose "
        "inputs are sigmoid codes near 0.5), then the stacked encoders + linear head fine-tuned "
        "with a new SGD and CrossEntropyLoss on 500 labels (training loss near 0.01, a deep "
        "sigmoid stack that would not train from scratch), beside a logistic regression",
        script="wild/greedy_layerwise_sae.py",
    ),
    HealthyCase(
        SPATIAL_TRANSFORMER,
        "dev",
        "Spatial Transformer Network as in the PyTorch tutorial on generated 1x28x28 glyphs "
        "under random rotation/scale/shear/translation: localisation convnet -> fc_loc whose "
        "last Linear starts with zero weights and the identity bias (a zero-weight layer by "
        "design), F.affine_grid + F.grid_sample, small convnet with Dropout2d and dropout, "
        "F.log_softmax + F.nll_loss, SGD lr 0.01 momentum 0.5, train()/test() switching "
        "model.train()/model.eval(), then the same Net without the transformer as baseline",
        script="wild/spatial_transformer.py",
    ),
):
    register_healthy(case)


for fault in (
    Fault(
        "wild-greedy-layerwise-sae-pretrain-no-zero-grad",
        GREEDY_LAYERWISE_SAE,
        36,
        "dev",
        "optimizer.zero_grad() is missing from the layer-wise pre-training loop: each layer's "
        "gradients accumulate over all its batches and SGD with momentum takes ever larger "
        "steps; the first layer's reconstruction loss climbs from 744 to 26,350 (healthy: "
        "falls to 17.0), its codes saturate at 0 or 1 so the second layer has nothing left to "
        "reconstruct (loss 0.000), and the fine-tuned stack ends at chance, test accuracy "
        "0.098 and 0.101 on seeds 0 and 1 instead of 0.834 and 0.799 (logistic regression: "
        "0.678 and 0.649)",
        also=(35, 33),
        edits=(
            Edit(
                "            optimizer.zero_grad()\n            # Cross-entropy summed",
                "            # Cross-entropy summed",
            ),
        ),
    ),
    Fault(
        "wild-greedy-layerwise-sae-softmax-into-cross-entropy",
        GREEDY_LAYERWISE_SAE,
        19,
        "dev",
        "the stacked classifier returns F.softmax of the head (the Theano SdA's logistic layer "
        "outputs p_y_given_x) and nn.CrossEntropyLoss applies its own log-softmax on top: the "
        "fine-tuning loss stays at 1.73 after 1,500 steps (healthy: 0.014) and the test "
        "accuracy ends at 0.656 and 0.631 on seeds 0 and 1 instead of 0.834 and 0.799, below "
        "the logistic regression on raw pixels (0.678 and 0.649)",
        also=(18,),
        edits=(
            Edit("        return self.head(x)", "        return F.softmax(self.head(x), dim=1)"),
        ),
    ),
    Fault(
        "wild-spatial-transformer-loc-bias-zero-init",
        SPATIAL_TRANSFORMER,
        28,
        "dev",
        "the last layer of fc_loc is zeroed entirely (bias.data.zero_() instead of the identity "
        "[1, 0, 0, 0, 1, 0]): at the start theta = 0 maps every output pixel to the centre of "
        "the input, so the transformed image is constant and the classifier sees nothing; "
        "after the first epoch the test accuracy is 0.122 (healthy 0.223) and after 8 epochs "
        "0.922 and 0.873 on seeds 0 and 1 instead of 0.988 and 0.987, six to ten times the "
        "errors, close to the classifier without a transformer (0.850 and 0.881)",
        also=(35,),
        edits=(
            Edit(
                "self.fc_loc[2].bias.data.copy_(torch.tensor([1, 0, 0, 0, 1, 0], dtype=torch.float))",
                "self.fc_loc[2].bias.data.zero_()",
            ),
        ),
    ),
    Fault(
        "wild-spatial-transformer-nll-on-logits",
        SPATIAL_TRANSFORMER,
        19,
        "dev",
        "forward returns the raw output of fc2 instead of F.log_softmax(x, dim=1) and F.nll_loss "
        "is applied to those logits: the loss, minus the target's logit, is unbounded below and "
        "is driven down (-0.02, -0.93, -370 within 36 batches) until it is NaN; both the STN and "
        "the baseline end at 0.108 and 0.095 test accuracy on seeds 0 and 1 (chance 0.100) "
        "instead of 0.988 and 0.987",
        also=(37, 18),
        edits=(Edit("        return F.log_softmax(x, dim=1)", "        return x"),),
    ),
):
    register_fault(fault)

for case in (
    HealthyCase(
        PGD_ADVERSARIAL_TRAINING,
        "dev",
        "PGD adversarial training (Madry / fast-adversarial-training style) of a small "
        "stride-2 convnet with a Normalize module on generated 1x12x12 digit glyphs in [0, 1]: "
        "each batch attacked by 5 PGD steps (uniform start, delta.requires_grad, "
        "delta.grad.sign() ascent, clamp to the epsilon ball and pixel range, delta.grad.zero_()) "
        "whose backward passes also fill the model's gradients until opt.zero_grad(), epsilon "
        "ramped to 0.2 over 4 epochs (the adversarial loss sits near chance for the first "
        "epochs), SGD momentum + weight decay with a piecewise-linear lr set in the param group "
        "per batch; an undefended twin and a PGD evaluation with restarts",
        script="wild/pgd_adversarial_training.py",
    ),
    HealthyCase(
        REPTILE_SINE,
        "test",
        "Reptile on random sine waves (OpenAI reptile-sinewaves style): tanh MLP 1-64-64-1, "
        "hand-written inner SGD (model.zero_grad(), param.data -= lr * param.grad.data) with "
        "no optimizer object, outer interpolation between deepcopy-ed state dicts loaded by "
        "load_state_dict with a linearly annealed outer step, the loss jumping from task to "
        "task (amplitudes 0.1-5), and evaluation that adapts a snapshot for 32 steps and "
        "restores it",
        script="wild/reptile_sine.py",
    ),
):
    register_healthy(case)


for fault in (
    Fault(
        "wild-pgd-adversarial-training-attack-descends",
        PGD_ADVERSARIAL_TRAINING,
        18,
        "dev",
        "the training attack steps delta - alpha * sign(grad) instead of +: PGD descends the "
        "cross-entropy and the model is trained on the easiest points of the epsilon ball "
        "(perturbations that write the label into the image); the adversarial training loss "
        "falls to 2e-4 (healthy: 0.010), but the clean test accuracy ends at 0.430 (seed 1: "
        "0.671) instead of 1.000 and the PGD accuracy at 0.000 instead of 0.996 (seed 1: "
        "0.997), no better than the undefended model (0.058)",
        also=(21,),
        edits=(
            Edit(
                "delta.data = torch.clamp(delta + alpha",
                "delta.data = torch.clamp(delta - alpha",
            ),
        ),
    ),
    Fault(
        "wild-pgd-adversarial-training-zero-grad-before-attack",
        PGD_ADVERSARIAL_TRAINING,
        36,
        "dev",
        "opt.zero_grad() is called at the top of the batch, before the attack, instead of "
        "just before the training backward: the model's gradients of the 5 attack steps are "
        "added to the training gradient, a step about 6 times too large once the cyclic lr "
        "peaks; the adversarial training loss climbs back to 2.69 at epoch 3 and stays at "
        "chance, the clean and PGD test accuracy end at 0.108 (seed 1: the loss jumps to "
        "2.64, then 0.708 clean and 0.662 PGD) instead of 1.000 and 0.996",
        also=(33, 35),
        edits=(
            Edit(
                "            opt.zero_grad()\n            loss.backward()",
                "            loss.backward()",
            ),
            Edit(
                "            opt.param_groups[0].update(lr=lr)\n",
                "            opt.param_groups[0].update(lr=lr)\n            opt.zero_grad()\n",
            ),
        ),
    ),
    Fault(
        "wild-reptile-sine-state-dict-not-copied",
        REPTILE_SINE,
        36,
        "test",
        "weights_before = model.state_dict() without deepcopy: the state dict holds the live "
        "parameter tensors, which the in-place inner SGD (param.data -= ...) updates, so "
        "weights_after - weights_before is zero and the outer step keeps the adapted weights, "
        "an effective outer step size of 1 (plain sequential fine-tuning task after task); "
        "after 10,000 iterations the held-out 10-shot MSE is 2.064 (seed 1: 2.799) instead of "
        "0.380 (0.389), against 2.888 (2.353) from a random initialisation",
        also=(23, 29),
        edits=(
            Edit(
                "        weights_before = deepcopy(model.state_dict())\n        # Generate task",
                "        weights_before = model.state_dict()\n        # Generate task",
            ),
        ),
    ),
    Fault(
        "wild-reptile-sine-prediction-squeezed",
        REPTILE_SINE,
        19,
        "test",
        "the prediction is squeezed, ypred = model(x).squeeze(), against targets of shape "
        "(n, 1): the hand-written (ypred - y).pow(2).mean() broadcasts to n x n and every "
        "point is fitted to every target of the minibatch, so the net learns the minibatch "
        "mean; after 10,000 iterations the held-out 10-shot MSE is 4.357 (seed 1: 4.647), "
        "worse than predicting zero (4.212; 4.466), instead of 0.380 (0.389)",
        also=(25,),
        edits=(Edit("    ypred = model(x)\n", "    ypred = model(x).squeeze()\n"),),
    ),
):
    register_fault(fault)

for case in (
    HealthyCase(
        DDPG_REACHER,
        "test",
        "DDPG in plain torch + numpy on a hand-written 2-D point-mass reaching env (state = "
        "position, velocity, goal; 50-step episodes whose time-out is not terminal, all rewards "
        "negative): tanh actor and Q(s, a) critic MLPs with an Adam each, deepcopy target "
        "networks Polyak-averaged by hand through .data, a replay buffer sampled with "
        "replacement, 1,000 random steps then Gaussian exploration noise, TD target under "
        "no_grad, actor loss -Q (positive and drifting) whose backward also fills the critic's "
        "grads, one update per environment step on a non-stationary stream",
        script="wild/ddpg_reacher.py",
    ),
    HealthyCase(
        TREE_LSTM_SENTIMENT,
        "test",
        "Child-Sum Tree-LSTM on generated binary parse trees of 3-20 words whose sentiment "
        "composes (negators flip, intensifiers double): Python Tree objects processed "
        "recursively node by node with batch size 1, inner nodes fed a zero input, "
        "log_softmax + NLLLoss summed over the labelled nodes (neutral, negator and intensifier "
        "leaves unlabelled), the gradients of 25 trees accumulated before one Adagrad step "
        "(weight decay 1e-4), dropout 0.2; a bag-of-words baseline sits near chance",
        script="wild/tree_lstm_sentiment.py",
    ),
):
    register_healthy(case)


for fault in (
    Fault(
        "wild-ddpg-reacher-reward-flat-broadcast",
        DDPG_REACHER,
        19,
        "test",
        "the replay buffer keeps the rewards in a flat array of shape (max_size,) instead of "
        "(max_size, 1): a sampled reward batch is (128,), r + gamma * not_done * Q'(s', pi'(s')) "
        "broadcasts to a 128 x 128 target and F.mse_loss (a UserWarning only) regresses every "
        "Q(s_i, a_i) onto the batch's mean reward plus its own bootstrap, so the critic loses "
        "the link between an action and its reward; after 10,000 steps the evaluation return "
        "is -52.7 instead of -5.75 (seed 0; random policy -47.6, zero action -41.6) and -50.6 "
        "instead of -7.41 (seed 1; random -54.2, zero action -53.6)",
        also=(25,),
        edits=(
            Edit(
                "self.reward = np.zeros((max_size, 1), dtype=np.float32)",
                "self.reward = np.zeros(max_size, dtype=np.float32)",
            ),
        ),
    ),
    Fault(
        "wild-ddpg-reacher-actor-loss-sign",
        DDPG_REACHER,
        18,
        "test",
        "the minus sign of the actor loss is dropped, actor_loss = critic(s, actor(s)).mean(): "
        "the actor descends on Q and learns the worst actions while its printed loss falls "
        "steadily (to -33 and -30) and the critic loss stays small; after 10,000 steps the "
        "evaluation return is -70.3 instead of -5.75 (seed 0) and -90.7 instead of -7.41 (seed "
        "1), worse than the random policy (-47.6 / -54.2)",
        also=(21,),
        edits=(
            Edit(
                "actor_loss = -self.critic(state, self.actor(state)).mean()",
                "actor_loss = self.critic(state, self.actor(state)).mean()",
            ),
        ),
    ),
    Fault(
        "wild-tree-lstm-sentiment-log-softmax-dim0",
        TREE_LSTM_SENTIMENT,
        19,
        "test",
        "the node classifier's F.log_softmax is taken over dim=0 of its (1, 2) output, the "
        "batch axis of a single node, instead of dim=1: every log-probability is 0, the NLL loss "
        "is exactly 0.000 from the first step and no gradient of the loss reaches any "
        "parameter (only weight decay acts); the held-out root accuracy stays at 0.496 (seed 0) "
        "and 0.482 (seed 1) instead of 0.956 / 0.964, at the majority class (0.504 / 0.518)",
        also=(17, 25),
        edits=(
            Edit(
                "return F.log_softmax(self.l1(self.dropout(vec)), dim=1)",
                "return F.log_softmax(self.l1(self.dropout(vec)), dim=0)",
            ),
        ),
    ),
    Fault(
        "wild-tree-lstm-sentiment-detached-children",
        TREE_LSTM_SENTIMENT,
        23,
        "test",
        "the children's memory and hidden states are detached when they are gathered for "
        "their parent, so no gradient flows down the tree: each node's loss trains only the "
        "cell step at that node, and the unlabelled leaves (negators, intensifiers, neutral "
        "words) never send a gradient to their embeddings; after 3 epochs the training loss "
        "is 2.69 instead of 0.12 and the held-out root accuracy 0.580 instead of 0.956 (seed "
        "0), 0.676 instead of 0.964 (seed 1), close to the bag-of-words baseline (0.530 / "
        "0.574)",
        also=(35, 22),
        edits=(
            Edit(
                "child_c, child_h = torch.cat(child_c, dim=0), torch.cat(child_h, dim=0)",
                "child_c, child_h = torch.cat(child_c, dim=0).detach(), "
                "torch.cat(child_h, dim=0).detach()",
            ),
        ),
    ),
):
    register_fault(fault)

for case in (
    HealthyCase(
        NEURAL_PROCESS_1D,
        "dev",
        "conditional Neural Process (DeepMind notebook ported to PyTorch) on 1-D curves drawn "
        "afresh every batch from an RBF Gaussian process (float64 Cholesky sampling), with a "
        "different number of context (3-10) and target points in every batch and no dataset or "
        "DataLoader; MLP encoder on (x, y) pairs averaged over the context set, representation "
        "tiled over the targets with repeat + view, MLP decoder to Normal(mu, 0.1 + 0.9 * "
        "softplus), loss = mean negative log-likelihood of all targets (contexts included), "
        "Adam; the NLL starts near 1.4 and keeps falling slowly at the end",
        script="wild/neural_process_1d.py",
    ),
    HealthyCase(
        CONVTASNET_SEPARATION,
        "dev",
        "small Conv-TasNet on generated 0.25 s two-source mixtures (vibrato tone + clicks or "
        "AM noise) whose sources are stored in random order: conv encoder with ReLU, TCN "
        "separator of dilated depthwise-separable blocks with global layer norm (over channels "
        "and time) and PReLU, masks softmaxed over the two sources, transposed-conv decoder; "
        "loss = -SI-SNR in dB with utterance-level PIT (a max over the two orders), starting "
        "near +10 dB and going negative as it trains, Adam + clip_grad_norm_(5) + StepLR, "
        "DataLoader",
        script="wild/convtasnet_separation.py",
    ),
):
    register_healthy(case)


for fault in (
    Fault(
        "wild-neural-process-1d-context-y-not-gathered",
        NEURAL_PROCESS_1D,
        4,
        "dev",
        "the curve sampler gathers the context inputs with the random permutation, "
        "x[:, idx[:num_context]], but takes the context values as y[:, :num_context]: every "
        "context x is paired with the value of another point of the curve, so the context only "
        "tells the level of the function; after 3,000 batches the training NLL stays at 1.21 "
        "(healthy 0.59) and the held-out target log-likelihood is -2.01 / -1.99 (seeds 0 / 1) "
        "with MSE 1.38 / 1.37, against -0.95 / -0.94 and 0.45 / 0.48 healthy (predicting the "
        "context mean: MSE 0.88 / 0.85); the held-out contexts are mispaired as well",
        also=(3,),
        edits=(
            Edit(
                "context_y = y[:, idx[:num_context]]",
                "context_y = y[:, :num_context]",
            ),
        ),
    ),
    Fault(
        "wild-neural-process-1d-repeat-mixes-batch",
        NEURAL_PROCESS_1D,
        25,
        "dev",
        "the port of tf.tile tiles the (batch, dim) representation with repeat(num_targets, 1) "
        "instead of repeat(1, num_targets) before the .view(batch_size, num_targets, -1): the "
        "shapes still fit, but each target point now receives the context representation of "
        "another curve of the batch, so the decoder cannot use the context; the training NLL "
        "stays at the prior's 1.42 (healthy 0.59) and the held-out log-likelihood is -1.40 / "
        "-1.38 (seeds 0 / 1) with MSE 0.97 / 0.92, worse than predicting the context mean "
        "(0.88 / 0.85), against -0.95 / -0.94 and 0.45 / 0.48 healthy",
        also=(4,),
        edits=(
            Edit(
                "representation.repeat(1, num_targets).view(",
                "representation.repeat(num_targets, 1).view(",
            ),
        ),
    ),
    Fault(
        "wild-convtasnet-separation-pit-worst-permutation",
        CONVTASNET_SEPARATION,
        18,
        "dev",
        "the PIT loss keeps torch.min instead of torch.max of the per-permutation SI-SNR: each "
        "mixture is scored with the worse of the two source orders, which is highest when the "
        "two outputs are alike, so nothing drives them apart; the loss still "
        "falls (seed 0: from +26 to +1.4 dB) but after 4 epochs the held-out SI-SNR improvement is "
        "-0.79 / -2.98 dB (seeds 0 / 1) instead of 11.50 / 11.84 dB (unprocessed mixture: 0)",
        also=(21,),
        edits=(Edit("torch.max(snr_set, dim=1)", "torch.min(snr_set, dim=1)"),),
    ),
    Fault(
        "wild-convtasnet-separation-decoder-gets-mask",
        CONVTASNET_SEPARATION,
        22,
        "dev",
        "the forward passes the estimated masks to the transposed-conv decoder instead of the "
        "masked encoder output (mixture_w * est_mask): the waveform reaches the output only "
        "through the [0, 1] masks, so the decoder cannot rebuild either source; the loss "
        "falls from +8 dB to stall at +0.1 dB and the held-out SI-SNR improvement is -0.10 / -0.11 dB (seeds 0 / "
        "1) instead of 11.50 / 11.84 dB (unprocessed mixture: 0)",
        also=(24,),
        edits=(
            Edit(
                "self.decoder(masked.view(M * C, N, K))",
                "self.decoder(est_mask.view(M * C, N, K))",
            ),
        ),
    ),
):
    register_fault(fault)
