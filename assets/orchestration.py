"""Driving Dagster from the CLI: the instance under the platform home, and catch-up runs.

``run_platform`` brings the platform up to date through a day. It is the CLI's path; the daemon's is the
daily schedule. Both record every run in the instance under ``$HOME/dagster``, and by default both go
through the instance's run queue, where the ``duckdb`` pool admits two DuckDB runs at a time, each in
its own process (:mod:`assets.run_queue`: the CLI runs Dagster's queue daemon itself when no daemon
runs on the home). Every connection to the DuckDB file takes one lock (:mod:`demand_platform.dbfile`),
so runs of both paths take turns at each connection instead of failing on DuckDB's own lock.

A catch-up:

1. marks runs of dead processes failed (:func:`assets.recovery.fail_dead_runs`), so a killed run neither
   blocks the run queue's ``duckdb`` pool nor hides a partition;
2. audits the source and, in the same stage of runs, ingests every ``raw_sales`` day that is not
   materialized, whose rows in DuckDB differ from the ingest log (a run killed mid-write), or whose
   source lines changed since it was ingested (late or corrected lines, compared by per-day fingerprint
   over the last ``late_days`` days), one run per contiguous range of at most two warehouses with the
   same days (a box, Dagster's single-run backfill shape; :func:`run_boxes`); a range of more than 100 days (a cold start) is created with one planned event per
   run (:func:`assets.run_queue.one_planned_event_per_run`);
3. for every origin from the first one forecast (or the training day) through ``through`` that has no
   forecasts yet, or whose history changed in step 2: features and tiers, then forecasts; the model of
   ``through - evaluate_days`` is trained (and gated) when it is not trained yet, and each origin is
   served by the model in production at that origin;
4. reconciles across the warehouses every origin whose forecasts are complete in all warehouses and that
   is not reconciled yet or was forecast again in step 3 (``reconciled_forecasts``, runs of contiguous days,
   at most :data:`assets.reconciliation.WAREHOUSE_DAYS_PER_RUN` warehouse-days each: a day of 50 warehouses
   is a run);
5. writes the accuracy report of ``through``;
6. returns a report whose ``ok`` is False when any run failed or any ERROR-severity check failed, which
   the CLI turns into a non-zero exit code.
"""

import contextlib
import datetime as dt
import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from typing import Literal, overload

import dagster as dg
import pandas as pd

from assets.definitions import (
    AUDIT_JOB,
    FEATURES_JOB,
    FORECAST_JOB,
    INGEST_JOB,
    REPORT_JOB,
    TRAIN_JOB,
    build_definitions,
)
from assets.ingestion import PER_PARTITION_METADATA_MAX
from assets.operations import RECONCILE_JOB
from assets.partitions import (
    DATE_DIM,
    DUCKDB_POOL,
    RANGE_END_TAG,
    RANGE_START_TAG,
    box_tags,
    day_box_tags,
    warehouse_keys,
)
from assets.reconciliation import days_per_run
from assets.recovery import fail_dead_runs
from assets.run_queue import (
    PLANNED_SUBSET_ENV,
    InProcessRuns,
    QueuedRuns,
    RunExecutor,
    RunSpec,
    cancel_orphaned_queued_runs,
    one_planned_event_per_run,
)
from demand_platform import columns as C
from demand_platform import dbfile, ingest_log, ingestion, lake, registry, store
from demand_platform.settings import PlatformSettings

# Keep the CLI's output to progress bars and the summary; the runs' logs stay in the instance.
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
#: Days before ``through`` whose source lines are compared with what was ingested (late uploads).
LATE_DAYS = 35
#: Run tag saying why a raw_sales range is ingested again.
REINGEST_TAG = "demand_platform/reingest"
#: raw_sales ranges of more days than this are created with one planned event per run.
PLANNED_PER_RUN_MIN_DAYS = PER_PARTITION_METADATA_MAX
#: How the CLI executes its runs: through the instance's run queue (default) or in its own process.
LAUNCH_QUEUE = "queue"
LAUNCH_IN_PROCESS = "in-process"
LAUNCH_MODES = (LAUNCH_QUEUE, LAUNCH_IN_PROCESS)
#: Partitions (warehouse-days) one features, forecast or report run covers at most: the tick's runs of 25
#: warehouses peaked at 5.9 GiB with 500,000 series (BENCHMARKS.md).
BOX_PARTITIONS_MAX = 25
#: Partitions one raw_sales run covers at most: two warehouses' two years (a cold start's runs). Each
#: run pays a process start and a definitions load (~6 s); one warehouse's two years peak at ~3 GiB.
INGEST_BOX_PARTITIONS_MAX = 1_500
__all__ = ["PLANNED_SUBSET_ENV", "one_planned_event_per_run", "run_platform"]


