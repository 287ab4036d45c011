"""Cluster storage: which table store takes concurrent partition writers from different processes (issue 16).

The platform writes a partition the same way everywhere: one process replaces its own warehouse's rows of a
table, ``DELETE`` of the warehouse's rows and ``INSERT`` of the new ones in one transaction
(:func:`demand_platform.dbfile.write_transaction` around :func:`demand_platform.dbfile.insert_by_name`, as
the IO manager does), on a connection it opens for the write and closes after. This benchmark runs K writer
processes (``--writers``, one warehouse each) at once, each replacing its partition of a ``forecasts``
table R times (``--rounds``), ``--rows`` rows a partition (300,000 = 10,000 SKUs x 30 horizons: the
forecasts of a full-size warehouse), on each store (``--stores``):

* ``duckdb_file``: the embedded DuckDB file, the local default. :func:`demand_platform.dbfile.connect` takes
  the platform's file lock, so the writers take turns (the lock wait is the connect time).
* ``ducklake``: the DuckLake of the cluster environment, catalog in PostgreSQL and Parquet on S3 (moto),
  created by :func:`demand_platform.lake.create_lake` and opened by ``dbfile.connect(<lake string>)``. Its
  writers run at once; a commit that conflicts with another's is retried by ``write_transaction``.
* ``postgres``: PostgreSQL itself as the table store, through DuckDB's postgres extension (loaded from
  :func:`demand_platform.lake.extension_file`): an in-memory DuckDB ``ATTACH``es the database
  (``TYPE postgres``) and ``USE``s it, then the same ``write_transaction`` and ``insert_by_name`` run on
  ``public.forecasts``. DuckDB's ``BEGIN``/``COMMIT`` are PostgreSQL's there (one PostgreSQL transaction,
  the insert sent by ``COPY``), so no psycopg path is needed. The table has a btree index on
  ``warehouse_id``, what a PostgreSQL table read and deleted by warehouse would have.

Every store starts with each warehouse's partition written once (so every round deletes rows). Per store it
prints: the wall time of all K x R writes (from the start signal to the last commit; median of
``--repeats``), the per-write latency (connect + transaction + close) median and p90 with its connect part
(the lock wait on the file) and transaction part, the write conflicts retried (log records ``write
conflict`` of the logger ``demand_platform.dbfile``, counted in each writer; ``dbfile.py`` is untouched) and
any write that exhausted its attempts, the time to read one warehouse's partition back into a DataFrame
(connect + query, what the next asset does; each warehouse once per repeat, median), the bytes stored, and
whether every warehouse then holds exactly the rows of its last committed round (the run fails otherwise).

The services come from the cluster tests' helper :mod:`demand_platform_tests.services` (PostgreSQL from
Debian's packages, moto's S3 server), started on free ports inside this script and stopped at its end: a
benchmark may import that test helper. They run as the tests run them, PostgreSQL with ``fsync=off`` and
``synchronous_commit=off`` and moto keeping objects in memory: the ``ducklake`` and ``postgres`` figures
leave out a real server's disk flushes and a real object store's latency, which the DuckDB file pays (its
file is on the local disk).

Writers are separate processes, ``python -m bench.cluster_storage --writer ...`` (an internal mode): each
builds its frames, reports ready, waits for the start signal on stdin, writes, and leaves its timings in a
JSON file. A writer that exits with an error, or a run that outlasts ``--timeout``, ends the other writers
and fails with the writer's output.

Usage (from the repository root):
    python -m bench.cluster_storage --rows 300000 --writers 4 --rounds 3 --repeats 3 --out /tmp/cluster_storage.json
"""

import argparse
import contextlib
import datetime as dt
import json
import logging
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd

from bench.common import REPO, command_line, write_json
from demand_platform import dbfile, lake

