"""Forecast accuracy against realised demand, and drift checks on accuracy and on features.

Scoring (:func:`score_forecasts`). Every forecast row whose ``target_date`` is on or before ``as_of`` is
joined to the realised demand of its SKU x warehouse x day in ``raw_sales`` (one vectorised merge, no loop
over series). Forecasts dated after ``as_of`` are never scored, whatever the actuals frame holds, so a
score computed "as of" a day cannot see the future. The actual demand is ``max(quantity, 0)`` (net
quantity with returns clipped, as everywhere in the platform). When an SKU has no ``raw_sales`` row for
the target day:

* if the actuals frame **covers** that warehouse x day (holds at least one row for the warehouse on that
  date, i.e. that ``raw_sales`` partition was ingested), the actual is 0: ingestion writes a row for every
  active SKU, so a missing row means nothing was sold (counted in ``n_zero_filled``);
* otherwise the demand of that day is unknown: the forecast is left out of every metric and counted in
  ``n_uncovered``.

Tables (:func:`accuracy_tables`). Daily-level WMAPE, MAE, RMSE and bias come from
:func:`demand_platform.metrics.metrics_by_group`; coverage of the P90 and P95 quantiles is the share of
actuals at or below the quantile (as :func:`demand_platform.metrics.coverage`). The aggregated levels that
replenishment orders on are scored too:

* **lead-time demand**: per SKU x warehouse x origin x model, the sum of forecasts and of actuals over
  horizons ``1 .. lead_time``; only complete windows (all ``lead_time`` days scored) count;
* **weekly totals**: per SKU x warehouse x origin x model x ISO week of the target dates (weeks start on
  Monday), the sums over the week; only complete weeks (7 scored days) count, so the partial first and
  last weeks of each origin's horizon are left out.

Drift. :func:`performance_drift` turns the tables into human-readable alert reasons;
:func:`psi` is the population stability index of one variable and :func:`feature_drift` applies it to
feature columns (train vs recent).
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import NamedTuple

import numpy as np
import pandas as pd

from demand_platform import columns as C
from demand_platform.days import HORIZON_BANDS, DateLike
from demand_platform.metrics import (
    BIAS,
    METRIC_COLUMNS,
    N_OBS,
    PAIR_COUNT,
    SUM_COLUMNS,
    WMAPE,
    metrics_from_sums,
)

# --- columns added to the scored frame -------------------------------------------------------------------
ACTUAL = "actual"
HORIZON_BAND = "horizon_band"
WEEK_START = "week_start"

# --- metric columns of the tables (beyond metrics.METRIC_COLUMNS) -----------------------------------------
COVERAGE_P90 = "coverage_p90"
COVERAGE_P95 = "coverage_p95"
LEAD_TIME_WMAPE = "lead_time_wmape"
WEEKLY_WMAPE = "weekly_wmape"
TABLE_METRIC_COLUMNS = (*METRIC_COLUMNS, COVERAGE_P90, COVERAGE_P95)

# --- table names (keys of the accuracy_tables dict) ----------------------------------------------------
OVERALL = "overall"
BY_TIER = "tier"
BY_CATEGORY = "category"
BY_HORIZON_BAND = "horizon_band"
BY_MODEL = "model"
BY_TIER_AND_ORIGIN = "tier_by_origin"
LEAD_TIME = "lead_time"
WEEKLY = "weekly"
TABLE_NAMES = (
    OVERALL,
    BY_TIER,
    BY_CATEGORY,
    BY_HORIZON_BAND,
    BY_MODEL,
    BY_TIER_AND_ORIGIN,
    LEAD_TIME,
    WEEKLY,
)

# --- horizon bands -----------------------------------------------------------------------------------
HORIZON_BAND_LABELS = tuple(f"{lo}-{hi}" for lo, hi in HORIZON_BANDS)

DEFAULT_LEAD_TIME = 7
DAYS_PER_WEEK = 7

# --- feature drift output -------------------------------------------------------------------------------
FEATURE = "feature"
PSI = "psi"
FLAGGED = "flagged"
N_EXPECTED = "n_expected"
N_ACTUAL = "n_actual"
FEATURE_DRIFT_COLUMNS = (FEATURE, PSI, FLAGGED, N_EXPECTED, N_ACTUAL)

#: Floor of a bin share in :func:`psi`, so an empty bin adds a large but finite term.
PSI_EPSILON = 1e-4

_FORECAST_COLUMNS = C.FORECAST_COLUMNS
_ALL = "_all"
#: Scored rows aggregated per chunk (bounds the temporaries of the error terms to a few MB each).
_CHUNK_ROWS = 1 << 21


class _Codes(NamedTuple):
    """Integer codes of a key column into its sorted distinct values (a missing value is the last one)."""

    codes: np.ndarray
    values: np.ndarray

    @property
    def size(self) -> int:
        return len(self.values)


def _small(codes: np.ndarray, size: int) -> np.ndarray:
    """Codes in ``[0, size]`` in the smallest signed integer type (a row array per key: memory matters)."""
    for dtype in (np.int8, np.int16, np.int32):
        if size < np.iinfo(dtype).max:
            return codes.astype(dtype, copy=False)
    return codes.astype(np.int64, copy=False)


def _codes(values: pd.Series, rows: np.ndarray | None = None) -> _Codes:
    """Codes of ``values[rows]`` into their sorted distinct values, ``NaN`` as a last value of its own.

    Categorical columns reuse their category codes (no hashing of the rows); others are factorized.
    """
    if isinstance(values.dtype, pd.CategoricalDtype):
        raw = values.cat.codes.to_numpy()
        raw = raw if rows is None else raw[rows]
        categories = values.cat.categories
        order = np.argsort(categories.to_numpy(), kind="stable")
        rank = _small(np.empty(len(categories) + 1, dtype=np.int64), len(categories) + 1)
        rank[order] = np.arange(len(categories))
        rank[-1] = len(categories)  # code -1 (missing) -> last
        uniques = np.append(categories.to_numpy()[order].astype(object), np.nan)
        return _Codes(rank[raw], uniques)
    array = values.to_numpy()
    array = array if rows is None else array[rows]
    codes, uniques = pd.factorize(array, sort=True, use_na_sentinel=True)
    uniques = np.asarray(uniques)
    if (codes < 0).any():
        codes = np.where(codes < 0, len(uniques), codes)
        uniques = np.append(uniques.astype(object) if uniques.dtype.kind in "OUS" else uniques, np.nan)
    return _Codes(_small(codes, len(uniques)), uniques)


def _epoch_days(values: pd.Series) -> np.ndarray:
    """Days since 1970-01-01 of a date column (local wall date of tz-aware values); NaT stays NaT."""
    if not isinstance(values.dtype, pd.DatetimeTZDtype) and values.dtype.kind != "M":
        values = pd.to_datetime(values)
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        values = values.dt.tz_localize(None)
    days = values.to_numpy().astype("datetime64[D]").view(np.int64)
    return days.astype(np.int32) if len(days) and days.min() >= _NAT_DAY32 else days


#: Epoch days fit in int32 (NaT becomes the int32 minimum).
_NAT_DAY32 = np.iinfo(np.int32).min


_NAT_DAY = np.datetime64("NaT").astype("datetime64[D]").view(np.int64)


def _days_to_datetime(days: np.ndarray) -> np.ndarray:
    return days.astype("datetime64[D]").astype("datetime64[ns]")


def _combine(parts: Sequence[tuple[np.ndarray, int]]) -> tuple[np.ndarray, int]:
    """One int64 code per row for a tuple of codes (mixed radix), re-compressed when the product grows large."""
    code = np.zeros(len(parts[0][0]), dtype=np.int64)
    size = 1
    for part, n in parts:
        if size * max(n, 1) >= 1 << 62:
            code, uniques = pd.factorize(code)
            size = len(uniques)
        code = code * max(n, 1) + part
        size *= max(n, 1)
    return code, size


@dataclass(frozen=True)
class ScoredForecasts:
    """Forecasts joined to realised demand.

    The scored rows are kept as positions into the forecast frame plus their actuals (no copy of the
    forecasts); :attr:`frame` builds the joined frame on first access.

    Attributes:
        as_of: Last target date scored.
        n_forecasts: Forecast rows passed in.
        n_not_due: Rows whose target date is after ``as_of`` (not scored).
        n_scored: Rows scored.
        n_zero_filled: Scored rows without a ``raw_sales`` row on a covered day (actual set to 0).
        n_uncovered: Due rows left out because the actuals do not cover their warehouse x target day.
        source: The forecast frame as passed in.
        rows: Positions of the scored rows in ``source`` (ascending).
        actual: Clipped actual demand of each scored row.
        products: ``sku``, ``category`` (one row per SKU).
        sku: Codes of the scored rows' SKUs (into their sorted values).
        warehouse: Codes of the scored rows' warehouses.
    """

    as_of: pd.Timestamp
    n_forecasts: int
    n_not_due: int
    n_scored: int
    n_zero_filled: int
    n_uncovered: int
    source: pd.DataFrame = field(repr=False, compare=False)
    rows: np.ndarray = field(repr=False, compare=False)
    actual: np.ndarray = field(repr=False, compare=False)
    products: pd.DataFrame = field(repr=False, compare=False)
    sku: _Codes = field(repr=False, compare=False)
    warehouse: _Codes = field(repr=False, compare=False)
    _cache: dict[object, object] = field(default_factory=dict, repr=False, compare=False)

    def summary(self) -> dict[str, int | str]:
        """Counts of the scoring, for logs and run metadata.

        Returns:
            ``as_of`` (ISO date) and the ``n_*`` counts.
        """
        return {
            "as_of": self.as_of.date().isoformat(),
            "n_forecasts": self.n_forecasts,
            "n_not_due": self.n_not_due,
            "n_scored": self.n_scored,
            "n_zero_filled": self.n_zero_filled,
            "n_uncovered": self.n_uncovered,
        }

    @cached_property
    def frame(self) -> pd.DataFrame:
        """One row per scored forecast: the forecast columns (dates normalised), ``actual``, ``category``
        (from products, NaN when the SKU is unknown) and ``horizon_band`` (ordered categorical)."""
        return self.subframe(None)

    def subframe(self, select: np.ndarray | None) -> pd.DataFrame:
        """The rows of :attr:`frame` selected by a boolean mask over the scored rows (all when None).

        Args:
            select: Boolean mask of length ``n_scored``, or None.

        Returns:
            The selected rows, in scoring order, with a fresh index.
        """
        rows = self.rows if select is None else self.rows[select]
        actual = self.actual if select is None else self.actual[select]
        fc = self.source.iloc[rows][list(_FORECAST_COLUMNS)].reset_index(drop=True)
        for column in (C.TARGET_DATE, C.ORIGIN_DATE):
            fc[column] = _datetime(fc[column]).to_numpy()
        fc[ACTUAL] = actual
        fc = fc.merge(self.products, on=C.SKU, how="left", validate="many_to_one")
        fc[HORIZON_BAND] = horizon_band(fc[C.HORIZON])
        return fc

    def column(self, name: str) -> np.ndarray:
        """A forecast column's values on the scored rows."""
        return self.source[name].to_numpy()[self.rows]

    def codes(self, name: str) -> _Codes:
        """Codes of a key column on the scored rows (cached): ``tier``, ``model``, ``category``, ..."""
        key = ("codes", name)
        if key not in self._cache:
            if name == C.CATEGORY:
                by_sku = self.products.set_index(C.SKU)[C.CATEGORY].reindex(pd.Index(self.sku.values))
                per_sku = _codes(by_sku.reset_index(drop=True))
                self._cache[key] = _Codes(per_sku.codes[self.sku.codes], per_sku.values)
            elif name == HORIZON_BAND:
                band = self.horizon_band_codes()
                self._cache[key] = band
            else:
                self._cache[key] = _codes(self.source[name], self.rows)
        return self._cache[key]  # type: ignore[return-value]

    def days(self, name: str) -> np.ndarray:
        """Epoch days of a date column on the scored rows (cached)."""
        key = ("days", name)
        if key not in self._cache:
            self._cache[key] = _epoch_days(self.source[name])[self.rows]
        return self._cache[key]  # type: ignore[return-value]

    def horizon_band_codes(self) -> _Codes:
        """Horizon band of each scored row: codes into ``HORIZON_BAND_LABELS`` (+ NaN outside 1..30)."""
        horizon = self.column(C.HORIZON).astype(np.float64)
        band = np.full(len(horizon), len(HORIZON_BANDS), dtype=np.int8)
        for i, (lo, hi) in enumerate(HORIZON_BANDS):
            band[(horizon > lo - 1) & (horizon <= hi)] = i
        return _Codes(band, np.array([*HORIZON_BAND_LABELS, np.nan], dtype=object))

    def series(self) -> tuple[np.ndarray, int]:
        """SKU x warehouse code of each scored row and the size of the code space."""
        return _combine([(self.sku.codes, self.sku.size), (self.warehouse.codes, self.warehouse.size)])