def instance_yaml(database_runs: int, postgres_url: str | None = None) -> str:
    """The ``dagster.yaml`` of a platform home whose ``duckdb`` pool admits ``database_runs`` runs.

    Args:
        database_runs: The ``duckdb`` pool's limit.
        postgres_url: On the cluster, the PostgreSQL URL of the instance's storage; None: SQLite storage
            under the instance directory.
    """
    storage = (
        ""
        if postgres_url is None
        else f"""\
# The cluster: runs, events and schedules in PostgreSQL, shared by the daemon, the webserver and every
# run and step worker on any machine. dagster-postgres needs the psycopg2 driver.
storage:
  postgres:
    postgres_url: {json.dumps(with_driver(postgres_url, "psycopg2"))}
"""
    )
    return f"""\
# Written by demand-platform: the Dagster instance of one platform home.
{storage}# Embedded DuckDB allows one writer process: every connection takes the platform's file lock first
# (demand_platform.dbfile), held only while the connection is open. Every asset that touches the
# database is in the `{DUCKDB_POOL}` pool (limit {database_runs}, DEMAND_PLATFORM_DATABASE_RUNS): run
# granularity makes the run queue (the daemon, one process) admit that many such runs at a time, whose
# computations overlap between their connections. Op granularity would let steps claim slots themselves,
# which races on this SQLite storage (two steps starting in the same instant both got a single slot
# when we measured it).
run_coordinator:
  module: dagster.core.run_coordinator
  class: QueuedRunCoordinator
  config:
    dequeue_interval_seconds: 2
concurrency:
  pools:
    default_limit: {database_runs}
    granularity: run
  runs:
    max_concurrent_runs: {max(4, database_runs)}
# Runs stuck STARTING, CANCELING or running past 6 hours are failed by the daemon. The default run
# launcher cannot tell whether a STARTED run's process is alive; the platform's dead_run_sensor (and
# the CLI at start) fail the runs of dead processes, so a killed run never holds the pool.
run_monitoring:
  enabled: true
  start_timeout_seconds: 300
  cancel_timeout_seconds: 300
  max_runtime_seconds: 21600
  poll_interval_seconds: 30
# A run that failed for another reason than a failed step (its process was killed) is launched again
# once; steps have their own retry policies for transient errors.
run_retries:
  enabled: true
  max_retries: 1
  retry_on_asset_or_op_failure: false
telemetry:
  enabled: false
"""


