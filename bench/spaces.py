"""Benchmark: how fast the search spaces suggest candidates, and how fast the small ones train.

Two measurements:

* **suggest rate**: candidates per second of each registered space (``small``, ``stage``,
  ``replacement``) under a seeded random sampler, i.e. ``study.ask()`` plus
  ``space.suggest(trial)`` (width solving or the walk of the variants graph), with the
  share that lands within the budget's tolerance. The first call of the replacement space
  builds its variants graph; that time is reported apart.
* **small training time**: forward + backward + SGD step of the small baseline at batch 128
  on the CPU (``torch.set_num_threads``), the median and the fastest of the timed batches
  after a warm-up (on a shared machine the fastest is the cleaner number), and the time of
  one epoch over 1,437 images at the median (scikit-learn's digits training split at
  80 %), for 1x16x16 (digits), 1x28x28 (MNIST) and 3x32x32 (CIFAR); then the same for a
  few candidates of the small space on 1x16x16, to show every candidate costs about the same.

Usage:
    python bench/spaces.py [--threads 2] [--batches 20] [--trials 200] [--candidates 8]
"""

from __future__ import annotations

import argparse
import statistics
import time

import optuna
import torch

import budgetnet
from budgetnet.cost.latency import cpu_model
from search_spaces import small
from search_spaces.base import SPACES, get_space

EPOCH_IMAGES = 1437
BATCH = 128


def train_step_seconds(arch: budgetnet.Arch, batches: int) -> tuple[float, float]:
    """(median, fastest) seconds of one forward + backward + SGD step at batch 128."""
    model = budgetnet.build(arch)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    images = torch.randn(BATCH, *arch.input_shape)
    labels = torch.randint(0, arch.num_classes, (BATCH,))
    times = []
    for step in range(batches + 3):
        start = time.perf_counter()
        loss = torch.nn.functional.cross_entropy(model(images), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step >= 3:
            times.append(time.perf_counter() - start)
    return statistics.median(times), min(times)


def suggest_rate(name: str, trials: int) -> tuple[float, float, float]:
    """(seconds to build the space and its first candidate, candidates per second, share matched)."""
    start = time.perf_counter()
    space = get_space(name)
    space.check()
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    space.suggest(study.ask())
    first = time.perf_counter() - start
    matched = 0
    start = time.perf_counter()
    for _ in range(trials):
        arch = space.suggest(study.ask())
        matched += space.budget.matches(arch)
    return first, trials / (time.perf_counter() - start), matched / trials


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    parser.add_argument("--batches", type=int, default=20, help="timed training batches per model (default 20)")
    parser.add_argument("--trials", type=int, default=200, help="suggestions timed per space (default 200)")
    parser.add_argument("--candidates", type=int, default=8, help="small-space candidates to time (default 8)")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    torch.set_num_threads(args.threads)
    print(f"CPU: {torch.get_num_threads()} threads, {cpu_model()}; torch {torch.__version__}")

    print("\nsuggest rate (random sampler, seed 0)")
    print(f"{'space':<12} {'first (s)':>9} {'per second':>10} {'matched':>8}")
    for name in SPACES:
        first, rate, matched = suggest_rate(name, args.trials)
        print(f"{name:<12} {first:>9.2f} {rate:>10.1f} {matched:>8.0%}")

    print(f"\nsmall baseline, forward + backward + SGD step, batch {BATCH}")
    print(f"(median and fastest of {args.batches} batches; an epoch is {EPOCH_IMAGES} images at the median)")
    print(f"{'input':<9} {'MACs':>9} {'ms/batch':>9} {'fastest':>8} {'s/epoch':>8}")
    for shape in ((1, 16, 16), (1, 28, 28), (3, 32, 32)):
        arch = small.baseline(shape)
        median, fastest = train_step_seconds(arch, args.batches)
        print(
            f"{'x'.join(map(str, shape)):<9} {budgetnet.conv_macs(arch):>9,} {median * 1e3:>9.1f} "
            f"{fastest * 1e3:>8.1f} {median * EPOCH_IMAGES / BATCH:>8.2f}"
        )

    print(f"\nsmall-space candidates on 1x16x16 (random sampler, seed 1), batch {BATCH}")
    space = get_space("small")
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    for _ in range(args.candidates):
        arch = space.suggest(study.ask())
        median, fastest = train_step_seconds(arch, args.batches)
        print(
            f"{budgetnet.conv_macs(arch):>9,} MACs {median * 1e3:>7.1f} ms/batch (fastest {fastest * 1e3:.1f}) "
            f"{median * EPOCH_IMAGES / BATCH:>5.2f} s/epoch  {arch}"
        )


if __name__ == "__main__":
    main()
