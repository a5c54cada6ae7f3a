"""Wild cases, third set: setups unlike the ones nndoctor was tuned on, and real bugs in them.

The healthy scripts live in ``examples/wild/``, each in the manner of a well-known public
PyTorch training script (written here, not copied): a vanilla GAN on a ring of eight 2-D
Gaussians (non-saturating ``BCEWithLogitsLoss``, two Adam optimizers with the DCGAN
betas, a D step on real and detached fake points then a G step), multi-step forecasting
of a multivariate series with a GRU (a min-max scaler fitted on the training part,
sliding windows, a chronological split, ``ReduceLROnPlateau``), fastText-style text
classification with ``nn.EmbeddingBag(mode="mean")`` over word and hashed bigram ids
with offsets built in a ``collate_fn`` and a linearly decaying SGD rate, a hand-written
graph attention network trained full-batch on a dense adjacency with masked nodes, and a
tabular classifier with categorical embeddings, BatchNorm MLP, ``pos_weight`` for a 1:4
imbalance and early stopping on a hand-computed validation AUC. Each fault is one bug as
it arrives in code in that style; each was checked to make the full run worse.

Names start with ``wild-``; all cases and faults here are ``dev``.
"""

from __future__ import annotations

from nndoctor.faults.registry import Edit, Fault, HealthyCase, register_fault, register_healthy

GAN = "wild-gan-ring"
GRU = "wild-gru-forecast"
FASTTEXT = "wild-fasttext-bag"
GAT = "wild-node-gat"
TABULAR = "wild-tabular-embed"

for case in (
    HealthyCase(
        GAN,
        "dev",
        "vanilla GAN on a ring of 8 Gaussians: MLP G and D with LeakyReLU, non-saturating "
        "BCEWithLogitsLoss, two Adam optimizers betas=(0.5, 0.999), D on real + fake.detach() "
        "then G; two optimizers stepping alternately, losses that do not fall",
        script="wild/gan_ring.py",
    ),
    HealthyCase(
        GRU,
        "dev",
        "GRU(batch_first) forecaster: 48-step windows of 4 scaled sensors -> next 12 values, "
        "min-max scaler fitted on the training part (validation beyond [0, 1] by the trend), "
        "MSE, Adam, clipping, ReduceLROnPlateau, eval() + no_grad validation",
        script="wild/gru_forecast.py",
    ),
    HealthyCase(
        FASTTEXT,
        "dev",
        "fastText-style EmbeddingBag(mode='mean') over word + hashed bigram ids, offsets from "
        "a collate_fn, linear head, CE, SGD lr 10 decaying linearly to 0 by LambdaLR per "
        "batch, clipping; a slow first epoch near chance",
        script="wild/fasttext_bag.py",
    ),
    HealthyCase(
        GAT,
        "dev",
        "hand-written GAT (8 heads, dense adjacency, -9e15 outside edges, softmax over "
        "neighbours, dropout 0.6 on features and attention), full batch: one step per epoch, "
        "NLL on 100 masked training nodes, Adam wd 5e-4",
        script="wild/node_gat.py",
    ),
    HealthyCase(
        TABULAR,
        "dev",
        "tabular churn: nn.Embedding per categorical column + standardised numeric columns, "
        "MLP with BatchNorm1d and Dropout(0.3), BCEWithLogitsLoss(pos_weight) for 1:4, AdamW, "
        "early stopping on a hand-computed validation AUC",
        script="wild/tabular_embed.py",
    ),
):
    register_healthy(case)


