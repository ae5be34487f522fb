"""The architecture graph: layer specs, shape inference, the :class:`Arch`, its notation and the zoo.

Nothing here imports torch: an Arch is a description, built into a module by
:mod:`budgetnet.pytorch`.

Example:
    >>> from budgetnet.graph import parse
    >>> arch = parse("(3,16) 2/2 res[(3,16)bn (3,16)bn@none] gap", input_shape=(1, 16, 16), num_classes=10)
    >>> arch.feature_shape
    (16, 8, 8)
"""

from budgetnet.graph import zoo
from budgetnet.graph.arch import Arch
from budgetnet.graph.layers import (
    ACTIVATIONS,
    FC,
    NORMS,
    SPP,
    Add,
    Cat,
    Concat,
    Conv,
    Flatten,
    Layer,
    Pool,
    Residual,
    layer_from_dict,
    layer_to_dict,
    paper_head,
)
from budgetnet.graph.notation import parse
from budgetnet.graph.printing import format_arch, format_layer
from budgetnet.graph.shapes import LayerShape, conv_output_size, default_padding, infer_shapes

__all__ = [
    "ACTIVATIONS",
    "Add",
    "Arch",
    "Cat",
    "Concat",
    "Conv",
    "FC",
    "Flatten",
    "Layer",
    "LayerShape",
    "NORMS",
    "Pool",
    "Residual",
    "SPP",
    "conv_output_size",
    "default_padding",
    "format_arch",
    "format_layer",
    "infer_shapes",
    "layer_from_dict",
    "layer_to_dict",
    "paper_head",
    "parse",
    "zoo",
]
