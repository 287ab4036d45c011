"""The daily pipeline of one day through Dagster at full size: features, training, forecasts, report.

Runs the jobs ``demand-platform run`` launches after ingestion, the same way (in-process runs recorded in
the home's Dagster instance, one run per warehouse for features and forecasts, one run over the day's
warehouses for training and for the report), on a home whose ``raw_sales`` is already ingested through
the day, and prints the wall seconds of every job, the per-warehouse seconds, and the process's peak
RSS. ``--threads`` sets ``trained_models``' LightGBM threads (run config), ``--repeats`` repeats the
chosen jobs (medians printed); a training run registers new model versions that the gate compares with
the current production ones, as a retrain would.

    demand-platform run --source /tmp/full/src --home /tmp/full/home --through 2024-12-30
    python bench/bench_pipeline_dagster.py --home /tmp/full/home --day 2024-12-30 --jobs train --threads 2
    python bench/bench_pipeline_dagster.py --home /tmp/full/home --day 2024-12-30 --jobs features forecast
"""

import argparse
import datetime as dt
import resource
import statistics
import time
from pathlib import Path

from assets.definitions import FEATURES_JOB, FORECAST_JOB, REPORT_JOB, TRAIN_JOB, build_definitions
from assets.orchestration import QUIET, day_boxes, prepare_instance
from assets.partitions import range_tags, warehouse_keys
from demand_platform.settings import HOME_ENV, PlatformSettings

JOBS = {"features": FEATURES_JOB, "train": TRAIN_JOB, "forecast": FORECAST_JOB, "report": REPORT_JOB}
PER_WAREHOUSE = {FEATURES_JOB, FORECAST_JOB}


def main() -> None:
    """Run the chosen jobs and print their figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--home", required=True, help="platform home with raw_sales ingested through --day")
    parser.add_argument("--day", required=True, type=dt.date.fromisoformat, help="origin / training day")
    parser.add_argument("--jobs", nargs="+", choices=list(JOBS), default=list(JOBS))
    parser.add_argument("--warehouses", type=int, default=None, help="only the first N warehouses")
    parser.add_argument("--threads", type=int, default=None, help="LightGBM threads of trained_models")
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()

    settings = PlatformSettings.from_env({HOME_ENV: str(Path(args.home))})
    instance = prepare_instance(settings)
    defs = build_definitions(settings)
    partitions_def = defs.resolve_job_def(TRAIN_JOB).partitions_def
    all_warehouses = warehouse_keys(partitions_def)  # type: ignore[arg-type]
    chosen = all_warehouses[: args.warehouses] if args.warehouses else all_warehouses
    run_config: dict = dict(QUIET)
    if args.threads is not None:
        run_config["ops"] = {"trained_models": {"config": {"num_threads": args.threads}}}
    print(f"home {settings.home}, day {args.day}, {len(chosen)} warehouses, jobs {args.jobs}", flush=True)

    for name in args.jobs:
        job_name = JOBS[name]
        boxes = (
            [range_tags(args.day, args.day, wh) for wh in chosen]
            if job_name in PER_WAREHOUSE
            else day_boxes(args.day, chosen, all_warehouses)
        )
        job = defs.resolve_job_def(job_name)
        walls = []
        for _ in range(args.repeats):
            started = time.perf_counter()
            runs: list[float] = []
            failed = 0
            for tags in boxes:
                t0 = time.perf_counter()
                result = job.execute_in_process(
                    instance=instance,
                    tags=tags,
                    raise_on_error=False,
                    run_config=run_config if job_name == TRAIN_JOB else QUIET,
                )
                runs.append(time.perf_counter() - t0)
                failed += not result.success
            walls.append(time.perf_counter() - started)
            print(
                f"{name}: {len(runs)} runs, {failed} failed, {walls[-1]:.1f} s wall, "
                f"{walls[-1] / len(chosen):.2f} s per warehouse, runs median {statistics.median(runs):.2f} s",
                flush=True,
            )
        if args.repeats > 1:
            print(f"{name}: median of {args.repeats}: {statistics.median(walls):.1f} s", flush=True)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    print(f"peak RSS of this process: {peak:.2f} GiB")


if __name__ == "__main__":
    main()
