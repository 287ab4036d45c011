"""Benchmark the synthetic source generator.

Example (full size)::

    python bench/bench_generate.py --skus 10000 --warehouses 50 --days 730 --out /tmp/source_full

Prints rows per table, seconds, transaction rows per second, peak RSS and the size on disk.
"""

import argparse
import resource
import sys
import tempfile
from pathlib import Path

from demand_platform import columns as C
from demand_platform.synthetic import GeneratorConfig, generate_source


def _parse(argv: list[str] | None) -> argparse.Namespace:
    defaults = GeneratorConfig()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skus", type=int, default=defaults.n_skus)
    parser.add_argument("--warehouses", type=int, default=defaults.n_warehouses)
    parser.add_argument("--days", type=int, default=defaults.days)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--bad-rows", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="output directory (default: a temp dir)")
    parser.add_argument("--progress", action="store_true", help="show a progress bar over warehouses")
    return parser.parse_args(argv)


def _peak_rss_mb() -> float:
    """Peak resident set size of this process in MiB (ru_maxrss is KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1024**2 if sys.platform == "darwin" else peak / 1024


def main(argv: list[str] | None = None) -> None:
    """Run :func:`generate_source` once and print the figures.

    Args:
        argv: Command-line arguments (default: ``sys.argv[1:]``).
    """
    args = _parse(argv)
    config = GeneratorConfig(
        n_skus=args.skus,
        n_warehouses=args.warehouses,
        days=args.days,
        seed=args.seed,
        bad_rows=args.bad_rows,
    )
    out = args.out or Path(tempfile.mkdtemp(prefix="synthetic_source_"))
    summary = generate_source(out, config, progress=args.progress)

    print(f"config: {config}")
    print(f"out: {summary.out_dir}")
    for table, rows in summary.rows.items():
        size_mb = summary.files[table].stat().st_size / 1024**2
        print(f"  {table:<20} {rows:>14,d} rows  {size_mb:>10.1f} MiB")
    transactions = summary.rows[C.TRANSACTIONS]
    series_days = config.n_skus * config.n_warehouses * config.days
    print(f"transaction lines: {transactions:,d} ({transactions / series_days:.3f} per SKU-warehouse-day)")
    print(f"seconds: {summary.seconds:.1f}")
    print(f"rows/s: {summary.rows_per_second:,.0f}")
    print(f"peak RSS: {_peak_rss_mb():,.0f} MiB")


if __name__ == "__main__":
    main()
