"""Execute every notebook in ``notebooks/`` as a user would; each notebook is one test.

Each runs on a fresh ``python3`` kernel, in a copy of the notebooks folder under a temporary
directory (so files a notebook writes never land in the checkout), with matplotlib on Agg.
A notebook shows no warning or log line (nothing on stderr), and every file it writes beside
itself is one that .gitignore ignores (the rest go to a temporary folder).
"""

from __future__ import annotations

import fnmatch
import shutil
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK_DIR = ROOT / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
CELL_TIMEOUT_S = 600


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[path.name for path in NOTEBOOKS])
def test_notebook_runs(path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("MPLBACKEND", "Agg")
    work = tmp_path / "notebooks"
    shutil.copytree(NOTEBOOK_DIR, work, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    before = set(work.rglob("*"))
    notebook = nbformat.read(work / path.name, as_version=4)
    client = NotebookClient(
        notebook, timeout=CELL_TIMEOUT_S, kernel_name="python3", resources={"metadata": {"path": str(work)}}
    )
    client.execute()  # raises CellExecutionError, with the cell and its traceback, on failure
    code = [cell for cell in notebook.cells if cell.cell_type == "code" and cell.source.strip()]
    assert code, f"{path.name} has no code cell"
    assert all(cell.execution_count for cell in code)
    errors = [out for cell in code for out in cell.get("outputs", []) if out.get("output_type") == "error"]
    assert not errors, errors
    noise = [out["text"] for cell in code for out in cell.get("outputs", []) if out.get("name") == "stderr"]
    assert not noise, noise  # warnings, Optuna's [I ...] lines, progress bars
    written = sorted(f"notebooks/{p.relative_to(work).as_posix()}" for p in set(work.rglob("*")) - before if p.is_file())
    assert [name for name in written if not ignored(name)] == []


def ignored(path: str) -> bool:
    """Whether .gitignore ignores ``path`` (relative to the checkout): its plain patterns, a
    pattern with a slash against the whole path, without one against each part, ``dir/`` a folder."""
    parts = path.split("/")
    for pattern in (ROOT / ".gitignore").read_text().splitlines():
        pattern = pattern.strip()
        if not pattern or pattern.startswith(("#", "!")):
            continue
        folder = pattern.endswith("/")
        pattern = pattern.strip("/")
        if "/" in pattern:
            prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts) - (0 if not folder else 1))]
            if any(fnmatch.fnmatch(prefix, pattern) for prefix in prefixes):
                return True
        elif any(fnmatch.fnmatch(part, pattern) for part in (parts[:-1] if folder else parts)):
            return True
    return False


@pytest.mark.parametrize(
    "path, expected",
    [("notebooks/pareto.png", True), ("notebooks/budgetnet.db", True), ("notebooks/best_model.py", False),
     ("notebooks/weights/trial0.pt", False), ("notebooks/x/__pycache__/m.pyc", True), ("budgetnet_weights/a.pt", True)],
)  # fmt: skip
def test_ignored_reads_gitignore_as_git_does(path, expected):
    assert ignored(path) is expected
