"""What needs a planner's attention: the exceptions of one warehouse on report day D, ranked by money at risk.

One row per SKU x exception kind (:data:`EXCEPTION_COLUMNS`), ranked by :data:`MONEY_AT_RISK` (largest
first), each with the units at risk and a reason in words:

* :data:`KIND_STOCKOUT`: the projected on hand (:func:`demand_platform.charts.projected_on_hand_data`:
  the replay's stock at D plus orders in transit minus the P50 forecast) falls below zero within the lead
  time, i.e. before an order placed today can arrive. Units: the deepest shortfall within the lead time.
  (Over the whole 30-day horizon every SKU would run out, since the projection places no new order.)
* :data:`KIND_BIAS`: the recent matured forecasts (origins D - :data:`BIAS_ORIGINS` + 1 .. D, every
  horizon whose target is on or before D) are biased by at least :data:`BIAS_MIN` (relative, ``sum(f - a)
  / sum(a)``) over at least :data:`BIAS_MIN_OBS` scored SKU-days. Units: the mean daily error
  ``sum(f - a) / n`` times the :data:`HORIZON_DAYS` of the next forecast (bias x volume, per day).
* :data:`KIND_JUMP`: the 30-day point-forecast total of origin D moved by at least :data:`JUMP_MIN`
  (relative to D-1's total) and :data:`JUMP_MIN_UNITS` units since yesterday's origin. Units: the change.
  A series forecast on only one of the two origins is not compared.
* :data:`KIND_OVERRIDE_EXPIRING`: a planner override (source ``overrides``, which has end dates) that
  changes the forecast of origin D ends within :data:`OVERRIDE_EXPIRY_DAYS` days (its last day in D+1 ..
  D+7): the forecast reverts to the model's the day after. Units: the override's mean daily adjustment
  (``|forecast - forecast_unadjusted|`` over its days in the horizon) times the horizon days after its end.

Money at risk = units x the product's ``price``. ``products`` has a selling price and no cost column, so
the money is revenue at list price (an upper bound of the margin at stake); a SKU without a price has no
money figure and ranks after those with one (then by units).

Everything is vectorised over SKUs (group-bys, ``np.bincount``); nothing loops over series.
"""

import numpy as np
import pandas as pd

from demand_platform import charts, inventory
from demand_platform import columns as C
from demand_platform.accuracy import ScoredForecasts
from demand_platform.days import DateLike
from demand_platform.forecasting.overrides import (
    OVERRIDE_ABSOLUTE,
    OVERRIDE_APPLIED,
    OVERRIDE_AUTHOR,
    OVERRIDE_AUTHOR_OUT,
    OVERRIDE_MULTIPLIER,
    OVERRIDE_REASON,
    OVERRIDE_REASON_OUT,
    UNADJUSTED_SUFFIX,
)

# --- columns -----------------------------------------------------------------------------------------------------
RANK = "rank"
EXCEPTION = "exception"
UNITS_AT_RISK = "units_at_risk"
UNIT_PRICE = "unit_price"
MONEY_AT_RISK = "money_at_risk"
REASON = C.REASON
EXCEPTION_DTYPES: dict[str, str] = {
    C.ORIGIN_DATE: "datetime64[ns]",
    C.WAREHOUSE_ID: "object",
    RANK: "int64",
    C.SKU: "object",
    EXCEPTION: "object",
    UNITS_AT_RISK: "float64",
    UNIT_PRICE: "float64",
    MONEY_AT_RISK: "float64",
    REASON: "object",
}
EXCEPTION_COLUMNS = tuple(EXCEPTION_DTYPES)
#: What each column holds (the table's column schema in the UI).
EXCEPTION_DESCRIPTIONS: dict[str, str] = {
    C.ORIGIN_DATE: "Report day D (partition dimension).",
    C.WAREHOUSE_ID: "Warehouse (partition dimension).",
    RANK: "Rank within the report day and warehouse by money at risk (1 = the most).",
    C.SKU: "Stock-keeping unit.",
    EXCEPTION: (
        "Kind: stockout (projected on hand below zero within the lead time), bias (recent matured "
        "forecasts biased by 20% or more), forecast_jump (30-day forecast moved 30% or more since "
        "yesterday's origin), override_expiring (a planner override ends within 7 days)."
    ),
    UNITS_AT_RISK: "Units at stake: shortfall, 30 days of the daily bias, forecast change or override effect.",
    UNIT_PRICE: "The product's price (products.price); empty when unknown.",
    MONEY_AT_RISK: "units_at_risk x unit_price (revenue at list price; the source has no cost column).",
    REASON: "What happened, in words.",
}
_KIND_COLUMNS = [C.SKU, EXCEPTION, UNITS_AT_RISK, REASON]

