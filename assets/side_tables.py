"""The side tables as assets: ``quarantine``, ``replenishment_policy``, ``exceptions`` and ``alerts`` in the graph.

These tables are written by other assets' bodies (and, for ``alerts``, by sensors) rather than by an IO
manager, so they are declared as :class:`dagster.AssetSpec` s with their writers upstream: the graph shows
where each comes from, the UI lists them with their description and columns, and their writers report a
materialization (row counts) each time they write. They are not materializable on their own: each is
rewritten by its writer's run.
"""

import dagster as dg
from dagster_pandera import pandera_schema_to_dagster_type

from demand_platform import columns as C
from demand_platform.alerts import ALERTS
from demand_platform.exceptions import EXCEPTION_DESCRIPTIONS, EXCEPTION_DTYPES
from demand_platform.schemas import QuarantineModel

GROUP = "side_tables"

QUARANTINE_SCHEMA = pandera_schema_to_dagster_type(QuarantineModel).metadata["schema"].value
"""The quarantine table's columns, from its pandera model (as the other assets' Dagster types carry them)."""

_DUCKDB_TYPES = {"datetime64[ns]": "TIMESTAMP", "object": "VARCHAR", "int64": "BIGINT", "float64": "DOUBLE"}
EXCEPTIONS_SCHEMA = dg.TableSchema(
    columns=[
        dg.TableColumn(name, _DUCKDB_TYPES[dtype], description=EXCEPTION_DESCRIPTIONS[name])
        for name, dtype in EXCEPTION_DTYPES.items()
    ]
)
"""The exceptions table's columns, as the report writes them."""


def build_side_table_specs(partitions_def: dg.MultiPartitionsDefinition) -> list[dg.AssetSpec]:
    """The specs of the side tables, partitioned like their writers where the writer is partitioned.

    Args:
        partitions_def: The ``date x warehouse`` partitions (those of ``accuracy_report``).
    """
    return [
        dg.AssetSpec(
            C.QUARANTINE,
            deps=[C.RAW_SALES, "source_audit"],
            description=(
                "Rows kept aside with their reason and original row: transaction lines rejected by "
                "raw_sales (per warehouse and day) and small-table rows rejected by source_audit. Valid "
                "rows flow on; nothing is lost."
            ),
            group_name=GROUP,
            kinds={"duckdb"},
            metadata={"dagster/column_schema": QUARANTINE_SCHEMA},
        ),
        dg.AssetSpec(
            C.REPLENISHMENT_POLICY,
            deps=[C.ACCURACY_REPORT],
            partitions_def=partitions_def,
            description=(
                "Safety stock and reorder point per SKU from the latest origin's forecasts, written by "
                "accuracy_report for its day and warehouse."
            ),
            group_name=GROUP,
            kinds={"duckdb"},
        ),
        dg.AssetSpec(
            C.EXCEPTIONS,
            deps=[C.ACCURACY_REPORT],
            partitions_def=partitions_def,
            description=(
                "What needs a planner's attention, per SKU, ranked by money at risk (units x price): "
                "projected stock-outs within the lead time, strong recent bias, 30-day forecasts that "
                "jumped since yesterday's origin, planner overrides ending within 7 days. Written by "
                "accuracy_report for its day and warehouse."
            ),
            group_name=GROUP,
            kinds={"duckdb"},
            metadata={"dagster/column_schema": EXCEPTIONS_SCHEMA},
        ),
        dg.AssetSpec(
            ALERTS,
            deps=[C.TRAINED_MODELS, C.FORECASTS, C.ACCURACY_REPORT],
            description=(
                "The alert outbox: promotion refusals (trained_models), freshness and failed runs, drift "
                "(accuracy_report); delivered to the webhook by the sensors and redelivered until acknowledged."
            ),
            group_name=GROUP,
            kinds={"duckdb"},
        ),
    ]
