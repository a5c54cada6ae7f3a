"""Wild cases, fifteenth group: a LLaMA-style language model, Soft Actor-Critic, CycleGAN, a
C3D video classifier, TabNet, multi-label tagging with the Asymmetric Loss, Mean Teacher and
a noise-conditional score network.

The healthy scripts live in ``examples/wild/``, each in the manner of a well-known public
PyTorch training script (written here, not copied): a tiny decoder-only language model as in
llama2.c / nanoGPT (RMSNorm, rotary embeddings, SwiGLU, ``F.scaled_dot_product_attention``
with ``is_causal=True``, tied embeddings, a hand-written warm-up and cosine rate, random
windows from ``get_batch()``) on a hidden-Markov grammar; SAC as in CleanRL's
``sac_continuous_action.py`` (Pendulum dynamics written in the script, a replay buffer, twin
critics with Polyak-averaged targets, automatic entropy tuning, three Adam optimizers);
CycleGAN as in pytorch-CycleGAN-and-pix2pix (two generators in one Adam over
``itertools.chain``, two PatchGAN discriminators, LSGAN, cycle and identity losses, an image
pool, ``LambdaLR``); a C3D clip classifier as in the PyTorch video-classification reference
(uint8 THWC clips permuted to (C, T, H, W), ``Conv3d`` blocks, ``MultiStepLR`` per
iteration); TabNet as in pytorch-tabnet (ghost BatchNorm, GLU blocks, attentive transformers
with a hand-written sparsemax, the mask-entropy term, raw columns standardised only by an
input BatchNorm after the embeddings); multi-label tagging with the ASL repository's
``AsymmetricLoss`` and a ``ModelEma`` copy evaluated by mAP; Mean Teacher as in the authors'
``main.py`` (a ``TwoStreamBatchSampler`` of labelled and ``NO_LABEL`` samples, an EMA teacher,
a ramped softmax-MSE consistency cost); and an NCSN trained by annealed denoising score
matching on a ring of Gaussians, sampled by annealed Langevin dynamics. Each fault is one bug
as it arrives in code in that style, measured to do real harm.

Names start with ``wild-``. They were written without running nndoctor on them; three of
the eight scripts (the ASL tagger, the C3D classifier and Mean Teacher), with their faults,
were drawn at random (seed 2026120640) for ``test`` before the first measurement; the rest
are ``dev``.
"""

from __future__ import annotations

from nndoctor.faults.registry import Edit, Fault, HealthyCase, register_fault, register_healthy

LLAMA_ROPE_LM = "wild-llama-rope-lm"
SAC_PENDULUM = "wild-sac-pendulum"

for case in (
    HealthyCase(
        LLAMA_ROPE_LM,
        "dev",
        "tiny LLaMA-style decoder-only LM (llama2.c model.py manner) on a 128-word "
        "hidden-Markov grammar: RMSNorm pre-norm, rotary cos/sin tables applied to q and k in "
        "(B, T, H, D) before the transpose, SwiGLU, F.scaled_dot_product_attention("
        "is_causal=True), no biases, embedding tied to the output head, N(0, 0.02) init with "
        "scaled residual projections, AdamW (0.9, 0.95) with weight decay on 2-D weights "
        "only, lr set by hand from get_lr(it) (warm-up + cosine), clip_grad_norm_(1.0), "
        "random windows from get_batch(), estimate_loss() in eval/no_grad; the loss plateaus "
        "near the source's entropy rate (2.5 nats), far above 0",
        script="wild/llama_rope_lm.py",
    ),
    HealthyCase(
        SAC_PENDULUM,
        "dev",
        "CleanRL-style SAC on Pendulum-v1 dynamics written in the script (100-step episodes, "
        "rewards -16..0): tanh-squashed Gaussian actor with the log-prob correction, twin "
        "critics and Polyak-averaged (tau 0.005) target copies, targets under no_grad, "
        "automatic entropy tuning through log_alpha and its own Adam (alpha falls from 1 to "
        "0.07), three Adam optimizers, actor updated every second step, 1,000 random steps "
        "first; the critic loss grows as the returns' scale is learned and the returns are "
        "noisy",
        script="wild/sac_pendulum.py",
    ),
):
    register_healthy(case)


