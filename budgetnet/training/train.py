"""Training and evaluation: ``fit`` and ``evaluate``, on the CPU or a GPU.

Recipes are in :mod:`budgetnet.training.recipes`, checkpoints in
:mod:`budgetnet.training.checkpoints`.

:func:`fit` runs on the CPU by default when no GPU is present and on CUDA with bf16
autocast, channels-last tensors, optionally ``torch.compile``, the training images kept on
the GPU when they fit, and non-blocking copies otherwise. Data order, augmentation and
dropout draw from generators seeded by ``seed`` whose states travel in the checkpoint, so
a run resumed from its checkpoint ends where the uninterrupted run ends (bit for bit on
the CPU).

Example:
    >>> import budgetnet
    >>> from budgetnet.training.data import load_data
    >>> data = load_data("digits", image_size=8, limit=200)
    >>> arch = budgetnet.parse("(3,8) 2/2 (3,16) gap", input_shape=data.input_shape, num_classes=10)
    >>> result = fit(arch, data, "quick", epochs=1, progress=False)
    >>> result.epochs_run, 0.0 <= result.val_accuracy <= 1.0
    (1, True)
"""

from __future__ import annotations

import contextlib
import os
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from budgetnet.graph.arch import Arch
from budgetnet.checks import check_int, check_seed
from budgetnet.training.checkpoints import checkpoint_settings, load_checkpoint, save_checkpoint, set_rng
from budgetnet.training.data import Dataset
from budgetnet.training.recipes import Recipe, resolve_recipe
from budgetnet.errors import TrainingError
from budgetnet.cost.memory import check_fits
from budgetnet.pytorch.device import resolve_device

VIEWS = (1, 10)
#: Training images up to this many bytes (and a quarter of the free GPU memory) stay on the GPU.
RESIDENT_BYTES = 4 << 30
#: On CUDA, the loss is checked for NaN / inf every this many steps (each check waits for the GPU).
CUDA_CHECK_EVERY = 50


@dataclass
class FitResult:
    """What :func:`fit` returns.

    ``val_accuracy`` is the last epoch's (0.0 when the run diverged), ``epochs_run`` counts
    every finished epoch (those before a resume included), ``seconds`` is this call's wall
    time and ``images_per_second`` its training throughput.
    """

    model: nn.Module
    val_accuracy: float
    best_val_accuracy: float
    history: list[dict]
    epochs_run: int
    seconds: float
    images_per_second: float
    diverged: bool
    device: str
    stopped_early: bool
    recipe: Recipe | None = None
    resumed_from: int = 0
    message: str = ""

    def to_dict(self) -> dict:
        """JSON-ready summary (the model is left out; its Arch is included when known)."""
        arch = getattr(self.model, "arch", None)
        return {
            "val_accuracy": self.val_accuracy,
            "best_val_accuracy": self.best_val_accuracy,
            "epochs_run": self.epochs_run,
            "seconds": self.seconds,
            "images_per_second": self.images_per_second,
            "diverged": self.diverged,
            "stopped_early": self.stopped_early,
            "resumed_from": self.resumed_from,
            "device": self.device,
            "message": self.message,
            "recipe": None if self.recipe is None else self.recipe.to_dict(),
            "history": self.history,
            "arch": arch.to_dict() if isinstance(arch, Arch) else None,
        }


