"""Tests of volume tiers, Syntetos-Boylan classes, cold start and routing on constructed series."""

import numpy as np
import pandas as pd
import pytest

from demand_platform.columns import (
    DATE,
    LAUNCH_DATE,
    N_ORDERS,
    ORIGIN_DATE,
    QUANTITY,
    REVENUE,
    SKU,
    TIER,
    WAREHOUSE_ID,
)
from demand_platform.features import build_sales_panel
from demand_platform.tiering import (
    ADI,
    COLD_START,
    CV2,
    ERRATIC,
    INTERMITTENCY_CLASS,
    INTERMITTENT,
    LUMPY,
    N_COLD_START,
    N_SKUS,
    NO_DEMAND,
    NONZERO_DAYS_TOTAL,
    ROUTE,
    ROUTE_COLD_START,
    ROUTE_GLOBAL_ML,
    ROUTE_STATISTICAL,
    SMOOTH,
    SUMMARY_COLUMNS,
    TIER_COLUMNS,
    TRAILING_REVENUE,
    TRAILING_VOLUME,
    VOLUME_SHARE,
    TierConfig,
    assign_tiers,
    classify_intermittency,
    tier_summary,
    tiers_from_panel,
)

ORIGIN = pd.Timestamp("2024-06-30")
N_DAYS = 400
DATES = pd.date_range(ORIGIN - pd.Timedelta(days=N_DAYS - 1), ORIGIN + pd.Timedelta(days=30))
T = np.arange(len(DATES))
PAST = DATES <= ORIGIN


def _every(k: int, values: tuple[float, ...]) -> np.ndarray:
    """Demand on every k-th day, cycling through ``values``; 0 otherwise."""
    out = np.zeros(len(DATES))
    hits = np.flatnonzero(T % k == 0)
    out[hits] = np.resize(np.asarray(values), len(hits))
    return out


def _recent_launch(days_before_origin: int) -> np.ndarray:
    launch = ORIGIN - pd.Timedelta(days=days_before_origin)
    out = np.full(len(DATES), 5.0)
    out[DATES.to_numpy() < launch.to_datetime64()] = np.nan
    return out


def _few_sales() -> np.ndarray:
    out = np.zeros(len(DATES))
    out[np.flatnonzero(PAST)[-50:-45]] = 3.0  # 5 sale days, within the last 90
    return out


# SKU -> (daily demand, price). Prices 1000x apart fix the revenue order whatever the volume.
SERIES = {
    "S0": (np.full(len(DATES), 5.0), 1e9),  # smooth
    "S1": (_every(1, (1.0, 10.0)), 1e8),  # erratic: ADI 1, CV^2 = 20.25 / 30.25
    "S2": (_every(3, (5.0,)), 1e7),  # intermittent: ADI 3, CV^2 0
    "S3": (_every(3, (1.0, 10.0)), 1e6),  # lumpy
    "S4": (_recent_launch(20), 1e5),  # launched 20 days before the origin
    "S5": (_few_sales(), 1e4),  # fewer than 8 sale days
    "S6": (np.full(len(DATES), 5.0), 1e3),
    "S7": (np.full(len(DATES), 5.0), 1e2),
    "S8": (np.full(len(DATES), 5.0), 1e1),
    "S9": (np.zeros(len(DATES)), 1.0),  # never sold
}


def _history(series: dict[str, tuple[np.ndarray, float]], warehouse_id: str = "W1") -> pd.DataFrame:
    frames = []
    for sku, (quantity, price) in series.items():
        keep = ~np.isnan(quantity)
        frames.append(
            pd.DataFrame(
                {
                    SKU: sku,
                    WAREHOUSE_ID: warehouse_id,
                    DATE: DATES[keep],
                    QUANTITY: quantity[keep],
                    REVENUE: quantity[keep] * price,
                    N_ORDERS: quantity[keep].astype(np.int64),
                }
            )
        )
    history = pd.concat(frames, ignore_index=True)
    after = history[DATE] > ORIGIN  # rows after the origin must be ignored
    history.loc[after, QUANTITY] = 1e6
    history.loc[after, REVENUE] = 1e12 * (history.loc[after, SKU] == "S9")
    return history


