"""Accuracy: the platform end to end on a dataset, beside peers fitted on the same series and history.

Datasets (``--dataset``):

* ``synthetic``: ``generate_source`` (``--skus`` x ``--warehouses`` x ``--days``, ``--seed``); origins are
  days before the last generated day (``--origins 60 30``); scored series: every SKU launched by the
  origin, in every warehouse; WRMSSE weights: net revenue over the last 28 days of history.
* ``m5``: the M5 files in ``--data`` (``sales_HOBBIES_2_CA_3_d1-d1969.csv``, ``calendar.csv``,
  ``sell_prices_HOBBIES_2_CA_3.csv``, or ``--sales/--calendar/--prices``); origins are day numbers d_N
  (``--origins 1913 1941``); all series scored; weights: dollar sales (units x the week's sell price).
* ``online-retail``: Online Retail II order lines (``--file``); origins are dates (``--origins
  2010-11-06``); scored: the ``--top`` series by units in the 90 days up to the origin; a missing
  platform forecast counts as 0; weights: net revenue.

Per origin the source is cut at the origin (no sale after it can reach the platform: synthetic
transactions and weather filtered, M5 imported with ``last_day``, Online Retail transactions filtered)
and the platform forecasts D+1..D+28:

* ``--platform dagster`` (the measured path): ``run_platform`` on a fresh home, as the CLI's ``run``:
  audit, raw_sales ingestion, features, tiers, training with the promotion gate, forecasts. A failed
  run stops the benchmark. The homes are kept under ``--work`` for ``bench.sweep``.
* ``--platform domain`` (the smoke path): per warehouse ``train_warehouse`` and ``forecast_warehouse`` on
  raw_sales built by the ingestion's domain function and tiers by ``assign_tiers``, gated by the
  registry's decision; no Dagster, no MLflow.

Peers (``bench.common.run_peers``): seasonal naive (7), MA28, Croston, SBA, TSB, statsforecast AutoETS,
mlforecast LightGBM, and the zero forecast as a reference, every forecast clipped at 0. A second reference,
``hindsight level``, forecasts each series its mean over the scored days: the best flat forecast in
hindsight, so the gap between it and the best peer is all a point forecast of a level can still gain. Scores
(``demand_platform.metrics``) over the 28 scored days: WMAPE, WRMSSE, unweighted mean RMSSE, bias, weekly
WMAPE and bias (4 weeks of totals), the platform's p90/p95 coverage, and a per-tier breakdown.

Usage (from the repository root):
    python -W ignore -m bench.accuracy --dataset synthetic --work /tmp/g_syn --out /tmp/g_syn/accuracy.json
    python -W ignore -m bench.accuracy --dataset m5 --data ../shared/data/m5 --work /tmp/g_m5 \\
        --origins 1913 1941 --out /tmp/g_m5/accuracy.json
    python -W ignore -m bench.accuracy --dataset online-retail --work /tmp/g_or --origins 2010-11-06 --top 200 \\
        --file ../shared/data/online_retail_ii/online_retail_ii_sheet2009-2010.parquet --out /tmp/g_or/accuracy.json
"""

import argparse
import datetime as dt
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from bench.common import (
    HORIZON,
    MIN_ETS_DAYS,
    PEERS,
    PLATFORM_P50,
    PLATFORM_POINT,
    ZERO,
    command_line,
    fmt,
    run_and_read,
    run_peers,
    source_inputs,
    train_and_forecast,
    write_json,
)
from demand_platform import columns as C
from demand_platform.metrics import bias, coverage, m5_weights, rmsse, wmape, wrmsse
from demand_platform.settings import PlatformSettings

