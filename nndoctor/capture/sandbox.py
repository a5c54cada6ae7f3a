"""The user's files stay as they were: every write the observed script makes lands in a
scratch folder instead, and its later reads see those writes.

A check runs the user's own script (and replays of it), often in their repository. The
sandbox patches the Python entry points through which scripts write — ``open`` and
``io.open`` in a writing mode (``pathlib``, ``numpy.save``, ``json.dump`` to a file and
most libraries go through them), ``os.open`` with a writing flag, ``os.remove`` /
``unlink`` / ``rename`` / ``replace`` / ``mkdir`` / ``rmdir`` / ``chmod`` / ``utime``,
``shutil.rmtree`` (``shutil.copy`` and ``move`` go through these),
``torch.save`` / ``torch.load``, ``safetensors`` — so that a path outside the scratch
folder is mirrored inside it (``<scratch>/fs/<absolute path>``): written there, copied
there first when opened for appending or updating, deleted there, and read from there
once it exists. A deleted file is remembered, so the script no longer sees it while the
real one stays. ``os.stat`` (``os.path.exists``, ``Path.exists``) answers for the mirror.
Experiment trackers are switched to offline or disabled through their environment
variables. What was redirected is listed for the report.

Writes from compiled code that opens paths itself (an HDF5 or LMDB library) are not seen;
``/dev``, ``/proc`` and ``/sys`` pass through.
"""

from __future__ import annotations

import builtins
import contextlib
import io
import os
import shutil
from collections.abc import Iterator
from typing import Any

PASS_THROUGH = ("/dev/", "/proc/", "/sys/")
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
# Trackers told to stay local: no online runs are created by a check or its replays.
TRACKER_ENV = {
    "WANDB_MODE": "disabled",
    "WANDB_SILENT": "true",
    "COMET_MODE": "disabled",
    "NEPTUNE_MODE": "offline",
    "HF_HUB_OFFLINE": "1",
    "DISABLE_MLFLOW_INTEGRATION": "TRUE",
}


