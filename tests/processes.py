"""Helpers for tests that run `budgetnet search` in other processes and watch the study."""

from __future__ import annotations

import sys
import time

import optuna
import pytest
from optuna.trial import TrialState

#: Options that make a CLI search quick: few images, no baseline, no bar, on the CPU.
QUICK = ["--limit", "60", "--no-baseline", "--no-progress", "--no-confirm", "--device", "cpu"]


def budgetnet_command(*arguments: str) -> list[str]:
    """``python -m budgetnet search ARGUMENTS``."""
    return [sys.executable, "-m", "budgetnet", "search", *arguments]


def wait_for(predicate, seconds: float, what: str):
    """Poll ``predicate`` every 0.2 s until it returns something true; fail after ``seconds``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    pytest.fail(f"timed out after {seconds} s waiting for {what}")


def _progress(storage, study_name: str):
    """``(completed trials, the first running trial past its first epoch or None)``, or None
    before the study exists."""
    try:
        study = optuna.load_study(study_name=study_name, storage=storage)
    except KeyError:
        return None
    done = study.get_trials(states=(TrialState.COMPLETE,))
    running = [t for t in study.get_trials(states=(TrialState.RUNNING,)) if t.intermediate_values]
    return done, running[0] if running else None


def mid_trial(storage, study_name: str):
    """A predicate: ``(completed trials, a running trial past its first epoch)`` or None."""

    def check():
        progress = _progress(storage, study_name)
        return progress if progress and progress[0] and progress[1] else None

    return check


def in_training(storage, study_name: str):
    """A predicate: a running trial past its first epoch, or None."""
    return lambda: (_progress(storage, study_name) or (None, None))[1]
