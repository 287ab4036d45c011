"""trained_models and forecasts through Dagster: temporary DuckDB, temporary SQLite MLflow store."""

import datetime as dt
from pathlib import Path

import dagster as dg
import duckdb
import mlflow
import pandas as pd
import pytest

from assets.features import build_feature_assets
from assets.ingestion import build_ingestion_assets
from assets.models import build_model_assets
from assets.partitions import build_partitions, range_tags
from demand_platform import columns as C
from demand_platform import registry
from demand_platform.alerts import read_alerts
from demand_platform.settings import PlatformSettings
from demand_platform.synthetic import GeneratorConfig, generate_source
from resources import build_resources
from resources.mlflow import platform_mlflow_tracking
from resources.registry import ModelRegistryResource

START = dt.date(2023, 1, 1)
DAYS = 240
ORIGIN = START + dt.timedelta(days=DAYS - 1)


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory):
    """A small synthetic source ingested and featurised for ORIGIN, shared by the tests of this module."""
    root = tmp_path_factory.mktemp("models")
    generate_source(
        root / "source", GeneratorConfig(n_skus=30, n_warehouses=2, start=START, days=DAYS, seed=3)
    )
    settings = PlatformSettings(
        home=root / "home", source=root / "source", start_date=START, end_date=ORIGIN, env="test"
    )
    partitions_def = build_partitions(settings)
    assets = [*build_ingestion_assets(partitions_def), *build_feature_assets(partitions_def)]
    assets += build_model_assets(partitions_def, settings.timezone)
    defs = dg.Definitions(assets=assets, resources=build_resources(settings))
    instance = dg.DagsterInstance.ephemeral()
    for wh in ("WH001", "WH002"):
        run = dg.materialize(
            [defs.get_assets_def("raw_sales")],
            resources=defs.resources,
            instance=instance,
            tags=range_tags(START, ORIGIN, wh),
        )
        assert run.success
    for name in ("feature_table", "tier_assignments"):
        for wh in ("WH001", "WH002"):
            assert _run(defs, instance, name, wh).success
    mlflow.set_tracking_uri(settings.mlflow_uri)
    return settings, defs, instance


def _run(defs: dg.Definitions, instance: dg.DagsterInstance, asset: str, wh: str, **kwargs):
    return dg.materialize(
        [defs.get_assets_def(asset)],
        resources=defs.resources,
        instance=instance,
        partition_key=dg.MultiPartitionKey({"date": ORIGIN.isoformat(), "warehouse": wh}),
        **kwargs,
    )


def _table(settings: PlatformSettings, sql: str) -> pd.DataFrame:
    con = duckdb.connect(str(settings.duckdb_path), read_only=True)
    try:
        return con.execute(sql).df()
    finally:
        con.close()


def test_train_registers_and_promotes_then_forecasts(platform) -> None:
    settings, defs, instance = platform
    result = _run(defs, instance, "trained_models", "WH001")
    assert result.success
    row = _table(settings, "SELECT * FROM trained_models WHERE warehouse_id = 'WH001'").iloc[0]
    assert row["promoted"] and row["reference"] == "seasonal_naive"
    assert row["validation_wmape"] < row["reference_wmape"]
    assert "validation rmse" in row["reason"]  # the gate compares RMSE; the table's WMAPE is for planners
    gate = result.asset_materializations_for_node("trained_models")[0].metadata["gate"].value
    assert row["reason"] in gate
    production = registry.production_version("WH001")
    assert production is not None and production[0] == row["version"]
    # The MLflow run carries the partition tag, metrics, importance and the pip-pinned model.
    runs = mlflow.search_runs(
        experiment_names=["demand_platform"], filter_string="tags.warehouse_id = 'WH001'"
    )
    assert set(runs["tags.dagster_partition"]) == {f"{ORIGIN}|WH001"}
    assert "metrics.all_tiered_wmape" in runs.columns
    assert all(str(settings.home / "mlartifacts") in uri for uri in runs["artifact_uri"])

    assert _run(defs, instance, "forecasts", "WH001").success
    forecasts = _table(settings, "SELECT * FROM forecasts WHERE warehouse_id = 'WH001'")
    n_skus = forecasts[C.SKU].nunique()
    assert len(forecasts) == n_skus * 30 and sorted(forecasts[C.HORIZON].unique()) == list(range(1, 31))
    assert (forecasts[C.FORECAST] >= 0).all() and (forecasts[C.P50] <= forecasts[C.P95]).all()
    assert set(forecasts[C.MODEL_VERSION]) == {row["version"]}
    assert (pd.to_datetime(forecasts[C.TARGET_DATE]) > pd.Timestamp(ORIGIN)).all()

    # The registered pyfunc model forecasts on its own from the history, like the asset did.
    pyfunc = mlflow.pyfunc.load_model(f"models:/{registry.model_name('WH001')}@production")
    history = _table(settings, "SELECT * FROM raw_sales WHERE warehouse_id = 'WH001'")
    alone = pyfunc.predict(history)
    merged = forecasts.merge(alone, on=[C.SKU, C.HORIZON], suffixes=("", "_pyfunc"))
    assert len(merged) == len(forecasts)
    assert (merged[C.FORECAST] - merged[f"{C.FORECAST}_pyfunc"]).abs().max() < 1e-9


