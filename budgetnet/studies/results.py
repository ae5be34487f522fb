"""Reading a search's results: trial records, the best trial, the Pareto set, reports.

Every function takes an Optuna study written by :func:`budgetnet.search` and reads only its
trials and attributes, so a study opened from its storage (``budgetnet results``) reads the
same as the one a search returns.

Example:
    >>> import optuna
    >>> study = optuna.create_study(direction="maximize")
    >>> study.add_trial(optuna.create_trial(value=0.9, user_attrs={"status": "ok", "macs": 1000}))
    >>> best_trial(study).number, trial_counts(study)["complete"]
    (0, 1)
"""

from __future__ import annotations

import statistics

import optuna
from optuna.trial import TrialState

from budgetnet.cost.complexity import format_count
from budgetnet.errors import SearchError
from budgetnet.studies.record import StudyRecord, TrialRecord
from budgetnet.tables import text_table

#: Columns of the trial table, in order ("vs baseline" only when the baseline was trained).
COLUMNS = ("trial", "accuracy", "vs baseline", "MACs", "ratio", "params", "latency", "epochs", "seconds", "architecture")
#: Marks a difference from the baseline smaller than the spread over seeds.
WITHIN_SPREAD = "~"


def is_feasible(trial: optuna.trial.FrozenTrial) -> bool:
    """True when the trial was inside the budget (all its constraints <= 0).

    Example:
        >>> import optuna
        >>> is_feasible(optuna.create_trial(value=0.0, user_attrs={"status": "infeasible"}))
        False
    """
    return TrialRecord.read(trial).status != "infeasible" and all(v <= 0 for v in trial.constraints.values())


def arm(trial: optuna.trial.FrozenTrial) -> str:
    """``"search"`` for the search's own trials, ``"control"`` for those of ``--control random``,
    ``"confirm"`` for a confirmation retraining (:mod:`budgetnet.studies.confirm`).

    Example:
        >>> import optuna
        >>> arm(optuna.create_trial(value=0.5, user_attrs={"arm": "control"}))
        'control'
    """
    record = TrialRecord.read(trial)
    if record.confirm is not None:
        return "confirm"
    return record.arm or "search"


def is_finished(trial: optuna.trial.FrozenTrial) -> bool:
    """True for a trial that counts toward ``n_trials``: completed (infeasible included),
    pruned, or failed with an error inside the trial; not one stopped early or lost with its
    worker (those are queued again), nor a surplus one (started when the study was full).

    Example:
        >>> import optuna
        >>> is_finished(optuna.create_trial(state=optuna.trial.TrialState.FAIL, user_attrs={"status": "interrupted"}))
        False
    """
    if arm(trial) == "confirm":
        return False
    if trial.state in (TrialState.COMPLETE, TrialState.PRUNED):
        return True
    return trial.state == TrialState.FAIL and TrialRecord.read(trial).status == "error"


