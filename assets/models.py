"""Model assets: ``trained_models`` and ``forecasts`` (origin date x warehouse).

``trained_models`` trains the tiered forecaster of a warehouse as of day D, logs it to MLflow through
dagster-mlflow (params, metrics, feature importance, the LightGBM band models with explicit pip
requirements, the pickled bundle) and applies the promotion gate. ``forecasts`` forecasts D+1..D+30
with the warehouse's *production* model (the latest promoted one, so a day without retraining still
forecasts) and applies the planners' overrides.
"""

import datetime as dt
import time
from typing import Any

import dagster as dg
import duckdb
import mlflow
import pandas as pd
from dagster_duckdb import DuckDBResource

from assets.partitions import DUCKDB_POOL, WAREHOUSE_DIM, PartitionBox, partition_box, window_mapping
from assets.types import ForecastsType, TrainedModelsType
from demand_platform import columns as C
from demand_platform import forecasting, registry
from demand_platform.metrics import WMAPE
from demand_platform.store import load_history
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
BASELINE_SUFFIX = "-baseline"


class TrainingConfig(dg.Config):
    """Run configuration of ``trained_models``.

    The defaults are the domain's ``TrainConfig`` (one place): 80 boosting rounds per band. 300 rounds
    cost 44.5 s a 10,000-SKU warehouse instead of 22 s (37 min instead of 18 min for 50) for a CV WMAPE of
    0.578 instead of 0.574 (``bench/bench_models.py --n-estimators 300``). ``num_threads`` defaults to one
    LightGBM thread; DuckDB assets run one at a time (the pool), so a training run may use every core:
    with 2 on the 2-core development machine the 50 full-size warehouses trained in 17.0 min through
    Dagster, against 24-26 min on one thread (BENCHMARKS.md, "Full size through Dagster").
    """

    promotion_margin: float = 0.01
    n_estimators: int = forecasting.TrainConfig().n_estimators
    num_threads: int = forecasting.TrainConfig().num_threads


def read_partition(
    con: duckdb.DuckDBPyConnection, table: str, origin: dt.date, warehouse_id: str
) -> pd.DataFrame:
    """The rows of one (origin, warehouse) partition of a table keyed by ``origin_date``."""
    frame = con.execute(
        f"SELECT * FROM {table} WHERE {C.WAREHOUSE_ID} = $w AND CAST({C.ORIGIN_DATE} AS DATE) = $d",
        {"w": warehouse_id, "d": origin},
    ).df()
    if frame.empty:
        raise ValueError(f"{table} has no rows for partition {origin}|{warehouse_id}: materialize it first")
    return frame


def train_box(
    box: PartitionBox,
    config: TrainingConfig,
    source: SourceDataResource,
    duckdb: DuckDBResource,
    alerts: AlertResource,
    run_id: str,
    log: Any,
) -> pd.DataFrame:
    """Train, register and gate the model of every (day, warehouse) of a run's box of partitions."""
    products, warehouses = source.required(C.PRODUCTS), source.required(C.WAREHOUSES)
    calendar, campaigns, weather = (
        source.valid(C.CALENDAR),
        source.valid(C.MARKETING_CAMPAIGNS),
        source.valid(C.WEATHER),
    )
    train_config = forecasting.TrainConfig(n_estimators=config.n_estimators, num_threads=config.num_threads)
    rows = []
    for day in pd.date_range(box.start, box.end, freq="D").date:
        for wh in box.warehouse_ids:
            with duckdb.get_connection() as con:
                history = load_history(con, [wh], day - dt.timedelta(days=TRAIN_HISTORY_DAYS), day)
                tiers = read_partition(con, "tier_assignments", day, wh)
            started = time.perf_counter()
            model = forecasting.train_warehouse(
                history, products, warehouses, calendar, campaigns, weather, day, wh, tiers, train_config
            )
            seconds = time.perf_counter() - started
            score, baseline = forecasting.gate_scores(model.validation_metrics)
            wmape_of = {
                m: forecasting.validation_score(model.validation_metrics, m, WMAPE)
                for m in (forecasting.MODEL_TIERED, forecasting.MODEL_SEASONAL_NAIVE)
            }
            metrics = {
                f"{r[forecasting.SEGMENT]}_{r[C.MODEL]}_{m}": r[m]
                for r in model.validation_metrics.to_dict("records")
                for m in (WMAPE, "mae", "rmse", "bias")
            }
            version = registry.log_candidate(
                model,
                wh,
                day.isoformat(),
                params={"train_config": train_config, "warehouse_id": wh},
                metrics=metrics,
                importance=model.feature_importance(),
                boosters=model.lgbm.boosters if model.lgbm is not None else None,
                score=score,
                score_metric=forecasting.GATE_METRIC,
                tags={"dagster_partition": f"{day}|{wh}", "dagster_run_id": run_id},
                tables={
                    "products": products,
                    "warehouses": warehouses,
                    "calendar": calendar,
                    "campaigns": campaigns,
                    "weather": weather,
                },
            )
            decision = registry.promote_if_better(
                wh, version, score, baseline, config.promotion_margin, score_metric=forecasting.GATE_METRIC
            )
            log.info(decision.reason)
            if not decision.promoted:
                alerts.send("promotion_rejected", "warning", decision.reason, {"partition": f"{day}|{wh}"})
            rows.append(
                {
                    C.ORIGIN_DATE: pd.Timestamp(day),
                    C.WAREHOUSE_ID: wh,
                    "model_name": decision.model_name,
                    "version": version,
                    "promoted": decision.promoted,
                    "production_version": decision.production_version,
                    # WMAPE for the planners; the gate's scores (RMSE) are in the reason.
                    "validation_wmape": wmape_of[forecasting.MODEL_TIERED],
                    "reference_wmape": wmape_of[forecasting.MODEL_SEASONAL_NAIVE]
                    if decision.reference == "seasonal_naive"
                    else float("nan"),
                    "reference": decision.reference,
                    "reason": decision.reason,
                    "train_seconds": seconds,
                }
            )
    return pd.DataFrame(rows)


