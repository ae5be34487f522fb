"""Search for the most accurate architecture inside a time budget (Optuna).

Each trial samples one architecture from the search space; one over the budget (Eqn. (1)
MACs, or measured milliseconds) is never trained and is recorded as infeasible; the others
are trained and scored on the validation split. Every trial is kept in the storage (an
SQLite file budgetnet.db in the working directory by default), so running the same command
again resumes the study, and `budgetnet results` / `budgetnet export` read it later.

With no options (the main job): the small space on the bundled digits under a tight budget,
the cost of the small baseline at a quarter of its widths, (3,4) 2/2 (5,8) 2/2 (3,16)x3
spp(2,1) (153K MACs, 0.07x the small space's own baseline; at the small baseline's cost
every candidate scores about 0.99 on digits and the ranking says nothing), 50 trials of 15
epochs with no pruning, the baseline trained once for comparison; then the confirmation: the 3 best distinct
candidates and the baseline retrained on 3 seeds x 3-fold over the whole set, with 95%
confidence intervals and a verdict (see budgetnet confirm --help; --no-confirm skips it).

--trials N is the number of finished trials the study should hold (completed, infeasible,
pruned or failed with an error); a trial stopped by --timeout, Ctrl-C or a killed worker is
queued again and runs when the search resumes. Several workers on one study: a shared
--storage (PostgreSQL, or a journal file on a shared disk) and the same command on every
process, GPU (CUDA_VISIBLE_DEVICES) or machine; --workers N starts N local ones.

examples:
  budgetnet search
  budgetnet search --trials 50 --epochs 5 --budget 0.8x --objectives accuracy,macs
  budgetnet search --data idx:data/mnist --baseline "(3,16) 2/2 (5,32) 2/2 (3,64)x3 spp(2,1) fc64"
  budgetnet search --space residual --trials 20 --epochs 5
  budgetnet search --space replacement --baseline small_residual
  budgetnet search --storage postgresql+psycopg2://me:pw@db:5432/optuna --study mnist-1 --workers 4
  optuna-dashboard sqlite:///budgetnet.db
"""

from __future__ import annotations

import argparse
import shlex
import signal
import sys
import time

from budgetnet.cli.common import SPEC_HELP, add_norm_argument, add_threads_argument, load_arch, warn_if_busy
from budgetnet.cli.confirm import whole
from budgetnet.cli.results import plot_dir
from budgetnet.errors import SearchError

NAME = "search"
HELP = "search for the most accurate architecture inside a budget (Optuna study)"

#: What `budgetnet search` runs with no options (122 s on two idle cores with its confirmation, README).
DEFAULT_TRIALS = 50
DEFAULT_EPOCHS = 15
#: The baseline of the main job (small space, digits, no --baseline or --budget): a tight budget.
MAIN_JOB_BASELINE = "(3,4) 2/2 (5,8) 2/2 (3,16)x3 spp(2,1)"
#: budgetnet.studies.settings.PRUNERS and DEFAULT_PRUNER (repeated: this module does not import optuna).
PRUNERS = ("median", "percentile25", "percentile75", "wilcoxon", "hyperband", "none")
DEFAULT_PRUNER = "none"


