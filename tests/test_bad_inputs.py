"""A sweep of bad inputs: every CLI command and the public functions.

Each case names the :class:`~budgetnet.BudgetNetError` subclass it must raise and a piece of
the message that names the field and the value. The CLI cases run in-process
(``budgetnet.cli.main``) in one workspace holding a real study database, its kept weights,
a checkpoint, an export target and files that only look like them; every case checks exit
status 2, one ``budgetnet CMD: error: ...`` line and no traceback on stderr, the exact error
class (spied on the subcommand), and that no file of the workspace changed (SHA-256 before and
after). A few cases run as subprocesses, and Hypothesis draws `budgetnet show` arguments.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import sqlite3
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

import budgetnet
from budgetnet import cli
from budgetnet.errors import (
    ArchError,
    BudgetError,
    BudgetNetError,
    CheckpointError,
    ConfirmError,
    DataError,
    DeviceError,
    ExportError,
    LatencyError,
    LayerSpecError,
    MemoryLimitError,
    NotationError,
    RewriteError,
    SearchError,
    ShapeError,
    StorageError,
    TrainingError,
    UnsupportedModuleError,
)

HUGE = "(3,100000000000) gap"
#: 300 characters of notation with no slash: too long to be a file name (255 on Linux).
LONG_NOTATION = "(3,8) " * 50
DEEP_TEXT = "res[" * 240 + "(3,8)" + "]" * 240
DIGITS_400 = "9" * 400
SEED_2_70 = str(2**70)
TINY_TRAIN = ["--image-size", "8", "--limit", "30", "--epochs", "1", "--no-progress"]
NO_GPU_7 = torch.cuda.device_count() <= 7


# -- the workspace ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """A directory as a user leaves it after a search and a training run, plus look-alikes."""
    import optuna

    root = tmp_path_factory.mktemp("workspace")
    data = budgetnet.load_data("digits", image_size=8, limit=30)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    budgetnet.search("small", data, n_trials=1, epochs=1, seed=0, progress=False, study_name="s",
                     storage=str(root / "budgetnet.db"), keep_weights=root / "weights")  # fmt: skip
    with sqlite3.connect(root / "budgetnet.db") as connection:  # everything into the file: the -wal is empty
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    arch = budgetnet.parse("(3,4) gap", input_shape=(1, 8, 8), num_classes=10)
    budgetnet.fit(arch, data, epochs=1, batch_size=10, progress=False, checkpoint=root / "run.pt")
    budgetnet.parse("(3,4) 2/2 (3,8) gap", input_shape=(1, 8, 8), num_classes=10).save(root / "found.json")
    (root / "garbage.db").write_bytes(b"garbage")
    (root / "garbage.json").write_text("not json at all")
    (root / "binary.json").write_bytes(b"\xff\xfe\x00\x81 not text")
    (root / "null.json").write_text("null")
    (root / "garbage.pt").write_bytes(b"garbage")
    (root / "garbage.journal").write_text("garbage\n")
    (root / "a_file").write_text("a plain file")
    (root / "a_dir").mkdir()
    (root / "empty_dir").mkdir()
    (root / "idx_garbage").mkdir()
    for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
                 "t10k-labels-idx1-ubyte"):  # fmt: skip
        (root / "idx_garbage" / name).write_bytes(b"garbage")
    with sqlite3.connect(root / "contacts.db") as connection:
        connection.execute("CREATE TABLE contacts (name TEXT)")
    # issue 20: a JSON spec nested 300 deep, files that exit while being imported, image bombs
    layer = {"type": "conv", "kernel_size": 3, "out_channels": 8}
    for _ in range(300):
        layer = {"type": "res", "body": [layer]}
    (root / "deep.json").write_text(json.dumps({"input_shape": [3, 32, 32], "layers": [layer, {"type": "spp", "levels": [1]}]}))
    (root / "exits.py").write_text("import os\nos._exit(0)\n")
    (root / "sysexit.py").write_text("import sys\nsys.exit(3)\n")
    (root / "plainexit.py").write_text("exit()\n")
    (root / "build_exits.py").write_text("def build():\n    from os import _exit\n    _exit(5)\n")
    for name, (width, height) in {"bomb": (15000, 15000), "big": (10001, 10001)}.items():
        for label in "ab":
            (root / name / label).mkdir(parents=True)
            (root / name / label / "ok.png").write_bytes(png_header(8, 8))  # never read: the bomb comes first
        (root / name / "a" / "aa.png").write_bytes(png_header(width, height))
    (root / "latency_cache").mkdir()
    from budgetnet.cost.latency import LatencyTable

    (root / "latency_cache" / LatencyTable("cpu", cache_dir=False).file_name()).write_text("{broken")
    return root


def png_header(width: int, height: int) -> bytes:
    """A PNG file of a few dozen bytes whose header says ``width`` x ``height`` (grey, 8 bit)
    and whose data is empty: what a decompression bomb looks like before it is decoded."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


def snapshot(root: Path) -> dict[str, str]:
    """SHA-256 of every file under ``root`` (SQLite's -wal / -shm side files left out: they hold
    no committed data, and a reader may create them)."""
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file() and not path.name.endswith(("-wal", "-shm"))
    }


def wal_sizes(root: Path) -> dict[str, int]:
    return {str(path.relative_to(root)): path.stat().st_size for path in root.rglob("*-wal")}


@dataclass(frozen=True)
class Case:
    argv: tuple
    error: type
    message: str
    skip_if: bool = False


def case(*argv, error, message, skip_if=False):
    return pytest.param(Case(tuple(argv), error, message, skip_if), id=" ".join(argv)[:70])


