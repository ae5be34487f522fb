"""The numeric check after an import: the model built from the imported Arch, with the module's
own weights and batch-norm statistics, must compute what the module computes.

:func:`check_import` runs both in eval mode on one random image (a fixed seed) and compares
their outputs layer by layer, in forward order: each conv's output after its fused batch norm
and activation, each pool's, each residual add's and concatenation's (the block outputs), and
the logits. The relative error of a compared tensor is ``max |built - original| / max
|original|``; the first one above the tolerance is an :class:`~budgetnet.errors.ArchError`
naming that layer's module path.

To stay cheap, a module whose head is a global pool (``gap`` or a 1x1 max pool, so its
weights do not depend on the map size) is checked at a smaller input when that is as
strong a check (see :func:`check_shape_for`): the same torch modules are built, and every
tap of every conv and pool kernel still meets real pixels, so every weight is exercised.

Example:
    >>> import torch.nn as nn
    >>> from budgetnet.pytorch.fx_graph import import_module
    >>> net = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 2))
    >>> check_import(net, import_module(net, (3, 64, 64)))  # checked at 8x8: silent when equal
    >>> check_shape_for(import_module(net, (3, 64, 64)))
    (3, 8, 8)
"""

from __future__ import annotations

import torch
from torch import fx, nn

from budgetnet.errors import ArchError, BudgetNetError
from budgetnet.graph.arch import SPP, Conv, Pool
from budgetnet.pytorch.builder import assemble
from budgetnet.pytorch.fx_graph import Imported
from budgetnet.pytorch.modules import built_layers, feature_specs, render
from budgetnet.pytorch.weights import load_weights

#: Largest accepted relative error (max |difference| over max |reference|) of a compared tensor.
TOLERANCE = 1e-4
#: The random image's seed.
SEED = 0


def check_import(
    module: nn.Module, imported: Imported, tolerance: float = TOLERANCE, input_shape: tuple[int, ...] | None = None
) -> None:
    """Check numerically that ``build(imported.arch, weights_from=module)`` computes what
    ``module`` computes (eval mode, one random image; see the module docstring).

    The module is left as it was: its train/eval flags are restored, its tensors only read,
    and no hook stays behind.

    ``input_shape`` overrides the shape checked at (default: :func:`check_shape_for`).

    Raises:
        ArchError: the first compared layer (in forward order) whose output differs by more
            than ``tolerance``, with its module path and relative error.
    """
    shape = check_shape_for(imported) if input_shape is None else tuple(input_shape)
    try:
        _compare(module, imported, shape, tolerance)
    except _Failed:
        if shape == imported.arch.input_shape:
            raise
        _compare(module, imported, imported.arch.input_shape, tolerance)  # the module refuses the smaller input


class _Failed(Exception):
    """The module does not run at the smaller input."""


