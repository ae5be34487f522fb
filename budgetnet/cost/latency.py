"""Measured time cost: timing a network on a device, and per-layer latency tables.

* :func:`measure` times a forward pass (``mode="forward"``, inference) or a training step
  (``mode="train"``: forward, cross-entropy, backward and an SGD step) after ``warmup``
  untimed runs, synchronising the device around each of ``repeats`` timed runs, and reports
  the median; its :attr:`Measurement.spread` (:class:`budgetnet.cost.noise.Spread`) says how
  far apart the runs lie and whether they are too noisy to trust.
* :class:`LatencyTable` times every distinct layer configuration in isolation (a conv with
  its ReLU by in/out channels, kernel, stride, padding and input size; a pool; the head:
  SPP or flatten and the fc layers) and predicts a network's time as the sum of its
  layers'. Tables are keyed by device name, dtype, torch version, thread count, batch size
  and mode, and cached as JSON in ``$BUDGETNET_CACHE`` (default
  ``$XDG_CACHE_HOME/budgetnet``, i.e. ``~/.cache/budgetnet``), so each layer is timed once
  per machine.
* :class:`~budgetnet.cost.budgets.LatencyBudget` (in :mod:`budgetnet.cost.budgets`, beside
  :class:`budgetnet.Budget`) is a ceiling in milliseconds per image that asks this module
  for its measurements; ``Budget.parse("2.5ms")`` (or ``"2.5ms@cuda"``) returns one.

Example:
    >>> import budgetnet
    >>> arch = budgetnet.parse("(3,8) 2/2 (3,16) gap", input_shape=(1, 16, 16), num_classes=10)
    >>> result = measure(arch, "cpu", batch_size=4, repeats=3, warmup=1)
    >>> result.batch_size, result.mode, len(result.times_ms), result.ms_per_image > 0
    (4, 'forward', 3, True)
"""

from __future__ import annotations

import copy
import json
import os
import platform
import re
import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from budgetnet.graph.arch import BLOCKS, FC, SPP, Arch, Conv, Flatten, Pool
from budgetnet.checks import MAX_BYTES, check_int, check_shape, is_int
from budgetnet.graph.printing import format_layer
from budgetnet.pytorch.modules import layer_specs
from budgetnet.errors import LatencyError
from budgetnet.files import write_text
from budgetnet.cost.memory import check_fits
from budgetnet.cost.noise import Spread
from budgetnet.pytorch.device import resolve_device

MODES = ("forward", "train")
#: Most timed (``repeats``) or untimed (``warmup``) runs one measurement may ask for.
MAX_RUNS = 100_000
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}
TABLE_FORMAT = "budgetnet.latency"
TABLE_VERSION = 1


@dataclass(frozen=True)
class Measurement:
    """One timing: ``median_ms`` per batch of ``batch_size`` images, over ``repeats`` runs."""

    median_ms: float
    ms_per_image: float
    batch_size: int
    device: str
    mode: str
    repeats: int
    times_ms: tuple[float, ...]
    input_shape: tuple[int, int, int]
    dtype: str

    @property
    def images_per_second(self) -> float:
        return 1000.0 / self.ms_per_image

    @property
    def spread(self) -> Spread:
        """How far apart the timed runs lie, per image (:class:`budgetnet.cost.noise.Spread`)."""
        return Spread.of(self.times_ms, self.batch_size, self.ms_per_image)

    def to_dict(self) -> dict:
        data = asdict(self)
        data["times_ms"] = list(self.times_ms)
        data["input_shape"] = list(self.input_shape)
        data["images_per_second"] = self.images_per_second
        return data


