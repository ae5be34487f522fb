"""`budgetnet search`, `budgetnet results` and `budgetnet export` from the command line."""

from __future__ import annotations

import importlib.util
import json

import optuna
import pytest
import torch

import budgetnet
from budgetnet.cli import main, make_parser
from budgetnet.errors import BudgetError, ExportError, SearchError, StorageError

QUICK = ["--epochs", "1", "--limit", "60", "--no-baseline", "--no-progress", "--no-confirm"]


def call(argv):
    """Run one subcommand's ``run`` directly, so that its BudgetNetError reaches the test."""
    args = make_parser().parse_args(argv)
    return args.run(args)


def test_search_results_and_export_end_to_end(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["search", "--trials", "2", "--keep-weights", "--plot-dir", "plots", "--json", *QUICK]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["study"] == "small-digits" and summary["counts"]["finished"] == 2
    assert summary["budget"].startswith("152.6K MACs (1x baseline)") and summary["best"]["accuracy"] is not None
    assert (tmp_path / "budgetnet.db").is_file()  # the default storage: a file in the working directory
    assert [p.endswith(".png") for p in summary["plots"]] == [True, True]
    assert all((tmp_path / p).read_bytes()[:4] == b"\x89PNG" for p in summary["plots"])

    # Results read the same study back, as a table and as JSON.
    assert main(["results"]) == 0
    table = capsys.readouterr().out
    assert "best trials:" in table and "2 finished trials" in table
    assert main(["results", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["best"] == summary["best"]

    # Export: JSON spec, standalone module, weights that load into it.
    best = summary["best"]
    assert main(["export", "--trial", "best", "--format", "json", "-o", "best.json"]) == 0
    assert budgetnet.Arch.load(tmp_path / "best.json").notation() == best["notation"]
    assert main(["export", "--trial", str(best["trial"]), "--format", "py"]) == 0
    assert main(["export", "--format", "pt"]) == 0
    assert "wrote trial" in capsys.readouterr().out
    spec = importlib.util.spec_from_file_location("found", tmp_path / f"trial{best['trial']}.py")
    found = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(found)
    model = found.Net()
    model.load_state_dict(torch.load(tmp_path / f"trial{best['trial']}.pt", weights_only=True))
    assert model(torch.zeros(1, 1, 16, 16)).shape == (1, 10)


def test_search_prints_a_final_table_and_resumes(tmp_path, capsys):
    storage = str(tmp_path / "s.db")
    assert main(["search", "--trials", "1", "--storage", storage, "--study", "cli", *QUICK]) == 0
    out = capsys.readouterr().out
    assert "small space on 1x16x16 inputs" in out and "best trials:" in out
    assert "export it: budgetnet export --study cli --trial best --format py --storage" in out
    assert main(["search", "--trials", "2", "--storage", storage, "--study", "cli", *QUICK]) == 0
    study = optuna.load_study(study_name="cli", storage=f"sqlite:///{storage}")
    assert len(study.trials) == 2


@pytest.mark.parametrize(
    "argv, error, message",
    [
        (["--trials", "0"], SearchError, r"--trials 0 is invalid; expected a whole number >= 1"),
        (["--workers", "0"], SearchError, r"--workers 0 is invalid; expected a whole number >= 1"),
        (["--baseline-seeds", "0"], SearchError, r"--baseline-seeds 0 is invalid; expected a whole number >= 1"),
        (["--space", "nas"], SearchError, "space='nas' is unknown; expected one of replacement, residual, residual224, small, stage"),
        (["--objectives", "accuracy,speed"], SearchError, "objective='speed' is unknown"),
        (["--budget", "1K"], BudgetError, "1.0K MACs"),
        (
            ["--space", "replacement", "--baseline", "(3,8) gap"],
            SearchError,
            r"no layer-replacement rule rewrites the baseline \(3,8\) gap",
        ),
        (
            ["--storage", "postgresql+psycopg2://me@127.0.0.1:9/optuna"],
            StorageError,
            r"cannot connect to 127\.0\.0\.1:9",
        ),
    ],
)
def test_bad_search_input(tmp_path, monkeypatch, argv, error, message):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(error, match=message):
        call(["search", *argv, *QUICK])


def test_bad_input_reaches_the_terminal_as_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["search", "--trials", "0"]) == 2
    assert capsys.readouterr().err.strip() == (
        "budgetnet search: error: --trials 0 is invalid; expected a whole number >= 1 (finished trials to hold)"
    )


def test_results_and_export_of_missing_or_unfinished_things(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(StorageError, match="budgetnet.db: no such file; expected the storage a search wrote"):
        call(["results"])
    storage = optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 'budgetnet.db'}")
    study = optuna.create_study(storage=storage, study_name="s", direction="maximize")
    study.add_trial(optuna.create_trial(state=optuna.trial.TrialState.PRUNED, value=0.2))
    with pytest.raises(ExportError, match=r"trial=0 never completed \(PRUNED: pruned\)"):
        call(["export", "--trial", "0"])
    with pytest.raises(SearchError, match=r"study='t' does not exist; expected one of \['s'\]"):
        call(["results", "--study", "t"])
    assert main(["results"]) == 1  # nothing completed: a report, and a failing exit status


def test_help_explains_every_option(capsys):
    with pytest.raises(SystemExit):
        main(["search", "--help"])
    text = capsys.readouterr().out
    for option in ("--space", "--baseline", "--budget", "--tolerance", "--data", "--trials", "--timeout",
                   "--epochs", "--recipe", "--storage", "--study", "--workers", "--objectives", "--pruner",
                   "--seed", "--device", "--json", "--plot-dir", "--keep-weights", "--heartbeat",
                   "--max-memory"):  # fmt: skip
        assert option in text
    assert "--worker-process" not in text


def test_workers_get_the_memory_limit():
    from budgetnet.cli.search import worker_arguments

    args = make_parser().parse_args(["search", "--max-memory", "8G"])
    arguments = worker_arguments(args, "s", "sqlite:////tmp/s.db", None)
    assert arguments[arguments.index("--max-memory") + 1] == "8G"
    assert "--max-memory" not in worker_arguments(make_parser().parse_args(["search"]), "s", "sqlite:///x.db", None)


def test_workers_share_the_cores_and_get_the_validation_limit(monkeypatch):
    import budgetnet.pytorch.device as device
    from budgetnet.cli.search import worker_arguments, worker_threads

    monkeypatch.setattr(device, "available_cores", lambda: 8)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert [worker_threads(None, workers) for workers in (1, 3, 4, 16)] == [8, 2, 2, 1]  # 8 // N, at least 1
    assert worker_threads(5, 4) == 5  # --threads as given
    args = make_parser().parse_args(["search", "--workers", "4", "--val-limit", "500"])
    arguments = worker_arguments(args, "s", "sqlite:///x.db", None)
    assert arguments[arguments.index("--threads") + 1] == "2"
    assert arguments[arguments.index("--val-limit") + 1] == "500"
    monkeypatch.setenv("OMP_NUM_THREADS", "3")  # the user's own setting: each worker reads it
    assert worker_threads(None, 4) is None
    assert "--threads" not in worker_arguments(args, "s", "sqlite:///x.db", None)


def test_search_threads_and_validation_limit(tmp_path, monkeypatch, capsys):
    import torch

    monkeypatch.chdir(tmp_path)
    before = torch.get_num_threads()
    try:
        status = main(["search", "--threads", "1", "--limit", "100", "--val-limit", "40", "--trials", "1",
                       "--epochs", "1", "--no-confirm", "--no-baseline"])  # fmt: skip
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
    out = capsys.readouterr().out
    assert status == 0
    assert "train 100 / val 40 / test 359)" in out  # exactly the limits asked


def test_a_busy_machine_warns_on_a_terminal_only(monkeypatch):
    import sys
    import warnings

    from budgetnet.cli.common import warn_if_busy

    text = ("this machine is busy (load 6.5 on 2 cores): 2 torch threads per training take turns with the other "
            "work, often several times slower than --threads 1")  # fmt: skip
    assert warn_if_busy(1, load=6.5, cores=2) is None and warn_if_busy(2, load=1.5, cores=2) is None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert warn_if_busy(2, load=6.5, cores=2) == text  # not a terminal: no warning
        monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
        warn_if_busy(2, load=6.5, cores=2)
    assert [str(w.message) for w in caught] == [text]
