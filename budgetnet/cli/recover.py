"""Recover trials left RUNNING by a worker that is gone, so that the search runs them again.

A journal storage (journal:FILE) has no heartbeats: when a worker is killed there, its trial
stays RUNNING. The next `budgetnet search` on the same host queues it again by itself once
the worker's process is gone; for a worker of another machine, this command does it: once
no worker runs that trial any more, it marks it failed and queues its parameters again (the
new trial's retry_of names it); the next `budgetnet search` on the study runs it. A database storage (SQLite,
PostgreSQL) does this by itself: a trial silent for 3 heartbeats is retried.

Which trials: all RUNNING ones, or those of the workers named by --worker (host:pid, as
`budgetnet results --json` lists them), or those started at least --older-than seconds ago.
Run it only while no search is running on the study, or name the dead workers.

examples:
  budgetnet recover --storage runs/study.journal --study small-digits
  budgetnet recover --storage runs/study.journal --worker node3:41312 --json
  budgetnet recover --storage runs/study.journal --older-than 3600
"""

from __future__ import annotations

from budgetnet.cli.common import print_json
from budgetnet.cli.results import add_storage_arguments, open_study

NAME = "recover"
HELP = "queue again the trials a dead worker left RUNNING (journal storage)"


def add_arguments(parser) -> None:
    add_storage_arguments(parser)
    parser.add_argument(
        "--worker", action="append", metavar="HOST:PID",
        help="only trials of this worker (repeat for several; default: every RUNNING trial)",
    )  # fmt: skip
    parser.add_argument(
        "--older-than", type=float, default=0.0, metavar="S",
        help="only trials started at least S seconds ago (default 0)",
    )  # fmt: skip
    parser.add_argument("--json", action="store_true", help="print the recovered trial numbers as JSON")


def run(args) -> int:
    from budgetnet.studies.worker import recover_trials

    study = open_study(args)
    numbers = recover_trials(study, older_than=args.older_than, workers=args.worker)
    if args.json:
        print_json({"study": study.study_name, "recovered": numbers})
    elif numbers:
        print(f"study {study.study_name!r}: trials {', '.join(map(str, numbers))} marked failed and queued again")
    else:
        print(f"study {study.study_name!r}: no RUNNING trial matched; nothing to recover")
    return 0
