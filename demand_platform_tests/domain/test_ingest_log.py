"""The ingest log: which raw_sales days the catch-up must build again, and why."""

import datetime as dt

import duckdb
import numpy as np
import pandas as pd

from demand_platform import columns as C
from demand_platform import ingest_log as L

D = dt.date


def _state(rows: list[tuple]) -> pd.DataFrame:
    """Log and stored state; the stored rows were built from what the log says unless given."""
    rows = [r if len(r) == 8 else (*r, r[2] if r[5] else None, r[3] if r[5] else None) for r in rows]
    frame = pd.DataFrame(
        rows, columns=[C.WAREHOUSE_ID, C.DATE, L.LINES, L.FINGERPRINT, L.RAW_ROWS, "stored_rows", *L.STORED]
    )
    frame[C.DATE] = pd.to_datetime(frame[C.DATE])
    return frame


def _source(rows: list[tuple]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=[C.WAREHOUSE_ID, C.DATE, L.LINES, L.FINGERPRINT])
    frame[C.DATE] = pd.to_datetime(frame[C.DATE])
    return frame


def test_nothing_to_do_when_log_content_and_source_agree() -> None:
    state = _state([("W1", "2024-01-01", 3, 11, 5, 5), ("W1", "2024-01-02", 2, 22, 5, 5)])
    source = _source([("W1", "2024-01-01", 3, 11), ("W1", "2024-01-02", 2, 22)])
    done = {("W1", D(2024, 1, 1)), ("W1", D(2024, 1, 2))}
    out = L.days_to_reingest(done, state, source, ["W1"], D(2024, 1, 1), D(2024, 1, 2))
    assert out.empty


def test_missing_hole_and_changed_days_are_found_with_their_reason() -> None:
    state = _state(
        [
            ("W1", "2024-01-01", 3, 11, 5, 5),  # fine
            ("W1", "2024-01-02", 2, 22, 5, 0),  # killed between log and rows: hole
            ("W1", "2024-01-03", 2, 33, 5, 5),  # a late line arrived since
            ("W2", "2024-01-01", 1, 44, 5, 5),  # fine
        ]
    )
    source = _source(
        [
            ("W1", "2024-01-01", 3, 11),
            ("W1", "2024-01-02", 2, 22),
            ("W1", "2024-01-03", 3, 99),
            ("W2", "2024-01-01", 1, 44),
        ]
    )
    done = {("W1", D(2024, 1, 1)), ("W1", D(2024, 1, 2)), ("W1", D(2024, 1, 3)), ("W2", D(2024, 1, 1))}
    out = L.days_to_reingest(done, state, source, ["W1", "W2"], D(2024, 1, 1), D(2024, 1, 3))
    assert list(out.itertuples(index=False, name=None)) == [
        ("W1", D(2024, 1, 2), L.REASON_HOLE),
        ("W1", D(2024, 1, 3), L.REASON_CHANGED),
        ("W2", D(2024, 1, 2), L.REASON_MISSING),
        ("W2", D(2024, 1, 3), L.REASON_MISSING),
    ]


def test_deleted_lines_count_as_a_change_and_the_window_bounds_the_comparison() -> None:
    state = _state([("W1", "2024-01-01", 2, 11, 5, 5), ("W1", "2024-01-02", 2, 22, 5, 5)])
    source = _source([])  # every line of both days was withdrawn from the source
    done = {("W1", D(2024, 1, 1)), ("W1", D(2024, 1, 2))}
    every = L.days_to_reingest(done, state, source, ["W1"], D(2024, 1, 1), D(2024, 1, 2))
    assert list(every[C.DATE]) == [D(2024, 1, 1), D(2024, 1, 2)]
    recent = L.days_to_reingest(done, state, source, ["W1"], D(2024, 1, 1), D(2024, 1, 2), D(2024, 1, 2))
    assert list(recent[C.DATE]) == [D(2024, 1, 2)]


def test_late_lines_are_judged_against_what_the_stored_rows_were_built_from() -> None:
    # A rewrite killed after the log was written: the log has the new lines, the table still the old rows.
    state = _state([("W1", "2024-01-01", 3, 99, 5, 5, 2, 11)])
    source = _source([("W1", "2024-01-01", 3, 99)])
    out = L.days_to_reingest({("W1", D(2024, 1, 1))}, state, source, ["W1"], D(2024, 1, 1), D(2024, 1, 1))
    assert list(out["reason"]) == [L.REASON_CHANGED]


def test_days_stored_without_a_record_are_built_once_more_in_the_window() -> None:
    state = _state([("W1", "2024-01-01", None, None, None, 7, None, None)])
    source = _source([("W1", "2024-01-01", 3, 99)])
    out = L.days_to_reingest({("W1", D(2024, 1, 1))}, state, source, ["W1"], D(2024, 1, 1), D(2024, 1, 1))
    assert list(out["reason"]) == [L.REASON_UNRECORDED]


