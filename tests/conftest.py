"""Shared fixtures."""

from __future__ import annotations

import pytest


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
