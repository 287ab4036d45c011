"""Vectorised statistical forecasters for dense demand matrices (Nixtla statsforecast style).

Every kernel takes a dense matrix ``y`` of shape ``[n_series, n_days]`` holding the daily history of
each SKU x warehouse series up to the forecast origin, and returns point forecasts of shape
``[n_series, h]``. There is no Python loop over series: the recursive methods (Croston, TSB and the
alpha search of ``auto_ses``) loop over time steps, each step vectorised across a block of series;
fixed-alpha SES is one matrix-vector product per block; the other methods are plain array
expressions.

Conventions shared by all kernels:

* **Late launches.** ``NaN`` is allowed *before* a series' first valid day (a SKU launched after the
  first column). Each series is treated as starting at its first non-``NaN`` day, so a row with a
  ``NaN`` prefix forecasts exactly like the same row with the prefix cut off. ``NaN`` after the first
  valid day is not expected; it is treated as zero demand (a day without a recorded sale).
* **No history.** A row that is entirely ``NaN`` (or a matrix with zero days) forecasts zeros.
* **All-zero series** forecast zeros.
* **Non-negative output.** Forecasts are clipped at zero. Inputs are demand quantities, so this only
  matters for series that contain negative values (returns); the intermittent-demand methods
  (Croston, SBA, TSB) count a day as a demand occurrence only when its value is strictly positive,
  exactly like sktime's ``Croston``.

The kernels reproduce reference implementations (see each docstring, and the tests in
``demand_platform_tests/domain/test_statistical.py``):

* ``croston`` == ``sktime.forecasting.croston.Croston(smoothing=alpha)`` and, at ``alpha=0.1``,
  ``statsforecast.models.CrostonClassic``;
* ``croston_sba`` == ``statsforecast.models.CrostonSBA`` at ``alpha=0.1``;
* ``tsb`` == ``statsforecast.models.TSB(alpha_d, alpha_p)``;
* ``ses`` == ``statsforecast.models.SimpleExponentialSmoothing(alpha)``;
* ``seasonal_naive`` == ``statsforecast.models.SeasonalNaive(season_length)``;
* ``moving_average`` == ``statsforecast.models.WindowAverage(window_size)``;
* ``naive`` == ``statsforecast.models.Naive``;

on every series with enough history; the documented differences concern short histories only.
"""

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Literal, NamedTuple, Protocol

import numpy as np

#: Number of series processed together. Bounds the time-major copy of a block
#: (``n_days * BLOCK_SIZE * 8`` bytes) while keeping each per-step vector operation of the time loops
#: (``BLOCK_SIZE * 8`` bytes) in cache; it was the fastest of the block sizes tried.
BLOCK_SIZE = 8192

#: Weights smaller than this are set to zero (avoids slow denormal arithmetic).
_TINY = 1e-300

#: Smoothing constants that ``auto_ses`` chooses from (per series, by in-sample one-step SSE).
AUTO_SES_ALPHAS: tuple[float, ...] = (0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.8)


