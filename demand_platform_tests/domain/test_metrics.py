"""Tests of the accuracy metrics on tiny hand-computed arrays."""

import math

import numpy as np
import pandas as pd
import pytest

from demand_platform.columns import CATEGORY, FORECAST, HORIZON, QUANTITY
from demand_platform.metrics import (
    BIAS,
    MAE,
    METRIC_COLUMNS,
    N_OBS,
    RMSE,
    WMAPE,
    bias,
    coverage,
    m5_weights,
    mae,
    metrics_by_group,
    pinball_loss,
    rmse,
    rmsse,
    wmape,
    wrmsse,
)

ACTUAL = np.array([2.0, 0.0, 4.0, 6.0])
PREDICTED = np.array([3.0, 1.0, 2.0, 6.0])
# errors f - a: 1, 1, -2, 0; |e| sum 4; e^2 sum 6; sum a 12


def test_scalar_metrics_hand_computed() -> None:
    """WMAPE 4/12, MAE 4/4, RMSE sqrt(6/4), bias (1+1-2+0)/12 = 0."""
    assert wmape(ACTUAL, PREDICTED) == pytest.approx(4 / 12)
    assert mae(ACTUAL, PREDICTED) == pytest.approx(1.0)
    assert rmse(ACTUAL, PREDICTED) == pytest.approx(math.sqrt(1.5))
    assert bias(ACTUAL, PREDICTED) == pytest.approx(0.0)
    assert bias(ACTUAL, PREDICTED + 1.0) == pytest.approx(4 / 12)


def test_metrics_ignore_nan_pairs_and_accept_matrices() -> None:
    """NaN on either side drops the pair; 2-D inputs are pooled."""
    actual = np.array([[2.0, np.nan], [4.0, 6.0]])
    forecast = np.array([[3.0, 5.0], [2.0, np.nan]])
    assert mae(actual, forecast) == pytest.approx(1.5)  # pairs (2, 3) and (4, 2)
    assert wmape(actual, forecast) == pytest.approx(3 / 6)


def test_zero_denominators_are_nan() -> None:
    """No actual volume -> NaN WMAPE and bias; no pair at all -> NaN means."""
    zeros = np.zeros(3)
    assert math.isnan(wmape(zeros, np.ones(3)))
    assert math.isnan(bias(zeros, np.ones(3)))
    empty = np.array([np.nan])
    for metric in (wmape, mae, rmse, bias, coverage):
        assert math.isnan(metric(empty, np.array([1.0])))
    assert math.isnan(pinball_loss(empty, np.array([1.0]), 0.5))


def test_coverage() -> None:
    """Share of actuals at or below the upper forecast (ties count as covered)."""
    assert coverage(ACTUAL, np.array([2.0, 0.5, 3.0, 10.0])) == pytest.approx(3 / 4)


def test_pinball_loss_hand_computed() -> None:
    """q=0.9: under-forecast by 2 costs 1.8, over-forecast by 1 costs 0.1."""
    actual = np.array([5.0, 1.0])
    forecast = np.array([3.0, 2.0])
    assert pinball_loss(actual, forecast, 0.9) == pytest.approx((1.8 + 0.1) / 2)
    assert pinball_loss(actual, forecast, 0.5) == pytest.approx((1.0 + 0.5) / 2)
    with pytest.raises(ValueError):
        pinball_loss(actual, forecast, 1.0)


def test_rmsse_scale_starts_at_first_sale() -> None:
    """The naive-error scale skips the NaN prefix and the zeros before the first sale."""
    history = np.array(
        [
            [np.nan, 0.0, 0.0, 2.0, 4.0, 4.0],  # diffs from the first sale: 2, 0 -> scale 2
            [1.0, 3.0, 1.0, 3.0, 1.0, 3.0],  # diffs 2, -2, 2, -2, 2 -> scale 4
            [0.0, 0.0, 0.0, 0.0, 0.0, 0.0],  # no sale -> undefined
            [0.0, 0.0, 0.0, 0.0, 0.0, 5.0],  # single sale on the last day -> no difference
        ]
    )
    actual = np.array([[4.0, 4.0], [3.0, 1.0], [1.0, 0.0], [5.0, 5.0]])
    forecast = np.array([[6.0, 4.0], [1.0, 1.0], [0.0, 0.0], [5.0, 4.0]])
    # mse: (4 + 0) / 2 = 2 ; (4 + 0) / 2 = 2
    got = rmsse(actual, forecast, history)
    np.testing.assert_allclose(got[:2], [math.sqrt(2 / 2), math.sqrt(2 / 4)])
    assert np.isnan(got[2:]).all()


