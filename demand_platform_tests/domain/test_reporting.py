"""Tests of the accuracy report on small hand-checkable frames (no Dagster)."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from demand_platform import accuracy, charts, inventory
from demand_platform import columns as C
from demand_platform import exceptions as exc
from demand_platform.accuracy import BY_TIER, BY_TIER_AND_ORIGIN, LEAD_TIME, OVERALL, TABLE_NAMES
from demand_platform.metrics import BIAS, N_OBS, WMAPE
from demand_platform.reporting import (
    FORECAST_POLICY,
    GROUP,
    GROUP_ALL,
    NOTE_NO_MATURED,
    PLOT_NAMES,
    REPLENISHMENT_COLUMNS,
    REPORT_COLUMNS,
    TABLE,
    AccuracyReportModel,
    build_accuracy_report,
    fan_chart_series,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PRODUCTS = pd.DataFrame({C.SKU: ["A", "B"], C.CATEGORY: ["toys", "garden"]})
FIRST_ORIGIN = pd.Timestamp("2024-01-01")
AS_OF = pd.Timestamp("2024-01-05")


def forecast_frame(
    points: dict[str, float], tiers: dict[str, int], origins: pd.DatetimeIndex, horizons: int
) -> pd.DataFrame:
    """Constant forecasts per SKU in W1 from each origin, horizons 1..n; P90/P95 wide above the point."""
    rows = []
    h = np.arange(1, horizons + 1)
    for sku, point in points.items():
        for origin in origins:
            rows.append(
                pd.DataFrame(
                    {
                        C.SKU: sku,
                        C.WAREHOUSE_ID: "W1",
                        C.ORIGIN_DATE: origin,
                        C.TARGET_DATE: origin + pd.to_timedelta(h, unit="D"),
                        C.HORIZON: h,
                        C.FORECAST: point,
                        C.P50: point,
                        C.P90: 2 * point + 5,
                        C.P95: 3 * point + 10,
                        C.TIER: tiers[sku],
                        C.MODEL: "m",
                        "model_version": "3",  # extra columns are ignored
                        "override_applied": False,
                    }
                )
            )
    return pd.concat(rows, ignore_index=True)


def actual_frame(quantities: dict[str, list[float]], start: pd.Timestamp) -> pd.DataFrame:
    """raw_sales rows of W1 on consecutive days from ``start``."""
    parts = []
    for sku, q in quantities.items():
        qty = np.asarray(q, dtype=np.float64)
        parts.append(
            pd.DataFrame(
                {
                    C.SKU: sku,
                    C.WAREHOUSE_ID: "W1",
                    C.DATE: pd.date_range(start, periods=len(qty), freq="D"),
                    C.QUANTITY: qty,
                    C.REVENUE: qty,
                    C.N_ORDERS: (qty > 0).astype(np.int64),
                }
            )
        )
    return pd.concat(parts, ignore_index=True)


def small_case() -> tuple[pd.DataFrame, pd.DataFrame]:
    """2 SKUs, 3 origins (Jan 1-3), horizons 1-2, actuals Jan 2-5 (every target is due by Jan 5).

    A (tier 1) forecasts 12; actuals 10, 14, 10, 10 on Jan 2-5. Targets: origin 1 -> Jan 2, 3; origin 2 ->
    Jan 3, 4; origin 3 -> Jan 4, 5. Errors |12-10|, |12-14|, |12-14|, |12-10|, |12-10|, |12-10| = 12 over
    actuals 10+14+14+10+10+10 = 68: WMAPE 12/68. B (tier 2) forecasts 3; actuals 4 every day: 6 over 24.
    """
    forecasts = forecast_frame(
        {"A": 12.0, "B": 3.0}, {"A": 1, "B": 2}, pd.date_range(FIRST_ORIGIN, periods=3), 2
    )
    actuals = actual_frame({"A": [10, 14, 10, 10], "B": [4, 4, 4, 4]}, FIRST_ORIGIN + pd.Timedelta(days=1))
    return forecasts, actuals


def rows_of(frame: pd.DataFrame, table: str) -> pd.DataFrame:
    return frame.loc[frame[TABLE] == table].set_index(GROUP)


def test_wmape_by_tier_hand_computed() -> None:
    forecasts, actuals = small_case()
    report = build_accuracy_report(forecasts, actuals, PRODUCTS, AS_OF, "W1")
    frame = report.frame
    AccuracyReportModel.validate(frame)
    assert list(frame.columns) == list(REPORT_COLUMNS)
    assert set(frame[TABLE]) <= set(TABLE_NAMES)
    assert (frame[C.ORIGIN_DATE] == AS_OF).all() and (frame[C.WAREHOUSE_ID] == "W1").all()
    tier = rows_of(frame, BY_TIER)
    assert tier.loc["1", WMAPE] == pytest.approx(12 / 68)
    assert tier.loc["2", WMAPE] == pytest.approx(6 / 24)
    assert tier.loc["2", BIAS] == pytest.approx(-6 / 24)
    assert tier.loc["1", N_OBS] == 6
    overall = rows_of(frame, OVERALL)
    assert list(overall.index) == [GROUP_ALL]
    assert report.wmape == pytest.approx(18 / 92) == overall.loc[GROUP_ALL, WMAPE]
    assert report.bias == pytest.approx((4 - 6) / 92)  # A: +2 four times, -2 twice; B: -1 six times
    by_origin = rows_of(frame, BY_TIER_AND_ORIGIN)
    assert by_origin.loc["2024-01-02|1", WMAPE] == pytest.approx(4 / 24)  # Jan 3, 4: |12-14| + |12-10|
    assert report.n_scored == 12
    # 3 origins cannot fill a 7-day lead time + warm-up: no replay, an explicit note
    assert report.policy.empty and report.notes
    assert report.plots == {}
    recs = report.recommendations
    assert list(recs.columns) == list(REPLENISHMENT_COLUMNS)
    assert (recs["forecast_origin_date"] == pd.Timestamp("2024-01-03")).all()
    assert (recs[C.ORIGIN_DATE] == AS_OF).all()


def test_future_targets_are_not_scored() -> None:
    """Changing the forecasts with targets after as_of, or the actuals after it, changes no score."""
    _, actuals = small_case()
    forecasts = forecast_frame(
        {"A": 12.0, "B": 3.0}, {"A": 1, "B": 2}, pd.date_range(FIRST_ORIGIN, periods=3), 10
    )
    base = build_accuracy_report(forecasts, actuals, PRODUCTS, AS_OF, "W1")
    future = (forecasts[C.TARGET_DATE] > AS_OF).to_numpy()
    changed = forecasts.assign(**{C.FORECAST: np.where(future, 1000.0, forecasts[C.FORECAST])})
    late = actual_frame({"A": [999.0] * 5, "B": [0.0] * 5}, AS_OF + pd.Timedelta(days=1))
    altered = build_accuracy_report(changed, pd.concat([actuals, late]), PRODUCTS, AS_OF, "W1")
    pd.testing.assert_frame_equal(altered.frame, base.frame)
    assert altered.drift_reasons == base.drift_reasons
    assert altered.n_scored == base.n_scored == 2 * (4 + 3 + 2)  # targets Jan 2-5, 3-5, 4-5 per SKU
    assert base.counts["n_not_due"] == 2 * 3 * 10 - 18


def test_drift_flagged_when_forecasts_are_biased_twice() -> None:
    forecasts = forecast_frame(
        {"A": 20.0, "B": 8.0}, {"A": 1, "B": 2}, pd.date_range(FIRST_ORIGIN, periods=3), 2
    )
    actuals = actual_frame({"A": [10.0] * 4, "B": [4.0] * 4}, FIRST_ORIGIN + pd.Timedelta(days=1))
    report = build_accuracy_report(forecasts, actuals, PRODUCTS, AS_OF, "W1")
    assert report.bias == pytest.approx(1.0)
    assert report.drift
    assert any("overall bias +1.000" in reason for reason in report.drift_reasons)
    assert any(reason.startswith("tier 2 bias") for reason in report.drift_reasons)
    unbiased = forecast_frame(
        {"A": 10.0, "B": 4.0}, {"A": 1, "B": 2}, pd.date_range(FIRST_ORIGIN, periods=3), 2
    )
    assert not build_accuracy_report(unbiased, actuals, PRODUCTS, AS_OF, "W1").drift


def test_feature_drift_adds_reasons() -> None:
    forecasts = forecast_frame(
        {"A": 10.0, "B": 4.0}, {"A": 1, "B": 2}, pd.date_range(FIRST_ORIGIN, periods=3), 2
    )
    actuals = actual_frame({"A": [10.0] * 4, "B": [4.0] * 4}, FIRST_ORIGIN + pd.Timedelta(days=1))
    rng = np.random.default_rng(0)
    ref = pd.DataFrame({"demand_lag_1": rng.normal(10, 1, 500), "price": rng.normal(5, 1, 500)})
    now = ref.assign(demand_lag_1=rng.normal(20, 1, 500))
    report = build_accuracy_report(
        forecasts, actuals, PRODUCTS, AS_OF, "W1", features_now=now, features_ref=ref
    )
    assert report.feature_drift is not None
    assert report.feature_drift.set_index("feature").loc["demand_lag_1", "flagged"]
    assert report.drift_reasons == [r for r in report.drift_reasons if r.startswith("feature demand_lag_1")]
    assert report.drift


def test_no_matured_forecasts() -> None:
    """Forecasts made on the report day: nothing due, empty typed frame, no drift, a note."""
    forecasts = forecast_frame({"A": 12.0, "B": 3.0}, {"A": 1, "B": 2}, pd.DatetimeIndex([AS_OF]), 7)
    actuals = actual_frame({"A": [10.0] * 5, "B": [4.0] * 5}, FIRST_ORIGIN)
    for fc in (forecasts, forecasts.iloc[:0]):
        report = build_accuracy_report(fc, actuals, PRODUCTS, AS_OF, "W1")
        assert report.frame.empty and list(report.frame.columns) == list(REPORT_COLUMNS)
        AccuracyReportModel.validate(report.frame)
        assert report.drift_reasons == [] and not report.drift
        assert NOTE_NO_MATURED in report.notes and NOTE_NO_MATURED in report.summary_md
        assert report.n_scored == 0 and np.isnan(report.wmape)
        assert report.policy.empty
    # the latest origin still gives recommendations
    assert len(build_accuracy_report(forecasts, actuals, PRODUCTS, AS_OF, "W1").recommendations) == 2


def test_many_origins_replay_and_plots(tmp_path: Path) -> None:
    """40 daily origins: the replay runs (forecast vs MA28), plots are PNG files under out_dir."""
    origins = pd.date_range("2024-02-01", periods=40)
    forecasts = forecast_frame({"A": 10.0, "B": 4.0}, {"A": 1, "B": 2}, origins, 30)
    rng = np.random.default_rng(1)
    actuals = actual_frame(
        {"A": rng.poisson(10, 70).tolist(), "B": rng.poisson(4, 70).tolist()}, pd.Timestamp("2024-01-05")
    )
    as_of = origins[-1]
    report = build_accuracy_report(forecasts, actuals, PRODUCTS, as_of, "W1", lead_time=3, out_dir=tmp_path)
    AccuracyReportModel.validate(report.frame)
    assert len(rows_of(report.frame, BY_TIER_AND_ORIGIN)) == 2 * 39  # every origin but the last matured
    assert GROUP_ALL in rows_of(report.frame, LEAD_TIME).index
    assert set(report.policy[inventory.POLICY]) == {
        "forecast_p90",
        FORECAST_POLICY,
        inventory.POLICY_LEAD_TIME,
        inventory.POLICY_MA,
    }
    assert 0.0 <= report.policy_metric(FORECAST_POLICY, inventory.CYCLE_SERVICE_LEVEL) <= 1.0
    assert "| ma28 | overall |" in report.summary_md
    assert tuple(report.plots) == PLOT_NAMES and tuple(report.chart_data) == PLOT_NAMES
    for path in report.plots.values():
        assert path.parent == tmp_path and path.read_bytes().startswith(PNG_SIGNATURE)
    recs = report.recommendations
    assert len(recs) == 2 and (recs[inventory.LEAD_TIME] == 3).all()
    a = recs.set_index(C.SKU).loc["A"]
    assert a[inventory.EXPECTED_LEAD_TIME_DEMAND] == pytest.approx(30.0)  # 3 days x 10
    assert a[inventory.SAFETY_STOCK] == pytest.approx(3 * (40.0 - 10.0))  # sum of P95 - P50 over 3 days


def test_other_warehouses_and_single_origin() -> None:
    forecasts, actuals = small_case()
    single = forecasts.loc[forecasts[C.ORIGIN_DATE] == FIRST_ORIGIN]
    other = single.assign(**{C.WAREHOUSE_ID: "W2", C.FORECAST: 1000.0})
    report = build_accuracy_report(pd.concat([single, other]), actuals, PRODUCTS, AS_OF, "W1")
    tier = rows_of(report.frame, BY_TIER)
    assert tier.loc["1", WMAPE] == pytest.approx(4 / 24)  # Jan 2, 3: |12-10| + |12-14|
    assert report.n_scored == 4


# --- the vectorised report against a plain pandas reference -------------------------------------------------
def messy_case(seed: int = 7) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.Timestamp]:
    """40 SKUs of W1 (and a few of W2), 45 daily origins x 30 horizons, with the cases the scoring rules
    name: NaN forecasts and quantiles, missing raw_sales rows (zero-filled), a day without any row
    (uncovered), returns, an SKU without a category, two models for some SKUs, origins after as_of."""
    rng = np.random.default_rng(seed)
    skus = [f"S{i:02d}" for i in range(40)]
    origins = pd.date_range("2024-03-01", periods=45)
    h = np.arange(1, 31)
    level = dict(zip(skus, rng.gamma(1.0, 4.0, len(skus)), strict=True))
    parts = []
    for i, sku in enumerate(skus):
        n = len(origins) * h.size
        point = level[sku] * rng.lognormal(0.0, 0.5, n)
        frame = pd.DataFrame(
            {
                C.SKU: sku,
                C.WAREHOUSE_ID: "W1",
                C.ORIGIN_DATE: np.repeat(origins, h.size),
                C.HORIZON: np.tile(h, len(origins)),
                C.FORECAST: point,
                C.P50: 0.8 * point,
                C.P90: point + 2.0 * np.sqrt(point),
                C.P95: point + 3.0 * np.sqrt(point),
                C.TIER: 1 + i % 3,
                C.MODEL: ["lgbm", "ensemble", "croston"][i % 3],
            }
        )
        parts.append(frame)
        if i % 7 == 0:  # a second model scored on the same SKU-days
            parts.append(frame.assign(**{C.MODEL: "seasonal_naive", C.FORECAST: frame[C.FORECAST] * 1.3}))
    forecasts = pd.concat(parts, ignore_index=True)
    forecasts[C.TARGET_DATE] = forecasts[C.ORIGIN_DATE] + pd.to_timedelta(forecasts[C.HORIZON], unit="D")
    forecasts.loc[rng.random(len(forecasts)) < 0.02, C.P90] = np.nan
    forecasts.loc[rng.random(len(forecasts)) < 0.01, C.FORECAST] = np.nan
    other = forecasts.iloc[:500].assign(**{C.WAREHOUSE_ID: "W2", C.FORECAST: 1e6})
    forecasts = pd.concat([forecasts, other], ignore_index=True)

    days = pd.date_range(origins[0] - pd.Timedelta(days=27), origins[-1] + pd.Timedelta(days=30))
    actuals = pd.DataFrame(
        {
            C.SKU: np.repeat(skus, len(days)),
            C.WAREHOUSE_ID: "W1",
            C.DATE: np.tile(days, len(skus)),
            C.QUANTITY: rng.poisson(np.repeat([level[s] for s in skus], len(days))).astype(np.float64),
        }
    )
    actuals.loc[rng.random(len(actuals)) < 0.03, C.QUANTITY] = -2.0  # returns
    actuals = actuals.loc[rng.random(len(actuals)) > 0.05]  # missing rows: zero-filled when covered
    as_of = origins[-1] - pd.Timedelta(days=4)
    actuals = actuals.loc[actuals[C.DATE] != as_of - pd.Timedelta(days=6)]  # an uncovered day
    products = pd.DataFrame(
        {C.SKU: skus[1:], C.CATEGORY: [["toys", "garden", "food"][i % 3] for i in range(39)]}
    )
    return forecasts, actuals.reset_index(drop=True), products, as_of


def reference_rows(
    forecasts: pd.DataFrame,
    actuals: pd.DataFrame,
    products: pd.DataFrame,
    as_of: pd.Timestamp,
    lead_time: int,
) -> dict[tuple[str, str], dict[str, float]]:
    """The report's accuracy rows computed the plain way: a merge, Python functions per group."""
    fc = forecasts.loc[(forecasts[C.WAREHOUSE_ID] == "W1") & (forecasts[C.ORIGIN_DATE] <= as_of)]
    fc = fc.loc[fc[C.TARGET_DATE] <= as_of]
    act = actuals.loc[(actuals[C.WAREHOUSE_ID] == "W1") & (actuals[C.DATE] <= as_of)]
    covered = set(act[C.DATE])
    rows = fc.merge(
        act[[C.SKU, C.DATE, C.QUANTITY]].rename(columns={C.DATE: C.TARGET_DATE}),
        on=[C.SKU, C.TARGET_DATE],
        how="left",
    )
    rows = rows.loc[rows[C.TARGET_DATE].isin(covered)].copy()
    rows["actual"] = rows[C.QUANTITY].clip(lower=0).fillna(0.0)
    rows = rows.merge(products, on=C.SKU, how="left")
    rows["band"] = [
        next((f"{lo}-{hi}" for lo, hi in ((1, 7), (8, 14), (15, 30)) if lo <= x <= hi))
        for x in rows[C.HORIZON]
    ]

    def metrics(g: pd.DataFrame) -> dict[str, float]:
        p = g.loc[g[C.FORECAST].notna()]
        e = p[C.FORECAST] - p["actual"]
        out = {
            WMAPE: e.abs().sum() / p["actual"].abs().sum(),
            "mae": e.abs().mean(),
            "rmse": float(np.sqrt((e**2).mean())),
            BIAS: e.sum() / p["actual"].sum(),
            N_OBS: float(len(p)),
        }
        for q in ("p90", "p95"):
            known = g.loc[g[q].notna()]
            out[f"coverage_{q}"] = float((known["actual"] <= known[q]).mean())
        return out

    def totals_metrics(t: pd.DataFrame) -> dict[str, float]:
        e = t["f"] - t["a"]
        return {
            WMAPE: e.abs().sum() / t["a"].abs().sum(),
            "mae": e.abs().mean(),
            "rmse": float(np.sqrt((e**2).mean())),
            BIAS: e.sum() / t["a"].sum(),
            N_OBS: float(len(t)),
        }

    expected: dict[tuple[str, str], dict[str, float]] = {("overall", "all"): metrics(rows)}
    for table, key in (
        ("tier", C.TIER),
        ("category", C.CATEGORY),
        ("horizon_band", "band"),
        ("model", C.MODEL),
    ):
        for value, g in rows.groupby(rows[key].fillna("unknown").astype(str)):
            expected[(table, value)] = metrics(g)
    for (origin, tier), g in rows.groupby([C.ORIGIN_DATE, C.TIER]):
        expected[("tier_by_origin", f"{origin.date().isoformat()}|{tier}")] = metrics(g)
    keys = [C.SKU, C.ORIGIN_DATE, C.MODEL, C.TIER]
    window = rows.loc[rows[C.HORIZON] <= lead_time]
    lt = (
        window.groupby(keys)
        .agg(f=(C.FORECAST, "sum"), a=("actual", "sum"), n=("actual", "size"))
        .reset_index()
    )
    lt = lt.loc[lt["n"] == lead_time]
    week = rows[C.TARGET_DATE] - pd.to_timedelta(rows[C.TARGET_DATE].dt.dayofweek, unit="D")
    wk = (
        rows.assign(week=week)
        .groupby([*keys, "week"])
        .agg(f=(C.FORECAST, "sum"), a=("actual", "sum"), n=("actual", "size"))
    )
    wk = wk.loc[wk["n"] == 7].reset_index()
    for table, totals in (("lead_time", lt), ("weekly", wk)):
        expected[(table, "all")] = totals_metrics(totals)
        for tier, t in totals.groupby(C.TIER):
            expected[(table, str(tier))] = totals_metrics(t)
    return expected


