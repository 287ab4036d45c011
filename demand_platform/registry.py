"""The MLflow model registry: logging trained warehouse models, the promotion gate and serving.

Plain MLflow and DuckDB (no Dagster): the Dagster layer opens the run through dagster-mlflow and calls these.

* Each warehouse has a registered model ``demand_<warehouse_id>``. A training run logs params,
  validation metrics, the feature importance, the LightGBM band models (``mlflow.lightgbm`` with
  explicit pip requirements: inferring them costs ~15 s a model) and the whole pickled
  ``WarehouseModel`` bundle, then registers a version. The pyfunc model ships the ``demand_platform``
  package code with it (``code_paths``) and pins third-party packages only: it loads and predicts
  where the platform is not installed.
* **The record of promotions is the ``trained_models`` DuckDB table**, one row per (origin, warehouse)
  partition: the version trained there and whether the gate promoted it. Registering a version moves
  nothing; the decision becomes true when the Dagster IO manager stores the partition's row, in the
  same write as the rest of the asset. A version registered by a run that failed before that write is
  in no row, so it is never served (an orphan).
* **Serving** (:func:`served_version`): the version in production at origin D is the version promoted
  by the latest partition of the warehouse with origin <= D (ties: the later version). When none was
  promoted by D, the baseline inside the latest version trained at or before D serves
  (``WarehouseModel.baseline``, the reference the model lost to; model_version suffixed
  ``-baseline``). Nothing trained at or before D is an error. So re-forecasting an old origin uses the
  model that was in force at that origin, not today's.
* **The gate** (:func:`gate_candidate`): a candidate trained at origin D must beat the version in
  production just before D (the record's, strictly earlier partitions: the partition's own previous
  row is being replaced, so a re-run of a partition decides the same way however often it runs) by
  ``margin``, or, when there is none, seasonal naive. A version's score carries its metric (tag
  ``validation_score_metric``; untagged versions scored WMAPE), and a production score of another
  metric is never compared: seasonal naive is the reference then.
* **The ``production`` alias is a mirror** of the record for MLflow users
  (``models:/demand_W@production``): :func:`sync_production_alias` points it at the version serving
  the warehouse's latest recorded origin (removes it when none was promoted). It is idempotent and the
  Dagster layer calls it at the start of ``trained_models`` and ``forecasts`` and after
  ``trained_models`` stored its rows, so a failure in between heals at the next run. Serving never
  reads the alias.
"""

import datetime as dt
import pickle
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import duckdb
import mlflow
import mlflow.pyfunc
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.pyfunc import PythonModel
from mlflow.tracking import MlflowClient

import demand_platform
from demand_platform import columns as C
from demand_platform.store import table_exists

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
#: Third-party packages the pyfunc model's code imports at load and predict time (the ``demand_platform``
#: code travels with the model, see :func:`log_candidate`; mlflow adds itself). Checked by loading a
#: logged model where the platform is not installed (``test_models_assets``): the package code it loads
#: imports these and no other third-party package; the pickles reference only numpy, pandas, lightgbm.
PIP_PACKAGES = ("lightgbm", "numpy", "pandas", "scipy", "duckdb", "holidays")
#: The DuckDB table that records every training partition and the gate's decision.
TRAINED_MODELS_TABLE = "trained_models"
VERSION = "version"
PROMOTED = "promoted"
#: Suffix of the model_version of forecasts served by a baseline fallback.
BASELINE_SUFFIX = "-baseline"


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
    """Explicit pinned requirements of a logged model: the installed versions of :data:`PIP_PACKAGES`.

    Third-party packages only: ``demand_platform`` itself ships inside the model (``code_paths``), never
    as a requirement (a ``demand-platform==<version>`` pin would install whatever the package index holds
    under that name).
    """
    out = []
    for package in PIP_PACKAGES:
        try:
            out.append(f"{package}=={metadata.version(package)}")
        except metadata.PackageNotFoundError:
            continue
    return out


def package_code(directory: Path) -> Path:
    """Copy the ``demand_platform`` package (its ``.py`` files, no caches) into ``directory``.

    Returns:
        The copied package directory, for ``code_paths`` of ``mlflow.pyfunc.log_model``.
    """
    source = Path(demand_platform.__file__).parent
    target = directory / source.name
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return target


