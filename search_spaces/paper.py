"""The paper's models, Tables 1-2, written in its notation exactly as the tables print it.

Every model takes a 224x224x3 image, ends with SPP {6,3,2,1}, fc 4096, fc 4096 and a
1000-way classifier, and counts its cost by Eqn. (1) (``budgetnet.complexity``).

Example:
    >>> from search_spaces.paper import MODELS, NOTATION
    >>> MODELS["J'"].depth, NOTATION["A"]
    (11, '(7,64)/2 3/3 (5,128) 2/2 (3,256)x3')
"""

from __future__ import annotations

from budgetnet.notation import parse

#: Tables 1-2 of the paper, row by row ("comp." is the paper's printed column).
NOTATION = {
    "A": "(7,64)/2 3/3 (5,128) 2/2 (3,256)x3",
    "B": "(7,64)/2 3/3 (5,128) 2/2 (2,256)x6",
    "C": "(7,64)/2 3/3 (3,128)x2 2/2 (3,256)x3",
    "D": "(7,64)/2 3/3 (3,128)x2 2/2 (2,256)x6",
    "E": "(7,64)/2 3/3 (2,128)x4 2/2 (2,256)x6",
    "F": "(7,64)/2 3/3 (5,128) 2/2 (3,160)x5 + (3,256)",
    "G": "(7,64)/2 3/3 (5,128) 2/2 (3,128)x8 + (3,256)",
    "H": "(7,64)/2 3/3 (3,64)x3 + (3,128) 2/2 (3,256)x3",
    "I": "(7,64)/2 3/3 (3,64)x3 + (3,128) 2/2 (2,256)x6",
    "J": "(7,64)/2 3/3 (2,128)x4 2/2 (2,256)x4 3/3 (2,2304) + (2,256)",
    "B'": "(7,64)/2 3/1 (5,128)/3 2/1 (2,256)/2 + (2,256)x5",
    "D'": "(7,64)/2 3/1 (3,128)/3 + (3,128) 2/1 (2,256)/2 + (2,256)x5",
    "E'": "(7,64)/2 3/1 (2,128)/3 + (2,128)x3 2/1 (2,256)/2 + (2,256)x5",
    "J'": "(7,64)/2 3/1 (2,128)/3 + (2,128)x3 2/1 (2,256)/2 + (2,256)x3 3/1 (2,2304)/3 + (2,256)",
}

#: The "comp." column of Tables 1-2 (Eqn. (1) relative to A), as printed.
PAPER_COMPLEXITY = {
    "A": 1.0, "B": 0.96, "C": 1.02, "D": 0.98, "E": 0.99, "F": 1.0, "G": 1.0,
    "H": 0.97, "I": 0.93, "J": 0.98, "B'": 0.96, "D'": 0.98, "E'": 0.99, "J'": 0.98,
}  # fmt: skip

#: Top-1 / top-5 error (10-view, 75 epochs) from Tables 1-2.
PAPER_ERROR = {
    "A": (37.4, 15.9), "B": (35.7, 14.9), "C": (35.0, 14.3), "D": (34.5, 13.9),
    "E": (33.8, 13.3), "F": (35.5, 14.8), "G": (35.5, 14.7), "H": (34.7, 14.0),
    "I": (33.9, 13.5), "J": (32.9, 12.5), "B'": (34.6, 13.9), "D'": (33.8, 13.5),
    "E'": (33.4, 13.0), "J'": (32.2, 12.0),
}  # fmt: skip

#: The 14 models as Arch objects (224x224x3 input, 1000 classes).
MODELS = {name: parse(text) for name, text in NOTATION.items()}

# The search spaces built on these models (issue 5); imported last, since they use MODELS.
from search_spaces.stage import StageSpace  # noqa: E402
from search_spaces.replacement import LayerReplacementSpace  # noqa: E402
