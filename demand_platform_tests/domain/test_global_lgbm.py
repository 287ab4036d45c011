"""Tests of the direct multi-horizon global LightGBM on the small world of ``test_forecasting``."""

import numpy as np
import pandas as pd
import pytest

from demand_platform import columns as C
from demand_platform.features import build_sales_panel, build_training_features
from demand_platform.models import global_lgbm as G
from demand_platform.models.global_lgbm import (
    HORIZON_BANDS,
    MODEL_FEATURES,
    DirectTrainingSet,
    FeatureKeys,
    GlobalLGBM,
    LGBMParams,
    SamplingConfig,
    TargetDayLookup,
    direct_design,
    sample_training_pairs,
)
from demand_platform.tables import SourceTables
from demand_platform_tests.domain.test_forecasting import WAREHOUSE, make_world

PARAMS = LGBMParams(n_estimators=30, min_data_in_leaf=20)
SAMPLING = SamplingConfig(zero_sample_rate=0.5, max_rows=5_000, seed=3)


def _day(value: pd.Timestamp) -> int:
    return int(value.normalize().value // (86_400 * 10**9))


@pytest.fixture(scope="module")
def setup() -> dict:
    world = make_world()
    cutoff = world["dates"][-31]
    origins = [cutoff - pd.Timedelta(days=9 * k) for k in range(0, 12)]
    features = build_training_features(
        world["history"],
        SourceTables(world["products"], world["warehouses"], calendar=world["calendar"]),
        origins,
        WAREHOUSE,
    )
    panel = build_sales_panel(
        world["history"],
        end=cutoff,
        lookback_days=0,
        warehouse_id=WAREHOUSE,
        start=min(origins) - pd.Timedelta(days=G.PANEL_LOOKBACK_DAYS),
    )
    campaigns = pd.DataFrame(
        {
            C.CAMPAIGN_ID: [1],
            C.START_DATE: [cutoff + pd.Timedelta(days=2)],
            C.END_DATE: [cutoff + pd.Timedelta(days=4)],
            C.SKU: ["S001"],
            C.DISCOUNT_PERCENT: [25.0],
            C.CAMPAIGN_TYPE: ["flash"],
            C.TARGET_REGION: [None],
        }
    )
    lookup = TargetDayLookup.build(
        SourceTables(world["products"], world["warehouses"], calendar=world["calendar"], campaigns=campaigns),
        WAREHOUSE,
        origins,
        30,
        panel.skus,
    )
    keys = FeatureKeys.of(features, panel, lookup)
    return {
        "world": world,
        "cutoff": cutoff,
        "features": features,
        "panel": panel,
        "lookup": lookup,
        "keys": keys,
    }


def test_booster_params_always_set_threads_seed_and_determinism() -> None:
    params = LGBMParams(num_threads=2, seed=7).booster_params()
    assert params["num_threads"] == 2 and params["seed"] == 7 and params["deterministic"] is True
    assert LGBMParams().booster_params()["num_threads"] == 1
    assert LGBMParams(objective="poisson").booster_params()["objective"] == "poisson"
    with pytest.raises(ValueError):
        LGBMParams(objective="l2")  # type: ignore[arg-type]


def test_training_pairs_stop_at_the_cutoff_and_reweight_sampled_zeros(setup: dict) -> None:
    keys, panel = setup["keys"], setup["panel"]
    cutoff_day = _day(setup["cutoff"]) - 10
    for band in HORIZON_BANDS:
        pairs = sample_training_pairs(keys, panel, cutoff_day, band, SAMPLING)
        target_day = keys.origin_day[pairs.rows] + pairs.horizon
        assert (target_day <= cutoff_day).all()
        assert ((pairs.horizon >= band[0]) & (pairs.horizon <= band[1])).all()
        assert len(pairs.target) <= SAMPLING.max_rows
        assert np.allclose(pairs.weight[pairs.target == 0], 2.0) and np.allclose(
            pairs.weight[pairs.target > 0], 1.0
        )
        expected = panel.quantity[keys.sku_code[pairs.rows], keys.origin_column[pairs.rows] + pairs.horizon]
        assert np.array_equal(pairs.target, expected)
    capped = sample_training_pairs(
        keys, panel, cutoff_day, (1, 7), SamplingConfig(zero_sample_rate=1.0, max_rows=100)
    )
    assert len(capped.target) == 100 and np.allclose(capped.weight, 1.0)


def test_panel_target_features_follow_the_target_weekday() -> None:
    dates = pd.date_range("2023-01-02", periods=420, freq="D")  # starts on a Monday
    history = pd.DataFrame(
        {
            C.SKU: "A",
            C.WAREHOUSE_ID: WAREHOUSE,
            C.DATE: dates,
            C.QUANTITY: (dates.dayofweek + 1).astype(float),  # Monday = 1 .. Sunday = 7
            C.REVENUE: 1.0,
            C.N_ORDERS: 1,
        }
    )
    panel = build_sales_panel(history, end=dates[-1], lookback_days=len(dates) - 1, warehouse_id=WAREHOUSE)
    origin_column = np.full(30, panel.n_days - 1)
    horizon = np.arange(1, 31)
    values = G._panel_target_features(panel, np.zeros(30, dtype=np.int64), origin_column, horizon)
    target_weekday = ((dates[-1] + pd.to_timedelta(horizon, unit="D")).dayofweek + 1).to_numpy()
    for name in (G.TARGET_DOW_LAST, G.TARGET_DOW_MEAN_4W, G.TARGET_DOW_MEAN_8W, G.TARGET_DEMAND_LAG_364):
        assert np.array_equal(values[name], target_weekday), name


def test_lookup_gathers_sku_specific_campaigns(setup: dict) -> None:
    lookup, panel = setup["lookup"], setup["panel"]
    origin_index = lookup.origin_index(np.array([_day(setup["cutoff"])] * 6))
    code = pd.Index(panel.skus).get_indexer(["S001", "S001", "S001", "S001", "S002", "S002"])
    numeric, _ = lookup.gather(origin_index, code, np.array([1, 2, 4, 5, 2, 3]))
    active = numeric[:, G.TARGET_CALENDAR_FEATURES.index(G.TARGET_PROMO_ACTIVE)]
    discount = numeric[:, G.TARGET_CALENDAR_FEATURES.index(G.TARGET_PROMO_DISCOUNT)]
    assert active.tolist() == [0.0, 1.0, 1.0, 0.0, 0.0, 0.0]
    assert discount.tolist() == [0.0, 25.0, 25.0, 0.0, 0.0, 0.0]


def test_design_has_fixed_categories_and_unknown_values_become_missing(setup: dict) -> None:
    features = setup["features"].copy()
    model = GlobalLGBM(PARAMS, SAMPLING).fit(
        features, setup["panel"], setup["lookup"], setup["cutoff"], keys=setup["keys"]
    )
    assert set(model.categories) >= {C.CATEGORY, C.BRAND, G.TARGET_EVENT}
    features.loc[:, C.CATEGORY] = "brand-new-category"
    rows = np.arange(10)
    design = direct_design(
        features,
        setup["keys"],
        rows,
        np.ones(10, dtype=np.int64),
        setup["panel"],
        setup["lookup"],
        model.categories,
    )
    assert tuple(design.columns) == MODEL_FEATURES
    assert list(design[C.CATEGORY].cat.categories) == list(model.categories[C.CATEGORY])
    assert design[C.CATEGORY].isna().all()
    at_cutoff = setup["keys"].origin_day == _day(setup["cutoff"])
    subset = features.loc[at_cutoff].reset_index(drop=True)
    prediction = model.predict(subset, setup["panel"], setup["lookup"], 30)
    assert prediction.shape == (len(subset), 30) and np.isfinite(prediction).all() and (prediction >= 0).all()


def test_fit_is_deterministic_and_reports_gain_importance(setup: dict) -> None:
    args = (setup["features"], setup["panel"], setup["lookup"], setup["cutoff"])
    first = GlobalLGBM(PARAMS, SAMPLING).fit(*args, keys=setup["keys"])
    second = GlobalLGBM(PARAMS, SAMPLING).fit(*args)
    at_cutoff = setup["keys"].origin_day == _day(setup["cutoff"])
    subset = setup["features"].loc[at_cutoff].reset_index(drop=True)
    np.testing.assert_array_equal(
        first.predict(subset, setup["panel"], setup["lookup"], 30),
        second.predict(subset, setup["panel"], setup["lookup"], 30),
    )
    importance = first.feature_importance()
    assert tuple(importance.columns) == G.IMPORTANCE_COLUMNS
    assert np.allclose(importance.groupby(G.BAND)[G.GAIN_SHARE].sum(), 1.0)
    assert (importance[G.GAIN] >= 0).all()


def test_earlier_cutoffs_train_on_the_subset_of_the_shared_training_set(setup: dict) -> None:
    training_set = DirectTrainingSet.build(
        setup["features"],
        setup["panel"],
        setup["lookup"],
        setup["cutoff"],
        PARAMS,
        SAMPLING,
        keys=setup["keys"],
    )
    earlier = setup["cutoff"] - pd.Timedelta(days=30)
    model = GlobalLGBM(PARAMS, SAMPLING).fit_training_set(training_set, earlier)
    for band in HORIZON_BANDS:
        label = G.band_label(band)
        assert model.n_train_rows[label] == int((training_set.target_day[label] <= _day(earlier)).sum())
        assert model.n_train_rows[label] < len(training_set.pairs[label].target)
    assert model.is_fitted
    with pytest.raises(ValueError, match="earlier cutoff"):
        GlobalLGBM(PARAMS, SAMPLING).fit_training_set(training_set, setup["cutoff"] + pd.Timedelta(days=1))


class _OldBooster:
    """A booster of an earlier version: trained with the holiday name instead of the event key."""

    def feature_name(self) -> list[str]:
        names = list(MODEL_FEATURES)
        names[names.index(G.TARGET_EVENT)] = "target_holiday_name"
        names.remove(G.TARGET_DAYS_SINCE_LAST_HOLIDAY)
        return names


def test_a_model_of_an_earlier_feature_set_is_refused_with_the_remedy(setup: dict) -> None:
    model = GlobalLGBM(PARAMS, SAMPLING).fit(
        setup["features"], setup["panel"], setup["lookup"], setup["cutoff"], keys=setup["keys"]
    )
    G.require_model_features(next(iter(model.boosters.values())), "1-7")  # its own features pass
    model.boosters = {label: _OldBooster() for label in model.boosters}
    at_cutoff = setup["keys"].origin_day == _day(setup["cutoff"])
    subset = setup["features"].loc[at_cutoff].reset_index(drop=True)
    with pytest.raises(ValueError, match=r"earlier version.*target_days_since_last_holiday.*retrain"):
        model.predict(subset, setup["panel"], setup["lookup"], 30)
