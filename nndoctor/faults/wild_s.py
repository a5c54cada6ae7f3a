"""Wild cases, nineteenth set: setups unlike the ones nndoctor was tuned on, and real bugs in them.

The healthy scripts live in ``examples/wild/``, each in the manner of a well-known public
PyTorch training script (written here, not copied): the PyTorch tutorial's sequence to
sequence translation with attention on a generated language pair with reordering (GRU
encoder, Bahdanau additive attention with the source padding masked out, SOS/EOS tokens,
teacher forcing drawn per batch with a ratio of 0.5, ``NLLLoss`` over ``log_softmax``
outputs, separate encoder and decoder Adam optimizers, greedy-decoding accuracy); a
Temporal Convolutional Network on the adding problem after the repository of Bai et al.
(causal dilated ``Conv1d`` with ``Chomp1d``, weight norm, residual blocks, channels-first
input, unshuffled manual batches, ``F.mse_loss``, clipping, Adam, test MSE against
answering 1); and Contrastive Predictive Coding on generated "speaker" signals (strided
``Conv1d`` + BatchNorm encoder, GRU context, one linear predictor per step ahead, InfoNCE
against the other sequences and steps of the batch, then a linear probe on frozen,
time-averaged contexts). Each fault is one bug as it arrives in code in that style.

Names start with ``wild-``. Split: four scripts of the group of thirteen in ``wild_q.py`` to
``wild_t.py`` (the GIN graph classifier, the attention GRU translator, SWA and Wide & Deep),
with their faults, are ``test``, drawn at random (seed 20261205) before the first
measurement; the rest ``dev``.
"""

from __future__ import annotations

from nndoctor.faults.registry import Edit, Fault, HealthyCase, register_fault, register_healthy

TRANSLATE = "wild-bahdanau-gru-translate"
TCN = "wild-tcn-adding-problem"
CPC = "wild-cpc-infonce"

for case in (
    HealthyCase(
        TRANSLATE,
        "test",
        "GRU encoder and Bahdanau-attention GRU decoder on a generated language pair with "
        "reordering: padded TensorDataset, source padding masked in the attention, decoder "
        "unrolled step by step with teacher forcing drawn per batch (ratio 0.5, its own "
        "detached guesses otherwise), log_softmax into NLLLoss(ignore_index=PAD), two Adam "
        "optimizers (encoder, decoder), greedy-decoding token accuracy and exact match",
        script="wild/bahdanau_gru_translate.py",
    ),
    HealthyCase(
        TCN,
        "dev",
        "TCN on the adding problem (length 100): causal dilated Conv1d trimmed by Chomp1d, "
        "weight_norm parametrization, residual blocks with a 1x1 downsample, channels-first "
        "input, the last time step to a linear head, unshuffled manual slicing, F.mse_loss "
        "on (N, 1) targets, clip_grad_norm_(1.0), Adam 4e-3; the loss sits on the 1/6 "
        "plateau for a few hundred steps before it falls",
        script="wild/tcn_adding_problem.py",
    ),
    HealthyCase(
        CPC,
        "dev",
        "Contrastive Predictive Coding on generated speaker signals: strided Conv1d + "
        "BatchNorm encoder transposed to (batch, time, channels), GRU context, ModuleList of "
        "4 step-ahead linear predictors, InfoNCE by cross-entropy over 512 candidates "
        "(other sequences and steps of the batch; it starts near ln 512), Adam; then a "
        "linear probe on frozen time-averaged contexts, next to a random-encoder probe",
        script="wild/cpc_infonce.py",
    ),
):
    register_healthy(case)