#: ``--pooling``: the platform's forecasts reconciled across warehouses (what ``reconciled_forecasts`` ships).
RECONCILED_P50 = "platform reconciled p50"
RECONCILED_POINT = "platform reconciled point"
#: Each series' mean over the scored days, flat: known only after them, so not a method but the headroom of
#: the point forecasts. The mean minimises a series' squared error among flat forecasts, so no flat forecast
#: (MA28, Croston, SBA, TSB, SES, their combinations) can have a lower RMSSE on any series or a lower WRMSSE;
#: forecasts with a weekday profile or a trend can, by what those add.
HINDSIGHT = "hindsight level (reference)"
METHODS = (PLATFORM_P50, PLATFORM_POINT, RECONCILED_P50, RECONCILED_POINT, *PEERS, ZERO, HINDSIGHT)
WEEKS = HORIZON // 7
TOP_WINDOW_DAYS = 90
#: Metric key -> column label of the accuracy table.
METRICS = {
    "wmape": "WMAPE",
    "wrmsse": "WRMSSE",
    "rmsse": "mean RMSSE",
    "bias": "bias",
    "weekly_wmape": "weekly WMAPE",
    "weekly_bias": "weekly bias",
}
M5_FILES = ("sales_HOBBIES_2_CA_3_d1-d1969.csv", "calendar.csv", "sell_prices_HOBBIES_2_CA_3.csv")


@dataclass
class Dataset:
    """A dataset as (sku, warehouse) x day matrices, and how to write the platform's source of an origin.

    Attributes:
        name: ``synthetic``, ``m5`` or ``online-retail``.
        keys: (sku, warehouse_id) of each row.
        units: [n_series, n_days] net units per day, clipped at 0.
        weight_values: [n_series, n_days] what weights a series: revenue (``weight_prices`` False) or
            the sell price (True: weights are units x price).
        weight_prices: See ``weight_values``.
        dates: The days of the matrices.
        first_day: The first day of the platform's partitions.
        write_source: Writes the source cut at an origin into a directory.
        origin_end: An ``--origins`` token -> the number of history days (index of the first scored day).
        table_metrics: The metrics of its BENCHMARKS.md table.
        launch: Launch date of each row's SKU (synthetic: only launched SKUs are scored), or None.
        top: Score only the ``top`` series by units in the 90 days up to the origin (0: all).
        missing_as_zero: Count a missing platform forecast as 0 (else scored on the days it has).
        ets_min_days: Minimum days since the first sale for AutoETS (MA28 below; 0: AutoETS on all).
        info: What the import or generation reported.
    """

    name: str
    keys: pd.MultiIndex
    units: np.ndarray
    weight_values: np.ndarray
    weight_prices: bool
    dates: pd.DatetimeIndex
    first_day: dt.date
    write_source: Callable[[dt.date, Path], None]
    origin_end: Callable[[str], int]
    table_metrics: tuple[str, ...]
    launch: pd.DatetimeIndex | None = None
    top: int = 0
    missing_as_zero: bool = False
    ets_min_days: int = 0
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def ids(self) -> np.ndarray:
        """Series ids for the peers."""
        return np.array([f"{sku}@{wh}" for sku, wh in self.keys], dtype=object)


