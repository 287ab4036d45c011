"""The MLflow model registry: logging trained warehouse models and the promotion gate.

Plain MLflow (no Dagster): the Dagster layer opens the run through dagster-mlflow and calls these.

* Each warehouse has a registered model ``demand_<warehouse_id>``. A training run logs params,
  validation metrics, the feature importance, the LightGBM band models (``mlflow.lightgbm`` with
  explicit pip requirements: inferring them costs ~15 s a model) and the whole pickled
  ``WarehouseModel`` bundle, then registers a version.
* The gate: the version gets the ``production`` alias only if its validation error beats the current
  production version's (or, when there is none, seasonal naive's) by ``margin``; otherwise the
  previous production version stays and the decision says why (the Dagster layer alerts on it). A
  version's score carries its metric (tag ``validation_score_metric``; untagged versions scored WMAPE),
  and a production score of another metric is never compared: seasonal naive is the reference then.
* A warehouse whose first model was refused has no production version; ``forecasts`` then serves the
  baseline inside the latest version (``WarehouseModel.baseline``), the reference the model lost to.
"""

import pickle
import tempfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import mlflow
import mlflow.pyfunc
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.pyfunc import PythonModel
from mlflow.tracking import MlflowClient

PRODUCTION_ALIAS = "production"
BUNDLE_ARTIFACT = "bundle"
BUNDLE_FILE = "warehouse_model.pkl"
TABLES_FILE = "static_tables.pkl"
SCORE_TAG = "validation_score"
SCORE_METRIC_TAG = "validation_score_metric"
#: The metric of versions registered before the tag existed (the gate compared WMAPE then).
LEGACY_SCORE_METRIC = "wmape"
TRAIN_DATE_TAG = "train_date"
WAREHOUSE_TAG = "warehouse_id"
PIP_PACKAGES = ("lightgbm", "numpy", "pandas", "scikit-learn", "demand-platform")


def artifact_root(tracking_uri: str) -> Path:
    """Where a SQLite tracking store's artifacts live: ``mlartifacts`` beside the database file."""
    if not tracking_uri.startswith("sqlite:///"):
        raise ValueError(f"expected a sqlite:/// tracking URI, got {tracking_uri!r}")
    return Path(tracking_uri.removeprefix("sqlite:///")).parent / "mlartifacts"


def ensure_experiment(tracking_uri: str, name: str) -> str:
    """Create the experiment with its artifacts under the store's directory (idempotent).

    MLflow puts a new experiment's artifacts in ``./mlruns`` of the current directory when the
    tracking store is SQLite; creating it here first keeps models under the platform home.
    """
    mlflow.set_tracking_uri(tracking_uri)
    existing = mlflow.get_experiment_by_name(name)
    if existing is not None:
        return str(existing.experiment_id)
    root = artifact_root(tracking_uri)
    root.mkdir(parents=True, exist_ok=True)
    try:
        return str(mlflow.create_experiment(name, artifact_location=root.resolve().as_uri()))
    except MlflowException:  # created meanwhile by another process
        found = mlflow.get_experiment_by_name(name)
        assert found is not None
        return str(found.experiment_id)


def model_name(warehouse_id: str) -> str:
    """The registered model name of a warehouse."""
    return f"demand_{warehouse_id}"


def pip_requirements() -> list[str]:
    """Explicit pinned requirements of a logged model (the installed versions)."""
    out = []
    for package in PIP_PACKAGES:
        try:
            out.append(f"{package}=={metadata.version(package)}")
        except metadata.PackageNotFoundError:
            continue
    return out


@dataclass(frozen=True)
class PromotionDecision:
    """Outcome of the promotion gate for one candidate version.

    Attributes:
        model_name: Registered model name.
        candidate_version: The version just registered.
        promoted: Whether it now holds the production alias.
        production_version: The version holding the alias after the decision (None: none yet).
        candidate_score: Validation error of the candidate (lower is better).
        reference_score: What it had to beat: production's score, else the baseline's.
        reference: ``"production"`` or ``"seasonal_naive"``.
        reason: A sentence for the logs, metadata and alerts.
    """

    model_name: str
    candidate_version: str
    promoted: bool
    production_version: str | None
    candidate_score: float
    reference_score: float
    reference: str
    reason: str