# -- every command ----------------------------------------------------------------------------------
CLI_CASES = [
    # show: notation, JSON specs, options
    case("show", "(3,\uff18)", error=NotationError, message="notation column 1: malformed conv"),
    case("show", "(3,8) +", error=NotationError, message="notation column 7: a trailing '+' joins nothing"),
    case("show", "", error=NotationError, message="empty notation"),
    case("show", "(3,8", error=NotationError, message="notation column 1: malformed conv"),
    case("show", "(3,8)x0", error=NotationError, message="repeat count=0 is invalid"),
    case("show", "(3,8) nofc gap", error=NotationError, message="notation column 7: nofc (no final classifier) ends"),
    case("show", "(3,8)x1001", error=NotationError, message="repeat count=1001 is invalid"),
    case("show", "(3,8) fc(10,1.5)", error=NotationError, message="dropout=1.5 is invalid"),
    case("show", "(3,8) spp(0)", error=NotationError, message="levels=0 is invalid"),
    case("show", "(3,8) lstm", error=NotationError, message="unknown layer 'lstm'"),
    case("show", "(99,8)p0", "--input", "1x8x8", error=ShapeError, message="conv1 ((99,8)p0): kernel_size=99"),
    case("show", "(3,8) 2/2 2/2 2/2 spp(2,1)", "--input", "1x8x8", error=ShapeError,
         message="spp1: spp level 2 is finer than the 1x1 map it pools (input 1x8x8); expected levels of at most 1"),
    case("show", "(3,8) gap (3,8)", error=ArchError, message="layer 3 (conv) comes after the map was pooled"),
    case("show", "nothere.json", error=ArchError, message="SPEC 'nothere.json': no such file"),
    case("show", "garbage.json", error=ArchError, message="garbage.json: arch JSON: not valid JSON"),
    case("show", "binary.json", error=ArchError, message="arch file 'binary.json' cannot be read: 'utf-8' codec"),
    case("show", "null.json", error=ArchError, message="top level is NoneType; expected an object"),
    case("show", "garbage.db", error=ArchError, message="garbage.db: arch JSON: not valid JSON"),
    case("show", "A", "--classes", "0", error=LayerSpecError, message="num_classes=0 is invalid"),
    case("show", "A", "--classes", "-5", error=LayerSpecError, message="num_classes=-5 is invalid"),
    case("show", "A", "--baseline", "(3,", error=NotationError, message="malformed conv"),
    case("show", "A", "--baseline", "nothere.json", error=ArchError, message="SPEC 'nothere.json': no such file"),
    case("show", "A", "--max-memory", "lots", error=MemoryLimitError, message="max_memory='lots' is invalid"),
    case("show", "A", "--batch-size", "0", error=MemoryLimitError, message="batch_size=0 is invalid"),
    # search: spaces, budgets, tolerances, objectives, data, storage, study names, memory
    case("search", "--trials", "0", error=SearchError, message="--trials 0 is invalid"),
    case("search", "--workers", "0", error=SearchError, message="--workers 0 is invalid"),
    case("search", "--timeout", "-1", error=SearchError, message="--timeout -1.0 is invalid"),
    case("search", "--limit", "30", "--budget", "abc", error=BudgetError, message="budget='abc' is invalid"),
    case("search", "--limit", "30", "--budget=-5M", error=BudgetError, message="budget='-5M' is invalid"),
    case("search", "--limit", "30", "--budget", "0x", error=BudgetError, message="budget ratio=0.0 is invalid"),
    case("search", "--limit", "30", "--budget", "1e-9x", error=BudgetError, message="budget"),
    case("search", "--limit", "30", "--tolerance", "-0.1", error=BudgetError, message="tolerance=-0.1 is invalid"),
    case("search", "--limit", "30", "--tolerance", "nan", error=BudgetError, message="tolerance=nan is invalid"),
    case("search", "--limit", "30", "--space", "nas", error=SearchError, message="'nas'"),
    case("search", "--limit", "30", "--objectives", "speed", "--storage", "x.db", error=SearchError,
         message="objective='speed' is unknown; expected one of accuracy, macs, latency"),  # fmt: skip
    case("search", "--limit", "30", "--recipe", "fast", "--storage", "x.db", error=TrainingError,
         message="recipe='fast' is invalid"),  # fmt: skip
    case("search", "--data", "mnist", error=DataError, message="data='mnist' is invalid"),
    case("search", "--data", "idx:/no/such/dir", error=DataError, message="data path '/no/such/dir' does not exist"),
    case("search", "--data", "folder:a_file", error=DataError, message="a_file"),
    case("search", "--limit", "0", error=DataError, message="limit=0 is invalid"),
    case("search", "--limit", "30", "--storage", "results", error=StorageError,
         message="storage='results' is not a URL or a storage file"),  # fmt: skip
    case("search", "--limit", "30", "--storage", "nodir/x.db", error=StorageError,
         message="directory '" ),  # fmt: skip
    case("search", "--limit", "30", "--storage", "garbage.db", error=StorageError,
         message="garbage.db is not an SQLite database (it starts with b'garbage')"),  # fmt: skip
    case("search", "--limit", "30", "--storage", "contacts.db", error=StorageError,
         message="contacts.db is another program's SQLite database (tables ['contacts'])"),  # fmt: skip
    case("search", "--limit", "30", "--storage", "garbage.journal", error=StorageError,
         message="garbage.journal is not an Optuna journal"),  # fmt: skip
    case("search", "--limit", "30", "--storage", "postgresql+psycopg2://me:pw@127.0.0.1:1/optuna",
         error=StorageError, message="cannot connect to 127.0.0.1:1"),  # fmt: skip
    case("search", "--limit", "30", "--study", "s", "--epochs", "3", error=SearchError,
         message="study 's' was created with space="),  # fmt: skip
    case("search", "--limit", "30", "--baseline", "(3,\uff18)", error=NotationError, message="malformed conv"),
    case("search", "--limit", "30", "--space", "small", "--baseline", HUGE, "--storage", "x.db", error=BudgetError,
         message="is out of reach of the small space"),  # fmt: skip
    case("search", "--limit", "30", "--baseline", HUGE, "--storage", "x.db", error=SearchError,
         message="replacement space: no layer-replacement rule rewrites the baseline (3,100000000000) gap"),  # fmt: skip
    case("search", "--limit", "30", "--max-memory", "1K", "--storage", "x.db", error=MemoryLimitError,
         message="over max_memory=1.0 KiB (--max-memory)"),  # fmt: skip
    case("search", "--limit", "30", "--max-memory", "xyz", "--storage", "x.db", error=MemoryLimitError,
         message="max_memory='xyz' is invalid"),  # fmt: skip
    case("search", "--limit", "30", "--storage", "postgresql+psycopg2://me:pw@[::1", error=StorageError,
         message="is not a valid database URL"),  # fmt: skip
    case("search", "--plot-dir", "a_file", error=SearchError, message="--plot-dir 'a_file' cannot be a directory"),
    case("search", "--limit", "30", "--heartbeat", "0", error=SearchError,
         message="--heartbeat 0 is invalid; expected whole seconds from 1 to 86400"),  # fmt: skip
    case("search", "--limit", "30", "--device", "gpu", "--storage", "x.db", error=DeviceError,
         message="device='gpu'"),  # fmt: skip
    # results and export: storage files, study names, trials, export targets
    case("results", "--storage", "garbage.db", error=StorageError, message="is not an SQLite database"),
    case("results", "--storage", "missing.db", error=StorageError, message="missing.db: no such file"),
    case("results", "--storage", "contacts.db", error=StorageError, message="another program's SQLite database"),
    case("results", "--storage", "garbage.journal", error=StorageError, message="is not an Optuna journal"),
    case("results", "--storage", "journal:", error=StorageError, message="storage='journal:': expected journal:PATH"),
    case("results", "--study", "nosuch", error=SearchError, message="study='nosuch' does not exist; expected one of"),
    case("results", "--top", "0", error=SearchError, message="--top 0 is invalid"),
    case("results", "--plot-dir", "a_file", error=SearchError, message="--plot-dir 'a_file' cannot be a directory"),
    case("results", "--storage", "sqlite://", error=StorageError, message="an in-memory SQLite database keeps nothing"),
    case("search", "--limit", "30", "--storage", "sqlite:///:memory:", error=StorageError,
         message="storage sqlite:///:memory:: an in-memory SQLite database keeps nothing"),  # fmt: skip
    case("export", "--trial", "99", "-o", "out.json", error=ExportError, message="99"),
    case("export", "--trial", "abc", "-o", "out.json", error=ExportError, message="'abc'"),
    case("export", "--trial", "-1", "-o", "out.json", error=ExportError, message="-1"),
    case("export", "--study", "nosuch", error=SearchError, message="study='nosuch' does not exist"),
    # confirm and the search's confirmation, samplers and controls; proxy
    case("confirm", "--top", "0", error=ConfirmError, message="--top '0' is invalid; expected a whole number >= 1"),
    case("confirm", "--seeds", "-1", error=ConfirmError, message="--seeds '-1' is invalid"),
    case("confirm", "--seeds", "1.5", error=ConfirmError, message="--seeds '1.5' is invalid"),
    case("confirm", "--storage", "missing.db", error=StorageError, message="missing.db: no such file"),
    case("confirm", "--study", "nosuch", error=SearchError, message="study='nosuch' does not exist"),
    case("search", "--confirm", "0", error=ConfirmError, message="--confirm '0' is invalid"),
    case("search", "--confirm-seeds", "two", error=ConfirmError, message="--confirm-seeds 'two' is invalid"),
    case("search", "--limit", "30", "--sampler", "bayes", error=SearchError, message="sampler='bayes' is unknown"),
    case("search", "--limit", "30", "--sampler", "nsga2", error=SearchError,
         message="sampler='nsga2' is for several objectives"),  # fmt: skip
    case("search", "--limit", "30", "--control", "random", "--objectives", "accuracy,macs", error=SearchError,
         message="control='random' needs one objective"),  # fmt: skip
    case("proxy", "small", "--archs", "3", error=ConfirmError, message="--archs '3' is invalid"),
    case("proxy", "small", "--long-epochs", "0", error=ConfirmError, message="--long-epochs '0' is invalid"),
    case("proxy", "nas", "--limit", "30", error=SearchError, message="'nas'"),
    # recover: storages, study names, worker names and ages
    case("recover", "--storage", "garbage.db", error=StorageError, message="is not an SQLite database"),
    case("recover", "--storage", "garbage.journal", error=StorageError, message="is not an Optuna journal"),
    case("recover", "--storage", "missing.db", error=StorageError, message="missing.db: no such file"),
    case("recover", "--study", "nosuch", error=SearchError, message="study='nosuch' does not exist"),
    case("recover", "--worker", "nohost", error=SearchError, message="worker='nohost' is invalid; expected HOST:PID"),
    case("recover", "--older-than", "-5", error=SearchError, message="older_than=-5.0 is invalid"),
    case("export", "--storage", "garbage.db", error=StorageError, message="is not an SQLite database"),
    case("export", "-o", "nodir/out.json", error=ExportError, message="directory 'nodir' does not exist"),
    case("export", "-o", "a_dir", error=ExportError, message="output='a_dir' is a directory; expected a file path"),
    case("export", "--format", "pt", "-o", "a_dir", error=ExportError, message="output='a_dir' is a directory"),
    # train: specs, memory, batch sizes, recipes, data paths and formats, checkpoints, devices
    case("train", HUGE, "--epochs", "1", error=MemoryLimitError,
         message="(3,100000000000) gap: training at batch 32 needs about"),  # fmt: skip
    case("train", "(3,4) gap", *TINY_TRAIN, "--max-memory", "1K", error=MemoryLimitError,
         message="over max_memory=1.0 KiB (--max-memory)"),  # fmt: skip
    case("train", "(3,4) gap", *TINY_TRAIN, "--max-memory", "1X", error=MemoryLimitError,
         message="max_memory='1X' is invalid"),  # fmt: skip
    case("train", "(3,4) gap", *TINY_TRAIN, "--batch-size", "100000000", error=TrainingError,
         message="batch_size=100000000 is larger than the training split (30 images)"),  # fmt: skip
    case("train", "(3,4) gap", *TINY_TRAIN, "--batch-size", "0", error=TrainingError,
         message="batch_size=0 is invalid"),  # fmt: skip
    case("train", "(3,4) gap", *TINY_TRAIN, "--epochs", "0", error=TrainingError, message="epochs=0 is invalid"),
    case("train", "(3,4) gap", *TINY_TRAIN, "--lr", "0", error=TrainingError, message="lr=0.0 is invalid"),
    case("train", "(3,4) gap", *TINY_TRAIN, "--lr", "nan", error=TrainingError, message="lr=nan is invalid"),
    case("train", "(3,4) gap", *TINY_TRAIN, "--val-fraction", "1.5", error=DataError,
         message="val_fraction=1.5 is invalid"),  # fmt: skip
    case("train", "(3,4) gap", *TINY_TRAIN, "--seed", "-1", error=TrainingError, message="seed=-1 is invalid"),
    case("train", "(3,4) gap", "--limit", "0", error=DataError, message="limit=0 is invalid"),
    case("train", "(3,4) gap", "--image-size", "0", error=DataError, message="image_size=0 is invalid"),
    case("train", "(3,4) 2/2 (3,8) gap", "--image-size", "1", "--limit", "30", error=ShapeError,
         message="the feature map would shrink below 1 pixel"),  # fmt: skip
    case("train", "(3,4) gap", "--data", "cifar:/no/such", error=DataError, message="'/no/such' does not exist"),
    case("train", "(3,4) gap", "--data", "idx:idx_garbage", error=DataError, message="has no IDX header"),
    case("train", "(3,4) gap", "--data", "folder:empty_dir", error=DataError, message="empty_dir"),
    case("train", "(3,4) gap", *TINY_TRAIN, "--checkpoint", "garbage.pt", error=CheckpointError,
         message="checkpoint 'garbage.pt' cannot be read"),  # fmt: skip
    case("train", "(3,8) gap", *TINY_TRAIN, "--checkpoint", "run.pt", error=CheckpointError,
         message="checkpoint 'run.pt' belongs to another architecture: it holds '(3,4) gap'"),  # fmt: skip
    case("train", "(3,4) gap", *TINY_TRAIN, "--checkpoint", "found.json", error=CheckpointError,
         message="checkpoint 'found.json' cannot be read"),  # fmt: skip
    case("train", "(3,4) gap", *TINY_TRAIN, "--checkpoint", "a_dir", error=CheckpointError,
         message="checkpoint 'a_dir' cannot be read"),  # fmt: skip
    case("train", "(3,4) gap", *TINY_TRAIN, "--device", "cuda:7", error=DeviceError, message="device='cuda:7'",
         skip_if=not NO_GPU_7),  # fmt: skip
    case("train", "garbage.json", *TINY_TRAIN, error=ArchError, message="not valid JSON"),
    # latency: specs, settings, memory, caches
    case("latency", "A", "--batch-size", "0", error=LatencyError, message="batch_size=0 is invalid"),
    case("latency", "A", "--repeats", "0", error=LatencyError, message="repeats=0 is invalid"),
    case("latency", "A", "--warmup", "-1", error=LatencyError, message="warmup=-1 is invalid"),
    case("latency", "A", "--device", "gpu", error=DeviceError, message="device='gpu'"),
    case("latency", HUGE, "--input", "1x8x8", error=MemoryLimitError,
         message="(3,100000000000) gap: inference at batch 1 needs about"),  # fmt: skip
    case("latency", HUGE, "--input", "1x8x8", "--mode", "train", "--batch-size", "2", error=MemoryLimitError,
         message="training at batch 2 needs about"),  # fmt: skip
    case("latency", "(3,4) gap", "--input", "1x8x8", "--table", "--cache-dir", "a_file", error=LatencyError,
         message="a_file"),  # fmt: skip
    case("latency", "(3,4) gap", "--input", "1x8x8", "--table", "--cache-dir", "latency_cache",
         "--repeats", "1", error=LatencyError, message="cannot be read (Expecting property name"),  # fmt: skip
    case("latency", "(3,\uff18)", error=NotationError, message="malformed conv"),
    # variants: baselines, tolerances, rules
    case("variants", "(3,\uff18)", error=NotationError, message="malformed conv"),
    case("variants", "A", "--tolerance", "-1", error=BudgetError, message="tolerance=-1.0 is invalid"),
    case("variants", "nothere.json", error=ArchError, message="SPEC 'nothere.json': no such file"),
    # issue 20: inputs sized to break the machinery
    case("show", LONG_NOTATION + "lstm", error=NotationError, message="notation column 301: unknown layer 'lstm'"),
    case("show", "x" * 300 + ".py:build", error=ArchError, message="no such file 'xxxxxxxx"),
    case("show", DEEP_TEXT, error=NotationError,
         message="notation column 257: res[ is nested 65 blocks deep; expected at most 64 nested res[...], cat[...] "
                 "or gate[...] blocks (MAX_NESTING)"),  # fmt: skip
    case("show", "deep.json", error=ArchError,
         message="is a block nested 65 deep; expected at most 64 nested res, cat or gate blocks (MAX_NESTING)"),
    case("train", "(3,4) gap", "--data", "folder:bomb", "--epochs", "1", error=DataError,
         message="bomb/a/aa.png' is 225,000,000 pixels; expected at most 100,000,000 pixels (MAX_PIXELS)"),
    case("train", "(3,4) gap", "--data", "folder:big", "--epochs", "1", error=DataError,
         message="big/a/aa.png' is 10001x10001 = 100,020,001 pixels; expected at most 100,000,000 pixels"),
    case("show", "A", "--max-memory", DIGITS_400, error=MemoryLimitError,
         message="(402 characters) is invalid; expected a size in bytes from 1 to 2**63-1 (8 EiB)"),
    case("train", "(3,4) gap", *TINY_TRAIN, "--max-memory", DIGITS_400, error=MemoryLimitError,
         message="max_memory='99999"),
    case("train", "(3,4) gap", *TINY_TRAIN, "--seed", SEED_2_70, error=TrainingError,
         message=f"seed={SEED_2_70} is invalid; expected an integer from 0 to 2**63-1 (9223372036854775807)"),
    case("train", "(3,4) gap", *TINY_TRAIN, "--seed", str(2**63), error=TrainingError,
         message=f"seed={2**63} is invalid"),
    case("search", "--seed", SEED_2_70, error=SearchError,
         message=f"--seed={SEED_2_70} is invalid; expected an integer from 0 to 2**63-1 (9223372036854775807)"),
    case("search", "--seed", str(2**63 - 2), "--trials", "5", error=SearchError,
         message=f"--seed + --trials + --baseline-seeds={2**63 + 4} is invalid"),
    case("search", "--max-memory", DIGITS_400, error=MemoryLimitError,
         message="(402 characters) is invalid; expected a size in bytes from 1 to 2**63-1 (8 EiB)"),
    case("train", "(3,4) gap", "--image-size", SEED_2_70, error=DataError,
         message=f"image_size={SEED_2_70} is invalid; expected at most 10000 pixels a side (MAX_PIXELS)"),
    case("train", "(3,4) gap", "--image-size", "10000", "--limit", "30", error=DataError,
         message="image_size=10000: the 1797 images of 'digits' resized to 10000x10000 need about 669.4 GiB, over"),
    case("latency", "A", "--repeats", SEED_2_70, error=LatencyError,
         message=f"repeats={SEED_2_70} is invalid; expected an integer from 1 to 100000"),
    case("latency", "A", "--warmup", SEED_2_70, error=LatencyError, message="warmup="),
    case("variants", "A", "--steps", "1000", error=BudgetError,
         message="--steps=1000 is invalid; expected an integer from 0 to 20"),
    case("show", "exits.py:build", error=ArchError,
         message="SPEC 'exits.py:build': exits.py exited (status 0, os._exit) while being imported; expected a "
                 "file that defines build and returns"),  # fmt: skip
    case("show", "sysexit.py:build", error=ArchError, message="sysexit.py exited (status 3) while being imported"),
    case("variants", "plainexit.py:build", error=ArchError,
         message="plainexit.py exited (status 0) while being imported"),
    case("train", "exits.py:build", *TINY_TRAIN, error=ArchError, message="exits.py exited (status 0, os._exit)"),
    case("latency", "build_exits.py:build", error=ArchError,
         message="calling build() from build_exits.py exited (status 5, os._exit); expected it to return a "
                 "torch.nn.Module"),  # fmt: skip
]


