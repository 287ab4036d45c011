"""Tests of the tiered forecasting pipeline of one warehouse on small synthetic worlds.

The main world: 40 SKUs in warehouse W1 over 200 days from 2023-06-01, gamma-Poisson demand with a strong
weekly profile (Saturday/Sunday ~3x Monday); SKUs S030-S037 are intermittent (rate 0.1-0.4 a day), S038
never sells and S039 was launched 20 days before the last day (cold start there).
"""

import dataclasses
import pickle

import numpy as np
import pandas as pd
import pytest

from demand_platform import columns as C
from demand_platform import forecasting as FC
from demand_platform.calendar import build_calendar
from demand_platform.days import to_day
from demand_platform.features import build_training_features
from demand_platform.forecasting import (
    FORECAST_COLUMNS,
    MODEL_COLD_START,
    MODEL_ENSEMBLE,
    MODEL_LGBM,
    MODEL_MOVING_AVERAGE_28,
    MODEL_TIERED,
    SEGMENT,
    TrainConfig,
    WarehouseModel,
    apply_overrides,
    backtest_warehouse,
    forecast_warehouse,
    seasonal_window_average,
    train_warehouse,
)
from demand_platform.forecasting.baselines import fit_baseline
from demand_platform.forecasting.cold_start import launch_prior_days
from demand_platform.forecasting.components import choose_stat
from demand_platform.forecasting.ensemble import ensemble_weights
from demand_platform.forecasting.quantiles import nb_ppf
from demand_platform.forecasting.serving import served_features
from demand_platform.forecasting.state import OriginState, warehouse_history
from demand_platform.metrics import wmape
from demand_platform.models.model_registry import weekly_stat_models
from demand_platform.models.statistical import (
    STAT_MODELS,
    StatCombination,
    moving_average,
    select_by_backtest,
)
from demand_platform.tables import SourceTables
from demand_platform.tiering import ROUTE, ROUTE_COLD_START, ROUTE_GLOBAL_ML, assign_tiers

WAREHOUSE = "W1"
WEEKLY = np.array([0.6, 0.7, 0.8, 1.0, 1.2, 1.7, 2.0])  # Monday .. Sunday
HORIZON = 30
# Small but complete settings: every stage runs, in about a second per training on the 40-SKU world.
CONFIG = TrainConfig(min_data_in_leaf=20, n_estimators=40, max_rows=20_000)


def make_world(
    n_skus: int = 40,
    n_days: int = 200,
    seed: int = 0,
    start: str = "2023-06-01",
    n_intermittent: int = 8,
    launch_days_before_end: int = 20,
    n_stopped: int = 0,
    stop_days_before_end: int = 50,
) -> dict[str, object]:
    """A one-warehouse world: weekly gamma-Poisson SKUs, an intermittent block, a dead SKU, a new SKU.

    SKUs ``n_skus - n_intermittent - 2 .. n_skus - 3`` are intermittent, ``n_skus - 2`` never sells and
    ``n_skus - 1`` is launched ``launch_days_before_end`` days before the last day (no rows before); SKUs
    ``0 .. n_stopped - 1`` sell nothing from ``stop_days_before_end`` days before the last day on.
    """
    rng = np.random.default_rng(seed)
    dates = pd.date_range(start, periods=n_days, freq="D")
    skus = np.array([f"S{i:03d}" for i in range(n_skus)], dtype=object)
    categories = np.array(["food", "toys", "home"], dtype=object)[np.arange(n_skus) % 3]
    rate = rng.gamma(2.0, 4.0, n_skus)
    rate[n_skus - n_intermittent - 2 : n_skus - 2] = rng.uniform(0.1, 0.4, n_intermittent)
    weekly = WEEKLY[dates.dayofweek.to_numpy()]
    noise = rng.gamma(10.0, 0.1, (n_skus, n_days))
    quantity = rng.poisson(rate[:, None] * weekly[None, :] * noise).astype(np.float64)
    quantity[n_skus - 2] = 0.0
    quantity[:n_stopped, n_days - stop_days_before_end :] = 0.0
    launch = np.full(n_skus, dates[0] - pd.Timedelta(days=400))
    launch_column = n_days - launch_days_before_end
    launch[n_skus - 1] = dates[launch_column]
    quantity[n_skus - 1, :launch_column] = np.nan
    sku_index, day_index = np.nonzero(~np.isnan(quantity))
    qty = quantity[sku_index, day_index]
    price = np.round(rng.uniform(2, 20, n_skus), 2)
    history = pd.DataFrame(
        {
            C.SKU: skus[sku_index],
            C.WAREHOUSE_ID: WAREHOUSE,
            C.DATE: dates[day_index],
            C.QUANTITY: qty,
            C.REVENUE: qty * price[sku_index],
            C.N_ORDERS: qty.astype(np.int64),
        }
    )
    products = pd.DataFrame(
        {
            C.SKU: skus,
            C.CATEGORY: categories,
            C.SUB_CATEGORY: categories + "_1",
            C.BRAND: "acme",
            C.PRICE: price,
            C.WEIGHT_KG: 1.0,
            C.IS_SEASONAL: False,
            C.LAUNCH_DATE: pd.to_datetime(launch),
        }
    )
    warehouses = pd.DataFrame(
        {
            C.WAREHOUSE_ID: [WAREHOUSE],
            C.LOCATION_CITY: ["Austin"],
            C.LOCATION_STATE: ["TX"],
            C.LATITUDE: [30.3],
            C.LONGITUDE: [-97.7],
            C.CAPACITY_UNITS: [10_000],
            C.OPERATIONAL_SINCE: pd.to_datetime(["2020-01-01"]),
        }
    )
    calendar = build_calendar(dates[0] - pd.Timedelta(days=400), dates[-1] + pd.Timedelta(days=400))
    return {
        "history": history,
        "products": products,
        "warehouses": warehouses,
        "calendar": calendar,
        "dates": dates,
        "skus": skus,
    }


def _train(world: dict, train_date: pd.Timestamp, history: pd.DataFrame | None = None, config=CONFIG):
    history = world["history"] if history is None else history
    tiers = assign_tiers(history, world["products"], train_date)
    model = train_warehouse(
        history,
        SourceTables(world["products"], world["warehouses"], calendar=world["calendar"]),
        train_date,
        WAREHOUSE,
        tiers,
        config,
    )
    return model, tiers


