"""Export a trial of a search: its architecture as JSON (budgetnet show/train read it), a
standalone .py file defining the torch.nn.Module (only torch needed, no budgetnet), or its
trained weights .pt (when the search ran with --keep-weights). --trial best is the most
accurate trial inside the budget. The .py and the .json carry the preprocessing the search's
data used (pixel scale, resize, centre crop, per-channel mean and std); the .py's
preprocess() applies it to raw images. Reload the .py file with importlib (see docs/search.md):

  spec = importlib.util.spec_from_file_location("found", "trial7.py")
  found = importlib.util.module_from_spec(spec); spec.loader.exec_module(found)
  model = found.Net().eval(); model.load_state_dict(torch.load("trial7.pt", weights_only=True))
  logits = model(found.preprocess(raw_images))

A file is written whole or not at all (an old file stays when the disk is full), and a .py
is compiled and imported in a fresh Python before it is put in place.

examples:
  budgetnet export --trial best --format py
  budgetnet export --study small-digits --trial 7 --format json -o found.json
  budgetnet export --trial best --format pt -o found.pt --json
"""

from __future__ import annotations

from budgetnet.cli.common import print_json
from budgetnet.cli.results import add_storage_arguments, open_study

NAME = "export"
HELP = "write a trial's architecture (JSON), model code (.py) or weights (.pt)"


def add_arguments(parser) -> None:
    add_storage_arguments(parser)
    parser.add_argument("--trial", default="best", metavar="best|N", help="'best' (default) or a trial number")
    parser.add_argument("--format", default="json", choices=("json", "py", "pt"), help="json (default), py or pt")
    parser.add_argument("-o", "--output", metavar="PATH", help="output file (default trialN.FORMAT here)")
    parser.add_argument("--json", action="store_true",
                        help="print what was written as JSON: path, format, study, trial, notation, val_accuracy, "
                             "macs, params, preprocess")  # fmt: skip


def run(args) -> int:
    from budgetnet.studies.export import export_summary, export_trial, get_trial

    study = open_study(args)
    trial = get_trial(study, args.trial)
    path = export_trial(study, trial.number, args.format, args.output)
    if args.json:
        print_json(export_summary(study, trial, args.format, path))
    else:
        print(f"wrote {path}")
    return 0
