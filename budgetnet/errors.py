"""The errors budgetnet raises on purpose.

Every bad input ends in exactly one subclass of :class:`BudgetNetError`, with a message
that names the field, the value and what would have been accepted.

Example:
    >>> import budgetnet
    >>> try:
    ...     budgetnet.parse("(3,0)")
    ... except budgetnet.BudgetNetError as error:
    ...     print(type(error).__name__)
    NotationError
"""

from __future__ import annotations


#: Characters of a notation a :class:`NotationError` shows; a longer one is cut around the column.
NOTATION_EXCERPT = 120


class BudgetNetError(Exception):
    """Base class of every error budgetnet raises on purpose."""


class NotationError(BudgetNetError, ValueError):
    """A notation string that does not follow the grammar; ``column`` is 1-based."""

    def __init__(self, text: str, column: int, problem: str, field: str | None = None, value=None):
        self.text = text
        self.column = column
        self.field = field
        self.value = value
        shown, offset = text, column - 1
        if len(text) > NOTATION_EXCERPT:  # a long text is shown around the column, not whole
            start = max(0, min(column - 1 - NOTATION_EXCERPT // 2, len(text) - NOTATION_EXCERPT))
            before, after = ("..." if start else ""), ("..." if start + NOTATION_EXCERPT < len(text) else "")
            shown = before + text[start : start + NOTATION_EXCERPT] + after
            offset = len(before) + column - 1 - start
        super().__init__(f"notation column {column}: {problem}\n  {shown}\n  {' ' * offset}^")


class LayerSpecError(BudgetNetError, ValueError):
    """A layer parameter out of range (kernel, filters, stride, padding, repeat count, ...)."""

    def __init__(self, layer: str, field: str, value, expected: str):
        self.field = field
        self.value = value
        super().__init__(f"{layer}: {field}={value!r} is invalid; expected {expected}")


class ShapeError(BudgetNetError, ValueError):
    """A layer whose feature map would be empty, or whose kernel exceeds the padded map."""


class ArchError(BudgetNetError, ValueError):
    """An architecture that is not well formed: layer order, graph shape, JSON content."""


class BudgetError(BudgetNetError, ValueError):
    """A budget that is malformed or that no candidate can meet."""


class UnsupportedModuleError(BudgetNetError, TypeError):
    """A torch module that :meth:`budgetnet.Arch.from_module` cannot express as an Arch."""


class SearchError(BudgetNetError, ValueError):
    """A search that cannot start or resume: unknown space or objective, a bad trial count,
    a study resumed with other settings, or a trial that does not exist or never completed."""


class ConfirmError(BudgetNetError, ValueError):
    """A confirmation that cannot run: a bad count of candidates, seeds or folds, or a study
    with no completed trial or no baseline."""


class StorageError(BudgetNetError, RuntimeError):
    """A study storage that is malformed or does not connect (the message names host and port)."""


class ExportError(BudgetNetError, ValueError):
    """A trial that cannot be exported in the asked format (no completed result, no weights)."""


class FileWriteError(BudgetNetError, OSError):
    """A file that cannot be written (disk full, permission denied, read-only file system, no
    such directory); the message names the path. See :mod:`budgetnet.files`."""


class DataError(BudgetNetError, ValueError):
    """A dataset that cannot be loaded: unknown source, missing path, wrong format, bad labels."""


class DeviceError(BudgetNetError, ValueError):
    """A device that is not there (``"cuda"`` on a machine without a GPU) or is not understood."""


class CheckpointError(BudgetNetError, ValueError):
    """A checkpoint that cannot be read or belongs to another architecture or recipe."""


class TrainingError(BudgetNetError, ValueError):
    """A training or evaluation setting out of range (recipe, batch size, views, model output)."""


class MemoryLimitError(BudgetNetError, ValueError):
    """A network whose estimated memory (parameters, activations x batch) exceeds the limit,
    or a memory limit that is not a size; see :mod:`budgetnet.cost.memory`."""


class LatencyError(BudgetNetError, ValueError):
    """A time measurement setting out of range, or a latency table that cannot be read."""


class RewriteError(BudgetNetError, ValueError):
    """A layer-replacement rewrite that does not apply: the site is not in the Arch, the
    rule's conditions fail, a width solves to zero, a shape breaks, or the cost moves beyond
    the tolerance. ``rule``, ``site`` and ``reason`` are kept as attributes."""

    def __init__(self, rule: str, site, reason: str):
        self.rule = rule
        self.site = site
        self.reason = reason
        if site is None:
            super().__init__(f"rewrite rule {rule!r}: {reason}")
        else:
            where = getattr(site, "where", None)
            super().__init__(f"rewrite {rule} at {where() if callable(where) else site}: {reason}")
