"""The platform database lock: processes take turns, one process re-enters, a killed holder releases it."""

import multiprocessing
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from demand_platform import dbfile

REPO = Path(__file__).resolve().parents[2]

# A child that holds the lock with an open connection, commits one row, says so, then holds for
# HOLD seconds (or until killed when HOLD is "forever").
_HOLDER = """
import os, sys, time
from demand_platform import dbfile
database, hold = sys.argv[1], sys.argv[2]
with dbfile.connect(database) as con:
    con.execute("CREATE TABLE IF NOT EXISTS held (pid INTEGER)")
    con.execute("INSERT INTO held VALUES ($1)", [os.getpid()])
    print("held", flush=True)
    time.sleep(3600 if hold == "forever" else float(hold))
"""


def _hold_in_child(database: Path, hold: str) -> subprocess.Popen[str]:
    child = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(database), hold], cwd=REPO, stdout=subprocess.PIPE, text=True
    )
    assert child.stdout is not None and child.stdout.readline().strip() == "held"
    return child


def _in_thread(fn, timeout: float = 20.0) -> None:
    """Run ``fn`` in a thread and fail (instead of hanging) when it does not finish in ``timeout``."""
    errors: list[BaseException] = []

    def run() -> None:
        try:
            fn()
        except BaseException as error:
            errors.append(error)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout)
    assert not thread.is_alive(), f"deadlock: still running after {timeout} s"
    if errors:
        raise errors[0]


def test_nested_connections_in_one_process_do_not_deadlock(tmp_path: Path) -> None:
    database = tmp_path / "w.duckdb"

    def nested() -> None:
        with dbfile.connect(database, timeout_s=2) as outer:
            outer.execute("CREATE TABLE t (x INTEGER)")
            with dbfile.connect(database, timeout_s=2) as inner, dbfile.database_lock(database, timeout_s=2):
                inner.execute("INSERT INTO t VALUES (1)")
                assert dbfile.holds_lock(database)
            assert dbfile.holds_lock(database)  # the outer connection still holds it
            outer.execute("INSERT INTO t VALUES (2)")
        assert not dbfile.holds_lock(database)

    _in_thread(nested)
    # Released for other processes once the outermost block exits.
    child = _hold_in_child(database, "0")
    assert child.wait(timeout=30) == 0
    with dbfile.connect(database, read_only=True) as con:
        assert sorted(x for (x,) in con.execute("SELECT x FROM t").fetchall()) == [1, 2]


def test_another_thread_waits_for_the_holder(tmp_path: Path) -> None:
    database = tmp_path / "w.duckdb"
    with dbfile.connect(database):
        caught: list[BaseException] = []

        def other() -> None:
            try:
                with dbfile.connect(database, timeout_s=0.2):
                    pass
            except dbfile.DatabaseLockTimeout as error:
                caught.append(error)

        _in_thread(other)
        assert len(caught) == 1
    _in_thread(lambda: dbfile.connect(database, timeout_s=0.2).__enter__().close())


def test_second_process_waits_its_turn_where_a_plain_connect_fails(tmp_path: Path) -> None:
    database = tmp_path / "w.duckdb"
    child = _hold_in_child(database, "1.5")
    try:
        # Negative control: the unlocked path fails at once on DuckDB's own file lock.
        with pytest.raises(duckdb.IOException, match="Could not set lock"):
            duckdb.connect(str(database), read_only=True)
        started = time.monotonic()
        with dbfile.connect(database, read_only=True) as con:
            waited = time.monotonic() - started
            (pid,) = con.execute("SELECT pid FROM held").fetchone() or (None,)
    finally:
        child.wait(timeout=30)
    assert pid == child.pid
    assert waited > 0.5, f"did not wait for the holder ({waited:.2f} s)"
    assert child.returncode == 0


