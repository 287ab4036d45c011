"""What the platform lock costs per connection: ``dbfile.connect`` against a bare ``duckdb.connect``.

Opens a small database (100,000 rows) ``--n`` times each way, alternating which goes first, runs one
query and closes; prints the medians, the median of the paired differences, and the lock's own cost
(``database_lock`` without a connection, outermost and re-entered). No other process uses the file.

    python bench/bench_dbfile_lock.py --n 400
"""

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import duckdb

from demand_platform import dbfile


def _timed(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def _us(values: list[float]) -> float:
    return statistics.median(values) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=400, help="opens per variant")
    n = parser.parse_args().n
    database = str(Path(tempfile.mkdtemp()) / "w.duckdb")
    with duckdb.connect(database) as con:
        con.execute("CREATE TABLE t AS SELECT range AS x FROM range(100000)")

    def bare(read_only: bool) -> None:
        con = duckdb.connect(database, read_only=read_only)
        con.execute("SELECT count(*) FROM t").fetchall()
        con.close()

    def locked(read_only: bool) -> None:
        with dbfile.connect(database, read_only=read_only) as con:
            con.execute("SELECT count(*) FROM t").fetchall()

    def lock_only() -> None:
        with dbfile.database_lock(database):
            pass

    for read_only in (False, True):
        plain, with_lock = [], []
        for i in range(n):
            if i % 2:
                plain.append(_timed(partial(bare, read_only)))
                with_lock.append(_timed(partial(locked, read_only)))
            else:
                with_lock.append(_timed(partial(locked, read_only)))
                plain.append(_timed(partial(bare, read_only)))
        diffs = [b - a for a, b in zip(plain, with_lock, strict=True)]
        print(
            f"read_only={read_only}: duckdb.connect+query+close median {_us(plain):.0f} us, "
            f"dbfile.connect {_us(with_lock):.0f} us, median paired difference {_us(diffs):.0f} us"
        )
    print(f"database_lock alone, outermost: median {_us([_timed(lock_only) for _ in range(n)]):.1f} us")
    with dbfile.database_lock(database):
        print(f"database_lock re-entered: median {_us([_timed(lock_only) for _ in range(n)]):.1f} us")


if __name__ == "__main__":
    main()
