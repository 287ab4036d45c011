"""Tests of the order-up-to replay, the order-up-to levels and the policy comparison."""

from statistics import NormalDist

import numpy as np
import pandas as pd
import pytest

from demand_platform import columns as C
from demand_platform.inventory import (
    AVG_ON_HAND,
    CYCLE_SERVICE_LEVEL,
    EXPECTED_LEAD_TIME_DEMAND,
    FILL_RATE,
    LEAD_TIME,
    METHOD_QUANTILE_SPREAD,
    METHOD_Z_SIGMA,
    ORDER_UP_TO,
    POLICY,
    POLICY_LEAD_TIME,
    POLICY_MA,
    RECOMMENDATION_COLUMNS,
    REORDER_POINT,
    SAFETY_STOCK,
    SAFETY_STOCK_METHOD,
    SCOPE,
    SCOPE_OVERALL,
    _epoch_days,
    _lead_time_order_up_to,
    compare_policies,
    demand_matrix,
    forecast_order_up_to,
    in_transit_at_end,
    lead_time_array,
    moving_average_order_up_to,
    recommend_policy,
    replay_policies,
    series_codes,
    simulate_policy,
)

Z95 = NormalDist().inv_cdf(0.95)


def test_trajectory_with_lead_time_stockouts_and_lost_sales() -> None:
    """L = 2, S = 9, demand 3 a day, 5 on hand at the start (hand-computed day by day).

    day 0: serve 3 -> 2 on hand; IP 2 -> order 7 (arrives day 3)
    day 1: serve 2 of 3 (1 lost) -> 0; IP 7 -> order 2 (arrives day 4)
    day 2: serve 0 of 3 (3 lost); IP 9 -> no order
    day 3: +7, serve 3 -> 4; IP 6 -> order 3;  day 4: +2 -> 6, serve 3 -> 3; order 3;  day 5: serve 3 -> 0.
    """
    result = simulate_policy(
        np.full((1, 6), 3.0), np.full((1, 6), 9.0), np.array([2]), np.array([5.0]), keep_trajectories=True
    )
    assert result.on_hand is not None and result.lost is not None and result.orders is not None
    np.testing.assert_allclose(result.on_hand[0], [2, 0, 0, 4, 3, 0])
    np.testing.assert_allclose(result.lost[0], [0, 1, 3, 0, 0, 0])
    np.testing.assert_allclose(result.orders[0], [7, 2, 0, 3, 3, 3])
    assert result.stockout_days.tolist() == [2]
    assert result.cycle_service_level[0] == pytest.approx(4 / 6)
    assert result.fill_rate[0] == pytest.approx(14 / 18)
    assert result.lost_sales[0] == pytest.approx(4.0)
    assert result.avg_on_hand[0] == pytest.approx(9 / 6)


def test_two_skus_with_different_lead_times_and_blocks() -> None:
    """One order of 4 at the end of day 0 arrives on day 2 (L=1) or day 4 (L=3); lost sales do not return.

    Demand 1 a day. L=3 (listed first): 4 stock-out days, fill 2/6. L=1: 2 stock-out days; on day 5 on hand
    1 serves demand 1 exactly, which is not a stock-out. Block size 1 gives the same result.
    """
    demand = np.ones((2, 6))
    levels = np.zeros((2, 6))
    levels[:, 0] = 4.0
    for block_size in (1, 8192):
        result = simulate_policy(
            demand, levels, np.array([3, 1]), np.zeros(2), keep_trajectories=True, block_size=block_size
        )
        assert result.on_hand is not None
        np.testing.assert_allclose(result.on_hand, [[0, 0, 0, 0, 3, 2], [0, 0, 3, 2, 1, 0]])
        assert result.stockout_days.tolist() == [4, 2]
        np.testing.assert_allclose(result.fill_rate, [2 / 6, 4 / 6])
        np.testing.assert_allclose(result.cycle_service_level, [2 / 6, 4 / 6])
        np.testing.assert_allclose(result.ordered, [4, 4])


def test_warmup_days_are_not_scored() -> None:
    """With warmup 2 only days 2..5 count: the L=1 SKU above has no stock-out left."""
    levels = np.zeros((1, 6))
    levels[0, 0] = 4.0
    result = simulate_policy(np.ones((1, 6)), levels, np.array([1]), np.zeros(1), warmup=2)
    assert result.n_days == 4
    assert result.stockout_days.tolist() == [0]
    assert result.fill_rate[0] == pytest.approx(1.0)
    assert result.avg_on_hand[0] == pytest.approx((3 + 2 + 1 + 0) / 4)


