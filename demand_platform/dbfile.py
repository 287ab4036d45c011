"""The platform database file: one lock that every process respects, connections under it, by-name writes.

Embedded DuckDB lets one process at a time open a database file read-write (and no other process open it
at all meanwhile): a second process fails at once with ``IO Error: Could not set lock on file``. The CLI
executes runs in its own process while ``dagster dev``'s daemon launches runs in subprocesses, so on one
home they collide. Every connection to the platform database, read-write *and* read-only, goes through
:func:`connect`, which first takes an OS advisory lock (``fcntl.flock``) on ``<database>.lock``:

* a process waits its turn (up to ``timeout_s``, default :data:`DEFAULT_LOCK_TIMEOUT_S` or the
  ``DEMAND_PLATFORM_DB_LOCK_TIMEOUT_S`` environment variable) instead of failing, then raises
  :class:`DatabaseLockTimeout` naming the file and the holder's pid (written into the lock file);
* the lock is held only while a connection is open, never for a whole run, so the computations of
  different processes still overlap; the kernel releases it when the process dies, even by SIGKILL;
* it is re-entrant within a process: code holding a connection may call code that opens another one to
  the same file (a second ``flock`` on another descriptor of the same process would deadlock). A
  process-wide ``RLock`` per database plus a depth count keep one ``flock`` per process; another thread
  of the process waits on the ``RLock`` like another process waits on the file.

Nested connections of one process share DuckDB's database instance, so they must be opened with the same
``read_only`` and ``config`` (DuckDB raises ``ConnectionException`` otherwise). A process that does not use
this module (an ad-hoc ``duckdb`` shell) still holds DuckDB's own lock: :func:`connect` retries that
lock error until the same deadline.

:func:`insert_by_name` writes a frame into a table by column name (created from the frame if missing, new
columns added), the write half of a partition replacement that the caller wraps in one transaction.
"""

import datetime as dt
import fcntl
import logging
import os
import random
import re
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import duckdb
import pandas as pd

from demand_platform import lake

T = TypeVar("T")

LOCK_TIMEOUT_ENV = "DEMAND_PLATFORM_DB_LOCK_TIMEOUT_S"
DEFAULT_LOCK_TIMEOUT_S = 3600.0
LOCK_SUFFIX = ".lock"
#: Waiting longer than this logs (once per wait) who holds the lock.
LOG_WAIT_AFTER_S = 5.0
_MAX_POLL_S = 0.05
_MEMORY = {"", ":memory:"}

log = logging.getLogger(__name__)


class DatabaseLockTimeout(TimeoutError):
    """The platform database stayed locked by another process for longer than the timeout.

    Attributes:
        database: The database path.
        lock_file: The lock file waited on (or the database itself when DuckDB's own lock was held).
        holder: What the lock file (or DuckDB's error) says about the holder, or None when unknown.
        holder_pid: The holder's process id when known.
        waited_s: How long the caller waited.
    """

    def __init__(self, database: str, lock_file: str, holder: str | None, waited_s: float) -> None:
        self.database = database
        self.lock_file = lock_file
        self.holder = holder
        found = re.search(r"\bPID[ =](\d+)", holder or "", flags=re.IGNORECASE)
        self.holder_pid = int(found.group(1)) if found else None
        self.waited_s = waited_s
        super().__init__(
            f"timed out after {waited_s:.1f} s waiting for the lock {lock_file} of DuckDB database {database}: "
            f"held by {holder or 'an unknown process'}. Wait for it to finish (or end it), or raise "
            f"{LOCK_TIMEOUT_ENV} (seconds, default {DEFAULT_LOCK_TIMEOUT_S:.0f})."
        )


def lock_path(database: str | os.PathLike[str]) -> Path:
    """The lock file of ``database``: ``<database>.lock`` next to it."""
    return Path(os.path.abspath(os.fspath(database) + LOCK_SUFFIX))


