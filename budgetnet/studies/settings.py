"""The settings of a search: its arguments, checked and resolved, and what they make.

:class:`Settings` is what a worker needs to run trials and what a resumed study must match;
the functions here check and resolve :func:`~budgetnet.studies.study.search`'s arguments
and make its Optuna pruner and sampler (:class:`TrialSeededSampler`).
"""

from __future__ import annotations

import dataclasses
import json
import math
import warnings
from pathlib import Path
from typing import Sequence

import optuna

from budgetnet.checks import is_int
from budgetnet.cost.complexity import complexity
from budgetnet.errors import SearchError

#: The objectives :func:`~budgetnet.studies.study.search` accepts; accuracy always comes first.
OBJECTIVES = ("accuracy", "macs", "latency")
#: Optimisation direction of each objective.
DIRECTIONS = {"accuracy": "maximize", "macs": "minimize", "latency": "minimize"}
#: The pruners :func:`~budgetnet.studies.study.search` accepts (pruning needs accuracy as the only objective):
#: median, percentile25 / percentile75 (Optuna's percentile pruner keeping the top 25 % / 75 %),
#: wilcoxon, hyperband, none.
PRUNERS = ("median", "percentile25", "percentile75", "wilcoxon", "hyperband", "none")
#: The default pruner: the one that pruned none of the true top 5 in any replay of
#: docs/benchmarks.md ("pruners that keep the best"); every other pruner lost some of them.
DEFAULT_PRUNER = "none"
#: The samplers :func:`~budgetnet.studies.study.search` accepts (Optuna's; see :func:`check_sampler`).
SAMPLERS = ("tpe", "random", "gp", "cmaes", "nsga2")
#: The controls that may run beside a search, in the same study.
CONTROLS = ("random",)
#: Settings that must match when a study is resumed.
RESUME_FIELDS = ("space", "objectives", "data", "recipe", "norm")
#: Timed forward passes (batch 1) behind each trial's latency; more when latency is an objective.
LATENCY_REPEATS = {"cheap": 5, "objective": 20}

_OBJECTIVES_EXPECTED = (
    "expected 'accuracy' alone, or 'accuracy' with 'macs' or 'latency' (e.g. accuracy,macs)"
)


@dataclasses.dataclass
class Settings:
    """Everything a worker needs to run trials, and what a resumed study must match."""

    space: object
    data: object
    objectives: tuple[str, ...]
    recipe: object
    norm: str | None
    seed: int | None
    device: str
    keep_weights: Path | None
    deadline: float | None
    max_memory: int | None = None
    sampler: str = "tpe"
    control: str | None = None

    def to_attrs(self) -> dict:
        data = self.data.to_dict()
        return _jsonable(
            {
                "space": self.space.to_dict(),
                "objectives": list(self.objectives),
                "data": {key: data[key] for key in ("name", "input_shape", "num_classes", "sizes") if key in data},
                "preprocess": self.data.preprocessing(),  # for export; not compared on resume
                "recipe": self.recipe.to_dict(),
                "norm": self.norm,
                "budget": str(self.space.budget),
                "sampler": self.sampler,
                "control": self.control,
                "baseline": {
                    "notation": self.space.baseline.notation(),
                    "arch": self.space.baseline.to_dict(),
                    "macs": complexity(self.space.baseline).conv_macs,
                },
            }
        )


# -- arguments ------------------------------------------------------------------------------------
def parse_objectives(objectives: Sequence[str] | str) -> tuple[str, ...]:
    """Check the objectives; ``"accuracy,macs"`` and ``["accuracy", "macs"]`` are both read.

    Example:
        >>> parse_objectives("accuracy,latency")
        ('accuracy', 'latency')
        >>> parse_objectives(["macs"])
        Traceback (most recent call last):
        ...
        budgetnet.errors.SearchError: objectives=('macs',) is invalid; expected 'accuracy' alone, or 'accuracy' with 'macs' or 'latency' (e.g. accuracy,macs)
    """
    if isinstance(objectives, str):
        objectives = [part.strip() for part in objectives.split(",") if part.strip()]
    try:
        objectives = tuple(objectives)
    except TypeError:
        raise SearchError(f"objectives={objectives!r} is invalid; {_OBJECTIVES_EXPECTED}") from None
    for objective in objectives:
        if objective not in OBJECTIVES:
            raise SearchError(
                f"objective={objective!r} is unknown; expected one of {', '.join(OBJECTIVES)} "
                f"({_OBJECTIVES_EXPECTED})"
            )
    if not objectives or objectives[0] != "accuracy" or len(objectives) > 2 or len(set(objectives)) != len(objectives):
        raise SearchError(f"objectives={objectives!r} is invalid; {_OBJECTIVES_EXPECTED}")
    return objectives


