"""The daily increment through the path the 06:00 schedule uses: the real daemon, queue, launcher and code server.

On a home that is up to date through the day before ``--day`` (built by ``demand-platform run``), this
makes the daily schedule's tick of ``--day`` + 1, 06:00 UTC, as the scheduler daemon makes it: the schedule
is evaluated by the code server (``get_schedule_execution_data`` at that scheduled time) and each run request
is submitted with the scheduler's own ``_submit_run_request`` (a ``dagster._scheduler`` internal: the tick of
a past day cannot be had otherwise; libfaketime was tried and breaks the daemon's sleeps). A real
``dagster-daemon run`` then dequeues and launches them, each a subprocess started through the code server:
one forecast run per warehouse (raw_sales .. forecasts, training only on the cadence's training days), then
one accuracy_report run per warehouse at a lower priority (with ``--warehouses-per-run N``, the
``DEMAND_PLATFORM_WAREHOUSES_PER_RUN`` setting, one of each per box of N warehouses). Nothing is executed in
this process.

Printed (and written to ``--out`` as JSON): wall seconds from the tick to the last run's end, per kind of
run (count, failures, total / median / max seconds), the peak resident memory of any process (sampled
every 0.5 s from ``/proc``, ``VmHWM``), and the machine.

    demand-platform run --source SRC --home HOME --through 2024-12-30
    python bench/bench_daily.py --home HOME --day 2024-12-31 --retrain-every 7
"""

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import dagster as dg

from assets.operations import DAILY_SCHEDULE, DRIFT_SENSOR, PRIORITY_TAG
from assets.orchestration import prepare_instance
from assets.partitions import RANGE_START_TAG
from demand_platform.settings import (
    HOME_ENV,
    RETRAIN_ENV,
    TIMEZONE_ENV,
    WAREHOUSES_PER_RUN_ENV,
    PlatformSettings,
)

REPO = Path(__file__).resolve().parent.parent


class PeakMemory(threading.Thread):
    """Samples the peak resident set (``VmHWM``) of the processes working on one Dagster home.

    A process counts when its environment has that ``DAGSTER_HOME`` (the daemon, its code servers and the
    run workers they start inherit it); other processes of the machine are left out.
    """

    def __init__(self, dagster_home: str) -> None:
        super().__init__(daemon=True)
        self.peak_kib: dict[str, int] = {}
        self.stop = threading.Event()
        self.marker = f"DAGSTER_HOME={dagster_home}".encode()

    def run(self) -> None:
        """Sample until stopped."""
        while not self.stop.wait(0.5):
            for proc in Path("/proc").iterdir():
                if not proc.name.isdigit():
                    continue
                try:
                    if self.marker not in (proc / "environ").read_bytes().split(b"\0"):
                        continue
                    cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                    status = (proc / "status").read_text()
                except OSError:
                    continue
                for line in status.splitlines():
                    if line.startswith("VmHWM:"):
                        kib = int(line.split()[1])
                        kind = _kind(cmd)
                        self.peak_kib[kind] = max(self.peak_kib.get(kind, 0), kib)


def _kind(cmd: str) -> str:
    if "dagster-daemon" in cmd:
        return "daemon"
    if "api grpc" in cmd or "code-server" in cmd:
        return "code server"
    return "run worker"


def submit_tick(instance: dg.DagsterInstance, env: dict[str, str], tick: dt.datetime) -> int:
    """Evaluate the daily schedule at ``tick`` in the code server and submit its runs as the scheduler does."""
    import logging

    from dagster._core.definitions.timestamp import TimestampWithTimezone
    from dagster._core.workspace.context import WorkspaceProcessContext
    from dagster._core.workspace.load_target import WorkspaceFileTarget
    from dagster._scheduler.scheduler import _submit_run_request

    os.environ.update(env)  # the code server this starts reads the platform's settings from it
    target = WorkspaceFileTarget(paths=[str(REPO / "workspace.yaml")])
    with WorkspaceProcessContext(instance, target) as context:
        workspace = context.create_request_context()
        (entry,) = workspace.get_code_location_entries().values()
        location = entry.code_location
        assert location is not None, workspace.get_code_location_errors()
        (repository,) = location.get_repositories().values()
        schedule = repository.get_schedule(DAILY_SCHEDULE)
        data = location.get_schedule_execution_data(
            instance=instance,
            repository_handle=repository.handle,
            schedule_name=DAILY_SCHEDULE,
            scheduled_execution_time=TimestampWithTimezone(tick.timestamp(), "UTC"),
            log_key=None,
        )
        requests = list(data.run_requests or [])
        if not requests:
            sys.exit(f"the schedule made no run: {data.skip_message}")
        logger = logging.getLogger("bench_daily")
        for request in requests:
            _submit_run_request(request, context, schedule, tick, logger, None)
    return len(requests)


def _run_day(tags: dict[str, str]) -> str:
    """The partition a run covers (one warehouse) or the first of its box (several warehouses)."""
    return tags.get("dagster/partition") or tags.get(RANGE_START_TAG, "")


def drift_sensor(command: str, env: dict[str, str]) -> None:
    """``dagster sensor stop|start drift_sensor`` on the benchmark's home.

    The drift sensor is stopped while the tick runs: the daemon of an earlier benchmark (or of the
    catch-up's home) was stopped in the middle of a sensor tick, and a daemon started again resumes
    that tick first, submitting its remaining retrain runs (25 at full size) beside this tick. In a live
    home those retrains ran the day before. It is started again afterwards.
    """
    subprocess.run(
        ["dagster", "sensor", command, DRIFT_SENSOR, "-w", "workspace.yaml"],
        cwd=REPO,
        env=env,
        check=True,
        capture_output=True,
    )


