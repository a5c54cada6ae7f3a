"""The loss tape: the torch calls from a model's output to the tensor back-propagated.

A captured step's loss may be anything built from the model output: a recognised loss of
a transformed output, several terms summed, a hand-written loss. To train copies of the
model with the user's exact loss, the calls between the model's output and the
``backward()`` of the step are recorded as a :class:`Tape` and replayed later on a copy's
output with the batch's own constants (:meth:`Tape.replay`).

Recording is a ``TorchFunctionMode`` (:class:`TapeRecorder`): while the mode handles a call
it is not re-entered, so ``F.cross_entropy`` is one entry, not the ops inside it. A call is
recorded when one of its tensor arguments is a tape value (a model output of this step, or
a result of a recorded call); every other tensor argument is a *leaf* (targets, masks,
class weights, a mixup permutation), kept by reference, detached. Python scalars (a
``.item()``) are constants. Once the step's backward pass comes, the tape is cut down to
the calls the loss depends on and replayed once on the real output: a tape that does not
give back the loss the script back-propagated (a random op, a leaf changed in place, a
step too long) is dropped, with the reason, and nothing is guessed.

Nothing here may break the user's run: every piece of bookkeeping is guarded, the user's
own call always runs as it would without the mode, and the verifying replay runs with the
random number generators forked.
"""

from __future__ import annotations

import dataclasses
import math
import sys
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.overrides import TorchFunctionMode
from torch.utils import _pytree as pytree

from nndoctor.trees import tensors

# Recorded calls beyond this stop the tape: a loss this long is a program, not a formula
# (a loop over time steps, an environment rollout), and replaying it per step would cost
# as much as the script.
MAX_TAPE_CALLS = 200
# The replayed loss on the real output agrees with the back-propagated one within this
# relative tolerance (reductions on a device may add in another order).
REPLAY_RTOL = 1e-4

# Losses whose call on the tape tells the task (see nndoctor.capture.subject.task_from_loss).
_RECOGNISED = frozenset(
    {
        "cross_entropy",
        "nll_loss",
        "binary_cross_entropy",
        "binary_cross_entropy_with_logits",
        "mse_loss",
        "l1_loss",
        "smooth_l1_loss",
        "huber_loss",
        "kl_div",
        "multilabel_soft_margin_loss",
        "poisson_nll_loss",
        "gaussian_nll_loss",
    }
)


_IN_PLACE_DUNDERS = frozenset(
    {"__setitem__"}
    | {
        f"__i{op}__"
        for op in ("add sub mul matmul truediv floordiv mod pow and or xor lshift rshift".split())
    }
)
# Calls noted before pruning (metrics and prints beside the loss included) beyond this stop
# the tape too: they are held until the backward pass.
MAX_NOTED_CALLS = 1000


class TapeError(Exception):
    """A tape that cannot stand for the step's loss; the message says why."""


@dataclass(frozen=True)
class Ref:
    """A tensor argument of a recorded call: tape value ``index`` (``kind`` "v") or
    leaf ``index`` (``kind`` "l")."""

    kind: str
    index: int


@dataclass(frozen=True)
class LossMeta:
    """What a recognised loss call on the tape was applied to (for the task)."""

    fn: str
    input_shape: tuple[int, ...]
    target_shape: tuple[int, ...] | None
    target_dtype: str | None
    label_smoothing: float = 0.0


@dataclass
class TapeCall:
    """One recorded torch call: ``func(*args, **kwargs)`` with tensors as :class:`Ref`\\ s;
    its tensor results (positions among the result's pytree leaves) become tape values."""

    func: Callable[..., Any]
    name: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    results: list[tuple[int, int]] = field(default_factory=list)  # (leaf position, value)
    mutated: int | None = None  # the value an in-place call's first argument becomes
    loss: LossMeta | None = None

    def refs(self) -> list[Ref]:
        return [x for x in pytree.tree_leaves((self.args, self.kwargs)) if isinstance(x, Ref)]

    def signature(self) -> tuple[Any, ...]:
        """What must agree between steps for one tape to stand for them all: the function
        and where its tensors come from (constants such as a mixup weight may differ)."""
        spec = pytree.tree_structure((self.args, self.kwargs))
        kinds = tuple(
            (x.kind, x.index) if isinstance(x, Ref) else type(x).__name__
            for x in pytree.tree_leaves((self.args, self.kwargs))
        )
        return (self.name, str(spec), kinds, tuple(self.results), self.mutated)


