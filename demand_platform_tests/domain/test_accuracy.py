"""Tests of forecast scoring, accuracy tables and drift checks on tiny hand-computed frames."""

import math

import numpy as np
import pandas as pd
import pytest

from demand_platform import columns as C
from demand_platform.accuracy import (
    ACTUAL,
    BY_CATEGORY,
    BY_HORIZON_BAND,
    BY_MODEL,
    BY_TIER,
    BY_TIER_AND_ORIGIN,
    COVERAGE_P90,
    COVERAGE_P95,
    FLAGGED,
    HORIZON_BAND,
    LEAD_TIME,
    LEAD_TIME_WMAPE,
    OVERALL,
    PSI,
    TABLE_NAMES,
    WEEK_START,
    WEEKLY,
    WEEKLY_WMAPE,
    accuracy_tables,
    feature_drift,
    lead_time_totals,
    performance_drift,
    psi,
    score_forecasts,
    weekly_totals,
)
from demand_platform.metrics import BIAS, N_OBS, WMAPE

ORIGIN = pd.Timestamp("2024-01-07")  # a Sunday: targets D+1.. start on Monday 2024-01-08
PRODUCTS = pd.DataFrame({C.SKU: ["A", "B"], C.CATEGORY: ["toys", "garden"], C.PRICE: [1.0, 2.0]})


def forecast_rows(
    sku: str,
    forecast: list[float],
    origin: pd.Timestamp = ORIGIN,
    tier: int = 1,
    model: str = "m",
    spread: float = 1.0,
) -> pd.DataFrame:
    """Forecasts of one SKU in W1 from one origin, horizons 1..len(forecast); P50 = point, P90/P95 above."""
    h = np.arange(1, len(forecast) + 1)
    point = np.asarray(forecast, dtype=np.float64)
    return pd.DataFrame(
        {
            C.SKU: sku,
            C.WAREHOUSE_ID: "W1",
            C.ORIGIN_DATE: origin,
            C.TARGET_DATE: origin + pd.to_timedelta(h, unit="D"),
            C.HORIZON: h,
            C.FORECAST: point,
            C.P50: point,
            C.P90: point + spread,
            C.P95: point + 2 * spread,
            C.TIER: tier,
            C.MODEL: model,
        }
    )


def actual_rows(
    sku: str, quantity: list[float], start: pd.Timestamp = ORIGIN + pd.Timedelta(days=1)
) -> pd.DataFrame:
    """raw_sales rows of one SKU in W1 on consecutive days from ``start``."""
    q = np.asarray(quantity, dtype=np.float64)
    return pd.DataFrame(
        {
            C.SKU: sku,
            C.WAREHOUSE_ID: "W1",
            C.DATE: pd.date_range(start, periods=len(q), freq="D"),
            C.QUANTITY: q,
            C.REVENUE: q,
            C.N_ORDERS: (q > 0).astype(np.int64),
        }
    )


def test_wmape_by_tier_hand_computed() -> None:
    """Tier 1: |3-2| + |1-2| over 4 -> 0.5; tier 2: |4-5| + |6-5| over 10 -> 0.2; overall 4/14."""
    forecasts = pd.concat([forecast_rows("A", [3, 1], tier=1), forecast_rows("B", [4, 6], tier=2)])
    actuals = pd.concat([actual_rows("A", [2, 2]), actual_rows("B", [5, 5])])
    tables = accuracy_tables(score_forecasts(forecasts, actuals, PRODUCTS, as_of="2024-01-09"))
    by_tier = tables[BY_TIER].set_index(C.TIER)
    assert by_tier.loc[1, WMAPE] == pytest.approx(0.5)
    assert by_tier.loc[2, WMAPE] == pytest.approx(0.2)
    assert by_tier.loc[1, BIAS] == pytest.approx(0.0)
    assert by_tier.loc[2, N_OBS] == 2
    assert tables[OVERALL][WMAPE].iloc[0] == pytest.approx(4 / 14)
    assert tables[BY_CATEGORY].set_index(C.CATEGORY).loc["toys", WMAPE] == pytest.approx(0.5)
    assert set(tables) == set(TABLE_NAMES)


def test_coverage_of_quantiles() -> None:
    """Actuals 2, 2 against P90 = forecast + 1 = 4, 2 and P95 = 5, 3: P90 covers 2/2, then 1/2 with 3 > 2."""
    forecasts = forecast_rows("A", [3, 1])
    actuals = actual_rows("A", [2, 3])
    tables = accuracy_tables(score_forecasts(forecasts, actuals, PRODUCTS, as_of="2024-01-09"))
    overall = tables[OVERALL].iloc[0]
    assert overall[COVERAGE_P90] == pytest.approx(0.5)  # 2 <= 4 yes, 3 <= 2 no
    assert overall[COVERAGE_P95] == pytest.approx(1.0)  # 2 <= 5, 3 <= 3


