"""The registry of rewrite rules: every rule by name, and :func:`rewrite` with the default rule of a site.

Example:
    >>> [rule.name for rule in RULES][:3]
    ['depth_filter', 'depth_width', 'width_filter']
"""

from __future__ import annotations

from typing import Iterable

from budgetnet.errors import RewriteError
from budgetnet.graph.arch import Arch
from budgetnet.rewrites.block_rules import BLOCK_RULES
from budgetnet.rewrites.framework import DEFAULT_TOLERANCE, Rewrite, Rule, Site
from budgetnet.rewrites.inverted_rules import INVERTED_RULES
from budgetnet.rewrites.paper_rules import DEPTH_FILTER, PLAIN_RULES  # noqa: F401  (DEPTH_FILTER: the doctests)


#: Every rule with default parameters: the paper's five, then the block rules of
#: :mod:`budgetnet.rewrites.block_rules`, then the inverted-residual rules of
#: :mod:`budgetnet.rewrites.inverted_rules`.
RULES: tuple[Rule, ...] = PLAIN_RULES + BLOCK_RULES + INVERTED_RULES


def get_rule(rule: "str | Rule") -> Rule:
    """A rule object by name (``"depth_filter"``, ...); a Rule is returned as is.

    Example:
        >>> get_rule("add_pool").equation
        'Eqn. (11)'
    """
    if isinstance(rule, Rule):
        return rule
    for candidate in RULES:
        if candidate.name == rule:
            return candidate
    names = ", ".join(candidate.name for candidate in RULES)
    raise RewriteError(str(rule), None, f"unknown rule; expected one of {names}")


def resolve_rules(rules: "Iterable[str | Rule] | None") -> tuple[Rule, ...]:
    """Rules from names or objects; ``None`` gives :data:`RULES`.

    Example:
        >>> [rule.name for rule in resolve_rules(["delay_pool", DEPTH_FILTER])]
        ['delay_pool', 'depth_filter']
    """
    if rules is None:
        return RULES
    if isinstance(rules, (str, Rule)):
        rules = [rules]
    try:
        resolved = tuple(get_rule(rule) for rule in rules)
    except TypeError:
        raise RewriteError(repr(rules), None, "expected a list of rule names or Rule objects") from None
    if not resolved:
        raise RewriteError("[]", None, "no rules given; expected at least one rule name or Rule")
    return resolved


def rewrite(arch: Arch, site: Site, tolerance: float | None = DEFAULT_TOLERANCE) -> Rewrite:
    """Apply a site with the default rule of its name (see :meth:`Rule.rewrite`).

    Example:
        >>> from search_spaces.paper import MODELS
        >>> site = DEPTH_FILTER.find(MODELS["A"], stage=2, kernel_size=3)
        >>> result = rewrite(MODELS["A"], site)
        >>> result.after == MODELS["C"], f"{result.local_change:+.0%}"
        (True, '+8%')
    """
    if not isinstance(site, Site):
        raise RewriteError("?", repr(site), "expected a Site (from rule.sites(arch))")
    return get_rule(site.rule).rewrite(arch, site, tolerance)


__all__ = ["RULES", "get_rule", "resolve_rules", "rewrite"]
