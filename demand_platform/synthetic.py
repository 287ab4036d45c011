"""Deterministic synthetic source generator.

A *source* is a directory holding one parquet file per table (``transactions``, ``products``,
``warehouses``, ``marketing_campaigns``, ``weather``). The calendar table is not written: the
platform derives it.

Daily demand of SKU ``i`` in warehouse ``w`` on day ``t`` is::

    mu = base_i * affinity_iw * wh_scale_w * trend_cat(i)(t) * weekday(t) * season(t) * holiday(t)
         * promo_iw(t) * weather_iw(t) * launch_ramp_i(t) * outlier_iwt

and the gross quantity sold is drawn from a gamma-Poisson (negative binomial) mixture with SKU
specific dispersion. Everything is vectorised over a ``[n_skus, days]`` matrix per warehouse; the
only Python loops run over warehouses (and over the handful of holidays and cities).

The quantity matrix is then exploded into order lines: large daily quantities are split into
several lines, a small share of sales get a return line (negative quantity), and the lines of a
warehouse-day are shuffled and grouped into orders of 1-4 lines, each order with one customer.

Every warehouse draws from its own random stream (``SeedSequence(seed, spawn_key=(stream, w))``),
so a warehouse's transactions do not depend on how the warehouses are chunked, and
:func:`generate_tables` (in memory) and :func:`generate_source` (chunked parquet) share the same
per-warehouse code and produce identical data for the same :class:`GeneratorConfig`.
"""

import dataclasses
import datetime
import time
from pathlib import Path
from typing import Any

import holidays
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm import tqdm

from demand_platform import columns as C
from demand_platform.source_files import SOURCE_FILE_SCHEMAS

__all__ = [
    "GenerationSummary",
    "GeneratorConfig",
    "LevelShift",
    "PlannedCampaign",
    "SCHEMAS",
    "WRITTEN_TABLES",
    "generate_source",
    "generate_tables",
    "true_demand",
]

# --- catalogue -------------------------------------------------------------------------------
# (category, share of SKUs, yearly growth, median price, median weight kg, sub-categories).
# A sub-category's second element is its weather direction: +1 sells when warm, -1 when cold,
# 0 not seasonal. Seasonal SKUs are exactly the SKUs of a weather-sensitive sub-category.
_CATEGORIES: tuple[tuple[str, float, float, float, float, tuple[tuple[str, int], ...]], ...] = (
    (
        "Electronics",
        0.14,
        0.15,
        120.0,
        0.8,
        (("Phones", 0), ("Audio", 0), ("Computers", 0), ("Accessories", 0)),
    ),
    (
        "Home & Kitchen",
        0.14,
        0.13,
        45.0,
        2.5,
        (
            ("Cookware", 0),
            ("Small Appliances", 0),
            ("Decor", 0),
            ("Fans & Cooling", 1),
            ("Space Heaters", -1),
        ),
    ),
    (
        "Apparel",
        0.14,
        0.14,
        35.0,
        0.5,
        (("Tops", 0), ("Bottoms", 0), ("Footwear", 0), ("Swimwear", 1), ("Outerwear", -1)),
    ),
    (
        "Sports & Outdoors",
        0.10,
        0.14,
        60.0,
        3.0,
        (("Fitness", 0), ("Cycling", 0), ("Camping", 1), ("Winter Sports", -1)),
    ),
    (
        "Garden & Patio",
        0.08,
        0.13,
        55.0,
        6.0,
        (("Garden Tools", 0), ("Grills", 1), ("Pool Supplies", 1), ("Snow Removal", -1)),
    ),
    (
        "Toys & Games",
        0.10,
        0.14,
        25.0,
        0.9,
        (("Board Games", 0), ("Puzzles", 0), ("Action Figures", 0), ("Outdoor Toys", 1)),
    ),
    (
        "Beauty",
        0.10,
        0.16,
        18.0,
        0.3,
        (("Skincare", 0), ("Haircare", 0), ("Fragrance", 0), ("Sun Care", 1)),
    ),
    (
        "Grocery",
        0.12,
        0.12,
        8.0,
        1.0,
        (("Snacks", 0), ("Pantry", 0), ("Coffee & Tea", 0), ("Cold Beverages", 1)),
    ),
    (
        "Office Supplies",
        0.08,
        -0.10,
        15.0,
        1.2,
        (("Paper", 0), ("Writing Instruments", 0), ("Desk Accessories", 0), ("Printer Ink", 0)),
    ),
)
_BRANDS_PER_CATEGORY = 4
_BRANDS = (
    "Voltix", "Nimbus", "Arcwave", "Pixelon",
    "Hearthly", "Copperleaf", "Kitchara", "Domina",
    "Threadline", "Northpeak", "Urbano", "Velour",
    "Trailforge", "Summitco", "Pacebolt", "Ridgeway",
    "Greenhaven", "Patiora", "Fernwood", "Bloomly",
    "Playbright", "Toyvana", "Kiddo", "Gamewright",
    "Lumiere", "Glowly", "Purelle", "Silkara",
    "Harvesto", "Pantrio", "Brewden", "Snackly",
    "Paperloft", "Inkwell", "Deskmate", "Clipstone",
)  # fmt: skip
_SEASONAL_SUBCATEGORY_WEIGHT = 0.5  # seasonal sub-categories hold fewer SKUs than the others

# --- warehouses ----------------------------------------------------------------------------
# (city, state, latitude, longitude); warehouses take distinct cities (reused beyond 60).
_CITIES: tuple[tuple[str, str, float, float], ...] = (
    ("New York", "NY", 40.71, -74.01), ("Los Angeles", "CA", 34.05, -118.24),
    ("Chicago", "IL", 41.88, -87.63), ("Houston", "TX", 29.76, -95.37),
    ("Phoenix", "AZ", 33.45, -112.07), ("Philadelphia", "PA", 39.95, -75.17),
    ("San Antonio", "TX", 29.42, -98.49), ("San Diego", "CA", 32.72, -117.16),
    ("Dallas", "TX", 32.78, -96.80), ("Jacksonville", "FL", 30.33, -81.66),
    ("Columbus", "OH", 39.96, -83.00), ("Charlotte", "NC", 35.23, -80.84),
    ("Indianapolis", "IN", 39.77, -86.16), ("Seattle", "WA", 47.61, -122.33),
    ("Denver", "CO", 39.74, -104.99), ("Nashville", "TN", 36.16, -86.78),
    ("Oklahoma City", "OK", 35.47, -97.52), ("El Paso", "TX", 31.76, -106.49),
    ("Boston", "MA", 42.36, -71.06), ("Portland", "OR", 45.52, -122.68),
    ("Las Vegas", "NV", 36.17, -115.14), ("Detroit", "MI", 42.33, -83.05),
    ("Memphis", "TN", 35.15, -90.05), ("Louisville", "KY", 38.25, -85.76),
    ("Baltimore", "MD", 39.29, -76.61), ("Milwaukee", "WI", 43.04, -87.91),
    ("Albuquerque", "NM", 35.08, -106.65), ("Tucson", "AZ", 32.22, -110.97),
    ("Fresno", "CA", 36.74, -119.79), ("Sacramento", "CA", 38.58, -121.49),
    ("Kansas City", "MO", 39.10, -94.58), ("Atlanta", "GA", 33.75, -84.39),
    ("Omaha", "NE", 41.26, -95.93), ("Raleigh", "NC", 35.78, -78.64),
    ("Miami", "FL", 25.76, -80.19), ("Minneapolis", "MN", 44.98, -93.27),
    ("Tulsa", "OK", 36.15, -95.99), ("Cleveland", "OH", 41.50, -81.69),
    ("New Orleans", "LA", 29.95, -90.07), ("Tampa", "FL", 27.95, -82.46),
    ("Pittsburgh", "PA", 40.44, -79.99), ("Cincinnati", "OH", 39.10, -84.51),
    ("St. Louis", "MO", 38.63, -90.20), ("Salt Lake City", "UT", 40.76, -111.89),
    ("Boise", "ID", 43.62, -116.21), ("Richmond", "VA", 37.54, -77.44),
    ("Birmingham", "AL", 33.52, -86.80), ("Buffalo", "NY", 42.89, -78.88),
    ("Spokane", "WA", 47.66, -117.43), ("Des Moines", "IA", 41.59, -93.62),
    ("Little Rock", "AR", 34.75, -92.29), ("Anchorage", "AK", 61.22, -149.90),
    ("Honolulu", "HI", 21.31, -157.86), ("Charleston", "SC", 32.78, -79.93),
    ("Hartford", "CT", 41.77, -72.67), ("Providence", "RI", 41.82, -71.41),
    ("Wichita", "KS", 37.69, -97.34), ("Fargo", "ND", 46.88, -96.79),
    ("Sioux Falls", "SD", 43.55, -96.73), ("Billings", "MT", 45.78, -108.50),
)  # fmt: skip

