"""Durable file writes: every file or folder Understudy keeps is written beside its final name, synced
and renamed into place, so a crash or a kill at any moment leaves the old version or the new one.

Also the one lock for read-modify-write of a config: the GUI, the CLI, the gateway and a tuning job are
separate processes that change the same files.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import glob
import os
import shutil
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

from engine.errors import ConfigError

PARTIAL_SUFFIX = ".partial"
LOCK_SUFFIX = ".lock"
LOCK_TIMEOUT_S = 30.0


def write_text(path: Path, text: str, mode: int = 0o666) -> None:
    """Replace ``path`` with ``text`` (UTF-8) atomically."""
    write_bytes(path, text.encode("utf-8"), mode)


def write_bytes(path: Path, data: bytes, mode: int = 0o666) -> None:
    """Replace ``path`` with ``data`` atomically.

    The partial file is created new (``O_EXCL``), so a link planted at its name is never followed: the
    note tool writes into folders other programs can write to as well. ``mode`` (before the umask) holds
    from creation, so a secret written with 0o600 is never readable by others, not even for a moment.
    """
    with publishing(path) as partial:
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
        with os.fdopen(os.open(partial, flags, mode), "wb") as file:
            file.write(data)


@contextlib.contextmanager
def publishing(target: Path) -> Iterator[Path]:
    """A fresh path beside ``target`` to write a file or a folder into, published over ``target`` when
    the block ends and removed if it raises.

    The name is unique per call, so two processes writing the same target never write into each
    other's file; leftovers of killed processes are cleared by the next write to the same target.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    _clear_abandoned(target)
    partial = target.with_name(f".{target.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}{PARTIAL_SUFFIX}")
    try:
        yield partial
        publish(partial, target)
    finally:
        _remove(partial)


def publish(partial: Path, target: Path) -> None:
    """Sync ``partial`` (a file, or a folder and everything in it) and rename it to ``target``.

    A file replaces the old one atomically. So does a folder where the OS can exchange two names
    (Linux, macOS): the old folder ends up at ``partial`` and is removed. Elsewhere the old folder is
    moved aside first, so a crash between the two renames leaves it beside the target, not lost.
    """
    partial, target = Path(partial), Path(target)
    _sync_tree(partial)
    if partial.is_dir() and target.exists():
        if not _exchange(partial, target):
            aside = target.with_name(f".{target.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.old")
            os.replace(target, aside)
            os.replace(partial, target)
            partial = aside
        _sync_folder(target.parent)
        _remove(partial)
        return
    os.replace(partial, target)
    _sync_folder(target.parent)


@contextlib.contextmanager
def locked(path: Path, timeout_s: float = LOCK_TIMEOUT_S) -> Iterator[None]:
    """Hold the lock of ``path`` (the file ``<path>.lock`` beside it) for a read-modify-write.

    Locks of the same path nest within a thread; other threads and processes wait their turn.
    """
    from filelock import FileLock, Timeout

    lock_path = Path(path).with_name(Path(path).name + LOCK_SUFFIX)
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(lock_path, is_singleton=True)
    try:
        lock.acquire(timeout=timeout_s)
    except Timeout:
        raise ConfigError(
            f"{path} has been locked by another Understudy process for {timeout_s:g} s; "
            "try again when it has finished, or close the other windows and commands"
        ) from None
    try:
        yield
    finally:
        lock.release()


def _sync_tree(path: Path) -> None:
    if path.is_dir():
        for child in path.rglob("*"):
            _sync(child)
    _sync(path)


def _sync(path: Path) -> None:
    if path.is_dir():
        _sync_folder(path)
        return
    # Windows flushes only handles open for writing.
    descriptor = os.open(path, os.O_RDWR if os.name == "nt" else os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _sync_folder(folder: Path) -> None:
    """Make a rename inside ``folder`` durable; Windows cannot open a folder for this, and needs not."""
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


_AT_FDCWD = -100
_EXCHANGE = 2  # Linux's RENAME_EXCHANGE and macOS's RENAME_SWAP


def _exchange(first: Path, second: Path) -> bool:
    """Swap two names in one step where the OS can; False where it cannot (the OS or the file system)."""
    if not sys.platform.startswith(("linux", "darwin")):
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    if hasattr(libc, "renameat2"):
        result = libc.renameat2(
            _AT_FDCWD, os.fsencode(first), _AT_FDCWD, os.fsencode(second), ctypes.c_uint(_EXCHANGE)
        )
    elif hasattr(libc, "renamex_np"):
        result = libc.renamex_np(os.fsencode(first), os.fsencode(second), ctypes.c_uint(_EXCHANGE))
    else:
        return False
    if result == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP):
        return False
    raise OSError(code, os.strerror(code), str(first), None, str(second))


def _clear_abandoned(target: Path) -> None:
    """Remove what killed processes left while writing ``target`` (their pid is in the name)."""
    import psutil

    pattern = f".{glob.escape(target.name)}.*-*{PARTIAL_SUFFIX}"
    for leftover in target.parent.glob(pattern):
        pid = leftover.name[len(target.name) + 2 :].split("-")[0]
        if pid.isdigit() and not psutil.pid_exists(int(pid)):
            _remove(leftover)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
