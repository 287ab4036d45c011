"""Backtest: one LightGBM per warehouse against one LightGBM pooled across warehouses (issue #4, tiers 1-2).

Data: ``generate_source`` writes the platform's synthetic source (``--skus`` x ``--warehouses`` x ``--days``,
``--seed``) under ``--work`` (a temporary directory by default); the small tables are read and validated
with ``demand_platform.source.load_table`` and ``raw_sales`` is built from the transactions by
``demand_platform.ingestion.ingest_sales``, as the platform's ingestion does. The calendar is None (the
platform derives it).

For each test origin D (``--origins`` of them: 30, 60, ... days before the last generated day, so the 30
scored days D+1..D+30 exist), per warehouse, exactly as ``forecasting.train_warehouse`` does at training
date D (default ``TrainConfig``, threads and seed from the command line):

* history cut at D (asserted); tiers by ``assign_tiers`` at D and at the CV origins ``D - 30 k``;
* feature tables (``build_training_features``) at the training origins ``D - origin_step k``
  (k = 1..n_origins) and the CV origins, for the SKUs routed ``global_ml`` at any of them;
* ``TargetDayLookup.build``, ``FeatureKeys.of``, ``DirectTrainingSet.build`` (pairs sampled per band
  with ``config.sampling()``: every positive target, a share of the zeros, at most ``max_rows``).

Models, one booster per horizon band (1-7, 8-14, 15-30) each, trained on the pairs of the SKUs routed
``global_ml`` at D (the row mask of the final model of ``train_warehouse``):

* ``per-warehouse``: ``GlobalLGBM.fit_training_set`` per warehouse (the platform's path);
* ``pooled``: the same sampled pairs of all warehouses concatenated per band (so the same total rows,
  the sum of the per-warehouse samples), design matrices from ``direct_design`` with category lists made
  the union over the warehouses, plus a ``warehouse_id`` categorical feature, same LightGBM parameters;
* ``pooled-cap``: the pooled rows uniformly subsampled to ``max_rows`` per band (the row budget, hence
  about the training cost, of one per-warehouse model).

Predictions at D for horizons 1..30 of each warehouse's ``global_ml`` SKUs come from features built at D
on the history cut at D (``build_features``, panel, lookup and keys as ``forecast_warehouse`` builds them);
they are the raw LightGBM means (no ensemble, cap or override). They are scored against the demand on
D+1..D+30 (clipped at 0, from the sales panel of the uncut history; days without a row are not scored):
WMAPE, RMSE and bias per warehouse and over all warehouses, per origin and over all origins.
Training seconds are the boosting time (``lightgbm.train``, plus ``Dataset.subset`` in the platform path),
median over ``--repeats``; dataset seconds are the design matrices and binning.

Usage:
    python bench/bench_pooling.py
    python bench/bench_pooling.py --warehouses 8 --skus 1000 --out /tmp/pooling_8.md
"""

import argparse
import dataclasses
import datetime as dt
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd
from peers import machine

from demand_platform import columns as C
from demand_platform import ingestion, source
from demand_platform.features import SalesPanel, build_features, build_sales_panel, build_training_features
from demand_platform.forecasting import TrainConfig, _ml_history, _tiers_of, _warehouse_history
from demand_platform.metrics import bias, rmse, wmape
from demand_platform.models.global_lgbm import (
    DirectTrainingSet,
    FeatureKeys,
    GlobalLGBM,
    TargetDayLookup,
    TrainingPairs,
    band_label,
    direct_design,
    sample_training_pairs,
)
from demand_platform.synthetic import GeneratorConfig, generate_source
from demand_platform.tiering import ROUTE, ROUTE_GLOBAL_ML, assign_tiers

PER_WAREHOUSE = "per-warehouse"
POOLED = "pooled"
POOLED_CAP = "pooled-cap"
MODELS = (PER_WAREHOUSE, POOLED, POOLED_CAP)
WAREHOUSE_FEATURE = "warehouse_id_cat"
ALL = "all"
ORIGIN_STEP_DAYS = 30
_NS_PER_DAY = 86_400 * 10**9


