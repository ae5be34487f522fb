"""How much memory a network needs, estimated from its cost report, and the check that
refuses one that cannot fit before anything is allocated.

The counts come from :func:`budgetnet.cost.complexity` (its per-layer ``params`` and
``activations``); this module recomputes no shape. Values are float32, 4 bytes each:

* **parameters**: every weight and bias;
* **activations per image**: the output of every layer, classifier included (what
  ``complexity`` counts), and apart from them the input image;
* **training at batch B**: the weights, their gradients and the optimiser's buffers (one
  per weight for SGD with momentum; three for AdamW: its two moments and the temporary its
  update allocates), plus B times the input and twice the activations (the outputs kept
  for the backward pass, and their gradients);
* **inference at batch B**: the weights plus B times the input and the activations.

It is an estimate: bf16 autocast on CUDA halves most activations, and the framework adds
its own buffers (``docs/training.md`` compares it with measured peaks). Its purpose is to
refuse, with a number, a network that cannot fit at all (``(3,100000000000)`` would need
terabytes) before torch tries to allocate it.

Example:
    >>> import budgetnet
    >>> from budgetnet.cost.memory import estimate_memory
    >>> arch = budgetnet.parse("(3,8) gap", input_shape=(1, 4, 4), num_classes=2)
    >>> estimate = estimate_memory(arch, batch_size=2, optimizer="sgd")
    >>> estimate.param_bytes, estimate.activation_bytes, estimate.training_bytes
    (392, 552, 3512)
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from pathlib import Path

from budgetnet.graph.arch import Arch
from budgetnet.checks import MAX_BYTES, check_bytes, is_int
from budgetnet.cost.complexity import complexity
from budgetnet.errors import MemoryLimitError

#: Bytes of one value (float32).
BYTES_PER_VALUE = 4
#: Buffers per weight that each optimiser holds at its peak: SGD's momentum; AdamW's two moments
#: and the temporary of its update (measured with bench/memory.py, see docs/benchmarks.md).
OPTIMIZER_STATES = {"none": 0, "sgd": 1, "adamw": 3}
#: Binary multiples of ``--max-memory``: 8G is 8 GiB.
_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
_CGROUP_LIMIT = Path("/sys/fs/cgroup/memory.max")


@dataclass(frozen=True)
class MemoryEstimate:
    """The memory of one network at one batch size; build it with :func:`estimate_memory`.

    ``params`` and ``activations`` (per image, input excluded) are counts of values;
    ``input_values`` is the size of one input image.
    """

    params: int
    activations: int
    input_values: int
    batch_size: int
    optimizer: str

    @property
    def param_bytes(self) -> int:
        return self.params * BYTES_PER_VALUE

    @property
    def activation_bytes(self) -> int:
        """Bytes of one image's layer outputs (input excluded)."""
        return self.activations * BYTES_PER_VALUE

    @property
    def training_bytes(self) -> int:
        """Weights, gradients, optimiser buffers, and per image the input plus twice the activations."""
        weights = self.param_bytes * (2 + OPTIMIZER_STATES[self.optimizer])
        return weights + self.batch_size * (self.input_values * BYTES_PER_VALUE + 2 * self.activation_bytes)

    @property
    def inference_bytes(self) -> int:
        """Weights, and per image the input plus the activations."""
        return self.param_bytes + self.batch_size * (self.input_values + self.activations) * BYTES_PER_VALUE

    def to_dict(self) -> dict:
        """Everything as plain JSON-ready values (bytes)."""
        return {
            "param_bytes": self.param_bytes,
            "activation_bytes_per_image": self.activation_bytes,
            "batch_size": self.batch_size,
            "optimizer": self.optimizer,
            "training_bytes": self.training_bytes,
            "inference_bytes": self.inference_bytes,
        }

    def lines(self) -> list[str]:
        """The estimate as lines for the terminal, aligned with :meth:`ComplexityReport.table`."""
        return [
            f"memory, parameters:  {format_bytes(self.param_bytes)} (float32)",
            f"memory, activations: {format_bytes(self.activation_bytes)} per image",
            f"memory, training:    {format_bytes(self.training_bytes)} at batch {self.batch_size} "
            f"({self.optimizer}; estimate, see docs/training.md)",
        ]


def estimate_memory(arch: Arch, batch_size: int = 128, optimizer: str = "adamw") -> MemoryEstimate:
    """The memory estimate of ``arch`` at ``batch_size`` with ``optimizer``'s state.

    Args:
        arch: the architecture (its ``complexity`` report gives the counts).
        batch_size: images per training or inference step.
        optimizer: ``"adamw"`` (three buffers per weight), ``"sgd"`` (momentum, one) or
            ``"none"`` (plain SGD without momentum).

    Raises:
        MemoryLimitError: a batch size below 1 or an unknown optimiser.

    Example:
        >>> import budgetnet
        >>> arch = budgetnet.parse("(3,8) gap", input_shape=(1, 4, 4), num_classes=2)
        >>> estimate_memory(arch, 1, "adamw").params == (1 * 9 * 8 + 8) + (8 * 2 + 2)
        True
    """
    if not is_int(batch_size, 1):
        raise MemoryLimitError(f"memory estimate: batch_size={batch_size!r} is invalid; expected an integer >= 1")
    if optimizer not in OPTIMIZER_STATES:
        raise MemoryLimitError(
            f"memory estimate: optimizer={optimizer!r} is invalid; expected one of {sorted(OPTIMIZER_STATES)}"
        )
    report = complexity(arch)
    return MemoryEstimate(report.params, report.activations, math.prod(arch.input_shape), batch_size, optimizer)


