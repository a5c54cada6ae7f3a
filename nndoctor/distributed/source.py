"""What a distributed script's source says about scaling with the world size.

Read from the script's syntax tree (never run): where it multiplies a batch size by the
world size (the global batch grows with the number of ranks), whether any expression
combines a learning rate with the world size (the rate scaled with the batch), and where
it names ``SyncBatchNorm`` (BatchNorm statistics meant to be computed over all ranks).
Names are matched by what they say: ``world`` (``world_size``, ``args.world``,
``dist.get_world_size()``, ``os.environ["WORLD_SIZE"]``), ``batch`` (``batch_size``,
``args.batch``) and ``lr`` / ``learning_rate``.
"""

from __future__ import annotations

import ast
import re

from nndoctor.probes.distributed import SourceFacts

_WORLD = re.compile(r"world|num_replicas|nprocs|num_gpus|ngpus", re.IGNORECASE)
_BATCH = re.compile(r"batch", re.IGNORECASE)
_LR = re.compile(r"(^|_)lr($|_)|learning_rate", re.IGNORECASE)


def _identifiers(node: ast.AST) -> list[str]:
    """Names, attribute names and string constants inside ``node``."""
    out: list[str] = []
    for sub in ast.walk(node):
        if isinstance(sub, ast.Name):
            out.append(sub.id)
        elif isinstance(sub, ast.Attribute):
            out.append(sub.attr)
        elif isinstance(sub, ast.Constant) and isinstance(sub.value, str):
            out.append(sub.value)
    return out


def _mentions(node: ast.AST, pattern: re.Pattern[str]) -> bool:
    return any(pattern.search(name) for name in _identifiers(node))


def scan(path: str) -> SourceFacts:
    """The facts of the file at ``path`` (empty facts when it cannot be read or parsed)."""
    facts = SourceFacts(file=path)
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
        tree = ast.parse(text, filename=path)
    except (OSError, SyntaxError, ValueError):
        return facts
    lines = text.splitlines()
    for node in ast.walk(tree):
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mult):
            _note_product(node, facts, lines)
        if isinstance(node, ast.keyword) and node.arg in ("lr", "learning_rate"):
            facts.lr_scaled |= _mentions(node.value, _WORLD)
        if isinstance(node, (ast.Name, ast.Attribute)) and facts.sync_batchnorm is None:
            name = node.id if isinstance(node, ast.Name) else node.attr
            if name == "SyncBatchNorm":
                facts.sync_batchnorm = node.lineno
    return facts


def _note_product(node: ast.BinOp, facts: SourceFacts, lines: list[str]) -> None:
    sides = (node.left, node.right)
    world = [_mentions(s, _WORLD) for s in sides]
    if not any(world):
        return
    other = sides[1] if world[0] else sides[0]
    if _mentions(other, _LR):
        facts.lr_scaled = True
    elif _mentions(other, _BATCH) and facts.batch_scaled is None:
        line = lines[node.lineno - 1].strip() if 0 < node.lineno <= len(lines) else ""
        facts.batch_scaled = (node.lineno, line)
