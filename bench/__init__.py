"""The benchmark suite: entry points run from the repository root as modules (``python -m bench.accuracy``).

* ``bench.accuracy``: the platform against peers on a dataset (synthetic, M5, Online Retail).
* ``bench.sweep``: training settings compared on the same origins.
* ``bench.speed``: domain speed by stage (features, models, statistical, report, inventory, lock).
* ``bench.dagster_timing``: Dagster runs of a home (records, a raw_sales backfill, the daily jobs).
* ``bench.tables``: BENCHMARKS.md tables rendered from the JSON the entry points write.
* ``bench.common``: what they share (machine, peak memory, peers, the platform's paths, JSON).

``bench/bench_generate.py`` and ``bench/bench_daily.py`` stay scripts (``python bench/bench_daily.py``).
"""
