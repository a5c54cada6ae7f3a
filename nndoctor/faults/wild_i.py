"""Wild cases, ninth set: setups unlike the ones nndoctor was tuned on, and real bugs in them.

The healthy scripts live in ``examples/wild/``, each in the manner of a well-known public
PyTorch training script (written here, not copied): probabilistic time-series
forecasting with a Transformer encoder in the sequence-first layout (``batch_first=False``,
a sinusoidal positional encoding added to a linear projection of the values, windows
standardised with the training part's statistics, a hand-written pinball loss for the
quantiles 0.1 / 0.5 / 0.9, AdamW with warm-up then cosine decay by ``LambdaLR``), and a
small decoder-only language model written like a Hugging Face causal LM without the
library (a config dataclass, a ``forward`` taking ``input_ids`` / ``attention_mask`` /
``labels`` and returning an output object whose loss is computed inside by shifting the
labels, activation checkpointing of the blocks, ``model(**batch)`` over padded dict
batches, AdamW with a linear warm-up). Each fault is one bug as it arrives in code in
that style.

Names start with ``wild-``; all cases and faults here are ``dev``.
"""

from __future__ import annotations

from nndoctor.faults.registry import Edit, Fault, HealthyCase, register_fault, register_healthy

TS_QUANTILE = "wild-ts-transformer-quantile"
GPT_KWARGS = "wild-gpt-kwargs-loop"

for case in (
    HealthyCase(
        TS_QUANTILE,
        "dev",
        "quantile forecasting of generated multi-seasonal series: windows standardised with "
        "the training part's statistics, Linear projection + sinusoidal positional encoding, "
        "TransformerEncoder(batch_first=False) on (seq, batch, d_model), hand-written pinball "
        "loss for 0.1/0.5/0.9, AdamW + warm-up/cosine LambdaLR per batch, clipping; 80% "
        "interval coverage and median MAE",
        script="wild/ts_transformer_quantile.py",
    ),
    HealthyCase(
        GPT_KWARGS,
        "dev",
        "Hugging Face-style tiny GPT without transformers: config dataclass, forward(input_ids=, "
        "attention_mask=, labels=) returning an output with .loss (labels shifted inside, -100 "
        "on padding) and .logits, checkpointed blocks in training, model(**batch) over a "
        "padding collate_fn, AdamW + linear warm-up/decay, held-out perplexity",
        script="wild/gpt_kwargs_loop.py",
    ),
):
    register_healthy(case)


for fault in (
    # --- Transformer quantile forecasting -----------------------------------------------
    Fault(
        "wild-ts-transformer-quantile-pinball-error-reversed",
        TS_QUANTILE,
        18,
        "dev",
        "the pinball loss takes its error as prediction minus target instead of target minus "
        "prediction: every output q is trained toward the 1-q quantile, so the 'q0.1' output "
        "sits above the 'q0.9' one; the median still learns (MAE 2.04 against 1.95) but the "
        "80% interval is inverted and its validation coverage is 0.000 instead of 0.805",
        also=(21,),
        edits=(
            Edit(
                "errors = target.unsqueeze(-1) - pred",
                "errors = pred - target.unsqueeze(-1)",
            ),
        ),
    ),
    Fault(
        "wild-ts-transformer-quantile-view-for-transpose",
        TS_QUANTILE,
        25,
        "dev",
        "the training batch is brought to the sequence-first layout with "
        "x.view(seq_len, batch, 1) instead of x.transpose(0, 1): the values of different "
        "windows are interleaved along time, each 'sequence' mixes 64 windows; the training "
        "pinball loss stalls at 0.252 (healthy: 0.125) and the validation median MAE is "
        "4.77 (healthy: 1.95), worse than the seasonal-naive forecast's 4.48",
        also=(1, 4),
        edits=(
            Edit(
                "src = x.transpose(0, 1).unsqueeze(-1).to(device)  # (seq_len, batch, 1)",
                "src = x.view(x.size(1), x.size(0), 1).to(device)  # (seq_len, batch, 1)",
            ),
        ),
    ),
    # --- Hugging Face-style causal language model ---------------------------------------
    Fault(
        "wild-gpt-kwargs-loop-labels-shifted-twice",
        GPT_KWARGS,
        3,
        "dev",
        "the collate_fn already shifts the labels one step left (input_ids.roll(-1)) while "
        "the model shifts them again in forward: every position is trained to predict the "
        "token two steps ahead; the printed held-out perplexity (on the same shifted labels) "
        "ends at 6.72 instead of 5.25, and the model's true next-token perplexity is 903",
        also=(4, 18),
        edits=(
            Edit(
                "labels = input_ids.masked_fill(attention_mask == 0, -100)",
                "labels = input_ids.roll(-1, dims=1).masked_fill(attention_mask == 0, -100)",
            ),
        ),
    ),
    Fault(
        "wild-gpt-kwargs-loop-scheduler-not-stepped",
        GPT_KWARGS,
        36,
        "dev",
        "lr_scheduler.step() is missing from the loop: the linear warm-up's factor stays at "
        "its step-0 value 0, so AdamW steps with lr 0 and no weight ever changes; the "
        "training loss stays at 3.94 (ln 50 = 3.91) and the held-out perplexity at 51.6 "
        "(healthy: 5.25)",
        also=(23,),
        edits=(Edit("            lr_scheduler.step()\n", ""),),
    ),
):
    register_fault(fault)
