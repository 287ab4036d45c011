"""A source in PostgreSQL reads like the same source as files: same contract, validation and canonical values.

Against a real PostgreSQL (Debian's server, started by :func:`demand_platform_tests.services.postgres_server`
for this module). A source directory is loaded into a database with :func:`source_db.write_source` (its
rows in file order, its columns in the files' types), then every reader is run on both and compared.
Incremental reading is proven on the statements PostgreSQL itself logged (``log_statement = all`` on the
test's database): each statement that read ``transactions`` during one day's ingestion is run again and
its rows counted, so a filter applied in DuckDB instead of PostgreSQL fails the test.
"""

import dataclasses
import datetime as dt
import json
import re
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import psycopg2
import pytest

from demand_platform import columns as C
from demand_platform import ingestion, source, source_db
from demand_platform.synthetic import GeneratorConfig, generate_source
from demand_platform_tests import services
from demand_platform_tests.conftest import DAYS, START, good_transactions, write_tiny_source
from demand_platform_tests.design_ddl import write_design_source

SYNTHETIC = GeneratorConfig(
    n_skus=12, n_warehouses=2, start=dt.date(2024, 1, 1), days=30, seed=5, bad_rows=12
)
LAST = SYNTHETIC.end


@pytest.fixture(scope="module")
def pg() -> Iterator[services.Postgres]:
    """A PostgreSQL server for this module."""
    with services.postgres_server() as server:
        yield server