# --- demand model parameters -----------------------------------------------------------------
_BASE_LOG_MEDIAN = np.log(0.3)  # median base demand of a SKU in an average warehouse, units/day
_BASE_LOG_SIGMA = 1.85  # spread of SKU popularity (drives the Pareto / long tail shape)
_BASE_JITTER_SIGMA = 0.15
_NO_LAUNCH_TOP_SHARE = 0.05  # the most popular SKUs are established products
_AFFINITY_SIGMA = 0.45  # SKU x warehouse assortment fit
_WAREHOUSE_SCALE_SIGMA = 0.35
_WEEKDAY_FACTORS = np.array([1.03, 1.01, 1.0, 1.0, 0.96, 0.70, 0.70])  # Monday .. Sunday
_SEASON_AMPLITUDE = 0.14  # annual cosine, peak mid-December
_SEASON_PEAK_DOY = 350
_PRE_CHRISTMAS_FACTOR = 1.22  # from the day after Cyber Monday to December 23
_HOLIDAY_FACTORS = {
    "Black Friday": 4.0,
    "Cyber Monday": 3.7,
    "Thanksgiving": 0.55,
    "Christmas Day": 0.35,
    "New Year's Day": 0.6,
    "Independence Day": 0.75,
}
_OTHER_HOLIDAY_FACTOR = 1.1  # Memorial Day, Labor Day, ... sales
_OBSERVED_HOLIDAY_FACTOR = 0.95
_WEEKEND_AFTER_BLACK_FRIDAY = 1.8
_LAUNCH_SHARE_IN_WINDOW = 0.15  # share of SKUs launched inside the sales window (cold start)
_LAUNCH_RAMP_DAYS = 21.0
_OUTLIER_RATE = 0.025
_OUTLIER_MULTIPLIER = (3.0, 7.0)
_DISPERSION = (1.5, 6.0)  # gamma shape k: variance = mu + mu^2 / k
_ELASTICITY = (2.0, 4.0)  # lift = 1 + elasticity * discount
_POST_PROMO_DIP_DAYS = 7
_POST_PROMO_DIP_DEPTH = 0.35  # for a 40% discount; scales with the discount
_WEATHER_BETA = (0.35, 0.7)  # log-lift per 10 degC for seasonal SKUs
_WEATHER_REFERENCE_C = 13.0
_EXTREME_WEATHER_FACTOR = 0.8
_RETURN_RATE = 0.035  # share of SKU-days with sales that also see a return
_RETURN_RATE_AFTER_HOLIDAYS = 0.08  # December 26 .. January 15
_RETURN_SHARE = (0.1, 0.6)  # returned share of the day's quantity
_SPLIT_THRESHOLD = 20  # daily quantities >= this split into several lines
_MAX_LINES_PER_DAY = 8
_ORDER_SIZE_PROBABILITIES = np.array([0.45, 0.30, 0.15, 0.10])  # 1, 2, 3, 4 lines per order
_CUSTOMERS_PER_SKU = 3  # customer pool per warehouse = n_skus * this (at least 200)
_CUSTOMER_SKEW = 2.2

_SKU_CAMPAIGNS_PER_YEAR = 0.6  # per SKU
_SITEWIDE_CAMPAIGNS_PER_YEAR = 5.0
_CAMPAIGN_TYPES: tuple[tuple[str, int, int, float, float], ...] = (
    # (type, min days, max days, min discount %, max discount %)
    ("flash_sale", 1, 3, 20.0, 50.0),
    ("weekly_deal", 7, 7, 10.0, 25.0),
    ("email_promo", 2, 5, 10.0, 20.0),
    ("clearance", 7, 21, 30.0, 50.0),
)
_SITEWIDE_TYPE = ("seasonal_sale", 5, 14, 5.0, 20.0)
_REGIONAL_SHARE = 0.3

# --- random streams ----------------------------------------------------------------------------
_STREAM_CATALOG = 0
_STREAM_WAREHOUSES = 1
_STREAM_CAMPAIGNS = 2
_STREAM_WEATHER = 3
_STREAM_SALES = 4
_STREAM_BAD_ROWS = 5
_STREAM_LATE_LAUNCHES = 6

_EPOCH = datetime.date(1970, 1, 1)
_NS = "datetime64[ns]"

# --- written schemas -----------------------------------------------------------------------
WRITTEN_TABLES = (C.TRANSACTIONS, C.PRODUCTS, C.WAREHOUSES, C.MARKETING_CAMPAIGNS, C.WEATHER)
"""Tables written by :func:`generate_source` (the calendar is derived by the platform)."""

SCHEMAS: dict[str, pa.Schema] = {table: SOURCE_FILE_SCHEMAS[table] for table in WRITTEN_TABLES}
"""Arrow schema of each file :func:`generate_source` writes (the shared source layout)."""
"""Arrow schema of every written table: strings are ``string``, dates ``date32``."""


@dataclasses.dataclass(frozen=True)
class PlannedCampaign:
    """A campaign put into ``marketing_campaigns`` on top of the random ones (a scenario's event).

    Attributes:
        start: First day (inclusive).
        end: Last day (inclusive).
        discount: Discount in percent.
        sku: The SKU id (e.g. ``"SKU-00001"``), or None for a sitewide campaign.
        region: The targeted state, or None for every region.
        campaign_type: ``campaign_type`` written to the table.
    """

    start: datetime.date
    end: datetime.date
    discount: float
    sku: str | None = None
    region: str | None = None
    campaign_type: str = _SITEWIDE_TYPE[0]


@dataclasses.dataclass(frozen=True)
class LevelShift:
    """A lasting change of one category's demand (a scenario's structural break).

    Attributes:
        category: The category's name (``products.category``).
        start: First day at the new level.
        factor: Demand multiplier from ``start`` on (0.6: the category falls 40%).
    """

    category: str
    start: datetime.date
    factor: float


