"""The Definitions load; the asset graph, partitions and jobs are as designed."""

import dataclasses
import datetime as dt
from pathlib import Path

import dagster as dg
import pandas as pd
import pydantic
import pytest

from assets.definitions import INGEST_JOB, build_definitions
from assets.models import TrainingConfig
from assets.partitions import DATE_DIM, WAREHOUSE_DIM
from demand_platform import columns as C
from demand_platform.forecasting import TrainConfig
from demand_platform.settings import PlatformSettings
from demand_platform.source import SourceError


def test_definitions_load_and_validate(settings: PlatformSettings) -> None:
    defs = build_definitions(settings)
    dg.Definitions.validate_loadable(defs)
    keys = {k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys()}
    assert {"raw_sales", "source_audit"} <= keys


def test_every_asset_has_a_description(settings: PlatformSettings) -> None:
    defs = build_definitions(settings)
    for assets_def in defs.resolve_asset_graph().assets_defs:
        for key in assets_def.keys:
            assert assets_def.descriptions_by_key.get(key), f"{key} has no docstring"


def test_partitions_are_date_by_warehouse_from_the_source(settings: PlatformSettings) -> None:
    defs = build_definitions(settings)
    partitions_def = defs.get_assets_def("raw_sales").partitions_def
    assert isinstance(partitions_def, dg.MultiPartitionsDefinition)
    assert {d.name for d in partitions_def.partitions_defs} == {DATE_DIM, WAREHOUSE_DIM}
    warehouses = partitions_def.get_partitions_def_for_dimension(WAREHOUSE_DIM).get_partition_keys()
    assert list(warehouses) == ["W1", "W2"]
    dates = partitions_def.get_partitions_def_for_dimension(DATE_DIM).get_partition_keys()
    assert dates[0] == "2024-01-01" and dates[-1] == "2024-01-10"
    assert defs.resolve_job_def(INGEST_JOB).partitions_def == partitions_def
    backfill = defs.get_assets_def("raw_sales").backfill_policy
    assert backfill is not None and backfill.max_partitions_per_run is None  # single run


def test_a_new_warehouse_in_the_source_becomes_a_partition(settings: PlatformSettings) -> None:
    path = settings.source / "warehouses.parquet"
    warehouses = pd.read_parquet(path)
    new = warehouses.iloc[[0]].assign(**{C.WAREHOUSE_ID: "W3"})
    pd.concat([warehouses, new]).to_parquet(path, index=False)
    partitions_def = build_definitions(settings).get_assets_def("raw_sales").partitions_def
    assert isinstance(partitions_def, dg.MultiPartitionsDefinition)
    assert "W3" in partitions_def.get_partitions_def_for_dimension(WAREHOUSE_DIM).get_partition_keys()


def test_start_date_defaults_to_first_transaction(settings: PlatformSettings) -> None:
    undated = PlatformSettings(home=settings.home, source=settings.source, end_date=dt.date(2024, 1, 10))
    dates = build_definitions(undated).get_assets_def("raw_sales").partitions_def
    assert isinstance(dates, dg.MultiPartitionsDefinition)
    assert dates.get_partitions_def_for_dimension(DATE_DIM).get_partition_keys()[0] == "2024-01-01"


def test_missing_source_fails_with_a_clear_message(tmp_path: Path) -> None:
    settings = PlatformSettings(home=tmp_path / "home", source=tmp_path / "nowhere")
    with pytest.raises(SourceError, match="transactions"):
        build_definitions(settings)


def test_features_depend_on_a_window_of_raw_sales(settings: PlatformSettings) -> None:
    defs = build_definitions(settings)
    graph = defs.resolve_asset_graph()
    for name in ("feature_table", "tier_assignments"):
        key = dg.AssetKey(name)
        assert graph.get(key).parent_keys == {dg.AssetKey("raw_sales")}
        # Origin 2024-01-10 of W1 depends on every raw_sales day up to it, of W1 only.
        upstream = graph.get_parent_partition_keys_for_child(
            "2024-01-10|W1", dg.AssetKey("raw_sales"), key
        ).partitions_subset.get_partition_keys()
        assert sorted(upstream) == [f"2024-01-{d:02d}|W1" for d in range(1, 11)]


