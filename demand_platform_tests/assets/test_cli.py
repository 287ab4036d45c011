"""The CLI as a user runs it: generate a source, run the platform on it, run again incrementally."""

from pathlib import Path

import duckdb
import pytest

from demand_platform.cli import main


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


def test_bad_source_fails_with_a_message(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "src").mkdir()
    code = main(
        ["run", "--source", str(tmp_path / "src"), "--home", str(tmp_path / "h"), "--through", "2024-01-01"]
    )
    assert code == 2
    assert "transactions.parquet or transactions.csv" in capsys.readouterr().err