def test_future_targets_are_not_scored() -> None:
    """Targets after as_of are excluded even when the actuals frame already holds them (no leakage)."""
    forecasts = forecast_rows("A", [1, 1, 1, 1])
    actuals = actual_rows("A", [1, 1, 100, 100])
    scored = score_forecasts(forecasts, actuals, PRODUCTS, as_of=ORIGIN + pd.Timedelta(days=2))
    assert scored.n_not_due == 2
    assert scored.n_scored == 2
    assert scored.frame[C.TARGET_DATE].max() == ORIGIN + pd.Timedelta(days=2)
    assert accuracy_tables(scored)[OVERALL][WMAPE].iloc[0] == pytest.approx(0.0)
    changed = actuals.assign(**{C.QUANTITY: [1.0, 1.0, 0.0, 7.0]})
    again = accuracy_tables(score_forecasts(forecasts, changed, PRODUCTS, ORIGIN + pd.Timedelta(days=2)))
    pd.testing.assert_frame_equal(again[OVERALL], accuracy_tables(scored)[OVERALL])


def test_missing_actuals_zero_on_covered_days_and_excluded_otherwise() -> None:
    """Day 1 is covered (B has a row) but A has none -> 0; day 2 has no row at all in W1 -> excluded."""
    forecasts = forecast_rows("A", [2, 2])
    actuals = pd.concat([actual_rows("B", [5]), actual_rows("A", [-3], start=ORIGIN)])
    scored = score_forecasts(forecasts, actuals, PRODUCTS, as_of="2024-01-31")
    assert scored.n_zero_filled == 1
    assert scored.n_uncovered == 1
    assert scored.n_scored == 1
    assert scored.frame[ACTUAL].tolist() == [0.0]
    assert scored.summary()["n_uncovered"] == 1


def test_negative_net_quantity_is_clipped() -> None:
    """A net return day (quantity -4) is zero demand."""
    scored = score_forecasts(forecast_rows("A", [1]), actual_rows("A", [-4]), PRODUCTS, as_of="2024-01-08")
    assert scored.frame[ACTUAL].tolist() == [0.0]


def test_horizon_band_and_model_tables() -> None:
    """Horizons 1-7 / 8-14 / 15-30 fall in their bands; each model gets a row."""
    forecasts = pd.concat(
        [forecast_rows("A", [1.0] * 30, model="ets"), forecast_rows("B", [2.0] * 30, model="lgbm")]
    )
    actuals = pd.concat([actual_rows("A", [1.0] * 30), actual_rows("B", [2.0] * 30)])
    tables = accuracy_tables(score_forecasts(forecasts, actuals, PRODUCTS, as_of="2024-03-01"))
    bands = tables[BY_HORIZON_BAND]
    assert bands[HORIZON_BAND].astype(str).tolist() == ["1-7", "8-14", "15-30"]
    assert bands[N_OBS].tolist() == [14, 14, 32]
    assert tables[BY_MODEL][C.MODEL].tolist() == ["ets", "lgbm"]
    assert len(tables[BY_TIER_AND_ORIGIN]) == 1


def test_lead_time_totals_hand_computed() -> None:
    """L = 3: forecast 1+2+3 = 6 vs actual 2+2+5 = 9 -> WMAPE 3/9; origin 2 lacks day 3 -> dropped."""
    origin2 = ORIGIN + pd.Timedelta(days=1)
    forecasts = pd.concat([forecast_rows("A", [1, 2, 3, 4]), forecast_rows("A", [1, 1, 1], origin=origin2)])
    actuals = actual_rows("A", [2, 2, 5, 0])
    scored = score_forecasts(forecasts, actuals, PRODUCTS, as_of=ORIGIN + pd.Timedelta(days=3))
    totals = lead_time_totals(scored, lead_time=3)
    assert len(totals) == 1
    assert totals[C.FORECAST].iloc[0] == pytest.approx(6.0)
    assert totals[ACTUAL].iloc[0] == pytest.approx(9.0)
    tables = accuracy_tables(scored, lead_time=3)
    assert tables[OVERALL][LEAD_TIME_WMAPE].iloc[0] == pytest.approx(3 / 9)
    assert tables[LEAD_TIME][WMAPE].iloc[0] == pytest.approx(3 / 9)
    with pytest.raises(ValueError, match="lead_time"):
        lead_time_totals(scored, lead_time=0)


def test_weekly_totals_complete_iso_weeks_only() -> None:
    """Origin Sunday 2024-01-07, 10 days: week of Mon 8th complete (7 days), week of 15th partial -> dropped."""
    forecasts = forecast_rows("A", [1.0] * 10)
    actuals = actual_rows("A", [2.0] * 10)
    scored = score_forecasts(forecasts, actuals, PRODUCTS, as_of="2024-02-01")
    weeks = weekly_totals(scored)
    assert weeks[WEEK_START].tolist() == [pd.Timestamp("2024-01-08")]
    assert weeks[C.FORECAST].iloc[0] == pytest.approx(7.0)
    assert weeks[ACTUAL].iloc[0] == pytest.approx(14.0)
    tables = accuracy_tables(scored)
    assert tables[OVERALL][WEEKLY_WMAPE].iloc[0] == pytest.approx(0.5)
    assert tables[WEEKLY][N_OBS].iloc[0] == 1


