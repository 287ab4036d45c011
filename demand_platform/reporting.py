"""The accuracy report of one warehouse on report day D: accuracy, drift, the inventory replay and plots.

:func:`build_accuracy_report` puts the domain pieces together for the earlier forecasts of one warehouse:

* **accuracy** (:mod:`demand_platform.accuracy`): every forecast whose target date is on or before D is
  scored against ``raw_sales`` (later targets are never scored, whatever the actuals hold); the accuracy
  tables (overall, tier, category, horizon band, model, tier by origin, lead-time and weekly totals) are
  flattened into one long frame, one row per group of each table (:data:`REPORT_COLUMNS`, validated by
  :class:`AccuracyReportModel`);
* **drift**: :func:`demand_platform.accuracy.performance_drift` on those tables, plus the population
  stability index of key numeric features (:data:`DRIFT_FEATURES`) of the feature rows at D against a
  reference origin (e.g. D - 28), when both are given;
* **inventory**: the forecast-driven order-up-to policies (P90, P95) replayed against the MA28 baseline on
  the realised demand of the origins (:func:`demand_platform.inventory.compare_policies`), and the
  replenishment parameters (safety stock, reorder point) of the latest origin
  (:func:`demand_platform.inventory.recommend_policy`);
* **exceptions** (:mod:`demand_platform.exceptions`): expected stock-outs within the lead time, strong
  recent bias, forecast jumps since yesterday's origin and overrides about to expire, one row per SKU x
  kind, ranked by money at risk;
* **charts** (:mod:`demand_platform.charts`, each a data frame and the PNG drawn from it) written under
  ``out_dir``: the forecast fan at D of the top SKUs (:data:`TOP_SKUS`: the SKUs of the first exceptions,
  then the largest 30-day forecast revenue), WMAPE and P90/P95 coverage by horizon day, the projected on
  hand against the reorder point of the SKUs most at risk, WMAPE by tier over the origins, and service
  level vs inventory of the replayed policies; and a markdown summary.

Everything is vectorised over SKUs (pandas group-bys, numpy matrices); Python loops run only over the
handful of accuracy tables and policy rows.
"""

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pandera.pandas as pa
from pandera.typing import Series

from demand_platform import accuracy, charts, exceptions, inventory, plots
from demand_platform import columns as C
from demand_platform import features as F
from demand_platform.days import NS_PER_DAY, DateLike
from demand_platform.forecasting.overrides import OVERRIDE_APPLIED, OVERRIDE_AUTHOR_OUT, OVERRIDE_REASON_OUT
from demand_platform.metrics import BIAS, MAE, N_OBS, RMSE, WMAPE
from demand_platform.schemas import Text

# --- columns of the long report frame ------------------------------------------------------------------------
TABLE = "table"
GROUP = "group"
REPORT_METRIC_COLUMNS = (WMAPE, MAE, RMSE, BIAS, accuracy.COVERAGE_P90, accuracy.COVERAGE_P95, N_OBS)
REPORT_DTYPES: dict[str, str] = {
    C.ORIGIN_DATE: "datetime64[ns]",
    C.WAREHOUSE_ID: "object",
    TABLE: "object",
    GROUP: "object",
    **{c: "float64" for c in REPORT_METRIC_COLUMNS if c != N_OBS},
    N_OBS: "int64",
}
REPORT_COLUMNS = tuple(REPORT_DTYPES)
#: Group label of the one row of the ``overall`` table (and the all-tier rows of ``lead_time``/``weekly``).
GROUP_ALL = "all"
#: Group label of a missing key (e.g. an SKU without a category).
GROUP_UNKNOWN = "unknown"
#: Separator of the labels of a table grouped by several keys (``tier_by_origin``: ``2024-01-05|1``).
GROUP_SEPARATOR = "|"

# --- drift ---------------------------------------------------------------------------------------------------
#: Numeric features whose distribution shift (PSI, now vs reference origin) is a drift reason.
DRIFT_FEATURES = (
    F.DEMAND_LAG_COLUMNS[1],
    F.DEMAND_ROLL_MEAN_COLUMNS[7],
    F.DEMAND_ROLL_MEAN_COLUMNS[28],
    F.DEMAND_ROLL_STD_COLUMNS[28],
    F.DEMAND_ZERO_SHARE_28,
    F.DAYS_SINCE_LAST_SALE,
    F.PRICE,
    F.PROMO_DISCOUNT,
    F.REALISED_UNIT_PRICE_28,
)
#: Fewest non-missing values on each side for a flagged PSI to become a drift reason: quantile bins of a
#: handful of SKUs are noise, and a drift reason triggers a retrain.
MIN_FEATURE_DRIFT_ROWS = 30

