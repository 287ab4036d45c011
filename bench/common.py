"""What the benchmark entry points share: the machine, peak memory, peers, the platform's paths, JSON.

* :func:`machine`: CPU, cores, memory, load and versions, for every JSON file.
* :func:`peak_rss_mib`, :func:`reset_peak_rss`, :func:`rss_mib`: the one peak-memory measurement.
* :func:`run_peers`: every peer forecaster on the same history, each forecast clipped at 0.
* :func:`run_and_read`: the platform end to end through Dagster (``run_platform``) and its forecasts.
* :func:`home_inputs`, :func:`source_inputs`, :func:`train_and_forecast`: one warehouse at one origin with
  the domain functions, on what the model assets read (from a home, or built from a source), gated by the
  registry's decision function.
* :func:`write_json`: the result file every entry point writes (``--out``); ``bench.tables`` renders it.
"""

import datetime as dt
import json
import math
import os
import platform
import resource
import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd

from demand_platform import columns as C
from demand_platform.models import statistical as stat
from demand_platform.settings import PlatformSettings

REPO = Path(__file__).resolve().parent.parent

HORIZON = 28

PLATFORM_P50 = "platform p50"
PLATFORM_POINT = "platform point forecast"
SEASONAL_NAIVE = "seasonal naive (7)"
MA28 = "MA28"
AUTO_ETS = "AutoETS"
MLFORECAST = "mlforecast LGBM"
PEERS = (SEASONAL_NAIVE, MA28, "Croston", "SBA", "TSB", AUTO_ETS, MLFORECAST)
ZERO = "zero forecast (reference)"
#: The platform's matrices besides its point forecast and p50 (scored as coverage, not as methods).
QUANTILES = ("p90", "p95")

#: statsforecast's ETS refuses tiny series; series with fewer days since their first sale get MA28.
MIN_ETS_DAYS = 28

LGBM_PARAMS = {"n_estimators": 300, "num_leaves": 63, "learning_rate": 0.05, "n_jobs": 1, "verbose": -1}

VERSIONED = ("dagster", "duckdb", "lightgbm", "statsforecast", "mlforecast", "pandas", "numpy")


# --------------------------------------------------------------------------------------------------
# machine and memory
# --------------------------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    """CPU, cores, memory, load average and package versions of this machine."""
    cpu = "unknown CPU"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    memory_gib = None
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        memory_gib = round(int(meminfo.read_text().split("MemTotal:", 1)[1].split()[0]) / 2**20, 1)
    versions = {}
    for package in VERSIONED:
        try:
            versions[package] = version(package)
        except PackageNotFoundError:
            versions[package] = None
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": memory_gib,
        "system": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "load_average": [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None,
        "versions": versions,
    }


def machine_text(info: dict[str, Any] | None = None) -> str:
    """One line describing :func:`machine`'s figures."""
    info = info or machine()
    load = info.get("load_average") or []
    versions = ", ".join(f"{k} {v}" for k, v in info["versions"].items() if v)
    return (
        f"{info['cpu']}, {info['cores']} cores, {info['memory_gib']} GiB, {info['system']}, "
        f"load {' '.join(f'{x:.2f}' for x in load)}; Python {info['python']}, {versions}"
    )


def _status_mib(field_name: str) -> float | None:
    """A ``/proc/self/status`` memory field in MiB (None where there is no ``/proc``)."""
    status = Path("/proc/self/status")
    if not status.exists():
        return None
    for line in status.read_text().splitlines():
        if line.startswith(f"{field_name}:"):
            return int(line.split()[1]) / 1024
    return None


def rss_mib() -> float:
    """Current resident set size of this process (MiB)."""
    value = _status_mib("VmRSS")
    return float("nan") if value is None else value


def peak_rss_mib() -> float:
    """Peak resident set size of this process (MiB) since it started or since :func:`reset_peak_rss`.

    The kernel's ``VmHWM`` on Linux (which :func:`reset_peak_rss` can lower), ``getrusage`` elsewhere.
    """
    value = _status_mib("VmHWM")
    if value is not None:
        return value
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1024**2 if sys.platform == "darwin" else peak / 1024


