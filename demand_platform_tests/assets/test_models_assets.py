"""trained_models and forecasts through Dagster: temporary DuckDB, temporary SQLite MLflow store.

One synthetic source is ingested once (``raw_sales`` and ``tier_assignments``); each test copies that
database into a home of its own with an empty MLflow store, so the record of promotions
(``trained_models``) and the registry of every test start empty and agree. MLflow's global tracking URI
points elsewhere throughout: the assets work through the registry resource's own client, so it never
changes and nothing is written there; the tests read each store through a ``ModelRegistry`` of its own.
"""

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import mlflow
import pandas as pd
import pytest

import demand_platform
from assets.features import build_feature_assets
from assets.ingestion import build_ingestion_assets
from assets.models import RETRY_POLICY, build_model_assets
from assets.partitions import build_partitions, range_tags
from demand_platform import columns as C
from demand_platform import features, registry
from demand_platform.alerts import read_alerts
from demand_platform.days import to_day
from demand_platform.forecasting.serving import served_features
from demand_platform.registry import ModelRegistry
from demand_platform.settings import PlatformSettings
from demand_platform.source import load_source_tables
from demand_platform.synthetic import GeneratorConfig, generate_source
from demand_platform.tiering import ROUTE, ROUTE_GLOBAL_ML
from demand_platform_tests.conftest import query_database
from resources import build_resources
from resources.duckdb_io import PlatformDuckDBIOManager

START = dt.date(2023, 1, 1)
DAYS = 240
ORIGIN = START + dt.timedelta(days=DAYS - 1)
# Origins of the reproducibility tests: two trainings, an origin between them, one before both.
BEFORE = ORIGIN - dt.timedelta(days=8)
D1 = ORIGIN - dt.timedelta(days=6)
MID = ORIGIN - dt.timedelta(days=4)
D2 = ORIGIN - dt.timedelta(days=2)
# Tests keep Dagster's retries but not its 5 s delays.
QUICK_RETRY = dg.RetryPolicy(max_retries=RETRY_POLICY.max_retries, delay=0.1)
# A negative margin lets a candidate up to 2x worse than the reference through: tests that need a
# promotion at each training get one whatever the synthetic data make of the gate.
ALWAYS = {"ops": {"trained_models": {"config": {"promotion_margin": -1.0}}}}
NEVER = {"ops": {"trained_models": {"config": {"promotion_margin": 0.99}}}}


@dataclass
class Platform:
    """The shared source and database: ``raw_sales`` START..ORIGIN, ``feature_table`` and
    ``tier_assignments`` D1..ORIGIN."""

    root: Path
    settings: PlatformSettings
    assets: list[dg.AssetsDefinition]
    instance: dg.DagsterInstance


@dataclass
class Home:
    """A test's own platform home: a copy of the shared database and an empty MLflow store."""

    settings: PlatformSettings
    resources: dict[str, Any]
    platform: Platform

    @property
    def store(self) -> ModelRegistry:
        """The home's MLflow store, as the resource hands it to the assets."""
        return self.resources["registry"].get_registry()

    def run(self, asset: str, day: dt.date, wh: str, **kwargs: Any) -> dg.ExecuteInProcessResult:
        """Materialize one partition of ``asset`` (``raise_on_error=False`` to see a failure)."""
        resources = {**self.resources, **kwargs.pop("resources", {})}
        before = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
        result = dg.materialize(
            [a for a in self.platform.assets if dg.AssetKey(asset) in a.keys],
            resources=resources,
            instance=self.platform.instance,
            partition_key=dg.MultiPartitionKey({"date": day.isoformat(), "warehouse": wh}),
            **kwargs,
        )
        assert (mlflow.get_tracking_uri(), mlflow.get_registry_uri()) == before
        assert mlflow.active_run() is None
        return result

    def table(self, sql: str) -> pd.DataFrame:
        """A query on the home's database (read-only)."""
        return query_database(self.settings.duckdb_path, sql)

    def served(self, wh: str, origin: dt.date) -> registry.ServedVersion:
        """The serving function on the home's record."""
        con = duckdb.connect(str(self.settings.duckdb_path), read_only=True)
        try:
            return self.store.served_version(con, wh, origin)
        finally:
            con.close()