def test_timeout_names_the_lock_file_and_the_holder_pid(tmp_path: Path) -> None:
    database = tmp_path / "w.duckdb"
    child = _hold_in_child(database, "forever")
    try:
        started = time.monotonic()
        with pytest.raises(dbfile.DatabaseLockTimeout) as caught, dbfile.connect(database, timeout_s=0.3):
            pass
        assert time.monotonic() - started >= 0.3
    finally:
        child.kill()
        child.wait(timeout=30)
    message = str(caught.value)
    assert str(dbfile.lock_path(database)) in message and str(database) in message
    assert f"pid={child.pid}" in message and caught.value.holder_pid == child.pid
    assert dbfile.LOCK_TIMEOUT_ENV in message


def test_sigkilled_holder_releases_the_lock_and_keeps_committed_rows(tmp_path: Path) -> None:
    database = tmp_path / "w.duckdb"
    child = _hold_in_child(database, "forever")
    os.kill(child.pid, signal.SIGKILL)
    assert child.wait(timeout=30) == -signal.SIGKILL
    started = time.monotonic()
    with dbfile.connect(database, timeout_s=10) as con:
        assert time.monotonic() - started < 5
        assert con.execute("SELECT pid FROM held").fetchall() == [(child.pid,)]
    # The dead holder's line stays in the file but no longer blocks anyone.
    assert not dbfile.holds_lock(database)


def _try_lock(database: str, result: "multiprocessing.Queue[str]") -> None:
    try:
        with dbfile.database_lock(database, timeout_s=0.3):
            result.put("acquired")
    except dbfile.DatabaseLockTimeout:
        result.put("timeout")


def test_forked_child_does_not_inherit_the_parents_hold(tmp_path: Path) -> None:
    database = str(tmp_path / "w.duckdb")
    context = multiprocessing.get_context("fork")
    result: multiprocessing.Queue[str] = context.Queue()
    with dbfile.database_lock(database):
        child = context.Process(target=_try_lock, args=(database, result))
        child.start()
        child.join(timeout=30)
        assert result.get(timeout=5) == "timeout"
    child = context.Process(target=_try_lock, args=(database, result))
    child.start()
    child.join(timeout=30)
    assert result.get(timeout=5) == "acquired"


def test_lock_timeout_from_argument_environment_or_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(dbfile.LOCK_TIMEOUT_ENV, raising=False)
    assert dbfile.lock_timeout() == dbfile.DEFAULT_LOCK_TIMEOUT_S == 3600
    monkeypatch.setenv(dbfile.LOCK_TIMEOUT_ENV, "12.5")
    assert dbfile.lock_timeout() == 12.5 and dbfile.lock_timeout(3) == 3
    monkeypatch.setenv(dbfile.LOCK_TIMEOUT_ENV, "soon")
    with pytest.raises(ValueError, match=dbfile.LOCK_TIMEOUT_ENV):
        dbfile.lock_timeout()


def test_memory_database_needs_no_lock(tmp_path: Path) -> None:
    with dbfile.connect(":memory:") as con:
        assert con.execute("SELECT 42").fetchone() == (42,)
    assert not list(tmp_path.iterdir())


def test_insert_by_name_creates_adds_columns_and_fills_missing_with_null(tmp_path: Path) -> None:
    with dbfile.connect(tmp_path / "w.duckdb") as con:
        dbfile.insert_by_name(con, "t", pd.DataFrame({"a": [], "b": []}))  # empty: nothing created
        assert con.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_name = 't'"
        ).fetchone() == (0,)
        dbfile.insert_by_name(con, "t", pd.DataFrame({"a": [1], "b": [10]}))
        dbfile.insert_by_name(con, "t", pd.DataFrame({"b": [20], "a": [2]}))  # other order
        dbfile.insert_by_name(con, "t", pd.DataFrame({"A": [3], "c": ["new"]}))  # new column, b missing
        rows = con.execute("SELECT a, b, c FROM t ORDER BY a").fetchall()
        types = dict(con.execute("SELECT column_name, data_type FROM information_schema.columns").fetchall())
    assert rows == [(1, 10, None), (2, 20, None), (3, None, "new")]
    assert types["c"] == "VARCHAR"