def trial_counts(study: optuna.Study, of: str = "search") -> dict:
    """How many trials are in each state.

    ``complete`` counts feasible completed trials; ``infeasible`` completed ones over the
    budget (never trained); ``failed`` errors inside a trial; ``lost`` trials stopped by a
    timeout, Ctrl-C or a dead worker (queued again); ``surplus`` trials that started when the
    study already held ``n_trials`` (never trained); ``finished`` what counts toward
    ``n_trials`` (complete + infeasible + pruned + failed); ``repeated`` the completed
    trials that sampled an architecture already trained and reused its result (counted in
    ``complete``, never trained again). ``of`` picks the trials counted:
    ``"search"`` (default), ``"control"`` (:func:`arm`) or ``"all"`` (both; never the
    confirmation's retrainings).

    Example:
        >>> import optuna
        >>> study = optuna.create_study(direction="maximize")
        >>> study.add_trial(optuna.create_trial(value=0.0, user_attrs={"status": "infeasible"}))
        >>> study.add_trial(optuna.create_trial(state=optuna.trial.TrialState.PRUNED))
        >>> counts = trial_counts(study)
        >>> counts["complete"], counts["infeasible"], counts["pruned"], counts["finished"]
        (0, 1, 1, 2)
    """
    kinds = ("complete", "infeasible", "pruned", "failed", "lost", "surplus", "running", "waiting", "repeated")
    counts = dict.fromkeys(kinds, 0)
    for trial in study.get_trials(deepcopy=False):
        kind = arm(trial)
        if kind == "confirm" or (of != "all" and kind != of):
            continue
        if trial.state == TrialState.COMPLETE:
            counts["complete" if is_feasible(trial) else "infeasible"] += 1
            counts["repeated"] += TrialRecord.read(trial).duplicate_of is not None
        elif trial.state == TrialState.PRUNED:
            counts["pruned"] += 1
        elif trial.state == TrialState.FAIL:
            status = TrialRecord.read(trial).status
            counts["failed" if status == "error" else "surplus" if status == "surplus" else "lost"] += 1
        elif trial.state == TrialState.RUNNING:
            counts["running"] += 1
        else:
            counts["waiting"] += 1
    counts["finished"] = counts["complete"] + counts["infeasible"] + counts["pruned"] + counts["failed"]
    return counts


def completed(study: optuna.Study, of: str = "search") -> list[optuna.trial.FrozenTrial]:
    """Feasible completed trials of the search (``of="control"``: of its random control),
    most accurate first (ties: cheaper first).

    Example:
        >>> import optuna
        >>> study = optuna.create_study(direction="maximize")
        >>> for value, macs in ((0.8, 10), (0.9, 20), (0.9, 15)):
        ...     study.add_trial(optuna.create_trial(value=value, user_attrs={"macs": macs, "status": "ok"}))
        >>> [trial.number for trial in completed(study)]
        [2, 1, 0]
    """
    trials = [
        trial
        for trial in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if is_feasible(trial) and arm(trial) == of
    ]
    return sorted(trials, key=lambda t: (-t.values[0], TrialRecord.read(t).macs or 0, t.number))


def best_trial(study: optuna.Study) -> optuna.trial.FrozenTrial | None:
    """The most accurate feasible completed trial (with several objectives: the most
    accurate member of the Pareto set), or ``None`` when there is none.

    Example:
        >>> import optuna
        >>> best_trial(optuna.create_study()) is None
        True
    """
    trials = completed(study)
    return trials[0] if trials else None


def cost_key(x: str) -> str:
    """The :class:`~budgetnet.studies.record.TrialRecord` field that holds a trial's cost ``x``
    (``"macs"`` or ``"latency"``).

    Example:
        >>> cost_key("latency")
        'latency_ms'
    """
    key = {"macs": "macs", "latency": "latency_ms"}.get(x)
    if key is None:
        raise SearchError(f"x={x!r} is invalid; expected 'macs' or 'latency'")
    return key


def pareto_trials(study: optuna.Study, x: str = "macs") -> list[optuna.trial.FrozenTrial]:
    """Feasible completed trials not beaten on both accuracy and ``x`` ("macs" or
    "latency"), most accurate first. With ``accuracy,x`` as objectives this is Optuna's
    Pareto set; for an accuracy-only study it is the accuracy/cost trade-off it found.

    Example:
        >>> import optuna
        >>> study = optuna.create_study(direction="maximize")
        >>> for value, macs in ((0.9, 100), (0.8, 50), (0.7, 80)):
        ...     study.add_trial(optuna.create_trial(value=value, user_attrs={"macs": macs, "status": "ok"}))
        >>> [t.number for t in pareto_trials(study)]
        [0, 1]
    """
    return _front(completed(study), x)


def _front(ranked: list, x: str) -> list:
    """The trials of ``ranked`` (most accurate first) that are cheaper in ``x`` than all before them."""
    key = cost_key(x)
    front, cheapest = [], float("inf")
    for trial in ranked:
        cost = TrialRecord.read(trial).get(key)
        if cost is not None and cost < cheapest:
            front.append(trial)
            cheapest = cost
    return front


