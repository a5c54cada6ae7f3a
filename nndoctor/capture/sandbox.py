"""The user's files stay as they were: every write the observed script makes lands in a
scratch folder instead, and its later reads and listings see those writes.

A check runs the user's own script (and replays of it), often in their repository. While a
:class:`Sandbox` is installed, the Python entry points through which scripts touch files
are replaced — ``open`` / ``io.open`` (``pathlib``, ``numpy``, ``pickle``, ``json``,
``zipfile``, ``fsspec``'s local files and TensorBoard's event files go through it),
``os.open``, ``os.remove`` / ``unlink`` / ``rename`` / ``replace`` / ``mkdir`` /
``rmdir`` / ``chmod`` / ``utime`` / ``truncate`` / ``symlink`` / ``link`` / xattrs,
``os.stat`` / ``lstat`` / ``access`` (``os.path.exists``, ``isfile``, ``isdir``),
``os.listdir`` / ``scandir`` (``glob``, ``os.walk``, ``Path.iterdir`` / ``glob``),
``os.chdir`` / ``getcwd``, ``shutil.rmtree`` (``shutil.copy*`` and ``move`` go through the
others), ``torch.save`` / ``load`` and ``safetensors`` — so that a path outside the scratch
folder is mirrored inside it (``<scratch>/fs/<absolute path>``): written there, copied
there first when opened for appending or updating, deleted there, and read from there once
it exists. A deleted path (a directory with everything below it) is remembered, so the
script no longer sees it while the real one stays. Listings merge the real directory with
its mirror. References to the real functions that modules took before the sandbox was
installed (``from torch import save``) are replaced too; a reference to a replacement kept
after the sandbox is gone behaves like the real function. Experiment trackers are switched
to offline or disabled through their environment variables. What was redirected is listed
for the report.

No bytecode is cached (``__pycache__``) while the sandbox is installed. Writes from
compiled code that opens paths itself (an HDF5 or LMDB library) are not seen;
``/dev``, ``/proc`` and ``/sys`` pass through.
"""

from __future__ import annotations

import builtins
import contextlib
import errno
import gc
import io
import os
import shutil
import stat as stat_mod
import sys
import tempfile
from collections.abc import Callable, Iterator
from typing import Any

PASS_THROUGH = ("/dev/", "/proc/", "/sys/")
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
# Trackers told to stay local: no online runs are created by a check or its replays.
TRACKER_ENV = {
    "WANDB_MODE": "disabled",
    "WANDB_DISABLED": "true",  # the Hugging Face Trainer's switch
    "WANDB_SILENT": "true",
    "COMET_MODE": "disabled",
    "NEPTUNE_MODE": "offline",
    "CLEARML_OFFLINE_MODE": "1",
    "HF_HUB_OFFLINE": "1",
    "DISABLE_MLFLOW_INTEGRATION": "TRUE",
}

# The real functions, taken when this module is first imported (before any sandbox).
_R = {
    "open": builtins.open,
    "os.open": os.open,
    "stat": os.stat,
    "lstat": os.lstat,
    "access": os.access,
    "remove": os.remove,
    "rename": os.rename,
    "replace": os.replace,
    "mkdir": os.mkdir,
    "rmdir": os.rmdir,
    "listdir": os.listdir,
    "scandir": os.scandir,
    "chmod": os.chmod,
    "utime": os.utime,
    "truncate": os.truncate,
    "symlink": os.symlink,
    "link": os.link,
    "chdir": os.chdir,
    "getcwd": os.getcwd,
    "getcwdb": os.getcwdb,
    "rmtree": shutil.rmtree,
}
for _name in ("setxattr", "removexattr", "getxattr", "listxattr"):
    if hasattr(os, _name):  # Linux only
        _R[_name] = getattr(os, _name)

# The installed sandboxes, innermost last; replacements consult the innermost at call time.
_ACTIVE: list[Sandbox] = []
# Modules whose references to real functions are left alone: the interpreter's own
# machinery (import system, io) and the modules patched by name below.
_KEEP_MODULES = ("builtins", "io", "os", "posix", "nt", "shutil", "sys", "importlib")


