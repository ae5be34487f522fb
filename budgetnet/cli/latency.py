"""Measure an architecture's time on a device: the median of several timed runs after a
warm-up, per batch and per image, next to its Eqn. (1) cost. --mode train times a whole
training step (forward, loss, backward, SGD update). --table also times every distinct layer
configuration in isolation (cached as JSON per device, dtype and torch version in
$BUDGETNET_CACHE, default ~/.cache/budgetnet), prints the per-layer table, and the error of
its predicted total against the measured time.

examples:
  budgetnet latency A
  budgetnet latency "J'" --mode train --batch-size 4 --repeats 5 --table
  budgetnet latency "(3,32) 2/2 (2,64)x4 gap" --input 1x16x16 --classes 10 --device cuda --json
"""

from __future__ import annotations

from budgetnet.cli.common import (
    SPEC_HELP,
    add_norm_argument,
    add_threads_argument,
    load_arch,
    parse_shape,
    print_json,
)
from budgetnet.tables import text_table

NAME = "latency"
HELP = "measure an architecture's time per image on a device (and a per-layer table)"


def add_arguments(parser) -> None:
    parser.add_argument("spec", metavar="SPEC", help=SPEC_HELP)
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda, cuda:N or auto")
    parser.add_argument("--batch-size", type=int, default=1, metavar="N", help="images per timed run (default 1)")
    parser.add_argument("--mode", choices=("forward", "train"), default="forward",
                        help="forward: inference (default); train: forward, loss, backward and SGD step")  # fmt: skip
    parser.add_argument("--input", type=parse_shape, metavar="CxHxW",
                        help="input shape (default: the SPEC's, 3x224x224 for notation)")  # fmt: skip
    parser.add_argument("--classes", type=int, metavar="N", help="classifier width (default: the SPEC's, 1000)")
    parser.add_argument("--repeats", type=int, default=10, metavar="N", help="timed runs; the median is reported (10)")
    parser.add_argument("--warmup", type=int, default=3, metavar="N", help="untimed runs first (default 3)")
    parser.add_argument("--dtype", choices=("float32", "bfloat16"),
                        help="float32 or bfloat16 autocast (default: bfloat16 on CUDA, float32 on the CPU)")  # fmt: skip
    add_norm_argument(parser)
    add_threads_argument(parser)
    parser.add_argument("--table", action="store_true",
                        help="time each layer in isolation (cached) and report the prediction error")  # fmt: skip
    parser.add_argument("--cache-dir", metavar="DIR",
                        help="where latency tables are cached (default $BUDGETNET_CACHE or ~/.cache/budgetnet)")  # fmt: skip
    parser.add_argument("--json", action="store_true", help="print the result as JSON")


def run(args) -> int:
    from budgetnet.cost.complexity import conv_macs, format_count
    from budgetnet.cost.latency import LatencyTable, device_name, measure
    from budgetnet.pytorch.device import set_threads

    set_threads(args.threads)  # before the timings; device_name says how many
    arch = load_arch(args.spec, args.input, args.classes)
    macs = conv_macs(arch)
    comparison = None
    if args.table:
        table = LatencyTable(args.device, batch_size=args.batch_size, mode=args.mode, dtype=args.dtype,
                             cache_dir=args.cache_dir, repeats=args.repeats, warmup=args.warmup)  # fmt: skip
        result = table.compare(arch, args.norm)
        measured = result["measurement"]
        comparison = {
            "predicted_ms": result["predicted_ms"],
            "measured_ms": result["measured_ms"],
            "error": result["error"],
            "table": str(table.path) if table.path else None,
            "layers": result["prediction"].to_dict()["layers"],
        }
    else:
        measured = measure(arch, args.device, args.batch_size, args.mode, repeats=args.repeats, warmup=args.warmup,
                           dtype=args.dtype, norm=args.norm)  # fmt: skip
    if args.json:
        print_json({"arch": arch.to_dict(), "conv_macs": macs, "device_name": device_name(args.device),
                    "measurement": measured.to_dict(), "table": comparison})  # fmt: skip
        return 0
    print(f"{arch}   (input {'x'.join(map(str, arch.input_shape))}, {arch.num_classes} classes)")
    print(f"device {device_name(args.device)}, {measured.dtype}, {args.mode}, batch {measured.batch_size}")
    print(
        f"measured {measured.median_ms:.3f} ms per batch (median of {measured.repeats}), "
        f"{measured.ms_per_image:.3f} ms/image, {measured.images_per_second:,.1f} images/s"
    )
    print(f"Eqn. (1) {format_count(macs)} MACs per image")
    if comparison is not None:
        total = comparison["predicted_ms"]
        rows = [(row["name"], row["key"], f"{row['ms']:.3f}", f"{row['ms'] / total:.1%}") for row in comparison["layers"]]
        print("\n" + text_table(("layer", "configuration", "ms", "share"), rows, right={2, 3}))
        print(
            f"\npredicted {total:.3f} ms per batch, measured {measured.median_ms:.3f} ms: "
            f"error {comparison['error']:+.1%}   (table {comparison['table'] or 'in memory'})"
        )
    return 0
