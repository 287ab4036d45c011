"""Replay of a daily order-up-to replenishment policy against realised demand.

The policy (periodic review, review period ``R`` = 1 day, lost sales). For each SKU x warehouse and each
simulated day ``t``, in this order:

1. **Receive**: orders due on day ``t`` are added to the on-hand stock at the start of the day.
2. **Serve**: demand ``d_t`` is served from on hand: ``served_t = min(on_hand, d_t)``. Unmet demand is
   **lost** (no backorders: the customer buys elsewhere and the demand does not carry over to later days),
   ``lost_t = d_t - served_t``. Day ``t`` is a **stock-out day** when ``lost_t > 0`` (an on hand that just
   reaches 0 while serving all of the demand is not a stock-out).
3. **Review and order** at the end of day ``t``, with the data (and the forecast origin) of day ``t``:
   inventory position ``IP_t = on_hand + on_order`` (ordered, not yet received), order
   ``q_t = max(S_t - IP_t, 0)``. The order arrives after the lead time ``L``: it is received at the start
   of day ``t + L + 1`` (``L`` full days after the end of day ``t``) and first serves the demand of that
   day. ``NaN`` ``S_t`` (no forecast for that origin) places no order.

The order placed at the end of day ``t`` must therefore last until the next order arrives, i.e. cover the
demand of days ``t+1 .. t+L+1``: the **protection period** is ``L + R`` days starting at ``t + 1``. With
perfect foresight, ``S_t = d_{t+1} + ... + d_{t+L+1}`` never stocks out once the first order has arrived.

Metrics (per SKU, over the evaluated days ``warmup .. n_days - 1``):

* **cycle service level**: share of replenishment cycles without a stock-out. With daily review every
  day is one cycle (the cycle of the order received that morning), so it is
  ``1 - stockout_days / evaluated_days``; days without demand count as cycles without stock-out;
* **fill rate**: served units / demanded units (``NaN`` when nothing was demanded);
* **average on hand**: mean end-of-day on-hand units (the stock carried overnight, the holding-cost base);
* **stock-out days**, demanded, served, lost and ordered units.

Implementation. The day loop is the only Python loop: each step is a handful of numpy operations over a
block of :data:`BLOCK_SIZE` SKUs, on time-major copies of the block (contiguous day rows). SKUs are sorted
by lead time first, so the orders of one day enter the pipeline ring buffer as one slice per distinct lead
time rather than through a scattered fancy index. Results do not depend on the block size.

Policies. :func:`forecast_order_up_to` sets ``S_t`` to the sum of a forecast quantile (P95 by default, or
P90) over the protection period of origin ``t``'s forecast. Summing daily quantiles is conservative: the
sum of daily P95s is above the P95 of the sum unless daily errors are perfectly correlated.
:func:`_lead_time_order_up_to` (policy ``forecast_lead_time``) sets ``S_t`` to a quantile of the demand over
the protection period instead: the sum of the point forecasts plus ``z * sqrt(sum sigma_h^2)``, with the
daily spread ``sigma_h = (P95_h - P50_h) / 1.645`` (independent daily errors).
:func:`moving_average_order_up_to` is the classical baseline
``S_t = MA28_t * (L + R) + z * sigma28_t * sqrt(L + R)`` (``z`` the standard normal quantile of the
service target, 1.645 for 95%). :func:`compare_policies` replays both on the same demand.

:func:`replay_policies` is :func:`compare_policies` that also returns one policy's end state: the on hand
after the last simulated day and the orders still in transit by day of arrival (from the replay's kept
trajectories), the starting point of a forward projection of the stock.

:func:`recommend_policy` gives the replenishment parameters of the latest origin: reorder point
``ROP = expected lead-time demand + safety stock``. The expected lead-time demand is the sum of the point
forecasts over horizons ``1 .. L``. The safety stock is taken **from the forecast quantile spread**:
``SS = sum_{h=1..L} (P95_h - P50_h)`` (P90 for a 90% target), clipped at 0, i.e. the same
perfect-correlation aggregation as the simulated forecast policy. ``z * sigma_LT`` (``sigma_LT`` =
``sqrt(L)`` times the std of daily demand over the last 28 history days) is reported alongside and used
only for series without complete quantile forecasts over the lead time.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist
from typing import NamedTuple

import numpy as np
import pandas as pd

from demand_platform import columns as C
from demand_platform.days import NS_PER_DAY

# --- output columns -------------------------------------------------------------------------------------------
LEAD_TIME = "lead_time"
EXPECTED_LEAD_TIME_DEMAND = "expected_lead_time_demand"
SAFETY_STOCK = "safety_stock"
SAFETY_STOCK_SIGMA = "safety_stock_sigma"
SAFETY_STOCK_METHOD = "safety_stock_method"
REORDER_POINT = "reorder_point"
ORDER_UP_TO = "order_up_to"
RECOMMENDATION_COLUMNS = (
    C.SKU,
    C.WAREHOUSE_ID,
    C.ORIGIN_DATE,
    C.TIER,
    LEAD_TIME,
    EXPECTED_LEAD_TIME_DEMAND,
    SAFETY_STOCK,
    SAFETY_STOCK_METHOD,
    SAFETY_STOCK_SIGMA,
    REORDER_POINT,
    ORDER_UP_TO,
)
METHOD_QUANTILE_SPREAD = "quantile_spread"
METHOD_Z_SIGMA = "z_sigma"

POLICY = "policy"
SCOPE = "scope"
N_SERIES = "n_series"
CYCLE_SERVICE_LEVEL = "cycle_service_level"
FILL_RATE = "fill_rate"
AVG_ON_HAND = "avg_on_hand"
STOCKOUT_DAYS = "stockout_days"
STOCKOUT_DAYS_PER_SERIES = "stockout_days_per_series"
DEMANDED = "demanded"
LOST_SALES = "lost_sales"
COMPARISON_COLUMNS = (
    POLICY,
    SCOPE,
    C.TIER,
    N_SERIES,
    CYCLE_SERVICE_LEVEL,
    FILL_RATE,
    AVG_ON_HAND,
    STOCKOUT_DAYS,
    STOCKOUT_DAYS_PER_SERIES,
    DEMANDED,
    LOST_SALES,
)
SCOPE_OVERALL = "overall"
POLICY_MA = "ma28"
#: Order-up-to level from the lead-time demand distribution of the forecast (see the module docstring).
POLICY_LEAD_TIME = "forecast_lead_time"

REVIEW_PERIOD = 1
MA_WINDOW = 28
DEFAULT_SERVICE = 0.95
#: Forecast quantile column used for a service target.
QUANTILE_BY_SERVICE = {0.90: C.P90, 0.95: C.P95}


#: SKUs replayed together by :func:`simulate_policy`. A block's time-major copies and day vectors stay in
#: cache; at 500,000 SKUs x 90 days, 2048 and 8192 tie (0.85 s) while 131,072 takes 1.3 s and one block of
#: all SKUs 1.7 s (strided day columns and a scattered pipeline update).
BLOCK_SIZE = 8192


@dataclass(frozen=True)
class SimulationResult:
    """Outcome of :func:`simulate_policy`, one entry per SKU (see the module docstring for definitions).

    Attributes:
        cycle_service_level: Share of evaluated days without a stock-out.
        fill_rate: Served / demanded units (``NaN`` without demand).
        avg_on_hand: Mean end-of-day on-hand units.
        stockout_days: Evaluated days with lost sales.
        demanded: Demanded units.
        served: Served units.
        lost_sales: Lost units (``demanded - served``).
        ordered: Units ordered on the evaluated days.
        n_days: Number of evaluated days.
        on_hand: End-of-day on hand ``[n_sku, n_days]`` (all days), when trajectories were kept.
        lost: Lost units per day ``[n_sku, n_days]``, when trajectories were kept.
        orders: Order quantity placed at the end of each day ``[n_sku, n_days]``, when kept.
    """

    cycle_service_level: np.ndarray
    fill_rate: np.ndarray
    avg_on_hand: np.ndarray
    stockout_days: np.ndarray
    demanded: np.ndarray
    served: np.ndarray
    lost_sales: np.ndarray
    ordered: np.ndarray
    n_days: int
    on_hand: np.ndarray | None = None
    lost: np.ndarray | None = None
    orders: np.ndarray | None = None


class _Block(NamedTuple):
    """Replay of one block of SKUs: metrics ``[5, n]`` and trajectories ``[3, n_days, n]`` (time-major)."""

    metrics: np.ndarray
    trajectories: np.ndarray | None


def _replay_block(
    demand_tm: np.ndarray,
    order_up_to_tm: np.ndarray,
    lead_time: np.ndarray,
    initial_on_hand: np.ndarray,
    warmup: int,
    keep_trajectories: bool,
) -> _Block:
    """Day loop of :func:`simulate_policy` on one block (time-major inputs, SKUs sorted by lead time).

    Args:
        demand_tm: Demand ``[n_days, n]`` (a private copy: cleaned in place).
        order_up_to_tm: Order-up-to levels ``[n_days, n]``.
        lead_time: Lead times ``[n]``, non-decreasing.
        initial_on_hand: On hand at the start of day 0 ``[n]``.
        warmup: Leading days left out of the metrics.
        keep_trajectories: Whether to record the daily on hand, lost units and orders.

    Returns:
        The block's metrics and, if asked, trajectories.
    """
    n_days, n = demand_tm.shape
    np.maximum(demand_tm, 0.0, out=demand_tm)
    np.nan_to_num(demand_tm, copy=False)
    values, starts = np.unique(lead_time, return_index=True)
    groups = list(zip(values.tolist(), starts.tolist(), [*starts[1:].tolist(), n], strict=True))
    width = int(values[-1]) + 2 if n else 2
    pipeline = np.zeros((width, n))  # ring buffer: row k % width = units received at the start of day k
    on_hand = initial_on_hand.astype(np.float64, copy=True)
    on_order = np.zeros(n)
    served, order = np.empty(n), np.empty(n)
    metrics = np.zeros((5, n))
    demanded, served_sum, on_hand_sum, ordered, stockouts = metrics
    trajectories = np.empty((3, n_days, n)) if keep_trajectories else None
    for t in range(n_days):
        arriving = pipeline[t % width]
        on_hand += arriving
        on_order -= arriving
        arriving[:] = 0.0
        day_demand = demand_tm[t]
        np.minimum(on_hand, day_demand, out=served)
        on_hand -= served
        np.subtract(order_up_to_tm[t], on_hand, out=order)
        order -= on_order
        np.fmax(order, 0.0, out=order)  # also turns a NaN level into no order
        on_order += order
        for lead, lo, hi in groups:
            pipeline[(t + 1 + lead) % width, lo:hi] += order[lo:hi]
        if t >= warmup:
            demanded += day_demand
            served_sum += served
            on_hand_sum += on_hand
            ordered += order
            stockouts += served < day_demand
        if trajectories is not None:
            trajectories[0, t] = on_hand
            trajectories[1, t] = day_demand - served
            trajectories[2, t] = order
    return _Block(metrics, trajectories)


def simulate_policy(
    demand: np.ndarray,
    order_up_to: np.ndarray,
    lead_time: np.ndarray,
    initial_on_hand: np.ndarray,
    *,
    warmup: int = 0,
    keep_trajectories: bool = False,
    block_size: int = BLOCK_SIZE,
) -> SimulationResult:
    """Replays a daily order-up-to policy with lost sales, vectorised over SKUs (Python loop over days only).

    The sequence of a day (receive, serve, review and order), lost sales and the metric definitions are in
    the module docstring. Results do not depend on ``block_size`` (the loop runs per block of SKUs to stay in
    cache, every step vectorised across the block).

    Args:
        demand: Demand ``[n_sku, n_days]``; ``NaN`` counts as 0 and negatives are clipped at 0.
        order_up_to: Order-up-to level ``S_t`` set at the end of each day ``[n_sku, n_days]``.
        lead_time: Lead time in days ``[n_sku]`` (integers >= 0; 3..7 in the platform).
        initial_on_hand: On hand at the start of day 0 ``[n_sku]`` (nothing on order).
        warmup: Leading days left out of the metrics (e.g. ``max(lead_time) + 1``, the days served only
            from the initial stock).
        keep_trajectories: Also return the daily on-hand, lost and order matrices.
        block_size: SKUs replayed together (see :data:`BLOCK_SIZE`); results do not depend on it.

    Returns:
        Per-SKU metrics over days ``warmup .. n_days - 1``.

    Raises:
        ValueError: On mismatched shapes, a negative lead time or ``warmup`` outside ``[0, n_days)``.
    """
    d = np.asarray(demand, dtype=np.float64)
    s = np.asarray(order_up_to, dtype=np.float64)
    lt = np.asarray(lead_time)
    if d.ndim != 2 or s.shape != d.shape:
        raise ValueError(f"demand {d.shape} and order_up_to {s.shape} must be equal [n_sku, n_days] shapes")
    n_sku, n_days = d.shape
    if lt.shape != (n_sku,) or not np.issubdtype(lt.dtype, np.integer):
        raise ValueError(f"lead_time must be an integer array of shape ({n_sku},)")
    if n_sku and lt.min() < 0:
        raise ValueError("lead_time must be non-negative")
    on_hand = np.array(initial_on_hand, dtype=np.float64).reshape(-1)
    if on_hand.shape != (n_sku,):
        raise ValueError(f"initial_on_hand must have shape ({n_sku},)")
    if block_size < 1:
        raise ValueError(f"block_size must be positive, got {block_size}")
    if not 0 <= warmup < max(n_days, 1):
        raise ValueError(f"warmup must be in [0, {n_days}), got {warmup}")

    lt = lt.astype(np.int64)
    metrics = np.zeros((5, n_sku))  # demanded, served, on-hand sum, ordered, stock-out days
    trajectories = np.empty((3, n_sku, n_days)) if keep_trajectories else None
    order = np.argsort(lt, kind="stable")  # equal lead times adjacent: pipeline updates become slices
    for begin in range(0, n_sku, block_size):
        rows = order[begin : begin + block_size]
        block = _replay_block(
            np.ascontiguousarray(d[rows].T),
            np.ascontiguousarray(s[rows].T),
            lt[rows],
            on_hand[rows],
            warmup,
            keep_trajectories,
        )
        metrics[:, rows] = block.metrics
        if trajectories is not None and block.trajectories is not None:
            trajectories[:, rows, :] = block.trajectories.transpose(0, 2, 1)
    demanded, served_sum, on_hand_sum, ordered, stockouts = metrics
    stockout_days = stockouts.astype(np.int64)

    n_eval = n_days - warmup
    fill = np.full(n_sku, np.nan)
    np.divide(served_sum, demanded, out=fill, where=demanded > 0)
    return SimulationResult(
        cycle_service_level=1.0 - stockout_days / n_eval if n_eval else np.full(n_sku, np.nan),
        fill_rate=fill,
        avg_on_hand=on_hand_sum / n_eval if n_eval else np.full(n_sku, np.nan),
        stockout_days=stockout_days,
        demanded=demanded,
        served=served_sum,
        lost_sales=demanded - served_sum,
        ordered=ordered,
        n_days=n_eval,
        on_hand=trajectories[0] if trajectories is not None else None,
        lost=trajectories[1] if trajectories is not None else None,
        orders=trajectories[2] if trajectories is not None else None,
    )


# --- order-up-to levels ---------------------------------------------------------------------------------------
def service_z(service: float) -> float:
    """Standard normal quantile of a service target (1.645 for 0.95).

    Args:
        service: Target in ``(0, 1)``.

    Returns:
        ``z`` with ``P(Z <= z) = service``.

    Raises:
        ValueError: If ``service`` is outside ``(0, 1)``.
    """
    if not 0.0 < service < 1.0:
        raise ValueError(f"service must be in (0, 1), got {service}")
    return NormalDist().inv_cdf(service)


def _epoch_days(values: pd.Series | pd.Index | np.ndarray) -> np.ndarray:
    """Days since 1970-01-01 of date-like values (time of day dropped)."""
    array = np.asarray(values)
    if array.dtype.kind == "M":  # tz-naive datetimes: no conversion through pandas
        return array.astype("datetime64[D]").astype(np.int64)
    stamps = pd.to_datetime(pd.Series(array))
    if stamps.dt.tz is not None:
        stamps = stamps.dt.tz_localize(None)
    return stamps.to_numpy().astype("datetime64[D]").astype(np.int64)


def _value_codes(values: pd.Series, index: pd.Index) -> np.ndarray:
    """Position of each value in ``index`` (-1 when absent); categorical columns look up their categories."""
    if isinstance(values.dtype, pd.CategoricalDtype):
        by_category = np.append(index.get_indexer(values.cat.categories), -1).astype(np.int32)
        return by_category[values.cat.codes.to_numpy()]
    return index.get_indexer(pd.Index(values.to_numpy())).astype(np.int32)


#: Largest SKU x warehouse lookup table :func:`series_codes` builds (beyond it: a MultiIndex look-up).
_MAX_SERIES_TABLE = 1 << 26


def series_codes(frame: pd.DataFrame, series: pd.DataFrame) -> np.ndarray:
    """Row of each SKU x warehouse of ``frame`` in ``series`` (-1 when absent).

    Each key column is looked up in the series' distinct values (categorical columns through their
    categories, without hashing every row), then a SKU x warehouse table gives the series row.

    Args:
        frame: Frame with ``sku`` and ``warehouse_id``.
        series: The series index: unique ``sku``, ``warehouse_id`` rows.

    Returns:
        Integer codes ``[len(frame)]``.
    """
    skus = pd.Index(pd.unique(series[C.SKU].to_numpy()))
    warehouses = pd.Index(pd.unique(series[C.WAREHOUSE_ID].to_numpy()))
    if len(skus) * len(warehouses) > _MAX_SERIES_TABLE:
        index = pd.MultiIndex.from_frame(series[[C.SKU, C.WAREHOUSE_ID]])
        keys = pd.MultiIndex.from_arrays([frame[C.SKU].to_numpy(), frame[C.WAREHOUSE_ID].to_numpy()])
        return index.get_indexer(keys)
    dtype = np.int32 if len(series) < np.iinfo(np.int32).max else np.int64
    table = np.full((len(skus) + 1, len(warehouses) + 1), -1, dtype=dtype)  # last row/column: absent
    table[
        skus.get_indexer(pd.Index(series[C.SKU].to_numpy())),
        warehouses.get_indexer(pd.Index(series[C.WAREHOUSE_ID].to_numpy())),
    ] = np.arange(len(series))
    return table[_value_codes(frame[C.SKU], skus), _value_codes(frame[C.WAREHOUSE_ID], warehouses)]


def lead_time_array(lead_time: int | pd.DataFrame, series: pd.DataFrame) -> np.ndarray:
    """Lead time of each series.

    Args:
        lead_time: One lead time for all, or a frame with ``sku``, ``warehouse_id``, ``lead_time``.
        series: The series index (``sku``, ``warehouse_id``).

    Returns:
        Integer lead times ``[len(series)]``.

    Raises:
        ValueError: If a series has no lead time or a lead time is negative.
    """
    if isinstance(lead_time, pd.DataFrame):
        out = np.full(len(series), -1, dtype=np.int64)
        codes = series_codes(lead_time, series)
        found = codes >= 0
        out[codes[found]] = lead_time[LEAD_TIME].to_numpy(dtype=np.int64)[found]
        if (out < 0).any():
            raise ValueError(f"{int((out < 0).sum())} series lack a (non-negative) lead time")
        return out
    if lead_time < 0:
        raise ValueError(f"lead_time must be non-negative, got {lead_time}")
    return np.full(len(series), int(lead_time), dtype=np.int64)


def forecast_order_up_to(
    forecasts: pd.DataFrame,
    series: pd.DataFrame,
    days: pd.DatetimeIndex,
    lead_time: np.ndarray,
    quantile: str = C.P95,
    review_period: int = REVIEW_PERIOD,
) -> np.ndarray:
    """``S_t`` = sum of a forecast quantile over the protection period of origin ``t``.

    The long forecasts are pivoted into ``[n_series, n_days]`` by one ``np.bincount`` over (series, origin)
    codes of the rows with ``horizon <= L + review_period`` (no cube of all horizons is built).

    Args:
        forecasts: Forecast frame (``sku``, ``warehouse_id``, ``origin_date``, ``horizon`` and ``quantile``).
        series: The series index (``sku``, ``warehouse_id``), one row per simulated series.
        days: Consecutive simulated days; day ``j`` uses the forecast of origin ``days[j]``.
        lead_time: Lead time per series ``[n_series]``.
        quantile: Forecast column summed (``p95``, ``p90``, ``p50`` or ``forecast``).
        review_period: Review period ``R`` in days.

    Returns:
        ``S`` ``[n_series, n_days]``; ``NaN`` where an origin lacks one of the ``L + R`` horizons.
    """
    code = series_codes(forecasts, series)
    day = _epoch_days(forecasts[C.ORIGIN_DATE])
    horizon = forecasts[C.HORIZON].to_numpy()
    return _order_up_to(code, day, horizon, forecasts[quantile], len(series), days, lead_time, review_period)


def _order_up_to(
    code: np.ndarray,
    day: np.ndarray,
    horizon: np.ndarray,
    values: pd.Series,
    n: int,
    days: pd.DatetimeIndex,
    lead_time: np.ndarray,
    review_period: int,
) -> np.ndarray:
    """:func:`forecast_order_up_to` on the rows' series codes, origin days (epoch) and horizons."""
    n_days = len(days)
    first = int(_epoch_days(days[:1])[0]) if n_days else 0
    keep = (horizon >= 1) & (horizon <= int(lead_time.max(initial=0)) + review_period)  # few rows left
    rows = np.flatnonzero(keep)
    code, day, horizon = code[rows], day[rows] - first, horizon[rows].astype(np.int64)
    keep = (code >= 0) & (day >= 0) & (day < n_days)
    keep[keep] &= horizon[keep] <= lead_time[code[keep]] + review_period
    value = values.to_numpy(dtype=np.float64)[rows[keep]]
    known = ~np.isnan(value)
    value = value[known]
    flat = code[keep][known].astype(np.int64) * n_days + day[keep][known]
    total = np.bincount(flat, weights=value, minlength=n * n_days).reshape(n, n_days)
    count = np.bincount(flat, minlength=n * n_days).reshape(n, n_days)
    return np.where(count == (lead_time + review_period)[:, None], total, np.nan)