def _datetime(values: pd.Series) -> pd.Series:
    """A date column as tz-naive ``datetime64[ns]`` normalised to midnight."""
    out = pd.to_datetime(values)
    if out.dt.tz is not None:
        out = out.dt.tz_localize(None)
    return out.dt.normalize().astype("datetime64[ns]")


def horizon_band(horizon: pd.Series | np.ndarray) -> pd.Categorical:
    """Horizon band labels ``1-7``, ``8-14``, ``15-30`` (NaN outside 1..30).

    Args:
        horizon: Horizons in days.

    Returns:
        An ordered categorical of the band labels.
    """
    edges = [HORIZON_BANDS[0][0] - 1, *(hi for _, hi in HORIZON_BANDS)]
    bands = pd.cut(np.asarray(horizon, dtype=np.float64), bins=edges, labels=list(HORIZON_BAND_LABELS))
    return pd.Categorical(bands, categories=list(HORIZON_BAND_LABELS), ordered=True)


def _compact(code: np.ndarray, size: int) -> tuple[np.ndarray, int]:
    """Dense codes ``0..k-1`` (in the order of ``code``'s values) for codes in ``[0, size)``."""
    if size <= max(4 * len(code), 1 << 22):
        present = np.bincount(code, minlength=size) > 0
        n = int(present.sum())
        dense = _small(np.cumsum(present) - 1, n)
        return dense[code], n
    codes, uniques = pd.factorize(code, sort=True)
    return _small(codes, len(uniques)), len(uniques)