def measure(
    arch_or_module,
    device: str | torch.device = "cpu",
    batch_size: int = 1,
    mode: str = "forward",
    *,
    repeats: int = 10,
    warmup: int = 3,
    input_shape=None,
    dtype: str | None = None,
    norm: str | None = None,
) -> Measurement:
    """Time a network on ``device``: median over ``repeats`` runs after ``warmup`` runs.

    Args:
        arch_or_module: an :class:`~budgetnet.Arch` (built with :func:`budgetnet.build`) or
            a torch module (a copy is timed in ``"train"`` mode, so its weights stay).
        device: ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"auto"``.
        batch_size: images per run.
        mode: ``"forward"`` (inference, no autograd) or ``"train"`` (forward, loss,
            backward, SGD step).
        repeats, warmup: timed and untimed runs.
        input_shape: ``(C, H, W)``; defaults to the Arch's (required for a plain module).
        dtype: ``"float32"`` or ``"bfloat16"`` (autocast); default bf16 on CUDA, fp32 on the CPU.
        norm: passed to :func:`budgetnet.build` for an Arch.

    Raises:
        LatencyError: a setting out of range; MemoryLimitError: an Arch whose memory estimate
        (see :mod:`budgetnet.cost.memory`) exceeds the device's memory, refused before it is built.

    Example:
        >>> import budgetnet
        >>> arch = budgetnet.parse("(3,8) gap", input_shape=(1, 8, 8), num_classes=2)
        >>> measure(arch, batch_size=2, mode="train", repeats=2, warmup=1).mode
        'train'
    """
    dev, batch_size, mode, dtype = check_settings(device, batch_size, mode, repeats, warmup, dtype)
    if isinstance(arch_or_module, Arch):
        from budgetnet.pytorch.builder import build

        check_fits(arch_or_module, batch_size, "sgd", None, dev, training=mode == "train")
        model = build(arch_or_module, norm=norm)
        input_shape = arch_or_module.input_shape if input_shape is None else input_shape
    elif isinstance(arch_or_module, nn.Module):
        model = copy.deepcopy(arch_or_module) if mode == "train" else arch_or_module
        input_shape = (
            input_shape if input_shape is not None else getattr(getattr(model, "arch", None), "input_shape", None)
        )
        if input_shape is None:
            raise LatencyError(
                "input_shape=None is invalid for a torch module; expected (C, H, W) such as (3, 224, 224)"
            )
    else:
        raise LatencyError(
            f"arch_or_module={type(arch_or_module).__name__} is invalid; expected a budgetnet.Arch or a torch.nn.Module"
        )
    input_shape = check_shape(LatencyError, input_shape)
    times = _time_module(model, (batch_size, *input_shape), dev, mode, repeats, warmup, dtype, loss=True)
    median = statistics.median(times)
    return Measurement(median, median / batch_size, batch_size, str(dev), mode, repeats, tuple(times),
                       input_shape, _dtype_name(dtype))  # fmt: skip


def _time_module(model, shape, dev, mode, repeats, warmup, dtype, loss: bool, input_grad: bool = False) -> list[float]:
    """Times of ``repeats`` runs of ``model`` on a random batch of ``shape``, in milliseconds
    (the model is left in the train / eval mode it came in)."""
    was_training = model.training
    model = model.to(dev)
    cuda = dev.type == "cuda"
    memory_format = torch.channels_last if cuda and len(shape) == 4 else torch.contiguous_format
    if cuda:
        model = model.to(memory_format=memory_format)
    x = torch.randn(shape, device=dev).contiguous(memory_format=memory_format)
    autocast = torch.autocast(dev.type, dtype=dtype, enabled=dtype != torch.float32)
    if mode == "forward":
        model.eval()

        def run():
            with torch.inference_mode(), autocast:
                model(x)

    else:
        model.train()
        parameters = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.SGD(parameters, lr=1e-6, momentum=0.9) if parameters else None
        source = x.requires_grad_(input_grad)

        def run():
            with autocast:
                out = model(source)
                value = (
                    F.cross_entropy(out.float(), torch.zeros(len(out), dtype=torch.long, device=dev))
                    if loss
                    else out.float().sum()
                )
            if optimizer is not None:
                optimizer.zero_grad(set_to_none=True)
            if value.requires_grad:
                value.backward()
            if optimizer is not None:
                optimizer.step()

    try:
        for _ in range(warmup):
            run()
        _synchronize(dev)
        times = []
        for _ in range(repeats):
            _synchronize(dev)
            started = time.perf_counter()
            run()
            _synchronize(dev)
            times.append((time.perf_counter() - started) * 1000.0)
    except RuntimeError as error:
        raise LatencyError(
            f"the network cannot run on a {'x'.join(map(str, shape))} batch ({str(error).splitlines()[0]}); expected "
            "an input_shape the network accepts and enough memory for batch_size"
        ) from None
    finally:
        model.train(was_training)
    return times


