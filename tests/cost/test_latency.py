"""budgetnet.cost.latency: measure, per-layer tables and their cache, LatencyBudget, Budget.parse("Nms")."""

from __future__ import annotations

import json
import statistics

import pytest
import torch
from torch import nn

import budgetnet
from budgetnet.cost import latency
from budgetnet.cost.budgets import Budget
from budgetnet.errors import BudgetError, DeviceError, LatencyError
from budgetnet.cost.budgets import LatencyBudget
from budgetnet.cost.latency import LatencyTable, default_cache_dir, measure

SMALL = budgetnet.parse("(3,4) 2/2 (3,8)x3 gap", input_shape=(1, 12, 12), num_classes=5)


def test_measure_reports_the_median_of_its_repeats():
    result = measure(SMALL, "cpu", batch_size=3, repeats=5, warmup=1)
    assert len(result.times_ms) == 5 and result.repeats == 5
    assert result.median_ms == statistics.median(result.times_ms)
    assert result.ms_per_image == pytest.approx(result.median_ms / 3)
    assert result.images_per_second == pytest.approx(1000 / result.ms_per_image)
    assert (result.device, result.mode, result.dtype, result.input_shape) == ("cpu", "forward", "float32", (1, 12, 12))
    json.dumps(result.to_dict())


def test_measure_train_mode_leaves_a_module_untouched():
    module = nn.Sequential(nn.Conv2d(1, 4, 3), nn.Flatten(), nn.Linear(4 * 6 * 6, 3))
    before = [p.clone() for p in module.parameters()]
    result = measure(module, "cpu", batch_size=2, mode="train", repeats=2, warmup=1, input_shape=(1, 8, 8))
    assert result.mode == "train"
    assert all(torch.equal(a, b) for a, b in zip(before, module.parameters()))
    module.train()
    measure(module, "cpu", repeats=1, warmup=0, input_shape=(1, 8, 8))
    assert module.training  # forward mode times in eval mode and gives the module back as it was


@pytest.mark.parametrize(
    "call, error, message",
    [
        (lambda: measure(SMALL, batch_size=0), LatencyError, r"batch_size=0 is invalid; expected an integer >= 1"),
        (lambda: measure(SMALL, mode="backward"), LatencyError, r"mode='backward' is invalid; expected one of"),
        (lambda: measure(SMALL, repeats=0), LatencyError, r"repeats=0 is invalid"),
        (lambda: measure(SMALL, dtype="float16"), LatencyError, r"dtype='float16' is invalid"),
        (lambda: measure(nn.Linear(3, 3)), LatencyError, r"input_shape=None is invalid for a torch module"),
        (lambda: measure("A"), LatencyError, r"arch_or_module=str is invalid; expected a budgetnet.Arch"),
        (lambda: measure(nn.Linear(3, 3), input_shape=(1, 2, 2)), LatencyError, r"the network cannot run on a"),
        (lambda: measure(SMALL, device="tpu"), DeviceError, r"device='tpu' is not"),
    ],
)
def test_measure_bad_input(call, error, message):
    with pytest.raises(error, match=message):
        call()


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_measure_on_a_missing_gpu():
    with pytest.raises(DeviceError, match=r"device='cuda' is not there"):
        measure(SMALL, "cuda")


# -- tables ------------------------------------------------------------------------------------------
def test_table_times_each_distinct_layer_once(tmp_path):
    table = LatencyTable("cpu", batch_size=2, cache_dir=tmp_path, repeats=2, warmup=1)
    names = [name for name, _ in table.layer_keys(SMALL)]
    assert names == ["conv1", "pool1", "conv2", "conv3", "conv4", "head"]
    # conv3 and conv4 are the same configuration (8 -> 8 channels, 3x3, on 8x6x6): one entry
    assert table.add(SMALL) == 5 and len(table) == 5
    assert table.add(SMALL) == 0
    prediction = table.predict(SMALL)
    assert prediction.total_ms == pytest.approx(sum(row.ms for row in prediction.rows))
    assert prediction.ms_per_image == pytest.approx(prediction.total_ms / 2)
    assert prediction.rows[3].ms == prediction.rows[4].ms


