"""Wild cases, fourth set: setups unlike the ones nndoctor was tuned on, and real bugs in them.

The healthy scripts live in ``examples/wild/``, each in the manner of a well-known public
PyTorch training script (written here, not copied): a convolutional VAE on binary shape
images (logits decoder, summed BCE-with-logits plus a KL term whose weight is annealed
from 0 to 1), a small U-Net for 3-class segmentation (boundary pixels labelled 255 and
ignored, cross-entropy plus a soft Dice term, flips applied to image and mask together),
keyword spotting on generated audio (log-mel features computed with ``torch.stft`` and a
hand-made filterbank, per-utterance normalisation, SpecAugment masks, a 1-D CNN with
BatchNorm), knowledge distillation in two stages (a CNN teacher trained in the script,
then frozen, and an MLP student under ``KLDivLoss`` at a temperature plus hard-label
cross-entropy, each with its own optimizer), and a BiLSTM + char-CNN named-entity tagger
(padded batches with tags -100 on the padding, an imbalanced tag set). Each fault is one
bug as it arrives in code in that style.

Names start with ``wild-``; all cases and faults here are ``dev``.
"""

from __future__ import annotations

from nndoctor.faults.registry import Edit, Fault, HealthyCase, register_fault, register_healthy

VAE = "wild-vae-kl-anneal"
UNET = "wild-unet-segment"
KWS = "wild-kws-conv1d"
DISTILL = "wild-distill-student"
TAGGER = "wild-bilstm-tagger"

for case in (
    HealthyCase(
        VAE,
        "dev",
        "convolutional VAE on binary 16x16 shapes: logits decoder, BCEWithLogitsLoss(sum) + "
        "beta * KL with beta annealed linearly from 0 to 1 over 600 steps, Adam",
        script="wild/vae_kl_anneal.py",
    ),
    HealthyCase(
        UNET,
        "dev",
        "BatchNorm U-Net, 3-class segmentation with boundary pixels labelled 255: "
        "CrossEntropyLoss(ignore_index=255) + soft Dice, joint image/mask flips, Adam + "
        "ReduceLROnPlateau on the validation mean IoU",
        script="wild/unet_segment.py",
    ),
    HealthyCase(
        KWS,
        "dev",
        "keyword spotting: log-mel from torch.stft and a hand-made filterbank, per-utterance "
        "normalisation, SpecAugment masks, Conv1d/BatchNorm1d net with global average "
        "pooling, label-smoothed CE, Nesterov SGD + cosine schedule per batch",
        script="wild/kws_conv1d.py",
    ),
    HealthyCase(
        DISTILL,
        "dev",
        "two stages: a CNN teacher trained with Adam, then frozen, and an MLP student under "
        "KLDivLoss(batchmean) at T=4 times T^2 plus hard-label CE, with its own AdamW",
        script="wild/distill_student.py",
    ),
    HealthyCase(
        TAGGER,
        "dev",
        "BiLSTM + char-CNN NER tagger: padded batches with tags -100 on the padding, "
        "CrossEntropyLoss(ignore_index=-100) over (batch*seq, tags), word dropout, Adam, "
        "gradient clipping, imbalanced tags (about 3/4 'O')",
        script="wild/bilstm_tagger.py",
    ),
):
    register_healthy(case)


