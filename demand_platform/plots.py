"""Report plots of forecast accuracy and of the replenishment replay, and a markdown summary.

Figures are drawn on the Agg backend through ``matplotlib.figure.Figure`` and ``FigureCanvasAgg`` (no
``pyplot``: no global figure registry, nothing to close, safe in Dagster's run workers and threads). Every
plot function writes one PNG, creating the parent directory, and returns its path; an input without data
still produces a figure saying so, so a report never links to a missing file.
"""

import math
from collections.abc import Hashable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from demand_platform import columns as C
from demand_platform.accuracy import (
    ACTUAL,
    BY_HORIZON_BAND,
    BY_TIER,
    BY_TIER_AND_ORIGIN,
    COVERAGE_P90,
    COVERAGE_P95,
    HORIZON_BAND,
    LEAD_TIME,
    LEAD_TIME_WMAPE,
    OVERALL,
    WEEKLY,
    WEEKLY_WMAPE,
    ScoredForecasts,
)
from demand_platform.days import DateLike
from demand_platform.inventory import (
    AVG_ON_HAND,
    CYCLE_SERVICE_LEVEL,
    FILL_RATE,
    POLICY,
    SCOPE,
    SCOPE_OVERALL,
)
from demand_platform.metrics import BIAS, MAE, N_OBS, RMSE, WMAPE

DPI = 100
_MISSING = "n/a"


def _new_figure(n_panels: int = 1, ncols: int = 1, panel_size: tuple[float, float] = (6.0, 3.5)) -> Figure:
    nrows = max(1, math.ceil(n_panels / ncols))
    fig = Figure(figsize=(panel_size[0] * ncols, panel_size[1] * nrows), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, path: str | Path) -> Path:
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=DPI, format="png")
    return out


def _empty(path: str | Path, title: str) -> Path:
    fig = _new_figure()
    ax = fig.add_subplot()
    ax.set_title(title)
    ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
    ax.set_axis_off()
    return _save(fig, path)


def _top_series_frame(
    frame: pd.DataFrame, top_n: int, origin: DateLike | None
) -> tuple[pd.Timestamp, pd.DataFrame, pd.Series]:
    """Origin drawn, its rows and the top series by total actual (``volume`` indexed by sku, warehouse)."""
    origin_ts = frame[C.ORIGIN_DATE].max() if origin is None else pd.Timestamp(origin)
    at_origin = frame.loc[frame[C.ORIGIN_DATE] == origin_ts]
    volume = frame.groupby([C.SKU, C.WAREHOUSE_ID], observed=True, sort=False)[ACTUAL].sum()
    present = pd.MultiIndex.from_frame(at_origin[[C.SKU, C.WAREHOUSE_ID]].drop_duplicates())
    top = volume[volume.index.isin(present)].sort_values(ascending=False, kind="stable").head(top_n)
    return origin_ts, at_origin, top


