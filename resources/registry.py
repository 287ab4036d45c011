"""The model registry resource: where ``forecasts`` finds each warehouse's production model."""

from typing import Any

import dagster as dg
import mlflow

from demand_platform import registry


class ModelRegistryResource(dg.ConfigurableResource):
    """The MLflow tracking store holding the registered warehouse models.

    Attributes:
        tracking_uri: MLflow tracking URI (``sqlite:///.../mlflow.db`` under the platform home).
    """

    tracking_uri: str

    def production(self, warehouse_id: str) -> tuple[str, Any] | None:
        """The production version of a warehouse's model and its bundle, or None when there is none."""
        mlflow.set_tracking_uri(self.tracking_uri)
        current = registry.production_version(warehouse_id)
        if current is None:
            return None
        return current[0], registry.load_bundle(warehouse_id, current[0])

    def latest(self, warehouse_id: str) -> tuple[str, Any] | None:
        """The latest registered version of a warehouse's model (promoted or not) and its bundle, or None."""
        mlflow.set_tracking_uri(self.tracking_uri)
        version = registry.latest_version(warehouse_id)
        if version is None:
            return None
        return version, registry.load_bundle(warehouse_id, version)
