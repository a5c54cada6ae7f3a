"""The loss tape records the calls from a model output to the loss and replays them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch
import torch.nn.functional as F

from nndoctor.probes.tape import Tape, TapeError, TapeRecorder


def record(
    loss_of: Callable[[Any], torch.Tensor], output: Any, *, unscaled: bool = False
) -> tuple[Tape, list[torch.Tensor], torch.Tensor]:
    """Record ``loss_of(output)`` as a tape (as the probe does between a model's forward
    and the step's backward pass)."""
    recorder = TapeRecorder(lambda: False)
    recorder.start(output)
    try:
        loss = loss_of(output)
    finally:
        recorder.abort("test over")  # the mode is off even when the loss raised
    recorder.failure = None if recorder.failure == "test over" else recorder.failure
    if unscaled:
        scaled, inner = loss
        tape, leaves = recorder.finish(scaled, inner)
        return tape, leaves, inner
    tape, leaves = recorder.finish(loss)
    return tape, leaves, loss


def replays(loss_of: Callable[[Any], torch.Tensor], output: Any, other: Any) -> None:
    """The tape gives back the recorded loss, and the loss of another output too."""
    tape, leaves, loss = record(loss_of, output)
    assert torch.equal(tape.replay([output], leaves), loss)
    assert torch.allclose(tape.replay([other], leaves), loss_of(other), rtol=1e-6)


g = torch.Generator().manual_seed(0)
LOGITS = torch.randn(8, 5, generator=g, requires_grad=True)
OTHER = torch.randn(8, 5, generator=g, requires_grad=True)
Y = torch.randint(0, 5, (8,), generator=g)


def test_log_softmax_then_nll() -> None:
    replays(lambda out: F.nll_loss(F.log_softmax(out, 1), Y), LOGITS, OTHER)


def test_a_slice_and_reshape_before_cross_entropy() -> None:
    seq = torch.randn(4, 6, 5, generator=g, requires_grad=True)
    other = torch.randn(4, 6, 5, generator=g)
    tokens = torch.randint(0, 5, (4, 5), generator=g)
    replays(lambda out: F.cross_entropy(out[:, :-1].reshape(-1, 5), tokens.reshape(-1)), seq, other)


def test_cross_entropy_plus_an_auxiliary_mse_of_a_second_output() -> None:
    aux, aux_other = torch.randn(8, 1, generator=g), torch.randn(8, 1, generator=g)
    target = torch.randn(8, generator=g)
    replays(
        lambda out: F.cross_entropy(out[0], Y) + 0.5 * F.mse_loss(out[1].squeeze(1), target),
        (LOGITS, aux),
        (OTHER, aux_other),
    )


def test_a_hand_written_dice_loss() -> None:
    mask = torch.randint(0, 5, (8,), generator=g)

    def dice(out: torch.Tensor) -> torch.Tensor:
        probs = out.softmax(1)
        onehot = F.one_hot(mask, 5).float()
        inter = (probs * onehot).sum(0)
        return 1 - ((2 * inter + 1) / (probs.sum(0) + onehot.sum(0) + 1)).mean()

    replays(dice, LOGITS, OTHER)


def test_mixup_with_a_permutation_index_leaf() -> None:
    perm, lam = torch.randperm(8, generator=g), 0.3

    def mixup(out: torch.Tensor) -> torch.Tensor:
        return lam * F.cross_entropy(out, Y) + (1 - lam) * F.cross_entropy(out, Y[perm])

    tape, leaves, _ = record(mixup, LOGITS)
    assert any(torch.equal(leaf, perm) for leaf in leaves)  # the index is a leaf, kept
    replays(mixup, LOGITS, OTHER)


def test_a_grad_scaler_like_scaling_is_replayed_or_cut_off() -> None:
    scale = torch.tensor(1024.0)
    replays(lambda out: F.cross_entropy(out, Y) * scale, LOGITS, OTHER)
    # Told which tensor was the loss before scaling (GradScaler.scale), the tape ends there.
    tape, leaves, inner = record(
        lambda out: (lambda loss: (loss * scale, loss))(F.cross_entropy(out, Y)),
        LOGITS,
        unscaled=True,
    )
    assert torch.equal(tape.replay([LOGITS], leaves), inner)


def test_replays_never_change_the_stored_leaves() -> None:
    target = torch.randn(8, 5, generator=g)

    def in_place(out: torch.Tensor) -> torch.Tensor:
        t = target.clone()
        t.mul_(2)
        return (out - t).pow(2).mean()

    tape, leaves, loss = record(in_place, LOGITS)
    before = [leaf.clone() for leaf in leaves]
    for _ in range(2):
        assert torch.equal(tape.replay([LOGITS], leaves), loss)
    assert all(torch.equal(a, b) for a, b in zip(before, leaves, strict=True))


def test_the_steps_computed_differently_have_different_signatures() -> None:
    plain, _, _ = record(lambda out: F.cross_entropy(out, Y), LOGITS)
    again, _, _ = record(lambda out: F.cross_entropy(out, Y), OTHER)
    extra, _, _ = record(lambda out: F.cross_entropy(out, Y) + out.pow(2).mean(), LOGITS)
    assert plain.signature() == again.signature()
    assert plain.signature() != extra.signature()


def test_a_random_call_in_the_loss_stands_down() -> None:
    with pytest.raises(TapeError, match="not the script's"):
        record(lambda out: F.cross_entropy(F.dropout(out, 0.5), Y), LOGITS)


def test_a_loss_from_parameters_outside_the_model_output_stands_down() -> None:
    weight = torch.randn(5, requires_grad=True)
    with pytest.raises(TapeError, match="requires gradients"):
        record(lambda out: F.cross_entropy(out, Y) + weight.pow(2).sum(), LOGITS)