for fault in (
    Fault(
        "wild-llama-rope-lm-no-causal-mask",
        LLAMA_ROPE_LM,
        25,
        "dev",
        "is_causal=True is left out of F.scaled_dot_product_attention: every position attends "
        "to the whole window, including the token it must predict, so the train and val loss "
        "fall to 0.05 nats after 600 iterations (0.40 already at iteration 100), far below "
        "the source's entropy rate of 2.55 that no causal model can beat (healthy 2.61); "
        "sampled continuations, where the future is not there to copy, have only 0.687 / "
        "0.682 of their tokens allowed by the grammar instead of 0.974 / 0.978 (seeds 0 / 1; "
        "random tokens 0.21)",
        also=(21, 15),
        edits=(Edit("xv, is_causal=True)", "xv)"),),
    ),
    Fault(
        "wild-llama-rope-lm-key-rotates-query",
        LLAMA_ROPE_LM,
        22,
        "dev",
        "copy-paste slip in the rotary embedding: xk = apply_rotary_emb(xq, ...) instead of "
        "(xk, ...), so the keys are the rotated queries, the attention scores a query against "
        "other queries and wk is never used (no gradient, stays at its initialisation); "
        "after 600 iterations the val loss is 2.837 / 2.716 instead of 2.612 / 2.509 "
        "(seeds 0 / 1), barely below a bigram count table (2.905 / 2.776; entropy rate "
        "2.549 / 2.448, unigram 4.32 / 4.20), and 0.873 / 0.892 of the sampled tokens are "
        "grammatical instead of 0.974 / 0.978",
        also=(23,),
        edits=(
            Edit(
                "xk = apply_rotary_emb(xk, freqs_cos, freqs_sin)",
                "xk = apply_rotary_emb(xq, freqs_cos, freqs_sin)",
            ),
        ),
    ),
    Fault(
        "wild-sac-pendulum-alpha-loss-sign",
        SAC_PENDULUM,
        18,
        "dev",
        "the minus sign of the temperature loss is dropped, (log_alpha.exp() * (log_pi + "
        "target_entropy)).mean(): alpha is raised whenever the policy's entropy is above its "
        "target, and a larger alpha only raises the entropy further, so alpha grows "
        "geometrically (500 after "
        "1,000 updates, 4e19 by step 5,000), the entropy term swamps the actor's loss and the "
        "critics' targets and the critic loss overflows to inf; the deterministic policy "
        "returns -521.5 / -634.0 after 7,000 steps (seeds 0 / 1), no better than random "
        "actions (-543.1 / -631.1), instead of -117.4 / -172.1",
        also=(20, 37),
        edits=(
            Edit(
                "(-log_alpha.exp() * (log_pi + target_entropy))",
                "(log_alpha.exp() * (log_pi + target_entropy))",
            ),
        ),
    ),
    Fault(
        "wild-sac-pendulum-obs-overwritten-before-add",
        SAC_PENDULUM,
        3,
        "dev",
        "obs = next_obs is moved above rb.add(obs, next_obs, ...): the replay buffer stores "
        "(s', a, r, s') transitions, each action and reward paired with the state after it, "
        "and the next state equal to the state, so the critics learn nothing about what an "
        "action does; the training returns stay between -670 and -750 and the deterministic policy "
        "returns -757.6 / -756.7 after 7,000 steps (seeds 0 / 1), worse than random actions "
        "(-543.1 / -631.1), instead of -117.4 / -172.1",
        also=(4,),
        edits=(
            Edit(
                "        rb.add(obs, next_obs, action, reward, terminated)\n"
                "        episode_return += reward\n"
                "        obs = next_obs\n",
                "        obs = next_obs\n"
                "        rb.add(obs, next_obs, action, reward, terminated)\n"
                "        episode_return += reward\n",
            ),
        ),
    ),
):
    register_fault(fault)

CYCLEGAN_UNPAIRED = "wild-cyclegan-unpaired"
C3D_ACTION_CLIPS = "wild-c3d-action-clips"

