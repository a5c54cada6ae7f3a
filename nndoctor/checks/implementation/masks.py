"""An attention padding mask with its convention inverted (reasons 4, 1)."""

from __future__ import annotations

from nndoctor.checks import causes
from nndoctor.checks.registry import CheckContext, register_check
from nndoctor.report.model import Where


@register_check(
    id="padding-mask-inverted",
    reasons=(4, 1),
    severity="error",
    explains=causes.FIT_SYMPTOMS | causes.LABEL_SYMPTOMS,
)
def padding_mask_inverted(ctx: CheckContext) -> None:
    """The attention's key padding mask ignores the real tokens and attends to the padding.

    Why it matters:
        Hugging Face's ``attention_mask`` is 1 for real tokens and 0 for padding; PyTorch's
        ``key_padding_mask`` / ``src_key_padding_mask`` is True where a key is to be
        *ignored*. Passing one where the other is meant (``attention_mask.bool()``) makes
        every attention read the padding only: the model's output no longer depends on
        the text, and a sequence without padding has every key masked (NaN).

    What is measured:
        At the first observed steps, the first key padding mask an ``nn.MultiheadAttention``
        receives in a training forward (directly, or through ``nn.Transformer*`` layers) is
        laid over the model's token ids of the same shape. Padding is one id repeated; real
        text is many. The check fires when, in at least ``padding_mask_min_steps`` (2)
        steps, the attended positions all hold a single id while the ignored positions
        hold at least ``padding_mask_min_ids`` (3) distinct ones: the mask marks the text
        as padding.

    How to fix:
        Pass ``key_padding_mask = attention_mask == 0`` (True at the padding), or invert a
        boolean mask with ``~``.

    Example:
        Before::

            h = self.encoder(x, src_key_padding_mask=attention_mask.bool())

        After::

            h = self.encoder(x, src_key_padding_mask=attention_mask == 0)
    """
    t = ctx.thresholds
    calls = [(s, c) for s in ctx.recording.steps for c in s.padding_masks]
    if not calls:
        ctx.skip("no attention was given a key padding mask the shape of the model's token ids")
    inverted = [
        (s, c)
        for s, c in calls
        if c.attended and c.attended_ids == 1 and c.ignored_ids >= t.padding_mask_min_ids
    ]
    ctx.note(
        f"{len(inverted)} of {len(calls)} observed step(s) attend only to positions holding one "
        "id while ignoring many"
    )
    if len(inverted) < t.padding_mask_min_steps:
        return
    step, call = inverted[0]
    ctx.finding(
        "The attention padding mask is inverted: the text is masked, the padding attended",
        f"At step {step.step} the key padding mask given to {call.module or 'the attention'} "
        f"ignores {call.ignored} positions holding {call.ignored_ids} distinct token ids and "
        f"attends to {call.attended} positions that all hold one id, the padding ({len(inverted)} "
        f"of {len(calls)} observed steps alike). PyTorch masks the keys where the mask is "
        "True: this looks like a Hugging Face attention_mask (1 = real token) passed as is.",
        "Pass key_padding_mask = attention_mask == 0 (True at the padding).",
        where=Where(module=call.module or None, step=step.step),
        evidence={
            "ignored_positions": call.ignored,
            "ignored_ids": call.ignored_ids,
            "attended_positions": call.attended,
            "attended_ids": call.attended_ids,
            "steps": [s.step for s, _ in inverted],
        },
    )