def with_driver(url: str, driver: str) -> str:
    """``url`` with the SQLAlchemy ``driver`` of its PostgreSQL dialect (``postgresql+driver://``)."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.split("+")[0] not in ("postgresql", "postgres"):
        raise ValueError(f"not a PostgreSQL URL: {url!r}")
    return f"postgresql+{driver}://{rest}"


def prepare_instance(settings: PlatformSettings) -> dg.DagsterInstance:
    """Create (or open) the Dagster instance of a home, with its ``dagster.yaml``, and its MLflow store.

    Opening both once here creates their SQLite storages before any parallel run can race on them.
    """
    settings.save()
    home = settings.dagster_home
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    cluster = settings.cluster
    wanted = instance_yaml(settings.database_runs, None if cluster is None else cluster.instance_db)
    if not config.exists() or config.read_text() != wanted:
        config.write_text(wanted)
    instance = dg.DagsterInstance.from_config(str(home))
    instance.event_log_storage.set_concurrency_slots(DUCKDB_POOL, settings.database_runs)
    # The MLflow store's tables and experiment too: two training runs creating them at once race on the
    # SQLite migration ("table _alembic_tmp_experiments already exists").
    registry.ModelRegistry(
        tracking_uri=settings.mlflow_uri, artifact_location=settings.mlflow_artifacts
    ).ensure_experiment()
    if cluster is not None:  # the lake's catalog tables and data path, once
        lake.create_lake(settings.database, cluster.lake_data)
    return instance


def parse_partitions(keys: set[str] | list[str]) -> set[tuple[str, dt.date]]:
    """``{"2024-01-01|W1", ...}`` as ``{("W1", date(2024, 1, 1)), ...}``."""
    out = set()
    for key in keys:
        day, _, wh = str(key).partition("|")
        out.add((wh, dt.date.fromisoformat(day)))
    return out


def missing_ranges(
    materialized: set[str], warehouses: list[str], first: dt.date, through: dt.date
) -> list[tuple[str, dt.date, dt.date]]:
    """Per warehouse, the contiguous day ranges in ``[first, through]`` not yet materialized."""
    done = parse_partitions(materialized)
    days = pd.date_range(first, through, freq="D").date
    todo = pd.DataFrame(
        [(wh, day) for wh in warehouses for day in days if (wh, day) not in done],
        columns=[C.WAREHOUSE_ID, C.DATE],
    )
    return ingest_log.contiguous_ranges(todo) if len(todo) else []


@dataclass
class PlatformReport:
    """What a ``run`` did, printed by the CLI.

    Attributes:
        runs: Runs launched.
        failed: Labels of the runs that failed.
        failed_checks: ERROR-severity checks that failed (check name, partition or run).
        recovered: Runs of dead processes marked failed before starting.
        reingested: (warehouse, day, reason) of raw_sales days ingested again.
        tables: Row counts of the DuckDB tables.
        quarantine: Quarantined rows by table and reason.
        accuracy: The overall and per-tier accuracy rows of the last day.
    """

    runs: int = 0
    failed: list[str] = field(default_factory=list)
    failed_checks: list[str] = field(default_factory=list)
    recovered: list[str] = field(default_factory=list)
    reingested: list[tuple[str, dt.date, str]] = field(default_factory=list)
    tables: dict[str, int] = field(default_factory=dict)
    quarantine: pd.DataFrame | None = None
    accuracy: pd.DataFrame | None = None

    @property
    def reingested_changed(self) -> list[tuple[str, dt.date, str]]:
        """The raw_sales days ingested again because they were damaged or their source lines changed."""
        return [r for r in self.reingested if r[2] != ingest_log.REASON_MISSING]

    @property
    def ok(self) -> bool:
        """No run and no ERROR-severity check failed."""
        return not self.failed and not self.failed_checks

    def render(self) -> str:
        """A plain-text summary."""
        lines = [
            f"runs launched: {self.runs}, failed: {len(self.failed)}, "
            f"failed error checks: {len(self.failed_checks)}"
        ]
        lines += [f"  failed: {f}" for f in self.failed]
        lines += [f"  failed check: {c}" for c in self.failed_checks]
        if self.recovered:
            lines.append(f"runs of dead processes marked failed: {', '.join(self.recovered)}")
        if self.reingested:
            summary = pd.DataFrame(self.reingested, columns=["warehouse", "day", "reason"])
            counts = summary[summary["reason"] != ingest_log.REASON_MISSING].groupby("reason").size()
            for reason, n in counts.items():
                lines.append(f"raw_sales days ingested again ({reason}): {n}")
        lines.append("tables in DuckDB:")
        lines += [f"  {name}: {rows:,} rows" for name, rows in self.tables.items()]
        if self.quarantine is not None and len(self.quarantine):
            lines.append("quarantined rows by table and reason:")
            lines += ["  " + row for row in self.quarantine.to_string(index=False).splitlines()]
        if self.accuracy is not None and len(self.accuracy):
            lines.append("accuracy report (forecasts matured by the last day):")
            lines += ["  " + row for row in self.accuracy.to_string(index=False).splitlines()]
        lines.append("status: OK" if self.ok else "status: FAILED")
        return "\n".join(lines)


def run_platform(
    settings: PlatformSettings,
    through: dt.date,
    warehouses: list[str] | None = None,
    progress: bool = False,
    evaluate_days: int = 0,
    late_days: int = LATE_DAYS,
    retrain_every_days: int = 1,
    launch: str = LAUNCH_QUEUE,
) -> PlatformReport:
    """Bring the platform up to date through ``through`` (inclusive) on the configured source.

    See the module docstring for the steps. With ``evaluate_days=0`` (the daily case) the model of
    ``through`` is trained; with ``evaluate_days=N`` the model of ``through - N`` serves every origin
    since, so the report of ``through`` has matured forecasts to score. ``retrain_every_days = n`` trains
    only when the warehouse's latest model is ``n`` or more days older than the training day (the daily
    schedule's cadence; 1 trains every day). ``launch`` is ``"queue"`` (the runs go through the
    instance's run queue, as many at a time as the ``duckdb`` pool admits) or ``"in-process"`` (one
    after the other in this process); see :mod:`assets.run_queue`.
    """
    if retrain_every_days < 1:
        raise ValueError(f"retrain_every_days must be at least 1, got {retrain_every_days}")
    if launch not in LAUNCH_MODES:
        raise ValueError(f"launch must be one of {LAUNCH_MODES}, got {launch!r}")
    settings = settings.covering(through)
    instance = prepare_instance(settings)
    report = PlatformReport(recovered=fail_dead_runs(instance) + cancel_orphaned_queued_runs(instance))
    defs = build_definitions(settings)
    ingest = defs.resolve_job_def(INGEST_JOB)
    partitions_def = ingest.partitions_def
    assert isinstance(partitions_def, dg.MultiPartitionsDefinition)
    all_warehouses = warehouse_keys(partitions_def)
    chosen = warehouses or all_warehouses
    unknown = sorted(set(chosen) - set(all_warehouses))
    if unknown:
        raise ValueError(f"unknown warehouse(s) {unknown}; the source has {all_warehouses}")
    first = dt.date.fromisoformat(
        partitions_def.get_partitions_def_for_dimension(DATE_DIM).get_first_partition_key() or ""
    )
    if through < first:
        raise ValueError(f"--through {through} is before the first partition day {first}")
    # Runs of one stage at a time: as many as the queue admits at once (one in process).
    parallel = settings.database_runs if launch == LAUNCH_QUEUE else 1

    with _executor(launch, settings, defs, instance) as runner:

        def stage(specs: list[RunSpec], desc: str) -> None:
            for outcome in runner.execute(specs, desc, progress):
                report.runs += 1
                if not outcome.success:
                    report.failed.append(outcome.spec.label)
                report.failed_checks.extend(outcome.failed_checks)

        def materialized(asset: str) -> set[tuple[str, dt.date]]:
            return parse_partitions(instance.get_materialized_partitions(dg.AssetKey(asset)))

        # --- raw_sales: missing, damaged and changed days ----------------------------------------------
        late_from = max(first, through - dt.timedelta(days=late_days))
        with dbfile.connect(settings.database) as con:
            state = ingest_log.read_state(con, chosen, first, through)
        source_now = ingestion.day_fingerprints(settings.source, chosen, late_from, through)
        redo = ingest_log.days_to_reingest(
            materialized("raw_sales"), state, source_now, chosen, first, through, changed_since=late_from
        )
        report.reingested = list(redo.itertuples(index=False, name=None))
        ingest_specs = []
        ranges_in = ingest_log.contiguous_ranges(redo) if len(redo) else []
        for whs, start, end in run_boxes(ranges_in, all_warehouses, parallel, INGEST_BOX_PARTITIONS_MAX):
            in_box = redo[redo[C.WAREHOUSE_ID].isin(whs) & redo[C.DATE].between(start, end)]
            (spec,) = box_specs(
                INGEST_JOB, [(whs, start, end)], **{REINGEST_TAG: "; ".join(sorted(set(in_box["reason"])))}
            )
            where = whs[0] if len(whs) == 1 else f"{whs[0]}..{whs[-1]}"
            ingest_specs.append(
                replace(
                    spec,
                    label=f"raw_sales {where} {start}..{end}",
                    planned_per_run=len(whs) * ((end - start).days + 1) > PLANNED_PER_RUN_MIN_DAYS,
                )
            )
        # The audit of the source's small tables and the raw_sales ranges are independent: one stage.
        stage([RunSpec(AUDIT_JOB, {}, "source_audit"), *ingest_specs], "source audit, raw_sales")
        # What was built on these days is built again; a day only re-recorded (an upgraded home) is not.
        changed = redo[~redo["reason"].isin([ingest_log.REASON_MISSING, ingest_log.REASON_UNRECORDED])]

        # --- origins to (re)build ---------------------------------------------------------------------
        train_day = max(first, through - dt.timedelta(days=evaluate_days))
        forecast_done = materialized("forecasts")
        trained = materialized("trained_models")
        origins: dict[str, set[dt.date]] = {}
        for wh in chosen:
            done_days = sorted(d for w, d in forecast_done if w == wh)
            trained_days = sorted(d for w, d in trained if w == wh)
            begin = min([train_day, *done_days[:1], *trained_days[:1]])
            wanted = {d for d in pd.date_range(begin, through, freq="D").date if (wh, d) not in forecast_done}
            # Late or repaired history: every materialized origin from the first changed day on reads it.
            changed_days = changed.loc[changed[C.WAREHOUSE_ID] == wh, C.DATE]
            if len(changed_days):
                wanted |= {d for d in done_days if d >= min(changed_days)}
            origins[wh] = {d for d in wanted if d >= begin}
        boxes = pd.DataFrame(
            [(wh, d) for wh, days in origins.items() for d in sorted(days)], columns=[C.WAREHOUSE_ID, C.DATE]
        )
        ranges = ingest_log.contiguous_ranges(boxes) if len(boxes) else []
        recent = train_day - dt.timedelta(days=retrain_every_days)
        to_train = [wh for wh in chosen if not any(w == wh and recent < d <= train_day for w, d in trained)]
        origin_boxes = run_boxes(ranges, all_warehouses, parallel)
        steps = [
            (FEATURES_JOB, origin_boxes),
            (TRAIN_JOB, run_boxes([(wh, train_day, train_day) for wh in to_train], all_warehouses, parallel)),
            (FORECAST_JOB, origin_boxes),
        ]
        for job_name, job_boxes in steps:
            stage(box_specs(job_name, job_boxes), job_name)
        # --- reconciliation: every day whose forecasts are complete in all warehouses -----------------
        days = reconcile_days(
            materialized("forecasts"),
            {
                dt.date.fromisoformat(k)
                for k in instance.get_materialized_partitions(dg.AssetKey(C.RECONCILED_FORECASTS))
            },
            {d for rebuilt in origins.values() for d in rebuilt},
            all_warehouses,
        )
        max_days = days_per_run(len(all_warehouses))
        stage(
            [
                RunSpec(
                    RECONCILE_JOB,
                    {RANGE_START_TAG: start.isoformat(), RANGE_END_TAG: end.isoformat()},
                    f"{RECONCILE_JOB} {start}..{end}",
                )
                for start, end in day_ranges(days, max_days)
            ],
            RECONCILE_JOB,
        )
        stage(
            box_specs(
                REPORT_JOB, run_boxes([(wh, through, through) for wh in chosen], all_warehouses, parallel)
            ),
            REPORT_JOB,
        )
    report.tables, report.quarantine = table_summary(settings)
    report.accuracy = accuracy_summary(settings, through)
    return report


@contextlib.contextmanager
def _executor(
    launch: str, settings: PlatformSettings, defs: dg.Definitions, instance: dg.DagsterInstance
) -> Iterator[RunExecutor]:
    """The executor of a catch-up's runs; the queue's code server sees the settings through its environment."""
    if launch == LAUNCH_IN_PROCESS:
        yield InProcessRuns(defs, instance, QUIET)
        return
    wanted = {**settings.to_env(), "DAGSTER_HOME": str(settings.dagster_home)}
    before = {name: os.environ.get(name) for name in wanted}
    os.environ.update(wanted)
    try:
        with QueuedRuns(instance, QUIET) as runner:
            yield runner
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def run_boxes(
    ranges: Iterable[tuple[str, dt.date, dt.date]],
    all_warehouses: list[str],
    parallel: int = 1,
    max_partitions: int = BOX_PARTITIONS_MAX,
) -> list[tuple[list[str], dt.date, dt.date]]:
    """Boxes of runs covering ``(warehouse, start, end)`` ranges in as few runs as the bounds allow.

    Warehouses with the same day range that are contiguous in key order share a run (a box of those days
    x those warehouses). A run covers at most ``max_partitions`` partitions (memory: what a run holds at
    once) and at most ``ceil(n / parallel)`` of the ``n`` warehouses of that range, so the stage spreads
    over ``parallel`` runs at once; a range longer than ``max_partitions`` days is one run of its
    warehouse. Returns ``(warehouses, start, end)`` per run.
    """
    by_range: dict[tuple[dt.date, dt.date], list[str]] = {}
    for wh, start, end in ranges:
        by_range.setdefault((start, end), []).append(wh)
    out = []
    for (start, end), whs in sorted(by_range.items()):
        days = (end - start).days + 1
        size = max(1, min(max_partitions // days, -(-len(whs) // parallel)))
        for box in day_boxes(start, whs, all_warehouses, as_tags=False):
            out += [(box[i : i + size], start, end) for i in range(0, len(box), size)]
    return out


def reconcile_days(
    forecast_done: set[tuple[str, dt.date]],
    reconciled_done: set[dt.date],
    rebuilt: set[dt.date],
    all_warehouses: list[str],
) -> list[dt.date]:
    """The origins to reconcile: forecast in every warehouse, and not reconciled yet or forecast again now.

    Args:
        forecast_done: Materialized ``forecasts`` partitions as ``(warehouse, day)``.
        reconciled_done: Materialized ``reconciled_forecasts`` days.
        rebuilt: Origins this catch-up forecast (again).
        all_warehouses: Every warehouse key.
    """
    by_day: dict[dt.date, set[str]] = {}
    for wh, day in forecast_done:
        by_day.setdefault(day, set()).add(wh)
    complete = {day for day, whs in by_day.items() if whs >= set(all_warehouses)}
    return sorted(day for day in complete if day in rebuilt or day not in reconciled_done)


def day_ranges(days: list[dt.date], max_days: int) -> list[tuple[dt.date, dt.date]]:
    """Sorted ``days`` as contiguous ranges of at most ``max_days`` days (one run each)."""
    out: list[tuple[dt.date, dt.date]] = []
    for day in sorted(days):
        if out and day == out[-1][1] + dt.timedelta(days=1) and (day - out[-1][0]).days < max_days:
            out[-1] = (out[-1][0], day)
        else:
            out.append((day, day))
    return out


def box_specs(
    job_name: str, boxes: list[tuple[list[str], dt.date, dt.date]], **extra_tags: str
) -> list[RunSpec]:
    """One run of ``job_name`` per box, labelled with its first and last partition."""
    specs = []
    for warehouses, start, end in boxes:
        tags = box_tags(start, end, warehouses)
        label = f"{job_name} {tags[RANGE_START_TAG]}..{tags[RANGE_END_TAG]}"
        specs.append(RunSpec(job_name, {**tags, **extra_tags}, label))
    return specs


def accuracy_summary(settings: PlatformSettings, day: dt.date) -> pd.DataFrame:
    """The overall and per-tier rows of the accuracy report of ``day`` (empty when there is none)."""
    with dbfile.connect(settings.database) as con:
        return store.accuracy_summary(con, day)


@overload
def day_boxes(
    day: dt.date, chosen: list[str], all_warehouses: list[str], as_tags: Literal[True] = True
) -> list[dict[str, str]]: ...
@overload
def day_boxes(
    day: dt.date, chosen: list[str], all_warehouses: list[str], as_tags: Literal[False]
) -> list[list[str]]: ...
def day_boxes(
    day: dt.date, chosen: list[str], all_warehouses: list[str], as_tags: bool = True
) -> list[dict[str, str]] | list[list[str]]:
    """Run tags covering one day of the chosen warehouses: one box per contiguous run of keys.

    With ``as_tags=False``, the boxes' warehouse lists instead of their tags.
    """
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
    kept = [box for box in boxes if box]
    return [day_box_tags(day, box) for box in kept] if as_tags else kept


def table_summary(settings: PlatformSettings) -> tuple[dict[str, int], pd.DataFrame]:
    """Row counts of the platform's tables and the quarantine summary."""
    with dbfile.connect(settings.database) as con:
        return store.table_row_counts(con), store.quarantine_summary(con)
