"""The search: an Optuna study whose trials are architectures inside a budget.

:func:`search` (public as ``budgetnet.search``) samples one Arch per trial from a search
space, rejects it before any training when it is over the budget (recorded with
``trial.set_constraint`` and counted as infeasible), trains the others with
:func:`budgetnet.train.fit`, and records what a user needs to pick and rebuild a model.

The trial loop is Optuna's own ``study.optimize`` (public API only: ``optimize``, ``ask``
inside it, ``tell``, ``enqueue_trial``, the storages' heartbeats with Optuna's retry
callback), so an Optuna upgrade keeps it working or fails loudly.

How trials are counted (the same on one worker and on many):

* ``n_trials`` is the number of *finished* trials the study should hold: completed (the
  infeasible ones included), pruned, and failed with an error inside the trial. When the
  study is created, ``n_trials`` trial slots are queued (``enqueue_trial``); each worker's
  ``ask`` takes the oldest queued slot, and a worker stops when none is queued or running.
* A trial starts only while the finished trials plus the trials started before it (lower
  numbers, still running) are fewer than ``n_trials``; any other is a *surplus*: recorded
  with status ``"surplus"``, never trained, not counted. Surpluses come from races (a
  worker's ``ask`` finds the queue just emptied and creates a trial; two processes raise
  ``n_trials`` at once and both queue the difference). The bound: the study never holds
  more than ``n_trials`` finished trials, except when two workers read the study at the
  same instant as each other's trial starts (then at most one extra per other worker);
  the surplus records are at most one per worker each time the queue empties, plus the
  slots queued twice.
* A trial lost with its worker (killed; it stops sending heartbeats on a database storage,
  or :func:`recover_trials` / ``budgetnet recover`` on a journal file) or stopped by the
  ``timeout`` or Ctrl-C does not count: it is marked failed and queued again with the same
  parameters, and the next worker (or the resumed search) runs it.
* Running the same search again resumes it: finished trials are kept, queued and lost ones
  are run, and a larger ``n_trials`` queues the difference.

Example:
    >>> import budgetnet, optuna
    >>> from budgetnet.data import load_data
    >>> study = budgetnet.search("small", load_data("digits", limit=60), n_trials=1, epochs=1,
    ...                          storage=optuna.storages.InMemoryStorage(), seed=0, progress=False)
    >>> [trial.state.name for trial in study.trials]
    ['COMPLETE']
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import logging
import math
import os
import re
import socket
import threading
import time
import warnings
from pathlib import Path
from typing import Sequence

import optuna
from optuna.trial import TrialState

from budgetnet.checks import is_int
from budgetnet.complexity import complexity
from budgetnet.errors import BudgetNetError, SearchError
from budgetnet.memory import check_fits, parse_bytes
from budgetnet.record import StudyRecord, TrialRecord
from budgetnet.results import is_finished, progress_bar
from budgetnet.storage import (
    RetryCallback,
    create_or_load_study,
    heartbeat_interval,
    open_storage,
    storage_label,
    storage_lost,
)

#: The objectives :func:`search` accepts; accuracy always comes first.
OBJECTIVES = ("accuracy", "macs", "latency")
#: Optimisation direction of each objective.
DIRECTIONS = {"accuracy": "maximize", "macs": "minimize", "latency": "minimize"}
#: The pruners :func:`search` accepts (pruning needs accuracy as the only objective).
PRUNERS = ("median", "hyperband", "none")
#: Settings that must match when a study is resumed.
RESUME_FIELDS = ("space", "objectives", "data", "recipe", "norm")
#: Timed forward passes (batch 1) behind each trial's latency; more when latency is an objective.
LATENCY_REPEATS = {"cheap": 5, "objective": 20}

_OBJECTIVES_EXPECTED = (
    "expected 'accuracy' alone, or 'accuracy' with 'macs' or 'latency' (e.g. accuracy,macs)"
)


class _Interrupted(Exception):
    """The trial stopped before it finished (timeout reached); it is queued again."""


@dataclasses.dataclass
class _Settings:
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

    def to_attrs(self) -> dict:
        data = self.data.to_dict()
        return _jsonable(
            {
                "space": self.space.to_dict(),
                "objectives": list(self.objectives),
                "data": {key: data[key] for key in ("name", "input_shape", "num_classes", "sizes") if key in data},
                "recipe": self.recipe.to_dict(),
                "norm": self.norm,
                "budget": str(self.space.budget),
                "baseline": {
                    "notation": self.space.baseline.notation(),
                    "arch": self.space.baseline.to_dict(),
                    "macs": complexity(self.space.baseline).conv_macs,
                },
            }
        )


def search(
    space,
    data,
    *,
    n_trials: int | None = None,
    timeout: float | None = None,
    storage=None,
    study_name: str | None = None,
    objectives: Sequence[str] | str = ("accuracy",),
    epochs: int | None = None,
    recipe="quick",
    pruner: str | None = None,
    seed: int | None = None,
    device: str = "auto",
    keep_weights: bool | str | Path = False,
    progress: bool = True,
    norm: str | None = None,
    train_baseline: bool = False,
    baseline_seeds: int = 1,
    heartbeat_interval: int | None = None,
    max_memory: int | str | None = None,
) -> optuna.Study:
    """Search ``space`` for the most accurate architectures inside its budget.

    Args:
        space: a :class:`search_spaces.base.SearchSpace`, or a name of
            :data:`search_spaces.base.SPACES` (built for the data's input and classes).
        data: a :class:`budgetnet.data.Dataset` or a spec for :func:`budgetnet.data.load_data`.
        n_trials: the number of finished trials the study should hold (see the module
            docstring); at least one of ``n_trials`` and ``timeout`` is required.
        timeout: wall-clock seconds for this call; a trial still training then is stopped at
            its next epoch end and queued again.
        storage: a storage URL or path (see :mod:`budgetnet.storage`), an Optuna storage, or
            ``None`` for the SQLite file ``budgetnet.db`` in the working directory.
        study_name: default ``"<space>-<data>"`` (plus the objectives when there are several).
            An existing study of that name is resumed.
        objectives: ``("accuracy",)`` (validation accuracy, maximised, with pruning), or
            accuracy with ``"macs"`` (Eqn. (1)) or ``"latency"`` (measured, batch 1): a
            multi-objective search whose result is the Pareto set; no pruning there.
        epochs: training epochs per candidate (default: the recipe's).
        recipe: a :class:`budgetnet.train.Recipe` or a name of :data:`budgetnet.train.RECIPES`.
        pruner: ``"median"``, ``"hyperband"`` or ``"none"`` (or an Optuna pruner); default
            median for accuracy alone and none with several objectives. Pruning decides on
            the validation accuracy reported after every epoch but the last.
        seed: seeds the sampler and each trial's training (trial ``k`` trains with
            ``seed + k``); a seeded search on one worker is reproducible.
        device: ``"auto"``, ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
        keep_weights: ``True`` keeps each trained candidate's weights in
            ``budgetnet_weights/<study>/`` (or give the directory); ``budgetnet export
            --format pt`` needs them.
        progress: show a progress bar over trials.
        norm: ``None`` (the paper's conv + ReLU) or ``"batch"``.
        train_baseline: also train the space's baseline with the same recipe and store its
            accuracy on the study (``baseline_result`` of :class:`~budgetnet.record.StudyRecord`),
            for comparison: once per training seed, ``seed`` (0 when ``None``) to
            ``seed + baseline_seeds - 1``; seeds already in the study are not trained again,
            so a resumed search with another ``seed`` adds one run. With runs on several
            seeds, :func:`budgetnet.results.summarize` reports their spread.
        baseline_seeds: how many seeds the baseline is trained with (>= 1).
        heartbeat_interval: seconds between heartbeats on a database storage given as a
            URL (default :data:`budgetnet.storage.DEFAULT_HEARTBEAT`).
        max_memory: bytes (or ``"8G"``) a candidate's training may take, by the estimate of
            :mod:`budgetnet.memory` (default: the device's memory). The baseline must fit
            (checked before the study is opened); a candidate that does not is a failed
            trial whose ``error`` gives its estimate, and is never built.

    Returns:
        The Optuna study (use :func:`budgetnet.results.summarize` for a report).

    Raises:
        SearchError: an unknown space, objective or pruner, a bad ``n_trials`` or
            ``timeout``, or a study resumed with other settings.
        BudgetError: nothing in the space can meet the budget (before the first trial).
        StorageError: the storage does not connect.
        MemoryLimitError: the baseline cannot fit in ``max_memory``, or a bad ``max_memory``.

    Example:
        >>> import budgetnet, optuna
        >>> data = budgetnet.load_data("digits", limit=100)
        >>> study = budgetnet.search("small", data, n_trials=2, epochs=1, seed=0, progress=False,
        ...                          storage=optuna.storages.InMemoryStorage())
        >>> len(study.trials), "notation" in study.trials[0].user_attrs
        (2, True)
    """
    if not is_int(baseline_seeds, 1):
        raise SearchError(f"baseline_seeds={baseline_seeds!r} is invalid; expected a whole number >= 1")
    study, storage, settings = _setup(
        space, data, n_trials=n_trials, timeout=timeout, storage=storage, study_name=study_name,
        objectives=objectives, epochs=epochs, recipe=recipe, pruner=pruner, seed=seed, device=device,
        keep_weights=keep_weights, norm=norm, heartbeat_interval=heartbeat_interval, max_memory=max_memory,
    )  # fmt: skip
    if train_baseline:
        first = 0 if seed is None else seed
        previous = StudyRecord.read(study).baseline_result
        result = train_baseline_runs(settings, range(first, first + baseline_seeds), previous)
        if result != previous:
            StudyRecord.write(study, baseline_result=result)
    _Worker(study, storage, settings, progress=progress, n_trials=n_trials).run()
    return study


def setup_search(space, data, **options) -> optuna.Study:
    """Create (or resume and check) the study of a search without running any trial.

    Takes the arguments of :func:`search` except ``progress``, ``train_baseline`` and
    ``baseline_seeds``;
    ``budgetnet search --workers N`` calls it once before it starts the workers, so that they
    all join one ready study.
    """
    return _setup(space, data, **options)[0]


def _setup(
    space,
    data,
    *,
    n_trials=None,
    timeout=None,
    storage=None,
    study_name=None,
    objectives=("accuracy",),
    epochs=None,
    recipe="quick",
    pruner=None,
    seed=None,
    device="auto",
    keep_weights=False,
    norm=None,
    heartbeat_interval=None,
    max_memory=None,
):
    objectives = parse_objectives(objectives)
    _check_limits(n_trials, timeout)
    data = _resolve_data(data)
    space = _resolve_space(space, data)
    space.check()
    recipe = _resolve_recipe(recipe, epochs)
    if max_memory is not None:
        max_memory = parse_bytes(max_memory)
    from budgetnet.train import resolve_device

    batch = min(recipe.batch_size, len(data.train))
    check_fits(space.baseline, batch, recipe.optimizer, max_memory, resolve_device(device))
    pruner_object = make_pruner(pruner, objectives, recipe.epochs)
    name = study_name or default_study_name(space, data, objectives)
    weights_dir = None
    if keep_weights:
        weights_dir = Path("budgetnet_weights") / name if keep_weights is True else Path(keep_weights)
        weights_dir.mkdir(parents=True, exist_ok=True)
    settings = _Settings(
        space=space,
        data=data,
        objectives=objectives,
        recipe=recipe,
        norm=norm,
        seed=seed,
        device=device,
        keep_weights=weights_dir,
        deadline=None if timeout is None else time.monotonic() + timeout,
        max_memory=max_memory,
    )
    if isinstance(storage, optuna.storages.BaseStorage):
        storage_object = storage
    else:
        extra = {} if heartbeat_interval is None else {"heartbeat_interval": heartbeat_interval}
        storage_object = open_storage(storage, **extra)
    study = prepare_study(storage_object, name, settings, n_trials, pruner_object)
    return study, storage_object, settings


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
    """The Optuna pruner for a name (an Optuna pruner object is used as it is); several
    objectives allow none (with a warning if one was asked for by name).

    Example:
        >>> type(make_pruner(None, ("accuracy",), 5)).__name__
        'MedianPruner'
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
    if pruner in (None, "median"):
        # Early epochs rank candidates poorly: no pruning in the first third of the epochs.
        return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=epochs // 3)
    if pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=max(epochs, 1), reduction_factor=3)
    return optuna.pruners.NopPruner()


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


def _check_limits(n_trials, timeout) -> None:
    if n_trials is not None and not is_int(n_trials, 1):
        raise SearchError(f"n_trials={n_trials!r} is invalid; expected a whole number >= 1")
    if timeout is not None and (
        isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not (0 < timeout < math.inf)
    ):
        raise SearchError(f"timeout={timeout!r} is invalid; expected seconds > 0")
    if n_trials is None and timeout is None:
        raise SearchError("n_trials=None and timeout=None: the search would never end; give n_trials, timeout or both")


def _resolve_data(data):
    from budgetnet.data import Dataset, load_data

    if isinstance(data, Dataset):
        return data
    if isinstance(data, str):
        return load_data(data)
    raise SearchError(f"data={data!r} is invalid; expected a budgetnet.data.Dataset or a spec such as 'digits'")


def _resolve_space(space, data):
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


def _resolve_recipe(recipe, epochs):
    from budgetnet.train import Recipe, get_recipe

    if isinstance(recipe, Recipe):
        return recipe if epochs is None else dataclasses.replace(recipe, epochs=epochs)
    if isinstance(recipe, str):
        return get_recipe(recipe, epochs=epochs)
    raise SearchError(f"recipe={recipe!r} is invalid; expected a budgetnet.train.Recipe or a recipe name")


def _jsonable(value):
    """Plain JSON types (tuples become lists), as a value read back from the storage is."""
    return json.loads(json.dumps(value, default=str))


# -- the study --------------------------------------------------------------------------------------
def prepare_study(storage, name: str, settings: _Settings, n_trials: int | None, pruner=None) -> optuna.Study:
    """Create or resume study ``name``, check its settings and queue the missing trial slots.

    The process that creates the study stores the settings and queues ``n_trials`` slots
    before it marks the study ready; processes that load it meanwhile wait for that.

    Raises:
        SearchError: the study exists with other settings, or was never set up.
    """
    directions = [DIRECTIONS[objective] for objective in settings.objectives]
    sampler = TrialSeededSampler(settings.seed)
    study, created = create_or_load_study(storage, name, directions, sampler=sampler, pruner=pruner)
    attrs = settings.to_attrs()
    if created:
        StudyRecord.write(study, settings=attrs)
        _queue_slots(study, n_trials or 0)
        StudyRecord.write(study, n_trials=n_trials, ready=True)
        return study
    stored = _wait_until_ready(study).settings
    for field in RESUME_FIELDS:
        if stored.get(field) != attrs[field]:
            raise SearchError(
                f"study {name!r} was created with {field}={_short(stored.get(field))}; this run asks for "
                f"{field}={_short(attrs[field])}. Resume it with the same {field}, or give another "
                "study name to start a new study"
            )
    previous = StudyRecord.read(study).n_trials
    if n_trials is not None and (n_trials != previous or not _active(study)):
        missing = n_trials - len(counted_trials(study)) - len(study.get_trials(deepcopy=False, states=_ACTIVE))
        _queue_slots(study, missing)
        StudyRecord.write(study, n_trials=n_trials)
    return study


def _short(value) -> str:
    if isinstance(value, dict) and "space" in value:
        value = {key: value.get(key) for key in ("space", "budget", "options")}
    text = json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= 300 else text[:297] + "..."


def _wait_until_ready(study: optuna.Study, seconds: float = 60) -> StudyRecord:
    deadline = time.monotonic() + seconds
    while not (record := StudyRecord.read(study)).ready:
        if record.settings is None and study.get_trials(deepcopy=False):
            raise SearchError(
                f"study {study.study_name!r} was not created by budgetnet.search; give another study name"
            )
        if time.monotonic() > deadline:
            raise SearchError(
                f"study {study.study_name!r} exists but was never set up (its creator stopped early); "
                "give another study name"
            )
        time.sleep(0.2)
    return record


_ACTIVE = (TrialState.RUNNING, TrialState.WAITING)


def _active(study: optuna.Study) -> bool:
    return bool(study.get_trials(deepcopy=False, states=_ACTIVE))


def _queue_slots(study: optuna.Study, count: int) -> None:
    for _ in range(max(count, 0)):
        study.enqueue_trial({})


def counted_trials(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    """The finished trials that count toward ``n_trials`` (see :func:`budgetnet.results.is_finished`).

    Example:
        >>> import optuna
        >>> study = optuna.create_study()
        >>> study.add_trial(optuna.create_trial(value=0.5))
        >>> len(counted_trials(study))
        1
    """
    return [trial for trial in study.get_trials(deepcopy=False) if is_finished(trial)]


def train_baseline_runs(settings: _Settings, seeds: Sequence[int], previous: dict | None = None) -> dict:
    """Train the space's baseline with the search's recipe on each of ``seeds`` not already
    among the runs of ``previous`` (a ``baseline_result``); the runs and their mean.

    Returns:
        ``notation``, ``macs``, ``params``, ``latency_ms`` (of the first run), ``accuracy``
        (the mean over the runs), ``seconds`` (all runs) and ``runs``: one dict per seed with
        ``seed``, ``accuracy``, ``epochs``, ``train_seconds``, ``seconds`` and ``device``.
    """
    from budgetnet.train import fit

    runs = list((previous or {}).get("runs", []))
    done = {run["seed"] for run in runs}
    for seed in seeds:
        if seed in done:
            continue
        start = time.perf_counter()
        result = fit(settings.space.baseline, settings.data, settings.recipe, device=settings.device, seed=seed,
                     progress=False, norm=settings.norm, max_memory=settings.max_memory)  # fmt: skip
        run = {
            "seed": seed,
            "accuracy": float(result.val_accuracy),
            "epochs": result.epochs_run,
            "train_seconds": float(result.seconds),
            "device": str(result.device),
        }
        if not runs:
            run["latency_ms"] = _latency(result.model, run["device"], LATENCY_REPEATS["cheap"])
        run["seconds"] = time.perf_counter() - start
        runs.append(run)
    report = complexity(settings.space.baseline)
    return {
        "notation": settings.space.baseline.notation(),
        "macs": report.conv_macs,
        "params": report.params,
        "latency_ms": runs[0].get("latency_ms"),
        "accuracy": sum(run["accuracy"] for run in runs) / len(runs),
        "seconds": sum(run["seconds"] for run in runs),
        "runs": runs,
    }


def _latency(model_or_arch, device: str, repeats: int, norm: str | None = None) -> float:
    """Milliseconds per image at batch 1 (``norm`` builds an Arch)."""
    from budgetnet.latency import measure

    return float(
        measure(model_or_arch, device=device, batch_size=1, repeats=repeats, warmup=3, norm=norm).ms_per_image
    )


# -- one worker -----------------------------------------------------------------------------------
class _TrialEnded(Exception):
    """The objective already recorded why its trial ends (an error, an interruption, a surplus
    slot); Optuna marks the trial failed and the search goes on."""


class TrialSeededSampler(optuna.samplers.BaseSampler):
    """The search's sampler: :func:`make_sampler` made afresh for every trial from ``seed`` and
    the trial's number (in :meth:`before_trial`, which Optuna calls as a trial starts).

    A seeded search thus replays exactly on one worker, and two workers never share random
    draws; every call is passed on to that trial's TPE sampler.

    Example:
        >>> import optuna
        >>> study = optuna.create_study(sampler=TrialSeededSampler(0))
        >>> study.optimize(lambda trial: trial.suggest_float("x", 0, 1), n_trials=2)
        >>> again = optuna.create_study(sampler=TrialSeededSampler(0))
        >>> again.optimize(lambda trial: trial.suggest_float("x", 0, 1), n_trials=2)
        >>> [t.params for t in study.trials] == [t.params for t in again.trials]
        True
    """

    def __init__(self, seed: int | None):
        self.seed = seed
        self.current = make_sampler(seed, 0)

    def before_trial(self, study, trial) -> None:
        self.current = make_sampler(self.seed, trial.number)
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


class _Worker:
    """Runs trials through ``study.optimize`` (Optuna's loop, with its heartbeats on a database
    storage) until no slot is queued and none is running, or time is up.

    Each ``ask`` inside ``optimize`` takes the oldest queued slot. When the queue is empty
    it creates a trial instead (``n_trials=None``, a search with a timeout only, wants
    exactly that); with ``n_trials``, such a trial, or any trial that starts when the study
    already holds ``n_trials`` finished or earlier-started trials, is a *surplus*: recorded,
    never trained, not counted (see the module docstring).
    """

    def __init__(self, study: optuna.Study, storage, settings: _Settings, progress: bool, n_trials: int | None):
        self.study, self.settings, self.progress = study, settings, progress
        self.n_trials = n_trials
        self.label = storage_label(storage)
        self.heartbeat = heartbeat_interval(storage)
        self.worker = f"{socket.gethostname()}:{os.getpid()}"
        self.bar = None

    def run(self) -> None:
        previous_hook = threading.excepthook

        def quiet_heartbeat(args):  # the main thread reports a lost storage; one message is enough
            if _storage_error(args.exc_value) is None:
                previous_hook(args)

        threading.excepthook = quiet_heartbeat
        try:
            with progress_bar(self.study, enabled=self.progress) as self.bar, _quiet_optuna(self.bar.active):
                self._loop()
        except Exception as error:
            cause = _storage_error(error)
            if cause is None:
                raise
            raise storage_lost(self.label, cause) from None
        finally:
            threading.excepthook = previous_hook

    def _loop(self) -> None:
        while not self._time_is_up():
            if self.n_trials is not None and not self._waiting():
                # Other workers still run trials: wait, as one of them may die and come back
                # as a queued retry once its heartbeats stop.
                if self.heartbeat and self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                        optuna.storages.fail_stale_trials(self.study)
                    self.bar.refresh_from(self.study)
                    time.sleep(min(self.heartbeat, max(self._remaining(), 0.01)))
                    continue
                break
            self.study.optimize(
                self._objective, catch=(_TrialEnded,), callbacks=[self._after_trial], gc_after_trial=False
            )

    def _waiting(self) -> bool:
        return bool(self.study.get_trials(deepcopy=False, states=(TrialState.WAITING,)))

    def _after_trial(self, study: optuna.Study, frozen) -> None:
        self.bar.refresh_from(study)
        if self._time_is_up() or (self.n_trials is not None and not self._waiting()):
            study.stop()

    def _remaining(self) -> float:
        if self.settings.deadline is None:
            return math.inf
        return max(self.settings.deadline - time.monotonic(), 0.0)

    def _time_is_up(self) -> bool:
        return self.settings.deadline is not None and time.monotonic() >= self.settings.deadline

    def _objective(self, trial: optuna.Trial):
        start = time.perf_counter()
        inherited = TrialRecord.read(trial)
        TrialRecord.write(trial, worker=self.worker)
        retry_of = self._retried_number(trial) if inherited.worker else None
        retry_of = inherited.retry_of if retry_of is None else retry_of
        if retry_of is not None:
            TrialRecord.write(trial, retry_of=retry_of)
        if self.n_trials is not None and self._is_surplus(trial):
            TrialRecord.write(trial, status="surplus", error=f"the study already holds {self.n_trials} trials")
            raise _TrialEnded("surplus")
        try:
            values = _Objective(self.settings, self.study, trial)()
        except optuna.TrialPruned:
            TrialRecord.write(trial, trial_seconds=time.perf_counter() - start)
            raise
        except (_Interrupted, KeyboardInterrupt) as stop:
            ctrl_c = isinstance(stop, KeyboardInterrupt)
            _requeue(self.study, trial, "interrupted by Ctrl-C" if ctrl_c else str(stop))
            if ctrl_c:
                raise
            raise _TrialEnded("interrupted") from None
        except Exception as error:  # recorded on the trial; the search goes on
            if _storage_error(error) is not None:
                raise
            message = str(error) if isinstance(error, BudgetNetError) else f"{type(error).__name__}: {error}"
            TrialRecord.write(trial, status="error", error=message[:2000], trial_seconds=time.perf_counter() - start)
            raise _TrialEnded("error") from None
        TrialRecord.write(trial, trial_seconds=time.perf_counter() - start)
        return values

    def _retried_number(self, trial: optuna.Trial) -> int | None:
        """The trial a heartbeat retry runs again (the retry inherits its user attributes)."""
        frozen = self.study.get_trials(deepcopy=False)[trial.number]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return RetryCallback.retried_trial_number(frozen)

    def _is_surplus(self, trial: optuna.Trial) -> bool:
        """True when the finished trials and those started before this one already fill ``n_trials``."""
        finished = earlier = 0
        for other in self.study.get_trials(deepcopy=False, states=_COUNTABLE):
            if is_finished(other):
                finished += 1
            elif other.state == TrialState.RUNNING and other.number < trial.number:
                earlier += 1
        return finished + earlier >= self.n_trials


_COUNTABLE = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL, TrialState.RUNNING)


def _requeue(study: optuna.Study, trial: optuna.Trial, reason: str) -> None:
    """Record why ``trial`` stops before it finished and queue its parameters again."""
    TrialRecord.write(trial, status="interrupted", error=reason)
    study.enqueue_trial(trial.params, user_attrs=TrialRecord(retry_of=trial.number).to_dict())


def _storage_error(error: BaseException) -> BaseException | None:
    """The database or file error behind ``error`` (Optuna wraps it, and may raise another
    error while it handles it), or ``None`` when the storage is not to blame."""
    from sqlalchemy.exc import SQLAlchemyError

    seen = set()
    found = None
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, (SQLAlchemyError, OSError)):
            return error
        if isinstance(error, optuna.exceptions.StorageInternalError):
            found = error
        error = error.__cause__ or error.__context__
    return found


def recover_trials(study: optuna.Study, *, older_than: float = 0.0, workers: Sequence[str] | None = None) -> list[int]:
    """Fail the RUNNING trials of ``study`` whose worker is gone and queue them again.

    This is the recovery of a journal storage (it has no heartbeats): a worker killed there
    leaves its trial RUNNING forever. Call it (or ``budgetnet recover``) once no worker runs
    that trial any more. A database storage does this by itself (heartbeats).

    Args:
        older_than: only trials started at least this many seconds ago.
        workers: only trials of these workers (``host:pid``, the ``worker`` of the trial
            record); ``None``: any worker.

    Returns:
        The numbers of the trials marked failed (each is queued again, ``retry_of`` set).

    Example:
        >>> import optuna
        >>> study = optuna.create_study()
        >>> stuck = study.ask()
        >>> stuck.suggest_int("width", 4, 8) > 0
        True
        >>> recover_trials(study)
        [0]
        >>> [t.state.name for t in study.trials], TrialRecord.read(study.trials[1]).retry_of
        (['FAIL', 'WAITING'], 0)
    """
    if isinstance(older_than, bool) or not isinstance(older_than, (int, float)) or not older_than >= 0:
        raise SearchError(f"older_than={older_than!r} is invalid; expected seconds >= 0")
    for worker in workers or ():
        if not isinstance(worker, str) or not re.fullmatch(r"[^:\s]+:[0-9]+", worker):
            raise SearchError(f"worker={worker!r} is invalid; expected HOST:PID as budgetnet results --json lists it")
    now = datetime.datetime.now()
    recovered = []
    for frozen in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        record = TrialRecord.read(frozen)
        if workers is not None and record.worker not in workers:
            continue
        if frozen.datetime_start is not None and (now - frozen.datetime_start).total_seconds() < older_than:
            continue
        try:
            study.tell(frozen.number, state=TrialState.FAIL)
        except (RuntimeError, ValueError):  # it finished meanwhile: its worker was alive
            continue
        study.enqueue_trial(frozen.params, user_attrs=TrialRecord(retry_of=frozen.number).to_dict())
        recovered.append(frozen.number)
    return recovered


def make_sampler(seed: int | None, number: int) -> optuna.samplers.BaseSampler:
    """The sampler for trial ``number``: TPE (multi-objective TPE with several objectives).

    It is made afresh for each trial (see :class:`TrialSeededSampler`) with a seed derived
    from ``seed`` and the trial number.

    Example:
        >>> type(make_sampler(0, 3)).__name__
        'TPESampler'
    """
    trial_seed = None if seed is None else (seed * 1_000_003 + number) % 2**32
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.TPESampler(
            seed=trial_seed,
            n_startup_trials=10,
            multivariate=True,
            group=True,
            constant_liar=True,
        )


class _quiet_optuna:
    """Optuna's logging during a search: its per-trial INFO lines would break a progress bar
    on screen (warnings only then), and its warning with a traceback for each trial that
    failed is dropped when the trial record already says why (:class:`_TrialEnded`)."""

    def __init__(self, active: bool):
        self._active = active
        self._filter = _HideEndedTrials()

    def __enter__(self):
        self._level = optuna.logging.get_verbosity()
        if self._active:
            optuna.logging.set_verbosity(max(self._level, optuna.logging.WARNING))
        self._handlers = logging.getLogger("optuna").handlers + logging.getLogger().handlers
        for handler in self._handlers:
            handler.addFilter(self._filter)
        return self

    def __exit__(self, *exc):
        for handler in self._handlers:
            handler.removeFilter(self._filter)
        optuna.logging.set_verbosity(self._level)


class _HideEndedTrials(logging.Filter):
    """Drops Optuna's two warnings about a trial whose objective raised :class:`_TrialEnded`."""

    def __init__(self):
        super().__init__()
        self.numbers = set()

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], _TrialEnded):
            self.numbers.add(record.getMessage().split(" ", 2)[1])
            return False
        text = record.getMessage()
        return not (text.startswith("Trial ") and " failed with value " in text and text.split(" ", 2)[1] in self.numbers)


