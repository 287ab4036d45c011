"""Operating the platform: the daily jobs and schedules, the forecasts freshness check, and alerting.

:func:`build_operations` returns everything as an :class:`Operations` to spread into ``dg.Definitions``;
the alerting sensors (all but ``freshness_sensor`` and ``dead_run_sensor``) need the ``alerts`` resource (:class:`resources.alerts.AlertResource`).

* **Jobs.** ``daily`` materializes the six partitioned assets of one ``date x warehouse`` partition
  (``raw_sales -> feature_table, tier_assignments -> trained_models -> forecasts -> accuracy_report``);
  ``daily_no_train`` is the same without ``trained_models`` (forecasts with the version in production at
  the origin);
  ``retrain`` re-materializes ``trained_models`` and ``forecasts`` of a partition (not
  ``accuracy_report``: a retrain never re-triggers the drift sensor by itself). The jobs run the checks
  of their assets except ``forecasts_freshness`` (which Dagster would otherwise add to every run that
  materializes ``forecasts``); that exclusion names the check, so the ``Definitions`` must hold
  ``Operations.asset_checks`` as well as the jobs.
* **daily_schedule** (06:00 in the company timezone) materializes the whole graph for the previous day
  in two runs per warehouse (or per box of ``warehouses_per_run`` warehouses, a partition range in the
  run's tags): a **forecast run** (``raw_sales .. forecasts``) and an **accuracy_report run** tagged
  ``dagster/priority = -1`` (:data:`REPORT_RUN_PRIORITY`). Every run is in the ``duckdb`` pool (limit
  ``DEMAND_PLATFORM_DATABASE_RUNS``, run granularity), so the queue admits that many at a time, and the
  QueuedRunCoordinator dequeues the highest priority first (FIFO among equals) before it checks the pool:
  every forecast run starts before any report, and warehouse 50's forecasts no longer wait behind 49
  reports for the 08:00 deadline. A report run reads whatever forecasts exist when it starts (its forecast run failed: the
  earlier origins are scored, the recommendations come from the latest origin stored). Retraining
  cadence: with ``retrain_every_days = n``, days whose offset from the first partition is a multiple of
  ``n`` train; on the other days the forecast run leaves out ``trained_models`` (the assets of
  ``daily_no_train`` minus the report). (A Dagster schedule targets a single job: its run requests cannot
  name another job, so both runs are asset subsets of ``daily``, tagged ``demand_platform/retrain``;
  ``daily_no_train`` is there for manual runs.)
* **forecasts_freshness** (asset check on ``forecasts``) fails when a warehouse's forecasts partition of
  the latest *due* day is not materialized, naming the late warehouses (metadata ``late_warehouses``,
  ``checked_day``; a pass also records ``materialized_at``, when the day's last forecasts landed).
  The forecasts of day D are due at ``deadline_hour`` on D + 1; at evaluation time T (company timezone)
  the due day is T - 1 day once T's deadline has passed, T - 2 days before it. So an evaluation after the
  deadline checks yesterday, and a manual one in the morning checks the day before, whose deadline has
  passed, instead of reporting yesterday as late too early. Dagster's built-in freshness checks cannot do
  this per partition on a multi-partitioned asset. :func:`judge_freshness` is the one judgement, made
  by two callers:

  * **freshness_sensor** (every ``freshness_interval_s``, default 300 s, ``DEMAND_PLATFORM_FRESHNESS_INTERVAL_S``)
    judges "now" in the daemon and records the result as a check evaluation of ``forecasts_freshness``
    without a run (``SensorResult(asset_events=[AssetCheckEvaluation])``, stored by the daemon with
    ``report_runless_asset_event``: a check execution with an empty run id). Once the due day is found
    complete it skips until the next day becomes due (its cursor is the last day judged and whether it
    passed), so a day on time is judged once, a late day every interval until its forecasts exist, and
    the check clears the same morning without launching a run per evaluation (a run would wait in the
    queue behind the ``duckdb`` pool and cost a process start). Why 5 minutes: the first judgement after
    the deadline comes at most 5 minutes after it (as the 08:05 schedule did), the "resolved" notice at
    most about 5 minutes after the catch-up finishes, and a late day costs 12 runless evaluations an
    hour (one query of the materialized partitions each; 288 if it never lands before the next deadline),
    a day on time one.
  * **freshness_schedule** (deadline + 5 minutes) runs the check in a run once a day; its job is also the
    one for a manual re-check, with the run config ``as_of`` (ISO datetime, naive means company
    timezone; default: now), see :func:`freshness_run_config`.

* **reconcile_sensor** (every minute) requests a ``reconcile`` run (``reconciled_forecasts``, one day) for
  each of the last 7 days whose ``forecasts`` partitions exist in every warehouse and are newer than the
  day's reconciliation: the daily schedule's forecast runs are per warehouse (or box), so the day is
  reconciled once its last warehouse lands, and again after a retrain forecast it again. The run key names
  the day's latest forecasts materialization, so a set of forecasts is reconciled once. (Dagster's eager
  automation condition does this for the latest day only.)
* **drift_sensor** reads every ``accuracy_report`` materialization since its cursor (a storage id: all
  warehouses landing between two ticks are seen) and, for each partition whose metadata says
  ``drift = True``, requests a ``retrain`` run of that partition (run key
  ``retrain-<partition>-<storage id>``, one per partition and tick) and sends a ``drift`` alert.
* **alert_sensor** watches the execution history of every asset check of the code location (or of the
  checks given to :func:`build_operations`) and sends an alert for each failed execution: kind
  ``data_quality``, severity from the check's; the partition from the execution, else from the run's
  partition tags. The freshness check is judged again and again while a day is late, so it alerts per
  **incident** instead: the first failed execution of a due day (``checked_day``) sends one ``freshness``
  alert (ERROR, naming the late warehouses), however many failures follow, from the sensor or from runs;
  the first passed execution of that day after it sends one ``freshness_resolved`` notice (INFO,
  "freshness restored: forecasts for D materialized in all N warehouses at HH:MM"), to the same
  channels; a later day's lateness is a new incident (:func:`incident_notices`,
  :func:`demand_platform.alerts.incident_transitions`). The incident state (day -> open/resolved, the
  last :data:`demand_platform.alerts.INCIDENT_DAYS` days) is in the sensor's cursor; each notice also has
  a deterministic alert id (``<check>@<day>:open|resolved``), and the ``alerts`` resource does not send
  an id it finds recorded, so a tick that fails after sending or a reset cursor does not notify twice
  (unless the database stays locked for the look-up: then at least once). An incident still open when
  later days become due stays open until a check of its own day passes (a manual re-check with
  ``as_of``) or it is forgotten.
  Its cursor is also, per check, the id of the last execution handled (check execution ids are monotonic;
  event storage ids of check evaluations are not usable as a cursor on SQLite). An execution still in
  progress holds the cursor of its check until it completes, so its result is not missed. On its first
  tick the sensor looks back at most :data:`CHECK_HISTORY_PAGE` executions per check.
* **run_failure_alert_sensor** sends a ``run_failure`` alert for every failed run of the code location.
* **alert_redelivery_sensor** (every minute, :data:`REDELIVERY_INTERVAL_S`) delivers again the alerts
  whose delivery failed (webhook down, SMTP relay unreachable), to the failed channels only, on the
  exponential-backoff ``dagster.RetryPolicy`` of the ``alerts`` resource (8 attempts over about two
  hours by default); a channel given up is logged at CRITICAL and fails the tick, so the Dagster UI shows
  the alert nothing else could carry (:mod:`resources.alerts` says why a sensor and not a job, and why the
  sending sensors do not raise instead). The ``alerts`` table is the outbox; the sensor keeps no cursor.
* **dead_run_sensor** (every minute) marks failed the runs whose process died, which the default run
  launcher's monitoring cannot detect (:mod:`assets.recovery`).

Every schedule and sensor is on by default (``RUNNING``). Alerts are sent from inside the sensor
evaluation, before Dagster stores the new cursor: if a tick fails after sending, the next tick sends
again (at-least-once), except a freshness incident's notice, whose recorded id stops a second one. A
failed delivery does not fail the tick: it is recorded as failed and redelivered by
``alert_redelivery_sensor``, so a webhook down for a minute delays an alert instead of losing it. A drift re-detected on an old partition (e.g. a backfill of ``accuracy_report``)
requests a retrain of that old partition too.
"""

