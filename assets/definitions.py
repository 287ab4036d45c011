"""The one ``Definitions`` of the platform, built from the settings in the environment."""

import dagster as dg

from assets.features import build_feature_assets
from assets.ingestion import build_ingestion_assets
from assets.models import build_model_assets
from assets.operations import build_operations
from assets.partitions import build_partitions
from assets.reporting import build_reporting_assets
from assets.side_tables import build_side_table_specs
from demand_platform.settings import PlatformSettings
from resources import build_executor, build_resources

INGEST_JOB = "ingest"
FEATURES_JOB = "features"
TRAIN_JOB = "train"
FORECAST_JOB = "forecast"
REPORT_JOB = "report"
AUDIT_JOB = "source_audit_job"


def build_definitions(settings: PlatformSettings) -> dg.Definitions:
    """Assemble assets, checks, jobs, schedules, sensors and resources for ``settings``."""
    settings.home.mkdir(parents=True, exist_ok=True)
    partitions_def = build_partitions(settings)
    assets = [
        *build_ingestion_assets(partitions_def),
        *build_feature_assets(partitions_def),
        *build_model_assets(partitions_def, settings.timezone),
        *build_reporting_assets(partitions_def, settings.reports_dir),
    ]
    operations = build_operations(
        partitions_def,
        settings.timezone,
        retrain_every_days=settings.retrain_every_days,
        warehouses_per_run=settings.warehouses_per_run,
        pipeline_checks=[key for asset in assets for key in asset.check_keys],
    )
    jobs = [
        dg.define_asset_job(INGEST_JOB, selection=["raw_sales"], partitions_def=partitions_def),
        dg.define_asset_job(AUDIT_JOB, selection=["source_audit"]),
        dg.define_asset_job(
            FEATURES_JOB, selection=["feature_table", "tier_assignments"], partitions_def=partitions_def
        ),
        dg.define_asset_job(TRAIN_JOB, selection=["trained_models"], partitions_def=partitions_def),
        # The freshness check judges "now" against the 08:00 deadline: its own schedule runs it, not a
        # catch-up's forecast runs (which would fail it for every historical origin).
        dg.define_asset_job(
            FORECAST_JOB,
            selection=dg.AssetSelection.assets("forecasts")
            - dg.AssetSelection.checks(*operations.asset_checks),
            partitions_def=partitions_def,
        ),
        dg.define_asset_job(REPORT_JOB, selection=["accuracy_report"], partitions_def=partitions_def),
        *operations.jobs,
    ]
    return dg.Definitions(
        assets=[*assets, *build_side_table_specs(partitions_def)],
        asset_checks=operations.asset_checks,
        jobs=jobs,
        schedules=operations.schedules,
        sensors=operations.sensors,
        resources=build_resources(settings),
        executor=build_executor(settings),
    )


@dg.definitions
def defs() -> dg.Definitions:
    """Loaded by ``dagster dev -w workspace.yaml`` and by Dagster's run workers."""
    return build_definitions(PlatformSettings.from_env())
