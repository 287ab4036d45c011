"""Import UCI "Online Retail" or "Online Retail II" order lines as a platform source.

Input columns (as published): Online Retail II ``Invoice``, ``StockCode``, ``Description``,
``Quantity``, ``InvoiceDate``, ``Price``, ``Customer ID``, ``Country``; the classic Online Retail
(2010-12..2011-12) names three of them differently, ``InvoiceNo``, ``UnitPrice`` and ``CustomerID``
(:data:`CLASSIC_COLUMNS`), and is read the same way. Read from parquet, csv or xlsx (by suffix;
xlsx needs ``openpyxl``; every sheet is read, and an invoice already read from an earlier sheet is
dropped from later ones, since the published II workbook's two sheets overlap).

Mapping rules:

* **transactions**: one line per kept order line. ``transaction_id`` = ``"{Invoice}-{n}"`` with n
  the 1-based position of the line within its invoice in the input (counting every line, kept or
  not, so ids do not depend on the quarantine rules), ``order_id`` = Invoice, ``sku`` = StockCode
  trimmed and upper-cased (the file spells some codes both ways, ``85123A``/``85123a``),
  ``transaction_date`` = the day of InvoiceDate, ``quantity`` = Quantity, ``revenue`` = Quantity x
  Price, ``customer_id`` = Customer ID as an integer string (null when missing), ``warehouse_id`` =
  the country's warehouse. Cancellations (``C`` invoices, negative quantities) are kept as returns:
  the sign of Quantity is taken as given and the platform nets returns against the day's sales.
  Lines with ``|Quantity|`` above the platform's limit are kept too; the platform quarantines them.
* **warehouses**: Country -> warehouse by a mapping (:data:`DEFAULT_WAREHOUSE_MAP`: ``UK`` for
  the United Kingdom, the Channel Islands and the Isle of Man; ``EU`` for the EU member states of
  2009-2011 (:data:`EU_COUNTRIES`, incl. ``EIRE`` and ``European Community``); ``ROW`` for every
  other country, ``Unspecified`` and missing). A custom mapping replaces the default; its ``"*"``
  key, if any, is the warehouse of unlisted countries, otherwise their lines are quarantined
  (``unmapped country``). Country names match case-insensitively. One warehouse row is written per
  warehouse that received a line; location, capacity and ``operational_since`` are null.
* **products**: one per SKU with a kept line: ``category`` = first word (lower-case) of its most
  frequent Description (ties: alphabetical), else ``"retail"``; ``price`` = median price of its kept
  lines (all positive); ``launch_date`` = its first sale (positive quantity), else its first line;
  sub_category, brand and weight null, ``is_seasonal`` False.
* **quarantine** (``import_quarantine.parquet``; every reason that applies, joined with ``"; "``):

  - ``missing stock code``: empty StockCode;
  - ``non-product stock code``: postage, fees, manual adjustments, discounts, samples, vouchers,
    tests — :func:`is_product_code` is False: the code (upper-cased) is in
    :data:`NON_PRODUCT_CODES`, starts with one of :data:`NON_PRODUCT_PREFIXES`, or has no digit
    (every real product code has one: ``85123A``, ``DCGS0058``, ``SP1002``);
  - ``missing invoice``, ``unparseable invoice date``, ``missing quantity``, ``zero quantity``;
  - ``missing price`` / ``non-positive price``: Price null or <= 0 (free lines and stock
    adjustments such as "damages", "lost", bad-debt ``A`` invoices);
  - ``unmapped country`` (custom mappings without ``"*"``).
"""

import json
import re
import time
from pathlib import Path

import numpy as np
import pandas as pd

from demand_platform import columns as C
from demand_platform.importers import ImportSummary, existing_other_tables, write_frame, write_quarantine
from demand_platform.schemas import MAX_LINE_QUANTITY
from demand_platform.source import quarantine_frame

__all__ = [
    "CLASSIC_COLUMNS",
    "DEFAULT_WAREHOUSE_MAP",
    "EU_COUNTRIES",
    "NON_PRODUCT_CODES",
    "NON_PRODUCT_PREFIXES",
    "UK_COUNTRIES",
    "import_online_retail",
    "is_product_code",
    "load_warehouse_map",
]

