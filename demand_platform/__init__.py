"""Demand forecasting platform: the domain core (no Dagster imports outside ``cli``)."""

__version__ = "0.1.0"