# --- inventory -----------------------------------------------------------------------------------------------
#: Forecast-driven policy reported against the MA28 baseline (P95: the baseline's 95% service target).
FORECAST_POLICY = f"forecast_{C.P95}"
#: Column of a recommendation holding the forecast origin it was computed from (the report frame's
#: ``origin_date`` is the report day).
FORECAST_ORIGIN_DATE = "forecast_origin_date"
#: Columns (and dtypes) of the replenishment recommendations of a report: the report day and warehouse,
#: then :data:`demand_platform.inventory.RECOMMENDATION_COLUMNS` with the forecast origin renamed.
REPLENISHMENT_DTYPES: dict[str, str] = {
    C.ORIGIN_DATE: "datetime64[ns]",
    C.WAREHOUSE_ID: "object",
    C.SKU: "object",
    FORECAST_ORIGIN_DATE: "datetime64[ns]",
    C.TIER: "int64",
    inventory.LEAD_TIME: "int64",
    inventory.EXPECTED_LEAD_TIME_DEMAND: "float64",
    inventory.SAFETY_STOCK: "float64",
    inventory.SAFETY_STOCK_METHOD: "object",
    inventory.SAFETY_STOCK_SIGMA: "float64",
    inventory.REORDER_POINT: "float64",
    inventory.ORDER_UP_TO: "float64",
}
REPLENISHMENT_COLUMNS = tuple(REPLENISHMENT_DTYPES)

# --- charts ----------------------------------------------------------------------------------------------------
PLOT_FAN_CHART = "fan_chart"
PLOT_ACCURACY_BY_HORIZON = "accuracy_by_horizon"
PLOT_COVERAGE_BY_HORIZON = "coverage_by_horizon"
PLOT_PROJECTED_ON_HAND = "projected_on_hand"
PLOT_WMAPE_BY_TIER = "wmape_by_tier"
PLOT_SERVICE_VS_INVENTORY = "service_vs_inventory"
#: Charts of a report, in the order the metadata shows them.
PLOT_NAMES = (
    PLOT_FAN_CHART,
    PLOT_PROJECTED_ON_HAND,
    PLOT_ACCURACY_BY_HORIZON,
    PLOT_COVERAGE_BY_HORIZON,
    PLOT_WMAPE_BY_TIER,
    PLOT_SERVICE_VS_INVENTORY,
)
#: Series of the fan and projected on-hand charts.
TOP_SKUS = 6


NOTE_NO_MATURED = "No matured forecast yet: no forecast target on or before the report day has an actual."
NOTE_NO_POLICY = "Inventory replay skipped: not enough matured origins (need more than lead time + 1 days)."
NOTE_NO_PROJECTION = (
    "No projected on hand (and no stock-out exception): the replay did not run or did not end on the report "
    "day, or the report day has no forecast."
)


