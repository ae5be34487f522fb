"""Print layers and Archs in the paper's table notation (the grammar is in :mod:`budgetnet.graph.notation`).

Example:
    >>> from budgetnet.graph.layers import Conv, Residual
    >>> format_layer(Residual((Conv(3, 64, norm="batch"), Conv(3, 64, norm="batch", activation="none"))))
    'res[(3,64)bn (3,64)bn@none]'
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING, Sequence

from budgetnet.graph.layers import FC, SPP, Concat, Conv, Flatten, Layer, Pool, Residual, default_head, paper_head

if TYPE_CHECKING:
    from budgetnet.graph.arch import Arch


def format_layer(layer: Layer) -> str:
    """One layer in the notation.

    Example:
        >>> format_layer(Conv(2, 256, stride=2))
        '(2,256)/2'
    """
    if isinstance(layer, Conv):
        text = f"({layer.kernel_size},{layer.out_channels})"
        if layer.stride != 1:
            text += f"/{layer.stride}"
        if layer.padding is not None:
            text += f"p{layer.padding}"
        if layer.depthwise:
            text += "dw"
        elif layer.groups != 1:
            text += f"g{layer.groups}"
        if layer.norm == "batch":
            text += "bn"
        return text + ("" if layer.activation == "relu" else f"@{layer.activation}")
    if isinstance(layer, (Residual, Concat)):
        return _format_block(layer)
    if isinstance(layer, Pool):
        text = ("avg" if layer.mode == "avg" else "") + f"{layer.kernel_size}/{layer.stride}"
        return text + (f"p{layer.padding}" if layer.padding else "")
    if isinstance(layer, SPP):
        if layer.levels == (1,) and layer.mode == "avg":
            return "gap"
        prefix = "avg" if layer.mode == "avg" else ""
        if layer.levels == SPP().levels:
            return prefix + "spp"
        return prefix + "spp(" + ",".join(str(level) for level in layer.levels) + ")"
    if isinstance(layer, Flatten):
        return "flat"
    if layer.dropout == FC(1).dropout:
        return f"fc{layer.out_features}"
    dropout = f"{layer.dropout:g}"
    if float(dropout) != layer.dropout:  # keep every digit that printing then parsing needs
        dropout = repr(layer.dropout)
    return f"fc({layer.out_features},{dropout})"


@lru_cache(maxsize=8192)
def _format_block(layer: Residual | Concat) -> str:
    """A block in the notation, cached by value (every field of a spec is checked, so
    equal specs print the same; a ResNet's notation repeats a few blocks many times)."""
    if isinstance(layer, Residual):
        text = "res[" + format_layers(layer.body)
        if layer.shortcut is not None:
            text += " | " + (format_layers(layer.shortcut) or "id")
        return text + "]" + ("" if layer.activation == "relu" else f"@{layer.activation}")
    return "cat[" + " | ".join(format_layers(branch) or "id" for branch in layer.branches) + "]"


def format_arch(arch: Arch) -> str:
    """The notation of a whole Arch: stages joined by pools, ``+`` inside a stage.

    The paper's head (``spp fc4096 fc4096``) is left out, as in Tables 1-2, when it is the
    default head of the input (64 px and more); every other head is printed.

    Example:
        >>> import budgetnet
        >>> format_arch(budgetnet.parse("(3,160)x5 (3,256)"))
        '(3,160)x5 + (3,256)'
    """
    parts: list[str] = []
    stage: list[str] = []
    print_head = arch.head != paper_head() or default_head(arch.input_shape) != paper_head() or not arch.features
    for layer, count in _runs(arch.layers):
        text = format_layer(layer) + (f"x{count}" if count > 1 else "")
        if isinstance(layer, Conv):
            stage.append(text)
            continue
        if stage:
            parts.append(" + ".join(stage))
            stage = []
        if isinstance(layer, (Pool, Residual, Concat)) or print_head:
            parts.append(text)
    if stage:
        parts.append(" + ".join(stage))
    return " ".join(parts)


def format_layers(layers: Sequence[Layer]) -> str:
    """A block's branch: its layers with runs as ``xK``, separated by spaces.

    Example:
        >>> format_layers([Conv(1, 64), Conv(3, 64), Conv(3, 64)])
        '(1,64) (3,64)x2'
    """
    return " ".join(format_layer(layer) + (f"x{count}" if count > 1 else "") for layer, count in _runs(layers))


def _runs(layers: Sequence[Layer]) -> list[tuple[Layer, int]]:
    runs: list[tuple[Layer, int]] = []
    for layer in layers:
        if runs and runs[-1][0] == layer and isinstance(layer, (Conv, FC, Pool, Residual, Concat)):
            runs[-1] = (layer, runs[-1][1] + 1)
        else:
            runs.append((layer, 1))
    return runs
