"""The daemon path on a live home: the real ``dagster-daemon`` runs the 06:00 schedule's tick.

The source's last day is the day before the most recent 06:00 (UTC), as on a morning when yesterday's
sales have landed. A CLI run killed with SIGKILL is left STARTED in the instance, holding the run queue's
``duckdb`` pool, as a crashed cron job leaves it. The daemon must mark it failed (``dead_run_sensor``),
then launch and complete the schedule's runs through its queue, run launcher and code server, while a
``demand-platform run`` for the same day executes on the same home at the same time.

The one thing the test arranges inside the instance is the schedule's start: a schedule turned on now
would first tick at the next 06:00, so its state is created as if it had been running since 05:00.
"""

import datetime as dt
import os
import signal
import subprocess
import time
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from assets.operations import DAILY_SCHEDULE
from assets.partitions import RANGE_END_TAG, RANGE_START_TAG
from demand_platform import columns as C
from demand_platform.synthetic import GeneratorConfig, generate_source
from demand_platform_tests.assets.test_soak import cli_env
from demand_platform_tests.assets.test_soak import spawn_cli as _cli

REPO = Path(__file__).resolve().parents[2]
TZ = "UTC"


def _last_tick(now: dt.datetime) -> dt.datetime:
    """The most recent 06:00 of the company timezone at or before ``now``."""
    tick = now.replace(hour=6, minute=0, second=0, microsecond=0)
    return tick if tick <= now else tick - dt.timedelta(days=1)


def _start_schedule_before(tick: dt.datetime, env: dict[str, str]) -> None:
    """Create the schedule's state as if it had been running since an hour before ``tick``."""
    from dagster._core.scheduler.instigation import (
        InstigatorState,
        InstigatorStatus,
        InstigatorType,
        ScheduleInstigatorData,
    )
    from dagster._core.workspace.context import WorkspaceProcessContext
    from dagster._core.workspace.load_target import WorkspaceFileTarget

    saved = dict(os.environ)
    os.environ.update(env)
    try:
        instance = dg.DagsterInstance.from_config(env["DAGSTER_HOME"])
        target = WorkspaceFileTarget(paths=[str(REPO / "workspace.yaml")])
        with WorkspaceProcessContext(instance, target) as context:
            workspace = context.create_request_context()
            (location,) = [e.code_location for e in workspace.get_code_location_entries().values()]
            assert location is not None, workspace.get_code_location_errors()
            (repository,) = location.get_repositories().values()
            schedule = repository.get_schedule(DAILY_SCHEDULE)
            instance.add_instigator_state(
                InstigatorState(
                    schedule.get_remote_origin(),
                    InstigatorType.SCHEDULE,
                    InstigatorStatus.DECLARED_IN_CODE,
                    ScheduleInstigatorData(
                        schedule.cron_schedule, (tick - dt.timedelta(hours=1)).timestamp()
                    ),
                )
            )
    finally:
        os.environ.clear()
        os.environ.update(saved)