@pytest.fixture
def spy(monkeypatch):
    """Record the BudgetNetError a subcommand raises (main turns it into a message)."""
    raised: list[BaseException] = []
    for module in cli.COMMANDS:

        def run(args, original=module.run):
            try:
                return original(args)
            except BudgetNetError as error:
                raised.append(error)
                raise

        monkeypatch.setattr(module, "run", run)
    return raised


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("bad", CLI_CASES)
def test_cli_bad_input(bad: Case, workspace, spy, monkeypatch, capsys):
    if bad.skip_if:
        pytest.skip("this machine has the device the case says is missing")
    monkeypatch.chdir(workspace)
    before, wal_before = snapshot(workspace), wal_sizes(workspace)
    status = cli.main(list(bad.argv))
    out, err = capsys.readouterr()
    assert status == 2, (out, err)
    assert len(spy) == 1, err
    error = spy[0]
    assert type(error) is bad.error, f"{type(error).__name__}: {error}"
    assert bad.message in str(error)
    assert f"budgetnet {bad.argv[0]}: error: {error}" in err
    assert "Traceback" not in err and "Traceback" not in out
    assert snapshot(workspace) == before
    assert all(size == wal_before.get(name, 0) for name, size in wal_sizes(workspace).items())  # nothing written


def test_the_sweep_is_wide():
    cases = [param.values[0] for param in CLI_CASES]
    assert len({bad.argv for bad in cases}) == len(cases) >= 60
    assert {bad.argv[0] for bad in cases} == {command.NAME for command in cli.COMMANDS}


