"""The confirmation: its statistics against scipy and hand arithmetic, the held-out folds,
retrainings claimed once and resumed, and its bad inputs."""

from __future__ import annotations

import math

import hypothesis.strategies as st
import optuna
import pytest
import scipy.stats
from hypothesis import given, settings
from optuna.trial import TrialState

import budgetnet
from budgetnet.errors import ConfirmError
from budgetnet.studies.confirm import (
    confirm,
    confirm_trials,
    fold_data,
    held_out,
    mean_interval,
    paired_difference,
    verdict,
)
from budgetnet.studies.record import StudyRecord, TrialRecord
from budgetnet.studies.results import summarize, trial_counts
from budgetnet.studies.storage import open_storage
from budgetnet.studies.worker import recover_trials
from budgetnet.training.data import from_tensors, load_data

values = st.lists(st.floats(0.0, 1.0, allow_nan=False), min_size=2, max_size=12)


def test_interval_by_hand():
    # mean 2, sd 1, n 3: half width t(0.975, 2) / sqrt(3) = 4.302653 / 1.732051 = 2.484138
    result = mean_interval([1.0, 2.0, 3.0])
    assert result["mean"] == 2.0 and result["sd"] == 1.0
    assert result["low"] == pytest.approx(2 - 2.484138, abs=1e-6)
    assert result["high"] == pytest.approx(2 + 2.484138, abs=1e-6)
    assert mean_interval([0.5])["low"] is None and mean_interval([])["mean"] is None


@settings(max_examples=40, deadline=None)
@given(values)
def test_interval_matches_scipy(sample):
    result = mean_interval(sample)
    sem = scipy.stats.sem(sample)
    if sem == 0 or math.isnan(sem):
        assert result["low"] == pytest.approx(result["mean"]) == pytest.approx(result["high"])
        return
    low, high = scipy.stats.t.interval(0.95, len(sample) - 1, loc=sum(sample) / len(sample), scale=sem)
    assert result["low"] == pytest.approx(low, abs=1e-9) and result["high"] == pytest.approx(high, abs=1e-9)


@settings(max_examples=40, deadline=None)
@given(st.data())
def test_paired_difference_matches_scipy_ttest_rel(data):
    a = data.draw(values)
    b = data.draw(st.lists(st.floats(0.0, 1.0, allow_nan=False), min_size=len(a), max_size=len(a)))
    diffs = [x - y for x, y in zip(a, b)]
    result = paired_difference(a, b)
    assert result["mean"] == pytest.approx(sum(diffs) / len(diffs), abs=1e-12)
    if scipy.stats.tstd(diffs) > 1e-9:
        interval = scipy.stats.ttest_rel(a, b).confidence_interval(0.95)
        assert result["low"] == pytest.approx(interval.low, abs=1e-9)
        assert result["high"] == pytest.approx(interval.high, abs=1e-9)


def test_paired_difference_needs_pairs():
    with pytest.raises(ConfirmError, match="3 values against 2 baseline runs"):
        paired_difference([0.1, 0.2, 0.3], [0.1, 0.2])


def row(model, mean, low, high, ratio=1.0):
    return {"model": model, "ratio": ratio, "vs_baseline": {"mean": mean, "low": low, "high": high}}


def test_verdict_words():
    base = {"model": "baseline"}
    assert verdict([base, row("trial 10", 0.008, 0.003, 0.013, 0.94), row("trial 4", 0.02, -0.01, 0.05)]) == (
        "trial 10 beats the baseline by 0.8 points (95% CI 0.3 to 1.3) at 0.94x its cost"
    )
    assert verdict([base, row("trial 1", 0.004, -0.002, 0.010)]) == (
        "no candidate is distinguishable from the baseline at this budget"
    )
    worse = verdict([base, row("trial 2", -0.02, -0.03, -0.01, 1.01), row("trial 3", -0.05, -0.07, -0.03)])
    assert worse.startswith("no candidate beats the baseline at this budget: the baseline beats every one")
    assert "trial 2, the closest, trails it by 2.0 points (95% CI 1.0 to 3.0) at 1.01x its cost" in worse


def test_folds_partition_the_whole_set_stratified():
    data = load_data("digits", image_size=8)
    total = len(data.train) + len(data.val) + len(data.test)
    import torch

    classes = torch.cat([data.train.labels, data.val.labels, data.test.labels]).bincount(minlength=10)
    parts = [fold_data(data, fold, 3) for fold in range(3)]
    assert sum(len(part.test) for part in parts) == total
    for part in parts:
        assert len(part.train) + len(part.test) == total and part.val is part.test
        counts = part.test.labels.bincount(minlength=10)
        assert ((counts - classes / 3).abs() <= 1).all()  # stratified: a third of every class, to one image
    # disjoint held-out folds: every image once (compare pixel rows of the held-out images)
    held = {tuple(image.flatten().tolist()) for part in parts for image in part.test.images}
    assert len(held) >= total - 60  # digits holds some duplicate images


