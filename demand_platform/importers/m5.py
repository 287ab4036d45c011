"""Import the Walmart M5 competition files as a platform source.

Inputs are the M5 files as published (or any subset of their rows and ``d_`` columns):

* ``sales``: wide, one row per item x store, ``id`` (``HOBBIES_2_001_CA_3_evaluation``; the
  ``item_id``, ``dept_id``, ``cat_id``, ``store_id``, ``state_id`` columns are used when present)
  and daily unit sales ``d_1 .. d_N``;
* ``calendar``: one row per day, row n is day ``d_n`` (``date``, ``wm_yr_wk``, ``event_name_1``,
  ``event_name_2``, ``snap_CA``, ``snap_TX``, ``snap_WI``, ...);
* ``sell_prices`` (optional): weekly prices ``store_id, item_id, wm_yr_wk, sell_price``.

Mapping rules:

* **warehouses**: one per store; ``warehouse_id`` and ``location_city`` = store id (``CA_3``),
  ``location_state`` = its state (the part before ``_``), latitude/longitude = a point inside the
  state (:data:`STATE_COORDINATES`; null for other states), capacity null, ``operational_since`` =
  the first imported day (all M5 stores trade from d_1).
* **products**: one per item (``HOBBIES_2_001``): ``category`` = ``cat_id`` (HOBBIES),
  ``sub_category`` = ``dept_id`` (HOBBIES_2), brand and weight null, ``is_seasonal`` False. ``price``
  = the latest known weekly price (median over the stores pricing the item in that week); an item
  without any known price gets the median price of its department, else of all items, else 0.0
  (no price file at all: 0.0, noted). ``launch_date`` = the first day of the first week the item
  has a price in any store, or its first sale if earlier (M5 items enter the store when first
  priced). Items that have neither a price nor a sale in the imported days are not written (noted).
* **transactions**: one line per item x store x day with units > 0 (M5 lists no orders):
  ``transaction_id`` = ``order_id`` = ``"{store}-{item}-d_{n}"``, ``quantity`` = units,
  ``revenue`` = units x that store's sell price of the week (null when the week has no price),
  ``customer_id`` null. Negative or fractional units are quarantined (none in the real files).
  Lines are written chunk by chunk of input rows, day-major within a chunk.
* **calendar**: every calendar row (not truncated by ``last_day``: events and SNAP days are planned
  ahead, which is why M5 ships them for the forecast windows): ``is_holiday`` when any event is set,
  ``holiday_name`` = ``event_name_1`` (``"; " + event_name_2`` when there is a second one) — M5
  events include sporting, cultural and religious days, not only national holidays. ``is_payday`` =
  the SNAP day flag (``snap_<state>``) of the imported stores' state; the platform calendar is one
  row per day, so when the import spans several states the state with most stores is used (ties:
  alphabetical) and a note says so. ``day_of_week`` is ISO (Monday = 1; M5's ``wday`` starts on
  Saturday and is not used).

``last_day`` truncates the history to ``d_1 .. d_last``: no sale and no price of a later week is
read, so products' price and launch date are what was known on that day.

The sales file is read in chunks of rows and turned into lines with numpy (no per-cell Python), so
the full M5 (30,490 x 1,969) fits in memory: a chunk, plus a dense item-store x week price matrix
(30,490 x 282 floats).
"""

import datetime as dt
import re
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from demand_platform import columns as C
from demand_platform.importers import (
    SCHEMAS,
    ImportSummary,
    existing_other_tables,
    write_frame,
    write_quarantine,
)
from demand_platform.source import quarantine_frame

__all__ = ["STATE_COORDINATES", "import_m5", "parse_m5_ids"]

STATE_COORDINATES: dict[str, tuple[float, float]] = {
    "CA": (36.78, -119.42),
    "TX": (31.0, -100.0),
    "WI": (44.5, -89.5),
}
"""A plausible (latitude, longitude) inside each M5 state (the geographic centres, roughly)."""

