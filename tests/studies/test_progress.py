"""What a search shows while it runs: plain lines off a terminal, the epoch on the bar, a quiet
Python API (search and confirm), the baseline's own lines, repeated architectures counted in words."""

import io
import json
import subprocess
import sys

import optuna
import pytest

import budgetnet
from budgetnet.cli import main
from budgetnet.studies.progress import SearchProgress, describe_trial
from budgetnet.studies.results import summarize, trial_counts


class Terminal(io.StringIO):
    def isatty(self):
        return True


def trial(value, **attrs):
    return optuna.create_trial(value=value, user_attrs={"status": "ok", **attrs})


def test_off_a_terminal_each_finished_trial_is_one_line_with_the_count_and_the_best():
    study = optuna.create_study(direction="maximize")
    out = io.StringIO()
    bar = SearchProgress(study, stream=out)
    study.add_trial(trial(0.8, macs=2000, trial_seconds=3.2))
    bar.refresh_from(study)
    study.add_trial(optuna.create_trial(value=0.0, user_attrs={"status": "infeasible", "ratio": 1.5}))
    bar.refresh_from(study)
    bar.refresh_from(study)  # nothing new: nothing printed twice
    study.add_trial(trial(0.9, macs=2000, duplicate_of=0))
    bar.refresh_from(study)
    bar.close()
    assert out.getvalue().splitlines() == [
        "trial 0: accuracy 0.8000, 2.0K MACs, 3 s [1 finished; best 0.8000, trial 0]",
        "trial 1: over the budget (1.50x the baseline), not trained [2 finished; best 0.8000, trial 0]",
        "trial 2: accuracy 0.9000, 2.0K MACs (repeats trial 0; not trained again) [3 finished; best 0.9000, trial 2]",
    ]


def test_a_resumed_search_sums_up_what_finished_before_instead_of_listing_it():
    study = optuna.create_study(direction="maximize")
    study.add_trial(trial(0.8))
    out = io.StringIO()
    SearchProgress(study, stream=out).close()
    assert out.getvalue() == "resuming: 1 finished\n"


def test_on_a_terminal_the_bar_shows_the_epoch_of_the_trial_in_training():
    study = optuna.create_study(direction="maximize")
    out = Terminal()
    bar = SearchProgress(study, stream=out)
    assert bar.active
    bar.epoch(study, 4, 2, 5, 0.625)
    bar.close()
    assert "trial 4 epoch 2/5 (0.625)" in out.getvalue()


def test_disabled_shows_nothing():
    study = optuna.create_study(direction="maximize")
    out = Terminal()
    bar = SearchProgress(study, enabled=False, stream=out)
    study.add_trial(trial(0.8))
    bar.refresh_from(study)
    bar.epoch(study, 0, 1, 2, 0.5)
    bar.close()
    assert out.getvalue() == "" and not bar.active


def test_failed_and_pruned_trials_in_words():
    failed = optuna.create_trial(state=optuna.trial.TrialState.FAIL, user_attrs={"status": "error", "error": "boom"})
    pruned = optuna.create_trial(state=optuna.trial.TrialState.PRUNED,
                                 user_attrs={"status": "pruned", "epochs": 3, "val_accuracy": 0.5})  # fmt: skip
    control = optuna.create_trial(value=0.7, user_attrs={"status": "ok", "arm": "control"})
    assert describe_trial(failed) == "trial -1: failed: boom"
    assert describe_trial(pruned) == "trial -1: pruned after epoch 3 (accuracy 0.5000)"
    assert describe_trial(control) == "trial -1 (random control): accuracy 0.7000"


def test_repeated_architectures_are_counted_and_said_in_the_report():
    study = optuna.create_study(direction="maximize")
    study.add_trial(trial(0.8, fingerprint="a"))
    study.add_trial(trial(0.8, fingerprint="a", duplicate_of=0))
    study.add_trial(trial(0.8, fingerprint="a", duplicate_of=0))
    study.add_trial(trial(0.7, fingerprint="b"))
    counts = trial_counts(study)
    assert counts["complete"] == 4 and counts["repeated"] == 2
    summary = summarize(study)
    assert len(summary["top"]) == 2  # each architecture once
    assert (
        "4 completed inside the budget, 0 over the budget (not trained), 0 pruned, 0 failed (2 of the completed "
        "repeated an earlier architecture and reused its result, not trained again; tables show each "
        "architecture once)" in summary["message"]
    )


