"""Print the per-layer cost table of an architecture: output size, Eqn. (1) multiply-adds
(MACs), parameters and activations per layer, and the totals. With --baseline, the ratio of
its Eqn. (1) cost to the baseline's (the paper's "comp." column). Then the memory estimate
(float32): parameters, activations per image, and training at --batch-size with AdamW's
state, against --max-memory or this machine's memory (what `budgetnet train` and `budgetnet
search` refuse when it is over).

SPEC is a model name (the residual zoo of budgetnet.graph.zoo, or the paper's A .. J'), a notation
string, a JSON file, or FILE.py:NAME: a function or class in your own Python file that returns
a torch.nn.Module (imported with Arch.from_module at --input, default 3x224x224). The file is
executed to import it, as `python FILE.py` would run it: name only files you trust.

examples:
  budgetnet show "J'" --baseline A
  budgetnet show resnet50_v1.5 --baseline resnet50
  budgetnet show "(3,32) 2/2 (2,64)x2 gap" --input 1x28x28 --classes 10 --json
  budgetnet show my_model.py:build --input 3x32x32
  budgetnet show best.json
"""

from __future__ import annotations

from budgetnet.cli.common import SPEC_HELP, load_arch, parse_shape, print_json
from budgetnet.cost.complexity import complexity
from budgetnet.cost.memory import device_memory, estimate_memory, format_bytes, parse_bytes

NAME = "show"
HELP = "print an architecture's per-layer Eqn. (1) cost table"


def add_arguments(parser) -> None:
    parser.add_argument("spec", metavar="SPEC", help=SPEC_HELP)
    parser.add_argument("--baseline", metavar="SPEC", help="report the cost ratio to this architecture")
    parser.add_argument(
        "--input", type=parse_shape, metavar="CxHxW", help="input shape (default: the SPEC's; 3x224x224 for notation and FILE.py:NAME)"
    )
    parser.add_argument("--classes", type=int, metavar="N", help="classifier width (default: the SPEC's, 1000)")
    parser.add_argument("--batch-size", type=int, default=128, metavar="N",
                        help="batch size of the training memory estimate (default 128, the recipes')")  # fmt: skip
    parser.add_argument("--max-memory", metavar="SIZE",
                        help="compare the estimate with SIZE, e.g. 8G (default: this machine's memory)")  # fmt: skip
    parser.add_argument("--json", action="store_true", help="print the report as JSON instead of a table")


def run(args) -> int:
    limit, where = (parse_bytes(args.max_memory), "--max-memory") if args.max_memory else device_memory("cpu")
    arch = load_arch(args.spec, args.input, args.classes)
    baseline = None if args.baseline is None else load_arch(args.baseline, args.input, args.classes)
    report = complexity(arch, baseline=baseline)
    memory = estimate_memory(arch, args.batch_size)
    fits = memory.training_bytes <= limit
    if args.json:
        data = report.to_dict()
        data["arch"] = arch.to_dict()
        data["fingerprint"] = arch.fingerprint()
        data["memory"] = {**memory.to_dict(), "limit_bytes": limit, "fits": fits}
        print_json(data)
    else:
        print(f"{arch}   (input {'x'.join(map(str, arch.input_shape))}, {arch.num_classes} classes)\n")
        print(report.table())
        print("\n".join(memory.lines()))
        verdict = "training fits" if fits else "training does NOT fit; budgetnet train and search refuse it"
        print(f"memory, limit:       {format_bytes(limit)} ({where}): {verdict}")
    return 0
