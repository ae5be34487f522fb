"""One trial of a search: sample an architecture, check the budget, train, measure.

:class:`Objective` computes a trial's values (in objective order) and records the trial;
:func:`train_baseline_runs` trains the space's baseline with the same recipe for comparison.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Sequence

import optuna
from optuna.trial import TrialState

from budgetnet.cost.complexity import complexity
from budgetnet.files import save_torch
from budgetnet.studies.record import TrialRecord
from budgetnet.studies.settings import LATENCY_REPEATS, Settings


class Interrupted(Exception):
    """The trial stopped before it finished (timeout reached); it is queued again."""


#: What a repeated architecture takes over from the trial that trained it first.
_REUSED = ("status", "val_accuracy", "latency_ms", "epochs", "train_seconds", "device", "weights")


class Objective:
    """Sample, check the budget, train, measure: the values of one trial, in objective order.

    ``progress`` (a :class:`~budgetnet.studies.progress.SearchProgress`) is told each epoch.
    """

    def __init__(self, settings: Settings, study: optuna.Study, trial: optuna.Trial, progress=None):
        self.settings, self.study, self.trial, self.progress = settings, study, trial, progress

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
        latency = latency_ms(arch, self.settings.device, LATENCY_REPEATS["objective"], self.settings.norm)
        TrialRecord.write(self.trial, latency_ms=latency)
        return latency

    def _duplicate_of(self, fingerprint: str):
        for other in self.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
            record = TrialRecord.read(other)
            if record.fingerprint == fingerprint and record.status in ("ok", "diverged"):
                return other
        return None

    def _train(self, arch, macs: int) -> list[float]:
        from budgetnet.training.train import fit

        settings, trial = self.settings, self.trial
        prune = len(settings.objectives) == 1
        epochs = settings.recipe.epochs

        def callback(epoch: int, metrics: dict):
            TrialRecord.write(trial, epochs=epoch)
            if self.progress is not None:
                self.progress.epoch(self.study, trial.number, epoch, epochs, float(metrics["val_accuracy"]))
            last = epoch >= epochs
            if prune:
                trial.report(float(metrics["val_accuracy"]), step=epoch)
                if not last and trial.should_prune():
                    TrialRecord.write(trial, status="pruned", val_accuracy=float(metrics["val_accuracy"]))
                    raise optuna.TrialPruned(f"pruned after epoch {epoch}")
            if not last and settings.deadline is not None and time.monotonic() >= settings.deadline:
                raise Interrupted(f"the search's timeout was reached after epoch {epoch} of {epochs}")
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
        latency = latency_ms(result.model, str(result.device), repeats)
        TrialRecord.write(trial, latency_seconds=time.perf_counter() - start, latency_ms=latency)
        return self._values(result.val_accuracy, macs, lambda: latency)


def _save_weights(model, directory: Path, number: int) -> str:
    path = (directory / f"trial{number}.pt").absolute()
    state = {key: value.detach().cpu() for key, value in model.state_dict().items()}
    save_torch(path, state, what="trained weights")  # whole or not at all
    return str(path)


def train_baseline_runs(
    settings: Settings, seeds: Sequence[int], previous: dict | None = None, progress: bool = False
) -> dict:
    """Train the space's baseline with the search's recipe on each of ``seeds`` not already
    among the runs of ``previous`` (a ``baseline_result``); the runs and their mean.
    ``progress`` prints a line on stderr before and after each run (and an epoch bar on a
    terminal).

    Returns:
        ``notation``, ``macs``, ``params``, ``latency_ms`` (of the first run), ``accuracy``
        (the mean over the runs), ``seconds`` (all runs) and ``runs``: one dict per seed with
        ``seed``, ``accuracy``, ``epochs``, ``train_seconds``, ``seconds`` and ``device``.
    """
    from budgetnet.training.train import fit

    runs = list((previous or {}).get("runs", []))
    done = {run["seed"] for run in runs}
    for seed in seeds:
        if seed in done:
            continue
        start = time.perf_counter()
        if progress:
            print(f"baseline: training {settings.space.baseline.notation()} with seed {seed} "
                  f"({settings.recipe.epochs} epochs), for comparison", file=sys.stderr, flush=True)  # fmt: skip
        result = fit(settings.space.baseline, settings.data, settings.recipe, device=settings.device, seed=seed,
                     progress=progress and sys.stderr.isatty(), norm=settings.norm, max_memory=settings.max_memory)  # fmt: skip
        if progress:
            print(f"baseline: validation accuracy {result.val_accuracy:.4f} in {time.perf_counter() - start:.0f} s",
                  file=sys.stderr, flush=True)  # fmt: skip
        run = {
            "seed": seed,
            "accuracy": float(result.val_accuracy),
            "epochs": result.epochs_run,
            "train_seconds": float(result.seconds),
            "device": str(result.device),
        }
        if not runs:
            run["latency_ms"] = latency_ms(result.model, run["device"], LATENCY_REPEATS["cheap"])
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


def latency_ms(model_or_arch, device: str, repeats: int, norm: str | None = None) -> float:
    """Milliseconds per image at batch 1, as a search records it (``norm`` builds an Arch).

    Example:
        >>> import budgetnet
        >>> latency_ms(budgetnet.parse("(3,4) gap", input_shape=(1, 8, 8), num_classes=10), "cpu", 2) > 0
        True
    """
    from budgetnet.cost.latency import measure

    return float(
        measure(model_or_arch, device=device, batch_size=1, repeats=repeats, warmup=3, norm=norm).ms_per_image
    )