STORES = ("duckdb_file", "ducklake", "postgres")
TABLE = "forecasts"
HORIZONS = 30
#: ``origin_date`` of generation g is this day plus g days: the verification reads the round back from it.
BASE_DAY = dt.date(2025, 1, 1)
#: The forecasts table's columns the writers fill (the platform's ``forecasts`` without ``target_date``).
COLUMNS = {
    "sku": "VARCHAR",
    "warehouse_id": "VARCHAR",
    "origin_date": "DATE",
    "horizon": "SMALLINT",
    "forecast": "DOUBLE",
    "p50": "DOUBLE",
    "p90": "DOUBLE",
    "p95": "DOUBLE",
    "model": "VARCHAR",
    "tier": "SMALLINT",
}
MODELS = ("lightgbm", "ets", "croston", "seasonal_naive")
PG_ALIAS = "pg"
CONFLICT_MESSAGE = "write conflict"
_POLL_S = 0.01


# --------------------------------------------------------------------------------------------------
# the stores
# --------------------------------------------------------------------------------------------------


def schema_of(store: str) -> str:
    """The schema the table lives in: ``public`` in PostgreSQL, ``main`` in a DuckDB file or a lake."""
    return "public" if store == "postgres" else "main"


@contextlib.contextmanager
def open_store(store: str, target: str) -> Iterator[duckdb.DuckDBPyConnection]:
    """A read-write connection to ``store``, as the platform opens one for a write or a read.

    Args:
        store: One of :data:`STORES`.
        target: The DuckDB file's path, the lake's attach string, or PostgreSQL's libpq connection string.

    Yields:
        The connection, its default catalog the one holding the table (closed when the block exits).
    """
    if store in ("duckdb_file", "ducklake"):
        with dbfile.connect(target) as con:
            yield con
        return
    if store != "postgres":
        raise ValueError(f"unknown store {store!r}; one of {', '.join(STORES)}")
    con = duckdb.connect(":memory:")
    try:
        path = str(lake.extension_file("postgres_scanner")).replace("'", "''")
        con.execute(f"LOAD '{path}'")
        conninfo = target.replace("'", "''")
        con.execute(f"ATTACH '{conninfo}' AS {PG_ALIAS} (TYPE postgres)")
        con.execute(f"USE {PG_ALIAS}")
        yield con
    finally:
        con.close()


def make_frame(rows: int, warehouse: str, generation: int) -> pd.DataFrame:
    """One warehouse's forecasts partition: ``rows`` rows, SKU-major over 30 horizons, tagged by generation.

    Args:
        rows: Rows of the partition.
        warehouse: Its ``warehouse_id``.
        generation: The write it is (``origin_date`` = :data:`BASE_DAY` + ``generation`` days).
    """
    index = np.arange(rows)
    sku = index // HORIZONS
    rng = np.random.default_rng([generation, sum(map(ord, warehouse))])
    forecast = rng.gamma(1.5, 4.0, rows)
    names = np.array([f"SKU{i:06d}" for i in range(int(sku.max(initial=0)) + 1)], dtype=object)
    return pd.DataFrame(
        {
            "sku": names[sku],
            "warehouse_id": warehouse,
            "origin_date": pd.Timestamp(BASE_DAY + dt.timedelta(days=generation)),
            "horizon": (index % HORIZONS + 1).astype(np.int16),
            "forecast": forecast,
            "p50": forecast * 0.9,
            "p90": forecast * 1.6,
            "p95": forecast * 1.9,
            "model": np.array(MODELS, dtype=object)[sku % len(MODELS)],
            "tier": (sku % 3 + 1).astype(np.int16),
        }
    )


def replace_partition(con: duckdb.DuckDBPyConnection, store: str, frame: pd.DataFrame) -> None:
    """The platform's partition write: delete the warehouse's rows and insert ``frame``, one transaction."""
    schema = schema_of(store)
    warehouse = str(frame["warehouse_id"].iloc[0])

    def replace(tx: duckdb.DuckDBPyConnection) -> None:
        tx.execute(f"DELETE FROM {schema}.{TABLE} WHERE warehouse_id = $w", {"w": warehouse})
        dbfile.insert_by_name(tx, TABLE, frame, schema)

    dbfile.write_transaction(con, replace)


