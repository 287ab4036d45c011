"""The ``alerts`` outbox in the domain core: delivery state, merging records, tables made before it."""

import datetime as dt
import itertools
import json
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from demand_platform import alerts as A

T0 = dt.datetime(2024, 1, 4, 9, 0, tzinfo=dt.UTC)


def _doubling(n: int) -> float:
    return 60.0 * 2 ** (n - 1)


def test_settle_counts_rounds_backs_off_and_gives_up_at_the_bound() -> None:
    alert = A.Alert(A.DRIFT, A.WARNING, "drift")
    A.settle_delivery(alert, {A.WEBHOOK: "HTTPError: 503", "email:o@x": None}, 3, _doubling, T0)
    assert alert.attempts == 1 and alert.pending_channels == [A.WEBHOOK]
    assert alert.delivered_to["email:o@x"] == A.DELIVERED
    assert alert.next_attempt_at == T0 + dt.timedelta(seconds=60)

    assert A.settle_delivery(alert, {A.WEBHOOK: "timed out"}, 3, _doubling, T0) == []
    assert alert.attempts == 2 and alert.next_attempt_at == T0 + dt.timedelta(seconds=120)

    assert A.settle_delivery(alert, {A.WEBHOOK: "timed out"}, 3, _doubling, T0) == [A.WEBHOOK]
    assert alert.delivered_to[A.WEBHOOK] == f"{A.GAVE_UP_PREFIX}after 3 attempts: timed out"
    assert alert.abandoned_channels == [A.WEBHOOK] and alert.next_attempt_at is None
    assert alert.delivered_to["email:o@x"] == A.DELIVERED  # untouched


def test_a_round_without_channel_is_no_attempt() -> None:
    alert = A.Alert(A.DRIFT, A.WARNING, "drift")
    assert A.settle_delivery(alert, {}, 8, _doubling, T0) == []
    assert alert.attempts == 0 and alert.next_attempt_at is None and not alert.delivery_failed


def _states() -> list[A.Alert]:
    """Records of one alert as different processes may hold them."""
    base = {"kind": A.DRIFT, "severity": A.WARNING, "subject": "drift", "alert_id": "a1", "created_at": T0}
    later = T0 + dt.timedelta(minutes=5)
    return [
        A.Alert(**base, delivered_to={A.WEBHOOK: "failed: 503", "email:o": "failed: refused"}, attempts=1,
                next_attempt_at=T0),
        A.Alert(**base, delivered_to={A.WEBHOOK: "failed: 503", "email:o": "failed: refused"}, attempts=1,
                next_attempt_at=later),  # claimed
        A.Alert(**base, delivered_to={A.WEBHOOK: A.DELIVERED, "email:o": "failed: refused"}, attempts=2,
                next_attempt_at=later),
        A.Alert(**base, delivered_to={A.WEBHOOK: "failed: 503", "email:o": A.DELIVERED}, attempts=3,
                next_attempt_at=later),
    ]  # fmt: skip


def test_merge_keeps_every_delivery_whatever_the_order() -> None:
    results = set()
    for order in itertools.permutations(_states()):
        merged = order[0]
        for other in order[1:]:
            merged = A.merge_alerts(merged, other)
        results.add(
            (json.dumps(merged.delivered_to, sort_keys=True), merged.attempts, merged.next_attempt_at)
        )
    assert results == {
        (json.dumps({A.WEBHOOK: A.DELIVERED, "email:o": A.DELIVERED}, sort_keys=True), 3, None)
    }


