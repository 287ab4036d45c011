"""Cross-warehouse reconciliation: the SKU's total over the warehouses split by their long-run shares."""

import datetime as dt

import duckdb
import numpy as np
import pandas as pd
import pytest

from demand_platform import columns as C
from demand_platform import store
from demand_platform.forecasting.overrides import apply_overrides, model_output
from demand_platform.forecasting.pooling import (
    DEFAULT_WEIGHT,
    POOLING_RATIO,
    PastForecasts,
    choose_weight,
    pooled_point,
    pooling_weight,
    reconcile_across_warehouses,
    reconcile_origin,
    regional_campaign_rows,
    warehouse_shares,
)

ORIGIN = pd.Timestamp("2024-06-30")


def _forecasts(point: np.ndarray, skus: list[str], warehouses: list[str]) -> pd.DataFrame:
    """Long forecasts of ``point`` ``[n_skus, n_warehouses, horizon]`` at ``ORIGIN``; quantiles 1.5x / 2x / 2.5x."""
    n_skus, n_wh, horizon = point.shape
    s, w, h = np.meshgrid(np.arange(n_skus), np.arange(n_wh), np.arange(1, horizon + 1), indexing="ij")
    f = point.reshape(-1)
    return pd.DataFrame(
        {
            C.SKU: np.array(skus, dtype=object)[s.reshape(-1)],
            C.WAREHOUSE_ID: np.array(warehouses, dtype=object)[w.reshape(-1)],
            C.ORIGIN_DATE: ORIGIN,
            C.HORIZON: h.reshape(-1),
            C.TARGET_DATE: ORIGIN + pd.to_timedelta(h.reshape(-1), unit="D"),
            C.FORECAST: f,
            C.P50: np.round(f),
            C.P90: np.ceil(2.0 * f),
            C.P95: np.ceil(2.5 * f),
        }
    )


def _shares(units: dict[tuple[str, str], float]) -> pd.DataFrame:
    return pd.DataFrame([(s, w, u) for (s, w), u in units.items()], columns=[C.SKU, C.WAREHOUSE_ID, "units"])


def test_the_skus_total_is_split_by_the_warehouses_long_run_shares() -> None:
    point = np.array([[[4.0, 8.0], [6.0, 2.0], [10.0, 10.0]]])  # one SKU, three warehouses, two days
    fc = _forecasts(point, ["A"], ["W1", "W2", "W3"])
    shares = _shares({("A", "W1"): 100.0, ("A", "W2"): 300.0})  # W3 never sold it (a launch there)
    pooled = pooled_point(fc, shares)
    np.testing.assert_allclose(pooled[:4], [0.25 * 10, 0.25 * 10, 0.75 * 10, 0.75 * 10])
    assert np.isnan(pooled[4:]).all()

    full = reconcile_across_warehouses(fc, shares, weight=0.0)
    np.testing.assert_allclose(full[C.FORECAST], [2.5, 2.5, 7.5, 7.5, 10.0, 10.0])
    # The total over the warehouses with a share is unchanged, every day.
    by_day = full.groupby(C.TARGET_DATE)[C.FORECAST].sum()
    np.testing.assert_allclose(by_day, fc.groupby(C.TARGET_DATE)[C.FORECAST].sum())
    # Quantiles move with the point forecast and stay counts; the series without a share keeps its own.
    assert full[C.P90].tolist() == [
        np.round(8 * 2.5 / 4),
        np.round(16 * 2.5 / 8),
        np.round(12 * 7.5 / 6),
        np.round(4 * 7.5 / 2),
        20.0,
        20.0,
    ]
    assert full[POOLING_RATIO].tolist()[4:] == [1.0, 1.0]

    half = reconcile_across_warehouses(fc, shares, weight=0.5)
    np.testing.assert_allclose(half[C.FORECAST][:4], [3.25, 5.25, 6.75, 4.75])
    same = reconcile_across_warehouses(fc, shares, weight=1.0)
    pd.testing.assert_frame_equal(same.drop(columns=POOLING_RATIO), fc)
    # A frame whose index is not 0..n-1 (a filtered or shuffled one) gives the same rows.
    shuffled = fc.iloc[::-1].set_index(pd.Index(np.arange(100, 100 + len(fc))))
    again = reconcile_across_warehouses(shuffled, shares, weight=0.0)
    np.testing.assert_allclose(again[C.FORECAST].to_numpy()[::-1], full[C.FORECAST].to_numpy())


