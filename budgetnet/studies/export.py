"""Export a trial of a search: the Arch as JSON, a standalone ``.py`` model, trained weights.

The ``.py`` file defines ``Net``, a ``torch.nn.Module`` written out layer by layer with every
padding explicit; it imports only torch, so the found model runs without budgetnet. Its
parameter names match :func:`budgetnet.build`, so the ``.pt`` weights of the trial load into
it. Reload it with importlib::

    import importlib.util, torch
    spec = importlib.util.spec_from_file_location("found", "trial7.py")
    found = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(found)
    model = found.Net()
    model.load_state_dict(torch.load("trial7.pt", weights_only=True))

Example:
    >>> import budgetnet
    >>> source = module_source(budgetnet.parse("(3,8) 2/2 (2,16)x2 gap", input_shape=(1, 8, 8), num_classes=10))
    >>> "import budgetnet" in source, "class Net(nn.Module):" in source
    (False, True)
"""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import optuna
from optuna.trial import TrialState

from budgetnet.graph.arch import Arch
from budgetnet.cost.complexity import complexity, format_count
from budgetnet.errors import ArchError, ExportError
from budgetnet.studies.record import TrialRecord

#: The formats :func:`export_trial` writes.
FORMATS = ("json", "py", "pt")


def get_trial(study: optuna.Study, trial: str | int = "best") -> optuna.trial.FrozenTrial:
    """The trial ``"best"`` (the most accurate inside the budget) or number ``trial``.

    Raises:
        ExportError: no such trial, or it never completed inside the budget (pruned, failed,
            running, queued, or over the budget and so never trained).

    Example:
        >>> study = optuna.create_study(direction="maximize")
        >>> study.add_trial(optuna.create_trial(value=0.9, user_attrs={"status": "ok"}))
        >>> get_trial(study, "best").number
        0
    """
    from budgetnet.studies.results import best_trial, is_feasible

    if trial == "best":
        found = best_trial(study)
        if found is None:
            raise ExportError(
                f"trial='best': study {study.study_name!r} has no trial completed inside the budget yet; "
                "expected at least one (see budgetnet results)"
            )
        return found
    try:
        number = int(trial)
    except (TypeError, ValueError):
        raise ExportError(f"trial={trial!r} is invalid; expected 'best' or a trial number") from None
    trials = study.get_trials(deepcopy=False)
    if not 0 <= number < len(trials):
        raise ExportError(f"trial={number} does not exist; expected 'best' or a number in 0..{len(trials) - 1}")
    found = trials[number]
    if found.state != TrialState.COMPLETE:
        reason = TrialRecord.read(found).error or found.state.name.lower()
        raise ExportError(
            f"trial={number} never completed ({found.state.name}: {reason}); expected a completed trial "
            "inside the budget, such as 'best'"
        )
    if not is_feasible(found):
        raise ExportError(
            f"trial={number} is over the budget and was never trained; expected a completed trial inside "
            "the budget, such as 'best'"
        )
    return found


def trial_arch(trial: optuna.trial.FrozenTrial) -> Arch:
    """The Arch a trial stored.

    Example:
        >>> import budgetnet
        >>> arch = budgetnet.parse("(3,8) gap", input_shape=(1, 8, 8), num_classes=10)
        >>> str(trial_arch(optuna.create_trial(value=0.9, user_attrs={"arch": arch.to_dict()})))
        '(3,8) gap'
    """
    data = TrialRecord.read(trial).arch
    if data is None:
        raise ExportError(f"trial {trial.number} holds no readable architecture (no 'arch' recorded)")
    try:
        return Arch.from_dict(data)
    except ArchError as error:
        raise ExportError(f"trial {trial.number} holds no readable architecture ({error})") from None


def export_trial(
    study: optuna.Study, trial: str | int = "best", format: str = "json", path: str | Path | None = None
) -> Path:
    """Write trial ``trial`` of ``study`` as ``format`` to ``path`` (default ``trialN.<format>``).

    Returns:
        The path written.

    Raises:
        ExportError: see :func:`get_trial`; an unknown format; ``pt`` for a trial whose
            weights were not kept (``keep_weights``) or live on another machine.
    """
    if format not in FORMATS:
        raise ExportError(f"format={format!r} is unknown; expected one of {', '.join(FORMATS)}")
    found = get_trial(study, trial)
    path = Path(path) if path is not None else Path(f"trial{found.number}.{format}")
    if path.parent != Path("") and not path.parent.is_dir():
        raise ExportError(f"output={str(path)!r}: directory {str(path.parent)!r} does not exist")
    if path.is_dir():
        raise ExportError(f"output={str(path)!r} is a directory; expected a file path such as {path / path.name}.{format}")
    arch = trial_arch(found)
    if format == "json":
        arch.save(path)
    elif format == "py":
        path.write_text(module_source(arch, norm=TrialRecord.read(found).norm, about=_about(study, found)))
    else:
        _copy_weights(found, path)
    return path