@dataclass
class Window:
    """One origin: its scored rows, every method's [n_rows, 28] forecasts, scores, seconds, notes."""

    origin: dt.date
    end: int
    rows: np.ndarray
    forecasts: dict[str, np.ndarray] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    scores: dict[str, dict[str, float]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    gate: list[dict[str, Any]] = field(default_factory=list)
    tiers: list[dict[str, Any]] = field(default_factory=list)
    models: list[dict[str, Any]] = field(default_factory=list)


# --------------------------------------------------------------------------------------------------
# datasets
# --------------------------------------------------------------------------------------------------


def _matrices(
    frame: pd.DataFrame, keys: pd.MultiIndex, dates: pd.DatetimeIndex, values: tuple[str, ...]
) -> list[np.ndarray]:
    """[n_keys, n_dates] sums of ``values`` columns from (sku, warehouse_id, day) rows."""
    row = keys.get_indexer(
        pd.MultiIndex.from_arrays([frame[C.SKU].astype(str), frame[C.WAREHOUSE_ID].astype(str)])
    )
    col = dates.get_indexer(pd.DatetimeIndex(pd.to_datetime(frame["day"])))
    keep = (row >= 0) & (col >= 0)
    out = []
    for value in values:
        matrix = np.zeros((len(keys), len(dates)))
        np.add.at(matrix, (row[keep], col[keep]), frame[value].to_numpy(dtype=np.float64)[keep])
        out.append(matrix)
    return out


def _daily_sums(transactions: Path) -> pd.DataFrame:
    """Net units and revenue per (sku, warehouse, day) of a transactions parquet file."""
    with duckdb.connect() as con:
        return con.execute(
            f"SELECT CAST({C.SKU} AS VARCHAR) AS {C.SKU}, CAST({C.WAREHOUSE_ID} AS VARCHAR) AS {C.WAREHOUSE_ID}, "
            f"CAST({C.TRANSACTION_DATE} AS DATE) AS day, sum({C.QUANTITY})::DOUBLE AS units, "
            f"coalesce(sum({C.REVENUE}), 0)::DOUBLE AS revenue FROM read_parquet($p) GROUP BY ALL",
            {"p": str(transactions)},
        ).df()


def _cut_copy(full: Path, out: Path, origin: dt.date, cut: dict[str, str]) -> None:
    """Copy a source directory's parquet tables into ``out``, those in ``cut`` (table -> date column)
    filtered to the rows dated on or before the origin."""
    out.mkdir(parents=True)
    for path in sorted(full.glob("*.parquet")):
        name = path.stem
        if name in cut:
            table = pq.read_table(path)
            keep = pc.less_equal(table[cut[name]].cast(pa.date32()), pa.scalar(origin, pa.date32()))
            pq.write_table(table.filter(keep), out / path.name)
        else:
            shutil.copy2(path, out / path.name)


def generated_keys(source: Path) -> tuple[pd.DataFrame, pd.MultiIndex]:
    """A generated source's products and its (sku, warehouse_id) series: every SKU in every warehouse."""
    products = pq.read_table(source / f"{C.PRODUCTS}.parquet").to_pandas()
    warehouses = sorted(pq.read_table(source / f"{C.WAREHOUSES}.parquet")[C.WAREHOUSE_ID].to_pylist())
    keys = pd.MultiIndex.from_product(
        [products[C.SKU].astype(str), warehouses], names=[C.SKU, C.WAREHOUSE_ID]
    )
    return products, keys


def synthetic(args: argparse.Namespace, work: Path) -> Dataset:
    """The platform's generated source."""
    from demand_platform.synthetic import GeneratorConfig, generate_source

    config = GeneratorConfig(n_skus=args.skus, n_warehouses=args.warehouses, days=args.days, seed=args.seed)
    full = work / "source_full"
    if full.exists():
        shutil.rmtree(full)
    summary = generate_source(full, config)
    print(f"generate_source: {summary.seconds:.1f} s; rows {summary.rows}", flush=True)
    products, keys = generated_keys(full)
    dates = pd.date_range(config.start, config.end, freq="D")
    units, revenue = _matrices(
        _daily_sums(full / f"{C.TRANSACTIONS}.parquet"), keys, dates, ("units", "revenue")
    )
    launch = pd.to_datetime(products.set_index(C.SKU)[C.LAUNCH_DATE]).reindex(keys.get_level_values(0))

    def origin_end(token: str) -> int:
        before = int(token)
        if before < HORIZON or before >= len(dates) - 1:
            raise SystemExit(
                f"--origins: {before} must be in [{HORIZON}, {len(dates) - 2}] days before the last"
            )
        return len(dates) - before

    return Dataset(
        name="synthetic",
        keys=keys,
        units=np.clip(units, 0.0, None),
        weight_values=np.clip(revenue, 0.0, None),
        weight_prices=False,
        dates=dates,
        first_day=config.start,
        write_source=lambda origin, out: _cut_copy(
            full, out, origin, {C.TRANSACTIONS: C.TRANSACTION_DATE, C.WEATHER: C.DATE}
        ),
        origin_end=origin_end,
        table_metrics=("wmape", "wrmsse", "rmsse"),
        launch=pd.DatetimeIndex(launch),
        ets_min_days=MIN_ETS_DAYS,
        info={
            "generator": {
                "skus": args.skus,
                "warehouses": args.warehouses,
                "days": args.days,
                "seed": args.seed,
            },
            "generate_seconds": summary.seconds,
        },
    )


def m5(args: argparse.Namespace, work: Path) -> Dataset:
    """The M5 sales, calendar and prices files (any subset of rows; one or more stores)."""
    from demand_platform.importers.m5 import import_m5, parse_m5_ids

    data = args.data.resolve()
    sales_csv = args.sales or data / M5_FILES[0]
    calendar_csv = args.calendar or data / M5_FILES[1]
    prices_csv = args.prices or data / M5_FILES[2]
    sales = pd.read_csv(sales_csv)
    ids = parse_m5_ids(sales)
    day_cols = [c for c in sales.columns if c.startswith("d_")]
    if [int(c[2:]) for c in day_cols] != list(range(1, len(day_cols) + 1)):
        raise ValueError(f"{sales_csv}: expected the day columns d_1..d_N in order")
    calendar = pd.read_csv(calendar_csv)
    dates = pd.DatetimeIndex(pd.to_datetime(calendar["date"]))[: len(day_cols)]
    weeks = calendar["wm_yr_wk"].to_numpy()[: len(day_cols)]
    prices = pd.read_csv(prices_csv)
    wide = prices.pivot_table(
        index=["store_id", "item_id"], columns="wm_yr_wk", values="sell_price", aggfunc="first"
    )
    week_pos = wide.columns.get_indexer(weeks)
    item_pos = wide.index.get_indexer(pd.MultiIndex.from_frame(ids[["store_id", "item_id"]]))
    table = np.full((len(ids), wide.shape[1] + 1), np.nan)
    table[item_pos >= 0, :-1] = wide.to_numpy()[item_pos[item_pos >= 0]]
    day_prices = table[:, np.where(week_pos >= 0, week_pos, wide.shape[1])]  # unpriced weeks: NaN column
    keys = pd.MultiIndex.from_arrays([ids["item_id"], ids["store_id"]], names=[C.SKU, C.WAREHOUSE_ID])

    def write_source(origin: dt.date, out: Path) -> None:
        last_day = int(dates.get_loc(pd.Timestamp(origin))) + 1
        summary = import_m5(sales_csv, calendar_csv, out, prices_csv=prices_csv, last_day=last_day)
        print(f"  import_m5: {summary}", flush=True)

    def origin_end(token: str) -> int:
        origin = int(token.removeprefix("d_"))
        if origin + HORIZON > len(day_cols):
            raise SystemExit(f"origin d_{origin}: the sales file ends at d_{len(day_cols)}")
        return origin

    return Dataset(
        name="m5",
        keys=keys,
        units=sales[day_cols].to_numpy(dtype=np.float64),
        weight_values=day_prices,
        weight_prices=True,
        dates=dates,
        first_day=dates[0].date(),
        write_source=write_source,
        origin_end=origin_end,
        table_metrics=("wmape", "wrmsse"),
        info={"sales": sales_csv, "series": len(keys)},
    )


def online_retail(args: argparse.Namespace, work: Path) -> Dataset:
    """Online Retail (II) order lines, imported once; the transactions are cut per origin."""
    from demand_platform.importers.online_retail import import_online_retail

    full = work / "source_full"
    if full.exists():
        shutil.rmtree(full)
    started = time.perf_counter()
    summary = import_online_retail(args.file.resolve(), full)
    print(f"import_online_retail: {time.perf_counter() - started:.1f} s; {summary.rows}", flush=True)
    sums = _daily_sums(full / f"{C.TRANSACTIONS}.parquet")
    dates = pd.date_range(sums["day"].min(), sums["day"].max(), freq="D")
    keys = pd.MultiIndex.from_frame(
        sums[[C.SKU, C.WAREHOUSE_ID]].drop_duplicates().sort_values([C.SKU, C.WAREHOUSE_ID])
    )
    units, revenue = _matrices(sums, keys, dates, ("units", "revenue"))

    def origin_end(token: str) -> int:
        origin = pd.Timestamp(dt.date.fromisoformat(token))
        if origin < dates[0] or origin + pd.Timedelta(days=HORIZON) > dates[-1]:
            raise SystemExit(f"origin {token}: the transactions span {dates[0].date()}..{dates[-1].date()}")
        return int(dates.get_loc(origin)) + 1

    return Dataset(
        name="online-retail",
        keys=keys,
        units=np.clip(units, 0.0, None),
        weight_values=np.clip(revenue, 0.0, None),
        weight_prices=False,
        dates=dates,
        first_day=dates[0].date(),
        write_source=lambda origin, out: _cut_copy(full, out, origin, {C.TRANSACTIONS: C.TRANSACTION_DATE}),
        origin_end=origin_end,
        table_metrics=("weekly_wmape", "weekly_bias", "wmape"),
        top=args.top,
        missing_as_zero=True,
        info={
            "file": args.file,
            "rows": summary.rows,
            "quarantined": summary.quarantined,
            "n_quarantined": summary.n_quarantined,
        },
    )


DATASETS: dict[str, Callable[[argparse.Namespace, Path], Dataset]] = {
    "synthetic": synthetic,
    "m5": m5,
    "online-retail": online_retail,
}
DEFAULT_ORIGINS = {"synthetic": ["60", "30"], "m5": ["1913", "1941"], "online-retail": ["2010-11-06"]}


# --------------------------------------------------------------------------------------------------
# the platform
# --------------------------------------------------------------------------------------------------


def platform_forecasts(
    data: Dataset, window: Window, work: Path, mode: str, history_days: int | None, config: Any = None
) -> pd.DataFrame | None:
    """The platform's forecasts of the window's origin on a source cut at it (None: a run failed)."""
    root = work / f"origin_{window.origin}"
    if root.exists():
        shutil.rmtree(root)
    source = root / "source"
    started = time.perf_counter()
    data.write_source(window.origin, source)
    window.seconds["cut source"] = time.perf_counter() - started
    first = data.first_day if history_days is None else window.origin - dt.timedelta(days=history_days - 1)
    if mode == "dagster":
        settings = PlatformSettings(
            home=root / "home", source=source, start_date=first, end_date=window.origin
        )
        run = run_and_read(settings, window.origin)
        window.seconds["platform"] = run.seconds
        window.gate = run.gate
        return None if run.failed or run.forecasts.empty else run.forecasts
    from demand_platform.forecasting import TrainConfig

    config = config or TrainConfig()
    frames = []
    seconds = 0.0
    started = time.perf_counter()
    for wh in sorted(set(data.keys.get_level_values(C.WAREHOUSE_ID))):
        inputs = source_inputs(source, first, window.origin, wh, config)
        result = train_and_forecast(inputs, window.origin, wh, config)
        frames.append(result.forecasts)
        seconds += result.seconds
        window.gate.append({"warehouse_id": wh, "promoted": result.promoted, "reason": result.reason})
    window.seconds["platform"] = time.perf_counter() - started
    window.seconds["train + forecast"] = seconds
    fc = pd.concat(frames, ignore_index=True)
    return fc.loc[fc[C.HORIZON].between(1, HORIZON)]


def platform_matrices(data: Dataset, window: Window, fc: pd.DataFrame) -> np.ndarray:
    """Fill the window's platform matrices from forecast rows; the tier of each scored row (-1: none)."""
    keys = data.keys[window.rows]
    row = keys.get_indexer(pd.MultiIndex.from_arrays([fc[C.SKU].astype(str), fc[C.WAREHOUSE_ID].astype(str)]))
    keep = row >= 0
    col = fc[C.HORIZON].to_numpy(dtype=np.int64)[keep] - 1
    for method, column in (
        (PLATFORM_P50, C.P50),
        (PLATFORM_POINT, C.FORECAST),
        ("p90", C.P90),
        ("p95", C.P95),
    ):
        matrix = np.full((len(keys), HORIZON), np.nan)
        matrix[row[keep], col] = fc[column].to_numpy(dtype=np.float64)[keep]
        if data.missing_as_zero:
            matrix = np.nan_to_num(matrix, nan=0.0)
        window.forecasts[method] = matrix
    missing = int((~np.isin(np.arange(len(keys)), row[keep])).sum())
    if missing:
        window.notes.append(f"platform: {missing} of {len(keys)} scored series without forecasts")
    per_series = fc[keep].drop_duplicates([C.SKU, C.WAREHOUSE_ID])
    window.models = (
        per_series.groupby([C.TIER, C.MODEL]).size().rename("series").reset_index().to_dict("records")
    )
    tier = np.full(len(keys), -1, dtype=np.int64)
    at = keys.get_indexer(
        pd.MultiIndex.from_arrays([per_series[C.SKU].astype(str), per_series[C.WAREHOUSE_ID].astype(str)])
    )
    tier[at] = per_series[C.TIER].to_numpy(dtype=np.int64)
    return tier


def reconciled_matrices(
    data: Dataset, window: Window, work: Path, history_days: int | None, fc: pd.DataFrame
) -> dict[str, Any]:
    """``--pooling``: the platform's forecasts reconciled across the warehouses as ``reconciled_forecasts`` does
    it (``pooling.reconcile_origin``), the weight picked on the platform's forecasts of the origin 30 days
    before against the sales since; fills the reconciled point and p50 matrices, returns the choice."""
    from demand_platform.forecasting import apply_overrides
    from demand_platform.forecasting.pooling import (
        SHARE_DAYS,
        WEIGHT_ORIGIN_LAG,
        PastForecasts,
        reconcile_origin,
        regional_campaign_rows,
    )
    from demand_platform.source import load_source_tables

    def shares(end: int) -> pd.DataFrame:
        units = data.units[:, max(0, end - SHARE_DAYS) : end].sum(axis=1)
        frame = pd.DataFrame(
            {
                C.SKU: data.keys.get_level_values(C.SKU).astype(str),
                C.WAREHOUSE_ID: data.keys.get_level_values(C.WAREHOUSE_ID).astype(str),
                "units": units,
            }
        )
        return frame.loc[frame["units"] > 0].reset_index(drop=True)

    past_end = window.end - WEIGHT_ORIGIN_LAG
    past_window = Window(origin=data.dates[past_end - 1].date(), end=past_end, rows=window.rows)
    fc_past = platform_forecasts(data, past_window, work, "domain", history_days)
    if fc_past is None:
        raise SystemExit(f"--pooling: the platform failed at {past_window.origin}")
    row = data.keys.get_indexer(
        pd.MultiIndex.from_arrays([fc_past[C.SKU].astype(str), fc_past[C.WAREHOUSE_ID].astype(str)])
    )
    col = (
        past_end - 1 + fc_past[C.HORIZON].to_numpy(dtype=np.int64)
    )  # the target day's column, before the origin
    actual = np.where(row >= 0, data.units[np.maximum(row, 0), col], 0.0)
    tables = load_source_tables(work / f"origin_{window.origin}" / "source")  # the source cut at the origin
    local = regional_campaign_rows(fc_past, tables.campaigns, tables.warehouses)
    past = PastForecasts(past_window.origin, fc_past, actual, shares(past_end), local)
    out, choice = reconcile_origin(
        apply_overrides(fc, None),
        shares(window.end),
        None,
        past,
        campaigns=tables.campaigns,
        warehouses=tables.warehouses,
    )
    print(f"  reconciled: {choice.reason}", flush=True)
    keys = data.keys[window.rows]
    at = keys.get_indexer(
        pd.MultiIndex.from_arrays([out[C.SKU].astype(str), out[C.WAREHOUSE_ID].astype(str)])
    )
    keep = at >= 0
    h = out[C.HORIZON].to_numpy(dtype=np.int64)[keep] - 1
    for method, column in ((RECONCILED_P50, C.P50), (RECONCILED_POINT, C.FORECAST)):
        matrix = (
            np.zeros((len(keys), HORIZON)) if data.missing_as_zero else np.full((len(keys), HORIZON), np.nan)
        )
        matrix[at[keep], h] = out[column].to_numpy(dtype=np.float64)[keep]
        window.forecasts[method] = matrix
    return {"weight": choice.weight, "past_origin": str(past_window.origin), "scores": choice.scores}


# --------------------------------------------------------------------------------------------------
# scoring
# --------------------------------------------------------------------------------------------------


def weekly(matrix: np.ndarray) -> np.ndarray:
    """[n, 28] daily -> [n, 4] weekly totals (weeks of 7 days from origin + 1)."""
    return matrix[:, : WEEKS * 7].reshape(matrix.shape[0], WEEKS, 7).sum(axis=2)


def method_scores(
    actual: np.ndarray, fc: np.ndarray, history: np.ndarray, weights: np.ndarray
) -> dict[str, float]:
    """Every metric of one method on some series."""
    per_series = rmsse(actual, fc, history)
    weekly_fc = weekly(np.nan_to_num(fc, nan=0.0))
    return {
        "wmape": wmape(actual, fc),
        "wrmsse": wrmsse(actual, fc, history, np.nan_to_num(weights)) if np.nansum(weights) > 0 else np.nan,
        "rmsse": float(np.nanmean(per_series)) if np.isfinite(per_series).any() else np.nan,
        "bias": bias(actual, fc),
        "weekly_wmape": wmape(weekly(actual), weekly_fc),
        "weekly_bias": bias(weekly(actual), weekly_fc),
        "min_forecast": float(np.nanmin(fc)) if np.isfinite(fc).any() else np.nan,
    }


def score_window(data: Dataset, window: Window, tier: np.ndarray | None) -> None:
    """Scores per method, the platform's coverage and the per-tier breakdown."""
    history = data.units[window.rows, : window.end]
    actual = data.units[window.rows, window.end : window.end + HORIZON]
    basis = data.weight_values[window.rows, : window.end]
    weights = (
        m5_weights(history, basis, last=28)
        if data.weight_prices
        else m5_weights(basis, np.ones(len(window.rows)), last=28)
    )
    methods = [m for m in METHODS if m in window.forecasts]
    for method in methods:
        window.scores[method] = method_scores(actual, window.forecasts[method], history, weights)
    if "p90" in window.forecasts:
        window.scores[PLATFORM_POINT]["coverage_p90"] = coverage(actual, window.forecasts["p90"])
        window.scores[PLATFORM_POINT]["coverage_p95"] = coverage(actual, window.forecasts["p95"])
    window.notes.append(
        f"{len(window.rows)} series; actual units {actual.sum():.0f}, zero share {float((actual == 0).mean()):.3f}"
    )
    if tier is None:
        return
    for t in sorted(set(tier.tolist())):
        mask = tier == t
        row: dict[str, Any] = {
            "tier": t,
            "series": int(mask.sum()),
            "units_share": float(actual[mask].sum() / actual.sum()) if actual.sum() else np.nan,
            "weight_share": float(np.nansum(weights[mask]) / np.nansum(weights))
            if np.nansum(weights)
            else np.nan,
        }
        for method in methods:
            scores = method_scores(actual[mask], window.forecasts[method][mask], history[mask], weights[mask])
            row[method] = {k: scores[k] for k in ("wmape", "wrmsse", "bias")}
        window.tiers.append(row)


def scored_rows(data: Dataset, end: int) -> np.ndarray:
    """The rows scored at an origin: launched by it (synthetic), the top sellers (Online Retail), or all."""
    rows = np.arange(len(data.keys))
    if data.launch is not None:
        rows = np.flatnonzero(data.launch <= data.dates[end - 1])
    if data.top:
        recent = data.units[rows, max(0, end - TOP_WINDOW_DAYS) : end].sum(axis=1)
        order = np.argsort(-recent, kind="stable")[: data.top]
        rows = rows[order[recent[order] > 0]]
    return rows


# --------------------------------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------------------------------


def add_dataset_options(parser: argparse.ArgumentParser) -> None:
    """The options that choose and shape a dataset (shared with ``bench.sweep``)."""
    parser.add_argument("--dataset", choices=list(DATASETS), required=True)
    parser.add_argument(
        "--work", type=Path, required=True, help="working directory (sources, platform homes)"
    )
    parser.add_argument("--origins", nargs="+", default=None, help="see the datasets above")
    parser.add_argument("--platform", choices=("dagster", "domain"), default="dagster")
    parser.add_argument(
        "--pooling",
        action="store_true",
        help="domain: also score the platform reconciled across warehouses (a platform run 30 days earlier "
        "picks the weight)",
    )
    parser.add_argument(
        "--history-days", type=int, default=None, help="partitioned history days (default: all)"
    )
    parser.add_argument("--peers", nargs="+", default=list(PEERS), choices=list(PEERS), help="peers to run")
    parser.add_argument("--out", type=Path, default=None, help="write the JSON results here")
    synth = parser.add_argument_group("synthetic")
    synth.add_argument("--skus", type=int, default=500)
    synth.add_argument("--warehouses", type=int, default=1)
    synth.add_argument("--days", type=int, default=500)
    synth.add_argument("--seed", type=int, default=42)
    m5_group = parser.add_argument_group("m5")
    m5_group.add_argument(
        "--data", type=Path, default=Path("../shared/data/m5"), help="directory of the M5 files"
    )
    m5_group.add_argument(
        "--sales", type=Path, default=None, help=f"sales CSV (default: --data/{M5_FILES[0]})"
    )
    m5_group.add_argument("--calendar", type=Path, default=None, help="calendar CSV")
    m5_group.add_argument("--prices", type=Path, default=None, help="sell prices CSV")
    retail = parser.add_argument_group("online-retail")
    retail.add_argument("--file", type=Path, default=None, help="Online Retail (II) order lines")
    retail.add_argument("--top", type=int, default=200, help="series scored (by units in the last 90 days)")


def finish_dataset_options(parser: argparse.ArgumentParser, args: argparse.Namespace) -> argparse.Namespace:
    """Check the dataset options and fill the default origins."""
    if args.dataset == "online-retail" and args.file is None:
        parser.error("--dataset online-retail needs --file")
    if args.pooling and args.platform != "domain":
        parser.error(
            "--pooling needs --platform domain (the Dagster path reconciles in reconciled_forecasts)"
        )
    args.origins = args.origins or DEFAULT_ORIGINS[args.dataset]
    return args


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_dataset_options(parser)
    return finish_dataset_options(parser, parser.parse_args(argv))


def window_result(window: Window) -> dict[str, Any]:
    """One origin's part of the JSON."""
    return {
        "origin": window.origin,
        "series": len(window.rows),
        "scores": window.scores,
        "seconds": window.seconds,
        "gate": window.gate,
        "models": window.models,
        "tiers": window.tiers,
        "notes": window.notes,
    }


def main(argv: list[str] | None = None) -> int:
    """Run the platform and the peers at every origin, score, print and write the JSON."""
    args = parse_args(argv)
    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    data = DATASETS[args.dataset](args, work)
    windows = []
    for token in args.origins:
        end = data.origin_end(token)
        window = Window(origin=data.dates[end - 1].date(), end=end, rows=scored_rows(data, end))
        print(f"\n=== {data.name} origin {window.origin} ({len(window.rows)} series) ===", flush=True)
        fc = platform_forecasts(data, window, work, args.platform, args.history_days)
        if fc is None:
            print("stopping: the platform run failed (see above)")
            return 1
        tier = platform_matrices(data, window, fc)
        pooling = reconciled_matrices(data, window, work, args.history_days, fc) if args.pooling else None
        ids = data.ids[window.rows]
        history = data.units[window.rows, :end]
        peers = run_peers(ids, history, data.dates[:end], HORIZON, data.ets_min_days, tuple(args.peers))
        window.forecasts.update(peers.forecasts)
        window.seconds.update(peers.seconds)
        window.notes += peers.notes
        actual = data.units[window.rows, end : end + HORIZON]
        window.forecasts[HINDSIGHT] = np.repeat(actual.mean(axis=1, keepdims=True), HORIZON, axis=1)
        score_window(data, window, tier)
        if pooling is not None:
            window.gate.append({"pooling": pooling})
        windows.append(window)
        for method in METHODS:
            if method in window.scores:
                s = window.scores[method]
                print(f"  {method:28s} " + "  ".join(f"{METRICS[m]} {fmt(s[m])}" for m in data.table_metrics))
    results = {
        "dataset": data.name,
        "platform": args.platform,
        "methods": [m for m in METHODS if m in windows[0].scores],
        "table_metrics": list(data.table_metrics),
        "info": data.info,
        "origins": [window_result(w) for w in windows],
    }
    params = {k: v for k, v in vars(args).items() if k != "work"}
    write_json(args.out, "accuracy", command_line("bench.accuracy", argv), params, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
