"""Alert redelivery: the ``alerts`` table as an outbox, ``alert_redelivery_sensor`` delivering again.

Deliveries go to real servers on 127.0.0.1 (an HTTP webhook that can be down, answering 503 or not
listening at all, and a minimal SMTP sink); the database is a real DuckDB file, locked by a real second
process where a test needs it locked. Sensor ticks are real evaluations of the sensor definition.
"""

import contextlib
import datetime as dt
import http.server
import json
import logging
import socketserver
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import dagster as dg
import duckdb
import pandas as pd
import pytest

from assets.operations import (
    ALERT_REDELIVERY_SENSOR,
    REDELIVERY_INTERVAL_S,
    AlertsUndeliverable,
    build_operations,
)
from demand_platform import alerts as A
from demand_platform import dbfile
from resources.alerts import NOT_CONFIGURED, AlertResource

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.timeout(120)


# --- servers ---------------------------------------------------------------------------------------------


class _HookHandler(http.server.BaseHTTPRequestHandler):
    server: "Webhook"  # type: ignore[assignment]

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.hits += 1
        if self.server.on_post is not None:
            self.server.on_post()
        if self.server.status != 200:
            self.send_response(self.server.status)
            self.end_headers()
            return
        self.server.received.append(body)
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args) -> None:
        pass


class Webhook(http.server.ThreadingHTTPServer):
    """A webhook on 127.0.0.1: bound from the start, so its URL is fixed, but listening only once up.

    A bound socket that does not listen refuses connections, like a webhook whose server is down.
    """

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _HookHandler, bind_and_activate=False)
        self.server_bind()
        self.status = 200
        self.hits = 0  # requests that reached the server, whatever it answered
        self.received: list[dict] = []  # bodies accepted (status 200)
        self.on_post: Callable[[], None] | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/hook/T0KEN-s3cr3t"

    def listen(self) -> None:
        self.server_activate()
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self.shutdown()
        self.server_close()

    def alert_ids(self) -> list[str]:
        """The alert ids in the accepted bodies (each body's header names its alert)."""
        return [body["blocks"][0]["text"]["text"].split("`")[1] for body in self.received]


class _SmtpHandler(socketserver.StreamRequestHandler):
    """Just enough SMTP for ``smtplib.send_message``: every message is accepted and kept."""

    def _say(self, line: str) -> None:
        self.wfile.write(line.encode() + b"\r\n")

    def handle(self) -> None:
        self._say("220 sink ESMTP")
        data, lines = False, []
        while raw := self.rfile.readline():
            line = raw.decode().rstrip("\r\n")
            if data:
                if line == ".":
                    self.server.messages.append("\n".join(lines))  # type: ignore[attr-defined]
                    data, lines = False, []
                    self._say("250 queued")
                else:
                    lines.append(line)
                continue
            verb = line[:4].upper()
            if verb in {"EHLO", "HELO"}:
                self._say("250 sink")
            elif verb == "DATA":
                data = True
                self._say("354 end with .")
            elif verb == "QUIT":
                self._say("221 bye")
                return
            else:
                self._say("250 ok")