def _products(series: dict[str, tuple[np.ndarray, float]]) -> pd.DataFrame:
    launch = {sku: pd.Timestamp("2020-01-01") for sku in series}
    launch["S4"] = ORIGIN - pd.Timedelta(days=20)
    return pd.DataFrame({SKU: list(series), LAUNCH_DATE: [launch[sku] for sku in series]})


@pytest.fixture(scope="module")
def tiers() -> pd.DataFrame:
    return assign_tiers(_history(SERIES), _products(SERIES), ORIGIN, TierConfig()).set_index(SKU)


def test_columns_and_one_row_per_active_sku(tiers: pd.DataFrame) -> None:
    assert tuple(tiers.reset_index().columns) == TIER_COLUMNS
    assert list(tiers.index) == list(SERIES)
    assert (tiers[WAREHOUSE_ID] == "W1").all()
    assert (tiers[ORIGIN_DATE] == ORIGIN).all()


def test_top_20_percent_by_revenue_is_tier_1(tiers: pd.DataFrame) -> None:
    assert tiers[TIER].to_dict() == {
        "S0": 1,
        "S1": 1,
        "S2": 2,
        "S3": 2,
        "S4": 2,
        "S5": 3,
        "S6": 3,
        "S7": 3,
        "S8": 3,
        "S9": 3,
    }
    assert tiers.loc["S0", TRAILING_VOLUME] == 5 * 90
    assert tiers.loc["S0", TRAILING_REVENUE] == 5 * 90 * 1e9
    assert tiers.loc["S9", TRAILING_REVENUE] == 0  # the huge revenue after the origin is ignored


def test_tier_fractions_are_configurable() -> None:
    config = TierConfig(tier_fractions=(0.1, 0.3))
    tiers = assign_tiers(_history(SERIES), _products(SERIES), ORIGIN, config).set_index(SKU)
    assert tiers[TIER].tolist() == [1, 2, 2, 2, 3, 3, 3, 3, 3, 3]


def test_syntetos_boylan_classes(tiers: pd.DataFrame) -> None:
    assert tiers.loc["S0", INTERMITTENCY_CLASS] == SMOOTH
    assert tiers.loc["S1", INTERMITTENCY_CLASS] == ERRATIC
    assert tiers.loc["S2", INTERMITTENCY_CLASS] == INTERMITTENT
    assert tiers.loc["S3", INTERMITTENCY_CLASS] == LUMPY
    assert tiers.loc["S9", INTERMITTENCY_CLASS] == NO_DEMAND
    assert tiers.loc["S0", ADI] == 1
    assert tiers.loc["S0", CV2] == 0
    window = SERIES["S1"][0][PAST][-365:]  # 1, 10, 1, 10, ...: CV^2 close to 20.25 / 30.25
    assert tiers.loc["S1", CV2] == pytest.approx(window.var() / window.mean() ** 2)
    assert tiers.loc["S2", ADI] == pytest.approx(3, abs=0.01)
    assert np.isnan(tiers.loc["S9", ADI])


def test_classification_thresholds_are_inclusive_above() -> None:
    adi = np.array([1.0, 1.32, 1.0, 1.32, 1.3199, np.nan])
    cv2 = np.array([0.0, 0.0, 0.49, 0.49, 0.4899, np.nan])
    assert classify_intermittency(adi, cv2).tolist() == [
        SMOOTH,
        INTERMITTENT,
        ERRATIC,
        LUMPY,
        SMOOTH,
        NO_DEMAND,
    ]


def test_cold_start_and_routes(tiers: pd.DataFrame) -> None:
    assert tiers[COLD_START].to_dict() == {sku: sku in {"S4", "S5", "S9"} for sku in SERIES}
    assert tiers.loc["S5", NONZERO_DAYS_TOTAL] == 5
    assert tiers[ROUTE].to_dict() == {
        "S0": ROUTE_GLOBAL_ML,
        "S1": ROUTE_GLOBAL_ML,
        "S2": ROUTE_GLOBAL_ML,
        "S3": ROUTE_GLOBAL_ML,
        "S4": ROUTE_COLD_START,
        "S5": ROUTE_COLD_START,
        "S6": ROUTE_STATISTICAL,
        "S7": ROUTE_STATISTICAL,
        "S8": ROUTE_STATISTICAL,
        "S9": ROUTE_COLD_START,
    }


