"""The report's charts, each a DATA function (the long frame behind the chart) and a PLOT function.

A plot function draws exactly the frame its data function returns, so a test checks the numbers on the
frame (computed by hand from small inputs) and that the drawn artists hold them. Figures are drawn as in
:mod:`demand_platform.plots` (``Figure`` on ``FigureCanvasAgg``, one PNG written, its path returned).

* **Fan chart** (:func:`fan_chart_data`, :func:`plot_fan_chart`): per SKU x warehouse at origin D, the
  last :data:`FAN_HISTORY_DAYS` days of demand (``raw_sales`` quantity, returns clipped at 0 as accuracy
  scores it) and the D+1..D+30 point forecast, P50 and the P50-P90 / P90-P95 bands; the days a planner
  override changed are marked and the days of the marketing campaigns that apply are shaded.
* **Accuracy by horizon** (:func:`accuracy_by_horizon_data`, :func:`plot_accuracy_by_horizon`): WMAPE per
  horizon day 1..30, per tier and over all tiers, over the scored (matured) forecasts.
* **Coverage by horizon** (:func:`coverage_by_horizon_data`, :func:`plot_coverage_by_horizon`): share of
  actuals at or below P90 / P95 per horizon day, against the nominal 0.90 / 0.95.
* **Projected on hand** (:func:`projected_on_hand_data`, :func:`plot_projected_on_hand`): the stock of
  the report's order-up-to replay at the end of D, plus the orders in transit as they arrive, minus the
  cumulated P50 forecast of D+1..D+30, against the SKU's reorder point. The source has no stock table:
  the replay's state is the best-founded stock the platform has (the P95 order-up-to policy the report
  replays on the realised demand). The projection places no new order and is not clipped at zero: a
  negative value is demand the stock on hand and in transit does not cover.

Campaigns apply to a SKU x warehouse as in the features (:mod:`demand_platform.features`): SKU null (every
SKU) or the SKU, and target region null (everywhere) or the warehouse's state. ``marketing_campaigns`` has
no category column, so a campaign is SKU-specific or sitewide.
"""

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from demand_platform import columns as C
from demand_platform import inventory
from demand_platform.accuracy import ACTUAL, ScoredForecasts
from demand_platform.days import DateLike
from demand_platform.forecasting.overrides import OVERRIDE_APPLIED, OVERRIDE_AUTHOR_OUT, OVERRIDE_REASON_OUT
from demand_platform.metrics import N_OBS, WMAPE
from demand_platform.plots import new_figure, no_data_figure, save_figure

# --- fan chart ---------------------------------------------------------------------------------------------------
#: History days drawn before the origin (the origin day included).
FAN_HISTORY_DAYS = 90
#: Whether a planner override changed the forecast of the day.
OVERRIDE = "override"
#: Who overrode the day's forecast and why (empty when no override applied).
OVERRIDE_NOTE = "override_note"
#: Campaigns running on the day, ``"; "``-joined labels (empty when none).
CAMPAIGN = "campaign"
FAN_DTYPES: dict[str, str] = {
    C.SKU: "object",
    C.WAREHOUSE_ID: "object",
    C.DATE: "datetime64[ns]",
    ACTUAL: "float64",
    C.FORECAST: "float64",
    C.P50: "float64",
    C.P90: "float64",
    C.P95: "float64",
    OVERRIDE: "bool",
    OVERRIDE_NOTE: "object",
    CAMPAIGN: "object",
}
FAN_COLUMNS = tuple(FAN_DTYPES)
SERIES_KEYS = [C.SKU, C.WAREHOUSE_ID]

# --- accuracy and coverage by horizon ------------------------------------------------------------------------------
#: Line of a chart: ``tier 1``.. or :data:`GROUP_ALL`.
SERIES = "series"
GROUP_ALL = "all tiers"
ACCURACY_BY_HORIZON_COLUMNS = (SERIES, C.HORIZON, WMAPE, N_OBS)
QUANTILE = "quantile"
COVERAGE = "coverage"
NOMINAL = "nominal"
COVERAGE_BY_HORIZON_COLUMNS = (QUANTILE, C.HORIZON, COVERAGE, NOMINAL, N_OBS)
#: Quantile columns of the coverage chart and their nominal coverage.
NOMINAL_COVERAGE = {C.P90: 0.90, C.P95: 0.95}