import datetime as dt
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Protocol
from zoneinfo import ZoneInfo

import dagster as dg
from pydantic import Field

from assets.partitions import (
    DATE_DIM,
    RANGE_END_TAG,
    RANGE_START_TAG,
    WAREHOUSE_DIM,
    date_dimension,
    day_box_tags,
    warehouse_keys,
)
from assets.recovery import fail_dead_runs
from demand_platform import alerts as A
from demand_platform.columns import (
    ACCURACY_REPORT,
    FEATURE_TABLE,
    FORECASTS,
    RAW_SALES,
    RECONCILED_FORECASTS,
    TIER_ASSIGNMENTS,
    TRAINED_MODELS,
)
from demand_platform.settings import DEFAULT_FRESHNESS_INTERVAL_S
from resources.alerts import AlertResource


class CheckExecution(Protocol):
    """The fields the alert sensor reads of a check execution record.

    Dagster 1.13 exports no type for the records of ``instance.event_log_storage
    .get_asset_check_execution_history`` (their class lives in ``dagster._core``): this protocol names
    what is read, and the status is compared by its value (``PLANNED``, ``SUCCEEDED``, ``FAILED``).
    """

    @property
    def id(self) -> int: ...

    @property
    def run_id(self) -> str: ...

    @property
    def key(self) -> dg.AssetCheckKey: ...

    @property
    def status(self) -> Enum: ...

    @property
    def partition(self) -> str | None: ...

    @property
    def evaluation(self) -> dg.AssetCheckEvaluation | None: ...


PLANNED = "PLANNED"
FAILED = "FAILED"
SUCCEEDED = "SUCCEEDED"

# --- names -----------------------------------------------------------------------------------------------
PIPELINE_ASSETS = (RAW_SALES, FEATURE_TABLE, TIER_ASSIGNMENTS, TRAINED_MODELS, FORECASTS, ACCURACY_REPORT)
NO_TRAIN_ASSETS = tuple(a for a in PIPELINE_ASSETS if a != TRAINED_MODELS)
RETRAIN_ASSETS = (TRAINED_MODELS, FORECASTS)

DAILY_JOB = "daily"
DAILY_NO_TRAIN_JOB = "daily_no_train"
RETRAIN_JOB = "retrain"
RECONCILE_JOB = "reconcile"

FRESHNESS_CHECK = "forecasts_freshness"
FRESHNESS_CHECK_KEY = dg.AssetCheckKey(dg.AssetKey(FORECASTS), FRESHNESS_CHECK)
# The op of the freshness check is named after the asset key path and the check name (run config).
FRESHNESS_OP = f"{FORECASTS}_{FRESHNESS_CHECK}"
FRESHNESS_SCHEDULE = "freshness_schedule"
FRESHNESS_SENSOR = "freshness_sensor"
DAILY_SCHEDULE = "daily_schedule"
DRIFT_SENSOR = "drift_sensor"
ALERT_SENSOR = "alert_sensor"
RUN_FAILURE_SENSOR = "run_failure_alert_sensor"
DEAD_RUN_SENSOR = "dead_run_sensor"
RECONCILE_SENSOR = "reconcile_sensor"
#: Seconds between two ticks of the reconcile sensor.
RECONCILE_INTERVAL_S = 60
#: Days (the latest partitions) the reconcile sensor watches: a day forecast again within them (a drift
#: retrain, a late repair on the daemon) is reconciled again; older ones are the CLI catch-up's.
RECONCILE_LOOKBACK_DAYS = 7
ALERT_REDELIVERY_SENSOR = "alert_redelivery_sensor"
#: Seconds between two ticks of the alert redelivery sensor.
REDELIVERY_INTERVAL_S = 60