def score_forecasts(
    forecasts: pd.DataFrame, actuals: pd.DataFrame, products: pd.DataFrame, as_of: DateLike
) -> ScoredForecasts:
    """Join the forecasts due by ``as_of`` to realised demand (see the module docstring for the rules).

    The join runs on integer codes: SKU x warehouse codes and target days index a dense matrix of the
    actuals (or, when that matrix would be larger than the rows, a sorted key array), so the cost is a
    few passes over the forecast columns, without copying the forecast frame.

    Args:
        forecasts: Forecast frame (``sku``, ``warehouse_id``, ``origin_date``, ``target_date``, ``horizon``,
            ``forecast``, ``p50``, ``p90``, ``p95``, ``tier``, ``model``); string keys may be categorical.
        actuals: ``raw_sales`` rows (``sku``, ``warehouse_id``, ``date``, ``quantity``), at most one per
            SKU x warehouse x date.
        products: Products (``sku``, ``category``); extra columns are ignored.
        as_of: Last target date to score (inclusive).

    Returns:
        The scored forecasts and the scoring counts.

    Raises:
        KeyError: If a required column is missing.
        ValueError: If ``actuals`` holds duplicate SKU x warehouse x date rows.
    """
    missing = [c for c in _FORECAST_COLUMNS if c not in forecasts.columns]
    if missing:
        raise KeyError(f"forecasts lack columns {missing}")
    as_of_ts = pd.Timestamp(as_of).normalize()
    as_of_day = int(as_of_ts.to_datetime64().astype("datetime64[D]").view(np.int64))
    n_forecasts = len(forecasts)
    target = _epoch_days(forecasts[C.TARGET_DATE])
    due = (target <= as_of_day) & (target != _NAT_DAY)
    due_rows = np.flatnonzero(due)
    if n_forecasts < np.iinfo(np.int32).max:
        due_rows = due_rows.astype(np.int32)
    del due
    target = target[due_rows]
    sku = _codes(forecasts[C.SKU], due_rows)
    warehouse = _codes(forecasts[C.WAREHOUSE_ID], due_rows)
    series_code, series_size = _combine([(sku.codes, sku.size), (warehouse.codes, warehouse.size)])
    series, n_series = _compact(series_code, series_size) if len(due_rows) else (series_code, 0)
    series = series.astype(np.int64, copy=False)

    first_day = int(target.min()) if len(target) else as_of_day
    n_days = as_of_day - first_day + 1
    act_days = _epoch_days(actuals[C.DATE])
    in_range = (act_days >= first_day) & (act_days <= as_of_day) & (act_days != _NAT_DAY)
    act_day = act_days[in_range] - first_day
    act_wh = pd.Index(warehouse.values).get_indexer(actuals[C.WAREHOUSE_ID].to_numpy()[in_range])
    act_sku = pd.Index(sku.values).get_indexer(actuals[C.SKU].to_numpy()[in_range])
    quantity = np.clip(actuals[C.QUANTITY].to_numpy(dtype=np.float64)[in_range], 0.0, None)

    # covered warehouse x day: at least one raw_sales row (any SKU) of the warehouse on the day
    covered_cells = np.zeros(warehouse.size * n_days, dtype=bool)
    known_wh = act_wh >= 0
    covered_cells[act_wh[known_wh] * n_days + act_day[known_wh]] = True
    is_covered = covered_cells[warehouse.codes.astype(np.int64) * n_days + (target - first_day)]

    # the actual of each due row's SKU x warehouse x day
    known = (act_sku >= 0) & known_wh
    act_series_code = act_sku[known] * warehouse.size + act_wh[known]
    lookup = np.full(series_size if len(due_rows) else 0, -1, dtype=np.int64)
    lookup[series_code] = series
    act_series = lookup[act_series_code] if len(lookup) else np.zeros(0, dtype=np.int64)
    del lookup, series_code
    hit = act_series >= 0
    act_key = act_series[hit] * n_days + act_day[known][hit]
    act_qty = quantity[known][hit]
    row_key = series * n_days + (target - first_day)
    del series, target
    if n_series * n_days <= max(2 * len(row_key), 1 << 20):
        count = np.bincount(act_key, minlength=n_series * n_days)
        value = np.full(n_series * n_days, np.nan)
        value[act_key] = act_qty
        row_count = count[row_key]
        actual = value[row_key]
    else:
        order = np.argsort(act_key, kind="stable")
        sorted_key = act_key[order]
        pos = np.minimum(np.searchsorted(sorted_key, row_key, side="left"), max(len(sorted_key) - 1, 0))
        end = np.searchsorted(sorted_key, row_key, side="right")
        row_count = end - np.searchsorted(sorted_key, row_key, side="left")
        actual = np.where(row_count > 0, act_qty[order][pos] if len(order) else np.nan, np.nan)
    del row_key
    if ((row_count > 1) & is_covered).any():
        raise ValueError("actuals hold duplicate sku x warehouse_id x date rows")
    del row_count
    no_row = np.isnan(actual)
    n_zero_filled = int((no_row & is_covered).sum())
    n_uncovered = int((~is_covered).sum())
    rows = due_rows[is_covered]
    categories = products[[C.SKU, C.CATEGORY]].drop_duplicates(C.SKU)
    scored_sku = _Codes(sku.codes[is_covered], sku.values)
    scored_wh = _Codes(warehouse.codes[is_covered], warehouse.values)
    return ScoredForecasts(
        as_of=as_of_ts,
        n_forecasts=n_forecasts,
        n_not_due=int(n_forecasts - len(due_rows)),
        n_scored=len(rows),
        n_zero_filled=n_zero_filled,
        n_uncovered=n_uncovered,
        source=forecasts,
        rows=rows,
        actual=np.nan_to_num(actual[is_covered], nan=0.0),
        products=categories,
        sku=scored_sku,
        warehouse=scored_wh,
    )