# --------------------------------------------------------------------------------------------------
# input handling
# --------------------------------------------------------------------------------------------------
def _check(y: np.ndarray, h: int) -> np.ndarray:
    """Validate the inputs shared by all kernels.

    Args:
        y: History matrix ``[n_series, n_days]``.
        h: Forecast horizon in days.

    Returns:
        ``y`` as a float array (no copy when it already is one).

    Raises:
        ValueError: If ``y`` is not two-dimensional or ``h`` is not a positive integer.
    """
    arr = np.asarray(y)
    if arr.ndim != 2:
        raise ValueError(f"y must be a 2-D matrix [n_series, n_days], got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.floating):
        arr = arr.astype(np.float64)
    if isinstance(h, bool) or not isinstance(h, int | np.integer) or h < 1:
        raise ValueError(f"h must be a positive integer, got {h!r}")
    return arr


def _first_valid(y: np.ndarray) -> np.ndarray:
    """Index of each row's first non-NaN day (``n_days`` for a row without any).

    Args:
        y: History matrix ``[n_series, n_days]``.

    Returns:
        Integer array ``[n_series]``.
    """
    n_series, n_days = y.shape
    if n_days == 0:
        return np.zeros(n_series, dtype=np.int64)
    observed = ~np.isnan(y)
    return np.where(observed.any(axis=1), observed.argmax(axis=1), n_days)


class _Block(NamedTuple):
    """A block of series, in the row-major input layout and time-major for the time loops."""

    rows: np.ndarray  # [B, n_days] float64, as given (NaN kept)
    values: np.ndarray  # [n_days, B] float64, NaN replaced by 0
    start: np.ndarray  # [B] int64, first non-NaN day (n_days when there is none)


#: Rows transposed per chunk by ``_transpose`` (keeps the source and target chunks in cache).
_TRANSPOSE_CHUNK = 256


def _transpose(rows: np.ndarray) -> np.ndarray:
    """Contiguous transpose, chunked over rows (about twice as fast as one strided copy).

    Args:
        rows: Matrix ``[B, n_days]``.

    Returns:
        Contiguous float64 matrix ``[n_days, B]``.
    """
    n_rows, n_days = rows.shape
    out = np.empty((n_days, n_rows), dtype=np.float64)
    for lo in range(0, n_rows, _TRANSPOSE_CHUNK):
        out[:, lo : lo + _TRANSPOSE_CHUNK] = rows[lo : lo + _TRANSPOSE_CHUNK].T
    return out


def _time_major(y_block: np.ndarray) -> _Block:
    """Prepare a block of rows for the time loops.

    Args:
        y_block: Rows ``[B, n_days]`` of the history matrix.

    Returns:
        The block in both layouts, NaN replaced by zero in the time-major one, and its start days.
    """
    rows = np.asarray(y_block, dtype=np.float64)
    values = _transpose(rows)
    values[np.isnan(values)] = 0.0
    return _Block(rows=rows, values=values, start=_first_valid(rows))


def _blocks(n_series: int) -> Iterator[slice]:
    """Slices of at most ``BLOCK_SIZE`` consecutive series.

    Args:
        n_series: Number of rows of the history matrix.

    Yields:
        Row slices covering ``range(n_series)``.
    """
    for lo in range(0, n_series, BLOCK_SIZE):
        yield slice(lo, min(lo + BLOCK_SIZE, n_series))


def _level_forecast(y: np.ndarray, h: int, level_fn: Callable[[_Block], np.ndarray]) -> np.ndarray:
    """Run a flat-forecast kernel block by block and repeat its level over the horizon.

    Args:
        y: History matrix ``[n_series, n_days]``.
        h: Forecast horizon.
        level_fn: Maps a block to the forecast level of each of its series.

    Returns:
        Non-negative forecasts ``[n_series, h]``.
    """
    y = _check(y, h)
    n_series, n_days = y.shape
    level = np.zeros(n_series, dtype=np.float64)
    if n_days > 0:
        for rows in _blocks(n_series):
            level[rows] = level_fn(_time_major(y[rows]))
    np.maximum(level, 0.0, out=level)
    return np.repeat(level[:, None], h, axis=1)


def _first_value(rows: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Day and value of each row's first masked entry.

    Args:
        rows: Row-major values ``[B, n_days]``.
        mask: Row-major mask ``[B, n_days]``.

    Returns:
        ``(day, value)`` per row; ``day`` is ``n_days`` and ``value`` is 0 for rows without one.
    """
    found = mask.any(axis=1)
    day = np.where(found, mask.argmax(axis=1), rows.shape[1])
    value = np.where(found, rows[np.arange(rows.shape[0]), np.minimum(day, rows.shape[1] - 1)], 0.0)
    return day, value


# --------------------------------------------------------------------------------------------------
# kernels
# --------------------------------------------------------------------------------------------------
def naive(y: np.ndarray, h: int) -> np.ndarray:
    """Last observed value, repeated over the horizon.

    Matches ``statsforecast.models.Naive``. A row without any valid day forecasts zero.

    Args:
        y: History matrix ``[n_series, n_days]``.
        h: Forecast horizon.

    Returns:
        Forecasts ``[n_series, h]``.
    """
    y = _check(y, h)
    n_series, n_days = y.shape
    if n_days == 0:
        return np.zeros((n_series, h))
    last = np.nan_to_num(y[:, -1].astype(np.float64), nan=0.0)
    np.maximum(last, 0.0, out=last)
    return np.repeat(last[:, None], h, axis=1)


def seasonal_naive(y: np.ndarray, h: int, season: int = 7) -> np.ndarray:
    """Value of the same day of the last season, cycled over the horizon.

    Matches ``statsforecast.models.SeasonalNaive(season_length=season)`` for series with at least
    ``season`` valid days. Difference, for younger series: statsforecast returns ``NaN`` at the
    seasonal positions without an observation; here those positions get the mean of the series'
    valid days (zero when it has none), so the output never contains ``NaN``.

    Args:
        y: History matrix ``[n_series, n_days]``.
        h: Forecast horizon.
        season: Season length in days.

    Returns:
        Forecasts ``[n_series, h]``.

    Raises:
        ValueError: If ``season`` is not positive.
    """
    y = _check(y, h)
    if season < 1:
        raise ValueError(f"season must be positive, got {season}")
    n_series, n_days = y.shape
    if n_days == 0:
        return np.zeros((n_series, h))
    start = _first_valid(y)
    cols = n_days - season + np.arange(h) % season  # may be negative when n_days < season
    available = cols[None, :] >= start[:, None]
    fc = np.nan_to_num(y[:, np.clip(cols, 0, None)].astype(np.float64), nan=0.0)
    if not available.all():
        n_valid = n_days - start
        totals = np.nansum(y, axis=1)
        fallback = np.divide(totals, n_valid, out=np.zeros(n_series), where=n_valid > 0)
        fc = np.where(available, fc, fallback[:, None])
    return np.maximum(fc, 0.0)


def moving_average(y: np.ndarray, h: int, window: int = 28) -> np.ndarray:
    """Mean of the last ``window`` days, repeated over the horizon.

    Matches ``statsforecast.models.WindowAverage(window_size=window)`` for series with at least
    ``window`` valid days. Difference, for younger series: statsforecast returns ``NaN`` when the
    history is shorter than the window; here the mean is taken over the valid days inside the window
    (zero when there are none), so newly launched SKUs still get a forecast.

    Args:
        y: History matrix ``[n_series, n_days]``.
        h: Forecast horizon.
        window: Window length in days.

    Returns:
        Forecasts ``[n_series, h]``.

    Raises:
        ValueError: If ``window`` is not positive.
    """
    y = _check(y, h)
    if window < 1:
        raise ValueError(f"window must be positive, got {window}")
    n_series, n_days = y.shape
    lo = max(n_days - window, 0)
    tail = y[:, lo:].astype(np.float64)
    start = _first_valid(y)
    n_valid = np.clip(n_days - np.maximum(start, lo), 0, None)
    totals = np.nansum(tail, axis=1)
    level = np.divide(totals, n_valid, out=np.zeros(n_series), where=n_valid > 0)
    np.maximum(level, 0.0, out=level)
    return np.repeat(level[:, None], h, axis=1)


def seasonal_window_average(y: np.ndarray, h: int, season: int = 7, windows: int = 4) -> np.ndarray:
    """Mean of the last ``windows`` values at the same position of the season, cycled over the horizon.

    Like ``statsforecast.models.SeasonalWindowAverage(season_length=season, window_size=windows)`` but, as
    the other kernels here, days before a series' first valid day do not
    count, later NaN days count as zero, positions without any valid day take the mean of the series' valid
    days (zero without any) and the output is non-negative.

    Args:
        y: History matrix ``[n_series, n_days]``.
        h: Forecast horizon.
        season: Season length in days.
        windows: Number of seasons averaged.

    Returns:
        Forecasts ``[n_series, h]``.
    """
    y = np.asarray(y, dtype=np.float64)
    n_series, n_days = y.shape
    if n_days == 0:
        return np.zeros((n_series, h))
    observed = ~np.isnan(y)
    start = np.where(observed.any(axis=1), observed.argmax(axis=1), n_days)
    values = np.nan_to_num(y, nan=0.0)
    phase = np.arange(h) % season  # step i forecasts the season position of column n_days + i
    total = np.zeros((n_series, h))
    count = np.zeros((n_series, h))
    for m in range(1, windows + 1):
        column = n_days + phase - season * m
        ok = (column[None, :] >= start[:, None]) & (column[None, :] >= 0)
        total += np.where(ok, values[:, np.clip(column, 0, None)], 0.0)
        count += ok
    n_valid = n_days - start
    fallback = np.divide(values.sum(axis=1), n_valid, out=np.zeros(n_series), where=n_valid > 0)
    forecast = np.where(count > 0, total / np.maximum(count, 1), fallback[:, None])
    return np.maximum(forecast, 0.0)


def _croston_level(block: _Block, alpha: float) -> np.ndarray:
    """Croston's demand-size level divided by its interval level, for one block.

    Args:
        block: Block of series.
        alpha: Smoothing constant of both the demand sizes and the intervals.

    Returns:
        Forecast level ``[B]`` (zero for series without demand).
    """
    values, start = block.values, block.start
    n_days, n_series = values.shape
    demand = values > 0
    first_day, size = _first_value(block.rows, block.rows > 0)
    has_demand = first_day < n_days
    # sktime's initialisation: size level = first demand, interval level = first interval.
    interval = np.where(has_demand, first_day - start + 1, 1).astype(np.float64)
    t0 = int(start.min())
    # Days since the previous demand (or since the series' start), before day t0 is counted.
    periods = (t0 - start).astype(np.float64)
    scaled = values * alpha
    complement = 1.0 - alpha
    candidate = np.empty(n_series)
    step = np.empty(n_series)
    for t in range(t0, n_days):
        m = demand[t]
        periods += 1.0
        np.multiply(size, complement, out=candidate)
        candidate += scaled[t]
        np.copyto(size, candidate, where=m)
        np.multiply(interval, complement, out=candidate)
        np.multiply(periods, alpha, out=step)
        candidate += step
        np.copyto(interval, candidate, where=m)
        np.copyto(periods, 0.0, where=m)
    return size / interval


def croston(y: np.ndarray, h: int, alpha: float = 0.1) -> np.ndarray:
    """Classic Croston method (same smoothing constant for demand sizes and intervals).

    This is the variant sktime implements (``sktime.forecasting.croston.Croston(smoothing=alpha)``)
    and the output matches it to floating-point round-off, for every ``alpha``:

    * demand occurs on a day whose value is strictly positive;
    * the demand-size level ``q`` starts at the first demand, the interval level ``a`` at the first
      interval ``first_demand_day - start + 1`` (days counted from the series' first valid day);
    * at every demand day ``q <- alpha * y + (1 - alpha) * q`` and
      ``a <- alpha * p + (1 - alpha) * a`` with ``p`` the days since the previous demand (the first
      demand is therefore "smoothed into itself", a no-op that both references perform as well);
    * the forecast is the final ``q / a``, flat over the horizon (no SBA debiasing).

    statsforecast's ``CrostonClassic`` is the same method with ``alpha`` fixed at 0.1 and gives the
    same numbers on non-negative data. (On negative values statsforecast takes the sizes from the
    positive days but the intervals from the non-zero days, which misaligns them; sktime and this
    kernel use the positive days for both.) A series without demand forecasts zero.

    Args:
        y: History matrix ``[n_series, n_days]``.
        h: Forecast horizon.
        alpha: Smoothing constant.

    Returns:
        Forecasts ``[n_series, h]``.
    """
    return _level_forecast(y, h, lambda block: _croston_level(block, alpha))


def croston_sba(y: np.ndarray, h: int, alpha: float = 0.1) -> np.ndarray:
    """Syntetos-Boylan approximation: the Croston forecast times ``1 - alpha / 2``.

    Matches ``statsforecast.models.CrostonSBA``, which fixes ``alpha = 0.1`` and hard-codes the
    factor ``0.95 = 1 - 0.1 / 2``; here the factor follows ``alpha``.

    Args:
        y: History matrix ``[n_series, n_days]``.
        h: Forecast horizon.
        alpha: Smoothing constant (of both demand sizes and intervals).

    Returns:
        Forecasts ``[n_series, h]``.
    """
    return croston(y, h, alpha=alpha) * (1.0 - alpha / 2.0)


def _tsb_level(block: _Block, alpha_d: float, alpha_p: float) -> np.ndarray:
    """TSB demand-size level times demand-probability level, for one block.

    Args:
        block: Block of series.
        alpha_d: Smoothing constant of the demand sizes.
        alpha_p: Smoothing constant of the demand probability.

    Returns:
        Forecast level ``[B]``.
    """
    values, start = block.values, block.start
    n_days, n_series = values.shape
    demand = values > 0
    _, size = _first_value(block.rows, block.rows > 0)
    _, first_valid = _first_value(block.rows, ~np.isnan(block.rows))
    probability = (first_valid > 0).astype(np.float64)
    scaled = values * alpha_d
    complement_d = 1.0 - alpha_d
    complement_p = 1.0 - alpha_p
    candidate = np.empty(n_series)
    for t in range(int(start.min()), n_days):
        m = demand[t]
        np.multiply(size, complement_d, out=candidate)
        candidate += scaled[t]
        np.copyto(size, candidate, where=m)
        # probability <- alpha_p * occurred + (1 - alpha_p) * probability, on every valid day
        np.multiply(probability, complement_p, out=candidate)
        np.add(candidate, alpha_p, out=candidate, where=m)
        np.copyto(probability, candidate, where=start <= t)
    return size * probability


def tsb(y: np.ndarray, h: int, alpha_d: float = 0.1, alpha_p: float = 0.1) -> np.ndarray:
    """Teunter-Syntetos-Babai method.

    Matches ``statsforecast.models.TSB(alpha_d, alpha_p)``: the demand probability is the simple
    exponential smoothing of the 0/1 occurrence indicator over every day since the series' first
    valid day (started at that day's indicator), the demand size is the simple exponential smoothing
    of the positive values (started at the first one), and the forecast is their product. A series
    without demand forecasts zero. Difference on negative values only: statsforecast's indicator is
    ``y != 0``, here it is ``y > 0`` (a return is not a demand occurrence), as in ``croston``.

    Args:
        y: History matrix ``[n_series, n_days]``.
        h: Forecast horizon.
        alpha_d: Smoothing constant of the demand sizes.
        alpha_p: Smoothing constant of the demand probability.

    Returns:
        Forecasts ``[n_series, h]``.
    """
    return _level_forecast(y, h, lambda block: _tsb_level(block, alpha_d, alpha_p))


def ses(y: np.ndarray, h: int, alpha: float = 0.1) -> np.ndarray:
    """Simple exponential smoothing with a fixed smoothing constant.

    Matches ``statsforecast.models.SimpleExponentialSmoothing(alpha)``: the level starts at the
    first valid value ``x_s`` and is updated with every following day. The recursion is evaluated in
    closed form, ``level = c^(n-1-s) x_s + sum_{t>s} alpha c^(n-1-t) x_t`` with ``c = 1 - alpha``,
    i.e. one matrix-vector product per block of series instead of a time loop; it equals the
    recursion up to floating-point round-off (about 1e-15 relative).

    Args:
        y: History matrix ``[n_series, n_days]``.
        h: Forecast horizon.
        alpha: Smoothing constant.

    Returns:
        Forecasts ``[n_series, h]``.
    """
    y = _check(y, h)
    n_series, n_days = y.shape
    level = np.zeros(n_series, dtype=np.float64)
    if n_days > 0:
        complement = 1.0 - alpha
        decay = complement ** np.arange(n_days - 1, -1, -1, dtype=np.float64)  # c^(n-1-t)
        decay[np.abs(decay) < _TINY] = 0.0  # no denormals in the BLAS product
        weights = alpha * decay
        for rows in _blocks(n_series):
            block = np.asarray(y[rows], dtype=np.float64)
            start = _first_valid(block)
            _, first = _first_value(block, ~np.isnan(block))
            # weighted sum over all valid days, then lift the first day's weight from alpha c^k to c^k
            level[rows] = np.where(np.isnan(block), 0.0, block) @ weights
            level[rows] += first * complement ** (n_days - start)
    np.maximum(level, 0.0, out=level)
    return np.repeat(level[:, None], h, axis=1)


def _auto_ses_block(block: _Block, alphas: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Fit SES for every candidate alpha at once and keep the best by one-step SSE.

    Args:
        block: Block of series.
        alphas: Candidate smoothing constants ``[K]``.

    Returns:
        The chosen level ``[B]`` and the index of the chosen alpha ``[B]``.
    """
    values, start = block.values, block.start
    n_days, n_series = values.shape
    _, first_valid = _first_value(block.rows, ~np.isnan(block.rows))
    a = alphas[:, None]
    complement = 1.0 - a
    level = np.repeat(first_valid[None, :], alphas.size, axis=0)
    sse = np.zeros_like(level)
    err = np.empty_like(level)
    candidate = np.empty_like(level)
    for t in range(int(start.min()), n_days):
        v, m = values[t], start <= t
        # One-step error of the forecast made before day t (zero on the first valid day, whose
        # forecast is the initial level itself); only valid days count.
        np.subtract(v, level, out=err)
        err *= m
        err *= err
        sse += err
        np.multiply(level, complement, out=candidate)
        candidate += a * v
        np.copyto(level, candidate, where=m)
    best = sse.argmin(axis=0)
    return level[best, np.arange(n_series)], best


def _alpha_grid(alphas: Sequence[float]) -> np.ndarray:
    """Validate a grid of smoothing constants.

    Args:
        alphas: Candidate smoothing constants.

    Returns:
        The grid as a float array.

    Raises:
        ValueError: If the grid is empty or has a value outside ``(0, 1]``.
    """
    grid = np.asarray(alphas, dtype=np.float64)
    if grid.ndim != 1 or grid.size == 0 or ((grid <= 0) | (grid > 1)).any():
        raise ValueError(f"alphas must be a non-empty sequence of values in (0, 1], got {alphas!r}")
    return grid


def auto_ses(y: np.ndarray, h: int, alphas: Sequence[float] = AUTO_SES_ALPHAS) -> np.ndarray:
    """Simple exponential smoothing with the smoothing constant chosen per series (ETS-lite).

    For each series, the alpha in ``alphas`` with the lowest in-sample one-step-ahead sum of squared
    errors is used (ties go to the earlier alpha). The SSE is statsforecast's ``ses_sse``: errors of
    the forecasts of days 2..n of the series. Difference to
    ``statsforecast.models.SimpleExponentialSmoothingOptimized``: that model minimises the same SSE
    by golden-section search over ``alpha`` in ``[0.01, 0.99]`` per series, which cannot be
    vectorised across series; a small grid searched for all series at once is used instead.

    Args:
        y: History matrix ``[n_series, n_days]``.
        h: Forecast horizon.
        alphas: Candidate smoothing constants, each in ``(0, 1]``.

    Returns:
        Forecasts ``[n_series, h]``.
    """
    grid = _alpha_grid(alphas)
    return _level_forecast(y, h, lambda block: _auto_ses_block(block, grid)[0])


def auto_ses_alpha(y: np.ndarray, alphas: Sequence[float] = AUTO_SES_ALPHAS) -> np.ndarray:
    """Smoothing constant ``auto_ses`` picks for each series.

    Args:
        y: History matrix ``[n_series, n_days]``.
        alphas: Candidate smoothing constants, each in ``(0, 1]``.

    Returns:
        Chosen alpha per series ``[n_series]`` (the first grid value for rows without history).
    """
    grid = _alpha_grid(alphas)
    y = _check(y, 1)
    n_series, n_days = y.shape
    best = np.zeros(n_series, dtype=np.int64)
    if n_days > 0:
        for rows in _blocks(n_series):
            best[rows] = _auto_ses_block(_time_major(y[rows]), grid)[1]
    return grid[best]


# --------------------------------------------------------------------------------------------------
# weekday profile
# --------------------------------------------------------------------------------------------------
#: Pseudo-units of a flat week that shrink a pooled weekday index towards 1 (little demand: little profile).
WEEKDAY_PRIOR_UNITS = 700.0


def pooled_weekday_index(
    y: np.ndarray, last_weekday: int, window: int = 364, prior_units: float = WEEKDAY_PRIOR_UNITS
) -> np.ndarray:
    """Weekday index of the demand of all rows pooled: ``[7]``, Monday first, mean 1.

    The rate of weekday ``d`` is the pooled demand on the observed days of ``d`` in the last ``window``
    columns over the number of those day cells (``NaN`` cells, before a launch, are not observed); the
    index is that rate over the pooled mean rate, shrunk towards 1 with weight ``total / (total +
    prior_units)`` and scaled to a mean of 1 over the week, so multiplying a flat forecast by it keeps
    every 7-day total. A matrix without demand gives ones.

    Args:
        y: ``[n_series, n_days]`` demand up to the origin (the last column is the origin day).
        last_weekday: Weekday of the last column (Monday = 0 .. Sunday = 6).
        window: Trailing days read.
        prior_units: Pseudo-units of flat demand in the shrinkage.

    Returns:
        The index of each weekday.
    """
    y = np.asarray(y, dtype=np.float64)
    if y.ndim != 2:
        raise ValueError(f"y must be 2-D [n_series, n_days], got shape {y.shape}")
    block = y[:, -window:] if window > 0 else y[:, :0]
    n_days = block.shape[1]
    weekday = (last_weekday - (n_days - 1) + np.arange(n_days)) % 7
    observed = ~np.isnan(block)
    units = np.bincount(
        weekday, weights=np.where(observed, np.clip(block, 0.0, None), 0.0).sum(axis=0), minlength=7
    )
    cells = np.bincount(weekday, weights=observed.sum(axis=0).astype(np.float64), minlength=7)
    total = float(units.sum())
    if total <= 0.0:
        return np.ones(7)
    mean_rate = total / cells.sum()
    raw = np.divide(units, cells * mean_rate, out=np.ones(7), where=cells > 0)
    shrunk = 1.0 + (raw - 1.0) * total / (total + prior_units)
    return shrunk / shrunk.mean()


def weekday_factors(index: np.ndarray, last_weekday: int, h: int) -> np.ndarray:
    """Factors ``[h]`` of the days 1..h after a day of weekday ``last_weekday`` from a weekday ``index``."""
    return np.asarray(index, dtype=np.float64)[(last_weekday + 1 + np.arange(h)) % 7]


def active_probability(y: np.ndarray, hazard: float, window: int = 365) -> np.ndarray:
    """Probability ``[n_series]`` that each series still sells, given the trading days without a sale since
    its last one.

    Croston-type forecasts (Croston, SBA) update only on demand days, so a line that stopped selling keeps
    its last level for ever: the obsolescence problem TSB was designed for (Teunter, Syntetos and Babai,
    2011). This kernel gives the factor that lets any level forecast follow it. A selling series stops for
    good with probability ``hazard`` each day; while it sells, a trading day is a demand day with
    probability ``p``. Given a sale ``r`` trading days ago, with ``q = (1 - hazard)(1 - p)``, it still sells
    with probability ``q^r / (q^r + hazard (1 - q^r) / (1 - q))``: 1 on the day of a sale, near 1 after a
    silence that is usual for the series (ten days of a sporadic seller), towards 0 after one its rate
    makes unlikely (two months of a weekly seller). The chance of stopping in the days ahead,
    ``(1 - hazard)^t``, is left out: it would lower every series alike, a trend the CV picks wherever demand
    fell over its origins (it took the held-out scenarios' event-week bias from -8% to -16%).

    * Trading days are the columns where any row has demand: a day the whole warehouse sold nothing (a
      closed day, a holiday) is no evidence against any series.
    * ``p = (k - 1/2) / (last - first + 1)`` over the trading days of the last ``window`` columns, with
      ``k`` demand days from the first to the last sale: the rate while the series sold, shrunk so that a
      series that sold every day is not declared stopped by one quiet day of its own.
    * A row without a sale in the window gets 1, and so does every row when ``hazard`` is 0. ``NaN``
      (before a launch) counts as no sale.
    * Sales alone cannot tell a stock-out from a stop: a frequent seller out of stock for a few days is
      scaled down too (the source tables hold no stock levels; with them, stocked-out days could be left
      out like closed days). Not counting the first 7 or 14 quiet days was measured and lost most of the
      gain on Online Retail (weekly WMAPE over three origins 0.680 -> 0.698 / 0.702), so every quiet day
      counts, and the CV decides the hazard.

    Args:
        y: ``[n_series, n_days]`` demand up to the origin (the last column is the origin day).
        hazard: Daily probability that a selling series stops, in ``[0, 1)``.
        window: Trailing days read.

    Returns:
        The probabilities, in ``(0, 1]``.

    Raises:
        ValueError: If ``y`` is not 2-D or ``hazard`` is outside ``[0, 1)``.
    """
    return silence_probability(sales_silence(y, window), hazard)


class SalesSilence(NamedTuple):
    """What :func:`active_probability` reads of a history, per series (computed once for many hazards).

    Attributes:
        rate: Demand-day rate while the series sold, ``(k - 1/2) / (last - first + 1)`` trading days.
        quiet: Trading days since its last sale.
        sold: Whether it sold in the window.
    """

    rate: np.ndarray
    quiet: np.ndarray
    sold: np.ndarray


def sales_silence(y: np.ndarray, window: int = 365) -> SalesSilence:
    """The rate while selling and the quiet trading days of each series of ``y`` (see
    :func:`active_probability`)."""
    y = np.asarray(y, dtype=np.float64)
    if y.ndim != 2:
        raise ValueError(f"y must be 2-D [n_series, n_days], got shape {y.shape}")
    block = np.nan_to_num(y[:, -window:] if window > 0 else y[:, :0], nan=0.0)
    sold = block[:, block.sum(axis=0) > 0] > 0
    n_days = sold.shape[1]
    if n_days == 0:  # nothing sold anywhere in the window
        zeros = np.zeros(len(y))
        return SalesSilence(zeros, zeros, np.zeros(len(y), dtype=bool))
    first = sold.argmax(axis=1)
    last = n_days - 1 - sold[:, ::-1].argmax(axis=1)
    rate = np.clip((sold.sum(axis=1) - 0.5) / (last - first + 1.0), 0.0, 1.0)
    return SalesSilence(rate, (n_days - 1 - last).astype(np.float64), sold.any(axis=1))


def silence_probability(silence: SalesSilence, hazard: float) -> np.ndarray:
    """:func:`active_probability` from a precomputed :class:`SalesSilence`."""
    if not 0.0 <= hazard < 1.0:
        raise ValueError(f"hazard must be in [0, 1), got {hazard}")
    if hazard == 0.0:
        return np.ones(len(silence.rate))
    q = (1.0 - hazard) * (1.0 - silence.rate)
    quiet = q**silence.quiet
    selling = quiet / (quiet + hazard * (1.0 - quiet) / (1.0 - q))
    return np.where(silence.sold, selling, 1.0)


# --------------------------------------------------------------------------------------------------
# model objects
# --------------------------------------------------------------------------------------------------
class StatForecaster(Protocol):
    """Common interface of the statistical forecasters: a name and a vectorised ``forecast``."""

    @property
    def name(self) -> str:
        """Model name, unique within ``STAT_MODELS`` and used as the ``model`` column value."""
        ...

    def forecast(self, y: np.ndarray, h: int) -> np.ndarray:
        """Forecast every row of ``y`` (``[n_series, n_days]``) ``h`` days ahead -> ``[n_series, h]``."""
        ...


@dataclass(frozen=True)
class Naive:
    """Last value (see ``naive``).

    Attributes:
        name: Model name.
    """

    name: str = "naive"

    def forecast(self, y: np.ndarray, h: int) -> np.ndarray:
        """Forecast every series (see ``naive``)."""
        return naive(y, h)


@dataclass(frozen=True)
class SeasonalNaive:
    """Seasonal naive (see ``seasonal_naive``).

    Attributes:
        season: Season length in days.
        name: Model name.
    """

    season: int = 7
    name: str = "seasonal_naive"

    def forecast(self, y: np.ndarray, h: int) -> np.ndarray:
        """Forecast every series (see ``seasonal_naive``)."""
        return seasonal_naive(y, h, season=self.season)


@dataclass(frozen=True)
class MovingAverage:
    """Window average (see ``moving_average``).

    Attributes:
        window: Window length in days.
        name: Model name.
    """

    window: int = 28
    name: str = "moving_average"

    def forecast(self, y: np.ndarray, h: int) -> np.ndarray:
        """Forecast every series (see ``moving_average``)."""
        return moving_average(y, h, window=self.window)


@dataclass(frozen=True)
class SeasonalWindowAverage:
    """Seasonal window average (see :func:`seasonal_window_average`).

    Attributes:
        season: Season length in days.
        windows: Seasons averaged.
        name: Model name.
    """

    season: int = 7
    windows: int = 4
    name: str = "seasonal_window_average"

    def forecast(self, y: np.ndarray, h: int) -> np.ndarray:
        """Forecast every series (see :func:`seasonal_window_average`)."""
        return seasonal_window_average(y, h, self.season, self.windows)


@dataclass(frozen=True)
class Croston:
    """Classic Croston (see ``croston``).

    Attributes:
        alpha: Smoothing constant.
        name: Model name.
    """

    alpha: float = 0.1
    name: str = "croston"

    def forecast(self, y: np.ndarray, h: int) -> np.ndarray:
        """Forecast every series (see ``croston``)."""
        return croston(y, h, alpha=self.alpha)


@dataclass(frozen=True)
class CrostonSBA:
    """Croston with the Syntetos-Boylan debiasing factor (see ``croston_sba``).

    Attributes:
        alpha: Smoothing constant.
        name: Model name.
    """

    alpha: float = 0.1
    name: str = "croston_sba"

    def forecast(self, y: np.ndarray, h: int) -> np.ndarray:
        """Forecast every series (see ``croston_sba``)."""
        return croston_sba(y, h, alpha=self.alpha)


@dataclass(frozen=True)
class TSB:
    """Teunter-Syntetos-Babai (see ``tsb``).

    Attributes:
        alpha_d: Smoothing constant of the demand sizes.
        alpha_p: Smoothing constant of the demand probability.
        name: Model name.
    """

    alpha_d: float = 0.1
    alpha_p: float = 0.1
    name: str = "tsb"

    def forecast(self, y: np.ndarray, h: int) -> np.ndarray:
        """Forecast every series (see ``tsb``)."""
        return tsb(y, h, alpha_d=self.alpha_d, alpha_p=self.alpha_p)


@dataclass(frozen=True)
class SES:
    """Simple exponential smoothing with a fixed alpha (see ``ses``).

    Attributes:
        alpha: Smoothing constant.
        name: Model name.
    """

    alpha: float = 0.1
    name: str = "ses"

    def forecast(self, y: np.ndarray, h: int) -> np.ndarray:
        """Forecast every series (see ``ses``)."""
        return ses(y, h, alpha=self.alpha)


@dataclass(frozen=True)
class AutoSES:
    """Simple exponential smoothing with alpha chosen per series (see ``auto_ses``).

    Attributes:
        alphas: Candidate smoothing constants.
        name: Model name.
    """

    alphas: tuple[float, ...] = AUTO_SES_ALPHAS
    name: str = "auto_ses"

    def forecast(self, y: np.ndarray, h: int) -> np.ndarray:
        """Forecast every series (see ``auto_ses``)."""
        return auto_ses(y, h, alphas=self.alphas)


#: Default instance of every statistical model, by name. Use ``dataclasses.replace`` to vary
#: parameters (and give the variant its own ``name``).
STAT_MODELS: dict[str, StatForecaster] = {
    model.name: model
    for model in (
        Naive(),
        SeasonalNaive(),
        MovingAverage(),
        Croston(),
        CrostonSBA(),
        TSB(),
        SES(),
        AutoSES(),
    )
}


@dataclass(frozen=True)
class StatCombination:
    """Equal-weight combination of statistical models (default: Croston SBA, TSB and auto-tuned SES).

    Forecast combinations are the robust choice for intermittent demand: on the M5 subset the default
    mean beat each of its members, MA28 and a free per-series choice by backtest, which mostly fits the
    noise of three windows. ``select_by_backtest`` reuses the members'
    forecasts when they are candidates too.

    Attributes:
        members: Names of the combined models in ``STAT_MODELS``.
        name: Model name.
    """

    members: tuple[str, ...] = ("croston_sba", "tsb", "auto_ses")
    name: str = "combination"

    def forecast(self, y: np.ndarray, h: int) -> np.ndarray:
        """Mean of the members' forecasts ``[n_series, h]``."""
        return np.mean([STAT_MODELS[member].forecast(y, h) for member in self.members], axis=0)


def _forecasts_of(models: Sequence[StatForecaster], y: np.ndarray, h: int) -> list[np.ndarray]:
    """Every model's forecast of ``y``; a combination reuses the forecasts of members that are models too."""
    by_name: dict[str, np.ndarray] = {}
    out: list[np.ndarray | None] = [None] * len(models)
    for j, model in enumerate(models):
        if not isinstance(model, StatCombination):
            out[j] = by_name[model.name] = model.forecast(y, h)
    for j, model in enumerate(models):
        if isinstance(model, StatCombination):
            parts = [by_name[m] if m in by_name else STAT_MODELS[m].forecast(y, h) for m in model.members]
            out[j] = np.mean(parts, axis=0)
    return [f for f in out if f is not None]


# --------------------------------------------------------------------------------------------------
# per-series model selection
# --------------------------------------------------------------------------------------------------
def select_by_backtest(
    y: np.ndarray,
    h: int,
    models: Sequence[StatForecaster],
    n_windows: int = 3,
    error: Literal["mae", "rmse"] = "mae",
) -> tuple[np.ndarray, np.ndarray]:
    """Choose, for every series, the model with the lowest backtest error.

    The backtest uses ``n_windows`` expanding-window origins ``n_days - k * h`` for
    ``k = n_windows, ..., 1``: each model is fitted on the history before the origin and scored on
    the following ``h`` days, so the last window ends at the last day of ``y``. The error of a model
    on a series is the sum over windows of the mean absolute error (or RMSE) over the window's valid
    (non-NaN) days; windows without a valid day (series launched later) contribute nothing.
    Vectorised across series: the loops run over models and windows only.

    Note that on intermittent series MAE rewards forecasts near the median, which is often zero:
    MAE-based selection favours models that forecast zero (naive after a zero day, SBA over classic
    Croston). ``error="rmse"`` targets the mean instead.

    Args:
        y: History matrix ``[n_series, n_days]``.
        h: Horizon of each validation window (use the production horizon).
        models: Candidate models.
        n_windows: Number of validation windows.
        error: Per-window error, ``"mae"`` (default) or ``"rmse"``.

    Returns:
        ``(choice, errors)``: ``choice[i]`` is the index into ``models`` of the best model for series
        ``i`` (ties go to the earlier model; series without any valid validation day, whose errors
        are all ``NaN``, get model 0, so list the safest default first), and ``errors`` is the
        ``[n_series, n_models]`` error summed over windows, reusable for ensemble weighting.

    Raises:
        ValueError: If there are no models, ``n_windows < 1``, ``error`` is unknown, or ``y`` is too
            short to leave at least one day of history before the first origin.
    """
    y = _check(y, h)
    if error not in ("mae", "rmse"):
        raise ValueError(f"error must be 'mae' or 'rmse', got {error!r}")
    if not models:
        raise ValueError("select_by_backtest needs at least one model")
    if n_windows < 1:
        raise ValueError(f"n_windows must be positive, got {n_windows}")
    n_series, n_days = y.shape
    if n_days - n_windows * h < 1:
        raise ValueError(f"{n_days} days cannot hold {n_windows} validation windows of {h} days plus history")
    errors = np.zeros((n_series, len(models)))
    n_scored = np.zeros(n_series, dtype=np.int64)
    for k in range(n_windows, 0, -1):
        origin = n_days - k * h
        actual = y[:, origin : origin + h].astype(np.float64)
        valid = ~np.isnan(actual)
        n_valid = valid.sum(axis=1)
        n_scored += n_valid
        history = y[:, :origin]
        for j, forecast in enumerate(_forecasts_of(models, history, h)):
            diff = forecast - actual
            loss = np.abs(diff) if error == "mae" else np.square(diff)
            window_sum = np.where(valid, loss, 0.0).sum(axis=1)
            window_err = np.divide(window_sum, n_valid, out=np.zeros(n_series), where=n_valid > 0)
            errors[:, j] += window_err if error == "mae" else np.sqrt(window_err)
    errors[n_scored == 0] = np.nan
    choice = np.argmin(np.nan_to_num(errors, nan=0.0), axis=1)
    return choice, errors


def forecast_selected(
    y: np.ndarray, h: int, models: Sequence[StatForecaster], choice: np.ndarray
) -> np.ndarray:
    """Forecast every series with its chosen model.

    Args:
        y: History matrix ``[n_series, n_days]``.
        h: Forecast horizon.
        models: Candidate models (as passed to ``select_by_backtest``).
        choice: Index into ``models`` per series ``[n_series]``.

    Returns:
        Forecasts ``[n_series, h]``.

    Raises:
        ValueError: If ``choice`` has the wrong shape or an index out of range.
    """
    y = _check(y, h)
    choice = np.asarray(choice)
    if choice.shape != (y.shape[0],):
        raise ValueError(f"choice must have shape ({y.shape[0]},), got {choice.shape}")
    if choice.size and (choice.min() < 0 or choice.max() >= len(models)):
        raise ValueError(f"choice indexes {len(models)} models, got values outside that range")
    out = np.zeros((y.shape[0], h))
    for j, model in enumerate(models):
        rows = np.flatnonzero(choice == j)
        if rows.size:
            out[rows] = model.forecast(y[rows], h)
    return out


def empirical_quantiles(point_fc: np.ndarray, residuals: np.ndarray, qs: Sequence[float]) -> np.ndarray:
    """Quantile forecasts from per-series empirical residual quantiles.

    The ``q``-quantile forecast is the point forecast plus the ``q``-quantile of the series'
    residuals (``actual - forecast``, e.g. from the backtest windows, ``NaN`` ignored), clipped at
    zero. The same offset applies to every horizon step. A series without any residual gets offset
    zero (its quantile forecasts equal the point forecast).

    Args:
        point_fc: Point forecasts ``[n_series, h]``.
        residuals: Residuals ``[n_series, n_residuals]``.
        qs: Quantile levels in ``[0, 1]``.

    Returns:
        Quantile forecasts ``[len(qs), n_series, h]``, non-decreasing in ``q``.

    Raises:
        ValueError: If shapes do not match or a level is outside ``[0, 1]``.
    """
    point = np.asarray(point_fc, dtype=np.float64)
    res = np.asarray(residuals, dtype=np.float64)
    levels = np.asarray(qs, dtype=np.float64)
    if point.ndim != 2 or res.ndim != 2 or res.shape[0] != point.shape[0]:
        raise ValueError(f"shapes {point.shape} and {res.shape} are not [n, h] and [n, r]")
    if ((levels < 0) | (levels > 1)).any():
        raise ValueError(f"quantile levels must be in [0, 1], got {qs!r}")
    has_res = (~np.isnan(res)).any(axis=1)
    offsets = np.zeros((levels.size, point.shape[0]))
    if has_res.any():
        offsets[:, has_res] = np.nanquantile(res[has_res], levels, axis=1)
    return np.maximum(point[None, :, :] + offsets[:, :, None], 0.0)
