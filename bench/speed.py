"""Domain speed by stage, on synthetic in-memory data (no Dagster): wall and CPU seconds and peak memory.

Stages (``--stage``):

* ``features``: ``build_features`` of one partition (N SKUs x D days of history, one origin), median of
  ``--repeats``; with ``--warehouses`` > 1 also W warehouses one after the other.
* ``models``: per warehouse ``assign_tiers``, ``train_warehouse`` (``--threads``, ``--config`` TrainConfig
  fields as JSON) and ``forecast_warehouse`` at the last day minus the horizon; medians, the
  extrapolation to 50 x 10,000 SKUs (linear in SKUs) and the first warehouse's CV metrics.
* ``statistical``: every vectorised kernel of ``demand_platform.models.statistical`` on N intermittent
  series (median of ``--repeats``) against per-series references (sktime's Croston, statsforecast)
  timed on ``--sample`` series and extrapolated, the largest difference of their forecasts, and
  ``select_by_backtest`` over all registered models.
* ``report``: ``build_accuracy_report`` of one warehouse (61 origins x 30 horizons per SKU); the inputs
  are synthesised and cached under ``--work`` by a first run, read back by the second as the asset reads
  them (``--strings categorical``) or as DuckDB's ``.df()`` (``object``); peak memory of the report runs
  alone (the kernel's mark reset after loading).
* ``inventory``: ``simulate_policy`` on N SKUs x D days (median of ``--repeats``).
* ``reconcile``: what one day of ``reconciled_forecasts`` does, on a DuckDB file synthesised under ``--work``
  (``--skus`` x ``--warehouses`` series, 400 days of ``raw_sales``, the forecasts of the origin and of the
  origin 30 days before): the SQL reads, ``pooling.reconcile_origin`` and the insert of the result, per
  phase, median of ``--repeats``, and peak memory.
* ``lock``: what the platform lock costs per connection: ``dbfile.connect`` against ``duckdb.connect``
  (``--repeats`` opens each way, alternating), and the lock alone.

Synthetic demand (features, models): gamma-Poisson with per-SKU weekly shapes, an intermittent tail (30%
of the SKUs sell on few days) and 5% of the SKUs launched in the last 120 days.

Usage (from the repository root):
    python -m bench.speed --stage features --skus 10000 --days 420 --warehouses 50 --out /tmp/speed_features.json
    python -m bench.speed --stage models --skus 10000 --days 760 --threads 1 --out /tmp/speed_models.json
    python -m bench.speed --stage statistical --series 250000 --days 400 --out /tmp/speed_stat.json
    python -m bench.speed --stage report --skus 10000     # first run: synthesise and cache the inputs
    python -m bench.speed --stage report --skus 10000 --repeats 3 --out /tmp/speed_report.json
    python -m bench.speed --stage inventory --skus 500000 --days 90 --out /tmp/speed_inventory.json
    python -m bench.speed --stage lock --repeats 400 --out /tmp/speed_lock.json
    python -m bench.speed --stage reconcile --skus 10000 --warehouses 50 --work /tmp/bench_reconcile
"""

import argparse
import datetime as dt
import json
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd

from bench.common import command_line, peak_rss_mib, reset_peak_rss, rss_mib, write_json
from demand_platform import columns as C

STAGES = ("features", "models", "statistical", "report", "inventory", "lock", "reconcile")
DEFAULTS: dict[str, dict[str, Any]] = {
    "features": {"skus": 10_000, "days": 420, "repeats": 3},
    "models": {"skus": 10_000, "days": 420, "repeats": 1},
    "statistical": {"series": 250_000, "days": 400, "repeats": 3},
    "report": {"skus": 2_000, "repeats": 3},
    "reconcile": {"skus": 2_000, "repeats": 2},
    "inventory": {"skus": 500_000, "days": 90, "repeats": 3},
    "lock": {"repeats": 400},
}
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
FULL_SKUS, FULL_WAREHOUSES = 10_000, 50
END = pd.Timestamp("2024-06-30")


