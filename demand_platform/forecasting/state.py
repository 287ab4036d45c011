"""Per-origin working state: the SKUs of a warehouse at one origin with their history, tier and route."""

from dataclasses import dataclass

import numpy as np
import pandas as pd

from demand_platform import columns as C
from demand_platform.days import to_timestamp
from demand_platform.features import SalesPanel
from demand_platform.forecasting.config import CAP_WINDOW_DAYS, SEGMENT_TIERS, TrainConfig
from demand_platform.tiering import ROUTE, ROUTE_COLD_START, ROUTE_GLOBAL_ML, ROUTE_STATISTICAL


@dataclass
class OriginState:
    """SKUs to forecast at one origin, aligned arrays."""

    day: int
    skus: np.ndarray
    tier: np.ndarray
    route: np.ndarray
    codes: np.ndarray  # index into panel.skus, -1 when the SKU has no history
    history: np.ndarray  # [n, history_days] demand up to the origin
    category: np.ndarray
    launch_day: np.ndarray

    @property
    def segment(self) -> np.ndarray:
        """Calibration segment index (0..2 = tiers 1..3, 3 = cold start)."""
        tier_index = np.clip(self.tier.astype(np.int64), 1, len(SEGMENT_TIERS)) - 1
        return np.where(self.route == ROUTE_COLD_START, len(SEGMENT_TIERS), tier_index)

    @property
    def is_ml(self) -> np.ndarray:
        """SKUs routed to the global model."""
        return self.route == ROUTE_GLOBAL_ML


@dataclass
class Components:
    """Component forecasts ``[n, H]`` at one origin."""

    lgbm: np.ndarray  # NaN where not predicted
    stat: np.ndarray
    stat_name: np.ndarray
    cold: np.ndarray


def warehouse_history(history: pd.DataFrame, warehouse_id: object, end_day: int) -> pd.DataFrame:
    """Rows of the warehouse dated on or before ``end_day`` (nothing later is ever read).

    ``history`` itself when every row qualifies (what the assets pass: one warehouse's window), a
    filtered copy otherwise; the callers only read it. Copying a year of a warehouse's rows cost
    0.6 s of each forecast.
    """
    dates = history[C.DATE]
    if not pd.api.types.is_datetime64_any_dtype(dates.dtype):
        dates = pd.to_datetime(dates)
    keep = (dates <= to_timestamp(end_day)).to_numpy()
    if C.WAREHOUSE_ID in history.columns:
        keep &= (history[C.WAREHOUSE_ID] == warehouse_id).to_numpy()
    return history if keep.all() else history.loc[keep]


def read_catalog(products: pd.DataFrame) -> pd.DataFrame:
    """Category, launch epoch day and price (NaN when unknown) per SKU of the ``products`` table (last row
    wins)."""
    catalog = products.drop_duplicates(C.SKU, keep="last").set_index(C.SKU)
    launch = pd.to_datetime(catalog[C.LAUNCH_DATE]).to_numpy().astype("datetime64[D]")
    price = (
        pd.to_numeric(catalog[C.PRICE], errors="coerce").to_numpy(np.float64)
        if C.PRICE in catalog
        else np.full(len(catalog), np.nan)
    )
    return pd.DataFrame(
        {
            C.CATEGORY: catalog[C.CATEGORY].astype(object).to_numpy(),
            "launch": np.where(np.isnat(launch), np.nan, launch.astype(np.int64).astype(np.float64)),
            C.PRICE: price,
        },
        index=catalog.index,
    )


def catalog_price(catalog: pd.DataFrame, skus: np.ndarray) -> np.ndarray:
    """Price of each SKU in a :func:`read_catalog` frame (NaN when unknown)."""
    return catalog[C.PRICE].reindex(pd.Index(np.asarray(skus, dtype=object))).to_numpy(np.float64)


