"""The blend of the ML model (the LightGBM by default) with the statistical partner: weights per tier x horizon
band, and the point forecast."""

from collections.abc import Sequence

import numpy as np
import pandas as pd

from demand_platform import columns as C
from demand_platform.forecasting.components import still_selling
from demand_platform.forecasting.config import (
    BAND,
    BAND_END,
    BAND_START,
    MODEL_COLD_START,
    MODEL_ENSEMBLE,
    MODEL_LGBM,
    TrainConfig,
    band_of_horizon,
)
from demand_platform.forecasting.state import Components, OriginState
from demand_platform.metrics import N_OBS
from demand_platform.models.global_lgbm import band_label
from demand_platform.models.statistical import sales_silence
from demand_platform.tiering import ROUTE_COLD_START

MSE_LGBM = "mse_lgbm"
MSE_STAT = "mse_stat"
WEIGHT_LGBM = "weight_lgbm"
WEIGHT_STAT = "weight_stat"
ENSEMBLE_COLUMNS = (C.TIER, BAND, BAND_START, BAND_END, MSE_LGBM, MSE_STAT, WEIGHT_LGBM, WEIGHT_STAT, N_OBS)
#: Tiers whose LightGBM is blended with the statistical model, and their weight without validation days.
ENSEMBLE_TIERS = (1, 2)
ENSEMBLE_PRIOR_WEIGHT = {1: 0.5, 2: 1.0}
STOP_HAZARD = "stop_hazard"


def needs_stat(state: OriginState, lgbm: np.ndarray) -> np.ndarray:
    """SKUs that use a statistical forecast: every SKU but the cold-start ones and the LightGBM SKUs of
    tiers that are not ensembled."""
    has_lgbm = state.is_ml & ~np.isnan(lgbm).any(axis=1)
    ensembled = np.isin(state.tier, ENSEMBLE_TIERS)
    return ~((has_lgbm & ~ensembled) | (state.route == ROUTE_COLD_START))


def combine(
    state: OriginState,
    components: Components,
    weights: np.ndarray,
    band_of_h: np.ndarray,
    cap: np.ndarray,
    ml_name: str = MODEL_LGBM,
) -> tuple[np.ndarray, np.ndarray]:
    """Tiered point forecast ``[n, H]`` (capped, non-negative) and the model name of each SKU.

    ``weights`` is the ``[tier, band]`` LightGBM weight (:func:`weight_matrix`); a LightGBM SKU of an
    ensembled tier gets ``w * lgbm + (1 - w) * stat`` (named ensemble unless every weight of its tier is 1).
    ``components.lgbm`` holds the ML model's forecasts, named ``ml_name`` when served alone.
    """
    has_lgbm = state.is_ml & ~np.isnan(components.lgbm).any(axis=1)
    tier_row = np.clip(state.tier.astype(np.int64), 0, len(weights) - 1)
    w = np.where(has_lgbm[:, None], weights[tier_row][:, band_of_h], 1.0)
    lgbm = np.nan_to_num(components.lgbm, nan=0.0)
    stat = np.nan_to_num(components.stat, nan=0.0)
    blended = np.where(w < 1.0, w * lgbm + (1.0 - w) * stat, lgbm)
    point = np.where(has_lgbm[:, None], blended, components.stat)
    is_cold = state.route == ROUTE_COLD_START
    point = np.where(is_cold[:, None], components.cold, point)
    mixed = (w < 1.0).any(axis=1) | (has_lgbm & (state.tier == 1))
    names = np.where(has_lgbm, np.where(mixed, MODEL_ENSEMBLE, ml_name), components.stat_name)
    names = np.where(is_cold, MODEL_COLD_START, names).astype(object)
    return np.clip(point, 0.0, cap[:, None]), names


