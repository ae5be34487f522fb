"""Benchmark: the analytic Eqn. (1) count against fvcore's traced count, on the paper's 14 models
and the residual zoo (ResNet-50, ResNet-152, MobileNetV2), and the import time of torchvision's
ResNet-152.

For every model (224x224x3, 1000 classes) the script

* checks that budgetnet's Eqn. (1) and fvcore's ``FlopCountAnalysis`` agree exactly, in total
  and conv by conv (fvcore counts one multiply-add as one flop, like Eqn. (1));
* times the analytic count two ways: ``complexity(parse(notation))`` (parse, shape inference
  and the full report on a fresh Arch) and ``conv_macs(arch)`` on an existing Arch, each the
  median of many calls;
* times fvcore: ``FlopCountAnalysis(model, x).by_operator()`` (a trace of the built torch
  module and the count), the median of a few calls after one warm-up; building the module
  is not timed.

It prints a table and the speed-ups (fvcore time over analytic time, per model and over the
whole sweep) and writes the same table as markdown. The goals: an analytic count at least
1000x faster than tracing from text, 10,000x on an existing Arch. Last, it times
``Arch.from_module(torchvision.models.resnet152())`` (fx trace, import, one shape-checking
forward pass at 224 px on the meta device, and the numeric check that bench/import_check.py
times apart; building the torchvision module is not timed).

Usage:
    python bench/complexity.py [--models all|paper|residual] [--repeats 200] [--fvcore-repeats 5]
                               [--markdown PATH]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
import warnings
from pathlib import Path

import torch
from tqdm import tqdm

import budgetnet
from budgetnet.cost.latency import cpu_model
from budgetnet.graph.zoo import ZOO
from search_spaces.paper import MODELS

GOAL = 1000.0
RESIDUAL = ("resnet50", "resnet152", "mobilenet_v2")


def median_seconds(function, repeats: int) -> float:
    """The median wall time of ``repeats`` calls of ``function``."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def fvcore_counts(model: torch.nn.Module, image: torch.Tensor) -> tuple[int, dict[str, int]]:
    """fvcore's conv total and per-module counts (one trace of ``model``)."""
    from fvcore.nn import FlopCountAnalysis

    analysis = FlopCountAnalysis(model, image)
    analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    return analysis.by_operator()["conv"], analysis.by_module()


def measure(name: str, repeats: int, fvcore_repeats: int) -> dict:
    arch = MODELS[name] if name in MODELS else ZOO[name]
    text = str(arch)
    fresh = budgetnet.complexity(budgetnet.parse(text))
    analytic = budgetnet.conv_macs(arch)
    model = budgetnet.build(arch).eval()
    image = torch.zeros(1, *arch.input_shape)
    with torch.no_grad():
        traced, by_module = fvcore_counts(model, image)  # also the warm-up
        conv_modules = [name for name, m in model.named_modules() if isinstance(m, torch.nn.Conv2d)]
        per_layer = [row.macs for row in fresh.rows if row.kind == "conv"]
        assert fresh.conv_macs == analytic == traced, (name, fresh.conv_macs, analytic, traced)
        assert per_layer == [by_module[module] for module in conv_modules], name
        fvcore_time = median_seconds(lambda: fvcore_counts(model, image), fvcore_repeats)
    del model
    return {
        "model": name,
        "depth": arch.depth,
        "conv_macs": analytic,
        "fresh": median_seconds(lambda: budgetnet.complexity(budgetnet.parse(text)), repeats),
        "existing": median_seconds(lambda: budgetnet.conv_macs(arch), repeats),
        "fvcore": fvcore_time,
    }


def import_time(repeats: int = 3) -> str:
    """The median time of ``Arch.from_module`` on torchvision's ResNet-152 at 224 px."""
    from budgetnet.pytorch.importer import import_torchvision

    model = import_torchvision().models.resnet152().eval()
    seconds = median_seconds(lambda: budgetnet.Arch.from_module(model, (3, 224, 224)), repeats)
    arch = budgetnet.Arch.from_module(model, (3, 224, 224))
    assert arch == ZOO["resnet152_v1.5"], "the import differs from the zoo's notation of the same net"
    return (
        f"Arch.from_module(torchvision resnet152, 224 px): {seconds:.2f} s (median of {repeats}; fx trace, "
        f"import of {len(arch.convs)} convs, the shape check and the numeric check)"
    )


