"""Where a network runs: ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:N"`` resolved to a torch
device, and how many CPU threads it runs with (:func:`set_threads`)."""

from __future__ import annotations

import os
import warnings

import torch

from budgetnet.checks import check_int, is_int
from budgetnet.errors import DeviceError


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` (CUDA when there is a GPU, else the CPU), ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.

    Raises:
        DeviceError: the device is not there or not understood.

    Example:
        >>> resolve_device("cpu")
        device(type='cpu')
    """
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise DeviceError(f"device={device!r} is not understood; expected 'auto', 'cpu', 'cuda' or 'cuda:N'") from None
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError(
                f"device={device!r} is not there: this torch {torch.__version__} sees no CUDA GPU; "
                "expected 'cpu' or 'auto' on this machine"
            )
        count = torch.cuda.device_count()
        if resolved.index is not None and resolved.index >= count:
            raise DeviceError(
                f"device={device!r} is not there: {count} CUDA GPU(s); expected cuda:0 .. cuda:{count - 1}"
            )
    elif resolved.type == "mps":
        if not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
            raise DeviceError(f"device={device!r} is not there; expected 'cpu' or 'auto' on this machine")
    elif resolved.type != "cpu":
        raise DeviceError(f"device={device!r} is not supported; expected 'auto', 'cpu', 'cuda' or 'cuda:N'")
    return resolved


def available_cores() -> int:
    """The CPU cores this process may run on: its affinity mask (``taskset``, a container's
    cpuset), or ``os.cpu_count()`` where the system has no affinity call.

    Example:
        >>> 1 <= available_cores() <= (os.cpu_count() or 1)
        True
    """
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def default_threads(workers: int = 1, cores: int | None = None) -> int:
    """Torch CPU threads for one of ``workers`` processes that share ``cores`` (default
    :func:`available_cores`): ``cores // workers``, at least 1, so that the workers together
    do not run more threads than there are cores. The one rule behind every ``--threads``
    default and every worker's share.

    Raises:
        DeviceError: ``workers`` or ``cores`` is not a whole number >= 1.

    Example:
        >>> default_threads(1, cores=8), default_threads(3, cores=8), default_threads(4, cores=2)
        (8, 2, 1)
    """
    check_int(DeviceError, "workers", workers)
    cores = available_cores() if cores is None else check_int(DeviceError, "cores", cores)
    return max(1, cores // workers)


def set_threads(threads: int | None = None, workers: int = 1) -> int:
    """Set the torch CPU threads of this process (``torch.set_num_threads``); return the count.

    ``threads=None`` takes ``$OMP_NUM_THREADS`` when it is set (torch has read it already),
    else :func:`default_threads` for ``workers``. A count above :func:`available_cores` is
    allowed with a warning that names both numbers: the threads then take turns on the cores.
    The inter-op pool is left alone: budgetnet launches no inter-op work (no
    ``torch.jit.fork``) and torch allows setting it only once per process.

    Raises:
        DeviceError: ``threads`` is not None or a whole number >= 1, or ``workers`` < 1.

    Example:
        >>> before = torch.get_num_threads()
        >>> set_threads(1), torch.get_num_threads()
        (1, 1)
        >>> set_threads(before) == before
        True
    """
    check_int(DeviceError, "workers", workers)
    if threads is None:
        if os.environ.get("OMP_NUM_THREADS"):
            return torch.get_num_threads()
        threads = default_threads(workers)
    else:
        cores = available_cores()
        if not is_int(threads, 1):
            raise DeviceError(
                f"threads={threads!r} is invalid; expected a whole number >= 1 (torch CPU threads), or none for "
                f"the default, {default_threads(workers, cores)} ({cores} cores / {workers} worker(s))"
            )
        if threads > cores:
            warnings.warn(
                f"threads={threads} is more than the {cores} CPU cores this process may use: the threads take "
                f"turns on the cores, which is usually slower than {cores}",
                UserWarning,
                stacklevel=2,
            )
    torch.set_num_threads(threads)
    return threads

