"""Quantile forecasts: negative-binomial dispersion per SKU, NB quantiles, and their calibration on the CV."""

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy.stats import nbinom

from demand_platform import columns as C
from demand_platform.forecasting.config import (
    BAND,
    BAND_END,
    BAND_START,
    CALIBRATION_SEGMENTS,
    CAP_WINDOW_DAYS,
    SEGMENT,
    SEGMENT_ALL,
    TrainConfig,
    band_of_horizon,
)
from demand_platform.models.global_lgbm import band_label

QUANTILE = "quantile"
CALIBRATED_LEVEL = "calibrated_level"
N_RESIDUALS = "n_residuals"
CALIBRATION_SOURCE = "source"
CALIBRATION_COLUMNS = (
    SEGMENT,
    BAND,
    BAND_START,
    BAND_END,
    QUANTILE,
    CALIBRATED_LEVEL,
    N_RESIDUALS,
    CALIBRATION_SOURCE,
)


SCALE_WINDOW_DAYS = 56
#: Negative-binomial dispersion bounds (near-Poisson .. very lumpy) and the value of SKUs without sales.
MIN_DISPERSION = 0.01
MAX_DISPERSION = 50.0
DEFAULT_DISPERSION = 1.0
#: Negative-binomial quantiles: exact pmf walk up to this many steps, for means up to this (scipy beyond).
NB_EXACT_STEPS = 400
NB_EXACT_MAX_MEAN = 60.0


#: Pseudo-days of the history's dispersion against a SKU's CV residuals.
DISPERSION_PRIOR_DAYS = 30.0
#: Bounds of a calibrated quantile level.
MIN_LEVEL = 0.01
MAX_LEVEL = 0.999