def create_table(store: str, target: str, warehouses: list[str], rows: int) -> None:
    """Create the table and write each warehouse's partition once (generation 0)."""
    schema = schema_of(store)
    columns = ", ".join(f"{name} {kind}" for name, kind in COLUMNS.items())
    with open_store(store, target) as con:
        con.execute(f"CREATE TABLE {schema}.{TABLE} ({columns})")
        if store == "postgres":
            index = f"CREATE INDEX {TABLE}_warehouse ON public.{TABLE} (warehouse_id)"
            con.execute("CALL postgres_execute($db, $sql)", {"db": PG_ALIAS, "sql": index})
        for warehouse in warehouses:
            replace_partition(con, store, make_frame(rows, warehouse, 0))


def stored_bytes(store: str, target: str, s3_endpoint: str | None, bucket: str | None) -> int:
    """What the store holds on disk or in its bucket (the DuckDB file and its WAL; the lake's objects,
    expired snapshots' files included; PostgreSQL's table with its index and TOAST)."""
    if store == "duckdb_file":
        return sum(os.path.getsize(p) for p in (target, target + ".wal") if os.path.exists(p))
    if store == "ducklake":
        from demand_platform_tests import services

        assert s3_endpoint is not None and bucket is not None
        pages = services.s3_client(s3_endpoint).get_paginator("list_objects_v2").paginate(Bucket=bucket)
        return sum(item["Size"] for page in pages for item in page.get("Contents", []))
    with open_store(store, target) as con:
        row = con.execute(
            "SELECT * FROM postgres_query($db, $sql)",
            {"db": PG_ALIAS, "sql": f"SELECT pg_total_relation_size('public.{TABLE}')::bigint AS n"},
        ).fetchone()
    return int(row[0]) if row else 0


# --------------------------------------------------------------------------------------------------
# a writer process
# --------------------------------------------------------------------------------------------------


