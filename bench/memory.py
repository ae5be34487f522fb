"""Benchmark: the training memory estimate of ``budgetnet.cost.memory`` against a measured peak.

For each network and batch size, a fresh Python process builds the model (float32, CPU, one
thread), creates the batch, and reads its resident memory (``VmRSS``); it then resets the
high-water mark (``/proc/self/clear_refs``) and runs one training step (forward, cross
entropy, backward, optimiser step: gradients and optimiser state are allocated in it) and
reads the peak (``VmHWM``). The measured figure is that peak minus the resident memory before
the step. The estimate it is compared with is the part of
``estimate_memory(arch, batch, optimizer).training_bytes`` that the step allocates: the
total less the weights and the input batch, which were resident before.

Linux only (it reads ``/proc``). RSS counts what the allocator holds, not what tensors use,
so small steps carry a fixed overhead of tens of MiB (libraries paged in on the first
backward pass).

Usage:
    python bench/memory.py [--optimizer adamw]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

CASES = [
    ("(3,64) 2/2 (3,128)x2 2/2 (3,256)x2 spp(4,2,1) fc512", (3, 32, 32), 32),
    ("(3,64) 2/2 (3,128)x2 2/2 (3,256)x2 spp(4,2,1) fc512", (3, 32, 32), 128),
    ("(3,64) 2/2 (3,128)x2 2/2 (3,256)x2 spp(4,2,1) fc512", (3, 32, 32), 512),
    ("(7,64)/2 3/3 (5,128) 2/2 (3,256)x3", (3, 224, 224), 8),
]

_CHILD = r"""
import json, sys, torch, budgetnet
from budgetnet.cost.memory import estimate_memory
torch.set_num_threads(1)
spec, shape, batch, optimizer = json.loads(sys.argv[1])
def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1]) * 1024
arch = budgetnet.parse(spec, input_shape=tuple(shape), num_classes=10)
model = budgetnet.build(arch)
make = {"adamw": lambda p: torch.optim.AdamW(p), "sgd": lambda p: torch.optim.SGD(p, lr=0.01, momentum=0.9)}
step_optimizer = make[optimizer](model.parameters())
x, y = torch.randn(batch, *shape), torch.randint(0, 10, (batch,))
before = status("VmRSS")
open("/proc/self/clear_refs", "w").write("5")
loss = torch.nn.functional.cross_entropy(model(x), y)
step_optimizer.zero_grad(set_to_none=True)
loss.backward()
step_optimizer.step()
measured = status("VmHWM") - before
estimate = estimate_memory(arch, batch, optimizer)
allocated = estimate.training_bytes - estimate.param_bytes - batch * estimate.input_values * 4
print(json.dumps({"measured": measured, "estimate": allocated, "total": estimate.training_bytes}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--optimizer", choices=("adamw", "sgd"), default="adamw", help="optimiser of the step")
    args = parser.parse_args()
    print(f"optimizer {args.optimizer}; MiB = 2**20 bytes")
    print(f"{'network':54} {'input':>9} {'batch':>5} {'measured MiB':>12} {'estimate MiB':>12} {'ratio':>6}")
    for spec, shape, batch in CASES:
        argument = json.dumps([spec, shape, batch, args.optimizer])
        result = subprocess.run([sys.executable, "-c", _CHILD, argument], capture_output=True, text=True, check=True)
        row = json.loads(result.stdout)
        print(f"{spec:54} {'x'.join(map(str, shape)):>9} {batch:>5} {row['measured'] / 2**20:12.1f} "
              f"{row['estimate'] / 2**20:12.1f} {row['measured'] / row['estimate']:6.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
