"""Wild cases, fourteenth set: setups unlike the ones nndoctor was tuned on, and real bugs in them.

The healthy scripts live in ``examples/wild/``, each in the manner of a well-known public
PyTorch training script (written here, not copied): Kim's CNN for sentence
classification in its CNN-static variant (a generated four-topic corpus, a fixed
"pretrained" word-vector table loaded by ``nn.Embedding.from_pretrained(...,
freeze=True)``, parallel ``Conv1d`` filters of widths 3, 4 and 5 with max-over-time
pooling, dropout 0.5, Adadelta at lr 1.0 and the max-norm constraint on the output
layer); a batched BiLSTM-CRF named-entity tagger after the PyTorch Bi-LSTM CRF tutorial
(BIO tags, ``<START>``/``<STOP>`` tags with pinned transitions, the forward algorithm
by ``logsumexp`` over a padding mask and the gold path's score written by hand, Viterbi
decoding, SGD with momentum and clipping, entity-level F1); and a toy translation task
with ``nn.Transformer`` in its default sequence-first layout after the PyTorch
translation tutorial (scaled token embeddings, sinusoidal positions, causal and padding
masks, teacher forcing, label smoothing, Adam with the Noam warm-up by ``LambdaLR`` per
step, greedy decoding). Each fault is one bug as it arrives in code in that style.

Names start with ``wild-``. Split: three scripts of the group of ten in ``wild_m.py`` to
``wild_p.py`` (the BiLSTM-CRF tagger, Prototypical Networks and the matrix factorisation),
with their faults, are ``test``, drawn at random (seed 20261204) before the first
measurement; the rest ``dev``.
"""

from __future__ import annotations

from nndoctor.faults.registry import Edit, Fault, HealthyCase, register_fault, register_healthy

KIM = "wild-kim-cnn-text"
CRF = "wild-bilstm-crf"
SEQ2SEQ = "wild-transformer-seq2seq"

for case in (
    HealthyCase(
        KIM,
        "dev",
        "Kim CNN-static sentence classifier: frozen pretrained embedding (requires_grad off "
        "by design), Conv1d widths 3/4/5 with ReLU and max-over-time pooling, dropout 0.5, "
        "Adadelta at lr 1.0 over the trainable parameters, output rows renormalised in "
        "place to L2 norm 3 after each step, 3% flipped labels",
        script="wild/kim_cnn_text.py",
    ),
    HealthyCase(
        CRF,
        "test",
        "batched BiLSTM-CRF NER: hand-written CRF negative log-likelihood per sentence "
        "(starts near 40, not a per-token loss), transitions into <START> and out of <STOP> "
        "pinned at -10000 that get no useful gradient, forward algorithm over a padding "
        "mask, Viterbi decoding, SGD momentum 0.9 with clipping, entity-level F1",
        script="wild/bilstm_crf.py",
    ),
    HealthyCase(
        SEQ2SEQ,
        "dev",
        "nn.Transformer seq2seq in the sequence-first layout (seq_len, batch): Adam at base "
        "lr 1.0 scaled by the Noam factor (peak 2.2e-3) per step, causal float mask with "
        "boolean padding masks, label smoothing 0.1 (the loss floor is well above 0), "
        "teacher forcing, greedy-decoding exact match on reversed-and-mapped sentences",
        script="wild/transformer_seq2seq.py",
    ),
):
    register_healthy(case)


