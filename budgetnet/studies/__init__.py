"""Optuna studies: the search, storage, worker processes, trial records, results and export.

Example:
    >>> import optuna
    >>> from budgetnet.studies import search, summarize
    >>> from budgetnet.training import load_data
    >>> study = search("small", load_data("digits", limit=60), n_trials=1, epochs=1,
    ...                storage=optuna.storages.InMemoryStorage(), progress=False)
    >>> summarize(study)["counts"]["finished"]
    1
"""

from budgetnet.studies.export import export_trial, module_source
from budgetnet.studies.record import StudyRecord, TrialRecord
from budgetnet.studies.results import best_trial, pareto_trials, summarize
from budgetnet.studies.storage import load_study, open_storage, storage_url
from budgetnet.studies.study import search, setup_search
from budgetnet.studies.worker import recover_trials

__all__ = [
    "StudyRecord",
    "TrialRecord",
    "best_trial",
    "export_trial",
    "load_study",
    "module_source",
    "open_storage",
    "pareto_trials",
    "recover_trials",
    "search",
    "setup_search",
    "storage_url",
    "summarize",
]
