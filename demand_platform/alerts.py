"""Operational alerts: the ``alerts`` table in DuckDB (an outbox) and delivery to a webhook or by email.

Every alert the platform raises (a late partition, a failed run, a failed data-quality check, forecast
drift, a rejected model promotion) is one :class:`Alert`. It is always kept in the ``alerts`` table
(:func:`record_alert`), whatever happens to its delivery, so the table is the audit trail of what the
platform told (or tried to tell) its operators. Delivery is optional:

* :func:`post_webhook` posts a Slack-compatible JSON body (``text`` plus ``blocks``) with ``urllib``;
  Slack incoming webhooks, Mattermost, Teams workflows and most chat bridges accept it;
* :func:`send_email` sends a plain-text mail through an SMTP relay with ``smtplib``.

Both raise on failure; the caller decides what to do with a failed delivery (the Dagster resource
records it in ``delivered_to``).

**The table is an outbox.** Each alert keeps, per channel, its delivery state in ``delivered_to``:
``ok`` (delivered: never sent to that channel again), ``failed: <error>`` (to be delivered again) or
``gave up: <reason>`` (no more attempts); ``attempts`` counts the delivery rounds made and
``next_attempt_at`` says when the failed channels are due again (NULL when none is). The schedule is the
caller's (:func:`settle_delivery` takes the delay after each attempt: the Dagster resource uses a
``dagster.RetryPolicy`` with exponential backoff), bounded by a number of attempts after which the failed
channels are given up. A redelivery pass takes the due alerts with :func:`claim_due_alerts`, which also
pushes their ``next_attempt_at`` :data:`CLAIM_S` ahead so that a second pass running meanwhile (a sensor
evaluation that outlived its tick) cannot deliver them twice; the pass records the outcomes, or its
crash lets the claim expire and the alerts come due again.

**Channels are names, never addresses of secrets.** Webhook URLs usually embed a token (a Slack
incoming-webhook URL *is* the credential), and the table is read by anyone holding the database file
(reports, notebooks, backups): ``delivered_to`` names channels (``webhook``, ``email:<address>``), not URLs,
and the resource blanks the URL out of error texts. A redelivery therefore goes to the webhook configured
*when it is made*: a rotated URL receives the alerts still pending, and a channel no longer configured is
given up at once (there is nowhere to send it).

When the database is locked by another process (embedded DuckDB admits one writer process),
:func:`spool_alert` appends the alert, with its delivery state, to a JSON-lines file instead and
:func:`drain_spool` moves spooled alerts into the table later. Recording merges with the row already
stored (:func:`merge_alerts`: a delivered channel stays delivered, the more advanced attempt wins), so
replaying a spool, or recording the same alert twice, is harmless and never brings back an attempt that
was already made.

**Incidents.** A check judged again and again on the same subject (the freshness of one due day) must not
alert at every failed evaluation: :func:`incident_transitions` turns a sequence of pass/fail outcomes
keyed by day into the two notices of an incident, ``open`` at the first failure of a day and
``resolved`` at the first pass after it, from a small ``day -> state`` map the caller keeps. Each notice
has a deterministic id (:func:`incident_alert_id`), so recording it twice merges into one row, and a
sender that finds the id already recorded (:func:`stored_alert`, :func:`spooled_alert`) knows the notice
went out.
"""

import datetime as dt
import json
import os
import smtplib
import urllib.request
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from demand_platform import dbfile

# --- table and columns ---------------------------------------------------------------------------------
ALERTS = "alerts"
ALERT_ID = "alert_id"
CREATED_AT = "created_at"
KIND = "kind"
SEVERITY = "severity"
SUBJECT = "subject"
DETAILS = "details"
DELIVERED_TO = "delivered_to"
ATTEMPTS = "attempts"
NEXT_ATTEMPT_AT = "next_attempt_at"
ALERT_COLUMNS = (
    ALERT_ID,
    CREATED_AT,
    KIND,
    SEVERITY,
    SUBJECT,
    DETAILS,
    DELIVERED_TO,
    ATTEMPTS,
    NEXT_ATTEMPT_AT,
)
#: Columns added to tables made before the outbox (rows recorded then have NULL: never redelivered).
_ADDED_COLUMNS = {ATTEMPTS: "INTEGER", NEXT_ATTEMPT_AT: "TIMESTAMPTZ"}

