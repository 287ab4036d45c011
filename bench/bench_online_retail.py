"""Real-data accuracy benchmark: the platform end to end on UCI Online Retail II, beside peers.

1. ``import_online_retail`` writes ``<work>/source_full`` from the order lines (quarantine counts by
   reason are printed). To avoid leakage the forecasting source ``<work>/source_cut`` holds the same
   products and warehouses but only the transactions dated on or before the origin.
2. ``run_platform`` brings a fresh home (``<work>/home``) up to date through the origin, through Dagster,
   as the CLI's ``run`` does: ingestion of every day from the first transaction, features, tiers,
   training with the promotion gate, forecasts D+1..D+30. Any failed run is printed and the benchmark stops.
3. The platform's forecasts of the origin (horizons 1..28) are read from ``forecasts`` in the home's DuckDB.
   Actuals come from the FULL import: net units (returns included) per sku x warehouse x day, clipped at 0,
   for the 28 days after the origin.
4. The ``--top`` sku x warehouse series with the most units in the 90 days up to the origin are scored.
   Peers are fitted on their daily history up to the origin (days before a series' first sale are not
   history): seasonal naive (7), MA28, Croston, SBA, TSB (the repo's vectorised kernels, alpha 0.1),
   statsforecast ``AutoETS(season_length=7)`` and an mlforecast LightGBM (lags 7/14/28, rolling means,
   day of week and month, recursive). Every forecast is clipped at 0; a missing forecast counts as 0.
5. Scores: WMAPE and bias over series-weeks (4 weeks of 7 days from origin + 1), and daily WMAPE.

Usage:
    python bench/bench_online_retail.py --file ../shared/data/online_retail_ii/online_retail_ii_sheet2009-2010.parquet \\
        --work /tmp/bench_or --origin 2010-11-06 --top 200 --out /tmp/bench_or/results.md
"""

import argparse
import datetime as dt
import shutil
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
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
from demand_platform.importers import ImportSummary
from demand_platform.importers.online_retail import import_online_retail
from demand_platform.metrics import bias, wmape
from demand_platform.models import statistical as stat
from demand_platform.settings import PlatformSettings

WEEKS = HORIZON // 7
TOP_WINDOW_DAYS = 90
METHODS = (PLATFORM_POINT, PLATFORM_P50, *PEERS, ZERO)


# --------------------------------------------------------------------------------------------------
# data
# --------------------------------------------------------------------------------------------------
def build_sources(
    file: Path, work: Path, origin: dt.date, seconds: dict[str, float]
) -> tuple[pd.DataFrame, ImportSummary]:
    """Import the full file and write the source cut at the origin; the full transactions and summary."""
    full, cut = work / "source_full", work / "source_cut"
    for path in (full, cut):
        if path.exists():
            shutil.rmtree(path)
    started = time.perf_counter()
    summary = import_online_retail(file, full)
    seconds["import_online_retail"] = time.perf_counter() - started
    print(f"import_online_retail: {seconds['import_online_retail']:.1f} s", flush=True)
    print(f"  rows written: {summary.rows}", flush=True)
    print(f"  dates: {summary.first_date} .. {summary.last_date}", flush=True)
    print(f"  quarantined: {summary.n_quarantined} lines", flush=True)
    for reason, count in sorted(summary.quarantined.items(), key=lambda kv: -kv[1]):
        print(f"    {count:>7}  {reason}", flush=True)
    for note in summary.notes:
        print(f"  note: {note}", flush=True)

    started = time.perf_counter()
    cut.mkdir(parents=True)
    table = pq.read_table(full / f"{C.TRANSACTIONS}.parquet")
    frame = table.to_pandas()
    days = pd.to_datetime(frame[C.TRANSACTION_DATE]).dt.date
    keep = (days <= origin).to_numpy()
    pq.write_table(table.filter(keep), cut / f"{C.TRANSACTIONS}.parquet")
    for name in (C.PRODUCTS, C.WAREHOUSES):
        shutil.copy2(full / f"{name}.parquet", cut / f"{name}.parquet")
    seconds["cut source"] = time.perf_counter() - started
    print(
        f"source_cut: {int(keep.sum())} of {len(frame)} transactions dated <= {origin} "
        f"({seconds['cut source']:.1f} s)",
        flush=True,
    )
    frame[C.TRANSACTION_DATE] = pd.to_datetime(frame[C.TRANSACTION_DATE])
    return frame, summary


