"""Does the search's short training rank candidates as a longer one does? (proxy fidelity)

Samples N distinct candidates of SPACE inside its budget (the baseline first), trains each
with the search's short recipe (--short-epochs, scored on the validation split, as a search
scores a trial) and twice with a longer one (--long-epochs, two seeds, scored on the test
split), and prints Kendall's tau and Spearman's rho between the short and the long ranking
with bootstrap 95% intervals, next to the noise ceiling: the same statistics between the
two long runs. A tau near 0 means the proxy does not rank candidates at all; near the
ceiling, it ranks them as well as the long training agrees with itself.

examples:
  budgetnet proxy small --archs 6 --short-epochs 2 --long-epochs 6 --plot proxy.png
  budgetnet proxy residual --limit 600 --archs 8 --json
"""

from __future__ import annotations

from budgetnet.cli.common import print_json
from budgetnet.cli.confirm import whole

NAME = "proxy"
HELP = "how well the search's short training ranks candidates (Kendall tau, Spearman, bootstrap CIs)"


def add_arguments(parser) -> None:
    parser.add_argument("space", metavar="SPACE", help="search space: small, residual, stage, replacement, residual224")
    parser.add_argument(
        "--baseline", metavar="SPEC",
        help="the reference model that sets the budget (default: the space's; for the small space on digits, the "
        "main job's tight (3,4) 2/2 (5,8) 2/2 (3,16)x3 spp(2,1), as budgetnet search)",
    )  # fmt: skip
    parser.add_argument("--data", default="digits", metavar="SPEC", help="digits (default), idx:DIR, cifar:DIR, folder:DIR")
    parser.add_argument("--limit", type=int, metavar="N", help="use at most N training images")
    parser.add_argument("--archs", default="12", metavar="N", help="candidates, the baseline included (default 12)")
    parser.add_argument("--short-epochs", default="3", metavar="E", help="epochs of the short run (default 3)")
    parser.add_argument("--long-epochs", default="15", metavar="E", help="epochs of the long runs (default 15)")
    parser.add_argument("--seed", type=int, default=0, help="seeds the sampling and the training (default 0)")
    parser.add_argument("--device", default="auto", help="auto (default), cpu, cuda or cuda:N")
    parser.add_argument("--plot", metavar="PNG", help="save the scatter plot (short vs long accuracy) to PNG")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")


def run(args) -> int:
    import optuna

    from budgetnet.cli.common import load_arch
    from budgetnet.cli.search import MAIN_JOB_BASELINE
    from budgetnet.plots import proxy_scatter
    from budgetnet.studies.proxy import proxy_fidelity
    from budgetnet.studies.settings import resolve_space
    from search_spaces.base import get_space
    from budgetnet.tables import text_table
    from budgetnet.training.data import load_data

    archs = whole("--archs", args.archs, 4, "candidates to rank")
    short = whole("--short-epochs", args.short_epochs, 1, "epochs")
    long = whole("--long-epochs", args.long_epochs, 1, "epochs")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    data = load_data(args.data, limit=args.limit)
    spec = args.baseline
    if spec is None and args.space == "small" and args.data == "digits":
        spec = MAIN_JOB_BASELINE
    space = args.space
    if spec is not None:
        baseline = load_arch(spec, data.input_shape, data.num_classes)
        space = get_space(args.space, baseline=baseline, input_shape=data.input_shape, num_classes=data.num_classes)
    space = resolve_space(space, data)
    report = proxy_fidelity(space, data, archs=archs, short_epochs=short, long_epochs=long, seed=args.seed,
                            device=args.device, progress=not args.json)  # fmt: skip
    if args.plot:
        proxy_scatter(report, args.plot)
        report["plot"] = args.plot
    if args.json:
        print_json(report)
        return 0
    rows = [[str(i), f"{r['ratio']:.2f}x", f"{r['short']:.4f}", f"{r['long']:.4f}", f"{r['long_again']:.4f}",
             r["notation"]] for i, r in enumerate(report["candidates"])]  # fmt: skip
    print(text_table(["#", "ratio", f"short ({short} ep, val)", f"long ({long} ep, test)", "long, seed 2",
                      "architecture"], rows, right=range(5)))  # fmt: skip
    print()
    for title, key in (("short vs long", "short_vs_long"), ("noise ceiling (long vs long)", "noise_ceiling")):
        k, s = report[key]["kendall"], report[key]["spearman"]
        print(f"{title}: Kendall tau {k['value']:+.2f} (95% CI {k['low']:+.2f} to {k['high']:+.2f}), "
              f"Spearman {s['value']:+.2f} (95% CI {s['low']:+.2f} to {s['high']:+.2f})")  # fmt: skip
    print(f"{len(rows)} candidates on {data.name}, {report['seconds']:.0f} s; bootstrap over candidates, 1000 resamples")
    if args.plot:
        print(f"saved {args.plot}")
    return 0
