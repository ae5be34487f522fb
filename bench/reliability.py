"""Reliability: two processes raising ``--trials`` to different targets at once (issue 20).

Each round runs ``budgetnet search --trials 2`` on a fresh study, then starts two processes
at the same moment with ``--trials A`` and ``--trials B`` on it, and records: their exit
codes, the finished trials each process's report says the study holds, the finished trials
the study really holds, the surplus records (never trained) and the queued slots left.
The rule under test: the larger target wins, exactly.

Usage:
    python bench/reliability.py [--rounds 3] [--targets 5 7] [--storage URL_PREFIX]

``--storage`` defaults to an SQLite file per round in a temporary directory; give a
PostgreSQL URL to run against a server (the study names differ per round).
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

QUICK = ["--epochs", "1", "--limit", "60", "--no-baseline", "--no-progress", "--no-confirm", "--device", "cpu"]


def command(storage: str, study: str, trials: int) -> list[str]:
    return [sys.executable, "-m", "budgetnet", "search", "--trials", str(trials), "--storage", storage,
            "--study", study, *QUICK]  # fmt: skip


def one_round(storage: str, study: str, targets: list[int], cwd: Path) -> dict:
    import optuna

    from budgetnet.studies.record import TrialRecord
    from budgetnet.studies.results import is_finished

    subprocess.run(command(storage, study, 2), cwd=cwd, capture_output=True, check=True)
    processes = [subprocess.Popen(command(storage, study, n), cwd=cwd, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for n in targets]  # fmt: skip
    outputs = [process.communicate() for process in processes]
    reported = []
    for stdout, _ in outputs:
        found = re.findall(r"(\d+) finished trials", stdout)
        reported.append(int(found[-1]) if found else None)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    trials = optuna.load_study(study_name=study, storage=storage).trials
    return {
        "exit": [process.returncode for process in processes],
        "reported": reported,
        "finished": sum(is_finished(t) for t in trials),
        "surplus": sum(TrialRecord.read(t).status == "surplus" for t in trials),
        "queued": sum(t.state == optuna.trial.TrialState.WAITING for t in trials),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--targets", type=int, nargs=2, default=[5, 7])
    parser.add_argument("--storage", help="a database URL (default: an SQLite file per round)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        cwd = Path(directory)
        for index in range(args.rounds):
            storage = args.storage or f"sqlite:///{cwd / f'r{index}.db'}"
            start = time.perf_counter()
            result = one_round(storage, f"race-{int(time.time())}-{index}", args.targets, cwd)
            print(f"round {index}: targets {args.targets} -> {result} ({time.perf_counter() - start:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