@pytest.fixture(scope="module", autouse=True)
def elsewhere(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """MLflow's global URIs point to a directory nothing may write to while the module runs."""
    path = tmp_path_factory.mktemp("elsewhere") / "mlruns"
    previous = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
    mlflow.set_tracking_uri(path.as_uri())
    mlflow.set_registry_uri(path.as_uri())
    try:
        yield path
        assert not path.exists(), "something used MLflow's global tracking URI"
    finally:
        mlflow.set_tracking_uri(previous[0])
        mlflow.set_registry_uri(previous[1])


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Platform:
    """A small synthetic source ingested once, with the features and tiers of the origins the tests
    train and forecast at."""
    root = tmp_path_factory.mktemp("models")
    generate_source(
        root / "source", GeneratorConfig(n_skus=30, n_warehouses=2, start=START, days=DAYS, seed=3)
    )
    settings = PlatformSettings(
        home=root / "home", source=root / "source", start_date=START, end_date=ORIGIN, env="test"
    )
    partitions_def = build_partitions(settings)
    upstream = build_ingestion_assets(partitions_def)
    assets = [*upstream, *build_model_assets(partitions_def, settings.timezone, retry_policy=QUICK_RETRY)]
    # Forecasts read the origin's tier_assignments and feature_table partitions.
    tiers = build_feature_assets(partitions_def)
    assets += tiers
    resources = build_resources(settings)
    instance = dg.DagsterInstance.ephemeral()
    for wh in ("WH001", "WH002"):
        for selection, start in ((upstream, START), (tiers, D1)):
            run = dg.materialize(
                selection, resources=resources, instance=instance, tags=range_tags(start, ORIGIN, wh)
            )
            assert run.success
    return Platform(root, settings, assets, instance)


def new_home(platform: Platform, path: Path) -> Home:
    """A home of its own: the shared database copied, an empty MLflow store."""
    settings = PlatformSettings(
        home=path, source=platform.settings.source, start_date=START, end_date=ORIGIN, env="test"
    )
    path.mkdir(parents=True)
    shutil.copy(platform.settings.duckdb_path, settings.duckdb_path)
    return Home(settings, build_resources(settings), platform)


class _Flaky(dg.IOManager):
    """Delegates to the platform IO manager; fails ``trained_models`` writes while the counter allows."""

    def __init__(self, inner: dg.IOManager, counter: Path) -> None:
        self.inner, self.counter = inner, counter

    def handle_output(self, context: dg.OutputContext, obj: Any) -> None:
        remaining = int(self.counter.read_text())
        if context.asset_key == dg.AssetKey("trained_models") and remaining > 0:
            self.counter.write_text(str(remaining - 1))
            raise RuntimeError("IO Error: Could not set lock on file (injected)")
        self.inner.handle_output(context, obj)

    def load_input(self, context: dg.InputContext) -> Any:
        return self.inner.load_input(context)


class FlakyIOManager(PlatformDuckDBIOManager):
    """The platform's IO manager whose next ``failures`` writes of ``trained_models`` raise (a file)."""

    failures_file: str

    def create_io_manager(self, context: dg.InitResourceContext) -> dg.IOManager:
        """The platform IO manager wrapped in the failure injector."""
        return _Flaky(super().create_io_manager(context), Path(self.failures_file))


def flaky_io(home: Home, failures: int) -> FlakyIOManager:
    """An IO manager for ``home`` whose next ``failures`` trained_models writes fail."""
    counter = home.settings.home / "injected_failures"
    counter.write_text(str(failures))
    return FlakyIOManager(database=str(home.settings.duckdb_path), schema="main", failures_file=str(counter))


def _versions(home: Home, wh: str) -> list[str]:
    """Every registered version of a warehouse's model in a home's store, oldest first."""
    found = home.store.client.search_model_versions(f"name = '{registry.model_name(wh)}'")
    return sorted((str(v.version) for v in found), key=int)


def _materialization(result: dg.ExecuteInProcessResult, asset: str) -> Any:
    return result.asset_materializations_for_node(asset)[0].metadata


def _retries(result: dg.ExecuteInProcessResult) -> int:
    return sum(e.event_type_value == "STEP_UP_FOR_RETRY" for e in result.all_events)


@pytest.fixture(scope="module")
def trained_home(platform: Platform, tmp_path_factory: pytest.TempPathFactory) -> Home:
    """A home where WH001 was trained and forecast at ORIGIN."""
    home = new_home(platform, tmp_path_factory.mktemp("trained") / "home")
    assert home.run("trained_models", ORIGIN, "WH001").success
    assert home.run("forecasts", ORIGIN, "WH001").success
    return home


def test_train_registers_and_promotes_then_forecasts(trained_home: Home) -> None:
    home = trained_home
    row = home.table("SELECT * FROM trained_models WHERE warehouse_id = 'WH001'").iloc[0]
    assert row["promoted"] and row["reference"] == "seasonal_naive"
    assert row["validation_wmape"] < row["reference_wmape"]
    assert "validation rmse" in row["reason"]  # the gate compares RMSE; the table's WMAPE is for planners
    # The record serves the promoted version, and the alias mirrors it.
    assert home.served("WH001", ORIGIN) == registry.ServedVersion(
        "WH001", ORIGIN, row["version"], False, ORIGIN
    )
    assert home.store.alias_version("WH001") == row["version"]
    # The MLflow run carries the partition tag, metrics, importance and the pip-pinned model.
    client = home.store.client
    experiment = client.get_experiment_by_name("demand_platform")
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id], "tags.warehouse_id = 'WH001'")
    assert {run.data.tags["dagster_partition"] for run in runs} == {f"{ORIGIN}|WH001"}
    assert all("all_tiered_wmape" in run.data.metrics for run in runs)
    # The stop hazard the CV picked is logged with the settings (a probability, 0 = no adjustment).
    assert all(0.0 <= float(run.data.params["stop_hazard"]) < 1.0 for run in runs)
    # WH001 (30 SKUs) is far below pool_series: its LightGBM learned from WH002's series too, read from
    # the platform's raw_sales by the asset.
    assert all(0 < int(run.data.params["pooled_series"]) <= 30 for run in runs)
    assert all(str(home.settings.home / "mlartifacts") in run.info.artifact_uri for run in runs)
    artifacts = {a.path for a in client.list_artifacts(runs[0].info.run_id)}
    assert {"bundle", "feature_importance.csv"} <= artifacts

    forecasts = home.table("SELECT * FROM forecasts WHERE warehouse_id = 'WH001'")
    n_skus = forecasts[C.SKU].nunique()
    assert len(forecasts) == n_skus * 30 and sorted(forecasts[C.HORIZON].unique()) == list(range(1, 31))
    assert (forecasts[C.FORECAST] >= 0).all() and (forecasts[C.P50] <= forecasts[C.P95]).all()
    assert set(forecasts[C.MODEL_VERSION]) == {row["version"]}
    assert (pd.to_datetime(forecasts[C.TARGET_DATE]) > pd.Timestamp(ORIGIN)).all()

    # The registered pyfunc model behind the alias forecasts on its own from the history, like the asset
    # did. Its source loads without a tracking URI (MLflow's own models:/ resolution would use the
    # global one even when given explicit URIs).
    pyfunc = mlflow.pyfunc.load_model(home.store.model_uri("WH001", row["version"]))
    history = home.table("SELECT * FROM raw_sales WHERE warehouse_id = 'WH001'")
    alone = pyfunc.predict(history)
    merged = forecasts.merge(alone, on=[C.SKU, C.HORIZON], suffixes=("", "_pyfunc"))
    assert len(merged) == len(forecasts)
    assert (merged[C.FORECAST] - merged[f"{C.FORECAST}_pyfunc"]).abs().max() < 1e-9


