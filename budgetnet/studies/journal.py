"""Optuna's journal file, made to survive its faults: whole records, and locks of dead processes.

Optuna's :class:`~optuna.storages.journal.JournalFileBackend` appends one JSON line per
operation under a lock file. Two faults broke it:

* a write that cannot complete (a full disk) leaves a torn last line; the next append is
  glued to it and every later read fails. :class:`SafeJournalBackend` writes each batch of
  records whole or not at all (on an error it truncates the file back), and cuts a torn
  tail (a last line without its newline, which no reader ever accepted) when it opens the
  file and before each append, with a warning saying how many bytes it dropped;
* a process killed while it holds the lock leaves the lock file, and every other process
  waits 30 s for it, with Optuna's warnings. :class:`OwnedLock` writes its owner
  (``host:pid``) into the lock (the target of a symbolic link, created atomically), so a
  lock whose owner is a dead process of this host is broken at once, with one warning.
  Any other lock (another host's, an older budgetnet's) is broken when it has not changed
  for :data:`LOCK_GRACE` seconds, as Optuna does (a lock is held for one append).

Example:
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "s.journal")
    >>> backend = SafeJournalBackend(path)
    >>> backend.append_logs([{"op_code": 0, "worker_id": "w", "study_name": "s", "directions": [1]}])
    >>> _ = open(path, "ab").write(b'{"op_code": 4, "wor')  # a write cut off by a full disk
    >>> len(list(SafeJournalBackend(path).read_logs(0)))  # doctest: +ELLIPSIS
    1
"""

from __future__ import annotations

import errno
import json
import os
import socket
import time
import uuid
import warnings

from optuna.storages.journal import JournalFileBackend

#: Seconds after which a lock whose owner cannot be seen dead (another host's) is broken anyway.
LOCK_GRACE = 30.0


def process_alive(owner: str) -> bool | None:
    """Whether the process ``host:pid`` runs: ``None`` when it is on another host (or
    ``owner`` is not ``host:pid``), False for a pid that is gone or a zombie.

    Example:
        >>> import os, socket
        >>> process_alive(f"{socket.gethostname()}:{os.getpid()}"), process_alive("elsewhere:1")
        (True, None)
    """
    host, _, pid = owner.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return None
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            return handle.read().rsplit(b")", 1)[1].split()[0] != b"Z"  # killed, not yet reaped
    except (OSError, IndexError):
        return True


class OwnedLock:
    """A journal lock: a symbolic link ``FILE.lock`` whose target names its owner ``host:pid``."""

    def __init__(self, path: str):
        self._path = path + ".lock"
        self._owner = f"{socket.gethostname()}:{os.getpid()}"

    def acquire(self) -> bool:
        delay = 0.001
        seen, since = None, time.monotonic()
        while True:
            try:
                os.symlink(self._owner, self._path)
                return True
            except FileExistsError:
                pass
            try:
                owner = os.readlink(self._path)
            except OSError:  # released meanwhile
                continue
            if owner != seen:
                seen, since = owner, time.monotonic()
            if process_alive(owner) is False:
                self._break(owner, f"its owner {owner} is gone")
                continue
            if time.monotonic() - since > LOCK_GRACE:  # another host's, or a reused pid
                self._break(owner, f"held by {owner} for over {LOCK_GRACE:.0f} s")
                continue
            time.sleep(delay)
            delay = min(delay * 2, 0.1)

    def _break(self, owner: str, why: str) -> None:
        """Remove the lock of ``owner``, unless another process replaced it meanwhile."""
        aside = f"{self._path}.{uuid.uuid4().hex}.stale"
        try:
            os.rename(self._path, aside)
        except FileNotFoundError:
            return
        try:
            taken = os.readlink(aside)
        except OSError:
            taken = None
        if taken != owner:  # a live process took the lock just now: give it back
            try:
                os.link(aside, self._path, follow_symlinks=False)
            except OSError:
                pass
        else:
            warnings.warn(f"journal lock {self._path}: {why}; broke it")
        os.unlink(aside)

    def release(self) -> None:
        aside = f"{self._path}.{uuid.uuid4().hex}.release"
        try:
            os.rename(self._path, aside)
        except OSError:
            raise RuntimeError(f"journal lock {self._path} was not held") from None
        os.unlink(aside)


class SafeJournalBackend(JournalFileBackend):
    """Optuna's journal file with whole records, torn tails cut, and :class:`OwnedLock`."""

    def __init__(self, path: str):
        super().__init__(path)
        self._owned_lock = OwnedLock(path)  # the only lock used: this class does every append
        if _torn_tail(path):
            self._owned_lock.acquire()
            try:
                self._cut_torn_tail()
            finally:
                self._owned_lock.release()

    def append_logs(self, logs: list[dict]) -> None:
        data = ("\n".join(json.dumps(log, separators=(",", ":")) for log in logs) + "\n").encode("utf-8")
        self._owned_lock.acquire()
        try:
            self._cut_torn_tail()
            descriptor = os.open(self._file_path, os.O_WRONLY | os.O_APPEND)
            try:
                size = os.fstat(descriptor).st_size
                try:
                    written = 0
                    while written < len(data):
                        written += os.write(descriptor, data[written:])
                    os.fsync(descriptor)
                except OSError:
                    os.ftruncate(descriptor, size)  # whole records or nothing
                    raise
            finally:
                os.close(descriptor)
        finally:
            self._owned_lock.release()

    def _cut_torn_tail(self) -> None:
        """Truncate a last line without its newline (call with the lock held)."""
        with open(self._file_path, "r+b") as handle:
            size = handle.seek(0, os.SEEK_END)
            end = size
            if size == 0:
                return
            while end > 0:
                start = max(end - 65536, 0)
                handle.seek(start)
                chunk = handle.read(end - start)
                if end == size and chunk.endswith(b"\n"):
                    return
                cut = chunk.rfind(b"\n")
                if cut >= 0:
                    end = start + cut + 1
                    break
                end = start
            handle.truncate(end)
            handle.flush()
            os.fsync(handle.fileno())
        warnings.warn(
            f"journal {self._file_path}: dropped a torn last record ({size - end} bytes) that a write cut off"
        )


def _torn_tail(path: str) -> bool:
    try:
        with open(path, "rb") as handle:
            if handle.seek(0, os.SEEK_END) == 0:
                return False
            handle.seek(-1, os.SEEK_END)
            return handle.read(1) != b"\n"
    except OSError as error:
        if error.errno == errno.ENOENT:
            return False
        raise