def test_cold_start_boundary_and_first_row_in_the_warehouse() -> None:
    series = {"OLD": SERIES["S0"], "NEW": (_recent_launch(56), 1.0), "YOUNG": (_recent_launch(55), 1.0)}
    products = pd.DataFrame({SKU: ["OLD", "NEW", "YOUNG"], LAUNCH_DATE: pd.Timestamp("2020-01-01")})
    # The catalog says 2020 but the SKU's first row in this warehouse is recent: it is still cold start.
    tiers = assign_tiers(_history(series), products, ORIGIN, TierConfig()).set_index(SKU)
    assert tiers[COLD_START].to_dict() == {"NEW": False, "OLD": False, "YOUNG": True}


def test_sku_launching_after_the_origin_has_no_row() -> None:
    series = {"S0": SERIES["S0"], "LATE": (np.where(DATES > ORIGIN, 1.0, np.nan), 1.0)}
    tiers = assign_tiers(_history(series), _products(series), ORIGIN)
    assert tiers[SKU].tolist() == ["S0"]


def test_several_warehouses_are_tiered_separately() -> None:
    history = pd.concat([_history(SERIES, "W1"), _history(SERIES, "W2")], ignore_index=True)
    tiers = assign_tiers(history, _products(SERIES), ORIGIN)
    assert len(tiers) == 20
    assert tiers.loc[tiers[TIER] == 1].groupby(WAREHOUSE_ID).size().to_dict() == {"W1": 2, "W2": 2}


def test_tier_summary(tiers: pd.DataFrame) -> None:
    summary = tier_summary(tiers.reset_index())
    assert tuple(summary.columns) == SUMMARY_COLUMNS
    assert summary[N_SKUS].sum() == len(SERIES)
    assert summary[VOLUME_SHARE].sum() == pytest.approx(1.0)
    tier1 = summary.loc[summary[TIER] == 1].set_index(INTERMITTENCY_CLASS)
    assert set(tier1.index) == {SMOOTH, ERRATIC}
    assert tier1.loc[SMOOTH, TRAILING_VOLUME] == 450
    assert summary[N_COLD_START].sum() == 3


def test_tiers_from_a_truncated_long_panel_equal_assign_tiers() -> None:
    """Training tiers its CV origins from one long panel cut at each origin (``SalesPanel.until``): the
    result must be assign_tiers' on the history, SKUs launched after an origin and rows before the
    panel's start included."""
    rng = np.random.default_rng(7)
    days = pd.date_range("2022-01-01", periods=900)
    n = 40
    launch_column = rng.integers(0, 880, n)
    launch_column[:10] = 0
    rows = []
    for i in range(n):
        rate = rng.choice([0.05, 0.5, 5.0])
        for d in range(launch_column[i], len(days)):
            if rng.random() < 0.03:
                continue  # a hole: no row that day
            q = float(rng.poisson(rate))
            rows.append((f"S{i:02d}", "W1", days[d], q, 3.0 * q, int(q > 0)))
    history = pd.DataFrame(rows, columns=[SKU, WAREHOUSE_ID, DATE, QUANTITY, REVENUE, N_ORDERS])
    products = pd.DataFrame({SKU: [f"S{i:02d}" for i in range(n)], LAUNCH_DATE: days[launch_column]})
    end = days[-1]
    panel = build_sales_panel(history, end=end, lookback_days=0, start=days[100])  # rows before: pre_*
    for origin in (days[-1], days[-30], days[-61], days[-91], days[500]):
        day = int(origin.value // (86_400 * 10**9))
        got = tiers_from_panel(panel.until(day), products, "W1")
        expected = assign_tiers(history, products, origin)
        pd.testing.assert_frame_equal(got.reset_index(drop=True), expected.reset_index(drop=True))
    assert len(tiers_from_panel(panel.until(int(days[500].value // (86_400 * 10**9))), products, "W1")) < n
    with pytest.raises(ValueError, match="shorter than the tiering windows"):
        tiers_from_panel(panel.until(int(days[300].value // (86_400 * 10**9))), products, "W1")
