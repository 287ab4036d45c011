"""Synthetic-data accuracy benchmark: the platform end to end on the default synthetic source, beside peers.

The M5 benchmark (``bench_m5.py``) on the platform's own generated data. Steps:

1. ``generate_source`` writes ``<work>/source_full`` (``--skus`` x ``--warehouses`` x ``--days``, ``--seed``).
   Actuals and history are read from it: net units (returns included) per (sku, warehouse) x day, clipped
   at 0 as everywhere in the platform, and net revenue the same way.
2. For each origin (``--origins``: days before the last generated day; 60 and 30 by default, so that the
   28 scored days after each origin exist in the data) a fresh source ``<work>/origin_<date>/source`` is
   written with the transactions and weather dated on or before the origin only; products (with planned
   launch dates), warehouses and the marketing campaigns (planned ahead by design, the platform's
   promotion features read them over the horizon) are copied whole. ``run_platform`` then brings a fresh
   home up to date through the origin, through Dagster, as the CLI's ``run`` does: source audit,
   raw_sales ingestion of every day from the first generated day, features, tiers, training with the
   promotion gate, forecasts D+1..D+30. Any failed run is printed with its error and the benchmark stops.

   Leakage: this relies on the cut source, so no sale after the origin can reach the platform whatever
   an asset reads. Reading the code (``assets/ingestion.py``, ``demand_platform/ingestion.py``,
   ``assets/orchestration.py``) also shows running ``through`` the origin on the full source would be
   leakage-free for sales: raw_sales reads only the transactions of its partitions' dates (the duplicate
   probe scans the whole file, but only for ids of the slice), and ``run_platform`` materializes
   partitions up to ``through`` only; but the audit and the features read whole small tables (weather is
   filtered to dates <= origin inside the features), so the cut is the simpler guarantee.
3. The forecasts of that origin, horizons 1..28, are read from the home's DuckDB (``forecasts``) into
   [series x horizon] matrices of p50, the point forecast, p90 and p95, one series per (sku, warehouse).
   Scored series: every SKU launched on or before the origin, in every warehouse.
4. Peers are fitted on the same series and the same history (the generated days up to the origin):
   seasonal naive (7), 28-day moving average, Croston, SBA and TSB (the repo's vectorised kernels,
   alpha 0.1), statsforecast ``AutoETS(season_length=7)`` and an mlforecast LightGBM (lags 7/14/28,
   rolling means, day of week and month, recursive), all from ``peers.py`` as in the M5 benchmark. Days
   before a series' first sale are not history; statsforecast's ETS refuses tiny series, so the few
   series with fewer than 28 days since their first sale get MA28 in the AutoETS row (a note says how
   many). Every peer forecast is clipped at 0. Peers see neither campaigns nor weather. A zero forecast
   is scored too, as a reference.
5. Scores against the generated actuals of the 28 days after the origin (``demand_platform.metrics``):
   WMAPE over all series-days; WRMSSE, the RMSSE per series weighted by its net revenue over the last 28
   days of history (``m5_weights`` on the revenue matrix); the unweighted mean RMSSE; bias; the
   platform's p90/p95 coverage; and a per-tier breakdown (tiers as the platform assigned them).

Usage:
    python bench/bench_synthetic.py --work /tmp/bench_synth --out /tmp/bench_synth/results.md
    python bench/bench_synthetic.py --work /tmp/bench_synth_2k --skus 2000 --out /tmp/bench_synth_2k/results.md
"""

import argparse
import datetime as dt
import os
import shutil
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from peers import (
    HORIZON,
    PEERS,
    PLATFORM_P50,
    PLATFORM_POINT,
    ZERO,
    auto_ets,
    fmt,
    machine,
    mlforecast_lgbm,
    run_and_read,
    trimmed,
)

from demand_platform import columns as C
from demand_platform.metrics import bias, coverage, m5_weights, rmsse, wmape, wrmsse
from demand_platform.models import statistical as stat
from demand_platform.settings import PlatformSettings
from demand_platform.synthetic import GeneratorConfig, generate_source