#: Resource key of :class:`resources.alerts.AlertResource`.
ALERTS_RESOURCE = "alerts"

DAILY_CRON = "0 6 * * *"
#: Run tag saying whether a scheduled daily run retrains (``true``/``false``).
RETRAIN_TAG = "demand_platform/retrain"
#: Run tag read by the QueuedRunCoordinator: queued runs are dequeued highest priority first (default 0;
#: FIFO among equals), and only then checked against the ``duckdb`` pool.
PRIORITY_TAG = "dagster/priority"
#: Priority of the scheduled ``accuracy_report`` runs: below the forecast runs (0), so every warehouse's
#: forecasts are dequeued before any report.
REPORT_RUN_PRIORITY = -1
#: Run tag of retrain runs requested by the drift sensor: the accuracy_report storage id that drifted.
DRIFT_SOURCE_TAG = "demand_platform/drift_storage_id"

#: Metadata of the freshness check: the due day judged, and (when it passes) when its last forecasts landed.
CHECKED_DAY_KEY = "checked_day"
MATERIALIZED_AT_KEY = "materialized_at"

#: accuracy_report metadata read by the drift sensor.
DRIFT_KEY = "drift"
DRIFT_REASONS_KEY = "drift_reasons"
DRIFT_METRIC_KEYS = ("wmape", "bias")

#: accuracy_report materializations read per drift sensor tick (the rest on the next tick).
MATERIALIZATION_PAGE = 1000
#: Check executions read per page (and at most, per check, on the alert sensor's first tick).
CHECK_HISTORY_PAGE = 100


class AlertsUndeliverable(RuntimeError):
    """Raised by the alert redelivery sensor when it gives alerts up: the failed tick is their last resort."""


_CHECK_SEVERITY = {dg.AssetCheckSeverity.ERROR: A.ERROR, dg.AssetCheckSeverity.WARN: A.WARNING}


@dataclass
class Operations:
    """Jobs, schedules, sensors and asset checks to add to ``dg.Definitions``.

    Attributes:
        jobs: ``daily``, ``daily_no_train``, ``retrain`` and ``reconcile``.
        schedules: ``daily_schedule`` and ``freshness_schedule``.
        sensors: ``freshness_sensor``, ``drift_sensor``, ``alert_sensor``, ``run_failure_alert_sensor``,
            ``alert_redelivery_sensor``, ``dead_run_sensor`` and ``reconcile_sensor``.
        asset_checks: ``forecasts_freshness``.
    """

    # What dg.define_asset_job returns (a class Dagster does not export).
    jobs: list[Any] = field(default_factory=list)
    schedules: list[dg.ScheduleDefinition] = field(default_factory=list)
    sensors: list[dg.SensorDefinition] = field(default_factory=list)
    asset_checks: list[dg.AssetChecksDefinition] = field(default_factory=list)


class FreshnessConfig(dg.Config):
    """Run config of the freshness check."""

    as_of: str | None = Field(
        default=None,
        description="Evaluation time (ISO datetime; naive means the company timezone). Default: now.",
    )


# --- pure helpers ----------------------------------------------------------------------------------------


def as_of_time(as_of: str | None, timezone: str) -> dt.datetime:
    """The evaluation time in the company timezone: ``as_of`` parsed, or now.

    Args:
        as_of: ISO date or datetime; a naive value is read in ``timezone``.
        timezone: Company timezone (IANA name).

    Returns:
        An aware datetime in ``timezone``.
    """
    tz = ZoneInfo(timezone)
    if not as_of:
        return dt.datetime.now(tz)
    parsed = dt.datetime.fromisoformat(as_of)
    return parsed.replace(tzinfo=tz) if parsed.tzinfo is None else parsed.astimezone(tz)


def due_day(now: dt.datetime, deadline_hour: int) -> dt.date:
    """The latest day whose forecasts are due at ``now``: day D is due at ``deadline_hour`` on D + 1.

    Args:
        now: Evaluation time, in the company timezone.
        deadline_hour: Hour of the daily deadline (0-23).

    Returns:
        ``now``'s date minus one day once today's deadline has passed, minus two days before it.
    """
    back = 1 if now.hour >= deadline_hour else 2
    return now.date() - dt.timedelta(days=back)


def is_training_day(day: dt.date, first_day: dt.date, retrain_every_days: int) -> bool:
    """Whether the daily run of partition day ``day`` retrains the models.

    Args:
        day: Partition day.
        first_day: First partition day (offset 0 always trains).
        retrain_every_days: Cadence in days (1 = every day).

    Returns:
        True when ``(day - first_day)`` is a multiple of ``retrain_every_days``.
    """
    return (day - first_day).days % retrain_every_days == 0


def freshness_run_config(as_of: str | dt.datetime) -> dict[str, Any]:
    """Run config evaluating the freshness check as of a given time (tests, manual re-checks).

    Args:
        as_of: Evaluation time (ISO string or datetime; naive means the company timezone).

    Returns:
        Run config for a job (or ``materialize`` selection) that holds the check.
    """
    value = as_of.isoformat() if isinstance(as_of, dt.datetime) else as_of
    return {"ops": {FRESHNESS_OP: {"config": {"as_of": value}}}}


def _plain(value: Any) -> Any:
    """A metadata value as plain JSON-friendly data (``MetadataValue.value`` unwrapped)."""
    raw = value.value if isinstance(value, dg.MetadataValue) else value
    if isinstance(raw, str | int | float | bool) or raw is None:
        return raw
    if isinstance(raw, list | tuple):
        return [_plain(v) for v in raw]
    if isinstance(raw, dict):
        return {str(k): _plain(v) for k, v in raw.items()}
    return str(raw)


def _truthy(value: Any) -> bool:
    """A metadata flag read leniently (bool, or the strings ``true``/``1``)."""
    raw = _plain(value)
    if isinstance(raw, str):
        return raw.strip().lower() in {"true", "1", "yes"}
    return bool(raw)


