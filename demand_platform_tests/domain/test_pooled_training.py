"""Tests of the LightGBM pooled across warehouses: a warehouse's model learns from other warehouses' series.

The world: warehouse W1 of ``test_forecasting.make_world`` (40 SKUs over 200 days) and a second warehouse W2
with the same catalogue and its own demand (another seed).
"""

import pickle

import numpy as np
import pandas as pd
import pytest

from demand_platform import columns as C
from demand_platform.forecasting import TrainConfig, WarehouseModel, forecast_warehouse, train_warehouse
from demand_platform.forecasting.donors import POOL_LAG_DAYS, choose_donor_series, donor_history, pool_size
from demand_platform.tables import SourceTables
from demand_platform.tiering import assign_tiers
from demand_platform_tests.domain.test_forecasting import CONFIG, WAREHOUSE, make_world

OTHER = "W2"


@pytest.fixture(scope="module")
def world() -> dict:
    own = make_world(seed=0)
    other = make_world(seed=1)["history"].assign(**{C.WAREHOUSE_ID: OTHER})
    warehouses = pd.concat(
        [own["warehouses"], own["warehouses"].assign(**{C.WAREHOUSE_ID: OTHER, C.LOCATION_STATE: "CA"})],
        ignore_index=True,
    )
    return {**own, "other": other, "warehouses": warehouses}


def _tables(world: dict) -> SourceTables:
    return SourceTables(world["products"], world["warehouses"], calendar=world["calendar"])


def _train(
    world: dict, day: pd.Timestamp, history: pd.DataFrame, config: TrainConfig = CONFIG
) -> WarehouseModel:
    own = history.loc[history[C.WAREHOUSE_ID] == WAREHOUSE]
    tiers = assign_tiers(own, world["products"], day)
    return train_warehouse(history, _tables(world), day, WAREHOUSE, tiers, config)


def _forecast(world: dict, model: WarehouseModel, day: pd.Timestamp) -> pd.DataFrame:
    return forecast_warehouse(model, world["history"], _tables(world), day, WAREHOUSE)


def _both(world: dict) -> pd.DataFrame:
    return pd.concat([world["history"], world["other"]], ignore_index=True)


@pytest.fixture(scope="module")
def at_mid(world: dict) -> dict:
    """W1 trained 60 days before the end on its own rows and on its own plus W2's."""
    day = world["dates"][-61]
    own = _train(world, day, world["history"])
    pooled = _train(world, day, _both(world))
    return {"day": day, "own": own, "pooled": pooled, "forecasts": _forecast(world, pooled, day)}


def test_the_lightgbm_learns_from_the_other_warehouse(world: dict, at_mid: dict) -> None:
    own, pooled = at_mid["own"], at_mid["pooled"]
    assert own.pooled_series == 0 and 0 < pooled.pooled_series <= world["other"][C.SKU].nunique()
    assert own.lgbm is not None and pooled.lgbm is not None
    for band, rows in own.lgbm.n_train_rows.items():
        assert pooled.lgbm.n_train_rows[band] > rows, band
    mine = _forecast(world, own, at_mid["day"])
    theirs = at_mid["forecasts"]
    # The same rows (the warehouse's own SKUs only), valid forecasts, and not the warehouse-only ones.
    pd.testing.assert_frame_equal(theirs[[C.SKU, C.HORIZON]], mine[[C.SKU, C.HORIZON]])
    assert set(theirs[C.WAREHOUSE_ID]) == {WAREHOUSE}
    assert (theirs[C.FORECAST] >= 0).all() and np.isfinite(theirs[C.FORECAST]).all()
    assert not np.allclose(theirs[C.FORECAST], mine[C.FORECAST])


def test_pool_series_zero_is_the_warehouse_alone(world: dict, at_mid: dict) -> None:
    config = TrainConfig(**{**CONFIG.__dict__, "pool_series": 0})
    alone = _train(world, at_mid["day"], _both(world), config)
    assert alone.pooled_series == 0
    expected = _forecast(world, _train(world, at_mid["day"], world["history"], config), at_mid["day"])
    pd.testing.assert_frame_equal(_forecast(world, alone, at_mid["day"]), expected)


def test_a_warehouse_borrows_only_what_it_lacks_of_pool_series(world: dict, at_mid: dict) -> None:
    """pool_series is the least number of series the LightGBM learns from: with 40, about as many as W1
    has routed to it, it borrows a few of W2's; with 2,000 (the default) all of them."""
    config = TrainConfig(**{**CONFIG.__dict__, "pool_series": 40})
    model = _train(world, at_mid["day"], _both(world), config)
    assert 0 < model.pooled_series < at_mid["pooled"].pooled_series
    assert model.lgbm is not None and at_mid["pooled"].lgbm is not None
    for band, rows in model.lgbm.n_train_rows.items():
        assert rows < at_mid["pooled"].lgbm.n_train_rows[band], band


