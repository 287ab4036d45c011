"""The CLI's catch-up logic: which runs bring the platform up to date."""

import datetime as dt
import os
from pathlib import Path

import dagster as dg
import duckdb
import pandas as pd
import pytest

from assets.cli import EXPORT_COLUMNS, main
from assets.definitions import INGEST_JOB
from assets.orchestration import PLANNED_SUBSET_ENV, day_boxes, missing_ranges, prepare_instance, run_platform
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


def test_run_platform_end_to_end_and_incremental(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    start, days = D(2023, 1, 1), 240
    last = start + dt.timedelta(days=days - 1)
    generate_source(
        tmp_path / "src", GeneratorConfig(n_skus=30, n_warehouses=2, start=start, days=days, seed=5)
    )
    settings = PlatformSettings(
        home=tmp_path / "home", source=tmp_path / "src", start_date=start, end_date=last
    )

    first = run_platform(settings, last - dt.timedelta(days=14))
    assert not first.failed, first.failed
    assert {"raw_sales", "feature_table", "tier_assignments", "trained_models", "forecasts"} <= set(
        first.tables
    )

    second = run_platform(settings, last, evaluate_days=14)
    assert not second.failed, second.failed
    # Incremental: audit + one ingest run per warehouse for the 14 new days + features (one range run per
    # warehouse) + forecasts (one range run per warehouse) + the report (one run). No training: the model
    # of last - 14 was trained by the first run, and it serves every origin since.
    assert second.runs == 1 + 2 + 2 + 2 + 1
    assert second.ok and not second.reingested_changed
    # The first catch-up's raw_sales ranges (226 days) were created with one planned event per run, the
    # second's (14 days) with one per partition; the switch does not outlive the runs.
    instance = prepare_instance(settings)
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

    # Nothing new: only the audit and the report run again.
    third = run_platform(settings, last, evaluate_days=14)
    assert third.ok and third.runs == 1 + 1
    con = duckdb.connect(str(settings.duckdb_path), read_only=True)
    days_in = con.execute("SELECT count(DISTINCT date) FROM raw_sales").fetchone()
    origins = con.execute("SELECT count(DISTINCT origin_date) FROM forecasts").fetchone()
    con.close()
    assert days_in == (days,)
    assert origins == (15,)  # every day of [last - 14, last]; the first run forecast from last - 14 too
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
