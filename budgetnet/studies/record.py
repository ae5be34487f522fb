"""What a search keeps in Optuna's user attributes, and the one place that names the keys.

A search writes a :class:`TrialRecord` on each trial (the candidate, its cost and how its
training went) and a :class:`StudyRecord` on the study (the settings it was started with,
``n_trials``, the baseline's result). The report, the plots and ``budgetnet export`` read
them back with :meth:`TrialRecord.read` / :meth:`StudyRecord.read`; no other module spells
an attribute key. Both are plain JSON in the storage, so ``optuna-dashboard`` shows them.

Example:
    >>> import optuna
    >>> study = optuna.create_study(direction="maximize")
    >>> trial = study.ask()
    >>> TrialRecord.write(trial, status="ok", macs=1000)
    >>> study.tell(trial, 0.9)
    FrozenTrial(...)
    >>> record = TrialRecord.read(study.trials[0])
    >>> record.status, record.macs, record.epochs
    ('ok', 1000, None)
"""

from __future__ import annotations

import dataclasses
from typing import Any, Optional

from budgetnet.errors import SearchError

#: What ``status`` says about a trial (the Optuna state says COMPLETE, PRUNED or FAIL).
STATUSES = {
    "ok": "trained",
    "diverged": "trained, the loss diverged",
    "infeasible": "over the budget, never trained",
    "pruned": "stopped early by the pruner",
    "error": "an error inside the trial (counts as finished)",
    "interrupted": "stopped by the timeout, Ctrl-C or a recovery; queued again",
    "surplus": "started when the study already held n_trials; never trained, not counted",
}


@dataclasses.dataclass
class TrialRecord:
    """One trial's user attributes (``None``: not written).

    Attributes:
        arch: the candidate as :meth:`budgetnet.Arch.to_dict`.
        notation: the candidate in the paper's notation.
        fingerprint: :meth:`budgetnet.Arch.fingerprint`; repeats reuse the first result.
        macs: Eqn. (1) multiply-adds per image.
        params: trainable parameters.
        ratio: ``macs`` over the baseline's.
        norm: ``None`` or ``"batch"``.
        status: a key of :data:`STATUSES`.
        val_accuracy: validation accuracy at the end of training (or when pruned).
        latency_ms: measured milliseconds per image, batch 1.
        epochs: epochs trained.
        train_seconds: training time reported by :func:`budgetnet.training.train.fit`.
        fit_seconds: wall time inside ``fit`` (pruned and interrupted trials too).
        latency_seconds: wall time of the latency measurement.
        trial_seconds: wall time of the whole trial.
        device: where it trained.
        seed: the seed it trained with.
        weights: path of the kept weights (``keep_weights``).
        duplicate_of: the trial whose result a repeated architecture reuses.
        retry_of: the trial this one runs again (stopped early, or lost with its worker).
        worker: ``host:pid`` of the process that ran it.
        error: the error of a failed or interrupted trial.
        arm: ``"control"`` for a trial of ``--control random`` (``None``: the search's own).
        confirm: a confirmation retraining's job (``model``, ``trial``, ``arch``, ``notation``,
            ``macs``, ``seed``, ``fold``, ``folds``, ``key``); see :mod:`budgetnet.studies.confirm`.
            Such a trial's value is the held-out accuracy; it is not a search trial.
    """

    arch: Optional[dict] = None
    notation: Optional[str] = None
    fingerprint: Optional[str] = None
    macs: Optional[int] = None
    params: Optional[int] = None
    ratio: Optional[float] = None
    norm: Optional[str] = None
    status: Optional[str] = None
    val_accuracy: Optional[float] = None
    latency_ms: Optional[float] = None
    epochs: Optional[int] = None
    train_seconds: Optional[float] = None
    fit_seconds: Optional[float] = None
    latency_seconds: Optional[float] = None
    trial_seconds: Optional[float] = None
    device: Optional[str] = None
    seed: Optional[int] = None
    weights: Optional[str] = None
    duplicate_of: Optional[int] = None
    retry_of: Optional[int] = None
    worker: Optional[str] = None
    error: Optional[str] = None
    arm: Optional[str] = None
    confirm: Optional[dict] = None

    @classmethod
    def read(cls, trial) -> "TrialRecord":
        """The record of an Optuna trial (a ``FrozenTrial`` or a running ``Trial``); keys it
        does not know are ignored."""
        return cls(**{key: value for key, value in trial.user_attrs.items() if key in _TRIAL_KEYS})

    @staticmethod
    def write(trial, **fields: Any) -> None:
        """Set ``fields`` on a running Optuna trial (one user attribute each).

        Raises:
            SearchError: a field that is not one of this record's.

        Example:
            >>> import optuna
            >>> TrialRecord.write(optuna.create_study().ask(), accuracy=0.9)
            Traceback (most recent call last):
            ...
            budgetnet.errors.SearchError: trial record field 'accuracy' is unknown; expected one of arch, notation, fingerprint, macs, params, ratio, norm, status, val_accuracy, latency_ms, epochs, train_seconds, fit_seconds, latency_seconds, trial_seconds, device, seed, weights, duplicate_of, retry_of, worker, error, arm, confirm
        """
        for key, value in fields.items():
            if key not in _TRIAL_KEYS:
                raise SearchError(f"trial record field {key!r} is unknown; expected one of {', '.join(_TRIAL_KEYS)}")
            trial.set_user_attr(key, value)

    def get(self, key: str):
        """A field by name (``None`` when not written)."""
        return getattr(self, key)

    def to_dict(self) -> dict:
        """The fields that were written."""
        return {key: value for key, value in dataclasses.asdict(self).items() if value is not None}


