"""Model assets: ``trained_models`` and ``forecasts`` (origin date x warehouse).

The bodies read their inputs and call the domain: ``forecasting`` trains and forecasts, the model
registry (``demand_platform.registry.ModelRegistry``, from :class:`ModelRegistryResource`) registers,
gates, promotes and says which model serves. ``trained_models`` trains the tiered forecaster of a
warehouse as of day D, registers it as a candidate (params, metrics, feature importance, the LightGBM band
models with explicit pip requirements, the pickled bundle, the package code) and gates it. The gate's
decision is a row of the asset's own table, the record of promotions: registering moves no alias, so a
failure before the IO manager stores the rows leaves an orphan version that nothing serves, and a re-run
converges. ``forecasts`` forecasts D+1..D+30 with the version in production *at origin D* (the latest
promotion at or before D, so a day without retraining still forecasts and re-materializing an old origin
uses the model of that origin; the version's baseline when none was promoted by D) and applies the
planners' overrides. Both retry transient failures (:data:`RETRY_POLICY`); a retried ``trained_models``
step reuses the versions its earlier attempt registered.

A warehouse with fewer series routed to the LightGBM than ``pool_series`` (run config) also reads the
``raw_sales`` of series of other warehouses up to D - 1 (:func:`demand_platform.store.load_pool_history`:
their day D may or may not be in yet, whatever the order of the day's runs; D - 1 is), whose training rows
its LightGBM learns from. These reads are not declared as
dependencies: a mapping onto every warehouse's window would make each of 71,600 ``trained_models``
partitions depend on 50 x 760 ``raw_sales`` partitions, and a late warehouse must not hold the others'
training. How many series a version borrowed is its MLflow param ``pooled_series``.
"""

import datetime as dt
import time
from collections.abc import Iterator, Sequence
from typing import Any

import dagster as dg
import pandas as pd
from dagster_duckdb import DuckDBResource
from pydantic import Field

from assets.partitions import (
    DUCKDB_POOL,
    WAREHOUSE_DIM,
    PartitionBox,
    date_dimension,
    partition_box,
    window_mapping,
)
from assets.types import ForecastsType, TrainedModelsType
from demand_platform import columns as C
from demand_platform import features, forecasting
from demand_platform import registry as model_registry
from demand_platform.frames import stack_rows
from demand_platform.registry import ModelRegistry
from demand_platform.store import load_history, load_pool_history, read_partition
from demand_platform.tables import SourceTables
from demand_platform.tiering import ROUTE, ROUTE_GLOBAL_ML
from resources.alerts import AlertResource
from resources.registry import ModelRegistryResource
from resources.source import SourceDataResource

GROUP = "models"
# Days of raw_sales history read to train (the oldest training origin and a year of history before it).
TRAIN_HISTORY_DAYS = forecasting.TrainConfig().training_history_days
# Days of raw_sales history read to forecast (feature lookback).
FORECAST_HISTORY_DAYS = 400
MODEL_PARTITION_EXPR = {"date": C.ORIGIN_DATE, WAREHOUSE_DIM: C.WAREHOUSE_ID}
#: Suffix of the model_version of forecasts served by a baseline fallback.
BASELINE_SUFFIX = model_registry.BASELINE_SUFFIX
#: Transient failures (a locked DuckDB or MLflow file, a webhook down) are retried twice, 5 s then 10 s
#: later: well inside the 08:00 deadline, long enough for a lock held by a short run to go.
RETRY_POLICY = dg.RetryPolicy(max_retries=2, delay=5, backoff=dg.Backoff.EXPONENTIAL)
#: Version tags a retried attempt finds its earlier attempt's versions by.
PARTITION_TAG = "dagster_partition"
RUN_ID_TAG = "dagster_run_id"
TRAIN_SECONDS_TAG = "train_seconds"