class ConflictCounter(logging.Handler):
    """Counts ``write_transaction``'s retries: its INFO records ``write conflict (attempt ...)``."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.count = 0
        self.last: str | None = None

    def emit(self, record: logging.LogRecord) -> None:
        """Count a conflict record (others are ignored)."""
        message = record.getMessage()
        if message.startswith(CONFLICT_MESSAGE):
            self.count += 1
            self.last = message[:300]


def writer_main(args: argparse.Namespace) -> int:
    """A writer process: build the frames, report ready, wait for ``go`` on stdin, write the rounds.

    Leaves ``{"warehouse", "writes": [...], "last_conflict"}`` in ``args.result``; each write has its
    ``generation``, epoch ``start``/``end``, ``connect_s``, ``transaction_s``, ``conflicts`` and
    ``failed`` (its attempts exhausted by conflicts; any other error ends the process).
    """
    logger = logging.getLogger(dbfile.__name__)
    logger.setLevel(logging.INFO)
    counter = ConflictCounter()
    logger.addHandler(counter)
    generations = [args.first_generation + r for r in range(args.rounds)]
    frames = [make_frame(args.rows, args.warehouse, g) for g in generations]
    Path(args.ready).touch()
    if sys.stdin.readline().strip() != "go":
        print("no start signal on stdin", file=sys.stderr)
        return 3
    writes = []
    for generation, frame in zip(generations, frames, strict=True):
        before, failed = counter.count, None
        start = time.time()
        with open_store(args.store, args.target) as con:
            connected = time.time()
            try:
                replace_partition(con, args.store, frame)
            except duckdb.Error as error:
                if not dbfile.is_write_conflict(error):
                    raise
                failed = str(error)[:300]
            committed = time.time()
        end = time.time()
        writes.append(
            {
                "generation": generation,
                "start": start,
                "end": end,
                "connect_s": connected - start,
                "transaction_s": committed - connected,
                "conflicts": counter.count - before,
                "failed": failed,
            }
        )
    document = {"warehouse": args.warehouse, "writes": writes, "last_conflict": counter.last}
    Path(args.result).write_text(json.dumps(document))
    return 0


# --------------------------------------------------------------------------------------------------
# the parent: writers, verification, reads
# --------------------------------------------------------------------------------------------------


@dataclass
class Writer:
    """A running writer process and its files."""

    warehouse: str
    process: subprocess.Popen[bytes]
    log: Path
    ready: Path
    result: Path

    def output(self) -> str:
        """The tail of what the process printed."""
        try:
            return self.log.read_text(errors="replace")[-4000:]
        except OSError:
            return ""


@contextlib.contextmanager
def environ(extra: Mapping[str, str]) -> Iterator[None]:
    """``os.environ`` with ``extra`` set inside the block, restored after."""
    saved = {key: os.environ.get(key) for key in extra}
    os.environ.update(extra)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _end(writers: list[Writer]) -> None:
    """Kill the writers still running (by their own process) and reap them."""
    for writer in writers:
        if writer.process.poll() is None:
            writer.process.kill()
    for writer in writers:
        with contextlib.suppress(subprocess.TimeoutExpired):
            writer.process.wait(timeout=30)


def _fail(writer: Writer, why: str) -> RuntimeError:
    return RuntimeError(f"writer {writer.warehouse} {why}; its output:\n{writer.output()}")


def run_writers(
    store: str,
    target: str,
    warehouses: list[str],
    rows: int,
    rounds: int,
    first_generation: int,
    env: Mapping[str, str],
    workdir: Path,
    timeout_s: float,
) -> tuple[float, list[dict[str, Any]]]:
    """Start one writer process per warehouse, start them together, wait for all.

    Returns:
        The epoch time of the start signal and each writer's result document.

    Raises:
        RuntimeError: A writer exited with an error, or the run outlasted ``timeout_s``: the other writers
            are killed and the message carries the writer's output.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    child_env = {**os.environ, **env}
    writers: list[Writer] = []
    try:
        for warehouse in warehouses:
            log, ready, result = (workdir / f"{warehouse}.{kind}" for kind in ("log", "ready", "json"))
            for path in (ready, result):
                path.unlink(missing_ok=True)
            command = [
                sys.executable, "-m", "bench.cluster_storage", "--writer", "--store", store,
                "--target", target, "--warehouse", warehouse, "--rows", str(rows), "--rounds", str(rounds),
                "--first-generation", str(first_generation), "--ready", str(ready), "--result", str(result),
            ]  # fmt: skip
            with log.open("wb") as out:
                process = subprocess.Popen(
                    command, cwd=REPO, env=child_env, stdin=subprocess.PIPE, stdout=out, stderr=out
                )
            writers.append(Writer(warehouse, process, log, ready, result))
        deadline = time.monotonic() + timeout_s
        while not all(w.ready.exists() for w in writers):
            for writer in writers:
                if writer.process.poll() is not None and not writer.ready.exists():
                    raise _fail(writer, f"exited with {writer.process.returncode} before starting")
            if time.monotonic() > deadline:
                raise RuntimeError(f"writers not ready within {timeout_s} s")
            time.sleep(_POLL_S)
        go = time.time()
        for writer in writers:
            assert writer.process.stdin is not None
            try:
                writer.process.stdin.write(b"go\n")
                writer.process.stdin.close()
            except BrokenPipeError:
                writer.process.wait(timeout=30)
                raise _fail(writer, f"exited with {writer.process.returncode} before the start") from None
        pending = list(writers)
        while pending:
            for writer in list(pending):
                code = writer.process.poll()
                if code is None:
                    continue
                if code != 0 or not writer.result.exists():
                    raise _fail(writer, f"exited with {code}")
                pending.remove(writer)
            if pending and time.monotonic() > deadline:
                raise _fail(pending[0], f"still running after {timeout_s} s (with {len(pending)} others)")
            time.sleep(_POLL_S)
        return go, [json.loads(w.result.read_text()) for w in writers]
    finally:
        _end(writers)


