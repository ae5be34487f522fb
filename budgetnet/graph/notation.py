"""Parse and print the paper's table notation (Tables 1-2), e.g. ``(7,64)/2 3/3 (5,128)``.

Grammar (whitespace and ``+`` both separate items; ``docs/notation.md`` has examples)::

    arch   := item (sep item)*
    item   := layer [ ("x" | "×") COUNT ]          repetition: (3,256)x3, COUNT in 1..1000
    layer  := conv | pool | spp | "gap" | "flat" | fc
    conv   := "(" KERNEL "," FILTERS ")" ["/" STRIDE] ["p" PAD]
    pool   := ["max" | "avg"] SIZE ["/" STRIDE] ["p" PAD]   stride defaults to SIZE
    spp    := ["max" | "avg"] "spp" ["(" LEVEL ("," LEVEL)* ")"]   default (6,3,2,1)
    fc     := "fc" UNITS | "fc(" UNITS ["," DROPOUT] ")"    dropout defaults to 0.5

A conv without ``pPAD`` gets its padding from the paper's rules (see :mod:`budgetnet.graph.arch`).
``gap`` is global average pooling (``avgspp(1)``); ``flat`` flattens without pooling. When
the text has no head (no spp, gap, flat or fc), :func:`~budgetnet.graph.arch.default_head` is added:
the paper's ``spp fc(4096) fc(4096)`` for inputs of 64 px and more (printing leaves it out
again), ``spp(2,1)`` for smaller ones. The classifier (``num_classes`` units) is implicit.

Example:
    >>> import budgetnet
    >>> arch = budgetnet.parse("(7,64)/2 3/3 (5,128) 2/2 (3,256)x3")
    >>> arch.depth, str(arch)
    (5, '(7,64)/2 3/3 (5,128) 2/2 (3,256)x3')
"""

from __future__ import annotations

import re
from typing import Sequence

from budgetnet.graph.arch import ACTIVATIONS, FC, SPP, Arch, Concat, Conv, Flatten, Layer, Pool, Residual, default_head
from budgetnet.errors import LayerSpecError, NotationError
from budgetnet.graph.printing import format_layer

# Numbers are ASCII digits only: Python's \d and int() also take full-width and other digits.
_INT = r"(-?[0-9]+)"
_SEPARATOR = re.compile(r"[\s+]+")
# An activation ends at a non-alphanumeric, or at a repeat ("@nonex2" is @none, x2).
_ACTIVATION_END = r"(?:(?![A-Za-z0-9])|(?=[x×][0-9]))"
_ACTIVATION = re.compile(r"@(" + "|".join(ACTIVATIONS) + r")" + _ACTIVATION_END)
_CONV = re.compile(
    rf"\(\s*{_INT}\s*,\s*{_INT}\s*\)(?:/{_INT})?(?:p{_INT})?(?:g{_INT}|(dw))?(bn)?"
    rf"(?:@({'|'.join(ACTIVATIONS)}){_ACTIVATION_END})?"
)
_POOL = re.compile(rf"(max|avg)?{_INT}(?:/{_INT})?(?:p{_INT})?")
_SPP = re.compile(r"(max|avg)?spp(?:\(([^)]*)\))?")
_FC = re.compile(rf"fc(?:{_INT}|\(\s*{_INT}\s*(?:,\s*([0-9.eE+-]+)\s*)?\))")
_KEYWORD = re.compile(r"gap|flat")
_REPEAT = re.compile(rf"[x×]{_INT}")
_TOP_END = re.compile(r"(?=[\s+]|$)")
_END = re.compile(r"(?=[\s+|\]]|$)")
_BRANCH_END = re.compile(r"(?=\s*[|\]])")
MAX_REPEAT = 1000


def parse(text: str, input_shape: Sequence[int] = (3, 224, 224), num_classes: int = 1000) -> Arch:
    """Parse the paper's table notation into an :class:`~budgetnet.Arch`.

    Raises :class:`~budgetnet.errors.NotationError` (with the 1-based column of the fault)
    for text that does not follow the grammar, and :class:`~budgetnet.errors.LayerSpecError`
    for a value out of range (a zero kernel, a negative stride, ``x0``).

    Example:
        >>> import budgetnet
        >>> budgetnet.parse("(3,32) 2/2 (2,64)x2 gap", input_shape=(1, 16, 16)).depth
        3
        >>> str(budgetnet.parse("(3,16)bn res[(3,16)bn (3,16)bn@none]x2 gap", input_shape=(1, 8, 8)))
        '(3,16)bn res[(3,16)bn (3,16)bn@none]x2 gap'
    """
    if not isinstance(text, str):
        raise NotationError(repr(text), 1, f"expected a notation string, got {type(text).__name__}")
    if not _skip(text, 0) < len(text):
        raise NotationError(text, 1, "empty notation; expected at least one layer such as (3,64)")
    layers, position = _parse_sequence(text, 0, inside=False)
    if not any(isinstance(layer, (SPP, Flatten, FC)) for layer in layers):
        layers.extend(default_head(input_shape))
    return Arch(layers, input_shape, num_classes)


