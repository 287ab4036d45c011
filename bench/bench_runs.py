"""Where the time of a platform home's Dagster runs went: wall seconds per job, from the run records.

Run after ``demand-platform run`` (or the daily schedule) on a home: every run is recorded in the
home's Dagster instance with its job, tags, status and start/end times. This prints, per job, the
number of runs, failures, total / median / max wall seconds and the span from the first start to the
last end, then the per-warehouse training seconds the ``trained_models`` table keeps (the domain
``train_warehouse`` call alone, without registry and Dagster overhead), and the row counts of the
model tables.

    demand-platform run --source SRC --home HOME --through 2024-12-30
    python bench/bench_runs.py --home HOME
"""

import argparse
import statistics
from collections import defaultdict
from pathlib import Path

import dagster as dg
import duckdb

from demand_platform.settings import HOME_ENV, PlatformSettings


def main() -> None:
    """Print the figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--home", required=True, help="platform home (as given to demand-platform run)")
    args = parser.parse_args()
    settings = PlatformSettings.from_env({HOME_ENV: str(Path(args.home))})
    instance = dg.DagsterInstance.from_config(str(settings.dagster_home))

    by_job: dict[str, list[float]] = defaultdict(list)
    failed: dict[str, int] = defaultdict(int)
    first: dict[str, float] = {}
    last: dict[str, float] = {}
    for record in instance.get_run_records():
        run = record.dagster_run
        if record.start_time is None or record.end_time is None:
            continue
        job = run.job_name
        by_job[job].append(record.end_time - record.start_time)
        failed[job] += run.status != dg.DagsterRunStatus.SUCCESS
        first[job] = min(first.get(job, record.start_time), record.start_time)
        last[job] = max(last.get(job, record.end_time), record.end_time)

    print(f"{'job':<20} {'runs':>6} {'failed':>6} {'total s':>9} {'median s':>9} {'max s':>8} {'span s':>8}")
    for job in sorted(by_job, key=lambda j: first[j]):
        seconds = by_job[job]
        print(
            f"{job:<20} {len(seconds):>6} {failed[job]:>6} {sum(seconds):>9.1f} "
            f"{statistics.median(seconds):>9.2f} {max(seconds):>8.1f} {last[job] - first[job]:>8.1f}"
        )
    if by_job:
        print(
            f"all jobs: {min(first.values()):.0f} .. {max(last.values()):.0f} = "
            f"{max(last.values()) - min(first.values()):.0f} s wall"
        )

    with duckdb.connect(str(settings.duckdb_path), read_only=True) as con:
        tables = {
            name for (name,) in con.execute("select table_name from information_schema.tables").fetchall()
        }
        if "trained_models" in tables:
            rows = con.execute(
                "select warehouse_id, train_seconds, promoted from trained_models order by train_seconds"
            ).fetchall()
            train = [r[1] for r in rows]
            print(
                f"train_warehouse (domain) over {len(train)} warehouses: total {sum(train):.1f} s, "
                f"median {statistics.median(train):.2f} s, max {max(train):.1f} s; "
                f"promoted {sum(bool(r[2]) for r in rows)}"
            )
        for name in ("raw_sales", "feature_table", "tier_assignments", "forecasts", "accuracy_report"):
            if name in tables:
                (count,) = con.execute(f"select count(*) from {name}").fetchone() or (0,)
                print(f"{name}: {count:,} rows")


if __name__ == "__main__":
    main()
