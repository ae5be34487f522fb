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
