"""budgetnet.search: trials, budget, pruning, resume, reproducibility, reports and bad input.

Most tests use a tiny stand-in space (one conv width to choose) on 8x8 digits and 1 epoch,
so each trial takes a fraction of a second; one test runs the real small space end to end.
"""

from __future__ import annotations

import subprocess
import sys
import time

import optuna
import pytest
import torch
from optuna.trial import TrialState

import budgetnet
from budgetnet import SPP, Conv, Pool
from budgetnet.training.data import load_data
from budgetnet.errors import BudgetError, BudgetNetError, SearchError, ShapeError
from budgetnet.studies.record import StudyRecord
from budgetnet.studies.results import format_summary, summarize, trial_counts
from budgetnet.studies.study import counted_trials
from search_spaces.base import SearchSpace, get_space


class TinySpace(SearchSpace):
    """Stand-in space: the second conv's width is the only choice; 8x8 inputs."""

    name = "tiny"

    def __init__(self, widths=(4, 6, 8), budget=None, delay=0.0, error=None):
        super().__init__(budgetnet.parse("(3,4) 2/2 (3,8) gap", input_shape=(1, 8, 8), num_classes=10), budget)
        self.widths, self.delay, self.error = tuple(widths), delay, error

    def suggest(self, trial):
        width = trial.suggest_categorical("width", list(self.widths))
        time.sleep(self.delay)
        if self.error is not None:
            raise self.error
        return self.baseline.with_layers([Conv(3, 4), Pool(2), Conv(3, width), SPP((1,), "avg")])

    def check(self):
        if not any(self.budget.admits(self.baseline.with_layers(
                [Conv(3, 4), Pool(2), Conv(3, w), SPP((1,), "avg")])) for w in self.widths):  # fmt: skip
            raise BudgetError(f"tiny space: no width of {self.widths} meets budget {self.budget}")

    def options(self):
        return {"widths": list(self.widths)}

    def summary(self):
        return f"width of conv2 in {self.widths}"


def eqn1(arch) -> int:
    """Eqn. (1) by hand from the layer shapes: n_{l-1} * s^2 * n_l * m_l^2 over the convs."""
    total = 0
    for info in arch.shapes:
        if info.kind == "conv":
            total += info.in_shape[0] * info.layer.kernel_size**2 * info.out_shape[0] * info.out_shape[1] * info.out_shape[2]
    return total


@pytest.fixture(scope="module")
def tiny_data():
    return load_data("digits", image_size=8, limit=60)


def memory():
    return optuna.storages.InMemoryStorage()


def run(space=None, data=None, **options):
    options.setdefault("n_trials", 2)
    options.setdefault("epochs", 1)
    options.setdefault("progress", False)
    options.setdefault("seed", 0)
    options.setdefault("storage", memory())
    return budgetnet.search(space or TinySpace(), data, **options)


def test_end_to_end_small_space_on_digits(tmp_path):
    data = load_data("digits", limit=120)
    study = budgetnet.search("small", data, n_trials=2, epochs=1, storage=str(tmp_path / "s.db"),
                             seed=0, progress=False, device="cpu")  # fmt: skip
    assert study.study_name == "small-digits"
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 2
    baseline = budgetnet.Arch.from_dict(study.user_attrs["budgetnet"]["baseline"]["arch"])
    for trial in study.trials:
        attrs = trial.user_attrs
        arch = budgetnet.Arch.from_dict(attrs["arch"])
        assert arch.notation() == attrs["notation"] and arch.input_shape == (1, 16, 16)
        assert attrs["macs"] == eqn1(arch)
        assert attrs["ratio"] == pytest.approx(eqn1(arch) / eqn1(baseline))
        assert attrs["params"] == sum(p.numel() for p in budgetnet.build(arch).parameters())
        assert attrs["status"] == "ok" and attrs["epochs"] == 1 and attrs["device"] == "cpu"
        assert attrs["latency_ms"] > 0 and attrs["train_seconds"] > 0
        assert trial.values[0] == attrs["val_accuracy"] and 0.0 <= trial.values[0] <= 1.0
        assert trial.constraints["budget"] <= 0  # inside the budget
    # The study opens again from its file, with the same trials.
    again = optuna.load_study(study_name="small-digits", storage=f"sqlite:///{tmp_path / 's.db'}")
    assert [t.values for t in again.trials] == [t.values for t in study.trials]


