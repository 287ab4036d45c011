"""Dagster resources, chosen per environment in one place: :func:`build_resources`."""

from typing import Any

from dagster_duckdb import DuckDBResource
from dagster_duckdb_pandas import DuckDBPandasIOManager

from demand_platform.settings import PlatformSettings
from resources.source import SourceDataResource

ENVIRONMENTS = ("local", "test")


def build_resources(settings: PlatformSettings) -> dict[str, Any]:
    """The resources of an environment.

    ``local`` (the default) and ``test`` both use the embedded DuckDB file under the platform home
    (nothing needs a server); they differ only in where the home is, which the settings carry.
    """
    if settings.env not in ENVIRONMENTS:
        raise ValueError(f"unknown environment {settings.env!r}; expected one of {ENVIRONMENTS}")
    database = str(settings.duckdb_path)
    return {
        "io_manager": DuckDBPandasIOManager(database=database, schema="main"),
        "duckdb": DuckDBResource(database=database),
        "source": SourceDataResource(path=str(settings.source)),
    }