for fault in (
    # --- GAN on a ring of Gaussians ------------------------------------------------------
    Fault(
        "wild-gan-ring-fake-not-detached",
        GAN,
        18,
        "dev",
        "the D step scores fake instead of fake.detach() (backward with retain_graph=True to "
        "get past the error) and both optimizers are zeroed at the top of the iteration: G's "
        "update carries the gradient of D's loss too, pulling G against its own objective",
        also=(26,),
        edits=(
            Edit(
                "    optimizerD.zero_grad()\n    output = netD(real)\n",
                "    optimizerD.zero_grad()\n    optimizerG.zero_grad()\n    output = netD(real)\n",
            ),
            Edit("    output = netD(fake.detach())\n", "    output = netD(fake)\n"),
            Edit("    errD.backward()\n", "    errD.backward(retain_graph=True)\n"),
            Edit(
                "    optimizerG.zero_grad()\n    output = netD(fake)\n",
                "    output = netD(fake)\n",
            ),
        ),
    ),
    Fault(
        "wild-gan-ring-d-labels-swapped",
        GAN,
        19,
        "dev",
        "the discriminator's targets are swapped (real points labelled fake_label, generated "
        "ones real_label) while G is still trained towards real_label: D learns the opposite "
        "and G is never pushed towards the data",
        also=(18, 21),
        edits=(
            Edit(
                "errD_real = criterion(output, torch.full_like(output, real_label))",
                "errD_real = criterion(output, torch.full_like(output, fake_label))",
            ),
            Edit(
                "errD_fake = criterion(output, torch.full_like(output, fake_label))",
                "errD_fake = criterion(output, torch.full_like(output, real_label))",
            ),
        ),
    ),
    Fault(
        "wild-gan-ring-g-optimizer-over-d-params",
        GAN,
        23,
        "dev",
        "optimizerG is built over netD.parameters(): the generator's gradients are computed "
        "at every iteration and no optimizer uses them, while the discriminator takes two "
        "steps per iteration, one of them against its own objective; G stays at its random "
        "initialisation (0 of 8 modes, 0% high-quality samples after 5,000 iterations)",
        edits=(
            Edit(
                "optimizerG = torch.optim.Adam(netG.parameters()",
                "optimizerG = torch.optim.Adam(netD.parameters()",
            ),
        ),
    ),
    Fault(
        "wild-gan-ring-g-loss-on-detached-fake",
        GAN,
        23,
        "dev",
        "the generator step scores fake.detach() as the discriminator step does: errG "
        "reaches only D's parameters, the generator never gets a gradient and stays put while "
        "D wins (Loss_D 0.0000, Loss_G 12.9, 0 of 8 modes after 5,000 iterations)",
        also=(26,),
        edits=(Edit("    output = netD(fake)\n", "    output = netD(fake.detach())\n"),),
    ),
    # --- GRU forecaster -------------------------------------------------------------------
    Fault(
        "wild-gru-forecast-target-sensor-left-raw",
        GRU,
        12,
        "dev",
        "the target sensor's column is copied back unscaled after the min-max scaling "
        "(meant to read the forecast in its own units): inputs and targets of that sensor "
        "sit around 25 with std ~3 while the GRU's head starts near 0; after 6 epochs the "
        "validation MSE is 6.1 (target variance ~8; healthy: 0.00057 in scaled units, ~2% "
        "of the scaled variance)",
        edits=(
            Edit(
                "    val_scaled = scaler.transform(val_raw)\n",
                "    val_scaled = scaler.transform(val_raw)\n"
                "    # the target sensor stays in its own units, as the forecast is read in them\n"
                "    train_scaled[:, 0], val_scaled[:, 0] = train_raw[:, 0], val_raw[:, 0]\n",
            ),
        ),
    ),
    Fault(
        "wild-gru-forecast-batch-first-dropped",
        GRU,
        25,
        "dev",
        "nn.GRU built without batch_first=True while windows are (batch, time, features): the "
        "GRU runs along the batch, and out[:, -1, :] is each window's state after the last "
        "time step of the windows before it in the batch",
        also=(4,),
        edits=(
            Edit(
                "num_layers=num_layers, batch_first=True)",
                "num_layers=num_layers)",
            ),
        ),
    ),
    Fault(
        "wild-gru-forecast-scaler-refit-on-val",
        GRU,
        15,
        "dev",
        "the validation part goes through scaler.fit_transform instead of transform: it is "
        "min-max scaled with its own range, so its inputs and targets are on another scale "
        "than the one the model was trained on",
        edits=(
            Edit(
                "val_scaled = scaler.transform(val_raw)",
                "val_scaled = scaler.fit_transform(val_raw)",
            ),
        ),
    ),
    # --- fastText EmbeddingBag ----------------------------------------------------------
    Fault(
        "wild-fasttext-bag-offsets-word-count",
        FASTTEXT,
        3,
        "dev",
        "collate_batch appends len(words) to the offsets while each document contributes its "
        "words and its bigram ids: the bags drift across documents, so labels no longer "
        "belong to the tokens they are averaged over",
        also=(4, 25),
        edits=(Edit("        offsets.append(len(ids))\n", "        offsets.append(len(words))\n"),),
    ),
    Fault(
        "wild-fasttext-bag-lr-decay-per-epoch",
        FASTTEXT,
        36,
        "dev",
        "the linear decay is sized in epochs (total_steps = args.epochs) but LambdaLR is "
        "stepped every batch: the learning rate reaches 0 after 5 of the 940 steps",
        also=(23,),
        edits=(
            Edit(
                "total_steps = args.epochs * len(train_dataloader)",
                "total_steps = args.epochs",
            ),
        ),
    ),
    # --- GAT on a dense adjacency ---------------------------------------------------------
    Fault(
        "wild-node-gat-softmax-dim0",
        GAT,
        25,
        "dev",
        "the attention softmax is taken over dim=0 (over the nodes that attend to a neighbour) "
        "instead of dim=1 (over a node's neighbours): each node's attention weights no longer "
        "sum to one",
        also=(22,),
        edits=(
            Edit(
                "attention = F.softmax(attention, dim=1)",
                "attention = F.softmax(attention, dim=0)",
            ),
        ),
    ),
    Fault(
        "wild-node-gat-dropout-at-eval",
        GAT,
        32,
        "dev",
        "GAT.forward calls F.dropout(x, self.dropout) without training=self.training: "
        "dropout 0.6 on the features stays on under model.eval(), so validation and test "
        "predictions are noisy and early model selection is off",
        edits=(
            Edit(
                "    def forward(self, x, adj):\n"
                "        x = F.dropout(x, self.dropout, training=self.training)\n"
                "        x = torch.cat([att(x, adj) for att in self.attentions], dim=1)\n"
                "        x = F.dropout(x, self.dropout, training=self.training)\n",
                "    def forward(self, x, adj):\n"
                "        x = F.dropout(x, self.dropout)\n"
                "        x = torch.cat([att(x, adj) for att in self.attentions], dim=1)\n"
                "        x = F.dropout(x, self.dropout)\n",
            ),
        ),
    ),
    # --- tabular embeddings -------------------------------------------------------------
    Fault(
        "wild-tabular-embed-labels-not-shuffled",
        TABULAR,
        4,
        "dev",
        "the shuffle of the branch-sorted export permutes the categorical and numeric columns "
        "but not y: every label now sits on another customer's features",
        also=(3,),
        edits=(
            Edit(
                "x_cat, x_num, y = x_cat[perm], x_num[perm], y[perm]",
                "x_cat, x_num = x_cat[perm], x_num[perm]",
            ),
        ),
    ),
    Fault(
        "wild-tabular-embed-scalar-standardisation",
        TABULAR,
        12,
        "dev",
        "the numeric columns are standardised with one mean and one std over the whole "
        "matrix (.mean() for .mean(dim=0)), set by balance and income: those two keep a spread "
        "near 1 while tenure, score, products and last contact vary by 3e-5 to 3e-3",
        edits=(
            Edit(
                "mean, std = x_num[train].mean(dim=0), x_num[train].std(dim=0)",
                "mean, std = x_num[train].mean(), x_num[train].std()",
            ),
        ),
    ),
):
    register_fault(fault)
