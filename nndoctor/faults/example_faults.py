"""Script faults planted in the healthy examples (``examples/healthy_*.py``).

Each fault is one real bug as it arrives in code — a line changed, added or removed —
in one of the healthy cases declared in ``examples.py``; together they cover the
dataset, normalisation, implementation and training parts of REASONS.md in the code
styles of the bases (``nn.Sequential`` and custom modules, DataLoader and hand-cut
batches, torch losses and hand-written ones, Adam and SGD, argparse and top-level
loops). Every faulty script still runs: the bug harms training, it does not crash it
(except where the bug really shows as a NaN).
"""

from __future__ import annotations

from nndoctor.faults.registry import Edit, Fault, register_fault

# Text shared by several faults of the same base (each fault applies its own edits).
_MLP_HEAD = "        nn.Linear(args.hidden, classes),\n    ).to(device)"
_MLP_SPLIT = "    x_train, y_train, x_val, y_val = x[:2048], y[:2048], x[2048:], y[2048:]\n"
_MLP_NORMALISE = "    x_train, x_val = (x_train - mean) / std, (x_val - mean) / std\n"
_CNN_NORMALISE = "    x_train, x_val = (x_train - mean) / std, (x_val - mean) / std\n"
_BF16_RETURN = "    return (x - x.mean()) / x.std(), y\n"
_SPIRAL_PERM = "    perm = torch.randperm(len(points))\n"
_LSTM_CRITERION = "criterion = nn.CrossEntropyLoss()\n"
_BN_OPTIMIZER = "    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9, weight_decay=1e-4, nesterov=True)\n"

_TANH_FUNCTION = '''class Tanh(torch.autograd.Function):
    """tanh with a hand-written backward, to save the autograd graph's memory."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        y = torch.tanh(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor) -> torch.Tensor:
        (y,) = ctx.saved_tensors
        return 1 - y**2


class SpiralNet(nn.Module):'''


