"""Weight copying for ``build(arch, weights_from=module)``: the imported module's conv, norm,
layer-scale and Linear weights into the model built from its Arch.

Example:
    >>> import torch, torch.nn as nn, budgetnet
    >>> net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(64, 3)).eval()
    >>> built = budgetnet.build(budgetnet.Arch.from_module(net, (1, 6, 6)))
    >>> copy_weights(net, built)
    >>> x = torch.randn(2, 1, 6, 6)
    >>> bool(torch.allclose(built.eval()(x), net(x), atol=1e-6))
    True
"""

from __future__ import annotations

import torch
from torch import nn

from budgetnet.errors import ArchError
from budgetnet.graph.layers import ChannelConv, Conv, Norm, Scale
from budgetnet.pytorch.fx_graph import Imported, import_module
from budgetnet.pytorch.modules import built_layers


def copy_weights(source: nn.Module, model: nn.Module) -> None:
    """Copy the weights of ``source`` into ``model``, a :func:`budgetnet.build` of the Arch that
    ``source`` imports as. A conv bias before a batch norm is folded into its running mean.

    Raises:
        ArchError: ``source`` imports as another Arch, or ``model`` was built with another norm.
    """
    arch = model.arch
    imported = import_module(source, arch.input_shape)
    if imported.arch != arch:
        raise ArchError(
            f"build: weights_from={type(source).__name__} imports as {imported.arch.notation()!r}, not as the "
            f"Arch being built ({arch.notation()!r}); expected the module the Arch was imported from"
        )
    load_weights(imported, model)


def load_weights(imported: Imported, model: nn.Module, share: bool = False) -> None:
    """Copy the weights of an import (:func:`~budgetnet.pytorch.fx_graph.import_module`) into
    ``model``, a :func:`budgetnet.build` of ``imported.arch`` (at any input size where the
    Arch has the same layers); the source module's tensors are only read.

    Each leaf layer's tensors go to the modules the builder made for it: a conv's weight and
    bias (a bias before a batch norm folded into the norm's running mean, a missing one
    zero), a norm's scale, shift and statistics, a layer scale's multipliers (a pointwise
    ``Linear`` of a channels-last block becomes a 1x1 conv's weight), the taps of a conv
    along the channels (ECA's ``Conv1d``); then the Linear layers.

    ``share=True`` puts the source's tensors themselves into ``model`` (no copy: ``model``
    may be built on the meta device), for a model that only runs without gradients and must
    not be trained, as the numeric check after an import does.

    Raises:
        ArchError: ``model`` was built with another norm than the import's.
    """

    def put(module: nn.Module, name: str, value: torch.Tensor | None) -> None:
        if value is None:
            return
        if not share:
            getattr(module, name).copy_(value.reshape(getattr(module, name).shape))
        elif isinstance(getattr(module, name), nn.Parameter):
            setattr(module, name, nn.Parameter(value.reshape(getattr(module, name).shape), requires_grad=False))
        else:
            setattr(module, name, value)

    leaves, _ = built_layers(model.arch, model)
    with torch.no_grad():
        for (info, modules), record in zip(leaves, imported.layers):
            tensors = record.tensors
            if isinstance(info.layer, Conv):
                conv = modules[0]
                norm = modules[1] if len(modules) > 1 and isinstance(modules[1], nn.BatchNorm2d) else None
                if (norm is None) != (info.layer.norm is None):
                    raise ArchError(
                        f"build: weights_from: {record.name} has {'no' if info.layer.norm is None else 'a'} batch norm "
                        "but the built conv has the opposite; expected build(arch) without norm='batch'"
                    )
                put(conv, "weight", tensors["weight"])
                bias = tensors.get("bias")
                if norm is None:
                    put(conv, "bias", bias if bias is not None else tensors["weight"].new_zeros(conv.out_channels))
                else:
                    for name in ("weight", "bias", "running_var", "num_batches_tracked"):
                        put(norm, name, tensors.get(f"norm_{name}"))
                    mean = tensors["norm_running_mean"]
                    put(norm, "running_mean", mean if bias is None else mean - bias)
            elif isinstance(info.layer, Norm):
                for name in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked"):
                    if hasattr(modules[0], name) and getattr(modules[0], name) is not None:
                        put(modules[0], name, tensors.get(name))
            elif isinstance(info.layer, Scale):
                put(modules[0], "gamma", tensors["gamma"])
                if info.layer.shift:
                    put(modules[0], "beta", tensors["beta"])
            elif isinstance(info.layer, ChannelConv):
                put(modules[0].conv, "weight", tensors["weight"])
                put(modules[0].conv, "bias", tensors.get("bias"))
        linears = [m for m in model.classifier.modules() if isinstance(m, nn.Linear)]
        for index, (linear, (_, found_linear)) in enumerate(zip(linears, imported.linears)):
            weight = found_linear.weight
            if index == 0 and imported.fold is not None:
                bins = imported.fold.shape[0]
                weight = (weight.view(weight.shape[0], -1, bins) @ imported.fold.to(weight)).flatten(1)
            put(linear, "weight", weight)
            bias = found_linear.bias
            put(linear, "bias", bias if bias is not None else weight.new_zeros(linear.out_features))
