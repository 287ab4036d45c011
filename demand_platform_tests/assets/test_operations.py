"""Operations on fake pipeline assets: freshness check, schedules, drift/alert/run-failure sensors.

The six pipeline assets are stand-ins with the platform's names and partitions (3 days x 2
warehouses); webhook deliveries go to a real HTTP server on 127.0.0.1.
"""

import contextlib
import datetime as dt
import http.server
import json
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from zoneinfo import ZoneInfo

import dagster as dg
import duckdb
import pandas as pd
import pytest
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus

from assets.operations import (
    ACCURACY_REPORT,
    ALERT_REDELIVERY_SENSOR,
    ALERT_SENSOR,
    DAILY_JOB,
    DAILY_NO_TRAIN_JOB,
    DAILY_SCHEDULE,
    DEAD_RUN_SENSOR,
    DRIFT_SENSOR,
    FRESHNESS_CHECK,
    FRESHNESS_CHECK_KEY,
    FRESHNESS_OP,
    FRESHNESS_SCHEDULE,
    FRESHNESS_SENSOR,
    NO_TRAIN_ASSETS,
    PIPELINE_ASSETS,
    PRIORITY_TAG,
    RECONCILE_JOB,
    RECONCILE_SENSOR,
    REPORT_RUN_PRIORITY,
    RETRAIN_JOB,
    RETRAIN_TAG,
    RUN_FAILURE_SENSOR,
    Operations,
    build_operations,
    completed_executions,
    due_day,
    failed_executions,
    freshness_evaluation_due,
    freshness_run_config,
    incident_notices,
    read_alert_cursor,
    write_alert_cursor,
)
from demand_platform import alerts as A
from demand_platform import columns as C
from demand_platform.settings import (
    DEFAULT_FRESHNESS_INTERVAL_S,
    FRESHNESS_INTERVAL_ENV,
    HOME_ENV,
    PlatformSettings,
)
from resources.alerts import AlertResource, alert_resource_from_env

TZ = "Europe/Paris"
WAREHOUSES = ["W1", "W2"]
DQ_CHECK = "rejected_share_at_most_5pct"
pytestmark = pytest.mark.timeout(60)


# --- fake pipeline ------------------------------------------------------------------------------------------


class RawSalesConfig(dg.Config):
    reject: bool = False


class TrainConfig(dg.Config):
    fail: bool = False


class AccuracyConfig(dg.Config):
    drifting: list[str] = []


def _partitions() -> dg.MultiPartitionsDefinition:
    daily = dg.DailyPartitionsDefinition(start_date="2024-01-01", end_date="2024-01-04", timezone=TZ)
    return dg.MultiPartitionsDefinition(
        {"date": daily, "warehouse": dg.StaticPartitionsDefinition(WAREHOUSES)}
    )


def _fake_assets(partitions_def: dg.MultiPartitionsDefinition) -> list[dg.AssetsDefinition]:
    @dg.asset(
        partitions_def=partitions_def,
        check_specs=[dg.AssetCheckSpec(DQ_CHECK, asset="raw_sales")],
    )
    def raw_sales(config: RawSalesConfig):
        yield dg.MaterializeResult(metadata={"rows": 3})
        yield dg.AssetCheckResult(
            check_name=DQ_CHECK,
            passed=not config.reject,
            severity=dg.AssetCheckSeverity.WARN,
            description="12% of lines rejected" if config.reject else None,
        )

    @dg.asset(partitions_def=partitions_def, deps=[raw_sales])
    def feature_table() -> dg.MaterializeResult:
        return dg.MaterializeResult()

    @dg.asset(partitions_def=partitions_def, deps=[raw_sales])
    def tier_assignments() -> dg.MaterializeResult:
        return dg.MaterializeResult()

    @dg.asset(partitions_def=partitions_def, deps=[feature_table, tier_assignments])
    def trained_models(config: TrainConfig) -> dg.MaterializeResult:
        if config.fail:
            raise RuntimeError("training blew up")
        return dg.MaterializeResult()

    @dg.asset(partitions_def=partitions_def, deps=[trained_models])
    def forecasts(context: dg.AssetExecutionContext) -> pd.DataFrame:
        keys = context.partition_key.keys_by_dimension
        return pd.DataFrame(
            {
                C.SKU: ["A"],
                C.WAREHOUSE_ID: [keys["warehouse"]],
                C.ORIGIN_DATE: [keys["date"]],
                C.FORECAST: [1.0],
            }
        )

    @dg.asset(partitions_def=partitions_def)
    def accuracy_report(
        context: dg.AssetExecutionContext, config: AccuracyConfig, forecasts: pd.DataFrame
    ) -> dg.MaterializeResult:
        warehouse = context.partition_key.keys_by_dimension["warehouse"]
        drift = warehouse in config.drifting
        return dg.MaterializeResult(
            metadata={
                "drift": drift,
                "drift_reasons": dg.MetadataValue.json(["wmape 0.61 > 0.40"] if drift else []),
                "wmape": 0.61 if drift else 0.2,
                "bias": 0.1,
            }
        )

    @dg.asset(
        partitions_def=partitions_def.get_partitions_def_for_dimension("date"),
        deps=[
            dg.AssetDep(
                forecasts,
                partition_mapping=dg.MultiToSingleDimensionPartitionMapping(partition_dimension_name="date"),
            )
        ],
    )
    def reconciled_forecasts() -> dg.MaterializeResult:
        return dg.MaterializeResult()

    return [
        raw_sales,
        feature_table,
        tier_assignments,
        trained_models,
        forecasts,
        accuracy_report,
        reconciled_forecasts,
    ]


