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
    ("budgetnet/graph/arch.py", "other._key"),  # Arch.__eq__ compares two Arch keys
    ("budgetnet/rewrites/framework.py", "rule._refuse"),  # a Rule's helper on a Rule
    ("budgetnet/rewrites/framework.py", "self.rule._build"),  # a rule's Proposal builds through its rule
}
#: Names public by documentation despite their underscore: ``os._exit`` (exit without cleanup),
#: which budgetnet/cli/common.py turns into an error while a user's FILE.py runs.
DOCUMENTED_PUBLIC = {"_exit"}
#: CIFAR batches are numpy pickles: they name numpy's array rebuilder, which the safe
#: unpickler of budgetnet/training/readers.py must hand back (numpy moved it in 2.0, hence both names).
PICKLE_NAMES = {"numpy._core.multiarray", "numpy.core.multiarray", "_reconstruct"}


def private_uses(path: Path) -> list[str]:
    """Every private name ``path`` uses that belongs to something other than ``self``/``cls``."""
    tree = ast.parse(path.read_text(), filename=str(path))
    where = path.relative_to(ROOT).as_posix()
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            private = node.attr.startswith("_") and not node.attr.startswith("__") and node.attr not in DOCUMENTED_PUBLIC
            own = isinstance(node.value, ast.Name) and node.value.id in ("self", "cls")
            if private and not own and (where, ast.unparse(node)) not in OWN_PRIVATE:
                found.append(f"{where}:{node.lineno}: {ast.unparse(node)}")
            if node.attr == "system_attrs":
                found.append(f"{where}:{node.lineno}: {ast.unparse(node)} (system_attrs)")
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            modules = [alias.name for alias in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            names = [alias.name for alias in node.names] if isinstance(node, ast.ImportFrom) else []
            if where == "budgetnet/training/readers.py" and set(modules + names) <= PICKLE_NAMES:
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
    assert {"budgetnet/studies/study.py", "budgetnet/studies/storage.py", "search_spaces/base.py"} <= names


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
#: The packages from the bottom up: a module imports (at the top or inside a function) only
#: from its own package or the ones below it. docs/architecture.md lists the same order.
PACKAGES = [
    ("base", ("budgetnet.errors", "budgetnet.checks", "budgetnet.tables", "budgetnet.files")),
    ("graph", ("budgetnet.graph",)),
    ("pytorch", ("budgetnet.pytorch",)),
    ("cost", ("budgetnet.cost",)),
    ("rewrites", ("budgetnet.rewrites",)),
    ("search_spaces", ("search_spaces",)),
    ("training", ("budgetnet.training",)),
    ("studies", ("budgetnet.studies",)),
    ("plots", ("budgetnet.plots",)),
    ("cli", ("budgetnet.cli",)),
    ("package", ("budgetnet",)),
]
#: The upward imports there are, each inside a function and each for a reason.
UPWARD = {
    # Arch.from_module, the public spelling of the torch importer (imported on first use)
    ("budgetnet.graph.arch", "budgetnet.pytorch.importer"),
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(path): path for path in SOURCES}


def package_of(name: str) -> str | None:
    """The package (layer) a module belongs to: the longest prefix listed in PACKAGES."""
    best = None
    for package, prefixes in PACKAGES:
        for prefix in prefixes:
            if (name == prefix or name.startswith(prefix + ".")) and (best is None or len(prefix) > len(best[1])):
                best = (package, prefix)
    return None if best is None else best[0]


def rank(package: str) -> int:
    return [name for name, _ in PACKAGES].index(package)


def imports_of(path: Path) -> set[str]:
    """The budgetnet and search_spaces modules ``path`` imports, at the top or in a function
    (not those under ``if TYPE_CHECKING:``, which only annotations read)."""
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and ast.unparse(node.test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING"):
            node.body = []
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            for alias in node.names:  # `from package import module` imports the module
                full = f"{node.module}.{alias.name}"
                found.add(full if full in MODULES or alias.name == "__version__" else node.module)
    return {name for name in found if name.split(".")[0] in ("budgetnet", "search_spaces")}


def import_graph():
    import networkx as nx

    graph = nx.DiGraph()
    for name, path in MODULES.items():
        graph.add_node(name)
        for imported in imports_of(path):
            if imported == "budgetnet.__version__":  # the package's version string, for --version
                continue
            graph.add_edge(name, imported)
    return graph


def test_every_module_has_a_package():
    assert [name for name in MODULES if package_of(name) is None] == []


def test_dependencies_run_one_way():
    upward = [
        f"{source} ({package_of(source)}) imports {target} ({package_of(target)})"
        for source, target in import_graph().edges
        if package_of(target) is not None and rank(package_of(target)) > rank(package_of(source))
        and (source, target) not in UPWARD
    ]
    assert upward == []


def test_no_circle_between_files():
    import networkx as nx

    graph = import_graph()
    graph.remove_edges_from(UPWARD)
    # a package's __init__ re-exports its modules; a module importing its own package's
    # __init__ would close a circle, so every circle counts, the __init__ ones too
    assert list(nx.simple_cycles(graph)) == []


def test_the_package_map_is_what_the_imports_draw(capsys):
    """The order of PACKAGES is the one the imports give, and docs/architecture.md shows it."""
    import networkx as nx

    graph = nx.DiGraph()
    for source, target in import_graph().edges:
        if (source, target) not in UPWARD and package_of(source) != package_of(target):
            graph.add_edge(package_of(source), package_of(target))
    order = list(nx.lexicographical_topological_sort(graph.reverse(), key=rank))
    with capsys.disabled():
        print("\npackages, bottom up:", " <- ".join(order))
    assert order == [name for name, _ in PACKAGES]
    doc = (ROOT / "docs" / "architecture.md").read_text()
    assert "packages, bottom up: " + " <- ".join(order) in doc