class SmtpSink(socketserver.ThreadingTCPServer):
    """An SMTP server on 127.0.0.1, bound from the start and listening only once up."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _SmtpHandler, bind_and_activate=False)
        self.server_bind()
        self.messages: list[str] = []
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self.server_address[1]

    def listen(self) -> None:
        self.server_activate()
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self.shutdown()
        self.server_close()


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    server = Webhook()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def smtp() -> Iterator[SmtpSink]:
    server = SmtpSink()
    try:
        yield server
    finally:
        server.stop()


# --- platform side ---------------------------------------------------------------------------------------


@pytest.fixture
def instance(tmp_path: Path) -> Iterator[dg.DagsterInstance]:
    home = tmp_path / "dagster"
    home.mkdir()
    with dg.instance_for_test(temp_dir=str(home)) as instance:
        yield instance


def _sensor() -> dg.SensorDefinition:
    partitions = dg.MultiPartitionsDefinition(
        {
            "date": dg.DailyPartitionsDefinition(start_date="2024-01-01", end_date="2024-01-04"),
            "warehouse": dg.StaticPartitionsDefinition(["W1", "W2"]),
        }
    )
    (sensor,) = [
        s for s in build_operations(partitions, "Europe/Paris").sensors if s.name == ALERT_REDELIVERY_SENSOR
    ]
    return sensor


def tick(instance: dg.DagsterInstance, alerts: AlertResource) -> str:
    """One evaluation of the redelivery sensor; its skip message."""
    result = _sensor().evaluate_tick(dg.build_sensor_context(instance=instance, resources={"alerts": alerts}))
    assert not result.run_requests
    return result.skip_message or ""


def _resource(database: Path, **kwargs) -> AlertResource:
    defaults: dict = {"delivery_timeout_s": 5, "retry_delay_s": 0, "lock_timeout_s": 0.5}
    return AlertResource(database=str(database), **{**defaults, **kwargs})


def _row(database: Path, alert_id: str) -> dict:
    with dbfile.connect(database, read_only=True) as con:
        table = A.read_alerts(con)
    rows = table[table[A.ALERT_ID] == alert_id].to_dict("records")
    assert len(rows) == 1, f"alert {alert_id} recorded {len(rows)} times"
    return rows[0]


@contextlib.contextmanager
def _locked(database: Path) -> Iterator[subprocess.Popen]:
    """Another process holding the platform lock of ``database`` (a run writing) until the block ends."""
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from demand_platform import dbfile\n"
            "with dbfile.connect(sys.argv[1]):\n    print('held', flush=True); sys.stdin.readline()",
            str(database),
        ],
        cwd=REPO,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        yield holder
    finally:
        assert holder.stdin is not None
        holder.stdin.write("\n")
        holder.stdin.flush()
        assert holder.wait(timeout=30) == 0


# --- tests -----------------------------------------------------------------------------------------------


def test_sensor_ticks_every_minute_by_default(webhook: Webhook) -> None:
    sensor = _sensor()
    assert sensor.minimum_interval_seconds == REDELIVERY_INTERVAL_S == 60
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    assert "alerts" in sensor.required_resource_keys


@pytest.mark.parametrize("outage", ["not listening", "503"])
def test_alert_sent_while_the_webhook_is_down_is_delivered_once_when_it_is_back(
    tmp_path: Path, webhook: Webhook, instance: dg.DagsterInstance, outage: str
) -> None:
    database = tmp_path / "warehouse.duckdb"
    alerts = _resource(database, webhook_url=webhook.url)
    if outage == "503":
        webhook.status = 503
        webhook.listen()

    alert = alerts.send(A.RUN_FAILURE, A.ERROR, "run of daily failed", {"run_id": "r1"})
    row = _row(database, alert.alert_id)
    assert row[A.DELIVERED_TO][A.WEBHOOK].startswith(A.FAILED_PREFIX)
    assert ("503" in row[A.DELIVERED_TO][A.WEBHOOK]) == (outage == "503")
    assert row[A.ATTEMPTS] == 1 and not pd.isna(row[A.NEXT_ATTEMPT_AT])

    # Still down: attempted again, failed again, nothing lost.
    assert "1 failed again" in tick(instance, alerts)
    assert _row(database, alert.alert_id)[A.ATTEMPTS] == 2 and webhook.received == []

    # Back: the next tick delivers it, once; later ticks find nothing due.
    webhook.status = 200
    if outage == "not listening":
        webhook.listen()
    assert "1 delivery(ies) made" in tick(instance, alerts)
    assert tick(instance, alerts) == "no alert due for redelivery"
    assert webhook.alert_ids() == [alert.alert_id]
    assert "run of daily failed" in webhook.received[0]["text"]
    row = _row(database, alert.alert_id)
    assert row[A.DELIVERED_TO] == {A.WEBHOOK: A.DELIVERED}
    assert row[A.ATTEMPTS] == 3 and pd.isna(row[A.NEXT_ATTEMPT_AT])


def test_a_channel_that_took_the_alert_is_not_sent_it_again(
    tmp_path: Path, webhook: Webhook, smtp: SmtpSink, instance: dg.DagsterInstance
) -> None:
    database = tmp_path / "warehouse.duckdb"
    webhook.listen()
    alerts = _resource(
        database,
        webhook_url=webhook.url,
        email_to="ops@example.com",
        smtp_host="127.0.0.1",
        smtp_port=smtp.port,
    )
    email = "email:ops@example.com"
    alert = alerts.send(A.FRESHNESS, A.ERROR, "forecasts late for 2024-01-03: W2")
    assert alert.delivered_to[A.WEBHOOK] == A.DELIVERED and alert.delivered_to[email].startswith(
        A.FAILED_PREFIX
    )

    for expected_attempts in (2, 3):  # the relay is still down: only email is attempted
        assert "1 failed again" in tick(instance, alerts)
        assert _row(database, alert.alert_id)[A.ATTEMPTS] == expected_attempts
    assert webhook.hits == 1

    smtp.listen()
    assert "1 delivery(ies) made" in tick(instance, alerts)
    tick(instance, alerts)
    assert webhook.hits == 1 and webhook.alert_ids() == [alert.alert_id]
    assert len(smtp.messages) == 1 and "forecasts late for 2024-01-03: W2" in smtp.messages[0]
    assert _row(database, alert.alert_id)[A.DELIVERED_TO] == {A.WEBHOOK: A.DELIVERED, email: A.DELIVERED}


def test_an_alert_that_keeps_failing_is_given_up_after_the_bound_and_says_so(
    tmp_path: Path, webhook: Webhook, instance: dg.DagsterInstance, caplog: pytest.LogCaptureFixture
) -> None:
    database = tmp_path / "warehouse.duckdb"
    webhook.status = 503
    webhook.listen()
    alerts = _resource(database, webhook_url=webhook.url, max_delivery_attempts=3)
    alert = alerts.send(A.DRIFT, A.WARNING, "forecast drift in 2024-01-03|W1", {"wmape": 0.61})
    assert "1 failed again" in tick(instance, alerts)  # attempt 2

    with caplog.at_level(logging.CRITICAL), pytest.raises(Exception) as raised:
        tick(instance, alerts)  # attempt 3: the last
    error = raised.value
    assert isinstance(error, AlertsUndeliverable) or isinstance(error.__cause__, AlertsUndeliverable)
    assert alert.alert_id in str(error) and "webhook" in str(error) and "after 3 attempts" in str(error)
    critical = [r.getMessage() for r in caplog.records if r.levelno >= logging.CRITICAL]
    assert any(
        alert.alert_id in m and "forecast drift in 2024-01-03|W1" in m and "0.61" in m for m in critical
    )

    row = _row(database, alert.alert_id)
    assert row[A.DELIVERED_TO][A.WEBHOOK].startswith(f"{A.GAVE_UP_PREFIX}after 3 attempts: HTTPError")
    assert row[A.ATTEMPTS] == 3 and pd.isna(row[A.NEXT_ATTEMPT_AT])
    assert webhook.hits == 3

    # Given up is final: the webhook back, later ticks leave it alone.
    webhook.status = 200
    assert tick(instance, alerts) == "no alert due for redelivery"
    assert webhook.hits == 3 and webhook.received == []


def test_retries_follow_the_exponential_retry_policy(tmp_path: Path, webhook: Webhook) -> None:
    database = tmp_path / "warehouse.duckdb"
    alerts = AlertResource(database=str(database), webhook_url=webhook.url, delivery_timeout_s=5)  # defaults
    delays = [alerts.retry_policy.calculate_delay(n) for n in range(1, alerts.max_delivery_attempts)]
    assert delays == [30, 90, 210, 450, 930, 1890, 3810]  # (2**n - 1) * 30 s: the last ~2 h after the alert
    assert 1.9 * 3600 < sum(delays) < 2.2 * 3600

    alert = alerts.send(A.DRIFT, A.WARNING, "drift while the webhook is down")
    first = _row(database, alert.alert_id)[A.NEXT_ATTEMPT_AT].to_pydatetime()
    assert abs((first - alert.created_at).total_seconds() - 30) < 5

    assert alerts.redeliver(now=first - dt.timedelta(seconds=1)).due == 0  # not due yet
    report = alerts.redeliver(now=first)
    assert report.due == 1 and len(report.failed) == 1 and webhook.hits == 0  # refused: never reached
    second = _row(database, alert.alert_id)[A.NEXT_ATTEMPT_AT].to_pydatetime()
    assert (second - first).total_seconds() == pytest.approx(90)
    assert alerts.redeliver(now=second - dt.timedelta(seconds=1)).due == 0

    webhook.listen()
    assert alerts.redeliver(now=second).delivered == [(alert.alert_id, A.WEBHOOK)]
    assert webhook.alert_ids() == [alert.alert_id]


def test_a_locked_database_during_redelivery_loses_and_repeats_nothing(
    tmp_path: Path, webhook: Webhook, instance: dg.DagsterInstance
) -> None:
    database = tmp_path / "warehouse.duckdb"
    alerts = _resource(database, webhook_url=webhook.url)
    duckdb.connect(str(database)).close()

    # Raised while a run holds the database and the webhook is down: spooled with its failed delivery.
    with _locked(database):
        spooled = alerts.send(A.DATA_QUALITY, A.WARNING, "12% of lines rejected")
        assert Path(alerts.spool_path).exists()
    recorded = alerts.send(A.FRESHNESS, A.ERROR, "forecasts late")
    assert _row(database, spooled.alert_id)[A.DELIVERED_TO][A.WEBHOOK].startswith(A.FAILED_PREFIX)  # drained
    webhook.listen()

    # Locked when the tick starts: nothing delivered, nothing changed.
    with _locked(database):
        assert "database locked" in tick(instance, alerts)
    assert webhook.hits == 0

    # Locked while delivering (taken as the webhook receives the first alert): the outcomes are spooled,
    # and the next tick merges them in before choosing what is due, so nothing is sent twice.
    holders: list[contextlib.ExitStack] = []

    def lock_now() -> None:
        if not holders:
            stack = contextlib.ExitStack()
            stack.enter_context(_locked(database))
            holders.append(stack)

    webhook.on_post = lock_now
    try:
        message = tick(instance, alerts)
        assert "2 delivery(ies) made" in message and "outcomes spooled" in message
    finally:
        for stack in holders:
            stack.close()
    webhook.on_post = None
    assert Path(alerts.spool_path).exists()

    assert tick(instance, alerts) == "no alert due for redelivery"
    later = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=A.CLAIM_S + 60)  # the claims have expired
    assert alerts.redeliver(now=later).due == 0
    assert sorted(webhook.alert_ids()) == sorted([spooled.alert_id, recorded.alert_id])
    for alert in (spooled, recorded):
        row = _row(database, alert.alert_id)
        assert row[A.DELIVERED_TO] == {A.WEBHOOK: A.DELIVERED} and pd.isna(row[A.NEXT_ATTEMPT_AT])
    assert not Path(alerts.spool_path).exists()


def test_the_webhook_url_is_never_stored(
    tmp_path: Path, webhook: Webhook, instance: dg.DagsterInstance
) -> None:
    database = tmp_path / "warehouse.duckdb"
    # An invalid URL: urllib's error quotes its path, which holds the token.
    bad_url = webhook.url.replace("T0KEN", "T0KEN x")
    alerts = _resource(database, webhook_url=bad_url, max_delivery_attempts=2)
    alert = alerts.send(A.RUN_FAILURE, A.ERROR, "run failed")
    with contextlib.suppress(Exception):
        tick(instance, alerts)  # attempt 2: given up
    with _locked(database):  # and once through the spool
        alerts.send(A.RUN_FAILURE, A.ERROR, "run failed again")
        spool = Path(alerts.spool_path).read_text()
    row = _row(database, alert.alert_id)
    assert row[A.DELIVERED_TO][A.WEBHOOK].startswith(A.GAVE_UP_PREFIX)
    assert "<webhook url>" in row[A.DELIVERED_TO][A.WEBHOOK]
    with dbfile.connect(database, read_only=True) as con:
        text = json.dumps(A.read_alerts(con).astype(str).to_dict("records"))
    for stored in (text, spool):
        assert "s3cr3t" not in stored and "/hook/" not in stored and "127.0.0.1" not in stored


def test_a_channel_no_longer_configured_is_given_up(
    tmp_path: Path, webhook: Webhook, instance: dg.DagsterInstance
) -> None:
    database = tmp_path / "warehouse.duckdb"
    alert = _resource(database, webhook_url=webhook.url).send(A.DRIFT, A.WARNING, "drift")
    without_webhook = _resource(database)
    with pytest.raises(Exception, match=NOT_CONFIGURED):
        tick(instance, without_webhook)
    row = _row(database, alert.alert_id)
    assert row[A.DELIVERED_TO] == {A.WEBHOOK: f"{A.GAVE_UP_PREFIX}{NOT_CONFIGURED}"}
    assert row[A.ATTEMPTS] == 1 and pd.isna(row[A.NEXT_ATTEMPT_AT])


def test_a_rotated_webhook_url_receives_the_pending_alerts(
    tmp_path: Path, webhook: Webhook, instance: dg.DagsterInstance
) -> None:
    database = tmp_path / "warehouse.duckdb"
    alert = _resource(database, webhook_url=webhook.url).send(A.DRIFT, A.WARNING, "drift")  # not listening
    rotated = Webhook()
    rotated.listen()
    try:
        assert "1 delivery(ies) made" in tick(instance, _resource(database, webhook_url=rotated.url))
        assert rotated.alert_ids() == [alert.alert_id]
    finally:
        rotated.stop()


def test_one_unreachable_channel_costs_one_attempt_per_pass_not_one_per_alert(
    tmp_path: Path, webhook: Webhook, instance: dg.DagsterInstance
) -> None:
    database = tmp_path / "warehouse.duckdb"
    webhook.status = 503
    webhook.listen()
    alerts = _resource(database, webhook_url=webhook.url)
    sent = [alerts.send(A.DRIFT, A.WARNING, f"drift {i}") for i in range(4)]
    assert webhook.hits == 4
    assert "4 alert(s) due: 0 delivery(ies) made, 4 failed again" in tick(instance, alerts)
    assert webhook.hits == 5  # one request for the pass; the other three counted as failed with it
    for alert in sent:
        row = _row(database, alert.alert_id)
        assert row[A.ATTEMPTS] == 2 and row[A.DELIVERED_TO][A.WEBHOOK].startswith(A.FAILED_PREFIX)
    webhook.status = 200
    tick(instance, alerts)
    assert sorted(webhook.alert_ids()) == sorted(a.alert_id for a in sent)


def test_a_pass_out_of_time_gives_its_claims_back(tmp_path: Path, webhook: Webhook) -> None:
    database = tmp_path / "warehouse.duckdb"
    alerts = _resource(database, webhook_url=webhook.url)
    sent = [alerts.send(A.DRIFT, A.WARNING, f"drift {i}") for i in range(3)]
    webhook.listen()
    out_of_time = _resource(database, webhook_url=webhook.url, redelivery_budget_s=-1)
    report = out_of_time.redeliver()
    assert report.due == 3 and report.not_reached == 3 and webhook.hits == 0
    report = alerts.redeliver()  # due again at once, not after the claim
    assert len(report.delivered) == 3 and sorted(webhook.alert_ids()) == sorted(a.alert_id for a in sent)


def test_a_claimed_alert_is_not_taken_by_a_second_pass(tmp_path: Path) -> None:
    database = tmp_path / "warehouse.duckdb"
    alert = A.Alert(A.DRIFT, A.WARNING, "drift", delivered_to={A.WEBHOOK: "failed: down"}, attempts=1)
    now = dt.datetime(2024, 1, 4, 9, tzinfo=dt.UTC)
    alert.next_attempt_at = now
    with dbfile.connect(database) as con:
        A.record_alert(con, alert)
        assert [a.alert_id for a in A.claim_due_alerts(con, now)] == [alert.alert_id]
        assert A.claim_due_alerts(con, now + dt.timedelta(seconds=A.CLAIM_S - 1)) == []
        (again,) = A.claim_due_alerts(con, now + dt.timedelta(seconds=A.CLAIM_S))  # the first pass died
        assert again.alert_id == alert.alert_id


def test_ticks_leave_the_database_alone_while_nothing_is_pending(
    tmp_path: Path, webhook: Webhook, instance: dg.DagsterInstance
) -> None:
    database = tmp_path / "warehouse.duckdb"
    webhook.listen()
    alerts = _resource(database, webhook_url=webhook.url)
    alerts.send(A.DRIFT, A.WARNING, "delivered at once")
    assert not Path(alerts.pending_path).exists()
    with _locked(database):  # a run writing: the tick does not wait for it, nothing to do anyway
        assert tick(instance, alerts) == "no alert due for redelivery"

    webhook.status = 503
    failed = alerts.send(A.DRIFT, A.WARNING, "failed once")
    assert Path(alerts.pending_path).exists()
    with _locked(database):
        assert "database locked" in tick(instance, alerts)
    webhook.status = 200
    assert "1 delivery(ies) made" in tick(instance, alerts)
    assert not Path(alerts.pending_path).exists()  # all delivered: quiet again
    assert webhook.alert_ids()[-1] == failed.alert_id and len(webhook.received) == 2