# --- fixtures ------------------------------------------------------------------------------------------------


class _Hook(http.server.BaseHTTPRequestHandler):
    received: list[dict]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.received.append(json.loads(body))  # type: ignore[attr-defined]
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def webhook() -> Iterator[tuple[str, list[dict]]]:
    """A real HTTP server on 127.0.0.1 recording the JSON bodies posted to it."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    server.received = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook", server.received  # type: ignore[attr-defined]
    finally:
        server.shutdown()
        server.server_close()


@dataclass
class Tick:
    """What a sensor tick recorded: its check evaluations, its new cursor, why it skipped."""

    evaluations: list[dg.AssetCheckEvaluation]
    cursor: str | None
    skip_message: str | None


class Clock:
    """The time ``freshness_sensor`` judges at, moved by the test."""

    def __init__(self, now: dt.datetime) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now


@dataclass
class Env:
    defs: dg.Definitions
    ops: Operations
    instance: dg.DagsterInstance
    database: Path
    clock: Clock | None = None

    def run(self, day: str, wh: str, job: str = DAILY_JOB, **kwargs) -> dg.ExecuteInProcessResult:
        return self.defs.resolve_job_def(job).execute_in_process(
            partition_key=dg.MultiPartitionKey({"date": day, "warehouse": wh}),
            instance=self.instance,
            **kwargs,
        )

    def freshness(self, as_of: str) -> dg.AssetCheckEvaluation:
        job = self.defs.resolve_job_def(self.defs.resolve_schedule_def(FRESHNESS_SCHEDULE).job_name)
        result = job.execute_in_process(instance=self.instance, run_config=freshness_run_config(as_of))
        (evaluation,) = result.get_asset_check_evaluations()
        return evaluation

    def alerts(self, kind: str | None = None) -> pd.DataFrame:
        con = (
            duckdb.connect(str(self.database), read_only=True) if self.database.exists() else duckdb.connect()
        )
        try:
            return A.read_alerts(con, kind)
        finally:
            con.close()

    def sensor(self, name: str) -> dg.SensorDefinition:
        return self.defs.resolve_sensor_def(name)

    def tick(self, name: str, cursor: str | None = None) -> dg.SensorResult:
        """One evaluation of a sensor (``definitions`` does not hand the resources to the sensor)."""
        context = dg.build_sensor_context(
            instance=self.instance,
            cursor=cursor,
            definitions=self.defs,
            resources={"alerts": self.defs.resources["alerts"]},
        )
        return self.sensor(name).evaluate_tick(context)

    def daemon_tick(self, name: str, cursor: str | None = None) -> "Tick":
        """One evaluation of a sensor, its asset events stored as the daemon stores them."""
        result = self.tick(name, cursor)
        for event in result.asset_events:
            self.instance.report_runless_asset_event(event)
        checks = [e for e in result.asset_events if isinstance(e, dg.AssetCheckEvaluation)]
        return Tick(checks, result.cursor, result.skip_message)  # type: ignore[attr-defined]

    def report(self, day: str, wh: str, asset: str = "forecasts") -> None:
        """Record a materialization without a run (fast set-up for the freshness check)."""
        key = dg.MultiPartitionKey({"date": day, "warehouse": wh})
        self.instance.report_runless_asset_event(dg.AssetMaterialization(asset, partition=key))


@contextlib.contextmanager
def _instance(tmp_path: Path) -> Iterator[dg.DagsterInstance]:
    """A persistent (SQLite) instance in the test's directory: sensors and schedules need one."""
    home = tmp_path / "dagster"
    home.mkdir(parents=True, exist_ok=True)
    with dg.instance_for_test(temp_dir=str(home)) as instance:
        yield instance


@pytest.fixture
def env(tmp_path: Path, webhook: tuple[str, list[dict]]) -> Iterator[Env]:
    partitions_def = _partitions()
    clock = Clock(dt.datetime(2024, 1, 4, 8, 10, tzinfo=ZoneInfo(TZ)))
    ops = build_operations(partitions_def, TZ, deadline_hour=8, freshness_interval_s=300, clock=clock)
    database = tmp_path / "warehouse.duckdb"
    defs = dg.Definitions(
        assets=_fake_assets(partitions_def),
        asset_checks=ops.asset_checks,
        jobs=ops.jobs,
        schedules=ops.schedules,
        sensors=ops.sensors,
        resources={
            "alerts": AlertResource(database=str(database), webhook_url=webhook[0], delivery_timeout_s=5),
            "io_manager": dg.FilesystemIOManager(base_dir=str(tmp_path / "io")),
        },
    )
    with _instance(tmp_path) as instance:
        yield Env(defs, ops, instance, database, clock)


# --- (a) freshness ----------------------------------------------------------------------------------------


def test_due_day_moves_at_the_deadline() -> None:
    tz = ZoneInfo(TZ)
    assert due_day(dt.datetime(2024, 1, 4, 8, 0, tzinfo=tz), 8) == dt.date(2024, 1, 3)
    assert due_day(dt.datetime(2024, 1, 4, 7, 59, tzinfo=tz), 8) == dt.date(2024, 1, 2)