for fault in (
    # --- convolutional VAE with KL annealing --------------------------------------------
    Fault(
        "wild-vae-kl-sign-flipped",
        VAE,
        18,
        "dev",
        "the KL term is written 0.5 * sum(1 + logvar - mu^2 - exp(logvar)) without the minus "
        "sign: the loss rewards a posterior far from the prior, and as beta rises mu and "
        "logvar grow without bound and the loss falls towards minus infinity",
        also=(35, 37),
        edits=(
            Edit(
                "kld = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())",
                "kld = 0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())",
            ),
        ),
    ),
    Fault(
        "wild-vae-sigmoid-before-bce-with-logits",
        VAE,
        19,
        "dev",
        "the decoder ends in a sigmoid while the loss is BCEWithLogitsLoss: the probabilities "
        "are taken for logits, every pixel's predicted probability is confined to "
        "(0.5, 0.73) and the reconstruction cannot fit; the KL term collapses to zero",
        also=(18, 35),
        edits=(
            Edit(
                "        return self.decoder(h)\n",
                "        return torch.sigmoid(self.decoder(h))\n",
            ),
        ),
    ),
    # --- U-Net segmentation -------------------------------------------------------------
    Fault(
        "wild-unet-mask-not-flipped",
        UNET,
        3,
        "dev",
        "the horizontal flip is applied to the image batch but not to the mask batch: half "
        "of the batches are trained against mirrored masks",
        also=(4, 13),
        edits=(
            Edit(
                "                images = images.flip(-1)\n"
                "                true_masks = true_masks.flip(-1)\n",
                "                images = images.flip(-1)\n",
            ),
        ),
    ),
    Fault(
        "wild-unet-dice-on-logits",
        UNET,
        19,
        "dev",
        "the soft Dice term is given the raw logits instead of the softmax probabilities: "
        "its 'probabilities' are unbounded and signed, so the term rewards large logits of "
        "any class and its denominator can pass through zero",
        also=(18,),
        edits=(
            Edit(
                "soft_dice_loss(F.softmax(masks_pred, dim=1), true_masks)",
                "soft_dice_loss(masks_pred, true_masks)",
            ),
        ),
    ),
    # --- keyword spotting ---------------------------------------------------------------
    Fault(
        "wild-kws-features-not-normalised",
        KWS,
        12,
        "dev",
        "the per-utterance mean and variance normalisation is left out: the log-mel "
        "features reach the network with mean about 3 and std about 2, shifted per utterance "
        "by its loudness and noise level (utterance means from -1 to 6); the first epoch "
        "ends at 35% validation accuracy instead of 78%",
        also=(1,),
        edits=(Edit("return (feats - mean) / (std + 1e-5)", "return feats"),),
    ),
    Fault(
        "wild-kws-train-mode-not-restored",
        KWS,
        32,
        "dev",
        "the epoch loop does not call model.train(): after the first evaluation (which "
        "switches to eval mode) BatchNorm trains on frozen running statistics, and the run "
        "diverges to NaN in the second epoch",
        also=(37,),
        edits=(Edit("        model.train()\n        running = 0.0\n", "        running = 0.0\n"),),
    ),
    # --- knowledge distillation ---------------------------------------------------------
    Fault(
        "wild-distill-student-optimizer-on-teacher",
        DISTILL,
        23,
        "dev",
        "the distillation optimizer is built over teacher.parameters() (copied from the "
        "teacher's stage): the student receives gradients but is never updated, and its "
        "accuracy stays at chance",
        edits=(
            Edit(
                "torch.optim.AdamW(student.parameters(), lr=learning_rate",
                "torch.optim.AdamW(teacher.parameters(), lr=learning_rate",
            ),
        ),
    ),
    Fault(
        "wild-distill-kldiv-arguments-swapped",
        DISTILL,
        19,
        "dev",
        "KLDivLoss is called as kl_loss(soft_targets, soft_prob), in the order of KL(P||Q), "
        "instead of (input log-probabilities, target probabilities): the target is the "
        "student's log-probabilities, negative, whose log is NaN from the first step",
        also=(18, 37),
        edits=(
            Edit(
                "kl_loss(soft_prob, soft_targets)",
                "kl_loss(soft_targets, soft_prob)",
            ),
        ),
    ),
    # --- BiLSTM + char-CNN tagger -------------------------------------------------------
    Fault(
        "wild-bilstm-lstm-not-batch-first",
        TAGGER,
        25,
        "dev",
        "the LSTM is built without batch_first=True while its input is (batch, seq, "
        "features): it runs along the batch axis, so each token's context is the tokens at "
        "the same position in the other sentences of the batch",
        edits=(
            Edit(
                "hidden_dim, batch_first=True, bidirectional=True)",
                "hidden_dim, bidirectional=True)",
            ),
        ),
    ),
    Fault(
        "wild-bilstm-o-tag-ignored",
        TAGGER,
        19,
        "dev",
        "padding tagged 0 and the loss told ignore_index=0, as for the word padding, but "
        "tag 0 is 'O': three quarters of the real tokens never reach the loss and the "
        "tagger labels nearly every token as a name",
        also=(18, 21),
        edits=(
            Edit(
                "tags = pad_sequence(tags, batch_first=True, padding_value=-100)",
                "tags = pad_sequence(tags, batch_first=True, padding_value=0)",
            ),
            Edit(
                "loss_function = nn.CrossEntropyLoss(ignore_index=-100)",
                "loss_function = nn.CrossEntropyLoss(ignore_index=0)",
            ),
        ),
    ),
):
    register_fault(fault)
