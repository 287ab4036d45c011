"""Event uplifts learned from every past instance: holidays by days to and since them, campaigns by discount.

The statistical models forecast a level (times the weekday profile) and know nothing of the calendar; blended
with the LightGBM, which sees the target day's holiday and campaign, they pulled the peaks down, and alone
(tier 3, launches) they missed them entirely. :class:`EventUplift` is the missing part, multiplied onto the
statistical and launch-profile forecasts of the target days:

* **Holidays.** Every day within ``HOLIDAY_OFFSETS`` of a holiday of the calendar gets the key ``"<name>
  <offset>"`` (the nearest holiday wins; Black Friday is ``"Thanksgiving Day +1"`` in the US calendar).
  The uplift of a key and category is the demand on all its past days over their *baseline*, pooled over
  the category's SKUs and every past instance in the history (two Black Fridays in two years of history,
  not the one a training-origin grid happens to cover), shrunk towards the warehouse's uplift of the key,
  which is shrunk towards 1.
* **Campaigns.** The lift per discount point of a category, ``lift = 1 + slope * discount / 100``, from
  every past SKU-day under a campaign (sitewide or of the SKU) against its baseline, shrunk the same way.

The baseline of a SKU-day is the SKU's mean demand on its *ordinary* days (no event key, no campaign, not
within ``POST_CAMPAIGN_DAYS`` after one) ``BASELINE_GAP`` to ``BASELINE_GAP + BASELINE_DAYS - 1`` days
before it, times the warehouse's weekday index: what a statistical model fitted a few weeks before would
have forecast. Everything is read from the history up to the origin of the fit (no leakage); the keys and
discounts of target days come from the calendar and the campaign table, which run ahead.
"""

from dataclasses import dataclass

import numpy as np
import pandas as pd

from demand_platform.calendar import HOLIDAY_OFFSETS, NO_EVENT, holiday_keys
from demand_platform.days import weekday
from demand_platform.features import SalesPanel, campaign_discount, holiday_calendar
from demand_platform.tables import SourceTables

BASELINE_GAP = 8
BASELINE_DAYS = 28
#: Ordinary days the baseline window needs (else the SKU-day is not used).
MIN_BASELINE_DAYS = 10
#: Days after a campaign that are not ordinary (the pull-forward dip).
POST_CAMPAIGN_DAYS = 7
#: Pseudo baseline units pulling a category's uplift towards the warehouse's, and that towards 1.
UPLIFT_PRIOR_UNITS = 30.0
UPLIFT_RANGE = (0.2, 10.0)
SLOPE_RANGE = (0.0, 10.0)


@dataclass(frozen=True)
class HorizonEvents:
    """The events of some days: a key per day and the campaign discount of each SKU on each day.

    Attributes:
        first_day: Epoch day of column 0.
        keys: ``[n_days]`` event key per day (``NO_EVENT`` for none).
        discount: ``[n_skus, n_days]`` campaign discount in percent (0 for none).
    """

    first_day: int
    keys: np.ndarray
    discount: np.ndarray


def horizon_events(
    tables: SourceTables, warehouse_id: object, skus: np.ndarray, first_day: int, n_days: int
) -> HorizonEvents:
    """The event keys and campaign discounts of ``n_days`` days from ``first_day`` (calendar and campaigns)."""
    hol_days, hol_names = holiday_calendar(tables, first_day - HOLIDAY_OFFSETS[1], first_day + n_days + 7)
    return HorizonEvents(
        first_day=first_day,
        keys=holiday_keys(hol_days, hol_names, first_day, n_days),
        discount=campaign_discount(tables, warehouse_id, skus, first_day, n_days),
    )


