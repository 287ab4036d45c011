"""The model registry as a domain service: logging warehouse models, the promotion gate and serving.

Plain MLflow and DuckDB (no Dagster). :class:`ModelRegistry` is bound to one MLflow store through its own
``MlflowClient`` (tracking and registry URI): it never reads or sets MLflow's global tracking URI, active
run or experiment, so two registries on two stores live side by side in one process.

* Each warehouse has a registered model ``demand_<warehouse_id>``. A training run logs params,
  validation metrics, the feature importance, the LightGBM band models (with explicit pip requirements:
  inferring them costs ~15 s a model) and the whole pickled ``WarehouseModel`` bundle as a pyfunc model,
  then registers a version (:meth:`ModelRegistry.register`). The pyfunc model ships the
  ``demand_platform`` package code with it (``code_paths``) and pins third-party packages only: it loads
  and predicts where the platform is not installed. Models are saved locally and uploaded as run
  artifacts through the client; a version's source is the artifact URI of its ``bundle`` directory.
* **The record of promotions is the ``trained_models`` DuckDB table**, one row per (origin, warehouse)
  partition (:func:`record_row`): the version trained there and whether the gate promoted it.
  Registering a version moves nothing; the decision becomes true when the Dagster IO manager stores the
  partition's row, in the same write as the rest of the asset. A version registered by a run that failed
  before that write is in no row, so it is never served (an orphan).
* **Serving** (:func:`served_version`): the version in production at origin D is the version promoted
  by the latest partition of the warehouse with origin <= D (ties: the later version). When none was
  promoted by D, the baseline inside the latest version trained at or before D serves
  (``WarehouseModel.baseline``, the reference the model lost to; model_version suffixed
  ``-baseline``). Nothing trained at or before D is an error. So re-forecasting an old origin uses the
  model that was in force at that origin, not today's.
* **The gate** (:meth:`ModelRegistry.gate`, pure core :func:`decide_promotion`): a candidate trained at
  origin D must beat the version in production just before D (the record's, strictly earlier
  partitions: the partition's own previous row is being replaced, so a re-run of a partition decides the
  same way however often it runs) by ``margin``, or, when there is none, seasonal naive. A version's
  score carries its metric (tag ``validation_score_metric``; untagged versions scored WMAPE), and a
  production score of another metric is never compared: seasonal naive is the reference then.
* **The ``production`` alias is a mirror** of the record for MLflow users
  (``models:/demand_W@production``): :meth:`ModelRegistry.promote` points it at the version serving the
  warehouse's latest recorded origin (removes it when none was promoted). It is idempotent and the
  Dagster layer calls it at the start of ``trained_models`` and ``forecasts`` and after
  ``trained_models`` stored its rows, so a failure in between heals at the next run. Serving never
  reads the alias.
"""

import datetime as dt
import pickle
import shutil
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from importlib import metadata
from pathlib import Path
from typing import Any

import duckdb
import mlflow.artifacts
import mlflow.lightgbm
import mlflow.pyfunc
import pandas as pd
from mlflow import MlflowClient
from mlflow.entities import Metric, Param
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import RESOURCE_ALREADY_EXISTS, ErrorCode
from mlflow.pyfunc import PythonModel

import demand_platform
from demand_platform import columns as C
from demand_platform import forecasting
from demand_platform.metrics import BIAS, MAE, RMSE, WMAPE
from demand_platform.tables import SourceTables

