"""Held-out scenarios: the peaks planners need (Black Friday, a sitewide sale, late launches, a level shift).

A synthetic source (``--skus`` x ``--warehouses``, from 1 January 2023, seed ``--seed``) is generated
through 30 days past the origin (``--origin``, default 31 October 2025) with a scenario put into it:

* the holidays of the generator (two earlier Black Fridays in the history; Thanksgiving, Black Friday and
  its weekend inside the horizon; Cyber Monday falls on D+31, outside it);
* a sitewide 30% sale (``seasonal_sale``) inside the horizon (``--sale``, default 12-16 November), in
  ``marketing_campaigns`` ahead of time like every campaign;
* ``--late-launches`` SKUs launched in the 21 days before the origin;
* a category whose demand falls 40% (``--shift-category``) 61 days before the origin.

The platform (the domain path of ``bench.common.train_and_forecast``: ingestion, tiers, training with the
promotion gate, forecasts; no Dagster) and the peers (seasonal naive, MA28, statsforecast AutoETS,
mlforecast LightGBM) see the source cut at the origin (transactions and weather on or before it; the
campaigns as planned). Scored: every SKU launched by the origin, in every warehouse, D+1..D+30.

Per segment (weeks of the horizon, the event days, tiers, the late launches, the shifted category), every
method's WMAPE (the platform's p50) and bias (the platform's point forecast), and the noise floor: the WMAPE
of the true median (``demand_platform.synthetic.true_demand``), which no forecast can beat on average.
The platform's p90 coverage is printed per segment too.

With ``--pooling``, the platform's forecasts are also reconciled across the warehouses
(:mod:`demand_platform.forecasting.pooling`: each warehouse's long-run share of the SKU's total forecast),
with the weight of the own forecast picked on the platform's forecasts of the origin 30 days earlier and
what sold since (both before the origin); it is scored as one more method, with its own p90 coverage.

Usage (from the repository root):
    python -W ignore -m bench.scenarios --work /tmp/scn --pooling --out /tmp/scn/scenarios.json
"""

import argparse
import datetime as dt
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bench.accuracy import _cut_copy, _daily_sums, _matrices, generated_keys
from bench.common import (
    AUTO_ETS,
    MA28,
    MLFORECAST,
    SEASONAL_NAIVE,
    command_line,
    fmt,
    run_peers,
    source_inputs,
    train_and_forecast,
    write_json,
)
from demand_platform import columns as C
from demand_platform.metrics import bias, coverage, wmape
from demand_platform.synthetic import (
    GeneratorConfig,
    LevelShift,
    PlannedCampaign,
    generate_source,
    true_demand,
)

HORIZON = 30
START = dt.date(2023, 1, 1)
PLATFORM = "platform"
POOLED = "platform reconciled across warehouses"
FLOOR = "true median (floor)"
PEER_NAMES = (SEASONAL_NAIVE, MA28, AUTO_ETS, MLFORECAST)
LATE_LAUNCH_DAYS = 21
SHIFT_DAYS_BEFORE = 61


def scenario_config(args: argparse.Namespace) -> GeneratorConfig:
    """The generator's config of the scenario."""
    origin = args.origin
    sale_first, sale_last = (dt.date.fromisoformat(d) for d in args.sale)
    return GeneratorConfig(
        n_skus=args.skus,
        n_warehouses=args.warehouses,
        start=START,
        days=(origin - START).days + 1 + HORIZON,
        seed=args.seed,
        planned_campaigns=(PlannedCampaign(start=sale_first, end=sale_last, discount=30.0),),
        level_shifts=(LevelShift(args.shift_category, origin - dt.timedelta(days=SHIFT_DAYS_BEFORE), 0.6),),
        late_launches=args.late_launches,
        late_launch_window=(origin - dt.timedelta(days=LATE_LAUNCH_DAYS - 1), origin),
    )