METHODS = (PLATFORM_P50, PLATFORM_POINT, *PEERS, ZERO)
SCORES = (("wmape", "WMAPE"), ("wrmsse", "WRMSSE"), ("rmsse", "mean RMSSE"), ("bias", "bias"))
# statsforecast's ETS raises "tiny datasets" on very short series; shorter ones get MA28 instead.
MIN_ETS_DAYS = 28
# Tables copied whole into an origin's source; transactions and weather are cut at the origin.
COPIED = (C.PRODUCTS, C.WAREHOUSES, C.MARKETING_CAMPAIGNS)
CUT = ((C.TRANSACTIONS, C.TRANSACTION_DATE), (C.WEATHER, C.DATE))


@dataclass
class SynthData:
    """The generated source as matrices, one row per (sku, warehouse) series."""

    source: Path
    keys: pd.MultiIndex  # (sku, warehouse_id) of each row
    ids: np.ndarray  # [n_series] "sku@warehouse" (the peers' unique_id)
    launch: pd.DatetimeIndex  # launch date of each row's SKU
    units: np.ndarray  # [n_series, n_days] net units, clipped at 0
    revenue: np.ndarray  # [n_series, n_days] net revenue, clipped at 0
    dates: pd.DatetimeIndex  # the generated days


@dataclass
class WindowResult:
    """Everything measured for one forecast origin."""

    origin: dt.date
    end: int  # index of the first day after the origin in SynthData.dates
    rows: np.ndarray  # rows of SynthData scored at this origin (SKU launched by the origin)
    forecasts: dict[str, np.ndarray] = field(default_factory=dict)  # method -> [n_rows, h]
    seconds: dict[str, float] = field(default_factory=dict)
    scores: dict[str, dict[str, float]] = field(default_factory=dict)  # method -> metric -> value
    notes: list[str] = field(default_factory=list)
    tier: np.ndarray | None = None  # [n_rows] platform tier at the origin (-1: no forecast)
    tier_table: pd.DataFrame | None = None
    models_table: pd.DataFrame | None = None
    gate: pd.DataFrame | None = None


# --------------------------------------------------------------------------------------------------
# data
# --------------------------------------------------------------------------------------------------


def generate(config: GeneratorConfig, work: Path) -> tuple[Path, float]:
    """Generate the full source under ``work``; its directory and the seconds it took."""
    source = work / "source_full"
    if source.exists():
        shutil.rmtree(source)
    summary = generate_source(source, config)
    print(f"generate_source: {summary.seconds:.1f} s; rows {summary.rows}", flush=True)
    return source, summary.seconds


def daily_sums(source: Path) -> pd.DataFrame:
    """Net units and revenue per (sku, warehouse, day) of the source's transactions."""
    path = source / f"{C.TRANSACTIONS}.parquet"
    return (
        duckdb.connect()
        .execute(
            f"SELECT {C.SKU}, {C.WAREHOUSE_ID}, {C.TRANSACTION_DATE} AS day, "
            f"sum({C.QUANTITY})::DOUBLE AS units, sum({C.REVENUE}) AS revenue "
            "FROM read_parquet($p) GROUP BY ALL",
            {"p": str(path)},
        )
        .df()
    )


def load_data(source: Path, config: GeneratorConfig) -> SynthData:
    """Read the generated source into (sku, warehouse) x day matrices."""
    products = pq.read_table(source / f"{C.PRODUCTS}.parquet").to_pandas()
    warehouses = sorted(pq.read_table(source / f"{C.WAREHOUSES}.parquet")[C.WAREHOUSE_ID].to_pylist())
    keys = pd.MultiIndex.from_product(
        [products[C.SKU].astype(str), warehouses], names=[C.SKU, C.WAREHOUSE_ID]
    )
    launch = pd.to_datetime(products.set_index(C.SKU)[C.LAUNCH_DATE]).reindex(keys.get_level_values(0))
    dates = pd.date_range(config.start, config.end, freq="D")
    sums = daily_sums(source)
    row = keys.get_indexer(pd.MultiIndex.from_arrays([sums[C.SKU], sums[C.WAREHOUSE_ID]]))
    col = dates.get_indexer(pd.DatetimeIndex(sums["day"]))
    if (row < 0).any() or (col < 0).any():
        raise ValueError("transactions outside the generated sku x warehouse x day grid")
    units, revenue = np.zeros((len(keys), len(dates))), np.zeros((len(keys), len(dates)))
    units[row, col] = sums["units"].to_numpy()
    revenue[row, col] = sums["revenue"].to_numpy()
    ids = np.array([f"{sku}@{wh}" for sku, wh in keys], dtype=object)
    return SynthData(
        source=source,
        keys=keys,
        ids=ids,
        launch=pd.DatetimeIndex(launch),
        units=np.clip(units, 0.0, None),
        revenue=np.clip(revenue, 0.0, None),
        dates=dates,
    )


