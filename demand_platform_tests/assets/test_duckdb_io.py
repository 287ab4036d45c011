"""The platform IO manager and ``duckdb`` resource on a real DuckDB file.

A partition rewrite is one transaction (a SIGKILL between the delete and the insert keeps the old rows;
the stock IO manager loses them), frames are inserted by column name, and two processes writing through
the resource and the IO manager at once take turns instead of failing on DuckDB's file lock.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import duckdb
import pandas as pd
import pytest
from dagster_duckdb_pandas import DuckDBPandasIOManager
from dagster_duckdb_pandas.duckdb_pandas_type_handler import DuckDBPandasTypeHandler

from demand_platform import alerts as A
from demand_platform import dbfile
from resources.alerts import AlertResource
from resources.duckdb_io import LockedDuckDBIOManager, PlatformDuckDBIOManager, PlatformDuckDBResource

REPO = Path(__file__).resolve().parents[2]
PARTITIONS = dg.MultiPartitionsDefinition(
    {
        "date": dg.DailyPartitionsDefinition(start_date="2024-01-01", end_date="2024-01-04"),
        "warehouse": dg.StaticPartitionsDefinition(["W1", "W2"]),
    }
)
PARTITION_EXPR = {"date": "date", "warehouse": "warehouse_id"}


def _key(day: str, warehouse: str) -> dg.MultiPartitionKey:
    return dg.MultiPartitionKey({"date": day, "warehouse": warehouse})


def _rows(day: str, warehouse: str, n: int, base: int) -> pd.DataFrame:
    """``n`` rows of one partition with quantities ``base, base+1, ...``."""
    return pd.DataFrame(
        {
            "date": pd.Timestamp(day),
            "warehouse_id": warehouse,
            "sku": [f"S{i}" for i in range(n)],
            "qty": [base + i for i in range(n)],
        }
    )


def _sales_asset(frames: dict[tuple[str, str], pd.DataFrame]) -> dg.AssetsDefinition:
    """A multi-partitioned asset returning ``frames[(day, warehouse)]``."""

    @dg.asset(partitions_def=PARTITIONS, metadata={"partition_expr": PARTITION_EXPR})
    def sales(context: dg.AssetExecutionContext) -> pd.DataFrame:
        keys = context.partition_key.keys_by_dimension  # type: ignore[attr-defined]
        return frames[(keys["date"], keys["warehouse"])]

    return sales


def _materialize(database: Path, frame: pd.DataFrame, day: str, warehouse: str, io_manager=None) -> bool:
    io_manager = io_manager or PlatformDuckDBIOManager(database=str(database), schema="main")
    result = dg.materialize(
        [_sales_asset({(day, warehouse): frame})],
        resources={"io_manager": io_manager},
        partition_key=_key(day, warehouse),
        raise_on_error=False,
    )
    return result.success


def _table(database: Path) -> pd.DataFrame:
    con = duckdb.connect(str(database), read_only=True)
    try:
        return con.execute("SELECT * FROM main.sales ORDER BY date, warehouse_id, sku").df()
    finally:
        con.close()


def _partition(table: pd.DataFrame, day: str, warehouse: str) -> pd.DataFrame:
    mask = (table["date"] == pd.Timestamp(day)) & (table["warehouse_id"] == warehouse)
    return table[mask].reset_index(drop=True)


def test_rematerialized_partition_replaces_exactly_that_partition(tmp_path: Path) -> None:
    database = tmp_path / "w.duckdb"
    first = {("2024-01-01", "W1"): 3, ("2024-01-01", "W2"): 2, ("2024-01-02", "W1"): 4}
    for (day, wh), n in first.items():
        assert _materialize(database, _rows(day, wh, n, 100), day, wh)
    assert _materialize(database, _rows("2024-01-01", "W1", 2, 500), "2024-01-01", "W1")

    table = _table(database)
    assert len(table) == 2 + 2 + 4
    rewritten = _partition(table, "2024-01-01", "W1")
    assert rewritten["qty"].tolist() == [500, 501] and rewritten["sku"].tolist() == ["S0", "S1"]
    for day, wh in [("2024-01-01", "W2"), ("2024-01-02", "W1")]:
        kept = _partition(table, day, wh)
        assert kept["qty"].tolist() == [100 + i for i in range(first[(day, wh)])]


def test_a_run_over_days_x_warehouses_replaces_exactly_that_box(tmp_path: Path) -> None:
    """Several days x several warehouses in one run: Dagster hands such a box to the IO manager as more
    than one key range; the rewrite must cover the box and nothing else, and a downstream read too."""
    database = tmp_path / "w.duckdb"
    days = ["2024-01-01", "2024-01-02", "2024-01-03"]
    for day in days:
        for wh in ("W1", "W2"):
            assert _materialize(database, _rows(day, wh, 2, 100), day, wh)

    @dg.asset(partitions_def=PARTITIONS, metadata={"partition_expr": PARTITION_EXPR})
    def sales(context: dg.AssetExecutionContext) -> pd.DataFrame:
        keys = [PARTITIONS.get_partition_key_from_str(k) for k in context.partition_keys]
        return pd.concat(
            [_rows(k.keys_by_dimension["date"], k.keys_by_dimension["warehouse"], 1, 900) for k in keys]
        )

    @dg.asset(partitions_def=PARTITIONS, metadata={"partition_expr": PARTITION_EXPR})
    def rows_read(sales: pd.DataFrame) -> None:
        assert sorted(
            set(zip(sales["date"].dt.strftime("%Y-%m-%d"), sales["warehouse_id"], strict=True))
        ) == [(day, wh) for day in days[:2] for wh in ("W1", "W2")]
        assert (sales["qty"] == 900).all()

    tags = {
        "dagster/asset_partition_range_start": str(_key("2024-01-01", "W1")),
        "dagster/asset_partition_range_end": str(_key("2024-01-02", "W2")),
    }
    io_manager = PlatformDuckDBIOManager(database=str(database), schema="main")
    result = dg.materialize([sales, rows_read], resources={"io_manager": io_manager}, tags=tags)
    assert result.success
    table = _table(database)
    for day in days:
        for wh in ("W1", "W2"):
            expected = [900] if day != "2024-01-03" else [100, 101]
            assert _partition(table, day, wh)["qty"].tolist() == expected, (day, wh)


def test_columns_in_another_order_land_by_name_and_new_columns_are_added(tmp_path: Path) -> None:
    database = tmp_path / "w.duckdb"
    # "a" and "b" share a type, so a positional insert would swap them without any error.
    first = pd.DataFrame({"date": pd.Timestamp("2024-01-01"), "warehouse_id": "W1", "a": [1], "b": [10]})
    assert _materialize(database, first, "2024-01-01", "W1")
    reordered = pd.DataFrame(
        {"b": [20], "a": [2], "warehouse_id": "W2", "date": pd.Timestamp("2024-01-01"), "note": ["new"]}
    )
    assert _materialize(database, reordered, "2024-01-01", "W2")
    missing = pd.DataFrame({"warehouse_id": "W1", "date": pd.Timestamp("2024-01-02"), "a": [3]})
    assert _materialize(database, missing, "2024-01-02", "W1")

    con = duckdb.connect(str(database), read_only=True)
    rows = con.execute("SELECT warehouse_id, a, b, note FROM sales ORDER BY date, warehouse_id").fetchall()
    con.close()
    assert rows == [("W1", 1, 10, None), ("W2", 2, 20, "new"), ("W1", 3, None, None)]

    # Negative control: the stock IO manager inserts by position and swaps a and b.
    stock_db = tmp_path / "stock.duckdb"
    stock = DuckDBPandasIOManager(database=str(stock_db), schema="main")
    assert _materialize(stock_db, first, "2024-01-01", "W1", stock)
    swapped = reordered[["date", "warehouse_id", "b", "a"]]  # same types position by position
    assert _materialize(stock_db, swapped, "2024-01-01", "W2", stock)
    con = duckdb.connect(str(stock_db), read_only=True)
    stock_rows = con.execute("SELECT a, b FROM sales WHERE warehouse_id = 'W2'").fetchall()
    con.close()
    assert stock_rows == [(20, 2)]


def test_all_null_text_column_is_typed_varchar(tmp_path: Path) -> None:
    database = tmp_path / "w.duckdb"
    empty_note = _rows("2024-01-01", "W1", 2, 0).assign(note=None)
    assert _materialize(database, empty_note, "2024-01-01", "W1")
    assert _materialize(database, _rows("2024-01-02", "W1", 1, 0).assign(note="holiday"), "2024-01-02", "W1")
    con = duckdb.connect(str(database), read_only=True)
    (note_type,) = con.execute(
        "SELECT data_type FROM information_schema.columns WHERE table_name = 'sales' AND column_name = 'note'"
    ).fetchone() or (None,)
    notes = [n for (n,) in con.execute("SELECT note FROM sales ORDER BY date, sku").fetchall()]
    con.close()
    assert note_type == "VARCHAR" and notes == [None, None, "holiday"]


def test_failed_insert_rolls_back_the_delete(tmp_path: Path) -> None:
    database = tmp_path / "w.duckdb"
    assert _materialize(database, _rows("2024-01-01", "W1", 3, 100), "2024-01-01", "W1")
    bad = _rows("2024-01-01", "W1", 2, 0).assign(qty=["x", "y"])  # VARCHAR into the BIGINT column
    assert not _materialize(database, bad, "2024-01-01", "W1")
    assert _partition(_table(database), "2024-01-01", "W1")["qty"].tolist() == [100, 101, 102]


# --- kill safety ----------------------------------------------------------------------------------------
# The child process materializes one partition rewrite whose insert step (the platform IO manager's
# ``write_rows``, the stock type handler's ``handle_output``) SIGKILLs its own process after the IO manager
# deleted the partition and before the insert: deterministic, no timing involved. Before dying it writes
# how many rows of the partition its connection still sees (0: the delete ran).

KILL_REPORT_ENV = "TEST_DUCKDB_IO_KILL_REPORT"


def _die_between_delete_and_insert(table_slice, connection) -> None:
    report = os.environ.get(KILL_REPORT_ENV)
    if not report:
        return
    (visible,) = connection.execute(
        f"SELECT count(*) FROM {table_slice.schema}.{table_slice.table} "
        "WHERE date = '2024-01-01' AND warehouse_id = 'W1'"
    ).fetchone()
    Path(report).write_text(json.dumps({"visible_rows_before_insert": visible}))
    os.kill(os.getpid(), signal.SIGKILL)


class _KillingLockedIOManager(LockedDuckDBIOManager):
    def write_rows(self, context, table, obj, connection):
        _die_between_delete_and_insert(table, connection)
        return super().write_rows(context, table, obj, connection)


class _KillingStockHandler(DuckDBPandasTypeHandler):
    def handle_output(self, context, table_slice, obj, connection):
        _die_between_delete_and_insert(table_slice, connection)
        return super().handle_output(context, table_slice, obj, connection)


class _KillingPlatformIOManager(PlatformDuckDBIOManager):
    def create_io_manager(self, context):
        return _KillingLockedIOManager(
            self.database, self.schema_, self.connection_config, self.lock_timeout_s
        )


class _KillingStockIOManager(DuckDBPandasIOManager):
    @staticmethod
    def type_handlers():
        return [_KillingStockHandler()]


def _child_rewrite() -> None:
    """Child entry point: rewrite partition 2024-01-01|W1 with the IO manager named by argv."""
    database, kind = sys.argv[1], sys.argv[2]
    cls = _KillingPlatformIOManager if kind == "platform" else _KillingStockIOManager
    _materialize(
        Path(database),
        _rows("2024-01-01", "W1", 5, 900),
        "2024-01-01",
        "W1",
        cls(database=database, schema="main"),
    )


@pytest.mark.parametrize("kind", ["platform", "stock"])
def test_sigkill_between_delete_and_insert(tmp_path: Path, kind: str) -> None:
    database = tmp_path / "w.duckdb"
    io_manager_cls = PlatformDuckDBIOManager if kind == "platform" else DuckDBPandasIOManager
    for day, wh in [("2024-01-01", "W1"), ("2024-01-01", "W2")]:
        assert _materialize(
            database, _rows(day, wh, 3, 100), day, wh, io_manager_cls(database=str(database), schema="main")
        )
    report = tmp_path / "kill.json"
    child = subprocess.run(
        [
            sys.executable,
            "-c",
            "from demand_platform_tests.assets.test_duckdb_io import _child_rewrite; _child_rewrite()",
            str(database),
            kind,
        ],
        cwd=REPO,
        env={**os.environ, KILL_REPORT_ENV: str(report)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert child.returncode == -signal.SIGKILL, child.stderr[-3000:]
    assert json.loads(report.read_text()) == {"visible_rows_before_insert": 0}  # killed after the delete

    table = _table(database)
    assert _partition(table, "2024-01-01", "W2")["qty"].tolist() == [100, 101, 102]
    killed = _partition(table, "2024-01-01", "W1")["qty"].tolist()
    if kind == "platform":
        assert killed == [100, 101, 102]  # the delete was never committed
    else:
        assert killed == []  # negative control: the stock IO manager committed the delete alone


# --- two processes at once -------------------------------------------------------------------------------


def _child_hold_and_write() -> None:
    """Child entry point: materialize one partition whose body holds a resource connection for a while.

    argv: database, warehouse, hold seconds, the directory where it says ``ready-<wh>`` (then waits for
    ``go``), ``holding-<wh>`` (connection open) and ``window-<wh>.json`` (when it held the connection).
    """
    database, warehouse, hold, signals = sys.argv[1], sys.argv[2], float(sys.argv[3]), Path(sys.argv[4])

    @dg.asset(partitions_def=PARTITIONS, metadata={"partition_expr": PARTITION_EXPR})
    def sales(context: dg.AssetExecutionContext, duckdb: PlatformDuckDBResource) -> pd.DataFrame:
        with duckdb.get_connection() as con:
            opened = time.time()
            (signals / f"holding-{warehouse}").touch()
            con.execute("CREATE TABLE IF NOT EXISTS visits (warehouse_id VARCHAR, opened DOUBLE)")
            con.execute("INSERT INTO visits VALUES ($1, $2)", [warehouse, opened])
            time.sleep(hold)
            closed = time.time()
        (signals / f"window-{warehouse}.json").write_text(json.dumps([opened, closed]))
        return _rows("2024-01-01", warehouse, 3, 100)

    (signals / f"ready-{warehouse}").touch()
    while not (signals / "go").exists():
        time.sleep(0.01)
    result = dg.materialize(
        [sales],
        resources={
            "io_manager": PlatformDuckDBIOManager(database=database, schema="main"),
            "duckdb": PlatformDuckDBResource(database=database),
        },
        partition_key=_key("2024-01-01", warehouse),
        raise_on_error=False,
    )
    sys.exit(0 if result.success else 1)


def _wait_for(path: Path, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path.name} not seen in {timeout} s"
        time.sleep(0.01)


def test_two_processes_writing_at_once_take_turns(tmp_path: Path) -> None:
    database, signals = tmp_path / "w.duckdb", tmp_path / "signals"
    signals.mkdir()
    children = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                "from demand_platform_tests.assets.test_duckdb_io import _child_hold_and_write as f; f()",
                *(str(database), wh, "2", str(signals)),
            ],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for wh in ("W1", "W2")
    ]
    try:
        for wh in ("W1", "W2"):
            _wait_for(signals / f"ready-{wh}")
        (signals / "go").touch()
        deadline = time.monotonic() + 120
        while not list(signals.glob("holding-*")):
            assert time.monotonic() < deadline
            time.sleep(0.01)
        # Negative control: while a run holds the database, the unlocked path (a plain connect, which the
        # stock resource and IO manager retry for ~100 s at most) fails on DuckDB's file lock.
        with pytest.raises(duckdb.IOException, match="Could not set lock"):
            duckdb.connect(str(database), read_only=True)
        outputs = [child.communicate(timeout=300)[0] for child in children]
    finally:
        for child in children:
            child.kill()
    assert [child.returncode for child in children] == [0, 0], "\n".join(outputs)
    assert not any("Could not set lock" in out for out in outputs)

    windows = sorted(json.loads((signals / f"window-{wh}.json").read_text()) for wh in ("W1", "W2"))
    assert windows[0][1] <= windows[1][0], f"the connections overlapped: {windows}"  # one waited
    table = _table(database)
    assert sorted(table["warehouse_id"].unique()) == ["W1", "W2"] and len(table) == 6
    with dbfile.connect(database, read_only=True) as con:
        assert sorted(w for (w,) in con.execute("SELECT warehouse_id FROM visits").fetchall()) == ["W1", "W2"]


def test_alert_waits_for_the_lock_and_spools_when_it_stays_held(tmp_path: Path) -> None:
    database = tmp_path / "w.duckdb"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from demand_platform import dbfile\n"
            "with dbfile.connect(sys.argv[1]):\n    print('held', flush=True); time.sleep(float(sys.argv[2]))",
            str(database),
            "1.0",
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    # Held for about a second: a 0.2 s budget spools, a 30 s budget waits and records.
    short, patient = (
        AlertResource(database=str(database), lock_timeout_s=0.2),
        AlertResource(database=str(database)),
    )
    spooled = A.Alert(kind=A.DRIFT, severity=A.WARNING, subject="while held")
    assert short.record(spooled) is False and Path(short.spool_path).exists()
    started = time.monotonic()
    recorded = A.Alert(kind=A.DRIFT, severity=A.WARNING, subject="after waiting")
    assert patient.record(recorded) is True
    assert time.monotonic() - started > 0.3  # it waited for the holder
    assert holder.wait(timeout=30) == 0
    with dbfile.connect(database, read_only=True) as con:
        assert set(A.read_alerts(con)[A.ALERT_ID]) == {spooled.alert_id, recorded.alert_id}
    assert not Path(short.spool_path).exists()
