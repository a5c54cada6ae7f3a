"""How long the script means to train: the loops around its optimizer step, read at a step.

A few observed steps show the start of a run, and some verdicts need its length: a
schedule that leaves the learning rate at nothing for most of the run, an experiment's
horizon. The script says it in its loops. At an optimizer step, every frame of the
script's own code on the stack stands on a line inside the loops that lead to the step
(``for epoch in range(1, args.epochs + 1):`` in ``main``, ``for x, y in loader:`` in
``train_one_epoch``); each loop's length is read from its iterable as the frame holds it
now: a ``range(...)`` whose arguments are names, attributes, items, numbers and a little
arithmetic; a list, tuple or DataLoader by its length; another iterable by the epoch
length the recording knows. Nothing of the script is called: names are looked up, never
evaluated through user code (an attribute must be in the object's ``__dict__``), and a
loop that cannot be read that way leaves the horizon unknown.

The product of the loops' lengths is the number of steps when the step runs at every pass
of its loops; a step under an ``if`` inside them (gradient accumulation, a step every k
batches) makes it an upper bound only (``exact`` False), and a ``break`` (early stopping)
may end the run sooner.
"""

from __future__ import annotations

import ast
import math
import operator
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from types import FrameType, ModuleType
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset

# Iterables wrapped around a loop's real one that keep its length.
_WRAPPERS = frozenset({"enumerate", "tqdm", "iter", "progress_bar", "track"})
_RANGES = frozenset({"range", "trange"})
_BINARY: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.FloorDiv: operator.floordiv,
    ast.Div: operator.truediv,
    ast.Mod: operator.mod,
}
_PURE_CALLS: dict[str, Callable[..., Any]] = {
    "int": int,
    "min": min,
    "max": max,
    "round": round,
    "abs": abs,
}
_MATH_CALLS = frozenset({"ceil", "floor"})
# Values whose length is theirs alone (no user code runs to give it).
_SIZED = (list, tuple, range, dict, str, torch.Tensor, np.ndarray, DataLoader, TensorDataset)
# Arrays whose shape is torch's or numpy's to give: ``x.shape[0]``, ``x.size(0)``,
# ``x.numel()`` in a loop bound run no user code (exact types: a subclass may override them).
_ARRAYS = (torch.Tensor, torch.nn.Parameter, np.ndarray)
_ARRAY_METHODS = frozenset({"size", "numel"})
# Runs longer than this are read as unknown: a loop bound by a sentinel (10**9) is no plan.
MAX_PLANNED_STEPS = 100_000_000


class _Unreadable(Exception):
    """A loop whose length cannot be read without running the script's code."""


@dataclass
class Horizon:
    """The optimizer steps the script's loops plan, at most (``steps``), and the loops."""

    steps: int
    loops: list[str] = field(default_factory=list)  # "`for epoch in range(n)` (120)", outer first
    lengths: list[int] = field(default_factory=list)  # each loop's passes, outer first
    # False: an ``if`` inside the loops guards the step, which runs at some passes only.
    exact: bool = True

    def describe(self) -> str:
        return " × ".join(self.loops) + (
            f" = {self.steps} steps" if self.exact else f" passes, {self.steps} steps at most"
        )


def read_horizon(frames: Iterable[FrameType], epoch_length: int | None) -> Horizon | None:
    """The horizon the loops around the current line of each frame plan (``frames`` from
    the innermost outwards, as :func:`nndoctor.capture.source_data.script_frames` gives
    them); None when a loop's length cannot be read or no loop leads to the step."""
    trees: dict[str, ast.Module | None] = {}
    loops: list[tuple[ast.stmt, FrameType]] = []
    exact = True
    for frame in frames:
        path = os.path.abspath(frame.f_code.co_filename)
        if path not in trees:
            trees[path] = _parse(path)
        tree = trees[path]
        if tree is None:
            return None
        code = frame.f_code
        first = None if code.co_name == "<module>" else code.co_firstlineno
        found, guarded = _enclosing_loops(tree, frame.f_lineno, first)
        exact = exact and not guarded
        loops = [(loop, frame) for loop in found] + loops  # outer frames' loops go first
    if not loops:
        return None
    steps, described, lengths, by_epoch = 1, [], [], False
    try:
        for loop, frame in loops:
            length, is_epoch = _loop_length(loop, frame, epoch_length, by_epoch)
            by_epoch = by_epoch or is_epoch
            steps *= length
            described.append(f"`{_header(loop)}` ({length})")
            lengths.append(length)
    except Exception:  # noqa: BLE001 - an unreadable loop leaves the horizon unknown
        return None
    if steps <= 0 or steps > MAX_PLANNED_STEPS:
        return None
    return Horizon(steps=steps, loops=described, lengths=lengths, exact=exact)


def _parse(path: str) -> ast.Module | None:
    try:
        with open(path, encoding="utf-8") as handle:
            return ast.parse(handle.read(), filename=path)
    except (OSError, SyntaxError, ValueError):
        return None


def _enclosing_loops(
    tree: ast.Module, line: int, first_line: int | None
) -> tuple[list[ast.stmt], bool]:
    """The ``for``/``while`` statements of the function that starts at ``first_line`` (the
    module's top level for None) whose body holds ``line``, outermost first; and whether an
    ``if`` inside one of them holds the line too (the line runs at some passes only)."""
    scope: ast.AST = tree
    for node in ast.walk(tree) if first_line is not None else ():
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            starts = min([node.lineno] + [d.lineno for d in node.decorator_list])
            if starts <= first_line <= node.lineno:
                scope = node
                break
    found: list[ast.stmt] = []
    guarded = False

    def visit(node: ast.AST) -> None:
        nonlocal guarded
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
                continue
            end = getattr(child, "end_lineno", None)
            start = getattr(child, "lineno", None)
            if start is None or end is None or not start <= line <= end:
                continue
            if isinstance(child, (ast.For, ast.While)) and _in_body(child, line):
                found.append(child)
            elif isinstance(child, (ast.If, ast.IfExp)) and found and child.lineno < line:
                guarded = True  # a condition tested before the line, inside a loop
            visit(child)

    visit(scope)
    return found, guarded