def test_held_out_chooses_kfold_for_small_data_and_the_test_split_for_large():
    small = held_out(load_data("digits", image_size=8), seeds=3)
    assert small["kind"] == "kfold" and small["folds"] == 3 and len(small["units"]) == 9
    assert "3-fold over the whole set (1797 images" in small["text"]
    import torch

    large = from_tensors(torch.rand(10_000, 1, 4, 4), torch.arange(10_000) % 10)
    scheme = held_out(large, seeds=2)
    assert scheme["kind"] == "test" and scheme["units"] == [[0, None], [1, None]]
    assert scheme["text"].startswith(f"the test split ({len(large.test)} images)")
    with pytest.raises(ConfirmError, match="seeds=1 is too few with the test split"):
        held_out(large, seeds=1)


def tiny_digits(count: int = 150):
    """``count`` digits at 8x8 as a whole dataset (k-fold over it stays cheap)."""
    full = load_data("digits", image_size=8)
    return from_tensors(full.train.images[:count], full.train.labels[:count], num_classes=10, name="digits")


@pytest.fixture(scope="module")
def searched():
    data = tiny_digits()
    study = budgetnet.search("small", data, n_trials=3, epochs=1, seed=0, progress=False,
                             storage=optuna.storages.InMemoryStorage())  # fmt: skip
    return study, data


def test_confirm_retrains_the_best_and_the_baseline_and_resumes(searched):
    study, data = searched
    report = confirm(study, top=2, seeds=1, folds=2, data=data, progress=False)
    models = report["models"]
    assert models[0]["model"] == "baseline" and len(models) == 3
    assert [model["trial"] for model in models[1:]] == [t.number for t in _best_distinct(study, 2)]
    assert all(len(model["runs"]) == 2 and None not in model["runs"] for model in models)
    assert report["complete"] and report["held_out"]["kind"] == "kfold"
    assert models[1]["vs_baseline"]["mean"] == pytest.approx(
        sum(a - b for a, b in zip(models[1]["runs"], models[0]["runs"])) / 2
    )
    assert StudyRecord.read(study).confirmation["verdict"] == report["verdict"]
    assert len(confirm_trials(study)) == 6
    # confirmation runs are not search trials
    assert trial_counts(study)["finished"] == 3 and summarize(study)["confirmation"]["verdict"] == report["verdict"]
    again = confirm(study, top=2, seeds=1, folds=2, data=data, progress=False)  # resumed: nothing retrained
    assert len(confirm_trials(study)) == 6 and again["models"][1]["runs"] == models[1]["runs"]


def _best_distinct(study, count):
    seen, kept = set(), []
    trials = [t for t in study.trials if t.state == TrialState.COMPLETE and TrialRecord.read(t).confirm is None
              and TrialRecord.read(t).status == "ok"]  # fmt: skip
    for trial in sorted(trials, key=lambda t: (-t.values[0], TrialRecord.read(t).macs, t.number)):
        if TrialRecord.read(trial).fingerprint not in seen:
            seen.add(TrialRecord.read(trial).fingerprint)
            kept.append(trial)
    return kept[:count]


def test_a_lost_retraining_is_queued_again_with_its_job(searched):
    study, data = searched
    confirm(study, top=1, seeds=1, folds=3, data=data, progress=False)
    done = len(confirm_trials(study, (TrialState.COMPLETE,)))
    # a worker claims a job and dies: queue one job and claim it without finishing it
    job = dict(TrialRecord.read(confirm_trials(study, (TrialState.COMPLETE,))[0]).confirm, key="lost|job")
    study.enqueue_trial({}, user_attrs=TrialRecord(confirm=job).to_dict())
    claimed = study.ask()
    assert TrialRecord.read(claimed).confirm["key"] == "lost|job"
    assert recover_trials(study) == [claimed.number]  # budgetnet recover, on a journal file
    waiting = confirm_trials(study, (TrialState.WAITING,))
    assert [TrialRecord.read(t).confirm["key"] for t in waiting] == ["lost|job"]
    confirm(study, top=1, seeds=1, folds=3, data=data, progress=False)
    assert len(confirm_trials(study, (TrialState.COMPLETE,))) == done + 1


@pytest.mark.parametrize(
    "options, message",
    [
        ({"top": 0}, "confirm top=0 is invalid; expected a whole number >= 1"),
        ({"seeds": -1}, "confirm seeds=-1 is invalid; expected a whole number >= 1"),
        ({"seeds": 2.5}, "confirm seeds=2.5 is invalid; expected a whole number >= 1"),
        ({"folds": 1}, "confirm folds=1 is invalid; expected a whole number >= 2"),
    ],
)
def test_bad_options(options, message):
    with pytest.raises(ConfirmError, match=message.replace("(", r"\(")):
        confirm(optuna.create_study(), **options)


