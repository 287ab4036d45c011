"""Validation and backtest tables: error metrics and quantile coverage per segment and model."""

from collections.abc import Sequence

import numpy as np
import pandas as pd

from demand_platform import columns as C
from demand_platform.forecasting.config import (
    CALIBRATION_SEGMENTS,
    MODEL_TIERED,
    SEGMENT,
    SEGMENT_ALL,
    quantile_column,
)
from demand_platform.metrics import BIAS, MAE, N_OBS, RMSE, WMAPE, bias, mae, rmse, wmape

COVERAGE_PREFIX = "coverage_"


def segment_masks(segment: np.ndarray) -> dict[str, np.ndarray]:
    """Row mask of each calibration segment (by segment index) and of ``SEGMENT_ALL``."""
    masks = {name: segment == index for index, name in enumerate(CALIBRATION_SEGMENTS)}
    masks[SEGMENT_ALL] = np.ones(len(segment), dtype=bool)
    return masks


def metrics_table(
    actual: np.ndarray,
    forecasts: dict[str, np.ndarray],
    segment: np.ndarray,
    quantiles: np.ndarray | None,
    levels: Sequence[float],
) -> pd.DataFrame:
    """WMAPE, MAE, RMSE, bias, n_obs (and quantile coverage of the tiered forecast) per segment and model."""
    coverage_columns = [COVERAGE_PREFIX + quantile_column(q) for q in levels]
    records = []
    for segment_name, rows in segment_masks(segment).items():
        if not rows.any():
            continue
        a = actual[rows]
        for model_name, forecast in forecasts.items():
            f = forecast[rows]
            valid = ~np.isnan(a) & ~np.isnan(f)
            record: dict[str, object] = {
                SEGMENT: segment_name,
                C.MODEL: model_name,
                WMAPE: wmape(a, f),
                MAE: mae(a, f),
                RMSE: rmse(a, f),
                BIAS: bias(a, f),
                N_OBS: int(valid.sum()),
            }
            for column, level_index in zip(coverage_columns, range(len(levels)), strict=True):
                if model_name == MODEL_TIERED and quantiles is not None:
                    q = quantiles[level_index][rows]
                    ok = ~np.isnan(a)
                    record[column] = float((a[ok] <= q[ok]).mean()) if ok.any() else float("nan")
                else:
                    record[column] = float("nan")
            records.append(record)
    columns = [SEGMENT, C.MODEL, WMAPE, MAE, RMSE, BIAS, N_OBS, *coverage_columns]
    return pd.DataFrame.from_records(records, columns=columns)