#: The MLflow experiment of the platform's training runs.
DEFAULT_EXPERIMENT = "demand_platform"
#: Relative improvement a candidate needs over its reference (0.01: its error at least 1% lower).
DEFAULT_PROMOTION_MARGIN = 0.01
PRODUCTION_ALIAS = "production"
BUNDLE_ARTIFACT = "bundle"
BUNDLE_FILE = "warehouse_model.pkl"
TABLES_FILE = "static_tables.pkl"
IMPORTANCE_FILE = "feature_importance.csv"
SCORE_TAG = "validation_score"
SCORE_METRIC_TAG = "validation_score_metric"
#: The metric of versions registered before the tag existed (the gate compared WMAPE then).
LEGACY_SCORE_METRIC = "wmape"
TRAIN_DATE_TAG = "train_date"
WAREHOUSE_TAG = "warehouse_id"
#: Third-party packages the pyfunc model's code imports at load and predict time (the ``demand_platform``
#: code travels with the model, see :meth:`ModelRegistry.register`; mlflow adds itself). Checked by
#: loading a logged model where the platform is not installed (``test_models_assets``): the package code
#: it loads imports these and no other third-party package; the pickles reference only numpy, pandas,
#: lightgbm.
PIP_PACKAGES = ("lightgbm", "numpy", "pandas", "scipy", "duckdb", "holidays")
#: The DuckDB table that records every training partition and the gate's decision, and its columns.
TRAINED_MODELS_TABLE = "trained_models"
MODEL_NAME = "model_name"
VERSION = "version"
PROMOTED = "promoted"
PRODUCTION_VERSION = "production_version"
VALIDATION_WMAPE = "validation_wmape"
REFERENCE_WMAPE = "reference_wmape"
REFERENCE = "reference"
TRAIN_SECONDS = "train_seconds"
#: The gate's references.
REFERENCE_PRODUCTION = "production"
REFERENCE_SEASONAL_NAIVE = "seasonal_naive"
#: Suffix of the model_version of forecasts served by a baseline fallback.
BASELINE_SUFFIX = "-baseline"


def artifact_root(tracking_uri: str) -> Path | None:
    """Where a SQLite tracking store's artifacts live: ``mlartifacts`` beside the database file.

    MLflow puts a new experiment's artifacts in ``./mlruns`` of the current directory when the
    tracking store is SQLite; the registry creates its experiment there instead. None for other stores
    (their own default location).
    """
    if not tracking_uri.startswith("sqlite:///"):
        return None
    return Path(tracking_uri.removeprefix("sqlite:///")).parent / "mlartifacts"


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
        The copied package directory, for ``code_paths`` of ``mlflow.pyfunc.save_model``.
    """
    source = Path(demand_platform.__file__).parent
    target = directory / source.name
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return target


def logged_metrics(validation_metrics: pd.DataFrame) -> dict[str, float]:
    """A trained model's validation table as MLflow metrics: ``<segment>_<model>_<metric>``."""
    return {
        f"{r[forecasting.SEGMENT]}_{r[C.MODEL]}_{m}": r[m]
        for r in validation_metrics.to_dict("records")
        for m in (WMAPE, MAE, RMSE, BIAS)
    }