def add_arguments(parser) -> None:
    space = parser.add_argument_group("what to search")
    space.add_argument(
        "--space", metavar="NAME",
        help="search space: small (stages for 8-32 px inputs; the default without --baseline), stage (the "
        "paper's stages, 224 px), replacement (the layer-replacement variants of the baseline, residual ones "
        "too: --baseline resnet18; the default with --baseline), "
        "residual (residual stages for 16-32 px inputs: block type, blocks, kernel, groups, stride placement), "
        "residual224 (the same at 224 px, ResNet-50's budget; for GPUs)",
    )  # fmt: skip
    space.add_argument(
        "--baseline", metavar="SPEC",
        help=f"the reference model: {SPEC_HELP} (default: the space's; for the small space on digits with no "
        f"--budget, the tight {MAIN_JOB_BASELINE!r}). It is trained for comparison and sets "
        "the budget; without --space the search is around it (the replacement space: its equal-cost "
        "variants); the stage spaces (small, stage) keep their own head and take only its cost",
    )  # fmt: skip
    space.add_argument(
        "--budget", metavar="BUDGET",
        help="hard ceiling: a ratio of the baseline's Eqn. (1) cost (1.0x), MACs (850M, 2.3e6) or measured "
        "milliseconds per image (2ms); default: the baseline's cost",
    )  # fmt: skip
    space.add_argument(
        "--tolerance", type=float, default=0.05, metavar="F",
        help="relative budget tolerance (default 0.05)",
    )
    space.add_argument(
        "--objectives", default="accuracy", metavar="LIST",
        help="accuracy (default; validation accuracy, with pruning) or accuracy,macs / accuracy,latency "
        "(a Pareto set; no pruning)",
    )  # fmt: skip
    train = parser.add_argument_group("how to train each candidate")
    train.add_argument(
        "--data", default="digits", metavar="SPEC",
        help="digits (bundled, default), idx:DIR (MNIST-style IDX files), cifar:DIR, folder:DIR",
    )  # fmt: skip
    train.add_argument("--limit", type=int, metavar="N", help="use N training images, stratified (quick runs)")
    train.add_argument(
        "--val-limit", type=int, metavar="N",
        help="validate on N images of the validation split, stratified (default: all of it; keeps every epoch's "
        "validation cheap on large sets such as MNIST)",
    )  # fmt: skip
    train.add_argument(
        "--epochs", type=int, default=DEFAULT_EPOCHS, metavar="E",
        help=f"epochs per candidate (default {DEFAULT_EPOCHS})",
    )
    train.add_argument(
        "--recipe", default="quick", metavar="NAME",
        help="training recipe: quick (default) or paper",
    )
    add_norm_argument(train)
    train.add_argument(
        "--pruner", choices=PRUNERS,
        help="stop poor candidates early: " + ", ".join(PRUNERS) + f" (default {DEFAULT_PRUNER}, the one that "
        "pruned none of the true top 5 in the replays of docs/benchmarks.md: every pruner tried lost some)",
    )  # fmt: skip
    train.add_argument(
        "--sampler", default="tpe", metavar="NAME",
        help="Optuna's sampler: tpe (default), random, gp (Gaussian process), cmaes (numeric parameters only, "
        "needs the cmaes package; every built-in space has categorical choices) or nsga2 (several objectives)",
    )  # fmt: skip
    train.add_argument(
        "--control", choices=("random",),
        help="also run as many random-search trials in the same study (same recipe and pruner); the "
        "confirmation then compares the search's best with random search's best and the baseline",
    )  # fmt: skip
    train.add_argument("--device", default="auto", help="auto (default), cpu, cuda or cuda:N")
    add_threads_argument(train, workers=True)
    train.add_argument(
        "--max-memory", metavar="SIZE",
        help="training memory a candidate may take by the estimate of `budgetnet show`, e.g. 8G (default: the "
        "device's memory); the baseline must fit, a candidate that does not is a failed trial",
    )  # fmt: skip
    train.add_argument(
        "--seed", type=int, default=0,
        help="seeds sampling and training (default 0; reproducible on one worker)",
    )
    train.add_argument(
        "--keep-weights", action="store_true",
        help="keep every trained candidate's weights (for export --format pt)",
    )
    train.add_argument(
        "--no-baseline", action="store_true",
        help="do not train the baseline for comparison",
    )
    train.add_argument(
        "--baseline-seeds", type=int, default=1, metavar="K",
        help="train the baseline with K seeds (default 1); the report then shows the spread over seeds and "
        "marks (~) a difference from the baseline smaller than it",
    )  # fmt: skip
    check = parser.add_argument_group("confirmation (after the trials; see budgetnet confirm --help)")
    check.add_argument(
        "--confirm", default="3", metavar="K",
        help="retrain the K best distinct candidates and the baseline on several seeds and score them on "
        "held-out data (k-fold over the whole set for small data such as digits, else the test split): mean, "
        "95%% CI, paired difference to the baseline, a verdict (default 3)",
    )  # fmt: skip
    check.add_argument("--no-confirm", action="store_true", help="skip the confirmation")
    check.add_argument("--confirm-seeds", default="3", metavar="S", help="seeds per model (default 3)")
    check.add_argument(
        "--confirm-folds", metavar="K",
        help="folds of the k-fold (default 3 below 10,000 images; above, the test split)",
    )  # fmt: skip
    run = parser.add_argument_group("how long, where, how many workers")
    run.add_argument(
        "--trials", type=int, default=DEFAULT_TRIALS, metavar="N",
        help=f"finished trials the study should hold (default {DEFAULT_TRIALS})",
    )
    run.add_argument(
        "--timeout", type=float, metavar="S",
        help="stop after S seconds of wall-clock time (resume later)",
    )
    run.add_argument(
        "--storage", metavar="URL",
        help="sqlite:///FILE.db (default budgetnet.db here), postgresql+psycopg2://..., or journal:FILE",
    )
    run.add_argument(
        "--study", metavar="NAME",
        help="study name (default <space>-<data>); an existing study is resumed",
    )
    run.add_argument(
        "--workers", type=int, default=1, metavar="N",
        help="start N local worker processes on this study (default 1)",
    )
    run.add_argument(
        "--heartbeat", type=int, metavar="S",
        help="seconds between a trial's heartbeats, 1 to 86400 (default 10); a trial silent for 3x this is retried",
    )
    run.add_argument(
        "--storage-retry", type=float, default=30.0, metavar="S",
        help="seconds to retry a lost database connection with back-off before giving up, 0 to 86400 (default "
        "30); a server restarted within it is survived with nothing lost",
    )  # fmt: skip
    out = parser.add_argument_group("output")
    out.add_argument("--json", action="store_true", help="print the final report as JSON")
    out.add_argument("--plot-dir", metavar="DIR", help="save pareto.png and history.png in DIR")
    out.add_argument("--no-progress", action="store_true", help="no progress bar")
    out.add_argument("--top", type=int, default=10, metavar="K", help="rows in the final table (default 10)")
    parser.add_argument("--worker-process", action="store_true", help=argparse.SUPPRESS)