class AccuracyReportModel(pa.DataFrameModel):
    """``accuracy_report``: one row per group of each accuracy table of a report day and warehouse.

    The report of day D scores the forecasts of a window of origins up to D whose target day is on or before
    D against the realised demand in ``raw_sales`` (returns clipped at zero). The daily tables score each forecast day
    by itself; ``lead_time`` and ``weekly`` score sums of days, the levels replenishment orders on.
    """

    origin_date: Series[pd.Timestamp] = pa.Field(
        nullable=False,
        description=(
            "Report day D (partition dimension): forecasts whose target day is on or before D are scored."
        ),
    )
    warehouse_id: Series[Text] = pa.Field(nullable=False, description="Warehouse (partition dimension).")
    table: Series[Text] = pa.Field(
        isin=list(accuracy.TABLE_NAMES),
        description=(
            f"Accuracy table the row belongs to: {accuracy.OVERALL} (everything), {accuracy.BY_TIER}, "
            f"{accuracy.BY_CATEGORY}, {accuracy.BY_HORIZON_BAND}, {accuracy.BY_MODEL} and "
            f"{accuracy.BY_TIER_AND_ORIGIN} score each forecast day by itself; {accuracy.LEAD_TIME} and "
            f"{accuracy.WEEKLY} (per tier and over all tiers) score demand summed over horizons "
            f"1-{accuracy.DEFAULT_LEAD_TIME} (the lead time) of each origin and over each complete "
            "Monday-Sunday week of target days."
        ),
    )
    group: Series[Text] = pa.Field(
        nullable=False,
        description=(
            f"Group within the table: '{GROUP_ALL}' for the {accuracy.OVERALL} row and the all-tier rows, else "
            f"the tier (1-3), category, horizon band ({', '.join(accuracy.HORIZON_BAND_LABELS)} days ahead), "
            f"model name, or origin day and tier joined by '{GROUP_SEPARATOR}' (e.g. 2024-01-05"
            f"{GROUP_SEPARATOR}1); '{GROUP_UNKNOWN}' when the key is missing."
        ),
    )
    wmape: Series[float] = pa.Field(
        nullable=True,
        ge=0,
        description=(
            "Weighted mean absolute percentage error of the point forecast, sum|forecast - actual| / sum(actual), "
            "as a fraction (0.25 = 25%); empty when the actuals sum to zero."
        ),
    )
    mae: Series[float] = pa.Field(
        nullable=True,
        ge=0,
        description=(
            "Mean absolute error of the point forecast, in units per forecast SKU-day (per lead-time window "
            "or week in those tables)."
        ),
    )
    rmse: Series[float] = pa.Field(
        nullable=True,
        ge=0,
        description=(
            "Root mean squared error of the point forecast, in units per forecast SKU-day (per lead-time "
            "window or week in those tables)."
        ),
    )
    bias: Series[float] = pa.Field(
        nullable=True,
        description=(
            "Relative bias sum(forecast - actual) / sum(actual), as a fraction: positive when forecasts are "
            "too high, negative when too low; empty when the actuals sum to zero."
        ),
    )
    coverage_p90: Series[float] = pa.Field(
        nullable=True,
        ge=0,
        le=1,
        description=(
            "Share of scored days whose actual demand was at or below the P90 forecast (0.90 when "
            "calibrated); daily tables only, empty in lead_time and weekly."
        ),
    )
    coverage_p95: Series[float] = pa.Field(
        nullable=True,
        ge=0,
        le=1,
        description=(
            "Share of scored days whose actual demand was at or below the P95 forecast (0.95 when "
            "calibrated); daily tables only, empty in lead_time and weekly."
        ),
    )
    n_obs: Series[int] = pa.Field(
        ge=0,
        description=(
            "Forecast-actual pairs scored: forecast rows (SKU x origin x horizon) in the daily tables, "
            "complete lead-time windows or weeks in those tables."
        ),
    )

    class Config:
        strict = True
        unique = [C.ORIGIN_DATE, C.WAREHOUSE_ID, TABLE, GROUP]


@dataclass
class AccuracyReport:
    """The accuracy report of one warehouse on one report day.

    Attributes:
        frame: Long accuracy table (:data:`REPORT_COLUMNS`): ``origin_date`` (the report day),
            ``warehouse_id``, ``table`` (a name of :data:`demand_platform.accuracy.TABLE_NAMES`), ``group``
            (the group label) and the metrics; empty (typed) when nothing was scored.
        drift_reasons: Human-readable drift reasons (performance and feature drift); empty when all good.
        feature_drift: PSI per checked feature (``demand_platform.accuracy.FEATURE_DRIFT_COLUMNS``), or None
            when the feature rows were not given.
        policy: ``demand_platform.inventory.compare_policies`` output (empty with its columns when there are
            not enough matured origins).
        recommendations: Replenishment parameters per SKU from the latest origin
            (:data:`REPLENISHMENT_COLUMNS`).
        plots: PNG paths by chart name (:data:`PLOT_NAMES`; empty when no ``out_dir`` was given).
        exceptions: The ranked exceptions (:data:`demand_platform.exceptions.EXCEPTION_COLUMNS`).
        projection: Projected on hand of every series of the report day
            (:func:`demand_platform.charts.projected_on_hand_data`), or None when it could not be made.
        chart_data: The frame behind each chart drawn, by chart name.
        summary_md: Markdown summary: accuracy table, policy table and notes.
        wmape: Overall daily WMAPE (NaN when nothing was scored).
        bias: Overall daily bias (NaN when nothing was scored).
        lead_time_wmape: Overall WMAPE of lead-time demand (the level of the WMAPE drift check).
        n_scored: Forecast rows scored.
        counts: Scoring counts (``demand_platform.accuracy.ScoredForecasts.summary``).
        notes: Notes on what could not be computed.
    """

    frame: pd.DataFrame
    drift_reasons: list[str]
    feature_drift: pd.DataFrame | None
    policy: pd.DataFrame
    recommendations: pd.DataFrame
    plots: dict[str, Path]
    summary_md: str
    wmape: float
    bias: float
    lead_time_wmape: float
    n_scored: int
    counts: dict[str, int | str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    exceptions: pd.DataFrame = field(default_factory=exceptions.empty_exceptions)
    projection: pd.DataFrame | None = None
    chart_data: dict[str, pd.DataFrame] = field(default_factory=dict)

    @property
    def drift(self) -> bool:
        """Whether any drift reason was found."""
        return bool(self.drift_reasons)

    def policy_metric(self, policy: str, metric: str) -> float:
        """One overall metric of one replayed policy (NaN when the replay was skipped).

        Args:
            policy: Policy name (e.g. :data:`FORECAST_POLICY` or ``inventory.POLICY_MA``).
            metric: Column of ``inventory.COMPARISON_COLUMNS`` (e.g. ``cycle_service_level``).

        Returns:
            The value of the policy's overall row.
        """
        rows = self.policy.loc[
            (self.policy[inventory.POLICY] == policy)
            & (self.policy[inventory.SCOPE] == inventory.SCOPE_OVERALL),
            metric,
        ]
        return float(rows.iloc[0]) if len(rows) else float("nan")


# --- helpers ---------------------------------------------------------------------------------------------------
def _label(value: object) -> str:
    """A group key as text: dates as ISO days, whole floats as integers, missing as ``unknown``."""
    if value is None or value is pd.NA or value is pd.NaT or (isinstance(value, float) and math.isnan(value)):
        return GROUP_UNKNOWN
    if isinstance(value, pd.Timestamp | np.datetime64):
        return pd.Timestamp(value).date().isoformat()
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value))
    return str(value)


