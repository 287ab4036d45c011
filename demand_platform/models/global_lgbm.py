"""Global LightGBM over the SKUs of one warehouse, direct multi-horizon by horizon band.

One LightGBM model per horizon band (``HORIZON_BANDS``: 1-7, 8-14, 15-30 days ahead) is trained on rows
``(SKU, origin D, horizon h)``: the point-in-time feature table of the SKU at D
(:func:`demand_platform.features.build_training_features`), the horizon ``h`` and features of the target
day ``D + h``, with the clipped demand on ``D + h`` as the target. Within a band, the horizon and the
target-day features are ordinary features, so a single model serves every horizon of its band (direct
strategy: no recursion, no error feedback).

Target-day features come in two groups:

* calendar and planned campaigns of ``D + h`` (:func:`demand_platform.features.target_day_features`):
  day of week, month, holiday, payday, days to the next holiday and since the last one, the holiday event
  (``"Thanksgiving Day +1"``: Black Friday, which no calendar names), promotion active / discount (known at D);
* demand history aligned with the target's weekday, read from the dense :class:`SalesPanel` (days on or
  before D only): the last value and the 4- and 8-week means of demand on the target's weekday, the
  8-week weekday index (8-week weekday mean / 56-day mean) and the demand 364 days before the target.

Rows. Training pairs ``(D, h)`` are kept only when the target day is observed on or before the cutoff
(``D + h <= cutoff``: the cutoff is the training date, nothing later is read) and the SKU has a row on the
target day. Per band: every pair with a positive target, a ``zero_sample_rate`` share of the zero
targets (weighted ``1 / zero_sample_rate`` so the mean stays unbiased under the Tweedie/Poisson loss) and,
when more pairs than ``max_rows`` remain, a uniform sample of ``max_rows`` of them.

Pooling. Other warehouses' rows (:class:`DonorRows`: their own feature table, panel and target-day lookup)
can be added to a warehouse's training pairs, sampled the same way, all donors together within
``pool_max_rows``. The model still forecasts only its own warehouse's rows; the warehouse's state
(``location_state``) is a feature, so what differs between warehouses can still be learned. Every cutoff
rule applies to the donors' pairs alike (target day on or before the cutoff).

Determinism. ``num_threads`` is always passed (default 1; LightGBM's default of one thread per core was
much slower on a 2-core machine), with a fixed seed, ``deterministic=True`` and row-wise histograms
(faster than column-wise on one thread); the row sampling uses ``numpy.random.default_rng`` seeded per band. Categorical features are
pandas categoricals whose category lists are fixed at fit time and stored in the model, so the codes
LightGBM sees at prediction time are those it was trained with (unknown values become missing).
"""

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import lightgbm as lgb
import numpy as np
import pandas as pd

from demand_platform.calendar import build_calendar
from demand_platform.columns import HORIZON, ORIGIN_DATE, SKU
from demand_platform.days import HORIZON_BANDS, DateLike, to_day, to_timestamp
from demand_platform.features import (
    CATEGORICAL_FEATURES,
    DEMAND_ROLL_MEAN_COLUMNS,
    FEATURE_COLUMNS,
    TARGET_DAY_OF_MONTH,
    TARGET_DAY_OF_WEEK,
    TARGET_DAYS_SINCE_LAST_HOLIDAY,
    TARGET_DAYS_TO_NEXT_HOLIDAY,
    TARGET_EVENT,
    TARGET_IS_HOLIDAY,
    TARGET_IS_PAYDAY,
    TARGET_IS_WEEKEND,
    TARGET_MONTH,
    TARGET_PROMO_ACTIVE,
    TARGET_PROMO_DISCOUNT,
    TARGET_WEEK_OF_YEAR,
    SalesPanel,
    target_day_features,
)
from demand_platform.tables import SourceTables

# --- target-day features read from the sales panel (this module's own names) -------------------------------------------
TARGET_DOW_LAST = "target_dow_last"
TARGET_DOW_MEAN_4W = "target_dow_mean_4w"
TARGET_DOW_MEAN_8W = "target_dow_mean_8w"
TARGET_DOW_INDEX_8W = "target_dow_index_8w"
TARGET_DEMAND_LAG_364 = "target_demand_lag_364"
PANEL_TARGET_FEATURES = (
    TARGET_DOW_LAST,
    TARGET_DOW_MEAN_4W,
    TARGET_DOW_MEAN_8W,
    TARGET_DOW_INDEX_8W,
    TARGET_DEMAND_LAG_364,
)
#: Days before the origin that the panel target features read (lag 364 of D + 1 is D - 363).
PANEL_LOOKBACK_DAYS = 364

#: Numeric target-day features taken from :func:`demand_platform.features.target_day_features`.
TARGET_CALENDAR_FEATURES = (
    TARGET_DAY_OF_WEEK,
    TARGET_MONTH,
    TARGET_DAY_OF_MONTH,
    TARGET_WEEK_OF_YEAR,
    TARGET_IS_WEEKEND,
    TARGET_IS_HOLIDAY,
    TARGET_IS_PAYDAY,
    TARGET_DAYS_TO_NEXT_HOLIDAY,
    TARGET_DAYS_SINCE_LAST_HOLIDAY,
    TARGET_PROMO_ACTIVE,
    TARGET_PROMO_DISCOUNT,
)
MODEL_NUMERIC_FEATURES = (*FEATURE_COLUMNS, HORIZON, *TARGET_CALENDAR_FEATURES, *PANEL_TARGET_FEATURES)
MODEL_CATEGORICAL_FEATURES = (*CATEGORICAL_FEATURES, TARGET_EVENT)
MODEL_FEATURES = (*MODEL_NUMERIC_FEATURES, *MODEL_CATEGORICAL_FEATURES)