def _new_check_executions(storage: Any, key: dg.AssetCheckKey, after_id: int | None) -> list[CheckExecution]:
    """Executions of one check with an id above ``after_id``, oldest first.

    Pages back through the history (newest first) until ``after_id``; with no ``after_id`` only the
    latest page is read.
    """
    out: list[CheckExecution] = []
    before: int | None = None
    while True:
        page = storage.get_asset_check_execution_history(key, limit=CHECK_HISTORY_PAGE, cursor=before)
        fresh = [r for r in page if after_id is None or r.id > after_id]
        out.extend(fresh)
        if after_id is None or len(page) < CHECK_HISTORY_PAGE or len(fresh) < len(page):
            break
        before = page[-1].id
    return sorted(out, key=lambda r: r.id)


def completed_executions(
    records: Sequence[CheckExecution], in_progress: Callable[[str], bool]
) -> tuple[list[CheckExecution], int | None]:
    """The completed (passed or failed) executions among new ones, and how far the cursor may move.

    An execution row is created ``PLANNED`` when its run starts and updated in place (same id) with
    the result, so the cursor must not pass a planned execution whose run is still going: it stops
    there, and the executions after it wait for the next tick. A planned execution whose run has ended
    never got a result (skipped, or the run failed: the run failure sensor reports that) and is passed.
    An evaluation recorded without a run (by ``freshness_sensor``) is complete when it is stored.

    Args:
        records: New executions of one check, oldest first.
        in_progress: Whether the run of a given id is still going.

    Returns:
        The ``SUCCEEDED`` and ``FAILED`` executions before the stop, oldest first, and the id of the last
        execution passed (None when none was).
    """
    done: list[CheckExecution] = []
    watermark: int | None = None
    for record in records:
        if record.status.value == PLANNED and in_progress(record.run_id):
            break
        if record.status.value in (FAILED, SUCCEEDED):
            done.append(record)
        watermark = record.id
    return done, watermark


def failed_executions(
    records: Sequence[CheckExecution], in_progress: Callable[[str], bool]
) -> tuple[list[CheckExecution], int | None]:
    """The failed executions among :func:`completed_executions`, and how far the cursor may move.

    Args:
        records: New executions of one check, oldest first.
        in_progress: Whether the run of a given id is still going.

    Returns:
        The ``FAILED`` executions before the stop, and the id of the last execution passed (None when
        none was).
    """
    done, watermark = completed_executions(records, in_progress)
    return [r for r in done if r.status.value == FAILED], watermark


def read_alert_cursor(cursor: str | None) -> tuple[dict[str, int], dict[str, dict[str, str]]]:
    """The alert sensor's cursor: per check, the last execution id handled; per incident check, its state.

    Cursors written before incidents were tracked (a flat ``{check: id}``) are read as the first part.

    Returns:
        ``(executions, incidents)``: check name -> execution id, and check name -> day -> incident state.
    """
    raw = json.loads(cursor) if cursor else {}
    if "executions" in raw:
        return dict(raw["executions"]), {k: dict(v) for k, v in raw.get("incidents", {}).items()}
    return dict(raw), {}


def write_alert_cursor(executions: Mapping[str, int], incidents: Mapping[str, Mapping[str, str]]) -> str:
    """The alert sensor's cursor (see :func:`read_alert_cursor`)."""
    return json.dumps({"executions": executions, "incidents": incidents}, sort_keys=True)


def _checked_day(record: CheckExecution) -> str | None:
    """The day a freshness execution judged (its ``checked_day`` metadata), or None."""
    evaluation = record.evaluation
    value = evaluation.metadata.get(CHECKED_DAY_KEY) if evaluation is not None else None
    raw = _plain(value) if value is not None else None
    return str(raw) if raw else None


def incident_notices(
    state: Mapping[str, str], records: Sequence[CheckExecution]
) -> tuple[dict[str, str], list[tuple[CheckExecution, str]]]:
    """The freshness incident notices for completed executions of the check, and the state after them.

    One incident per due day (:func:`demand_platform.alerts.incident_transitions`): the first failed
    execution of a day opens it, the first passed execution after that resolves it; the others notify
    nothing. A failed execution without a ``checked_day`` is notified every time.

    Args:
        state: Day -> incident state, from the alert sensor's cursor.
        records: Completed executions of the freshness check, oldest first.

    Returns:
        The new state and ``(execution, OPEN or RESOLVED)`` to notify, in order.
    """
    outcomes = [(_checked_day(r), r.status.value == SUCCEEDED) for r in records]
    new_state, notices = A.incident_transitions(state, outcomes)
    return new_state, [(records[i], notice) for i, notice in notices]


def _resolved_alert(record: CheckExecution, timezone: str) -> tuple[str, str, str, dict[str, Any]]:
    """Kind, severity, subject and details of the notice that a freshness incident is over."""
    evaluation = record.evaluation
    metadata = {k: _plain(v) for k, v in (evaluation.metadata if evaluation else {}).items()}
    day = metadata.get(CHECKED_DAY_KEY)
    landed = metadata.get(MATERIALIZED_AT_KEY) or metadata.get("as_of")
    at = as_of_time(str(landed), timezone).strftime("%H:%M") if landed else "?"
    n = metadata.get("n_warehouses")
    subject = f"freshness restored: forecasts for {day} materialized in all {n} warehouses at {at}"
    details: dict[str, Any] = {
        "check": record.key.to_user_string(),
        "incident": day,
        "run_id": record.run_id,
        "execution_id": record.id,
        "description": evaluation.description if evaluation else None,
        "metadata": metadata,
    }
    return A.FRESHNESS_RESOLVED, A.INFO, subject, details


def _run_in_progress(instance: dg.DagsterInstance, run_id: str) -> bool:
    run = instance.get_run_by_id(run_id)
    return run is not None and not run.is_finished