INVOICE = "Invoice"
STOCK_CODE = "StockCode"
DESCRIPTION = "Description"
QUANTITY = "Quantity"
INVOICE_DATE = "InvoiceDate"
PRICE = "Price"
CUSTOMER = "Customer ID"
COUNTRY = "Country"
INPUT_COLUMNS = (INVOICE, STOCK_CODE, DESCRIPTION, QUANTITY, INVOICE_DATE, PRICE, CUSTOMER, COUNTRY)
CLASSIC_COLUMNS: dict[str, str] = {"InvoiceNo": INVOICE, "UnitPrice": PRICE, "CustomerID": CUSTOMER}
"""Classic UCI "Online Retail" column name -> its Online Retail II name (the other five are shared)."""

UK_COUNTRIES = ("United Kingdom", "Channel Islands", "Isle of Man")
EU_COUNTRIES = (
    "Austria",
    "Belgium",
    "Bulgaria",
    "Cyprus",
    "Czech Republic",
    "Denmark",
    "EIRE",
    "Ireland",
    "Estonia",
    "European Community",
    "Finland",
    "France",
    "Germany",
    "Greece",
    "Hungary",
    "Italy",
    "Latvia",
    "Lithuania",
    "Luxembourg",
    "Malta",
    "Netherlands",
    "Poland",
    "Portugal",
    "Romania",
    "Slovakia",
    "Slovenia",
    "Spain",
    "Sweden",
)
DEFAULT_KEY = "*"
DEFAULT_WAREHOUSE_MAP: dict[str, str] = {
    **dict.fromkeys(UK_COUNTRIES, "UK"),
    **dict.fromkeys(EU_COUNTRIES, "EU"),
    DEFAULT_KEY: "ROW",
}
"""Country -> warehouse: UK, EU (member states of 2009-2011) and ROW (``"*"``: everything else)."""

NON_PRODUCT_CODES = frozenset(
    {
        "ADJUST",
        "AMAZONFEE",
        "B",
        "BANK CHARGES",
        "C2",
        "C3",
        "CRUK",
        "D",
        "DOT",
        "GIFT",
        "M",
        "PADS",
        "POST",
        "S",
    }
)
"""Stock codes that are not products: postage (POST, DOT, C2/C3 carriage), fees, manual lines,
discounts, bad debt, samples, the CRUK charity commission and pads."""

NON_PRODUCT_PREFIXES = ("ADJUST", "TEST", "GIFT_")
"""Prefixes of non-product codes: adjustments (ADJUST2), test products, gift vouchers."""

_WAREHOUSE_ID = re.compile(r"^[A-Za-z0-9_\-]+$")
_WRITTEN = (C.TRANSACTIONS, C.PRODUCTS, C.WAREHOUSES)


def is_product_code(codes: pd.Series) -> pd.Series:
    """Whether each (non-empty) stock code is a product, by the rule in the module docstring."""
    upper = codes.astype(str).str.strip().str.upper()
    return (
        ~upper.isin(NON_PRODUCT_CODES)
        & ~upper.str.startswith(NON_PRODUCT_PREFIXES)
        & upper.str.contains(r"\d", regex=True)
    )


def _check_map(mapping: dict[str, str], origin: str) -> dict[str, str]:
    bad = sorted({str(w) for w in mapping.values() if not _WAREHOUSE_ID.match(str(w))})
    if bad:
        raise ValueError(
            f"{origin}: warehouse id(s) {', '.join(map(repr, bad))} are invalid "
            "(letters, digits, '_' and '-' only)"
        )
    return {str(k).strip(): str(v).strip() for k, v in mapping.items()}