class TieredForecaster(PythonModel):
    """The registered model: a warehouse's trained bundle plus the static tables it was trained with.

    ``predict(model_input)`` takes the warehouse's ``raw_sales`` history and forecasts from its last
    day (the origin), returning ``forecasting.FORECAST_COLUMNS``. The
    platform itself loads the bundle with :func:`load_bundle` and passes the current source tables;
    this interface serves consumers outside the platform, with the tables as of training.
    """

    def load_context(self, context: Any) -> None:
        """Unpickle the bundle and the static tables."""
        self.bundle = pickle.loads(Path(context.artifacts[BUNDLE_FILE]).read_bytes())
        self.tables = pickle.loads(Path(context.artifacts[TABLES_FILE]).read_bytes())

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        """Forecast from ``model_input`` (raw_sales history) at its last day."""
        from demand_platform import columns as C
        from demand_platform import forecasting

        origin = pd.Timestamp(pd.to_datetime(model_input[C.DATE]).max())
        t = self.tables
        return forecasting.forecast_warehouse(
            self.bundle,
            model_input,
            t["products"],
            t["warehouses"],
            t.get("calendar"),
            t.get("campaigns"),
            t.get("weather"),
            origin,
            self.bundle.warehouse_id,
        )


def log_candidate(
    bundle: Any,
    warehouse_id: str,
    train_date: str,
    params: dict[str, Any],
    metrics: dict[str, float],
    importance: pd.DataFrame | None,
    boosters: dict[str, Any] | None,
    score: float,
    tags: dict[str, str] | None = None,
    tables: dict[str, pd.DataFrame | None] | None = None,
    score_metric: str = "rmse",
) -> str:
    """Log one warehouse's trained model into a nested MLflow run and register a version.

    Args:
        bundle: The picklable trained model (``WarehouseModel``).
        warehouse_id: The warehouse.
        train_date: The training date (ISO).
        params: Training parameters to log.
        metrics: Validation metrics to log (non-finite values are skipped).
        importance: Feature importance table, logged as a CSV artifact.
        boosters: LightGBM boosters by band label, logged as MLflow LightGBM models.
        score: The validation error the promotion gate compares (lower is better).
        tags: Extra run tags (e.g. the Dagster partition).
        tables: Static tables (products, warehouses, calendar, campaigns, weather) stored with the
            registered pyfunc model so it can forecast on its own.
        score_metric: Name of the metric ``score`` is (a version tag; scores of different metrics are
            never compared).

    Returns:
        The registered model version.
    """
    name = model_name(warehouse_id)
    run_tags = {WAREHOUSE_TAG: warehouse_id, TRAIN_DATE_TAG: train_date, **(tags or {})}
    nested = mlflow.active_run() is not None
    with mlflow.start_run(run_name=f"{name}@{train_date}", nested=nested, tags=run_tags):
        mlflow.log_params({k: str(v)[:500] for k, v in params.items()})
        finite = {k: float(v) for k, v in metrics.items() if v is not None and pd.notna(v)}
        mlflow.log_metrics(finite)
        requirements = pip_requirements()
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / BUNDLE_FILE
            path.write_bytes(pickle.dumps(bundle))
            table_path = Path(tmp) / TABLES_FILE
            table_path.write_bytes(pickle.dumps(tables or {}))
            if importance is not None and len(importance):
                imp = Path(tmp) / "feature_importance.csv"
                importance.to_csv(imp, index=False)
                mlflow.log_artifact(str(imp))
            info = mlflow.pyfunc.log_model(
                name=BUNDLE_ARTIFACT,
                python_model=TieredForecaster(),
                artifacts={BUNDLE_FILE: str(path), TABLES_FILE: str(table_path)},
                pip_requirements=requirements,
            )
        for band, booster in (boosters or {}).items():
            mlflow.lightgbm.log_model(booster, name=f"lgbm_{band}", pip_requirements=requirements)
        version = mlflow.register_model(info.model_uri, name)
    client = MlflowClient()
    client.set_model_version_tag(name, version.version, SCORE_TAG, repr(float(score)))
    client.set_model_version_tag(name, version.version, SCORE_METRIC_TAG, score_metric)
    client.set_model_version_tag(name, version.version, TRAIN_DATE_TAG, train_date)
    return str(version.version)


