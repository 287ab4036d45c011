"""Dagster types made from the domain's pandera models (validated when an asset returns data)."""

from dagster_pandera import pandera_schema_to_dagster_type

from demand_platform.schemas import RawSalesModel

RawSalesType = pandera_schema_to_dagster_type(RawSalesModel)