class Sandbox:
    """Path mirroring into ``scratch``; use as a context manager around the script."""

    def __init__(self, scratch: str) -> None:
        self.scratch = os.path.realpath(scratch)
        self.root = os.path.join(self.scratch, "fs")
        self.deleted: set[str] = set()
        self.redirected: list[str] = []  # real paths the script wrote, renamed or removed

    # -- the mapping --------------------------------------------------------------------
    def _key(self, path: Any) -> str | None:
        """The absolute path a mirrored path stands for, or None when it passes through."""
        if isinstance(path, int):
            return None
        try:
            raw = os.fspath(path)
        except TypeError:
            return None
        text = os.fsdecode(raw)
        full = os.path.abspath(text)
        if (
            full.startswith(PASS_THROUGH)
            or full == self.scratch
            or full.startswith(self.scratch + os.sep)
        ):
            return None
        return full

    def mirror_of(self, key: str) -> str:
        return os.path.join(self.root, key.lstrip(os.sep))

    def for_write(self, path: Any, *, keep_content: bool) -> Any:
        """Where a write to ``path`` goes; the real file is copied first when the write
        keeps its content (append, update)."""
        key = self._key(path)
        if key is None:
            return path
        target = self.mirror_of(key)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        if (
            keep_content
            and not os.path.lexists(target)
            and key not in self.deleted
            and os.path.isfile(key)
        ):
            shutil.copyfile(key, target)
        self.deleted.discard(key)
        self._note(key)
        return target

    def for_read(self, path: Any) -> Any:
        """Where a read of ``path`` looks: its mirror once written, else the real path."""
        key = self._key(path)
        if key is None:
            return path
        target = self.mirror_of(key)
        if os.path.lexists(target):
            return target
        if key in self.deleted:
            return target  # gone for the script: reading the absent mirror raises as it should
        return path

    def remove(self, path: Any) -> None:
        key = self._key(path)
        target = self.mirror_of(key) if key is not None else None
        if target is not None and os.path.lexists(target):
            os.remove(target)
        elif target is not None and not os.path.lexists(key):
            raise FileNotFoundError(2, "No such file or directory", os.fsdecode(os.fspath(path)))
        if key is not None:
            self.deleted.add(key)
            self._note(key)

    def _note(self, key: str) -> None:
        if key not in self.redirected:
            self.redirected.append(key)

    # -- patches ------------------------------------------------------------------------
    @contextlib.contextmanager
    def installed(self) -> Iterator[Sandbox]:
        os.makedirs(self.root, exist_ok=True)
        patches = self._patches()
        saved_env = {k: os.environ.get(k) for k in TRACKER_ENV}
        originals = [(owner, name, getattr(owner, name)) for owner, name, _ in patches]
        try:
            os.environ.update(TRACKER_ENV)
            for owner, name, replacement in patches:
                setattr(owner, name, replacement)
            yield self
        finally:
            for owner, name, original in reversed(originals):
                setattr(owner, name, original)
            for k, v in saved_env.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v

    def _patches(self) -> list[tuple[Any, str, Any]]:
        box = self
        real_open, real_os_open = builtins.open, os.open
        real_stat, real_lstat = os.stat, os.lstat
        real_remove, real_rename, real_replace = os.remove, os.rename, os.replace
        real_mkdir, real_rmdir, real_rmtree = os.mkdir, os.rmdir, shutil.rmtree
        real_listdir = os.listdir

        def open_(file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
            if any(c in mode for c in "wax+"):
                keep = "a" in mode or ("+" in mode and "w" not in mode)
                return real_open(box.for_write(file, keep_content=keep), mode, *args, **kwargs)
            return real_open(box.for_read(file), mode, *args, **kwargs)

        def os_open(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
            if kwargs.get("dir_fd") is not None:
                return real_os_open(path, flags, *args, **kwargs)
            if flags & WRITE_FLAGS:
                keep = not flags & os.O_TRUNC
                return real_os_open(box.for_write(path, keep_content=keep), flags, *args, **kwargs)
            return real_os_open(box.for_read(path), flags, *args, **kwargs)

        def stat(path: Any, *args: Any, **kwargs: Any) -> Any:
            return real_stat(box.for_read(path), *args, **kwargs)

        def lstat(path: Any, *args: Any, **kwargs: Any) -> Any:
            return real_lstat(box.for_read(path), *args, **kwargs)

        def remove(path: Any, *args: Any, **kwargs: Any) -> None:
            if kwargs.get("dir_fd") is not None or box._key(path) is None:
                return real_remove(path, *args, **kwargs)
            box.remove(path)
            return None

        def mover(real: Any) -> Any:
            def move(src: Any, dst: Any, *args: Any, **kwargs: Any) -> None:
                if box._key(src) is None and box._key(dst) is None:
                    return real(src, dst, *args, **kwargs)
                source = box.for_read(src)
                target = box.for_write(dst, keep_content=False)
                if os.path.isdir(source):
                    shutil.copytree(source, target, dirs_exist_ok=True)
                else:
                    shutil.copyfile(source, target)
                box.remove(src)
                return None

            return move

        def mkdir(path: Any, *args: Any, **kwargs: Any) -> None:
            key = box._key(path)
            if key is None or kwargs.get("dir_fd") is not None:
                return real_mkdir(path, *args, **kwargs)
            if os.path.isdir(key) and key not in box.deleted:
                raise FileExistsError(17, "File exists", os.fsdecode(os.fspath(path)))
            target = box.mirror_of(key)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            real_mkdir(target, *args, **kwargs)
            box.deleted.discard(key)
            box._note(key)
            return None

        def rmdir(path: Any, *args: Any, **kwargs: Any) -> None:
            key = box._key(path)
            if key is None or kwargs.get("dir_fd") is not None:
                return real_rmdir(path, *args, **kwargs)
            target = box.mirror_of(key)
            if os.path.isdir(target):
                real_rmdir(target)
            box.deleted.add(key)
            box._note(key)
            return None

        def rmtree(path: Any, *args: Any, **kwargs: Any) -> None:
            key = box._key(path)
            if key is None:
                return real_rmtree(path, *args, **kwargs)
            target = box.mirror_of(key)
            if os.path.isdir(target):
                real_rmtree(target)
            box.deleted.add(key)
            box._note(key)
            return None

        def metadata(real: Any) -> Any:
            """chmod / utime: on the mirror, copied there first (a mode is a change too)."""

            def change(path: Any, *args: Any, **kwargs: Any) -> Any:
                key = box._key(path)
                if key is None or kwargs.get("dir_fd") is not None:
                    return real(path, *args, **kwargs)
                if os.path.isdir(box.for_read(path)):
                    target = box.mirror_of(key)
                    os.makedirs(target, exist_ok=True)
                    box._note(key)
                else:
                    target = box.for_write(path, keep_content=True)
                return real(target, *args, **kwargs)

            return change

        def listdir(path: Any = ".") -> list[Any]:
            key = box._key(path)
            if key is None:
                return real_listdir(path)
            names = set(real_listdir(path)) if os.path.isdir(key) else set()
            target = box.mirror_of(key)
            if os.path.isdir(target):
                names |= set(real_listdir(target))
            return sorted(n for n in names if os.path.join(key, n) not in box.deleted)

        patches: list[tuple[Any, str, Any]] = [
            (builtins, "open", open_),
            (io, "open", open_),
            (os, "open", os_open),
            (os, "stat", stat),
            (os, "lstat", lstat),
            (os, "remove", remove),
            (os, "unlink", remove),
            (os, "rename", mover(real_rename)),
            (os, "replace", mover(real_replace)),
            (os, "mkdir", mkdir),
            (os, "rmdir", rmdir),
            (shutil, "rmtree", rmtree),
            (os, "listdir", listdir),
            (os, "chmod", metadata(os.chmod)),
            (os, "utime", metadata(os.utime)),
        ]
        patches += self._library_patches()
        return patches

    def _library_patches(self) -> list[tuple[Any, str, Any]]:
        """Writers in compiled code that take a path: torch.save (its zip writer opens the
        path itself), torch.load, and safetensors when it is installed."""
        import torch

        box = self
        patches: list[tuple[Any, str, Any]] = []
        real_save, real_load = torch.save, torch.load

        def save(obj: Any, f: Any, *args: Any, **kwargs: Any) -> Any:
            if isinstance(f, (str, bytes, os.PathLike)):
                f = box.for_write(f, keep_content=False)
            return real_save(obj, f, *args, **kwargs)

        def load(f: Any, *args: Any, **kwargs: Any) -> Any:
            if isinstance(f, (str, bytes, os.PathLike)):
                f = box.for_read(f)
            return real_load(f, *args, **kwargs)

        patches += [(torch, "save", save), (torch, "load", load)]
        try:
            import safetensors.torch as st
        except ImportError:
            return patches
        real_save_file, real_load_file = st.save_file, st.load_file

        def save_file(tensors: Any, filename: Any, *args: Any, **kwargs: Any) -> Any:
            return real_save_file(
                tensors, box.for_write(filename, keep_content=False), *args, **kwargs
            )

        def load_file(filename: Any, *args: Any, **kwargs: Any) -> Any:
            return real_load_file(box.for_read(filename), *args, **kwargs)

        patches += [(st, "save_file", save_file), (st, "load_file", load_file)]
        return patches
