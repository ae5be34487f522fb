"""Export a trial of a search: the Arch as JSON, a standalone ``.py`` model, trained weights.

The ``.py`` file defines ``Net``, a ``torch.nn.Module`` written out layer by layer with every
padding explicit, and ``preprocess``, the exact steps that turned the search's raw images into
the network's input (scale, resize, centre crop, per-channel mean and std, as the study
recorded them; see :meth:`budgetnet.training.data.Dataset.preprocessing`). It imports only
torch, so the found model runs without budgetnet. Its parameter names match
:func:`budgetnet.build`, so the ``.pt`` weights of the trial load into it. Reload it with
importlib::

    import importlib.util, torch
    spec = importlib.util.spec_from_file_location("found", "trial7.py")
    found = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(found)
    model = found.Net().eval()
    model.load_state_dict(torch.load("trial7.pt", weights_only=True))
    logits = model(found.preprocess(raw_images))  # uint8 or float, N, C, H, W

The ``.json`` file is the Arch spec with the same ``preprocess`` record. Every file is written
whole or not at all (:mod:`budgetnet.files`), and a ``.py`` is compiled and imported in a
fresh Python process (where ``import budgetnet`` fails) before it is put in place. The trial's
attributes that go into the files are type-checked first: a damaged study gives an
:class:`~budgetnet.errors.ExportError` and no file.

Example:
    >>> import budgetnet
    >>> source = module_source(budgetnet.parse("(3,8) 2/2 (2,16)x2 gap", input_shape=(1, 8, 8), num_classes=10))
    >>> "import budgetnet" in source, "class Net(nn.Module):" in source
    (False, True)
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import optuna
from optuna.trial import TrialState

from budgetnet.graph.arch import Arch
from budgetnet.cost.complexity import complexity
from budgetnet.checks import is_int
from budgetnet.errors import ArchError, BudgetNetError, ExportError
from budgetnet.files import write_file, write_json, write_text
from budgetnet.studies.record import StudyRecord, TrialRecord
from budgetnet.studies.standalone import check_compiles, check_imports, module_source

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
            weights were not kept (``keep_weights``) or live on another machine; a trial
            attribute of the wrong type; a ``.py`` that does not compile and import on its own.
        FileWriteError: the file cannot be written (disk full, permission denied, ...); an
            old file at ``path`` is left as it was.
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
    record = checked_record(found)
    if format == "json":
        write_json(path, {**arch.to_dict(), "preprocess": study_preprocess(study, arch)}, what="exported architecture")
    elif format == "py":
        source = module_source(arch, norm=record.norm, about=_about(study, found, record),
                               preprocess=study_preprocess(study, arch))  # fmt: skip
        write_text(path, check_compiles(source, path), check=check_imports, what="exported model")
    else:
        _copy_weights(found, record, path)
    return path


def export_summary(study: optuna.Study, trial: optuna.trial.FrozenTrial, format: str, path: str | Path) -> dict:
    """What :func:`export_trial` wrote, for ``budgetnet export --json``: ``path``, ``format``,
    ``study``, ``trial``, ``notation``, ``val_accuracy``, ``macs``, ``params`` and ``preprocess``
    (``None`` where the study did not record it).

    Example:
        >>> import budgetnet
        >>> arch = budgetnet.parse("(3,8) gap", input_shape=(1, 8, 8), num_classes=10)
        >>> study = optuna.create_study(direction="maximize", study_name="demo")
        >>> study.add_trial(optuna.create_trial(value=0.9, user_attrs={"arch": arch.to_dict(), "val_accuracy": 0.9}))
        >>> summary = export_summary(study, study.trials[0], "json", "trial0.json")
        >>> summary["trial"], summary["val_accuracy"], summary["macs"], summary["preprocess"]  # 1*3*3*8*8*8 MACs
        (0, 0.9, 4608, None)
    """
    arch = trial_arch(trial)
    record = checked_record(trial)
    report = complexity(arch)
    return {
        "path": str(Path(path)),
        "format": format,
        "study": study.study_name,
        "trial": trial.number,
        "notation": arch.notation(),
        "val_accuracy": record.val_accuracy,
        "macs": report.conv_macs,
        "params": report.params,
        "preprocess": study_preprocess(study, arch),
    }


# -- what the study holds, checked ---------------------------------------------------------------
def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


#: The trial attributes export reads, and what each must be (``None`` is always allowed).
_ATTRIBUTE_CHECKS = {
    "val_accuracy": (lambda value: _is_number(value) and 0 <= value <= 1, "a number from 0 to 1"),
    "epochs": (lambda value: is_int(value, 0), "a whole number >= 0"),
    "norm": (lambda value: value == "batch", "None or 'batch'"),
    "weights": (lambda value: isinstance(value, str) and "\x00" not in value, "a file path"),
}


def checked_record(trial: optuna.trial.FrozenTrial) -> TrialRecord:
    """The trial's record, after checking the type of every attribute export writes out.

    Raises:
        ExportError: an attribute of the wrong type (a damaged or hand-made study).

    Example:
        >>> study = optuna.create_study(direction="maximize")
        >>> study.add_trial(optuna.create_trial(value=0.9, user_attrs={"epochs": "3\\x00"}))
        >>> checked_record(study.trials[0])
        Traceback (most recent call last):
        ...
        budgetnet.errors.ExportError: trial 0: attribute epochs='3\\x00' is invalid; expected a whole number >= 0 (the study's records are damaged; export another trial)
    """
    record = TrialRecord.read(trial)
    for key, (valid, expected) in _ATTRIBUTE_CHECKS.items():
        value = record.get(key)
        if value is not None and not valid(value):
            raise ExportError(
                f"trial {trial.number}: attribute {key}={_shown(value)} is invalid; expected {expected} "
                "(the study's records are damaged; export another trial)"
            )
    return record


def study_preprocess(study: optuna.Study, arch: Arch) -> dict | None:
    """The study's record of how raw images became ``arch``'s input (``None`` when the study
    predates the record), checked against ``arch``'s input shape.

    Raises:
        ExportError: a record of the wrong shape or type.

    Example:
        >>> import budgetnet
        >>> study = optuna.create_study()
        >>> study_preprocess(study, budgetnet.parse("(3,8) gap", input_shape=(1, 8, 8))) is None
        True
    """
    record = StudyRecord.read(study).preprocess
    if record is None:
        return None
    channels, height, width = arch.input_shape
    sides = lambda value: isinstance(value, list) and len(value) == 2 and all(is_int(side, 1) for side in value)  # noqa: E731
    stats = lambda value: isinstance(value, list) and len(value) == channels and all(map(_is_number, value))  # noqa: E731
    checks = {
        "source": (lambda value: isinstance(value, str), "a string"),
        "channels": (lambda value: value in ("grayscale", "RGB", "other"), "'grayscale', 'RGB' or 'other'"),
        "pixel_max": (lambda value: _is_number(value) and value > 0, "a number > 0"),
        "resize": (lambda value: sides(value) and value[0] >= height and value[1] >= width,
                   f"[height, width], at least the input's {height}x{width}"),
        "crop": (lambda value: value == [height, width], f"the input's [height, width] {[height, width]}"),
        "mean": (stats, f"{channels} finite numbers (one per channel)"),
        "std": (lambda value: stats(value) and min(value) > 0, f"{channels} numbers > 0 (one per channel)"),
    }  # fmt: skip
    if not isinstance(record, dict):
        raise ExportError(f"study {study.study_name!r}: preprocess={_shown(record)} is invalid; expected an object")
    for key, (valid, expected) in checks.items():
        if key not in record or not valid(record[key]):
            raise ExportError(
                f"study {study.study_name!r}: preprocess {key}={_shown(record.get(key))} is invalid; expected "
                f"{expected} (the study's records are damaged)"
            )
    return {key: record[key] for key in checks}


def _shown(value) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _about(study: optuna.Study, trial: optuna.trial.FrozenTrial, record: TrialRecord) -> str:
    text = f"study {study.study_name!r}, trial {trial.number}"
    if record.val_accuracy is not None:
        epochs = record.epochs
        text += f": validation accuracy {record.val_accuracy:.4f}"
        if epochs is not None:
            text += f" after {epochs} epoch{'' if epochs == 1 else 's'}"
    return text


def _copy_weights(trial: optuna.trial.FrozenTrial, record: TrialRecord, path: Path) -> None:
    import torch

    source = record.weights
    if not source:
        raise ExportError(
            f"trial {trial.number} kept no weights; expected a search run with keep_weights=True "
            "(budgetnet search --keep-weights), or export --format py and train it yourself"
        )
    if not Path(source).is_file():
        raise ExportError(
            f"trial {trial.number}: weights file {source!r} is not on this machine (worker "
            f"{record.worker!r}); expected it where that worker wrote it"
        )
    try:
        torch.load(source, map_location="cpu", weights_only=True)
        with open(source, "rb") as weights:
            write_file(path, lambda handle: shutil.copyfileobj(weights, handle), what="exported weights")
    except OSError as error:
        if isinstance(error, BudgetNetError):
            raise
        raise ExportError(f"trial {trial.number}: weights file {source!r} cannot be read ({error})") from None
    except Exception as error:  # torch raises many types for a file that is not a state dict
        raise ExportError(f"trial {trial.number}: weights file {source!r} cannot be read ({error})") from None
