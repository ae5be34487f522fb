"""Proxy fidelity: does the search's short training rank candidates as a longer one does?

Run by hand, never in the tests. On MNIST (IDX files, ``--mnist``; subsampled and resized to
16x16, the small space's input), ``--archs`` distinct architectures of the small space under
the small baseline's budget (the baseline first, then random feasible candidates) are each
trained three times with the ``quick`` recipe and seed 0:

* the *proxies*: ``--proxy-epochs`` runs (e.g. 1 and 3 epochs), each a whole cosine schedule,
  as ``budgetnet search --epochs E`` trains a candidate;
* the *reference*: ``--long-epochs`` epochs; its test accuracy ranks the candidates.

For each proxy, and for every epoch of the reference run (what a pruner sees part-way through
a trial), it prints Kendall's tau and Spearman's rho between that ranking (validation
accuracy) and the reference ranking (test accuracy), and how many of the reference top 5
are in that ranking's top 5. Then Optuna's median pruner (5 start-up trials, the search's
setting) replays the reference runs' per-epoch validation accuracy, in sampling order, for
each warm-up (and milder percentile pruners that keep the top 75 % or 90 %): how many
trials it prunes and which of the reference top 5 it would have killed. ``--histories PATH``
saves the accuracies; ``--replay PATH`` replays the pruners on them without training.

Example:
    python bench/proxy.py --mnist ../shared/data/mnist --limit 3000 --archs 20
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import sys
import time
from pathlib import Path

import optuna
import torch
from scipy.stats import kendalltau, spearmanr

from budgetnet.cost.complexity import complexity
from budgetnet.training.data import Split, load_data
from budgetnet.cost.latency import cpu_model
from budgetnet.training.recipes import get_recipe
from budgetnet.training.train import evaluate, fit
from search_spaces.base import get_space

TOP = 5


def machine() -> str:
    return (
        f"CPU: {os.cpu_count()}-core {cpu_model()} shared with other jobs; torch {torch.__version__} "
        f"({torch.get_num_threads()} thread); optuna {optuna.__version__}; Python {platform.python_version()}; "
        f"1-minute load average {os.getloadavg()[0]:.1f} at the start"
    )


def mnist(directory: str, limit: int, val: int, test: int):
    """MNIST at 16x16 with ``limit`` training images and the first ``val`` / ``test`` images
    of the validation and test splits (both are already in random order)."""
    data = load_data(f"idx:{directory}", image_size=16, limit=limit)
    return dataclasses.replace(
        data,
        val=Split(data.val.images[:val], data.val.labels[:val]),
        test=Split(data.test.images[:test], data.test.labels[:test]),
    )


def sample_archs(space, count: int, seed: int) -> list:
    """The baseline, then distinct random candidates inside the budget, in sampling order."""
    archs, seen = [space.baseline], {space.baseline.fingerprint()}
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=seed))
    for _ in range(100 * count):
        if len(archs) == count:
            break
        trial = study.ask()
        arch = space.suggest(trial)
        study.tell(trial, 0.0)
        if space.budget.admits(arch) and arch.fingerprint() not in seen:
            seen.add(arch.fingerprint())
            archs.append(arch)
    return archs


def agreement(scores: list[float], reference: list[float]) -> tuple[float, float, int]:
    """Kendall's tau, Spearman's rho and the top-5 overlap of two score lists."""
    def top(values):
        return set(sorted(range(len(values)), key=lambda i: -values[i])[:TOP])

    return (kendalltau(scores, reference).statistic, spearmanr(scores, reference).statistic,
            len(top(scores) & top(reference)))  # fmt: skip


def replay_pruner(histories: list[list[float]], warmup: int, percentile: float = 50.0) -> list[bool]:
    """Which runs Optuna's percentile pruner (5 start-up trials, ``warmup`` steps; 50 is the
    median pruner) would prune, fed the per-epoch validation accuracies in sampling order."""
    pruner = optuna.pruners.PercentilePruner(percentile, n_startup_trials=5, n_warmup_steps=warmup)
    study = optuna.create_study(direction="maximize", pruner=pruner)
    pruned = []
    for history in histories:
        trial = study.ask()
        for step, value in enumerate(history):
            trial.report(value, step)
            if trial.should_prune():
                study.tell(trial, state=optuna.trial.TrialState.PRUNED)
                pruned.append(True)
                break
        else:
            study.tell(trial, history[-1])
            pruned.append(False)
    return pruned


def print_pruners(histories: list[list[float]], long_test: list[float]) -> None:
    """Replay Optuna's percentile pruner (Optuna's ``percentile`` is the share of trials kept:
    50 is the median pruner, 75 keeps the top three quarters) at several warm-ups."""
    epochs = len(histories[0])
    top = sorted(range(len(long_test)), key=lambda i: -long_test[i])[:TOP]
    print(f"\n## pruners replayed on the {epochs}-epoch runs (5 start-up trials)\n")
    print(f"reference top {TOP} (by test accuracy): " + ", ".join(f"#{i} ({long_test[i]:.4f})" for i in top) + "\n")
    print(f"| pruner | warm-up epochs | pruned | reference top {TOP} pruned | best kept (test accuracy) |")
    print("| --- | ---: | ---: | --- | ---: |")
    warmups = sorted({0, 1, 2, epochs // 3, epochs // 2, 7 * epochs // 10})
    for percentile in (50.0, 75.0, 90.0):
        for warmup in warmups:
            pruned = replay_pruner(histories, warmup, percentile)
            lost = [f"#{i}" for i in top if pruned[i]]
            best_kept = max(test for test, gone in zip(long_test, pruned) if not gone)
            name = "median" if percentile == 50.0 else f"percentile {percentile:g} (keeps the top {percentile:g} %)"
            print(f"| {name} | {warmup} | {sum(pruned)}/{len(histories)} | {', '.join(lost) or 'none'} | "
                  f"{best_kept:.4f} |")  # fmt: skip


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mnist", default="../shared/data/mnist", help="directory of the MNIST IDX files")
    parser.add_argument("--limit", type=int, default=3000, help="MNIST training images (default 3000)")
    parser.add_argument("--val", type=int, default=1000, help="validation images (default 1000)")
    parser.add_argument("--test", type=int, default=2000, help="test images (default 2000)")
    parser.add_argument("--archs", type=int, default=20, help="architectures, the baseline included (default 20)")
    parser.add_argument("--proxy-epochs", type=int, nargs="*", default=[1, 3], dest="proxy_epochs",
                        help="epochs of each proxy run (default 1 3; none: only the reference runs)")  # fmt: skip
    parser.add_argument("--long-epochs", type=int, default=10, dest="long_epochs",
                        help="epochs of the reference run (default 10)")  # fmt: skip
    parser.add_argument("--seed", type=int, default=0, help="seed of the sampling and of every training")
    parser.add_argument("--histories", metavar="PATH", help="also write every run's accuracies as JSON to PATH")
    parser.add_argument("--replay", metavar="PATH", help="only replay the pruners on a --histories file (no training)")
    args = parser.parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if args.replay:
        saved = json.loads(Path(args.replay).read_text())
        print(f"command: python bench/proxy.py {' '.join(argv if argv is not None else sys.argv[1:])}".rstrip())
        print_pruners(saved["long_histories"], saved["long_test"])
        return 0
    torch.set_num_threads(1)  # 2 threads on 2 shared cores ran 10x slower than 1 here
    print(machine())
    print(f"command: python bench/proxy.py {' '.join(argv if argv is not None else sys.argv[1:])}".rstrip())
    started = time.perf_counter()
    data = mnist(args.mnist, args.limit, args.val, args.test)
    space = get_space("small", input_shape=data.input_shape, num_classes=data.num_classes)
    archs = sample_archs(space, args.archs, args.seed)
    base_macs = complexity(space.baseline).conv_macs
    ratios = [complexity(arch).conv_macs / base_macs for arch in archs]
    print(f"data: {data!r}; budget {space.budget}; {len(archs)} architectures, "
          f"{min(ratios):.2f}x to {max(ratios):.2f}x of the baseline's Eqn. (1) cost\n")  # fmt: skip

    proxies = {epochs: [] for epochs in args.proxy_epochs}
    long_val, long_test, histories = [], [], []
    columns = ["#", "architecture", "MACs ratio", *(f"val @ {e} ep proxy" for e in args.proxy_epochs),
               f"test @ {args.long_epochs} ep", "s"]  # fmt: skip
    print("| " + " | ".join(columns) + " |")
    print("| ---: | --- | ---: | " + "---: | " * len(args.proxy_epochs) + "---: | ---: |")
    for index, arch in enumerate(archs):
        arch_started = time.perf_counter()
        for epochs in args.proxy_epochs:
            result = fit(arch, data, get_recipe("quick", epochs), seed=args.seed, progress=False, device="cpu")
            proxies[epochs].append(result.val_accuracy)
        result = fit(arch, data, get_recipe("quick", args.long_epochs), seed=args.seed, progress=False, device="cpu")
        histories.append([entry["val_accuracy"] for entry in result.history])
        long_val.append(result.val_accuracy)
        long_test.append(0.0 if result.diverged else evaluate(result.model, data, device="cpu")["accuracy"])
        cells = [str(index), f"`{arch.notation()}`", f"{ratios[index]:.2f}",
                 *(f"{proxies[e][-1]:.4f}" for e in args.proxy_epochs), f"{long_test[-1]:.4f}",
                 f"{time.perf_counter() - arch_started:.0f}"]  # fmt: skip
        print("| " + " | ".join(cells) + " |", flush=True)

    print(f"\n## ranking agreement with the {args.long_epochs}-epoch test accuracy ({len(archs)} architectures)\n")
    print(f"| ranking by | Kendall tau | Spearman rho | top-{TOP} overlap |")
    print("| --- | ---: | ---: | ---: |")
    for epochs in args.proxy_epochs:
        tau, rho, overlap = agreement(proxies[epochs], long_test)
        print(f"| proxy: {epochs}-epoch run, val accuracy | {tau:.3f} | {rho:.3f} | {overlap}/{TOP} |")
    for step in range(args.long_epochs):
        tau, rho, overlap = agreement([history[step] for history in histories], long_test)
        print(f"| {args.long_epochs}-epoch run after epoch {step + 1}, val accuracy | {tau:.3f} | {rho:.3f} | "
              f"{overlap}/{TOP} |")  # fmt: skip

    print_pruners(histories, long_test)
    if args.histories:
        Path(args.histories).write_text(json.dumps(
            {"archs": [arch.notation() for arch in archs], "proxies": {str(e): v for e, v in proxies.items()},
             "long_histories": histories, "long_test": long_test}, indent=1))  # fmt: skip
    print(f"\nwall time {time.perf_counter() - started:.0f} s; 1-minute load average at the end: "
          f"{os.getloadavg()[0]:.1f}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
