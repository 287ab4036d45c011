"""The cluster environment on real services: the Dagster instance on PostgreSQL, steps on two Celery workers
over Redis, the tables in a DuckLake (catalog in PostgreSQL, Parquet on moto's S3), MLflow on PostgreSQL
with its artifacts on S3.

One source in the design's DDL types (integer ids), two homes: the local home (embedded DuckDB, SQLite) reads it as files, the cluster home from a
database on the same PostgreSQL. Both are brought up to the day before the last two in the CLI's process;
then each of the last two days' four warehouse runs of the daily job are submitted at once: in the local
home one after the other in process, in the cluster home to the instance's run queue, whose runs send every
step to the two Celery workers. Day one: the four run at once, on both workers, without a failure. Day two:
one worker is SIGKILLed with all its processes in the middle of a step; the other finishes it. The cluster
writes the same forecasts as the local home.
"""

import datetime as dt
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from assets.definitions import build_definitions
from assets.operations import DAILY_JOB, RETRAIN_TAG
from assets.orchestration import QUIET, box_specs, prepare_instance, run_platform
from assets.run_queue import InProcessRuns, QueuedRuns, RunOutcome, RunSpec
from demand_platform import columns as C
from demand_platform import dbfile, lake, source_db
from demand_platform.settings import PlatformSettings
from demand_platform.synthetic import GeneratorConfig, generate_source
from demand_platform_tests import services
from demand_platform_tests.design_ddl import write_design_source
from resources import UNACKED_MUTEX_EXPIRE_S

REPO = Path(__file__).resolve().parents[2]
HISTORY_DAYS = 90
WAREHOUSES = 4
WORKERS = ("worker-a", "worker-b")
#: Celery's visibility timeout here: a lost worker's step goes to the other worker after this long (longer
#: than any step of this small source takes).
STEP_TIMEOUT_S = 45
#: The columns compared between the homes (what replenishment reads).
FORECAST_VALUES = [C.SKU, C.WAREHOUSE_ID, C.ORIGIN_DATE, C.HORIZON, C.FORECAST, C.MODEL, C.TIER]

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1500)]


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dt.date]:
    """A synthetic source of four warehouses in the design's DDL types (integer ids); its last day."""
    generated, root = tmp_path_factory.mktemp("generated"), tmp_path_factory.mktemp("source")
    start = dt.date(2024, 1, 1)
    generate_source(
        generated, GeneratorConfig(n_skus=8, n_warehouses=WAREHOUSES, start=start, days=HISTORY_DAYS, seed=11)
    )
    write_design_source(generated, root)
    return root, start + dt.timedelta(days=HISTORY_DAYS - 1)


def cluster_env(postgres: services.Postgres, redis_url: str, s3_endpoint: str, name: str) -> dict[str, str]:
    """The cluster's variables on the test's services: new databases and a new bucket named after ``name``."""
    bucket = services.unique_name(name)
    services.s3_client(s3_endpoint).create_bucket(Bucket=bucket)
    db = services.unique_name(name).replace("-", "_")
    return {
        "DEMAND_PLATFORM_ENV": "cluster",
        "DEMAND_PLATFORM_INSTANCE_DB": postgres.create_database(f"{db}_dagster"),
        "DEMAND_PLATFORM_LAKE_CATALOG": postgres.create_database(f"{db}_lake"),
        "DEMAND_PLATFORM_LAKE_DATA": f"s3://{bucket}/lake/",
        "DEMAND_PLATFORM_MLFLOW_URI": postgres.create_database(f"{db}_mlflow"),
        "DEMAND_PLATFORM_MLFLOW_ARTIFACTS": f"s3://{bucket}/mlflow",
        "DEMAND_PLATFORM_CELERY_BROKER": redis_url,
        "DEMAND_PLATFORM_DATABASE_RUNS": str(WAREHOUSES),
        **services.s3_env(s3_endpoint),
    }


def day_specs(day: dt.date) -> list[RunSpec]:
    """One daily-job run per warehouse for ``day`` (what the 06:00 schedule launches)."""
    warehouses = [str(i) for i in range(1, WAREHOUSES + 1)]  # the design's integer ids, as text
    return box_specs(DAILY_JOB, [([w], day, day) for w in warehouses], **{RETRAIN_TAG: "true"})


