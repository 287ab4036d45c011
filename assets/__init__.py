"""The Dagster layer: partitions, assets (one module per family), checks, sensors, schedules, Definitions."""