def cut_source(full: Path, out: Path, origin: dt.date) -> dict[str, int]:
    """Write ``out`` with the transactions and weather of ``full`` dated on or before the origin."""
    out.mkdir(parents=True)
    for name in COPIED:
        shutil.copy2(full / f"{name}.parquet", out / f"{name}.parquet")
    kept = {}
    for name, column in CUT:
        table = pq.read_table(full / f"{name}.parquet")
        keep = pc.less_equal(table[column], pa.scalar(origin, pa.date32()))
        cut = table.filter(keep)
        pq.write_table(cut, out / f"{name}.parquet")
        kept[name] = cut.num_rows
    return kept


# --------------------------------------------------------------------------------------------------
# the platform
# --------------------------------------------------------------------------------------------------


def run_window_platform(data: SynthData, work: Path, result: WindowResult) -> bool:
    """Cut the source at the origin, run the platform, read its forecasts. False on failure."""
    root = work / f"origin_{result.origin}"
    if root.exists():
        shutil.rmtree(root)
    source, home = root / "source", root / "home"
    started = time.perf_counter()
    kept = cut_source(data.source, source, result.origin)
    result.seconds["cut source"] = time.perf_counter() - started
    print(f"  cut source: rows kept {kept} ({result.seconds['cut source']:.1f} s)", flush=True)

    first = data.dates[0].date()
    settings = PlatformSettings(home=home, source=source, start_date=first, end_date=result.origin)
    print(f"  run_platform: partitions {first} .. {result.origin}", flush=True)
    run = run_and_read(settings, result.origin, HORIZON)
    result.seconds["run_platform"] = run.seconds
    result.gate = run.gate
    fc = run.forecasts
    if run.failed or fc.empty:
        return False
    platform_matrices(data, fc, result)
    return True


def platform_matrices(data: SynthData, fc: pd.DataFrame, result: WindowResult) -> None:
    """Fill the platform's [series x horizon] matrices, tiers and models table from its forecast rows."""
    keys = data.keys[result.rows]
    row = series_rows(keys, fc)
    extra = fc.loc[row < 0, ["sku", "warehouse_id"]].drop_duplicates()
    if len(extra):
        result.notes.append(
            f"platform: {len(extra)} forecast series not scored (SKU not launched by the origin)"
        )
    keep = row >= 0
    col = fc["horizon"].to_numpy(dtype=np.int64)[keep] - 1
    for method, column in (
        (PLATFORM_P50, "p50"),
        (PLATFORM_POINT, "forecast"),
        ("p90", "p90"),
        ("p95", "p95"),
    ):
        matrix = np.full((len(keys), HORIZON), np.nan)
        matrix[row[keep], col] = fc[column].to_numpy(dtype=np.float64)[keep]
        result.forecasts[method] = matrix
    missing = int(np.isnan(result.forecasts[PLATFORM_POINT]).any(axis=1).sum())
    if missing:
        result.notes.append(
            f"platform: {missing} of {len(keys)} series without forecasts for all {HORIZON} days "
            "(scored on the days it has)"
        )
    per_series = fc[keep].drop_duplicates(["sku", "warehouse_id"])
    result.models_table = (
        per_series.groupby(["tier", "model"])
        .size()
        .rename("series")
        .reset_index()
        .sort_values(["tier", "model"])
    )
    tier = np.full(len(keys), -1, dtype=np.int64)
    tier[series_rows(keys, per_series)] = per_series["tier"].to_numpy(dtype=np.int64)
    result.tier = tier