# --- kinds -----------------------------------------------------------------------------------------------
FRESHNESS = "freshness"
#: The end of a freshness incident: the late day's forecasts exist in every warehouse (severity info).
FRESHNESS_RESOLVED = "freshness_resolved"
RUN_FAILURE = "run_failure"
DATA_QUALITY = "data_quality"
DRIFT = "drift"
PROMOTION_REJECTED = "promotion_rejected"
KINDS = (FRESHNESS, FRESHNESS_RESOLVED, RUN_FAILURE, DATA_QUALITY, DRIFT, PROMOTION_REJECTED)

# --- severities ------------------------------------------------------------------------------------------
INFO = "info"
WARNING = "warning"
ERROR = "error"
CRITICAL = "critical"
SEVERITIES = (INFO, WARNING, ERROR, CRITICAL)

# --- delivery outcomes in ``delivered_to`` ----------------------------------------------------------------
DELIVERED = "ok"
FAILED_PREFIX = "failed: "
GAVE_UP_PREFIX = "gave up: "
WEBHOOK = "webhook"
EMAIL_PREFIX = "email:"

# --- incidents (one alert when a day's check starts failing, one when it passes again) -----------------
#: State of an incident: alerted, not passed since.
OPEN = "open"
#: State of an incident: passed again after it was alerted (the "resolved" notice was sent).
RESOLVED = "resolved"
#: Incidents are remembered this many days back from the newest one; older ones are forgotten.
INCIDENT_DAYS = 31