# -- training ------------------------------------------------------------------------------------
def fit(
    model_or_arch,
    data: Dataset,
    recipe: Recipe | str = "quick",
    *,
    epochs: int | None = None,
    batch_size: int | None = None,
    device: str | torch.device = "auto",
    seed: int = 0,
    callback: Callable[[int, dict], bool | None] | None = None,
    checkpoint: str | os.PathLike | None = None,
    progress: bool = True,
    norm: str | None = None,
    compile: bool = False,
    amp: bool | None = None,
    max_memory: int | str | None = None,
) -> FitResult:
    """Train a model (or an Arch, built for the data's input shape and classes) on ``data``.

    Args:
        model_or_arch: an :class:`~budgetnet.Arch` (built with :func:`budgetnet.build`
            after ``arch.with_input(data.input_shape, data.num_classes)``) or a torch module.
        data: a :class:`~budgetnet.training.data.Dataset`; training uses its augmentation.
        recipe: a :class:`Recipe` or the name of one (``"quick"``, ``"paper"``).
        epochs, batch_size: override the recipe's.
        device: ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:N"``.
        seed: seeds initialisation, data order, augmentation and dropout.
        callback: ``callback(epoch, metrics)`` after every epoch (``epoch`` counts from 1;
            ``metrics`` has ``epoch``, ``train_loss``, ``val_accuracy``, ``val_loss``, ``lr``,
            ``seconds`` and the training ``images_per_second``); returning True stops
            training. Its exceptions propagate.
        checkpoint: a file written after every epoch and resumed from when it exists.
        progress: show a tqdm bar with images/s (only on a terminal).
        norm: passed to :func:`budgetnet.build` for an Arch (``None`` or ``"batch"``).
        compile: wrap the model in ``torch.compile``.
        amp: bf16 autocast; default on for CUDA, off on the CPU.
        max_memory: refuse an Arch whose training memory estimate (see
            :mod:`budgetnet.cost.memory`) exceeds this many bytes (or ``"8G"``); default the
            device's memory. Checked before the model is built.

    A ``batch_size`` given here larger than the training split is refused; a recipe's
    batch size larger than it (128 on a few dozen images) is cut to the split's size with
    a warning, which leaves one step per epoch.

    Returns:
        A :class:`FitResult`. A NaN or infinite loss stops the run with ``diverged=True``
        and ``val_accuracy=0.0`` instead of raising.

    Raises:
        TrainingError: a bad setting, e.g. a batch larger than the training split.
        MemoryLimitError: an Arch that cannot fit in ``max_memory``.
        DeviceError, CheckpointError: see their messages.

    Example:
        >>> import budgetnet
        >>> from budgetnet.training.data import load_data
        >>> data = load_data("digits", image_size=8, limit=100)
        >>> arch = budgetnet.parse("(3,4) gap", input_shape=(1, 8, 8), num_classes=10)
        >>> fit(arch, data, "paper", epochs=2, batch_size=50, progress=False).history[-1]["epoch"]
        2
    """
    started = time.perf_counter()
    recipe = resolve_recipe(recipe, epochs, batch_size)
    if not isinstance(data, Dataset):
        raise TrainingError(
            f"data={type(data).__name__} is invalid; expected a budgetnet.training.data.Dataset (load_data(...))"
        )
    check_seed(TrainingError, seed)
    dev = resolve_device(device)
    batch = _batch_size(recipe, batch_size, len(data.train))
    if isinstance(model_or_arch, Arch):
        arch = model_or_arch.with_input(data.input_shape, data.num_classes)
        check_fits(arch, batch, recipe.optimizer, max_memory, dev)
    cuda = dev.type == "cuda"
    amp = cuda if amp is None else bool(amp)
    fork_devices = [dev.index if dev.index is not None else torch.cuda.current_device()] if cuda else []
    with torch.random.fork_rng(devices=fork_devices), _cudnn_benchmark(cuda):
        torch.manual_seed(seed)
        model = _prepare_model(model_or_arch, data, norm, dev)
        optimizer = _optimizer(model, recipe)
        train = data.train
        steps_per_epoch = len(train) // batch
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: recipe.lr_factor(step / steps_per_epoch))
        order_generator = torch.Generator().manual_seed(seed)
        augment_generator = torch.Generator(device=dev).manual_seed(seed + 1)
        settings = checkpoint_settings(recipe, seed, data)
        history: list[dict] = []
        start_epoch = 0
        if checkpoint is not None and Path(checkpoint).exists():
            state = load_checkpoint(checkpoint, model, settings)
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            set_rng(state["rng"], order_generator, augment_generator, cuda)
            history, start_epoch = list(state["history"]), int(state["epoch"])
        net = torch.compile(model) if compile else model
        memory_format = torch.channels_last if cuda else torch.contiguous_format
        images, labels = _place(train.images, train.labels, dev)
        criterion = nn.CrossEntropyLoss(label_smoothing=recipe.label_smoothing)
        autocast = torch.autocast(dev.type, dtype=torch.bfloat16) if amp else contextlib.nullcontext()
        check_every = CUDA_CHECK_EVERY if cuda else 1
        bar = _progress_bar(progress, (recipe.epochs - start_epoch) * steps_per_epoch * batch, start_epoch, recipe)
        diverged, stopped_early, message = False, False, ""
        train_images = train_seconds = 0.0
        for epoch in range(start_epoch, recipe.epochs):
            epoch_started = time.perf_counter()
            model.train()
            order = torch.randperm(len(train), generator=order_generator)
            loss_sum = torch.zeros((), device=dev)
            for step in range(steps_per_epoch):
                index = order[step * batch : (step + 1) * batch]
                if images.device != dev:  # gathered on the host, copied while the GPU is busy
                    x = images[index].pin_memory().to(dev, non_blocking=True)
                    y = labels[index].pin_memory().to(dev, non_blocking=True)
                else:
                    index = index.to(dev, non_blocking=True)
                    x, y = images[index], labels[index]
                x = data.augment_batch(x, augment_generator).contiguous(memory_format=memory_format)
                with autocast:
                    loss = criterion(net(x).float(), y)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if recipe.clip_norm:
                    nn.utils.clip_grad_norm_(model.parameters(), recipe.clip_norm)
                optimizer.step()
                scheduler.step()
                loss_sum += loss.detach()
                if (step + 1) % check_every == 0 or step + 1 == steps_per_epoch:
                    if not torch.isfinite(loss_sum):
                        diverged = True
                        message = (
                            f"training diverged: the loss became {loss_sum.item()} in epoch {epoch + 1}, "
                            f"by step {step + 1}; try a lower learning rate than {recipe.lr}"
                        )
                        break
                if bar is not None:
                    bar.update(len(index))
            epoch_train_seconds = time.perf_counter() - epoch_started
            train_seconds += epoch_train_seconds
            train_images += (step + 1) * batch
            if diverged:
                break
            scores = _evaluate(model, data, data.val, dev, 1, recipe.batch_size, amp)
            metrics = {
                "epoch": epoch + 1,
                "train_loss": loss_sum.item() / steps_per_epoch,
                "val_accuracy": scores["accuracy"],
                "val_loss": scores["loss"],
                "lr": optimizer.param_groups[0]["lr"],
                "seconds": time.perf_counter() - epoch_started,
                "images_per_second": (step + 1) * batch / epoch_train_seconds,
            }
            history.append(metrics)
            if bar is not None:
                bar.set_description(f"epoch {epoch + 1}/{recipe.epochs}")
                bar.set_postfix(loss=f"{metrics['train_loss']:.3f}", val_acc=f"{metrics['val_accuracy']:.3f}")
            if checkpoint is not None:
                save_checkpoint(checkpoint, model, optimizer, scheduler, order_generator, augment_generator,
                                cuda, settings, history, epoch + 1)  # fmt: skip
            if callback is not None and callback(epoch + 1, dict(metrics)):
                stopped_early = True
                break
        if bar is not None:
            bar.close()
    accuracies = [entry["val_accuracy"] for entry in history]
    return FitResult(
        model=model,
        val_accuracy=0.0 if diverged else (accuracies[-1] if accuracies else 0.0),
        best_val_accuracy=max(accuracies, default=0.0),
        history=history,
        epochs_run=len(history),
        seconds=time.perf_counter() - started,
        images_per_second=train_images / train_seconds if train_seconds else 0.0,
        diverged=diverged,
        device=str(dev),
        stopped_early=stopped_early,
        recipe=recipe,
        resumed_from=start_epoch,
        message=message,
    )