PIPELINE = [
    "raw_sales",
    "feature_table",
    "tier_assignments",
    "trained_models",
    "forecasts",
    "accuracy_report",
]


def test_the_six_assets_share_the_date_by_warehouse_partitions(settings: PlatformSettings) -> None:
    defs = build_definitions(settings)
    partitions = {defs.get_assets_def(name).partitions_def for name in PIPELINE}
    assert len(partitions) == 1 and isinstance(partitions.pop(), dg.MultiPartitionsDefinition)
    graph = defs.resolve_asset_graph()
    # forecasts reads the partition's features and tiers and the model that serves its origin.
    assert graph.get(dg.AssetKey("forecasts")).parent_keys == {
        dg.AssetKey(name) for name in ("raw_sales", "feature_table", "tier_assignments", "trained_models")
    }
    assert graph.get(dg.AssetKey("accuracy_report")).parent_keys >= {dg.AssetKey("forecasts")}


def test_the_reconciliation_is_daily_and_waits_for_every_warehouse(settings: PlatformSettings) -> None:
    defs = build_definitions(settings)
    platform = defs.get_assets_def("forecasts").partitions_def
    assert isinstance(platform, dg.MultiPartitionsDefinition)
    reconciled = defs.get_assets_def("reconciled_forecasts")
    assert reconciled.partitions_def == platform.get_partitions_def_for_dimension("date")
    assert reconciled.specs_by_key[dg.AssetKey("reconciled_forecasts")].freshness_policy is not None
    graph = defs.resolve_asset_graph()
    assert graph.get(dg.AssetKey("reconciled_forecasts")).parent_keys == {dg.AssetKey("forecasts")}
    upstream = graph.get_parent_partition_keys_for_child(
        "2024-01-10", dg.AssetKey("forecasts"), dg.AssetKey("reconciled_forecasts")
    ).partitions_subset.get_partition_keys()
    warehouses = platform.get_partitions_def_for_dimension("warehouse").get_partition_keys()
    assert sorted(upstream) == sorted(f"2024-01-10|{wh}" for wh in warehouses) and len(warehouses) > 1
    assert defs.resolve_job_def("reconcile").partitions_def == reconciled.partitions_def


def test_every_job_runs_its_steps_in_the_run_worker(settings: PlatformSettings) -> None:
    """Local and test runs execute their steps in-process (no process per step)."""
    defs = build_definitions(settings)
    names = [job.name for job in defs.resolve_all_job_defs()]
    assert {"daily", "daily_no_train", "retrain", INGEST_JOB} <= set(names)
    assert {defs.resolve_job_def(name).executor_def.name for name in names} == {"in_process"}


def test_operations_are_on_by_default(settings: PlatformSettings) -> None:
    defs = build_definitions(settings)
    repo = defs.get_repository_def()
    sensors = {s.name: s for s in repo.sensor_defs}
    schedules = {s.name: s for s in repo.schedule_defs}
    assert {"drift_sensor", "alert_sensor", "run_failure_alert_sensor"} <= set(sensors)
    assert {"daily_schedule", "freshness_schedule"} <= set(schedules)
    definitions: list[dg.SensorDefinition | dg.ScheduleDefinition] = [*sensors.values(), *schedules.values()]
    for definition in definitions:
        assert definition.default_status.value == "RUNNING", definition.name
    checks = {k.name for k in defs.resolve_asset_graph().asset_check_keys}
    assert {"forecasts_freshness", "rejected_share_at_most_5pct", "history_complete"} <= checks
    policy = defs.get_assets_def("forecasts").specs_by_key[dg.AssetKey("forecasts")].freshness_policy
    assert policy is not None