@dataclass(frozen=True)
class CandidateScores:
    """What the gate and the record need of a trained model's validation table.

    Attributes:
        score: The tiered model's ``forecasting.GATE_METRIC`` over all SKUs (the gate compares it).
        baseline_score: Seasonal naive's, on the same windows (the reference without production).
        score_metric: The metric of both scores.
        validation_wmape: The tiered model's WMAPE (for the planners, in the record).
        baseline_wmape: Seasonal naive's WMAPE.
    """

    score: float
    baseline_score: float
    score_metric: str
    validation_wmape: float
    baseline_wmape: float

    @classmethod
    def of(cls, validation_metrics: pd.DataFrame) -> "CandidateScores":
        """The scores of ``WarehouseModel.validation_metrics`` (NaN where a row is missing)."""
        score, baseline = forecasting.gate_scores(validation_metrics)
        return cls(
            score=score,
            baseline_score=baseline,
            score_metric=forecasting.GATE_METRIC,
            validation_wmape=forecasting.validation_score(
                validation_metrics, forecasting.MODEL_TIERED, WMAPE
            ),
            baseline_wmape=forecasting.validation_score(
                validation_metrics, forecasting.MODEL_SEASONAL_NAIVE, WMAPE
            ),
        )


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
    day (the origin), returning ``forecasting.FORECAST_COLUMNS``. The platform itself loads the bundle
    with :meth:`ModelRegistry.load` and passes the current source tables; this interface serves consumers
    outside the platform, with the tables as of training.
    """

    def load_context(self, context: Any) -> None:
        """Unpickle the bundle and the static tables."""
        self.bundle = pickle.loads(Path(context.artifacts[BUNDLE_FILE]).read_bytes())
        tables = pickle.loads(Path(context.artifacts[TABLES_FILE]).read_bytes())
        if isinstance(tables, dict) and tables:  # versions registered before SourceTables: a dict of frames
            tables = SourceTables(
                products=tables["products"],
                warehouses=tables["warehouses"],
                calendar=tables.get("calendar"),
                campaigns=tables.get("campaigns"),
                weather=tables.get("weather"),
            )
        self.tables: SourceTables | None = tables or None

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        """Forecast from ``model_input`` (raw_sales history) at its last day."""
        if self.tables is None:
            raise ValueError(
                "this model version was registered without its source tables: it cannot forecast"
            )
        origin = pd.Timestamp(pd.to_datetime(model_input[C.DATE]).max())
        return forecasting.forecast_warehouse(
            self.bundle, model_input, self.tables, origin, self.bundle.warehouse_id
        )


def beats_reference(candidate_score: float, reference_score: float, margin: float) -> bool:
    """The gate's rule: the candidate's error is at least ``margin`` (relative) below the reference's; a
    missing reference score (NaN) lets any candidate pass."""
    if pd.isna(reference_score):
        return True
    return bool(candidate_score <= reference_score * (1.0 - margin))


def decide_promotion(
    warehouse_id: str,
    candidate_version: str,
    scores: CandidateScores,
    margin: float,
    current: tuple[str, float, str] | None = None,
) -> PromotionDecision:
    """The gate's decision for ``candidate_version`` against ``current`` production (pure).

    The reference is ``current``'s validation score or, when there is none or its score is of another
    metric (a version registered before the gate changed metric), the seasonal-naive baseline's score on
    the candidate's validation windows. ``margin`` is relative: 0.02 means the candidate's error must be
    at least 2% lower. A warehouse's first model (``current`` None) is held to seasonal naive: the
    benchmarks call this with the scores of a model they trained (``CandidateScores.of``).

    Args:
        warehouse_id: The warehouse.
        candidate_version: The version just registered (any label when nothing is registered).
        scores: The candidate's scores (:meth:`CandidateScores.of`).
        margin: Relative improvement required.
        current: The version in production before the candidate, its score and the score's metric.

    Returns:
        The decision; nothing is moved.
    """
    name = model_name(warehouse_id)
    score_metric, candidate_score = scores.score_metric, scores.score
    holder = current[0] if current is not None else None
    if current is None or current[2] != score_metric:
        reference, reference_score = REFERENCE_SEASONAL_NAIVE, float(scores.baseline_score)
    else:
        reference, reference_score = REFERENCE_PRODUCTION, float(current[1])
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


def record_row(
    origin: dt.date,
    warehouse_id: str,
    decision: PromotionDecision,
    scores: CandidateScores,
    train_seconds: float,
) -> dict[str, Any]:
    """The ``trained_models`` row of a gated candidate: the record of the decision once stored.

    The WMAPEs are for the planners (the gate's scores are in the reason); the reference's WMAPE is
    seasonal naive's when it was the reference, else NaN.
    """
    return {
        C.ORIGIN_DATE: pd.Timestamp(origin),
        C.WAREHOUSE_ID: warehouse_id,
        MODEL_NAME: decision.model_name,
        VERSION: decision.candidate_version,
        PROMOTED: decision.promoted,
        PRODUCTION_VERSION: decision.production_version,
        VALIDATION_WMAPE: scores.validation_wmape,
        REFERENCE_WMAPE: scores.baseline_wmape
        if decision.reference == REFERENCE_SEASONAL_NAIVE
        else float("nan"),
        REFERENCE: decision.reference,
        C.REASON: decision.reason,
        TRAIN_SECONDS: train_seconds,
    }


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
    # Imported here, not with the module: the registered pyfunc model loads this module where only
    # PIP_PACKAGES are installed, and the store module reads with pyarrow and the reporting code.
    from demand_platform import dbfile
    from demand_platform.store import table_exists

    # On a cursor: the caller's connection is left without a pending result.
    with dbfile.cursor(con) as cursor:
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


def resolve_served_versions(
    record: pd.DataFrame, origins: Sequence[dt.date], warehouse_ids: Sequence[str]
) -> dict[tuple[dt.date, str], ServedVersion]:
    """Which version serves each (origin, warehouse) of a run (see :func:`resolve_served_version`).

    Raises:
        ValueError: Nothing was trained for a warehouse at or before an origin.
    """
    return {(day, wh): resolve_served_version(record, wh, day) for day in origins for wh in warehouse_ids}


def served_version(con: duckdb.DuckDBPyConnection, warehouse_id: str, origin: dt.date) -> ServedVersion:
    """Which version serves warehouse ``warehouse_id`` at origin ``origin`` (the record in DuckDB).

    See :func:`resolve_served_version`; a run serving many origins reads the record once with
    :func:`read_record` and resolves each.

    Raises:
        ValueError: Nothing was trained for the warehouse at or before ``origin``.
    """
    return resolve_served_version(read_record(con, [warehouse_id]), warehouse_id, origin)


@dataclass(frozen=True)
class ModelRegistry:
    """The warehouse models of one MLflow store: register, gate, promote, serve and load.

    Every MLflow call goes through :attr:`client`, bound to :attr:`tracking_uri` and :attr:`registry_uri`:
    nothing reads or changes MLflow's global tracking URI, active run or experiment.

    Attributes:
        tracking_uri: MLflow tracking URI (``sqlite:///.../mlflow.db`` under the platform home).
        registry_uri: Model registry URI (None: the tracking URI, never MLflow's global one).
        experiment_name: The experiment the training runs are logged in.
        artifact_location: Where a new experiment's artifacts go (``s3://bucket/prefix`` on the cluster);
            None: beside a SQLite store (:func:`artifact_root`), else the tracking store's default.
    """

    tracking_uri: str
    registry_uri: str | None = None
    experiment_name: str = DEFAULT_EXPERIMENT
    artifact_location: str | None = None

    @cached_property
    def client(self) -> MlflowClient:
        """The client of this store (made once per registry)."""
        return MlflowClient(
            tracking_uri=self.tracking_uri, registry_uri=self.registry_uri or self.tracking_uri
        )

    def ensure_experiment(self) -> str:
        """The experiment's id, creating it with its artifacts at :attr:`artifact_location` or beside the store (idempotent)."""
        existing = self.client.get_experiment_by_name(self.experiment_name)
        if existing is not None:
            return str(existing.experiment_id)
        root = None if self.artifact_location else artifact_root(self.tracking_uri)
        if root is not None:
            root.mkdir(parents=True, exist_ok=True)
        location = self.artifact_location if root is None else root.resolve().as_uri()
        try:
            return str(self.client.create_experiment(self.experiment_name, artifact_location=location))
        except MlflowException:  # created meanwhile by another process
            found = self.client.get_experiment_by_name(self.experiment_name)
            if found is None:
                raise
            return str(found.experiment_id)

    def register(
        self,
        bundle: Any,
        warehouse_id: str,
        train_date: str,
        *,
        score: float,
        score_metric: str = forecasting.GATE_METRIC,
        params: Mapping[str, Any] | None = None,
        metrics: Mapping[str, float] | None = None,
        importance: pd.DataFrame | None = None,
        boosters: Mapping[str, Any] | None = None,
        tags: Mapping[str, str] | None = None,
        tables: SourceTables | None = None,
    ) -> str:
        """Log one warehouse's trained model in a run of its own and register a version (a candidate).

        Registering promotes nothing (see :meth:`gate`). The score tags are set last: a version without
        them was cut short and :meth:`find_version` never reuses it.

        Args:
            bundle: The picklable trained model (``WarehouseModel``).
            warehouse_id: The warehouse.
            train_date: The training date (ISO).
            score: The validation error the promotion gate compares (lower is better).
            score_metric: Name of the metric ``score`` is (a version tag; scores of different metrics are
                never compared).
            params: Training parameters to log.
            metrics: Validation metrics to log (non-finite values are skipped).
            importance: Feature importance table, logged as a CSV artifact.
            boosters: LightGBM boosters by band label, logged as MLflow LightGBM models.
            tags: Extra tags of the run and of the version (e.g. the Dagster partition and run id).
            tables: The source tables stored with the registered pyfunc model so it can forecast on its
                own (required to load it as a pyfunc model; the platform itself passes current tables).

        Returns:
            The registered model version.
        """
        client = self.client
        name = model_name(warehouse_id)
        extra = {k: str(v) for k, v in (tags or {}).items()}
        run = client.create_run(
            self.ensure_experiment(),
            run_name=f"{name}@{train_date}",
            tags={WAREHOUSE_TAG: warehouse_id, TRAIN_DATE_TAG: train_date, **extra},
        )
        run_id = run.info.run_id
        try:
            now = int(time.time() * 1000)
            client.log_batch(
                run_id,
                metrics=[
                    Metric(k, float(v), now, 0)
                    for k, v in (metrics or {}).items()
                    if v is not None and pd.notna(v)
                ],
                params=[Param(k, str(v)[:500]) for k, v in (params or {}).items()],
            )
            requirements = pip_requirements()
            with tempfile.TemporaryDirectory() as tmp:
                work = Path(tmp)
                path = work / BUNDLE_FILE
                path.write_bytes(pickle.dumps(bundle))
                table_path = work / TABLES_FILE
                table_path.write_bytes(pickle.dumps(tables))
                if importance is not None and len(importance):
                    importance.to_csv(work / IMPORTANCE_FILE, index=False)
                    client.log_artifact(run_id, str(work / IMPORTANCE_FILE))
                mlflow.pyfunc.save_model(
                    path=str(work / BUNDLE_ARTIFACT),
                    python_model=TieredForecaster(),
                    artifacts={BUNDLE_FILE: str(path), TABLES_FILE: str(table_path)},
                    code_paths=[str(package_code(work / "code"))],
                    pip_requirements=requirements,
                )
                client.log_artifacts(run_id, str(work / BUNDLE_ARTIFACT), BUNDLE_ARTIFACT)
                for band, booster in (boosters or {}).items():
                    local = work / f"lgbm_{band}"
                    mlflow.lightgbm.save_model(booster, str(local), pip_requirements=requirements)
                    client.log_artifacts(run_id, str(local), local.name)
            try:
                client.create_registered_model(name)
            except MlflowException as error:
                if error.error_code != ErrorCode.Name(RESOURCE_ALREADY_EXISTS):
                    raise
            version = client.create_model_version(
                name,
                source=f"{run.info.artifact_uri}/{BUNDLE_ARTIFACT}",
                run_id=run_id,
                tags={**extra, TRAIN_DATE_TAG: train_date},
            )
        except BaseException:
            client.set_terminated(run_id, "FAILED")
            raise
        client.set_terminated(run_id)
        client.set_model_version_tag(name, version.version, SCORE_METRIC_TAG, score_metric)
        client.set_model_version_tag(name, version.version, SCORE_TAG, repr(float(score)))
        return str(version.version)

    def find_version(self, warehouse_id: str, tags: Mapping[str, str]) -> tuple[str, dict[str, str]] | None:
        """The latest completely registered version of a warehouse carrying all ``tags``, or None.

        A retried training step finds the version its earlier attempt registered (tags: the partition and
        the run id) and reuses it instead of training and registering again.

        Returns:
            The version and its tags.
        """
        clauses = [f"name = '{model_name(warehouse_id)}'"]
        clauses += [f"tags.{key} = '{str(value).replace(chr(39), '')}'" for key, value in tags.items()]
        try:
            found = self.client.search_model_versions(" and ".join(clauses))
        except MlflowException:
            return None
        complete = [v for v in found if SCORE_TAG in v.tags]
        if not complete:
            return None
        best = max(complete, key=lambda v: int(v.version))
        return str(best.version), dict(best.tags)

    def version_score(self, warehouse_id: str, version: str) -> tuple[float, str]:
        """A version's validation score and the score's metric (its tags)."""
        mv = self.client.get_model_version(model_name(warehouse_id), version)
        return float(mv.tags.get(SCORE_TAG, "nan")), mv.tags.get(SCORE_METRIC_TAG, LEGACY_SCORE_METRIC)

    def gate(
        self,
        record: pd.DataFrame,
        warehouse_id: str,
        origin: dt.date,
        candidate_version: str,
        scores: CandidateScores,
        margin: float,
    ) -> PromotionDecision:
        """The gate's decision for a candidate trained at ``origin``; moves nothing.

        The reference is the version the record shows in production just before ``origin`` (its score
        from the version's tags, see :func:`decide_promotion`): the partition's own previous row, which
        the candidate's row replaces, is never the reference, so re-running a partition (a retry, a
        retrain) decides as its first run did.

        Args:
            record: The record of promotions (:func:`read_record`, with :func:`with_rows` the rows a run
                decided and has not stored yet).
            warehouse_id: The warehouse.
            origin: The candidate's training origin.
            candidate_version: The registered candidate.
            scores: Its scores (:meth:`CandidateScores.of`).
            margin: Relative improvement required.
        """
        holder = production_before(record, warehouse_id, origin)
        current = None if holder is None else (holder, *self.version_score(warehouse_id, holder))
        return decide_promotion(warehouse_id, candidate_version, scores, margin, current)

    def alias_version(self, warehouse_id: str) -> str | None:
        """The version the ``production`` alias points at (the mirror; serving never reads it), or None."""
        try:
            mv = self.client.get_model_version_by_alias(model_name(warehouse_id), PRODUCTION_ALIAS)
        except MlflowException:
            return None
        return str(mv.version)

    def promote(self, record: pd.DataFrame, warehouse_id: str) -> str | None:
        """Point the ``production`` alias at the version serving the warehouse's latest recorded origin.

        The record (``trained_models``) is what promotes; the alias mirrors it for MLflow users.
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
        if self.alias_version(warehouse_id) == target:
            return target
        if target is None:
            self.client.delete_registered_model_alias(model_name(warehouse_id), PRODUCTION_ALIAS)
        else:
            self.client.set_registered_model_alias(model_name(warehouse_id), PRODUCTION_ALIAS, target)
        return target

    def served_version(
        self, con: duckdb.DuckDBPyConnection, warehouse_id: str, origin: dt.date
    ) -> ServedVersion:
        """Which model serves warehouse ``warehouse_id`` at origin ``origin`` (see :func:`served_version`).

        Raises:
            ValueError: Nothing was trained for the warehouse at or before ``origin``.
        """
        return served_version(con, warehouse_id, origin)

    def model_uri(self, warehouse_id: str, version: str) -> str:
        """The artifact URI of a version's pyfunc model: ``mlflow.pyfunc.load_model`` loads it as is,
        without any tracking URI (it is the version's source, a location of the store's artifacts)."""
        return str(self.client.get_model_version(model_name(warehouse_id), version).source)

    def load(self, warehouse_id: str, version: str) -> Any:
        """The pickled model bundle of a registered version (``WarehouseModel``).

        Raises:
            ValueError: The version is not in this store (the record and the store disagree).
        """
        try:
            source = self.model_uri(warehouse_id, version)
            with tempfile.TemporaryDirectory() as tmp:
                local = Path(
                    mlflow.artifacts.download_artifacts(
                        artifact_uri=source,
                        dst_path=tmp,
                        tracking_uri=self.tracking_uri,
                        registry_uri=self.registry_uri or self.tracking_uri,
                    )
                )
                return pickle.loads(next(local.rglob(BUNDLE_FILE)).read_bytes())
        except MlflowException as error:
            raise ValueError(
                f"{model_name(warehouse_id)} v{version}, recorded in {TRAINED_MODELS_TABLE}, is not in the "
                f"MLflow store {self.tracking_uri}: {error}"
            ) from error
