"""Training recipes: optimiser, learning-rate schedule, batch size and epochs, and their checks.

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

Example:
    >>> get_recipe("quick", epochs=4).warmup_epochs
    0.2
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace

from budgetnet.checks import check_int
from budgetnet.errors import TrainingError

RECIPES = ("quick", "paper")
OPTIMIZERS = ("sgd", "adamw")
SCHEDULES = ("step", "cosine", "constant")


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


def resolve_recipe(recipe, epochs, batch_size) -> Recipe:
    """``recipe`` (a :class:`Recipe` or one of :data:`RECIPES`) with ``epochs`` and ``batch_size`` when given."""
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


def _check_choice(name: str, value, choices) -> None:
    if value not in choices:
        raise TrainingError(f"{name}={value!r} is invalid; expected one of {choices}")


def _check_number(name, value, low, high, expected, low_open=False, high_open=False) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if ok:
        ok = (value > low if low_open else value >= low) and (value < high if high_open else value <= high)
    if not ok:
        raise TrainingError(f"{name}={value!r} is invalid; expected {expected}")