def _forecast(world: dict, model: WarehouseModel, origin: pd.Timestamp, history=None, tiers=None):
    history = world["history"] if history is None else history
    return forecast_warehouse(
        model,
        history,
        SourceTables(world["products"], world["warehouses"], calendar=world["calendar"]),
        origin,
        WAREHOUSE,
        tiers,
    )


@pytest.fixture(scope="module")
def world() -> dict:
    return make_world()


@pytest.fixture(scope="module")
def at_end(world: dict) -> dict:
    """Model trained on the last day, its tiers and forecasts at that day (the new SKU is cold start)."""
    end = world["dates"][-1]
    model, tiers = _train(world, end)
    return {
        "origin": end,
        "model": model,
        "tiers": tiers,
        "forecasts": _forecast(world, model, end, tiers=tiers),
    }


@pytest.fixture(scope="module")
def at_mid(world: dict) -> dict:
    """Model trained 60 days before the end, with forecasts at that date (60 days of actuals after)."""
    origin = world["dates"][-61]
    model, tiers = _train(world, origin)
    return {"origin": origin, "model": model, "tiers": tiers, "forecasts": _forecast(world, model, origin)}


# --- output contract and invariants --------------------------------------------------------------------------------------
def _kind(model_name: str) -> str:
    return model_name if model_name in (MODEL_ENSEMBLE, MODEL_LGBM, MODEL_COLD_START) else "statistical"


def test_output_columns_and_one_row_per_active_sku_and_horizon(world: dict, at_end: dict) -> None:
    forecasts = at_end["forecasts"]
    assert tuple(forecasts.columns) == FORECAST_COLUMNS
    active = set(world["history"].loc[world["history"][C.DATE] <= at_end["origin"], C.SKU])
    assert set(forecasts[C.SKU]) == active == set(at_end["tiers"][C.SKU])
    counts = forecasts.groupby(C.SKU)[C.HORIZON].agg(["size", "min", "max", "nunique"])
    assert (counts["size"] == HORIZON).all() and (counts["nunique"] == HORIZON).all()
    assert (counts["min"] == 1).all() and (counts["max"] == HORIZON).all()
    assert (forecasts[C.ORIGIN_DATE] == at_end["origin"]).all()
    expected_target = forecasts[C.ORIGIN_DATE] + pd.to_timedelta(forecasts[C.HORIZON], unit="D")
    assert (forecasts[C.TARGET_DATE] == expected_target).all()
    assert (forecasts[C.WAREHOUSE_ID] == WAREHOUSE).all()


def _assert_invariants(rows: pd.DataFrame) -> None:
    values = rows[[C.FORECAST, C.P50, C.P90, C.P95]].to_numpy()
    assert np.isfinite(values).all()
    assert (values >= 0).all()
    assert (rows[C.P50] <= rows[C.P90]).all() and (rows[C.P90] <= rows[C.P95]).all()
    assert (rows.groupby(C.SKU).size() == HORIZON).all()
    # Each SKU is forecast by exactly one model over the whole horizon.
    assert (rows.groupby(C.SKU)[C.MODEL].nunique() == 1).all()


@pytest.mark.parametrize("kind", [MODEL_ENSEMBLE, "statistical", MODEL_COLD_START])
def test_invariants_per_model_kind(at_end: dict, kind: str) -> None:
    forecasts = at_end["forecasts"]
    rows = forecasts.loc[forecasts[C.MODEL].map(_kind) == kind]
    assert not rows.empty, f"no SKU forecast by {kind}"
    _assert_invariants(rows)


def _with_tier_weights(model: WarehouseModel, tier: int, weight: float) -> WarehouseModel:
    weights = model.ensemble_weights.copy()
    weights.loc[weights[C.TIER] == tier, FC.WEIGHT_LGBM] = weight
    weights.loc[weights[C.TIER] == tier, FC.WEIGHT_STAT] = 1.0 - weight
    return dataclasses.replace(model, ensemble_weights=weights)


def test_lightgbm_alone_where_the_weights_keep_it_alone(world: dict, at_end: dict) -> None:
    """Tier-2 weights of 1 leave the LightGBM forecast alone (model ``lgbm``); weights of 0 give the
    statistical forecast of the same SKUs."""
    tiers = at_end["tiers"]
    tier2 = set(tiers.loc[(tiers[C.TIER] == 2) & (tiers[ROUTE] == "global_ml"), C.SKU])
    assert tier2
    alone = _forecast(world, _with_tier_weights(at_end["model"], 2, 1.0), at_end["origin"], tiers=tiers)
    lgbm_rows = alone.loc[alone[C.MODEL] == MODEL_LGBM]
    assert set(lgbm_rows[C.SKU]) == tier2
    _assert_invariants(lgbm_rows)
    stat = _forecast(world, _with_tier_weights(at_end["model"], 2, 0.0), at_end["origin"], tiers=tiers)
    both = lgbm_rows.merge(stat, on=[C.SKU, C.HORIZON], suffixes=("_lgbm", "_stat"))
    assert not np.allclose(both[f"{C.FORECAST}_lgbm"], both[f"{C.FORECAST}_stat"])
    assert (both[f"{C.MODEL}_stat"] == MODEL_ENSEMBLE).all()


def test_ensemble_weight_follows_the_validation_error() -> None:
    """The blend weight is 1 when the LightGBM is exact, 0 when the statistical model is, and in between
    (minimising the MSE) when both err on opposite sides."""
    rng = np.random.default_rng(0)
    actual = rng.poisson(5.0, (300, HORIZON)).astype(np.float64)
    noise = rng.normal(0.0, 2.0, actual.shape)
    tier = np.full(300, 2)
    cases = {1.0: (actual, actual + noise), 0.0: (actual + noise, actual), 0.5: (actual + 1.0, actual - 1.0)}
    for expected, (lgbm, stat) in cases.items():
        table = ensemble_weights(actual, lgbm, stat, tier, CONFIG)
        tier2 = table.loc[table[C.TIER] == 2, FC.WEIGHT_LGBM].to_numpy()
        assert np.allclose(tier2, expected, atol=1e-9)