def run(args) -> int:
    import optuna

    from budgetnet.cost.budgets import is_time_budget, parse_budget
    from budgetnet.pytorch.device import set_threads
    from budgetnet.training.data import load_data
    from budgetnet.studies.confirm import confirm
    from budgetnet.checks import check_seed
    from budgetnet.cost.memory import parse_bytes
    from budgetnet.studies.results import best_trial
    from budgetnet.studies.database import retrying
    from budgetnet.studies.storage import describe, storage_url
    from budgetnet.studies.settings import default_study_name, parse_objectives
    from budgetnet.studies.study import search, setup_search
    from search_spaces.base import get_space

    if args.trials < 1:
        raise SearchError(f"--trials {args.trials} is invalid; expected a whole number >= 1 (finished trials to hold)")
    if args.baseline_seeds < 1:
        raise SearchError(f"--baseline-seeds {args.baseline_seeds} is invalid; expected a whole number >= 1")
    if args.workers < 1:
        raise SearchError(f"--workers {args.workers} is invalid; expected a whole number >= 1")
    if args.timeout is not None and not args.timeout > 0:
        raise SearchError(f"--timeout {args.timeout} is invalid; expected seconds > 0")
    # numbers range-checked before they reach torch's C code: every seed the search derives
    # (seed + trial number, seed + baseline run) must fit too
    check_seed(SearchError, args.seed, "--seed")
    check_seed(SearchError, args.seed + args.trials + args.baseline_seeds, "--seed + --trials + --baseline-seeds")
    if args.max_memory is not None:
        parse_bytes(args.max_memory)
    if args.heartbeat is not None and not 1 <= args.heartbeat <= 86400:
        raise SearchError(f"--heartbeat {args.heartbeat} is invalid; expected whole seconds from 1 to 86400")
    if not 0 <= args.storage_retry <= 86400:  # NaN fails too
        raise SearchError(f"--storage-retry {args.storage_retry} is invalid; expected seconds from 0 to 86400")
    confirm_options = None
    if not args.no_confirm and not args.worker_process:  # checked before the search, not after it
        confirm_options = {
            "top": whole("--confirm", args.confirm, 1, "candidates to retrain"),
            "seeds": whole("--confirm-seeds", args.confirm_seeds, 1, "seeds per model"),
            "folds": whole("--confirm-folds", args.confirm_folds, 2, "folds of the k-fold"),
        }
    if args.plot_dir:
        plot_dir(args.plot_dir)  # before hours of training, not after
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # this command prints its own report
    start = time.monotonic()
    if args.space is None:
        args.space = "small" if args.baseline is None else "replacement"
        if args.baseline is not None and not (args.worker_process or args.json):
            print("searching around --baseline: the replacement space of its equal-cost variants "
                  "(--space small searches the small space at its cost instead)")  # fmt: skip
    # this process's threads: it trains with --workers 1, and confirms after the workers end;
    # each worker gets its share (worker_threads)
    threads = set_threads(args.threads)
    if not args.worker_process:
        warn_if_busy(threads if args.workers == 1 else worker_threads(args.threads, args.workers) or threads)
    data = load_data(args.data, limit=args.limit, val_limit=args.val_limit)
    spec = args.baseline
    if spec is None and args.budget is None and args.space == "small" and args.data == "digits":
        spec = MAIN_JOB_BASELINE
    baseline = None if spec is None else load_arch(spec, data.input_shape, data.num_classes)
    budget = args.budget
    if budget is not None and is_time_budget(budget):  # measured on --device
        budget = parse_budget(budget, tolerance=args.tolerance, device=args.device)
    space = get_space(
        args.space,
        baseline=baseline,
        budget=budget,
        tolerance=args.tolerance,
        input_shape=data.input_shape,
        num_classes=data.num_classes,
    )
    url = storage_url(args.storage)
    options = dict(
        n_trials=args.trials,
        timeout=args.timeout,
        storage=url,
        study_name=args.study,
        objectives=args.objectives,
        epochs=args.epochs,
        recipe=args.recipe,
        pruner=args.pruner,
        seed=args.seed,
        device=args.device,
        keep_weights=args.keep_weights,
        norm=args.norm,
        heartbeat_interval=args.heartbeat,
        max_memory=args.max_memory,
        sampler=args.sampler,
        control=args.control,
    )
    progress = not (args.no_progress or args.worker_process)
    if not args.worker_process and not args.json:
        print(space.describe())
        print(f"data {data}; storage {describe(url)}")
    previous = signal.signal(signal.SIGTERM, _interrupt)  # SIGTERM queues the running trial again, as Ctrl-C
    try:
        with retrying(args.storage_retry):  # every storage this search opens retries a lost server this long
            if args.workers == 1:
                study = search(space, data, progress=progress, train_baseline=not args.no_baseline,
                               baseline_seeds=args.baseline_seeds, **options)  # fmt: skip
            else:
                study = setup_search(space, data, **options)
                _run_workers(args, study, url, start, progress)
    except KeyboardInterrupt:
        if args.worker_process:
            raise
        name = args.study or default_study_name(space, data, parse_objectives(args.objectives))
        print(interrupted_line(url, name, args.argv), file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)
    if args.worker_process:
        return 0
    if confirm_options is not None and best_trial(study) is not None:
        if not args.json:
            print("\nconfirming: retraining the best candidates and the baseline on held-out data", flush=True)
        confirm(study, data=data, device=args.device, progress=progress and not args.json, **confirm_options)
    status = report(study, args)
    if not args.json:
        print(f"wall time {time.monotonic() - start:.0f} s")
    return status


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def interrupted_line(url: str, study_name: str, argv) -> str:
    """The one line a search stopped by Ctrl-C ends with: what the study kept, how to resume."""
    from budgetnet.studies.results import trial_counts
    from budgetnet.studies.storage import load_study, open_storage

    kept = "every finished trial"
    try:
        counts = trial_counts(load_study(open_storage(url, retry_seconds=0), study_name))  # no wait on a lost server
        kept = f"its {counts['finished']} finished trials"
    except Exception:  # the study was not set up yet, or its storage is gone: nothing to count
        pass
    command = shlex.join(["budgetnet", *argv])
    return (f"budgetnet search: interrupted; study {study_name!r} keeps {kept} (a trial in training is queued "
            f"again). Resume: {command}")  # fmt: skip


