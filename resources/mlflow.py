"""dagster-mlflow's tracking resource, kept only for the ``end_mlflow_on_run_finished`` hook.

No asset uses it: the model assets log through :class:`resources.registry.ModelRegistryResource`. The
hook, still attached to the daily and retrain jobs (``assets/operations.py``), requires a resource under
the ``mlflow`` key; this module and that key go once the hook does.
"""

import dagster as dg
from dagster_mlflow import mlflow_tracking
from dagster_mlflow.resources import MlFlow

from demand_platform.registry import ModelRegistry


@dg.resource(config_schema=mlflow_tracking.config_schema)
def platform_mlflow_tracking(context: dg.InitResourceContext) -> MlFlow:
    """dagster-mlflow's ``mlflow_tracking`` resource (same config, same object, same hooks).

    It first creates the experiment with its artifact location beside the SQLite store, which the
    stock resource leaves to MLflow's default: ``./mlruns`` of whatever directory the run started in.
    """
    config = context.resource_config
    ModelRegistry(
        config["mlflow_tracking_uri"], experiment_name=config["experiment_name"]
    ).ensure_experiment()
    return MlFlow(context)
