"""Helpers shared by the subcommands: reading an architecture SPEC (zoo name, notation, JSON
file or FILE.py:NAME), the options several commands take (``--norm``, ``--threads``),
printing JSON."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import sys
from pathlib import Path
from typing import Sequence

from budgetnet.graph.arch import Arch
from budgetnet.errors import ArchError
from budgetnet.graph.notation import parse

SPEC_HELP = (
    "a zoo model (resnet18, resnet34, resnet50, resnet101, resnet152 as in He et al. 2016; "
    "resnet50_v1.5, resnet101_v1.5, resnet152_v1.5 as in torchvision; resnext50_32x4d, "
    "wide_resnet50_2, mobilenet_v2, small_residual) or one of the paper's Tables 1-2 (A .. J, "
    "B', D', E', J'); a notation string such as \"(7,64)/2 3/3 (5,128) 2/2 (3,256)x3\"; a JSON "
    "file written by budgetnet; or FILE.py:NAME, a function or class in your Python file that "
    "returns a torch.nn.Module when called without arguments, imported with Arch.from_module at "
    "--input (default 3x224x224). FILE.py is executed to import it: give only files you trust"
)
#: The input shape a FILE.py:NAME module is imported at when no --input is given.
MODULE_INPUT_SHAPE = (3, 224, 224)
_MODULE_SPEC = re.compile(r"(?P<file>.*\.py)(?::(?P<name>.*))?")
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


#: The values of every command's ``--norm``; ``none`` is stored as ``None``, the library's spelling.
NORM_CHOICES = ("none", "batch")
NORM_HELP = (
    "none (default: the paper's conv + ReLU, or bn where the SPEC says so) or batch (BatchNorm after every conv)"
)


class NormChoice(argparse.Action):
    """``--norm``: argparse checks the value against :data:`NORM_CHOICES`; ``none`` is stored as
    ``None``, which :func:`budgetnet.build`, ``fit`` and ``search`` take.

    Example:
        >>> parser = argparse.ArgumentParser()
        >>> _ = parser.add_argument("--norm", choices=NORM_CHOICES, action=NormChoice)
        >>> parser.parse_args(["--norm", "none"]).norm, parser.parse_args(["--norm", "batch"]).norm
        (None, 'batch')
    """

    def __call__(self, parser, namespace, values, option_string=None):
        setattr(namespace, self.dest, None if values == "none" else values)


def add_norm_argument(parser) -> None:
    """``--norm none|batch`` (default none, stored as ``None``), the same on every command."""
    parser.add_argument("--norm", choices=NORM_CHOICES, action=NormChoice, help=NORM_HELP)


def add_threads_argument(parser, workers: bool = False) -> None:
    """``--threads N``: torch CPU threads, checked and applied by
    :func:`budgetnet.pytorch.device.set_threads` (``workers``: the help speaks of ``--workers``)."""
    share = ", divided among the --workers" if workers else ""
    parser.add_argument(
        "--threads", type=int, metavar="N",
        help=f"torch CPU threads (default: $OMP_NUM_THREADS when set, else the cores this process may use{share}; "
        "more than the cores is allowed, with a warning)",
    )  # fmt: skip


def warn_if_busy(threads: int, load: float | None = None, cores: int | None = None) -> str | None:
    """On a terminal, warn when other work already keeps every core busy and this process runs
    several torch threads: they then wait for each other's turns (measured several times
    slower than one thread, docs/benchmarks.md "threads"). Returns the warning's text.

    Example:
        >>> warn_if_busy(1, load=9.0, cores=2) is None  # one thread waits for nobody
        True
    """
    import os
    import sys
    import warnings

    from budgetnet.pytorch.device import available_cores

    load = os.getloadavg()[0] if load is None else load
    cores = available_cores() if cores is None else cores
    if threads < 2 or load < cores:
        return None
    text = (
        f"this machine is busy (load {load:.1f} on {cores} cores): {threads} torch threads per training take "
        "turns with the other work, often several times slower than --threads 1"
    )
    if sys.stderr.isatty():
        warnings.warn(text, UserWarning, stacklevel=2)
    return text


def parse_shape(text: str) -> tuple[int, int, int]:
    """``"3x224x224"`` or ``"3,224,224"`` -> ``(3, 224, 224)`` (argparse type).

    Example:
        >>> parse_shape("1x28x28")
        (1, 28, 28)
    """
    parts = text.replace(",", "x").split("x")
    ascii_digits = all(part.isascii() and part.isdigit() for part in parts)  # int() also reads '\uff13' and ' 3'
    shape = tuple(int(part) for part in parts) if ascii_digits else ()
    if len(shape) != 3 or min(shape) < 1:
        raise argparse.ArgumentTypeError(f"input shape {text!r}: expected CxHxW such as 3x224x224")
    return shape


def load_arch(spec: str, input_shape: Sequence[int] | None = None, num_classes: int | None = None) -> Arch:
    """Resolve a SPEC: a zoo or paper model name, FILE.py:NAME, a JSON file, or a notation string.

    Raises:
        ArchError: a missing file, or a FILE.py:NAME that cannot give a torch module (see
            :func:`module_from_file`); the notation and JSON readers raise their own errors.

    Example:
        >>> load_arch("J'").depth
        11
        >>> load_arch("resnet50", num_classes=10).num_classes
        10
    """
    from budgetnet.graph import zoo

    module_spec = _MODULE_SPEC.fullmatch(spec)
    if spec in zoo.PAPER_MODELS or spec in zoo.ZOO:
        arch = zoo.get(spec)
    elif module_spec:
        module = module_from_file(module_spec["file"], module_spec["name"], spec)
        arch = Arch.from_module(module, MODULE_INPUT_SHAPE if input_shape is None else input_shape)
        return arch if num_classes is None else arch.with_input(num_classes=num_classes)
    elif spec.endswith(".json") or _is_file(spec):
        if not _is_file(spec):
            raise ArchError(f"SPEC {spec!r}: no such file; expected a JSON file written by budgetnet")
        arch = Arch.load(spec)
    elif re.fullmatch(r"[A-Za-z_][\w.'-]*", spec) and not re.fullmatch(r"(max|avg)?spp|gap|flat|fc\d+", spec):
        known = ", ".join([*zoo.PAPER_MODELS, *zoo.ZOO])
        raise ArchError(f"SPEC {spec!r} is not a model name ({known}), a file or a notation such as (3,64) 2/2 gap")
    else:
        arch = parse(spec) if input_shape is None else parse(spec, input_shape)
    if input_shape is not None or num_classes is not None:
        arch = arch.with_input(input_shape, num_classes)
    return arch


def module_from_file(path: str, name: str | None, spec: str | None = None):
    """Execute the Python file ``path`` and call its function or class ``name`` without arguments.

    The file runs as a module (its own folder first on ``sys.path``), as ``python FILE.py``
    would run it, except that ``__name__`` is not ``"__main__"`` and no ``__pycache__`` is
    written next to it. Only the user's own file, named explicitly, is executed.

    Raises:
        ArchError: naming the SPEC and the file or function, when ``name`` is missing or not
            an identifier, the file does not exist, importing it or calling ``name`` raises or
            exits (``sys.exit``, ``exit()``, ``os._exit``: see :func:`_exits_refused`),
            ``name`` is not defined or not callable, or the call returns no ``torch.nn.Module``.

    Example:
        >>> module_from_file("no_such_model.py", "build")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        budgetnet.errors.ArchError: SPEC 'no_such_model.py:build': no such file 'no_such_model.py'; expected ...
    """
    spec = spec or f"{path}:{name}"
    if not name or not _IDENTIFIER.fullmatch(name):
        raise ArchError(
            f"SPEC {spec!r}: name={name!r} is invalid; expected FILE.py:NAME with NAME a function or "
            "class of the file, such as model.py:build"
        )
    file = Path(path)
    if not _is_file(path):
        raise ArchError(f"SPEC {spec!r}: no such file {path!r}; expected a Python file that defines {name}")
    import importlib.util

    import torch

    if importlib.util.find_spec("torchvision") is not None:  # timm and user files import it: see import_torchvision
        from budgetnet.pytorch.importer import import_torchvision

        import_torchvision()
    module_name, folder = "_budgetnet_user_module", str(file.resolve().parent)
    loader = importlib.util.spec_from_file_location(module_name, file)
    namespace = importlib.util.module_from_spec(loader)
    sys.modules[module_name] = namespace  # dataclasses and pickling look the module up there
    sys.path.insert(0, folder)
    writes_bytecode, sys.dont_write_bytecode = sys.dont_write_bytecode, True  # no __pycache__ left by the user's file
    try:
        with _exits_refused():
            loader.loader.exec_module(namespace)
    except (_Exited, SystemExit) as error:
        raise ArchError(
            f"SPEC {spec!r}: {path} exited ({_exit_status(error)}) while being imported; expected a file that "
            f"defines {name} and returns (put a script's own run under if __name__ == '__main__':)"
        ) from None
    except Exception as error:
        raise ArchError(f"SPEC {spec!r}: importing {path} raised {type(error).__name__}: {error}") from None
    finally:
        sys.dont_write_bytecode = writes_bytecode
        if folder in sys.path:
            sys.path.remove(folder)
        sys.modules.pop(module_name, None)
    factory = getattr(namespace, name, None)
    if not callable(factory):
        defined = sorted(key for key, value in vars(namespace).items() if callable(value) and not key.startswith("_"))
        what = "is not defined" if factory is None else f"is not callable (type {type(factory).__name__})"
        raise ArchError(
            f"SPEC {spec!r}: {name} {what} in {path}; expected a function or class returning a "
            f"torch.nn.Module (the file defines: {', '.join(defined) or 'nothing callable'})"
        )
    try:
        with _exits_refused():
            module = factory()
    except (_Exited, SystemExit) as error:
        raise ArchError(
            f"SPEC {spec!r}: calling {name}() from {path} exited ({_exit_status(error)}); expected it to return a "
            "torch.nn.Module"
        ) from None
    except Exception as error:
        raise ArchError(f"SPEC {spec!r}: calling {name}() from {path} raised {type(error).__name__}: {error}") from None
    if not isinstance(module, torch.nn.Module):
        raise ArchError(
            f"SPEC {spec!r}: {name}() from {path} returned {type(module).__name__}; expected a torch.nn.Module"
        )
    return module


def _is_file(text: str) -> bool:
    """``Path(text).is_file()``, False for a text that cannot name a file: longer than the
    system allows (``OSError: File name too long``) or holding a NUL byte."""
    try:
        return Path(text).is_file()
    except (OSError, ValueError):
        return False


class _Exited(BaseException):
    """``os._exit(status)`` called by a user's file: raised instead, so that it is reported."""

    def __init__(self, status):
        super().__init__(status)
        self.status = status