def _lead_time_order_up_to(
    code: np.ndarray,
    day: np.ndarray,
    horizon: np.ndarray,
    forecasts: pd.DataFrame,
    n: int,
    days: pd.DatetimeIndex,
    lead_time: np.ndarray,
    service: float,
) -> np.ndarray:
    """``S_t`` = a quantile of the forecast demand over the protection period, not the sum of daily ones.

    ``S_t = sum_h f_h + z * sqrt(sum_h sigma_h^2)`` over ``h = 1 .. L + R`` of origin ``t``, with ``f`` the
    point forecast (the mean), ``sigma_h = (P95_h - P50_h) / z_0.95`` the daily spread the calibrated
    quantiles imply and ``z`` the normal quantile of ``service``: the days' errors treated as independent,
    where the sum of daily P95s assumes them perfectly correlated and so holds far more stock.
    """
    spread = (forecasts[C.P95] - forecasts[C.P50]).clip(lower=0.0) / service_z(0.95)
    mean = _order_up_to(code, day, horizon, forecasts[C.FORECAST], n, days, lead_time, REVIEW_PERIOD)
    var = _order_up_to(code, day, horizon, spread**2, n, days, lead_time, REVIEW_PERIOD)
    return mean + service_z(service) * np.sqrt(var)


def moving_average_order_up_to(
    demand: np.ndarray,
    lead_time: np.ndarray,
    start: int = 0,
    window: int = MA_WINDOW,
    service: float = DEFAULT_SERVICE,
    review_period: int = REVIEW_PERIOD,
) -> np.ndarray:
    """Baseline ``S_t = MA_t * P + z * sigma_t * sqrt(P)`` with ``P = L + review_period``.

    ``MA_t`` and ``sigma_t`` (sample std) are over the ``window`` days ending at ``t`` (known at the end
    of day ``t``), ignoring ``NaN`` days; with fewer days available, over those. ``sigma`` is 0 with fewer
    than two days; ``S`` is ``NaN`` (no order) with none. Rolling sums come from cumulative sums, so the
    cost is linear in the matrix size.

    Args:
        demand: Daily demand ``[n_series, n_total]`` (``NaN`` = unknown), history then simulated days.
        lead_time: Lead time per series ``[n_series]``.
        start: Column of the first simulated day.
        window: Moving-average window in days.
        service: Service target giving ``z``.
        review_period: Review period ``R`` in days.

    Returns:
        ``S`` ``[n_series, n_total - start]`` for the days ``start ..``.
    """
    d = np.maximum(np.asarray(demand, dtype=np.float64), 0.0)
    observed = ~np.isnan(d)
    values = np.where(observed, d, 0.0)
    zero = np.zeros((d.shape[0], 1))
    csum = np.concatenate([zero, np.cumsum(values, axis=1)], axis=1)
    csq = np.concatenate([zero, np.cumsum(values * values, axis=1)], axis=1)
    ccount = np.concatenate([zero, np.cumsum(observed, axis=1, dtype=np.float64)], axis=1)
    end = np.arange(start, d.shape[1]) + 1
    begin = np.maximum(end - window, 0)
    total = csum[:, end] - csum[:, begin]
    sq = csq[:, end] - csq[:, begin]
    n = ccount[:, end] - ccount[:, begin]
    mean = np.full(total.shape, np.nan)
    np.divide(total, n, out=mean, where=n > 0)
    var = np.zeros(total.shape)
    np.divide(sq - total * np.where(n > 0, mean, 0.0), n - 1, out=var, where=n > 1)
    sigma = np.sqrt(np.maximum(var, 0.0))
    protection = (np.asarray(lead_time, dtype=np.float64) + review_period)[:, None]
    return mean * protection + service_z(service) * sigma * np.sqrt(protection)


