"""Dagster types made from the domain's pandera models (validated when an asset returns data)."""

from dagster_pandera import pandera_schema_to_dagster_type

from demand_platform.reporting import AccuracyReportModel
from demand_platform.schemas import (
    ForecastsModel,
    RawSalesModel,
    TierAssignmentsModel,
    TrainedModelsModel,
    feature_table_schema,
)

RawSalesType = pandera_schema_to_dagster_type(RawSalesModel)
FeatureTableType = pandera_schema_to_dagster_type(feature_table_schema())
TierAssignmentsType = pandera_schema_to_dagster_type(TierAssignmentsModel)
TrainedModelsType = pandera_schema_to_dagster_type(TrainedModelsModel)
ForecastsType = pandera_schema_to_dagster_type(ForecastsModel)
AccuracyReportType = pandera_schema_to_dagster_type(AccuracyReportModel)