# The child of the test below: no demand_platform anywhere (the editable install's finder removed, an
# isolated interpreter: no cwd, no PYTHONPATH), then the registered model loaded and run.
CHILD = """
import importlib.util, json, sys
sys.meta_path[:] = [f for f in sys.meta_path if "__editable__" not in getattr(f, "__module__", "")]
sys.path_hooks[:] = [h for h in sys.path_hooks if "__editable__" not in getattr(h, "__module__", "")]
sys.path_importer_cache.clear()
blocked = importlib.util.find_spec("demand_platform") is None
import mlflow, pandas as pd
baseline_modules = set(sys.modules)
mlflow.set_tracking_uri(sys.argv[1])
model = mlflow.pyfunc.load_model(sys.argv[2])
model.predict(pd.read_parquet(sys.argv[3])).to_parquet(sys.argv[4])
import ast, demand_platform, pathlib, re
from importlib.metadata import packages_distributions

# The third-party distributions the package code loaded by the model imports itself (module level or
# in a function): these must be pinned; what they need in turn comes with them.
direct = set()
for name, module in list(sys.modules.items()):
    if name.split(".")[0] != "demand_platform" or not getattr(module, "__file__", None):
        continue
    for node in ast.walk(ast.parse(pathlib.Path(module.__file__).read_text())):
        if isinstance(node, ast.Import):
            direct |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            direct.add(node.module.split(".")[0])
dists = packages_distributions()
imported = {
    re.sub(r"[-_.]+", "-", d).lower()
    for m in direct - set(sys.stdlib_module_names) - {"demand_platform"}
    for d in dists.get(m, [m])
}
print(json.dumps({"blocked": blocked, "package": demand_platform.__file__, "imports": sorted(imported)}))
"""


