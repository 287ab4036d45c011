"""Tests of the point-in-time feature table on small hand-checked series.

The world: daily history from 2023-01-01 to 2024-04-30 (past the origin 2024-03-01, so that leakage would
show), in two warehouses W1 (Austin, TX) and W2 (Fresno, CA), for

* ``A``: quantity = day index (0, 1, 2, ...), sold at 90% of its list price 2.0 (toys);
* ``B``: 1 unit on Mondays, 0 otherwise, and a return of -3 on Tuesday 2024-02-27 (toys, price 6);
* ``C``: launched 2024-02-20, 5 units a day (garden, price 10, seasonal);
* ``Z``: launched long ago, never sold (garden, price 30);
* ``F``: in the catalog (toys, price 100) but launched 2024-04-01, after the origin.
"""

import dataclasses
import datetime as dt
import math

import numpy as np
import pandas as pd
import pytest

from demand_platform import features as F
from demand_platform.calendar import build_calendar
from demand_platform.columns import (
    BRAND,
    CAMPAIGN_ID,
    CAMPAIGN_TYPE,
    CAPACITY_UNITS,
    CATEGORY,
    DATE,
    DISCOUNT_PERCENT,
    END_DATE,
    HORIZON,
    IS_EXTREME_WEATHER,
    IS_SEASONAL,
    LATITUDE,
    LAUNCH_DATE,
    LOCATION_CITY,
    LOCATION_STATE,
    LONGITUDE,
    N_ORDERS,
    OPERATIONAL_SINCE,
    ORIGIN_DATE,
    PRECIPITATION_MM,
    PRICE,
    QUANTITY,
    REVENUE,
    SKU,
    START_DATE,
    SUB_CATEGORY,
    TARGET_REGION,
    TEMPERATURE_AVG,
    WAREHOUSE_ID,
    WEIGHT_KG,
)
from demand_platform.tables import SourceTables
from demand_platform.tiering import TierConfig, assign_tiers, features_and_tiers

START = pd.Timestamp("2023-01-01")
ORIGIN = pd.Timestamp("2024-03-01")  # a Friday
END = pd.Timestamp("2024-04-30")
DATES = pd.date_range(START, END, freq="D")
T0 = (ORIGIN - START).days  # 425
C_LAUNCH = pd.Timestamp("2024-02-20")
F_LAUNCH = pd.Timestamp("2024-04-01")
RETURN_DAY = pd.Timestamp("2024-02-27")
MISSING_HISTORY = F.MISSING_HISTORY_DAYS
PRICES = {"A": 2.0, "B": 6.0, "C": 10.0, "Z": 30.0, "F": 100.0}


def _series() -> dict[str, np.ndarray]:
    """Daily quantity per SKU over DATES; NaN = no row (before launch)."""
    index = np.arange(len(DATES), dtype=np.float64)
    monday = (DATES.dayofweek == 0).astype(np.float64)
    b = monday.copy()
    b[DATES.get_loc(RETURN_DAY)] = -3.0
    c = np.where(DATES >= C_LAUNCH, 5.0, np.nan)
    f = np.where(DATES >= F_LAUNCH, 7.0, np.nan)
    return {"A": index, "B": b, "C": c, "Z": np.zeros(len(DATES)), "F": f}


def _history(warehouse_id: str, series: dict[str, np.ndarray] | None = None) -> pd.DataFrame:
    frames = []
    for sku, quantity in (series or _series()).items():
        keep = ~np.isnan(quantity)
        unit_price = PRICES.get(sku, 1.0) * (0.9 if sku == "A" else 1.0)
        frames.append(
            pd.DataFrame(
                {
                    SKU: sku,
                    WAREHOUSE_ID: warehouse_id,
                    DATE: DATES[keep],
                    QUANTITY: quantity[keep],
                    REVENUE: quantity[keep] * unit_price,
                    N_ORDERS: np.maximum(quantity[keep], 0).astype(np.int64),
                }
            )
        )
    return pd.concat(frames, ignore_index=True).sort_values([DATE, SKU], ignore_index=True)


def _products() -> pd.DataFrame:
    return pd.DataFrame(
        {
            SKU: ["A", "B", "C", "Z", "F"],
            CATEGORY: ["toys", "toys", "garden", "garden", "toys"],
            SUB_CATEGORY: ["t1", "t2", "g1", "g1", "t1"],
            BRAND: ["acme", "acme", "green", "green", "acme"],
            PRICE: [PRICES[s] for s in "ABCZF"],
            WEIGHT_KG: [0.1, 0.5, 2.0, 3.0, 1.0],
            IS_SEASONAL: [False, False, True, False, False],
            LAUNCH_DATE: pd.to_datetime(["2022-06-01", "2022-06-01", C_LAUNCH, "2022-01-01", F_LAUNCH]),
        }
    )


