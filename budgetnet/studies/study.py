"""The search: an Optuna study whose trials are architectures inside a budget.

:func:`search` (public as ``budgetnet.search``) samples one Arch per trial from a search
space, rejects it before any training when it is over the budget (recorded with
``trial.set_constraint`` and counted as infeasible), trains the others with
:func:`budgetnet.training.train.fit`, and records what a user needs to pick and rebuild a model.

The trial loop is Optuna's own ``study.optimize`` (public API only: ``optimize``, ``ask``
inside it, ``tell``, ``enqueue_trial``, the storages' heartbeats with Optuna's retry
callback), so an Optuna upgrade keeps it working or fails loudly.

How trials are counted (the same on one worker and on many):

* ``n_trials`` is the number of *finished* trials the study should hold: completed (the
  infeasible ones included), pruned, and failed with an error inside the trial. Workers
  queue trial slots one at a time (``enqueue_trial``) while the study misses trials; each
  worker's ``ask`` takes the oldest queued slot, and a worker stops when the study holds
  ``n_trials`` (it waits while the missing ones run elsewhere on a storage with heartbeats).
* A trial starts only while the finished trials plus the *other* running ones are fewer
  than ``n_trials``; any other is a *surplus*: recorded with status ``"surplus"``, never
  trained, not counted. Each trial claims itself before it counts, so the study never holds
  more than ``n_trials`` finished trials, with any number of workers; the surplus records
  are the races for the last slots (about one per worker). A search with a control counts
  each arm on its own.
* Several processes asking for different ``n_trials`` at once: the larger wins. Each stops
  once the study holds its own ``n_trials``, so the study ends holding exactly the largest;
  a later, smaller ``n_trials`` runs nothing and queues nothing.
* A trial lost with its worker (killed; it stops sending heartbeats on a database storage,
  or :func:`~budgetnet.studies.worker.recover_trials` / ``budgetnet recover`` on a journal
  file) or stopped by the ``timeout`` or Ctrl-C does not count: it is marked failed and
  queued again with the same parameters, and the next worker (or the resumed search) runs it.
* Running the same search again resumes it: finished trials are kept, queued and lost ones
  are run, and a larger ``n_trials`` runs the difference. A study whose set-up was cut off
  (Ctrl-C, a full disk) is set up by the next run.

Example:
    >>> import budgetnet, optuna
    >>> from budgetnet.training.data import load_data
    >>> study = budgetnet.search("small", load_data("digits", limit=60), n_trials=1, epochs=1,
    ...                          storage=optuna.storages.InMemoryStorage(), seed=0, progress=False)
    >>> [trial.state.name for trial in study.trials]
    ['COMPLETE']
"""


from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Sequence

import optuna
from optuna.trial import TrialState

