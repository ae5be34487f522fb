"""Confirmation: retrain a search's best candidates and its baseline on several seeds, held-out.

A search ranks candidates by one short run each on a small validation split; that ranking
is noisy (seeds move it, the split may sit at the ceiling). :func:`confirm` retrains the
top ``top`` distinct architectures of the search (and the best of its random control, when
there is one) and the baseline with the search's recipe on ``seeds`` seeds each, scores
each run on held-out data, and reports per model the mean, a 95 % confidence interval
(t distribution over the runs) and the paired difference to the baseline with its
interval, ending with one verdict line in words.

Held-out data (:func:`held_out`): where the whole dataset is small (fewer than
:data:`KFOLD_MAX` images, as digits), k-fold over the whole set: each seed trains on all
folds but one and is scored on that one, for every fold, so every image is held out once per
seed and a run is one (seed, fold); otherwise each seed trains on the training split and
is scored on the test split. A paired difference compares a candidate with the baseline
on the same (seed, fold).

Every retraining is an Optuna trial of the study itself, queued with its job in the trial
record (``confirm``) and claimed by Optuna's ``ask`` (atomic on every storage), so several
workers share the work, each retraining runs once, and a killed worker's retraining is
retried (heartbeats) or queued again by the next :func:`confirm`. These trials never count
as search trials (:func:`budgetnet.studies.results.arm`). The report is stored on the
study (``confirmation`` of :class:`~budgetnet.studies.record.StudyRecord`).

Example:
    >>> round(mean_interval([0.90, 0.92, 0.94])["mean"], 4)
    0.92
"""

from __future__ import annotations

import dataclasses
import math
import os
import socket
import sys
import time

import optuna
from optuna.trial import TrialState

from budgetnet.checks import is_int
from budgetnet.errors import ConfirmError
from budgetnet.studies.record import StudyRecord, TrialRecord
from budgetnet.studies.results import arm, completed
from budgetnet.studies.objective import latency_ms
from budgetnet.studies.progress import quiet_optuna
from budgetnet.studies.settings import LATENCY_REPEATS
from budgetnet.studies.verdict import format_confirmation, verdict

__all__ = ["confirm", "format_confirmation", "held_out", "fold_data", "mean_interval", "paired_difference", "verdict"]

#: Whole datasets with fewer images than this are scored by k-fold over the whole set.
KFOLD_MAX = 10_000
#: Folds of that k-fold.
DEFAULT_FOLDS = 3
DEFAULT_TOP = 3
DEFAULT_SEEDS = 3
LEVEL = 0.95


# -- statistics ----------------------------------------------------------------------------------
def mean_interval(values, level: float = LEVEL) -> dict:
    """Mean and two-sided ``level`` confidence interval of ``values`` (t distribution, n - 1
    degrees of freedom); ``low`` / ``high`` are ``None`` with fewer than two values.

    Example:
        >>> result = mean_interval([1.0, 2.0, 3.0])
        >>> result["mean"], round(result["low"], 4), round(result["high"], 4)
        (2.0, -0.4841, 4.4841)
    """
    from scipy.stats import t

    values = [float(value) for value in values]
    n = len(values)
    if n == 0:
        return {"n": 0, "mean": None, "sd": None, "low": None, "high": None}
    mean = sum(values) / n
    if n < 2:
        return {"n": 1, "mean": mean, "sd": None, "low": None, "high": None}
    sd = math.sqrt(sum((value - mean) ** 2 for value in values) / (n - 1))
    half = float(t.ppf(0.5 + level / 2, n - 1)) * sd / math.sqrt(n)
    return {"n": n, "mean": mean, "sd": sd, "low": mean - half, "high": mean + half}


def paired_difference(values, baseline, level: float = LEVEL) -> dict:
    """:func:`mean_interval` of ``values[i] - baseline[i]`` (runs paired by seed and fold).

    Example:
        >>> paired_difference([0.91, 0.93], [0.90, 0.90])["mean"]
        0.020000000000000018
    """
    if len(values) != len(baseline):
        raise ConfirmError(f"paired runs: {len(values)} values against {len(baseline)} baseline runs; expected as many")
    return mean_interval([a - b for a, b in zip(values, baseline)], level)


