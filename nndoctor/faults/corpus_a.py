"""Corpus A: six common setups written in the manner of public examples, and real bugs in them.

The healthy scripts live in ``examples/corpus/``: a two-optimiser GAN, multi-label
tagging with ``nn.EmbeddingBag``, a GroupNorm U-Net for segmentation, a character-level
GRU language model, a Huber regression on heavy-tailed targets and a tiny ViT. Each
fault is one bug as it arrives in code (a line changed, added or removed), planted by
exact text edits of its base script.

Splits: the GAN and the Huber regression, with all their faults, are ``test`` (2 of 6
healthy cases, 7 of 23 faults); a fault never shares its base with the other split, so
tuning on ``dev`` never sees a ``test`` script.
"""

from __future__ import annotations

from nndoctor.faults.registry import Edit, Fault, HealthyCase, register_fault, register_healthy

GAN, TAGS, UNET, CHAR, HUBER, VIT = (
    "gan-two-optimizers",
    "multilabel-embeddingbag",
    "unet-segmentation",
    "char-gru",
    "huber-heavy-tail",
    "vit-patches",
)

for case in (
    HealthyCase(
        GAN,
        "test",
        "MLP GAN on eight Gaussians: two Adams, BCEWithLogits, detached fakes, G called first",
        script="corpus/gan_two_optimizers.py",
    ),
    HealthyCase(
        TAGS,
        "dev",
        "EmbeddingBag with offsets from a collate_fn, six-tag BCEWithLogits, Adam, top-level",
        script="corpus/multilabel_embeddingbag.py",
    ),
    HealthyCase(
        UNET,
        "dev",
        "GroupNorm U-Net, per-pixel CE with ignore_index and class weights, aux head, SGD + poly",
        script="corpus/unet_segmentation.py",
    ),
    HealthyCase(
        CHAR,
        "dev",
        "char-level GRU LM, truncated BPTT with carried hidden state, clipping, Adam",
        script="corpus/char_gru.py",
    ),
    HealthyCase(
        HUBER,
        "test",
        "MLP with a hand-written Swish Function, Huber on Student-t noise, SGD + StepLR, slicing",
        script="corpus/huber_heavy_tail.py",
    ),
    HealthyCase(
        VIT,
        "dev",
        "tiny ViT: conv patches, class token, AdamW, warm-up + cosine LambdaLR, label smoothing",
        script="corpus/vit_patches.py",
    ),
):
    register_healthy(case)