def timed(fn: Callable[[], Any]) -> tuple[float, float, Any]:
    """Wall seconds, CPU seconds and the result of one call."""
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return time.perf_counter() - wall, time.process_time() - cpu, out


# --------------------------------------------------------------------------------------------------
# synthetic tables
# --------------------------------------------------------------------------------------------------


def synth_static(
    n_skus: int, n_warehouses: int, start: pd.Timestamp, end: pd.Timestamp, rng: np.random.Generator
) -> dict[str, pd.DataFrame]:
    """Products (5% launched in the last 120 days), warehouses, calendar, campaigns and weather."""
    from demand_platform.calendar import build_calendar

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
    days = pd.date_range(start, end, freq="D")
    weather = pd.DataFrame(
        {
            C.DATE: np.tile(days, n_warehouses),
            C.LOCATION_CITY: np.repeat(warehouses[C.LOCATION_CITY].to_numpy(), n_days),
            C.TEMPERATURE_AVG: rng.normal(15, 10, n_days * n_warehouses),
            C.PRECIPITATION_MM: rng.exponential(2.0, n_days * n_warehouses),
            C.IS_EXTREME_WEATHER: rng.random(n_days * n_warehouses) < 0.02,
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
    """Gamma-Poisson daily ``raw_sales`` of one warehouse with weekly profiles and an intermittent tail."""
    dates = pd.date_range(start, end, freq="D")
    n_skus, n_days = len(products), len(dates)
    rate = rng.gamma(0.8, 5.0, n_skus)
    intermittent = rng.random(n_skus) < 0.3
    rate[intermittent] = rng.uniform(0.3, 3.0, intermittent.sum())
    p_sale = np.where(intermittent, rng.uniform(0.03, 0.3, n_skus), 1.0)
    shape = WEEKLY_SHAPES[rng.integers(0, len(WEEKLY_SHAPES), n_skus)][:, dates.dayofweek.to_numpy()]
    mean = rate[:, None] * shape * rng.gamma(4.0, 0.25, (n_skus, n_days))
    quantity = rng.poisson(mean) * (rng.random((n_skus, n_days)) < p_sale[:, None])
    launch_offset = (products[C.LAUNCH_DATE].to_numpy() - np.datetime64(start)) // np.timedelta64(1, "D")
    sku_index, day_index = np.nonzero(np.arange(n_days)[None, :] >= launch_offset[:, None])
    qty = quantity[sku_index, day_index].astype(np.float64)
    return pd.DataFrame(
        {
            C.SKU: products[C.SKU].to_numpy()[sku_index],
            C.WAREHOUSE_ID: warehouse_id,
            C.DATE: dates.to_numpy()[day_index],
            C.QUANTITY: qty,
            C.REVENUE: qty * products[C.PRICE].to_numpy()[sku_index],
            C.N_ORDERS: qty.astype(np.int64),
        }
    )


# --------------------------------------------------------------------------------------------------
# stages
# --------------------------------------------------------------------------------------------------


def stage_features(args: argparse.Namespace) -> dict[str, Any]:
    """``build_features`` of one partition, and of W warehouses one after the other."""
    from demand_platform.features import build_features
    from demand_platform.tables import SourceTables

    rng = np.random.default_rng(args.seed)
    start = END - pd.Timedelta(days=args.days - 1)
    static = synth_static(args.skus, args.warehouses, start, END, rng)
    warehouse_ids = static["warehouses"][C.WAREHOUSE_ID].tolist()

    tables = SourceTables(**static)

    def run(history: pd.DataFrame, wh: str) -> tuple[float, float, Any]:
        return timed(lambda: build_features(history, tables, END, wh))

    history = synth_history(static["products"], warehouse_ids[0], start, END, rng)
    runs = [run(history, warehouse_ids[0]) for _ in range(args.repeats)]
    out: dict[str, Any] = {
        "history_rows": len(history),
        "partition_seconds": statistics.median(r[0] for r in runs),
        "partition_cpu_seconds": statistics.median(r[1] for r in runs),
        "feature_rows": len(runs[0][2]),
    }
    del history
    if args.warehouses > 1:
        wall = cpu = 0.0
        for wh in warehouse_ids:
            w, c, _ = run(synth_history(static["products"], wh, start, END, rng), wh)
            wall, cpu = wall + w, cpu + c
        out.update({"warehouses_seconds": wall, "warehouses_cpu_seconds": cpu})
    return out


def stage_models(args: argparse.Namespace) -> dict[str, Any]:
    """``assign_tiers``, ``train_warehouse`` and ``forecast_warehouse`` per warehouse."""
    from demand_platform.forecasting import SEGMENT, TrainConfig, forecast_warehouse, train_warehouse
    from demand_platform.frames import stack_rows
    from demand_platform.tables import SourceTables
    from demand_platform.tiering import assign_tiers

    config = TrainConfig(num_threads=args.threads, seed=args.seed, **json.loads(args.config))
    rng = np.random.default_rng(args.seed)
    start = END - pd.Timedelta(days=args.days - 1)
    train_date = END - pd.Timedelta(days=config.horizon)
    static = synth_static(args.skus, args.warehouses, start, END, rng)
    s = static
    per: list[dict[str, float]] = []
    cv = None
    histories = {
        wh: synth_history(s["products"], wh, start, END, rng) for wh in s["warehouses"][C.WAREHOUSE_ID]
    }
    # With pooling (TrainConfig.pool_series > 0) every warehouse trains on the rows of all, as the asset
    # passes them (its own and the pool's); train_warehouse keeps pool_series series of the others.
    every = stack_rows(list(histories.values())) if config.pool_series and len(histories) > 1 else None
    for wh, history in histories.items():
        tier_s, _, tiers = timed(lambda h=history: assign_tiers(h, s["products"], train_date))
        tables = (SourceTables(**{**s, "weather": None}), train_date, wh, tiers)
        train_rows = history if every is None else every
        train_s, train_cpu, model = timed(lambda h=train_rows, t=tables: train_warehouse(h, *t, config))
        fc_s, fc_cpu, fc = timed(lambda h=history, t=tables, m=model: forecast_warehouse(m, h, *t))
        per.append(
            {
                "tiers_s": tier_s,
                "train_s": train_s,
                "train_cpu_s": train_cpu,
                "forecast_s": fc_s,
                "forecast_cpu_s": fc_cpu,
                "forecast_rows": len(fc),
                "forecast_min": float(fc[C.FORECAST].min()),
                "pooled_series": model.pooled_series,
            }
        )
        print(f"  {wh}: tiers {tier_s:.2f} s, train {train_s:.2f} s, forecast {fc_s:.2f} s", flush=True)
        if cv is None:
            cv = model.validation_metrics.loc[model.validation_metrics[SEGMENT] == "all"].drop(
                columns=[SEGMENT]
            )
    medians = {k: statistics.median(p[k] for p in per) for k in per[0]}
    scale = FULL_WAREHOUSES * FULL_SKUS / args.skus
    return {
        "config": {k: v for k, v in vars(config).items() if isinstance(v, int | float | str | bool)},
        "per_warehouse": per,
        "median": medians,
        "extrapolated_train_s": medians["train_s"] * scale,
        "extrapolated_forecast_s": (medians["forecast_s"] + medians["tiers_s"]) * scale,
        "cv_metrics": cv,
    }


def synth_intermittent(n_series: int, n_days: int, rng: np.random.Generator) -> np.ndarray:
    """Intermittent negative-binomial demand ``[n_series, n_days]``, 10% launched late (NaN prefix)."""
    y = np.empty((n_series, n_days), dtype=np.float64)
    for lo in range(0, n_series, 16384):
        n = min(16384, n_series - lo)
        mean_size = rng.gamma(1.0, 3.0, size=(n, 1)) + 0.2
        p_demand = rng.beta(0.6, 2.0, size=(n, 1))
        sizes = rng.negative_binomial(1.5, 1.5 / (1.5 + mean_size), size=(n, n_days))
        y[lo : lo + n] = sizes * (rng.random((n, n_days)) < p_demand)
    late = np.flatnonzero(rng.random(n_series) < 0.1)
    launch = rng.integers(1, max(n_days - 30, 2), size=late.size)
    y[late] = np.where(np.arange(n_days)[None, :] < launch[:, None], np.nan, y[late])
    return y


def stage_statistical(args: argparse.Namespace) -> dict[str, Any]:
    """The vectorised kernels against per-series references."""
    from sktime.forecasting.croston import Croston as SktimeCroston
    from statsforecast import models as sf

    from demand_platform.models import statistical as st

    warnings.filterwarnings("ignore")
    n, h = args.series, args.h
    y = synth_intermittent(n, args.days, np.random.default_rng(args.seed))
    kernels: dict[str, Callable[[np.ndarray], np.ndarray]] = {
        "naive": lambda m: st.naive(m, h),
        "seasonal_naive": lambda m: st.seasonal_naive(m, h, season=7),
        "moving_average": lambda m: st.moving_average(m, h, window=28),
        "croston": lambda m: st.croston(m, h, alpha=0.1),
        "croston_sba": lambda m: st.croston_sba(m, h, alpha=0.1),
        "tsb": lambda m: st.tsb(m, h, alpha_d=0.1, alpha_p=0.1),
        "ses": lambda m: st.ses(m, h, alpha=0.1),
        "auto_ses": lambda m: st.auto_ses(m, h),
    }
    ours = {
        name: statistics.median(timed(partial(k, y))[0] for _ in range(args.repeats))
        for name, k in kernels.items()
    }
    fh = np.arange(1, h + 1)

    def sf_model(model: Any) -> Callable[[np.ndarray], np.ndarray]:
        return lambda x: model.forecast(y=x, h=h)["mean"]

    references = {
        "croston": (
            "sktime Croston",
            lambda x: SktimeCroston(smoothing=0.1).fit(pd.Series(x)).predict(fh=fh).to_numpy().ravel(),
        ),
        "croston (sf)": ("statsforecast CrostonClassic", sf_model(sf.CrostonClassic())),
        "croston_sba": ("statsforecast CrostonSBA", sf_model(sf.CrostonSBA())),
        "tsb": ("statsforecast TSB", sf_model(sf.TSB(alpha_d=0.1, alpha_p=0.1))),
        "ses": ("statsforecast SES", sf_model(sf.SimpleExponentialSmoothing(alpha=0.1))),
        "auto_ses": ("statsforecast SESOptimized", sf_model(sf.SimpleExponentialSmoothingOptimized())),
        "seasonal_naive": ("statsforecast SeasonalNaive", sf_model(sf.SeasonalNaive(season_length=7))),
        "moving_average": ("statsforecast WindowAverage", sf_model(sf.WindowAverage(window_size=28))),
        "naive": ("statsforecast Naive", sf_model(sf.Naive())),
    }
    rng = np.random.default_rng(args.seed + 1)
    sample = y[rng.choice(n, size=min(args.sample, n), replace=False)]
    series = [row[np.argmax(~np.isnan(row)) :] for row in sample]
    rows = []
    for ref_name, (label, ref) in references.items():
        name = ref_name.split(" ")[0]
        ref_s, _, expected = timed(lambda r=ref: np.array([r(x) for x in series]))
        ref_n = ref_s / len(series) * n
        rows.append(
            {
                "kernel": name,
                "vectorised_s": ours[name],
                "reference": label,
                "reference_us_per_series": ref_s / len(series) * 1e6,
                "reference_extrapolated_s": ref_n,
                "speed_up": ref_n / ours[name],
                "max_abs_diff": float(np.nanmax(np.abs(kernels[name](sample) - expected))),
            }
        )
    out: dict[str, Any] = {"kernels": rows}
    if not args.no_selection:
        models = list(st.STAT_MODELS.values())
        seconds, _, _ = timed(
            lambda: st.forecast_selected(y, h, models, st.select_by_backtest(y, h, models, n_windows=3)[0])
        )
        out["selection_s"] = seconds
    return out


def stage_report(args: argparse.Namespace) -> dict[str, Any]:
    """``build_accuracy_report`` of one warehouse on cached synthetic inputs."""
    from demand_platform.reporting import FORECAST_POLICY, build_accuracy_report

    paths = {
        name: args.work / f"report_{args.skus}_{args.seed}_{name}.parquet" for name in ("fc", "act", "prod")
    }
    if not all(p.exists() for p in paths.values()):
        args.work.mkdir(parents=True, exist_ok=True)
        for frame, path in zip(synth_report_inputs(args.skus, args.seed), paths.values(), strict=True):
            frame.to_parquet(path, index=False)
        print("inputs cached; run again to time the report (its peak memory must not include the synthesis)")
        return {"cached": str(args.work)}
    con = duckdb.connect()
    if args.strings == "object":
        forecasts, actuals, products = (con.sql(f"SELECT * FROM '{p}'").df() for p in paths.values())
    else:  # as the asset reads the forecasts: Arrow, categorical strings, small integers
        fc = con.sql(
            f"SELECT * REPLACE (CAST({C.HORIZON} AS SMALLINT) AS {C.HORIZON}, "
            f"CAST({C.TIER} AS SMALLINT) AS {C.TIER}) FROM '{paths['fc']}'"
        ).to_arrow_table()
        forecasts = fc.to_pandas(strings_to_categorical=True, self_destruct=True)
        actuals = con.sql(f"SELECT * FROM '{paths['act']}'").df()
        products = con.sql(f"SELECT * FROM '{paths['prod']}'").df()
    con.close()
    for frame in (forecasts, actuals):
        for column in (C.ORIGIN_DATE, C.TARGET_DATE, C.DATE):
            if column in frame.columns:
                frame[column] = pd.to_datetime(frame[column]).astype("datetime64[ns]")
    warehouse = str(forecasts[C.WAREHOUSE_ID].iloc[0])
    as_of = pd.Timestamp(actuals[C.DATE].max())
    inputs_mib = rss_mib()
    reset = reset_peak_rss()
    times, report = [], None
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.repeats):
            out_dir = None if args.no_plots else Path(tmp) / str(i)
            seconds, _, report = timed(
                lambda d=out_dir: build_accuracy_report(
                    forecasts, actuals, products, as_of, warehouse, out_dir=d
                )
            )
            times.append(seconds)
    assert report is not None
    peak = peak_rss_mib()
    return {
        "forecast_rows": len(forecasts),
        "strings": args.strings,
        "plots": not args.no_plots,
        "seconds": times,
        "median_s": statistics.median(times),
        "rss_inputs_mib": inputs_mib,
        "peak_report_mib": peak if reset else None,
        "peak_above_inputs_mib": peak - inputs_mib if reset else None,
        "n_scored": report.n_scored,
        "wmape": report.wmape,
        "cycle_service": report.policy_metric(FORECAST_POLICY, "cycle_service_level"),
    }


def synth_report_inputs(n_skus: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Forecasts of 61 origins x 30 horizons, raw_sales and products of one generated warehouse."""
    from demand_platform.synthetic import GeneratorConfig, generate_tables

    eval_days, horizon, start = 60, 30, dt.date(2024, 1, 1)
    actual_days = eval_days + 27
    tables = generate_tables(
        GeneratorConfig(n_skus=n_skus, n_warehouses=1, start=start, days=actual_days + 1, seed=seed)
    )
    tx, products = tables[C.TRANSACTIONS], tables[C.PRODUCTS]
    warehouse = str(tx[C.WAREHOUSE_ID].iloc[0])
    days = pd.date_range(pd.Timestamp(start), periods=actual_days + 1, freq="D")
    skus = products[C.SKU].to_numpy()
    qty = np.zeros((n_skus, len(days)))
    np.add.at(
        qty,
        (
            pd.Index(skus).get_indexer(tx[C.SKU]),
            (pd.to_datetime(tx[C.TRANSACTION_DATE]) - days[0]).dt.days.to_numpy(),
        ),
        tx[C.QUANTITY].to_numpy(dtype=np.float64),
    )
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
    stat_models = ("croston", "sba", "tsb", "ses", "moving_average")
    model = np.where(tier == 1, "ensemble", np.where(tier == 2, "lgbm", rng.choice(stat_models, n_skus)))
    origins = pd.date_range(days[-1] - pd.Timedelta(days=eval_days), days[-1], freq="D")
    per_sku = len(origins) * horizon
    h = np.tile(np.arange(1, horizon + 1), len(origins) * n_skus)
    origin = np.tile(np.repeat(origins.to_numpy(), horizon), n_skus)
    point = np.repeat(level, per_sku) * rng.lognormal(0.0, 0.4, n_skus * per_sku)
    spread = np.sqrt(np.repeat(level, per_sku) + 0.1)
    forecasts = pd.DataFrame(
        {
            C.SKU: np.repeat(skus, per_sku),
            C.WAREHOUSE_ID: warehouse,
            C.ORIGIN_DATE: origin,
            C.TARGET_DATE: origin + h.astype("timedelta64[D]"),
            C.HORIZON: h,
            C.FORECAST: point,
            C.P50: 0.9 * point,
            C.P90: point + 1.3 * spread,
            C.P95: point + 1.7 * spread,
            C.TIER: np.repeat(tier, per_sku),
            C.MODEL: np.repeat(model, per_sku),
        }
    )
    return forecasts, actuals, products[[C.SKU, C.CATEGORY]]


def stage_inventory(args: argparse.Namespace) -> dict[str, Any]:
    """``simulate_policy`` on N SKUs x D days of intermittent demand."""
    from demand_platform.inventory import simulate_policy

    rng = np.random.default_rng(args.seed)
    n, d = args.skus, args.days
    lead_time = rng.integers(3, 8, size=n)
    p_demand = rng.beta(1.0, 1.5, size=(n, 1))
    size = rng.gamma(1.5, 2.0, size=(n, 1)) + 0.5
    demand = rng.poisson(size, size=(n, d)) * (rng.random((n, d)) < p_demand)
    mean = p_demand * size
    sd = np.sqrt(p_demand * (size + size * size) - mean * mean)
    protection = (lead_time + 1)[:, None]
    levels = (mean * protection + 1.645 * sd * np.sqrt(protection)) * rng.uniform(0.8, 1.2, size=(n, d))
    runs = [
        timed(lambda: simulate_policy(demand, levels, lead_time, levels[:, 0].copy(), warmup=8))
        for _ in range(args.repeats)
    ]
    result = runs[-1][2]
    median = statistics.median(r[0] for r in runs)
    return {
        "seconds": [r[0] for r in runs],
        "median_s": median,
        "ns_per_sku_day": median / (n * d) * 1e9,
        "fill_rate": float(result.served.sum() / result.demanded.sum()),
        "cycle_service": float(result.cycle_service_level.mean()),
    }


def stage_lock(args: argparse.Namespace) -> dict[str, Any]:
    """``dbfile.connect`` against a bare ``duckdb.connect``, one query each, and the lock alone."""
    from demand_platform import dbfile

    database = str(Path(tempfile.mkdtemp()) / "w.duckdb")
    with duckdb.connect(database) as con:
        con.execute("CREATE TABLE t AS SELECT range AS x FROM range(100000)")

    def bare(read_only: bool) -> None:
        con = duckdb.connect(database, read_only=read_only)
        con.execute("SELECT count(*) FROM t").fetchall()
        con.close()

    def locked(read_only: bool) -> None:
        with dbfile.connect(database, read_only=read_only) as con:
            con.execute("SELECT count(*) FROM t").fetchall()

    def lock_only() -> None:
        with dbfile.database_lock(database):
            pass

    def us(values: list[float]) -> float:
        return statistics.median(values) * 1e6

    out: dict[str, Any] = {}
    for read_only in (False, True):
        plain, with_lock = [], []
        for i in range(args.repeats):
            pair = (partial(bare, read_only), partial(locked, read_only))
            first, second = pair if i % 2 else pair[::-1]
            a, b = timed(first)[0], timed(second)[0]
            plain.append(a if i % 2 else b)
            with_lock.append(b if i % 2 else a)
        mode = "read_only" if read_only else "read_write"
        out[mode] = {
            "bare_us": us(plain),
            "locked_us": us(with_lock),
            "difference_us": us([b - a for a, b in zip(plain, with_lock, strict=True)]),
        }
    out["lock_outermost_us"] = us([timed(lock_only)[0] for _ in range(args.repeats)])
    with dbfile.database_lock(database):
        out["lock_reentered_us"] = us([timed(lock_only)[0] for _ in range(args.repeats)])
    return out


def _reconcile_database(path: Path, skus: int, warehouses: int, origin: dt.date, days: int = 400) -> None:
    """A DuckDB file with ``raw_sales`` and the forecasts of ``origin`` and ``origin - 30``, made in SQL."""
    first = origin - dt.timedelta(days=days - 1)
    with duckdb.connect(str(path)) as con:
        con.execute(
            f"""
            CREATE TABLE {C.RAW_SALES} AS
            SELECT printf('SKU%06d', s) AS {C.SKU}, printf('WH%03d', w) AS {C.WAREHOUSE_ID},
                   CAST(DATE '{first}' + CAST(d AS INTEGER) AS TIMESTAMP) AS {C.DATE},
                   CAST(floor(random() * (1 + (s % 7)) * (1 + (w % 3))) AS DOUBLE) AS {C.QUANTITY},
                   0.0 AS {C.REVENUE}, CAST(0 AS BIGINT) AS {C.N_ORDERS}
            FROM range({skus}) r1(s), range({warehouses}) r2(w), range({days}) r3(d)
            """
        )
        for i, day in enumerate((origin - dt.timedelta(days=30), origin)):
            con.execute(
                f"""
                {"CREATE TABLE " + C.FORECASTS + " AS" if i == 0 else "INSERT INTO " + C.FORECASTS}
                SELECT printf('SKU%06d', s) AS {C.SKU}, printf('WH%03d', w) AS {C.WAREHOUSE_ID},
                       TIMESTAMP '{day}' AS {C.ORIGIN_DATE},
                       CAST(DATE '{day}' + CAST(h AS INTEGER) AS TIMESTAMP) AS {C.TARGET_DATE},
                       CAST(h AS BIGINT) AS {C.HORIZON}, f AS {C.FORECAST}, round(f) AS {C.P50},
                       ceil(2 * f) AS {C.P90}, ceil(3 * f) AS {C.P95}, CAST(1 AS BIGINT) AS {C.TIER},
                       'blend' AS {C.MODEL}, f AS forecast_unadjusted, round(f) AS p50_unadjusted,
                       ceil(2 * f) AS p90_unadjusted, ceil(3 * f) AS p95_unadjusted, false AS override_applied,
                       CAST(NULL AS VARCHAR) AS override_author, CAST(NULL AS VARCHAR) AS override_reason,
                       '7' AS {C.MODEL_VERSION}
                FROM (SELECT s, w, h, random() * (1 + (s % 7)) * (1 + (w % 3)) AS f
                      FROM range({skus}) r1(s), range({warehouses}) r2(w), range(1, 31) r3(h))
                """
            )


def stage_reconcile(args: argparse.Namespace) -> dict[str, Any]:
    """One day of ``reconciled_forecasts``: its reads, the domain call and the write, per phase."""
    from assets.reconciliation import past_forecasts
    from demand_platform import store
    from demand_platform.forecasting import pooling

    origin = dt.date(2025, 6, 30)
    args.work.mkdir(parents=True, exist_ok=True)
    path = args.work / f"reconcile_{args.skus}x{args.warehouses}.duckdb"
    if not path.exists():
        seconds = timed(lambda: _reconcile_database(path, args.skus, args.warehouses, origin))[0]
        print(f"synthesised {path} in {seconds:.1f} s", flush=True)
    phases: dict[str, list[float]] = {}
    rows = 0
    reset_peak_rss()
    for _ in range(args.repeats):
        with duckdb.connect(str(path)) as con:
            t0 = time.perf_counter()
            forecasts = store.read_forecasts(con, origin)
            t1 = time.perf_counter()
            shares = store.warehouse_units(con, origin, pooling.SHARE_DAYS)
            t2 = time.perf_counter()
            past = past_forecasts(con, origin)
            t3 = time.perf_counter()
            reconciled, choice = pooling.reconcile_origin(forecasts, shares, None, past)
            t4 = time.perf_counter()
            con.execute("DROP TABLE IF EXISTS reconciled")
            con.register("frame", reconciled)
            con.execute("CREATE TABLE reconciled AS SELECT * FROM frame")
            con.unregister("frame")
            t5 = time.perf_counter()
        rows = len(reconciled)
        for name, seconds in (
            ("read_forecasts_s", t1 - t0),
            ("shares_sql_s", t2 - t1),
            ("past_forecasts_and_sales_s", t3 - t2),
            ("reconcile_origin_s", t4 - t3),
            ("write_s", t5 - t4),
            ("total_s", t5 - t0),
        ):
            phases.setdefault(name, []).append(seconds)
        del forecasts, reconciled, past
    return {
        "series": args.skus * args.warehouses,
        "rows": rows,
        "weight": choice.weight,
        **{name: statistics.median(values) for name, values in phases.items()},
        "total_runs_s": phases["total_s"],
        "peak_rss_of_runs_mib": peak_rss_mib(),
    }


RUNNERS: dict[str, Callable[[argparse.Namespace], dict[str, Any]]] = {
    "features": stage_features,
    "models": stage_models,
    "statistical": stage_statistical,
    "report": stage_report,
    "inventory": stage_inventory,
    "lock": stage_lock,
    "reconcile": stage_reconcile,
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options (sizes default per stage, see ``DEFAULTS``)."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--stage", choices=STAGES, required=True)
    parser.add_argument("--skus", type=int, default=None, help="SKUs (features, models, report, inventory)")
    parser.add_argument("--days", type=int, default=None, help="history or simulated days")
    parser.add_argument("--warehouses", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=None, help="timed runs (the median is reported)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="models: LightGBM threads")
    parser.add_argument("--config", default="{}", help="models: TrainConfig fields as a JSON object")
    parser.add_argument("--series", type=int, default=None, help="statistical: series")
    parser.add_argument("--h", type=int, default=30, help="statistical: horizon")
    parser.add_argument(
        "--sample", type=int, default=200, help="statistical: series timed with the references"
    )
    parser.add_argument("--no-selection", action="store_true", help="statistical: skip select_by_backtest")
    parser.add_argument(
        "--work", type=Path, default=Path("/tmp/bench_report"), help="report, reconcile: input cache"
    )
    parser.add_argument("--strings", choices=("categorical", "object"), default="categorical")
    parser.add_argument("--no-plots", action="store_true", help="report: do not draw the plots")
    parser.add_argument("--out", type=Path, default=None, help="write the JSON results here")
    args = parser.parse_args(argv)
    for name, value in DEFAULTS[args.stage].items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    return args


def main(argv: list[str] | None = None) -> int:
    """Run one stage, print and write its figures."""
    args = parse_args(argv)
    seconds, _, results = timed(lambda: RUNNERS[args.stage](args))
    results = {"stage": args.stage, **results, "wall_s": seconds, "peak_rss_mib": peak_rss_mib()}
    for key, value in results.items():
        if not isinstance(value, list | dict | pd.DataFrame):
            print(f"{key}: {value}")
    write_json(args.out, "speed", command_line("bench.speed", argv), vars(args), results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