def _run_partition(instance: dg.DagsterInstance, run_id: str) -> str | None:
    """The partition (or partition range) a run covered, from its tags."""
    run = instance.get_run_by_id(run_id)
    return None if run is None else _partition_of(run.tags)


def _partition_of(tags: Mapping[str, str]) -> str | None:
    if "dagster/partition" in tags:
        return tags["dagster/partition"]
    start, end = (
        tags.get(RANGE_START_TAG),
        tags.get(RANGE_END_TAG),
    )
    return f"{start}..{end}" if start and end else None


def _check_alert(
    record: CheckExecution, run_partition: str | None = None
) -> tuple[str, str, str, dict[str, Any]]:
    """Kind, severity, subject and details of the alert for a failed check execution."""
    evaluation = record.evaluation
    key = record.key
    name = key.to_user_string()
    partition = record.partition or (evaluation.partition if evaluation else None) or run_partition
    description = evaluation.description if evaluation else None
    subject = f"check {name} failed" + (f" on {partition}" if partition else "")
    if description:
        subject += f": {description}"
    details: dict[str, Any] = {
        "check": name,
        "asset": key.asset_key.to_user_string(),
        "check_name": key.name,
        "partition": partition,
        "run_id": record.run_id,
        "execution_id": record.id,
        "description": description,
        "metadata": {k: _plain(v) for k, v in (evaluation.metadata if evaluation else {}).items()},
    }
    severity = _CHECK_SEVERITY.get(evaluation.severity, A.ERROR) if evaluation else A.ERROR
    kind = A.FRESHNESS if key == FRESHNESS_CHECK_KEY else A.DATA_QUALITY
    return kind, severity, subject, details


# --- definitions -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FreshnessVerdict:
    """One judgement of the forecasts' freshness (what the check and the sensor record)."""

    day: dt.date
    passed: bool
    description: str
    metadata: dict[str, Any]


def judge_freshness(
    instance: dg.DagsterInstance,
    now: dt.datetime,
    deadline_hour: int,
    warehouses: Sequence[str],
    first_day: dt.date,
    end_day: dt.date | None,
) -> FreshnessVerdict:
    """Whether every warehouse's forecasts partition of the day due at ``now`` is materialized.

    Args:
        instance: The Dagster instance (its materialized ``forecasts`` partitions).
        now: Evaluation time, in the company timezone.
        deadline_hour: Hour of the daily deadline (day D is due at that hour on D + 1).
        warehouses: The warehouse partition keys.
        first_day: First daily partition.
        end_day: Day after the last daily partition, or None (no end).

    Returns:
        The verdict; its metadata holds ``as_of``, ``checked_day``, ``deadline``, ``late_warehouses``,
        ``n_late``, ``n_warehouses`` and, when it passes, ``materialized_at`` (the latest of that day's
        forecasts materializations, company timezone).
    """
    day = due_day(now, deadline_hour)
    deadline = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(deadline_hour), now.tzinfo)
    base: dict[str, Any] = {
        "as_of": now.isoformat(timespec="seconds"),
        CHECKED_DAY_KEY: day.isoformat(),
        "deadline": deadline.isoformat(timespec="minutes"),
    }
    if day < first_day or (end_day is not None and day >= end_day):
        return FreshnessVerdict(
            day,
            True,
            f"{day} is outside the partitions: nothing due.",
            {**base, "late_warehouses": [], "note": "no forecasts partition on that day"},
        )
    keys = {
        wh: str(dg.MultiPartitionKey({DATE_DIM: day.isoformat(), WAREHOUSE_DIM: wh})) for wh in warehouses
    }
    done = instance.get_materialized_partitions(dg.AssetKey(FORECASTS))
    late = [wh for wh in warehouses if keys[wh] not in done]
    metadata: dict[str, Any] = {
        **base,
        "late_warehouses": dg.MetadataValue.json(late),
        "n_late": len(late),
        "n_warehouses": len(warehouses),
    }
    if late:
        description = (
            f"forecasts for {day} late in {len(late)} of {len(warehouses)} warehouse(s): {', '.join(late)}"
        )
    else:
        description = f"forecasts for {day} materialized in all {len(warehouses)} warehouses"
        latest = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey(FORECASTS), asset_partitions=list(keys.values())),
            limit=1,
        ).records
        if latest:
            landed = dt.datetime.fromtimestamp(latest[0].timestamp, now.tzinfo)
            metadata[MATERIALIZED_AT_KEY] = landed.isoformat(timespec="seconds")
    return FreshnessVerdict(day, not late, description, metadata)


def reconcile_requests(
    instance: dg.DagsterInstance, days: Sequence[str], warehouses: Sequence[str]
) -> list[dg.RunRequest]:
    """Run requests of ``reconciled_forecasts`` for the ``days`` whose forecasts are complete in every
    warehouse and newer than their reconciliation (or not reconciled yet).

    The run key names the day's latest ``forecasts`` materialization (its storage id): a day is requested
    once per set of forecasts (the sensor's run keys are not requested twice), again when forecast again.
    """
    done = instance.get_materialized_partitions(dg.AssetKey(FORECASTS))
    requests = []
    for day in days:
        keys = [str(dg.MultiPartitionKey({DATE_DIM: day, WAREHOUSE_DIM: wh})) for wh in warehouses]
        if not keys or any(key not in done for key in keys):
            continue
        (latest,) = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey(FORECASTS), asset_partitions=keys), limit=1
        ).records
        reconciled = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey(RECONCILED_FORECASTS), asset_partitions=[day]),
            limit=1,
        ).records
        if reconciled and reconciled[0].storage_id > latest.storage_id:
            continue
        requests.append(dg.RunRequest(run_key=f"reconcile-{day}-{latest.storage_id}", partition_key=day))
    return requests


def freshness_evaluation_due(cursor: str | None, day: dt.date) -> bool:
    """Whether ``freshness_sensor`` judges again: not once the due ``day`` was found complete.

    Args:
        cursor: The sensor's cursor (``{"day": ISO date, "passed": bool}`` of its last judgement), or None.
        day: The day due now.
    """
    if not cursor:
        return True
    last = json.loads(cursor)
    return not (last.get("day") == day.isoformat() and last.get("passed"))