def active() -> Sandbox | None:
    """The sandbox installed now, if any."""
    return _ACTIVE[-1] if _ACTIVE else None


def _real_lexists(path: Any) -> bool:
    try:
        _R["lstat"](path)
    except (OSError, ValueError):
        return False
    return True


def _real_isdir(path: Any) -> bool:
    try:
        return stat_mod.S_ISDIR(_R["stat"](path).st_mode)
    except (OSError, ValueError):
        return False


def _real_makedirs(path: str) -> None:
    """``os.makedirs`` on real functions only (the mirror's parents, inside the scratch)."""
    if _real_isdir(path):
        return
    parent = os.path.dirname(path)
    if parent and parent != path:
        _real_makedirs(parent)
    with contextlib.suppress(FileExistsError):
        _R["mkdir"](path)


def _same_kind(like: Any, text: str) -> Any:
    """``text`` as bytes when the caller gave bytes."""
    return os.fsencode(text) if isinstance(like, bytes) else text


def _oserror(code: int, path: Any) -> OSError:
    return OSError(code, os.strerror(code), os.fsdecode(os.fspath(path)))


class Sandbox:
    """Path mirroring into ``scratch``; use ``with Sandbox(scratch).installed():``."""

    def __init__(self, scratch: str) -> None:
        self.scratch = os.path.realpath(scratch)
        self.root = os.path.join(self.scratch, "fs")
        self.deleted: set[str] = set()  # removed for the script, with all below them
        self.redirected: list[str] = []  # real paths the script wrote, renamed or removed
        # The process's cwd is a mirror-only folder: relative paths no longer name real ones.
        self.cwd_moved = False

    # -- the mapping --------------------------------------------------------------------
    def key(self, path: Any) -> str | None:
        """The absolute path a mirrored path stands for, or None when it passes through."""
        if isinstance(path, int):
            return None
        try:
            raw = os.fspath(path)
        except TypeError:
            return None
        full = os.path.abspath(os.fsdecode(raw))  # against the script's (virtual) cwd
        if (
            full.startswith(PASS_THROUGH)
            or full == self.scratch
            or full.startswith(self.scratch + os.sep)
        ):
            return None
        return full

    def mirror_of(self, key: str) -> str:
        return os.path.join(self.root, key.lstrip(os.sep))

    def gone(self, key: str) -> bool:
        """Whether the script removed ``key`` or a directory above it."""
        if not self.deleted:
            return False
        path = key
        while True:
            if path in self.deleted:
                return True
            parent = os.path.dirname(path)
            if parent == path:
                return False
            path = parent

    def where(self, key: str) -> str:
        """The file a read of ``key`` finds: its mirror once written (or when removed, so
        that the read fails), else the real path."""
        target = self.mirror_of(key)
        if _real_lexists(target) or self.gone(key):
            return target
        return key

    def exists(self, key: str) -> bool:
        return _real_lexists(self.where(key))

    def isdir(self, key: str) -> bool:
        return _real_isdir(self.where(key))

    def for_read(self, path: Any) -> Any:
        """Where a read of ``path`` looks (``path`` itself when it passes through)."""
        key = self.key(path)
        if key is None:
            return path
        where = self.where(key)
        if where == key and not self.cwd_moved:
            return path  # the caller's own spelling (a file's ``name`` stays as given)
        return _same_kind(os.fspath(path), where)

    def for_write(self, path: Any, *, keep_content: bool) -> Any:
        """Where a write to ``path`` goes; the real file is copied first when the write
        keeps its content (append, update)."""
        key = self.key(path)
        if key is None:
            return path
        if not self.isdir(os.path.dirname(key)):
            raise _oserror(errno.ENOENT, path)  # as the real write would
        target = self.mirror_of(key)
        _real_makedirs(os.path.dirname(target))
        if keep_content and not _real_lexists(target) and not self.gone(key):
            with contextlib.suppress(IsADirectoryError, FileNotFoundError):
                self._copy_file(key, target)
        self.note(key)
        return _same_kind(os.fspath(path), target)

    def remove(self, path: Any) -> None:
        """``os.remove`` as the script sees it: the mirror goes, the real file stays."""
        key = self.key(path)
        assert key is not None
        where = self.where(key)
        if not _real_lexists(where):
            raise _oserror(errno.ENOENT, path)
        if _real_isdir(where) and not stat_mod.S_ISLNK(_R["lstat"](where).st_mode):
            raise _oserror(errno.EISDIR, path)
        if where != key:
            _R["remove"](where)
        self.deleted.add(key)
        self.note(key)

    def remove_tree(self, key: str) -> None:
        target = self.mirror_of(key)
        if _real_isdir(target) and not os.path.islink(target):
            _R["rmtree"](target)
        elif _real_lexists(target):
            _R["remove"](target)
        self.deleted.add(key)
        self.note(key)

    def names(self, key: str) -> list[str]:
        """The directory listing the script sees: the real one (unless removed) and the
        mirror's, without what it removed."""
        target = self.mirror_of(key)
        names = set(_R["listdir"](target)) if _real_isdir(target) else set()
        if not self.gone(key) and _real_isdir(key):
            real = _R["listdir"](key)
            names |= {n for n in real if os.path.join(key, n) not in self.deleted}
        return sorted(names)

    def note(self, key: str) -> None:
        if key not in self.redirected:
            self.redirected.append(key)

    @staticmethod
    def _copy_file(source: str, target: str) -> None:
        with _R["open"](source, "rb") as src, _R["open"](target, "wb") as dst:
            shutil.copyfileobj(src, dst)
        _R["chmod"](target, stat_mod.S_IMODE(_R["stat"](source).st_mode))

    def copy_into(self, key: str, target: str) -> None:
        """Copy what the script sees at ``key`` (a file, or a directory merged with its
        mirror) to ``target`` inside the scratch folder."""
        where = self.where(key)
        if _real_isdir(where):
            _real_makedirs(target)
            for name in self.names(key):
                self.copy_into(os.path.join(key, name), os.path.join(target, name))
        else:
            self._copy_file(where, target)

    # -- installing ---------------------------------------------------------------------
    @contextlib.contextmanager
    def installed(self) -> Iterator[Sandbox]:
        """The replacements in place, the trackers told to stay local; all put back after."""
        _real_makedirs(self.root)
        # The script's temporary files (and torch.compile's caches, which a compiler in a
        # subprocess must find on disk) go to a real folder inside the scratch, removed with it.
        temp = os.path.join(self.scratch, "tmp")
        _real_makedirs(temp)
        tracker_env = {
            **TRACKER_ENV,
            "MLFLOW_TRACKING_URI": "file://" + os.path.join(self.scratch, "mlruns"),
            "COMET_OFFLINE_DIRECTORY": os.path.join(self.scratch, "comet"),
            "TMPDIR": temp,
            "TEMP": temp,
            "TMP": temp,
            "TORCHINDUCTOR_CACHE_DIR": os.path.join(temp, "torchinductor"),
            "TRITON_CACHE_DIR": os.path.join(temp, "triton"),
        }
        saved_env = {k: os.environ.get(k) for k in tracker_env}
        undo: list[Callable[[], None]] = []
        try:
            os.environ.update(tracker_env)
            undo.append(_set(tempfile, "tempdir", temp))
            # The import system writes __pycache__ next to the script's own modules with
            # functions of its own; none is written instead.
            undo.append(_set(sys, "dont_write_bytecode", True))
            _ACTIVE.append(self)
            for owner, name, replacement in _patches():
                undo.append(_set(owner, name, replacement))
            undo += _rebind_stale_references()
            yield self
        finally:
            with contextlib.suppress(Exception):
                _close_event_writers(self)  # their thread would flush to the real path later
            for step in reversed(undo):
                step()
            if self in _ACTIVE:
                _ACTIVE.remove(self)
            for k, v in saved_env.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v


