"""Wild cases, eighteenth group: MADE, GRU4Rec, Co-teaching on noisy labels, End-To-End Memory
Networks, LSQ quantization-aware training, a gradient-checkpointed MLP-Mixer, InfoGAN and ESIM.

The healthy scripts live in ``examples/wild/``, each in the manner of a well-known public
PyTorch training script (written here, not copied): MADE as in Karpathy's ``pytorch-made``
(``MaskedLinear`` layers whose connectivity mask, a registered buffer, is multiplied into the
weight in ``forward``; ``update_masks`` drawing input orderings and hidden degrees and cycling
two mask sets; the summed binary cross-entropy per example, Adam with a ``StepLR``) on binary
vectors from a random sparse Bayesian network, judged by its test NLL against the marginals and
by the source likelihood of its samples; GRU4Rec as in hidasib's GRU4Rec and its PyTorch ports
(session-parallel mini-batches whose lanes' hidden states are zeroed when a new session takes
them, one GRU step per batch with the state carried and detached, cross-entropy over the
in-batch target scores, Adagrad) on Markov-chain click sessions, with Recall@20 and MRR@20
against popularity; Co-teaching as in the authors' ``Co-teaching`` repository (two small
BatchNorm CNNs trained together on symmetrically corrupted labels, each ranking its per-sample
losses and updating its peer on the small-loss fraction, a forget rate ramped over the first
epochs, Adam whose lr and beta1 are decayed by hand, a standard network on all the noisy labels
for comparison) on generated stroke glyphs; an End-To-End Memory Network as in facebook's
``MemN2N`` and its PyTorch ports (three hops with adjacent weight tying, position and temporal
encoding, the "linear start", summed cross-entropy, SGD with gradient-norm clipping at 40) on
generated bAbI "where is X?" stories; Learned Step Size Quantization as in the LSQ paper and
lsq-net (a float Conv-BN CNN trained first, then deep-copied into ``QConv2d`` / ``QLinear``
wrappers that fake-quantize weights and activations to 4 bits with one learned step per
quantizer, a ``round_pass`` STE, the step's gradient scaled by ``1/sqrt(N*Qp)``, fine-tuned with
SGD + cosine) on generated glyphs; an MLP-Mixer as in lucidrains' ``mlp-mixer-pytorch`` and
timm, its blocks run through ``checkpoint(use_reentrant=False)`` in training, on images
labelled by two shapes' relative position; InfoGAN as in eriklindernoren's ``PyTorch-GAN``
``infogan.py`` (a generator fed noise, a one-hot categorical code and two continuous codes, a
discriminator trunk with a real/fake head and Q heads, three Adam optimizers: G, D, and the
information loss over both) on five 2-D strokes, judged by how well the categorical code
separates them; and ESIM as in coetaur0's ``ESIM`` (BiLSTMs over packed per-batch-padded
premises and hypotheses, masked soft alignment, ``[a; a~; a - a~; a * a~]`` enhancement, masked
mean/max pooling, ``ReduceLROnPlateau`` on validation accuracy) on generated sentence pairs whose
label follows from the colours of the animals named.

The scripts were written without running nndoctor on them; LSQ, GRU4Rec and MADE were drawn at
random for ``test`` (seed 2026120643) before the first measurement. Each fault is one bug as it
arrives in code in that style, measured to do real harm.
"""

from __future__ import annotations

from nndoctor.faults.registry import Edit, Fault, HealthyCase, register_fault, register_healthy

MADE_DENSITY = "wild-made-density"
GRU4REC_SESSIONS = "wild-gru4rec-sessions"

