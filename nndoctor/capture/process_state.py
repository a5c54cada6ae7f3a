"""What an observed script may change in the process it shares with nndoctor, put back
after it: the script runs in-process, and nothing it set may reach the checks that follow,
the caller, or the next script checked in the same process.

Restored: working directory, environment, ``umask``, ``sys.argv`` / ``path`` / standard
streams / hooks / recursion limit, the modules the script imported from its own folders
(a second script's ``model.py`` is then its own, not the first one's), entries it replaced
in ``sys.modules``, torch's global switches (threads, default dtype and device, grad and
anomaly mode, deterministic algorithms, cuDNN and TF32 flags, matmul precision), numpy's
error settings, warning filters, logging handlers and levels, signal handlers, and the
attributes of ``torch``, ``torch.nn``, ``torch.nn.functional``, ``torch.optim``,
``torch.Tensor`` and ``torch.nn.Module`` (a script's ``F.relu = my_relu``).
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import signal
import sys
import threading
import types
import warnings
from collections.abc import Callable, Collection, Iterator
from typing import Any

import numpy as np
import torch

_MISSING = object()
SIGNALS = tuple(
    getattr(signal, name)
    for name in ("SIGINT", "SIGTERM", "SIGALRM", "SIGHUP", "SIGUSR1", "SIGUSR2")
    if hasattr(signal, name)
)


def _namespaces() -> list[Any]:
    from torch import nn, optim
    from torch.nn import functional

    return [torch, nn, functional, optim, torch.Tensor, nn.Module]


@contextlib.contextmanager
def process_state_restored(
    script_dir: str, held_signals: Callable[[], Collection[int]] | None = None
) -> Iterator[None]:
    """Snapshot the process state on entry and put it back on exit, however the block
    ends. ``script_dir`` is the folder of the script: modules first imported from it (or
    from a folder the script added to ``sys.path``) are forgotten afterwards.
    ``held_signals``, asked on exit: signals whose handler nndoctor itself still holds
    (and puts back later), left as they are."""
    # Put back in reverse order: the modules before torch's state, whose setters may import
    # (torch.use_deterministic_algorithms imports torch._inductor, which needs json: a
    # script that blocked it in sys.modules must not break the restore).
    restorers = [
        _plain_state(),
        _torch_state(),
        _modules(script_dir),
        _logging_state(),
        _signal_handlers(held_signals),
        *[_namespace(owner) for owner in _namespaces()],
    ]
    try:
        yield
    finally:
        errors = []
        for restore in reversed(restorers):
            try:
                restore()
            except Exception as exc:  # noqa: BLE001 - restore the rest, raise afterwards
                errors.append(exc)
        if errors:
            raise errors[0]


def _plain_state() -> Callable[[], None]:
    cwd, env = os.getcwd(), dict(os.environ)
    umask = os.umask(0)
    os.umask(umask)
    argv, path = sys.argv[:], sys.path[:]
    streams = (sys.stdin, sys.stdout, sys.stderr)
    hooks = (sys.excepthook, sys.displayhook, sys.breakpointhook)
    limit = sys.getrecursionlimit()
    filters, showwarning = warnings.filters[:], warnings.showwarning
    np_err = np.geterr()

    def restore() -> None:
        os.chdir(cwd)
        if dict(os.environ) != env:
            os.environ.clear()
            os.environ.update(env)
        os.umask(umask)
        sys.argv, sys.path[:] = argv, path
        sys.stdin, sys.stdout, sys.stderr = streams
        sys.excepthook, sys.displayhook, sys.breakpointhook = hooks
        sys.setrecursionlimit(limit)
        warnings.filters[:] = filters
        mutated = getattr(warnings, "_filters_mutated", None)
        if mutated is not None:
            mutated()  # the cache of warnings already shown under the script's filters
        warnings.showwarning = showwarning
        np.seterr(**np_err)

    return restore


def _modules(script_dir: str) -> Callable[[], None]:
    before = dict(sys.modules)
    path_before = set(sys.path)

    def restore() -> None:
        # Read before _plain_state puts sys.path back (restorers run in reverse order).
        added = [p for p in sys.path if p not in path_before and isinstance(p, str)]
        folders = {os.path.realpath(d or ".") for d in [script_dir, *added]}
        packages = {name.split(".")[0] for name in before}
        for name, module in list(sys.modules.items()):
            if name in before:
                if before[name] is not module:
                    sys.modules[name] = before[name]  # the script replaced it
                continue
            # A package that existed before keeps its lazily imported submodules.
            if name.split(".")[0] not in packages and _inside(module, folders):
                del sys.modules[name]
        importlib.invalidate_caches()  # a same-named file in another script's folder

    return restore


def _inside(module: Any, folders: set[str]) -> bool:
    files = [getattr(module, "__file__", None), *list(getattr(module, "__path__", []) or [])]
    for file in files:
        if isinstance(file, str):
            real = os.path.realpath(file)
            if any(real == d or real.startswith(d + os.sep) for d in folders):
                return True
    return False


def _torch_state() -> Callable[[], None]:
    cudnn, matmul = torch.backends.cudnn, torch.backends.cuda.matmul
    threads = torch.get_num_threads()
    get_device = getattr(torch, "get_default_device", None)  # torch >= 2.3
    dtype, device = torch.get_default_dtype(), get_device() if get_device else None
    grad = torch.is_grad_enabled()
    anomaly = (torch.is_anomaly_enabled(), torch.is_anomaly_check_nan_enabled())
    deterministic = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
    )
    flags = (cudnn.enabled, cudnn.benchmark, cudnn.deterministic, cudnn.allow_tf32)
    tf32, precision = matmul.allow_tf32, torch.get_float32_matmul_precision()

    def restore() -> None:
        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)
        torch.set_default_dtype(dtype)
        if get_device is not None and get_device() != device:
            # None, not "cpu": a default device set explicitly costs a mode on every call.
            torch.set_default_device(None if device.type == "cpu" else device)  # type: ignore[union-attr]
        torch.set_grad_enabled(grad)
        torch.set_anomaly_enabled(*anomaly)
        now = (
            torch.are_deterministic_algorithms_enabled(),
            torch.is_deterministic_algorithms_warn_only_enabled(),
        )
        if now != deterministic:
            torch.use_deterministic_algorithms(deterministic[0], warn_only=deterministic[1])
        cudnn.enabled, cudnn.benchmark, cudnn.deterministic, cudnn.allow_tf32 = flags
        matmul.allow_tf32 = tf32
        torch.set_float32_matmul_precision(precision)

    return restore


def _logging_state() -> Callable[[], None]:
    manager = logging.root.manager

    def loggers() -> list[logging.Logger]:
        found = [v for v in manager.loggerDict.values() if isinstance(v, logging.Logger)]
        return [logging.root, *found]

    saved = {id(lg): (lg, lg.handlers[:], lg.level, lg.propagate, lg.disabled) for lg in loggers()}
    disable = manager.disable

    def restore() -> None:
        for lg in loggers():
            old = saved.get(id(lg))
            kept = old[1] if old is not None else []
            for handler in lg.handlers:
                if handler not in kept:
                    with contextlib.suppress(Exception):
                        handler.close()  # a log file the script opened (in the scratch)
            if old is None:
                lg.handlers[:] = []
            else:
                lg.handlers[:], lg.level, lg.propagate, lg.disabled = old[1:]
        logging.disable(disable)
        manager._clear_cache()  # type: ignore[attr-defined] - levels are cached per logger

    return restore


def _signal_handlers(held: Callable[[], Collection[int]] | None) -> Callable[[], None]:
    if threading.current_thread() is not threading.main_thread():
        return lambda: None  # signal handlers can only be read and set from the main thread
    saved = {sig: signal.getsignal(sig) for sig in SIGNALS}

    def restore() -> None:
        kept = set(held()) if held is not None else set()
        for sig, handler in saved.items():
            if sig in kept:
                continue
            if handler is not None and signal.getsignal(sig) is not handler:
                signal.signal(sig, handler)

    return restore


def _namespace(owner: Any) -> Callable[[], None]:
    saved = dict(vars(owner))

    def restore() -> None:
        now = dict(vars(owner))
        for name, value in saved.items():
            if now.get(name, _MISSING) is not value:
                setattr(owner, name, value)
        for name in now.keys() - saved.keys():
            # Submodules imported meanwhile stay: they are torch's, not the script's.
            if not isinstance(now[name], types.ModuleType):
                delattr(owner, name)

    return restore
