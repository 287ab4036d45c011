"""Event-log size: what a year of accuracy reports adds to the Dagster instance's storage.

The report writes its metadata (summary, exceptions, charts) into one materialization event per
partition: 50 warehouses x 365 days = 18,250 events a year. This benchmark takes the metadata of a real
``accuracy_report`` materialization from a home (the latest one, as the code that made it wrote it),
then records ``--days`` x ``--warehouses`` materializations carrying that metadata (the partition key
changed, everything else as written) into a fresh Dagster instance configured like the home's
(``dagster.yaml`` copied: SQLite storage), and prints the bytes the instance's storage grew by, per event
and in all, and the seconds it took.

Run it on a home made by the code to measure; a home made by an older commit measures that commit's
metadata (the before/after figures of BENCHMARKS.md come from two such homes).

Usage (from the repository root):
    python -m bench.event_log_size --home /tmp/s24/b1/home --days 365 --warehouses 50 --out /tmp/evlog.json
"""

import argparse
import datetime as dt
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import dagster as dg

from bench.common import command_line, write_json
from demand_platform import columns as C
from demand_platform.settings import HOME_ENV, PlatformSettings

START = dt.date(2024, 1, 1)


def _tree_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def latest_report_metadata(home: Path) -> tuple[str, dict[str, Any]]:
    """The partition key and metadata of the latest ``accuracy_report`` materialization of a home."""
    settings = PlatformSettings.from_env({HOME_ENV: str(home)})
    instance = dg.DagsterInstance.from_config(str(settings.dagster_home))
    records = instance.fetch_materializations(dg.AssetKey(C.ACCURACY_REPORT), limit=1).records
    if not records or records[0].asset_materialization is None:
        raise SystemExit(f"{home} has no {C.ACCURACY_REPORT} materialization")
    materialization = records[0].asset_materialization
    return str(materialization.partition), dict(materialization.metadata)


def measure(home: Path, days: int, warehouses: int) -> dict[str, Any]:
    """Record ``days x warehouses`` report materializations in a fresh instance; the storage growth."""
    partition, metadata = latest_report_metadata(home)
    source_yaml = PlatformSettings.from_env({HOME_ENV: str(home)}).dagster_home / "dagster.yaml"
    with tempfile.TemporaryDirectory(prefix="evlog-") as tmp:
        dagster_home = Path(tmp)
        shutil.copy(source_yaml, dagster_home / "dagster.yaml")
        instance = dg.DagsterInstance.from_config(str(dagster_home))
        before = _tree_bytes(dagster_home)
        started = time.perf_counter()
        for d in range(days):
            day = (START + dt.timedelta(days=d)).isoformat()
            for w in range(warehouses):
                instance.report_runless_asset_event(
                    dg.AssetMaterialization(
                        asset_key=C.ACCURACY_REPORT,
                        partition=f"{day}|WH{w + 1:03d}",
                        metadata=metadata,
                    )
                )
        seconds = time.perf_counter() - started
        instance.dispose()
        grown = _tree_bytes(dagster_home) - before
    n_events = days * warehouses
    return {
        "home": str(home),
        "template_partition": partition,
        "metadata_keys": sorted(metadata),
        "days": days,
        "warehouses": warehouses,
        "events": n_events,
        "storage_bytes": grown,
        "bytes_per_event": grown / n_events,
        "seconds": seconds,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--home", type=Path, required=True, help="home with accuracy_report materializations")
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--warehouses", type=int, default=50)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    result = measure(args.home, args.days, args.warehouses)
    print(
        f"template: {result['template_partition']} of {result['home']}; keys {', '.join(result['metadata_keys'])}"
    )
    print(
        f"{result['events']:,} report materializations ({args.days} days x {args.warehouses} warehouses): "
        f"storage +{result['storage_bytes'] / 2**20:,.1f} MiB, {result['bytes_per_event'] / 1024:,.1f} KiB "
        f"per event, {result['seconds']:.0f} s"
    )
    write_json(
        args.out,
        "event_log_size",
        command_line("bench.event_log_size", argv),
        {"home": str(args.home), "days": args.days, "warehouses": args.warehouses},
        result,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