@pytest.fixture(scope="module")
def synthetic_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny synthetic source (text ids, DATE dates) with deliberately bad lines."""
    out = tmp_path_factory.mktemp("synthetic")
    generate_source(out, SYNTHETIC)
    return out


def _assert_tables_equal(files: source.SourceTables, database: source.SourceTables) -> None:
    for field in dataclasses.fields(files):
        left, right = getattr(files, field.name), getattr(database, field.name)
        if left is None:
            assert right is None, field.name
        else:
            pd.testing.assert_frame_equal(left, right, obj=field.name)


def _assert_slices_equal(files: ingestion.SalesSlice, database: ingestion.SalesSlice) -> None:
    pd.testing.assert_frame_equal(files.raw_sales, database.raw_sales, obj="raw_sales")
    pd.testing.assert_frame_equal(files.quarantine, database.quarantine, obj="quarantine")
    pd.testing.assert_frame_equal(files.lines_per_date, database.lines_per_date, obj="lines_per_date")


def _ingest(
    src: str | Path, tables: source.SourceTables, start: dt.date, end: dt.date, **kw
) -> ingestion.SalesSlice:
    return ingestion.ingest_sales(
        src, tables.products, tables.warehouses, start, end, rejected_products=tables.rejected_products, **kw
    )


# --- (1) the same source as files and in PostgreSQL ------------------------------------------------------------
def test_the_same_source_from_files_and_postgresql_reads_and_ingests_identically(
    pg: services.Postgres, synthetic_dir: Path
) -> None:
    url = pg.create_database("parity")
    written = source_db.write_source(synthetic_dir, url)
    assert written[C.TRANSACTIONS] == pd.read_parquet(synthetic_dir / "transactions.parquet").shape[0]

    files, database = source.load_source_tables(synthetic_dir), source.load_source_tables(url)
    _assert_tables_equal(files, database)
    assert len(database.products) == SYNTHETIC.n_skus and database.campaigns is not None

    assert source.history_range(url) == source.history_range(synthetic_dir)
    assert source.transactions_date_range(url) == source.transactions_date_range(synthetic_dir)
    first, last = source.history_range(url)

    by_files = _ingest(synthetic_dir, files, first.date(), last.date())
    by_database = _ingest(url, database, first.date(), last.date())
    _assert_slices_equal(by_files, by_database)
    reasons = set(by_database.quarantine[C.REASON])
    assert {"duplicate transaction_id", "unknown sku", "absurd quantity"} <= reasons
    assert by_database.n_lines > 300 and by_database.raw_sales[C.QUANTITY].sum() > 0

    warehouses = database.warehouse_ids()
    orphans = ingestion.orphan_transactions(url, warehouses, first.date(), last.date())
    pd.testing.assert_frame_equal(
        ingestion.orphan_transactions(synthetic_dir, warehouses, first.date(), last.date()), orphans
    )
    assert {"unknown warehouse_id", "transaction_date outside partition range"} <= set(orphans[C.REASON])
    pd.testing.assert_frame_equal(
        ingestion.day_fingerprints(synthetic_dir, warehouses, first.date(), last.date()),
        ingestion.day_fingerprints(url, warehouses, first.date(), last.date()),
    )


# --- (2) bad rows ----------------------------------------------------------------------------------------------
def _bad_source(root: Path, fmt: str) -> Path:
    """The tiny source with bad products and bad transaction lines (text ones only a CSV can hold)."""
    day = [pd.Timestamp(START) + pd.Timedelta(days=i) for i in range(DAYS)]
    lines = [
        ("t0a", "A", "W1", day[5], 3, 6.0, "c1", "o-dup"),  # t0a is on day 0, outside the box
        ("x1", None, "W1", day[5], 1, 2.0, "c1", "o-x1"),
        ("x2", "Z", "W2", day[6], 1, 2.0, "c2", "o-x2"),
        ("x3", "A", "W1", day[6], None, 2.0, "c1", "o-x3"),
        ("x4", "A", "W2", day[7], 20000, 2.0, "c2", "o-x4"),
        ("x5", "D", "W1", day[8], 1, 2.0, "c1", "o-x5"),  # D is rejected by products
    ]
    if fmt == "csv":
        lines += [
            ("x6", "A", "W1", day[8], "lots", 2.0, "c1", "o-x6"),
            ("x7", "B", "W2", day[9], 1, "n/a", "c2", "o-x7"),
        ]
    transactions = pd.concat(
        [good_transactions(), pd.DataFrame(lines, columns=list(C.TRANSACTION_COLUMNS))], ignore_index=True
    )
    if fmt == "parquet":
        transactions[C.QUANTITY] = transactions[C.QUANTITY].astype("Int64")
    write_tiny_source(root, transactions, fmt=fmt)
    products = (
        pd.read_parquet(root / "products.parquet") if fmt == "parquet" else pd.read_csv(root / "products.csv")
    )
    extra = products.iloc[[0, 1]].copy()
    extra[C.SKU] = ["A", "D"]  # a second A (duplicate, later rows are rejected) and D at a negative price
    extra[C.PRICE] = [3.0, -1.0]
    products = pd.concat([products, extra], ignore_index=True)
    if fmt == "parquet":
        products.to_parquet(root / "products.parquet", index=False)
    else:
        products.to_csv(root / "products.csv", index=False)
    return root


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_bad_rows_in_postgresql_tables_are_rejected_with_the_reasons_files_give(
    pg: services.Postgres, tmp_path: Path, fmt: str
) -> None:
    files = _bad_source(tmp_path / "source", fmt)
    url = pg.create_database(f"bad_{fmt}")
    source_db.write_source(files, url)  # CSV columns become text columns: unparseable values survive

    products = source.load_table(url, C.PRODUCTS)
    assert products is not None
    file_products = source.load_table(files, C.PRODUCTS)
    assert file_products is not None
    pd.testing.assert_frame_equal(file_products.valid, products.valid)
    pd.testing.assert_frame_equal(file_products.rejected, products.rejected)
    assert products.valid[C.SKU].tolist() == ["A", "B", "C"]
    keys = products.rejected_keys(C.SKU)
    by_sku = dict(zip(keys[C.SKU], keys[C.REASON], strict=True))
    assert by_sku["A"] == "duplicate sku" and by_sku["D"].startswith("price fails")
    assert set(products.rejected[C.SOURCE_TABLE]) == {C.PRODUCTS}
    assert re.search(r'"price":"?-1\.0"?', products.rejected[C.ORIGINAL_ROW].iloc[1])  # as read (CSV: text)

    tables = source.load_source_tables(url)
    box = (START + dt.timedelta(days=4), START + dt.timedelta(days=DAYS - 1))
    by_database = _ingest(url, tables, *box)
    _assert_slices_equal(_ingest(files, source.load_source_tables(files), *box), by_database)

    quarantine = by_database.quarantine
    reason = dict(
        zip(
            [json.loads(row)[C.TRANSACTION_ID] for row in quarantine[C.ORIGINAL_ROW]],
            quarantine[C.REASON],
            strict=True,
        )
    )
    assert reason["t0a"] == "duplicate transaction_id"
    assert reason["x1"] == "null sku"
    assert reason["x2"] == "unknown sku"
    assert reason["x3"] == "null quantity"
    assert reason["x4"] == "absurd quantity"
    assert reason["x5"].startswith("sku rejected in products (price fails")
    if fmt == "csv":
        assert reason["x6"] == "unparseable quantity" and reason["x7"] == "unparseable revenue"
    assert set(quarantine[C.SOURCE_TABLE]) == {C.TRANSACTIONS}
    assert quarantine.loc[quarantine[C.REASON] == "absurd quantity", C.WAREHOUSE_ID].tolist() == ["W2"]
    # Valid lines flow: A sells 2 a day in W1 over the box's six days.
    sales = by_database.raw_sales
    assert (
        sales.loc[(sales[C.SKU] == "A") & (sales[C.WAREHOUSE_ID] == "W1"), C.QUANTITY].tolist() == [2.0] * 6
    )


# --- (3) the design's DDL: integer ids, numeric money, DATE or TIMESTAMP dates ------------------------------------
@pytest.mark.parametrize("timestamps", [True, False])
def test_design_ddl_tables_with_integer_ids_read_like_their_files(
    pg: services.Postgres, synthetic_dir: Path, tmp_path: Path, timestamps: bool
) -> None:
    design = write_design_source(synthetic_dir, tmp_path / "design", timestamps=timestamps)
    url = pg.create_database(f"design_{int(timestamps)}")
    source_db.write_source(design.out_dir, url)

    table = source.require_table(url, C.TRANSACTIONS)
    types = table.column_types()
    assert types[C.TRANSACTION_ID] == "BIGINT" and types[C.WAREHOUSE_ID] == "INTEGER"
    assert types[C.REVENUE] == "DECIMAL(12,2)"
    assert types[C.TRANSACTION_DATE] == ("TIMESTAMP" if timestamps else "DATE")
    assert source.require_table(url, C.PRODUCTS).column_types()[C.LAUNCH_DATE] == "DATE"

    files, database = source.load_source_tables(design.out_dir), source.load_source_tables(url)
    _assert_tables_equal(files, database)
    assert database.warehouse_ids() == ["1", "2"]  # INTEGER 1 -> "1"
    assert database.campaigns is not None and database.campaigns[C.CAMPAIGN_ID].iloc[0] == "1"

    first, last = source.history_range(url)
    assert (first.date(), last.date()) == (SYNTHETIC.start, LAST)
    by_database = _ingest(url, database, first.date(), last.date())
    _assert_slices_equal(_ingest(design.out_dir, files, first.date(), last.date()), by_database)
    assert set(by_database.raw_sales[C.WAREHOUSE_ID]) == {"1", "2"}
    assert "duplicate transaction_id" in set(by_database.quarantine[C.REASON])
    orphans = ingestion.orphan_transactions(url, ["1", "2"], first.date(), last.date())
    pd.testing.assert_frame_equal(
        ingestion.orphan_transactions(design.out_dir, ["1", "2"], first.date(), last.date()), orphans
    )


# --- (4) incremental by day -----------------------------------------------------------------------------------------
class StatementLog:
    """The statements PostgreSQL logs for one database (``log_statement = all`` set on it).

    The server writes its log to ``server.log`` beside its data directory (:func:`services.postgres_server`).
    """

    def __init__(self, server: services.Postgres, url: str) -> None:
        database = url.rsplit("/", 1)[1].split("?")[0]
        con = psycopg2.connect(server.url())
        con.autocommit = True
        with con.cursor() as cur:
            cur.execute(f"ALTER DATABASE \"{database}\" SET log_statement = 'all'")
            cur.execute("SELECT current_setting('data_directory')")
            row = cur.fetchone()
        con.close()
        assert row is not None
        self.path = Path(row[0]).parent / "server.log"
        assert self.path.exists()
        self.url = url.split("?")[0]

    def size(self) -> int:
        return self.path.stat().st_size

    def statements_since(self, offset: int) -> list[str]:
        text = self.path.read_bytes()[offset:].decode("utf-8", errors="replace")
        statements: list[str] = []
        for line in text.splitlines():
            found = re.match(r"^\S+ \S+ \S+ \[\d+\] LOG:  statement: (.*)$", line)
            if found:
                statements.append(found.group(1))
            elif line.startswith("\t") and statements:
                statements[-1] += "\n" + line[1:]
        return statements

    def _run(self, statement: str, sql: str) -> list[tuple]:
        found = re.fullmatch(r'COPY \((.*)\) TO STDOUT \(FORMAT "binary"\);?\s*', statement, flags=re.DOTALL)
        assert found, statement
        con = psycopg2.connect(self.url)
        try:
            with con.cursor() as cur:
                cur.execute("SET enable_seqscan = off")
                cur.execute(sql.format(query=found.group(1)))
                return cur.fetchall()
        finally:
            con.close()

    def rows_returned(self, statement: str) -> int:
        """How many rows a logged ``COPY (SELECT ...) TO STDOUT`` sends, by running its query again."""
        return int(self._run(statement, "SELECT count(*) FROM ({query}) AS sent")[0][0])

    def uses_an_index(self, statement: str) -> bool:
        """Whether PostgreSQL can answer a logged ``COPY (SELECT ...)`` from an index (no full scan)."""
        plan = "\n".join(str(row[0]) for row in self._run(statement, "EXPLAIN {query}"))
        return "Index" in plan and "Seq Scan" not in plan


def test_a_day_added_later_is_read_on_the_next_call_and_only_that_day_travels(
    pg: services.Postgres, synthetic_dir: Path, tmp_path: Path
) -> None:
    lines = pd.read_parquet(synthetic_dir / "transactions.parquet")
    new_day = (pd.to_datetime(lines[C.TRANSACTION_DATE]) == pd.Timestamp(LAST)).to_numpy()
    before, added = lines.loc[~new_day], lines.loc[new_day]
    assert len(added) > 10
    url = pg.create_database("incremental") + "?schema=sales"
    log = StatementLog(pg, url)
    source_db.write_source(synthetic_dir, url, tables=(C.PRODUCTS, C.WAREHOUSES))
    source_db.write_table(url, C.TRANSACTIONS, before)  # the history without its last day
    source_db.index_transactions(url)  # on transaction_date and the trimmed transaction_id
    # The same lines as files, in the database's order (the new day after the history).
    files = tmp_path / "files"
    files.mkdir()
    for name in (C.PRODUCTS, C.WAREHOUSES):
        (files / f"{name}.parquet").write_bytes((synthetic_dir / f"{name}.parquet").read_bytes())
    pd.concat([before, added], ignore_index=True).to_parquet(files / "transactions.parquet", index=False)

    tables = source.load_source_tables(url)
    con = source.source_connection(url)  # one connection across both calls: nothing is cached in it
    version = source.table_version(url, C.TRANSACTIONS)
    assert _ingest(url, tables, LAST, LAST, con=con).n_lines == 0  # not landed yet
    assert source.history_range(url)[1].date() == LAST - dt.timedelta(days=1)

    source_db.write_table(url, C.TRANSACTIONS, added, if_exists="append")
    assert source.table_version(url, C.TRANSACTIONS) != version
    offset = log.size()
    day = _ingest(url, tables, LAST, LAST, con=con)
    statements = [s for s in log.statements_since(offset) if '"sales"."transactions"' in s]

    _assert_slices_equal(_ingest(files, source.load_source_tables(files), LAST, LAST), day)
    assert day.n_lines == len(added) and source.history_range(url)[1].date() == LAST
    # What PostgreSQL sent: the slice (the day's lines, filtered by PostgreSQL) and the duplicate probe
    # (one row per transaction id of the slice); nothing of the 29 days before.
    reads = [s for s in statements if s.startswith("COPY (")]
    sent = [log.rows_returned(s) for s in reads]
    assert sent and max(sent) == len(added) and sum(sent) <= 2 * len(added) < len(lines) / 10
    assert any(f"BETWEEN '{LAST.isoformat()}' AND '{LAST.isoformat()}'" in s for s in reads)
    # ... and each of those reads can be answered from an index, as the day's history grows.
    assert all(log.uses_an_index(s) for s in reads if log.rows_returned(s) > 0)


# --- (5) missing tables, bad URLs ------------------------------------------------------------------------------------
def test_a_missing_required_table_is_a_clear_error_and_a_missing_optional_one_is_absent(
    pg: services.Postgres, tmp_path: Path
) -> None:
    files = write_tiny_source(tmp_path / "source")
    url = pg.create_database("missing")
    source_db.write_source(files, url, tables=(C.PRODUCTS, C.WAREHOUSES))

    assert source.load_table(url, C.CALENDAR) is None and source.load_source_tables(url).weather is None
    assert source.has_table(url, C.PRODUCTS) and not source.has_table(url, C.TRANSACTIONS)
    missing = r"source postgresql://postgres@127\.0\.0\.1:\d+/missing: required table public\.transactions is missing"
    tables = source.load_source_tables(url)
    with pytest.raises(source.SourceError, match=missing):
        _ingest(url, tables, START, START)
    with pytest.raises(source.SourceError, match=missing):
        source.history_range(url)
    with pytest.raises(source.SourceError, match="required table public.products is missing"):
        source.load_source_tables(pg.create_database("empty"))
    with pytest.raises(source.SourceError, match="its tables are not files"):
        source.table_path(url, C.TRANSACTIONS)

    # A table without a required column names the table and the column.
    source_db.write_table(url, C.TRANSACTIONS, good_transactions().drop(columns=[C.QUANTITY]))
    with pytest.raises(
        source.SourceError, match=r"table public\.transactions: .*missing required column\(s\) quantity"
    ):
        _ingest(url, tables, START, START)


def test_unreachable_or_unsupported_sources_say_so_without_the_password() -> None:
    url = f"postgresql://reader:s3cret@127.0.0.1:{services.free_port()}/sales"
    with pytest.raises(source.SourceError, match="cannot connect") as error:
        source.load_source_tables(url)
    assert "s3cret" not in str(error.value) and "postgresql://reader@127.0.0.1" in str(error.value)
    with pytest.raises(source.SourceError, match="not a PostgreSQL source"):
        source.load_source_tables("mysql://reader@127.0.0.1/sales")


def test_a_partitioned_transactions_table_reads_like_its_file(pg: services.Postgres, tmp_path: Path) -> None:
    """A transactions table partitioned by day range (each partition numbers its own rows)."""
    files = write_tiny_source(tmp_path / "source")
    url = pg.create_database("partitioned")
    source_db.write_source(files, url, tables=(C.PRODUCTS, C.WAREHOUSES))
    con = psycopg2.connect(url)
    with con, con.cursor() as cur:
        cur.execute(
            "CREATE TABLE transactions (transaction_id text, sku text, warehouse_id text, "
            "transaction_date timestamp, quantity bigint, revenue double precision, customer_id text, "
            "order_id text) PARTITION BY RANGE (transaction_date)"
        )
        cur.execute(
            "CREATE TABLE t_early PARTITION OF transactions FOR VALUES FROM ('2024-01-01') TO ('2024-01-06')"
        )
        cur.execute(
            "CREATE TABLE t_late PARTITION OF transactions FOR VALUES FROM ('2024-01-06') TO ('2024-02-01')"
        )
    con.close()
    source_db.write_table(
        url, C.TRANSACTIONS, pd.read_parquet(files / "transactions.parquet"), if_exists="append"
    )
    table = source.require_table(url, C.TRANSACTIONS).database
    assert table is not None and table.kind == "p"

    end = START + dt.timedelta(days=DAYS - 1)
    by_database = _ingest(url, source.load_source_tables(url), START, end)
    _assert_slices_equal(_ingest(files, source.load_source_tables(files), START, end), by_database)
    assert by_database.n_lines == len(good_transactions())
