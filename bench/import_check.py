"""Benchmark: what the numeric check after an import costs.

For each torchvision model (eval mode, batch-norm statistics as initialised), times
``Arch.from_module(model, (3, side, side))`` with ``verify=False`` and with ``verify=True``
(the default), and the check alone as it runs (``verify.check_import``, at the smaller input
:func:`budgetnet.pytorch.verify.check_shape_for` picks) and forced to the full input size,
each the median of ``--repeats`` calls after one warm-up; building the torchvision module is
not timed. Prints one line per model, and ``uptime`` before and after (the machine is shared).

Usage:
    python bench/import_check.py [--repeats 5] [--threads N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

import budgetnet  # noqa: E402
from budgetnet.pytorch import verify  # noqa: E402
from budgetnet.pytorch.fx_graph import import_module  # noqa: E402
from budgetnet.pytorch.importer import import_torchvision  # noqa: E402

MODELS = [("resnet152", 224), ("efficientnet_b0", 224), ("mobilenet_v2", 224), ("convnext_tiny", 224), ("densenet121", 224), ("resnet18", 224)]


def median_seconds(call, repeats: int) -> float:
    call()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's own)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    warnings.simplefilter("ignore", UserWarning)  # dropout before the first Linear (mobilenet_v2)
    models = import_torchvision().models
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs")
    print("uptime:", subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())
    print(f"{'model':<14} {'input':>5} {'checked at':>10} {'verify=False':>12} {'verify=True':>11} "
          f"{'check':>7} {'check at full size':>18}")  # fmt: skip
    for name, side in MODELS:
        torch.manual_seed(0)
        model = getattr(models, name)().eval()
        shape = (3, side, side)
        imported = import_module(model, shape)
        small = verify.check_shape_for(imported)
        plain = median_seconds(lambda: budgetnet.Arch.from_module(model, shape, verify=False), args.repeats)
        checked = median_seconds(lambda: budgetnet.Arch.from_module(model, shape), args.repeats)
        check = median_seconds(lambda: verify.check_import(model, imported), args.repeats)
        full = median_seconds(lambda: verify.check_import(model, imported, input_shape=shape), args.repeats)
        print(f"{name:<14} {side:>5} {small[1]:>7} px {plain:>10.3f} s {checked:>9.3f} s {check:>5.3f} s "
              f"{full:>16.3f} s")  # fmt: skip
    print("uptime:", subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())


if __name__ == "__main__":
    main()