_ID_PATTERN = (
    r"^(?P<item_id>(?P<dept_id>(?P<cat_id>.+?)_[^_]+)_[^_]+)_(?P<store_id>(?P<state_id>[^_]+)_[^_]+)$"
)
_ID_SUFFIX = r"_(?:evaluation|validation)$"
_ID_PARTS = ("item_id", "dept_id", "cat_id", "store_id", "state_id")
_DAY_COLUMN = re.compile(r"^d_(\d+)$")
_WAREHOUSE_ID = re.compile(r"^[A-Za-z0-9_\-]+$")
_EPOCH = pd.Timestamp("1970-01-01")
_ROW_GROUP = 256 * 1024
_WRITTEN = (C.TRANSACTIONS, C.PRODUCTS, C.WAREHOUSES, C.CALENDAR)


def parse_m5_ids(frame: pd.DataFrame) -> pd.DataFrame:
    """Item, department, category, store and state of each sales row.

    Uses the ``item_id``, ``dept_id``, ``cat_id``, ``store_id`` and ``state_id`` columns when the
    frame has them all, else parses ``id`` (``HOBBIES_2_001_CA_3_evaluation`` -> item
    ``HOBBIES_2_001``, dept ``HOBBIES_2``, cat ``HOBBIES``, store ``CA_3``, state ``CA``).

    Args:
        frame: Sales rows with ``id`` or the five id columns.

    Returns:
        A frame with the five id columns (strings), aligned with ``frame``.

    Raises:
        ValueError: An id cannot be parsed, or a store id is not a valid warehouse id.
    """
    if all(part in frame.columns for part in _ID_PARTS):
        parts = frame.loc[:, list(_ID_PARTS)].astype(str)
    else:
        if "id" not in frame.columns:
            raise ValueError(f"M5 sales need an 'id' column or the columns {', '.join(_ID_PARTS)}")
        ids = frame["id"].astype(str).str.replace(_ID_SUFFIX, "", regex=True)
        parts = ids.str.extract(_ID_PATTERN)
        bad = parts["item_id"].isna()
        if bad.any():
            raise ValueError(
                f"M5 sales: cannot parse id {frame['id'][bad].iloc[0]!r} ({int(bad.sum())} such rows); "
                "expected CAT_DEPT_ITEM_STATE_STORE[_evaluation], e.g. HOBBIES_2_001_CA_3_evaluation"
            )
        parts = parts.loc[:, list(_ID_PARTS)]
    bad_store = ~parts["store_id"].str.match(_WAREHOUSE_ID)
    if bad_store.any():
        raise ValueError(
            f"M5 sales: store id {parts['store_id'][bad_store].iloc[0]!r} is not a valid warehouse id "
            "(letters, digits, '_' and '-' only)"
        )
    return parts.reset_index(drop=True)


def _day_columns(sales_csv: Path, n_calendar_days: int, last_day: int | None) -> tuple[list[str], np.ndarray]:
    """The ``d_n`` columns to import (sorted by n) and their calendar rows (n - 1)."""
    header = pd.read_csv(sales_csv, nrows=0).columns
    numbered = sorted(
        (int(match.group(1)), name) for name in header if (match := _DAY_COLUMN.match(str(name)))
    )
    if not numbered:
        raise ValueError(f"{sales_csv}: no d_<n> day columns")
    if last_day is not None:
        if last_day < 1:
            raise ValueError(f"last_day must be >= 1, got {last_day}")
        numbered = [(n, name) for n, name in numbered if n <= last_day]
        if not numbered:
            raise ValueError(f"{sales_csv}: no day column at or before d_{last_day}")
    if numbered[-1][0] > n_calendar_days or numbered[0][0] < 1:
        raise ValueError(
            f"{sales_csv}: day column d_{numbered[-1][0]} is outside the calendar (d_1 .. d_{n_calendar_days})"
        )
    return [name for _, name in numbered], np.array([n - 1 for n, _ in numbered], dtype=np.int64)


def _read_calendar(calendar_csv: Path) -> pd.DataFrame:
    calendar = pd.read_csv(calendar_csv)
    if C.DATE not in calendar.columns:
        raise ValueError(f"{calendar_csv}: the M5 calendar needs a 'date' column (row n is d_n)")
    calendar[C.DATE] = pd.to_datetime(calendar[C.DATE]).dt.normalize()
    return calendar.reset_index(drop=True)