@dataclasses.dataclass(frozen=True)
class GeneratorConfig:
    """Size and seed of a synthetic source.

    Attributes:
        n_skus: Number of products.
        n_warehouses: Number of warehouses; every SKU is stocked in every warehouse.
        start: First sales date.
        days: Number of sales days (the last sales date is ``start + days - 1``).
        seed: Seed of all random streams; the same config always yields the same data.
        campaign_horizon_days: Campaigns are planned up to this many days past the last sales date.
        bad_rows: If > 0, this many deliberately invalid transaction rows are appended (duplicate
            transaction_id, unknown sku, unknown warehouse, null key, absurd quantity, date outside
            the sales period), for demoing quarantine.
        planned_campaigns: Campaigns added to the random ones (they move demand like any campaign).
        level_shifts: Lasting category level changes.
        late_launches: This many SKUs (neither best sellers nor of the declining category) launch inside
            ``late_launch_window`` instead of their drawn launch day.
        late_launch_window: ``(first, last)`` launch days of the late launches.
    """

    n_skus: int = 300
    n_warehouses: int = 4
    start: datetime.date = datetime.date(2023, 1, 1)
    days: int = 730
    seed: int = 42
    campaign_horizon_days: int = 60
    bad_rows: int = 0
    planned_campaigns: tuple[PlannedCampaign, ...] = ()
    level_shifts: tuple[LevelShift, ...] = ()
    late_launches: int = 0
    late_launch_window: tuple[datetime.date, datetime.date] | None = None

    def __post_init__(self) -> None:
        """Validate the sizes.

        Raises:
            ValueError: If a size is out of range.
        """
        if self.n_skus < 1 or self.n_warehouses < 1 or self.days < 1:
            raise ValueError("n_skus, n_warehouses and days must be >= 1")
        if self.campaign_horizon_days < 0 or self.bad_rows < 0:
            raise ValueError("campaign_horizon_days and bad_rows must be >= 0")
        categories = {c[0] for c in _CATEGORIES}
        for shift in self.level_shifts:
            if shift.category not in categories or shift.factor <= 0:
                raise ValueError(
                    f"level shift {shift}: category must be one of {sorted(categories)}, factor > 0"
                )
        for campaign in self.planned_campaigns:
            if campaign.end < campaign.start or not 0 < campaign.discount < 100:
                raise ValueError(
                    f"planned campaign {campaign}: end before start or discount outside (0, 100)"
                )
        if self.late_launches < 0 or self.late_launches > self.n_skus:
            raise ValueError("late_launches must be in [0, n_skus]")
        if self.late_launches and (
            self.late_launch_window is None
            or not self.start <= self.late_launch_window[0] <= self.late_launch_window[1] <= self.end
        ):
            raise ValueError("late_launches need a late_launch_window (first <= last) inside the sales days")

    @property
    def end(self) -> datetime.date:
        """Last sales date (inclusive)."""
        return self.start + datetime.timedelta(days=self.days - 1)


@dataclasses.dataclass(frozen=True)
class GenerationSummary:
    """What :func:`generate_source` wrote.

    Attributes:
        out_dir: The source directory.
        files: Parquet file per table name.
        rows: Row count per table name (transactions include the bad rows).
        bad_rows: Number of deliberately invalid transaction rows included.
        seconds: Wall-clock generation time.
    """

    out_dir: Path
    files: dict[str, Path]
    rows: dict[str, int]
    bad_rows: int
    seconds: float

    @property
    def rows_per_second(self) -> float:
        """Transaction rows written per second."""
        return self.rows[C.TRANSACTIONS] / self.seconds if self.seconds > 0 else float("inf")


@dataclasses.dataclass
class _World:
    """Everything shared by the warehouses: catalogue, calendar effects, weather, campaigns."""

    config: GeneratorConfig
    epoch_start: int  # days since 1970-01-01 of the first sales date
    tables: dict[str, pa.Table]  # the small tables, ready to write
    # products
    sku_ids: pa.Array
    category: np.ndarray
    price: np.ndarray
    base: np.ndarray
    dispersion: np.ndarray
    elasticity: np.ndarray
    weather_coef: np.ndarray  # signed log-lift per 10 degC, 0 for non-seasonal SKUs
    launch_day: np.ndarray  # day index of launch (negative = before the window)
    # warehouses
    warehouse_ids: list[str]
    warehouse_states: list[str]
    warehouse_city_row: np.ndarray  # row in the weather matrices
    warehouse_scale: np.ndarray
    # days
    day_factor: np.ndarray  # weekday * season * holiday
    category_trend: np.ndarray  # [n_categories, days]
    return_rate: np.ndarray  # [days]
    temperature: np.ndarray  # [n_cities, days]
    extreme: np.ndarray  # [n_cities, days] bool
    # campaigns
    campaign_sku: np.ndarray  # SKU index, -1 = all SKUs
    campaign_start: np.ndarray  # day index, inclusive
    campaign_end: np.ndarray  # day index, inclusive
    campaign_discount: np.ndarray
    campaign_region: np.ndarray  # str: target state, "" = all regions


