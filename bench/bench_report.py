"""Benchmark of the accuracy report of one warehouse partition: ``build_accuracy_report`` (domain only).

Builds, for one warehouse of N SKUs, what the ``accuracy_report`` asset of report day D reads:

* ``raw_sales`` over ``D - ACTUALS_DAYS .. D`` from the platform's synthetic generator
  (:mod:`demand_platform.synthetic`, one warehouse), net quantity per SKU x day with explicit zero rows;
* forecasts of the origins ``D - EVAL_DAYS .. D``, horizons 1..30 (61 x 30 rows per SKU, 60 origins with
  matured targets): a per-SKU level (the SKU's mean demand) times lognormal noise, P50 below it and
  P90/P95 above it; tiers by volume (20% / 30% / 50%) and model names as the forecaster writes them.

The inputs are synthesised by a first run and cached as parquet under ``--work``; a second run reads
them back through DuckDB the way the asset does (``--strings categorical``: Arrow with categorical string
columns; ``--strings object``: DuckDB's ``.df()``, one Python string per value, the asset's earlier read),
then runs ``build_accuracy_report`` ``--repeats`` times (median reported) with the plots written to a
temporary directory (``--no-plots`` to skip them). It prints the RSS after loading, the peak RSS during
the report runs (the kernel's ``VmHWM`` reset after loading) and the process peak
(``resource.getrusage``), and the report's headline figures as a sanity check.

Usage:
    python bench/bench_report.py --skus 10000            # first run: synthesise and cache the inputs
    python bench/bench_report.py --skus 10000 --repeats 3
"""

import argparse
import datetime as dt
import resource
import statistics
import tempfile
import time
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa

from demand_platform import columns as C
from demand_platform.reporting import FORECAST_POLICY, build_accuracy_report
from demand_platform.synthetic import GeneratorConfig, generate_tables

EVAL_DAYS = 60  # assets.reporting.EVAL_DAYS (not imported: no Dagster here)
ACTUALS_DAYS = EVAL_DAYS + 27  # assets.reporting.ACTUALS_DAYS
HORIZON = 30
START = dt.date(2024, 1, 1)
STAT_MODELS = ("croston", "sba", "tsb", "ses", "moving_average")


