"""Wild cases: pix2pix, SASRec, an FT-Transformer and lottery tickets by pruning.

The healthy scripts live in ``examples/wild/``, each in the manner of a well-known public
PyTorch training script (written here, not copied): pix2pix as the
pytorch-CycleGAN-and-pix2pix repository builds it (generated label maps to rendered 3x32x32
pictures in [-1, 1], a U-Net generator of nested skip-connection blocks with Tanh output, a
PatchGAN discriminator on the concatenated (input, output) pair, the vanilla GAN loss by
``BCEWithLogitsLoss`` plus 100 times the L1 distance, two Adam optimizers with betas
(0.5, 0.999) and linear-decay ``LambdaLR`` schedules stepped per epoch, the discriminator's
``requires_grad`` switched off for the generator's step and the fake detached for the
discriminator's); SASRec as pmixer's PyTorch implementation builds it (generated item
sequences with a Markov structure inside genres, left-padded with item 0, item and learned
position embeddings, causal ``nn.MultiheadAttention`` blocks with padding positions zeroed
by a timeline mask, one positive and one sampled negative per position, BCE with logits on
the non-padding positions, Adam; HR@10 and NDCG@10 against 100 sampled negatives next to
popularity); an FT-Transformer as rtdl builds it (generated customer records with numeric
columns on natural scales through a quantile-to-normal transformation fitted on the
training part and categorical columns, a feature tokenizer, a [CLS] token, pre-norm
Transformer blocks, a head on [CLS], cross-entropy over four classes, AdamW with no weight
decay on the tokenizer, normalisations and biases); and iterative magnitude pruning for
lottery tickets with ``torch.nn.utils.prune`` (a LeNet-300-100 MLP on generated glyphs, 20%
of each layer's remaining weights pruned by ``l1_unstructured`` per round, the survivors
rewound to their initial values through ``weight_orig``, retrained with a fresh SGD and
``MultiStepLR`` each round, three rounds, ``prune.remove`` at the end). Each fault is one
bug as it arrives in code in that style.

Names start with ``wild-``. Split: four scripts of the group of twelve in ``wild_u.py`` to
``wild_w.py`` (the DANN domain adaptation, LoRA fine-tuning, the lottery-ticket pruning and
SimCLR), with their faults, are ``test``, drawn at random (seed 20261206) before the first
measurement; the rest ``dev``.
"""

from __future__ import annotations

from nndoctor.faults.registry import Edit, Fault, HealthyCase, register_fault, register_healthy

PIX2PIX = "wild-pix2pix-edges"
SASREC = "wild-sasrec-next-item"
FT_TRANSFORMER = "wild-ft-transformer-tabular"
LOTTERY = "wild-lottery-ticket-pruning"

for case in (
    HealthyCase(
        PIX2PIX,
        "dev",
        "pix2pix: U-Net generator (BatchNorm, skip concatenations, Tanh) and PatchGAN "
        "discriminator with two Adam optimizers at betas (0.5, 0.999); the generator's loss "
        "is 100 x L1 (about 7) plus a GAN term (about 1) that never falls, the "
        "discriminator's stays near 0.5, its requires_grad is switched off and on every "
        "step and the fake is detached for it; LambdaLR linear decay per epoch; held-out "
        "L1 0.07 against 1.51 for copying the input",
        script="wild/pix2pix_edges.py",
    ),
    HealthyCase(
        SASREC,
        "dev",
        "SASRec: left-padded item sequences with padding item 0 (embedding rows kept at "
        "zero, no gradient), Xavier-normal init of every matrix including the embeddings, "
        "causal boolean mask in nn.MultiheadAttention on time-major tensors, timeline mask "
        "zeroing padding positions, a fresh random negative per position every step, BCE "
        "with logits masked by padding (floor about 0.35), Adam betas (0.9, 0.98); HR@10 "
        "0.97 against 0.25 for popularity",
        script="wild/sasrec_next_item.py",
    ),
    HealthyCase(
        FT_TRANSFORMER,
        "dev",
        "FT-Transformer: numeric columns on natural scales (incomes around 50,000) mapped by "
        "a quantile-to-normal transform fitted on train, per-feature token weights and "
        "category embeddings, [CLS] appended, first block without attention norm, last block "
        "querying only [CLS], attention dropout 0.2, AdamW with two groups (weight decay 0 "
        "for tokenizer, norms, biases), noisy labels (loss floor about 0.45), best-epoch "
        "checkpoint by deepcopy; accuracy 0.82 against 0.38 for the majority class",
        script="wild/ft_transformer_tabular.py",
    ),
    HealthyCase(
        LOTTERY,
        "test",
        "lottery tickets with torch.nn.utils.prune: weight_orig parameters with weight_mask "
        "buffers applied by forward pre-hooks (up to 49% of the weights zero and without "
        "gradient), surviving weights rewound to their initial values after each pruning "
        "round (the loss jumps back up at each round start), a new SGD and MultiStepLR per "
        "round, training loss near 0.005 with test accuracy 0.93, prune.remove at the end",
        script="wild/lottery_ticket_pruning.py",
    ),
):
    register_healthy(case)


