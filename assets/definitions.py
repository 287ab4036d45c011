"""The one ``Definitions`` of the platform, built from the settings in the environment."""

import dagster as dg

from assets.features import build_feature_assets
from assets.ingestion import build_ingestion_assets
from assets.partitions import build_partitions
from demand_platform.settings import PlatformSettings
from resources import build_resources

INGEST_JOB = "ingest"
FEATURES_JOB = "features"
AUDIT_JOB = "source_audit_job"


def build_definitions(settings: PlatformSettings) -> dg.Definitions:
    """Assemble assets, checks, jobs and resources for ``settings``."""
    settings.home.mkdir(parents=True, exist_ok=True)
    partitions_def = build_partitions(settings)
    assets = [*build_ingestion_assets(partitions_def), *build_feature_assets(partitions_def)]
    jobs = [
        dg.define_asset_job(INGEST_JOB, selection=["raw_sales"], partitions_def=partitions_def),
        dg.define_asset_job(AUDIT_JOB, selection=["source_audit"]),
        dg.define_asset_job(
            FEATURES_JOB, selection=["feature_table", "tier_assignments"], partitions_def=partitions_def
        ),
    ]
    return dg.Definitions(assets=assets, jobs=jobs, resources=build_resources(settings))


@dg.definitions
def defs() -> dg.Definitions:
    """Loaded by ``dagster dev -w workspace.yaml`` and by Dagster's run workers."""
    return build_definitions(PlatformSettings.from_env())