# --- feature importance output ------------------------------------------------------------------------------------------
FEATURE = "feature"
BAND = "band"
GAIN = "gain"
GAIN_SHARE = "gain_share"
SPLITS = "splits"
IMPORTANCE_COLUMNS = (BAND, FEATURE, GAIN, GAIN_SHARE, SPLITS)

_DOW_WEEKS = 8
# Calendar days generated past the last target day when no calendar is given (days to the next holiday).
_CALENDAR_LOOKAHEAD_DAYS = 366


def band_label(band: tuple[int, int]) -> str:
    """Label of a horizon band, e.g. ``"1-7"``."""
    return f"{band[0]}-{band[1]}"


# --- parameters ---------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LGBMParams:
    """LightGBM settings shared by the band models.

    Attributes:
        objective: ``"tweedie"`` (default) or ``"poisson"``; both use a log link and predict the mean.
        tweedie_variance_power: Tweedie power in (1, 2); closer to 1 is Poisson-like.
        n_estimators: Boosting rounds per band model.
        num_leaves: Leaves per tree.
        learning_rate: Shrinkage.
        min_data_in_leaf: Minimum rows per leaf.
        feature_fraction: Share of features tried per tree.
        bagging_fraction: Share of rows used per tree (with ``bagging_freq`` 1).
        lambda_l2: L2 regularisation of leaf values.
        max_bin: Histogram bins per feature.
        num_threads: LightGBM threads; always passed explicitly (LightGBM's default oversubscribes).
        seed: Seed of LightGBM's bagging / feature sampling and of the training-row sampling.
    """

    objective: Literal["tweedie", "poisson"] = "tweedie"
    tweedie_variance_power: float = 1.2
    n_estimators: int = 80
    num_leaves: int = 31
    learning_rate: float = 0.1
    min_data_in_leaf: int = 100
    feature_fraction: float = 0.8
    bagging_fraction: float = 0.8
    lambda_l2: float = 1.0
    max_bin: int = 63
    num_threads: int = 1
    seed: int = 0

    def __post_init__(self) -> None:
        """Validates the settings.

        Raises:
            ValueError: On an unknown objective or non-positive thread / round counts.
        """
        if self.objective not in ("tweedie", "poisson"):
            raise ValueError(f"objective must be 'tweedie' or 'poisson', got {self.objective!r}")
        if self.num_threads < 1 or self.n_estimators < 1:
            raise ValueError("num_threads and n_estimators must be positive")

    def booster_params(self) -> dict[str, object]:
        """The parameter dict passed to ``lightgbm.train`` (threads, seed and determinism included)."""
        params: dict[str, object] = {
            "objective": self.objective,
            "learning_rate": self.learning_rate,
            "num_leaves": self.num_leaves,
            "min_data_in_leaf": self.min_data_in_leaf,
            "feature_fraction": self.feature_fraction,
            "bagging_fraction": self.bagging_fraction,
            "bagging_freq": 1 if self.bagging_fraction < 1.0 else 0,
            "lambda_l2": self.lambda_l2,
            "max_bin": self.max_bin,
            "num_threads": self.num_threads,
            "seed": self.seed,
            "deterministic": True,
            "force_row_wise": True,
            "verbosity": -1,
            "cat_smooth": 10.0,
            "min_data_per_group": 50,
        }
        if self.objective == "tweedie":
            params["tweedie_variance_power"] = self.tweedie_variance_power
        return params


@dataclass(frozen=True)
class SamplingConfig:
    """Training-row sampling of each band.

    Attributes:
        zero_sample_rate: Share of zero-target pairs kept (weighted by its inverse); 1 keeps all.
        max_rows: Cap on the training rows of one band model (uniform sample above it).
        seed: Seed of the sampling.
        pool_max_rows: Cap on the rows of other warehouses (:class:`DonorRows`) of one band model.
    """

    zero_sample_rate: float = 0.3
    max_rows: int = 60_000
    seed: int = 0
    pool_max_rows: int = 180_000

    def __post_init__(self) -> None:
        """Validates the settings.

        Raises:
            ValueError: If the rate is outside (0, 1] or the cap is not positive.
        """
        if not 0.0 < self.zero_sample_rate <= 1.0:
            raise ValueError(f"zero_sample_rate must be in (0, 1], got {self.zero_sample_rate}")
        if self.max_rows < 1 or self.pool_max_rows < 1:
            raise ValueError(
                f"max_rows and pool_max_rows must be positive, got {self.max_rows}, {self.pool_max_rows}"
            )


