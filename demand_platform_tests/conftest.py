"""Shared fixtures: a tiny hand-made source with known good and bad rows, and platform settings; a
read-only query on a home's database."""

import datetime as dt
import sys
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from demand_platform import columns as C
from demand_platform.settings import PlatformSettings
from demand_platform_tests import services

START = dt.date(2024, 1, 1)
DAYS = 10


def query_database(database: Path, sql: str) -> pd.DataFrame:
    """A query on a platform database, read-only (the connection closed after it)."""
    con = duckdb.connect(str(database), read_only=True)
    try:
        return con.execute(sql).df()
    finally:
        con.close()


def write_tiny_source(root: Path, transactions: pd.DataFrame | None = None, fmt: str = "parquet") -> Path:
    """Write a 3-SKU, 2-warehouse source over 10 days; SKU C launches on day 3."""
    root.mkdir(parents=True, exist_ok=True)
    products = pd.DataFrame(
        {
            C.SKU: ["A", "B", "C"],
            C.CATEGORY: ["toys", "toys", "garden"],
            C.SUB_CATEGORY: ["t1", "t1", "g1"],
            C.BRAND: ["acme", "acme", "green"],
            C.PRICE: [2.0, 5.0, 10.0],
            C.WEIGHT_KG: [0.1, 0.5, 2.0],
            C.IS_SEASONAL: [False, False, True],
            C.LAUNCH_DATE: pd.to_datetime(["2023-06-01", "2023-06-01", "2024-01-03"]),
        }
    )
    warehouses = pd.DataFrame(
        {
            C.WAREHOUSE_ID: ["W1", "W2"],
            C.LOCATION_CITY: ["Austin", "Fresno"],
            C.LOCATION_STATE: ["TX", "CA"],
            C.LATITUDE: [30.3, 36.7],
            C.LONGITUDE: [-97.7, -119.8],
            C.CAPACITY_UNITS: [10000, 20000],
            C.OPERATIONAL_SINCE: pd.to_datetime(["2020-01-01", "2020-01-01"]),
        }
    )
    if transactions is None:
        transactions = good_transactions()
    tables = {C.PRODUCTS: products, C.WAREHOUSES: warehouses, C.TRANSACTIONS: transactions}
    for name, frame in tables.items():
        if fmt == "parquet":
            frame.to_parquet(root / f"{name}.parquet", index=False)
        else:
            frame.to_csv(root / f"{name}.csv", index=False)
    return root


def good_transactions() -> pd.DataFrame:
    """Valid lines: A sells 2 a day in W1, B sells 1 every other day in W2, one return of A."""
    rows = []
    for i in range(DAYS):
        day = pd.Timestamp(START) + pd.Timedelta(days=i)
        rows.append((f"t{i}a", "A", "W1", day, 2, 4.0, "c1", f"o{i}"))
        if i % 2 == 0:
            rows.append((f"t{i}b", "B", "W2", day, 1, 5.0, "c2", f"p{i}"))
    rows.append(("r1", "A", "W1", pd.Timestamp(START) + pd.Timedelta(days=1), -1, -2.0, "c1", "ret1"))
    return pd.DataFrame(rows, columns=list(C.TRANSACTION_COLUMNS))


@pytest.fixture
def tiny_source(tmp_path: Path) -> Path:
    """A valid tiny source directory."""
    return write_tiny_source(tmp_path / "source")


@pytest.fixture
def settings(tmp_path: Path, tiny_source: Path) -> PlatformSettings:
    """Settings pointing at a temporary home and the tiny source, partitions over its 10 days."""
    return PlatformSettings(
        home=tmp_path / "home",
        source=tiny_source,
        start_date=START,
        end_date=START + dt.timedelta(days=DAYS - 1),
        env="test",
    )


@pytest.fixture(autouse=True)
def _reset_dagster_defs_state_storage() -> Iterator[None]:
    """Evaluating a schedule with ``build_schedule_context`` leaves Dagster's current defs-state storage
    (a context variable) bound to that test's instance; a later test that loads a repository would then
    resolve the dead instance. Reset it after every test so tests stay independent of their order."""
    yield
    if "dagster" in sys.modules:  # domain tests never import Dagster; this does not make them
        from dagster._core.storage.defs_state.base import _current_storage

        _current_storage.set(None)


# --- real services (the cluster environment's tests) -----------------------------------------------------


@pytest.fixture(scope="session")
def postgres() -> Iterator["services.Postgres"]:
    """A PostgreSQL server for the session (Debian's package, started on a free port)."""
    with services.postgres_server() as server:
        yield server


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A Redis server for the session (Debian's package); its URL."""
    with services.redis_server() as url:
        yield url


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """An S3 endpoint for the session (moto in server mode); its URL."""
    with services.s3_server() as url:
        yield url


@pytest.fixture
def s3_bucket(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> str:
    """A new bucket on the session's S3 endpoint, with the ``AWS_*`` variables pointing at it; its name."""
    env = services.s3_env(s3_endpoint)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    bucket = services.unique_name(request.node.name)
    services.s3_client(s3_endpoint).create_bucket(Bucket=bucket)
    return bucket
