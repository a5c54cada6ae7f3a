"""Corpus B: six healthy training setups of ``examples/corpus/`` and the real bugs
planted in them.

The setups: SimCLR-style InfoNCE, gradient accumulation with OneCycleLR, a frozen
pretrained backbone with a new head, knowledge distillation, a sequence-first GRU
encoder-decoder, and a bfloat16-autocast MLP with a hand-written Swish Function.
Each fault was run plainly (without nndoctor) and harms training as described in its
``what``. Two of the setups train a first network before the one the bug is in (the
teacher of the distillation, the pretrained backbone): nndoctor observes the first
model a script calls, so their downstream faults test whether it follows the run to
the model that matters.
"""

from __future__ import annotations

from nndoctor.faults.registry import Edit, Fault, HealthyCase, register_fault, register_healthy

for case in (
    HealthyCase(
        "contrastive-infonce",
        "test",
        "SimCLR-style encoder + projection head, hand-written InfoNCE (logsumexp), no labels, Adam",
        script="corpus/contrastive_infonce.py",
    ),
    HealthyCase(
        "grad-accumulation",
        "dev",
        "conv-BN classifier, loss / 4 and a step every 4 micro-batches, SGD Nesterov + OneCycleLR",
        script="corpus/grad_accumulation.py",
    ),
    HealthyCase(
        "finetune-frozen-backbone",
        "dev",
        "backbone pretrained in the script, reloaded from a BytesIO checkpoint, frozen; new head",
        script="corpus/finetune_frozen_backbone.py",
    ),
    HealthyCase(
        "distillation",
        "dev",
        "teacher trained first, then a small student with KL(T=4)*T^2 + CE via a Distiller module",
        script="corpus/distillation.py",
    ),
    HealthyCase(
        "seq2seq-copy",
        "test",
        "sequence-first GRU encoder-decoder reversing tokens, packed sources, teacher forcing, ignore_index",
        script="corpus/seq2seq_copy.py",
    ),
    HealthyCase(
        "fp16-amp-mlp",
        "dev",
        "bf16 autocast + disabled GradScaler, custom Swish autograd.Function, top-level manual slicing",
        script="corpus/fp16_amp_mlp.py",
    ),
):
    register_healthy(case)


