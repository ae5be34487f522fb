"""One worker process of a search: its loop over trials, and the recovery of lost trials.

:class:`Worker` runs trials through Optuna's ``study.optimize`` until no slot is queued
and none is running (how trials are counted: :mod:`budgetnet.studies.study`);
:func:`recover_trials` queues again the trials of workers that are gone.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import math
import os
import random
import re
import signal
import socket
import threading
import time
import warnings
from collections import Counter
from typing import Sequence

import optuna
from optuna.trial import TrialState

from budgetnet.errors import BudgetNetError, SearchError
from budgetnet.studies.confirm import Runner
from budgetnet.studies.journal import process_alive
from budgetnet.studies.objective import Interrupted, Objective
from budgetnet.studies.record import TrialRecord
from budgetnet.studies.progress import progress_bar, quiet_optuna
from budgetnet.studies.results import arm as trial_arm
from budgetnet.studies.results import is_finished
from budgetnet.studies.settings import Settings
from budgetnet.studies.database import RetryCallback
from budgetnet.studies.storage import heartbeat_interval, storage_label, storage_lost


class _TrialEnded(Exception):
    """The objective already recorded why its trial ends (an error, an interruption, a surplus
    slot); Optuna marks the trial failed and the search goes on."""


class Worker:
    """Runs trials through ``study.optimize`` (Optuna's loop, with its heartbeats on a database
    storage) until the study holds ``n_trials`` finished trials, or time is up.

    ``n_trials`` counts both arms of a search with a control (half each). Before each trial
    the worker queues one slot when an arm still misses trials and none is queued (the
    search's arm first); ``ask`` takes the oldest queued slot. A trial that starts when its
    arm already holds ``n_trials`` finished or running trials is a *surplus*: recorded,
    never trained, not counted (see :meth:`_is_surplus` and :mod:`budgetnet.studies.study`).
    With ``n_trials=None`` (a timeout only) every ``ask`` creates a trial.
    """

    def __init__(self, study: optuna.Study, storage, settings: Settings, progress: bool, n_trials: int | None):
        self.study, self.settings, self.progress = study, settings, progress
        self.n_trials = n_trials
        self.arms = ("search", "control") if settings.control else ("search",)
        self.per_arm = None if n_trials is None else n_trials // len(self.arms)
        self.label = storage_label(storage)
        self.heartbeat = heartbeat_interval(storage)
        self.worker = f"{socket.gethostname()}:{os.getpid()}"
        self.bar = None
        self._interruptible = self._interrupted = False

    def run(self) -> None:
        previous_hook = threading.excepthook

        def quiet_heartbeat(args):  # the main thread reports a lost storage; one message is enough
            if storage_fault(args.exc_value) is None:
                previous_hook(args)

        threading.excepthook = quiet_heartbeat
        try:
            if self.heartbeat is None:
                self._recover_dead_workers()
            with progress_bar(self.study, enabled=self.progress) as self.bar, _quiet_optuna(self.bar.active):
                with self._deferred_interrupts():
                    self._loop()
                    if self._interrupted:
                        raise KeyboardInterrupt
        except Exception as error:
            cause = storage_fault(error)
            if cause is None:
                raise
            raise storage_lost(self.label, cause) from None
        finally:
            threading.excepthook = previous_hook

    @contextlib.contextmanager
    def _deferred_interrupts(self):
        """Ctrl-C (and SIGTERM where a Python handler takes it, as the command line's) stops a
        trial while it trains or the worker while it waits; one that comes while Optuna
        writes to the storage (a tell, a claim) is held until that write is done, so that it
        never leaves a half-told trial or an Optuna traceback. Main thread only."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def handler(signum, frame):
            if self._interruptible:
                raise KeyboardInterrupt
            self._interrupted = True

        signals = [signal.SIGINT] + [signal.SIGTERM] * callable(signal.getsignal(signal.SIGTERM))
        previous = {number: signal.signal(number, handler) for number in signals}
        try:
            yield
        finally:
            for number, old in previous.items():
                signal.signal(number, old)

    def _interruptibly(self, call):
        """``call()`` where Ctrl-C may stop it (see :meth:`_deferred_interrupts`)."""
        self._interruptible = True
        try:
            if self._interrupted:
                raise KeyboardInterrupt
            return call()
        finally:
            self._interruptible = False

    def _recover_dead_workers(self) -> None:
        """On a storage without heartbeats (a journal file), queue again the RUNNING trials of
        this host's workers that are gone (killed, or stopped by a full disk)."""
        dead = sorted({
            worker for trial in self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
            if (worker := TrialRecord.read(trial).worker) and process_alive(worker) is False
        })  # fmt: skip
        numbers = recover_trials(self.study, workers=dead) if dead else []
        if numbers:
            warnings.warn(
                f"study {self.study.study_name!r}: trials {', '.join(map(str, numbers))} of workers that are gone "
                f"({', '.join(dead)}) queued again"
            )

    def _loop(self) -> None:
        while not self._time_is_up() and not self._interrupted:
            step = self._next_step()
            if step == "done":
                break
            if step == "wait":  # other workers run the last trials; one may die and come back as a retry
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                    optuna.storages.fail_stale_trials(self.study)
                self.bar.refresh_from(self.study)
                self._interruptibly(lambda: time.sleep(min(self.heartbeat, max(self._remaining(), 0.01))))
                continue
            self.study.optimize(
                self._objective, n_trials=1, catch=(_TrialEnded,), callbacks=[self._after_trial], gc_after_trial=False
            )

    def _next_step(self) -> str:
        """``"run"`` (a slot is queued for this worker's next ``ask``; one is queued here when
        an arm still needs a trial and none waits), ``"wait"`` (every missing trial is running
        elsewhere, on a storage with heartbeats) or ``"done"``.

        Slots are queued one at a time, so a study holds at most about one queued slot per
        worker: ``n_trials=10**9`` costs nothing up front, and a later, smaller ``n_trials``
        leaves nothing to turn into surplus records.
        """
        if self.n_trials is None:
            return "run"
        finished, running, waiting = _tally(self.study)
        if any(arm == "confirm" or finished[arm] + running[arm] < self.per_arm for arm in waiting):
            return "run"
        for arm in self.arms:  # the search's slots first: the control's trials never feed its sampler
            if finished[arm] + running[arm] < self.per_arm:
                attrs = TrialRecord(arm="control").to_dict() if arm == "control" else None
                self.study.enqueue_trial({}, user_attrs=attrs)
                return "run"
        if all(finished[arm] >= self.per_arm for arm in self.arms):
            return "done"
        return "wait" if self.heartbeat else "done"

    def _after_trial(self, study: optuna.Study, frozen) -> None:
        self.bar.refresh_from(study)
        if TrialRecord.read(frozen).status == "surplus":  # lost a race for the last slots: let the other go first
            time.sleep(random.uniform(0.0, 0.5))

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
            return self._interruptibly(lambda: runner.run_job(trial, inherited.confirm))
        if self.n_trials is not None and self._is_surplus(trial):
            TrialRecord.write(trial, status="surplus", error=f"the study already holds {self.per_arm} trials")
            raise _TrialEnded("surplus")
        try:
            values = self._interruptibly(Objective(self.settings, self.study, trial, self.bar))
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
            if storage_fault(error) is not None:
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
        """True when this trial's arm already holds ``n_trials`` finished trials with those
        running elsewhere.

        Exact with any number of workers: each trial first claims itself (writes its
        ``worker``), then counts the finished trials of its arm and the *other* claimed running
        ones. Of two trials that start at once, the one that reads last sees the other's claim,
        so the arm never ends with more than ``n_trials`` finished trials; when both see each
        other both step back (surplus records) and the loop queues a slot again.
        """
        arm = TrialRecord.read(trial).arm or "search"
        finished, running, _ = _tally(self.study, exclude=trial.number)
        return finished[arm] + running[arm] >= self.per_arm


def _tally(study: optuna.Study, exclude: int | None = None) -> tuple[Counter, Counter, list[str]]:
    """Per arm: finished trials, claimed running trials (a surplus one excluded), and the arms
    of the queued slots (oldest first)."""
    finished, running, waiting = Counter(), Counter(), []
    for trial in study.get_trials(deepcopy=False):
        if trial.number == exclude:
            continue
        if is_finished(trial):
            finished[trial_arm(trial)] += 1
        elif trial.state == TrialState.RUNNING:
            record = TrialRecord.read(trial)
            if record.worker is not None and record.status != "surplus":
                running[trial_arm(trial)] += 1
        elif trial.state == TrialState.WAITING:
            waiting.append(trial_arm(trial))
    return finished, running, waiting


def _requeue(study: optuna.Study, trial: optuna.Trial, reason: str) -> None:
    """Record why ``trial`` stops before it finished and queue its parameters again."""
    TrialRecord.write(trial, status="interrupted", error=reason)
    arm = TrialRecord.read(trial).arm
    study.enqueue_trial(trial.params, user_attrs=TrialRecord(retry_of=trial.number, arm=arm).to_dict())


def storage_fault(error: BaseException) -> BaseException | None:
    """The database or file error behind ``error`` (Optuna wraps it, and may raise another
    error while it handles it), or ``None`` when the storage is not to blame.

    Example:
        >>> try:
        ...     try:
        ...         raise OSError(28, "No space left on device")
        ...     except OSError:
        ...         raise RuntimeError("while writing")
        ... except RuntimeError as error:
        ...     print(storage_fault(error))
        [Errno 28] No space left on device
    """
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


@contextlib.contextmanager
def _quiet_optuna(active: bool):
    """Optuna's logging during a search: its per-trial INFO lines would break a progress bar
    on screen (warnings only then, :func:`~budgetnet.studies.progress.quiet_optuna`), and its
    warning with a traceback for each trial that failed is dropped when the trial record
    already says why (:class:`_TrialEnded`, Ctrl-C)."""
    hide = _HideEndedTrials()
    handlers = logging.getLogger("optuna").handlers + logging.getLogger().handlers
    for handler in handlers:
        handler.addFilter(hide)
    try:
        with quiet_optuna(active):
            yield
    finally:
        for handler in handlers:
            handler.removeFilter(hide)


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