def test_report_matches_a_plain_pandas_reference() -> None:
    forecasts, actuals, products, as_of = messy_case()
    report = build_accuracy_report(forecasts, actuals, products, as_of, "W1", lead_time=5)
    expected = reference_rows(forecasts, actuals, products, as_of, lead_time=5)
    got = report.frame.set_index([TABLE, GROUP])
    assert set(got.index) == set(expected)
    for key, values in expected.items():
        for column, value in values.items():
            assert got.loc[key, column] == pytest.approx(value, rel=1e-9, nan_ok=True), (key, column)
    assert report.counts["n_zero_filled"] > 0 and report.counts["n_uncovered"] > 0
    assert ("category", "unknown") in expected  # the SKU without a category is its own group


def test_report_is_the_same_with_categorical_keys() -> None:
    """The asset reads the string keys as categoricals (categories unsorted, some unused): same report."""
    forecasts, actuals, products, as_of = messy_case(seed=11)
    plain = build_accuracy_report(forecasts, actuals, products, as_of, "W1")
    keyed = forecasts.copy()
    for column in (C.SKU, C.WAREHOUSE_ID, C.MODEL):
        values = keyed[column].astype(str)
        categories = [*sorted(values.unique(), reverse=True), "zz_unused"]
        keyed[column] = pd.Categorical(values, categories=categories)
    keyed[C.HORIZON] = keyed[C.HORIZON].astype(np.int16)
    keyed[C.TIER] = keyed[C.TIER].astype(np.int16)
    fast = build_accuracy_report(keyed, actuals, products, as_of, "W1")
    pd.testing.assert_frame_equal(fast.frame, plain.frame, rtol=1e-12)
    pd.testing.assert_frame_equal(fast.policy, plain.policy, rtol=1e-12)
    pd.testing.assert_frame_equal(fast.recommendations, plain.recommendations, rtol=1e-12)
    assert fast.summary_md == plain.summary_md