# --- target-day features of many origins ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class TargetDayLookup:
    """Target-day calendar and campaign features of several origins, gathered per (origin, SKU, horizon).

    Attributes:
        origin_days: Sorted epoch days of the origins.
        numeric: ``[n_origins, max_horizon, len(TARGET_CALENDAR_FEATURES)]`` features of all-SKU campaigns.
        event: ``[n_origins, max_horizon]`` holiday event of the target day, ``"<holiday> <offset>"`` (None
            when none).
        skus: The SKU list that ``sku_code`` arguments index (usually the panel's SKUs).
        specific_key: Sorted keys ``(origin_index * n_skus + sku_code) * max_horizon + h - 1`` of the
            (origin, SKU, horizon) triples with a SKU-specific campaign.
        specific_active: Promotion flag of each specific key.
        specific_discount: Promotion discount of each specific key.
    """

    origin_days: np.ndarray
    numeric: np.ndarray
    event: np.ndarray
    skus: np.ndarray
    specific_key: np.ndarray
    specific_active: np.ndarray
    specific_discount: np.ndarray

    @property
    def max_horizon(self) -> int:
        """Largest horizon covered."""
        return int(self.numeric.shape[1])

    def without_campaigns(self) -> "TargetDayLookup":
        """The same target days with no campaign on any of them (what the ML model forecasts for a day
        without its campaign; :func:`demand_platform.forecasting.events.with_campaign_lift`)."""
        numeric = self.numeric.copy()
        numeric[..., TARGET_CALENDAR_FEATURES.index(TARGET_PROMO_ACTIVE)] = 0.0
        numeric[..., TARGET_CALENDAR_FEATURES.index(TARGET_PROMO_DISCOUNT)] = 0.0
        empty = np.zeros(0)
        return dataclasses.replace(
            self,
            numeric=numeric,
            specific_key=np.zeros(0, dtype=np.int64),
            specific_active=empty,
            specific_discount=empty,
        )

    @classmethod
    def build(
        cls,
        tables: SourceTables,
        warehouse_id: object,
        origins: Sequence[DateLike],
        max_horizon: int,
        skus: np.ndarray,
    ) -> "TargetDayLookup":
        """Computes the target-day features of every origin (one ``target_day_features`` call each).

        Args:
            tables: The source tables (calendar, campaigns, warehouses); a missing calendar is generated
                once for all origins.
            warehouse_id: The warehouse.
            origins: Origin days.
            max_horizon: Horizons 1 .. max_horizon are covered.
            skus: SKUs whose specific campaigns are looked up (``sku_code`` indexes this array).

        Returns:
            The lookup.
        """
        origin_days = np.array(sorted({to_day(origin) for origin in origins}), dtype=np.int64)
        if tables.calendar is None and len(origin_days):
            calendar = build_calendar(
                to_timestamp(origin_days[0]),
                to_timestamp(origin_days[-1] + max_horizon + _CALENDAR_LOOKAHEAD_DAYS),
            )
            tables = dataclasses.replace(tables, calendar=calendar)
        sku_array = np.asarray(skus, dtype=object)
        sku_index = pd.Index(sku_array)
        n_skus = len(sku_array)
        horizons = range(1, max_horizon + 1)
        numeric = np.zeros((len(origin_days), max_horizon, len(TARGET_CALENDAR_FEATURES)))
        names = np.full((len(origin_days), max_horizon), None, dtype=object)
        keys, active, discount = [], [], []
        for i, day in enumerate(origin_days):
            target = target_day_features(
                tables,
                to_timestamp(day),
                warehouse_id,
                horizons=horizons,
                skus=sku_array,
            )
            numeric[i] = target.by_horizon.loc[:, list(TARGET_CALENDAR_FEATURES)].to_numpy(np.float64)
            names[i] = target.by_horizon[TARGET_EVENT].to_numpy(dtype=object)
            if not target.by_sku.empty:
                code = sku_index.get_indexer(pd.Index(target.by_sku[SKU]))
                h = target.by_sku[HORIZON].to_numpy(np.int64)
                keys.append((i * n_skus + code) * max_horizon + h - 1)
                active.append(target.by_sku[TARGET_PROMO_ACTIVE].to_numpy(np.float64))
                discount.append(target.by_sku[TARGET_PROMO_DISCOUNT].to_numpy(np.float64))
        key = np.concatenate(keys) if keys else np.zeros(0, dtype=np.int64)
        order = np.argsort(key, kind="stable")
        return cls(
            origin_days=origin_days,
            numeric=numeric,
            event=names,
            skus=sku_array,
            specific_key=key[order],
            specific_active=np.concatenate(active)[order] if active else np.zeros(0),
            specific_discount=np.concatenate(discount)[order] if discount else np.zeros(0),
        )

    def origin_index(self, origin_days: np.ndarray) -> np.ndarray:
        """Index of each origin day in ``origin_days``.

        Raises:
            KeyError: If a day is not one of the lookup's origins.
        """
        position = np.searchsorted(self.origin_days, origin_days)
        position = np.clip(position, 0, max(len(self.origin_days) - 1, 0))
        if len(origin_days) and (
            len(self.origin_days) == 0 or (self.origin_days[position] != origin_days).any()
        ):
            raise KeyError("an origin is missing from the target-day lookup")
        return position

    def gather(
        self, origin_index: np.ndarray, sku_code: np.ndarray, horizon: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Target-day features of (origin, SKU, horizon) triples.

        Args:
            origin_index: Index into ``origin_days`` per triple.
            sku_code: Index into ``skus`` per triple.
            horizon: Horizon per triple (1 .. max_horizon).

        Returns:
            ``(numeric [m, len(TARGET_CALENDAR_FEATURES)], event [m])``.
        """
        numeric = self.numeric[origin_index, horizon - 1]
        names = self.event[origin_index, horizon - 1]
        if len(self.specific_key) and len(origin_index):
            key = (origin_index * len(self.skus) + sku_code) * self.max_horizon + horizon - 1
            position = np.clip(np.searchsorted(self.specific_key, key), 0, len(self.specific_key) - 1)
            hit = self.specific_key[position] == key
            active_col = TARGET_CALENDAR_FEATURES.index(TARGET_PROMO_ACTIVE)
            discount_col = TARGET_CALENDAR_FEATURES.index(TARGET_PROMO_DISCOUNT)
            numeric[hit, active_col] = self.specific_active[position[hit]]
            numeric[hit, discount_col] = self.specific_discount[position[hit]]
        return numeric, names


# --- the design matrix ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FeatureKeys:
    """Per-row keys of a feature table, resolved against a sales panel and a target-day lookup.

    Attributes:
        origin_day: Epoch day of each feature row's origin.
        sku_code: Index of each row's SKU in ``panel.skus`` (-1 if absent).
        origin_column: Panel column of each row's origin.
        origin_index: Index of each row's origin in the lookup.
    """

    origin_day: np.ndarray
    sku_code: np.ndarray
    origin_column: np.ndarray
    origin_index: np.ndarray

    @classmethod
    def of(cls, features: pd.DataFrame, panel: SalesPanel, lookup: TargetDayLookup) -> "FeatureKeys":
        """Resolves the keys of a feature table.

        Raises:
            ValueError: If the panel does not cover an origin.
        """
        origin_day = pd.to_datetime(features[ORIGIN_DATE]).to_numpy().astype("datetime64[D]").astype(np.int64)
        origin_column = origin_day - panel.start_day
        if len(origin_day) and (origin_column.min() < 0 or origin_column.max() >= panel.n_days):
            raise ValueError("the sales panel does not cover every origin of the feature table")
        return cls(
            origin_day=origin_day,
            sku_code=pd.Index(panel.skus).get_indexer(pd.Index(features[SKU])),
            origin_column=origin_column,
            origin_index=lookup.origin_index(origin_day),
        )


def _panel_target_features(
    panel: SalesPanel, sku_code: np.ndarray, origin_column: np.ndarray, horizon: np.ndarray
) -> dict[str, np.ndarray]:
    """Weekday-aligned demand history of the target day ``D + h`` (days on or before D only)."""
    quantity = panel.quantity
    n_days = quantity.shape[1]
    # last day on or before D with the target's weekday: D - ((-h) mod 7)
    last_same = origin_column - np.mod(-horizon, 7)
    values = np.full((len(horizon), _DOW_WEEKS), np.nan)
    for week in range(_DOW_WEEKS):
        column = last_same - 7 * week
        ok = (column >= 0) & (sku_code >= 0)
        values[ok, week] = quantity[sku_code[ok], column[ok]]
    observed = ~np.isnan(values)
    filled = np.where(observed, values, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_4w = filled[:, :4].sum(axis=1) / observed[:, :4].sum(axis=1)
        mean_8w = filled.sum(axis=1) / observed.sum(axis=1)
    lag_column = origin_column + horizon - 364
    lag = np.full(len(horizon), np.nan)
    ok = (lag_column >= 0) & (lag_column < n_days) & (sku_code >= 0)
    lag[ok] = quantity[sku_code[ok], lag_column[ok]]
    return {
        TARGET_DOW_LAST: values[:, 0],
        TARGET_DOW_MEAN_4W: mean_4w,
        TARGET_DOW_MEAN_8W: mean_8w,
        TARGET_DEMAND_LAG_364: lag,
    }


def category_dtypes(features: pd.DataFrame, lookup: TargetDayLookup) -> dict[str, tuple[str, ...]]:
    """Sorted category lists of the categorical model features found in a feature table and lookup."""
    out: dict[str, tuple[str, ...]] = {}
    for name in CATEGORICAL_FEATURES:
        values = pd.Series(features[name], dtype=object).dropna().astype(str).unique()
        out[name] = tuple(sorted(values))
    names = pd.Series(lookup.event.reshape(-1), dtype=object).dropna().astype(str).unique()
    out[TARGET_EVENT] = tuple(sorted(names))
    return out


def direct_design(
    features: pd.DataFrame,
    keys: FeatureKeys,
    rows: np.ndarray,
    horizon: np.ndarray,
    panel: SalesPanel,
    lookup: TargetDayLookup,
    categories: dict[str, tuple[str, ...]],
) -> pd.DataFrame:
    """The model input of (feature row, horizon) pairs, columns ``MODEL_FEATURES``.

    Args:
        features: Feature table (``FEATURE_TABLE_COLUMNS``).
        keys: Its :class:`FeatureKeys`.
        rows: Feature-table row of each pair.
        horizon: Horizon of each pair.
        panel: Sales panel covering ``PANEL_LOOKBACK_DAYS`` before every origin (read up to the origin).
        lookup: Target-day lookup covering every origin.
        categories: Fixed category lists (see :func:`category_dtypes`).

    Returns:
        A frame with float32 numeric columns and pandas categorical columns of fixed categories.
    """
    rows = np.asarray(rows, dtype=np.int64)
    horizon = np.asarray(horizon, dtype=np.int64)
    block = features.loc[:, list(FEATURE_COLUMNS)].to_numpy(np.float32)[rows]
    columns: dict[str, object] = {name: block[:, j] for j, name in enumerate(FEATURE_COLUMNS)}
    columns[HORIZON] = horizon.astype(np.float32)
    target_numeric, target_names = lookup.gather(keys.origin_index[rows], keys.sku_code[rows], horizon)
    for j, name in enumerate(TARGET_CALENDAR_FEATURES):
        columns[name] = target_numeric[:, j].astype(np.float32)
    panel_features = _panel_target_features(panel, keys.sku_code[rows], keys.origin_column[rows], horizon)
    roll_mean_56 = features[DEMAND_ROLL_MEAN_COLUMNS[56]].to_numpy(np.float64)[rows]
    with np.errstate(invalid="ignore", divide="ignore"):
        index = panel_features[TARGET_DOW_MEAN_8W] / roll_mean_56
    index[~np.isfinite(index)] = np.nan
    panel_features[TARGET_DOW_INDEX_8W] = index
    for name in PANEL_TARGET_FEATURES:
        columns[name] = panel_features[name].astype(np.float32)
    for name in CATEGORICAL_FEATURES:
        dtype = pd.CategoricalDtype(list(categories[name]))
        codes = pd.Categorical(pd.Series(features[name], dtype=object).to_numpy(), dtype=dtype).codes
        columns[name] = pd.Categorical.from_codes(codes[rows], dtype=dtype)
    name_dtype = pd.CategoricalDtype(list(categories[TARGET_EVENT]))
    columns[TARGET_EVENT] = pd.Categorical(target_names, dtype=name_dtype)
    return pd.DataFrame(columns).loc[:, list(MODEL_FEATURES)]


def require_model_features(booster: lgb.Booster, band: str) -> None:
    """Refuse a booster trained on other features than this code builds (a model of an earlier version).

    Raises:
        ValueError: Naming the features it lacks and those it has extra, and the remedy (retrain).
    """
    trained = list(booster.feature_name())
    if trained == list(MODEL_FEATURES):
        return
    missing = sorted(set(MODEL_FEATURES) - set(trained))
    extra = sorted(set(trained) - set(MODEL_FEATURES))
    raise ValueError(
        f"the LightGBM of band {band} was trained on the features of an earlier version (it lacks {missing}, "
        f"has {extra} instead): retrain the warehouse (the trained_models asset, or the retrain job) before "
        "forecasting with it"
    )


# --- training pairs -------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DonorRows:
    """Another warehouse's feature rows pooled into a warehouse's training pairs (see the module docstring).

    Attributes:
        warehouse_id: The donor warehouse.
        features: Its stacked feature tables of the training origins.
        keys: Their keys.
        lookup: Its target-day features of those origins.
        panel: Its sales panel holding the targets.
        routed: Per cutoff epoch day a model is fitted at (the CV origins and the training date), the
            feature rows that are its training rows: those of the SKUs routed to the global model then,
            as for the warehouse's own rows.
        target_divisor: Divisor of each of its panel cells' target (see :class:`DirectTrainingSet`).
    """

    warehouse_id: str
    features: pd.DataFrame
    keys: "FeatureKeys"
    lookup: "TargetDayLookup"
    panel: SalesPanel
    routed: Mapping[int, np.ndarray]
    target_divisor: np.ndarray | None = None

    @property
    def row_mask(self) -> np.ndarray:
        """Feature rows that are a training row at some cutoff (the ones sampled)."""
        return np.logical_or.reduce([*self.routed.values(), np.zeros(len(self.features), dtype=bool)])

    def routed_at(self, cutoff_day: int) -> np.ndarray:
        """The training rows of a model fitted at ``cutoff_day`` (none at a cutoff it was not routed for)."""
        return self.routed.get(cutoff_day, np.zeros(len(self.features), dtype=bool))


@dataclass(frozen=True)
class TrainingPairs:
    """Sampled (feature row, horizon) pairs of one band with their targets and weights."""

    rows: np.ndarray
    horizon: np.ndarray
    target: np.ndarray
    weight: np.ndarray
    n_candidates: int


def sample_training_pairs(
    keys: FeatureKeys,
    panel: SalesPanel,
    cutoff_day: int,
    band: tuple[int, int],
    sampling: SamplingConfig,
    row_mask: np.ndarray | None = None,
    target_divisor: np.ndarray | None = None,
) -> TrainingPairs:
    """Training pairs of one band: observed targets dated on or before the cutoff, zeros down-sampled.

    Args:
        keys: Keys of the feature table.
        panel: Sales panel holding the targets (columns after the cutoff are never read).
        cutoff_day: Epoch day of the last target day allowed (the training date).
        band: Horizon band.
        sampling: Zero share, row cap and seed.
        row_mask: Feature rows allowed (e.g. the SKUs routed to the global model); None = all.
        target_divisor: ``[panel SKUs, panel days]`` divisor of each target; None: raw targets.

    Returns:
        The pairs (sorted by row, then horizon).
    """
    horizons = np.arange(band[0], band[1] + 1, dtype=np.int64)
    allowed = keys.sku_code >= 0
    if row_mask is not None:
        allowed &= row_mask
    cutoff_column = cutoff_day - panel.start_day
    target_column = keys.origin_column[:, None] + horizons[None, :]
    in_range = allowed[:, None] & (target_column <= min(cutoff_column, panel.n_days - 1))
    row_index, h_index = np.nonzero(in_range)
    target = panel.quantity[keys.sku_code[row_index], target_column[row_index, h_index]]
    if target_divisor is not None:
        target = target / target_divisor[keys.sku_code[row_index], target_column[row_index, h_index]]
    observed = ~np.isnan(target)
    row_index, h_index, target = row_index[observed], h_index[observed], target[observed]
    n_candidates = len(target)
    rng = np.random.default_rng([sampling.seed, band[0], band[1]])
    weight = np.ones(len(target))
    if sampling.zero_sample_rate < 1.0:
        zero = target == 0
        keep = ~zero | (rng.random(len(target)) < sampling.zero_sample_rate)
        weight = np.where(zero, 1.0 / sampling.zero_sample_rate, 1.0)[keep]
        row_index, h_index, target = row_index[keep], h_index[keep], target[keep]
    if len(target) > sampling.max_rows:
        pick = np.sort(rng.choice(len(target), size=sampling.max_rows, replace=False))
        row_index, h_index, target, weight = row_index[pick], h_index[pick], target[pick], weight[pick]
    return TrainingPairs(
        rows=row_index, horizon=horizons[h_index], target=target, weight=weight, n_candidates=n_candidates
    )


# --- the training set shared by the models of several cutoffs -----------------------------------------------------------------
@dataclass
class DirectTrainingSet:
    """Sampled training pairs of every band and their LightGBM datasets, built once at the latest cutoff.

    A model of an earlier cutoff (an expanding-window CV origin) trains on ``lightgbm.Dataset.subset`` of
    the pairs whose target day is on or before that cutoff: the same bins and categories, no second design
    matrix, and, as an expanding window should, fewer rows the earlier the cutoff.

    Attributes:
        cutoff_day: Epoch day of the latest cutoff (no target after it).
        bands: Horizon bands.
        categories: Fixed category lists of the categorical features.
        pairs: Sampled pairs per band label.
        target_day: Epoch target day of each pair, per band label.
        datasets: Constructed LightGBM dataset of each band label (None when the band has too few rows).
    """

    cutoff_day: int
    bands: tuple[tuple[int, int], ...]
    categories: dict[str, tuple[str, ...]]
    pairs: dict[str, TrainingPairs]
    target_day: dict[str, np.ndarray]
    datasets: dict[str, lgb.Dataset | None]

    @classmethod
    def build(
        cls,
        features: pd.DataFrame,
        panel: SalesPanel,
        lookup: TargetDayLookup,
        cutoff: DateLike,
        params: LGBMParams,
        sampling: SamplingConfig,
        bands: tuple[tuple[int, int], ...] = HORIZON_BANDS,
        row_mask: np.ndarray | None = None,
        keys: FeatureKeys | None = None,
        target_divisor: np.ndarray | None = None,
        donors: Sequence[DonorRows] = (),
    ) -> "DirectTrainingSet":
        """Samples the pairs of every band up to ``cutoff`` and constructs their datasets.

        Args:
            features: Stacked feature tables of the training origins.
            panel: Sales panel holding the targets (read up to ``cutoff``) and the weekday features.
            lookup: Target-day features of every origin of ``features``.
            cutoff: The latest cutoff (the training date).
            params: LightGBM settings (their dataset parameters bin the features).
            sampling: Row sampling.
            bands: Horizon bands.
            row_mask: Feature rows allowed as training rows; None = all.
            keys: Precomputed keys of ``features``.
            target_divisor: ``[panel SKUs, panel days]`` divisor of each target (the event multiplier of
                its day: the model then learns demand net of the events); None: raw targets.
            donors: Other warehouses' rows pooled in (their pairs follow the own ones, their feature rows
                numbered after the own ``features``' in ``pairs``).

        Returns:
            The training set.
        """
        keys = keys or FeatureKeys.of(features, panel, lookup)
        categories = category_dtypes(features, lookup)
        for donor in donors:
            for name, values in category_dtypes(donor.features, donor.lookup).items():
                categories[name] = tuple(sorted(set(categories[name]) | set(values)))
        cutoff_day = to_day(cutoff)
        pairs: dict[str, TrainingPairs] = {}
        target_day: dict[str, np.ndarray] = {}
        datasets: dict[str, lgb.Dataset | None] = {}
        for band in bands:
            label = band_label(band)
            own = sample_training_pairs(keys, panel, cutoff_day, band, sampling, row_mask, target_divisor)
            parts = [(own, features, keys, panel, lookup, 0)]
            parts += _donor_pairs(donors, len(features), cutoff_day, band, sampling)
            band_pairs = TrainingPairs(
                rows=np.concatenate([part.rows + offset for part, *_, offset in parts]),
                horizon=np.concatenate([part.horizon for part, *_ in parts]),
                target=np.concatenate([part.target for part, *_ in parts]),
                weight=np.concatenate([part.weight for part, *_ in parts]),
                n_candidates=sum(part.n_candidates for part, *_ in parts),
            )
            pairs[label] = band_pairs
            target_day[label] = np.concatenate(
                [part_keys.origin_day[part.rows] + part.horizon for part, _, part_keys, *_ in parts]
            )
            if len(band_pairs.target) < 2 * params.min_data_in_leaf or not (band_pairs.target > 0).any():
                datasets[label] = None
                continue
            designs = [
                direct_design(f, k, part.rows, part.horizon, pn, lk, categories)
                for part, f, k, pn, lk, _ in parts
            ]
            design = designs[0] if len(designs) == 1 else pd.concat(designs, ignore_index=True)
            datasets[label] = lgb.Dataset(
                design,
                label=band_pairs.target,
                weight=band_pairs.weight,
                params=params.booster_params(),
                free_raw_data=True,
            ).construct()
        return cls(cutoff_day, bands, categories, pairs, target_day, datasets)


#: Pairs of one band with the feature rows, keys, panel and lookup they index and the number of their first
#: feature row among every part's.
_PairsPart = tuple[TrainingPairs, pd.DataFrame, FeatureKeys, SalesPanel, TargetDayLookup, int]


def _donor_pairs(
    donors: Sequence[DonorRows],
    first_row: int,
    cutoff_day: int,
    band: tuple[int, int],
    sampling: SamplingConfig,
) -> list[_PairsPart]:
    """Each donor's pairs of one band, sampled like the own ones and capped at ``pool_max_rows`` all together,
    with the number of the donor's first feature row (after ``first_row`` own rows and earlier donors)."""
    sampled: list[_PairsPart] = []
    offset = first_row
    for donor in donors:
        part = sample_training_pairs(
            donor.keys, donor.panel, cutoff_day, band, sampling, donor.row_mask, donor.target_divisor
        )
        sampled.append((part, donor.features, donor.keys, donor.panel, donor.lookup, offset))
        offset += len(donor.features)
    total = sum(len(part.target) for part, *_ in sampled)
    if total <= sampling.pool_max_rows:
        return sampled
    rng = np.random.default_rng([sampling.seed, band[0], band[1], 1])
    keep = np.zeros(total, dtype=bool)
    keep[rng.choice(total, size=sampling.pool_max_rows, replace=False)] = True
    out: list[_PairsPart] = []
    start = 0
    for part, features, keys, panel, lookup, first in sampled:
        mine = keep[start : start + len(part.target)]
        start += len(part.target)
        kept = TrainingPairs(
            part.rows[mine], part.horizon[mine], part.target[mine], part.weight[mine], part.n_candidates
        )
        out.append((kept, features, keys, panel, lookup, first))
    return out


# --- the model ----------------------------------------------------------------------------------------------------------------
#: Name of the global LightGBM among the ML models (:mod:`demand_platform.models.model_registry`).
LGBM_MODEL_NAME = "lgbm"


@dataclass
class GlobalLGBM:
    """Direct multi-horizon global LightGBM: one booster per horizon band.

    Attributes:
        params: LightGBM settings.
        sampling: Training-row sampling.
        bands: Horizon bands.
        categories: Fixed category lists of the categorical features (set by ``fit``).
        boosters: Booster per band label (bands without enough training rows have none).
        n_train_rows: Training rows per band label.
    """

    params: LGBMParams = field(default_factory=LGBMParams)
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    bands: tuple[tuple[int, int], ...] = HORIZON_BANDS
    categories: dict[str, tuple[str, ...]] = field(default_factory=dict)
    boosters: dict[str, lgb.Booster] = field(default_factory=dict)
    n_train_rows: dict[str, int] = field(default_factory=dict)

    @property
    def max_horizon(self) -> int:
        """Last horizon of the last band."""
        return max(last for _, last in self.bands)

    @property
    def is_fitted(self) -> bool:
        """True when at least one band has a booster."""
        return bool(self.boosters)

    def fit(
        self,
        features: pd.DataFrame,
        panel: SalesPanel,
        lookup: TargetDayLookup,
        cutoff: DateLike,
        row_mask: np.ndarray | None = None,
        keys: FeatureKeys | None = None,
    ) -> "GlobalLGBM":
        """Trains one booster per band on the pairs whose target day is on or before ``cutoff``.

        Args:
            features: Stacked feature tables of the training origins.
            panel: Sales panel (targets are read up to ``cutoff`` only).
            lookup: Target-day features of every origin of ``features``.
            cutoff: The training date; no target after it is used.
            row_mask: Feature rows allowed as training rows; None = all.
            keys: Precomputed keys of ``features`` (computed when None).

        Returns:
            self.
        """
        training_set = DirectTrainingSet.build(
            features, panel, lookup, cutoff, self.params, self.sampling, self.bands, row_mask, keys
        )
        return self.fit_training_set(training_set, cutoff)

    def fit_training_set(
        self, training_set: DirectTrainingSet, cutoff: DateLike, row_mask: np.ndarray | None = None
    ) -> "GlobalLGBM":
        """Trains on the pairs of a :class:`DirectTrainingSet` whose target day is on or before ``cutoff``.

        Args:
            training_set: Pairs and datasets built at a cutoff on or after ``cutoff``.
            cutoff: The cutoff of this model.
            row_mask: Feature rows allowed (e.g. the SKUs routed to the global model at ``cutoff``).

        Returns:
            self.

        Raises:
            ValueError: If ``cutoff`` is after the training set's cutoff or the bands differ.
        """
        cutoff_day = to_day(cutoff)
        if cutoff_day > training_set.cutoff_day:
            raise ValueError("the training set was built at an earlier cutoff")
        if tuple(training_set.bands) != tuple(self.bands):
            raise ValueError("the training set has other horizon bands")
        self.categories = training_set.categories
        self.boosters, self.n_train_rows = {}, {}
        for band in self.bands:
            label = band_label(band)
            dataset = training_set.datasets[label]
            pairs = training_set.pairs[label]
            keep = training_set.target_day[label] <= cutoff_day
            if row_mask is not None:
                keep &= row_mask[pairs.rows]
            self.n_train_rows[label] = int(keep.sum())
            if (
                dataset is None
                or keep.sum() < 2 * self.params.min_data_in_leaf
                or not (pairs.target[keep] > 0).any()
            ):
                continue
            if not keep.all():
                dataset = dataset.subset(np.flatnonzero(keep).tolist(), params=self.params.booster_params())
            self.boosters[label] = lgb.train(
                self.params.booster_params(), dataset, num_boost_round=self.params.n_estimators
            )
        return self

    def predict(
        self,
        features: pd.DataFrame,
        panel: SalesPanel,
        lookup: TargetDayLookup,
        horizon: int,
        keys: FeatureKeys | None = None,
    ) -> np.ndarray:
        """Forecasts every feature row for horizons 1 .. ``horizon`` in one pass per band.

        Args:
            features: Feature table (usually one origin).
            panel: Sales panel covering ``PANEL_LOOKBACK_DAYS`` before each origin.
            lookup: Target-day features of the origins.
            horizon: Last horizon.
            keys: Precomputed keys of ``features``.

        Returns:
            Non-negative forecasts ``[n_rows, horizon]``; NaN for horizons whose band has no booster.
        """
        keys = keys or FeatureKeys.of(features, panel, lookup)
        n = len(features)
        out = np.full((n, horizon), np.nan)
        for band in self.bands:
            booster = self.boosters.get(band_label(band))
            last = min(band[1], horizon)
            if booster is None or band[0] > last or n == 0:
                continue
            band_h = np.arange(band[0], last + 1)
            rows = np.repeat(np.arange(n), len(band_h))
            h = np.tile(band_h, n)
            require_model_features(booster, band_label(band))
            design = direct_design(features, keys, rows, h, panel, lookup, self.categories)
            prediction = booster.predict(design, num_threads=self.params.num_threads)
            out[:, band[0] - 1 : last] = np.maximum(prediction, 0.0).reshape(n, len(band_h))
        return out

    def feature_importance(self) -> pd.DataFrame:
        """Gain (and split count) importance of every feature in every band model.

        Returns:
            Columns ``IMPORTANCE_COLUMNS``: band label, feature, total gain, the feature's share of the
            band's gain and its split count; sorted by band then descending gain.
        """
        frames = []
        for label, booster in self.boosters.items():
            gain = booster.feature_importance(importance_type="gain")
            total = gain.sum()
            frames.append(
                pd.DataFrame(
                    {
                        BAND: label,
                        FEATURE: booster.feature_name(),
                        GAIN: gain,
                        GAIN_SHARE: gain / total if total > 0 else np.zeros(len(gain)),
                        SPLITS: booster.feature_importance(importance_type="split"),
                    }
                ).sort_values(GAIN, ascending=False, kind="stable")
            )
        if not frames:
            return pd.DataFrame({name: [] for name in IMPORTANCE_COLUMNS})
        return pd.concat(frames, ignore_index=True).loc[:, list(IMPORTANCE_COLUMNS)]


@dataclass(frozen=True)
class GlobalLGBMTrainer:
    """Trains :class:`GlobalLGBM` models at several cutoffs from training pairs sampled and binned once.

    The pairs are sampled at the latest cutoff (the training date); the model of an earlier cutoff (a CV
    origin) trains on the subset whose target day is on or before it (see :class:`DirectTrainingSet`).

    Attributes:
        training_set: The pairs of every band up to the latest cutoff.
        feature_skus: SKU of each own feature row the pairs come from.
        params: LightGBM settings.
        sampling: Training-row sampling.
        bands: Horizon bands.
        donors: Other warehouses' rows pooled in (numbered after the own ones).
    """

    training_set: DirectTrainingSet
    feature_skus: np.ndarray
    params: LGBMParams
    sampling: SamplingConfig
    bands: tuple[tuple[int, int], ...]
    donors: tuple[DonorRows, ...] = ()

    @classmethod
    def build(
        cls,
        features: pd.DataFrame,
        feature_skus: np.ndarray,
        keys: FeatureKeys,
        lookup: TargetDayLookup,
        panel: SalesPanel,
        cutoff_day: int,
        skus: np.ndarray,
        params: LGBMParams,
        sampling: SamplingConfig,
        bands: tuple[tuple[int, int], ...],
        target_divisor: np.ndarray | None = None,
        donors: Sequence[DonorRows] = (),
    ) -> "GlobalLGBMTrainer":
        """Samples the training pairs of the feature rows of ``skus`` up to ``cutoff_day``.

        Args:
            features: Stacked feature tables of the training origins.
            feature_skus: SKU of each feature row.
            keys: Keys of ``features``.
            lookup: Target-day features of every origin of ``features``.
            panel: Sales panel holding the targets.
            cutoff_day: Epoch day of the latest cutoff.
            skus: SKUs whose rows may be training rows (of any of the models to fit).
            params: LightGBM settings.
            sampling: Training-row sampling.
            bands: Horizon bands.
            target_divisor: Divisor of each panel cell's target (see :class:`DirectTrainingSet`).
            donors: Other warehouses' rows pooled into every model's training pairs.
        """
        training_set = DirectTrainingSet.build(
            features,
            panel,
            lookup,
            to_timestamp(cutoff_day),
            params,
            sampling,
            bands,
            row_mask=pd.Index(skus).get_indexer(pd.Index(feature_skus)) >= 0,
            keys=keys,
            target_divisor=target_divisor,
            donors=donors,
        )
        return cls(training_set, feature_skus, params, sampling, bands, tuple(donors))

    def fit(self, cutoff_day: int, skus: np.ndarray) -> GlobalLGBM | None:
        """The band models trained on the pairs of ``skus`` whose target day is on or before ``cutoff_day``.

        Returns:
            The fitted model, or None when there is nothing to train on.
        """
        if len(skus) == 0:
            return None
        model = GlobalLGBM(self.params, self.sampling, self.bands)
        own = pd.Index(skus).get_indexer(pd.Index(self.feature_skus)) >= 0
        model.fit_training_set(
            self.training_set,
            to_timestamp(cutoff_day),
            row_mask=np.concatenate([own, *(donor.routed_at(cutoff_day) for donor in self.donors)]),
        )
        return model if model.is_fitted else None
