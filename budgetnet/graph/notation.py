"""Parse and print the paper's table notation (Tables 1-2), e.g. ``(7,64)/2 3/3 (5,128)``.

Grammar (whitespace and ``+`` both separate items; ``docs/notation.md`` has examples)::

    arch   := item (sep item)* [sep "nofc"]      nofc: no final classifier, the head gives the logits
    item   := layer [ ("x" | "×") COUNT ]          repetition: (3,256)x3, COUNT in 1..1000
    layer  := conv | pool | spp | "gap" | "flat" | fc | leaf | block
    conv   := "(" KERNEL "," FILTERS ")" ["/" STRIDE] ["p" PAD] ["d" DILATION]
              ["g" GROUPS | "dw"] ["bn" [NORMARGS]] ["@" ACT]
    pool   := ["max" | "avg"] SIZE ["/" STRIDE] ["p" PAD] ["(" FLAGS ")"]   FLAGS: ceil, exclude_pad
    spp    := ["max" | "avg"] "spp" ["(" LEVEL ("," LEVEL)* ")"]   default (6,3,2,1)
    fc     := ("fc" UNITS | "fc(" UNITS ["," DROPOUT] ")") ["@" ACT]   dropout defaults to 0.5
    leaf   := "bn" [NORMARGS] | "gn(" GROUPS ["," NORMARG]* ")" | "ln" [NORMARGS] | ACT
            | "scale" ["(" INIT ")"] | "droppath(" RATE ")" | "slice(" START "," STOP ")"
            | "shuffle(" GROUPS ")" | "pad(" LEFT "," RIGHT "," TOP "," BOTTOM ")" | "gpool" | "maxgpool"
            | "chconv(" KERNEL ["," "bias=true"] ")"     ECA's conv along the channels, odd KERNEL
    block  := "res[" BODY ["|" SHORTCUT] "]" ["@" ACT] | "cat[" BRANCH ("|" BRANCH)+ "]"
            | "gate[" BODY "]"
    NORMARGS := "(" NAME "=" VALUE ("," NAME "=" VALUE)* ")"   eps, momentum, affine=false
    ACT    := relu | relu6 | leaky_relu ["(" SLOPE ")"] | silu | hardswish | gelu | gelu_tanh
            | mish | tanh | sigmoid | hardsigmoid | none

Blocks nest at most :data:`~budgetnet.graph.layers.MAX_NESTING` (64) deep; a deeper one is a
:class:`~budgetnet.errors.NotationError` at its column, before Python's recursion limit.
A conv without ``pPAD`` gets its padding from the paper's rules (see :mod:`budgetnet.graph.arch`).
``gap`` is global average pooling (``avgspp(1)``); ``flat`` flattens without pooling. When
the text has no head (no spp, gap, flat or fc), :func:`~budgetnet.graph.arch.default_head` is added:
the paper's ``spp fc(4096) fc(4096)`` for inputs of 64 px and more (printing leaves it out
again), ``spp(2,1)`` for smaller ones. The classifier (``num_classes`` units) is implicit;
a last ``nofc`` says there is none (SqueezeNet: ``... (1,1000) gap nofc``, the pooled channels
of the last conv are the logits).

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
from budgetnet.graph.layers import MAX_NESTING, Act, ChannelConv, DropPath, Gate, GlobalPool, Norm, Pad, Scale, Shuffle, Slice
from budgetnet.errors import LayerSpecError, NotationError
from budgetnet.graph.printing import format_layer

# Numbers are ASCII digits only: Python's \d and int() also take full-width and other digits.
_INT = r"(-?[0-9]+)"
_SEPARATOR = re.compile(r"[\s+]+")
# An activation ends at a non-alphanumeric, or at a repeat ("@nonex2" is @none, x2).
_ACTIVATION_END = r"(?:(?![A-Za-z0-9])|(?=[x×][0-9]))"
# Longer names first, so "relu6" is not read as "relu" followed by "6".
_ACTIVATION_NAMES = "|".join(sorted(ACTIVATIONS, key=len, reverse=True))
_ACTIVATION_TEXT = rf"(?:leaky_relu\([0-9.eE+-]+\)|{_ACTIVATION_NAMES})"
_ACTIVATION = re.compile(rf"@({_ACTIVATION_TEXT}){_ACTIVATION_END}")
_CONV = re.compile(
    rf"\(\s*{_INT}(?:x{_INT})?\s*,\s*{_INT}\s*\)(?:/{_INT})?(?:p(?:{_INT}|\(\s*{_INT}\s*,\s*{_INT}\s*\)))?(?:d{_INT})?"
    rf"(?:g{_INT}|(dw))?(bn(?:\(([^()]*)\))?)?"
)
_POOL = re.compile(rf"(max|avg)?{_INT}(?:/{_INT})?(?:p{_INT})?(?:\(([^()]*)\))?")
_SPP = re.compile(r"(max|avg)?spp(?:\(([^)]*)\))?")
_FC = re.compile(rf"fc(?:{_INT}|\(\s*{_INT}\s*(?:,\s*([0-9.eE+-]+)\s*)?\))")
# The leaves named by a word, with optional arguments in parentheses.
_NAME_END = r"(?:(?![A-Za-z0-9_(])|(?=[x×][0-9]))"
_NAMED = re.compile(
    rf"(bn|gn|ln|grn|rms|simplenorm|scale|droppath|slice|shuffle|pad|maxgpool|gpool|chconv|{_ACTIVATION_NAMES})"
    r"(?:\(([^()]*)\))?"
    r"(?:(?![A-Za-z0-9_(])|(?=[x×][0-9]))"
)
_POOL_FLAGS = ("ceil", "exclude_pad")
_KEYWORD = re.compile(r"gap|flat")
_REPEAT = re.compile(rf"[x×]{_INT}")
_NO_CLASSIFIER = re.compile(r"(?:^|[\s+])nofc\s*$")
_TOP_END = re.compile(r"(?=[\s+]|$)")
_END = re.compile(r"(?=[\s+|\]]|$)")
_BRANCH_END = re.compile(r"(?=\s*[|\]])")
MAX_REPEAT = 1000


def parse(text: str, input_shape: Sequence[int] = (3, 224, 224), num_classes: int | None = None) -> Arch:
    """Parse the paper's table notation into an :class:`~budgetnet.Arch`.

    Raises :class:`~budgetnet.errors.NotationError` (with the 1-based column of the fault)
    for text that does not follow the grammar, and :class:`~budgetnet.errors.LayerSpecError`
    for a value out of range (a zero kernel, a negative stride, ``x0``). ``num_classes``
    defaults to 1000, or with ``nofc`` to the head's width.

    Example:
        >>> import budgetnet
        >>> budgetnet.parse("(3,32) 2/2 (2,64)x2 gap", input_shape=(1, 16, 16)).depth
        3
        >>> str(budgetnet.parse("(3,16)bn res[(3,16)bn (3,16)bn@none]x2 gap", input_shape=(1, 8, 8)))
        '(3,16)bn res[(3,16)bn (3,16)bn@none]x2 gap'
        >>> budgetnet.parse("(3,16) (1,10) gap nofc", input_shape=(1, 8, 8)).num_classes
        10
    """
    if not isinstance(text, str):
        raise NotationError(repr(text), 1, f"expected a notation string, got {type(text).__name__}")
    no_classifier = _NO_CLASSIFIER.search(text)
    if no_classifier:
        if not text[: no_classifier.start()].strip(" \t\n+"):
            raise NotationError(text, 1, "nofc alone; expected layers and a head before it, as (1,10) gap nofc")
        text = text[: no_classifier.start()].ljust(len(text))  # columns of errors stay those of the text
    if not _skip(text, 0) < len(text):
        raise NotationError(text, 1, "empty notation; expected at least one layer such as (3,64)")
    layers, position = _parse_sequence(text, 0, inside=False, depth=0)
    if not any(isinstance(layer, (SPP, Flatten, FC)) for layer in layers):
        layers.extend(default_head(input_shape))
    return Arch(layers, input_shape, num_classes, classifier=not no_classifier)


def _parse_sequence(text: str, position: int, inside: bool, depth: int) -> tuple[list[Layer], int]:
    """Items up to the end of the text, or (``inside`` a block) up to ``|`` or ``]``; ``depth``
    counts the blocks around them."""
    layers: list[Layer] = []
    position = _skip(text, position)
    while position < len(text) and not (inside and text[position] in "|]"):
        start = position
        try:
            layer, position = _parse_layer(text, position, depth)
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


def _parse_block(text: str, position: int, depth: int) -> tuple[Layer, int]:
    """``res[BODY | SHORTCUT]@ACT``, ``cat[BRANCH | BRANCH ...]`` or ``gate[BODY]``; ``id`` is
    an empty branch. ``depth`` is the number of blocks this one sits in."""
    column = position + 1
    kind = text[position : text.index("[", position)]
    if depth >= MAX_NESTING:
        raise NotationError(
            text, column, f"{kind}[ is nested {depth + 1} blocks deep; expected at most {MAX_NESTING} nested "
            "res[...], cat[...] or gate[...] blocks (MAX_NESTING)"
        )
    position += len(kind) + 1
    branches: list[list[Layer]] = []
    while True:
        skipped = _skip(text, position)
        if text.startswith("id", skipped) and _BRANCH_END.match(text, skipped + 2):
            branch, position = [], _skip(text, skipped + 2)
        else:
            branch, position = _parse_sequence(text, position, inside=True, depth=depth + 1)
        branches.append(branch)
        if position >= len(text):
            raise NotationError(text, column, f"{kind}[ is never closed; expected a matching ]")
        if text[position] == "]":
            position += 1
            break
        position += 1  # "|"
    try:
        if kind == "gate":
            if len(branches) != 1 or not branches[0]:
                raise NotationError(text, column, "gate[BODY] takes one non-empty body, e.g. gate[gpool (1,8) (1,32)@sigmoid]")
            return Gate(tuple(branches[0])), position
        if kind == "cat":
            if len(branches) < 2:
                raise NotationError(text, column, "cat[...] needs at least 2 branches separated by |")
            return Concat(tuple(tuple(branch) for branch in branches)), position
        if len(branches) > 2:
            raise NotationError(text, column, "res[BODY | SHORTCUT] takes at most one shortcut")
        if not branches[0]:
            raise NotationError(text, column, "res[...] has an empty body; expected at least one layer")
        activation, position = _suffix_activation(text, position)
        shortcut = tuple(branches[1]) if len(branches) == 2 else None
        return Residual(tuple(branches[0]), shortcut, activation), position
    except LayerSpecError as error:
        raise NotationError(text, column, str(error), error.field, error.value) from None


def _parse_layer(text: str, position: int, depth: int) -> tuple[Layer, int]:
    column = position + 1
    if text.startswith(("res[", "cat[", "gate["), position):
        return _parse_block(text, position, depth)
    if text.startswith("(", position):
        match = _CONV.match(text, position)
        if not match:
            raise NotationError(text, column, "malformed conv; expected (KERNEL,FILTERS) like (3,256)")
        (kernel, width, filters, stride, padding, rows, columns, dilation, groups, depthwise, norm,
         norm_args) = match.groups()
        options = _arguments(text, match.start(12), norm_args, ("eps", "momentum"), 0) if norm_args is not None else {}
        activation, end = _suffix_activation(text, match.end())
        layer = Conv(
            int(kernel) if width is None else (int(kernel), int(width)),
            int(filters),
            1 if stride is None else int(stride),
            int(padding) if padding is not None else None if rows is None else (int(rows), int(columns)),
            groups=1 if groups is None else int(groups),
            depthwise=depthwise is not None,
            activation=activation,
            norm="batch" if norm else None,
            dilation=1 if dilation is None else int(dilation),
            norm_eps=options.get("eps", Conv.norm_eps),
            norm_momentum=options.get("momentum", Conv.norm_momentum),
        )
        return layer, end
    match = _NAMED.match(text, position)
    if match:
        return _named_leaf(text, match), match.end()
    match = _SPP.match(text, position)
    if match:
        mode, levels = match.groups()
        if levels is None:
            return SPP(mode=mode or "max"), match.end()
        items = [item.strip() for item in levels.split(",")]
        if not all(re.fullmatch(r"-?[0-9]+", item) for item in items):
            raise NotationError(text, column, "malformed spp levels; expected spp(6,3,2,1)")
        return SPP(tuple(int(item) for item in items), mode or "max"), match.end()
    if text.startswith("nofc", position) and _END.match(text, position + 4):
        raise NotationError(text, column, "nofc (no final classifier) ends the notation; expected it last, after the head")
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
        activation, end = _suffix_activation(text, match.end())
        if dropout is not None:
            try:
                value = float(dropout)
            except ValueError:
                raise NotationError(text, match.start(3) + 1, f"dropout {dropout!r} is not a number") from None
            return FC(units, value, activation), end
        return FC(units, activation=activation), end
    match = _POOL.match(text, position)
    if match:
        mode, size, stride, padding, flags = match.groups()
        found = [] if flags is None else [flag.strip() for flag in flags.split(",")]
        unknown = [flag for flag in found if flag not in _POOL_FLAGS]
        if unknown:
            raise NotationError(
                text, match.start(5) + 1, f"unknown pool flag {unknown[0]!r}; expected {', '.join(_POOL_FLAGS)}"
            )
        layer = Pool(
            int(size),
            None if stride is None else int(stride),
            0 if padding is None else int(padding),
            mode or "max",
            ceil_mode="ceil" in found,
            count_include_pad="exclude_pad" not in found,
        )
        return layer, match.end()
    word = re.match(r"[^\s+]+", text[position:]).group()
    raise NotationError(
        text,
        column,
        f"unknown layer {word!r}; expected a conv (3,256), a pool 2/2, spp, gap, flat, fc4096, a norm (bn, gn(32), "
        "ln, grn, rms, simplenorm), an activation (relu, silu, ...), scale, droppath(0.1), slice(0,8), shuffle(2), "
        "gpool, chconv(3), or a block res[...], cat[...], gate[...]",
    )


def _suffix_activation(text: str, position: int) -> tuple[str, int]:
    """An ``@ACT`` right after a layer (``relu`` when there is none) and where it ends."""
    match = _ACTIVATION.match(text, position)
    if match:
        return match.group(1), match.end()
    if text.startswith("@", position):
        word = re.match(r"@[^\s+|\]]*", text[position:]).group()
        raise NotationError(
            text, position + 1, f"unknown activation {word!r}; expected @ and one of {', '.join(ACTIVATIONS)}, "
            "or @leaky_relu(SLOPE)"
        )
    return "relu", position


def _number(text: str, column: int, name: str, value: str) -> float:
    try:
        return float(value)
    except ValueError:
        raise NotationError(text, column, f"{name}={value!r} is not a number") from None


def _arguments(text: str, column: int, body: str, names: Sequence[str], positional: int) -> dict:
    """``body`` of ``(...)``: up to ``positional`` numbers, then ``name=value`` pairs among
    ``names`` (``affine``, ``shift`` and ``bias`` are booleans: ``affine=false``). Returns ``{name: value}`` with the
    positional ones under ``"0"``, ``"1"``, ..."""
    found: dict = {}
    items = [item.strip() for item in body.split(",")] if body.strip() else []
    for number, item in enumerate(items):
        if "=" in item:
            name, _, value = (part.strip() for part in item.partition("="))
            if name not in names:
                raise NotationError(text, column, f"unknown argument {name!r}; expected one of {', '.join(names)}")
            if name in ("affine", "shift", "bias"):
                if value not in ("true", "false"):
                    raise NotationError(text, column, f"{name}={value!r}; expected {name}=true or {name}=false")
                found[name] = value == "true"
            else:
                found[name] = _number(text, column, name, value)
        elif number < positional and not any(not key.isdigit() for key in found):
            found[str(number)] = item
        else:
            raise NotationError(
                text, column, f"argument {item!r} is not expected here; expected at most {positional} value(s), "
                f"then name=value pairs among {', '.join(names) or 'none'}"
            )
    return found


def _integer(text: str, column: int, name: str, arguments: dict, key: str = "0") -> int:
    value = arguments.get(key)
    if value is None or not re.fullmatch(r"-?[0-9]+", value):
        raise NotationError(text, column, f"{name}={value!r}; expected a whole number")
    return int(value)


def _named_leaf(text: str, match: re.Match) -> Layer:
    """A norm, an activation, a scale, a drop, a slice, a shuffle, a global pool or a conv along the channels."""
    name = match.group(1)
    body = match.group(2)
    column = match.start() + 1
    if body is not None and name in ("maxgpool", "gpool", *(a for a in ACTIVATIONS if a != "leaky_relu")):
        raise NotationError(text, column, f"{name} takes no arguments; expected {name} alone")
    body = body or ""
    if name in ("bn", "ln", "grn", "rms", "simplenorm"):
        names = ("eps", "momentum", "affine") if name == "bn" else ("eps", "affine")
        norm = {"bn": "batch", "ln": "layer", "grn": "response", "rms": "rms", "simplenorm": "simple"}[name]
        return Norm(norm, **_arguments(text, column, body, names, 0))
    if name == "gn":
        options = _arguments(text, column, body, ("eps", "affine"), 1)
        groups = _integer(text, column, "gn groups", options)
        return Norm("group", groups=groups, **{key: value for key, value in options.items() if key != "0"})
    if name == "scale":
        options = _arguments(text, column, body, ("shift",), 1)
        init = _number(text, column, "scale init", options["0"]) if "0" in options else 1.0
        return Scale(init, options.get("shift", False))
    if name == "droppath":
        options = _arguments(text, column, body, (), 1)
        if "0" not in options:
            raise NotationError(text, column, "droppath needs its rate, e.g. droppath(0.1)")
        return DropPath(_number(text, column, "droppath rate", options["0"]))
    if name == "slice":
        options = _arguments(text, column, body, (), 2)
        return Slice(_integer(text, column, "slice start", options), _integer(text, column, "slice stop", options, "1"))
    if name == "shuffle":
        options = _arguments(text, column, body, (), 1)
        return Shuffle(_integer(text, column, "shuffle groups", options))
    if name == "pad":
        options = _arguments(text, column, body, (), 4)
        sides = ("left", "right", "top", "bottom")
        return Pad(*(_integer(text, column, f"pad {side}", options, str(i)) for i, side in enumerate(sides)))
    if name in ("gpool", "maxgpool"):
        return GlobalPool("avg" if name == "gpool" else "max")
    if name == "chconv":
        options = _arguments(text, column, body, ("bias",), 1)
        return ChannelConv(_integer(text, column, "chconv kernel_size", options), options.get("bias", False))
    if name == "leaky_relu" and body:
        options = _arguments(text, column, body, (), 1)
        return Act(f"leaky_relu({_number(text, column, 'leaky_relu slope', options['0']):g})")
    return Act(name)