def test_routing_by_tier(at_end: dict) -> None:
    forecasts = at_end["forecasts"].drop_duplicates(C.SKU).set_index(C.SKU)
    tiers = at_end["tiers"].set_index(C.SKU)
    weights = at_end["model"].ensemble_weights
    tier2_alone = (weights.loc[weights[C.TIER] == 2, FC.WEIGHT_LGBM] == 1.0).all()
    n_old_cold = 0
    for sku, row in forecasts.iterrows():
        route, tier = tiers.loc[sku, ROUTE], tiers.loc[sku, C.TIER]
        if route == ROUTE_COLD_START and tiers.loc[sku, "age_days"] < CONFIG.cold_start_max_age:
            assert row[C.MODEL] == MODEL_COLD_START
        elif route == ROUTE_COLD_START:
            # Old SKUs in cold start for too few selling days (S038 never sells) get statistical models.
            n_old_cold += 1
            assert row[C.MODEL] in CONFIG.stat_models
        elif route == "global_ml":
            alone = tier == 2 and tier2_alone
            assert row[C.MODEL] == (MODEL_LGBM if alone else MODEL_ENSEMBLE)
        else:
            assert row[C.MODEL] in CONFIG.stat_models
    assert n_old_cold >= 1


def test_cold_start_sku_gets_the_launch_profile(world: dict, at_end: dict) -> None:
    new_sku = world["skus"][-1]
    rows = at_end["forecasts"].loc[at_end["forecasts"][C.SKU] == new_sku]
    assert (rows[C.MODEL] == MODEL_COLD_START).all()
    assert (rows[C.FORECAST] > 0).all()  # a new SKU of a selling category is not forecast at zero
    assert at_end["model"].cold_start.n_launches >= 1


def test_all_zero_series_forecasts_zero(world: dict, at_end: dict) -> None:
    dead = world["skus"][-2]
    rows = at_end["forecasts"].loc[at_end["forecasts"][C.SKU] == dead]
    assert len(rows) == HORIZON
    assert rows[[C.FORECAST, C.P50, C.P90, C.P95]].to_numpy().max() <= 1e-9


def test_outputs_capped_at_three_times_the_yearly_max(world: dict, at_end: dict) -> None:
    history = world["history"]
    peak = history.loc[history[C.DATE] <= at_end["origin"]].groupby(C.SKU)[C.QUANTITY].max()
    forecasts = at_end["forecasts"]
    old = forecasts.loc[forecasts[C.MODEL] != MODEL_COLD_START]
    cap = 3.0 * old[C.SKU].map(peak).to_numpy()
    assert (old[C.P95].to_numpy() <= cap + 1e-9).all()


def test_model_is_picklable_and_forecasts_the_same_after_a_round_trip(world: dict, at_end: dict) -> None:
    restored = pickle.loads(pickle.dumps(at_end["model"]))
    again = _forecast(world, restored, at_end["origin"], tiers=at_end["tiers"])
    pd.testing.assert_frame_equal(again, at_end["forecasts"])


def test_model_contents(at_end: dict) -> None:
    model = at_end["model"]
    assert model.train_date == at_end["origin"]
    assert len(model.cv_origin_dates) == CONFIG.cv_origins
    assert all(day + pd.Timedelta(days=HORIZON) <= model.train_date for day in model.cv_origin_dates)
    weights = model.ensemble_weights
    assert ((weights[FC.WEIGHT_LGBM] >= 0) & (weights[FC.WEIGHT_LGBM] <= 1)).all()
    assert len(weights) == len(FC.ENSEMBLE_TIERS) * len(CONFIG.bands)
    assert set(weights[C.TIER]) == set(FC.ENSEMBLE_TIERS)
    calibration = model.calibration
    assert set(calibration[SEGMENT]) == set(FC.CALIBRATION_SEGMENTS)
    z = calibration.pivot_table(index=[SEGMENT, FC.BAND], columns=FC.QUANTILE, values=FC.CALIBRATED_LEVEL)
    assert (np.diff(z.to_numpy(), axis=1) >= 0).all()  # calibrated levels increase with the level
    metrics = model.validation_metrics
    assert {MODEL_TIERED, "seasonal_naive", MODEL_MOVING_AVERAGE_28} <= set(metrics[C.MODEL])
    assert {"tier_1", "tier_2", "tier_3", "all"} <= set(metrics[SEGMENT])
    importance = model.feature_importance()
    assert set(importance["band"]) == {"1-7", "8-14", "15-30"}
    assert np.allclose(importance.groupby("band")["gain_share"].sum(), 1.0)


def test_a_model_forecasts_later_origins_with_skus_unknown_at_training(world: dict, at_mid: dict) -> None:
    end = world["dates"][-1]
    forecasts = _forecast(world, at_mid["model"], end)
    assert set(forecasts[C.SKU]) == set(world["skus"])  # S039 launched after the training date
    assert (forecasts.loc[forecasts[C.SKU] == world["skus"][-1], C.MODEL] == MODEL_COLD_START).all()
    assert (forecasts[C.P50] <= forecasts[C.P90]).all() and (forecasts[C.P90] <= forecasts[C.P95]).all()
    assert (forecasts[[C.FORECAST, C.P50]] >= 0).all().all()


def test_baseline_fallback_serves_the_better_cv_baseline(world: dict, at_end: dict) -> None:
    """A warehouse without a production model gets the baseline the CV found better: its forecasts are that
    baseline's on the history (28-day mean or last week's values), launch profiles stay for cold start."""
    model = at_end["model"]
    metrics = model.validation_metrics
    overall = metrics.loc[metrics[SEGMENT] == "all"].set_index(C.MODEL)["wmape"]
    expected = overall[["seasonal_naive", MODEL_MOVING_AVERAGE_28]].idxmin()
    assert model.baseline is not None and model.baseline.name == expected
    origin = at_end["origin"]
    served = forecast_warehouse(
        model,
        world["history"],
        SourceTables(world["products"], world["warehouses"], calendar=world["calendar"]),
        origin,
        WAREHOUSE,
        at_end["tiers"],
        baseline=True,
    )
    cold = served[C.MODEL] == MODEL_COLD_START
    assert set(served.loc[~cold, C.MODEL]) == {expected}
    assert set(served.loc[cold, C.SKU]) == set(
        at_end["forecasts"].loc[lambda f: f[C.MODEL] == MODEL_COLD_START, C.SKU]
    )
    _assert_invariants(served)
    history = world["history"].pivot_table(index=C.SKU, columns=C.DATE, values=C.QUANTITY).loc[:, :origin]
    last28 = history.iloc[:, -28:].fillna(0.0)
    peak = history.max(axis=1)
    for sku, rows in served.loc[~cold].groupby(C.SKU):
        point = rows.sort_values(C.HORIZON)[C.FORECAST].to_numpy()
        if expected == MODEL_MOVING_AVERAGE_28:
            reference = np.full(HORIZON, last28.loc[sku].mean())
        else:
            week = last28.loc[sku].to_numpy()[-7:]
            reference = np.resize(week, HORIZON)
        cap = 3.0 * peak[sku]
        assert np.allclose(point, np.minimum(reference, cap))
    assert not np.allclose(served[C.FORECAST], at_end["forecasts"][C.FORECAST])