for fault in (
    # --- GAN ------------------------------------------------------------------------
    Fault(
        "gan-sigmoid-then-bce-with-logits",
        GAN,
        19,
        "test",
        "the discriminator ends in nn.Sigmoid (as in DCGAN with BCELoss) but the loss is BCEWithLogitsLoss",
        also=(18,),
        edits=(
            Edit(
                "        nn.Linear(args.hidden, 1),\n    )",
                "        nn.Linear(args.hidden, 1),\n        nn.Sigmoid(),\n    )",
            ),
        ),
    ),
    Fault(
        "gan-lr-100x",
        GAN,
        36,
        "test",
        "Adam learning rate 5e-2 for both networks instead of 5e-4",
        edits=(Edit('"--lr", type=float, default=5e-4', '"--lr", type=float, default=5e-2'),),
    ),
    Fault(
        "gan-generator-step-detached",
        GAN,
        23,
        "test",
        "the generator step scores fake.detach() too, so no gradient ever reaches the generator",
        edits=(
            Edit(
                "g_loss = criterion(discriminator(fake), ones)",
                "g_loss = criterion(discriminator(fake.detach()), ones)",
            ),
        ),
    ),
    # --- multi-label EmbeddingBag -----------------------------------------------------
    Fault(
        "tags-documents-sorted-tags-not",
        TAGS,
        4,
        "dev",
        "documents sorted by length after their tags were computed; the tags keep the old order",
        also=(5,),
        edits=(
            Edit(
                "tags = torch.stack([torch.isin(triggers, doc).any(dim=1) for doc in documents]).float()  # (N, TAGS)\n",
                "tags = torch.stack([torch.isin(triggers, doc).any(dim=1) for doc in documents]).float()  # (N, TAGS)\n"
                "documents.sort(key=len)  # batches of similar length run faster\n",
            ),
        ),
    ),
    Fault(
        "tags-documents-cut-to-6-tokens",
        TAGS,
        5,
        "dev",
        "documents cut to their first 6 tokens while the tags come from the whole document",
        also=(6,),
        edits=(
            Edit(
                "MAX_TOKENS = 64  # longer documents are cut (none are, here)",
                "MAX_TOKENS = 6  # longer documents are cut",
            ),
        ),
    ),
    Fault(
        "tags-annotation-error-40pct",
        TAGS,
        6,
        "dev",
        "the simulated annotation error rate is 0.4 instead of 0.01: 40% of the tags are flipped",
        edits=(Edit("ANNOTATION_ERROR = 0.01", "ANNOTATION_ERROR = 0.4"),),
    ),
    Fault(
        "tags-weight-decay-1",
        TAGS,
        30,
        "dev",
        "Adam weight_decay=1.0 instead of 1e-6: the L2 pull outweighs the tag loss",
        also=(29,),
        edits=(Edit("weight_decay=1e-6", "weight_decay=1.0"),),
    ),
    # --- U-Net ------------------------------------------------------------------------
    Fault(
        "unet-noise-augmentation-too-strong",
        UNET,
        13,
        "dev",
        "augmentation noise std 2.5 on standardised pixels (meant 0.1): shapes drown in it",
        also=(30,),
        edits=(Edit("augment: bool, noise: float = 0.1", "augment: bool, noise: float = 2.5"),),
    ),
    Fault(
        "unet-flip-image-not-mask",
        UNET,
        6,
        "dev",
        "the horizontal flip is applied to the image only: half the masks are mirror images of their input",
        also=(4, 13),
        edits=(Edit("image, mask = image.flip(-1), mask.flip(-1)", "image = image.flip(-1)"),),
    ),
    Fault(
        "unet-logits-flattened-class-axis-not-last",
        UNET,
        25,
        "dev",
        "the main loss flattens the logits with view(-1, C) straight from (N, C, H, W), and the "
        "mask with view(-1): each row of 'class scores' is C neighbouring pixels of one class "
        "map, scored against the label of another pixel",
        also=(4,),
        edits=(
            Edit(
                "loss = criterion(logits, mask) + ",
                "loss = criterion(logits.view(-1, logits.shape[1]), mask.view(-1)) + ",
            ),
        ),
    ),
    Fault(
        "unet-val-same-seed-as-train",
        UNET,
        15,
        "dev",
        "validation images generated with the training seed: they are the first 200 training images",
        edits=(
            Edit(
                "make_shapes(200, seed=2 * args.seed + 1)", "make_shapes(200, seed=2 * args.seed)"
            ),
        ),
    ),
    Fault(
        "unet-aux-loss-weight-1000x",
        UNET,
        20,
        "dev",
        "the auxiliary (deep supervision) loss weighted 400 instead of 0.4",
        also=(36,),
        edits=(
            Edit(
                '"--aux-weight", type=float, default=0.4',
                '"--aux-weight", type=float, default=400.0',
            ),
        ),
    ),
    # --- char-level GRU -----------------------------------------------------------------
    Fault(
        "char-gru-lr-100x",
        CHAR,
        36,
        "dev",
        "Adam learning rate 0.3 instead of 3e-3",
        edits=(Edit('"lr": 3e-3,', '"lr": 3e-1,'),),
    ),
    Fault(
        "char-gru-dropout-0.9",
        CHAR,
        30,
        "dev",
        "dropout 0.9 (meant 0.1) on the embeddings, between the GRU layers and before the decoder",
        edits=(Edit('"dropout": 0.1,', '"dropout": 0.9,'),),
    ),
    Fault(
        "char-gru-softmax-before-ce",
        CHAR,
        19,
        "dev",
        "the model returns softmax probabilities (handy for sampling), which F.cross_entropy treats as logits",
        edits=(
            Edit(
                "return self.decoder(self.drop(out)), h ",
                "return self.decoder(self.drop(out)).softmax(dim=-1), h ",
            ),
        ),
    ),
    Fault(
        "char-gru-one-sentence-repeated",
        CHAR,
        9,
        "dev",
        "a fresh random.Random(seed) per sentence: the whole corpus is one sentence repeated",
        also=(1, 3),
        edits=(
            Edit(
                'return "".join(sentence(rng) for _ in range(sentences))',
                'return "".join(sentence(random.Random(seed)) for _ in range(sentences))',
            ),
        ),
    ),
    # --- Huber regression -----------------------------------------------------------------
    Fault(
        "huber-log-of-zero-counts",
        HUBER,
        37,
        "test",
        "the count feature is fed as log(counts) instead of log1p(counts): log(0) = -inf, then NaN",
        also=(1,),
        edits=(Edit("torch.log1p(counts)[:, None]", "torch.log(counts)[:, None]"),),
    ),
    Fault(
        "huber-swish-backward-no-product-rule",
        HUBER,
        22,
        "test",
        "the Swish Function's backward returns sigmoid'(x) instead of sigmoid(x) + x sigmoid'(x)",
        also=(26,),
        edits=(
            Edit(
                "return grad_output * (s * (1 + x * (1 - s)))  # d/dx [x s(x)] = s + x s (1 - s)",
                "return grad_output * (s * (1 - s))  # d/dx [x s(x)]",
            ),
        ),
    ),
    Fault(
        "huber-first-layer-width-1",
        HUBER,
        24,
        "test",
        "the first layer projects the eight features to a single unit (the output layer's width)",
        edits=(
            Edit(
                "nn.Linear(features.shape[1], hidden), Swish(),\n    nn.Linear(hidden, hidden), Swish(),",
                "nn.Linear(features.shape[1], 1), Swish(),\n    nn.Linear(1, hidden), Swish(),",
            ),
        ),
    ),
    Fault(
        "huber-val-own-statistics",
        HUBER,
        15,
        "test",
        "the validation split standardised with its own mean and std, erasing the drift the model must see",
        edits=(
            Edit("x_val = (x_val - mean) / std", "x_val = (x_val - x_val.mean(0)) / x_val.std(0)"),
        ),
    ),
    # --- ViT ---------------------------------------------------------------------------------
    Fault(
        "vit-head-reads-input-tokens",
        VIT,
        2,
        "dev",
        "the head reads the class token of the encoder's input x, not of its output h: a learned constant",
        also=(23,),
        edits=(
            Edit("return self.head(self.norm(h[:, 0]))", "return self.head(self.norm(x[:, 0]))"),
        ),
    ),
    Fault(
        "vit-dropout-0.9",
        VIT,
        30,
        "dev",
        "dropout 0.9 (meant 0.1) in the encoder layers: attention weights and MLP activations mostly zeroed",
        edits=(
            Edit('"--dropout", type=float, default=0.1', '"--dropout", type=float, default=0.9'),
        ),
    ),
    Fault(
        "vit-warmup-never-ends",
        VIT,
        36,
        "dev",
        "the warm-up branch tests step < total instead of step < warmup: the rate rises linearly to the end",
        edits=(Edit("if step < args.warmup:", "if step < total:"),),
    ),
    Fault(
        "vit-sampler-weights-inverted",
        VIT,
        8,
        "dev",
        "WeightedRandomSampler weights are the class counts, not their inverse: rare classes become rarer",
        edits=(Edit("weights = 1.0 / counts[train_labels]", "weights = counts[train_labels]"),),
    ),
):
    register_fault(fault)
