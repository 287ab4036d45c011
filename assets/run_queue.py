"""How the CLI's catch-up runs are executed: in its own process, or through the instance's run queue.

``run_platform`` plans its runs in stages (raw_sales ranges, features, training, forecasts, report); a
stage's runs are independent of each other, the next stage needs them done. A :class:`RunExecutor`
takes one stage and returns when every run of it has finished.

* :class:`QueuedRuns` (the CLI's default) creates the runs in the Dagster instance and submits them to
  its ``QueuedRunCoordinator``, the path of the UI's "Materialize" and of the 06:00 schedule. The queue
  admits as many DuckDB runs at a time as the ``duckdb`` pool allows (two by default) and the default
  run launcher starts each in its own process, so a catch-up uses the machine's cores the way the daily
  tick does. When a Dagster daemon is running on the home it dequeues the runs; otherwise this class runs
  Dagster's own queue daemon (and only that one: no schedule or sensor ticks) inside the CLI process for
  as long as the catch-up lasts, so the command still needs no daemon.
* :class:`InProcessRuns` executes each run in the CLI's process, one after the other
  (``--launch in-process``): no subprocess per run, for debugging and small homes.

Dagster has no public Python API to create a run of a code location's job and submit it; we do what
``dagster job launch`` does (``dagster._cli.job``): ``CodeLocation.get_execution_plan``,
``DagsterInstance.create_run`` and ``DagsterInstance.submit_run``; the queue daemon is
``QueuedRunCoordinatorDaemon`` under a ``DagsterDaemonController`` (``dagster._daemon``). Both are
Dagster internals (pinned in pyproject.toml; ``test_run_queue`` exercises them).
"""

import contextlib
import os
import socket
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Protocol

import dagster as dg
from tqdm import tqdm

from assets.recovery import OWNER_HOST_TAG, OWNER_PID_TAG, process_start_time

#: The code location of the platform (as in workspace.yaml).
LOCATION_NAME = "demand_platform"
DEFINITIONS_MODULE = "assets.definitions"
#: Tags naming the CLI process that submitted a queued run, so a later start can drop the queued runs of
#: a catch-up whose CLI died (the runs it left are planned again from what is materialized).
SUBMITTER_PID_TAG = "demand_platform/submitted_by_pid"
SUBMITTER_HOST_TAG = "demand_platform/submitted_by_host"
#: Seconds between two looks at the submitted runs' statuses.
POLL_SECONDS = 0.5
#: Dagster's daemon heartbeat interval; a queue daemon silent for twice this long counts as stopped.
HEARTBEAT_SECONDS = 30.0
_QUEUE_DAEMON = "QUEUED_RUN_COORDINATOR"


@dataclass(frozen=True)
class RunSpec:
    """One run to execute: a job over the partition range given by its tags."""

    job_name: str
    tags: Mapping[str, str]
    label: str
    #: Create the run with one planned event per asset (long raw_sales ranges); see
    #: :func:`assets.orchestration.one_planned_event_per_run`.
    planned_per_run: bool = False


@dataclass
class RunOutcome:
    """How one run ended."""

    spec: RunSpec
    run_id: str
    success: bool
    failed_checks: list[str] = field(default_factory=list)


class RunExecutor(Protocol):
    """Executes one stage of runs and returns when all of them have finished."""

    def execute(self, specs: Sequence[RunSpec], desc: str, progress: bool) -> list[RunOutcome]: ...


@contextlib.contextmanager
def one_planned_event_per_run(enabled: bool = True) -> Iterator[None]:
    """Create runs, inside the block, with one planned event per asset instead of one per partition.

    On the SQLite instance every event costs ~10 ms: the 36,500 planned events of a two-year cold start
    cost 6 min. The price: Dagster marks a failed run's partitions failed (and a running one's in
    progress) from the per-partition planned events, so a long backfill range created this way shows
    as missing, not failed, in the UI's partition bar while the run itself shows its failure. The
    catch-up finds missing partitions by what is materialized, so it repairs them either way.
    """
    if not enabled:
        yield
        return
    before = os.environ.get(PLANNED_SUBSET_ENV)
    os.environ[PLANNED_SUBSET_ENV] = "true"
    try:
        yield
    finally:
        if before is None:
            del os.environ[PLANNED_SUBSET_ENV]
        else:
            os.environ[PLANNED_SUBSET_ENV] = before


#: Dagster's switch (read when a run is created) for one ``ASSET_MATERIALIZATION_PLANNED`` event per asset
#: of a range run, naming its partition subset, instead of one event per partition.
PLANNED_SUBSET_ENV = "DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS"


def failed_error_checks(evaluations: Iterable[Any], run_id: str) -> list[str]:
    """The ERROR-severity checks among a run's evaluations that did not pass, as ``check (partition)``."""
    out = []
    for evaluation in evaluations:
        if not evaluation.passed and evaluation.severity == dg.AssetCheckSeverity.ERROR:
            where = getattr(evaluation, "partition", None) or run_id
            out.append(f"{evaluation.asset_key.to_user_string()}:{evaluation.check_name} ({where})")
    return out


