"""The report's charts: each data frame computed by hand from small inputs, and the drawn artists hold it."""

from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import PathCollection, PolyCollection
from matplotlib.dates import date2num
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle

from demand_platform import charts
from demand_platform import columns as C
from demand_platform.accuracy import BY_TIER_AND_ORIGIN, accuracy_tables, score_forecasts
from demand_platform.inventory import (
    AVG_ON_HAND,
    FILL_RATE,
    LEAD_TIME,
    REORDER_POINT,
    PolicyEndState,
)
from demand_platform.metrics import N_OBS, WMAPE
from demand_platform.plots import (
    markdown_summary,
    plot_service_vs_inventory,
    service_vs_inventory_figure,
    wmape_by_tier_data,
    wmape_by_tier_figure,
)
from demand_platform.sku_chart import write_sku_chart

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
D = pd.Timestamp("2024-03-10")


def lines(fig: Figure, panel: int = 0) -> dict[str, Line2D]:
    return {str(line.get_label()): line for line in fig.axes[panel].get_lines()}


def ydata(line: Line2D) -> np.ndarray:
    return np.asarray(line.get_ydata(), dtype=np.float64)


# --- fan chart ---------------------------------------------------------------------------------------------------
def fan_inputs() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """A and B in W1. History of A: 3 on D-3, a return (-1) on D-2, no row on D-1, 5 on D. Origin D of A:
    3 horizons, the second overridden; origin D-1 rows (ignored). Campaigns: C1 sitewide D+2..D+10, C2 on A
    in TX on D+3, C3 on A in CA (other state), C4 on B, C5 sitewide before the horizon."""
    history = pd.DataFrame(
        {
            C.SKU: ["A", "A", "A", "A", "B"],
            C.WAREHOUSE_ID: "W1",
            C.DATE: [D - pd.Timedelta(days=k) for k in (3, 2, 0, 9)] + [D],
            C.QUANTITY: [3.0, -1.0, 5.0, 99.0, 7.0],  # D-9 is before the 4-day window
        }
    )
    h = np.arange(1, 4)
    today = pd.DataFrame(
        {
            C.SKU: "A",
            C.WAREHOUSE_ID: "W1",
            C.ORIGIN_DATE: D,
            C.TARGET_DATE: D + pd.to_timedelta(h, unit="D"),
            C.HORIZON: h,
            C.FORECAST: [2.0, 4.0, 6.0],
            C.P50: [1.0, 3.0, 5.0],
            C.P90: [3.0, 5.0, 7.0],
            C.P95: [4.0, 6.0, 8.0],
            "override_applied": [False, True, False],
            "override_author": [None, "ann", None],
            "override_reason": [None, "fair", None],
        }
    )
    yesterday = today.copy()
    yesterday[C.ORIGIN_DATE] = D - pd.Timedelta(days=1)
    yesterday[C.FORECAST] = 100.0
    campaigns = pd.DataFrame(
        {
            C.CAMPAIGN_ID: ["C1", "C2", "C3", "C4", "C5"],
            C.START_DATE: [D + pd.Timedelta(days=k) for k in (2, 3, 1, 1, -20)],
            C.END_DATE: [D + pd.Timedelta(days=k) for k in (10, 3, 3, 3, -10)],
            C.SKU: [None, "A", "A", "B", None],
            C.DISCOUNT_PERCENT: [10.0, 25.0, 5.0, 5.0, 5.0],
            C.CAMPAIGN_TYPE: ["flash", "bundle", "x", "x", "x"],
            C.TARGET_REGION: [None, "TX", "CA", None, None],
        }
    )
    return history, pd.concat([today, yesterday], ignore_index=True), campaigns