for fault in (
    # --- GRU seq2seq with Bahdanau attention --------------------------------------------
    Fault(
        "wild-bahdanau-gru-translate-softmax-into-nllloss",
        TRANSLATE,
        19,
        "test",
        "the decoder ends with F.softmax where F.log_softmax was meant, and the "
        "probabilities go into NLLLoss, which takes log-probabilities: the loss is minus "
        "the probability of the right word, bounded and with vanishing gradients for "
        "confident mistakes; after 6 epochs the loss is -0.40 and greedy decoding gets "
        "0.406 of the tokens and no sentence right (healthy, seeds 0-2: 1.000 of the "
        "tokens, every sentence exact)",
        also=(18,),
        edits=(
            Edit(
                "decoder_outputs = F.log_softmax(decoder_outputs, dim=-1)",
                "decoder_outputs = F.softmax(decoder_outputs, dim=-1)",
            ),
        ),
    ),
    Fault(
        "wild-bahdanau-gru-translate-attention-mask-inverted",
        TRANSLATE,
        37,
        "test",
        "the attention fills the scores with -inf where the source mask is True, i.e. on "
        "the real words (the mask means 'keep', not 'pad'): the decoder may attend only to "
        "padding, and a source sentence of full length has every position masked, whose "
        "softmax is NaN; the first batch already holds one, the loss is nan from the first "
        "step, every weight turns NaN and greedy token accuracy is 0.000 after 6 epochs "
        "(healthy 1.000)",
        also=(22,),
        edits=(
            Edit(
                'scores = scores.masked_fill(~mask.unsqueeze(1), float("-inf"))',
                'scores = scores.masked_fill(mask.unsqueeze(1), float("-inf"))',
            ),
        ),
    ),
    # --- TCN, adding problem -------------------------------------------------------------
    Fault(
        "wild-tcn-adding-problem-target-shape-broadcast",
        TCN,
        19,
        "dev",
        "the vectorised target is built without .unsqueeze(1): Y is (N,) while the model "
        "returns (N, 1), and F.mse_loss broadcasts them to (batch, batch) (with only a "
        "UserWarning), so every prediction is fitted to every target of the batch; the "
        "model learns the batch mean: after 3 epochs its predictions spread by 0.004 and "
        "the true test MSE is 0.165, the 0.1635 of always answering 1 (healthy, seeds 0-2: "
        "0.0015 / 0.0007 / 0.0017)",
        also=(25, 18),
        edits=(
            Edit(
                "Y = (X_num[rows, 0, first] + X_num[rows, 0, second]).unsqueeze(1)  # (N, 1)",
                "Y = X_num[rows, 0, first] + X_num[rows, 0, second]",
            ),
        ),
    ),
    Fault(
        "wild-tcn-adding-problem-chomp-wrong-side",
        TCN,
        22,
        "dev",
        "Chomp1d cuts the padding off the left end (x[:, :, chomp_size:]) instead of the "
        "right: every convolution looks ahead instead of back, so the output at the last "
        "time step, the one the head reads, sees only the last input step and zero "
        "padding, never the two marked numbers; the test MSE stays on the plateau, 0.164 "
        "after 3 epochs against 0.1635 for always answering 1 (healthy 0.0015)",
        also=(2,),
        edits=(
            Edit(
                "return x[:, :, : -self.chomp_size].contiguous()",
                "return x[:, :, self.chomp_size :].contiguous()",
            ),
        ),
    ),
    # --- Contrastive Predictive Coding ---------------------------------------------------
    Fault(
        "wild-cpc-infonce-view-for-transpose",
        CPC,
        25,
        "dev",
        "the encoder output (batch, channels, steps) is reshaped with .view(batch, steps, "
        "channels) instead of .transpose(1, 2): each 'step' the GRU reads holds two "
        "channels over the whole utterance, so the context already contains the 'future' "
        "it is asked to predict; the held-out InfoNCE accuracy rises to 0.834 (healthy "
        "0.563) while the linear probe on the features falls to 0.265 (healthy, seeds "
        "0-2: 0.971 / 0.988 / 0.979; chance 0.125)",
        also=(21,),
        edits=(
            Edit(
                "z = z.transpose(1, 2)  # (batch, steps, z_dim)",
                "z = z.view(z.size(0), z.size(2), z.size(1))  # (batch, steps, z_dim)",
            ),
        ),
    ),
    Fault(
        "wild-cpc-infonce-probe-features-shuffled",
        CPC,
        4,
        "dev",
        "the feature-extraction DataLoader is built with shuffle=True, copied from the "
        "training loader: the probe's features come out in a random order while its "
        "labels stay in order, so the linear probe is trained and scored on features "
        "paired with other utterances' speakers; CPC itself trains as before (held-out "
        "InfoNCE accuracy 0.563) but the probe accuracy is 0.119, chance, instead of 0.971",
        also=(3,),
        edits=(
            Edit(
                "loader = DataLoader(TensorDataset(x), batch_size=batch_size)",
                "loader = DataLoader(TensorDataset(x), batch_size=batch_size, shuffle=True)",
            ),
        ),
    ),
):
    register_fault(fault)