def _trailing_mean(values: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean of ``values`` over the ``counts`` cells ``BASELINE_GAP .. BASELINE_GAP + BASELINE_DAYS - 1`` days
    before each column (cumulative sums behind ``BASELINE_GAP + BASELINE_DAYS`` leading zero columns, then
    two shifted slices: one pass over the matrix, no gather), and the number of cells."""
    n, n_days = values.shape
    lead = BASELINE_GAP + BASELINE_DAYS
    first, last = lead - BASELINE_GAP, 0  # slice starts of the window's end and start
    out = []
    for matrix in (values, counts):
        csum = np.zeros((n, lead + n_days), dtype=np.float64)
        np.cumsum(matrix, axis=1, out=csum[:, lead:])
        out.append(csum[:, first : first + n_days] - csum[:, last : last + n_days])
    total, count = out
    return np.divide(total, count, out=np.zeros_like(total), where=count > 0), count


def _shrunk(num: np.ndarray, den: np.ndarray, prior: np.ndarray | float) -> np.ndarray:
    """``(num + P * prior) / (den + P)`` with ``P = UPLIFT_PRIOR_UNITS``."""
    return (num + UPLIFT_PRIOR_UNITS * prior) / (den + UPLIFT_PRIOR_UNITS)


@dataclass(frozen=True)
class EventUplift:
    """Uplift per holiday key x category and lift per campaign discount point x category.

    Attributes:
        keys: The holiday keys seen in the history.
        categories: The categories; column ``len(categories)`` is the warehouse's (any category).
        uplift: ``[len(keys), len(categories) + 1]`` demand multiplier of each key.
        slope: ``[len(categories) + 1]`` lift per discount point / 100 (``lift = 1 + slope * d / 100``).
        days: ``[len(keys)]`` past days of each key the uplift was learned from.
    """

    keys: tuple[str, ...]
    categories: tuple[str, ...]
    uplift: np.ndarray
    slope: np.ndarray
    days: np.ndarray

    @classmethod
    def none(cls) -> "EventUplift":
        """No event effect (every multiplier 1)."""
        return cls((), (), np.ones((0, 1)), np.zeros(1), np.zeros(0, dtype=np.int64))

    def _category_column(self, category: np.ndarray) -> np.ndarray:
        index = pd.Index(self.categories).get_indexer(pd.Index(pd.Series(category, dtype=object).astype(str)))
        return np.where(index >= 0, index, len(self.categories))

    def multiplier(self, category: np.ndarray, keys: np.ndarray, discount: np.ndarray) -> np.ndarray:
        """``[n, n_days]`` multiplier of SKUs of ``category`` on days with event ``keys`` and ``discount``."""
        column = self._category_column(category)
        key_index = pd.Index(self.keys).get_indexer(pd.Index(keys.astype(object)))
        out = np.ones(discount.shape)
        known = key_index >= 0
        if known.any():
            out[:, known] = self.uplift[key_index[known]][:, column].T
        out *= 1.0 + self.slope[column][:, None] * discount / 100.0
        return out

    def campaign_lift(self, category: np.ndarray, discount: np.ndarray) -> np.ndarray:
        """``[n, n_days]`` lift ``1 + slope * discount / 100`` of SKUs of ``category`` (1 without campaign)."""
        return 1.0 + self.slope[self._category_column(category)][:, None] * discount / 100.0

    def table(self) -> pd.DataFrame:
        """Long frame (key, category, uplift, days) and the campaign slopes as key ``"campaign slope"``."""
        cats = [*self.categories, "all"]
        rows = [
            (key, cat, float(self.uplift[k, c]), int(self.days[k]))
            for k, key in enumerate(self.keys)
            for c, cat in enumerate(cats)
        ]
        rows += [("campaign slope", cat, float(self.slope[c]), 0) for c, cat in enumerate(cats)]
        return pd.DataFrame(rows, columns=["event", "category", "uplift", "days"])


def fit_event_uplift(quantity: np.ndarray, category: np.ndarray, events: HorizonEvents) -> EventUplift:
    """Learn the uplifts from a history: ``quantity`` ``[n, n_days]`` (NaN where the SKU has no row), the
    days' ``events`` (same SKUs and days), each SKU's ``category``.

    Returns:
        The :class:`EventUplift` (no effect where the history has no instance).
    """
    n, n_days = quantity.shape
    if n == 0 or n_days == 0:
        return EventUplift.none()
    observed = ~np.isnan(quantity)
    y = np.where(observed, quantity, 0.0)
    event_day = events.keys != NO_EVENT
    promo = events.discount > 0
    after_promo = np.zeros_like(promo)
    for lag in range(1, POST_CAMPAIGN_DAYS + 1):
        after_promo[:, lag:] |= promo[:, :-lag]
    ordinary = observed & ~event_day[None, :] & ~promo & ~after_promo
    level, count = _trailing_mean(np.where(ordinary, y, 0.0), ordinary.astype(np.float64))

    # Weekday index of the ordinary days (mean 1), so a baseline is the level on the day's weekday.
    dow = (weekday(events.first_day) + np.arange(n_days)) % 7
    per_day = np.where(ordinary, y, 0.0).sum(axis=0)
    cells = ordinary.sum(axis=0)
    rate = np.array([per_day[dow == d].sum() / max(cells[dow == d].sum(), 1) for d in range(7)])
    index = rate / rate.mean() if rate.mean() > 0 else np.ones(7)
    baseline = level * index[dow][None, :]
    usable = observed & (count >= MIN_BASELINE_DAYS) & (baseline > 0)

    categories = tuple(sorted({str(c) for c in category if c is not None and not pd.isna(c)}))
    column = pd.Index(categories).get_indexer(pd.Index(pd.Series(category, dtype=object).astype(str)))
    n_cols = len(categories) + 1
    # One-hot [n, n_cols] of each SKU's category, the last column every SKU: G.T @ x sums x per category.
    groups = np.zeros((n, n_cols))
    groups[np.flatnonzero(column >= 0), column[column >= 0]] = 1.0
    groups[:, -1] = 1.0

    # Campaign slope: sum(y - b) / sum(b * d / 100) on campaign days that are not event days.
    on_promo = usable & promo & ~event_day[None, :]
    excess = groups.T @ np.where(on_promo, y - baseline, 0.0).sum(axis=1)
    weight = groups.T @ np.where(on_promo, baseline * events.discount / 100.0, 0.0).sum(axis=1)
    slope_all = float(np.clip(excess[-1] / (weight[-1] + UPLIFT_PRIOR_UNITS), *SLOPE_RANGE))
    slope = np.clip(_shrunk(excess, weight, slope_all), *SLOPE_RANGE)
    slope[-1] = slope_all

    # Holiday keys: y / b on event days (the campaign lift divided out), per key x category.
    event_columns = np.flatnonzero(event_day)
    keys_of_columns = events.keys[event_columns].astype(str)
    keys = tuple(sorted(set(keys_of_columns.tolist())))
    if not keys:
        return EventUplift((), categories, np.ones((0, n_cols)), slope, np.zeros(0, dtype=np.int64))
    sku_column = np.where(column >= 0, column, n_cols - 1)
    lift = 1.0 + slope[sku_column][:, None] * events.discount[:, event_columns] / 100.0
    mask = usable[:, event_columns]
    y_by_day = groups.T @ np.where(mask, y[:, event_columns] / lift, 0.0)  # [n_cols, n_event_days]
    b_by_day = groups.T @ np.where(mask, baseline[:, event_columns], 0.0)
    key_of_day = pd.Index(keys).get_indexer(pd.Index(keys_of_columns))
    y_sum = np.zeros((n_cols, len(keys)))
    b_sum = np.zeros((n_cols, len(keys)))
    np.add.at(y_sum.T, key_of_day, y_by_day.T)
    np.add.at(b_sum.T, key_of_day, b_by_day.T)
    overall = _shrunk(y_sum[-1], b_sum[-1], 1.0)  # [n_keys]
    uplift = np.clip(_shrunk(y_sum, b_sum, overall[None, :]), *UPLIFT_RANGE).T  # [n_keys, n_cols]
    uplift[:, -1] = np.clip(overall, *UPLIFT_RANGE)
    days = np.bincount(key_of_day, minlength=len(keys)).astype(np.int64)
    return EventUplift(keys, categories, uplift, slope, days)


def history_events(tables: SourceTables, warehouse_id: object, panel: SalesPanel) -> HorizonEvents:
    """The events of a sales panel's SKUs and days (what :func:`fit_event_uplift` learns from)."""
    return horizon_events(tables, warehouse_id, panel.skus, panel.start_day, panel.n_days)


def uplift_as_of(panel: SalesPanel, category: np.ndarray, events: HorizonEvents, day: int) -> EventUplift:
    """The uplifts learned from the panel's days up to ``day`` (``events`` from :func:`history_events`)."""
    end = day - panel.start_day + 1
    if end <= 0:
        return EventUplift.none()
    return fit_event_uplift(
        panel.quantity[:, :end],
        category,
        HorizonEvents(events.first_day, events.keys[:end], events.discount[:, :end]),
    )


def with_campaign_lift(
    ml: np.ndarray, ml_without: np.ndarray, uplift: EventUplift, category: np.ndarray, discount: np.ndarray
) -> np.ndarray:
    """The ML model's forecasts ``[n, H]`` with the campaign days replaced by its forecast of the same day
    without the campaign (``ml_without``) times the campaign's lift learned from every past campaign.

    The LightGBM learns a campaign's effect only from the campaigns near its training origins, and a
    discount deeper than any sitewide one it saw (a 30% sale after sales of 5-20%) lies outside its trees:
    it forecast such a sale 29% short. The lift per discount point, pooled over every campaign of the
    history, extrapolates linearly.
    """
    on_campaign = discount > 0
    if not on_campaign.any():
        return ml
    return np.where(on_campaign, ml_without * uplift.campaign_lift(category, discount), ml)