def _about(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> str:
    record = TrialRecord.read(trial)
    text = f"study {study.study_name!r}, trial {trial.number}"
    if record.val_accuracy is not None:
        epochs = record.epochs
        text += f": validation accuracy {record.val_accuracy:.4f} after {epochs} epoch{'' if epochs == 1 else 's'}"
    return text


def _copy_weights(trial: optuna.trial.FrozenTrial, path: Path) -> None:
    import torch

    record = TrialRecord.read(trial)
    source = record.weights
    if not source:
        raise ExportError(
            f"trial {trial.number} kept no weights; expected a search run with keep_weights=True "
            "(budgetnet search --keep-weights), or export --format py and train it yourself"
        )
    if not Path(source).is_file():
        raise ExportError(
            f"trial {trial.number}: weights file {source!r} is not on this machine (worker "
            f"{record.worker}); expected it where that worker wrote it"
        )
    try:
        torch.load(source, map_location="cpu", weights_only=True)
    except Exception as error:
        raise ExportError(f"trial {trial.number}: weights file {source!r} cannot be read ({error})") from None
    shutil.copyfile(source, path)


# -- the standalone module -------------------------------------------------------------------
def module_source(arch: Arch, norm: str | None = None, class_name: str = "Net", about: str = "") -> str:
    """Python source of a standalone ``torch.nn.Module`` equal to ``budgetnet.build(arch, norm=norm)``.

    The layers come from :mod:`budgetnet.pytorch.modules`, the description ``build`` uses, with
    every shape and padding from ``arch``; the helper classes it needs (SPP, residual and
    concat blocks) are copied in, so the file imports only torch, and the parameter names
    match the builder's, so a state dict of one loads into the other.

    Example:
        >>> import budgetnet, torch
        >>> arch = budgetnet.parse("(3,8) 2/2 res[(2,16)x2] gap", input_shape=(1, 8, 8), num_classes=10)
        >>> namespace = {}
        >>> exec(module_source(arch), namespace)
        >>> namespace["Net"]()(torch.zeros(2, 1, 8, 8)).shape
        torch.Size([2, 10])
    """
    import inspect

    from budgetnet.pytorch.modules import (
        HELPERS,
        NORMS,
        classifier_specs,
        feature_specs,
        helpers_used,
        init_weights,
        pool_spec,
        render,
    )

    if norm not in NORMS:
        raise ExportError(f"norm={norm!r} is invalid; expected None or 'batch'")
    if not class_name.isidentifier():
        raise ExportError(f"class_name={class_name!r} is invalid; expected a Python identifier")
    report = complexity(arch)
    features, pool, classifier = feature_specs(arch, norm), pool_spec(arch), classifier_specs(arch)
    classifier[-1] = replace(classifier[-1], args=(classifier[-1].args[0], _Name("num_classes")))
    indent = " " * 12
    feature_lines = []
    for spec in features:
        comment = f"  # {spec.comment}" if spec.comment else ""
        feature_lines.append(f"{indent}{render(spec, indent)},{comment}\n")
    shape = "x".join(map(str, arch.input_shape))
    doc = (
        f"{arch.notation()}: a CNN found by budgetnet{' (' + about + ')' if about else ''}.\n\n"
        f"Input {shape}, {arch.num_classes} classes; Eqn. (1) cost {format_count(report.conv_macs)} "
        f"multiply-adds per image, {format_count(report.params)} parameters"
        f"{', batch norm' if norm == 'batch' else ''}.\n"
        "Standalone: needs only torch. Reload it with importlib:\n\n"
        "    spec = importlib.util.spec_from_file_location(\"found\", PATH_OF_THIS_FILE)\n"
        "    found = importlib.util.module_from_spec(spec); spec.loader.exec_module(found)\n"
        "    model = found.Net()  # then model.load_state_dict(torch.load(WEIGHTS, weights_only=True))\n"
    )
    lines = [
        f'"""{_docstring_safe(doc)}"""',
        "",
        "import math",
        "",
        "import torch",
        "from torch import nn",
        "",
        f"INPUT_SHAPE = {tuple(arch.input_shape)!r}",
        f"NUM_CLASSES = {arch.num_classes}",
    ]
    source = "\n".join(lines) + "\n"
    for name in helpers_used([*features, pool]):
        source += "\n\n" + inspect.getsource(HELPERS[name])
    source += (
        f"\n\nclass {class_name}(nn.Module):\n"
        f"    def __init__(self, num_classes: int = NUM_CLASSES):\n"
        f"        super().__init__()\n"
        f"        self.features = nn.Sequential(\n"
        + "".join(feature_lines)
        + "        )\n"
        f"        self.pool = {render(pool)}\n"
        f"        self.classifier = nn.Sequential(\n"
        + "".join(f"{indent}{render(spec, indent)},\n" for spec in classifier)
        + "        )\n"
        "        init_weights(self)\n\n"
        "    def forward(self, x):\n"
        "        return self.classifier(self.pool(self.features(x)))\n"
    )
    return source + "\n\n" + inspect.getsource(init_weights)


class _Name(str):
    """A name written as is into the source (``num_classes``), not as a string literal."""

    def __repr__(self) -> str:
        return str(self)


def _docstring_safe(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"""', '\\"\\"\\"')
