"""`budgetnet confirm`, the confirmation at the end of `budgetnet search`, `budgetnet proxy`,
the samplers and the random control from the command line, and their bad inputs."""

from __future__ import annotations

import json

import optuna
import pytest

from budgetnet.cli import main
from budgetnet.errors import ConfirmError, SearchError
from budgetnet.studies.record import StudyRecord, TrialRecord

#: A cheap search: 2 trials of 1 epoch on 60 images, no baseline run, no confirmation.
QUICK = ["--trials", "2", "--epochs", "1", "--limit", "60", "--no-baseline", "--no-progress", "--device", "cpu"]


def run(argv, capsys):
    status = main(argv)
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_search_ends_with_a_confirmation_and_results_show_it(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    status, out, _ = run(["search", *QUICK, "--confirm", "1", "--confirm-seeds", "1", "--confirm-folds", "2",
                          "--control", "random", "--sampler", "random", "--budget", "1x", "--plot-dir", "plots"], capsys)  # fmt: skip
    assert status == 0, out
    assert "confirmation on 2-fold over the whole set" in out and "\nverdict: " in out
    assert "random search's best" in out and "Random control: 2 finished trials" in out
    assert (tmp_path / "plots" / "confirmation.png").stat().st_size > 1000
    study = optuna.load_study(study_name="small-digits", storage="sqlite:///budgetnet.db")
    arms = [TrialRecord.read(t).arm for t in study.trials if TrialRecord.read(t).confirm is None]
    assert arms.count("control") == 2 and len(arms) == 4
    report = StudyRecord.read(study).confirmation
    assert [m["model"] for m in report["models"]][0] == "baseline" and report["models"][-1]["arm"] == "control"
    status, out, _ = run(["results", "--json"], capsys)
    assert status == 0 and json.loads(out)["confirmation"]["verdict"] == report["verdict"]
    status, out, _ = run(["results"], capsys)
    assert "verdict: " + report["verdict"] in out
    # budgetnet confirm on the stored study: nothing to retrain again, the same report
    status, out, _ = run(["confirm", "--top", "1", "--seeds", "1", "--folds", "2", "--json", "--plot", "c.png"], capsys)
    assert status == 0 and json.loads(out)["verdict"] == report["verdict"] and (tmp_path / "c.png").is_file()


@pytest.mark.parametrize(
    "argv, error, message",
    [
        (["search", "--confirm", "0"], ConfirmError, "--confirm '0' is invalid; expected a whole number >= 1"),
        (["search", "--confirm-seeds", "-2"], ConfirmError, "--confirm-seeds '-2' is invalid; expected a whole number >= 1"),
        (["search", "--confirm-seeds", "1.5"], ConfirmError, "--confirm-seeds '1.5' is invalid"),
        (["confirm", "--seeds", "x"], ConfirmError, "--seeds 'x' is invalid; expected a whole number >= 1"),
        (["confirm", "--top", "0"], ConfirmError, "--top '0' is invalid"),
        (["search", "--sampler", "bayes", *QUICK], SearchError, "sampler='bayes' is unknown; expected one of tpe, random"),
        (["search", "--sampler", "cmaes", *QUICK], SearchError, "sampler='cmaes' needs numeric parameters"),
        (["search", "--sampler", "nsga2", *QUICK], SearchError, "sampler='nsga2' is for several objectives"),
        (["search", "--control", "random", "--objectives", "accuracy,macs", *QUICK], SearchError,
         "control='random' needs one objective, but objectives=accuracy,macs"),
        (["proxy", "small", "--archs", "2"], ConfirmError, "--archs '2' is invalid; expected a whole number >= 4"),
    ],
)
def test_bad_inputs(argv, error, message, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    status, out, err = run(argv, capsys)
    assert status == 2 and len(err.strip().splitlines()) == 1, err
    assert message in err and f"budgetnet {argv[0]}: error: " in err
    assert issubclass(error, (ConfirmError, SearchError))
    assert not (tmp_path / "budgetnet.db").exists()


def test_confirm_refuses_a_study_without_trials_or_baseline(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    storage = "sqlite:///budgetnet.db"
    optuna.create_study(study_name="plain", storage=storage)
    status, _, err = run(["confirm", "--study", "plain"], capsys)
    assert status == 2 and "has no baseline (baseline=None)" in err
    study = optuna.create_study(study_name="empty", storage=storage, direction="maximize")
    StudyRecord.write(study, settings={"baseline": {"arch": {}, "notation": "(3,4)", "macs": 1}})
    status, _, err = run(["confirm", "--study", "empty"], capsys)
    assert status == 2 and "has no completed trial inside the budget (completed=0)" in err


def test_help_examples_of_confirm_and_proxy_are_run(tmp_path, monkeypatch, capsys):
    """The `--help` examples of both new commands, made cheap by options appended after them."""
    from test_help_examples import help_examples

    monkeypatch.chdir(tmp_path)
    confirm_examples = help_examples("confirm", capsys)
    assert len(confirm_examples) == 3
    assert main(["search", *QUICK, "--no-confirm", "--study", "small-digits"]) == 0
    capsys.readouterr()
    cheap = ["--top", "1", "--seeds", "1", "--folds", "2", "--no-progress", "--device", "cpu"]
    for example in confirm_examples:
        argv = example.split()[1:]
        if "--storage" in argv:  # the journal example: a search there first
            assert main(["search", *QUICK, "--no-confirm", "--storage", "journal:search.journal"]) == 0
        status = main([arg.strip('"') for arg in argv] + cheap)
        assert status == 0, capsys.readouterr()
    proxy_examples = help_examples("proxy", capsys)
    assert len(proxy_examples) == 2
    cheap = ["--archs", "4", "--short-epochs", "1", "--long-epochs", "1", "--device", "cpu", "--limit", "60"]
    status = main([*proxy_examples[0].split()[1:], *cheap])
    out = capsys.readouterr().out
    assert status == 0 and "short vs long: Kendall tau" in out and (tmp_path / "proxy.png").is_file()
    assert "noise ceiling (long vs long): Kendall tau" in out
    status = main([*proxy_examples[1].split()[1:], *cheap])
    report = json.loads(capsys.readouterr().out)
    assert status == 0 and report["space"] == "residual" and len(report["candidates"]) == 4
