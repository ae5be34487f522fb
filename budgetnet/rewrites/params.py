"""Checks of rule and site parameters shared by the rules: width multiples, lists of sizes,
and one integer field of a site.

Example:
    >>> check_sizes("depth_width", "depth_factors", [2, 3], 2)
    (2, 3)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from budgetnet.checks import is_int
from budgetnet.errors import RewriteError

if TYPE_CHECKING:  # pragma: no cover
    from budgetnet.rewrites.framework import Rule, Site


def check_width_multiple(rule: str, value) -> int | None:
    """``value`` if it is ``None`` or an integer >= 1, else a :class:`RewriteError` naming it.

    Example:
        >>> check_width_multiple("depth_width", 8)
        8
    """
    if value is not None and not is_int(value, 1):
        raise RewriteError(rule, None, f"width_multiple={value!r} is invalid; expected an integer >= 1")
    return value


def check_sizes(rule: str, name: str, values, minimum: int) -> tuple[int, ...]:
    """``values`` as a non-empty tuple of integers >= ``minimum``, else a :class:`RewriteError`."""
    try:
        values = tuple(values)
    except TypeError:
        values = None
    if not values or any(not is_int(v, minimum) for v in values):
        raise RewriteError(rule, None, f"{name}={values!r} is invalid; expected a non-empty list of integers >= {minimum}")
    return values


def site_param(rule: "Rule", site: "Site", name: str, minimum: int) -> int:
    """The site's integer field ``name`` (>= ``minimum``), else the rule's refusal naming it."""
    value = getattr(site, name)
    if not is_int(value, minimum):
        raise RewriteError(rule.name, site, f"{name}={value!r} is invalid; expected an integer >= {minimum}")
    return value


__all__ = ["check_sizes", "check_width_multiple", "site_param"]
