"""The platform database as a DuckLake on a real PostgreSQL catalog and a real S3 endpoint (moto).

What the cluster environment relies on: the platform's own SQL and by-name writes run unchanged on the lake,
the data lands as Parquet on the object store, and writers in different processes that replace their own
partitions of one table at the same time all commit, conflicts retried (no lost or doubled rows).
"""

import subprocess
import sys
from pathlib import Path

import boto3
import duckdb
import pandas as pd
import pytest

from demand_platform import dbfile, lake
from demand_platform_tests import services

REPO = Path(__file__).resolve().parents[2]
WAREHOUSES = ["W1", "W2", "W3", "W4"]
ROUNDS = 4


def test_postgres_lake_names_the_catalog_database() -> None:
    assert lake.postgres_lake("postgresql://alice:s3cret@db.example:6543/lakes") == (
        "ducklake:postgres:dbname=lakes host=db.example port=6543 user=alice password=s3cret"
    )
    assert (
        lake.redact(lake.postgres_lake("postgresql://a:pw@h/d"))
        == "ducklake:postgres:dbname=d host=h user=a password=***"
    )
    with pytest.raises(ValueError, match="not a PostgreSQL database URL"):
        lake.postgres_lake("mysql://h/d")
    with pytest.raises(ValueError, match="not a PostgreSQL database URL"):
        lake.postgres_lake("postgresql://h")  # no database


def test_s3_secret_from_the_standard_aws_variables() -> None:
    assert lake.s3_secret_sql({}) is None
    sql = lake.s3_secret_sql(
        {
            "AWS_ACCESS_KEY_ID": "k",
            "AWS_SECRET_ACCESS_KEY": "s'x",
            "AWS_ENDPOINT_URL": "http://127.0.0.1:9000",
        }
    )
    assert sql is not None
    assert "KEY_ID 'k'" in sql and "SECRET 's''x'" in sql and "REGION 'us-east-1'" in sql
    assert "ENDPOINT '127.0.0.1:9000'" in sql and "USE_SSL false" in sql and "URL_STYLE 'path'" in sql
    con = duckdb.connect()
    lake.load_extensions(con)
    con.execute(sql)  # DuckDB accepts it
    assert con.execute("SELECT count(*) FROM duckdb_secrets() WHERE name = 'platform_s3'").fetchone() == (1,)


def test_write_transaction_retries_conflicts_only() -> None:
    con = duckdb.connect()
    con.execute("CREATE TABLE t (x INTEGER)")
    calls: list[int] = []

    def conflicting(c: duckdb.DuckDBPyConnection) -> int:
        calls.append(1)
        c.execute("INSERT INTO t VALUES (1)")
        if len(calls) < 3:
            raise duckdb.TransactionException(
                "Failed to commit DuckLake transaction. Transaction conflict - ..."
            )
        return len(calls)

    assert dbfile.write_transaction(con, conflicting, max_pause_s=0.01) == 3
    assert con.execute("SELECT count(*) FROM t").fetchone() == (1,)  # the two failed attempts rolled back

    def broken(c: duckdb.DuckDBPyConnection) -> None:
        calls.append(1)
        c.execute("INSERT INTO t VALUES (2)")
        raise ValueError("not a conflict")

    calls.clear()
    with pytest.raises(ValueError, match="not a conflict"):
        dbfile.write_transaction(con, broken)
    assert len(calls) == 1 and con.execute("SELECT count(*) FROM t").fetchone() == (1,)

    def always(c: duckdb.DuckDBPyConnection) -> None:
        raise duckdb.TransactionException("Transaction conflict")

    with pytest.raises(duckdb.TransactionException):
        dbfile.write_transaction(con, always, attempts=2, max_pause_s=0.01)


@pytest.fixture
def lake_db(postgres: services.Postgres, s3_bucket: str, request: pytest.FixtureRequest) -> str:
    """A new lake: catalog in a new PostgreSQL database, data in the test's bucket."""
    url = postgres.create_database(services.unique_name(request.node.name).replace("-", "_"))
    database = lake.postgres_lake(url)
    lake.create_lake(database, f"s3://{s3_bucket}/lake/")
    return database


def test_platform_sql_runs_on_the_lake_and_the_data_is_parquet_on_s3(lake_db: str, s3_bucket: str) -> None:
    # More rows than DuckLake inlines into its catalog: they go to Parquet files.
    n = 5_000
    frame = pd.DataFrame({"warehouse_id": "W1", "date": pd.date_range("2010-01-01", periods=n)})
    with dbfile.connect(lake_db) as con:
        dbfile.insert_by_name(con, "sales", frame.assign(units=range(n)))
        dbfile.insert_by_name(con, "sales", frame.assign(units=range(n, 2 * n), promo=True))  # a new column
    with dbfile.connect(lake_db) as con:  # another connection (another process would see the same)
        got = con.execute("SELECT units, promo FROM main.sales ORDER BY units").df()
    assert got["units"].tolist() == list(range(2 * n))
    assert got["promo"].isna().tolist() == [True] * n + [False] * n
    keys = [o["Key"] for o in boto3.client("s3").list_objects_v2(Bucket=s3_bucket).get("Contents", [])]
    assert keys and all(k.startswith("lake/") and k.endswith(".parquet") for k in keys), keys


def _replace_partition(database: str, warehouse: str) -> None:
    """Replace ``warehouse``'s rows of ``forecasts`` ROUNDS times (run as a script: one writer process)."""
    for round_ in range(ROUNDS):
        rows = pd.DataFrame({"warehouse_id": warehouse, "round": round_, "h": range(1, 31)})

        def replace(con: duckdb.DuckDBPyConnection, rows: pd.DataFrame = rows) -> None:
            con.execute("CREATE TABLE IF NOT EXISTS forecasts (warehouse_id VARCHAR, round BIGINT, h BIGINT)")
            con.execute("DELETE FROM forecasts WHERE warehouse_id = $w", {"w": warehouse})
            dbfile.insert_by_name(con, "forecasts", rows)

        with dbfile.connect(database) as con:
            dbfile.write_transaction(con, replace)


def test_concurrent_writers_in_different_processes_all_commit(lake_db: str) -> None:
    writers = [
        subprocess.Popen(
            [sys.executable, "-m", "demand_platform_tests.domain.test_lake", lake_db, w],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for w in WAREHOUSES
    ]
    outputs = [w.communicate(timeout=300)[0] for w in writers]
    assert [w.returncode for w in writers] == [0] * len(WAREHOUSES), outputs
    with dbfile.connect(lake_db) as con:
        got = con.execute(
            "SELECT warehouse_id, min(round), max(round), count(*), count(DISTINCT h) FROM forecasts "
            "GROUP BY warehouse_id ORDER BY warehouse_id"
        ).fetchall()
    # Each warehouse holds exactly its last round: no lost write, no row left from an earlier round.
    assert got == [(w, ROUNDS - 1, ROUNDS - 1, 30, 30) for w in WAREHOUSES]


def test_alerts_on_the_lake_merge_by_id_without_a_primary_key(lake_db: str) -> None:
    from demand_platform import alerts

    alert = alerts.Alert(kind="promotion_rejected", severity="warning", subject="demand_W1 v2 rejected")
    with dbfile.connect(lake_db) as con:
        alerts.record_alert(con, alert)
        alerts.record_alert(con, alert)  # a replay: merged, not a second row
        assert con.execute("SELECT count(*) FROM alerts").fetchone() == (1,)
        assert alerts.stored_alert(con, alert.alert_id) is not None


if __name__ == "__main__":
    _replace_partition(sys.argv[1], sys.argv[2])
