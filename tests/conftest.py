"""Shared fixtures; and every `python -m budgetnet` a test starts imports this checkout."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

#: Subprocesses (`python -m budgetnet search` in a temporary directory, worker processes) import the
#: budgetnet of this checkout, not whichever one is installed: the code under test, with its options.
_ROOT = str(Path(__file__).resolve().parent.parent)
os.environ["PYTHONPATH"] = os.pathsep.join([_ROOT, *filter(None, [os.environ.get("PYTHONPATH")])])


def _server():
    from postgres import PostgresServer, find_bin

    bin_dir = find_bin()
    if bin_dir is None:
        pytest.skip("no PostgreSQL server binaries (initdb, pg_ctl); ./install.sh --dev installs them")
    pytest.importorskip("psycopg2", reason="psycopg2 is missing; pip install 'budgetnet[postgres]'")
    return PostgresServer(bin_dir).start()


@pytest.fixture(scope="session")
def postgres_url():
    """A throw-away PostgreSQL server on 127.0.0.1 for this test session (see tests/postgres.py)."""
    server = _server()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture
def postgres_server():
    """A PostgreSQL server of its own for one test, which may halt and restart it."""
    server = _server()
    try:
        yield server
    finally:
        server.stop()