# -- argparse refusals: exit 2 with the option named, before any budgetnet code runs ---------------
@pytest.mark.parametrize(
    "argv, message",
    [
        (["show", "A", "--input", "3x0x5"], "input shape '3x0x5': expected CxHxW"),
        (["show", "A", "--input", "\uff13x8x8"], "input shape '\uff13x8x8': expected CxHxW"),
        (["train", "A", "--epochs", "two"], "argument --epochs: invalid int value: 'two'"),
        (["search", "--pruner", "fast"], "argument --pruner: invalid choice: 'fast'"),
        (["export", "--format", "onnx"], "argument --format: invalid choice: 'onnx'"),
        (["variants", "A", "--max-depth", "0"], "--max-depth"),
        (["variants", "A", "--rules", "nosuch"], "argument --rules: invalid choice: 'nosuch'"),
        (["nosuch"], "invalid choice: 'nosuch'"),
    ],
)
def test_argparse_refusals(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and message in err and "Traceback" not in err


# -- as a user runs it: a subprocess from a scratch directory ---------------------------------------
#: The environment of a subprocess that runs this checkout's budgetnet from another directory.
THIS_CHECKOUT = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(budgetnet.__file__).parents[1]),
                                                              os.environ.get("PYTHONPATH", "")])}  # fmt: skip

