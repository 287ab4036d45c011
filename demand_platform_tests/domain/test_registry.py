"""The MLflow registry and promotion gate, on a temporary SQLite tracking store (no Dagster)."""

from pathlib import Path

import lightgbm as lgb
import mlflow
import numpy as np
import pytest

from demand_platform import registry


@pytest.fixture
def store(tmp_path: Path):
    previous = mlflow.get_tracking_uri()
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    registry.ensure_experiment(uri, "test")
    assert registry.ensure_experiment(uri, "test")  # idempotent
    mlflow.set_experiment("test")
    yield
    mlflow.set_tracking_uri(previous)


def _booster() -> lgb.Booster:
    rng = np.random.default_rng(0)
    data = lgb.Dataset(rng.random((100, 3)), rng.random(100))
    return lgb.train({"verbose": -1, "num_threads": 1}, data, num_boost_round=3)


def test_first_model_is_gated_against_the_baseline(store) -> None:
    worse = registry.log_candidate({"m": 1}, "W1", "2024-01-01", {}, {"wmape": 0.6}, None, None, score=0.6)
    decision = registry.promote_if_better("W1", worse, 0.6, baseline_score=0.5, margin=0.0)
    assert not decision.promoted and decision.reference == "seasonal_naive"
    assert registry.production_version("W1") is None
    better = registry.log_candidate(
        {"m": 2}, "W1", "2024-01-02", {}, {}, None, {"1_7": _booster()}, score=0.4
    )
    decision = registry.promote_if_better("W1", better, 0.4, baseline_score=0.5, margin=0.1)
    assert decision.promoted and registry.production_version("W1") == (better, 0.4)
    assert registry.load_bundle("W1") == {"m": 2}


def test_candidate_must_beat_production_by_the_margin(store) -> None:
    first = registry.log_candidate({"m": 1}, "W2", "2024-01-01", {}, {}, None, None, score=0.40)
    registry.promote_if_better("W2", first, 0.40, baseline_score=0.9, margin=0.05)
    close = registry.log_candidate({"m": 2}, "W2", "2024-01-02", {}, {}, None, None, score=0.39)
    decision = registry.promote_if_better("W2", close, 0.39, baseline_score=0.9, margin=0.05)
    assert not decision.promoted and decision.production_version == first and "rejected" in decision.reason
    assert registry.load_bundle("W2") == {"m": 1}
    clear = registry.log_candidate({"m": 3}, "W2", "2024-01-03", {}, {}, None, None, score=0.30)
    assert registry.promote_if_better("W2", clear, 0.30, baseline_score=0.9, margin=0.05).promoted
    assert registry.load_bundle("W2") == {"m": 3}


def test_logged_model_pins_its_requirements(store, tmp_path: Path) -> None:
    version = registry.log_candidate({"m": 1}, "W3", "2024-01-01", {"a": 1}, {"wmape": 0.3}, None, None, 0.3)
    mv = mlflow.MlflowClient().get_model_version(registry.model_name("W3"), version)
    # Artifacts live beside the store, not in ./mlruns of the current directory.
    assert any((tmp_path / "mlartifacts").rglob("MLmodel"))
    local = Path(mlflow.artifacts.download_artifacts(artifact_uri=mv.source, dst_path=str(tmp_path)))
    requirements = (local / "requirements.txt").read_text()
    assert "lightgbm==" in requirements and "pandas==" in requirements


def test_scores_of_another_metric_are_never_compared(store) -> None:
    """A production version scored on WMAPE (registered before the gate compared RMSE) is no reference
    for an RMSE score: the candidate is held to seasonal naive's bar, and production stays if it fails."""
    legacy = registry.log_candidate(
        {"m": 1}, "W4", "2024-01-01", {}, {}, None, None, 0.5, score_metric="wmape"
    )
    assert registry.promote_if_better("W4", legacy, 0.5, 0.9, 0.0, score_metric="wmape").promoted
    assert registry.production_score("W4") == (legacy, 0.5, "wmape")
    # An RMSE of 3.0 is far above the WMAPE 0.5 of production, but below seasonal naive's RMSE 4.0.
    new = registry.log_candidate({"m": 2}, "W4", "2024-01-02", {}, {}, None, None, 3.0, score_metric="rmse")
    decision = registry.promote_if_better("W4", new, 3.0, 4.0, 0.05, score_metric="rmse")
    assert decision.promoted and decision.reference == "seasonal_naive" and "rmse" in decision.reason
    assert registry.production_score("W4") == (new, 3.0, "rmse")
    worse = registry.log_candidate({"m": 3}, "W4", "2024-01-03", {}, {}, None, None, 3.5, score_metric="rmse")
    decision = registry.promote_if_better("W4", worse, 3.5, 4.0, 0.05, score_metric="rmse")
    assert not decision.promoted and decision.reference == "production" and decision.production_version == new