def _set(owner: Any, name: str, value: Any) -> Callable[[], None]:
    """Set ``owner.name`` (or ``owner[name]`` for a dict); returns how to put it back."""
    if isinstance(owner, dict):
        old = owner[name]
        owner[name] = value
        return lambda: owner.__setitem__(name, old)
    old = getattr(owner, name)
    setattr(owner, name, value)
    return lambda: setattr(owner, name, old)


def _rebind_stale_references() -> list[Callable[[], None]]:
    """Modules that imported a real function by name (``from torch import save``) get the
    replacement too, for as long as the sandbox is installed."""
    replacements = {id(real): new for real, new in _REPLACES.items()}
    undo = []
    for name, module in list(sys.modules.items()):
        if module is None or name.split(".")[0] in _KEEP_MODULES or name.startswith("_"):
            continue
        if name.startswith("nndoctor.capture.sandbox"):
            continue
        try:
            items = list(vars(module).items())
        except TypeError:
            continue
        for attr, value in items:
            new = replacements.get(id(value))
            if new is not None and not attr.startswith("__"):
                undo.append(_set(module, attr, new))
    return undo


def _close_event_writers(box: Sandbox) -> None:
    """TensorBoard's event writers flush from a thread every two minutes and at exit; one
    the script made would then append to the real path. They are closed while the sandbox
    still catches their writes."""
    module = sys.modules.get("tensorboard.summary.writer.event_file_writer")
    if module is None:
        return
    for obj in gc.get_objects():
        if issubclass(type(obj), module.EventFileWriter):  # type(): no lazy attribute lookups
            name = box.key(getattr(obj, "_file_name", None))
            if name is not None and name in box.redirected:
                obj.close()