def forecasts(database: str, through: dt.date | None = None) -> pd.DataFrame:
    """The forecasts of a home's database (through an origin), in a fixed order."""
    where = "" if through is None else f"WHERE CAST({C.ORIGIN_DATE} AS DATE) <= DATE '{through.isoformat()}'"
    with dbfile.connect(database) as con:
        frame = con.execute(f"SELECT {', '.join(FORECAST_VALUES)} FROM main.forecasts {where}").df()
    return frame.sort_values(FORECAST_VALUES[:4]).reset_index(drop=True)


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[list[subprocess.Popen]]:
    started: list[subprocess.Popen] = []
    yield started
    for process in started:
        services.stop(process)


def start_worker(settings: PlatformSettings, name: str, log: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "assets.cli",
            "worker",
            "--home",
            str(settings.home),
            "--name",
            f"{name}@test",
        ],
        cwd=REPO,
        env={**os.environ, **settings.to_env()},
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def most_at_once(instance: dg.DagsterInstance, run_ids: list[str]) -> int:
    """The largest number of the runs that were running at the same moment."""
    records = instance.get_run_records(filters=dg.RunsFilter(run_ids=run_ids))
    edges = []
    for record in records:
        assert record.start_time is not None and record.end_time is not None
        edges += [(record.start_time, 1), (record.end_time, -1)]
    running = peak = 0
    for _, step in sorted(edges, key=lambda e: (e[0], e[1])):
        running += step
        peak = max(peak, running)
    return peak


def steps_by_worker(instance: dg.DagsterInstance, run_ids: list[str]) -> list[tuple[str, str, str]]:
    """``(run id, step key, worker)`` of every step handed to a Celery worker, in the order they started."""
    out = []
    for run_id in run_ids:
        for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.ENGINE_EVENT):
            event = entry.dagster_event
            assert event is not None
            worker = (event.engine_event_data.metadata or {}).get("Celery worker")
            if worker is not None:
                out.append((entry.timestamp, run_id, str(event.step_key), str(worker.value).split("@")[0]))
    return [(r, k, w) for _, r, k, w in sorted(out)]


def handed_at(instance: dg.DagsterInstance, run_id: str, step: str, name: str) -> float:
    """When ``step`` of ``run_id`` was last handed to the worker ``name`` (its engine event's timestamp)."""
    times = [
        entry.timestamp
        for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.ENGINE_EVENT)
        if entry.dagster_event is not None
        and entry.dagster_event.step_key == step
        and str(
            getattr((entry.dagster_event.engine_event_data.metadata or {}).get("Celery worker"), "value", "")
        ).split("@")[0]
        == name
    ]
    assert times, f"{step} of {run_id} never reached {name}"
    return max(times)


def kill_when_busy(
    instance: dg.DagsterInstance, run_ids: list[str], worker: subprocess.Popen, name: str
) -> tuple[str, float]:
    """SIGKILL ``worker`` (all its processes: the machine is lost) while it executes a step; its key, the time."""
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        for run_id, step, who in steps_by_worker(instance, run_ids):
            if who != name:
                continue
            done = instance.all_logs(
                run_id, of_type={dg.DagsterEventType.STEP_SUCCESS, dg.DagsterEventType.STEP_FAILURE}
            )
            if all(e.step_key != step for e in done):
                os.killpg(worker.pid, signal.SIGKILL)
                return f"{run_id}:{step}", time.time()
        time.sleep(0.2)
    raise AssertionError(f"{name} never executed a step")


def local_day(local: PlatformSettings, day: dt.date) -> None:
    runs = InProcessRuns(build_definitions(local), prepare_instance(local), QUIET).execute(
        day_specs(day), "local", progress=False
    )
    assert all(o.success for o in runs)


