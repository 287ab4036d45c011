"""Tests of the deterministic synthetic source generator.

The realism properties are asserted on a "small but large enough" source (400 SKUs x 3 warehouses
x 730 days, generated once per module) with a fixed seed, so the assertions are deterministic.
"""

import dataclasses
import datetime

import holidays
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from demand_platform import columns as C
from demand_platform import synthetic
from demand_platform.synthetic import GeneratorConfig, generate_source, generate_tables

REALISM = GeneratorConfig(n_skus=400, n_warehouses=3, days=730, seed=42)
SMALL = GeneratorConfig(n_skus=40, n_warehouses=3, days=120, seed=7, bad_rows=12)
# Seasonal sub-categories whose demand rises with temperature (the others fall).
WARM_SUB_CATEGORIES = {
    "Fans & Cooling",
    "Swimwear",
    "Camping",
    "Grills",
    "Pool Supplies",
    "Outdoor Toys",
    "Sun Care",
    "Cold Beverages",
}


# --- fixtures --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tables() -> dict[str, pd.DataFrame]:
    return generate_tables(REALISM)


@pytest.fixture(scope="module")
def small_tables() -> dict[str, pd.DataFrame]:
    return generate_tables(SMALL)


@pytest.fixture(scope="module")
def dates() -> pd.DatetimeIndex:
    return pd.date_range(REALISM.start, periods=REALISM.days, freq="D")


@pytest.fixture(scope="module")
def daily(tables: dict[str, pd.DataFrame], dates: pd.DatetimeIndex) -> pd.Series:
    """Net quantity per day, all SKUs and warehouses together."""
    tx = tables[C.TRANSACTIONS]
    return tx.groupby(C.TRANSACTION_DATE)[C.QUANTITY].sum().reindex(dates, fill_value=0)


@pytest.fixture(scope="module")
def cube(tables: dict[str, pd.DataFrame]) -> np.ndarray:
    """Net quantity as a dense ``[sku, warehouse, day]`` array (products / warehouses row order)."""
    tx = tables[C.TRANSACTIONS]
    sku = pd.Index(tables[C.PRODUCTS][C.SKU]).get_indexer(tx[C.SKU])
    wh = pd.Index(tables[C.WAREHOUSES][C.WAREHOUSE_ID]).get_indexer(tx[C.WAREHOUSE_ID])
    day = (tx[C.TRANSACTION_DATE] - pd.Timestamp(REALISM.start)).dt.days.to_numpy()
    out = np.zeros((REALISM.n_skus, REALISM.n_warehouses, REALISM.days), dtype=np.int64)
    np.add.at(out, (sku, wh, day), tx[C.QUANTITY].to_numpy())
    return out


@pytest.fixture(scope="module")
def launch_day(tables: dict[str, pd.DataFrame]) -> np.ndarray:
    return (tables[C.PRODUCTS][C.LAUNCH_DATE] - pd.Timestamp(REALISM.start)).dt.days.to_numpy()


def _thanksgivings(config: GeneratorConfig) -> list[pd.Timestamp]:
    years = range(config.start.year, config.end.year + 1)
    us = holidays.country_holidays("US", years=years)
    return [pd.Timestamp(d) for d, name in us.items() if "Thanksgiving" in name and d <= config.end]


# --- schema and files ---------------------------------------------------------------------------
EXPECTED_COLUMNS = {
    C.TRANSACTIONS: C.TRANSACTION_COLUMNS,
    C.PRODUCTS: C.PRODUCT_COLUMNS,
    C.WAREHOUSES: C.WAREHOUSE_COLUMNS,
    C.MARKETING_CAMPAIGNS: C.CAMPAIGN_COLUMNS,
    C.WEATHER: C.WEATHER_COLUMNS,
}
DATE_COLUMNS = {
    C.TRANSACTIONS: [C.TRANSACTION_DATE],
    C.PRODUCTS: [C.LAUNCH_DATE],
    C.WAREHOUSES: [C.OPERATIONAL_SINCE],
    C.MARKETING_CAMPAIGNS: [C.START_DATE, C.END_DATE],
    C.WEATHER: [C.DATE],
}