def test_fan_chart_data_history_forecast_overrides_and_campaigns() -> None:
    history, forecasts, campaigns = fan_inputs()
    frame = charts.fan_chart_data(
        history, forecasts, D, campaigns=campaigns, warehouse_state="TX", history_days=4
    )
    assert list(frame.columns) == list(charts.FAN_COLUMNS)
    assert set(frame[C.SKU]) == {"A"}  # B has no forecast at D
    days = [D + pd.Timedelta(days=k) for k in range(-3, 4)]
    assert frame[C.DATE].tolist() == days
    np.testing.assert_array_equal(frame["actual"], [3.0, 0.0, np.nan, 5.0, np.nan, np.nan, np.nan])
    np.testing.assert_array_equal(frame[C.FORECAST], [np.nan] * 4 + [2.0, 4.0, 6.0])
    np.testing.assert_array_equal(frame[C.P95], [np.nan] * 4 + [4.0, 6.0, 8.0])
    assert frame[charts.OVERRIDE].tolist() == [False] * 5 + [True, False]
    assert frame[charts.OVERRIDE_NOTE].tolist()[5] == "ann: fair"
    assert frame[charts.CAMPAIGN].tolist() == [""] * 5 + [
        "C1 (flash, -10%)",
        "C1 (flash, -10%); C2 (bundle, -25%)",
    ]
    # Without the warehouse's state, the regional C2 does not apply.
    no_state = charts.fan_chart_data(history, forecasts, D, campaigns=campaigns, history_days=4)
    assert no_state[charts.CAMPAIGN].tolist()[-2:] == ["C1 (flash, -10%)", "C1 (flash, -10%)"]
    # The series argument selects; an origin without forecasts gives an empty typed frame.
    chosen = pd.DataFrame({C.SKU: ["B"], C.WAREHOUSE_ID: ["W1"]})
    assert charts.fan_chart_data(history, forecasts, D, series=chosen).empty
    assert charts.fan_chart_data(history, forecasts, D + pd.Timedelta(days=5)).empty


def test_fan_chart_figure_draws_the_frame(tmp_path: Path) -> None:
    history, forecasts, campaigns = fan_inputs()
    frame = charts.fan_chart_data(
        history, forecasts, D, campaigns=campaigns, warehouse_state="TX", history_days=4
    )
    fig = charts.fan_chart_figure(frame)
    drawn = lines(fig)
    past, future = frame.iloc[:4], frame.iloc[4:]
    np.testing.assert_array_equal(ydata(drawn["actual"]), past["actual"])
    np.testing.assert_array_equal(ydata(drawn["forecast"]), future[C.FORECAST])
    np.testing.assert_array_equal(ydata(drawn["P50"]), future[C.P50])
    bands = {c.get_gid(): c for c in fig.axes[0].collections if isinstance(c, PolyCollection)}
    upper = np.asarray(bands["band:p90-p95"].get_paths()[0].vertices)[:, 1]
    assert set(upper) == {3.0, 4.0, 5.0, 6.0, 7.0, 8.0}  # between P90 and P95
    overrides = [c for c in fig.axes[0].collections if c.get_gid() == "override"]
    assert isinstance(overrides[0], PathCollection)
    np.testing.assert_array_equal(
        np.asarray(overrides[0].get_offsets())[:, 1], [4.0]
    )  # the overridden day's forecast
    spans = [
        p
        for p in fig.axes[0].patches
        if isinstance(p, Rectangle) and str(p.get_gid()).startswith("campaign:")
    ]
    extents = sorted((p.get_gid(), p.get_x(), p.get_x() + p.get_width()) for p in spans)
    d2, d3 = (date2num(D + pd.Timedelta(days=k)) for k in (2, 3))
    assert extents == [
        ("campaign:C1 (flash, -10%)", pytest.approx(d2 - 0.5), pytest.approx(d2 + 0.5)),
        ("campaign:C1 (flash, -10%); C2 (bundle, -25%)", pytest.approx(d3 - 0.5), pytest.approx(d3 + 0.5)),
    ]
    assert fig.axes[0].get_title() == "A @ W1"
    assert charts.plot_fan_chart(frame, tmp_path / "fan" / "a.png").read_bytes().startswith(PNG_SIGNATURE)
    empty = charts.fan_chart_figure(frame.iloc[:0])
    assert [t.get_text() for t in empty.axes[0].texts] == ["no data"]