# -- what is retrained, and on what ----------------------------------------------------------------
def check_options(top, seeds, folds=None) -> None:
    """Check :func:`confirm`'s ``top``, ``seeds`` and ``folds``.

    Example:
        >>> check_options(0, 3)
        Traceback (most recent call last):
        ...
        budgetnet.errors.ConfirmError: confirm top=0 is invalid; expected a whole number >= 1 (candidates to retrain)
    """
    if not is_int(top, 1):
        raise ConfirmError(f"confirm top={top!r} is invalid; expected a whole number >= 1 (candidates to retrain)")
    if not is_int(seeds, 1):
        raise ConfirmError(f"confirm seeds={seeds!r} is invalid; expected a whole number >= 1 (seeds per model)")
    if folds is not None and not is_int(folds, 2):
        raise ConfirmError(f"confirm folds={folds!r} is invalid; expected a whole number >= 2 (or None: automatic)")


def held_out(data, seeds: int, folds: int | None = None) -> dict:
    """How the runs are scored: ``kind`` (``"kfold"`` or ``"test"``), ``folds``, ``units``
    (the ``[seed, fold]`` of each run), ``images`` (held out per seed) and ``text``.

    ``folds=None`` chooses: k-fold (:data:`DEFAULT_FOLDS`) below :data:`KFOLD_MAX` images in
    all, else the test split.

    Example:
        >>> from budgetnet.training.data import load_data
        >>> scheme = held_out(load_data("digits", image_size=8), seeds=2)
        >>> scheme["kind"], scheme["units"][:3], scheme["images"]
        ('kfold', [[0, 0], [0, 1], [0, 2]], 1797)
    """
    total = len(data.train) + len(data.val) + len(data.test)
    if folds is None and total >= KFOLD_MAX:
        units = [[seed, None] for seed in range(seeds)]
        if len(units) < 2:
            raise ConfirmError(
                f"confirm seeds={seeds} is too few with the test split; expected >= 2 seeds for an interval"
            )
        text = f"the test split ({len(data.test)} images), {seeds} seeds"
        return {"kind": "test", "folds": None, "units": units, "images": len(data.test), "text": text}
    folds = folds or DEFAULT_FOLDS
    units = [[seed, fold] for seed in range(seeds) for fold in range(folds)]
    text = (f"{folds}-fold over the whole set ({total} images: train, val and test; each image held out once "
            f"per seed), {seeds} seed{'s' if seeds > 1 else ''}: {len(units)} runs per model")  # fmt: skip
    return {"kind": "kfold", "folds": folds, "units": units, "images": total, "text": text}


def fold_data(data, fold: int, folds: int):
    """``data`` with training on every fold but ``fold`` (stratified, fixed) and ``fold`` held
    out as both the validation and the test split.

    Example:
        >>> from budgetnet.training.data import load_data
        >>> part = fold_data(load_data("digits", image_size=8), 0, 5)
        >>> len(part.train), len(part.test)
        (1437, 360)
    """
    import torch

    from budgetnet.training.data import Split

    images = torch.cat([data.train.images, data.val.images, data.test.images])
    labels = torch.cat([data.train.labels, data.val.labels, data.test.labels])
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(0))
    order = order[torch.sort(labels[order], stable=True).indices]  # by class: dealing stratifies
    position = torch.empty_like(order)
    position[order] = torch.arange(len(order))
    held = position % folds == fold
    test = Split(images[held], labels[held])
    return dataclasses.replace(data, train=Split(images[~held], labels[~held]), val=test, test=test)


def candidates(study: optuna.Study, top: int) -> list[dict]:
    """The models a confirmation retrains besides the baseline: the ``top`` most accurate
    distinct architectures of the search, then the best of its random control (if any and
    not already there). Each: ``model`` (a label), ``trial``, ``arm``, ``arch``, ``notation``,
    ``macs``, ``accuracy`` (the search's), ``weights``, ``seed``, ``epochs``."""
    chosen, seen = [], set()
    for of, count in (("search", top), ("control", 1)):
        kept = 0
        for trial in completed(study, of=of):
            record = TrialRecord.read(trial)
            if kept == count:
                break
            if record.arch is None or record.fingerprint in seen:
                continue
            seen.add(record.fingerprint)
            kept += 1
            label = f"trial {trial.number}" + (" (random)" if of == "control" else "")
            chosen.append({"model": label, "trial": trial.number, "arm": of, "arch": record.arch,
                           "notation": record.notation, "macs": record.macs, "accuracy": trial.values[0],
                           "weights": record.weights, "seed": record.seed, "epochs": record.epochs})  # fmt: skip
    return chosen


