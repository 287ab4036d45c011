"""Launch profiles of new SKUs: category level x launch ramp, updated by a SKU's own days since launch."""

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from demand_platform.features import SalesPanel
from demand_platform.forecasting.config import TrainConfig

#: Recent launches (observed for a week) needed to estimate the strength of the launch prior.
MIN_LAUNCHES_FOR_PRIOR = 10
#: Price bands within a category (terciles of its SKUs' prices): cheap, middle, dear.
N_PRICE_BANDS = 3


_RAMP_PRIOR_OBS = 7.0
#: Alternating updates of the launch ramp's level x ramp fit.
RAMP_ITERATIONS = 20


@dataclass(frozen=True)
class ColdStartProfile:
    """Launch profiles of one warehouse: category level x launch ramp by age week.

    Attributes:
        categories: Categories with a level.
        category_level: De-ramped daily demand level of each category's launches (shrunk).
        global_level: De-ramped level of all launches (the level of unknown categories).
        ramp: Demand multiplier by age week since launch (index = age // 7; the last one beyond).
        n_launches: Launches the profile was estimated from (0 = fallback on mature SKUs, flat ramp).
        prior_days: Pseudo-days of the profile level against a SKU's own history.
        band_edges: ``[len(categories), N_PRICE_BANDS - 1]`` price terciles of each category's SKUs; None
            without prices (and for profiles trained before price bands).
        band_level: ``[len(categories), N_PRICE_BANDS]`` de-ramped level of each category's launches per
            price band, shrunk towards the category's level; None without prices.
    """

    categories: tuple[str, ...]
    category_level: np.ndarray
    global_level: float
    ramp: np.ndarray
    n_launches: int
    prior_days: float
    band_edges: np.ndarray | None = None
    band_level: np.ndarray | None = None

    @property
    def max_age_days(self) -> int:
        """Age (days since launch) covered by the ramp; older SKUs follow their own history."""
        return 7 * len(self.ramp)

    def level_of(self, category: np.ndarray, price: np.ndarray | None = None) -> np.ndarray:
        """Profile level of each SKU's category and price band (the category's without a price, the global
        level for unknown categories)."""
        index = pd.Index(self.categories).get_indexer(pd.Index(pd.Series(category, dtype=object).astype(str)))
        level = np.where(index >= 0, self.category_level[np.clip(index, 0, None)], self.global_level)
        if price is None or self.band_edges is None or self.band_level is None or not len(self.categories):
            return level
        band = price_band(index, price, self.band_edges)
        known = (index >= 0) & (band >= 0)
        level[known] = self.band_level[index[known], band[known]]
        return level

    def ramp_at(self, age: np.ndarray) -> np.ndarray:
        """Ramp multiplier at each age in days (ages before launch use week 0)."""
        week = np.clip(np.asarray(age) // 7, 0, len(self.ramp) - 1).astype(np.int64)
        return self.ramp[week]

    def forecast(
        self,
        category: np.ndarray,
        launch_day: np.ndarray,
        history: np.ndarray,
        origin_day: int,
        horizon: int,
        price: np.ndarray | None = None,
    ) -> np.ndarray:
        """Cold-start forecasts: posterior level (profile prior + own days since launch) x ramp.

        Args:
            category: Category of each SKU.
            launch_day: Effective launch epoch day of each SKU.
            history: ``[n, L]`` demand of the last L days up to the origin (NaN where no row).
            origin_day: Epoch day of the origin.
            horizon: Last horizon.
            price: Price of each SKU (its launches' price band; NaN or None: the category's level).

        Returns:
            Forecasts ``[n, horizon]``.
        """
        n, n_days = history.shape
        prior = self.level_of(category, price)
        day = origin_day - n_days + 1 + np.arange(n_days)
        age = day[None, :] - launch_day[:, None]
        observed = ~np.isnan(history) & (age >= 0)
        own_sum = np.where(observed, history, 0.0).sum(axis=1)
        ramp_sum = np.where(observed, self.ramp_at(np.where(observed, age, 0)), 0.0).sum(axis=1)
        # The profile is a prior for young SKUs only: an SKU older than the ramp (cold start because it
        # rarely sells) follows its own history, so a long run of zeros forecasts ~zero.
        young = (origin_day - launch_day) < self.max_age_days
        prior_days = np.where(young, self.prior_days, 0.0)
        level = np.divide(
            own_sum + prior_days * prior,
            ramp_sum + prior_days,
            out=np.where(young, prior, 0.0),
            where=(ramp_sum + prior_days) > 0,
        )
        target_age = (origin_day - launch_day)[:, None] + np.arange(1, horizon + 1)[None, :]
        return np.maximum(level[:, None] * self.ramp_at(target_age), 0.0)


def fit_cold_start(
    panel: SalesPanel,
    end_column: int,
    category: np.ndarray,
    launch_day: np.ndarray,
    config: TrainConfig,
    events: Callable[[np.ndarray], np.ndarray] | None = None,
    price: np.ndarray | None = None,
) -> ColdStartProfile:
    """Launch profiles from the SKUs launched in the ``cold_lookback_days`` before panel column ``end_column``.

    Args:
        panel: Sales panel (only columns up to ``end_column`` are read).
        end_column: Column of the date the profiles describe.
        category: Category of each panel SKU.
        launch_day: Effective launch epoch day of each panel SKU.
        config: Settings.
        events: Panel rows -> their ``[len(rows), panel.n_days]`` event multiplier (holidays, campaigns;
            :class:`demand_platform.forecasting.events.EventUplift`): the launches' demand is divided by it
            before the ramp and levels are fitted, so a launch that met Black Friday in its fifth week does
            not teach every launch to jump in its fifth week. None: no adjustment.
        price: Price of each panel SKU (NaN unknown). The launches' levels are then also estimated per
            price band of their category (terciles of the category's panel SKUs' prices), shrunk towards
            the category's level with ``cold_prior_skus`` pseudo-launches: a cheap line launches at other
            volumes than a dear one. None: by category only.

    Returns:
        The profile.
    """
    end_day = panel.start_day + end_column
    n_weeks = math.ceil(config.cold_max_age_days / 7)
    history_start = panel.history_first_day if panel.history_first_day is not None else end_day
    recent = (
        (panel.first_day > history_start)
        & (launch_day <= end_day)
        & (launch_day >= end_day - config.cold_lookback_days)
    )
    rows = np.flatnonzero(recent)
    if len(rows) == 0:
        # No launch to learn from: a new SKU is an average SKU of its category, flat ramp.
        window = panel.quantity[:, max(0, end_column - 27) : end_column + 1]
        observed = (~np.isnan(window)).sum(axis=1)
        sku_mean = np.divide(
            np.nansum(window, axis=1), observed, out=np.zeros(len(window)), where=observed > 0
        )
        has = observed > 0
        frame = pd.DataFrame(
            {"category": pd.Series(category[has], dtype=object).astype(str), "m": sku_mean[has]}
        )
        levels = frame.groupby("category", sort=True)["m"].mean()
        return ColdStartProfile(
            categories=tuple(levels.index),
            category_level=levels.to_numpy(np.float64),
            global_level=float(sku_mean[has].mean()) if has.any() else 0.0,
            ramp=np.ones(n_weeks),
            n_launches=0,
            prior_days=config.cold_prior_days,
        )
    launch_column = (launch_day[rows] - panel.start_day).astype(np.int64)
    age = np.arange(n_weeks * 7)
    column = launch_column[:, None] + age[None, :]
    ok = (column >= 0) & (column <= end_column)
    values = np.full(column.shape, np.nan)
    sku_rows = np.broadcast_to(rows[:, None], column.shape)
    values[ok] = panel.quantity[sku_rows[ok], column[ok]]
    if events is not None:
        multiplier = events(rows)
        position = np.broadcast_to(np.arange(len(rows))[:, None], column.shape)
        values[ok] /= multiplier[position[ok], column[ok]]
    observed = ~np.isnan(values)
    filled = np.where(observed, values, 0.0)
    ramp = launch_ramp(filled, observed, n_weeks)
    ramp_of_cell = np.where(observed, ramp[age // 7][None, :], 0.0)
    sku_total = filled.sum(axis=1)
    sku_ramp = ramp_of_cell.sum(axis=1)
    global_level = sku_total.sum() / sku_ramp.sum() if sku_ramp.sum() > 0 else 0.0
    frame = pd.DataFrame(
        {"category": pd.Series(category[rows], dtype=object).astype(str), "y": sku_total, "r": sku_ramp}
    )
    grouped = frame.groupby("category", sort=True).agg(y=("y", "sum"), r=("r", "sum"), n=("y", "size"))
    level = np.divide(
        grouped["y"], grouped["r"], out=np.full(len(grouped), global_level), where=grouped["r"] > 0
    )
    shrunk = (grouped["n"] * level + config.cold_prior_skus * global_level) / (
        grouped["n"] + config.cold_prior_skus
    )
    categories = tuple(grouped.index)
    category_level = shrunk.to_numpy(np.float64)
    band_edges = band_level = None
    if price is not None:
        band_edges = category_price_edges(category, price, categories)
        cat_index = pd.Index(categories).get_indexer(pd.Index(frame["category"]))
        band = price_band(cat_index, price[rows], band_edges)
        cell = np.where(band >= 0, cat_index * N_PRICE_BANDS + band, -1)
        ok = cell >= 0
        size = len(categories) * N_PRICE_BANDS
        y = np.bincount(cell[ok], sku_total[ok], minlength=size)
        r = np.bincount(cell[ok], sku_ramp[ok], minlength=size)
        n_band = np.bincount(cell[ok], minlength=size).astype(np.float64)
        prior = np.repeat(category_level, N_PRICE_BANDS)
        # Shrunk by launches, as the category's level is towards the warehouse's.
        own = np.divide(y, r, out=prior.copy(), where=r > 0)
        band_level = (
            (n_band * own + config.cold_prior_skus * prior) / (n_band + config.cold_prior_skus)
        ).reshape(len(categories), N_PRICE_BANDS)
    return ColdStartProfile(
        categories=categories,
        category_level=category_level,
        global_level=float(global_level),
        ramp=ramp,
        n_launches=len(rows),
        prior_days=launch_prior_days(sku_total, sku_ramp, float(global_level), config.cold_prior_days),
        band_edges=band_edges,
        band_level=band_level,
    )


def category_price_edges(category: np.ndarray, price: np.ndarray, categories: tuple[str, ...]) -> np.ndarray:
    """``[len(categories), N_PRICE_BANDS - 1]`` price terciles of each category's SKUs (NaN: no price)."""
    frame = pd.DataFrame({"category": pd.Series(category, dtype=object).astype(str), "price": price})
    frame = frame.loc[np.isfinite(frame["price"].to_numpy(np.float64))]
    levels = np.arange(1, N_PRICE_BANDS) / N_PRICE_BANDS
    edges = frame.groupby("category")["price"].quantile(list(levels)).unstack()
    return (
        edges.reindex(pd.Index(categories)).to_numpy(np.float64).reshape(len(categories), N_PRICE_BANDS - 1)
    )


def price_band(category_index: np.ndarray, price: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Price band (0 .. N_PRICE_BANDS - 1) of each SKU within its category (-1: unknown category or price)."""
    price = np.asarray(price, dtype=np.float64)
    known = (category_index >= 0) & np.isfinite(price)
    band = np.full(len(price), -1, dtype=np.int64)
    if known.any():
        sku_edges = edges[category_index[known]]  # [m, N_PRICE_BANDS - 1]
        ok = np.isfinite(sku_edges).all(axis=1)
        count = (price[known][:, None] > sku_edges).sum(axis=1)
        band[np.flatnonzero(known)[ok]] = count[ok]
    return band


def launch_ramp(filled: np.ndarray, observed: np.ndarray, n_weeks: int) -> np.ndarray:
    """Demand multiplier by age week of launches, ``y[s, a] ~ level[s] * ramp[a // 7]`` (mean 1 over the weeks).

    Fitted by alternating the two Poisson maximum-likelihood updates (``RAMP_ITERATIONS`` times), so a week
    is compared with the *same* launches' other weeks: the recent launches, seen only in their first weeks,
    and the older ones, seen throughout, differ in level by orders of magnitude, and pooled weekly rates
    (the first version) mixed those levels into the ramp and flattened it. Each week is shrunk towards 1
    with ``_RAMP_PRIOR_OBS`` pseudo-days at the launches' mean rate.

    Args:
        filled: ``[n_launches, 7 * n_weeks]`` demand by age in days (0 where not observed).
        observed: Where the demand is observed.
        n_weeks: Age weeks.
    """
    week = np.arange(filled.shape[1]) // 7
    cells = observed.sum()
    if cells == 0 or filled.sum() <= 0:
        return np.ones(n_weeks)
    rate = filled.sum() / cells
    week_units = np.bincount(week, weights=filled.sum(axis=0), minlength=n_weeks)
    ramp = np.ones(n_weeks)
    for _ in range(RAMP_ITERATIONS):
        exposure = (observed * ramp[week][None, :]).sum(axis=1)
        level = np.divide(filled.sum(axis=1), exposure, out=np.zeros(len(filled)), where=exposure > 0)
        expected = np.bincount(week, weights=(observed * level[:, None]).sum(axis=0), minlength=n_weeks)
        ramp = (week_units + _RAMP_PRIOR_OBS * rate) / (expected + _RAMP_PRIOR_OBS * rate)
        ramp /= ramp.mean()
    return ramp


def launch_prior_days(total: np.ndarray, ramp_days: np.ndarray, level: float, max_days: float) -> float:
    """Weight (in days) of the launch profile against a new SKU's own days: empirical-Bayes Gamma-Poisson.

    With launch levels ``lambda_i ~ Gamma(mean mu, variance s2)``, the posterior mean after ``n`` (ramp-
    weighted) days is ``(mu * b + sum y) / (b + n)`` with ``b = mu / s2``. ``s2`` is the spread of the
    launches' own levels net of their Poisson noise. Homogeneous launches give a strong prior (capped at
    ``max_days``); heterogeneous ones (Online Retail's wholesale lines) a weak one, so that weeks of zeros
    since launch bring the forecast down instead of keeping the category's average launch level.

    Args:
        total: Units sold by each recent launch over its observed ages.
        ramp_days: Ramp-weighted observed days of each launch.
        level: The launches' pooled level ``mu``.
        max_days: Upper bound (``TrainConfig.cold_prior_days``); also the value with fewer than
            ``MIN_LAUNCHES_FOR_PRIOR`` launches observed for a week.
    """
    seen = ramp_days >= 7.0
    if seen.sum() < MIN_LAUNCHES_FOR_PRIOR or level <= 0:
        return max_days
    own = total[seen] / ramp_days[seen]
    between = float(np.var(own)) - level * float(np.mean(1.0 / ramp_days[seen]))
    if between <= 0:
        return max_days
    return float(min(max_days, level / between))