def demand_matrix(actuals: pd.DataFrame, series: pd.DataFrame, days: pd.DatetimeIndex) -> np.ndarray:
    """Clipped daily demand ``max(quantity, 0)`` of each series on consecutive days.

    Args:
        actuals: ``raw_sales`` rows (``sku``, ``warehouse_id``, ``date``, ``quantity``).
        series: The series index (``sku``, ``warehouse_id``).
        days: Consecutive days.

    Returns:
        ``[n_series, n_days]``; ``NaN`` where the series has no row that day.
    """
    n, n_days = len(series), len(days)
    out = np.full((n, n_days), np.nan)
    if n_days == 0:
        return out
    code = series_codes(actuals, series)
    day = _epoch_days(actuals[C.DATE]) - int(_epoch_days(days[:1])[0])
    keep = (code >= 0) & (day >= 0) & (day < n_days)
    out[code[keep], day[keep]] = np.maximum(actuals[C.QUANTITY].to_numpy(dtype=np.float64)[keep], 0.0)
    return out


# --- recommendations --------------------------------------------------------------------------------------------
def _key_codes(values: pd.Series) -> tuple[np.ndarray, int]:
    """Integer codes of a key column (missing values a code of their own) and the number of codes."""
    if isinstance(values.dtype, pd.CategoricalDtype):
        raw = values.cat.codes.to_numpy().astype(np.int32)
        n = len(values.cat.categories)
        return np.where(raw < 0, n, raw), n + 1
    codes, uniques = pd.factorize(values, use_na_sentinel=False)
    return codes.astype(np.int32), len(uniques)