def test_served_with_the_feature_table_rows_forecasts_the_same(world: dict, at_end: dict) -> None:
    """Serving with a warehouse's feature table (all SKUs, another origin too) equals serving with the
    features rebuilt from the history; a table missing a served SKU's row is refused, naming the SKU."""
    origin, tables = (
        at_end["origin"],
        SourceTables(world["products"], world["warehouses"], calendar=world["calendar"]),
    )
    table = build_training_features(
        world["history"], tables, [origin - pd.Timedelta(days=1), origin], WAREHOUSE
    )
    served = forecast_warehouse(
        at_end["model"], world["history"], tables, origin, WAREHOUSE, at_end["tiers"], features=table
    )
    pd.testing.assert_frame_equal(served, at_end["forecasts"], check_exact=True)

    ml_sku = at_end["tiers"].loc[at_end["tiers"][ROUTE] == ROUTE_GLOBAL_ML, C.SKU].iloc[0]
    gap = table.loc[~((table[C.SKU] == ml_sku) & (table[C.ORIGIN_DATE] == origin))]
    with pytest.raises(ValueError, match=f"feature_table has no row for 1 SKU.*{ml_sku}"):
        forecast_warehouse(
            at_end["model"], world["history"], tables, origin, WAREHOUSE, at_end["tiers"], features=gap
        )


def test_origin_before_training_date_is_refused(world: dict, at_end: dict) -> None:
    with pytest.raises(ValueError, match="before the training date"):
        _forecast(world, at_end["model"], at_end["origin"] - pd.Timedelta(days=1))


# --- leakage and determinism ----------------------------------------------------------------------------------------------
def test_history_after_the_training_date_changes_nothing(world: dict, at_mid: dict) -> None:
    origin = at_mid["origin"]
    history = world["history"].copy()
    later = history[C.DATE] > origin
    history.loc[later, C.QUANTITY] = history.loc[later, C.QUANTITY] * 1000.0 + 500.0
    history.loc[later, C.REVENUE] = history.loc[later, C.REVENUE] * 1000.0
    intruder = pd.DataFrame(
        {
            C.SKU: "S999",
            C.WAREHOUSE_ID: WAREHOUSE,
            C.DATE: pd.date_range(origin + pd.Timedelta(days=1), periods=10),
            C.QUANTITY: 1e6,
            C.REVENUE: 1e7,
            C.N_ORDERS: 1,
        }
    )
    perturbed = pd.concat([history, intruder], ignore_index=True)
    model, tiers = _train(world, origin, history=perturbed)
    forecasts = _forecast(world, model, origin, history=perturbed, tiers=tiers)
    pd.testing.assert_frame_equal(forecasts, at_mid["forecasts"])
    pd.testing.assert_frame_equal(model.validation_metrics, at_mid["model"].validation_metrics)
    pd.testing.assert_frame_equal(model.calibration, at_mid["model"].calibration)


def test_same_inputs_same_forecasts(world: dict, at_end: dict) -> None:
    model, tiers = _train(world, at_end["origin"])
    pd.testing.assert_frame_equal(_forecast(world, model, at_end["origin"], tiers=tiers), at_end["forecasts"])
    pd.testing.assert_frame_equal(model.validation_metrics, at_end["model"].validation_metrics)


# --- accuracy -----------------------------------------------------------------------------------------------------------------
def test_weekly_series_beat_the_28_day_moving_average(world: dict, at_mid: dict) -> None:
    origin = at_mid["origin"]
    history = world["history"]
    top = at_mid["tiers"].sort_values("revenue_rank")[C.SKU].head(5).to_numpy()
    panel = history.loc[history[C.SKU].isin(top)].pivot_table(
        index=C.SKU, columns=C.DATE, values=C.QUANTITY, aggfunc="sum"
    )
    past = panel.loc[top, panel.columns <= origin].to_numpy()
    future = panel.loc[top, (panel.columns > origin) & (panel.columns <= origin + pd.Timedelta(days=HORIZON))]
    forecasts = at_mid["forecasts"].set_index([C.SKU, C.HORIZON])[C.FORECAST].unstack().loc[top].to_numpy()
    model_error = wmape(future.to_numpy(), forecasts)
    baseline_error = wmape(future.to_numpy(), moving_average(past, HORIZON, window=28))
    assert model_error < 0.8 * baseline_error


def test_backtest_coverage_close_to_nominal_on_a_stationary_world() -> None:
    """200 stationary weekly SKUs x 300 days, one origin 30 days before the end: 5,970 scored SKU-days.

    On three seeds the pooled coverage was 0.907-0.912 (p90) and 0.950-0.955 (p95); the assertion allows
    3 points (p90) and 2.5 points (p95) around the nominal level.
    """
    world = make_world(n_skus=200, n_days=300, seed=1, n_intermittent=50)
    origin = world["dates"][-31]
    table = backtest_warehouse(
        world["history"],
        SourceTables(world["products"], world["warehouses"], calendar=world["calendar"]),
        WAREHOUSE,
        [origin],
        TrainConfig(min_data_in_leaf=20, n_estimators=60),
    )
    assert set(table[C.ORIGIN_DATE].dropna()) == {origin}
    pooled = table.loc[table[C.ORIGIN_DATE].isna() & (table[SEGMENT] == "all")].set_index(C.MODEL)
    assert abs(pooled.loc[MODEL_TIERED, "coverage_p90"] - 0.90) <= 0.03
    assert abs(pooled.loc[MODEL_TIERED, "coverage_p95"] - 0.95) <= 0.025
    assert pooled.loc[MODEL_TIERED, "wmape"] < pooled.loc[MODEL_MOVING_AVERAGE_28, "wmape"]
    assert pooled.loc[MODEL_TIERED, "wmape"] < pooled.loc["seasonal_naive", "wmape"]
    assert pooled.loc[MODEL_TIERED, "n_obs"] == pooled.loc[MODEL_MOVING_AVERAGE_28, "n_obs"] > 5000


