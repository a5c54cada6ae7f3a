"""Seeing a network the script compiles with ``torch.jit.script`` or ``torch.jit.trace``.

A TorchScript module runs its compiled forward without PyTorch's Python module hooks, so
zero-code capture finds no model in a script that scripts its network before training
(``model = torch.jit.script(Net())``): the run ended with "no module with parameters was
called". While a script is observed or replayed, scripting or tracing an ``nn.Module``
returns the module itself, which computes the same forward eagerly and is seen like any
other; functions are compiled as written. What the script does with the compiled form
beyond calling and training it (``model.save``, ``model.code``) is not available then, and
the report says that the module ran eagerly.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import nn


class EagerScripting:
    """Returns ``nn.Module`` arguments of ``torch.jit.script``/``trace`` unchanged while
    installed, and names them."""

    def __init__(self) -> None:
        self.kept_eager: list[str] = []  # class names, for the report

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        originals = {name: getattr(torch.jit, name) for name in ("script", "trace")}
        for name, original in originals.items():
            setattr(torch.jit, name, self._eager(original))
        try:
            yield
        finally:
            for name, original in originals.items():
                setattr(torch.jit, name, original)

    def _eager(self, original: Callable[..., Any]) -> Callable[..., Any]:
        def compile_or_keep(obj: Any, *args: Any, **kwargs: Any) -> Any:
            if isinstance(obj, nn.Module) and not isinstance(obj, torch.jit.ScriptModule):
                name = type(obj).__name__
                if name not in self.kept_eager:
                    self.kept_eager.append(name)
                return obj
            return original(obj, *args, **kwargs)

        compile_or_keep.__wrapped__ = original  # type: ignore[attr-defined]
        compile_or_keep.__doc__ = original.__doc__
        return compile_or_keep