def reset_peak_rss() -> bool:
    """Reset the kernel's peak mark to the current RSS, so a phase's own peak can be read; False if not
    supported (then :func:`peak_rss_mib` stays the process peak)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


# --------------------------------------------------------------------------------------------------
# JSON
# --------------------------------------------------------------------------------------------------


def jsonable(value: Any) -> Any:
    """``value`` with numpy scalars and arrays, dates, paths and frames made JSON types; NaN -> None."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return [jsonable(v) for v in value.tolist()]
    if isinstance(value, pd.DataFrame):
        return [jsonable(r) for r in value.to_dict("records")]
    if isinstance(value, np.bool_ | bool):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating | float):
        return None if not math.isfinite(float(value)) else float(value)
    if isinstance(value, dt.date | pd.Timestamp):
        return value.isoformat()
    if isinstance(value, Path):
        return str(value)
    return value


def git_commit() -> str | None:
    """The repository's HEAD commit (None outside a git checkout)."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def command_line(module: str, argv: list[str] | None) -> str:
    """The command that ran an entry point, for the result file."""
    args = argv if argv is not None else sys.argv[1:]
    return " ".join(["python -m", module, *args])


def write_json(
    path: Path | None, benchmark: str, command: str, params: dict[str, Any], results: dict[str, Any]
) -> dict[str, Any]:
    """The result document of one entry point run, written to ``path`` when given.

    Args:
        path: ``--out`` (None: not written).
        benchmark: Which renderer of ``bench.tables`` reads it (``accuracy``, ``sweep``, ``speed``,
            ``dagster_timing``).
        command: The command line.
        params: The options of the run.
        results: The figures.

    Returns:
        The document.
    """
    document = jsonable(
        {
            "benchmark": benchmark,
            "command": command,
            "commit": git_commit(),
            "finished": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "machine": machine(),
            "params": params,
            "results": results,
        }
    )
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(document, indent=2, allow_nan=False) + "\n")
        print(f"written to {path}", flush=True)
    return document


def fmt(value: float | None, digits: int = 3) -> str:
    """A figure for a table ("n/a" when missing)."""
    return "n/a" if value is None or not np.isfinite(value) else f"{value:.{digits}f}"


# --------------------------------------------------------------------------------------------------
# peers
# --------------------------------------------------------------------------------------------------


def trimmed(history: np.ndarray) -> np.ndarray:
    """History with the days before each series' first sale set to NaN (not yet on sale)."""
    selling = np.logical_or.accumulate(history > 0, axis=1)
    selling[~selling.any(axis=1)] = True  # never sold: keep the zeros
    return np.where(selling, history, np.nan)


def long_frame(ids: np.ndarray, history: np.ndarray, dates: pd.DatetimeIndex) -> pd.DataFrame:
    """Long (unique_id, ds, y) frame of the non-NaN history days."""
    rows, cols = np.nonzero(~np.isnan(history))
    return pd.DataFrame({"unique_id": ids[rows], "ds": dates[cols], "y": history[rows, cols]})


def wide_result(
    ids: np.ndarray, frame: pd.DataFrame, column: str, first_target: pd.Timestamp, horizon: int
) -> np.ndarray:
    """[n_series, horizon] matrix from a forecast frame with unique_id, ds and a model column."""
    frame = frame.reset_index() if "unique_id" not in frame.columns else frame
    row = pd.Index(ids).get_indexer(frame["unique_id"])
    col = ((pd.to_datetime(frame["ds"]) - first_target).dt.days).to_numpy()
    keep = (row >= 0) & (col >= 0) & (col < horizon)
    out = np.full((len(ids), horizon), np.nan)
    out[row[keep], col[keep]] = frame[column].to_numpy(dtype=np.float64)[keep]
    return out


def auto_ets(ids: np.ndarray, history: np.ndarray, dates: pd.DatetimeIndex, horizon: int) -> np.ndarray:
    """statsforecast ``AutoETS(season_length=7)``, one process; a series it refuses (statsforecast's "tiny
    datasets") gets statsforecast's 28-day window average, NaN where the series is shorter than that."""
    from statsforecast import StatsForecast
    from statsforecast.models import AutoETS, WindowAverage

    sf = StatsForecast(
        models=[AutoETS(season_length=7)], freq="D", n_jobs=1, fallback_model=WindowAverage(window_size=28)
    )
    out = sf.forecast(h=horizon, df=long_frame(ids, history, dates))
    return wide_result(ids, out, "AutoETS", dates[-1] + pd.Timedelta(days=1), horizon)