class TrainingConfig(dg.Config):
    """Run configuration of ``trained_models``.

    The defaults are the domain's ``TrainConfig`` (one place): 80 boosting rounds per band. 300 rounds
    cost 44.5 s a 10,000-SKU warehouse instead of 22 s (37 min instead of 18 min for 50) for a CV WMAPE of
    0.578 instead of 0.574 (``bench/bench_models.py --n-estimators 300``). ``num_threads`` defaults to one
    LightGBM thread; DuckDB assets run one at a time (the pool), so a training run may use every core:
    with 2 on the 2-core development machine the 50 full-size warehouses trained in 17.0 min through
    Dagster, against 24-26 min on one thread (BENCHMARKS.md, "Full size through Dagster").
    """

    promotion_margin: float = model_registry.DEFAULT_PROMOTION_MARGIN
    n_estimators: int = forecasting.TrainConfig().n_estimators
    num_threads: int = forecasting.TrainConfig().num_threads
    pool_series: int = Field(
        default=forecasting.TrainConfig().pool_series,
        ge=0,
        description=(
            "Series of other warehouses whose training rows each warehouse's LightGBM adds to its own "
            "(0: its own series only)."
        ),
    )
    pool_max_rows: int = Field(
        default=forecasting.TrainConfig().pool_max_rows,
        ge=1,
        description=(
            "Cap on the borrowed training rows of each horizon band (the own rows are capped at "
            f"{forecasting.TrainConfig().max_rows:,}): fewer rows train a small warehouse faster for a "
            "little accuracy (BENCHMARKS.md, 'One LightGBM across warehouses')."
        ),
    )

    def train_config(self) -> forecasting.TrainConfig:
        """The domain's training settings with this run's values."""
        return forecasting.TrainConfig(
            n_estimators=self.n_estimators,
            num_threads=self.num_threads,
            pool_series=self.pool_series,
            pool_max_rows=self.pool_max_rows,
        )


def require_complete_history(
    history: pd.DataFrame, day: dt.date, lookback: int, since: dt.date | None, warehouse_id: str
) -> None:
    """Refuse to train or forecast on a history with holes (raw_sales days without any row).

    Raises:
        dg.Failure: Naming the warehouse, the origin and the first missing days; not retried (only
            materializing those raw_sales partitions repairs it, which the CLI's catch-up does).
    """
    missing = features.missing_days(history, day, lookback, since=since)
    if missing:
        shown = ", ".join(str(d) for d in missing[:10]) + (" ..." if len(missing) > 10 else "")
        raise dg.Failure(
            description=(
                f"raw_sales of warehouse {warehouse_id} has {len(missing)} missing day(s) in the history of "
                f"origin {day}: {shown}. Materialize those raw_sales partitions first."
            ),
            allow_retries=False,
        )


def sync_aliases(
    registry: ModelRegistry, record: pd.DataFrame, warehouse_ids: Sequence[str], log: Any
) -> None:
    """Mirror the record of promotions on the MLflow ``production`` aliases (``ModelRegistry.promote``).

    The alias is a convenience for MLflow users, never read by serving or the gate: a failure to move it
    (a locked store) is logged and healed by the next run's sync, not worth failing or retraining for.
    """
    for wh in warehouse_ids:
        try:
            registry.promote(record, wh)
        except Exception as error:  # the mirror only; the record is intact
            log.warning(
                f"production alias of {wh} not synchronised with {model_registry.TRAINED_MODELS_TABLE}: {error}"
            )


