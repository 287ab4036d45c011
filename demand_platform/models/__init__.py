"""Forecasting models of the domain core (statistical baselines and, later, global models)."""
