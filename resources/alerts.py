"""The alerting resource: deliver every alert to a webhook and/or by email, record it, deliver it again.

Configuration from the environment (:func:`alert_resource_from_env`):

* ``DEMAND_PLATFORM_ALERT_WEBHOOK``: Slack-compatible incoming-webhook URL (optional);
* ``DEMAND_PLATFORM_ALERT_EMAIL``: recipient address(es), comma-separated (optional);
* ``DEMAND_PLATFORM_SMTP_HOST`` / ``DEMAND_PLATFORM_SMTP_PORT``: SMTP relay for the emails (port 25 by
  default). Email is sent only when both a recipient and a host are set.

**Redelivery.** :meth:`AlertResource.send` makes the first delivery round; a channel that fails (webhook
down, SMTP relay unreachable) is recorded ``failed`` with its next attempt in the ``alerts`` table, the
outbox of :mod:`demand_platform.alerts`. :meth:`AlertResource.redeliver`, called by the
``alert_redelivery_sensor`` (:mod:`assets.operations`) every minute, delivers the due alerts again to their
failed channels only (a channel that took the alert is never sent it again) and records the outcome. The
schedule is a :class:`dagster.RetryPolicy` (:attr:`AlertResource.retry_policy`), exponential backoff from
``retry_delay_s``: with the defaults (8 attempts, 30 s) the retries come 30 s, 1.5, 3.5, 7.5, 15.5, 31.5 and
63.5 minutes after each other (at the first tick after that, the sensor ticking every minute), the last
about 2 h 04 after the alert; then the channel is given up, which is logged at CRITICAL as the alert of last
resort and fails the sensor tick (visible in the Dagster UI). A sensor, not a job with an op
``RetryPolicy``: a run would wait in the queue behind the ``duckdb`` pool (the whole daily pipeline) and
hold a run slot while sleeping between attempts; a sensor tick runs in the daemon every minute whatever the
queue holds. Why not raising from the sending sensors so that Dagster re-evaluates their tick: a run status
sensor (``run_failure_alert_sensor``) moves its cursor past the run even when it raises, so its alert would
be lost, and re-running a tick of ``alert_sensor`` would send again to the channels that had already taken
the alert.

The redelivery sensor opens the database only while something may be pending: when the spool exists,
or the marker file ``<database>.alerts-pending``, created under the database lock by a recording that
leaves a channel to deliver again and removed under the lock by a pass that finds none. On a day
without delivery failures its ticks never compete with the runs for the database.

Delivery is at least once per channel: an alert delivered but not recorded (the process killed between
the two, or a webhook that took the message but answered too late) is delivered again. A database locked
when the outcome is recorded does not cause that: the outcome is spooled and merged in before the next
redelivery chooses what is due. A database locked at the start of a redelivery skips the pass (nothing is
delivered without the stored state).

The webhook URL usually embeds a token: it is passed as a :class:`dagster.EnvVar`, so the Dagster UI
shows the variable name, not the URL, and the ``alerts`` table never stores it (channels are recorded by
name, ``webhook``, and the URL is removed from recorded error texts). A redelivery therefore uses the
URL configured when it runs: a rotated URL gets the pending alerts; a channel no longer configured is
given up.
"""

import datetime as dt
import json
import os
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
import duckdb

from demand_platform import alerts as A
from demand_platform import dbfile

WEBHOOK_ENV = "DEMAND_PLATFORM_ALERT_WEBHOOK"
EMAIL_ENV = "DEMAND_PLATFORM_ALERT_EMAIL"
SMTP_HOST_ENV = "DEMAND_PLATFORM_SMTP_HOST"
SMTP_PORT_ENV = "DEMAND_PLATFORM_SMTP_PORT"

_LOG_LEVEL = {A.INFO: "info", A.WARNING: "warning", A.ERROR: "error", A.CRITICAL: "critical"}
#: Reason recorded for a pending channel that is no longer configured when its alert comes due.
NOT_CONFIGURED = "the channel is no longer configured"