for fault in (
    # --- pix2pix --------------------------------------------------------------------------
    Fault(
        "wild-pix2pix-edges-l1-not-weighted",
        PIX2PIX,
        20,
        "dev",
        "the generator's L1 term is no longer multiplied by lambda_L1 = 100: the GAN term "
        "(about 0.7) now outweighs the L1 one (about 0.1) and the generator is pulled to "
        "pictures the discriminator cannot tell apart rather than to the targets, the "
        "discriminator sits at ln 2; after 8 epochs (752 steps) held-out L1 0.095 instead of "
        "0.070 (seed 1: 0.096 instead of 0.073)",
        edits=(
            Edit(
                "self.criterionL1(self.fake_B, self.real_B) * self.lambda_l1",
                "self.criterionL1(self.fake_B, self.real_B)",
            ),
        ),
    ),
    Fault(
        "wild-pix2pix-edges-lr-schedule-per-iteration",
        PIX2PIX,
        36,
        "dev",
        "the two LambdaLR schedulers are stepped inside the batch loop instead of once per "
        "epoch: the linear decay written in epochs runs in steps, the rate reaches 0 at "
        "step 8 and then goes negative (-0.03 by the last of 752 steps), so Adam climbs "
        "both losses; the GAN losses grow to about 2e5 and after 8 epochs the held-out L1 "
        "is 1.03 instead of 0.070 (seed 1: 1.08 instead of 0.073), worse than predicting "
        "the mean picture (0.19)",
        also=(35,),
        edits=(
            Edit(
                "            n_batches += 1\n"
                "        for scheduler in schedulers:\n"
                "            scheduler.step()\n",
                "            n_batches += 1\n"
                "            for scheduler in schedulers:\n"
                "                scheduler.step()\n",
            ),
        ),
    ),
    # --- SASRec ---------------------------------------------------------------------------
    Fault(
        "wild-sasrec-next-item-timeline-mask-inverted",
        SASREC,
        22,
        "dev",
        "the timeline mask is built as log_seqs != 0 while it is used as ~timeline_mask: "
        "the embeddings of the real items are zeroed after the embedding and after every "
        "block and only the padding positions survive, so the sequence features no longer "
        "depend on the items seen and the model can only learn popularity; after 20 epochs "
        "loss 1.28 and test HR@10 0.246 (NDCG 0.128) instead of 0.37 and 0.969 (0.774), "
        "exactly the popularity ranking's 0.249 (seed 1: 0.252 instead of 0.963)",
        also=(2,),
        edits=(
            Edit(
                "        timeline_mask = log_seqs == 0\n",
                "        timeline_mask = log_seqs != 0\n",
            ),
        ),
    ),
    Fault(
        "wild-sasrec-next-item-neg-logits-from-pos",
        SASREC,
        19,
        "dev",
        "a copy-paste slip computes the negative logits from the positive items' embeddings: "
        "the same logit is pushed to 1 by the positive term and to 0 by the negative one, "
        "the loss stays at 2 ln 2 = 1.386 from the first epoch and the model learns no "
        "ranking; after 20 epochs test HR@10 0.070 (NDCG 0.031) instead of 0.969 (0.774), "
        "below the 0.099 of a random ranking (seed 1: 0.098 instead of 0.963)",
        also=(18,),
        edits=(
            Edit(
                "neg_logits = (log_feats * neg_embs).sum(dim=-1)",
                "neg_logits = (log_feats * pos_embs).sum(dim=-1)",
            ),
        ),
    ),
    # --- FT-Transformer -------------------------------------------------------------------
    Fault(
        "wild-ft-transformer-tabular-quantile-not-applied",
        FT_TRANSFORMER,
        12,
        "dev",
        "the quantile transformer is fitted but the line applying it is missing: the "
        "numeric columns reach the tokenizer on their natural scales (incomes around 5e4, "
        "balances of +-1e4, credit scores around 700) and x * W_j swamps the tokens and the "
        "first block, which has no attention normalisation; after 12 epochs training loss "
        "1.06 and test accuracy 0.55 (best validation 0.58) instead of 0.45 and 0.82 "
        "(seed 1: 0.49 instead of 0.80)",
        also=(1,),
        edits=(
            Edit(
                "    x_num = {part: quantile.transform(x) for part, x in x_num.items()}\n",
                "",
            ),
        ),
    ),
    Fault(
        "wild-ft-transformer-tabular-labels-not-permuted",
        FT_TRANSFORMER,
        4,
        "dev",
        "the batch's features are taken through the shuffled indices but its labels by the "
        "plain slice y[i : i + batch_size]: every example is trained against another "
        "example's class, the loss stays at 1.265 (the entropy of the class frequencies is "
        "1.262) and the model predicts the majority class; after 12 epochs test accuracy "
        "0.387 (validation 0.376, the majority share) instead of 0.825 (seed 1: 0.391 "
        "instead of 0.797)",
        also=(3,),
        edits=(
            Edit(
                'loss = F.cross_entropy(logits, y["train"][batch_idx])',
                'loss = F.cross_entropy(logits, y["train"][i : i + args.batch_size])',
            ),
        ),
    ),
    # --- lottery tickets ------------------------------------------------------------------
    Fault(
        "wild-lottery-ticket-pruning-optimizer-once-for-all-rounds",
        LOTTERY,
        36,
        "test",
        "the SGD optimizer and its MultiStepLR are built once before the pruning rounds "
        "instead of at the start of each: after round 0 the rate stays at 0.05 x 0.01 = "
        "5e-4, so the rewound networks of rounds 1-3 retrain from their initial weights at "
        "a hundredth of the rate (training loss 1.48 after round 3 instead of 0.005); test "
        "accuracy after round 3 (sparsity 0.486) 0.598 instead of 0.934 while round 0 is "
        "unchanged at 0.930 (seed 1: 0.564 instead of 0.935)",
        edits=(
            Edit(
                "    for round_idx in range(args.rounds + 1):\n"
                "        if round_idx > 0:\n"
                "            prune_round(model, args.prune_rate, args.prune_rate / 2)\n"
                "            rewind(model, initial_state)\n"
                "        optimizer = make_optimizer(model, args.lr, args.weight_decay)\n"
                "        milestones = [args.epochs // 2, 3 * args.epochs // 4]\n"
                "        scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones, "
                "gamma=0.1)\n",
                "    optimizer = make_optimizer(model, args.lr, args.weight_decay)\n"
                "    milestones = [args.epochs // 2, 3 * args.epochs // 4]\n"
                "    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones, "
                "gamma=0.1)\n"
                "    for round_idx in range(args.rounds + 1):\n"
                "        if round_idx > 0:\n"
                "            prune_round(model, args.prune_rate, args.prune_rate / 2)\n"
                "            rewind(model, initial_state)\n",
            ),
        ),
    ),
    Fault(
        "wild-lottery-ticket-pruning-decay-group-by-weight-suffix",
        LOTTERY,
        23,
        "test",
        "the weight-decay parameter group is selected by name.endswith('weight'): once "
        "pruning has renamed the weights to weight_orig they are in neither group, so from "
        "round 1 on the optimizer trains only the biases and the rewound weights stay at "
        "their initial values; training loss 2.23 after round 3 instead of 0.005 and test "
        "accuracy 0.297 instead of 0.934 (seed 1: 0.296 instead of 0.935), round 0 unchanged",
        edits=(
            Edit(
                'decay = [p for n, p in model.named_parameters() if "bias" not in n]',
                'decay = [p for n, p in model.named_parameters() if n.endswith("weight")]',
            ),
        ),
    ),
):
    register_fault(fault)
