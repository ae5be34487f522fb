"""Benchmark: ``budgetnet.fit`` against a minimal hand-written PyTorch loop (CPU).

Both train the same model (same initial weights) on the same images with the same SGD
settings (momentum 0.9, weight decay 5e-4, batch 128) for one epoch, and report training
images per second (the validation pass of ``fit`` is not timed: ``FitResult.images_per_second``
covers the training steps only, as the hand loop does). ``fit`` runs with augmentation off
so both do the same work; a third row runs ``fit`` with the dataset's augmentation (random
crop) to show its price. Rounds alternate hand / fit / fit+aug to spread machine noise; the
median of each is reported. The goal is fit / hand >= 0.95 (no framework overhead).

Data: MNIST from IDX files when the directory exists (default ``/work/shared/data/mnist``,
1x28x28), else scikit-learn's digits; ``--limit`` caps the training images.

Usage:
    python bench/train.py [--data idx:/work/shared/data/mnist] [--limit 6400] [--rounds 3]
        [--spec "(3,32) 2/2 (3,64)x2 gap"] [--threads N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import torch
from torch import nn

import budgetnet
from budgetnet.training.data import load_data
from budgetnet.cost.latency import device_name
from budgetnet.training.recipes import Recipe
from budgetnet.training.train import fit

DEFAULT_DATA = "idx:/work/shared/data/mnist"
GOAL = 0.95


def hand_loop(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, batch_size: int, seed: int) -> float:
    """One epoch of the plainest PyTorch training loop; returns training images per second."""
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    criterion = nn.CrossEntropyLoss()
    generator = torch.Generator().manual_seed(seed)
    model.train()
    steps = len(images) // batch_size
    started = time.perf_counter()
    order = torch.randperm(len(images), generator=generator)
    for step in range(steps):
        index = order[step * batch_size : (step + 1) * batch_size]
        loss = criterion(model(images[index]), labels[index])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return steps * batch_size / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=None, help=f"dataset spec (default {DEFAULT_DATA} if present, else digits)")
    parser.add_argument("--limit", type=int, default=6400, help="training images (default 6400)")
    parser.add_argument("--spec", default="(3,32) 2/2 (3,64)x2 gap", help="the architecture to train")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds; medians are reported")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    spec = args.data or (DEFAULT_DATA if Path(DEFAULT_DATA[4:]).is_dir() else "digits")
    plain = load_data(spec, limit=args.limit, augment={"crop": False, "flip": False, "color": 0.0})
    augmented = load_data(spec, limit=args.limit)
    arch = budgetnet.parse(args.spec, input_shape=plain.input_shape, num_classes=plain.num_classes)
    recipe = Recipe("bench", 1, batch_size=args.batch_size, optimizer="sgd", lr=0.01, momentum=0.9,
                    weight_decay=5e-4, schedule="constant")  # fmt: skip
    load = os.getloadavg()[0]
    print(f"machine: CPU: {device_name('cpu')}; torch {torch.__version__}; 1-min load average {load:.1f}")
    print(f"data: {plain!r}; model: {arch} ({budgetnet.conv_macs(arch):,} MACs, Eqn. (1)); batch {args.batch_size}")
    speeds: dict[str, list[float]] = {"hand loop": [], "fit": [], "fit + augmentation": []}
    for round_index in range(args.rounds):
        torch.manual_seed(round_index)
        model = budgetnet.build(arch)
        speeds["hand loop"].append(
            hand_loop(model, plain.train.images, plain.train.labels, args.batch_size, round_index)
        )
        torch.manual_seed(round_index)
        speeds["fit"].append(fit(budgetnet.build(arch), plain, recipe, device="cpu", seed=round_index,
                                 progress=False).images_per_second)  # fmt: skip
        speeds["fit + augmentation"].append(fit(arch, augmented, recipe, device="cpu", seed=round_index,
                                                progress=False).images_per_second)  # fmt: skip
        print(
            f"round {round_index + 1}: "
            + ", ".join(f"{name} {values[-1]:,.0f} img/s" for name, values in speeds.items())
        )
    hand = statistics.median(speeds["hand loop"])
    print(f"\n| loop | images/s (median of {args.rounds}) | ratio to hand loop |")
    print("| --- | ---: | ---: |")
    for name, values in speeds.items():
        print(f"| {name} | {statistics.median(values):,.0f} | {statistics.median(values) / hand:.3f} |")
    ratio = statistics.median(speeds["fit"]) / hand
    print(f"\nfit / hand loop = {ratio:.3f} (goal >= {GOAL}): {'met' if ratio >= GOAL else 'NOT met'}; "
          f"1-min load average at the end {os.getloadavg()[0]:.1f}")  # fmt: skip


if __name__ == "__main__":
    main()
