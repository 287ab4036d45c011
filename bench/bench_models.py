"""Benchmark of the tiered pipeline: ``train_warehouse`` and ``forecast_warehouse`` per warehouse.

Synthesises, for W warehouses of N SKUs over D days, ``raw_sales`` from a gamma-Poisson (negative
binomial) model with a per-SKU weekly profile, an intermittent tail (30% of the SKUs sell on few days) and
5% of the SKUs launched inside the last 120 days (self-contained: no other benchmark or generator module is
imported). For each warehouse (history synthesised before the timers start) it times:

* ``assign_tiers`` at the training date (the pipeline's input, timed separately);
* ``train_warehouse`` at the training date = the last day minus the horizon;
* ``forecast_warehouse`` at the training date;

and prints the medians over warehouses (wall and CPU seconds: CPU time is the steadier figure on a shared
machine), forecast rows (SKU x horizon) per second, the extrapolation to
50 warehouses x 10,000 SKUs (linear in SKUs, warehouses run one after the other with ``--threads``
LightGBM threads), the CV accuracy of the first warehouse and the peak RSS of the process.

Usage:
    python bench/bench_models.py --skus 10000 --warehouses 1 --days 420 --threads 1
"""

import argparse
import resource
import statistics
import sys
import time

import numpy as np
import pandas as pd

from demand_platform import columns as C
from demand_platform.calendar import build_calendar
from demand_platform.forecasting import SEGMENT, TrainConfig, forecast_warehouse, train_warehouse
from demand_platform.tiering import ROUTE, assign_tiers

CATEGORIES = ("grocery", "electronics", "home", "toys", "apparel", "beauty")
STATES = ("CA", "TX", "NY", "FL", "WA")
WEEKLY_SHAPES = np.array(
    [
        [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0],
        [0.8, 0.8, 0.9, 1.0, 1.1, 1.5, 1.4],
        [1.2, 1.2, 1.1, 1.0, 1.0, 0.7, 0.6],
        [0.6, 0.7, 0.8, 1.0, 1.2, 1.8, 2.0],
    ]
)
TARGET_FORECAST_SECONDS = 300.0
TARGET_TRAIN_SECONDS = 1200.0
TARGET_RSS_MIB = 12 * 1024
FULL_SKUS, FULL_WAREHOUSES = 10_000, 50


def synth_static(
    n_skus: int, n_warehouses: int, start: pd.Timestamp, end: pd.Timestamp, rng: np.random.Generator
) -> dict[str, pd.DataFrame]:
    """Products (5% launched in the last 120 days), warehouses, calendar and campaigns."""
    skus = np.array([f"SKU{i:06d}" for i in range(n_skus)], dtype=object)
    late = rng.random(n_skus) < 0.05
    launch = np.where(
        late,
        end - pd.to_timedelta(rng.integers(1, 120, n_skus), unit="D"),
        start - pd.to_timedelta(rng.integers(1, 2000, n_skus), unit="D"),
    )
    category = rng.choice(CATEGORIES, n_skus)
    products = pd.DataFrame(
        {
            C.SKU: skus,
            C.CATEGORY: category,
            C.SUB_CATEGORY: np.char.add(category.astype(str), rng.integers(0, 5, n_skus).astype(str)),
            C.BRAND: np.char.add("brand", rng.integers(0, 50, n_skus).astype(str)),
            C.PRICE: np.round(rng.lognormal(3.0, 0.8, n_skus), 2),
            C.WEIGHT_KG: np.round(rng.lognormal(0.0, 0.7, n_skus), 2),
            C.IS_SEASONAL: rng.random(n_skus) < 0.2,
            C.LAUNCH_DATE: pd.to_datetime(launch),
        }
    )
    warehouses = pd.DataFrame(
        {
            C.WAREHOUSE_ID: [f"WH{i:03d}" for i in range(n_warehouses)],
            C.LOCATION_CITY: [f"city{i}" for i in range(n_warehouses)],
            C.LOCATION_STATE: [STATES[i % len(STATES)] for i in range(n_warehouses)],
            C.LATITUDE: rng.uniform(25, 48, n_warehouses),
            C.LONGITUDE: rng.uniform(-122, -70, n_warehouses),
            C.CAPACITY_UNITS: rng.integers(100_000, 1_000_000, n_warehouses),
            C.OPERATIONAL_SINCE: pd.Timestamp("2015-01-01"),
        }
    )
    n_days = (end - start).days + 1
    n_campaigns = 100
    campaign_start = start + pd.to_timedelta(rng.integers(0, n_days + 30, n_campaigns), unit="D")
    campaigns = pd.DataFrame(
        {
            C.CAMPAIGN_ID: np.arange(n_campaigns),
            C.START_DATE: campaign_start,
            C.END_DATE: campaign_start + pd.to_timedelta(rng.integers(1, 15, n_campaigns), unit="D"),
            C.SKU: np.where(rng.random(n_campaigns) < 0.9, rng.choice(skus, n_campaigns), None),
            C.DISCOUNT_PERCENT: rng.choice([5.0, 10.0, 20.0, 30.0], n_campaigns),
            C.CAMPAIGN_TYPE: "discount",
            C.TARGET_REGION: None,
        }
    )
    return {
        "products": products,
        "warehouses": warehouses,
        "calendar": build_calendar(start, end + pd.Timedelta(days=400)),
        "campaigns": campaigns,
    }


