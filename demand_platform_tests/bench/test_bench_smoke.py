"""Smoke runs of every benchmark entry point at a tiny size, so none rots: each writes its JSON.

Synthetic data only: the M5 and Online Retail runs read tiny files written here in the real formats.
The accuracy and sweep runs take the domain path (no Dagster); the Dagster-timing run ingests a tiny
generated source through Dagster.
"""

import datetime as dt
import json
import logging
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from bench import accuracy, cluster_storage, dagster_timing, event_log_size, scenarios, speed, sweep, tables
from bench.common import PEERS, PLATFORM_P50, PLATFORM_POINT, ZERO, auto_ets, auto_ets_or_ma
from demand_platform.models import statistical as stat

M5_START = dt.date(2015, 1, 3)
M5_DAYS = 200
RETAIL_START = dt.date(2010, 1, 4)
RETAIL_DAYS = 200


def finite_figures(value: Any) -> list[float]:
    """Every number in a JSON document (None is allowed where a figure is undefined)."""
    if isinstance(value, dict):
        return [x for v in value.values() for x in finite_figures(v)]
    if isinstance(value, list):
        return [x for v in value for x in finite_figures(v)]
    if isinstance(value, int | float) and not isinstance(value, bool):
        return [float(value)]
    return []


def read(path: Path, benchmark: str) -> dict[str, Any]:
    """The JSON an entry point wrote, with the keys every file has."""
    document = json.loads(path.read_text())
    assert document["benchmark"] == benchmark
    assert {"command", "commit", "finished", "machine", "params", "results"} <= set(document)
    assert document["machine"]["cores"] >= 1
    assert all(math.isfinite(x) for x in finite_figures(document))
    return document["results"]


def check_accuracy(results: dict[str, Any], series: int, reconciled: bool = False) -> None:
    """Every method scored at every origin; forecasts non-negative; the platform covered."""
    extra = [accuracy.RECONCILED_P50, accuracy.RECONCILED_POINT] if reconciled else []
    assert results["methods"] == [PLATFORM_P50, PLATFORM_POINT, *extra, *PEERS, ZERO, accuracy.HINDSIGHT]
    for origin in results["origins"]:
        assert origin["series"] == series
        for method in results["methods"]:
            scores = origin["scores"][method]
            assert scores["wmape"] is not None and scores["wmape"] >= 0
            assert scores["min_forecast"] >= 0, method
        assert origin["scores"][ZERO]["wmape"] == pytest.approx(1.0)
        # Each series' own mean over the scored days: unbiased, and no flat peer beats it on RMSE.
        hindsight = origin["scores"][accuracy.HINDSIGHT]
        assert hindsight["bias"] == pytest.approx(0.0, abs=1e-9)
        for flat in ("MA28", "Croston", "SBA", "TSB"):
            assert hindsight["wrmsse"] <= origin["scores"][flat]["wrmsse"] + 1e-12, flat
        platform = origin["scores"][PLATFORM_POINT]
        assert 0 <= platform["coverage_p90"] <= platform["coverage_p95"] <= 1
        assert origin["gate"] and origin["tiers"] and origin["models"]


def test_accuracy_and_sweep_on_synthetic_data(tmp_path: Path) -> None:
    size = [
        "--dataset",
        "synthetic",
        "--work",
        str(tmp_path),
        "--skus",
        "15",
        "--days",
        "200",
        "--origins",
        "30",
    ]
    assert accuracy.main([*size, "--platform", "domain", "--out", str(tmp_path / "accuracy.json")]) == 0
    results = read(tmp_path / "accuracy.json", "accuracy")
    assert results["dataset"] == "synthetic"
    check_accuracy(results, series=results["origins"][0]["series"])
    assert results["origins"][0]["series"] > 0

    configs = ["{}", '{"weekday_profile": false}']
    assert sweep.main([*size, "--config", *configs, "--out", str(tmp_path / "sweep.json")]) == 0
    swept = read(tmp_path / "sweep.json", "sweep")
    assert [s["config"] for s in swept["settings"]] == [{}, {"weekday_profile": False}]
    # The default setting on the origin's source is the accuracy run's platform, to the digit.
    default = swept["settings"][0]["origins"][0]
    assert default["point_wrmsse"] == results["origins"][0]["scores"][PLATFORM_POINT]["wrmsse"]
    assert default["best_peer"] in PEERS