def _distinct(trials: list) -> list:
    """The first trial of each architecture (repeats reuse its result: ``duplicate_of``)."""
    seen, kept = set(), []
    for trial in trials:
        key = TrialRecord.read(trial).fingerprint or trial.number
        if key not in seen:
            seen.add(key)
            kept.append(trial)
    return kept


def trial_record(trial: optuna.trial.FrozenTrial) -> dict:
    """One trial as plain JSON-ready values.

    Example:
        >>> import optuna
        >>> record = trial_record(optuna.create_trial(value=0.9, user_attrs={"macs": 1000, "status": "ok"}))
        >>> record["accuracy"], record["macs"], record["state"]
        (0.9, 1000, 'COMPLETE')
    """
    record = TrialRecord.read(trial)
    accuracy = record.val_accuracy
    if accuracy is None and trial.values and trial.state == TrialState.COMPLETE:
        accuracy = trial.values[0]
    report = {"trial": trial.number, "state": trial.state.name, "status": record.status, "accuracy": accuracy}
    report["values"] = trial.values
    for key in _REPORTED:
        report[key] = record.get(key)
    report["params_sampled"] = trial.params
    for key in ("duplicate_of", "retry_of", "weights", "worker", "error"):
        report[key] = record.get(key)
    return report


#: Trial record fields of a report row, after accuracy and values.
_REPORTED = ("macs", "ratio", "params", "latency_ms", "epochs", "train_seconds", "trial_seconds", "device",
             "notation", "fingerprint")  # fmt: skip


def summarize(study: optuna.Study, top: int = 10) -> dict:
    """The report of a search: settings, counts, best trial, Pareto set, the ``top`` best
    distinct architectures, and a plain-words ``message`` (also when nothing completed).

    Example:
        >>> import optuna
        >>> study = optuna.create_study(direction="maximize")
        >>> study.add_trial(optuna.create_trial(value=0.9, user_attrs={"macs": 1000, "status": "ok"}))
        >>> summary = summarize(study)
        >>> summary["best"]["trial"], summary["message"].split(". ")[-1]
        (0, 'Best: trial 0, validation accuracy 0.9000.')
    """
    record = StudyRecord.read(study)
    objectives = record.objectives
    counts = trial_counts(study)
    x = objectives[1] if len(objectives) > 1 else "macs"
    ranked = completed(study)
    best = ranked[0] if ranked else None
    summary = {
        "study": study.study_name,
        "objectives": objectives,
        "n_trials": record.n_trials,
        "space": record.setting("space", "space"),
        "data": record.setting("data", "name"),
        "budget": record.setting("budget"),
        "baseline": record.setting("baseline", "notation"),
        "baseline_macs": record.setting("baseline", "macs"),
        "baseline_result": record.baseline_result,
        "spread": seed_spread(record.baseline_result),
        "counts": counts,
        "best": None if best is None else trial_record(best),
        "pareto": [trial_record(trial) for trial in _front(ranked, x)],
        "top": [trial_record(trial) for trial in _distinct(ranked)[:top]],
        "failures": [
            trial_record(trial)
            for trial in study.get_trials(deepcopy=False, states=(TrialState.FAIL,))
            if arm(trial) != "confirm"
        ],
        "control": None,
        "confirmation": record.confirmation,
    }
    if record.control:
        control = completed(study, of="control")
        summary["control"] = {
            "sampler": record.control,
            "counts": trial_counts(study, of="control"),
            "best": trial_record(control[0]) if control else None,
        }
    for row in [summary["best"], *summary["pareto"], *summary["top"]]:
        if row is not None:
            row.update(compare_to_baseline(row.get("accuracy"), summary["baseline_result"], summary["spread"]))
    summary["message"] = _message(summary)
    return summary