def _warehouses() -> pd.DataFrame:
    return pd.DataFrame(
        {
            WAREHOUSE_ID: ["W1", "W2"],
            LOCATION_CITY: ["Austin", "Fresno"],
            LOCATION_STATE: ["TX", "CA"],
            LATITUDE: [30.3, 36.7],
            LONGITUDE: [-97.7, -119.8],
            CAPACITY_UNITS: [10_000, 20_000],
            OPERATIONAL_SINCE: pd.to_datetime(["2020-01-01", "2020-01-01"]),
        }
    )


def _campaigns() -> pd.DataFrame:
    day = pd.Timedelta(days=1)
    return pd.DataFrame(
        {
            CAMPAIGN_ID: [1, 2, 3],
            START_DATE: [ORIGIN - 2 * day, ORIGIN + 3 * day, ORIGIN + 20 * day],
            END_DATE: [ORIGIN + 2 * day, ORIGIN + 9 * day, ORIGIN + 40 * day],
            SKU: [None, "A", None],  # 1 and 3 apply to every SKU
            DISCOUNT_PERCENT: [10.0, 25.0, 50.0],
            CAMPAIGN_TYPE: ["flash", "bundle", "seasonal"],
            TARGET_REGION: [None, "TX", "CA"],  # 2 only in Texas, 3 only in California
        }
    )


def _weather() -> pd.DataFrame:
    return pd.DataFrame(
        {
            DATE: DATES,
            LOCATION_CITY: "Austin",
            TEMPERATURE_AVG: np.arange(len(DATES), dtype=np.float64),
            PRECIPITATION_MM: 1.0,
            IS_EXTREME_WEATHER: DATES == ORIGIN,
        }
    )


@pytest.fixture(scope="module")
def world() -> dict[str, pd.DataFrame]:
    return {
        "history_w1": _history("W1"),
        "history_w2": _history("W2"),
        "products": _products(),
        "warehouses": _warehouses(),
        "calendar": build_calendar(START, END + pd.Timedelta(days=400)),
        "campaigns": _campaigns(),
        "weather": _weather(),
    }


def _tables(world: dict[str, pd.DataFrame]) -> SourceTables:
    """The world's source tables."""
    return SourceTables(
        world["products"],
        world["warehouses"],
        calendar=world["calendar"],
        campaigns=world["campaigns"],
        weather=world["weather"],
    )


def _build(
    world: dict[str, pd.DataFrame],
    warehouse_id: str = "W1",
    origin: pd.Timestamp = ORIGIN,
    history: pd.DataFrame | None = None,
    weather: pd.DataFrame | None = None,
    use_weather: bool = True,
) -> pd.DataFrame:
    return F.build_features(
        world[f"history_{warehouse_id.lower()}"] if history is None else history,
        SourceTables(
            world["products"],
            world["warehouses"],
            calendar=world["calendar"],
            campaigns=world["campaigns"],
            weather=(world["weather"] if weather is None else weather) if use_weather else None,
        ),
        origin=origin,
        warehouse_id=warehouse_id,
    )


@pytest.fixture(scope="module")
def at_origin(world: dict[str, pd.DataFrame]) -> pd.DataFrame:
    return _build(world).set_index(SKU)


# --- shape -------------------------------------------------------------------------------------------------------
def test_one_row_per_active_sku_with_declared_columns(world: dict[str, pd.DataFrame]) -> None:
    frame = _build(world)
    assert tuple(frame.columns) == F.FEATURE_TABLE_COLUMNS
    assert frame[SKU].tolist() == ["A", "B", "C", "Z"]  # F launches after the origin
    assert (frame[ORIGIN_DATE] == ORIGIN).all()
    assert (frame[WAREHOUSE_ID] == "W1").all()
    assert all(frame[name].dtype == np.float64 for name in F.FEATURE_COLUMNS)
    assert len(set(F.FEATURE_COLUMNS)) == len(F.FEATURE_COLUMNS)
    assert not set(F.FEATURE_COLUMNS) & set(F.CATEGORICAL_FEATURES)


def test_origin_temporal_features(at_origin: pd.DataFrame) -> None:
    row = at_origin.loc["A"]
    assert row[F.ORIGIN_DAY_OF_WEEK] == 5
    assert row[F.ORIGIN_MONTH] == 3
    assert row[F.ORIGIN_DAY_OF_MONTH] == 1
    assert row[F.ORIGIN_WEEK_OF_YEAR] == 9
    assert row[F.ORIGIN_QUARTER] == 1
    assert row[F.ORIGIN_IS_WEEKEND] == 0
    assert row[F.ORIGIN_IS_MONTH_START] == 1
    assert row[F.ORIGIN_IS_MONTH_END] == 0
    assert row[F.ORIGIN_IS_QUARTER_START] == 0
    assert row[F.ORIGIN_DOW_SIN] == pytest.approx(math.sin(2 * math.pi * 4 / 7))
    assert row[F.ORIGIN_DOY_COS] == pytest.approx(math.cos(2 * math.pi * 60 / 365.25))


