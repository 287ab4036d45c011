"""Real-data accuracy benchmark: the platform end to end on the M5 HOBBIES_2 / CA_3 subset, beside peers.

For each forecast origin (the M5 validation origin d_1913 and the evaluation origin d_1941, horizon 28):

1. ``import_m5`` writes a fresh source directory from the M5 files cut at the origin (``last_day``: no
   sale or price after it is read), then ``run_platform`` brings a fresh platform home up to date
   through the origin date, through Dagster, as the CLI's ``run`` does: source audit, raw_sales ingestion
   of every day (``--days`` limits the partitioned history), features, tiers, training with the promotion
   gate (a first model must beat seasonal naive on validation), forecasts D+1..D+30. Any failed run is
   printed with its error, and the benchmark stops.
2. The forecasts of that origin, horizons 1..28, are read from the home's DuckDB (``forecasts``).
3. Peers are fitted on the same 149 series, on the history d_1..d_origin only: seasonal naive (7), 28-day
   moving average, Croston, SBA and TSB (the repo's vectorised kernels, alpha 0.1), statsforecast
   ``AutoETS(season_length=7)`` and an mlforecast LightGBM (lags 7/14/28, rolling means, day of week and
   month, recursive). As in the M5 benchmarks, the days before a series' first sale are not part of its
   history (NaN for the kernels, dropped for statsforecast/mlforecast); every peer forecast is clipped at 0.
   A zero forecast is scored too, as a reference: on intermittent series WMAPE rewards the median (0).
4. Scores against the actual M5 sales of the 28 days after the origin: WMAPE over all series-days, and
   WRMSSE (``demand_platform.metrics``): RMSSE per series scaled by the mean squared one-step naive error of
   its history from the first sale, weighted by its dollar sales (units x that week's sell price) over the
   last 28 days of the history. Also bias and the platform's p90/p95 coverage, and a per-tier breakdown
   (tiers as the platform assigned them at the origin).

Usage:
    python bench/bench_m5.py --data ../shared/data/m5 --work /tmp/bench_m5 --windows 1913 1941 \\
        --out /tmp/bench_m5/results.md
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

import numpy as np
import pandas as pd
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

from demand_platform.importers.m5 import import_m5, parse_m5_ids
from demand_platform.metrics import bias, coverage, m5_weights, rmsse, wmape, wrmsse
from demand_platform.models import statistical as stat
from demand_platform.settings import PlatformSettings

SALES_FILE = "sales_HOBBIES_2_CA_3_d1-d1969.csv"
CALENDAR_FILE = "calendar.csv"
PRICES_FILE = "sell_prices_HOBBIES_2_CA_3.csv"
METHODS = (PLATFORM_P50, PLATFORM_POINT, *PEERS, ZERO)


@dataclass
class M5Data:
    """The M5 subset as matrices aligned on the sales rows."""

    items: np.ndarray  # [n_series] item ids (the platform's SKUs)
    units: np.ndarray  # [n_series, n_days] daily unit sales d_1..d_N
    prices: np.ndarray  # [n_series, n_days] sell price of each day's week (NaN when not priced)
    dates: pd.DatetimeIndex  # date of d_1..d_N
    sales_csv: Path
    calendar_csv: Path
    prices_csv: Path


@dataclass
class WindowResult:
    """Everything measured for one forecast origin."""

    origin: int
    forecasts: dict[str, np.ndarray] = field(default_factory=dict)  # method -> [n_series, h]
    seconds: dict[str, float] = field(default_factory=dict)
    scores: dict[str, dict[str, float]] = field(default_factory=dict)  # method -> metric -> value
    notes: list[str] = field(default_factory=list)
    tier_table: pd.DataFrame | None = None
    models_table: pd.DataFrame | None = None
    gate: pd.DataFrame | None = None
    tier: np.ndarray | None = None  # [n_series] platform tier at the origin (-1: no forecast)


def load_m5(data: Path) -> M5Data:
    """Read the sales, calendar and price files into aligned matrices."""
    sales_csv, calendar_csv, prices_csv = data / SALES_FILE, data / CALENDAR_FILE, data / PRICES_FILE
    sales = pd.read_csv(sales_csv)
    ids = parse_m5_ids(sales)
    day_cols = [c for c in sales.columns if c.startswith("d_")]
    numbers = [int(c[2:]) for c in day_cols]
    if numbers != list(range(1, len(numbers) + 1)):
        raise ValueError(f"{sales_csv}: expected the day columns d_1..d_N in order")
    calendar = pd.read_csv(calendar_csv)
    dates = pd.DatetimeIndex(pd.to_datetime(calendar["date"]))[: len(day_cols)]
    weeks = calendar["wm_yr_wk"].to_numpy()[: len(day_cols)]
    prices = pd.read_csv(prices_csv)
    wide = prices.pivot_table(index="item_id", columns="wm_yr_wk", values="sell_price", aggfunc="first")
    week_pos = wide.columns.get_indexer(weeks)
    item_pos = wide.index.get_indexer(ids["item_id"])
    table = np.full((len(ids), wide.shape[1] + 1), np.nan)
    table[item_pos >= 0, :-1] = wide.to_numpy()[item_pos[item_pos >= 0]]
    # Weeks without any price row point at the extra all-NaN column.
    day_prices = table[:, np.where(week_pos >= 0, week_pos, wide.shape[1])]
    return M5Data(
        items=ids["item_id"].to_numpy(dtype=object),
        units=sales[day_cols].to_numpy(dtype=np.float64),
        prices=day_prices,
        dates=dates,
        sales_csv=sales_csv,
        calendar_csv=calendar_csv,
        prices_csv=prices_csv,
    )


# --------------------------------------------------------------------------------------------------
# the platform
# --------------------------------------------------------------------------------------------------


def run_window_platform(
    data: M5Data, origin: int, work: Path, days: int | None, result: WindowResult
) -> bool:
    """Import the M5 source cut at the origin, run the platform, read its forecasts. False on failure."""
    root = work / f"origin_d{origin}"
    if root.exists():
        shutil.rmtree(root)
    source_dir, home = root / "source", root / "home"
    started = time.perf_counter()
    summary = import_m5(
        data.sales_csv, data.calendar_csv, source_dir, prices_csv=data.prices_csv, last_day=origin
    )
    result.seconds["import_m5"] = time.perf_counter() - started
    print(f"  import_m5: {result.seconds['import_m5']:.1f} s; {summary}", flush=True)

    origin_date = data.dates[origin - 1].date()
    first_date = data.dates[0].date() if days is None else origin_date - dt.timedelta(days=days - 1)
    settings = PlatformSettings(home=home, source=source_dir, start_date=first_date, end_date=origin_date)
    print(f"  run_platform: partitions {first_date} .. {origin_date} (through {origin_date})", flush=True)
    run = run_and_read(settings, origin_date, HORIZON)
    result.seconds["run_platform"] = run.seconds
    result.gate = run.gate
    fc = run.forecasts
    if run.failed or fc.empty:
        return False
    platform_matrices(data, fc, result)
    return True


def platform_matrices(data: M5Data, fc: pd.DataFrame, result: WindowResult) -> None:
    """Fill the platform's [series x horizon] matrices, tiers and models table from its forecast rows
    (horizons 1..HORIZON)."""
    row = pd.Index(data.items).get_indexer(fc["sku"])
    if (row < 0).any():
        raise ValueError(f"forecasts: unknown SKUs {sorted(set(fc['sku'][row < 0]))[:5]}")
    col = fc["horizon"].to_numpy(dtype=np.int64) - 1
    for method, column in (
        (PLATFORM_P50, "p50"),
        (PLATFORM_POINT, "forecast"),
        ("p90", "p90"),
        ("p95", "p95"),
    ):
        matrix = np.full((len(data.items), HORIZON), np.nan)
        matrix[row, col] = fc[column].to_numpy(dtype=np.float64)
        result.forecasts[method] = matrix
    missing = int(np.isnan(result.forecasts[PLATFORM_POINT]).any(axis=1).sum())
    if missing:
        result.notes.append(
            f"platform: {missing} of {len(data.items)} series without forecasts for all 28 days"
        )
    per_sku = fc.drop_duplicates("sku").set_index("sku")
    result.models_table = (
        per_sku.groupby(["tier", "model"])
        .size()
        .rename("series")
        .reset_index()
        .sort_values(["tier", "model"])
    )
    tier = np.full(len(data.items), -1, dtype=np.int64)
    known = pd.Index(data.items).get_indexer(per_sku.index)
    tier[known] = per_sku["tier"].to_numpy(dtype=np.int64)
    result.tier = tier


# --------------------------------------------------------------------------------------------------
# peers
# --------------------------------------------------------------------------------------------------


def run_peers(data: M5Data, origin: int, result: WindowResult) -> None:
    """Fit every peer on d_1..d_origin and forecast the 28 days after it."""
    history = trimmed(data.units[:, :origin])
    dates = data.dates[:origin]
    items = data.items
    peers: dict[str, Callable[[], np.ndarray]] = {
        "seasonal naive (7)": lambda: stat.seasonal_naive(history, HORIZON, season=7),
        "MA28": lambda: stat.moving_average(history, HORIZON, window=28),
        "Croston": lambda: stat.croston(history, HORIZON, alpha=0.1),
        "SBA": lambda: stat.croston_sba(history, HORIZON, alpha=0.1),
        "TSB": lambda: stat.tsb(history, HORIZON, alpha_d=0.1, alpha_p=0.1),
        "AutoETS": lambda: auto_ets(items, history, dates),
        "mlforecast LGBM": lambda: mlforecast_lgbm(items, history, dates),
        # Not a forecaster: WMAPE is minimised by the median, which is 0 on most of these series.
        ZERO: lambda: np.zeros((len(items), HORIZON)),
    }
    for name, fit in peers.items():
        started = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            forecast = fit()
        result.seconds[name] = time.perf_counter() - started
        result.forecasts[name] = forecast
        bad = int(np.isnan(forecast).any(axis=1).sum())
        if bad:
            result.notes.append(f"{name}: {bad} series with NaN forecasts (scored on the non-NaN days)")
        print(f"  {name}: {result.seconds[name]:.2f} s", flush=True)


# --------------------------------------------------------------------------------------------------
# scoring and output
# --------------------------------------------------------------------------------------------------
def score_window(data: M5Data, origin: int, result: WindowResult) -> None:
    """WMAPE, WRMSSE and bias per method; coverage; the per-tier breakdown."""
    history = data.units[:, :origin]
    actual = data.units[:, origin : origin + HORIZON]
    weights = m5_weights(history, data.prices[:, :origin], last=28)
    for method in METHODS:
        if method not in result.forecasts:
            continue
        fc = result.forecasts[method]
        result.scores[method] = {
            "wmape": wmape(actual, fc),
            "wrmsse": wrmsse(actual, fc, history, weights),
            "bias": bias(actual, fc),
        }
    if "p90" in result.forecasts:
        result.scores[PLATFORM_POINT]["coverage_p90"] = coverage(actual, result.forecasts["p90"])
        result.scores[PLATFORM_POINT]["coverage_p95"] = coverage(actual, result.forecasts["p95"])
    if result.tier is None:
        return
    tier = result.tier
    rows = []
    per_series = {m: rmsse(actual, result.forecasts[m], history) for m in METHODS if m in result.forecasts}
    for t in sorted(set(tier)):
        mask = tier == t
        row: dict[str, object] = {
            "tier": t,
            "series": int(mask.sum()),
            "units share": actual[mask].sum() / actual.sum(),
            "weight share": np.nansum(weights[mask]),
        }
        for method, scores in per_series.items():
            fc = result.forecasts[method]
            w = weights[mask]
            defined = ~np.isnan(scores[mask])
            row[f"{method} WMAPE"] = wmape(actual[mask], fc[mask])
            row[f"{method} bias"] = bias(actual[mask], fc[mask])
            row[f"{method} WRMSSE"] = (
                float((w[defined] * scores[mask][defined]).sum() / w[defined].sum())
                if w[defined].sum() > 0
                else np.nan
            )
        rows.append(row)
    result.tier_table = pd.DataFrame(rows)


def render(results: list[WindowResult], data: M5Data, command: str, machine_text: str) -> str:
    """The markdown report: accuracy table, timings, tiers, notes."""

    def window_name(origin: int) -> str:
        kind = {1913: "validation", 1941: "evaluation"}.get(origin, "window")
        return f"{kind} d_{origin + 1}-d_{origin + HORIZON}"

    lines = [
        f"## M5 HOBBIES_2 / CA_3 ({len(data.items)} series), horizon {HORIZON}",
        "",
        f"Command: `{command}`",
        "",
        f"Machine: {machine_text}",
        "",
    ]
    header = ["method"]
    for r in results:
        header += [f"WMAPE {window_name(r.origin)}", f"WRMSSE {window_name(r.origin)}"]
    lines += ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for method in METHODS:
        cells = [method]
        for r in results:
            s = r.scores.get(method, {})
            cells += [fmt(s.get("wmape", np.nan)), fmt(s.get("wrmsse", np.nan))]
        lines.append("| " + " | ".join(cells) + " |")

    lines += [
        "",
        "WMAPE = sum|f - a| / sum a over all series-days (above 1: more absolute error than the zero forecast); "
        "WRMSSE = RMSSE per series weighted by its dollar sales over the last 28 days of history.",
        "",
        "Bias (sum(f - a) / sum(a)) and the platform's quantile coverage:",
        "",
    ]
    header = ["method", *[f"bias {window_name(r.origin)}" for r in results]]
    lines += ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for method in METHODS:
        lines.append(
            "| "
            + " | ".join([method, *[fmt(r.scores.get(method, {}).get("bias", np.nan)) for r in results]])
            + " |"
        )
    for r in results:
        s = r.scores.get(PLATFORM_POINT, {})
        lines.append(
            f"\n{window_name(r.origin)}: p90 coverage {fmt(s.get('coverage_p90', np.nan))}, "
            f"p95 coverage {fmt(s.get('coverage_p95', np.nan))}; "
            f"actual units {data.units[:, r.origin : r.origin + HORIZON].sum():.0f}"
        )

    timing_names = ["import_m5", "run_platform", *PEERS]
    lines += ["", "Timings (wall seconds):", ""]
    header = ["window", *timing_names, "peers total"]
    lines += ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for r in results:
        cells = [window_name(r.origin), *[fmt(r.seconds.get(n, np.nan), 1) for n in timing_names]]
        cells.append(fmt(sum(r.seconds.get(n, 0.0) for n in PEERS), 1))
        lines.append("| " + " | ".join(cells) + " |")

    for r in results:
        lines += ["", f"### {window_name(r.origin)}"]
        if r.gate is not None and len(r.gate):
            for row in r.gate.to_dict("records"):
                lines.append(f"\nPromotion gate: {row['reason']}")
        if r.models_table is not None:
            lines += ["", "Platform models per tier (series):", "", r.models_table.to_markdown(index=False)]
        if r.tier_table is not None:
            cols = ["tier", "series", "units share", "weight share"]
            for metric in ("WMAPE", "WRMSSE", "bias"):
                shown = [c for c in r.tier_table.columns if c.endswith(f" {metric}")]
                table = r.tier_table.loc[:, cols + shown]
                table.columns = [c.removesuffix(f" {metric}") for c in table.columns]
                # Formatted here: tabulate would print the integer columns of a mixed frame as floats.
                table = table.astype(object)
                for c in table.columns[2:]:
                    table[c] = [fmt(v) for v in table[c]]
                lines += [
                    "",
                    f"{metric} per platform tier:",
                    "",
                    table.to_markdown(index=False, disable_numparse=True),
                ]
        lines += [f"\nNote: {n}" for n in r.notes]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--data", type=Path, default=Path("../shared/data/m5"), help="the M5 subset directory"
    )
    parser.add_argument(
        "--work", type=Path, required=True, help="working directory (sources, platform homes)"
    )
    parser.add_argument("--windows", type=int, nargs="+", default=[1913, 1941], help="forecast origins d_N")
    parser.add_argument("--days", type=int, default=None, help="partitioned history days (default: from d_1)")
    parser.add_argument("--out", type=Path, default=None, help="also write the markdown report here")
    args = parser.parse_args(argv)
    command = "python " + " ".join([sys.argv[0], *(argv if argv is not None else sys.argv[1:])])
    machine_start = machine()

    data = load_m5(args.data.resolve())
    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    results = []
    for origin in args.windows:
        if origin + HORIZON > data.units.shape[1]:
            raise SystemExit(f"origin d_{origin}: the sales file ends at d_{data.units.shape[1]}")
        print(f"\n=== origin d_{origin} ({data.dates[origin - 1].date()}) ===", flush=True)
        result = WindowResult(origin)
        if not run_window_platform(data, origin, work, args.days, result):
            print("stopping: the platform run failed (see above)")
            return 1
        run_peers(data, origin, result)
        score_window(data, origin, result)
        results.append(result)

    text = render(
        results,
        data,
        command,
        machine_start + "; load average at end {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()),
    )
    print("\n" + text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
        print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