#: Seconds a redelivery pass holds the alerts it took before another pass may take them again.
CLAIM_S = 600.0

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
    {DELIVERED_TO} JSON,
    {ATTEMPTS} INTEGER,
    {NEXT_ATTEMPT_AT} TIMESTAMPTZ
)
"""


def _json(value: Any) -> str:
    """JSON text of ``value``; dates, paths and other objects become their ``str``."""
    return json.dumps(value, default=str, sort_keys=True)


@dataclass
class Alert:
    """One alert raised by the platform, with its delivery state.

    Attributes:
        kind: What happened: one of :data:`KINDS` (other strings are accepted).
        severity: One of :data:`SEVERITIES`.
        subject: One-line summary, e.g. ``forecasts late for 2024-01-03: W2``.
        details: JSON-serialisable context (partition, run id, check name, metrics...).
        alert_id: Unique id (a random UUID by default).
        created_at: When the alert was raised (UTC).
        delivered_to: Delivery state per channel: ``{"webhook": "ok"}``,
            ``{"email:ops@example.com": "failed: <error>"}``, ``"gave up: <reason>"``; empty when no
            channel is configured.
        attempts: Delivery rounds made (0 before the first; each round tries every pending channel).
        next_attempt_at: When the failed channels are due again (UTC), or None when no channel is pending.
    """

    kind: str
    severity: str
    subject: str
    details: dict[str, Any] = field(default_factory=dict)
    alert_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    created_at: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))
    delivered_to: dict[str, str] = field(default_factory=dict)
    attempts: int = 0
    next_attempt_at: dt.datetime | None = None

    @property
    def delivery_failed(self) -> bool:
        """Whether some configured channel has not taken the alert (failed so far, or given up)."""
        return any(v != DELIVERED for v in self.delivered_to.values())

    @property
    def pending_channels(self) -> list[str]:
        """The channels whose delivery failed and will be attempted again."""
        return sorted(c for c, v in self.delivered_to.items() if v.startswith(FAILED_PREFIX))

    @property
    def abandoned_channels(self) -> list[str]:
        """The channels given up (attempts exhausted, or the channel is no longer configured)."""
        return sorted(c for c, v in self.delivered_to.items() if v.startswith(GAVE_UP_PREFIX))

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
                ATTEMPTS: self.attempts,
                NEXT_ATTEMPT_AT: None if self.next_attempt_at is None else self.next_attempt_at.isoformat(),
            }
        )

    @classmethod
    def from_json(cls, text: str) -> "Alert":
        """Read an alert written by :meth:`to_json` (spool lines written before the outbox included)."""
        raw = json.loads(text)
        next_at = raw.get(NEXT_ATTEMPT_AT)
        return cls(
            kind=raw[KIND],
            severity=raw[SEVERITY],
            subject=raw[SUBJECT],
            details=raw.get(DETAILS) or {},
            alert_id=raw[ALERT_ID],
            created_at=dt.datetime.fromisoformat(raw[CREATED_AT]),
            delivered_to=raw.get(DELIVERED_TO) or {},
            attempts=int(raw.get(ATTEMPTS) or 0),
            next_attempt_at=dt.datetime.fromisoformat(next_at) if next_at else None,
        )


# --- incidents -----------------------------------------------------------------------------------------


def incident_transitions(
    state: Mapping[str, str], outcomes: Sequence[tuple[str | None, bool]], keep_days: int = INCIDENT_DAYS
) -> tuple[dict[str, str], list[tuple[int, str]]]:
    """The incident notices due for new check outcomes, and the incident state after them.

    A failure of a day with no incident opens one (notice :data:`OPEN`); further failures of that day
    say nothing, whether the incident is open or already resolved (one incident per day). A pass of a
    day whose incident is open resolves it (notice :data:`RESOLVED`); a pass of any other day says
    nothing. A failure without a day (an outcome the caller cannot key) is a notice of its own every time.
    Days more than ``keep_days`` before the newest day of the state are forgotten (an incident still open
    then is dropped without notice: no later outcome of the check concerns it).

    Args:
        state: Day (ISO date) -> :data:`OPEN` or :data:`RESOLVED`, as returned by the previous call.
        outcomes: ``(day, passed)`` in the order they happened.
        keep_days: How many days of incidents to remember before the newest.

    Returns:
        The new state, and the notices as ``(index in outcomes, OPEN or RESOLVED)`` in order.
    """
    new = dict(state)
    notices: list[tuple[int, str]] = []
    for i, (day, passed) in enumerate(outcomes):
        if day is None:
            if not passed:
                notices.append((i, OPEN))
        elif not passed and day not in new:
            new[day] = OPEN
            notices.append((i, OPEN))
        elif passed and new.get(day) == OPEN:
            new[day] = RESOLVED
            notices.append((i, RESOLVED))
    if new:
        oldest = (dt.date.fromisoformat(max(new)) - dt.timedelta(days=keep_days)).isoformat()
        new = {day: value for day, value in new.items() if day >= oldest}
    return new, notices


def incident_alert_id(subject: str, day: str, notice: str) -> str:
    """The deterministic id of an incident's notice: one alert row per (subject, day, notice).

    Args:
        subject: What is judged (e.g. the check's name, ``forecasts:forecasts_freshness``).
        day: The incident's day (ISO date).
        notice: :data:`OPEN` or :data:`RESOLVED`.
    """
    return f"{subject}@{day}:{notice}"


# --- delivery state ------------------------------------------------------------------------------------


def _utc(value: dt.datetime | None) -> dt.datetime:
    """``value`` as an aware UTC datetime (now when None; naive values are read as UTC)."""
    if value is None:
        return dt.datetime.now(dt.UTC)
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def settle_delivery(
    alert: Alert,
    outcomes: Mapping[str, str | None],
    max_attempts: int,
    delay_after: Callable[[int], float],
    now: dt.datetime | None = None,
) -> list[str]:
    """Write one delivery round into ``alert``: channel states, attempt count, next attempt.

    A round with outcomes counts as one attempt. When ``max_attempts`` rounds have been made, the
    channels still failing are given up (``gave up: after N attempts: <last error>``); otherwise the
    next attempt is due ``delay_after(attempts)`` seconds after ``now``.

    Args:
        alert: The alert (updated in place).
        outcomes: Channel -> None when delivered, else the error text. Empty for a round that attempted
            nothing (the next attempt is recomputed all the same).
        max_attempts: Rounds after which a channel that keeps failing is given up (at least 1).
        delay_after: Seconds to wait after the ``n``-th attempt (e.g. ``RetryPolicy.calculate_delay``).
        now: Time of the round (default: now).

    Returns:
        The channels given up by this round.
    """
    if outcomes:
        alert.attempts += 1
    for channel, error in outcomes.items():
        alert.delivered_to[channel] = DELIVERED if error is None else f"{FAILED_PREFIX}{error}"
    gave_up: list[str] = []
    if alert.attempts >= max_attempts:
        for channel in alert.pending_channels:
            last = alert.delivered_to[channel].removeprefix(FAILED_PREFIX)
            alert.delivered_to[channel] = f"{GAVE_UP_PREFIX}after {alert.attempts} attempts: {last}"
            gave_up.append(channel)
    if alert.pending_channels:
        alert.next_attempt_at = _utc(now) + dt.timedelta(seconds=max(float(delay_after(alert.attempts)), 0.0))
    else:
        alert.next_attempt_at = None
    return gave_up


def give_up_channel(alert: Alert, channel: str, reason: str) -> None:
    """Give up delivering ``alert`` to ``channel`` without an attempt (e.g. it is no longer configured).

    Args:
        alert: The alert (updated in place; ``next_attempt_at`` cleared when nothing is pending).
        channel: The channel.
        reason: Why, kept in ``delivered_to``.
    """
    alert.delivered_to[channel] = f"{GAVE_UP_PREFIX}{reason}"
    if not alert.pending_channels:
        alert.next_attempt_at = None


def _progress(alert: Alert) -> tuple[int, bool, dt.datetime]:
    """How far an alert's delivery went: more attempts, then settled, then the later next attempt."""
    settled = alert.next_attempt_at is None
    return (
        alert.attempts,
        settled,
        _utc(alert.next_attempt_at) if not settled else dt.datetime.min.replace(tzinfo=dt.UTC),
    )


def merge_alerts(stored: Alert, incoming: Alert) -> Alert:
    """Two records of the same alert merged into the most advanced delivery state.

    Per channel, ``ok`` wins over anything (a delivered channel is never attempted again), then
    ``gave up``, then the state of the record with more attempts. The attempt count is the larger one;
    the next attempt is the more advanced record's (a later one on a tie, so a claim is kept), or None
    when no channel is pending. The merge is idempotent and, for what delivery depends on (delivered and
    given-up channels, attempts), order-independent: replaying a spool, or recording the outcome of a
    round over its stored claim, never brings back an attempt already made.

    Args:
        stored: The alert as stored in the table.
        incoming: The alert being recorded (same ``alert_id``).

    Returns:
        The merged alert (content fields from ``stored``).
    """
    ahead, behind = (incoming, stored) if _progress(incoming) > _progress(stored) else (stored, incoming)
    delivered: dict[str, str] = {}
    for channel in sorted(set(stored.delivered_to) | set(incoming.delivered_to)):
        states = [r.delivered_to[channel] for r in (ahead, behind) if channel in r.delivered_to]
        ok = [v for v in states if v == DELIVERED]
        abandoned = [v for v in states if v.startswith(GAVE_UP_PREFIX)]
        delivered[channel] = ok[0] if ok else abandoned[0] if abandoned else states[0]
    merged = Alert(
        kind=stored.kind,
        severity=stored.severity,
        subject=stored.subject,
        details=stored.details,
        alert_id=stored.alert_id,
        created_at=stored.created_at,
        delivered_to=delivered,
        attempts=max(stored.attempts, incoming.attempts),
    )
    if merged.pending_channels:
        merged.next_attempt_at = ahead.next_attempt_at or behind.next_attempt_at or _utc(None)
    return merged


# --- table -----------------------------------------------------------------------------------------------


def _columns(con: duckdb.DuckDBPyConnection) -> set[str]:
    """The columns of the ``alerts`` table (empty when it does not exist)."""
    rows = con.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_name = $t", {"t": ALERTS}
    ).fetchall()
    return {name for (name,) in rows}


