"""Events as inputs: holiday keys, uplifts learned from every past instance, the launch ramp, and the platform
forecasting Black Friday, a planned sale, launches and a level shift on a generated source."""

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from demand_platform import columns as C
from demand_platform import ingestion
from demand_platform.calendar import NO_EVENT, holiday_keys, national_holidays
from demand_platform.days import to_day
from demand_platform.features import (
    TARGET_DAYS_SINCE_LAST_HOLIDAY,
    TARGET_EVENT,
    SalesPanel,
    build_sales_panel,
    campaign_events,
    target_day_features,
)
from demand_platform.forecasting import TrainConfig, forecast_warehouse, train_warehouse
from demand_platform.forecasting.cold_start import ColdStartProfile, fit_cold_start, launch_ramp
from demand_platform.forecasting.events import (
    POST_CAMPAIGN_DAYS,
    EventUplift,
    HorizonEvents,
    days_after_campaigns,
    fit_event_uplift,
    horizon_events,
    random_effect_factors,
    uplift_as_of,
    with_campaign_lift,
)
from demand_platform.forecasting.training import SalesHistory, ml_target_divisor
from demand_platform.models.global_lgbm import (
    TARGET_CALENDAR_FEATURES,
    TARGET_PROMO_ACTIVE,
    TARGET_PROMO_DISCOUNT,
    FeatureKeys,
    SamplingConfig,
    TargetDayLookup,
    sample_training_pairs,
)
from demand_platform.source import load_source_tables
from demand_platform.synthetic import (
    GeneratorConfig,
    LevelShift,
    PlannedCampaign,
    generate_source,
    true_demand,
)
from demand_platform.tables import SourceTables
from demand_platform.tiering import assign_tiers

THANKSGIVING_2024 = dt.date(2024, 11, 28)
WAREHOUSES = pd.DataFrame({C.WAREHOUSE_ID: ["W1"], C.LOCATION_STATE: ["TX"]})


def _day(d: dt.date) -> int:
    return to_day(pd.Timestamp(d))


# --- holiday keys ---------------------------------------------------------------------------------------------------------
def test_days_around_a_holiday_get_its_key_and_offset() -> None:
    days, names = national_holidays(2024, 2025)
    first = _day(dt.date(2024, 11, 24))
    keys = dict(
        zip(pd.date_range("2024-11-24", periods=40).date, holiday_keys(days, names, first, 40), strict=True)
    )
    assert keys[dt.date(2024, 11, 25)] == NO_EVENT
    assert keys[dt.date(2024, 11, 26)] == "Thanksgiving Day -2"
    assert keys[THANKSGIVING_2024] == "Thanksgiving Day +0"
    assert keys[dt.date(2024, 11, 29)] == "Thanksgiving Day +1"  # Black Friday, named by no calendar
    assert keys[dt.date(2024, 12, 2)] == "Thanksgiving Day +4"  # Cyber Monday
    assert keys[dt.date(2024, 12, 3)] == NO_EVENT
    assert keys[dt.date(2024, 12, 25)] == "Christmas Day +0"
    # Christmas + 4 and New Year - 3: the nearer (and on a tie the earlier) holiday wins.
    assert keys[dt.date(2024, 12, 29)] == "Christmas Day +4"
    assert keys[dt.date(2024, 12, 30)] == "New Year's Day -2"


def test_target_days_carry_the_event_and_the_days_since_the_last_holiday() -> None:
    tables = SourceTables(products=pd.DataFrame(), warehouses=WAREHOUSES)
    target = target_day_features(tables, pd.Timestamp("2024-10-31"), "W1", horizons=range(1, 31)).by_horizon
    by_date = target.set_index(C.TARGET_DATE)
    assert by_date.loc["2024-11-29", TARGET_EVENT] == "Thanksgiving Day +1"
    assert by_date.loc["2024-11-29", TARGET_DAYS_SINCE_LAST_HOLIDAY] == 1
    assert by_date.loc["2024-11-11", TARGET_DAYS_SINCE_LAST_HOLIDAY] == 0  # Veterans Day
    assert by_date.loc["2024-11-20", TARGET_EVENT] is None