def test_write_sku_chart_reads_the_platform_tables(tmp_path: Path) -> None:
    history, forecasts, campaigns = fan_inputs()
    con = duckdb.connect()
    con.register("_h", history.assign(**{C.REVENUE: 0.0, C.N_ORDERS: 1}))
    con.execute("CREATE TABLE raw_sales AS SELECT * FROM _h")
    con.register("_f", forecasts)
    con.execute("CREATE TABLE forecasts AS SELECT * FROM _f")
    products = pd.DataFrame({C.SKU: ["A"], C.CATEGORY: ["toys"]})
    path = write_sku_chart(con, "A", "W1", D.date(), tmp_path / "sku.png", products, campaigns)
    assert path == tmp_path / "sku.png" and path.read_bytes().startswith(PNG_SIGNATURE)
    with pytest.raises(ValueError, match=r"SKU 'B' in warehouse 'W1' at origin 2024-03-10"):
        write_sku_chart(con, "B", "W1", D.date(), tmp_path / "b.png", products)
    with pytest.raises(ValueError, match=r"SKU 'A' in warehouse 'W1' at origin 2024-03-12"):
        write_sku_chart(con, "A", "W1", D.date() + pd.Timedelta(days=2), tmp_path / "c.png", products)


# --- accuracy and coverage by horizon --------------------------------------------------------------------------
def scored_case():  # type: ignore[no-untyped-def]
    """A (tier 1) and B (tier 2), origins Jan 1 (horizons 1-2) and Jan 2 (horizon 1 due by Jan 3).

    A forecasts 12, 12 then 10; actual 10 (Jan 2), 14 (Jan 3). B forecasts 3, 5 then 4; actual 4, 4.
    P90 = forecast + 1, P95 = forecast + 3.
    """
    rows = [
        ("A", "2024-01-01", 1, 12.0, 1),
        ("A", "2024-01-01", 2, 12.0, 1),
        ("A", "2024-01-02", 1, 10.0, 1),
        ("B", "2024-01-01", 1, 3.0, 2),
        ("B", "2024-01-01", 2, 5.0, 2),
        ("B", "2024-01-02", 1, 4.0, 2),
    ]
    fc = pd.DataFrame(rows, columns=[C.SKU, C.ORIGIN_DATE, C.HORIZON, C.FORECAST, C.TIER])
    fc[C.ORIGIN_DATE] = pd.to_datetime(fc[C.ORIGIN_DATE])
    fc = fc.assign(
        **{
            C.WAREHOUSE_ID: "W1",
            C.TARGET_DATE: fc[C.ORIGIN_DATE] + pd.to_timedelta(fc[C.HORIZON], unit="D"),
            C.P50: fc[C.FORECAST],
            C.P90: fc[C.FORECAST] + 1,
            C.P95: fc[C.FORECAST] + 3,
            C.MODEL: "m",
        }
    )
    actuals = pd.DataFrame(
        {
            C.SKU: ["A", "A", "B", "B"],
            C.WAREHOUSE_ID: "W1",
            C.DATE: pd.to_datetime(["2024-01-02", "2024-01-03"] * 2),
            C.QUANTITY: [10.0, 14.0, 4.0, 4.0],
        }
    )
    products = pd.DataFrame({C.SKU: ["A", "B"], C.CATEGORY: ["x", "y"]})
    return score_forecasts(fc, actuals, products, as_of="2024-01-03")


def test_accuracy_by_horizon_data_and_figure() -> None:
    """tier 1: h1 (|12-10| + |10-14|) / (10 + 14) = 0.25, h2 |12-14| / 14; tier 2: h1 (1 + 0) / 8, h2 1/4;
    all tiers: h1 7 / 32, h2 3 / 18."""
    frame = charts.accuracy_by_horizon_data(scored_case())
    assert list(frame.columns) == list(charts.ACCURACY_BY_HORIZON_COLUMNS)
    assert frame[charts.SERIES].tolist() == ["tier 1", "tier 1", "tier 2", "tier 2", "all tiers", "all tiers"]
    assert frame[C.HORIZON].tolist() == [1, 2] * 3
    assert frame[WMAPE].tolist() == pytest.approx([0.25, 2 / 14, 0.125, 0.25, 7 / 32, 3 / 18])
    assert frame[N_OBS].tolist() == [2, 1, 2, 1, 4, 2]
    drawn = lines(charts.accuracy_by_horizon_figure(frame))
    assert set(drawn) == {"tier 1", "tier 2", "all tiers"}
    for name, line in drawn.items():
        rows = frame.loc[frame[charts.SERIES] == name]
        np.testing.assert_array_equal(np.asarray(line.get_xdata()), rows[C.HORIZON])
        np.testing.assert_allclose(ydata(line), rows[WMAPE])


