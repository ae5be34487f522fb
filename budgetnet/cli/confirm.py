"""Confirm a search's winner: retrain its best candidates and the baseline on several seeds.

The search ranks its candidates by one short run each on a small validation split, which
seeds move and which may sit at the ceiling. This command retrains the top K distinct
architectures of a study (and the best of its random control, if the search ran one) and
the baseline with the search's recipe on S seeds each, scores every run on held-out data
(k-fold over the whole set where the data is small, as digits; the test split otherwise),
and prints per model the mean accuracy, its 95% confidence interval (t distribution), and
the difference to the baseline paired by seed and fold with its interval, ending with a
verdict in words. `budgetnet search` does this by default at its end.

Each retraining is queued in the study and claimed once, so several processes may run
this command on one study together, and an interrupted confirmation resumes where it
stopped. The result is stored in the study: `budgetnet results` shows it again.

examples:
  budgetnet confirm
  budgetnet confirm --study small-digits --top 2 --seeds 2 --folds 3 --plot confirm.png
  budgetnet confirm --storage journal:search.journal --json
"""

from __future__ import annotations

from budgetnet.cli.common import print_json
from budgetnet.cli.results import add_storage_arguments, open_study
from budgetnet.errors import ConfirmError

NAME = "confirm"
HELP = "retrain a search's best candidates and the baseline on several seeds; a verdict with 95% CIs"


def add_arguments(parser) -> None:
    add_storage_arguments(parser)
    parser.add_argument(
        "--top", default="3", metavar="K",
        help="distinct candidates to retrain, best first (default 3); the random control's best comes on top",
    )  # fmt: skip
    parser.add_argument("--seeds", default="3", metavar="S", help="seeds per model (default 3)")
    parser.add_argument(
        "--folds", metavar="K",
        help="k-fold over the whole set with K folds (default: 3 folds below 10,000 images, else the test split)",
    )  # fmt: skip
    parser.add_argument("--device", default="auto", help="auto (default), cpu, cuda or cuda:N")
    parser.add_argument("--plot", metavar="PNG", help="save the plot (mean and 95%% CI per model) to PNG")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar (nor a line per retraining)")


def whole(flag: str, text, low: int, what: str) -> int | None:
    """``text`` as a whole number >= ``low`` (``None`` stays ``None``), or a ConfirmError naming ``flag``.

    Example:
        >>> whole("--seeds", "2.5", 1, "seeds per model")
        Traceback (most recent call last):
        ...
        budgetnet.errors.ConfirmError: --seeds '2.5' is invalid; expected a whole number >= 1 (seeds per model)
    """
    if text is None:
        return None
    try:
        value = int(str(text), 10)
    except ValueError:
        value = None
    if value is None or value < low:
        raise ConfirmError(f"{flag} {str(text)!r} is invalid; expected a whole number >= {low} ({what})")
    return value


def run(args) -> int:
    from budgetnet.plots import confirmation as plot
    from budgetnet.studies.confirm import confirm, format_confirmation

    chosen = {
        "top": whole("--top", args.top, 1, "candidates to retrain"),
        "seeds": whole("--seeds", args.seeds, 1, "seeds per model"),
        "folds": whole("--folds", args.folds, 2, "folds of the k-fold"),
    }
    study = open_study(args)
    progress = not args.no_progress and not args.json
    report = confirm(study, device=args.device, progress=progress, **chosen)
    if args.plot:
        plot(report, args.plot)
        report["plot"] = str(args.plot)
    if args.json:
        print_json(report)
    else:
        print(format_confirmation(report))
        print(f"confirmation took {report['seconds']:.0f} s")
        if args.plot:
            print(f"saved {args.plot}")
    return 0 if report["complete"] else 1
