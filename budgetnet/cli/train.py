"""Train an architecture on a dataset and report its accuracy and time. SPEC is adapted to
the data's input shape and class count. Prints one line per epoch, the final validation and
test accuracy (1 or 10 test views) and the time; --json prints everything as JSON instead.
Exit status 1 when training diverged (a NaN or infinite loss).

data sources (nothing is downloaded):
  digits        scikit-learn's bundled 8x8 digits, resized to 16x16 (--image-size)
  idx:DIR       MNIST-format IDX files, e.g. train-images-idx3-ubyte[.gz] and t10k-*
  cifar:DIR     CIFAR-10 / CIFAR-100 python batches
  folder:DIR    one sub-folder of images per class (or train/ and test/ laid out so)

A notation without a head gets the default head for the data's input size: spp(2,1) below
64 px (digits, MNIST, CIFAR), the paper's spp fc4096 fc4096 from 64 px.

examples:
  budgetnet train "(3,32) 2/2 (3,64) 2/2 (3,128)" --epochs 5
  budgetnet train "(3,32) 2/2 (2,64)x4 gap" --data idx:data/mnist --epochs 3 --views 10
  budgetnet train "(5,64) 2/2 (3,128)x2 spp fc256 fc256" --data cifar:data/cifar-10-batches-py \\
      --recipe paper --epochs 30 --device cuda --checkpoint runs/cifar.pt --json
"""

from __future__ import annotations

import sys
from dataclasses import replace

from budgetnet.cli.common import SPEC_HELP, add_norm_argument, add_threads_argument, load_arch, print_json, warn_if_busy

NAME = "train"
HELP = "train an architecture on a dataset; print accuracy and time"


def add_arguments(parser) -> None:
    parser.add_argument("spec", metavar="SPEC", help=SPEC_HELP)
    parser.add_argument("--data", default="digits", metavar="SOURCE",
                        help="digits (default), idx:DIR, cifar:DIR or folder:DIR")  # fmt: skip
    parser.add_argument("--image-size", type=int, metavar="PX",
                        help="resize images to PX x PX (default: 16 for digits, native otherwise)")  # fmt: skip
    parser.add_argument("--crop-size", type=int, metavar="PX",
                        help="train on random PX x PX crops of the (larger) images, as the paper's 224 of 256")  # fmt: skip
    parser.add_argument("--limit", type=int, metavar="N",
                        help="train on N images (stratified; all of them when the split holds fewer)")  # fmt: skip
    parser.add_argument("--val-limit", type=int, metavar="N",
                        help="validate on N images of the validation split (stratified; default: all of it, e.g. "
                        "12,000 on MNIST every epoch); more than the split warns and uses all")  # fmt: skip
    parser.add_argument("--val-fraction", type=float, default=0.2, metavar="F",
                        help="share of the training images held out for validation (default 0.2)")  # fmt: skip
    parser.add_argument("--recipe", choices=("quick", "paper"), default="quick",
                        help="quick: AdamW, cosine, label smoothing (default); paper: Sec. 5, SGD, lr 0.01 "
                             "stepped at 10/75 and 70/75 of the epochs")  # fmt: skip
    parser.add_argument("--epochs", type=int, metavar="N", help="epochs (default: the recipe's, 10 quick / 75 paper)")
    parser.add_argument("--batch-size", type=int, metavar="N",
                        help="mini-batch size (default: the recipe's, 32 quick / 128 paper, cut with a "
                             "warning to a smaller training split); more than the training split is an error")  # fmt: skip
    parser.add_argument("--max-memory", metavar="SIZE",
                        help="refuse a network whose estimated training memory exceeds SIZE, e.g. 8G or 512M "
                             "(default: the device's memory; see `budgetnet show`)")  # fmt: skip
    parser.add_argument("--lr", type=float, metavar="LR", help="base learning rate (default: the recipe's)")
    parser.add_argument("--device", default="auto", help="auto (default: cuda if there is a GPU), cpu, cuda, cuda:N")
    parser.add_argument("--seed", type=int, default=0, help="seed of the splits, initialisation and augmentation (0 .. 2**63-1)")
    parser.add_argument("--checkpoint", metavar="PATH",
                        help="save after every epoch and resume from PATH when it exists")  # fmt: skip
    parser.add_argument("--views", type=int, choices=(1, 10), default=1,
                        help="test views: 1 (centre) or 10 (centre, 4 corners and their flips; 5 where the data is "
                        "never flipped, as digits and MNIST)")  # fmt: skip
    add_norm_argument(parser)
    add_threads_argument(parser)
    parser.add_argument("--compile", action="store_true", help="wrap the model in torch.compile")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")