def main() -> None:
    """Run the tick and print the figures."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--home", required=True)
    parser.add_argument("--day", type=dt.date.fromisoformat, required=True, help="the partition day to run")
    parser.add_argument("--retrain-every", type=int, default=1, help="the schedule's retraining cadence")
    parser.add_argument(
        "--warehouses-per-run", type=int, default=1, help="warehouses one scheduled run covers (the setting)"
    )
    parser.add_argument("--timeout", type=float, default=7200)
    parser.add_argument("--out", default=None, help="JSON file for the figures")
    args = parser.parse_args()

    home = Path(args.home).resolve()
    settings = PlatformSettings.from_env({HOME_ENV: str(home), TIMEZONE_ENV: "UTC"})
    instance = prepare_instance(settings)
    tick = dt.datetime.combine(args.day + dt.timedelta(days=1), dt.time(6), tzinfo=dt.UTC)
    env = {
        **os.environ,
        **settings.to_env(),
        TIMEZONE_ENV: "UTC",
        RETRAIN_ENV: str(args.retrain_every),
        WAREHOUSES_PER_RUN_ENV: str(args.warehouses_per_run),
    }
    drift_sensor("stop", env)
    memory = PeakMemory(str(settings.dagster_home))
    memory.start()
    log = open(home / "bench_daily_daemon.log", "w")  # noqa: SIM115 - closed below
    started = time.perf_counter()
    daemon = subprocess.Popen(
        ["dagster-daemon", "run", "-w", str(REPO / "workspace.yaml")],
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    records: list[dg.RunRecord] = []
    try:
        submitted = submit_tick(instance, env, tick)
        print(
            f"tick {tick.isoformat()}: {submitted} run requests submitted in {time.perf_counter() - started:.1f} s"
        )
        while True:
            if daemon.poll() is not None:
                sys.exit(f"the daemon exited ({daemon.returncode}); see {home / 'bench_daily_daemon.log'}")
            if time.perf_counter() - started > args.timeout:
                sys.exit("timed out")
            records = [
                r
                for r in instance.get_run_records(
                    filters=dg.RunsFilter(tags={"dagster/schedule_name": DAILY_SCHEDULE})
                )
                if _run_day(r.dagster_run.tags).startswith(args.day.isoformat())
            ]
            reports = [r for r in records if r.dagster_run.tags.get(PRIORITY_TAG)]
            if (
                records
                and len(reports) * 2 == len(records)
                and all(r.dagster_run.is_finished for r in records)
            ):
                break
            time.sleep(2)
    finally:
        daemon.terminate()
        try:
            daemon.wait(timeout=60)
        except subprocess.TimeoutExpired:
            daemon.kill()
        log.close()
        memory.stop.set()
        drift_sensor("start", env)
    wall_real = time.perf_counter() - started

    kinds: dict[str, list[dg.RunRecord]] = {
        "forecast run (raw_sales .. forecasts)": [
            r for r in records if not r.dagster_run.tags.get(PRIORITY_TAG)
        ],
        "accuracy_report run": [r for r in records if r.dagster_run.tags.get(PRIORITY_TAG)],
    }
    first_create = min(r.create_timestamp.timestamp() for r in records)
    last_end = max(r.end_time or 0 for r in records)
    figures = {
        "day": args.day.isoformat(),
        "retrain_every_days": args.retrain_every,
        "warehouses_per_run": args.warehouses_per_run,
        "runs": len(records),
        "failed": sum(r.dagster_run.status != dg.DagsterRunStatus.SUCCESS for r in records),
        "wall_first_run_created_to_last_end_s": round(last_end - first_create, 1),
        "wall_command_s": round(wall_real, 1),
        "by_kind": {},
        "peak_rss_mib": {k: round(v / 1024) for k, v in sorted(memory.peak_kib.items())},
        "machine": f"{platform.node()} {os.cpu_count()} cores, {platform.python_version()}",
    }
    print(f"daily tick for {args.day} on {home}: {len(records)} runs, {figures['failed']} failed")
    print(f"{'kind':<40} {'runs':>5} {'failed':>6} {'total s':>9} {'median s':>9} {'max s':>8}")
    for kind, rs in kinds.items():
        secs = [(r.end_time or 0) - (r.start_time or 0) for r in rs if r.start_time]
        failed = sum(r.dagster_run.status != dg.DagsterRunStatus.SUCCESS for r in rs)
        figures["by_kind"][kind] = {
            "runs": len(rs),
            "failed": failed,
            "total_s": round(sum(secs), 1),
            "median_s": round(statistics.median(secs), 2) if secs else None,
            "max_s": round(max(secs), 1) if secs else None,
        }
        if secs:
            print(
                f"{kind:<40} {len(rs):>5} {failed:>6} {sum(secs):>9.1f} {statistics.median(secs):>9.2f} "
                f"{max(secs):>8.1f}"
            )
    print(
        f"wall: first run created -> last run end {figures['wall_first_run_created_to_last_end_s']} s; "
        f"the whole command {figures['wall_command_s']} s"
    )
    print(f"peak RSS (MiB) by process kind: {figures['peak_rss_mib']}")
    if args.out:
        Path(args.out).write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