def test_p50_follows_each_skus_own_zero_chance_when_zeros_dominate_the_pool() -> None:
    """150 of 200 SKUs sell on ~25% of days; every segment uses the pooled calibration (min rows huge), so
    most validation days of the pool are zeros. The old pooled additive offsets set every p50 to 0 in that
    case (Online Retail UK); a steady seller's p50 must stay near its mean, a sporadic one's at 0, and the
    p90 must still cover ~90% of the held-out days."""
    world = make_world(n_skus=200, n_days=300, seed=4, n_intermittent=150)
    origin = world["dates"][-31]
    config = dataclasses.replace(CONFIG, min_calibration_rows=10**9)
    history = world["history"].loc[world["history"][C.DATE] <= origin]
    model, tiers = _train(world, origin, history=history, config=config)
    assert (model.calibration[FC.CALIBRATION_SOURCE] == "all").all()
    forecasts = _forecast(world, model, origin, tiers=tiers)
    per_sku = forecasts.groupby(C.SKU)[[C.FORECAST, C.P50]].mean()
    steady = per_sku.loc[per_sku[C.FORECAST] >= 5.0]
    sporadic = per_sku.loc[per_sku[C.FORECAST] <= 0.3]
    assert len(steady) >= 20 and len(sporadic) >= 50
    assert ((steady[C.P50] >= 0.7 * steady[C.FORECAST]) & (steady[C.P50] <= 1.3 * steady[C.FORECAST])).all()
    assert (sporadic[C.P50] == 0).all()
    actual = world["history"].set_index([C.SKU, C.DATE])[C.QUANTITY]
    keys = pd.MultiIndex.from_arrays([forecasts[C.SKU], pd.to_datetime(forecasts[C.TARGET_DATE])])
    realised = actual.reindex(keys).to_numpy()
    scored = ~np.isnan(realised)
    share_zero = float((realised[scored] == 0).mean())
    assert share_zero > 0.5
    coverage = float((realised[scored] <= forecasts[C.P90].to_numpy()[scored]).mean())
    assert abs(coverage - 0.90) <= 0.03


# --- overrides ------------------------------------------------------------------------------------------------------------------
def _overrides(origin: pd.Timestamp, rows: list[tuple]) -> pd.DataFrame:
    day = pd.Timedelta(days=1)
    return pd.DataFrame(
        [
            (sku, warehouse, origin + a * day, origin + b * day, m, v, author, why)
            for sku, warehouse, a, b, m, v, author, why in rows
        ],
        columns=list(FC.OVERRIDE_COLUMNS),
    )


def test_overrides_multiplier_absolute_and_wildcard(at_end: dict) -> None:
    forecasts = at_end["forecasts"]
    origin = at_end["origin"]
    overrides = _overrides(
        origin,
        [
            ("S000", WAREHOUSE, 1, 5, 2.0, None, "ann", "promo"),
            ("S001", WAREHOUSE, 10, 12, None, 7.0, "bob", "contract"),
            (None, WAREHOUSE, 1, 30, 1.1, None, "cat", "season"),
            ("S002", "W9", 1, 30, 5.0, None, "dan", "other warehouse"),
        ],
    )
    out = apply_overrides(forecasts, overrides)
    assert len(out) == len(forecasts)
    for column in (C.FORECAST, C.P50, C.P90, C.P95):
        pd.testing.assert_series_equal(
            out[column + FC.UNADJUSTED_SUFFIX], forecasts[column], check_names=False
        )
    key = out.set_index([C.SKU, C.HORIZON])
    base = forecasts.set_index([C.SKU, C.HORIZON])
    for h in range(1, 6):  # the SKU-specific multiplier beats the warehouse-wide one
        assert key.loc[("S000", h), C.FORECAST] == pytest.approx(2.0 * base.loc[("S000", h), C.FORECAST])
        assert key.loc[("S000", h), C.P95] == pytest.approx(2.0 * base.loc[("S000", h), C.P95])
        assert key.loc[("S000", h), FC.OVERRIDE_AUTHOR_OUT] == "ann"
    assert key.loc[("S000", 6), C.FORECAST] == pytest.approx(1.1 * base.loc[("S000", 6), C.FORECAST])
    for h in (10, 11, 12):
        assert key.loc[("S001", h), C.FORECAST] == pytest.approx(7.0)
        ratio = 7.0 / base.loc[("S001", h), C.FORECAST]
        assert key.loc[("S001", h), C.P90] == pytest.approx(ratio * base.loc[("S001", h), C.P90])
        assert key.loc[("S001", h), FC.OVERRIDE_REASON_OUT] == "contract"
    assert key.loc[("S002", 3), C.FORECAST] == pytest.approx(1.1 * base.loc[("S002", 3), C.FORECAST])
    assert out[FC.OVERRIDE_APPLIED].all()
    assert (out[C.P50] <= out[C.P90]).all() and (out[C.P90] <= out[C.P95]).all()


def test_overrides_outside_the_range_or_absent_leave_the_forecasts(at_end: dict) -> None:
    forecasts = at_end["forecasts"]
    out = apply_overrides(
        forecasts, _overrides(at_end["origin"], [("S000", WAREHOUSE, 40, 50, 3.0, None, "a", "b")])
    )
    pd.testing.assert_series_equal(out[C.FORECAST], forecasts[C.FORECAST])
    assert not out[FC.OVERRIDE_APPLIED].any() and out[FC.OVERRIDE_AUTHOR_OUT].isna().all()
    empty = apply_overrides(forecasts, None)
    pd.testing.assert_series_equal(empty[C.P95], forecasts[C.P95])
    with pytest.raises(ValueError, match="already applied"):
        apply_overrides(empty, None)


@pytest.mark.parametrize(("multiplier", "absolute"), [(2.0, 3.0), (None, None), (-1.0, None)])
def test_invalid_overrides_are_refused(
    at_end: dict, multiplier: float | None, absolute: float | None
) -> None:
    overrides = _overrides(at_end["origin"], [("S000", WAREHOUSE, 1, 2, multiplier, absolute, "a", "b")])
    with pytest.raises(ValueError):
        apply_overrides(at_end["forecasts"], overrides)


