"""budgetnet.files: every file written whole or not at all, on a real full disk (a small tmpfs),
a read-only one, and a simulated disk that fills mid-write; and the writers outside training
and export that use it (Arch JSON, latency tables, a search's kept weights)."""

from __future__ import annotations

import errno
import os
import stat

import pytest
import torch
from matplotlib.figure import Figure

import budgetnet
import budgetnet.files
from budgetnet.cost.latency import LatencyTable
from budgetnet.errors import BudgetNetError, FileWriteError
from budgetnet.files import save_figure, save_torch, write_bytes, write_file, write_json, write_text
from budgetnet.studies.objective import _save_weights
from full_disk import disk_full_after, fill, full_tmpfs, leftovers


def figure():
    canvas = Figure(figsize=(4, 3))
    canvas.add_subplot().plot(range(1000), [i % 7 for i in range(1000)])
    return canvas


#: One writer of each kind, each with content larger than the simulated disk's 100 bytes.
WRITERS = {
    "bytes": lambda path: write_bytes(path, b"x" * 5000),
    "text": lambda path: write_text(path, "é" * 5000),
    "json": lambda path: write_json(path, {"numbers": list(range(2000))}),
    "torch": lambda path: save_torch(path, {"weights": torch.arange(5000.0)}),
    "figure": lambda path: save_figure(path.with_suffix(".png"), figure()),
}


def written_path(kind, directory):
    return directory / ("out.png" if kind == "figure" else "out")


@pytest.mark.parametrize("kind", WRITERS)
def test_a_full_disk_leaves_the_previous_file_and_no_temporary_file(tmp_path, kind):
    with full_tmpfs(tmp_path) as disk:
        path = written_path(kind, disk)
        path.write_bytes(b"previous")
        fill(disk)
        with pytest.raises(FileWriteError) as caught:
            WRITERS[kind](disk / "out")
        assert str(caught.value) == (
            f"{'plot' if kind == 'figure' else 'file'} {str(path)!r} cannot be written: the disk is full ([Errno 28] "
            "No space left on device); "
            "expected free space there, or another path; the previous file is unchanged"
        )
        assert path.read_bytes() == b"previous"
        assert leftovers(disk, path.name, "filler") == []


@pytest.mark.parametrize("kind", WRITERS)
def test_a_disk_that_fills_mid_write_leaves_no_partial_file(tmp_path, monkeypatch, kind):
    path = written_path(kind, tmp_path)
    path.write_bytes(b"previous")
    disk_full_after(monkeypatch, 100)
    with pytest.raises(FileWriteError, match=r"cannot be written: the disk is full \(\[Errno 28\]"):
        WRITERS[kind](tmp_path / "out")
    assert path.read_bytes() == b"previous"
    assert leftovers(tmp_path, path.name) == []
    (tmp_path / path.name).unlink()  # and with no previous file: no file at all
    with pytest.raises(FileWriteError, match=r"the disk is full \(\[Errno 28\].*another path$"):
        WRITERS[kind](tmp_path / "out")
    assert leftovers(tmp_path) == []


def test_a_read_only_file_system(tmp_path):
    with full_tmpfs(tmp_path, read_only=True) as disk:
        with pytest.raises(FileWriteError) as caught:
            write_text(disk / "a.txt", "hi", what="plot")
        assert str(caught.value) == (
            f"plot {str(disk / 'a.txt')!r} cannot be written: the file system is read-only ([Errno 30] Read-only "
            "file system); expected a writable directory"
        )


