"""The confirmation in words: the verdict line and the terminal table of
:func:`budgetnet.studies.confirm.confirm`'s report.

Example:
    >>> verdict([{"model": "baseline"}, {"model": "trial 2", "vs_baseline": {"mean": 0.001, "low": -0.004, "high": 0.006}}])
    'no candidate is distinguishable from the baseline at this budget'
"""

from __future__ import annotations

from budgetnet.cost.complexity import format_count
from budgetnet.tables import text_table


def _points(value: float) -> str:
    return f"{100 * value:.1f}"


def verdict(rows: list[dict]) -> str:
    """The confirmation's answer in one line of words.

    Example:
        >>> rows = [{"model": "baseline"}, {"model": "trial 10", "ratio": 0.94,
        ...          "vs_baseline": {"mean": 0.008, "low": 0.003, "high": 0.013}}]
        >>> verdict(rows)
        'trial 10 beats the baseline by 0.8 points (95% CI 0.3 to 1.3) at 0.94x its cost'
    """
    compared = [row for row in rows[1:] if (row.get("vs_baseline") or {}).get("low") is not None]
    if not compared:
        return "no candidate could be compared with the baseline (too few runs for an interval)"

    def words(row, what):
        diff = row["vs_baseline"]
        low, high = (diff["low"], diff["high"]) if diff["mean"] > 0 else (-diff["high"], -diff["low"])
        text = f"{row['model']} {what} by {_points(abs(diff['mean']))} points (95% CI {_points(low)} to {_points(high)})"
        return text + (f" at {row['ratio']:.2f}x its cost" if row.get("ratio") is not None else "")

    better = [row for row in compared if row["vs_baseline"]["low"] > 0]
    if better:
        best = max(better, key=lambda row: row["vs_baseline"]["mean"])
        return words(best, "beats the baseline")
    worse = [row for row in compared if row["vs_baseline"]["high"] < 0]
    if len(worse) == len(compared):
        least = max(worse, key=lambda row: row["vs_baseline"]["mean"])
        return "no candidate beats the baseline at this budget: the baseline beats every one; " + words(
            least, "trails it").replace(" trails it", ", the closest, trails it")
    return "no candidate is distinguishable from the baseline at this budget"


def format_confirmation(report: dict) -> str:
    """The confirmation as a table and its verdict, for the terminal.

    Example:
        >>> rows = [{"model": "baseline", "macs": 1000, "ratio": 1.0, "runs": [0.9, 0.92],
        ...          "interval": {"mean": 0.91, "low": 0.78, "high": 1.0}, "vs_baseline": None}]
        >>> print(format_confirmation({"held_out": {"text": "the test split"}, "models": rows,
        ...                            "verdict": "v", "complete": True, "control": None}))  # doctest: +ELLIPSIS
        confirmation on the test split: mean held-out accuracy, 95% CI (t over runs), ...
    """
    lines = [f"confirmation on {report['held_out']['text']}: mean held-out accuracy, 95% CI (t over runs), "
             "difference to the baseline paired by seed and fold, in points"]  # fmt: skip
    rows = []
    for row in report["models"]:
        interval, diff = row["interval"], row.get("vs_baseline")
        rows.append([
            row["model"], f"{row['ratio']:.2f}x" if row.get("ratio") is not None else "-",
            format_count(row["macs"]) if row.get("macs") else "-", f"{len(row['runs'])}",
            "-" if interval["mean"] is None else f"{interval['mean']:.4f}", _ci(interval, 1, 4),
            "-" if not diff or diff["mean"] is None else f"{100 * diff['mean']:+.2f}", _ci(diff, 100, 2),
            row.get("notation") or "",
        ])  # fmt: skip
    columns = ["model", "ratio", "MACs", "runs", "accuracy", "95% CI", "vs baseline", "95% CI", "architecture"]
    lines.append(text_table(columns, rows, right=range(1, 8)))
    control = report.get("control")
    if control and control["difference"]["mean"] is not None:
        diff = control["difference"]
        lines.append(f"search's best ({control['search']}) minus random search's best ({control['control']}): "
                     f"{100 * diff['mean']:+.2f} points, 95% CI {_ci(diff, 100, 2)}")  # fmt: skip
    if not report["complete"]:
        lines.append("incomplete: some retrainings are still queued, running or lost; run budgetnet confirm again")
    lines.append("verdict: " + report["verdict"])
    return "\n".join(lines)


def _ci(interval, scale: float, digits: int) -> str:
    if not interval or interval.get("low") is None:
        return "-"
    sign = "+" if scale == 100 else ""
    return f"{scale * interval['low']:{sign}.{digits}f} to {scale * interval['high']:{sign}.{digits}f}"