def train_candidate(
    registry: ModelRegistry,
    day: dt.date,
    wh: str,
    tags: dict[str, str],
    tables: SourceTables,
    train_config: forecasting.TrainConfig,
    duckdb: DuckDBResource,
    history_since: dt.date | None = None,
) -> tuple[Any, str, float]:
    """Train one partition's model and register it as a candidate (no alias moves).

    Args:
        registry: The model registry.
        day: The training origin.
        wh: The warehouse.
        tags: Version tags (the partition and the run id).
        tables: The source's small tables (``SourceDataResource.tables``).
        train_config: Training settings.
        duckdb: The platform database.
        history_since: The platform's first day (the history may start there).

    Returns:
        The trained model, its registered version and the training seconds.
    """
    start = day - dt.timedelta(days=TRAIN_HISTORY_DAYS)
    with duckdb.get_connection() as con:
        history = load_history(con, [wh], start, day)
        tiers = read_partition(con, C.TIER_ASSIGNMENTS, day, wh)
        own_series = int((tiers[ROUTE] == ROUTE_GLOBAL_ML).sum()) if ROUTE in tiers.columns else 0
        pool = load_pool_history(
            con, wh, start, day, forecasting.pool_size(own_series, train_config.pool_series)
        )
    since = (
        None
        if history_since is None
        else features.history_start(history_since, tables.warehouses, tables.products, wh)
    )
    require_complete_history(history, day, TRAIN_HISTORY_DAYS, since, wh)
    started = time.perf_counter()
    model = forecasting.train_warehouse(stack_rows([history, pool]), tables, day, wh, tiers, train_config)
    seconds = time.perf_counter() - started
    scores = model_registry.CandidateScores.of(model.validation_metrics)
    version = registry.register(
        model,
        wh,
        day.isoformat(),
        score=scores.score,
        score_metric=scores.score_metric,
        params={
            "train_config": train_config,
            "warehouse_id": wh,
            "stop_hazard": model.stop_hazard,
            "pooled_series": model.pooled_series,
        },
        metrics=model_registry.logged_metrics(model.validation_metrics),
        importance=model.feature_importance(),
        boosters=model.lgbm.boosters if model.lgbm is not None else None,
        tags={**tags, TRAIN_SECONDS_TAG: f"{seconds:.3f}"},
        tables=tables,
    )
    return model, version, seconds


def train_box(
    box: PartitionBox,
    config: TrainingConfig,
    source: SourceDataResource,
    duckdb: DuckDBResource,
    alerts: AlertResource,
    registry: ModelRegistry,
    run_id: str,
    log: Any,
    history_since: dt.date | None = None,
) -> pd.DataFrame:
    """Train, register and gate the model of every (day, warehouse) of a run's box of partitions.

    Nothing is promoted here: each row carries the gate's decision and becomes the record when stored.
    The gate's reference is the record (the stored ``trained_models`` rows, with this run's earlier days
    in place of their stored rows), and the MLflow aliases are first re-synchronised from it.
    """
    tables = source.tables()
    train_config = config.train_config()
    with duckdb.get_connection() as con:
        stored = model_registry.read_record(con, box.warehouse_ids)
    sync_aliases(registry, stored, box.warehouse_ids, log)
    rows: list[dict[str, Any]] = []
    for day in pd.date_range(box.start, box.end, freq="D").date:
        for wh in box.warehouse_ids:
            tags = {PARTITION_TAG: f"{day}|{wh}", RUN_ID_TAG: run_id}
            # A retried step reuses what its earlier attempt registered instead of training again.
            found = registry.find_version(wh, tags)
            if found is None:
                model, version, seconds = train_candidate(
                    registry, day, wh, tags, tables, train_config, duckdb, history_since
                )
            else:
                version, version_tags = found
                log.info(f"{day}|{wh}: reusing v{version}, registered by an earlier attempt of this run")
                model = registry.load(wh, version)
                seconds = float(version_tags.get(TRAIN_SECONDS_TAG, "0"))
            scores = model_registry.CandidateScores.of(model.validation_metrics)
            record = model_registry.with_rows(stored, pd.DataFrame(rows))
            decision = registry.gate(record, wh, day, version, scores, config.promotion_margin)
            log.info(decision.reason)
            if not decision.promoted:
                alerts.send("promotion_rejected", "warning", decision.reason, {"partition": f"{day}|{wh}"})
            rows.append(model_registry.record_row(day, wh, decision, scores, seconds))
    return pd.DataFrame(rows)