def auto_ets_or_ma(
    ids: np.ndarray,
    history: np.ndarray,
    dates: pd.DatetimeIndex,
    horizon: int,
    min_days: int,
    notes: list[str],
) -> np.ndarray:
    """AutoETS on the series with at least ``min_days`` days since their first sale, MA28 on the others
    (statsforecast's ETS refuses tiny series; recently launched SKUs have a few days at the origin)."""
    long_enough = (~np.isnan(history)).sum(axis=1) >= min_days
    out = stat.moving_average(history, horizon, window=28)
    if long_enough.any():
        ets = auto_ets(ids[long_enough], history[long_enough], dates, horizon)
        refused = np.isnan(ets).any(axis=1)
        out[np.flatnonzero(long_enough)[~refused]] = ets[~refused]
        if refused.any():
            notes.append(
                f"{AUTO_ETS}: {int(refused.sum())} series too short for statsforecast's ETS and its 28-day "
                "fallback are forecast by MA28"
            )
    if not long_enough.all():
        notes.append(
            f"{AUTO_ETS}: {int((~long_enough).sum())} series with fewer than {min_days} days since their "
            "first sale are forecast by MA28 (statsforecast's ETS refuses tiny series)"
        )
    return out


def mlforecast_lgbm(
    ids: np.ndarray, history: np.ndarray, dates: pd.DatetimeIndex, horizon: int
) -> np.ndarray:
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
    mlf.fit(long_frame(ids, history, dates))
    out = mlf.predict(h=horizon)
    return wide_result(ids, out, "LGBMRegressor", dates[-1] + pd.Timedelta(days=1), horizon)


@dataclass
class PeerRun:
    """The peers' forecasts ([n_series, horizon], each clipped at 0), seconds and notes."""

    forecasts: dict[str, np.ndarray] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def run_peers(
    ids: np.ndarray,
    history: np.ndarray,
    dates: pd.DatetimeIndex,
    horizon: int = HORIZON,
    ets_min_days: int = MIN_ETS_DAYS,
    peers: tuple[str, ...] = PEERS,
) -> PeerRun:
    """Fit every peer on the history and forecast the ``horizon`` days after its last day.

    Days before a series' first sale are not history (NaN for the repo's kernels, dropped for
    statsforecast and mlforecast). Seasonal naive (7), MA28, Croston, SBA and TSB are the repo's
    vectorised kernels (alpha 0.1); AutoETS is statsforecast's (MA28 for series with fewer than
    ``ets_min_days`` days since their first sale, 0 for none); mlforecast's LightGBM is recursive on lags
    7/14/28, rolling means, day of week and month. A zero forecast is added as a reference (WMAPE rewards
    the median, 0 on intermittent series). Every forecast is clipped at 0.

    Args:
        ids: [n_series] series ids (the peers' ``unique_id``).
        history: [n_series, n_days] daily units up to the origin (zeros before the first sale).
        dates: The history's days.
        horizon: Days forecast.
        ets_min_days: Minimum days since the first sale for AutoETS.
        peers: Which peers to run (a subset of :data:`PEERS`).

    Returns:
        The forecasts, seconds and notes (NaN forecasts are counted in a note).
    """
    unknown = sorted(set(peers) - set(PEERS))
    if unknown:
        raise ValueError(f"unknown peers {unknown}; known: {list(PEERS)}")
    history = trimmed(history)
    run = PeerRun()
    fits: dict[str, Callable[[], np.ndarray]] = {
        SEASONAL_NAIVE: lambda: stat.seasonal_naive(history, horizon, season=7),
        MA28: lambda: stat.moving_average(history, horizon, window=28),
        "Croston": lambda: stat.croston(history, horizon, alpha=0.1),
        "SBA": lambda: stat.croston_sba(history, horizon, alpha=0.1),
        "TSB": lambda: stat.tsb(history, horizon, alpha_d=0.1, alpha_p=0.1),
        AUTO_ETS: lambda: auto_ets_or_ma(ids, history, dates, horizon, ets_min_days, run.notes),
        MLFORECAST: lambda: mlforecast_lgbm(ids, history, dates, horizon),
    }
    chosen = {name: fit for name, fit in fits.items() if name in peers}
    chosen[ZERO] = lambda: np.zeros((len(ids), horizon))
    for name, fit in chosen.items():
        started = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            forecast = np.clip(fit(), 0.0, None)
        run.seconds[name] = time.perf_counter() - started
        run.forecasts[name] = forecast
        bad = int(np.isnan(forecast).any(axis=1).sum())
        if bad:
            run.notes.append(f"{name}: {bad} series with NaN forecasts")
        print(f"  {name}: {run.seconds[name]:.2f} s", flush=True)
    return run