for case in (
    HealthyCase(
        MADE_DENSITY,
        "test",
        "MADE (Karpathy's pytorch-made manner) on 28-bit vectors from a random sparse Bayesian "
        "network: MaskedLinear layers whose 0/1 mask buffer is multiplied into the weight in "
        "forward (most weight entries never get a gradient), masks rebuilt from random "
        "orderings and degrees every 20 steps cycling over 2 mask sets (the function the "
        "network computes changes during training), the input is its own target, "
        "binary_cross_entropy_with_logits(reduction='sum') / B so the loss is in nats per "
        "example (19.4 = 28 ln 2 at the start, floored at the source entropy near 13.2, never "
        "near 0), torch.set_grad_enabled toggled by the split, Adam with weight decay and a "
        "StepLR; test NLL against the marginals baseline and the NLL of model samples under "
        "the source",
        script="wild/made_density.py",
    ),
    HealthyCase(
        GRU4REC_SESSIONS,
        "test",
        "GRU4Rec (hidasib's GRU4Rec / GRU4REC-pytorch manner) on Markov-chain click sessions "
        "over 500 items: session-parallel mini-batches from a generator over one flat item "
        "array with click offsets (sessions in a fixed order, never shuffled), one GRU step "
        "per batch on time-major input with the hidden state carried across batches, "
        "detached, and zeroed in place for the lanes whose session just started, "
        "cross-entropy over the B x B in-batch score matrix logit[:, target] with the same "
        "labels arange(50) in every batch (loss floor near 0.9, ln 50 = 3.9 at the start), "
        "Adagrad lr 0.05; Recall@20 and MRR@20 over all items against popularity",
        script="wild/gru4rec_sessions.py",
    ),
):
    register_healthy(case)


for fault in (
    Fault(
        "wild-made-density-output-mask-leak",
        MADE_DENSITY,
        22,
        "test",
        "update_masks builds the output layer's mask with <= instead of the strict <, "
        "m[L - 1][:, None] <= m[-1][None, :]: the logit of bit d is connected to hidden units "
        "of degree d, which see input d itself, so MADE is no longer autoregressive and learns "
        "to copy its input; the loss falls to an impossible test NLL of 0.37 / 0.51 nats "
        "(seeds 0 / 1), far below the source entropy (13.17 / 13.41) and the healthy 13.27 / "
        "13.48, while its samples score 27.2 / 26.6 nats under the source, no better than "
        "samples of the marginals (27.7 / 27.4), instead of 13.57 / 13.75 healthy",
        also=(21,),
        edits=(
            Edit(
                "masks.append(self.m[L - 1][:, None] < self.m[-1][None, :])",
                "masks.append(self.m[L - 1][:, None] <= self.m[-1][None, :])",
            ),
        ),
    ),
    Fault(
        "wild-made-density-sigmoid-logits",
        MADE_DENSITY,
        19,
        "test",
        "MADE.forward returns torch.sigmoid(self.net(x)), probabilities, which run_epoch "
        "still feeds to binary_cross_entropy_with_logits as logits: every bit gets a "
        "probability between 0.5 and 0.73 of being 1, so no bit can be predicted with "
        "confidence; the test NLL is 17.19 / 17.39 nats (seeds 0 / 1) instead of 13.27 / "
        "13.48 healthy, close to the independent-bits baseline (18.92 / 19.05; source entropy "
        "13.17 / 13.41), and samples drawn from it score 25.1 / 24.7 nats under the source "
        "instead of 13.57 / 13.75 (marginal samples 27.7 / 27.4)",
        also=(18,),
        edits=(
            Edit("        return self.net(x)\n", "        return torch.sigmoid(self.net(x))\n"),
        ),
    ),
    Fault(
        "wild-gru4rec-sessions-input-items-scored",
        GRU4REC_SESSIONS,
        4,
        "test",
        "the output sampling takes the scores of the batch's input items, logit[:, "
        "input.view(-1)], instead of its target items: the diagonal the cross-entropy "
        "rewards is each lane's current item, so the model learns to predict the click it "
        "was just given instead of the next one (training loss 0.09); test Recall@20 is "
        "0.071 / 0.073 and MRR@20 0.021 / 0.023 (seeds 0 / 1) instead of 0.790 / 0.796 and "
        "0.412 / 0.413 healthy, below the popularity baseline (0.123 / 0.123, MRR 0.032 / "
        "0.030)",
        also=(19,),
        edits=(
            Edit(
                "        logit_sampled = logit[:, target.view(-1)]\n",
                "        logit_sampled = logit[:, input.view(-1)]\n",
            ),
        ),
    ),
    Fault(
        "wild-gru4rec-sessions-tanh-scores",
        GRU4REC_SESSIONS,
        19,
        "test",
        "a tanh final activation is put on the item scores, logit = torch.tanh(self.h2o(...)), "
        "which then go to the softmax cross-entropy: scores bounded in [-1, 1] cap the "
        "probability of the positive among the 50 in-batch items near 0.13, the training "
        "loss stalls at 2.41 instead of falling to 0.89 and the ranking of the likely next "
        "items is blurred: test MRR@20 is 0.251 / 0.246 (seeds 0 / 1) instead of 0.412 / "
        "0.413 healthy and Recall@20 0.756 / 0.755 instead of 0.790 / 0.796 (popularity "
        "0.123 / 0.123, MRR 0.032 / 0.030)",
        also=(18,),
        edits=(
            Edit(
                "        logit = self.h2o(self.dropout(output))  # (B, n_items)\n",
                "        logit = torch.tanh(self.h2o(self.dropout(output)))  # (B, n_items)\n",
            ),
        ),
    ),
):
    register_fault(fault)


