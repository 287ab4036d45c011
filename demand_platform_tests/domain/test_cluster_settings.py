"""The cluster environment's settings: every server named, nothing guessed, carried to other processes."""

from pathlib import Path

import pytest

from demand_platform import lake
from demand_platform.settings import (
    CELERY_BROKER_ENV,
    ENV_ENV,
    INSTANCE_DB_ENV,
    LAKE_CATALOG_ENV,
    LAKE_DATA_ENV,
    MLFLOW_ARTIFACTS_ENV,
    MLFLOW_URI_ENV,
    STEP_TIMEOUT_ENV,
    ClusterSettings,
    PlatformSettings,
)

CLUSTER = {
    ENV_ENV: "cluster",
    INSTANCE_DB_ENV: "postgresql://dagster@db:5432/dagster",
    LAKE_CATALOG_ENV: "postgresql://lake:pw@db:5432/lake",
    LAKE_DATA_ENV: "s3://bucket/lake/",
    MLFLOW_URI_ENV: "postgresql://mlflow@db:5432/mlflow",
    MLFLOW_ARTIFACTS_ENV: "s3://bucket/mlflow",
    CELERY_BROKER_ENV: "redis://redis:6379/0",
}


def test_the_cluster_reads_its_servers_and_hands_them_on(tmp_path: Path) -> None:
    settings = PlatformSettings.from_env({**CLUSTER, "DEMAND_PLATFORM_HOME": str(tmp_path)})
    assert settings.cluster is not None
    assert settings.database == "ducklake:postgres:dbname=lake host=db port=5432 user=lake password=pw"
    assert lake.is_lake(settings.database)
    assert settings.mlflow_uri == CLUSTER[MLFLOW_URI_ENV]
    assert settings.mlflow_artifacts == CLUSTER[MLFLOW_ARTIFACTS_ENV]
    assert settings.cluster.step_timeout_s == 7200
    # Another process (a worker, a run) rebuilds the same settings from the environment they hand on.
    again = PlatformSettings.from_env(settings.to_env())
    assert again == settings


def test_the_local_environment_keeps_its_files(tmp_path: Path) -> None:
    settings = PlatformSettings.from_env({"DEMAND_PLATFORM_HOME": str(tmp_path)})
    assert settings.cluster is None
    assert settings.database == str(tmp_path / "warehouse.duckdb")
    assert settings.mlflow_uri.startswith("sqlite:///") and settings.mlflow_artifacts is None


@pytest.mark.parametrize("missing", [INSTANCE_DB_ENV, LAKE_DATA_ENV, CELERY_BROKER_ENV])
def test_a_cluster_missing_a_server_says_which(tmp_path: Path, missing: str) -> None:
    env = {k: v for k, v in CLUSTER.items() if k != missing}
    with pytest.raises(ValueError, match=missing):
        PlatformSettings.from_env({**env, "DEMAND_PLATFORM_HOME": str(tmp_path)})


def test_unknown_environment_and_mismatched_cluster_settings_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown environment 'prod'"):
        PlatformSettings(home=tmp_path, source=tmp_path, env="prod")
    cluster = ClusterSettings.from_env({**CLUSTER, STEP_TIMEOUT_ENV: "60"})
    assert cluster.step_timeout_s == 60
    with pytest.raises(ValueError, match="only it"):
        PlatformSettings(home=tmp_path, source=tmp_path, env="local", cluster=cluster)
    with pytest.raises(ValueError, match="only it"):
        PlatformSettings(home=tmp_path, source=tmp_path, env="cluster")


def test_a_database_source_stays_a_url(tmp_path: Path) -> None:
    url = "postgresql://reader@db:5432/sales"
    settings = PlatformSettings.from_env(
        {"DEMAND_PLATFORM_HOME": str(tmp_path), "DEMAND_PLATFORM_SOURCE": url}
    )
    assert settings.source == url