def test_freshness_check_names_the_late_warehouse_then_passes(env: Env) -> None:
    assert env.ops.asset_checks[0].node_def.name == FRESHNESS_OP
    for wh in WAREHOUSES:
        env.report("2024-01-02", wh)
    assert env.run("2024-01-03", "W1").success

    late = env.freshness("2024-01-04T08:30:00")
    assert not late.passed
    assert late.severity == dg.AssetCheckSeverity.ERROR
    assert late.metadata["late_warehouses"].value == ["W2"]
    assert late.metadata["checked_day"].value == "2024-01-03"
    assert "W2" in (late.description or "") and "W1" not in (late.description or "")

    # Before the deadline the latest due day is the day before, which is complete.
    early = env.freshness("2024-01-04T07:30:00")
    assert early.passed and early.metadata["checked_day"].value == "2024-01-02"

    env.report("2024-01-03", "W2")
    fresh = env.freshness("2024-01-04T08:30:00")
    assert fresh.passed and fresh.metadata["late_warehouses"].value == []


def test_freshness_check_is_timezone_aware(env: Env) -> None:
    # 07:30 UTC is 08:30 in Paris: past the deadline, so 2024-01-03 is due.
    evaluation = env.freshness("2024-01-04T07:30:00+00:00")
    assert evaluation.metadata["checked_day"].value == "2024-01-03"
    assert evaluation.metadata["late_warehouses"].value == WAREHOUSES


# --- (b) alert sensor ---------------------------------------------------------------------------------------


def test_alert_sensor_delivers_failed_checks_to_the_webhook(
    env: Env, webhook: tuple[str, list[dict]]
) -> None:
    _, received = webhook
    assert env.run("2024-01-03", "W1").success
    first = env.tick(ALERT_SENSOR)
    assert received == [] and env.alerts().empty  # nothing failed yet

    assert not env.freshness("2024-01-04T09:00:00").passed
    assert env.run(
        "2024-01-03", "W2", run_config={"ops": {"raw_sales": {"config": {"reject": True}}}}
    ).success
    second = env.tick(ALERT_SENSOR, first.cursor)

    texts = sorted(body["text"] for body in received)
    assert len(texts) == 2
    assert f"forecasts:{FRESHNESS_CHECK}" in texts[0] and "W2" in texts[0]
    assert f"raw_sales:{DQ_CHECK}" in texts[1] and "12% of lines rejected" in texts[1]
    assert "2024-01-03|W2" in texts[1]  # the partition of the run, for checks without their own
    assert all(body["blocks"] for body in received)
    table = env.alerts()
    assert sorted(table[A.KIND]) == [A.DATA_QUALITY, A.FRESHNESS]
    freshness = table[table[A.KIND] == A.FRESHNESS].iloc[0]
    assert freshness[A.SEVERITY] == A.ERROR and freshness[A.DETAILS]["check_name"] == FRESHNESS_CHECK
    assert freshness[A.DELIVERED_TO] == {A.WEBHOOK: A.DELIVERED}
    assert table[table[A.KIND] == A.DATA_QUALITY].iloc[0][A.SEVERITY] == A.WARNING

    # Nothing new: no second delivery.
    env.tick(ALERT_SENSOR, second.cursor)
    assert len(received) == 2 and len(env.alerts()) == 2


def _execution(id_: int, status: str, run_id: str = "r") -> SimpleNamespace:
    return SimpleNamespace(id=id_, status=AssetCheckExecutionRecordStatus[status], run_id=run_id)


def test_alert_cursor_waits_for_checks_still_running() -> None:
    records = [
        _execution(1, "FAILED"),
        _execution(2, "SUCCEEDED"),
        _execution(3, "PLANNED", "ended"),  # never got a result: passed
        _execution(4, "PLANNED", "running"),  # result to come: the cursor stops before it
        _execution(5, "FAILED"),
    ]
    failed, watermark = failed_executions(records, lambda run_id: run_id == "running")
    assert [r.id for r in failed] == [1] and watermark == 3
    failed, watermark = failed_executions(records[3:], lambda run_id: False)
    assert [r.id for r in failed] == [5] and watermark == 5
    assert failed_executions([], lambda run_id: False) == ([], None)


# --- (b2) freshness incidents: re-judged by a sensor, one alert per late day, one when it is over ----------


def _texts(received: list[dict]) -> list[str]:
    return [body["text"] for body in received]


def _history(env: Env) -> list[Any]:
    return list(
        env.instance.event_log_storage.get_asset_check_execution_history(FRESHNESS_CHECK_KEY, limit=100)
    )


def test_freshness_sensor_judges_until_the_day_is_complete(env: Env) -> None:
    assert env.clock is not None
    env.report("2024-01-03", "W1")
    first = env.daemon_tick(FRESHNESS_SENSOR)
    (evaluation,) = first.evaluations
    assert not evaluation.passed and "W2" in (evaluation.description or "")
    assert evaluation.metadata["checked_day"].value == "2024-01-03"
    # Stored without a run, as the daemon stores a sensor's asset events.
    (execution,) = _history(env)
    assert execution.status.value == "FAILED" and execution.run_id == ""

    env.clock.now += dt.timedelta(minutes=5)
    second = env.daemon_tick(FRESHNESS_SENSOR, first.cursor)
    assert [e.passed for e in second.evaluations] == [False]

    env.report("2024-01-03", "W2")
    env.clock.now += dt.timedelta(minutes=5)
    third = env.daemon_tick(FRESHNESS_SENSOR, second.cursor)
    (passed,) = third.evaluations
    assert passed.passed and passed.metadata["late_warehouses"].value == []
    assert "materialized_at" in passed.metadata

    # Complete: not judged again that day, nor after midnight (the same day is due until 08:00).
    for minutes in (5, 16 * 60):
        env.clock.now += dt.timedelta(minutes=minutes)
        quiet = env.daemon_tick(FRESHNESS_SENSOR, third.cursor)
        assert quiet.evaluations == [] and quiet.skip_message
    assert len(_history(env)) == 3

    # The next deadline: the next day is judged (here outside the partitions: it passes with a note).
    env.clock.now = dt.datetime(2024, 1, 5, 8, 1, tzinfo=ZoneInfo(TZ))
    (next_day,) = env.daemon_tick(FRESHNESS_SENSOR, third.cursor).evaluations
    assert next_day.passed and next_day.metadata["checked_day"].value == "2024-01-04"


