"""Cross-warehouse reconciliation of a SKU's forecasts: each warehouse's forecast moved towards its long-run
share of the SKU's forecast summed over the warehouses.

A SKU's demand in one warehouse is its demand in all of them times a warehouse affinity that changes slowly;
each warehouse's models estimate both from that warehouse's own noisy days. The sum over the warehouses is far
less noisy, and the affinity is well measured by a year of sales. The reconciled forecast of SKU ``s`` in
warehouse ``w`` on a target day is::

    f'[s, w] = weight * f[s, w] + (1 - weight) * share[s, w] * sum_w' f[s, w']

with ``share[s, w]`` the warehouse's share of the SKU's units over the ``SHARE_DAYS`` before the origin
(among the warehouses that sold it). This is top-down reconciliation over the warehouse level of the
hierarchy SKU -> SKU x warehouse (the sum over the warehouses is unchanged). ``weight`` is where the data
say how much to pool: :func:`pooling_weight` picks it from past forecasts and their actuals (1 keeps each
warehouse's own forecast). A series without sales in the share window (a launch) keeps its own forecast. The
quantiles move with the point forecast (scaled by its ratio, rounded to counts). Everything is a vectorised group sum over the
long frame: no loop over series.

This is a cross-warehouse step: it needs every warehouse's forecasts of the origin, so it runs after all of
them: :func:`reconcile_origin` is what the date-partitioned ``reconciled_forecasts`` asset calls. It pools the
model's output (the planners' overrides are taken off, and applied again to the reconciled forecasts), with
the weight :func:`choose_weight` picks on the forecasts of an earlier origin whose days have been sold since.
"""

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from demand_platform import columns as C
from demand_platform.forecasting.overrides import apply_overrides, model_output

#: Days of sales before the origin that measure each warehouse's share of a SKU.
SHARE_DAYS = 365
#: Weights of the own forecast tried by :func:`pooling_weight`.
WEIGHT_GRID = (0.0, 0.25, 0.5, 0.75, 1.0)
#: Forecast columns moved with the point forecast.
QUANTITY_COLUMNS = (C.FORECAST, C.P50, C.P90, C.P95)
#: Column of the reconciled frame: the ratio that scaled the row (1 where it kept its own forecast).
POOLING_RATIO = C.POOLING_RATIO
#: The weight is picked on the latest stored origin at least this many days before the origin (its whole
#: horizon has been sold since) ...
WEIGHT_ORIGIN_LAG = 30
#: ... else on the latest one at least this many days before (a week of its horizon sold) ...
WEIGHT_ORIGIN_MIN_LAG = 7
#: ... and none older than this.
WEIGHT_ORIGIN_MAX_LAG = 60
#: Weight of the own forecast when no past forecast can be scored (the first month): no pooling.
DEFAULT_WEIGHT = 1.0


def warehouse_shares(sales: pd.DataFrame, origin: pd.Timestamp, days: int = SHARE_DAYS) -> pd.DataFrame:
    """Each warehouse's share of each SKU's units over the ``days`` days up to ``origin`` (included).

    Args:
        sales: Daily sales of every warehouse (``sku``, ``warehouse_id``, ``date``, ``quantity``).
        origin: The forecast origin; nothing after it is read.
        days: Window length.

    Returns:
        Frame ``sku``, ``warehouse_id``, ``units`` (the window's units, negatives as 0; series without units
        are left out).
    """
    dates = pd.to_datetime(sales[C.DATE])
    window = sales.loc[(dates <= origin) & (dates > origin - pd.Timedelta(days=days))]
    units = (
        window.assign(units=window[C.QUANTITY].clip(lower=0))
        .groupby([C.SKU, C.WAREHOUSE_ID], sort=True, observed=True)["units"]
        .sum()
        .reset_index()
    )
    return units.loc[units["units"] > 0].reset_index(drop=True)