@pytest.mark.parametrize(
    "argv, message",
    [
        (["results"], "storage file {root}/budgetnet.db is not an SQLite database (it starts with b'garbage')"),
        (["show", "(3,1000000000000)", "--json"], None),
        (["train", HUGE, "--epochs", "1"], "(3,100000000000) gap: training at batch 32 needs about"),
    ],
)
def test_subprocess_from_a_scratch_directory(tmp_path, argv, message):
    (tmp_path / "budgetnet.db").write_bytes(b"garbage")
    before = snapshot(tmp_path)
    result = subprocess.run([sys.executable, "-m", "budgetnet", *argv], capture_output=True, text=True,
                            cwd=tmp_path, timeout=300, env=THIS_CHECKOUT)  # fmt: skip
    assert "Traceback" not in result.stderr
    if message is None:  # show reports what cannot fit, and exits 0
        assert result.returncode == 0 and json.loads(result.stdout)["memory"]["fits"] is False
    else:
        assert result.returncode == 2
        assert result.stderr.startswith(f"budgetnet {argv[0]}: error: ")
        assert message.format(root=tmp_path) in result.stderr
    assert snapshot(tmp_path) == before


# -- the public functions ----------------------------------------------------------------------------
def _small():
    return budgetnet.parse("(3,4) gap", input_shape=(1, 8, 8), num_classes=10)


class Attention(nn.Module):
    """A product of two computed maps (self-attention's): no Arch expresses it."""

    def __init__(self):
        super().__init__()
        self.layers = nn.ModuleList([nn.Conv2d(1, 4, 3), nn.Conv2d(1, 4, 3), nn.Linear(4, 2)])

    def forward(self, x):
        return self.layers[2]((self.layers[0](x) * self.layers[1](x)).mean((2, 3)))


@pytest.fixture(scope="module")
def digits():
    return budgetnet.load_data("digits", image_size=8, limit=30)


FUNCTION_CASES = [
    ("parse int", lambda d: budgetnet.parse(123), NotationError, "expected a notation string, got int"),
    ("parse full-width", lambda d: budgetnet.parse("(\uff13,8)"), NotationError, "malformed conv"),
    ("parse trailing +", lambda d: budgetnet.parse("(3,8)+"), NotationError, "a trailing '+'"),
    ("parse input", lambda d: budgetnet.parse("(3,8)", input_shape=(3, 0, 8)), ArchError, "input_shape"),
    ("from_json", lambda d: budgetnet.Arch.from_json("{"), ArchError, "not valid JSON"),
    ("from_json list", lambda d: budgetnet.Arch.from_json("[]"), ArchError, "top level is list"),
    ("load missing", lambda d: budgetnet.Arch.load("/no/such.json"), ArchError, "/no/such.json"),
    ("complexity str", lambda d: budgetnet.complexity("A"), ArchError, "arch='A' is not a budgetnet.Arch"),
    ("Budget -1", lambda d: budgetnet.Budget(-1), BudgetError, "target_macs=-1 is invalid"),
    ("Budget inf", lambda d: budgetnet.Budget(math.inf), BudgetError, "target_macs=inf is invalid"),
    ("Budget tolerance", lambda d: budgetnet.Budget(10, tolerance=-1), BudgetError, "tolerance=-1 is invalid"),
    ("Budget.parse", lambda d: budgetnet.Budget.parse("lots"), BudgetError, "budget='lots' is invalid"),
    ("Budget.parse x", lambda d: budgetnet.Budget.parse("0.9x"), BudgetError, "is relative; give a baseline"),
    ("Budget.relative", lambda d: budgetnet.Budget.relative("A"), BudgetError, "baseline='A' is not"),
    ("build norm", lambda d: budgetnet.build(_small(), norm="layer"), ArchError, "norm='layer'"),
    ("build str", lambda d: budgetnet.build("A"), ArchError, "'A'"),
    ("from_module lstm", lambda d: budgetnet.Arch.from_module(nn.LSTM(4, 4), input_shape=(1, 8, 8)),
     UnsupportedModuleError, "LSTM"),  # fmt: skip
    ("from_module no head", lambda d: budgetnet.Arch.from_module(nn.Sequential(nn.Conv2d(4, 8, 3, groups=2)),
     input_shape=(4, 8, 8)), UnsupportedModuleError, "returns a feature map, not logits"),  # fmt: skip
    ("from_module dilated", lambda d: budgetnet.Arch.from_module(nn.Sequential(nn.Conv2d(1, 8, 3, dilation=2)),
     input_shape=(1, 8, 8)), UnsupportedModuleError, "dilation"),  # fmt: skip
    ("from_module str", lambda d: budgetnet.Arch.from_module("net", input_shape=(1, 8, 8)), UnsupportedModuleError,
     "module=str is not a torch.nn.Module"),  # fmt: skip
    ("from_module attention", lambda d: budgetnet.Arch.from_module(Attention(), input_shape=(1, 8, 8)),
     UnsupportedModuleError, "the forward of Attention is not a series-parallel graph of layers (arch graph: mul node 2 "
     "multiplies 2 computed branches; expected the input itself times one gate branch (squeeze-excitation); a product of "
     "two computed maps (attention) has no place in an Arch)"),  # fmt: skip
    ("load_data", lambda d: budgetnet.load_data("mnist"), DataError, "data='mnist' is invalid"),
    ("load_data val", lambda d: budgetnet.load_data("digits", val_fraction=2), DataError, "val_fraction=2"),
    ("fit data", lambda d: budgetnet.fit(_small(), "digits"), TrainingError, "data=str is invalid"),
    ("fit recipe", lambda d: budgetnet.fit(_small(), d, "fast"), TrainingError, "recipe='fast' is invalid"),
    ("fit batch", lambda d: budgetnet.fit(_small(), d, batch_size=31, progress=False), TrainingError,
     "batch_size=31 is larger than the training split (30 images)"),  # fmt: skip
    ("fit memory", lambda d: budgetnet.fit(budgetnet.parse(HUGE), d, progress=False), MemoryLimitError,
     "(3,100000000000) gap: training at batch 30 needs about"),  # fmt: skip
    ("evaluate views", lambda d: budgetnet.evaluate(budgetnet.build(_small()), d, views=3), TrainingError,
     "views=3 is invalid"),  # fmt: skip
    ("measure mode", lambda d: budgetnet.measure(_small(), mode="infer"), LatencyError, "mode='infer'"),
    ("measure memory", lambda d: budgetnet.measure(budgetnet.parse(HUGE, input_shape=(1, 8, 8))),
     MemoryLimitError, "inference at batch 1 needs about"),  # fmt: skip
    ("search space", lambda d: budgetnet.search("nas", d, n_trials=1), SearchError, "'nas'"),
    ("search storage", lambda d: budgetnet.search("small", d, n_trials=1, storage="results"), StorageError,
     "storage='results' is not a URL"),  # fmt: skip
    ("search memory", lambda d: budgetnet.search("small", d, n_trials=1, max_memory=0), MemoryLimitError,
     "max_memory=0 is invalid"),  # fmt: skip
    ("variants str", lambda d: budgetnet.variants("A"), BudgetError, "baseline='A' is invalid; expected an Arch"),
    ("rewrite rule", lambda d: budgetnet.rewrite(_small(), "nosuch"), RewriteError, "'nosuch'"),
    # issue 20
    ("parse deep", lambda d: budgetnet.parse("(3,8) " + "cat[" * 65 + "(3,8)|id" + "]" * 65), NotationError,
     "notation column 263: cat[ is nested 65 blocks deep; expected at most 64"),  # fmt: skip
    ("from_json deep", lambda d: budgetnet.Arch.from_json(_deep_json(65)), ArchError,
     "is a block nested 65 deep; expected at most 64"),  # fmt: skip
    ("from_json deep lists", lambda d: budgetnet.Arch.from_json("[" * 100_000), ArchError,
     "nested too deep for the JSON reader; expected at most 64 nested blocks"),  # fmt: skip
    ("load_data seed", lambda d: budgetnet.load_data("digits", seed=2**70), DataError,
     "seed=1180591620717411303424 is invalid; expected an integer from 0 to 2**63-1"),  # fmt: skip
    ("fit seed", lambda d: budgetnet.fit(_small(), d, seed=2**64, progress=False), TrainingError,
     "seed=18446744073709551616 is invalid; expected an integer from 0 to 2**63-1"),  # fmt: skip
    ("parse_bytes digits", lambda d: _parse_bytes(DIGITS_400), MemoryLimitError,
     "expected a size in bytes from 1 to 2**63-1 (8 EiB)"),  # fmt: skip
    ("parse_bytes 2**63", lambda d: _parse_bytes(2**63), MemoryLimitError, f"max_memory={2**63} is invalid"),
    ("measure repeats", lambda d: budgetnet.measure(_small(), repeats=2**70), LatencyError,
     "repeats=1180591620717411303424 is invalid; expected an integer from 1 to 100000"),  # fmt: skip
    ("variants steps", lambda d: budgetnet.variants(_small(), max_steps=1000), BudgetError,
     "max_steps=1000 is invalid; expected an integer from 0 to 20"),  # fmt: skip
    ("variants time_limit", lambda d: budgetnet.variants(_small(), time_limit=-1), BudgetError,
     "time_limit=-1 is invalid; expected a number of seconds > 0, or None"),  # fmt: skip
]