def test_daily_schedule_puts_every_forecast_run_before_the_reports(settings: PlatformSettings) -> None:
    """The loaded schedule: one forecast run per warehouse for yesterday, then report runs below them in
    the run queue's priority order, together the whole graph."""
    from assets.operations import DAILY_JOB, DAILY_SCHEDULE, PRIORITY_TAG, REPORT_RUN_PRIORITY

    defs = build_definitions(settings)
    schedule = defs.resolve_schedule_def(DAILY_SCHEDULE)
    assert settings.start_date is not None
    today = settings.start_date + dt.timedelta(days=3)
    when = dt.datetime.combine(today, dt.time(6), tzinfo=dt.UTC)
    with dg.instance_for_test() as instance:
        context = dg.build_schedule_context(
            instance=instance, scheduled_execution_time=when, repository_def=defs.get_repository_def()
        )
        requests = list(schedule.evaluate_tick(context).run_requests or [])
    report = dg.AssetKey("accuracy_report")
    forecast_runs = [r for r in requests if report not in (r.asset_selection or [])]
    report_runs = [r for r in requests if r.asset_selection == [report]]
    assert requests == forecast_runs + report_runs
    yesterday = (today - dt.timedelta(days=1)).isoformat()
    warehouses = sorted({str(r.partition_key).split("|")[1] for r in requests})
    assert len(warehouses) >= 2
    for runs in (forecast_runs, report_runs):
        assert sorted(str(r.partition_key) for r in runs) == [f"{yesterday}|{w}" for w in warehouses]
    assert all(dg.AssetKey("forecasts") in (r.asset_selection or []) for r in forecast_runs)
    assert all(int(r.tags.get(PRIORITY_TAG, "0")) > REPORT_RUN_PRIORITY for r in forecast_runs)
    assert all(int(r.tags[PRIORITY_TAG]) == REPORT_RUN_PRIORITY for r in report_runs)
    job_assets = set(defs.resolve_job_def(DAILY_JOB).asset_layer.executable_asset_keys)
    assert set(forecast_runs[0].asset_selection or []) | {report} == job_assets
    # The scheduled runs run the checks of their assets but not the freshness check, which its own
    # schedule judges after the deadline (run with the forecasts it failed on every past origin).
    checks = {k.to_user_string() for r in forecast_runs for k in (r.asset_check_keys or [])}
    assert {"raw_sales:rejected_share_at_most_5pct", "feature_table:history_complete"} <= checks
    assert "forecasts:forecasts_freshness" not in checks
    assert all(r.asset_check_keys is not None for r in requests)


def test_daily_schedule_boxes_warehouses_into_fewer_runs(settings: PlatformSettings) -> None:
    """With DEMAND_PLATFORM_WAREHOUSES_PER_RUN = 2 one forecast run and one report run cover yesterday x
    both warehouses (a partition range in the tags); a run made from that request materializes both."""
    import dataclasses

    from assets.operations import DAILY_JOB, DAILY_SCHEDULE, PRIORITY_TAG
    from assets.partitions import RANGE_END_TAG, RANGE_START_TAG

    boxed = dataclasses.replace(settings, warehouses_per_run=2)
    defs = build_definitions(boxed)
    assert boxed.start_date is not None
    today = boxed.start_date + dt.timedelta(days=3)
    yesterday = (today - dt.timedelta(days=1)).isoformat()
    with dg.instance_for_test() as instance:
        context = dg.build_schedule_context(
            instance=instance,
            scheduled_execution_time=dt.datetime.combine(today, dt.time(6), tzinfo=dt.UTC),
            repository_def=defs.get_repository_def(),
        )
        forecast_run, report_run = list(
            defs.resolve_schedule_def(DAILY_SCHEDULE).evaluate_tick(context).run_requests or []
        )
        for request in (forecast_run, report_run):
            assert request.partition_key is None
            assert (request.tags[RANGE_START_TAG], request.tags[RANGE_END_TAG]) == (
                f"{yesterday}|W1",
                f"{yesterday}|W2",
            )
        assert PRIORITY_TAG in report_run.tags and PRIORITY_TAG not in forecast_run.tags
        assert len({forecast_run.run_key, report_run.run_key}) == 2
        result = defs.resolve_job_def(DAILY_JOB).execute_in_process(
            instance=instance, tags=forecast_run.tags, asset_selection=[dg.AssetKey("raw_sales")]
        )
        assert result.success
        assert instance.get_materialized_partitions(dg.AssetKey("raw_sales")) == {
            f"{yesterday}|W1",
            f"{yesterday}|W2",
        }


