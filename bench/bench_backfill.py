"""Benchmark: a 2-year backfill of raw_sales, then the features of one origin, through Dagster.

Runs the CLI's path (``run_platform``): one run per warehouse over all its days (the shape of a
single-run backfill), recorded in a real Dagster instance under a fresh home, then feature_table and
tier_assignments for the last day across the chosen warehouses in one run.

    python bench/bench_backfill.py --source /tmp/synth/src_full --warehouses 5
    python bench/bench_backfill.py --skus 2000 --n-warehouses 4 --days 730   # generates a source first

Prints seconds per stage, the median per warehouse run, rows/s, an extrapolation to every warehouse of
the source, and the peak RSS of this process (Dagster runs in-process here).
"""

import argparse
import datetime as dt
import resource
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import dagster as dg

from assets.definitions import FEATURES_JOB, INGEST_JOB, build_definitions
from assets.orchestration import QUIET, day_boxes, missing_ranges, prepare_instance
from assets.partitions import range_tags, warehouse_keys
from demand_platform import source
from demand_platform.settings import PlatformSettings
from demand_platform.synthetic import GeneratorConfig, generate_source


def main() -> None:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--source", help="existing source directory (else one is generated)")
    parser.add_argument("--skus", type=int, default=2000)
    parser.add_argument("--n-warehouses", type=int, default=4)
    parser.add_argument("--days", type=int, default=730)
    parser.add_argument("--warehouses", type=int, default=None, help="benchmark only the first N warehouses")
    parser.add_argument("--home", default=None, help="reuse this home: days already ingested are skipped")
    parser.add_argument("--feature-days", type=int, default=1, help="origins of the feature run (<= 31)")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench_backfill_"))
    if args.source:
        src = Path(args.source)
    else:
        src = work / "source"
        t0 = time.perf_counter()
        generate_source(
            src, GeneratorConfig(n_skus=args.skus, n_warehouses=args.n_warehouses, days=args.days)
        )
        print(f"generated source in {time.perf_counter() - t0:.1f} s")
    first, last = (d.date() for d in source.transactions_date_range(src))
    home = Path(args.home) if args.home else work / "home"
    settings = PlatformSettings(home=home, source=src, start_date=first, end_date=last)
    instance = prepare_instance(settings)
    defs = build_definitions(settings)
    partitions_def = defs.get_assets_def("raw_sales").partitions_def
    assert isinstance(partitions_def, dg.MultiPartitionsDefinition)
    all_wh = warehouse_keys(partitions_def)
    chosen = all_wh[: args.warehouses] if args.warehouses else all_wh
    days = (last - first).days + 1
    print(
        f"source {src}: {len(all_wh)} warehouses, {days} days ({first}..{last}); benchmarking {len(chosen)}"
    )

    ingest = defs.resolve_job_def(INGEST_JOB)
    per_run = []
    rows = 0
    t_all = time.perf_counter()
    done = set(instance.get_materialized_partitions(dg.AssetKey("raw_sales")))
    for wh, start, end in missing_ranges(done, chosen, first, last):
        t0 = time.perf_counter()
        result = ingest.execute_in_process(
            instance=instance, tags=range_tags(start, end, wh), run_config=QUIET
        )
        per_run.append(time.perf_counter() - t0)
        events = result.get_asset_materialization_events()
        rows += sum(int(e.materialization.metadata["rows"].value) for e in events)  # type: ignore[arg-type]
        print(f"  raw_sales {wh}: {per_run[-1]:.1f} s, {len(events)} partitions")
    ingest_s = time.perf_counter() - t_all
    median = statistics.median(per_run) if per_run else float("nan")
    print(
        f"raw_sales backfill: {ingest_s:.1f} s for {len(chosen)} warehouses x {days} days "
        f"({len(chosen) * days} partitions, {rows:,} rows, {rows / ingest_s:,.0f} rows/s); "
        f"median {median:.1f} s per warehouse run; extrapolated to {len(all_wh)} warehouses: "
        f"{median * len(all_wh) / 60:.1f} min"
    )

    features = defs.resolve_job_def(FEATURES_JOB)
    t0 = time.perf_counter()
    if args.feature_days <= 1:
        boxes = day_boxes(last, chosen, all_wh)
    else:  # the shape of a feature backfill run: one warehouse, up to 31 origins
        boxes = [range_tags(last - dt.timedelta(days=args.feature_days - 1), last, wh) for wh in chosen]
    for tags in boxes:
        assert features.execute_in_process(instance=instance, tags=tags, run_config=QUIET).success
    feat_s = time.perf_counter() - t0
    print(
        f"feature_table + tier_assignments for {args.feature_days} origin(s) up to {last} across "
        f"{len(chosen)} warehouses: {feat_s:.1f} s ({feat_s / len(chosen):.2f} s per warehouse; "
        f"extrapolated to {len(all_wh)}: {feat_s / len(chosen) * len(all_wh) / 60:.1f} min)"
    )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 / 1024
    print(f"peak RSS {peak:.2f} GiB; finished at {dt.datetime.now():%Y-%m-%d %H:%M}")
    if not args.home:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