def _bar(total: int, desc: str, progress: bool) -> Any:
    return tqdm(total=total, desc=desc, unit="run", disable=not progress)


class InProcessRuns:
    """Execute each run in this process, one after the other (``execute_in_process``)."""

    def __init__(self, defs: dg.Definitions, instance: dg.DagsterInstance, run_config: Mapping[str, Any]):
        self.defs = defs
        self.instance = instance
        self.run_config = dict(run_config)

    def execute(self, specs: Sequence[RunSpec], desc: str, progress: bool) -> list[RunOutcome]:
        """Execute ``specs`` in order; see :class:`RunExecutor`."""
        outcomes = []
        for spec in tqdm(specs, desc=desc, unit="run", disable=not progress):
            with one_planned_event_per_run(spec.planned_per_run):
                result = self.defs.resolve_job_def(spec.job_name).execute_in_process(
                    instance=self.instance,
                    tags={**spec.tags, **in_process_owner_tags()},
                    raise_on_error=False,
                    run_config=self.run_config,
                )
            checks = failed_error_checks(result.get_asset_check_evaluations(), result.run_id)
            outcomes.append(RunOutcome(spec, result.run_id, result.success, checks))
        return outcomes


def in_process_owner_tags() -> dict[str, str]:
    """Tags naming the process that executes an in-process run, so a later start can tell it died.

    ``dagster/max_retries = 0``: an in-process run is not launched again by the daemon's run retries
    (its job lives in this process); the next catch-up redoes what it left.
    """
    return {OWNER_PID_TAG: str(os.getpid()), OWNER_HOST_TAG: socket.gethostname(), "dagster/max_retries": "0"}


def submitter_tags() -> dict[str, str]:
    """Tags of a run this CLI process submits to the queue (retries: the next catch-up redoes its work)."""
    return {
        SUBMITTER_PID_TAG: str(os.getpid()),
        SUBMITTER_HOST_TAG: socket.gethostname(),
        "dagster/max_retries": "0",
    }


def queue_daemon_alive(instance: dg.DagsterInstance) -> bool:
    """Whether a daemon (``dagster dev``, ``dagster-daemon run`` or another CLI) dequeues this instance.

    Alive: its queue daemon's heartbeat (written every 30 s) is at most a minute old. Dagster's own
    tolerance (30 min) would take a killed CLI's last heartbeat for a live daemon and leave the runs
    queued; :meth:`QueuedRuns.execute` also starts its own queue daemon once the heartbeats stop.
    """
    from dagster._daemon.controller import get_daemon_statuses

    statuses = get_daemon_statuses(
        instance,
        [_QUEUE_DAEMON],
        ignore_errors=True,
        heartbeat_interval_seconds=HEARTBEAT_SECONDS,
        heartbeat_tolerance_seconds=HEARTBEAT_SECONDS,
    )
    status = statuses.get(_QUEUE_DAEMON)
    return bool(status is not None and status.healthy)


def _mark_queue_daemon_stopped(instance: dg.DagsterInstance) -> None:
    """Age the queue daemon's heartbeat, so the next catch-up does not wait for a daemon that stopped."""
    from dagster._daemon.types import DaemonHeartbeat

    instance.add_daemon_heartbeat(DaemonHeartbeat(0.0, _QUEUE_DAEMON, None, None))


def cancel_orphaned_queued_runs(instance: dg.DagsterInstance) -> list[str]:
    """Cancel the still-queued runs that a CLI process of this host submitted and then died without.

    Such runs would otherwise be launched by the next daemon beside the runs a new catch-up plans for
    the same partitions. Returns their run ids.
    """
    host = socket.gethostname()
    canceled = []
    for run in instance.get_runs(dg.RunsFilter(statuses=[dg.DagsterRunStatus.QUEUED])):
        pid = run.tags.get(SUBMITTER_PID_TAG)
        if pid is None or run.tags.get(SUBMITTER_HOST_TAG) != host:
            continue
        record = instance.get_run_record_by_id(run.run_id)
        created = record.create_timestamp.timestamp() if record is not None else None
        started = process_start_time(int(pid))
        if started is not None and (created is None or started <= created + 1.0):
            continue  # the submitting process is alive
        instance.report_run_canceled(run, f"submitted by CLI process {pid} on {host}, which is gone")
        canceled.append(run.run_id)
    return canceled