# --- uplifts --------------------------------------------------------------------------------------------------------------
def _planted(
    seed: int = 0, n: int = 240, days: int = 800
) -> tuple[np.ndarray, np.ndarray, HorizonEvents, dict]:
    """Poisson demand ``level x weekday x uplift(key) x (1 + slope * discount / 100)`` over two Thanksgivings."""
    rng = np.random.default_rng(seed)
    first = _day(dt.date(2023, 1, 1))
    hol_days, hol_names = national_holidays(2023, 2025)
    keys = holiday_keys(hol_days, hol_names, first, days)
    category = np.where(np.arange(n) % 2 == 0, "Toys", "Grocery").astype(object)
    true_uplift = {
        "Thanksgiving Day +1": {"Toys": 5.0, "Grocery": 2.0},
        "Thanksgiving Day +0": {"Toys": 0.5, "Grocery": 0.5},
    }
    uplift = np.ones((n, days))
    for key, by_category in true_uplift.items():
        for cat, value in by_category.items():
            uplift[np.ix_(category == cat, keys == key)] = value
    discount = np.zeros((n, days))
    for _ in range(n):  # one 7-day campaign of 10-40% per SKU on average
        sku, start = rng.integers(0, n), rng.integers(0, days - 7)
        discount[sku, start : start + 7] = rng.integers(10, 41)
    slope = np.where(category == "Toys", 3.0, 1.5)
    level = rng.lognormal(0.5, 0.8, size=n)
    weekly = np.array([1.0, 1.0, 1.0, 1.0, 1.1, 0.7, 0.7])[(3 + first + np.arange(days)) % 7]
    mu = level[:, None] * weekly[None, :] * uplift * (1 + slope[:, None] * discount / 100)
    quantity = rng.poisson(mu).astype(float)
    return quantity, category, HorizonEvents(first, keys, discount), {"uplift": true_uplift}


def test_uplifts_and_campaign_slopes_are_learned_per_category_from_every_past_instance() -> None:
    quantity, category, events, truth = _planted()
    fitted = fit_event_uplift(quantity, category, events)
    table = fitted.table().set_index(["event", "category"])["uplift"]
    for key, by_category in truth["uplift"].items():
        for cat, value in by_category.items():
            assert table[(key, cat)] == pytest.approx(value, rel=0.15), (key, cat)
    assert table[("campaign slope", "Toys")] == pytest.approx(3.0, rel=0.2)
    assert table[("campaign slope", "Grocery")] == pytest.approx(1.5, rel=0.25)
    # A key with no effect stays near 1; both Thanksgivings of the history count.
    assert table[("Independence Day +2", "all")] == pytest.approx(1.0, abs=0.15)
    assert int(fitted.days[fitted.keys.index("Thanksgiving Day +1")]) == 2


def test_the_multiplier_applies_the_event_and_the_discount_of_each_target_day() -> None:
    quantity, category, events, _ = _planted()
    fitted = fit_event_uplift(quantity, category, events)
    keys = np.array(["Thanksgiving Day +1", NO_EVENT, "unknown key"], dtype=object)
    discount = np.array([[0.0, 20.0, 0.0], [0.0, 0.0, 0.0]])
    multiplier = fitted.multiplier(
        np.array(["Toys", "Never seen"], dtype=object), HorizonEvents(0, keys, discount)
    )
    table = fitted.table().set_index(["event", "category"])["uplift"]
    assert multiplier[0, 0] == pytest.approx(table[("Thanksgiving Day +1", "Toys")])
    assert multiplier[0, 1] == pytest.approx(1 + table[("campaign slope", "Toys")] * 0.2)
    assert multiplier[1, 0] == pytest.approx(table[("Thanksgiving Day +1", "all")])  # unknown category
    assert multiplier[0, 2] == multiplier[1, 2] == multiplier[1, 1] == 1.0
    none = EventUplift.none().multiplier(category[:2], HorizonEvents(0, keys, discount))
    assert (none == 1.0).all()


def _history_of(quantity: np.ndarray, first_day: int) -> pd.DataFrame:
    """``raw_sales``-like rows (warehouse W1, SKUs S000, S008, ... as the rows were every 8th) of a matrix."""
    n, n_days = quantity.shape
    return pd.DataFrame(
        {
            C.SKU: np.repeat([f"S{8 * i:03d}" for i in range(n)], n_days),
            C.WAREHOUSE_ID: "W1",
            C.DATE: pd.to_datetime(np.tile(first_day + np.arange(n_days), n), unit="D"),
            C.QUANTITY: quantity.reshape(-1),
            C.REVENUE: 1.0,
        }
    )


def test_the_uplift_at_a_day_reads_nothing_after_it() -> None:
    quantity, category, events, _ = _planted(days=760)
    day = events.first_day + 700
    history = _history_of(quantity[::8], events.first_day)
    skus = np.array(sorted(history[C.SKU].unique()), dtype=object)
    cat = category[::8]
    sub = HorizonEvents(events.first_day, events.keys, events.discount[::8])
    panel = build_sales_panel(history, end=pd.Timestamp(events.first_day + 759, unit="D"), lookback_days=759)
    assert list(panel.skus) == list(skus)
    changed = history.copy()
    after = changed[C.DATE] > pd.Timestamp(day, unit="D")
    changed.loc[after, C.QUANTITY] = changed.loc[after, C.QUANTITY] * 50 + 7
    panel_changed = build_sales_panel(changed, end=pd.Timestamp(panel.end_day, unit="D"), lookback_days=759)
    a, b = uplift_as_of(panel, cat, sub, day), uplift_as_of(panel_changed, cat, sub, day)
    assert a.keys == b.keys
    np.testing.assert_array_equal(a.uplift, b.uplift)
    np.testing.assert_array_equal(a.slope, b.slope)
    # ... and the data after it do move a later fit.
    later = uplift_as_of(panel_changed, cat, sub, panel.end_day)
    assert not np.allclose(later.slope, a.slope)