def write_m5(root: Path) -> None:
    """Sales, calendar and prices of 8 items of store CA_3 over 200 days, in the M5 file formats."""
    rng = np.random.default_rng(3)
    root.mkdir()
    items = [f"HOBBIES_2_{i:03d}" for i in range(1, 9)]
    units = rng.poisson(rng.uniform(0.3, 3.0, (len(items), 1)), size=(len(items), M5_DAYS))
    sales = pd.DataFrame(units, columns=[f"d_{n}" for n in range(1, M5_DAYS + 1)])
    sales.insert(0, "id", [f"{item}_CA_3_evaluation" for item in items])
    sales.to_csv(root / accuracy.M5_FILES[0], index=False)
    dates = pd.date_range(M5_START, periods=M5_DAYS + 30, freq="D")
    weeks = 11101 + np.arange(len(dates)) // 7
    pd.DataFrame(
        {
            "date": dates.strftime("%Y-%m-%d"),
            "wm_yr_wk": weeks,
            "weekday": dates.day_name(),
            "wday": (dates.dayofweek.to_numpy() + 2) % 7 + 1,
            "month": dates.month,
            "year": dates.year,
            "event_name_1": None,
            "event_type_1": None,
            "event_name_2": None,
            "event_type_2": None,
            "snap_CA": (dates.day <= 10).astype(int),
            "snap_TX": 0,
            "snap_WI": 0,
        }
    ).to_csv(root / accuracy.M5_FILES[1], index=False)
    prices = [("CA_3", item, week, 2.0 + i) for i, item in enumerate(items) for week in sorted(set(weeks))]
    pd.DataFrame(prices, columns=["store_id", "item_id", "wm_yr_wk", "sell_price"]).to_csv(
        root / accuracy.M5_FILES[2], index=False
    )


def test_auto_ets_takes_ma28_for_a_series_too_short_for_it() -> None:
    # Online Retail scores every series sold in 90 days with --top large: some sold for the first time a
    # few days before the origin, and statsforecast's ETS raised "tiny datasets" for the whole run.
    dates = pd.date_range("2010-01-04", periods=120, freq="D")
    history = np.full((2, len(dates)), np.nan)
    history[0] = np.random.default_rng(0).poisson(4.0, len(dates))
    history[1, -3:] = [2.0, 0.0, 5.0]
    notes: list[str] = []
    out = auto_ets_or_ma(np.array(["long", "new"]), history, dates, 14, 0, notes)
    assert out.shape == (2, 14) and np.isfinite(out).all()
    np.testing.assert_allclose(out[1], stat.moving_average(history[1:], 14, window=28)[0])
    np.testing.assert_allclose(out[0], auto_ets(np.array(["long"]), history[:1], dates, 14)[0])  # its own ETS
    assert not np.allclose(out[0], stat.moving_average(history[:1], 14, window=28)[0])
    assert len(notes) == 1 and "1 series too short" in notes[0]


def test_accuracy_on_a_tiny_m5_file(tmp_path: Path) -> None:
    write_m5(tmp_path / "m5")
    out = tmp_path / "m5.json"
    argv = ["--dataset", "m5", "--data", str(tmp_path / "m5"), "--work", str(tmp_path / "work")]
    assert accuracy.main([*argv, "--origins", "170", "--platform", "domain", "--out", str(out)]) == 0
    results = read(out, "accuracy")
    check_accuracy(results, series=8)
    assert results["origins"][0]["origin"] == str(M5_START + dt.timedelta(days=169))