def _top_series_scored(
    scored: ScoredForecasts, top_n: int, origin: DateLike | None
) -> tuple[pd.Timestamp, pd.DataFrame, pd.Series]:
    """As :func:`_top_series_frame`, on the scored rows' integer codes (no frame of all scored rows)."""
    days = scored.days(C.ORIGIN_DATE)
    if origin is None:
        origin_day = int(days.max())
    else:
        origin_day = int(
            pd.Timestamp(origin).normalize().to_datetime64().astype("datetime64[D]").view(np.int64)
        )
    origin_ts = pd.Timestamp(np.datetime64(origin_day, "D"))
    series, size = scored.series()
    volume = np.bincount(series, weights=scored.actual, minlength=size)
    n_rows = np.bincount(series, minlength=size)
    at_day = days == origin_day
    present = np.bincount(series[at_day], minlength=size) > 0
    first = np.full(size, len(series), dtype=np.int64)
    first[series[::-1]] = np.arange(len(series))[::-1]
    codes = np.flatnonzero((n_rows > 0) & present)
    codes = codes[np.argsort(first[codes], kind="stable")]  # first appearance, as a group-by (sort=False)
    n_wh = scored.warehouse.size
    index = pd.MultiIndex.from_arrays(
        [scored.sku.values[codes // n_wh], scored.warehouse.values[codes % n_wh]],
        names=[C.SKU, C.WAREHOUSE_ID],
    )
    top = pd.Series(volume[codes], index=index, name=ACTUAL)
    top = top.sort_values(ascending=False, kind="stable").head(top_n)
    chosen = np.zeros(size, dtype=bool)
    chosen[codes[index.isin(top.index)]] = True
    at_origin = scored.subframe(at_day & chosen[series])
    return origin_ts, at_origin, top


def plot_forecast_vs_actual(
    scored: ScoredForecasts | pd.DataFrame,
    path: str | Path,
    top_n: int = 6,
    origin: DateLike | None = None,
) -> Path:
    """Forecast vs actual of the top-N series by volume, with P50 and the P50-P90 / P90-P95 bands.

    Args:
        scored: Scored forecasts (or their frame: forecast columns plus ``actual``).
        path: Output PNG path.
        top_n: Number of SKU x warehouse series, the largest by total actual demand in ``scored``.
        origin: Origin whose 1..30-day forecast is drawn; the latest origin when None.

    Returns:
        The PNG path.
    """
    title = "Forecast vs actual"
    if isinstance(scored, ScoredForecasts):
        if scored.n_scored == 0:
            return _empty(path, title)
        origin_ts, at_origin, top = _top_series_scored(scored, top_n, origin)
    else:
        if scored.empty:
            return _empty(path, title)
        origin_ts, at_origin, top = _top_series_frame(scored, top_n, origin)
    if top.empty:
        return _empty(path, f"{title} (origin {origin_ts.date()})")
    ncols = min(3, len(top))
    fig = _new_figure(len(top), ncols, (5.0, 3.2))
    axes = fig.subplots(math.ceil(len(top) / ncols), ncols, squeeze=False).ravel()
    for ax, (sku, warehouse) in zip(axes, top.index, strict=False):
        rows = at_origin.loc[(at_origin[C.SKU] == sku) & (at_origin[C.WAREHOUSE_ID] == warehouse)]
        rows = rows.loc[rows[C.MODEL] == rows[C.MODEL].iloc[0]].sort_values(C.TARGET_DATE)
        x = rows[C.TARGET_DATE].to_numpy()
        p50, p90, p95 = (rows[c].to_numpy(dtype=np.float64) for c in (C.P50, C.P90, C.P95))
        ax.fill_between(x, p90, p95, color="tab:blue", alpha=0.15, label="P90-P95")
        ax.fill_between(x, p50, p90, color="tab:blue", alpha=0.3, label="P50-P90")
        ax.plot(x, p50, color="tab:blue", linestyle="--", linewidth=1, label="P50")
        ax.plot(
            x, rows[C.FORECAST].to_numpy(dtype=np.float64), color="tab:blue", linewidth=1.5, label="forecast"
        )
        ax.plot(
            x,
            rows[ACTUAL].to_numpy(dtype=np.float64),
            color="black",
            marker="o",
            markersize=2.5,
            label="actual",
        )
        ax.set_title(
            f"{sku} @ {warehouse} (tier {rows[C.TIER].iloc[0]}, {rows[C.MODEL].iloc[0]})", fontsize=9
        )
        ax.tick_params(axis="x", labelrotation=30, labelsize=7)
        ax.set_ylim(bottom=0)
    for ax in axes[len(top) :]:
        ax.set_axis_off()
    axes[0].legend(fontsize=7, loc="upper left")
    fig.suptitle(f"{title}, origin {origin_ts.date()}, top {len(top)} series by volume")
    return _save(fig, path)


def plot_wmape_by_tier(tables: dict[str, pd.DataFrame], path: str | Path) -> Path:
    """Daily-level WMAPE of each tier per forecast origin (from the ``tier_by_origin`` table).

    Args:
        tables: Output of :func:`demand_platform.accuracy.accuracy_tables`.
        path: Output PNG path.

    Returns:
        The PNG path.
    """
    title = "WMAPE by tier over forecast origins"
    table = tables[BY_TIER_AND_ORIGIN]
    if table.empty or table[WMAPE].isna().all():
        return _empty(path, title)
    wide = table.pivot_table(index=C.ORIGIN_DATE, columns=C.TIER, values=WMAPE, aggfunc="first").sort_index()
    fig = _new_figure(panel_size=(7.0, 3.8))
    ax = fig.add_subplot()
    for tier in wide.columns:
        ax.plot(
            wide.index, wide[tier].to_numpy(dtype=np.float64), marker="o", markersize=3, label=f"tier {tier}"
        )
    ax.set_title(title)
    ax.set_xlabel("origin date")
    ax.set_ylabel("WMAPE")
    ax.yaxis.set_major_formatter(lambda value, _pos: f"{value:.0%}")
    ax.tick_params(axis="x", labelrotation=30)
    ax.legend()
    ax.grid(alpha=0.3)
    return _save(fig, path)


def plot_service_vs_inventory(comparison: pd.DataFrame, path: str | Path) -> Path:
    """Service level (fill rate and cycle service level) against average on hand, per policy and scope.

    Each policy of :func:`demand_platform.inventory.compare_policies` (forecast quantile policies and the
    MA28 baseline) is one marker style; each scope (tier, overall) one colour. Up and left is better.

    Args:
        comparison: Output of :func:`demand_platform.inventory.compare_policies`.
        path: Output PNG path.

    Returns:
        The PNG path.
    """
    title = "Service level vs average inventory"
    if comparison.empty:
        return _empty(path, title)
    fig = _new_figure(2, 2, (5.5, 4.0))
    axes = fig.subplots(1, 2, squeeze=False).ravel()
    markers = dict(zip(comparison[POLICY].unique(), "osD^vP*X", strict=False))
    scopes = list(comparison[SCOPE].unique())
    colors = {scope: f"C{i}" for i, scope in enumerate(scopes)}
    for ax, metric, label in (
        (axes[0], FILL_RATE, "fill rate"),
        (axes[1], CYCLE_SERVICE_LEVEL, "cycle service level"),
    ):
        for scope in scopes:
            part = comparison.loc[comparison[SCOPE] == scope].sort_values(AVG_ON_HAND)
            ax.plot(part[AVG_ON_HAND], part[metric], color=colors[scope], alpha=0.4, linewidth=1)
            for row in part.itertuples(index=False):
                size = 70 if scope == SCOPE_OVERALL else 35
                ax.scatter(
                    getattr(row, AVG_ON_HAND),
                    getattr(row, metric),
                    marker=markers[getattr(row, POLICY)],
                    color=colors[scope],
                    s=size,
                )
        ax.set_xlabel("average on hand (units per series-day)")
        ax.set_ylabel(label)
        ax.yaxis.set_major_formatter(lambda value, _pos: f"{value:.1%}")
        ax.grid(alpha=0.3)
    handles = [
        axes[0].scatter([], [], marker=marker, color="grey", label=policy)
        for policy, marker in markers.items()
    ] + [axes[0].scatter([], [], marker="s", color=color, label=scope) for scope, color in colors.items()]
    axes[0].legend(handles=handles, fontsize=7, loc="lower right")
    fig.suptitle(title)
    return _save(fig, path)


# --- markdown ------------------------------------------------------------------------------------------------
def _fmt(value: object, kind: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return _MISSING
    number = float(value)  # type: ignore[arg-type]
    if kind == "pct":
        return f"{number:.1%}"
    if kind == "signed_pct":
        return f"{number:+.1%}"
    if kind == "int":
        return f"{int(number):,}"
    return f"{number:.2f}"


_SUMMARY_COLUMNS = (
    ("n", N_OBS, "int"),
    ("WMAPE", WMAPE, "pct"),
    ("bias", BIAS, "signed_pct"),
    ("MAE", MAE, "num"),
    ("RMSE", RMSE, "num"),
    ("cov P90", COVERAGE_P90, "pct"),
    ("cov P95", COVERAGE_P95, "pct"),
    ("LT WMAPE", LEAD_TIME_WMAPE, "pct"),
    ("week WMAPE", WEEKLY_WMAPE, "pct"),
)


def markdown_summary(tables: dict[str, pd.DataFrame]) -> str:
    """A compact markdown table of the accuracy tables, for Dagster asset metadata.

    Rows: overall, each tier, each horizon band. Columns: observations, daily WMAPE, bias, MAE, RMSE, P90
    and P95 coverage, and WMAPE of lead-time demand and of weekly totals (overall and tier rows).

    Args:
        tables: Output of :func:`demand_platform.accuracy.accuracy_tables`.

    Returns:
        Markdown text (header, separator, one line per row).
    """
    rows: list[tuple[str, Mapping[Hashable, object]]] = []
    overall = tables[OVERALL]
    if not overall.empty:
        rows.append(("overall", overall.iloc[0].to_dict()))
    lead = (
        tables[LEAD_TIME].set_index(C.TIER)[WMAPE] if not tables[LEAD_TIME].empty else pd.Series(dtype=float)
    )
    weekly = tables[WEEKLY].set_index(C.TIER)[WMAPE] if not tables[WEEKLY].empty else pd.Series(dtype=float)
    for record in tables[BY_TIER].to_dict("records"):
        tier = record[C.TIER]
        record[LEAD_TIME_WMAPE] = lead.get(tier, np.nan)
        record[WEEKLY_WMAPE] = weekly.get(tier, np.nan)
        rows.append((f"tier {tier}", record))
    for band in tables[BY_HORIZON_BAND].to_dict("records"):
        rows.append((f"h {band[HORIZON_BAND]}", band))
    header = "| | " + " | ".join(name for name, _, _ in _SUMMARY_COLUMNS) + " |"
    separator = "|---|" + "---:|" * len(_SUMMARY_COLUMNS)
    lines = [header, separator]
    for label, values in rows:
        cells = [_fmt(values.get(column, np.nan), kind) for _, column, kind in _SUMMARY_COLUMNS]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
