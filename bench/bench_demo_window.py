"""The demo's December window scored against a 28-day moving average on the same SKU-days.

Reads a home left by ``demand-platform demo`` (its DuckDB): the forecasts of the origins 2024-12-02 ..
2024-12-29 whose target day is on or before 2024-12-30, the raw_sales of those days (returns clipped at
0), and MA28 = the mean of the 28 raw_sales days ending at each origin. Prints WMAPE and bias of the
point forecast, the p50 and MA28 over every warehouse.

Usage:
    demand-platform demo --home /tmp/demo && python bench/bench_demo_window.py --home /tmp/demo
"""

import argparse
import sys
from pathlib import Path

import duckdb

QUERY = """
WITH f AS (
    SELECT sku, warehouse_id, CAST(origin_date AS DATE) AS o, CAST(target_date AS DATE) AS t, forecast, p50
    FROM forecasts
    WHERE CAST(origin_date AS DATE) BETWEEN $first AND $last_origin AND CAST(target_date AS DATE) <= $last_day
),
s AS (SELECT sku, warehouse_id, CAST(date AS DATE) AS d, greatest(quantity, 0) AS q FROM raw_sales),
ma AS (
    SELECT f.sku, f.warehouse_id, f.o, avg(s.q) AS m
    FROM (SELECT DISTINCT sku, warehouse_id, o FROM f) AS f
    JOIN s ON s.sku = f.sku AND s.warehouse_id = f.warehouse_id AND s.d > f.o - 28 AND s.d <= f.o
    GROUP BY ALL
)
SELECT
    sum(abs(f.forecast - a.q)) / sum(a.q) AS wmape_point,
    sum(f.forecast - a.q) / sum(a.q) AS bias_point,
    sum(abs(f.p50 - a.q)) / sum(a.q) AS wmape_p50,
    sum(abs(coalesce(ma.m, 0) - a.q)) / sum(a.q) AS wmape_ma28,
    sum(coalesce(ma.m, 0) - a.q) / sum(a.q) AS bias_ma28,
    count(*) AS sku_days
FROM f
JOIN s AS a ON a.sku = f.sku AND a.warehouse_id = f.warehouse_id AND a.d = f.t
LEFT JOIN ma ON ma.sku = f.sku AND ma.warehouse_id = f.warehouse_id AND ma.o = f.o
"""


def main(argv: list[str] | None = None) -> int:
    """Print the window's scores."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--home", type=Path, required=True, help="the demo's home")
    parser.add_argument("--first", default="2024-12-02", help="first origin")
    parser.add_argument("--last-origin", default="2024-12-29", help="last origin")
    parser.add_argument("--last-day", default="2024-12-30", help="last scored day")
    args = parser.parse_args(argv)
    params = {"first": args.first, "last_origin": args.last_origin, "last_day": args.last_day}
    with duckdb.connect(str(args.home / "warehouse.duckdb"), read_only=True) as con:
        print(con.execute(QUERY, params).df().to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