def test_stamp_source_puts_each_days_record_on_its_rows() -> None:
    lines = _source([("W1", "2024-01-01", 2, 5), ("W2", "2024-01-01", 1, 6)])
    raw = pd.DataFrame(
        {
            C.WAREHOUSE_ID: ["W1", "W2", "W2"],
            C.SKU: list("ABC"),
            C.DATE: pd.to_datetime(["2024-01-01", "2024-01-01", "2024-01-02"]),
        }
    )
    stamped = L.stamp_source(raw, lines)
    assert list(stamped[L.SOURCE_LINES]) == [2, 1, 0] and list(stamped[L.SOURCE_FINGERPRINT]) == [5, 6, 0]
    assert list(stamped[C.SKU]) == list("ABC")


def test_stamp_source_over_a_grid_with_gaps_matches_a_join() -> None:
    lines = _source([("W2", "2024-01-03", 4, 40), ("W1", "2024-01-01", 2, 10), ("W1", "2024-01-03", 3, 30)])
    rng = np.random.default_rng(0)
    raw = pd.DataFrame(
        {
            C.WAREHOUSE_ID: rng.choice(["W1", "W2", "W3"], 200),
            C.SKU: "A",
            C.DATE: pd.Timestamp("2023-12-31") + pd.to_timedelta(rng.integers(0, 6, 200), unit="D"),
        }
    )
    stamped = L.stamp_source(raw, lines)
    expected = raw.merge(
        lines.assign(**{C.DATE: pd.to_datetime(lines[C.DATE])}), on=[C.WAREHOUSE_ID, C.DATE], how="left"
    )
    assert (stamped[L.SOURCE_LINES].to_numpy() == expected[L.LINES].fillna(0).to_numpy()).all()
    assert (stamped[L.SOURCE_FINGERPRINT].to_numpy() == expected[L.FINGERPRINT].fillna(0).to_numpy()).all()
    assert stamped[L.SOURCE_LINES].sum() > 0
    # The caller's frame is left as it was.
    assert list(raw.columns) == [C.WAREHOUSE_ID, C.SKU, C.DATE]


def test_unlogged_partition_is_a_hole_only_when_empty() -> None:
    # Materialized by a version without the log: trusted when it has rows, rebuilt when it has none.
    state = _state(
        [
            ("W1", "2024-01-01", None, None, None, 7, None, None),
            ("W1", "2024-01-02", None, None, None, 0, None, None),
        ]
    )
    done = {("W1", D(2024, 1, 1)), ("W1", D(2024, 1, 2))}
    out = L.days_to_reingest(done, state, None, ["W1"], D(2024, 1, 1), D(2024, 1, 2))
    assert list(out.itertuples(index=False, name=None)) == [("W1", D(2024, 1, 2), L.REASON_HOLE)]


def test_contiguous_ranges_per_warehouse() -> None:
    days = pd.DataFrame(
        {
            C.WAREHOUSE_ID: ["W1", "W1", "W1", "W2"],
            C.DATE: [D(2024, 1, 1), D(2024, 1, 2), D(2024, 1, 5), D(2024, 1, 3)],
        }
    )
    assert L.contiguous_ranges(days) == [
        ("W1", D(2024, 1, 1), D(2024, 1, 2)),
        ("W1", D(2024, 1, 5), D(2024, 1, 5)),
        ("W2", D(2024, 1, 3), D(2024, 1, 3)),
    ]


def test_log_round_trip_against_the_table_content(tmp_path) -> None:
    lines = _source([("W1", "2024-01-01", 2, 5), ("W1", "2024-01-03", 1, 6)])
    raw = pd.DataFrame(
        {
            C.WAREHOUSE_ID: ["W1"] * 5,
            C.SKU: list("ABABA"),
            C.DATE: pd.to_datetime(["2024-01-01", "2024-01-01", "2024-01-02", "2024-01-02", "2024-01-03"]),
        }
    )
    entries = L.log_entries(lines, raw, ["W1"], D(2024, 1, 1), D(2024, 1, 3), run_id="r1")
    assert list(entries[L.RAW_ROWS]) == [2, 2, 1] and list(entries[L.LINES]) == [2, 0, 1]
    con = duckdb.connect(str(tmp_path / "db.duckdb"))
    L.replace_log(con, entries, ["W1"], D(2024, 1, 1), D(2024, 1, 3))
    L.replace_log(con, entries, ["W1"], D(2024, 1, 1), D(2024, 1, 3))  # replaces, never duplicates
    con.register("_raw", L.stamp_source(raw.iloc[:3], lines))  # day 3's row never committed
    con.execute("CREATE TABLE raw_sales AS SELECT * FROM _raw")
    state = L.read_state(con, ["W1"], D(2024, 1, 1), D(2024, 1, 3))
    assert len(state) == 3
    done = {("W1", D(2024, 1, d)) for d in (1, 2, 3)}
    out = L.days_to_reingest(done, state, lines, ["W1"], D(2024, 1, 1), D(2024, 1, 3))
    # Day 2 lost one of its two rows, day 3 its only one; day 1 is intact.
    assert list(out.itertuples(index=False, name=None)) == [
        ("W1", D(2024, 1, 2), L.REASON_HOLE),
        ("W1", D(2024, 1, 3), L.REASON_HOLE),
    ]