def _deep_json(depth: int) -> str:
    layer = {"type": "conv", "kernel_size": 3, "out_channels": 8}
    for _ in range(depth):
        layer = {"type": "res", "body": [layer]}
    return json.dumps({"input_shape": [1, 8, 8], "layers": [layer, {"type": "spp", "levels": [1]}]})


def _parse_bytes(value):
    from budgetnet.cost.memory import parse_bytes

    return parse_bytes(value)


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("name, call, error, message", FUNCTION_CASES, ids=[c[0] for c in FUNCTION_CASES])
def test_public_function_bad_input(name, call, error, message, digits, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a search's default storage would land here
    with pytest.raises(BudgetNetError) as raised:
        call(digits)
    assert type(raised.value) is error, f"{type(raised.value).__name__}: {raised.value}"
    assert message in str(raised.value)
    assert list(tmp_path.iterdir()) == []


def test_export_and_storage_functions_leave_files_alone(workspace):
    from budgetnet.studies.export import export_trial
    from budgetnet.studies.storage import load_study, open_storage

    before = snapshot(workspace)
    study = load_study(open_storage(str(workspace / "budgetnet.db")), "s")
    cases = [
        (lambda: export_trial(study, 99, "json", workspace / "x.json"), ExportError, "99"),
        (lambda: export_trial(study, "best", "onnx", workspace / "x.onnx"), ExportError, "format='onnx' is unknown"),
        (lambda: export_trial(study, "best", "json", workspace / "a_dir"), ExportError, "is a directory"),
        (lambda: open_storage(str(workspace / "garbage.db")), StorageError, "is not an SQLite database"),
        (lambda: load_study(open_storage(str(workspace / "budgetnet.db")), "nosuch"), SearchError, "'nosuch'"),
    ]
    for call, error, message in cases:
        with pytest.raises(error) as raised:
            call()
        assert message in str(raised.value)
    assert snapshot(workspace) == before


# -- Hypothesis over `budgetnet show`'s argument space -----------------------------------------------
NOTATION_CHARS = "()0123456789,/px+ spcfgaxm\uff18\u0663"
option_values = st.one_of(st.integers(-3, 10**12).map(str), st.text("0123456789xKMG.-\uff18", max_size=8))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    spec=st.one_of(st.sampled_from(["A", "J'", "(3,8) gap"]), st.text(NOTATION_CHARS, max_size=24)),
    options=st.lists(st.tuples(st.sampled_from(["--classes", "--batch-size", "--max-memory", "--input"]),
                               option_values), max_size=3),  # fmt: skip
)
def test_show_never_ends_in_a_traceback(spec, options, capsys):
    argv = ["show", spec, *[item for pair in options for item in pair], "--json"]
    try:
        status = cli.main(argv)
    except SystemExit as exit_info:  # argparse: a value that is not an int, a shape that is not CxHxW
        status = exit_info.code
    out, err = capsys.readouterr()
    assert status in (0, 2) and "Traceback" not in err
    if status == 0:
        assert json.loads(out)["memory"]["training_bytes"] > 0
    elif err.startswith("budgetnet show: error: "):
        assert out == ""
    else:
        assert "budgetnet show: error: argument" in err or "usage:" in err


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    command=st.sampled_from(["results", "export"]),
    study=st.one_of(st.none(), st.just("s"), st.text("s-_.\uff53 \u00e9x0", max_size=6)),
    trial=st.one_of(st.none(), st.integers(-2, 5).map(str), st.text("best0-9x\uff10", max_size=5)),
)
def test_results_and_export_never_end_in_a_traceback(workspace, command, study, trial, capsys, monkeypatch):
    """Study names and trial numbers drawn at random: exit 0, 1 (nothing to report) or 2, no
    traceback, and the database, the weights and the export target as they were."""
    monkeypatch.chdir(workspace)
    before = snapshot(workspace)
    argv = [command, *([f"--study={study}"] if study is not None else [])]  # '=': a value may start with '-'
    if command == "export":
        argv += ["-o", "found.json", *([f"--trial={trial}"] if trial is not None else [])]
    status = cli.main(argv)
    out, err = capsys.readouterr()
    assert status in (0, 1, 2) and "Traceback" not in err
    if status == 2:
        assert err.startswith(f"budgetnet {command}: error: ")
    after = snapshot(workspace)
    if command == "export" and status == 0:  # a good request rewrites its target, and nothing else
        assert out.startswith("wrote found.json") and budgetnet.Arch.load(workspace / "found.json")
        after.pop("found.json"), before.pop("found.json")
    assert after == before