def test_tables_have_the_platform_columns_and_dtypes(small_tables: dict[str, pd.DataFrame]) -> None:
    assert set(small_tables) == set(EXPECTED_COLUMNS)
    assert C.CALENDAR not in small_tables
    for name, frame in small_tables.items():
        assert tuple(frame.columns) == EXPECTED_COLUMNS[name]
        for column in DATE_COLUMNS[name]:
            assert frame[column].dtype == "datetime64[ns]"
    tx = small_tables[C.TRANSACTIONS]
    assert tx[C.QUANTITY].dtype == np.int64
    assert tx[C.REVENUE].dtype == np.float64
    assert tx[C.TRANSACTION_ID].dtype == object
    assert small_tables[C.PRODUCTS][C.IS_SEASONAL].dtype == bool
    assert small_tables[C.WEATHER][C.IS_EXTREME_WEATHER].dtype == bool


def test_source_files_match_in_memory_tables(tmp_path, small_tables: dict[str, pd.DataFrame]) -> None:
    summary = generate_source(tmp_path / "source", SMALL)

    assert sorted(p.name for p in (tmp_path / "source").iterdir()) == sorted(
        f"{name}.parquet" for name in synthetic.WRITTEN_TABLES
    )
    for name, expected in small_tables.items():
        assert summary.rows[name] == len(expected)
        assert pq.read_schema(summary.files[name]) == synthetic.SCHEMAS[name]
        written = pd.read_parquet(summary.files[name])
        for column in DATE_COLUMNS[name]:  # date32 in parquet -> datetime.date objects in pandas
            written[column] = pd.to_datetime(written[column]).astype("datetime64[ns]")
        pd.testing.assert_frame_equal(written, expected)
    assert summary.bad_rows == SMALL.bad_rows
    assert summary.seconds > 0


def test_transactions_are_written_in_warehouse_chunks_ordered_by_warehouse_then_date(tmp_path) -> None:
    config = GeneratorConfig(n_skus=30, n_warehouses=3, days=60, seed=1)
    summary = generate_source(tmp_path, config)
    parquet = pq.ParquetFile(summary.files[C.TRANSACTIONS])
    assert parquet.metadata.num_row_groups >= config.n_warehouses
    tx = pd.read_parquet(summary.files[C.TRANSACTIONS])
    keys = list(zip(tx[C.WAREHOUSE_ID], tx[C.TRANSACTION_DATE], strict=True))
    assert keys == sorted(keys)


def test_same_seed_gives_identical_frames_and_another_seed_does_not(
    small_tables: dict[str, pd.DataFrame],
) -> None:
    again = generate_tables(SMALL)
    for name in small_tables:
        pd.testing.assert_frame_equal(again[name], small_tables[name])
    other = generate_tables(GeneratorConfig(**{**SMALL.__dict__, "seed": SMALL.seed + 1}))
    assert not other[C.TRANSACTIONS].equals(small_tables[C.TRANSACTIONS])
    assert not other[C.PRODUCTS].equals(small_tables[C.PRODUCTS])


def test_a_warehouse_does_not_depend_on_the_chunking(small_tables: dict[str, pd.DataFrame]) -> None:
    world = synthetic._build_world(SMALL)
    last = SMALL.n_warehouses - 1
    alone = synthetic._warehouse_transactions(world, last).to_pandas(date_as_object=False)
    expected = small_tables[C.TRANSACTIONS].iloc[: -SMALL.bad_rows]  # bad rows come last
    expected = expected[expected[C.WAREHOUSE_ID] == world.warehouse_ids[last]].reset_index(drop=True)
    alone[C.TRANSACTION_DATE] = alone[C.TRANSACTION_DATE].astype("datetime64[ns]")
    pd.testing.assert_frame_equal(alone, expected)


def test_invalid_config_is_rejected() -> None:
    with pytest.raises(ValueError, match="must be >= 1"):
        GeneratorConfig(n_skus=0)
    with pytest.raises(ValueError, match="must be >= 0"):
        GeneratorConfig(bad_rows=-1)


# --- referential content -----------------------------------------------------------------------
def test_clean_transactions_are_valid(tables: dict[str, pd.DataFrame]) -> None:
    tx = tables[C.TRANSACTIONS]
    assert tx[C.TRANSACTION_ID].is_unique
    assert not tx[list(C.TRANSACTION_COLUMNS)].isna().any().any()
    assert tx[C.SKU].isin(tables[C.PRODUCTS][C.SKU]).all()
    assert tx[C.WAREHOUSE_ID].isin(tables[C.WAREHOUSES][C.WAREHOUSE_ID]).all()
    assert tx[C.TRANSACTION_DATE].between(pd.Timestamp(REALISM.start), pd.Timestamp(REALISM.end)).all()
    assert (tx[C.QUANTITY] != 0).all()
    assert (np.sign(tx[C.REVENUE]) == np.sign(tx[C.QUANTITY])).all()
    assert tables[C.PRODUCTS][C.SKU].is_unique