def _synchronize(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def check_settings(device, batch_size, mode, repeats, warmup, dtype):
    dev = resolve_device(device)
    for name, value, minimum, maximum in (("batch_size", batch_size, 1, MAX_BYTES), ("repeats", repeats, 1, MAX_RUNS),
                                          ("warmup", warmup, 0, MAX_RUNS)):  # fmt: skip
        if not is_int(value, minimum):
            raise LatencyError(f"{name}={value!r} is invalid; expected an integer >= {minimum}")
        check_int(LatencyError, name, value, minimum, maximum=maximum)  # 2**70 runs never end; C overflows
    if mode not in MODES:
        raise LatencyError(f"mode={mode!r} is invalid; expected one of {MODES}")
    if dtype is None:
        dtype = "bfloat16" if dev.type == "cuda" else "float32"
    if isinstance(dtype, torch.dtype):
        dtype = _dtype_name(dtype)
    if dtype not in DTYPES:
        raise LatencyError(f"dtype={dtype!r} is invalid; expected one of {tuple(DTYPES)}")
    return dev, batch_size, mode, DTYPES[dtype]


def _dtype_name(dtype: torch.dtype) -> str:
    return next((name for name, value in DTYPES.items() if value == dtype), str(dtype))


# -- per-layer latency tables ------------------------------------------------------------------
def device_name(device: str | torch.device = "cpu") -> str:
    """A readable name of the device: the GPU's name, or the CPU model and thread count.

    Example:
        >>> "threads" in device_name("cpu")
        True
    """
    dev = resolve_device(device)
    if dev.type == "cuda":
        return torch.cuda.get_device_name(dev)
    threads = torch.get_num_threads()
    return f"{cpu_model()} ({threads} thread{'s' if threads != 1 else ''})"


def cpu_model() -> str:
    """The CPU's model name from ``/proc/cpuinfo``, else what :mod:`platform` knows.

    Example:
        >>> bool(cpu_model())
        True
    """
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def default_cache_dir() -> Path:
    """``$BUDGETNET_CACHE``, else ``$XDG_CACHE_HOME/budgetnet``, else ``~/.cache/budgetnet``."""
    if os.environ.get("BUDGETNET_CACHE"):
        return Path(os.environ["BUDGETNET_CACHE"]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "budgetnet"


@dataclass(frozen=True)
class LayerTime:
    """One row of a prediction: the layer, its table key and its time per batch."""

    name: str
    key: str
    ms: float


@dataclass(frozen=True)
class Prediction:
    """A network's time predicted by a :class:`LatencyTable` (per batch and per image)."""

    total_ms: float
    ms_per_image: float
    rows: tuple[LayerTime, ...]

    def to_dict(self) -> dict:
        return {
            "total_ms": self.total_ms,
            "ms_per_image": self.ms_per_image,
            "layers": [asdict(row) for row in self.rows],
        }


class LatencyTable:
    """Per-layer times on one device, predicting a network's time from its layers.

    Args:
        device: where to time (``"cpu"``, ``"cuda"`` ...).
        batch_size, mode, dtype: as in :func:`measure`.
        cache_dir: where the JSON table lives (default :func:`default_cache_dir`); ``None``
            there means the default; pass ``False`` to keep the table in memory only.
        repeats, warmup: per layer configuration.

    Example:
        >>> import budgetnet
        >>> arch = budgetnet.parse("(3,8) 2/2 (3,8) gap", input_shape=(1, 16, 16), num_classes=10)
        >>> table = LatencyTable("cpu", batch_size=2, cache_dir=False, repeats=2, warmup=1)
        >>> prediction = table.predict(arch)
        >>> [row.name for row in prediction.rows], len(table)
        (['conv1', 'pool1', 'conv2', 'head'], 4)
    """

    def __init__(
        self,
        device: str | torch.device = "cpu",
        *,
        batch_size: int = 1,
        mode: str = "forward",
        dtype: str | None = None,
        cache_dir: str | os.PathLike | None | bool = None,
        repeats: int = 10,
        warmup: int = 3,
    ):
        self.device, self.batch_size, self.mode, dtype = check_settings(
            device, batch_size, mode, repeats, warmup, dtype
        )
        self.dtype = _dtype_name(dtype)
        self.repeats, self.warmup = repeats, warmup
        self.key = {
            "device": device_name(self.device),
            "dtype": self.dtype,
            "torch": torch.__version__,
            "batch_size": batch_size,
            "mode": mode,
        }
        self.entries: dict[str, float] = {}
        self.path = (
            None
            if cache_dir is False
            else Path(default_cache_dir() if cache_dir in (None, True) else cache_dir) / self.file_name()
        )
        if self.path is not None and self.path.exists():
            self._read()

    def file_name(self) -> str:
        """The cache file's name, made of the table's key."""
        text = "-".join(str(value) for value in self.key.values())
        return "latency-" + re.sub(r"[^A-Za-z0-9.]+", "_", text).strip("_") + ".json"

    def __len__(self) -> int:
        return len(self.entries)

    def __repr__(self) -> str:
        return f"LatencyTable({self.key['device']!r}, {self.mode}, batch {self.batch_size}, {len(self)} entries)"

    def _read(self) -> None:
        try:
            data = json.loads(self.path.read_text())
            valid = data.get("format") == TABLE_FORMAT and data.get("key") == self.key
            entries = {str(key): float(value) for key, value in data.get("entries", {}).items()}
        except (OSError, ValueError, AttributeError, TypeError) as error:
            raise LatencyError(
                f"latency table {str(self.path)!r} cannot be read ({error}); expected a JSON table written by "
                "budgetnet (delete it to time the layers again)"
            ) from None
        if not valid:
            raise LatencyError(
                f"latency table {str(self.path)!r} has format/key {data.get('format')!r}/{data.get('key')!r}; "
                f"expected {TABLE_FORMAT!r}/{self.key!r} (delete it to time the layers again)"
            )
        self.entries.update(entries)

    def save(self) -> Path | None:
        """Write the table to its cache file (whole or not at all); returns the path.

        Raises:
            LatencyError: the cache directory cannot be made.
            FileWriteError: the file cannot be written (disk full, permission denied, ...).
        """
        if self.path is None:
            return None
        data = {"format": TABLE_FORMAT, "version": TABLE_VERSION, "key": self.key, "entries": self.entries}
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise LatencyError(
                f"latency table {str(self.path)!r} cannot be written ({error}); expected a writable cache_dir"
            ) from None
        return write_text(self.path, json.dumps(data, indent=1, sort_keys=True), what="latency table")

    def layer_keys(self, arch: Arch, norm: str | None = None) -> list[tuple[str, str]]:
        """``(name, key)`` per timed piece of ``arch``: every conv and pool, then the head."""
        pieces = []
        for position, info in enumerate(arch.features):
            shape = "x".join(map(str, info.in_shape))
            layer = info.layer
            first = " input" if position == 0 and self.mode == "train" else ""
            if isinstance(layer, Conv):
                key = (f"conv in={shape} out={layer.out_channels} k={layer.kernel_size} s={layer.stride} "
                       f"p={layer.padding}{' bn' if norm else ''}{first}")  # fmt: skip
                if (layer.groups, layer.activation, layer.norm) != (1, "relu", None):
                    key += f" {format_layer(layer)}"
            elif isinstance(layer, BLOCKS):
                key = f"{layer.kind} in={shape} {format_layer(layer)}{' bn' if norm else ''}{first}"
            elif isinstance(layer, Pool):
                key = f"{layer.mode}pool in={shape} k={layer.kernel_size} s={layer.stride} p={layer.padding}{first}"
                if layer.ceil_mode or not layer.count_include_pad:
                    key += f" {format_layer(layer)}"
            else:
                key = f"{layer.kind} in={shape} {format_layer(layer)}{first}"
            pieces.append((info.name, key))
        head = " ".join(_head_text(layer) for layer in arch.head)
        shape = "x".join(map(str, arch.feature_shape))
        classes = f"classes={arch.num_classes}" if arch.classifier else "nofc"
        pieces.append(("head", f"head in={shape} {head} {classes}"))
        return pieces

    def add(self, arch: Arch, norm: str | None = None) -> int:
        """Time the layer configurations of ``arch`` not yet in the table; returns how many were new."""
        pieces = self.layer_keys(arch, norm)
        missing = {key for _, key in pieces if key not in self.entries}
        if not missing:
            return 0
        from budgetnet.pytorch.builder import build

        check_fits(arch, self.batch_size, "sgd", None, self.device, training=self.mode == "train")
        model = build(arch, norm=norm)
        modules = _feature_modules(model, [len(specs) for specs in layer_specs(arch, norm)])
        shapes = [info.in_shape for info in arch.features] + [arch.feature_shape]
        head = nn.Sequential(model.pool, model.classifier)
        new = 0
        for position, ((name, key), module) in enumerate(zip(pieces, modules + [head])):
            if key not in missing:
                continue
            times = _time_module(module, (self.batch_size, *shapes[position]), self.device, self.mode, self.repeats,
                                 self.warmup, DTYPES[self.dtype], loss=name == "head", input_grad=position > 0)  # fmt: skip
            self.entries[key] = statistics.median(times)
            missing.discard(key)
            new += 1
        self.save()
        return new

    def predict(self, arch: Arch, norm: str | None = None, *, measure_missing: bool = True) -> Prediction:
        """The predicted time of ``arch``: the sum of its layers' table entries.

        Missing layer configurations are timed first (and cached) unless
        ``measure_missing=False``, which raises :class:`LatencyError` instead.
        """
        pieces = self.layer_keys(arch, norm)
        missing = [key for _, key in pieces if key not in self.entries]
        if missing and not measure_missing:
            raise LatencyError(f"latency table has no entry {missing[0]!r}; expected measure_missing=True to time it")
        if missing:
            self.add(arch, norm)
        rows = tuple(LayerTime(name, key, self.entries[key]) for name, key in pieces)
        total = sum(row.ms for row in rows)
        return Prediction(total, total / self.batch_size, rows)

    def compare(self, arch: Arch, norm: str | None = None, *, repeats: int | None = None) -> dict:
        """Predicted against measured time of ``arch``: ``{"predicted_ms", "measured_ms", "error"}``.

        ``error`` is ``(predicted - measured) / measured`` per batch.
        """
        prediction = self.predict(arch, norm)
        measured = measure(arch, self.device, self.batch_size, self.mode, repeats=repeats or self.repeats,
                           warmup=self.warmup, dtype=self.dtype, norm=norm)  # fmt: skip
        return {
            "predicted_ms": prediction.total_ms,
            "measured_ms": measured.median_ms,
            "error": (prediction.total_ms - measured.median_ms) / measured.median_ms,
            "prediction": prediction,
            "measurement": measured,
        }


def _head_text(layer) -> str:
    if isinstance(layer, SPP):
        return f"{layer.mode}spp({','.join(map(str, layer.levels))})"
    if isinstance(layer, FC):
        return f"fc({layer.out_features},{layer.dropout:g})" + ("" if layer.activation == "relu" else f"@{layer.activation}")
    return "flat" if isinstance(layer, Flatten) else type(layer).__name__


def _feature_modules(model, counts: list[int]) -> list[nn.Module]:
    """``model.features`` cut into one module per top-level feature layer (a conv with its
    norm and activation, a pool, a norm, a block ...); ``counts`` are the modules of each."""
    modules, groups, start = list(model.features), [], 0
    for count in counts:
        group = modules[start : start + count]
        groups.append(group[0] if len(group) == 1 else nn.Sequential(*group))
        start += count
    return groups