def daily_matrix(
    tx: pd.DataFrame, first: dt.date, last: dt.date
) -> tuple[pd.MultiIndex, pd.DatetimeIndex, np.ndarray]:
    """Net units per (sku, warehouse) x day over [first, last], clipped at 0."""
    dates = pd.date_range(first, last, freq="D")
    net = tx.groupby([C.SKU, C.WAREHOUSE_ID, C.TRANSACTION_DATE])[C.QUANTITY].sum()
    wide = net.unstack(C.TRANSACTION_DATE).reindex(columns=dates).fillna(0.0)
    return wide.index, dates, np.clip(wide.to_numpy(dtype=np.float64), 0.0, None)


# --------------------------------------------------------------------------------------------------
# the platform
# --------------------------------------------------------------------------------------------------


def run_the_platform(
    work: Path,
    first: dt.date,
    origin: dt.date,
    seconds: dict[str, float],
    notes: list[str],
    partial: bool = False,
) -> tuple[pd.DataFrame, pd.DataFrame] | None:
    """Run the platform on the cut source; its forecasts of the origin (None on failure) and the gate."""
    home = work / "home"
    if home.exists():
        shutil.rmtree(home)
    settings = PlatformSettings(home=home, source=work / "source_cut", start_date=first, end_date=origin)
    print(f"run_platform: partitions {first} .. {origin}", flush=True)
    run = run_and_read(settings, origin, HORIZON, indent="")
    seconds["run_platform"] = run.seconds
    gate, fc = run.gate, run.forecasts
    if run.failed:
        if not partial:
            return None
        notes.append(
            f"platform: {len(run.failed)} failed run(s) ({'; '.join(run.failed)}); --score-partial: only the series the "
            "platform forecast are candidates for the top series"
        )
        print("--score-partial: scoring the series the platform did forecast", flush=True)
    if fc.empty:
        return None
    notes.append(
        f"platform: {fc[['sku', 'warehouse_id']].drop_duplicates().shape[0]} series forecast at the origin"
    )
    return fc, gate


def platform_matrices(fc: pd.DataFrame, keys: pd.MultiIndex) -> dict[str, np.ndarray]:
    """[n_series, 28] point forecast and p50 aligned on the scored series (NaN: not forecast)."""
    row = keys.get_indexer(pd.MultiIndex.from_arrays([fc["sku"], fc["warehouse_id"]]))
    col = fc["horizon"].to_numpy(dtype=np.int64) - 1
    keep = row >= 0
    out = {}
    for method, column in ((PLATFORM_POINT, "forecast"), (PLATFORM_P50, "p50")):
        matrix = np.full((len(keys), HORIZON), np.nan)
        matrix[row[keep], col[keep]] = fc[column].to_numpy(dtype=np.float64)[keep]
        out[method] = matrix
    return out


# --------------------------------------------------------------------------------------------------
# peers
# --------------------------------------------------------------------------------------------------


def run_peers(
    ids: np.ndarray, history: np.ndarray, dates: pd.DatetimeIndex, seconds: dict[str, float]
) -> dict[str, np.ndarray]:
    """Fit every peer on the history up to the origin and forecast the 28 days after it."""
    history = trimmed(history)
    peers: dict[str, Callable[[], np.ndarray]] = {
        "seasonal naive (7)": lambda: stat.seasonal_naive(history, HORIZON, season=7),
        "MA28": lambda: stat.moving_average(history, HORIZON, window=28),
        "Croston": lambda: stat.croston(history, HORIZON, alpha=0.1),
        "SBA": lambda: stat.croston_sba(history, HORIZON, alpha=0.1),
        "TSB": lambda: stat.tsb(history, HORIZON, alpha_d=0.1, alpha_p=0.1),
        "AutoETS": lambda: auto_ets(ids, history, dates),
        "mlforecast LGBM": lambda: mlforecast_lgbm(ids, history, dates),
        ZERO: lambda: np.zeros((len(ids), HORIZON)),
    }
    out = {}
    for name, fit in peers.items():
        started = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out[name] = np.clip(fit(), 0.0, None)
        seconds[name] = time.perf_counter() - started
        print(f"  {name}: {seconds[name]:.2f} s", flush=True)
    return out