def test_warehouses_are_us_locations(tables: dict[str, pd.DataFrame]) -> None:
    wh = tables[C.WAREHOUSES]
    assert wh[C.WAREHOUSE_ID].is_unique
    assert wh[C.LOCATION_STATE].str.fullmatch(r"[A-Z]{2}").all()
    assert wh[C.LATITUDE].between(18, 72).all() and wh[C.LONGITUDE].between(-170, -60).all()
    assert (wh[C.CAPACITY_UNITS] > 0).all()
    assert (wh[C.OPERATIONAL_SINCE] < pd.Timestamp(REALISM.start)).all()


def test_weather_covers_the_sales_period_for_every_warehouse_city(tables: dict[str, pd.DataFrame]) -> None:
    weather = tables[C.WEATHER]
    cities = set(tables[C.WAREHOUSES][C.LOCATION_CITY])
    assert set(weather[C.LOCATION_CITY]) == cities
    assert len(weather) == len(cities) * REALISM.days
    assert not weather.duplicated([C.DATE, C.LOCATION_CITY]).any()
    assert weather[C.DATE].min() == pd.Timestamp(REALISM.start)
    assert weather[C.DATE].max() == pd.Timestamp(REALISM.end)
    assert (weather[C.PRECIPITATION_MM] >= 0).all()
    assert 0.005 < weather[C.IS_EXTREME_WEATHER].mean() < 0.08


def test_campaigns_cover_skus_sitewide_regions_and_planned_future(tables: dict[str, pd.DataFrame]) -> None:
    cm = tables[C.MARKETING_CAMPAIGNS]
    assert cm[C.CAMPAIGN_ID].is_unique
    assert (cm[C.END_DATE] >= cm[C.START_DATE]).all()
    assert cm[C.DISCOUNT_PERCENT].between(1, 90).all()
    assert cm[C.SKU].dropna().isin(tables[C.PRODUCTS][C.SKU]).all()
    assert cm[C.SKU].isna().any()  # sitewide
    regions = cm[C.TARGET_REGION].dropna()
    assert len(regions) > 0 and regions.str.fullmatch(r"[A-Z]{2}").all()
    assert cm[C.TARGET_REGION].isna().any()
    last_planned = pd.Timestamp(REALISM.end) + pd.Timedelta(days=REALISM.campaign_horizon_days)
    assert (cm[C.END_DATE] > pd.Timestamp(REALISM.end)).any()
    assert (cm[C.START_DATE] <= last_planned).all()
    assert cm[C.CAMPAIGN_TYPE].nunique() >= 3


def test_bad_rows_cover_every_kind_of_invalid_row(small_tables: dict[str, pd.DataFrame]) -> None:
    tx = small_tables[C.TRANSACTIONS]
    products = small_tables[C.PRODUCTS][C.SKU]
    warehouses = small_tables[C.WAREHOUSES][C.WAREHOUSE_ID]
    bad = tx.tail(SMALL.bad_rows)
    clean = tx.iloc[: -SMALL.bad_rows]
    assert clean[C.TRANSACTION_ID].is_unique and not clean.isna().any().any()

    assert bad[C.TRANSACTION_ID].isin(clean[C.TRANSACTION_ID]).any()  # duplicate id
    assert (bad[C.SKU].notna() & ~bad[C.SKU].isin(products)).any()  # unknown sku
    assert (bad[C.WAREHOUSE_ID].notna() & ~bad[C.WAREHOUSE_ID].isin(warehouses)).any()
    for key in (C.SKU, C.WAREHOUSE_ID):  # null keys (12 rows cover sku and warehouse)
        assert bad[key].isna().any()
    assert (bad[C.QUANTITY] >= 10**7).any()  # absurd quantity
    in_range = bad[C.TRANSACTION_DATE].between(pd.Timestamp(SMALL.start), pd.Timestamp(SMALL.end))
    assert (bad[C.TRANSACTION_DATE].notna() & ~in_range).any()  # date outside the period


