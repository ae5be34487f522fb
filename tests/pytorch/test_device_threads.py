"""budgetnet.pytorch.device: the one rule for torch CPU threads (``--threads`` and the workers' share)."""

from __future__ import annotations

import os

import pytest
import torch

from budgetnet.errors import DeviceError
from budgetnet.pytorch import device
from budgetnet.pytorch.device import available_cores, default_threads, set_threads


@pytest.fixture(autouse=True)
def torch_threads():
    """Every test here changes torch's thread count; put it back."""
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize("workers, cores, expected", [(1, 2, 2), (2, 2, 1), (3, 8, 2), (4, 2, 1), (1, 16, 16)])
def test_default_threads_share_the_cores_among_the_workers(workers, cores, expected):
    assert default_threads(workers, cores) == expected  # cores // workers, at least 1


def test_available_cores_is_the_affinity_mask(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 3, 5}, raising=False)
    assert available_cores() == 3
    monkeypatch.delattr(os, "sched_getaffinity", raising=False)  # macOS, Windows
    monkeypatch.setattr(os, "cpu_count", lambda: 6)
    assert available_cores() == 6


def test_set_threads_default_divides_the_cores(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(device, "available_cores", lambda: 4)
    assert set_threads() == 4 and torch.get_num_threads() == 4
    assert set_threads(workers=3) == 1 and torch.get_num_threads() == 1


def test_set_threads_leaves_an_omp_num_threads_choice(monkeypatch):
    torch.set_num_threads(1)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setattr(device, "available_cores", lambda: 4)
    assert set_threads() == 1 and torch.get_num_threads() == 1
    assert set_threads(2) == 2  # an explicit count wins


def test_more_threads_than_cores_warns_with_both_numbers(monkeypatch):
    monkeypatch.setattr(device, "available_cores", lambda: 1)
    with pytest.warns(UserWarning, match=r"threads=2 is more than the 1 CPU cores this process may use"):
        assert set_threads(2) == 2
    assert torch.get_num_threads() == 2


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: set_threads(0), r"threads=0 is invalid; expected a whole number >= 1 \(torch CPU threads\)"),
        (lambda: set_threads(-1), r"threads=-1 is invalid"),
        (lambda: set_threads(True), r"threads=True is invalid"),
        (lambda: set_threads(1.5), r"threads=1.5 is invalid"),
        (lambda: set_threads(1, workers=0), r"workers=0 is invalid; expected an integer >= 1"),
        (lambda: default_threads(0), r"workers=0 is invalid"),
        (lambda: default_threads(1, cores=0), r"cores=0 is invalid"),
    ],
)
def test_bad_counts_are_device_errors(call, message):
    before = torch.get_num_threads()
    with pytest.raises(DeviceError, match=message):
        call()
    assert torch.get_num_threads() == before


def test_the_error_names_the_default(monkeypatch):
    monkeypatch.setattr(device, "available_cores", lambda: 8)
    with pytest.raises(DeviceError, match=r"or none for the default, 4 \(8 cores / 2 worker\(s\)\)"):
        set_threads(0, workers=2)