def test_rejected_candidate_keeps_production_and_alerts(platform) -> None:
    settings, defs, instance = platform
    assert _run(defs, instance, "trained_models", "WH002").success
    before = registry.production_version("WH002")
    config = {"ops": {"trained_models": {"config": {"promotion_margin": 0.99}}}}
    assert _run(defs, instance, "trained_models", "WH002", run_config=config).success
    row = _table(settings, "SELECT * FROM trained_models WHERE warehouse_id = 'WH002'").iloc[0]
    assert not row["promoted"] and row["reference"] == "production"
    assert registry.production_version("WH002") == before
    con = duckdb.connect(str(settings.duckdb_path), read_only=True)
    alerts = read_alerts(con)
    con.close()
    assert "promotion_rejected" in set(alerts["kind"])


def test_forecasts_need_a_model(platform, tmp_path: Path) -> None:
    settings, defs, instance = platform
    empty = ModelRegistryResource(tracking_uri=f"sqlite:///{tmp_path / 'empty.db'}")
    result = dg.materialize(
        [defs.get_assets_def("forecasts")],
        resources={**defs.resources, "registry": empty},
        instance=instance,
        partition_key=dg.MultiPartitionKey({"date": ORIGIN.isoformat(), "warehouse": "WH001"}),
        raise_on_error=False,
    )
    assert not result.success
    failure = result.get_step_failure_events()[0].step_failure_data.error
    assert failure is not None and "no model for warehouse WH001" in str(failure.cause or failure.message)


def test_refused_first_model_serves_its_baseline(platform, tmp_path: Path) -> None:
    """A first model refused by the gate leaves no production version; forecasts still come, from the
    better CV baseline inside the latest version, and say so in model_version and metadata."""
    settings, defs, instance = platform
    uri = f"sqlite:///{tmp_path / 'fresh.db'}"
    resources = {
        **defs.resources,
        "registry": ModelRegistryResource(tracking_uri=uri),
        "mlflow": platform_mlflow_tracking.configured(
            {"experiment_name": "refused", "mlflow_tracking_uri": uri}
        ),
    }
    key = dg.MultiPartitionKey({"date": ORIGIN.isoformat(), "warehouse": "WH002"})
    config = {"ops": {"trained_models": {"config": {"promotion_margin": 0.99}}}}
    trained = dg.materialize(
        [defs.get_assets_def("trained_models")],
        resources=resources,
        instance=instance,
        partition_key=key,
        run_config=config,
    )
    assert trained.success
    mlflow.set_tracking_uri(uri)
    try:
        assert registry.production_version("WH002") is None
        version = registry.latest_version("WH002")
    finally:
        mlflow.set_tracking_uri(settings.mlflow_uri)
    assert version is not None
    result = dg.materialize(
        [defs.get_assets_def("forecasts")], resources=resources, instance=instance, partition_key=key
    )
    assert result.success
    metadata = result.asset_materializations_for_node("forecasts")[0].metadata
    assert metadata["baseline_fallback"].value == "WH002"
    forecasts = _table(settings, "SELECT * FROM forecasts WHERE warehouse_id = 'WH002'")
    assert set(forecasts[C.MODEL_VERSION]) == {f"{version}-baseline"}
    assert set(forecasts[C.MODEL]) <= {"seasonal_naive", "moving_average_28", "cold_start"}
    assert (forecasts[C.FORECAST] >= 0).all() and (forecasts[C.P50] <= forecasts[C.P95]).all()