def to_day(value: object) -> int:
    """Epoch day of a date-like value."""
    return int(pd.Timestamp(value).normalize().value // _NS_PER_DAY)  # type: ignore[arg-type]


def timestamp(day: int) -> pd.Timestamp:
    """Timestamp of an epoch day."""
    return pd.Timestamp(int(day) * _NS_PER_DAY)


# --- data ---------------------------------------------------------------------------------------------------------------
@dataclasses.dataclass
class Tables:
    """The synthetic source as the platform reads it.

    Attributes:
        raw_sales: ``raw_sales`` rows of every warehouse (the whole generated period).
        products: The ``products`` table.
        warehouses: The ``warehouses`` table.
        campaigns: The ``marketing_campaigns`` table (planned ahead by design, read over the horizon).
        weather: The ``weather`` table.
        warehouse_ids: Sorted warehouse ids.
        last_day: Epoch day of the last generated day.
        seconds: Generation and ingestion seconds.
    """

    raw_sales: pd.DataFrame
    products: pd.DataFrame
    warehouses: pd.DataFrame
    campaigns: pd.DataFrame | None
    weather: pd.DataFrame | None
    warehouse_ids: list[str]
    last_day: int
    seconds: float


def valid_table(path: Path, name: str) -> pd.DataFrame | None:
    """The valid rows of one small source table (None when absent)."""
    split = source.load_table(path, name)
    return None if split is None else split.valid


def load_tables(work: Path, config: GeneratorConfig) -> Tables:
    """Generates the source under ``work`` and reads it as the platform does.

    Args:
        work: Directory for the source.
        config: Generator size and seed.

    Returns:
        The tables.
    """
    began = time.perf_counter()
    path = work / "source"
    generate_source(path, config)
    products = valid_table(path, C.PRODUCTS)
    warehouses = valid_table(path, C.WAREHOUSES)
    assert products is not None and warehouses is not None
    raw = ingestion.ingest_sales(path, products, warehouses, config.start, config.end).raw_sales
    raw[C.DATE] = pd.to_datetime(raw[C.DATE]).astype("datetime64[ns]")
    return Tables(
        raw_sales=raw,
        products=products,
        warehouses=warehouses,
        campaigns=valid_table(path, C.MARKETING_CAMPAIGNS),
        weather=valid_table(path, C.WEATHER),
        warehouse_ids=sorted(warehouses[C.WAREHOUSE_ID].astype(str)),
        last_day=to_day(config.end),
        seconds=time.perf_counter() - began,
    )


def weather_until(weather: pd.DataFrame | None, day: int) -> pd.DataFrame | None:
    """Weather rows dated on or before ``day``."""
    if weather is None:
        return None
    return weather.loc[pd.to_datetime(weather[C.DATE]) <= timestamp(day)]


# --- one warehouse at one origin: the training set of train_warehouse --------------------------------------------------
@dataclasses.dataclass
class WarehouseSet:
    """Training set of one warehouse at one origin, as ``train_warehouse`` builds it.

    Attributes:
        warehouse_id: The warehouse.
        features: Stacked feature tables of the training and CV origins.
        panel: Sales panel (history cut at the origin).
        lookup: Target-day lookup of the feature origins.
        keys: Keys of ``features``.
        training_set: Pairs and datasets of every band (``DirectTrainingSet``).
        train_mask: Feature rows of the SKUs routed ``global_ml`` at the origin or a CV origin.
        final_mask: Feature rows of the SKUs routed ``global_ml`` at the origin.
        ml_skus: SKUs routed ``global_ml`` at the origin.
        seconds: Seconds of ``DirectTrainingSet.build`` (sampling, design matrices, binning).
    """

    warehouse_id: str
    features: pd.DataFrame
    panel: SalesPanel
    lookup: TargetDayLookup
    keys: FeatureKeys
    training_set: DirectTrainingSet
    train_mask: np.ndarray
    final_mask: np.ndarray
    ml_skus: np.ndarray
    seconds: float


def global_ml_skus(tiers: pd.DataFrame) -> np.ndarray:
    """SKUs routed to the global model."""
    return tiers.loc[tiers[ROUTE] == ROUTE_GLOBAL_ML, C.SKU].to_numpy(dtype=object)


def build_warehouse_set(tables: Tables, warehouse_id: str, day: int, config: TrainConfig) -> WarehouseSet:
    """Builds the LightGBM training set of ``train_warehouse(train_date=day)`` for one warehouse.

    Args:
        tables: The source tables.
        warehouse_id: The warehouse.
        day: Epoch day of the origin D (the training date).
        config: Settings.

    Returns:
        The training set; nothing dated after D was read (asserted).
    """
    history = _warehouse_history(tables.raw_sales, warehouse_id, day)
    assert history[C.DATE].max() <= timestamp(day), "history after the origin"
    weather = weather_until(tables.weather, day)
    cv_days = [day - config.effective_cv_step * k for k in range(config.cv_origins, 0, -1)]
    grid = [day - config.origin_step * k for k in range(1, config.n_origins + 1)]
    feature_days = sorted(set(grid) | set(cv_days))

    def tiers_at(at: int) -> pd.DataFrame:
        return _tiers_of(
            assign_tiers(history, tables.products, timestamp(at), config.tier_config), warehouse_id
        )

    ml_sets = [global_ml_skus(tiers_at(at)) for at in [*cv_days, day]]
    ml_union = np.unique(np.concatenate(ml_sets))
    panel = build_sales_panel(
        history,
        end=timestamp(day),
        lookback_days=0,
        warehouse_id=warehouse_id,
        start=timestamp(min(feature_days) - config.history_days),
    )
    assert panel.start_day + panel.n_days - 1 <= day, "panel after the origin"
    origins = [timestamp(at) for at in feature_days]
    features = build_training_features(
        _ml_history(history, ml_union),
        tables.products,
        tables.warehouses,
        None,
        tables.campaigns,
        weather,
        origins,
        warehouse_id,
        horizon=config.horizon,
    )
    lookup = TargetDayLookup.build(
        None, tables.campaigns, tables.warehouses, warehouse_id, origins, config.horizon, panel.skus
    )
    keys = FeatureKeys.of(features, panel, lookup)
    feature_skus = pd.Index(features[C.SKU].to_numpy(dtype=object))
    train_mask = pd.Index(ml_union).get_indexer(feature_skus) >= 0
    began = time.perf_counter()
    training_set = DirectTrainingSet.build(
        features,
        panel,
        lookup,
        timestamp(day),
        config.lgbm_params(),
        config.sampling(),
        config.model_bands,
        row_mask=train_mask,
        keys=keys,
    )
    seconds = time.perf_counter() - began
    return WarehouseSet(
        warehouse_id=warehouse_id,
        features=features,
        panel=panel,
        lookup=lookup,
        keys=keys,
        training_set=training_set,
        train_mask=train_mask,
        final_mask=pd.Index(ml_sets[-1]).get_indexer(feature_skus) >= 0,
        ml_skus=ml_sets[-1],
        seconds=seconds,
    )


def final_pairs(wset: WarehouseSet, band: tuple[int, int], config: TrainConfig) -> TrainingPairs:
    """The band's pairs the final model of ``train_warehouse`` trains on (SKUs routed global_ml at D).

    Args:
        wset: The warehouse's training set.
        band: Horizon band.
        config: Settings (their sampling re-draws the pairs, asserted equal to the training set's).

    Returns:
        The pairs of the training set whose SKU is routed global_ml at D.
    """
    label = band_label(band)
    stored = wset.training_set.pairs[label]
    again = sample_training_pairs(
        wset.keys, wset.panel, wset.training_set.cutoff_day, band, config.sampling(), wset.train_mask
    )
    assert np.array_equal(again.rows, stored.rows) and np.array_equal(again.horizon, stored.horizon)
    keep = wset.final_mask[stored.rows] & (
        wset.training_set.target_day[label] <= wset.training_set.cutoff_day
    )
    return TrainingPairs(
        rows=stored.rows[keep],
        horizon=stored.horizon[keep],
        target=stored.target[keep],
        weight=stored.weight[keep],
        n_candidates=stored.n_candidates,
    )


# --- models ---------------------------------------------------------------------------------------------------------------
@dataclasses.dataclass
class Fitted:
    """Band boosters of one model variant and what they cost.

    Attributes:
        boosters: Booster per band label (a :class:`GlobalLGBM` holds its own for per-warehouse models).
        categories: Category lists of the categorical features.
        rows: Training rows summed over the bands.
        n_boosters: Boosters trained.
        dataset_seconds: Design matrices and binning.
        train_seconds: Boosting (median over the repeats, summed over bands and warehouses).
        warehouse_gain_share: Gain share of the warehouse feature per band (pooled variants only).
    """

    boosters: dict[str, lgb.Booster]
    categories: dict[str, tuple[str, ...]]
    rows: int
    n_boosters: int
    dataset_seconds: float
    train_seconds: float
    warehouse_gain_share: dict[str, float] = dataclasses.field(default_factory=dict)


def fit_per_warehouse(wset: WarehouseSet, config: TrainConfig, repeats: int) -> tuple[GlobalLGBM, float]:
    """The final LightGBM of ``train_warehouse`` (``GlobalLGBM.fit_training_set``), timed.

    Args:
        wset: The warehouse's training set.
        config: Settings.
        repeats: Timed fits.

    Returns:
        The model and the median seconds of a fit.
    """
    seconds = []
    model = GlobalLGBM(config.lgbm_params(), config.sampling(), config.model_bands)
    for _ in range(repeats):
        model = GlobalLGBM(config.lgbm_params(), config.sampling(), config.model_bands)
        began = time.perf_counter()
        model.fit_training_set(
            wset.training_set, timestamp(wset.training_set.cutoff_day), row_mask=wset.final_mask
        )
        seconds.append(time.perf_counter() - began)
    return model, statistics.median(seconds)


def union_categories(wsets: list[WarehouseSet]) -> dict[str, tuple[str, ...]]:
    """Per categorical feature, the sorted union of the warehouses' category lists."""
    names = wsets[0].training_set.categories
    return {
        name: tuple(sorted(set().union(*(w.training_set.categories[name] for w in wsets)))) for name in names
    }


def differing_categories(wsets: list[WarehouseSet]) -> list[str]:
    """Categorical features whose category lists are not identical across the warehouses."""
    first = wsets[0].training_set.categories
    return [name for name in first if any(w.training_set.categories[name] != first[name] for w in wsets)]


def add_warehouse(design: pd.DataFrame, warehouse_id: str, warehouse_ids: tuple[str, ...]) -> pd.DataFrame:
    """The design matrix with the warehouse as a categorical feature (fixed category list)."""
    dtype = pd.CategoricalDtype(list(warehouse_ids))
    design[WAREHOUSE_FEATURE] = pd.Categorical([warehouse_id] * len(design), dtype=dtype)
    return design


def pooled_band_data(
    wsets: list[WarehouseSet],
    band: tuple[int, int],
    config: TrainConfig,
    categories: dict[str, tuple[str, ...]],
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray, float]:
    """The per-warehouse final pairs of one band, concatenated, with the union categories.

    Args:
        wsets: Training sets of the warehouses.
        band: Horizon band.
        config: Settings.
        categories: Union category lists.

    Returns:
        Design matrix, target, weight and the seconds the design matrices took.
    """
    warehouse_ids = tuple(w.warehouse_id for w in wsets)
    designs, targets, weights = [], [], []
    began = time.perf_counter()
    for wset in wsets:
        pairs = final_pairs(wset, band, config)
        design = direct_design(
            wset.features, wset.keys, pairs.rows, pairs.horizon, wset.panel, wset.lookup, categories
        )
        designs.append(add_warehouse(design, wset.warehouse_id, warehouse_ids))
        targets.append(pairs.target)
        weights.append(pairs.weight)
    design = pd.concat(designs, ignore_index=True)
    return design, np.concatenate(targets), np.concatenate(weights), time.perf_counter() - began


def fit_band(
    design: pd.DataFrame, target: np.ndarray, weight: np.ndarray, config: TrainConfig, repeats: int
) -> tuple[lgb.Booster, float, float]:
    """One band booster with the platform's LightGBM parameters.

    Args:
        design: Design matrix.
        target: Targets.
        weight: Row weights (zero-sampling weights).
        config: Settings.
        repeats: Timed trainings.

    Returns:
        The booster, the binning seconds and the median boosting seconds.
    """
    params = config.lgbm_params()
    began = time.perf_counter()
    dataset = lgb.Dataset(
        design, label=target, weight=weight, params=params.booster_params(), free_raw_data=True
    ).construct()
    bin_seconds = time.perf_counter() - began
    seconds = []
    booster = None
    for _ in range(repeats):
        began = time.perf_counter()
        booster = lgb.train(params.booster_params(), dataset, num_boost_round=params.n_estimators)
        seconds.append(time.perf_counter() - began)
    assert booster is not None
    return booster, bin_seconds, statistics.median(seconds)


def gain_share(booster: lgb.Booster, feature: str) -> float:
    """Share of a booster's total gain spent on one feature."""
    gain = booster.feature_importance(importance_type="gain")
    total = gain.sum()
    return float(gain[booster.feature_name().index(feature)] / total) if total > 0 else 0.0


def fit_pooled(wsets: list[WarehouseSet], config: TrainConfig, repeats: int) -> dict[str, Fitted]:
    """The pooled boosters: all warehouses' rows, and the same rows subsampled to ``max_rows``.

    Args:
        wsets: Training sets of the warehouses.
        config: Settings.
        repeats: Timed trainings per booster.

    Returns:
        ``{POOLED: ..., POOLED_CAP: ...}``.
    """
    categories = union_categories(wsets)
    fitted = {name: Fitted({}, categories, 0, 0, 0.0, 0.0) for name in (POOLED, POOLED_CAP)}
    for band in config.model_bands:
        label = band_label(band)
        design, target, weight, design_seconds = pooled_band_data(wsets, band, config, categories)
        rng = np.random.default_rng([config.seed, band[0], band[1], 1])
        cap = np.sort(rng.choice(len(target), size=min(config.max_rows, len(target)), replace=False))
        variants = {
            POOLED: (design, target, weight),
            POOLED_CAP: (design.iloc[cap].reset_index(drop=True), target[cap], weight[cap]),
        }
        for name, (x, y, w) in variants.items():
            booster, bin_seconds, train_seconds = fit_band(x, y, w, config, repeats)
            share = len(y) / len(target)
            item = fitted[name]
            item.boosters[label] = booster
            item.rows += len(y)
            item.n_boosters += 1
            item.dataset_seconds += design_seconds * share + bin_seconds
            item.train_seconds += train_seconds
            item.warehouse_gain_share[label] = gain_share(booster, WAREHOUSE_FEATURE)
    return fitted


# --- forecasts at the origin and actuals ----------------------------------------------------------------------------------
@dataclasses.dataclass
class OriginInputs:
    """Feature rows at the origin of one warehouse's global_ml SKUs, and their actuals.

    Attributes:
        features: Feature table at D (history cut at D).
        panel: Sales panel up to D.
        lookup: Target-day lookup of D.
        keys: Keys of ``features``.
        actual: ``[n, horizon]`` demand on D+1..D+horizon (NaN where no row).
    """

    features: pd.DataFrame
    panel: SalesPanel
    lookup: TargetDayLookup
    keys: FeatureKeys
    actual: np.ndarray


def actuals(tables: Tables, warehouse_id: str, day: int, horizon: int, skus: np.ndarray) -> np.ndarray:
    """Clipped demand of the SKUs on D+1..D+horizon from the sales panel (NaN where no row)."""
    future = _warehouse_history(tables.raw_sales, warehouse_id, day + horizon)
    panel = build_sales_panel(
        future, end=timestamp(day + horizon), lookback_days=horizon - 1, warehouse_id=warehouse_id
    )
    assert panel.start_day == day + 1 and panel.n_days == horizon
    codes = pd.Index(panel.skus).get_indexer(pd.Index(skus))
    out = np.full((len(skus), horizon), np.nan)
    out[codes >= 0] = panel.quantity[codes[codes >= 0]]
    return out


def origin_inputs(
    tables: Tables, warehouse_id: str, day: int, config: TrainConfig, ml_skus: np.ndarray
) -> OriginInputs:
    """What ``forecast_warehouse`` builds for the LightGBM at D (features from history cut at D).

    Args:
        tables: The source tables.
        warehouse_id: The warehouse.
        day: Epoch day of D.
        config: Settings.
        ml_skus: SKUs routed global_ml at D.

    Returns:
        The inputs and the actuals.
    """
    history = _warehouse_history(tables.raw_sales, warehouse_id, day)
    assert history[C.DATE].max() <= timestamp(day), "history after the origin"
    panel = build_sales_panel(
        history, end=timestamp(day), lookback_days=config.history_days - 1, warehouse_id=warehouse_id
    )
    features = build_features(
        _ml_history(history, ml_skus),
        tables.products,
        tables.warehouses,
        None,
        tables.campaigns,
        weather_until(tables.weather, day),
        timestamp(day),
        warehouse_id,
        horizon=config.horizon,
    )
    lookup = TargetDayLookup.build(
        None, tables.campaigns, tables.warehouses, warehouse_id, [timestamp(day)], config.horizon, panel.skus
    )
    keys = FeatureKeys.of(features, panel, lookup)
    skus = features[C.SKU].to_numpy(dtype=object)
    return OriginInputs(
        features, panel, lookup, keys, actuals(tables, warehouse_id, day, config.horizon, skus)
    )


def predict_pooled(
    fitted: Fitted,
    inputs: OriginInputs,
    warehouse_id: str,
    warehouse_ids: tuple[str, ...],
    config: TrainConfig,
) -> np.ndarray:
    """Pooled forecasts ``[n, horizon]`` of one warehouse's rows (as ``GlobalLGBM.predict``, plus the warehouse)."""
    n, horizon = len(inputs.features), config.horizon
    out = np.full((n, horizon), np.nan)
    for band in config.model_bands:
        booster = fitted.boosters.get(band_label(band))
        if booster is None or n == 0:
            continue
        band_h = np.arange(band[0], band[1] + 1)
        design = direct_design(
            inputs.features,
            inputs.keys,
            np.repeat(np.arange(n), len(band_h)),
            np.tile(band_h, n),
            inputs.panel,
            inputs.lookup,
            fitted.categories,
        )
        prediction = booster.predict(
            add_warehouse(design, warehouse_id, warehouse_ids), num_threads=config.num_threads
        )
        out[:, band[0] - 1 : band[1]] = np.maximum(prediction, 0.0).reshape(n, len(band_h))
    return out


# --- scoring and report ---------------------------------------------------------------------------------------------------
@dataclasses.dataclass
class Cell:
    """Actuals and forecasts of one (origin, warehouse).

    Attributes:
        origin: The origin date.
        warehouse_id: The warehouse.
        actual: ``[n, horizon]`` actuals.
        forecasts: Forecasts per model name.
    """

    origin: dt.date
    warehouse_id: str
    actual: np.ndarray
    forecasts: dict[str, np.ndarray]


def score(cells: list[Cell]) -> dict[str, tuple[float, float, float, int]]:
    """WMAPE, RMSE, bias and scored SKU-days per model over the cells (days every model forecast)."""
    actual = np.concatenate([c.actual.reshape(-1) for c in cells])
    forecasts = {m: np.concatenate([c.forecasts[m].reshape(-1) for c in cells]) for m in MODELS}
    ok = ~np.isnan(actual)
    for values in forecasts.values():
        ok &= ~np.isnan(values)
    a = actual[ok]
    return {m: (wmape(a, f[ok]), rmse(a, f[ok]), bias(a, f[ok]), int(ok.sum())) for m, f in forecasts.items()}


def markdown(header: list[str], rows: list[list[str]]) -> list[str]:
    """A markdown table."""
    return [
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---" for _ in header) + "|",
        *("| " + " | ".join(row) + " |" for row in rows),
    ]


def accuracy_row(label: list[str], cells: list[Cell]) -> list[str]:
    """One row of the accuracy table: metrics of the three models and pooled's relative WMAPE change."""
    scores = score(cells)
    base = scores[PER_WAREHOUSE][0]
    cols = [*label, f"{sum(c.actual.shape[0] for c in cells):,}", f"{scores[PER_WAREHOUSE][3]:,}"]
    cols += [f"{scores[m][0]:.4f}" for m in MODELS]
    cols += [f"{100 * (scores[m][0] / base - 1):+.2f}%" for m in (POOLED, POOLED_CAP)]
    cols += [f"{scores[m][1]:.3f}" for m in MODELS]
    cols += [f"{100 * scores[m][2]:+.2f}%" for m in MODELS]
    return cols


def accuracy_lines(cells: list[Cell]) -> list[str]:
    """Accuracy per origin x warehouse, per origin, per warehouse over origins, and overall."""
    header = ["origin", "warehouse", "SKUs", "SKU-days"]
    header += [f"WMAPE {m}" for m in MODELS] + [f"dWMAPE {m}" for m in (POOLED, POOLED_CAP)]
    header += [f"RMSE {m}" for m in MODELS] + [f"bias {m}" for m in MODELS]
    origins = sorted({c.origin for c in cells})
    warehouses = sorted({c.warehouse_id for c in cells})
    rows = []
    for origin in origins:
        for wh in warehouses:
            rows.append(
                accuracy_row(
                    [str(origin), wh], [c for c in cells if (c.origin, c.warehouse_id) == (origin, wh)]
                )
            )
        rows.append(accuracy_row([str(origin), f"**{ALL}**"], [c for c in cells if c.origin == origin]))
    for wh in warehouses:
        rows.append(accuracy_row([ALL, wh], [c for c in cells if c.warehouse_id == wh]))
    rows.append(accuracy_row([f"**{ALL}**", f"**{ALL}**"], cells))
    return markdown(header, rows)


def cost_lines(costs: list[tuple[dt.date, str, Fitted]]) -> list[str]:
    """Training cost per origin and model variant."""
    header = ["origin", "model", "boosters", "training rows", "dataset s", "train s", "warehouse gain share"]
    rows = []
    for origin, name, item in costs:
        share = ", ".join(f"{k}: {v:.3f}" for k, v in item.warehouse_gain_share.items()) or "-"
        rows.append(
            [
                str(origin),
                name,
                str(item.n_boosters),
                f"{item.rows:,}",
                f"{item.dataset_seconds:.1f}",
                f"{item.train_seconds:.1f}",
                share,
            ]
        )
    return markdown(header, rows)


# --- driver ---------------------------------------------------------------------------------------------------------------
def run_origin(
    tables: Tables, day: int, config: TrainConfig, repeats: int
) -> tuple[list[Cell], list[tuple[dt.date, str, Fitted]], list[str]]:
    """Trains the three variants at one origin and forecasts D+1..D+horizon with each.

    Args:
        tables: The source tables.
        day: Epoch day of the origin D.
        config: Settings.
        repeats: Timed trainings per booster.

    Returns:
        The scored cells, the costs and notes.
    """
    origin = timestamp(day).date()
    wsets = [build_warehouse_set(tables, wh, day, config) for wh in tables.warehouse_ids]
    per_warehouse, train_seconds = {}, 0.0
    for wset in wsets:
        per_warehouse[wset.warehouse_id], seconds = fit_per_warehouse(wset, config, repeats)
        train_seconds += seconds
    pooled = fit_pooled(wsets, config, repeats)
    per_cost = Fitted(
        boosters={},
        categories={},
        rows=sum(sum(m.n_train_rows.values()) for m in per_warehouse.values()),
        n_boosters=sum(len(m.boosters) for m in per_warehouse.values()),
        dataset_seconds=sum(w.seconds for w in wsets),
        train_seconds=train_seconds,
    )
    warehouse_ids = tuple(tables.warehouse_ids)
    cells = []
    for wset in wsets:
        inputs = origin_inputs(tables, wset.warehouse_id, day, config, wset.ml_skus)
        model = per_warehouse[wset.warehouse_id]
        forecasts = {
            PER_WAREHOUSE: model.predict(
                inputs.features, inputs.panel, inputs.lookup, config.horizon, inputs.keys
            )
        }
        for name in (POOLED, POOLED_CAP):
            forecasts[name] = predict_pooled(pooled[name], inputs, wset.warehouse_id, warehouse_ids, config)
        cells.append(Cell(origin, wset.warehouse_id, inputs.actual, forecasts))
    notes = [
        f"{origin}: global_ml SKUs per warehouse "
        + ", ".join(f"{w.warehouse_id} {len(w.ml_skus)}" for w in wsets)
        + "; category lists differing across warehouses (made the union): "
        + (", ".join(differing_categories(wsets)) or "none")
    ]
    costs = [
        (origin, PER_WAREHOUSE, per_cost),
        (origin, POOLED, pooled[POOLED]),
        (origin, POOLED_CAP, pooled[POOLED_CAP]),
    ]
    return cells, costs, notes


def identifying_note(tables: Tables) -> str:
    """Whether the existing features (location_state, capacity_units) already tell the warehouses apart."""
    frame = tables.warehouses.set_index(C.WAREHOUSE_ID)
    states = frame[C.LOCATION_STATE].nunique()
    capacity = frame[C.CAPACITY_UNITS].nunique()
    n = len(frame)
    return (
        f"{n} warehouses: {states} distinct location_state, {capacity} distinct capacity_units "
        f"(existing features {'do' if capacity == n or states == n else 'do not'} identify the warehouse); "
        f"a `{WAREHOUSE_FEATURE}` categorical is added to the pooled models anyway"
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--skus", type=int, default=1000)
    parser.add_argument("--warehouses", type=int, default=4)
    parser.add_argument("--days", type=int, default=500)
    parser.add_argument("--origins", type=int, default=2, help="test origins 30, 60, ... days before the end")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0, help="seed of the generator and of TrainConfig")
    parser.add_argument("--repeats", type=int, default=1, help="timed trainings per booster (median)")
    parser.add_argument("--n-estimators", type=int, default=None, help="override TrainConfig.n_estimators")
    parser.add_argument(
        "--work", type=Path, default=None, help="directory of the source (default: temporary)"
    )
    parser.add_argument("--out", type=Path, default=None, help="also write the markdown report here")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Runs the backtest and prints the report."""
    args = parse_args(argv)
    overrides = {} if args.n_estimators is None else {"n_estimators": args.n_estimators}
    config = TrainConfig(num_threads=args.threads, seed=args.seed, **overrides)  # type: ignore[arg-type]
    generator = GeneratorConfig(
        n_skus=args.skus, n_warehouses=args.warehouses, days=args.days, seed=args.seed
    )
    began = time.perf_counter()
    with tempfile.TemporaryDirectory() as scratch:
        work = args.work or Path(scratch)
        tables = load_tables(work, generator)
        print(f"source generated and ingested in {tables.seconds:.1f} s", flush=True)
        days = [tables.last_day - ORIGIN_STEP_DAYS * k for k in range(args.origins, 0, -1)]
        cells, costs, notes = [], [], [identifying_note(tables)]
        for day in days:
            started = time.perf_counter()
            origin_cells, origin_costs, origin_notes = run_origin(tables, day, config, args.repeats)
            cells += origin_cells
            costs += origin_costs
            notes += origin_notes
            print(f"origin {timestamp(day).date()}: {time.perf_counter() - started:.1f} s", flush=True)
    lines = [
        "# Per-warehouse vs pooled LightGBM (tiers 1-2, global_ml SKUs)",
        "",
        f"Command: `python {' '.join(shlex.quote(a) for a in sys.argv)}`",
        "",
        f"Machine: {machine()}",
        "",
        f"Data: generate_source {args.skus:,} SKUs x {args.warehouses} warehouses x {args.days} days "
        f"(seed {args.seed}, {generator.start} .. {generator.end}); origins "
        + ", ".join(str(timestamp(d).date()) for d in days)
        + f", each scored on D+1..D+{config.horizon}.",
        "",
        f"TrainConfig: n_origins={config.n_origins}, origin_step={config.origin_step}, cv_origins={config.cv_origins}, "
        f"max_rows={config.max_rows:,}/band, zero_sample_rate={config.zero_sample_rate}, "
        f"n_estimators={config.n_estimators}, num_leaves={config.num_leaves}, learning_rate={config.learning_rate}, "
        f"objective={config.objective} ({config.tweedie_variance_power}), threads={config.num_threads}, "
        f"repeats={args.repeats}.",
        "",
        "## Accuracy (raw LightGBM means; dWMAPE = relative change against per-warehouse)",
        "",
        *accuracy_lines(cells),
        "",
        "## Training cost (seconds summed over bands and warehouses; train s = median over repeats)",
        "",
        *cost_lines(costs),
        "",
        "## Notes",
        "",
        *(f"- {note}" for note in notes),
        f"- total wall time {time.perf_counter() - began:.0f} s",
    ]
    text = "\n".join(lines)
    print(text)
    if args.out is not None:
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
