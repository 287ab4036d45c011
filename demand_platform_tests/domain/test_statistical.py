"""Tests of the vectorised statistical forecasters against sktime and statsforecast."""

import dataclasses
import warnings

import numpy as np
import pandas as pd
import pytest
from sktime.forecasting.croston import Croston as SktimeCroston
from statsforecast import models as sf

from demand_platform.models import statistical as st
from demand_platform.models.statistical import (
    SES,
    STAT_MODELS,
    TSB,
    AutoSES,
    Croston,
    CrostonSBA,
    MovingAverage,
    Naive,
    SeasonalNaive,
    StatForecaster,
    auto_ses,
    auto_ses_alpha,
    croston,
    croston_sba,
    empirical_quantiles,
    forecast_selected,
    moving_average,
    naive,
    seasonal_naive,
    select_by_backtest,
    ses,
    tsb,
)

H = 14
N_REF = 20
N_DAYS = 150


def _intermittent(n_series: int, n_days: int, seed: int) -> np.ndarray:
    """Gamma-Poisson intermittent demand; from 20 series on, rows 12-18 hold late launches and edge cases."""
    rng = np.random.default_rng(seed)
    rate = rng.gamma(0.7, 3.0, size=(n_series, 1))
    p_demand = rng.uniform(0.05, 0.9, size=(n_series, 1))
    y = rng.poisson(rate, size=(n_series, n_days)) * (rng.random((n_series, n_days)) < p_demand)
    y = y.astype(np.float64)
    if n_series < 20:
        return y
    for i, launch in zip(range(12, 16), (10, 37, 80, 122), strict=True):  # late launches
        y[i, :launch] = np.nan
    y[16, :-1] = 0.0  # a single demand, on the last day
    y[16, -1] = 4.0
    y[17, :] = 0.0
    y[17, 0] = 3.0  # a single demand, on the first day
    y[18, :60] = np.nan  # late launch whose first demand comes later still
    y[18, 60:100] = 0.0
    return y


@pytest.fixture(scope="module")
def ref_matrix() -> np.ndarray:
    """Twenty intermittent series, some launched late."""
    y = _intermittent(N_REF, N_DAYS, seed=7)
    assert (~np.isnan(y)).sum(axis=1).min() >= 28  # long enough for every reference model
    return y


def _trimmed(row: np.ndarray) -> np.ndarray:
    """The series from its first valid day on."""
    return row[np.argmax(~np.isnan(row)) :]


# (our kernel, statsforecast reference factory)
STATSFORECAST_CASES = {
    "croston_classic": (lambda y: croston(y, H, alpha=0.1), sf.CrostonClassic),
    "croston_sba": (lambda y: croston_sba(y, H, alpha=0.1), sf.CrostonSBA),
    "tsb": (lambda y: tsb(y, H, alpha_d=0.2, alpha_p=0.05), lambda: sf.TSB(alpha_d=0.2, alpha_p=0.05)),
    "tsb_default": (lambda y: tsb(y, H), lambda: sf.TSB(alpha_d=0.1, alpha_p=0.1)),
    "seasonal_naive": (lambda y: seasonal_naive(y, H, season=7), lambda: sf.SeasonalNaive(season_length=7)),
    "window_average": (lambda y: moving_average(y, H, window=28), lambda: sf.WindowAverage(window_size=28)),
    "ses": (lambda y: ses(y, H, alpha=0.3), lambda: sf.SimpleExponentialSmoothing(alpha=0.3)),
    "naive": (lambda y: naive(y, H), sf.Naive),
}


@pytest.fixture(scope="module")
def ours(ref_matrix: np.ndarray) -> dict[str, np.ndarray]:
    """Our forecasts of the whole reference matrix, computed once per kernel."""
    return {name: kernel(ref_matrix) for name, (kernel, _) in STATSFORECAST_CASES.items()}


