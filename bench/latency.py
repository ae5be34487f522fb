"""Benchmark: Eqn. (1) against measured time for the paper's 14 models, and the per-layer
latency table's prediction error (CPU by default).

For every model of Tables 1-2 (3x224x224, 1000 classes) the script measures, with
``budgetnet.measure`` (median of ``--repeats`` runs after ``--warmup``):

* **forward**: inference of the full model (SPP and fc 4096 x2 included), batch ``--batch``;
* **conv part**: inference of the conv layers alone (a global average pool in place of the
  head, which is the same for all 14 models and is not part of Eqn. (1));
* **train step**: forward, loss, backward and SGD update of the full model, batch
  ``--train-batch``;

and the time predicted by a :class:`budgetnet.cost.latency.LatencyTable` (every distinct layer
configuration timed in isolation, kept in a temporary cache so each run starts fresh) for the
forward and train rows. It prints a markdown table, the Spearman rank correlation of Eqn. (1)
with each measured column and of the predicted with the measured times, and the table's mean
and largest absolute relative error. The 14 models have nearly equal Eqn. (1) by design, so a
last row adds model A with its filters scaled by 0.25, 0.5, 0.75 and 1.5 (conv part only) to
rank Eqn. (1) against time over a wide range of costs.

Usage:
    python bench/latency.py [--repeats 5] [--warmup 2] [--batch 1] [--train-batch 2] [--threads N]
        [--device cpu]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

import torch
from scipy.stats import spearmanr

import budgetnet
from budgetnet.cost.latency import LatencyTable, device_name, measure
from search_spaces.paper import MODELS, NOTATION

#: Model A with its filters scaled, to see Eqn. (1) against time over a wide range of costs.
WIDTH_SWEEP = "(7,{0})/2 3/3 (5,{1}) 2/2 (3,{2})x3"
WIDTHS = (0.25, 0.5, 0.75, 1.5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--batch", type=int, default=1, help="forward batch size (default 1)")
    parser.add_argument("--train-batch", type=int, default=2, help="train-step batch size (default 2)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    started = time.perf_counter()
    print(f"machine: {device_name(args.device)}; torch {torch.__version__}; "
          f"1-min load average {os.getloadavg()[0]:.1f}")  # fmt: skip
    timing = dict(repeats=args.repeats, warmup=args.warmup)
    measure(MODELS["A"], args.device, args.batch, "forward", **timing)  # warms the allocator and kernels; not reported
    rows = []
    with tempfile.TemporaryDirectory() as cache:
        forward_table = LatencyTable(args.device, batch_size=args.batch, mode="forward", cache_dir=cache, **timing)
        train_table = LatencyTable(args.device, batch_size=args.train_batch, mode="train", cache_dir=cache, **timing)
        for name, arch in MODELS.items():
            conv_part = budgetnet.parse(NOTATION[name] + " gap")
            row = {
                "model": name,
                "macs": budgetnet.conv_macs(arch),
                "forward": measure(arch, args.device, args.batch, "forward", **timing).median_ms,
                "forward_predicted": forward_table.predict(arch).total_ms,
                "conv": measure(conv_part, args.device, args.batch, "forward", **timing).median_ms,
                "train": measure(arch, args.device, args.train_batch, "train", **timing).median_ms,
                "train_predicted": train_table.predict(arch).total_ms,
            }
            rows.append(row)
            print(f"  {name:3} forward {row['forward']:8.1f} ms (table {row['forward_predicted']:8.1f}), conv part "
                  f"{row['conv']:7.1f} ms, train step {row['train']:8.1f} ms (table {row['train_predicted']:8.1f})",
                  flush=True)  # fmt: skip
        entries = (len(forward_table), len(train_table))

    print(f"\n| model | Eqn. (1) MACs | forward ms (batch {args.batch}) | table ms | error | conv part ms | "
          f"train step ms (batch {args.train_batch}) | table ms | error |")  # fmt: skip
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for row in rows:
        forward_error = row["forward_predicted"] / row["forward"] - 1
        train_error = row["train_predicted"] / row["train"] - 1
        print(f"| {row['model']} | {row['macs']:,} | {row['forward']:.1f} | {row['forward_predicted']:.1f} | "
              f"{forward_error:+.1%} | {row['conv']:.1f} | {row['train']:.1f} | {row['train_predicted']:.1f} | "
              f"{train_error:+.1%} |")  # fmt: skip

    macs = [row["macs"] for row in rows]
    print()
    for column, label in (("forward", "forward"), ("conv", "conv part"), ("train", "train step")):
        rho = spearmanr(macs, [row[column] for row in rows]).statistic
        print(f"Spearman(Eqn. (1), measured {label}) = {rho:+.2f}")
    for mode in ("forward", "train"):
        measured = [row[mode] for row in rows]
        predicted = [row[f"{mode}_predicted"] for row in rows]
        errors = [abs(p / m - 1) for p, m in zip(predicted, measured)]
        rho = spearmanr(predicted, measured).statistic
        print(f"table, {mode}: mean |error| {statistics.mean(errors):.1%}, largest {max(errors):.1%}, "
              f"Spearman(predicted, measured) = {rho:+.2f}")  # fmt: skip
    sweep = [(f"A x{width:g}", budgetnet.parse(WIDTH_SWEEP.format(*(int(n * width) for n in (64, 128, 256))) + " gap"))
             for width in WIDTHS]  # fmt: skip
    sweep_rows = [(name, budgetnet.conv_macs(arch), measure(arch, args.device, args.batch, "forward", **timing).median_ms)
                  for name, arch in sweep]  # fmt: skip
    sweep_rows += [(row["model"], row["macs"], row["conv"]) for row in rows]
    print("\nconv part, forward, across costs: " + ", ".join(f"{name} {macs / 1e6:.0f}M MACs {ms:.1f} ms"
                                                          for name, macs, ms in sweep_rows[: len(WIDTHS)]))  # fmt: skip
    rho = spearmanr([macs for _, macs, _ in sweep_rows], [ms for _, _, ms in sweep_rows]).statistic
    print(f"Spearman(Eqn. (1), measured conv part) over A at widths {', '.join(f'{w:g}' for w in WIDTHS)} and the "
          f"14 models = {rho:+.2f}")  # fmt: skip
    print(f"table entries: {entries[0]} forward, {entries[1]} train; wall time {time.perf_counter() - started:.0f} s; "
          f"1-min load average at the end {os.getloadavg()[0]:.1f}")  # fmt: skip


if __name__ == "__main__":
    main()
