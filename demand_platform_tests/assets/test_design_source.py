"""A source written exactly in the original design's DDL types runs end to end through the CLI.

Integer warehouse and campaign ids, BIGINT transaction / customer / order ids, DECIMAL money, TIMESTAMP
transaction dates, as Parquet and as CSV; plus a few mis-dated lines (years before, 400 days after, and,
in the CSV, ``infinity``) that must be quarantined as outside the partitions, never become a bound, and
never be saved in the home.
"""

import datetime as dt
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from mlflow.tracking import MlflowClient

from assets.cli import main
from demand_platform import columns as C
from demand_platform.synthetic import GeneratorConfig, generate_source
from demand_platform_tests.design_ddl import DESIGN_SCHEMAS, write_design_source

START = dt.date(2024, 1, 1)
DAYS = 120
LAST = START + dt.timedelta(days=DAYS - 1)


OPENS = START + dt.timedelta(days=30)  # warehouse 2 opens a month into the history


def _open_warehouse_2_late(out: Path, fmt: str) -> None:
    """Warehouse 2 becomes operational at OPENS and has no line before it."""
    if fmt == "parquet":
        wh = pq.read_table(out / "warehouses.parquet")
        since = [
            OPENS if i == 2 else d
            for i, d in zip(wh[C.WAREHOUSE_ID].to_pylist(), wh[C.OPERATIONAL_SINCE].to_pylist(), strict=True)
        ]
        wh = wh.set_column(
            wh.schema.get_field_index(C.OPERATIONAL_SINCE),
            wh.schema.field(C.OPERATIONAL_SINCE),
            pa.array(since, wh.schema.field(C.OPERATIONAL_SINCE).type),
        )
        pq.write_table(wh, out / "warehouses.parquet")
        tx = pq.read_table(out / "transactions.parquet").to_pandas()
        keep = (tx[C.WAREHOUSE_ID] != 2) | (pd.to_datetime(tx[C.TRANSACTION_DATE]) >= pd.Timestamp(OPENS))
        pq.write_table(
            pa.Table.from_pandas(tx[keep], schema=DESIGN_SCHEMAS[C.TRANSACTIONS], preserve_index=False),
            out / "transactions.parquet",
        )
        return
    wh = pd.read_csv(out / "warehouses.csv", dtype=str)
    wh.loc[wh[C.WAREHOUSE_ID] == "2", C.OPERATIONAL_SINCE] = OPENS.isoformat()
    wh.to_csv(out / "warehouses.csv", index=False)
    tx = pd.read_csv(out / "transactions.csv", dtype=str)
    keep = (tx[C.WAREHOUSE_ID] != "2") | (pd.to_datetime(tx[C.TRANSACTION_DATE]) >= pd.Timestamp(OPENS))
    tx[keep].to_csv(out / "transactions.csv", index=False)