# --- lags and windows --------------------------------------------------------------------------------------------
def test_lags_and_windows_of_a_linear_series(at_origin: pd.DataFrame) -> None:
    row = at_origin.loc["A"]  # demand on day t is t; the origin is day T0
    for lag in F.DEMAND_LAGS:
        assert row[F.DEMAND_LAG_COLUMNS[lag]] == T0 + 1 - lag
    for w in F.ROLLING_WINDOWS:
        assert row[F.DEMAND_ROLL_MEAN_COLUMNS[w]] == pytest.approx(T0 - (w - 1) / 2)
        assert row[F.DEMAND_ROLL_STD_COLUMNS[w]] == pytest.approx(math.sqrt(w * (w + 1) / 12))
        assert row[F.DEMAND_ROLL_MIN_COLUMNS[w]] == T0 - w + 1
        assert row[F.DEMAND_ROLL_MAX_COLUMNS[w]] == T0
    # "Since launch" stops at the feature window: days T0 - 392 .. T0 (the zero of day 0 is older).
    n = F.FEATURE_LOOKBACK_DAYS + 1
    assert T0 > F.FEATURE_LOOKBACK_DAYS
    assert row[F.DEMAND_EXPANDING_MEAN] == pytest.approx(T0 - F.FEATURE_LOOKBACK_DAYS / 2)
    assert row[F.DEMAND_EXPANDING_STD] == pytest.approx(math.sqrt(n * (n + 1) / 12))
    assert row[F.DEMAND_ZERO_SHARE_28] == 0
    assert row[F.DEMAND_ZERO_SHARE_SINCE_LAUNCH] == 0
    assert row[F.DAYS_ACTIVE_IN_WAREHOUSE] == F.FEATURE_LOOKBACK_DAYS
    assert row[F.DAYS_SINCE_LAST_SALE] == 0
    assert row[F.DEMAND_OBSERVED_DAYS_28] == 28
    assert row[F.DEMAND_ADI] == 1.0
    window = np.arange(T0 - 364, T0 + 1, dtype=np.float64)
    assert row[F.DEMAND_CV2] == pytest.approx(window.var() / window.mean() ** 2)
    weights = 0.5 ** (np.arange(F.FEATURE_LOOKBACK_DAYS, -1, -1) / 7)
    values = np.arange(T0 - F.FEATURE_LOOKBACK_DAYS, T0 + 1, dtype=np.float64)
    assert row[F.DEMAND_EWM_COLUMNS[7]] == pytest.approx((values * weights).sum() / weights.sum())


def test_weekly_series_with_a_return_is_clipped(at_origin: pd.DataFrame) -> None:
    row = at_origin.loc["B"]  # 1 on Mondays; -3 on Tuesday 2024-02-27 counts as 0
    assert row[F.DEMAND_LAG_COLUMNS[1]] == 0  # Friday
    assert row[F.DEMAND_LAG_COLUMNS[7]] == 0  # Saturday 2024-02-24
    assert row[F.DEMAND_ROLL_MEAN_COLUMNS[7]] == pytest.approx(1 / 7)
    assert row[F.DEMAND_ROLL_MIN_COLUMNS[7]] == 0
    assert row[F.DEMAND_ROLL_MAX_COLUMNS[7]] == 1
    assert row[F.DEMAND_ZERO_SHARE_28] == pytest.approx(24 / 28)
    assert row[F.DAYS_SINCE_LAST_SALE] == 4  # Monday 2024-02-26
    window = pd.date_range(ORIGIN - pd.Timedelta(days=364), ORIGIN)
    mondays = int((window.dayofweek == 0).sum())
    assert row[F.DEMAND_ADI] == pytest.approx(365 / mondays)
    assert row[F.DEMAND_CV2] == 0