# --- exceptions ----------------------------------------------------------------------------------------------------
EXC_DAY = pd.Timestamp("2024-03-20")


def test_stockout_exceptions_within_the_lead_time() -> None:
    """A goes below zero on day 2 of its 3-day lead time (-4 at the lowest); B only after its lead time."""
    rows = []
    for sku, projected in (("A", [1.0, -2.0, -4.0, -9.0]), ("B", [5.0, 1.0, 0.0, -3.0])):
        for h, value in enumerate(projected, start=1):
            rows.append(
                {
                    C.SKU: sku,
                    C.WAREHOUSE_ID: "W1",
                    C.DATE: EXC_DAY + pd.Timedelta(days=h),
                    C.HORIZON: h,
                    inventory.LEAD_TIME: 3.0,
                    charts.ON_HAND_START: 6.0,
                    charts.ARRIVING: 0.0,
                    C.P50: 1.0,
                    charts.PROJECTED_ON_HAND: value,
                    inventory.REORDER_POINT: 5.0,
                }
            )
    found = exc.stockout_exceptions(pd.DataFrame(rows))
    assert found[C.SKU].tolist() == ["A"] and found[exc.EXCEPTION].tolist() == [exc.KIND_STOCKOUT]
    assert found[exc.UNITS_AT_RISK].tolist() == [4.0]
    assert "below zero on 2024-03-22 (day 2 of a 3-day lead time)" in found[exc.REASON].iloc[0]


