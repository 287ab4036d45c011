"""The CLI's catch-up logic: which runs bring the platform up to date."""

import datetime as dt
import itertools
import os
import time
from pathlib import Path

import dagster as dg
import duckdb
import pandas as pd
import pytest

from assets import run_queue
from assets.cli import EXPORT_COLUMNS, main
from assets.definitions import AUDIT_JOB, INGEST_JOB
from assets.orchestration import (
    PLANNED_SUBSET_ENV,
    day_boxes,
    day_ranges,
    missing_ranges,
    prepare_instance,
    reconcile_days,
    run_boxes,
    run_platform,
)
from assets.partitions import RANGE_START_TAG
from demand_platform import columns as C
from demand_platform.settings import PlatformSettings
from demand_platform.synthetic import GeneratorConfig, generate_source

D = dt.date
PLANNED = dg.DagsterEventType.ASSET_MATERIALIZATION_PLANNED


def test_missing_ranges_are_contiguous_per_warehouse() -> None:
    done = {"2024-01-02|W1", "2024-01-03|W1", "2024-01-01|W2", "2024-01-02|W2", "2024-01-03|W2"}
    assert missing_ranges(done, ["W1", "W2"], D(2024, 1, 1), D(2024, 1, 5)) == [
        ("W1", D(2024, 1, 1), D(2024, 1, 1)),
        ("W1", D(2024, 1, 4), D(2024, 1, 5)),
        ("W2", D(2024, 1, 4), D(2024, 1, 5)),
    ]
    assert missing_ranges(done, ["W2"], D(2024, 1, 1), D(2024, 1, 3)) == []


def test_day_boxes_split_on_gaps() -> None:
    boxes = day_boxes(D(2024, 1, 1), ["W1", "W2", "W4"], ["W1", "W2", "W3", "W4"])
    assert [
        (b["dagster/asset_partition_range_start"], b["dagster/asset_partition_range_end"]) for b in boxes
    ] == [
        ("2024-01-01|W1", "2024-01-01|W2"),
        ("2024-01-01|W4", "2024-01-01|W4"),
    ]


def _spans(boxes: list[tuple[list[str], dt.date, dt.date]]) -> list[tuple[str, str]]:
    return [(f"{start}|{whs[0]}", f"{end}|{whs[-1]}") for whs, start, end in boxes]


def test_a_day_is_reconciled_once_every_warehouse_has_forecasts_and_again_when_forecast_again() -> None:
    done = {("W1", D(2024, 1, d)) for d in range(1, 8)} | {("W2", D(2024, 1, d)) for d in range(1, 6)}
    # Days 6 and 7 wait for W2; day 1 is reconciled already; day 2 was forecast again by this catch-up.
    days = reconcile_days(done, {D(2024, 1, 1), D(2024, 1, 2)}, {D(2024, 1, 2)}, ["W1", "W2"])
    assert days == [D(2024, 1, d) for d in (2, 3, 4, 5)]
    assert reconcile_days(done, set(), set(), ["W1", "W2", "W3"]) == []
    gappy = [D(2024, 1, d) for d in (1, 2, 3, 4, 5, 9, 10)]
    assert day_ranges(gappy, 2) == [
        (D(2024, 1, 1), D(2024, 1, 2)),
        (D(2024, 1, 3), D(2024, 1, 4)),
        (D(2024, 1, 5), D(2024, 1, 5)),
        (D(2024, 1, 9), D(2024, 1, 10)),
    ]
    assert day_ranges(gappy, 30) == [(D(2024, 1, 1), D(2024, 1, 5)), (D(2024, 1, 9), D(2024, 1, 10))]
    assert day_ranges([], 3) == []


