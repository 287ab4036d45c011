"""Stock needed for a service level: the forecast-driven order-up-to policy against the MA28 baseline.

One replay at one safety factor says little when the two policies land at different service levels. This
script replays both on a platform home's forecasts and realised demand (``demand-platform demo --home DIR``
or any home with ``forecasts`` and ``raw_sales``) over a grid of service targets (the ``z`` of both
policies), and interpolates the average on-hand stock each needs to reach a fill rate and a cycle service
level: the design's goal is 95% service with less stock than the baseline.

* forecast policy (``forecast_lead_time``): order up to the sum of the point forecasts over the protection
  period plus ``z`` times the spread the calibrated quantiles imply;
* baseline (``ma28``): ``MA28 x (L + 1) + z x sigma28 x sqrt(L + 1)``.

Usage:
    python bench/bench_inventory_frontier.py --home /tmp/demo --lead-time 7
"""

import argparse
import sys
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
from peers import machine

from demand_platform import columns as C
from demand_platform import inventory

SERVICE_GRID = (0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 0.975, 0.99, 0.995)
POLICIES = (inventory.POLICY_LEAD_TIME, inventory.POLICY_MA)


def frontier(forecasts: pd.DataFrame, actuals: pd.DataFrame, lead_time: int) -> pd.DataFrame:
    """Overall fill rate, cycle service and average on hand of both policies at every service target."""
    rows = []
    for service in SERVICE_GRID:
        out = inventory.compare_policies(forecasts, actuals, lead_time, service=service)
        overall = out.loc[
            (out[inventory.SCOPE] == inventory.SCOPE_OVERALL) & out[inventory.POLICY].isin(POLICIES)
        ]
        rows.append(overall.assign(target=service))
    return pd.concat(rows, ignore_index=True)


def stock_at(curve: pd.DataFrame, metric: str, level: float) -> float:
    """Average on hand at which ``metric`` reaches ``level`` (linear between grid points; NaN if never)."""
    ordered = curve.sort_values(inventory.AVG_ON_HAND)
    x = ordered[metric].to_numpy(np.float64)
    y = ordered[inventory.AVG_ON_HAND].to_numpy(np.float64)
    above = np.flatnonzero(x >= level)
    if len(above) == 0:
        return float("nan")
    i = int(above[0])
    if i == 0:
        return float(y[0])
    return float(y[i - 1] + (level - x[i - 1]) * (y[i] - y[i - 1]) / (x[i] - x[i - 1]))


def main(argv: list[str] | None = None) -> int:
    """Print the frontier per warehouse and the stock each policy needs at the service levels."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--home", type=Path, required=True, help="platform home with forecasts and raw_sales")
    parser.add_argument("--lead-time", type=int, default=7)
    parser.add_argument("--levels", type=float, nargs="+", default=[0.95])
    args = parser.parse_args(argv)
    print(f"machine: {machine()}")
    print(f"command: python {' '.join(sys.argv)}\n")
    con = duckdb.connect(str(args.home / "warehouse.duckdb"), read_only=True)
    warehouses = [
        w for (w,) in con.execute("SELECT DISTINCT warehouse_id FROM forecasts ORDER BY 1").fetchall()
    ]
    print("| warehouse | metric | level | stock, forecast policy | stock, MA28 | forecast / MA28 |")
    print("| --- | --- | --- | --- | --- | --- |")
    for wh in warehouses:
        forecasts = con.execute("SELECT * FROM forecasts WHERE warehouse_id = ?", [wh]).df()
        first = pd.to_datetime(forecasts[C.ORIGIN_DATE]).min() - pd.Timedelta(days=60)
        actuals = con.execute(
            "SELECT * FROM raw_sales WHERE warehouse_id = ? AND date >= ?", [wh, first.date()]
        ).df()
        curve = frontier(forecasts, actuals, args.lead_time)
        for metric in (inventory.FILL_RATE, inventory.CYCLE_SERVICE_LEVEL):
            for level in args.levels:
                ours = stock_at(
                    curve.loc[curve[inventory.POLICY] == inventory.POLICY_LEAD_TIME], metric, level
                )
                base = stock_at(curve.loc[curve[inventory.POLICY] == inventory.POLICY_MA], metric, level)
                print(
                    f"| {wh} | {metric} | {level:.2f} | {ours:.1f} | {base:.1f} | {ours / base:.2f} |",
                    flush=True,
                )
    con.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
