"""Benchmark the search (``budgetnet.search``); run by hand, never in the tests.

Three parts (``--part``, default all):

* ``overhead``: the digits default of ``budgetnet search`` (small space, budget = the small
  baseline's cost, ``--trials`` trials of ``--epochs`` epochs, median pruning, SQLite file).
  Per trial: wall time, time in ``fit`` (training and per-epoch validation), and the
  search's own overhead = everything else (sampling, budget check, storage writes,
  latency measurement, bookkeeping), from the wall time of the whole ``search`` call.
* ``sampling``: candidates sampled per second: ``space.suggest`` + Eqn. (1) + budget check
  + ``tell`` with no training, on an in-memory study and on an SQLite file.
* ``mnist``: a search on MNIST (IDX files, ``--mnist``) under the small baseline's budget,
  then the best candidate and the baseline retrained with the same recipe and seed and
  evaluated on the 10,000 test images.
* ``compare`` (not part of ``all``): on MNIST subsampled as ``bench/proxy.py`` does
  (``--limit`` training images, 16x16), under the small baseline's budget, for each of
  ``--seeds`` seeds: TPE search (``budgetnet.search`` as it is), random search (the same
  search with Optuna's RandomSampler, the same trials) and the baseline. The best trial of
  each search and the baseline are retrained for ``--long-epochs`` and scored on the test
  images: mean and spread over the seeds. Then the paper's Sec. 4.4 at small scale: the
  baseline's last stage ``(3,64)x3`` as ``(3,w)xd`` for several depths ``d`` at equal
  Eqn. (1) cost (``w`` solved for each), each trained with every seed. Writes
  ``docs/search_compare.png`` and ``docs/depth_equal_cost.png``.
* ``trust`` (not part of ``all``): can a search's winner be believed? On digits (k-fold
  confirmation) and MNIST (``--mnist``, ``--limit`` training images at 16x16, the test split),
  under the main job's tight baseline: TPE and random search in the small space, and TPE in
  the replacement space of that baseline, ``--trust-seeds`` search seeds each, the same
  ``--trust-trials`` trials of ``--trust-epochs`` epochs; every search's best and the
  baseline confirmed by :func:`budgetnet.confirm` (``--confirm-seeds`` seeds). Per method:
  the confirmed accuracy of the best and its paired difference to the baseline, mean and
  95 % t interval over the search seeds, the verdicts, and TPE minus random paired by seed.
* ``residual``: candidates of the ``residual`` space sampled per second (no training), then a
  search in it on MNIST under the zoo's ``small_residual`` budget; the best candidate and
  ``small_residual`` are retrained with ``--seeds`` seeds each and tested (mean and spread).

Example:
    python bench/search.py --part overhead
    python bench/search.py --part mnist --mnist ../shared/data/mnist --limit 20000 --mnist-trials 24 --mnist-epochs 5
    python bench/search.py --part compare --mnist ../shared/data/mnist --limit 3000 --compare-trials 16
    python bench/search.py --part residual --limit 2000 --mnist-trials 6 --mnist-epochs 2 --seeds 3
    python bench/search.py --part trust --limit 3000 --trust-trials 20 --trust-epochs 6 --trust-seeds 5
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import optuna
import torch

import budgetnet
from budgetnet.graph.arch import Conv
from budgetnet.cost.complexity import complexity, conv_macs
from budgetnet.training.data import load_data
from budgetnet.cost.latency import cpu_model
from budgetnet.studies.results import best_trial, trial_counts
from budgetnet.studies import settings as settings_module
from budgetnet.studies.settings import make_sampler
from budgetnet.training.recipes import get_recipe
from budgetnet.training.train import evaluate, fit
from search_spaces.base import get_space


def machine() -> str:
    return (
        f"CPU: {os.cpu_count()}-core {cpu_model()}; torch {torch.__version__} ({torch.get_num_threads()} threads); "
        f"optuna {optuna.__version__}; Python {platform.python_version()}; "
        f"1-minute load average {os.getloadavg()[0]:.1f} at the start"
    )


def overhead(args) -> list[str]:
    data = load_data("digits")
    space = get_space("small", input_shape=data.input_shape, num_classes=data.num_classes)
    with tempfile.TemporaryDirectory() as directory:
        start = time.perf_counter()
        study = budgetnet.search(space, data, n_trials=args.trials, epochs=args.epochs, seed=0, train_baseline=True,
                                 storage=str(Path(directory) / "b.db"), progress=False, device="cpu")  # fmt: skip
        wall = time.perf_counter() - start
    trials = study.trials
    n = len(trials)
    fit_seconds = sum(t.user_attrs.get("fit_seconds", 0.0) for t in trials)
    trial_seconds = sum(t.user_attrs["trial_seconds"] for t in trials)
    latency = [t.user_attrs["latency_seconds"] for t in trials if "latency_seconds" in t.user_attrs]
    baseline = study.user_attrs["baseline_result"]["seconds"]
    outside = wall - fit_seconds - baseline
    counts = trial_counts(study)
    best = best_trial(study)
    trained = sum(1 for t in trials if "fit_seconds" in t.user_attrs)
    return [
        f"digits default: {n} trials x {args.epochs} epochs ({counts['complete']} completed, {counts['pruned']} "
        f"pruned, {counts['infeasible']} infeasible; {trained} trained, {n - trained} repeats reused), plus the "
        f"baseline trained once ({baseline:.1f} s)",
        "",
        "| measure | value |",
        "| --- | ---: |",
        f"| whole search (wall, baseline included) | {wall:.1f} s |",
        f"| per trial: wall (mean, baseline excluded) | {(wall - baseline) / n * 1000:.0f} ms |",
        f"| per trial: in fit, training + validation (mean) | {fit_seconds / n * 1000:.0f} ms |",
        f"| per trial: search overhead = wall - fit (mean) | {outside / n * 1000:.1f} ms |",
        f"| ... of which inside the trial (sampling, budget check, attributes, latency) | {(trial_seconds - fit_seconds) / n * 1000:.1f} ms |",
        f"| ... of which between trials (queue, heartbeats, tell, progress) | {(wall - baseline - trial_seconds) / n * 1000:.1f} ms |",
        f"| latency measurement per trained trial (mean) | {statistics.mean(latency or [0]) * 1000:.1f} ms |",
        f"| overhead / trial wall time | {outside / (wall - baseline):.1%} |",
        f"| best validation accuracy | {best.values[0]:.4f} (trial {best.number}; baseline {study.user_attrs['baseline_result']['accuracy']:.4f}) |",
    ]


def sampling(args) -> list[str]:
    space = get_space("small", input_shape=(1, 16, 16), num_classes=10)
    rows = ["| storage | candidates | seconds | candidates / s |", "| --- | ---: | ---: | ---: |"]
    with tempfile.TemporaryDirectory() as directory:
        for label, storage in (("in memory", None), ("SQLite file", f"sqlite:///{directory}/s.db")):
            study = optuna.create_study(direction="maximize", storage=storage)
            start = time.perf_counter()
            for _ in range(args.samples):
                study.sampler = make_sampler(0, len(study.trials))
                trial = study.ask()
                arch = space.suggest(trial)
                report = complexity(arch, baseline=space.baseline)
                trial.set_constraint("budget", float(-space.budget.slack(arch)))
                study.tell(trial, float(report.conv_macs % 97) / 97)  # a stand-in score, no training
            seconds = time.perf_counter() - start
            rows.append(f"| {label} | {args.samples} | {seconds:.2f} | {args.samples / seconds:.1f} |")
    return rows


def search_mnist(space_name: str, args):
    """A search of ``space_name`` on MNIST (``args.mnist``, ``args.limit`` training images) with
    the quick recipe: data, space, recipe, study, its seconds, and the best trial and its Arch."""
    data = load_data(f"idx:{args.mnist}", limit=args.limit)
    space = get_space(space_name, input_shape=data.input_shape, num_classes=data.num_classes)
    recipe = get_recipe("quick", epochs=args.epochs)
    with tempfile.TemporaryDirectory() as directory:
        start = time.perf_counter()
        study = budgetnet.search(space, data, n_trials=args.trials, recipe=recipe, seed=0, progress=False,
                                 storage=str(Path(directory) / "search.db"), device="cpu")  # fmt: skip
        seconds = time.perf_counter() - start
    best = best_trial(study)
    return data, space, recipe, study, seconds, best, budgetnet.Arch.from_dict(best.user_attrs["arch"])


def mnist(args) -> list[str]:
    data, space, recipe, study, search_seconds, best, found = search_mnist("small", args)
    rows = ["| model | Eqn. (1) MACs | ratio | val accuracy | test accuracy | train s |", "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for label, arch in (("baseline", space.baseline), (f"best found (trial {best.number})", found)):
        result = fit(arch, data, recipe, seed=0, progress=False, device="cpu")
        test = evaluate(result.model, data, split="test", device="cpu")["accuracy"]
        macs = complexity(arch).conv_macs
        rows.append(
            f"| {label}: `{arch.notation()}` | {macs:,} | {macs / complexity(space.baseline).conv_macs:.2f}x | "
            f"{result.val_accuracy:.4f} | {test:.4f} | {result.seconds:.1f} |"
        )
    counts = trial_counts(study)
    header = [
        f"MNIST, 28x28: {len(data.train)} training images (--limit), {len(data.val)} validation, "
        f"{len(data.test)} test; {args.trials} trials x {args.epochs} epochs "
        f"({counts['complete']} completed, {counts['pruned']} pruned, {counts['infeasible']} infeasible) in "
        f"{search_seconds:.0f} s; budget {space.budget}. Both rows retrained with the same recipe and seed 0:",
        "",
    ]
    return header + rows


def _random_sampler(seed, number):
    return optuna.samplers.RandomSampler(seed=None if seed is None else (seed * 1_000_003 + number) % 2**32)


def _spread(values: list[float]) -> str:
    return f"{statistics.mean(values):.4f} ± {statistics.stdev(values):.4f}" if len(values) > 1 else f"{values[0]:.4f}"


def _long_test(arch, data, args, seed: int) -> float:
    result = fit(arch, data, get_recipe("quick", args.long_epochs), seed=seed, progress=False, device="cpu")
    return 0.0 if result.diverged else evaluate(result.model, data, device="cpu")["accuracy"]


def depth_variants(baseline, depths) -> list:
    """The baseline with its last stage ``(3,64)x3`` replaced by ``(3,w)xd`` at (nearly) equal
    Eqn. (1) cost: for each depth, the width (a multiple of 4) closest to the baseline's cost."""
    convs = [index for index, layer in enumerate(baseline.layers) if isinstance(layer, Conv)]
    start, stop = convs[-3], convs[-1] + 1
    target = conv_macs(baseline)
    variants = []
    for depth in depths:
        candidates = [baseline.replace(start, stop, [Conv(3, width)] * depth) for width in range(4, 1025, 4)]
        variants.append(min(candidates, key=lambda arch: abs(conv_macs(arch) - target)))
    return variants