class QueuedRuns(contextlib.AbstractContextManager["QueuedRuns"]):
    """Submit runs to the instance's run queue and wait for them (the CLI's default).

    Entering loads the platform's code location in a Dagster code server (as the daemon does) and, when
    no daemon dequeues this instance, starts Dagster's queue daemon in this process. Leaving cancels the
    runs this object submitted that are still queued (a Ctrl-C or an error mid-catch-up) and stops both.
    """

    def __init__(
        self, instance: dg.DagsterInstance, run_config: Mapping[str, Any], interval_seconds: float = 1.0
    ):
        self.instance = instance
        self.run_config = dict(run_config)
        self.interval_seconds = interval_seconds
        self.runs_own_daemon = False
        self._stack = contextlib.ExitStack()
        self._submitted: list[str] = []
        self._workspace: Any = None
        self._registry: Any = None

    def __enter__(self) -> "QueuedRuns":
        from dagster._core.workspace.context import WorkspaceProcessContext
        from dagster._core.workspace.load_target import ModuleTarget
        from dagster._daemon.controller import create_daemon_grpc_server_registry

        try:
            registry = self._stack.enter_context(
                create_daemon_grpc_server_registry(self.instance, code_server_log_level="warning")
            )
            target = ModuleTarget(
                module_name=DEFINITIONS_MODULE,
                attribute=None,
                working_directory=None,
                location_name=LOCATION_NAME,
            )
            self._workspace = self._stack.enter_context(
                WorkspaceProcessContext(self.instance, target, grpc_server_registry=registry)
            )
            self._registry = registry
            if not queue_daemon_alive(self.instance):
                self._start_daemon()
        except BaseException:
            self._stack.close()
            raise
        return self

    def _start_daemon(self) -> None:
        from dagster._daemon.controller import DagsterDaemonController
        from dagster._daemon.run_coordinator.queued_run_coordinator_daemon import QueuedRunCoordinatorDaemon

        # Last in, first out: when leaving, the controller stops, then its heartbeat is aged.
        self._stack.callback(_mark_queue_daemon_stopped, self.instance)
        daemon = self._stack.enter_context(QueuedRunCoordinatorDaemon(interval_seconds=self.interval_seconds))
        self._stack.enter_context(
            DagsterDaemonController(self._workspace, [daemon], grpc_server_registry=self._registry)
        )
        self.runs_own_daemon = True

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            for run in (
                self.instance.get_runs(
                    dg.RunsFilter(run_ids=self._submitted, statuses=[dg.DagsterRunStatus.QUEUED])
                )
                if self._submitted
                else []
            ):
                self.instance.report_run_canceled(
                    run, "the CLI that submitted it stopped before it was launched"
                )
        finally:
            self._stack.close()

    def submit(self, spec: RunSpec) -> str:
        """Create the run of ``spec`` in the instance and put it in the queue; return its id."""
        from dagster._core.definitions.selector import JobSubsetSelector

        context = self._workspace.create_request_context()
        location = context.get_code_location(LOCATION_NAME)
        (repository,) = location.get_repositories().values()
        remote_job = location.get_job(
            JobSubsetSelector(
                location_name=LOCATION_NAME,
                repository_name=repository.name,
                job_name=spec.job_name,
                op_selection=None,
            )
        )
        plan = location.get_execution_plan(
            remote_job, self.run_config, step_keys_to_execute=None, known_state=None, instance=self.instance
        )
        with one_planned_event_per_run(spec.planned_per_run):
            run = self.instance.create_run(
                job_name=spec.job_name,
                run_id=None,
                run_config=self.run_config,
                resolved_op_selection=None,
                step_keys_to_execute=None,
                op_selection=None,
                status=None,
                root_run_id=None,
                parent_run_id=None,
                tags={**remote_job.tags, **spec.tags, **submitter_tags()},
                job_snapshot=remote_job.job_snapshot,
                execution_plan_snapshot=plan.execution_plan_snapshot,
                parent_job_snapshot=remote_job.parent_job_snapshot,
                remote_job_origin=remote_job.get_remote_origin(),
                job_code_origin=remote_job.get_python_origin(),
                asset_selection=None,
                asset_check_selection=None,
                asset_graph=repository.asset_graph,
            )
        self.instance.submit_run(run.run_id, context)
        self._submitted.append(run.run_id)
        return run.run_id

    def execute(self, specs: Sequence[RunSpec], desc: str, progress: bool) -> list[RunOutcome]:
        """Submit every run of ``specs``, then wait until all have finished; see :class:`RunExecutor`."""
        ids = [self.submit(spec) for spec in specs]
        pending = set(ids)
        finished: dict[str, dg.DagsterRun] = {}
        last_look = time.monotonic()
        with _bar(len(ids), desc, progress) as bar:
            while pending:
                if not self.runs_own_daemon and time.monotonic() - last_look > HEARTBEAT_SECONDS / 3:
                    last_look = time.monotonic()
                    if not queue_daemon_alive(self.instance):  # the daemon we relied on stopped
                        self._start_daemon()
                for run in self.instance.get_runs(dg.RunsFilter(run_ids=list(pending))):
                    if run.is_finished:
                        finished[run.run_id] = run
                        pending.discard(run.run_id)
                        bar.update(1)
                if pending:
                    time.sleep(POLL_SECONDS)
        outcomes = []
        for spec, run_id in zip(specs, ids, strict=True):
            evaluations = [
                entry.get_dagster_event().asset_check_evaluation_data
                for entry in self.instance.all_logs(
                    run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION
                )
            ]
            success = finished[run_id].status == dg.DagsterRunStatus.SUCCESS
            outcomes.append(RunOutcome(spec, run_id, success, failed_error_checks(evaluations, run_id)))
        return outcomes