# -- one trial ------------------------------------------------------------------------------------
#: What a repeated architecture takes over from the trial that trained it first.
_REUSED = ("status", "val_accuracy", "latency_ms", "epochs", "train_seconds", "device", "weights")


class _Objective:
    """Sample, check the budget, train, measure: the values of one trial, in objective order."""

    def __init__(self, settings: _Settings, study: optuna.Study, trial: optuna.Trial):
        self.settings, self.study, self.trial = settings, study, trial

    def __call__(self) -> list[float]:
        settings, trial = self.settings, self.trial
        space = settings.space
        arch = space.suggest(trial)
        report = complexity(arch, baseline=space.baseline)
        fingerprint = arch.fingerprint()
        TrialRecord.write(
            trial,
            arch=arch.to_dict(),
            notation=arch.notation(),
            fingerprint=fingerprint,
            macs=report.conv_macs,
            params=report.params,
            ratio=report.ratio,
            norm=settings.norm,
        )
        trial.set_constraint("budget", float(-space.budget.slack(arch)))
        if not space.budget.admits(arch):
            TrialRecord.write(trial, status="infeasible")
            return self._values(0.0, report.conv_macs, lambda: self._arch_latency(arch))
        duplicate = self._duplicate_of(fingerprint)
        if duplicate is not None:
            result = TrialRecord.read(duplicate)
            reused = {key: result.get(key) for key in _REUSED if result.get(key) is not None}
            TrialRecord.write(trial, **reused, duplicate_of=duplicate.number)
            return list(duplicate.values)
        return self._train(arch, report.conv_macs)

    def _values(self, accuracy: float, macs: int, latency) -> list[float]:
        values = []
        for objective in self.settings.objectives:
            if objective == "accuracy":
                values.append(float(accuracy))
            elif objective == "macs":
                values.append(float(macs))
            else:
                values.append(latency())
        return values

    def _arch_latency(self, arch) -> float:
        """Latency of an untrained candidate (an infeasible one), for the Pareto plot."""
        latency = _latency(arch, self.settings.device, LATENCY_REPEATS["objective"], self.settings.norm)
        TrialRecord.write(self.trial, latency_ms=latency)
        return latency

    def _duplicate_of(self, fingerprint: str):
        for other in self.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
            record = TrialRecord.read(other)
            if record.fingerprint == fingerprint and record.status in ("ok", "diverged"):
                return other
        return None

    def _train(self, arch, macs: int) -> list[float]:
        from budgetnet.train import fit

        settings, trial = self.settings, self.trial
        prune = len(settings.objectives) == 1
        epochs = settings.recipe.epochs

        def callback(epoch: int, metrics: dict):
            TrialRecord.write(trial, epochs=epoch)
            last = epoch >= epochs
            if prune:
                trial.report(float(metrics["val_accuracy"]), step=epoch)
                if not last and trial.should_prune():
                    TrialRecord.write(trial, status="pruned", val_accuracy=float(metrics["val_accuracy"]))
                    raise optuna.TrialPruned(f"pruned after epoch {epoch}")
            if not last and settings.deadline is not None and time.monotonic() >= settings.deadline:
                raise _Interrupted(f"the search's timeout was reached after epoch {epoch} of {epochs}")
            return None

        seed = trial.number if settings.seed is None else settings.seed + trial.number
        TrialRecord.write(trial, seed=seed)
        start = time.perf_counter()
        try:
            result = fit(
                arch,
                settings.data,
                settings.recipe,
                device=settings.device,
                seed=seed,
                callback=callback,
                progress=False,
                norm=settings.norm,
                max_memory=settings.max_memory,
            )
        finally:  # pruned and interrupted trials too: the benchmark splits trial time with it
            TrialRecord.write(trial, fit_seconds=time.perf_counter() - start)
        TrialRecord.write(
            trial,
            train_seconds=float(result.seconds),
            epochs=int(result.epochs_run),
            device=str(result.device),
            val_accuracy=float(result.val_accuracy),
            status="diverged" if result.diverged else "ok",
        )
        if settings.keep_weights is not None:
            TrialRecord.write(trial, weights=_save_weights(result.model, settings.keep_weights, trial.number))
        repeats = LATENCY_REPEATS["objective" if "latency" in settings.objectives else "cheap"]
        start = time.perf_counter()
        latency = _latency(result.model, str(result.device), repeats)
        TrialRecord.write(trial, latency_seconds=time.perf_counter() - start, latency_ms=latency)
        return self._values(result.val_accuracy, macs, lambda: latency)


def _save_weights(model, directory: Path, number: int) -> str:
    import torch

    path = (directory / f"trial{number}.pt").absolute()
    state = {key: value.detach().cpu() for key, value in model.state_dict().items()}
    torch.save(state, path)
    return str(path)