for case in (
    HealthyCase(
        CYCLEGAN_UNPAIRED,
        "dev",
        "CycleGAN on unpaired generated 1x16x16 outlined vs filled discs and squares: two ResNet "
        "generators (reflection padding, InstanceNorm, Tanh) and two PatchGAN discriminators, "
        "LSGAN MSE losses against patch targets, cycle L1 x10 and identity L1 x5, one Adam over "
        "itertools.chain of both generators and one per discriminator (betas (0.5, 0.999)), "
        "discriminators fed from a 50-image replay buffer, LambdaLR linear decay; adversarial "
        "losses that never fall and generator/discriminator losses that trade off",
        script="wild/cyclegan_unpaired.py",
    ),
    HealthyCase(
        C3D_ACTION_CLIPS,
        "test",
        "C3D on generated uint8 THWC RGB clips whose class is the motion of a blob (6 classes): "
        "random temporal crop of 8 of 12 frames, per-channel normalisation, permute to "
        "(C, T, H, W), Conv3d + BatchNorm3d + MaxPool3d blocks, global pooling, dropout, "
        "CrossEntropyLoss, Nesterov SGD with weight decay, MultiStepLR stepped per iteration "
        "with milestones converted from epochs, validation under model.eval() each epoch; "
        "5-D inputs and a validation loss briefly above the training loss",
        script="wild/c3d_action_clips.py",
    ),
):
    register_healthy(case)


for fault in (
    Fault(
        "wild-cyclegan-unpaired-chain-same-generator",
        CYCLEGAN_UNPAIRED,
        23,
        "dev",
        "the generators' Adam is built over itertools.chain(G_AB.parameters(), "
        "G_AB.parameters()) instead of G_AB and G_BA: G_BA never leaves its initialisation "
        "(PyTorch only warns about the duplicated parameters) and G_AB's parameters are listed "
        "twice; after 384 iterations the B->A translations are useless (L1 to the true "
        "outline 1.084 and 0.588 on seeds 0 and 1, healthy 0.149 and 0.161; foreground IoU "
        "0.141 and 0.024 instead of 0.634 and 0.593) and A->B is worse than not translating "
        "(L1 0.300 and 0.368 against 0.147 and 0.151 healthy, untranslated 0.255 and 0.249)",
        also=(33,),
        edits=(
            Edit(
                "itertools.chain(G_AB.parameters(), G_BA.parameters())",
                "itertools.chain(G_AB.parameters(), G_AB.parameters())",
            ),
        ),
    ),
    Fault(
        "wild-cyclegan-unpaired-generator-fake-target",
        CYCLEGAN_UNPAIRED,
        18,
        "dev",
        "the generator's adversarial loss for A->B is computed against the all-zero 'fake' patch "
        "targets (as in the discriminator's update) instead of 'valid': G_AB is trained to make "
        "D_B reject its translations, i.e. to produce images that do not look filled; the "
        "printed losses look as healthy (G loss 1.51 vs 1.51, D loss 0.20 vs 0.25 at the end) "
        "but after 384 iterations the A->B translation is worse than not translating (L1 to "
        "the true filled shape 0.295 and 0.294 on seeds 0 and 1, healthy 0.147 and 0.151, "
        "untranslated 0.255 and 0.249; foreground IoU 0.630 and 0.626 instead of 0.806 and "
        "0.796) and B->A, trained through the same cycle, degrades too (L1 0.260 and 0.255 "
        "instead of 0.149 and 0.161)",
        also=(19,),
        edits=(
            Edit(
                "loss_GAN_AB = criterion_GAN(D_B(fake_B), valid)",
                "loss_GAN_AB = criterion_GAN(D_B(fake_B), fake)",
            ),
        ),
    ),
    Fault(
        "wild-c3d-action-clips-milestones-in-epochs",
        C3D_ACTION_CLIPS,
        36,
        "test",
        "the MultiStepLR that train_one_epoch steps after every iteration is given the "
        "milestones in epochs ([6, 9]) instead of the converted iteration counts: the learning "
        "rate falls from 0.05 to 0.005 after 6 iterations and to 0.0005 after 9 of the 380, "
        "so the network hardly trains; the training loss stays at 1.72 and 1.77 (ln 6 = 1.79; "
        "healthy 0.027 and 0.024) and the final validation clip accuracy is 0.338 and 0.253 "
        "on seeds 0 and 1 instead of 1.000 (chance 0.167)",
        also=(29,),
        edits=(
            Edit(
                "optimizer, milestones=lr_milestones, gamma",
                "optimizer, milestones=args.lr_milestones, gamma",
            ),
        ),
    ),
    Fault(
        "wild-c3d-action-clips-no-train-mode",
        C3D_ACTION_CLIPS,
        32,
        "test",
        "train_one_epoch does not call model.train(): after the first validation pass the "
        "network keeps training in eval mode, BatchNorm3d normalising with running statistics "
        "that no longer move (and dropout off) while SGD runs at lr 0.05; the loss climbs back "
        "to chance (1.84 in the second epoch) and the final validation clip accuracy is 0.245 "
        "and 0.800 on seeds 0 and 1 instead of 1.000 (chance 0.167)",
        edits=(Edit("    model.train()\n", ""),),
    ),
):
    register_fault(fault)