class _Prices:
    """Weekly sell prices as a dense (store, item) x week matrix, limited to weeks known at the cutoff.

    Attributes:
        pairs: ``(store_id, item_id)`` of the matrix rows.
        matrix: ``[n_pairs, n_weeks]`` prices, NaN where not priced (or week after the cutoff).
        week_first_row: Calendar row of each week's first day.
        week_of_row: Week index of every calendar row (-1 when the row has no known week).
    """

    def __init__(self, prices_csv: Path, calendar: pd.DataFrame, cutoff_row: int) -> None:
        if "wm_yr_wk" not in calendar.columns:
            raise ValueError("the M5 calendar needs a 'wm_yr_wk' column to use sell prices")
        cal_weeks = calendar["wm_yr_wk"].to_numpy(dtype=np.int64)
        weeks, first_row = np.unique(cal_weeks, return_index=True)
        order = np.argsort(first_row)
        self.weeks = weeks[order]
        self.week_first_row = first_row[order]
        self.week_of_row = np.argsort(order)[np.searchsorted(weeks, cal_weeks)]
        prices = pd.read_csv(
            prices_csv,
            usecols=["store_id", "item_id", "wm_yr_wk", "sell_price"],
            dtype={
                "store_id": "category",
                "item_id": "category",
                "wm_yr_wk": "int64",
                "sell_price": "float64",
            },
        )
        position = np.searchsorted(weeks, prices["wm_yr_wk"].to_numpy())
        position = np.clip(position, 0, len(weeks) - 1)
        in_calendar = weeks[position] == prices["wm_yr_wk"].to_numpy()
        week_index = np.argsort(order)[position]
        known = in_calendar & (self.week_first_row[week_index] <= cutoff_row)
        prices = prices.loc[known].reset_index(drop=True)
        week_index = week_index[known]
        groups = prices.groupby(["store_id", "item_id"], sort=True, observed=True)
        codes = groups.ngroup().to_numpy()
        self.pairs = groups.size().index
        self.matrix = np.full((len(self.pairs), len(self.weeks)), np.nan)
        self.matrix[codes, week_index] = prices["sell_price"].to_numpy()

    def rows_for(self, stores: pd.Series, items: pd.Series) -> np.ndarray:
        """Matrix row of each (store, item) pair, -1 when the pair has no price."""
        return self.pairs.get_indexer(pd.MultiIndex.from_arrays([stores.to_numpy(), items.to_numpy()]))


def _negative_cells(
    chunk: pd.DataFrame, ids: pd.DataFrame, values: np.ndarray, day_cols: list[str], dates: np.ndarray
) -> pd.DataFrame | None:
    """Quarantine rows for cells whose units are negative or fractional (None when there is none)."""
    with np.errstate(invalid="ignore"):
        bad = (values < 0) | (np.isfinite(values) & (values != np.round(values)))
    rows, cols = np.nonzero(bad)
    if len(rows) == 0:
        return None
    labels = np.where(values[rows, cols] < 0, "negative units", "fractional units")
    key = (
        chunk["id"].to_numpy()
        if "id" in chunk.columns
        else (ids["item_id"] + "_" + ids["store_id"]).to_numpy()
    )
    original = pd.DataFrame(
        {
            "id": key[rows],
            "d": np.array(day_cols, dtype=object)[cols],
            "units": values[rows, cols],
        }
    )
    return quarantine_frame(
        C.TRANSACTIONS,
        original,
        pd.Series(labels),
        warehouse_id=ids["store_id"].iloc[rows].reset_index(drop=True),
        partition_date=pd.Series(dates[cols]),
    )


def _calendar_table(calendar: pd.DataFrame, payday_state: str | None) -> tuple[pd.DataFrame, list[str]]:
    """The platform calendar from the M5 calendar; notes on the payday choice."""
    notes: list[str] = []
    dates = pd.DatetimeIndex(calendar[C.DATE])
    empty = pd.Series(None, index=calendar.index, dtype=object)
    first, second = (
        calendar[col] if col in calendar.columns else empty for col in ("event_name_1", "event_name_2")
    )
    holiday_name = [
        "; ".join(str(n) for n in (a, b) if not pd.isna(n)) or None
        for a, b in zip(first, second, strict=True)
    ]
    snap_col = f"snap_{payday_state}" if payday_state else None
    if snap_col and snap_col in calendar.columns:
        payday = calendar[snap_col].fillna(0).astype(int).to_numpy() == 1
    else:
        payday = np.zeros(len(calendar), dtype=bool)
        notes.append(f"no SNAP column {snap_col or 'snap_<state>'} in the calendar: is_payday is False")
    frame = pd.DataFrame(
        {
            C.DATE: dates,
            C.DAY_OF_WEEK: dates.dayofweek.to_numpy() + 1,
            C.IS_WEEKEND: dates.dayofweek.to_numpy() >= 5,
            C.IS_HOLIDAY: np.array([n is not None for n in holiday_name], dtype=bool),
            C.HOLIDAY_NAME: pd.Series(holiday_name, dtype=object),
            C.IS_PAYDAY: payday,
            C.MONTH: dates.month.to_numpy(),
            C.QUARTER: dates.quarter.to_numpy(),
            C.YEAR: dates.year.to_numpy(),
        }
    )
    return frame, notes


