"""Benchmark of ``demand_platform.features.build_features`` on synthetic in-memory data.

Synthesises ``raw_sales`` for W warehouses of N SKUs over D days (gamma-Poisson demand with a weekly
profile, 10% of SKUs launched inside the window), then times:

* one partition (the first warehouse, one origin = the last day): median of 3 runs;
* W warehouses one after the other, one origin each (the history of a warehouse is synthesised before its
  timer starts and dropped after, so memory holds one warehouse at a time).

Prints wall and CPU seconds (CPU time is the steadier figure on a shared machine), rows/s and the
peak RSS of the process.

Usage:
    python bench/bench_features.py --skus 10000 --days 420 --warehouses 50
"""

import argparse
import resource
import statistics
import time

import numpy as np
import pandas as pd

from demand_platform.calendar import build_calendar
from demand_platform.columns import (
    BRAND,
    CAMPAIGN_ID,
    CAMPAIGN_TYPE,
    CAPACITY_UNITS,
    CATEGORY,
    DATE,
    DISCOUNT_PERCENT,
    END_DATE,
    IS_EXTREME_WEATHER,
    IS_SEASONAL,
    LATITUDE,
    LAUNCH_DATE,
    LOCATION_CITY,
    LOCATION_STATE,
    LONGITUDE,
    N_ORDERS,
    OPERATIONAL_SINCE,
    PRECIPITATION_MM,
    PRICE,
    QUANTITY,
    REVENUE,
    SKU,
    START_DATE,
    SUB_CATEGORY,
    TARGET_REGION,
    TEMPERATURE_AVG,
    WAREHOUSE_ID,
    WEIGHT_KG,
)
from demand_platform.features import build_features

STATES = ("CA", "TX", "NY", "FL", "WA")
CATEGORIES = ("grocery", "electronics", "home", "toys", "apparel", "beauty")


def synth_static(
    n_skus: int, n_warehouses: int, start: pd.Timestamp, end: pd.Timestamp, rng: np.random.Generator
) -> dict[str, pd.DataFrame]:
    """Products, warehouses, calendar, campaigns and weather for the benchmark."""
    n_days = (end - start).days + 1
    skus = np.array([f"SKU{i:06d}" for i in range(n_skus)], dtype=object)
    launched_inside = rng.random(n_skus) < 0.1
    launch_offset = np.where(launched_inside, rng.integers(0, n_days, n_skus), -rng.integers(1, 2000, n_skus))
    category = rng.choice(CATEGORIES, n_skus)
    products = pd.DataFrame(
        {
            SKU: skus,
            CATEGORY: category,
            SUB_CATEGORY: np.char.add(category.astype(str), rng.integers(0, 5, n_skus).astype(str)),
            BRAND: np.char.add("brand", rng.integers(0, 200, n_skus).astype(str)),
            PRICE: np.round(rng.lognormal(3.0, 0.8, n_skus), 2),
            WEIGHT_KG: np.round(rng.lognormal(0.0, 0.7, n_skus), 2),
            IS_SEASONAL: rng.random(n_skus) < 0.2,
            LAUNCH_DATE: start + pd.to_timedelta(launch_offset, unit="D"),
        }
    )
    warehouse_ids = [f"WH{i:03d}" for i in range(n_warehouses)]
    warehouses = pd.DataFrame(
        {
            WAREHOUSE_ID: warehouse_ids,
            LOCATION_CITY: [f"city{i}" for i in range(n_warehouses)],
            LOCATION_STATE: [STATES[i % len(STATES)] for i in range(n_warehouses)],
            LATITUDE: rng.uniform(25, 48, n_warehouses),
            LONGITUDE: rng.uniform(-122, -70, n_warehouses),
            CAPACITY_UNITS: rng.integers(100_000, 1_000_000, n_warehouses),
            OPERATIONAL_SINCE: pd.Timestamp("2015-01-01"),
        }
    )
    n_campaigns = 200
    campaign_start = start + pd.to_timedelta(rng.integers(0, n_days + 30, n_campaigns), unit="D")
    campaigns = pd.DataFrame(
        {
            CAMPAIGN_ID: np.arange(n_campaigns),
            START_DATE: campaign_start,
            END_DATE: campaign_start + pd.to_timedelta(rng.integers(1, 21, n_campaigns), unit="D"),
            SKU: np.where(rng.random(n_campaigns) < 0.9, rng.choice(skus, n_campaigns), None),
            DISCOUNT_PERCENT: rng.choice([5.0, 10.0, 15.0, 20.0, 30.0], n_campaigns),
            CAMPAIGN_TYPE: "discount",
            TARGET_REGION: np.where(rng.random(n_campaigns) < 0.5, rng.choice(STATES, n_campaigns), None),
        }
    )
    weather_dates = pd.date_range(start, end, freq="D")
    weather = pd.DataFrame(
        {
            DATE: np.tile(weather_dates, n_warehouses),
            LOCATION_CITY: np.repeat(warehouses[LOCATION_CITY].to_numpy(), n_days),
            TEMPERATURE_AVG: rng.normal(15, 10, n_days * n_warehouses),
            PRECIPITATION_MM: rng.exponential(2.0, n_days * n_warehouses),
            IS_EXTREME_WEATHER: rng.random(n_days * n_warehouses) < 0.02,
        }
    )
    return {
        "products": products,
        "warehouses": warehouses,
        "calendar": build_calendar(start, end + pd.Timedelta(days=400)),
        "campaigns": campaigns,
        "weather": weather,
    }


