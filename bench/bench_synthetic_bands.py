"""Where the synthetic benchmark's tier-1 WRMSSE is won or lost: per horizon band, against the peers.

On the homes ``bench_synthetic.py`` built with its default source options (500 SKUs, one warehouse
WH001, 500 days, seed 42; peers cached by ``bench_synthetic_configs.py`` in
``<work>/peers.pkl``), the platform's forecasts are recomputed with the default settings as the assets
would (``peers.home_forecasts``) and tier 1's WRMSSE is printed per horizon band 1-7 / 8-14 / 15-28 for the
platform and the peers, with the share of the WRMSSE weight held by the ten largest series, and, as a
diagnostic only (it uses the peer's own forecasts), the overall WRMSSE of a 50/50 average of the
platform and mlforecast on tier 1.

Usage:
    python -W ignore bench/bench_synthetic.py --work /tmp/g_syn
    python -W ignore bench/bench_synthetic_configs.py --work /tmp/g_syn   # fills peers.pkl
    python -W ignore bench/bench_synthetic_bands.py --work /tmp/g_syn
"""

import argparse
import pickle
import sys
from pathlib import Path

import numpy as np
from bench_synthetic import load_data, make_window, platform_matrices
from peers import HORIZON, PLATFORM_POINT, home_forecasts

from demand_platform import columns as C
from demand_platform.forecasting import TrainConfig
from demand_platform.metrics import m5_weights, wrmsse
from demand_platform.synthetic import GeneratorConfig

BANDS = ((0, 7), (7, 14), (14, HORIZON))
SHOWN = (PLATFORM_POINT, "mlforecast LGBM", "SBA", "MA28")


def main(argv: list[str] | None = None) -> int:
    """Print tier-1 WRMSSE per band and method at every origin."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--work", type=Path, required=True, help="bench_synthetic's --work")
    parser.add_argument("--origins", type=int, nargs="+", default=[60, 30], help="days before the last day")
    args = parser.parse_args(argv)
    data = load_data(
        args.work / "source_full", GeneratorConfig(n_skus=500, n_warehouses=1, days=500, seed=42)
    )
    peers = pickle.loads((args.work / "peers.pkl").read_bytes())
    for days_before_last in args.origins:
        result = make_window(data, days_before_last)
        root = args.work / f"origin_{result.origin}"
        forecasts, _, _, _ = home_forecasts(
            root / "home", root / "source", result.origin, "WH001", TrainConfig()
        )
        platform_matrices(data, forecasts[forecasts[C.HORIZON] <= HORIZON], result)
        result.forecasts.update(peers[str(result.origin)])
        history = data.units[result.rows, : result.end]
        actual = data.units[result.rows, result.end : result.end + HORIZON]
        weights = m5_weights(data.revenue[result.rows, : result.end], np.ones(len(result.rows)), last=28)
        tier_1 = result.tier == 1
        print(
            f"origin {result.origin}, tier 1 ({int(tier_1.sum())} series), WRMSSE by band 1-7 / 8-14 / 15-28:"
        )
        for name in SHOWN:
            fc = result.forecasts[name]
            parts = [
                wrmsse(actual[tier_1, a:b], fc[tier_1, a:b], history[tier_1], weights[tier_1])
                for a, b in BANDS
            ]
            whole = wrmsse(actual[tier_1], fc[tier_1], history[tier_1], weights[tier_1])
            print(f"  {name:26s} " + " / ".join(f"{p:.4f}" for p in parts) + f"   all {whole:.4f}")
        top = np.argsort(-np.nan_to_num(weights))[:10]
        print(f"  ten largest series: {np.nansum(weights[top]) / np.nansum(weights):.3f} of the weight")
        mix = result.forecasts[PLATFORM_POINT].copy()
        mix[tier_1] = 0.5 * mix[tier_1] + 0.5 * result.forecasts["mlforecast LGBM"][tier_1]
        print(
            "  overall WRMSSE: platform "
            f"{wrmsse(actual, result.forecasts[PLATFORM_POINT], history, weights):.4f}, mlforecast "
            f"{wrmsse(actual, result.forecasts['mlforecast LGBM'], history, weights):.4f}, "
            f"tier 1 averaged 50/50 (diagnostic) {wrmsse(actual, mix, history, weights):.4f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