for fault in (
    # --- contrastive-infonce -------------------------------------------------------
    Fault(
        "contrastive-infonce-same-view",
        "contrastive-infonce",
        3,
        "dev",
        "one augmented view is encoded twice, so the two InfoNCE views are identical: nothing invariant "
        "is learned (kNN accuracy 0.70, below the raw inputs' 0.82; healthy 0.99)",
        also=(1,),
        edits=(
            Edit(
                "z1, z2 = model(augment(xb, mix_style)), model(augment(xb, mix_style))",
                "view = augment(xb, mix_style)\n            z1, z2 = model(view), model(view)",
            ),
        ),
    ),
    Fault(
        "contrastive-infonce-adam-eps-1",
        "contrastive-infonce",
        29,
        "test",
        "Adam with eps=1.0 (the TF advice for Inception): gradients ~1e-2 make every update ~100x too "
        "small, the InfoNCE loss barely moves",
        also=(36,),
        edits=(Edit("lr=1e-3, weight_decay=1e-6)", "lr=1e-3, weight_decay=1e-6, eps=1.0)"),),
    ),
    Fault(
        "contrastive-infonce-sgd-adam-lr",
        "contrastive-infonce",
        34,
        "dev",
        "Adam swapped for plain SGD keeping Adam's lr=1e-3: the loss crawls (6.10 -> 6.05 in 5 epochs)",
        also=(36,),
        edits=(
            Edit(
                "torch.optim.Adam(model.parameters(), lr=1e-3",
                "torch.optim.SGD(model.parameters(), lr=1e-3",
            ),
        ),
    ),
    # --- grad-accumulation ---------------------------------------------------------
    Fault(
        "grad-accumulation-unshuffled-sorted",
        "grad-accumulation",
        10,
        "dev",
        "DataLoader shuffle=False over images stored class after class: every micro-batch has one "
        "label, val accuracy stays at chance",
        also=(7,),
        edits=(Edit("shuffle=True", "shuffle=False"),),
    ),
    Fault(
        "grad-accumulation-whole-dataset-batch",
        "grad-accumulation",
        11,
        "test",
        "micro-batch size set to the whole training set: one micro-batch per epoch, one optimizer step "
        "per epoch, val accuracy stays at chance",
        edits=(Edit("batch_size=16", "batch_size=len(train_set)"),),
    ),
    Fault(
        "grad-accumulation-mse-on-class-index",
        "grad-accumulation",
        18,
        "dev",
        "the 4-way classifier regresses the class index with MSE (one output, rounded): the loss "
        "diverges to NaN at this learning rate",
        also=(19,),
        edits=(
            Edit("nn.Linear(32, 4),", "nn.Linear(32, 1),"),
            Edit("criterion = nn.CrossEntropyLoss()", "criterion = nn.MSELoss()"),
            Edit(
                "loss = criterion(model(xb), yb)",
                "loss = criterion(model(xb).squeeze(1), yb.float())",
            ),
            Edit("model(x).argmax(dim=1) == y", "model(x).squeeze(1).round() == y"),
        ),
    ),
    Fault(
        "grad-accumulation-hflip-label-noise",
        "grad-accumulation",
        6,
        "test",
        "a random horizontal flip (copied from a CIFAR recipe) on a left/right quadrant task: half of "
        "the augmented samples carry the wrong label",
        also=(13,),
        edits=(
            Edit(
                "            x = x * (0.8 + 0.4 * torch.rand(1)) + 0.1 * torch.randn_like(x)\n",
                "            x = x * (0.8 + 0.4 * torch.rand(1)) + 0.1 * torch.randn_like(x)\n"
                "            if torch.rand(1) < 0.5:  # random horizontal flip\n"
                "                x = x.flip(-1)\n",
            ),
        ),
    ),
    # --- fp16-amp-mlp --------------------------------------------------------------
    Fault(
        "fp16-amp-mlp-swish-backward-no-chain",
        "fp16-amp-mlp",
        26,
        "dev",
        "the hand-written Swish backward returns the local derivative without multiplying by "
        "grad_output: gradients are unrelated to the loss, accuracy ~0.4",
        also=(22,),
        ci=True,
        edits=(
            Edit("return grad_output * (s * (1 + x * (1 - s)))", "return s * (1 + x * (1 - s))"),
        ),
    ),
    Fault(
        "fp16-amp-mlp-no-standardisation",
        "fp16-amp-mlp",
        12,
        "dev",
        "the standardisation lines are gone: features on scales 1e-2..1e3 go in raw, the loss is in "
        "the hundreds and accuracy ~0.4",
        edits=(Edit("x_train = (x_train - mean) / std\nx_val = (x_val - mean) / std\n", ""),),
    ),
    Fault(
        "fp16-amp-mlp-normal-init",
        "fp16-amp-mlp",
        35,
        "dev",
        "weights initialised N(0, 1) instead of Kaiming: activations grow ~10x per layer, the initial "
        "loss is ~60 and accuracy lags (0.83 vs 0.91 after 6 epochs)",
        also=(28,),
        edits=(
            Edit(
                'nn.init.kaiming_normal_(m.weight, nonlinearity="relu")',
                "nn.init.normal_(m.weight, std=1.0)",
            ),
        ),
    ),
    Fault(
        "fp16-amp-mlp-same-batch",
        "fp16-amp-mlp",
        3,
        "test",
        "the manual slice forgot its offset (perm[:batch_size]): every step trains on the same 128 "
        "rows, val accuracy stalls near 0.83",
        also=(1,),
        edits=(Edit("idx = perm[i : i + batch_size]", "idx = perm[:batch_size]"),),
    ),
    # --- seq2seq-copy --------------------------------------------------------------
    Fault(
        "seq2seq-copy-collate-sorts-sources-only",
        "seq2seq-copy",
        3,
        "dev",
        "collate_fn sorts the sources by length for packing but not the targets: targets belong to "
        "other samples, token accuracy ~0.2",
        also=(4,),
        edits=(
            Edit(
                "    batch = sorted(batch, key=lambda pair: len(pair[0]), reverse=True)\n"
                "    srcs = [src for src, _ in batch]\n",
                "    srcs = sorted((src for src, _ in batch), key=len, reverse=True)\n",
            ),
        ),
    ),
    Fault(
        "seq2seq-copy-view-not-transpose",
        "seq2seq-copy",
        25,
        "test",
        "sequence-first logits (tgt_len, batch, vocab) .view()ed as batch-first instead of transposed: "
        "each sample's outputs come from other samples, token accuracy ~0.15",
        edits=(
            Edit("return logits.transpose(0, 1)", "return logits.view(src.size(1), -1, VOCAB)"),
        ),
    ),
    Fault(
        "seq2seq-copy-accuracy-vs-decoder-input",
        "seq2seq-copy",
        21,
        "dev",
        "token accuracy compares predictions with the decoder input (targets shifted by one) instead "
        "of the targets: the loss falls while the reported accuracy stays low",
        edits=(Edit("correct += (pred == tgt_out)[mask]", "correct += (pred == tgt_in)[mask]"),),
    ),
    Fault(
        "seq2seq-copy-long-sequences",
        "seq2seq-copy",
        16,
        "dev",
        "the toy task scaled up to sequences of 3-30 tokens for an encoder-decoder without attention: "
        "token accuracy 0.67 after the full run instead of 0.96",
        also=(24,),
        edits=(Edit('"--max-len", type=int, default=8', '"--max-len", type=int, default=30'),),
    ),
    # --- distillation --------------------------------------------------------------
    Fault(
        "distillation-kd-sum-reduction",
        "distillation",
        20,
        "dev",
        "F.kl_div with reduction='sum' instead of 'batchmean': the KD term is 64x too large next to "
        "the CE term and SGD blows up (student accuracy ~0.1)",
        also=(36,),
        edits=(Edit('reduction="batchmean",', 'reduction="sum",'),),
    ),
    Fault(
        "distillation-kl-div-on-probabilities",
        "distillation",
        19,
        "dev",
        "F.kl_div given the student's probabilities (softmax) where it expects log-probabilities: "
        "the KD loss goes negative and the student learns slower and worse (0.91 vs 0.94)",
        also=(18,),
        edits=(
            Edit(
                "F.log_softmax(student_logits / t, dim=1),", "F.softmax(student_logits / t, dim=1),"
            ),
        ),
    ),
    # --- finetune-frozen-backbone --------------------------------------------------
    Fault(
        "finetune-frozen-backbone-0-1-pixels",
        "finetune-frozen-backbone",
        14,
        "dev",
        "downstream pixels scaled to [0, 1] but normalised with the checkpoint's 0-255 mean/std: the "
        "frozen backbone sees near-constant inputs, downstream accuracy at chance",
        also=(12,),
        edits=(
            Edit(
                "    x = (images.float() - mean) / std\n",
                "    x = (images.float() / 255 - mean) / std\n",
            ),
        ),
    ),
    Fault(
        "finetune-frozen-backbone-not-loaded",
        "finetune-frozen-backbone",
        23,
        "dev",
        "the load_state_dict line is gone: a randomly initialised backbone is frozen and only the head "
        "trains (downstream accuracy 0.65 instead of 1.0)",
        edits=(Edit("    backbone.load_state_dict(torch.load(checkpoint))\n", ""),),
    ),
    Fault(
        "finetune-frozen-backbone-head-not-in-optimizer",
        "finetune-frozen-backbone",
        23,
        "test",
        "the optimizer is built over the frozen backbone's parameters instead of the head's: nothing "
        "trains at all",
        edits=(
            Edit(
                "torch.optim.Adam(head.parameters(), lr=1e-2)",
                "torch.optim.Adam(backbone.parameters(), lr=1e-2)",
            ),
        ),
    ),
):
    register_fault(fault)
