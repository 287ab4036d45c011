"""The model registry service on temporary SQLite MLflow stores and real DuckDB files (no Dagster).

Every test that touches MLflow first points MLflow's global tracking and registry URIs somewhere else
(``elsewhere``) and runs in an empty working directory: the registry works through its own client only,
so afterwards the global URIs are unchanged, no run is active, and nothing was written elsewhere or in
``./mlruns``.
"""

import datetime as dt
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import duckdb
import lightgbm as lgb
import mlflow
import numpy as np
import pandas as pd
import pytest

import demand_platform
from demand_platform import columns as C
from demand_platform import forecasting, registry
from demand_platform.metrics import RMSE, WMAPE
from demand_platform.registry import CandidateScores, ModelRegistry
from demand_platform.schemas import TrainedModelsModel

DAY = [dt.date(2024, 1, 1) + dt.timedelta(days=i) for i in range(10)]
NAN = float("nan")


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ModelRegistry]:
    """A registry on a fresh SQLite store, with MLflow's global URIs pointing elsewhere meanwhile."""
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    elsewhere = tmp_path / "elsewhere"
    previous = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
    mlflow.set_tracking_uri(elsewhere.as_uri())
    mlflow.set_registry_uri(elsewhere.as_uri())
    try:
        yield ModelRegistry(f"sqlite:///{tmp_path / 'mlflow.db'}", experiment_name="test")
        assert mlflow.get_tracking_uri() == elsewhere.as_uri()
        assert mlflow.get_registry_uri() == elsewhere.as_uri()
        assert mlflow.active_run() is None
        assert not elsewhere.exists() and not list(work.iterdir())
    finally:
        mlflow.set_tracking_uri(previous[0])
        mlflow.set_registry_uri(previous[1])


def _scores(score: float, baseline: float = NAN, metric: str = RMSE) -> CandidateScores:
    return CandidateScores(score, baseline, metric, NAN, NAN)


def _register(reg: ModelRegistry, bundle: object, wh: str, day: str, score: float, **kwargs) -> str:
    return reg.register(bundle, wh, day, score=score, **kwargs)


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


def test_first_model_is_gated_against_the_baseline(store: ModelRegistry) -> None:
    reg = store
    worse = _register(reg, {"m": 1}, "W1", "2024-01-01", 0.6, metrics={"wmape": 0.6})
    record = registry.empty_record()
    decision = reg.gate(record, "W1", DAY[0], worse, _scores(0.6, baseline=0.5), margin=0.0)
    assert not decision.promoted and decision.reference == "seasonal_naive"
    assert decision.production_version is None and "no production model yet" in decision.reason
    record = _store(record, DAY[0], decision)
    assert reg.promote(record, "W1") is None and reg.alias_version("W1") is None
    served = registry.resolve_served_version(record, "W1", DAY[0])
    assert served == registry.ServedVersion("W1", DAY[0], worse, True, DAY[0])
    assert served.model_version == f"{worse}-baseline"

    better = _register(reg, {"m": 2}, "W1", "2024-01-02", 0.4, boosters={"1_7": _booster()})
    decision = reg.gate(record, "W1", DAY[1], better, _scores(0.4, baseline=0.5), margin=0.1)
    assert decision.promoted and decision.production_version == better
    assert reg.alias_version("W1") is None  # deciding moves nothing
    record = _store(record, DAY[1], decision)
    served = registry.resolve_served_version(record, "W1", DAY[1])
    assert served.version == better and not served.baseline and served.model_version == better
    assert reg.load("W1", served.version) == {"m": 2}
    assert reg.promote(record, "W1") == better == reg.alias_version("W1")


def test_candidate_must_beat_production_by_the_margin(store: ModelRegistry) -> None:
    reg = store
    record = registry.empty_record()
    first = _register(reg, {"m": 1}, "W2", "2024-01-01", 0.40)
    decision = reg.gate(record, "W2", DAY[0], first, _scores(0.40, baseline=0.9), margin=0.05)
    record = _store(record, DAY[0], decision)
    # 0.39 beats production's 0.40 but not by 5% (the bar is 0.38), though it beats the baseline by far.
    close = _register(reg, {"m": 2}, "W2", "2024-01-02", 0.39)
    decision = reg.gate(record, "W2", DAY[1], close, _scores(0.39, baseline=0.9), margin=0.05)
    assert not decision.promoted and decision.production_version == first and "rejected" in decision.reason
    assert decision.reference == "production" and decision.reference_score == 0.40
    record = _store(record, DAY[1], decision)
    served = registry.resolve_served_version(record, "W2", DAY[1])
    assert reg.load("W2", served.version) == {"m": 1}
    clear = _register(reg, {"m": 3}, "W2", "2024-01-03", 0.30)
    decision = reg.gate(record, "W2", DAY[2], clear, _scores(0.30, baseline=0.9), margin=0.05)
    assert decision.promoted and decision.production_version == clear
    record = _store(record, DAY[2], decision)
    assert reg.load("W2", registry.resolve_served_version(record, "W2", DAY[2]).version) == {"m": 3}