# --- pieces -------------------------------------------------------------------------------------------------------------------
def test_seasonal_window_average_matches_its_definition() -> None:
    y = np.arange(28, dtype=np.float64)[None, :].repeat(2, axis=0)
    y[1, :10] = np.nan  # launched on day 10: only the weeks from then on count
    forecast = seasonal_window_average(y, 9, season=7, windows=4)
    expected = np.array([(28 + p - 7 * np.arange(1, 5)).mean() for p in range(7)])
    assert np.allclose(forecast[0, :7], expected)
    assert np.allclose(forecast[0, 7:], expected[:2])
    valid = [[d for d in (28 + p - 7 * m for m in range(1, 5)) if d >= 10] for p in range(7)]
    assert np.allclose(forecast[1, :7], [np.mean(v) for v in valid])


def test_launch_prior_is_weak_when_launches_differ_and_capped_when_alike() -> None:
    """Empirical-Bayes strength of the launch profile: launch levels drawn from Gamma(mean 10, variance
    s2) give b = mean / s2 pseudo-days (weak for wholesale-like spreads); identical launch levels hit the
    cap; too few launches keep the cap."""
    rng = np.random.default_rng(0)
    days = np.full(4000, 60.0)
    spread = rng.gamma(0.25, 40.0, 4000)  # mean 10, variance 400 -> b = 0.025 day
    total = rng.poisson(spread * days)
    b = launch_prior_days(total.astype(float), days, float(total.sum() / days.sum()), 14.0)
    assert b == pytest.approx(10.0 / 400.0, rel=0.25)
    alike = rng.poisson(10.0 * days).astype(float)
    assert launch_prior_days(alike, days, float(alike.sum() / days.sum()), 14.0) == 14.0
    assert launch_prior_days(total[:5].astype(float), days[:5], 10.0, 14.0) == 14.0


def test_combination_is_the_mean_of_sba_tsb_and_ses() -> None:
    rng = np.random.default_rng(3)
    y = rng.poisson(0.7, (50, 200)).astype(np.float64)
    members = [STAT_MODELS[name].forecast(y, 30) for name in ("croston_sba", "tsb", "auto_ses")]
    assert np.allclose(StatCombination().forecast(y, 30), np.mean(members, axis=0))


def test_combination_in_a_backtest_scores_like_the_mean_of_its_members() -> None:
    """select_by_backtest reuses the members' forecasts for the combination: same errors as computing it
    on its own."""
    rng = np.random.default_rng(4)
    y = rng.poisson(1.5, (40, 200)).astype(np.float64)
    models = [StatCombination(), STAT_MODELS["tsb"], STAT_MODELS["croston_sba"], STAT_MODELS["auto_ses"]]
    _, errors = select_by_backtest(y, 30, models, n_windows=3, error="rmse")
    _, alone = select_by_backtest(y, 30, [StatCombination()], n_windows=3, error="rmse")
    assert np.allclose(errors[:, 0], alone[:, 0])


@pytest.mark.parametrize("seed", [0, 1])
def test_negative_binomial_quantiles_match_scipy(seed: int) -> None:
    """The pmf walk gives scipy's ppf exactly: small and large means, point masses at 0, lumpy and
    near-Poisson dispersions, levels near 0 and 1."""
    from scipy.stats import nbinom

    rng = np.random.default_rng(seed)
    m = 20_000
    mean = np.concatenate([rng.gamma(0.5, 4.0, m - 400), rng.uniform(50, 3000, 200), np.zeros(200)])
    alpha = np.exp(rng.uniform(np.log(0.01), np.log(50.0), m))
    n, p = 1.0 / alpha, 1.0 / (1.0 + alpha * mean)
    levels = np.sort(rng.uniform(0.01, 0.999, (m, 3)), axis=1)
    expected = nbinom.ppf(levels, n[:, None], p[:, None])
    assert np.array_equal(nb_ppf(levels, n, p), expected)


def test_a_sku_leaves_the_default_model_only_for_a_clear_backtest_win() -> None:
    """Series with a strong weekly cycle are won by the seasonal window average by far more than the
    margin and leave the default combination; flat Poisson series stay on it, whatever small backtest
    edge another model has; with no margin the flat ones scatter over the candidates."""
    rng = np.random.default_rng(5)
    days = 400
    weekly = np.where(np.arange(days) % 7 < 2, 20.0, 0.5)
    y = np.vstack([rng.poisson(weekly, (20, days)), rng.poisson(3.0, (40, days))]).astype(np.float64)
    models = CONFIG.stat_forecasters()
    names = np.asarray([m.name for m in models], dtype=object)
    state = OriginState(
        day=0,
        skus=np.arange(len(y)).astype(str).astype(object),
        tier=np.full(len(y), 3),
        route=np.full(len(y), "statistical", dtype=object),
        codes=np.arange(len(y)),
        history=y,
        category=np.full(len(y), "x", dtype=object),
        launch_day=np.zeros(len(y)),
    )
    rows = np.arange(len(y))
    chosen = names[choose_stat(state, rows, models, CONFIG)]
    assert CONFIG.selection_margin > 0 and names[0] == "combination"
    assert (chosen[:20] == "seasonal_window_average").all()
    assert (chosen[20:] == "combination").all()
    free = names[choose_stat(state, rows, models, dataclasses.replace(CONFIG, selection_margin=0.0))]
    assert len(set(free[20:])) > 1


@pytest.mark.parametrize(
    "changes",
    [
        {"cv_step": 10},
        {"stat_models": ("nope",)},
        {"quantiles": (0.9, 0.5)},
        {"bands": ((1, 7), (9, 30))},
        {"selection_margin": 1.0},
        {"selection_margin": -0.1},
        {"dense_origin_steps": (7,)},
        {"dense_origin_steps": (0, 3)},
        {"origin_budget": -1},
        {"stop_hazards": ()},
        {"stop_hazards": (0.0, 1.0)},
        {"pool_series": -1},
    ],
)
def test_config_validation(changes: dict) -> None:
    with pytest.raises(ValueError):
        TrainConfig(**changes)