def parse_bytes(text: str | int) -> int:
    """A memory size: bytes as an integer, or text such as ``"512M"``, ``"8G"``, ``"1.5GiB"``
    (K, M, G, T are binary multiples: 8G is 8 GiB).

    Raises:
        MemoryLimitError: text that is not a size, a size of zero, or one over 8 EiB
            (:data:`budgetnet.checks.MAX_BYTES`).

    Example:
        >>> parse_bytes("8G"), parse_bytes("1.5GiB"), parse_bytes("2048")
        (8589934592, 1610612736, 2048)
        >>> parse_bytes("9" * 400)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        budgetnet.errors.MemoryLimitError: max_memory='99999...99999' (402 characters) is invalid; expected a size in bytes from 1 to 2**63-1 (8 EiB) such as ...
    """
    if isinstance(text, int) and not isinstance(text, bool):
        value = text
    else:
        match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([kKmMgGtT]?)(?:i?[bB])?\s*", str(text))
        number = float(match.group(1)) * _UNITS[match.group(2).upper()] if match else 0.0
        # 400 digits read as float('inf'): range-checked here, before int() or C sees it
        value = int(number) if number <= MAX_BYTES else None
    return check_bytes(MemoryLimitError, "max_memory", value, text, "such as 512M, 8G, 1.5GiB or 2048")


def format_bytes(value: int) -> str:
    """Bytes with a binary unit: 3_600_000_000_000 -> '3.3 TiB'.

    Example:
        >>> format_bytes(1536), format_bytes(3_600_000_000_000), format_bytes(12)
        ('1.5 KiB', '3.3 TiB', '12 B')
    """
    for power, unit in ((6, "EiB"), (5, "PiB"), (4, "TiB"), (3, "GiB"), (2, "MiB"), (1, "KiB")):
        if value >= 1 << (10 * power):
            return f"{value / (1 << (10 * power)):.1f} {unit}"
    return f"{value} B"


def device_memory(device=None) -> tuple[int, str]:
    """``(bytes, what)``: the memory of a device; a CUDA device's own memory, else this
    machine's RAM (or its container's limit, when lower).

    Example:
        >>> size, what = device_memory("cpu")
        >>> size > 0, what.startswith("the memory of this machine")
        (True, True)
    """
    if device is not None and str(device).startswith("cuda"):
        import torch

        index = torch.device(device).index
        properties = torch.cuda.get_device_properties(torch.cuda.current_device() if index is None else index)
        return properties.total_memory, f"the memory of {device} ({properties.name})"
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    try:
        limit = int(_CGROUP_LIMIT.read_text().strip())
    except (OSError, ValueError):  # no cgroup v2 limit ("max" or no such file)
        limit = total
    return min(total, limit), "the memory of this machine"


def check_fits(
    arch: Arch,
    batch_size: int = 128,
    optimizer: str = "adamw",
    max_memory: str | int | None = None,
    device=None,
    training: bool = True,
) -> MemoryEstimate:
    """Refuse ``arch`` when its training (or inference) memory exceeds the limit: ``max_memory``
    when given, else :func:`device_memory` of ``device``. Returns the estimate otherwise.

    Raises:
        MemoryLimitError: the estimate is over the limit (the message gives both), or a bad
            ``max_memory``.

    Example:
        >>> import budgetnet
        >>> arch = budgetnet.parse("(3,100000000000) gap", input_shape=(1, 8, 8), num_classes=10)
        >>> check_fits(arch, batch_size=16, max_memory="64G")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        budgetnet.errors.MemoryLimitError: (3,100000000000) gap: training at batch 16 needs about 793.1 TiB ...
    """
    estimate = estimate_memory(arch, batch_size, optimizer if training else "none")
    if max_memory is None:
        limit, what = device_memory(device)
    else:
        limit, what = parse_bytes(max_memory), "--max-memory"
    need = estimate.training_bytes if training else estimate.inference_bytes
    if need > limit:
        state = f", with gradients and {optimizer} state" if training else ""
        raise MemoryLimitError(
            f"{arch.notation()}: {'training' if training else 'inference'} at batch {batch_size} needs about "
            f"{format_bytes(need)} (parameters {format_bytes(estimate.param_bytes)}{state}; activations "
            f"{format_bytes(estimate.activation_bytes)} per image), over max_memory={format_bytes(limit)} ({what}); "
            "expected a narrower or shallower network or a smaller batch"
        )
    return estimate
