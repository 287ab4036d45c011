"""Shared pieces of the real-data benchmarks: the peer forecasters and reporting helpers.

Used by ``bench_m5.py``, ``bench_online_retail.py`` and ``bench_synthetic.py`` (run as scripts from this folder's parent:
``python bench/bench_m5.py ...``, so this module is importable as ``peers``).
"""

import datetime as dt
import os
import platform
import time
import warnings
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from assets.models import FORECAST_HISTORY_DAYS, TrainingConfig
from demand_platform import columns as C
from demand_platform.forecasting import TrainConfig, forecast_warehouse, gate_scores, train_warehouse
from demand_platform.registry import beats_reference
from demand_platform.settings import PlatformSettings
from demand_platform.source import load_table
from demand_platform.store import load_history

HORIZON = 28

PLATFORM_P50 = "platform p50"

PLATFORM_POINT = "platform point forecast"

PEERS = ("seasonal naive (7)", "MA28", "Croston", "SBA", "TSB", "AutoETS", "mlforecast LGBM")

ZERO = "zero forecast (reference)"

#: Source tables the model assets read.
MODEL_TABLES = (C.PRODUCTS, C.WAREHOUSES, C.CALENDAR, C.MARKETING_CAMPAIGNS, C.WEATHER)

LGBM_PARAMS = {"n_estimators": 300, "num_leaves": 63, "learning_rate": 0.05, "n_jobs": 1, "verbose": -1}


def failure_messages(settings: PlatformSettings) -> list[str]:
    """The step and run failure messages recorded in the home's Dagster instance."""
    import dagster as dg

    instance = dg.DagsterInstance.from_config(str(settings.dagster_home))
    messages = []
    for run in instance.get_runs(filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.FAILURE])):
        for entry in instance.all_logs(run.run_id, of_type=dg.DagsterEventType.STEP_FAILURE):
            event = entry.dagster_event
            error = getattr(event.event_specific_data, "error", None) if event else None
            text = error.message.strip() if error is not None else entry.message
            messages.append(
                f"run {run.run_id[:8]} ({run.job_name}, {run.tags.get('dagster/asset_partition_range_start', '')}): {text}"
            )
    return messages


def read_table(settings: PlatformSettings, sql: str, params: dict[str, object]) -> pd.DataFrame:
    """A query on the platform's DuckDB, read-only; an empty frame when the table does not exist."""
    import duckdb

    con = duckdb.connect(str(settings.duckdb_path), read_only=True)
    try:
        return con.execute(sql, params).df()
    except duckdb.CatalogException:
        return pd.DataFrame()
    finally:
        con.close()


@dataclass
class PlatformRun:
    """What ``run_and_read`` measured: run seconds, the gate rows, the forecasts of the origin, failures."""

    seconds: float
    gate: pd.DataFrame
    forecasts: pd.DataFrame
    failed: list[str]


def run_and_read(
    settings: PlatformSettings, origin: dt.date, horizon: int, indent: str = "  "
) -> PlatformRun:
    """Run the platform through ``origin`` (``run_platform``), print its gate decisions and failures, and
    read the forecasts of the origin for horizons ``1 .. horizon`` (checked: target - origin == horizon)."""
    from assets.orchestration import run_platform

    started = time.perf_counter()
    report = run_platform(settings, origin, progress=True)
    seconds = time.perf_counter() - started
    print(f"{indent}run_platform: {seconds:.1f} s, {report.runs} runs", flush=True)
    gate = read_table(
        settings,
        "SELECT warehouse_id, version, promoted, validation_wmape, reference, reference_wmape, reason, "
        "train_seconds FROM trained_models WHERE CAST(origin_date AS DATE) = $d",
        {"d": origin},
    )
    for row in gate.to_dict("records"):
        print(f"{indent}promotion gate {row['warehouse_id']}: {row['reason']}", flush=True)
    if report.failed:
        print(report.render())
        print("\nFAILED runs; errors recorded in the Dagster instance:")
        for message in failure_messages(settings):
            print("  " + message.replace("\n", "\n    "))
    fc = read_table(
        settings,
        "SELECT sku, warehouse_id, origin_date, target_date, horizon, forecast, p50, p90, p95, tier, model "
        "FROM forecasts WHERE CAST(origin_date AS DATE) = $d AND horizon BETWEEN 1 AND $h",
        {"d": origin, "h": horizon},
    )
    if fc.empty:
        print(f"no forecasts of origin {origin} in {settings.duckdb_path}")
    else:
        lag = (pd.to_datetime(fc["target_date"]) - pd.to_datetime(fc["origin_date"])).dt.days
        if (lag != fc["horizon"]).any():
            raise ValueError("forecasts: target_date - origin_date != horizon on some rows")
    return PlatformRun(seconds=seconds, gate=gate, forecasts=fc, failed=list(report.failed))