def production_version(warehouse_id: str) -> tuple[str, float] | None:
    """The production version of a warehouse's model and its validation score, or None."""
    current = production_score(warehouse_id)
    return None if current is None else (current[0], current[1])


def production_score(warehouse_id: str) -> tuple[str, float, str] | None:
    """The production version, its validation score and the score's metric, or None."""
    client = MlflowClient()
    try:
        version = client.get_model_version_by_alias(model_name(warehouse_id), PRODUCTION_ALIAS)
    except MlflowException:
        return None
    metric = version.tags.get(SCORE_METRIC_TAG, LEGACY_SCORE_METRIC)
    return str(version.version), float(version.tags.get(SCORE_TAG, "nan")), metric


def latest_version(warehouse_id: str) -> str | None:
    """The most recently registered version of a warehouse's model (promoted or not), or None."""
    client = MlflowClient()
    try:
        versions = client.search_model_versions(f"name = '{model_name(warehouse_id)}'")
    except MlflowException:
        return None
    numbers = [int(v.version) for v in versions]
    return str(max(numbers)) if numbers else None


def beats_reference(candidate_score: float, reference_score: float, margin: float) -> bool:
    """The gate's rule: the candidate's error is at least ``margin`` (relative) below the reference's; a
    missing reference score (NaN) lets any candidate pass."""
    if pd.isna(reference_score):
        return True
    return bool(candidate_score <= reference_score * (1.0 - margin))


def promote_if_better(
    warehouse_id: str,
    candidate_version: str,
    candidate_score: float,
    baseline_score: float,
    margin: float,
    score_metric: str = "rmse",
) -> PromotionDecision:
    """Give ``candidate_version`` the production alias only if it beats the reference by ``margin``.

    The reference is the current production version's validation score or, when there is none or its
    score is of another metric (a version registered before the gate changed metric), the seasonal-naive
    baseline's score on the candidate's validation windows. ``margin`` is relative: 0.02 means the
    candidate's error must be at least 2% lower.
    """
    name = model_name(warehouse_id)
    current = production_score(warehouse_id)
    holder = current[0] if current is not None else None
    if current is None or current[2] != score_metric:
        reference, reference_score = "seasonal_naive", float(baseline_score)
    else:
        reference, reference_score = "production", current[1]
    threshold = reference_score * (1.0 - margin)
    promoted = beats_reference(candidate_score, reference_score, margin)
    if promoted:
        MlflowClient().set_registered_model_alias(name, PRODUCTION_ALIAS, candidate_version)
        holder = candidate_version
        reason = (
            f"{name} v{candidate_version} promoted: validation {score_metric} {candidate_score:.4f} <= "
            f"{threshold:.4f} ({reference} {reference_score:.4f} less {margin:.0%})"
        )
    else:
        reason = (
            f"{name} v{candidate_version} rejected: validation {score_metric} {candidate_score:.4f} > "
            f"{threshold:.4f} ({reference} {reference_score:.4f} less {margin:.0%}); "
            f"{'production stays v' + holder if holder else 'no production model yet'}"
        )
    return PromotionDecision(
        model_name=name,
        candidate_version=candidate_version,
        promoted=promoted,
        production_version=holder,
        candidate_score=float(candidate_score),
        reference_score=float(reference_score),
        reference=reference,
        reason=reason,
    )


def load_bundle(warehouse_id: str, version: str | None = None) -> Any:
    """Load the pickled model bundle of a version (default: the production version)."""
    name = model_name(warehouse_id)
    client = MlflowClient()
    mv = (
        client.get_model_version_by_alias(name, PRODUCTION_ALIAS)
        if version is None
        else client.get_model_version(name, version)
    )
    with tempfile.TemporaryDirectory() as tmp:
        local = Path(mlflow.artifacts.download_artifacts(artifact_uri=mv.source, dst_path=tmp))
        return pickle.loads(next(local.rglob(BUNDLE_FILE)).read_bytes())