# --------------------------------------------------------------------------------------------------
# the platform through Dagster
# --------------------------------------------------------------------------------------------------

FORECAST_COLUMNS = (
    "sku, warehouse_id, origin_date, target_date, horizon, forecast, p50, p90, p95, tier, model"
)


def read_table(settings: PlatformSettings, sql: str, params: dict[str, object]) -> pd.DataFrame:
    """A query on the platform's DuckDB, read-only; an empty frame when the table does not exist."""
    con = duckdb.connect(str(settings.duckdb_path), read_only=True)
    try:
        return con.execute(sql, params).df()
    except duckdb.CatalogException:
        return pd.DataFrame()
    finally:
        con.close()


def failure_messages(settings: PlatformSettings) -> list[str]:
    """The step failure messages recorded in the home's Dagster instance."""
    import dagster as dg

    instance = dg.DagsterInstance.from_config(str(settings.dagster_home))
    messages = []
    for run in instance.get_runs(filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.FAILURE])):
        for entry in instance.all_logs(run.run_id, of_type=dg.DagsterEventType.STEP_FAILURE):
            event = entry.dagster_event
            error = getattr(event.event_specific_data, "error", None) if event else None
            text = error.message.strip() if error is not None else entry.message
            messages.append(f"run {run.run_id[:8]} ({run.job_name}): {text}")
    return messages


@dataclass
class PlatformRun:
    """The platform's forecasts of one origin, its gate decisions, seconds and failures."""

    seconds: float
    gate: list[dict[str, Any]]
    forecasts: pd.DataFrame
    failed: list[str]


def run_and_read(settings: PlatformSettings, origin: dt.date, horizon: int = HORIZON) -> PlatformRun:
    """Run the platform through ``origin`` (``run_platform``, the CLI's ``run``) and read the forecasts of
    the origin for horizons ``1 .. horizon`` (checked: target - origin == horizon)."""
    from assets.orchestration import run_platform

    started = time.perf_counter()
    report = run_platform(settings, origin, progress=True)
    seconds = time.perf_counter() - started
    print(f"  run_platform: {seconds:.1f} s, {report.runs} runs", flush=True)
    gate = read_table(
        settings,
        "SELECT warehouse_id, promoted, reason FROM trained_models WHERE CAST(origin_date AS DATE) = $d",
        {"d": origin},
    )
    for row in gate.to_dict("records"):
        print(f"  promotion gate {row['warehouse_id']}: {row['reason']}", flush=True)
    if report.failed:
        print(report.render())
        for message in failure_messages(settings):
            print("  " + message.replace("\n", "\n    "))
    fc = read_table(
        settings,
        f"SELECT {FORECAST_COLUMNS} FROM forecasts "
        "WHERE CAST(origin_date AS DATE) = $d AND horizon BETWEEN 1 AND $h",
        {"d": origin, "h": horizon},
    )
    if not fc.empty:
        lag = (pd.to_datetime(fc[C.TARGET_DATE]) - pd.to_datetime(fc[C.ORIGIN_DATE])).dt.days
        if (lag != fc[C.HORIZON]).any():
            raise ValueError("forecasts: target_date - origin_date != horizon on some rows")
    return PlatformRun(seconds, gate.to_dict("records"), fc, list(report.failed))


# --------------------------------------------------------------------------------------------------
# one warehouse at one origin with the domain functions
# --------------------------------------------------------------------------------------------------


@dataclass
class ModelInputs:
    """What the ``trained_models`` and ``forecasts`` assets read for one warehouse at one origin."""

    # raw_sales over TrainConfig.training_history_days (every warehouse's when pooling)
    train_history: pd.DataFrame
    history: pd.DataFrame  # raw_sales over FORECAST_HISTORY_DAYS
    tiers: pd.DataFrame  # tier_assignments of the origin
    tables: Any  # demand_platform.tables.SourceTables


@dataclass
class DomainForecast:
    """One warehouse's forecasts of one origin, the gate's decision and the train + forecast seconds."""

    forecasts: pd.DataFrame
    promoted: bool
    reason: str
    seconds: float


def _source_tables(source_dir: Path) -> Any:
    from demand_platform.source import load_source_tables

    return load_source_tables(source_dir)