def _rss_mib() -> float:
    """Current resident set size of the process (MiB)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _peak_mib() -> float:
    """Peak RSS of the process so far (``resource.getrusage``, MiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _reset_hwm() -> bool:
    """Resets the kernel's peak-RSS mark (``VmHWM``) so the report's own peak can be read (Linux)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def _hwm_mib() -> float:
    """``VmHWM``: peak RSS since the last reset (MiB)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def synth_inputs(n_skus: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.Timestamp]:
    """Forecasts, raw_sales and products of one synthetic warehouse, and the report day.

    Args:
        n_skus: SKUs of the warehouse.
        seed: Seed of the generator and of the forecast noise.

    Returns:
        ``(forecasts, actuals, products, as_of)``.
    """
    config = GeneratorConfig(n_skus=n_skus, n_warehouses=1, start=START, days=ACTUALS_DAYS + 1, seed=seed)
    tables = generate_tables(config)
    tx, products = tables[C.TRANSACTIONS], tables[C.PRODUCTS]
    warehouse = str(tx[C.WAREHOUSE_ID].iloc[0])
    days = pd.date_range(pd.Timestamp(START), periods=ACTUALS_DAYS + 1, freq="D")
    skus = products[C.SKU].to_numpy()
    sku_code = pd.Index(skus).get_indexer(tx[C.SKU])
    day_code = (pd.to_datetime(tx[C.TRANSACTION_DATE]) - days[0]).dt.days.to_numpy()
    qty = np.zeros((n_skus, len(days)))
    np.add.at(qty, (sku_code, day_code), tx[C.QUANTITY].to_numpy(dtype=np.float64))
    actuals = pd.DataFrame(
        {
            C.SKU: np.repeat(skus, len(days)),
            C.WAREHOUSE_ID: warehouse,
            C.DATE: np.tile(days.to_numpy(), n_skus),
            C.QUANTITY: qty.ravel(),
            C.REVENUE: qty.ravel() * np.repeat(products[C.PRICE].to_numpy(dtype=np.float64), len(days)),
            C.N_ORDERS: (qty.ravel() > 0).astype(np.int64),
        }
    )

    rng = np.random.default_rng(seed)
    level = np.maximum(qty, 0).mean(axis=1)
    rank = np.argsort(np.argsort(-level, kind="stable"), kind="stable")
    tier = np.where(rank < 0.2 * n_skus, 1, np.where(rank < 0.5 * n_skus, 2, 3)).astype(np.int64)
    model = np.where(tier == 1, "ensemble", np.where(tier == 2, "lgbm", rng.choice(STAT_MODELS, n_skus)))
    as_of = days[-1]
    origins = pd.date_range(as_of - pd.Timedelta(days=EVAL_DAYS), as_of, freq="D")
    n_o = len(origins)
    per_sku = n_o * HORIZON
    horizon = np.tile(np.arange(1, HORIZON + 1), n_o * n_skus)
    origin = np.tile(np.repeat(origins.to_numpy(), HORIZON), n_skus)
    point = np.repeat(level, per_sku) * rng.lognormal(0.0, 0.4, n_skus * per_sku)
    spread = np.sqrt(np.repeat(level, per_sku) + 0.1)
    forecasts = pd.DataFrame(
        {
            C.SKU: np.repeat(skus, per_sku),
            C.WAREHOUSE_ID: warehouse,
            C.ORIGIN_DATE: origin,
            C.TARGET_DATE: origin + horizon.astype("timedelta64[D]"),
            C.HORIZON: horizon,
            C.FORECAST: point,
            C.P50: 0.9 * point,
            C.P90: point + 1.3 * spread,
            C.P95: point + 1.7 * spread,
            C.TIER: np.repeat(tier, per_sku),
            C.MODEL: np.repeat(model, per_sku),
        }
    )
    return forecasts, actuals, products[[C.SKU, C.CATEGORY]], as_of


def load_inputs(
    work: Path, n_skus: int, seed: int, strings: str = "categorical"
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The cached inputs read through DuckDB; synthesised and cached when missing.

    Args:
        work: Cache directory.
        n_skus: SKUs of the warehouse.
        seed: Seed.
        strings: ``categorical`` (the forecasts as the asset reads them: Arrow, categorical strings,
            SMALLINT horizon and tier) or ``object`` (DuckDB's ``.df()``).

    Returns:
        ``(forecasts, actuals, products)``.
    """
    paths = {name: work / f"report_{n_skus}_{seed}_{name}.parquet" for name in ("fc", "act", "prod")}
    if not all(p.exists() for p in paths.values()):
        work.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        frames = synth_inputs(n_skus, seed)[:3]
        for frame, path in zip(frames, paths.values(), strict=True):
            frame.to_parquet(path, index=False)
        del frames
        print(f"synthesised inputs in {time.perf_counter() - t0:.1f} s -> {work}")
    con = duckdb.connect()
    if strings == "object":  # DuckDB's .df(): one Python string per row and column
        out = tuple(con.sql(f"SELECT * FROM '{p}'").df() for p in paths.values())
    else:  # as assets.reporting.read_forecasts: Arrow, strings as categoricals, small integers
        fc = con.sql(
            f"SELECT * REPLACE (CAST({C.HORIZON} AS SMALLINT) AS {C.HORIZON}, "
            f"CAST({C.TIER} AS SMALLINT) AS {C.TIER}) FROM '{paths['fc']}'"
        ).to_arrow_table()
        out = (
            fc.to_pandas(strings_to_categorical=True, self_destruct=True),
            con.sql(f"SELECT * FROM '{paths['act']}'").df(),
            con.sql(f"SELECT * FROM '{paths['prod']}'").df(),
        )
        del fc
        pa.default_memory_pool().release_unused()  # as the asset does after the conversion
    con.close()
    for frame in out:
        for column in (C.ORIGIN_DATE, C.TARGET_DATE, C.DATE):
            if column in frame.columns:
                frame[column] = pd.to_datetime(frame[column]).astype("datetime64[ns]")
    return out[0], out[1], out[2]


def main(argv: list[str] | None = None) -> None:
    """Parses the arguments, runs the benchmark and prints the results.

    Args:
        argv: Command-line arguments (``sys.argv[1:]`` when None).
    """
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--skus", type=int, default=2_000, help="SKUs of the warehouse")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs (the median is reported)")
    parser.add_argument("--work", type=Path, default=Path("/tmp/bench_report"), help="input cache directory")
    parser.add_argument("--no-plots", action="store_true", help="do not draw the plots")
    parser.add_argument(
        "--strings",
        choices=("categorical", "object"),
        default="categorical",
        help="forecast string columns as the asset reads them (categorical) or as DuckDB's .df() (object)",
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    if not all(
        (args.work / f"report_{args.skus}_{args.seed}_{n}.parquet").exists() for n in ("fc", "act", "prod")
    ):
        load_inputs(args.work, args.skus, args.seed)  # synthesise first: the timed process starts clean
        print("inputs cached; run again to time the report (peak RSS must not include the synthesis)")
        return
    forecasts, actuals, products = load_inputs(args.work, args.skus, args.seed, args.strings)
    warehouse = str(forecasts[C.WAREHOUSE_ID].iloc[0])
    as_of = pd.Timestamp(actuals[C.DATE].max())
    rss_inputs = _rss_mib()
    print(
        f"inputs: {len(forecasts):,} forecast rows ({args.strings} strings, "
        f"{forecasts.memory_usage(deep=args.strings == 'object').sum() / 2**20:,.0f} MiB), "
        f"{len(actuals):,} raw_sales rows, {args.skus:,} SKUs; RSS after loading {rss_inputs:,.0f} MiB "
        f"(process peak while loading {_peak_mib():,.0f} MiB)"
    )
    hwm = _reset_hwm()

    times = []
    report = None
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.repeats):
            t0 = time.perf_counter()
            report = build_accuracy_report(
                forecasts,
                actuals,
                products,
                as_of,
                warehouse,
                out_dir=None if args.no_plots else Path(tmp) / str(i),
            )
            times.append(time.perf_counter() - t0)
            print(f"  run {i + 1}: {times[-1]:.2f} s")
    assert report is not None
    median = statistics.median(times)
    print(f"build_accuracy_report, {args.skus:,} SKUs, plots {'off' if args.no_plots else 'on'}")
    print(f"  median of {args.repeats}   : {median:.2f} s")
    if hwm:
        print(
            f"  peak RSS during the report runs (VmHWM after reset): {_hwm_mib():,.0f} MiB "
            f"({_hwm_mib() - rss_inputs:,.0f} MiB above the loaded inputs)"
        )
    print(f"  peak RSS of the process (getrusage, includes loading): {_peak_mib():,.0f} MiB")
    print(
        f"  sanity        : {report.n_scored:,} scored, WMAPE {report.wmape:.4f}, bias {report.bias:+.4f}, "
        f"lead-time WMAPE {report.lead_time_wmape:.4f}, {len(report.frame)} report rows, "
        f"{len(report.recommendations):,} recommendations, forecast-policy service "
        f"{report.policy_metric(FORECAST_POLICY, 'cycle_service_level'):.4f}"
    )


if __name__ == "__main__":
    main()
