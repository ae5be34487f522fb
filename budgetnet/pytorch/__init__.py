"""The torch boundary: the one layer-to-torch table, the builder, the importer (torch.fx), devices.

Example:
    >>> import budgetnet
    >>> from budgetnet.pytorch import build
    >>> model = build(budgetnet.parse("(3,8) gap", input_shape=(1, 8, 8), num_classes=10))
    >>> type(model).__name__
    'BudgetNet'
"""

from budgetnet.pytorch.builder import BudgetNet, build
from budgetnet.pytorch.device import resolve_device
from budgetnet.pytorch.importer import arch_from_module, copy_weights, import_module, import_torchvision
from budgetnet.pytorch.modules import SpatialPyramidPool, init_weights

__all__ = [
    "BudgetNet",
    "SpatialPyramidPool",
    "arch_from_module",
    "build",
    "copy_weights",
    "import_module",
    "import_torchvision",
    "init_weights",
    "resolve_device",
]
