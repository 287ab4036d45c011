"""Training settings compared on M5 HOBBIES_2 / CA_3 at many origins, on the homes ``bench_m5.py`` built.

``bench_m5.py`` runs the platform end to end through Dagster (80-120 s an origin, most of it ingesting
~1,900 daily partitions). To compare ``TrainConfig`` settings this script reuses the homes it left: per
origin it reads what the ``trained_models`` and ``forecasts`` assets read (``raw_sales`` history of
``training_history_days`` to train and 400 days to forecast, the origin's ``tier_assignments``, the
source's tables) and calls ``train_warehouse`` and ``forecast_warehouse`` with the settings given, so
with the settings of the code that built the homes it reproduces their stored forecasts exactly
(``--check`` asserts it of the first setting). The
peers are ``bench_m5``'s, fitted on the same history (cached in ``<work>/peers.pkl``), scored the same way.

Usage (homes first, then any number of settings, each a JSON object of ``TrainConfig`` fields):
    python -W ignore bench/bench_m5.py --data ../shared/data/m5 --work /tmp/m5six \\
        --windows 1801 1829 1857 1885 1913 1941
    python -W ignore bench/bench_m5_configs.py --data ../shared/data/m5 --work /tmp/m5six --check \\
        --config '{}' '{"weekday_profile": false, "dense_origin_steps": []}'

(homes built before the weekday profile and the denser origins: put the second setting first to check;
homes built before the RMSE gate, commit e4ce90e, cannot be checked where their first model was refused.)
"""

import argparse
import json
import pickle
import sys
from pathlib import Path

import numpy as np
from bench_m5 import WindowResult, load_m5, platform_matrices, run_peers, score_window
from peers import (
    HORIZON,
    PLATFORM_P50,
    PLATFORM_POINT,
    assert_same_forecasts,
    home_forecasts,
    print_settings_table,
    settings_row,
)

from demand_platform import columns as C
from demand_platform.forecasting import TrainConfig

WAREHOUSE = "CA_3"
PLATFORM_KEYS = (PLATFORM_P50, PLATFORM_POINT, "p90", "p95")


def main(argv: list[str] | None = None) -> int:
    """Score every setting at every origin whose home exists; print per-origin and mean figures."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, required=True, help="directory of the M5 files")
    parser.add_argument("--work", type=Path, required=True, help="bench_m5's --work (homes origin_dN)")
    parser.add_argument("--config", nargs="+", default=["{}"], help="TrainConfig fields as JSON objects")
    parser.add_argument(
        "--check",
        action="store_true",
        help="assert the first setting reproduces the forecasts stored in the homes",
    )
    args = parser.parse_args(argv)
    data = load_m5(args.data)
    origins = sorted(
        int(p.name.removeprefix("origin_d")) for p in args.work.glob("origin_d*") if (p / "home").exists()
    )
    if not origins:
        raise SystemExit(f"no homes under {args.work}: run bench_m5.py --work {args.work} first")
    cache = args.work / "peers.pkl"
    peers: dict[int, dict[str, np.ndarray]] = pickle.loads(cache.read_bytes()) if cache.exists() else {}
    for number, text in enumerate(args.config):
        config = TrainConfig(**json.loads(text))
        rows, scores = [], []
        for origin in origins:
            root, day = args.work / f"origin_d{origin}", data.dates[origin - 1].date()
            forecasts, stored, seconds, promoted = home_forecasts(
                root / "home", root / "source", day, WAREHOUSE, config
            )
            if args.check and number == 0:
                assert_same_forecasts(forecasts, stored, f"d_{origin}")
            result = WindowResult(origin=origin)
            platform_matrices(data, forecasts[forecasts[C.HORIZON] <= HORIZON], result)
            if origin not in peers:
                run_peers(data, origin, result)
                peers[origin] = {m: f for m, f in result.forecasts.items() if m not in PLATFORM_KEYS}
                cache.write_bytes(pickle.dumps(peers))
            result.forecasts.update(peers[origin])
            score_window(data, origin, result)
            scores.append(result.scores)
            gate = "promoted" if promoted else "refused: baseline"
            rows.append(settings_row(f"d_{origin}", result.scores, [], gate, seconds))
        print_settings_table(text, [], rows, scores)
    return 0


if __name__ == "__main__":
    sys.exit(main())
