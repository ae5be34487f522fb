"""One worker process of a search: its loop over trials, and the recovery of lost trials.

:class:`Worker` runs trials through Optuna's ``study.optimize`` until no slot is queued
and none is running (how trials are counted: :mod:`budgetnet.studies.study`);
:func:`recover_trials` queues again the trials of workers that are gone.
"""

from __future__ import annotations

import datetime
import logging
import math
import os
import re
import socket
import threading
import time
import warnings
from typing import Sequence

import optuna
from optuna.trial import TrialState

from budgetnet.errors import BudgetNetError, SearchError
from budgetnet.studies.confirm import Runner
from budgetnet.studies.objective import Interrupted, Objective
from budgetnet.studies.record import TrialRecord
from budgetnet.studies.progress import progress_bar
from budgetnet.studies.results import is_finished
from budgetnet.studies.settings import Settings
from budgetnet.studies.storage import RetryCallback, heartbeat_interval, storage_label, storage_lost


class _TrialEnded(Exception):
    """The objective already recorded why its trial ends (an error, an interruption, a surplus
    slot); Optuna marks the trial failed and the search goes on."""


class Worker:
    """Runs trials through ``study.optimize`` (Optuna's loop, with its heartbeats on a database
    storage) until no slot is queued and none is running, or time is up.

    Each ``ask`` inside ``optimize`` takes the oldest queued slot. When the queue is empty
    it creates a trial instead (``n_trials=None``, a search with a timeout only, wants
    exactly that); with ``n_trials``, such a trial, or any trial that starts when the study
    already holds ``n_trials`` finished or earlier-started trials, is a *surplus*: recorded,
    never trained, not counted (see :mod:`budgetnet.studies.study`).
    """

    def __init__(self, study: optuna.Study, storage, settings: Settings, progress: bool, n_trials: int | None):
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
        if inherited.confirm is not None:  # a queued confirmation retraining: run it here too
            settings = self.settings
            runner = Runner(self.study, settings.data, settings.recipe, settings.norm, settings.device)
            return runner.run_job(trial, inherited.confirm)
        if self.n_trials is not None and self._is_surplus(trial):
            TrialRecord.write(trial, status="surplus", error=f"the study already holds {self.n_trials} trials")
            raise _TrialEnded("surplus")
        try:
            values = Objective(self.settings, self.study, trial, self.bar)()
        except optuna.TrialPruned:
            TrialRecord.write(trial, trial_seconds=time.perf_counter() - start)
            raise
        except (Interrupted, KeyboardInterrupt) as stop:
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
    arm = TrialRecord.read(trial).arm
    study.enqueue_trial(trial.params, user_attrs=TrialRecord(retry_of=trial.number, arm=arm).to_dict())


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
        retry = TrialRecord(retry_of=frozen.number, arm=record.arm, confirm=record.confirm)
        study.enqueue_trial(frozen.params, user_attrs=retry.to_dict())
        recovered.append(frozen.number)
    return recovered


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
    """Drops Optuna's two warnings about a trial whose objective raised :class:`_TrialEnded`
    or was stopped by Ctrl-C (its record says so and it is queued again)."""

    def __init__(self):
        super().__init__()
        self.numbers = set()

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], (_TrialEnded, KeyboardInterrupt)):
            self.numbers.add(record.getMessage().split(" ", 2)[1])
            return False
        text = record.getMessage()
        return not (text.startswith("Trial ") and " failed with value " in text and text.split(" ", 2)[1] in self.numbers)