def test_sku_launched_mid_window(world: dict[str, pd.DataFrame], at_origin: pd.DataFrame) -> None:
    history = world["history_w1"]
    assert history.loc[history[SKU] == "C", DATE].min() == C_LAUNCH  # no rows before launch
    row = at_origin.loc["C"]  # 11 days of 5 units: 2024-02-20 .. 2024-03-01
    assert row[F.DEMAND_LAG_COLUMNS[1]] == 5
    assert row[F.DEMAND_LAG_COLUMNS[7]] == 5
    for lag in (14, 28, 364):  # before launch
        assert np.isnan(row[F.DEMAND_LAG_COLUMNS[lag]])
    for w in F.ROLLING_WINDOWS:
        assert row[F.DEMAND_ROLL_MEAN_COLUMNS[w]] == 5
        assert row[F.DEMAND_ROLL_STD_COLUMNS[w]] == 0
        assert row[F.DEMAND_ROLL_MIN_COLUMNS[w]] == 5
    assert row[F.DEMAND_OBSERVED_DAYS_28] == 11
    assert row[F.DEMAND_EXPANDING_MEAN] == 5
    assert row[F.DAYS_ACTIVE_IN_WAREHOUSE] == 10
    assert row[F.PRODUCT_AGE_DAYS] == 10
    assert row[F.DEMAND_ADI] == 1
    assert row[F.SEASONAL_X_MONTH] == 3
    # One day after launch: a single observation, so no std yet.
    launch_day = _build(world, origin=C_LAUNCH).set_index(SKU).loc["C"]
    assert launch_day[F.DEMAND_ROLL_MEAN_COLUMNS[7]] == 5
    assert np.isnan(launch_day[F.DEMAND_ROLL_STD_COLUMNS[7]])
    assert np.isnan(launch_day[F.DEMAND_EXPANDING_STD])
    before = _build(world, origin=C_LAUNCH - pd.Timedelta(days=1))
    assert "C" not in set(before[SKU])


def test_all_zero_series(at_origin: pd.DataFrame) -> None:
    row = at_origin.loc["Z"]
    for w in F.ROLLING_WINDOWS:
        assert row[F.DEMAND_ROLL_MEAN_COLUMNS[w]] == 0
        assert row[F.DEMAND_ROLL_STD_COLUMNS[w]] == 0
        assert row[F.DEMAND_ROLL_MAX_COLUMNS[w]] == 0
    assert row[F.DEMAND_EXPANDING_MEAN] == 0
    assert row[F.DEMAND_ZERO_SHARE_28] == 1
    assert row[F.DEMAND_ZERO_SHARE_SINCE_LAUNCH] == 1
    assert np.isnan(row[F.DAYS_SINCE_LAST_SALE])
    assert np.isnan(row[F.DEMAND_ADI])
    assert np.isnan(row[F.DEMAND_CV2])
    assert np.isnan(row[F.REALISED_UNIT_PRICE_28])


def test_lag_364_is_nan_with_a_short_history(world: dict[str, pd.DataFrame]) -> None:
    history = world["history_w1"]
    short = history.loc[history[DATE] > ORIGIN - pd.Timedelta(days=300)]
    row = _build(world, history=short).set_index(SKU).loc["A"]
    assert np.isnan(row[F.DEMAND_LAG_COLUMNS[364]])
    assert row[F.DEMAND_LAG_COLUMNS[28]] == T0 - 27
    assert row[MISSING_HISTORY] == 0  # days before the history starts are not holes


def test_against_pandas_rolling_on_random_series_with_holes_and_launches(
    world: dict[str, pd.DataFrame],
) -> None:
    rng = np.random.default_rng(7)
    n_sku = 25
    series = {}
    for i in range(n_sku):
        quantity = rng.poisson(rng.gamma(0.5, 3.0), len(DATES)).astype(np.float64)
        quantity[rng.random(len(DATES)) < 0.5] = 0.0
        quantity[: rng.integers(0, len(DATES) - 60)] = np.nan  # launch
        series[f"R{i:02d}"] = quantity
    history = _history("W1", series)
    holes = pd.to_datetime(["2024-02-10", "2024-02-28", "2023-11-01"])
    history = history.loc[~history[DATE].isin(holes)]
    features = _build(world, history=history).set_index(SKU)

    dense = history.pivot(index=DATE, columns=SKU, values=QUANTITY).reindex(DATES).clip(lower=0)
    dense = dense.loc[:ORIGIN]
    for w in F.ROLLING_WINDOWS:
        rolling = dense.rolling(w, min_periods=1)
        for name, expected in (
            (F.DEMAND_ROLL_MEAN_COLUMNS[w], rolling.mean()),
            (F.DEMAND_ROLL_STD_COLUMNS[w], rolling.std()),
            (F.DEMAND_ROLL_MIN_COLUMNS[w], rolling.min()),
            (F.DEMAND_ROLL_MAX_COLUMNS[w], rolling.max()),
        ):
            np.testing.assert_allclose(
                features[name].to_numpy(), expected.loc[ORIGIN, features.index].to_numpy(), rtol=1e-9
            )
    for lag in F.DEMAND_LAGS:
        expected = dense.shift(lag - 1).loc[ORIGIN, features.index].to_numpy()
        np.testing.assert_array_equal(features[F.DEMAND_LAG_COLUMNS[lag]].to_numpy(), expected)
    # The expanding statistics cover the feature window (D - FEATURE_LOOKBACK_DAYS .. D).
    expanding = dense.rolling(F.FEATURE_LOOKBACK_DAYS + 1, min_periods=1)
    np.testing.assert_allclose(
        features[F.DEMAND_EXPANDING_MEAN], expanding.mean().loc[ORIGIN, features.index], rtol=1e-9
    )
    np.testing.assert_allclose(
        features[F.DEMAND_EXPANDING_STD], expanding.std().loc[ORIGIN, features.index], rtol=1e-9
    )
    assert (features[MISSING_HISTORY] == 3).all()