def test_order_lines_are_grouped_into_orders(tables: dict[str, pd.DataFrame]) -> None:
    tx = tables[C.TRANSACTIONS]
    per_order = tx.groupby(C.ORDER_ID).agg(
        lines=(C.SKU, "size"),
        customers=(C.CUSTOMER_ID, "nunique"),
        warehouses=(C.WAREHOUSE_ID, "nunique"),
        days=(C.TRANSACTION_DATE, "nunique"),
    )
    assert (per_order[["customers", "warehouses", "days"]] == 1).all().all()
    assert per_order["lines"].between(1, 4).all()
    assert 1.4 < per_order["lines"].mean() < 2.5
    assert (per_order["lines"] > 1).mean() > 0.3
    # Large daily quantities are split: some SKU-warehouse-days have several sales lines.
    sales = tx[tx[C.QUANTITY] > 0]
    lines_per_day = sales.groupby([C.SKU, C.WAREHOUSE_ID, C.TRANSACTION_DATE]).size()
    assert 0.01 < (lines_per_day > 1).mean() < 0.3
    # Customers come back.
    assert tx[C.CUSTOMER_ID].nunique() < 0.5 * len(per_order)


# --- realism --------------------------------------------------------------------------------------
def test_pareto_few_skus_drive_most_volume(cube: np.ndarray) -> None:
    volume = np.sort(cube.sum(axis=(1, 2)))[::-1]
    share = np.cumsum(volume) / volume.sum()
    skus_for_80 = (np.searchsorted(share, 0.8) + 1) / len(volume)
    assert 0.12 <= skus_for_80 <= 0.20


def test_weekends_are_about_30_percent_lower(daily: pd.Series) -> None:
    weekend = daily.index.dayofweek >= 5
    ratio = daily[weekend].mean() / daily[~weekend].mean()
    assert 0.62 < ratio < 0.78


def test_q4_is_about_40_percent_above_q2(daily: pd.Series) -> None:
    quarter = daily.index.quarter
    ratio = daily[quarter == 4].mean() / daily[quarter == 2].mean()
    assert 1.3 < ratio < 1.55


def test_black_friday_and_cyber_monday_are_3_to_5_times_a_normal_day(daily: pd.Series) -> None:
    thanksgivings = _thanksgivings(REALISM)
    assert len(thanksgivings) == 2
    for thanksgiving in thanksgivings:
        before = daily[thanksgiving - pd.Timedelta(days=28) : thanksgiving - pd.Timedelta(days=1)]
        normal = before[before.index.dayofweek < 5].median()
        black_friday = daily[thanksgiving + pd.Timedelta(days=1)] / normal
        cyber_monday = daily[thanksgiving + pd.Timedelta(days=4)] / normal
        assert 3.0 <= black_friday <= 5.0
        assert 3.0 <= cyber_monday <= 5.0


def test_about_15_percent_growth_with_one_declining_category(tables: dict[str, pd.DataFrame]) -> None:
    tx = tables[C.TRANSACTIONS].merge(tables[C.PRODUCTS][[C.SKU, C.CATEGORY]], on=C.SKU)
    year = np.where(tx[C.TRANSACTION_DATE] < pd.Timestamp(REALISM.start) + pd.Timedelta(days=365), 1, 2)
    by_year = tx.groupby(year)[C.QUANTITY].sum()
    assert 0.08 < by_year[2] / by_year[1] - 1 < 0.24
    per_category = tx.groupby([C.CATEGORY, year])[C.QUANTITY].sum().unstack()
    growth = per_category[2] / per_category[1] - 1
    assert (growth < 0).sum() == 1
    assert -0.18 < growth.min() < -0.04


