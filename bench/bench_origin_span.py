"""How far back the LightGBM's training origins reach, scored on the demo's December window.

Trains ``train_warehouse`` on a demo home's ``raw_sales`` (``demand-platform demo --home DIR``) as of
``--train-date`` with several ``(origin_step, n_origins)`` spans, forecasts weekly origins up to
``--last-origin`` with each model and scores the 30-day forecasts against the realised demand (targets up
to the last day of the home's history), beside a 28-day moving average at each origin. With the default
span of 180 days a model trained on 2 December has never seen a December target.

Usage:
    python bench/bench_origin_span.py --home /tmp/demo --warehouses WH001 WH002 WH003
"""

import argparse
import sys
import time
from pathlib import Path

import duckdb
import pandas as pd
from peers import machine

from demand_platform import columns as C
from demand_platform.forecasting import TrainConfig, forecast_warehouse, train_warehouse

SPANS = {"9 x 20 (180 days)": (9, 20), "19 x 20 (380 days)": (19, 20), "13 x 28 (364 days)": (13, 28)}


def load(home: Path, warehouse_id: str) -> tuple[pd.DataFrame, dict[str, pd.DataFrame]]:
    """The warehouse's raw_sales and the source tables of the demo home."""
    con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    try:
        history = con.execute("SELECT * FROM raw_sales WHERE warehouse_id = ?", [warehouse_id]).df()
    finally:
        con.close()
    history[C.DATE] = pd.to_datetime(history[C.DATE])
    source = home / "source"
    tables = {
        name: pd.read_parquet(source / f"{name}.parquet")
        for name in ("products", "warehouses", "marketing_campaigns", "weather")
    }
    return history, tables


def score(
    model: object, history: pd.DataFrame, tables: dict[str, pd.DataFrame], origins: pd.DatetimeIndex, wh: str
) -> tuple[float, float, float]:
    """WMAPE and bias of the model's forecasts and MA28's WMAPE over the origins (matured targets only)."""
    last = history[C.DATE].max()
    wide = history.pivot_table(index=C.SKU, columns=C.DATE, values=C.QUANTITY).clip(lower=0)
    actual = wide.stack().rename("actual").reset_index()
    err = base = total = signed = 0.0
    for origin in origins:
        fc = forecast_warehouse(
            model,  # type: ignore[arg-type]
            history.loc[history[C.DATE] <= origin],
            tables["products"],
            tables["warehouses"],
            None,
            tables["marketing_campaigns"],
            tables["weather"],
            origin,
            wh,
        )
        fc = fc.assign(**{C.DATE: pd.to_datetime(fc[C.TARGET_DATE])}).loc[lambda f: f[C.DATE] <= last]
        rows = fc.merge(actual, on=[C.SKU, C.DATE], how="left").fillna({"actual": 0.0})
        ma28 = rows[C.SKU].map(wide.loc[:, :origin].iloc[:, -28:].mean(axis=1)).fillna(0.0)
        err += float((rows[C.FORECAST] - rows["actual"]).abs().sum())
        signed += float((rows[C.FORECAST] - rows["actual"]).sum())
        base += float((ma28 - rows["actual"]).abs().sum())
        total += float(rows["actual"].sum())
    return err / total, signed / total, base / total


def main(argv: list[str] | None = None) -> int:
    """Print one row per warehouse x span."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--home", type=Path, required=True, help="a demo home (raw_sales in its DuckDB)")
    parser.add_argument("--warehouses", nargs="+", default=["WH001"])
    parser.add_argument("--train-date", type=pd.Timestamp, default=pd.Timestamp("2024-12-02"))
    parser.add_argument("--last-origin", type=pd.Timestamp, default=pd.Timestamp("2024-12-23"))
    args = parser.parse_args(argv)
    print(f"machine: {machine()}")
    print(f"command: python {' '.join(sys.argv)}\n")
    print(
        "| warehouse | origin span | train s | WMAPE | bias | MA28 WMAPE | CV WMAPE tiered | CV WMAPE MA28 |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    origins = pd.date_range(args.train_date, args.last_origin, freq="7D")
    for wh in args.warehouses:
        history, tables = load(args.home, wh)
        for label, (step, n_origins) in SPANS.items():
            config = TrainConfig(origin_step=step, n_origins=n_origins)
            start = time.perf_counter()
            model = train_warehouse(
                history.loc[history[C.DATE] <= args.train_date],
                tables["products"],
                tables["warehouses"],
                None,
                tables["marketing_campaigns"],
                tables["weather"],
                args.train_date,
                wh,
                None,
                config,
            )
            seconds = time.perf_counter() - start
            wm, bias, ma = score(model, history, tables, origins, wh)
            cv = model.validation_metrics.query("segment == 'all'").set_index(C.MODEL)["wmape"]
            print(
                f"| {wh} | {label} | {seconds:.1f} | {wm:.3f} | {bias:+.3f} | {ma:.3f} | "
                f"{cv['tiered']:.3f} | {cv['moving_average_28']:.3f} |",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