def compare(args) -> list[str]:
    from proxy import mnist as mnist_subset  # bench/proxy.py: the same subsample

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = mnist_subset(args.mnist, args.limit, args.val, args.test)
    space = get_space("small", input_shape=data.input_shape, num_classes=data.num_classes)
    recipe = get_recipe("quick", epochs=args.epochs_proxy)
    seeds = list(range(args.seeds))
    scores = {"TPE search": [], "random search": [], "baseline": []}
    rows = [
        f"MNIST 16x16: {len(data.train)} training, {len(data.val)} validation, {len(data.test)} test images; "
        f"budget {space.budget}; each search {args.compare_trials} trials x {args.epochs_proxy} epochs (quick, "
        f"median pruner); its best trial and the baseline retrained {args.long_epochs} epochs (quick) with the "
        f"search's seed; seeds {seeds}",
        "",
        "| seed | method | best trial (proxy val accuracy) | test accuracy after retraining | search s |",
        "| ---: | --- | --- | ---: | ---: |",
    ]
    original = settings_module.make_sampler
    for seed in seeds:
        for method, sampler in (("TPE search", original), ("random search", _random_sampler)):
            settings_module.make_sampler = sampler
            try:
                start = time.perf_counter()
                study = budgetnet.search(space, data, n_trials=args.compare_trials, recipe=recipe, seed=seed,
                                         storage=optuna.storages.InMemoryStorage(), progress=False,
                                         device="cpu")  # fmt: skip
                seconds = time.perf_counter() - start
            finally:
                settings_module.make_sampler = original
            best = best_trial(study)
            found = budgetnet.Arch.from_dict(best.user_attrs["arch"])
            scores[method].append(_long_test(found, data, args, seed))
            rows.append(f"| {seed} | {method} | `{found.notation()}` ({best.values[0]:.4f}) | "
                        f"{scores[method][-1]:.4f} | {seconds:.0f} |")  # fmt: skip
            print(rows[-1], flush=True)
        scores["baseline"].append(_long_test(space.baseline, data, args, seed))
        rows.append(f"| {seed} | baseline | `{space.baseline.notation()}` | {scores['baseline'][-1]:.4f} | |")
        print(rows[-1], flush=True)
    rows += ["", "| method | test accuracy, mean ± standard deviation over the seeds |", "| --- | ---: |"]
    rows += [f"| {method} | {_spread(values)} |" for method, values in scores.items()]

    fig, ax = plt.subplots(figsize=(5.5, 3.5))
    for position, (method, values) in enumerate(scores.items()):
        ax.scatter([position] * len(values), values, color="C0", alpha=0.6)
        ax.errorbar(position + 0.15, statistics.mean(values), yerr=statistics.stdev(values) if len(values) > 1 else 0,
                    fmt="o", color="C3", capsize=4)  # fmt: skip
    ax.set_xticks(range(len(scores)), list(scores))
    ax.set_ylabel("test accuracy")
    ax.set_title(f"MNIST 16x16, equal budget, {len(seeds)} seeds (dots) and mean ± sd")
    fig.tight_layout()
    fig.savefig(Path(args.plot_dir) / "search_compare.png", dpi=110)
    plt.close(fig)

    variants = depth_variants(space.baseline, args.depths)
    base_macs = conv_macs(space.baseline)
    rows += ["", f"Sec. 4.4 at small scale: `(3,w)xd` as the last stage, {args.long_epochs} epochs, seeds {seeds}", "",
             "| last-stage depth d | conv layers | architecture | Eqn. (1) ratio | test accuracy, mean ± sd |",
             "| ---: | ---: | --- | ---: | ---: |"]  # fmt: skip
    means, deviations = [], []
    for depth, arch in zip(args.depths, variants):
        same = arch == space.baseline  # trained above with the same recipe and seeds
        values = scores["baseline"] if same else [_long_test(arch, data, args, seed) for seed in seeds]
        means.append(statistics.mean(values))
        deviations.append(statistics.stdev(values) if len(values) > 1 else 0.0)
        rows.append(f"| {depth} | {arch.depth} | `{arch.notation()}` | {conv_macs(arch) / base_macs:.3f} | "
                    f"{_spread(values)} |")  # fmt: skip
        print(rows[-1], flush=True)
    fig, ax = plt.subplots(figsize=(5.5, 3.5))
    ax.errorbar([arch.depth for arch in variants], means, yerr=deviations, fmt="o-", capsize=4)
    ax.set_xlabel("conv layers (depth); last stage (3,w)xd, w for equal cost")
    ax.set_ylabel("test accuracy")
    ax.set_title("Equal Eqn. (1) cost: deeper and thinner last stage")
    fig.tight_layout()
    fig.savefig(Path(args.plot_dir) / "depth_equal_cost.png", dpi=110)
    plt.close(fig)
    return rows