class Ticks:
    """The cursors of the freshness and alert sensors across ticks, as the daemon keeps them."""

    def __init__(self, env: Env) -> None:
        self.env = env
        self.cursors: dict[str, str | None] = {FRESHNESS_SENSOR: None, ALERT_SENSOR: None}

    def __call__(self, name: str) -> Tick:
        result = self.env.daemon_tick(name, self.cursors[name])
        self.cursors[name] = result.cursor
        return result


def test_a_late_day_alerts_once_then_once_when_restored(env: Env, webhook: tuple[str, list[dict]]) -> None:
    """Two late days: one failure alert each however often they fail, one resolved notice each."""
    _, received = webhook
    assert env.clock is not None
    tick = Ticks(env)
    for wh in WAREHOUSES:
        env.report("2024-01-01", wh)

    # 2024-01-02 due (08:05 on the 3rd), nothing there; judged three times, the alert sensor ticking between.
    env.clock.now = dt.datetime(2024, 1, 3, 8, 5, tzinfo=ZoneInfo(TZ))
    for _ in range(3):
        tick(FRESHNESS_SENSOR)
        tick(ALERT_SENSOR)
        env.clock.now += dt.timedelta(minutes=5)
    # A run of the check (its schedule, a manual re-check) failing that day too: the same incident.
    assert not env.freshness("2024-01-03T09:00:00").passed
    tick(ALERT_SENSOR)
    (failure,) = _texts(received)
    assert failure.startswith("[ERROR] freshness: ") and "2024-01-02" in failure
    assert "W1, W2" in failure

    # W1 lands: still late (W2), no new alert; then W2: complete, one resolved notice.
    env.report("2024-01-02", "W1")
    tick(FRESHNESS_SENSOR)
    tick(ALERT_SENSOR)
    assert len(received) == 1
    env.report("2024-01-02", "W2")
    landed = env.instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey("forecasts"), asset_partitions=["2024-01-02|W2"]),
        limit=1,
    ).records[0]
    env.clock.now += dt.timedelta(minutes=5)
    tick(FRESHNESS_SENSOR)
    tick(ALERT_SENSOR)
    at = dt.datetime.fromtimestamp(landed.timestamp, ZoneInfo(TZ)).strftime("%H:%M")
    assert _texts(received)[1:] == [
        f"[INFO] freshness_resolved: freshness restored: forecasts for 2024-01-02 materialized in all 2 "
        f"warehouses at {at}"
    ]

    # Quiet afterwards: the sensor does not judge a complete day again, a passing re-check says nothing.
    for _ in range(2):
        env.clock.now += dt.timedelta(minutes=5)
        tick(FRESHNESS_SENSOR)
        tick(ALERT_SENSOR)
    assert env.freshness("2024-01-03T10:00:00").passed
    tick(ALERT_SENSOR)
    assert len(received) == 2

    # The next day late: a new incident.
    env.clock.now = dt.datetime(2024, 1, 4, 8, 5, tzinfo=ZoneInfo(TZ))
    env.report("2024-01-03", "W2")
    for _ in range(2):
        tick(FRESHNESS_SENSOR)
        tick(ALERT_SENSOR)
        env.clock.now += dt.timedelta(minutes=5)
    assert (
        len(received) == 3
        and "2024-01-03" in received[2]["text"]
        and "late in 1 of 2 warehouse(s): W1" in received[2]["text"]
    )

    table = env.alerts()
    assert list(table[A.KIND]) == [A.FRESHNESS, A.FRESHNESS_RESOLVED, A.FRESHNESS]
    assert list(table[A.SEVERITY]) == [A.ERROR, A.INFO, A.ERROR]
    assert [d["incident"] for d in table[A.DETAILS]] == ["2024-01-02", "2024-01-02", "2024-01-03"]


def test_an_incident_is_not_raised_again_when_the_alert_sensor_forgets_it(
    env: Env, webhook: tuple[str, list[dict]]
) -> None:
    """A cursor lost (a tick that failed after sending, a reset sensor): the recorded id stops a second send."""
    _, received = webhook
    tick = Ticks(env)
    tick(FRESHNESS_SENSOR)
    tick(ALERT_SENSOR)
    assert len(received) == 1
    tick.cursors[ALERT_SENSOR] = None
    tick(ALERT_SENSOR)
    assert len(received) == 1 and len(env.alerts()) == 1


def _freshness_execution(id_: int, status: str, day: str | None) -> SimpleNamespace:
    metadata = {} if day is None else {"checked_day": dg.MetadataValue.text(day)}
    evaluation = dg.AssetCheckEvaluation(
        asset_key=FRESHNESS_CHECK_KEY.asset_key,
        check_name=FRESHNESS_CHECK,
        passed=status == "SUCCEEDED",
        metadata=metadata,
    )
    return SimpleNamespace(
        id=id_,
        status=AssetCheckExecutionRecordStatus[status],
        run_id="",
        key=FRESHNESS_CHECK_KEY,
        partition=None,
        evaluation=evaluation,
    )