# --- weekday profile of the statistical forecasts and density of the training origins ---------------------------------
def _flat_statistical(forecasts: pd.DataFrame) -> pd.DataFrame:
    seasonal = forecasts[C.MODEL].isin(list(weekly_stat_models()))
    kind = forecasts[C.MODEL].map(_kind)
    return forecasts.loc[(kind == "statistical") & ~seasonal]


def test_statistical_forecasts_follow_the_warehouse_week(world: dict, at_mid: dict) -> None:
    """Flat statistical models are spread over the week by the warehouse's weekday index (Saturday and
    Sunday ~3x Monday in this world): the 7-day totals stay those of the flat forecast, and the spread
    forecast is closer to what sold than the flat one."""
    model, origin = at_mid["model"], at_mid["origin"]
    flat_model = dataclasses.replace(model, config=dataclasses.replace(model.config, weekday_profile=False))
    spread = _flat_statistical(at_mid["forecasts"]).set_index([C.SKU, C.HORIZON])[C.FORECAST]
    flat = (
        _forecast(world, flat_model, origin).set_index([C.SKU, C.HORIZON])[C.FORECAST].reindex(spread.index)
    )
    assert spread.index.get_level_values(C.SKU).nunique() >= 5
    per_sku_flat = flat.groupby(level=C.SKU).agg(["min", "max"])
    assert (per_sku_flat["max"] - per_sku_flat["min"] < 1e-9).all()  # flat without the profile
    weeks = (spread.index.get_level_values(C.HORIZON) - 1) // 7
    full_weeks = weeks < HORIZON // 7
    keys = [spread.index.get_level_values(C.SKU), weeks]
    np.testing.assert_allclose(
        spread[full_weeks].groupby([k[full_weeks] for k in keys]).sum(),
        flat[full_weeks].groupby([k[full_weeks] for k in keys]).sum(),
        rtol=1e-9,
    )
    target_weekday = (origin + pd.to_timedelta(spread.index.get_level_values(C.HORIZON), unit="D")).dayofweek
    ratio = (spread / flat.where(flat > 0)).groupby(np.asarray(target_weekday)).mean()
    assert ratio[6] > 1.5 * ratio[0]  # Sunday above Monday, as in the world's WEEKLY profile
    actual = world["history"].set_index([C.SKU, C.DATE])[C.QUANTITY]
    targets = pd.MultiIndex.from_arrays(
        [
            spread.index.get_level_values(C.SKU),
            origin + pd.to_timedelta(spread.index.get_level_values(C.HORIZON), unit="D"),
        ]
    )
    sold = actual.reindex(targets).to_numpy()
    known = ~np.isnan(sold)
    assert wmape(sold[known], spread.to_numpy()[known]) < wmape(sold[known], flat.to_numpy()[known])


@pytest.mark.parametrize("n_skus", [5_000, 20_000])
def test_a_full_size_warehouse_keeps_the_configured_origins(n_skus: int) -> None:
    config = TrainConfig()
    assert config.origin_grid(n_skus) == (config.n_origins, config.origin_step)


@pytest.mark.parametrize(("n_skus", "step"), [(1, 3), (75, 3), (700, 3), (1_000, 6), (2_000, 9), (2_500, 19)])
def test_few_skus_get_denser_origins_over_the_same_span_within_the_budget(n_skus: int, step: int) -> None:
    config = TrainConfig()
    n_origins, chosen = config.origin_grid(n_skus)
    span = config.n_origins * config.origin_step
    assert chosen == step and chosen % 7 != 0
    assert n_origins == span // chosen and n_origins * chosen <= span
    assert chosen == config.origin_step or n_origins * n_skus <= config.origin_budget
    assert config.training_history_days == span + config.history_days  # the history read does not grow


def test_origin_grid_is_used_by_training(world: dict) -> None:
    """The 40-SKU world trains on origins 3 days apart; with no denser steps, 19 days apart."""
    end = world["dates"][-1]
    dense, _ = _train(world, end)
    sparse, _ = _train(world, end, config=dataclasses.replace(CONFIG, dense_origin_steps=()))
    assert sum(dense.lgbm.n_train_rows.values()) > 3 * sum(sparse.lgbm.n_train_rows.values())


# --- the promotion gate's metric ------------------------------------------------------------------------------------------
def test_gate_scores_are_the_rmse_of_the_tiered_model_and_seasonal_naive(at_end: dict) -> None:
    metrics = at_end["model"].validation_metrics
    tiered, naive = FC.gate_scores(metrics)
    rows = metrics[metrics[SEGMENT] == FC.SEGMENT_ALL].set_index(C.MODEL)
    assert FC.GATE_METRIC == "rmse"
    assert tiered == rows.loc[MODEL_TIERED, "rmse"] and naive == rows.loc[FC.MODEL_SEASONAL_NAIVE, "rmse"]
    assert np.isnan(FC.gate_scores(metrics.iloc[0:0])).all()


def test_fallback_baseline_is_chosen_by_squared_error_not_wmape() -> None:
    """On intermittent days seasonal naive (mostly 0) wins WMAPE while the moving average, a mean, wins
    the squared error the served point forecast is meant to minimise: the moving average is served."""
    rng = np.random.default_rng(3)
    actual = (rng.random((200, 30)) < 0.2) * rng.integers(1, 4, (200, 30)).astype(np.float64)
    mean = np.full((200, 30), actual.mean())
    assert wmape(actual, np.zeros_like(actual)) < wmape(actual, mean)  # WMAPE would pick a zero-ish forecast
    forecasts = {FC.MODEL_SEASONAL_NAIVE: np.zeros_like(actual), FC.MODEL_MOVING_AVERAGE_28: mean}
    skus = np.array([f"S{i}" for i in range(200)], dtype=object)
    baseline = fit_baseline(
        forecasts, actual, np.full(200, 100.0), skus, np.ones(200), np.full(200, 2), CONFIG
    )
    assert baseline.name == FC.MODEL_MOVING_AVERAGE_28


def test_a_model_pickled_before_the_new_settings_still_forecasts(world: dict, at_end: dict) -> None:
    """Production versions in existing registries were pickled without ``weekday_profile`` and the origin
    grid settings: unpickled, they take the defaults and forecast like a current model."""
    model = pickle.loads(pickle.dumps(at_end["model"]))
    for name in ("weekday_profile", "dense_origin_steps", "origin_budget"):
        del model.config.__dict__[name]
    old = pickle.loads(pickle.dumps(model))
    assert "weekday_profile" not in old.config.__dict__ and old.config.weekday_profile is True
    pd.testing.assert_frame_equal(_forecast(world, old, at_end["origin"]), at_end["forecasts"])