def build_model_assets(
    partitions_def: dg.MultiPartitionsDefinition, timezone: str, retry_policy: dg.RetryPolicy = RETRY_POLICY
) -> list[dg.AssetsDefinition]:
    """The model assets for the platform's partitions.

    Args:
        partitions_def: The platform's ``date x warehouse`` partitions.
        timezone: The company timezone (the forecasts' freshness deadline).
        retry_policy: The retry policy of both assets (tests shorten the delays).
    """
    first_day = date_dimension(partitions_def).start.date()

    @dg.asset(
        partitions_def=partitions_def,
        deps=[
            dg.AssetDep("raw_sales", partition_mapping=window_mapping(TRAIN_HISTORY_DAYS)),
            dg.AssetDep("tier_assignments"),
        ],
        backfill_policy=dg.BackfillPolicy.multi_run(max_partitions_per_run=50),
        pool=DUCKDB_POOL,
        dagster_type=TrainedModelsType,
        metadata={"partition_expr": MODEL_PARTITION_EXPR},
        retry_policy=retry_policy,
        group_name=GROUP,
        kinds={"lightgbm", "mlflow", "duckdb"},
    )
    def trained_models(
        context: dg.AssetExecutionContext,
        config: TrainingConfig,
        source: SourceDataResource,
        duckdb: DuckDBResource,
        alerts: AlertResource,
        registry: ModelRegistryResource,
    ) -> Iterator[dg.Output[pd.DataFrame]]:
        """The tiered forecaster of a warehouse trained as of day D, registered in MLflow.

        Global LightGBM (direct, one model per horizon band, Tweedie, training origins over a year)
        for tiers 1-2, blended per tier and band with the SKU's statistical model at the weight that
        minimises the validation error; statistical models for the intermittent tier 3 (an SBA/TSB/SES
        combination unless another model wins the SKU's backtest by 10%, times the SKU's probability of
        still selling under a stop hazard picked on the CV); launch profiles for new
        SKUs; negative-binomial quantiles calibrated on an expanding-window CV (3 origins). A warehouse
        with fewer LightGBM series than `pool_series` (run config, 2,000) adds other warehouses' series
        to the LightGBM's training rows (their `raw_sales` up to D - 1). The
        features of its training origins are built from the declared ``raw_sales`` window with the
        function that builds ``feature_table`` (the same rows for the same origin). The
        version is promoted (serves from D on) only if its validation RMSE beats the version in
        production before D (or seasonal naive's) by the configured margin; this table is the record of
        promotions, and MLflow's ``production`` alias follows it once the rows are stored. Each
        version also carries the better CV baseline, served when a warehouse has no production model.
        """
        models = registry.get_registry()
        box = partition_box(context)
        table = train_box(box, config, source, duckdb, alerts, models, context.run_id, context.log, first_day)
        yield dg.Output(
            table,
            metadata={
                "promoted": int(table["promoted"].sum()),
                "rejected": int((~table["promoted"]).sum()),
                "models": dg.MetadataValue.md(table.drop(columns=["reason"]).to_markdown(index=False)),
                "gate": dg.MetadataValue.md("\n".join(f"- {reason}" for reason in table["reason"])),
            },
        )
        # Dagster resumes the body once the IO manager has stored the rows: the record now holds this
        # run's decisions, and the alias follows it. The rows are stored: a failure here only leaves the
        # alias behind until the next run's sync, so it must not fail (and retrain) the step.
        try:
            with duckdb.get_connection() as con:
                record = model_registry.read_record(con, box.warehouse_ids)
        except Exception as error:
            context.log.warning(f"production aliases not synchronised after the write: {error}")
        else:
            sync_aliases(models, record, box.warehouse_ids, context.log)

    @dg.asset(
        partitions_def=partitions_def,
        deps=[
            dg.AssetDep("raw_sales", partition_mapping=window_mapping(FORECAST_HISTORY_DAYS)),
            dg.AssetDep(C.FEATURE_TABLE),
            dg.AssetDep("tier_assignments"),
            dg.AssetDep("trained_models"),
        ],
        backfill_policy=dg.BackfillPolicy.multi_run(max_partitions_per_run=50),
        pool=DUCKDB_POOL,
        dagster_type=ForecastsType,
        metadata={"partition_expr": MODEL_PARTITION_EXPR},
        freshness_policy=dg.FreshnessPolicy.cron(
            deadline_cron="0 8 * * *", lower_bound_delta=dt.timedelta(hours=2), timezone=timezone
        ),
        retry_policy=retry_policy,
        group_name=GROUP,
        kinds={"lightgbm", "duckdb"},
    )
    def forecasts(
        context: dg.AssetExecutionContext,
        source: SourceDataResource,
        duckdb: DuckDBResource,
        registry: ModelRegistryResource,
    ) -> dg.Output[pd.DataFrame]:
        """Daily forecasts D+1..D+30 for every SKU active in the warehouse at origin D.

        The ML model is served with the partition's ``feature_table`` rows; tiers come from its
        ``tier_assignments``, the statistical models read the ``raw_sales`` window. Point forecast and
        calibrated p50/p90/p95 from the version in production at origin D (the
        latest promotion of an origin <= D in ``trained_models``; tier, model and model version per
        row, the served versions in the metadata), non-negative and capped at a multiple of the SKU's
        history; planner overrides from the source's ``overrides`` table applied on top, with the
        unadjusted values kept. A warehouse with no version promoted by D gets the better CV baseline
        of its latest version trained by D (seasonal naive or MA28; version suffixed "-baseline",
        metadata `baseline_fallback`). Due by 08:00 (company timezone) for yesterday's origin.
        """
        models = registry.get_registry()
        box = partition_box(context)
        days = list(pd.date_range(box.start, box.end, freq="D").date)
        with duckdb.get_connection() as con:
            record = model_registry.read_record(con, box.warehouse_ids)
        try:
            served = model_registry.resolve_served_versions(record, days, box.warehouse_ids)
        except ValueError as error:
            # Nothing trained by that origin: no retry can change it.
            raise dg.Failure(description=str(error), allow_retries=False) from error
        sync_aliases(models, record, box.warehouse_ids, context.log)
        tables = source.tables()
        overrides = tables.overrides
        frames = []
        # One bundle download per served version, not per day of a range run.
        bundles: dict[tuple[str, str], Any] = {}
        for (day, wh), version in served.items():
            if (wh, version.version) not in bundles:
                bundles[(wh, version.version)] = models.load(wh, version.version)
            with duckdb.get_connection() as con:
                history = load_history(con, [wh], day - dt.timedelta(days=FORECAST_HISTORY_DAYS), day)
                tiers = read_partition(con, C.TIER_ASSIGNMENTS, day, wh)
                feature_rows = read_partition(con, C.FEATURE_TABLE, day, wh)
            since = features.history_start(first_day, tables.warehouses, tables.products, wh)
            require_complete_history(history, day, FORECAST_HISTORY_DAYS, since, wh)
            raw = forecasting.forecast_warehouse(
                bundles[(wh, version.version)],
                history,
                tables,
                day,
                wh,
                tiers,
                # The baseline fallback, decided by the registry: no version promoted by that origin.
                baseline=version.baseline,
                # The ML model is served with the materialized features of the partition.
                features=feature_rows,
            )
            adjusted = forecasting.apply_overrides(raw, overrides)
            frames.append(adjusted.assign(**{C.MODEL_VERSION: version.model_version}))
        fallbacks = sorted({wh for (_, wh), version in served.items() if version.baseline})
        if fallbacks:
            context.log.warning(
                f"no production model for {fallbacks} at some origin: served the baseline of the latest version"
            )
        table = stack_rows(frames)
        return dg.Output(
            table,
            metadata={
                "dagster/row_count": len(table),
                "skus": int(table[C.SKU].nunique()),
                "overridden_rows": int(table["override_applied"].sum()),
                "baseline_fallback": ", ".join(fallbacks) or "none",
                # Partition -> the served model_version and the origin that trained it.
                "served_versions": dg.MetadataValue.json(
                    {
                        f"{day}|{wh}": {
                            C.MODEL_VERSION: version.model_version,
                            "trained_origin": version.trained_origin.isoformat(),
                        }
                        for (day, wh), version in served.items()
                    }
                ),
                "rows_by_model": dg.MetadataValue.json(
                    {str(k): int(v) for k, v in table[C.MODEL].value_counts().items()}
                ),
            },
        )

    return [trained_models, forecasts]
