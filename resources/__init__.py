"""Dagster resources and the executor, chosen per environment in one place: :func:`build_resources`,
:func:`build_executor`."""

from typing import Any

import dagster as dg

from demand_platform.registry import DEFAULT_EXPERIMENT
from demand_platform.settings import PlatformSettings
from resources.alerts import alert_resource_from_env
from resources.duckdb_io import PlatformDuckDBIOManager, PlatformDuckDBResource
from resources.registry import ModelRegistryResource
from resources.source import SourceDataResource

MLFLOW_EXPERIMENT = DEFAULT_EXPERIMENT

ENVIRONMENTS = ("local", "test")


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
    if settings.env not in ENVIRONMENTS:
        raise ValueError(f"unknown environment {settings.env!r}; expected one of {ENVIRONMENTS}")
    settings.home.mkdir(parents=True, exist_ok=True)
    database = str(settings.duckdb_path)
    return {
        "io_manager": PlatformDuckDBIOManager(database=database, schema="main"),
        "duckdb": PlatformDuckDBResource(database=database),
        "source": SourceDataResource(path=str(settings.source), timezone=settings.timezone),
        "alerts": alert_resource_from_env(database),
        "registry": ModelRegistryResource(
            tracking_uri=settings.mlflow_uri, experiment_name=MLFLOW_EXPERIMENT
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
    if settings.env not in ENVIRONMENTS:
        raise ValueError(f"unknown environment {settings.env!r}; expected one of {ENVIRONMENTS}")
    return dg.in_process_executor
