"""Forecast accuracy metrics, numpy-first and friendly to long-format frames.

Conventions:

* Scalar metrics (``wmape``, ``mae``, ``rmse``, ``bias``, ``coverage``, ``pinball_loss``) take arrays of
  any (broadcastable) shape, e.g. the ``actual`` and ``forecast`` columns of a long-format frame or two
  ``[n_series, h]`` matrices, and pool all entries. Pairs where either side is ``NaN`` are ignored.
* **Zero denominators return ``NaN``**, never ``inf`` or 0: ``wmape`` and ``bias`` when the actuals
  sum to zero, every mean when no pair is left, ``rmsse`` when the series' scale is zero or undefined,
  ``wrmsse`` and ``m5_weights`` when the total weight is zero.
* ``rmsse``, ``wrmsse`` and ``m5_weights`` follow the M5 competition definitions (see each docstring).
"""

from collections.abc import Sequence

import numpy as np
import pandas as pd

# Output column names of ``metrics_by_group`` (metric names, not data columns: they live here).
WMAPE = "wmape"
MAE = "mae"
RMSE = "rmse"
BIAS = "bias"
N_OBS = "n_obs"
METRIC_COLUMNS = (WMAPE, MAE, RMSE, BIAS, N_OBS)
# Columns of the per-group sums ``metrics_from_sums`` reads.
ABS_ERROR_SUM = "_abs_err"
SQUARED_ERROR_SUM = "_sq_err"
ERROR_SUM = "_err"
ABS_ACTUAL_SUM = "_abs_actual"
ACTUAL_SUM = "_actual"
PAIR_COUNT = "_n"
SUM_COLUMNS = (ABS_ERROR_SUM, SQUARED_ERROR_SUM, ERROR_SUM, ABS_ACTUAL_SUM, ACTUAL_SUM, PAIR_COUNT)