def _latest_forecasts(forecasts: pd.DataFrame) -> pd.DataFrame:
    """The rows of each series' latest origin."""
    origin = pd.to_datetime(forecasts[C.ORIGIN_DATE])
    day = origin.to_numpy().view(np.int64) if origin.dtype.kind == "M" else _epoch_days(origin)
    sku, skus = _key_codes(forecasts[C.SKU])
    warehouse, warehouses = _key_codes(forecasts[C.WAREHOUSE_ID])
    code = sku.astype(np.int64) * max(warehouses, 1) + warehouse
    latest = np.full(skus * max(warehouses, 1), np.iinfo(np.int64).min)
    np.maximum.at(latest, code, day)
    is_latest = day == latest[code]
    return forecasts.loc[is_latest].assign(**{C.ORIGIN_DATE: origin.to_numpy()[is_latest]})


def _sorted_series(keys: pd.DataFrame) -> pd.DataFrame:
    """One row per series sorted by SKU and warehouse value (categorical keys as plain values: their
    category order is not the value order)."""
    keys = keys.assign(**{c: keys[c].astype(object) for c in (C.SKU, C.WAREHOUSE_ID)})
    return keys.sort_values([C.SKU, C.WAREHOUSE_ID]).reset_index(drop=True)


def recommend_policy(
    forecasts: pd.DataFrame,
    history: pd.DataFrame,
    lead_time: int | pd.DataFrame,
    service: float = DEFAULT_SERVICE,
    window: int = MA_WINDOW,
) -> pd.DataFrame:
    """Safety stock, reorder point and order-up-to level per SKU x warehouse from its latest forecast.

    Definitions (see the module docstring): ``expected_lead_time_demand`` = sum of ``forecast`` over
    horizons ``1 .. L``; ``safety_stock`` = ``sum_{h<=L} (q_h - p50_h)`` clipped at 0 with ``q`` the
    quantile of ``service`` (P95 or P90), method ``quantile_spread``; series without all ``L`` horizons of
    forecast and quantiles fall back to ``safety_stock_sigma`` = ``z * sigma_d * sqrt(L)`` (``sigma_d`` the
    std of daily demand over the ``window`` history days up to the origin; method ``z_sigma``; the
    expected demand then is the history mean times ``L``); ``reorder_point`` = expected lead-time demand +
    safety stock; ``order_up_to`` = sum of ``q`` over the protection period ``L + 1`` (the level
    :func:`forecast_order_up_to` simulates).

    Args:
        forecasts: Forecast frame; only each series' latest origin is used.
        history: ``raw_sales`` rows up to the origin (``sku``, ``warehouse_id``, ``date``, ``quantity``).
        lead_time: One lead time, or a frame with ``sku``, ``warehouse_id``, ``lead_time``.
        service: Service target: 0.95 (P95) or 0.90 (P90).
        window: History days of ``sigma_d``.

    Returns:
        One row per series with :data:`RECOMMENDATION_COLUMNS`.

    Raises:
        ValueError: If ``service`` has no forecast quantile.
    """
    quantile = QUANTILE_BY_SERVICE.get(round(service, 6))
    if quantile is None:
        raise ValueError(f"service must be one of {sorted(QUANTILE_BY_SERVICE)}, got {service}")
    latest = _latest_forecasts(forecasts)
    keys = latest[[C.SKU, C.WAREHOUSE_ID, C.ORIGIN_DATE, C.TIER]].drop_duplicates([C.SKU, C.WAREHOUSE_ID])
    series = _sorted_series(keys)
    n = len(series)
    lt = lead_time_array(lead_time, series)

    code = series_codes(latest, series)
    horizon = latest[C.HORIZON].to_numpy(dtype=np.int64)
    point = latest[C.FORECAST].to_numpy(dtype=np.float64)
    spread = latest[quantile].to_numpy(dtype=np.float64) - latest[C.P50].to_numpy(dtype=np.float64)
    upper = latest[quantile].to_numpy(dtype=np.float64)
    in_lt = (horizon >= 1) & (horizon <= lt[code]) & ~np.isnan(point) & ~np.isnan(spread)
    in_protect = (horizon >= 1) & (horizon <= lt[code] + REVIEW_PERIOD) & ~np.isnan(upper)
    mu = np.bincount(code[in_lt], weights=point[in_lt], minlength=n)
    ss = np.maximum(np.bincount(code[in_lt], weights=spread[in_lt], minlength=n), 0.0)
    complete = np.bincount(code[in_lt], minlength=n) == lt
    s = np.bincount(code[in_protect], weights=upper[in_protect], minlength=n)
    s = np.where(np.bincount(code[in_protect], minlength=n) == lt + REVIEW_PERIOD, s, np.nan)

    origin_day = _epoch_days(series[C.ORIGIN_DATE])
    hist_code = series_codes(history, series)
    hist_day = _epoch_days(history[C.DATE])
    lag = origin_day[np.maximum(hist_code, 0)] - hist_day
    recent = (hist_code >= 0) & (lag >= 0) & (lag < window)
    qty = np.maximum(history[C.QUANTITY].to_numpy(dtype=np.float64)[recent], 0.0)
    h_n = np.bincount(hist_code[recent], minlength=n).astype(np.float64)
    h_sum = np.bincount(hist_code[recent], weights=qty, minlength=n)
    h_sq = np.bincount(hist_code[recent], weights=qty * qty, minlength=n)
    h_mean = np.divide(h_sum, h_n, out=np.full(n, np.nan), where=h_n > 0)
    h_var = np.divide(h_sq - h_sum * np.nan_to_num(h_mean), h_n - 1, out=np.zeros(n), where=h_n > 1)
    ss_sigma = service_z(service) * np.sqrt(np.maximum(h_var, 0.0)) * np.sqrt(lt)

    mu = np.where(complete, mu, h_mean * lt)
    ss_used = np.where(complete, ss, ss_sigma)
    out = series.assign(
        **{
            LEAD_TIME: lt,
            EXPECTED_LEAD_TIME_DEMAND: mu,
            SAFETY_STOCK: ss_used,
            SAFETY_STOCK_METHOD: np.where(complete, METHOD_QUANTILE_SPREAD, METHOD_Z_SIGMA).astype(object),
            SAFETY_STOCK_SIGMA: ss_sigma,
            REORDER_POINT: mu + ss_used,
            ORDER_UP_TO: s,
        }
    )
    return out[list(RECOMMENDATION_COLUMNS)]


