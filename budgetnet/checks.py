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


#: Largest seed budgetnet accepts: torch's generators take 0 .. 2**64-1 and budgetnet seeds
#: some of them with small offsets (``seed + 1``, ``seed + trial number``), so a seed is kept
#: within a signed 64-bit integer.
MAX_SEED = 2**63 - 1
#: Largest memory size in bytes (8 EiB): sizes are compared with C ``int64`` counts.
MAX_BYTES = 2**63 - 1


def check_int(
    error: type[Exception],
    field: str,
    value,
    minimum: int = 1,
    where: str | None = None,
    maximum: int | None = None,
) -> int:
    """``value`` when :func:`is_int` accepts it (and it is at most ``maximum``), else
    ``error("[where: ]field=value is invalid; expected an integer >= minimum")`` (``from
    minimum to maximum`` with a ``maximum``).

    Example:
        >>> from budgetnet.errors import TrainingError
        >>> check_int(TrainingError, "epochs", 0)
        Traceback (most recent call last):
        ...
        budgetnet.errors.TrainingError: epochs=0 is invalid; expected an integer >= 1
        >>> check_int(TrainingError, "steps", 21, maximum=20)
        Traceback (most recent call last):
        ...
        budgetnet.errors.TrainingError: steps=21 is invalid; expected an integer from 1 to 20
    """
    if not is_int(value, minimum) or (maximum is not None and value > maximum):
        prefix = f"{where}: " if where else ""
        expected = f">= {minimum}" if maximum is None else f"from {minimum} to {maximum}"
        raise error(f"{prefix}{field}={_shown(value)} is invalid; expected an integer {expected}")
    return value


def check_seed(error: type[Exception], value, field: str = "seed", where: str | None = None) -> int:
    """``value`` when it is an integer from 0 to :data:`MAX_SEED` (``2**63-1``), else ``error``,
    raised before the number reaches torch's C code (which overflows past 64 bits).

    Example:
        >>> from budgetnet.errors import TrainingError
        >>> check_seed(TrainingError, 7)
        7
        >>> check_seed(TrainingError, 2**70)
        Traceback (most recent call last):
        ...
        budgetnet.errors.TrainingError: seed=1180591620717411303424 is invalid; expected an integer from 0 to 2**63-1 (9223372036854775807)
    """
    if not is_int(value, 0) or value > MAX_SEED:
        prefix = f"{where}: " if where else ""
        raise error(f"{prefix}{field}={_shown(value)} is invalid; expected an integer from 0 to 2**63-1 ({MAX_SEED})")
    return value


_VALUE = object()


def check_bytes(error: type[Exception], field: str, value, shown=_VALUE, examples: str = "") -> int:
    """``value`` when it is a whole number of bytes from 1 to :data:`MAX_BYTES` (8 EiB), else
    ``error`` naming ``field`` and ``shown`` (the text the value came from; ``value`` itself
    by default). ``examples`` is added to the message (e.g. ``"such as 8G"``).

    Example:
        >>> from budgetnet.errors import MemoryLimitError
        >>> check_bytes(MemoryLimitError, "max_memory", 2048)
        2048
        >>> check_bytes(MemoryLimitError, "max_memory", 10**400, shown="1e400")
        Traceback (most recent call last):
        ...
        budgetnet.errors.MemoryLimitError: max_memory='1e400' is invalid; expected a size in bytes from 1 to 2**63-1 (8 EiB)
    """
    if not is_int(value, 1) or value > MAX_BYTES:
        text = _shown(value if shown is _VALUE else shown)
        raise error(
            f"{field}={text} is invalid; expected a size in bytes from 1 to 2**63-1 (8 EiB){' ' + examples if examples else ''}"
        )
    return value


def _shown(value) -> str:
    """``repr(value)``, cut in the middle past 60 characters (a number of 400 digits)."""
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:28]}...{text[-28:]} ({len(text)} characters)"


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