def write_online_retail(path: Path) -> None:
    """Online Retail II order lines: 6 products sold in the UK and France over 200 days, a few returns."""
    rng = np.random.default_rng(4)
    rows = []
    for day in range(RETAIL_DAYS):
        when = pd.Timestamp(RETAIL_START) + pd.Timedelta(days=day, hours=10)
        for code in ("85048", "85123A", "21730", "22752", "71053", "84406B"):
            for country in ("United Kingdom", "France"):
                if rng.random() < 0.6:
                    quantity = int(rng.integers(1, 12))
                    rows.append(
                        (
                            f"5{day:03d}{len(rows)}",
                            code,
                            f"ITEM {code}",
                            quantity,
                            when,
                            2.5,
                            13085.0,
                            country,
                        )
                    )
        if day % 50 == 7:
            rows.append((f"C5{day:03d}", "85048", "ITEM 85048", -2, when, 2.5, 13085.0, "United Kingdom"))
    frame = pd.DataFrame(
        rows,
        columns=[
            "Invoice",
            "StockCode",
            "Description",
            "Quantity",
            "InvoiceDate",
            "Price",
            "Customer ID",
            "Country",
        ],
    )
    frame["InvoiceDate"] = frame["InvoiceDate"].dt.strftime("%Y-%m-%d %H:%M:%S")
    frame.to_parquet(path, index=False)