# -- issue 20: inputs sized to break the machinery ----------------------------------------------------
def test_a_spec_too_long_to_be_a_path_is_notation(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert cli.main(["show", LONG_NOTATION + "gap", "--input", "1x8x8", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["arch"]["layers"][0]["type"] == "conv"
    assert cli.main(["show", LONG_NOTATION + "gap.json"]) == 2  # a .json name too long to exist
    assert "no such file" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_nesting_limit_is_64_in_notation_and_json():
    inner = "(3,8)"
    for kind in ("res[{}]", "cat[{}|id]", "gate[gpool (1,8) {}]"):
        text = inner
        for _ in range(64):
            text = kind.format(text)
        if kind.startswith("gate"):  # a gate's body works on 1x1: the point is the depth, not the net
            with pytest.raises(BudgetNetError) as raised:
                budgetnet.parse(text, input_shape=(1, 8, 8))
            assert "nested" not in str(raised.value)
        else:
            assert isinstance(budgetnet.parse(text, input_shape=(1, 8, 8), num_classes=10), budgetnet.Arch)
        with pytest.raises(NotationError, match="nested 65 blocks deep; expected at most 64"):
            budgetnet.parse(kind.format(text), input_shape=(1, 8, 8))
    arch = budgetnet.Arch.from_json(_deep_json(64))
    assert budgetnet.Arch.from_json(arch.to_json()) == arch


def test_a_file_that_calls_os_exit_is_reported_by_a_real_process(tmp_path):
    (tmp_path / "exits.py").write_text("import os\nos._exit(0)\n")
    result = subprocess.run([sys.executable, "-m", "budgetnet", "show", "exits.py:build"], capture_output=True,
                            text=True, cwd=tmp_path, timeout=300, env=THIS_CHECKOUT)  # fmt: skip
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr == (
        "budgetnet show: error: SPEC 'exits.py:build': exits.py exited (status 0, os._exit) while being imported; "
        "expected a file that defines build and returns (put a script's own run under if __name__ == '__main__':)\n"
    )
    assert sorted(path.name for path in tmp_path.iterdir()) == ["exits.py"]  # no __pycache__
    assert os._exit.__module__ == "posix"  # put back in this process after the in-process cases


def test_variants_stop_at_a_limit_and_say_which(capsys):
    from budgetnet.rewrites.explore import stop_reason

    graph = budgetnet.variants(budgetnet.zoo.get("A"), max_steps=6, time_limit=0.2)
    assert graph.graph["stopped_by"] == "time_limit" and graph.graph["seconds"] < 5
    assert stop_reason(graph).startswith("stopped early by time_limit=0.2 s at step ")
    status = cli.main(["variants", "A", "--steps", "20", "--max-variants", "30", "--json"])
    out, err = capsys.readouterr()
    assert status == 0 and len(json.loads(out)["nodes"]) == 31
    assert err == (
        "budgetnet variants: cut short by max_variants=30 from step 1 of 20 on (each step keeps at most an equal "
        "share of the limit left), with 30 variants found; "
        "raise --max-variants or lower --steps for the whole walk\n"
    )


BLOCK_OPEN = st.sampled_from(["res[", "cat[", "gate[", "gate[gpool ", "res[(3,8) ", "cat[id|"])
BLOCK_LEAF = st.sampled_from(["(3,8)", "(3,8)bn", "id", "", "2/2", "gap", "(1,8)@sigmoid", "|", "| id", "x2"])
BLOCK_CLOSE = st.sampled_from(["]", "|(3,8)]", "]x2", "]@none", "| id]", ""])


@st.composite
def deep_notation(draw):
    """Blocks nested 0 to 200 deep (the limit is 64), closed or not, after up to 600 characters
    of layers, with junk after; or (one in four) a long random text over the block alphabet."""
    if draw(st.integers(0, 3)) == 0:
        return draw(st.text("res[cat[gate[]|(3,8) id", max_size=2000))
    depth = draw(st.one_of(st.integers(0, 80), st.sampled_from([63, 64, 65, 66, 200])))  # at and past the limit
    opens = draw(st.lists(BLOCK_OPEN, min_size=depth, max_size=depth))
    closes = draw(st.lists(BLOCK_CLOSE, min_size=depth, max_size=depth))
    prefix = "(3,8) " * draw(st.integers(0, 100))
    junk = draw(st.text(NOTATION_CHARS + "[]|", max_size=12))
    return prefix + "".join(opens) + draw(BLOCK_LEAF) + "".join(reversed(closes)) + junk


@settings(max_examples=40, deadline=None)
@given(text=deep_notation())
def test_deep_and_long_notation_is_an_arch_or_a_budgetnet_error(text):
    """Through the CLI's SPEC reader (a file path first): never a RecursionError or OSError."""
    from budgetnet.cli.common import load_arch

    try:
        arch = load_arch(text, (1, 8, 8), 10)
    except BudgetNetError:
        return
    assert isinstance(arch, budgetnet.Arch) and arch.depth >= 0


# -- issue 20: crafted study attributes and a full disk under `budgetnet export` ---------------------
@pytest.mark.parametrize(
    "attrs, fmt, message",
    [
        ({"val_accuracy": "0.93"}, "py", "attribute val_accuracy='0.93' is invalid; expected a number from 0 to 1"),
        ({"epochs": "\ud800"}, "py", r"attribute epochs='\ud800' is invalid; expected a whole number >= 0"),
        ({"epochs": "2\x00"}, "py", r"attribute epochs='2\x00' is invalid"),
        ({"norm": "batch\x00"}, "py", r"attribute norm='batch\x00' is invalid; expected None or 'batch'"),
        ({"weights": 7}, "pt", "attribute weights=7 is invalid; expected a file path"),
    ],
    ids=["string accuracy", "surrogate epochs", "nul epochs", "nul norm", "number weights"],
)
def test_export_of_crafted_attributes_exits_2_and_writes_nothing(tmp_path, monkeypatch, spy, capsys, attrs, fmt, message):
    import optuna

    monkeypatch.chdir(tmp_path)
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # as the workspace sets it: no "[I ...] created" line
    arch = budgetnet.parse("(3,4) gap", input_shape=(1, 8, 8), num_classes=10)
    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 'crafted.db'}", study_name="c", direction="maximize")
    study.add_trial(optuna.create_trial(value=0.9, user_attrs={"arch": arch.to_dict(), "status": "ok", **attrs}))
    status = cli.main(["export", "--storage", "crafted.db", "--study", "c", "--format", fmt, "-o", f"out.{fmt}"])
    out, err = capsys.readouterr()
    assert status == 2 and out == "" and len(spy) == 1 and type(spy[0]) is ExportError
    assert message in str(spy[0]) and err == f"budgetnet export: error: {spy[0]}\n"
    assert [path.name for path in tmp_path.iterdir() if not path.name.startswith("crafted.db")] == []  # no out.*, no temporary


def test_export_onto_a_full_disk_exits_2_and_keeps_the_old_file(workspace, tmp_path, spy, capsys):
    from budgetnet.errors import FileWriteError
    from full_disk import fill, full_tmpfs

    with full_tmpfs(tmp_path) as disk:
        (disk / "found.py").write_text("old")
        fill(disk)
        status = cli.main(["export", "--storage", str(workspace / "budgetnet.db"), "--study", "s", "--format", "py",
                           "-o", str(disk / "found.py")])  # fmt: skip
        err = capsys.readouterr().err
        assert status == 2 and len(spy) == 1 and type(spy[0]) is FileWriteError
        assert err == (
            f"budgetnet export: error: exported model {str(disk / 'found.py')!r} cannot be written: the disk is full "
            "([Errno 28] No space left on device); expected free space there, or another path; the previous file is "
            "unchanged\n"
        )
        assert (disk / "found.py").read_text() == "old" and sorted(p.name for p in disk.iterdir()) == ["filler", "found.py"]


# -- issue 20: a time budget on a loaded machine (measured times injected: nothing is timed) ----------------
def test_search_time_budget_on_noisy_timings_warns_and_says_the_times_in_ms(tmp_path, spy, monkeypatch, capsys):
    from budgetnet.cost import latency

    def timing(*times):  # batch 1, per-run times in ms
        middle = sorted(times)[len(times) // 2]
        return latency.Measurement(middle, middle, 1, "cpu", "forward", len(times), times, (1, 8, 8), "float32")

    # the cheapest candidate: runs of 1-100 ms around 3 (noisy, the 2.1 ms ceiling among them), then 5 ms steady
    # when timed again; the baseline 6 ms steady
    queue = [timing(1, 2, 3, 4, 100), timing(5, 5, 5), timing(6, 6, 6)]
    monkeypatch.setattr(latency, "measure", lambda arch, *args, **kwargs: queue.pop(0))
    monkeypatch.chdir(tmp_path)
    status = cli.main(["search", "--limit", "30", "--budget", "2ms", "--device", "cpu", "--storage", "x.db"])
    out, err = capsys.readouterr()
    assert status == 2 and queue == [] and len(spy) == 1 and type(spy[0]) is BudgetError
    warning, error, *rest = err.splitlines()
    assert rest == [] and "Traceback" not in out
    assert warning.startswith(
        "budgetnet search: warning: time budget 2 ms/image on cpu (forward, batch 1) ±5.0% cannot be enforced "
        "reliably: (3,16) 2/2 (2,8) 2/2 (2,8) 2/2 (2,64) spp(1) measured 3 ms/image, median of 5 runs (middle half "
        "2-4 ms, all 1-100 ms; noisy: the middle half spans 67% of the median, the fastest run was 3x faster than "
        "the median), and the ceiling 2.1 ms lies among its runs"
    )
    assert error == f"budgetnet search: error: {spy[0]}"
    assert error.startswith(
        "budgetnet search: error: budget 2 ms/image on cpu (forward, batch 1) ±5.0% is below every candidate of the "
        "small space: the cheapest by Eqn. (1), (3,16) 2/2 (2,8) 2/2 (2,8) 2/2 (2,64) spp(1), measured 3 ms/image"
    )
    assert "and 5 ms/image, median of 3 runs (middle half 5-5 ms, all 5-5 ms) when timed again, and the baseline, " \
           "(3,16) 2/2 (5,32) 2/2 (3,64)x3 spp(2,1), 6 ms/image" in error  # fmt: skip
    assert "expected a time budget of at least 3 ms/image (its faster median)" in error
    cheapest = budgetnet.parse("(3,16) 2/2 (2,8) 2/2 (2,8) 2/2 (2,64) spp(1)", input_shape=(1, 16, 16), num_classes=10)
    ratio = budgetnet.conv_macs(cheapest) / 2_330_624  # the small baseline's Eqn. (1) cost (tests/search_spaces)
    assert error.endswith(f"; these times are noisy: time on an idle machine (no other jobs, fewer --workers, fewer "
                          f"threads), with more repeats (now 10), or give a MACs budget such as {ratio:.3g}x, which "
                          "does not depend on the machine")  # fmt: skip
    assert sorted(path.name for path in tmp_path.iterdir()) == []  # refused before the study was made


# -- threads and validation limits (issue 19): errors name the value, too many threads warns --------
THREADS_AND_LIMITS = [
    case("train", "(3,4) gap", "--threads", "0", *TINY_TRAIN, error=DeviceError,
         message="threads=0 is invalid; expected a whole number >= 1 (torch CPU threads), or none for the default"),
    case("train", "(3,4) gap", "--threads", "-1", *TINY_TRAIN, error=DeviceError, message="threads=-1 is invalid"),
    case("latency", "A", "--threads", "0", error=DeviceError, message="threads=0 is invalid"),
    case("latency", "A", "--threads", "-1", error=DeviceError, message="threads=-1 is invalid"),
    case("train", "(3,4) gap", "--val-limit", "0", *TINY_TRAIN, error=DataError,
         message="val_limit=0 is invalid; expected an integer >= 1 or None"),
    case("train", "(3,4) gap", "--val-limit", "-5", *TINY_TRAIN, error=DataError, message="val_limit=-5 is invalid"),
    case("search", "--threads", "0", "--limit", "30", "--storage", "x.db", error=DeviceError,
         message="threads=0 is invalid; expected a whole number >= 1 (torch CPU threads)"),
    case("search", "--threads", "-1", "--workers", "2", "--storage", "x.db", error=DeviceError,
         message="threads=-1 is invalid"),
    case("search", "--val-limit", "0", "--limit", "30", "--storage", "x.db", error=DataError,
         message="val_limit=0 is invalid; expected an integer >= 1 or None"),
]  # fmt: skip


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("bad", THREADS_AND_LIMITS)
def test_threads_and_val_limit_bad_input(bad: Case, workspace, spy, monkeypatch, capsys):
    before = torch.get_num_threads()
    test_cli_bad_input(bad, workspace, spy, monkeypatch, capsys)
    assert torch.get_num_threads() == before  # refused before torch was told


@pytest.mark.parametrize(
    "flag, value, message",
    [
        ("--threads", "{cores_plus_one}", "threads={cores_plus_one} is more than the {cores} CPU cores this process "
                                          "may use"),
        ("--val-limit", "100000", "val_limit=100000 is more than the "),
    ],
)  # fmt: skip
def test_too_many_threads_or_val_images_warn_and_run(flag, value, message, capsys, monkeypatch, tmp_path):
    from budgetnet.pytorch.device import available_cores

    monkeypatch.chdir(tmp_path)
    numbers = {"cores": available_cores(), "cores_plus_one": available_cores() + 1}
    before = torch.get_num_threads()
    try:
        status = cli.main(["train", "(3,4) gap", *TINY_TRAIN, flag, value.format(**numbers)])
    finally:
        torch.set_num_threads(before)
    out, err = capsys.readouterr()
    assert status == 0 and "test accuracy" in out
    assert f"budgetnet train: warning: {message.format(**numbers)}" in err and "Traceback" not in err


# -- issue 20, storage: numbers that reach a thread or a server, study names no storage holds ------
STORAGE_CASES = [
    case("search", "--limit", "30", "--heartbeat", "1000000000000", error=SearchError,
         message="--heartbeat 1000000000000 is invalid; expected whole seconds from 1 to 86400"),  # fmt: skip
    case("search", "--limit", "30", "--heartbeat", "-5", error=SearchError,
         message="--heartbeat -5 is invalid; expected whole seconds from 1 to 86400"),  # fmt: skip
    case("search", "--limit", "30", "--storage-retry", "-1", error=SearchError,
         message="--storage-retry -1.0 is invalid; expected seconds from 0 to 86400"),  # fmt: skip
    case("search", "--limit", "30", "--storage-retry", "nan", error=SearchError,
         message="--storage-retry nan is invalid; expected seconds from 0 to 86400"),  # fmt: skip
    case("search", "--limit", "30", "--study", "s" * 600, "--no-baseline", error=SearchError,
         message="has 600 characters; expected at most 512 (what every storage holds)"),  # fmt: skip
    case("search", "--limit", "30", "--study", "bad\x00name", "--no-baseline", error=SearchError,
         message="holds a NUL character"),  # fmt: skip
]


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("bad", STORAGE_CASES)
def test_cli_bad_storage_input(bad: Case, workspace, spy, monkeypatch, capsys):
    test_cli_bad_input(bad, workspace, spy, monkeypatch, capsys)


def test_open_storage_range_checks_heartbeat_and_retry(tmp_path):
    from budgetnet.studies.storage import open_storage

    with pytest.raises(StorageError, match=r"heartbeat_interval=86401 is invalid; expected whole seconds from 1 to 86400"):
        open_storage(tmp_path / "s.db", heartbeat_interval=86401)
    with pytest.raises(StorageError, match=r"retry_seconds=-1 is invalid; expected seconds from 0 to 86400"):
        open_storage(tmp_path / "s.db", retry_seconds=-1)
    assert not (tmp_path / "s.db").exists()  # refused before the file is made