def test_promotions_lift_with_the_discount_then_dip(
    tables: dict[str, pd.DataFrame], cube: np.ndarray
) -> None:
    per_sku = cube.sum(axis=1)  # [sku, day]
    sku_row = pd.Index(tables[C.PRODUCTS][C.SKU])
    cm = tables[C.MARKETING_CAMPAIGNS]
    cm = cm[cm[C.SKU].notna() & cm[C.TARGET_REGION].isna()]
    start = (cm[C.START_DATE] - pd.Timestamp(REALISM.start)).dt.days.to_numpy()
    end = (cm[C.END_DATE] - pd.Timestamp(REALISM.start)).dt.days.to_numpy()
    rows = sku_row.get_indexer(cm[C.SKU])
    measured = []
    for row, s, e, discount in zip(rows, start, end, cm[C.DISCOUNT_PERCENT], strict=True):
        if s < 28 or e + 7 >= REALISM.days:
            continue
        baseline = per_sku[row, s - 28 : s].mean()
        if baseline >= 1.0:
            during = per_sku[row, s : e + 1].mean() / baseline
            after = per_sku[row, e + 1 : e + 4].mean() / baseline
            measured.append((discount, during, after))
    lift = pd.DataFrame(measured, columns=["discount", "during", "after"])
    assert len(lift) > 50
    assert lift["during"].median() > 1.3
    assert lift["after"].median() < 0.95
    assert lift["discount"].corr(lift["during"], method="spearman") > 0.25
    deep = lift.loc[lift["discount"] >= 30, "during"].median()
    shallow = lift.loc[lift["discount"] <= 20, "during"].median()
    assert deep > shallow


def test_new_skus_launch_inside_the_window_and_never_sell_before(
    tables: dict[str, pd.DataFrame], cube: np.ndarray, launch_day: np.ndarray
) -> None:
    days = np.arange(REALISM.days)
    before_launch = days[None, None, :] < launch_day[:, None, None]
    assert not cube[np.broadcast_to(before_launch, cube.shape)].any()
    launched_inside = (launch_day > 0) & (launch_day < REALISM.days)
    assert 0.05 < launched_inside.mean() < 0.3
    assert (cube[launched_inside].sum(axis=(1, 2)) > 0).mean() > 0.8


def test_intermittent_long_tail(cube: np.ndarray, launch_day: np.ndarray) -> None:
    alive = np.arange(REALISM.days)[None, :] >= launch_day[:, None]  # [sku, day]
    alive_days = alive.sum(axis=1)[:, None]
    zero_share = ((cube == 0) & alive[:, None, :]).sum(axis=2) / alive_days  # [sku, warehouse]
    assert (zero_share > 0.7).mean() > 0.3
    assert (zero_share > 0.9).mean() > 0.1
    assert (zero_share < 0.2).mean() > 0.1  # and a fast-moving head


def test_about_2_5_percent_outlier_days(cube: np.ndarray) -> None:
    series = cube.reshape(-1, REALISM.days).astype(float)
    fast = pd.DataFrame(series[series.mean(axis=1) > 15].T)
    assert fast.shape[1] >= 10
    rolling_median = fast.rolling(29, center=True, min_periods=15).median()
    spike_share = (fast > 4 * rolling_median).to_numpy().mean()
    assert 0.015 < spike_share < 0.04


def test_weather_moves_seasonal_items(tables: dict[str, pd.DataFrame], dates: pd.DatetimeIndex) -> None:
    products = tables[C.PRODUCTS]
    assert 0.08 < products[C.IS_SEASONAL].mean() < 0.3
    group = np.where(
        ~products[C.IS_SEASONAL],
        "none",
        np.where(products[C.SUB_CATEGORY].isin(WARM_SUB_CATEGORIES), "warm", "cold"),
    )
    tx = tables[C.TRANSACTIONS].merge(pd.DataFrame({C.SKU: products[C.SKU], "group": group}), on=C.SKU)
    demand = tx.groupby([C.WAREHOUSE_ID, C.TRANSACTION_DATE, "group"])[C.QUANTITY].sum().unstack(fill_value=0)
    weather = tables[C.WEATHER].set_index([C.LOCATION_CITY, C.DATE])[C.TEMPERATURE_AVG]
    city = tables[C.WAREHOUSES].set_index(C.WAREHOUSE_ID)[C.LOCATION_CITY]

    def detrended(values: pd.Series) -> pd.Series:
        return values - values.rolling(31, center=True, min_periods=10).mean()

    for warehouse, frame in demand.groupby(level=0):
        frame = frame.droplevel(0).reindex(dates, fill_value=0)
        # Day-to-day temperature anomaly vs. seasonal demand relative to non-seasonal demand
        # (which carries the same weekday, holiday and season effects).
        anomaly = detrended(weather[city[warehouse]].reindex(dates))
        warm = detrended(np.log((frame["warm"] + 1) / (frame["none"] + 1)))
        cold = detrended(np.log((frame["cold"] + 1) / (frame["none"] + 1)))
        assert warm.corr(anomaly) > 0.2
        assert cold.corr(anomaly) < -0.2
        assert abs(detrended(np.log(frame["none"] + 1)).corr(anomaly)) < 0.15


