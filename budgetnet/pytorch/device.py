"""Where a network runs: ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:N"`` resolved to a torch device."""

from __future__ import annotations

import torch

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