def synth_history(
    products: pd.DataFrame,
    warehouse_id: str,
    start: pd.Timestamp,
    end: pd.Timestamp,
    rng: np.random.Generator,
) -> pd.DataFrame:
    """Gamma-Poisson daily ``raw_sales`` of one warehouse with weekly profiles and an intermittent tail."""
    dates = pd.date_range(start, end, freq="D")
    n_skus, n_days = len(products), len(dates)
    rate = rng.gamma(0.8, 5.0, n_skus)
    intermittent = rng.random(n_skus) < 0.3
    rate[intermittent] = rng.uniform(0.3, 3.0, intermittent.sum())
    p_sale = np.where(intermittent, rng.uniform(0.03, 0.3, n_skus), 1.0)
    shape = WEEKLY_SHAPES[rng.integers(0, len(WEEKLY_SHAPES), n_skus)][:, dates.dayofweek.to_numpy()]
    noise = rng.gamma(4.0, 0.25, (n_skus, n_days))
    mean = rate[:, None] * shape * noise
    quantity = rng.poisson(mean) * (rng.random((n_skus, n_days)) < p_sale[:, None])
    launch_offset = (products[C.LAUNCH_DATE].to_numpy() - np.datetime64(start)) // np.timedelta64(1, "D")
    active = np.arange(n_days)[None, :] >= launch_offset[:, None]
    sku_index, day_index = np.nonzero(active)
    qty = quantity[sku_index, day_index].astype(np.float64)
    price = products[C.PRICE].to_numpy()[sku_index]
    return pd.DataFrame(
        {
            C.SKU: products[C.SKU].to_numpy()[sku_index],
            C.WAREHOUSE_ID: warehouse_id,
            C.DATE: dates.to_numpy()[day_index],
            C.QUANTITY: qty,
            C.REVENUE: qty * price,
            C.N_ORDERS: qty.astype(np.int64),
        }
    )