def _column_schemas(defs: dg.Definitions) -> dict[str, list[dg.TableSchema]]:
    """The column schemas of each asset that has one: its output type's and its ``dagster/column_schema``."""
    found: dict[str, list[dg.TableSchema]] = {}
    for assets_def in defs.resolve_asset_graph().assets_defs:
        for key in assets_def.keys:
            type_schema = None
            if assets_def.is_executable:  # the side tables are specs without an op
                output = assets_def.node_def.output_def_named(assets_def.get_output_name_for_asset_key(key))
                type_schema = output.dagster_type.metadata.get("schema")
            declared = assets_def.specs_by_key[key].metadata.get("dagster/column_schema")
            schemas: list[dg.TableSchema] = []
            for value in (type_schema, declared):
                schema = value.schema if isinstance(value, dg.TableSchemaMetadataValue) else value
                if schema is not None:
                    assert isinstance(schema, dg.TableSchema), (key, schema)
                    schemas.append(schema)
            if schemas:
                found[key.to_user_string()] = schemas
    return found


def test_every_column_of_every_asset_schema_is_described(settings: PlatformSettings) -> None:
    schemas = _column_schemas(build_definitions(settings))
    pipeline = {
        C.RAW_SALES,
        C.FEATURE_TABLE,
        C.TIER_ASSIGNMENTS,
        C.TRAINED_MODELS,
        C.FORECASTS,
        C.ACCURACY_REPORT,
        C.QUARANTINE,
    }
    assert pipeline <= schemas.keys()
    undescribed = {
        asset: [c.name for schema in found for c in schema.columns if not (c.description or "").strip()]
        for asset, found in schemas.items()
    }
    assert {asset: columns for asset, columns in undescribed.items() if columns} == {}


def test_side_tables_are_in_the_graph_below_their_writers(settings: PlatformSettings) -> None:
    graph = build_definitions(settings).resolve_asset_graph()
    parents = {
        table: {k.to_user_string() for k in graph.get(dg.AssetKey(table)).parent_keys}
        for table in (C.QUARANTINE, C.REPLENISHMENT_POLICY, "alerts")
    }
    assert parents[C.QUARANTINE] == {C.RAW_SALES, "source_audit"}
    assert parents[C.REPLENISHMENT_POLICY] == {C.ACCURACY_REPORT}
    assert parents["alerts"] == {C.TRAINED_MODELS, C.FORECASTS, C.ACCURACY_REPORT}
    for table in parents:
        node = graph.get(dg.AssetKey(table))
        assert not node.is_materializable  # rewritten by their writers' runs, not on their own
        assert node.description


def test_training_run_config_reaches_the_domain_settings(settings: PlatformSettings) -> None:
    """The launchpad's fields of ``trained_models`` are the domain's TrainConfig values, defaults included."""
    fields = build_definitions(settings).get_assets_def("trained_models").op.config_schema.config_type.fields
    assert {"n_estimators", "num_threads", "pool_series", "pool_max_rows"} <= set(fields)
    assert TrainingConfig().train_config() == TrainConfig()
    chosen = TrainingConfig(n_estimators=7, num_threads=2, pool_series=0, pool_max_rows=1000).train_config()
    assert chosen == dataclasses.replace(
        TrainConfig(), n_estimators=7, num_threads=2, pool_series=0, pool_max_rows=1000
    )
    for bad in ({"pool_series": -1}, {"pool_max_rows": 0}):
        with pytest.raises(pydantic.ValidationError):
            TrainingConfig(**bad)