@pytest.mark.slow
@pytest.mark.timeout(1500)
@pytest.mark.parametrize("warehouses_per_run", [1, 2])
def test_daemon_runs_the_daily_tick_after_a_killed_run_beside_the_cli(
    tmp_path: Path, warehouses_per_run: int
) -> None:
    """One run per warehouse, and (2) one run per box of warehouses: the schedule's run requests cover
    the day x both warehouses, a partition range in their tags."""
    now = dt.datetime.now(dt.UTC)
    tick = _last_tick(now)
    day = tick.date() - dt.timedelta(days=1)  # what the tick forecasts: its yesterday
    history = 150
    src, home = tmp_path / "src", tmp_path / "home"
    start = day - dt.timedelta(days=history - 1)
    generate_source(src, GeneratorConfig(n_skus=20, n_warehouses=2, start=start, days=history, seed=3))
    env = cli_env(
        tmp_path,
        DEMAND_PLATFORM_HOME=str(home),
        DEMAND_PLATFORM_SOURCE=str(src),
        DEMAND_PLATFORM_TIMEZONE=TZ,
        DAGSTER_HOME=str(home / "dagster"),
        DEMAND_PLATFORM_WAREHOUSES_PER_RUN=str(warehouses_per_run),
    )
    base = ["run", "--source", str(src), "--home", str(home)]
    n_scheduled = 2 * (2 // warehouses_per_run)  # a forecast run and a report run per box

    # Yesterday's home: everything through the day before, by the CLI.
    cold = _cli([*base, "--through", (day - dt.timedelta(days=1)).isoformat(), "--launch", "in-process"], env)
    out, _ = cold.communicate(timeout=900)
    assert cold.returncode == 0, out[-4000:]

    # A cron job's run killed while ingesting the new day: STARTED for ever, holding the duckdb pool.
    killed = _cli([*base, "--through", day.isoformat(), "--launch", "in-process"], env, pause="ingest")
    mark = Path(env["SOAK_MARK"])
    while not mark.exists():
        assert killed.poll() is None, killed.communicate()[0][-4000:]
        time.sleep(0.2)
    os.kill(killed.pid, signal.SIGKILL)
    killed.wait(timeout=60)
    instance = dg.DagsterInstance.from_config(str(home / "dagster"))
    (stuck,) = instance.get_run_records(filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED]))

    _start_schedule_before(tick, env)
    daemon = subprocess.Popen(
        ["dagster-daemon", "run", "-w", str(REPO / "workspace.yaml")],
        cwd=REPO,
        env=env,
        stdout=open(tmp_path / "daemon.log", "w"),  # noqa: SIM115 - closed with the process
        stderr=subprocess.STDOUT,
    )
    cli = None
    try:
        deadline = time.monotonic() + 1200
        scheduled: list[dg.RunRecord] = []
        while True:
            assert daemon.poll() is None, (tmp_path / "daemon.log").read_text()[-4000:]
            assert time.monotonic() < deadline, (tmp_path / "daemon.log").read_text()[-4000:]
            scheduled = list(
                instance.get_run_records(
                    filters=dg.RunsFilter(tags={"dagster/schedule_name": DAILY_SCHEDULE})
                )
            )
            reaped = instance.get_run_by_id(stuck.dagster_run.run_id).status == dg.DagsterRunStatus.FAILURE
            if cli is None and scheduled and reaped:
                # The daemon freed the pool itself; now the CLI on the same home while its runs go on. The
                # CLI submits its runs to the queue, which this daemon dequeues.
                cli = _cli([*base, "--through", day.isoformat()], env)
            finished = [r for r in scheduled if r.dagster_run.is_finished]
            if (
                len(scheduled) == n_scheduled
                and len(finished) == n_scheduled
                and cli is not None
                and cli.poll() is not None
            ):
                break
            time.sleep(2)
        cli_out, _ = cli.communicate(timeout=60)
        # Let what the daemon started meanwhile (e.g. retrain runs its drift sensor requested) finish,
        # so no run worker outlives the test.
        busy = [
            dg.DagsterRunStatus.QUEUED,
            dg.DagsterRunStatus.NOT_STARTED,
            dg.DagsterRunStatus.STARTING,
            dg.DagsterRunStatus.STARTED,
        ]
        while instance.get_run_records(filters=dg.RunsFilter(statuses=busy)) and time.monotonic() < deadline:
            time.sleep(2)
    finally:
        daemon.send_signal(signal.SIGINT)
        try:
            daemon.wait(timeout=60)
        except subprocess.TimeoutExpired:
            daemon.kill()

    assert cli.returncode == 0, cli_out[-4000:]
    statuses = {r.dagster_run.run_id: r.dagster_run.status for r in scheduled}
    assert set(statuses.values()) == {dg.DagsterRunStatus.SUCCESS}, statuses
    if warehouses_per_run == 1:
        partitions = {r.dagster_run.tags.get("dagster/partition") for r in scheduled}
        assert partitions == {f"{day.isoformat()}|WH001", f"{day.isoformat()}|WH002"}
    else:
        ranges = {(r.dagster_run.tags[RANGE_START_TAG], r.dagster_run.tags[RANGE_END_TAG]) for r in scheduled}
        assert ranges == {(f"{day.isoformat()}|WH001", f"{day.isoformat()}|WH002")}
    assert instance.get_run_by_id(stuck.dagster_run.run_id).status == dg.DagsterRunStatus.FAILURE
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        rows = con.execute(
            f"SELECT {C.WAREHOUSE_ID}, count(*) FROM forecasts WHERE CAST({C.ORIGIN_DATE} AS DATE) = $d GROUP BY 1",
            {"d": day},
        ).fetchall()
        sales = con.execute(
            f"SELECT count(DISTINCT {C.WAREHOUSE_ID}) FROM raw_sales WHERE CAST({C.DATE} AS DATE) = $d",
            {"d": day},
        ).fetchone()
    assert len(rows) == 2 and all(n > 0 for _, n in rows)
    assert sales == (2,)