def test_coverage_by_horizon_data_and_figure() -> None:
    """P90 (forecast + 1) holds on h1 for A Jan 1 (10 <= 13), B (4 <= 4, 4 <= 5) but not A Jan 2 (14 > 11):
    3/4; on h2 for B only: 1/2. P95 (+3): h1 3/4 (14 > 13), h2 2/2."""
    frame = charts.coverage_by_horizon_data(scored_case())
    assert list(frame.columns) == list(charts.COVERAGE_BY_HORIZON_COLUMNS)
    assert frame[charts.QUANTILE].tolist() == [C.P90, C.P90, C.P95, C.P95]
    assert frame[charts.COVERAGE].tolist() == pytest.approx([0.75, 0.5, 0.75, 1.0])
    assert frame[charts.NOMINAL].tolist() == [0.9, 0.9, 0.95, 0.95]
    assert frame[N_OBS].tolist() == [4, 2, 4, 2]
    fig = charts.coverage_by_horizon_figure(frame)
    drawn = lines(fig)
    np.testing.assert_allclose(ydata(drawn["P90 coverage"]), [0.75, 0.5])
    np.testing.assert_allclose(ydata(drawn["P95 coverage"]), [0.75, 1.0])
    nominal = {line.get_gid(): ydata(line) for line in fig.axes[0].get_lines() if line.get_gid()}
    np.testing.assert_allclose(nominal["nominal:p90"], [0.9, 0.9])
    np.testing.assert_allclose(nominal["nominal:p95"], [0.95, 0.95])


def test_horizon_charts_without_scored_rows() -> None:
    empty = score_forecasts(*_unscored())
    for data, figure in (
        (charts.accuracy_by_horizon_data, charts.accuracy_by_horizon_figure),
        (charts.coverage_by_horizon_data, charts.coverage_by_horizon_figure),
    ):
        frame = data(empty)
        assert frame.empty
        assert [t.get_text() for t in figure(frame).axes[0].texts] == ["no data"]


def _unscored() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, str]:
    scored = scored_case()
    return (
        scored.source,
        pd.DataFrame({c: [] for c in (C.SKU, C.WAREHOUSE_ID, C.DATE, C.QUANTITY)}),
        scored.products,
        "2000-01-01",
    )


# --- projected on hand -----------------------------------------------------------------------------------------
def projection_case() -> tuple[PolicyEndState, pd.DataFrame, pd.DataFrame]:
    """End of D: A has 10 on hand and 5 arriving on D+2; B has 0 and 3 arriving on D+1; L = 2 for both.
    P50 at D: A 4, 4, 4; B 1, 2, 1; C (not replayed) 1, 1, 1. Reorder points A 8, B 2."""
    state = PolicyEndState(
        policy="forecast_p95",
        last_day=D,
        series=pd.DataFrame({C.SKU: ["A", "B"], C.WAREHOUSE_ID: "W1", C.TIER: 1, LEAD_TIME: 2}),
        on_hand=np.array([10.0, 0.0]),
        in_transit=np.array([[0.0, 5.0, 0.0], [3.0, 0.0, 0.0]]),
    )
    h = np.tile(np.arange(1, 4), 3)
    forecasts = pd.DataFrame(
        {
            C.SKU: np.repeat(["A", "B", "C"], 3),
            C.WAREHOUSE_ID: "W1",
            C.ORIGIN_DATE: D,
            C.HORIZON: h,
            C.P50: [4.0, 4.0, 4.0, 1.0, 2.0, 1.0, 1.0, 1.0, 1.0],
        }
    )
    recs = pd.DataFrame({C.SKU: ["A", "B"], C.WAREHOUSE_ID: "W1", LEAD_TIME: 2, REORDER_POINT: [8.0, 2.0]})
    return state, forecasts, recs


