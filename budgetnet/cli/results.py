"""Print the results of a search: the best trials (or the Pareto set of a multi-objective
search) as a table with accuracy, Eqn. (1) MACs, ratio to the baseline, parameters,
latency and training time, the tally of completed, infeasible, pruned and failed
trials, and the confirmation (held-out accuracy with 95% CIs and the verdict) when the
search or `budgetnet confirm` made one. Reads the study from its storage; nothing is trained.

examples:
  budgetnet results
  budgetnet results --study small-digits --top 20
  budgetnet results --storage postgresql+psycopg2://me:pw@db:5432/optuna --study mnist-1 --json
  budgetnet results --plot-dir plots
"""

from __future__ import annotations

from pathlib import Path

from budgetnet.cli.common import print_json

NAME = "results"
HELP = "print the best trials or the Pareto set of a search"


def add_storage_arguments(parser) -> None:
    """--storage and --study, shared with `budgetnet export`."""
    parser.add_argument("--storage", metavar="URL", help="where the study lives (default: budgetnet.db in this directory)")
    parser.add_argument("--study", metavar="NAME", help="study name (default: the only study in the storage)")


def add_arguments(parser) -> None:
    add_storage_arguments(parser)
    parser.add_argument("--top", type=int, default=10, metavar="K", help="rows of the table (default 10)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument(
        "--plot-dir", metavar="DIR",
        help="save pareto.png and history.png in DIR (and confirmation.png after a confirmation)",
    )  # fmt: skip


def open_study(args):
    """The study named by --storage and --study."""
    from budgetnet.studies.storage import load_study, open_storage, storage_url

    url = storage_url(args.storage)
    if url.startswith("sqlite:///") and not _exists(url):
        from budgetnet.errors import StorageError

        raise StorageError(f"storage {url}: no such file; expected the storage a search wrote (see --storage)")
    return load_study(open_storage(url), args.study)


def _exists(url: str) -> bool:
    return Path(url[len("sqlite:///") :]).is_file()


def run(args) -> int:
    from budgetnet.errors import SearchError

    if args.top < 1:
        raise SearchError(f"--top {args.top} is invalid; expected a whole number >= 1")
    if args.plot_dir:
        plot_dir(args.plot_dir)
    return report(open_study(args), args)


def report(study, args, next_step: str = "") -> int:
    """Print the report of ``study`` (a table, or JSON with --json) and save --plot-dir's plots;
    ``next_step`` follows the table when there is a best trial. 0 when a trial completed in
    budget, else 1 (shared with `budgetnet search`)."""
    from budgetnet.studies.confirm import format_confirmation
    from budgetnet.studies.results import format_summary, summarize

    summary = summarize(study, top=args.top)
    if args.plot_dir:
        summary["plots"] = [str(path) for path in save_plots(study, args.plot_dir)]
    if args.json:
        print_json(summary)
    else:
        print(format_summary(summary))
        if summary.get("confirmation"):
            print("\n" + format_confirmation(summary["confirmation"]))
            print(f"confirmation took {summary['confirmation']['seconds']:.0f} s")
        if next_step and summary["best"] is not None:
            print(next_step)
        for path in summary.get("plots", []):
            print(f"saved {path}")
    return 0 if summary["best"] is not None else 1


def plot_dir(directory) -> Path:
    """``--plot-dir``, created where missing; a SearchError for a path that cannot be a directory.

    Example:
        >>> import tempfile
        >>> plot_dir(tempfile.mkdtemp() + "/plots").is_dir()
        True
    """
    from budgetnet.errors import SearchError

    directory = Path(directory)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise SearchError(
            f"--plot-dir {str(directory)!r} cannot be a directory ({error.strerror}); expected a directory "
            "path (created if missing)"
        ) from None
    return directory


def save_plots(study, directory) -> list[Path]:
    """pareto.png and history.png of ``study`` in ``directory`` (created), and confirmation.png
    when the study holds a confirmation."""
    from budgetnet.plots import confirmation, optimization_history, pareto_front

    directory = plot_dir(directory)
    from budgetnet.studies.record import StudyRecord

    objectives = StudyRecord.read(study).objectives
    x = objectives[1] if len(objectives) > 1 else "macs"
    paths = [directory / "pareto.png", directory / "history.png"]
    pareto_front(study, x=x, path=paths[0])
    optimization_history(study, path=paths[1])
    report = StudyRecord.read(study).confirmation
    if report:
        paths.append(directory / "confirmation.png")
        confirmation(report, path=paths[-1])
    return paths
