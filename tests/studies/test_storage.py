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
    with pytest.raises(StorageError, match="heartbeat_interval=0 is invalid; expected whole seconds from 1 to 86400"):
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


# -- issue 20: journal files that survive a cut-off write and a dead lock holder -----------------------
def _journal_with_two_trials(path):
    storage = open_storage(f"journal:{path}")
    study = optuna.create_study(storage=storage, study_name="j", direction="maximize")
    for value in (0.25, 0.5):
        study.add_trial(optuna.create_trial(value=value, params={"x": value},
                                            distributions={"x": optuna.distributions.FloatDistribution(0, 1)}))  # fmt: skip
    return storage


def test_a_torn_journal_tail_is_cut_on_open_and_the_trials_stay(tmp_path):
    path = tmp_path / "s.journal"
    _journal_with_two_trials(path)
    whole = path.read_bytes()
    torn = b'{"op_code":5,"worker_id":"w","trial_id":1,"us'  # a write cut off by a full disk or a kill
    with path.open("ab") as handle:
        handle.write(torn)
    with pytest.warns(UserWarning, match=rf"s.journal: dropped a torn last record \({len(torn)} bytes\) that a write"):
        storage = open_storage(f"journal:{path}")
    assert path.read_bytes() == whole
    study = optuna.load_study(study_name="j", storage=storage)
    assert [t.value for t in study.trials] == [0.25, 0.5]
    study.add_trial(optuna.create_trial(value=0.75))  # appends after the cut: every later read works
    assert [t.value for t in optuna.load_study(study_name="j", storage=open_storage(f"journal:{path}")).trials] == [
        0.25, 0.5, 0.75,
    ]  # fmt: skip


def test_a_journal_write_that_fails_leaves_no_partial_record(tmp_path, monkeypatch):
    import os as os_module

    path = tmp_path / "s.journal"
    storage = _journal_with_two_trials(path)
    whole = path.read_bytes()
    real_write = os_module.write

    def full_after_ten_bytes(descriptor, data):  # a disk that fills up mid-record
        if len(data) > 10:
            return real_write(descriptor, data[:10])
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os_module, "write", full_after_ten_bytes)
    with pytest.raises(Exception) as raised:
        optuna.load_study(study_name="j", storage=storage).set_user_attr("k", "v" * 100)
    monkeypatch.undo()
    assert "No space left on device" in repr(raised.value) or "No space left" in repr(raised.value.__cause__)
    assert path.read_bytes() == whole  # truncated back: whole records or nothing
    assert len(optuna.load_study(study_name="j", storage=open_storage(f"journal:{path}")).trials) == 2


def test_the_journal_lock_of_a_dead_process_is_broken_at_once(tmp_path):
    import os as os_module
    import subprocess
    import sys

    path = tmp_path / "s.journal"
    _journal_with_two_trials(path)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    owner = f"{socket.gethostname()}:{dead.pid}"
    os_module.symlink(owner, f"{path}.lock")  # what a worker killed inside an append leaves
    storage = open_storage(f"journal:{path}")
    with pytest.warns(UserWarning, match=rf"journal lock .*s.journal.lock: its owner {owner} is gone; broke it"):
        optuna.load_study(study_name="j", storage=storage).set_user_attr("k", 1)
    assert not os_module.path.lexists(f"{path}.lock")
    assert optuna.load_study(study_name="j", storage=storage).user_attrs == {"k": 1}


def test_a_lost_database_connection_is_retried_for_the_given_seconds(monkeypatch):
    from sqlalchemy.exc import IntegrityError, OperationalError

    from budgetnet.studies import database as storage_module

    calls = []

    def flaky(self, study_id):  # the server is back at the third call
        calls.append(study_id)
        if len(calls) < 3:
            raise optuna.exceptions.StorageInternalError("commit failed") from OperationalError("x", {}, "closed")
        return {"back": True}

    monkeypatch.setattr(optuna.storages.RDBStorage, "get_study_user_attrs", flaky)
    monkeypatch.setattr(storage_module.time, "sleep", lambda seconds: None)
    retrying = storage_module._retrying("get_study_user_attrs")
    patient = type("Patient", (), {"retry_seconds": 30, "method": retrying})()
    assert patient.method(7) == {"back": True} and calls == [7, 7, 7]
    calls.clear()
    impatient = type("Impatient", (), {"retry_seconds": 0, "method": retrying})()
    with pytest.raises(optuna.exceptions.StorageInternalError):
        impatient.method(8)
    assert calls == [8]  # no retry with 0 seconds
    # SQLite's lock held by another worker: retried even with 0 seconds for lost connections
    calls.clear()
    locked = []

    def busy(self, study_id):
        locked.append(study_id)
        if len(locked) < 3:
            raise optuna.exceptions.StorageInternalError("x") from OperationalError("x", {}, "database is locked")
        return {"free": True}

    monkeypatch.setattr(optuna.storages.RDBStorage, "get_study_user_attrs", busy)
    impatient = type("Impatient", (), {"retry_seconds": 0, "method": storage_module._retrying("get_study_user_attrs")})()
    assert impatient.method(9) == {"free": True} and locked == [9, 9, 9]
    assert storage_module._connection_lost(OperationalError("x", {}, "server closed the connection"))
    assert not storage_module._connection_lost(IntegrityError("x", {}, "duplicate key"))  # bad data: no retry
