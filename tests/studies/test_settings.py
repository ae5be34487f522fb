"""The samplers and pruners a search may choose, and the random control beside it."""

from __future__ import annotations

import optuna
import pytest

import budgetnet
from budgetnet.errors import SearchError
from budgetnet.studies.record import StudyRecord, TrialRecord
from budgetnet.studies.results import completed, summarize, trial_counts
from budgetnet.studies.settings import PRUNERS, TrialSeededSampler, check_sampler, make_pruner
from budgetnet.training.data import load_data
from search_spaces.base import get_space


@pytest.fixture(scope="module")
def data():
    return load_data("digits", image_size=8, limit=60)


def test_the_cli_lists_the_same_pruners():
    from budgetnet.cli import search as cli_search
    from budgetnet.studies import settings

    assert cli_search.PRUNERS == PRUNERS and cli_search.DEFAULT_PRUNER == settings.DEFAULT_PRUNER


@pytest.mark.parametrize("name, kind", [("median", "MedianPruner"), ("percentile25", "PercentilePruner"),
                                        ("wilcoxon", "WilcoxonPruner"), ("hyperband", "HyperbandPruner"),
                                        ("none", "NopPruner")])  # fmt: skip
def test_pruners_by_name(name, kind):
    assert type(make_pruner(name, ("accuracy",), 9)).__name__ == kind


def test_sampler_checks(data):
    space = get_space("small", input_shape=data.input_shape, num_classes=10)
    assert check_sampler("gp", ("accuracy",), space) == "gp"
    with pytest.raises(SearchError, match="sampler='cmaes' needs numeric parameters, but space 'small' chooses"):
        check_sampler("cmaes", ("accuracy",), space)
    with pytest.raises(SearchError, match="sampler='cmaes' optimises one objective"):
        check_sampler("cmaes", ("accuracy", "macs"), space)
    with pytest.raises(SearchError, match="sampler='nsga2' is for several objectives, but objectives=accuracy"):
        check_sampler("nsga2", ("accuracy",))
    with pytest.raises(SearchError, match="sampler='bo' is unknown; expected one of tpe, random, gp, cmaes, nsga2"):
        check_sampler("bo", ("accuracy",))


@pytest.mark.parametrize("sampler, objectives", [("random", "accuracy"), ("gp", "accuracy"),
                                                 ("nsga2", "accuracy,macs")])  # fmt: skip
def test_a_search_runs_with_each_sampler(data, sampler, objectives):
    study = budgetnet.search("small", data, n_trials=2, epochs=1, seed=0, progress=False, sampler=sampler,
                             objectives=objectives, storage=optuna.storages.InMemoryStorage())  # fmt: skip
    assert trial_counts(study)["finished"] == 2
    assert StudyRecord.read(study).setting("sampler") == sampler


def test_the_control_runs_as_many_random_trials_in_the_same_study(data):
    study = budgetnet.search("small", data, n_trials=2, epochs=1, seed=0, progress=False, control="random",
                             storage=optuna.storages.InMemoryStorage())  # fmt: skip
    arms = [TrialRecord.read(trial).arm for trial in study.trials]
    assert arms == [None, None, "control", "control"]  # the control's slots come after the search's
    assert trial_counts(study)["finished"] == 2 and trial_counts(study, of="control")["finished"] == 2
    assert all(TrialRecord.read(t).arm is None for t in completed(study))
    summary = summarize(study)
    assert summary["control"]["sampler"] == "random" and summary["control"]["counts"]["finished"] == 2


def test_a_resumed_search_with_a_control_queues_each_arm_its_missing_trials(data):
    storage = optuna.storages.InMemoryStorage()
    budgetnet.search("small", data, n_trials=1, epochs=1, seed=0, progress=False, control="random", storage=storage)
    study = budgetnet.search("small", data, n_trials=2, epochs=1, seed=0, progress=False, control="random",
                             storage=storage)  # fmt: skip
    assert trial_counts(study)["finished"] == 2 and trial_counts(study, of="control")["finished"] == 2


def test_control_trials_get_a_random_sampler():
    study = optuna.create_study(sampler=TrialSeededSampler(0, "tpe"))
    study.enqueue_trial({}, user_attrs={"arm": "control"})
    trial = study.ask()
    assert type(study.sampler.current).__name__ == "RandomSampler" and trial.user_attrs["arm"] == "control"
    study.ask()
    assert type(study.sampler.current).__name__ == "TPESampler"


def test_a_control_needs_one_objective(data):
    with pytest.raises(SearchError, match="control='random' needs one objective, but objectives=accuracy,macs"):
        budgetnet.search("small", data, n_trials=1, objectives="accuracy,macs", control="random",
                         storage=optuna.storages.InMemoryStorage())  # fmt: skip
    with pytest.raises(SearchError, match="control='grid' is unknown; expected one of random"):
        budgetnet.search("small", data, n_trials=1, control="grid", storage=optuna.storages.InMemoryStorage())
