"""Tests of the report plots (non-empty PNG files) and of the markdown summary."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from demand_platform import columns as C
from demand_platform.accuracy import accuracy_tables, score_forecasts
from demand_platform.inventory import compare_policies
from demand_platform.plots import (
    markdown_summary,
    plot_forecast_vs_actual,
    plot_service_vs_inventory,
    plot_wmape_by_tier,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


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


def assert_png(path: Path) -> None:
    """The file exists, is a PNG and is not trivially small."""
    assert path.exists()
    data = path.read_bytes()
    assert data.startswith(PNG_SIGNATURE)
    assert len(data) > 2000


def test_plots_write_png_files(tmp_path: Path) -> None:
    """Each plot returns the path of a non-empty PNG (parent directories created)."""
    forecasts, actuals, products = frames()
    scored = score_forecasts(forecasts, actuals, products, as_of=actuals[C.DATE].max())
    tables = accuracy_tables(scored)
    comparison = compare_policies(forecasts, actuals, 3)
    paths = [
        plot_forecast_vs_actual(scored, tmp_path / "report" / "fva.png", top_n=4),
        plot_wmape_by_tier(tables, tmp_path / "report" / "wmape_tier.png"),
        plot_service_vs_inventory(comparison, tmp_path / "report" / "service.png"),
    ]
    assert [p.name for p in paths] == ["fva.png", "wmape_tier.png", "service.png"]
    for path in paths:
        assert_png(path)


def test_plots_without_data_still_write_a_png(tmp_path: Path) -> None:
    """Nothing scored yet: the figures say 'no data' rather than failing."""
    forecasts, actuals, products = frames()
    scored = score_forecasts(forecasts, actuals, products, as_of="2000-01-01")
    tables = accuracy_tables(scored)
    assert_png(plot_forecast_vs_actual(scored, tmp_path / "fva.png"))
    assert_png(plot_wmape_by_tier(tables, tmp_path / "tier.png"))
    assert_png(plot_service_vs_inventory(pd.DataFrame(), tmp_path / "service.png"))


def test_markdown_summary() -> None:
    """Header, separator, overall, three tiers and three horizon bands; percentages formatted."""
    forecasts, actuals, products = frames()
    tables = accuracy_tables(score_forecasts(forecasts, actuals, products, as_of=actuals[C.DATE].max()))
    text = markdown_summary(tables)
    lines = text.splitlines()
    assert lines[0].startswith("| | n | WMAPE | bias")
    assert lines[1].startswith("|---|")
    assert [line.split("|")[1].strip() for line in lines[2:]] == [
        "overall",
        "tier 1",
        "tier 2",
        "tier 3",
        "h 1-7",
        "h 8-14",
        "h 15-30",
    ]
    assert all(line.count("|") == lines[0].count("|") for line in lines)
    overall_wmape = tables["overall"]["wmape"].iloc[0]
    assert f"{overall_wmape:.1%}" in lines[2]
    assert lines[-1].endswith("n/a | n/a |")  # no lead-time / weekly figure for a horizon band


@pytest.mark.parametrize("top_n", [1, 20])
def test_forecast_plot_top_n_bounds(tmp_path: Path, top_n: int) -> None:
    """Asking for more series than exist draws them all; one series works too."""
    forecasts, actuals, products = frames()
    scored = score_forecasts(forecasts, actuals, products, as_of=actuals[C.DATE].max())
    assert_png(plot_forecast_vs_actual(scored.frame, tmp_path / f"fva_{top_n}.png", top_n=top_n))