def test_over_budget_candidates_are_recorded_infeasible_and_never_trained(tiny_data):
    narrow = TinySpace(widths=(4,)).baseline.with_layers([Conv(3, 4), Pool(2), Conv(3, 4), SPP((1,), "avg")])
    space = TinySpace(widths=(4, 64), budget=eqn1(narrow))  # width 64 is over the budget
    study = run(space, tiny_data, n_trials=6)
    over = [t for t in study.trials if t.params["width"] == 64]
    inside = [t for t in study.trials if t.params["width"] == 4]
    assert over and inside
    for trial in over:
        assert trial.state == TrialState.COMPLETE and trial.user_attrs["status"] == "infeasible"
        assert trial.constraints["budget"] == eqn1(budgetnet.Arch.from_dict(trial.user_attrs["arch"])) - space.budget.limit_macs
        assert trial.constraints["budget"] > 0
        assert "train_seconds" not in trial.user_attrs and trial.values == [0.0]
    counts = trial_counts(study)
    assert counts["infeasible"] == len(over) and counts["complete"] == len(inside)
    assert summarize(study)["best"]["params_sampled"] == {"width": 4}


def test_budget_no_candidate_meets_is_an_error_before_any_trial(tiny_data, tmp_path):
    with pytest.raises(BudgetError, match=r"no width of \(4, 8\) meets budget"):
        run(TinySpace(widths=(4, 8), budget=10), tiny_data, storage=str(tmp_path / "s.db"))
    assert not (tmp_path / "s.db").exists()  # refused before the storage was touched
    small = get_space("small", budget="1K", input_shape=(1, 16, 16), num_classes=10)
    with pytest.raises(BudgetError, match="1.0K MACs"):
        run(small, load_data("digits", limit=60))


def test_seeded_search_is_reproducible_on_one_worker(tiny_data):
    first, second = (run(TinySpace(widths=(4, 5, 6, 7, 8)), tiny_data, n_trials=4, seed=3) for _ in range(2))
    assert [t.params for t in first.trials] == [t.params for t in second.trials]
    assert [t.values for t in first.trials] == [t.values for t in second.trials]


def test_resume_keeps_finished_trials_and_tops_up_to_n_trials(tiny_data, tmp_path):
    storage = str(tmp_path / "s.db")
    first = run(TinySpace(widths=tuple(range(4, 12))), tiny_data, n_trials=2, storage=storage, study_name="r")
    before = [(t.number, t.params, t.values) for t in first.trials]
    again = run(TinySpace(widths=tuple(range(4, 12))), tiny_data, n_trials=2, storage=storage, study_name="r")
    assert len(again.trials) == 2  # the same command again: nothing left to do
    more = run(TinySpace(widths=tuple(range(4, 12))), tiny_data, n_trials=4, storage=storage, study_name="r")
    assert len(counted_trials(more)) == 4 and len(more.trials) == 4
    assert [(t.number, t.params, t.values) for t in more.trials[:2]] == before


def test_resume_with_other_objectives_or_space_is_an_error(tiny_data, tmp_path):
    storage = str(tmp_path / "s.db")
    run(TinySpace(), tiny_data, n_trials=1, storage=storage, study_name="o")
    with pytest.raises(SearchError, match=r"study 'o' was created with objectives=\[\"accuracy\"\]; this run asks "
                       r"for objectives=\[\"accuracy\", \"macs\"\]"):  # fmt: skip
        run(TinySpace(), tiny_data, n_trials=1, storage=storage, study_name="o", objectives=("accuracy", "macs"))
    with pytest.raises(SearchError, match="study 'o' was created with space="):
        run(TinySpace(widths=(4, 5)), tiny_data, n_trials=1, storage=storage, study_name="o")
    with pytest.raises(SearchError, match="study 'o' was created with recipe="):
        run(TinySpace(), tiny_data, n_trials=1, storage=storage, study_name="o", epochs=2)


