"""List the equal-cost variants of an architecture: every network the paper's
layer-replacement rules (Sec. 4) reach from SPEC within --steps rewrites whose Eqn. (1) cost
stays within --tolerance of the budget (default: SPEC's own cost). Each row shows the zoo
name (or v<i>), notation, depth d, conv MACs, the cost ratio to SPEC, and the rules on a
shortest path from SPEC.

rules:
  depth_filter   Eqns. 3-5: an s x s conv -> a cascade of smaller filters (3 -> 2+2, 5 -> 3+3, 5 -> 2x4)
  depth_width    Eqns. 6-8: k convs -> 2k or 3k narrower convs, the width solved from Eqn. (1)
  width_filter   Eqns. 9-10: k convs -> k convs of another filter size, the width solved
  add_pool       Eqn. 11: a p/p pool before the last convs of a stage, the first moved conv p^2 wider
  delay_pool     Sec. 4.6: a pool's stride moves to the conv after it
block rules (residual blocks, see docs/rewrites.md):
  blocks_width       a stage's k blocks -> k/2 or 2k blocks, the stage width solved
  bottleneck_blocks  a stage's k blocks -> k/2 or 2k blocks, the bottleneck width solved
  cardinality_width  the 3x3 of a bottleneck in C groups, the width C*d solved (ResNeXt Table 2)
  block_filter       a block's 3x3 -> two 2x2 or a 5x5, the bottleneck width solved
  block_stride       a downsampling block's stride moves to another conv (ResNet v1 <-> v1.5)
  stage_pool         a pool before a block gives its stride to the block, or the reverse
inverted-residual rules (MBConv stages: MobileNetV2/V3, EfficientNet; see docs/rewrites.md):
  mbconv_filter      a stage's depthwise 3x3 <-> 5x5, the hidden (expansion) widths solved
  mbconv_blocks      a stage's k blocks -> k/2 or 2k blocks, the hidden widths solved

A notation longer than 120 characters (a ResNet) is shown as the layers each rewrite wrote
("... stage 2: <layers>"), and the path then names each rewrite with its stage and parameters.

examples:
  budgetnet variants A
  budgetnet variants A --steps 3 --tolerance 0.08 --max-depth 11 --plot lineage.png
  budgetnet variants A --steps 6 --max-variants 2000 --time-limit 60
  budgetnet variants resnet50 --steps 2 --limit 30
  budgetnet variants efficientnet_b0 --steps 2 --limit 30
  budgetnet variants B --rules delay_pool --steps 1 --json
  budgetnet variants "(3,32) 2/2 (3,64)x2 gap" --input 3x32x32 --classes 10 --budget 0.98x --tolerance 0.01

The rewrites keep Eqn. (1) (nearly) equal, and only variants inside the budget are
rewritten further, so a --budget far from SPEC's cost (0.9x) finds none; use `budgetnet
search --space small` (or `stage`) to search at another cost.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

from budgetnet.cli.common import SPEC_HELP, load_arch, parse_shape, print_json
from budgetnet.cost.complexity import format_count
from budgetnet.rewrites.explore import DEFAULT_MAX_VARIANTS, MAX_STEPS
from budgetnet.tables import text_table

NAME = "variants"
HELP = "list the equal-cost variants the layer-replacement rules reach from an architecture"


def _png_path(text: str) -> Path:
    if not text.lower().endswith(".png"):
        raise argparse.ArgumentTypeError(f"plot path {text!r}: expected a file name ending in .png")
    return Path(text)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 < value < math.inf:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a number of seconds > 0")
    return value


def _count(minimum: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < minimum:
            raise argparse.ArgumentTypeError(f"{text!r}: expected an integer >= {minimum}")
        return value

    return parse


def add_arguments(parser) -> None:
    from budgetnet.rewrites import RULES

    parser.add_argument("spec", metavar="SPEC", help=SPEC_HELP + " (the baseline)")
    parser.add_argument(
        "--budget",
        metavar="COST",
        help="target Eqn. (1) cost: a ratio to SPEC such as 0.9x, or MACs such as 850M (default: SPEC's cost)",
    )
    parser.add_argument(
        "--tolerance",
        type=float,
        default=0.05,
        metavar="T",
        help="keep variants whose cost is within T of the budget, either side (default 0.05 = 5%%)",
    )
    parser.add_argument(
        "--steps", type=int, default=2, metavar="N", help=f"most rewrites from SPEC, 0 to {MAX_STEPS} (default 2)"
    )
    parser.add_argument(
        "--rules",
        nargs="+",
        choices=[rule.name for rule in RULES],
        metavar="RULE",
        help="rules to apply (default: all of them, see 'rules:' above)",
    )
    parser.add_argument("--max-depth", type=_count(1), metavar="N", help="drop variants with more than N conv layers")
    parser.add_argument("--max-variants", "--limit", dest="max_variants", type=_count(1), default=DEFAULT_MAX_VARIANTS,
                        metavar="N", help=f"keep at most N variants, each step an equal share of those left (default {DEFAULT_MAX_VARIANTS})")  # fmt: skip
    parser.add_argument("--time-limit", type=_seconds, metavar="SECONDS",
                        help="stop after SECONDS (default: no time limit); a summary says which limit stopped it")  # fmt: skip
    parser.add_argument(
        "--input", type=parse_shape, metavar="CxHxW", help="input shape (default: the SPEC's, 3x224x224 for notation)"
    )
    parser.add_argument("--classes", type=int, metavar="N", help="classifier width (default: the SPEC's, 1000)")
    parser.add_argument("--json", action="store_true", help="print the variants and rewrites as JSON")
    parser.add_argument(
        "--plot", type=_png_path, metavar="PATH.png", help="save the lineage graph (like the paper's Figs. 1-3)"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar (it shows only on a terminal)")


#: Said when no rule finds a site in the baseline (a Res2Net, a ConvNeXt): where the rules apply.
NO_SITE = (
    "no rule has a site in this architecture: the paper's rules rewrite runs of stride-1 plain convs, the "
    "block rules ResNet-style residual blocks whose bodies are all convs, the MBConv rules inverted-residual "
    "stages; gates or norms inside bottlenecks (RegNetY, ConvNeXt), non-square filters and the concatenations "
    "the importer carries (Res2Net, RexNet, DPN, DLA) are left alone (docs/rewrites.md)"
)


def run(args) -> int:
    from budgetnet.checks import check_int
    from budgetnet.errors import BudgetError
    from budgetnet.graph.zoo import PAPER_MODELS, ZOO
    from budgetnet.rewrites.explore import records, stop_reason, summary, to_dict, variants

    check_int(BudgetError, "--steps", args.steps, 0, maximum=MAX_STEPS)  # before the SPEC is read
    baseline = load_arch(args.spec, args.input, args.classes)
    graph = variants(
        baseline,
        budget=args.budget,
        tolerance=args.tolerance,
        max_steps=args.steps,
        rules=args.rules,
        max_depth=args.max_depth,
        max_variants=args.max_variants,
        progress=not args.no_progress and sys.stderr.isatty(),
        names={**PAPER_MODELS, **ZOO},
        time_limit=args.time_limit,
    )
    if graph.graph["checked"] == 0 and args.steps > 0:
        print(f"budgetnet variants: {NO_SITE}", file=sys.stderr)
    stopped = stop_reason(graph)
    if stopped:
        flag = "--time-limit" if graph.graph["stopped_by"] == "time_limit" else "--max-variants"
        print(f"budgetnet variants: {stopped}; raise {flag} or lower --steps for the whole walk", file=sys.stderr)
    if args.plot is not None:
        from budgetnet.plots import lineage

        try:
            args.plot.parent.mkdir(parents=True, exist_ok=True)
            lineage(graph, args.plot)
        except OSError as error:
            print(f"budgetnet variants: error: cannot write the plot {str(args.plot)!r}: {error}", file=sys.stderr)
            return 2
    if args.json:
        data = to_dict(graph)
        data["summary"] = summary(graph)
        if args.plot is not None:
            data["plot"] = str(args.plot)
        print_json(data)
        return 0
    print(f"{baseline}   (input {'x'.join(map(str, baseline.input_shape))}, {baseline.num_classes} classes)\n")
    print(format_table(records(graph)))
    print()
    print(summary(graph))
    if args.plot is not None:
        print(f"lineage plot: {args.plot}")
    return 0


def format_table(rows: list[dict]) -> str:
    """The terminal table of :func:`budgetnet.rewrites.explore.records` rows.

    Example:
        >>> print(format_table([{"label": "A", "notation": "(3,8)", "depth": 1, "macs": 1152,
        ...                      "ratio": 1.0, "steps": 0, "path": []}]))
        name  notation  d  MACs   ratio  steps  path
        ----  --------  -  ----  ------  -----  ----------
        A     (3,8)     1  1.2K  1.000x      0  (baseline)
    """
    header = ("name", "notation", "d", "MACs", "ratio", "steps", "path")
    long = any(row.get("brief", row["notation"]) != row["notation"] for row in rows)
    lines = [
        (
            row["label"],
            row.get("brief", row["notation"]),
            str(row["depth"]),
            format_count(row["macs"]),
            f"{row['ratio']:.3f}x",
            str(row["steps"]),
            " > ".join(step["site"] for step in row["rewrites"]) if long and row["path"] else " > ".join(row["path"]) or "(baseline)",
        )
        for row in rows
    ]
    return text_table(header, lines, right={2, 3, 4, 5})