# -- the replacements -------------------------------------------------------------------
# Each one asks for the installed sandbox when called; with none it is the real function.


def _open(file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
    box = active()
    if box is not None and not isinstance(file, int):
        if any(c in mode for c in "wax+"):
            keep = "a" in mode or ("+" in mode and "w" not in mode)
            file = box.for_write(file, keep_content=keep)
        else:
            file = box.for_read(file)
    return _R["open"](file, mode, *args, **kwargs)


def _os_open(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
    box = active()
    if box is not None and kwargs.get("dir_fd") is None:
        if flags & WRITE_FLAGS:
            key = box.key(path)
            if key is not None and flags & os.O_EXCL and flags & os.O_CREAT and box.exists(key):
                raise _oserror(errno.EEXIST, path)
            path = box.for_write(path, keep_content=not flags & os.O_TRUNC)
        else:
            path = box.for_read(path)
    return _R["os.open"](path, flags, *args, **kwargs)


def _reader(name: str) -> Callable[..., Any]:
    """stat, lstat, access, getxattr, listxattr: asked of the file the script sees."""
    real = _R[name]

    def read(path: Any = None, *args: Any, **kwargs: Any) -> Any:
        box = active()
        if box is not None and path is not None and kwargs.get("dir_fd") is None:
            path = box.for_read(path)
        return real(*(() if path is None else (path,)), *args, **kwargs)

    read.__name__ = read.__qualname__ = name
    return read


def _remove(path: Any, *args: Any, **kwargs: Any) -> None:
    box = active()
    if box is None or kwargs.get("dir_fd") is not None or box.key(path) is None:
        return _R["remove"](path, *args, **kwargs)
    box.remove(path)
    return None


def _mover(name: str) -> Callable[..., Any]:
    """rename and replace: the mirror gets what the script sees at ``src``; ``src`` goes."""
    real = _R[name]

    def move(src: Any, dst: Any, *args: Any, **kwargs: Any) -> None:
        box = active()
        if box is None or kwargs.get("src_dir_fd") is not None or kwargs.get("dst_dir_fd"):
            return real(src, dst, *args, **kwargs)
        ks, kd = box.key(src), box.key(dst)
        if ks is None and kd is None:
            return real(src, dst, *args, **kwargs)
        where = src if ks is None else box.where(ks)
        if not _real_lexists(where):
            raise _oserror(errno.ENOENT, src)
        target = box.for_write(dst, keep_content=False) if kd is not None else dst
        # What is only in the scratch folder is moved there at no cost; a real file or a
        # real directory (merged with its mirror) is copied, and stays where it is.
        only_mirrored = ks is None or where != ks
        if only_mirrored and ks is not None and _real_isdir(where):
            only_mirrored = box.gone(ks) or not _real_lexists(ks)
        if only_mirrored:
            real(where, target)
        else:
            box.copy_into(ks, os.fsdecode(target))
        if ks is not None:
            box.remove_tree(ks)
        return None

    move.__name__ = move.__qualname__ = name
    return move


def _mkdir(path: Any, *args: Any, **kwargs: Any) -> None:
    box = active()
    key = None if box is None or kwargs.get("dir_fd") is not None else box.key(path)
    if box is None or key is None:
        return _R["mkdir"](path, *args, **kwargs)
    if box.exists(key):
        raise _oserror(errno.EEXIST, path)
    if not box.isdir(os.path.dirname(key)):
        raise _oserror(errno.ENOENT, path)
    target = box.mirror_of(key)
    _real_makedirs(os.path.dirname(target))
    _R["mkdir"](target, *args, **kwargs)
    box.note(key)
    return None


def _rmdir(path: Any, *args: Any, **kwargs: Any) -> None:
    box = active()
    key = None if box is None or kwargs.get("dir_fd") is not None else box.key(path)
    if box is None or key is None:
        return _R["rmdir"](path, *args, **kwargs)
    if not box.exists(key):
        raise _oserror(errno.ENOENT, path)
    if not box.isdir(key):
        raise _oserror(errno.ENOTDIR, path)
    if box.names(key):
        raise _oserror(errno.ENOTEMPTY, path)
    box.remove_tree(key)
    return None


def _rmtree(path: Any, ignore_errors: bool = False, *args: Any, **kwargs: Any) -> None:
    box = active()
    key = None if box is None else box.key(path)
    if box is None or key is None:
        return _R["rmtree"](path, ignore_errors, *args, **kwargs)
    if not box.exists(key):
        if ignore_errors:
            return None
        raise _oserror(errno.ENOENT, path)
    box.remove_tree(key)
    return None


def _changer(name: str) -> Callable[..., Any]:
    """chmod, utime, truncate, setxattr, removexattr: applied to the mirror, which gets the
    real file's content first (a mode is a change too)."""
    real = _R[name]

    def change(path: Any, *args: Any, **kwargs: Any) -> Any:
        box = active()
        key = None if box is None or kwargs.get("dir_fd") is not None else box.key(path)
        if box is None or key is None:
            return real(path, *args, **kwargs)
        if not box.exists(key):
            raise _oserror(errno.ENOENT, path)
        if box.isdir(key):
            target = box.mirror_of(key)
            _real_makedirs(target)
            box.note(key)
        else:
            target = box.for_write(path, keep_content=True)
        return real(_same_kind(os.fspath(path), os.fsdecode(target)), *args, **kwargs)

    change.__name__ = change.__qualname__ = name
    return change


def _linker(name: str) -> Callable[..., Any]:
    """symlink and link: the mirror gets a copy of what the link points to (a link in the
    mirror to the real file would let writes through it reach the user's file)."""
    real = _R[name]

    def link(src: Any, dst: Any, *args: Any, **kwargs: Any) -> None:
        box = active()
        kd = None if box is None else box.key(dst)
        if box is None or kd is None or kwargs.get("dir_fd") or kwargs.get("src_dir_fd"):
            return real(src, dst, *args, **kwargs)
        if box.exists(kd):
            raise _oserror(errno.EEXIST, dst)
        text = os.fsdecode(os.fspath(src))
        if name == "symlink" and not os.path.isabs(text):
            text = os.path.join(os.path.dirname(kd), text)  # relative to the link's folder
        ks = box.key(text)
        target = box.for_write(dst, keep_content=False)
        if ks is not None and box.exists(ks):
            box.copy_into(ks, os.fsdecode(target))
        elif name == "symlink":
            _R["symlink"](box.mirror_of(ks) if ks is not None else text, target)
        else:
            raise _oserror(errno.ENOENT, src)
        return None

    link.__name__ = link.__qualname__ = name
    return link


def _listdir(path: Any = ".") -> list[Any]:
    box = active()
    key = None if box is None else box.key(path)
    if box is None or key is None:
        return _R["listdir"](path)
    if not box.isdir(key):
        return _R["listdir"](box.where(key))  # raises as the real call would
    return [_same_kind(path, n) for n in box.names(key)]


class _Entry:
    """A ``DirEntry`` whose ``path`` is the one the script asked for, not the mirror's."""

    __slots__ = ("name", "path", "_entry")

    def __init__(self, entry: os.DirEntry, path: Any) -> None:
        self.name, self.path, self._entry = entry.name, path, entry

    def is_dir(self, *, follow_symlinks: bool = True) -> bool:
        return self._entry.is_dir(follow_symlinks=follow_symlinks)

    def is_file(self, *, follow_symlinks: bool = True) -> bool:
        return self._entry.is_file(follow_symlinks=follow_symlinks)

    def is_symlink(self) -> bool:
        return self._entry.is_symlink()

    def stat(self, *, follow_symlinks: bool = True) -> os.stat_result:
        return self._entry.stat(follow_symlinks=follow_symlinks)

    def inode(self) -> int:
        return self._entry.inode()

    def is_junction(self) -> bool:
        return False

    def __fspath__(self) -> Any:
        return self.path

    def __repr__(self) -> str:
        return f"<DirEntry {self.name!r}>"


class _Entries:
    """What ``os.scandir`` returns: an iterator that is also a context manager."""

    def __init__(self, entries: list[_Entry]) -> None:
        self._it = iter(entries)

    def __iter__(self) -> _Entries:
        return self

    def __next__(self) -> _Entry:
        return next(self._it)

    def close(self) -> None:
        self._it = iter(())

    def __enter__(self) -> _Entries:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _scandir(path: Any = None) -> Any:
    box = active()
    given = "." if path is None else path
    key = None if box is None else box.key(given)
    if box is None or key is None:
        return _R["scandir"](*(() if path is None else (path,)))
    if not box.isdir(key):
        return _R["scandir"](box.where(key))  # raises as the real call would
    given = os.fspath(given)
    found: dict[str, os.DirEntry] = {}
    for folder in (key, box.mirror_of(key)):  # the mirror's entries shadow the real ones
        if _real_isdir(folder) and (folder != key or not box.gone(key)):
            with _R["scandir"](_same_kind(given, folder)) as it:
                found.update((os.fsdecode(e.name), e) for e in it)
    entries = [
        _Entry(found[n], os.path.join(given, _same_kind(given, n)))
        for n in box.names(key)
        if n in found
    ]
    return _Entries(entries)


def _chdir(path: Any) -> None:
    box = active()
    key = None if box is None else box.key(path)
    if box is None or key is None:
        return _R["chdir"](path)
    _R["chdir"](box.where(key))
    real = _R["getcwd"]()
    box.cwd_moved = real == box.root or real.startswith(box.root + os.sep)
    return None


def _getcwd() -> str:
    """The directory the script believes it is in (it may be a mirror-only one)."""
    real = _R["getcwd"]()
    box = active()
    if box is not None and (real == box.root or real.startswith(box.root + os.sep)):
        return real[len(box.root) :] or os.sep
    return real


def _getcwdb() -> bytes:
    return os.fsencode(_getcwd())


def _patches() -> list[tuple[Any, str, Any]]:
    patches: list[tuple[Any, str, Any]] = [
        (builtins, "open", _open),
        (io, "open", _open),
        (os, "open", _os_open),
        (os, "remove", _remove),
        (os, "unlink", _remove),
        (os, "mkdir", _mkdir),
        (os, "rmdir", _rmdir),
        (shutil, "rmtree", _rmtree),
        (os, "listdir", _listdir),
        (os, "scandir", _scandir),
        (os, "chdir", _chdir),
        (os, "getcwd", _getcwd),
        (os, "getcwdb", _getcwdb),
    ]
    patches += [(os, name, _COMMON[name]) for name in _COMMON if name in _R]
    return patches + _library_patches()


_COMMON: dict[str, Any] = {
    "stat": _reader("stat"),
    "lstat": _reader("lstat"),
    "access": _reader("access"),
    "getxattr": _reader("getxattr"),
    "listxattr": _reader("listxattr"),
    "rename": _mover("rename"),
    "replace": _mover("replace"),
    "chmod": _changer("chmod"),
    "utime": _changer("utime"),
    "truncate": _changer("truncate"),
    "setxattr": _changer("setxattr"),
    "removexattr": _changer("removexattr"),
    "symlink": _linker("symlink"),
    "link": _linker("link"),
}
# real function -> its replacement, for the modules that hold a real one under their own name
_REPLACES: dict[Any, Any] = {_R["open"]: _open, _R["os.open"]: _os_open, _R["remove"]: _remove}
_REPLACES.update({_R[name]: new for name, new in _COMMON.items() if name in _R})
_REPLACES.update({_R["rmtree"]: _rmtree, _R["listdir"]: _listdir, _R["scandir"]: _scandir})


# -- libraries --------------------------------------------------------------------------
_LIB: dict[str, Any] = {}  # the real library functions, taken on first use


def _path_like(f: Any) -> bool:
    return isinstance(f, (str, bytes, os.PathLike))


def _save(obj: Any, f: Any, *args: Any, **kwargs: Any) -> Any:
    box = active()
    if box is not None and _path_like(f):
        f = box.for_write(f, keep_content=False)
    return _LIB["torch.save"](obj, f, *args, **kwargs)


def _load(f: Any, *args: Any, **kwargs: Any) -> Any:
    box = active()
    if box is not None and _path_like(f):
        f = box.for_read(f)
    return _LIB["torch.load"](f, *args, **kwargs)


def _save_file(tensors: Any, filename: Any, *args: Any, **kwargs: Any) -> Any:
    box = active()
    if box is not None:
        filename = box.for_write(filename, keep_content=False)
    return _LIB["st.save_file"](tensors, filename, *args, **kwargs)


def _load_file(filename: Any, *args: Any, **kwargs: Any) -> Any:
    box = active()
    if box is not None:
        filename = box.for_read(filename)
    return _LIB["st.load_file"](filename, *args, **kwargs)


def _safe_open(filename: Any, *args: Any, **kwargs: Any) -> Any:
    box = active()
    if box is not None:
        filename = box.for_read(filename)
    return _LIB["safe_open"](filename, *args, **kwargs)


def _library_patches() -> list[tuple[Any, str, Any]]:
    """Writers in compiled code that take a path — torch.save (its zip writer opens the
    path itself), torch.load, safetensors — and modules that keep the real ``open`` under
    another name (numpy's ``savetxt`` opener, ``bz2``, ``tarfile``)."""
    import bz2
    import tarfile

    import torch

    _LIB.setdefault("torch.save", torch.save)
    _LIB.setdefault("torch.load", torch.load)
    _REPLACES[_LIB["torch.save"]] = _save
    _REPLACES[_LIB["torch.load"]] = _load
    patches: list[tuple[Any, str, Any]] = [
        (torch, "save", _save),
        (torch, "load", _load),
        (torch.serialization, "save", _save),
        (torch.serialization, "load", _load),
        (bz2, "_builtin_open", _open),
        (tarfile, "bltn_open", _open),
    ]
    with contextlib.suppress(ImportError, AttributeError):
        from numpy.lib import _datasource

        openers = _datasource._file_openers._file_openers
        if None in openers:
            patches.append((openers, None, _open))  # type: ignore[arg-type]
    try:
        import safetensors
        import safetensors.torch as st
    except ImportError:
        return patches
    _LIB.setdefault("st.save_file", st.save_file)
    _LIB.setdefault("st.load_file", st.load_file)
    _LIB.setdefault("safe_open", safetensors.safe_open)
    _REPLACES.update({_LIB["st.save_file"]: _save_file, _LIB["st.load_file"]: _load_file})
    _REPLACES[_LIB["safe_open"]] = _safe_open
    patches += [
        (st, "save_file", _save_file),
        (st, "load_file", _load_file),
        (st, "safe_open", _safe_open),
        (safetensors, "safe_open", _safe_open),
    ]
    return patches