def test_projected_on_hand_data_by_hand() -> None:
    """A: 10 - 4 = 6, 6 + 5 - 4 = 7, 7 - 4 = 3. B: 0 + 3 - 1 = 2, 2 - 2 = 0, 0 - 1 = -1. C: not replayed."""
    state, forecasts, recs = projection_case()
    frame = charts.projected_on_hand_data(state, forecasts, recs, D)
    assert list(frame.columns) == list(charts.PROJECTION_COLUMNS)
    by_sku = {sku: rows for sku, rows in frame.groupby(C.SKU)}
    assert by_sku["A"][charts.PROJECTED_ON_HAND].tolist() == [6.0, 7.0, 3.0]
    assert by_sku["B"][charts.PROJECTED_ON_HAND].tolist() == [2.0, 0.0, -1.0]
    assert by_sku["A"][charts.ARRIVING].tolist() == [0.0, 5.0, 0.0]
    assert by_sku["A"][C.DATE].tolist() == [D + pd.Timedelta(days=k) for k in (1, 2, 3)]
    assert by_sku["B"][REORDER_POINT].tolist() == [2.0] * 3
    assert by_sku["C"][charts.PROJECTED_ON_HAND].isna().all() and by_sku["C"][REORDER_POINT].isna().all()
    with pytest.raises(ValueError, match="not on the origin"):
        charts.projected_on_hand_data(state, forecasts, recs, D + pd.Timedelta(days=1))


def test_most_at_risk_and_the_projected_on_hand_figure() -> None:
    """Within L = 2: A's lowest is 6 against a reorder point of 8 (gap 2 x price 10 = 20), B's 0 against
    2 (gap 2 x price 1 = 2)."""
    state, forecasts, recs = projection_case()
    frame = charts.projected_on_hand_data(state, forecasts, recs, D)
    prices = pd.Series({"A": 10.0, "B": 1.0})
    assert charts.most_at_risk(frame, prices, 5)[C.SKU].tolist() == ["A", "B"]
    assert charts.most_at_risk(frame, pd.Series({"A": 0.1, "B": 1.0}), 1)[C.SKU].tolist() == ["B"]
    chosen = frame.loc[frame[C.SKU].isin(["A", "B"])]
    fig = charts.projected_on_hand_figure(chosen)
    for panel, sku in enumerate(["A", "B"]):
        rows = chosen.loc[chosen[C.SKU] == sku]
        drawn = lines(fig, panel)
        np.testing.assert_array_equal(ydata(drawn["projected on hand"]), rows[charts.PROJECTED_ON_HAND])
        np.testing.assert_array_equal(ydata(drawn["reorder point"]), rows[REORDER_POINT])
        (arrivals,) = fig.axes[panel].collections
        np.testing.assert_array_equal(
            np.asarray(arrivals.get_offsets())[:, 1],
            rows.loc[rows[charts.ARRIVING] > 0, charts.PROJECTED_ON_HAND],
        )


# --- WMAPE by tier over origins, service vs inventory ---------------------------------------------------------
def test_wmape_by_tier_data_and_figure() -> None:
    table = pd.DataFrame(
        {
            C.ORIGIN_DATE: pd.to_datetime(["2024-01-02", "2024-01-01", "2024-01-01", "2024-01-02"]),
            C.TIER: [1, 1, 2, 2],
            WMAPE: [0.2, 0.1, 0.3, np.nan],
        }
    )
    frame = wmape_by_tier_data({BY_TIER_AND_ORIGIN: table})
    assert frame.to_dict("list") == {
        C.ORIGIN_DATE: list(pd.to_datetime(["2024-01-01", "2024-01-02", "2024-01-01"])),
        C.TIER: [1, 1, 2],
        WMAPE: [0.1, 0.2, 0.3],
    }
    drawn = lines(wmape_by_tier_figure(frame))
    np.testing.assert_allclose(ydata(drawn["tier 1"]), [0.1, 0.2])
    np.testing.assert_allclose(ydata(drawn["tier 2"]), [0.3])