def load_warehouse_map(path: str | Path) -> dict[str, str]:
    """Read a country -> warehouse_id mapping from a JSON or CSV file.

    JSON: an object ``{"United Kingdom": "UK", "*": "ROW"}`` or a list of
    ``{"country": ..., "warehouse_id": ...}`` objects. CSV: a header row and two columns, country
    then warehouse id (extra columns ignored). ``"*"`` as country is the default warehouse.

    Args:
        path: The mapping file (``.json`` or ``.csv``).

    Returns:
        The mapping.

    Raises:
        ValueError: Unknown suffix, malformed content or an invalid warehouse id.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".json":
        data = json.loads(path.read_text())
        if isinstance(data, dict):
            mapping = {str(k): str(v) for k, v in data.items()}
        elif isinstance(data, list) and all(
            isinstance(r, dict) and "country" in r and C.WAREHOUSE_ID in r for r in data
        ):
            mapping = {str(r["country"]): str(r[C.WAREHOUSE_ID]) for r in data}
        else:
            raise ValueError(
                f"{path}: expected an object country -> warehouse_id or a list of "
                '{"country": ..., "warehouse_id": ...}'
            )
    elif suffix == ".csv":
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
        if frame.shape[1] < 2:
            raise ValueError(f"{path}: expected two columns, country and warehouse_id")
        mapping = dict(zip(frame.iloc[:, 0], frame.iloc[:, 1], strict=True))
    else:
        raise ValueError(f"{path}: warehouse map must be .json or .csv")
    if not mapping:
        raise ValueError(f"{path}: empty warehouse map")
    return _check_map(mapping, str(path))


def _ii_names(frame: pd.DataFrame, file: Path) -> pd.DataFrame:
    """``frame`` with classic Online Retail column names renamed to the II names."""
    renames = {old: new for old, new in CLASSIC_COLUMNS.items() if old in frame.columns}
    both = [f"{old}/{new}" for old, new in renames.items() if new in frame.columns]
    if both:
        raise ValueError(f"{file}: has both the classic and the II name of column(s) {', '.join(both)}")
    return frame.rename(columns=renames)


def _read_input(file: Path) -> tuple[pd.DataFrame, dict[str, str]]:
    """The order lines with the II column names, and II name -> name in the file for those renamed."""
    suffix = file.suffix.lower()
    names_read: set[str] = set()
    if suffix == ".parquet":
        read = pd.read_parquet(file)
        names_read.update(map(str, read.columns))
        frame = _ii_names(read, file)
    elif suffix == ".csv":
        read = pd.read_csv(file, dtype=str)
        names_read.update(map(str, read.columns))
        frame = _ii_names(read, file)
    elif suffix in (".xlsx", ".xls"):
        sheets = pd.read_excel(file, sheet_name=None, dtype=str)
        parts: list[pd.DataFrame] = []
        seen: set[str] = set()
        for raw_sheet in sheets.values():
            names_read.update(map(str, raw_sheet.columns))
            sheet = _ii_names(raw_sheet, file)
            if INVOICE not in sheet.columns:
                parts.append(sheet)
                continue
            invoices = sheet[INVOICE].astype(str)
            parts.append(sheet.loc[~invoices.isin(seen)])
            seen.update(invoices.unique())
        frame = pd.concat(parts, ignore_index=True)
    else:
        raise ValueError(f"{file}: expected a .parquet, .csv or .xlsx file")
    missing = [c for c in INPUT_COLUMNS if c not in frame.columns]
    if missing:
        classic = {new: old for old, new in CLASSIC_COLUMNS.items()}
        named = [f"{c} (or {classic[c]})" if c in classic else c for c in missing]
        raise ValueError(
            f"{file}: missing column(s) {', '.join(named)} (has: {', '.join(map(str, frame.columns))}); "
            "expected the Online Retail II or the classic Online Retail columns"
        )
    renamed = {new: old for old, new in CLASSIC_COLUMNS.items() if old in names_read}
    return frame.reset_index(drop=True), renamed


def _text(values: pd.Series) -> pd.Series:
    """Trimmed strings, None for missing or blank."""
    cleaned = [None if pd.isna(v) or not str(v).strip() else str(v).strip() for v in values]
    return pd.Series(cleaned, index=values.index, dtype=object)


def _timestamps(values: pd.Series) -> pd.Series:
    """Parsed invoice dates (NaT when unparseable); values not in the dominant format are retried."""
    parsed = pd.to_datetime(values, errors="coerce")
    retry = parsed.isna() & values.notna()
    if retry.any():
        parsed[retry] = pd.to_datetime(values[retry].astype(str), errors="coerce", format="mixed")
    return parsed


def _customer_ids(values: pd.Series) -> pd.Series:
    """Customer ids as strings; numeric ids without the ``.0`` a float column gives them."""
    numeric = pd.to_numeric(values, errors="coerce")
    integral = numeric.notna() & (numeric == np.floor(numeric))
    out = _text(values)
    out[integral] = numeric[integral].astype("int64").astype(str)
    return out


def _warehouses_of(countries: pd.Series, mapping: dict[str, str]) -> pd.Series:
    folded = {str(k).casefold(): v for k, v in mapping.items() if k != DEFAULT_KEY}
    default = mapping.get(DEFAULT_KEY)
    mapped = [default if c is None else folded.get(str(c).casefold(), default) for c in countries]
    return pd.Series(mapped, index=countries.index, dtype=object)


def _first_word(description: pd.Series) -> pd.Series:
    words = description.str.split().str[0].str.lower().str.strip("\"'*,.-()?!")
    return words.where(words.fillna("") != "", "retail")


def _products(lines: pd.DataFrame) -> pd.DataFrame:
    grouped = lines.groupby(C.SKU, sort=True)
    first_sale = lines.loc[lines[C.QUANTITY] > 0].groupby(C.SKU)[C.TRANSACTION_DATE].min()
    launch = first_sale.reindex(grouped.size().index).fillna(grouped[C.TRANSACTION_DATE].min())
    described = lines.loc[lines[DESCRIPTION].notna(), [C.SKU, DESCRIPTION]]
    counts = described.groupby([C.SKU, DESCRIPTION]).size().reset_index(name="n")
    counts = counts.sort_values([C.SKU, "n", DESCRIPTION], ascending=[True, False, True])
    top = counts.drop_duplicates(C.SKU).set_index(C.SKU)[DESCRIPTION]
    category = _first_word(top).reindex(grouped.size().index).fillna("retail")
    index = grouped.size().index
    return pd.DataFrame(
        {
            C.SKU: index.to_numpy(dtype=object),
            C.CATEGORY: category.to_numpy(dtype=object),
            C.SUB_CATEGORY: None,
            C.BRAND: None,
            C.PRICE: grouped[PRICE].median().to_numpy(dtype=float),
            C.WEIGHT_KG: np.nan,
            C.IS_SEASONAL: False,
            C.LAUNCH_DATE: launch.to_numpy(),
        }
    )


def import_online_retail(
    file: str | Path,
    out_dir: str | Path,
    warehouse_map: dict[str, str] | None = None,
) -> ImportSummary:
    """Write a platform source from Online Retail or Online Retail II order lines.

    See the module docstring for the mapping and quarantine rules.

    Args:
        file: The order lines (``.parquet``, ``.csv`` or ``.xlsx``), with the II or the classic
            column names.
        out_dir: Source directory to write (created; the written tables are replaced, other files
            are left alone).
        warehouse_map: Country -> warehouse_id (``"*"`` = default); None uses
            :data:`DEFAULT_WAREHOUSE_MAP`. See :func:`load_warehouse_map`.

    Returns:
        Rows written per table, quarantined lines per reason, the date range and notes.

    Raises:
        ValueError: Unknown file type, missing columns or an invalid warehouse id in the mapping.
    """
    started = time.perf_counter()
    mapping = _check_map(
        warehouse_map if warehouse_map is not None else DEFAULT_WAREHOUSE_MAP, "warehouse_map"
    )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    raw, renamed = _read_input(Path(file))

    invoice = _text(raw[INVOICE])
    line_no = raw.groupby(invoice.fillna(""), sort=False).cumcount() + 1
    code = _text(raw[STOCK_CODE])
    timestamp = _timestamps(raw[INVOICE_DATE])
    quantity = pd.to_numeric(raw[QUANTITY], errors="coerce")
    price = pd.to_numeric(raw[PRICE], errors="coerce")
    country = _text(raw[COUNTRY])
    warehouse = _warehouses_of(country, mapping)

    checks = [
        ("missing stock code", code.isna()),
        ("non-product stock code", code.notna() & ~is_product_code(code.fillna(""))),
        ("missing invoice", invoice.isna()),
        ("unparseable invoice date", timestamp.isna()),
        ("missing quantity", quantity.isna()),
        ("zero quantity", quantity == 0),
        ("missing price", price.isna()),
        ("non-positive price", price <= 0),
        ("unmapped country", warehouse.isna()),
    ]
    flags = np.column_stack([mask.to_numpy(dtype=bool) for _, mask in checks])
    labels = np.array([label for label, _ in checks], dtype=object)
    bad = pd.Series(flags.any(axis=1), index=raw.index)
    reasons = pd.Series(["; ".join(labels[row]) for row in flags[bad.to_numpy()]], dtype=object)
    quarantine = quarantine_frame(
        C.TRANSACTIONS,
        raw.loc[bad].rename(columns=renamed),  # the original row under the file's own column names
        reasons,
        warehouse_id=warehouse[bad].reset_index(drop=True),
        partition_date=timestamp[bad].dt.normalize().reset_index(drop=True),
    )

    keep = ~bad
    lines = pd.DataFrame(
        {
            C.TRANSACTION_ID: (invoice[keep] + "-" + line_no[keep].astype(str)).to_numpy(dtype=object),
            C.SKU: code[keep].str.upper().to_numpy(dtype=object),
            C.WAREHOUSE_ID: warehouse[keep].to_numpy(dtype=object),
            C.TRANSACTION_DATE: timestamp[keep].dt.normalize().to_numpy(),
            C.QUANTITY: quantity[keep].round().astype("int64").to_numpy(),
            C.REVENUE: (quantity[keep] * price[keep]).to_numpy(dtype=float),
            C.CUSTOMER_ID: _customer_ids(raw.loc[keep, CUSTOMER]).to_numpy(dtype=object),
            C.ORDER_ID: invoice[keep].to_numpy(dtype=object),
            PRICE: price[keep].to_numpy(dtype=float),
            DESCRIPTION: _text(raw.loc[keep, DESCRIPTION]).to_numpy(dtype=object),
        }
    )
    lines = lines.sort_values([C.WAREHOUSE_ID, C.TRANSACTION_DATE], kind="stable").reset_index(drop=True)

    notes: list[str] = []
    fractional = quantity[keep] != quantity[keep].round()
    if fractional.any():
        notes.append(f"{int(fractional.sum())} fractional quantities rounded to whole units")
    absurd = int((lines[C.QUANTITY].abs() > MAX_LINE_QUANTITY).sum())
    if absurd:
        notes.append(
            f"{absurd} line(s) with |quantity| > {MAX_LINE_QUANTITY:,} kept; the platform quarantines "
            "them at ingestion (absurd quantity)"
        )
    products = _products(lines)
    used = sorted(lines[C.WAREHOUSE_ID].unique())
    warehouses = pd.DataFrame(
        {
            C.WAREHOUSE_ID: pd.Series(used, dtype=object),
            C.LOCATION_CITY: None,
            C.LOCATION_STATE: None,
            C.LATITUDE: np.nan,
            C.LONGITUDE: np.nan,
            C.CAPACITY_UNITS: np.nan,
            C.OPERATIONAL_SINCE: pd.NaT,
        }
    )
    rows = {
        C.TRANSACTIONS: write_frame(lines, out, C.TRANSACTIONS),
        C.PRODUCTS: write_frame(products, out, C.PRODUCTS),
        C.WAREHOUSES: write_frame(warehouses, out, C.WAREHOUSES),
    }
    quarantined = write_quarantine(quarantine, out)
    others = existing_other_tables(out, _WRITTEN)
    if others:
        notes.append(f"{out} already holds {', '.join(others)} (left untouched; the platform will read them)")
    dates = lines[C.TRANSACTION_DATE]
    return ImportSummary(
        out_dir=out,
        rows=rows,
        quarantined=quarantined,
        first_date=dates.min().date() if len(lines) else None,
        last_date=dates.max().date() if len(lines) else None,
        seconds=time.perf_counter() - started,
        notes=tuple(notes),
    )
