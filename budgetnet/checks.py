"""What counts as a whole number and as an image shape: one rule for every module.

Each caller raises its own :class:`~budgetnet.errors.BudgetNetError` subclass (the class says
which part of budgetnet refused the value); the rule and the message's wording live here.

Example:
    >>> from budgetnet.errors import SearchError
    >>> check_int(SearchError, "trials", 3)
    3
    >>> check_int(SearchError, "trials", True, where="search")
    Traceback (most recent call last):
    ...
    budgetnet.errors.SearchError: search: trials=True is invalid; expected an integer >= 1
"""

from __future__ import annotations


def is_int(value, minimum: int | None = None) -> bool:
    """True for an ``int`` that is not a ``bool`` (``True`` is no count), at least ``minimum``.

    Example:
        >>> is_int(3, 1), is_int(True), is_int(2.0), is_int(0, 1)
        (True, False, False, False)
    """
    return isinstance(value, int) and not isinstance(value, bool) and (minimum is None or value >= minimum)


def check_int(error: type[Exception], field: str, value, minimum: int = 1, where: str | None = None) -> int:
    """``value`` when :func:`is_int` accepts it, else ``error("[where: ]field=value is invalid;
    expected an integer >= minimum")``.

    Example:
        >>> from budgetnet.errors import TrainingError
        >>> check_int(TrainingError, "epochs", 0)
        Traceback (most recent call last):
        ...
        budgetnet.errors.TrainingError: epochs=0 is invalid; expected an integer >= 1
    """
    if not is_int(value, minimum):
        prefix = f"{where}: " if where else ""
        raise error(f"{prefix}{field}={value!r} is invalid; expected an integer >= {minimum}")
    return value


def check_shape(error: type[Exception], value, field: str = "input_shape") -> tuple[int, int, int]:
    """``value`` as ``(channels, height, width)``, three integers >= 1, else ``error``.

    Example:
        >>> check_shape(ValueError, [1, 16, 16])
        (1, 16, 16)
        >>> check_shape(ValueError, (16, 16))
        Traceback (most recent call last):
        ...
        ValueError: input_shape=(16, 16) is invalid; expected (channels, height, width), three integers >= 1
    """
    try:
        shape = tuple(value)
    except TypeError:
        shape = ()
    if len(shape) != 3 or not all(is_int(side, 1) for side in shape):
        raise error(f"{field}={value!r} is invalid; expected (channels, height, width), three integers >= 1")
    return shape