COTEACHING_NOISY = "wild-coteaching-noisy"
MEMN2N_BABI = "wild-memn2n-babi"

for case in (
    HealthyCase(
        COTEACHING_NOISY,
        "dev",
        "Co-teaching (authors' Co-teaching repo manner: main.py, loss.py, noisify) on generated "
        "12x12 stroke glyphs of 10 classes whose training labels are corrupted on purpose "
        "(symmetric noise 0.45, so about 44% of the targets are wrong and the training accuracy "
        "on the noisy labels stays near 57% while the clean test accuracy is about 90%); a "
        "Dataset returning (img, noisy_label, index), two BatchNorm/LeakyReLU CNNs without "
        "dropout each taking per-sample cross-entropy (reduction='none'), np.argsort on the "
        "detached losses and updating on the 1 - forget_rate small-loss samples its peer "
        "selected (summed loss / num_remember), forget rate ramped 0 -> 0.45 over 10 epochs; "
        "three Adam optimizers whose lr and betas are written into the param groups each epoch "
        "(linear decay to 0 and beta1 0.9 -> 0.1 from epoch 15 of 30); a third 'standard' CNN "
        "trained on all the noisy labels in the same loop, which memorises them (about 70% "
        "clean test accuracy)",
        script="wild/coteaching_noisy.py",
    ),
    HealthyCase(
        MEMN2N_BABI,
        "dev",
        "End-To-End Memory Network (facebook MemN2N / PyTorch ports manner) on generated bAbI "
        "task 1 stories (4 actors, 6 places, where is X?): int64 word-id tensors (N, 10 "
        "memories, 6 words) padded with the nil word 0, most recent statement in slot 0, 3 "
        "hops of adjacent-tied nn.Embedding(padding_idx=0) lists with a position-encoding "
        "buffer and learned temporal encodings added to every slot (empty ones included, no "
        "mask), answer logits u @ C[-1].weight.T over the whole vocabulary (only 6 words are "
        "ever answers); the 'linear start' removes the memory softmax for the first 10 epochs "
        "(unbounded attention scores); CrossEntropyLoss(reduction='sum'), plain SGD lr 0.01 "
        "halved by hand every 15 epochs, clip_grad_norm_(40) that is active on every early "
        "step (gradient norms far above 40 until the model fits); the loss falls to 2e-4",
        script="wild/memn2n_babi.py",
    ),
):
    register_healthy(case)


