"""Tests of the model registry: a statistical or ML model added by one registration is cross-validated,
selected, weighted in the ensemble and served, on the small world of ``test_forecasting``."""

import dataclasses
from collections.abc import Iterator

import numpy as np
import pandas as pd
import pytest

from demand_platform import columns as C
from demand_platform.days import to_day
from demand_platform.forecasting import (
    MODEL_ENSEMBLE,
    MODEL_STATISTICAL,
    SEGMENT,
    WEIGHT_LGBM,
    TrainConfig,
    WarehouseModel,
    forecast_warehouse,
    train_warehouse,
)
from demand_platform.models.global_lgbm import IMPORTANCE_COLUMNS, FeatureKeys, TargetDayLookup
from demand_platform.models.model_registry import (
    ML_REGISTRY,
    STAT_REGISTRY,
    MLTrainingData,
    register_ml_model,
    register_stat_model,
    stat_model,
    unregister_ml_model,
    unregister_stat_model,
    weekly_stat_models,
)
from demand_platform.models.statistical import SeasonalWindowAverage, seasonal_window_average
from demand_platform.tables import SourceTables
from demand_platform.tiering import ROUTE, ROUTE_COLD_START, ROUTE_GLOBAL_ML, ROUTE_STATISTICAL, assign_tiers
from demand_platform_tests.domain.test_forecasting import CONFIG, HORIZON, WAREHOUSE, make_world

TOY = "toy_zero"
TOY_WEEKLY = "toy_weekly"
TOY_ML = "toy_ml"
TOY_ML_LEVEL = 2.0


@dataclasses.dataclass(frozen=True)
class ZeroForecaster:
    """A toy statistical model: forecasts zero demand, so its part of any forecast is recognisable."""

    name: str = TOY

    def forecast(self, y: np.ndarray, h: int) -> np.ndarray:
        """Zeros ``[n_series, h]``."""
        return np.zeros((len(y), h))


@pytest.fixture
def toy_models() -> Iterator[None]:
    """The two toy models, registered for the test only."""
    register_stat_model(ZeroForecaster())
    register_stat_model(SeasonalWindowAverage(name=TOY_WEEKLY), weekly=True)
    yield
    unregister_stat_model(TOY)
    unregister_stat_model(TOY_WEEKLY)


@pytest.fixture(scope="module")
def world() -> dict:
    return make_world()


def _forecast(world: dict, model: WarehouseModel, tiers: pd.DataFrame) -> pd.DataFrame:
    return forecast_warehouse(
        model,
        world["history"],
        SourceTables(world["products"], world["warehouses"], calendar=world["calendar"]),
        world["dates"][-1],
        WAREHOUSE,
        tiers,
    )


def _train(world: dict, config: TrainConfig, tiers: pd.DataFrame) -> tuple[WarehouseModel, pd.DataFrame]:
    """The model trained on the last day with ``config`` and its forecasts at that day."""
    model = train_warehouse(
        world["history"],
        SourceTables(world["products"], world["warehouses"], calendar=world["calendar"]),
        world["dates"][-1],
        WAREHOUSE,
        tiers,
        config,
    )
    return model, _forecast(world, model, tiers)


def test_the_registry_holds_the_built_in_models_and_one_registration_adds_one() -> None:
    assert set(TrainConfig().stat_models) <= set(STAT_REGISTRY)
    assert weekly_stat_models() == {"seasonal_naive", "seasonal_window_average"}
    with pytest.raises(ValueError, match=TOY):
        TrainConfig(stat_models=(TOY,))
    register_stat_model(ZeroForecaster())
    try:
        assert TrainConfig(stat_models=(TOY,)).stat_forecasters() == [ZeroForecaster()]
        assert stat_model(TOY) == ZeroForecaster()
        with pytest.raises(ValueError, match="already registered"):
            register_stat_model(ZeroForecaster())
    finally:
        unregister_stat_model(TOY)
    with pytest.raises(ValueError, match=TOY):
        stat_model(TOY)