def lock_timeout(timeout_s: float | None = None) -> float:
    """``timeout_s``, else ``$DEMAND_PLATFORM_DB_LOCK_TIMEOUT_S``, else :data:`DEFAULT_LOCK_TIMEOUT_S`."""
    if timeout_s is not None:
        return float(timeout_s)
    raw = os.environ.get(LOCK_TIMEOUT_ENV)
    if raw:
        try:
            return float(raw)
        except ValueError:
            raise ValueError(f"{LOCK_TIMEOUT_ENV}={raw!r} is not a number of seconds") from None
    return DEFAULT_LOCK_TIMEOUT_S


@dataclass
class _Held:
    """This process's hold on one database's lock."""

    rlock: threading.RLock
    depth: int = 0
    fd: int | None = None


_STATES: dict[str, _Held] = {}
_STATES_GUARD = threading.Lock()


def _forget_after_fork() -> None:
    """In a forked child: the parent's holds are not the child's (the flock stays with the parent)."""
    global _STATES, _STATES_GUARD
    for held in _STATES.values():
        if held.fd is not None:
            with suppress(OSError):
                os.close(held.fd)  # closing a copy leaves the parent's lock in place (no LOCK_UN)
    _STATES = {}
    _STATES_GUARD = threading.Lock()


os.register_at_fork(after_in_child=_forget_after_fork)


def _held(path: Path) -> _Held:
    with _STATES_GUARD:
        held = _STATES.get(str(path))
        if held is None:
            held = _STATES[str(path)] = _Held(threading.RLock())
        return held


def holds_lock(database: str | os.PathLike[str]) -> bool:
    """Whether this process currently holds the lock of ``database`` (in any thread)."""
    with _STATES_GUARD:
        held = _STATES.get(str(lock_path(database)))
    return held is not None and held.depth > 0


def lock_holder(database: str | os.PathLike[str]) -> str | None:
    """What the lock file says about the process holding it (``pid=... since=... cmd=...``), or None."""
    try:
        text = lock_path(database).read_text().strip()
    except OSError:
        return None
    return text or None


def _holder_line() -> bytes:
    since = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    cmd = " ".join(sys.argv)[:300].replace("\n", " ")
    return f"pid={os.getpid()} since={since} cmd={cmd}\n".encode()


def _lock_file(path: Path, database: str, started: float, deadline: float) -> int:
    """Open and ``flock`` the lock file, polling until ``deadline``; the locked descriptor."""
    logged = False
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
        try:
            pause = 0.001
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    now = time.monotonic()
                    if now >= deadline:
                        raise DatabaseLockTimeout(
                            database, str(path), lock_holder(database), now - started
                        ) from None
                    if not logged and now - started > LOG_WAIT_AFTER_S:
                        log.warning(
                            f"waiting for the lock {path} of {database}, held by {lock_holder(database)}"
                        )
                        logged = True
                    time.sleep(min(pause, deadline - now))
                    pause = min(pause * 2, _MAX_POLL_S)
            # Whoever deleted or replaced the lock file meanwhile made our descriptor point at a file
            # nobody else will lock: only a lock on the file now at the path counts.
            try:
                current = os.path.samestat(os.fstat(fd), os.stat(path))
            except FileNotFoundError:
                current = False
            if current:
                os.ftruncate(fd, 0)
                os.pwrite(fd, _holder_line(), 0)
                return fd
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)


def _unlock_file(fd: int) -> None:
    try:
        os.ftruncate(fd, 0)  # no stale holder for the next waiter to report
        fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


@contextmanager
def _hold(database: str, timeout_s: float | None, started: float) -> Iterator[float]:
    """Hold the lock of ``database``; yields the deadline (for the connection's own retries)."""
    timeout = lock_timeout(timeout_s)
    deadline = started + timeout
    path = lock_path(database)
    held = _held(path)
    # Another thread of this process holding it makes this thread wait here, like another process would.
    if not held.rlock.acquire(timeout=min(max(timeout, 0.0), threading.TIMEOUT_MAX)):
        raise DatabaseLockTimeout(
            database, str(path), f"another thread of this process (pid={os.getpid()})", timeout
        )
    try:
        if held.depth == 0:
            held.fd = _lock_file(path, database, started, deadline)
        held.depth += 1
    except BaseException:
        held.rlock.release()
        raise
    try:
        yield deadline
    finally:
        held.depth -= 1
        try:
            if held.depth == 0 and held.fd is not None:
                fd, held.fd = held.fd, None
                _unlock_file(fd)
        finally:
            held.rlock.release()


