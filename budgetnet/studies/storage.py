"""Where studies live: storage URLs, the connection check, and race-free study creation.

A storage is given as text (``--storage`` on the command line, ``storage=`` in
:func:`budgetnet.search`):

* nothing: the SQLite file ``budgetnet.db`` in the working directory (embedded, nothing to
  start; write-ahead log; fine for one worker and a few local ones, on a local disk);
* ``sqlite:///path.db`` or a path ending in ``.db``, ``.sqlite`` or ``.sqlite3``;
* ``postgresql+psycopg2://user:password@host:port/database`` (``postgresql://`` is read the
  same way when psycopg 3 is not installed), or any other SQLAlchemy URL Optuna accepts:
  the storage for many workers on many machines;
* ``journal:PATH`` or a path ending in ``.log`` or ``.journal``: Optuna's journal file, for
  workers that share a file system but no database server, written in whole records
  (:mod:`budgetnet.studies.journal`). It has no heartbeats: a killed worker's trial stays
  RUNNING until the next search on the same host sees its process gone, or ``budgetnet
  recover`` (:func:`budgetnet.studies.worker.recover_trials`) marks it failed and queues it again.

Database storages get heartbeats (Optuna's, inside ``study.optimize``): a running trial
writes one every ``heartbeat_interval`` seconds, and a trial silent for ``grace_period``
seconds (its worker was killed) is marked failed and queued again with the same parameters
by Optuna's retry callback (:data:`budgetnet.studies.database.RetryCallback`), at most
:data:`MAX_RETRY` times.

A database that stops answering is retried with back-off for ``retry_seconds`` (30 s by
default, ``--storage-retry``); one still away then ends the search with a :class:`StorageError`
naming the host and port (:func:`storage_lost`); every trial told before stays in the database.

Example:
    >>> from budgetnet.studies.storage import storage_url
    >>> storage_url("runs/study.journal")
    'journal:runs/study.journal'
    >>> storage_url("postgresql://me:secret@db.lan/optuna").startswith("postgresql+psycopg2://")
    True
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import random
import time
import weakref
from pathlib import Path

import optuna

from budgetnet.checks import is_int
from budgetnet.errors import SearchError, StorageError
from budgetnet.studies.database import describe, host_port, open_database

#: The SQLite file a search uses when no storage is given (in the working directory).
DEFAULT_FILE = "budgetnet.db"
#: Seconds between two heartbeats of a running trial (database storages).
DEFAULT_HEARTBEAT = 10
#: How often a trial lost with its worker is queued again before its slot gets a new sample.
MAX_RETRY = 2

_SQLITE_SUFFIXES = (".db", ".sqlite", ".sqlite3")
_JOURNAL_SUFFIXES = (".log", ".journal")



def storage_url(text: str | Path | None = None) -> str:
    """The canonical URL for a storage given as text; ``None`` is the default SQLite file.

    Relative SQLite paths become absolute, so that workers started elsewhere find the file.

    Example:
        >>> storage_url("sqlite:////tmp/x.db")
        'sqlite:////tmp/x.db'
        >>> storage_url(None).endswith("/budgetnet.db")
        True
    """
    if text is None:
        text = DEFAULT_FILE
    text = str(text).strip()
    if not text:
        raise StorageError("storage='': expected a URL (sqlite:///FILE, postgresql+psycopg2://...) or a file path")
    if text.startswith("journal:"):
        path = text[len("journal:") :]
        if not path:
            raise StorageError(f"storage={text!r}: expected journal:PATH with a file path")
        return f"journal:{path}"
    if "://" not in text:
        suffix = Path(text).suffix.lower()
        if suffix in _JOURNAL_SUFFIXES:
            return f"journal:{text}"
        if suffix in _SQLITE_SUFFIXES:
            return f"sqlite:///{Path(text).expanduser().absolute()}"
        raise StorageError(
            f"storage={text!r} is not a URL or a storage file; expected sqlite:///FILE.db, "
            "postgresql+psycopg2://USER:PASSWORD@HOST:PORT/DB, journal:PATH, or a path ending "
            f"in {', '.join(_SQLITE_SUFFIXES + _JOURNAL_SUFFIXES)}"
        )
    scheme, rest = text.split("://", 1)
    if scheme == "sqlite":
        path = rest[1:] if rest.startswith("/") else rest
        if path and path != ":memory:" and not Path(path).is_absolute():
            return f"sqlite:///{Path(path).expanduser().absolute()}"
        return text
    if scheme in ("postgresql", "postgres"):
        driver = "psycopg" if importlib.util.find_spec("psycopg") else "psycopg2"
        return f"postgresql+{driver}://{rest}"
    return text


def open_storage(
    url: str | Path | optuna.storages.BaseStorage | None = None,
    *,
    heartbeat_interval: int = DEFAULT_HEARTBEAT,
    grace_period: int | None = None,
    retry_seconds: float | None = None,
) -> optuna.storages.BaseStorage:
    """Open (and create where needed) the storage at ``url``, after checking it connects.

    Args:
        url: see the module docstring; an Optuna storage object is returned unchanged.
        heartbeat_interval: seconds between heartbeats of a running trial (database storages).
        grace_period: seconds without a heartbeat after which a trial counts as lost
            (default ``3 * heartbeat_interval``); it is then queued again.
        retry_seconds: a database server (not SQLite) that stops answering is retried with
            back-off for this long (default: :func:`~budgetnet.studies.database.retrying`'s, else
            :data:`~budgetnet.studies.database.DEFAULT_RETRY`)
            before the search ends with :func:`storage_lost`; a
            server back within it is survived with nothing lost. Keep it below
            ``grace_period`` where several workers run: a trial silent for longer is retried.

    Raises:
        StorageError: the URL is malformed, its driver is missing, or it does not connect
            (the message names the host and port).

    Example:
        >>> import tempfile, os
        >>> storage = open_storage(os.path.join(tempfile.mkdtemp(), "study.db"))
        >>> type(storage).__name__
        '_CachedStorage'
    """
    if isinstance(url, optuna.storages.BaseStorage):
        return url
    if not is_int(heartbeat_interval, 1) or heartbeat_interval > 86400:
        raise StorageError(
            f"heartbeat_interval={heartbeat_interval!r} is invalid; expected whole seconds from 1 to 86400"
        )
    grace_period = 3 * heartbeat_interval if grace_period is None else grace_period
    if not is_int(grace_period) or grace_period <= heartbeat_interval:
        raise StorageError(
            f"grace_period={grace_period!r} is invalid; expected whole seconds > heartbeat_interval "
            f"({heartbeat_interval})"
        )
    url = storage_url(url)
    if url.startswith("journal:"):
        path = Path(url[len("journal:") :])
        check_storage_file(path, "journal")
        storage = _open_journal(path)
        _LABELS[storage] = (url, url[len("journal:") :])
        return storage
    if url.startswith("sqlite:///"):
        check_storage_file(Path(url[len("sqlite:///") :]), "sqlite")
    storage, where = open_database(url, heartbeat_interval, grace_period, retry_seconds, MAX_RETRY)
    storage = optuna.storages.get_storage(storage)
    _LABELS[storage] = (describe(url), where)
    return storage


#: Storage opened here -> (its URL without the password, host:port or file), for messages.
_LABELS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def storage_label(storage: optuna.storages.BaseStorage) -> tuple[str, str]:
    """``(URL without password, where)`` of a storage :func:`open_storage` opened (``where``
    is ``host:port`` or the file); the class name for any other storage.

    Example:
        >>> import optuna
        >>> storage_label(optuna.storages.InMemoryStorage())
        ('InMemoryStorage', 'memory')
    """
    try:
        return _LABELS[storage]
    except (KeyError, TypeError):
        return type(storage).__name__, "memory" if isinstance(storage, optuna.storages.InMemoryStorage) else "?"


def heartbeat_interval(storage: optuna.storages.BaseStorage) -> int | None:
    """Seconds between a running trial's heartbeats, or ``None`` for a storage without them.

    Example:
        >>> import optuna
        >>> heartbeat_interval(optuna.storages.InMemoryStorage()) is None
        True
    """
    get = getattr(storage, "get_heartbeat_interval", None)
    return get() if callable(get) else None


def storage_lost(label: tuple[str, str], error: Exception) -> StorageError:
    """The error that ends a search when its storage stops answering (``label`` from
    :func:`storage_label`): a database that went away, or a storage file that cannot be
    written (a full disk).

    Example:
        >>> print(storage_lost(("postgresql+psycopg2://me:***@db:5432/x", "db:5432"), OSError("refused")))
        storage postgresql+psycopg2://me:***@db:5432/x: lost the connection to db:5432 during the search (refused); every trial told before is kept there: start the database again and run the same search to resume it
        >>> print(storage_lost(("journal:s.journal", "s.journal"), OSError(28, "No space left on device")))
        storage journal:s.journal: writing s.journal failed during the search ([Errno 28] No space left on device); every trial told before is kept there: free space on its disk and run the same search to resume it
    """
    url, where = label
    reason = str(getattr(error, "orig", None) or error).strip().splitlines()
    reason = reason[0] if reason else type(error).__name__
    if url.startswith(("journal:", "sqlite:")):
        return StorageError(
            f"storage {url}: writing {where} failed during the search ({reason}); every trial told before is "
            "kept there: free space on its disk and run the same search to resume it"
        )
    return StorageError(
        f"storage {url}: lost the connection to {where} during the search ({reason}); every trial told "
        "before is kept there: start the database again and run the same search to resume it"
    )


_SQLITE_HEADER = b"SQLite format 3\x00"
#: A table every Optuna RDB storage holds; an SQLite file with tables but not this one is another program's.
_OPTUNA_TABLE = "studies"


def check_storage_file(path: str | Path, kind: str) -> None:
    """Refuse an existing file that is not a storage of ``kind`` (``"sqlite"`` or ``"journal"``)
    before Optuna opens it: Optuna would fail deep inside SQLAlchemy, or write its tables or
    log lines into someone else's file. A missing or empty file is fine (a new storage).

    Raises:
        StorageError: the file is not an SQLite database, holds another program's tables, or
            is not an Optuna journal (the message names the file and what it starts with).

    Example:
        >>> import tempfile, os
        >>> path = os.path.join(tempfile.mkdtemp(), "budgetnet.db")
        >>> _ = open(path, "w").write("garbage")
        >>> check_storage_file(path, "sqlite")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        budgetnet.errors.StorageError: storage file /.../budgetnet.db is not an SQLite database (it starts with b'garbage'); ...
    """
    path = Path(path)
    if not path.exists():
        return
    if not path.is_file():
        raise StorageError(f"storage file {path} is not a regular file; expected a {kind} storage file")
    try:
        with path.open("rb") as handle:
            head = handle.read(4096)
    except OSError as error:
        raise StorageError(f"storage file {path} cannot be read ({error.strerror}); expected a readable file") from None
    if not head:
        return
    expected = "expected a file that budgetnet search wrote, or a new file name"
    if kind == "journal":
        first = head.split(b"\n", 1)[0]
        try:
            record = json.loads(first)
        except ValueError:
            record = None
        if not isinstance(record, dict) or "op_code" not in record:
            raise StorageError(
                f"storage file {path} is not an Optuna journal (it starts with {first[:40]!r}); {expected}"
            )
        return
    if not head.startswith(_SQLITE_HEADER):
        raise StorageError(f"storage file {path} is not an SQLite database (it starts with {head[:16]!r}); {expected}")
    import sqlite3

    try:
        with contextlib.closing(sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro", uri=True)) as connection:
            tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    except sqlite3.DatabaseError as error:
        raise StorageError(f"storage file {path} is a damaged SQLite database ({error}); {expected}") from None
    if tables and _OPTUNA_TABLE not in tables:
        raise StorageError(
            f"storage file {path} is another program's SQLite database (tables {sorted(tables)[:5]}); {expected}"
        )


# -- journal files -----------------------------------------------------------------------------------
def _open_journal(path: Path) -> optuna.storages.BaseStorage:
    """A journal storage on :class:`budgetnet.studies.journal.SafeJournalBackend`."""
    from optuna.storages.journal import JournalStorage

    from budgetnet.studies.journal import SafeJournalBackend

    if not path.parent.is_dir():
        raise StorageError(
            f"storage journal:{path}: directory {str(path.parent)!r} does not exist; expected an "
            "existing directory (shared by every worker)"
        )
    try:
        return JournalStorage(SafeJournalBackend(str(path)))
    except OSError as error:
        raise StorageError(f"storage journal:{path} cannot be opened: {error}") from None


def url_label(url: str) -> tuple[str, str]:
    """What :func:`storage_label` gives for the storage :func:`open_storage` opens at ``url``
    (a canonical URL, :func:`storage_url`), without opening it.

    Example:
        >>> url_label("postgresql+psycopg2://me:pw@db.lan/optuna")
        ('postgresql+psycopg2://me:***@db.lan/optuna', 'db.lan:5432')
        >>> url_label("journal:runs/s.journal")
        ('journal:runs/s.journal', 'runs/s.journal')
    """
    if url.startswith("journal:"):
        return url, url[len("journal:") :]
    if url.startswith("sqlite:///"):
        return url, url[len("sqlite:///") :]
    from sqlalchemy.engine import make_url

    try:
        return describe(url), host_port(make_url(url))
    except Exception:  # a malformed URL: nothing to say about where
        return describe(url), "?"


#: The longest study name every storage holds (PostgreSQL's and MySQL's column is VARCHAR(512)).
MAX_STUDY_NAME = 512


def check_study_name(name: str) -> str:
    """``name`` when every storage can hold it as a study name.

    Raises:
        SearchError: not text, over :data:`MAX_STUDY_NAME` characters, or holding a NUL.

    Example:
        >>> check_study_name("x" * 600)
        Traceback (most recent call last):
        ...
        budgetnet.errors.SearchError: study name 'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxx...' has 600 characters; expected at most 512 (what every storage holds)
    """
    if not isinstance(name, str) or not name:
        raise SearchError(f"study name {name!r} is invalid; expected text of 1 to {MAX_STUDY_NAME} characters")
    shown = repr(name if len(name) <= 40 else name[:30] + "...")
    if len(name) > MAX_STUDY_NAME:
        raise SearchError(
            f"study name {shown} has {len(name)} characters; expected at most {MAX_STUDY_NAME} (what every "
            "storage holds)"
        )
    if "\x00" in name:
        raise SearchError(f"study name {shown} holds a NUL character; expected text without it (PostgreSQL refuses it)")
    return name


def create_or_load_study(
    storage: optuna.storages.BaseStorage,
    study_name: str,
    directions: list[str],
    sampler: optuna.samplers.BaseSampler | None = None,
    pruner: optuna.pruners.BasePruner | None = None,
) -> tuple[optuna.Study, bool]:
    """Create the study, or load it when it exists or another process was first; race-free.

    Returns ``(study, created)``: ``created`` is True for the one process that created it.
    ``directions`` apply to a new study only; the caller checks what a loaded one holds.

    Example:
        >>> import optuna
        >>> storage = optuna.storages.InMemoryStorage()
        >>> create_or_load_study(storage, "s", ["maximize"])[1], create_or_load_study(storage, "s", ["maximize"])[1]
        (True, False)
    """
    from sqlalchemy.exc import IntegrityError, OperationalError

    for attempt in range(8):
        try:
            study = optuna.create_study(
                storage=storage, study_name=study_name, directions=directions, sampler=sampler, pruner=pruner
            )
            return study, True
        except optuna.exceptions.DuplicatedStudyError:
            pass
        except (IntegrityError, OperationalError):  # two creators at once: the loser loads
            time.sleep(0.1 + random.random() * 0.3 * (attempt + 1))
        try:
            return optuna.load_study(storage=storage, study_name=study_name, sampler=sampler, pruner=pruner), False
        except KeyError:  # the winner's creation is not visible yet
            time.sleep(0.1 + random.random() * 0.3 * (attempt + 1))
    raise StorageError(f"study {study_name!r} could neither be created nor loaded; try again")


def study_names(storage: optuna.storages.BaseStorage) -> list[str]:
    """The names of the studies in ``storage``, oldest first.

    Example:
        >>> import optuna
        >>> storage = optuna.storages.InMemoryStorage()
        >>> _ = optuna.create_study(storage=storage, study_name="a")
        >>> study_names(storage)
        ['a']
    """
    return [summary.study_name for summary in optuna.get_all_study_summaries(storage, include_best_trial=False)]


def load_study(storage: optuna.storages.BaseStorage, study_name: str | None) -> optuna.Study:
    """Load ``study_name``, or the only study in ``storage`` when no name is given.

    Raises:
        SearchError: no such study, or several studies and no name (the message lists them).

    Example:
        >>> import optuna
        >>> storage = optuna.storages.InMemoryStorage()
        >>> _ = optuna.create_study(storage=storage, study_name="only")
        >>> load_study(storage, None).study_name
        'only'
    """
    names = study_names(storage)
    if study_name is None:
        if len(names) == 1:
            study_name = names[0]
        elif not names:
            raise SearchError("storage holds no study yet; run budgetnet search first")
        else:
            raise SearchError(f"study=None is ambiguous; expected one of the studies in this storage: {names}")
    if study_name not in names:
        raise SearchError(f"study={study_name!r} does not exist; expected one of {names}")
    return optuna.load_study(storage=storage, study_name=study_name)
