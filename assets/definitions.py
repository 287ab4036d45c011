"""The one ``Definitions`` of the platform, built from the settings in the environment.

A code location loads the home :func:`demand_platform.settings.resolve_settings` picks (the configured one,
else ``./demo-home``); without any source (a fresh clone, a first ``dagster dev``) it loads the platform's
asset graph with no partitions, each asset's description and the log saying how to provide a source.
"""

import logging
from pathlib import Path

import dagster as dg

from assets.features import build_feature_assets
from assets.ingestion import build_ingestion_assets
from assets.models import build_model_assets
from assets.operations import build_operations
from assets.partitions import build_partitions, empty_partitions
from assets.reconciliation import build_reconciliation_asset
from assets.reporting import build_reporting_assets
from assets.side_tables import build_side_table_specs
from demand_platform import source
from demand_platform.settings import PlatformSettings, resolve_settings
from resources import build_executor, build_resources

INGEST_JOB = "ingest"
FEATURES_JOB = "features"
TRAIN_JOB = "train"
FORECAST_JOB = "forecast"
REPORT_JOB = "report"
AUDIT_JOB = "source_audit_job"


#: Where the code location says which home it loaded (Dagster prints its loggers in the ``dagster dev`` log).
LOGGER = logging.getLogger("dagster.demand_platform")


def platform_assets(
    partitions_def: dg.MultiPartitionsDefinition, settings: PlatformSettings
) -> list[dg.AssetsDefinition]:
    """The platform's assets (with their checks) on ``partitions_def``."""
    return [
        *build_ingestion_assets(partitions_def),
        *build_feature_assets(partitions_def),
        *build_model_assets(partitions_def, settings.timezone),
        build_reconciliation_asset(partitions_def, settings.timezone),
        *build_reporting_assets(partitions_def, settings.reports_dir, settings.charts_url),
    ]


def build_definitions(settings: PlatformSettings) -> dg.Definitions:
    """Assemble assets, checks, jobs, schedules, sensors and resources for ``settings``."""
    settings.home.mkdir(parents=True, exist_ok=True)
    partitions_def = build_partitions(settings)
    assets = platform_assets(partitions_def, settings)
    operations = build_operations(
        partitions_def,
        settings.timezone,
        retrain_every_days=settings.retrain_every_days,
        warehouses_per_run=settings.warehouses_per_run,
        freshness_interval_s=settings.freshness_interval_s,
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


def build_empty_definitions(settings: PlatformSettings, note: str) -> dg.Definitions:
    """The platform without a source: its asset graph on no partitions, every description starting with ``note``.

    The graph shows what the platform is; with no warehouse there is no partition to launch, and there are
    no jobs, schedules or sensors (they would tick on a home with no database).
    """
    partitions_def = empty_partitions(settings)
    assets: list[dg.AssetsDefinition | dg.AssetSpec] = [
        *platform_assets(partitions_def, settings),
        *build_side_table_specs(partitions_def),
    ]
    described = dg.map_asset_specs(
        lambda spec: spec.replace_attributes(description=f"**{note}**\n\n{spec.description or ''}"),
        assets,
    )
    return dg.Definitions(
        assets=described,
        resources=build_resources(settings),
        metadata={
            "platform_home": str(settings.home),
            "source": source.source_label(settings.source),
            "note": note,
        },
    )


def load_definitions(environ: dict[str, str] | None = None, cwd: Path | None = None) -> dg.Definitions:
    """The definitions of the home :func:`resolve_settings` picks; an empty platform when it has no source.

    Args:
        environ: Environment variables (default ``os.environ``).
        cwd: Directory ``demo-home`` is relative to (default the working directory).
    """
    resolved = resolve_settings(environ, cwd)
    if not resolved.has_source:
        LOGGER.warning("demand platform: %s", resolved.note)
        return build_empty_definitions(resolved.settings, resolved.note)
    LOGGER.info("demand platform: %s", resolved.note)
    return build_definitions(resolved.settings)


@dg.definitions
def defs() -> dg.Definitions:
    """Loaded by ``dagster dev`` (``-w workspace.yaml``, or bare, through ``[tool.dagster]``) and the run workers."""
    return load_definitions()
