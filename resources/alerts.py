"""The alerting resource: record every alert in DuckDB, then deliver it to a webhook and/or by email.

Configuration from the environment (:func:`alert_resource_from_env`):

* ``DEMAND_PLATFORM_ALERT_WEBHOOK``: Slack-compatible incoming-webhook URL (optional);
* ``DEMAND_PLATFORM_ALERT_EMAIL``: recipient address(es), comma-separated (optional);
* ``DEMAND_PLATFORM_SMTP_HOST`` / ``DEMAND_PLATFORM_SMTP_PORT``: SMTP relay for the emails (port 25 by
  default). Email is sent only when both a recipient and a host are set.

The webhook URL usually embeds a token: it is passed as a :class:`dagster.EnvVar`, so the Dagster UI
shows the variable name, not the URL, and the ``alerts`` table never stores it.
"""

import os

import dagster as dg
import duckdb

from demand_platform import alerts as A
from demand_platform import dbfile

WEBHOOK_ENV = "DEMAND_PLATFORM_ALERT_WEBHOOK"
EMAIL_ENV = "DEMAND_PLATFORM_ALERT_EMAIL"
SMTP_HOST_ENV = "DEMAND_PLATFORM_SMTP_HOST"
SMTP_PORT_ENV = "DEMAND_PLATFORM_SMTP_PORT"

_LOG_LEVEL = {A.INFO: "info", A.WARNING: "warning", A.ERROR: "error", A.CRITICAL: "critical"}


class AlertResource(dg.ConfigurableResource):
    """Raise operational alerts: always recorded in the ``alerts`` table, optionally delivered.

    :meth:`send` logs the alert through Dagster's logger, delivers it to the webhook and the email
    recipients that are configured (a failed delivery is caught and written into the alert's
    ``delivered_to``, never raised), then records it with its delivery outcome. Recording opens a short
    read-write DuckDB connection under the platform lock (:mod:`demand_platform.dbfile`). Embedded DuckDB
    lets one process open the file at a time: while a run holds it (sensors run in the daemon, runs in
    their own processes), recording waits up to ``lock_timeout_s`` seconds. If the database is
    still locked, the alert goes to a JSON-lines spool next to the database
    (``<database>.alerts-spool.jsonl``), moved into the table by the next successful recording: an alert
    is never lost and a busy database never delays a sensor tick for long.

    Attributes:
        database: Path of the platform's DuckDB database.
        webhook_url: Slack-compatible incoming-webhook URL, or None for no webhook delivery.
        email_to: Recipient address(es), comma-separated, or None for no email.
        smtp_host: SMTP relay host (email is sent only when this and ``email_to`` are set).
        smtp_port: SMTP relay port.
        email_from: ``From`` address of the emails.
        lock_timeout_s: How long to retry opening a locked database before spooling.
        delivery_timeout_s: Timeout of each delivery (webhook request, SMTP connection).
    """

    database: str
    webhook_url: str | None = None
    email_to: str | None = None
    smtp_host: str | None = None
    smtp_port: int = 25
    email_from: str = "demand-platform@localhost"
    lock_timeout_s: float = 15.0
    delivery_timeout_s: float = 10.0

    @property
    def spool_path(self) -> str:
        """The JSON-lines file holding alerts that could not be recorded yet (database locked)."""
        return f"{self.database}.alerts-spool.jsonl"

    def send(self, kind: str, severity: str, subject: str, details: dict | None = None) -> A.Alert:
        """Raise an alert: log it, deliver it where configured, record it.

        Args:
            kind: What happened (``freshness``, ``run_failure``, ``data_quality``, ``drift``,
                ``promotion_rejected``...).
            severity: ``info``, ``warning``, ``error`` or ``critical``.
            subject: One-line summary.
            details: JSON-serialisable context.

        Returns:
            The alert, with ``delivered_to`` filled in.
        """
        alert = A.Alert(kind=kind, severity=severity, subject=subject, details=dict(details or {}))
        log = dg.get_dagster_logger()
        getattr(log, _LOG_LEVEL.get(severity, "warning"))(f"alert {alert.alert_id}: {alert.text()}")
        self.deliver(alert)
        for channel, outcome in alert.delivered_to.items():
            if outcome != A.DELIVERED:
                log.error(f"alert {alert.alert_id} not delivered to {channel}: {outcome}")
        self.record(alert)
        return alert

    def deliver(self, alert: A.Alert) -> None:
        """Deliver ``alert`` to the configured channels, writing each outcome into ``delivered_to``."""
        if self.webhook_url:
            try:
                A.post_webhook(self.webhook_url, alert, timeout=self.delivery_timeout_s)
                alert.delivered_to[A.WEBHOOK] = A.DELIVERED
            except Exception as error:  # any failure is recorded, never raised
                alert.delivered_to[A.WEBHOOK] = f"{A.FAILED_PREFIX}{type(error).__name__}: {error}"
        if self.email_to and self.smtp_host:
            channel = f"{A.EMAIL_PREFIX}{self.email_to}"
            try:
                A.send_email(
                    self.smtp_host,
                    self.smtp_port,
                    self.email_from,
                    self.email_to,
                    alert,
                    timeout=self.delivery_timeout_s,
                )
                alert.delivered_to[channel] = A.DELIVERED
            except Exception as error:
                alert.delivered_to[channel] = f"{A.FAILED_PREFIX}{type(error).__name__}: {error}"

    def record(self, alert: A.Alert) -> bool:
        """Insert ``alert`` into the ``alerts`` table, or spool it if the database stays locked.

        The connection is opened under the platform lock (:func:`demand_platform.dbfile.connect`),
        waiting up to ``lock_timeout_s`` for other processes' connections to close (and for DuckDB's own
        lock, held by a process outside the platform lock).

        Returns:
            True when the alert is in the table, False when it was spooled.
        """
        try:
            with dbfile.connect(self.database, timeout_s=self.lock_timeout_s) as con:
                A.record_alert(con, alert)
                A.drain_spool(con, self.spool_path)
        except (dbfile.DatabaseLockTimeout, duckdb.ConnectionException) as error:
            # ConnectionException: this process holds the file open read-only (e.g. a summary that raises
            # an alert); the spool keeps the alert for the next recording.
            A.spool_alert(self.spool_path, alert)
            dg.get_dagster_logger().warning(
                f"alert {alert.alert_id} spooled to {self.spool_path}: database locked ({error})"
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
