"""The model registry resource: the MLflow store holding each warehouse's registered versions.

Which version serves a warehouse at an origin is decided by the record of promotions in DuckDB
(``registry.served_version``); this resource loads that version's bundle and keeps the ``production``
alias mirroring the record.
"""

from collections.abc import Sequence
from typing import Any

import dagster as dg
import mlflow
import pandas as pd

from demand_platform import registry


class ModelRegistryResource(dg.ConfigurableResource):
    """The MLflow tracking store holding the registered warehouse models.

    Attributes:
        tracking_uri: MLflow tracking URI (``sqlite:///.../mlflow.db`` under the platform home).
    """

    tracking_uri: str

    def bundle(self, warehouse_id: str, version: str) -> Any:
        """The model bundle of one registered version of a warehouse's model.

        Raises:
            ValueError: The version is not in this store (the record and the store disagree).
        """
        mlflow.set_tracking_uri(self.tracking_uri)
        try:
            return registry.load_bundle(warehouse_id, version)
        except mlflow.exceptions.MlflowException as error:
            raise ValueError(
                f"{registry.model_name(warehouse_id)} v{version}, recorded in "
                f"{registry.TRAINED_MODELS_TABLE}, is not in the MLflow store {self.tracking_uri}: {error}"
            ) from error

    def sync_aliases(self, record: pd.DataFrame, warehouse_ids: Sequence[str]) -> dict[str, str | None]:
        """Mirror the record of promotions on the ``production`` alias of each warehouse (idempotent).

        Returns:
            The version each warehouse's alias points at afterwards (None: no alias).
        """
        mlflow.set_tracking_uri(self.tracking_uri)
        return {wh: registry.sync_production_alias(record, wh) for wh in warehouse_ids}
