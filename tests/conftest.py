"""Shared fixtures."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def postgres_url():
    """A throw-away PostgreSQL server on 127.0.0.1 for this test session (see tests/postgres.py)."""
    from postgres import PostgresServer, find_bin

    bin_dir = find_bin()
    if bin_dir is None:
        pytest.skip("no PostgreSQL server binaries (initdb, pg_ctl); ./install.sh --dev installs them")
    pytest.importorskip("psycopg2", reason="psycopg2 is missing; pip install 'budgetnet[postgres]'")
    server = PostgresServer(bin_dir).start()
    try:
        yield server.url
    finally:
        server.stop()
