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
* **Campaigns.** The lift of a SKU-day under a campaign is ``1 + slope[category] * kind[kind] *
  into[day into the campaign] * discount / 100``: a lift per discount point of the category, a factor of
  the campaign's kind (scope, sitewide or of the SKU, and ``campaign_type``: a flash sale and a clearance of
  the same discount need not lift alike) and of its first, second and later days. All three are learned from
  every past SKU-day under a campaign against its baseline, by alternating their ratio estimates, each
  shrunk towards 1 (the slope towards the warehouse's).
* **After a campaign.** A campaign pulls demand forward: on the ``POST_CAMPAIGN_DAYS`` days after one, the
  multiplier is ``1 - dip[days after] * discount / 100``, the depths learned from every past such day.

The baseline of a SKU-day is the SKU's mean demand on its *ordinary* days (no event key, no campaign, not
within ``POST_CAMPAIGN_DAYS`` after one) ``BASELINE_GAP`` to ``BASELINE_GAP + BASELINE_DAYS - 1`` days
before it, times the warehouse's weekday index: what a statistical model fitted a few weeks before would
have forecast. Everything is read from the history up to the origin of the fit (no leakage); the keys and
discounts of target days come from the calendar and the campaign table, which run ahead.
"""

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from demand_platform.calendar import HOLIDAY_OFFSETS, NO_EVENT, holiday_keys
from demand_platform.days import weekday
from demand_platform.features import SalesPanel, campaign_events, holiday_calendar
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
#: Range of a campaign kind's and a campaign day's factor on the slope.
FACTOR_RANGE = (0.2, 5.0)
#: Days into a campaign with a factor of their own: the first, the second, the third and later.
INTO_BUCKETS = 3
#: Alternating updates of the slopes, kind factors and day-into factors.
CAMPAIGN_ROUNDS = 3
#: Lowest multiplier of a day after a campaign.
DIP_FLOOR = 0.2


@dataclass(frozen=True)
class HorizonEvents:
    """The events of some days: a key per day and the campaign of each SKU on each day.

    Attributes:
        first_day: Epoch day of column 0.
        keys: ``[n_days]`` event key per day (``NO_EVENT`` for none).
        discount: ``[n_skus, n_days]`` campaign discount in percent (0 for none).
        kind: ``[n_skus, n_days]`` index into ``kinds`` of the campaign (-1 for none); None: one kind.
        kinds: The campaign kinds (``features.campaign_kind_names``).
        day_into: ``[n_skus, n_days]`` day of the campaign (1 = its first; 0 for none); None: unknown.
        days_after: ``[n_skus, n_days]`` days since the SKU's last campaign day, ``1 .. POST_CAMPAIGN_DAYS``
            on days without a campaign (0 elsewhere); None: no campaign ended before.
        after_discount: ``[n_skus, n_days]`` the discount of that last campaign day (0 elsewhere).
    """

    first_day: int
    keys: np.ndarray
    discount: np.ndarray
    kind: np.ndarray | None = None
    kinds: tuple[str, ...] = ()
    day_into: np.ndarray | None = None
    days_after: np.ndarray | None = None
    after_discount: np.ndarray | None = None

    def _cut(self, keys: np.ndarray, cut: Callable[[np.ndarray], np.ndarray]) -> "HorizonEvents":
        """These events with ``keys`` and every ``[n_skus, n_days]`` matrix passed through ``cut``."""

        def optional(matrix: np.ndarray | None) -> np.ndarray | None:
            return None if matrix is None else cut(matrix)

        return HorizonEvents(
            self.first_day,
            keys,
            cut(self.discount),
            optional(self.kind),
            self.kinds,
            optional(self.day_into),
            optional(self.days_after),
            optional(self.after_discount),
        )

    def head(self, n_days: int) -> "HorizonEvents":
        """The first ``n_days`` days."""
        return self._cut(self.keys[:n_days], lambda m: m[:, :n_days])

    def take(self, rows: np.ndarray) -> "HorizonEvents":
        """The events of SKU rows ``rows``."""
        return self._cut(self.keys, lambda m: m[rows])

    def after(self) -> tuple[np.ndarray, np.ndarray]:
        """``days_after`` and ``after_discount`` (zeros when not given)."""
        if self.days_after is None or self.after_discount is None:
            return np.zeros(self.discount.shape, dtype=np.int8), np.zeros(self.discount.shape)
        return self.days_after, self.after_discount


def days_after_campaigns(discount: np.ndarray, lead: int) -> tuple[np.ndarray, np.ndarray]:
    """Days since the last campaign day (``1 .. POST_CAMPAIGN_DAYS``, 0 on campaign days and beyond) and its
    discount, for the columns from ``lead`` on of a discount matrix whose first ``lead`` columns are the days
    before (``lead >= POST_CAMPAIGN_DAYS`` to see every campaign that ended before the first day)."""
    n, total = discount.shape
    n_days = total - lead
    after = np.zeros((n, n_days), dtype=np.int8)
    after_discount = np.zeros((n, n_days))
    off = discount[:, lead:] <= 0
    for lag in range(min(POST_CAMPAIGN_DAYS, total), 0, -1):  # the nearest campaign day wins: last
        source = np.zeros((n, n_days))
        first = max(0, lag - lead)  # target columns whose day ``lag`` before lies in the matrix
        source[:, first:] = discount[:, lead - lag + first : lead - lag + n_days]
        hit = off & (source > 0)
        after[hit] = lag
        after_discount[hit] = source[hit]
    return after, after_discount


def horizon_events(
    tables: SourceTables, warehouse_id: object, skus: np.ndarray, first_day: int, n_days: int
) -> HorizonEvents:
    """The event keys and campaigns of ``n_days`` days from ``first_day`` (calendar and campaigns), with the
    days after the campaigns that ended in the ``POST_CAMPAIGN_DAYS`` before ``first_day``."""
    hol_days, hol_names = holiday_calendar(tables, first_day - HOLIDAY_OFFSETS[1], first_day + n_days + 7)
    lead = POST_CAMPAIGN_DAYS
    campaigns = campaign_events(tables, warehouse_id, skus, first_day - lead, n_days + lead)
    days_after, after_discount = days_after_campaigns(campaigns.discount, lead)
    return HorizonEvents(
        first_day=first_day,
        keys=holiday_keys(hol_days, hol_names, first_day, n_days),
        discount=campaigns.discount[:, lead:],
        kind=campaigns.kind[:, lead:],
        kinds=campaigns.kinds,
        day_into=campaigns.day_into[:, lead:],
        days_after=days_after,
        after_discount=after_discount,
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
    """Uplift per holiday key x category, campaign lift per discount point, kind and day, dips after campaigns.

    Attributes:
        keys: The holiday keys seen in the history.
        categories: The categories; column ``len(categories)`` is the warehouse's (any category).
        uplift: ``[len(keys), len(categories) + 1]`` demand multiplier of each key.
        slope: ``[len(categories) + 1]`` lift per discount point / 100 (``lift = 1 + slope * d / 100``).
        days: ``[len(keys)]`` past days of each key the uplift was learned from.
        kinds: The campaign kinds seen in the history.
        kind_factor: Factor on the slope of each of ``kinds`` (1 for a kind not seen).
        into_factor: Factor on the slope of a campaign's first, second, third and later days.
        dip: Depth per discount point / 100 of each day ``1 .. POST_CAMPAIGN_DAYS`` after a campaign.

    The last four have defaults: models trained before they existed unpickle without them (no effect).
    """

    keys: tuple[str, ...]
    categories: tuple[str, ...]
    uplift: np.ndarray
    slope: np.ndarray
    days: np.ndarray
    kinds: tuple[str, ...] = ()
    kind_factor: tuple[float, ...] = ()
    into_factor: tuple[float, ...] = (1.0,) * INTO_BUCKETS
    dip: tuple[float, ...] = (0.0,) * POST_CAMPAIGN_DAYS

    @classmethod
    def none(cls) -> "EventUplift":
        """No event effect (every multiplier 1)."""
        return cls((), (), np.ones((0, 1)), np.zeros(1), np.zeros(0, dtype=np.int64))

    def _category_column(self, category: np.ndarray) -> np.ndarray:
        index = pd.Index(self.categories).get_indexer(pd.Index(pd.Series(category, dtype=object).astype(str)))
        return np.where(index >= 0, index, len(self.categories))

    def multiplier(self, category: np.ndarray, events: HorizonEvents) -> np.ndarray:
        """``[n, n_days]`` multiplier of SKUs of ``category`` on the days of ``events`` (holidays, campaigns
        and the days after them)."""
        out = self.holidays(category, events)
        out *= self._campaign(self._category_column(category), events)
        out *= self.after_campaign(events)
        return out

    def holidays(self, category: np.ndarray, events: HorizonEvents) -> np.ndarray:
        """``[n, n_days]`` holiday uplift of SKUs of ``category`` on the days of ``events`` (1 on days
        without a holiday key)."""
        column = self._category_column(category)
        key_index = pd.Index(self.keys).get_indexer(pd.Index(events.keys.astype(object)))
        out = np.ones(events.discount.shape)
        known = key_index >= 0
        if known.any():
            out[:, known] = self.uplift[key_index[known]][:, column].T
        return out

    def campaign_lift(self, category: np.ndarray, events: HorizonEvents) -> np.ndarray:
        """``[n, n_days]`` lift of SKUs of ``category`` on their campaign days (1 without a campaign)."""
        return self._campaign(self._category_column(category), events)

    def after_campaign(self, events: HorizonEvents) -> np.ndarray:
        """``[n, n_days]`` multiplier of the days after a campaign (1 elsewhere)."""
        days_after, discount = events.after()
        out = np.ones(events.discount.shape)
        after = days_after > 0
        if after.any() and len(self.dip):
            depth = np.asarray(self.dip)[np.clip(days_after[after], 1, len(self.dip)) - 1]
            out[after] = np.maximum(1.0 - depth * discount[after] / 100.0, DIP_FLOOR)
        return out

    def _campaign(self, column: np.ndarray, events: HorizonEvents) -> np.ndarray:
        factor = self.slope[column][:, None] * events.discount / 100.0
        on = events.discount > 0
        if events.kind is not None and len(self.kinds) and on.any():
            index = pd.Index(self.kinds).get_indexer(pd.Index(list(events.kinds), dtype=object))
            of_kind = np.append(
                np.where(index >= 0, np.asarray(self.kind_factor)[np.clip(index, 0, None)], 1.0), 1.0
            )
            factor = factor * of_kind[events.kind]  # kind -1 (no campaign) takes the appended 1
        if events.day_into is not None and on.any():
            into = np.asarray(self.into_factor)
            factor = factor * into[np.clip(events.day_into, 1, len(into)) - 1]
        return 1.0 + factor

    def table(self) -> pd.DataFrame:
        """Long frame (event, category, uplift, days): the holiday uplifts, the campaign slopes as event
        ``"campaign slope"``, the kinds' and days' factors (``"campaign kind <kind>"``, ``"campaign day
        <d>"``) and the dips (``"after campaign <d>"``) as category ``"all"``."""
        cats = [*self.categories, "all"]
        rows = [
            (key, cat, float(self.uplift[k, c]), int(self.days[k]))
            for k, key in enumerate(self.keys)
            for c, cat in enumerate(cats)
        ]
        rows += [("campaign slope", cat, float(self.slope[c]), 0) for c, cat in enumerate(cats)]
        rows += [
            (f"campaign kind {k}", "all", float(f), 0)
            for k, f in zip(self.kinds, self.kind_factor, strict=True)
        ]
        rows += [(f"campaign day {d + 1}", "all", float(f), 0) for d, f in enumerate(self.into_factor)]
        rows += [(f"after campaign {d + 1}", "all", float(f), 0) for d, f in enumerate(self.dip)]
        return pd.DataFrame(rows, columns=["event", "category", "uplift", "days"])


def random_effect_factors(
    num: np.ndarray, den: np.ndarray, group: np.ndarray, cluster: np.ndarray, n_groups: int
) -> np.ndarray:
    """Factor of each group, ``sum(num) / sum(den)`` over its cells relative to all groups', shrunk by how
    far the groups differ beyond their noise (DerSimonian-Laird random effects).

    A group's ratio has a sampling variance from its clusters (a SKU's campaign days are not independent);
    the spread between the groups' ratios beyond those variances is the between-group variance ``tau2``.
    Each ratio moves towards the pooled one by ``var / (var + tau2)``: groups that differ only by noise (a
    source where every kind of campaign lifts alike) get factors of 1, well-measured real differences stay.

    Args:
        num: Numerator of each cell (e.g. the excess over the baseline).
        den: Denominator of each cell (e.g. the expected excess).
        group: Group (0 .. n_groups - 1) of each cell.
        cluster: Cluster (e.g. SKU row) of each cell.
        n_groups: Number of groups.

    Returns:
        ``[n_groups]`` factors, within ``FACTOR_RANGE`` (1 for a group without cells).
    """
    out = np.ones(n_groups)
    if len(num) == 0 or den.sum() <= 0:
        return out
    num_g = np.bincount(group, num, minlength=n_groups)
    den_g = np.bincount(group, den, minlength=n_groups)
    seen = den_g > 0
    if seen.sum() < 2:
        return out
    ratio = np.divide(num_g, den_g, out=np.zeros(n_groups), where=seen)
    pair, index = np.unique(group.astype(np.int64) * (int(cluster.max()) + 1) + cluster, return_inverse=True)
    pair_group = pair // (int(cluster.max()) + 1)
    den_c = np.bincount(index, den)
    resid = np.bincount(index, num) - ratio[pair_group] * den_c
    var = np.divide(
        np.bincount(pair_group, resid**2, minlength=n_groups), den_g**2, out=np.zeros(n_groups), where=seen
    )
    # A group of one or two clusters fits itself (residual ~0): it gets at least the variance its clusters
    # would have at the residual per unit of denominator of all clusters.
    per_den2 = float((resid**2).sum() / max(float((den_c**2).sum()), 1e-12))
    floor = np.divide(
        per_den2 * np.bincount(pair_group, den_c**2, minlength=n_groups),
        den_g**2,
        out=np.zeros(n_groups),
        where=seen,
    )
    var = np.maximum(np.maximum(var, floor), 1e-12)
    w = np.where(seen, 1.0 / var, 0.0)
    pooled = float((w * ratio).sum() / w.sum())
    q = float((w * (ratio - pooled) ** 2).sum())
    tau2 = max(0.0, (q - (seen.sum() - 1)) / (w.sum() - (w**2).sum() / w.sum()))
    if pooled <= 0:
        return out
    shrunk = pooled + tau2 / (tau2 + var) * (ratio - pooled)
    out[seen] = np.clip(shrunk[seen] / pooled, *FACTOR_RANGE)
    return out


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
    days_after, after_discount = events.after()
    ordinary = observed & ~event_day[None, :] & ~promo & (days_after == 0)
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
    sku_column = np.where(column >= 0, column, n_cols - 1)

    # Campaigns, on their SKU-days that are not holiday days: excess y - b = b * d / 100 * slope * kind *
    # into. The three are fitted by alternating ratio updates over those (sparse) cells.
    rows, cols = np.nonzero(usable & promo & ~event_day[None, :])
    excess = y[rows, cols] - baseline[rows, cols]
    weight = baseline[rows, cols] * events.discount[rows, cols] / 100.0
    cat_of = sku_column[rows]
    kinds = events.kinds if events.kind is not None else ()
    kind_of = (
        events.kind[rows, cols].astype(np.int64) if events.kind is not None else np.zeros(len(rows), np.int64)
    )
    into_of = (
        np.clip(events.day_into[rows, cols], 1, INTO_BUCKETS).astype(np.int64) - 1
        if events.day_into is not None
        else np.zeros(len(rows), np.int64)
    )
    kind_factor = np.ones(max(len(kinds), 1))
    into_factor = np.ones(INTO_BUCKETS)
    slope = np.zeros(n_cols)
    for _ in range(CAMPAIGN_ROUNDS):
        w = weight * kind_factor[kind_of] * into_factor[into_of]
        num = np.bincount(cat_of, excess, minlength=n_cols)
        den = np.bincount(cat_of, w, minlength=n_cols)
        slope_all = float(np.clip(excess.sum() / (w.sum() + UPLIFT_PRIOR_UNITS), *SLOPE_RANGE))
        slope = np.clip(_shrunk(num, den, slope_all), *SLOPE_RANGE)
        slope[-1] = slope_all
        if kinds:
            w = weight * slope[cat_of] * into_factor[into_of]
            kind_factor = random_effect_factors(excess, w, kind_of, rows, len(kinds))
        if events.day_into is not None:
            w = weight * slope[cat_of] * kind_factor[kind_of]
            into_factor = random_effect_factors(excess, w, into_of, rows, INTO_BUCKETS)

    # After a campaign (not a holiday, no campaign): b - y = b * d / 100 * dip[days after], shrunk to 0.
    rows, cols = np.nonzero(usable & (days_after > 0) & ~event_day[None, :])
    lag = days_after[rows, cols].astype(np.int64) - 1
    shortfall = np.bincount(lag, baseline[rows, cols] - y[rows, cols], minlength=POST_CAMPAIGN_DAYS)
    exposure = np.bincount(
        lag, baseline[rows, cols] * after_discount[rows, cols] / 100.0, minlength=POST_CAMPAIGN_DAYS
    )
    dip = np.clip(shortfall / (exposure + UPLIFT_PRIOR_UNITS), 0.0, (1.0 - DIP_FLOOR) * 100.0 / 20.0)
    fitted = EventUplift(
        (),
        categories,
        np.ones((0, n_cols)),
        slope,
        np.zeros(0, dtype=np.int64),
        tuple(kinds),
        tuple(float(f) for f in kind_factor[: len(kinds)]),
        tuple(float(f) for f in into_factor),
        tuple(float(d) for d in dip),
    )

    # Holiday keys: y / b on event days (the campaign lift and the dip divided out), per key x category.
    event_columns = np.flatnonzero(event_day)
    keys_of_columns = events.keys[event_columns].astype(str)
    keys = tuple(sorted(set(keys_of_columns.tolist())))
    if not keys:
        return fitted
    # One-hot [n, n_cols] of each SKU's category, the last column every SKU: G.T @ x sums x per category.
    groups = np.zeros((n, n_cols))
    groups[np.flatnonzero(column >= 0), column[column >= 0]] = 1.0
    groups[:, -1] = 1.0
    on_days = events_of_columns(events, event_columns)
    lift = fitted.multiplier(category, on_days)  # campaigns and dips only: the fit has no keys yet
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
    return dataclasses.replace(fitted, keys=keys, uplift=uplift, days=days)


def events_of_columns(events: HorizonEvents, columns: np.ndarray) -> HorizonEvents:
    """The events of some day columns (keys replaced by ``NO_EVENT``: their campaign parts only)."""
    return events._cut(np.full(len(columns), NO_EVENT, dtype=object), lambda m: m[:, columns])


def history_events(tables: SourceTables, warehouse_id: object, panel: SalesPanel) -> HorizonEvents:
    """The events of a sales panel's SKUs and days (what :func:`fit_event_uplift` learns from)."""
    return horizon_events(tables, warehouse_id, panel.skus, panel.start_day, panel.n_days)


def uplift_as_of(panel: SalesPanel, category: np.ndarray, events: HorizonEvents, day: int) -> EventUplift:
    """The uplifts learned from the panel's days up to ``day`` (``events`` from :func:`history_events`)."""
    end = day - panel.start_day + 1
    if end <= 0:
        return EventUplift.none()
    return fit_event_uplift(panel.quantity[:, :end], category, events.head(end))


def with_campaign_lift(
    ml: np.ndarray, ml_without: np.ndarray, uplift: EventUplift, category: np.ndarray, events: HorizonEvents
) -> np.ndarray:
    """The ML model's forecasts ``[n, H]`` with the campaign days replaced by its forecast of the same day
    without the campaign (``ml_without``) times the campaign's lift learned from every past campaign.

    The LightGBM learns a campaign's effect only from the campaigns near its training origins, and a
    discount deeper than any sitewide one it saw (a 30% sale after sales of 5-20%) lies outside its trees:
    it forecast such a sale 29% short. The lift per discount point, pooled over every campaign of the
    history, extrapolates linearly.
    """
    on_campaign = events.discount > 0
    if not on_campaign.any():
        return ml
    return np.where(on_campaign, ml_without * uplift.campaign_lift(category, events), ml)


def ml_with_events(
    ml: np.ndarray,
    without_campaigns: Callable[[], np.ndarray],
    uplift: EventUplift,
    category: np.ndarray,
    events: HorizonEvents,
    net_of_holidays: bool,
) -> np.ndarray:
    """The ML model's forecasts ``[n, H]`` with the events of the target days: times the holiday uplifts when
    it learned demand net of them (``net_of_holidays``), and on campaign days its forecast without the
    campaign (``without_campaigns()``, called only when a campaign falls in the horizon) times the lift
    (:func:`with_campaign_lift`)."""
    holidays = uplift.holidays(category, events) if net_of_holidays else 1.0
    out = ml * holidays
    if not (events.discount[~np.isnan(ml).all(axis=1)] > 0).any():
        return out
    return with_campaign_lift(out, without_campaigns() * holidays, uplift, category, events)
