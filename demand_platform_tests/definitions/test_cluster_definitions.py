"""The cluster environment's Definitions: the same graph, its jobs on the Celery executor, its tables on the lake."""

from pathlib import Path

from assets.definitions import build_definitions
from assets.orchestration import instance_yaml, with_driver
from demand_platform.settings import PlatformSettings
from demand_platform_tests.conftest import write_tiny_source
from demand_platform_tests.domain.test_cluster_settings import CLUSTER


def test_cluster_definitions_use_celery_and_the_lake(tmp_path: Path) -> None:
    source = write_tiny_source(tmp_path / "source")
    env = {**CLUSTER, "DEMAND_PLATFORM_HOME": str(tmp_path / "home"), "DEMAND_PLATFORM_SOURCE": str(source)}
    cluster = PlatformSettings.from_env(env)
    local = PlatformSettings.from_env({k: v for k, v in env.items() if k not in CLUSTER})
    cluster_defs, local_defs = build_definitions(cluster), build_definitions(local)
    graph = {str(k) for k in cluster_defs.resolve_asset_graph().get_all_asset_keys()}
    assert graph == {str(k) for k in local_defs.resolve_asset_graph().get_all_asset_keys()}
    assert cluster_defs.resolve_job_def("daily").executor_def.name == "celery"
    assert local_defs.resolve_job_def("daily").executor_def.name == "in_process"
    io_manager = cluster_defs.resources["io_manager"]
    assert io_manager.database.startswith("ducklake:postgres:dbname=lake")  # type: ignore[attr-defined]
    registry = cluster_defs.resources["registry"]
    assert registry.tracking_uri == CLUSTER["DEMAND_PLATFORM_MLFLOW_URI"]  # type: ignore[attr-defined]
    assert registry.artifact_location == CLUSTER["DEMAND_PLATFORM_MLFLOW_ARTIFACTS"]  # type: ignore[attr-defined]


def test_the_cluster_instance_is_on_postgresql_with_psycopg2() -> None:
    assert with_driver("postgresql://u@h:5/d", "psycopg2") == "postgresql+psycopg2://u@h:5/d"
    assert with_driver("postgresql+psycopg://u@h/d", "psycopg2") == "postgresql+psycopg2://u@h/d"
    yaml_text = instance_yaml(4, "postgresql://u@h:5/d")
    assert 'postgres_url: "postgresql+psycopg2://u@h:5/d"' in yaml_text
    assert "max_concurrent_runs: 4" in yaml_text and "default_limit: 4" in yaml_text
    assert "storage:" not in instance_yaml(2)  # local: SQLite under the instance directory