def evaluate(
    model,
    data: Dataset,
    *,
    split: str = "test",
    device: str | torch.device = "auto",
    views: int = 1,
    batch_size: int = 256,
) -> dict:
    """Score a model on one split: ``{"accuracy", "loss", "images", "views", "split"}``.

    ``views=10`` averages the softmax over the paper's 10 views (centre and four corners
    and their flips; 5 views where the dataset has no flips). The model is moved to
    ``device`` and left in the mode it was in.

    Example:
        >>> import budgetnet
        >>> from budgetnet.training.data import load_data
        >>> data = load_data("digits", image_size=8, limit=50)
        >>> model = budgetnet.build(budgetnet.parse("(3,4) gap", input_shape=(1, 8, 8), num_classes=10))
        >>> scores = evaluate(model, data, split="val", device="cpu", views=10)
        >>> scores["images"], scores["views"]
        (287, 5)
    """
    if isinstance(model, FitResult):
        model = model.model
    if not isinstance(model, nn.Module):
        raise TrainingError(f"model={type(model).__name__} is invalid; expected a torch.nn.Module (or a FitResult)")
    if not isinstance(data, Dataset):
        raise TrainingError(
            f"data={type(data).__name__} is invalid; expected a budgetnet.training.data.Dataset (load_data(...))"
        )
    if split not in ("val", "test", "train"):
        raise TrainingError(f"split={split!r} is invalid; expected 'test', 'val' or 'train'")
    if views not in VIEWS:
        raise TrainingError(f"views={views!r} is invalid; expected 1 (centre) or 10 (centre, corners and flips)")
    check_int(TrainingError, "batch_size", batch_size, 1)
    dev = resolve_device(device)
    model.to(dev)
    scores = _evaluate(model, data, data.split(split), dev, views, batch_size, dev.type == "cuda")
    return {**scores, "split": split}