def test_incident_notices_from_check_executions() -> None:
    records = [
        _freshness_execution(1, "FAILED", "2024-01-02"),
        _freshness_execution(2, "FAILED", "2024-01-02"),
        _freshness_execution(3, "SUCCEEDED", "2024-01-02"),
        _freshness_execution(4, "FAILED", None),  # no day to key it: alerted as before
        _freshness_execution(5, "SUCCEEDED", "2024-01-03"),  # never failed: nothing to resolve
    ]
    state, notices = incident_notices({}, records)
    assert [(r.id, n) for r, n in notices] == [(1, A.OPEN), (3, A.RESOLVED), (4, A.OPEN)]
    assert state == {"2024-01-02": A.RESOLVED}
    # Continued from the cursor: the day already notified stays quiet.
    again, more = incident_notices(state, [_freshness_execution(6, "FAILED", "2024-01-02")])
    assert more == [] and again == state


def test_completed_executions_keep_passes_for_the_incidents() -> None:
    records = [_execution(1, "FAILED"), _execution(2, "SUCCEEDED"), _execution(3, "PLANNED", "running")]
    done, watermark = completed_executions(records, lambda run_id: run_id == "running")
    assert [r.id for r in done] == [1, 2] and watermark == 2


def test_alert_cursor_reads_the_format_before_incidents() -> None:
    assert read_alert_cursor('{"raw_sales:history_complete": 7}') == ({"raw_sales:history_complete": 7}, {})
    cursor = write_alert_cursor({"a:b": 3}, {"forecasts:forecasts_freshness": {"2024-01-02": A.OPEN}})
    assert read_alert_cursor(cursor) == (
        {"a:b": 3},
        {"forecasts:forecasts_freshness": {"2024-01-02": A.OPEN}},
    )
    assert read_alert_cursor(None) == ({}, {})


def test_freshness_judged_again_unless_the_due_day_was_complete() -> None:
    day = dt.date(2024, 1, 3)
    assert freshness_evaluation_due(None, day)
    assert freshness_evaluation_due(json.dumps({"day": "2024-01-03", "passed": False}), day)
    assert not freshness_evaluation_due(json.dumps({"day": "2024-01-03", "passed": True}), day)
    assert freshness_evaluation_due(json.dumps({"day": "2024-01-02", "passed": True}), day)


def test_freshness_interval_from_the_settings(tmp_path: Path) -> None:
    home = {HOME_ENV: str(tmp_path)}
    assert PlatformSettings.from_env(home).freshness_interval_s == DEFAULT_FRESHNESS_INTERVAL_S
    settings = PlatformSettings.from_env({**home, FRESHNESS_INTERVAL_ENV: "5"})
    assert settings.freshness_interval_s == 5
    assert PlatformSettings.from_env(settings.to_env()).freshness_interval_s == 5  # run workers agree
    with pytest.raises(ValueError, match=FRESHNESS_INTERVAL_ENV):
        PlatformSettings.from_env({**home, FRESHNESS_INTERVAL_ENV: "0"})
    ops = build_operations(_partitions(), TZ, freshness_interval_s=7)
    (sensor,) = [s for s in ops.sensors if s.name == FRESHNESS_SENSOR]
    assert sensor.minimum_interval_seconds == 7


def test_an_alert_with_a_recorded_id_is_not_sent_again(
    tmp_path: Path, webhook: tuple[str, list[dict]]
) -> None:
    url, received = webhook
    resource = AlertResource(database=str(tmp_path / "warehouse.duckdb"), webhook_url=url)
    first = resource.send(A.FRESHNESS, A.ERROR, "late", alert_id="c@2024-01-02:open")
    again = resource.send(A.FRESHNESS, A.ERROR, "late, again", alert_id="c@2024-01-02:open")
    assert len(received) == 1 and again.alert_id == first.alert_id and again.subject == "late"
    # Waiting in the spool (the database was locked when it was recorded) counts as recorded too.
    A.spool_alert(resource.spool_path, A.Alert(A.FRESHNESS, A.ERROR, "spooled", alert_id="c@2024-01-03:open"))
    assert resource.send(A.FRESHNESS, A.ERROR, "late", alert_id="c@2024-01-03:open").subject == "spooled"
    assert len(received) == 1
    resource.send(A.FRESHNESS, A.ERROR, "late")
    resource.send(A.FRESHNESS, A.ERROR, "late")
    assert len(received) == 3  # without an id, every alert is sent


# --- (c) drift sensor --------------------------------------------------------------------------------------


def _report(env: Env, day: str, wh: str, drifting: list[str]) -> None:
    result = env.run(
        day,
        wh,
        asset_selection=[dg.AssetKey(ACCURACY_REPORT)],
        run_config={"ops": {ACCURACY_REPORT: {"config": {"drifting": drifting}}}},
    )
    assert result.success


