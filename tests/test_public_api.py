"""budgetnet uses only the public API of the libraries it builds on (Optuna above all), so an
upgrade cannot break the search silently; and its layers import one way.

The checks read the source with :mod:`ast`: no private attribute of another object
(``study._storage``, ``frozen._trial_id``), no private module (``optuna.storages._heartbeat``),
no ``optuna.Trial(...)`` constructor, no ``system_attrs``.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SOURCES = sorted([*ROOT.glob("budgetnet/**/*.py"), *ROOT.glob("search_spaces/*.py")])

#: budgetnet's own classes reading their own private fields on another instance of the class.
OWN_PRIVATE = {
    ("budgetnet/arch.py", "other._key"),  # Arch.__eq__ compares two Arch keys
    ("budgetnet/rewrites.py", "rule._refuse"),  # a Rule's helper on a Rule
    ("budgetnet/rewrites.py", "self.rule._build"),  # a rule's Proposal builds through its rule
}
#: CIFAR batches are numpy pickles: they name numpy's array rebuilder, which the safe
#: unpickler of budgetnet/data.py must hand back (numpy moved it in 2.0, hence both names).
PICKLE_NAMES = {"numpy._core.multiarray", "numpy.core.multiarray", "_reconstruct"}


def private_uses(path: Path) -> list[str]:
    """Every private name ``path`` uses that belongs to something other than ``self``/``cls``."""
    tree = ast.parse(path.read_text(), filename=str(path))
    where = path.relative_to(ROOT).as_posix()
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            private = node.attr.startswith("_") and not node.attr.startswith("__")
            own = isinstance(node.value, ast.Name) and node.value.id in ("self", "cls")
            if private and not own and (where, ast.unparse(node)) not in OWN_PRIVATE:
                found.append(f"{where}:{node.lineno}: {ast.unparse(node)}")
            if node.attr == "system_attrs":
                found.append(f"{where}:{node.lineno}: {ast.unparse(node)} (system_attrs)")
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            modules = [alias.name for alias in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            names = [alias.name for alias in node.names] if isinstance(node, ast.ImportFrom) else []
            if where == "budgetnet/data.py" and set(modules + names) <= PICKLE_NAMES:
                continue
            for module in modules:
                if not module.startswith("budgetnet") and any(part.startswith("_") and not part.startswith("__") for part in module.split(".")):
                    found.append(f"{where}:{node.lineno}: import of private module {module}")
            if isinstance(node, ast.ImportFrom) and node.level == 0 and not modules[0].startswith(("budgetnet", "search_spaces")):
                found += [f"{where}:{node.lineno}: private name {name}" for name in names if name.startswith("_")]
        elif isinstance(node, ast.Call):
            called = ast.unparse(node.func)
            if called in ("optuna.Trial", "optuna.trial.Trial", "Trial"):
                found.append(f"{where}:{node.lineno}: {called}(...) constructor")
            if called == "getattr" and len(node.args) > 1 and isinstance(node.args[1], ast.Constant):
                if str(node.args[1].value).startswith("_") and not str(node.args[1].value).startswith("__"):
                    found.append(f"{where}:{node.lineno}: getattr of private {node.args[1].value}")
    return found


def test_sources_are_found():
    names = {path.relative_to(ROOT).as_posix() for path in SOURCES}
    assert {"budgetnet/study.py", "budgetnet/storage.py", "search_spaces/base.py"} <= names


def test_no_private_names_of_other_libraries():
    found = [line for path in SOURCES for line in private_uses(path)]
    assert found == []


@pytest.mark.parametrize(
    "code, expected",
    [
        ("x = study._storage", "study._storage"),
        ("t = frozen._trial_id", "frozen._trial_id"),
        ("t = optuna.Trial(study, 3)", "optuna.Trial(...) constructor"),
        ("r = frozen.system_attrs.get('failed_trial')", "(system_attrs)"),
        ("from optuna.storages._heartbeat import fail_stale_trials", "import of private module"),
        ("from optuna.study import _optimize", "private name _optimize"),
        ("f = getattr(figure, '_suptitle')", "getattr of private _suptitle"),
    ],
)
def test_the_check_catches_each_kind(tmp_path, code, expected, monkeypatch):
    package = tmp_path / "budgetnet"
    package.mkdir()
    (package / "bad.py").write_text(code + "\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    found = private_uses(package / "bad.py")
    assert len(found) == 1 and expected in found[0] and found[0].startswith("budgetnet/bad.py:1:")


def test_own_private_fields_on_self_are_allowed(tmp_path, monkeypatch):
    package = tmp_path / "budgetnet"
    package.mkdir()
    (package / "ok.py").write_text("class A:\n    def f(self):\n        return self._x, type(self).__name__\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    assert private_uses(package / "ok.py") == []


# -- layers ------------------------------------------------------------------------------------
#: Each module's layer; a module imports (at the top or inside a function) only modules of
#: its own layer or below: layers -> shapes -> arch -> cost/budgets -> rewrites/spaces ->
#: search -> cli.
LAYERS = {
    "budgetnet.errors": 0,
    "budgetnet.checks": 0,
    "budgetnet.tables": 0,
    **dict.fromkeys(
        ["budgetnet.layers", "budgetnet.shapes", "budgetnet.dag", "budgetnet.arch", "budgetnet.notation",
         "budgetnet.zoo", "budgetnet.torch_layers", "budgetnet.builder", "budgetnet.importer"], 1,
    ),  # fmt: skip
    **dict.fromkeys(
        ["budgetnet.complexity", "budgetnet.budgets", "budgetnet.memory", "budgetnet.latency", "budgetnet.data",
         "budgetnet.train",
         "budgetnet.record", "budgetnet.results", "budgetnet.storage"], 2,
    ),  # fmt: skip
    **dict.fromkeys(["budgetnet.rewrites", "budgetnet.block_rewrites", "budgetnet.explore"], 3),
    **{f"search_spaces.{name}": 3 for name in ("base", "paper", "small", "stage", "replacement", "residual")},
    "search_spaces": 3,
    **dict.fromkeys(["budgetnet.study", "budgetnet.workers", "budgetnet.export", "budgetnet.plots"], 4),
    "budgetnet.cli": 5,
    "budgetnet": 6,
    "budgetnet.__main__": 6,
}
LAYER_NAMES = ["errors", "layers/shapes/arch", "cost/budgets", "rewrites/spaces", "search", "cli", "package"]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    name = ".".join(parts)
    return "budgetnet.cli" if name.startswith("budgetnet.cli.") else name


def layer_of(name: str) -> int | None:
    while name:
        if name in LAYERS:
            return LAYERS[name]
        name = name.rpartition(".")[0]
    return None


def imports_of(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return {name for name in found if name.split(".")[0] in ("budgetnet", "search_spaces")}


def test_every_module_has_a_layer():
    assert [module_name(path) for path in SOURCES if layer_of(module_name(path)) is None] == []


def test_dependencies_run_one_way():
    upward = []
    for path in SOURCES:
        name = module_name(path)
        for imported in imports_of(path):
            target = layer_of(imported)
            if imported == "budgetnet.__version__":  # the package's version string, for --version
                continue
            if target is not None and target > layer_of(name):
                upward.append(f"{name} ({LAYER_NAMES[layer_of(name)]}) imports {imported} ({LAYER_NAMES[target]})")
    assert upward == []