def test_weekly_totals_follow_iso_weeks_across_origin_weekdays() -> None:
    """An origin on a Wednesday: the first complete week is the following Monday..Sunday."""
    origin = pd.Timestamp("2024-01-10")  # Wednesday
    forecasts = forecast_rows("A", list(range(1, 15)), origin=origin)
    actuals = actual_rows("A", [1.0] * 14, start=origin + pd.Timedelta(days=1))
    weeks = weekly_totals(score_forecasts(forecasts, actuals, PRODUCTS, as_of="2024-02-01"))
    assert weeks[WEEK_START].tolist() == [pd.Timestamp("2024-01-15")]
    assert weeks[C.FORECAST].iloc[0] == pytest.approx(sum(range(5, 12)))  # horizons 5..11 = Mon 15..Sun 21


def test_nothing_due_gives_nan_tables_and_a_drift_reason() -> None:
    """as_of before every target: nothing scored, NaN metrics, 'no scored forecasts'."""
    scored = score_forecasts(forecast_rows("A", [1, 1]), actual_rows("A", [1, 1]), PRODUCTS, as_of=ORIGIN)
    tables = accuracy_tables(scored)
    assert scored.n_scored == 0
    assert tables[OVERALL][N_OBS].iloc[0] == 0
    assert math.isnan(tables[OVERALL][WMAPE].iloc[0])
    assert performance_drift(tables) == ["no scored forecasts"]


def test_performance_drift_reasons() -> None:
    """A good forecast raises nothing; a 50% over-forecast raises WMAPE and bias reasons."""
    actuals = actual_rows("A", [10.0] * 14)
    good = accuracy_tables(
        score_forecasts(forecast_rows("A", [10.0] * 14, spread=5), actuals, PRODUCTS, "2024-02-01")
    )
    assert performance_drift(good) == []
    bad = accuracy_tables(score_forecasts(forecast_rows("A", [15.0] * 14), actuals, PRODUCTS, "2024-02-01"))
    reasons = performance_drift(bad, wmape_max=0.25, bias_max=0.10)
    assert any("overall lead_time WMAPE 0.500" in r for r in reasons)
    assert any("overall bias +0.500" in r for r in reasons)
    assert any(r.startswith("tier 1 bias") for r in reasons)
    assert performance_drift(bad, wmape_max=0.6, bias_max=0.6) == []
    narrow = accuracy_tables(
        score_forecasts(forecast_rows("A", [8.0] * 14, spread=0.5), actuals, PRODUCTS, "2024-02-01")
    )
    assert any(COVERAGE_P95 in r for r in performance_drift(narrow, wmape_max=1.0, bias_max=1.0))
    with pytest.raises(ValueError, match="level"):
        performance_drift(good, level="hourly")


def test_psi_identical_is_zero_and_shift_is_large() -> None:
    """Same sample -> 0; a one-sigma mean shift -> well above 0.2; discrete zero-heavy data works."""
    rng = np.random.default_rng(0)
    base = rng.normal(size=5000)
    assert psi(base, base) == pytest.approx(0.0, abs=1e-12)
    assert psi(base, rng.permutation(base)) == pytest.approx(0.0, abs=1e-12)
    assert psi(base, rng.normal(size=5000)) < 0.05
    assert psi(base, rng.normal(loc=1.0, size=5000)) > 0.2
    counts = rng.poisson(0.3, size=5000).astype(float)
    assert psi(counts, counts) == pytest.approx(0.0, abs=1e-12)
    assert psi(counts, rng.poisson(1.5, size=5000).astype(float)) > 0.2
    assert math.isnan(psi(np.array([np.nan]), base))
    with pytest.raises(ValueError, match="bins"):
        psi(base, base, bins=1)


def test_feature_drift_flags_shifted_columns_only() -> None:
    """Shifted numeric and categorical columns are flagged, the stable one is not."""
    rng = np.random.default_rng(1)
    train = pd.DataFrame(
        {
            "stable": rng.normal(size=4000),
            "shifted": rng.normal(size=4000),
            "cat": rng.choice(list("xyz"), 4000),
        }
    )
    recent = pd.DataFrame(
        {
            "stable": rng.normal(size=2000),
            "shifted": rng.normal(2.0, size=2000),
            "cat": rng.choice(list("x"), 2000),
        }
    )
    out = feature_drift(train, recent, ["stable", "shifted", "cat"], threshold=0.2).set_index("feature")
    assert out[FLAGGED].to_dict() == {"stable": False, "shifted": True, "cat": True}
    assert out.loc["stable", PSI] < 0.05


def test_duplicate_actual_rows_are_rejected() -> None:
    """Two raw_sales rows for one SKU x warehouse x day would double-count a forecast: refused."""
    actuals = pd.concat([actual_rows("A", [1.0]), actual_rows("A", [2.0])])
    with pytest.raises(ValueError, match="duplicate"):
        score_forecasts(forecast_rows("A", [1.0]), actuals, PRODUCTS, as_of="2024-01-08")