for fault in (
    # --- Kim CNN --------------------------------------------------------------------------
    Fault(
        "wild-kim-cnn-text-adadelta-lr-from-adam",
        KIM,
        36,
        "dev",
        "the --lr default is 1e-3, the value usual for Adam, while the optimizer is "
        "Adadelta, whose rate multiplies an already scaled step and belongs near 1.0: the "
        "updates are a thousand times too small; after 8 epochs (960 steps) the loss is "
        "1.42 (ln 4 = 1.39) and the validation accuracy 0.267 instead of 0.108 and 0.944",
        also=(33, 34),
        edits=(
            Edit(
                'parser.add_argument("--lr", type=float, default=1.0)',
                'parser.add_argument("--lr", type=float, default=1e-3)',
            ),
        ),
    ),
    Fault(
        "wild-kim-cnn-text-view-for-permute",
        KIM,
        25,
        "dev",
        "the embedded batch (batch, length, emb) is brought to Conv1d's (batch, channels, "
        "length) by x.view(batch, emb, length) instead of x.permute(0, 2, 1): each 'channel' "
        "row is a slice of consecutive words' vectors, so the filters no longer see one "
        "word vector per position; after 8 epochs the training accuracy is 0.511 and the "
        "validation accuracy 0.311 instead of 0.966 and 0.944",
        also=(1, 22),
        edits=(
            Edit(
                "x = x.permute(0, 2, 1)  # (batch, emb, length) for Conv1d",
                "x = x.view(x.size(0), x.size(2), x.size(1))  # (batch, emb, length) for Conv1d",
            ),
        ),
    ),
    Fault(
        "wild-kim-cnn-text-sigmoid-on-class-scores",
        KIM,
        19,
        "dev",
        "forward returns torch.sigmoid(self.fc(...)), as a binary classifier would, while "
        "the loss stays nn.CrossEntropyLoss over four topics: the softmax of scores in "
        "(0, 1) gives the true topic at most e/(e + 3) = 0.475, so the loss cannot fall "
        "below log(1 + 3/e) = 0.744; after 8 epochs (seed 0) it is 0.803 instead of 0.108 "
        "and the training accuracy 0.947 instead of 0.967, while the validation accuracy is "
        "0.945 (healthy 0.940): the topics are still told apart, but no prediction is surer "
        "than 0.475 and the gradient fades as the sigmoid saturates",
        also=(18,),
        edits=(
            Edit(
                "        return self.fc(self.dropout(torch.cat(pooled, dim=1)))",
                "        return torch.sigmoid(self.fc(self.dropout(torch.cat(pooled, dim=1))))",
            ),
        ),
    ),
    # --- BiLSTM-CRF -----------------------------------------------------------------------
    Fault(
        "wild-bilstm-crf-logsumexp-over-next-tag",
        CRF,
        25,
        "test",
        "the forward algorithm reduces the (batch, next, prev) scores by logsumexp over "
        "dim=1, the next tag, instead of dim=2, the previous one: the result is indexed by "
        "the previous tag and the emissions are summed out, so the 'partition function' is "
        "no longer an upper bound of the gold score; the loss falls without limit (-4389 "
        "after 8 epochs) and the entity F1 is 0.000 instead of 0.981",
        also=(18, 21, 22),
        edits=(
            Edit(
                "next_var = torch.logsumexp(scores, dim=2)",
                "next_var = torch.logsumexp(scores, dim=1)",
            ),
        ),
    ),
    Fault(
        "wild-bilstm-crf-gold-transitions-transposed",
        CRF,
        18,
        "test",
        "the gold path's transition scores are read as transitions[prev, next] while the "
        "forward algorithm and Viterbi use the tutorial's transitions[next, prev]: the gold "
        "score takes every transition backwards, starting with the pinned -10000 of "
        "'into <START>', so the loss stays near 9,700 (0.19 healthy) and the transitions "
        "are trained for the reversed tag order; entity F1 after 8 epochs 0.889 instead of "
        "0.981",
        also=(21, 22),
        edits=(
            Edit(
                "trans = self.transitions[tags, prev_tags]",
                "trans = self.transitions[prev_tags, tags]",
            ),
        ),
    ),
    # --- nn.Transformer seq2seq -----------------------------------------------------------
    Fault(
        "wild-transformer-seq2seq-zero-grad-missing",
        SEQ2SEQ,
        26,
        "dev",
        "optimizer.zero_grad() is missing from the training loop: every Adam step uses the "
        "sum of all gradients so far; the training loss never falls below 3.5 (ln 28 = "
        "3.33) and greedy decoding gets 4-13% of the tokens and no sentence right after 8 "
        "epochs instead of 0.993 and 0.982",
        also=(36,),
        edits=(Edit("            optimizer.zero_grad()\n", ""),),
    ),
    Fault(
        "wild-transformer-seq2seq-pos-encoding-batch-first",
        SEQ2SEQ,
        25,
        "dev",
        "the positional encoding is the batch-first version, a (1, max_len, d_model) buffer "
        "sliced by token_embedding.size(1), on the sequence-first (seq_len, batch, d_model) "
        "embeddings: it broadcasts over the sequence and adds the code of each sentence's "
        "place in the batch to all its tokens, so no token knows its position; after 8 "
        "epochs the training loss is 1.82 instead of 0.89, greedy token accuracy 0.22 and "
        "exact match 0.014 instead of 0.993 and 0.982",
        also=(22,),
        edits=(
            Edit(
                "pos_embedding = pos_embedding.unsqueeze(-2)",
                "pos_embedding = pos_embedding.unsqueeze(0)",
            ),
            Edit(
                "self.pos_embedding[: token_embedding.size(0), :]",
                "self.pos_embedding[:, : token_embedding.size(1)]",
            ),
        ),
    ),
):
    register_fault(fault)