def test_rmsse_single_series_and_shape_check() -> None:
    """1-D inputs are one series; mismatched shapes are rejected."""
    got = rmsse(np.array([3.0]), np.array([1.0]), np.array([1.0, 3.0, 1.0]))
    np.testing.assert_allclose(got, [math.sqrt(4 / 4)])
    with pytest.raises(ValueError):
        rmsse(np.zeros((2, 3)), np.zeros((2, 2)), np.zeros((2, 5)))


def test_wrmsse_normalises_weights_and_skips_undefined_series() -> None:
    """Weights 3:1 over the defined series; the undefined series' weight is dropped."""
    history = np.array([[1.0, 3.0, 1.0], [1.0, 3.0, 1.0], [0.0, 0.0, 0.0]])  # scale 4, 4, undefined
    actual = np.array([[3.0], [1.0], [2.0]])
    forecast = np.array([[1.0], [5.0], [0.0]])  # rmsse 1, 2, NaN
    assert wrmsse(actual, forecast, history, np.array([6.0, 2.0, 100.0])) == pytest.approx(
        (6 * 1 + 2 * 2) / 8
    )
    assert math.isnan(wrmsse(actual, forecast, history, np.array([0.0, 0.0, 1.0])))
    with pytest.raises(ValueError):
        wrmsse(actual, forecast, history, np.array([1.0, -1.0, 0.0]))


def test_m5_weights_dollar_sales_over_last_days() -> None:
    """Dollar sales over the trailing window, normalised; older days and NaN do not count."""
    units = np.array([[100.0, 1.0, 1.0], [0.0, np.nan, 2.0], [50.0, 0.0, 0.0]])
    prices = np.array([2.0, 3.0, 10.0])
    np.testing.assert_allclose(m5_weights(units, prices, last=2), [4 / 10, 6 / 10, 0.0])
    daily = np.array([[1.0, 1.0, 2.0], [1.0, 1.0, 1.0], [1.0, 1.0, 1.0]])
    np.testing.assert_allclose(m5_weights(units, daily, last=2), [3 / 5, 2 / 5, 0.0])
    assert np.isnan(m5_weights(np.zeros((2, 4)), np.ones(2))).all()


def test_metrics_by_group_hand_computed() -> None:
    """Per-group sums, NaN rows skipped, zero-volume group -> NaN WMAPE and bias."""
    df = pd.DataFrame(
        {
            CATEGORY: ["a", "a", "a", "b", "b", "c"],
            HORIZON: [1, 2, 1, 1, 2, 1],
            QUANTITY: [2.0, 4.0, np.nan, 0.0, 0.0, 5.0],
            FORECAST: [3.0, 1.0, 7.0, 1.0, 3.0, np.nan],
        }
    )
    out = metrics_by_group(df, CATEGORY, QUANTITY, FORECAST)
    assert list(out.columns) == [CATEGORY, *METRIC_COLUMNS]
    assert out[CATEGORY].tolist() == ["a", "b", "c"]
    a, b, c = (out.iloc[i] for i in range(3))
    # group a: errors +1, -3 on actuals 2, 4
    assert a[WMAPE] == pytest.approx(4 / 6)
    assert a[MAE] == pytest.approx(2.0)
    assert a[RMSE] == pytest.approx(math.sqrt(10 / 2))
    assert a[BIAS] == pytest.approx(-2 / 6)
    assert a[N_OBS] == 2
    # group b: no volume
    assert math.isnan(b[WMAPE]) and math.isnan(b[BIAS])
    assert b[MAE] == pytest.approx(2.0)
    # group c: no valid pair
    assert c[N_OBS] == 0
    assert out.loc[2, [WMAPE, MAE, RMSE, BIAS]].isna().all()
    # the scalar functions agree with the grouped ones
    rows_a = df[df[CATEGORY] == "a"]
    assert a[WMAPE] == pytest.approx(wmape(rows_a[QUANTITY].to_numpy(), rows_a[FORECAST].to_numpy()))


def test_metrics_by_group_several_keys() -> None:
    """Grouping by a list of columns gives one row per key combination."""
    df = pd.DataFrame(
        {
            CATEGORY: ["a", "a", "b"],
            HORIZON: [1, 2, 1],
            QUANTITY: [2.0, 4.0, 1.0],
            FORECAST: [3.0, 1.0, 1.0],
        }
    )
    out = metrics_by_group(df, [CATEGORY, HORIZON], QUANTITY, FORECAST)
    assert out[[CATEGORY, HORIZON]].to_numpy().tolist() == [["a", 1], ["a", 2], ["b", 1]]
    np.testing.assert_allclose(out[MAE], [1.0, 3.0, 0.0])
    np.testing.assert_allclose(out[WMAPE], [0.5, 0.75, 0.0])
