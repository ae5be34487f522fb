"""The standalone ``.py`` file of an exported model, and the checks it passes before export
writes it.

:func:`module_source` renders an Arch as a ``torch.nn.Module`` that imports only torch (the
layers from :mod:`budgetnet.pytorch.modules`, the table the builder uses), with
``preprocess(images)``, the recorded steps from raw images to the network's input.
:func:`check_compiles` and :func:`check_imports` are what :func:`budgetnet.studies.export.export_trial`
runs on it: ``compile()`` in this process, then an import in a fresh Python where
``import budgetnet`` fails.

Example:
    >>> import budgetnet
    >>> source = module_source(budgetnet.parse("(3,8) 2/2 (2,16)x2 gap", input_shape=(1, 8, 8), num_classes=10))
    >>> "import budgetnet" in source, "class Net(nn.Module):" in source, "PREPROCESS = None" in source
    (False, True, True)
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from pathlib import Path

from budgetnet.cost.complexity import complexity, format_count
from budgetnet.errors import ExportError
from budgetnet.graph.arch import Arch


# -- the .py file, checked before it is put in place -----------------------------------------
#: Run in a fresh Python on the written file: budgetnet may not be imported, the module must
#: import, build ``Net``, map a zero batch to ``NUM_CLASSES`` logits, and ``preprocess`` a
#: raw zero image to ``INPUT_SHAPE``.
_IMPORT_CHECK = """
import importlib.machinery, importlib.util, sys
sys.modules["budgetnet"] = None
loader = importlib.machinery.SourceFileLoader("exported", sys.argv[1])
module = importlib.util.module_from_spec(importlib.util.spec_from_loader("exported", loader))
loader.exec_module(module)
import torch
shape = tuple(module.INPUT_SHAPE)
with torch.no_grad():
    logits = module.Net().eval()(torch.zeros(1, *shape))
assert tuple(logits.shape) == (1, module.NUM_CLASSES), f"Net() gives logits of shape {tuple(logits.shape)}"
if module.PREPROCESS is not None:
    raw = torch.zeros(1, shape[0], *module.PREPROCESS["resize"], dtype=torch.uint8)
    assert tuple(module.preprocess(raw).shape) == (1, *shape), "preprocess gives the wrong shape"
