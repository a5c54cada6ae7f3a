"""Wild cases, seventeenth set: setups unlike the ones nndoctor was tuned on, and real bugs in them.

The healthy scripts live in ``examples/wild/``, each in the manner of a well-known public
PyTorch training script (written here, not copied): a UCI wine-quality style tabular
regression (eleven physico-chemical columns generated on their natural scales and with
their usual correlations, integer tasters' scores 3 to 9, mostly 5 to 7, as float
targets; features standardised with the training split's statistics, an
``nn.Sequential`` ReLU MLP to one output, ``nn.MSELoss``, Adam + ``StepLR`` per epoch,
validation RMSE and the share of rounded predictions that hit the score); Deep Knowledge
Tracing after Piech et al. (simulated students with a hidden ability, topic strengths
and learning from practice on skills of hidden difficulty; ``pad_sequence`` with -1
padding in a ``collate_fn``, an ``nn.Embedding`` of the (skill, answer) interaction id,
``nn.LSTM(batch_first=True)`` to a sigmoid probability per skill, the next
interaction's skill gathered and ``nn.BCELoss`` on its answer over the non-padded
positions, Adam, next-answer AUC on held-out students); and the classic tutorial
"classifying names with a character-level RNN" (names generated from five invented
languages' syllable inventories, one-hot letters, a hand-written ``i2h``/``i2o`` cell
over the concatenated input and hidden state, ``LogSoftmax`` + ``NLLLoss``, one random
name at a time with the hidden state reset per name, parameters updated by hand after
``rnn.zero_grad()``, held-out accuracy). Each fault is one bug as it arrives in code in
that style.

Names start with ``wild-``. Split: four scripts of the group of thirteen in ``wild_q.py`` to
``wild_t.py`` (the GIN graph classifier, the attention GRU translator, SWA and Wide & Deep),
with their faults, are ``test``, drawn at random (seed 20261205) before the first
measurement; the rest ``dev``.
"""

from __future__ import annotations

from nndoctor.faults.registry import Edit, Fault, HealthyCase, register_fault, register_healthy

WINE = "wild-wine-quality-regression"
DKT = "wild-dkt-knowledge-tracing"
CHAR_RNN = "wild-char-rnn-names"

for case in (
    HealthyCase(
        WINE,
        "dev",
        "wine-quality regression: eleven features on very different natural scales "
        "standardised with the training split's statistics, integer scores 3-9 as float "
        "targets of shape (batch, 1) against an unbounded single output (the first loss "
        "is about 19, the mean score squared), ReLU MLP, MSELoss, Adam + StepLR(40, 0.5) "
        "per epoch, validation RMSE against the mean-score baseline and rounded hits",
        script="wild/wine_quality_regression.py",
    ),
    HealthyCase(
        DKT,
        "dev",
        "Deep Knowledge Tracing on simulated students: -1-padded variable-length logs, "
        "Embedding of skill + n_skills * answer, LSTM(batch_first=True), sigmoid output "
        "per skill of which only the next interaction's skill is gathered, BCELoss on "
        "the masked positions (a noisy task: the loss settles near 0.52), Adam, "
        "clip_grad_norm_, held-out next-answer AUC against per-skill success rates",
        script="wild/dkt_knowledge_tracing.py",
    ),
    HealthyCase(
        CHAR_RNN,
        "dev",
        "the char-RNN name classification tutorial: one-hot (length, 1, n_letters) "
        "names, hand-written i2h/i2o cell over torch.cat((input, hidden), 1), "
        "LogSoftmax(dim=1) + NLLLoss, batch size 1 with random examples, hidden state "
        "reset per name, no optimizer (p.data.add_ of the gradient after "
        "rnn.zero_grad()), 28,000 single-name updates, held-out accuracy",
        script="wild/char_rnn_names.py",
    ),
):
    register_healthy(case)