def test_timeout_stops_a_trial_and_queues_it_again(tiny_data):
    storage = memory()
    space = TinySpace(delay=1.5)  # sampling alone outlasts the timeout
    study = run(space, tiny_data, n_trials=3, epochs=2, timeout=1.0, storage=storage, study_name="t")
    stopped = study.trials[0]
    assert stopped.state == TrialState.FAIL and stopped.user_attrs["status"] == "interrupted"
    assert "timeout was reached after epoch 1 of 2" in stopped.user_attrs["error"]
    queued = [t for t in study.trials if t.user_attrs.get("retry_of") == stopped.number]
    assert len(queued) == 1 and queued[0].state == TrialState.WAITING
    resumed = run(TinySpace(), tiny_data, n_trials=3, epochs=2, storage=storage, study_name="t")
    retry = resumed.trials[queued[0].number]
    assert retry.state == TrialState.COMPLETE and retry.params == stopped.params
    assert len(counted_trials(resumed)) == 3


def test_only_pruned_search_ends_with_a_clear_report(tiny_data):
    always = optuna.pruners.ThresholdPruner(lower=1.01)  # no accuracy reaches 101 %
    study = run(TinySpace(), tiny_data, n_trials=2, epochs=2, pruner=always)
    assert [t.state for t in study.trials] == [TrialState.PRUNED] * 2
    assert all(t.user_attrs["status"] == "pruned" and t.user_attrs["epochs"] == 1 for t in study.trials)
    summary = summarize(study)
    assert summary["best"] is None
    assert "No candidate completed inside the budget: every trained candidate was pruned" in summary["message"]
    assert "2 pruned" in format_summary(summary)


def test_only_failed_search_ends_with_a_clear_report(tiny_data, capfd):
    study = run(TinySpace(error=ShapeError("conv2 maps 1x1 to 0x0")), tiny_data, n_trials=2)
    assert "Traceback" not in capfd.readouterr().err  # the record says why; no Optuna traceback
    assert [t.state for t in study.trials] == [TrialState.FAIL] * 2
    assert trial_counts(study)["failed"] == 2 and len(counted_trials(study)) == 2
    summary = summarize(study)
    assert summary["best"] is None
    assert "2 failed" in summary["message"] and "trials failed with: conv2 maps 1x1 to 0x0" in summary["message"]


def test_a_repeated_architecture_reuses_the_first_result(tiny_data):
    study = run(TinySpace(widths=(6,)), tiny_data, n_trials=3)
    first, *others = study.trials
    for trial in others:
        assert trial.user_attrs["duplicate_of"] == first.number and trial.values == first.values
    assert [record["trial"] for record in summarize(study)["top"]] == [first.number]  # listed once


def test_macs_objective_gives_two_values_and_refuses_pruning(tiny_data):
    with pytest.warns(UserWarning, match="pruner='median' is ignored: Optuna prunes single-objective studies only"):
        study = run(TinySpace(), tiny_data, n_trials=2, objectives="accuracy,macs", pruner="median")
    assert [d.name for d in study.directions] == ["MAXIMIZE", "MINIMIZE"]
    for trial in study.trials:
        assert trial.values[1] == trial.user_attrs["macs"] == eqn1(budgetnet.Arch.from_dict(trial.user_attrs["arch"]))


def test_latency_objective_and_kept_weights(tiny_data, tmp_path):
    study = run(TinySpace(), tiny_data, n_trials=1, objectives=["accuracy", "latency"], keep_weights=tmp_path)
    trial = study.trials[0]
    assert trial.values[1] == trial.user_attrs["latency_ms"] > 0
    state = torch.load(trial.user_attrs["weights"], weights_only=True)
    arch = budgetnet.Arch.from_dict(trial.user_attrs["arch"])
    assert state.keys() == budgetnet.build(arch).state_dict().keys()


def test_baseline_is_trained_once_for_comparison(tiny_data):
    study = run(TinySpace(), tiny_data, n_trials=1, train_baseline=True)
    result = study.user_attrs["baseline_result"]
    assert result["notation"] == "(3,4) 2/2 (3,8) gap" and 0 <= result["accuracy"] <= 1
    assert result["macs"] == eqn1(TinySpace().baseline)
    assert f"(baseline {result['accuracy']:.4f})" in summarize(study)["message"]
    assert summarize(study)["spread"] is None  # one seed: no spread to compare with