def test_bias_exceptions_over_the_recent_origins() -> None:
    """Origins D-19..D-1, horizons 1-2, actual 10 (A), 4 (B), 0 (C). A forecasts 13 in the last 14 origins
    (+30%, +3 a day: 90 units over 30 days) and 100 before them (not counted); B is unbiased; C forecasts
    0.5 and sold nothing (15 units)."""
    origins = pd.date_range(EXC_DAY - pd.Timedelta(days=19), EXC_DAY - pd.Timedelta(days=1))
    old = origins < EXC_DAY - pd.Timedelta(days=exc.BIAS_ORIGINS - 1)
    parts = [
        forecast_frame({"A": 100.0}, {"A": 1}, origins[old], 2),
        forecast_frame({"A": 13.0, "B": 4.0, "C": 0.5}, {"A": 1, "B": 2, "C": 3}, origins[~old], 2),
    ]
    forecasts = pd.concat(parts, ignore_index=True)
    days = len(origins) + 2
    actuals = actual_frame({"A": [10.0] * days, "B": [4.0] * days, "C": [0.0] * days}, origins[0])
    scored = accuracy.score_forecasts(forecasts, actuals, PRODUCTS, EXC_DAY)
    found = exc.bias_exceptions(scored, EXC_DAY, "W1").set_index(C.SKU)
    assert sorted(found.index) == ["A", "C"]
    assert found.loc["A", exc.UNITS_AT_RISK] == pytest.approx(90.0)
    assert found.loc["C", exc.UNITS_AT_RISK] == pytest.approx(15.0)
    assert str(found.loc["A", exc.REASON]).startswith("forecast +30% vs actual")
    assert "none sold" in str(found.loc["C", exc.REASON])
    assert exc.bias_exceptions(scored, EXC_DAY, "W2").empty  # another warehouse's report