def home_inputs(home: Path, source_dir: Path, day: dt.date, warehouse_id: str, config: Any) -> ModelInputs:
    """The model assets' inputs read from a platform home (its DuckDB) and its source."""
    from assets.models import FORECAST_HISTORY_DAYS
    from demand_platform.store import load_history

    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        train_history = load_history(
            con, [warehouse_id], day - dt.timedelta(days=config.training_history_days), day
        )
        history = load_history(con, [warehouse_id], day - dt.timedelta(days=FORECAST_HISTORY_DAYS), day)
        tiers = con.execute(
            "SELECT * FROM tier_assignments WHERE CAST(origin_date AS DATE) = $d AND warehouse_id = $w",
            {"d": day, "w": warehouse_id},
        ).df()
    return ModelInputs(train_history, history, tiers, _source_tables(source_dir))


def home_stored_forecasts(home: Path, day: dt.date, warehouse_id: str) -> pd.DataFrame:
    """The point forecasts a home stored for one warehouse and origin."""
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        return con.execute(
            "SELECT sku, horizon, forecast FROM forecasts "
            "WHERE CAST(origin_date AS DATE) = $d AND warehouse_id = $w",
            {"d": day, "w": warehouse_id},
        ).df()


def source_inputs(
    source_dir: Path, first: dt.date, day: dt.date, warehouse_id: str, config: Any
) -> ModelInputs:
    """The model assets' inputs built from a source without a home: ``raw_sales`` by the ingestion's
    domain function over ``first .. day``, tiers by ``assign_tiers`` at the origin (the fast path of the
    smoke runs; the measured path is the home's)."""
    from assets.models import FORECAST_HISTORY_DAYS
    from demand_platform import ingestion
    from demand_platform.tiering import assign_tiers

    tables = _source_tables(source_dir)
    # With pooling, the training reads every warehouse's rows (it keeps its pool's series among the others).
    pooled = getattr(config, "pool_series", 0) > 0
    own = tables.warehouses[C.WAREHOUSE_ID].astype(str) == warehouse_id
    raw = ingestion.ingest_sales(
        source_dir,
        tables.products,
        tables.warehouses if pooled else tables.warehouses[own],
        first,
        day,
        rejected_products=tables.rejected_products,
    ).raw_sales
    raw[C.DATE] = pd.to_datetime(raw[C.DATE]).astype("datetime64[ns]")

    def since(days: int, rows: pd.DataFrame) -> pd.DataFrame:
        return rows.loc[rows[C.DATE] >= pd.Timestamp(day - dt.timedelta(days=days))].reset_index(drop=True)

    history = since(FORECAST_HISTORY_DAYS, raw.loc[raw[C.WAREHOUSE_ID].astype(str) == warehouse_id])
    tiers = assign_tiers(history, tables.products, day)
    return ModelInputs(since(config.training_history_days, raw), history, tiers, tables)


def train_and_forecast(inputs: ModelInputs, day: dt.date, warehouse_id: str, config: Any) -> DomainForecast:
    """Train one warehouse at ``day``, gate it as the ``trained_models`` asset does for a first model
    (the registry's decision against seasonal naive's validation score, the asset's margin) and forecast
    with it, or with its baseline when the gate refuses it, as the ``forecasts`` asset serves."""
    from demand_platform import registry
    from demand_platform.forecasting import forecast_warehouse, train_warehouse

    args = (inputs.tables, day, warehouse_id, inputs.tiers)
    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = train_warehouse(inputs.train_history, *args, config)
        decision = registry.decide_promotion(
            warehouse_id,
            "candidate",
            registry.CandidateScores.of(model.validation_metrics),
            registry.DEFAULT_PROMOTION_MARGIN,
        )
        forecasts = forecast_warehouse(model, inputs.history, *args, baseline=not decision.promoted)
    return DomainForecast(forecasts, decision.promoted, decision.reason, time.perf_counter() - started)


def same_forecasts(forecasts: pd.DataFrame, stored: pd.DataFrame) -> bool:
    """Whether two forecast frames hold the same point forecasts, row for row (by sku and horizon)."""
    mine = forecasts.sort_values([C.SKU, C.HORIZON])[C.FORECAST].to_numpy()
    theirs = stored.sort_values([C.SKU, C.HORIZON])[C.FORECAST].to_numpy()
    return bool(np.array_equal(mine, theirs))