def pooled_point(
    forecasts: pd.DataFrame, shares: pd.DataFrame, local: np.ndarray | None = None
) -> np.ndarray:
    """``share[s, w] * sum_w' f[s, w']`` for each row of ``forecasts`` (NaN where the series has no share).

    Args:
        forecasts: Long forecasts of every warehouse of one or more origins (``sku``, ``warehouse_id``,
            ``origin_date``, ``target_date``, ``forecast``).
        shares: :func:`warehouse_shares`.
        local: Rows driven by an event of their warehouse alone (:func:`regional_campaign_rows`): NaN, and
            left out of the day's total and shares, so a regional campaign's lift is neither spread to the
            other warehouses nor pooled away from its own.
    """
    keys = pd.MultiIndex.from_frame(forecasts[[C.SKU, C.WAREHOUSE_ID]].astype(str))
    by_series = pd.Series(
        shares["units"].to_numpy(np.float64),
        index=pd.MultiIndex.from_frame(shares[[C.SKU, C.WAREHOUSE_ID]].astype(str)),
    )
    units = by_series.reindex(keys).to_numpy(np.float64)
    has_share = ~np.isnan(units)
    if local is not None:
        has_share &= ~local
        units = np.where(has_share, units, np.nan)
    point = forecasts[C.FORECAST].to_numpy(np.float64)
    # Arrays, not the frame's columns: a Series grouper aligns on the index, and the caller's need not be 0..n-1.
    day = [forecasts[column].to_numpy() for column in (C.SKU, C.ORIGIN_DATE, C.TARGET_DATE)]
    frame = pd.DataFrame({"f": np.where(has_share, point, 0.0), "u": np.where(has_share, units, 0.0)})
    grouped = frame.groupby(day, sort=False)
    total_f = grouped["f"].transform("sum").to_numpy()
    total_u = grouped["u"].transform("sum").to_numpy()
    share = np.divide(units, total_u, out=np.full(len(units), np.nan), where=has_share & (total_u > 0))
    return share * total_f


def reconcile_across_warehouses(
    forecasts: pd.DataFrame,
    shares: pd.DataFrame,
    weight: float,
    inplace: bool = False,
    local: np.ndarray | None = None,
) -> pd.DataFrame:
    """The forecasts moved towards the SKU's cross-warehouse total times the warehouse's share.

    Args:
        forecasts: Long forecasts of every warehouse (see :func:`pooled_point`), with p50/p90/p95.
        shares: :func:`warehouse_shares` at the origin.
        weight: Weight of each warehouse's own forecast, in [0, 1] (1 returns them unchanged).
        inplace: Change ``forecasts`` itself instead of a copy (a day of 500,000 series is 15 M rows).
        local: Rows kept as they are and left out of the pooling (see :func:`pooled_point`).

    Returns:
        A copy with ``forecast`` scaled by ``f' / f`` where the series has a share and a positive forecast,
        the quantiles scaled by the same ratio and rounded to counts, and the ratio in ``pooling_ratio``.

    Raises:
        ValueError: If ``weight`` is outside [0, 1].
    """
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"pooling weight must be in [0, 1], got {weight}")
    out = forecasts if inplace else forecasts.copy()
    point = forecasts[C.FORECAST].to_numpy(np.float64)
    pooled = pooled_point(forecasts, shares, local)
    target = weight * point + (1.0 - weight) * pooled
    ratio = np.divide(target, point, out=np.ones(len(point)), where=~np.isnan(pooled) & (point > 0))
    out[C.FORECAST] = point * ratio
    for column in QUANTITY_COLUMNS[1:]:
        if column in out:
            # A quantile of a count is a count: scaled and left fractional, a p90 of 1 moved to 0.9 would no
            # longer cover the day that sells 1 (p90 coverage fell from 0.886 to 0.856 on bench.scenarios).
            q = out[column].to_numpy(np.float64)
            out[column] = np.where(ratio != 1.0, np.round(q * ratio), q)
    out[POOLING_RATIO] = ratio
    return out