def test_nan_levels_and_demand() -> None:
    """A NaN order-up-to level places no order; NaN or negative demand counts as 0."""
    demand = np.array([[1.0, np.nan, -2.0, 1.0]])
    result = simulate_policy(demand, np.full((1, 4), np.nan), np.array([1]), np.array([1.0]))
    assert result.ordered.tolist() == [0.0]
    assert result.demanded.tolist() == [2.0]
    assert result.served.tolist() == [1.0]
    assert result.stockout_days.tolist() == [1]


def perfect_foresight(demand: np.ndarray, lead_time: np.ndarray) -> np.ndarray:
    """``S_t`` = demand of the protection period ``t+1 .. t+L+1`` (zero past the end)."""
    n, n_days = demand.shape
    padded = np.concatenate([demand, np.zeros((n, lead_time.max() + 2))], axis=1)
    csum = np.concatenate([np.zeros((n, 1)), np.cumsum(padded, axis=1)], axis=1)
    t = np.arange(n_days)[None, :]
    rows = np.arange(n)[:, None]
    return csum[rows, t + lead_time[:, None] + 2] - csum[rows, t + 1]


def test_perfect_foresight_gives_full_service() -> None:
    """S = realised protection-period demand: no stock-out at all with enough initial stock, none after
    the first arrival from an empty start; and no stock left at the end of any day once in steady state."""
    rng = np.random.default_rng(0)
    demand = rng.poisson(3.0, size=(40, 60)).astype(np.float64)
    lead_time = rng.integers(3, 8, size=40)
    levels = perfect_foresight(demand, lead_time)
    initial = np.array([demand[i, : lead_time[i] + 1].sum() for i in range(40)])
    full = simulate_policy(demand, levels, lead_time, initial, warmup=8)
    np.testing.assert_allclose(full.cycle_service_level, 1.0)
    np.testing.assert_allclose(full.fill_rate, 1.0)
    np.testing.assert_allclose(full.avg_on_hand, 0.0, atol=1e-9)
    empty_start = simulate_policy(demand, levels, lead_time, np.zeros(40), warmup=int(lead_time.max()) + 1)
    np.testing.assert_allclose(empty_start.cycle_service_level, 1.0)
    assert empty_start.stockout_days.sum() == 0


def test_higher_levels_give_more_service_and_more_stock() -> None:
    """Monotonic invariant on the pooled metrics: S from a higher quantile -> service and stock up."""
    rng = np.random.default_rng(1)
    n, n_days = 300, 120
    lam = rng.gamma(2.0, 2.0, size=(n, 1))
    demand = rng.poisson(lam, size=(n, n_days)).astype(np.float64)
    lead_time = rng.integers(3, 8, size=n)
    protection = (lead_time + 1)[:, None]
    results = []
    for z in (0.0, 1.28, 1.645, 2.33):
        levels = np.broadcast_to(lam * protection + z * np.sqrt(lam * protection), (n, n_days))
        results.append(simulate_policy(demand, levels, lead_time, levels[:, 0], warmup=8))
    fill = [r.served.sum() / r.demanded.sum() for r in results]
    csl = [r.cycle_service_level.mean() for r in results]
    stock = [r.avg_on_hand.mean() for r in results]
    assert np.all(np.diff(fill) > 0) and np.all(np.diff(csl) > 0) and np.all(np.diff(stock) > 0)


def test_simulate_policy_validates_inputs() -> None:
    """Shape, lead-time type and warm-up errors."""
    ok = np.ones((2, 3))
    with pytest.raises(ValueError, match="shapes"):
        simulate_policy(ok, np.ones((2, 4)), np.array([1, 1]), np.zeros(2))
    with pytest.raises(ValueError, match="integer"):
        simulate_policy(ok, ok, np.array([1.0, 1.0]), np.zeros(2))
    with pytest.raises(ValueError, match="non-negative"):
        simulate_policy(ok, ok, np.array([-1, 1]), np.zeros(2))
    with pytest.raises(ValueError, match="warmup"):
        simulate_policy(ok, ok, np.array([1, 1]), np.zeros(2), warmup=3)


# --- levels from frames -----------------------------------------------------------------------------------
START = pd.Timestamp("2024-03-01")
SERIES = pd.DataFrame({C.SKU: ["A", "B"], C.WAREHOUSE_ID: ["W1", "W1"]})


