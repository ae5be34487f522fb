"""Several workers on one study in a real PostgreSQL server (started by tests/conftest.py):
an exact trial count with no duplicate or lost trial, and a worker killed mid-trial."""

from __future__ import annotations

import signal
import subprocess

import optuna
import pytest
from optuna.trial import TrialState
from processes import QUICK, budgetnet_command, in_training, mid_trial, wait_for

from budgetnet.studies.journal import process_alive
from budgetnet.studies.record import TrialRecord
from budgetnet.studies.database import RetryCallback
from budgetnet.studies.study import counted_trials

EPOCHS = 40


def test_three_workers_hold_exactly_n_trials(postgres_url, tmp_path):
    result = subprocess.run(
        budgetnet_command("--workers", "3", "--trials", "9", "--epochs", "2", "--storage", postgres_url,
                          "--study", "three", "--json", *QUICK),  # fmt: skip
        capture_output=True, text=True, timeout=400, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    study = optuna.load_study(study_name="three", storage=postgres_url)
    trials = study.trials
    counted = counted_trials(study)
    assert len(counted) == 9 and all(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in counted)
    # The documented bound: a worker whose ask found the queue just emptied leaves a surplus
    # record (never trained, not counted), at most one per other worker; nothing is left queued.
    surplus = [TrialRecord.read(t) for t in trials if t not in counted]
    assert len(surplus) <= 2 and all(r.status == "surplus" and r.epochs is None for r in surplus)
    workers = {TrialRecord.read(t).worker for t in counted}
    assert len(workers) >= 2  # the slots were shared out, each taken by one worker
    assert not (tmp_path / "budgetnet.db").exists()


def test_a_worker_killed_mid_trial_loses_nothing_and_its_trial_is_retried(postgres_url, tmp_path):
    # Enough epochs that a trial lasts seconds, so the poll below catches one mid-way.
    command = budgetnet_command(
        "--trials", "3", "--epochs", str(EPOCHS), "--pruner", "none", "--heartbeat", "1", "--storage", postgres_url,
        "--study", "killed", *QUICK,
    )  # fmt: skip
    worker = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    storage = optuna.storages.RDBStorage(postgres_url)  # one connection pool for all the polls
    try:
        done, running = wait_for(mid_trial(storage, "killed"), 240, "one completed trial and one in its first epochs")
        assert len(running.intermediate_values) < EPOCHS  # still training
        worker.send_signal(signal.SIGKILL)
        worker.wait(30)
    finally:
        if worker.poll() is None:
            worker.kill()
    assert worker.returncode == -signal.SIGKILL
    before = {t.number: (t.params, t.values) for t in done}
    study = optuna.load_study(study_name="killed", storage=postgres_url)
    assert study.trials[running.number].state == TrialState.RUNNING  # dead, but nobody knows yet

    resumed = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=400)
    assert resumed.returncode == 0, resumed.stderr
    study = optuna.load_study(study_name="killed", storage=postgres_url)
    for number, (params, values) in before.items():  # every completed trial is kept as it was
        assert (study.trials[number].params, study.trials[number].values) == (params, values)
    assert study.trials[running.number].state == TrialState.FAIL
    retries = [t for t in study.trials if RetryCallback.retried_trial_number(t) == running.number]
    assert len(retries) == 1
    retry = retries[0]
    assert retry.state == TrialState.COMPLETE and retry.params == running.params
    record = TrialRecord.read(retry)
    assert record.retry_of == running.number and record.epochs == EPOCHS
    assert len(counted_trials(study)) == 3
    assert not study.get_trials(states=(TrialState.RUNNING, TrialState.WAITING))
    assert "3 finished trials" in resumed.stdout


@pytest.mark.parametrize("signal_number", [signal.SIGKILL, signal.SIGINT], ids=["SIGKILL", "Ctrl-C"])
def test_workers_follow_their_parent_and_queue_their_trials_again(signal_number, tmp_path):
    storage_url = f"sqlite:///{tmp_path / 's.db'}"
    command = budgetnet_command(
        "--workers", "2", "--trials", "4", "--epochs", str(EPOCHS), "--pruner", "none", "--storage", storage_url,
        "--study", "follow", *QUICK,
    )  # fmt: skip
    parent = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    storage = optuna.storages.RDBStorage(storage_url)
    try:
        running = wait_for(in_training(storage, "follow"), 240, "a trial past its first epoch")
        done = optuna.load_study(study_name="follow", storage=storage).get_trials(states=(TrialState.COMPLETE,))
        workers = {TrialRecord.read(t).worker for t in optuna.load_study(study_name="follow", storage=storage).trials}
        workers.discard(None)
        parent.send_signal(signal_number)
        parent.wait(120)
    finally:
        if parent.poll() is None:
            parent.kill()
    assert workers and all(process_alive(worker) is not None for worker in workers)  # this host's processes
    wait_for(lambda: not any(process_alive(worker) for worker in workers), 120, "the workers to stop")
    messages = parent.stderr.read()  # the workers' too; after Ctrl-C the parent's line as well
    lines = 2 if signal_number == signal.SIGKILL else 3
    assert "Traceback" not in messages and messages.count("budgetnet search: interrupted") == lines, messages
    study = optuna.load_study(study_name="follow", storage=storage)
    stopped = study.trials[running.number]
    assert stopped.state == TrialState.FAIL and TrialRecord.read(stopped).status == "interrupted", messages
    assert not study.get_trials(states=(TrialState.RUNNING,))  # every running trial was queued again
    queued = [t for t in study.trials if t.state == TrialState.WAITING and TrialRecord.read(t).retry_of is not None]
    assert running.number in {TrialRecord.read(t).retry_of for t in queued}

    resumed = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    study = optuna.load_study(study_name="follow", storage=storage)
    for trial in done:
        assert study.trials[trial.number].values == trial.values
    retry = [t for t in study.trials if TrialRecord.read(t).retry_of == running.number]
    assert len(retry) == 1 and retry[0].state == TrialState.COMPLETE and retry[0].params == running.params
    assert len(counted_trials(study)) == 4
