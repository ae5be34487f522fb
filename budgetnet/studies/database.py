"""Database storages (SQLite and any SQLAlchemy URL such as PostgreSQL): the connection check,
SQLite's settings for several local workers, and retries of a server that goes away.

:func:`open_database` is what :func:`budgetnet.studies.storage.open_storage` calls for a
database URL. A server that stops answering is retried with back-off (0.5 s doubling to 5 s)
for ``retry_seconds`` (:data:`DEFAULT_RETRY`, ``--storage-retry``, or :func:`retrying`'s);
SQLite is never retried (a file does not restart).

Example:
    >>> describe("postgresql+psycopg2://me:secret@db.lan/optuna")
    'postgresql+psycopg2://me:***@db.lan/optuna'
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import random
import time
import warnings
from pathlib import Path

import optuna

from budgetnet.errors import StorageError

#: Seconds a process retries a lost database connection (with back-off) before it gives up.
DEFAULT_RETRY = 30
_DEFAULT_PORTS = {"postgresql": 5432, "mysql": 3306}


_RETRY_SECONDS: contextvars.ContextVar = contextvars.ContextVar("retry_seconds", default=DEFAULT_RETRY)


@contextlib.contextmanager
def retrying(seconds: float):
    """Inside this block, :func:`open_storage` gives a database storage ``seconds`` of retries
    by default (``budgetnet search --storage-retry``).

    Example:
        >>> with retrying(5):
        ...     _RETRY_SECONDS.get()
        5
    """
    token = _RETRY_SECONDS.set(seconds)
    try:
        yield
    finally:
        _RETRY_SECONDS.reset(token)


def describe(url: str) -> str:
    """The URL with its password hidden, for messages and the terminal.

    Example:
        >>> describe("postgresql+psycopg2://me:secret@db.lan:5433/optuna")
        'postgresql+psycopg2://me:***@db.lan:5433/optuna'
    """
    if url.startswith(("journal:", "sqlite:")) or "://" not in url:
        return url
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # a malformed URL: say nothing about what it holds
        return url.split("://", 1)[0] + "://..."


def open_database(url: str, heartbeat_interval: int, grace_period: int, retry_seconds: float | None, max_retry: int):
    """Optuna's RDBStorage at the canonical ``url``, checked to connect, with heartbeats, the
    retry of lost trials (at most ``max_retry`` times) and ``retry_seconds`` of retries of a
    lost server (``None``: :func:`retrying`'s); returns it and where it connects (host:port or
    the SQLite file).

    Raises:
        StorageError: a malformed URL, a missing driver, a server that does not answer, a bad
            ``retry_seconds``.
    """
    retry_seconds = _RETRY_SECONDS.get() if retry_seconds is None else retry_seconds
    if isinstance(retry_seconds, bool) or not isinstance(retry_seconds, (int, float)) or not 0 <= retry_seconds <= 86400:
        raise StorageError(f"retry_seconds={retry_seconds!r} is invalid; expected seconds from 0 to 86400")
    engine_kwargs, where = _check_connection(url)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        callback = RetryCallback(max_retry=max_retry)
    arguments = {"engine_kwargs": engine_kwargs, "heartbeat_interval": heartbeat_interval,
                 "grace_period": grace_period, _RETRY_ARGUMENT: callback}  # fmt: skip
    storage = _with_retry(lambda: _rdb_storage(url, arguments), url)
    if url.startswith("sqlite:"):
        _use_write_ahead_log(storage.engine)
    else:
        storage.retry_seconds = retry_seconds
        logging.getLogger(_OPTUNA_RDB_LOGGER).addFilter(LOST_CONNECTION_NOISE)  # once: the same object
    return storage, where


#: The logger of Optuna's RDBStorage.
_OPTUNA_RDB_LOGGER = "optuna.storages._rdb.storage"


class _LostConnectionNoise(logging.Filter):
    """Drops Optuna's warning that reads a lost server as too many SQL variables ("Caught an
    error from sqlalchemy: ... server closed the connection ... Falling back to a slower
    alternative"): the retry, or the one-line storage error after it, says what happened.

    Example:
        >>> record = logging.makeLogRecord({"msg": "Caught an error from sqlalchemy: (psycopg2.OperationalError) "
        ...                                        "server closed the connection unexpectedly. Falling back"})
        >>> LOST_CONNECTION_NOISE.filter(record)
        False
        >>> LOST_CONNECTION_NOISE.filter(logging.makeLogRecord({"msg": "Caught an error from sqlalchemy: too many "
        ...                                                           "SQL variables. Falling back"}))  # kept
        True
    """

    SIGNS = ("server closed the connection", "connection refused", "could not connect", "terminating connection",
             "connection to server")  # fmt: skip

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        return not (text.startswith("Caught an error from sqlalchemy") and any(s in text.lower() for s in self.SIGNS))


LOST_CONNECTION_NOISE = _LostConnectionNoise()


try:  # Optuna >= 4.9 renamed the retry callback and the storage argument that takes it.
    from optuna.storages import RetryHeartbeatStaleTrialCallback as RetryCallback

    _RETRY_ARGUMENT = "heartbeat_stale_trial_callback"
except ImportError:  # pragma: no cover - older Optuna
    from optuna.storages import RetryFailedTrialCallback as RetryCallback

    _RETRY_ARGUMENT = "failed_trial_callback"


def _rdb_storage(url: str, arguments: dict) -> optuna.storages.RDBStorage:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return _RetryingRDBStorage(url, **arguments)


#: Seconds a call retries while another process holds an SQLite file's lock: SQLite answers
#: "database is locked" at once, without waiting, when two transactions that both read want
#: to write (two workers ending their trials together); the one refused has written nothing.
LOCKED_RETRY_SECONDS = 60


class _RetryingRDBStorage(optuna.storages.RDBStorage):
    """Optuna's RDBStorage whose calls retry a lost connection with back-off (0.5 s doubling
    to 5 s) for ``retry_seconds`` (0 for SQLite: a file does not restart), and a locked SQLite
    file for :data:`LOCKED_RETRY_SECONDS`. A write whose commit reached the server just as the
    connection broke may be made twice (rare)."""

    retry_seconds: float = 0


def _causes(error: BaseException | None):
    """``error`` and the errors behind it (``__cause__``, else ``__context__``), each once."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        yield error
        error = error.__cause__ or error.__context__


