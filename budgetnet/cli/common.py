"""Helpers shared by the subcommands: reading an architecture SPEC, printing JSON."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Sequence

from budgetnet.arch import Arch
from budgetnet.errors import ArchError
from budgetnet.notation import parse

SPEC_HELP = (
    "a model of the paper's Tables 1-2 (A .. J, B', D', E', J'), a notation string such as "
    "\"(7,64)/2 3/3 (5,128) 2/2 (3,256)x3\", or a JSON file written by budgetnet"
)


def parse_shape(text: str) -> tuple[int, int, int]:
    """``"3x224x224"`` or ``"3,224,224"`` -> ``(3, 224, 224)`` (argparse type).

    Example:
        >>> parse_shape("1x28x28")
        (1, 28, 28)
    """
    parts = text.replace(",", "x").split("x")
    try:
        shape = tuple(int(part) for part in parts)
    except ValueError:
        shape = ()
    if len(shape) != 3 or min(shape) < 1:
        raise argparse.ArgumentTypeError(f"input shape {text!r}: expected CxHxW such as 3x224x224")
    return shape


def load_arch(spec: str, input_shape: Sequence[int] | None = None, num_classes: int | None = None) -> Arch:
    """Resolve a SPEC: a zoo model name, a JSON file, or a notation string.

    Example:
        >>> load_arch("J'").depth
        11
    """
    from search_spaces.paper import MODELS

    if spec in MODELS:
        arch = MODELS[spec]
    elif spec.endswith(".json") or Path(spec).is_file():
        if not Path(spec).is_file():
            raise ArchError(f"SPEC {spec!r}: no such file; expected a JSON file written by budgetnet")
        arch = Arch.load(spec)
    else:
        arch = parse(spec) if input_shape is None else parse(spec, input_shape)
    if input_shape is not None or num_classes is not None:
        arch = arch.with_input(input_shape, num_classes)
    return arch


def print_json(data) -> None:
    """Write ``data`` as indented JSON to stdout (values JSON does not know as their ``str``).

    Example:
        >>> print_json({"shape": (1, 8, 8)})
        {
          "shape": [
            1,
            8,
            8
          ]
        }
    """
    json.dump(data, sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")