def test_a_registered_model_is_cross_validated_weighted_and_served(world: dict, toy_models: None) -> None:
    """With the zero model as the only statistical model: the CV scores its forecasts (the statistical
    rows of the validation metrics have bias -1), every SKU selects it, the tier-1 ensembles blend the
    LightGBM with it at the CV's weight (forecast = weight x the LightGBM alone), and the SKUs routed
    statistical are served its zeros under its name."""
    tiers = assign_tiers(world["history"], world["products"], world["dates"][-1])
    model, forecasts = _train(world, dataclasses.replace(CONFIG, stat_models=(TOY,)), tiers)

    statistical = model.validation_metrics[
        (model.validation_metrics[C.MODEL] == MODEL_STATISTICAL) & (model.validation_metrics["n_obs"] > 0)
    ]
    assert len(statistical) and set(statistical[SEGMENT]) >= {"tier_1", "tier_3", "all"}
    assert np.allclose(statistical["bias"], -1.0) and np.allclose(statistical["wmape"], 1.0)

    assert len(model.stat_choice) and (model.stat_choice == TOY).all()

    served = forecasts[forecasts[C.MODEL] == TOY]
    routed = set(tiers.loc[tiers[ROUTE] == ROUTE_STATISTICAL, C.SKU])
    # Plus the SKUs tiering sends to cold start for too few selling days but not new (S038, never sold).
    assert routed and set(served[C.SKU]) == routed | {"S038"}
    assert (served[[C.FORECAST, C.P50, C.P90, C.P95]].to_numpy() == 0.0).all()

    lgbm_alone = dataclasses.replace(
        model, ensemble_weights=model.ensemble_weights.assign(**{WEIGHT_LGBM: 1.0})
    )
    alone = _forecast(world, lgbm_alone, tiers)
    weights = model.ensemble_weights.set_index([C.TIER, "band_start"])[WEIGHT_LGBM]
    ensemble = forecasts[(forecasts[C.MODEL] == MODEL_ENSEMBLE) & (forecasts[C.TIER] == 1)]
    assert len(ensemble) and 0.0 < weights.loc[1].min() < 1.0
    band_start = np.select([ensemble[C.HORIZON] <= 7, ensemble[C.HORIZON] <= 14], [1, 8], 15)
    expected = weights.reindex(pd.MultiIndex.from_arrays([ensemble[C.TIER], band_start])).to_numpy()
    alone_point = alone.set_index([C.SKU, C.HORIZON])[C.FORECAST]
    assert np.allclose(
        ensemble[C.FORECAST].to_numpy(),
        expected * alone_point.reindex(pd.MultiIndex.from_frame(ensemble[[C.SKU, C.HORIZON]])).to_numpy(),
    )


def test_a_registered_model_wins_the_selection_where_its_backtest_is_better(
    world: dict, toy_models: None
) -> None:
    """A weekly toy (the seasonal window average under another name) against the default combination on
    this strongly weekly world: SKUs choose it, are served its own forecasts (registered weekly, so
    without the weekday profile on top) and the others keep the combination."""
    tiers = assign_tiers(world["history"], world["products"], world["dates"][-1])
    tiers[ROUTE] = np.where(tiers[ROUTE] == ROUTE_COLD_START, ROUTE_COLD_START, ROUTE_STATISTICAL)
    model, forecasts = _train(
        world, dataclasses.replace(CONFIG, stat_models=("combination", TOY_WEEKLY)), tiers
    )

    assert set(model.stat_choice) == {"combination", TOY_WEEKLY}
    served = forecasts[forecasts[C.MODEL] == TOY_WEEKLY]
    assert set(served[C.SKU]) == set(model.stat_choice[model.stat_choice == TOY_WEEKLY].index)

    history = world["history"].pivot(index=C.SKU, columns=C.DATE, values=C.QUANTITY)
    skus = sorted(set(served[C.SKU]))
    expected = seasonal_window_average(history.loc[skus].to_numpy(np.float64), HORIZON)
    point = served.set_index([C.SKU, C.HORIZON])[C.FORECAST].unstack().loc[skus].to_numpy()
    assert np.allclose(point, expected)


# --- an ML model ----------------------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class ConstantML:
    """A toy fitted ML model: forecasts ``TOY_ML_LEVEL`` for every feature row and horizon."""

    cutoff_day: int

    @property
    def is_fitted(self) -> bool:
        return True

    @property
    def boosters(self) -> dict[str, object]:
        return {}

    def predict(
        self,
        features: pd.DataFrame,
        panel: object,
        lookup: TargetDayLookup,
        horizon: int,
        keys: FeatureKeys | None = None,
    ) -> np.ndarray:
        return np.full((len(features), horizon), TOY_ML_LEVEL)

    def feature_importance(self) -> pd.DataFrame:
        return pd.DataFrame(columns=list(IMPORTANCE_COLUMNS))