@dataclass
class Tape:
    """The calls from the model outputs of a step to its loss.

    Tape values ``0 .. sum(input_counts) - 1`` are the tensors of the model calls' outputs
    (each output's tensors in ``nndoctor.trees.tensors`` order, call after call); each call
    numbers its results on. ``output`` is the value that was back-propagated (the loss
    before a GradScaler scaled it)."""

    input_counts: list[int]
    calls: list[TapeCall]
    output: int
    leaf_count: int
    # The values computed from leaves alone (data, not the model output), by value: what
    # :meth:`rooted` freezes into leaves where they do not derive from per-sample data.
    data: dict[int, torch.Tensor] = field(default_factory=dict, repr=False)

    def signature(self) -> tuple[Any, ...]:
        return (tuple(self.input_counts), self.output, self.leaf_count) + tuple(
            c.signature() for c in self.calls
        )

    def rooted(
        self, leaves: Sequence[torch.Tensor], per_sample: Callable[[torch.Tensor], bool]
    ) -> tuple[Tape, list[torch.Tensor]]:
        """The tape with its data calls cut at the per-sample data: a call on leaves alone
        is replayed when it reads per-sample data (``y.float()``, ``F.one_hot(mask)``, so a
        replaced target replaces what derives from it), and frozen into a leaf otherwise
        (``y_all[i:i + 32]``: the slice of a whole data set is this batch's data). Raises
        TapeError for a frozen value changed in place later (it was stored changed)."""
        own = list(leaves)
        rooted_leaf = [per_sample(t) for t in own]
        dependent = set(range(sum(self.input_counts)))
        rooted: set[int] = set()
        frozen: dict[int, int] = {}
        kept: list[TapeCall] = []
        for call in self.calls:
            refs = call.refs()
            made = {i for _, i in call.results} | ({call.mutated} - {None})
            if any(r.kind == "v" and r.index in dependent for r in refs):
                dependent |= made
            elif any(
                (r.kind == "l" and rooted_leaf[r.index]) or (r.kind == "v" and r.index in rooted)
                for r in refs
            ):
                rooted |= made
            else:
                for index in sorted(made):
                    frozen[index] = len(own)
                    own.append(self.data[index])
                    rooted_leaf.append(per_sample(self.data[index]))
                continue
            target = call.kwargs.get("out", call.args[0] if call.args else None)
            if (
                call.mutated is not None
                and isinstance(target, Ref)
                and target.kind == "v"
                and target.index in frozen
            ):
                raise TapeError("a tensor the loss reads is changed in place")
            kept.append(call)

        def freeze(x: Any) -> Any:
            if isinstance(x, Ref) and x.kind == "v" and x.index in frozen:
                return Ref("l", frozen[x.index])
            return x

        calls = []
        for c in kept:
            args, kwargs = pytree.tree_map(freeze, (c.args, c.kwargs))
            calls.append(dataclasses.replace(c, args=args, kwargs=kwargs))
        if self.output in frozen:
            raise TapeError("the back-propagated loss is not computed from the model output")
        calls, used = _renumber_leaves(calls, own)
        return Tape(list(self.input_counts), calls, self.output, len(used)), used

    def loss_calls(self) -> list[LossMeta]:
        return [c.loss for c in self.calls if c.loss is not None]

    def replay(self, outputs: Sequence[Any], leaves: Sequence[torch.Tensor]) -> torch.Tensor:
        """The loss the tape computes from the model outputs ``outputs`` (one per model
        call) and this batch's ``leaves``; the leaves are cloned first, so no replay
        changes the stored ones (a call in place on a leaf changes the clone)."""
        values: dict[int, Any] = {}
        for call_output, count in zip(outputs, self.input_counts, strict=True):
            found = tensors(call_output)
            if len(found) != count:
                raise TapeError(f"the model output holds {len(found)} tensors, not {count}")
            values.update({len(values) + i: t for i, t in enumerate(found)})
        own = [leaf.clone() for leaf in leaves]

        def fill(x: Any) -> Any:
            if isinstance(x, Ref):
                return values[x.index] if x.kind == "v" else own[x.index]
            return x

        for call in self.calls:
            args, kwargs = pytree.tree_map(fill, (call.args, call.kwargs))
            result = call.func(*args, **kwargs)
            if call.mutated is not None:
                out = kwargs.get("out")
                values[call.mutated] = out if isinstance(out, torch.Tensor) else args[0]
            if call.results:
                flat = pytree.tree_leaves(result)
                for position, index in call.results:
                    values[index] = flat[position]
        return values[self.output]


