"""Shape inference: the one source of truth for feature-map shapes and resolved paddings.

Shapes use PyTorch's floor rule, ``out = floor((m + 2p - k) / stride) + 1``. A conv whose
``padding`` is ``None`` on the main chain gets it from the paper's rules (Sec. 5, and
``docs/notation.md``):

* odd kernels keep the map: 1 -> 0, 3 -> 1, 5 -> 2; the paper's stem 7x7 takes 0;
* even kernels alternate: shrink by one pixel (pad ``k/2 - 1``) when the map is at its
  stage's target size, grow back (pad ``k/2``) when it is below it, so consecutive 2x2
  convs take pads 0, 1, 0, 1;
* a strided conv takes the pad that brings its output closest to the stage's target size
  (one less when an odd number of 2x2 convs follow, so the stage ends on its target). With
  delayed subsampling (a stride-1 pool, then a strided conv) the target is what the pool
  would give with the conv's stride, so stages keep the sizes they had before.

Inside a block (:class:`~budgetnet.graph.layers.Residual`, :class:`~budgetnet.graph.layers.Concat`) an
automatic padding is the "same" padding: ``(k - 1) / 2`` for odd kernels (7x7 too), and for
even kernels ``k/2 - 1`` then ``k/2`` alternately, so a pair of 2x2 convs keeps the map.
A residual block's automatic shortcut is the identity when the body keeps the shape, else a
1x1 projection conv (stride ``ceil(in / out)``, no padding, batch norm when the body has it,
no activation): He et al. 2016's option B.

Example:
    >>> from budgetnet.graph.layers import Conv, Pool
    >>> shapes = infer_shapes((Conv(3, 16), Pool(2), Conv(2, 32), Conv(2, 32)), (1, 8, 8))
    >>> [info.out_shape for info in shapes if info.kind == "conv"]
    [(16, 8, 8), (32, 3, 3), (32, 4, 4)]
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Iterator, Mapping, Sequence

from budgetnet.errors import ShapeError
from budgetnet.graph.layers import (
    ELEMENTWISE,
    FC,
    FEATURE_LAYERS,
    SPP,
    Concat,
    Conv,
    Flatten,
    Gate,
    GlobalPool,
    Layer,
    Norm,
    Pad,
    Pool,
    Residual,
    Shuffle,
    Slice,
)
from budgetnet.graph.printing import format_layer


def conv_output_size(size: int, kernel_size: int, stride: int, padding: int, ceil_mode: bool = False) -> int:
    """PyTorch's floor rule for one side of a conv or pool output (``kernel_size`` is the
    window's extent, ``dilation * (k - 1) + 1`` for a dilated conv). ``ceil_mode`` is the
    pools' rounding up, where a last window must start inside the map or its left padding.

    Example:
        >>> conv_output_size(224, 7, 2, 0), conv_output_size(112, 3, 2, 0), conv_output_size(112, 3, 2, 0, ceil_mode=True)
        (109, 55, 56)
    """
    if not ceil_mode:
        return (size + 2 * padding - kernel_size) // stride + 1
    out = -(-(size + 2 * padding - kernel_size) // stride) + 1
    if (out - 1) * stride >= size + padding:
        out -= 1
    return out


def default_padding(kernel_size: int) -> int:
    """The paper's padding for an odd kernel (Sec. 5): 7 -> 0, otherwise ``(k - 1) // 2``.

    Example:
        >>> [default_padding(k) for k in (1, 3, 5, 7)]
        [0, 1, 2, 0]
    """
    return 0 if kernel_size == 7 else (kernel_size - 1) // 2


@dataclass(frozen=True)
class LayerShape:
    """One layer (or block) after shape inference.

    ``layer`` has its paddings, groups and shortcut resolved; ``in_shape`` and ``out_shape``
    are ``(C, H, W)`` for feature layers and ``(features,)`` after the map is pooled or
    flattened. ``stage`` counts from 1 and grows after every pool and at every block that
    shrinks the map; head layers have stage ``None``. ``index`` is the position of the
    top-level layer it belongs to. A block's ``inner`` holds its layers (body first, then the
    shortcut; or branch by branch), named ``res3.conv1``, ``res3.short.conv1``,
    ``cat1.b2.conv1``; ``shortcut`` is true on a residual shortcut's layers.
    """

    index: int
    node: object
    name: str
    layer: Layer
    stage: int | None
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    inner: tuple["LayerShape", ...] = ()
    shortcut: bool = False

    @property
    def kind(self) -> str:
        return self.layer.kind

    def walk(self) -> Iterator["LayerShape"]:
        """This shape, then every shape inside it, depth first."""
        yield self
        for info in self.inner:
            yield from info.walk()


def _check_window(name: str, layer: Layer, size: Sequence[int], kernel: int, padding: int) -> None:
    # By the floor rule this is also the only way a map can shrink below 1 pixel.
    for side in size:
        if side + 2 * padding < kernel:
            raise ShapeError(
                f"{name} ({format_layer(layer)}): kernel_size={kernel} is larger than the padded "
                f"map ({side} + 2*{padding} = {side + 2 * padding}), so the feature map would "
                f"shrink below 1 pixel; expected a kernel of at most {side + 2 * padding}"
            )


def _resolved(spec: Layer, **changes) -> Layer:
    """A copy of ``spec`` with values that shape inference chose (already valid, so the
    spec's checks are not run again: they cost most of the time of a deep net's inference)."""
    new = copy.copy(spec)
    for name, value in changes.items():
        object.__setattr__(new, name, value)
    return new


def _resolve_groups(name: str, layer: Conv, in_channels: int) -> int:
    """The conv's groups on its input (depthwise: one group per input channel), checked."""
    groups = in_channels if layer.depthwise else layer.groups
    if layer.depthwise and layer.out_channels % in_channels:
        raise ShapeError(
            f"{name} ({format_layer(layer)}): depthwise conv with out_channels={layer.out_channels} on "
            f"{in_channels} input channels; expected out_channels a multiple of {in_channels} "
            "(the channel multiplier times the input channels)"
        )
    if in_channels % groups:
        raise ShapeError(
            f"{name} ({format_layer(layer)}): groups={groups} does not divide the {in_channels} input "
            f"channels; expected groups dividing both {in_channels} and {layer.out_channels}"
        )
    return groups