def empty_report_frame() -> pd.DataFrame:
    """A typed, empty long report frame (:data:`REPORT_COLUMNS`)."""
    return pd.DataFrame({c: pd.Series(dtype=d) for c, d in REPORT_DTYPES.items()})


def _long_table(name: str, table: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """One accuracy table as rows of the long frame (without the origin and warehouse columns)."""
    if keys:
        labels = [GROUP_SEPARATOR.join(_label(v) for v in row) for row in table[keys].itertuples(index=False)]
    else:
        labels = [GROUP_ALL] * len(table)
    out = pd.DataFrame({TABLE: name, GROUP: labels}, index=table.index)
    for column in REPORT_METRIC_COLUMNS:
        out[column] = table[column].to_numpy() if column in table.columns else np.nan
    return out


def report_frame(
    tables: dict[str, pd.DataFrame],
    scored: accuracy.ScoredForecasts,
    as_of: DateLike,
    warehouse_id: str,
    lead_time: int,
) -> pd.DataFrame:
    """Flatten the accuracy tables into the long report frame.

    Args:
        tables: Output of :func:`demand_platform.accuracy.accuracy_tables`.
        scored: The scored forecasts the tables were computed from (for the all-tier rows of the
            lead-time and weekly tables).
        as_of: Report day (the frame's ``origin_date``).
        warehouse_id: Warehouse of the report.
        lead_time: Lead time of the lead-time table.

    Returns:
        :data:`REPORT_COLUMNS`, one row per group of each table; empty when nothing was scored.
    """
    if scored.n_scored == 0:
        return empty_report_frame()
    keys = {
        accuracy.OVERALL: [],
        accuracy.BY_TIER: [C.TIER],
        accuracy.BY_CATEGORY: [C.CATEGORY],
        accuracy.BY_HORIZON_BAND: [accuracy.HORIZON_BAND],
        accuracy.BY_MODEL: [C.MODEL],
        accuracy.BY_TIER_AND_ORIGIN: [C.ORIGIN_DATE, C.TIER],
        accuracy.LEAD_TIME: [C.TIER],
        accuracy.WEEKLY: [C.TIER],
    }
    totals = accuracy.totals_overall(scored, lead_time)  # the all-tier rows of lead_time and weekly
    parts = []
    for name in accuracy.TABLE_NAMES:
        parts.append(_long_table(name, tables[name], keys[name]))
        if name in totals and len(totals[name]):
            parts.append(_long_table(name, totals[name], []))
    frame = pd.concat(parts, ignore_index=True)
    frame.insert(0, C.WAREHOUSE_ID, warehouse_id)
    frame.insert(0, C.ORIGIN_DATE, pd.Timestamp(as_of).normalize())
    frame[N_OBS] = frame[N_OBS].fillna(0).astype(np.int64)
    return frame[list(REPORT_COLUMNS)].astype(REPORT_DTYPES)


def _feature_drift(
    features_now: pd.DataFrame | None, features_ref: pd.DataFrame | None, threshold: float
) -> tuple[pd.DataFrame | None, list[str]]:
    """PSI of :data:`DRIFT_FEATURES` now vs reference, and the drift reasons of the flagged ones."""
    if features_now is None or features_ref is None or features_now.empty or features_ref.empty:
        return None, []
    columns = [c for c in DRIFT_FEATURES if c in features_now.columns and c in features_ref.columns]
    if not columns:
        return None, []
    table = accuracy.feature_drift(features_ref, features_now, columns, threshold=threshold)
    enough = (table[accuracy.N_EXPECTED] >= MIN_FEATURE_DRIFT_ROWS) & (
        table[accuracy.N_ACTUAL] >= MIN_FEATURE_DRIFT_ROWS
    )
    flagged = table.loc[table[accuracy.FLAGGED] & enough]
    reasons = [
        f"feature {row[accuracy.FEATURE]} PSI {row[accuracy.PSI]:.3f} > {threshold:.3f}"
        for row in flagged.to_dict("records")
    ]
    return table, reasons


def _empty_policy() -> pd.DataFrame:
    out = pd.DataFrame({c: pd.Series(dtype=object) for c in inventory.COMPARISON_COLUMNS})
    out[C.TIER] = out[C.TIER].astype("Int64")
    return out


def _warehouse_forecasts(forecasts: pd.DataFrame, warehouse_id: str, as_of: pd.Timestamp) -> pd.DataFrame:
    """The forecasts of the warehouse with origins up to ``as_of`` (normalised to midnight).

    The frame is returned as is (no copy of millions of rows) when every row already qualifies, as the
    asset's frames do; otherwise the forecast columns of the qualifying rows are copied.
    """
    origin = forecasts[C.ORIGIN_DATE]
    if origin.dtype.kind == "M":  # tz-naive datetimes: test midnight and the cut on the integers
        stamps = origin.to_numpy().astype("datetime64[ns]").view(np.int64)
        normalised = bool((stamps % NS_PER_DAY == 0).all())
        day = stamps // NS_PER_DAY
    else:
        normalised = False
        day = pd.to_datetime(origin).dt.normalize().to_numpy().astype("datetime64[D]").view(np.int64)
    keep = (forecasts[C.WAREHOUSE_ID] == warehouse_id).to_numpy() & (day <= as_of.value // NS_PER_DAY)
    if normalised and keep.all():
        return forecasts
    fc = forecasts.loc[keep, list(C.FORECAST_COLUMNS)]
    fc = fc.assign(**{C.ORIGIN_DATE: pd.to_datetime(fc[C.ORIGIN_DATE]).dt.normalize()})
    return fc.reset_index(drop=True)


def _policy(
    forecasts: pd.DataFrame, actuals: pd.DataFrame, lead_time: int
) -> tuple[pd.DataFrame, inventory.PolicyEndState | None]:
    """The policy replay and the end state of :data:`FORECAST_POLICY`, or an empty comparison (and no
    state) when the origins leave no day to score."""
    if forecasts.empty or actuals.empty:
        return _empty_policy(), None
    origins = pd.to_datetime(forecasts[C.ORIGIN_DATE])
    last = min(origins.max(), pd.to_datetime(actuals[C.DATE]).max()).normalize()
    n_days = (last - origins.min().normalize()).days + 1
    if n_days <= lead_time + inventory.REVIEW_PERIOD:  # compare_policies' default warm-up
        return _empty_policy(), None
    replay = inventory.replay_policies(forecasts, actuals, lead_time, end_state_of=FORECAST_POLICY)
    return replay.comparison, replay.end_state


def _recommendations(
    forecasts: pd.DataFrame, actuals: pd.DataFrame, as_of: pd.Timestamp, warehouse_id: str, lead_time: int
) -> pd.DataFrame:
    """Replenishment parameters per SKU from the latest origin, with the report day as ``origin_date``."""
    if forecasts.empty:
        return pd.DataFrame({c: pd.Series(dtype=d) for c, d in REPLENISHMENT_DTYPES.items()})
    latest = forecasts.loc[forecasts[C.ORIGIN_DATE] == forecasts[C.ORIGIN_DATE].max()]
    recs = inventory.recommend_policy(latest, actuals, lead_time)
    recs = recs.rename(columns={C.ORIGIN_DATE: FORECAST_ORIGIN_DATE})
    recs[C.ORIGIN_DATE] = as_of
    recs[C.WAREHOUSE_ID] = warehouse_id
    return recs[list(REPLENISHMENT_COLUMNS)].astype(REPLENISHMENT_DTYPES).reset_index(drop=True)


def _pct(value: object) -> str:
    number = float(value)  # type: ignore[arg-type]
    return "n/a" if math.isnan(number) else f"{number:.1%}"


def _num(value: object) -> str:
    number = float(value)  # type: ignore[arg-type]
    return "n/a" if math.isnan(number) else f"{number:,.2f}"


def policy_markdown(policy: pd.DataFrame) -> str:
    """Markdown table of the policy replay: service level, fill rate, inventory and stock-outs.

    Args:
        policy: Output of :func:`demand_platform.inventory.compare_policies`.

    Returns:
        Markdown text (header, separator, one line per policy x scope); empty when ``policy`` is empty.
    """
    if policy.empty:
        return ""
    lines = [
        "| policy | scope | series | cycle service | fill rate | avg on hand | stock-out days |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for row in policy.to_dict("records"):
        lines.append(
            f"| {row[inventory.POLICY]} | {row[inventory.SCOPE]} | {int(row[inventory.N_SERIES]):,} "
            f"| {_pct(row[inventory.CYCLE_SERVICE_LEVEL])} | {_pct(row[inventory.FILL_RATE])} "
            f"| {_num(row[inventory.AVG_ON_HAND])} | {int(row[inventory.STOCKOUT_DAYS]):,} |"
        )
    return "\n".join(lines)


def _summary(
    tables: dict[str, pd.DataFrame],
    policy: pd.DataFrame,
    counts: dict[str, int | str],
    drift_reasons: list[str],
    notes: list[str],
) -> str:
    parts = [f"**Accuracy as of {counts['as_of']}** ({counts['n_scored']:,} forecasts scored)"]
    if int(counts["n_scored"]):
        parts.append(plots.markdown_summary(tables))
    table = policy_markdown(policy)
    if table:
        parts += [
            f"**Inventory replay** (order-up-to from the forecast: sum of daily {C.P90}/{C.P95}, or the lead-time "
            "demand quantile; against the MA28 baseline)",
            table,
        ]
    if drift_reasons:
        parts.append("**Drift**\n\n" + "\n".join(f"- {r}" for r in drift_reasons))
    if notes:
        parts.append("\n".join(f"- {n}" for n in notes))
    return "\n\n".join(parts)


def fan_chart_series(
    forecasts_at_day: pd.DataFrame, ranked: pd.DataFrame, products: pd.DataFrame, top_n: int = TOP_SKUS
) -> pd.DataFrame:
    """The SKUs of the report's fan chart: those of the first exceptions (by rank), then the largest 30-day
    point-forecast revenue (units x price; units when no SKU has a price).

    Args:
        forecasts_at_day: Forecast rows of the report day's origin (one warehouse).
        ranked: The report's exceptions, ranked.
        products: Products (``sku``, ``price``).
        top_n: Number of series.

    Returns:
        ``sku``, ``warehouse_id`` of at most ``top_n`` series forecast at the origin, in chart order.
    """
    if forecasts_at_day.empty:
        return pd.DataFrame({C.SKU: pd.Series(dtype=object), C.WAREHOUSE_ID: pd.Series(dtype=object)})
    warehouse = str(forecasts_at_day[C.WAREHOUSE_ID].iloc[0])
    units = forecasts_at_day.groupby(forecasts_at_day[C.SKU].astype(object), sort=True, observed=True)[
        C.FORECAST
    ].sum()
    price = exceptions.unit_prices(products).reindex(units.index).to_numpy(dtype=np.float64)
    revenue = units.to_numpy() * price if not np.isnan(price).all() else units.to_numpy()
    by_revenue = units.index[np.argsort(-np.nan_to_num(revenue, nan=-np.inf), kind="stable")]
    candidates = [*ranked[C.SKU].astype(object).tolist(), *by_revenue.tolist()]
    chosen = list(dict.fromkeys(sku for sku in candidates if sku in units.index))[:top_n]
    return pd.DataFrame({C.SKU: pd.Series(chosen, dtype=object), C.WAREHOUSE_ID: warehouse})


def _with_overrides(forecasts_at_day: pd.DataFrame, overridden: pd.DataFrame | None) -> pd.DataFrame:
    """The forecast rows with the override columns of the overridden rows (no override elsewhere)."""
    columns = [OVERRIDE_APPLIED, OVERRIDE_AUTHOR_OUT, OVERRIDE_REASON_OUT]
    out = forecasts_at_day.assign(**{C.SKU: forecasts_at_day[C.SKU].astype(object)})
    if overridden is None or overridden.empty or not set(columns) <= set(overridden.columns):
        return out
    marks = overridden.loc[
        overridden[OVERRIDE_APPLIED].fillna(False).astype(bool), [C.SKU, C.HORIZON, *columns]
    ]
    marks = marks.assign(**{C.SKU: marks[C.SKU].astype(object), C.HORIZON: marks[C.HORIZON].astype(np.int64)})
    out = out.assign(**{C.HORIZON: out[C.HORIZON].astype(np.int64)}).merge(
        marks, on=[C.SKU, C.HORIZON], how="left"
    )
    out[OVERRIDE_APPLIED] = out[OVERRIDE_APPLIED].fillna(False).astype(bool)
    return out


def _charts(
    out_dir: Path,
    scored: accuracy.ScoredForecasts,
    tables: dict[str, pd.DataFrame],
    policy: pd.DataFrame,
    fan: pd.DataFrame,
    projection: pd.DataFrame | None,
    at_risk: pd.DataFrame,
) -> tuple[dict[str, Path], dict[str, pd.DataFrame]]:
    """Each chart's frame and its PNG under ``out_dir``."""
    on_hand = (
        projection.merge(at_risk, on=charts.SERIES_KEYS, how="inner")
        if projection is not None and len(at_risk)
        else pd.DataFrame({c: pd.Series(dtype=d) for c, d in charts.PROJECTION_DTYPES.items()})
    )
    if len(on_hand):  # panels in the order of risk
        order = {key: i for i, key in enumerate(zip(at_risk[C.SKU], at_risk[C.WAREHOUSE_ID], strict=True))}
        position = [order[key] for key in zip(on_hand[C.SKU], on_hand[C.WAREHOUSE_ID], strict=True)]
        on_hand = on_hand.assign(_p=position).sort_values(["_p", C.HORIZON], kind="stable").drop(columns="_p")
    data = {
        PLOT_FAN_CHART: fan,
        PLOT_PROJECTED_ON_HAND: on_hand.reset_index(drop=True),
        PLOT_ACCURACY_BY_HORIZON: charts.accuracy_by_horizon_data(scored),
        PLOT_COVERAGE_BY_HORIZON: charts.coverage_by_horizon_data(scored),
        PLOT_WMAPE_BY_TIER: plots.wmape_by_tier_data(tables),
        PLOT_SERVICE_VS_INVENTORY: policy,
    }
    draw = {
        PLOT_FAN_CHART: charts.plot_fan_chart,
        PLOT_PROJECTED_ON_HAND: charts.plot_projected_on_hand,
        PLOT_ACCURACY_BY_HORIZON: charts.plot_accuracy_by_horizon,
        PLOT_COVERAGE_BY_HORIZON: charts.plot_coverage_by_horizon,
        PLOT_WMAPE_BY_TIER: plots.plot_wmape_by_tier,
        PLOT_SERVICE_VS_INVENTORY: plots.plot_service_vs_inventory,
    }
    paths = {name: draw[name](data[name], out_dir / f"{name}.png") for name in PLOT_NAMES}
    return paths, data


# --- the report --------------------------------------------------------------------------------------------------
def build_accuracy_report(
    forecasts: pd.DataFrame,
    actuals: pd.DataFrame,
    products: pd.DataFrame,
    as_of: DateLike,
    warehouse_id: str,
    lead_time: int = accuracy.DEFAULT_LEAD_TIME,
    out_dir: str | Path | None = None,
    features_now: pd.DataFrame | None = None,
    features_ref: pd.DataFrame | None = None,
    drift_wmape_max: float = 0.25,
    drift_bias_max: float = 0.10,
    psi_threshold: float = 0.2,
    campaigns: pd.DataFrame | None = None,
    warehouse_state: str | None = None,
    overridden: pd.DataFrame | None = None,
    overrides: pd.DataFrame | None = None,
) -> AccuracyReport:
    """The accuracy report of one warehouse on report day ``as_of`` (see the module docstring).

    Args:
        forecasts: Earlier forecasts of the warehouse (:data:`demand_platform.columns.FORECAST_COLUMNS`;
            extra columns such as ``model_version`` or the override columns are ignored). Rows of other
            warehouses and origins after ``as_of`` are ignored.
        actuals: ``raw_sales`` rows of the warehouse covering the scored target days (and, for the MA28
            baseline of the replay, ideally the 27 days before the first origin); rows after ``as_of`` are
            ignored.
        products: Products (``sku``, ``category``).
        as_of: Report day D: only targets on or before D are scored.
        warehouse_id: Warehouse of the report.
        lead_time: Replenishment lead time in days (lead-time accuracy, replay and recommendations).
        out_dir: Directory of the PNG plots; no plot is drawn when None.
        features_now: Feature rows at D (``feature_table``), for feature drift.
        features_ref: Feature rows at a reference origin (e.g. D - 28), for feature drift.
        drift_wmape_max: Highest acceptable lead-time WMAPE (overall and per tier).
        drift_bias_max: Highest acceptable absolute bias (overall and per tier).
        psi_threshold: PSI above which a feature has drifted.
        campaigns: ``marketing_campaigns`` rows, shaded on the fan chart where they apply.
        warehouse_state: The warehouse's ``location_state`` (campaigns with a target region).
        overridden: Forecast rows of origin ``as_of`` a planner override changed, with the override
            columns (``override_applied``, author, reason, ``forecast_unadjusted``): marked on the fan
            chart, and the source of the expiring-override exceptions.
        overrides: The source ``overrides`` table (end dates of the overrides).

    Returns:
        The report. Without any matured forecast the frame is empty, there is no drift and a note says so.
    """
    as_of_ts = pd.Timestamp(as_of).normalize()
    fc = _warehouse_forecasts(forecasts, warehouse_id, as_of_ts)
    act = actuals.loc[actuals[C.WAREHOUSE_ID] == warehouse_id]
    act = act.assign(**{C.DATE: pd.to_datetime(act[C.DATE]).dt.normalize()})
    act = act.loc[act[C.DATE] <= as_of_ts].reset_index(drop=True)

    scored = accuracy.score_forecasts(fc, act, products, as_of_ts)
    tables = accuracy.accuracy_tables(scored, lead_time)
    frame = report_frame(tables, scored, as_of_ts, warehouse_id, lead_time)
    notes: list[str] = []
    if scored.n_scored:
        drift_reasons = accuracy.performance_drift(tables, drift_wmape_max, drift_bias_max)
    else:
        drift_reasons = []
        notes.append(NOTE_NO_MATURED)
    drift_table, feature_reasons = _feature_drift(features_now, features_ref, psi_threshold)
    drift_reasons += feature_reasons

    policy, end_state = _policy(fc, act, lead_time)
    if policy.empty:
        notes.append(NOTE_NO_POLICY)
    recommendations = _recommendations(fc, act, as_of_ts, warehouse_id, lead_time)

    origin = fc[C.ORIGIN_DATE].to_numpy()
    at_day = fc.loc[origin == as_of_ts.to_datetime64()]
    last_two = fc.loc[origin >= (as_of_ts - pd.Timedelta(days=1)).to_datetime64()]
    projection = None
    if end_state is not None and end_state.last_day == as_of_ts and len(at_day):
        projection = charts.projected_on_hand_data(end_state, at_day, recommendations, as_of_ts)
    else:
        notes.append(NOTE_NO_PROJECTION)
    ranked = exceptions.build_exceptions(
        scored, last_two, products, as_of_ts, warehouse_id, projection, overridden, overrides
    )
    written: dict[str, Path] = {}
    chart_data: dict[str, pd.DataFrame] = {}
    if out_dir is not None:
        top = fan_chart_series(at_day, ranked, products)
        fan = charts.fan_chart_data(
            act,
            _with_overrides(at_day.loc[at_day[C.SKU].astype(object).isin(top[C.SKU])], overridden),
            as_of_ts,
            series=top,
            campaigns=campaigns,
            warehouse_state=warehouse_state,
        )
        at_risk = (
            charts.most_at_risk(projection, exceptions.unit_prices(products), TOP_SKUS)
            if projection is not None
            else pd.DataFrame(columns=charts.SERIES_KEYS)
        )
        written, chart_data = _charts(Path(out_dir), scored, tables, policy, fan, projection, at_risk)

    overall = tables[accuracy.OVERALL].iloc[0]
    counts = scored.summary()
    return AccuracyReport(
        frame=frame,
        drift_reasons=drift_reasons,
        feature_drift=drift_table,
        policy=policy,
        recommendations=recommendations,
        plots=written,
        summary_md=_summary(tables, policy, counts, drift_reasons, notes),
        wmape=float(overall[WMAPE]),
        bias=float(overall[BIAS]),
        lead_time_wmape=float(overall[accuracy.LEAD_TIME_WMAPE]),
        n_scored=scored.n_scored,
        counts=counts,
        notes=notes,
        exceptions=ranked,
        projection=projection,
        chart_data=chart_data,
    )
