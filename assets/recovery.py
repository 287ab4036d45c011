"""Crash recovery: runs whose process died are marked failed, so they hold neither the queue nor a partition.

Dagster's run monitoring fails runs stuck STARTING or CANCELING and runs past their maximum runtime, but
the default run launcher cannot check whether a STARTED run's worker process is still alive: a run killed
with SIGKILL (or whose machine rebooted) stays STARTED for ever, and with the run-level ``duckdb`` pool the
queue then never admits another DuckDB run. :func:`fail_dead_runs` finds such runs on this host and reports
them failed through the instance (``report_run_failed``); the daemon's run retries then launch daemon runs
again. It runs when the CLI starts a catch-up and in the daemon as ``dead_run_sensor``.

The process of a run is known from the ``Started process for run (pid: N)`` engine event a launched run
worker writes, or from the ``demand_platform/pid`` and ``demand_platform/host`` tags the CLI puts on the
runs it executes in its own process. A process counts as dead when no process has that pid, or when the
process holding it started after the run did (the pid was reused).
"""

import os
import socket
import time
from collections.abc import Iterable
from pathlib import Path

import dagster as dg

OWNER_PID_TAG = "demand_platform/pid"
OWNER_HOST_TAG = "demand_platform/host"
#: Seconds a run must have existed before its process is judged (none: a run is judged only once its
#: process is known, and a dead process is dead however young its run).
GRACE_SECONDS = 0.0
# STARTING runs are run monitoring's (its start timeout): their worker may not exist yet.
_IN_PROGRESS = [dg.DagsterRunStatus.STARTED]


def process_start_time(pid: int) -> float | None:
    """When process ``pid`` started (epoch seconds), or None when no such process exists."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass  # exists, owned by someone else
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        ticks = int(stat.rsplit(")", 1)[1].split()[19])
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        return time.time() - uptime + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return 0.0  # alive, start unknown (no /proc): never judged reused


def is_alive(pid: int, run_started: float | None) -> bool:
    """Whether the process ``pid`` that executes a run started at ``run_started`` is still running."""
    started = process_start_time(pid)
    if started is None:
        return False
    # A process that started after the run did cannot be its worker: the pid was reused.
    return run_started is None or started <= run_started + 1.0


def run_process(instance: dg.DagsterInstance, run: dg.DagsterRun) -> tuple[int, str] | None:
    """The (pid, host) of the process executing ``run``, or None when it is not known."""
    tags = run.tags
    if OWNER_PID_TAG in tags:
        return int(tags[OWNER_PID_TAG]), tags.get(OWNER_HOST_TAG, "")
    for record in instance.all_logs(run.run_id, of_type=dg.DagsterEventType.ENGINE_EVENT):
        event = record.dagster_event
        data = getattr(event, "engine_event_data", None) if event is not None else None
        pid = (data.metadata or {}).get("pid") if data is not None else None
        if pid is not None:
            return int(getattr(pid, "value", pid)), socket.gethostname()
    return None


def fail_dead_runs(instance: dg.DagsterInstance, grace_seconds: float = GRACE_SECONDS) -> list[str]:
    """Mark failed every in-progress run of this host whose process is dead; return their run ids.

    Only runs whose process is known to run on this host are judged: a run launched elsewhere (another
    executor, another machine) is left to that launcher's own monitoring.
    """
    host = socket.gethostname()
    failed = []
    now = time.time()
    records: Iterable = instance.get_run_records(filters=dg.RunsFilter(statuses=_IN_PROGRESS))
    for record in records:
        run = record.dagster_run
        # When the run started: its worker process cannot be younger. A launched worker reports the start
        # itself; a CLI run (tagged with its process) runs in a process older than the run's record.
        started = record.start_time
        if started is None and OWNER_PID_TAG in run.tags:
            started = record.create_timestamp.timestamp()
        if started is None or now - started < grace_seconds:
            continue
        owner = run_process(instance, run)
        if owner is None or owner[1] != host:
            continue
        if is_alive(owner[0], started):
            continue
        instance.report_run_failed(
            run, f"run worker process {owner[0]} on {host} is gone (killed or crashed): marked failed"
        )
        failed.append(run.run_id)
    return failed
