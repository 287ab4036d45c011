"""The small source tables as one frozen object, handed to features, training and serving.

Pandas only (no DuckDB, pyarrow or pandera): a registered model pickles it and forecasts with it where
only the model's pip requirements are installed. :func:`demand_platform.source.load_source_tables`
reads and validates it from a source directory.
"""

from dataclasses import dataclass, field

import pandas as pd

from demand_platform import columns as C

SOURCE_TABLE_NAMES = (C.PRODUCTS, C.WAREHOUSES, C.CALENDAR, C.MARKETING_CAMPAIGNS, C.WEATHER, C.OVERRIDES)
"""The small tables :class:`SourceTables` holds (``transactions`` is read by day, never whole)."""


@dataclass(frozen=True)
class SourceTables:
    """The small source tables, validated and loaded once, handed to features, training and serving.

    One object instead of the five positional frames (products, warehouses, calendar, campaigns,
    weather) that every training, serving and feature function used to take; ``transactions`` is not
    here (it is ingested by day into ``raw_sales``).

    Attributes:
        products: Valid ``products`` rows.
        warehouses: Valid ``warehouses`` rows.
        calendar: Valid ``calendar`` rows, or None (the national calendar is derived where needed).
        campaigns: Valid ``marketing_campaigns`` rows, or None.
        weather: Valid ``weather`` rows, or None.
        overrides: Valid planner ``overrides`` rows, or None.
        rejected_products: ``sku`` and ``reason`` of the rejected product rows (see
            :meth:`demand_platform.source.TableSplit.rejected_keys`), so their transaction lines are quarantined with it.
    """

    products: pd.DataFrame
    warehouses: pd.DataFrame
    calendar: pd.DataFrame | None = None
    campaigns: pd.DataFrame | None = None
    weather: pd.DataFrame | None = None
    overrides: pd.DataFrame | None = None
    rejected_products: pd.DataFrame = field(
        default_factory=lambda: pd.DataFrame(
            {C.SKU: pd.Series(dtype=object), C.REASON: pd.Series(dtype=object)}
        )
    )

    def warehouse_ids(self) -> list[str]:
        """The valid warehouse ids, sorted (the ``warehouse`` partition keys)."""
        return sorted(self.warehouses[C.WAREHOUSE_ID].astype(str).unique().tolist())