# --- comparison ---------------------------------------------------------------------------------------------------
def _summarise(policy: str, result: SimulationResult, tier: np.ndarray) -> list[dict[str, object]]:
    """Pooled metrics per tier and overall of one simulated policy."""
    rows = []
    groups: list[tuple[str, object, np.ndarray]] = [
        (f"tier {t}", int(t), tier == t) for t in np.unique(tier[~pd.isna(tier)])
    ]
    groups.append((SCOPE_OVERALL, pd.NA, np.ones(len(tier), dtype=bool)))
    for scope, tier_value, mask in groups:
        n = int(mask.sum())
        demanded = float(result.demanded[mask].sum())
        stockouts = int(result.stockout_days[mask].sum())
        cycles = n * result.n_days
        rows.append(
            {
                POLICY: policy,
                SCOPE: scope,
                C.TIER: tier_value,
                N_SERIES: n,
                CYCLE_SERVICE_LEVEL: 1.0 - stockouts / cycles if cycles else np.nan,
                FILL_RATE: float(result.served[mask].sum()) / demanded if demanded > 0 else np.nan,
                AVG_ON_HAND: float(result.avg_on_hand[mask].mean()) if n else np.nan,
                STOCKOUT_DAYS: stockouts,
                STOCKOUT_DAYS_PER_SERIES: stockouts / n if n else np.nan,
                DEMANDED: demanded,
                LOST_SALES: float(result.lost_sales[mask].sum()),
            }
        )
    return rows


