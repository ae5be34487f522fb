"""Which pruner keeps the best? Replays Optuna's pruners on recorded learning curves.

Run by hand, never in the tests. For each space (``small``, ``residual``) and each seed,
``--archs`` distinct random candidates inside the space's budget (the baseline first) are
trained on the bundled digits (16x16) with the search's recipe (``quick``, ``--epochs``,
seed = the replay's seed), recording the validation accuracy and the time of every epoch and
the test accuracy at the end. The *true top 5* of a replay are the 5 best by that test
accuracy. Each pruner then replays the curves in sampling order (as a search on one worker
would report them): how many trials it prunes, how many of the true top 5, and the share
of training time it saves (the epochs it skips, at their measured times).

Example:
    python bench/pruners.py --archs 20 --seeds 0 1 2 --histories pruner_histories.json
    python bench/pruners.py --replay pruner_histories.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import optuna
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from proxy import machine, sample_archs  # noqa: E402  (bench/proxy.py)

from budgetnet.studies.settings import make_pruner  # noqa: E402
from budgetnet.training.data import load_data  # noqa: E402
from budgetnet.training.recipes import get_recipe  # noqa: E402
from budgetnet.training.train import evaluate, fit  # noqa: E402
from search_spaces.base import get_space  # noqa: E402

TOP = 5
PRUNERS = ("median", "percentile25", "percentile75", "wilcoxon", "hyperband", "none")


def record(space_name: str, seed: int, archs: int, epochs: int, data) -> dict:
    """Train ``archs`` candidates of ``space_name`` and record their curves."""
    space = get_space(space_name, input_shape=data.input_shape, num_classes=data.num_classes)
    runs = []
    for index, arch in enumerate(sample_archs(space, archs, seed)):
        times = []
        last = [time.perf_counter()]

        def tick(epoch, metrics):
            now = time.perf_counter()
            times.append(now - last[0])
            last[0] = now

        result = fit(arch, data, get_recipe("quick", epochs), seed=seed, progress=False, device="cpu", callback=tick)
        test = 0.0 if result.diverged else evaluate(result.model, data, device="cpu")["accuracy"]
        runs.append({"notation": arch.notation(), "val": [h["val_accuracy"] for h in result.history],
                     "seconds": times, "test": test})  # fmt: skip
        print(f"{space_name} seed {seed} #{index}: test {test:.4f}, {sum(times):.1f} s", flush=True)
    return {"space": space_name, "seed": seed, "epochs": epochs, "runs": runs}


def replay(pruner_name: str, runs: list[dict], epochs: int) -> tuple[list[bool], float]:
    """Which runs ``pruner_name`` (the search's :func:`make_pruner`) prunes, and the seconds it saves."""
    pruner = make_pruner(pruner_name, ("accuracy",), epochs)
    study = optuna.create_study(direction="maximize", pruner=pruner)
    pruned, saved = [], 0.0
    for run in runs:
        trial = study.ask()
        for step, value in enumerate(run["val"]):
            trial.report(value, step)
            if step < len(run["val"]) - 1 and trial.should_prune():
                study.tell(trial, state=optuna.trial.TrialState.PRUNED)
                pruned.append(True)
                saved += sum(run["seconds"][step + 1:])
                break
        else:
            study.tell(trial, run["val"][-1])
            pruned.append(False)
    return pruned, saved


def table(replays: list[dict]) -> None:
    print("\n| pruner | " + " | ".join(f"{r['space']} s{r['seed']}" for r in replays)
          + " | true top 5 pruned, all replays | trials pruned | time saved |")  # fmt: skip
    print("| --- | " + "---: | " * len(replays) + "---: | ---: | ---: |")
    for name in PRUNERS:
        cells, lost, count, total_pruned, saved, spent = [], 0, 0, 0, 0.0, 0.0
        for r in replays:
            runs = r["runs"]
            top = sorted(range(len(runs)), key=lambda i: -runs[i]["test"])[:TOP]
            pruned, seconds = replay(name, runs, r["epochs"])
            lost_here = sum(pruned[i] for i in top)
            cells.append(f"{lost_here}/{TOP} top, {sum(pruned)}/{len(runs)}")
            lost += lost_here
            count += len(runs)
            total_pruned += sum(pruned)
            saved += seconds
            spent += sum(sum(run["seconds"]) for run in runs)
        print(f"| {name} | " + " | ".join(cells) + f" | {lost} | {total_pruned}/{count} | {100 * saved / spent:.0f} % |")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spaces", nargs="+", default=["small", "residual"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--archs", type=int, default=20)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--limit", type=int, help="training images (default: all of digits' training split)")
    parser.add_argument("--histories", metavar="PATH", help="write the curves as JSON")
    parser.add_argument("--replay", metavar="PATH", help="replay the pruners on a --histories file (no training)")
    args = parser.parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    print(f"command: python bench/pruners.py {' '.join(argv if argv is not None else sys.argv[1:])}".rstrip())
    if args.replay:
        table(json.loads(Path(args.replay).read_text()))
        return 0
    torch.set_num_threads(1)
    print(machine())
    started = time.perf_counter()
    data = load_data("digits", limit=args.limit)
    print(f"data: {data!r}; {args.archs} candidates per space and seed, {args.epochs} epochs (quick recipe)")
    replays = []
    for space_name in args.spaces:
        for seed in args.seeds:
            replays.append(record(space_name, seed, args.archs, args.epochs, data))
            if args.histories:
                Path(args.histories).write_text(json.dumps(replays))
    table(replays)
    print(f"\nwall time {time.perf_counter() - started:.0f} s; load average at the end {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