def test_warehouse_runs_at_once_on_two_celery_workers_like_local_and_a_lost_worker(
    tmp_path: Path,
    source: tuple[Path, dt.date],
    postgres: services.Postgres,
    redis_url: str,
    s3_endpoint: str,
    workers: list[subprocess.Popen],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    root, last = source
    first_day, second_day = last - dt.timedelta(days=1), last
    # The local reference: embedded DuckDB, SQLite; the catch-up, then each day's warehouse runs.
    local = PlatformSettings(home=tmp_path / "local", source=root, end_date=last)
    assert run_platform(local, first_day - dt.timedelta(days=1), launch="in-process", retrain_every_days=7).ok
    local_day(local, first_day)
    local_day(local, second_day)

    # The cluster: the same catch-up in this process, on the lake.
    env = cluster_env(postgres, redis_url, s3_endpoint, "cluster")
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("DEMAND_PLATFORM_HOME", str(tmp_path / "cluster"))
    # The cluster reads the same source from a database on the same PostgreSQL.
    source_url = postgres.create_database(services.unique_name("source").replace("-", "_"))
    source_db.write_source(root, source_url)
    monkeypatch.setenv("DEMAND_PLATFORM_SOURCE", source_url)
    monkeypatch.setenv("DEMAND_PLATFORM_END_DATE", last.isoformat())
    monkeypatch.setenv("DEMAND_PLATFORM_STEP_TIMEOUT_S", str(STEP_TIMEOUT_S))
    cluster = PlatformSettings.from_env()
    assert cluster.cluster is not None and lake.is_lake(cluster.database) and cluster.source == source_url
    for name, value in cluster.to_env().items():
        monkeypatch.setenv(name, value)
    assert run_platform(
        cluster, first_day - dt.timedelta(days=1), launch="in-process", retrain_every_days=7
    ).ok
    instance = prepare_instance(cluster)
    workers += [start_worker(cluster, name, tmp_path / f"{name}.log") for name in WORKERS]

    def worker_logs() -> str:
        return "\n".join(f"--- {n}\n" + (tmp_path / f"{n}.log").read_text()[-3000:] for n in WORKERS)

    # Day one: the four warehouse runs at once, their steps on both workers.
    started = time.monotonic()
    with QueuedRuns(instance, QUIET) as runner:
        outcomes: list[RunOutcome] = runner.execute(day_specs(first_day), "day one", progress=False)
    elapsed = time.monotonic() - started
    run_ids = [o.run_id for o in outcomes]
    assert all(o.success for o in outcomes), worker_logs()
    assert most_at_once(instance, run_ids) == WAREHOUSES, worker_logs()
    used = {w for *_, w in steps_by_worker(instance, run_ids)}
    assert used == set(WORKERS), used
    print(f"day one: {WAREHOUSES} runs in {elapsed:.1f} s on workers {sorted(used)}")
    pd.testing.assert_frame_equal(
        forecasts(cluster.database), forecasts(local.database, through=first_day), check_exact=True
    )

    # Day two: worker-a is killed (SIGKILL to all its processes) in the middle of a step. Celery hands the
    # step to worker-b once the visibility timeout passes; the runs end as they would have.
    started = time.monotonic()
    with QueuedRuns(instance, QUIET) as runner:
        result: dict[str, list[RunOutcome]] = {}
        thread = threading.Thread(
            target=lambda: result.update(o=runner.execute(day_specs(second_day), "day two", progress=False))
        )
        thread.start()
        watcher = dg.DagsterInstance.from_config(str(cluster.dagster_home))
        deadline = time.monotonic() + 120
        ids: list[str] = []  # day two's runs: the daily job's runs other than day one's
        while len(ids) < WAREHOUSES and time.monotonic() < deadline:
            daily = watcher.get_runs(filters=dg.RunsFilter(job_name=DAILY_JOB))
            ids = [r.run_id for r in daily if r.run_id not in run_ids]
            time.sleep(0.2)
        killed, killed_at = kill_when_busy(watcher, ids, workers[0], WORKERS[0])
        thread.join(timeout=900)
        assert not thread.is_alive(), worker_logs()
    elapsed = time.monotonic() - started
    outcomes = result["o"]
    assert all(o.success for o in outcomes), worker_logs()
    run_id, step = killed.split(":", 1)
    handed = [w for r, k, w in steps_by_worker(instance, [run_id]) if k == step]
    assert handed[0] == WORKERS[0] and handed[-1] == WORKERS[1], handed
    # Handed on after the visibility timeout, not held back by a restore lock the killed worker held.
    moved_after = handed_at(instance, run_id, step, WORKERS[1]) - killed_at
    assert moved_after < STEP_TIMEOUT_S + UNACKED_MUTEX_EXPIRE_S + 20, moved_after
    print(
        f"day two: worker-a killed during {step}; {WAREHOUSES} runs in {elapsed:.1f} s, handed to {handed} {moved_after:.0f} s after the kill"
    )

    # The same forecasts as the local home, every origin.
    want, got = forecasts(local.database), forecasts(cluster.database)
    assert second_day in set(pd.to_datetime(got[C.ORIGIN_DATE]).dt.date)
    pd.testing.assert_frame_equal(got, want, check_exact=True)
    # The tables are Parquet on S3 and the models' artifacts too.
    keys = [
        o["Key"]
        for page in services.s3_client(s3_endpoint)
        .get_paginator("list_objects_v2")
        .paginate(Bucket=cluster.cluster.lake_data.split("/")[2])
        for o in page.get("Contents", [])
    ]
    assert any(k.startswith("lake/") and k.endswith(".parquet") for k in keys)
    assert any(k.startswith("mlflow/") for k in keys)