# -- the confirmation -----------------------------------------------------------------------------
def confirm(
    study: optuna.Study,
    *,
    top: int = DEFAULT_TOP,
    seeds: int = DEFAULT_SEEDS,
    folds: int | None = None,
    data=None,
    device: str = "auto",
    progress: bool = True,
    verbose: bool = False,
) -> dict:
    """Retrain the search's best candidates and its baseline on several seeds, held out.

    Args:
        study: a study written by :func:`budgetnet.search` (its retrainings are queued in it).
        top: distinct candidates to retrain (the best of a random control comes on top).
        seeds: seeds per model.
        folds: k of the k-fold; ``None``: k-fold (3) for a small dataset, else the test
            split (see :func:`held_out`).
        data: the search's :class:`~budgetnet.training.data.Dataset` (default: loaded again
            from the study's settings).
        device: where to train.
        progress: a progress bar on a terminal (a line per retraining otherwise).
        verbose: keep Optuna's own ``[I ...]`` line per retraining (hidden by default).

    Returns:
        The report (also stored on the study): ``held_out``, ``models`` (per model ``runs``,
        ``mean``, ``interval``, ``vs_baseline``), ``verdict``, ``complete``, ``seconds``.

    Raises:
        ConfirmError: bad options, a study with no completed trial or no baseline.

    Example:
        >>> import budgetnet, optuna
        >>> data = budgetnet.load_data("digits", image_size=8, limit=60)
        >>> study = budgetnet.search("small", data, n_trials=2, epochs=1, seed=0, progress=False,
        ...                          storage=optuna.storages.InMemoryStorage())
        >>> report = confirm(study, top=1, seeds=1, folds=2, data=data, progress=False)
        >>> [model["model"] for model in report["models"]][0], len(report["models"][0]["runs"])
        ('baseline', 2)
    """
    check_options(top, seeds, folds)
    started = time.perf_counter()
    record = StudyRecord.read(study)
    baseline = record.setting("baseline")
    if not baseline or "arch" not in baseline:
        raise ConfirmError(f"study {study.study_name!r} has no baseline (baseline=None); expected a study "
                           "written by budgetnet search, whose settings hold the baseline")  # fmt: skip
    chosen = candidates(study, top)
    if not chosen:
        raise ConfirmError(f"study {study.study_name!r} has no completed trial inside the budget (completed=0); "
                           "expected at least one: run or resume the search first")  # fmt: skip
    data = search_data(record) if data is None else data
    scheme = held_out(data, seeds, folds)
    models = [{"model": "baseline", "trial": None, "arm": "baseline", "arch": baseline["arch"],
               "notation": baseline["notation"], "macs": baseline["macs"]}] + chosen  # fmt: skip
    jobs = [_job(model, seed, fold, scheme) for model in models for seed, fold in scheme["units"]]
    _queue_missing(study, jobs)
    runner = Runner(study, data, search_recipe(record), record.setting("norm"), device)
    with quiet_optuna(not verbose):
        runner.run_queued(progress, total=len(jobs))
    report = summarize_confirmation(study, models, scheme)
    report["seconds"] = time.perf_counter() - started
    StudyRecord.write(study, confirmation=report)
    return report


def search_data(record: StudyRecord):
    """The search's dataset, loaded again from the study's settings (name, input size, training images)."""
    from budgetnet.training.data import load_data

    name = record.setting("data", "name")
    shape = record.setting("data", "input_shape")
    sizes = record.setting("data", "sizes") or {}
    if not isinstance(name, str) or not shape:
        raise ConfirmError(f"study data={name!r} cannot be loaded again; expected a data spec such as 'digits'")
    data = load_data(name, image_size=shape[-1])
    if sizes.get("train") is not None and len(data.train) > sizes["train"]:
        data = load_data(name, image_size=shape[-1], limit=sizes["train"])
    return data


def search_recipe(record: StudyRecord):
    """The search's training recipe, from the study's settings."""
    from budgetnet.training.recipes import Recipe

    return Recipe(**record.setting("recipe"))


def _job(model: dict, seed: int, fold, scheme: dict) -> dict:
    key = f"{model['model']}|seed{seed}|fold{fold}|{scheme['kind']}{scheme['folds'] or ''}"
    return {"key": key, "model": model["model"], "trial": model["trial"], "arch": model["arch"],
            "notation": model["notation"], "macs": model["macs"], "seed": seed, "fold": fold,
            "folds": scheme["folds"], "kind": scheme["kind"], "weights": model.get("weights"),
            "weights_seed": model.get("seed"), "weights_epochs": model.get("epochs")}  # fmt: skip


