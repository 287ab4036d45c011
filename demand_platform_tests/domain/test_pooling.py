"""Cross-warehouse reconciliation: the SKU's total over the warehouses split by their long-run shares."""

import numpy as np
import pandas as pd
import pytest

from demand_platform import columns as C
from demand_platform.forecasting.pooling import (
    POOLING_RATIO,
    pooled_point,
    pooling_weight,
    reconcile_across_warehouses,
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