def _in_body(loop: ast.For | ast.While, line: int) -> bool:
    body = loop.body
    return bool(body) and body[0].lineno <= line <= (body[-1].end_lineno or body[-1].lineno)


def _header(loop: ast.stmt) -> str:
    if isinstance(loop, ast.For):
        return f"for {ast.unparse(loop.target)} in {ast.unparse(loop.iter)}"
    assert isinstance(loop, ast.While)
    return f"while {ast.unparse(loop.test)}"


def _loop_length(
    loop: ast.stmt, frame: FrameType, epoch_length: int | None, epoch_used: bool
) -> tuple[int, bool]:
    """A loop's number of passes, and whether it was read as one epoch of batches."""
    if isinstance(loop, ast.While):
        return _while_length(loop, frame), False
    assert isinstance(loop, ast.For)
    node = loop.iter
    while (
        isinstance(node, ast.Call)
        and _call_name(node) in _WRAPPERS
        and node.args
        and not isinstance(node.args[0], ast.Starred)
    ):
        node = node.args[0]
    if isinstance(node, ast.Call) and _call_name(node) in _RANGES:
        args = [_as_int(_value(a, frame)) for a in node.args]
        return len(range(*args)), False
    try:
        held = _value(node, frame)
    except _Unreadable:
        held = None
    if isinstance(held, DataLoader):
        return len(held), True
    if isinstance(held, (list, tuple, range, dict)):
        return len(held), False
    if epoch_length and not epoch_used:
        return epoch_length, True  # the loop over the training batches, however it is spelled
    raise _Unreadable(ast.unparse(loop.iter))


def _while_length(loop: ast.While, frame: FrameType) -> int:
    """``while step < total`` (or ``<=``): the loop runs to ``total`` steps in all."""
    test = loop.test
    if (
        isinstance(test, ast.Compare)
        and len(test.ops) == 1
        and isinstance(test.ops[0], (ast.Lt, ast.LtE))
    ):
        total = _as_int(_value(test.comparators[0], frame))
        return total + (1 if isinstance(test.ops[0], ast.LtE) else 0)
    raise _Unreadable(ast.unparse(test))


def _call_name(call: ast.Call) -> str | None:
    func = call.func
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return None


def _as_int(value: Any) -> int:
    if isinstance(value, bool):
        raise _Unreadable("a flag, not a length")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    raise _Unreadable(repr(type(value)))


def _lookup(name: str, frame: FrameType) -> Any:
    for namespace in (frame.f_locals, frame.f_globals):
        if name in namespace:
            return namespace[name]
    raise _Unreadable(name)


def _value(node: ast.AST, frame: FrameType) -> Any:
    """The value of a side-effect-free expression as the frame holds it."""
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
        return node.value
    if isinstance(node, ast.Name):
        return _lookup(node.id, frame)
    if isinstance(node, ast.Attribute):
        owner = _value(node.value, frame)
        if type(owner) in _ARRAYS and node.attr == "shape":
            return tuple(owner.shape)
        held = getattr(owner, "__dict__", None)
        if isinstance(held, dict) and node.attr in held:
            return held[node.attr]
        raise _Unreadable(node.attr)
    if isinstance(node, ast.Subscript):
        owner = _value(node.value, frame)
        key = (
            _value(node.slice, frame)
            if not isinstance(node.slice, ast.Constant)
            else node.slice.value
        )
        if type(owner) in (dict, list, tuple):
            return owner[key]
        raise _Unreadable("an item of a user object")
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        return _BINARY[type(node.op)](_value(node.left, frame), _value(node.right, frame))
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return -_value(node.operand, frame)
    if isinstance(node, ast.Call) and not node.keywords:
        return _call(node, frame)
    raise _Unreadable(type(node).__name__)


def _call(node: ast.Call, frame: FrameType) -> Any:
    args = [_value(a, frame) for a in node.args]
    func = node.func
    if isinstance(func, ast.Attribute) and func.attr in _ARRAY_METHODS:
        owner = _value(func.value, frame)
        if type(owner) in _ARRAYS[:2] and all(isinstance(a, int) for a in args):
            return getattr(owner, func.attr)(*args)
        if type(owner) is np.ndarray and func.attr == "size" and not args:
            return owner.size
        raise _Unreadable(ast.unparse(node))
    if isinstance(func, ast.Name) and func.id == "len" and len(args) == 1:
        if isinstance(args[0], _SIZED):
            return len(args[0])
        raise _Unreadable("the length of a user object")
    if isinstance(func, ast.Name) and func.id in _PURE_CALLS:
        if all(isinstance(a, (int, float)) for a in args):
            return _PURE_CALLS[func.id](*args)
    if (
        isinstance(func, ast.Attribute)
        and func.attr in _MATH_CALLS
        and isinstance(func.value, ast.Name)
        and isinstance(_lookup(func.value.id, frame), ModuleType)
        and _lookup(func.value.id, frame) is math
        and len(args) == 1
        and isinstance(args[0], (int, float))
    ):
        return getattr(math, func.attr)(args[0])
    raise _Unreadable(ast.unparse(node))
