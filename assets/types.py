"""Dagster types made from the domain's pandera models (validated when an asset returns data).

dagster-pandera carries each field's ``description`` into the type's table schema (metadata ``schema``);
:func:`column_schema_metadata` gives the same columns as an asset's ``dagster/column_schema``, the
metadata the Dagster UI shows as the asset's column docs.
"""

from typing import Any

import dagster as dg
from dagster_pandera import pandera_schema_to_dagster_type

from demand_platform.reporting import AccuracyReportModel
from demand_platform.schemas import (
    ForecastsModel,
    RawSalesModel,
    ReconciledForecastsModel,
    TierAssignmentsModel,
    TrainedModelsModel,
    feature_table_schema,
)

COLUMN_SCHEMA = "dagster/column_schema"

RawSalesType = pandera_schema_to_dagster_type(RawSalesModel)
FeatureTableType = pandera_schema_to_dagster_type(feature_table_schema())
TierAssignmentsType = pandera_schema_to_dagster_type(TierAssignmentsModel)
TrainedModelsType = pandera_schema_to_dagster_type(TrainedModelsModel)
ForecastsType = pandera_schema_to_dagster_type(ForecastsModel)
ReconciledForecastsType = pandera_schema_to_dagster_type(ReconciledForecastsModel)
AccuracyReportType = pandera_schema_to_dagster_type(AccuracyReportModel)


def column_schema(dagster_type: dg.DagsterType) -> dg.TableSchema:
    """The columns (name, type, constraints, description) of a type made by dagster-pandera.

    Args:
        dagster_type: A type from ``pandera_schema_to_dagster_type``.

    Returns:
        Its table schema.

    Raises:
        ValueError: When the type carries no table schema.
    """
    value = dagster_type.metadata.get("schema")
    if not isinstance(value, dg.TableSchemaMetadataValue):
        raise ValueError(f"{dagster_type.display_name} carries no table schema")
    return value.schema


def column_schema_metadata(dagster_type: dg.DagsterType) -> dict[str, Any]:
    """Asset metadata declaring the type's columns as ``dagster/column_schema`` (the UI's column docs)."""
    return {COLUMN_SCHEMA: column_schema(dagster_type)}
