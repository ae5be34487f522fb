"""Print the per-layer cost table of an architecture: output size, Eqn. (1) multiply-adds
(MACs), parameters and activations per layer, and the totals. With --baseline, the ratio of
its Eqn. (1) cost to the baseline's (the paper's "comp." column).

SPEC is a model name (the residual zoo of budgetnet.zoo, or the paper's A .. J'), a notation
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
from budgetnet.complexity import complexity

NAME = "show"
HELP = "print an architecture's per-layer Eqn. (1) cost table"


def add_arguments(parser) -> None:
    parser.add_argument("spec", metavar="SPEC", help=SPEC_HELP)
    parser.add_argument("--baseline", metavar="SPEC", help="report the cost ratio to this architecture")
    parser.add_argument(
        "--input", type=parse_shape, metavar="CxHxW", help="input shape (default: the SPEC's; 3x224x224 for notation and FILE.py:NAME)"
    )
    parser.add_argument("--classes", type=int, metavar="N", help="classifier width (default: the SPEC's, 1000)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON instead of a table")


def run(args) -> int:
    arch = load_arch(args.spec, args.input, args.classes)
    baseline = None if args.baseline is None else load_arch(args.baseline, args.input, args.classes)
    report = complexity(arch, baseline=baseline)
    if args.json:
        data = report.to_dict()
        data["arch"] = arch.to_dict()
        data["fingerprint"] = arch.fingerprint()
        print_json(data)
    else:
        print(f"{arch}   (input {'x'.join(map(str, arch.input_shape))}, {arch.num_classes} classes)\n")
        print(report.table())
    return 0
