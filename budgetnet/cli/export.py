"""Export a trial of a search: its architecture as JSON (budgetnet show/train read it), a
standalone .py file defining the torch.nn.Module (only torch needed, no budgetnet), or its
trained weights .pt (when the search ran with --keep-weights). --trial best is the most
accurate trial inside the budget. Reload the .py file with importlib (see docs/search.md):

  spec = importlib.util.spec_from_file_location("found", "trial7.py")
  found = importlib.util.module_from_spec(spec); spec.loader.exec_module(found)
  model = found.Net(); model.load_state_dict(torch.load("trial7.pt", weights_only=True))

examples:
  budgetnet export --trial best --format py
  budgetnet export --study small-digits --trial 7 --format json -o found.json
  budgetnet export --trial best --format pt -o found.pt
"""

from __future__ import annotations

from budgetnet.cli.results import add_storage_arguments, open_study

NAME = "export"
HELP = "write a trial's architecture (JSON), model code (.py) or weights (.pt)"


def add_arguments(parser) -> None:
    add_storage_arguments(parser)
    parser.add_argument("--trial", default="best", metavar="best|N", help="'best' (default) or a trial number")
    parser.add_argument("--format", default="json", choices=("json", "py", "pt"), help="json (default), py or pt")
    parser.add_argument("-o", "--output", metavar="PATH", help="output file (default trialN.FORMAT here)")


def run(args) -> int:
    from budgetnet.studies.export import export_trial

    study = open_study(args)
    path = export_trial(study, args.trial, args.format, args.output)
    print(f"wrote {path}")
    return 0
