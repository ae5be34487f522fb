"""Every example of ``budgetnet search --help`` (and of ``results``, ``export``, ``show``,
``variants``, ``latency``, ``recover``, and the two ``train`` examples on files) runs as a user
types it, in a fresh directory on the default data, made cheap by options appended after it
(argparse keeps the last value), and its result is checked: exit status, the trials the storage
holds, and that the example's own options took effect. The examples are read from the real
``--help`` text, so a changed or new example fails here until a test runs it
(:func:`test_every_search_example_is_run`; the other commands count theirs).

Files an example names (``data/mnist``, ``data/cifar-10-batches-py``, ``my_model.py``,
``best.json``) are written from scikit-learn's bundled digits; nothing is downloaded.
(`budgetnet train --help`'s digits example and README.md: tests/test_examples.py.)
"""

from __future__ import annotations

import gzip
import json
import pickle
import re
import runpy
import shlex
import struct
from pathlib import Path
from wsgiref.util import setup_testing_defaults

import numpy as np
import optuna
import pytest
import torch
from optuna.study import StudyDirection
from optuna.trial import TrialState

import budgetnet
from budgetnet.cli import main
from budgetnet.graph.zoo import get as zoo_model

#: Appended to every search example: 2 trials of 1 epoch on 60 training images, no baseline run.
CHEAP = ["--trials", "2", "--epochs", "1", "--limit", "60", "--no-progress", "--no-baseline", "--no-confirm", "--device", "cpu"]


def help_examples(command: str, capsys) -> list[str]:
    """The lines under ``examples:`` in ``budgetnet COMMAND --help``, a continued line joined."""
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out.split("\nexamples:\n", 1)[1].split("\n\n", 1)[0]
    return [" ".join(line.split()) for line in text.replace("\\\n", " ").splitlines() if line.strip()]


def pick(examples: list[str], *tokens: str) -> list[str]:
    """The one example holding every token, split as a shell would."""
    (line,) = [line for line in examples if all(token in shlex.split(line) for token in tokens)]
    return shlex.split(line)


def bare(examples: list[str], command: str) -> list[str]:
    """The example with no arguments: ``budgetnet COMMAND``."""
    assert f"budgetnet {command}" in examples
    return ["budgetnet", command]


#: The tokens by which each test below picks its search example (the bare one: :func:`bare`).
SEARCH_EXAMPLES = [("--objectives",), ("--data",), ("--space", "residual"), ("--space", "replacement"),
                   ("--workers",), ("optuna-dashboard",)]  # fmt: skip


def search(argv: list[str], capsys, *, json_output: bool = True, trials: int = 2) -> dict | str:
    """Run ``budgetnet search`` (``argv`` as its help writes it) cheaply: :data:`CHEAP`, ``trials``."""
    assert argv[:2] == ["budgetnet", "search"]
    status = main([*argv[1:], *CHEAP, "--trials", str(trials), *(["--json"] if json_output else [])])
    out = capsys.readouterr().out
    assert status == 0, out
    return json.loads(out) if json_output else out


def finished(storage: str, study_name: str) -> list[optuna.trial.FrozenTrial]:
    study = optuna.load_study(study_name=study_name, storage=storage)
    return [t for t in study.trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)]


def test_every_search_example_is_run(capsys):
    examples = help_examples("search", capsys)
    run = [bare(examples, "search"), *(pick(examples, *tokens) for tokens in SEARCH_EXAMPLES)]
    assert sorted(shlex.join(argv) for argv in run) == sorted(shlex.join(shlex.split(e)) for e in examples)