# --- kinds and thresholds -------------------------------------------------------------------------------------------
KIND_STOCKOUT = "stockout"
KIND_BIAS = "bias"
KIND_JUMP = "forecast_jump"
KIND_OVERRIDE_EXPIRING = "override_expiring"
EXCEPTION_KINDS = (KIND_STOCKOUT, KIND_BIAS, KIND_JUMP, KIND_OVERRIDE_EXPIRING)
#: Days of the forecast horizon (the scale of the bias units).
HORIZON_DAYS = 30
#: Recent origins whose matured forecasts measure a SKU's bias.
BIAS_ORIGINS = 14
#: Smallest absolute relative bias flagged.
BIAS_MIN = 0.2
#: Fewest scored SKU-days for a bias to be flagged.
BIAS_MIN_OBS = 7
#: Smallest relative change of the 30-day forecast since yesterday's origin flagged.
JUMP_MIN = 0.3
#: Smallest change in units of the 30-day forecast flagged (a 1 -> 2 unit jump is noise).
JUMP_MIN_UNITS = 5.0
#: Overrides ending within this many days after D are flagged.
OVERRIDE_EXPIRY_DAYS = 7
#: Rows of the exceptions shown in the report's metadata.
TOP_EXCEPTIONS = 20


def empty_exceptions() -> pd.DataFrame:
    """A typed, empty exceptions frame (:data:`EXCEPTION_COLUMNS`)."""
    return pd.DataFrame({c: pd.Series(dtype=d) for c, d in EXCEPTION_DTYPES.items()})


def _empty_kind() -> pd.DataFrame:
    return pd.DataFrame(
        {c: pd.Series(dtype=object if c != UNITS_AT_RISK else "float64") for c in _KIND_COLUMNS}
    )


def _origin_rows(forecasts: pd.DataFrame, origin: pd.Timestamp) -> pd.DataFrame:
    return forecasts.loc[pd.to_datetime(forecasts[C.ORIGIN_DATE]).dt.normalize() == origin]


def _fmt_day(value: object) -> str:
    return pd.Timestamp(value).date().isoformat()  # type: ignore[arg-type]


# --- the kinds -----------------------------------------------------------------------------------------------------
def stockout_exceptions(projection: pd.DataFrame) -> pd.DataFrame:
    """SKUs whose projected on hand falls below zero within the lead time.

    Args:
        projection: Output of :func:`demand_platform.charts.projected_on_hand_data`.

    Returns:
        ``sku``, ``exception``, ``units_at_risk`` (the deepest shortfall within the lead time), ``reason``.
    """
    within = projection.loc[
        (projection[C.HORIZON] <= projection[inventory.LEAD_TIME])
        & projection[charts.PROJECTED_ON_HAND].notna()
    ]
    short = within.loc[within[charts.PROJECTED_ON_HAND] < 0]
    if short.empty:
        return _empty_kind()
    first = short.groupby(C.SKU, sort=True).agg(first_day=(C.DATE, "min"), first_h=(C.HORIZON, "min"))
    low = short.groupby(C.SKU, sort=True).agg(
        low=(charts.PROJECTED_ON_HAND, "min"),
        start=(charts.ON_HAND_START, "first"),
        lead=(inventory.LEAD_TIME, "first"),
    )
    arriving = within.groupby(C.SKU, sort=True)[charts.ARRIVING].sum().reindex(low.index)
    table = low.join(first)
    units = -table["low"].to_numpy()
    reason = [
        f"projected on hand {start:,.0f} + {arr:,.0f} in transit falls below zero on {_fmt_day(day)} "
        f"(day {h} of a {lead:.0f}-day lead time): {u:,.0f} units short before an order placed today arrives"
        for start, arr, day, h, lead, u in zip(
            table["start"], arriving, table["first_day"], table["first_h"], table["lead"], units, strict=True
        )
    ]
    return pd.DataFrame(
        {
            C.SKU: table.index.to_numpy(dtype=object),
            EXCEPTION: KIND_STOCKOUT,
            UNITS_AT_RISK: units,
            REASON: reason,
        }
    )