def compare_policies(
    forecasts: pd.DataFrame,
    actuals: pd.DataFrame,
    lead_time: int | pd.DataFrame,
    *,
    quantiles: Sequence[str] = (C.P90, C.P95),
    window: int = MA_WINDOW,
    service: float = DEFAULT_SERVICE,
    warmup: int | None = None,
) -> pd.DataFrame:
    """Forecast-driven vs MA28-driven order-up-to policies replayed on the realised demand.

    Setup: the series are the SKU x warehouse pairs of ``forecasts``, with the tier of their latest origin;
    the simulated days run from the first origin to the last origin, cut at the last date of
    ``actuals``. Demand is the clipped ``raw_sales`` quantity (0 on days without a row). Each policy starts
    with on hand = its own order-up-to level of day 0 and nothing on order, and the first ``warmup`` days
    (default ``max(L) + 1``: the days served before the first order can arrive) are not scored. The MA28
    baseline reads the ``window - 1`` days before the first origin from ``actuals`` when present.

    Args:
        forecasts: Forecast frame over consecutive origins.
        actuals: ``raw_sales`` rows covering the simulated days (and ideally the MA window before).
        lead_time: One lead time, or a frame with ``sku``, ``warehouse_id``, ``lead_time``.
        quantiles: Forecast quantile columns, one forecast policy each (``forecast_p90``, ...).
        window: MA window of the baseline.
        service: Service target of the baseline's safety stock.
        warmup: Leading days not scored; ``max(L) + 1`` when None.

    Returns:
        :data:`COMPARISON_COLUMNS`, one row per policy x (tier, overall): pooled cycle service level
        (share of series-days without stock-out), pooled fill rate, mean per-series average on hand,
        stock-out days (total and per series), demanded and lost units.

    Raises:
        ValueError: If there is no day to score.
    """
    return replay_policies(
        forecasts,
        actuals,
        lead_time,
        quantiles=quantiles,
        window=window,
        service=service,
        warmup=warmup,
    ).comparison