@pytest.mark.parametrize("drifting", [["W1"], ["W1", "W2"]])
def test_drift_sensor_retrains_every_drifting_partition_once(env: Env, drifting: list[str]) -> None:
    for wh in WAREHOUSES:
        assert env.run("2024-01-02", wh).success  # forecasts exist; accuracy_report without drift
    before = env.tick(DRIFT_SENSOR)
    assert before.run_requests == []

    for wh in WAREHOUSES:  # both warehouses land between two ticks
        _report(env, "2024-01-02", wh, drifting)
    tick = env.tick(DRIFT_SENSOR, before.cursor)
    requested = sorted(r.partition_key for r in tick.run_requests)
    assert requested == [f"2024-01-02|{wh}" for wh in drifting]
    assert all(r.run_key.startswith(f"retrain-{r.partition_key}-") for r in tick.run_requests)
    assert all(r.job_name in (None, RETRAIN_JOB) for r in tick.run_requests)
    drift = env.alerts(A.DRIFT)
    assert sorted(d["partition"] for d in drift[A.DETAILS]) == requested
    assert drift[A.DETAILS].iloc[0]["drift_reasons"] == ["wmape 0.61 > 0.40"]

    again = env.tick(DRIFT_SENSOR, tick.cursor)
    assert again.run_requests == [] and len(env.alerts(A.DRIFT)) == len(drifting)


# --- (d) daily schedule -------------------------------------------------------------------------------------


def _daily_requests(env: Env, when: dt.datetime) -> list[dg.RunRequest]:
    context = dg.build_schedule_context(
        instance=env.instance, scheduled_execution_time=when, repository_def=env.defs.get_repository_def()
    )
    return list(env.defs.resolve_schedule_def(DAILY_SCHEDULE).evaluate_tick(context).run_requests or [])


FORECAST_PATH = {dg.AssetKey(a) for a in PIPELINE_ASSETS if a != ACCURACY_REPORT}


def _forecast_and_report_runs(
    requests: list[dg.RunRequest],
) -> tuple[list[dg.RunRequest], list[dg.RunRequest]]:
    report = [r for r in requests if set(r.asset_selection or []) == {dg.AssetKey(ACCURACY_REPORT)}]
    return [r for r in requests if r not in report], report


def test_daily_schedule_requests_one_run_per_warehouse_for_yesterday(env: Env) -> None:
    """Per warehouse, one forecast run (raw_sales .. forecasts) then one lower-priority report run."""
    schedule = env.defs.resolve_schedule_def(DAILY_SCHEDULE)
    assert schedule.cron_schedule == "0 6 * * *" and schedule.execution_timezone == TZ
    assert schedule.job_name == DAILY_JOB
    requests = _daily_requests(env, dt.datetime(2024, 1, 3, 6, 0, tzinfo=ZoneInfo(TZ)))
    forecast_runs, report_runs = _forecast_and_report_runs(requests)
    assert [r.partition_key for r in forecast_runs] == ["2024-01-02|W1", "2024-01-02|W2"]
    assert [r.partition_key for r in report_runs] == ["2024-01-02|W1", "2024-01-02|W2"]
    assert requests == forecast_runs + report_runs  # every forecast request first
    assert len({r.run_key for r in requests}) == 4
    assert all(set(r.asset_selection or []) == FORECAST_PATH for r in forecast_runs)
    assert all(r.tags[RETRAIN_TAG] == "true" for r in requests)
    # The whole graph every day: the two runs of a warehouse cover the daily job's assets.
    job_assets = env.defs.resolve_job_def(DAILY_JOB).asset_layer.executable_asset_keys
    assert FORECAST_PATH | {dg.AssetKey(ACCURACY_REPORT)} == set(job_assets)
    # Reports below the forecasts in the run queue's priority order (default priority 0).
    assert all(int(r.tags.get(PRIORITY_TAG, "0")) == 0 for r in forecast_runs)
    assert all(int(r.tags[PRIORITY_TAG]) == REPORT_RUN_PRIORITY < 0 for r in report_runs)
    # Outside the partitions: skipped.
    assert _daily_requests(env, dt.datetime(2024, 1, 9, 6, 0, tzinfo=ZoneInfo(TZ))) == []


def test_run_queue_dequeues_forecasts_before_earlier_queued_reports(tmp_path: Path) -> None:
    """On the platform's instance (QueuedRunCoordinator, duckdb pool of 1 at run granularity), queued
    report runs created first still wait for the forecast runs; a running duckdb run blocks everyone.

    Uses the queue daemon's own selection step (``_get_runs_to_dequeue``), without launching runs.
    """
    from dagster._core.remote_origin import (
        InProcessCodeLocationOrigin,
        RemoteJobOrigin,
        RemoteRepositoryOrigin,
    )
    from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
    from dagster._daemon.run_coordinator.queued_run_coordinator_daemon import QueuedRunCoordinatorDaemon

    from assets.orchestration import instance_yaml
    from assets.partitions import DUCKDB_POOL

    @dg.asset(pool=DUCKDB_POOL)
    def in_pool() -> None:
        """A stand-in for a pipeline asset."""

    job = dg.Definitions(assets=[in_pool], jobs=[dg.define_asset_job("j", [in_pool])]).resolve_job_def("j")
    origin = RemoteJobOrigin(
        RemoteRepositoryOrigin(
            InProcessCodeLocationOrigin(LoadableTargetOrigin(python_file=__file__)), "__repository__"
        ),
        "j",
    )
    home = tmp_path / "dagster"
    home.mkdir()
    (home / "dagster.yaml").write_text(instance_yaml(1))
    with dg.DagsterInstance.from_config(str(home)) as instance:
        instance.event_log_storage.set_concurrency_slots(DUCKDB_POOL, 1)

        def queue(name: str, status: dg.DagsterRunStatus = dg.DagsterRunStatus.QUEUED, **tags: str) -> None:
            instance.create_run_for_job(
                job, tags={"name": name, **tags}, status=status, remote_job_origin=origin
            )

        low = {PRIORITY_TAG: str(REPORT_RUN_PRIORITY)}
        for name, tags in (
            ("report W1", low),
            ("forecasts W1", {}),
            ("report W2", low),
            ("forecasts W2", {}),
        ):
            queue(name, **tags)
        daemon = QueuedRunCoordinatorDaemon(interval_seconds=1)

        def dequeued() -> list[str]:
            runs = daemon._get_runs_to_dequeue(instance, instance.get_concurrency_config(), None)
            return [run.tags["name"] for run in runs]

        assert dequeued() == ["forecasts W1"]  # the oldest of the highest priority; the pool admits one
        queue("busy", dg.DagsterRunStatus.STARTED)
        assert dequeued() == []  # a duckdb run in progress holds the pool's single slot