def table(rows: list[dict], markdown: bool) -> str:
    header = (
        "model",
        "depth",
        "Eqn. (1) MACs (= fvcore)",
        "complexity(parse()) µs",
        "conv_macs(arch) µs",
        "fvcore ms",
        "speed-up, fresh",
        "speed-up, existing",
    )
    total = {
        "model": f"all {len(rows)}",
        "depth": "",
        "conv_macs": "",
        **{key: sum(row[key] for row in rows) for key in ("fresh", "existing", "fvcore")},
    }
    lines = []
    for row in [*rows, total]:
        lines.append(
            (
                str(row["model"]),
                str(row["depth"]),
                f"{row['conv_macs']:,}" if row["conv_macs"] != "" else "",
                f"{row['fresh'] * 1e6:,.0f}",
                f"{row['existing'] * 1e6:,.1f}",
                f"{row['fvcore'] * 1e3:,.0f}",
                f"{row['fvcore'] / row['fresh']:,.0f}x",
                f"{row['fvcore'] / row['existing']:,.0f}x",
            )
        )
    if markdown:
        out = ["| " + " | ".join(header) + " |", "| --- |" + " ---: |" * (len(header) - 1)]
        out += ["| " + " | ".join(line) + " |" for line in lines]
        return "\n".join(out)
    widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(header)]

    def render(cells):
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))

    return "\n".join([render(header), render(["-" * w for w in widths]), *map(render, lines)])


def verdict(rows: list[dict]) -> str:
    fvcore = sum(row["fvcore"] for row in rows)
    parts = []
    for key, label in (("fresh", "a fresh Arch, complexity(parse())"), ("existing", "an existing Arch, conv_macs")):
        overall = fvcore / sum(row[key] for row in rows)
        smallest = min(rows, key=lambda row: row["fvcore"] / row[key])
        goal = GOAL if key == "fresh" else 10 * GOAL
        missed = sum(row["fvcore"] / row[key] < goal for row in rows)
        met = f"met for all {len(rows)} models" if not missed else f"missed for {missed} of {len(rows)} models"
        parts.append(
            f"on {label}: {overall:,.0f}x over the sweep, at least {smallest['fvcore'] / smallest[key]:,.0f}x "
            f"(model {smallest['model']}), so the {goal:,.0f}x goal is {met}"
        )
    return "Speed-up of the analytic count over fvcore " + "; ".join(parts) + "."


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=200, help="timed calls of each analytic count (default 200)")
    parser.add_argument("--fvcore-repeats", type=int, default=5, help="timed fvcore traces per model (default 5)")
    parser.add_argument(
        "--markdown",
        type=Path,
        default=Path("complexity_bench.md"),
        help="where to write the markdown table (default: complexity_bench.md in the current directory)",
    )
    parser.add_argument(
        "--models",
        choices=("all", "paper", "residual"),
        default="all",
        help="the paper's 14 models, the residual zoo (ResNet-50/152, MobileNetV2), or both (default all)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import fvcore.nn  # noqa: F401  (its import warns about torch.jit)

    machine = (
        f"CPU: {os.cpu_count()}-core {cpu_model()}; torch {torch.__version__} "
        f"({torch.get_num_threads()} threads); Python {platform.python_version()}"
    )
    load = os.getloadavg()[0]
    names = [*(MODELS if args.models != "residual" else ()), *(RESIDUAL if args.models != "paper" else ())]
    rows = []
    progress = tqdm(names, desc="models", disable=args.no_progress or not sys.stderr.isatty())
    for name in progress:
        progress.set_postfix_str(name)
        rows.append(measure(name, args.repeats, args.fvcore_repeats))
    summary = verdict(rows)
    machine += f"; 1-minute load average {load:.1f} at the start, {os.getloadavg()[0]:.1f} at the end"
    print(machine)
    print(f"analytic: median of {args.repeats} calls; fvcore: median of {args.fvcore_repeats} traces after one warm-up\n")
    agree = f"All {len(rows)} counts agree exactly with fvcore, in total and conv by conv."
    imported = import_time()
    print(table(rows, markdown=False))
    print(f"\n{agree}")
    print(summary)
    print(imported)
    args.markdown.write_text(f"{machine}\n\n{table(rows, markdown=True)}\n\n{agree} {summary}\n\n{imported}\n")
    print(f"\nmarkdown table written to {args.markdown}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