# --------------------------------------------------------------------------------------------------
# scoring and output
# --------------------------------------------------------------------------------------------------
def weekly(matrix: np.ndarray) -> np.ndarray:
    """[n, 28] daily -> [n, 4] weekly totals (weeks of 7 days from origin + 1)."""
    return matrix[:, : WEEKS * 7].reshape(matrix.shape[0], WEEKS, 7).sum(axis=2)


def per_warehouse_table(
    keys: pd.MultiIndex, actual: np.ndarray, forecasts: dict[str, np.ndarray]
) -> pd.DataFrame:
    """Weekly WMAPE of every method on the scored series of each warehouse."""
    warehouse = np.asarray(keys.get_level_values("warehouse_id"), dtype=object)
    rows = []
    for wh in sorted(set(warehouse)):
        mask = warehouse == wh
        row: dict[str, object] = {"warehouse": wh, "series": int(mask.sum())}
        for method in METHODS:
            f = np.nan_to_num(forecasts[method][mask], nan=0.0)
            row[method] = fmt(wmape(weekly(actual[mask]), weekly(f)))
        rows.append(row)
    return pd.DataFrame(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--file", type=Path, required=True, help="Online Retail II order lines (.parquet/.csv/.xlsx)"
    )
    parser.add_argument("--work", type=Path, required=True, help="working directory (sources, platform home)")
    parser.add_argument("--origin", type=dt.date.fromisoformat, required=True, help="forecast origin date")
    parser.add_argument("--top", type=int, default=200, help="sku x warehouse series scored")
    parser.add_argument(
        "--score-partial",
        action="store_true",
        help="when a platform run fails, score the series it did forecast instead of stopping",
    )
    parser.add_argument("--out", type=Path, default=None, help="also write the markdown report here")
    args = parser.parse_args(argv)
    command = "python " + " ".join([sys.argv[0], *(argv if argv is not None else sys.argv[1:])])
    machine_start = machine()
    origin: dt.date = args.origin
    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    seconds: dict[str, float] = {}
    notes: list[str] = []
    total_start = time.perf_counter()

    tx, summary = build_sources(args.file.resolve(), work, origin, seconds)
    first = tx[C.TRANSACTION_DATE].min().date()
    last_target = origin + dt.timedelta(days=HORIZON)
    if tx[C.TRANSACTION_DATE].max().date() < last_target:
        notes.append(
            f"the file ends {tx[C.TRANSACTION_DATE].max().date()}, before the last target {last_target}"
        )

    got = run_the_platform(work, first, origin, seconds, notes, partial=args.score_partial)
    if got is None:
        print("stopping: the platform run failed (see above)")
        return 1
    fc, gate = got

    keys, dates, units = daily_matrix(tx, first, last_target)
    n_hist = (pd.Timestamp(origin) - dates[0]).days + 1
    history, actual_all = units[:, :n_hist], units[:, n_hist : n_hist + HORIZON]
    recent = history[:, -TOP_WINDOW_DAYS:].sum(axis=1)
    recent_total = recent.sum()
    if args.score_partial:
        forecast_keys = pd.MultiIndex.from_frame(
            fc.groupby(["sku", "warehouse_id"])
            .size()
            .loc[lambda n: n == HORIZON]
            .reset_index()[["sku", "warehouse_id"]]
        )
        candidate = keys.isin(forecast_keys)
        excluded = int((recent[~candidate] > 0).sum())
        if excluded:
            notes.append(
                f"--score-partial: {excluded} series with sales in the last {TOP_WINDOW_DAYS} days have no full "
                f"platform forecast and are not candidates ({recent[~candidate].sum():.0f} units)"
            )
        recent = np.where(candidate, recent, 0.0)
    top = np.argsort(-recent, kind="stable")[: args.top]
    top = top[recent[top] > 0]
    keys = keys[top]
    history, actual = history[top], actual_all[top]
    ids = np.array([f"{s}|{w}" for s, w in keys], dtype=object)
    print(
        f"scoring {len(keys)} series: {recent[top].sum():.0f} of {recent_total:.0f} units in the "
        f"{TOP_WINDOW_DAYS} days up to {origin}; actual units {origin + dt.timedelta(days=1)} .. "
        f"{last_target}: {actual.sum():.0f}",
        flush=True,
    )

    forecasts = platform_matrices(fc, keys)
    missing = int(np.isnan(forecasts[PLATFORM_POINT]).any(axis=1).sum())
    if missing:
        notes.append(
            f"platform: {missing} of {len(keys)} scored series without a full forecast (missing days = 0)"
        )
    print("peers:", flush=True)
    forecasts.update(run_peers(ids, history, dates[:n_hist], seconds))
    for name in PEERS:
        bad = int(np.isnan(forecasts[name]).any(axis=1).sum())
        if bad:
            notes.append(f"{name}: {bad} series with NaN forecasts (counted as 0)")
    tiers = fc.drop_duplicates(["sku", "warehouse_id"]).set_index(["sku", "warehouse_id"])
    tiers = tiers.reindex(keys)
    models = tiers.groupby(["tier", "model"]).size().rename("scored series").reset_index()

    actual_w = weekly(actual)
    rows = []
    for method in METHODS:
        f = np.nan_to_num(forecasts[method], nan=0.0)
        rows.append(
            {
                "method": method,
                "weekly WMAPE": wmape(actual_w, weekly(f)),
                "weekly bias": bias(actual_w, weekly(f)),
                "daily WMAPE": wmape(actual, f),
            }
        )
    scores = pd.DataFrame(rows)
    by_warehouse = per_warehouse_table(keys, actual, forecasts)
    seconds["total"] = time.perf_counter() - total_start

    lines = [
        f"## Online Retail II: top {len(keys)} sku x warehouse series, origin {origin}, horizon {HORIZON} days "
        f"({WEEKS} weeks)",
        "",
        f"Command: `{command}`",
        "",
        f"Machine: {machine_start}",
        "",
        f"Import: {summary.rows}; quarantined {summary.n_quarantined} lines: "
        + ", ".join(
            f"{reason} {n}" for reason, n in sorted(summary.quarantined.items(), key=lambda kv: -kv[1])
        ),
        "",
        "| method | weekly WMAPE | weekly bias | daily WMAPE |",
        "| --- | --- | --- | --- |",
    ]
    for row in rows:
        lines.append(
            f"| {row['method']} | {fmt(row['weekly WMAPE'])} | {fmt(row['weekly bias'])} | {fmt(row['daily WMAPE'])} |"
        )
    lines += [
        "",
        "WMAPE = sum|f - a| / sum a over series-weeks (weekly) or series-days (daily); bias = sum(f - a) / sum a. "
        f"Actual units in the 28 days: {actual.sum():.0f}.",
        "",
        "Timings (wall seconds):",
        "",
        "| step | seconds |",
        "| --- | --- |",
        *[f"| {name} | {value:.1f} |" for name, value in seconds.items()],
    ]
    if len(gate):
        lines += ["", "Promotion gate:", ""] + [
            f"- {r['warehouse_id']}: {r['reason']}" for r in gate.to_dict("records")
        ]
    lines += ["", "Platform models of the scored series:", "", models.to_markdown(index=False)]
    lines += [
        "",
        "Weekly WMAPE per warehouse (series scored there):",
        "",
        by_warehouse.to_markdown(index=False),
    ]
    lines += [f"\nNote: {n}" for n in notes]
    text = "\n".join(lines) + "\n"
    print("\n" + text)
    better = scores.loc[
        scores["weekly WMAPE"] < scores.loc[scores["method"] == PLATFORM_POINT, "weekly WMAPE"].iloc[0],
        "method",
    ]
    print("methods with a lower weekly WMAPE than the platform point forecast:", ", ".join(better) or "none")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
        print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