@dataclass
class Redelivery:
    """What one redelivery pass did.

    Attributes:
        due: Alerts taken (due, failed channels to attempt again).
        delivered: ``(alert_id, channel)`` delivered by this pass.
        failed: ``(alert_id, channel, error)`` that failed again (attempted later).
        gave_up: ``(alert_id, channel, reason)`` given up by this pass.
        not_reached: Alerts taken but not attempted (time budget spent): due again at the next pass.
        spooled: Whether the outcomes went to the spool (database locked when recording them).
        locked: Why the pass did nothing (database locked at its start), or None.
    """

    due: int = 0
    delivered: list[tuple[str, str]] = field(default_factory=list)
    failed: list[tuple[str, str, str]] = field(default_factory=list)
    gave_up: list[tuple[str, str, str]] = field(default_factory=list)
    not_reached: int = 0
    spooled: bool = False
    locked: str | None = None

    def summary(self) -> str:
        """One line: what was due, delivered, failed, given up."""
        if self.locked is not None:
            return f"alert redelivery skipped: {self.locked}"
        if not self.due:
            return "no alert due for redelivery"
        text = (
            f"{self.due} alert(s) due: {len(self.delivered)} delivery(ies) made, {len(self.failed)} failed "
            f"again, {len(self.gave_up)} given up"
        )
        if self.not_reached:
            text += f", {self.not_reached} left for the next pass (time budget)"
        if self.gave_up:
            text += " (" + "; ".join(f"{a} to {c}: {r}" for a, c, r in self.gave_up) + ")"
        return text + (" [outcomes spooled: database locked]" if self.spooled else "")