@dataclass(frozen=True)
class PromotionDecision:
    """Outcome of the promotion gate for one candidate version (nothing is moved by deciding).

    Attributes:
        model_name: Registered model name.
        candidate_version: The version just registered.
        promoted: Whether the gate promotes it (true once the partition's row is stored).
        production_version: The version serving from the candidate's origin after the decision: the
            candidate if promoted, else the one in production before (None: none yet).
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


@dataclass(frozen=True)
class ServedVersion:
    """The model version that serves a warehouse at a forecast origin.

    Attributes:
        warehouse_id: The warehouse.
        origin: The forecast origin.
        version: The registered version whose bundle forecasts.
        baseline: True when no version was promoted by ``origin``: the bundle's baseline serves.
        trained_origin: The origin of the ``trained_models`` partition that trained ``version``.
    """

    warehouse_id: str
    origin: dt.date
    version: str
    baseline: bool
    trained_origin: dt.date

    @property
    def model_version(self) -> str:
        """The ``model_version`` written on forecast rows (``<version>-baseline`` for a fallback)."""
        return f"{self.version}{BASELINE_SUFFIX if self.baseline else ''}"


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

    Registering promotes nothing (see :func:`gate_candidate`). The score tags are set last: a version
    without them was cut short and :func:`find_version` never reuses it.

    Args:
        bundle: The picklable trained model (``WarehouseModel``).
        warehouse_id: The warehouse.
        train_date: The training date (ISO).
        params: Training parameters to log.
        metrics: Validation metrics to log (non-finite values are skipped).
        importance: Feature importance table, logged as a CSV artifact.
        boosters: LightGBM boosters by band label, logged as MLflow LightGBM models.
        score: The validation error the promotion gate compares (lower is better).
        tags: Extra tags of the run and of the version (e.g. the Dagster partition and run id).
        tables: Static tables (products, warehouses, calendar, campaigns, weather) stored with the
            registered pyfunc model so it can forecast on its own.
        score_metric: Name of the metric ``score`` is (a version tag; scores of different metrics are
            never compared).

    Returns:
        The registered model version.
    """
    name = model_name(warehouse_id)
    extra = {k: str(v) for k, v in (tags or {}).items()}
    run_tags = {WAREHOUSE_TAG: warehouse_id, TRAIN_DATE_TAG: train_date, **extra}
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
                code_paths=[str(package_code(Path(tmp) / "code"))],
                pip_requirements=requirements,
            )
        for band, booster in (boosters or {}).items():
            mlflow.lightgbm.log_model(booster, name=f"lgbm_{band}", pip_requirements=requirements)
        version = mlflow.register_model(info.model_uri, name, tags={**extra, TRAIN_DATE_TAG: train_date})
    client = MlflowClient()
    client.set_model_version_tag(name, version.version, SCORE_METRIC_TAG, score_metric)
    client.set_model_version_tag(name, version.version, SCORE_TAG, repr(float(score)))
    return str(version.version)


def find_version(warehouse_id: str, tags: Mapping[str, str]) -> tuple[str, dict[str, str]] | None:
    """The latest completely registered version of a warehouse carrying all ``tags``, or None.

    A retried training step finds the version its earlier attempt registered (tags: the partition and
    the run id) and reuses it instead of training and registering again.

    Returns:
        The version and its tags.
    """
    clauses = [f"name = '{model_name(warehouse_id)}'"]
    clauses += [f"tags.{key} = '{str(value).replace(chr(39), '')}'" for key, value in tags.items()]
    try:
        found = MlflowClient().search_model_versions(" and ".join(clauses))
    except MlflowException:
        return None
    complete = [v for v in found if SCORE_TAG in v.tags]
    if not complete:
        return None
    best = max(complete, key=lambda v: int(v.version))
    return str(best.version), dict(best.tags)


def version_score(warehouse_id: str, version: str) -> tuple[float, str]:
    """A version's validation score and the score's metric (its tags)."""
    mv = MlflowClient().get_model_version(model_name(warehouse_id), version)
    return float(mv.tags.get(SCORE_TAG, "nan")), mv.tags.get(SCORE_METRIC_TAG, LEGACY_SCORE_METRIC)


def alias_version(warehouse_id: str) -> str | None:
    """The version the ``production`` alias points at (the mirror; serving never reads it), or None."""
    try:
        mv = MlflowClient().get_model_version_by_alias(model_name(warehouse_id), PRODUCTION_ALIAS)
    except MlflowException:
        return None
    return str(mv.version)


def beats_reference(candidate_score: float, reference_score: float, margin: float) -> bool:
    """The gate's rule: the candidate's error is at least ``margin`` (relative) below the reference's; a
    missing reference score (NaN) lets any candidate pass."""
    if pd.isna(reference_score):
        return True
    return bool(candidate_score <= reference_score * (1.0 - margin))