def test_a_zero_forecast_stays_zero_and_a_bad_weight_is_refused() -> None:
    fc = _forecasts(np.array([[[0.0], [5.0]]]), ["A"], ["W1", "W2"])
    shares = _shares({("A", "W1"): 1.0, ("A", "W2"): 1.0})
    out = reconcile_across_warehouses(fc, shares, weight=0.0)
    assert out[C.FORECAST].tolist() == [0.0, 2.5]
    with pytest.raises(ValueError, match="pooling weight"):
        reconcile_across_warehouses(fc, shares, weight=1.5)


def test_shares_read_only_the_window_up_to_the_origin() -> None:
    days = pd.date_range("2023-06-01", "2024-07-31")
    sales = pd.DataFrame(
        {
            C.SKU: "A",
            C.WAREHOUSE_ID: np.where(np.arange(len(days)) % 2 == 0, "W1", "W2"),
            C.DATE: days,
            C.QUANTITY: 1.0,
        }
    )
    sales.loc[sales[C.DATE] > ORIGIN, C.QUANTITY] = 1000.0  # after the origin: never read
    sales.loc[sales[C.DATE] <= ORIGIN - pd.Timedelta(days=365), C.QUANTITY] = 1000.0  # before the window
    sales.loc[sales.index[-1] // 2, C.QUANTITY] = -3.0  # a return inside the window counts as 0
    got = warehouse_shares(sales, ORIGIN).set_index([C.SKU, C.WAREHOUSE_ID])["units"]
    assert got.sum() == pytest.approx(365 - 1)
    assert set(got.index.get_level_values(1)) == {"W1", "W2"}


@pytest.mark.parametrize("affinity_moved", [False, True])
def test_the_pooling_weight_follows_what_the_past_forecasts_say(affinity_moved: bool) -> None:
    """40 SKUs x 6 warehouses: demand = level x affinity, forecasts = demand x noise of their own. With stable
    affinities, pooling cancels the warehouses' noise (weight 0); when the affinities moved since the share
    window, the shares are wrong and each warehouse's own forecast is kept (weight 1)."""
    rng = np.random.default_rng(0)
    n_skus, n_wh, horizon = 40, 6, 14
    skus, warehouses = [f"S{i}" for i in range(n_skus)], [f"W{j}" for j in range(n_wh)]
    level = rng.lognormal(2.0, 0.5, size=n_skus)
    affinity = rng.dirichlet(np.ones(n_wh), size=n_skus)
    now = rng.dirichlet(np.ones(n_wh), size=n_skus) if affinity_moved else affinity
    mean = (level[:, None] * now)[:, :, None] * np.ones(horizon)
    noise = 0.02 if affinity_moved else 0.4
    point = mean * rng.lognormal(0.0, noise, size=mean.shape)
    fc = _forecasts(point, skus, warehouses)
    actual = rng.poisson(mean * 50).reshape(-1) / 50.0
    shares = _shares(
        {
            (s, w): 365 * level[i] * affinity[i, j]
            for i, s in enumerate(skus)
            for j, w in enumerate(warehouses)
        }
    )
    weight, scores = pooling_weight(fc, actual, shares)
    assert weight == (1.0 if affinity_moved else 0.0), scores
    assert scores[weight] == min(scores.values())


def _overrides(rows: list[dict[str, object]]) -> pd.DataFrame:
    base = {
        "start_date": ORIGIN,
        "end_date": ORIGIN + pd.Timedelta(days=30),
        "author": "ana",
        "reason": "promo",
    }
    return pd.DataFrame([{"multiplier": np.nan, "absolute_value": np.nan, **base, **row} for row in rows])


def test_the_models_output_is_reconciled_and_the_overrides_applied_again() -> None:
    """A planner's override of W1 is not pooled into W2: W2 is reconciled from the model's W1 forecast, and W1
    gets the override's value again."""
    point = np.array([[[4.0, 4.0], [12.0, 12.0]]])  # one SKU, two warehouses, two days
    model = _forecasts(point, ["A"], ["W1", "W2"]).assign(**{C.MODEL_VERSION: "3"})
    overrides = _overrides([{C.SKU: "A", C.WAREHOUSE_ID: "W1", "absolute_value": 100.0}])
    stored = apply_overrides(model, overrides)
    pd.testing.assert_frame_equal(model_output(stored)[model.columns], model)
    with pytest.raises(ValueError, match="unadjusted"):
        model_output(model)

    shares = _shares({("A", "W1"): 50.0, ("A", "W2"): 50.0})
    out, choice = reconcile_origin(stored, shares, overrides, past=None, weight=0.0)
    assert sorted(out.columns) == sorted([*stored.columns, POOLING_RATIO])
    assert choice.weight == 0.0 and "configuration" in choice.reason
    by_wh = out.set_index([C.WAREHOUSE_ID, C.HORIZON])
    assert by_wh.loc[("W1", 1), C.FORECAST] == 100.0 and by_wh.loc[("W1", 1), "override_applied"]
    assert by_wh.loc[("W1", 1), "forecast_unadjusted"] == 8.0  # the model's, reconciled
    assert by_wh.loc[("W2", 1), C.FORECAST] == 8.0  # half of 4 + 12, not of 100 + 12
    assert not by_wh.loc[("W2", 1), "override_applied"]


def test_without_past_forecasts_with_sales_each_warehouse_keeps_its_own() -> None:
    fc = apply_overrides(_forecasts(np.array([[[4.0], [12.0]]]), ["A"], ["W1", "W2"]), None)
    shares = _shares({("A", "W1"): 50.0, ("A", "W2"): 50.0})
    assert choose_weight(None).weight == DEFAULT_WEIGHT == 1.0
    unsold = PastForecasts(dt.date(2024, 6, 1), fc, np.zeros(len(fc)), shares)
    assert choose_weight(unsold).weight == DEFAULT_WEIGHT
    out, choice = reconcile_origin(fc, shares, None, past=None)
    assert choice.origin is None and (out[POOLING_RATIO] == 1.0).all()
    np.testing.assert_array_equal(out[C.FORECAST], fc[C.FORECAST])
    # Sales that the pooled forecast (8 and 8) matches better than the own ones (4 and 12).
    sold = PastForecasts(dt.date(2024, 6, 1), fc, np.array([8.0, 8.0]), shares)
    picked = choose_weight(sold)
    assert (
        picked.weight == 0.0
        and picked.origin == dt.date(2024, 6, 1)
        and picked.scores[1.0] > picked.scores[0.0]
    )


def test_the_stores_sql_agrees_with_the_domains_shares_and_scores_matured_forecasts() -> None:
    rng = np.random.default_rng(1)
    days = pd.date_range("2023-05-01", "2024-07-31")
    sales = pd.DataFrame(
        [(s, w, d, float(rng.integers(-1, 5))) for s in ("A", "B", "C") for w in ("W1", "W2") for d in days],
        columns=[C.SKU, C.WAREHOUSE_ID, C.DATE, C.QUANTITY],
    )
    sales = sales.loc[~((sales[C.SKU] == "C") & (sales[C.WAREHOUSE_ID] == "W2"))]  # C never in W2
    sales.loc[sales[C.SKU] == "B", C.QUANTITY] = 0.0  # B never sold: no share
    con = duckdb.connect()
    con.register("sales_frame", sales)
    con.execute(f"CREATE TABLE {C.RAW_SALES} AS SELECT * FROM sales_frame")
    expected = warehouse_shares(sales, ORIGIN)
    got = store.warehouse_units(con, ORIGIN.date(), 365)
    assert set(got[C.SKU]) == {"A", "C"}
    pd.testing.assert_frame_equal(got, expected, check_dtype=False)

    # Forecasts stored at three origins; a day of the horizon with no raw_sales row sold 0.
    for origin in ("2024-05-20", "2024-06-10", "2024-06-25"):
        frame = _forecasts(np.ones((1, 2, 30)), ["A"], ["W1", "W2"]).assign(
            **{C.ORIGIN_DATE: pd.Timestamp(origin)}
        )
        frame[C.TARGET_DATE] = frame[C.ORIGIN_DATE] + pd.to_timedelta(frame[C.HORIZON], unit="D")
        con.register("fc_frame", frame)
        if store.table_exists(con, C.FORECASTS):
            con.execute(f"INSERT INTO {C.FORECASTS} SELECT * FROM fc_frame")
        else:
            con.execute(f"CREATE TABLE {C.FORECASTS} AS SELECT * FROM fc_frame")
    day = ORIGIN.date()  # 30 June: 20 May is 41 days old, 10 June 20, 25 June 5
    assert store.past_forecast_origin(con, day, lag=30, min_lag=7, max_lag=60) == dt.date(2024, 5, 20)
    assert store.past_forecast_origin(con, day, lag=30, min_lag=7, max_lag=40) == dt.date(2024, 6, 10)
    assert store.past_forecast_origin(con, day, lag=30, min_lag=21, max_lag=40) is None
    con.execute(
        f"DELETE FROM {C.RAW_SALES} WHERE {C.DATE} = TIMESTAMP '2024-06-15' AND {C.WAREHOUSE_ID} = 'W1'"
    )
    matured = store.read_matured_forecasts(con, dt.date(2024, 6, 10), day)
    assert len(matured) == 2 * 20 and (pd.to_datetime(matured[C.TARGET_DATE]) <= ORIGIN).all()
    truth = sales.set_index([C.WAREHOUSE_ID, C.DATE]).loc[lambda f: f[C.SKU] == "A", C.QUANTITY]
    for _, row in matured.iterrows():
        key = (row[C.WAREHOUSE_ID], pd.Timestamp(row[C.TARGET_DATE]))
        expect = 0.0 if key == ("W1", pd.Timestamp("2024-06-15")) else truth.loc[key]
        assert row["actual"] == expect


def test_a_regional_campaign_is_neither_spread_to_other_warehouses_nor_pooled_away() -> None:
    """W1 is in WA, W2 and W3 in TX. A WA campaign on SKU A (days 2-3) lifts W1 alone: those rows keep W1's own
    forecast, and W2 and W3 pool among themselves. A campaign without region, and a TX one on another SKU, do
    not touch A's rows in W1."""
    point = np.array([[[10.0, 40.0, 40.0], [10.0, 10.0, 10.0], [30.0, 30.0, 30.0]]])  # A: W1, W2, W3 x 3 days
    fc = apply_overrides(_forecasts(point, ["A"], ["W1", "W2", "W3"]), None)
    day = ORIGIN + pd.Timedelta(days=1)
    campaigns = pd.DataFrame(
        {
            C.SKU: ["A", None, "B"],
            C.START_DATE: [day + pd.Timedelta(days=1), day, day],
            C.END_DATE: [day + pd.Timedelta(days=5), day + pd.Timedelta(days=9), day + pd.Timedelta(days=9)],
            C.TARGET_REGION: ["WA", None, "TX"],
            "discount_percent": [30.0, 10.0, 20.0],
        }
    )
    warehouses = pd.DataFrame({C.WAREHOUSE_ID: ["W1", "W2", "W3"], C.LOCATION_STATE: ["WA", "TX", "TX"]})
    local = regional_campaign_rows(fc, campaigns, warehouses)
    by_row = fc.assign(local=local).set_index([C.WAREHOUSE_ID, C.HORIZON])["local"]
    assert by_row[("W1", 2)] and by_row[("W1", 3)] and not by_row[("W1", 1)]
    assert not by_row.loc[["W2", "W3"]].any()
    assert not regional_campaign_rows(fc, None, warehouses).any()

    shares = _shares({("A", "W1"): 100.0, ("A", "W2"): 100.0, ("A", "W3"): 200.0})
    out, _ = reconcile_origin(
        fc, shares, None, past=None, weight=0.0, campaigns=campaigns, warehouses=warehouses
    )
    got = out.set_index([C.WAREHOUSE_ID, C.HORIZON])[C.FORECAST]
    # Day 1: no regional campaign, all three pool: total 50 split 1:1:2.
    np.testing.assert_allclose([got[("W1", 1)], got[("W2", 1)], got[("W3", 1)]], [12.5, 12.5, 25.0])
    # Days 2-3: W1 keeps its campaign forecast; W2 and W3 split their own total (40) 1:2.
    for h in (2, 3):
        np.testing.assert_allclose(
            [got[("W1", h)], got[("W2", h)], got[("W3", h)]], [40.0, 40.0 / 3, 80.0 / 3]
        )
    # Without the campaigns table the WA lift is spread over TX.
    spread, _ = reconcile_origin(fc, shares, None, past=None, weight=0.0)
    assert spread.set_index([C.WAREHOUSE_ID, C.HORIZON]).loc[("W2", 2), C.FORECAST] == pytest.approx(80.0 / 4)