def _parse_sequence(text: str, position: int, inside: bool) -> tuple[list[Layer], int]:
    """Items up to the end of the text, or (``inside`` a block) up to ``|`` or ``]``."""
    layers: list[Layer] = []
    position = _skip(text, position)
    while position < len(text) and not (inside and text[position] in "|]"):
        start = position
        try:
            layer, position = _parse_layer(text, position)
            count = 1
            repeat = _REPEAT.match(text, position)
            if repeat:
                start = repeat.start()
                count = int(repeat.group(1))
                if not 1 <= count <= MAX_REPEAT:
                    raise LayerSpecError(
                        format_layer(layer), "repeat count", count, f"an integer from 1 to {MAX_REPEAT}"
                    )
                position = repeat.end()
        except NotationError:
            raise
        except LayerSpecError as error:
            raise NotationError(text, start + 1, str(error), error.field, error.value) from None
        except ValueError:  # int() refuses numbers of more than 4300 digits
            raise NotationError(text, start + 1, "a number has too many digits; expected at most 4300") from None
        if not (_END if inside else _TOP_END).match(text, position):
            raise NotationError(text, position + 1, f"unexpected {text[position]!r} after a layer")
        layers.extend([layer] * count)
        separated = _skip(text, position)
        if separated > position and "+" in text[position:separated]:
            if separated == len(text) or (inside and text[separated] in "|]"):
                plus = position + text[position:separated].index("+")
                raise NotationError(text, plus + 1, "a trailing '+' joins nothing; expected a layer after it")
        position = separated
    if not inside and position < len(text):
        raise NotationError(text, position + 1, f"unexpected {text[position]!r} outside a block")
    return layers, position


def _skip(text: str, position: int) -> int:
    match = _SEPARATOR.match(text, position)
    return match.end() if match else position


def _parse_block(text: str, position: int) -> tuple[Layer, int]:
    """``res[BODY | SHORTCUT]@ACT`` or ``cat[BRANCH | BRANCH ...]``; ``id`` is an empty branch."""
    column = position + 1
    kind = "res" if text.startswith("res[", position) else "cat"
    position += 4
    branches: list[list[Layer]] = []
    while True:
        skipped = _skip(text, position)
        if text.startswith("id", skipped) and _BRANCH_END.match(text, skipped + 2):
            branch, position = [], _skip(text, skipped + 2)
        else:
            branch, position = _parse_sequence(text, position, inside=True)
        branches.append(branch)
        if position >= len(text):
            raise NotationError(text, column, f"{kind}[ is never closed; expected a matching ]")
        if text[position] == "]":
            position += 1
            break
        position += 1  # "|"
    try:
        if kind == "cat":
            if len(branches) < 2:
                raise NotationError(text, column, "cat[...] needs at least 2 branches separated by |")
            return Concat(tuple(tuple(branch) for branch in branches)), position
        if len(branches) > 2:
            raise NotationError(text, column, "res[BODY | SHORTCUT] takes at most one shortcut")
        if not branches[0]:
            raise NotationError(text, column, "res[...] has an empty body; expected at least one layer")
        activation = "relu"
        suffix = _ACTIVATION.match(text, position)
        if suffix:
            activation, position = suffix.group(1), suffix.end()
        shortcut = tuple(branches[1]) if len(branches) == 2 else None
        return Residual(tuple(branches[0]), shortcut, activation), position
    except LayerSpecError as error:
        raise NotationError(text, column, str(error), error.field, error.value) from None


def _parse_layer(text: str, position: int) -> tuple[Layer, int]:
    column = position + 1
    if text.startswith(("res[", "cat["), position):
        return _parse_block(text, position)
    if text.startswith("(", position):
        match = _CONV.match(text, position)
        if not match:
            raise NotationError(text, column, "malformed conv; expected (KERNEL,FILTERS) like (3,256)")
        kernel, filters, stride, padding, groups, depthwise, norm, activation = match.groups()
        layer = Conv(
            int(kernel),
            int(filters),
            1 if stride is None else int(stride),
            None if padding is None else int(padding),
            groups=1 if groups is None else int(groups),
            depthwise=depthwise is not None,
            activation=activation or "relu",
            norm="batch" if norm else None,
        )
        return layer, match.end()
    match = _SPP.match(text, position)
    if match:
        mode, levels = match.groups()
        if levels is None:
            return SPP(mode=mode or "max"), match.end()
        items = [item.strip() for item in levels.split(",")]
        if not all(re.fullmatch(r"-?[0-9]+", item) for item in items):
            raise NotationError(text, column, "malformed spp levels; expected spp(6,3,2,1)")
        return SPP(tuple(int(item) for item in items), mode or "max"), match.end()
    match = _KEYWORD.match(text, position)
    if match:
        layer = SPP((1,), "avg") if match.group() == "gap" else Flatten()
        return layer, match.end()
    if text.startswith("fc", position):
        match = _FC.match(text, position)
        if not match:
            raise NotationError(text, column, "malformed fc; expected fc4096 or fc(4096,0.5)")
        units = int(match.group(1) or match.group(2))
        dropout = match.group(3)
        if dropout is not None:
            try:
                value = float(dropout)
            except ValueError:
                raise NotationError(text, match.start(3) + 1, f"dropout {dropout!r} is not a number") from None
            return FC(units, value), match.end()
        return FC(units), match.end()
    match = _POOL.match(text, position)
    if match:
        mode, size, stride, padding = match.groups()
        layer = Pool(
            int(size),
            None if stride is None else int(stride),
            0 if padding is None else int(padding),
            mode or "max",
        )
        return layer, match.end()
    word = re.match(r"[^\s+]+", text[position:]).group()
    raise NotationError(
        text,
        column,
        f"unknown layer {word!r}; expected a conv (3,256), a pool 2/2, spp, gap, flat or fc4096",
    )