# --- holes -----------------------------------------------------------------------------------------------------------
def test_missing_days_and_holes(world: dict[str, pd.DataFrame]) -> None:
    hole = pd.Timestamp("2024-02-28")
    history = world["history_w1"]
    history = history.loc[history[DATE] != hole]
    assert F.missing_days(history, ORIGIN, 30) == [hole.date()]
    assert F.missing_days(history, ORIGIN, 30, since=dt.date(2024, 2, 29)) == []
    assert F.missing_days(world["history_w1"], ORIGIN, F.FEATURE_LOOKBACK_DAYS) == []
    assert F.missing_days(history, dt.date(2022, 12, 31), 5) == [
        dt.date(2022, 12, 26) + dt.timedelta(days=i) for i in range(6)
    ]
    row = _build(world, history=history).set_index(SKU).loc["A"]
    assert row[MISSING_HISTORY] == 1
    assert row[F.DEMAND_OBSERVED_DAYS_28] == 27
    hole_index = (hole - START).days
    window = [t for t in range(T0 - 6, T0 + 1) if t != hole_index]
    assert row[F.DEMAND_ROLL_MEAN_COLUMNS[7]] == pytest.approx(np.mean(window))
    assert row[F.DEMAND_LAG_COLUMNS[1]] == T0


# --- leakage -------------------------------------------------------------------------------------------------------
def test_rows_after_the_origin_do_not_change_the_features(world: dict[str, pd.DataFrame]) -> None:
    baseline = _build(world)
    history = world["history_w1"].copy()
    after = history[DATE] > ORIGIN
    history.loc[after, QUANTITY] += 1e6
    history.loc[after, REVENUE] += 1e9
    new_sku = pd.DataFrame(
        {
            SKU: "NEW",
            WAREHOUSE_ID: "W1",
            DATE: pd.date_range(ORIGIN + pd.Timedelta(days=1), END),
            QUANTITY: 1e6,
            REVENUE: 1e6,
            N_ORDERS: 1,
        }
    )
    history = pd.concat([history, new_sku], ignore_index=True).sample(frac=1.0, random_state=0)
    weather = world["weather"].copy()
    weather.loc[weather[DATE] > ORIGIN, [TEMPERATURE_AVG, PRECIPITATION_MM]] = 1e6
    weather.loc[weather[DATE] > ORIGIN, IS_EXTREME_WEATHER] = True
    perturbed = _build(world, history=history, weather=weather)
    pd.testing.assert_frame_equal(baseline, perturbed, check_exact=True)


def test_every_window_ends_at_the_origin(world: dict[str, pd.DataFrame]) -> None:
    step = {"S": np.where(DATES <= ORIGIN, 0.0, 1000.0)}
    history = _history("W1", step)
    row = _build(world, history=history).set_index(SKU).loc["S"]
    demand = [name for name in F.FEATURE_COLUMNS if name.startswith("demand_")]
    shares = {F.DEMAND_ZERO_SHARE_28, F.DEMAND_ZERO_SHARE_SINCE_LAUNCH, F.DEMAND_OBSERVED_DAYS_28}
    for name in demand:
        if name in shares:
            continue
        assert row[name] == 0 or np.isnan(row[name]), name
    assert row[F.DEMAND_ZERO_SHARE_28] == 1
    assert row[F.DEMAND_ZERO_SHARE_SINCE_LAUNCH] == 1
    assert np.isnan(row[F.DAYS_SINCE_LAST_SALE])
    assert np.isnan(row[F.DEMAND_ADI])
    assert np.isnan(row[F.REALISED_UNIT_PRICE_28])