def trimmed(history: np.ndarray) -> np.ndarray:
    """History with the days before each series' first sale set to NaN (not yet on sale)."""
    selling = np.logical_or.accumulate(history > 0, axis=1)
    selling[~selling.any(axis=1)] = True  # never sold: keep the zeros
    return np.where(selling, history, np.nan)


def long_frame(items: np.ndarray, history: np.ndarray, dates: pd.DatetimeIndex) -> pd.DataFrame:
    """Long (unique_id, ds, y) frame of the non-NaN history days."""
    rows, cols = np.nonzero(~np.isnan(history))
    return pd.DataFrame({"unique_id": items[rows], "ds": dates[cols], "y": history[rows, cols]})


def wide_result(
    items: np.ndarray, frame: pd.DataFrame, column: str, first_target: pd.Timestamp
) -> np.ndarray:
    """[n_series, h] matrix from a forecast frame with unique_id, ds and a model column."""
    frame = frame.reset_index() if "unique_id" not in frame.columns else frame
    row = pd.Index(items).get_indexer(frame["unique_id"])
    col = ((pd.to_datetime(frame["ds"]) - first_target).dt.days).to_numpy()
    keep = (row >= 0) & (col >= 0) & (col < HORIZON)
    out = np.full((len(items), HORIZON), np.nan)
    out[row[keep], col[keep]] = frame[column].to_numpy(dtype=np.float64)[keep]
    return np.clip(out, 0.0, None)


def auto_ets(items: np.ndarray, history: np.ndarray, dates: pd.DatetimeIndex) -> np.ndarray:
    """statsforecast AutoETS(season_length=7), one process."""
    from statsforecast import StatsForecast
    from statsforecast.models import AutoETS

    sf = StatsForecast(models=[AutoETS(season_length=7)], freq="D", n_jobs=1)
    out = sf.forecast(h=HORIZON, df=long_frame(items, history, dates))
    return wide_result(items, out, "AutoETS", dates[-1] + pd.Timedelta(days=1))


def mlforecast_lgbm(items: np.ndarray, history: np.ndarray, dates: pd.DatetimeIndex) -> np.ndarray:
    """mlforecast global LightGBM on lags and rolling means, recursive over the horizon."""
    import lightgbm
    from mlforecast import MLForecast
    from mlforecast.lag_transforms import RollingMean

    mlf = MLForecast(
        models=[lightgbm.LGBMRegressor(**LGBM_PARAMS)],
        freq="D",
        lags=[7, 14, 28],
        lag_transforms={7: [RollingMean(7), RollingMean(28)], 28: [RollingMean(7), RollingMean(28)]},
        date_features=["dayofweek", "month"],
    )
    mlf.fit(long_frame(items, history, dates))
    out = mlf.predict(h=HORIZON)
    return wide_result(items, out, "LGBMRegressor", dates[-1] + pd.Timedelta(days=1))


def machine() -> str:
    """CPU, cores, memory, load and versions."""
    cpu = "unknown CPU"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = ""
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        kib = int(meminfo.read_text().split("MemTotal:", 1)[1].split()[0])
        mem = f", {kib / 2**20:.0f} GiB"
    load = ", load average {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()) if hasattr(os, "getloadavg") else ""
    versions = ", ".join(
        f"{pkg} {version(pkg)}" for pkg in ("dagster", "duckdb", "lightgbm", "statsforecast", "mlforecast")
    )
    return (
        f"{cpu}, {os.cpu_count()} cores{mem}, {platform.system()} {platform.release()}{load}; "
        f"Python {platform.python_version()}, {versions}"
    )


def fmt(value: float, digits: int = 3) -> str:
    return "n/a" if value is None or not np.isfinite(value) else f"{value:.{digits}f}"