def seed_spread(baseline_result: dict | None) -> dict | None:
    """The spread of the baseline's validation accuracy over its training seeds, or ``None``
    with fewer than two seeds: ``seeds``, ``mean``, ``std`` (sample standard deviation,
    the spread a difference is compared with), ``min`` and ``max``.

    Example:
        >>> runs = [{"seed": 0, "accuracy": 0.90}, {"seed": 1, "accuracy": 0.92}, {"seed": 2, "accuracy": 0.94}]
        >>> spread = seed_spread({"accuracy": 0.92, "runs": runs})
        >>> spread["seeds"], round(spread["std"], 4), spread["min"], spread["max"]
        (3, 0.02, 0.9, 0.94)
    """
    accuracies = [run["accuracy"] for run in (baseline_result or {}).get("runs", [])]
    if len(accuracies) < 2:
        return None
    return {
        "seeds": len(accuracies),
        "mean": statistics.fmean(accuracies),
        "std": statistics.stdev(accuracies),
        "min": min(accuracies),
        "max": max(accuracies),
    }


def compare_to_baseline(accuracy: float | None, baseline_result: dict | None, spread: dict | None) -> dict:
    """``vs_baseline`` (accuracy minus the baseline's mean) and ``within_spread`` (True when
    that difference is smaller than the spread over seeds; ``None`` without a spread).

    Example:
        >>> compare_to_baseline(0.93, {"accuracy": 0.92}, {"std": 0.02})
        {'vs_baseline': 0.010000000000000009, 'within_spread': True}
    """
    if accuracy is None or not baseline_result:
        return {"vs_baseline": None, "within_spread": None}
    difference = accuracy - baseline_result["accuracy"]
    return {"vs_baseline": difference, "within_spread": None if spread is None else abs(difference) < spread["std"]}


def _message(summary: dict) -> str:
    counts = summary["counts"]
    tally = (
        f"{counts['finished']} finished trials: {counts['complete']} completed inside the budget, "
        f"{counts['infeasible']} over the budget (not trained), {counts['pruned']} pruned, "
        f"{counts['failed']} failed"
    )
    if counts["repeated"]:
        tally += (
            f" ({counts['repeated']} of the completed repeated an earlier architecture and reused its result, "
            f"not trained again; tables show each architecture once)"
        )
    if counts["lost"] or counts["waiting"] or counts["running"]:
        tally += f"; {counts['lost']} stopped early and queued again, {counts['waiting']} queued, {counts['running']} running"
    if summary["best"] is not None:
        best = summary["best"]
        text = f"{tally}. Best: trial {best['trial']}, validation accuracy {best['accuracy']:.4f}"
        if best.get("ratio") is not None:
            text += f" at {best['ratio']:.2f}x the baseline's Eqn. (1) cost"
        baseline = summary.get("baseline_result")
        spread = summary.get("spread")
        if baseline:
            text += f" (baseline {baseline['accuracy']:.4f}"
            if spread:
                text += f" ± {spread['std']:.4f} over {spread['seeds']} seeds"
            text += ")"
        if best.get("within_spread"):
            text += (
                f". Its difference from the baseline, {best['vs_baseline']:+.4f}, is smaller than the spread over "
                f"seeds ({spread['std']:.4f}): not a clear improvement"
            )
        return text + "."
    reasons = []
    if counts["finished"] == 0:
        reasons.append("no trial finished yet; run the same search again to continue it")
    if counts["pruned"]:
        reasons.append("every trained candidate was pruned: try pruner='none' or more epochs")
    if counts["infeasible"]:
        reasons.append("candidates over the budget are never trained: raise the budget or its tolerance")
    if counts["failed"]:
        errors = {failure["error"] for failure in summary["failures"] if failure.get("status") == "error"}
        reasons.append("trials failed with: " + "; ".join(sorted(e for e in errors if e))[:500])
    return f"{tally}. No candidate completed inside the budget: " + "; ".join(reasons) + "."