def residual(args) -> list[str]:
    space = get_space("residual", input_shape=(1, 16, 16), num_classes=10)
    study = optuna.create_study(direction="maximize")
    start = time.perf_counter()
    for _ in range(args.samples):
        trial = study.ask()
        arch = space.suggest(trial)
        study.tell(trial, float(complexity(arch).conv_macs % 97) / 97)  # a stand-in score, no training
    rate = args.samples / (time.perf_counter() - start)
    data, space, recipe, study, search_seconds, best, found = search_mnist("residual", args)
    rows = [
        "| model | Eqn. (1) MACs | ratio | test accuracy, mean ± std over seeds | per seed | train s (mean) |",
        "| --- | ---: | ---: | ---: | --- | ---: |",
    ]
    for label, arch in (("small_residual", space.baseline), (f"best found (trial {best.number})", found)):
        tests, seconds = [], []
        for seed in range(args.seeds):
            result = fit(arch, data, recipe, seed=seed, progress=False, device="cpu")
            tests.append(evaluate(result.model, data, split="test", device="cpu")["accuracy"])
            seconds.append(result.seconds)
        macs = complexity(arch).conv_macs
        spread = statistics.stdev(tests) if len(tests) > 1 else 0.0
        rows.append(
            f"| {label}: `{arch.notation()}` | {macs:,} | {macs / complexity(space.baseline).conv_macs:.2f}x | "
            f"{statistics.mean(tests):.4f} ± {spread:.4f} | {', '.join(f'{t:.4f}' for t in tests)} | {statistics.mean(seconds):.1f} |"
        )
    counts = trial_counts(study)
    header = [
        f"residual space: {rate:.1f} candidates sampled per second (suggest with the width solve, Eqn. (1), tell; "
        f"{args.samples} on 1x16x16, in memory)",
        "",
        f"MNIST, 28x28: {len(data.train)} training images (--limit), {len(data.val)} validation, "
        f"{len(data.test)} test; {args.trials} trials x {args.epochs} epochs "
        f"({counts['complete']} completed, {counts['pruned']} pruned, {counts['infeasible']} infeasible) in "
        f"{search_seconds:.0f} s; budget {space.budget}. Both rows retrained with seeds 0..{args.seeds - 1}:",
        "",
    ]
    return header + rows