@contextmanager
def database_lock(database: str | os.PathLike[str], timeout_s: float | None = None) -> Iterator[None]:
    """Hold the platform lock of ``database`` (re-entrant within the process) without opening it.

    Args:
        database: Path of the DuckDB database.
        timeout_s: Longest wait for another process (or thread) to release it; None for
            :func:`lock_timeout`'s default.

    Raises:
        DatabaseLockTimeout: The lock was not free within ``timeout_s``.
    """
    with _hold(os.fspath(database), timeout_s, time.monotonic()):
        yield


def _is_duckdb_lock_error(error: duckdb.Error) -> bool:
    return isinstance(error, duckdb.IOException) and "could not set lock on file" in str(error).lower()


def _open(
    database: str, read_only: bool, config: dict[str, Any], started: float, deadline: float
) -> duckdb.DuckDBPyConnection:
    """``duckdb.connect``, retrying DuckDB's own lock error (a process outside this module) until ``deadline``."""
    pause = 0.01
    while True:
        try:
            return duckdb.connect(database, read_only=read_only, config=config)
        except duckdb.ConnectionException as error:
            raise duckdb.ConnectionException(
                f"{database}: {error}. This process already has a connection to the file open with "
                "another read_only/config; nested connections must be opened like the outer one."
            ) from error
        except duckdb.IOException as error:
            now = time.monotonic()
            if not _is_duckdb_lock_error(error):
                raise
            if now >= deadline:
                raise DatabaseLockTimeout(database, database, str(error), now - started) from error
            time.sleep(min(pause, max(deadline - now, 0.0)))
            pause = min(pause * 2, 1.0)


@contextmanager
def connect(
    database: str | os.PathLike[str],
    read_only: bool = False,
    *,
    timeout_s: float | None = None,
    config: dict[str, Any] | None = None,
) -> Iterator[duckdb.DuckDBPyConnection]:
    """A DuckDB connection to the platform database, opened and closed under the platform lock.

    The lock is taken before opening (waiting for other processes up to ``timeout_s``) and released
    after closing. Re-entrant: opening another connection to the same file inside the block does not
    wait (it must use the same ``read_only`` and ``config``). ``:memory:`` is opened without a lock.

    Args:
        database: Path of the DuckDB database.
        read_only: Open read-only (the lock is taken all the same: DuckDB refuses a reader while
            another process writes).
        timeout_s: Longest wait; None for ``$DEMAND_PLATFORM_DB_LOCK_TIMEOUT_S`` or one hour.
        config: DuckDB configuration options (the same for every connection of a process).

    Yields:
        The open connection (closed when the block exits).

    Raises:
        DatabaseLockTimeout: The database stayed locked for ``timeout_s``.
    """
    database = os.fspath(database)
    config = dict(config or {})
    if lake.is_lake(database):  # a DuckLake: its catalog arbitrates writers, no file lock to take
        con = lake.connect(database, config)
        try:
            yield con
        finally:
            con.close()
        return
    if database in _MEMORY:
        con = duckdb.connect(database or ":memory:", read_only=read_only, config=config)
        try:
            yield con
        finally:
            con.close()
        return
    started = time.monotonic()
    with _hold(database, timeout_s, started) as deadline:
        con = _open(database, read_only, config, started, deadline)
        try:
            yield con
        finally:
            con.close()