def verify(store: str, target: str, rows: int, expected: Mapping[str, int]) -> dict[str, Any]:
    """Whether each warehouse holds exactly the ``rows`` rows of its ``expected`` generation, and nothing else.

    Returns:
        ``ok`` and, per warehouse, its rows, distinct (sku, horizon) pairs and origin dates found.
    """
    with open_store(store, target) as con:
        found = con.execute(
            f"SELECT warehouse_id, count(*), count(DISTINCT (sku, horizon)), min(origin_date), "
            f"max(origin_date) FROM {schema_of(store)}.{TABLE} GROUP BY warehouse_id ORDER BY warehouse_id"
        ).fetchall()
    per_warehouse = {
        str(wh): {"rows": n, "distinct": d, "origin_min": str(lo), "origin_max": str(hi)}
        for wh, n, d, lo, hi in found
    }
    ok = set(per_warehouse) == set(expected)
    for warehouse, generation in expected.items():
        day = str(BASE_DAY + dt.timedelta(days=generation))
        got = per_warehouse.get(warehouse)
        ok = ok and got == {"rows": rows, "distinct": rows, "origin_min": day, "origin_max": day}
    return {"ok": ok, "warehouses": per_warehouse}


def read_partition(store: str, target: str, warehouse: str) -> dict[str, float]:
    """Read one warehouse's partition into a DataFrame as the next asset does; the seconds it took."""
    start = time.perf_counter()
    with open_store(store, target) as con:
        connected = time.perf_counter()
        frame = con.execute(
            f"SELECT * FROM {schema_of(store)}.{TABLE} WHERE warehouse_id = $w", {"w": warehouse}
        ).df()
        queried = time.perf_counter()
    return {
        "read_s": time.perf_counter() - start,
        "connect_s": connected - start,
        "query_s": queried - connected,
        "rows": len(frame),
    }


def _quantile(values: list[float], q: float) -> float:
    return float(np.quantile(np.asarray(values, dtype=float), q)) if values else 0.0