def test_run_boxes_spread_a_range_over_the_parallel_runs_within_the_partition_bound() -> None:
    keys = [f"W{i}" for i in range(1, 8)]
    day, other = D(2024, 1, 5), D(2024, 1, 1)
    one_day = [(wh, day, day) for wh in ["W1", "W2", "W3", "W4", "W6", "W7"]]
    # Six warehouses of one day over two runs at once: three a run, split again on the gap at W5.
    assert _spans(run_boxes(one_day, keys, parallel=2)) == [
        ("2024-01-05|W1", "2024-01-05|W3"),
        ("2024-01-05|W4", "2024-01-05|W4"),
        ("2024-01-05|W6", "2024-01-05|W7"),
    ]
    # One at a time: every contiguous run of keys in one run, at most max_partitions partitions each.
    assert _spans(run_boxes(one_day, keys, parallel=1)) == [
        ("2024-01-05|W1", "2024-01-05|W4"),
        ("2024-01-05|W6", "2024-01-05|W7"),
    ]
    assert _spans(run_boxes(one_day, keys, parallel=1, max_partitions=3)) == [
        ("2024-01-05|W1", "2024-01-05|W3"),
        ("2024-01-05|W4", "2024-01-05|W4"),
        ("2024-01-05|W6", "2024-01-05|W7"),
    ]
    # Five days: two warehouses a run within 10 partitions, one when the bound is below two ranges; a
    # warehouse with another range is a box of its own.
    ranges = [("W1", other, day), ("W2", other, day), ("W3", other, day), ("W4", day, day)]
    assert _spans(run_boxes(ranges, keys, parallel=1, max_partitions=10)) == [
        ("2024-01-01|W1", "2024-01-05|W2"),
        ("2024-01-01|W3", "2024-01-05|W3"),
        ("2024-01-05|W4", "2024-01-05|W4"),
    ]
    assert _spans(run_boxes(ranges, keys, parallel=1, max_partitions=9)) == [
        ("2024-01-01|W1", "2024-01-05|W1"),
        ("2024-01-01|W2", "2024-01-05|W2"),
        ("2024-01-01|W3", "2024-01-05|W3"),
        ("2024-01-05|W4", "2024-01-05|W4"),
    ]
    assert run_boxes([], keys, parallel=2) == []


