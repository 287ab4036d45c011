"""Driving Dagster from the CLI: the instance under the platform home, and catch-up runs.

``run_platform`` brings the platform up to date through a day: it finds, per warehouse, the days
whose partitions are not materialized yet and launches one run per contiguous range (Dagster's
single-run backfill shape), recorded in the instance under ``$HOME/dagster`` so that ``dagster dev``
on that home shows them.
"""

import datetime as dt
from dataclasses import dataclass, field

import dagster as dg
import duckdb
import pandas as pd
from tqdm import tqdm

from assets.definitions import (
    AUDIT_JOB,
    FEATURES_JOB,
    FORECAST_JOB,
    INGEST_JOB,
    REPORT_JOB,
    TRAIN_JOB,
    build_definitions,
)
from assets.partitions import DATE_DIM, DUCKDB_POOL, WAREHOUSE_DIM, partition_key, range_tags, warehouse_keys
from demand_platform import columns as C
from demand_platform.settings import PlatformSettings

# Keep the CLI's output to progress bars and the summary; the runs' logs stay in the instance.
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}

INSTANCE_YAML = f"""\
# Written by demand-platform: the Dagster instance of one platform home.
# Embedded DuckDB allows one writer. Every asset that touches it is in the `{DUCKDB_POOL}` pool
# (limit 1). Run granularity makes the run queue (the daemon, one process) admit one such run at a
# time. Op granularity would let steps claim slots themselves, which races on this SQLite storage
# (two steps starting in the same instant both got the single slot when we measured it).
run_coordinator:
  module: dagster.core.run_coordinator
  class: QueuedRunCoordinator
  config:
    dequeue_interval_seconds: 2
concurrency:
  pools:
    default_limit: 1
    granularity: run
  runs:
    max_concurrent_runs: 4
telemetry:
  enabled: false
"""


def prepare_instance(settings: PlatformSettings) -> dg.DagsterInstance:
    """Create (or open) the Dagster instance of a home, with its ``dagster.yaml``.

    Opening it once here creates the SQLite storages before any parallel run can race on them.
    """
    settings.save()
    home = settings.dagster_home
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists() or config.read_text() != INSTANCE_YAML:
        config.write_text(INSTANCE_YAML)
    instance = dg.DagsterInstance.from_config(str(home))
    instance.event_log_storage.set_concurrency_slots(DUCKDB_POOL, 1)
    return instance


def missing_ranges(
    materialized: set[str], warehouses: list[str], first: dt.date, through: dt.date
) -> list[tuple[str, dt.date, dt.date]]:
    """Per warehouse, the contiguous day ranges in ``[first, through]`` not yet materialized."""
    out: list[tuple[str, dt.date, dt.date]] = []
    days = pd.date_range(first, through, freq="D").date
    for wh in warehouses:
        start: dt.date | None = None
        prev: dt.date | None = None
        for day in days:
            done = str(dg.MultiPartitionKey({DATE_DIM: day.isoformat(), WAREHOUSE_DIM: wh})) in materialized
            if not done and start is None:
                start = day
            if done and start is not None and prev is not None:
                out.append((wh, start, prev))
                start = None
            prev = day
        if start is not None and prev is not None:
            out.append((wh, start, prev))
    return out


@dataclass
class PlatformReport:
    """What a ``run`` did, printed by the CLI."""

    runs: int = 0
    failed: list[str] = field(default_factory=list)
    tables: dict[str, int] = field(default_factory=dict)
    quarantine: pd.DataFrame | None = None
    accuracy: pd.DataFrame | None = None

    def render(self) -> str:
        """A plain-text summary."""
        lines = [f"runs launched: {self.runs}, failed: {len(self.failed)}"]
        lines += [f"  failed: {f}" for f in self.failed]
        lines.append("tables in DuckDB:")
        lines += [f"  {name}: {rows:,} rows" for name, rows in self.tables.items()]
        if self.quarantine is not None and len(self.quarantine):
            lines.append("quarantined rows by table and reason:")
            lines += ["  " + row for row in self.quarantine.to_string(index=False).splitlines()]
        if self.accuracy is not None and len(self.accuracy):
            lines.append("accuracy report (forecasts matured by the last day):")
            lines += ["  " + row for row in self.accuracy.to_string(index=False).splitlines()]
        return "\n".join(lines)