# --- aggregation on integer codes -------------------------------------------------------------------------
_COV_HITS_P90, _COV_N_P90, _COV_HITS_P95, _COV_N_P95, _ROWS = "_h90", "_n90", "_h95", "_n95", "_rows"
_CELL_SUMS = (*SUM_COLUMNS, _COV_HITS_P90, _COV_N_P90, _COV_HITS_P95, _COV_N_P95, _ROWS)
#: Key columns of the cells every daily table is rolled up from.
_CELL_KEYS = (C.ORIGIN_DATE, C.TIER, C.CATEGORY, HORIZON_BAND, C.MODEL)


def _term_sums(
    group: np.ndarray, n_groups: int, actual: np.ndarray, forecast: np.ndarray
) -> list[np.ndarray]:
    """``metrics.SUM_COLUMNS`` per group of paired rows (``NaN`` forecasts or actuals do not count)."""
    paired = ~(np.isnan(actual) | np.isnan(forecast))
    err = np.where(paired, forecast - actual, 0.0)
    act = np.where(paired, actual, 0.0)
    return [
        np.bincount(group, weights=np.abs(err), minlength=n_groups),
        np.bincount(group, weights=err * err, minlength=n_groups),
        np.bincount(group, weights=err, minlength=n_groups),
        np.bincount(group, weights=np.abs(act), minlength=n_groups),
        np.bincount(group, weights=act, minlength=n_groups),
        np.bincount(group, weights=paired, minlength=n_groups),
    ]