def test_borrowed_rows_are_capped_at_pool_max_rows(world: dict, at_mid: dict) -> None:
    """pool_max_rows caps the other warehouse's pairs of each band: a band trains on more rows than the
    warehouse alone, by at most the cap (the uncapped model borrows more)."""
    cap = 300
    config = TrainConfig(**{**CONFIG.__dict__, "pool_max_rows": cap})
    capped = _train(world, at_mid["day"], _both(world), config)
    own, uncapped = at_mid["own"].lgbm, at_mid["pooled"].lgbm
    assert capped.lgbm is not None and own is not None and uncapped is not None
    assert capped.pooled_series == at_mid["pooled"].pooled_series
    for band, rows in capped.lgbm.n_train_rows.items():
        assert own.n_train_rows[band] < rows <= own.n_train_rows[band] + cap, band
        assert uncapped.n_train_rows[band] > own.n_train_rows[band] + cap, band


@pytest.mark.parametrize(
    ("own", "pool_series", "borrowed"), [(150, 2000, 1850), (10_000, 2000, 0), (2000, 2000, 0), (5, 0, 0)]
)
def test_pool_size_is_what_the_warehouse_lacks(own: int, pool_series: int, borrowed: int) -> None:
    """A full-size warehouse (10,000 SKUs) borrows nothing: its training costs what it did."""
    assert pool_size(own, pool_series) == borrowed


def test_pool_rows_of_the_training_date_and_after_change_nothing(world: dict, at_mid: dict) -> None:
    """The other warehouse's sales from D on, changed and with a new SKU selling a million, are not read:
    whether its day D is in when W1 trains depends on the order of the day's runs."""
    day = at_mid["day"]
    other = world["other"].copy()
    later = other[C.DATE] >= day - pd.Timedelta(days=POOL_LAG_DAYS - 1)
    other.loc[later, C.QUANTITY] = other.loc[later, C.QUANTITY] * 1000.0 + 500.0
    intruder = pd.DataFrame(
        {
            C.SKU: "S999",
            C.WAREHOUSE_ID: OTHER,
            C.DATE: pd.date_range(day, periods=10),
            C.QUANTITY: 1e6,
            C.REVENUE: 1e7,
            C.N_ORDERS: 1,
        }
    )
    perturbed = pd.concat([world["history"], other, intruder], ignore_index=True)
    model = _train(world, day, perturbed)
    assert model.pooled_series == at_mid["pooled"].pooled_series
    pd.testing.assert_frame_equal(_forecast(world, model, day), at_mid["forecasts"])
    pd.testing.assert_frame_equal(model.validation_metrics, at_mid["pooled"].validation_metrics)


def test_a_model_pickled_before_pooling_says_it_pooled_nothing(at_mid: dict) -> None:
    model = pickle.loads(pickle.dumps(at_mid["pooled"]))
    del model.__dict__["pooled_series"]
    assert pickle.loads(pickle.dumps(model)).pooled_series == 0


def _series(n_warehouses: int, n_skus: int, integer_ids: bool = False) -> pd.DataFrame:
    skus = np.arange(n_skus) if integer_ids else np.array([f"S{i:03d}" for i in range(n_skus)], dtype=object)
    warehouses = np.arange(n_warehouses) if integer_ids else np.array([f"W{i}" for i in range(n_warehouses)])
    return pd.DataFrame({C.SKU: np.tile(skus, n_warehouses), C.WAREHOUSE_ID: np.repeat(warehouses, n_skus)})


@pytest.mark.parametrize("integer_ids", [False, True])
def test_donor_series_are_a_stable_choice(integer_ids: bool) -> None:
    """The same series whatever the row order or duplicates, nested as n grows, one donor warehouse filled
    before the next, another order for another warehouse; the design's integer ids work as they are."""
    series = _series(5, 200, integer_ids)
    own = series[C.WAREHOUSE_ID].iloc[0]
    chosen = choose_donor_series(series, 300, own)
    assert len(chosen) == 300 and not chosen.duplicated().any()
    shuffled = pd.concat([series, series.iloc[:50]]).sample(frac=1.0, random_state=3)
    pd.testing.assert_frame_equal(choose_donor_series(shuffled, 300, own), chosen)
    fewer = choose_donor_series(series, 40, own)
    pd.testing.assert_frame_equal(fewer, chosen.iloc[:40])
    # Choosing among the chosen keeps them all (the store loads the chosen series, the training chooses again).
    pd.testing.assert_frame_equal(choose_donor_series(chosen, 300, own), chosen)
    # Whole warehouses first: 300 series are one warehouse's 200 and 100 of a second's.
    assert sorted(chosen[C.WAREHOUSE_ID].value_counts().tolist()) == [100, 200]
    other = series[C.WAREHOUSE_ID].iloc[-1]
    orders = {tuple(choose_donor_series(series, 1000, wh)[C.WAREHOUSE_ID].unique()) for wh in (own, other)}
    assert len(orders) == 2
    assert chosen[C.SKU].dtype == series[C.SKU].dtype
    assert choose_donor_series(series, 0, own).empty and len(choose_donor_series(series, 10_000, own)) == 1000


def test_donor_history_is_the_other_warehouses_up_to_the_day(world: dict) -> None:
    both = _both(world)
    day = world["dates"][-31]
    rows = donor_history(both, WAREHOUSE, day, 10)
    assert set(rows[C.WAREHOUSE_ID]) == {OTHER}
    assert rows[C.DATE].max() == day - pd.Timedelta(days=POOL_LAG_DAYS)
    assert rows[C.SKU].nunique() == 10
    assert donor_history(both, WAREHOUSE, day, 0).empty
    assert donor_history(world["history"], WAREHOUSE, day, 10).empty