def test_noise_is_over_dispersed(cube: np.ndarray, dates: pd.DatetimeIndex) -> None:
    # Mid-week days of one quarter: close to a constant mean, so Poisson noise would give ~1.
    window = (dates.dayofweek.isin([1, 2, 3])) & (dates.quarter == 2) & (dates.year == REALISM.start.year)
    series = cube[:, :, window].reshape(-1, window.sum()).astype(float)
    mean, variance = series.mean(axis=1), series.var(axis=1, ddof=1)
    busy = mean > 2
    assert busy.sum() > 50
    assert np.median(variance[busy] / mean[busy]) > 1.5


def test_returns_are_a_small_share_and_net_against_sales(
    tables: dict[str, pd.DataFrame], cube: np.ndarray
) -> None:
    quantity = tables[C.TRANSACTIONS][C.QUANTITY]
    returns = quantity[quantity < 0]
    assert 0.01 < len(returns) / len(quantity) < 0.06
    assert 0.005 < -returns.sum() / quantity[quantity > 0].sum() < 0.05
    assert (cube >= 0).all()  # a return never exceeds the day's sales of that SKU in that warehouse


def test_generation_summary_counts(tmp_path) -> None:
    config = GeneratorConfig(n_skus=20, n_warehouses=2, days=30, seed=3)
    summary = generate_source(tmp_path, config, progress=False)
    assert summary.out_dir == tmp_path
    assert summary.rows[C.PRODUCTS] == 20
    assert summary.rows[C.WAREHOUSES] == 2
    assert summary.rows[C.WEATHER] == 2 * 30
    assert summary.rows[C.TRANSACTIONS] == pq.ParquetFile(summary.files[C.TRANSACTIONS]).metadata.num_rows
    assert summary.rows_per_second > 0
    assert config.end == datetime.date(2023, 1, 30)


# --- scenarios and the truth --------------------------------------------------------------------------------------------
SCENARIO_START = datetime.date(2024, 1, 1)
SCENARIO_SALE = (datetime.date(2024, 5, 6), datetime.date(2024, 5, 10))
SCENARIO = GeneratorConfig(
    n_skus=120,
    n_warehouses=2,
    start=SCENARIO_START,
    days=180,
    seed=3,
    planned_campaigns=(synthetic.PlannedCampaign(*SCENARIO_SALE, discount=30.0),),
    level_shifts=(synthetic.LevelShift("Apparel", datetime.date(2024, 4, 1), 0.5),),
    late_launches=10,
    late_launch_window=(datetime.date(2024, 6, 1), datetime.date(2024, 6, 14)),
)


@pytest.fixture(scope="module")
def scenario() -> tuple[dict[str, pd.DataFrame], pd.DataFrame]:
    return generate_tables(SCENARIO), synthetic.true_demand(SCENARIO)


def _daily_units(tables: dict[str, pd.DataFrame]) -> pd.Series:
    tx = tables[C.TRANSACTIONS]
    return tx.loc[tx[C.QUANTITY] > 0].groupby([C.SKU, C.WAREHOUSE_ID, C.TRANSACTION_DATE])[C.QUANTITY].sum()


def test_a_planned_sitewide_sale_is_in_the_campaigns_and_lifts_demand(scenario) -> None:
    tables, truth = scenario
    campaigns = tables[C.MARKETING_CAMPAIGNS]
    planned = campaigns.loc[
        campaigns[C.SKU].isna() & (campaigns[C.DISCOUNT_PERCENT] == 30.0) & campaigns[C.TARGET_REGION].isna()
    ]
    assert len(planned) == 1
    assert (planned[C.START_DATE].dt.date.iloc[0], planned[C.END_DATE].dt.date.iloc[0]) == SCENARIO_SALE
    assert campaigns[C.CAMPAIGN_ID].is_unique
    per_day = truth.groupby(C.DATE)["mean"].sum()
    sale = per_day.loc[str(SCENARIO_SALE[0]) : str(SCENARIO_SALE[1])].mean()
    weeks_before = per_day.loc["2024-04-22":"2024-05-03"].mean()
    # lift = 1 + elasticity (2-4) * 0.3: 1.6-2.2 over the same weekdays two weeks before
    assert 1.5 < sale / weeks_before < 2.3