@contextlib.contextmanager
def _exits_refused():
    """Turn ``os._exit`` into :class:`_Exited` while a user's file runs.

    ``sys.exit`` and ``exit()`` raise ``SystemExit``, which the callers catch; ``os._exit``
    ends the process at once, so it is replaced for the duration (in ``os`` and in ``posix``,
    where ``from posix import _exit`` would find it). This costs nothing per import, unlike
    a trial import in a child process; a file that ends the process another way (a signal to
    itself, ``os.abort``, C code) is not caught.
    """
    modules = [module for module in (os, sys.modules.get("posix"), sys.modules.get("nt")) if module is not None]
    original = os._exit

    def refused(status):
        raise _Exited(status)

    for module in modules:
        module._exit = refused
    try:
        yield
    finally:
        for module in modules:
            module._exit = original


def _exit_status(error: BaseException) -> str:
    """``status N`` of a ``SystemExit`` or an ``os._exit``, as the shell would see it."""
    if isinstance(error, _Exited):
        return f"status {error.status}, os._exit"
    code = error.code
    if code is None or isinstance(code, int):
        return f"status {code or 0}"
    return f"status 1, sys.exit({code!r})"


def print_json(data) -> None:
    """Write ``data`` as indented JSON to stdout (values JSON does not know as their ``str``).

    Example:
        >>> print_json({"shape": (1, 8, 8)})
        {
          "shape": [
            1,
            8,
            8
          ]
        }
    """
    json.dump(data, sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")