def test_decide_promotion_holds_the_candidate_to_its_reference_by_the_margin() -> None:
    """The pure gate the benchmarks call: the reference is production when its score is of the same
    metric, else seasonal naive; the candidate must be at least ``margin`` (relative) below it."""
    first = registry.decide_promotion("W1", "candidate", _scores(0.95, baseline=1.0), 0.05)
    assert first.promoted and first.reference == "seasonal_naive" and first.production_version == "candidate"
    assert not registry.decide_promotion("W1", "candidate", _scores(0.951, baseline=1.0), 0.05).promoted
    # Production at 0.8, 5%: the bar is 0.76; 0.75 passes, 0.77 does not; the baseline plays no part.
    current = ("3", 0.8, RMSE)
    assert registry.decide_promotion("W1", "4", _scores(0.75, baseline=0.1), 0.05, current).promoted
    refused = registry.decide_promotion("W1", "4", _scores(0.77, baseline=5.0), 0.05, current)
    assert not refused.promoted and refused.production_version == "3"
    assert refused.reason.startswith("demand_W1 v4 rejected") and "production stays v3" in refused.reason
    # Production scored on another metric: seasonal naive is the reference, production stays if refused.
    other = registry.decide_promotion("W1", "4", _scores(0.9, baseline=0.5), 0.0, ("3", 0.1, WMAPE))
    assert not other.promoted and other.reference == "seasonal_naive" and other.production_version == "3"
    # No reference score at all (NaN baseline, no production): any candidate passes.
    assert registry.decide_promotion("W1", "1", _scores(9.0), 0.5).promoted


def test_candidate_scores_and_the_record_row_of_a_decision() -> None:
    metrics = pd.DataFrame(
        {
            forecasting.SEGMENT: [forecasting.SEGMENT_ALL, forecasting.SEGMENT_ALL, "tier_1"],
            C.MODEL: [forecasting.MODEL_TIERED, forecasting.MODEL_SEASONAL_NAIVE, forecasting.MODEL_TIERED],
            WMAPE: [0.4, 0.6, 0.1],
            RMSE: [2.0, 3.0, 1.0],
            "mae": [1.0, 1.5, 0.5],
            "bias": [0.0, 0.1, 0.0],
        }
    )
    scores = CandidateScores.of(metrics)
    assert scores == CandidateScores(2.0, 3.0, forecasting.GATE_METRIC, 0.4, 0.6)
    assert registry.logged_metrics(metrics)["tier_1_tiered_rmse"] == 1.0
    decision = registry.decide_promotion("W1", "7", scores, 0.01)
    row = registry.record_row(DAY[2], "W1", decision, scores, 12.5)
    assert list(row) == list(TrainedModelsModel.to_schema().columns)
    assert row[registry.VERSION] == "7" and row[registry.PROMOTED] and row[registry.REFERENCE_WMAPE] == 0.6
    assert row[C.ORIGIN_DATE] == pd.Timestamp(DAY[2]) and row[registry.TRAIN_SECONDS] == 12.5
    # Against production the reference's WMAPE is unknown to the record.
    against = registry.decide_promotion("W1", "8", scores, 0.01, ("7", 2.5, RMSE))
    assert np.isnan(registry.record_row(DAY[3], "W1", against, scores, 1.0)[registry.REFERENCE_WMAPE])


