"""The model registry resource: the MLflow store holding each warehouse's registered versions.

It only configures :class:`demand_platform.registry.ModelRegistry` (the domain service: register, gate,
promote, serve, load), which works through its own ``MlflowClient``: no asset or resource of the
platform sets MLflow's global tracking URI.
"""

import dagster as dg

from demand_platform import registry


class ModelRegistryResource(dg.ConfigurableResource):
    """The MLflow store holding the registered warehouse models.

    Attributes:
        tracking_uri: MLflow tracking URI (``sqlite:///.../mlflow.db`` under the platform home).
        registry_uri: Model registry URI (None: the tracking URI).
        experiment_name: The experiment the training runs are logged in.
        artifact_location: Where the experiment's artifacts go (``s3://...`` on the cluster; None: beside
            a SQLite store).
    """

    tracking_uri: str
    registry_uri: str | None = None
    experiment_name: str = registry.DEFAULT_EXPERIMENT
    artifact_location: str | None = None

    def get_registry(self) -> registry.ModelRegistry:
        """The registry service bound to this store."""
        return registry.ModelRegistry(
            tracking_uri=self.tracking_uri,
            registry_uri=self.registry_uri,
            experiment_name=self.experiment_name,
            artifact_location=self.artifact_location,
        )