for fault in (
    Fault(
        "wild-coteaching-noisy-large-loss-selected",
        COTEACHING_NOISY,
        18,
        "dev",
        "loss_coteaching sorts the per-sample losses with np.argsort(-loss) in both networks, "
        "so the 'small-loss' selection keeps the 1 - forget_rate samples with the LARGEST "
        "loss, mostly mislabelled or not yet fitted, and each network is updated on them; the "
        "clean test accuracy of the two co-taught networks is 38.90 / 36.20 % and 38.10 / "
        "38.60 % on seeds 0 and 1 instead of 91.35 / 91.90 % and 91.10 / 91.85 % (the standard "
        "network on all noisy labels 72.40 / 71.40 %, chance 10 %), the label precision of the "
        "selected samples 50-53 % instead of 97 %",
        also=(6,),
        edits=(
            Edit(
                "ind_1_sorted = np.argsort(loss_1.detach().numpy())",
                "ind_1_sorted = np.argsort(-loss_1.detach().numpy())",
            ),
            Edit(
                "ind_2_sorted = np.argsort(loss_2.detach().numpy())",
                "ind_2_sorted = np.argsort(-loss_2.detach().numpy())",
            ),
        ),
    ),
    Fault(
        "wild-coteaching-noisy-decay-plan-without-lr",
        COTEACHING_NOISY,
        36,
        "dev",
        "the linear decay of alpha_plan forgets the factor * args.lr, so from epoch 15 the Adam "
        "learning rate written into the param groups is (n_epoch - i) / (n_epoch - "
        "epoch_decay_start), 1.0 falling to 0.07, instead of 1e-3 falling to 7e-5: the three "
        "networks are knocked back to chance at epoch 16 (test accuracy 9.15 / 6.50 %) and "
        "only partly recover; the final clean test accuracy of the co-taught networks is "
        "38.90 / 38.85 % and 37.80 / 40.75 % on seeds 0 and 1 instead of 91.35 / 91.90 % and "
        "91.10 / 91.85 % (standard network 38.60 / 44.75 %, healthy 72.40 / 71.40 %; chance "
        "10 %)",
        also=(29,),
        edits=(
            Edit(
                "alpha_plan[i] = float(args.n_epoch - i) / (args.n_epoch - args.epoch_decay_start)"
                " * args.lr",
                "alpha_plan[i] = float(args.n_epoch - i) / (args.n_epoch - args.epoch_decay_start)",
            ),
        ),
    ),
    Fault(
        "wild-memn2n-babi-softmax-over-batch",
        MEMN2N_BABI,
        25,
        "dev",
        "the attention over the memories is F.softmax(scores, dim=0) instead of dim=1: once "
        "the linear start ends, each memory slot is normalised across the stories of the "
        "batch instead of across the slots of its own story, so a story's answer depends on "
        "the other stories in its batch and the model cannot pick its supporting fact; the "
        "test accuracy is 0.784 and 0.587 on seeds 0 and 1 instead of 0.997 and 1.000 "
        "(majority answer 0.182 / 0.201)",
        also=(22,),
        edits=(Edit("prob = F.softmax(scores, dim=1)", "prob = F.softmax(scores, dim=0)"),),
    ),
    Fault(
        "wild-memn2n-babi-clip-before-backward",
        MEMN2N_BABI,
        35,
        "dev",
        "nn.utils.clip_grad_norm_(model.parameters(), 40) is moved up to just after "
        "optimizer.zero_grad(), before loss.backward(), so it clips the zeroed gradients and "
        "the real ones are never clipped: with the linear start (no softmax over the "
        "memories) and the loss summed over the batch the first SGD steps explode (loss 125, "
        "6e5, 1.6e38) and the loss and parameters are NaN from the fourth step on; the test "
        "accuracy is 0.000 on seeds 0 and 1 (argmax of NaN logits) instead of 0.997 and 1.000 "
        "(majority answer 0.182 / 0.201)",
        also=(37, 36),
        edits=(
            Edit(
                "            optimizer.zero_grad()\n",
                "            optimizer.zero_grad()\n"
                "            nn.utils.clip_grad_norm_(model.parameters(), args.max_grad_norm)\n",
            ),
            Edit(
                "            loss.backward()\n"
                "            nn.utils.clip_grad_norm_(model.parameters(), args.max_grad_norm)\n",
                "            loss.backward()\n",
            ),
        ),
    ),
):
    register_fault(fault)


LSQ_QUANTIZED = "wild-lsq-quantized"
MIXER_CHECKPOINTED = "wild-mixer-checkpointed"

