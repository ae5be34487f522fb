"""The paper's models, Tables 1-2, written in its notation exactly as the tables print them.

Every model takes a 224x224x3 image, ends with SPP {6,3,2,1}, fc 4096, fc 4096 and a
1000-way classifier, and counts its cost by Eqn. (1) (``budgetnet.cost.complexity``). The models
live in :mod:`budgetnet.graph.zoo` (beside the residual families); this module re-exports them
under their historical names, with the search spaces built on them.

Example:
    >>> from search_spaces.paper import MODELS, NOTATION
    >>> MODELS["J'"].depth, NOTATION["A"]
    (11, '(7,64)/2 3/3 (5,128) 2/2 (3,256)x3')
"""

from __future__ import annotations

from budgetnet.graph.zoo import PAPER_COMPLEXITY, PAPER_ERROR
from budgetnet.graph.zoo import PAPER_MODELS as MODELS
from budgetnet.graph.zoo import PAPER_NOTATION as NOTATION

# The search spaces built on these models (issue 5); imported last, since they use MODELS.
from search_spaces.stage import StageSpace  # noqa: E402
from search_spaces.replacement import LayerReplacementSpace  # noqa: E402

__all__ = ["LayerReplacementSpace", "MODELS", "NOTATION", "PAPER_COMPLEXITY", "PAPER_ERROR", "StageSpace"]
