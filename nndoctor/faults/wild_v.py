"""Wild cases: SimCLR with NT-Xent, a Pointer Network, CORAL ordinal regression and DP-SGD.

The healthy scripts live in ``examples/wild/``, each in the manner of a well-known public
PyTorch training script (written here, not copied): SimCLR as the popular implementations
write it (two views of every generated shape image by a batched torch augmentation, a
BatchNorm CNN encoder and an MLP projection head, NT-Xent over the 2N x 2N cosine
similarity matrix at temperature 0.5 with the diagonal masked out and the positives at
i <-> i+N, Adam; then a linear probe on the frozen encoder's features against the same
probe on the random encoder); a Pointer Network sorting sequences of random numbers (LSTM
encoder, ``LSTMCell`` decoder whose additive attention over the input positions is the
output distribution, positions already pointed at masked with ``-inf``, teacher forcing
with the number at the target position, NLL over the pointers, Adam, gradient clipping,
exact sorts by greedy decoding); CORAL ordinal regression in the coral-pytorch manner
(an age bracket from clinical measurements on their natural scales standardised with
training statistics, a shared weight vector with K - 1 independent biases, extended
binary labels ``levels[i, k] = (y_i > k)``, the ``logsigmoid`` CORAL loss, the rank as the
number of probabilities above 0.5, MAE against the median); and DP-SGD written by hand
with ``torch.func`` (``functional_call`` + ``vmap(grad(...))`` per-sample gradients,
per-sample clipping to C, Gaussian noise sigma * C added to the sum, division by the
expected batch size of Poisson sampling, parameters updated by hand under ``no_grad``
without an optimizer object). Each fault is one bug as it arrives in code in that style.

Names start with ``wild-``. Split: four scripts of the group of twelve in ``wild_u.py`` to
``wild_w.py`` (the DANN domain adaptation, LoRA fine-tuning, the lottery-ticket pruning and
SimCLR), with their faults, are ``test``, drawn at random (seed 20261206) before the first
measurement; the rest ``dev``.
"""

from __future__ import annotations

from nndoctor.faults.registry import Edit, Fault, HealthyCase, register_fault, register_healthy

SIMCLR = "wild-simclr-ntxent"
POINTER = "wild-pointer-net-sort"
CORAL = "wild-coral-ordinal"
DPSGD = "wild-dpsgd-per-sample"

for case in (
    HealthyCase(
        SIMCLR,
        "test",
        "SimCLR on generated shapes: two views per batch by a torch augmentation (affine_grid "
        "crop, flip, colour jitter, grayscale, noise), BatchNorm CNN encoder + MLP projection "
        "head run once per view, NT-Xent at temperature 0.5 with the diagonal masked by "
        "-9e15 (the loss only falls from 6.24 = ln 511 to about 4.7 and never nears 0), "
        "Adam; then the encoder frozen with requires_grad_(False) and eval(), a second "
        "training of a linear probe on its standardised features, and the same probe on a "
        "random encoder",
        script="wild/simclr_ntxent.py",
    ),
    HealthyCase(
        POINTER,
        "dev",
        "Pointer Network sorting 10 random numbers generated fresh for every batch: LSTM "
        "encoder, LSTMCell decoder unrolled in Python, additive attention scores masked "
        "with -inf at the positions already pointed at (log_softmax rows holding -inf), "
        "teacher forcing by indexing the embeddings at the target positions, nll_loss over "
        "(batch*steps, positions), Adam with clip_grad_norm_ at 2; the loss falls from 1.5 "
        "(ln 10! / 10) to 0.04, most of it within the first 200 steps",
        script="wild/pointer_net_sort.py",
    ),
    HealthyCase(
        CORAL,
        "dev",
        "CORAL ordinal regression: 10 clinical features on natural scales standardised "
        "with training statistics, ReLU MLP into a shared nn.Linear(32, 1, bias=False) plus "
        "5 separate biases initialised decreasing, multi-label targets levels = (y > k) as "
        "floats, a hand-written loss summing 5 binary cross-entropies from F.logsigmoid "
        "(about 3.3 at the start, floor about 1.1, far from 0 and not ln 6), prediction by "
        "counting probabilities above 0.5, Adam over a shuffled DataLoader",
        script="wild/coral_ordinal.py",
    ),
    HealthyCase(
        DPSGD,
        "dev",
        "DP-SGD by hand: no optimizer object and no backward (.grad stays None), per-sample "
        "gradients by vmap(grad(...)) over functional_call on a detached params dict sharing "
        "the model's storage, clipping to norm 1 and Gaussian noise (sigma 1) on the sum, "
        "parameters updated in place under no_grad with lr 0.5; Poisson sampling makes the "
        "batch size vary from step to step around 256, the noise keeps the loss at about "
        "0.65 and it drifts up a little late in training while the accuracy still rises",
        script="wild/dpsgd_per_sample.py",
    ),
):
    register_healthy(case)