for fault in (
    # --- wine-quality regression ---------------------------------------------------------
    Fault(
        "wild-wine-quality-regression-target-shape-broadcast",
        WINE,
        19,
        "dev",
        "the training targets are built without .unsqueeze(1): MSELoss gets predictions "
        "of shape (64, 1) and targets of shape (64,), broadcasts them to (64, 64) (with "
        "only PyTorch's UserWarning) and asks every prediction to match every score of "
        "the batch, so the model learns to output the mean score whatever the wine; "
        "after 120 epochs the validation RMSE is 0.864 / 0.899 on seeds 0 / 1, the "
        "mean-score baseline (0.874), with 0.44-0.45 rounded hits (the share of 6s) "
        "instead of RMSE 0.530 / 0.544 and 0.66 hits",
        also=(25,),
        edits=(
            Edit(
                "y_train = torch.from_numpy(y_train).unsqueeze(1)",
                "y_train = torch.from_numpy(y_train)",
            ),
        ),
    ),
    Fault(
        "wild-wine-quality-regression-steplr-per-batch",
        WINE,
        36,
        "dev",
        "scheduler.step() is indented into the batch loop: StepLR(step_size=40, "
        "gamma=0.5) meant for epochs halves Adam's learning rate every 40 batches (62 "
        "batches an epoch), so it is below 1e-6 within the seventh epoch and the network "
        "stops before its output has even reached the mean score: training MSE stays at "
        "2.2 / 2.0 and the validation RMSE at 1.53 / 1.46 on seeds 0 / 1 (worse than "
        "the 0.87 of predicting the mean), 0.26 / 0.25 rounded hits, instead of RMSE "
        "0.530 / 0.544 and 0.66 hits",
        also=(33,),
        edits=(
            Edit(
                "            batches += 1\n        scheduler.step()\n",
                "            batches += 1\n            scheduler.step()\n",
            ),
        ),
    ),
    # --- Deep Knowledge Tracing -----------------------------------------------------------
    Fault(
        "wild-dkt-knowledge-tracing-pad-sequence-time-first",
        DKT,
        25,
        "dev",
        "the collate_fn calls pad_sequence without batch_first=True: batches come out as "
        "(time, students) while the LSTM is batch_first, so each 'sequence' is the batch's "
        "students at one time step and the one-step shift of the targets moves to the "
        "next student, whose answer no history informs; every shape still agrees (the "
        "mask is skills != -1) and the model learns only each skill's success rate: "
        "held-out AUC 0.715 / 0.751 on seeds 0 / 1, equal to the per-skill success "
        "rates (0.715 / 0.750), instead of 0.793 / 0.816; the training BCE stays at 0.60",
        also=(3,),
        edits=(
            Edit(
                "skills = pad_sequence([s for s, _ in batch], batch_first=True, padding_value=PAD)",
                "skills = pad_sequence([s for s, _ in batch], padding_value=PAD)",
            ),
            Edit(
                "answers = pad_sequence([a for _, a in batch], batch_first=True, "
                "padding_value=PAD)",
                "answers = pad_sequence([a for _, a in batch], padding_value=PAD)",
            ),
        ),
    ),
    Fault(
        "wild-dkt-knowledge-tracing-interaction-id-collision",
        DKT,
        1,
        "dev",
        "the interaction id is computed as skills + answers instead of skills + n_skills * "
        "answers: a right answer on skill k gets the same embedding row as a wrong answer "
        "on skill k + 1 (and half the rows are never used), so the LSTM cannot tell "
        "which skill was practised or how it went; held-out AUC 0.758 / 0.790 on seeds "
        "0 / 1 instead of 0.793 / 0.816 (per-skill success rates alone: 0.715 / 0.750), "
        "training BCE 0.553 instead of 0.519",
        also=(4,),
        edits=(
            Edit(
                "interaction = skills + self.n_skills * answers",
                "interaction = skills + answers",
            ),
        ),
    ),
    # --- char-RNN name classification -------------------------------------------------------
    Fault(
        "wild-char-rnn-names-logsoftmax-dim0",
        CHAR_RNN,
        19,
        "dev",
        "the cell's LogSoftmax is taken over dim=0, the batch axis of size 1, instead of "
        "dim=1, the languages: every log-probability is exactly 0, NLLLoss is 0 from the "
        "first iteration and every gradient is zero, so nothing is ever updated; the "
        "running loss prints 0.0000 throughout and every held-out name gets the same "
        "language: accuracy 0.200 (chance, 5 languages) after 28,000 iterations "
        "instead of 0.959",
        also=(25, 17, 23),
        edits=(
            Edit(
                "self.softmax = nn.LogSoftmax(dim=1)",
                "self.softmax = nn.LogSoftmax(dim=0)",
            ),
        ),
    ),
    Fault(
        "wild-char-rnn-names-letters-at-step-0",
        CHAR_RNN,
        1,
        "dev",
        "lineToTensor writes every letter into tensor[0][0] (the index of the "
        "one-letter letterToTensor copied) instead of tensor[li][0]: the first step "
        "gets a bag of the name's letters and every later step an all-zero vector, so "
        "the cell must carry the bag through as many empty steps as the name has "
        "letters, in no order; the running loss stays at 1.3-1.7 (ln 5 = 1.61) and "
        "the held-out accuracy is 0.289 / 0.271 on seeds 0 / 1 after 28,000 "
        "iterations instead of 0.959 / 0.954",
        also=(4,),
        edits=(
            Edit(
                "tensor[li][0][letterToIndex(letter)] = 1",
                "tensor[0][0][letterToIndex(letter)] = 1",
            ),
        ),
    ),
):
    register_fault(fault)
