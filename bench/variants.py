"""Benchmark: ``budgetnet.variants`` from the paper's baseline A (224x224x3, 1000 classes).

For each configuration (steps, tolerance, max depth) the script runs the breadth-first walk
over all five rewrite rules and reports

* how many equal-cost variants it keeps, and which models of Tables 1-2 are among them;
* how many sites it checked (each one a rewrite: an Arch built, its Eqn. (1) cost counted,
  widths solved where the rule needs one), how many a rule refused, and how many landed off
  the budget or too deep;
* the wall time (median of ``--repeats`` runs), the sites checked per second and the
  variants kept per second.

With ``--speed`` it instead times the walk on deeper nets (model A, a 100-conv plain chain,
ResNet-50 and ResNet-152, EfficientNet-B0 and MobileNetV3-Large from the zoo; ``--models``
keeps some of them) and reports sites checked per second; it uses only
the public API, so the same script measures an older checkout side by side
(``PYTHONPATH=/path/to/old/checkout python bench/variants.py --speed``). Each row runs in a
fresh Python process: its first run starts with empty caches (budgetnet keeps inferred
blocks, layer JSON and span proposals between calls), and is reported on its own besides
the median of all runs.

Usage:
    python bench/variants.py [--config 2:0.05 --config 3:0.05 ...] [--repeats 3] [--markdown PATH]
    python bench/variants.py --speed [--models resnet50,efficientnet_b0] [--repeats 3] [--markdown PATH]

A config is ``STEPS:TOLERANCE`` or ``STEPS:TOLERANCE:MAX_DEPTH``. The defaults are the
issue's 2 and 3 steps at 5%, 3 steps at 8% (I costs 0.93 of A) and 4 steps at 8% with
depth <= 11 (J' is four rewrites from A; 11 is the deepest model of the tables).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import budgetnet
from budgetnet.rewrites.explore import summary
from budgetnet.cost.latency import cpu_model
from search_spaces.paper import MODELS

DEFAULT_CONFIGS = ("2:0.05", "3:0.05", "3:0.08", "4:0.08:11")


def parse_config(text: str) -> tuple[int, float, int | None]:
    parts = text.split(":")
    try:
        steps, tolerance = int(parts[0]), float(parts[1])
        depth = int(parts[2]) if len(parts) > 2 else None
    except (ValueError, IndexError):
        raise argparse.ArgumentTypeError(f"config {text!r}: expected STEPS:TOLERANCE[:MAX_DEPTH], e.g. 3:0.05") from None
    if len(parts) > 3 or steps < 0 or tolerance < 0 or (depth is not None and depth < 1):
        raise argparse.ArgumentTypeError(f"config {text!r}: expected STEPS >= 0, TOLERANCE >= 0, MAX_DEPTH >= 1")
    return steps, tolerance, depth


def run(steps: int, tolerance: float, depth: int | None, repeats: int) -> dict:
    seconds, graph = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        graph = budgetnet.variants(MODELS["A"], tolerance=tolerance, max_steps=steps, max_depth=depth, names=MODELS)
        seconds.append(time.perf_counter() - start)
    info = graph.graph
    found = {data["name"] for _, data in graph.nodes(data=True) if data["name"]} - {"A"}
    median = statistics.median(seconds)
    return {
        "steps": steps,
        "tolerance": tolerance,
        "max_depth": depth,
        "variants": graph.number_of_nodes() - 1,
        "checked": info["checked"],
        "refused": info["refused"],
        "rejected": info["rejected"],
        "seconds": median,
        "checks_per_s": info["checked"] / median,
        "variants_per_s": (graph.number_of_nodes() - 1) / median,
        "found": [name for name in MODELS if name in found],
        "missing": [name for name in MODELS if name not in found and name != "A"],
        "summary": summary(graph),
    }


#: (label, model, steps) of the --speed rows; ``chain100`` is 50 3x3 convs of 64, a 2/2 pool
#: and 50 3x3 convs of 128 on 3x64x64.
SPEED_ROWS = (("A", "A", 2), ("chain100", "chain100", 1), ("resnet50", "resnet50", 1),
              ("resnet50", "resnet50", 2), ("resnet152", "resnet152", 1),
              ("efficientnet_b0", "efficientnet_b0", 1), ("efficientnet_b0", "efficientnet_b0", 2),
              ("mobilenet_v3_large", "mobilenet_v3_large", 2))  # fmt: skip


def speed_model(name: str):
    if name == "chain100":
        return budgetnet.parse(" ".join(["(3,64)"] * 50 + ["2/2"] + ["(3,128)"] * 50), input_shape=(3, 64, 64))
    if name in MODELS:
        return MODELS[name]
    from budgetnet.graph.zoo import ZOO

    return ZOO[name]


def speed(label: str, name: str, steps: int, repeats: int) -> dict:
    arch = speed_model(name)
    seconds, graph, error = [], None, ""
    for _ in range(repeats):
        start = time.perf_counter()
        try:
            graph = budgetnet.variants(arch, tolerance=0.05, max_steps=steps)
        except Exception as failure:  # the older checkout may fail on residual nets
            error = f"{type(failure).__name__}: {failure}"[:80]
            break
        seconds.append(time.perf_counter() - start)
    if error:
        return {"model": label, "steps": steps, "error": error}
    median = statistics.median(seconds)
    return {
        "model": label,
        "steps": steps,
        "checked": graph.graph["checked"],
        "variants": graph.number_of_nodes() - 1,
        "first": seconds[0],
        "seconds": median,
        "sites_per_s": graph.graph["checked"] / median,
        "error": "",
    }


def speed_in_fresh_process(label: str, name: str, steps: int, repeats: int) -> dict:
    """:func:`speed` in a new interpreter (same environment), so its first run is cold."""
    command = [sys.executable, __file__, "--speed-row", f"{label}:{name}:{steps}", "--repeats", str(repeats)]
    out = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.splitlines()[-1])


def speed_markdown(rows: list[dict]) -> str:
    lines = [
        "| model | steps | sites checked | variants | first run s | median s | sites/s (median) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in rows:
        if row["error"]:
            lines.append(f"| {row['model']} | {row['steps']} | - | - | - | - | failed: {row['error']} |")
        else:
            lines.append(
                f"| {row['model']} | {row['steps']} | {row['checked']:,} | {row['variants']:,} | "
                f"{row['first']:.2f} | {row['seconds']:.2f} | {row['sites_per_s']:,.0f} |"
            )
    return "\n".join(lines)


def markdown(rows: list[dict]) -> str:
    lines = [
        "| steps | tolerance | max depth | variants | sites checked | refused | off budget / too deep "
        "| seconds | sites/s | variants/s | paper models missing |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for row in rows:
        lines.append(
            f"| {row['steps']} | {row['tolerance']:.0%} | {row['max_depth'] or '-'} | {row['variants']:,} | "
            f"{row['checked']:,} | {row['refused']:,} | {row['rejected']:,} | {row['seconds']:.2f} | "
            f"{row['checks_per_s']:,.0f} | {row['variants_per_s']:,.0f} | {', '.join(row['missing']) or 'none'} |"
        )
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--config", type=parse_config, action="append", metavar="STEPS:TOL[:DEPTH]",
        help=f"a configuration to run (repeatable; default: {' '.join(DEFAULT_CONFIGS)})",
    )  # fmt: skip
    parser.add_argument("--repeats", type=int, default=3, help="runs per configuration; the median time is kept (default 3)")
    parser.add_argument("--markdown", type=Path, metavar="PATH", help="also write the table as markdown to PATH")
    parser.add_argument("--speed", action="store_true", help="time the walk on A, a 100-conv chain, ResNet-50 and -152 (at 5%%)")
    parser.add_argument("--speed-row", metavar="LABEL:MODEL:STEPS", help=argparse.SUPPRESS)  # one --speed row, as JSON
    parser.add_argument(
        "--models", metavar="NAMES", help="with --speed: only the rows of these models (comma-separated, e.g. resnet50,efficientnet_b0)"
    )  # fmt: skip
    args = parser.parse_args(argv)
    if args.speed_row:
        label, name, steps = args.speed_row.split(":")
        print(json.dumps(speed(label, name, int(steps), max(1, args.repeats))))
        return 0
    configs = args.config or [parse_config(text) for text in DEFAULT_CONFIGS]
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"CPU: {os.cpu_count()}-core {cpu_model()}; Python {platform.python_version()}; load {load:.1f}")
    if args.speed:
        wanted = set(args.models.split(",")) if args.models else None
        rows = [row for row in SPEED_ROWS if wanted is None or row[1] in wanted]
        table = speed_markdown([speed_in_fresh_process(*row, max(1, args.repeats)) for row in rows])
        end_load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
        print(f"budgetnet from {Path(budgetnet.__file__).parent}\n\n{table}")
        print(f"\n1-minute load average {load:.1f} at the start, {end_load:.1f} at the end")
        if args.markdown:
            args.markdown.write_text(table + "\n")
        return 0
    rows = []
    for steps, tolerance, depth in configs:
        row = run(steps, tolerance, depth, max(1, args.repeats))
        rows.append(row)
        print(f"\nsteps={steps} tolerance={tolerance:g} max_depth={depth}: {row['summary']}")
        print(f"  paper models found: {' '.join(row['found']) or 'none'}; missing: {' '.join(row['missing']) or 'none'}")
    table = markdown(rows)
    print("\n" + table)
    end_load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"\n1-minute load average {load:.1f} at the start, {end_load:.1f} at the end")
    if args.markdown:
        args.markdown.write_text(table + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