def test_cli_search_off_a_terminal_prints_the_baseline_and_one_line_per_trial(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    status = main(["search", "--trials", "2", "--epochs", "1", "--limit", "80", "--no-confirm", "--json"])
    out, err = capsys.readouterr()
    assert status == 0
    assert json.loads(out)["counts"]["finished"] == 2  # stdout stays JSON
    lines = err.splitlines()
    assert lines[0].startswith("baseline: training (3,4) 2/2 (5,8) 2/2 (3,16)x3 spp(2,1) with seed 0 (1 epochs)")
    assert lines[1].startswith("baseline: validation accuracy ")
    assert [line.split(":")[0] for line in lines[2:]] == ["trial 0", "trial 1"]
    assert lines[-1].endswith("[2/2 finished; best " + lines[-1].split("best ")[1])


def test_the_python_api_hides_optunas_info_lines_unless_verbose():
    code = (
        "import budgetnet, optuna\n"
        "data = budgetnet.load_data('digits', limit=60)\n"
        "study = budgetnet.search('small', data, n_trials=1, epochs=1, seed=0, progress=False,\n"
        "                         storage=optuna.storages.InMemoryStorage(), verbose={verbose})\n"
        "budgetnet.confirm(study, top=1, seeds=1, folds=2, data=data, progress=False, verbose={verbose})\n"
    )
    quiet = subprocess.run([sys.executable, "-c", code.format(verbose=False)], capture_output=True, text=True)
    loud = subprocess.run([sys.executable, "-c", code.format(verbose=True)], capture_output=True, text=True)
    assert quiet.returncode == loud.returncode == 0, quiet.stderr + loud.stderr
    assert "[I " not in quiet.stderr and "Trial 0 finished" in loud.stderr
    assert "Trial 1 finished" in loud.stderr  # the confirmation's first retraining, also hidden by default


def test_search_restores_optunas_log_level(monkeypatch):
    optuna.logging.set_verbosity(optuna.logging.DEBUG)
    try:
        budgetnet.search("small", budgetnet.load_data("digits", limit=60), n_trials=1, epochs=1, seed=0,
                         progress=False, storage=optuna.storages.InMemoryStorage())  # fmt: skip
        assert optuna.logging.get_verbosity() == optuna.logging.DEBUG
    finally:
        optuna.logging.set_verbosity(optuna.logging.INFO)


@pytest.mark.slow
def test_ctrl_c_ends_with_one_line_that_resumes_exactly(tmp_path):
    import signal
    import time

    argv = ["search", "--trials", "2", "--epochs", "6", "--limit", "300", "--no-confirm", "--no-baseline",
            "--storage", "journal:j.log"]  # fmt: skip
    process = subprocess.Popen([sys.executable, "-m", "budgetnet", *argv], cwd=tmp_path, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    storage = None
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # until the first trial trains
        if (tmp_path / "j.log").exists():
            storage = storage or optuna.storages.JournalStorage(
                optuna.storages.journal.JournalFileBackend(str(tmp_path / "j.log"))
            )
            studies = storage.get_all_studies()
            if studies and any(t.state.name == "RUNNING" for t in storage.get_all_trials(studies[0]._study_id)):
                break
        time.sleep(0.2)
    time.sleep(1.0)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 130, err
    assert "Traceback" not in err and "[W " not in err
    line = err.strip().splitlines()[-1]
    assert line == (
        "budgetnet search: interrupted; study 'small-digits' keeps its 0 finished trials (a trial in training is "
        "queued again). Resume: budgetnet " + " ".join(argv)
    )
    resumed = subprocess.run([sys.executable, "-m", "budgetnet", *line.split("Resume: budgetnet ")[1].split()],
                             cwd=tmp_path, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr
    assert "\n2 finished trials: " in resumed.stdout
    assert "resuming: " not in resumed.stderr  # nothing had finished; the stopped trial ran again


def test_a_baseline_without_space_searches_around_it(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    status = main(["search", "--baseline", "(3,8) 2/2 (3,16) spp(2,1)", "--trials", "1", "--epochs", "1",
                   "--limit", "80", "--no-confirm", "--no-baseline"])  # fmt: skip
    out, _ = capsys.readouterr()
    assert status == 0
    assert out.splitlines()[0] == (
        "searching around --baseline: the replacement space of its equal-cost variants "
        "(--space small searches the small space at its cost instead)"
    )
    assert "study 'replacement-digits': replacement space on digits" in out