"""
#: Seconds the import check may take (torch's import and one forward pass of a large model).
IMPORT_CHECK_SECONDS = 300


def check_compiles(source: str, path: Path) -> str:
    """``source`` when it compiles and UTF-8 can hold it; else an ExportError (nothing written)."""
    try:
        source.encode("utf-8")
        compile(source, str(path), "exec")
    except (SyntaxError, ValueError) as error:  # UnicodeEncodeError is a ValueError; so is a NUL before 3.12
        raise ExportError(
            f"output={str(path)!r}: the generated model code does not compile ({type(error).__name__}: {error}); "
            "nothing was written (a damaged study attribute, or a budgetnet bug)"
        ) from None
    return source


def check_imports(temporary: Path) -> None:
    """Import the written ``.py`` in a fresh Python without budgetnet (see :data:`_IMPORT_CHECK`)."""
    try:
        result = subprocess.run([sys.executable, "-B", "-c", _IMPORT_CHECK, str(temporary)], capture_output=True,
                                text=True, errors="replace", timeout=IMPORT_CHECK_SECONDS)  # fmt: skip
    except subprocess.TimeoutExpired:
        raise ExportError(
            f"the exported model did not import within {IMPORT_CHECK_SECONDS} s in a fresh Python; nothing was written"
        ) from None
    if result.returncode != 0:
        lines = result.stderr.strip().splitlines() or [f"exit status {result.returncode}"]
        raise ExportError(
            f"the exported model does not import on its own in a fresh Python ({lines[-1][:300]}); nothing was "
            "written (a damaged study attribute, or a budgetnet bug)"
        )


# -- the standalone module -------------------------------------------------------------------
def module_source(arch: Arch, norm: str | None = None, class_name: str = "Net", about: str = "",
                  preprocess: dict | None = None) -> str:  # fmt: skip
    """Python source of a standalone ``torch.nn.Module`` equal to ``budgetnet.build(arch, norm=norm)``.

    The layers come from :mod:`budgetnet.pytorch.modules`, the description ``build`` uses, with
    every shape and padding from ``arch``; the helper classes it needs (SPP, residual and
    concat blocks) are copied in, so the file imports only torch, and the parameter names
    match the builder's, so a state dict of one loads into the other. ``preprocess`` (a
    checked :meth:`~budgetnet.training.data.Dataset.preprocessing` record) becomes the file's
    ``PREPROCESS`` and ``preprocess(images)``; without it the file says that the
    preprocessing is unknown.

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
    if arch.classifier:  # else the head's output is the logits: their number is fixed
        classifier[-1] = replace(classifier[-1], args=(classifier[-1].args[0], _Name("num_classes")))
    indent = " " * 12
    feature_lines = []
    for spec in features:
        comment = f"  # {spec.comment}" if spec.comment else ""
        feature_lines.append(f"{indent}{render(spec, indent)},{comment}\n")
    shape = "x".join(map(str, arch.input_shape))
    classes = f"{arch.num_classes} classes" + ("" if arch.classifier else " (no classifier: the head gives the logits)")
    doc = (
        f"{arch.notation()}: a CNN found by budgetnet{' (' + about + ')' if about else ''}.\n\n"
        f"Input {shape}, {classes}; Eqn. (1) cost {format_count(report.conv_macs)} "
        f"multiply-adds per image, {format_count(report.params)} parameters"
        f"{', batch norm' if norm == 'batch' else ''}.\n"
        "Standalone: needs only torch. Reload it with importlib:\n\n"
        "    spec = importlib.util.spec_from_file_location(\"found\", PATH_OF_THIS_FILE)\n"
        "    found = importlib.util.module_from_spec(spec); spec.loader.exec_module(found)\n"
        "    model = found.Net().eval()  # then model.load_state_dict(torch.load(WEIGHTS, weights_only=True))\n"
        + (
            "    logits = model(found.preprocess(raw_images))  # the training's scaling, size and mean/std\n"
            if preprocess is not None
            else "\nPreprocessing unknown: the study that found it did not record how its images were\n"
            "prepared (it predates that record); see PREPROCESS below.\n"
        )
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
    source = "\n".join(lines) + "\n" + _preprocess_source(preprocess)
    for name in helpers_used([*features, pool]):
        source += "\n\n" + inspect.getsource(HELPERS[name])
    source += (
        f"\n\nclass {class_name}(nn.Module):\n"
        f"    def __init__(self{', num_classes: int = NUM_CLASSES' if arch.classifier else ''}):\n"
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


def _preprocess_source(record: dict | None) -> str:
    """``PREPROCESS`` and ``preprocess(images)`` of the standalone file (see
    :meth:`budgetnet.training.data.Dataset.preprocessing` for the steps)."""
    if record is None:
        return _UNKNOWN_PREPROCESS
    constant = "PREPROCESS = {\n" + "".join(f"    {key!r}: {value!r},\n" for key, value in record.items()) + "}\n"
    return _PREPROCESS.replace("PREPROCESS = {}\n", constant)


_PREPROCESS = '''
#: How the search's data turned raw images into this network's input (recorded by budgetnet).
PREPROCESS = {}


def preprocess(images):
    """Raw images -> this network's input, exactly as in training.

    ``images``: channels first (N, C, H, W; C, H, W for one image; N, H, W when C is 1), in
    the channel order of PREPROCESS["channels"]; uint8 pixels (0..255) or float pixels
    (0..PREPROCESS["pixel_max"]). Steps: scale to [0, 1]; resize to PREPROCESS["resize"]
    (antialiased bilinear, clamped to [0, 1]) where the size differs; centre crop to
    INPUT_SHAPE; subtract PREPROCESS["mean"] and divide by PREPROCESS["std"] per channel.
    """
    x = torch.as_tensor(images)
    channels, height, width = INPUT_SHAPE
    if x.dim() == 2:
        x = x[None, None]
    elif x.dim() == 3:
        x = x[:, None] if channels == 1 else x[None]
    if x.dim() != 4 or x.shape[1] != channels:
        raise ValueError(
            f"images of shape {tuple(torch.as_tensor(images).shape)}; expected N, {channels}, H, W (channels first)"
        )
    x = x.float() / 255 if x.dtype == torch.uint8 else x.float() / PREPROCESS["pixel_max"]
    size = tuple(PREPROCESS["resize"])
    if tuple(x.shape[2:]) != size:
        x = nn.functional.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True).clamp(0, 1)
    top, left = (x.shape[2] - height) // 2, (x.shape[3] - width) // 2
    x = x[:, :, top : top + height, left : left + width]
    mean = torch.tensor(PREPROCESS["mean"], device=x.device)[:, None, None]
    std = torch.tensor(PREPROCESS["std"], device=x.device)[:, None, None]
    return ((x - mean) / std).contiguous()
'''

_UNKNOWN_PREPROCESS = '''
#: Unknown: the study that found this network did not record how its images were prepared.
PREPROCESS = None


def preprocess(images):
    """Unknown for this network: its study predates budgetnet's preprocessing record."""
    raise NotImplementedError(
        "preprocessing unknown: the study that found this network did not record it; budgetnet standardised "
        "each channel with the training split's mean and std (load_data(...).mean / .std)"
    )
'''