@pytest.mark.parametrize("series", range(N_REF))
@pytest.mark.parametrize("case", list(STATSFORECAST_CASES))
def test_matches_statsforecast(
    case: str, series: int, ref_matrix: np.ndarray, ours: dict[str, np.ndarray]
) -> None:
    """Each kernel reproduces its statsforecast model on the series (from its first valid day)."""
    _, reference = STATSFORECAST_CASES[case]
    expected = reference().forecast(y=_trimmed(ref_matrix[series]), h=H)["mean"]
    np.testing.assert_allclose(ours[case][series], expected, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("alpha", [0.1, 0.42])
def test_croston_matches_sktime(alpha: float, ref_matrix: np.ndarray) -> None:
    """``croston`` is sktime's ``Croston(smoothing=alpha)``, series by series, to 1e-8."""
    got = croston(ref_matrix, H, alpha=alpha)
    for i, row in enumerate(ref_matrix):
        model = SktimeCroston(smoothing=alpha).fit(pd.Series(_trimmed(row)))
        expected = model.predict(fh=np.arange(1, H + 1)).to_numpy().ravel()
        np.testing.assert_allclose(got[i], expected, rtol=1e-8, atol=1e-10, err_msg=f"series {i}")


def test_croston_hand_computed() -> None:
    """sktime's docstring example, worked by hand: sizes 2, 7 and intervals 3, 1 with alpha 0.5."""
    y = np.array([[0.0, 0.0, 2.0, 7.0, 0.0]])
    # q: 2 -> 0.5*7 + 0.5*2 = 4.5; a: 3 -> 0.5*1 + 0.5*3 = 2
    np.testing.assert_allclose(croston(y, 2, alpha=0.5), [[2.25, 2.25]])
    np.testing.assert_allclose(croston_sba(y, 2, alpha=0.5), [[2.25 * 0.75, 2.25 * 0.75]])


def test_auto_ses_picks_grid_minimum_of_one_step_sse(ref_matrix: np.ndarray) -> None:
    """The alpha chosen minimises the one-step SSE (plain loop reference), then SES is statsforecast's."""
    grid = (0.05, 0.2, 0.5, 0.9)
    chosen = auto_ses_alpha(ref_matrix, grid)
    got = auto_ses(ref_matrix, H, alphas=grid)
    for i, row in enumerate(ref_matrix):
        x = _trimmed(row)
        sse = []
        for a in grid:
            level, total = x[0], 0.0
            for value in x[1:]:
                total += (value - level) ** 2
                level = a * value + (1 - a) * level
            sse.append(total)
        assert chosen[i] == grid[int(np.argmin(sse))]
        expected = sf.SimpleExponentialSmoothing(alpha=chosen[i]).forecast(y=x, h=H)["mean"]
        np.testing.assert_allclose(got[i], expected, rtol=1e-10)


def test_auto_ses_with_one_alpha_is_ses(ref_matrix: np.ndarray) -> None:
    """A single-value grid reduces ``auto_ses`` to ``ses``."""
    np.testing.assert_allclose(
        auto_ses(ref_matrix, 5, alphas=(0.3,)), ses(ref_matrix, 5, alpha=0.3), rtol=1e-12
    )


# --------------------------------------------------------------------------------------------------
# invariants, for every registered model
# --------------------------------------------------------------------------------------------------
ALL_MODELS = [*STAT_MODELS.values(), SeasonalNaive(season=3), MovingAverage(window=5), TSB(0.3, 0.02)]
MODEL_IDS = [f"{m.name}-{i}" for i, m in enumerate(ALL_MODELS)]


@pytest.mark.parametrize("model", ALL_MODELS, ids=MODEL_IDS)
def test_all_zero_series_forecast_zero(model: StatForecaster) -> None:
    """All-zero history -> zero forecasts, also for late launches and all-NaN rows."""
    y = np.zeros((3, 60))
    y[1, :30] = np.nan
    y[2, :] = np.nan
    np.testing.assert_array_equal(model.forecast(y, 10), np.zeros((3, 10)))


@pytest.mark.parametrize("h", [1, 7, 30])
@pytest.mark.parametrize("model", ALL_MODELS, ids=MODEL_IDS)
def test_shape_and_non_negative(model: StatForecaster, h: int) -> None:
    """Output is [n_series, h], finite and non-negative, even with negative inputs (returns)."""
    rng = np.random.default_rng(1)
    y = _intermittent(40, 90, seed=3)
    y[20:25] -= rng.poisson(3.0, size=(5, 90))  # returns make some values negative
    out = model.forecast(y, h)
    assert out.shape == (40, h)
    assert np.isfinite(out).all()
    assert (out >= 0).all()


@pytest.mark.parametrize("model", ALL_MODELS, ids=MODEL_IDS)
def test_leading_nan_is_late_launch(model: StatForecaster) -> None:
    """A NaN prefix forecasts exactly like the series with the prefix cut off (also short histories)."""
    y = _intermittent(10, 100, seed=11)
    for i, n_valid in enumerate((100, 60, 29, 8, 3, 1, 2, 45, 90, 14)):
        y[i, : 100 - n_valid] = np.nan
    together = model.forecast(y, 9)
    for i, row in enumerate(y):
        alone = model.forecast(_trimmed(row)[None, :], 9)
        np.testing.assert_allclose(together[i], alone[0], rtol=1e-12, err_msg=f"row {i}")


@pytest.mark.parametrize("model", ALL_MODELS, ids=MODEL_IDS)
def test_blocks_do_not_change_results(model: StatForecaster, monkeypatch: pytest.MonkeyPatch) -> None:
    """Processing series in small blocks gives the same numbers as one big block."""
    y = _intermittent(23, 70, seed=5)
    expected = model.forecast(y, 6)
    monkeypatch.setattr(st, "BLOCK_SIZE", 4)
    np.testing.assert_allclose(model.forecast(y, 6), expected, rtol=1e-12)


@pytest.mark.parametrize("model", ALL_MODELS, ids=MODEL_IDS)
def test_no_history(model: StatForecaster) -> None:
    """A matrix without days forecasts zeros; a matrix without series forecasts nothing."""
    np.testing.assert_array_equal(model.forecast(np.empty((2, 0)), 3), np.zeros((2, 3)))
    assert model.forecast(np.empty((0, 10)), 3).shape == (0, 3)


def test_short_history_fallbacks() -> None:
    """Documented differences to statsforecast for series shorter than the season or window."""
    y = np.array([[np.nan, np.nan, np.nan, 2.0, 4.0]])
    # seasonal positions without an observation get the series mean (3); statsforecast gives NaN there
    got = seasonal_naive(y, 7, season=4)
    np.testing.assert_allclose(got, [[3.0, 3.0, 2.0, 4.0, 3.0, 3.0, 2.0]])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference = sf.SeasonalNaive(season_length=4).forecast(y=np.array([2.0, 4.0]), h=7)["mean"]
    observed = ~np.isnan(reference)
    np.testing.assert_allclose(got[0, observed], reference[observed])
    assert observed.tolist() == [False, False, True, True, False, False, True]
    # the window average is taken over the valid days only; statsforecast gives NaN
    np.testing.assert_allclose(moving_average(y, 2, window=28), [[3.0, 3.0]])


def test_invalid_arguments() -> None:
    """Bad shapes and horizons are rejected."""
    with pytest.raises(ValueError, match="2-D"):
        croston(np.zeros(10), 3)
    with pytest.raises(ValueError, match="positive integer"):
        croston(np.zeros((1, 10)), 0)
    with pytest.raises(ValueError, match="alphas"):
        auto_ses(np.zeros((1, 10)), 3, alphas=())


def test_registry() -> None:
    """Every registry entry is keyed by its name and satisfies the protocol."""
    assert set(STAT_MODELS) == {
        "naive",
        "seasonal_naive",
        "moving_average",
        "croston",
        "croston_sba",
        "tsb",
        "ses",
        "auto_ses",
    }
    for name, model in STAT_MODELS.items():
        assert model.name == name
        assert callable(model.forecast)
    variant = dataclasses.replace(STAT_MODELS["croston"], alpha=0.3, name="croston_0.3")
    assert isinstance(variant, Croston)
    assert variant.name == "croston_0.3"
    assert {type(m) for m in STAT_MODELS.values()} == {
        Naive,
        SeasonalNaive,
        MovingAverage,
        Croston,
        CrostonSBA,
        TSB,
        SES,
        AutoSES,
    }


# --------------------------------------------------------------------------------------------------
# model selection
# --------------------------------------------------------------------------------------------------
def test_select_by_backtest_hand_computed() -> None:
    """h=1, two windows: naive |2 - 1| + |4 - 2| = 3 beats the 2-day average |2 - 1| + |4 - 1.5| = 3.5."""
    y = np.array([[1.0, 2.0, 4.0]])
    choice, errors = select_by_backtest(y, 1, [Naive(), MovingAverage(window=2)], n_windows=2)
    # moving average: window 1 -> mean(1) = 1 vs 2; window 2 -> mean(1, 2) = 1.5 vs 4
    np.testing.assert_allclose(errors, [[3.0, 3.5]])
    assert choice.tolist() == [0]


def test_select_by_backtest_rmse() -> None:
    """RMSE per window: naive sqrt(1) + sqrt(4) = 3, 2-day average sqrt(1) + sqrt(6.25) = 3.5."""
    y = np.array([[1.0, 2.0, 4.0]])
    choice, errors = select_by_backtest(y, 1, [MovingAverage(window=2), Naive()], n_windows=2, error="rmse")
    np.testing.assert_allclose(errors, [[3.5, 3.0]])
    assert choice.tolist() == [1]
    # with h=2 the RMSE differs from the MAE: window [2, 4] against a flat forecast of 1
    _, errors = select_by_backtest(y, 2, [Naive()], n_windows=1, error="rmse")
    np.testing.assert_allclose(errors, [[np.sqrt((1 + 9) / 2)]])
    with pytest.raises(ValueError, match="error"):
        select_by_backtest(y, 1, [Naive()], n_windows=1, error="mape")  # type: ignore[arg-type]


def test_select_by_backtest_picks_obvious_models() -> None:
    """Weekly-periodic series -> seasonal naive; iid noise -> moving average."""
    rng = np.random.default_rng(2)
    n_days = 210
    patterns = rng.poisson(6.0, size=(15, 7)).astype(np.float64)
    weekly = np.tile(patterns, n_days // 7)
    noise = rng.poisson(8.0, size=(15, n_days)).astype(np.float64)
    y = np.vstack([weekly, noise])
    models = [Naive(), SeasonalNaive(), MovingAverage(window=56)]
    choice, errors = select_by_backtest(y, 14, models, n_windows=3)
    assert errors.shape == (30, 3)
    assert (choice[:15] == 1).all()
    np.testing.assert_allclose(errors[:15, 1], 0.0)
    assert (choice[15:] == 2).all()


def test_select_by_backtest_late_launch_and_no_valid_days() -> None:
    """Windows before launch do not count; a series without any valid validation day gets model 0."""
    y = np.tile(np.array([0.0, 0.0, 9.0, 0.0, 0.0, 0.0, 0.0]), (3, 12))
    y[1, :70] = np.nan  # launched inside the last window
    y[2, :] = np.nan  # never launched
    choice, errors = select_by_backtest(y, 7, [MovingAverage(), SeasonalNaive()], n_windows=3)
    assert choice.tolist() == [1, 1, 0]
    assert np.isnan(errors[2]).all()
    assert np.isfinite(errors[:2]).all()


def test_select_by_backtest_rejects_short_history() -> None:
    """There must be history before the first validation origin."""
    with pytest.raises(ValueError, match="validation windows"):
        select_by_backtest(np.zeros((2, 30)), 10, [Naive()], n_windows=3)


def test_forecast_selected_uses_each_series_choice() -> None:
    """Each row gets its chosen model's forecast."""
    y = _intermittent(12, 80, seed=9)
    models = [Naive(), Croston(), MovingAverage()]
    choice = np.arange(12) % 3
    out = forecast_selected(y, 5, models, choice)
    for j, model in enumerate(models):
        np.testing.assert_array_equal(out[choice == j], model.forecast(y[choice == j], 5))
    with pytest.raises(ValueError, match="outside"):
        forecast_selected(y, 5, models, np.full(12, 3))


def test_empirical_quantiles() -> None:
    """Point forecast plus residual quantile, clipped at zero; no residuals -> the point forecast."""
    point = np.array([[10.0, 10.0], [1.0, 1.0], [5.0, 5.0]])
    residuals = np.array([[-2.0, 0.0, 2.0], [-4.0, -3.0, -2.0], [np.nan, np.nan, np.nan]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = empirical_quantiles(point, residuals, [0.5, 1.0])
    assert out.shape == (2, 3, 2)
    np.testing.assert_allclose(out[0], [[10.0, 10.0], [0.0, 0.0], [5.0, 5.0]])
    np.testing.assert_allclose(out[1], [[12.0, 12.0], [0.0, 0.0], [5.0, 5.0]])


# --- weekday profile ----------------------------------------------------------------------------------------------------
WEEKDAY_FACTORS = np.array([0.6, 0.8, 1.0, 1.0, 1.2, 1.6, 1.8])  # Monday .. Sunday


def _weekly_panel(n_series: int, n_days: int, last_weekday: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    weekday = (last_weekday - (n_days - 1) + np.arange(n_days)) % 7
    rate = rng.gamma(2.0, 3.0, n_series)[:, None] * WEEKDAY_FACTORS[weekday][None, :]
    return rng.poisson(rate).astype(np.float64)


@pytest.mark.parametrize("last_weekday", [0, 3, 6])
def test_pooled_weekday_index_recovers_the_weekly_profile(last_weekday: int) -> None:
    y = _weekly_panel(200, 364, last_weekday)
    index = st.pooled_weekday_index(y, last_weekday)
    assert index.shape == (7,)
    assert index.mean() == pytest.approx(1.0)
    np.testing.assert_allclose(index, WEEKDAY_FACTORS / WEEKDAY_FACTORS.mean(), rtol=0.03)


def test_pooled_weekday_index_counts_observed_days_only() -> None:
    """NaN cells (before a launch) are not zero demand; an all-NaN row changes nothing."""
    y = _weekly_panel(50, 364, 2)
    late = y.copy()
    late[:25, :200] = np.nan  # half the SKUs launched late
    unlaunched = np.vstack([y, np.full((1, 364), np.nan)])
    expected = st.pooled_weekday_index(y, 2)
    np.testing.assert_allclose(st.pooled_weekday_index(unlaunched, 2), expected)
    np.testing.assert_allclose(st.pooled_weekday_index(late, 2), expected, rtol=0.05)


def test_pooled_weekday_index_is_flat_without_demand_and_shrunk_with_little() -> None:
    assert (st.pooled_weekday_index(np.zeros((5, 100)), 4) == 1.0).all()
    assert (st.pooled_weekday_index(np.full((5, 100), np.nan), 4) == 1.0).all()
    assert (st.pooled_weekday_index(np.zeros((5, 0)), 4) == 1.0).all()
    # One unit on 14 Sundays: a raw index of 7 on Sunday (0 elsewhere), shrunk by 700 prior units to
    # 1 + 6 * 14 / 714 (and the other days to 1 - 14 / 714, so the mean stays 1).
    sparse = np.zeros((1, 364))
    sparse[0, -1::-7][:14] = 1.0  # the last column is a Sunday
    index = st.pooled_weekday_index(sparse, 6)
    assert index[6] == pytest.approx(1.0 + 6.0 * 14.0 / 714.0)
    np.testing.assert_allclose(index[:6], 1.0 - 14.0 / 714.0)
    assert st.pooled_weekday_index(sparse, 6, prior_units=0.0)[6] == pytest.approx(7.0)


def test_weekday_factors_follow_the_days_after_the_origin() -> None:
    index = np.arange(7, dtype=np.float64)
    np.testing.assert_array_equal(st.weekday_factors(index, 6, 9), [0, 1, 2, 3, 4, 5, 6, 0, 1])
    np.testing.assert_array_equal(st.weekday_factors(index, 2, 3), [3, 4, 5])


# --- probability that a series still sells ---------------------------------------------------------------------------
def _selling(rate: float, quiet_days: int, hazard: float) -> float:
    """P(selling after ``quiet_days`` quiet trading days) by summing over the day the series stopped."""
    keep = ((1.0 - hazard) * (1.0 - rate)) ** quiet_days
    stopped = sum(((1.0 - hazard) * (1.0 - rate)) ** (j - 1) * hazard for j in range(1, quiet_days + 1))
    return keep / (keep + stopped)


def test_active_probability_follows_the_stop_model() -> None:
    """Row 0 sold on 10 of the 20 days from its first to its last sale, then nothing for 6 days: rate
    (10 - 1/2) / 20 and 6 quiet days. Row 1 sold today."""
    y = np.zeros((2, 30))
    y[0, [4, 6, 8, 10, 12, 14, 16, 18, 20, 23]] = 2.0
    y[1, :] = 1.0
    got = st.active_probability(y, 0.1)
    assert got[0] == pytest.approx(_selling(9.5 / 20.0, 6, 0.1))
    assert got[1] == 1.0  # no quiet day


def test_active_probability_keeps_usual_silences_and_drops_unusual_ones() -> None:
    rng = np.random.default_rng(0)
    steady = rng.poisson(8.0, (20, 365)).astype(np.float64)
    stopped = steady.copy()
    stopped[:, -40:] = 0.0  # daily sellers silent for 40 days
    sporadic = (rng.random((20, 365)) < 0.1) * 3.0
    sporadic[:, -5:] = 0.0  # a usual silence for a 1-in-10-days seller
    sporadic[:, -6] = 3.0
    p = st.active_probability(np.vstack([steady, stopped, sporadic]), 0.01)
    assert (p[:20] > 0.98).all()
    assert (p[20:40] < 1e-3).all()
    assert (p[40:] > 0.9).all()


def test_active_probability_ignores_closed_days_launches_and_series_without_sales() -> None:
    rng = np.random.default_rng(1)
    y = (rng.random((6, 200)) < 0.3) * rng.integers(1, 5, (6, 200)).astype(np.float64)
    y[5] = 0.0  # never sold
    expected = st.active_probability(y, 0.2)
    closed = np.hstack([y[:, :150], np.zeros((6, 3)), y[:, 150:], np.zeros((6, 2))])  # nothing sold anywhere
    np.testing.assert_allclose(st.active_probability(closed, 0.2), expected)
    launched = y.copy()
    first = int(np.flatnonzero(y[2] > 0)[0])
    launched[2, :first] = np.nan  # NaN before the launch is no sale
    np.testing.assert_allclose(st.active_probability(launched, 0.2), expected)
    assert expected[5] == 1.0
    assert (st.active_probability(y, 0.0) == 1.0).all()
    assert st.active_probability(np.zeros((0, 10)), 0.2).shape == (0,)
    # A window where nothing sold anywhere (a warehouse without sales yet), or no window at all.
    assert (st.active_probability(np.zeros((3, 50)), 0.2) == 1.0).all()
    assert (st.active_probability(np.full((3, 50), np.nan), 0.2) == 1.0).all()
    assert (st.active_probability(np.zeros((3, 0)), 0.2) == 1.0).all()


@pytest.mark.parametrize("hazard", [-0.1, 1.0])
def test_active_probability_refuses_a_hazard_outside_0_1(hazard: float) -> None:
    with pytest.raises(ValueError, match="hazard"):
        st.active_probability(np.ones((2, 5)), hazard)
