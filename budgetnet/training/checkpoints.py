"""Checkpoints of ``fit(checkpoint=...)``: model, optimiser, scheduler and random states after an epoch.

A checkpoint is written whole or not at all (:func:`budgetnet.files.save_torch`: a temporary
file, then a rename; a full disk is a :class:`~budgetnet.errors.FileWriteError` and the previous
checkpoint stays) and resumed only by a run
of the same architecture (its fingerprint, or the state-dict shapes of a plain module) and
the same :func:`checkpoint_settings` (recipe, seed, data).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from budgetnet.errors import CheckpointError
from budgetnet.files import save_torch
from budgetnet.graph.arch import Arch
from budgetnet.training.data import Dataset
from budgetnet.training.recipes import Recipe

CHECKPOINT_FORMAT = "budgetnet.checkpoint"
CHECKPOINT_VERSION = 1


def checkpoint_settings(recipe: Recipe, seed: int, data: Dataset) -> dict:
    """What must match for a checkpoint to be resumed."""
    return {
        "recipe": recipe.to_dict(),
        "seed": seed,
        "data": {"name": data.name, "input_shape": list(data.input_shape), "num_classes": data.num_classes,
                 "train": len(data.train), "val": len(data.val)},
    }  # fmt: skip


def _identity(model: nn.Module) -> dict:
    arch = getattr(model, "arch", None)
    return {
        "arch": arch.to_json() if isinstance(arch, Arch) else "",
        "fingerprint": arch.fingerprint() if isinstance(arch, Arch) else "",
        "notation": arch.notation() if isinstance(arch, Arch) else type(model).__name__,
        "shapes": {name: list(value.shape) for name, value in model.state_dict().items()},
    }


def save_checkpoint(path, model, optimizer, scheduler, order_generator, augment_generator, cuda, settings,
                    history, epoch) -> None:  # fmt: skip
    """Write the training state after ``epoch`` epochs to ``path`` (whole or not at all).

    Raises:
        CheckpointError: the directory cannot be made.
        FileWriteError: the file cannot be written (disk full, permission denied, ...).
    """
    state = {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "identity": _identity(model),
        "settings": settings,
        "epoch": epoch,
        "history": history,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "rng": {
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state() if cuda else torch.zeros(0, dtype=torch.uint8),
            "order": order_generator.get_state(),
            "augment": augment_generator.get_state(),
        },
    }
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise CheckpointError(
            f"checkpoint {str(path)!r} cannot be written: its directory cannot be made ({error}); expected a "
            "writable path"
        ) from None
    save_torch(path, state, what="checkpoint")


def load_checkpoint(path, model: nn.Module, settings: dict) -> dict:
    """The state in ``path``, after checking it was written for ``model`` with the same ``settings``."""
    path = Path(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for a file that is not a checkpoint
        raise CheckpointError(
            f"checkpoint {str(path)!r} cannot be read ({type(error).__name__}: {str(error).splitlines()[0][:200]}); "
            "expected a file written by budgetnet fit(checkpoint=...)"
        ) from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"checkpoint {str(path)!r} is not a budgetnet checkpoint; expected one written by fit()")
    if state.get("version") != CHECKPOINT_VERSION:
        raise CheckpointError(
            f"checkpoint {str(path)!r} has version {state.get('version')!r}; expected {CHECKPOINT_VERSION}"
        )
    saved, current = state["identity"], _identity(model)
    same = (
        saved["fingerprint"] == current["fingerprint"]
        if current["fingerprint"]
        else saved["shapes"] == current["shapes"]
    )
    if not same:
        raise CheckpointError(
            f"checkpoint {str(path)!r} belongs to another architecture: it holds {saved['notation']!r}, this run "
            f"trains {current['notation']!r}; expected a checkpoint of the same architecture (or another path)"
        )
    for key, value in settings.items():
        if state["settings"].get(key) != value:
            raise CheckpointError(
                f"checkpoint {str(path)!r} was written with {key}={state['settings'].get(key)!r}, this run has "
                f"{key}={value!r}; expected the same {key} to resume (or another path)"
            )
    return state


def set_rng(rng: dict, order_generator, augment_generator, cuda: bool) -> None:
    """Restore the global and the two generators' random states saved by :func:`save_checkpoint`."""
    torch.set_rng_state(rng["torch"])
    if cuda and rng["cuda"].numel():
        torch.cuda.set_rng_state(rng["cuda"])
    order_generator.set_state(rng["order"])
    augment_generator.set_state(rng["augment"])
