"""The MLflow registry, the promotion gate, serving and the alias mirror, on a temporary SQLite tracking
store and real DuckDB files (no Dagster)."""

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import duckdb
import lightgbm as lgb
import mlflow
import numpy as np
import pandas as pd
import pytest

from demand_platform import columns as C
from demand_platform import registry

DAY = [dt.date(2024, 1, 1) + dt.timedelta(days=i) for i in range(10)]


@pytest.fixture
def store(tmp_path: Path):
    previous = mlflow.get_tracking_uri()
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    registry.ensure_experiment(uri, "test")
    assert registry.ensure_experiment(uri, "test")  # idempotent
    mlflow.set_experiment("test")
    yield uri
    mlflow.set_tracking_uri(previous)


def _booster() -> lgb.Booster:
    rng = np.random.default_rng(0)
    data = lgb.Dataset(rng.random((100, 3)), rng.random(100))
    return lgb.train({"verbose": -1, "num_threads": 1}, data, num_boost_round=3)


def _record(*rows: tuple[dt.date, str, str, bool]) -> pd.DataFrame:
    """A record of promotions: (origin, warehouse, version, promoted) rows."""
    frame = pd.DataFrame(rows, columns=[C.ORIGIN_DATE, C.WAREHOUSE_ID, registry.VERSION, registry.PROMOTED])
    frame[C.ORIGIN_DATE] = pd.to_datetime(frame[C.ORIGIN_DATE])
    return registry.with_rows(registry.empty_record(), frame)


def _store(record: pd.DataFrame, day: dt.date, decision: registry.PromotionDecision) -> pd.DataFrame:
    """``record`` after the partition's row is stored (what the IO manager's write does)."""
    wh = decision.model_name.removeprefix("demand_")
    return registry.with_rows(record, _record((day, wh, decision.candidate_version, decision.promoted)))


def test_first_model_is_gated_against_the_baseline(store) -> None:
    worse = registry.log_candidate({"m": 1}, "W1", "2024-01-01", {}, {"wmape": 0.6}, None, None, score=0.6)
    record = registry.empty_record()
    decision = registry.gate_candidate(record, "W1", DAY[0], worse, 0.6, baseline_score=0.5, margin=0.0)
    assert not decision.promoted and decision.reference == "seasonal_naive"
    assert decision.production_version is None and "no production model yet" in decision.reason
    record = _store(record, DAY[0], decision)
    assert registry.sync_production_alias(record, "W1") is None and registry.alias_version("W1") is None
    served = registry.resolve_served_version(record, "W1", DAY[0])
    assert served == registry.ServedVersion("W1", DAY[0], worse, True, DAY[0])
    assert served.model_version == f"{worse}-baseline"

    better = registry.log_candidate(
        {"m": 2}, "W1", "2024-01-02", {}, {}, None, {"1_7": _booster()}, score=0.4
    )
    decision = registry.gate_candidate(record, "W1", DAY[1], better, 0.4, baseline_score=0.5, margin=0.1)
    assert decision.promoted and decision.production_version == better
    assert registry.alias_version("W1") is None  # deciding moves nothing
    record = _store(record, DAY[1], decision)
    served = registry.resolve_served_version(record, "W1", DAY[1])
    assert served.version == better and not served.baseline and served.model_version == better
    assert registry.load_bundle("W1", served.version) == {"m": 2}
    assert registry.sync_production_alias(record, "W1") == better == registry.alias_version("W1")


def test_candidate_must_beat_production_by_the_margin(store) -> None:
    record = registry.empty_record()
    first = registry.log_candidate({"m": 1}, "W2", "2024-01-01", {}, {}, None, None, score=0.40)
    decision = registry.gate_candidate(record, "W2", DAY[0], first, 0.40, baseline_score=0.9, margin=0.05)
    record = _store(record, DAY[0], decision)
    close = registry.log_candidate({"m": 2}, "W2", "2024-01-02", {}, {}, None, None, score=0.39)
    decision = registry.gate_candidate(record, "W2", DAY[1], close, 0.39, baseline_score=0.9, margin=0.05)
    assert not decision.promoted and decision.production_version == first and "rejected" in decision.reason
    assert decision.reference == "production" and decision.reference_score == 0.40
    record = _store(record, DAY[1], decision)
    served = registry.resolve_served_version(record, "W2", DAY[1])
    assert registry.load_bundle("W2", served.version) == {"m": 1}
    clear = registry.log_candidate({"m": 3}, "W2", "2024-01-03", {}, {}, None, None, score=0.30)
    decision = registry.gate_candidate(record, "W2", DAY[2], clear, 0.30, baseline_score=0.9, margin=0.05)
    assert decision.promoted
    record = _store(record, DAY[2], decision)
    assert registry.load_bundle("W2", registry.resolve_served_version(record, "W2", DAY[2]).version) == {
        "m": 3
    }


