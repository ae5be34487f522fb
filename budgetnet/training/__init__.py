"""Training: datasets and augmentation, recipes, ``fit`` / ``evaluate`` and checkpoints.

Example:
    >>> import budgetnet
    >>> from budgetnet.training import fit, load_data
    >>> data = load_data("digits", image_size=8, limit=50)
    >>> arch = budgetnet.parse("(3,4) gap", input_shape=(1, 8, 8), num_classes=10)
    >>> fit(arch, data, epochs=1, progress=False).epochs_run
    1
"""

from budgetnet.training.data import Dataset, Split, from_tensors, load_data
from budgetnet.training.readers import read_idx
from budgetnet.training.recipes import RECIPES, Recipe, get_recipe
from budgetnet.training.train import FitResult, evaluate, fit

__all__ = [
    "Dataset",
    "FitResult",
    "RECIPES",
    "Recipe",
    "Split",
    "evaluate",
    "fit",
    "from_tensors",
    "get_recipe",
    "load_data",
    "read_idx",
]