def test_training_features_equal_per_origin_features(world: dict[str, pd.DataFrame]) -> None:
    origins = [ORIGIN - pd.Timedelta(days=30), ORIGIN, C_LAUNCH]
    stacked = F.build_training_features(
        world["history_w1"],
        _tables(world),
        origins=origins,
        warehouse_id="W1",
    )
    assert stacked[ORIGIN_DATE].is_monotonic_increasing
    for origin in origins:
        expected = _build(world, origin=origin)
        got = stacked.loc[stacked[ORIGIN_DATE] == origin].reset_index(drop=True)
        pd.testing.assert_frame_equal(got, expected, check_exact=False, rtol=1e-12)


def _with_random_series(seed: int, n: int, zero_share: float, last_launch_back: int) -> dict[str, np.ndarray]:
    """``_series()`` plus ``n`` random series R00.. with zeros and launches up to ``last_launch_back``
    days before the last day (NaN before the launch)."""
    rng = np.random.default_rng(seed)
    series = dict(_series())
    for i in range(n):
        quantity = rng.poisson(rng.gamma(0.5, 3.0), len(DATES)).astype(np.float64)
        quantity[rng.random(len(DATES)) < zero_share] = 0.0
        quantity[: rng.integers(0, len(DATES) - last_launch_back)] = np.nan
        series[f"R{i:02d}"] = quantity
    return series


def test_rows_of_an_origin_depend_only_on_its_feature_window(world: dict[str, pd.DataFrame]) -> None:
    """feature_table, training and serving load different history windows and batches of origins: the
    rows of (D, W) must not depend on them (no expanding statistic reaching past the window)."""
    # Launches, some older than the window.
    history = _history("W1", _with_random_series(seed=7, n=12, zero_share=0.5, last_launch_back=60))
    window_start = ORIGIN - pd.Timedelta(days=F.FEATURE_LOOKBACK_DAYS)
    assert history[DATE].min() < window_start  # the full history reaches past the window
    tables = _tables(world)

    def at(frame: pd.DataFrame, origin: pd.Timestamp) -> pd.DataFrame:
        return frame.loc[frame[ORIGIN_DATE] == origin].reset_index(drop=True)

    from_window = F.build_features(history.loc[history[DATE] >= window_start], tables, ORIGIN, "W1")
    from_all = F.build_features(history, tables, ORIGIN, "W1")
    in_batch = F.build_training_features(history, tables, [ORIGIN - pd.Timedelta(days=60), ORIGIN], "W1")
    assert len(from_window) > 10
    pd.testing.assert_frame_equal(from_all, from_window, check_exact=True)
    pd.testing.assert_frame_equal(at(in_batch, ORIGIN), from_window, check_exact=True)
    # Serving builds the ML SKUs' rows only: the same values as in the warehouse's whole table.
    some = ["A", "R00", "R03", "R07"]
    alone = F.build_features(history.loc[history[SKU].isin(some)], tables, ORIGIN, "W1")
    in_table = from_all.loc[from_all[SKU].isin(some)].reset_index(drop=True)
    pd.testing.assert_frame_equal(alone, in_table, check_exact=True)
    # An older SKU counts the window's days, not its whole life.
    a_row = from_all.set_index(SKU).loc["A"]
    assert a_row[F.DAYS_ACTIVE_IN_WAREHOUSE] == F.FEATURE_LOOKBACK_DAYS


def test_features_and_tiers_from_one_panel_equal_the_separate_functions(
    world: dict[str, pd.DataFrame],
) -> None:
    """The feature assets scatter a warehouse's history once for both tables: the same rows as
    build_training_features and assign_tiers at each origin, SKUs launched inside the window included."""
    # Launches, some after the first origin.
    history = _history("W1", _with_random_series(seed=11, n=15, zero_share=0.4, last_launch_back=20))
    origins = [ORIGIN - pd.Timedelta(days=k) for k in (40, 10, 0)]
    window = history.loc[history[DATE] >= origins[0] - pd.Timedelta(days=F.FEATURE_LOOKBACK_DAYS)]
    tables = _tables(world)
    features, tiers = features_and_tiers(window, tables, origins, "W1")
    pd.testing.assert_frame_equal(
        features, F.build_training_features(window, tables, origins, "W1"), check_exact=True
    )
    expected = pd.concat(
        [assign_tiers(window, tables.products, origin) for origin in origins], ignore_index=True
    )
    pd.testing.assert_frame_equal(tiers, expected, check_exact=True)
    assert tiers.groupby(ORIGIN_DATE).size().is_monotonic_increasing  # SKUs launched in between
    assert tiers.groupby(ORIGIN_DATE).size().iloc[-1] > tiers.groupby(ORIGIN_DATE).size().iloc[0]