TABNET_TABULAR = "wild-tabnet-tabular"
ASL_MULTILABEL = "wild-asl-multilabel"

for case in (
    HealthyCase(
        TABNET_TABULAR,
        "dev",
        "small TabNet (pytorch-tabnet style) on 16,000 generated rows of 30 raw numeric features "
        "on scales from 1e-2 to 1e3 (only an input BatchNorm1d standardises them) plus two "
        "categorical codes through nn.Embedding, 3 classes from a nonlinear rule: ghost "
        "BatchNorm over virtual batches of 64 (a batch of 256 split into chunks), GLU blocks "
        "with shared linear layers, attentive transformers with a hand-written sparsemax "
        "autograd.Function (exact zeros, so the masks' log is taken of M + 1e-15) and prior "
        "scales (gamma 1.3), 3 decision steps summed, CE minus 1e-3 x the masks' negative "
        "entropy (the printed loss mixes both), Adam lr 2e-2 + StepLR per epoch, 1,880 steps",
        script="wild/tabnet_tabular.py",
    ),
    HealthyCase(
        ASL_MULTILABEL,
        "test",
        "multi-label tagging of generated 3x24x24 images (1-3 of 8 shape kinds each, tag "
        "frequencies from 0.53 down to 0.07) by a small BatchNorm CNN with one logit per tag: "
        "AsymmetricLoss as in the ASL repository (sigmoid inside the loss, clip 0.05 on the "
        "negatives, (1 - p)^4 focusing weights computed under torch.set_grad_enabled(False), "
        "loss summed over the batch, so its gradients are ~64x those of a mean loss), AdamW + "
        "OneCycleLR stepped per batch, a deepcopy ModelEma (decay 0.99, state dict incl. BN "
        "buffers, updated under no_grad) kept in eval mode and used for the mAP",
        script="wild/asl_multilabel.py",
    ),
):
    register_healthy(case)