def test_search_with_no_options_then_the_dashboard_results_and_export(tmp_path, monkeypatch, capsys):
    examples = help_examples("search", capsys)
    monkeypatch.chdir(tmp_path)
    # --keep-weights too, as `budgetnet export --help` asks of a search whose weights are exported.
    out = search([*bare(examples, "search"), "--keep-weights"], capsys, json_output=False)
    assert "small space on 1x16x16 inputs" in out and "best trials:" in out and "2 finished trials" in out
    assert len(finished("sqlite:///budgetnet.db", "small-digits")) == 2  # the default storage, here

    # `optuna-dashboard sqlite:///budgetnet.db`, in the same directory, lists the study and its trials.
    optuna_dashboard = pytest.importorskip("optuna_dashboard")
    program, url = pick(examples, "optuna-dashboard")
    assert (program, url) == ("optuna-dashboard", "sqlite:///budgetnet.db")
    app = optuna_dashboard.wsgi(url)
    (summary,) = dashboard_get(app, "/api/studies")["study_summaries"]
    assert summary["study_name"] == "small-digits" and summary["directions"] == ["maximize"]
    detail = dashboard_get(app, f"/api/studies/{summary['study_id']}")
    assert len(detail["trials"]) == 2 and "Complete" in [t["state"] for t in detail["trials"]]

    # Every `budgetnet results --help` example but the PostgreSQL one (in the workers test below).
    results = help_examples("results", capsys)
    assert main(bare(results, "results")[1:]) == 0
    assert "best trials:" in capsys.readouterr().out
    assert main(pick(results, "--top")[1:]) == 0
    assert "study 'small-digits'" in capsys.readouterr().out
    assert main(pick(results, "--plot-dir")[1:]) == 0
    assert sorted(p.name for p in (tmp_path / "plots").iterdir()) == ["history.png", "pareto.png"]
    assert len(results) == 4  # and pick(results, "--storage") below

    # Every `budgetnet export --help` example.
    export = help_examples("export", capsys)
    assert len(export) == 3
    best = optuna.load_study(study_name="small-digits", storage="sqlite:///budgetnet.db").best_trial
    assert main(pick(export, "py")[1:]) == 0
    module = runpy.run_path(str(tmp_path / f"trial{best.number}.py"))
    model = module["Net"]()
    argv = pick(export, "--trial", "7")
    argv[argv.index("7")] = "1"  # the example's study has 50 trials; this one 2 (0 and 1)
    assert main(argv[1:]) == 0
    assert budgetnet.Arch.load(tmp_path / "found.json").notation() == finished_notation(1)
    assert main(pick(export, "pt")[1:]) == 0
    model.load_state_dict(torch.load(tmp_path / "found.pt", weights_only=True))
    assert model(torch.zeros(1, 1, 16, 16)).shape == (1, 10)


def finished_notation(number: int) -> str:
    study = optuna.load_study(study_name="small-digits", storage="sqlite:///budgetnet.db")
    return study.trials[number].user_attrs["notation"]


def dashboard_get(app, path: str) -> dict:
    environ = {"PATH_INFO": path, "REQUEST_METHOD": "GET"}
    setup_testing_defaults(environ)
    status = []
    body = b"".join(app(environ, lambda code, headers, exc_info=None: status.append(code)))
    assert status == ["200 OK"], body
    return json.loads(body)