def run(args) -> int:
    from tqdm.auto import tqdm

    from budgetnet.cost.complexity import conv_macs, format_count
    from budgetnet.training.data import load_data
    from budgetnet.training.recipes import get_recipe
    from budgetnet.training.train import evaluate, fit

    from budgetnet.checks import check_seed
    from budgetnet.cost.memory import parse_bytes
    from budgetnet.errors import TrainingError
    from budgetnet.pytorch.device import set_threads

    threads = set_threads(args.threads)  # before the data: resizing runs on these threads too
    warn_if_busy(threads)
    check_seed(TrainingError, args.seed)  # before the data: torch's generators overflow past 64 bits
    if args.max_memory is not None:
        parse_bytes(args.max_memory)  # a malformed size is refused before the data is loaded
    data = load_data(args.data, image_size=args.image_size, crop_size=args.crop_size, limit=args.limit,
                     val_limit=args.val_limit, val_fraction=args.val_fraction, seed=args.seed)  # fmt: skip
    arch = load_arch(args.spec, data.input_shape, data.num_classes)
    overrides = {"lr": args.lr} if args.lr is not None else {}
    recipe = get_recipe(args.recipe, args.epochs, **overrides)
    if args.batch_size is not None:
        recipe = replace(recipe, batch_size=args.batch_size)
    macs = conv_macs(arch)
    if not args.json:
        print(f"data   {data!r}")
        print(f"model  {arch}   ({format_count(macs)} MACs, Eqn. (1))")
        print(f"recipe {recipe.name}: {recipe.epochs} epochs, batch {recipe.batch_size}, {recipe.optimizer} "
              f"lr {recipe.lr:g}, {recipe.schedule} schedule")  # fmt: skip

    def report(epoch: int, metrics: dict) -> None:
        if not args.json:
            tqdm.write(
                f"epoch {epoch}/{recipe.epochs}  train loss {metrics['train_loss']:.4f}  "
                f"val accuracy {metrics['val_accuracy']:.4f}  {metrics['seconds']:.1f} s"
            )

    result = fit(arch, data, recipe, device=args.device, seed=args.seed, callback=report, checkpoint=args.checkpoint,
                 progress=not (args.no_progress or args.json), norm=args.norm,
                 compile=args.compile, batch_size=args.batch_size, max_memory=args.max_memory)  # fmt: skip
    test = None if result.diverged else evaluate(result.model, data, split="test", device=args.device, views=args.views)
    if args.json:
        print_json({"data": data.to_dict(), "conv_macs": macs, "threads": threads, "fit": result.to_dict(),
                    "test": test})  # fmt: skip
    elif result.diverged:
        print(f"diverged: {result.message}")
    else:
        print(
            f"val accuracy {result.val_accuracy:.4f} (best {result.best_val_accuracy:.4f}), test accuracy "
            f"{test['accuracy']:.4f} ({test['views']} view{'s' if test['views'] > 1 else ''}); "
            f"{result.seconds:.1f} s, {result.images_per_second:,.0f} images/s on {result.device} "
            f"({threads} CPU thread{'s' if threads > 1 else ''})"
        )
    if result.diverged:
        print(f"budgetnet train: {result.message}", file=sys.stderr)
        return 1
    return 0