def measure_store(
    store: str,
    target: str,
    args: argparse.Namespace,
    env: Mapping[str, str],
    workdir: Path,
    bucket: tuple[str, str] | None = None,
) -> dict[str, Any]:
    """Every repeat of K writers x R rounds on one store, each verified and read back; the figures.

    Args:
        store: One of :data:`STORES`.
        target: The store's DuckDB file, lake string or PostgreSQL connection string.
        args: The command line (rows, writers, rounds, repeats, timeout).
        env: Variables the writers (and this process, meanwhile) need: the S3 ones for the lake.
        workdir: Where the writers' files go.
        bucket: The lake's S3 endpoint and bucket (for the bytes stored).
    """
    warehouses = [f"WH{w + 1:03d}" for w in range(args.writers)]
    current = dict.fromkeys(warehouses, 0)  # each warehouse's last committed generation
    runs = []
    with environ(env):
        started = time.perf_counter()
        create_table(store, target, warehouses, args.rows)
        setup_s = time.perf_counter() - started
        for repeat in range(args.repeats):
            first = 1 + repeat * args.rounds
            go, documents = run_writers(
                store, target, warehouses, args.rows, args.rounds, first, env, workdir / store, args.timeout
            )
            writes = [w for d in documents for w in d["writes"]]
            for document in documents:  # a write whose attempts all conflicted left the one before
                committed = [w["generation"] for w in document["writes"] if w["failed"] is None]
                current[document["warehouse"]] = max(committed, default=current[document["warehouse"]])
            verified = verify(store, target, args.rows, current)
            reads = [read_partition(store, target, wh) for wh in warehouses]
            runs.append(
                {
                    "repeat": repeat,
                    "wall_s": max(w["end"] for w in writes) - go,
                    "latency_s": [w["end"] - w["start"] for w in writes],
                    "connect_s": [w["connect_s"] for w in writes],
                    "transaction_s": [w["transaction_s"] for w in writes],
                    "conflicts": sum(w["conflicts"] for w in writes),
                    "failed_writes": sum(w["failed"] is not None for w in writes),
                    "failures": [w["failed"] for w in writes if w["failed"] is not None][:3],
                    "last_conflict": next(
                        (d["last_conflict"] for d in documents if d["last_conflict"]), None
                    ),
                    "verified": verified["ok"],
                    "verification": verified["warehouses"],
                    "reads": reads,
                }
            )
            print(
                f"  {store} repeat {repeat + 1}/{args.repeats}: {runs[-1]['wall_s']:.2f} s, "
                f"{runs[-1]['conflicts']} conflicts retried, verified {verified['ok']}",
                flush=True,
            )
        size = stored_bytes(store, target, *(bucket or (None, None)))
    latency = [x for r in runs for x in r["latency_s"]]
    reads = [x for r in runs for x in r["reads"]]
    wall = statistics.median(r["wall_s"] for r in runs)
    return {
        "store": store,
        "setup_s": setup_s,
        "wall_s": wall,
        "wall_s_all": [r["wall_s"] for r in runs],
        "writes": len(latency),
        "rows_per_s": args.writers * args.rounds * args.rows / wall if wall > 0 else None,
        "latency_median_s": _quantile(latency, 0.5),
        "latency_p90_s": _quantile(latency, 0.9),
        "connect_median_s": _quantile([x for r in runs for x in r["connect_s"]], 0.5),
        "connect_p90_s": _quantile([x for r in runs for x in r["connect_s"]], 0.9),
        "transaction_median_s": _quantile([x for r in runs for x in r["transaction_s"]], 0.5),
        "transaction_p90_s": _quantile([x for r in runs for x in r["transaction_s"]], 0.9),
        "conflicts": sum(r["conflicts"] for r in runs),
        "conflicts_per_repeat": [r["conflicts"] for r in runs],
        "failed_writes": sum(r["failed_writes"] for r in runs),
        "read_median_s": _quantile([r["read_s"] for r in reads], 0.5),
        "read_connect_median_s": _quantile([r["connect_s"] for r in reads], 0.5),
        "read_query_median_s": _quantile([r["query_s"] for r in reads], 0.5),
        "read_rows": reads[0]["rows"] if reads else 0,
        "stored_bytes": size,
        "verified": all(r["verified"] for r in runs),
        "runs": runs,
    }


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """Start the services the chosen stores need, measure each store, stop the services.

    Returns:
        ``{"load_before", "load_after", "stores": {store: figures}}``.
    """
    from demand_platform_tests import services  # the cluster tests' services (see the module docstring)

    load_before = list(os.getloadavg())
    results: dict[str, Any] = {}
    workdir = Path(tempfile.mkdtemp(prefix="cluster-storage-", dir=args.work))
    try:
        with contextlib.ExitStack() as stack:
            postgres = None
            if {"ducklake", "postgres"} & set(args.stores):
                postgres = stack.enter_context(services.postgres_server())
            s3 = stack.enter_context(services.s3_server()) if "ducklake" in args.stores else None
            for store in args.stores:
                print(f"{store}:", flush=True)
                if store == "duckdb_file":
                    results[store] = measure_store(store, str(workdir / "platform.duckdb"), args, {}, workdir)
                elif store == "ducklake":
                    assert postgres is not None and s3 is not None
                    bucket = services.unique_name("cluster-storage")
                    services.s3_client(s3).create_bucket(Bucket=bucket)
                    database = lake.postgres_lake(postgres.create_database("bench_lake"))
                    env = services.s3_env(s3)
                    with environ(env):
                        lake.create_lake(database, f"s3://{bucket}/lake/")
                    results[store] = measure_store(store, database, args, env, workdir, (s3, bucket))
                else:
                    assert postgres is not None
                    postgres.create_database("bench_pg")
                    results[store] = measure_store(store, postgres.conninfo("bench_pg"), args, {}, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return {"load_before": load_before, "load_after": list(os.getloadavg()), "stores": results}


def summary(store: str, figures: dict[str, Any]) -> str:
    """One store's figures on one line."""
    return (
        f"{store:<12} wall {figures['wall_s']:7.2f} s ({figures['rows_per_s'] or 0:,.0f} rows/s) | "
        f"write median {figures['latency_median_s']:6.2f} s, p90 {figures['latency_p90_s']:6.2f} s "
        f"(connect/lock wait median {figures['connect_median_s']:.2f} s, transaction median "
        f"{figures['transaction_median_s']:.2f} s) | conflicts retried {figures['conflicts']}, failed writes "
        f"{figures['failed_writes']} | read {figures['read_median_s']:.3f} s "
        f"(connect {figures['read_connect_median_s']:.3f} s, {figures['read_rows']:,} rows) | "
        f"stored {figures['stored_bytes'] / 2**20:,.1f} MiB | verified {figures['verified']}"
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line (the writer mode's options are hidden)."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.cluster_storage",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--rows", type=int, default=300_000, help="rows of a warehouse's partition")
    parser.add_argument("--writers", type=int, default=4, help="writer processes (one warehouse each)")
    parser.add_argument("--rounds", type=int, default=3, help="partition writes per writer")
    parser.add_argument("--repeats", type=int, default=3, help="runs of all the writers, per store")
    parser.add_argument("--stores", nargs="+", choices=STORES, default=list(STORES))
    parser.add_argument("--timeout", type=float, default=3600.0, help="longest run of the writers (s)")
    parser.add_argument("--work", type=Path, default=None, help="parent of the scratch directory")
    parser.add_argument("--out", type=Path, default=None)
    hidden = argparse.SUPPRESS
    parser.add_argument("--writer", action="store_true", help=hidden)
    parser.add_argument("--store", choices=STORES, help=hidden)
    parser.add_argument("--target", help=hidden)
    parser.add_argument("--warehouse", help=hidden)
    parser.add_argument("--first-generation", type=int, default=1, help=hidden)
    parser.add_argument("--ready", help=hidden)
    parser.add_argument("--result", help=hidden)
    args = parser.parse_args(argv)
    if min(args.rows, args.writers, args.rounds, args.repeats) < 1:
        parser.error("--rows, --writers, --rounds and --repeats must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    """Measure the stores, print and write the figures; 1 when a store failed its verification."""
    args = parse_args(argv)
    if args.writer:
        return writer_main(args)
    print(
        f"{args.writers} writers x {args.rounds} rounds x {args.rows:,} rows, {args.repeats} repeats; "
        f"{os.cpu_count()} cores, load {' '.join(f'{x:.2f}' for x in os.getloadavg())}",
        flush=True,
    )
    results = measure(args)
    for store, figures in results["stores"].items():
        print(summary(store, figures))
    print(
        f"load before {' '.join(f'{x:.2f}' for x in results['load_before'])}, "
        f"after {' '.join(f'{x:.2f}' for x in results['load_after'])}"
    )
    params = {k: v for k, v in vars(args).items() if k in ("rows", "writers", "rounds", "repeats", "stores")}
    write_json(args.out, "cluster_storage", command_line("bench.cluster_storage", argv), params, results)
    return 0 if all(f["verified"] and not f["failed_writes"] for f in results["stores"].values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