# --- holidays ------------------------------------------------------------------------------------------------------
def test_holiday_distances(world: dict[str, pd.DataFrame], at_origin: pd.DataFrame) -> None:
    row = at_origin.loc["A"]
    assert row[F.ORIGIN_IS_HOLIDAY] == 0
    assert row[F.DAYS_SINCE_LAST_HOLIDAY] == 11  # Washington's Birthday, 2024-02-19
    assert row[F.DAYS_TO_NEXT_HOLIDAY] == 87  # Memorial Day, 2024-05-27
    assert row[F.HOLIDAYS_HORIZON] == 0
    assert row[F.ORIGIN_HOLIDAY_NAME] is None
    assert row[F.ORIGIN_IS_PAYDAY] == 0

    july = pd.Timestamp("2024-07-01")
    long_history = _history("W1", {"A": np.arange(len(DATES), dtype=np.float64)})
    shifted = long_history.assign(**{DATE: long_history[DATE] + pd.Timedelta(days=200)})
    before = _build(world, history=shifted, origin=july).set_index(SKU).loc["A"]
    assert before[F.DAYS_TO_NEXT_HOLIDAY] == 3  # Independence Day
    assert before[F.DAYS_SINCE_LAST_HOLIDAY] == 12  # Juneteenth
    assert before[F.HOLIDAYS_NEXT_7] == 1
    on = _build(world, history=shifted, origin=pd.Timestamp("2024-07-04")).set_index(SKU).loc["A"]
    assert on[F.ORIGIN_IS_HOLIDAY] == 1
    assert on[F.ORIGIN_HOLIDAY_NAME] == "Independence Day"
    assert on[F.DAYS_SINCE_LAST_HOLIDAY] == 0
    assert on[F.DAYS_TO_NEXT_HOLIDAY] == 60  # Labor Day, 2024-09-02


def test_generated_calendar_when_none_given(world: dict[str, pd.DataFrame], at_origin: pd.DataFrame) -> None:
    frame = F.build_features(
        world["history_w1"],
        dataclasses.replace(_tables(world), calendar=None),
        origin=ORIGIN,
        warehouse_id="W1",
    )
    pd.testing.assert_frame_equal(frame.set_index(SKU), at_origin, check_exact=True)


# --- promotions ------------------------------------------------------------------------------------------------------
def test_region_and_sku_targeted_promotions(world: dict[str, pd.DataFrame], at_origin: pd.DataFrame) -> None:
    texas = at_origin
    california = _build(world, warehouse_id="W2").set_index(SKU)
    for frame in (texas, california):  # campaign 1: every SKU, every region, D-2 .. D+2
        assert (frame[F.PROMO_ACTIVE] == 1).all()
        assert (frame[F.PROMO_DISCOUNT] == 10).all()
    # Campaign 2 (A only, Texas only, D+3 .. D+9).
    assert texas.loc["A", F.PROMO_DAYS_NEXT_7] == 7
    assert texas.loc["A", F.PROMO_MAX_DISCOUNT_NEXT_7] == 25
    assert texas.loc["A", F.PROMO_DAYS_HORIZON] == 9
    assert texas.loc["A", F.PROMO_MAX_DISCOUNT_HORIZON] == 25
    assert texas.loc["B", F.PROMO_DAYS_NEXT_7] == 2
    assert texas.loc["B", F.PROMO_DAYS_HORIZON] == 2
    assert texas.loc["B", F.PROMO_MAX_DISCOUNT_HORIZON] == 10
    assert california.loc["A", F.PROMO_DAYS_NEXT_7] == 2
    assert california.loc["A", F.PROMO_MAX_DISCOUNT_NEXT_7] == 10
    # Campaign 3 (every SKU, California only, D+20 .. D+40): D+1, D+2 and D+20 .. D+30.
    assert (california[F.PROMO_DAYS_HORIZON] == 13).all()
    assert (california[F.PROMO_MAX_DISCOUNT_HORIZON] == 50).all()
    assert texas.loc["A", F.PRICE_X_DISCOUNT] == pytest.approx(2.0 * 0.10)