def _payday_state(stores: pd.DataFrame) -> tuple[str | None, list[str]]:
    """The state whose SNAP days become paydays: the state with most stores (ties alphabetical)."""
    if stores.empty:
        return None, []
    counts = stores.groupby("state_id").size().reset_index(name="n")
    counts = counts.sort_values(["n", "state_id"], ascending=[False, True])
    state = str(counts["state_id"].iloc[0])
    notes = []
    if len(counts) > 1:
        notes.append(
            f"stores span states {', '.join(sorted(counts['state_id']))}: is_payday = SNAP days of {state} "
            "(the platform calendar has one row per day)"
        )
    return state, notes


def _products(
    series: pd.DataFrame,
    prices: _Prices | None,
    calendar_dates: pd.DatetimeIndex,
) -> tuple[pd.DataFrame, list[str]]:
    """One product per item: category, latest known price, launch date.

    Args:
        series: One row per sales row: the id columns and ``first_sale_row`` (calendar row of the
            first sale, -1 when none).
        prices: The price matrix, or None without a price file.
        calendar_dates: Date of each calendar row.
    """
    notes: list[str] = []
    per_series = series.copy()
    per_series["first_price_row"] = -1
    per_series["last_week"] = -1
    per_series["last_price"] = np.nan
    if prices is not None:
        rows = prices.rows_for(series["store_id"], series["item_id"])
        has_row = rows >= 0
        priced = np.zeros((len(series), prices.matrix.shape[1]), dtype=bool)
        priced[has_row] = np.isfinite(prices.matrix[rows[has_row]])
        any_price = priced.any(axis=1)
        first_week = np.where(any_price, priced.argmax(axis=1), -1)
        last_week = np.where(any_price, priced.shape[1] - 1 - priced[:, ::-1].argmax(axis=1), -1)
        per_series["first_price_row"] = np.where(
            any_price, prices.week_first_row[np.maximum(first_week, 0)], -1
        )
        per_series["last_week"] = last_week
        last_price = np.full(len(series), np.nan)
        last_price[any_price] = prices.matrix[rows[any_price], last_week[any_price]]
        per_series["last_price"] = last_price
    big = np.iinfo(np.int64).max
    per_series["first_row"] = np.minimum(
        np.where(per_series["first_price_row"] >= 0, per_series["first_price_row"], big),
        np.where(per_series["first_sale_row"] >= 0, per_series["first_sale_row"], big),
    )
    latest = per_series[per_series["last_week"] >= 0]
    latest = latest[latest["last_week"] == latest.groupby("item_id")["last_week"].transform("max")]
    item_price = latest.groupby("item_id")["last_price"].median()
    items = per_series.groupby("item_id", sort=True).agg(
        dept_id=("dept_id", "first"), cat_id=("cat_id", "first"), first_row=("first_row", "min")
    )
    unlaunched = items["first_row"] == big
    if unlaunched.any():
        notes.append(
            f"{int(unlaunched.sum())} item(s) with neither a price nor a sale in the imported days not written"
        )
    items = items.loc[~unlaunched]
    items["price"] = item_price.reindex(items.index)
    if prices is None:
        items["price"] = 0.0
        notes.append("no sell prices given: products.price is 0.0 and revenue is null")
    elif items["price"].isna().any():
        missing = items["price"].isna()
        dept_median = items.groupby("dept_id")["price"].transform("median")
        overall = items["price"].median()
        items["price"] = items["price"].fillna(dept_median).fillna(overall).fillna(0.0)
        notes.append(
            f"{int(missing.sum())} item(s) without a known price: department (else overall) median price used"
        )
    frame = pd.DataFrame(
        {
            C.SKU: items.index.to_numpy(dtype=object),
            C.CATEGORY: items["cat_id"].to_numpy(dtype=object),
            C.SUB_CATEGORY: items["dept_id"].to_numpy(dtype=object),
            C.BRAND: None,
            C.PRICE: items["price"].to_numpy(dtype=float),
            C.WEIGHT_KG: np.nan,
            C.IS_SEASONAL: False,
            C.LAUNCH_DATE: calendar_dates[items["first_row"].to_numpy()],
        }
    )
    return frame, notes


