"""The compatibility suite: training scripts as people write them, and real bugs in them.

The healthy scripts live in ``examples/compat/``, each in the manner of a well-known
public example (written here, not copied): word-level LSTM and Transformer language
models on sequence-first batches (the LSTM one stepping by hand), LBFGS sine-wave
prediction with a closure, a nanoGPT-style character model (accumulation, a disabled
``GradScaler``, an ``exec`` configurator, loss inside ``forward``), polynomial
regression by hand, a DCGAN, a Lightning module, a Hugging Face ``Trainer``, an
MNIST-style convnet, a sequence-first LSTM forecaster, a GRU seq2seq with attention,
skip-gram word2vec with sparse embeddings, a triplet embedding net, a GCN, a denoising
autoencoder, a tabular MLP with class weights and early stopping, and a two-phase
fine-tune. Each fault is one bug as it arrives in code in that style.

Names start with ``compat-`` so ``nndoctor bench --select 'compat-*'`` runs the suite.
Splits: the DCGAN, the forecaster, word2vec, the triplet net, the GCN and the tabular
MLP, with all their faults, are ``test`` (6 of 17 healthy cases); the rest ``dev``.
"""

from __future__ import annotations

from nndoctor.faults.registry import Edit, Fault, HealthyCase, register_fault, register_healthy

LSTM_LM = "compat-word-lm-lstm"
TRANSFORMER_LM = "compat-word-lm-transformer"
LBFGS = "compat-lbfgs-sine"
GPT = "compat-char-gpt"
POLY = "compat-poly-regression"
DCGAN = "compat-dcgan"
LIGHTNING = "compat-lightning"
HF = "compat-hf-bert"
MNIST = "compat-mnist-convnet"
FORECAST = "compat-ts-lstm-forecast"
SEQ2SEQ = "compat-seq2seq-attention"
WORD2VEC = "compat-word2vec"
TRIPLET = "compat-triplet"
GCN = "compat-gcn"
DENOISE = "compat-denoising-ae"
TABULAR = "compat-tabular-mlp"
TWO_PHASE = "compat-two-phase-finetune"

for case in (
    HealthyCase(
        LSTM_LM,
        "dev",
        "word-level LSTM LM: batchify/get_batch sequence-first, SGD by hand (p.data.add_), "
        "clipping, detached hidden state, lr / 4 on a validation plateau",
        script="compat/word_lm_lstm.py",
    ),
    HealthyCase(
        TRANSFORMER_LM,
        "dev",
        "word-level Transformer LM, sequence-first nn.TransformerEncoder with a causal mask, "
        "log_softmax + NLLLoss, SGD lr 5 + StepLR, clipping",
        script="compat/word_lm_transformer.py",
    ),
    HealthyCase(
        LBFGS,
        "dev",
        "two stacked LSTMCells in double predicting sine waves, full batch, LBFGS step(closure)",
        script="compat/lbfgs_sine.py",
    ),
    HealthyCase(
        GPT,
        "dev",
        "nanoGPT-style char model: exec configurator, loss in forward, accumulation, disabled "
        "GradScaler, AdamW groups, hand-computed warm-up + cosine, estimate_loss under no_grad",
        script="compat/char_gpt.py",
    ),
    HealthyCase(
        POLY,
        "dev",
        "degree-4 polynomial fitted by one nn.Linear, smooth L1, param -= lr * grad under no_grad",
        script="compat/poly_regression.py",
    ),
    HealthyCase(
        DCGAN,
        "test",
        "DCGAN: ConvTranspose/BatchNorm generator, Sigmoid discriminator, BCELoss, two Adams",
        script="compat/dcgan.py",
    ),
    HealthyCase(
        LIGHTNING,
        "dev",
        "LightningModule conv classifier, Trainer.fit on CPU, Adam + StepLR from configure_optimizers",
        script="compat/lightning_classifier.py",
    ),
    HealthyCase(
        HF,
        "dev",
        "Hugging Face Trainer on a BertForSequenceClassification from a BertConfig, dict Dataset",
        script="compat/hf_bert_trainer.py",
    ),
    HealthyCase(
        MNIST,
        "dev",
        "MNIST-style convnet on drawn digits, log_softmax + F.nll_loss, Adadelta + StepLR(0.7)",
        script="compat/mnist_convnet.py",
    ),
    HealthyCase(
        FORECAST,
        "test",
        "LSTM forecaster, batch_first=False, windows permuted to (seq, batch, 1), MSE, Adam + plateau",
        script="compat/ts_lstm_forecast.py",
    ),
    HealthyCase(
        SEQ2SEQ,
        "dev",
        "batched GRU encoder-decoder with Bahdanau attention, teacher forcing, NLLLoss(ignore_index), "
        "two Adams",
        script="compat/seq2seq_attention.py",
    ),
    HealthyCase(
        WORD2VEC,
        "test",
        "skip-gram with negative sampling, sparse embeddings, loss in forward, SparseAdam",
        script="compat/word2vec_sgns.py",
    ),
    HealthyCase(
        TRIPLET,
        "test",
        "triplet dataset, BatchNorm MLP with L2-normalised embeddings, TripletMarginLoss, Adam",
        script="compat/triplet_embedding.py",
    ),
    HealthyCase(
        GCN,
        "test",
        "two-layer GCN with a dense normalised adjacency, full batch, loss on 80 labelled nodes",
        script="compat/gcn_nodes.py",
    ),
    HealthyCase(
        DENOISE,
        "dev",
        "conv denoising autoencoder, fresh noise per batch, BCEWithLogits against the clean image",
        script="compat/denoising_ae.py",
    ),
    HealthyCase(
        TABULAR,
        "test",
        "tabular MLP with BatchNorm and dropout, inverse-frequency class weights, early stopping",
        script="compat/tabular_mlp_bn.py",
    ),
    HealthyCase(
        TWO_PHASE,
        "dev",
        "pre-train a conv backbone, then freeze it and train a new head with a second optimizer",
        script="compat/two_phase_finetune.py",
    ),
):
    register_healthy(case)


