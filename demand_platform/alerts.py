"""Operational alerts: the ``alerts`` table in DuckDB and delivery to a webhook or by email.

Every alert the platform raises (a late partition, a failed run, a failed data-quality check, forecast
drift, a rejected model promotion) is one :class:`Alert`. It is always kept in the ``alerts`` table
(:func:`record_alert`), whatever happens to its delivery, so the table is the audit trail of what the
platform told (or tried to tell) its operators. Delivery is optional:

* :func:`post_webhook` posts a Slack-compatible JSON body (``text`` plus ``blocks``) with ``urllib``;
  Slack incoming webhooks, Mattermost, Teams workflows and most chat bridges accept it;
* :func:`send_email` sends a plain-text mail through an SMTP relay with ``smtplib``.

Both raise on failure; the caller decides what to do with a failed delivery (the Dagster resource
records it in ``delivered_to``). Webhook URLs usually embed a secret, so they are never stored in the
table: ``delivered_to`` names channels (``webhook``, ``email:<address>``), not URLs.

When the database is locked by another process (embedded DuckDB admits one writer process),
:func:`spool_alert` appends the alert to a JSON-lines file instead and :func:`drain_spool` moves spooled
alerts into the table later; inserting is idempotent on ``alert_id``.
"""

import datetime as dt
import json
import os
import smtplib
import urllib.request
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

# --- table and columns ---------------------------------------------------------------------------------
ALERTS = "alerts"
ALERT_ID = "alert_id"
CREATED_AT = "created_at"
KIND = "kind"
SEVERITY = "severity"
SUBJECT = "subject"
DETAILS = "details"
DELIVERED_TO = "delivered_to"
ALERT_COLUMNS = (ALERT_ID, CREATED_AT, KIND, SEVERITY, SUBJECT, DETAILS, DELIVERED_TO)

# --- kinds -----------------------------------------------------------------------------------------------
FRESHNESS = "freshness"
RUN_FAILURE = "run_failure"
DATA_QUALITY = "data_quality"
DRIFT = "drift"
PROMOTION_REJECTED = "promotion_rejected"
KINDS = (FRESHNESS, RUN_FAILURE, DATA_QUALITY, DRIFT, PROMOTION_REJECTED)

# --- severities ------------------------------------------------------------------------------------------
INFO = "info"
WARNING = "warning"
ERROR = "error"
CRITICAL = "critical"
SEVERITIES = (INFO, WARNING, ERROR, CRITICAL)

# --- delivery outcomes in ``delivered_to`` ----------------------------------------------------------------
DELIVERED = "ok"
FAILED_PREFIX = "failed: "
WEBHOOK = "webhook"
EMAIL_PREFIX = "email:"

#: Slack rejects a section block whose text exceeds 3,000 characters.
_SLACK_BLOCK_LIMIT = 3000

_DDL = f"""
CREATE TABLE IF NOT EXISTS {ALERTS} (
    {ALERT_ID} VARCHAR PRIMARY KEY,
    {CREATED_AT} TIMESTAMPTZ NOT NULL,
    {KIND} VARCHAR NOT NULL,
    {SEVERITY} VARCHAR NOT NULL,
    {SUBJECT} VARCHAR NOT NULL,
    {DETAILS} JSON,
    {DELIVERED_TO} JSON
)
"""


def _json(value: Any) -> str:
    """JSON text of ``value``; dates, paths and other objects become their ``str``."""
    return json.dumps(value, default=str, sort_keys=True)