def test_baseline_on_several_seeds_gives_the_spread_and_a_resume_adds_a_seed(tiny_data):
    storage = memory()
    study = run(TinySpace(), tiny_data, n_trials=1, train_baseline=True, baseline_seeds=2, seed=3,
                storage=storage, study_name="b")  # fmt: skip
    runs = StudyRecord.read(study).baseline_result["runs"]
    assert [r["seed"] for r in runs] == [3, 4]
    study = run(TinySpace(), tiny_data, n_trials=1, train_baseline=True, seed=7, storage=storage, study_name="b")
    result = StudyRecord.read(study).baseline_result
    assert [r["seed"] for r in result["runs"]] == [3, 4, 7]  # seeds 3 and 4 were not trained again
    accuracies = [r["accuracy"] for r in result["runs"]]
    assert result["accuracy"] == pytest.approx(sum(accuracies) / 3)
    assert summarize(study)["spread"]["seeds"] == 3
    with pytest.raises(SearchError, match="baseline_seeds=0 is invalid; expected a whole number >= 1"):
        run(TinySpace(), tiny_data, train_baseline=True, baseline_seeds=0)


def spread_study(best: float) -> optuna.Study:
    """A hand-made study: one trial at ``best``, a baseline at 0.90, 0.92 and 0.94 on three seeds."""
    study = optuna.create_study(direction="maximize")
    study.add_trial(optuna.create_trial(value=best, user_attrs={"status": "ok", "macs": 1000, "notation": "(3,8)"}))
    runs = [{"seed": seed, "accuracy": accuracy} for seed, accuracy in enumerate((0.90, 0.92, 0.94))]
    StudyRecord.write(study, baseline_result={"notation": "(3,4)", "accuracy": 0.92, "runs": runs})
    return study


def test_results_show_the_spread_over_seeds_and_mark_a_difference_smaller_than_it():
    # By hand: mean 0.92; sample standard deviation sqrt((0.02^2 + 0 + 0.02^2) / 2) = 0.02.
    close = summarize(spread_study(0.93))
    assert close["spread"] == pytest.approx({"seeds": 3, "mean": 0.92, "std": 0.02, "min": 0.90, "max": 0.94})
    assert close["best"]["vs_baseline"] == pytest.approx(0.01) and close["best"]["within_spread"] is True
    assert "(baseline 0.9200 ± 0.0200 over 3 seeds)" in close["message"]
    assert "difference from the baseline, +0.0100, is smaller than the spread over seeds (0.0200)" in close["message"]
    text = format_summary(close)
    assert "mean of 3 seeds (spread: standard deviation 0.0200, 0.9000 to 0.9400); ~ marks a difference" in text
    header, _, row = text.split("best trials:\n")[1].splitlines()[:3]
    assert header.split()[:4] == ["trial", "accuracy", "vs", "baseline"] and "+0.0100 ~" in row
    clear = summarize(spread_study(0.97))  # 0.05 above the mean: more than the spread
    assert clear["best"]["within_spread"] is False and "not a clear improvement" not in clear["message"]
    assert "+0.0500 ~" not in format_summary(clear) and "+0.0500" in format_summary(clear)


@pytest.mark.parametrize(
    "options, message",
    [
        (dict(objectives="accuracy,flops"), "objective='flops' is unknown; expected one of accuracy, macs, latency"),
        (dict(objectives="macs"), r"objectives=\('macs',\) is invalid; expected 'accuracy' alone"),
        (dict(objectives="accuracy,macs,latency"), "is invalid; expected 'accuracy' alone, or 'accuracy' with"),
        (dict(pruner="successive"), "pruner='successive' is unknown; expected one of median, percentile25, percentile75, wilcoxon, hyperband, none"),
        (dict(n_trials=0), "n_trials=0 is invalid; expected a whole number >= 1"),
        (dict(n_trials=None), "n_trials=None and timeout=None: the search would never end"),
        (dict(timeout=-1), "timeout=-1 is invalid; expected seconds > 0"),
    ],
)
def test_bad_arguments(tiny_data, options, message):
    with pytest.raises(SearchError, match=message):
        run(TinySpace(), tiny_data, **options)