def confirm_trials(study: optuna.Study, states=None) -> list:
    """The study's confirmation retrainings (optionally in ``states``)."""
    return [trial for trial in study.get_trials(deepcopy=False, states=states) if arm(trial) == "confirm"]


def _queue_missing(study: optuna.Study, jobs: list[dict]) -> None:
    """Queue every job with no completed, running or queued trial (a resumed confirmation
    queues only what is missing; a lost one is queued again)."""
    taken = {TrialRecord.read(trial).confirm["key"]
             for trial in confirm_trials(study, (TrialState.COMPLETE, TrialState.RUNNING, TrialState.WAITING))}  # fmt: skip
    for job in jobs:
        if job["key"] not in taken:
            study.enqueue_trial({}, user_attrs=TrialRecord(confirm=job).to_dict())
            taken.add(job["key"])


class _NoJob(Exception):
    """The queue emptied between the check and the claim: this trial holds no job."""


class Runner:
    """Claims queued retrainings of ``study`` one at a time (Optuna's ``ask`` inside
    ``optimize``: atomic, with heartbeats on a database storage) and runs them."""

    def __init__(self, study, data, recipe, norm, device):
        self.study, self.data, self.recipe, self.norm, self.device = study, data, recipe, norm, device
        self.worker = f"{socket.gethostname()}:{os.getpid()}"
        self._folds = {}

    def run_queued(self, progress: bool = True, total: int | None = None) -> None:
        """Run queued retrainings until none is queued."""
        from tqdm import tqdm

        done = len(confirm_trials(self.study, (TrialState.COMPLETE,)))
        on_screen = progress and sys.stderr.isatty()
        self.bar = tqdm(total=total, initial=min(done, total or done), unit="run", desc="confirm",
                        disable=not on_screen, dynamic_ncols=True)  # fmt: skip
        self.lines = progress and not on_screen
        try:
            while self._waiting():
                self.study.optimize(self._objective, catch=(_NoJob,), callbacks=[self._after], gc_after_trial=False)
        finally:
            self.bar.close()

    def _waiting(self) -> bool:
        return bool(confirm_trials(self.study, (TrialState.WAITING,)))

    def _after(self, study, frozen) -> None:
        if not self._waiting():
            study.stop()

    def _objective(self, trial: optuna.Trial) -> float:
        job = TrialRecord.read(trial).confirm
        if job is None:
            TrialRecord.write(trial, status="surplus", confirm={"key": None}, error="no confirmation job was queued")
            raise _NoJob
        if self._taken_before(trial.number, job["key"]):  # two processes queued the same job: one runs it
            TrialRecord.write(trial, status="surplus", error=f"retraining {job['key']} is already claimed")
            raise _NoJob
        values = self.run_job(trial, job)
        accuracy = values[0]
        self.bar.update(1)
        if self.lines:
            print(f"confirm: {job['model']} seed {job['seed']}" + ("" if job["fold"] is None else f" fold {job['fold']}")
                  + f": held-out accuracy {accuracy:.4f}", file=sys.stderr, flush=True)  # fmt: skip
        return values

    def _taken_before(self, number: int, key: str) -> bool:
        """True when a lower-numbered trial runs or ran job ``key`` (``ask`` claims the oldest
        queued trial first, so of two copies of a job the first is claimed first)."""
        return any(
            other.number < number and TrialRecord.read(other).confirm["key"] == key
            for other in confirm_trials(self.study, (TrialState.RUNNING, TrialState.COMPLETE))
        )

    def run_job(self, trial, job: dict) -> list[float]:
        """Retrain (or, for the first seed on the test split, reuse kept weights) and score one
        run; its values in the study's objective order (:meth:`values`)."""
        from budgetnet.graph.arch import Arch
        from budgetnet.training.train import evaluate, fit

        start = time.perf_counter()
        TrialRecord.write(trial, worker=self.worker, seed=job["seed"])
        arch = Arch.from_dict(job["arch"])
        model = self._kept_model(arch, job)
        if model is not None:
            accuracy = evaluate(model, self.data, device=self.device)["accuracy"]
            TrialRecord.write(trial, weights=job["weights"])
        elif job["kind"] == "kfold":
            data = self._fold(job["fold"], job["folds"])
            result = fit(arch, data, self.recipe, seed=job["seed"], device=self.device, progress=False, norm=self.norm)
            accuracy = result.val_accuracy  # the held-out fold, scored after the last epoch
            TrialRecord.write(trial, epochs=result.epochs_run, train_seconds=float(result.seconds))
        else:
            result = fit(arch, self.data, self.recipe, seed=job["seed"], device=self.device, progress=False,
                         norm=self.norm)  # fmt: skip
            accuracy = 0.0 if result.diverged else evaluate(result.model, self.data, device=self.device)["accuracy"]
            TrialRecord.write(trial, epochs=result.epochs_run, train_seconds=float(result.seconds))
        TrialRecord.write(trial, status="ok", val_accuracy=float(accuracy), trial_seconds=time.perf_counter() - start)
        return self.values(job, accuracy)

    def values(self, job: dict, accuracy: float) -> list[float]:
        """The held-out accuracy, then the study's other objectives as the model's own costs:
        its Eqn. (1) MACs, or the latency measured for it in the search (the baseline's with
        its runs; measured here where none was), so a multi-objective study takes the run."""
        values = [float(accuracy)]
        for objective in StudyRecord.read(self.study).objectives[1:]:
            values.append(float(job["macs"]) if objective == "macs" else self._latency(job))
        return values

    def _latency(self, job: dict) -> float:
        if job["trial"] is None:
            latency = (StudyRecord.read(self.study).baseline_result or {}).get("latency_ms")
        else:
            latency = TrialRecord.read(self.study.get_trials(deepcopy=False)[job["trial"]]).latency_ms
        if latency is None:
            from budgetnet.graph.arch import Arch

            latency = latency_ms(Arch.from_dict(job["arch"]), self.device, LATENCY_REPEATS["cheap"], self.norm)
        return float(latency)

    def _kept_model(self, arch, job: dict):
        """The search's trained weights, for the first seed on the test split (same data,
        same recipe); ``None`` where they were not kept or do not apply."""
        if job["kind"] != "test" or job["seed"] != 0 or not job.get("weights"):
            return None
        if job.get("weights_epochs") != self.recipe.epochs or not os.path.isfile(job["weights"]):
            return None
        import torch

        from budgetnet.pytorch.builder import build

        model = build(arch, norm=self.norm)
        model.load_state_dict(torch.load(job["weights"], weights_only=True))
        return model

    def _fold(self, fold: int, folds: int):
        if (fold, folds) not in self._folds:
            self._folds[(fold, folds)] = fold_data(self.data, fold, folds)
        return self._folds[(fold, folds)]