for case in (
    HealthyCase(
        LSQ_QUANTIZED,
        "test",
        "LSQ quantization-aware training (Esser et al. / lsq-net manner) on generated 16x16 "
        "glyphs of 10 kinds: a small Conv-BN-ReLU CNN trained in float for 5 epochs (SGD "
        "Nesterov, cosine per iteration), then deep-copied by quantize_model into QConv2d / "
        "QLinear layers that fake-quantize weights and input activations (4 bits, first and "
        "last layers 8) with one learned step size per quantizer; the round goes through the "
        "straight-through estimator (x.round() - x).detach() + x, so forward values are "
        "piecewise constant in the weights, and the step sizes' gradients are scaled down by "
        "1/sqrt(N*Qp) (135x to 2,000x smaller than the weights'); step sizes initialised by a "
        "train-mode pass under no_grad; a second SGD optimizer and cosine schedule start the "
        "fine-tuning at a loss already near 0.07 (post-training accuracy ~97%), so the "
        "4-bit phase barely moves",
        script="wild/lsq_quantized.py",
    ),
    HealthyCase(
        MIXER_CHECKPOINTED,
        "dev",
        "MLP-Mixer (lucidrains mlp-mixer-pytorch / timm mlp_mixer.py manner) on generated "
        "32x32 images whose class is where a bright square lies relative to a dark disc (4 "
        "classes, no single patch tells it): strided-conv patch embedding to 64 tokens of dim "
        "64, 4 pre-norm blocks of token mixing (transpose, MLP over tokens) and channel "
        "mixing, LayerNorm and GELU; in training every block runs through "
        "torch.utils.checkpoint.checkpoint(use_reentrant=False), so each block's forward runs "
        "twice per step (recomputed in backward) and forward hooks fire twice, while eval "
        "calls the blocks directly; the head is zero-initialised (at step 0 only the head gets "
        "a gradient and the loss is exactly ln 4); label smoothing 0.1 keeps the loss above "
        "0.35; AdamW with per-iteration warm-up + cosine LambdaLR, clipping at 1.0",
        script="wild/mixer_checkpointed.py",
    ),
):
    register_healthy(case)


for fault in (
    Fault(
        "wild-lsq-quantized-weights-unsigned-range",
        LSQ_QUANTIZED,
        22,
        "test",
        "the weight quantizer is built with the activation's flag, LsqQuantizer(w_bits, "
        "all_positive=not a_signed) (a copy-paste slip from the next line): every weight "
        "quantizer but the first layer's clamps to the unsigned range [0, Qp], so all "
        "negative weights are quantized to 0 and, clamped, get no gradient through the STE; "
        "the converted model is at chance (10.00% / 9.95%) and LSQ fine-tuning only brings "
        "it to 44.55% and 58.70% on seeds 0 and 1 instead of 98.30% and 98.35% (float model "
        "98.30% / 98.30%, chance 10%)",
        also=(23,),
        edits=(
            Edit(
                "self.quan_w_fn = LsqQuantizer(w_bits, all_positive=False)",
                "self.quan_w_fn = LsqQuantizer(w_bits, all_positive=not a_signed)",
            ),
        ),
    ),
    Fault(
        "wild-lsq-quantized-grad-scale-not-detached",
        LSQ_QUANTIZED,
        36,
        "test",
        "grad_scale lost its detach, (y_out - y_grad) + y_grad: the value is still the step "
        "size but its gradient is no longer scaled by 1/sqrt(N*Qp), so the step sizes take "
        "updates 135x to 2,000x too large, jump within the first epoch (to -0.67 and 33.2 "
        "on seed 0, -5.2 on seed 1; healthy 0.04-0.12) and some turn negative; the 4-bit "
        "model, at 97.30% / 95.40% straight after conversion, ends at 10.50% and 9.75% on "
        "seeds 0 and 1 instead of 98.30% and 98.35% (chance 10%)",
        also=(22, 35),
        edits=(
            Edit(
                "return (y_out - y_grad).detach() + y_grad",
                "return (y_out - y_grad) + y_grad",
            ),
        ),
    ),
    Fault(
        "wild-mixer-checkpointed-token-mixing-no-transpose",
        MIXER_CHECKPOINTED,
        25,
        "dev",
        "the token-mixing branch drops its transposes, mlp_tokens(norm1(x)) instead of "
        "mlp_tokens(norm1(x).transpose(1, 2)).transpose(1, 2); it runs silently because the "
        "64 tokens and the embedding dim 64 coincide, but the 'token' MLP now mixes channels "
        "within each token, no information passes between patches and the mean-pooled model "
        "is a bag of patches blind to where they are; the test accuracy is 24.60% and 24.10% "
        "on seeds 0 and 1 (train accuracy 26.7% / 26.0%) instead of 96.80% and 97.00% "
        "(chance 25%)",
        also=(22,),
        edits=(
            Edit(
                "x = x + self.mlp_tokens(self.norm1(x).transpose(1, 2)).transpose(1, 2)",
                "x = x + self.mlp_tokens(self.norm1(x))",
            ),
        ),
    ),
    Fault(
        "wild-mixer-checkpointed-checkpoint-output-discarded",
        MIXER_CHECKPOINTED,
        23,
        "dev",
        "the checkpointed training path calls checkpoint(block, x, use_reentrant=False) "
        "without assigning its result to x: in training every block is computed and thrown "
        "away, the model is stem + norm + mean pool + head and the blocks never get a "
        "gradient, while evaluation runs the untrained blocks; the training accuracy stays at "
        "27.0% / 26.5% and the test accuracy is 24.50% and 23.90% on seeds 0 and 1 instead "
        "of 96.80% and 97.00% (chance 25%)",
        also=(21, 32),
        edits=(
            Edit(
                "                x = checkpoint(block, x, use_reentrant=False)",
                "                checkpoint(block, x, use_reentrant=False)",
            ),
        ),
    ),
):
    register_fault(fault)