def test_logged_model_ships_its_code_and_pins_third_party_requirements(
    store: ModelRegistry, tmp_path: Path
) -> None:
    reg = store
    version = _register(reg, {"m": 1}, "W3", "2024-01-01", 0.3, params={"a": 1}, metrics={"wmape": 0.3})
    # Artifacts live beside the store, not in ./mlruns of the current directory.
    assert any((tmp_path / "mlartifacts").rglob("MLmodel"))
    # The version's source loads as is, without any tracking URI (the global one points elsewhere).
    source = reg.model_uri("W3", version)
    assert source.startswith((tmp_path / "mlartifacts").as_uri())
    assert mlflow.pyfunc.load_model(source).unwrap_python_model().bundle == {"m": 1}
    local = Path(mlflow.artifacts.download_artifacts(artifact_uri=source, dst_path=str(tmp_path / "m")))
    requirements = (local / "requirements.txt").read_text().splitlines()
    assert "lightgbm==" in "\n".join(requirements) and "pandas==" in "\n".join(requirements)
    # No demand-platform pin (a name anyone could publish on the package index): the code ships along.
    assert not [r for r in requirements if "demand" in r.lower()]
    assert all("==" in r for r in requirements)
    code = local / "code" / "demand_platform"
    package = Path(demand_platform.__file__).parent
    assert {f.relative_to(code) for f in code.rglob("*.py")} == {
        f.relative_to(package) for f in package.rglob("*.py")
    }
    assert (code / "registry.py").is_file() and not list(code.rglob("__pycache__"))
    run = reg.client.get_run(reg.client.get_model_version(registry.model_name("W3"), version).run_id)
    assert run.data.params == {"a": "1"} and run.data.metrics == {"wmape": 0.3}
    assert run.info.status == "FINISHED" and run.data.tags[registry.WAREHOUSE_TAG] == "W3"

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
        [
            sys.executable,
            "-I",
            "-c",
            child,
            reg.tracking_uri,
            f"models:/{registry.model_name('W3')}/{version}",
        ],
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


def test_scores_of_another_metric_are_never_compared(store: ModelRegistry) -> None:
    """A production version scored on WMAPE (registered before the gate compared RMSE) is no reference
    for an RMSE score: the candidate is held to seasonal naive's bar, and production stays if it fails."""
    reg = store
    legacy = _register(reg, {"m": 1}, "W4", "2024-01-01", 0.5, score_metric="wmape")
    record = registry.empty_record()
    decision = reg.gate(record, "W4", DAY[0], legacy, _scores(0.5, 0.9, "wmape"), 0.0)
    assert decision.promoted
    record = _store(record, DAY[0], decision)
    assert reg.version_score("W4", legacy) == (0.5, "wmape")
    # An RMSE of 3.0 is far above the WMAPE 0.5 of production, but below seasonal naive's RMSE 4.0.
    new = _register(reg, {"m": 2}, "W4", "2024-01-02", 3.0, score_metric="rmse")
    decision = reg.gate(record, "W4", DAY[1], new, _scores(3.0, 4.0, "rmse"), 0.05)
    assert decision.promoted and decision.reference == "seasonal_naive" and "rmse" in decision.reason
    record = _store(record, DAY[1], decision)
    assert reg.version_score("W4", new) == (3.0, "rmse")
    worse = _register(reg, {"m": 3}, "W4", "2024-01-03", 3.5, score_metric="rmse")
    decision = reg.gate(record, "W4", DAY[2], worse, _scores(3.5, 4.0, "rmse"), 0.05)
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
        # The service answers the same from the same table (no MLflow store is read).
        service = ModelRegistry(f"sqlite:///{tmp_path / 'unused.db'}")
        assert service.served_version(con, "W1", DAY[4]) == registry.served_version(con, "W1", DAY[4])
        assert not (tmp_path / "unused.db").exists()
        assert set(registry.read_record(con, ["W1"])[C.WAREHOUSE_ID]) == {"W1"}
        assert len(registry.read_record(con)) == 3
    finally:
        con.close()


def test_gate_reference_is_the_production_before_the_origin(store: ModelRegistry) -> None:
    """The reference is the version in production just before the candidate's origin: never the
    partition's own previous row (which the candidate's row replaces), never a later origin's."""
    reg = store
    v1 = _register(reg, {"m": 1}, "W5", "2024-01-02", 0.5)
    v2 = _register(reg, {"m": 2}, "W5", "2024-01-04", 0.3)
    record = _record((DAY[1], "W5", v1, True), (DAY[3], "W5", v2, True))
    # Re-running D3: held to v1's 0.5 (less 5%), not to its own previous v2's 0.3.
    rerun = _register(reg, {"m": 3}, "W5", "2024-01-04", 0.45)
    decision = reg.gate(record, "W5", DAY[3], rerun, _scores(0.45, 0.9), 0.05)
    assert decision.promoted and decision.reference == "production" and decision.reference_score == 0.5
    # A backfill at D0 sees no production before it (v1 and v2 came later): seasonal naive's bar.
    early = _register(reg, {"m": 4}, "W5", "2024-01-01", 0.95)
    decision = reg.gate(record, "W5", DAY[0], early, _scores(0.95, 0.9), 0.05)
    assert (
        not decision.promoted
        and decision.reference == "seasonal_naive"
        and decision.production_version is None
    )


