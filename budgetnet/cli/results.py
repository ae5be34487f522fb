"""Print the results of a search: the best trials (or the Pareto set of a multi-objective
search) as a table with accuracy, Eqn. (1) MACs, ratio to the baseline, parameters,
latency and training time, and the tally of completed, infeasible, pruned and failed
trials. Reads the study from its storage; nothing is trained.

examples:
  budgetnet results
  budgetnet results --study small-digits --top 20
  budgetnet results --storage postgresql+psycopg2://me:pw@db:5432/optuna --study mnist-1 --json
  budgetnet results --plot-dir plots
"""

from __future__ import annotations

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
    parser.add_argument("--plot-dir", metavar="DIR", help="save pareto.png and history.png in DIR")


def open_study(args):
    """The study named by --storage and --study."""
    from budgetnet.storage import load_study, open_storage, storage_url

    url = storage_url(args.storage)
    if url.startswith("sqlite:///") and not _exists(url):
        from budgetnet.errors import StorageError

        raise StorageError(f"storage {url}: no such file; expected the storage a search wrote (see --storage)")
    return load_study(open_storage(url), args.study)


def _exists(url: str) -> bool:
    from pathlib import Path

    return Path(url[len("sqlite:///") :]).is_file()


def run(args) -> int:
    from budgetnet.cli.search import save_plots
    from budgetnet.errors import SearchError
    from budgetnet.results import format_summary, summarize

    if args.top < 1:
        raise SearchError(f"--top {args.top} is invalid; expected a whole number >= 1")
    study = open_study(args)
    summary = summarize(study, top=args.top)
    if args.plot_dir:
        summary["plots"] = [str(path) for path in save_plots(study, args.plot_dir)]
    if args.json:
        print_json(summary)
    else:
        print(format_summary(summary))
        for path in summary.get("plots", []):
            print(f"saved {path}")
    return 0 if summary["best"] is not None else 1