# --- projected on hand -----------------------------------------------------------------------------------------
ON_HAND_START = "on_hand_start"
ARRIVING = "arriving"
PROJECTED_ON_HAND = "projected_on_hand"
PROJECTION_DTYPES: dict[str, str] = {
    C.SKU: "object",
    C.WAREHOUSE_ID: "object",
    C.DATE: "datetime64[ns]",
    C.HORIZON: "int64",
    inventory.LEAD_TIME: "float64",
    ON_HAND_START: "float64",
    ARRIVING: "float64",
    C.P50: "float64",
    PROJECTED_ON_HAND: "float64",
    inventory.REORDER_POINT: "float64",
}
PROJECTION_COLUMNS = tuple(PROJECTION_DTYPES)

#: Panels per row of the multi-series charts.
_NCOLS = 3


def _grid(n_panels: int) -> tuple[Figure, np.ndarray]:
    """A figure of ``n_panels`` panels, :data:`_NCOLS` a row, and its axes (surplus panels hidden).

    One panel gets the constrained layout of :func:`demand_platform.plots.new_figure` (a long title fits);
    a grid gets fixed margins: the constrained layout of six date-axis panels costs about 0.25 s a chart.
    """
    if n_panels == 1:
        fig = new_figure(1, 1, (7.0, 3.8))
        return fig, np.array([fig.add_subplot()])
    ncols = min(_NCOLS, n_panels)
    nrows = -(-n_panels // ncols)
    height = 3.2 * nrows
    fig = Figure(figsize=(5.0 * ncols, height))
    FigureCanvasAgg(fig)
    fig.subplots_adjust(
        left=0.05, right=0.98, bottom=0.6 / height, top=1 - 0.6 / height, hspace=0.5, wspace=0.2
    )
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax in axes[n_panels:]:
        ax.set_axis_off()
    return fig, axes


def _day(value: DateLike) -> pd.Timestamp:
    return pd.Timestamp(value).normalize()


def _series_label(sku: object, warehouse: object) -> str:
    return f"{sku} @ {warehouse}"


def _text_keys(frame: pd.DataFrame) -> pd.DataFrame:
    """The SKU and warehouse columns as plain text (categoricals of different categories merge badly)."""
    return frame.assign(**{c: frame[c].astype(object).astype(str) for c in SERIES_KEYS})


# --- fan chart: data ---------------------------------------------------------------------------------------------
def applicable_campaigns(
    campaigns: pd.DataFrame | None,
    skus: list[str],
    warehouse_state: str | None,
    first: DateLike,
    last: DateLike,
) -> pd.DataFrame:
    """Campaign days in ``[first, last]`` that apply to some of ``skus`` in a warehouse of ``warehouse_state``.

    Args:
        campaigns: ``marketing_campaigns`` rows (None or empty for none).
        skus: SKUs of interest.
        warehouse_state: The warehouse's ``location_state``; None applies only campaigns without a region.
        first: First day.
        last: Last day.

    Returns:
        ``sku`` (None for a sitewide campaign), ``date`` and ``campaign`` (its label: id, type, discount),
        one row per campaign and day.
    """
    empty = pd.DataFrame(
        {
            C.SKU: pd.Series(dtype=object),
            C.DATE: pd.Series(dtype="datetime64[ns]"),
            CAMPAIGN: pd.Series(dtype=object),
        }
    )
    if campaigns is None or campaigns.empty:
        return empty
    first_ts, last_ts = _day(first), _day(last)
    start = pd.to_datetime(campaigns[C.START_DATE]).dt.normalize()
    end = pd.to_datetime(campaigns[C.END_DATE]).dt.normalize()
    sku = campaigns[C.SKU].astype(object)
    region = campaigns[C.TARGET_REGION].astype(object) if C.TARGET_REGION in campaigns else pd.Series(None)
    region_ok = region.isna() | (region == warehouse_state) if warehouse_state is not None else region.isna()
    keep = (sku.isna() | sku.isin(skus)) & region_ok & (end >= first_ts) & (start <= last_ts) & (end >= start)
    if not keep.any():
        return empty
    chosen = campaigns.loc[keep]
    lo = np.maximum(start[keep].to_numpy(), first_ts.to_datetime64()).astype("datetime64[D]")
    hi = np.minimum(end[keep].to_numpy(), last_ts.to_datetime64()).astype("datetime64[D]")
    lengths = (hi - lo).astype(np.int64) + 1
    of_day = np.repeat(np.arange(len(lo)), lengths)
    offset = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    discount = pd.to_numeric(chosen[C.DISCOUNT_PERCENT], errors="coerce").to_numpy(dtype=np.float64)
    kind = (
        chosen[C.CAMPAIGN_TYPE].astype(object)
        if C.CAMPAIGN_TYPE in chosen
        else pd.Series([None] * len(chosen))
    )
    labels = np.array(
        [
            f"{cid} ({k + ', ' if isinstance(k, str) else ''}-{d:.0f}%)" if d == d else str(cid)
            for cid, k, d in zip(chosen[C.CAMPAIGN_ID].astype(str), kind, discount, strict=True)
        ],
        dtype=object,
    )
    return pd.DataFrame(
        {
            C.SKU: chosen[C.SKU].astype(object).to_numpy()[of_day],
            C.DATE: (lo[of_day] + offset).astype("datetime64[ns]"),
            CAMPAIGN: labels[of_day],
        }
    )


def fan_chart_data(
    history: pd.DataFrame,
    forecasts: pd.DataFrame,
    origin: DateLike,
    series: pd.DataFrame | None = None,
    campaigns: pd.DataFrame | None = None,
    warehouse_state: str | None = None,
    history_days: int = FAN_HISTORY_DAYS,
) -> pd.DataFrame:
    """The frame of the fan chart: history to D, then the D+1.. forecast, overrides and campaigns per day.

    Args:
        history: ``raw_sales`` rows (``sku``, ``warehouse_id``, ``date``, ``quantity``).
        forecasts: Forecast rows; those of ``origin`` are drawn. ``override_applied`` (and the override's
            author and reason), when present, mark the overridden days.
        origin: Origin D.
        series: ``sku``, ``warehouse_id`` of the series to draw; every series of the origin's forecasts
            when None.
        campaigns: ``marketing_campaigns`` rows, shaded where they apply.
        warehouse_state: State of the warehouse (for campaigns with a target region).
        history_days: History days D - history_days + 1 .. D.

    Returns:
        :data:`FAN_COLUMNS`, one row per series and day, sorted by SKU, warehouse and date: history days
        carry ``actual`` (NaN on a day without a ``raw_sales`` row) and no forecast; forecast days carry
        ``forecast``, ``p50``, ``p90``, ``p95``, ``override`` / ``override_note`` and ``campaign``, and
        a NaN ``actual``.
    """
    day = _day(origin)
    fc = forecasts.loc[pd.to_datetime(forecasts[C.ORIGIN_DATE]).dt.normalize() == day]
    fc = _text_keys(fc)
    if series is not None:
        fc = fc.merge(_text_keys(series[SERIES_KEYS]).drop_duplicates(), on=SERIES_KEYS, how="inner")
    fc = fc.sort_values([*SERIES_KEYS, C.HORIZON], kind="stable").drop_duplicates([*SERIES_KEYS, C.HORIZON])
    if fc.empty:
        return pd.DataFrame({c: pd.Series(dtype=d) for c, d in FAN_DTYPES.items()})
    keys = fc[SERIES_KEYS].drop_duplicates().reset_index(drop=True)

    future = fc[[*SERIES_KEYS, C.FORECAST, C.P50, C.P90, C.P95]].copy()
    future[C.DATE] = pd.to_datetime(fc[C.TARGET_DATE]).dt.normalize().astype("datetime64[ns]").to_numpy()
    future[ACTUAL] = np.nan
    applied = fc[OVERRIDE_APPLIED].fillna(False).astype(bool) if OVERRIDE_APPLIED in fc else None
    future[OVERRIDE] = applied.to_numpy() if applied is not None else False
    note = np.full(len(fc), "", dtype=object)
    if applied is not None:
        none = pd.Series(None, index=fc.index, dtype=object)
        author = fc[OVERRIDE_AUTHOR_OUT].astype(object) if OVERRIDE_AUTHOR_OUT in fc else none
        reason = fc[OVERRIDE_REASON_OUT].astype(object) if OVERRIDE_REASON_OUT in fc else none
        text = author.fillna("planner").astype(str) + ": " + reason.fillna("").astype(str)
        note = np.where(applied.to_numpy(), text.to_numpy(dtype=object), "")
    future[OVERRIDE_NOTE] = note
    promo = applicable_campaigns(
        campaigns, keys[C.SKU].tolist(), warehouse_state, future[C.DATE].min(), future[C.DATE].max()
    )
    if promo.empty:
        future[CAMPAIGN] = ""
    else:
        sitewide = keys.merge(promo.loc[promo[C.SKU].isna(), [C.DATE, CAMPAIGN]], how="cross")
        specific = keys.merge(promo.loc[promo[C.SKU].notna()], on=C.SKU, how="inner")
        days = pd.concat([sitewide, specific[sitewide.columns]], ignore_index=True).drop_duplicates()
        joined = (
            days.sort_values(CAMPAIGN, kind="stable")
            .groupby([*SERIES_KEYS, C.DATE], sort=False)[CAMPAIGN]
            .agg("; ".join)
            .reset_index()
        )
        future = future.merge(joined, on=[*SERIES_KEYS, C.DATE], how="left")
        future[CAMPAIGN] = future[CAMPAIGN].fillna("")

    past_days = pd.date_range(day - pd.Timedelta(days=history_days - 1), day, freq="D")
    past = keys.merge(pd.DataFrame({C.DATE: past_days}), how="cross")
    hist = history.loc[history[C.SKU].isin(keys[C.SKU].tolist()), [*SERIES_KEYS, C.DATE, C.QUANTITY]]
    hist = _text_keys(hist)
    hist = hist.assign(**{C.DATE: pd.to_datetime(hist[C.DATE]).dt.normalize().astype("datetime64[ns]")})
    hist = hist.loc[(hist[C.DATE] >= past_days[0]) & (hist[C.DATE] <= day)]
    demand = hist.groupby([*SERIES_KEYS, C.DATE], sort=False)[C.QUANTITY].sum().clip(lower=0.0).rename(ACTUAL)
    past = past.merge(demand.reset_index(), on=[*SERIES_KEYS, C.DATE], how="left")
    for column in (C.FORECAST, C.P50, C.P90, C.P95):
        past[column] = np.nan
    past[OVERRIDE] = False
    past[OVERRIDE_NOTE] = ""
    past[CAMPAIGN] = ""
    out = pd.concat([past[list(FAN_COLUMNS)], future[list(FAN_COLUMNS)]], ignore_index=True)
    out = out.sort_values([*SERIES_KEYS, C.DATE], kind="stable").reset_index(drop=True)
    return out.astype(FAN_DTYPES)


# --- fan chart: plot ---------------------------------------------------------------------------------------------
def _runs(labels: np.ndarray) -> list[tuple[int, int, str]]:
    """Runs of consecutive equal non-empty labels: (first index, last index, label)."""
    runs: list[tuple[int, int, str]] = []
    for i, label in enumerate(labels):
        if not label:
            continue
        if runs and runs[-1][1] == i - 1 and runs[-1][2] == label:
            runs[-1] = (runs[-1][0], i, label)
        else:
            runs.append((i, i, str(label)))
    return runs


def _fan_panel(ax: Axes, rows: pd.DataFrame) -> None:
    """Draw one series of :func:`fan_chart_data` on ``ax``."""
    past = rows.loc[rows[C.FORECAST].isna()]
    future = rows.loc[rows[C.FORECAST].notna()]
    x = future[C.DATE].to_numpy()
    half_day = np.timedelta64(12, "h")
    for first, last, label in _runs(future[CAMPAIGN].to_numpy(dtype=object)):
        span = ax.axvspan(
            x[first] - half_day, x[last] + half_day, color="tab:orange", alpha=0.15, label="campaign"
        )
        span.set_gid(f"campaign:{label}")
    ax.plot(
        past[C.DATE].to_numpy(),
        past[ACTUAL].to_numpy(dtype=np.float64),
        color="black",
        linewidth=1,
        label="actual",
    )
    p50, p90, p95 = (future[c].to_numpy(dtype=np.float64) for c in (C.P50, C.P90, C.P95))
    ax.fill_between(x, p90, p95, color="tab:blue", alpha=0.15, label="P90-P95", gid="band:p90-p95")
    ax.fill_between(x, p50, p90, color="tab:blue", alpha=0.3, label="P50-P90", gid="band:p50-p90")
    ax.plot(x, p50, color="tab:blue", linestyle="--", linewidth=1, label="P50")
    ax.plot(
        x, future[C.FORECAST].to_numpy(dtype=np.float64), color="tab:blue", linewidth=1.5, label="forecast"
    )
    overridden = future[OVERRIDE].to_numpy(dtype=bool)
    if overridden.any():
        ax.scatter(
            x[overridden],
            future[C.FORECAST].to_numpy(dtype=np.float64)[overridden],
            marker="D",
            s=18,
            color="tab:red",
            zorder=3,
            label="override",
            gid="override",
        )
    if len(past):
        ax.axvline(past[C.DATE].to_numpy()[-1], color="grey", linestyle=":", linewidth=1)
    ax.tick_params(axis="x", labelrotation=30, labelsize=7)
    ax.set_ylim(bottom=0)


def fan_chart_figure(frame: pd.DataFrame, title: str | None = None) -> Figure:
    """One panel per SKU x warehouse of :func:`fan_chart_data`: history, forecast fan, overrides, campaigns.

    In each panel: the actual demand (black line, history days), the P90-P95 and P50-P90 bands, the P50
    (dashed) and the point forecast (forecast days), red diamonds on the forecast of overridden days, and
    the campaign days shaded orange (one span per run of days with the same campaigns; the span's gid is
    ``campaign:<labels>``). Panels follow the frame's order of series.

    Args:
        frame: Output of :func:`fan_chart_data`.
        title: Figure title (default: "Forecast fan at origin <last history day>").

    Returns:
        The figure ("no data" when the frame is empty).
    """
    name = title or "Forecast fan"
    if frame.empty or frame[C.FORECAST].isna().all():
        return no_data_figure(name)
    groups = list(frame.groupby(SERIES_KEYS, sort=False))
    fig, axes = _grid(len(groups))
    for ax, ((sku, warehouse), rows) in zip(axes, groups, strict=False):
        _fan_panel(ax, rows)
        ax.set_title(_series_label(sku, warehouse), fontsize=9)
    handles, labels = axes[0].get_legend_handles_labels()
    unique = dict(zip(labels, handles, strict=True))
    axes[0].legend(unique.values(), unique.keys(), fontsize=7, loc="upper left")
    if title is None:
        origin = frame.loc[frame[C.FORECAST].isna(), C.DATE].max()
        name = f"Forecast fan at origin {pd.Timestamp(origin).date()}" if pd.notna(origin) else name
    fig.suptitle(name)
    return fig


def plot_fan_chart(frame: pd.DataFrame, path: str | Path, title: str | None = None) -> Path:
    """Write :func:`fan_chart_figure` as a PNG at ``path`` and return the path."""
    return save_figure(fan_chart_figure(frame, title), path)


# --- accuracy and coverage by horizon --------------------------------------------------------------------------
def _tier_labels(values: np.ndarray) -> list[str]:
    out = []
    for value in values:
        number = pd.to_numeric(value, errors="coerce")
        out.append("tier unknown" if pd.isna(number) else f"tier {int(number)}")
    return out


def accuracy_by_horizon_data(scored: ScoredForecasts) -> pd.DataFrame:
    """WMAPE of the point forecast per horizon day, per tier and over all tiers, on the scored forecasts.

    ``wmape = sum |forecast - actual| / sum actual`` over the scored rows of the group (rows without a
    forecast left out), NaN when the actuals sum to 0.

    Args:
        scored: Output of :func:`demand_platform.accuracy.score_forecasts` (the matured forecasts).

    Returns:
        :data:`ACCURACY_BY_HORIZON_COLUMNS` (``series`` ``tier <t>`` or :data:`GROUP_ALL`), one row per
        series and horizon with scored rows, sorted by series then horizon.
    """
    if scored.n_scored == 0:
        return pd.DataFrame({SERIES: [], C.HORIZON: [], WMAPE: [], N_OBS: []}).astype(
            {SERIES: object, C.HORIZON: np.int64, WMAPE: np.float64, N_OBS: np.int64}
        )
    horizon = scored.column(C.HORIZON).astype(np.int64)
    forecast = scored.column(C.FORECAST).astype(np.float64)
    tier = scored.codes(C.TIER)
    n_h = int(horizon.max()) + 1
    paired = ~np.isnan(forecast)
    error = np.where(paired, np.abs(forecast - scored.actual), 0.0)
    actual = np.where(paired, scored.actual, 0.0)
    parts = []
    for code, size, labels in (
        (tier.codes.astype(np.int64), tier.size, _tier_labels(tier.values)),
        (np.zeros(len(horizon), dtype=np.int64), 1, [GROUP_ALL]),
    ):
        group = code * n_h + horizon
        n = np.bincount(group, weights=paired, minlength=size * n_h)
        err = np.bincount(group, weights=error, minlength=size * n_h)
        act = np.bincount(group, weights=actual, minlength=size * n_h)
        cells = np.flatnonzero(n > 0)
        wmape = np.divide(err[cells], act[cells], out=np.full(len(cells), np.nan), where=act[cells] > 0)
        parts.append(
            pd.DataFrame(
                {
                    SERIES: np.asarray(labels, dtype=object)[cells // n_h],
                    C.HORIZON: cells % n_h,
                    WMAPE: wmape,
                    N_OBS: n[cells].astype(np.int64),
                }
            )
        )
    out = pd.concat(parts, ignore_index=True)
    order = out[SERIES].eq(GROUP_ALL).to_numpy()  # tiers first, then all tiers
    out = out.assign(_all=order).sort_values(["_all", SERIES, C.HORIZON], kind="stable").drop(columns="_all")
    return out.reset_index(drop=True)[list(ACCURACY_BY_HORIZON_COLUMNS)]


def accuracy_by_horizon_figure(frame: pd.DataFrame) -> Figure:
    """One line per series of :func:`accuracy_by_horizon_data`: WMAPE (y) per horizon day (x).

    Args:
        frame: Output of :func:`accuracy_by_horizon_data`.

    Returns:
        The figure ("no data" when the frame is empty).
    """
    title = "WMAPE by horizon day"
    if frame.empty:
        return no_data_figure(title)
    fig = new_figure(panel_size=(7.0, 3.8))
    ax = fig.add_subplot()
    for name, rows in frame.groupby(SERIES, sort=False):
        ax.plot(
            rows[C.HORIZON].to_numpy(),
            rows[WMAPE].to_numpy(dtype=np.float64),
            marker="o",
            markersize=2.5,
            linewidth=2.0 if name == GROUP_ALL else 1.0,
            color="black" if name == GROUP_ALL else None,
            label=str(name),
        )
    ax.set_title(f"{title} (matured forecasts of the scored origins)")
    ax.set_xlabel("horizon (days ahead of the origin)")
    ax.set_ylabel("WMAPE")
    ax.yaxis.set_major_formatter(lambda value, _pos: f"{value:.0%}")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return fig


def plot_accuracy_by_horizon(frame: pd.DataFrame, path: str | Path) -> Path:
    """Write :func:`accuracy_by_horizon_figure` as a PNG at ``path`` and return the path."""
    return save_figure(accuracy_by_horizon_figure(frame), path)


def coverage_by_horizon_data(scored: ScoredForecasts) -> pd.DataFrame:
    """Share of scored days whose actual is at or below P90 / P95, per horizon day.

    Args:
        scored: Output of :func:`demand_platform.accuracy.score_forecasts`.

    Returns:
        :data:`COVERAGE_BY_HORIZON_COLUMNS`: per quantile (``p90``, ``p95``) and horizon with a quantile
        forecast, the coverage, its nominal level (:data:`NOMINAL_COVERAGE`) and the rows counted; sorted
        by quantile then horizon.
    """
    if scored.n_scored == 0:
        return pd.DataFrame({QUANTILE: [], C.HORIZON: [], COVERAGE: [], NOMINAL: [], N_OBS: []}).astype(
            {
                QUANTILE: object,
                C.HORIZON: np.int64,
                COVERAGE: np.float64,
                NOMINAL: np.float64,
                N_OBS: np.int64,
            }
        )
    horizon = scored.column(C.HORIZON).astype(np.int64)
    n_h = int(horizon.max()) + 1
    parts = []
    for quantile, nominal in NOMINAL_COVERAGE.items():
        upper = scored.column(quantile).astype(np.float64)
        known = ~np.isnan(upper)
        n = np.bincount(horizon, weights=known, minlength=n_h)
        hits = np.bincount(horizon, weights=known & (scored.actual <= upper), minlength=n_h)
        cells = np.flatnonzero(n > 0)
        parts.append(
            pd.DataFrame(
                {
                    QUANTILE: quantile,
                    C.HORIZON: cells,
                    COVERAGE: hits[cells] / n[cells],
                    NOMINAL: nominal,
                    N_OBS: n[cells].astype(np.int64),
                }
            )
        )
    return pd.concat(parts, ignore_index=True)[list(COVERAGE_BY_HORIZON_COLUMNS)]


def coverage_by_horizon_figure(frame: pd.DataFrame) -> Figure:
    """One line per quantile of :func:`coverage_by_horizon_data` (coverage per horizon day) and a dotted
    horizontal line at its nominal level (gid ``nominal:<quantile>``).

    Args:
        frame: Output of :func:`coverage_by_horizon_data`.

    Returns:
        The figure ("no data" when the frame is empty).
    """
    title = "P90 / P95 coverage by horizon day"
    if frame.empty:
        return no_data_figure(title)
    fig = new_figure(panel_size=(7.0, 3.8))
    ax = fig.add_subplot()
    for i, (quantile, rows) in enumerate(frame.groupby(QUANTILE, sort=True)):
        color = f"C{i}"
        ax.plot(
            rows[C.HORIZON].to_numpy(),
            rows[COVERAGE].to_numpy(dtype=np.float64),
            marker="o",
            markersize=2.5,
            color=color,
            label=f"{str(quantile).upper()} coverage",
        )
        nominal = float(rows[NOMINAL].iloc[0])
        line = ax.axhline(nominal, color=color, linestyle=":", linewidth=1, label=f"nominal {nominal:.2f}")
        line.set_gid(f"nominal:{quantile}")
    ax.set_title(title)
    ax.set_xlabel("horizon (days ahead of the origin)")
    ax.set_ylabel("share of actuals at or below the quantile")
    ax.yaxis.set_major_formatter(lambda value, _pos: f"{value:.0%}")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return fig


def plot_coverage_by_horizon(frame: pd.DataFrame, path: str | Path) -> Path:
    """Write :func:`coverage_by_horizon_figure` as a PNG at ``path`` and return the path."""
    return save_figure(coverage_by_horizon_figure(frame), path)


# --- projected on hand -------------------------------------------------------------------------------------------
def projected_on_hand_data(
    state: inventory.PolicyEndState,
    forecasts: pd.DataFrame,
    recommendations: pd.DataFrame,
    origin: DateLike,
) -> pd.DataFrame:
    """Projected on hand D+1..D+H of every series of the origin's forecasts (vectorised).

    ``projected(D+h) = on_hand(D) + sum_{k<=h} arriving(D+k) - sum_{k<=h} p50(D+k)``, with ``on_hand(D)`` and
    the orders in transit from the replay's end state (``state.last_day`` must be D), no new order and no
    clipping at zero. A horizon without a P50 consumes nothing.

    Args:
        state: End state of the report's replay (:func:`demand_platform.inventory.replay_policies`).
        forecasts: Forecast rows; those of ``origin`` are used.
        recommendations: Rows with ``sku``, ``warehouse_id``, ``lead_time`` and ``reorder_point``
            (:func:`demand_platform.inventory.recommend_policy`).
        origin: Origin D.

    Returns:
        :data:`PROJECTION_COLUMNS`, one row per series of the origin and horizon, sorted by SKU, warehouse
        and horizon; ``on_hand_start`` (and the projection) NaN for a series the replay did not cover,
        ``reorder_point`` / ``lead_time`` NaN without a recommendation.

    Raises:
        ValueError: If the replay did not end on ``origin``.
    """
    day = _day(origin)
    if _day(state.last_day) != day:
        raise ValueError(f"the replay ends on {state.last_day.date()}, not on the origin {day.date()}")
    fc = forecasts.loc[pd.to_datetime(forecasts[C.ORIGIN_DATE]).dt.normalize() == day]
    fc = _text_keys(fc[[*SERIES_KEYS, C.HORIZON, C.P50]])
    series = fc[SERIES_KEYS].drop_duplicates().sort_values(SERIES_KEYS).reset_index(drop=True)
    n = len(series)
    n_h = int(fc[C.HORIZON].max()) if len(fc) else 0
    code = inventory.series_codes(fc, series)
    horizon = fc[C.HORIZON].to_numpy(dtype=np.int64)
    p50 = np.zeros((n, n_h))
    valid = (horizon >= 1) & (horizon <= n_h)
    np.add.at(
        p50, (code[valid], horizon[valid] - 1), np.nan_to_num(fc[C.P50].to_numpy(dtype=np.float64)[valid])
    )

    at = inventory.series_codes(series, _text_keys(state.series))  # row of each series in the replay
    on_hand = np.where(at >= 0, state.on_hand[np.maximum(at, 0)], np.nan)
    arriving = np.zeros((n, n_h))
    width = min(state.in_transit.shape[1], n_h)
    covered = at >= 0
    arriving[covered, :width] = state.in_transit[at[covered], :width]
    projected = on_hand[:, None] + np.cumsum(arriving, axis=1) - np.cumsum(p50, axis=1)

    recs = _text_keys(recommendations[[*SERIES_KEYS, inventory.LEAD_TIME, inventory.REORDER_POINT]])
    rec_at = inventory.series_codes(series, recs)
    lead = np.full(n, np.nan)
    rop = np.full(n, np.nan)
    found = np.flatnonzero(rec_at >= 0)
    lead[found] = recs[inventory.LEAD_TIME].to_numpy(dtype=np.float64)[rec_at[found]]
    rop[found] = recs[inventory.REORDER_POINT].to_numpy(dtype=np.float64)[rec_at[found]]
    steps = np.arange(1, n_h + 1)
    out = pd.DataFrame(
        {
            C.SKU: np.repeat(series[C.SKU].to_numpy(dtype=object), n_h),
            C.WAREHOUSE_ID: np.repeat(series[C.WAREHOUSE_ID].to_numpy(dtype=object), n_h),
            C.DATE: np.tile((day + pd.to_timedelta(steps, unit="D")).to_numpy(), n),
            C.HORIZON: np.tile(steps, n),
            inventory.LEAD_TIME: np.repeat(lead, n_h),
            ON_HAND_START: np.repeat(on_hand, n_h),
            ARRIVING: arriving.ravel(),
            C.P50: p50.ravel(),
            PROJECTED_ON_HAND: projected.ravel(),
            inventory.REORDER_POINT: np.repeat(rop, n_h),
        }
    )
    return out.astype(PROJECTION_DTYPES)


def most_at_risk(projection: pd.DataFrame, prices: pd.Series, top_n: int) -> pd.DataFrame:
    """The series whose projected on hand falls furthest below the reorder point within the lead time.

    Risk = ``max(reorder_point - min projected on hand over horizons 1..L, 0) x unit price`` (units when the
    price is unknown); a series about to stock out has the largest gap.

    Args:
        projection: Output of :func:`projected_on_hand_data`.
        prices: Unit price by SKU.
        top_n: Number of series.

    Returns:
        ``sku``, ``warehouse_id`` of the ``top_n`` series with a positive risk, the largest first.
    """
    rows = projection.loc[projection[C.HORIZON] <= projection[inventory.LEAD_TIME].fillna(0)]
    if rows.empty:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in SERIES_KEYS})
    low = rows.groupby(SERIES_KEYS, sort=True).agg(
        low=(PROJECTED_ON_HAND, "min"), rop=(inventory.REORDER_POINT, "first")
    )
    gap = (low["rop"] - low["low"]).clip(lower=0.0)
    price = prices.reindex(low.index.get_level_values(C.SKU)).to_numpy(dtype=np.float64)
    risk = gap.to_numpy() * np.where(np.isnan(price), 1.0, price)
    chosen = low.assign(_risk=risk).loc[risk > 0].sort_values("_risk", ascending=False, kind="stable")
    return chosen.head(top_n).index.to_frame(index=False)


