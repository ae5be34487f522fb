"""Training and evaluation: recipes, ``fit``, ``evaluate``, checkpoints, the device.

Two recipes (:func:`get_recipe`):

* ``"paper"``: Sec. 5 of the paper: SGD with momentum 0.9, weight decay 5e-4, batch 128,
  learning rate 0.01 divided by 10 after 10/75 and 70/75 of the epochs (the paper's 10 and
  70 of 75), Gaussian initialisation (done by :func:`budgetnet.build`) and 50 % dropout on
  the first two fc layers (part of the Arch). Default 75 epochs; any other number scales
  the milestones.
* ``"quick"``: a short modern recipe for proxies: AdamW (lr 5e-3, weight decay 0.05), batch
  32, a cosine schedule with a short linear warm-up (5 % of the run, at most half an epoch),
  gradient norm clipped at 1.0 and label smoothing 0.1. Default 10 epochs. Plain (no BN)
  nets train stably with it on the bundled digits (``docs/training.md``).

:func:`fit` runs on the CPU by default when no GPU is present and on CUDA with bf16
autocast, channels-last tensors, optionally ``torch.compile``, the training images kept on
the GPU when they fit, and non-blocking copies otherwise. Data order, augmentation and
dropout draw from generators seeded by ``seed`` whose states travel in the checkpoint, so
a run resumed from its checkpoint ends where the uninterrupted run ends (bit for bit on
the CPU).

Example:
    >>> import budgetnet
    >>> from budgetnet.data import load_data
    >>> data = load_data("digits", image_size=8, limit=200)
    >>> arch = budgetnet.parse("(3,8) 2/2 (3,16) gap", input_shape=data.input_shape, num_classes=10)
    >>> result = fit(arch, data, "quick", epochs=1, progress=False)
    >>> result.epochs_run, 0.0 <= result.val_accuracy <= 1.0
    (1, True)
"""

from __future__ import annotations

import contextlib
import math
import os
import time
import warnings
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from budgetnet.arch import Arch
from budgetnet.checks import check_int
from budgetnet.data import Dataset
from budgetnet.errors import CheckpointError, DeviceError, TrainingError
from budgetnet.memory import check_fits

RECIPES = ("quick", "paper")
OPTIMIZERS = ("sgd", "adamw")
SCHEDULES = ("step", "cosine", "constant")
VIEWS = (1, 10)
CHECKPOINT_FORMAT = "budgetnet.checkpoint"
CHECKPOINT_VERSION = 1
#: Training images up to this many bytes (and a quarter of the free GPU memory) stay on the GPU.
RESIDENT_BYTES = 4 << 30
#: On CUDA, the loss is checked for NaN / inf every this many steps (each check waits for the GPU).
CUDA_CHECK_EVERY = 50


@dataclass(frozen=True)
class Recipe:
    """How to train: optimiser, learning-rate schedule, batch size, epochs.

    ``milestones`` are fractions of ``epochs`` at which a ``"step"`` schedule multiplies
    the learning rate by ``gamma``; ``warmup_epochs`` (shorter than the run) ramps it up
    linearly first. ``clip_norm`` > 0 clips the gradients' global L2 norm before each step.

    Example:
        >>> recipe = get_recipe("paper", epochs=15)
        >>> recipe.lr, recipe.milestone_epochs()
        (0.01, (2.0, 14.0))
    """

    name: str
    epochs: int
    batch_size: int = 128
    optimizer: str = "sgd"
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 5e-4
    schedule: str = "step"
    milestones: tuple[float, ...] = ()
    gamma: float = 0.1
    warmup_epochs: float = 0.0
    label_smoothing: float = 0.0
    clip_norm: float = 0.0

    def __post_init__(self):
        object.__setattr__(self, "milestones", tuple(self.milestones))
        check_int(TrainingError, "recipe epochs", self.epochs, 1)
        check_int(TrainingError, "recipe batch_size", self.batch_size, 1)
        _check_choice("recipe optimizer", self.optimizer, OPTIMIZERS)
        _check_choice("recipe schedule", self.schedule, SCHEDULES)
        _check_number("recipe lr", self.lr, 0, math.inf, "a number > 0", low_open=True)
        _check_number("recipe momentum", self.momentum, 0, 1, "a number in [0, 1)", high_open=True)
        _check_number("recipe weight_decay", self.weight_decay, 0, math.inf, "a number >= 0")
        _check_number("recipe gamma", self.gamma, 0, 1, "a number in (0, 1]", low_open=True)
        _check_number("recipe warmup_epochs", self.warmup_epochs, 0, self.epochs,
                      f"a number >= 0 and shorter than the run's {self.epochs} epochs", high_open=True)  # fmt: skip
        _check_number("recipe label_smoothing", self.label_smoothing, 0, 1, "a number in [0, 1)", high_open=True)
        _check_number("recipe clip_norm", self.clip_norm, 0, math.inf, "a number >= 0 (0: no clipping)")
        for milestone in self.milestones:
            _check_number("recipe milestones", milestone, 0, 1, "fractions of the epochs in (0, 1)", True, True)

    def milestone_epochs(self) -> tuple[float, ...]:
        """The step schedule's milestones in epochs."""
        return tuple(round(fraction * self.epochs, 6) for fraction in self.milestones)

    def lr_factor(self, epoch: float) -> float:
        """The learning rate at fractional ``epoch``, relative to ``lr``.

        Example:
            >>> recipe = get_recipe("paper")
            >>> [recipe.lr_factor(epoch) for epoch in (0, 9.9, 10, 69.9, 70)]
            [1.0, 1.0, 0.1, 0.1, 0.010000000000000002]
        """
        if self.warmup_epochs and epoch < self.warmup_epochs:
            return (epoch + 1e-3) / self.warmup_epochs
        if self.schedule == "step":
            return self.gamma ** sum(epoch >= milestone for milestone in self.milestone_epochs())
        if self.schedule == "cosine":
            span = max(self.epochs - self.warmup_epochs, 1e-9)
            return 0.5 * (1 + math.cos(math.pi * min(1.0, (epoch - self.warmup_epochs) / span)))
        return 1.0

    def to_dict(self) -> dict:
        data = asdict(self)
        data["milestones"] = list(self.milestones)
        return data