def pooling_weight(
    forecasts: pd.DataFrame,
    actual: np.ndarray,
    shares: pd.DataFrame,
    grid: Sequence[float] = WEIGHT_GRID,
    local: np.ndarray | None = None,
) -> tuple[float, dict[float, float]]:
    """The weight of the own forecast, from ``grid``, whose reconciled forecasts had the lowest WMAPE on past
    origins (forecasts made then, scored against what was sold since).

    Args:
        forecasts: Past forecasts of every warehouse (see :func:`pooled_point`), target days already past.
        actual: Units sold on each row's target day.
        shares: :func:`warehouse_shares` at the past origin (nothing after it).
        grid: Candidate weights.
        local: Rows left out of the pooling (see :func:`pooled_point`).

    Returns:
        The best weight (ties to the larger: less pooling) and the WMAPE of every weight.
    """
    point = forecasts[C.FORECAST].to_numpy(np.float64)
    pooled = pooled_point(forecasts, shares, local)
    pooled = np.where(np.isnan(pooled), point, pooled)
    total = float(np.abs(actual).sum())
    scores = {
        float(w): float(np.abs(actual - (w * point + (1 - w) * pooled)).sum() / total) if total > 0 else 0.0
        for w in grid
    }
    best = min(sorted(scores, reverse=True), key=lambda w: scores[w])
    return best, scores


def regional_campaign_rows(
    forecasts: pd.DataFrame, campaigns: pd.DataFrame | None, warehouses: pd.DataFrame | None
) -> np.ndarray:
    """The rows whose target day is inside a campaign of their warehouse's region only (``target_region`` set:
    the warehouses whose ``location_state`` it names), for every SKU or the campaign's SKU.

    A sitewide or national campaign lifts a SKU in every warehouse, so pooling keeps it; a regional one lifts
    one warehouse, and pooling would spread its lift over the others. The loop is over the regional campaigns
    overlapping the forecasts' days (a handful), each a vectorised mask over the rows.

    Args:
        forecasts: Long forecasts (``sku``, ``warehouse_id``, ``target_date``).
        campaigns: The ``marketing_campaigns`` table (None or empty: none).
        warehouses: The ``warehouses`` table (``warehouse_id``, ``location_state``).

    Returns:
        A boolean per row.
    """
    local = np.zeros(len(forecasts), dtype=bool)
    if campaigns is None or campaigns.empty or warehouses is None or warehouses.empty or forecasts.empty:
        return local
    target = pd.to_datetime(forecasts[C.TARGET_DATE]).to_numpy("datetime64[ns]")
    start = pd.to_datetime(campaigns[C.START_DATE], errors="coerce").to_numpy("datetime64[ns]")
    end = pd.to_datetime(campaigns[C.END_DATE], errors="coerce").to_numpy("datetime64[ns]")
    region = campaigns[C.TARGET_REGION].to_numpy(dtype=object)
    overlaps = (
        ~pd.isna(region) & ~np.isnat(start) & ~np.isnat(end) & (end >= target.min()) & (start <= target.max())
    )
    if not overlaps.any():
        return local
    warehouse_codes, warehouse_names = pd.factorize(forecasts[C.WAREHOUSE_ID].astype(str))
    sku_codes, sku_names = pd.factorize(forecasts[C.SKU].astype(str))
    sku_index = {name: code for code, name in enumerate(sku_names)}
    state = warehouses.set_index(warehouses[C.WAREHOUSE_ID].astype(str))[C.LOCATION_STATE]
    in_state = {
        str(st): np.flatnonzero(np.isin(warehouse_names, state.index[state.astype(str) == str(st)]))
        for st in set(region[overlaps])
    }
    skus = campaigns[C.SKU].to_numpy(dtype=object)
    for i in np.flatnonzero(overlaps):
        codes = in_state[str(region[i])]
        if len(codes) == 0:
            continue
        rows = np.isin(warehouse_codes, codes) & (target >= start[i]) & (target <= end[i])
        if not pd.isna(skus[i]):
            rows &= sku_codes == sku_index.get(str(skus[i]), -1)
        local |= rows
    return local