def _compiled_anything() -> bool:
    """Whether Dynamo has compiled a frame in this process (``torch.compile``): an
    optimizer step loads Dynamo without compiling anything, so being loaded says nothing."""
    utils = sys.modules.get("torch._dynamo.utils")
    counters = getattr(utils, "counters", None)
    try:
        return bool(counters is not None and counters["frames"].get("total", 0))
    except Exception:  # noqa: BLE001 - Dynamo's internals moved: assume it compiles
        return True


def _mutated_argument(name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """The tensor a call changes in place (its first argument for ``add_``, ``__iadd__``,
    ``__setitem__``; its ``out=``), or None."""
    out = kwargs.get("out")
    if isinstance(out, torch.Tensor):
        return out
    in_place = (name.endswith("_") and not name.endswith("__")) or name in _IN_PLACE_DUNDERS
    if in_place and args and isinstance(args[0], torch.Tensor):
        return args[0]
    return None


def _loss_meta(name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> LossMeta | None:
    if name not in _RECOGNISED:
        return None
    inp = args[0] if args else kwargs.get("input")
    target = args[1] if len(args) > 1 else kwargs.get("target")
    if not isinstance(inp, torch.Tensor):
        return None
    is_target = isinstance(target, torch.Tensor)
    smoothing = kwargs.get("label_smoothing", 0.0)
    return LossMeta(
        name,
        tuple(inp.shape),
        tuple(target.shape) if is_target else None,
        str(target.dtype).replace("torch.", "") if is_target else None,
        float(smoothing) if isinstance(smoothing, (int, float)) else 0.0,
    )


class _Mode(TorchFunctionMode):
    """Hands every torch call to the recorder (which runs it and may note it)."""

    def __init__(self, recorder: TapeRecorder) -> None:
        super().__init__()
        self.recorder = recorder

    def __torch_function__(
        self,
        func: Callable[..., Any],
        types: Any,
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
    ) -> Any:
        return self.recorder.call(func, args, kwargs or {})


class TapeRecorder:
    """Records one step's tape: :meth:`start` at the model's output, :meth:`finish` at the
    backward pass (or :meth:`abort`). ``paused`` says when not to record (the model's own
    forward, whose internals are not the loss)."""

    def __init__(self, paused: Callable[[], bool]) -> None:
        self.paused = paused
        self._mode: _Mode | None = None
        self._values: dict[int, tuple[weakref.ReferenceType[torch.Tensor], int]] = {}
        self._count = 0
        self._input_counts: list[int] = []
        self._inputs: list[torch.Tensor] = []
        self._versions: list[int] = []
        self._leaves: list[torch.Tensor] = []
        self._leaf_ids: dict[int, int] = {}
        self._calls: list[TapeCall] = []
        self._dependent: set[int] = set()  # values computed from a model output
        self._data: dict[int, torch.Tensor] = {}  # the others: data, held until the end
        self.failure: str | None = None

    @property
    def active(self) -> bool:
        return self._mode is not None

    # -- life cycle ------------------------------------------------------------------
    def start(self, output: Any) -> None:
        """Begin a tape at a model call's ``output`` (the mode stays on until the step's
        backward pass)."""
        self.model_output(output)
        if _compiled_anything():
            # A mode on the stack while Dynamo compiles a loss would be traced into it.
            self.failure = "the script compiles code (torch.compile): no tape is recorded"
            return
        self._mode = _Mode(self)
        self._mode.__enter__()

    def model_output(self, output: Any) -> None:
        """Another model call's output: its tensors are the next tape inputs."""
        found = tensors(output)
        for t in found:
            self._dependent.add(self._register(t))
            self._inputs.append(t)
            self._versions.append(t._version)
        self._input_counts.append(len(found))

    def abort(self, why: str) -> None:
        """Stop without a tape (the step ended without a backward pass, the probe closed)."""
        if self.failure is None:
            self.failure = why
        self._stop()

    def finish(
        self, loss: torch.Tensor, unscaled: torch.Tensor | None = None
    ) -> tuple[Tape, list[torch.Tensor]]:
        """The step's tape and its leaves, ending at the back-propagated ``loss`` (at
        ``unscaled``, the loss a GradScaler multiplied into ``loss``, when given); raises
        TapeError."""
        self._stop()
        if self.failure is not None:
            raise TapeError(self.failure)
        end = unscaled if unscaled is not None else loss
        index = self._value_index(end)
        if index is None or index not in self._dependent:
            raise TapeError("the back-propagated loss is not computed from the model output")
        if any(t._version != v for t, v in zip(self._inputs, self._versions, strict=True)):
            raise TapeError("the model output is changed in place before the loss")
        tape, leaves = self._pruned(index)
        verify(tape, self._inputs, leaves, end)
        return tape, leaves

    def _stop(self) -> None:
        mode, self._mode = self._mode, None
        if mode is None:
            return
        stack = torch.overrides._get_current_function_mode_stack()
        if stack and stack[-1] is mode:
            mode.__exit__(None, None, None)
        else:
            # Another mode was pushed above ours (the script's own): it must not be popped
            # in its place; ours stays below it, passing every call through.
            self.failure = self.failure or "another torch function mode was entered"

    # -- recording -------------------------------------------------------------------
    def call(self, func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """Run the user's call; note it on the tape when it reads a tape value."""
        if self._mode is None or self.failure is not None or self.paused():
            return func(*args, **kwargs)
        name = getattr(func, "__name__", type(func).__name__)
        if name == "backward" or func is torch.autograd.backward:
            # The probe ends the tape at a backward pass; one it did not see ends it here.
            self.failure = "the step's backward pass was not seen by the probe"
            return func(*args, **kwargs)
        try:
            encoded = self._encode(args, kwargs)
        except Exception as exc:  # noqa: BLE001 - bookkeeping must never break the run
            self.failure = f"recording failed: {type(exc).__name__}: {exc}"
            encoded = None
        result = func(*args, **kwargs)
        if encoded is not None:
            try:
                self._note(func, name, encoded, args, kwargs, result)
            except Exception as exc:  # noqa: BLE001
                self.failure = f"recording failed: {type(exc).__name__}: {exc}"
        return result

    def _encode(
        self, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[tuple[Any, ...], dict[str, Any]] | None:
        """The arguments with tape values and leaves as Refs; None for a call without tensor
        arguments (``torch.zeros(n)``, ``torch.randperm(n)``): not recorded, its result is a
        leaf where a later call uses it.

        Calls on leaves alone are recorded too (``y.float()``, ``F.one_hot(mask)``): the
        leaves are then the data as it was before the model's output (the mask itself), and
        what the loss derives from them is recomputed on replay, so replacing a target
        replaces everything derived from it."""
        flat = pytree.tree_leaves((args, kwargs))
        if not any(isinstance(x, torch.Tensor) for x in flat):
            return None
        return pytree.tree_map(self._ref, (args, kwargs))

    def _ref(self, x: Any) -> Any:
        if not isinstance(x, torch.Tensor):
            return x
        index = self._value_index(x)
        if index is not None:
            return Ref("v", index)
        leaf = self._leaf_ids.get(id(x))
        if leaf is None:
            leaf = len(self._leaves)
            self._leaf_ids[id(x)] = leaf
            self._leaves.append(x)  # a strong reference: its id stays this leaf's
        return Ref("l", leaf)

    def _note(
        self,
        func: Callable[..., Any],
        name: str,
        encoded: tuple[tuple[Any, ...], dict[str, Any]],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        result: Any,
    ) -> None:
        if len(self._calls) >= MAX_NOTED_CALLS:
            self.failure = f"the step makes more than {MAX_NOTED_CALLS} torch calls on the output"
            return
        call = TapeCall(func, name, encoded[0], encoded[1], loss=_loss_meta(name, args, kwargs))
        dependent = any(r.kind == "v" and r.index in self._dependent for r in call.refs())
        made: list[tuple[int, torch.Tensor]] = []
        changed = _mutated_argument(name, args, kwargs)
        if changed is not None:
            if self._value_index(changed) is None:
                # Stored by reference, the leaf now holds its changed value: a replay would
                # change it again.
                raise TapeError("a tensor the loss reads is changed in place")
            call.mutated = self._register(changed)
            made.append((call.mutated, changed))
        for position, leaf in enumerate(pytree.tree_leaves(result)):
            if isinstance(leaf, torch.Tensor):
                index = self._register(leaf)
                call.results.append((position, index))
                made.append((index, leaf))
        for index, t in made:
            if dependent:
                self._dependent.add(index)
            else:
                self._data[index] = t.detach()
        self._calls.append(call)

    def _register(self, t: torch.Tensor) -> int:
        index = self._count
        self._count += 1
        self._values[id(t)] = (weakref.ref(t), index)
        return index

    def _value_index(self, t: torch.Tensor) -> int | None:
        entry = self._values.get(id(t))
        if entry is None or entry[0]() is not t:
            return None
        return entry[1]

    def _pruned(self, output: int) -> tuple[Tape, list[torch.Tensor]]:
        """The calls ``output`` depends on (not a metric or a print computed beside the
        loss), leaves renumbered in order of first use."""
        needed = {output}
        kept: list[TapeCall] = []
        for call in reversed(self._calls):
            made = {i for _, i in call.results} | ({call.mutated} - {None})
            if made & needed:
                kept.append(call)
                needed |= {r.index for r in call.refs() if r.kind == "v"}
        kept.reverse()
        if len(kept) > MAX_TAPE_CALLS:
            raise TapeError(f"the loss takes more than {MAX_TAPE_CALLS} torch calls")
        kept, used = _renumber_leaves(kept, self._leaves)
        if any(leaf.requires_grad for leaf in used):
            # Computed from parameters outside the model call (a weight penalty, another
            # network): a copy's replay would hold the user's tensor fixed.
            raise TapeError(
                "the loss uses a tensor that requires gradients and is not computed from the "
                "model output (the model's weights used directly, or another network)"
            )
        leaves = [leaf.detach() for leaf in used]
        made = {i for c in kept for _, i in c.results} | {c.mutated for c in kept}
        data = {i: t for i, t in self._data.items() if i in made}
        return Tape(list(self._input_counts), kept, output, len(leaves), data), leaves


def _renumber_leaves(
    calls: list[TapeCall], leaves: Sequence[torch.Tensor]
) -> tuple[list[TapeCall], list[torch.Tensor]]:
    """``calls`` with the leaves they use numbered in order of first use, and those leaves."""
    order: dict[int, int] = {}
    for call in calls:
        for r in call.refs():
            if r.kind == "l" and r.index not in order:
                order[r.index] = len(order)

    def renumber(x: Any) -> Any:
        return Ref("l", order[x.index]) if isinstance(x, Ref) and x.kind == "l" else x

    out = []
    for call in calls:
        args, kwargs = pytree.tree_map(renumber, (call.args, call.kwargs))
        out.append(dataclasses.replace(call, args=args, kwargs=kwargs))
    return out, [leaves[i] for i in sorted(order, key=order.__getitem__)]


def verify(
    tape: Tape, inputs: Sequence[torch.Tensor], leaves: Sequence[torch.Tensor], loss: torch.Tensor
) -> None:
    """Replay ``tape`` on the real model output and check it gives back ``loss``; raises
    TapeError otherwise (a random call, a leaf whose value changed, state outside torch).
    The random number generators are forked: the user's run draws what it would have."""
    devices = sorted({t.device.index or 0 for t in inputs if t.device.type == "cuda"})
    flat: list[Any] = []
    start = 0
    for count in tape.input_counts:
        flat.append([t.detach() for t in inputs[start : start + count]])
        start += count
    with torch.random.fork_rng(devices=devices), torch.no_grad():
        try:
            replayed = tape.replay(flat, leaves)
        except Exception as exc:  # noqa: BLE001 - a replay that fails is a tape that fails
            raise TapeError(f"the loss cannot be replayed: {type(exc).__name__}: {exc}") from exc
        if not isinstance(replayed, torch.Tensor) or replayed.shape != loss.shape:
            raise TapeError("the replayed loss has another shape")
        want, got = loss.detach().double().reshape(-1), replayed.double().reshape(-1)
        if not bool(torch.allclose(got, want, rtol=REPLAY_RTOL, atol=1e-6, equal_nan=True)):
            a, b = float(want[0]), float(got[0])
            if not (math.isnan(a) and math.isnan(b)):
                raise TapeError(f"the replayed loss ({b:.6g}) is not the script's ({a:.6g})")