def _connection_lost(error: BaseException) -> bool:
    """True when a lost or refused connection is behind ``error`` (not bad data)."""
    from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

    return any(
        isinstance(cause, (OperationalError, InterfaceError))
        or (isinstance(cause, DBAPIError) and cause.connection_invalidated)
        for cause in _causes(error)
    )


def _locked(error: BaseException) -> bool:
    """True when SQLite refused the call because another connection holds the file's lock."""
    return any("database is locked" in str(cause) for cause in _causes(error))


def _retrying(name: str):
    plain = getattr(optuna.storages.RDBStorage, name)

    def method(self, *args, **kwargs):
        deadline, delay = None, 0.5
        while True:
            try:
                return plain(self, *args, **kwargs)
            except Exception as error:
                now = time.monotonic()
                locked = _locked(error)
                if deadline is None:
                    deadline = now + max(self.retry_seconds, LOCKED_RETRY_SECONDS if locked else 0)
                if now >= deadline or not (locked or _connection_lost(error)):
                    raise
                time.sleep(min(delay, deadline - now))
                delay = min(delay * 2, 5.0)

    method.__name__ = method.__qualname__ = name
    return method


# Every RDBStorage method Optuna's cached storage and studies call.
for _name in (
    "create_new_study", "delete_study", "set_study_user_attr", "set_study_system_attr", "get_study_id_from_name",
    "get_study_name_from_id", "get_study_directions", "get_study_user_attrs", "get_study_system_attrs",
    "get_all_studies", "create_new_trial", "_create_new_trial", "set_trial_param", "_set_trial_param",
    "set_trial_state_values", "set_trial_intermediate_value", "set_trial_user_attr", "set_trial_system_attr",
    "get_trial_id_from_study_id_trial_number", "get_trial", "get_all_trials", "_get_trials", "get_best_trial",
    "_get_best_trial_id", "record_heartbeat", "_get_stale_trial_ids",
):  # fmt: skip
    setattr(_RetryingRDBStorage, _name, _retrying(_name))