def format_table(records: list[dict]) -> str:
    """Trial records as an aligned terminal table (see :data:`COLUMNS`; "vs baseline" shows
    when a record has ``vs_baseline``, marked :data:`WITHIN_SPREAD` when ``within_spread``).

    Example:
        >>> print(format_table([{"trial": 3, "accuracy": 0.91234, "macs": 2330624, "ratio": 1.0,
        ...     "params": 12000, "latency_ms": 0.21, "epochs": 2, "train_seconds": 3.5,
        ...     "notation": "(3,16) 2/2 (3,32)"}]))
        trial  accuracy  MACs  ratio  params  latency  epochs  seconds  architecture
        -----  --------  ----  -----  ------  -------  ------  -------  -----------------
            3    0.9123  2.3M  1.00x   12.0K  0.21 ms       2      3.5  (3,16) 2/2 (3,32)
    """

    def cell(value, kind, record):
        if value is None:
            return "-"
        if kind == "vs baseline":
            return f"{value:+.4f}" + (f" {WITHIN_SPREAD}" if record.get("within_spread") else "")
        return {
            "accuracy": lambda v: f"{v:.4f}",
            "MACs": format_count,
            "ratio": lambda v: f"{v:.2f}x",
            "params": format_count,
            "latency": lambda v: f"{v:.2f} ms",
            "seconds": lambda v: f"{v:.1f}",
        }.get(kind, str)(value)

    keys = ("trial", "accuracy", "vs_baseline", "macs", "ratio", "params", "latency_ms", "epochs", "train_seconds",
            "notation")  # fmt: skip
    shown = [(key, column) for key, column in zip(keys, COLUMNS)
             if key != "vs_baseline" or any(record.get(key) is not None for record in records)]  # fmt: skip
    columns = [column for _, column in shown]
    rows = [[cell(record.get(key), column, record) for key, column in shown] for record in records]
    return text_table(columns, rows, right=range(len(columns) - 1))


def format_summary(summary: dict) -> str:
    """The report printed at the end of ``budgetnet search`` and by ``budgetnet results``.

    Example:
        >>> import optuna
        >>> study = optuna.create_study(direction="maximize")
        >>> study.add_trial(optuna.create_trial(value=0.9, user_attrs={"macs": 1000, "status": "ok"}))
        >>> format_summary(summarize(study)).splitlines()[3]
        'best trials:'
    """
    lines = [
        f"study {summary['study']!r}: {summary['space']} space on {summary['data']}, "
        f"objectives {','.join(summary['objectives'])}, budget {summary['budget']}",
        f"baseline {summary['baseline']}"
        + (f" ({format_count(summary['baseline_macs'])} MACs)" if summary.get("baseline_macs") else ""),
    ]
    baseline = summary.get("baseline_result")
    spread = summary.get("spread")
    if baseline:
        lines[-1] += f": validation accuracy {baseline['accuracy']:.4f} with the same training"
        if spread:
            lines[-1] += (
                f", mean of {spread['seeds']} seeds (spread: standard deviation {spread['std']:.4f}, "
                f"{spread['min']:.4f} to {spread['max']:.4f}); {WITHIN_SPREAD} marks a difference smaller than it"
            )
    lines.append("")
    multi = len(summary["objectives"]) > 1
    records = summary["pareto"] if multi else summary["top"]
    if records:
        title = "Pareto set (accuracy vs " + summary["objectives"][1] + ")" if multi else "best trials"
        lines += [title + ":", format_table(records), ""]
    lines.append(summary["message"])
    control = summary.get("control")
    if control:
        best = control["best"]
        lines.append(
            f"Random control: {control['counts']['finished']} finished trials, {control['counts']['complete']} "
            "completed inside the budget"
            + ("." if best is None else f"; best: trial {best['trial']}, validation accuracy {best['accuracy']:.4f}.")
        )
    return "\n".join(lines)