def on_lake(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether ``con`` works on a lake (:mod:`demand_platform.lake`: no PRIMARY KEY or UNIQUE constraints)."""
    row = con.execute("SELECT current_database()").fetchone()
    return row is not None and row[0] == lake.LAKE_ALIAS


@contextmanager
def cursor(con: duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
    """A cursor of ``con`` (a duplicate connection, for a second result while ``con`` holds one).

    A DuckDB cursor starts on the database's default catalog, not on the one its connection ``USE``d: on a
    lake connection (:mod:`demand_platform.lake`) the cursor is moved onto the lake, where the tables are.
    """
    with con.cursor() as cur:
        attached = cur.execute(
            "SELECT 1 FROM duckdb_databases() WHERE database_name = $n", {"n": lake.LAKE_ALIAS}
        ).fetchall()
        if attached:
            cur.execute(f"USE {lake.LAKE_ALIAS}")
        yield cur


#: Attempts of a write transaction whose commit conflicts with another writer's (a lake only).
WRITE_ATTEMPTS = 12
_CONFLICT_MARKERS = ("transaction conflict", "write-write conflict")


def is_write_conflict(error: BaseException) -> bool:
    """Whether ``error`` is a commit refused because another writer's transaction conflicted with it.

    A DuckLake refuses, for instance, to commit a transaction that deleted rows of a table another
    transaction inserted into after it began (``Transaction conflict - attempting to delete from table ...``).
    """
    return isinstance(error, duckdb.Error) and any(m in str(error).lower() for m in _CONFLICT_MARKERS)


def _rollback_quietly(con: duckdb.DuckDBPyConnection) -> None:
    with suppress(duckdb.Error):  # a failed COMMIT leaves no transaction to roll back
        con.rollback()


def write_transaction(
    con: duckdb.DuckDBPyConnection,
    body: Callable[[duckdb.DuckDBPyConnection], T],
    *,
    attempts: int = WRITE_ATTEMPTS,
    max_pause_s: float = 2.0,
) -> T:
    """Run ``body(con)`` in one transaction, committed when it returns, rolled back when it raises.

    On a lake (:mod:`demand_platform.lake`) writers on other machines commit meanwhile: when the commit
    (or a statement) fails on a write conflict, the transaction is rolled back and ``body`` runs again
    from the start in a new one, after a random pause that grows with the attempts. ``body`` must
    therefore only write through ``con`` (it may run several times). A DuckDB file has one writer at a
    time (the platform lock): there the first attempt commits or raises.

    Args:
        con: Read-write connection.
        body: The transaction's statements.
        attempts: Most attempts before the conflict is raised.
        max_pause_s: Longest pause between two attempts.

    Returns:
        What ``body`` returned in the attempt that committed.
    """
    for attempt in range(1, attempts + 1):
        con.begin()
        try:
            result = body(con)
            con.commit()
        except BaseException as error:
            _rollback_quietly(con)
            if attempt == attempts or not is_write_conflict(error):
                raise
            log.info("write conflict (attempt %d of %d), retrying: %s", attempt, attempts, error)
            time.sleep(random.uniform(0.5, 1.0) * min(max_pause_s, 0.05 * 2**attempt))
            continue
        return result
    raise AssertionError("unreachable")  # the last attempt returns or raises


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def insert_by_name(
    con: duckdb.DuckDBPyConnection, table: str, frame: pd.DataFrame, schema: str = "main"
) -> None:
    """Insert ``frame`` into ``schema.table`` by column name.

    The table is created from the frame when it does not exist. A frame column the table lacks is added
    (``ALTER TABLE ADD COLUMN`` with the type DuckDB gives the frame's column; earlier rows get NULL); a
    table column the frame lacks gets NULL. Runs inside the caller's transaction when one is open.

    Args:
        con: Read-write connection.
        table: Table name.
        frame: Rows to insert; an empty frame writes nothing (no table, no column).
        schema: Schema of the table.
    """
    if frame.empty:
        return
    target = f"{_ident(schema)}.{_ident(table)}"
    # Read by DuckDB's replacement scan of this function's locals: unlike register(), it works while the
    # caller's connection still has an unfinished result.
    _platform_frame_to_insert = frame
    source = "SELECT * FROM _platform_frame_to_insert"
    existing = con.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = $s AND table_name = $t",
        {"s": schema, "t": table},
    ).fetchall()
    if not existing:
        con.execute(f"CREATE TABLE {target} AS {source}")
        return
    have = {name.casefold() for (name,) in existing}  # DuckDB identifiers are case-insensitive
    for name, dtype, *_ in con.execute(f"DESCRIBE {source}").fetchall():
        if name.casefold() not in have:
            con.execute(f"ALTER TABLE {target} ADD COLUMN {_ident(name)} {dtype}")
    con.execute(f"INSERT INTO {target} BY NAME {source}")