def run_platform(
    settings: PlatformSettings,
    through: dt.date,
    warehouses: list[str] | None = None,
    progress: bool = False,
    evaluate_days: int = 0,
) -> PlatformReport:
    """Bring the platform up to date through ``through`` (inclusive) on the configured source.

    Audits the source, ingests every raw_sales day not yet materialized, then for the train day
    ``through - evaluate_days``: features and tiers, a trained (and gated) model per warehouse, and
    forecasts from every origin of ``[train day, through]`` with that model; finally the accuracy
    report of ``through``, which scores the forecasts whose targets have matured by then. With
    ``evaluate_days=0`` (the daily case) it trains and forecasts at ``through``.
    """
    instance = prepare_instance(settings)
    defs = build_definitions(settings)
    ingest = defs.resolve_job_def(INGEST_JOB)
    partitions_def = ingest.partitions_def
    assert isinstance(partitions_def, dg.MultiPartitionsDefinition)
    all_warehouses = warehouse_keys(partitions_def)
    chosen = warehouses or all_warehouses
    unknown = sorted(set(chosen) - set(all_warehouses))
    if unknown:
        raise ValueError(f"unknown warehouse(s) {unknown}; the source has {all_warehouses}")
    first = settings.start_date or dt.date.fromisoformat(
        partitions_def.get_partitions_def_for_dimension(DATE_DIM).get_first_partition_key() or ""
    )
    report = PlatformReport()

    def launch(job_name: str, tags: dict[str, str], label: str) -> None:
        result = defs.resolve_job_def(job_name).execute_in_process(
            instance=instance, tags=tags, raise_on_error=False, run_config=QUIET
        )
        report.runs += 1
        if not result.success:
            report.failed.append(label)

    launch(AUDIT_JOB, {}, "source_audit")
    materialized = set(instance.get_materialized_partitions(dg.AssetKey("raw_sales")))
    todo = missing_ranges(materialized, chosen, first, through)
    for wh, start, end in tqdm(todo, desc="raw_sales", unit="run", disable=not progress):
        launch(INGEST_JOB, range_tags(start, end, wh), f"raw_sales {wh} {start}..{end}")
    train_day = through - dt.timedelta(days=evaluate_days)
    steps: list[tuple[str, list[dict[str, str]]]] = [
        (FEATURES_JOB, [range_tags(train_day, through, wh) for wh in chosen]),
        (TRAIN_JOB, day_boxes(train_day, chosen, all_warehouses)),
        (FORECAST_JOB, [range_tags(train_day, through, wh) for wh in chosen]),
        (REPORT_JOB, day_boxes(through, chosen, all_warehouses)),
    ]
    for job_name, boxes in tqdm(steps, desc="pipeline", unit="step", disable=not progress):
        for tags in boxes:
            launch(job_name, tags, f"{job_name} {tags}")
    report.tables, report.quarantine = table_summary(settings)
    report.accuracy = accuracy_summary(settings, through)
    return report


def accuracy_summary(settings: PlatformSettings, day: dt.date) -> pd.DataFrame:
    """The overall and per-tier rows of the accuracy report of ``day`` (empty when there is none)."""
    con = duckdb.connect(str(settings.duckdb_path), read_only=True)
    try:
        names = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
        if "accuracy_report" not in names:
            return pd.DataFrame()
        return con.execute(
            'SELECT warehouse_id, "table", "group", wmape, bias, coverage_p90, coverage_p95, n_obs '
            "FROM accuracy_report WHERE CAST(origin_date AS DATE) = $d AND \"table\" IN ('overall', 'tier') "
            "ORDER BY 1, 2, 3",
            {"d": day},
        ).df()
    finally:
        con.close()


def day_boxes(day: dt.date, chosen: list[str], all_warehouses: list[str]) -> list[dict[str, str]]:
    """Run tags covering one day of the chosen warehouses: one box per contiguous run of keys."""
    boxes: list[list[str]] = []
    wanted = set(chosen)
    for wh in all_warehouses:
        if wh not in wanted:
            if boxes and boxes[-1]:
                boxes.append([])
            continue
        if not boxes:
            boxes.append([])
        boxes[-1].append(wh)
    return [
        {
            "dagster/asset_partition_range_start": str(partition_key(day, box[0])),
            "dagster/asset_partition_range_end": str(partition_key(day, box[-1])),
        }
        for box in boxes
        if box
    ]


def table_summary(settings: PlatformSettings) -> tuple[dict[str, int], pd.DataFrame]:
    """Row counts of the platform's tables and the quarantine summary."""
    con = duckdb.connect(str(settings.duckdb_path), read_only=True)
    try:
        names = [r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()]
        tables = {
            n: int((con.execute(f'SELECT count(*) FROM "{n}"').fetchone() or (0,))[0]) for n in sorted(names)
        }
        quarantine = (
            con.execute(
                f"SELECT {C.SOURCE_TABLE}, {C.REASON}, count(*) AS rows FROM {C.QUARANTINE} "
                "GROUP BY ALL ORDER BY rows DESC"
            ).df()
            if C.QUARANTINE in names
            else pd.DataFrame()
        )
    finally:
        con.close()
    return tables, quarantine