def test_service_vs_inventory_figure_marks_every_row(tmp_path: Path) -> None:
    comparison = pd.DataFrame(
        {
            "policy": ["forecast_p95", "ma28", "forecast_p95", "ma28"],
            "scope": ["tier 1", "tier 1", "overall", "overall"],
            AVG_ON_HAND: [5.0, 3.0, 6.0, 4.0],
            FILL_RATE: [0.99, 0.9, 0.98, 0.92],
            "cycle_service_level": [0.97, 0.8, 0.96, 0.85],
        }
    )
    fig = service_vs_inventory_figure(comparison)
    offsets = [np.asarray(c.get_offsets()) for c in fig.axes[0].collections]
    points = np.vstack([o for o in offsets if len(o)])
    expected = comparison[[AVG_ON_HAND, FILL_RATE]].to_numpy()
    assert sorted(map(tuple, points)) == sorted(map(tuple, expected))
    assert (
        plot_service_vs_inventory(pd.DataFrame(), tmp_path / "s.png").read_bytes().startswith(PNG_SIGNATURE)
    )


# --- markdown ------------------------------------------------------------------------------------------------
def frames() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Eight series, 50 days of Poisson demand, forecasts from every origin from day 20."""
    rng = np.random.default_rng(3)
    n_series, n_days = 8, 50
    dates = pd.date_range("2024-05-01", periods=n_days)
    skus = np.array([f"S{i}" for i in range(n_series)])
    lam = rng.gamma(2.0, 2.0, size=n_series)
    qty = rng.poisson(lam[:, None], size=(n_series, n_days)).astype(np.float64)
    actuals = pd.DataFrame(
        {
            C.SKU: np.repeat(skus, n_days),
            C.WAREHOUSE_ID: "W1",
            C.DATE: np.tile(dates, n_series),
            C.QUANTITY: qty.ravel(),
        }
    )
    origins = dates[20:]
    h = np.arange(1, 31)
    per_series = len(origins) * h.size
    rate = np.repeat(lam, per_series)
    forecasts = pd.DataFrame(
        {
            C.SKU: np.repeat(skus, per_series),
            C.WAREHOUSE_ID: "W1",
            C.ORIGIN_DATE: np.tile(np.repeat(origins, h.size), n_series),
            C.HORIZON: np.tile(h, n_series * len(origins)),
            C.FORECAST: rate,
            C.P50: np.floor(rate),
            C.P90: rate + 1.28 * np.sqrt(rate),
            C.P95: rate + 1.645 * np.sqrt(rate),
            C.TIER: np.repeat(np.arange(n_series) % 3 + 1, per_series),
            C.MODEL: "m",
        }
    )
    forecasts[C.TARGET_DATE] = forecasts[C.ORIGIN_DATE] + pd.to_timedelta(forecasts[C.HORIZON], unit="D")
    products = pd.DataFrame({C.SKU: skus, C.CATEGORY: ["a", "b"] * (n_series // 2)})
    return forecasts, actuals, products


def test_markdown_summary() -> None:
    """Header, separator, overall, three tiers and three horizon bands; percentages formatted."""
    forecasts, actuals, products = frames()
    tables = accuracy_tables(score_forecasts(forecasts, actuals, products, as_of=actuals[C.DATE].max()))
    text = markdown_summary(tables)
    lines_ = text.splitlines()
    assert lines_[0].startswith("| | n | WMAPE | bias")
    assert lines_[1].startswith("|---|")
    assert [line.split("|")[1].strip() for line in lines_[2:]] == [
        "overall",
        "tier 1",
        "tier 2",
        "tier 3",
        "h 1-7",
        "h 8-14",
        "h 15-30",
    ]
    assert all(line.count("|") == lines_[0].count("|") for line in lines_)
    overall_wmape = tables["overall"]["wmape"].iloc[0]
    assert f"{overall_wmape:.1%}" in lines_[2]
    assert lines_[-1].endswith("n/a | n/a |")  # no lead-time / weekly figure for a horizon band