def test_merge_keeps_a_claim_and_lets_a_later_attempt_replace_it() -> None:
    due, claimed, delivered_webhook, _ = _states()
    assert A.merge_alerts(claimed, due).next_attempt_at == claimed.next_attempt_at
    assert A.merge_alerts(due, claimed).next_attempt_at == claimed.next_attempt_at
    outcome = A.Alert(**{**vars(claimed), "attempts": 2, "next_attempt_at": T0 + dt.timedelta(minutes=1)})
    assert A.merge_alerts(claimed, outcome).next_attempt_at == T0 + dt.timedelta(minutes=1)
    gave_up = A.Alert(**{**vars(delivered_webhook), "attempts": 2})
    A.give_up_channel(gave_up, "email:o", "no longer configured")
    merged = A.merge_alerts(delivered_webhook, gave_up)
    assert merged.delivered_to["email:o"].startswith(A.GAVE_UP_PREFIX) and merged.next_attempt_at is None


def test_recording_twice_or_out_of_order_is_harmless(tmp_path: Path) -> None:
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    due, claimed, delivered_webhook, delivered_all = _states()
    for record in (delivered_webhook, due, delivered_all, claimed, delivered_webhook):
        A.record_alert(con, record)
    (row,) = A.read_alerts(con).to_dict("records")
    assert row[A.DELIVERED_TO] == {A.WEBHOOK: A.DELIVERED, "email:o": A.DELIVERED}
    assert row[A.ATTEMPTS] == 3 and pd.isna(row[A.NEXT_ATTEMPT_AT])
    assert A.claim_due_alerts(con, T0 + dt.timedelta(days=1)) == []


def test_a_table_made_before_the_outbox_is_extended_and_its_rows_stay_put(tmp_path: Path) -> None:
    database = tmp_path / "w.duckdb"
    con = duckdb.connect(str(database))
    con.execute(
        "CREATE TABLE alerts (alert_id VARCHAR PRIMARY KEY, created_at TIMESTAMPTZ NOT NULL, kind VARCHAR NOT NULL,"
        " severity VARCHAR NOT NULL, subject VARCHAR NOT NULL, details JSON, delivered_to JSON)"
    )
    con.execute(
        "INSERT INTO alerts VALUES ('old', $1, 'drift', 'warning', 'old drift', '{}', '{\"webhook\": \"failed: x\"}')",
        [T0],
    )
    con.close()
    with duckdb.connect(str(database), read_only=True) as ro:  # read-only: read as it is
        (old,) = A.read_alerts(ro).to_dict("records")
    assert old[A.DELIVERED_TO] == {A.WEBHOOK: "failed: x"} and old[A.ATTEMPTS] is None

    con = duckdb.connect(str(database))
    new = A.Alert(
        A.DRIFT, A.WARNING, "new", delivered_to={A.WEBHOOK: "failed: y"}, attempts=1, next_attempt_at=T0
    )
    A.record_alert(con, new)
    assert [a.alert_id for a in A.claim_due_alerts(con, T0 + dt.timedelta(hours=1))] == [new.alert_id]
    assert set(A.read_alerts(con)[A.ALERT_ID]) == {"old", new.alert_id}
    con.close()


def test_spool_lines_from_before_the_outbox_still_drain(tmp_path: Path) -> None:
    spool = tmp_path / "w.duckdb.alerts-spool.jsonl"
    old_line = {
        "alert_id": "s1",
        "created_at": T0.isoformat(),
        "kind": "drift",
        "severity": "warning",
        "subject": "spooled",
        "details": {},
        "delivered_to": {"webhook": "ok"},
    }
    spool.write_text(json.dumps(old_line) + "\n")
    alert = A.Alert.from_json(json.dumps(old_line))
    assert alert.attempts == 0 and alert.next_attempt_at is None
    with duckdb.connect(str(tmp_path / "w.duckdb")) as con:
        assert A.drain_spool(con, spool) == 1
        (row,) = A.read_alerts(con).to_dict("records")
    assert row[A.DELIVERED_TO] == {"webhook": "ok"} and row[A.ATTEMPTS] == 0


@pytest.mark.parametrize("alert", _states())
def test_the_spool_format_keeps_the_delivery_state(alert: A.Alert) -> None:
    back = A.Alert.from_json(alert.to_json())
    assert (back.delivered_to, back.attempts, back.next_attempt_at) == (
        alert.delivered_to,
        alert.attempts,
        alert.next_attempt_at,
    )