def decide_promotion(
    warehouse_id: str,
    candidate_version: str,
    candidate_score: float,
    baseline_score: float,
    margin: float,
    current: tuple[str, float, str] | None,
    score_metric: str = "rmse",
) -> PromotionDecision:
    """The gate's decision for ``candidate_version`` against ``current`` production (pure).

    The reference is ``current``'s validation score or, when there is none or its score is of another
    metric (a version registered before the gate changed metric), the seasonal-naive baseline's score on
    the candidate's validation windows. ``margin`` is relative: 0.02 means the candidate's error must be
    at least 2% lower.

    Args:
        warehouse_id: The warehouse.
        candidate_version: The version just registered.
        candidate_score: Its validation error.
        baseline_score: Seasonal naive's validation error on the same windows.
        margin: Relative improvement required.
        current: The version in production before the candidate, its score and the score's metric.
        score_metric: The metric of ``candidate_score``.
    """
    name = model_name(warehouse_id)
    holder = current[0] if current is not None else None
    if current is None or current[2] != score_metric:
        reference, reference_score = "seasonal_naive", float(baseline_score)
    else:
        reference, reference_score = "production", float(current[1])
    threshold = reference_score * (1.0 - margin)
    promoted = beats_reference(candidate_score, reference_score, margin)
    if promoted:
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


def empty_record() -> pd.DataFrame:
    """A promotion record without rows (see :func:`read_record`)."""
    return pd.DataFrame(
        {
            C.ORIGIN_DATE: pd.Series(dtype="datetime64[ns]"),
            C.WAREHOUSE_ID: pd.Series(dtype=object),
            VERSION: pd.Series(dtype=object),
            PROMOTED: pd.Series(dtype=bool),
        }
    )


def read_record(con: duckdb.DuckDBPyConnection, warehouse_ids: Sequence[str] | None = None) -> pd.DataFrame:
    """The record of promotions: ``origin_date, warehouse_id, version, promoted`` of ``trained_models``.

    Args:
        con: A connection to the platform's DuckDB database.
        warehouse_ids: Only these warehouses (default: all).

    Returns:
        One row per stored partition (empty when the table does not exist yet).
    """
    # On a cursor: the caller's connection is left without a pending result.
    with con.cursor() as cursor:
        if not table_exists(cursor, TRAINED_MODELS_TABLE):
            return empty_record()
        where = "" if warehouse_ids is None else f"WHERE list_contains($w, {C.WAREHOUSE_ID})"
        params = {} if warehouse_ids is None else {"w": [str(w) for w in warehouse_ids]}
        frame = cursor.execute(
            f"""
            SELECT CAST({C.ORIGIN_DATE} AS TIMESTAMP) AS {C.ORIGIN_DATE},
                   CAST({C.WAREHOUSE_ID} AS VARCHAR) AS {C.WAREHOUSE_ID},
                   CAST({VERSION} AS VARCHAR) AS {VERSION},
                   CAST({PROMOTED} AS BOOLEAN) AS {PROMOTED}
            FROM {TRAINED_MODELS_TABLE} {where}
            """,
            params,
        ).df()
    return with_rows(empty_record(), frame)


def with_rows(record: pd.DataFrame, rows: pd.DataFrame) -> pd.DataFrame:
    """``record`` with the partitions of ``rows`` replaced by ``rows`` (as storing them will do).

    A run training several days of a warehouse gates each day against the days before it, including the
    ones this run trained and has not stored yet.
    """
    columns = list(empty_record().columns)
    if rows.empty:
        return record[columns].reset_index(drop=True)
    new = rows[columns].astype({C.WAREHOUSE_ID: str, VERSION: str, PROMOTED: bool})
    new[C.ORIGIN_DATE] = pd.to_datetime(new[C.ORIGIN_DATE]).dt.normalize()
    old = record[columns]
    keys = pd.MultiIndex.from_frame(new[[C.ORIGIN_DATE, C.WAREHOUSE_ID]])
    kept = old[~pd.MultiIndex.from_frame(old[[C.ORIGIN_DATE, C.WAREHOUSE_ID]]).isin(keys)]
    return pd.concat([kept, new], ignore_index=True) if len(kept) else new.reset_index(drop=True)


def _ordered(record: pd.DataFrame, warehouse_id: str, origin: dt.date, strict: bool) -> pd.DataFrame:
    """The record's rows of a warehouse up to ``origin``, oldest first (ties: the later version last)."""
    rows = record.reset_index(drop=True)
    dates = pd.to_datetime(rows[C.ORIGIN_DATE]).dt.normalize()
    bound = pd.Timestamp(origin)
    mask = (rows[C.WAREHOUSE_ID].astype(str) == str(warehouse_id)) & (
        (dates < bound) if strict else (dates <= bound)
    )
    keys = {
        "_day": dates[mask],
        "_number": pd.to_numeric(rows.loc[mask, VERSION], errors="coerce").fillna(-1),
    }
    ordered = rows[mask].assign(**keys).sort_values(["_day", "_number"], kind="stable")
    return ordered.drop(columns=list(keys))