def forecast_frame(
    sku: str, origin: pd.Timestamp, p95: list[float], tier: int = 1, point: float = 2.0
) -> pd.DataFrame:
    """Forecast rows of one SKU in W1: point and P50 ``point``, P90 halfway to the given P95."""
    h = np.arange(1, len(p95) + 1)
    upper = np.asarray(p95, dtype=np.float64)
    return pd.DataFrame(
        {
            C.SKU: sku,
            C.WAREHOUSE_ID: "W1",
            C.ORIGIN_DATE: origin,
            C.TARGET_DATE: origin + pd.to_timedelta(h, unit="D"),
            C.HORIZON: h,
            C.FORECAST: point,
            C.P50: point,
            C.P90: (point + upper) / 2,
            C.P95: upper,
            C.TIER: tier,
            C.MODEL: "m",
        }
    )


def test_forecast_order_up_to_sums_the_protection_period() -> None:
    """L = 1: S = P95 of horizons 1 + 2; a missing origin or horizon gives NaN (no order)."""
    forecasts = pd.concat(
        [
            forecast_frame("A", START, [1, 2, 4]),
            forecast_frame("A", START + pd.Timedelta(days=2), [3, 3, 3]),
            forecast_frame("B", START, [5]),  # only horizon 1
        ]
    )
    days = pd.date_range(START, periods=3)
    levels = forecast_order_up_to(forecasts, SERIES, days, np.array([1, 1]))
    np.testing.assert_allclose(levels, [[3.0, np.nan, 6.0], [np.nan, np.nan, np.nan]])
    p90 = forecast_order_up_to(forecasts, SERIES, days, np.array([2, 0]), quantile=C.P90)
    np.testing.assert_allclose(p90[0, 0], (1 + 2 + 4 + 3 * 2) / 2)  # (2 + p95) / 2 over 3 horizons
    assert p90[1, 0] == pytest.approx(3.5)  # L = 0: horizon 1 only


def test_moving_average_order_up_to_hand_computed() -> None:
    """Window 2, L = 1 (P = 2): days (2, 4) -> mean 3, sd sqrt(2) -> S = 6 + z * sqrt(2) * sqrt(2)."""
    demand = np.array([[2.0, 4.0, 6.0, 8.0], [5.0, 5.0, np.nan, 5.0]])
    levels = moving_average_order_up_to(demand, np.array([1, 1]), start=0, window=2, service=0.95)
    np.testing.assert_allclose(levels[0], [4.0, 6 + 2 * Z95, 10 + 2 * Z95, 14 + 2 * Z95])
    np.testing.assert_allclose(levels[1], [10.0, 10.0, 10.0, 10.0])  # NaN day ignored, sd 0
    tail = moving_average_order_up_to(demand, np.array([1, 1]), start=2, window=2)
    np.testing.assert_allclose(tail, levels[:, 2:])
    all_missing = moving_average_order_up_to(np.full((1, 2), np.nan), np.array([3]), window=2)
    assert np.isnan(all_missing).all()


def test_demand_matrix_and_lead_time_array() -> None:
    """Rows scattered by series x day, clipped at 0, NaN without a row; lead times from a frame."""
    actuals = pd.DataFrame(
        {
            C.SKU: ["B", "A", "Z"],
            C.WAREHOUSE_ID: ["W1", "W1", "W1"],
            C.DATE: [START, START + pd.Timedelta(days=1), START],
            C.QUANTITY: [3.0, -1.0, 9.0],
        }
    )
    out = demand_matrix(actuals, SERIES, pd.date_range(START, periods=2))
    np.testing.assert_allclose(out, [[np.nan, 0.0], [3.0, np.nan]])
    frame = pd.DataFrame({C.SKU: ["B", "A"], C.WAREHOUSE_ID: ["W1", "W1"], LEAD_TIME: [7, 3]})
    assert lead_time_array(frame, SERIES).tolist() == [3, 7]
    assert lead_time_array(5, SERIES).tolist() == [5, 5]
    with pytest.raises(ValueError, match="lack"):
        lead_time_array(frame.iloc[:1], SERIES)