def test_target_day_features(world: dict[str, pd.DataFrame]) -> None:
    target = F.target_day_features(_tables(world), ORIGIN, "W1", horizons=range(1, 31))
    by_horizon = target.by_horizon.set_index(HORIZON)
    assert len(by_horizon) == 30
    assert by_horizon.loc[1, F.TARGET_DAY_OF_WEEK] == 6  # Saturday 2024-03-02
    assert by_horizon.loc[1, F.TARGET_IS_WEEKEND] == 1
    assert by_horizon.loc[1, F.TARGET_PROMO_DISCOUNT] == 10
    assert by_horizon.loc[3, F.TARGET_PROMO_ACTIVE] == 0
    assert by_horizon.loc[14, F.TARGET_IS_PAYDAY] == 1  # 2024-03-15
    assert by_horizon.loc[1, F.TARGET_DAYS_TO_NEXT_HOLIDAY] == 86
    assert set(target.by_sku[SKU]) == {"A"}  # only SKU-specific campaigns are listed per SKU
    a = target.by_sku.set_index(HORIZON)
    assert a.loc[2, F.TARGET_PROMO_DISCOUNT] == 10
    assert a.loc[3, F.TARGET_PROMO_DISCOUNT] == 25
    assert a.loc[10, F.TARGET_PROMO_ACTIVE] == 0
    expanded = target.for_skus(["A", "B"]).set_index([SKU, HORIZON])
    assert len(expanded) == 60
    assert expanded.loc[("A", 5), F.TARGET_PROMO_DISCOUNT] == 25
    assert expanded.loc[("B", 5), F.TARGET_PROMO_DISCOUNT] == 0
    assert expanded.loc[("B", 2), F.TARGET_PROMO_DISCOUNT] == 10
    california = F.target_day_features(dataclasses.replace(_tables(world), calendar=None), ORIGIN, "W2")
    assert california.by_sku.empty
    assert california.by_horizon.set_index(HORIZON).loc[25, F.TARGET_PROMO_DISCOUNT] == 50


# --- prices, attributes, weather, interactions -------------------------------------------------------------------------
def test_price_and_attribute_features(at_origin: pd.DataFrame) -> None:
    # F (toys, 100) launches after the origin and is left out of the category mean.
    assert at_origin.loc["A", F.PRICE_REL_CATEGORY] == pytest.approx(0.5)
    assert at_origin.loc["B", F.PRICE_REL_CATEGORY] == pytest.approx(1.5)
    assert at_origin.loc["C", F.PRICE_REL_CATEGORY] == pytest.approx(0.5)
    assert at_origin.loc["A", F.REALISED_UNIT_PRICE_28] == pytest.approx(1.8)
    assert at_origin.loc["A", F.REALISED_DISCOUNT_28] == pytest.approx(0.1)
    assert at_origin.loc["B", F.REALISED_UNIT_PRICE_28] == pytest.approx(6.0)  # the return is not a sale
    assert at_origin.loc["A", PRICE] == 2.0
    assert at_origin.loc["Z", WEIGHT_KG] == 3.0
    assert at_origin.loc["C", IS_SEASONAL] == 1
    assert at_origin.loc["A", CAPACITY_UNITS] == 10_000
    assert at_origin.loc["A", CATEGORY] == "toys"
    assert at_origin.loc["A", SUB_CATEGORY] == "t1"
    assert at_origin.loc["C", BRAND] == "green"
    assert at_origin.loc["A", LOCATION_STATE] == "TX"
    assert at_origin.loc["A", F.CATEGORY_X_WEEKEND] == "toys|weekday"
    assert at_origin.loc["C", F.CATEGORY_X_WEEKEND] == "garden|weekday"
    assert at_origin.loc["A", F.SEASONAL_X_MONTH] == 0
    assert at_origin.loc["A", F.PRODUCT_AGE_DAYS] == (ORIGIN - pd.Timestamp("2022-06-01")).days


def test_weather_features(world: dict[str, pd.DataFrame], at_origin: pd.DataFrame) -> None:
    row = at_origin.loc["A"]
    assert row[F.WEATHER_TEMP_AVG] == T0
    assert row[F.WEATHER_TEMP_MEAN_7] == T0 - 3
    assert row[F.WEATHER_PRECIP_SUM_7] == 7
    assert row[F.WEATHER_IS_EXTREME] == 1
    without = _build(world, use_weather=False)
    other_city = _build(world, warehouse_id="W2")
    for frame in (without, other_city):
        for name in (F.WEATHER_TEMP_AVG, F.WEATHER_TEMP_MEAN_7, F.WEATHER_PRECIP_SUM_7, F.WEATHER_IS_EXTREME):
            assert frame[name].isna().all()


# --- shared kernel -------------------------------------------------------------------------------------------------
def test_intermittency_kernel_is_shared_with_tiering(
    world: dict[str, pd.DataFrame], at_origin: pd.DataFrame
) -> None:
    tiers = assign_tiers(world["history_w1"], world["products"], ORIGIN, TierConfig()).set_index(SKU)
    np.testing.assert_array_equal(tiers.loc[at_origin.index, "adi"], at_origin[F.DEMAND_ADI])
    np.testing.assert_array_equal(tiers.loc[at_origin.index, "cv2"], at_origin[F.DEMAND_CV2])
    stats = F.intermittency_stats(np.array([[0.0, 2.0, np.nan, 0.0, 4.0, 0.0]]))
    assert stats.adi[0] == 5 / 2
    assert stats.cv2[0] == pytest.approx(1.0 / 9.0)