def bias_exceptions(scored: ScoredForecasts, as_of: DateLike, warehouse_id: str) -> pd.DataFrame:
    """SKUs whose recent matured forecasts are biased (see the module docstring).

    Args:
        scored: Scored forecasts of the report.
        as_of: Report day D.
        warehouse_id: The warehouse (other warehouses' scored rows are left out).

    Returns:
        ``sku``, ``exception``, ``units_at_risk``, ``reason``.
    """
    if scored.n_scored == 0:
        return _empty_kind()
    day = int(pd.Timestamp(as_of).normalize().to_datetime64().astype("datetime64[D]").view(np.int64))
    recent = scored.days(C.ORIGIN_DATE) > day - BIAS_ORIGINS
    series, size = scored.series()
    n_wh = scored.warehouse.size
    in_warehouse = np.asarray(scored.warehouse.values == warehouse_id, dtype=bool)  # per warehouse code
    forecast = scored.column(C.FORECAST).astype(np.float64)
    use = recent & ~np.isnan(forecast) & in_warehouse[series % n_wh]
    n = np.bincount(series[use], minlength=size)
    err = np.bincount(series[use], weights=forecast[use] - scored.actual[use], minlength=size)
    act = np.bincount(series[use], weights=scored.actual[use], minlength=size)
    rel = np.divide(err, act, out=np.where(err > 0, np.inf, np.where(err < 0, -np.inf, 0.0)), where=act > 0)
    flagged = np.flatnonzero((n >= BIAS_MIN_OBS) & (np.abs(rel) >= BIAS_MIN) & (err != 0))
    if len(flagged) == 0:
        return _empty_kind()
    per_day = err[flagged] / n[flagged]
    skus = scored.sku.values[flagged // n_wh]
    reason = [
        (f"forecast {r:+.0%} vs actual" if np.isfinite(r) else f"forecast {e:,.0f} units, none sold")
        + f" on the matured days of the last {BIAS_ORIGINS} origins ({k} SKU-days, {d:+.1f} units/day):"
        f" about {abs(d) * HORIZON_DAYS:,.0f} units {'too many' if d > 0 else 'too few'} over the next"
        f" {HORIZON_DAYS} days"
        for r, e, k, d in zip(rel[flagged], err[flagged], n[flagged], per_day, strict=True)
    ]
    return pd.DataFrame(
        {
            C.SKU: skus.astype(object),
            EXCEPTION: KIND_BIAS,
            UNITS_AT_RISK: np.abs(per_day) * HORIZON_DAYS,
            REASON: reason,
        }
    )


def jump_exceptions(forecasts: pd.DataFrame, origin: DateLike) -> pd.DataFrame:
    """SKUs whose 30-day point forecast moved since yesterday's origin (see the module docstring).

    Args:
        forecasts: Forecast rows of one warehouse holding origins D and D-1.
        origin: Origin D.

    Returns:
        ``sku``, ``exception``, ``units_at_risk`` (the absolute change), ``reason``.
    """
    day = pd.Timestamp(origin).normalize()
    totals = []
    for at in (day, day - pd.Timedelta(days=1)):
        rows = _origin_rows(forecasts, at)
        rows = rows.loc[rows[C.HORIZON] <= HORIZON_DAYS]
        totals.append(rows.groupby(rows[C.SKU].astype(object), sort=True)[C.FORECAST].sum())
    now, before = totals[0].align(totals[1], join="inner")
    delta = now - before
    rel = np.divide(
        delta.to_numpy(), before.to_numpy(), out=np.full(len(delta), np.inf), where=before.to_numpy() > 0
    )
    flagged = (np.abs(rel) >= JUMP_MIN) & (np.abs(delta.to_numpy()) >= JUMP_MIN_UNITS)
    if not flagged.any():
        return _empty_kind()
    reason = [
        f"{HORIZON_DAYS}-day forecast {b:,.0f} -> {a:,.0f} units since yesterday's origin"
        + (f" ({r:+.0%})" if np.isfinite(r) else "")
        for b, a, r in zip(before[flagged], now[flagged], rel[flagged], strict=True)
    ]
    return pd.DataFrame(
        {
            C.SKU: delta.index[flagged].to_numpy(dtype=object),
            EXCEPTION: KIND_JUMP,
            UNITS_AT_RISK: np.abs(delta.to_numpy()[flagged]),
            REASON: reason,
        }
    )


def override_expiry_exceptions(
    overridden: pd.DataFrame | None, overrides: pd.DataFrame | None, origin: DateLike, warehouse_id: str
) -> pd.DataFrame:
    """SKUs whose forecast of origin D is changed by an override ending within :data:`OVERRIDE_EXPIRY_DAYS`.

    An override's days are attributed to it when a forecast row of its SKU / warehouse (a null key matches
    every one) in its date range was overridden by its author with its reason.

    Args:
        overridden: Forecast rows of origin D with the override columns (``override_applied``,
            ``override_author``, ``override_reason``, ``forecast_unadjusted``); only applied rows count.
        overrides: The source ``overrides`` table (``start_date``, ``end_date``, ...).
        origin: Origin D.
        warehouse_id: The warehouse.

    Returns:
        ``sku``, ``exception``, ``units_at_risk``, ``reason`` (one row per SKU: its largest expiring override).
    """
    needed = {OVERRIDE_APPLIED, C.FORECAST + UNADJUSTED_SUFFIX, C.TARGET_DATE}
    if overridden is None or overrides is None or overridden.empty or overrides.empty:
        return _empty_kind()
    if not needed <= set(overridden.columns):
        return _empty_kind()
    day = pd.Timestamp(origin).normalize()
    table = overrides.reset_index(drop=True)
    end = pd.to_datetime(table[C.END_DATE]).dt.normalize()
    wh_ok = table[C.WAREHOUSE_ID].isna() | (table[C.WAREHOUSE_ID].astype(object) == warehouse_id)
    expiring = table.loc[wh_ok & (end > day) & (end <= day + pd.Timedelta(days=OVERRIDE_EXPIRY_DAYS))]
    rows = overridden.loc[overridden[OVERRIDE_APPLIED].fillna(False).astype(bool)]
    if expiring.empty or rows.empty:
        return _empty_kind()
    rows = pd.DataFrame(
        {
            C.SKU: rows[C.SKU].astype(object).to_numpy(),
            C.TARGET_DATE: pd.to_datetime(rows[C.TARGET_DATE]).dt.normalize().to_numpy(),
            OVERRIDE_AUTHOR: rows[OVERRIDE_AUTHOR_OUT].astype(object).to_numpy(),
            OVERRIDE_REASON: rows[OVERRIDE_REASON_OUT].astype(object).to_numpy(),
            "_adjust": (rows[C.FORECAST] - rows[C.FORECAST + UNADJUSTED_SUFFIX]).to_numpy(dtype=np.float64),
        }
    )
    ov = expiring.assign(
        _override=np.arange(len(expiring)),
        _start=pd.to_datetime(expiring[C.START_DATE]).dt.normalize(),
        _end=pd.to_datetime(expiring[C.END_DATE]).dt.normalize(),
        _sku=expiring[C.SKU].astype(object),
        _author=expiring[OVERRIDE_AUTHOR].astype(object),
        _reason=expiring[OVERRIDE_REASON].astype(object) if OVERRIDE_REASON in expiring else None,
    )[["_override", "_start", "_end", "_sku", "_author", "_reason", OVERRIDE_MULTIPLIER, OVERRIDE_ABSOLUTE]]
    pairs = rows.merge(ov, how="cross")
    same_reason = (pairs[OVERRIDE_REASON].fillna("") == pairs["_reason"].fillna("")).to_numpy()
    match = (
        (pairs["_sku"].isna() | (pairs["_sku"] == pairs[C.SKU]))
        & (pairs[C.TARGET_DATE] >= pairs["_start"])
        & (pairs[C.TARGET_DATE] <= pairs["_end"])
        & (pairs[OVERRIDE_AUTHOR] == pairs["_author"])
        & same_reason
    )
    pairs = pairs.loc[match]
    if pairs.empty:
        return _empty_kind()
    per = pairs.groupby([C.SKU, "_override"], sort=True).agg(
        adjust=("_adjust", "mean"),
        end=("_end", "first"),
        author=("_author", "first"),
        why=("_reason", "first"),
        multiplier=(OVERRIDE_MULTIPLIER, "first"),
        absolute=(OVERRIDE_ABSOLUTE, "first"),
    )
    days_after = (day + pd.Timedelta(days=HORIZON_DAYS) - per["end"]).dt.days.clip(lower=0)
    per["units"] = per["adjust"].abs() * days_after
    per = per.sort_values("units", ascending=False, kind="stable").reset_index()
    per = per.drop_duplicates(C.SKU).sort_values(C.SKU).reset_index(drop=True)
    how = [
        f"x{m:g}" if pd.notna(m) else f"= {a:g} units/day"
        for m, a in zip(per["multiplier"], per["absolute"], strict=True)
    ]
    reason = [
        f"override by {a} ({h}{', ' + str(w) if isinstance(w, str) and w else ''}) ends {_fmt_day(e)}, in "
        f"{(pd.Timestamp(e) - day).days} days; it moves the forecast {adj:+.1f} units/day: renew it or let it lapse"
        for a, h, w, e, adj in zip(per["author"], how, per["why"], per["end"], per["adjust"], strict=True)
    ]
    return pd.DataFrame(
        {
            C.SKU: per[C.SKU].to_numpy(dtype=object),
            EXCEPTION: KIND_OVERRIDE_EXPIRING,
            UNITS_AT_RISK: per["units"].to_numpy(),
            REASON: reason,
        }
    )


# --- the table ----------------------------------------------------------------------------------------------------
def unit_prices(products: pd.DataFrame) -> pd.Series:
    """Unit price by SKU (the first row of a SKU; empty without a ``price`` column).

    Args:
        products: Products (``sku``, ``price``).

    Returns:
        Float prices indexed by SKU (object), NaN where a price is missing.
    """
    if C.PRICE not in products.columns:
        return pd.Series(dtype=np.float64, index=pd.Index([], dtype=object))
    rows = products.drop_duplicates(C.SKU)
    return pd.Series(
        pd.to_numeric(rows[C.PRICE], errors="coerce").to_numpy(dtype=np.float64),
        index=pd.Index(rows[C.SKU].astype(object).to_numpy(), name=C.SKU),
    )


def rank_exceptions(
    kinds: list[pd.DataFrame], products: pd.DataFrame, as_of: DateLike, warehouse_id: str
) -> pd.DataFrame:
    """Price the exceptions and rank them by money at risk.

    Args:
        kinds: Frames of the kind functions (``sku``, ``exception``, ``units_at_risk``, ``reason``).
        products: Products (``sku``, ``price``; without a price column the money is unknown).
        as_of: Report day D.
        warehouse_id: The warehouse.

    Returns:
        :data:`EXCEPTION_COLUMNS`, sorted by rank (1 = the most money at risk; unknown money after known,
        then by units, kind and SKU).
    """
    parts = [k for k in kinds if len(k)]
    if not parts:
        return empty_exceptions()
    table = pd.concat(parts, ignore_index=True)
    price = unit_prices(products).reindex(table[C.SKU].astype(object)).to_numpy(dtype=np.float64)
    table[UNIT_PRICE] = price
    table[MONEY_AT_RISK] = table[UNITS_AT_RISK].to_numpy(dtype=np.float64) * price
    table["_unknown"] = table[MONEY_AT_RISK].isna()
    table = table.sort_values(
        ["_unknown", MONEY_AT_RISK, UNITS_AT_RISK, EXCEPTION, C.SKU],
        ascending=[True, False, False, True, True],
        kind="stable",
    ).reset_index(drop=True)
    table[RANK] = np.arange(1, len(table) + 1, dtype=np.int64)
    table[C.ORIGIN_DATE] = pd.Timestamp(as_of).normalize()
    table[C.WAREHOUSE_ID] = warehouse_id
    return table[list(EXCEPTION_COLUMNS)].astype(EXCEPTION_DTYPES)


def build_exceptions(
    scored: ScoredForecasts,
    forecasts: pd.DataFrame,
    products: pd.DataFrame,
    as_of: DateLike,
    warehouse_id: str,
    projection: pd.DataFrame | None = None,
    overridden: pd.DataFrame | None = None,
    overrides: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """The exceptions of one warehouse on report day D (see the module docstring).

    Args:
        scored: Scored forecasts of the report (bias).
        forecasts: The warehouse's forecasts holding origins D and D-1 (forecast jumps).
        products: Products (``sku``, ``price``).
        as_of: Report day D.
        warehouse_id: The warehouse.
        projection: :func:`demand_platform.charts.projected_on_hand_data` of D (stock-outs); None skips them.
        overridden: Forecast rows of D with the override columns (expiring overrides).
        overrides: The source ``overrides`` table (expiring overrides).

    Returns:
        :data:`EXCEPTION_COLUMNS`, ranked.
    """
    kinds = [
        stockout_exceptions(projection) if projection is not None else _empty_kind(),
        bias_exceptions(scored, as_of, warehouse_id),
        jump_exceptions(forecasts, as_of) if len(forecasts) else _empty_kind(),
        override_expiry_exceptions(overridden, overrides, as_of, warehouse_id),
    ]
    return rank_exceptions(kinds, products, as_of, warehouse_id)


def _cell(text: object) -> str:
    return str(text).replace("|", "/").replace("\n", " ")


def exceptions_markdown(exceptions: pd.DataFrame, top_n: int = TOP_EXCEPTIONS) -> str:
    """Markdown table of the ``top_n`` first exceptions (rank, SKU, kind, units, money, reason).

    Args:
        exceptions: Output of :func:`build_exceptions`.
        top_n: Rows shown.

    Returns:
        Markdown text; a sentence when there is no exception.
    """
    if exceptions.empty:
        return "No exception: no expected stock-out, strong bias, forecast jump or expiring override."
    lines = [
        "| rank | sku | exception | units | money at risk | reason |",
        "|---:|---|---|---:|---:|---|",
    ]
    for row in exceptions.head(top_n).to_dict("records"):
        money = row[MONEY_AT_RISK]
        lines.append(
            f"| {row[RANK]} | {_cell(row[C.SKU])} | {row[EXCEPTION]} | {row[UNITS_AT_RISK]:,.1f} "
            f"| {'n/a' if pd.isna(money) else f'{money:,.2f}'} | {_cell(row[REASON])} |"
        )
    if len(exceptions) > top_n:
        lines.append(f"\n{len(exceptions) - top_n:,} more in the `{C.EXCEPTIONS}` table.")
    return "\n".join(lines)