@dataclasses.dataclass
class RecordingTrainer:
    """A toy trainer that records what it was given and the fits asked of it."""

    data: MLTrainingData
    fits: list[tuple[int, frozenset]] = dataclasses.field(default_factory=list)

    def fit(self, cutoff_day: int, skus: np.ndarray) -> ConstantML | None:
        self.fits.append((cutoff_day, frozenset(skus)))
        return ConstantML(cutoff_day) if len(skus) else None


@pytest.fixture
def toy_ml() -> Iterator[list[RecordingTrainer]]:
    """The toy ML model, registered for the test only; yields the trainers made."""
    trainers: list[RecordingTrainer] = []

    def factory(data: MLTrainingData, config: TrainConfig) -> RecordingTrainer:
        trainers.append(RecordingTrainer(data))
        return trainers[-1]

    register_ml_model(TOY_ML, factory)
    yield trainers
    unregister_ml_model(TOY_ML)


def test_the_ml_model_is_a_registered_name() -> None:
    assert TrainConfig().ml_model == "lgbm" and "lgbm" in ML_REGISTRY
    with pytest.raises(ValueError, match=TOY_ML):
        TrainConfig(ml_model=TOY_ML)
    with pytest.raises(ValueError, match="already registered"):
        register_ml_model("tsb", lambda data, config: None)


def test_a_registered_ml_model_is_cross_validated_weighted_and_served(
    world: dict, toy_ml: list[RecordingTrainer]
) -> None:
    """The toy ML model replaces the LightGBM: one trainer is made from the feature rows up to the training
    date and fitted at every CV origin and at the training date; the CV scores it (its own validation rows)
    and weighs it against the statistical partner; serving blends it at those weights (forecast = w x its
    level + (1 - w) x the statistical partner alone) and names it where it is served alone."""
    end = world["dates"][-1]
    tiers = assign_tiers(world["history"], world["products"], end)
    model, forecasts = _train(world, dataclasses.replace(CONFIG, ml_model=TOY_ML), tiers)

    assert len(toy_ml) == 1
    trainer = toy_ml[0]
    assert trainer.data.train_day == to_day(end)
    assert (pd.to_datetime(trainer.data.features[C.ORIGIN_DATE]) <= end).all()
    cutoffs = [cutoff for cutoff, _ in trainer.fits]
    assert cutoffs == [to_day(day) for day in model.cv_origin_dates] + [to_day(end)]
    ml_skus = set(tiers.loc[tiers[ROUTE] == ROUTE_GLOBAL_ML, C.SKU])
    assert trainer.fits[-1][1] == ml_skus and ml_skus
    assert isinstance(model.lgbm, ConstantML) and model.lgbm.cutoff_day == to_day(end)
    assert model.feature_importance().empty

    scored = model.validation_metrics[model.validation_metrics[C.MODEL] == TOY_ML].set_index(SEGMENT)
    assert scored.loc["all", "n_obs"] > 0 and np.isfinite(scored.loc["all", "rmse"])
    assert "lgbm" not in set(model.validation_metrics[C.MODEL])

    weights = model.ensemble_weights
    assert (weights["n_obs"] > 0).all() and np.isfinite(weights["mse_lgbm"]).all()
    statistical_alone = _forecast(
        world, dataclasses.replace(model, ensemble_weights=weights.assign(**{WEIGHT_LGBM: 0.0})), tiers
    )
    ml_alone = _forecast(
        world, dataclasses.replace(model, ensemble_weights=weights.assign(**{WEIGHT_LGBM: 1.0})), tiers
    )
    ml_rows = forecasts[C.SKU].isin(ml_skus).to_numpy()
    band_start = np.select([forecasts[C.HORIZON] <= 7, forecasts[C.HORIZON] <= 14], [1, 8], 15)
    w = (
        weights.set_index([C.TIER, "band_start"])[WEIGHT_LGBM]
        .reindex(pd.MultiIndex.from_arrays([forecasts[C.TIER], band_start]))
        .to_numpy()
    )
    assert np.allclose(
        forecasts[C.FORECAST].to_numpy()[ml_rows],
        (w * TOY_ML_LEVEL + (1.0 - w) * statistical_alone[C.FORECAST].to_numpy())[ml_rows],
    )
    served_alone = ml_alone[ml_rows & (ml_alone[C.TIER] == 2).to_numpy()]
    assert len(served_alone) and (served_alone[C.MODEL] == TOY_ML).all()
    assert (served_alone[C.FORECAST] == TOY_ML_LEVEL).all()