def test_daily_schedule_skips_training_on_off_days(tmp_path: Path) -> None:
    partitions_def = _partitions()
    ops = build_operations(partitions_def, TZ, retrain_every_days=2)
    defs = dg.Definitions(
        assets=_fake_assets(partitions_def),
        asset_checks=ops.asset_checks,
        jobs=ops.jobs,
        schedules=ops.schedules,
        resources={"io_manager": dg.FilesystemIOManager(base_dir=str(tmp_path))},
    )
    schedule = defs.resolve_schedule_def(DAILY_SCHEDULE)
    with _instance(tmp_path) as instance:

        def requests(day: int) -> list[dg.RunRequest]:
            when = dt.datetime(2024, 1, day, 6, 0, tzinfo=ZoneInfo(TZ))
            context = dg.build_schedule_context(
                instance=instance, scheduled_execution_time=when, repository_def=defs.get_repository_def()
            )
            return list(schedule.evaluate_tick(context).run_requests or [])

        off = requests(3)  # partition day 2024-01-02: offset 1
        on = requests(4)  # partition day 2024-01-03: offset 2
    no_train_path = {dg.AssetKey(a) for a in NO_TRAIN_ASSETS if a != ACCURACY_REPORT}
    off_forecasts, off_reports = _forecast_and_report_runs(off)
    on_forecasts, on_reports = _forecast_and_report_runs(on)
    assert [set(r.asset_selection or []) for r in off_forecasts] == [no_train_path] * 2
    assert [set(r.asset_selection or []) for r in on_forecasts] == [FORECAST_PATH] * 2
    assert len(off_reports) == len(on_reports) == 2
    assert all(r.tags[RETRAIN_TAG] == "false" for r in off)
    assert all(r.tags[RETRAIN_TAG] == "true" for r in on)
    no_train = defs.resolve_job_def(DAILY_NO_TRAIN_JOB)
    assert {k.to_user_string() for k in no_train.asset_layer.executable_asset_keys} == set(NO_TRAIN_ASSETS)


# --- (e) run failure sensor ---------------------------------------------------------------------------------


def test_reconcile_sensor_requests_a_day_once_every_warehouse_has_its_forecasts(env: Env) -> None:
    def requests() -> list[dg.RunRequest]:
        return list(env.tick(RECONCILE_SENSOR).run_requests or [])

    assert requests() == []
    env.report("2024-01-02", "W1")
    assert requests() == []  # W2's forecasts are not there yet
    env.report("2024-01-02", "W2")
    env.report("2024-01-03", "W1")
    (first,) = requests()
    assert first.partition_key == "2024-01-02" and first.run_key is not None
    # The requested run reconciles the day; nothing more is requested for it.
    job = env.defs.resolve_job_def(RECONCILE_JOB)
    assert job.execute_in_process(partition_key="2024-01-02", instance=env.instance).success
    assert requests() == []
    # Forecast again (a retrain): requested again, under a new run key.
    env.report("2024-01-02", "W2")
    (again,) = requests()
    assert again.partition_key == "2024-01-02" and again.run_key != first.run_key


def test_run_failure_sensor_records_an_alert(env: Env, webhook: tuple[str, list[dict]]) -> None:
    result = env.run(
        "2024-01-03",
        "W1",
        run_config={"ops": {"trained_models": {"config": {"fail": True}}}},
        raise_on_error=False,
    )
    assert not result.success
    run = env.instance.get_run_by_id(result.run_id)
    (failure,) = env.instance.all_logs(result.run_id, of_type=dg.DagsterEventType.RUN_FAILURE)
    context = dg.build_run_status_sensor_context(
        sensor_name=RUN_FAILURE_SENSOR,
        dagster_event=failure.dagster_event,
        dagster_instance=env.instance,
        dagster_run=run,
        repository_def=env.defs.get_repository_def(),
        resources={"alerts": env.defs.resources["alerts"]},
    ).for_run_failure()
    env.sensor(RUN_FAILURE_SENSOR)(context)

    (alert,) = env.alerts(A.RUN_FAILURE).to_dict("records")
    assert alert[A.SEVERITY] == A.ERROR and "2024-01-03|W1" in alert[A.SUBJECT]
    assert alert[A.DETAILS]["run_id"] == result.run_id and alert[A.DETAILS]["job"] == DAILY_JOB
    assert "training blew up" in json.dumps(alert[A.DETAILS]["failed_steps"])
    assert any("run_failure" in body["text"] for body in webhook[1])