def series_rows(keys: pd.MultiIndex, frame: pd.DataFrame) -> np.ndarray:
    """Positions in ``keys`` of the (sku, warehouse_id) pairs of a frame's rows (-1: unknown)."""
    pairs = pd.MultiIndex.from_arrays([frame["sku"].astype(str), frame["warehouse_id"].astype(str)])
    return np.asarray(keys.get_indexer(pairs))


# --------------------------------------------------------------------------------------------------
# peers
# --------------------------------------------------------------------------------------------------


def run_peers(data: SynthData, result: WindowResult) -> None:
    """Fit every peer on the scored series' history up to the origin and forecast the 28 days after it."""
    history = trimmed(data.units[result.rows, : result.end])
    dates = data.dates[: result.end]
    ids = data.ids[result.rows]
    peers: dict[str, Callable[[], np.ndarray]] = {
        "seasonal naive (7)": lambda: stat.seasonal_naive(history, HORIZON, season=7),
        "MA28": lambda: stat.moving_average(history, HORIZON, window=28),
        "Croston": lambda: stat.croston(history, HORIZON, alpha=0.1),
        "SBA": lambda: stat.croston_sba(history, HORIZON, alpha=0.1),
        "TSB": lambda: stat.tsb(history, HORIZON, alpha_d=0.1, alpha_p=0.1),
        "AutoETS": lambda: auto_ets_or_ma(ids, history, dates, result.notes),
        "mlforecast LGBM": lambda: mlforecast_lgbm(ids, history, dates),
        # Not a forecaster: a reference for WMAPE, which the median (0 on intermittent series) minimises.
        ZERO: lambda: np.zeros((len(ids), HORIZON)),
    }
    for name, fit in peers.items():
        started = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            forecast = np.clip(fit(), 0.0, None)
        result.seconds[name] = time.perf_counter() - started
        result.forecasts[name] = forecast
        bad = int(np.isnan(forecast).any(axis=1).sum())
        if bad:
            result.notes.append(f"{name}: {bad} series with NaN forecasts (scored on the non-NaN days)")
        print(f"  {name}: {result.seconds[name]:.2f} s", flush=True)


def auto_ets_or_ma(
    ids: np.ndarray, history: np.ndarray, dates: pd.DatetimeIndex, notes: list[str]
) -> np.ndarray:
    """AutoETS on the series with at least ``MIN_ETS_DAYS`` days since their first sale, MA28 on the others.

    statsforecast's ETS refuses tiny series (``NotImplementedError: tiny datasets``); recently launched
    SKUs have only a few days of history at the origin.
    """
    long_enough = (~np.isnan(history)).sum(axis=1) >= MIN_ETS_DAYS
    out = stat.moving_average(history, HORIZON, window=28)
    if long_enough.any():
        out[long_enough] = auto_ets(ids[long_enough], history[long_enough], dates)
    if not long_enough.all():
        notes.append(
            f"AutoETS: {int((~long_enough).sum())} series with fewer than {MIN_ETS_DAYS} days since their "
            "first sale are forecast by MA28 (statsforecast's ETS refuses tiny series)"
        )
    return out


# --------------------------------------------------------------------------------------------------
# scoring
# --------------------------------------------------------------------------------------------------


def method_scores(
    actual: np.ndarray, fc: np.ndarray, history: np.ndarray, weights: np.ndarray
) -> dict[str, float]:
    """WMAPE, WRMSSE, unweighted mean RMSSE and bias of one method on some series."""
    per_series = rmsse(actual, fc, history)
    return {
        "wmape": wmape(actual, fc),
        "wrmsse": wrmsse(actual, fc, history, np.nan_to_num(weights)) if np.nansum(weights) > 0 else np.nan,
        "rmsse": float(np.nanmean(per_series)) if np.isfinite(per_series).any() else np.nan,
        "bias": bias(actual, fc),
    }


