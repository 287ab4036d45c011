"""Figure helpers, two report plots (WMAPE by tier over origins, service vs inventory) and a markdown summary.

Figures are drawn on the Agg backend through ``matplotlib.figure.Figure`` and ``FigureCanvasAgg`` (no
``pyplot``: no global figure registry, nothing to close, safe in Dagster's run workers and threads). Each
chart is a data function (the frame drawn), a ``*_figure`` function drawing exactly that frame and a
``plot_*`` function writing the figure as a PNG (parent directory created) and returning its path; a frame
without data still produces a figure saying so, so a report never links to a missing file. The other
charts of the report are in :mod:`demand_platform.charts`.
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
)
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


def new_figure(n_panels: int = 1, ncols: int = 1, panel_size: tuple[float, float] = (6.0, 3.5)) -> Figure:
    """A figure sized for ``n_panels`` panels in ``ncols`` columns, on its own Agg canvas (no pyplot)."""
    nrows = max(1, math.ceil(n_panels / ncols))
    fig = Figure(figsize=(panel_size[0] * ncols, panel_size[1] * nrows), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig: Figure, path: str | Path) -> Path:
    """Write ``fig`` as a PNG at ``path`` (parent directories created) and return the path."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=DPI, format="png")
    return out


def no_data_figure(title: str) -> Figure:
    """A figure titled ``title`` that says "no data"."""
    fig = new_figure()
    ax = fig.add_subplot()
    ax.set_title(title)
    ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
    ax.set_axis_off()
    return fig


def empty_figure(path: str | Path, title: str) -> Path:
    """Write a figure titled ``title`` that says "no data" (a report never links to a missing file)."""
    return save_figure(no_data_figure(title), path)


def wmape_by_tier_data(tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """The frame behind :func:`plot_wmape_by_tier`: daily-level WMAPE of each tier per forecast origin.

    Args:
        tables: Output of :func:`demand_platform.accuracy.accuracy_tables` (its ``tier_by_origin`` table).

    Returns:
        ``origin_date``, ``tier``, ``wmape`` sorted by tier and origin, rows without a WMAPE left out.
    """
    table = tables[BY_TIER_AND_ORIGIN]
    out = table.loc[table[WMAPE].notna(), [C.ORIGIN_DATE, C.TIER, WMAPE]]
    return out.sort_values([C.TIER, C.ORIGIN_DATE], kind="stable").reset_index(drop=True)


def wmape_by_tier_figure(frame: pd.DataFrame) -> Figure:
    """One line per tier (label ``tier <t>``): WMAPE (y) per forecast origin (x), from
    :func:`wmape_by_tier_data`; a "no data" figure when the frame is empty."""
    title = "WMAPE by tier over forecast origins"
    if frame.empty:
        return no_data_figure(title)
    fig = new_figure(panel_size=(7.0, 3.8))
    ax = fig.add_subplot()
    for tier, rows in frame.groupby(C.TIER, sort=True):
        ax.plot(
            rows[C.ORIGIN_DATE].to_numpy(),
            rows[WMAPE].to_numpy(dtype=np.float64),
            marker="o",
            markersize=3,
            label=f"tier {tier}",
        )
    ax.set_title(title)
    ax.set_xlabel("origin date")
    ax.set_ylabel("WMAPE")
    ax.yaxis.set_major_formatter(lambda value, _pos: f"{value:.0%}")
    ax.tick_params(axis="x", labelrotation=30)
    ax.legend()
    ax.grid(alpha=0.3)
    return fig


def plot_wmape_by_tier(frame: pd.DataFrame, path: str | Path) -> Path:
    """Write :func:`wmape_by_tier_figure` of ``frame`` (output of :func:`wmape_by_tier_data`) as a PNG.

    Args:
        frame: Output of :func:`wmape_by_tier_data`.
        path: Output PNG path.

    Returns:
        The PNG path.
    """
    return save_figure(wmape_by_tier_figure(frame), path)


def service_vs_inventory_figure(comparison: pd.DataFrame) -> Figure:
    """Service level (fill rate and cycle service level) against average on hand, per policy and scope.

    Each policy of :func:`demand_platform.inventory.compare_policies` (forecast quantile policies and the
    MA28 baseline) is one marker style; each scope (tier, overall) one colour. Up and left is better.

    Args:
        comparison: Output of :func:`demand_platform.inventory.compare_policies` (the frame drawn: one
            marker per row at (``avg_on_hand``, fill rate) on the left and (``avg_on_hand``, cycle service
            level) on the right).

    Returns:
        The figure ("no data" when ``comparison`` is empty).
    """
    title = "Service level vs average inventory"
    if comparison.empty:
        return no_data_figure(title)
    fig = new_figure(2, 2, (5.5, 4.0))
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
    return fig


def plot_service_vs_inventory(comparison: pd.DataFrame, path: str | Path) -> Path:
    """Write :func:`service_vs_inventory_figure` of ``comparison`` as a PNG.

    Args:
        comparison: Output of :func:`demand_platform.inventory.compare_policies`.
        path: Output PNG path.

    Returns:
        The PNG path.
    """
    return save_figure(service_vs_inventory_figure(comparison), path)


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