# --- helpers ---------------------------------------------------------------------------------------
def _rng(seed: int, stream: int, index: int = 0) -> np.random.Generator:
    """Independent random stream for (seed, stream, index)."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(stream, index)))


def _date_array(epoch_days: np.ndarray) -> pa.Array:
    """Arrow date32 array from days since 1970-01-01."""
    return pa.array(np.asarray(epoch_days, dtype=np.int32)).cast(pa.date32())


def _prefixed_ids(prefix: str, numbers: np.ndarray, width: int) -> pa.Array:
    """Arrow string array of ``prefix + zero-padded number``, built from fixed-width bytes.

    Args:
        prefix: ASCII prefix.
        numbers: Non-negative integers.
        width: Minimum number of digits (zero-padded); widened if a number needs more.

    Returns:
        A ``string`` array, vectorised (no Python loop over rows).
    """
    numbers = np.asarray(numbers, dtype=np.int64)
    if len(numbers):
        width = max(width, len(str(int(numbers.max()))))
    head = np.frombuffer(prefix.encode("ascii"), dtype=np.uint8)
    chars = np.empty((len(numbers), len(head) + width), dtype=np.uint8)
    chars[:, : len(head)] = head
    rest = numbers.astype(np.uint32) if width <= 9 else numbers.astype(np.uint64)
    for position in range(chars.shape[1] - 1, len(head) - 1, -1):  # loop over digit positions
        rest, digit = np.divmod(rest, 10)
        chars[:, position] = digit
    chars[:, len(head) :] += ord("0")
    offsets = np.arange(len(numbers) + 1, dtype=np.int64) * chars.shape[1]
    array = pa.LargeStringArray.from_buffers(len(numbers), pa.py_buffer(offsets), pa.py_buffer(chars))
    return array.cast(pa.string())


def _norm_ppf(p: np.ndarray) -> np.ndarray:
    """Standard normal quantile function (Acklam's rational approximation, rel. error < 1.2e-9)."""
    a = (
        -3.969683028665376e01,
        2.209460984245205e02,
        -2.759285104469687e02,
        1.383577518672690e02,
        -3.066479806614716e01,
        2.506628277459239e00,
    )
    b = (
        -5.447609879822406e01,
        1.615858368580409e02,
        -1.556989798598866e02,
        6.680131188771972e01,
        -1.328068155288572e01,
    )
    c = (
        -7.784894002430293e-03,
        -3.223964580411365e-01,
        -2.400758277161838e00,
        -2.549732539343734e00,
        4.374664141464968e00,
        2.938163982698783e00,
    )
    d = (7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e00, 3.754408661907416e00)
    p = np.asarray(p, dtype=np.float64)
    tail = np.minimum(p, 1.0 - p)
    q = np.sqrt(-2.0 * np.log(np.maximum(tail, 1e-300)))
    tail_value = (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) / (
        (((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1.0
    )
    tail_value = np.where(p < 0.5, tail_value, -tail_value)
    r = (p - 0.5) ** 2
    central = (
        (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5])
        * (p - 0.5)
        / (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1.0)
    )
    return np.where(tail < 0.02425, tail_value, central)


def _to_epoch(day: datetime.date) -> int:
    return (day - _EPOCH).days


def _warehouse_id(index: int, n_warehouses: int) -> str:
    return f"WH{index + 1:0{max(3, len(str(n_warehouses)))}d}"


# --- shared world --------------------------------------------------------------------------------
def _build_catalog(config: GeneratorConfig) -> dict[str, Any]:
    """Products table and per-SKU demand parameters."""
    rng = _rng(config.seed, _STREAM_CATALOG)
    n = config.n_skus
    shares = np.array([c[1] for c in _CATEGORIES])
    category = rng.choice(len(_CATEGORIES), size=n, p=shares / shares.sum())

    # Sub-category within the category: searchsorted on "category + cumulative weight" keys.
    sub_names: list[str] = []
    sub_dir: list[int] = []
    sub_key: list[float] = []
    for c, (_, _, _, _, _, subs) in enumerate(_CATEGORIES):
        weights = np.array([_SEASONAL_SUBCATEGORY_WEIGHT if d else 1.0 for _, d in subs])
        sub_key.extend(c + np.cumsum(weights) / weights.sum())
        sub_names.extend(s for s, _ in subs)
        sub_dir.extend(d for _, d in subs)
    sub_key_arr = np.array(sub_key)
    sub_key_arr[-1] = len(_CATEGORIES)  # guard against rounding
    sub = np.searchsorted(sub_key_arr, category + (1.0 - rng.random(n)), side="left")
    direction = np.array(sub_dir)[sub]

    brand = _BRANDS_PER_CATEGORY * category + rng.integers(0, _BRANDS_PER_CATEGORY, size=n)
    price_median = np.array([c[3] for c in _CATEGORIES])[category]
    price = np.maximum(np.floor(price_median * rng.lognormal(0.0, 0.55, size=n)), 1.0) + 0.99
    weight = np.round(np.array([c[4] for c in _CATEGORIES])[category] * rng.lognormal(0.0, 0.6, size=n), 3)

    # Launch dates: most SKUs are established, some launch inside the window (cold start). The
    # declining category gets no new products, and new products are not among the best sellers.
    declining = np.array([c[2] < 0 for c in _CATEGORIES])[category]
    popularity_rank = rng.permutation(n)  # 0 = least popular
    best_seller = popularity_rank >= (1.0 - _NO_LAUNCH_TOP_SHARE) * n
    launch_day = -rng.integers(30, 5 * 365, size=n)
    if config.days >= 90:
        in_window = (rng.random(n) < _LAUNCH_SHARE_IN_WINDOW) & ~declining & ~best_seller
        launch_day = np.where(in_window, rng.integers(14, config.days - 30, size=n), launch_day)
    if config.late_launches and config.late_launch_window is not None:
        # A stream of its own, so every other draw is the same with or without late launches.
        late_rng = _rng(config.seed, _STREAM_LATE_LAUNCHES)
        eligible = np.flatnonzero(~declining & ~best_seller)
        late = late_rng.choice(eligible, size=min(config.late_launches, len(eligible)), replace=False)
        first, last = (_to_epoch(d) - _to_epoch(config.start) for d in config.late_launch_window)
        launch_day[late] = late_rng.integers(first, last + 1, size=len(late))

    # Popularity: stratified log-normal quantiles (a stable Pareto shape at any size), randomly
    # assigned to SKUs, with a little jitter.
    base = np.exp(_BASE_LOG_MEDIAN + _BASE_LOG_SIGMA * _norm_ppf((popularity_rank + 0.5) / n))
    base *= rng.lognormal(0.0, _BASE_JITTER_SIGMA, size=n)
    dispersion = rng.uniform(*_DISPERSION, size=n)
    elasticity = rng.uniform(*_ELASTICITY, size=n)
    weather_coef = direction * rng.uniform(*_WEATHER_BETA, size=n)

    width = max(5, len(str(n)))
    sku_ids = _prefixed_ids("SKU-", np.arange(1, n + 1), width)
    epoch_start = _to_epoch(config.start)
    products = pa.table(
        [
            sku_ids,
            pa.array([_CATEGORIES[c][0] for c in range(len(_CATEGORIES))]).take(category),
            pa.array(sub_names).take(sub),
            pa.array(list(_BRANDS)).take(brand),
            pa.array(np.round(price, 2)),
            pa.array(weight),
            pa.array(direction != 0),
            _date_array(epoch_start + launch_day),
        ],
        schema=SCHEMAS[C.PRODUCTS],
    )
    return {
        "table": products,
        "sku_ids": sku_ids,
        "category": category,
        "price": np.round(price, 2),
        "base": base,
        "dispersion": dispersion,
        "elasticity": elasticity,
        "weather_coef": weather_coef,
        "launch_day": launch_day,
    }


def _build_warehouses(config: GeneratorConfig) -> dict[str, Any]:
    """Warehouses table, per-warehouse scale and the cities they sit in."""
    rng = _rng(config.seed, _STREAM_WAREHOUSES)
    n = config.n_warehouses
    order = rng.permutation(len(_CITIES))
    city_index = order[np.arange(n) % len(_CITIES)]
    scale = rng.lognormal(0.0, _WAREHOUSE_SCALE_SIGMA, size=n)
    scale = scale / np.exp(np.log(scale).mean()) if n > 1 else np.ones(1)
    capacity = (np.round(scale * config.n_skus * 40, -2) + 1000).astype(np.int64)
    since = _to_epoch(config.start) - rng.integers(365, 15 * 365, size=n)
    ids = [_warehouse_id(i, n) for i in range(n)]
    cities = [_CITIES[i] for i in city_index]
    table = pa.table(
        [
            pa.array(ids),
            pa.array([c[0] for c in cities]),
            pa.array([c[1] for c in cities]),
            pa.array([c[2] for c in cities]),
            pa.array([c[3] for c in cities]),
            pa.array(capacity, type=pa.float64()),
            _date_array(since),
        ],
        schema=SCHEMAS[C.WAREHOUSES],
    )
    used_cities = np.unique(city_index)  # sorted city indices that have a warehouse
    return {
        "table": table,
        "ids": ids,
        "states": [c[1] for c in cities],
        "scale": scale,
        "used_cities": used_cities,
        "city_row": np.searchsorted(used_cities, city_index),
    }


def _build_weather(config: GeneratorConfig, used_cities: np.ndarray) -> dict[str, Any]:
    """Daily weather per warehouse city over the sales period (one random stream per city)."""
    days = config.days
    dates = pd.date_range(config.start, periods=days, freq="D")
    doy = dates.dayofyear.to_numpy()
    kernel = np.exp(-np.arange(7) / 2.0)
    kernel /= np.sqrt((kernel**2).sum())  # keeps the standard deviation of the smoothed noise
    temps, precs, extremes = [], [], []
    for city in used_cities:  # loop over cities, vectorised over days
        _, _, lat, lon = _CITIES[city]
        rng = _rng(config.seed, _STREAM_WEATHER, int(city))
        north = max(lat - 25.0, 0.0)
        maritime = lon < -115.0 and lat > 35.0  # mild Pacific north-west winters
        mean = 25.0 - 0.9 * north + (2.5 if maritime else 0.0)
        amplitude = (4.0 + 0.6 * north) * (0.6 if maritime else 1.0)
        climate = mean - amplitude * np.cos(2 * np.pi * (doy - 18) / 365.25)
        noise = rng.normal(0.0, 3.5, size=days + len(kernel) - 1)
        anomaly = np.convolve(noise, kernel, mode="valid")
        temp = np.round(climate + anomaly, 1)
        rain = rng.random(days) < 0.3
        precip = np.round(np.where(rain, rng.gamma(0.7, 9.0, size=days), 0.0), 1)
        extreme = (np.abs(anomaly) > 2.3 * 3.5) | (precip > 45.0) | (temp > 38.0) | (temp < -18.0)
        temps.append(temp)
        precs.append(precip)
        extremes.append(extreme)
    temperature = np.vstack(temps)
    precipitation = np.vstack(precs)
    extreme = np.vstack(extremes)
    n_cities = len(used_cities)
    epoch = _to_epoch(config.start) + np.arange(days)
    # Rows ordered by date, then city.
    table = pa.table(
        [
            _date_array(np.repeat(epoch, n_cities)),
            pa.array([_CITIES[c][0] for c in used_cities]).take(np.tile(np.arange(n_cities), days)),
            pa.array(temperature.T.ravel()),
            pa.array(precipitation.T.ravel()),
            pa.array(extreme.T.ravel()),
        ],
        schema=SCHEMAS[C.WEATHER],
    )
    return {"table": table, "temperature": temperature, "extreme": extreme}


def _holiday_factors(config: GeneratorConfig) -> np.ndarray:
    """Holiday multiplier per day from US federal holidays (Black Friday, Cyber Monday, ...)."""
    days = config.days
    factor = np.ones(days)
    years = range(config.start.year, config.end.year + 1)
    epoch0 = _to_epoch(config.start)

    def put(day: datetime.date, value: float) -> None:
        index = _to_epoch(day) - epoch0
        if 0 <= index < days:
            factor[index] *= value

    def put_range(first: datetime.date, last: datetime.date, value: float) -> None:
        lo, hi = max(_to_epoch(first) - epoch0, 0), min(_to_epoch(last) - epoch0 + 1, days)
        if lo < hi:
            factor[lo:hi] *= value

    one = datetime.timedelta(days=1)
    for day, name in sorted(holidays.country_holidays("US", years=years).items()):
        if "observed" in name.lower():
            put(day, _OBSERVED_HOLIDAY_FACTOR)
        elif "Thanksgiving" in name:
            put(day, _HOLIDAY_FACTORS["Thanksgiving"])
            put(day + one, _HOLIDAY_FACTORS["Black Friday"])
            put_range(day + 2 * one, day + 3 * one, _WEEKEND_AFTER_BLACK_FRIDAY)
            put(day + 4 * one, _HOLIDAY_FACTORS["Cyber Monday"])
            put_range(day + 5 * one, datetime.date(day.year, 12, 23), _PRE_CHRISTMAS_FACTOR)
        else:
            put(day, next((v for k, v in _HOLIDAY_FACTORS.items() if k in name), _OTHER_HOLIDAY_FACTOR))
    return factor


def _build_day_factors(config: GeneratorConfig) -> dict[str, np.ndarray]:
    """Weekday x season x holiday factors, category trends and return rates per day."""
    dates = pd.date_range(config.start, periods=config.days, freq="D")
    doy = dates.dayofyear.to_numpy()
    weekday = _WEEKDAY_FACTORS[dates.dayofweek.to_numpy()]
    season = 1.0 + _SEASON_AMPLITUDE * np.cos(2 * np.pi * (doy - _SEASON_PEAK_DOY) / 365.25)
    day_factor = weekday * season * _holiday_factors(config)

    t_years = np.arange(config.days) / 365.25
    growth = np.array([c[2] for c in _CATEGORIES])
    category_trend = np.power(1.0 + growth[:, None], t_years[None, :]).astype(np.float32)
    names = [c[0] for c in _CATEGORIES]
    for shift in config.level_shifts:
        first = max(_to_epoch(shift.start) - _to_epoch(config.start), 0)
        category_trend[names.index(shift.category), first:] *= np.float32(shift.factor)

    month, dom = dates.month.to_numpy(), dates.day.to_numpy()
    after_holidays = ((month == 12) & (dom >= 26)) | ((month == 1) & (dom <= 15))
    return_rate = np.where(after_holidays, _RETURN_RATE_AFTER_HOLIDAYS, _RETURN_RATE)
    return {"day_factor": day_factor, "category_trend": category_trend, "return_rate": return_rate}


def _build_campaigns(
    config: GeneratorConfig,
    sku_ids: pa.Array,
    launch_day: np.ndarray,
    warehouse_states: list[str],
) -> dict[str, Any]:
    """SKU-level and sitewide campaigns, some regional, some planned past the last sales date."""
    rng = _rng(config.seed, _STREAM_CAMPAIGNS)
    horizon = config.days + config.campaign_horizon_days
    years = horizon / 365.25

    # SKU-level campaigns: start uniformly between launch (or the window start) and the horizon.
    n_sku = int(rng.poisson(config.n_skus * _SKU_CAMPAIGNS_PER_YEAR * years))
    sku = rng.integers(0, config.n_skus, size=n_sku)
    kind = rng.integers(0, len(_CAMPAIGN_TYPES), size=n_sku)
    min_days, max_days, min_disc, max_disc = (
        np.array([t[i] for t in _CAMPAIGN_TYPES], dtype=float)[kind] for i in range(1, 5)
    )
    duration = np.floor(min_days + rng.random(n_sku) * (max_days - min_days + 1)).astype(np.int64)
    discount = np.round(min_disc + rng.random(n_sku) * (max_disc - min_disc))
    lo = np.clip(launch_day[sku], 0, horizon - 1)
    start = lo + np.floor(rng.random(n_sku) * (horizon - lo)).astype(np.int64)

    # Sitewide campaigns (sku = null).
    n_site = int(rng.poisson(_SITEWIDE_CAMPAIGNS_PER_YEAR * years))
    _, s_min, s_max, d_min, d_max = _SITEWIDE_TYPE
    s_duration = rng.integers(s_min, s_max + 1, size=n_site)
    s_discount = np.round(rng.uniform(d_min, d_max, size=n_site))
    s_start = rng.integers(0, horizon, size=n_site)

    n_all = n_sku + n_site
    all_states = sorted({c[1] for c in _CITIES})
    regional = rng.random(n_all) < _REGIONAL_SHARE
    # Regional campaigns mostly target a state with a warehouse, sometimes another state.
    wh_state = np.array(warehouse_states, dtype=object)[rng.integers(0, len(warehouse_states), size=n_all)]
    any_state = np.array(all_states, dtype=object)[rng.integers(0, len(all_states), size=n_all)]
    region = np.where(rng.random(n_all) < 0.8, wh_state, any_state)
    region[~regional] = None

    c_sku = np.concatenate([sku, np.full(n_site, -1)])
    c_start = np.concatenate([start, s_start])
    c_end = c_start + np.concatenate([duration, s_duration]) - 1
    c_discount = np.concatenate([discount, s_discount])
    c_type = np.concatenate([kind, np.full(n_site, len(_CAMPAIGN_TYPES))])
    type_list = [t[0] for t in _CAMPAIGN_TYPES] + [_SITEWIDE_TYPE[0]]

    planned = config.planned_campaigns
    if planned:
        epoch = _to_epoch(config.start)
        sku_index = {sku_id: i for i, sku_id in enumerate(sku_ids.to_pylist())}
        unknown = [c.sku for c in planned if c.sku is not None and c.sku not in sku_index]
        if unknown:
            raise ValueError(f"planned campaigns name unknown SKUs {unknown}")
        for c in planned:
            if c.campaign_type not in type_list:
                type_list.append(c.campaign_type)
        c_sku = np.concatenate([c_sku, [-1 if c.sku is None else sku_index[c.sku] for c in planned]])
        c_start = np.concatenate([c_start, [_to_epoch(c.start) - epoch for c in planned]])
        c_end = np.concatenate([c_end, [_to_epoch(c.end) - epoch for c in planned]])
        c_discount = np.concatenate([c_discount, [float(c.discount) for c in planned]])
        c_type = np.concatenate([c_type, [type_list.index(c.campaign_type) for c in planned]])
        region = np.concatenate([region, np.array([c.region for c in planned], dtype=object)])
        n_all += len(planned)
    order = np.lexsort((c_sku, c_start))
    c_sku, c_start, c_end, c_discount, c_type, region = (
        a[order] for a in (c_sku, c_start, c_end, c_discount, c_type, region)
    )

    epoch0 = _to_epoch(config.start)
    type_names = pa.array(type_list)
    sku_col = sku_ids.take(pa.array(np.where(c_sku >= 0, c_sku, 0), mask=c_sku < 0))
    table = pa.table(
        [
            _prefixed_ids("CMP-", np.arange(1, n_all + 1), 6),
            _date_array(epoch0 + c_start),
            _date_array(epoch0 + c_end),
            sku_col,
            pa.array(c_discount),
            type_names.take(c_type),
            pa.array(list(region), type=pa.string()),
        ],
        schema=SCHEMAS[C.MARKETING_CAMPAIGNS],
    )
    return {
        "table": table,
        "sku": c_sku,
        "start": c_start,
        "end": c_end,
        "discount": c_discount,
        "region": np.array([r or "" for r in region], dtype=str),
    }


def _build_world(config: GeneratorConfig) -> _World:
    """Compute everything the warehouses share (cheap: no SKU x day matrices)."""
    catalog = _build_catalog(config)
    warehouses = _build_warehouses(config)
    weather = _build_weather(config, warehouses["used_cities"])
    day = _build_day_factors(config)
    campaigns = _build_campaigns(config, catalog["sku_ids"], catalog["launch_day"], warehouses["states"])
    return _World(
        config=config,
        epoch_start=_to_epoch(config.start),
        tables={
            C.PRODUCTS: catalog["table"],
            C.WAREHOUSES: warehouses["table"],
            C.MARKETING_CAMPAIGNS: campaigns["table"],
            C.WEATHER: weather["table"],
        },
        sku_ids=catalog["sku_ids"],
        category=catalog["category"],
        price=catalog["price"],
        base=catalog["base"],
        dispersion=catalog["dispersion"],
        elasticity=catalog["elasticity"],
        weather_coef=catalog["weather_coef"],
        launch_day=catalog["launch_day"],
        warehouse_ids=warehouses["ids"],
        warehouse_states=warehouses["states"],
        warehouse_city_row=warehouses["city_row"],
        warehouse_scale=warehouses["scale"],
        day_factor=day["day_factor"],
        category_trend=day["category_trend"],
        return_rate=day["return_rate"],
        temperature=weather["temperature"],
        extreme=weather["extreme"],
        campaign_sku=campaigns["sku"],
        campaign_start=campaigns["start"],
        campaign_end=campaigns["end"],
        campaign_discount=campaigns["discount"],
        campaign_region=campaigns["region"],
    )


# --- per-warehouse demand -------------------------------------------------------------------------
def _expand_days(start: np.ndarray, length: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For intervals (start, length): (interval index, day) of every covered day, vectorised."""
    owner = np.repeat(np.arange(len(start)), length)
    first = np.cumsum(length) - length
    offset = np.arange(len(owner)) - first[owner]
    return owner, start[owner] + offset


def _promotions(world: _World, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Effective discount (%) and promo factor (lift, post-promo dip) matrices for warehouse ``w``."""
    n, days = world.config.n_skus, world.config.days
    region = world.campaign_region
    relevant = (region == "") | (region == world.warehouse_states[w])
    in_sku = relevant & (world.campaign_sku >= 0)
    in_site = relevant & (world.campaign_sku < 0)

    flat_discount = np.zeros(n * days, dtype=np.float32)
    flat_dip = np.ones(n * days, dtype=np.float32)
    sku, start, end, disc = (
        a[in_sku]
        for a in (world.campaign_sku, world.campaign_start, world.campaign_end, world.campaign_discount)
    )
    owner, day = _expand_days(start, end - start + 1)
    keep = day < days
    np.maximum.at(flat_discount, sku[owner[keep]] * days + day[keep], disc[owner[keep]].astype(np.float32))
    # Post-promotion dip (pull-forward): deepest the day after, recovering over a week.
    owner, day = _expand_days(end + 1, np.full(len(end), _POST_PROMO_DIP_DAYS))
    keep = day < days
    age = day[keep] - end[owner[keep]]  # 1 .. _POST_PROMO_DIP_DAYS
    depth = _POST_PROMO_DIP_DEPTH * np.minimum(disc[owner[keep]] / 40.0, 1.5)
    value = 1.0 - depth * (1.0 - (age - 1) / _POST_PROMO_DIP_DAYS)
    np.minimum.at(flat_dip, sku[owner[keep]] * days + day[keep], value.astype(np.float32))

    site_discount = np.zeros(days, dtype=np.float32)
    site_dip = np.ones(days, dtype=np.float32)
    start, end, disc = (
        a[in_site] for a in (world.campaign_start, world.campaign_end, world.campaign_discount)
    )
    owner, day = _expand_days(start, end - start + 1)
    keep = day < days
    np.maximum.at(site_discount, day[keep], disc[owner[keep]].astype(np.float32))
    owner, day = _expand_days(end + 1, np.full(len(end), _POST_PROMO_DIP_DAYS))
    keep = day < days
    age = day[keep] - end[owner[keep]]
    value = 1.0 - 0.5 * _POST_PROMO_DIP_DEPTH * (disc[owner[keep]] / 40.0) * (
        1 - (age - 1) / _POST_PROMO_DIP_DAYS
    )
    np.minimum.at(site_dip, day[keep], value.astype(np.float32))

    discount = np.maximum(flat_discount.reshape(n, days), site_discount[None, :])
    dip = np.minimum(flat_dip.reshape(n, days), site_dip[None, :])
    factor = 1.0 + world.elasticity.astype(np.float32)[:, None] * (discount / 100.0)
    factor *= np.where(discount > 0, np.float32(1.0), dip)
    return discount, factor


def _mean_demand(world: _World, w: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Expected demand ``mu`` ``[n_skus, days]`` (float32, before outlier spikes) and the discount matrix.

    Draws the warehouse's SKU affinities first from ``rng`` (the sales stream), as :func:`_quantities` does.
    """
    config = world.config
    n, days = config.n_skus, config.days
    affinity = rng.lognormal(0.0, _AFFINITY_SIGMA, size=n)
    row = (world.base * affinity * world.warehouse_scale[w]).astype(np.float32)

    city = world.warehouse_city_row[w]
    day_factor = world.day_factor * np.where(world.extreme[city], _EXTREME_WEATHER_FACTOR, 1.0)
    mu = world.category_trend[world.category]  # [n, days] float32 (a copy)
    mu *= row[:, None]
    mu *= day_factor.astype(np.float32)[None, :]

    seasonal = np.flatnonzero(world.weather_coef)
    temp_term = ((world.temperature[city] - _WEATHER_REFERENCE_C) / 10.0).astype(np.float32)
    mu[seasonal] *= np.exp(world.weather_coef[seasonal].astype(np.float32)[:, None] * temp_term[None, :])

    discount, promo = _promotions(world, w)
    mu *= promo
    del promo

    # Cold start: nothing before launch, then a ramp-up (only SKUs launched recently need it).
    recent = np.flatnonzero(world.launch_day > -5 * _LAUNCH_RAMP_DAYS)
    age = np.arange(days)[None, :] - world.launch_day[recent][:, None]
    ramp = np.where(age >= 0, 1.0 - np.exp(-(age + 1) / _LAUNCH_RAMP_DAYS), 0.0)
    mu[recent] *= ramp.astype(np.float32)
    return mu, discount


def _quantities(world: _World, w: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Gross quantity sold ``[n_skus, days]`` (int32) and the effective discount matrix."""
    n, days = world.config.n_skus, world.config.days
    mu, discount = _mean_demand(world, w, rng)
    spikes = rng.random((n, days), dtype=np.float32) < _OUTLIER_RATE
    mu[spikes] *= rng.uniform(*_OUTLIER_MULTIPLIER, size=int(spikes.sum())).astype(np.float32)
    del spikes

    # Gamma-Poisson: lambda ~ Gamma(k, mu / k), q ~ Poisson(lambda), so Var = mu + mu^2 / k.
    k = world.dispersion[:, None]
    lam = rng.gamma(np.broadcast_to(k, mu.shape), mu / k)
    del mu
    quantity = rng.poisson(lam).astype(np.int32)
    return quantity, discount


def true_demand(
    config: GeneratorConfig, first: datetime.date | None = None, last: datetime.date | None = None
) -> pd.DataFrame:
    """The demand distribution the generator drew from: its mean and median per SKU x warehouse x day.

    The median is the best possible p50 (its WMAPE is the noise floor of a benchmark). Sales are a mix of
    a gamma-Poisson draw around ``mu`` (97.5%) and an outlier spike of 3-7 times ``mu`` (2.5%); the spikes
    land above the median, so the mix's median is the gamma-Poisson's ``0.5 / 0.975`` quantile. Returns
    (a few percent of the units) are not subtracted. Recomputes each warehouse's ``mu`` from its own
    random stream, so it matches :func:`generate_source` for the same config.

    Args:
        config: The generated source's config.
        first: First day (default: the first sales day).
        last: Last day (default: the last sales day).

    Returns:
        Columns sku, warehouse_id, date (datetime64[ns]), ``mean`` and ``median``.
    """
    from scipy.stats import nbinom

    world = _build_world(config)
    lo = 0 if first is None else max(_to_epoch(first) - world.epoch_start, 0)
    hi = config.days if last is None else min(_to_epoch(last) - world.epoch_start + 1, config.days)
    dates = pd.date_range(config.start, periods=config.days, freq="D")[lo:hi]
    skus = np.asarray(world.sku_ids.to_pylist(), dtype=object)
    k = world.dispersion[:, None]
    frames = []
    for w in range(config.n_warehouses):
        mu = _mean_demand(world, w, _rng(config.seed, _STREAM_SALES, w))[0][:, lo:hi].astype(np.float64)
        median = nbinom.ppf(0.5 / (1.0 - _OUTLIER_RATE), k, k / (k + np.maximum(mu, 1e-12)))
        median = np.where(mu > 0, median, 0.0)
        frames.append(
            pd.DataFrame(
                {
                    C.SKU: np.repeat(skus, len(dates)),
                    C.WAREHOUSE_ID: world.warehouse_ids[w],
                    C.DATE: np.tile(dates.to_numpy(), len(skus)),
                    "mean": mu.ravel() * (1.0 + _OUTLIER_RATE * (sum(_OUTLIER_MULTIPLIER) / 2 - 1.0)),
                    "median": median.ravel(),
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def _split_quantities(qty: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Split large daily quantities into several lines with random sizes that sum exactly.

    Returns:
        (cell index of every line, line quantity); zero-quantity parts are dropped.
    """
    n_parts = np.ones(len(qty), dtype=np.int64)
    big = qty >= _SPLIT_THRESHOLD
    n_parts[big] = np.minimum(
        1 + np.floor(np.log2(qty[big] / (_SPLIT_THRESHOLD / 2))).astype(np.int64), _MAX_LINES_PER_DAY
    )
    cell = np.repeat(np.arange(len(qty)), n_parts)
    ends = np.cumsum(n_parts) - 1
    starts = ends - n_parts + 1
    weights = np.cumsum(rng.uniform(0.5, 1.5, size=len(cell)))
    before = np.concatenate(([0.0], weights))[starts]  # cumulative weight before each group
    share = (weights - before[cell]) / (weights[ends] - before)[cell]
    bound = np.rint(qty[cell] * share).astype(np.int64)
    bound[ends] = qty
    previous = np.concatenate(([0], bound[:-1]))
    previous[starts] = 0
    part = bound - previous
    keep = part > 0
    return cell[keep], part[keep]


def _warehouse_transactions(world: _World, w: int) -> pa.Table:
    """Order lines of warehouse ``w``, ordered by date then order.

    Args:
        world: Shared world.
        w: Warehouse index.

    Returns:
        Arrow table with the transactions schema.
    """
    config = world.config
    rng = _rng(config.seed, _STREAM_SALES, w)
    quantity, discount = _quantities(world, w, rng)

    # Non-zero SKU-days, day-major (so lines come out ordered by date).
    day, sku = np.nonzero(quantity.T)
    qty = quantity.T[day, sku].astype(np.int64)
    del quantity

    cell, line_qty = _split_quantities(qty, rng)
    returned = np.flatnonzero(rng.random(len(qty)) < world.return_rate[day])
    return_qty = -np.maximum(1, np.rint(qty[returned] * rng.uniform(*_RETURN_SHARE, size=len(returned))))
    line_cell = np.concatenate([cell, returned])
    line_qty = np.concatenate([line_qty, return_qty.astype(np.int64)])
    is_return = np.concatenate([np.zeros(len(cell), bool), np.ones(len(returned), bool)])
    line_day, line_sku = day[line_cell], sku[line_cell]

    # Shuffle lines within each day, then cut each day into orders of 1-4 lines.
    n_lines = len(line_qty)
    key = (line_day.astype(np.uint64) << np.uint64(32)) | rng.integers(
        0, 2**32, size=n_lines, dtype=np.uint64
    )
    order = np.argsort(key)
    line_day, line_sku, line_qty, is_return = (
        line_day[order],
        line_sku[order],
        line_qty[order],
        is_return[order],
    )
    sizes = rng.choice(len(_ORDER_SIZE_PROBABILITIES), size=n_lines, p=_ORDER_SIZE_PROBABILITIES) + 1
    breaks = np.cumsum(sizes)
    new_order = np.zeros(n_lines, dtype=bool)
    new_order[breaks[breaks < n_lines]] = True
    if n_lines:
        new_order[0] = True
        new_order[1:] |= line_day[1:] != line_day[:-1]
        returns = np.flatnonzero(is_return)  # a return is an order of its own
        new_order[returns] = True
        new_order[returns[returns + 1 < n_lines] + 1] = True
    order_seq = np.cumsum(new_order) - 1
    n_orders = int(order_seq[-1]) + 1 if n_lines else 0

    pool = max(200, config.n_skus * _CUSTOMERS_PER_SKU)  # customers of this warehouse
    customer = np.floor(pool * rng.random(n_orders) ** _CUSTOMER_SKEW).astype(np.int64)
    customer_ids = _prefixed_ids("CUST-", w * pool + np.arange(1, pool + 1), 8)
    order_ids = _prefixed_ids(f"ORD-{world.warehouse_ids[w]}-", np.arange(n_orders), 8)

    line_discount = discount[line_sku, line_day].astype(np.float64)
    unit_price = np.round(world.price[line_sku] * (1.0 - line_discount / 100.0), 2)
    revenue = np.round(line_qty * unit_price, 2)

    wid = world.warehouse_ids[w]
    return pa.table(
        [
            _prefixed_ids(f"TXN-{wid}-", np.arange(n_lines), 9),
            world.sku_ids.take(pa.array(line_sku)),
            pa.array([wid]).take(pa.array(np.zeros(n_lines, dtype=np.int32))),
            _date_array(world.epoch_start + line_day),
            pa.array(line_qty),
            pa.array(revenue),
            customer_ids.take(pa.array(customer[order_seq])),
            order_ids.take(pa.array(order_seq)),
        ],
        schema=SCHEMAS[C.TRANSACTIONS],
    )


# --- bad rows ---------------------------------------------------------------------------------
_BAD_KINDS = (
    "duplicate_transaction_id",
    "unknown_sku",
    "unknown_warehouse",
    "null_key",
    "absurd_quantity",
    "date_out_of_range",
)


def _bad_rows(world: _World, line_counts: list[int]) -> pa.Table:
    """Deliberately invalid transaction rows, cycling through :data:`_BAD_KINDS`."""
    config = world.config
    m = config.bad_rows
    rng = _rng(config.seed, _STREAM_BAD_ROWS)
    n_wh = config.n_warehouses
    sku = rng.integers(0, config.n_skus, size=m)
    wh = rng.integers(0, n_wh, size=m)
    day = rng.integers(0, config.days, size=m)
    qty = rng.integers(1, 6, size=m)
    kind = np.arange(m) % len(_BAD_KINDS)

    txn = _prefixed_ids("TXN-BAD-", np.arange(1, m + 1), 9).to_pylist()
    sku_ids: list[str | None] = world.sku_ids.take(pa.array(sku)).to_pylist()
    wh_ids: list[str | None] = [world.warehouse_ids[i] for i in wh]
    dates: list[int | None] = list(world.epoch_start + day)
    quantity = qty.astype(np.int64)
    with_lines = [i for i, count in enumerate(line_counts) if count > 0]
    for i in range(m):  # tiny: bad_rows is a demo-sized number
        kind_name = _BAD_KINDS[kind[i]]
        if kind_name == "duplicate_transaction_id" and with_lines:
            w = with_lines[int(rng.integers(0, len(with_lines)))]
            txn[i] = f"TXN-{world.warehouse_ids[w]}-{int(rng.integers(0, line_counts[w])):09d}"
        elif kind_name == "unknown_sku":
            sku_ids[i] = f"SKU-X{i:05d}"
        elif kind_name == "unknown_warehouse":
            wh_ids[i] = f"WH-X{i:03d}"
        elif kind_name == "null_key":
            field = (i // len(_BAD_KINDS)) % 4
            if field == 0:
                sku_ids[i] = None
            elif field == 1:
                wh_ids[i] = None
            elif field == 2:
                dates[i] = None
            else:
                txn[i] = None
        elif kind_name == "absurd_quantity":
            quantity[i] = 10**7
        elif kind_name == "date_out_of_range":
            outside = -int(rng.integers(400, 1500)) if i % 2 else config.days + int(rng.integers(400, 1500))
            dates[i] = world.epoch_start + outside
    revenue = np.round(quantity * world.price[sku], 2)
    return pa.table(
        [
            pa.array(txn, type=pa.string()),
            pa.array(sku_ids, type=pa.string()),
            pa.array(wh_ids, type=pa.string()),
            pa.array([None if d is None else int(d) for d in dates], type=pa.int32()).cast(pa.date32()),
            pa.array(quantity),
            pa.array(revenue),
            _prefixed_ids("CUST-BAD-", np.arange(1, m + 1), 6),
            _prefixed_ids("ORD-BAD-", np.arange(1, m + 1), 8),
        ],
        schema=SCHEMAS[C.TRANSACTIONS],
    )


# --- public API ----------------------------------------------------------------------------------
def _to_pandas(table: pa.Table) -> pd.DataFrame:
    """Arrow table to pandas: strings as object, dates as ``datetime64[ns]``."""
    frame = table.to_pandas(date_as_object=False)
    for field in table.schema:
        if pa.types.is_date(field.type):
            frame[field.name] = frame[field.name].astype(_NS)
    return frame


def generate_tables(config: GeneratorConfig | None = None) -> dict[str, pd.DataFrame]:
    """Generate a whole source in memory (meant for small sizes and tests).

    Produces exactly the data :func:`generate_source` writes for the same config.

    Args:
        config: Size and seed; defaults to :class:`GeneratorConfig()`.

    Returns:
        One DataFrame per table in :data:`WRITTEN_TABLES`. Strings are ``object``, dates
        ``datetime64[ns]`` (date32 in the parquet files), quantity ``int64``, flags ``bool``.
    """
    config = config or GeneratorConfig()
    world = _build_world(config)
    chunks = [_warehouse_transactions(world, w) for w in range(config.n_warehouses)]
    if config.bad_rows:
        chunks.append(_bad_rows(world, [c.num_rows for c in chunks]))
    tables = {C.TRANSACTIONS: pa.concat_tables(chunks), **world.tables}
    return {name: _to_pandas(tables[name]) for name in WRITTEN_TABLES}


def generate_source(
    out_dir: str | Path,
    config: GeneratorConfig | None = None,
    progress: bool = False,
) -> GenerationSummary:
    """Generate a source directory with one ``<table>.parquet`` file per table.

    Transactions are generated and written one warehouse at a time with a
    :class:`pyarrow.parquet.ParquetWriter`, ordered by warehouse_id then transaction_date, so
    memory is bounded by one warehouse. Bad rows (if any) are appended as the last row group.

    Args:
        out_dir: Directory to write into (created if missing; existing table files are replaced).
        config: Size and seed; defaults to :class:`GeneratorConfig()`.
        progress: Show a tqdm progress bar over warehouses.

    Returns:
        Files written, row counts per table and elapsed seconds.
    """
    config = config or GeneratorConfig()
    started = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    world = _build_world(config)
    files = {name: out / f"{name}.parquet" for name in WRITTEN_TABLES}
    rows: dict[str, int] = {}
    for name, table in world.tables.items():
        pq.write_table(table, files[name])
        rows[name] = table.num_rows

    line_counts: list[int] = []
    with pq.ParquetWriter(files[C.TRANSACTIONS], SCHEMAS[C.TRANSACTIONS]) as writer:
        for w in tqdm(range(config.n_warehouses), desc="warehouses", unit="wh", disable=not progress):
            chunk = _warehouse_transactions(world, w)
            writer.write_table(chunk)
            line_counts.append(chunk.num_rows)
            del chunk
        if config.bad_rows:
            writer.write_table(_bad_rows(world, line_counts))
    rows[C.TRANSACTIONS] = sum(line_counts) + config.bad_rows
    return GenerationSummary(
        out_dir=out,
        files=files,
        rows={name: rows[name] for name in WRITTEN_TABLES},
        bad_rows=config.bad_rows,
        seconds=time.perf_counter() - started,
    )
