"""Parallel runs on one embedded DuckDB: the `duckdb` pool admits as many runs as its limit.

Four partition runs are submitted at once to the instance's run queue (`dagster job launch`, as the
UI and backfills do) and the daemon launches them. The IO manager retries lock errors quietly for up
to ~100 s, so "all runs succeeded" alone would not prove much: the test also asserts from the event
log that exactly the pool's limit of runs overlapped in time (one: none; two: pairs, never three), and
that no log mentions a lock error.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import duckdb
import pandas as pd
import pytest

from assets.definitions import build_definitions
from assets.orchestration import prepare_instance
from assets.partitions import DUCKDB_POOL
from demand_platform import columns as C
from demand_platform.settings import PlatformSettings

REPO = Path(__file__).resolve().parents[2]
PARTITIONS = ["2024-01-01|W1", "2024-01-02|W1", "2024-01-01|W2", "2024-01-02|W2"]


def _wait_for_runs(instance: dg.DagsterInstance, n: int, timeout: float) -> list[dg.DagsterRun]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = instance.get_runs()
        if len(runs) == n and all(r.is_finished for r in runs):
            return list(runs)
        time.sleep(2)
    raise AssertionError(f"runs not finished in {timeout} s: {[r.status for r in instance.get_runs()]}")


@pytest.mark.slow
@pytest.mark.parametrize("pool_limit", [1, 2])
def test_four_parallel_partition_runs_without_lock_errors(
    settings: PlatformSettings, pool_limit: int
) -> None:
    instance = prepare_instance(settings)  # creates the SQLite storages before parallel runs race on them
    instance.event_log_storage.set_concurrency_slots(DUCKDB_POOL, pool_limit)
    env = {**os.environ, **settings.to_env()}
    partitions_def = build_definitions(settings).get_assets_def("raw_sales").partitions_def
    assert partitions_def is not None
    launches = [
        subprocess.Popen(
            [
                *(sys.executable, "-m", "dagster", "job", "launch"),
                *("-w", "workspace.yaml", "-j", "ingest"),
                *("--tags", json.dumps(partitions_def.get_tags_for_partition_key(key))),
            ],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for key in PARTITIONS
    ]
    outputs = [p.communicate(timeout=300)[0] for p in launches]
    assert [p.returncode for p in launches] == [0, 0, 0, 0], "\n".join(outputs)
    instance = dg.DagsterInstance.from_config(str(settings.dagster_home))
    assert all(r.status == dg.DagsterRunStatus.QUEUED for r in instance.get_runs())

    daemon = subprocess.Popen(
        [str(Path(sys.executable).with_name("dagster-daemon")), "run", "-w", "workspace.yaml"],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        runs = _wait_for_runs(instance, 4, timeout=400)
    finally:
        os.killpg(daemon.pid, signal.SIGTERM)
        daemon.wait(timeout=60)

    assert all(r.status == dg.DagsterRunStatus.SUCCESS for r in runs), [r.status for r in runs]
    windows = []
    for run in runs:
        events = list(instance.all_logs(run.run_id))
        assert not any("Could not set lock" in (e.message or "") for e in events)
        times = {e.dagster_event.event_type_value: e.timestamp for e in events if e.dagster_event is not None}
        windows.append((times["PIPELINE_STARTING"], times["PIPELINE_SUCCESS"]))
    # The daemon admitted at most `pool_limit` DuckDB runs at a time (run windows, each several seconds
    # of process start, overlap up to that many), and with a limit above one it did run them together;
    # their connections took turns on the database file lock (no lock error above).
    edges = sorted([(start, 1) for start, _ in windows] + [(end, -1) for _, end in windows])
    running = most = 0
    for _, step in edges:
        running += step
        most = max(most, running)
    assert most == pool_limit, f"{most} runs at once with a pool of {pool_limit}: {sorted(windows)}"

    con = duckdb.connect(str(settings.duckdb_path), read_only=True)
    stored = con.execute(f"SELECT DISTINCT {C.DATE}, {C.WAREHOUSE_ID} FROM raw_sales").df()
    con.close()
    keys = {f"{pd.Timestamp(d).date()}|{w}" for d, w in stored.itertuples(index=False)}
    assert keys == set(PARTITIONS)