def _cells(scored: ScoredForecasts) -> pd.DataFrame:
    """Sums of the error terms and coverage hits per origin x tier x category x horizon band x model.

    One pass of ``np.bincount`` over the scored rows (in chunks); every daily table is a group-by of
    these few cells.
    """
    if "cells" in scored._cache:
        return scored._cache["cells"]  # type: ignore[return-value]
    origin = scored.days(C.ORIGIN_DATE)
    origin_first = int(origin.min()) if len(origin) else 0
    keys = [scored.codes(C.TIER), scored.codes(C.CATEGORY), scored.codes(HORIZON_BAND), scored.codes(C.MODEL)]
    n_origins = int(origin.max()) - origin_first + 1 if len(origin) else 1
    cell, size = _combine([(origin - origin_first, n_origins), *((k.codes, k.size) for k in keys)])
    cell, n_cells = _compact(cell, size)
    source = scored.source
    forecast_all = source[C.FORECAST].to_numpy(dtype=np.float64)
    p90_all = source[C.P90].to_numpy(dtype=np.float64)
    p95_all = source[C.P95].to_numpy(dtype=np.float64)
    totals = np.zeros((len(_CELL_SUMS), n_cells))
    for lo in range(0, scored.n_scored, _CHUNK_ROWS):
        part = slice(lo, lo + _CHUNK_ROWS)
        rows, group, actual = scored.rows[part], cell[part], scored.actual[part]
        sums = _term_sums(group, n_cells, actual, forecast_all[rows])
        for upper in (p90_all[rows], p95_all[rows]):
            known = ~np.isnan(upper)
            sums.append(np.bincount(group, weights=known & (actual <= upper), minlength=n_cells))
            sums.append(np.bincount(group, weights=known, minlength=n_cells))
        sums.append(np.bincount(group, minlength=n_cells))
        totals += np.vstack(sums)
    first = np.zeros(n_cells, dtype=np.int64)  # a row of each cell, to decode its keys
    first[cell[::-1]] = np.arange(len(cell))[::-1]
    out = pd.DataFrame(dict(zip(_CELL_SUMS, totals, strict=True)))
    out[C.ORIGIN_DATE] = _days_to_datetime(origin[first])
    for name, key in zip(_CELL_KEYS[1:], keys, strict=True):
        out[name] = key.values[key.codes[first]] if len(first) else key.values[:0]
    if len(out):
        out[C.TIER] = (
            pd.Series(out[C.TIER].tolist()).infer_objects() if out[C.TIER].dtype == object else out[C.TIER]
        )
    out[HORIZON_BAND] = pd.Categorical(out[HORIZON_BAND], categories=list(HORIZON_BAND_LABELS), ordered=True)
    out[PAIR_COUNT] = out[PAIR_COUNT].astype(np.int64)
    scored._cache["cells"] = out
    return out