# --- incidents ---------------------------------------------------------------------------------------------


def test_a_day_opens_one_incident_and_resolves_once() -> None:
    outcomes = [("2024-01-02", False), ("2024-01-02", False), ("2024-01-02", True), ("2024-01-02", False)]
    state, notices = A.incident_transitions({}, outcomes)
    assert notices == [(0, A.OPEN), (2, A.RESOLVED)]
    assert state == {"2024-01-02": A.RESOLVED}
    # Outcome by outcome (one per sensor tick) gives the same notices as all at once.
    step: dict[str, str] = {}
    seen = []
    for i, outcome in enumerate(outcomes):
        step, found = A.incident_transitions(step, [outcome])
        seen += [(i, notice) for _, notice in found]
    assert seen == notices and step == state


def test_a_later_day_is_a_new_incident_and_a_clean_pass_says_nothing() -> None:
    state, notices = A.incident_transitions({"2024-01-02": A.RESOLVED}, [("2024-01-03", True)])
    assert notices == [] and state == {"2024-01-02": A.RESOLVED}
    state, notices = A.incident_transitions(state, [("2024-01-04", False), ("2024-01-04", False)])
    assert notices == [(0, A.OPEN)] and state["2024-01-04"] == A.OPEN
    # An open incident of an earlier day is not resolved by a later day's pass.
    state, notices = A.incident_transitions(state, [("2024-01-05", True)])
    assert notices == [] and state["2024-01-04"] == A.OPEN


def test_failures_without_a_day_are_each_notified() -> None:
    state, notices = A.incident_transitions({}, [(None, False), (None, True), (None, False)])
    assert notices == [(0, A.OPEN), (2, A.OPEN)] and state == {}


def test_incidents_older_than_the_window_are_forgotten() -> None:
    state = {"2024-01-01": A.OPEN, "2024-01-20": A.RESOLVED}
    kept, _ = A.incident_transitions(state, [("2024-02-05", False)], keep_days=20)
    assert kept == {"2024-01-20": A.RESOLVED, "2024-02-05": A.OPEN}


def test_incident_ids_are_one_per_day_and_notice(tmp_path: Path) -> None:
    ids = {
        A.incident_alert_id("forecasts:forecasts_freshness", d, n)
        for d in ("2024-01-02", "2024-01-03")
        for n in (A.OPEN, A.RESOLVED)
    }
    assert len(ids) == 4
    assert A.incident_alert_id("c", "2024-01-02", A.OPEN) == A.incident_alert_id("c", "2024-01-02", A.OPEN)
    # Recorded twice under its id: one row.
    con = duckdb.connect(str(tmp_path / "db.duckdb"))
    alert_id = A.incident_alert_id("c", "2024-01-02", A.OPEN)
    for subject in ("late", "late again"):
        A.record_alert(con, A.Alert(A.FRESHNESS, A.ERROR, subject, alert_id=alert_id))
    table = A.read_alerts(con)
    con.close()
    assert list(table[A.ALERT_ID]) == [alert_id] and list(table[A.SUBJECT]) == ["late"]


def test_a_spooled_alert_is_found_by_id(tmp_path: Path) -> None:
    spool = tmp_path / "db.duckdb.alerts-spool.jsonl"
    assert A.spooled_alert(spool, "x") is None
    A.spool_alert(spool, A.Alert(A.DRIFT, A.WARNING, "other", alert_id="y"))
    A.spool_alert(spool, A.Alert(A.FRESHNESS, A.ERROR, "late", alert_id="x", attempts=1))
    A.spool_alert(spool, A.Alert(A.FRESHNESS, A.ERROR, "late", alert_id="x", attempts=2))
    found = A.spooled_alert(spool, "x")
    assert found is not None and found.subject == "late" and found.attempts == 2
    assert A.spooled_alert(spool, "z") is None
