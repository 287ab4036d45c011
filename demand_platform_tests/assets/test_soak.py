"""A home that lives day after day through the CLI: growing source, late lines, corrections, SIGKILLs.

A small synthetic source is revealed one day at a time to ``demand-platform run --through DAY`` on one
home, each run a fresh process as a cron job would start it. Along the way a warehouse's lines arrive
a day late, an already ingested line is corrected, and two runs are killed with SIGKILL: one in the
middle of ingesting, one inside the rewrite of an ingested partition. After each kill the next run must
repair everything. At the end the home must hold exactly the source's daily totals and forecasts for
every origin day and active SKU.
"""

import datetime as dt
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import dagster as dg
import duckdb
import pandas as pd
import pytest

from demand_platform import columns as C
from demand_platform.synthetic import GeneratorConfig, generate_source

D = dt.date
START = D(2024, 1, 1)
HISTORY_DAYS = 150
T0 = START + dt.timedelta(days=HISTORY_DAYS - 1)
LIVE_DAYS = 6  # T0 .. T0 + 5

# Imported by the CLI processes of this test (PYTHONPATH): pauses a run at a chosen write so the test can
# SIGKILL it there. Test-only code: nothing in the product knows about it.
HOOKS = textwrap.dedent(
    """
    import os, time
    from pathlib import Path

    PAUSE = os.environ.get("SOAK_PAUSE", "")
    MARK = Path(os.environ.get("SOAK_MARK", "/nonexistent"))

    def _pause():
        MARK.write_text(str(os.getpid()))
        time.sleep(600)

    if PAUSE == "ingest":  # inside raw_sales, after the log is written, before the rows are stored
        from demand_platform import ingest_log
        _replace_log = ingest_log.replace_log
        def replace_log(*args, **kwargs):
            _replace_log(*args, **kwargs)
            _pause()
        ingest_log.replace_log = replace_log
    elif PAUSE == "rewrite":  # inside the IO manager's transaction: partition deleted, rows not inserted
        from demand_platform import dbfile
        _insert = dbfile.insert_by_name
        def insert_by_name(con, table, frame, *args, **kwargs):
            if table == "raw_sales":
                con.execute("DELETE FROM raw_sales WHERE true")  # worst case: the whole table, uncommitted
                _pause()
            return _insert(con, table, frame, *args, **kwargs)
        dbfile.insert_by_name = insert_by_name
    """
)
RUNNER = "import sys, soak_hooks; from assets.cli import main; sys.exit(main())"


def cli_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The environment of the CLI processes: no platform setting inherited, the pause hooks importable."""
    hooks = tmp_path / "hooks"
    hooks.mkdir(exist_ok=True)
    (hooks / "soak_hooks.py").write_text(HOOKS)
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("DEMAND_PLATFORM_")},
        "PYTHONPATH": os.pathsep.join([str(hooks), *filter(None, [os.environ.get("PYTHONPATH")])]),
        "SOAK_MARK": str(tmp_path / "paused"),
        **extra,
    }


def _reveal(full: pd.DataFrame, live: Path, through: dt.date, held: pd.Series | None = None) -> None:
    """Write the live source's transactions: every line dated up to ``through``, less ``held`` lines."""
    dates = pd.to_datetime(full[C.TRANSACTION_DATE]).dt.date
    keep = dates <= through
    if held is not None:
        keep &= ~held
    full[keep].to_parquet(live / "transactions.parquet", index=False)


