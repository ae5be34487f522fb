"""budgetnet.studies.export: the standalone .py equals the builder's module, JSON and weights of a
trial, and trials that cannot be exported."""

from __future__ import annotations

import ast
import importlib.util
import json
import os

import optuna
import pytest
import torch
from optuna.trial import TrialState

import budgetnet
from budgetnet.errors import ExportError, FileWriteError
from budgetnet.studies.export import FORMATS, export_trial, get_trial, module_source
from full_disk import disk_full_after, fill, full_tmpfs, leftovers

ARCHS = [
    ("(3,8) 2/2 (2,16)x2 gap", (1, 8, 8), 10, None),
    ("(3,8) avg2/2 (5,12)/2 + (2,12) spp(2,1) fc(20,0.3)", (3, 16, 16), 7, None),
    ("(3,8) 2/1 (2,16)/2 + (2,16) 2/2 (3,16)x2 flat fc32", (1, 16, 16), 10, "batch"),
    ("(7,16)/2 3/3 (5,24) 2/2 (3,32)x3 spp", (3, 112, 112), 5, None),
    ("(3,8) 2/2 (3,16) + (1,6)@none gap nofc", (1, 8, 8), None, "batch"),  # no classifier: 6 logits
]


def load_module(path):
    spec = importlib.util.spec_from_file_location("exported", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("notation, input_shape, classes, norm", ARCHS)
def test_standalone_module_matches_the_builder(tmp_path, notation, input_shape, classes, norm):
    arch = budgetnet.parse(notation, input_shape=input_shape, num_classes=classes)
    path = tmp_path / "net.py"
    path.write_text(module_source(arch, norm=norm))
    imports = {
        alias.name.split(".")[0]
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, (ast.Import, ast.ImportFrom))
        for alias in (node.names if isinstance(node, ast.Import) else [ast.alias(node.module)])
    }
    assert imports == {"math", "torch"}  # no budgetnet
    built = budgetnet.build(arch, norm=norm).eval()
    exported = load_module(path).Net().eval()
    exported.load_state_dict(built.state_dict())  # same parameter names and shapes
    x = torch.randn(3, *input_shape)
    with torch.no_grad():
        assert torch.allclose(exported(x), built(x), atol=1e-6)
    # Paddings are written out: every conv of the file has the padding arch.py resolved.
    convs = [m for m in exported.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [c.padding[0] for c in convs] == [info.layer.padding for info in arch.convs]


#: Run in a fresh Python where `import budgetnet` fails: the exported .py and a state dict; prints
#: the logits of a seeded input.
FRESH_LOGITS = """
import sys
sys.modules["budgetnet"] = None
import importlib.util, torch
spec = importlib.util.spec_from_file_location("net", sys.argv[1])
net = importlib.util.module_from_spec(spec)
spec.loader.exec_module(net)
model = net.Net().eval()
model.load_state_dict(torch.load(sys.argv[2], weights_only=True))
with torch.no_grad():
    print(model(torch.randn(2, 3, 12, 12, generator=torch.Generator().manual_seed(0))).flatten().tolist())
"""


def test_an_exported_eca_gate_gives_the_builders_logits_in_a_fresh_python(tmp_path):
    import subprocess
    import sys

    arch = budgetnet.parse("(3,16)bn gate[gpool chconv(5) sigmoid] chconv(3,bias=true) gap", input_shape=(3, 12, 12),
                           num_classes=4)  # fmt: skip
    built = budgetnet.build(arch).eval()
    (tmp_path / "net.py").write_text(module_source(arch))
    torch.save(built.state_dict(), tmp_path / "net.pt")
    out = subprocess.run([sys.executable, "-c", FRESH_LOGITS, str(tmp_path / "net.py"), str(tmp_path / "net.pt")],
                         capture_output=True, text=True, check=True, env={**os.environ, "PYTHONPATH": ""}).stdout  # fmt: skip
    with torch.no_grad():
        expected = built(torch.randn(2, 3, 12, 12, generator=torch.Generator().manual_seed(0))).flatten()
    assert torch.allclose(torch.tensor(json.loads(out)), expected, atol=1e-6)


def make_study(tmp_path):
    """A study of hand-made trials: 0 complete, 1 pruned, 2 failed, 3 over budget, 4 running, 5 complete."""
    arch = budgetnet.parse("(3,8) 2/2 (2,16)x2 gap", input_shape=(1, 8, 8), num_classes=10)
    weights = tmp_path / "w0.pt"
    torch.save(budgetnet.build(arch).state_dict(), weights)
    study = optuna.create_study(direction="maximize", study_name="hand")
    attrs = dict(arch=arch.to_dict(), notation=arch.notation(), macs=1, status="ok", val_accuracy=0.8, epochs=1)
    study.add_trial(optuna.create_trial(value=0.8, user_attrs={**attrs, "weights": str(weights)}))
    study.add_trial(optuna.create_trial(state=TrialState.PRUNED, value=0.1, user_attrs=attrs))
    study.add_trial(optuna.create_trial(state=TrialState.FAIL, user_attrs={**attrs, "status": "error", "error": "boom"}))
    study.add_trial(optuna.create_trial(value=0.0, user_attrs={**attrs, "status": "infeasible"}))
    study.add_trial(optuna.create_trial(state=TrialState.RUNNING, user_attrs=attrs))
    study.add_trial(optuna.create_trial(value=0.7, user_attrs=attrs))
    return study, arch


def test_export_json_py_and_pt_of_the_best_trial(tmp_path, monkeypatch):
    study, arch = make_study(tmp_path)
    monkeypatch.chdir(tmp_path)
    assert get_trial(study, "best").number == 0
    assert budgetnet.Arch.load(export_trial(study, "best", "json")) == arch  # default name trial0.json
    module = load_module(export_trial(study, 0, "py", tmp_path / "found.py"))
    assert "study 'hand', trial 0: validation accuracy 0.8000 after 1 epoch" in module.__doc__
    net = module.Net()
    net.load_state_dict(torch.load(export_trial(study, "0", "pt", tmp_path / "found.pt"), weights_only=True))
    with torch.no_grad():
        x = torch.randn(2, 1, 8, 8)
        built = budgetnet.build(arch)
        built.load_state_dict(torch.load(tmp_path / "w0.pt", weights_only=True))
        assert torch.equal(net(x), built(x))


@pytest.mark.parametrize(
    "trial, fmt, message",
    [
        (1, "json", r"trial=1 never completed \(PRUNED: pruned\); expected a completed trial inside the budget"),
        (2, "py", r"trial=2 never completed \(FAIL: boom\)"),
        (4, "json", r"trial=4 never completed \(RUNNING: running\)"),
        (3, "py", "trial=3 is over the budget and was never trained"),
        (9, "json", r"trial=9 does not exist; expected 'best' or a number in 0..5"),
        ("first", "json", "trial='first' is invalid; expected 'best' or a trial number"),
        (5, "pt", "trial 5 kept no weights; expected a search run with keep_weights=True"),
        (0, "onnx", "format='onnx' is unknown; expected one of json, py, pt"),
    ],
)
def test_trials_that_cannot_be_exported(tmp_path, trial, fmt, message):
    study, _ = make_study(tmp_path)
    with pytest.raises(ExportError, match=message):
        export_trial(study, trial, fmt, tmp_path / "out")


def test_best_of_a_study_without_a_completed_trial(tmp_path):
    study = optuna.create_study(direction="maximize", study_name="empty")
    study.add_trial(optuna.create_trial(state=TrialState.PRUNED, value=0.1))
    with pytest.raises(ExportError, match="trial='best': study 'empty' has no trial completed inside the budget yet"):
        export_trial(study, "best", "json", tmp_path / "x.json")


def test_weights_missing_on_this_machine(tmp_path):
    study, _ = make_study(tmp_path)
    (tmp_path / "w0.pt").unlink()
    with pytest.raises(ExportError, match=r"trial 0: weights file '.*w0\.pt' is not on this machine"):
        export_trial(study, 0, "pt", tmp_path / "x.pt")


def test_a_study_without_a_preprocessing_record_exports_and_says_so(tmp_path):
    study, arch = make_study(tmp_path)
    spec = json.loads(export_trial(study, 0, "json", tmp_path / "found.json").read_text())
    assert spec["preprocess"] is None and budgetnet.Arch.load(tmp_path / "found.json") == arch
    module = load_module(export_trial(study, 0, "py", tmp_path / "found.py"))
    assert module.PREPROCESS is None and "Preprocessing unknown" in module.__doc__
    with pytest.raises(NotImplementedError, match="preprocessing unknown: the study that found this network"):
        module.preprocess(torch.zeros(1, 1, 8, 8))


# -- crafted attributes: a clear error and no file ------------------------------------------------
@pytest.mark.parametrize(
    "attrs, fmt, message",
    [
        ({"val_accuracy": "0.9"}, "py", "trial 0: attribute val_accuracy='0.9' is invalid; expected a number from 0 to 1"),
        ({"val_accuracy": float("nan")}, "py", "attribute val_accuracy=nan is invalid"),
        ({"val_accuracy": True}, "py", "attribute val_accuracy=True is invalid"),
        ({"epochs": "\ud800"}, "py", r"attribute epochs='\ud800' is invalid; expected a whole number >= 0"),
        ({"epochs": "1\x00"}, "py", r"attribute epochs='1\x00' is invalid"),
        ({"epochs": 1.5}, "json", "attribute epochs=1.5 is invalid"),
        ({"norm": "batch\x00"}, "py", r"attribute norm='batch\x00' is invalid; expected None or 'batch'"),
        ({"weights": ["w0.pt"]}, "pt", "attribute weights=['w0.pt'] is invalid; expected a file path"),
    ],
    ids=["string accuracy", "nan accuracy", "bool accuracy", "surrogate epochs", "nul epochs", "float epochs",
         "nul norm", "list weights"],
)
def test_crafted_trial_attributes_end_in_an_export_error_and_no_file(tmp_path, attrs, fmt, message):
    arch = budgetnet.parse("(3,8) gap", input_shape=(1, 8, 8), num_classes=10)
    study = optuna.create_study(direction="maximize", study_name="crafted")
    user_attrs = {"arch": arch.to_dict(), "status": "ok", "val_accuracy": 0.5, "epochs": 1, **attrs}
    study.add_trial(optuna.create_trial(value=0.5, user_attrs=user_attrs))
    with pytest.raises(ExportError) as caught:
        export_trial(study, 0, fmt, tmp_path / f"out.{fmt}")
    assert message in str(caught.value)
    assert list(tmp_path.iterdir()) == []


def preprocess_record(**changes):
    record = {"source": "digits", "channels": "grayscale", "pixel_max": 16.0, "resize": [8, 8], "crop": [8, 8],
              "mean": [0.3], "std": [0.4]}  # fmt: skip
    return {**record, **changes}


@pytest.mark.parametrize(
    "record, message",
    [
        ("digits", "preprocess='digits' is invalid; expected an object"),
        (preprocess_record(mean=[0.3, 0.3]), "preprocess mean=[0.3, 0.3] is invalid; expected 1 finite numbers"),
        (preprocess_record(std=[0.0]), "preprocess std=[0.0] is invalid; expected 1 numbers > 0"),
        (preprocess_record(std=["0.4"]), "preprocess std=['0.4'] is invalid"),
        (preprocess_record(resize="8x8"), "preprocess resize='8x8' is invalid; expected [height, width], at least"),
        (preprocess_record(resize=[4, 4]), "preprocess resize=[4, 4] is invalid"),
        (preprocess_record(crop=[6, 6]), "preprocess crop=[6, 6] is invalid; expected the input's [height, width] [8, 8]"),
        (preprocess_record(pixel_max=float("inf")), "preprocess pixel_max=inf is invalid; expected a number > 0"),
        (preprocess_record(source=None), "preprocess source=None is invalid; expected a string"),
        ({k: v for k, v in preprocess_record().items() if k != "mean"}, "preprocess mean=None is invalid"),
    ],
)
@pytest.mark.parametrize("fmt", ["py", "json"])
def test_a_crafted_preprocessing_record_ends_in_an_export_error_and_no_file(tmp_path, record, message, fmt):
    study, _ = make_study(tmp_path)
    study.set_user_attr("budgetnet", {"preprocess": record})
    with pytest.raises(ExportError) as caught:
        export_trial(study, 0, fmt, tmp_path / f"out.{fmt}")
    assert f"study 'hand': {message}" in str(caught.value)
    assert not (tmp_path / f"out.{fmt}").exists()


@pytest.mark.parametrize(
    "source, message",
    [
        ("x = 1\x00\n", "the generated model code does not compile ("),  # SyntaxError or ValueError by version
        ("x = '\ud800'\n", "does not compile (UnicodeEncodeError: 'utf-8' codec can't encode character '\\ud800'"),
        ("raise RuntimeError('boom')\n", "does not import on its own in a fresh Python (RuntimeError: boom)"),
        ("import budgetnet\n", "does not import on its own in a fresh Python (ModuleNotFoundError: import of budgetnet"),
        ("import torch\nfrom torch import nn\nINPUT_SHAPE = (1, 8, 8)\nNUM_CLASSES = 10\nPREPROCESS = None\n"
         "Net = lambda: nn.Flatten()\n", "(AssertionError: Net() gives logits of shape (1, 64))"),
    ],
    ids=["nul", "surrogate", "raises", "needs budgetnet", "wrong logits"],
)
def test_a_py_that_does_not_compile_or_import_is_not_written(tmp_path, monkeypatch, source, message):
    import budgetnet.studies.export as export

    study, _ = make_study(tmp_path)
    (tmp_path / "found.py").write_text("previous")
    monkeypatch.setattr(export, "module_source", lambda *args, **kwargs: source)
    with pytest.raises(ExportError) as caught:
        export_trial(study, 0, "py", tmp_path / "found.py")
    assert message in str(caught.value) and "nothing was written" in str(caught.value)
    assert (tmp_path / "found.py").read_text() == "previous"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["found.py", "w0.pt"]


# -- a full disk: the old file stays, no temporary file --------------------------------------------
@pytest.mark.parametrize("fmt", ["json", "py", "pt"])
def test_export_onto_a_full_disk(tmp_path, fmt):
    study, _ = make_study(tmp_path)
    with full_tmpfs(tmp_path) as disk:
        path = export_trial(study, 0, fmt, disk / f"found.{fmt}")
        before = path.read_bytes()
        fill(disk)
        with pytest.raises(FileWriteError) as caught:
            export_trial(study, 0, fmt, path)
        assert str(caught.value).startswith(f"exported {'weights' if fmt == 'pt' else 'model' if fmt == 'py' else 'architecture'} {str(path)!r} cannot be written: the disk is full")
        assert str(caught.value).endswith("; the previous file is unchanged")
        assert path.read_bytes() == before
        assert leftovers(disk, path.name, "filler") == []


def test_export_when_the_disk_fills_mid_write(tmp_path, monkeypatch):
    study, _ = make_study(tmp_path)
    disk_full_after(monkeypatch, 64)
    for fmt in FORMATS:
        with pytest.raises(FileWriteError, match=r"the disk is full \(\[Errno 28\] No space left on device\)"):
            export_trial(study, 0, fmt, tmp_path / f"found.{fmt}")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["w0.pt"]


# -- preprocessing travels with the model ----------------------------------------------------------
def write_idx(path, array):
    """An IDX file (unsigned bytes) of ``array``: magic 0x08, the dimension count, big-endian sizes."""
    import struct

    path.write_bytes(struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
                     + array.astype("uint8").tobytes())  # fmt: skip


#: Run in a fresh Python where `import budgetnet` fails: the exported .py and .pt on the raw
#: uint8 test images of the IDX file; prints the accuracy.
STANDALONE = """
import struct, sys
sys.modules["budgetnet"] = None
import importlib.util, numpy, torch
module_path, weights_path, images_path, labels_path = sys.argv[1:]
spec = importlib.util.spec_from_file_location("found", module_path)
found = importlib.util.module_from_spec(spec)
spec.loader.exec_module(found)
model = found.Net().eval()
model.load_state_dict(torch.load(weights_path, weights_only=True))
raw = open(images_path, "rb").read()
count, height, width = struct.unpack(">3I", raw[4:16])
images = torch.from_numpy(numpy.frombuffer(raw, numpy.uint8, offset=16).reshape(count, height, width).copy())
labels = torch.from_numpy(numpy.frombuffer(open(labels_path, "rb").read(), numpy.uint8, offset=8).astype("int64"))
with torch.no_grad():
    predicted = model(found.preprocess(images)).argmax(1)
print(repr((predicted == labels).double().mean().item()))
"""


@pytest.mark.slow
def test_the_exported_model_scores_on_raw_images_what_budgetnet_evaluate_reports(tmp_path, monkeypatch, capsys):
    """A search on raw uint8 IDX files (8x8 digits, resized to 16 and cropped to 14), the .py and
    .pt exported, then a Python without budgetnet: preprocess + Net on the raw test file give
    exactly the test accuracy of budgetnet's evaluate."""
    import subprocess
    import sys

    from sklearn.datasets import load_digits

    from budgetnet.cli import main
    from budgetnet.studies.export import trial_arch
    from budgetnet.training.augment import center_crop
    from budgetnet.training.train import evaluate

    digits = load_digits()
    pixels = (digits.images * 255 / 16).round()  # 0..16 -> 0..255, as an IDX file holds them
    folder = tmp_path / "idx"
    folder.mkdir()
    for prefix, part in (("train", slice(0, 1500)), ("t10k", slice(1500, None))):
        write_idx(folder / f"{prefix}-images-idx3-ubyte", pixels[part])
        write_idx(folder / f"{prefix}-labels-idx1-ubyte", digits.target[part])
    data = budgetnet.load_data(f"idx:{folder}", image_size=16, crop_size=14, limit=300)
    assert (data.stored_shape, data.input_shape) == ((1, 16, 16), (1, 14, 14))
    storage = str(tmp_path / "budgetnet.db")
    study = budgetnet.search("small", data, n_trials=1, epochs=6, seed=0, progress=False, storage=storage,
                             study_name="raw", keep_weights=tmp_path / "weights")  # fmt: skip
    assert study.user_attrs["budgetnet"]["preprocess"] == data.preprocessing()

    monkeypatch.chdir(tmp_path)
    assert main(["export", "--storage", storage, "--study", "raw", "--format", "py", "-o", "found.py", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert main(["export", "--storage", storage, "--study", "raw", "--format", "pt", "-o", "found.pt"]) == 0
    assert capsys.readouterr().out == "wrote found.pt\n"
    best = get_trial(study, "best")
    arch = trial_arch(best)
    assert summary == {
        "path": "found.py", "format": "py", "study": "raw", "trial": best.number, "notation": arch.notation(),
        "val_accuracy": best.user_attrs["val_accuracy"], "macs": budgetnet.complexity(arch).conv_macs,
        "params": budgetnet.complexity(arch).params,
        "preprocess": {"source": f"idx:{folder}", "channels": "grayscale", "pixel_max": 1.0, "resize": [16, 16],
                       "crop": [14, 14], "mean": list(data.mean), "std": list(data.std)},
    }  # fmt: skip

    # In this process: preprocess of the raw test file is exactly the test split budgetnet evaluates.
    found = load_module(tmp_path / "found.py")
    raw_test = torch.from_numpy(pixels[1500:].astype("uint8"))
    assert torch.equal(found.preprocess(raw_test), center_crop(data.test.images, (14, 14)))

    model = budgetnet.build(arch, norm=best.user_attrs.get("norm"))
    model.load_state_dict(torch.load(tmp_path / "found.pt", weights_only=True))
    expected = evaluate(model, data, split="test", device="cpu")["accuracy"]
    standalone = subprocess.run(
        [sys.executable, "-c", STANDALONE, "found.py", "found.pt", str(folder / "t10k-images-idx3-ubyte"),
         str(folder / "t10k-labels-idx1-ubyte")], capture_output=True, text=True, check=True, env={**os.environ, "PYTHONPATH": ""},
    ).stdout  # fmt: skip
    assert abs(float(standalone) - expected) <= 1e-6
    assert expected > 0.5  # a trained model (10 classes: chance is 0.1), so the match means something


def test_preprocess_of_raw_digits_is_what_load_data_made_of_them():
    """scikit-learn's digits are floats 0..16 (pixel_max 16): preprocess turns all 1,797 raw
    images into exactly the rows of the train, val and test splits."""
    from sklearn.datasets import load_digits

    data = budgetnet.load_data("digits")
    arch = budgetnet.parse("(3,8) gap", input_shape=data.input_shape, num_classes=10)
    namespace = {}
    exec(module_source(arch, preprocess=data.preprocessing()), namespace)
    made = namespace["preprocess"](load_digits().images)  # float64, N, H, W
    loaded = torch.cat([data.train.images, data.val.images, data.test.images])
    assert made.shape == loaded.shape == (1797, 1, 16, 16)
    rows = lambda images: sorted(map(tuple, images.flatten(1).tolist()))  # noqa: E731
    assert rows(made) == rows(loaded)