def production_before(record: pd.DataFrame, warehouse_id: str, origin: dt.date) -> str | None:
    """The version promoted by the latest partition of ``warehouse_id`` strictly before ``origin``."""
    rows = _ordered(record, warehouse_id, origin, strict=True)
    promoted = rows[rows[PROMOTED].astype(bool)]
    return None if promoted.empty else str(promoted[VERSION].iloc[-1])


def resolve_served_version(record: pd.DataFrame, warehouse_id: str, origin: dt.date) -> ServedVersion:
    """Which version serves ``warehouse_id`` at ``origin``, from a promotion record (pure).

    The version promoted by the latest partition of the warehouse with origin <= ``origin`` (ties: the
    later version); when none was promoted by then, the baseline of the latest version trained at or
    before ``origin``.

    Raises:
        ValueError: Nothing was trained for the warehouse at or before ``origin``.
    """
    rows = _ordered(record, warehouse_id, origin, strict=False)
    if rows.empty:
        mine = record[record[C.WAREHOUSE_ID].astype(str) == str(warehouse_id)]
        first = pd.to_datetime(mine[C.ORIGIN_DATE]).min()
        trained = "no partition at all" if mine.empty else f"its first partition is {first.date()}"
        raise ValueError(
            f"no model for warehouse {warehouse_id} at origin {origin}: {TRAINED_MODELS_TABLE} has no "
            f"partition of {warehouse_id} at or before {origin} ({trained}); materialize "
            f"{TRAINED_MODELS_TABLE} for an origin <= {origin} first"
        )
    promoted = rows[rows[PROMOTED].astype(bool)]
    baseline = promoted.empty
    row = (rows if baseline else promoted).iloc[-1]
    return ServedVersion(
        warehouse_id=str(warehouse_id),
        origin=pd.Timestamp(origin).date(),
        version=str(row[VERSION]),
        baseline=baseline,
        trained_origin=pd.Timestamp(row[C.ORIGIN_DATE]).date(),
    )


def served_version(con: duckdb.DuckDBPyConnection, warehouse_id: str, origin: dt.date) -> ServedVersion:
    """Which version serves warehouse ``warehouse_id`` at origin ``origin`` (the record in DuckDB).

    See :func:`resolve_served_version`; a run serving many origins reads the record once with
    :func:`read_record` and resolves each.

    Raises:
        ValueError: Nothing was trained for the warehouse at or before ``origin``.
    """
    return resolve_served_version(read_record(con, [warehouse_id]), warehouse_id, origin)


def gate_candidate(
    record: pd.DataFrame,
    warehouse_id: str,
    origin: dt.date,
    candidate_version: str,
    candidate_score: float,
    baseline_score: float,
    margin: float,
    score_metric: str = "rmse",
) -> PromotionDecision:
    """The gate's decision for a candidate trained at ``origin``; moves nothing.

    The reference is the version the record shows in production just before ``origin`` (its score from
    the version's tags): the partition's own previous row, which the candidate's row replaces, is never
    the reference, so re-running a partition (a retry, a retrain) decides as its first run did.
    """
    holder = production_before(record, warehouse_id, origin)
    current = None if holder is None else (holder, *version_score(warehouse_id, holder))
    return decide_promotion(
        warehouse_id, candidate_version, candidate_score, baseline_score, margin, current, score_metric
    )


def sync_production_alias(record: pd.DataFrame, warehouse_id: str) -> str | None:
    """Point the ``production`` alias at the version serving the warehouse's latest recorded origin.

    Idempotent (it writes only when the alias differs). The alias is removed when the record promoted
    no version of the warehouse, so it never names a version serving does not use.

    Returns:
        The version the alias now points at, or None.
    """
    rows = record[record[C.WAREHOUSE_ID].astype(str) == str(warehouse_id)]
    target = None
    if len(rows):
        latest = pd.to_datetime(rows[C.ORIGIN_DATE]).max().date()
        served = resolve_served_version(record, warehouse_id, latest)
        target = None if served.baseline else served.version
    current = alias_version(warehouse_id)
    if current == target:
        return target
    client = MlflowClient()
    if target is None:
        client.delete_registered_model_alias(model_name(warehouse_id), PRODUCTION_ALIAS)
    else:
        client.set_registered_model_alias(model_name(warehouse_id), PRODUCTION_ALIAS, target)
    return target


def load_bundle(warehouse_id: str, version: str) -> Any:
    """Load the pickled model bundle of a version."""
    mv = MlflowClient().get_model_version(model_name(warehouse_id), version)
    with tempfile.TemporaryDirectory() as tmp:
        local = Path(mlflow.artifacts.download_artifacts(artifact_uri=mv.source, dst_path=tmp))
        return pickle.loads(next(local.rglob(BUNDLE_FILE)).read_bytes())