def score_window(data: SynthData, result: WindowResult) -> None:
    """Scores per method, the platform's coverage and the per-tier breakdown."""
    history = data.units[result.rows, : result.end]
    actual = data.units[result.rows, result.end : result.end + HORIZON]
    revenue = data.revenue[result.rows, : result.end]
    weights = m5_weights(revenue, np.ones(len(result.rows)), last=28)
    methods = [m for m in METHODS if m in result.forecasts]
    for method in methods:
        result.scores[method] = method_scores(actual, result.forecasts[method], history, weights)
    if "p90" in result.forecasts:
        result.scores[PLATFORM_POINT]["coverage_p90"] = coverage(actual, result.forecasts["p90"])
        result.scores[PLATFORM_POINT]["coverage_p95"] = coverage(actual, result.forecasts["p95"])
    if result.tier is None:
        return
    rows = []
    for t in sorted(set(result.tier.tolist())):
        mask = result.tier == t
        row: dict[str, object] = {
            "tier": t,
            "series": int(mask.sum()),
            "units share": actual[mask].sum() / actual.sum(),
            "weight share": float(np.nansum(weights[mask])),
        }
        for method in methods:
            scores = method_scores(actual[mask], result.forecasts[method][mask], history[mask], weights[mask])
            row.update({f"{method} {label}": scores[key] for key, label in SCORES})
        rows.append(row)
    result.tier_table = pd.DataFrame(rows)


# --------------------------------------------------------------------------------------------------
# output
# --------------------------------------------------------------------------------------------------


def markdown_table(header: list[str], rows: list[list[str]]) -> list[str]:
    """Lines of a markdown table."""
    return ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)] + [
        "| " + " | ".join(cells) + " |" for cells in rows
    ]


def window_name(result: WindowResult) -> str:
    """The origin and its scored days, for table headers."""
    first = result.origin + dt.timedelta(days=1)
    return f"origin {result.origin} ({first:%m-%d}..{result.origin + dt.timedelta(days=HORIZON):%m-%d})"


def accuracy_lines(results: list[WindowResult]) -> list[str]:
    """The method x (metric, origin) table."""
    header = ["method"] + [f"{label} {r.origin}" for r in results for _, label in SCORES]
    rows = []
    for method in METHODS:
        cells = [method]
        for r in results:
            s = r.scores.get(method, {})
            cells += [fmt(s.get(key, np.nan)) for key, _ in SCORES]
        rows.append(cells)
    return markdown_table(header, rows)


def timing_lines(results: list[WindowResult], generate_seconds: float) -> list[str]:
    """Wall seconds per step and window."""
    names = ["cut source", "run_platform", *PEERS]
    rows = []
    for r in results:
        cells = [str(r.origin), *[fmt(r.seconds.get(n, np.nan), 1) for n in names]]
        cells.append(fmt(sum(r.seconds.get(n, 0.0) for n in PEERS), 1))
        rows.append(cells)
    lines = [f"Timings (wall seconds; generate_source {generate_seconds:.1f} s once):", ""]
    return lines + markdown_table(["origin", *names, "peers total"], rows)


def tier_lines(result: WindowResult) -> list[str]:
    """Per-tier tables of one window, one per metric."""
    if result.tier_table is None:
        return []
    lines: list[str] = []
    cols = ["tier", "series", "units share", "weight share"]
    for _, label in SCORES:
        shown = [c for c in result.tier_table.columns if c.endswith(f" {label}")]
        table = result.tier_table.loc[:, cols + shown]
        table.columns = [c.removesuffix(f" {label}") for c in table.columns]
        # Formatted here: tabulate would print the integer columns of a mixed frame as floats.
        table = table.astype(object)
        for c in table.columns[2:]:
            table[c] = [fmt(float(v)) for v in table[c]]
        lines += ["", f"{label} per platform tier (-1: no platform forecast):", ""]
        lines.append(table.to_markdown(index=False, disable_numparse=True))
    return lines


def window_lines(result: WindowResult) -> list[str]:
    """The detail section of one window: gate, models, tiers, notes."""
    lines = ["", f"### {window_name(result)}"]
    if result.gate is not None:
        lines += [
            f"\nPromotion gate {row['warehouse_id']}: {row['reason']}"
            for row in result.gate.to_dict("records")
        ]
    if result.models_table is not None:
        lines += ["", "Platform models per tier (series):", "", result.models_table.to_markdown(index=False)]
    lines += tier_lines(result)
    return lines + [f"\nNote: {n}" for n in result.notes]