def ensure_alerts_table(con: duckdb.DuckDBPyConnection) -> None:
    """Create the ``alerts`` table when it does not exist yet, and add the outbox columns to an old one.

    Rows recorded before the outbox keep NULL attempts and next attempt: they are never redelivered.
    """
    have = _columns(con)
    if not have:
        # A lake has no PRIMARY KEY: ids stay unique because record_alert merges into the stored row.
        con.execute(_DDL.replace(" PRIMARY KEY", "") if dbfile.on_lake(con) else _DDL)
        return
    for name, sql_type in _ADDED_COLUMNS.items():
        if name not in have:
            con.execute(f"ALTER TABLE {ALERTS} ADD COLUMN IF NOT EXISTS {name} {sql_type}")


def _from_row(row: Mapping[str, Any]) -> Alert:
    """An alert from a table row (JSON columns as text or decoded)."""

    def decoded(value: Any) -> dict:
        return json.loads(value) if isinstance(value, str) else dict(value or {})

    created, next_at, attempts = row[CREATED_AT], row.get(NEXT_ATTEMPT_AT), row.get(ATTEMPTS)
    return Alert(
        kind=row[KIND],
        severity=row[SEVERITY],
        subject=row[SUBJECT],
        details=decoded(row[DETAILS]),
        alert_id=row[ALERT_ID],
        created_at=_utc(pd.Timestamp(created).to_pydatetime()),
        delivered_to=decoded(row[DELIVERED_TO]),
        attempts=0 if attempts is None or pd.isna(attempts) else int(attempts),
        next_attempt_at=None
        if next_at is None or pd.isna(next_at)
        else _utc(pd.Timestamp(next_at).to_pydatetime()),
    )


