"""The CLI as a user runs it: generate a source, run the platform on it, run again incrementally."""

import datetime as dt
from pathlib import Path

import duckdb
import pytest

from assets.cli import main


def test_generate_then_run(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch) -> None:
    for var in ("DEMAND_PLATFORM_START_DATE", "DEMAND_PLATFORM_END_DATE", "DEMAND_PLATFORM_SOURCE"):
        monkeypatch.delenv(var, raising=False)
    src, home = tmp_path / "src", tmp_path / "home"
    args = ["--skus", "40", "--warehouses", "2", "--days", "45", "--start", "2024-01-01", "--bad-rows", "6"]
    assert main(["generate", "--out", str(src), *args]) == 0
    assert main(["run", "--source", str(src), "--home", str(home), "--through", "2024-02-14"]) == 0
    out = capsys.readouterr().out
    assert "failed: 0" in out and "raw_sales:" in out and "quarantined rows" in out
    con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    days = con.execute("SELECT count(DISTINCT date), count(DISTINCT warehouse_id) FROM raw_sales").fetchone()
    quarantined = con.execute("SELECT count(*) FROM quarantine").fetchone()
    con.close()
    assert days == (45, 2)
    assert quarantined is not None and quarantined[0] >= 6  # every deliberately bad line is kept aside
    assert (home / "dagster" / "dagster.yaml").exists() and (home / "settings.json").exists()

    # Any SKU's fan chart on request: the latest origin by default, under the reports the ui serves.
    con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    sku, origin = con.execute(
        "SELECT sku, max(origin_date)::DATE FROM forecasts WHERE warehouse_id = 'WH002' GROUP BY sku LIMIT 1"
    ).fetchone()  # type: ignore[misc]
    con.close()
    assert main(["chart", "--home", str(home), "--sku", sku, "--warehouse", "WH002"]) == 0
    chart = home / "reports" / "sku" / f"{origin.isoformat()}_WH002_{sku}.png"
    assert f"wrote {chart}" in capsys.readouterr().out
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main(["chart", "--home", str(home), "--sku", "NO-SUCH-SKU", "--warehouse", "WH002"]) == 1
    assert "'NO-SUCH-SKU'" in capsys.readouterr().err


def test_bad_source_fails_with_a_message(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "src").mkdir()
    code = main(
        ["run", "--source", str(tmp_path / "src"), "--home", str(tmp_path / "h"), "--through", "2024-01-01"]
    )
    assert code == 2
    assert "transactions.parquet or transactions.csv" in capsys.readouterr().err


def test_failures_exit_non_zero_and_are_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for var in ("DEMAND_PLATFORM_START_DATE", "DEMAND_PLATFORM_END_DATE", "DEMAND_PLATFORM_SOURCE"):
        monkeypatch.delenv(var, raising=False)
    src, home = tmp_path / "src", tmp_path / "home"
    args = ["--skus", "20", "--warehouses", "2", "--days", "60", "--start", "2024-01-01"]
    assert main(["generate", "--out", str(src), *args]) == 0
    run = ["run", "--source", str(src), "--home", str(home), "--through", "2024-02-20"]
    assert main(run) == 0
    capsys.readouterr()

    # A history check that finds a hole (ERROR severity, blocking) and forecasts that cannot be made.
    from demand_platform import features

    # (In this process, where the patch is: a run of the queue executes in its own process.)
    monkeypatch.setattr(features, "missing_days", lambda *a, **k: [dt.date(2024, 1, 15)])
    run[-1] = "2024-02-22"
    assert main([*run, "--launch", "in-process"]) == 1
    out = capsys.readouterr().out
    assert "status: FAILED" in out
    assert "failed check: feature_table:history_complete" in out
    # In process, one run covers the two days x both warehouses (a box of four partitions).
    assert "failed: forecast 2024-02-21|WH001..2024-02-22|WH002" in out

    # Once the cause is gone, the next run repairs what was left undone and exits 0.
    monkeypatch.undo()
    for var in ("DEMAND_PLATFORM_START_DATE", "DEMAND_PLATFORM_END_DATE", "DEMAND_PLATFORM_SOURCE"):
        monkeypatch.delenv(var, raising=False)
    assert main(run) == 0
    assert "status: OK" in capsys.readouterr().out

    con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    origins = con.execute(
        "SELECT count(DISTINCT origin_date), count(DISTINCT warehouse_id) FROM forecasts"
    ).fetchone()
    con.close()
    assert origins == (3, 2)  # 2024-02-20 .. 2024-02-22, both warehouses

    # Through the run queue (the default), a run that fails in its worker process is named too: the
    # source has no line after 2024-02-29, so ingesting 2024-03-02 fails.
    assert main([*run[:-1], "2024-03-02"]) == 1
    out = capsys.readouterr().out
    assert "status: FAILED" in out and "failed: raw_sales WH001 2024-02-23..2024-03-02" in out