def test_logged_model_ships_its_code_and_pins_third_party_requirements(store, tmp_path: Path) -> None:
    version = registry.log_candidate({"m": 1}, "W3", "2024-01-01", {"a": 1}, {"wmape": 0.3}, None, None, 0.3)
    mv = mlflow.MlflowClient().get_model_version(registry.model_name("W3"), version)
    # Artifacts live beside the store, not in ./mlruns of the current directory.
    assert any((tmp_path / "mlartifacts").rglob("MLmodel"))
    local = Path(mlflow.artifacts.download_artifacts(artifact_uri=mv.source, dst_path=str(tmp_path / "m")))
    requirements = (local / "requirements.txt").read_text().splitlines()
    assert "lightgbm==" in "\n".join(requirements) and "pandas==" in "\n".join(requirements)
    # No demand-platform pin (a name anyone could publish on the package index): the code ships along.
    assert not [r for r in requirements if "demand" in r.lower()]
    assert all("==" in r for r in requirements)
    code = local / "code" / "demand_platform"
    assert (code / "registry.py").is_file() and (code / "forecasting.py").is_file()
    assert not list(code.rglob("__pycache__"))

    # An interpreter that cannot import demand_platform (the editable install's finder removed, no cwd
    # or PYTHONPATH) unpickles the model's class from the shipped code.
    child = """
import importlib.util, json, sys
sys.meta_path[:] = [f for f in sys.meta_path if "__editable__" not in getattr(f, "__module__", "")]
sys.path_hooks[:] = [h for h in sys.path_hooks if "__editable__" not in getattr(h, "__module__", "")]
sys.path_importer_cache.clear()
blocked = importlib.util.find_spec("demand_platform") is None
import mlflow
mlflow.set_tracking_uri(sys.argv[1])
model = mlflow.pyfunc.load_model(sys.argv[2])
import demand_platform.registry
wrapped = model.unwrap_python_model()
print(json.dumps({"blocked": blocked, "module": demand_platform.registry.__file__,
                  "class": type(wrapped).__module__, "bundle": wrapped.bundle}))
"""
    work = tmp_path / "work"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "MLFLOW"))}
    env["PYTHONPATH"] = str(work)
    done = subprocess.run(
        [sys.executable, "-I", "-c", child, store, f"models:/{registry.model_name('W3')}/{version}"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert (
        report["blocked"] and report["class"] == "demand_platform.registry" and report["bundle"] == {"m": 1}
    )
    assert Path(report["module"]).is_relative_to(tmp_path / "mlartifacts"), report["module"]


def test_scores_of_another_metric_are_never_compared(store) -> None:
    """A production version scored on WMAPE (registered before the gate compared RMSE) is no reference
    for an RMSE score: the candidate is held to seasonal naive's bar, and production stays if it fails."""
    legacy = registry.log_candidate(
        {"m": 1}, "W4", "2024-01-01", {}, {}, None, None, 0.5, score_metric="wmape"
    )
    record = registry.empty_record()
    decision = registry.gate_candidate(record, "W4", DAY[0], legacy, 0.5, 0.9, 0.0, score_metric="wmape")
    assert decision.promoted
    record = _store(record, DAY[0], decision)
    assert registry.version_score("W4", legacy) == (0.5, "wmape")
    # An RMSE of 3.0 is far above the WMAPE 0.5 of production, but below seasonal naive's RMSE 4.0.
    new = registry.log_candidate({"m": 2}, "W4", "2024-01-02", {}, {}, None, None, 3.0, score_metric="rmse")
    decision = registry.gate_candidate(record, "W4", DAY[1], new, 3.0, 4.0, 0.05, score_metric="rmse")
    assert decision.promoted and decision.reference == "seasonal_naive" and "rmse" in decision.reason
    record = _store(record, DAY[1], decision)
    assert registry.version_score("W4", new) == (3.0, "rmse")
    worse = registry.log_candidate({"m": 3}, "W4", "2024-01-03", {}, {}, None, None, 3.5, score_metric="rmse")
    decision = registry.gate_candidate(record, "W4", DAY[2], worse, 3.5, 4.0, 0.05, score_metric="rmse")
    assert not decision.promoted and decision.reference == "production" and decision.production_version == new


def test_served_version_is_the_latest_promotion_at_or_before_the_origin() -> None:
    record = _record(
        (DAY[1], "W1", "1", True),
        (DAY[3], "W1", "2", False),
        (DAY[5], "W1", "9", True),
        (DAY[5], "W1", "10", True),  # a tie: the later version (10 > 9, not as text)
        (DAY[7], "W1", "11", False),
        (DAY[2], "W2", "3", False),
        (DAY[4], "W2", "4", False),
        (DAY[6], "W2", "5", True),
    )
    expected = {
        DAY[1]: ("1", False, DAY[1]),
        DAY[2]: ("1", False, DAY[1]),
        DAY[3]: ("1", False, DAY[1]),  # a rejection changes nothing
        DAY[4]: ("1", False, DAY[1]),
        DAY[5]: ("10", False, DAY[5]),
        DAY[9]: ("10", False, DAY[5]),
    }
    shuffled = record.sample(frac=1.0, random_state=1)
    for origin, (version, baseline, trained) in expected.items():
        for frame in (record, shuffled):
            assert registry.resolve_served_version(frame, "W1", origin) == registry.ServedVersion(
                "W1", origin, version, baseline, trained
            )
    # Nothing promoted by the origin: the baseline of the latest version trained by then.
    assert registry.resolve_served_version(record, "W2", DAY[2]).model_version == "3-baseline"
    assert registry.resolve_served_version(record, "W2", DAY[5]) == registry.ServedVersion(
        "W2", DAY[5], "4", True, DAY[4]
    )
    assert registry.resolve_served_version(record, "W2", DAY[6]).model_version == "5"
    with pytest.raises(
        ValueError, match=f"no model for warehouse W1 at origin {DAY[0]}.*first partition is {DAY[1]}"
    ):
        registry.resolve_served_version(record, "W1", DAY[0])
    with pytest.raises(ValueError, match="no model for warehouse W9 .*no partition at all"):
        registry.resolve_served_version(record, "W9", DAY[9])


def test_served_version_reads_the_trained_models_table(tmp_path: Path) -> None:
    con = duckdb.connect(str(tmp_path / "platform.duckdb"))
    try:
        with pytest.raises(ValueError, match="no partition at all"):
            registry.served_version(con, "W1", DAY[3])
        # As the IO manager writes the asset: origin as TIMESTAMP, the gate's columns beside.
        rows = pd.DataFrame(
            {
                C.ORIGIN_DATE: pd.to_datetime([DAY[1], DAY[3], DAY[2]]),
                C.WAREHOUSE_ID: ["W1", "W1", "W2"],
                "model_name": ["demand_W1", "demand_W1", "demand_W2"],
                "version": ["1", "2", "3"],
                "promoted": [True, False, True],
                "reason": ["", "", ""],
            }
        )
        con.register("rows", rows)
        con.execute("CREATE TABLE trained_models AS SELECT * FROM rows")
        assert registry.served_version(con, "W1", DAY[4]) == registry.ServedVersion(
            "W1", DAY[4], "1", False, DAY[1]
        )
        assert registry.served_version(con, "W2", DAY[2]).version == "3"
        assert set(registry.read_record(con, ["W1"])[C.WAREHOUSE_ID]) == {"W1"}
        assert len(registry.read_record(con)) == 3
    finally:
        con.close()


def test_gate_reference_is_the_production_before_the_origin(store) -> None:
    """The reference is the version in production just before the candidate's origin: never the
    partition's own previous row (which the candidate's row replaces), never a later origin's."""
    v1 = registry.log_candidate({"m": 1}, "W5", "2024-01-02", {}, {}, None, None, 0.5)
    v2 = registry.log_candidate({"m": 2}, "W5", "2024-01-04", {}, {}, None, None, 0.3)
    record = _record((DAY[1], "W5", v1, True), (DAY[3], "W5", v2, True))
    # Re-running D3: held to v1's 0.5 (less 5%), not to its own previous v2's 0.3.
    rerun = registry.log_candidate({"m": 3}, "W5", "2024-01-04", {}, {}, None, None, 0.45)
    decision = registry.gate_candidate(record, "W5", DAY[3], rerun, 0.45, 0.9, 0.05)
    assert decision.promoted and decision.reference == "production" and decision.reference_score == 0.5
    # A backfill at D0 sees no production before it (v1 and v2 came later): seasonal naive's bar.
    early = registry.log_candidate({"m": 4}, "W5", "2024-01-01", {}, {}, None, None, 0.95)
    decision = registry.gate_candidate(record, "W5", DAY[0], early, 0.95, 0.9, 0.05)
    assert (
        not decision.promoted
        and decision.reference == "seasonal_naive"
        and decision.production_version is None
    )


def test_alias_mirrors_the_record(store) -> None:
    v1 = registry.log_candidate({"m": 1}, "W6", "2024-01-03", {}, {}, None, None, 0.5)
    v2 = registry.log_candidate({"m": 2}, "W6", "2024-01-02", {}, {}, None, None, 0.4)
    orphan = registry.log_candidate({"m": 3}, "W6", "2024-01-04", {}, {}, None, None, 0.1)
    # Trained out of order: the alias names the version serving the latest recorded origin (v1 at D2),
    # not the last registered (the orphan is in no row) nor the last promoted by run order (v2).
    record = _record((DAY[2], "W6", v1, True), (DAY[1], "W6", v2, True))
    assert registry.sync_production_alias(record, "W6") == v1 == registry.alias_version("W6")
    assert registry.sync_production_alias(record, "W6") == v1  # idempotent
    mlflow.MlflowClient().set_registered_model_alias(registry.model_name("W6"), "production", orphan)
    assert registry.sync_production_alias(record, "W6") == v1 == registry.alias_version("W6")
    # A record whose latest origin promoted nothing since a rejection replaced D2: back to v2.
    record = registry.with_rows(record, _record((DAY[2], "W6", v1, False)))
    assert registry.sync_production_alias(record, "W6") == v2 == registry.alias_version("W6")
    # No promotion recorded at all: no alias.
    none = _record((DAY[1], "W6", v2, False), (DAY[2], "W6", v1, False))
    assert registry.sync_production_alias(none, "W6") is None and registry.alias_version("W6") is None
    assert registry.sync_production_alias(registry.empty_record(), "W7") is None


def test_find_version_reuses_only_complete_registrations(store) -> None:
    tags = {"dagster_partition": "2024-01-01|W8", "dagster_run_id": "run-1"}
    version = registry.log_candidate({"m": 1}, "W8", "2024-01-01", {}, {}, None, None, 0.5, tags=tags)
    found = registry.find_version("W8", tags)
    assert found is not None and found[0] == version and found[1]["dagster_run_id"] == "run-1"
    assert registry.find_version("W8", {**tags, "dagster_run_id": "run-2"}) is None
    assert registry.find_version("W9", tags) is None
    # A registration cut short (no score tags yet) is never reused.
    mv = mlflow.MlflowClient().get_model_version(registry.model_name("W8"), version)
    cut = mlflow.register_model(mv.source, registry.model_name("W8"), tags=tags)
    assert int(cut.version) > int(version)
    found = registry.find_version("W8", tags)
    assert found is not None and found[0] == version


def test_with_rows_replaces_the_partitions_it_holds() -> None:
    record = _record((DAY[1], "W1", "1", True), (DAY[2], "W1", "2", True), (DAY[2], "W2", "3", False))
    updated = registry.with_rows(record, _record((DAY[2], "W1", "4", False)))
    assert sorted(map(tuple, updated[[registry.VERSION, registry.PROMOTED]].to_numpy().tolist())) == [
        ("1", True),
        ("3", False),
        ("4", False),
    ]
    assert registry.with_rows(record, pd.DataFrame()).equals(record)