def test_accuracy_on_a_tiny_online_retail_file(tmp_path: Path) -> None:
    write_online_retail(tmp_path / "retail.parquet")
    origin = RETAIL_START + dt.timedelta(days=169)
    out = tmp_path / "retail.json"
    argv = [
        "--dataset",
        "online-retail",
        "--file",
        str(tmp_path / "retail.parquet"),
        "--work",
        str(tmp_path / "w"),
    ]
    assert (
        accuracy.main(
            [
                *argv,
                "--origins",
                str(origin),
                "--top",
                "10",
                "--platform",
                "domain",
                "--pooling",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    results = read(out, "accuracy")
    # Two warehouses (United Kingdom, France): the forecasts reconciled across them are scored too.
    check_accuracy(results, series=10, reconciled=True)
    assert results["table_metrics"] == ["weekly_wmape", "weekly_bias", "wmape"]
    (pooling,) = [g["pooling"] for g in results["origins"][0]["gate"] if "pooling" in g]
    assert 0.0 <= pooling["weight"] <= 1.0
    assert pooling["past_origin"] == str(origin - dt.timedelta(days=30)) and pooling["scores"]


@pytest.mark.parametrize(
    ("stage", "argv", "key"),
    [
        (
            "features",
            ["--skus", "30", "--days", "120", "--warehouses", "2", "--repeats", "1"],
            "warehouses_seconds",
        ),
        (
            "models",
            ["--skus", "30", "--days", "200", "--config", '{"n_estimators": 5}'],
            "extrapolated_train_s",
        ),
        (
            "statistical",
            ["--series", "50", "--days", "120", "--sample", "3", "--repeats", "1"],
            "selection_s",
        ),
        ("inventory", ["--skus", "500", "--days", "20", "--repeats", "1"], "ns_per_sku_day"),
        ("lock", ["--repeats", "4"], "lock_reentered_us"),
    ],
)
def test_speed_stage(tmp_path: Path, stage: str, argv: list[str], key: str) -> None:
    out = tmp_path / f"{stage}.json"
    assert speed.main(["--stage", stage, *argv, "--out", str(out)]) == 0
    results = read(out, "speed")
    assert results["stage"] == stage and results[key] >= 0 and results["peak_rss_mib"] > 0
    if stage == "models":
        assert all(w["forecast_min"] >= 0 and w["forecast_rows"] > 0 for w in results["per_warehouse"])
    if stage == "statistical":
        exact = {k["kernel"]: k["max_abs_diff"] for k in results["kernels"] if k["kernel"] != "auto_ses"}
        assert max(exact.values()) < 1e-9


def test_speed_reconcile_synthesises_a_database_then_times_a_day(tmp_path: Path) -> None:
    argv = [
        "--stage",
        "reconcile",
        "--skus",
        "20",
        "--warehouses",
        "3",
        "--repeats",
        "1",
        "--work",
        str(tmp_path),
    ]
    assert speed.main([*argv, "--out", str(tmp_path / "reconcile.json")]) == 0
    results = read(tmp_path / "reconcile.json", "speed")
    assert results["series"] == 60 and results["rows"] == 60 * 30
    assert 0.0 <= results["weight"] <= 1.0 and results["total_s"] > 0 and results["peak_rss_mib"] > 0
    assert (tmp_path / "reconcile_20x3.duckdb").exists()


def test_speed_report_caches_then_times(tmp_path: Path) -> None:
    argv = [
        "--stage",
        "report",
        "--skus",
        "15",
        "--repeats",
        "1",
        "--no-plots",
        "--work",
        str(tmp_path / "cache"),
    ]
    assert speed.main([*argv, "--out", str(tmp_path / "first.json")]) == 0
    assert "cached" in read(tmp_path / "first.json", "speed")
    assert speed.main([*argv, "--out", str(tmp_path / "second.json")]) == 0
    results = read(tmp_path / "second.json", "speed")
    assert results["n_scored"] > 0 and results["median_s"] > 0


def test_dagster_timing_backfill_runs_pipeline_and_ui(tmp_path: Path) -> None:
    home = tmp_path / "home"
    backfill = [
        "--mode",
        "backfill",
        "--skus",
        "8",
        "--n-warehouses",
        "1",
        "--days",
        "30",
        "--home",
        str(home),
    ]
    assert dagster_timing.main([*backfill, "--out", str(tmp_path / "backfill.json")]) == 0
    filled = read(tmp_path / "backfill.json", "dagster_timing")
    assert filled["features_ok"] and filled["raw_sales_rows"] == 8 * 30

    assert (
        dagster_timing.main(["--mode", "runs", "--home", str(home), "--out", str(tmp_path / "runs.json")])
        == 0
    )
    runs = read(tmp_path / "runs.json", "dagster_timing")
    assert {j["job"] for j in runs["jobs"]} == {"ingest", "features"}
    assert runs["rows"]["raw_sales"] == 8 * 30 and all(j["failed"] == 0 for j in runs["jobs"])

    day = (
        dt.date(2023, 1, 1) + dt.timedelta(days=filled["days"] - 1)
    ).isoformat()  # the generator starts 2023-01-01
    pipeline = ["--mode", "pipeline", "--home", str(home), "--day", day, "--jobs", "features"]
    assert dagster_timing.main([*pipeline, "--out", str(tmp_path / "pipeline.json")]) == 0
    assert read(tmp_path / "pipeline.json", "dagster_timing")["jobs"][0]["failed"] == 0

    ui = ["--mode", "ui", "--home", str(home), "--port", "3397", "--out", str(tmp_path / "ui.json")]
    assert dagster_timing.main(ui) == 0
    served = read(tmp_path / "ui.json", "dagster_timing")
    assert served["code_location_load_s"] > 0 and served["backfill"]["warehouses"] == 1
    assert {q["query"] for q in served["queries"]} == set(dagster_timing.UI_QUERIES)
    assert served["partitions"]["raw_sales"] >= 30  # the date dimension runs to yesterday

    doc = tmp_path / "BENCHMARKS.md"
    before = "# Title\n\nhand text\n\n<!-- bench:runs -->\nold table\n<!-- /bench:runs -->\n\nafter\n"
    doc.write_text(before)
    assert tables.main(["--doc", str(doc), f"runs={tmp_path / 'runs.json'}"]) == 0
    after = doc.read_text()
    assert "old table" not in after and "| ingest |" in after
    assert after.startswith("# Title\n\nhand text\n\n<!-- bench:runs -->\n") and after.endswith(
        "<!-- /bench:runs -->\n\nafter\n"
    )
    with pytest.raises(ValueError, match="no region"):
        tables.replace_regions(after, {"missing": "x"})


def test_event_log_size_grows_with_the_metadata_it_copies(tmp_path: Path) -> None:
    import dagster as dg

    from assets.orchestration import prepare_instance
    from demand_platform.settings import PlatformSettings

    per_event = {}
    for name, text in (("inline", "x" * 200_000), ("linked", "![chart](http://127.0.0.1:3030/a.png)")):
        settings = PlatformSettings(home=tmp_path / name, source=tmp_path / "no-source")
        prepare_instance(settings).report_runless_asset_event(
            dg.AssetMaterialization(
                asset_key="accuracy_report",
                partition="2024-01-01|WH001",
                metadata={"charts": dg.MetadataValue.md(text)},
            )
        )
        out = tmp_path / f"{name}.json"
        argv = ["--home", str(settings.home), "--days", "3", "--warehouses", "2", "--out", str(out)]
        assert event_log_size.main(argv) == 0
        figures = read(out, "event_log_size")
        assert figures["events"] == 6 and figures["template_partition"] == "2024-01-01|WH001"
        per_event[name] = figures["bytes_per_event"]
    assert per_event["inline"] >= 200_000 > 5 * per_event["linked"]


def test_cluster_storage_writes_every_store_and_counts_conflicts(tmp_path: Path) -> None:
    import duckdb

    from demand_platform import dbfile

    # The conflict count is dbfile's retry log: one record per retried attempt.
    counter = cluster_storage.ConflictCounter()
    logger = logging.getLogger(dbfile.__name__)
    level = logger.level
    logger.addHandler(counter)
    logger.setLevel(logging.INFO)
    attempts = []

    def conflicting_once(con: duckdb.DuckDBPyConnection) -> None:
        attempts.append(1)
        if len(attempts) == 1:
            raise duckdb.TransactionException("Transaction conflict - attempting to delete from table x")

    try:
        with duckdb.connect() as con:
            dbfile.write_transaction(con, conflicting_once, max_pause_s=0.01)
    finally:
        logger.removeHandler(counter)
        logger.setLevel(level)
    assert counter.count == 1 and len(attempts) == 2

    rows, writers, rounds = 60, 2, 2
    out = tmp_path / "cluster_storage.json"
    size = ["--rows", str(rows), "--writers", str(writers), "--rounds", str(rounds), "--repeats", "1"]
    assert cluster_storage.main([*size, "--work", str(tmp_path), "--out", str(out)]) == 0
    results = read(out, "cluster_storage")
    assert set(results["stores"]) == set(cluster_storage.STORES)
    for store, figures in results["stores"].items():
        assert figures["verified"] and figures["failed_writes"] == 0, store
        assert figures["writes"] == writers * rounds and figures["read_rows"] == rows
        assert 0 < figures["latency_median_s"] <= figures["latency_p90_s"]
        assert figures["wall_s"] > 0 and figures["read_median_s"] > 0 and figures["stored_bytes"] > 0
        assert figures["conflicts"] >= 0 and len(figures["runs"]) == 1
        # Each warehouse holds its last round: generation 0 at setup, then rounds 1..R.
        last = str(cluster_storage.BASE_DAY + dt.timedelta(days=rounds))
        assert {w["origin_max"] for w in figures["runs"][0]["verification"].values()} == {last}
    # One writer at a time on the file (the lock), and PostgreSQL's row locks: nothing to retry.
    assert results["stores"]["duckdb_file"]["conflicts"] == 0
    assert results["stores"]["postgres"]["conflicts"] == 0


def test_scenarios_score_every_segment_against_the_floor(tmp_path: Path) -> None:
    out = tmp_path / "scenarios.json"
    argv = ["--work", str(tmp_path / "work"), "--out", str(out), "--skus", "40", "--warehouses", "2"]
    assert (
        scenarios.main([*argv, "--late-launches", "4", "--peers", "MA28", "seasonal naive (7)", "--pooling"])
        == 0
    )
    results = read(out, "scenarios")
    segments = {(s["series"], s["days"]): s for s in results["segments"]}
    every_day = segments[("all series", "all days")]
    assert 0 < every_day["n_series"] <= 80
    assert str(results["pooling"]["weight"]) in results["pooling"]["wmape_by_weight_at_past_origin"]
    assert 0 <= every_day["p90 coverage pooled"] <= 1
    for name in ("platform", scenarios.POOLED, "true median (floor)", "MA28", "seasonal naive (7)"):
        assert every_day[name]["wmape"] >= 0 and every_day[name]["bias"] > -1
    assert every_day["true median (floor)"]["ratio"] == pytest.approx(1.0)
    days = {d for _, d in segments}
    assert any(d.startswith("Black Friday") for d in days) and any(
        d.startswith("sitewide 30% sale") for d in days
    )
    assert any(s.startswith("launched in the last 21 days") for s, _ in segments)
    assert 0 <= every_day["p90 coverage"] <= 1