for fault in (
    Fault(
        "wild-tabnet-tabular-sparsemax-over-batch",
        TABNET_TABULAR,
        25,
        "dev",
        "the attentive transformer's selector is built as Sparsemax(dim=0): the masks are "
        "normalised over the 256 rows of the batch for each feature instead of over the "
        "features of each row, so a row's mask is almost all zeros and depends on the other "
        "rows of its batch; after 1,880 steps the training loss is still 1.09 (ln 3) and the "
        "test accuracy that of the majority class, 0.375 and 0.371 (seeds 0 and 1) instead "
        "of 0.932 and 0.916",
        also=(22,),
        edits=(Edit("self.selector = Sparsemax(dim=-1)", "self.selector = Sparsemax(dim=0)"),),
    ),
    Fault(
        "wild-tabnet-tabular-ghost-bn-chunk-count",
        TABNET_TABULAR,
        22,
        "dev",
        "ghost batch norm calls x.chunk(self.virtual_batch_size, 0), but chunk takes the "
        "number of chunks, not their size: every batch of 256 is split into 64 virtual "
        "batches of 4 rows, so all 19 ghost BatchNorms normalise with the statistics of 4 "
        "samples; after 1,880 steps the training loss is 0.89 and 0.88 (healthy 0.30 and "
        "0.34) and the test accuracy 0.598 and 0.563 (seeds 0 and 1) instead of 0.932 and "
        "0.916 (majority class 0.37)",
        also=(25,),
        edits=(
            Edit(
                "x.chunk(int(math.ceil(x.shape[0] / self.virtual_batch_size)), 0)",
                "x.chunk(self.virtual_batch_size, 0)",
            ),
        ),
    ),
    Fault(
        "wild-asl-multilabel-onecycle-per-epoch",
        ASL_MULTILABEL,
        36,
        "test",
        "OneCycleLR, built with steps_per_epoch=len(train_loader) for 1,128 steps, is stepped "
        "once per epoch instead of after every batch: the learning rate never leaves the "
        "start of its warm-up (max_lr / 25 = 8e-5 instead of up to 2e-3); after 12 epochs the "
        "loss is still 1.17 (healthy 0.29) and the EMA model's test mAP is 57.5 and 62.7 "
        "(seeds 0 and 1) instead of 94.4 and 94.9 (random scores: 25)",
        also=(29,),
        edits=(
            Edit(
                "        optimizer.step()\n        scheduler.step()\n", "        optimizer.step()\n"
            ),
            Edit(
                "scheduler)\n        if epoch % 2 == 0:\n",
                "scheduler)\n        scheduler.step()\n        if epoch % 2 == 0:\n",
            ),
        ),
    ),
    Fault(
        "wild-asl-multilabel-ema-params-only",
        ASL_MULTILABEL,
        32,
        "test",
        "ModelEma averages zip(self.module.parameters(), model.parameters()) instead of the "
        "state dicts: the EMA copy's BatchNorm buffers are never updated and it is evaluated "
        "in eval mode with running mean 0 and variance 1 from its initialisation; the live "
        "model reaches a test mAP of 94.4 and 94.9 but the EMA model used for evaluation "
        "only 77.3 and 71.2 (seeds 0 and 1; healthy EMA 94.4 and 94.9, random scores 25)",
        also=(23,),
        edits=(
            Edit(
                "self.module.state_dict().values(), model.state_dict().values(), strict=True",
                "self.module.parameters(), model.parameters(), strict=True",
            ),
        ),
    ),
):
    register_fault(fault)

MEAN_TEACHER_SEMI = "wild-mean-teacher-semi"
NCSN_SCORE_MATCHING = "wild-ncsn-score-matching"

for case in (
    HealthyCase(
        MEAN_TEACHER_SEMI,
        "test",
        "Mean Teacher on generated 16x16 glyphs with 5% of the labels, flattened into a "
        "BatchNorm MLP: batches half NO_LABEL=-1 under CrossEntropyLoss(reduction='sum', "
        "ignore_index=-1) divided by the whole batch size, two augmented views, a teacher whose "
        "parameters are detached with requires_grad=False and change only through an in-place "
        "EMA of the student under .data, a softmax-MSE consistency term whose weight ramps up "
        "from 0, Nesterov SGD with the lr set by hand every iteration (warm-up, cosine to 0), "
        "then a supervised-only model trained on the 150 labelled images",
        script="wild/mean_teacher_semi.py",
    ),
    HealthyCase(
        NCSN_SCORE_MATCHING,
        "dev",
        "NCSN on raw 2-D points of a ring of 8 Gaussians (radius 4): annealed denoising "
        "score matching over 10 geometric noise levels from 5 to 0.05 (targets up to "
        "1/sigma = 20, weighted by sigma^2), a loss whose floor is far from zero (about 0.55) "
        "and noisy from the random levels, a Softplus MLP conditioned by nn.Embedding of the "
        "level index with its output divided by sigma, Adam 3e-3, DataLoader; sample quality "
        "is only seen after training, through annealed Langevin dynamics",
        script="wild/ncsn_score_matching.py",
    ),
):
    register_healthy(case)


