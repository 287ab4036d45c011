"""dagster-mlflow's tracking resource, with the experiment's artifacts kept under the platform home."""

import dagster as dg
from dagster_mlflow import mlflow_tracking
from dagster_mlflow.resources import MlFlow

from demand_platform.registry import ensure_experiment


@dg.resource(config_schema=mlflow_tracking.config_schema)
def platform_mlflow_tracking(context: dg.InitResourceContext) -> MlFlow:
    """dagster-mlflow's ``mlflow_tracking`` resource (same config, same object, same hooks).

    It first creates the experiment with its artifact location beside the SQLite store, which the
    stock resource leaves to MLflow's default: ``./mlruns`` of whatever directory the run started in.
    """
    config = context.resource_config
    ensure_experiment(config["mlflow_tracking_uri"], config["experiment_name"])
    return MlFlow(context)
