"""Reading a crashed script's traceback: the likely cause and its reasons.

A script that dies before nndoctor could observe a step still deserves a
diagnosis: most early crashes are shape, dtype or range errors at the loss or
inside the model, and the exception text says which.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_LOSS_FRAMES = ("torch/nn/functional.py", "torch/nn/modules/loss.py")


@dataclass(frozen=True)
class CrashDiagnosis:
    cause: str
    reasons: tuple[int, ...]


# (pattern in the exception text, needs a loss frame, cause, reasons); first match wins.
_RULES: tuple[tuple[str, bool | None, str, tuple[int, ...]], ...] = (
    (
        r"Target -?\d+ is out of bounds|out of bounds",
        True,
        "a class target outside 0..C-1 reached the loss (wrong number of classes or label encoding)",
        (19,),
    ),
    (
        r"expected scalar type Long|expected .*Long|Expected object of scalar type Long|"
        r"\"nll_loss.*\" not implemented for 'Float'|not implemented for 'Float'",
        True,
        "the class target has the wrong dtype for the loss (CrossEntropy/NLL need int64 class indices)",
        (19,),
    ),
    (
        r"should be between 0 and 1|all elements of input should be between",
        True,
        "a loss expecting probabilities (BCELoss) received raw logits",
        (19,),
    ),
    (
        r"size|shape|dimension|Expected input batch_size",
        True,
        "a shape error inside the loss call: output and target shapes do not match",
        (19, 25),
    ),
    (
        r"expected input\[.*\] to have \d+ channels|to have \d+ channels, but got",
        None,
        "the input's channel axis does not match the first convolution (channel order or preprocessing)",
        (1, 25),
    ),
    (
        r"mat1 and mat2 shapes cannot be multiplied|size mismatch|shape .* is invalid for input of size|"
        r"must match the size of tensor",
        None,
        "a shape error inside the model: a layer's expected size does not match its input (flatten/view/reshape)",
        (25,),
    ),
    (
        r"does not require grad and does not have a grad_fn",
        None,
        "backward() on a loss with no gradient path to any trainable parameter (everything frozen or detached)",
        (23, 18),
    ),
    (
        r"backward through the graph a second time|saved tensors after they have already been freed",
        None,
        "a graph freed by an earlier backward() is back-propagated again: a tensor shared by two "
        "losses (a GAN's generated batch not detached for the discriminator's step, a hidden state "
        "carried over from the last batch without .detach())",
        (18, 26),
    ),
    (
        r"modified by an inplace operation",
        None,
        "a tensor the backward pass needs was changed in place after it was used (x += ..., "
        "relu(inplace=True) on a value saved for the gradient, an optimizer step between a loss "
        "and its backward)",
        (22, 26),
    ),
    (
        r"out of memory",
        None,
        "the GPU ran out of memory: reduce the batch size or the model",
        (11,),
    ),
    (r"nan|inf", None, "a non-finite value was detected", (37,)),
    (
        r"expected .* dtype|Expected .* but found",
        None,
        "mismatched dtypes between input and model (e.g. float64 data into a float32 model, or uint8 images)",
        (1,),
    ),
)


def diagnose_crash(error_text: str, traceback_text: str | None) -> CrashDiagnosis | None:
    """The likely cause of a crash, judged from its message and where it happened."""
    in_loss = bool(traceback_text) and any(f in traceback_text for f in _LOSS_FRAMES)
    for pattern, needs_loss, cause, reasons in _RULES:
        if needs_loss is True and not in_loss:
            continue
        if re.search(pattern, error_text, flags=re.IGNORECASE):
            return CrashDiagnosis(cause, reasons)
    return None
