"""Where a script's own code calls a module by the attribute that holds it.

A layer can sit in the optimizer and never run in the observed steps for two reasons: it
was forgotten (no code calls it), or the code that calls it is on a branch those steps
did not take (an auxiliary loss added every fiftieth step, a head for a later stage). A
model's ``forward`` tells the first kind of branch; the training loop holds the second,
where a script calls ``model.aux_head(h)`` itself. This reads the script's source (and
the modules it imported from its folder) for such calls, made with gradients on: a call
inside ``with torch.no_grad()`` or ``torch.inference_mode()``, or in a function under
either decorator, is an evaluation, and a head only evaluated is never trained.
"""

from __future__ import annotations

import ast
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

# Context managers and decorators that turn gradients off for the code under them.
GRADIENT_OFF = frozenset({"no_grad", "inference_mode"})


@dataclass(frozen=True)
class CallSite:
    """One call of ``<expression>.<attr>(...)`` in a source file."""

    path: str
    line: int
    code: str  # the called expression as written (``model.aux_head``)

    def describe(self) -> str:
        return f"line {self.line} of {os.path.basename(self.path)} calls `{self.code}`"


def attribute_calls(paths: Iterable[str], attr: str) -> list[CallSite]:
    """Every call ``x.<attr>(...)`` made with gradients on in the source files ``paths``,
    in file and line order; unreadable files give none."""
    sites: list[CallSite] = []
    for path in paths:
        tree = parse_source(path)
        if tree is not None:
            sites += [
                CallSite(path, node.lineno, ast.unparse(node.func))
                for node in _calls_with_gradients(tree)
                if isinstance(node.func, ast.Attribute) and node.func.attr == attr
            ]
    return sites


def parse_source(path: str) -> ast.Module | None:
    """The syntax tree of the source file ``path``; None where it cannot be read or parsed."""
    try:
        with open(path, encoding="utf-8") as f:
            return ast.parse(f.read(), filename=path)
    except (OSError, SyntaxError, ValueError):
        return None


def _calls_with_gradients(node: ast.AST) -> Iterator[ast.Call]:
    """The calls under ``node`` outside every block and function that turns gradients off."""
    if isinstance(node, ast.With | ast.AsyncWith) and any(
        _turns_gradients_off(item.context_expr) for item in node.items
    ):
        return
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and any(
        _turns_gradients_off(d) for d in node.decorator_list
    ):
        return
    if isinstance(node, ast.Call):
        yield node
    for child in ast.iter_child_nodes(node):
        yield from _calls_with_gradients(child)


def _turns_gradients_off(expr: ast.expr) -> bool:
    """``torch.no_grad()``, ``no_grad``, ``torch.inference_mode()`` and the like."""
    return name_of(expr.func if isinstance(expr, ast.Call) else expr) in GRADIENT_OFF


def name_of(expr: ast.expr) -> str | None:
    """The last name of ``torch.optim.SGD`` or ``SGD``; None for other expressions."""
    if isinstance(expr, ast.Attribute):
        return expr.attr
    return expr.id if isinstance(expr, ast.Name) else None