def test_a_level_shift_lowers_its_category_from_its_day(scenario) -> None:
    tables, truth = scenario
    category = tables[C.PRODUCTS].set_index(C.SKU)[C.CATEGORY]
    truth = truth.assign(apparel=truth[C.SKU].map(category).eq("Apparel").to_numpy())
    per_day = truth.groupby([C.DATE, "apparel"])["mean"].sum().unstack()
    share = per_day[True] / per_day.sum(axis=1)
    before, after = share.loc["2024-03-04":"2024-03-31"].mean(), share.loc["2024-04-01":"2024-04-28"].mean()
    # The category halves, the others stay: its share s becomes s/2 / (1 - s/2).
    assert after == pytest.approx(before / 2 / (1 - before / 2), rel=0.1)


def test_late_launches_launch_in_their_window_and_sell_nothing_before(scenario) -> None:
    tables, _ = scenario
    launch = tables[C.PRODUCTS].set_index(C.SKU)[C.LAUNCH_DATE].dt.date
    late = launch[(launch >= SCENARIO.late_launch_window[0]) & (launch <= SCENARIO.late_launch_window[1])]
    assert len(late) >= SCENARIO.late_launches
    tx = tables[C.TRANSACTIONS]
    first_sale = tx.loc[tx[C.SKU].isin(late.index)].groupby(C.SKU)[C.TRANSACTION_DATE].min().dt.date
    assert (first_sale >= late.reindex(first_sale.index)).all()
    # The scenario changes nothing else: the same seed without it draws the same products otherwise.
    plain = generate_tables(dataclasses.replace(SCENARIO, late_launches=0, late_launch_window=None))
    others = ~tables[C.PRODUCTS][C.SKU].isin(late.index)
    pd.testing.assert_frame_equal(
        tables[C.PRODUCTS].loc[others].reset_index(drop=True),
        plain[C.PRODUCTS].loc[others].reset_index(drop=True),
    )


def test_true_demand_is_the_distribution_the_sales_were_drawn_from(scenario) -> None:
    tables, truth = scenario
    units = _daily_units(tables)
    keyed = truth.set_index([C.SKU, C.WAREHOUSE_ID, C.DATE])
    actual = units.reindex(keyed.index, fill_value=0).to_numpy(dtype=float)
    assert len(truth) == SCENARIO.n_skus * SCENARIO.n_warehouses * SCENARIO.days
    assert actual.sum() == pytest.approx(keyed["mean"].sum(), rel=0.03)
    median = keyed["median"].to_numpy()
    # The median: at least half the draws at or below it and at least half at or above it.
    assert (actual <= median).mean() >= 0.5 and (actual >= median).mean() >= 0.5
    # Nothing beats it on absolute error: the mean, scaled medians and the actuals' own mean do worse.
    error = np.abs(actual - median).sum()
    for other in (keyed["mean"].to_numpy(), 0.8 * median, 1.2 * median + 0.5):
        assert error < np.abs(actual - other).sum()


@pytest.mark.parametrize(
    "change",
    [
        {"level_shifts": (synthetic.LevelShift("Nothing", SCENARIO_START, 0.5),)},
        {"level_shifts": (synthetic.LevelShift("Apparel", SCENARIO_START, 0.0),)},
        {"planned_campaigns": (synthetic.PlannedCampaign(SCENARIO_SALE[1], SCENARIO_SALE[0], 30.0),)},
        {"late_launches": 3, "late_launch_window": None},
        {"late_launches": 3, "late_launch_window": (datetime.date(2030, 1, 1), datetime.date(2030, 1, 2))},
    ],
)
def test_a_scenario_out_of_range_is_refused(change: dict) -> None:
    with pytest.raises(ValueError):
        dataclasses.replace(SCENARIO, **change)


def test_a_planned_campaign_for_an_unknown_sku_is_refused() -> None:
    config = dataclasses.replace(
        SCENARIO, planned_campaigns=(synthetic.PlannedCampaign(*SCENARIO_SALE, 20.0, sku="SKU-99999"),)
    )
    with pytest.raises(ValueError, match="SKU-99999"):
        generate_tables(config)