def test_table_key_describes_the_layer():
    table = LatencyTable("cpu", cache_dir=False, repeats=1, warmup=0)
    keys = dict(table.layer_keys(SMALL))
    assert keys["conv1"] == "conv in=1x12x12 out=4 k=3 s=1 p=1"
    assert keys["pool1"] == "maxpool in=4x12x12 k=2 s=2 p=0"
    assert keys["head"] == "head in=8x6x6 avgspp(1) classes=5"
    train = LatencyTable("cpu", mode="train", cache_dir=False, repeats=1, warmup=0)
    assert dict(train.layer_keys(SMALL))["conv1"].endswith(" input")


def test_table_times_an_eca_gate_and_a_conv_along_the_channels_as_layers_of_their_own():
    arch = budgetnet.parse("(3,8) gate[gpool chconv(3) sigmoid] chconv(5) gap", input_shape=(1, 12, 12), num_classes=5)
    table = LatencyTable("cpu", batch_size=2, cache_dir=False, repeats=1, warmup=0)
    keys = dict(table.layer_keys(arch))
    assert keys["gate1"] == "gate in=8x12x12 gate[gpool chconv(3) sigmoid]"
    assert keys["chconv1"] == "chconv in=8x12x12 chconv(5)"
    prediction = table.predict(arch)
    assert [row.name for row in prediction.rows] == ["conv1", "gate1", "chconv1", "head"]
    assert all(row.ms > 0 for row in prediction.rows)


def test_table_is_cached_as_json_keyed_by_device_dtype_and_torch(tmp_path, monkeypatch):
    first = LatencyTable("cpu", cache_dir=tmp_path, repeats=1, warmup=0)
    first.predict(SMALL)
    stored = json.loads(first.path.read_text())
    assert stored["key"]["device"] == latency.device_name("cpu")
    assert (stored["key"]["dtype"], stored["key"]["torch"]) == ("float32", torch.__version__)
    assert stored["entries"] == first.entries

    def no_timing(*args, **kwargs):
        raise AssertionError("a cached layer was timed again")

    monkeypatch.setattr(latency, "_time_module", no_timing)
    second = LatencyTable("cpu", cache_dir=tmp_path, repeats=1, warmup=0)
    assert second.predict(SMALL).total_ms == pytest.approx(first.predict(SMALL).total_ms)
    other_batch = LatencyTable("cpu", batch_size=4, cache_dir=tmp_path, repeats=1, warmup=0)
    assert other_batch.path != first.path and len(other_batch) == 0
    with pytest.raises(LatencyError, match="latency table has no entry 'conv in=1x12x12"):
        other_batch.predict(SMALL, measure_missing=False)