def get_recipe(name: str = "quick", epochs: int | None = None, **overrides) -> Recipe:
    """A named recipe (``"quick"`` or ``"paper"``), optionally with other epochs or fields.

    Example:
        >>> get_recipe("quick", epochs=3, batch_size=64).batch_size
        64
    """
    if name == "paper":
        recipe = Recipe("paper", 75, batch_size=128, optimizer="sgd", lr=0.01, momentum=0.9, weight_decay=5e-4,
                        schedule="step", milestones=(10 / 75, 70 / 75), gamma=0.1)  # fmt: skip
    elif name == "quick":
        recipe = Recipe("quick", 10, batch_size=32, optimizer="adamw", lr=5e-3, momentum=0.9, weight_decay=0.05,
                        schedule="cosine", warmup_epochs=0.0, label_smoothing=0.1, clip_norm=1.0)  # fmt: skip
    else:
        raise TrainingError(f"recipe={name!r} is invalid; expected one of {RECIPES}")
    unknown = set(overrides) - {item.name for item in fields(Recipe)}
    if unknown:
        raise TrainingError(
            f"recipe field {sorted(unknown)[0]!r} is unknown; expected one of {[f.name for f in fields(Recipe)]}"
        )
    if epochs is not None:
        overrides["epochs"] = epochs
    if name == "quick" and "warmup_epochs" not in overrides:
        overrides["warmup_epochs"] = min(0.5, 0.05 * overrides.get("epochs", recipe.epochs))
    return replace(recipe, **overrides)


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


# -- device ------------------------------------------------------------------------------------
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
        data: a :class:`~budgetnet.data.Dataset`; training uses its augmentation.
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
            :mod:`budgetnet.memory`) exceeds this many bytes (or ``"8G"``); default the
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
        >>> from budgetnet.data import load_data
        >>> data = load_data("digits", image_size=8, limit=100)
        >>> arch = budgetnet.parse("(3,4) gap", input_shape=(1, 8, 8), num_classes=10)
        >>> fit(arch, data, "paper", epochs=2, batch_size=50, progress=False).history[-1]["epoch"]
        2
    """
    started = time.perf_counter()
    recipe = _resolve_recipe(recipe, epochs, batch_size)
    if not isinstance(data, Dataset):
        raise TrainingError(
            f"data={type(data).__name__} is invalid; expected a budgetnet.data.Dataset (load_data(...))"
        )
    check_int(TrainingError, "seed", seed, 0)
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
        settings = _settings(recipe, seed, data)
        history: list[dict] = []
        start_epoch = 0
        if checkpoint is not None and Path(checkpoint).exists():
            state = _load_checkpoint(checkpoint, model, settings)
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            _set_rng(state["rng"], order_generator, augment_generator, cuda)
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
                _save_checkpoint(checkpoint, model, optimizer, scheduler, order_generator, augment_generator,
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
        >>> from budgetnet.data import load_data
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
            f"data={type(data).__name__} is invalid; expected a budgetnet.data.Dataset (load_data(...))"
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
def _resolve_recipe(recipe, epochs, batch_size) -> Recipe:
    if isinstance(recipe, str):
        recipe = get_recipe(recipe)
    elif not isinstance(recipe, Recipe):
        raise TrainingError(f"recipe={recipe!r} is invalid; expected a Recipe or one of {RECIPES}")
    overrides = {}
    if epochs is not None:
        overrides["epochs"] = epochs
    if batch_size is not None:
        overrides["batch_size"] = batch_size
    return replace(recipe, **overrides) if overrides else recipe


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
    from budgetnet.builder import build

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


def _settings(recipe: Recipe, seed: int, data: Dataset) -> dict:
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


def _save_checkpoint(path, model, optimizer, scheduler, order_generator, augment_generator, cuda, settings,
                     history, epoch) -> None:  # fmt: skip
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
    temporary = path.with_name(path.name + ".tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(state, temporary)
        os.replace(temporary, path)
    except OSError as error:
        raise CheckpointError(
            f"checkpoint {str(path)!r} cannot be written ({error}); expected a writable path"
        ) from None


def _load_checkpoint(path, model: nn.Module, settings: dict) -> dict:
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


def _set_rng(rng: dict, order_generator, augment_generator, cuda: bool) -> None:
    torch.set_rng_state(rng["torch"])
    if cuda and rng["cuda"].numel():
        torch.cuda.set_rng_state(rng["cuda"])
    order_generator.set_state(rng["order"])
    augment_generator.set_state(rng["augment"])


def _check_choice(name: str, value, choices) -> None:
    if value not in choices:
        raise TrainingError(f"{name}={value!r} is invalid; expected one of {choices}")


def _check_number(name, value, low, high, expected, low_open=False, high_open=False) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if ok:
        ok = (value > low if low_open else value >= low) and (value < high if high_open else value <= high)
    if not ok:
        raise TrainingError(f"{name}={value!r} is invalid; expected {expected}")