def test_recommend_policy_quantile_spread_and_fallback() -> None:
    """A (L = 2): mu = 2 + 2, SS = (3-2) + (4-2) = 3, ROP 7, S = 3 + 4 + 5. B lacks horizon 2 -> z * sigma."""
    old = forecast_frame("A", START - pd.Timedelta(days=1), [9, 9, 9])
    forecasts = pd.concat([old, forecast_frame("A", START, [3, 4, 5, 6]), forecast_frame("B", START, [4])])
    history_days = pd.date_range(START - pd.Timedelta(days=40), START)
    b_demand = np.tile([1.0, 3.0], len(history_days))[: len(history_days)]
    history = pd.DataFrame({C.SKU: "B", C.WAREHOUSE_ID: "W1", C.DATE: history_days, C.QUANTITY: b_demand})
    rec = recommend_policy(forecasts, history, lead_time=2).set_index(C.SKU)
    assert list(rec.reset_index().columns) == list(RECOMMENDATION_COLUMNS)
    assert rec.loc["A", C.ORIGIN_DATE] == START
    assert rec.loc["A", EXPECTED_LEAD_TIME_DEMAND] == pytest.approx(4.0)
    assert rec.loc["A", SAFETY_STOCK] == pytest.approx(3.0)
    assert rec.loc["A", REORDER_POINT] == pytest.approx(7.0)
    assert rec.loc["A", ORDER_UP_TO] == pytest.approx(12.0)
    assert rec.loc["A", SAFETY_STOCK_METHOD] == METHOD_QUANTILE_SPREAD
    recent = b_demand[-28:]
    sigma = recent.std(ddof=1)
    assert rec.loc["B", SAFETY_STOCK_METHOD] == METHOD_Z_SIGMA
    assert rec.loc["B", SAFETY_STOCK] == pytest.approx(Z95 * sigma * np.sqrt(2))
    assert rec.loc["B", EXPECTED_LEAD_TIME_DEMAND] == pytest.approx(recent.mean() * 2)
    p90 = recommend_policy(forecasts, history, lead_time=2, service=0.90).set_index(C.SKU)
    assert p90.loc["A", SAFETY_STOCK] == pytest.approx(0.5 + 1.0)
    with pytest.raises(ValueError, match="service"):
        recommend_policy(forecasts, history, lead_time=2, service=0.8)


def synthetic_frames(
    n_series: int = 24, n_days: int = 100, first_origin: int = 30
) -> tuple[pd.DataFrame, ...]:
    """Poisson demand and unbiased Poisson-quantile forecasts for every origin from ``first_origin``."""
    rng = np.random.default_rng(7)
    dates = pd.date_range("2024-01-01", periods=n_days)
    skus = np.array([f"S{i:02d}" for i in range(n_series)])
    lam = rng.gamma(2.0, 2.0, size=n_series)
    qty = rng.poisson(lam[:, None], size=(n_series, n_days)).astype(np.float64)
    actuals = pd.DataFrame(
        {
            C.SKU: np.repeat(skus, n_days),
            C.WAREHOUSE_ID: "W1",
            C.DATE: np.tile(dates, n_series),
            C.QUANTITY: qty.ravel(),
        }
    )
    origins = dates[first_origin:]
    h = np.arange(1, 31)
    n_rows = n_series * len(origins) * h.size
    rate = np.repeat(lam, len(origins) * h.size)
    forecasts = pd.DataFrame(
        {
            C.SKU: np.repeat(skus, len(origins) * h.size),
            C.WAREHOUSE_ID: "W1",
            C.ORIGIN_DATE: np.tile(np.repeat(origins, h.size), n_series),
            C.HORIZON: np.tile(h, n_series * len(origins)),
            C.FORECAST: rate,
            C.P50: np.floor(rate),
            C.P90: rate + 1.2816 * np.sqrt(rate),
            C.P95: rate + 1.6449 * np.sqrt(rate),
            C.TIER: np.repeat(np.arange(n_series) % 3 + 1, len(origins) * h.size),
            C.MODEL: "m",
        }
    )
    forecasts[C.TARGET_DATE] = forecasts[C.ORIGIN_DATE] + pd.to_timedelta(forecasts[C.HORIZON], unit="D")
    assert len(forecasts) == n_rows
    return forecasts, actuals


def test_lead_time_order_up_to_is_mean_plus_z_sigma_of_the_protection_period() -> None:
    """One series, lead time 2 (protection period 3 days): S = sum of the point forecasts over horizons 1-3
    + z95 * sqrt(sum sigma_h^2) with sigma_h = (P95_h - P50_h) / z95."""
    origin = pd.Timestamp("2024-01-01")
    point, p50, p95 = (
        np.array([2.0, 3.0, 4.0, 9.0]),
        np.array([1.0, 3.0, 3.0, 9.0]),
        np.array([4.0, 5.0, 8.0, 20.0]),
    )
    forecasts = pd.DataFrame(
        {
            C.SKU: "A",
            C.WAREHOUSE_ID: "W1",
            C.ORIGIN_DATE: origin,
            C.HORIZON: [1, 2, 3, 4],
            C.FORECAST: point,
            C.P50: p50,
            C.P95: p95,
        }
    )
    series = pd.DataFrame({C.SKU: ["A"], C.WAREHOUSE_ID: ["W1"]})
    code = series_codes(forecasts, series)
    level = _lead_time_order_up_to(
        code,
        _epoch_days(forecasts[C.ORIGIN_DATE]),
        forecasts[C.HORIZON].to_numpy(),
        forecasts,
        1,
        pd.DatetimeIndex([origin]),
        np.array([2]),
        0.95,
    )
    sigma = (p95[:3] - p50[:3]) / Z95
    assert level[0, 0] == pytest.approx(point[:3].sum() + Z95 * np.sqrt((sigma**2).sum()))