def day_segments(origin: dt.date, sale: tuple[dt.date, dt.date]) -> dict[str, np.ndarray]:
    """Boolean [HORIZON] masks of the horizon's days: weeks and events."""
    days = pd.date_range(origin + dt.timedelta(days=1), periods=HORIZON, freq="D")
    date = days.date
    thanksgiving = next(d for d in date if d.month == 11 and d.weekday() == 3 and 22 <= d.day <= 28)
    black_friday = thanksgiving + dt.timedelta(days=1)
    out: dict[str, np.ndarray] = {"all days": np.ones(HORIZON, bool)}
    for week in range(HORIZON // 7 + 1):
        mask = np.arange(HORIZON) // 7 == week
        if mask.any():
            out[f"week {week + 1} ({date[mask][0]:%d %b}-{date[mask][-1]:%d %b})"] = mask
    sale_days = (date >= sale[0]) & (date <= sale[1])
    out[f"sitewide 30% sale ({sale[0]:%d}-{sale[1]:%d %b})"] = sale_days
    out[f"Black Friday ({black_friday:%d %b})"] = date == black_friday
    out["Thanksgiving to Sunday"] = (date >= thanksgiving) & (date <= thanksgiving + dt.timedelta(days=3))
    week_of_bf = (date >= black_friday - dt.timedelta(days=6)) & (date <= black_friday)
    out["ordinary days (not the sale, not the Black Friday week or after)"] = (
        ~sale_days & ~week_of_bf & (date < black_friday)
    )
    return out


def segment_scores(
    actual: np.ndarray,
    forecasts: dict[str, np.ndarray],
    rows: dict[str, np.ndarray],
    days: dict[str, np.ndarray],
    point: np.ndarray,
    p90: np.ndarray,
    pooled: tuple[np.ndarray, np.ndarray] | None = None,
) -> list[dict[str, Any]]:
    """WMAPE and bias of every method, the floor and the platform's p90 coverage per (rows, days) segment
    (``pooled``: the point and p90 of the platform reconciled across warehouses, method ``POOLED``)."""
    out = []
    pairs = [("all series", d) for d in days] + [(r, "all days") for r in rows if r != "all series"]
    for row_name, day_name in pairs:
        r, d = rows[row_name], days[day_name]
        if not r.any() or not d.any():
            continue
        a = actual[r][:, d]
        entry: dict[str, Any] = {
            "series": row_name,
            "days": day_name,
            "n_series": int(r.sum()),
            "units": a.sum(),
        }
        floor = wmape(a, forecasts[FLOOR][r][:, d])
        for name, fc in forecasts.items():
            f = fc[r][:, d]
            w = wmape(a, f)
            own_point = {PLATFORM: point, POOLED: pooled[0] if pooled else None}.get(name)
            b = bias(a, own_point[r][:, d] if own_point is not None else f)
            entry[name] = {"wmape": w, "bias": b, "ratio": w / floor if floor else np.nan}
        entry["p90 coverage"] = coverage(a, p90[r][:, d])
        if pooled:
            entry["p90 coverage pooled"] = coverage(a, pooled[1][r][:, d])
        out.append(entry)
    return out


def print_table(entries: list[dict[str, Any]], methods: list[str]) -> None:
    """One markdown table: per segment, WMAPE (x floor) and bias of every method."""
    pooled = any("p90 coverage pooled" in e for e in entries)
    head = (
        ["segment", "units", "floor WMAPE"]
        + [f"{m} WMAPE (x floor) / bias" for m in methods]
        + ["p90 cov"]
        + (["p90 cov reconciled"] if pooled else [])
    )
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for e in entries:
        name = e["days"] if e["series"] == "all series" else f"{e['series']} ({e['n_series']})"
        cells = [name, f"{e['units']:.0f}", fmt(100 * e[FLOOR]["wmape"], 1)]
        for m in methods:
            s = e[m]
            cells.append(f"{100 * s['wmape']:.1f} ({s['ratio']:.3f}x) / {100 * s['bias']:+.1f}%")
        cells.append(fmt(e["p90 coverage"], 3))
        if pooled:
            cells.append(fmt(e["p90 coverage pooled"], 3))
        print("| " + " | ".join(cells) + " |")


def peers_cached(
    work: Path,
    key: str,
    ids: np.ndarray,
    history: np.ndarray,
    dates: pd.DatetimeIndex,
    peers: tuple[str, ...],
) -> dict[str, np.ndarray]:
    """The peers' forecasts, reused from ``work/peers.npz`` when it was made for the same source and peers
    (AutoETS takes minutes; the peers do not change with the platform's code)."""
    cache = work / "peers.npz"
    if cache.exists():
        stored = np.load(cache, allow_pickle=False)
        if str(stored["key"]) == key:
            print("peers: reused from", cache, flush=True)
            return {name: stored[f"m{i}"] for i, name in enumerate(peers)}
    run = run_peers(ids, history, dates, horizon=HORIZON, peers=peers)
    np.savez(cache, key=key, **{f"m{i}": run.forecasts[name] for i, name in enumerate(peers)})
    return {name: run.forecasts[name] for name in peers}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--skus", type=int, default=300)
    parser.add_argument("--warehouses", type=int, default=5)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--origin", type=dt.date.fromisoformat, default=dt.date(2025, 10, 31))
    parser.add_argument("--sale", nargs=2, default=["2025-11-12", "2025-11-16"], metavar=("FIRST", "LAST"))
    parser.add_argument("--late-launches", type=int, default=30)
    parser.add_argument("--shift-category", default="Apparel")
    parser.add_argument(
        "--pooling",
        action="store_true",
        help="also score the platform reconciled across warehouses, its weight picked on the origin 30 days "
        "earlier (the platform trained and forecast there too)",
    )
    parser.add_argument(
        "--peers",
        nargs="*",
        choices=PEER_NAMES,
        default=list(PEER_NAMES),
        help="the peers to run (none given: the platform and the floor only)",
    )
    args = parser.parse_args(argv)
    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    config = scenario_config(args)
    origin = args.origin
    sale = (dt.date.fromisoformat(args.sale[0]), dt.date.fromisoformat(args.sale[1]))

    full, cut = work / "source_full", work / "source"
    started = time.perf_counter()
    for path in (full, cut):
        if path.exists():
            shutil.rmtree(path)
    generate_source(full, config)
    _cut_copy(full, cut, origin, {C.TRANSACTIONS: C.TRANSACTION_DATE, C.WEATHER: C.DATE})
    print(f"source: {time.perf_counter() - started:.1f} s", flush=True)

    products, keys = generated_keys(full)
    warehouses = sorted(set(keys.get_level_values(C.WAREHOUSE_ID)))
    dates = pd.date_range(config.start, config.end, freq="D")
    end = int(dates.get_loc(pd.Timestamp(origin))) + 1
    units = np.clip(
        _matrices(_daily_sums(full / f"{C.TRANSACTIONS}.parquet"), keys, dates, ("units",))[0], 0, None
    )
    by_sku = products.set_index(C.SKU)
    launch = pd.DatetimeIndex(pd.to_datetime(by_sku[C.LAUNCH_DATE]).reindex(keys.get_level_values(0)))
    category = by_sku[C.CATEGORY].reindex(keys.get_level_values(0)).to_numpy()
    scored = np.flatnonzero(launch <= pd.Timestamp(origin))
    keys, units, launch, category = keys[scored], units[scored], launch[scored], category[scored]
    history, actual = units[:, :end], units[:, end : end + HORIZON]

    truth = true_demand(config, origin + dt.timedelta(days=1), origin + dt.timedelta(days=HORIZON))
    truth = truth.rename(columns={C.DATE: "day"})
    forecasts: dict[str, np.ndarray] = {
        FLOOR: _matrices(truth, keys, dates[end : end + HORIZON], ("median",))[0],
    }

    # The platform, per warehouse.
    from demand_platform.forecasting import TrainConfig

    train_config = TrainConfig()
    seconds: list[float] = []

    def platform_at(day: dt.date) -> pd.DataFrame:
        frames = []
        for wh in warehouses:
            inputs = source_inputs(cut, config.start, day, wh, train_config)
            result = train_and_forecast(inputs, day, wh, train_config)
            print(
                f"  platform {wh} at {day}: {result.seconds:.1f} s, promoted {result.promoted} ({result.reason})",
                flush=True,
            )
            frames.append(result.forecasts)
            if day == origin:
                seconds.append(result.seconds)
        out = pd.concat(frames, ignore_index=True)
        return out.loc[out[C.HORIZON].between(1, HORIZON)].reset_index(drop=True)

    def as_matrix(frame: pd.DataFrame, column: str) -> np.ndarray:
        row = keys.get_indexer(
            pd.MultiIndex.from_arrays([frame[C.SKU].astype(str), frame[C.WAREHOUSE_ID].astype(str)])
        )
        ok = row >= 0
        m = np.zeros((len(keys), HORIZON))
        m[row[ok], frame[C.HORIZON].to_numpy(dtype=np.int64)[ok] - 1] = frame[column].to_numpy(np.float64)[ok]
        return m

    fc = platform_at(origin)
    mats = {column: as_matrix(fc, column) for column in (C.P50, C.FORECAST, C.P90)}
    forecasts[PLATFORM] = mats[C.P50]
    pooled_mats: tuple[np.ndarray, np.ndarray] | None = None
    pooling: dict[str, Any] = {}
    if args.pooling:
        from demand_platform.forecasting import apply_overrides, warehouse_shares
        from demand_platform.forecasting.pooling import (
            PastForecasts,
            reconcile_origin,
            regional_campaign_rows,
        )
        from demand_platform.source import load_source_tables

        tables = load_source_tables(cut)  # the campaigns known at the origin (announced ahead)

        sales = _daily_sums(cut / f"{C.TRANSACTIONS}.parquet").rename(
            columns={"day": C.DATE, "units": C.QUANTITY}
        )
        sales[C.DATE] = pd.to_datetime(sales[C.DATE])
        past = origin - dt.timedelta(days=HORIZON)
        fc_past = platform_at(past)
        sold = sales.set_index([C.SKU, C.WAREHOUSE_ID, C.DATE])[C.QUANTITY]
        target = pd.MultiIndex.from_arrays(
            [
                fc_past[C.SKU].astype(str),
                fc_past[C.WAREHOUSE_ID].astype(str),
                pd.to_datetime(fc_past[C.TARGET_DATE]),
            ]
        )
        actual_past = np.clip(sold.reindex(target).fillna(0.0).to_numpy(np.float64), 0, None)
        # What reconciled_forecasts does: the stored forecasts' shape (no overrides here), the weight picked
        # on the origin 30 days before against the sales since.
        scored = PastForecasts(
            past,
            fc_past,
            actual_past,
            warehouse_shares(sales, pd.Timestamp(past)),
            regional_campaign_rows(fc_past, tables.campaigns, tables.warehouses),
        )
        reconciled, choice = reconcile_origin(
            apply_overrides(fc, None),
            warehouse_shares(sales, pd.Timestamp(origin)),
            None,
            scored,
            campaigns=tables.campaigns,
            warehouses=tables.warehouses,
        )
        weight, scores = choice.weight, choice.scores
        print(
            f"  pooling weight of the own forecast {weight} (WMAPE at {past} by weight: {scores})", flush=True
        )
        forecasts[POOLED] = as_matrix(reconciled, C.P50)
        pooled_mats = (as_matrix(reconciled, C.FORECAST), as_matrix(reconciled, C.P90))
        pooling = {"weight": weight, "wmape_by_weight_at_past_origin": scores, "past_origin": str(past)}
    tier = np.full(len(keys), -1)
    per_series = fc.drop_duplicates([C.SKU, C.WAREHOUSE_ID])
    row = keys.get_indexer(
        pd.MultiIndex.from_arrays([per_series[C.SKU].astype(str), per_series[C.WAREHOUSE_ID].astype(str)])
    )
    tier[row[row >= 0]] = per_series[C.TIER].to_numpy()[row >= 0]

    fc.to_parquet(work / "platform_forecasts.parquet")
    peers = tuple(name for name in PEER_NAMES if name in args.peers)
    if peers:
        ids = np.array([f"{s}@{w}" for s, w in keys], dtype=object)
        key = json.dumps(
            [vars(args).get(k) for k in ("skus", "warehouses", "seed", "late_launches")] + [str(origin)]
        ) + str(config)
        if peers != PEER_NAMES:
            key += "|" + ",".join(peers)
        forecasts.update(peers_cached(work, key, ids, history, dates[:end], peers))

    late_first = pd.Timestamp(origin - dt.timedelta(days=LATE_LAUNCH_DAYS - 1))
    rows = {
        "all series": np.ones(len(keys), bool),
        **{f"tier {t}": tier == t for t in (1, 2, 3)},
        f"launched in the last {LATE_LAUNCH_DAYS} days": np.asarray(launch >= late_first),
        f"{args.shift_category} (-40% since D-{SHIFT_DAYS_BEFORE})": category == args.shift_category,
    }
    days = day_segments(origin, sale)
    entries = segment_scores(actual, forecasts, rows, days, mats[C.FORECAST], mats[C.P90], pooled_mats)
    methods = [PLATFORM] + [m for m in (POOLED, *PEER_NAMES) if m in forecasts]
    print(
        f"\n{len(keys)} series, origin {origin}, D+1..D+{HORIZON}; platform seconds (train + forecast) {sum(seconds):.1f}"
    )
    print_table(entries, methods)
    if args.out:
        write_json(
            args.out,
            "scenarios",
            command_line("bench.scenarios", argv),
            {k: str(v) for k, v in vars(args).items()},
            {"platform_seconds": seconds, "segments": entries, "pooling": pooling},
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