def host_port(parsed) -> str:
    """``host:port`` of a parsed SQLAlchemy URL (the backend's default port when none is given)."""
    return f"{parsed.host or 'localhost'}:{parsed.port or _DEFAULT_PORTS.get(parsed.get_backend_name(), '?')}"


def _check_connection(url: str) -> dict:
    """Connect once, so a wrong URL fails here with its host and port; returns the engine
    kwargs and where it connects (host:port, or the SQLite file)."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError

    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):  # ValueError: a port that is not a number
        raise StorageError(
            f"storage={describe(url)!r} is not a valid database URL; expected "
            "postgresql+psycopg2://USER:PASSWORD@HOST:PORT/DB or sqlite:///FILE.db"
        ) from None
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        database = parsed.database or ""
        if database in ("", ":memory:"):
            raise StorageError(
                f"storage {url}: an in-memory SQLite database keeps nothing after this process and no other "
                "worker sees it; expected sqlite:///FILE.db"
            )
        if not Path(database).parent.is_dir():
            raise StorageError(
                f"storage {url}: directory {str(Path(database).parent)!r} does not exist; "
                "expected the SQLite file in an existing directory"
            )
        # Several local workers share the file: wait for its lock instead of failing at once.
        engine_kwargs = {"connect_args": {"timeout": 60}}
        where = database
    else:
        engine_kwargs = {"pool_pre_ping": True}
        if backend == "postgresql":
            engine_kwargs["connect_args"] = {"connect_timeout": 10}
        where = host_port(parsed)
    try:
        engine = create_engine(parsed, **engine_kwargs)
    except (NoSuchModuleError, ModuleNotFoundError, ImportError) as error:
        raise StorageError(
            f"storage {describe(url)}: the database driver is not installed ({error}); for "
            "PostgreSQL run pip install 'budgetnet[postgres]' (psycopg2-binary)"
        ) from None
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except SQLAlchemyError as error:
        reason = str(getattr(error, "orig", None) or error).strip().splitlines()
        reason = reason[0] if reason else type(error).__name__
        raise StorageError(
            f"storage {describe(url)}: cannot connect to {where} ({reason}); expected a running "
            "database server at that host and port that accepts these credentials"
        ) from None
    finally:
        engine.dispose()
    return engine_kwargs, where


def _with_retry(make, url: str, attempts: int = 8):
    """Call ``make()``, retrying the races of several workers creating one schema or study."""
    from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError

    for attempt in range(attempts):
        try:
            return make()
        except (IntegrityError, ProgrammingError, OperationalError) as error:
            if attempt == attempts - 1:
                reason = str(getattr(error, "orig", None) or error).strip().splitlines()[0]
                raise StorageError(f"storage {describe(url)}: setting up the tables failed ({reason})") from None
            time.sleep(0.1 + random.random() * 0.4 * (attempt + 1))


def _use_write_ahead_log(engine) -> None:
    """SQLite in WAL mode: readers never block the writer (local workers), and a commit
    costs about half as much. Fine on a local disk; SQLite files do not belong on NFS.

    Each transaction also begins with ``BEGIN IMMEDIATE``. Python's sqlite3 otherwise starts
    a transaction only at the first write, so Optuna's "read WAITING, write RUNNING" (how a
    worker takes a queued trial; ``SELECT ... FOR UPDATE`` is a no-op on SQLite) let two
    processes take the same trial and run it twice (measured: 6-10 of 400 queued trials
    taken twice by two processes)."""
    from sqlalchemy import event

    def on_connect(connection, record):
        connection.isolation_level = None  # the driver sends no BEGIN of its own; on_begin does
        cursor = connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    def on_begin(connection):
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    event.listen(engine, "connect", on_connect)
    event.listen(engine, "begin", on_begin)
    engine.dispose()  # connections opened while creating the tables come back with the pragmas


# -- existing files ----------------------------------------------------------------------------------
