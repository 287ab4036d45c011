"""Volume tiers, intermittency classes and model routing of SKU x warehouse series at an origin.

Each SKU active in a warehouse at origin D gets:

* trailing clipped volume and net revenue over ``TierConfig.window_days`` days ending at D;
* a volume tier by trailing revenue rank within its warehouse: tier 1 = the top ``tier_fractions[0]`` of
  SKUs (20% by default), tier 2 = the next ``tier_fractions[1]`` (30%), tier 3 = the rest. The cut is by
  SKU count: the first ``ceil(f1 * n)`` SKUs in descending revenue order (ties broken by SKU) are tier 1;
* ADI and CV^2 over the trailing ``intermittency_window_days`` days (the kernel
  :func:`demand_platform.features.intermittency_stats`, shared with the feature table) and the
  Syntetos-Boylan class: smooth (ADI < 1.32 and CV^2 < 0.49), erratic (ADI < 1.32, CV^2 >= 0.49),
  intermittent (ADI >= 1.32, CV^2 < 0.49), lumpy (both above), or ``no_demand`` when the window holds no
  positive demand (ADI and CV^2 undefined);
* a cold-start flag: launched within ``cold_start_days`` of D (age < cold_start_days, the launch being the
  later of the product's launch date and the SKU's first history row in the warehouse), or fewer than
  ``min_nonzero_days`` days with positive demand since its first history row;
* a route: ``cold_start`` if cold start, else ``global_ml`` for tiers 1-2 and ``statistical`` for tier 3.

Only history rows dated on or before D are read.
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from demand_platform.columns import LAUNCH_DATE, ORIGIN_DATE, SKU, TIER, WAREHOUSE_ID
from demand_platform.days import DateLike, to_day, to_timestamp
from demand_platform.features import (
    DEFAULT_HORIZON,
    SalesPanel,
    build_sales_panel,
    build_training_features,
    intermittency_stats,
    origins_panel,
)
from demand_platform.tables import SourceTables

TRAILING_VOLUME = "trailing_volume"
TRAILING_REVENUE = "trailing_revenue"
REVENUE_RANK = "revenue_rank"
ADI = "adi"
CV2 = "cv2"
NONZERO_DAYS_TOTAL = "nonzero_days_total"
AGE_DAYS = "age_days"
INTERMITTENCY_CLASS = "intermittency_class"
COLD_START = "cold_start"
ROUTE = "route"
N_SKUS = "n_skus"
N_COLD_START = "n_cold_start"
VOLUME_SHARE = "volume_share"
REVENUE_SHARE = "revenue_share"

SMOOTH = "smooth"
ERRATIC = "erratic"
INTERMITTENT = "intermittent"
LUMPY = "lumpy"
NO_DEMAND = "no_demand"
INTERMITTENCY_CLASSES = (SMOOTH, ERRATIC, INTERMITTENT, LUMPY, NO_DEMAND)

ROUTE_GLOBAL_ML = "global_ml"
ROUTE_STATISTICAL = "statistical"
ROUTE_COLD_START = "cold_start"
ROUTES = (ROUTE_GLOBAL_ML, ROUTE_STATISTICAL, ROUTE_COLD_START)

TIER_COLUMNS = (
    SKU,
    WAREHOUSE_ID,
    ORIGIN_DATE,
    TRAILING_VOLUME,
    TRAILING_REVENUE,
    REVENUE_RANK,
    TIER,
    ADI,
    CV2,
    NONZERO_DAYS_TOTAL,
    AGE_DAYS,
    INTERMITTENCY_CLASS,
    COLD_START,
    ROUTE,
)
SUMMARY_COLUMNS = (
    TIER,
    INTERMITTENCY_CLASS,
    N_SKUS,
    N_COLD_START,
    TRAILING_VOLUME,
    VOLUME_SHARE,
    TRAILING_REVENUE,
    REVENUE_SHARE,
)

_FRACTION_TOLERANCE = 1e-9


@dataclass(frozen=True)
class TierConfig:
    """Settings of :func:`assign_tiers`.

    Attributes:
        window_days: Days (ending at the origin) of the trailing volume and revenue.
        tier_fractions: Shares of SKUs in tier 1 and tier 2 (the rest is tier 3).
        intermittency_window_days: Days (ending at the origin) of the ADI / CV^2 window.
        adi_threshold: Syntetos-Boylan ADI cut.
        cv2_threshold: Syntetos-Boylan CV^2 cut.
        cold_start_days: SKUs launched fewer than this many days before the origin are cold start.
        min_nonzero_days: SKUs with fewer positive-demand days since their first row are cold start.
    """

    window_days: int = 90
    tier_fractions: tuple[float, float] = (0.2, 0.3)
    intermittency_window_days: int = 365
    adi_threshold: float = 1.32
    cv2_threshold: float = 0.49
    cold_start_days: int = 56
    min_nonzero_days: int = 8

    def __post_init__(self) -> None:
        """Validates the settings.

        Raises:
            ValueError: On non-positive windows or fractions outside [0, 1] summing above 1.
        """
        if self.window_days < 1 or self.intermittency_window_days < 1:
            raise ValueError("tier windows must be at least one day")
        first, second = self.tier_fractions
        if first < 0 or second < 0 or first + second > 1 + _FRACTION_TOLERANCE:
            raise ValueError(f"tier fractions {self.tier_fractions} must be >= 0 and sum to <= 1")

    @property
    def panel_days(self) -> int:
        """Days (ending at the origin) a sales panel must cover for both tiering windows."""
        return max(self.window_days, self.intermittency_window_days)


def classify_intermittency(adi: np.ndarray, cv2: np.ndarray, config: TierConfig | None = None) -> np.ndarray:
    """Syntetos-Boylan class of each (ADI, CV^2) pair; ``no_demand`` where ADI is NaN (no demand).

    Args:
        adi: Average inter-demand intervals.
        cv2: Squared coefficients of variation of the demand sizes.
        config: Thresholds; the default :class:`TierConfig` when None.

    Returns:
        An object array of class names.
    """
    config = config or TierConfig()
    frequent = adi < config.adi_threshold
    variable = cv2 >= config.cv2_threshold
    classes = np.select(
        [frequent & ~variable, frequent & variable, ~frequent & ~variable],
        [SMOOTH, ERRATIC, INTERMITTENT],
        default=LUMPY,
    ).astype(object)
    classes[np.isnan(adi)] = NO_DEMAND
    return classes


def _volume_tiers(revenue: np.ndarray, fractions: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    """Revenue rank (1 = highest, ties by position) and tier of each SKU."""
    n = len(revenue)
    order = np.lexsort((np.arange(n), -np.nan_to_num(revenue, nan=-np.inf)))
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(1, n + 1)
    n_tier1 = math.ceil(fractions[0] * n - _FRACTION_TOLERANCE)
    n_tier12 = math.ceil((fractions[0] + fractions[1]) * n - _FRACTION_TOLERANCE)
    tier = np.where(rank <= n_tier1, 1, np.where(rank <= n_tier12, 2, 3)).astype(np.int64)
    return rank, tier


def _assign_warehouse(
    history: pd.DataFrame, launch: pd.Series, origin_day: int, warehouse_id: object, config: TierConfig
) -> pd.DataFrame:
    lookback = config.panel_days - 1
    origin = pd.Timestamp(origin_day * 86_400 * 10**9)
    panel = build_sales_panel(history, end=origin, lookback_days=lookback, warehouse_id=warehouse_id)
    return _tiers_of_panel(panel, launch, warehouse_id, config)


def _launch_days(products: pd.DataFrame) -> pd.Series:
    """Launch epoch day (float, NaN when unknown) of each SKU of the catalogue."""
    catalog = products.drop_duplicates(SKU, keep="last")
    launch_dates = pd.to_datetime(catalog[LAUNCH_DATE]).to_numpy().astype("datetime64[D]")
    return pd.Series(
        np.where(np.isnat(launch_dates), np.nan, launch_dates.astype(np.int64).astype(np.float64)),
        index=catalog[SKU].to_numpy(),
    )


def tiers_from_panel(
    panel: SalesPanel, products: pd.DataFrame, warehouse_id: object, config: TierConfig | None = None
) -> pd.DataFrame:
    """:func:`assign_tiers` of one warehouse at the panel's last day, from a panel already built.

    Lets a caller that holds a long panel of the warehouse (training) tier several origins with
    ``panel.until(origin)`` instead of scattering the history into a new panel per origin.

    Args:
        panel: The warehouse's sales panel ending at the origin, covering at least the tiering windows.
        products: The ``products`` table (for launch dates).
        warehouse_id: The warehouse.
        config: Settings; the default :class:`TierConfig` when None.

    Returns:
        Columns ``TIER_COLUMNS``, one row per SKU of the panel, sorted by SKU.

    Raises:
        ValueError: If the panel is shorter than the tiering windows.
    """
    config = config or TierConfig()
    if panel.n_days < config.panel_days:
        raise ValueError(f"a {panel.n_days}-day panel is shorter than the tiering windows")
    tiers = _tiers_of_panel(panel, _launch_days(products), warehouse_id, config)
    return tiers.loc[:, list(TIER_COLUMNS)]


def _tiers_of_panel(
    panel: SalesPanel, launch: pd.Series, warehouse_id: object, config: TierConfig
) -> pd.DataFrame:
    origin_day = panel.end_day
    origin = pd.Timestamp(origin_day * 86_400 * 10**9)
    quantity, revenue = panel.quantity, panel.revenue
    window = slice(quantity.shape[1] - config.window_days, None)
    trailing_volume = np.nansum(quantity[:, window], axis=1)
    trailing_revenue = np.nansum(revenue[:, window], axis=1)
    rank, tier = _volume_tiers(trailing_revenue, config.tier_fractions)
    stats = intermittency_stats(quantity[:, quantity.shape[1] - config.intermittency_window_days :])

    pre_nonzero = np.bincount(
        panel.pre_codes, weights=(panel.pre_quantity > 0).astype(np.float64), minlength=len(panel.skus)
    )
    nonzero_total = pre_nonzero + (quantity > 0).sum(axis=1)
    launch_day = launch.reindex(panel.skus).to_numpy(dtype=np.float64, na_value=np.nan)
    effective_launch = np.fmax(launch_day, panel.first_day.astype(np.float64))
    age_days = origin_day - effective_launch
    cold_start = (age_days < config.cold_start_days) | (nonzero_total < config.min_nonzero_days)
    route = np.where(cold_start, ROUTE_COLD_START, np.where(tier <= 2, ROUTE_GLOBAL_ML, ROUTE_STATISTICAL))
    n = len(panel.skus)
    return pd.DataFrame(
        {
            SKU: panel.skus,
            WAREHOUSE_ID: np.full(n, warehouse_id, dtype=object),
            ORIGIN_DATE: np.full(n, origin.to_datetime64()),
            TRAILING_VOLUME: trailing_volume,
            TRAILING_REVENUE: trailing_revenue,
            REVENUE_RANK: rank,
            TIER: tier,
            ADI: stats.adi,
            CV2: stats.cv2,
            NONZERO_DAYS_TOTAL: np.asarray(nonzero_total, dtype=np.float64),
            AGE_DAYS: age_days,
            INTERMITTENCY_CLASS: classify_intermittency(stats.adi, stats.cv2, config),
            COLD_START: cold_start,
            ROUTE: route.astype(object),
        }
    )


def assign_tiers(
    history: pd.DataFrame,
    products: pd.DataFrame,
    origin: DateLike,
    config: TierConfig | None = None,
) -> pd.DataFrame:
    """Assigns volume tier, intermittency class, cold-start flag and route to each active SKU.

    Args:
        history: ``raw_sales`` rows; usually one warehouse (several are tiered each on its own).
        products: The ``products`` table (for launch dates).
        origin: The origin day D; rows after D are ignored.
        config: Settings; the default :class:`TierConfig` when None.

    Returns:
        One row per (SKU, warehouse) with a history row on or before D, columns ``TIER_COLUMNS``, sorted by
        warehouse then SKU.
    """
    config = config or TierConfig()
    origin_day = int(pd.Timestamp(origin).normalize().value // (86_400 * 10**9))
    launch = _launch_days(products)
    warehouse_ids: list[object] = pd.unique(history[WAREHOUSE_ID]).tolist() if len(history) else []
    frames = [
        _assign_warehouse(history, launch, origin_day, warehouse_id, config)
        for warehouse_id in sorted(warehouse_ids, key=str)
    ]
    if not frames:
        return pd.DataFrame({name: [] for name in TIER_COLUMNS})
    tiers = frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)
    return tiers.loc[:, list(TIER_COLUMNS)]


def features_and_tiers(
    history: pd.DataFrame,
    tables: SourceTables,
    origins: Sequence[DateLike],
    warehouse_id: object,
    horizon: int = DEFAULT_HORIZON,
    config: TierConfig | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """:func:`build_training_features` and :func:`assign_tiers` of one warehouse at ``origins``, one panel.

    The history is scattered into a sales panel once, for both: the tiers of each origin come from the
    features' panel cut at the origin (:meth:`SalesPanel.until`, equal to :func:`assign_tiers` of the same
    history). Each is what the separate functions return for the same rows.

    Args:
        history: ``raw_sales`` rows of the warehouse, from ``min(origins) - FEATURE_LOOKBACK_DAYS`` on.
        tables: The source tables.
        origins: Origin days.
        warehouse_id: The warehouse.
        horizon: Last horizon of the features' look-ahead windows.
        config: Tier settings; the default :class:`TierConfig` when None.

    Returns:
        The stacked feature rows (by origin then SKU) and the stacked tiers (by origin then SKU).
    """
    config = config or TierConfig()
    origin_days = sorted({to_day(origin) for origin in origins})
    panel = origins_panel(history, origins, warehouse_id)
    features = build_training_features(history, tables, origins, warehouse_id, horizon, panel=panel)
    frames = []
    for day in origin_days:
        cut = panel.until(day)
        if cut.n_days < config.panel_days or len(cut.skus) == 0:
            frames.append(assign_tiers(history, tables.products, to_timestamp(day), config))
        else:
            frames.append(tiers_from_panel(cut, tables.products, warehouse_id, config))
    tiers = frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)
    return features, tiers


def tier_summary(tiers: pd.DataFrame) -> pd.DataFrame:
    """Counts and volume / revenue shares per (tier, intermittency class), e.g. for asset metadata.

    Args:
        tiers: The output of :func:`assign_tiers`.

    Returns:
        One row per (tier, class) present, columns ``SUMMARY_COLUMNS``; shares are of the whole frame.
    """
    summary = (
        tiers.groupby([TIER, INTERMITTENCY_CLASS], as_index=False)
        .agg(
            **{
                N_SKUS: (SKU, "size"),
                N_COLD_START: (COLD_START, "sum"),
                TRAILING_VOLUME: (TRAILING_VOLUME, "sum"),
                TRAILING_REVENUE: (TRAILING_REVENUE, "sum"),
            }
        )
        .sort_values([TIER, INTERMITTENCY_CLASS], ignore_index=True)
    )
    total_volume = summary[TRAILING_VOLUME].sum()
    total_revenue = summary[TRAILING_REVENUE].sum()
    summary[VOLUME_SHARE] = summary[TRAILING_VOLUME] / total_volume if total_volume else 0.0
    summary[REVENUE_SHARE] = summary[TRAILING_REVENUE] / total_revenue if total_revenue else 0.0
    summary[N_COLD_START] = summary[N_COLD_START].astype(np.int64)
    return summary.loc[:, list(SUMMARY_COLUMNS)]