def test_registered_model_runs_without_the_platform_installed(trained_home: Home, tmp_path: Path) -> None:
    """The logged pyfunc ships the package code and pins third-party packages only: it loads and
    forecasts in an interpreter that cannot import demand_platform otherwise."""
    home = trained_home
    version = home.store.alias_version("WH001")
    assert version is not None
    mv = home.store.client.get_model_version(registry.model_name("WH001"), version)
    local = Path(
        mlflow.artifacts.download_artifacts(artifact_uri=mv.source, dst_path=str(tmp_path / "model"))
    )
    requirements = (local / "requirements.txt").read_text().splitlines()
    assert not [r for r in requirements if "demand" in r.lower()]
    names = {r.split("==")[0].lower() for r in requirements}
    assert {"lightgbm", "numpy", "pandas"} <= names
    # The whole package's code ships, whatever its layout.
    package = Path(demand_platform.__file__).parent
    shipped = local / "code" / "demand_platform"
    assert {f.relative_to(shipped) for f in shipped.rglob("*.py")} == {
        f.relative_to(package) for f in package.rglob("*.py")
    }

    history = home.table("SELECT * FROM raw_sales WHERE warehouse_id = 'WH001'")
    history.to_parquet(tmp_path / "history.parquet")
    work = tmp_path / "work"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "MLFLOW"))}
    env["PYTHONPATH"] = str(work)
    done = subprocess.run(
        [
            sys.executable,
            "-I",
            "-c",
            CHILD,
            home.settings.mlflow_uri,
            f"models:/{registry.model_name('WH001')}/{version}",
            str(tmp_path / "history.parquet"),
            str(tmp_path / "out.parquet"),
        ],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["blocked"], "demand_platform was importable before the model was loaded"
    root = Path(__file__).resolve().parents[2]
    assert not Path(report["package"]).is_relative_to(root), report["package"]
    # Every third-party package the shipped code imports is pinned.
    assert {d for d in report["imports"] if not d.startswith("mlflow")} <= names, (report, names)
    forecasts = home.table("SELECT * FROM forecasts WHERE warehouse_id = 'WH001'")
    alone = pd.read_parquet(tmp_path / "out.parquet")
    merged = forecasts.merge(alone, on=[C.SKU, C.HORIZON], suffixes=("", "_child"))
    assert len(merged) == len(forecasts)
    assert (merged[C.FORECAST] - merged[f"{C.FORECAST}_child"]).abs().max() < 1e-9


def test_rejected_candidate_keeps_production_and_alerts(platform: Platform, tmp_path: Path) -> None:
    home = new_home(platform, tmp_path / "home")
    assert home.run("trained_models", D1, "WH002").success
    first = home.table("SELECT * FROM trained_models WHERE warehouse_id = 'WH002'").iloc[0]
    assert first["promoted"]
    for _ in range(2):  # a re-run of the partition decides the same: never against its own previous row
        assert home.run("trained_models", D2, "WH002", run_config=NEVER).success
        row = home.table(
            f"SELECT * FROM trained_models WHERE warehouse_id = 'WH002' AND origin_date = '{D2}'"
        )
        assert len(row) == 1
        assert not row["promoted"].iloc[0] and row["reference"].iloc[0] == "production"
        assert row["production_version"].iloc[0] == first["version"]
        assert home.served("WH002", D2).version == first["version"]
        assert home.store.alias_version("WH002") == first["version"]
    con = duckdb.connect(str(home.settings.duckdb_path), read_only=True)
    alerts = read_alerts(con)
    con.close()
    assert "promotion_rejected" in set(alerts["kind"])


def test_forecasts_use_the_version_in_production_at_their_origin(platform: Platform, tmp_path: Path) -> None:
    """Re-materializing an old forecasts partition uses the version in production at that origin."""
    home = new_home(platform, tmp_path / "home")
    assert home.run("trained_models", D1, "WH001", run_config=ALWAYS).success
    v1 = home.served("WH001", D1).version
    first = home.run("forecasts", MID, "WH001")
    assert first.success
    before = home.table(f"SELECT * FROM forecasts WHERE origin_date = '{MID}' ORDER BY sku, horizon")

    assert home.run("trained_models", D2, "WH001", run_config=ALWAYS).success
    v2 = home.served("WH001", D2).version
    assert v2 != v1 and home.store.alias_version("WH001") == v2
    again = home.run("forecasts", MID, "WH001")
    assert again.success
    after = home.table(f"SELECT * FROM forecasts WHERE origin_date = '{MID}' ORDER BY sku, horizon")
    assert set(after[C.MODEL_VERSION]) == {v1}
    pd.testing.assert_frame_equal(before, after)  # the same model: the same forecasts
    served = _materialization(again, "forecasts")["served_versions"].value
    assert served == {f"{MID}|WH001": {C.MODEL_VERSION: v1, "trained_origin": D1.isoformat()}}

    # One run over D2..ORIGIN: every origin at or after D2 gets D2's version.
    ranged = dg.materialize(
        [a for a in platform.assets if dg.AssetKey("forecasts") in a.keys],
        resources=home.resources,
        instance=platform.instance,
        tags=range_tags(D2, ORIGIN, "WH001"),
    )
    assert ranged.success
    served = _materialization(ranged, "forecasts")["served_versions"].value
    days = [D2 + dt.timedelta(days=i) for i in range((ORIGIN - D2).days + 1)]
    assert served == {f"{d}|WH001": {C.MODEL_VERSION: v2, "trained_origin": D2.isoformat()} for d in days}
    stored = home.table(f"SELECT origin_date, model_version FROM forecasts WHERE origin_date >= '{D2}'")
    assert set(stored[C.MODEL_VERSION]) == {v2} and stored[C.ORIGIN_DATE].nunique() == len(days)

    # Nothing trained at or before BEFORE: a clear failure, not retried (no retry can change it).
    failed = home.run("forecasts", BEFORE, "WH001", raise_on_error=False)
    assert not failed.success and _retries(failed) == 0
    error = failed.get_step_failure_events()[0].step_failure_data.error
    assert error is not None
    message = str(error.cause or error.message) + str(failed.get_step_failure_events()[0].step_failure_data)
    assert f"no model for warehouse WH001 at origin {BEFORE}" in message
    assert f"first partition is {D1}" in message


def test_failure_before_the_rows_are_stored_leaves_an_orphan_never_served(
    platform: Platform, tmp_path: Path
) -> None:
    """Registration, then the trained_models write fails on every attempt: the version is in no row, so
    serving and the alias stay on the recorded promotion; a re-run converges on a new version."""
    home = new_home(platform, tmp_path / "home")
    assert home.run("trained_models", D1, "WH001", run_config=ALWAYS).success
    v1 = home.served("WH001", D1).version

    broken = {"io_manager": flaky_io(home, failures=99)}
    failed = home.run(
        "trained_models", D2, "WH001", run_config=ALWAYS, resources=broken, raise_on_error=False
    )
    assert not failed.success and _retries(failed) == QUICK_RETRY.max_retries
    registered = _versions(home, "WH001")
    assert len(registered) == 2  # the retries reused the version the first attempt registered
    orphan = registered[-1]
    record = home.table("SELECT * FROM trained_models")
    assert list(record[C.ORIGIN_DATE].dt.date) == [D1] and orphan not in set(record["version"])
    assert home.served("WH001", D2).version == v1 and home.store.alias_version("WH001") == v1
    assert home.run("forecasts", D2, "WH001").success
    assert set(home.table("SELECT model_version FROM forecasts")[C.MODEL_VERSION]) == {v1}

    # An alias moved outside the record (as the old asset's promotion before its write did) is put
    # back by the next run.
    home.store.client.set_registered_model_alias(registry.model_name("WH001"), "production", orphan)
    assert home.run("forecasts", D2, "WH001").success
    assert home.store.alias_version("WH001") == v1

    # The re-run (a new run) supersedes: a new version, recorded, served and mirrored; the orphan never.
    assert home.run("trained_models", D2, "WH001", run_config=ALWAYS).success
    v3 = _versions(home, "WH001")[-1]
    assert v3 not in (v1, orphan)
    record = home.table("SELECT * FROM trained_models ORDER BY origin_date")
    assert list(record["version"]) == [v1, v3] and record["promoted"].all()
    assert home.served("WH001", D2).version == v3 and home.store.alias_version("WH001") == v3
    assert home.served("WH001", MID).version == v1


def test_a_retried_step_reuses_its_version(platform: Platform, tmp_path: Path) -> None:
    """A transient failure of the write is retried by Dagster; the retry registers nothing new."""
    home = new_home(platform, tmp_path / "home")
    result = home.run("trained_models", D2, "WH002", resources={"io_manager": flaky_io(home, failures=1)})
    assert result.success and _retries(result) == 1
    registered = _versions(home, "WH002")
    record = home.table("SELECT * FROM trained_models")
    assert len(registered) == 1 and list(record["version"]) == registered
    expected = registered[0] if record["promoted"].iloc[0] else None
    assert home.store.alias_version("WH002") == expected
    assert home.served("WH002", D2) == registry.ServedVersion(
        "WH002", D2, registered[0], not record["promoted"].iloc[0], D2
    )


def test_model_assets_retry_transient_failures() -> None:
    """Both model assets carry the platform's retry policy by default."""
    partitions_def = dg.MultiPartitionsDefinition(
        {
            "date": dg.DailyPartitionsDefinition(start_date=START.isoformat()),
            "warehouse": dg.StaticPartitionsDefinition(["WH001"]),
        }
    )
    for asset in build_model_assets(partitions_def, "UTC"):
        assert asset.op.retry_policy == RETRY_POLICY
    assert RETRY_POLICY.max_retries >= 2 and RETRY_POLICY.backoff == dg.Backoff.EXPONENTIAL


def test_forecasts_serve_the_materialized_feature_table(platform: Platform, tmp_path: Path) -> None:
    """The ML model is served with the partition's feature_table rows: they equal, value and dtype, the
    features the domain builds from raw_sales, and changing them changes the ML SKUs' forecasts only."""
    home = new_home(platform, tmp_path / "home")
    assert home.run("trained_models", ORIGIN, "WH001", run_config=ALWAYS).success
    assert home.run("forecasts", ORIGIN, "WH001").success
    partition = f"warehouse_id = 'WH001' AND CAST(origin_date AS DATE) = DATE '{ORIGIN}'"
    feature_rows = home.table(f"SELECT * FROM {C.FEATURE_TABLE} WHERE {partition}")
    tiers = home.table(f"SELECT * FROM {C.TIER_ASSIGNMENTS} WHERE {partition}")
    ml_skus = tiers.loc[tiers[ROUTE] == ROUTE_GLOBAL_ML, C.SKU].to_numpy(dtype=object)
    assert 0 < len(ml_skus) < len(tiers)
    history = home.table(
        f"SELECT * FROM {C.RAW_SALES} WHERE warehouse_id = 'WH001' AND date <= DATE '{ORIGIN}'"
    )
    rebuilt = features.build_features(
        history.loc[history[C.SKU].isin(ml_skus)],
        load_source_tables(platform.settings.source),
        ORIGIN,
        "WH001",
    )
    served = served_features(feature_rows, ml_skus, to_day(ORIGIN), "WH001")
    pd.testing.assert_frame_equal(served, rebuilt, check_exact=True)

    before = home.table(f"SELECT * FROM {C.FORECASTS} WHERE {partition}")
    con = duckdb.connect(str(home.settings.duckdb_path))
    try:
        lags = ", ".join(f"{column} = {column} * 20 + 5" for column in features.DEMAND_LAG_COLUMNS.values())
        con.execute(f"UPDATE {C.FEATURE_TABLE} SET {lags} WHERE {partition}")
    finally:
        con.close()
    assert home.run("forecasts", ORIGIN, "WH001").success
    after = home.table(f"SELECT * FROM {C.FORECASTS} WHERE {partition}")
    merged = before.merge(after, on=[C.SKU, C.HORIZON], suffixes=("", "_after"))
    assert len(merged) == len(before) == len(after)
    changed = merged.loc[merged[C.FORECAST] != merged[f"{C.FORECAST}_after"], C.SKU].unique()
    assert len(changed) > 0
    assert set(changed) <= set(ml_skus)


def test_refused_first_model_serves_its_baseline(platform: Platform, tmp_path: Path) -> None:
    """A first model refused by the gate leaves no production version; forecasts still come, from the
    better CV baseline inside the latest version, and say so in model_version and metadata."""
    home = new_home(platform, tmp_path / "home")
    assert home.run("trained_models", ORIGIN, "WH002", run_config=NEVER).success
    assert home.store.alias_version("WH002") is None
    version = _versions(home, "WH002")[-1]
    assert home.served("WH002", ORIGIN) == registry.ServedVersion("WH002", ORIGIN, version, True, ORIGIN)
    result = home.run("forecasts", ORIGIN, "WH002")
    assert result.success
    metadata = _materialization(result, "forecasts")
    assert metadata["baseline_fallback"].value == "WH002"
    assert metadata["served_versions"].value[f"{ORIGIN}|WH002"][C.MODEL_VERSION] == f"{version}-baseline"
    forecasts = home.table("SELECT * FROM forecasts WHERE warehouse_id = 'WH002'")
    assert set(forecasts[C.MODEL_VERSION]) == {f"{version}-baseline"}
    assert set(forecasts[C.MODEL]) <= {"seasonal_naive", "moving_average_28", "cold_start"}
    assert (forecasts[C.FORECAST] >= 0).all() and (forecasts[C.P50] <= forecasts[C.P95]).all()


def test_models_refuse_a_history_with_holes(platform: Platform, tmp_path: Path) -> None:
    home = new_home(platform, tmp_path / "home")
    assert home.run("trained_models", D1, "WH001", run_config=ALWAYS).success
    hole = D1 - dt.timedelta(days=20)
    with duckdb.connect(str(home.settings.duckdb_path)) as con:  # a day lost (by hand, an old crash)
        con.execute(
            "DELETE FROM raw_sales WHERE warehouse_id = 'WH001' AND CAST(date AS DATE) = $d", {"d": hole}
        )
    for asset in ("forecasts", "trained_models"):
        result = home.run(
            asset, D1, "WH001", run_config=ALWAYS if asset == "trained_models" else None, raise_on_error=False
        )
        assert not result.success
        (failure,) = [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE]
        message = str(failure.step_failure_data.error.message) + str(
            failure.step_failure_data.user_failure_data
        )
        assert "missing day" in message and str(hole) in message, message
    # The other warehouse, without holes, still forecasts.
    assert home.run("trained_models", D1, "WH002", run_config=ALWAYS).success
    assert home.run("forecasts", D1, "WH002").success