def window_stats(history: np.ndarray, days: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-row mean and variance of the observed days among the last ``days`` columns (0 without any)."""
    window = history[:, -days:]
    observed = ~np.isnan(window)
    count = observed.sum(axis=1)
    filled = np.where(observed, window, 0.0)
    mean = np.divide(filled.sum(axis=1), count, out=np.zeros(len(window)), where=count > 0)
    var = np.divide(
        np.where(observed, (window - mean[:, None]) ** 2, 0.0).sum(axis=1),
        count,
        out=np.zeros(len(window)),
        where=count > 0,
    )
    return mean, var


def history_dispersion(history: np.ndarray) -> np.ndarray:
    """Per-SKU negative-binomial dispersion ``alpha`` (variance = mean + alpha * mean^2) of daily demand.

    From the last 56 days (365 when the SKU sold nothing in 56): ``(var - mean) / mean^2`` clipped to
    ``[MIN_DISPERSION, MAX_DISPERSION]``; SKUs without a sale in the year get ``DEFAULT_DISPERSION``.
    """
    mean_short, var_short = window_stats(history, SCALE_WINDOW_DAYS)
    mean_long, var_long = window_stats(history, CAP_WINDOW_DAYS)
    short = mean_short > 0
    mean = np.where(short, mean_short, mean_long)
    var = np.where(short, var_short, var_long)
    alpha = np.divide(var - mean, mean**2, out=np.full(len(mean), DEFAULT_DISPERSION), where=mean > 0)
    return np.clip(alpha, MIN_DISPERSION, MAX_DISPERSION)


def residual_dispersion(
    skus: np.ndarray, actual: np.ndarray, point: np.ndarray, prior: np.ndarray, prior_days: float
) -> pd.Series:
    """Per-SKU dispersion from forecast errors: ``sum((a - f)^2 - f) / sum(f^2)`` over the SKU's scored CV
    days (all origins), shrunk towards ``prior`` (the history's dispersion, one per row) with
    ``prior_days`` pseudo-days. This measures the model's own error, not the history's weekly swings.

    Args:
        skus: SKU of each row of the ``[N, H]`` arrays (a SKU may have rows at several origins).
        actual: Actuals (NaN = not scored).
        point: Point forecasts.
        prior: Dispersion of each row's SKU from its history.
        prior_days: Weight of the prior in days.
    """
    ok = ~np.isnan(actual) & ~np.isnan(point)
    f = np.where(ok, point, 0.0)
    err = np.where(ok, (np.nan_to_num(actual) - f) ** 2 - f, 0.0)
    frame = pd.DataFrame(
        {
            C.SKU: skus,
            "err": err.sum(axis=1),
            "f2": (f**2).sum(axis=1),
            "n": ok.sum(axis=1),
            "prior": prior * ok.sum(axis=1),
        }
    )
    sums = frame.groupby(C.SKU, sort=True)[["err", "f2", "n", "prior"]].sum()
    n = sums["n"].to_numpy(np.float64)
    prior_mean = np.divide(sums["prior"].to_numpy(), n, out=np.full(len(n), DEFAULT_DISPERSION), where=n > 0)
    f2 = sums["f2"].to_numpy()
    own = np.divide(sums["err"].to_numpy(), f2, out=prior_mean.copy(), where=f2 > 0)
    own = np.clip(own, MIN_DISPERSION, MAX_DISPERSION)
    # Shrink in log space: dispersions span four orders of magnitude.
    blended = np.exp((n * np.log(own) + prior_days * np.log(prior_mean)) / (n + prior_days))
    return pd.Series(np.clip(blended, MIN_DISPERSION, MAX_DISPERSION), index=sums.index, name="dispersion")


def dispersion_of(model_dispersion: pd.Series, skus: np.ndarray, history: np.ndarray) -> np.ndarray:
    """The model's per-SKU dispersion, the history's for SKUs it does not know."""
    known = model_dispersion.reindex(pd.Index(skus)).to_numpy(np.float64)
    return np.where(np.isnan(known), history_dispersion(history), known)


def nb_params(mean: np.ndarray, alpha: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """scipy ``nbinom`` (n, p) of a negative binomial with this mean and dispersion."""
    n = 1.0 / alpha
    return n, n / (n + np.maximum(mean, 0.0))


def pit(actual: np.ndarray, mean: np.ndarray, alpha: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Lower and mid PIT ``F(a - 1)``, ``(F(a - 1) + F(a)) / 2`` of the actuals under the negative binomial.

    The mid-PIT is uniform when the distribution is right. Non-integer actuals are rounded up (a quantile
    forecast is an integer count); negatives count as 0.
    """
    a = np.ceil(np.maximum(actual, 0.0))
    n, p = nb_params(mean, alpha)
    below = np.where(a > 0, nbinom.cdf(a - 1.0, n, p), 0.0)
    return below, 0.5 * (below + nbinom.cdf(a, n, p))


def nb_ppf(levels: np.ndarray, n: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Negative-binomial quantiles ``[m, n_q]``: the smallest count k with ``F(k) >= level`` (scipy's ppf).

    Vectorised by walking the pmf recursion ``P(k + 1) = P(k) (k + n) / (k + 1) (1 - p)`` for all rows at
    once, dropping each row as soon as all its levels are reached: most demand is a few units a day, so
    this takes a few dozen steps where scipy's ppf inverts the incomplete beta per element (slow over the
    millions of SKU x horizon x level cells of a warehouse). Rows with a large mean, or still open after ``NB_EXACT_STEPS`` steps, go to
    scipy.

    Args:
        levels: Quantile levels ``[m, n_q]``.
        n: Negative-binomial size ``[m]``.
        p: Success probability ``[m]`` (1 = a point mass at 0).
    """
    m = len(n)
    out = np.zeros(levels.shape)
    large = (n * (1.0 - p) / np.maximum(p, 1e-300)) > NB_EXACT_MAX_MEAN
    idx = np.flatnonzero(~large)
    lv, nn, q1 = levels[idx], n[idx], 1.0 - p[idx]
    pmf = np.exp(nn * np.log(np.maximum(p[idx], 1e-300)))
    cdf = pmf.copy()
    res = np.full(lv.shape, -1.0)
    for k in range(NB_EXACT_STEPS):
        res = np.where((res < 0) & (cdf[:, None] >= lv), float(k), res)
        done = (res >= 0).all(axis=1)
        if done.any():
            out[idx[done]] = res[done]
            keep = ~done
            idx, lv, nn, q1, pmf, cdf, res = (
                idx[keep],
                lv[keep],
                nn[keep],
                q1[keep],
                pmf[keep],
                cdf[keep],
                res[keep],
            )
        if len(idx) == 0:
            break
        pmf = pmf * (k + nn) / (k + 1.0) * q1
        cdf = cdf + pmf
    rest = np.union1d(np.flatnonzero(large), idx) if m else idx
    if len(rest):
        out[rest] = nbinom.ppf(levels[rest], n[rest, None], p[rest, None])
    return out


def nb_quantiles(
    point: np.ndarray,
    alpha: np.ndarray,
    segment: np.ndarray,
    levels: np.ndarray,
    band_of_h: np.ndarray,
    cap: np.ndarray,
) -> np.ndarray:
    """Quantile forecasts ``[n_q, n, H]``: negative-binomial quantiles at the calibrated levels, capped.

    Each SKU x horizon has a negative binomial with mean ``point`` and the SKU's dispersion ``alpha``, so
    a quantile reflects the SKU's own chance of a zero day (a steady seller's p50 is near its mean, a
    sporadic one's is 0). The level is ``levels[segment, band, q]`` (the nominal level recalibrated on
    the CV); the result is clipped to ``[0, cap]`` and made monotone in q.
    """
    n, p = nb_params(point, np.broadcast_to(alpha[:, None], point.shape))
    q_levels = levels[segment][:, band_of_h, :]  # [n, H, n_q]
    flat = nb_ppf(q_levels.reshape(-1, q_levels.shape[2]), n.reshape(-1), p.reshape(-1))
    values = np.moveaxis(flat.reshape(q_levels.shape), 2, 0)
    values = np.clip(np.nan_to_num(values, nan=0.0, posinf=0.0), 0.0, cap[None, :, None])
    return np.maximum.accumulate(values, axis=0)


def level_matrix(calibration: pd.DataFrame, config: TrainConfig) -> np.ndarray:
    """Calibration table -> ``[n_segments, n_bands, n_q]`` calibrated levels (nominal where missing)."""
    shape = (len(CALIBRATION_SEGMENTS), len(config.model_bands), len(config.quantiles))
    out = np.broadcast_to(np.asarray(config.quantiles, dtype=np.float64), shape).copy()
    if calibration.empty:
        return out
    segment = pd.Index(CALIBRATION_SEGMENTS).get_indexer(pd.Index(calibration[SEGMENT]))
    band = pd.Index([band_label(b) for b in config.model_bands]).get_indexer(pd.Index(calibration[BAND]))
    level = pd.Index(list(config.quantiles)).get_indexer(pd.Index(calibration[QUANTILE]))
    ok = (segment >= 0) & (band >= 0) & (level >= 0)
    out[segment[ok], band[ok], level[ok]] = calibration[CALIBRATED_LEVEL].to_numpy(np.float64)[ok]
    return out


def solve_levels(lower: np.ndarray, mid: np.ndarray, quantiles: Sequence[float]) -> np.ndarray:
    """Calibrated levels ``q'`` of the nominal ``quantiles`` from the PIT values of the validation actuals.

    ``lower = F(a - 1)`` and ``mid = (F(a - 1) + F(a)) / 2``. The quantile at level ``q'`` covers an actual
    iff ``lower < q'``. Levels above the median (the stocking quantiles) are set so that the pooled
    coverage is as close to ``q`` as the discrete counts allow (among the levels giving that coverage, the
    one nearest the mid-PIT solution). The median and lower levels are the ``q`` quantile of the mid-PIT
    values: matching pooled coverage there would let the zero days of the sporadic SKUs (always covered)
    drag the steady sellers' p50 down to 0.
    """
    nominal = np.asarray(quantiles, dtype=np.float64)
    if len(mid) == 0:
        return nominal.copy()
    by_pit = np.quantile(mid, nominal)
    values, counts = np.unique(lower, return_counts=True)
    covered = np.cumsum(counts) / len(lower)  # coverage of any level in (values[j], values[j + 1]]
    upper_end = np.append(values[1:], 1.0)
    out = by_pit.copy()
    for index, q in enumerate(nominal):
        if q <= 0.5:
            continue
        j = int(np.argmin(np.abs(covered - q)))
        out[index] = np.clip(by_pit[index], np.nextafter(values[j], 1.0), upper_end[j])
    return np.clip(out, MIN_LEVEL, MAX_LEVEL)


def calibrate(
    actual: np.ndarray,
    point: np.ndarray,
    alpha: np.ndarray,
    segment: np.ndarray,
    config: TrainConfig,
) -> pd.DataFrame:
    """Per segment x band calibrated levels from the pooled CV forecasts ``[N, H]`` (segments with few rows
    use all rows of the band)."""
    band_of_h = band_of_horizon(config)
    usable = ~np.isnan(actual)
    lower = np.full(actual.shape, np.nan)
    mid = np.full(actual.shape, np.nan)
    alpha_full = np.broadcast_to(alpha[:, None], actual.shape)
    lower[usable], mid[usable] = pit(actual[usable], point[usable], alpha_full[usable])

    def levels_of(mask: np.ndarray) -> np.ndarray:
        return solve_levels(lower[mask], mid[mask], config.quantiles)

    records = []
    for band_index, band in enumerate(config.model_bands):
        in_band = usable & (band_of_h[None, :] == band_index)
        pooled = levels_of(in_band)
        for segment_index, segment_name in enumerate(CALIBRATION_SEGMENTS):
            mask = in_band & (segment[:, None] == segment_index)
            n_rows = int(mask.sum())
            if n_rows >= config.min_calibration_rows:
                levels, source = levels_of(mask), segment_name
            else:
                levels, source = pooled, SEGMENT_ALL
            for level, calibrated in zip(config.quantiles, levels, strict=True):
                records.append(
                    (
                        segment_name,
                        band_label(band),
                        band[0],
                        band[1],
                        level,
                        float(calibrated),
                        n_rows,
                        source,
                    )
                )
    return pd.DataFrame.from_records(records, columns=list(CALIBRATION_COLUMNS))