for fault in (
    # ---------------------------------------------------------------- mlp (healthy_mlp.py)
    Fault(
        "mlp-softmax-before-ce",
        base="mlp",
        reason=19,
        also=(18,),
        split="dev",
        ci=True,
        what="the Sequential ends in nn.Softmax and its probabilities are fed to nn.CrossEntropyLoss",
        edits=(
            Edit(
                _MLP_HEAD,
                "        nn.Linear(args.hidden, classes),\n        nn.Softmax(dim=1),\n    ).to(device)",
            ),
        ),
    ),
    Fault(
        "mlp-inputs-shuffled-alone",
        base="mlp",
        reason=4,
        also=(5, 6),
        split="dev",
        what="the training inputs are shuffled with a randperm but their labels are not: pairs are broken",
        edits=(
            Edit(
                _MLP_SPLIT,
                _MLP_SPLIT
                + "    x_train = x_train[torch.randperm(len(x_train))]  # shuffle the training set\n",
            ),
        ),
    ),
    Fault(
        "mlp-raw-feature-scales",
        base="mlp",
        reason=12,
        split="dev",
        what="features in raw units spanning 1e-2..1e3 and the standardisation line removed",
        edits=(
            Edit(
                "    x = centers[y] + torch.randn(n, features, generator=g)\n",
                "    x = centers[y] + torch.randn(n, features, generator=g)\n"
                "    x = x * torch.logspace(-2, 3, features)  # each feature in its own unit\n",
            ),
            Edit(_MLP_NORMALISE, ""),
        ),
    ),
    Fault(
        "mlp-mse-on-class-index",
        base="mlp",
        reason=18,
        split="test",
        what="classification trained as regression: one output, MSELoss against the class index as a float",
        edits=(
            Edit(_MLP_HEAD, "        nn.Linear(args.hidden, 1),\n    ).to(device)"),
            Edit("criterion = nn.CrossEntropyLoss()", "criterion = nn.MSELoss()"),
            Edit(
                "loss = criterion(model(x_batch), y_batch)",
                "loss = criterion(model(x_batch).squeeze(1), y_batch.float())",
            ),
            Edit(
                "correct += (model(x).argmax(dim=1) == y).sum().item()",
                "correct += (model(x).squeeze(1).round() == y).sum().item()",
            ),
        ),
    ),
    Fault(
        "mlp-subsample-inverted",
        base="mlp",
        reason=8,
        split="dev",
        what="a subsampling mask meant to drop 90% of class 0 keeps class 0 and drops 90% of the three others",
        edits=(
            Edit(
                _MLP_SPLIT,
                _MLP_SPLIT
                + "    # Subsample the frequent class 0 for a faster experiment.\n"
                + "    keep = (y_train == 0) | (torch.rand(len(y_train)) < 0.1)\n"
                + "    x_train, y_train = x_train[keep], y_train[keep]\n",
            ),
        ),
    ),
    Fault(
        "mlp-class-weights-from-counts",
        base="mlp",
        reason=8,
        split="dev",
        what=(
            "classes 1-3 subsampled to a quarter, and the loss weighted by each class's "
            "frequency instead of its inverse: the frequent class weighs most"
        ),
        edits=(
            Edit(
                _MLP_SPLIT,
                _MLP_SPLIT
                + "    keep = (y_train == 0) | (torch.arange(len(y_train)) % 4 == 0)\n"
                + "    x_train, y_train = x_train[keep], y_train[keep]\n",
            ),
            Edit(
                "    criterion = nn.CrossEntropyLoss()\n",
                "    class_weights = torch.bincount(y_train, minlength=classes).float() / len(y_train)\n"
                "    criterion = nn.CrossEntropyLoss(weight=class_weights.to(device))\n",
            ),
        ),
    ),
    # ---------------------------------------------------------------- cnn (healthy_cnn.py)
    Fault(
        "cnn-independent-shuffles",
        base="cnn",
        reason=4,
        also=(5, 6),
        split="test",
        what="images and labels shuffled before the split with two different randperm calls",
        edits=(
            Edit(
                "    images, labels = make_images(1280, 16, seed=args.seed)\n",
                "    images, labels = make_images(1280, 16, seed=args.seed)\n"
                "    images, labels = images[torch.randperm(len(images))], labels[torch.randperm(len(labels))]\n",
            ),
        ),
    ),
    Fault(
        "cnn-val-not-normalised",
        base="cnn",
        reason=15,
        split="dev",
        what="only the training split is standardised; validation images stay raw 0..1 pixels",
        edits=(Edit(_CNN_NORMALISE, "    x_train = (x_train - mean) / std\n"),),
    ),
    Fault(
        "cnn-cosine-scale-on-logits",
        base="cnn",
        reason=17,
        also=(28,),
        split="dev",
        what="logits multiplied by s=30 from a cosine-softmax recipe without normalising: initial loss far "
        "above ln 4 (a transient harm: validation accuracy 0.77 after two epochs, recovered by the third)",
        edits=(
            Edit(
                "        return self.head(x)\n",
                "        return 30 * self.head(x)  # scale s of the cosine softmax\n",
            ),
        ),
    ),
    # ------------------------------------------------------- regression (healthy_regression.py)
    Fault(
        "regression-getitem-ignores-index",
        base="regression",
        reason=3,
        also=(1,),
        split="dev",
        what="Dataset.__getitem__ overwrites its index with 0 (a debugging line left in): every sample is the same",
        edits=(
            Edit(
                "        return self.x[index], self.y[index]\n",
                "        index = 0  # look at one sample\n        return self.x[index], self.y[index]\n",
            ),
        ),
    ),
    Fault(
        "regression-target-broadcast",
        base="regression",
        reason=19,
        also=(25,),
        split="test",
        what="targets of shape (N,) against outputs (N, 1): MSELoss broadcasts to (N, N) and fits the mean",
        edits=(
            Edit(
                "self.y = ((y - y_mean) / y_std).unsqueeze(1)  # (n, 1), the shape the model outputs",
                "self.y = (y - y_mean) / y_std",
            ),
        ),
    ),
    Fault(
        "regression-finetune-lr",
        base="regression",
        reason=36,
        split="dev",
        what="learning rate 1e-6, copied from a fine-tuning recipe, for a model trained from scratch",
        edits=(
            Edit(
                'parser.add_argument("--lr", type=float, default=3e-3)',
                'parser.add_argument("--lr", type=float, default=1e-6)',
            ),
        ),
    ),
    Fault(
        "regression-steplr-per-batch",
        base="regression",
        reason=36,
        split="test",
        what="the per-epoch StepLR (halve every 3) stepped per batch: the rate vanishes within the first epoch",
        edits=(
            Edit(
                "            optimizer.step()\n        scheduler.step()\n",
                "            optimizer.step()\n            scheduler.step()\n",
            ),
        ),
    ),
    # ---------------------------------------------------- custom-loss (healthy_custom_loss.py)
    Fault(
        "custom-loss-tanh-backward",
        base="custom-loss",
        reason=26,
        also=(22,),
        split="dev",
        ci=True,
        what="a custom autograd tanh whose backward returns 1 - y**2 without multiplying by grad_output",
        edits=(
            Edit("class SpiralNet(nn.Module):", _TANH_FUNCTION),
            Edit("x = torch.tanh(self.fc1(x))", "x = Tanh.apply(self.fc1(x))"),
        ),
    ),
    Fault(
        "custom-loss-no-shuffle",
        base="custom-loss",
        reason=7,
        also=(10,),
        split="dev",
        what="the epoch permutation replaced by arange on data stored class by class: batches arrive sorted",
        edits=(Edit(_SPIRAL_PERM, "    perm = torch.arange(len(points))\n"),),
    ),
    Fault(
        "custom-loss-batch-order-shuffle",
        base="custom-loss",
        reason=10,
        also=(7,),
        split="test",
        what="the order of contiguous batches is shuffled, not the samples: on class-sorted data each batch is one class",
        edits=(
            Edit(
                _SPIRAL_PERM,
                "    chunks = torch.arange(len(points)).split(batch_size)  # shuffle the batches\n"
                "    perm = torch.cat([chunks[i] for i in torch.randperm(len(chunks))])\n",
            ),
        ),
    ),
    Fault(
        "custom-loss-integer-division",
        base="custom-loss",
        reason=37,
        also=(1,),
        split="test",
        what="arm positions computed with // (all zero), so the points are all zero and standardising divides by a zero std",
        edits=(
            Edit(
                "t = torch.linspace(0.0, 1.0, per_class).repeat(classes)",
                "t = (torch.arange(per_class) // per_class).repeat(classes)",
            ),
        ),
    ),
    Fault(
        "custom-loss-lr-x100",
        base="custom-loss",
        reason=36,
        split="dev",
        what="SGD with momentum 0.9 at lr=10, 100x the working 0.1",
        edits=(Edit("lr=0.1, momentum=0.9", "lr=10.0, momentum=0.9"),),
    ),
    Fault(
        "custom-loss-negative-bias-init",
        base="custom-loss",
        reason=35,
        also=(28,),
        split="dev",
        what="hidden biases initialised to -1: the ReLU layer is dead from the first step",
        edits=(
            Edit(
                "        self.fc3 = nn.Linear(hidden, classes)\n",
                "        self.fc3 = nn.Linear(hidden, classes)\n"
                "        nn.init.constant_(self.fc2.bias, -1.0)  # sparse activations\n",
            ),
        ),
    ),
    # ----------------------------------------------------------------- lstm (healthy_lstm.py)
    Fault(
        "lstm-nll-on-logits",
        base="lstm",
        reason=19,
        also=(18,),
        split="dev",
        what="nn.NLLLoss on the head's raw logits (no log_softmax): the loss is unbounded below",
        edits=(Edit(_LSTM_CRITERION, "criterion = nn.NLLLoss()\n"),),
    ),
    Fault(
        "lstm-sgd-with-adam-lr",
        base="lstm",
        reason=34,
        also=(36,),
        split="test",
        what="Adam swapped for plain SGD keeping Adam's learning rate 1e-3: the LSTM barely moves",
        edits=(
            Edit(
                "optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)",
                "optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)",
            ),
        ),
    ),
    Fault(
        "lstm-ignore-index",
        base="lstm",
        reason=21,
        also=(18,),
        split="test",
        what="CrossEntropyLoss(ignore_index=1) copied from a recipe where 1 was the padding id: every positive is ignored",
        edits=(Edit(_LSTM_CRITERION, "criterion = nn.CrossEntropyLoss(ignore_index=1)\n"),),
    ),
    Fault(
        "lstm-raw-feature-units",
        base="lstm",
        reason=12,
        split="test",
        what="the three features fed in raw units (scales 0.01, 100, 1000), never standardised",
        edits=(
            Edit(
                "walks = torch.randn(n, steps, 3)\n",
                "walks = torch.randn(n, steps, 3) * torch.tensor([0.01, 100.0, 1000.0])  # raw units\n",
            ),
        ),
    ),
    Fault(
        "lstm-frozen-encoder",
        base="lstm",
        reason=23,
        split="dev",
        what="the randomly initialised LSTM is frozen with requires_grad_(False), as in a fine-tuning recipe",
        edits=(
            Edit(
                "model = SequenceClassifier()\n",
                "model = SequenceClassifier()\nmodel.lstm.requires_grad_(False)  # train the head only\n",
            ),
        ),
    ),
    # ------------------------------------------------------ transformer (healthy_transformer.py)
    Fault(
        "transformer-no-batch-first",
        base="transformer",
        reason=25,
        split="dev",
        what="TransformerEncoderLayer without batch_first=True: attention runs across the samples of the batch",
        edits=(
            Edit(
                "nn.TransformerEncoderLayer(width, heads, 2 * width, dropout=0.1, batch_first=True)",
                "nn.TransformerEncoderLayer(width, heads, 2 * width, dropout=0.1)",
            ),
        ),
    ),
    Fault(
        "transformer-position-init-divided",
        base="transformer",
        reason=28,
        split="dev",
        what="position embedding initialised as randn / 0.02 (std 50) instead of * 0.02: it drowns the token embeddings",
        edits=(Edit("torch.randn(LENGTH, width) * 0.02", "torch.randn(LENGTH, width) / 0.02"),),
    ),
    # --------------------------------------------------- bn-regression (healthy_bn_regression.py)
    Fault(
        "bn-regression-splits-standardised-apart",
        base="bn-regression",
        reason=15,
        split="dev",
        what=(
            "the training rows and the validation rows are each standardised with their own "
            "mean and std"
        ),
        edits=(
            Edit(
                "    x, y = make_data(4096, args.seed)\n",
                "    x, y = make_data(4096, args.seed)\n"
                "    x_tr, x_va = x[:3500], x[3500:]\n"
                "    x = torch.cat([(x_tr - x_tr.mean(0)) / x_tr.std(0), (x_va - x_va.mean(0)) / x_va.std(0)])\n",
            ),
        ),
    ),
    Fault(
        "bn-regression-targets-in-raw-units",
        base="bn-regression",
        reason=12,
        split="dev",
        what=(
            "make_data returns the target in raw units (y * 800 + 3000, a price-like scale "
            "with mean ~3000 and std ~2200) instead of standardised: under the Huber loss "
            "the bounded gradient moves the output a learning rate at a time, and after 20 "
            "epochs the validation Huber loss is 232 (the best constant's is ~1700; healthy, "
            "standardised: a few hundredths of its constant's)"
        ),
        edits=(
            Edit(
                "    return x, ((y - y.mean()) / y.std()).unsqueeze(1)\n",
                "    return x, (y * 800 + 3000).unsqueeze(1)\n",
            ),
        ),
    ),
    Fault(
        "bn-regression-zero-init",
        base="bn-regression",
        reason=28,
        split="dev",
        ci=True,
        what="every Linear's weight and bias initialised to zero (the zero init meant for the last layer only)",
        edits=(
            Edit(
                _BN_OPTIMIZER,
                "    for m in model.modules():\n"
                "        if isinstance(m, nn.Linear):\n"
                "            nn.init.zeros_(m.weight)\n"
                "            nn.init.zeros_(m.bias)\n" + _BN_OPTIMIZER,
            ),
        ),
    ),
    Fault(
        "bn-regression-batch-hoisted",
        base="bn-regression",
        reason=3,
        also=(1,),
        split="test",
        what="xb, yb = next(iter(train)) hoisted out of the loop: every step trains on the same batch",
        edits=(
            Edit(
                "    for epoch in range(args.epochs):\n        model.train()\n        for xb, yb in train:\n",
                "    xb, yb = next(iter(train))\n"
                "    for epoch in range(args.epochs):\n        model.train()\n        for _ in range(len(train)):\n",
            ),
        ),
    ),
    Fault(
        "bn-regression-impute-inverted",
        base="bn-regression",
        reason=1,
        also=(2,),
        split="dev",
        what="a missing-value imputation with an inverted mask, x[~x.isnan()] = 0, zeroes every input",
        edits=(
            Edit(
                "    return x, ((y - y.mean()) / y.std()).unsqueeze(1)\n",
                "    x[~x.isnan()] = 0.0  # impute missing readings\n"
                "    return x, ((y - y.mean()) / y.std()).unsqueeze(1)\n",
            ),
        ),
    ),
    Fault(
        "bn-regression-train-eval-swapped",
        base="bn-regression",
        reason=32,
        split="dev",
        what="model.eval() at the top of the epoch and model.train() before validation: the two calls swapped",
        edits=(
            Edit(
                "        model.train()\n        for xb, yb in train:",
                "        model.eval()\n        for xb, yb in train:",
            ),
            Edit(
                "        model.eval()\n        with torch.no_grad():",
                "        model.train()\n        with torch.no_grad():",
            ),
        ),
    ),
    Fault(
        "bn-regression-weight-decay-1",
        base="bn-regression",
        reason=29,
        split="dev",
        what="SGD weight_decay=1.0 (an L2 lambda of 1) instead of 1e-4: the weights are decayed away",
        edits=(Edit("weight_decay=1e-4", "weight_decay=1.0"),),
    ),
    # ----------------------------------------------------------- bf16-cnn (healthy_bf16_cnn.py)
    Fault(
        "bf16-cnn-mean-over-channel-axis",
        base="bf16-cnn",
        reason=1,
        also=(2,),
        split="test",
        what="the per-channel mean taken over dim=1, the size-1 channel axis: x - mean is all zeros",
        edits=(
            Edit(
                _BF16_RETURN,
                "    return (x - x.mean(dim=1, keepdim=True)) / x.std(), y  # per-channel mean\n",
            ),
        ),
    ),
    Fault(
        "bf16-cnn-chained-index-noop",
        base="bf16-cnn",
        reason=4,
        also=(1, 5),
        split="dev",
        what="the band is drawn through chained indexing x[y == c][...] += 2, which writes to a copy: images are pure noise",
        edits=(
            Edit(
                "x[y == c, :, 4 * c : 4 * c + 4, :] += 2.0",
                "x[y == c][:, :, 4 * c : 4 * c + 4, :] += 2.0",
            ),
        ),
    ),
    # --------------------------------------------------------------------- vae (healthy_vae.py)
    Fault(
        "vae-variance-not-positive",
        base="vae",
        reason=37,
        split="dev",
        what="the encoder's second head used as a variance with no exp/softplus: sqrt and log of negatives give NaN",
        edits=(
            Edit(
                "mu, logvar = self.encoder(x).chunk(2, dim=1)  # (N, latent) each",
                "mu, var = self.encoder(x).chunk(2, dim=1)  # (N, latent) each",
            ),
            Edit(
                "z = mu + torch.randn_like(mu) * (0.5 * logvar).exp()  # the reparameterisation trick",
                "z = mu + torch.randn_like(mu) * var.sqrt()  # the reparameterisation trick",
            ),
            Edit("return self.decoder(z), mu, logvar\n", "return self.decoder(z), mu, var\n"),
            Edit(
                "mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:",
                "mu: torch.Tensor, var: torch.Tensor) -> torch.Tensor:",
            ),
            Edit(
                "kl = -0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum()",
                "kl = -0.5 * (1 + var.log() - mu.pow(2) - var).sum()",
            ),
        ),
    ),
    Fault(
        "vae-decoder-not-in-optimizer",
        base="vae",
        reason=23,
        split="test",
        what="the optimizer is given model.encoder.parameters() only: the decoder keeps its random weights",
        edits=(
            Edit(
                "optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)",
                "optimizer = torch.optim.Adam(model.encoder.parameters(), lr=1e-3)",
            ),
        ),
    ),
):
    register_fault(fault)