def test_permission_denied(tmp_path, monkeypatch):
    # Root ignores permission bits, so the refusal is simulated where the temporary file is opened.
    def refuse(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(budgetnet.files.os, "open", refuse)
    with pytest.raises(FileWriteError) as caught:
        write_text(tmp_path / "a.txt", "hi", what="checkpoint")
    assert str(caught.value) == (
        f"checkpoint {str(tmp_path / 'a.txt')!r} cannot be written: permission denied ([Errno 13] Permission "
        "denied); expected a directory you may write to"
    )
    assert isinstance(caught.value, BudgetNetError) and isinstance(caught.value, OSError)


def test_a_missing_directory_and_a_directory_as_path(tmp_path):
    with pytest.raises(FileWriteError, match=r"missing/a.txt' cannot be written: the directory does not exist"):
        write_text(tmp_path / "missing" / "a.txt", "hi")
    (tmp_path / "folder").mkdir()
    with pytest.raises(FileWriteError, match=r"folder' cannot be written: it is a directory .*expected a file path"):
        write_text(tmp_path / "folder", "hi")
    assert leftovers(tmp_path, "folder") == []


def test_a_refusing_check_and_an_interrupted_write_leave_the_old_file(tmp_path):
    path = tmp_path / "model.py"
    path.write_text("old")

    def refuse(temporary):
        assert temporary.read_text() == "new" and temporary.parent == tmp_path
        raise ValueError("refused")

    with pytest.raises(ValueError, match="refused"):
        write_text(path, "new", check=refuse)

    def interrupted(handle):
        handle.write(b"half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_file(path, interrupted)
    assert path.read_text() == "old" and leftovers(tmp_path, "model.py") == []


def test_a_string_utf8_cannot_hold_writes_nothing(tmp_path):
    with pytest.raises(UnicodeEncodeError):
        write_text(tmp_path / "a.txt", "lone \ud800 surrogate")
    assert leftovers(tmp_path) == []


def test_permissions_are_the_umask_default_or_the_replaced_file_s(tmp_path):
    umask = os.umask(0o022)
    try:
        fresh = write_text(tmp_path / "fresh.txt", "a")
        assert stat.S_IMODE(fresh.stat().st_mode) == 0o644  # 0o666 less the umask 0o022
        kept = tmp_path / "kept.txt"
        kept.write_text("a")
        kept.chmod(0o600)
        write_text(kept, "b")
        assert stat.S_IMODE(kept.stat().st_mode) == 0o600 and kept.read_text() == "b"
    finally:
        os.umask(umask)


# -- the writers outside training and export -------------------------------------------------
def test_arch_json_latency_table_and_kept_weights_on_a_full_disk(tmp_path):
    arch = budgetnet.parse("(3,8) 2/2 (3,16) gap", input_shape=(1, 8, 8), num_classes=10)
    model = budgetnet.build(arch)
    with full_tmpfs(tmp_path) as disk:
        arch.save(disk / "arch.json")
        table = LatencyTable("cpu", cache_dir=disk, repeats=1, warmup=0)
        table.entries["conv"] = 0.5
        table.save()
        saved = _save_weights(model, disk, 3)
        before = {name: (disk / name).read_bytes() for name in ("arch.json", table.path.name, "trial3.pt")}
        fill(disk)
        with pytest.raises(FileWriteError, match=r"architecture '.*arch.json' cannot be written: the disk is full"):
            arch.with_input((1, 16, 16)).save(disk / "arch.json")
        table.entries["conv"] = 0.25
        with pytest.raises(FileWriteError, match=r"latency table '.*' cannot be written: the disk is full"):
            table.save()
        with pytest.raises(FileWriteError, match=r"trained weights '.*trial3.pt' cannot be written: the disk is full"):
            _save_weights(model, disk, 3)
        assert {name: (disk / name).read_bytes() for name in before} == before
        assert leftovers(disk, *before, "filler") == []
        assert budgetnet.Arch.load(disk / "arch.json") == arch
        assert torch.load(saved, weights_only=True).keys() == model.state_dict().keys()


def test_a_symbolic_link_stays_and_its_target_is_replaced(tmp_path):
    (tmp_path / "elsewhere").mkdir()
    target = tmp_path / "elsewhere" / "run.pt"
    target.write_text("old")
    link = tmp_path / "run.pt"
    link.symlink_to(target)
    write_text(link, "new")
    assert link.is_symlink() and target.read_text() == "new"
    assert leftovers(tmp_path / "elsewhere", "run.pt") == [] and leftovers(tmp_path, "elsewhere", "run.pt") == []
