"""budgetnet.studies.storage: URL forms, connection errors that name host and port, race-free study
creation on a real PostgreSQL server, and optuna-dashboard reading a budgetnet study."""

from __future__ import annotations

import contextlib
import hashlib
import json
import multiprocessing
import socket
import sqlite3
import time
import warnings
from wsgiref.util import setup_testing_defaults

import optuna
import pytest

from budgetnet.errors import BudgetNetError, SearchError, StorageError
from budgetnet.studies.storage import (
    create_or_load_study,
    describe,
    load_study,
    open_storage,
    storage_url,
    study_names,
)


def test_url_forms(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert storage_url(None) == f"sqlite:///{tmp_path}/budgetnet.db"  # the default: a file here
    assert storage_url("runs.db") == f"sqlite:///{tmp_path}/runs.db"
    assert storage_url("sqlite:///rel.sqlite") == f"sqlite:///{tmp_path}/rel.sqlite"
    assert storage_url("sqlite:////abs/x.db") == "sqlite:////abs/x.db"
    assert storage_url("shared/s.journal") == "journal:shared/s.journal"
    assert storage_url("journal:/nfs/s") == "journal:/nfs/s"
    assert storage_url("postgresql://u:p@h:5/d") == "postgresql+psycopg2://u:p@h:5/d"
    assert storage_url("postgresql+psycopg2://u@h/d") == "postgresql+psycopg2://u@h/d"
    assert describe("postgresql+psycopg2://me:secret@db:5433/x") == "postgresql+psycopg2://me:***@db:5433/x"


@pytest.mark.parametrize(
    "text, message",
    [
        ("results", "storage='results' is not a URL or a storage file; expected sqlite:///FILE.db"),
        ("", "storage='': expected a URL"),
        ("journal:", "storage='journal:': expected journal:PATH"),
    ],
)
def test_malformed_storage(text, message):
    with pytest.raises(StorageError, match=message):
        storage_url(text)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_a_server_that_does_not_answer_names_host_and_port():
    port = free_port()  # nothing listens there
    with pytest.raises(StorageError, match=rf"cannot connect to 127\.0\.0\.1:{port} \(.*refused"):
        open_storage(f"postgresql+psycopg2://me:secret@127.0.0.1:{port}/optuna")
    with pytest.raises(StorageError) as error:
        open_storage(f"postgresql://me:secret@127.0.0.1:{port}/optuna")
    assert "secret" not in str(error.value)  # the password is never printed
    with pytest.raises(StorageError, match=r"cannot connect to no-such-host\.invalid:5432"):
        open_storage("postgresql+psycopg2://me@no-such-host.invalid/optuna")
    assert issubclass(StorageError, BudgetNetError)


def test_missing_directories_and_bad_heartbeats(tmp_path):
    with pytest.raises(StorageError, match="directory '.*/nope' does not exist"):
        open_storage(str(tmp_path / "nope" / "s.db"))
    with pytest.raises(StorageError, match="directory '.*/nope' does not exist"):
        open_storage(f"journal:{tmp_path / 'nope' / 's.log'}")
    with pytest.raises(StorageError, match="heartbeat_interval=0 is invalid; expected whole seconds >= 1"):
        open_storage(str(tmp_path / "s.db"), heartbeat_interval=0)
    with pytest.raises(StorageError, match=r"grace_period=2 is invalid; expected whole seconds > heartbeat_interval \(5\)"):
        open_storage(str(tmp_path / "s.db"), heartbeat_interval=5, grace_period=2)


def test_sqlite_and_journal_storages_hold_a_study(tmp_path):
    sqlite = open_storage(str(tmp_path / "s.db"), heartbeat_interval=2)
    assert sqlite.get_heartbeat_interval() == 2
    journal = open_storage(str(tmp_path / "s.journal"))
    for storage in (sqlite, journal):
        study, created = create_or_load_study(storage, "a", ["maximize"])
        assert created and not create_or_load_study(storage, "a", ["maximize"])[1]
        assert study_names(storage) == ["a"] and load_study(storage, None).study_name == "a"
    with pytest.raises(SearchError, match=r"study='b' does not exist; expected one of \['a'\]"):
        load_study(sqlite, "b")
    create_or_load_study(sqlite, "b", ["maximize"])
    with pytest.raises(SearchError, match=r"study=None is ambiguous; expected one of the studies in this storage: \['a', 'b'\]"):
        load_study(sqlite, None)


def _digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _other_program_db(path):
    with contextlib.closing(sqlite3.connect(path)) as connection:
        connection.execute("CREATE TABLE contacts (name TEXT)")
        connection.commit()


@pytest.mark.parametrize(
    "name, write, message",
    [
        ("budgetnet.db", lambda p: p.write_bytes(b"garbage"),
         "is not an SQLite database (it starts with b'garbage'); expected a file that budgetnet search wrote"),
        ("s.sqlite", lambda p: p.write_bytes(b"SQLite format 3\x00" + b"\xff" * 200),
         "is a damaged SQLite database (file is not a database)"),
        ("contacts.db", _other_program_db, "is another program's SQLite database (tables ['contacts'])"),
        ("s.journal", lambda p: p.write_bytes(b"garbage\n"), "is not an Optuna journal (it starts with b'garbage')"),
        ("s.log", lambda p: p.write_text('{"x": 1}\n'), "is not an Optuna journal (it starts with b'{\"x\": 1}')"),
    ],
)
def test_a_file_that_is_not_a_storage_is_refused_and_left_alone(tmp_path, name, write, message):
    path = tmp_path / name
    write(path)
    before = _digest(path)
    with pytest.raises(StorageError) as error:
        open_storage(str(path))
    assert str(error.value).startswith(f"storage file {path} ") and message in str(error.value)
    assert _digest(path) == before and sorted(tmp_path.iterdir()) == [path]  # no -wal / -shm file either


def test_a_directory_is_not_a_storage_file(tmp_path):
    (tmp_path / "runs.db").mkdir()
    with pytest.raises(StorageError, match=r"storage file .*runs\.db is not a regular file"):
        open_storage(str(tmp_path / "runs.db"))


def test_storages_budgetnet_wrote_open_again(tmp_path):
    for name in ("s.db", "s.journal", "empty.db"):
        path = tmp_path / name
        if name == "empty.db":
            path.touch()  # an empty file is a new SQLite database
        create_or_load_study(open_storage(str(path)), "a", ["maximize"])
        assert study_names(open_storage(str(path))) == ["a"]


def _create(url, queue):
    storage = open_storage(url)
    queue.put(create_or_load_study(storage, "raced", ["maximize", "minimize"])[1])


def test_first_creation_is_race_free_on_postgresql(postgres_url):
    """Six processes create the schema and the study at once: exactly one creates it."""
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    processes = [context.Process(target=_create, args=(postgres_url, queue)) for _ in range(6)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(120)
    assert [process.exitcode for process in processes] == [0] * 6
    created = sorted(queue.get(timeout=5) for _ in processes)
    assert created == [False] * 5 + [True]
    study = optuna.load_study(study_name="raced", storage=postgres_url)
    assert [d.name for d in study.directions] == ["MAXIMIZE", "MINIMIZE"]


def _take_queued(url, start, count, queue):
    study = optuna.load_study(study_name="q", storage=open_storage(url))
    while time.time() < start:  # both processes ask at the same instant
        pass
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # heartbeats outside optimize
        queue.put([study.ask().number for _ in range(count)])


def test_two_processes_never_take_the_same_queued_trial_on_sqlite(tmp_path):
    """How a worker takes a queued slot (read WAITING, write RUNNING) is one transaction on
    SQLite too: before, two processes took 6-10 of 400 queued slots both."""
    url = f"sqlite:///{tmp_path / 'q.db'}"
    study = optuna.create_study(study_name="q", storage=open_storage(url))
    for _ in range(200):
        study.enqueue_trial({})
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    start = time.time() + 4
    processes = [context.Process(target=_take_queued, args=(url, start, 100, queue)) for _ in range(2)]
    for process in processes:
        process.start()
    taken = [queue.get(timeout=120) for _ in processes]
    for process in processes:
        process.join(30)
    assert sorted(taken[0] + taken[1]) == list(range(200))  # each slot taken exactly once


def test_optuna_dashboard_lists_a_budgetnet_study(tmp_path):
    optuna_dashboard = pytest.importorskip("optuna_dashboard")
    from budgetnet.studies.settings import DIRECTIONS

    url = storage_url(str(tmp_path / "budgetnet.db"))
    study, _ = create_or_load_study(open_storage(url), "small-digits", [DIRECTIONS["accuracy"]])
    study.set_user_attr("budgetnet", {"objectives": ["accuracy"]})
    app = optuna_dashboard.wsgi(url)
    environ = {"PATH_INFO": "/api/studies", "REQUEST_METHOD": "GET"}
    setup_testing_defaults(environ)
    status = []
    body = b"".join(app(environ, lambda code, headers, exc_info=None: status.append(code)))
    assert status == ["200 OK"]
    summaries = json.loads(body)["study_summaries"]
    assert [s["study_name"] for s in summaries] == ["small-digits"]
    assert summaries[0]["directions"] == ["maximize"]
