"""Planner overrides: multipliers or absolute values applied to the forecasts of the target dates they cover."""

import numpy as np
import pandas as pd

from demand_platform import columns as C

OVERRIDE_SKU = C.SKU
OVERRIDE_WAREHOUSE_ID = C.WAREHOUSE_ID
OVERRIDE_START_DATE = C.START_DATE
OVERRIDE_END_DATE = C.END_DATE
OVERRIDE_MULTIPLIER = "multiplier"
OVERRIDE_ABSOLUTE = "absolute_value"
OVERRIDE_AUTHOR = "author"
OVERRIDE_REASON = C.REASON
OVERRIDE_COLUMNS = (
    OVERRIDE_SKU,
    OVERRIDE_WAREHOUSE_ID,
    OVERRIDE_START_DATE,
    OVERRIDE_END_DATE,
    OVERRIDE_MULTIPLIER,
    OVERRIDE_ABSOLUTE,
    OVERRIDE_AUTHOR,
    OVERRIDE_REASON,
)
UNADJUSTED_SUFFIX = "_unadjusted"
OVERRIDE_APPLIED = "override_applied"
OVERRIDE_AUTHOR_OUT = "override_author"
OVERRIDE_REASON_OUT = "override_reason"


def apply_overrides(forecasts: pd.DataFrame, overrides: pd.DataFrame | None) -> pd.DataFrame:
    """Applies planner overrides to the forecasts of the target dates they cover.

    An override row (``OVERRIDE_COLUMNS``) matches a forecast row when its SKU and warehouse equal the row's
    (a null SKU or warehouse matches every SKU / warehouse) and ``start_date <= target_date <= end_date``.
    Exactly one of ``multiplier`` and ``absolute_value`` is set: a multiplier scales the point forecast and
    every quantile; an absolute value replaces the point forecast and scales the quantiles by the same
    ratio (all set to the value when the forecast was 0). When several overrides match a row, the most
    specific wins (SKU and warehouse set > one of them > none), then the latest start date, then the last
    row of the table.

    Args:
        forecasts: Output of :func:`forecast_warehouse` (quantile columns ``p*`` are adjusted too).
        overrides: The overrides table, or None / empty.

    Returns:
        The forecasts with the adjusted values, the unadjusted ones in ``<column>_unadjusted``, and
        ``override_applied``, ``override_author`` and ``override_reason`` (null where none applied).

    Raises:
        ValueError: If an override sets both or neither of multiplier and absolute value, or a negative one,
            or the forecasts already carry ``*_unadjusted`` columns (overrides applied twice).
    """
    value_columns = [C.FORECAST, *[c for c in forecasts.columns if c.startswith("p") and c[1:].isdigit()]]
    if any(column + UNADJUSTED_SUFFIX in forecasts.columns for column in value_columns):
        raise ValueError("overrides were already applied to these forecasts; apply them to the model output")
    out = forecasts.copy()
    for column in value_columns:
        out[column + UNADJUSTED_SUFFIX] = forecasts[column].to_numpy(copy=True)
    n = len(out)
    author = np.full(n, None, dtype=object)
    reason = np.full(n, None, dtype=object)
    applied = np.zeros(n, dtype=bool)
    if overrides is not None and not overrides.empty and n:
        table = overrides.reset_index(drop=True)
        multiplier = pd.to_numeric(table[OVERRIDE_MULTIPLIER], errors="coerce").to_numpy(np.float64)
        absolute = pd.to_numeric(table[OVERRIDE_ABSOLUTE], errors="coerce").to_numpy(np.float64)
        if (np.isnan(multiplier) == np.isnan(absolute)).any():
            raise ValueError("every override needs exactly one of multiplier and absolute_value")
        if (multiplier < 0).any() or (absolute < 0).any():
            raise ValueError("override multipliers and absolute values must be non-negative")
        start = pd.to_datetime(table[OVERRIDE_START_DATE]).to_numpy("datetime64[ns]")
        end = pd.to_datetime(table[OVERRIDE_END_DATE]).to_numpy("datetime64[ns]")
        target = pd.to_datetime(out[C.TARGET_DATE]).to_numpy("datetime64[ns]")
        sku_null = table[OVERRIDE_SKU].isna().to_numpy()
        warehouse_null = table[OVERRIDE_WAREHOUSE_ID].isna().to_numpy()
        specificity = (~sku_null).astype(np.int64) + (~warehouse_null).astype(np.int64)
        rank_order = np.lexsort((np.arange(len(table)), start.astype(np.int64), specificity))
        rank = np.empty(len(table), dtype=np.int64)
        rank[rank_order] = np.arange(len(table))

        left = pd.DataFrame(
            {
                "_row": np.arange(n),
                C.SKU: out[C.SKU].to_numpy(),
                C.WAREHOUSE_ID: out[C.WAREHOUSE_ID].to_numpy(),
            }
        )
        candidates = []
        for use_sku in (True, False):
            for use_warehouse in (True, False):
                subset = np.flatnonzero((sku_null != use_sku) & (warehouse_null != use_warehouse))
                if len(subset) == 0:
                    continue
                right = pd.DataFrame({"_override": subset})
                keys = []
                if use_sku:
                    right[C.SKU] = table[OVERRIDE_SKU].to_numpy(dtype=object)[subset]
                    keys.append(C.SKU)
                if use_warehouse:
                    right[C.WAREHOUSE_ID] = table[OVERRIDE_WAREHOUSE_ID].to_numpy(dtype=object)[subset]
                    keys.append(C.WAREHOUSE_ID)
                matched = left.merge(right, on=keys, how="inner") if keys else left.merge(right, how="cross")
                candidates.append(matched[["_row", "_override"]])
        if candidates:
            pairs = pd.concat(candidates, ignore_index=True)
            row = pairs["_row"].to_numpy(np.int64)
            override = pairs["_override"].to_numpy(np.int64)
            inside = (target[row] >= start[override]) & (target[row] <= end[override])
            row, override = row[inside], override[inside]
            order = np.lexsort((-rank[override], row))
            row, override = row[order], override[order]
            first = np.ones(len(row), dtype=bool)
            first[1:] = row[1:] != row[:-1]
            row, override = row[first], override[first]  # the highest-ranked override of each row
            point = out[C.FORECAST].to_numpy(np.float64, copy=True)
            is_multiplier = ~np.isnan(multiplier[override])
            new_point = np.where(is_multiplier, point[row] * multiplier[override], absolute[override])
            ratio = np.where(
                is_multiplier,
                multiplier[override],
                np.divide(
                    absolute[override], point[row], out=np.full(len(row), np.nan), where=point[row] > 0
                ),
            )
            for column in value_columns:
                values = out[column].to_numpy(np.float64, copy=True)
                if column == C.FORECAST:
                    values[row] = new_point
                else:
                    values[row] = np.where(np.isnan(ratio), new_point, values[row] * np.nan_to_num(ratio))
                out[column] = values
            applied[row] = True
            author[row] = table[OVERRIDE_AUTHOR].to_numpy(dtype=object)[override]
            reason[row] = table[OVERRIDE_REASON].to_numpy(dtype=object)[override]
    out[OVERRIDE_APPLIED] = applied
    out[OVERRIDE_AUTHOR_OUT] = author
    out[OVERRIDE_REASON_OUT] = reason
    return out


def model_output(forecasts: pd.DataFrame) -> pd.DataFrame:
    """The forecasts as the model made them: the inverse of :func:`apply_overrides`.

    Args:
        forecasts: Forecasts with overrides applied (``<column>_unadjusted`` and the override columns).

    Returns:
        A copy whose value columns hold the unadjusted values, without the unadjusted and override columns
        (what :func:`apply_overrides` takes).

    Raises:
        ValueError: If the forecasts carry no ``*_unadjusted`` column (overrides were never applied).
    """
    unadjusted = [c for c in forecasts.columns if c.endswith(UNADJUSTED_SUFFIX)]
    if not unadjusted:
        raise ValueError("these forecasts carry no *_unadjusted columns: they are already the model output")
    out = forecasts.drop(columns=[*unadjusted, OVERRIDE_APPLIED, OVERRIDE_AUTHOR_OUT, OVERRIDE_REASON_OUT])
    for column in unadjusted:
        out[column.removesuffix(UNADJUSTED_SUFFIX)] = forecasts[column].to_numpy(copy=True)
    return out
