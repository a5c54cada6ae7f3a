"""Training scripts from the wild, first group: setups unlike the ones nndoctor was tuned on.

The healthy scripts live in ``examples/wild/``, each in the manner of a well-known public
example (written here, not copied): ESPCN-style super-resolution (sub-pixel convolution
with ``nn.PixelShuffle``, MSE, PSNR against bicubic), sentiment classification of
variable-length sentences (``nn.Embedding(padding_idx=0)``, a padding ``collate_fn``,
``pack_padded_sequence(enforce_sorted=False)``, an LSTM, ``BCEWithLogitsLoss``), a small
BatchNorm ResNet trained with mixup, label smoothing, Nesterov SGD with two parameter
groups and a per-batch ``OneCycleLR``, and a siamese network on pairs with a hand-written
contrastive loss. Each fault is one bug as it arrives in code in that style.

Names start with ``wild-``; every case and fault of this module is ``dev``.
"""

from __future__ import annotations

from nndoctor.faults.registry import Edit, Fault, HealthyCase, register_fault, register_healthy

ESPCN = "wild-espcn"
SENTIMENT = "wild-packed-sentiment"
MIXUP = "wild-mixup-resnet"
SIAMESE = "wild-siamese"

for case in (
    HealthyCase(
        ESPCN,
        "dev",
        "ESPCN x3 super-resolution: 8-bit generated images, random crops, bicubic-downsampled "
        "inputs in [0, 1], ReLU convs + PixelShuffle, MSE, Adam + MultiStepLR, PSNR",
        script="wild/espcn_superres.py",
    ),
    HealthyCase(
        SENTIMENT,
        "dev",
        "binary sentiment of 4-40-token sentences: padding collate_fn, Embedding(padding_idx=0), "
        "pack_padded_sequence(enforce_sorted=False), LSTM, BCEWithLogitsLoss, Adam, clipping",
        script="wild/packed_sentiment.py",
    ),
    HealthyCase(
        MIXUP,
        "dev",
        "BatchNorm ResNet on CIFAR-like images with mixup, CE(label_smoothing=0.1), Nesterov SGD "
        "with decay on weights only (two groups), OneCycleLR per batch, eval() for validation",
        script="wild/mixup_resnet.py",
    ),
    HealthyCase(
        SIAMESE,
        "dev",
        "siamese conv tower on same/different glyph pairs, hand-written contrastive loss "
        "(margin on the Euclidean distance), Adam, verification by a distance threshold",
        script="wild/siamese_contrastive.py",
    ),
):
    register_healthy(case)


for fault in (
    # --- ESPCN super-resolution ---------------------------------------------------------
    Fault(
        "wild-espcn-input-cropped-apart",
        ESPCN,
        3,
        "dev",
        "the input and the target each draw their own random crop (two RandomCrop-like "
        "transforms): the low-resolution input is shifted by up to 8 pixels from its target",
        also=(4, 5),
        edits=(
            Edit(
                "        input = downsample(target, self.scale)\n",
                "        top, left = self.crop_origin()\n"
                "        patch = self.images[index, :, top : top + self.crop, left : left + self.crop]\n"
                "        input = downsample(patch.float() / 255.0, self.scale)\n",
            ),
        ),
    ),
    Fault(
        "wild-espcn-subpixel-view",
        ESPCN,
        25,
        "dev",
        "the sub-pixel rearrangement is done by hand with .view(b, 1, h*r, w*r) instead of "
        "PixelShuffle: each output row is filled from one channel's values, far from the "
        "pixels it depicts",
        edits=(
            Edit(
                "        return self.pixel_shuffle(self.conv3(x))\n",
                "        x, r = self.conv3(x), self.pixel_shuffle.upscale_factor\n"
                "        return x.view(x.size(0), 1, x.size(2) * r, x.size(3) * r)\n",
            ),
        ),
    ),
    # --- packed LSTM sentiment ----------------------------------------------------------
    Fault(
        "wild-packed-sentiment-last-padded-step",
        SENTIMENT,
        25,
        "dev",
        "the classifier reads output[:, -1] of the unpacked LSTM output instead of the last "
        "hidden state: for every sentence shorter than the batch's longest it is padding (zeros)",
        also=(4,),
        edits=(
            Edit(
                "import pack_padded_sequence, pad_sequence",
                "import pack_padded_sequence, pad_packed_sequence, pad_sequence",
            ),
            Edit(
                "        return self.fc(self.dropout(hidden[-1])).squeeze(1)\n",
                "        output, _ = pad_packed_sequence(packed_output, batch_first=True)\n"
                "        return self.fc(self.dropout(output[:, -1])).squeeze(1)\n",
            ),
        ),
    ),
    Fault(
        "wild-packed-sentiment-collate-sorts-texts",
        SENTIMENT,
        3,
        "dev",
        "collate_fn sorts the sentences by length (a leftover of enforce_sorted=True) but not "
        "their labels: labels no longer belong to their sentences",
        also=(4, 6),
        edits=(
            Edit(
                "    texts = [text for text, _ in batch]\n",
                "    texts = [text for text, _ in batch]\n    texts.sort(key=len, reverse=True)\n",
            ),
        ),
    ),
    # --- mixup ResNet -------------------------------------------------------------------
    Fault(
        "wild-mixup-resnet-y-b-other-permutation",
        MIXUP,
        4,
        "dev",
        "mixup_data pairs the targets with a fresh randperm instead of the index that mixed "
        "the inputs: the (1 - lam) label belongs to another image",
        also=(3, 6),
        edits=(
            Edit(
                "    y_a, y_b = y, y[index]\n", "    y_a, y_b = y, y[torch.randperm(batch_size)]\n"
            ),
        ),
    ),
    Fault(
        "wild-mixup-resnet-onecycle-per-epoch",
        MIXUP,
        36,
        "dev",
        "OneCycleLR, sized for one step per batch, is stepped once per epoch: the rate stays "
        "near its starting value max_lr/25 for the whole run",
        edits=(
            Edit(
                "        optimizer.step()\n        scheduler.step()\n", "        optimizer.step()\n"
            ),
            Edit(
                "        train(model, trainloader, criterion, optimizer, scheduler, args.alpha, epoch)\n",
                "        train(model, trainloader, criterion, optimizer, scheduler, args.alpha, epoch)\n"
                "        scheduler.step()\n",
            ),
        ),
    ),
    # --- siamese contrastive ------------------------------------------------------------
    Fault(
        "wild-siamese-label-convention-flipped",
        SIAMESE,
        18,
        "dev",
        "the contrastive loss is written for the other convention (label 1 = dissimilar) while "
        "the dataset gives 1 for same-class pairs: same pairs are pushed apart, others pulled in",
        also=(19, 21),
        edits=(
            Edit(
                "        loss_similar = label * distance.pow(2)\n",
                "        loss_similar = (1 - label) * distance.pow(2)\n",
            ),
            Edit(
                "        loss_dissimilar = (1 - label) * torch.clamp(",
                "        loss_dissimilar = label * torch.clamp(",
            ),
        ),
    ),
    Fault(
        "wild-siamese-distance-summed-over-batch",
        SIAMESE,
        25,
        "dev",
        "the squared differences are summed with .sum() instead of .sum(dim=1): one distance "
        "for the whole batch, broadcast against every pair's label",
        also=(18, 19),
        edits=(
            Edit(
                "((output1 - output2) ** 2).sum(dim=1) + 1e-8)",
                "((output1 - output2) ** 2).sum() + 1e-8)",
            ),
        ),
    ),
):
    register_fault(fault)