def spawn_cli(args: list[str], env: dict[str, str], pause: str = "") -> subprocess.Popen:
    """``demand-platform ARGS`` in a fresh process, optionally pausing at a write (see ``HOOKS``)."""
    return subprocess.Popen(
        [sys.executable, "-c", RUNNER, *args],
        env={**env, "SOAK_PAUSE": pause},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _cli(home: Path, live: Path, through: dt.date, env: dict[str, str], pause: str = "") -> subprocess.Popen:
    args = ["run", "--source", str(live), "--home", str(home), "--through", through.isoformat()]
    args += ["--retrain-every", "3", "--late-days", "10"]
    # In the CLI's process: a run to be killed mid-write must execute where the pause hook is (killing the
    # process kills the run, as a crash or an OOM kill of a run worker does), and the other days test the
    # data, not how runs are launched (test_orchestration.py tests the run queue day after day); a process
    # start per run would add minutes to the suite.
    return spawn_cli([*args, "--launch", "in-process"], env, pause)


def _run(home: Path, live: Path, through: dt.date, env: dict[str, str]) -> str:
    proc = _cli(home, live, through, env)
    out, _ = proc.communicate(timeout=900)
    assert proc.returncode == 0, f"run --through {through} exited {proc.returncode}:\n{out[-4000:]}"
    return out


def _kill_when_paused(home: Path, live: Path, through: dt.date, env: dict[str, str], pause: str) -> None:
    mark = Path(env["SOAK_MARK"])
    mark.unlink(missing_ok=True)
    proc = _cli(home, live, through, env, pause=pause)
    deadline = time.monotonic() + 600
    while not mark.exists():
        assert proc.poll() is None, f"run ended before pausing at {pause}:\n{proc.communicate()[0][-4000:]}"
        assert time.monotonic() < deadline, f"run never paused at {pause}"
        time.sleep(0.2)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL


def _source_totals(live: Path) -> pd.DataFrame:
    """Net quantity per (warehouse, day) of the valid lines, computed from the source independently."""
    lines = pd.read_parquet(live / "transactions.parquet")
    skus = set(pd.read_parquet(live / "products.parquet")[C.SKU])
    lines = lines[lines[C.SKU].isin(skus) & lines[C.QUANTITY].notna()]
    lines = lines.drop_duplicates(C.TRANSACTION_ID, keep="first")
    lines = lines.assign(day=pd.to_datetime(lines[C.TRANSACTION_DATE]).dt.normalize())
    return lines.groupby([C.WAREHOUSE_ID, "day"])[C.QUANTITY].sum().rename("source")


def _stored_totals(home: Path) -> pd.DataFrame:
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        frame = con.execute(
            f"SELECT {C.WAREHOUSE_ID}, CAST({C.DATE} AS DATE) AS day, sum({C.QUANTITY}) AS stored, count(*) AS n "
            f"FROM raw_sales GROUP BY ALL"
        ).df()
    frame["day"] = pd.to_datetime(frame["day"])
    return frame.set_index([C.WAREHOUSE_ID, "day"])


@pytest.mark.slow
def test_a_home_lives_through_late_lines_corrections_and_kills(tmp_path: Path) -> None:
    full_dir, live, home = tmp_path / "full", tmp_path / "live", tmp_path / "home"
    config = GeneratorConfig(n_skus=24, n_warehouses=2, start=START, days=HISTORY_DAYS + LIVE_DAYS, seed=11)
    generate_source(full_dir, config)
    live.mkdir()
    for table in ("products", "warehouses", "marketing_campaigns", "calendar", "weather"):
        if (full_dir / f"{table}.parquet").exists():
            (live / f"{table}.parquet").write_bytes((full_dir / f"{table}.parquet").read_bytes())
    full = pd.read_parquet(full_dir / "transactions.parquet")
    env = cli_env(tmp_path)
    dates = pd.to_datetime(full[C.TRANSACTION_DATE]).dt.date
    warehouses = sorted(full[C.WAREHOUSE_ID].unique())
    late_day = T0 - dt.timedelta(days=2)
    late = (dates == late_day) & (full[C.WAREHOUSE_ID] == warehouses[1])
    assert late.sum() > 0

    # Day 0: two years' worth of cold start, one warehouse's lines of T0 - 2 not uploaded yet.
    _reveal(full, live, T0, held=late)
    _run(home, live, T0, env)
    before = _stored_totals(home)
    assert before.loc[(warehouses[1], pd.Timestamp(late_day)), "stored"] == 0  # zeros, as the source said

    # Day 1: the late upload arrives with the new day; the catch-up ingests the day again.
    _reveal(full, live, T0 + dt.timedelta(days=1))
    out = _run(home, live, T0 + dt.timedelta(days=1), env)
    assert "source lines changed since ingestion" in out
    # What was built on that day was built again: the forecasts of origin T0 read its history.
    instance = dg.DagsterInstance.from_config(str(home / "dagster"))
    rebuilt = instance.fetch_materializations(
        dg.AssetRecordsFilter(
            asset_key=dg.AssetKey("forecasts"), asset_partitions=[f"{T0.isoformat()}|{warehouses[1]}"]
        ),
        limit=10,
    ).records
    assert len(rebuilt) == 2
    # ... and its reconciliation across the warehouses: once on day 0, again on day 1.
    reconciled = instance.fetch_materializations(
        dg.AssetRecordsFilter(
            asset_key=dg.AssetKey(C.RECONCILED_FORECASTS), asset_partitions=[T0.isoformat()]
        ),
        limit=10,
    ).records
    assert len(reconciled) == 2

    # Day 2: killed in the middle of ingesting, then run again.
    _reveal(full, live, T0 + dt.timedelta(days=2))
    _kill_when_paused(home, live, T0 + dt.timedelta(days=2), env, "ingest")
    out = _run(home, live, T0 + dt.timedelta(days=2), env)
    assert "runs of dead processes marked failed" in out
    good = _stored_totals(home)

    # Day 3: a line of an ingested day is corrected; the rewrite of that partition is killed mid-transaction.
    corrected_day = T0 + dt.timedelta(days=1)
    target = full.index[(dates == corrected_day) & (full[C.WAREHOUSE_ID] == warehouses[0])][0]
    full.loc[target, C.QUANTITY] = full.loc[target, C.QUANTITY] + 7
    _reveal(full, live, T0 + dt.timedelta(days=3))
    _kill_when_paused(home, live, T0 + dt.timedelta(days=3), env, "rewrite")
    # The transaction died with the process: the table is exactly as the last good run left it.
    pd.testing.assert_frame_equal(_stored_totals(home).sort_index(), good.sort_index())
    stuck = instance.get_run_records(filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED]))
    assert len(stuck) == 1  # the killed run, which only the next start can judge
    out = _run(home, live, T0 + dt.timedelta(days=3), env)
    assert "runs of dead processes marked failed" in out
    assert instance.get_run_by_id(stuck[0].dagster_run.run_id).status == dg.DagsterRunStatus.FAILURE

    # Days 4 and 5: ordinary days.
    for k in (4, 5):
        _reveal(full, live, T0 + dt.timedelta(days=k))
        _run(home, live, T0 + dt.timedelta(days=k), env)

    # The home holds exactly the source's daily totals, every day of every warehouse.
    totals = _stored_totals(home).join(_source_totals(live), how="outer").fillna(0.0)
    last = pd.Timestamp(T0 + dt.timedelta(days=LIVE_DAYS - 1))
    totals = totals[totals.index.get_level_values("day") <= last]
    live_days = pd.date_range(T0, last, freq="D")
    assert {(w, d) for w in warehouses for d in live_days} <= set(totals.index)
    assert (totals["n"] > 0).sum() >= 2 * LIVE_DAYS
    pd.testing.assert_series_equal(
        totals["stored"].astype(float), totals["source"].astype(float), check_names=False, atol=1e-9
    )

    # Forecasts for every origin day and every SKU active at it, 30 days each.
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        fc = con.execute(
            f"SELECT {C.WAREHOUSE_ID}, CAST({C.ORIGIN_DATE} AS DATE) AS origin, count(DISTINCT {C.SKU}) AS skus, "
            f"count(*) AS n FROM forecasts GROUP BY ALL"
        ).df()
        active = con.execute(
            f"SELECT {C.WAREHOUSE_ID}, CAST({C.DATE} AS DATE) AS origin, count(DISTINCT {C.SKU}) AS skus "
            f"FROM raw_sales WHERE {C.DATE} >= TIMESTAMP '{T0.isoformat()}' GROUP BY ALL"
        ).df()
    merged = active.merge(fc, on=[C.WAREHOUSE_ID, "origin"], how="left", suffixes=("_active", "_forecast"))
    assert len(merged) == 2 * LIVE_DAYS
    assert (merged["skus_forecast"] == merged["skus_active"]).all(), merged
    assert (merged["n"] == merged["skus_active"] * 30).all(), merged
    # Every origin reconciled across both warehouses, row for row, after the kills too.
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        pairs = con.execute(
            f"""
            SELECT CAST(f.{C.ORIGIN_DATE} AS DATE) AS origin, count(*) AS n, count(r.{C.SKU}) AS reconciled
            FROM forecasts f LEFT JOIN {C.RECONCILED_FORECASTS} r
              USING ({C.SKU}, {C.WAREHOUSE_ID}, {C.ORIGIN_DATE}, {C.HORIZON})
            WHERE f.{C.ORIGIN_DATE} >= TIMESTAMP '{T0.isoformat()}' GROUP BY ALL
            """
        ).df()
    assert len(pairs) == LIVE_DAYS and (pairs["reconciled"] == pairs["n"]).all(), pairs
