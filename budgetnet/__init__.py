"""budgetnet: CNN architecture search under a time budget, after He & Sun (CVPR 2015).

Example:
    >>> import budgetnet
    >>> arch = budgetnet.parse("(7,64)/2 3/3 (5,128) 2/2 (3,256)x3")
    >>> budgetnet.complexity(arch).conv_macs
    854954688
"""

from budgetnet.arch import FC, SPP, Arch, Conv, Flatten, Pool
from budgetnet.complexity import Budget, ComplexityReport, complexity, conv_macs
from budgetnet.errors import BudgetNetError
from budgetnet.explore import variants
from budgetnet.notation import parse
from budgetnet.rewrites import RULES, Rewrite, Rule, Site, rewrite

__version__ = "0.1.0"

__all__ = [
    "Arch",
    "Budget",
    "BudgetNetError",
    "ComplexityReport",
    "Conv",
    "FC",
    "Flatten",
    "Pool",
    "RULES",
    "Rewrite",
    "Rule",
    "SPP",
    "Site",
    "build",
    "complexity",
    "conv_macs",
    "parse",
    "rewrite",
    "search",
    "variants",
]


def build(arch, num_classes=None, norm=None):
    """Build a ``torch.nn.Module`` from an Arch (see :func:`budgetnet.builder.build`).

    Imported lazily so that ``import budgetnet`` does not import torch.

    Example:
        >>> import budgetnet
        >>> model = budgetnet.build(budgetnet.parse("(3,8) gap", input_shape=(1, 8, 8)), num_classes=10)
        >>> type(model).__name__
        'BudgetNet'
    """
    from budgetnet.builder import build as _build

    return _build(arch, num_classes=num_classes, norm=norm)


def search(space, data, **options):
    """Search ``space`` for the most accurate architectures inside its budget (an Optuna
    study); see :func:`budgetnet.study.search` for the options.

    Imported lazily so that ``import budgetnet`` does not import optuna or torch.

    Example:
        >>> import budgetnet, optuna
        >>> from budgetnet.data import load_data
        >>> study = budgetnet.search("small", load_data("digits", limit=60), n_trials=1, epochs=1,
        ...                          storage=optuna.storages.InMemoryStorage(), progress=False)
        >>> len(study.trials)
        1
    """
    from budgetnet.study import search as _search

    return _search(space, data, **options)
