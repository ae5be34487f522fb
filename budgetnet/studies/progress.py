"""What a search shows while it runs.

On a terminal: a tqdm bar over the study's finished trials; its postfix holds the best
accuracy so far and the epoch of the trial in training. Anywhere else (output to a file, a
notebook, CI): one plain line per finished trial on stderr, so a log shows the search
moving. Both read their counts from the study, so every worker of a study shows the same.

Example:
    >>> import io, optuna
    >>> study = optuna.create_study(direction="maximize")
    >>> out = io.StringIO()
    >>> with progress_bar(study, stream=out) as bar:
    ...     study.add_trial(optuna.create_trial(value=0.9, user_attrs={"status": "ok", "macs": 1500, "trial_seconds": 2.0}))
    ...     bar.refresh_from(study)
    >>> print(out.getvalue().strip())
    trial 0: accuracy 0.9000, 1.5K MACs, 2 s [1 finished; best 0.9000, trial 0]
"""

from __future__ import annotations

import contextlib
import sys

import optuna
from optuna.trial import TrialState

from budgetnet.cost.complexity import format_count
from budgetnet.studies.record import StudyRecord, TrialRecord
from budgetnet.studies.results import arm, best_trial, is_feasible, is_finished, trial_counts


class SearchProgress:
    """A bar on a terminal, plain lines elsewhere; ``enabled=False`` shows nothing.

    Call :meth:`refresh_from` when trials change and :meth:`epoch` after each epoch of a trial.
    Trials that had finished before it was made (a resumed search) are summed up in one line,
    not listed.
    """

    def __init__(self, study: optuna.Study, enabled: bool = True, stream=None):
        self._stream = sys.stderr if stream is None else stream
        terminal = enabled and _is_terminal(self._stream)
        self._lines = enabled and not terminal
        record = StudyRecord.read(study)
        self._total = None if record.n_trials is None else record.n_trials * (2 if record.control else 1)
        self._running = None
        from tqdm import tqdm

        self._bar = tqdm(total=self._total, unit="trial", desc="search", disable=not terminal,
                         dynamic_ncols=True, file=self._stream)  # fmt: skip
        self._shown = {trial.number for trial in study.get_trials(deepcopy=False) if is_finished(trial)}
        if self._lines and self._shown:
            self._print(f"resuming: {_of(len(self._shown), self._total)} finished")
        self.refresh_from(study)

    @property
    def active(self) -> bool:
        """True when the bar is on screen (other output would break it)."""
        return not self._bar.disable

    def refresh_from(self, study: optuna.Study) -> None:
        """Show the study's counts: the bar's position, or a line per newly finished trial."""
        if not self.active and not self._lines:
            return
        counts = trial_counts(study, of="all")
        best = best_trial(study)
        best_text = "-" if best is None else f"{best.values[0]:.4f}"
        if self._lines:
            for trial in study.get_trials(deepcopy=False):
                if trial.number not in self._shown and is_finished(trial):
                    self._shown.add(trial.number)
                    where = f"{_of(counts['finished'], self._total)} finished"
                    if best is not None:
                        where += f"; best {best_text}, trial {best.number}"
                    self._print(f"{describe_trial(trial)} [{where}]")
            return
        self._bar.n = counts["finished"]
        postfix = {"best": best_text}
        for key in ("infeasible", "pruned", "failed"):
            if counts[key]:
                postfix[key] = counts[key]
        if self._running:
            postfix["training"] = self._running
        self._bar.set_postfix(postfix, refresh=False)
        self._bar.refresh()

    def epoch(self, study: optuna.Study, number: int, epoch: int, epochs: int, accuracy: float) -> None:
        """Show that trial ``number`` finished ``epoch`` of ``epochs`` (on the bar only)."""
        if self.active:
            self._running = f"trial {number} epoch {epoch}/{epochs} ({accuracy:.3f})"
            self.refresh_from(study)

    def close(self) -> None:
        self._running = None
        self._bar.close()

    def _print(self, text: str) -> None:
        print(text, file=self._stream, flush=True)


def describe_trial(trial: optuna.trial.FrozenTrial) -> str:
    """One finished trial in words, as the plain progress lines show it.

    Example:
        >>> import optuna
        >>> describe_trial(optuna.create_trial(value=0.0, user_attrs={"status": "infeasible", "ratio": 1.31}))  # not in a study: number -1
        'trial -1: over the budget (1.31x the baseline), not trained'
    """
    record = TrialRecord.read(trial)
    name = f"trial {trial.number}" + (" (random control)" if arm(trial) == "control" else "")
    if trial.state == TrialState.FAIL:
        return f"{name}: failed: {(record.error or 'unknown error')[:200]}"
    if trial.state == TrialState.PRUNED:
        accuracy = "" if record.val_accuracy is None else f" (accuracy {record.val_accuracy:.4f})"
        return f"{name}: pruned after epoch {record.epochs}{accuracy}"
    if not is_feasible(trial):
        ratio = record.ratio
        return f"{name}: over the budget" + ("" if ratio is None else f" ({ratio:.2f}x the baseline)") + ", not trained"
    text = f"{name}: accuracy {trial.values[0]:.4f}"
    if record.macs is not None:
        text += f", {format_count(record.macs)} MACs"
    if record.duplicate_of is not None:
        return text + f" (repeats trial {record.duplicate_of}; not trained again)"
    if record.trial_seconds is not None:
        text += f", {record.trial_seconds:.0f} s"
    return text


@contextlib.contextmanager
def progress_bar(study: optuna.Study, enabled: bool = True, stream=None):
    """A :class:`SearchProgress` that is closed on exit.

    Example:
        >>> import optuna
        >>> study = optuna.create_study()
        >>> with progress_bar(study, enabled=False) as bar:
        ...     bar.refresh_from(study)
        >>> bar.active
        False
    """
    bar = SearchProgress(study, enabled, stream)
    try:
        yield bar
    finally:
        bar.close()


@contextlib.contextmanager
def quiet_optuna(active: bool = True):
    """Inside the block, Optuna logs warnings only (no ``[I ...]`` line per trial) when ``active``.

    Example:
        >>> import optuna
        >>> with quiet_optuna():
        ...     optuna.logging.get_verbosity() == optuna.logging.WARNING
        True
    """
    level = optuna.logging.get_verbosity()
    if active:
        optuna.logging.set_verbosity(max(level, optuna.logging.WARNING))
    try:
        yield
    finally:
        optuna.logging.set_verbosity(level)


def _of(count: int, total: int | None) -> str:
    return str(count) if total is None else f"{count}/{total}"


def _is_terminal(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