_TRIAL_KEYS = tuple(field.name for field in dataclasses.fields(TrialRecord))


@dataclasses.dataclass
class StudyRecord:
    """A study's user attributes.

    Attributes:
        settings: what the search was started with (space, objectives, data, recipe, norm,
            budget, baseline); a resumed search must match it. Its ``preprocess`` is
            :meth:`budgetnet.training.data.Dataset.preprocessing` (see :attr:`preprocess`).
        n_trials: the number of finished trials asked for last.
        ready: set once the creator queued the first slots.
        baseline_result: the baseline trained with the search's recipe, on one seed or
            several (see :func:`budgetnet.studies.objective.train_baseline_runs`).
        control: ``"random"`` when ``--control random`` runs beside the search.
        confirmation: the last confirmation's report (:func:`budgetnet.studies.confirm.confirm`).
    """

    settings: Optional[dict] = None
    n_trials: Optional[int] = None
    ready: Optional[bool] = None
    baseline_result: Optional[dict] = None
    control: Optional[str] = None
    confirmation: Optional[dict] = None

    @classmethod
    def read(cls, study) -> "StudyRecord":
        """The record of an Optuna study.

        Example:
            >>> import optuna
            >>> StudyRecord.read(optuna.create_study()).objectives
            ['accuracy']
        """
        attrs = study.user_attrs
        return cls(**{field: attrs.get(key) for field, key in _STUDY_KEYS.items()})

    @staticmethod
    def write(study, **fields: Any) -> None:
        """Set ``fields`` on an Optuna study.

        Raises:
            SearchError: a field that is not one of this record's.
        """
        for field, value in fields.items():
            if field not in _STUDY_KEYS:
                raise SearchError(f"study record field {field!r} is unknown; expected one of {', '.join(_STUDY_KEYS)}")
            study.set_user_attr(_STUDY_KEYS[field], value)

    def setting(self, *path: str, default=None):
        """A value inside :attr:`settings`, e.g. ``setting("baseline", "macs")``."""
        value = self.settings or {}
        for key in path:
            if not isinstance(value, dict) or key not in value:
                return default
            value = value[key]
        return value

    @property
    def preprocess(self):
        """How the search's data turned raw images into network inputs (``None`` for a study
        made before budgetnet recorded it, or not by a search)."""
        return self.setting("preprocess")

    @property
    def objectives(self) -> list[str]:
        """The search's objectives (accuracy alone when the study was not made by a search)."""
        return self.setting("objectives", default=["accuracy"])


#: Study record field -> user attribute (``settings`` is stored as ``"budgetnet"``).
_STUDY_KEYS = {
    "settings": "budgetnet",
    "n_trials": "n_trials",
    "ready": "ready",
    "baseline_result": "baseline_result",
    "control": "control",
    "confirmation": "confirmation",
}