def _select(
    con: duckdb.DuckDBPyConnection, where: str, params: Mapping[str, Any], tail: str = ""
) -> list[Alert]:
    cursor = con.execute(
        f"SELECT {', '.join(ALERT_COLUMNS)} FROM {ALERTS} WHERE {where} {tail}", dict(params)
    )
    return [_from_row(dict(zip(ALERT_COLUMNS, row, strict=True))) for row in cursor.fetchall()]


def stored_alert(con: duckdb.DuckDBPyConnection, alert_id: str) -> Alert | None:
    """The alert ``alert_id`` as stored in the table, or None (also when there is no table).

    Args:
        con: Connection to the platform database, the table in its current schema
            (:func:`ensure_alerts_table`).
        alert_id: The alert's id.
    """
    if not _columns(con):
        return None
    found = _select(con, f"{ALERT_ID} = $id", {"id": alert_id})
    return found[0] if found else None


def record_alert(con: duckdb.DuckDBPyConnection, alert: Alert) -> None:
    """Insert ``alert`` into the ``alerts`` table (created on first use), or merge it into its row.

    An alert already stored is merged with :func:`merge_alerts` (a delivered channel stays delivered, the
    most advanced attempt wins), so replaying a spool or recording twice is harmless.

    Args:
        con: Read-write connection to the platform database.
        alert: The alert.
    """
    ensure_alerts_table(con)
    stored = stored_alert(con, alert.alert_id)
    if stored is None:
        con.execute(
            f"INSERT INTO {ALERTS} ({', '.join(ALERT_COLUMNS)}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            [
                alert.alert_id,
                alert.created_at,
                alert.kind,
                alert.severity,
                alert.subject,
                _json(alert.details),
                _json(alert.delivered_to),
                alert.attempts,
                alert.next_attempt_at,
            ],
        )
        return
    merged = merge_alerts(stored, alert)
    if (merged.delivered_to, merged.attempts, merged.next_attempt_at) == (
        stored.delivered_to,
        stored.attempts,
        stored.next_attempt_at,
    ):
        return
    con.execute(
        f"UPDATE {ALERTS} SET {DELIVERED_TO} = $d, {ATTEMPTS} = $n, {NEXT_ATTEMPT_AT} = $t WHERE {ALERT_ID} = $id",
        {
            "d": _json(merged.delivered_to),
            "n": merged.attempts,
            "t": merged.next_attempt_at,
            "id": alert.alert_id,
        },
    )