for fault in (
    # --- word-level LSTM LM, SGD by hand ------------------------------------------------
    Fault(
        "compat-word-lm-lstm-no-zero-grad",
        LSTM_LM,
        26,
        "dev",
        "model.zero_grad() dropped from the hand-written step: every update applies the sum of "
        "all gradients so far",
        also=(36,),
        edits=(Edit("            model.zero_grad()\n", ""),),
    ),
    Fault(
        "compat-word-lm-lstm-gradient-ascent",
        LSTM_LM,
        36,
        "dev",
        "the manual update adds the gradient (alpha=lr) instead of subtracting it",
        also=(26, 35),
        edits=(Edit("    p.data.add_(p.grad, alpha=-lr)", "    p.data.add_(p.grad, alpha=lr)"),),
    ),
    Fault(
        "compat-word-lm-lstm-batchify-view",
        LSTM_LM,
        4,
        "dev",
        "batchify lays the text out with view(-1, bsz) instead of view(bsz, -1).t(): each "
        "column holds every bsz-th word, so the target is not the next word of the input",
        also=(5, 25),
        edits=(
            Edit(
                "data = data.view(bsz, -1).t().contiguous()",
                "data = data.view(-1, bsz).contiguous()",
            ),
        ),
    ),
    # --- word-level Transformer LM ------------------------------------------------------
    Fault(
        "compat-word-lm-transformer-nll-on-logits",
        TRANSFORMER_LM,
        19,
        "dev",
        "the model returns the decoder's raw output (log_softmax dropped) into nn.NLLLoss",
        also=(18,),
        edits=(Edit("return F.log_softmax(output, dim=-1)", "return output"),),
    ),
    Fault(
        "compat-word-lm-transformer-lr-x100",
        TRANSFORMER_LM,
        36,
        "dev",
        "SGD learning rate 500 instead of 5",
        also=(35,),
        edits=(Edit("lr = 5.0\n", "lr = 500.0\n"),),
    ),
    Fault(
        "compat-word-lm-transformer-no-zero-grad",
        TRANSFORMER_LM,
        26,
        "dev",
        "optimizer.zero_grad() missing from the training loop: gradients pile up across steps",
        also=(36,),
        edits=(
            Edit(
                "        optimizer.zero_grad()\n        loss.backward()\n",
                "        loss.backward()\n",
            ),
        ),
    ),
    # --- LBFGS sine waves ---------------------------------------------------------------
    Fault(
        "compat-lbfgs-sine-closure-no-zero-grad",
        LBFGS,
        26,
        "dev",
        "the closure forgets optimizer.zero_grad(): every evaluation adds to the gradients of "
        "the previous ones, so LBFGS's line search follows a wrong gradient",
        also=(36,),
        edits=(Edit("            optimizer.zero_grad()\n", ""),),
    ),
    Fault(
        "compat-lbfgs-sine-target-rows-shifted",
        LBFGS,
        4,
        "dev",
        "the targets are taken from data[:-3] while the inputs are data[3:]: each wave is "
        "paired with the continuation of another wave",
        also=(5,),
        edits=(
            Edit(
                "target = torch.from_numpy(data[3:, 1:])",
                "target = torch.from_numpy(data[:-3, 1:])",
            ),
        ),
    ),
    Fault(
        "compat-lbfgs-sine-lr-x100",
        LBFGS,
        36,
        "dev",
        "LBFGS lr=80 instead of 0.8, without a line search",
        also=(35,),
        edits=(Edit("lr=0.8, max_iter=5", "lr=80, max_iter=5"),),
    ),
    # --- nanoGPT-style character model --------------------------------------------------
    Fault(
        "compat-char-gpt-targets-other-windows",
        GPT,
        4,
        "dev",
        "get_batch draws the targets at fresh random offsets instead of the inputs' offsets "
        "plus one: targets belong to other windows",
        also=(5,),
        edits=(
            Edit(
                "for i in ix])\n    return",
                "for i in torch.randint(len(data) - block_size, (batch_size,))])\n    return",
            ),
        ),
    ),
    Fault(
        "compat-char-gpt-lr-x100-behind-warmup",
        GPT,
        36,
        "dev",
        "peak learning rate 0.2 instead of 2e-3, reached after the 20 warm-up iterations",
        also=(35,),
        edits=(Edit("learning_rate = 2e-3\n", "learning_rate = 2e-1\n"),),
    ),
    Fault(
        "compat-char-gpt-softmax-before-ce",
        GPT,
        19,
        "dev",
        "the loss inside forward is F.cross_entropy of softmax probabilities, not of the logits",
        also=(18,),
        edits=(
            Edit(
                "loss = F.cross_entropy(logits.view(-1, logits.size(-1)),",
                "loss = F.cross_entropy(F.softmax(logits, dim=-1).view(-1, logits.size(-1)),",
            ),
        ),
    ),
    # --- polynomial regression by hand --------------------------------------------------
    Fault(
        "compat-poly-regression-no-zero-grad",
        POLY,
        26,
        "dev",
        "fc.zero_grad() removed: the hand-written update applies the running sum of all gradients",
        also=(36,),
        edits=(Edit("    # Reset gradients\n    fc.zero_grad()\n", ""),),
    ),
    Fault(
        "compat-poly-regression-bias-not-updated",
        POLY,
        23,
        "dev",
        "the update loop walks [fc.weight] only: the bias keeps its random initial value",
        edits=(Edit("for param in fc.parameters():", "for param in [fc.weight]:"),),
    ),
    # --- DCGAN (test) -------------------------------------------------------------------
    Fault(
        "compat-dcgan-generator-stepped-by-d-optimizer",
        DCGAN,
        23,
        "test",
        "the generator's update calls optimizerD.step(): the generator is never updated",
        edits=(
            Edit(
                "        D_G_z2 = output.mean().item()\n        optimizerG.step()",
                "        D_G_z2 = output.mean().item()\n        optimizerD.step()",
            ),
        ),
    ),
    Fault(
        "compat-dcgan-generator-fake-labels",
        DCGAN,
        18,
        "test",
        "the generator's loss uses the fake label: it learns to make its images easier to reject",
        also=(21,),
        edits=(
            Edit(
                "label.fill_(real_label)  # fake labels are real for generator cost",
                "label.fill_(fake_label)",
            ),
        ),
    ),
    Fault(
        "compat-dcgan-lr-1000x",
        DCGAN,
        36,
        "test",
        "Adam learning rate 0.2 instead of 0.0002 for both networks",
        also=(35,),
        edits=(Edit('default=0.0002, help="learning rate', 'default=0.2, help="learning rate'),),
    ),
    # --- Lightning ----------------------------------------------------------------------
    Fault(
        "compat-lightning-optimizer-head-only",
        LIGHTNING,
        23,
        "dev",
        "configure_optimizers gives Adam self.head.parameters() only: the conv features stay random",
        edits=(
            Edit(
                "torch.optim.Adam(self.parameters(), lr=self.hparams.lr)",
                "torch.optim.Adam(self.head.parameters(), lr=self.hparams.lr)",
            ),
        ),
    ),
    Fault(
        "compat-lightning-softmax-before-ce",
        LIGHTNING,
        19,
        "dev",
        "forward ends in a softmax (handy for predict) and training_step feeds it to F.cross_entropy",
        also=(18,),
        edits=(
            Edit(
                "return self.head(self.features(x).flatten(1))",
                "return self.head(self.features(x).flatten(1)).softmax(dim=1)",
            ),
        ),
    ),
    Fault(
        "compat-lightning-lr-x10000",
        LIGHTNING,
        36,
        "dev",
        "the module's default lr typed as 10.0 instead of 1e-3",
        also=(35,),
        edits=(Edit("lr: float = 1e-3", "lr: float = 10.0"),),
    ),
    # --- Hugging Face Trainer -----------------------------------------------------------
    Fault(
        "compat-hf-bert-labels-shuffled-alone",
        HF,
        4,
        "dev",
        "the dataset shuffles its labels with their own permutation after building them",
        also=(5, 6),
        edits=(
            Edit(
                "            self.labels[i] = int(n_pos > n_neg)\n",
                "            self.labels[i] = int(n_pos > n_neg)\n"
                "        self.labels = self.labels[torch.randperm(n, generator=g)]\n",
            ),
        ),
    ),
    Fault(
        "compat-hf-bert-lr-1",
        HF,
        36,
        "dev",
        "TrainingArguments learning_rate=1.0 instead of 5e-4",
        also=(35,),
        edits=(Edit("learning_rate=5e-4,", "learning_rate=1.0,"),),
    ),
    Fault(
        "compat-hf-bert-num-labels-1",
        HF,
        18,
        "dev",
        "num_labels=1 in the config: the model regresses the 0/1 label with MSE instead of classifying",
        also=(19,),
        edits=(Edit("num_labels=2,", "num_labels=1,"),),
    ),
    # --- MNIST-style convnet ------------------------------------------------------------
    Fault(
        "compat-mnist-convnet-nll-on-logits",
        MNIST,
        19,
        "dev",
        "forward returns fc2's raw output (log_softmax dropped) into F.nll_loss",
        also=(18,),
        edits=(Edit("output = F.log_softmax(x, dim=1)", "output = x"),),
    ),
    Fault(
        "compat-mnist-convnet-pixels-0-255",
        MNIST,
        1,
        "dev",
        "the / 255.0 is gone and the usual MNIST constants (meant for [0, 1] pixels) normalise "
        "the raw 0-255 values: inputs reach several hundred",
        also=(12,),
        edits=(
            Edit(
                "    train_x = train_images.float() / 255.0\n    test_x = test_images.float() / 255.0\n"
                "    mean, std = train_x.mean().item(), train_x.std().item()\n",
                "    train_x = train_images.float()\n    test_x = test_images.float()\n"
                "    mean, std = 0.1307, 0.3081  # the usual MNIST constants\n",
            ),
        ),
    ),
    Fault(
        "compat-mnist-convnet-steplr-per-batch",
        MNIST,
        36,
        "dev",
        "scheduler.step() (gamma 0.7) called after every batch instead of every epoch: the rate "
        "vanishes within the first epoch",
        edits=(
            Edit(
                "        optimizer.step()\n        if batch_idx",
                "        optimizer.step()\n        scheduler.step()\n        if batch_idx",
            ),
            Edit(
                "def train(args, model, train_loader, optimizer, epoch):",
                "def train(args, model, train_loader, optimizer, epoch, scheduler):",
            ),
            Edit(
                "train(args, model, train_loader, optimizer, epoch)\n        test",
                "train(args, model, train_loader, optimizer, epoch, scheduler)\n        test",
            ),
            Edit(
                "        test(model, test_loader)\n        scheduler.step()\n",
                "        test(model, test_loader)\n",
            ),
        ),
    ),
    # --- LSTM forecaster (test) ---------------------------------------------------------
    Fault(
        "compat-ts-lstm-forecast-view-not-permute",
        FORECAST,
        25,
        "test",
        "the (batch, window) batch reshaped with .view(window, batch, 1) instead of permuted: "
        "every time step mixes values of different samples",
        also=(4,),
        edits=(
            Edit(
                "xb = xb.permute(1, 0).unsqueeze(-1)",
                "xb = xb.view(xb.size(1), xb.size(0), 1)",
            ),
        ),
    ),
    Fault(
        "compat-ts-lstm-forecast-lr-x1000",
        FORECAST,
        36,
        "test",
        "Adam learning rate 3.0 instead of 3e-3",
        also=(35,),
        edits=(Edit('"--lr", type=float, default=3e-3', '"--lr", type=float, default=3.0'),),
    ),
    Fault(
        "compat-ts-lstm-forecast-targets-raw",
        FORECAST,
        12,
        "test",
        "the targets are left in raw units (around 10, std 3) while the inputs are standardised",
        also=(17, 18),
        edits=(
            Edit(
                "train_x, train_y = (train_x - mean) / std, (train_y - mean) / std",
                "train_x = (train_x - mean) / std",
            ),
        ),
    ),
    # --- seq2seq with attention ---------------------------------------------------------
    Fault(
        "compat-seq2seq-attention-encoder-not-stepped",
        SEQ2SEQ,
        23,
        "dev",
        "encoder_optimizer.step() missing: the encoder keeps its random weights",
        edits=(Edit("        encoder_optimizer.step()\n", ""),),
    ),
    Fault(
        "compat-seq2seq-attention-softmax-over-batch",
        SEQ2SEQ,
        25,
        "dev",
        "the attention weights are normalised over the batch axis (dim=0) instead of the source "
        "positions: each sample's context depends on the other samples",
        edits=(Edit("weights = F.softmax(scores, dim=-1)", "weights = F.softmax(scores, dim=0)"),),
    ),
    # --- word2vec (test) ----------------------------------------------------------------
    Fault(
        "compat-word2vec-negative-sign",
        WORD2VEC,
        18,
        "test",
        "the negative-sampling term uses logsigmoid(+score): negatives are pulled in like positives",
        edits=(
            Edit(
                "neg_score = -torch.sum(F.logsigmoid(-neg_score), dim=1)",
                "neg_score = -torch.sum(F.logsigmoid(neg_score), dim=1)",
            ),
        ),
    ),
    Fault(
        "compat-word2vec-both-tables-zero",
        WORD2VEC,
        28,
        "test",
        "the centre vectors are initialised at zero like the context vectors: every gradient is "
        "zero and nothing ever trains",
        also=(23,),
        edits=(
            Edit(
                "nn.init.uniform_(self.u_embeddings.weight.data, -initrange, initrange)",
                "nn.init.constant_(self.u_embeddings.weight.data, 0)",
            ),
        ),
    ),
    # --- triplet embedding (test) -------------------------------------------------------
    Fault(
        "compat-triplet-positive-any-class",
        TRIPLET,
        4,
        "test",
        "the positive is drawn from all items instead of the anchor's class",
        also=(5, 6),
        edits=(
            Edit(
                "positive_index = same[torch.randint(len(same), (1,), generator=self.rng)].item()",
                "positive_index = torch.randint(len(self.labels), (1,), generator=self.rng).item()",
            ),
        ),
    ),
    Fault(
        "compat-triplet-lr-x1000",
        TRIPLET,
        36,
        "test",
        "Adam learning rate 1.0 instead of 1e-3",
        also=(35,),
        edits=(Edit('"--lr", type=float, default=1e-3', '"--lr", type=float, default=1.0'),),
    ),
    # --- GCN (test) ---------------------------------------------------------------------
    Fault(
        "compat-gcn-adjacency-not-normalised",
        GCN,
        35,
        "test",
        "the raw adjacency with self-loops is used unnormalised: activations scale with the node "
        "degree at every layer",
        also=(12,),
        edits=(
            Edit(
                "    return d_inv_sqrt.unsqueeze(1) * a * d_inv_sqrt.unsqueeze(0)",
                "    return a",
            ),
        ),
    ),
    Fault(
        "compat-gcn-labels-reshuffled",
        GCN,
        4,
        "test",
        "the labels are shuffled again after the graph and features were drawn from them",
        also=(5, 6),
        edits=(
            Edit(
                "adj = normalize_adj(adj)\n",
                "adj = normalize_adj(adj)\nlabels = labels[torch.randperm(N)]\n",
            ),
        ),
    ),
    Fault(
        "compat-gcn-dropout-0.95",
        GCN,
        30,
        "test",
        "dropout 0.95 (meant 0.5) between the two graph convolutions",
        edits=(
            Edit('"--dropout", type=float, default=0.5', '"--dropout", type=float, default=0.95'),
        ),
    ),
    # --- denoising autoencoder ----------------------------------------------------------
    Fault(
        "compat-denoising-ae-target-is-noisy",
        DENOISE,
        18,
        "dev",
        "the loss compares the output with the noisy input instead of the clean image",
        also=(21,),
        edits=(
            Edit("loss = criterion(model(noisy), clean)", "loss = criterion(model(noisy), noisy)"),
        ),
    ),
    Fault(
        "compat-denoising-ae-sigmoid-then-bce-with-logits",
        DENOISE,
        19,
        "dev",
        "a Sigmoid added at the end of the decoder while the loss stays BCEWithLogitsLoss",
        also=(18,),
        edits=(
            Edit(
                "nn.ConvTranspose2d(16, 1, 4, stride=2, padding=1),              # 16x16 logits",
                "nn.ConvTranspose2d(16, 1, 4, stride=2, padding=1), nn.Sigmoid(),",
            ),
        ),
    ),
    Fault(
        "compat-denoising-ae-noise-std-3",
        DENOISE,
        13,
        "dev",
        "corruption noise std 3.0 instead of 0.3: clipped to [0, 1], the input is nearly binary noise",
        also=(30,),
        edits=(Edit('"--noise", type=float, default=0.3', '"--noise", type=float, default=3.0'),),
    ),
    # --- tabular MLP (test) -------------------------------------------------------------
    Fault(
        "compat-tabular-mlp-class-weights-inverted",
        TABULAR,
        8,
        "test",
        "the class weights are the class frequencies instead of their inverse: rare classes count less",
        edits=(
            Edit(
                "class_weights = counts.sum() / (len(counts) * counts)",
                "class_weights = counts / counts.sum()",
            ),
        ),
    ),
    Fault(
        "compat-tabular-mlp-train-mode-not-restored",
        TABULAR,
        32,
        "test",
        "model.train() sits before the epoch loop instead of inside it: after the first "
        "validation every epoch trains in eval mode (BatchNorm running statistics, no dropout)",
        edits=(
            Edit(
                "    for epoch in range(args.epochs):\n        model.train()\n",
                "    model.train()\n    for epoch in range(args.epochs):\n",
            ),
        ),
    ),
    Fault(
        "compat-tabular-mlp-not-standardised",
        TABULAR,
        12,
        "test",
        "the standardisation line is gone: columns on scales 1e-2..1e3 go in raw",
        edits=(Edit("    x = (x - mean) / std\n", ""),),
    ),
    # --- two-phase fine-tune ------------------------------------------------------------
    Fault(
        "compat-two-phase-finetune-pretrain-lr-x100",
        TWO_PHASE,
        36,
        "dev",
        "the pre-training SGD at lr 5.0 instead of 0.05",
        also=(35,),
        edits=(Edit("lr=0.05, momentum=0.9", "lr=5.0, momentum=0.9"),),
    ),
    Fault(
        "compat-two-phase-finetune-head-optimizer-on-backbone",
        TWO_PHASE,
        23,
        "dev",
        "the second optimizer is given the frozen backbone's parameters, not the new head's",
        edits=(
            Edit(
                "torch.optim.Adam(model.fc.parameters(), lr=1e-2)",
                "torch.optim.Adam(model.backbone.parameters(), lr=1e-2)",
            ),
        ),
    ),
):
    register_fault(fault)
