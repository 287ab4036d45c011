"""Benchmark of the vectorised order-up-to replay ``demand_platform.inventory.simulate_policy``.

Synthesises N SKU x warehouse series of D days of intermittent gamma-Poisson demand, lead times drawn
uniformly from 3..7 days and a day-varying order-up-to level (a noisy ``mean * (L + 1) + 1.645 * sd``),
then times ``simulate_policy`` on all N series (median of ``--repeats`` runs, default 3) and prints the
wall time, the cost per SKU-day, the peak RSS and the pooled service metrics as a sanity check.

Usage:
    python bench/bench_inventory.py --skus 500000 --days 90
"""

import argparse
import resource
import statistics
import time

import numpy as np

from demand_platform.inventory import BLOCK_SIZE, simulate_policy


def synth(n_skus: int, n_days: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Demand, order-up-to levels, lead times and initial stock of a synthetic catalogue.

    Args:
        n_skus: Number of series.
        n_days: Number of simulated days.
        seed: Random seed.

    Returns:
        ``demand [n, d]``, ``order_up_to [n, d]``, ``lead_time [n]`` and ``initial_on_hand [n]``.
    """
    rng = np.random.default_rng(seed)
    demand = np.empty((n_skus, n_days))
    levels = np.empty((n_skus, n_days))
    lead_time = rng.integers(3, 8, size=n_skus)
    chunk = 65_536
    for lo in range(0, n_skus, chunk):
        n = min(chunk, n_skus - lo)
        p_demand = rng.beta(1.0, 1.5, size=(n, 1))
        size = rng.gamma(1.5, 2.0, size=(n, 1)) + 0.5
        demand[lo : lo + n] = rng.poisson(size, size=(n, n_days)) * (rng.random((n, n_days)) < p_demand)
        mean = p_demand * size
        sd = np.sqrt(p_demand * (size + size * size) - mean * mean)
        protection = (lead_time[lo : lo + n] + 1)[:, None]
        base = mean * protection + 1.645 * sd * np.sqrt(protection)
        levels[lo : lo + n] = base * rng.uniform(0.8, 1.2, size=(n, n_days))
    return demand, levels, lead_time, levels[:, 0].copy()


def main(argv: list[str] | None = None) -> None:
    """Parses the arguments, runs the benchmark and prints the results.

    Args:
        argv: Command-line arguments (``sys.argv[1:]`` when None).
    """
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--skus", type=int, default=500_000, help="number of SKU x warehouse series")
    parser.add_argument("--days", type=int, default=90, help="number of simulated days")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs (the median is reported)")
    parser.add_argument("--block-size", type=int, default=BLOCK_SIZE, help="SKUs per block of the day loop")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    t0 = time.perf_counter()
    demand, levels, lead_time, initial = synth(args.skus, args.days, args.seed)
    print(f"synthesised {args.skus:,} SKUs x {args.days} days in {time.perf_counter() - t0:.1f} s")

    times = []
    result = None
    for _ in range(args.repeats):
        t1 = time.perf_counter()
        result = simulate_policy(demand, levels, lead_time, initial, warmup=8, block_size=args.block_size)
        times.append(time.perf_counter() - t1)
    assert result is not None
    median = statistics.median(times)
    sku_days = args.skus * args.days
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"simulate_policy: {args.skus:,} SKUs x {args.days} days, block {args.block_size}")
    print(f"  runs            : {', '.join(f'{t:.3f}' for t in times)} s")
    print(f"  median of {args.repeats}     : {median:.3f} s ({median / sku_days * 1e9:.1f} ns per SKU-day)")
    print(f"  peak RSS        : {peak_mb:,.0f} MB")
    print(
        f"  sanity          : fill rate {result.served.sum() / result.demanded.sum():.3f}, "
        f"cycle service {result.cycle_service_level.mean():.3f}, "
        f"avg on hand {result.avg_on_hand.mean():.2f} units"
    )


if __name__ == "__main__":
    main()