from budgetnet.checks import is_int
from budgetnet.errors import SearchError
from budgetnet.cost.memory import check_fits, parse_bytes
from budgetnet.studies.objective import train_baseline_runs
from budgetnet.studies.progress import quiet_optuna
from budgetnet.studies.record import StudyRecord
from budgetnet.studies.results import is_finished
from budgetnet.studies.settings import (
    CONTROLS,
    DIRECTIONS,
    RESUME_FIELDS,
    Settings,
    TrialSeededSampler,
    check_limits,
    check_sampler,
    default_study_name,
    make_pruner,
    parse_objectives,
    resolve_data,
    resolve_recipe,
    resolve_space,
)
from budgetnet.studies.storage import check_study_name, create_or_load_study, open_storage
from budgetnet.studies.worker import Worker


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
    sampler: str = "tpe",
    control: str | None = None,
    verbose: bool = False,
) -> optuna.Study:
    """Search ``space`` for the most accurate architectures inside its budget.

    Args:
        space: a :class:`search_spaces.base.SearchSpace`, or a name of
            :data:`search_spaces.base.SPACES` (built for the data's input and classes).
        data: a :class:`budgetnet.training.data.Dataset` or a spec for :func:`budgetnet.training.data.load_data`.
        n_trials: the number of finished trials the study should hold (see the module
            docstring); at least one of ``n_trials`` and ``timeout`` is required.
        timeout: wall-clock seconds for this call; a trial still training then is stopped at
            its next epoch end and queued again.
        storage: a storage URL or path (see :mod:`budgetnet.studies.storage`), an Optuna storage, or
            ``None`` for the SQLite file ``budgetnet.db`` in the working directory.
        study_name: default ``"<space>-<data>"`` (plus the objectives when there are several).
            An existing study of that name is resumed.
        objectives: ``("accuracy",)`` (validation accuracy, maximised, with pruning), or
            accuracy with ``"macs"`` (Eqn. (1)) or ``"latency"`` (measured, batch 1): a
            multi-objective search whose result is the Pareto set; no pruning there.
        epochs: training epochs per candidate (default: the recipe's).
        recipe: a :class:`budgetnet.training.recipes.Recipe` or a name of :data:`budgetnet.training.recipes.RECIPES`.
        pruner: a name of :data:`budgetnet.studies.settings.PRUNERS` (``"median"``,
            ``"percentile25"``, ``"percentile75"``, ``"wilcoxon"``, ``"hyperband"``, ``"none"``)
            or an Optuna pruner; default ``"none"`` (every pruner replayed in
            docs/benchmarks.md pruned some of the true top 5). Pruning decides on the
            validation accuracy reported after every epoch but the last.
        seed: seeds the sampler and each trial's training (trial ``k`` trains with
            ``seed + k``); a seeded search on one worker is reproducible.
        device: ``"auto"``, ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
        keep_weights: ``True`` keeps each trained candidate's weights in
            ``budgetnet_weights/<study>/`` (or give the directory); ``budgetnet export
            --format pt`` needs them.
        progress: show a progress bar over trials on a terminal (the epoch of the trial in
            training beside it), elsewhere one line per finished trial on stderr; and a line
            before and after each baseline run.
        norm: ``None`` (the paper's conv + ReLU) or ``"batch"``.
        train_baseline: also train the space's baseline with the same recipe and store its
            accuracy on the study (``baseline_result`` of :class:`~budgetnet.studies.record.StudyRecord`),
            for comparison: once per training seed, ``seed`` (0 when ``None``) to
            ``seed + baseline_seeds - 1``; seeds already in the study are not trained again,
            so a resumed search with another ``seed`` adds one run. With runs on several
            seeds, :func:`budgetnet.studies.results.summarize` reports their spread.
        baseline_seeds: how many seeds the baseline is trained with (>= 1).
        heartbeat_interval: seconds between heartbeats on a database storage given as a
            URL (default :data:`budgetnet.studies.storage.DEFAULT_HEARTBEAT`).
        max_memory: bytes (or ``"8G"``) a candidate's training may take, by the estimate of
            :mod:`budgetnet.cost.memory` (default: the device's memory). The baseline must fit
            (checked before the study is opened); a candidate that does not is a failed
            trial whose ``error`` gives its estimate, and is never built.
        sampler: Optuna's sampler: ``"tpe"`` (default), ``"random"``, ``"gp"``, ``"cmaes"``
            (numeric parameters only; needs the ``cmaes`` package) or ``"nsga2"`` (several
            objectives); see :func:`budgetnet.studies.settings.check_sampler`.
        control: ``"random"`` runs ``n_trials`` random trials beside the search in the same
            study (``arm`` ``"control"`` in their records, queued after the search's own, same
            recipe and pruner), so that a confirmation compares the search's best with random
            search's best; one objective only.
        verbose: keep Optuna's own ``[I ...]`` log lines (one per trial); by default they are
            hidden during the call, as on the command line (warnings still show).

    Returns:
        The Optuna study (use :func:`budgetnet.studies.results.summarize` for a report).

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
    with quiet_optuna(not verbose):
        study, storage, settings = _setup(
            space, data, n_trials=n_trials, timeout=timeout, storage=storage, study_name=study_name,
            objectives=objectives, epochs=epochs, recipe=recipe, pruner=pruner, seed=seed, device=device,
            keep_weights=keep_weights, norm=norm, heartbeat_interval=heartbeat_interval, max_memory=max_memory,
            sampler=sampler, control=control,
        )  # fmt: skip
        if train_baseline:
            first = 0 if seed is None else seed
            previous = StudyRecord.read(study).baseline_result
            result = train_baseline_runs(settings, range(first, first + baseline_seeds), previous, progress=progress)
            if result != previous:
                StudyRecord.write(study, baseline_result=result)
        total = None if n_trials is None else n_trials * (2 if settings.control else 1)
        Worker(study, storage, settings, progress=progress, n_trials=total).run()
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
    sampler="tpe",
    control=None,
):
    objectives = parse_objectives(objectives)
    if control is not None and control not in CONTROLS:
        raise SearchError(f"control={control!r} is unknown; expected one of {', '.join(CONTROLS)} (or None)")
    if control is not None and len(objectives) > 1:
        raise SearchError(
            f"control={control!r} needs one objective, but objectives={','.join(objectives)}; expected "
            "objectives=accuracy (a control compares best accuracies, a Pareto set has no single best)"
        )
    check_limits(n_trials, timeout)
    data = resolve_data(data)
    space = resolve_space(space, data)
    space.check()
    check_sampler(sampler, objectives, space)
    recipe = resolve_recipe(recipe, epochs)
    if max_memory is not None:
        max_memory = parse_bytes(max_memory)
    from budgetnet.pytorch.device import resolve_device

    batch = min(recipe.batch_size, len(data.train))
    check_fits(space.baseline, batch, recipe.optimizer, max_memory, resolve_device(device))
    pruner_object = make_pruner(pruner, objectives, recipe.epochs)
    name = study_name or default_study_name(space, data, objectives)
    weights_dir = None
    if keep_weights:
        weights_dir = Path("budgetnet_weights") / name if keep_weights is True else Path(keep_weights)
        weights_dir.mkdir(parents=True, exist_ok=True)
    settings = Settings(
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
        sampler=sampler,
        control=control,
    )
    if isinstance(storage, optuna.storages.BaseStorage):
        storage_object = storage
    else:
        extra = {} if heartbeat_interval is None else {"heartbeat_interval": heartbeat_interval}
        storage_object = open_storage(storage, **extra)
    study = prepare_study(storage_object, name, settings, n_trials, pruner_object)
    return study, storage_object, settings


# -- the study --------------------------------------------------------------------------------------
def prepare_study(storage, name: str, settings: Settings, n_trials: int | None, pruner=None) -> optuna.Study:
    """Create or resume study ``name``, check its settings and record ``n_trials``.

    Set-up is a few attribute writes and queues nothing (workers queue one slot at a time),
    so ``n_trials=10**9`` is as cheap as 10. It is resumable: when the process that created
    the study stopped before marking it ready (Ctrl-C, a full disk, a kill), the next run
    waits :data:`SETUP_WAIT_SECONDS` for it, then completes the set-up itself.

    Several processes with different ``n_trials`` on one study: the larger wins (each
    process stops once the study holds its own ``n_trials``; see :mod:`budgetnet.studies.study`).
    The stored ``n_trials`` (reports, progress bars) is this run's, except that a run never
    lowers it while trials are running.

    Raises:
        SearchError: a name no storage holds (:func:`~budgetnet.studies.storage.check_study_name`),
            a study that exists with other settings, or holds trials that ``budgetnet.search`` did not make.
    """
    check_study_name(name)
    directions = [DIRECTIONS[objective] for objective in settings.objectives]
    sampler = TrialSeededSampler(settings.seed, settings.sampler)
    study, created = create_or_load_study(storage, name, directions, sampler=sampler, pruner=pruner)
    attrs = settings.to_attrs()
    record = StudyRecord() if created else _wait_until_ready(study)
    if record.settings is None:
        StudyRecord.write(study, settings=attrs, control=settings.control)
    else:
        for field in RESUME_FIELDS:
            if record.settings.get(field) != attrs[field]:
                raise SearchError(
                    f"study {name!r} was created with {field}={_short(record.settings.get(field))}; this run asks "
                    f"for {field}={_short(attrs[field])}. Resume it with the same {field}, or give another "
                    "study name to start a new study"
                )
        if settings.control and not record.control:
            StudyRecord.write(study, control=settings.control)
    if n_trials is not None and n_trials != record.n_trials:
        running = record.n_trials is not None and study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
        StudyRecord.write(study, n_trials=max(n_trials, record.n_trials) if running else n_trials)
    if not record.ready:
        StudyRecord.write(study, ready=True)
    return study


def _short(value) -> str:
    if isinstance(value, dict) and "space" in value:
        value = {key: value.get(key) for key in ("space", "budget", "options")}
    text = json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= 300 else text[:297] + "..."


#: How long a run waits for another process to finish setting up a study before it completes
#: the set-up itself (the creator's set-up is a few attribute writes).
SETUP_WAIT_SECONDS = 10.0


def _wait_until_ready(study: optuna.Study, seconds: float | None = None) -> StudyRecord:
    """The study's record once its creator marked it ready, or after ``seconds`` (default
    :data:`SETUP_WAIT_SECONDS`) the record as its creator left it (the caller completes it)."""
    deadline = time.monotonic() + (SETUP_WAIT_SECONDS if seconds is None else seconds)
    while not (record := StudyRecord.read(study)).ready and time.monotonic() < deadline:
        if record.settings is None and study.get_trials(deepcopy=False):
            raise SearchError(
                f"study {study.study_name!r} was not created by budgetnet.search; give another study name"
            )
        time.sleep(0.2)
    return record


def counted_trials(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    """The finished trials that count toward ``n_trials`` (see :func:`budgetnet.studies.results.is_finished`).

    Example:
        >>> import optuna
        >>> study = optuna.create_study()
        >>> study.add_trial(optuna.create_trial(value=0.5))
        >>> len(counted_trials(study))
        1
    """
    return [trial for trial in study.get_trials(deepcopy=False) if is_finished(trial)]