def test_run_platform_end_to_end_and_incremental(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    start, days = D(2023, 1, 1), 240
    last = start + dt.timedelta(days=days - 1)
    generate_source(
        tmp_path / "src", GeneratorConfig(n_skus=30, n_warehouses=2, start=start, days=days, seed=5)
    )
    settings = PlatformSettings(
        home=tmp_path / "home", source=tmp_path / "src", start_date=start, end_date=last
    )

    # The catch-up's default path: the runs go through the instance's run queue (no daemon runs here,
    # so run_platform dequeues them itself) and the duckdb pool admits two at a time.
    first = run_platform(settings, last - dt.timedelta(days=14))
    assert not first.failed, first.failed
    instance = prepare_instance(settings)
    stage_runs = [
        instance.get_run_record_by_id(run.run_id)
        for job_name in (INGEST_JOB, AUDIT_JOB)
        for run in instance.get_runs(filters=dg.RunsFilter(job_name=job_name))
    ]
    assert len(stage_runs) == 3 and all(
        r.dagster_run.status == dg.DagsterRunStatus.SUCCESS for r in stage_runs
    )
    # The audit and the two raw_sales ranges, submitted at once, each ran in its own process launched by
    # the queue (the pool admits two at a time: test_parallel_runs.py shows the limit; these runs are too
    # short to overlap reliably).
    edges = sorted([(r.start_time, 1) for r in stage_runs] + [(r.end_time, -1) for r in stage_runs])
    assert max(itertools.accumulate(step for _, step in edges)) <= 2
    pids = {
        int(e.dagster_event.engine_event_data.metadata["pid"].value)
        for r in stage_runs
        for e in instance.all_logs(r.dagster_run.run_id, of_type=dg.DagsterEventType.ENGINE_EVENT)
        if "pid" in (e.dagster_event.engine_event_data.metadata or {})
    }
    assert len(pids) == 3 and os.getpid() not in pids
    # The same catch-up in this process, one run after the other, builds the same tables.
    same = PlatformSettings(home=tmp_path / "same", source=tmp_path / "src", start_date=start, end_date=last)
    assert run_platform(same, last - dt.timedelta(days=14), launch="in-process").ok
    for table in ("raw_sales", "feature_table", "tier_assignments", "forecasts"):
        frames = []
        for home in (settings.home, same.home):
            with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
                frames.append(con.execute(f"SELECT * FROM {table} ORDER BY ALL").df())
        pd.testing.assert_frame_equal(frames[0], frames[1], obj=table)
    assert {"raw_sales", "feature_table", "tier_assignments", "trained_models", "forecasts"} <= set(
        first.tables
    )

    second = run_platform(settings, last, evaluate_days=14)
    assert not second.failed, second.failed
    # Incremental: audit + one ingest run per warehouse for the 14 new days + features (one range run per
    # warehouse) + forecasts (one range run per warehouse) + the reconciliation of the 14 new origins (two
    # runs: 12 days x 2 warehouses is the most a run covers) + the report (one warehouse a run: two at
    # once). No training: the model of last - 14 was trained by the first run, and it serves every origin
    # since.
    assert second.runs == 1 + 2 + 2 + 2 + 2 + 2
    assert second.ok and not second.reingested_changed
    # The first catch-up's raw_sales ranges (226 days) were created with one planned event per run, the
    # second's (14 days) with one per partition; the switch does not outlive the runs.
    planned = sorted(
        (run.tags[RANGE_START_TAG], len(instance.get_records_for_run(run.run_id, of_type=PLANNED).records))
        for run in instance.get_runs(filters=dg.RunsFilter(job_name=INGEST_JOB))
    )
    assert planned == [
        (f"{start}|WH001", 1),
        (f"{start}|WH002", 1),
        (f"{last - dt.timedelta(days=13)}|WH001", 14),
        (f"{last - dt.timedelta(days=13)}|WH002", 14),
    ]
    assert PLANNED_SUBSET_ENV not in os.environ

    # Nothing new: only the audit and the report run again. A daemon's heartbeat from a moment ago (a
    # killed CLI's last one) makes the catch-up leave its runs to that daemon at first; when no heartbeat
    # follows, it dequeues them itself.
    from dagster._daemon.types import DaemonHeartbeat

    monkeypatch.setattr(run_queue, "HEARTBEAT_SECONDS", 1.0)
    instance.add_daemon_heartbeat(DaemonHeartbeat(time.time(), "QUEUED_RUN_COORDINATOR", "gone", None))
    assert run_queue.queue_daemon_alive(instance)
    third = run_platform(settings, last, evaluate_days=14)
    assert third.ok and third.runs == 1 + 2
    con = duckdb.connect(str(settings.duckdb_path), read_only=True)
    days_in = con.execute("SELECT count(DISTINCT date) FROM raw_sales").fetchone()
    origins = con.execute("SELECT count(DISTINCT origin_date) FROM forecasts").fetchone()
    reconciled = con.execute(
        "SELECT count(DISTINCT origin_date), count(DISTINCT warehouse_id), count(*) FROM reconciled_forecasts"
    ).fetchone()
    n_forecasts = con.execute("SELECT count(*) FROM forecasts").fetchone()
    con.close()
    assert days_in == (days,)
    assert origins == (15,)  # every day of [last - 14, last]; the first run forecast from last - 14 too
    # Every origin reconciled once across both warehouses, row for row.
    assert n_forecasts is not None and reconciled == (15, 2, n_forecasts[0])
    assert second.accuracy is not None
    overall = second.accuracy[second.accuracy["table"] == "overall"]
    assert len(overall) == 2 and (overall["n_obs"] > 0).all() and overall["wmape"].between(0, 2).all()

    # What replenishment reads: the forecasts of the last origin, exported with the promised columns.
    out = tmp_path / "forecasts.csv"
    assert (
        main(["export", "forecasts", "--home", str(settings.home), "--origin", str(last), "--out", str(out)])
        == 0
    )
    exported = pd.read_csv(out)
    assert list(exported.columns[:11]) == EXPORT_COLUMNS
    assert set(exported[C.HORIZON]) == set(range(1, 31)) and exported[C.WAREHOUSE_ID].nunique() == 2
    # The reconciled forecasts by default; each warehouse's own ones on request.
    assert C.POOLING_RATIO in exported.columns and "of reconciled_forecasts" in capsys.readouterr().out
    own = tmp_path / "own.csv"
    argv = ["export", "forecasts", "--home", str(settings.home), "--origin", str(last), "--out", str(own)]
    assert main([*argv, "--per-warehouse"]) == 0
    per_warehouse = pd.read_csv(own)
    assert C.POOLING_RATIO not in per_warehouse.columns and len(per_warehouse) == len(exported)
    assert (
        main(
            ["export", "forecasts", "--home", str(settings.home), "--origin", "1999-01-01", "--out", str(out)]
        )
        == 1
    )

    # The CV backtest per tier against the baselines, from the same home.
    assert (
        main(
            [
                "backtest",
                "--home",
                str(settings.home),
                "--last-origin",
                str(last - dt.timedelta(days=30)),
                "--origins",
                "1",
                "--warehouses",
                "WH001",
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "seasonal_naive" in printed and "moving_average_28" in printed and "tier_1" in printed