def projected_on_hand_figure(frame: pd.DataFrame) -> Figure:
    """One panel per series of :func:`projected_on_hand_data`: projected on hand against its reorder point.

    Each panel: the projected on hand (line labelled ``projected on hand``), the reorder point (dashed line,
    ``reorder point``), markers where orders in transit arrive (``order arrives``, at the projected on
    hand of that day) and zero.

    Args:
        frame: Rows of :func:`projected_on_hand_data` (e.g. the series of :func:`most_at_risk`).

    Returns:
        The figure ("no data" when the frame is empty).
    """
    title = "Projected on hand vs reorder point"
    if frame.empty:
        return no_data_figure(title)
    groups = list(frame.groupby(SERIES_KEYS, sort=False))
    fig, axes = _grid(len(groups))
    for ax, ((sku, warehouse), rows) in zip(axes, groups, strict=False):
        x = rows[C.DATE].to_numpy()
        projected = rows[PROJECTED_ON_HAND].to_numpy(dtype=np.float64)
        ax.plot(x, projected, color="tab:blue", linewidth=1.5, label="projected on hand")
        ax.plot(
            x,
            rows[inventory.REORDER_POINT].to_numpy(dtype=np.float64),
            color="tab:red",
            linestyle="--",
            linewidth=1,
            label="reorder point",
        )
        arrives = rows[ARRIVING].to_numpy(dtype=np.float64) > 0
        if arrives.any():
            ax.scatter(
                x[arrives], projected[arrives], marker="^", color="tab:green", s=20, label="order arrives"
            )
        ax.axhline(0.0, color="black", linewidth=0.8)
        ax.set_title(_series_label(sku, warehouse), fontsize=9)
        ax.tick_params(axis="x", labelrotation=30, labelsize=7)
    axes[0].legend(fontsize=7, loc="lower left")
    fig.suptitle(f"{title} (stock of the replay at the origin, no new order, P50 demand)")
    return fig


def plot_projected_on_hand(frame: pd.DataFrame, path: str | Path) -> Path:
    """Write :func:`projected_on_hand_figure` as a PNG at ``path`` and return the path."""
    return save_figure(projected_on_hand_figure(frame), path)