def test_unknown_space_and_mismatched_data(tiny_data):
    with pytest.raises(SearchError, match="space='nas' is unknown; expected one of replacement, residual, residual224, small, stage"):
        run("nas", tiny_data)
    with pytest.raises(SearchError, match=r"space 'tiny' designs for input \(1, 8, 8\) and 10 classes, but data"):
        run(TinySpace(), load_data("digits", limit=60))
    with pytest.raises(SearchError, match="data=42 is invalid"):
        run(TinySpace(), 42)
    assert issubclass(SearchError, BudgetNetError)


def test_import_budgetnet_does_not_import_optuna_or_torch():
    code = "import sys, budgetnet; print('optuna' in sys.modules, 'torch' in sys.modules, callable(budgetnet.search))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "False", "True"]


def test_a_journal_file_holds_a_resumable_search(tiny_data, tmp_path):
    storage = str(tmp_path / "search.journal")
    run(TinySpace(), tiny_data, n_trials=1, storage=storage, study_name="j")
    study = run(TinySpace(), tiny_data, n_trials=2, storage=storage, study_name="j")
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 2
    assert (tmp_path / "search.journal").stat().st_size > 0


# -- issue 20: set-up that resumes, slots queued one at a time, one target ---------------------------
def test_a_study_whose_set_up_was_cut_off_is_set_up_by_the_next_run(tiny_data, monkeypatch):
    from budgetnet.studies import study as study_module

    monkeypatch.setattr(study_module, "SETUP_WAIT_SECONDS", 0.2)  # the creator is gone: do not wait for it
    storage = memory()
    bare = optuna.create_study(storage=storage, study_name="cut", direction="maximize")  # Ctrl-C before any write
    half = optuna.create_study(storage=storage, study_name="half", direction="maximize")
    template = run(TinySpace(), tiny_data, n_trials=1, storage=memory(), study_name="template")
    StudyRecord.write(half, settings=StudyRecord.read(template).settings)  # cut off after the settings
    for name in ("cut", "half"):
        study = run(TinySpace(), tiny_data, n_trials=2, storage=storage, study_name=name)
        record = StudyRecord.read(study)
        assert record.ready and record.n_trials == 2 and len(counted_trials(study)) == 2
    assert bare.study_name == "cut"
    with pytest.raises(SearchError, match="study 'half' was created with recipe="):  # what was written is checked
        run(TinySpace(), tiny_data, n_trials=2, epochs=2, storage=storage, study_name="half")


def test_a_huge_target_queues_nothing_up_front(tiny_data):
    from budgetnet.studies.study import setup_search

    storage = memory()
    study = setup_search(TinySpace(), tiny_data, n_trials=10**9, epochs=1, seed=0, storage=storage, study_name="huge")
    assert study.trials == [] and StudyRecord.read(study).n_trials == 10**9
    study = run(TinySpace(), tiny_data, n_trials=2, storage=storage, study_name="huge")
    assert len(study.trials) == 2  # one slot queued per trial, none left over


def test_a_later_smaller_target_runs_nothing_and_leaves_no_surplus(tiny_data):
    storage = memory()
    run(TinySpace(), tiny_data, n_trials=3, storage=storage, study_name="down")
    study = run(TinySpace(), tiny_data, n_trials=1, storage=storage, study_name="down")
    assert len(study.trials) == 3 and len(counted_trials(study)) == 3
    assert trial_counts(study)["surplus"] == 0 and StudyRecord.read(study).n_trials == 1


def test_a_trial_that_starts_when_others_fill_the_target_is_a_surplus(tiny_data):
    from types import SimpleNamespace

    from budgetnet.studies.worker import Worker

    storage = memory()
    study = run(TinySpace(), tiny_data, n_trials=1, storage=storage, study_name="race")
    other = study.ask()  # another worker's trial, started and claimed
    other.set_user_attr("worker", "elsewhere:1")
    mine = study.ask()
    worker = Worker(study, storage, SimpleNamespace(control=None, deadline=None), progress=False, n_trials=3)
    assert not worker._is_surplus(mine)  # 1 finished + 1 running elsewhere + this one = 3
    unclaimed = study.ask()  # taken from the queue, not claimed yet: not counted by the others
    assert not worker._is_surplus(unclaimed)
    mine.set_user_attr("worker", "here:2")
    assert worker._is_surplus(unclaimed)  # 1 finished + 2 claimed running: the target of 3 is full