def _chunk_lines(
    ids: pd.DataFrame,
    values: np.ndarray,
    day_cols: list[str],
    day_epoch: np.ndarray,
    price_rows: np.ndarray | None,
    prices: _Prices | None,
    day_rows: np.ndarray,
) -> pa.Table:
    """Transaction lines of one chunk: one per (row, day) with units > 0, day-major."""
    with np.errstate(invalid="ignore"):
        sold = (values > 0) & (values == np.round(values))
    cols, rows = np.nonzero(sold.T)
    units = values[rows, cols].astype(np.int64)
    if prices is not None and price_rows is not None:
        pair = price_rows[rows]
        week = prices.week_of_row[day_rows[cols]]
        price = np.full(len(rows), np.nan)
        ok = pair >= 0
        price[ok] = prices.matrix[pair[ok], week[ok]]
        revenue = units * price
    else:
        revenue = np.full(len(rows), np.nan)
    take_rows = pa.array(rows)
    stores = pa.array(ids["store_id"].to_numpy(dtype=object), type=pa.string()).take(take_rows)
    items = pa.array(ids["item_id"].to_numpy(dtype=object), type=pa.string()).take(take_rows)
    days = pa.array(day_cols, type=pa.string()).take(pa.array(cols))
    tid = pc.binary_join_element_wise(stores, items, days, "-")
    schema = SCHEMAS[C.TRANSACTIONS]
    return pa.Table.from_arrays(
        [
            tid,
            items,
            stores,
            pa.array(day_epoch[cols].astype(np.int32)).cast(pa.date32()),
            pa.array(units, type=pa.int64()),
            pa.array(revenue, type=pa.float64(), from_pandas=True),
            pa.nulls(len(rows), type=pa.string()),
            tid,
        ],
        schema=schema,
    )