def test_search_two_objectives_in_a_smaller_budget(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    summary = search(pick(help_examples("search", capsys), "--objectives"), capsys)
    assert summary["objectives"] == ["accuracy", "macs"] and summary["counts"]["finished"] == 2
    study = optuna.load_study(study_name=summary["study"], storage="sqlite:///budgetnet.db")
    assert study.directions == [StudyDirection.MAXIMIZE, StudyDirection.MINIMIZE]
    assert summary["budget"].startswith("1.9M MACs (0.8x baseline)")
    ceiling = 0.8 * (1 + 0.05) * summary["baseline_macs"]  # the default tolerance
    assert summary["pareto"] and all(t["macs"] <= ceiling for t in summary["pareto"])
    assert all(t.values[1] <= ceiling for t in finished("sqlite:///budgetnet.db", summary["study"]))


def write_mnist_like(folder: Path, train: int = 300, test: int = 100) -> None:
    """Bundled sklearn digits as MNIST-format IDX files: 28x28 unsigned bytes (nearest upscaling)."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    rows = np.arange(28) * 8 // 28
    images = (digits.images[:, rows][:, :, rows] * 255 / 16).round().astype(np.uint8)
    labels = digits.target.astype(np.uint8)
    folder.mkdir(parents=True)
    for prefix, part in (("train", slice(0, train)), ("t10k", slice(train, train + test))):
        count = len(labels[part])
        with gzip.open(folder / f"{prefix}-images-idx3-ubyte.gz", "wb") as handle:
            handle.write(struct.pack(">BBBBIII", 0, 0, 8, 3, count, 28, 28) + images[part].tobytes())
        with gzip.open(folder / f"{prefix}-labels-idx1-ubyte.gz", "wb") as handle:
            handle.write(struct.pack(">BBBBI", 0, 0, 8, 1, count) + labels[part].tobytes())


def test_search_on_idx_files_with_a_notation_baseline(tmp_path, monkeypatch, capsys):
    argv = pick(help_examples("search", capsys), "--data")
    data = argv[argv.index("--data") + 1]
    assert data == "idx:data/mnist"
    monkeypatch.chdir(tmp_path)
    write_mnist_like(tmp_path / "data" / "mnist")
    summary = search(argv, capsys)
    assert summary["data"] == data and summary["counts"]["finished"] == 2
    assert summary["baseline"] == argv[argv.index("--baseline") + 1]  # the example's own baseline, fc64 too
    baseline = budgetnet.parse(summary["baseline"], input_shape=(1, 28, 28), num_classes=10)
    assert summary["baseline_macs"] == budgetnet.complexity(baseline).conv_macs  # built for 28 px, 10 classes
    assert summary["best"]["accuracy"] is not None


def test_search_the_residual_space(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    # One trial: a residual candidate trains 3-10x longer than a plain one.
    summary = search(pick(help_examples("search", capsys), "--space", "residual"), capsys, trials=1)
    assert summary["space"] == "residual" and summary["counts"]["finished"] == 1
    trials = finished("sqlite:///budgetnet.db", summary["study"])
    assert len(trials) == 1 and all("res[" in t.user_attrs["notation"] for t in trials)


def test_search_replacement_variants_of_small_residual(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    argv = pick(help_examples("search", capsys), "--space", "replacement")
    assert argv[argv.index("--baseline") + 1] == "small_residual"
    summary = search(argv, capsys, trials=1)  # one residual candidate, as above
    assert summary["space"] == "replacement" and summary["counts"]["finished"] == 1
    small_residual = zoo_model("small_residual", (1, 16, 16), 10)  # digits at 16 px
    assert summary["baseline"] == small_residual.notation()
    assert summary["baseline_macs"] == budgetnet.complexity(small_residual).conv_macs
    assert all(t["notation"] != small_residual.notation() for t in summary["top"])  # variants, not the baseline


def test_search_workers_on_postgresql_then_results(postgres_url, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    argv = pick(help_examples("search", capsys), "--workers")
    argv[argv.index("--storage") + 1] = postgres_url  # the example's server is this test's
    # Two workers, not the example's four: 2 cores here, and each worker imports torch.
    argv[argv.index("--workers") + 1] = "2"
    summary = search(argv, capsys)
    assert summary["study"] == "mnist-1" and summary["counts"]["finished"] == 2
    trials = finished(postgres_url, "mnist-1")
    assert len(trials) == 2 and len({t.user_attrs["worker"] for t in trials}) >= 1
    assert not (tmp_path / "budgetnet.db").exists()

    # `budgetnet results --storage postgresql+psycopg2://... --study mnist-1 --json` reads it back.
    results = pick(help_examples("results", capsys), "--storage")
    results[results.index("--storage") + 1] = postgres_url
    assert main(results[1:]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["study"] == "mnist-1" and report["best"] == summary["best"]


# -- the other commands' examples -------------------------------------------------------------------
MY_MODEL = """from torch import nn


def build():
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(8, 10))
"""


def test_show_examples(tmp_path, monkeypatch, capsys):
    examples = help_examples("show", capsys)
    assert len(examples) == 5
    monkeypatch.chdir(tmp_path)
    (tmp_path / "my_model.py").write_text(MY_MODEL)  # the files two examples name
    budgetnet.parse("(3,8) 2/2 (3,16) gap", input_shape=(1, 16, 16), num_classes=10).save(tmp_path / "best.json")
    for argv in examples:
        assert main(shlex.split(argv)[1:]) == 0, argv
        capsys.readouterr()
    # J' at 0.97 of A (the paper's 0.98: DESIGN.md); torchvision's v1.5 strides its 3x3s, costing more
    for spec, low, high in (("J'", 0.96, 0.98), ("resnet50_v1.5", 1.0, 1.1)):
        assert main(pick(examples, spec)[1:]) == 0
        (line,) = [line for line in capsys.readouterr().out.splitlines() if line.startswith("ratio to baseline:")]
        assert low < float(line.split()[3]) < high, line
    assert main(pick(examples, "--json")[1:]) == 0
    report = json.loads(capsys.readouterr().out)
    # (3,32) at 28 px: 1*9*32*28^2; 2/2 -> 14; (2,64) pad 0 -> 13: 32*4*64*13^2; pad 1 -> 14: 64*4*64*14^2
    assert report["conv_macs"] == 1 * 9 * 32 * 28**2 + 32 * 4 * 64 * 13**2 + 64 * 4 * 64 * 14**2
    assert main(pick(examples, "my_model.py:build")[1:]) == 0
    assert f"{3 * 9 * 8 * 32**2:,}" in capsys.readouterr().out  # Eqn. (1) of the one conv at 32 px


def test_variants_examples(tmp_path, monkeypatch, capsys):
    examples = help_examples("variants", capsys)
    assert len(examples) == 7
    monkeypatch.chdir(tmp_path)
    for argv in examples:
        assert main([*shlex.split(argv)[1:], "--no-progress"]) == 0, argv
        out = capsys.readouterr().out
        if "--json" in argv:
            found = len(json.loads(out)["nodes"]) - 1  # the baseline is a node too
        else:
            found = int(re.search(r"^(\d+) variants? within", out, flags=re.M).group(1))
        assert found >= 1, argv  # every example finds something to show
    assert (tmp_path / "lineage.png").read_bytes()[:4] == b"\x89PNG"


def test_latency_examples(tmp_path, monkeypatch, capsys):
    examples = help_examples("latency", capsys)
    assert len(examples) == 3
    monkeypatch.setenv("BUDGETNET_CACHE", str(tmp_path / "cache"))  # --table's cache, not ~/.cache
    cheap = ["--batch-size", "1", "--repeats", "1", "--warmup", "0"]
    assert main([*pick(examples, "A")[1:], *cheap]) == 0
    assert "ms" in capsys.readouterr().out
    assert main([*pick(examples, "--table")[1:], *cheap]) == 0
    assert "predicted" in capsys.readouterr().out and list((tmp_path / "cache").iterdir())
    argv = pick(examples, "--device")[1:]
    if not torch.cuda.is_available():  # as written it names the GPU; here one error line, then the CPU
        assert main(argv) == 2
        assert "device='cuda' is not there" in capsys.readouterr().err
        argv += ["--device", "cpu"]
    assert main([*argv, *cheap]) == 0
    assert json.loads(capsys.readouterr().out)


def test_recover_examples(tmp_path, monkeypatch, capsys):
    from budgetnet.studies.record import TrialRecord
    from budgetnet.studies.storage import create_or_load_study, open_storage, storage_url

    examples = help_examples("recover", capsys)
    assert len(examples) == 3
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").mkdir()
    storage = open_storage(storage_url("runs/study.journal"))
    study, _ = create_or_load_study(storage, "small-digits", ["maximize"])
    for worker in ("node3:41312", "node4:7"):  # two trials whose workers were killed
        TrialRecord.write(study.ask(), worker=worker)
    assert main(pick(examples, "--worker")[1:]) == 0
    assert json.loads(capsys.readouterr().out) == {"study": "small-digits", "recovered": [0]}
    assert main(pick(examples, "--older-than")[1:]) == 0  # both started just now
    assert "no RUNNING trial matched; nothing to recover" in capsys.readouterr().out
    assert main(pick(examples, "--study")[1:]) == 0
    assert "trials 1 marked failed and queued again" in capsys.readouterr().out
    states = [t.state for t in optuna.load_study(study_name="small-digits", storage=storage).trials]
    assert states == [TrialState.FAIL, TrialState.FAIL, TrialState.WAITING, TrialState.WAITING]


def test_train_examples_on_idx_and_cifar_files(tmp_path, monkeypatch, capsys):
    """The digits examples run in test_examples.py; these two read files a user downloads."""
    examples = help_examples("train", capsys)
    assert len(examples) == 3
    monkeypatch.chdir(tmp_path)
    write_mnist_like(tmp_path / "data" / "mnist")
    argv = pick(examples, "idx:data/mnist")
    assert main([*argv[1:], "--epochs", "1", "--limit", "60", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    # --views 10 on digits, which are never flipped: the centre and 4 corners (see --views in --help)
    assert result["data"]["input_shape"] == [1, 28, 28] and result["test"]["views"] == 5
    write_cifar_like(tmp_path / "data" / "cifar-10-batches-py")
    argv = pick(examples, "--recipe")
    assert argv[argv.index("--device") + 1] == "cuda"
    device = "cuda" if torch.cuda.is_available() else "cpu"  # appended: this machine may have no GPU
    assert main([*argv[1:], "--epochs", "1", "--limit", "60", "--device", device]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["data"]["num_classes"] == 10 and result["data"]["input_shape"] == [3, 32, 32]
    assert torch.load(tmp_path / "runs" / "cifar.pt", weights_only=True)["epoch"] == 1


def write_cifar_like(folder: Path, per_batch: int = 60) -> None:
    """CIFAR-10 python batches of bundled digits: 32x32 RGB (nearest upscaling, grey in 3 channels)."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    rows = np.arange(32) * 8 // 32
    images = (digits.images[:, rows][:, :, rows] * 255 / 16).round().astype(np.uint8).reshape(-1, 1024)
    folder.mkdir(parents=True)
    for index, name in enumerate(("data_batch_1", "data_batch_2", "test_batch")):
        part = slice(index * per_batch, (index + 1) * per_batch)
        with open(folder / name, "wb") as handle:
            pickle.dump({b"data": np.tile(images[part], 3), b"labels": digits.target[part].tolist()}, handle)


#: Where each command's help examples run, and how many there are (this file unless named).
EXAMPLE_COUNTS = {"show": 5, "search": 7, "confirm": 3, "results": 4, "export": 3, "recover": 3, "train": 3,
                  "latency": 3, "variants": 7, "proxy": 2}  # confirm, proxy: tests/cli/test_cli_confirm.py


def test_every_command_has_examples_and_each_is_run(capsys):
    from budgetnet.cli import COMMANDS

    assert {command.NAME for command in COMMANDS} == set(EXAMPLE_COUNTS)
    assert {name: len(help_examples(name, capsys)) for name in EXAMPLE_COUNTS} == EXAMPLE_COUNTS


def test_the_top_level_help_lists_every_command_with_its_line(capsys):
    # "budgetnet --help" is a new user's first command; a "%" in a command's line once crashed it
    from budgetnet.cli import COMMANDS

    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    for command in COMMANDS:
        assert f"{command.NAME} {' '.join(command.HELP.split()[:3])}" in text  # argparse wraps the rest
    assert "a verdict with 95% CIs" in text