def synth_history(
    products: pd.DataFrame,
    warehouse_id: str,
    start: pd.Timestamp,
    end: pd.Timestamp,
    rng: np.random.Generator,
) -> pd.DataFrame:
    """Gamma-Poisson daily ``raw_sales`` of one warehouse (rows only from each SKU's launch)."""
    dates = pd.date_range(start, end, freq="D")
    n_skus, n_days = len(products), len(dates)
    rate = rng.gamma(0.6, 4.0, n_skus)
    weekly = np.array([0.9, 0.9, 1.0, 1.0, 1.1, 1.3, 1.2])[dates.dayofweek.to_numpy()]
    noise = rng.gamma(5.0, 0.2, (n_skus, n_days))
    quantity = rng.poisson(rate[:, None] * weekly[None, :] * noise)
    launch_offset = (products[LAUNCH_DATE].to_numpy() - np.datetime64(start)) // np.timedelta64(1, "D")
    active = np.arange(n_days)[None, :] >= launch_offset[:, None]
    sku_index, day_index = np.nonzero(active)
    qty = quantity[sku_index, day_index].astype(np.float64)
    price = products[PRICE].to_numpy()[sku_index]
    return pd.DataFrame(
        {
            SKU: products[SKU].to_numpy()[sku_index],
            WAREHOUSE_ID: warehouse_id,
            DATE: dates.to_numpy()[day_index],
            QUANTITY: qty,
            REVENUE: qty * price,
            N_ORDERS: np.minimum(qty, rng.poisson(qty * 0.8 + 0.01)).astype(np.int64),
        }
    )


def peak_rss_mb() -> float:
    """Peak resident set size of this process in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    """Runs the benchmark."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--skus", type=int, default=10_000)
    parser.add_argument("--days", type=int, default=420)
    parser.add_argument("--warehouses", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    rng = np.random.default_rng(args.seed)
    end = pd.Timestamp("2024-06-30")
    start = end - pd.Timedelta(days=args.days - 1)
    static = synth_static(args.skus, args.warehouses, start, end, rng)
    warehouse_ids = static["warehouses"][WAREHOUSE_ID].tolist()

    def run(history: pd.DataFrame, warehouse_id: str) -> tuple[float, float, int]:
        began, began_cpu = time.perf_counter(), time.process_time()
        features = build_features(
            history,
            static["products"],
            static["warehouses"],
            static["calendar"],
            static["campaigns"],
            static["weather"],
            origin=end,
            warehouse_id=warehouse_id,
        )
        return time.perf_counter() - began, time.process_time() - began_cpu, len(features)

    history = synth_history(static["products"], warehouse_ids[0], start, end, rng)
    print(f"history of one warehouse: {len(history):,} rows, {args.skus:,} SKUs x {args.days} days")
    timings = [run(history, warehouse_ids[0]) for _ in range(3)]
    seconds = statistics.median(wall for wall, _, _ in timings)
    cpu_seconds = statistics.median(cpu for _, cpu, _ in timings)
    rows = timings[0][2]
    print(
        f"one partition: median of 3 = {seconds:.3f} s wall ({cpu_seconds:.3f} s CPU), "
        f"{rows:,} feature rows, {rows / seconds:,.0f} rows/s"
    )
    del history

    if args.warehouses > 1:
        total_seconds, total_cpu, total_rows = 0.0, 0.0, 0
        for warehouse_id in warehouse_ids:
            history = synth_history(static["products"], warehouse_id, start, end, rng)
            elapsed, cpu, n_rows = run(history, warehouse_id)
            total_seconds += elapsed
            total_cpu += cpu
            total_rows += n_rows
            del history
        print(
            f"{args.warehouses} warehouses sequentially: {total_seconds:.2f} s wall ({total_cpu:.2f} s CPU) "
            f"of build_features, {total_rows:,} feature rows, {total_rows / total_seconds:,.0f} rows/s, "
            f"{total_seconds / args.warehouses:.3f} s per warehouse"
        )
    print(f"peak RSS: {peak_rss_mb():,.0f} MiB")


if __name__ == "__main__":
    main()
