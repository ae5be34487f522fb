"""A full disk for the writers' tests: a real one (a small tmpfs, filled) and a simulated one.

``full_tmpfs(tmp_path)`` mounts a 1 MiB tmpfs (the tests run as root here; where mounting is
not permitted the test is skipped with the reason); ``fill(directory)`` then takes its last
free byte. ``disk_full_after(monkeypatch, n)`` makes every write of :mod:`budgetnet.files`
fail with ``ENOSPC`` after ``n`` bytes, as a disk that fills mid-write does; it runs anywhere.
"""

from __future__ import annotations

import contextlib
import errno
import subprocess

import pytest


@contextlib.contextmanager
def full_tmpfs(tmp_path, size: str = "1m", read_only: bool = False):
    """A tmpfs of ``size`` (read-only if asked) mounted at ``tmp_path / "tmpfs"`` for the ``with`` block."""
    mount_point = tmp_path / "tmpfs"
    mount_point.mkdir()
    try:
        mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}{',ro' if read_only else ''}", "tmpfs",
                                  str(mount_point)],
                                 capture_output=True, text=True)  # fmt: skip
    except FileNotFoundError:
        pytest.skip("no mount command: cannot make a small file system to fill")
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs to fill (needs root): {mounted.stderr.strip() or mounted.returncode}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", str(mount_point)], check=True)


def fill(directory) -> None:
    """Write ``directory / "filler"`` until the file system has no byte left."""
    with open(directory / "filler", "wb", buffering=0) as handle:
        for size in (65536, 4096, 1):
            try:
                while True:
                    handle.write(b"\0" * size)
            except OSError as error:
                assert error.errno == errno.ENOSPC, error


def disk_full_after(monkeypatch, limit: int) -> None:
    """Every write through :mod:`budgetnet.files` raises ENOSPC once ``limit`` bytes are written
    (what fits is written, as on a real disk)."""
    import budgetnet.files

    written = {"bytes": 0}
    real_write = budgetnet.files._Recorder.write

    def write(self, data) -> int:
        room = limit - written["bytes"]
        if len(data) > room:
            real_write(self, bytes(memoryview(data)[: max(room, 0)]))
            written["bytes"] = limit
            self.error = OSError(errno.ENOSPC, "No space left on device")
            raise self.error
        written["bytes"] += len(data)
        return real_write(self, data)

    monkeypatch.setattr(budgetnet.files._Recorder, "write", write)


def leftovers(directory, *expected: str) -> list[str]:
    """The names in ``directory`` other than ``expected`` (temporary files a writer left)."""
    return sorted(path.name for path in directory.iterdir() if path.name not in expected)