@dataclass
class Alert:
    """One alert raised by the platform.

    Attributes:
        kind: What happened: one of :data:`KINDS` (other strings are accepted).
        severity: One of :data:`SEVERITIES`.
        subject: One-line summary, e.g. ``forecasts late for 2024-01-03: W2``.
        details: JSON-serialisable context (partition, run id, check name, metrics...).
        alert_id: Unique id (a random UUID by default).
        created_at: When the alert was raised (UTC).
        delivered_to: Delivery outcome per channel: ``{"webhook": "ok"}``,
            ``{"email:ops@example.com": "failed: <error>"}``; empty when no channel is configured.
    """

    kind: str
    severity: str
    subject: str
    details: dict[str, Any] = field(default_factory=dict)
    alert_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    created_at: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))
    delivered_to: dict[str, str] = field(default_factory=dict)

    @property
    def delivery_failed(self) -> bool:
        """Whether some configured channel failed to take the alert."""
        return any(v != DELIVERED for v in self.delivered_to.values())

    def text(self) -> str:
        """The one-line text of the alert (``[ERROR] freshness: subject``)."""
        return f"[{self.severity.upper()}] {self.kind}: {self.subject}"

    def to_json(self) -> str:
        """The alert as one JSON object (the spool format)."""
        return _json(
            {
                ALERT_ID: self.alert_id,
                CREATED_AT: self.created_at.isoformat(),
                KIND: self.kind,
                SEVERITY: self.severity,
                SUBJECT: self.subject,
                DETAILS: self.details,
                DELIVERED_TO: self.delivered_to,
            }
        )

    @classmethod
    def from_json(cls, text: str) -> "Alert":
        """Read an alert written by :meth:`to_json`."""
        raw = json.loads(text)
        return cls(
            kind=raw[KIND],
            severity=raw[SEVERITY],
            subject=raw[SUBJECT],
            details=raw.get(DETAILS) or {},
            alert_id=raw[ALERT_ID],
            created_at=dt.datetime.fromisoformat(raw[CREATED_AT]),
            delivered_to=raw.get(DELIVERED_TO) or {},
        )


def ensure_alerts_table(con: duckdb.DuckDBPyConnection) -> None:
    """Create the ``alerts`` table when it does not exist yet."""
    con.execute(_DDL)


def record_alert(con: duckdb.DuckDBPyConnection, alert: Alert) -> None:
    """Insert ``alert`` into the ``alerts`` table (created on first use).

    Inserting the same ``alert_id`` twice keeps the first row, so replaying a spool is harmless.

    Args:
        con: Read-write connection to the platform database.
        alert: The alert.
    """
    ensure_alerts_table(con)
    con.execute(
        f"INSERT OR IGNORE INTO {ALERTS} ({', '.join(ALERT_COLUMNS)}) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        [
            alert.alert_id,
            alert.created_at,
            alert.kind,
            alert.severity,
            alert.subject,
            _json(alert.details),
            _json(alert.delivered_to),
        ],
    )


def read_alerts(con: duckdb.DuckDBPyConnection, kind: str | None = None) -> pd.DataFrame:
    """The recorded alerts, oldest first (an empty frame with the columns when none were recorded).

    Args:
        con: Connection to the platform database (read-only is fine once the table exists).
        kind: Only alerts of this kind.

    Returns:
        One row per alert with :data:`ALERT_COLUMNS`; ``details`` and ``delivered_to`` are decoded into
        dicts.
    """
    exists = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = $t", {"t": ALERTS}
    ).fetchone()
    if not (exists and exists[0]):
        return pd.DataFrame({c: pd.Series(dtype=object) for c in ALERT_COLUMNS})
    where, params = ("", {}) if kind is None else (f"WHERE {KIND} = $kind", {"kind": kind})
    frame = con.execute(
        f"SELECT {', '.join(ALERT_COLUMNS)} FROM {ALERTS} {where} ORDER BY {CREATED_AT}, {ALERT_ID}", params
    ).df()
    for column in (DETAILS, DELIVERED_TO):
        frame[column] = pd.Series(
            [json.loads(v) if isinstance(v, str) else (v or {}) for v in frame[column]],
            index=frame.index,
            dtype=object,
        )
    return frame


# --- spool (database locked) ------------------------------------------------------------------------------