def peak_rss_mib() -> float:
    """Peak resident set size of this process in MiB (Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1024**2 if sys.platform == "darwin" else peak / 1024


def main() -> None:
    """Runs the benchmark."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--skus", type=int, default=10_000)
    parser.add_argument("--warehouses", type=int, default=1)
    parser.add_argument("--days", type=int, default=420)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n-origins", type=int, default=None, help="override TrainConfig.n_origins")
    parser.add_argument("--max-rows", type=int, default=None, help="override TrainConfig.max_rows")
    parser.add_argument("--n-estimators", type=int, default=None, help="override TrainConfig.n_estimators")
    parser.add_argument(
        "--learning-rate", type=float, default=None, help="override TrainConfig.learning_rate"
    )
    parser.add_argument("--objective", default=None, help="override TrainConfig.objective (tweedie, poisson)")
    args = parser.parse_args()

    overrides = {
        name: value
        for name, value in (
            ("n_origins", args.n_origins),
            ("max_rows", args.max_rows),
            ("n_estimators", args.n_estimators),
            ("learning_rate", args.learning_rate),
            ("objective", args.objective),
        )
        if value is not None
    }
    config = TrainConfig(num_threads=args.threads, seed=args.seed, **overrides)
    rng = np.random.default_rng(args.seed)
    end = pd.Timestamp("2024-06-30")
    start = end - pd.Timedelta(days=args.days - 1)
    train_date = end - pd.Timedelta(days=config.horizon)
    static = synth_static(args.skus, args.warehouses, start, end, rng)
    print(
        f"{args.warehouses} warehouse(s) x {args.skus:,} SKUs x {args.days} days, threads={args.threads}, "
        f"train_date={train_date.date()}, n_origins={config.n_origins}, origin_step={config.origin_step}, "
        f"max_rows/band={config.max_rows:,}, n_estimators={config.n_estimators}, "
        f"learning_rate={config.learning_rate}, objective={config.objective}, cv_origins={config.cv_origins}"
    )
    tier_s, train_s, forecast_s, forecast_rows = [], [], [], []
    train_cpu, forecast_cpu = [], []
    first_metrics = None
    for warehouse_id in static["warehouses"][C.WAREHOUSE_ID]:
        history = synth_history(static["products"], warehouse_id, start, end, rng)
        began = time.perf_counter()
        tiers = assign_tiers(history, static["products"], train_date)
        tier_s.append(time.perf_counter() - began)
        began, began_cpu = time.perf_counter(), time.process_time()
        model = train_warehouse(
            history,
            static["products"],
            static["warehouses"],
            static["calendar"],
            static["campaigns"],
            None,
            train_date,
            warehouse_id,
            tiers,
            config,
        )
        train_s.append(time.perf_counter() - began)
        train_cpu.append(time.process_time() - began_cpu)
        began, began_cpu = time.perf_counter(), time.process_time()
        forecasts = forecast_warehouse(
            model,
            history,
            static["products"],
            static["warehouses"],
            static["calendar"],
            static["campaigns"],
            None,
            train_date,
            warehouse_id,
            tiers,
        )
        forecast_s.append(time.perf_counter() - began)
        forecast_cpu.append(time.process_time() - began_cpu)
        forecast_rows.append(len(forecasts))
        if first_metrics is None:
            first_metrics = model.validation_metrics
            routes = tiers[ROUTE].value_counts().to_dict()
            rows = model.lgbm.n_train_rows if model.lgbm is not None else {}
            print(
                f"history rows: {len(history):,}; routes at train_date: {routes}; LightGBM rows/band: {rows}"
            )
        print(
            f"  {warehouse_id}: tiers {tier_s[-1]:.2f} s, train {train_s[-1]:.2f} s wall "
            f"({train_cpu[-1]:.2f} s CPU), forecast {forecast_s[-1]:.2f} s wall ({forecast_cpu[-1]:.2f} s CPU, "
            f"{len(forecasts):,} rows)"
        )
        del history

    train_median = statistics.median(train_s)
    forecast_median = statistics.median(forecast_s)
    tier_median = statistics.median(tier_s)
    rows = statistics.median(forecast_rows)
    scale = FULL_WAREHOUSES * FULL_SKUS / args.skus
    full_forecast = (forecast_median + tier_median) * scale
    full_train = train_median * scale
    print(
        f"median per warehouse: assign_tiers {tier_median:.2f} s, train_warehouse {train_median:.2f} s wall "
        f"({statistics.median(train_cpu):.2f} s CPU), forecast_warehouse {forecast_median:.2f} s wall "
        f"({statistics.median(forecast_cpu):.2f} s CPU) = {rows / forecast_median:,.0f} forecast rows/s"
    )
    print(f"extrapolated to {FULL_WAREHOUSES} x {FULL_SKUS:,} (sequential, {args.threads} thread(s)):")
    if args.skus != FULL_SKUS:
        print(
            "  (linear in SKUs: the LightGBM rows are capped per warehouse, so with fewer SKUs the training "
            "figure overestimates; run with --skus 10000 for the real per-warehouse cost)"
        )
    print(
        f"  forecasts (tiers + forecast) {full_forecast / 60:.1f} min "
        f"(target {TARGET_FORECAST_SECONDS / 60:.0f} min: {'OK' if full_forecast <= TARGET_FORECAST_SECONDS else 'OVER'})"
    )
    print(
        f"  training {full_train / 60:.1f} min "
        f"(target {TARGET_TRAIN_SECONDS / 60:.0f} min: {'OK' if full_train <= TARGET_TRAIN_SECONDS else 'OVER'})"
    )
    rss = peak_rss_mib()
    print(
        f"peak RSS: {rss:,.0f} MiB (target {TARGET_RSS_MIB:,} MiB per process: {'OK' if rss <= TARGET_RSS_MIB else 'OVER'})"
    )
    if first_metrics is not None:
        table = first_metrics.loc[first_metrics[SEGMENT] == "all"].drop(columns=[SEGMENT])
        print("CV metrics of the first warehouse (segment all):")
        print(table.to_string(index=False, float_format=lambda value: f"{value:.3f}"))


if __name__ == "__main__":
    main()
