"""Dagster resources and the executor, chosen per environment in one place: :func:`build_resources`,
:func:`build_executor`.

=============  ============================================  =======================================
environment    tables (IO manager, ``duckdb``, alerts)        MLflow / executor
=============  ============================================  =======================================
``local``      embedded DuckDB file under the home            SQLite under the home / in-process
``test``       the same, the home a temporary directory       the same
``cluster``    DuckLake: catalog in PostgreSQL, Parquet       PostgreSQL + S3 artifacts / Celery
               on S3 (:mod:`demand_platform.lake`)            workers over a Redis broker
=============  ============================================  =======================================

The Dagster instance itself (run and event storage, run queue) is configured in its ``dagster.yaml``
(:func:`assets.orchestration.instance_yaml`): SQLite under the home, or PostgreSQL on the cluster.
"""

from typing import Any

import dagster as dg

from demand_platform.registry import DEFAULT_EXPERIMENT
from demand_platform.settings import ENVIRONMENTS, ClusterSettings, PlatformSettings
from resources.alerts import alert_resource_from_env
from resources.duckdb_io import PlatformDuckDBIOManager, PlatformDuckDBResource
from resources.registry import ModelRegistryResource
from resources.source import SourceDataResource

MLFLOW_EXPERIMENT = DEFAULT_EXPERIMENT
__all__ = ["ENVIRONMENTS", "build_executor", "build_resources", "celery_config"]


def build_resources(settings: PlatformSettings) -> dict[str, Any]:
    """The resources of an environment.

    ``local`` (the default) and ``test`` both use the embedded DuckDB file and a SQLite MLflow store
    under the platform home (nothing needs a server); they differ only in where the home is, which
    the settings carry. The IO manager, the ``duckdb`` resource and the alerts open the database under
    the platform lock (:mod:`demand_platform.dbfile`), so runs of the CLI and of the daemon take turns on
    it instead of failing on DuckDB's file lock. Alerts are always recorded in DuckDB; a webhook or
    e-mail is added from the environment (``DEMAND_PLATFORM_ALERT_WEBHOOK``, ``DEMAND_PLATFORM_ALERT_EMAIL``,
    ``DEMAND_PLATFORM_SMTP_HOST``) in any environment.
    """
    settings.home.mkdir(parents=True, exist_ok=True)
    database = settings.database  # the DuckDB file, or the cluster's lake
    return {
        "io_manager": PlatformDuckDBIOManager(database=database, schema="main"),
        "duckdb": PlatformDuckDBResource(database=database),
        "source": SourceDataResource(path=str(settings.source), timezone=settings.timezone),
        "alerts": alert_resource_from_env(database),
        "registry": ModelRegistryResource(
            tracking_uri=settings.mlflow_uri,
            experiment_name=MLFLOW_EXPERIMENT,
            artifact_location=settings.mlflow_artifacts,
        ),
    }


def build_executor(settings: PlatformSettings) -> dg.ExecutorDefinition:
    """The executor of every job of an environment.

    ``local`` and ``test`` run a run's steps one after the other in its run worker
    (``in_process_executor``): the steps of a partition depend on each other or share the database
    pool, so a process per step (the multiprocess default) ran nothing in parallel and paid a Python
    start-up and a load of the definitions for every step (~4 s each on the development box).
    Parallelism comes from runs (the ``duckdb`` pool admits ``settings.database_runs`` at once).
    """
    if settings.cluster is not None:
        return celery_executor(settings.cluster)
    return dg.in_process_executor


#: Seconds the Redis lock around restoring lost steps outlives a worker killed while holding it.
UNACKED_MUTEX_EXPIRE_S = 15


def celery_config(cluster: ClusterSettings) -> dict[str, Any]:
    """The Celery executor's configuration: broker, result backend and the settings the workers share.

    A step is acknowledged when it ends, not when a worker takes it (``task_acks_late``): a step whose worker
    process dies is handed back (``task_reject_on_worker_lost``) and runs on another worker, in the same run;
    when the whole worker (its machine) is lost, Redis hands the step out again after the visibility timeout
    (``cluster.step_timeout_s``), checked every 5 s (at most :data:`UNACKED_MUTEX_EXPIRE_S` later if the lost
    worker held the restore lock). Steps write their partitions in one transaction each,
    so running one again writes the same rows.
    """
    return {
        "broker": cluster.celery_broker,
        "backend": cluster.celery_broker,
        "config_source": {
            # One step at a time per worker process: a long training step holds no queued step behind it.
            "worker_prefetch_multiplier": 1,
            "task_acks_late": True,
            "task_reject_on_worker_lost": True,
            "broker_transport_options": {
                "visibility_timeout": cluster.step_timeout_s,
                "unacked_restore_interval": 5,
                "unacked_restore_throttle": 1,
                # The lock around that restore expires after this long (kombu's default is 300 s): a worker
                # killed while holding it would otherwise hold every lost step back for five minutes.
                "unacked_mutex_expire": UNACKED_MUTEX_EXPIRE_S,
            },
        },
    }


def celery_executor(cluster: ClusterSettings) -> dg.ExecutorDefinition:
    """Dagster's Celery executor on the cluster's broker: every step a Celery task (:func:`celery_config`).

    Workers (``demand-platform worker``, see the README's cluster section) on any machine with the project
    installed and the cluster's environment variables execute the steps; a run's process only submits its
    steps and follows them.
    """
    from dagster_celery import celery_executor as executor  # the cluster extra only

    return executor.configured(celery_config(cluster), name="celery")