INFOGAN_CODES = "wild-infogan-codes"
ESIM_NLI = "wild-esim-nli"

for case in (
    HealthyCase(
        INFOGAN_CODES,
        "dev",
        "InfoGAN (eriklindernoren PyTorch-GAN infogan.py manner) on 2-D points from five "
        "strokes (short segments on a circle): LeakyReLU MLP generator on cat(noise, one-hot "
        "categorical code from a numpy to_categorical, 2 continuous codes in [-1, 1]); "
        "discriminator trunk with three heads (Linear + Sigmoid under BCELoss, categorical "
        "logits, continuous codes); three Adam optimizers with betas (0.5, 0.999), the third "
        "(optimizer_info) over itertools.chain of G and D parameters, so the generator gets "
        "two optimizers and two steps per batch; D on real points and gen_imgs.detach() "
        "after the G step; info loss CE + 0.1 MSE on a fresh generated batch; the adversarial "
        "losses hover at ln 2 (D 0.69, G 0.70) and never fall, the info loss falls to 0.005; "
        "the real dataset's labels are loaded but unused; inputs drawn by numpy every step",
        script="wild/infogan_codes.py",
    ),
    HealthyCase(
        ESIM_NLI,
        "dev",
        "ESIM (coetaur0 ESIM manner) on generated premise/hypothesis pairs (animals with "
        "colours; label from whether the hypothesis' colour matches the premise's): "
        "premises and hypotheses padded separately per batch in a collate_fn of dicts, "
        "Embedding(padding_idx=0), RNNDropout with one mask per sequence, BiLSTMs over "
        "pack_padded_sequence(enforce_sorted=False)/pad_packed_sequence, hand-written "
        "masked_softmax (softmax of the masked scores, re-masked and renormalised with "
        "1e-13), weighted_sum re-masked, enhancement [a; a~; a-a~; a*a~], masked mean and "
        "max pooling with replace_masked(-1e7), Tanh MLP classifier, xavier/orthogonal init "
        "with forget-gate biases 1; CE on logits, Adam, clip_grad_norm_(10), "
        "ReduceLROnPlateau(mode='max', patience=0) on validation accuracy, so the lr halves "
        "every epoch once validation reaches 100%; the loss stays near ln 3 for one or two "
        "epochs before falling, early stopping with the best state_dict kept in memory",
        script="wild/esim_nli.py",
    ),
):
    register_healthy(case)