def test_cache_dir_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("BUDGETNET_CACHE", str(tmp_path / "here"))
    assert default_cache_dir() == tmp_path / "here"
    monkeypatch.delenv("BUDGETNET_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "budgetnet"


def test_corrupt_or_foreign_table_is_an_error(tmp_path):
    table = LatencyTable("cpu", cache_dir=tmp_path, repeats=1, warmup=0)
    table.path.parent.mkdir(parents=True, exist_ok=True)
    table.path.write_text("{not json")
    with pytest.raises(LatencyError, match=r"cannot be read .*delete it to time the layers again"):
        LatencyTable("cpu", cache_dir=tmp_path)
    table.path.write_text(json.dumps({"format": "budgetnet.latency", "key": {"device": "elsewhere"}, "entries": {}}))
    with pytest.raises(LatencyError, match=r"has format/key .*'elsewhere'"):
        LatencyTable("cpu", cache_dir=tmp_path)


def test_compare_reports_the_relative_error():
    table = LatencyTable("cpu", cache_dir=False, repeats=3, warmup=1)
    result = table.compare(SMALL)
    assert result["error"] == pytest.approx((result["predicted_ms"] - result["measured_ms"]) / result["measured_ms"])
    assert result["measured_ms"] == result["measurement"].median_ms


# -- budgets -------------------------------------------------------------------------------------------
def test_latency_budget_arithmetic():
    budget = LatencyBudget(2.0, "cpu", tolerance=0.1)
    assert budget.limit_ms == pytest.approx(2.2)
    assert budget.admits(2.19) and not budget.admits(2.21)
    assert budget.matches(1.81) and budget.matches(2.19) and not budget.matches(1.79)
    assert budget.slack(1.5) == pytest.approx(0.7)
    assert str(budget) == "2 ms/image on cpu (forward, batch 1) ±10.0%"


def test_latency_budget_measures_each_arch_once(monkeypatch):
    calls = []

    def fake_measure(arch, *args, **kwargs):
        calls.append(arch)
        return latency.Measurement(4.0, 4.0, 1, "cpu", "forward", 1, (4.0,), arch.input_shape, "float32")

    monkeypatch.setattr(latency, "measure", fake_measure)
    budget = LatencyBudget(5.0, "cpu")
    assert budget.admits(SMALL) and budget.slack(SMALL) == pytest.approx(1.0) and not budget.matches(SMALL)
    assert len(calls) == 1


def test_latency_budget_with_a_table():
    table = LatencyTable("cpu", cache_dir=False, repeats=2, warmup=1)
    budget = LatencyBudget(1000.0, "cpu", table=table)
    assert budget.cost(SMALL) == pytest.approx(table.predict(SMALL).ms_per_image)


def test_budget_parse_delegates_milliseconds():
    budget = Budget.parse("2.5ms@cpu", tolerance=0.2)
    assert isinstance(budget, LatencyBudget)
    assert (budget.ms_per_image, budget.device, budget.limit_ms) == (2.5, "cpu", pytest.approx(3.0))
    assert Budget.parse(" 0.5ms ", device="cpu").device == "cpu"
    assert isinstance(Budget.parse("850M"), Budget)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: LatencyBudget(0, "cpu"), r"budget ms_per_image=0 is invalid; expected milliseconds > 0"),
        (lambda: LatencyBudget(1.0, "cpu", tolerance=-1), r"budget tolerance=-1 is invalid"),
        (lambda: LatencyBudget.parse("fast"), r"budget='fast' is invalid; expected milliseconds per image"),
        (lambda: LatencyBudget(1.0, "cpu", table="yes"), r"budget table='yes' is invalid"),
        (lambda: Budget.parse("1..2ms"), r"budget='1..2ms' is invalid; expected a ratio like 0.9x, .* or milliseconds per image"),
    ],
)
def test_latency_budget_bad_input(make, message):
    with pytest.raises(BudgetError, match=message):
        make()


def test_public_names_are_lazy():
    assert budgetnet.LatencyBudget is LatencyBudget and budgetnet.LatencyTable is LatencyTable
    with pytest.raises(AttributeError, match="has no attribute 'nothing'"):
        budgetnet.nothing


def test_latency_command_prints_a_per_layer_table_and_json(tmp_path, capsys):
    from budgetnet import cli

    spec = ["(3,8) 2/2 (3,16)x2", "--input", "1x16x16", "--repeats", "1", "--warmup", "0", "--cache-dir", str(tmp_path)]
    assert cli.main(["latency", *spec, "--table"]) == 0
    lines = capsys.readouterr().out.splitlines()
    start = lines.index(next(line for line in lines if line.startswith("layer")))
    assert lines[start].split() == ["layer", "configuration", "ms", "share"] and set(lines[start + 1]) == {"-", " "}
    rows = lines[start + 2 : lines.index("", start)]
    assert [row.split()[0] for row in rows] == ["conv1", "pool1", "conv2", "conv3", "head"]
    shares = [float(row.split()[-1].rstrip("%")) for row in rows]
    assert sum(shares) == pytest.approx(100, abs=0.5)  # each layer's share of the predicted time
    assert cli.main(["latency", *spec, "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["measurement"]["batch_size"] == 1 and result["measurement"]["median_ms"] > 0
    assert result["arch"]["notation"] == "(3,8) 2/2 (3,16)x2 spp(2,1)" and result["conv_macs"] == 16 * 16 * 9 * 1 * 8 + 8 * 8 * 9 * 8 * 16 + 8 * 8 * 9 * 16 * 16