# -- the report -----------------------------------------------------------------------------------
def summarize_confirmation(study: optuna.Study, models: list[dict], scheme: dict) -> dict:
    """The report of the completed retrainings of ``models`` (see :func:`confirm`)."""
    results = {}
    for trial in confirm_trials(study, (TrialState.COMPLETE,)):
        job = TrialRecord.read(trial).confirm
        results.setdefault(job["key"], trial.values[0])
    base_macs = models[0]["macs"]
    rows, base_runs = [], None
    for model in models:
        keys = [_job(model, seed, fold, scheme)["key"] for seed, fold in scheme["units"]]
        runs = [results.get(key) for key in keys]
        row = {key: model.get(key) for key in ("model", "trial", "arm", "notation", "macs", "accuracy")}
        row["search_accuracy"] = row.pop("accuracy")
        row["ratio"] = model["macs"] / base_macs if base_macs else None
        row["runs"] = runs
        done = [value for value in runs if value is not None]
        row.update(interval=mean_interval(done), complete=len(done) == len(runs))
        row["mean"] = row["interval"]["mean"]
        if base_runs is None:
            base_runs, row["vs_baseline"] = runs, None
        else:
            pairs = [(a, b) for a, b in zip(runs, base_runs) if a is not None and b is not None]
            row["vs_baseline"] = paired_difference([a for a, _ in pairs], [b for _, b in pairs])
        rows.append(row)
    report = {"held_out": {key: scheme[key] for key in ("kind", "folds", "images", "text")},
              "units": scheme["units"], "level": LEVEL, "models": rows,
              "complete": all(row["complete"] for row in rows)}  # fmt: skip
    report["control"] = _control_difference(rows)
    report["verdict"] = verdict(rows)
    return report


def _control_difference(rows: list[dict]) -> dict | None:
    search = next((row for row in rows if row["arm"] == "search"), None)
    control = next((row for row in rows if row["arm"] == "control"), None)
    if search is None or control is None:
        return None
    pairs = [(a, b) for a, b in zip(search["runs"], control["runs"]) if a is not None and b is not None]
    return {"search": search["model"], "control": control["model"],
            "difference": paired_difference([a for a, _ in pairs], [b for _, b in pairs])}  # fmt: skip