def panel_attributes(panel: SalesPanel, catalog: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Category and effective launch day of each panel SKU.

    The effective launch is the later of the launch date and the SKU's first row (as in tiering), except
    for SKUs whose first row is the history's first day (left-censored: they may have sold long before),
    which take the earlier of the two.
    """
    info = catalog.reindex(panel.skus)
    category = info[C.CATEGORY].to_numpy(dtype=object)
    launch_date = info["launch"].to_numpy(np.float64)
    first_row = panel.first_day.astype(np.float64)
    history_start = panel.history_first_day if panel.history_first_day is not None else np.inf
    censored = first_row <= history_start
    launch = np.where(censored, np.fmin(launch_date, first_row), np.fmax(launch_date, first_row))
    return category, launch


def history_window(panel: SalesPanel, codes: np.ndarray, end_column: int, n_days: int) -> np.ndarray:
    """``[len(codes), n_days]`` panel demand ending at ``end_column`` (NaN before the panel / for code -1)."""
    columns = end_column - n_days + 1 + np.arange(n_days)
    out = np.full((len(codes), n_days), np.nan)
    ok_columns = columns >= 0
    ok_rows = codes >= 0
    if ok_rows.any() and ok_columns.any():
        out[np.ix_(ok_rows, ok_columns)] = panel.quantity[np.ix_(codes[ok_rows], columns[ok_columns])]
    return out


def tiers_of(tiers: pd.DataFrame, warehouse_id: object) -> pd.DataFrame:
    """The warehouse's rows of a tiers table, one per SKU (the last), sorted by SKU."""
    if C.WAREHOUSE_ID in tiers.columns:
        tiers = tiers.loc[tiers[C.WAREHOUSE_ID] == warehouse_id]
    return tiers.drop_duplicates(C.SKU, keep="last").sort_values(C.SKU, kind="stable")


def origin_state(
    panel: SalesPanel,
    tiers: pd.DataFrame,
    origin_day: int,
    category: np.ndarray,
    launch: np.ndarray,
    n_days: int,
    new_max_age: int,
) -> OriginState:
    """The SKUs of ``tiers`` at the origin with their history; cold start is kept for new SKUs only.

    Tiering routes to cold start both new SKUs and old ones with too few selling days. Those older than
    ``new_max_age`` days are forecast by the statistical models instead: a launch profile says nothing
    about them, and their flat long-run mean kept forecasting the lumps of SKUs that sold four wholesale
    orders in a year (Online Retail EU).
    """
    skus = tiers[C.SKU].to_numpy(dtype=object)
    codes = pd.Index(panel.skus).get_indexer(pd.Index(skus))
    route = tiers[ROUTE].to_numpy(dtype=object).copy()
    route[codes < 0] = ROUTE_COLD_START
    found = codes >= 0
    sku_category = np.full(len(skus), None, dtype=object)
    sku_category[found] = category[codes[found]]
    sku_launch = np.full(len(skus), float(origin_day))
    sku_launch[found] = launch[codes[found]]
    old = (route == ROUTE_COLD_START) & (origin_day - sku_launch >= new_max_age) & found
    route[old] = ROUTE_STATISTICAL
    return OriginState(
        day=origin_day,
        skus=skus,
        tier=tiers[C.TIER].to_numpy(np.int64),
        route=route,
        codes=codes,
        history=history_window(panel, codes, origin_day - panel.start_day, n_days),
        category=sku_category,
        launch_day=sku_launch,
    )


def output_cap(state: OriginState, cold: np.ndarray, config: TrainConfig) -> np.ndarray:
    """Per-SKU cap of every output."""
    window = state.history[:, -CAP_WINDOW_DAYS:]
    has = (~np.isnan(window)).any(axis=1)
    peak = np.where(has, np.nanmax(np.where(has[:, None], window, 0.0), axis=1), 0.0)
    cap = config.cap_multiple * peak
    young = (state.day - state.launch_day) < config.cold_start_max_age
    is_cold = (state.route == ROUTE_COLD_START) & young
    cold_cap = np.maximum(config.cap_multiple * cold.max(axis=1, initial=0.0), config.cold_start_floor)
    return np.where(is_cold, np.maximum(cap, cold_cap), cap)


def ml_history(history: pd.DataFrame, skus: np.ndarray) -> pd.DataFrame:
    """The history rows of ``skus`` (the LightGBM's SKUs), for its features."""
    return history.loc[history[C.SKU].isin(skus)]