def check_shape_for(imported: Imported) -> tuple[int, ...]:
    """The input shape :func:`check_import` runs at: ``imported.arch.input_shape``, or a
    smaller one (a half, a quarter, an eighth of the side) where

    * the head is a global pool and nothing depends on the map size (no ``flat`` fold),
    * the Arch at that size builds the very same torch modules (same paddings, same shapes
      of every weight), and
    * every tap of every conv and pool kernel meets a real (not padding) pixel at some output
      position, so each weight still contributes to the output.

    Convs, pools, batch norms, adds and concatenations compute the same function of their
    input at any size, so equal outputs there check the same weights and wiring.

    Example:
        >>> import torch.nn as nn
        >>> from budgetnet.pytorch.fx_graph import import_module
        >>> net = nn.Sequential(nn.Conv2d(3, 8, 3), nn.Flatten(), nn.Linear(8 * 30 * 30, 2))
        >>> check_shape_for(import_module(net, (3, 32, 32)))  # a flatten head: the full size
        (3, 32, 32)
    """
    arch = imported.arch
    reducer = arch.head[0] if arch.head else None
    if imported.fold is not None or not (isinstance(reducer, SPP) and reducer.levels == (1,)):
        return arch.input_shape
    channels, height, width = arch.input_shape
    specs = [render(spec) for spec in feature_specs(arch)]
    for factor in (8, 4, 2):
        shape = (channels, -(-height // factor), -(-width // factor))
        try:
            small = arch.with_input(input_shape=shape)
            same = [render(spec) for spec in feature_specs(small)] == specs and small.feature_shape[0] == (
                arch.feature_shape[0]
            )
        except BudgetNetError:
            continue
        if same and all(_every_tap_used(info) for info in small.walk() if isinstance(info.layer, (Conv, Pool))):
            return shape
    return arch.input_shape


def _every_tap_used(info) -> bool:
    """Whether each kernel row (and column) of a conv or pool reads a real pixel somewhere."""
    layer = info.layer
    kernels = layer.kernel_hw if isinstance(layer, Conv) else (layer.kernel_size,) * 2
    paddings = layer.padding if isinstance(layer.padding, tuple) else (layer.padding,) * 2
    stride = layer.stride
    for size_in, size_out, kernel, padding in zip(info.in_shape[1:], info.out_shape[1:], kernels, paddings):
        for tap in range(kernel):
            if not any(0 <= o * stride - padding + tap < size_in for o in range(size_out)):
                return False
    return True


class _Recorder(fx.Interpreter):
    """Runs the traced module and keeps a copy of the outputs of the nodes asked for (a copy:
    a later in-place op, as torchvision's ``out += identity``, would change them)."""

    def __init__(self, graph_module: fx.GraphModule, wanted):
        super().__init__(graph_module)
        self.wanted = set(wanted)
        self.outputs: dict[fx.Node, torch.Tensor] = {}

    def run_node(self, n: fx.Node):
        result = super().run_node(n)
        if n in self.wanted and isinstance(result, torch.Tensor):
            self.outputs[n] = result.detach().clone()
        return result


def _checkpoints(imported: Imported, built: nn.Module) -> list[tuple[str, fx.Node, nn.Module]]:
    """(name, fx node of the original, module of the built model) of each compared layer:
    every leaf layer computed channels-first (after what was fused into it), every block's
    output, the logits; in the forward order of the original."""
    leaves, blocks = built_layers(built.arch, built)
    found = [
        (record.name, record.last, modules[-1])
        for (_, modules), record in zip(leaves, imported.layers)
        if record.last is not None and record.layout == "first"
    ]
    found += [(block[0], block[1], module) for (_, module), block in zip(blocks, imported.blocks) if block is not None]
    order = {node: position for position, node in enumerate(imported.graph_module.graph.nodes)}
    found.sort(key=lambda item: order[item[1]])
    logits = next(n for n in imported.graph_module.graph.nodes if n.op == "output").args[0]
    if not imported.linears:  # no classifier: the head's pooling gives the logits
        return found + [("the logits (the head's output)", logits, built.pool)]
    return found + [(imported.linears[-1][0], logits, built.classifier[-1])]


def _compare(module: nn.Module, imported: Imported, shape: tuple[int, ...], tolerance: float) -> None:
    parameter = next(module.parameters(), None)
    dtype = parameter.dtype if parameter is not None else torch.float32
    device = parameter.device if parameter is not None else torch.device("cpu")
    arch = imported.arch if shape == imported.arch.input_shape else imported.arch.with_input(input_shape=shape)
    # Built on the meta device, then given the module's own tensors (shared, not copied: a
    # copy of ResNet-152's 60M weights into fresh memory takes longer than the forward passes).
    with torch.device("meta"):
        built = assemble(arch)  # build(arch) without its random initial weights
    load_weights(imported, built, share=True)  # every parameter and buffer of the built model
    built.eval()
    checkpoints = _checkpoints(imported, built)
    recorder = _Recorder(imported.graph_module, [node for _, node, _ in checkpoints])
    image = torch.randn((1, *shape), generator=torch.Generator().manual_seed(SEED), dtype=dtype).to(device)
    rebuilt: dict[nn.Module, torch.Tensor] = {}
    hooks = [
        m.register_forward_hook(lambda m, args, output: rebuilt.setdefault(m, output.detach().clone()))
        for _, _, m in checkpoints
    ]
    training = {m: m.training for m in module.modules()}
    threads = torch.get_num_threads()
    module.eval()
    torch.set_num_threads(1)  # one small image: on a shared machine a second thread mostly waits
    try:
        with torch.inference_mode():
            try:
                recorder.run(image)
            except Exception as error:
                if shape == imported.arch.input_shape:
                    raise ArchError(f"{type(module).__name__} fails on a random input of shape {(1, *shape)} "
                                    f"({type(error).__name__}: {error})") from None
                raise _Failed from None
            try:
                built(image)
            except Exception as error:  # a weight left out (still on the meta device) or a wrong width
                raise ArchError(
                    f"the model built from the imported Arch fails on a random input of shape {(1, *shape)} "
                    f"({type(error).__name__}: {error}); expected it to run as the module does"
                ) from None
            mismatch = _first_mismatch(checkpoints, recorder.outputs, rebuilt, tolerance)
    finally:
        torch.set_num_threads(threads)
        for m, mode in training.items():
            m.training = mode
        for hook in hooks:
            hook.remove()
    if mismatch is not None:
        name, error = mismatch
        raise ArchError(
            f"{name}: the model built from the imported Arch computes another output than the module "
            f"here, the first such layer in forward order (relative error {error:.2e} = max |difference| / "
            f"max |original| on a random input of shape {(1, *shape)}, above the tolerance {tolerance:g}); "
            "expected the same logits: the import does not express what this module computes"
        )


def _first_mismatch(checkpoints, outputs: dict, rebuilt: dict, tolerance: float) -> tuple[str, float] | None:
    """The name and relative error of the first checkpoint above ``tolerance``, if any."""
    for name, node, m in checkpoints:
        original, copy = outputs.get(node), rebuilt.get(m)
        if original is None or copy is None or original.shape != copy.shape:
            raise ArchError(
                f"{name}: the model built from the imported Arch gives an output of shape "
                f"{None if copy is None else tuple(copy.shape)} where the module gives "
                f"{None if original is None else tuple(original.shape)}; expected the same computation"
            )
        error = relative_error(copy, original)
        if not error <= tolerance:
            return name, error
    return None


def relative_error(actual: torch.Tensor, expected: torch.Tensor) -> float:
    """``max |actual - expected| / max |expected|`` (the plain maximum difference where
    ``expected`` is all zeros).

    Example:
        >>> round(relative_error(torch.tensor([1.0, 2.1]), torch.tensor([1.0, 2.0])), 6)
        0.05
    """
    difference = (actual - expected).abs().max().item()
    scale = expected.abs().max().item()
    return difference / scale if scale > 0 else difference