class AlertResource(dg.ConfigurableResource):
    """Raise operational alerts: always recorded in the ``alerts`` table, delivered, delivered again.

    :meth:`send` logs the alert through Dagster's logger, delivers it to the webhook and the email
    recipients that are configured (a failed delivery is caught and written into the alert's
    ``delivered_to`` with its next attempt, never raised), then records it with its delivery state.
    :meth:`redeliver` attempts the failed channels again when due (see the module docstring).
    Recording opens a short read-write DuckDB connection under the platform lock
    (:mod:`demand_platform.dbfile`). Embedded DuckDB lets one process open the file at a time: while a
    run holds it (sensors run in the daemon, runs in their own processes), recording waits up to
    ``lock_timeout_s`` seconds. If the database is still locked, the alert goes to a JSON-lines spool
    next to the database (``<database>.alerts-spool.jsonl``), merged into the table by the next
    successful recording: an alert is never lost and a busy database never delays a sensor tick for long.
    An alert sent with a deterministic ``alert_id`` (a freshness incident's notice) is looked up first
    (:meth:`recorded`, the spool then the table) and not sent again once recorded.

    Attributes:
        database: Path of the platform's DuckDB database.
        webhook_url: Slack-compatible incoming-webhook URL, or None for no webhook delivery.
        email_to: Recipient address(es), comma-separated, or None for no email.
        smtp_host: SMTP relay host (email is sent only when this and ``email_to`` are set).
        smtp_port: SMTP relay port.
        email_from: ``From`` address of the emails.
        lock_timeout_s: How long to retry opening a locked database before spooling.
        delivery_timeout_s: Timeout of each delivery (webhook request, SMTP connection).
        max_delivery_attempts: Delivery rounds (the first included) after which a channel that keeps
            failing is given up.
        retry_delay_s: Base delay of the exponential backoff between rounds: the ``n``-th retry waits
            ``(2**n - 1) * retry_delay_s`` seconds (Dagster's ``Backoff.EXPONENTIAL``).
        redelivery_batch: Most alerts one redelivery pass takes (the rest wait for the next pass).
        redelivery_budget_s: A pass starts no delivery this many seconds after it began, waiting for the
            lock included (the alerts not reached are given back for the next pass), keeping the sensor
            tick within Dagster's 60 s evaluation timeout.
    """

    database: str
    webhook_url: str | None = None
    email_to: str | None = None
    smtp_host: str | None = None
    smtp_port: int = 25
    email_from: str = "demand-platform@localhost"
    lock_timeout_s: float = 15.0
    delivery_timeout_s: float = 10.0
    max_delivery_attempts: int = 8
    retry_delay_s: float = 30.0
    redelivery_batch: int = 50
    redelivery_budget_s: float = 20.0

    @property
    def spool_path(self) -> str:
        """The JSON-lines file holding alerts that could not be recorded yet (database locked)."""
        return f"{self.database}.alerts-spool.jsonl"

    @property
    def pending_path(self) -> str:
        """A marker file present while some recorded alert may have a channel to deliver again.

        Created (under the database lock) whenever a recording may leave a pending channel, removed
        (under the lock) by a redelivery pass that finds none: the redelivery sensor opens the database
        only when this marker or the spool exists, so on a quiet day its ticks never compete with the
        runs for the database.
        """
        return f"{self.database}.alerts-pending"

    def _spooled(self) -> bool:
        """Whether the spool (or a drain interrupted by a crash) holds alerts."""
        spool = Path(self.spool_path)
        return spool.exists() or any(spool.parent.glob(f"{spool.name}.draining-*"))

    def _mark_pending(self, con: duckdb.DuckDBPyConnection, maybe: bool) -> None:
        """Under the lock: create the pending marker when ``maybe``, else remove it if nothing is pending."""
        marker = Path(self.pending_path)
        if maybe:
            marker.touch()
        elif not A.has_pending(con):
            marker.unlink(missing_ok=True)

    @property
    def retry_policy(self) -> dg.RetryPolicy:
        """The redelivery schedule: ``max_delivery_attempts - 1`` retries, exponential backoff."""
        return dg.RetryPolicy(
            max_retries=max(self.max_delivery_attempts - 1, 0),
            delay=self.retry_delay_s,
            backoff=dg.Backoff.EXPONENTIAL,
        )

    def channels(self) -> dict[str, Callable[[A.Alert], None]]:
        """The configured channels: name (as recorded in ``delivered_to``) -> delivery function."""
        out: dict[str, Callable[[A.Alert], None]] = {}
        webhook_url, email_to, smtp_host = self.webhook_url, self.email_to, self.smtp_host
        if webhook_url:
            out[A.WEBHOOK] = lambda alert: A.post_webhook(webhook_url, alert, timeout=self.delivery_timeout_s)
        if email_to and smtp_host:
            out[f"{A.EMAIL_PREFIX}{email_to}"] = lambda alert: A.send_email(
                smtp_host, self.smtp_port, self.email_from, email_to, alert, timeout=self.delivery_timeout_s
            )
        return out

    def send(
        self,
        kind: str,
        severity: str,
        subject: str,
        details: dict | None = None,
        alert_id: str | None = None,
    ) -> A.Alert:
        """Raise an alert: log it, deliver it where configured, record it.

        Args:
            kind: What happened (``freshness``, ``freshness_resolved``, ``run_failure``, ``data_quality``,
                ``drift``, ``promotion_rejected``...).
            severity: ``info``, ``warning``, ``error`` or ``critical``.
            subject: One-line summary.
            details: JSON-serialisable context.
            alert_id: A deterministic id (an incident's notice, :func:`demand_platform.alerts.incident_alert_id`),
                or None for a new random one. An alert whose id is already recorded (in the table or the
                spool) is not raised again: nothing is delivered, the recorded alert is returned. When the
                database stays locked for the look-up the alert is delivered all the same (at least once).

        Returns:
            The alert, with ``delivered_to`` filled in (and ``next_attempt_at`` when a channel failed), or
            the alert already recorded under ``alert_id``.
        """
        log = dg.get_dagster_logger()
        if alert_id is not None:
            known = self.recorded(alert_id)
            if known is not None:
                log.info(
                    f"alert {alert_id} already raised at {known.created_at.isoformat(timespec='seconds')}"
                )
                return known
        alert = A.Alert(kind=kind, severity=severity, subject=subject, details=dict(details or {}))
        if alert_id is not None:
            alert.alert_id = alert_id
        getattr(log, _LOG_LEVEL.get(severity, "warning"))(f"alert {alert.alert_id}: {alert.text()}")
        self.deliver(alert)
        for channel, outcome in alert.delivered_to.items():
            if outcome != A.DELIVERED:
                log.error(f"alert {alert.alert_id} not delivered to {channel}: {outcome}")
        self.record(alert)
        return alert

    def deliver(
        self, alert: A.Alert, now: dt.datetime | None = None, down: dict[str, str] | None = None
    ) -> list[str]:
        """One delivery round of ``alert``, written into its delivery state (never raises).

        The first round (``alert.attempts == 0``) tries every configured channel, later rounds the
        pending ones only. A pending channel no longer configured is given up. The round counts as one
        attempt (:func:`demand_platform.alerts.settle_delivery`).

        Args:
            alert: The alert (updated in place).
            now: Time of the round (default: now).
            down: Channels already failing in this pass, channel -> error: not attempted again in this
                pass (one unreachable webhook costs one timeout per pass, not one per alert) but counted
                as failed; a channel failing here is added to it. None to attempt every channel.

        Returns:
            The channels given up by this round.
        """
        configured = self.channels()
        targets = list(configured) if alert.attempts == 0 else alert.pending_channels
        outcomes: dict[str, str | None] = {}
        gave_up: list[str] = []
        for channel in targets:
            if channel not in configured:
                A.give_up_channel(alert, channel, NOT_CONFIGURED)
                gave_up.append(channel)
            elif down is not None and channel in down:
                outcomes[channel] = (
                    f"{down[channel]} (not attempted: the channel failed earlier in this pass)"
                )
            else:
                try:
                    configured[channel](alert)
                    outcomes[channel] = None
                except Exception as error:  # any failure is recorded, never raised
                    outcomes[channel] = self._error_text(error)
                    if down is not None:
                        down[channel] = outcomes[channel] or ""
        gave_up += A.settle_delivery(
            alert, outcomes, self.max_delivery_attempts, self.retry_policy.calculate_delay, now
        )
        return gave_up

    def _error_text(self, error: Exception) -> str:
        """``Type: message`` of a delivery error, the webhook URL (a secret) blanked out.

        The URL is removed whole, and so are its path-and-query and user info, which some errors quote
        alone (``http.client.InvalidURL`` quotes the path's repr).
        """
        text = f"{type(error).__name__}: {error}"
        if not self.webhook_url:
            return text
        parts = urllib.parse.urlsplit(self.webhook_url)
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        secrets = [
            self.webhook_url,
            path,
            parts.path,
            parts.query,
            parts.username or "",
            parts.password or "",
        ]
        secrets += [repr(s)[1:-1] for s in secrets]  # as quoted by an error's repr (escaped characters)
        for secret in sorted({s for s in secrets if len(s) > 1}, key=len, reverse=True):
            text = text.replace(secret, "<webhook url>")
        return text

    def recorded(self, alert_id: str) -> A.Alert | None:
        """The alert ``alert_id`` if it was recorded: in the spool, or in the table.

        Returns None when it is in neither, and also when the database stays locked for
        ``lock_timeout_s`` (the caller cannot tell, and raises the alert: at least once).
        """
        spooled = A.spooled_alert(self.spool_path, alert_id)
        if spooled is not None:
            return spooled
        if not Path(self.database).exists():
            return None
        try:
            with dbfile.connect(self.database, timeout_s=self.lock_timeout_s) as con:
                return A.stored_alert(con, alert_id)
        except (dbfile.DatabaseLockTimeout, duckdb.ConnectionException) as error:
            dg.get_dagster_logger().warning(f"could not look alert {alert_id} up: database locked ({error})")
            return None

    def record(self, alert: A.Alert) -> bool:
        """Record ``alert`` in the ``alerts`` table, or spool it if the database stays locked.

        Returns:
            True when the alert is in the table, False when it was spooled.
        """
        return self.record_all([alert])

    def record_all(self, alerts: list[A.Alert]) -> bool:
        """Record alerts in the ``alerts`` table (merged into their rows), or spool them all if locked.

        The connection is opened once under the platform lock (:func:`demand_platform.dbfile.connect`),
        waiting up to ``lock_timeout_s`` for other processes' connections to close (and for DuckDB's own
        lock, held by a process outside the platform lock); the spool is drained meanwhile.

        Returns:
            True when the alerts are in the table, False when they were spooled.
        """
        try:
            with dbfile.connect(self.database, timeout_s=self.lock_timeout_s) as con:
                for alert in alerts:
                    A.record_alert(con, alert)
                drained = A.drain_spool(con, self.spool_path)
                if drained or any(alert.pending_channels for alert in alerts):
                    self._mark_pending(con, maybe=True)
        except (dbfile.DatabaseLockTimeout, duckdb.ConnectionException) as error:
            # ConnectionException: this process holds the file open read-only (e.g. a summary that raises
            # an alert); the spool keeps the alerts for the next recording.
            for alert in alerts:
                A.spool_alert(self.spool_path, alert)
            ids = ", ".join(a.alert_id for a in alerts)
            dg.get_dagster_logger().warning(
                f"alert(s) {ids} spooled to {self.spool_path}: database locked ({error})"
            )
            return False
        return True

    def redeliver(self, now: dt.datetime | None = None) -> Redelivery:
        """One redelivery pass: deliver the due alerts again to their failed channels, record the outcome.

        Opens the database (under the platform lock, up to ``lock_timeout_s``), merges the spool in, and
        claims at most ``redelivery_batch`` due alerts (:func:`demand_platform.alerts.claim_due_alerts`);
        closes it, makes one delivery round per alert until ``redelivery_budget_s`` is spent (a channel
        failing in this pass is not attempted again for the other alerts of the pass), then records the
        outcomes (spooled if the database is locked by then) and gives back the claims not attempted. A
        channel given up is logged at CRITICAL with the alert's text and details: the alert of last resort.

        Args:
            now: Time of the pass (default: now; tests move it to reach a backoff).

        Returns:
            What the pass did; ``locked`` says why it did nothing when the database was locked at its
            start (the due alerts wait for the next pass, nothing is lost).
        """
        log = dg.get_dagster_logger()
        started = time.monotonic()
        if not Path(self.pending_path).exists() and not self._spooled():
            return Redelivery()  # nothing pending: the database is not even opened
        try:
            with dbfile.connect(self.database, timeout_s=self.lock_timeout_s) as con:
                A.drain_spool(con, self.spool_path)
                due = A.claim_due_alerts(con, now, limit=self.redelivery_batch)
                if not due:
                    self._mark_pending(con, maybe=False)
        except (dbfile.DatabaseLockTimeout, duckdb.ConnectionException) as error:
            return Redelivery(locked=f"database locked ({error})")
        report = Redelivery(due=len(due))
        down: dict[str, str] = {}
        attempted: list[A.Alert] = []
        for alert in due:
            if time.monotonic() - started > self.redelivery_budget_s:
                break
            pending = alert.pending_channels
            gave_up = self.deliver(alert, now=now, down=down)
            attempted.append(alert)
            for channel in pending:
                state = alert.delivered_to[channel]
                if state == A.DELIVERED:
                    report.delivered.append((alert.alert_id, channel))
                elif channel in gave_up:
                    reason = state.removeprefix(A.GAVE_UP_PREFIX)
                    report.gave_up.append((alert.alert_id, channel, reason))
                    log.critical(
                        f"alert {alert.alert_id} NOT DELIVERED to {channel}, given up ({reason}): "
                        f"{alert.text()} raised at {alert.created_at.isoformat(timespec='seconds')}; "
                        f"details: {json.dumps(alert.details, default=str, sort_keys=True)}"
                    )
                else:
                    report.failed.append((alert.alert_id, channel, state.removeprefix(A.FAILED_PREFIX)))
        report.not_reached = len(due) - len(attempted)
        if due:
            report.spooled = not self._record_pass(attempted, due[len(attempted) :])
        return report

    def _record_pass(self, attempted: list[A.Alert], not_reached: list[A.Alert]) -> bool:
        """Record a pass's outcomes and give back its claims not attempted; spool the outcomes if locked.

        Claims left when the database is locked expire by themselves (:data:`demand_platform.alerts.CLAIM_S`).
        """
        try:
            with dbfile.connect(self.database, timeout_s=self.lock_timeout_s) as con:
                for alert in attempted:
                    A.record_alert(con, alert)
                A.release_claims(con, not_reached)
                drained = A.drain_spool(con, self.spool_path)
                self._mark_pending(con, maybe=bool(drained))
        except (dbfile.DatabaseLockTimeout, duckdb.ConnectionException) as error:
            for alert in attempted:
                A.spool_alert(self.spool_path, alert)
            dg.get_dagster_logger().warning(
                f"{len(attempted)} redelivery outcome(s) spooled to {self.spool_path}: database locked ({error})"
            )
            return False
        return True


def alert_resource_from_env(database: str, environ: dict[str, str] | None = None) -> AlertResource:
    """The alert resource of a platform database, delivery configured from environment variables.

    Reading ``os.environ`` (the default), each variable that is set is passed as a
    :class:`dagster.EnvVar` (resolved when the resource is used and shown by name in the UI); unset ones
    leave their channel off. An explicit ``environ`` mapping is read as literal values instead.

    Args:
        database: Path of the platform's DuckDB database.
        environ: Environment to read literally, or None for ``os.environ`` through ``EnvVar``.

    Returns:
        The resource.
    """
    env = os.environ if environ is None else environ
    fields = {"webhook_url": WEBHOOK_ENV, "email_to": EMAIL_ENV, "smtp_host": SMTP_HOST_ENV}
    kwargs: dict = {}
    for name, var in fields.items():
        if env.get(var):
            kwargs[name] = dg.EnvVar(var) if environ is None else env[var]
    if env.get(SMTP_PORT_ENV):
        kwargs["smtp_port"] = dg.EnvVar.int(SMTP_PORT_ENV) if environ is None else int(env[SMTP_PORT_ENV])
    return AlertResource(database=database, **kwargs)