@dataclass(frozen=True)
class PolicyEndState:
    """Stock of each replayed series after the last simulated day of one policy (see :func:`replay_policies`).

    Attributes:
        policy: Name of the replayed policy (e.g. ``forecast_p95``).
        last_day: Last simulated day: ``on_hand`` is the stock at its end.
        series: One row per series: ``sku``, ``warehouse_id``, ``tier`` and ``lead_time``, sorted by SKU and
            warehouse (the rows of ``on_hand`` and ``in_transit``).
        on_hand: On hand at the end of ``last_day`` ``[n_series]``.
        in_transit: Units ordered and not yet received ``[n_series, max(L) + 1]``: column ``k`` arrives at
            the start of day ``last_day + 1 + k``.
    """

    policy: str
    last_day: pd.Timestamp
    series: pd.DataFrame
    on_hand: np.ndarray
    in_transit: np.ndarray


class PolicyReplay(NamedTuple):
    """Output of :func:`replay_policies`: the comparison and, when asked, one policy's end state."""

    comparison: pd.DataFrame
    end_state: PolicyEndState | None


def in_transit_at_end(orders: np.ndarray, lead_time: np.ndarray) -> np.ndarray:
    """Orders of a replay still in transit after its last day, by day of arrival.

    An order placed at the end of day ``t`` arrives at the start of day ``t + L + 1`` (module docstring),
    so after the last day ``T`` the orders of days ``T - L .. T`` are in transit.

    Args:
        orders: Order placed at the end of each day ``[n_series, n_days]`` (``SimulationResult.orders``).
        lead_time: Lead time per series ``[n_series]``.

    Returns:
        ``[n_series, max(L) + 1]``: column ``k`` holds the units received at the start of day ``T + 1 + k``.
    """
    n, n_days = orders.shape
    lt = np.asarray(lead_time, dtype=np.int64)
    width = int(lt.max(initial=0)) + 1
    out = np.zeros((n, width))
    for back in range(min(width, n_days)):  # the order of day T - back arrives L - back days after T + 1
        arrival = lt - back
        pending = arrival >= 0
        rows = np.flatnonzero(pending)
        out[rows, arrival[pending]] += orders[rows, n_days - 1 - back]
    return out