def build_model_assets(
    partitions_def: dg.MultiPartitionsDefinition, timezone: str
) -> list[dg.AssetsDefinition]:
    """The model assets for the platform's partitions."""

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
        # dagster-mlflow's resource is a legacy one: every resource of this asset comes by key.
        required_resource_keys={"mlflow", "source", "duckdb", "alerts"},
        group_name=GROUP,
        kinds={"lightgbm", "mlflow", "duckdb"},
    )
    def trained_models(context: dg.AssetExecutionContext, config: TrainingConfig) -> dg.Output[pd.DataFrame]:
        """The tiered forecaster of a warehouse trained as of day D, registered in MLflow.

        Global LightGBM (direct, one model per horizon band, Tweedie, training origins over a year)
        for tiers 1-2, blended per tier and band with the SKU's statistical model at the weight that
        minimises the validation error; statistical models for the intermittent tier 3 (an SBA/TSB/SES
        combination unless another model wins the SKU's backtest by 10%); launch profiles for new
        SKUs; negative-binomial quantiles calibrated on an expanding-window CV (3 origins). The
        version becomes production only if its validation RMSE beats the current production model's
        (or seasonal naive's) by the configured margin; it also carries the better CV baseline, served when a
        warehouse has no production model.
        """
        source: SourceDataResource = context.resources.source
        duckdb: DuckDBResource = context.resources.duckdb
        alerts: AlertResource = context.resources.alerts
        box = partition_box(context)
        context.resources.mlflow.log_params(
            {"n_estimators": config.n_estimators, "margin": config.promotion_margin}
        )
        try:
            table = train_box(box, config, source, duckdb, alerts, context.run_id, context.log)
        finally:
            # Close the dagster-mlflow run here too: runs executed in one process (the CLI, tests, the
            # UI's ad-hoc materializations lack the job hook) would otherwise log into the same run.
            mlflow.end_run()
        return dg.Output(
            table,
            metadata={
                "promoted": int(table["promoted"].sum()),
                "rejected": int((~table["promoted"]).sum()),
                "models": dg.MetadataValue.md(table.drop(columns=["reason"]).to_markdown(index=False)),
                "gate": dg.MetadataValue.md("\n".join(f"- {reason}" for reason in table["reason"])),
            },
        )

    @dg.asset(
        partitions_def=partitions_def,
        deps=[
            dg.AssetDep("raw_sales", partition_mapping=window_mapping(FORECAST_HISTORY_DAYS)),
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

        Point forecast and calibrated p50/p90/p95 from the warehouse's production model (tier,
        model and model version per row), non-negative and capped at a multiple of the SKU's
        history; planner overrides from the source's ``overrides`` table applied on top, with the
        unadjusted values kept. A warehouse whose first model the gate refused gets the better
        CV baseline of its latest model (seasonal naive or MA28; version suffixed "-baseline",
        metadata `baseline_fallback`). Due by 08:00 (company timezone) for yesterday's origin.
        """
        box = partition_box(context)
        products, warehouses = source.required(C.PRODUCTS), source.required(C.WAREHOUSES)
        calendar, campaigns, weather = (
            source.valid(C.CALENDAR),
            source.valid(C.MARKETING_CAMPAIGNS),
            source.valid(C.WEATHER),
        )
        overrides = source.valid(C.OVERRIDES)
        frames = []
        fallbacks: set[str] = set()
        # One registry look-up and bundle download per warehouse, not per day of a range run.
        served_by_wh = {}
        for wh in box.warehouse_ids:
            production = registry.production(wh)
            # Without a production model (the gate refused the first one) serve the baseline it lost to.
            served = production if production is not None else registry.latest(wh)
            if served is None:
                raise ValueError(f"no model for warehouse {wh}: materialize trained_models first")
            if production is None:
                fallbacks.add(wh)
            served_by_wh[wh] = served
        for day in pd.date_range(box.start, box.end, freq="D").date:
            for wh in box.warehouse_ids:
                fallback = wh in fallbacks
                version, model = served_by_wh[wh]
                with duckdb.get_connection() as con:
                    history = load_history(con, [wh], day - dt.timedelta(days=FORECAST_HISTORY_DAYS), day)
                    tiers = read_partition(con, "tier_assignments", day, wh)
                raw = forecasting.forecast_warehouse(
                    model,
                    history,
                    products,
                    warehouses,
                    calendar,
                    campaigns,
                    weather,
                    day,
                    wh,
                    tiers,
                    baseline=fallback,
                )
                adjusted = forecasting.apply_overrides(raw, overrides)
                frames.append(
                    adjusted.assign(**{C.MODEL_VERSION: f"{version}{BASELINE_SUFFIX if fallback else ''}"})
                )
        if fallbacks:
            context.log.warning(
                f"no production model for {sorted(fallbacks)}: served the baseline of the latest version"
            )
        table = pd.concat(frames, ignore_index=True)
        return dg.Output(
            table,
            metadata={
                "dagster/row_count": len(table),
                "skus": int(table[C.SKU].nunique()),
                "overridden_rows": int(table["override_applied"].sum()),
                "baseline_fallback": ", ".join(sorted(fallbacks)) or "none",
                "rows_by_model": dg.MetadataValue.json(
                    {str(k): int(v) for k, v in table[C.MODEL].value_counts().items()}
                ),
            },
        )

    return [trained_models, forecasts]
