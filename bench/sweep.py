"""Training settings compared on a dataset's origins, on what ``bench.accuracy`` left under ``--work``.

``bench.accuracy --platform dagster`` runs the platform end to end through Dagster (minutes an origin, most
of it ingesting daily partitions). To compare ``TrainConfig`` settings this reuses what it left: per
origin and warehouse it reads what the ``trained_models`` and ``forecasts`` assets read from the home
(``raw_sales`` of ``training_history_days`` to train and ``FORECAST_HISTORY_DAYS`` to forecast, the
origin's ``tier_assignments``, the source's tables), or, where there is no home (``--platform domain``),
builds them from the origin's source, then trains, gates (the registry's decision for a first model:
beat seasonal naive's validation score by the asset's margin, else the baseline is served) and
forecasts with the domain functions and each setting. With the settings of the code that built the
homes it reproduces their stored forecasts exactly: ``--check`` asserts it of the first setting. The
peers are ``bench.common.run_peers``', fitted once per origin (cached in ``<work>/peers.pkl``), and every
method is scored as ``bench.accuracy`` scores.

Usage (the same dataset options as the accuracy run; settings are JSON objects of ``TrainConfig`` fields):
    python -W ignore -m bench.accuracy --dataset m5 --data ../shared/data/m5 --work /tmp/m5six \\
        --origins 1801 1829 1857 1885 1913 1941
    python -W ignore -m bench.sweep --dataset m5 --data ../shared/data/m5 --work /tmp/m5six \\
        --origins 1801 1829 1857 1885 1913 1941 --check --config '{}' '{"weekday_profile": false}' \\
        --out /tmp/m5six/sweep.json
"""

import argparse
import datetime as dt
import json
import pickle
import sys
from typing import Any

import numpy as np
import pandas as pd

from bench.accuracy import (
    DATASETS,
    HORIZON,
    Window,
    add_dataset_options,
    finish_dataset_options,
    platform_matrices,
    score_window,
    scored_rows,
)
from bench.common import (
    PLATFORM_P50,
    PLATFORM_POINT,
    QUANTILES,
    ZERO,
    command_line,
    fmt,
    home_inputs,
    home_stored_forecasts,
    run_peers,
    same_forecasts,
    source_inputs,
    train_and_forecast,
    write_json,
)
from demand_platform import columns as C
from demand_platform.forecasting import TrainConfig

PLATFORM_KEYS = (PLATFORM_P50, PLATFORM_POINT, *QUANTILES)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options: the dataset's, the settings and ``--check``."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_dataset_options(parser)
    parser.add_argument("--config", nargs="+", default=["{}"], help="TrainConfig fields as JSON objects")
    parser.add_argument(
        "--check",
        action="store_true",
        help="assert the first setting reproduces the forecasts stored in the homes",
    )
    return finish_dataset_options(parser, parser.parse_args(argv))


def origin_row(window: Window, gates: list[str], seconds: float) -> dict[str, Any]:
    """One origin's figures under one setting."""
    scores = window.scores
    point = scores[PLATFORM_POINT]
    peers = {m: s["wrmsse"] for m, s in scores.items() if m not in (PLATFORM_POINT, PLATFORM_P50, ZERO)}
    best = min(peers, key=lambda m: np.inf if peers[m] is None or np.isnan(peers[m]) else peers[m])
    tier_1 = next((t[PLATFORM_POINT]["wrmsse"] for t in window.tiers if t["tier"] == 1), np.nan)
    return {
        "origin": window.origin,
        "point_wrmsse": point["wrmsse"],
        "best_peer": best,
        "best_peer_wrmsse": peers[best],
        "tier1_point_wrmsse": tier_1,
        "point_wmape": point["wmape"],
        "p50_wmape": scores[PLATFORM_P50]["wmape"],
        "coverage_p90": point.get("coverage_p90"),
        "coverage_p95": point.get("coverage_p95"),
        "gate": ", ".join(gates),
        "train_forecast_seconds": seconds,
        "wrmsse": {m: s["wrmsse"] for m, s in scores.items() if m != ZERO},
    }


def main(argv: list[str] | None = None) -> int:
    """Score every setting at every origin; print and write the figures."""
    args = parse_args(argv)
    work = args.work.resolve()
    data = DATASETS[args.dataset](args, work)
    warehouses = sorted(set(data.keys.get_level_values(C.WAREHOUSE_ID)))
    cache = work / "peers.pkl"
    peers: dict[str, dict[str, np.ndarray]] = pickle.loads(cache.read_bytes()) if cache.exists() else {}
    settings = []
    for number, text in enumerate(args.config):
        config = TrainConfig(**json.loads(text))
        print(f"\n=== TrainConfig {text} ===", flush=True)
        rows = []
        for token in args.origins:
            end = data.origin_end(token)
            window = Window(origin=data.dates[end - 1].date(), end=end, rows=scored_rows(data, end))
            root = work / f"origin_{window.origin}"
            home, source = root / "home", root / "source"
            if not source.exists():
                raise SystemExit(f"no {source}: run bench.accuracy with the same options first")
            first = (
                data.first_day
                if args.history_days is None
                else window.origin - dt.timedelta(days=args.history_days - 1)
            )
            frames, gates, seconds = [], [], 0.0
            for wh in warehouses:
                if home.exists():
                    inputs = home_inputs(home, source, window.origin, wh, config)
                else:
                    inputs = source_inputs(source, first, window.origin, wh, config)
                result = train_and_forecast(inputs, window.origin, wh, config)
                if args.check and number == 0:
                    if not home.exists():
                        raise SystemExit(
                            f"--check: no home under {root} (run bench.accuracy --platform dagster)"
                        )
                    stored = home_stored_forecasts(home, window.origin, wh)
                    if not same_forecasts(result.forecasts, stored):
                        raise SystemExit(f"--check: {window.origin} {wh}: forecasts differ from the home's")
                frames.append(result.forecasts)
                seconds += result.seconds
                gates.append(f"{wh} {'promoted' if result.promoted else 'refused: baseline'}")
            fc = pd.concat(frames, ignore_index=True)
            tier = platform_matrices(data, window, fc.loc[fc[C.HORIZON].between(1, HORIZON)])
            key = str(window.origin)
            if key not in peers:
                history = data.units[window.rows, :end]
                run = run_peers(
                    data.ids[window.rows],
                    history,
                    data.dates[:end],
                    HORIZON,
                    data.ets_min_days,
                    tuple(args.peers),
                )
                peers[key] = run.forecasts
                cache.write_bytes(pickle.dumps(peers))
            window.forecasts.update(peers[key])
            score_window(data, window, tier)
            row = origin_row(window, gates, seconds)
            rows.append(row)
            print(
                f"  {window.origin}: point WRMSSE {fmt(row['point_wrmsse'], 4)}, best peer {row['best_peer']} "
                f"{fmt(row['best_peer_wrmsse'], 4)}, {row['gate']}, {seconds:.1f} s",
                flush=True,
            )
        means = pd.DataFrame([r["wrmsse"] for r in rows]).astype(float).mean().sort_values()
        print("  mean WRMSSE: " + ", ".join(f"{m} {v:.4f}" for m, v in means.items()))
        settings.append(
            {"config": json.loads(text), "label": text, "origins": rows, "mean_wrmsse": means.to_dict()}
        )
    results = {"dataset": data.name, "checked": bool(args.check), "settings": settings}
    params = {k: v for k, v in vars(args).items() if k != "work"}
    write_json(args.out, "sweep", command_line("bench.sweep", argv), params, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