for fault in (
    Fault(
        "wild-infogan-codes-one-hot-fancy-index",
        INFOGAN_CODES,
        25,
        "dev",
        "to_categorical writes y_cat[:, y] = 1.0 instead of y_cat[range(y.shape[0]), y] = "
        "1.0: every row gets a 1 in the column of every label drawn in the batch, so with "
        "128 samples over 5 values the categorical input is the same all-ones vector for "
        "every sample and carries nothing about its own label; the info loss stays at ln 5 "
        "(1.61), the generator trains on an input the one-hot evaluation never shows it, and "
        "after 20 epochs the mode purity per code value is 0.288 / 0.295 with one-to-one "
        "accuracy 0.210 / 0.215 (chance 0.20) and 0.0 / 0.0 % of the points on a stroke "
        "(seeds 0 / 1; Gaussian fit 6.3 / 5.9 %), instead of purity and accuracy 1.000 / "
        "1.000 and 84.2 / 80.3 % on a stroke",
        also=(4, 22),
        edits=(Edit("y_cat[range(y.shape[0]), y] = 1.0", "y_cat[:, y] = 1.0"),),
    ),
    Fault(
        "wild-infogan-codes-generator-target-fake",
        INFOGAN_CODES,
        18,
        "dev",
        "the generator's adversarial loss is adversarial_loss(validity, fake) instead of "
        "(validity, valid): the generator is trained to make the discriminator call its "
        "points fake, so it runs away from the data while the discriminator wins outright "
        "(D and G losses both fall to 0.0000 from the fifth epoch instead of hovering at "
        "0.69 / 0.70); the categorical code still splits the output (purity 0.940 / 0.774) "
        "but 0.0 / 0.0 % of the generated points lie on a stroke after 20 epochs (seeds "
        "0 / 1), below a Gaussian fit of the data (6.3 / 5.9 %), instead of 84.2 / 80.3 % "
        "(healthy purity 1.000 / 1.000, chance 0.20)",
        also=(19,),
        edits=(
            Edit(
                "g_loss = adversarial_loss(validity, valid)",
                "g_loss = adversarial_loss(validity, fake)",
            ),
        ),
    ),
    Fault(
        "wild-esim-nli-attention-mask-inverted",
        ESIM_NLI,
        22,
        "dev",
        "masked_softmax re-masks its result with (1.0 - reshaped_mask) instead of "
        "reshaped_mask: after the softmax only the padding positions of the other sentence "
        "keep weight, and a sentence with no padding in its batch gets all-zero weights, so "
        "the soft alignment carries no content of the other sentence and the attended "
        "vectors depend on how long the other pairs in the batch are; the training loss "
        "stays at ln 3 (1.095 after 8 epochs) and the test accuracy is 30.3 / 34.3 % on "
        "seeds 0 / 1 (best validation 33.8 / 34.7 %) instead of 100.0 / 100.0 %, no better "
        "than the majority class (34.2 / 33.4 %)",
        also=(25,),
        edits=(
            Edit(
                "    result = result * reshaped_mask\n",
                "    result = result * (1.0 - reshaped_mask)\n",
            ),
        ),
    ),
    Fault(
        "wild-esim-nli-plateau-mode-min",
        ESIM_NLI,
        36,
        "dev",
        "ReduceLROnPlateau is built with mode='min' while it is stepped on the validation "
        "accuracy: every epoch in which the accuracy rises counts as no improvement and, "
        "with patience=0, halves the learning rate, from the second epoch on (5e-4 in the "
        "third, 1.6e-5 in the eighth) while the model is only leaving the ln 3 plateau (the "
        "healthy run needs 4 to 7 epochs at 1e-3 to pass 97 %); the training loss ends at "
        "0.52 / 0.64 instead of 0.008 / 0.020 and the test accuracy is 83.1 / 72.6 % on "
        "seeds 0 / 1 (best validation 83.5 / 70.3 %) instead of 100.0 / 100.0 % (majority "
        "class 34.2 / 33.4 %)",
        also=(29,),
        edits=(Edit('mode="max", factor=0.5, patience=0)', 'mode="min", factor=0.5, patience=0)'),),
    ),
):
    register_fault(fault)