@dataclass(frozen=True)
class PastForecasts:
    """Forecasts of a past origin of every warehouse and what was sold on their target days since.

    Attributes:
        origin: The past origin.
        forecasts: The model's forecasts of that origin (before any planner override: the weight is
            picked on what the models say), see :func:`pooled_point`.
        actual: Units sold on each row's target day.
        shares: :func:`warehouse_shares` at that origin.
        local: Its rows left out of the pooling (:func:`regional_campaign_rows`), or None.
    """

    origin: dt.date
    forecasts: pd.DataFrame
    actual: np.ndarray
    shares: pd.DataFrame
    local: np.ndarray | None = None


@dataclass(frozen=True)
class PoolingChoice:
    """The weight of the own forecast and how it was picked.

    Attributes:
        weight: The weight, in [0, 1].
        reason: Why this weight (for the asset's metadata and the log).
        origin: The past origin it was picked on, None when none could be scored.
        scores: WMAPE of each candidate weight on that origin.
    """

    weight: float
    reason: str
    origin: dt.date | None = None
    scores: dict[float, float] = field(default_factory=dict)


def choose_weight(past: PastForecasts | None) -> PoolingChoice:
    """The weight with the lowest WMAPE on ``past`` (:func:`pooling_weight`); :data:`DEFAULT_WEIGHT` without one.

    Args:
        past: Forecasts of a past origin scored against the sales since, or None when there are none.
    """
    if past is None or past.forecasts.empty or float(np.abs(past.actual).sum()) == 0.0:
        return PoolingChoice(
            DEFAULT_WEIGHT, "no past forecasts with sales to pick the weight on: own forecasts kept"
        )
    weight, scores = pooling_weight(past.forecasts, past.actual, past.shares, local=past.local)
    summary = ", ".join(f"{w:g}: {v:.4f}" for w, v in scores.items())
    return PoolingChoice(
        weight,
        f"weight {weight:g} had the lowest WMAPE on the forecasts of {past.origin} ({summary})",
        past.origin,
        scores,
    )


def reconcile_origin(
    forecasts: pd.DataFrame,
    shares: pd.DataFrame,
    overrides: pd.DataFrame | None,
    past: PastForecasts | None,
    weight: float | None = None,
    campaigns: pd.DataFrame | None = None,
    warehouses: pd.DataFrame | None = None,
) -> tuple[pd.DataFrame, PoolingChoice]:
    """Every warehouse's forecasts of an origin reconciled across the warehouses, overrides applied on top.

    The model's output is reconciled (:func:`reconcile_across_warehouses`): a planner's override is not pooled
    into other warehouses, and it is applied again to the reconciled forecasts of the rows it covers.

    Args:
        forecasts: The stored forecasts of one origin, every warehouse (overrides applied, with the
            ``*_unadjusted`` columns).
        shares: :func:`warehouse_shares` at the origin.
        overrides: The planners' overrides table (None or empty: none).
        past: Forecasts of an earlier origin scored since, for :func:`choose_weight`.
        weight: A fixed weight instead of the one ``past`` picks.
        campaigns: The ``marketing_campaigns`` table: rows inside a regional campaign keep their own forecast
            and are left out of the pooling (:func:`regional_campaign_rows`).
        warehouses: The ``warehouses`` table (the regions).

    Returns:
        The reconciled forecasts (the columns of ``forecasts`` and :data:`POOLING_RATIO`, in another order: the
        platform's IO manager inserts by name) and the choice.
    """
    choice = (
        choose_weight(past)
        if weight is None
        else PoolingChoice(weight, f"weight {weight:g} set by the run's configuration")
    )
    # model_output is a copy already: reconciled in place, one copy fewer of the day's rows.
    local = regional_campaign_rows(forecasts, campaigns, warehouses)
    reconciled = reconcile_across_warehouses(
        model_output(forecasts), shares, choice.weight, inplace=True, local=local
    )
    return apply_overrides(reconciled, overrides), choice
