"""Local worker processes for one study (``budgetnet search --workers N``).

The parent creates the study first (race-free), then starts ``N`` copies of the same
``budgetnet search`` command that join it; each takes queued trial slots until none is left.
With several GPUs and ``--device auto`` or ``cuda``, worker ``i`` sees only GPU
``i % count`` through ``CUDA_VISIBLE_DEVICES``; on the CPU each gets an equal share of the
cores (``OMP_NUM_THREADS``). The workers follow their parent: Ctrl-C or SIGTERM to it is
passed on to them, and when it dies (SIGKILL too) Linux sends each one SIGTERM
(``PR_SET_PDEATHSIG``), which a worker takes as Ctrl-C; either way each queues its running trial again and exits. Each
worker runs in a process group of its own, so a Ctrl-C at the terminal reaches it once,
through the parent.

Example:
    >>> worker_environments(3, "auto", gpus=2)
    [{'CUDA_VISIBLE_DEVICES': '0'}, {'CUDA_VISIBLE_DEVICES': '1'}, {'CUDA_VISIBLE_DEVICES': '0'}]
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from typing import Sequence

import optuna
from optuna.trial import TrialState

from budgetnet.studies.progress import progress_bar
from budgetnet.studies.storage import storage_lost, url_label
from budgetnet.studies.worker import storage_fault


def visible_gpus() -> int:
    """How many CUDA devices this machine shows (0 without torch.cuda)."""
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def worker_environments(workers: int, device: str, gpus: int | None = None, cpus: int | None = None) -> list[dict]:
    """Extra environment for each worker: one GPU each (round robin) when GPUs are used;
    otherwise a share of the CPU cores each (``OMP_NUM_THREADS``), unless already set."""
    if device in ("auto", "cuda"):
        gpus = visible_gpus() if gpus is None else gpus
        if gpus > 0:
            visible = os.environ.get("CUDA_VISIBLE_DEVICES")
            ids = visible.split(",") if visible else [str(index) for index in range(gpus)]
            return [{"CUDA_VISIBLE_DEVICES": ids[index % len(ids)]} for index in range(workers)]
    if "OMP_NUM_THREADS" in os.environ:
        return [{} for _ in range(workers)]
    from budgetnet.pytorch.device import default_threads  # the one rule for every thread count

    return [{"OMP_NUM_THREADS": str(default_threads(workers, cpus))} for _ in range(workers)]


def run_workers(
    commands: Sequence[Sequence[str]],
    environments: Sequence[dict],
    study: optuna.Study,
    progress: bool = True,
    poll_seconds: float = 1.0,
    url: str | None = None,
) -> list[int]:
    """Start one process per command, show the study's progress until all exit; their exit codes.

    Ctrl-C or SIGTERM is passed on to every worker as SIGINT (each queues its running trial
    again and exits), then re-raised as KeyboardInterrupt.

    Raises:
        StorageError: the study's storage (at ``url``) stopped answering and a worker failed:
            the message the workers print (:func:`budgetnet.studies.storage.storage_lost`).
    """
    lost = None

    def refresh(bar) -> None:
        """Show the progress (or, with no bar, read the study): the parent sees a lost storage too."""
        nonlocal lost
        try:
            bar.refresh_from(study) if bar.active else study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
            lost = None
        except Exception as error:  # the workers retry, report and exit on their own
            lost = storage_fault(error)
            if lost is None:
                raise

    follow = _follow_parent()
    processes = [
        subprocess.Popen(list(command), env={**os.environ, **environment}, preexec_fn=follow)
        for command, environment in zip(commands, environments)
    ]
    previous = signal.getsignal(signal.SIGTERM)

    def terminate(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, terminate)
    try:
        with progress_bar(study, enabled=progress) as bar:
            while any(process.poll() is None for process in processes):
                refresh(bar)
                time.sleep(poll_seconds)
            refresh(bar)
    except KeyboardInterrupt:
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
        for process in processes:
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
        raise
    finally:
        signal.signal(signal.SIGTERM, previous)
    codes = [process.returncode for process in processes]
    if lost is not None and any(codes):
        raise storage_lost(url_label(url) if url else ("the study's storage", "?"), lost) from None
    return codes


def _follow_parent():
    """A ``preexec_fn`` for a worker: a process group of its own, and SIGTERM when this
    process dies (Linux; elsewhere the group only). A worker takes SIGTERM as Ctrl-C during
    its search, and ends quietly with it before or after."""
    parent = os.getpid()
    prctl = None
    if sys.platform.startswith("linux"):
        import ctypes

        prctl = ctypes.CDLL(None, use_errno=True).prctl
    pr_set_pdeathsig = 1

    def follow():
        os.setpgid(0, 0)
        if prctl is not None:
            prctl(pr_set_pdeathsig, signal.SIGTERM)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(130)

    return follow


def worker_command(arguments: Sequence[str]) -> list[str]:
    """``python -m budgetnet search ARGUMENTS`` with this interpreter.

    Example:
        >>> worker_command(["--trials", "4"])[1:]
        ['-m', 'budgetnet', 'search', '--trials', '4']
    """
    return [sys.executable, "-m", "budgetnet", "search", *arguments]