def render(
    results: list[WindowResult], data: SynthData, config: GeneratorConfig, command: str, machine_text: str
) -> str:
    """The markdown report: accuracy table, bias and coverage, timings, tiers, notes."""
    lines = [
        f"## Synthetic source: {config.n_skus} SKUs x {config.n_warehouses} warehouse(s) x {config.days} days "
        f"(seed {config.seed}, {config.start}..{config.end}), horizon {HORIZON}",
        "",
        f"Command: `{command}`",
        "",
        f"Machine: {machine_text}",
        "",
        *accuracy_lines(results),
        "",
        "WMAPE = sum|f - a| / sum a over all series-days; WRMSSE = RMSSE per series weighted by its net revenue "
        "over the last 28 days of history; mean RMSSE = unweighted mean over the series with a defined RMSSE; "
        "bias = sum(f - a) / sum a. Series: (sku, warehouse) pairs whose SKU launched by the origin.",
    ]
    for r in results:
        s = r.scores.get(PLATFORM_POINT, {})
        actual = data.units[r.rows, r.end : r.end + HORIZON]
        lines.append(
            f"\n{window_name(r)}: {len(r.rows)} series; platform p90 coverage {fmt(s.get('coverage_p90', np.nan))}, "
            f"p95 coverage {fmt(s.get('coverage_p95', np.nan))}; actual units {actual.sum():.0f}, "
            f"zero share {float((actual == 0).mean()):.3f}"
        )
    lines += ["", *timing_lines(results, results[0].seconds.get("generate_source", np.nan))]
    for r in results:
        lines += window_lines(r)
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--work", type=Path, required=True, help="working directory (sources, platform homes)"
    )
    parser.add_argument("--skus", type=int, default=500, help="generated SKUs")
    parser.add_argument("--warehouses", type=int, default=1, help="generated warehouses")
    parser.add_argument("--days", type=int, default=500, help="generated days")
    parser.add_argument("--seed", type=int, default=42, help="generator seed")
    parser.add_argument(
        "--origins",
        type=int,
        nargs="+",
        default=[60, 30],
        help=f"forecast origins, in days before the last generated day (each >= {HORIZON})",
    )
    parser.add_argument("--out", type=Path, default=None, help="also write the markdown report here")
    return parser.parse_args(argv)


def make_window(data: SynthData, days_before_last: int) -> WindowResult:
    """The window of an origin ``days_before_last`` days before the last generated day."""
    if days_before_last < HORIZON or days_before_last >= len(data.dates) - 1:
        raise SystemExit(f"--origins: {days_before_last} must be in [{HORIZON}, {len(data.dates) - 2}]")
    end = len(data.dates) - days_before_last
    origin = data.dates[end - 1]
    rows = np.flatnonzero(data.launch <= origin)
    return WindowResult(origin=origin.date(), end=end, rows=rows)


def main(argv: list[str] | None = None) -> int:
    """Generate, run the platform and the peers per origin, print (and write) the report."""
    args = parse_args(argv)
    command = "python " + " ".join([sys.argv[0], *(argv if argv is not None else sys.argv[1:])])
    machine_start = machine()
    config = GeneratorConfig(n_skus=args.skus, n_warehouses=args.warehouses, days=args.days, seed=args.seed)
    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    source, generate_seconds = generate(config, work)
    data = load_data(source, config)
    results = []
    for days_before_last in args.origins:
        result = make_window(data, days_before_last)
        result.seconds["generate_source"] = generate_seconds
        print(f"\n=== origin {result.origin} ({len(result.rows)} series) ===", flush=True)
        if not run_window_platform(data, work, result):
            print("stopping: the platform run failed (see above)")
            return 1
        run_peers(data, result)
        score_window(data, result)
        results.append(result)

    machine_text = machine_start + "; load average at end {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())
    text = render(results, data, config, command, machine_text)
    print("\n" + text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
        print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
