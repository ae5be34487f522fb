"""The quick recipe on plain (no BN) nets: does a new user's first run on digits learn?

Run by hand, never in the tests. On the bundled digits (1x16x16, seed 0, CPU, 1 thread),
each net is trained with the quick recipe as it was before issue 10 (batch 128, no gradient
clipping) and as it is now (batch 32, gradient norm clipped at 1.0); both AdamW lr 5e-3,
cosine with warm-up, label smoothing 0.1. Prints the first epoch's training loss, the test
accuracy (1 view) and the seconds. The last net is the paper's head on a 16 px input, what a
notation without a head got before issue 10; ``fit`` now refuses it as an Arch (its 6x6 SPP
level is finer than the 4x4 map), so every net is built first (seed 0) and passed as a module.

Example:
    python bench/recipe.py
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import torch

import budgetnet
from budgetnet.cost.latency import cpu_model
from budgetnet.training.recipes import get_recipe
from budgetnet.training.train import evaluate, fit

NETS = (
    ("(3,32) 2/2 (3,64)x2 gap", 5),
    ("(3,32) 2/2 (3,64)x2 gap", 15),
    ("(3,32) 2/2 (3,64) 2/2 (3,128) spp(2,1)", 5),
    ("(3,32) 2/2 (3,64) 2/2 (3,128) spp fc4096 fc4096", 5),
)
RECIPES = {"before: batch 128, no clipping": {"batch_size": 128, "clip_norm": 0.0}, "now: batch 32, clip 1.0": {}}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--skip-paper-head", action="store_true", help="leave out the slow fc4096 net")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    print(f"CPU: {os.cpu_count()}-core {cpu_model()} shared with other jobs; torch {torch.__version__} (1 thread); "
          f"1-minute load average {os.getloadavg()[0]:.1f} at the start")  # fmt: skip
    print(f"command: python bench/recipe.py {' '.join(argv if argv is not None else sys.argv[1:])}".rstrip())
    data = budgetnet.load_data("digits")
    print(f"data: {data!r}\n")
    print("| net | epochs | quick recipe | first-epoch loss | test accuracy | s |")
    print("| --- | ---: | --- | ---: | ---: | ---: |")
    for spec, epochs in NETS:
        if args.skip_paper_head and "fc4096" in spec:
            continue
        arch = budgetnet.parse(spec, input_shape=data.input_shape, num_classes=data.num_classes)
        for label, overrides in RECIPES.items():
            start = time.perf_counter()
            torch.manual_seed(0)
            model = budgetnet.build(arch)  # a module: fit would refuse the paper's head on a 4x4 map
            result = fit(model, data, get_recipe("quick", epochs, **overrides), progress=False, device="cpu")
            test = 0.0 if result.diverged else evaluate(result.model, data, device="cpu")["accuracy"]
            first = result.history[0]["train_loss"] if result.history else float("nan")
            print(f"| `{spec}` | {epochs} | {label} | {first:.2f} | {test:.4f} | {time.perf_counter() - start:.1f} |",
                  flush=True)  # fmt: skip
    print(f"\n1-minute load average at the end: {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
