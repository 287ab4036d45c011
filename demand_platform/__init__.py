"""Demand forecasting platform: the domain core (no imports of Dagster, `assets` or `resources`)."""

__version__ = "0.1.0"
