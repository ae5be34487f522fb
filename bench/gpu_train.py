"""Benchmark (GPU, prepared): train J' at 224x224 on synthetic data and report images/s and
model-FLOP utilisation, with and without ``torch.compile``.

Each configuration builds J' (``budgetnet.build``, 1000 classes), puts it in channels-last
memory and trains it with the paper's SGD settings under bf16 autocast, on one fixed batch of
random images and labels kept on the GPU (so the input pipeline costs nothing), for
``--warmup`` untimed and ``--steps`` timed steps (CUDA-synchronised wall time). Two paths:

* **loop**: the minimal training step (the GPU path of ``budgetnet.fit`` without its
  bookkeeping), eager and compiled;
* **fit**: ``budgetnet.fit`` itself for 2 epochs on a synthetic in-memory dataset of about
  ``steps`` batches (``from_tensors``, kept on the GPU, augmentation on): the training
  images/s of its second epoch, eager and compiled; skip it with ``--no-fit``.

Model-FLOP utilisation (MFU) = images/s x 3 x 2 x Eqn. (1) MACs of J' / the card's dense bf16
peak (3 = forward + backward, 2 FLOPs per multiply-add; conv layers only, as Eqn. (1); a
second column adds the fc layers). Peaks are looked up by ``torch.cuda.get_device_name()``.
The paper trains at 0.41 s per 128-image mini-batch on a Titan (about 312 images/s).

Needs torch (and numpy, networkx for budgetnet) only: no optuna, no fvcore.

Usage:
    python bench/gpu_train.py [--steps 30] [--warmup 10] [--batch-size 128] [--no-compile]
        [--no-fit] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import time

import torch
from torch import nn

import budgetnet
from budgetnet.cost.complexity import complexity
from budgetnet.training.data import from_tensors
from budgetnet.training.recipes import Recipe
from budgetnet.training.train import fit
from search_spaces.paper import MODELS

#: Dense bf16 tensor-core peaks (FLOP/s), matched in order against the device name.
BF16_PEAKS = (
    ("H100 PCIe", 756e12),
    ("H100 NVL", 835e12),
    ("H100", 989e12),  # SXM (e.g. "NVIDIA H100 80GB HBM3")
    ("H200", 989e12),
    ("H800", 989e12),
    ("A100", 312e12),
    ("L40S", 362e12),
    ("RTX 4090", 165e12),
)
PAPER_IMAGES_PER_SECOND = 128 / 0.41


def bf16_peak(name: str) -> float | None:
    return next((peak for key, peak in BF16_PEAKS if key in name), None)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def train_loop(arch, device, batch_size, steps, warmup, compiled: bool) -> float:
    """Images/s of the minimal bf16 + channels-last training step on one fixed batch."""
    torch.manual_seed(0)
    model = budgetnet.build(arch).to(device).to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    net = torch.compile(model) if compiled else model
    images = torch.randn(batch_size, *arch.input_shape, device=device).contiguous(memory_format=torch.channels_last)
    labels = torch.randint(0, arch.num_classes, (batch_size,), device=device)
    criterion = nn.CrossEntropyLoss()

    def step():
        with torch.autocast(device.type, dtype=torch.bfloat16):
            loss = criterion(net(images).float(), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    for _ in range(warmup):
        step()
    synchronize(device)
    started = time.perf_counter()
    for _ in range(steps):
        step()
    synchronize(device)
    return steps * batch_size / (time.perf_counter() - started)


def fit_run(arch, device, batch_size, steps, warmup, compiled: bool) -> float:
    """Images/s of ``budgetnet.fit`` in its second epoch of ``steps`` batches (the first,
    with compilation and cuDNN autotuning, is the warm-up; ``warmup`` is not used)."""
    count = (steps + 1) * batch_size
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (count, *arch.input_shape), dtype=torch.uint8, generator=generator)
    labels = torch.randint(0, arch.num_classes, (count,), generator=generator)
    data = from_tensors(images, labels, num_classes=arch.num_classes, test_images=images[:batch_size],
                        test_labels=labels[:batch_size], val_fraction=0.02)  # fmt: skip
    recipe = Recipe("bench", 2, batch_size=batch_size, optimizer="sgd", lr=0.01, momentum=0.9, weight_decay=5e-4,
                    schedule="constant")  # fmt: skip
    result = fit(arch, data, recipe, device=str(device), compile=compiled, progress=False)
    return result.history[-1]["images_per_second"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="J'", help="a model of Tables 1-2 (default J')")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--device", default="cuda", help="cuda (default); cpu only for a smoke run")
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile rows")
    parser.add_argument("--no-fit", action="store_true", help="skip the budgetnet.fit rows")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    args = parser.parse_args()
    device = torch.device(args.device)
    arch = MODELS[args.model]
    report = complexity(arch)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    peak = bf16_peak(name)
    flops_per_image = 3 * report.conv_flops
    flops_with_fc = 3 * 2 * report.total_macs
    print(f"device: {name}; torch {torch.__version__}; bf16 dense peak "
          f"{'unknown' if peak is None else f'{peak / 1e12:.0f} TFLOP/s'}")  # fmt: skip
    print(f"model {args.model}: {arch}; Eqn. (1) {report.conv_macs:,} MACs/image; fc {report.fc_macs:,} MACs/image; "
          f"batch {args.batch_size}, {args.steps} timed steps after {args.warmup}")  # fmt: skip
    runs = [("loop", False), ("loop", True), ("fit", False), ("fit", True)]
    runs = [(path, compiled) for path, compiled in runs if not (compiled and args.no_compile)]
    runs = [(path, compiled) for path, compiled in runs if not (path == "fit" and args.no_fit)]
    results = []
    for path, compiled in runs:
        function = train_loop if path == "loop" else fit_run
        speed = function(arch, device, args.batch_size, args.steps, args.warmup, compiled)
        row = {
            "device": name,
            "path": path,
            "compile": compiled,
            "images_per_second": speed,
            "seconds_per_128": 128 / speed,
            "mfu_conv": None if peak is None else speed * flops_per_image / peak,
            "mfu_conv_fc": None if peak is None else speed * flops_with_fc / peak,
            "vs_paper": speed / PAPER_IMAGES_PER_SECOND,
        }
        results.append(row)
        mfu = "n/a" if peak is None else f"{row['mfu_conv']:.1%} (with fc {row['mfu_conv_fc']:.1%})"
        print(f"{path:4} compile={str(compiled):5} {speed:10,.0f} images/s  {row['seconds_per_128']:.3f} s per 128  "
              f"MFU {mfu}  {row['vs_paper']:.1f}x the paper's Titan", flush=True)  # fmt: skip
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"model": args.model, "batch_size": args.batch_size, "steps": args.steps, "results": results},
                      handle, indent=2)  # fmt: skip


if __name__ == "__main__":
    main()