def make_pruner(pruner, objectives: Sequence[str], epochs: int) -> optuna.pruners.BasePruner:
    """The Optuna pruner for a name (an Optuna pruner object is used as it is; ``None``:
    :data:`DEFAULT_PRUNER`); several objectives allow none (with a warning if one was asked
    for by name).

    Example:
        >>> type(make_pruner(None, ("accuracy",), 5)).__name__, type(make_pruner("median", ("accuracy",), 5)).__name__
        ('NopPruner', 'MedianPruner')
    """
    if isinstance(pruner, optuna.pruners.BasePruner):
        if len(objectives) > 1:
            raise SearchError(f"pruner={pruner!r}: Optuna prunes single-objective studies only; expected 'none'")
        return pruner
    if pruner is not None and pruner not in PRUNERS:
        raise SearchError(f"pruner={pruner!r} is unknown; expected one of {', '.join(PRUNERS)}")
    if len(objectives) > 1:
        if pruner not in (None, "none"):
            warnings.warn(
                f"pruner={pruner!r} is ignored: Optuna prunes single-objective studies only, so with "
                f"objectives {','.join(objectives)} every feasible candidate trains for all its epochs",
                UserWarning,
                stacklevel=3,
            )
        return optuna.pruners.NopPruner()
    pruner = DEFAULT_PRUNER if pruner is None else pruner
    if pruner == "median":
        # Early epochs rank candidates poorly: no pruning in the first third of the epochs.
        return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=epochs // 3)
    if pruner.startswith("percentile"):
        # Optuna's percentile is the share of trials kept: percentile25 prunes below the top quarter.
        return optuna.pruners.PercentilePruner(float(pruner[10:]), n_startup_trials=5, n_warmup_steps=epochs // 3)
    if pruner == "wilcoxon":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.pruners.WilcoxonPruner(p_threshold=0.1, n_startup_steps=epochs // 3)
    if pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=max(epochs, 1), reduction_factor=3)
    return optuna.pruners.NopPruner()


def check_sampler(sampler: str, objectives: Sequence[str], space=None) -> str:
    """Check ``sampler`` against the objectives (and the space's parameters, for CMA-ES).

    Example:
        >>> check_sampler("nsga2", ("accuracy",))
        Traceback (most recent call last):
        ...
        budgetnet.errors.SearchError: sampler='nsga2' is for several objectives, but objectives=accuracy; expected tpe, random, gp or cmaes with one objective (or --objectives accuracy,macs)
    """
    if sampler not in SAMPLERS:
        raise SearchError(f"sampler={sampler!r} is unknown; expected one of {', '.join(SAMPLERS)}")
    if sampler == "nsga2" and len(objectives) < 2:
        raise SearchError(
            f"sampler='nsga2' is for several objectives, but objectives={','.join(objectives)}; expected tpe, "
            "random, gp or cmaes with one objective (or --objectives accuracy,macs)"
        )
    if sampler == "cmaes":
        if len(objectives) > 1:
            raise SearchError(
                f"sampler='cmaes' optimises one objective, but objectives={','.join(objectives)}; expected tpe, "
                "random, gp or nsga2 with several"
            )
        categorical = _categorical_parameters(space) if space is not None else []
        if categorical:
            raise SearchError(
                f"sampler='cmaes' needs numeric parameters, but space {space.name!r} chooses "
                f"{', '.join(categorical[:4])} from categories; expected tpe, random or gp for this space"
            )
        try:
            import cmaes  # noqa: F401  (Optuna's CmaEsSampler needs it)
        except ImportError:
            raise SearchError("sampler='cmaes' needs the cmaes package; expected it installed (pip install cmaes)") from None
    return sampler


def _categorical_parameters(space) -> list[str]:
    """The parameters that ``space`` samples from categories (one trial, sampled at random)."""
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    trial = study.ask()
    space.suggest(trial)
    return [name for name, dist in trial.distributions.items() if isinstance(dist, optuna.distributions.CategoricalDistribution)]


def make_sampler(seed: int | None, number: int, kind: str = "tpe") -> optuna.samplers.BaseSampler:
    """The sampler ``kind`` (:data:`SAMPLERS`) for trial ``number``: TPE by default
    (multi-objective TPE with several objectives).

    It is made afresh for each trial (see :class:`TrialSeededSampler`) with a seed derived
    from ``seed`` and the trial number.

    Example:
        >>> type(make_sampler(0, 3)).__name__, type(make_sampler(0, 3, "random")).__name__
        ('TPESampler', 'RandomSampler')
    """
    trial_seed = None if seed is None else (seed * 1_000_003 + number) % 2**32
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if kind == "random":
            return optuna.samplers.RandomSampler(seed=trial_seed)
        if kind == "gp":
            return optuna.samplers.GPSampler(seed=trial_seed, n_startup_trials=10)
        if kind == "cmaes":
            return optuna.samplers.CmaEsSampler(seed=trial_seed, n_startup_trials=10)
        if kind == "nsga2":
            return optuna.samplers.NSGAIISampler(seed=trial_seed)
        return optuna.samplers.TPESampler(
            seed=trial_seed,
            n_startup_trials=10,
            multivariate=True,
            group=True,
            constant_liar=True,
        )


class TrialSeededSampler(optuna.samplers.BaseSampler):
    """The search's sampler: :func:`make_sampler` made afresh for every trial from ``seed`` and
    the trial's number (in :meth:`before_trial`, which Optuna calls as a trial starts), of
    ``kind`` (:data:`SAMPLERS`); a trial of the random control (``arm`` ``"control"``) gets
    a random sampler.

    A seeded search thus replays exactly on one worker, and two workers never share random
    draws; every call is passed on to that trial's sampler.

    Example:
        >>> import optuna
        >>> study = optuna.create_study(sampler=TrialSeededSampler(0))
        >>> study.optimize(lambda trial: trial.suggest_float("x", 0, 1), n_trials=2)
        >>> again = optuna.create_study(sampler=TrialSeededSampler(0))
        >>> again.optimize(lambda trial: trial.suggest_float("x", 0, 1), n_trials=2)
        >>> [t.params for t in study.trials] == [t.params for t in again.trials]
        True
    """

    def __init__(self, seed: int | None, kind: str = "tpe"):
        self.seed, self.kind = seed, kind
        self.current = make_sampler(seed, 0, kind)

    def before_trial(self, study, trial) -> None:
        kind = "random" if trial.user_attrs.get("arm") == "control" else self.kind
        self.current = make_sampler(self.seed, trial.number, kind)
        self.current.before_trial(study, trial)

    def infer_relative_search_space(self, study, trial):
        return self.current.infer_relative_search_space(study, trial)

    def sample_relative(self, study, trial, search_space):
        return self.current.sample_relative(study, trial, search_space)

    def sample_independent(self, study, trial, param_name, param_distribution):
        return self.current.sample_independent(study, trial, param_name, param_distribution)

    def after_trial(self, study, trial, state, values) -> None:
        self.current.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        self.current.reseed_rng()


def default_study_name(space, data, objectives: Sequence[str]) -> str:
    """``"<space>-<data>"``, plus the objectives when there are several.

    Example:
        >>> class Named:
        ...     name = "small"
        >>> default_study_name(Named(), Named(), ("accuracy", "macs"))
        'small-small-accuracy-macs'
    """
    name = f"{space.name}-{Path(str(data.name).split(':', 1)[-1]).name or data.name}"
    if len(objectives) > 1:
        name += "-" + "-".join(objectives)
    return name


def check_limits(n_trials, timeout) -> None:
    """Check ``n_trials`` and ``timeout`` of a search: at least one, each valid."""
    if n_trials is not None and not is_int(n_trials, 1):
        raise SearchError(f"n_trials={n_trials!r} is invalid; expected a whole number >= 1")
    if timeout is not None and (
        isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not (0 < timeout < math.inf)
    ):
        raise SearchError(f"timeout={timeout!r} is invalid; expected seconds > 0")
    if n_trials is None and timeout is None:
        raise SearchError("n_trials=None and timeout=None: the search would never end; give n_trials, timeout or both")


def resolve_data(data):
    """The :class:`budgetnet.training.data.Dataset` of a search's ``data`` (a dataset or a spec)."""
    from budgetnet.training.data import Dataset, load_data

    if isinstance(data, Dataset):
        return data
    if isinstance(data, str):
        return load_data(data)
    raise SearchError(f"data={data!r} is invalid; expected a budgetnet.training.data.Dataset or a spec such as 'digits'")


def resolve_space(space, data):
    """The search space of a search's ``space`` (a space or a name), checked against ``data``."""
    from search_spaces.base import SearchSpace, get_space, space_names

    if isinstance(space, str):
        space = get_space(space, input_shape=data.input_shape, num_classes=data.num_classes)
    if not isinstance(space, SearchSpace):
        raise SearchError(
            f"space={space!r} is invalid; expected a search_spaces SearchSpace or one of the names {space_names()}"
        )
    if tuple(space.input_shape) != tuple(data.input_shape) or space.num_classes != data.num_classes:
        raise SearchError(
            f"space {space.name!r} designs for input {tuple(space.input_shape)} and {space.num_classes} "
            f"classes, but data {data.name!r} has input {tuple(data.input_shape)} and {data.num_classes} "
            "classes; build the space with input_shape=data.input_shape, num_classes=data.num_classes"
        )
    return space


def resolve_recipe(recipe, epochs):
    """The training recipe of a search's ``recipe`` (a recipe or a name), with ``epochs`` if given."""
    from budgetnet.training.recipes import Recipe, get_recipe

    if isinstance(recipe, Recipe):
        return recipe if epochs is None else dataclasses.replace(recipe, epochs=epochs)
    if isinstance(recipe, str):
        return get_recipe(recipe, epochs=epochs)
    raise SearchError(f"recipe={recipe!r} is invalid; expected a budgetnet.training.recipes.Recipe or a recipe name")


def _jsonable(value):
    """Plain JSON types (tuples become lists), as a value read back from the storage is."""
    return json.loads(json.dumps(value, default=str))