def spool_alert(path: str | os.PathLike[str], alert: Alert) -> None:
    """Append ``alert`` to a JSON-lines spool file (used while the database is locked).

    Args:
        path: Spool file; created with its directory when missing.
        alert: The alert.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.open("a", encoding="utf-8") as handle:
        handle.write(alert.to_json() + "\n")


def drain_spool(con: duckdb.DuckDBPyConnection, path: str | os.PathLike[str]) -> int:
    """Move the spooled alerts of ``path`` into the ``alerts`` table.

    The spool is first renamed (atomically) so that alerts spooled meanwhile go to a fresh file, then
    read, inserted and deleted. A crash in between leaves the renamed file, picked up by the next drain.

    Args:
        con: Read-write connection to the platform database.
        path: Spool file written by :func:`spool_alert`.

    Returns:
        The number of spooled alerts read.
    """
    spool = Path(path)
    leftovers = sorted(spool.parent.glob(f"{spool.name}.draining-*")) if spool.parent.exists() else []
    if spool.exists():
        claimed = spool.with_name(f"{spool.name}.draining-{uuid.uuid4().hex}")
        try:
            os.replace(spool, claimed)
            leftovers.append(claimed)
        except FileNotFoundError:  # another process drained it first
            pass
    n = 0
    for file in leftovers:
        try:
            lines = file.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            continue
        for line in lines:
            if line.strip():
                record_alert(con, Alert.from_json(line))
                n += 1
        file.unlink(missing_ok=True)
    return n


# --- delivery --------------------------------------------------------------------------------------------


def _details_text(details: Mapping[str, Any], limit: int) -> str:
    text = json.dumps(details, default=str, indent=2, sort_keys=True)
    return text if len(text) <= limit else text[: limit - 15] + "\n... (truncated)"


def slack_payload(alert: Alert) -> dict[str, Any]:
    """The Slack-compatible webhook body of an alert: ``text`` (fallback) and ``blocks``.

    Args:
        alert: The alert.

    Returns:
        ``{"text": ..., "blocks": [header section, details section]}``.
    """
    header = f"*{alert.text()}*\n`{alert.alert_id}` at {alert.created_at.isoformat(timespec='seconds')}"
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": header[:_SLACK_BLOCK_LIMIT]}}
    ]
    if alert.details:
        details = _details_text(alert.details, _SLACK_BLOCK_LIMIT - 8)
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": f"```{details}```"}})
    return {"text": alert.text(), "blocks": blocks}


def post_webhook(url: str, alert: Alert, timeout: float = 10) -> None:
    """POST the alert as Slack-compatible JSON to ``url``.

    Args:
        url: Webhook URL (``http`` or ``https``).
        alert: The alert.
        timeout: Seconds to wait for the connection and the response.

    Raises:
        ValueError: If ``url`` is not an http(s) URL.
        urllib.error.URLError: If the server cannot be reached or answers with an HTTP error status.
    """
    if not url.lower().startswith(("http://", "https://")):
        raise ValueError(f"webhook URL must be http(s), got {url.split(':', 1)[0]!r}")
    body = json.dumps(slack_payload(alert), default=str).encode("utf-8")
    request = urllib.request.Request(
        url,
        data=body,
        method="POST",
        headers={"Content-Type": "application/json; charset=utf-8", "User-Agent": "demand-platform"},
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:  # scheme checked above
        response.read()


def email_message(sender: str, to: str, alert: Alert) -> EmailMessage:
    """The plain-text email of an alert.

    Args:
        sender: ``From`` address.
        to: Recipient(s), comma-separated.
        alert: The alert.

    Returns:
        The message, ready for ``smtplib``.
    """
    message = EmailMessage()
    message["Subject"] = alert.text()
    message["From"] = sender
    message["To"] = to
    message.set_content(
        f"{alert.text()}\n\nalert_id: {alert.alert_id}\ncreated_at: {alert.created_at.isoformat()}\n\n"
        f"{_details_text(alert.details, 100_000)}\n"
    )
    return message


def send_email(smtp_host: str, port: int, sender: str, to: str, alert: Alert, timeout: float = 10) -> None:
    """Send the alert by email through an SMTP relay (no authentication, no TLS: a local relay).

    Args:
        smtp_host: SMTP server host.
        port: SMTP server port.
        sender: ``From`` address.
        to: Recipient(s), comma-separated.
        alert: The alert.
        timeout: Seconds to wait on the connection.

    Raises:
        OSError: If the server cannot be reached.
        smtplib.SMTPException: If the server refuses the message.
    """
    with smtplib.SMTP(smtp_host, port, timeout=timeout) as smtp:
        smtp.send_message(email_message(sender, to, alert))