for fault in (
    Fault(
        "wild-mean-teacher-semi-teacher-eval-mode",
        MEAN_TEACHER_SEMI,
        32,
        "test",
        "the teacher is put in eval() mode for training ('it is not trained') instead of "
        "train() mode: update_ema_variables averages only the parameters, so the teacher's "
        "BatchNorm running statistics stay at their initial 0 and 1, its predictions are "
        "wrong and the consistency cost drags the student along as its weight ramps up; the "
        "student reaches 0.84 / 0.83 at epoch 5, then the class loss rises (0.26 / 0.34 at the end "
        "instead of 0.003) and after 40 epochs the test accuracy is 0.360 / 0.185 (student) "
        "and 0.343 / 0.169 (teacher) on seeds 0 / 1 instead of 0.978 / 0.969 (supervised-only "
        "model: 0.950 / 0.937; chance 0.167)",
        also=(23,),
        edits=(Edit("    ema_model.train()", "    ema_model.eval()"),),
    ),
    Fault(
        "wild-mean-teacher-semi-ema-args-swapped",
        MEAN_TEACHER_SEMI,
        23,
        "test",
        "update_ema_variables is called with the student and the teacher swapped: the "
        "teacher never moves from its random initialisation (test accuracy 0.157 / 0.188, "
        "chance) while every step overwrites the student's parameters with an average pulled "
        "1% towards that random teacher; as the learning rate is ramped down the student "
        "sinks towards it, its class loss rising to 0.81 / 0.82 (healthy 0.003) and its test "
        "accuracy falling from 0.78 at epoch 20 to 0.296 / 0.310 after 40 epochs on seeds "
        "0 / 1, instead of 0.978 / 0.969 (supervised-only model: 0.950 / 0.937)",
        also=(22,),
        edits=(
            Edit(
                "update_ema_variables(model, ema_model, args.ema_decay, global_step)",
                "update_ema_variables(ema_model, model, args.ema_decay, global_step)",
            ),
        ),
    ),
    Fault(
        "wild-ncsn-score-matching-clean-input",
        NCSN_SCORE_MATCHING,
        4,
        "dev",
        "the score network is given the clean samples instead of the perturbed ones, "
        "scorenet(samples, labels): its input carries nothing about the noise it must "
        "predict, so it learns a score near zero and the loss stays at its chance value (1.01 "
        "/ 0.98 after 30 epochs on seeds 0 / 1, against 0.549 / 0.547 healthy); the Langevin "
        "samples are diffuse noise, 0.005 / 0.004 of them within 3 std of a mode, no mode "
        "covered, MMD 0.255 / 0.251 instead of 0.888 / 0.866, 8/8 modes and MMD 0.040 / 0.051 "
        "(untrained network: 0.002 / 0.000, MMD 0.260 / 0.258)",
        also=(5, 2),
        edits=(
            Edit(
                "scores = scorenet(perturbed_samples, labels)",
                "scores = scorenet(samples, labels)",
            ),
        ),
    ),
    Fault(
        "wild-ncsn-score-matching-target-sign",
        NCSN_SCORE_MATCHING,
        18,
        "dev",
        "the minus sign of the denoising target is dropped, target = (perturbed - x) / "
        "sigma^2: the network learns the negated score equally well, so the training loss is "
        "the healthy one (0.548 / 0.547 after 30 epochs on seeds 0 / 1), but Langevin dynamics "
        "then climbs away from the data (median radius of the samples about 7e6 instead of "
        "4): 0.000 of the samples within 3 std of a mode and MMD 0.261 / 0.257, against "
        "0.888 / 0.866 and 0.040 / 0.051 healthy (untrained network: 0.002 / 0.000, MMD "
        "0.260 / 0.258)",
        also=(19, 21),
        edits=(
            Edit(
                "target = -1 / (used_sigmas**2) * (perturbed_samples - samples)",
                "target = 1 / (used_sigmas**2) * (perturbed_samples - samples)",
            ),
        ),
    ),
):
    register_fault(fault)