def _add_stray_lines(out: Path, fmt: str) -> list[str]:
    """Append mis-dated lines; return their transaction ids (as the canonical text)."""
    strays = [
        (9_000_000_001, dt.datetime(2019, 3, 1, 10, 30)),  # years before the history
        (9_000_000_002, dt.datetime.combine(LAST + dt.timedelta(days=400), dt.time(10, 30))),  # typo'd year
        (9_000_000_004, dt.datetime.combine(dt.date.today() + dt.timedelta(days=400), dt.time(9))),  # future
    ]
    if fmt == "parquet":
        table = pq.read_table(out / "transactions.parquet")
        first = table.slice(0, 1).to_pylist()[0]
        rows = [{**first, C.TRANSACTION_ID: tid, C.TRANSACTION_DATE: when} for tid, when in strays]
        extra = pa.Table.from_pylist(rows, schema=DESIGN_SCHEMAS[C.TRANSACTIONS])
        pq.write_table(pa.concat_tables([table, extra]), out / "transactions.parquet")
        return [str(t) for t, _ in strays]
    frame = pd.read_csv(out / "transactions.csv", dtype=str)
    rows = [
        {**frame.iloc[0].to_dict(), C.TRANSACTION_ID: str(t), C.TRANSACTION_DATE: str(w)} for t, w in strays
    ]
    rows.append({**frame.iloc[0].to_dict(), C.TRANSACTION_ID: "9000000003", C.TRANSACTION_DATE: "infinity"})
    pd.concat([frame, pd.DataFrame(rows)]).to_csv(out / "transactions.csv", index=False)
    return [str(t) for t, _ in strays] + ["9000000003"]


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_design_ddl_source_runs_end_to_end(tmp_path: Path, fmt: str, monkeypatch) -> None:
    for var in ("DEMAND_PLATFORM_START_DATE", "DEMAND_PLATFORM_END_DATE", "DEMAND_PLATFORM_SOURCE"):
        monkeypatch.delenv(var, raising=False)
    generate_source(
        tmp_path / "synthetic", GeneratorConfig(n_skus=20, n_warehouses=2, start=START, days=DAYS)
    )
    design = write_design_source(tmp_path / "synthetic", tmp_path / "src", fmt=fmt)
    _open_warehouse_2_late(design.out_dir, fmt)
    strays = _add_stray_lines(design.out_dir, fmt)
    home = tmp_path / "home"
    args = ["run", "--source", str(design.out_dir), "--home", str(home), "--through", LAST.isoformat()]
    # In process: what is tested is the source, not how runs are launched (test_orchestration.py tests the
    # run queue), and a process start per run would add minutes to the suite.
    assert main([*args, "--launch", "in-process"]) == 0

    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        first, last, warehouses = con.execute(
            f"SELECT min(CAST({C.DATE} AS DATE)), max(CAST({C.DATE} AS DATE)), "
            f"list(DISTINCT {C.WAREHOUSE_ID} ORDER BY {C.WAREHOUSE_ID}) FROM raw_sales"
        ).fetchone()
        forecast_warehouses = con.execute(
            f"SELECT list(DISTINCT {C.WAREHOUSE_ID} ORDER BY {C.WAREHOUSE_ID}) FROM forecasts "
            f"WHERE CAST({C.ORIGIN_DATE} AS DATE) = $d",
            {"d": LAST},
        ).fetchone()[0]
        reconciled_warehouses = con.execute(
            f"SELECT list(DISTINCT {C.WAREHOUSE_ID} ORDER BY {C.WAREHOUSE_ID}) FROM {C.RECONCILED_FORECASTS} "
            f"WHERE CAST({C.ORIGIN_DATE} AS DATE) = $d",
            {"d": LAST},
        ).fetchone()[0]
        quarantine = con.execute(
            f"SELECT {C.SOURCE_TABLE}, {C.REASON}, {C.ORIGINAL_ROW} FROM quarantine"
        ).df()
        features = con.execute("SELECT * FROM feature_table").df()
        opened = con.execute(
            f"SELECT min(CAST({C.DATE} AS DATE)) FROM raw_sales WHERE {C.WAREHOUSE_ID} = '2'"
        ).fetchone()[0]
    # The partitions come from the bulk of the history, whatever the strays say; ids as the design's.
    assert (first, last) == (START, LAST)
    # A warehouse that opened later has no rows before, and that is not a hole: it is forecast too.
    assert opened == OPENS
    assert warehouses == ["1", "2"] == forecast_warehouses == reconciled_warehouses
    # Each warehouse's LightGBM borrowed the other's series (integer ids through the pool read too).
    client = MlflowClient(tracking_uri=f"sqlite:///{home / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("demand_platform")
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id])
    borrowed = {run.data.params["warehouse_id"]: int(run.data.params["pooled_series"]) for run in runs}
    assert set(borrowed) == {"1", "2"} and all(n > 0 for n in borrowed.values()), borrowed
    # Integer campaign ids flow: no campaign is quarantined, and planned promotions reach the features.
    assert not (quarantine[C.SOURCE_TABLE] == C.MARKETING_CAMPAIGNS).any(), quarantine
    promo = [c for c in features.columns if "promo" in c or "discount" in c or "campaign" in c]
    assert promo and (features[promo].select_dtypes("number").to_numpy() != 0).any()
    # Every stray line is kept aside with its reason, nothing else from the transactions.
    tx = quarantine[quarantine[C.SOURCE_TABLE] == C.TRANSACTIONS]
    kept = {tid for tid in strays if tx[C.ORIGINAL_ROW].str.contains(tid).any()}
    assert kept == set(strays), tx
    assert tx[C.REASON].str.contains("outside partition range|unparseable transaction_date").all(), tx
    # Nothing derived from the data is saved in the home.
    saved = (home / "settings.json").read_text()
    assert "START_DATE" not in saved and "END_DATE" not in saved