def test_jump_exceptions_since_yesterday() -> None:
    """30-day totals D-1 -> D: A 30 -> 60 (+100%, 30 units: flagged), B 100 -> 110 (+10%), C 2 -> 6 (+200%
    but 4 units); D is new at D (not compared)."""
    yesterday, today = EXC_DAY - pd.Timedelta(days=1), EXC_DAY
    forecasts = pd.concat(
        [
            forecast_frame(
                {"A": 1.0, "B": 100 / 30, "C": 2 / 30},
                {"A": 1, "B": 1, "C": 3},
                pd.DatetimeIndex([yesterday]),
                30,
            ),
            forecast_frame(
                {"A": 2.0, "B": 110 / 30, "C": 6 / 30, "D": 9.0},
                {"A": 1, "B": 1, "C": 3, "D": 1},
                pd.DatetimeIndex([today]),
                30,
            ),
        ],
        ignore_index=True,
    )
    found = exc.jump_exceptions(forecasts, EXC_DAY)
    assert found[C.SKU].tolist() == ["A"]
    assert found[exc.UNITS_AT_RISK].tolist() == pytest.approx([30.0])
    assert found[exc.REASON].iloc[0] == "30-day forecast 30 -> 60 units since yesterday's origin (+100%)"


def overridden_rows() -> pd.DataFrame:
    """Origin D rows: A's horizons 1-3 doubled by ann (2 -> 4), B's horizons 1-30 by bob (+1)."""
    frames = []
    for sku, author, reason, horizons, adjusted, unadjusted in (
        ("A", "ann", "fair", 3, 4.0, 2.0),
        ("B", "bob", None, 30, 3.0, 2.0),
    ):
        h = np.arange(1, horizons + 1)
        frames.append(
            pd.DataFrame(
                {
                    C.SKU: sku,
                    C.WAREHOUSE_ID: "W1",
                    C.ORIGIN_DATE: EXC_DAY,
                    C.TARGET_DATE: EXC_DAY + pd.to_timedelta(h, unit="D"),
                    C.HORIZON: h,
                    C.FORECAST: adjusted,
                    "forecast_unadjusted": unadjusted,
                    "override_applied": True,
                    "override_author": author,
                    "override_reason": reason,
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def test_override_expiry_exceptions() -> None:
    """ann's override of A ends on D+3 (within 7 days): +2 a day over the 27 horizon days after it = 54
    units. bob's override of B ends on D+30 (not expiring); a W2 override ending D+2 does not apply."""
    overrides = pd.DataFrame(
        {
            C.SKU: ["A", "B", None],
            C.WAREHOUSE_ID: ["W1", None, "W2"],
            C.START_DATE: [EXC_DAY - pd.Timedelta(days=5)] * 3,
            C.END_DATE: [EXC_DAY + pd.Timedelta(days=k) for k in (3, 30, 2)],
            "multiplier": [2.0, np.nan, 1.5],
            "absolute_value": [np.nan, 3.0, np.nan],
            "author": ["ann", "bob", "cy"],
            "reason": ["fair", None, "x"],
        }
    )
    found = exc.override_expiry_exceptions(overridden_rows(), overrides, EXC_DAY, "W1")
    assert found[C.SKU].tolist() == ["A"] and found[exc.UNITS_AT_RISK].tolist() == pytest.approx([54.0])
    assert found[exc.REASON].iloc[0].startswith("override by ann (x2, fair) ends 2024-03-23, in 3 days")
    assert exc.override_expiry_exceptions(overridden_rows(), None, EXC_DAY, "W1").empty


def test_exceptions_are_ranked_by_money_at_risk() -> None:
    """Money = units x price: A's 10 units at 3.0 (30) rank before B's 20 at 1.0 (20); C has no price and
    ranks last whatever its units."""
    kinds = [
        pd.DataFrame(
            {
                C.SKU: ["B", "C"],
                exc.EXCEPTION: exc.KIND_BIAS,
                exc.UNITS_AT_RISK: [20.0, 500.0],
                exc.REASON: "b",
            }
        ),
        pd.DataFrame(
            {C.SKU: ["A"], exc.EXCEPTION: exc.KIND_STOCKOUT, exc.UNITS_AT_RISK: [10.0], exc.REASON: "s"}
        ),
    ]
    products = pd.DataFrame({C.SKU: ["A", "B", "C"], C.PRICE: [3.0, 1.0, np.nan]})
    table = exc.rank_exceptions(kinds, products, EXC_DAY, "W1")
    assert list(table.columns) == list(exc.EXCEPTION_COLUMNS)
    assert table[[exc.RANK, C.SKU, exc.EXCEPTION]].values.tolist() == [
        [1, "A", exc.KIND_STOCKOUT],
        [2, "B", exc.KIND_BIAS],
        [3, "C", exc.KIND_BIAS],
    ]
    np.testing.assert_array_equal(table[exc.MONEY_AT_RISK], [30.0, 20.0, np.nan])
    assert (table[C.ORIGIN_DATE] == EXC_DAY).all() and (table[C.WAREHOUSE_ID] == "W1").all()
    text = exc.exceptions_markdown(table, top_n=2).splitlines()
    assert text[2] == "| 1 | A | stockout | 10.0 | 30.00 | s |"
    assert len([line for line in text if line.startswith("| ")]) == 3  # header + 2 rows
    assert "1 more in the `exceptions` table." in text[-1]


def test_fan_chart_series_follow_the_exceptions_then_revenue() -> None:
    """B is the first exception; then by 30-day forecast revenue: C (2 x 10 x 30 = 600) before A (5 x 1 x 30)."""
    at_day = forecast_frame(
        {"A": 5.0, "B": 1.0, "C": 2.0}, {"A": 1, "B": 1, "C": 1}, pd.DatetimeIndex([EXC_DAY]), 30
    )
    ranked = pd.DataFrame({C.SKU: ["B", "Z"]})  # Z is not forecast at D: skipped
    products = pd.DataFrame({C.SKU: ["A", "B", "C"], C.PRICE: [1.0, 1.0, 10.0]})
    chosen = fan_chart_series(at_day, ranked, products, top_n=2)
    assert chosen.to_dict("list") == {C.SKU: ["B", "C"], C.WAREHOUSE_ID: ["W1", "W1"]}
    assert fan_chart_series(at_day, ranked.iloc[:0], products, top_n=5)[C.SKU].tolist() == ["C", "A", "B"]
