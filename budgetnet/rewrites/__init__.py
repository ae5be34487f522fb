"""Layer replacement: the rule framework, the paper's rules, the block rules, and ``variants``.

Example:
    >>> import budgetnet
    >>> from budgetnet.rewrites import DEPTH_FILTER, rewrite
    >>> arch = budgetnet.parse("(3,32) 2/2 (3,64)x2 gap", input_shape=(1, 16, 16), num_classes=10)
    >>> [site.rule for site in DEPTH_FILTER.sites(arch)][:1]
    ['depth_filter']
"""

from budgetnet.rewrites.block_rules import (
    BLOCK_FILTER,
    BLOCK_RULES,
    BLOCK_STRIDE,
    BLOCKS_WIDTH,
    BOTTLENECK_BLOCKS,
    CARDINALITY_WIDTH,
    STAGE_POOL,
)
from budgetnet.rewrites.explore import variants
from budgetnet.rewrites.inverted_rules import INVERTED_RULES, MBCONV_BLOCKS, MBCONV_FILTER
from budgetnet.rewrites.framework import DEFAULT_TOLERANCE, Proposal, Rewrite, Rule, Site, span_notation
from budgetnet.rewrites.paper_rules import ADD_POOL, DELAY_POOL, DEPTH_FILTER, DEPTH_WIDTH, PLAIN_RULES, WIDTH_FILTER
from budgetnet.rewrites.registry import RULES, get_rule, resolve_rules, rewrite

__all__ = [
    "ADD_POOL",
    "BLOCKS_WIDTH",
    "BLOCK_FILTER",
    "BLOCK_RULES",
    "BLOCK_STRIDE",
    "BOTTLENECK_BLOCKS",
    "CARDINALITY_WIDTH",
    "DEFAULT_TOLERANCE",
    "DELAY_POOL",
    "DEPTH_FILTER",
    "DEPTH_WIDTH",
    "INVERTED_RULES",
    "MBCONV_BLOCKS",
    "MBCONV_FILTER",
    "PLAIN_RULES",
    "Proposal",
    "RULES",
    "Rewrite",
    "Rule",
    "STAGE_POOL",
    "Site",
    "WIDTH_FILTER",
    "get_rule",
    "resolve_rules",
    "rewrite",
    "span_notation",
    "variants",
]