def _freshness_check(
    partitions_def: dg.MultiPartitionsDefinition, timezone: str, deadline_hour: int
) -> dg.AssetChecksDefinition:
    date_def = date_dimension(partitions_def)
    warehouses = warehouse_keys(partitions_def)
    first_day = date_def.start.date()
    end_day = date_def.end.date() if date_def.end is not None else None  # exclusive

    @dg.asset_check(
        asset=dg.AssetKey(FORECASTS),
        name=FRESHNESS_CHECK,
        description=(
            f"Fails when a warehouse's forecasts for the latest due day are missing: day D is due at "
            f"{deadline_hour:02d}:00 ({timezone}) on D + 1."
        ),
    )
    def forecasts_freshness(
        context: dg.AssetCheckExecutionContext, config: FreshnessConfig
    ) -> dg.AssetCheckResult:
        """Every warehouse's forecasts partition of the latest due day is materialized."""
        now = as_of_time(config.as_of, timezone)
        verdict = judge_freshness(context.instance, now, deadline_hour, warehouses, first_day, end_day)
        return dg.AssetCheckResult(
            passed=verdict.passed,
            severity=dg.AssetCheckSeverity.ERROR,
            description=verdict.description,
            metadata=verdict.metadata,
        )

    return forecasts_freshness


def _box_request(day: dt.date, box: list[str]) -> dict[str, Any]:
    """How a run request names its partitions: the ``partition_key`` of one warehouse, else the range
    tags of one day x the box (a single-run range)."""
    if len(box) == 1:
        return {"partition_key": dg.MultiPartitionKey({DATE_DIM: day.isoformat(), WAREHOUSE_DIM: box[0]})}
    return {"tags": day_box_tags(day, box)}


