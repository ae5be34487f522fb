"""Files written whole or not at all: every file budgetnet writes goes through :func:`write_file`.

The bytes go to a temporary file beside the target (same directory, so the same file system),
are flushed and fsynced, optionally checked, and only then renamed over the target: a reader
sees the old file or the new one, never a part of one. On any failure the temporary file is
removed and an old file at the path stays as it was. An ``OSError`` (disk full, permission
denied, read-only file system, missing directory) becomes one
:class:`~budgetnet.errors.FileWriteError` that names the path and the reason.

Example:
    >>> import pathlib, tempfile
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> write_json(folder / "note.json", {"a": 1}).read_text()
    '{\\n  "a": 1\\n}\\n'
    >>> write_text(folder / "missing" / "note.txt", "hi")
    Traceback (most recent call last):
    ...
    budgetnet.errors.FileWriteError: file '.../missing/note.txt' cannot be written: the directory does not exist ([Errno 2] No such file or directory); expected an existing directory
    >>> [path.name for path in folder.iterdir()]  # no temporary file is left
    ['note.json']
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import secrets
import stat
from pathlib import Path
from typing import BinaryIO, Callable

from budgetnet.errors import FileWriteError

#: Why a write failed, in words, and what would work, per ``errno``.
REASONS = {
    errno.ENOSPC: ("the disk is full", "free space there, or another path"),
    errno.EDQUOT: ("the disk quota is exceeded", "free space there, or another path"),
    errno.EFBIG: ("the file is too large for the file system", "another path"),
    errno.EACCES: ("permission denied", "a directory you may write to"),
    errno.EPERM: ("permission denied", "a directory you may write to"),
    errno.EROFS: ("the file system is read-only", "a writable directory"),
    errno.ENOENT: ("the directory does not exist", "an existing directory"),
    errno.ENOTDIR: ("a parent of it is not a directory", "a path inside a directory"),
    errno.EISDIR: ("it is a directory", "a file path"),
    errno.ENAMETOOLONG: ("the name is too long", "a shorter file name"),
}


def write_file(path, write: Callable[[BinaryIO], None], *, check: Callable[[Path], None] | None = None,
               what: str = "file") -> Path:  # fmt: skip
    """Write ``path`` whole or not at all: ``write(handle)`` fills a temporary file beside it,
    which is fsynced, given to ``check`` (which may raise to refuse it), then renamed to ``path``.

    Args:
        path: the file to write (its directory must exist); an existing file keeps its
            permissions and is replaced only once the new one is complete; a symbolic link
            stays, and its target is replaced.
        write: writes the content to a binary handle.
        check: called with the complete temporary file before the rename.
        what: the file's kind in the error message (``"checkpoint"``, ``"plot"`` ...).

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        FileWriteError: any ``OSError`` while writing, naming ``path`` and the reason. The
            errors of ``write`` and ``check`` that are not about the file pass unchanged.

    Example:
        >>> import pathlib, tempfile
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "x.bin"
        >>> write_file(path, lambda handle: handle.write(b"abc")).read_bytes()
        b'abc'
    """
    path = Path(path)
    target = path.resolve() if path.is_symlink() else path  # a link stays a link to the new file
    temporary = None
    try:
        temporary, handle = _open_temporary(target)
        recorder = _Recorder(handle)
        with handle:
            try:
                write(recorder)
            except Exception:  # torch.save turns a failed write into a RuntimeError: raise the OSError
                if recorder.error is not None:
                    raise recorder.error from None
                raise
            handle.flush()
            os.fsync(handle.fileno())
        if check is not None:
            check(temporary)
        os.replace(temporary, target)
        temporary = None
        _sync_directory(target.parent)
    except FileWriteError:
        raise
    except OSError as error:
        reason, expected = REASONS.get(error.errno, (error.strerror or str(error), "a writable path"))
        raise FileWriteError(
            f"{what} {str(path)!r} cannot be written: {reason} ({_errno_text(error)}); expected {expected}"
            + ("; the previous file is unchanged" if path.is_file() else "")
        ) from None
    finally:
        if temporary is not None:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
    return path


def write_bytes(path, data: bytes, *, check=None, what: str = "file") -> Path:
    """Write ``data`` to ``path`` through :func:`write_file`.

    Example:
        >>> import pathlib, tempfile
        >>> write_bytes(pathlib.Path(tempfile.mkdtemp()) / "x.bin", b"\\x00\\x01").stat().st_size
        2
    """
    return write_file(path, lambda handle: handle.write(data), check=check, what=what)


def write_text(path, text: str, *, check=None, what: str = "file") -> Path:
    """Write ``text`` (UTF-8) to ``path`` through :func:`write_file`; the text is encoded before
    anything is written, so a string UTF-8 cannot hold (a lone surrogate) leaves no file.

    Example:
        >>> import pathlib, tempfile
        >>> write_text(pathlib.Path(tempfile.mkdtemp()) / "x.txt", "é").read_bytes()
        b'\\xc3\\xa9'
    """
    return write_bytes(path, text.encode("utf-8"), check=check, what=what)


def write_json(path, value, *, what: str = "file", indent: int | None = 2) -> Path:
    """Write ``value`` as JSON (and a final newline) to ``path`` through :func:`write_file`.

    Example:
        >>> import pathlib, tempfile
        >>> write_json(pathlib.Path(tempfile.mkdtemp()) / "x.json", [1, 2], indent=None).read_text()
        '[1, 2]\\n'
    """
    return write_text(path, json.dumps(value, indent=indent) + "\n", what=what)


def save_torch(path, obj, *, what: str = "file") -> Path:
    """``torch.save(obj)`` to ``path`` through :func:`write_file`.

    Example:
        >>> import pathlib, tempfile, torch
        >>> path = save_torch(pathlib.Path(tempfile.mkdtemp()) / "w.pt", {"w": torch.ones(2)})
        >>> torch.load(path, weights_only=True)["w"].tolist()
        [1.0, 1.0]
    """
    import torch

    return write_file(path, lambda handle: torch.save(obj, handle), what=what)


def save_figure(path, figure, *, what: str = "plot", **options) -> Path:
    """``figure.savefig`` to ``path`` through :func:`write_file`; the format is the path's
    suffix (``.png`` ...) unless ``format=`` is given.

    Example:
        >>> import pathlib, tempfile
        >>> from matplotlib.figure import Figure
        >>> figure = Figure(figsize=(1, 1))
        >>> save_figure(pathlib.Path(tempfile.mkdtemp()) / "f.png", figure).read_bytes()[:4]
        b'\\x89PNG'
    """
    path = Path(path)
    options.setdefault("format", path.suffix.lstrip(".").lower() or "png")
    return write_file(path, lambda handle: figure.savefig(handle, **options), what=what)


class _Recorder:
    """A binary handle that remembers the ``OSError`` its ``write`` raised."""

    def __init__(self, handle: BinaryIO):
        self.handle, self.error = handle, None

    def write(self, data) -> int:
        try:
            return self.handle.write(data)
        except OSError as error:
            self.error = error
            raise

    def __getattr__(self, name):
        return getattr(self.handle, name)


def _open_temporary(path: Path) -> tuple[Path, BinaryIO]:
    """A new file beside ``path`` (mode ``0o666`` less the umask, or ``path``'s own mode)."""
    temporary = path.with_name(f".{path.name[:80]}.{secrets.token_hex(4)}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666)
    try:
        with contextlib.suppress(FileNotFoundError):
            os.chmod(descriptor, stat.S_IMODE(os.stat(path).st_mode))
        return temporary, os.fdopen(descriptor, "wb")
    except BaseException:
        os.close(descriptor)
        os.unlink(temporary)
        raise


def _sync_directory(directory: Path) -> None:
    """fsync ``directory`` so that the rename survives a power cut (where the OS allows it)."""
    with contextlib.suppress(OSError):
        descriptor = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)


def _errno_text(error: OSError) -> str:
    return f"[Errno {error.errno}] {error.strerror}" if error.errno is not None else str(error)
