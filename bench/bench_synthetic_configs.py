"""Training settings compared on the synthetic benchmark's origins, on the homes ``bench_synthetic.py`` built.

The synthetic counterpart of ``bench_m5_configs.py``: per origin (and warehouse) it trains and forecasts
with the domain functions on what the model assets read from the home (``peers.home_forecasts``, the
gate applied as the asset does) and scores like ``bench_synthetic.py`` against the same peers (cached in
``<work>/peers.pkl``). ``--check`` asserts that the first setting reproduces the forecasts stored in the
homes (true for the settings of the code that built them).

Usage (same generator options as the homes were built with):
    python -W ignore bench/bench_synthetic.py --work /tmp/g_syn
    python -W ignore bench/bench_synthetic_configs.py --work /tmp/g_syn --check \\
        --config '{}' '{"weekday_profile": false}' '{"dense_origin_steps": []}'
"""

import argparse
import json
import pickle
import sys
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
from bench_synthetic import load_data, make_window, platform_matrices, run_peers, score_window
from peers import (
    HORIZON,
    PLATFORM_P50,
    PLATFORM_POINT,
    assert_same_forecasts,
    fmt,
    home_forecasts,
    print_settings_table,
    settings_row,
)

from demand_platform import columns as C
from demand_platform.forecasting import TrainConfig
from demand_platform.synthetic import GeneratorConfig

PLATFORM_KEYS = (PLATFORM_P50, PLATFORM_POINT, "p90", "p95")


def main(argv: list[str] | None = None) -> int:
    """Score every setting at every origin; print per-origin and mean figures."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--work", type=Path, required=True, help="bench_synthetic's --work")
    parser.add_argument("--skus", type=int, default=500, help="generated SKUs (as for the homes)")
    parser.add_argument("--warehouses", type=int, default=1, help="generated warehouses")
    parser.add_argument("--days", type=int, default=500, help="generated days")
    parser.add_argument("--seed", type=int, default=42, help="generator seed")
    parser.add_argument("--origins", type=int, nargs="+", default=[60, 30], help="days before the last day")
    parser.add_argument("--config", nargs="+", default=["{}"], help="TrainConfig fields as JSON objects")
    parser.add_argument(
        "--check", action="store_true", help="assert the first setting reproduces the stored forecasts"
    )
    args = parser.parse_args(argv)
    generator = GeneratorConfig(
        n_skus=args.skus, n_warehouses=args.warehouses, days=args.days, seed=args.seed
    )
    data = load_data(args.work / "source_full", generator)
    cache = args.work / "peers.pkl"
    peers: dict[str, dict[str, np.ndarray]] = pickle.loads(cache.read_bytes()) if cache.exists() else {}
    for number, text in enumerate(args.config):
        config = TrainConfig(**json.loads(text))
        rows, scores = [], []
        for days_before_last in args.origins:
            result = make_window(data, days_before_last)
            root = args.work / f"origin_{result.origin}"
            with duckdb.connect(str(root / "home" / "warehouse.duckdb"), read_only=True) as con:
                warehouses = [
                    w for (w,) in con.execute("SELECT DISTINCT warehouse_id FROM tier_assignments").fetchall()
                ]
            frames, seconds, gates = [], 0.0, []
            for wh in sorted(warehouses):
                forecasts, stored, took, promoted = home_forecasts(
                    root / "home", root / "source", result.origin, wh, config
                )
                if args.check and number == 0:
                    assert_same_forecasts(forecasts, stored, f"{result.origin} {wh}")
                frames.append(forecasts)
                seconds += took
                gates.append(f"{wh} {'promoted' if promoted else 'refused: baseline'}")
            forecasts = pd.concat(frames, ignore_index=True)
            platform_matrices(data, forecasts[forecasts[C.HORIZON] <= HORIZON], result)
            key = str(result.origin)
            if key not in peers:
                run_peers(data, result)
                peers[key] = {m: f for m, f in result.forecasts.items() if m not in PLATFORM_KEYS}
                cache.write_bytes(pickle.dumps(peers))
            result.forecasts.update(peers[key])
            score_window(data, result)
            scores.append(result.scores)
            tiers = result.tier_table.set_index("tier") if result.tier_table is not None else None
            tier_1 = (
                tiers.loc[1, f"{PLATFORM_POINT} WRMSSE"] if tiers is not None and 1 in tiers.index else np.nan
            )
            extra = [fmt(float(tier_1), 4)]
            rows.append(settings_row(str(result.origin), result.scores, extra, ", ".join(gates), seconds))
        print_settings_table(text, ["tier-1 WRMSSE"], rows, scores)
    return 0


if __name__ == "__main__":
    sys.exit(main())