def _daily_table(cells: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """``metrics_by_group`` plus P90/P95 coverage per group, rolled up from the cells."""
    sums = cells.groupby(keys, observed=True, dropna=False, sort=True)[list(_CELL_SUMS)].sum()
    table = metrics_from_sums(sums)
    for name, hits, n in (
        (COVERAGE_P90, _COV_HITS_P90, _COV_N_P90),
        (COVERAGE_P95, _COV_HITS_P95, _COV_N_P95),
    ):
        table[name] = sums[hits] / sums[n].where(sums[n] > 0)
    return table.reset_index()


class _Totals(NamedTuple):
    """Window totals (lead-time or weekly) of the complete windows: keys decoded lazily."""

    group_row: np.ndarray  # a scored row of each complete window (its first), for the keys
    forecast: np.ndarray
    actual: np.ndarray
    week_day: np.ndarray | None  # Monday of each weekly window (epoch day)


def _window_totals(
    scored: ScoredForecasts, select: np.ndarray | None, extra: tuple[np.ndarray, int] | None, n_days: int
) -> _Totals:
    """Sums of forecast and actual per SKU x warehouse x origin x model x tier (x extra key) window,
    keeping the windows of exactly ``n_days`` rows, in order of first appearance (as a group-by with
    ``sort=False``). ``NaN`` forecasts count as rows and add nothing."""
    rows_idx = np.flatnonzero(select) if select is not None else np.arange(scored.n_scored)
    sku, wh = scored.sku.codes[rows_idx], scored.warehouse.codes[rows_idx]
    origin = scored.days(C.ORIGIN_DATE)[rows_idx]
    origin_first = int(origin.min()) if len(origin) else 0
    n_origins = int(origin.max()) - origin_first + 1 if len(origin) else 1
    model, tier = scored.codes(C.MODEL), scored.codes(C.TIER)
    parts = [
        (sku, scored.sku.size),
        (wh, scored.warehouse.size),
        (origin - origin_first, n_origins),
        (model.codes[rows_idx], model.size),
        (tier.codes[rows_idx], tier.size),
    ]
    if extra is not None:
        parts.append((extra[0][rows_idx], extra[1]))
    code, _ = _combine(parts)
    group, uniques = pd.factorize(code, sort=False)
    del code
    n_groups = len(uniques)
    group = _small(group, n_groups)
    size = np.bincount(group, minlength=n_groups)
    forecast = scored.source[C.FORECAST].to_numpy(dtype=np.float64)[scored.rows[rows_idx]]
    f_sum = np.bincount(group, weights=np.nan_to_num(forecast, nan=0.0), minlength=n_groups)
    a_sum = np.bincount(group, weights=scored.actual[rows_idx], minlength=n_groups)
    first = np.zeros(n_groups, dtype=np.int64)
    first[group[::-1]] = rows_idx[::-1]
    keep = size == n_days
    week = None
    if extra is not None:
        week = scored._cache["week_day"][first[keep]]  # type: ignore[index]
    return _Totals(first[keep], f_sum[keep], a_sum[keep], week)


def _lead_time(scored: ScoredForecasts, lead_time: int) -> _Totals:
    key = ("lead_time", lead_time)
    if key not in scored._cache:
        horizon = scored.column(C.HORIZON).astype(np.float64)
        scored._cache[key] = _window_totals(scored, horizon <= lead_time, None, lead_time)
    return scored._cache[key]  # type: ignore[return-value]


def _weekly(scored: ScoredForecasts) -> _Totals:
    if "weekly" not in scored._cache:
        day = scored.days(C.TARGET_DATE)
        monday = day - (day + 3) % DAYS_PER_WEEK  # 1970-01-01 was a Thursday
        scored._cache["week_day"] = monday
        first = int(monday.min()) if len(monday) else 0
        n_weeks = (int(monday.max()) - first) // DAYS_PER_WEEK + 1 if len(monday) else 1
        week = (monday - first) // DAYS_PER_WEEK
        scored._cache["weekly"] = _window_totals(scored, None, (week, n_weeks), DAYS_PER_WEEK)
    return scored._cache["weekly"]  # type: ignore[return-value]


def _totals_frame(scored: ScoredForecasts, totals: _Totals) -> pd.DataFrame:
    """The window totals as a frame: SKU x warehouse x origin x model x tier (x week) keys and the sums."""
    first = totals.group_row
    out = pd.DataFrame(
        {
            C.SKU: scored.sku.values[scored.sku.codes[first]] if len(first) else scored.sku.values[:0],
            C.WAREHOUSE_ID: scored.warehouse.values[scored.warehouse.codes[first]]
            if len(first)
            else scored.warehouse.values[:0],
            C.ORIGIN_DATE: _days_to_datetime(scored.days(C.ORIGIN_DATE)[first]),
            C.MODEL: scored.source[C.MODEL].to_numpy()[scored.rows[first]],
            C.TIER: scored.source[C.TIER].to_numpy()[scored.rows[first]],
        }
    )
    if totals.week_day is not None:
        out[WEEK_START] = _days_to_datetime(totals.week_day)
    out[C.FORECAST] = totals.forecast
    out[ACTUAL] = totals.actual
    return out


def _as_scored(scored: ScoredForecasts | pd.DataFrame) -> ScoredForecasts:
    """A scored frame (forecast columns plus ``actual``) wrapped as :class:`ScoredForecasts`."""
    if isinstance(scored, ScoredForecasts):
        return scored
    rows = np.arange(len(scored))
    products = pd.DataFrame({C.SKU: pd.Series(dtype=object), C.CATEGORY: pd.Series(dtype=object)})
    return ScoredForecasts(
        as_of=pd.NaT,  # type: ignore[arg-type]
        n_forecasts=len(scored),
        n_not_due=0,
        n_scored=len(scored),
        n_zero_filled=0,
        n_uncovered=0,
        source=scored,
        rows=rows,
        actual=scored[ACTUAL].to_numpy(dtype=np.float64),
        products=products,
        sku=_codes(scored[C.SKU]),
        warehouse=_codes(scored[C.WAREHOUSE_ID]),
    )


def lead_time_totals(
    scored: ScoredForecasts | pd.DataFrame, lead_time: int = DEFAULT_LEAD_TIME
) -> pd.DataFrame:
    """Lead-time demand: forecast and actual summed over horizons ``1 .. lead_time`` of each origin.

    Args:
        scored: Scored forecasts (or their frame).
        lead_time: Lead time ``L`` in days.

    Returns:
        One row per SKU x warehouse x origin x model x tier with a complete window: the keys, ``forecast``
        and ``actual``.

    Raises:
        ValueError: If ``lead_time`` is below 1.
    """
    if lead_time < 1:
        raise ValueError(f"lead_time must be at least 1, got {lead_time}")
    s = _as_scored(scored)
    return _totals_frame(s, _lead_time(s, lead_time))


def weekly_totals(scored: ScoredForecasts | pd.DataFrame) -> pd.DataFrame:
    """Weekly totals: forecast and actual summed per ISO week (Monday start) of the target dates.

    Args:
        scored: Scored forecasts (or their frame).

    Returns:
        One row per SKU x warehouse x origin x model x tier x complete week: the keys, ``week_start`` (the
        Monday), ``forecast`` and ``actual``.
    """
    s = _as_scored(scored)
    return _totals_frame(s, _weekly(s))


def _totals_table(scored: ScoredForecasts, totals: _Totals, by_tier: bool) -> pd.DataFrame:
    """``metrics_by_group`` of window totals, per tier or over all windows (one row; empty without any)."""
    n = len(totals.forecast)
    if by_tier:
        tier = scored.codes(C.TIER)
        group, n_groups = tier.codes[totals.group_row], tier.size
    else:
        group, n_groups = np.zeros(n, dtype=np.int64), 1
    sums = pd.DataFrame(
        dict(zip(SUM_COLUMNS, _term_sums(group, n_groups, totals.actual, totals.forecast), strict=True))
    )
    present = np.bincount(group, minlength=n_groups) > 0
    sums = sums.loc[present]
    table = metrics_from_sums(sums).reset_index(drop=True)
    if by_tier:
        table.insert(0, C.TIER, tier.values[np.flatnonzero(present)])
        if table[C.TIER].dtype == object:
            table[C.TIER] = table[C.TIER].infer_objects()
    return table


def totals_overall(scored: ScoredForecasts, lead_time: int = DEFAULT_LEAD_TIME) -> dict[str, pd.DataFrame]:
    """Metrics of the lead-time and weekly totals over all tiers (the ``all`` rows of those tables).

    Args:
        scored: Output of :func:`score_forecasts`.
        lead_time: Lead time ``L`` of the lead-time level.

    Returns:
        ``{"lead_time": ..., "weekly": ...}``: one row of ``metrics_by_group`` columns each (no key
        column), empty when there is no complete window.
    """
    return {
        LEAD_TIME: _totals_table(scored, _lead_time(scored, lead_time), by_tier=False),
        WEEKLY: _totals_table(scored, _weekly(scored), by_tier=False),
    }


def accuracy_tables(scored: ScoredForecasts, lead_time: int = DEFAULT_LEAD_TIME) -> dict[str, pd.DataFrame]:
    """Accuracy tables of scored forecasts, by the cuts the business reads.

    The error terms are summed once per origin x tier x category x horizon band x model cell
    (``np.bincount`` on integer codes); each daily table is a group-by of those cells. Lead-time and
    weekly windows are group codes of the scored rows, summed the same way.

    Args:
        scored: Output of :func:`score_forecasts`.
        lead_time: Lead time ``L`` (days) of the lead-time demand level.

    Returns:
        Tables keyed by :data:`TABLE_NAMES`:

        * ``overall``: one row: ``wmape``, ``mae``, ``rmse``, ``bias``, ``n_obs``, ``coverage_p90``,
          ``coverage_p95`` (daily level), then ``lead_time_wmape`` and ``weekly_wmape``;
        * ``tier``, ``category``, ``horizon_band``, ``model``, ``tier_by_origin`` (``origin_date`` x
          ``tier``): the group column(s) and the daily-level metrics and coverages;
        * ``lead_time`` and ``weekly``: per tier, ``metrics_by_group`` of the aggregated totals.

    Raises:
        ValueError: If ``lead_time`` is below 1.
    """
    if lead_time < 1:
        raise ValueError(f"lead_time must be at least 1, got {lead_time}")
    cells = _cells(scored).assign(**{_ALL: 0})
    tables: dict[str, pd.DataFrame] = {}
    overall = _daily_table(cells, [_ALL]).drop(columns=_ALL)
    if overall.empty:
        overall = pd.DataFrame({c: [0 if c == N_OBS else np.nan] for c in TABLE_METRIC_COLUMNS})
    over = totals_overall(scored, lead_time)
    overall[LEAD_TIME_WMAPE] = float(over[LEAD_TIME][WMAPE].iloc[0]) if len(over[LEAD_TIME]) else np.nan
    overall[WEEKLY_WMAPE] = float(over[WEEKLY][WMAPE].iloc[0]) if len(over[WEEKLY]) else np.nan
    tables[OVERALL] = overall
    tables[BY_TIER] = _daily_table(cells, [C.TIER])
    tables[BY_CATEGORY] = _daily_table(cells, [C.CATEGORY])
    tables[BY_HORIZON_BAND] = _daily_table(cells, [HORIZON_BAND])
    tables[BY_MODEL] = _daily_table(cells, [C.MODEL])
    tables[BY_TIER_AND_ORIGIN] = _daily_table(cells, [C.ORIGIN_DATE, C.TIER])
    tables[LEAD_TIME] = _totals_table(scored, _lead_time(scored, lead_time), by_tier=True)
    tables[WEEKLY] = _totals_table(scored, _weekly(scored), by_tier=True)
    return tables


# --- drift ---------------------------------------------------------------------------------------------
_WMAPE_LEVELS = {
    "daily": (WMAPE, BY_TIER),
    LEAD_TIME: (LEAD_TIME_WMAPE, LEAD_TIME),
    WEEKLY: (WEEKLY_WMAPE, WEEKLY),
}


def _exceeds(value: float, limit: float) -> bool:
    return not math.isnan(value) and value > limit


def performance_drift(
    tables: dict[str, pd.DataFrame],
    wmape_max: float = 0.25,
    bias_max: float = 0.10,
    *,
    level: str = LEAD_TIME,
    coverage_tolerance: float | None = 0.05,
) -> list[str]:
    """Reasons to alert on forecast performance (empty list: all good).

    Checks, overall and per tier (``NaN`` metrics, e.g. a tier without volume, raise nothing):

    * WMAPE above ``wmape_max`` at ``level``: ``lead_time`` (default: the level replenishment orders on;
      SKU x day WMAPE of intermittent series is routinely far above 25%), ``weekly`` or ``daily``;
    * absolute daily bias above ``bias_max`` (over- or under-forecasting);
    * with ``coverage_tolerance`` set: P90 coverage below ``0.90 - tolerance`` or P95 coverage below
      ``0.95 - tolerance`` (quantiles too narrow, so safety stocks too low), overall only;
    * no scored forecast at all.

    Args:
        tables: Output of :func:`accuracy_tables`.
        wmape_max: Highest acceptable WMAPE.
        bias_max: Highest acceptable absolute relative bias.
        level: ``lead_time``, ``weekly`` or ``daily``: the level of the WMAPE check.
        coverage_tolerance: Allowed shortfall of quantile coverage, or None to skip the check.

    Returns:
        Human-readable reasons, overall first.

    Raises:
        ValueError: If ``level`` is unknown.
    """
    if level not in _WMAPE_LEVELS:
        raise ValueError(f"level must be one of {sorted(_WMAPE_LEVELS)}, got {level!r}")
    overall = tables[OVERALL].iloc[0]
    if overall[N_OBS] == 0:
        return ["no scored forecasts"]
    overall_col, tier_table = _WMAPE_LEVELS[level]
    reasons = []
    if _exceeds(float(overall[overall_col]), wmape_max):
        reasons.append(f"overall {level} WMAPE {overall[overall_col]:.3f} > {wmape_max:.3f}")
    if _exceeds(abs(float(overall[BIAS])), bias_max):
        reasons.append(f"overall bias {overall[BIAS]:+.3f} beyond +/-{bias_max:.3f}")
    if coverage_tolerance is not None:
        for column, nominal in ((COVERAGE_P90, 0.90), (COVERAGE_P95, 0.95)):
            floor = nominal - coverage_tolerance
            value = float(overall[column])
            if not math.isnan(value) and value < floor:
                reasons.append(f"overall {column} {value:.3f} < {floor:.3f}")
    for row in tables[tier_table].itertuples(index=False):
        value = float(getattr(row, WMAPE))
        if _exceeds(value, wmape_max):
            reasons.append(f"tier {getattr(row, C.TIER)} {level} WMAPE {value:.3f} > {wmape_max:.3f}")
    for row in tables[BY_TIER].itertuples(index=False):
        value = float(getattr(row, BIAS))
        if _exceeds(abs(value), bias_max):
            reasons.append(f"tier {getattr(row, C.TIER)} bias {value:+.3f} beyond +/-{bias_max:.3f}")
    return reasons


def _shares(counts: np.ndarray) -> np.ndarray:
    total = counts.sum()
    return np.maximum(counts / total, PSI_EPSILON)


def _psi_from_counts(expected_counts: np.ndarray, actual_counts: np.ndarray) -> float:
    if expected_counts.sum() == 0 or actual_counts.sum() == 0:
        return float("nan")
    e, a = _shares(expected_counts), _shares(actual_counts)
    return float(np.sum((a - e) * np.log(a / e)))


def psi(expected: np.ndarray, actual: np.ndarray, bins: int = 10) -> float:
    """Population stability index of ``actual`` against ``expected`` (numeric values).

    ``PSI = sum_b (a_b - e_b) * ln(a_b / e_b)`` over bins ``b`` cut at the quantiles
    ``1/bins, 2/bins, ...`` of ``expected``; bin ``b`` is ``(edge_{b-1}, edge_b]`` with open outer bins, so
    values beyond the expected range land in the first or last bin. Repeated edges (ties, e.g. many zero
    demand days) are merged, so a discrete variable gets fewer, wider bins. Shares are floored at
    :data:`PSI_EPSILON` so an empty bin gives a large finite term. ``NaN`` values are dropped. Rule of
    thumb: < 0.1 stable, 0.1-0.2 moderate shift, > 0.2 significant shift.

    Args:
        expected: Reference sample (e.g. the training window).
        actual: Recent sample.
        bins: Number of quantile bins.

    Returns:
        PSI (0 for identical distributions); ``NaN`` when either sample is empty after dropping ``NaN``.

    Raises:
        ValueError: If ``bins`` is below 2.
    """
    if bins < 2:
        raise ValueError(f"bins must be at least 2, got {bins}")
    e = np.asarray(expected, dtype=np.float64).ravel()
    a = np.asarray(actual, dtype=np.float64).ravel()
    e, a = e[~np.isnan(e)], a[~np.isnan(a)]
    if e.size == 0 or a.size == 0:
        return float("nan")
    edges = np.unique(np.quantile(e, np.linspace(0.0, 1.0, bins + 1)[1:-1]))
    n_bins = edges.size + 1
    e_counts = np.bincount(np.searchsorted(edges, e, side="left"), minlength=n_bins).astype(np.float64)
    a_counts = np.bincount(np.searchsorted(edges, a, side="left"), minlength=n_bins).astype(np.float64)
    return _psi_from_counts(e_counts, a_counts)


def _categorical_psi(expected: pd.Series, actual: pd.Series) -> float:
    """PSI over the categories of a non-numeric column (missing values dropped)."""
    e, a = expected.dropna().astype(str), actual.dropna().astype(str)
    if e.empty or a.empty:
        return float("nan")
    levels, codes = np.unique(np.concatenate([e.to_numpy(), a.to_numpy()]), return_inverse=True)
    e_counts = np.bincount(codes[: len(e)], minlength=levels.size).astype(np.float64)
    a_counts = np.bincount(codes[len(e) :], minlength=levels.size).astype(np.float64)
    return _psi_from_counts(e_counts, a_counts)


def feature_drift(
    train_features: pd.DataFrame,
    recent_features: pd.DataFrame,
    columns: Sequence[str],
    threshold: float = 0.2,
    bins: int = 10,
) -> pd.DataFrame:
    """PSI of each feature column, recent rows against training rows.

    Numeric columns use :func:`psi` (quantile bins of the training values); other columns (categorical
    features) compare category shares, with the same epsilon floor.

    Args:
        train_features: Feature rows the model was trained on.
        recent_features: Recent feature rows (e.g. the latest origins).
        columns: Feature columns to check.
        threshold: PSI above which a column is flagged.
        bins: Quantile bins of numeric columns.

    Returns:
        One row per column, in the order given: ``feature``, ``psi``, ``flagged`` (``psi > threshold``),
        ``n_expected`` and ``n_actual`` (non-missing values compared).
    """
    rows = []
    for column in columns:
        train, recent = train_features[column], recent_features[column]
        numeric = pd.api.types.is_numeric_dtype(train) and pd.api.types.is_numeric_dtype(recent)
        if numeric:
            value = psi(
                train.to_numpy(dtype=np.float64, na_value=np.nan),
                recent.to_numpy(dtype=np.float64, na_value=np.nan),
                bins,
            )
        else:
            value = _categorical_psi(train, recent)
        rows.append(
            (column, value, bool(value > threshold), int(train.notna().sum()), int(recent.notna().sum()))
        )
    return pd.DataFrame(rows, columns=list(FEATURE_DRIFT_COLUMNS))