def test_promote_mirrors_the_record_on_the_alias(store: ModelRegistry) -> None:
    reg = store
    v1 = _register(reg, {"m": 1}, "W6", "2024-01-03", 0.5)
    v2 = _register(reg, {"m": 2}, "W6", "2024-01-02", 0.4)
    orphan = _register(reg, {"m": 3}, "W6", "2024-01-04", 0.1)
    # Trained out of order: the alias names the version serving the latest recorded origin (v1 at D2),
    # not the last registered (the orphan is in no row) nor the last promoted by run order (v2).
    record = _record((DAY[2], "W6", v1, True), (DAY[1], "W6", v2, True))
    assert reg.promote(record, "W6") == v1 == reg.alias_version("W6")
    assert reg.promote(record, "W6") == v1  # idempotent
    reg.client.set_registered_model_alias(registry.model_name("W6"), "production", orphan)
    assert reg.promote(record, "W6") == v1 == reg.alias_version("W6")
    # A record whose latest origin promoted nothing since a rejection replaced D2: back to v2.
    record = registry.with_rows(record, _record((DAY[2], "W6", v1, False)))
    assert reg.promote(record, "W6") == v2 == reg.alias_version("W6")
    # No promotion recorded at all: no alias.
    none = _record((DAY[1], "W6", v2, False), (DAY[2], "W6", v1, False))
    assert reg.promote(none, "W6") is None and reg.alias_version("W6") is None
    assert reg.promote(registry.empty_record(), "W7") is None


def test_find_version_reuses_only_complete_registrations(store: ModelRegistry) -> None:
    reg = store
    tags = {"dagster_partition": "2024-01-01|W8", "dagster_run_id": "run-1"}
    version = _register(reg, {"m": 1}, "W8", "2024-01-01", 0.5, tags=tags)
    found = reg.find_version("W8", tags)
    assert found is not None and found[0] == version and found[1]["dagster_run_id"] == "run-1"
    assert reg.find_version("W8", {**tags, "dagster_run_id": "run-2"}) is None
    assert reg.find_version("W9", tags) is None
    # A registration cut short (no score tags yet) is never reused.
    name = registry.model_name("W8")
    cut = reg.client.create_model_version(name, reg.model_uri("W8", version), tags=tags)
    assert int(cut.version) > int(version)
    found = reg.find_version("W8", tags)
    assert found is not None and found[0] == version


def test_load_of_a_version_missing_from_the_store_names_it(store: ModelRegistry) -> None:
    with pytest.raises(ValueError, match=r"demand_W1 v3, recorded in trained_models, is not in the MLflow"):
        store.load("W1", "3")


def test_two_registries_in_one_process_keep_to_their_own_store(store: ModelRegistry, tmp_path: Path) -> None:
    """Nothing global: a second store's versions, aliases and bundles never mix with the first's."""
    first = store
    second = ModelRegistry(f"sqlite:///{tmp_path / 'second' / 'mlflow.db'}", experiment_name="test")
    (tmp_path / "second").mkdir()
    a = _register(first, {"store": 1}, "W1", "2024-01-01", 0.5)
    b = _register(second, {"store": 2}, "W1", "2024-01-01", 0.5)
    assert a == b == "1"
    record = _record((DAY[0], "W1", "1", True))
    assert second.promote(record, "W1") == "1" and first.alias_version("W1") is None
    assert first.load("W1", "1") == {"store": 1} and second.load("W1", "1") == {"store": 2}
    assert any((tmp_path / "second" / "mlartifacts").rglob("MLmodel"))


def test_with_rows_replaces_the_partitions_it_holds() -> None:
    record = _record((DAY[1], "W1", "1", True), (DAY[2], "W1", "2", True), (DAY[2], "W2", "3", False))
    updated = registry.with_rows(record, _record((DAY[2], "W1", "4", False)))
    assert sorted(map(tuple, updated[[registry.VERSION, registry.PROMOTED]].to_numpy().tolist())) == [
        ("1", True),
        ("3", False),
        ("4", False),
    ]
    assert registry.with_rows(record, pd.DataFrame()).equals(record)
