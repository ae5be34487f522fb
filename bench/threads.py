"""Torch CPU threads on a shared CPU, and what validation costs (issue 19).

Run by hand, never in the tests. Every case runs ``budgetnet train ... --json`` as separate
processes, started together (as ``budgetnet search --workers N`` starts its workers), and
times them from the start to the end of the last one (the wall time a user waits, torch's
import included); each process's own ``fit`` seconds come from its JSON.

* ``--part threads``: the small search's baseline on digits. One training at all the cores'
  threads (torch's own default, and ``--threads``' default, for one process) and at 1 thread;
  two trainings at once at all the cores' threads each (what two workers ran with before the
  share) and at ``default_threads(2)`` each (the share ``cores // workers``).
* ``--part val`` (``--mnist DIR``): one epoch on ``--limit 2000`` MNIST images, validated on
  the whole 12,000-image validation split and with ``--val-limit 500``, at 1 thread each.

Cases are interleaved round by round, so that the other jobs of a shared machine weigh on all
of them alike; the 1-minute load average is read before every case and its median printed.

Example:
    python bench/threads.py --rounds 3
    python bench/threads.py --part val --mnist ../shared/data/mnist --rounds 3
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from budgetnet.cli.search import MAIN_JOB_BASELINE  # noqa: E402
from budgetnet.cost.latency import cpu_model  # noqa: E402
from budgetnet.pytorch.device import available_cores, default_threads  # noqa: E402
from budgetnet.tables import text_table  # noqa: E402

#: This checkout's budgetnet, and no thread count inherited from the shell: each case says its own.
ENVIRONMENT = {
    **{key: value for key, value in os.environ.items() if key != "OMP_NUM_THREADS"},
    "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
}


def thread_cases(epochs: int) -> list[tuple[str, list[list[str]]]]:
    """(name, one argument list per process) of the threads part."""
    cores = available_cores()
    shared = default_threads(2, cores)
    train = [MAIN_JOB_BASELINE, "--epochs", str(epochs), "--no-progress"]
    return [
        (f"1 run, {cores} threads (default)", [[*train, "--threads", str(cores)]]),
        ("1 run, 1 thread", [[*train, "--threads", "1"]]),
        (f"2 runs at once, {cores} threads each (before)", [[*train, "--threads", str(cores)]] * 2),
        (f"2 runs at once, {shared} thread{'s' if shared > 1 else ''} each (cores // 2)",
         [[*train, "--threads", str(shared)]] * 2),
    ]  # fmt: skip


def val_cases(mnist: str) -> list[tuple[str, list[list[str]]]]:
    """(name, one argument list per process) of the validation part."""
    train = [MAIN_JOB_BASELINE, "--data", f"idx:{mnist}", "--image-size", "16", "--limit", "2000", "--epochs", "1",
             "--threads", "1", "--no-progress"]  # fmt: skip
    return [
        ("--limit 2000, whole validation split", [train]),
        ("--limit 2000 --val-limit 500", [[*train, "--val-limit", "500"]]),
    ]


def run_case(argument_lists: list[list[str]]) -> tuple[float, list[dict]]:
    """Start one ``budgetnet train`` per argument list at once; the wall seconds until the last
    one ends, and each one's JSON."""
    start = time.perf_counter()
    processes = [
        subprocess.Popen([sys.executable, "-m", "budgetnet", "train", *arguments, "--json"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, env=ENVIRONMENT)  # fmt: skip
        for arguments in argument_lists
    ]
    outputs = [process.communicate() for process in processes]
    wall = time.perf_counter() - start
    for process, (_, err) in zip(processes, outputs):
        if process.returncode:
            raise SystemExit(f"budgetnet train exited with {process.returncode}:\n{err}")
    return wall, [json.loads(out) for out, _ in outputs]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", choices=("threads", "val"), default="threads")
    parser.add_argument("--rounds", type=int, default=3, help="times every case runs, interleaved (default 3)")
    parser.add_argument("--epochs", type=int, default=10, help="epochs of the threads part (default 10, as quick)")
    parser.add_argument("--mnist", metavar="DIR", help="MNIST IDX files, for --part val")
    args = parser.parse_args()
    if args.part == "val" and not args.mnist:
        parser.error("--part val needs --mnist DIR")
    cases = thread_cases(args.epochs) if args.part == "threads" else val_cases(args.mnist)
    print(
        f"CPU: {available_cores()} cores this process may use (of {os.cpu_count()}), {cpu_model()}, shared with "
        f"other jobs; torch {torch.__version__}; Python {platform.python_version()}; {args.rounds} rounds"
    )
    walls = {name: [] for name, _ in cases}
    fits = {name: [] for name, _ in cases}
    speeds = {name: [] for name, _ in cases}
    loads = {name: [] for name, _ in cases}
    for round_number in range(1, args.rounds + 1):
        for name, argument_lists in cases:
            loads[name].append(os.getloadavg()[0])
            wall, results = run_case(argument_lists)
            walls[name].append(wall)
            fits[name] += [result["fit"]["seconds"] for result in results]
            speeds[name] += [result["fit"]["images_per_second"] for result in results]
            print(f"round {round_number}  {name}: {wall:.1f} s (load {loads[name][-1]:.1f})", flush=True)
    first = statistics.median(walls[cases[0][0]])
    rows = [
        (
            name,
            f"{statistics.median(walls[name]):.1f}",
            f"{min(walls[name]):.1f}",
            f"{statistics.median(walls[name]) / first:.2f}",
            f"{statistics.median(fits[name]):.1f}",
            f"{statistics.median(speeds[name]):,.0f}",
            f"{statistics.median(loads[name]):.1f}",
        )
        for name, _ in cases
    ]
    header = ("case", "wall s (median)", "wall s (min)", "wall ratio", "fit s per run", "images/s per run", "load")
    print("\n" + text_table(header, rows, right={1, 2, 3, 4, 5, 6}))


if __name__ == "__main__":
    main()