def test_a_model_pickled_before_the_stop_hazard_forecasts_without_it(world: dict, at_end: dict) -> None:
    """A version registered before the stop hazard existed unpickles with hazard 0: its statistical
    forecasts are not adjusted, as when it was trained."""
    model = pickle.loads(pickle.dumps(at_end["model"]))
    del model.__dict__["stop_hazard"]
    old = pickle.loads(pickle.dumps(model))
    assert old.stop_hazard == 0.0
    expected = _forecast(world, dataclasses.replace(at_end["model"], stop_hazard=0.0), at_end["origin"])
    pd.testing.assert_frame_equal(_forecast(world, old, at_end["origin"]), expected)


def test_warehouse_history_keeps_the_warehouse_up_to_the_day() -> None:
    rows = pd.DataFrame(
        {
            C.SKU: ["A"] * 4,
            C.WAREHOUSE_ID: ["W1", "W1", "W2", "W1"],
            C.DATE: pd.to_datetime(["2024-01-01", "2024-01-02", "2024-01-02", "2024-01-03"]),
            C.QUANTITY: [1.0, 2.0, 3.0, 4.0],
        }
    )
    day = to_day(pd.Timestamp("2024-01-02"))
    kept = warehouse_history(rows, "W1", day)
    assert kept[C.QUANTITY].tolist() == [1.0, 2.0]
    # A window that already is one warehouse's rows up to the day comes back as it is, not copied.
    window = rows.iloc[:2]
    assert warehouse_history(window, "W1", day) is window
    as_text = rows.assign(**{C.DATE: rows[C.DATE].dt.strftime("%Y-%m-%d")})
    assert warehouse_history(as_text, "W1", day)[C.QUANTITY].tolist() == [1.0, 2.0]


def test_served_features_name_the_skus_without_a_row() -> None:
    rows = pd.DataFrame(
        {
            C.SKU: ["B", "A", "C"],
            C.WAREHOUSE_ID: "W1",
            C.ORIGIN_DATE: pd.Timestamp("2024-01-02"),
            "demand_lag_1": [2.0, 1.0, 3.0],
        }
    )
    day = to_day(pd.Timestamp("2024-01-02"))
    served = served_features(rows, np.array(["A", "B"], dtype=object), day, "W1")
    assert served[C.SKU].tolist() == ["A", "B"] and served["demand_lag_1"].tolist() == [1.0, 2.0]
    with pytest.raises(ValueError, match=r"no row for 2 SKU\(s\).*first: D, E"):
        served_features(rows, np.array(["E", "A", "D", "D"], dtype=object), day, "W1")


# --- lines that stopped selling ------------------------------------------------------------------------------------------
def test_lines_that_stopped_selling_are_forecast_near_zero() -> None:
    """Six steady sellers stop 50 days before the training date; every SKU keeps the SBA/TSB/SES combination
    (a selection margin no other model clears), whose SBA member holds a stopped line's last level. The CV
    origin 30 days back sees the six silent for 20 days and selling nothing after, so the CV picks a stop
    hazard: their forecasts fall to near zero, where without it they keep a share of their old level;
    steady sellers keep theirs."""
    world = make_world(n_stopped=6, stop_days_before_end=50)
    end = world["dates"][-1]
    config = dataclasses.replace(CONFIG, selection_margin=0.95)
    model, tiers = _train(world, end, config=config)
    assert model.stop_hazard > 0.0
    assert (model.stat_choice == "combination").all()
    with_stops = _forecast(world, model, end, tiers=tiers).groupby(C.SKU)[C.FORECAST].sum()
    without = _forecast(world, dataclasses.replace(model, stop_hazard=0.0), end, tiers=tiers)
    without = without.groupby(C.SKU)[C.FORECAST].sum()
    stopped, steady = world["skus"][:6], world["skus"][6:20]
    history = world["history"]
    recent = history[history[C.DATE].between(end - pd.Timedelta(days=79), end - pd.Timedelta(days=50))]
    old_level = recent.groupby(C.SKU)[C.QUANTITY].sum()  # their last 30 selling days
    assert (with_stops[stopped] < 0.05 * old_level[stopped]).all()
    assert (without[stopped] > 0.2 * old_level[stopped]).all()
    assert with_stops[steady].sum() > 0.99 * without[steady].sum()


@pytest.mark.parametrize("resumes", [False, True])
def test_the_cv_picks_a_stop_hazard_only_where_silent_lines_stay_silent(resumes: bool) -> None:
    """Statistical SKUs at one CV origin: 20 steady sellers and 20 silent for their last 40 days, forecast at
    their old level of 5 a day. If the silent ones sell nothing after the origin the CV picks a hazard and
    its error is the lowest of the candidates; if they sell at their old level again it keeps 0."""
    from demand_platform.forecasting.ensemble import choose_stop_hazard
    from demand_platform.forecasting.state import Components

    rng = np.random.default_rng(0)
    history = rng.poisson(5.0, (40, 365)).astype(np.float64)
    history[20:, -40:] = 0.0
    n = len(history)
    state = OriginState(
        day=1000,
        skus=np.array([f"S{i}" for i in range(n)], dtype=object),
        tier=np.full(n, 3),
        route=np.full(n, "statistical", dtype=object),
        codes=np.arange(n),
        history=history,
        category=np.full(n, "toys", dtype=object),
        launch_day=np.full(n, np.nan),
    )
    level = np.full((n, HORIZON), 5.0)
    components = Components(
        np.full((n, HORIZON), np.nan), level, np.full(n, "combination"), np.zeros((n, HORIZON))
    )
    actual = rng.poisson(5.0, (n, HORIZON)).astype(np.float64)
    if not resumes:
        actual[20:] = 0.0
    hazard, table = choose_stop_hazard([state], [components], actual, [np.full(n, 100.0)], CONFIG)
    assert list(table["stop_hazard"]) == sorted(CONFIG.stop_hazards)
    assert table.loc[table["stop_hazard"] == hazard, "mse"].iloc[0] == table["mse"].min()
    assert (hazard > 0.0) is not resumes