def home_forecasts(
    home: Path, source: Path, day: dt.date, warehouse_id: str, config: TrainConfig
) -> tuple[pd.DataFrame, pd.DataFrame, float, bool]:
    """Train and forecast one warehouse at one origin with the domain functions, on what the
    ``trained_models`` and ``forecasts`` assets read from a home (``raw_sales`` of ``training_history_days``
    to train and ``FORECAST_HISTORY_DAYS`` to forecast, the origin's ``tier_assignments``, the source's
    tables). Returns this run's forecasts, the ones stored in the home, the train + forecast seconds and
    whether the promotion gate passes the model (a home's first model must beat seasonal naive on the
    gate's scores, as in the asset; when it does not, the platform serves the model's baseline, and so
    does this)."""
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        train_history = load_history(
            con, [warehouse_id], day - dt.timedelta(days=config.training_history_days), day
        )
        history = load_history(con, [warehouse_id], day - dt.timedelta(days=FORECAST_HISTORY_DAYS), day)
        params = {"d": day, "w": warehouse_id}
        where = "WHERE CAST(origin_date AS DATE) = $d AND warehouse_id = $w"
        tiers = con.execute(f"SELECT * FROM tier_assignments {where}", params).df()
        stored = con.execute(f"SELECT sku, horizon, forecast FROM forecasts {where}", params).df()
    splits = {name: load_table(source, name) for name in MODEL_TABLES}
    t = {name: split.valid if split is not None else None for name, split in splits.items()}
    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        args = (t[C.PRODUCTS], t[C.WAREHOUSES], t[C.CALENDAR], t[C.MARKETING_CAMPAIGNS], t[C.WEATHER], day)
        model = train_warehouse(train_history, *args, warehouse_id, tiers, config)
        score, naive = gate_scores(model.validation_metrics)
        promoted = beats_reference(score, naive, TrainingConfig().promotion_margin)
        forecasts = forecast_warehouse(model, history, *args, warehouse_id, tiers, baseline=not promoted)
    return forecasts, stored, time.perf_counter() - started, promoted


def assert_same_forecasts(forecasts: pd.DataFrame, stored: pd.DataFrame, label: str) -> None:
    """``--check`` of the settings benchmarks: this run's point forecasts equal the home's, row for row."""
    mine = forecasts.sort_values([C.SKU, C.HORIZON])[C.FORECAST].to_numpy()
    theirs = stored.sort_values([C.SKU, C.HORIZON])[C.FORECAST].to_numpy()
    assert np.array_equal(mine, theirs), f"{label}: forecasts differ from the home's"


def settings_row(
    label: str, scores: dict[str, dict[str, float]], extra: list[str], gate: str, seconds: float
) -> list[str]:
    """One origin's cells of a settings table (see :func:`print_settings_table`); ``extra`` after the best peer."""
    point = scores[PLATFORM_POINT]
    best = min((s["wrmsse"], m) for m, s in scores.items() if m not in (PLATFORM_POINT, PLATFORM_P50, ZERO))
    return [
        label,
        fmt(point["wrmsse"], 4),
        f"{best[1]} {fmt(best[0], 4)}",
        *extra,
        fmt(point["wmape"]),
        fmt(scores[PLATFORM_P50]["wmape"]),
        fmt(point["coverage_p90"]),
        fmt(point["coverage_p95"]),
        gate,
        fmt(seconds, 1),
    ]


def print_settings_table(
    setting: str, extra: list[str], rows: list[list[str]], scores: list[dict[str, dict[str, float]]]
) -> None:
    """Print one setting's per-origin markdown table and every method's mean WRMSSE over the origins."""
    header = [
        "origin",
        "point WRMSSE",
        "best peer WRMSSE",
        *extra,
        "point WMAPE",
        "p50 WMAPE",
        "p90 cov.",
        "p95 cov.",
        "gate",
        "train+forecast s",
    ]
    print(f"\n### TrainConfig {setting}\n")
    print("| " + " | ".join(header) + " |\n|" + " --- |" * len(header))
    print("\n".join("| " + " | ".join(r) + " |" for r in rows))
    wrmsse = [{m: s["wrmsse"] for m, s in origin.items() if m != ZERO} for origin in scores]
    means = pd.DataFrame(wrmsse).mean().sort_values()
    print(f"\nMean WRMSSE over {len(scores)} origins: " + ", ".join(f"{m} {v:.4f}" for m, v in means.items()))