def _evaluate(model, data: Dataset, split, dev: torch.device, views: int, batch_size: int, amp: bool) -> dict:
    was_training = model.training
    model.eval()
    memory_format = torch.channels_last if dev.type == "cuda" else torch.contiguous_format
    autocast = torch.autocast(dev.type, dtype=torch.bfloat16) if amp else contextlib.nullcontext()
    correct, loss_sum, used_views = 0, 0.0, 1
    try:
        with torch.inference_mode(), autocast:
            for start in range(0, len(split), batch_size):
                x = split.images[start : start + batch_size].to(dev, non_blocking=True)
                y = split.labels[start : start + batch_size].to(dev, non_blocking=True)
                crops = data.views(x, views)
                used_views = len(crops)
                probabilities = sum(
                    F.softmax(model(crop.contiguous(memory_format=memory_format)).float(), dim=1) for crop in crops
                ) / len(crops)
                loss_sum += F.nll_loss(probabilities.clamp_min(1e-12).log(), y, reduction="sum").item()
                correct += int((probabilities.argmax(dim=1) == y).sum())
    finally:
        model.train(was_training)
    count = len(split)
    return {
        "accuracy": correct / count if count else 0.0,
        "loss": loss_sum / count if count else 0.0,
        "images": count,
        "views": used_views,
    }


# -- helpers -------------------------------------------------------------------------------------
def _batch_size(recipe: Recipe, batch_size: int | None, images: int) -> int:
    """The batch size to train with: an explicit ``batch_size`` over the split is an error,
    the recipe's is cut to the split with a warning."""
    if recipe.batch_size <= images:
        return recipe.batch_size
    if batch_size is not None:
        raise TrainingError(
            f"batch_size={batch_size!r} is larger than the training split ({images} images), so every epoch "
            f"would be one step on the whole split; expected at most {images}, or more training images"
        )
    warnings.warn(
        f"recipe {recipe.name!r} batch_size={recipe.batch_size} is larger than the training split ({images} images): "
        f"training on batches of {images}, one step per epoch",
        UserWarning,
        stacklevel=3,
    )
    return images


def _prepare_model(model_or_arch, data: Dataset, norm, dev: torch.device) -> nn.Module:
    from budgetnet.pytorch.builder import build

    if isinstance(model_or_arch, Arch):
        model = build(model_or_arch.with_input(data.input_shape, data.num_classes), norm=norm)
    elif isinstance(model_or_arch, nn.Module):
        model = model_or_arch
        _check_module(model, data)
    else:
        raise TrainingError(
            f"model_or_arch={type(model_or_arch).__name__} is invalid; expected a budgetnet.Arch or a torch.nn.Module"
        )
    model.to(dev)
    if dev.type == "cuda":
        model.to(memory_format=torch.channels_last)
    return model


def _check_module(model: nn.Module, data: Dataset) -> None:
    """A forward pass on two images: the module must take the data's input and give its classes."""
    shape = "x".join(map(str, data.input_shape))
    device = next(model.parameters(), torch.zeros(0)).device
    x = data.views(data.train.images[:2], 1)[0].to(device)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = model(x)
    except RuntimeError as error:
        raise TrainingError(
            f"model does not accept the data's {shape} images ({str(error).splitlines()[0]}); expected a model "
            f"for input {shape} with {data.num_classes} outputs"
        ) from None
    finally:
        model.train(was_training)
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != (len(x), data.num_classes):
        raise TrainingError(
            f"model output shape {tuple(getattr(out, 'shape', ()))} is invalid; expected (batch, {data.num_classes}) "
            f"logits for the data's {data.num_classes} classes"
        )


def _optimizer(model: nn.Module, recipe: Recipe) -> torch.optim.Optimizer:
    if recipe.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=recipe.lr, momentum=recipe.momentum,
                               weight_decay=recipe.weight_decay)  # fmt: skip
    return torch.optim.AdamW(model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)


def _place(images: torch.Tensor, labels: torch.Tensor, dev: torch.device):
    """The training tensors on the GPU when they fit; otherwise they stay on the host and each
    batch goes through pinned memory with a non-blocking copy."""
    if dev.type != "cuda":
        return images, labels
    free, _ = torch.cuda.mem_get_info(dev)
    if images.nbytes <= min(RESIDENT_BYTES, free // 4):
        return images.to(dev), labels.to(dev)
    return images, labels


@contextlib.contextmanager
def _cudnn_benchmark(enabled: bool):
    previous = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = previous or enabled
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark = previous


def _progress_bar(progress: bool, total: int, start_epoch: int, recipe: Recipe):
    if not progress:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="img", unit_scale=True, disable=None, desc=f"epoch {start_epoch + 1}/{recipe.epochs}")