for fault in (
    # --- SimCLR ---------------------------------------------------------------------------
    Fault(
        "wild-simclr-ntxent-normalize-over-batch",
        SIMCLR,
        25,
        "test",
        "the projections are L2-normalised with F.normalize(..., dim=0), over the 2N samples "
        "of each coordinate, instead of dim=1, each projection to the unit sphere: the "
        "'cosine similarities' are products of columns scaled across the batch, so each "
        "sample's similarity depends on the rest of the batch and is tiny; the NT-Xent "
        "loss stays at 6.13 (ln 511 = 6.24) for the 12 epochs instead of falling to 4.73, "
        "and the linear probe scores 0.870 instead of 0.966 (seed 1: 0.832 instead of "
        "0.949; random encoder 0.64-0.67)",
        also=(22,),
        edits=(
            Edit(
                "z = F.normalize(torch.cat([z_i, z_j], dim=0), dim=1)",
                "z = F.normalize(torch.cat([z_i, z_j], dim=0), dim=0)",
            ),
        ),
    ),
    Fault(
        "wild-simclr-ntxent-identical-views",
        SIMCLR,
        3,
        "test",
        "the two views are made by list multiplication, [augment(images)] * 2, which "
        "augments once and uses the same tensor twice: every positive pair is identical, "
        "the task is solved by any instance-specific detail and the encoder learns no "
        "invariance; the loss drops quickly to 4.36 (lower than the healthy 4.73) while the "
        "linear probe scores 0.511 instead of 0.966 (seed 1: 0.572 instead of 0.949), "
        "below the random encoder's 0.65-0.67",
        also=(13,),
        edits=(
            Edit(
                "            x_i, x_j = [augment(images) for _ in range(2)]\n",
                "            x_i, x_j = [augment(images)] * 2\n",
            ),
        ),
    ),
    # --- Pointer Network ------------------------------------------------------------------
    Fault(
        "wild-pointer-net-sort-log-softmax-over-batch",
        POINTER,
        25,
        "dev",
        "the pointer distribution is F.log_softmax(scores, dim=0), over the 128 sequences "
        "of the batch, instead of dim=1, over the input positions: each pointer's "
        "probability is normalised against the same position in the other sequences, the "
        "NLL cannot fall below about 2.9 (it is 2.93 after 1,000 steps instead of 0.041) "
        "and greedy decoding sorts 0.738 of the held-out sequences exactly instead of "
        "0.924 (seed 1: 0.707 instead of 0.865)",
        also=(22,),
        edits=(
            Edit(
                "log_p = F.log_softmax(scores, dim=1)",
                "log_p = F.log_softmax(scores, dim=0)",
            ),
        ),
    ),
    Fault(
        "wild-pointer-net-sort-mask-not-assigned",
        POINTER,
        22,
        "dev",
        "scores.masked_fill(mask, -inf) is called without assigning its result (masked_fill "
        "is not in place), so positions already pointed at are never masked: the decoder "
        "must learn by itself not to point twice, the loss is 0.37 after 1,000 steps "
        "instead of 0.041 and greedy decoding repeats positions; exact sorts 0.384 instead "
        "of 0.924 (seed 1: 0.219 instead of 0.865), pointer accuracy 0.86 instead of 0.98",
        edits=(
            Edit(
                '            scores = scores.masked_fill(mask, float("-inf"))\n',
                '            scores.masked_fill(mask, float("-inf"))\n',
            ),
        ),
    ),
    # --- CORAL ----------------------------------------------------------------------------
    Fault(
        "wild-coral-ordinal-standardise-precedence",
        CORAL,
        12,
        "dev",
        "the standardisation is written x_train - mean / std (operator precedence) instead "
        "of (x_train - mean) / std: the features reach the MLP on their natural scales "
        "shifted by a constant (daily steps in the thousands next to bone density around "
        "1); the training is erratic and after 20 epochs the loss is 1.53 and the test MAE "
        "0.715 brackets instead of 1.11 and 0.517 (seed 1: 0.643 instead of 0.521; median "
        "baseline 1.47)",
        also=(1,),
        edits=(
            Edit(
                "x_train, x_test = (x_train - mean) / std, (x_test - mean) / std",
                "x_train, x_test = x_train - mean / std, x_test - mean / std",
            ),
        ),
    ),
    Fault(
        "wild-coral-ordinal-levels-off-by-one",
        CORAL,
        19,
        "dev",
        "levels_from_labelbatch compares the labels with torch.arange(1, num_classes) "
        "instead of torch.arange(num_classes - 1): the extended labels are y > k + 1, "
        "shifted by one rank, and the last binary task is always 0; the training loss even "
        "ends lower (0.92 instead of 1.11) but every prediction is one bracket too low, "
        "test MAE 0.951 instead of 0.517 and accuracy 0.28 instead of 0.54 (seed 1: 0.938 "
        "instead of 0.521)",
        also=(18,),
        edits=(
            Edit(
                "ranks = torch.arange(num_classes - 1, device=labels.device)",
                "ranks = torch.arange(1, num_classes, device=labels.device)",
            ),
        ),
    ),
    # --- DP-SGD ---------------------------------------------------------------------------
    Fault(
        "wild-dpsgd-per-sample-no-batch-division",
        DPSGD,
        36,
        "dev",
        "the noisy sum of the clipped per-sample gradients is not divided by the expected "
        "batch size before the update, p.sub_(lr * (summed + noise)): every step is about "
        "256 times too large; the loss on the training subset is in the hundreds from the "
        "second epoch (216 after 12 epochs, seed 1: 469) instead of 0.66, and the test "
        "accuracy is 0.207 (seed 1: 0.213), chance 0.2, instead of 0.878 (0.904)",
        also=(29,),
        edits=(
            Edit(
                "p.sub_(args.lr * (summed[name] + noise) / args.batch_size)",
                "p.sub_(args.lr * (summed[name] + noise))",
            ),
        ),
    ),
    Fault(
        "wild-dpsgd-per-sample-params-cloned",
        DPSGD,
        23,
        "dev",
        "the functional parameters are taken as v.detach().clone() instead of v.detach(): "
        "the hand-written updates go to the copies, which the per-sample gradients are "
        "computed on, but never reach the model that is evaluated; its parameters do not "
        "change in 936 steps, the training loss stays at its initial 1.623 (seed 1: 1.599; "
        "ln 5 = 1.609) and the test accuracy at 0.127 (seed 1: 0.243) instead of 0.878 "
        "(0.904)",
        edits=(
            Edit(
                "    params = {k: v.detach() for k, v in model.named_parameters()}",
                "    params = {k: v.detach().clone() for k, v in model.named_parameters()}",
            ),
        ),
    ),
):
    register_fault(fault)