def has_pending(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether some recorded alert has a channel to deliver again (due now or later, or claimed)."""
    if NEXT_ATTEMPT_AT not in _columns(con):
        return False
    row = con.execute(f"SELECT count(*) FROM {ALERTS} WHERE {NEXT_ATTEMPT_AT} IS NOT NULL").fetchone()
    return bool(row and row[0])


def claim_due_alerts(
    con: duckdb.DuckDBPyConnection, now: dt.datetime | None = None, limit: int = 50, claim_s: float = CLAIM_S
) -> list[Alert]:
    """Take the alerts whose failed channels are due, and hold them for ``claim_s`` seconds.

    Selects the alerts with ``next_attempt_at <= now`` (oldest due first) and, in the same transaction,
    moves their ``next_attempt_at`` to ``now + claim_s``: another pass meanwhile does not take them, and a
    pass that dies before recording its outcomes lets them come due again after the claim. The returned
    alerts carry the ``next_attempt_at`` they had before the claim.

    Args:
        con: Read-write connection to the platform database.
        now: The pass's time (default: now).
        limit: Most alerts taken.
        claim_s: Seconds the claim holds.

    Returns:
        The due alerts, oldest due first.
    """
    ensure_alerts_table(con)
    at = _utc(now)

    def claim(con: duckdb.DuckDBPyConnection) -> list[Alert]:
        due = _select(
            con,
            f"{NEXT_ATTEMPT_AT} IS NOT NULL AND {NEXT_ATTEMPT_AT} <= $now",
            {"now": at},
            f"ORDER BY {NEXT_ATTEMPT_AT}, {ALERT_ID} LIMIT {int(limit)}",
        )
        if due:
            con.execute(
                f"UPDATE {ALERTS} SET {NEXT_ATTEMPT_AT} = $until WHERE list_contains($ids, {ALERT_ID})",
                {"until": at + dt.timedelta(seconds=claim_s), "ids": [a.alert_id for a in due]},
            )
        return due

    return dbfile.write_transaction(con, claim)


def release_claims(con: duckdb.DuckDBPyConnection, alerts: Sequence[Alert]) -> None:
    """Give back alerts claimed by :func:`claim_due_alerts` but not attempted (the pass ran out of time).

    Each alert's ``next_attempt_at`` returns to the value it was claimed with, unless its row moved on
    meanwhile (another attempt recorded).

    Args:
        con: Read-write connection to the platform database.
        alerts: The alerts as returned by :func:`claim_due_alerts`, not attempted since.
    """
    for alert in alerts:
        con.execute(
            f"UPDATE {ALERTS} SET {NEXT_ATTEMPT_AT} = $t WHERE {ALERT_ID} = $id AND {ATTEMPTS} = $n",
            {"t": alert.next_attempt_at, "id": alert.alert_id, "n": alert.attempts},
        )


def read_alerts(con: duckdb.DuckDBPyConnection, kind: str | None = None) -> pd.DataFrame:
    """The recorded alerts, oldest first (an empty frame with the columns when none were recorded).

    Args:
        con: Connection to the platform database (read-only is fine once the table exists; a table made
            before the outbox columns reads them as missing values).
        kind: Only alerts of this kind.

    Returns:
        One row per alert with :data:`ALERT_COLUMNS`; ``details`` and ``delivered_to`` are decoded into
        dicts.
    """
    have = _columns(con)
    if not have:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in ALERT_COLUMNS})
    where, params = ("", {}) if kind is None else (f"WHERE {KIND} = $kind", {"kind": kind})
    select = ", ".join(c if c in have else f"NULL AS {c}" for c in ALERT_COLUMNS)
    frame = con.execute(
        f"SELECT {select} FROM {ALERTS} {where} ORDER BY {CREATED_AT}, {ALERT_ID}", params
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


def spooled_alert(path: str | os.PathLike[str], alert_id: str) -> Alert | None:
    """The alert ``alert_id`` as waiting in the spool (or in a drain interrupted by a crash), or None.

    Args:
        path: Spool file written by :func:`spool_alert`.
        alert_id: The alert's id.
    """
    spool = Path(path)
    if not spool.parent.exists():
        return None
    found: Alert | None = None
    for file in [spool, *sorted(spool.parent.glob(f"{spool.name}.draining-*"))]:
        try:
            lines = file.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            continue
        for line in lines:
            if alert_id in line and line.strip():
                alert = Alert.from_json(line)
                if alert.alert_id == alert_id:
                    found = alert if found is None else merge_alerts(found, alert)
    return found


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