def _pairs(actual: np.ndarray, forecast: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Flattened float pairs with the ``NaN`` pairs removed.

    Args:
        actual: Actual values.
        forecast: Forecasts, broadcastable against ``actual``.

    Returns:
        ``(actual, forecast)`` as 1-D float arrays of equal length.
    """
    a, f = np.broadcast_arrays(np.asarray(actual, dtype=np.float64), np.asarray(forecast, dtype=np.float64))
    keep = ~(np.isnan(a) | np.isnan(f))
    return a[keep], f[keep]


def _ratio(numerator: float, denominator: float) -> float:
    """``numerator / denominator``, ``NaN`` when the denominator is zero.

    Args:
        numerator: Numerator.
        denominator: Denominator.

    Returns:
        The ratio as a float.
    """
    return float(numerator / denominator) if denominator != 0 else float("nan")


def wmape(actual: np.ndarray, forecast: np.ndarray) -> float:
    """Weighted mean absolute percentage error ``sum|f - a| / sum|a|``.

    Args:
        actual: Actual values.
        forecast: Forecasts, broadcastable against ``actual``.

    Returns:
        WMAPE as a fraction (0.25 = 25%); ``NaN`` when the actuals sum to zero.
    """
    a, f = _pairs(actual, forecast)
    return _ratio(np.abs(f - a).sum(), np.abs(a).sum())


def mae(actual: np.ndarray, forecast: np.ndarray) -> float:
    """Mean absolute error.

    Args:
        actual: Actual values.
        forecast: Forecasts, broadcastable against ``actual``.

    Returns:
        MAE; ``NaN`` when there is no pair.
    """
    a, f = _pairs(actual, forecast)
    return _ratio(np.abs(f - a).sum(), a.size)


def rmse(actual: np.ndarray, forecast: np.ndarray) -> float:
    """Root mean squared error.

    Args:
        actual: Actual values.
        forecast: Forecasts, broadcastable against ``actual``.

    Returns:
        RMSE; ``NaN`` when there is no pair.
    """
    a, f = _pairs(actual, forecast)
    return float(np.sqrt(_ratio(np.square(f - a).sum(), a.size)))


def bias(actual: np.ndarray, forecast: np.ndarray) -> float:
    """Relative bias ``sum(f - a) / sum(a)``: positive when over-forecasting.

    Args:
        actual: Actual values.
        forecast: Forecasts, broadcastable against ``actual``.

    Returns:
        Bias as a fraction; ``NaN`` when the actuals sum to zero.
    """
    a, f = _pairs(actual, forecast)
    return _ratio((f - a).sum(), a.sum())


def coverage(actual: np.ndarray, upper: np.ndarray) -> float:
    """Share of actuals at or below an upper quantile forecast (e.g. P90, P95).

    Args:
        actual: Actual values.
        upper: Upper forecasts, broadcastable against ``actual``.

    Returns:
        Coverage in ``[0, 1]``; ``NaN`` when there is no pair.
    """
    a, u = _pairs(actual, upper)
    return _ratio((a <= u).sum(), a.size)


def pinball_loss(actual: np.ndarray, q_forecast: np.ndarray, q: float) -> float:
    """Mean pinball (quantile) loss ``max(q * (a - f), (q - 1) * (a - f))``.

    Args:
        actual: Actual values.
        q_forecast: Forecasts of the ``q`` quantile, broadcastable against ``actual``.
        q: Quantile level in ``(0, 1)``.

    Returns:
        Mean pinball loss; ``NaN`` when there is no pair.

    Raises:
        ValueError: If ``q`` is outside ``(0, 1)``.
    """
    if not 0.0 < q < 1.0:
        raise ValueError(f"q must be in (0, 1), got {q}")
    a, f = _pairs(actual, q_forecast)
    diff = a - f
    return _ratio(np.maximum(q * diff, (q - 1.0) * diff).sum(), a.size)


def _as_rows(x: np.ndarray) -> np.ndarray:
    """A float matrix with one row per series (a 1-D input is a single series).

    Args:
        x: Array of one or two dimensions.

    Returns:
        2-D float array.

    Raises:
        ValueError: If ``x`` has more than two dimensions.
    """
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim > 2:
        raise ValueError(f"expected [n_series, n_days], got shape {arr.shape}")
    return np.atleast_2d(arr)


def rmsse(actual: np.ndarray, forecast: np.ndarray, history: np.ndarray) -> np.ndarray:
    """Root mean squared scaled error of each series (M5 definition).

    ``rmsse_i = sqrt(mean_t (a_it - f_it)^2 / scale_i)`` where ``scale_i`` is the mean squared
    one-step naive error ``(y_t - y_{t-1})^2`` over the history *from the series' first non-zero sale
    on* (the first difference counted is the one from that sale to the next day), so days before the
    launch or before the first sale, ``NaN`` or zero, do not shrink the scale.

    Args:
        actual: Actuals ``[n_series, h]`` (1-D for one series).
        forecast: Forecasts, same shape as ``actual``.
        history: In-sample history ``[n_series, n_hist]``, ``NaN`` allowed before launch.

    Returns:
        RMSSE per series ``[n_series]``; ``NaN`` for a series whose scale is zero or undefined (no sale,
        a single sale on the last day, or a constant history since the first sale) or without any
        non-``NaN`` actual/forecast pair.

    Raises:
        ValueError: If the shapes do not agree.
    """
    a, f, hist = _as_rows(actual), _as_rows(forecast), _as_rows(history)
    if a.shape != f.shape or hist.shape[0] != a.shape[0]:
        raise ValueError(f"shapes {a.shape}, {f.shape}, {hist.shape} do not agree")
    selling = np.logical_or.accumulate(hist > 0, axis=1)
    step = np.diff(hist, axis=1)
    counted = selling[:, :-1] & ~np.isnan(step)
    n_steps = counted.sum(axis=1)
    scale_sum = np.where(counted, np.square(step), 0.0).sum(axis=1)
    scale = np.divide(scale_sum, n_steps, out=np.full(a.shape[0], np.nan), where=n_steps > 0)
    err = f - a
    paired = ~np.isnan(err)
    n_pairs = paired.sum(axis=1)
    sq_sum = np.where(paired, np.square(err), 0.0).sum(axis=1)
    mse = np.divide(sq_sum, n_pairs, out=np.full(a.shape[0], np.nan), where=n_pairs > 0)
    ratio = np.divide(mse, scale, out=np.full(a.shape[0], np.nan), where=scale > 0)
    return np.sqrt(ratio)


def wrmsse(actual: np.ndarray, forecast: np.ndarray, history: np.ndarray, weights: np.ndarray) -> float:
    """Weighted RMSSE over series (M5 definition, one aggregation level).

    Weights are normalised to sum to one over the series whose RMSSE is defined; series with an
    undefined RMSSE (see ``rmsse``) are left out rather than poisoning the total.

    Args:
        actual: Actuals ``[n_series, h]``.
        forecast: Forecasts, same shape as ``actual``.
        history: In-sample history ``[n_series, n_hist]``.
        weights: Non-negative weight per series ``[n_series]`` (e.g. ``m5_weights``).

    Returns:
        WRMSSE; ``NaN`` when the weights of the series with a defined RMSSE sum to zero.

    Raises:
        ValueError: If ``weights`` has the wrong shape or a negative entry.
    """
    scores = rmsse(actual, forecast, history)
    w = np.asarray(weights, dtype=np.float64)
    if w.shape != scores.shape:
        raise ValueError(f"weights must have shape {scores.shape}, got {w.shape}")
    if (w < 0).any():
        raise ValueError("weights must be non-negative")
    defined = ~np.isnan(scores) & ~np.isnan(w)
    total = w[defined].sum()
    return _ratio((w[defined] * scores[defined]).sum(), total)


def m5_weights(history_units: np.ndarray, history_prices: np.ndarray, last: int = 28) -> np.ndarray:
    """M5 series weights: dollar sales over the last ``last`` days, normalised to sum to one.

    Args:
        history_units: Units sold ``[n_series, n_hist]`` (``NaN`` counts as no sale).
        history_prices: Prices, either per day ``[n_series, n_hist]`` or per series ``[n_series]``
            (``NaN`` counts as no sale).
        last: Number of trailing days to sum.

    Returns:
        Weights ``[n_series]`` summing to one; all ``NaN`` when there were no dollar sales at all.

    Raises:
        ValueError: If ``last`` is not positive or the price shape does not fit.
    """
    if last < 1:
        raise ValueError(f"last must be positive, got {last}")
    units = _as_rows(history_units)
    prices = np.asarray(history_prices, dtype=np.float64)
    if prices.ndim == 1:
        prices = prices[:, None]
    if prices.shape[0] != units.shape[0] or prices.shape[1] not in (1, units.shape[1]):
        raise ValueError(f"prices of shape {prices.shape} do not fit units of shape {units.shape}")
    dollars = np.nansum(units[:, -last:] * prices[:, -last:], axis=1)
    total = dollars.sum()
    if total == 0:
        return np.full(units.shape[0], np.nan)
    return dollars / total


def metrics_by_group(
    df: pd.DataFrame, group_cols: str | Sequence[str], actual_col: str, forecast_col: str
) -> pd.DataFrame:
    """WMAPE, MAE, RMSE and bias per group of a long-format frame.

    Error terms are computed as columns first and aggregated with one ``groupby().sum()`` (no Python
    function per group), so this scales to millions of rows. Rows whose actual or forecast is ``NaN``
    do not count; a group left without any row still appears, with ``n_obs`` 0 and ``NaN`` metrics.
    ``NaN`` group keys form their own group.

    Args:
        df: Long-format frame, one row per series x target date.
        group_cols: Column(s) to group by (e.g. ``columns.CATEGORY`` or ``columns.HORIZON``).
        actual_col: Column of actuals.
        forecast_col: Column of point forecasts.

    Returns:
        One row per group: the group columns, then ``wmape``, ``mae``, ``rmse``, ``bias`` (``NaN``
        where the denominator is zero, as in the scalar functions) and ``n_obs``, sorted by group.
    """
    keys = [group_cols] if isinstance(group_cols, str) else list(group_cols)
    actual = df[actual_col].astype(np.float64)
    forecast = df[forecast_col].astype(np.float64)
    paired = actual.notna() & forecast.notna()
    err = (forecast - actual).where(paired, 0.0)
    actual = actual.where(paired, 0.0)
    terms = pd.DataFrame(
        {
            ABS_ERROR_SUM: err.abs(),
            SQUARED_ERROR_SUM: np.square(err),
            ERROR_SUM: err,
            ABS_ACTUAL_SUM: actual.abs(),
            ACTUAL_SUM: actual,
            PAIR_COUNT: paired.astype(np.int64),
        },
        index=df.index,
    )
    sums = pd.concat([df[keys], terms], axis=1).groupby(keys, observed=True, dropna=False, sort=True).sum()
    return metrics_from_sums(sums).reset_index()


def metrics_from_sums(sums: pd.DataFrame) -> pd.DataFrame:
    """WMAPE, MAE, RMSE, bias and ``n_obs`` from per-group sums of error terms.

    The second half of :func:`metrics_by_group`, for callers that aggregate the terms themselves (e.g.
    with ``np.bincount`` over integer group codes): the same formulas, the same ``NaN`` rules.

    Args:
        sums: One row per group with the columns of :data:`SUM_COLUMNS` (sums over the group's paired
            rows: ``|f - a|``, ``(f - a)^2``, ``f - a``, ``|a|``, ``a``, and the number of pairs).

    Returns:
        ``wmape``, ``mae``, ``rmse``, ``bias`` and ``n_obs`` (int64), on the index of ``sums``.
    """
    n = sums[PAIR_COUNT].astype(np.int64)
    n_or_nan = n.where(n > 0)
    abs_actual = sums[ABS_ACTUAL_SUM]
    actual = sums[ACTUAL_SUM]
    return pd.DataFrame(
        {
            WMAPE: sums[ABS_ERROR_SUM] / abs_actual.where(abs_actual != 0),
            MAE: sums[ABS_ERROR_SUM] / n_or_nan,
            RMSE: np.sqrt(sums[SQUARED_ERROR_SUM] / n_or_nan),
            BIAS: sums[ERROR_SUM] / actual.where(actual != 0),
            N_OBS: n,
        },
        index=sums.index,
    )