def test_compare_policies_structure_and_monotonic_quantiles() -> None:
    """Rows per policy x (tier, overall); the P95 policy serves more and holds more stock than P90."""
    forecasts, actuals = synthetic_frames()
    lead_times = pd.DataFrame(
        {C.SKU: sorted(forecasts[C.SKU].unique()), C.WAREHOUSE_ID: "W1", LEAD_TIME: np.arange(24) % 5 + 3}
    )
    out = compare_policies(forecasts, actuals, lead_times)
    assert out[POLICY].unique().tolist() == ["forecast_p90", "forecast_p95", POLICY_LEAD_TIME, POLICY_MA]
    assert out[SCOPE].unique().tolist() == ["tier 1", "tier 2", "tier 3", SCOPE_OVERALL]
    overall = out.loc[out[SCOPE] == SCOPE_OVERALL].set_index(POLICY)
    assert overall.loc["forecast_p95", FILL_RATE] >= overall.loc["forecast_p90", FILL_RATE]
    assert (
        overall.loc["forecast_p95", CYCLE_SERVICE_LEVEL] >= overall.loc["forecast_p90", CYCLE_SERVICE_LEVEL]
    )
    assert overall.loc["forecast_p95", AVG_ON_HAND] > overall.loc["forecast_p90", AVG_ON_HAND]
    assert overall[FILL_RATE].between(0, 1).all()
    # The lead-time quantile holds less than the sum of daily P95s (independent, not identical, errors).
    assert overall.loc[POLICY_LEAD_TIME, AVG_ON_HAND] < overall.loc["forecast_p95", AVG_ON_HAND]
    assert (out.groupby(POLICY)["n_series"].sum() == 48).all()  # 24 in the tiers + 24 overall
    with pytest.raises(ValueError, match="warm-up"):
        compare_policies(forecasts, actuals, 3, warmup=1000)


# --- the replay's end state ------------------------------------------------------------------------------------
def test_in_transit_at_end_by_day_of_arrival() -> None:
    """An order of day t arrives on day t + L + 1; after the last day T = 3 the orders of T - L .. T wait.

    L = 1: the orders of days 2 (3 units, arrives day 4 = T + 1) and 3 (4 units, day 5). L = 2: days 1, 2, 3
    (20, 30, 40 units, days 4, 5, 6). Width max(L) + 1 = 3.
    """
    orders = np.array([[1.0, 2.0, 3.0, 4.0], [10.0, 20.0, 30.0, 40.0]])
    np.testing.assert_allclose(in_transit_at_end(orders, np.array([1, 2])), [[3, 4, 0], [20, 30, 40]])


def test_replay_policies_is_compare_policies_plus_the_end_state() -> None:
    """Demand 4 a day, P95 = 4 on every horizon, L = 2: the P95 policy orders up to 12 = 4 x (L + 1).

    Day 0 starts with 12 on hand and from day 2 on every day ends with 0 on hand and orders 4 (the
    inventory position is 12 - 4 = 8 before the order): after the last day, the orders of its last
    three days (4 units each) arrive on the next three days.
    """
    days = pd.date_range(START, periods=10)
    forecasts = pd.concat([forecast_frame("A", d, [4.0] * 5, point=4.0) for d in days], ignore_index=True)
    actuals = pd.DataFrame({C.SKU: "A", C.WAREHOUSE_ID: "W1", C.DATE: days, C.QUANTITY: 4.0})
    replay = replay_policies(forecasts, actuals, 2, end_state_of="forecast_p95")
    pd.testing.assert_frame_equal(replay.comparison, compare_policies(forecasts, actuals, 2))
    state = replay.end_state
    assert state is not None and state.policy == "forecast_p95" and state.last_day == days[-1]
    assert state.series[[C.SKU, C.WAREHOUSE_ID, LEAD_TIME]].to_dict("records") == [
        {C.SKU: "A", C.WAREHOUSE_ID: "W1", LEAD_TIME: 2}
    ]
    np.testing.assert_allclose(state.on_hand, [0.0])
    np.testing.assert_allclose(state.in_transit, [[4.0, 4.0, 4.0]])
    assert replay_policies(forecasts, actuals, 2).end_state is None
    with pytest.raises(ValueError, match="end_state_of"):
        replay_policies(forecasts, actuals, 2, end_state_of="nope")