def choose_stop_hazard(
    states: Sequence[OriginState],
    components: Sequence[Components],
    actual: np.ndarray,
    caps: Sequence[np.ndarray],
    config: TrainConfig,
) -> tuple[float, pd.DataFrame]:
    """The daily stop hazard (of ``config.stop_hazards``) whose blended CV point forecast has the lowest MSE,
    and each candidate's MSE.

    For each candidate the statistical forecasts of every CV origin are multiplied by the SKUs' probability of
    still selling (:func:`~demand_platform.forecasting.components.still_selling`), the ensemble weights are
    fitted on them (:func:`ensemble_weights`) and the point forecasts (:func:`combine`) are scored on the
    SKU-days that are not cold start. Ties keep the smaller hazard (0 first: no adjustment unless the CV
    shows one helps).

    Args:
        states: The SKUs at each CV origin.
        components: Their component forecasts.
        actual: CV actuals ``[N, H]``, the origins stacked in order.
        caps: Per-SKU caps at each origin.
        config: Settings (``stop_hazards``, bands).

    Returns:
        The chosen hazard and a table of ``stop_hazard``, ``mse`` and ``n_obs`` per candidate.
    """
    band_of_h = band_of_horizon(config)
    tier = np.concatenate([np.where(state.is_ml, state.tier, 0) for state in states])
    scored = np.concatenate([state.route != ROUTE_COLD_START for state in states])[:, None] & ~np.isnan(
        actual
    )
    silences = [sales_silence(state.history) for state in states]  # one scan per origin for every hazard
    records = []
    for hazard in sorted(set(config.stop_hazards)):
        adjusted = [
            still_selling(state, comp, hazard, silence)
            for state, comp, silence in zip(states, components, silences, strict=True)
        ]
        stat = np.concatenate([comp.stat for comp in adjusted])
        lgbm = np.concatenate([comp.lgbm for comp in adjusted])
        weights = weight_matrix(ensemble_weights(actual, lgbm, stat, tier, config), config)
        point = np.concatenate(
            [
                combine(state, comp, weights, band_of_h, cap)[0]
                for state, comp, cap in zip(states, adjusted, caps, strict=True)
            ]
        )
        n = int(scored.sum())
        mse = float(np.mean((point[scored] - actual[scored]) ** 2)) if n else float("nan")
        records.append((hazard, mse, n))
    table = pd.DataFrame.from_records(records, columns=[STOP_HAZARD, "mse", N_OBS])
    finite = table.loc[np.isfinite(table["mse"])]
    if finite.empty:
        return 0.0, table
    best = finite.loc[finite["mse"] <= finite["mse"].min() * (1.0 + 1e-12), STOP_HAZARD]
    return float(best.min()), table


def ensemble_weights(
    actual: np.ndarray, lgbm: np.ndarray, stat: np.ndarray, tier: np.ndarray, config: TrainConfig
) -> pd.DataFrame:
    """LightGBM weight of the LightGBM + statistical blend per ensembled tier and horizon band.

    The weight minimising the pooled validation MSE of ``w * lgbm + (1 - w) * stat`` over the tier's
    SKU-days of all CV origins, ``w = sum((a - s)(l - s)) / sum((l - s)^2)`` clipped to [0, 1]: 1 keeps the
    LightGBM alone, 0 replaces it by the statistical model where the CV shows it is worse. Without scored
    days the weight is ``ENSEMBLE_PRIOR_WEIGHT`` of the tier.

    Args:
        actual: CV actuals ``[N, H]``.
        lgbm: LightGBM forecasts (NaN where the SKU was not a LightGBM SKU).
        stat: Statistical forecasts.
        tier: Tier of each row (tier of the SKU at its CV origin).
        config: Settings (bands).
    """
    band_of_h = band_of_horizon(config)
    records = []
    for tier_value in ENSEMBLE_TIERS:
        for band_index, band in enumerate(config.model_bands):
            mask = (tier == tier_value)[:, None] & (band_of_h[None, :] == band_index)
            mask &= ~np.isnan(actual) & ~np.isnan(lgbm) & ~np.isnan(stat)
            n = int(mask.sum())
            weight = ENSEMBLE_PRIOR_WEIGHT[tier_value]
            mse_l = mse_s = float("nan")
            if n:
                a, l_, s_ = actual[mask], lgbm[mask], stat[mask]
                mse_l = float(np.mean((l_ - a) ** 2))
                mse_s = float(np.mean((s_ - a) ** 2))
                spread = float(np.sum((l_ - s_) ** 2))
                if spread > 0:
                    weight = float(np.clip(np.sum((a - s_) * (l_ - s_)) / spread, 0.0, 1.0))
            records.append(
                (tier_value, band_label(band), band[0], band[1], mse_l, mse_s, weight, 1.0 - weight, n)
            )
    return pd.DataFrame.from_records(records, columns=list(ENSEMBLE_COLUMNS))


def weight_matrix(table: pd.DataFrame, config: TrainConfig) -> np.ndarray:
    """Weights table -> ``[max ensembled tier + 1, n_bands]`` LightGBM weights (1 = LightGBM alone)."""
    out = np.ones((max(ENSEMBLE_TIERS) + 1, len(config.model_bands)))
    labels = pd.Index([band_label(b) for b in config.model_bands])
    for row in table.itertuples(index=False):
        band = labels.get_indexer(pd.Index([getattr(row, BAND)]))[0]
        tier_value = int(getattr(row, C.TIER))
        if band >= 0 and 0 <= tier_value < len(out):
            out[tier_value, band] = float(getattr(row, WEIGHT_LGBM))
    return out