# --- campaign kinds, days into and after campaigns ---------------------------------------------------------------------------
KINDS = ("sitewide seasonal_sale", "sku flash_sale", "sku weekly_deal")


def _structured_events(discount: np.ndarray, kind: np.ndarray, first_day: int = 0) -> HorizonEvents:
    """Events of a discount matrix: the given kinds, days into each run of a campaign, days after it."""
    on = discount > 0
    into = np.zeros(discount.shape, dtype=np.int16)
    for col in range(discount.shape[1]):
        into[:, col] = np.where(on[:, col], (into[:, col - 1] if col else 0) + 1, 0)
    days_after, after_discount = days_after_campaigns(
        np.concatenate([np.zeros((len(discount), POST_CAMPAIGN_DAYS)), discount], axis=1), POST_CAMPAIGN_DAYS
    )
    return HorizonEvents(
        first_day,
        np.full(discount.shape[1], NO_EVENT, dtype=object),
        discount,
        np.where(on, kind, -1).astype(np.int16),
        KINDS,
        into,
        days_after,
        after_discount,
    )


def _planted_campaigns(
    seed: int,
    kind_effect: tuple[float, ...],
    first_day_effect: float,
    dip: float,
    n: int = 400,
    days: int = 700,
) -> tuple[np.ndarray, np.ndarray, HorizonEvents]:
    """Poisson demand ``level x weekday x (1 + 2.5 * kind_effect[kind] * into * d / 100) x dip after``: one
    campaign of 3-7 days per SKU and 100 days on average, of a random kind; ``first_day_effect`` multiplies
    the excess of a campaign's first day; the day k after a campaign has ``1 - dip * (8 - k) / 7 * d / 100``."""
    rng = np.random.default_rng(seed)
    discount = np.zeros((n, days))
    kind = np.full((n, days), -1)
    for sku in range(n):
        for start in rng.choice(np.arange(60, days - 10, 12), size=days // 100, replace=False):
            discount[sku, start : start + rng.integers(3, 8)] = rng.integers(10, 41)
            kind[sku, start : start + 8] = rng.integers(0, len(KINDS))
    events = _structured_events(discount, kind, first_day=_day(dt.date(2023, 1, 2)))
    excess = 2.5 * np.asarray(kind_effect)[np.clip(events.kind, 0, None)] * discount / 100.0
    excess *= np.where(events.day_into == 1, first_day_effect, 1.0)
    shape = np.where(
        events.days_after > 0, (POST_CAMPAIGN_DAYS + 1 - events.days_after) / POST_CAMPAIGN_DAYS, 0.0
    )
    after = 1.0 - dip * shape * events.after_discount / 100.0
    level = rng.lognormal(1.0, 0.7, size=n)
    weekly = np.array([1.0, 1.0, 1.0, 1.0, 1.1, 0.7, 0.7])[np.arange(days) % 7]
    mu = level[:, None] * weekly[None, :] * (1.0 + excess) * after
    category = np.where(np.arange(n) % 2 == 0, "Toys", "Grocery").astype(object)
    return rng.poisson(mu).astype(float), category, events


def test_campaign_events_name_the_winning_campaign_its_kind_and_the_day_into_it() -> None:
    campaigns = pd.DataFrame(
        {
            C.CAMPAIGN_ID: ["site", "flash", "small", "elsewhere", "untyped"],
            C.START_DATE: pd.to_datetime(
                ["2024-03-01", "2024-03-06", "2024-03-05", "2024-03-01", "2024-03-09"]
            ),
            C.END_DATE: pd.to_datetime(
                ["2024-03-08", "2024-03-07", "2024-03-06", "2024-03-09", "2024-03-09"]
            ),
            C.SKU: [None, "A", "B", "B", "B"],
            C.DISCOUNT_PERCENT: [10.0, 30.0, 5.0, 50.0, 20.0],
            C.CAMPAIGN_TYPE: ["seasonal_sale", "flash_sale", "email_promo", "clearance", None],
            C.TARGET_REGION: [None, None, "TX", "CA", None],
        }
    )
    tables = SourceTables(products=pd.DataFrame(), warehouses=WAREHOUSES, campaigns=campaigns)
    skus = np.array(["A", "B", "C"], dtype=object)
    first = _day(dt.date(2024, 3, 4))  # the sitewide sale started 3 days before the window
    got = campaign_events(tables, "W1", skus, first, 7)
    np.testing.assert_array_equal(
        got.discount, [[10, 10, 30, 30, 10, 0, 0], [10, 10, 10, 10, 10, 20, 0], [10, 10, 10, 10, 10, 0, 0]]
    )
    assert "sitewide seasonal_sale" in got.kinds and "sku campaign" in got.kinds  # a null type is "campaign"
    kind = np.array(got.kinds, dtype=object)[got.kind].astype(object)
    kind[got.kind < 0] = None
    # A: the sitewide sale, then its own 30% flash sale on 6-7 March (larger discount wins), then nothing.
    assert (
        list(kind[0])
        == ["sitewide seasonal_sale"] * 2 + ["sku flash_sale"] * 2 + ["sitewide seasonal_sale"] + [None] * 2
    )
    assert list(got.day_into[0]) == [4, 5, 1, 2, 8, 0, 0]
    # B: its 5% e-mail promo loses to the 10% sale; the 50% clearance targets another state; the untyped 20%.
    assert list(got.discount[1]) == [10.0] * 5 + [20.0, 0.0]
    assert kind[1, 5] == "sku campaign" and got.day_into[1, 5] == 1
    assert (got.kind[2, :5] == got.kinds.index("sitewide seasonal_sale")).all()


def test_days_after_a_campaign_count_from_its_last_day_including_campaigns_before_the_window() -> None:
    discount = np.zeros((2, 20))
    discount[0, 2:5] = 20.0  # ends on column 4, two days before the window (column 7)
    discount[0, 12:14] = 40.0  # ends on column 13; nearer than the first
    discount[1, 9:11] = 10.0
    after, off = days_after_campaigns(discount, lead=7)
    assert list(after[0, :]) == [3, 4, 5, 6, 7, 0, 0, 1, 2, 3, 4, 5, 6]
    assert off[0, 0] == 20.0 and off[0, 7] == 40.0
    assert list(after[1, :6]) == [0, 0, 0, 0, 1, 2] and off[1, 4] == 10.0


def test_campaign_kinds_days_into_them_and_the_dip_after_them_are_learned() -> None:
    quantity, category, events = _planted_campaigns(
        0, kind_effect=(1.6, 0.5, 1.0), first_day_effect=1.8, dip=0.9
    )
    fitted = fit_event_uplift(quantity, category, events)
    effective = fitted.slope[-1] * np.asarray(fitted.kind_factor)
    # Relative effects are identified (slope x factors is), and so is the product.
    np.testing.assert_allclose(effective / effective[2], [1.6, 0.5, 1.0], rtol=0.15)
    assert fitted.into_factor[0] / fitted.into_factor[2] == pytest.approx(1.8, rel=0.15)
    assert effective[2] * fitted.into_factor[2] == pytest.approx(2.5, rel=0.15)
    np.testing.assert_allclose(
        fitted.dip, 0.9 * (POST_CAMPAIGN_DAYS - np.arange(POST_CAMPAIGN_DAYS)) / POST_CAMPAIGN_DAYS, atol=0.15
    )
    # The multiplier uses all three: a flash sale's first day, a sitewide sale's third, the day after.
    days = _structured_events(
        np.array([[30.0, 0.0, 0.0], [30.0, 30.0, 30.0]]), np.array([[1, -1, -1], [0, 0, 0]])
    )
    m = fitted.multiplier(np.array(["Toys", "Toys"], dtype=object), days)
    toys = fitted.slope[fitted.categories.index("Toys")]
    assert m[0, 0] == pytest.approx(1 + toys * fitted.kind_factor[1] * fitted.into_factor[0] * 0.3)
    assert m[1, 2] == pytest.approx(1 + toys * fitted.kind_factor[0] * fitted.into_factor[2] * 0.3)
    assert m[0, 1] == pytest.approx(1 - fitted.dip[0] * 0.3)


def test_kinds_that_lift_alike_get_no_factor_of_their_own() -> None:
    quantity, category, events = _planted_campaigns(
        1, kind_effect=(1.0, 1.0, 1.0), first_day_effect=1.0, dip=0.0
    )
    fitted = fit_event_uplift(quantity, category, events)
    np.testing.assert_allclose(fitted.kind_factor, 1.0, atol=0.05)
    np.testing.assert_allclose(fitted.into_factor, 1.0, atol=0.05)
    np.testing.assert_allclose(fitted.dip, 0.0, atol=0.1)


@pytest.mark.parametrize("spread", [0.0, 0.5])
def test_random_effect_factors_keep_real_differences_and_drop_noise(spread: float) -> None:
    rng = np.random.default_rng(3)
    n_groups, cells = 4, 4000
    group = rng.integers(0, n_groups, size=cells)
    cluster = rng.integers(0, 400, size=cells)
    truth = 1.0 + spread * np.array([-1.0, -0.5, 0.5, 1.0])
    den = rng.uniform(0.5, 2.0, size=cells)
    num = den * truth[group] * 2.0 + rng.normal(0, 1.0, size=cells)
    factor = random_effect_factors(num, den, group, cluster, n_groups)
    pooled = (num.sum() / den.sum()) / 2.0
    np.testing.assert_allclose(factor * pooled, truth, atol=0.06 if spread else 0.02)
    assert (random_effect_factors(num[:0], den[:0], group[:0], cluster[:0], n_groups) == 1.0).all()


def test_a_kind_seen_on_one_sku_only_does_not_get_its_raw_ratio() -> None:
    """A group of one cluster fits itself exactly (no residual): without a variance floor it would count as
    perfectly measured and keep its ratio, 3x here, against three groups that agree on 1."""
    rng = np.random.default_rng(5)
    cells = 3000
    group = np.concatenate([rng.integers(0, 3, size=cells), np.full(5, 3)])
    cluster = np.concatenate([rng.integers(0, 300, size=cells), np.full(5, 999)])
    den = rng.uniform(0.5, 2.0, size=cells + 5)
    num = 2.0 * den + rng.normal(0, 1.0, size=cells + 5)
    num[-5:] = 3 * 2.0 * den[-5:]
    factor = random_effect_factors(num, den, group, cluster, 4)
    assert factor[3] < 1.5, factor
    np.testing.assert_allclose(factor[:3], 1.0, atol=0.05)


# --- the LightGBM net of the holidays ------------------------------------------------------------------------------------
def test_training_targets_are_divided_by_the_event_multiplier_of_their_day() -> None:
    history = pd.DataFrame(
        {
            C.SKU: "A",
            C.WAREHOUSE_ID: "W1",
            C.DATE: pd.date_range("2024-01-01", periods=60),
            C.QUANTITY: np.arange(60, dtype=float) + 1,
            C.REVENUE: 1.0,
        }
    )
    panel = build_sales_panel(history, end=pd.Timestamp("2024-02-29"), lookback_days=59)
    keys = FeatureKeys(
        origin_day=np.array([panel.start_day + 40]),
        sku_code=np.array([0]),
        origin_column=np.array([40]),
        origin_index=np.array([0]),
    )
    sampling = SamplingConfig(zero_sample_rate=1.0, max_rows=10**6, seed=0)
    divisor = np.ones((1, panel.n_days))
    divisor[0, 43] = 4.0  # the target day of horizon 3
    raw = sample_training_pairs(keys, panel, panel.end_day, (1, 7), sampling)
    net = sample_training_pairs(keys, panel, panel.end_day, (1, 7), sampling, target_divisor=divisor)
    expected = raw.target.copy()
    expected[raw.horizon == 3] /= 4.0
    np.testing.assert_array_equal(net.target, expected)
    assert net.target[raw.horizon == 3][0] == 44.0 / 4.0


def test_the_ml_targets_divisor_reads_nothing_after_the_first_cv_origin() -> None:
    quantity, category, events, _ = _planted(days=760)
    first_cv = events.first_day + 600
    history = _history_of(quantity[::8], events.first_day)
    end = pd.Timestamp(events.first_day + 759, unit="D")

    def divisor(frame: pd.DataFrame, config: TrainConfig) -> np.ndarray | None:
        panel = build_sales_panel(frame, end=end, lookback_days=759)
        sales = SalesHistory(
            panel,
            category[::8],
            np.zeros(len(panel.skus)),
            events.take(np.arange(0, 240, 8)),
            SourceTables(products=pd.DataFrame(), warehouses=WAREHOUSES),
            "W1",
        )
        return ml_target_divisor(sales, first_cv, config)

    base = divisor(history, TrainConfig())
    assert base is not None and base.max() > 2.0  # Black Friday's uplift divides its targets
    changed = history.copy()
    later = changed[C.DATE] > pd.Timestamp(first_cv, unit="D")
    changed.loc[later, C.QUANTITY] = changed.loc[later, C.QUANTITY] * 50 + 7
    np.testing.assert_array_equal(divisor(changed, TrainConfig()), base)
    earlier = history.copy()
    earlier.loc[~later, C.QUANTITY] = earlier.loc[~later, C.QUANTITY] * 3
    earlier.loc[
        earlier[C.DATE].isin(pd.to_datetime([dt.date(2023, 11, 24), dt.date(2024, 11, 29)])), C.QUANTITY
    ] *= 5
    assert not np.array_equal(divisor(earlier, TrainConfig()), base)
    assert divisor(history, TrainConfig(ml_net_of_holidays=False)) is None


# --- launch ramp ------------------------------------------------------------------------------------------------------------
def test_the_launch_ramp_is_recovered_from_launches_of_very_different_levels_seen_for_different_ages() -> (
    None
):
    rng = np.random.default_rng(4)
    n_weeks, n = 13, 300
    age = np.arange(7 * n_weeks)
    true_day = 1 - np.exp(-(age + 1) / 21)
    level = rng.lognormal(0.0, 1.5, size=n)
    y = rng.poisson(level[:, None] * true_day[None, :]).astype(float)
    # Half the launches are recent: seen for their first 1-3 weeks only.
    seen_weeks = np.where(np.arange(n) % 2 == 0, rng.integers(1, 4, size=n), n_weeks)
    observed = age[None, :] < 7 * seen_weeks[:, None]
    ramp = launch_ramp(np.where(observed, y, 0.0), observed, n_weeks)
    truth = true_day.reshape(n_weeks, 7).mean(axis=1)
    np.testing.assert_allclose(ramp, truth / truth.mean(), rtol=0.12)


def _launch_panel(price_effect: bool) -> tuple[SalesPanel, np.ndarray, np.ndarray, np.ndarray]:
    """400 SKUs of two categories launched over the last 80 days of a 200-day panel (and 200 mature ones);
    with ``price_effect`` a SKU's level is 8 / price^1 around its category's median price."""
    rng = np.random.default_rng(7)
    n_new, n_old, n_days = 400, 200, 200
    n = n_new + n_old
    category = np.where(np.arange(n) % 2 == 0, "Toys", "Grocery").astype(object)
    price = rng.lognormal(np.where(category == "Toys", 3.0, 1.0), 0.6)
    median = np.where(category == "Toys", np.exp(3.0), np.exp(1.0))
    level = 8.0 * (median / price if price_effect else np.ones(n)) * rng.lognormal(0, 0.2, n)
    launch_column = np.concatenate([rng.integers(n_days - 80, n_days - 5, n_new), np.full(n_old, -400)])
    age = np.arange(n_days)[None, :] - launch_column[:, None]
    mean = np.where(age >= 0, level[:, None] * (1 - np.exp(-(age + 1) / 10)), 0.0)
    quantity = np.where(age >= 0, rng.poisson(mean), np.nan)
    first_day = _day(dt.date(2024, 1, 1))
    panel = SalesPanel(
        skus=np.array([f"S{i:03d}" for i in range(n)], dtype=object),
        start_day=first_day,
        quantity=quantity,
        revenue=quantity,
        day_present=np.ones(n_days, dtype=bool),
        first_day=first_day + np.maximum(launch_column, 0),
        history_first_day=first_day,
        pre_codes=np.zeros(0, dtype=np.int64),
        pre_quantity=np.zeros(0),
    )
    return panel, category, first_day + launch_column, price


def test_launch_levels_are_learned_per_price_band_of_the_category() -> None:
    panel, category, launch, price = _launch_panel(price_effect=True)
    config = TrainConfig()
    end = panel.n_days - 1
    banded = fit_cold_start(panel, end, category, launch, config, price=price)
    flat = fit_cold_start(panel, end, category, launch, config)
    assert banded.band_level is not None and flat.band_level is None
    for c, cat in enumerate(banded.categories):
        # Cheap lines launch higher than dear ones, by a factor near the truth's (terciles of 1 / price).
        low, mid, high = banded.band_level[c]
        assert low > 1.5 * mid > 2.25 * high, (cat, banded.band_level[c])
    # A new cheap Toy is forecast above a dear one; without prices (or for an old profile) both get the
    # category's level.
    toys = np.array(["Toys", "Toys"], dtype=object)
    prices = np.array([5.0, 200.0])
    cheap, dear = banded.level_of(toys, prices)
    assert cheap > 2.5 * dear
    assert banded.level_of(toys)[0] == banded.level_of(toys)[1] == flat.level_of(toys)[0]
    old = ColdStartProfile(
        *(
            getattr(banded, f)
            for f in ("categories", "category_level", "global_level", "ramp", "n_launches", "prior_days")
        )
    )
    np.testing.assert_array_equal(old.level_of(toys, prices), flat.level_of(toys))
    # SKUs without a price take their category's level.
    assert banded.level_of(toys, np.array([np.nan, 5.0]))[0] == flat.level_of(toys)[0]


def test_price_bands_change_little_where_price_says_nothing() -> None:
    panel, category, launch, price = _launch_panel(price_effect=False)
    banded = fit_cold_start(panel, panel.n_days - 1, category, launch, TrainConfig(), price=price)
    assert banded.band_level is not None
    ratio = banded.band_level / banded.category_level[:, None]
    np.testing.assert_allclose(ratio, 1.0, atol=0.15)


# --- the platform on a generated source ---------------------------------------------------------------------------------
ORIGIN = dt.date(2024, 10, 31)
SALE = (dt.date(2024, 11, 12), dt.date(2024, 11, 15))
SCENARIO = GeneratorConfig(
    n_skus=150,
    n_warehouses=1,
    start=dt.date(2022, 9, 1),
    days=(ORIGIN - dt.date(2022, 9, 1)).days + 31,
    seed=5,
    planned_campaigns=(PlannedCampaign(*SALE, discount=30.0),),
    level_shifts=(LevelShift("Home & Kitchen", ORIGIN - dt.timedelta(days=60), 0.6),),
    late_launches=12,
    late_launch_window=(ORIGIN - dt.timedelta(days=20), ORIGIN),
)


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    """Forecasts at the origin (sources cut there) joined to the true mean of every target day."""
    full, cut = tmp_path_factory.mktemp("full"), tmp_path_factory.mktemp("cut")
    generate_source(full, SCENARIO)
    for path in full.glob("*.parquet"):
        frame = pd.read_parquet(path)
        if path.stem == C.TRANSACTIONS:
            frame = frame.loc[pd.to_datetime(frame[C.TRANSACTION_DATE]).dt.date <= ORIGIN]
        if path.stem == C.WEATHER:
            frame = frame.loc[pd.to_datetime(frame[C.DATE]).dt.date <= ORIGIN]
        frame.to_parquet(Path(cut) / path.name)
    tables = load_source_tables(cut)
    warehouse = str(tables.warehouses[C.WAREHOUSE_ID].iloc[0])
    raw = ingestion.ingest_sales(cut, tables.products, tables.warehouses, SCENARIO.start, ORIGIN).raw_sales
    raw[C.DATE] = pd.to_datetime(raw[C.DATE]).astype("datetime64[ns]")
    tiers = assign_tiers(
        raw.loc[raw[C.DATE] > pd.Timestamp(ORIGIN - dt.timedelta(days=400))], tables.products, ORIGIN
    )
    model = train_warehouse(raw, tables, ORIGIN, warehouse, tiers, TrainConfig())
    forecasts = forecast_warehouse(model, raw, tables, ORIGIN, warehouse, tiers)
    truth = true_demand(SCENARIO, ORIGIN + dt.timedelta(days=1), ORIGIN + dt.timedelta(days=30))
    products = tables.products.set_index(C.SKU)
    out = forecasts.merge(
        truth.rename(columns={C.DATE: C.TARGET_DATE}), on=[C.SKU, C.WAREHOUSE_ID, C.TARGET_DATE], how="inner"
    )
    out[C.CATEGORY] = out[C.SKU].map(products[C.CATEGORY])
    out["launch"] = pd.to_datetime(out[C.SKU].map(products[C.LAUNCH_DATE]))
    return out


def _bias(frame: pd.DataFrame) -> float:
    return float(frame[C.FORECAST].sum() / frame["mean"].sum() - 1)


def _relative_bias(scenario: pd.DataFrame, part: pd.Series, reference: pd.Series) -> float:
    """Bias of ``part`` relative to the bias of ``reference``: the error of the effect (the event, the launch,
    the shift), not of the warehouse's level, which a 150-SKU world misses by some 10% either way."""
    return (1 + _bias(scenario.loc[part])) / (1 + _bias(scenario.loc[reference])) - 1


def _ordinary(scenario: pd.DataFrame) -> pd.Series:
    """Target days before the sale and after none of the events."""
    return scenario[C.TARGET_DATE].dt.date < SALE[0]


def test_black_friday_and_its_weekend_are_forecast_from_the_past_ones(scenario: pd.DataFrame) -> None:
    weekend = scenario[C.TARGET_DATE].dt.date.between(dt.date(2024, 11, 29), dt.date(2024, 12, 1))
    # Two earlier Black Fridays in the history (2022, 2023); the truth is about 4x a normal Friday.
    error = _relative_bias(scenario, weekend, _ordinary(scenario))
    assert abs(error) < 0.2, error


def test_a_planned_sitewide_sale_is_forecast(scenario: pd.DataFrame) -> None:
    on_sale = scenario[C.TARGET_DATE].dt.date.between(*SALE)
    error = _relative_bias(scenario, on_sale, _ordinary(scenario))
    assert abs(error) < 0.2, error


def test_a_category_that_fell_40_percent_two_months_ago_is_tracked(scenario: pd.DataFrame) -> None:
    shifted = scenario[C.CATEGORY] == "Home & Kitchen"
    assert shifted.sum() > 0
    ordinary = _ordinary(scenario)
    error = _relative_bias(scenario, shifted & ordinary, ~shifted & ordinary)
    assert abs(error) < 0.2, error


def test_late_launches_follow_the_launch_ramp(scenario: pd.DataFrame) -> None:
    late = scenario["launch"].dt.date >= SCENARIO.late_launch_window[0]
    assert late.sum() > 0
    error = _relative_bias(scenario, late, ~late)
    assert abs(error) < 0.25, error


def test_the_events_change_nothing_when_the_horizon_has_none() -> None:
    tables = SourceTables(products=pd.DataFrame(), warehouses=WAREHOUSES)
    quantity, category, events, _ = _planted()
    fitted = fit_event_uplift(quantity, category, events)
    quiet = horizon_events(tables, "W1", np.array(["A"], dtype=object), _day(dt.date(2024, 8, 5)), 20)
    assert (quiet.keys == NO_EVENT).all() and (quiet.discount == 0).all()
    assert (fitted.multiplier(np.array(["Toys"], dtype=object), quiet) == 1.0).all()


def test_campaign_days_of_the_ml_model_are_its_plain_forecast_times_the_learned_lift() -> None:
    quantity, category, events, _ = _planted()
    fitted = fit_event_uplift(quantity, category, events)
    ml = np.full((2, 3), 10.0)
    plain = np.full((2, 3), 4.0)
    days = np.full(3, NO_EVENT, dtype=object)
    discount = HorizonEvents(0, days, np.array([[0.0, 30.0, 0.0], [0.0, 0.0, 0.0]]))
    cats = np.array(["Toys", "Grocery"], dtype=object)
    out = with_campaign_lift(ml, plain, fitted, cats, discount)
    assert out[0, 1] == pytest.approx(4.0 * fitted.campaign_lift(cats, discount)[0, 1])
    assert out[0, 1] == pytest.approx(4.0 * (1 + 0.3 * fitted.slope[list(fitted.categories).index("Toys")]))
    assert (np.delete(out.ravel(), 1) == 10.0).all()  # days without a campaign keep the ML forecast
    assert with_campaign_lift(ml, plain, fitted, cats, HorizonEvents(0, days, np.zeros((2, 3)))) is ml


def test_a_lookup_without_campaigns_keeps_the_calendar_and_drops_every_campaign() -> None:
    tables = SourceTables(
        products=pd.DataFrame(),
        warehouses=WAREHOUSES,
        campaigns=pd.DataFrame(
            {
                C.CAMPAIGN_ID: ["C1", "C2"],
                C.START_DATE: pd.to_datetime(["2024-11-05", "2024-11-08"]),
                C.END_DATE: pd.to_datetime(["2024-11-06", "2024-11-09"]),
                C.SKU: [None, "A"],
                C.DISCOUNT_PERCENT: [20.0, 40.0],
                C.CAMPAIGN_TYPE: ["seasonal_sale", "flash_sale"],
                C.TARGET_REGION: [None, None],
            }
        ),
    )
    skus = np.array(["A", "B"], dtype=object)
    lookup = TargetDayLookup.build(tables, "W1", [pd.Timestamp("2024-10-31")], 30, skus)
    plain = lookup.without_campaigns()
    origin, horizon = np.zeros(4, dtype=np.int64), np.array([5, 6, 8, 29])
    numeric, event = lookup.gather(origin, np.zeros(4, dtype=np.int64), horizon)
    numeric_plain, event_plain = plain.gather(origin, np.zeros(4, dtype=np.int64), horizon)
    discount = TARGET_CALENDAR_FEATURES.index(TARGET_PROMO_DISCOUNT)
    assert list(numeric[:, discount]) == [20.0, 20.0, 40.0, 0.0]
    assert (numeric_plain[:, discount] == 0).all()
    others = [
        i
        for i, name in enumerate(TARGET_CALENDAR_FEATURES)
        if name not in (TARGET_PROMO_ACTIVE, TARGET_PROMO_DISCOUNT)
    ]
    np.testing.assert_array_equal(numeric[:, others], numeric_plain[:, others])
    assert list(event_plain) == list(event) and event[3] == "Thanksgiving Day +1"


def test_a_pickled_model_of_an_earlier_version_unpickles_without_event_uplifts() -> None:
    import pickle

    from demand_platform.forecasting.model import WarehouseModel

    model = WarehouseModel.__new__(WarehouseModel)
    state = {"warehouse_id": "W1", "train_date": pd.Timestamp("2024-01-01")}
    model.__dict__.update(state)
    old = pickle.loads(pickle.dumps(model))  # its state has no "events"
    assert "events" not in model.__dict__
    assert old.events.keys == () and (old.events.slope == 0).all()
    # Its LightGBM learned the holidays itself: they must not multiply its forecasts a second time.
    assert old.ml_net_of_holidays is False


def test_uplifts_of_an_earlier_version_unpickle_without_campaign_kinds_days_or_dips() -> None:
    import pickle

    quantity, category, events, _ = _planted()
    fitted = fit_event_uplift(quantity, category, events)
    old = EventUplift.__new__(EventUplift)
    for name in ("keys", "categories", "uplift", "slope", "days"):  # the fields before campaign kinds
        object.__setattr__(old, name, getattr(fitted, name))
    old = pickle.loads(pickle.dumps(old))
    days = _structured_events(np.array([[20.0, 20.0, 0.0, 0.0]]), kind=np.array([[1, 1, -1, -1]]))
    toys = np.array(["Toys"], dtype=object)
    slope = fitted.slope[list(fitted.categories).index("Toys")]
    np.testing.assert_allclose(old.multiplier(toys, days), [[1 + 0.2 * slope, 1 + 0.2 * slope, 1.0, 1.0]])


def test_a_delivered_calendar_without_holidays_gives_no_event_and_no_days_since() -> None:
    days = pd.date_range("2024-07-10", "2024-09-30")
    calendar = pd.DataFrame(
        {
            C.DATE: days,
            C.DAY_OF_WEEK: days.dayofweek + 1,
            C.IS_WEEKEND: days.dayofweek >= 5,
            C.IS_HOLIDAY: False,
            C.HOLIDAY_NAME: None,
            C.IS_PAYDAY: False,
            C.MONTH: days.month,
            C.QUARTER: days.quarter,
            C.YEAR: days.year,
        }
    )
    tables = SourceTables(products=pd.DataFrame(), warehouses=WAREHOUSES, calendar=calendar)
    target = target_day_features(tables, pd.Timestamp("2024-08-01"), "W1", horizons=range(1, 31)).by_horizon
    assert target[TARGET_EVENT].isna().all()
    assert target[TARGET_DAYS_SINCE_LAST_HOLIDAY].isna().all()
    events = horizon_events(tables, "W1", np.array(["A"], dtype=object), _day(dt.date(2024, 8, 2)), 30)
    assert (events.keys == NO_EVENT).all()