def import_m5(
    sales_csv: str | Path,
    calendar_csv: str | Path,
    out_dir: str | Path,
    prices_csv: str | Path | None = None,
    last_day: int | None = None,
    chunk_rows: int = 2000,
) -> ImportSummary:
    """Write a platform source from M5 sales, calendar and (optionally) sell prices.

    See the module docstring for the mapping rules.

    Args:
        sales_csv: Wide daily unit sales (``id``, ``d_1 .. d_N``), any subset of M5 rows and days.
        calendar_csv: The M5 calendar (row n is day ``d_n``).
        out_dir: Source directory to write (created; the written tables are replaced, other files
            are left alone).
        prices_csv: Weekly sell prices (``store_id, item_id, wm_yr_wk, sell_price``), or None.
        last_day: Import days ``d_1 .. d_last`` only (e.g. 1913 for the M5 validation origin); no
            sale or price after it is read. None imports every day column of the sales file.
        chunk_rows: Sales rows read and converted at a time (bounds memory).

    Returns:
        Rows written per table, quarantined cells per reason, the date range and notes.

    Raises:
        ValueError: The files do not have the M5 shape (columns, ids, days beyond the calendar).
    """
    started = time.perf_counter()
    sales_csv, calendar_csv = Path(sales_csv), Path(calendar_csv)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    calendar = _read_calendar(calendar_csv)
    calendar_dates = pd.DatetimeIndex(calendar[C.DATE])
    day_cols, day_rows = _day_columns(sales_csv, len(calendar), last_day)
    day_dates = calendar_dates[day_rows]
    day_epoch = ((day_dates - _EPOCH) // pd.Timedelta(days=1)).to_numpy(dtype=np.int64)
    prices = _Prices(Path(prices_csv), calendar, int(day_rows.max())) if prices_csv is not None else None

    header = pd.read_csv(sales_csv, nrows=0).columns
    id_cols = [c for c in ("id", *_ID_PARTS) if c in header]
    reader = pd.read_csv(
        sales_csv,
        usecols=id_cols + day_cols,
        dtype={**{c: str for c in id_cols}, **{c: np.float32 for c in day_cols}},
        chunksize=max(1, chunk_rows),
    )
    series_parts: list[pd.DataFrame] = []
    quarantine_parts: list[pd.DataFrame] = []
    n_lines = 0
    first_epoch: int | None = None
    last_epoch: int | None = None
    with pq.ParquetWriter(out / f"{C.TRANSACTIONS}.parquet", SCHEMAS[C.TRANSACTIONS]) as writer:
        for chunk in reader:
            chunk = chunk.reset_index(drop=True)
            ids = parse_m5_ids(chunk)
            values = chunk[day_cols].to_numpy(dtype=np.float64)
            price_rows = prices.rows_for(ids["store_id"], ids["item_id"]) if prices is not None else None
            lines = _chunk_lines(ids, values, day_cols, day_epoch, price_rows, prices, day_rows)
            if lines.num_rows:
                writer.write_table(lines, row_group_size=_ROW_GROUP)
                n_lines += lines.num_rows
                epochs = lines.column(C.TRANSACTION_DATE).cast(pa.int32())
                lo, hi = pc.min(epochs).as_py(), pc.max(epochs).as_py()
                first_epoch = lo if first_epoch is None else min(first_epoch, lo)
                last_epoch = hi if last_epoch is None else max(last_epoch, hi)
            bad = _negative_cells(chunk, ids, values, day_cols, day_dates.to_numpy())
            if bad is not None:
                quarantine_parts.append(bad)
            with np.errstate(invalid="ignore"):
                sold = (values > 0) & (values == np.round(values))
            first_col = np.where(sold.any(axis=1), sold.argmax(axis=1), -1)
            series_parts.append(
                ids.assign(first_sale_row=np.where(first_col >= 0, day_rows[np.maximum(first_col, 0)], -1))
            )
    series = (
        pd.concat(series_parts, ignore_index=True)
        if series_parts
        else pd.DataFrame(columns=[*_ID_PARTS, "first_sale_row"])
    )

    notes: list[str] = []
    products, product_notes = _products(series, prices, calendar_dates)
    notes += product_notes
    stores = series.drop_duplicates("store_id").sort_values("store_id")
    warehouses = pd.DataFrame(
        {
            C.WAREHOUSE_ID: stores["store_id"].to_numpy(dtype=object),
            C.LOCATION_CITY: stores["store_id"].to_numpy(dtype=object),
            C.LOCATION_STATE: stores["state_id"].to_numpy(dtype=object),
            C.LATITUDE: [STATE_COORDINATES.get(s, (np.nan, np.nan))[0] for s in stores["state_id"]],
            C.LONGITUDE: [STATE_COORDINATES.get(s, (np.nan, np.nan))[1] for s in stores["state_id"]],
            C.CAPACITY_UNITS: np.nan,
            C.OPERATIONAL_SINCE: day_dates[0],
        }
    )
    state, state_notes = _payday_state(stores)
    notes += state_notes
    calendar_table, calendar_notes = _calendar_table(calendar, state)
    notes += calendar_notes

    rows = {
        C.TRANSACTIONS: n_lines,
        C.PRODUCTS: write_frame(products, out, C.PRODUCTS),
        C.WAREHOUSES: write_frame(warehouses, out, C.WAREHOUSES),
        C.CALENDAR: write_frame(calendar_table, out, C.CALENDAR),
    }
    quarantine = (
        pd.concat(quarantine_parts, ignore_index=True)
        if quarantine_parts
        else quarantine_frame(C.TRANSACTIONS, pd.DataFrame(), pd.Series([], dtype=object))
    )
    quarantined = write_quarantine(quarantine, out)
    others = existing_other_tables(out, _WRITTEN)
    if others:
        notes.append(f"{out} already holds {', '.join(others)} (left untouched; the platform will read them)")
    return ImportSummary(
        out_dir=out,
        rows=rows,
        quarantined=quarantined,
        first_date=None if first_epoch is None else dt.date(1970, 1, 1) + dt.timedelta(days=first_epoch),
        last_date=None if last_epoch is None else dt.date(1970, 1, 1) + dt.timedelta(days=last_epoch),
        seconds=time.perf_counter() - started,
        notes=tuple(notes),
    )
