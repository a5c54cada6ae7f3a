"""Wild cases, second set: setups unlike the ones nndoctor was tuned on, and real bugs in them.

The healthy scripts live in ``examples/wild/``, each in the manner of a well-known public
PyTorch training script (written here, not copied): REINFORCE on a cart-pole written in
the script (the data made by the policy itself, one episode per step), a Transformer
text classifier trained with Hugging Face Accelerate (``prepare``, ``accumulate``,
``accelerator.backward``, a warm-up schedule, a padding mask, ``gather`` at evaluation),
a WaveNet on mu-law quantised audio (dilated causal convolutions, gated activations,
residual and skip paths, logits shaped (batch, classes, time)), and a multi-task MLP with
a classification head and a regression head under one summed loss. Each fault is one bug
as it arrives in code in that style.

Names start with ``wild-``; all cases and faults here are ``dev``.
"""

from __future__ import annotations

from nndoctor.faults.registry import Edit, Fault, HealthyCase, register_fault, register_healthy

REINFORCE = "wild-reinforce"
ACCELERATE = "wild-accelerate"
WAVENET = "wild-wavenet"
MULTITASK = "wild-multitask"

for case in (
    HealthyCase(
        REINFORCE,
        "dev",
        "REINFORCE on a hand-written cart-pole: softmax policy MLP, Categorical sampling, "
        "discounted returns normalised per episode, -(log_prob * return).sum(), Adam, one "
        "episode per step",
        script="wild/reinforce_policy.py",
    ),
    HealthyCase(
        ACCELERATE,
        "dev",
        "Accelerate loop: TransformerEncoder(batch_first) text classifier with a padding mask "
        "and masked mean pooling, accumulate(model) over 2 batches, accelerator.backward, "
        "AdamW + linear warm-up schedule, gather at evaluation",
        script="wild/accelerate_classifier.py",
    ),
    HealthyCase(
        WAVENET,
        "dev",
        "WaveNet on 64-class mu-law audio: one-hot input, dilated causal Conv1d stack with "
        "gated tanh*sigmoid, residual and skip 1x1 convs, CE on (batch, classes, time) logits "
        "against the next sample, Adam",
        script="wild/wavenet_mulaw.py",
    ),
    HealthyCase(
        MULTITASK,
        "dev",
        "shared LayerNorm MLP trunk, classification head (CE) and regression head (MSE on a "
        "standardised target), loss ce + 0.5 * mse, AdamW, CosineAnnealingLR per epoch",
        script="wild/multitask_heads.py",
    ),
):
    register_healthy(case)


for fault in (
    # --- REINFORCE on a cart-pole -------------------------------------------------------
    Fault(
        "wild-reinforce-returns-not-reversed",
        REINFORCE,
        18,
        "dev",
        "the returns are accumulated from the last reward backwards but appended, not "
        "prepended: the list stays reversed, so the first actions are paired with the "
        "returns of the last ones and the moves just before the pole falls are reinforced",
        also=(3, 4),
        edits=(Edit("        returns.appendleft(R)\n", "        returns.append(R)\n"),),
    ),
    Fault(
        "wild-reinforce-log-prob-sign",
        REINFORCE,
        18,
        "dev",
        "the policy loss is log_prob * return without the minus sign: gradient descent "
        "lowers the probability of the actions that kept the pole up",
        also=(21,),
        edits=(Edit("policy_loss.append(-log_prob * R)", "policy_loss.append(log_prob * R)"),),
    ),
    # --- Accelerate Transformer classifier ----------------------------------------------
    Fault(
        "wild-accelerate-padding-mask-inverted",
        ACCELERATE,
        4,
        "dev",
        "the Hugging Face attention_mask (1 = real token) is passed as PyTorch's "
        "src_key_padding_mask (True = ignore): each token attends only to the padding, "
        "whose amount depends on the other sequences of the batch, and a sequence without "
        "padding has every key masked; the words reach the head only through the residual path",
        also=(1, 25),
        edits=(
            Edit(
                "src_key_padding_mask=attention_mask == 0",
                "src_key_padding_mask=attention_mask.bool()",
            ),
        ),
    ),
    Fault(
        "wild-accelerate-lr-x1000",
        ACCELERATE,
        36,
        "dev",
        "AdamW learning rate 1.0 instead of 1e-3 (reached after the short warm-up)",
        also=(35,),
        edits=(Edit('"--lr", type=float, default=1e-3', '"--lr", type=float, default=1.0'),),
    ),
    # --- WaveNet on mu-law audio --------------------------------------------------------
    Fault(
        "wild-wavenet-targets-not-shifted",
        WAVENET,
        3,
        "dev",
        "the training targets are batch[:, :-1], the inputs themselves, instead of "
        "batch[:, 1:]: every output sees the sample it predicts and learns to copy it",
        also=(4, 21),
        edits=(
            Edit(
                "inputs, targets = batch[:, :-1], batch[:, 1:]",
                "inputs, targets = batch[:, :-1], batch[:, :-1]",
            ),
        ),
    ),
    Fault(
        "wild-wavenet-padding-on-the-right",
        WAVENET,
        22,
        "dev",
        "the causal convolution pads on the right instead of the left: each output sees "
        "later samples, the next one among them, so the model reads the answer",
        also=(3, 25),
        edits=(
            Edit(
                "F.pad(x, (self.left_pad, 0))",
                "F.pad(x, (0, self.left_pad))",
            ),
        ),
    ),
    # --- multi-task MLP -----------------------------------------------------------------
    Fault(
        "wild-multitask-target-unstandardised",
        MULTITASK,
        20,
        "dev",
        "the regression target is left in currency units (mean about 400): the MSE term is "
        "about 10^5 times the cross-entropy and the classification head gets no say",
        also=(12, 18),
        edits=(Edit("spend_z = (spend - y_mean) / y_std", "spend_z = spend"),),
    ),
    Fault(
        "wild-multitask-sigmoid-regression-head",
        MULTITASK,
        18,
        "dev",
        "the regression head's output goes through a sigmoid: predictions of a standardised "
        "target are confined to (0, 1) and saturate",
        also=(19, 35),
        edits=(
            Edit(
                "self.reg_head(h).squeeze(-1)",
                "torch.sigmoid(self.reg_head(h)).squeeze(-1)",
            ),
        ),
    ),
):
    register_fault(fault)
