"""budgetnet: CNN architecture search under a time budget, after He & Sun (CVPR 2015).

Example:
    >>> import budgetnet
    >>> arch = budgetnet.parse("(7,64)/2 3/3 (5,128) 2/2 (3,256)x3")
    >>> budgetnet.complexity(arch).conv_macs
    854954688
"""

from budgetnet.graph import FC, SPP, Arch, Concat, Conv, Flatten, Pool, Residual, parse, zoo
from budgetnet.cost.budgets import Budget, LatencyBudget
from budgetnet.cost.complexity import ComplexityReport, complexity, conv_macs
from budgetnet.errors import BudgetNetError
from budgetnet.rewrites import RULES, Rewrite, Rule, Site, rewrite, variants

__version__ = "0.1.0"

__all__ = [
    "Arch",
    "Budget",
    "BudgetNetError",
    "Concat",
    "ComplexityReport",
    "Conv",
    "FC",
    "Flatten",
    "LatencyBudget",
    "LatencyTable",
    "Pool",
    "RULES",
    "Residual",
    "Rewrite",
    "Rule",
    "SPP",
    "Site",
    "build",
    "complexity",
    "confirm",
    "conv_macs",
    "evaluate",
    "fit",
    "load_data",
    "measure",
    "parse",
    "rewrite",
    "search",
    "variants",
    "zoo",
]


def build(arch, num_classes=None, norm=None, weights_from=None):
    """Build a ``torch.nn.Module`` from an Arch (see :func:`budgetnet.pytorch.builder.build`).

    Imported lazily so that ``import budgetnet`` does not import torch.

    Example:
        >>> import budgetnet
        >>> model = budgetnet.build(budgetnet.parse("(3,8) gap", input_shape=(1, 8, 8)), num_classes=10)
        >>> type(model).__name__
        'BudgetNet'
    """
    from budgetnet.pytorch.builder import build as _build

    return _build(arch, num_classes=num_classes, norm=norm, weights_from=weights_from)


def search(space, data, **options):
    """Search ``space`` for the most accurate architectures inside its budget (an Optuna
    study); see :func:`budgetnet.studies.study.search` for the options.

    Imported lazily so that ``import budgetnet`` does not import optuna or torch.

    Example:
        >>> import budgetnet, optuna
        >>> from budgetnet.training.data import load_data
        >>> study = budgetnet.search("small", load_data("digits", limit=60), n_trials=1, epochs=1,
        ...                          storage=optuna.storages.InMemoryStorage(), progress=False)
        >>> len(study.trials)
        1
    """
    from budgetnet.studies.study import search as _search

    return _search(space, data, **options)


def confirm(study, **options):
    """Retrain a search's best candidates and its baseline on several seeds, score them on
    held-out data, and give the verdict with 95 % intervals; see
    :func:`budgetnet.studies.confirm.confirm` for the options. Imported lazily (optuna, torch).

    Example:
        >>> import budgetnet, optuna
        >>> data = budgetnet.load_data("digits", image_size=8, limit=60)
        >>> study = budgetnet.search("small", data, n_trials=1, epochs=1, progress=False,
        ...                          storage=optuna.storages.InMemoryStorage())
        >>> report = budgetnet.confirm(study, top=1, seeds=1, folds=2, data=data, progress=False)
        >>> len(report["models"]), report["held_out"]["kind"]
        (2, 'kfold')
    """
    from budgetnet.studies.confirm import confirm as _confirm

    return _confirm(study, **options)


def load_data(spec="digits", **options):
    """Load a dataset (``"digits"``, ``"idx:DIR"``, ``"cifar:DIR"``, ``"folder:DIR"``); see
    :func:`budgetnet.training.data.load_data` for the options. Imported lazily (torch).

    Example:
        >>> import budgetnet
        >>> budgetnet.load_data("digits", limit=100).input_shape
        (1, 16, 16)
    """
    from budgetnet.training.data import load_data as _load_data

    return _load_data(spec, **options)


def fit(model_or_arch, data, recipe="quick", **options):
    """Train an Arch or a torch module on a dataset; see :func:`budgetnet.training.train.fit` for the
    options. Imported lazily (torch).

    Example:
        >>> import budgetnet
        >>> data = budgetnet.load_data("digits", image_size=8, limit=50)
        >>> arch = budgetnet.parse("(3,4) gap", input_shape=(1, 8, 8), num_classes=10)
        >>> budgetnet.fit(arch, data, epochs=1, progress=False).epochs_run
        1
    """
    from budgetnet.training.train import fit as _fit

    return _fit(model_or_arch, data, recipe, **options)


def evaluate(model, data, **options):
    """Score a trained model on a split (optionally with the paper's 10 views); see
    :func:`budgetnet.training.train.evaluate`. Imported lazily (torch).

    Example:
        >>> import budgetnet
        >>> data = budgetnet.load_data("digits", image_size=8, limit=50)
        >>> model = budgetnet.build(budgetnet.parse("(3,4) gap", input_shape=(1, 8, 8), num_classes=10))
        >>> budgetnet.evaluate(model, data, device="cpu")["images"]
        359
    """
    from budgetnet.training.train import evaluate as _evaluate

    return _evaluate(model, data, **options)


def measure(arch_or_module, device="cpu", batch_size=1, mode="forward", **options):
    """Measured time of a network on a device (median of several runs); see
    :func:`budgetnet.cost.latency.measure`. Imported lazily (torch).

    Example:
        >>> import budgetnet
        >>> arch = budgetnet.parse("(3,4) gap", input_shape=(1, 8, 8), num_classes=10)
        >>> budgetnet.measure(arch, "cpu", repeats=2, warmup=1).ms_per_image > 0
        True
    """
    from budgetnet.cost.latency import measure as _measure

    return _measure(arch_or_module, device, batch_size, mode, **options)


#: Public classes whose modules import torch: loaded on first access.
_LAZY_CLASSES = {"LatencyTable": "budgetnet.cost.latency"}
#: Public modules that import matplotlib, optuna or torch: ``budgetnet.plots.lineage(...)``
#: works after a plain ``import budgetnet``, which itself imports none of them.
_LAZY_MODULES = {
    "plots": "budgetnet.plots",
    "results": "budgetnet.studies.results",
    "export": "budgetnet.studies.export",
}


def __getattr__(name):
    """The lazy names: ``budgetnet.LatencyTable`` and the modules ``budgetnet.plots``,
    ``budgetnet.results`` and ``budgetnet.export``, imported on first access.

    Example:
        >>> import budgetnet
        >>> budgetnet.plots.lineage.__name__, budgetnet.results.__name__
        ('lineage', 'budgetnet.studies.results')
    """
    import importlib

    if name in _LAZY_CLASSES:
        return getattr(importlib.import_module(_LAZY_CLASSES[name]), name)
    if name in _LAZY_MODULES:
        return importlib.import_module(_LAZY_MODULES[name])
    raise AttributeError(f"module 'budgetnet' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY_CLASSES) | set(_LAZY_MODULES))