def trust(args) -> list[str]:
    from budgetnet.cli.search import MAIN_JOB_BASELINE
    from budgetnet.studies.confirm import confirm, mean_interval, paired_difference
    from budgetnet.training.data import Split
    import dataclasses

    lines = []
    digits = load_data("digits")
    mnist = load_data(f"idx:{args.mnist}", image_size=16, limit=args.limit)
    mnist = dataclasses.replace(mnist, val=Split(mnist.val.images[:args.val], mnist.val.labels[:args.val]),
                                test=Split(mnist.test.images[:args.test], mnist.test.labels[:args.test]))  # fmt: skip
    methods = (("TPE, small space", "small", "tpe"), ("random, small space", "small", "random"),
               ("TPE, replacement space", "replacement", "tpe"))  # fmt: skip
    for name, data, folds in (("digits", digits, 3), ("MNIST", mnist, None)):
        baseline = budgetnet.parse(MAIN_JOB_BASELINE, input_shape=data.input_shape, num_classes=data.num_classes)
        started = time.perf_counter()
        results, base_means = {}, []
        for label, space_name, sampler in methods:
            for seed in range(args.trust_seeds):
                space = get_space(space_name, baseline=baseline, input_shape=data.input_shape,
                                  num_classes=data.num_classes)  # fmt: skip
                study = budgetnet.search(space, data, n_trials=args.trust_trials, epochs=args.trust_epochs, seed=seed,
                                         sampler=sampler, progress=False, device="cpu",
                                         storage=optuna.storages.InMemoryStorage())  # fmt: skip
                try:
                    report = confirm(study, top=1, seeds=args.confirm_seeds, folds=folds, data=data, device="cpu",
                                     progress=False)  # fmt: skip
                except budgetnet.BudgetNetError as error:  # no feasible candidate in this search
                    print(f"{name} {label} seed {seed}: {error}", flush=True)
                    continue
                base, best = report["models"][0], report["models"][1]
                base_means.append(base["mean"])
                results.setdefault(label, []).append((best, report["verdict"]))
                print(f"{name} {label} seed {seed}: best {best['model']} {best['mean']:.4f} "
                      f"({100 * best['vs_baseline']['mean']:+.2f} points), baseline {base['mean']:.4f}; "
                      f"{report['verdict']}", flush=True)  # fmt: skip
        held = report["held_out"]["text"]
        lines += [f"### {name}: {data!r}", "",
                  f"{args.trust_seeds} search seeds x {args.trust_trials} trials x {args.trust_epochs} epochs per method; "
                  f"confirmation: {held}; {time.perf_counter() - started:.0f} s", "",
                  "| method | best, confirmed accuracy (mean over searches, 95% CI) | best minus baseline, points "
                  "(95% CI over searches) | verdicts: beats / indistinguishable / worse |",
                  "| --- | ---: | ---: | ---: |"]  # fmt: skip
        base = mean_interval(base_means)
        lines.append(f"| baseline `{MAIN_JOB_BASELINE}` | {base['mean']:.4f} ({base['low']:.4f} to {base['high']:.4f}) | "
                     f"- | - |")  # fmt: skip
        for label, rows in results.items():
            acc = mean_interval([best["mean"] for best, _ in rows])
            diff = mean_interval([100 * best["vs_baseline"]["mean"] for best, _ in rows])
            beats = sum("beats the baseline by" in verdict for _, verdict in rows)
            worse = sum("the baseline beats every one" in verdict for _, verdict in rows)
            lines.append(f"| {label} | {acc['mean']:.4f} ({acc['low']:.4f} to {acc['high']:.4f}) | "
                         f"{diff['mean']:+.2f} ({diff['low']:+.2f} to {diff['high']:+.2f}) | "
                         f"{beats} / {len(rows) - beats - worse} / {worse} |")  # fmt: skip
        tpe, rnd = results["TPE, small space"], results["random, small space"]
        gap = paired_difference([100 * b["mean"] for b, _ in tpe], [100 * b["mean"] for b, _ in rnd])
        lines += ["", f"TPE minus random (small space), paired by search seed: {gap['mean']:+.2f} points "
                      f"(95% CI {gap['low']:+.2f} to {gap['high']:+.2f})", ""]  # fmt: skip
    return lines


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", choices=("overhead", "sampling", "mnist", "residual", "compare", "trust", "all"),
                        default="all",
                        help="all = overhead, sampling, mnist, residual (compare runs only when named)")  # fmt: skip
    parser.add_argument("--trials", type=int, default=50, help="trials of the digits default (default 50)")
    parser.add_argument("--epochs", type=int, default=15, help="epochs per trial of the digits default (default 15)")
    parser.add_argument("--samples", type=int, default=300, help="candidates for the sampling rate (default 300)")
    parser.add_argument("--mnist", default="../shared/data/mnist", help="directory of the MNIST IDX files")
    parser.add_argument("--limit", type=int, default=20000, help="MNIST training images (default 20000)")
    parser.add_argument("--mnist-trials", type=int, default=24, dest="mnist_trials", help="MNIST trials (default 24)")
    parser.add_argument("--mnist-epochs", type=int, default=5, dest="mnist_epochs", help="MNIST epochs per trial (default 5)")
    parser.add_argument("--val", type=int, default=1000, help="compare: validation images (default 1000)")
    parser.add_argument("--test", type=int, default=2000, help="compare: test images (default 2000)")
    parser.add_argument("--seeds", type=int, default=3, help="compare: seeds; residual: retrainings per model (default 3)")
    parser.add_argument("--compare-trials", type=int, default=16, dest="compare_trials",
                        help="compare: trials per search (default 16; TPE samples at random for the first 10)")  # fmt: skip
    parser.add_argument("--epochs-proxy", type=int, default=3, dest="epochs_proxy",
                        help="compare: epochs per trial (default 3)")  # fmt: skip
    parser.add_argument("--long-epochs", type=int, default=10, dest="long_epochs",
                        help="compare: epochs of the retraining (default 10)")  # fmt: skip
    parser.add_argument("--depths", type=int, nargs="+", default=[1, 3, 6, 10],
                        help="compare: depths of the last stage (default 1 3 6 10)")  # fmt: skip
    parser.add_argument("--plot-dir", default=str(Path(__file__).resolve().parent.parent / "docs"), dest="plot_dir",
                        help="compare: where the PNGs go (default docs/)")  # fmt: skip
    parser.add_argument("--trust-seeds", type=int, default=5, dest="trust_seeds", help="trust: search seeds (default 5)")
    parser.add_argument("--trust-trials", type=int, default=20, dest="trust_trials", help="trust: trials (default 20)")
    parser.add_argument("--trust-epochs", type=int, default=6, dest="trust_epochs", help="trust: epochs (default 6)")
    parser.add_argument("--confirm-seeds", type=int, default=2, dest="confirm_seeds",
                        help="trust: confirmation seeds per model (default 2)")  # fmt: skip
    args = parser.parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if args.part == "trust":
        print("\n## trust\n")
        torch.set_num_threads(1)
        print(machine())
        print(f"command: python bench/search.py {' '.join(argv if argv is not None else sys.argv[1:])}")
        print("\n".join(trust(args)))
        print(f"\n1-minute load average at the end: {os.getloadavg()[0]:.1f}")
        return 0
    if args.part == "compare":
        torch.set_num_threads(1)  # 2 threads on 2 shared cores ran 10x slower than 1 (bench/proxy.py)
    print(machine())
    print(f"command: python bench/search.py {' '.join(argv if argv is not None else sys.argv[1:])}".rstrip())
    if args.part in ("overhead", "all"):
        print("\n## overhead\n")
        print("\n".join(overhead(args)))
    if args.part in ("sampling", "all"):
        print("\n## sampling\n")
        print("\n".join(sampling(args)))
    if args.part in ("mnist", "all"):
        print("\n## mnist\n")
        mnist_args = argparse.Namespace(mnist=args.mnist, limit=args.limit, trials=args.mnist_trials, epochs=args.mnist_epochs)
        print("\n".join(mnist(mnist_args)))
    if args.part == "compare":
        print("\n## compare\n")
        print("\n".join(compare(args)))
    if args.part in ("residual", "all"):
        print("\n## residual\n")
        residual_args = argparse.Namespace(mnist=args.mnist, limit=args.limit, trials=args.mnist_trials,
                                           epochs=args.mnist_epochs, seeds=args.seeds, samples=args.samples)  # fmt: skip
        print("\n".join(residual(residual_args)))
    print(f"\n1-minute load average at the end: {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