def test_run_failure_alert_lost_by_a_down_webhook_is_redelivered(
    env: Env, webhook: tuple[str, list[dict]]
) -> None:
    """A run status sensor moves its cursor past the run even when it raises: the outbox carries the alert."""
    result = env.run(
        "2024-01-03",
        "W2",
        run_config={"ops": {"trained_models": {"config": {"fail": True}}}},
        raise_on_error=False,
    )
    (failure,) = env.instance.all_logs(result.run_id, of_type=dg.DagsterEventType.RUN_FAILURE)
    down = AlertResource(
        database=str(env.database), webhook_url=f"http://127.0.0.1:{_closed_port()}/hook", retry_delay_s=0
    )
    context = dg.build_run_status_sensor_context(
        sensor_name=RUN_FAILURE_SENSOR,
        dagster_event=failure.dagster_event,
        dagster_instance=env.instance,
        dagster_run=env.instance.get_run_by_id(result.run_id),
        repository_def=env.defs.get_repository_def(),
        resources={"alerts": down},
    ).for_run_failure()
    env.sensor(RUN_FAILURE_SENSOR)(context)
    (alert,) = env.alerts(A.RUN_FAILURE).to_dict("records")
    assert alert[A.DELIVERED_TO][A.WEBHOOK].startswith(A.FAILED_PREFIX) and webhook[1] == []

    # The webhook answers again (here: the fixture's server behind the configured URL).
    for _ in range(2):
        env.tick(ALERT_REDELIVERY_SENSOR)
    assert [body["text"] for body in webhook[1]] == [f"[ERROR] run_failure: {alert[A.SUBJECT]}"]
    (alert,) = env.alerts(A.RUN_FAILURE).to_dict("records")
    assert alert[A.DELIVERED_TO] == {A.WEBHOOK: A.DELIVERED}


# --- (f) delivery failures and a locked database ---------------------------------------------------------


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_webhook_failure_is_recorded_not_raised(tmp_path: Path) -> None:
    database = tmp_path / "warehouse.duckdb"
    resource = AlertResource(
        database=str(database),
        webhook_url=f"http://127.0.0.1:{_closed_port()}/hook",
        email_to="ops@example.com",
        smtp_host="127.0.0.1",
        smtp_port=_closed_port(),
        delivery_timeout_s=2,
    )
    alert = resource.send(A.FRESHNESS, A.ERROR, "forecasts late", {"late": ["W2"]})
    assert alert.delivery_failed
    con = duckdb.connect(str(database), read_only=True)
    (row,) = A.read_alerts(con).to_dict("records")
    con.close()
    assert row[A.ALERT_ID] == alert.alert_id and row[A.DETAILS] == {"late": ["W2"]}
    assert row[A.DELIVERED_TO][A.WEBHOOK].startswith(A.FAILED_PREFIX)
    assert row[A.DELIVERED_TO]["email:ops@example.com"].startswith(A.FAILED_PREFIX)


def test_locked_database_spools_then_drains(tmp_path: Path) -> None:
    database = tmp_path / "warehouse.duckdb"
    duckdb.connect(str(database)).close()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import duckdb, sys, time; c = duckdb.connect({str(database)!r}); print('locked', flush=True); "
            "sys.stdin.readline()",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        resource = AlertResource(database=str(database), lock_timeout_s=0.3)
        first = resource.send(A.DRIFT, A.WARNING, "drift while locked")
        assert Path(resource.spool_path).exists()
    finally:
        assert holder.stdin is not None
        holder.stdin.write("\n")
        holder.stdin.flush()
        holder.wait(timeout=10)
    second = resource.send(A.DRIFT, A.WARNING, "drift after unlock")
    con = duckdb.connect(str(database), read_only=True)
    ids = set(A.read_alerts(con)[A.ALERT_ID])
    con.close()
    assert ids == {first.alert_id, second.alert_id}
    assert not Path(resource.spool_path).exists()


def test_alert_resource_from_env_reads_channels() -> None:
    resource = alert_resource_from_env(
        "/tmp/x.duckdb",
        {"DEMAND_PLATFORM_ALERT_WEBHOOK": "http://hook", "DEMAND_PLATFORM_SMTP_PORT": "2525"},
    )
    assert resource.webhook_url == "http://hook" and resource.smtp_port == 2525 and resource.email_to is None


# --- (g) defaults -----------------------------------------------------------------------------------------


def test_schedules_and_sensors_default_to_running(env: Env) -> None:
    assert {s.name for s in env.ops.schedules} == {DAILY_SCHEDULE, FRESHNESS_SCHEDULE}
    assert {s.name for s in env.ops.sensors} == {
        FRESHNESS_SENSOR,
        DRIFT_SENSOR,
        ALERT_SENSOR,
        RUN_FAILURE_SENSOR,
        ALERT_REDELIVERY_SENSOR,
        DEAD_RUN_SENSOR,
        RECONCILE_SENSOR,
    }
    assert all(s.default_status == dg.DefaultScheduleStatus.RUNNING for s in env.ops.schedules)
    assert all(s.default_status == dg.DefaultSensorStatus.RUNNING for s in env.ops.sensors)
    freshness = env.defs.resolve_schedule_def(FRESHNESS_SCHEDULE)
    assert freshness.cron_schedule == "5 8 * * *" and freshness.execution_timezone == TZ
    context = dg.build_schedule_context(
        instance=env.instance,
        scheduled_execution_time=dt.datetime(2024, 1, 4, 8, 5, tzinfo=ZoneInfo(TZ)),
        repository_def=env.defs.get_repository_def(),
    )
    assert len(freshness.evaluate_tick(context).run_requests or []) == 1
    for name in (DRIFT_SENSOR, ALERT_SENSOR, RUN_FAILURE_SENSOR, ALERT_REDELIVERY_SENSOR):
        assert "alerts" in env.sensor(name).required_resource_keys
    assert FRESHNESS_CHECK_KEY in env.defs.resolve_asset_graph().asset_check_keys