def replay_policies(
    forecasts: pd.DataFrame,
    actuals: pd.DataFrame,
    lead_time: int | pd.DataFrame,
    *,
    quantiles: Sequence[str] = (C.P90, C.P95),
    window: int = MA_WINDOW,
    service: float = DEFAULT_SERVICE,
    warmup: int | None = None,
    end_state_of: str | None = None,
) -> PolicyReplay:
    """:func:`compare_policies`, plus the end state (on hand, orders in transit) of one replayed policy.

    The comparison is the one :func:`compare_policies` returns (it calls this function); the end state is
    read from the same replay of ``end_state_of`` (kept trajectories, which change no metric).

    Args:
        forecasts: As :func:`compare_policies`.
        actuals: As :func:`compare_policies`.
        lead_time: As :func:`compare_policies`.
        quantiles: As :func:`compare_policies`.
        window: As :func:`compare_policies`.
        service: As :func:`compare_policies`.
        warmup: As :func:`compare_policies`.
        end_state_of: Policy whose end state is returned (e.g. ``forecast_p95``); None for none.

    Returns:
        The comparison and the end state (None when ``end_state_of`` is None).

    Raises:
        ValueError: If there is no day to score, or ``end_state_of`` is not a replayed policy.
    """
    series_frame = _latest_forecasts(forecasts)
    series_frame = _sorted_series(
        series_frame[[C.SKU, C.WAREHOUSE_ID, C.TIER]].drop_duplicates([C.SKU, C.WAREHOUSE_ID])
    )
    lt = lead_time_array(lead_time, series_frame)
    origins = _epoch_days(forecasts[C.ORIGIN_DATE])
    last = min(int(origins.max()), int(_epoch_days(actuals[C.DATE]).max()))
    first = int(origins.min())
    days = pd.date_range(pd.Timestamp(first * NS_PER_DAY), pd.Timestamp(last * NS_PER_DAY), freq="D")
    warmup = int(lt.max()) + REVIEW_PERIOD if warmup is None else warmup
    if warmup >= len(days):
        raise ValueError(f"{len(days)} simulated days leave nothing to score after a warm-up of {warmup}")
    all_days = pd.date_range(days[0] - pd.Timedelta(days=window - 1), days[-1], freq="D")
    full = demand_matrix(actuals, series_frame, all_days)
    demand = np.nan_to_num(full[:, window - 1 :])

    code = series_codes(forecasts, series_frame)  # once for all quantiles
    horizon = forecasts[C.HORIZON].to_numpy()
    levels = {
        f"forecast_{q}": _order_up_to(
            code, origins, horizon, forecasts[q], len(series_frame), days, lt, REVIEW_PERIOD
        )
        for q in quantiles
    }
    if {C.P50, C.P95} <= set(forecasts.columns):
        levels[POLICY_LEAD_TIME] = _lead_time_order_up_to(
            code, origins, horizon, forecasts, len(series_frame), days, lt, service
        )
    levels[POLICY_MA] = moving_average_order_up_to(full, lt, start=window - 1, window=window, service=service)
    tier = series_frame[C.TIER].to_numpy()
    if end_state_of is not None and end_state_of not in levels:
        raise ValueError(f"end_state_of must be one of {sorted(levels)}, got {end_state_of!r}")
    rows = []
    end_state = None
    for policy, s in levels.items():
        keep = policy == end_state_of
        result = simulate_policy(demand, s, lt, np.nan_to_num(s[:, 0]), warmup=warmup, keep_trajectories=keep)
        rows.extend(_summarise(policy, result, tier))
        if keep and result.on_hand is not None and result.orders is not None:
            end_state = PolicyEndState(
                policy=policy,
                last_day=days[-1],
                series=series_frame.assign(**{LEAD_TIME: lt}),
                on_hand=result.on_hand[:, -1].copy(),
                in_transit=in_transit_at_end(result.orders, lt),
            )
    out = pd.DataFrame(rows, columns=list(COMPARISON_COLUMNS))
    out[C.TIER] = out[C.TIER].astype("Int64")
    return PolicyReplay(out, end_state)