def _run_workers(args, study, url: str, start: float, progress: bool) -> None:
    from budgetnet.studies.workers import run_workers, worker_command, worker_environments

    timeout = None if args.timeout is None else max(args.timeout - (time.monotonic() - start), 1.0)
    commands = []
    for index in range(args.workers):
        arguments = worker_arguments(args, study.study_name, url, timeout)
        if index == 0 and not args.no_baseline:
            arguments.remove("--no-baseline")
            arguments += ["--baseline-seeds", str(args.baseline_seeds)]
        commands.append(worker_command(arguments))
    codes = run_workers(commands, worker_environments(args.workers, args.device), study, progress, url=url)
    failed = [f"worker {index} exited with {code}" for index, code in enumerate(codes) if code]
    if failed:
        raise SearchError("; ".join(failed) + " (its messages are above); the study keeps every finished trial")


def worker_arguments(args, study_name: str, url: str, timeout: float | None) -> list[str]:
    """The command line of one worker: the parent's settings, its study and storage, one worker."""
    arguments = [
        "--space", args.space, "--tolerance", repr(args.tolerance), "--objectives", args.objectives,
        "--data", args.data, "--epochs", str(args.epochs), "--recipe", args.recipe, "--device", args.device,
        "--seed", str(args.seed), "--trials", str(args.trials), "--storage", url, "--study", study_name,
        "--workers", "1", "--worker-process", "--no-baseline",
    ]  # fmt: skip
    for flag, value in (
        ("--baseline", args.baseline),
        ("--budget", args.budget),
        ("--limit", args.limit),
        ("--val-limit", args.val_limit),
        ("--threads", worker_threads(args.threads, args.workers)),
        ("--norm", args.norm),
        ("--pruner", args.pruner),
        ("--sampler", None if args.sampler == "tpe" else args.sampler),
        ("--control", args.control),
        ("--heartbeat", args.heartbeat),
        ("--storage-retry", None if args.storage_retry == 30 else args.storage_retry),
        ("--max-memory", args.max_memory),
        ("--timeout", timeout),
    ):
        if value is not None:
            arguments += [flag, str(value)]
    if args.keep_weights:
        arguments.append("--keep-weights")
    return arguments


def worker_threads(threads: int | None, workers: int) -> int | None:
    """Each worker's torch threads: ``--threads`` as given, else its share of the cores
    (:func:`budgetnet.pytorch.device.default_threads`), so the workers never oversubscribe;
    ``None`` (each worker reads it) when ``$OMP_NUM_THREADS`` is set.

    Example:
        >>> worker_threads(3, 4)
        3
    """
    import os

    from budgetnet.pytorch.device import default_threads

    if threads is None and os.environ.get("OMP_NUM_THREADS"):
        return None
    return default_threads(workers) if threads is None else threads


def report(study, args) -> int:
    """Print the final report (table or JSON), save plots; 0 when a trial completed in budget."""
    from budgetnet.cli.results import report as print_report

    if not args.json:
        print()
    export = (
        f"\nexport it: budgetnet export --study {shlex.quote(study.study_name)} --trial best --format py"
        + (f" --storage {shlex.quote(args.storage)}" if args.storage else "")
    )
    return print_report(study, args, next_step=export)