@lru_cache(maxsize=4096)
def _resolved_conv(layer: Conv, groups: int, padding: int) -> Conv:
    """``layer`` with its groups and padding set (cached: rewrites infer the same convs often)."""
    return layer if (groups, padding) == (layer.groups, layer.padding) else _resolved(layer, groups=groups, padding=padding)


def _conv_shape(name, layer: Conv, shape, padding) -> tuple[Conv, tuple[int, int, int]]:
    channels, height, width = shape
    pads = padding if isinstance(padding, tuple) else (padding, padding)
    for side, field, pad in zip((height, width), layer.field_hw, pads):
        _check_window(name, layer, (side,), field, pad)
    layer = _resolved_conv(layer, _resolve_groups(name, layer, channels), padding)
    size = tuple(conv_output_size(m, field, layer.stride, pad) for m, field, pad in zip((height, width), layer.field_hw, pads))
    return layer, (layer.out_channels, *size)


def _non_square_padding(name: str, layer: Conv) -> int | tuple[int, int]:
    """A non-square filter's padding: as written, or each side padded to keep the map, which
    needs odd sides (Inception's 1x7: ``(0, 3)``)."""
    if layer.padding is not None:
        return layer.padding
    fields = layer.field_hw
    if any(field % 2 == 0 for field in fields):
        raise ShapeError(
            f"{name} ({format_layer(layer)}): a {fields[0]}x{fields[1]} filter has an even side, which no automatic "
            "padding keeps centred; expected an explicit padding p(ROWS,COLUMNS)"
        )
    rows, columns = ((field - 1) // 2 for field in fields)
    return rows if rows == columns else (rows, columns)


def _pool_shape(name, layer: Pool, shape) -> tuple[int, int, int]:
    channels, height, width = shape
    _check_window(name, layer, (height, width), layer.kernel_size, layer.padding)
    return (
        channels,
        *(conv_output_size(m, layer.kernel_size, layer.stride, layer.padding, layer.ceil_mode) for m in (height, width)),
    )


def _leaf_shape(name: str, layer: Layer, shape: tuple[int, int, int]) -> tuple[int, int, int]:
    """The output of a leaf that is neither a conv nor a pool: norms, activations, scales and
    drops keep the shape; a slice keeps its channels; a shuffle keeps the shape; a global
    pool leaves 1x1."""
    channels, height, width = shape
    if isinstance(layer, Norm) and layer.norm == "group" and channels % layer.groups:
        raise ShapeError(
            f"{name} ({format_layer(layer)}): groups={layer.groups} does not divide the {channels} channels; "
            f"expected a divisor of {channels}"
        )
    if isinstance(layer, Slice):
        if layer.stop > channels:
            raise ShapeError(
                f"{name} ({format_layer(layer)}): channels {layer.start}:{layer.stop} of a map with {channels}; "
                f"expected a slice inside 0:{channels}"
            )
        return (layer.channels, height, width)
    if isinstance(layer, Shuffle) and channels % layer.groups:
        raise ShapeError(
            f"{name} ({format_layer(layer)}): groups={layer.groups} does not divide the {channels} channels; "
            f"expected a divisor of {channels}"
        )
    if isinstance(layer, GlobalPool):
        return (channels, 1, 1)
    if isinstance(layer, Pad):
        return (channels, height + layer.top + layer.bottom, width + layer.left + layer.right)
    return shape


# -- inside blocks ---------------------------------------------------------------------------
def _infer_branch(layers, shape, prefix, index, stage, shortcut) -> tuple[list[LayerShape], tuple]:
    """Shapes of a block's branch with the block padding rules; returns (shapes, out shape)."""
    counters: dict[str, int] = {}
    shapes = []
    target = shape[1]  # the size after the last strided layer: even kernels alternate around it
    for layer in layers:
        counters[layer.kind] = counters.get(layer.kind, 0) + 1
        name = f"{prefix}{layer.kind}{counters[layer.kind]}"
        in_shape = shape
        inner: tuple = ()
        if isinstance(layer, Conv) and not layer.square:
            layer, shape = _conv_shape(name, layer, shape, _non_square_padding(name, layer))
            if layer.stride > 1:
                target = shape[1]
        elif isinstance(layer, Conv):
            padding = layer.padding
            kernel = layer.field
            if padding is None:
                if kernel % 2:
                    padding = (kernel - 1) // 2
                elif layer.stride > 1 or shape[1] >= target:
                    padding = kernel // 2 - 1
                else:
                    padding = kernel // 2
            layer, shape = _conv_shape(name, layer, shape, padding)
            if layer.stride > 1:
                target = shape[1]
        elif isinstance(layer, Pool):
            shape = _pool_shape(name, layer, shape)
            target = shape[1] if layer.stride > 1 else target
        elif not isinstance(layer, (Residual, Concat, Gate)):
            shape = _leaf_shape(name, layer, shape)
        else:
            layer, inner, shape = _infer_block(layer, shape, name, index, stage, shortcut)
            target = shape[1]
        shapes.append(LayerShape(index, None, name, layer, stage, in_shape, shape, inner, shortcut))
    return shapes, shape


def projection(body_shapes: Sequence[LayerShape], in_shape, out_shape) -> tuple[Conv, ...]:
    """The automatic shortcut of a residual block: ``()`` (identity) or a 1x1 projection.

    Example:
        >>> projection([], (64, 56, 56), (256, 28, 28))
        (Conv(kernel_size=1, out_channels=256, stride=2, padding=0, groups=1, depthwise=False, activation='none', norm=None),)
    """
    if tuple(in_shape) == tuple(out_shape):
        return ()
    stride = max(-(-in_shape[1] // out_shape[1]), 1)
    batch = any(info.kind == "conv" and info.layer.norm == "batch" for b in body_shapes for info in b.walk())
    return (Conv(1, out_shape[0], stride, 0, activation="none", norm="batch" if batch else None),)


def _infer_block(layer, shape, name, index, stage, in_shortcut) -> tuple[Layer, tuple, tuple]:
    """Resolve a block: (resolved spec, inner shapes, output shape)."""
    if isinstance(layer, Residual):
        body, out = _infer_branch(layer.body, shape, f"{name}.", index, stage, in_shortcut)
        shortcut_layers = layer.shortcut
        if shortcut_layers is None:
            shortcut_layers = projection(body, shape, out)
        short, short_out = _infer_branch(shortcut_layers, shape, f"{name}.short.", index, stage, True)
        if short_out != out:
            raise ShapeError(
                f"{name} ({format_layer(layer)}): the body gives {out} but the shortcut gives {short_out}; "
                "expected equal shapes at the add (an automatic shortcut needs an output side of "
                "ceil(input side / stride))"
            )
        resolved = _resolved(
            layer, body=tuple(info.layer for info in body), shortcut=tuple(info.layer for info in short)
        )
        return resolved, tuple(body + short), out
    if isinstance(layer, Concat):
        inner, outs = [], []
        for number, branch in enumerate(layer.branches, start=1):
            shapes, out = _infer_branch(branch, shape, f"{name}.b{number}.", index, stage, in_shortcut)
            inner += shapes
            outs.append(out)
        sizes = {out[1:] for out in outs}
        if len(sizes) > 1:
            listing = ", ".join(f"branch {n} gives {out}" for n, out in enumerate(outs, start=1))
            raise ShapeError(
                f"{name} ({format_layer(layer)}): {listing}; expected the same height and width in every "
                "branch to concatenate the channels"
            )
        resolved_branches, position = [], 0
        for branch in layer.branches:
            count = len(branch)
            resolved_branches.append(tuple(info.layer for info in inner[position : position + count]))
            position += count
        resolved = _resolved(layer, branches=tuple(resolved_branches))
        return resolved, tuple(inner), (sum(out[0] for out in outs), *outs[0][1:])
    if isinstance(layer, Gate):
        body, out = _infer_branch(layer.body, shape, f"{name}.", index, stage, in_shortcut)
        if out[0] != shape[0] or out[1:] not in ((1, 1), tuple(shape[1:])):
            raise ShapeError(
                f"{name} ({format_layer(layer)}): the gate's body gives {out} on an input of {tuple(shape)}; "
                f"expected {shape[0]} channels on a 1x1 map or on the input's {shape[1]}x{shape[2]}, to multiply the input"
            )
        return _resolved(layer, body=tuple(info.layer for info in body)), tuple(body), tuple(shape)
    raise ShapeError(f"{name}: {layer!r} cannot stand inside a block; expected a feature layer")


# -- the main chain --------------------------------------------------------------------------
def _following_even_convs(layers: Sequence[Layer], index: int) -> int:
    """Stride-1 automatic-padding even convs in a row after ``index`` (norms, activations,
    scales and drops between them do not break the row)."""
    count = 0
    for layer in layers[index + 1 :]:
        if isinstance(layer, Conv) and layer.stride == 1 and layer.padding is None and layer.square and layer.field % 2 == 0:
            count += 1
        elif not isinstance(layer, ELEMENTWISE):
            break
    return count


def infer_shapes(
    layers: Sequence[Layer],
    input_shape: tuple[int, int, int],
    nodes: Sequence | None = None,
    *,
    start: int = 0,
    stage: int = 1,
    counts: Mapping[str, int] | None = None,
) -> tuple[LayerShape, ...]:
    """Every top-level layer after shape inference, in order (blocks hold theirs in ``inner``).

    ``start``, ``stage`` and ``counts`` (layers of each kind so far) continue a net whose
    first ``start`` layers came before, so a span of blocks and pools gets the indexes,
    names and stages it has in the whole net. Convs would also need the main chain's
    padding state, which a span does not carry: give such a span its whole net instead.

    Example:
        >>> [info.name for info in infer_shapes((Pool(2), Residual((Conv(3, 8),))), (8, 8, 8), start=3, counts={"pool": 1})]
        ['pool2', 'res1']
    """
    channels, height, width = input_shape
    nodes = range(start, start + len(layers)) if nodes is None else nodes
    target = [height, width]  # the stage's dominant size, per side
    delayed = False  # a stride-1 pool already set the target for this strided conv
    counters: dict[str, int] = dict(counts or {})
    shapes = []
    shape: tuple[int, ...] = input_shape
    for position, (layer, node) in enumerate(zip(layers, nodes)):
        index = start + position
        counters[layer.kind] = counters.get(layer.kind, 0) + 1
        name = f"{layer.kind}{counters[layer.kind]}"
        in_shape = shape
        layer_stage = stage if isinstance(layer, FEATURE_LAYERS) else None
        inner: tuple = ()
        if isinstance(layer, Conv) and not layer.square:
            padding = _non_square_padding(name, layer)
            pads = padding if isinstance(padding, tuple) else (padding, padding)
            target = [conv_output_size(t, f, layer.stride, p) for t, f, p in zip(target, layer.field_hw, pads)]
            delayed = False
            layer, shape = _conv_shape(name, layer, (channels, height, width), padding)
            channels, height, width = shape
        elif isinstance(layer, Conv):
            size = [height, width]
            kernel, stride = layer.field, layer.stride
            padding = layer.padding
            if stride == 1:
                if padding is None:
                    if kernel % 2:
                        padding = default_padding(kernel)
                    else:
                        padding = kernel // 2 - 1 if height >= target[0] else kernel // 2
                if kernel % 2 or layer.padding is not None:
                    target = [conv_output_size(t, kernel, 1, padding) for t in target]
            else:
                if not delayed:
                    guess = default_padding(kernel) if kernel % 2 else kernel // 2 - 1
                    guess = guess if padding is None else padding
                    target = [conv_output_size(t, kernel, stride, guess) for t in target]
                if padding is None:
                    desired = target[0] - (_following_even_convs(layers, position) % 2)
                    padding = _closest_padding(height, kernel, stride, desired)
            delayed = False
            layer, shape = _conv_shape(name, layer, (channels, *size), padding)
            channels, height, width = shape
        elif isinstance(layer, Pool):
            shape = _pool_shape(name, layer, (channels, height, width))
            channels, height, width = shape
            following = layers[position + 1] if position + 1 < len(layers) else None
            delayed = layer.stride == 1 and isinstance(following, Conv) and following.stride > 1
            step = following.stride if delayed else layer.stride
            target = [conv_output_size(t, layer.kernel_size, step, layer.padding, layer.ceil_mode) for t in target]
            stage += 1
        elif isinstance(layer, GlobalPool):
            shape = _leaf_shape(name, layer, (channels, height, width))
            channels, height, width = shape
            target = [height, width]
            stage += 1
        elif isinstance(layer, FEATURE_LAYERS) and not isinstance(layer, (Residual, Concat, Gate)):
            shape = _leaf_shape(name, layer, (channels, height, width))
            channels, height, width = shape
        elif isinstance(layer, (Residual, Concat, Gate)):
            delayed = False
            layer, inner, shape, stage = _top_block(layer, (channels, height, width), name, index, stage)
            layer_stage = stage
            channels, height, width = shape
            target = [height, width]
        elif isinstance(layer, SPP):
            _check_spp_fits(name, layer, (height, width), input_shape)
            shape = (channels * layer.bins,)
        elif isinstance(layer, Flatten):
            shape = (channels * height * width,)
        elif isinstance(layer, FC):
            shape = (layer.out_features,)
        shapes.append(LayerShape(index, node, name, layer, layer_stage, in_shape, shape, inner))
    return tuple(shapes)


def _check_spp_fits(name: str, layer: SPP, size: tuple[int, int], input_shape) -> None:
    """Refuse an SPP level finer than its map: its bins would have no pixel of their own (the
    paper's windows, ``ceil(a/n)`` wide with stride ``floor(a/n)``, are then undefined)."""
    finest, side = max(layer.levels), min(size)
    if finest > side:
        fits = ",".join(str(level) for level in layer.levels if level <= side) or "1"
        raise ShapeError(
            f"{name}: spp level {finest} is finer than the {size[0]}x{size[1]} map it pools (input "
            f"{'x'.join(map(str, input_shape))}); expected levels of at most {side}, e.g. spp({fits}), or a "
            "larger input"
        )


@lru_cache(maxsize=8192)
def _top_block(layer, shape, name, index, stage) -> tuple[Layer, tuple, tuple, int]:
    """A top-level block resolved: (spec, inner shapes, output shape, its stage).

    A block's shapes depend on these arguments alone (its paddings follow the block rules,
    not the main chain's), and specs and shapes are frozen, so the result is cached: a walk
    over variants infers the same blocks of the same net many times. Errors are not cached.
    """
    layer, inner, out = _infer_block(layer, shape, name, index, stage, False)
    if _smaller(out, shape[1:]):
        stage += 1
        inner = tuple(_restage(info, stage) for info in inner)
    return layer, inner, out, stage


def _smaller(shape, size) -> bool:
    return shape[1] < size[0] or shape[2] < size[1]


def _restage(info: LayerShape, stage: int) -> LayerShape:
    return replace(info, stage=stage, inner=tuple(_restage(child, stage) for child in info.inner))


def _closest_padding(size: int, kernel: int, stride: int, desired: int) -> int:
    """The smallest pad in ``[0, kernel)`` whose output side is closest to ``desired``.

    The output grows with the pad, so only the pads up to the first one that reaches
    ``desired`` can win; trying just those keeps a huge kernel from a scan of every pad.
    """
    reach = -(-((desired - 1) * stride + kernel - size) // 2)  # first pad giving >= desired
    high = min(max(reach, 0), kernel - 1)
    return min(
        range(max(high - stride - 1, 0), high + 1),
        key=lambda p: (abs(conv_output_size(size, kernel, stride, p) - desired), p),
    )