def test_a_study_with_no_baseline_or_no_completed_trial():
    with pytest.raises(ConfirmError, match=r"has no baseline \(baseline=None\)"):
        confirm(optuna.create_study(study_name="plain"))
    study = optuna.create_study(direction="maximize")
    StudyRecord.write(study, settings={"baseline": {"arch": {}, "notation": "(3,4)", "macs": 1}})
    study.add_trial(optuna.create_trial(value=0.0, user_attrs={"status": "infeasible"}))
    with pytest.raises(ConfirmError, match=r"no completed trial inside the budget \(completed=0\)"):
        confirm(study)


WORKER = """
import sys, optuna
sys.path.insert(0, {tests!r})
from test_confirm import tiny_digits
from budgetnet.studies.confirm import confirm
from budgetnet.studies.storage import open_storage
study = optuna.load_study(study_name="s", storage=open_storage({url!r}))  # SQLite with BEGIN IMMEDIATE
confirm(study, top=1, seeds=1, folds=2, data=tiny_digits(), device="cpu", progress=False)
"""


def test_two_processes_confirm_one_study_and_each_retraining_runs_once(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    url = f"sqlite:///{tmp_path / 'c.db'}"
    data = tiny_digits()
    storage = open_storage(url)  # budgetnet's SQLite: two processes never take one queued trial
    study = budgetnet.search("small", data, n_trials=2, epochs=1, seed=0, progress=False, storage=storage,
                             study_name="s")  # fmt: skip
    code = WORKER.format(tests=str(Path(__file__).resolve().parent), url=url)
    workers = [subprocess.Popen([sys.executable, "-c", code]) for _ in range(2)]
    assert [worker.wait(timeout=300) for worker in workers] == [0, 0]
    trained = [TrialRecord.read(t).confirm["key"] for t in confirm_trials(study, (TrialState.COMPLETE,))]
    assert len(trained) == len(set(trained)) == 2 * 2  # baseline and 1 candidate x 1 seed x 2 folds, once each
    assert StudyRecord.read(study).confirmation["complete"]


def test_on_the_test_split_the_first_seed_reuses_kept_weights(tmp_path, monkeypatch):
    import budgetnet.studies.confirm as confirm_module

    monkeypatch.setattr(confirm_module, "KFOLD_MAX", 100)  # tiny data scored on its test split, as large data is
    data = tiny_digits()
    study = budgetnet.search("small", data, n_trials=1, epochs=1, seed=0, progress=False, keep_weights=tmp_path,
                             storage=optuna.storages.InMemoryStorage())  # fmt: skip
    report = confirm(study, top=1, seeds=2, data=data, device="cpu", progress=False)
    assert report["held_out"]["kind"] == "test" and report["held_out"]["images"] == len(data.test)
    runs = {(TrialRecord.read(t).confirm["model"], TrialRecord.read(t).confirm["seed"]): TrialRecord.read(t)
            for t in confirm_trials(study, (TrialState.COMPLETE,))}  # fmt: skip
    kept = runs[("trial 0", 0)]
    assert kept.weights == str(tmp_path.absolute() / "trial0.pt") and kept.epochs is None  # scored, not retrained
    assert runs[("trial 0", 1)].weights is None and runs[("trial 0", 1)].epochs == 1
    assert runs[("baseline", 0)].weights is None


@pytest.mark.parametrize("cost", ["macs", "latency"])
def test_a_multi_objective_study_is_confirmed_with_each_models_own_cost(cost):
    """A confirmation retraining is a trial of the study: it gives as many values as the study
    has objectives, the held-out accuracy first, then the model's own cost (its Eqn. (1)
    MACs, or the latency measured for it in the search)."""
    data = tiny_digits()
    study = budgetnet.search("small", data, n_trials=3, epochs=1, seed=0, progress=False, objectives=("accuracy", cost),
                             train_baseline=True, storage=optuna.storages.InMemoryStorage())  # fmt: skip
    report = confirm(study, top=1, seeds=2, folds=2, data=data, device="cpu", progress=False)
    runs = confirm_trials(study, (TrialState.COMPLETE,))
    assert len(runs) == 2 * 2 * 2 and not confirm_trials(study, (TrialState.FAIL,))  # 2 models x 2 seeds x 2 folds
    baseline = StudyRecord.read(study).baseline_result
    for run in runs:
        job = TrialRecord.read(run).confirm
        searched = None if job["trial"] is None else TrialRecord.read(study.trials[job["trial"]])
        if cost == "macs":
            expected = baseline["macs"] if searched is None else searched.macs
        else:
            expected = baseline["latency_ms"] if searched is None else searched.latency_ms
        assert run.values == [TrialRecord.read(run).val_accuracy, pytest.approx(expected)]
    assert StudyRecord.read(study).confirmation["complete"] and report is not None