def build_operations(
    partitions_def: dg.MultiPartitionsDefinition,
    timezone: str,
    deadline_hour: int = 8,
    retrain_every_days: int = 1,
    watched_checks: Sequence[dg.AssetCheckKey] | None = None,
    pipeline_checks: Sequence[dg.AssetCheckKey] = (),
    warehouses_per_run: int = 1,
    freshness_interval_s: int = DEFAULT_FRESHNESS_INTERVAL_S,
    clock: Callable[[], dt.datetime] | None = None,
) -> Operations:
    """Jobs, schedules, sensors and the freshness check of the platform (see the module docstring).

    Args:
        partitions_def: The ``date x warehouse`` partitions of the pipeline assets.
        timezone: Company timezone of the schedules and of the deadline.
        deadline_hour: Hour (company timezone) by which yesterday's forecasts must exist.
        retrain_every_days: Retraining cadence of the daily schedule (1 = every day).
        watched_checks: Checks whose failures the alert sensor reports; None for every asset check of
            the code location (read from the repository at each tick).
        pipeline_checks: The checks defined with the pipeline assets. The schedule's run requests name
            the ones of their assets: a run request selecting assets would otherwise also run every check
            on them, the freshness check included, judged at run time against the deadline.
        warehouses_per_run: Warehouses one scheduled run covers (one day x that many warehouses, in
            partition order). 1 isolates every warehouse in its own runs; more launch fewer runs (each
            launch costs a Python start and a definitions load) at the price of a box failing or retrying
            as a whole.
        freshness_interval_s: Seconds between two evaluations of ``freshness_sensor`` (the settings'
            ``freshness_interval_s``).
        clock: The time ``freshness_sensor`` judges at (tests); None for now.

    Returns:
        The operations to add to ``dg.Definitions`` (with the ``alerts`` resource).

    Raises:
        ValueError: On a deadline hour outside 0-23, a cadence below 1 or a freshness interval below 1 s.
    """
    if not 0 <= deadline_hour <= 23:
        raise ValueError(f"deadline_hour must be in 0..23, got {deadline_hour}")
    if retrain_every_days < 1:
        raise ValueError(f"retrain_every_days must be at least 1, got {retrain_every_days}")
    if warehouses_per_run < 1:
        raise ValueError(f"warehouses_per_run must be at least 1, got {warehouses_per_run}")
    if freshness_interval_s < 1:
        raise ValueError(f"freshness_interval_s must be at least 1, got {freshness_interval_s}")
    tz = ZoneInfo(timezone)  # fail at load time on an unknown timezone
    date_def = date_dimension(partitions_def)
    warehouses = warehouse_keys(partitions_def)
    first_day = date_def.start.date()
    end_day = date_def.end.date() if date_def.end is not None else None  # exclusive

    freshness_check = _freshness_check(partitions_def, timezone, deadline_hour)
    # A job selecting assets also selects the checks on them: keep the freshness check (evaluated "as of
    # now" by its own schedule) out of the pipeline runs.
    not_freshness = dg.AssetSelection.checks(freshness_check)
    daily_job = dg.define_asset_job(
        DAILY_JOB,
        selection=dg.AssetSelection.assets(*PIPELINE_ASSETS) - not_freshness,
        partitions_def=partitions_def,
        description="One date x warehouse partition of the whole pipeline, training included.",
    )
    no_train_job = dg.define_asset_job(
        DAILY_NO_TRAIN_JOB,
        selection=dg.AssetSelection.assets(*NO_TRAIN_ASSETS) - not_freshness,
        partitions_def=partitions_def,
        description="The daily pipeline without training: forecasts with the versions in production at the origin.",
    )
    retrain_job = dg.define_asset_job(
        RETRAIN_JOB,
        selection=dg.AssetSelection.assets(*RETRAIN_ASSETS) - not_freshness,
        partitions_def=partitions_def,
        description="Retrain the models of a partition and forecast again (requested on drift).",
    )

    reconcile_job = dg.define_asset_job(
        RECONCILE_JOB,
        selection=[RECONCILED_FORECASTS],
        partitions_def=date_def,
        description="Reconcile every warehouse's forecasts of a day across the warehouses.",
    )

    @dg.sensor(
        name=RECONCILE_SENSOR,
        job=reconcile_job,
        minimum_interval_seconds=RECONCILE_INTERVAL_S,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=(
            f"Requests the reconciliation of each of the last {RECONCILE_LOOKBACK_DAYS} days once its "
            "forecasts exist in every warehouse, and again when they are materialized again."
        ),
    )
    def reconcile_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult | dg.SkipReason:
        keys = date_def.get_partition_keys(dynamic_partitions_store=context.instance)
        requests = reconcile_requests(context.instance, keys[-RECONCILE_LOOKBACK_DAYS:], warehouses)
        if not requests:
            return dg.SkipReason("no day with forecasts in every warehouse newer than its reconciliation")
        return dg.SensorResult(run_requests=requests)

    freshness_schedule = dg.ScheduleDefinition(
        name=FRESHNESS_SCHEDULE,
        cron_schedule=f"5 {deadline_hour} * * *",
        execution_timezone=timezone,
        target=dg.AssetSelection.checks(freshness_check),
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description=f"Checks at {deadline_hour:02d}:05 that every warehouse's forecasts of yesterday exist.",
    )

    @dg.sensor(
        name=FRESHNESS_SENSOR,
        minimum_interval_seconds=freshness_interval_s,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=(
            f"Judges the forecasts freshness every {freshness_interval_s} s without a run, recording a "
            f"{FRESHNESS_CHECK} evaluation, until the due day's forecasts exist in every warehouse."
        ),
    )
    def freshness_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult | dg.SkipReason:
        now = (clock() if clock is not None else dt.datetime.now(tz)).astimezone(tz)
        day = due_day(now, deadline_hour)
        if not freshness_evaluation_due(context.cursor, day):
            return dg.SkipReason(
                f"forecasts for {day} found complete; next judgement when {day + dt.timedelta(days=1)} is due"
            )
        verdict = judge_freshness(context.instance, now, deadline_hour, warehouses, first_day, end_day)
        evaluation = dg.AssetCheckEvaluation(
            asset_key=FRESHNESS_CHECK_KEY.asset_key,
            check_name=FRESHNESS_CHECK,
            passed=verdict.passed,
            severity=dg.AssetCheckSeverity.ERROR,
            description=verdict.description,
            metadata=verdict.metadata,
        )
        context.log.info(verdict.description)
        return dg.SensorResult(
            asset_events=[evaluation],
            cursor=json.dumps({"day": verdict.day.isoformat(), "passed": verdict.passed}),
        )

    @dg.schedule(
        name=DAILY_SCHEDULE,
        cron_schedule=DAILY_CRON,
        job=daily_job,
        execution_timezone=timezone,
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description=(
            "For yesterday's partition: one forecast run per warehouse (raw_sales .. forecasts), then one "
            "accuracy_report run per warehouse at a lower dagster/priority."
        ),
    )
    def daily_schedule(context: dg.ScheduleEvaluationContext) -> Iterator[dg.RunRequest | dg.SkipReason]:
        scheduled = context.scheduled_execution_time or dt.datetime.now(ZoneInfo(timezone))
        day = scheduled.astimezone(ZoneInfo(timezone)).date() - dt.timedelta(days=1)
        if day < first_day or (end_day is not None and day >= end_day):
            yield dg.SkipReason(f"{day} is outside the partitions")
            return
        train = is_training_day(day, first_day, retrain_every_days)
        forecast_path = [dg.AssetKey(a) for a in (PIPELINE_ASSETS if train else NO_TRAIN_ASSETS)]
        forecast_path.remove(dg.AssetKey(ACCURACY_REPORT))
        boxes = [
            warehouses[i : i + warehouses_per_run] for i in range(0, len(warehouses), warehouses_per_run)
        ]
        report_path = [dg.AssetKey(ACCURACY_REPORT)]
        for kind, selection, extra in (
            ("daily", forecast_path, {}),
            ("report", report_path, {PRIORITY_TAG: str(REPORT_RUN_PRIORITY)}),
        ):
            for box in boxes:
                target = _box_request(day, box)
                yield dg.RunRequest(
                    run_key=f"{kind}-{day.isoformat()}-{box[0]}" + (f"-{box[-1]}" if len(box) > 1 else ""),
                    asset_selection=selection,
                    asset_check_keys=[k for k in pipeline_checks if k.asset_key in selection],
                    partition_key=target.get("partition_key"),
                    tags={RETRAIN_TAG: str(train).lower(), **extra, **target.get("tags", {})},
                )

    @dg.sensor(
        name=DRIFT_SENSOR,
        job=retrain_job,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Requests a retrain run for every accuracy_report partition flagged with drift.",
    )
    def drift_sensor(
        context: dg.SensorEvaluationContext, alerts: AlertResource
    ) -> dg.SensorResult | dg.SkipReason:
        after = int(context.cursor) if context.cursor else None
        result = context.instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey(ACCURACY_REPORT), after_storage_id=after),
            limit=MATERIALIZATION_PAGE,
            ascending=True,
        )
        if not result.records:
            return dg.SkipReason("no new accuracy_report materialization")
        drifting: dict[str, Any] = {}  # partition -> latest drifting record of this tick
        for record in result.records:
            materialization = record.asset_materialization
            if record.partition_key is None or materialization is None:
                continue
            if _truthy(materialization.metadata.get(DRIFT_KEY)):
                drifting[record.partition_key] = record
            else:
                drifting.pop(record.partition_key, None)  # a later clean report supersedes
        requests = []
        for partition, record in drifting.items():
            metadata = record.asset_materialization.metadata
            run_key = f"retrain-{partition}-{record.storage_id}"
            reasons = _plain(metadata.get(DRIFT_REASONS_KEY)) or []
            details = {
                "partition": partition,
                "storage_id": record.storage_id,
                "run_id": record.run_id,
                "drift_reasons": reasons,
                **{k: _plain(metadata.get(k)) for k in DRIFT_METRIC_KEYS},
                "retrain_run_key": run_key,
            }
            summary = "; ".join(str(r) for r in reasons) if isinstance(reasons, list) else str(reasons)
            alerts.send(
                A.DRIFT,
                A.WARNING,
                f"forecast drift in {partition}, retraining" + (f": {summary}" if summary else ""),
                details,
            )
            requests.append(
                dg.RunRequest(
                    run_key=run_key,
                    partition_key=partition,
                    tags={DRIFT_SOURCE_TAG: str(record.storage_id)},
                )
            )
        return dg.SensorResult(run_requests=requests, cursor=str(result.records[-1].storage_id))

    @dg.sensor(
        name=ALERT_SENSOR,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=(
            "Sends an alert for every failed asset check execution (data quality); for the forecasts "
            "freshness, one alert per late day and one when that day's forecasts are complete."
        ),
    )
    def alert_sensor(context: dg.SensorEvaluationContext, alerts: AlertResource) -> dg.SensorResult:
        state, incidents = read_alert_cursor(context.cursor)
        if watched_checks is not None:
            keys = list(watched_checks)
        elif context.repository_def is not None:
            keys = list(context.repository_def.asset_graph.asset_check_keys)
        else:
            raise dg.DagsterInvariantViolationError(
                f"{ALERT_SENSOR} needs the repository to list the asset checks (or watched_checks)"
            )
        instance = context.instance
        sent = 0
        for key in sorted(keys, key=lambda k: k.to_user_string()):
            name = key.to_user_string()
            records = _new_check_executions(instance.event_log_storage, key, state.get(name))
            done, watermark = completed_executions(records, lambda run_id: _run_in_progress(instance, run_id))
            if key == FRESHNESS_CHECK_KEY:
                incidents[name], notices = incident_notices(incidents.get(name, {}), done)
                for record, notice in notices:
                    day = _checked_day(record)
                    if notice == A.RESOLVED:
                        kind, severity, subject, details = _resolved_alert(record, timezone)
                    else:
                        kind, severity, subject, details = _check_alert(record)
                        details["incident"] = day
                    alert_id = None if day is None else A.incident_alert_id(name, day, notice)
                    alerts.send(kind, severity, subject, details, alert_id=alert_id)
                    sent += 1
            else:
                for record in done:
                    if record.status.value == FAILED:
                        alerts.send(*_check_alert(record, _run_partition(instance, record.run_id)))
                        sent += 1
            if watermark is not None:
                state[name] = watermark
        context.log.info(f"{sent} check alert(s) sent")
        return dg.SensorResult(cursor=write_alert_cursor(state, incidents))

    @dg.run_failure_sensor(
        name=RUN_FAILURE_SENSOR,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Sends an alert for every failed run of the code location.",
    )
    def run_failure_alert_sensor(context: dg.RunFailureSensorContext, alerts: AlertResource) -> None:
        run = context.dagster_run
        partition = _partition_of(run.tags)
        steps = [
            {"step": event.step_key, "error": _root_error(event.step_failure_data.error)}
            for event in context.get_step_failure_events()[:10]
        ]
        alerts.send(
            A.RUN_FAILURE,
            A.ERROR,
            f"run of {run.job_name} failed" + (f" on {partition}" if partition else ""),
            {
                "run_id": run.run_id,
                "job": run.job_name,
                "partition": partition,
                "message": context.failure_event.message,
                "failed_steps": steps,
                "tags": _tags(run.tags),
            },
        )

    @dg.sensor(
        name=ALERT_REDELIVERY_SENSOR,
        minimum_interval_seconds=REDELIVERY_INTERVAL_S,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=(
            "Delivers again the alerts whose delivery failed, to the failed channels only, with exponential "
            "backoff; fails its tick when it gives an alert up."
        ),
    )
    def alert_redelivery_sensor(context: dg.SensorEvaluationContext, alerts: AlertResource) -> dg.SkipReason:
        report = alerts.redeliver()
        summary = report.summary()
        if report.gave_up:
            context.log.critical(summary)
            raise AlertsUndeliverable(summary)
        if report.failed or report.locked is not None:
            context.log.warning(summary)
        elif report.delivered:
            context.log.info(summary)
        return dg.SkipReason(summary)

    @dg.sensor(
        name=DEAD_RUN_SENSOR,
        minimum_interval_seconds=60,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=(
            "Marks failed the runs whose process died (killed, crashed), which the default run launcher "
            "cannot see, so they never hold the duckdb pool; run retries then relaunch them."
        ),
    )
    def dead_run_sensor(context: dg.SensorEvaluationContext) -> dg.SkipReason:
        failed = fail_dead_runs(context.instance)
        if failed:
            context.log.warning(f"runs of dead processes marked failed: {failed}")
            return dg.SkipReason(f"marked failed (dead process): {', '.join(failed)}")
        return dg.SkipReason("no run of a dead process")

    return Operations(
        jobs=[daily_job, no_train_job, retrain_job, reconcile_job],
        schedules=[daily_schedule, freshness_schedule],
        sensors=[
            freshness_sensor,
            drift_sensor,
            alert_sensor,
            run_failure_alert_sensor,
            alert_redelivery_sensor,
            dead_run_sensor,
            reconcile_sensor,
        ],
        asset_checks=[freshness_check],
    )


def _root_error(error: Any) -> str | None:
    """The message of the innermost cause of a serialised error (the user's exception, not Dagster's wrapper)."""
    if error is None:
        return None
    while getattr(error, "cause", None) is not None:
        error = error.cause
    return str(error.message).strip()


def _tags(tags: Mapping[str, str]) -> dict[str, str]:
    """Run tags worth keeping in an alert (Dagster's partition and schedule/sensor tags, ours)."""
    keep = ("dagster/partition", "dagster/schedule_name", "dagster/sensor_name", "dagster/backfill")
    return {k: v for k, v in tags.items() if k.startswith("demand_platform/") or k.startswith(keep)}
