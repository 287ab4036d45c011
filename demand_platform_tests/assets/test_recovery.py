"""Runs of dead processes are marked failed; live ones, and runs of other hosts, are left alone."""

import os
import subprocess
import time
from pathlib import Path

import dagster as dg

from assets.operations import DEAD_RUN_SENSOR, build_operations
from assets.recovery import OWNER_HOST_TAG, OWNER_PID_TAG, fail_dead_runs, is_alive


@dg.op
def noop() -> None:
    """A stand-in."""


@dg.job
def job() -> None:
    """A stand-in job for run records."""
    noop()


def _started_run(instance: dg.DagsterInstance, **tags: str) -> str:
    run = instance.create_run_for_job(job, tags=tags, status=dg.DagsterRunStatus.STARTED)
    return run.run_id


def _dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def test_dead_processes_runs_are_failed_and_live_ones_kept(tmp_path: Path) -> None:
    import socket

    host = socket.gethostname()
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        dead = _started_run(instance, **{OWNER_PID_TAG: str(_dead_pid()), OWNER_HOST_TAG: host})
        alive = _started_run(instance, **{OWNER_PID_TAG: str(os.getpid()), OWNER_HOST_TAG: host})
        elsewhere = _started_run(instance, **{OWNER_PID_TAG: str(_dead_pid()), OWNER_HOST_TAG: "other-host"})
        unknown = _started_run(instance)
        # A pid reused by a process started after the run: the run's own process is gone.
        reused = _started_run(instance, **{OWNER_HOST_TAG: host})
        time.sleep(2.5)
        newcomer = subprocess.Popen(["sleep", "30"])
        instance.add_run_tags(reused, {OWNER_PID_TAG: str(newcomer.pid)})
        try:
            failed = fail_dead_runs(instance, grace_seconds=0)
        finally:
            newcomer.kill()
            newcomer.wait()
        assert sorted(failed) == sorted([dead, reused])
        status = {r: instance.get_run_by_id(r).status for r in (dead, alive, elsewhere, unknown, reused)}
        assert status[dead] == status[reused] == dg.DagsterRunStatus.FAILURE
        assert status[alive] == status[elsewhere] == status[unknown] == dg.DagsterRunStatus.STARTED
        assert fail_dead_runs(instance, grace_seconds=0) == []  # idempotent


def test_a_run_younger_than_the_grace_is_not_judged(tmp_path: Path) -> None:
    import socket

    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        run = _started_run(
            instance, **{OWNER_PID_TAG: str(_dead_pid()), OWNER_HOST_TAG: socket.gethostname()}
        )
        assert fail_dead_runs(instance, grace_seconds=3600) == []
        assert instance.get_run_by_id(run).status == dg.DagsterRunStatus.STARTED


def test_is_alive_tells_reuse_from_a_live_worker() -> None:
    assert is_alive(os.getpid(), time.time())
    assert not is_alive(_dead_pid(), None)
    assert not is_alive(os.getpid(), 0.0)  # this process started long after the epoch "run"


def test_the_dead_run_sensor_fails_them_from_the_daemon(tmp_path: Path) -> None:
    import socket

    partitions = dg.MultiPartitionsDefinition(
        {
            "date": dg.DailyPartitionsDefinition(start_date="2024-01-01", end_date="2024-01-03"),
            "warehouse": dg.StaticPartitionsDefinition(["W1"]),
        }
    )
    (sensor,) = [s for s in build_operations(partitions, "UTC").sensors if s.name == DEAD_RUN_SENSOR]
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        dead = _started_run(
            instance, **{OWNER_PID_TAG: str(_dead_pid()), OWNER_HOST_TAG: socket.gethostname()}
        )
        result = sensor.evaluate_tick(dg.build_sensor_context(instance=instance))
        assert dead in (result.skip_message or "")
        assert instance.get_run_by_id(dead).status == dg.DagsterRunStatus.FAILURE


def test_queued_runs_of_a_dead_cli_are_canceled(tmp_path: Path) -> None:
    import socket

    from assets.run_queue import SUBMITTER_HOST_TAG, SUBMITTER_PID_TAG, cancel_orphaned_queued_runs

    host = socket.gethostname()

    def queued(**tags: str) -> str:
        from dagster._core.remote_origin import (
            InProcessCodeLocationOrigin,
            RemoteJobOrigin,
            RemoteRepositoryOrigin,
        )
        from dagster._core.types.loadable_target_origin import LoadableTargetOrigin

        # Dagster keeps a queued run only with the origin of a code location's job; this module stands in.
        location = InProcessCodeLocationOrigin(LoadableTargetOrigin(python_file=__file__, attribute="job"))
        origin = RemoteJobOrigin(RemoteRepositoryOrigin(location, "__repository__"), job.name)
        run = instance.create_run_for_job(
            job, tags=tags, status=dg.DagsterRunStatus.QUEUED, remote_job_origin=origin
        )
        return run.run_id

    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        orphan = queued(**{SUBMITTER_PID_TAG: str(_dead_pid()), SUBMITTER_HOST_TAG: host})
        mine = queued(**{SUBMITTER_PID_TAG: str(os.getpid()), SUBMITTER_HOST_TAG: host})
        elsewhere = queued(**{SUBMITTER_PID_TAG: str(_dead_pid()), SUBMITTER_HOST_TAG: "other-host"})
        from_the_ui = queued()
        assert cancel_orphaned_queued_runs(instance) == [orphan]
        status = {r: instance.get_run_by_id(r).status for r in (orphan, mine, elsewhere, from_the_ui)}
        assert status[orphan] == dg.DagsterRunStatus.CANCELED
        assert status[mine] == status[elsewhere] == status[from_the_ui] == dg.DagsterRunStatus.QUEUED
        assert cancel_orphaned_queued_runs(instance) == []
