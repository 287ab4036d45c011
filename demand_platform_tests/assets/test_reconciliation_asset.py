"""reconciled_forecasts through Dagster: after every warehouse's forecasts of a day, on a temporary DuckDB.

One synthetic source of two warehouses is ingested; both warehouses are trained at PAST and forecast at
PAST and ORIGIN. Reconciling ORIGIN picks the weight on the forecasts of PAST (ten days of them sold since).
"""

import datetime as dt
from dataclasses import dataclass
from typing import Any

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from assets.features import build_feature_assets
from assets.ingestion import build_ingestion_assets
from assets.models import RETRY_POLICY, build_model_assets
from assets.partitions import build_partitions, partition_key, range_tags
from assets.reconciliation import build_reconciliation_asset
from demand_platform import columns as C
from demand_platform.forecasting import pooling
from demand_platform.settings import PlatformSettings
from demand_platform.source import load_source_tables
from demand_platform.synthetic import GeneratorConfig, generate_source
from demand_platform_tests.conftest import query_database
from resources import build_resources

START = dt.date(2023, 1, 1)
DAYS = 240
ORIGIN = START + dt.timedelta(days=DAYS - 1)
PAST = ORIGIN - dt.timedelta(days=10)
WAREHOUSES = ("WH001", "WH002")
QUICK_RETRY = dg.RetryPolicy(max_retries=RETRY_POLICY.max_retries, delay=0.1)
ALWAYS = {"ops": {"trained_models": {"config": {"promotion_margin": -1.0}}}}


@dataclass
class Platform:
    """The home (source, database, MLflow store), its assets, resources and instance."""

    settings: PlatformSettings
    assets: list[dg.AssetsDefinition]
    resources: dict[str, Any]
    instance: dg.DagsterInstance

    def run(
        self, asset: str, day: dt.date, wh: str | None = None, **kwargs: Any
    ) -> dg.ExecuteInProcessResult:
        """Materialize one partition of ``asset`` (a day for ``reconciled_forecasts``)."""
        key = day.isoformat() if wh is None else partition_key(day, wh)
        return dg.materialize(
            [a for a in self.assets if dg.AssetKey(asset) in a.keys],
            resources=self.resources,
            instance=self.instance,
            partition_key=key,
            **kwargs,
        )

    def table(self, sql: str) -> pd.DataFrame:
        """A query on the home's database."""
        return query_database(self.settings.duckdb_path, sql)


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Platform:
    """Both warehouses ingested, trained at PAST and forecast at PAST and ORIGIN."""
    root = tmp_path_factory.mktemp("reconcile")
    generate_source(
        root / "source", GeneratorConfig(n_skus=30, n_warehouses=2, start=START, days=DAYS, seed=5)
    )
    # A campaign in WH001's region alone, inside ORIGIN's horizon, announced ahead.
    path = root / "source" / f"{C.MARKETING_CAMPAIGNS}.parquet"
    campaigns = pd.read_parquet(path)
    state = pd.read_parquet(root / "source" / f"{C.WAREHOUSES}.parquet").set_index(C.WAREHOUSE_ID)[
        C.LOCATION_STATE
    ]
    regional = campaigns.iloc[:1].assign(
        campaign_id="CMP-REGIONAL",
        start_date=ORIGIN + dt.timedelta(days=3),
        end_date=ORIGIN + dt.timedelta(days=6),
        sku=None,
        discount_percent=25.0,
        target_region=state["WH001"],
    )
    pd.concat([campaigns, regional.astype(campaigns.dtypes.to_dict())], ignore_index=True).to_parquet(
        path, index=False
    )
    settings = PlatformSettings(
        home=root / "home", source=root / "source", start_date=START, end_date=ORIGIN, env="test"
    )
    partitions_def = build_partitions(settings)
    ingestion = build_ingestion_assets(partitions_def)
    features = build_feature_assets(partitions_def)
    assets = [
        *ingestion,
        *features,
        *build_model_assets(partitions_def, settings.timezone, retry_policy=QUICK_RETRY),
        build_reconciliation_asset(partitions_def, settings.timezone, retry_policy=QUICK_RETRY),
    ]
    platform = Platform(settings, assets, build_resources(settings), dg.DagsterInstance.ephemeral())
    for wh in WAREHOUSES:
        run = dg.materialize(
            ingestion,
            resources=platform.resources,
            instance=platform.instance,
            tags=range_tags(START, ORIGIN, wh),
        )
        assert run.success
        for day in (PAST, ORIGIN):
            for asset in (C.FEATURE_TABLE, "tier_assignments"):
                assert platform.run(asset, day, wh).success
        assert platform.run("trained_models", PAST, wh, run_config=ALWAYS).success
        for day in (PAST, ORIGIN):
            assert platform.run(C.FORECASTS, day, wh).success
    return platform


def test_reconciles_every_warehouse_and_keeps_each_skus_total(platform: Platform) -> None:
    result = platform.run(C.RECONCILED_FORECASTS, ORIGIN)
    assert result.success
    metadata = result.asset_materializations_for_node(C.RECONCILED_FORECASTS)[0].metadata
    # The weight was picked on the forecasts of PAST, the latest origin at least a week old.
    assert metadata["weight_picked_on"].data == {ORIGIN.isoformat(): PAST.isoformat()}
    weight = metadata["pooling_weight"].data[ORIGIN.isoformat()]
    # On this source (every warehouse sells a SKU in proportion) pooling wins on PAST: rows move below.
    assert weight in pooling.WEIGHT_GRID and weight < 1.0

    keys = [C.SKU, C.WAREHOUSE_ID, C.HORIZON]
    own = platform.table(f"SELECT * FROM forecasts WHERE origin_date = '{ORIGIN}'").sort_values(keys)
    reconciled = platform.table(f"SELECT * FROM reconciled_forecasts WHERE origin_date = '{ORIGIN}'")
    reconciled = reconciled.sort_values(keys)
    assert len(reconciled) == len(own) and set(reconciled[C.WAREHOUSE_ID]) == set(WAREHOUSES)
    assert (reconciled[keys].to_numpy() == own[keys].to_numpy()).all()
    # Each SKU's total over the warehouses of a day is what the warehouses' models said (no override here).
    assert not own["override_applied"].any()
    totals = [
        frame.groupby([C.SKU, C.TARGET_DATE])[C.FORECAST].sum().sort_index().to_numpy()
        for frame in (own, reconciled)
    ]
    np.testing.assert_allclose(totals[1], totals[0], rtol=1e-9, atol=1e-9)
    ratio = reconciled[C.POOLING_RATIO].to_numpy()
    moved = ratio != 1.0
    np.testing.assert_allclose(
        reconciled[C.FORECAST].to_numpy(), own[C.FORECAST].to_numpy() * ratio, rtol=1e-9, atol=1e-12
    )
    assert moved.any()
    # Days inside a regional campaign keep their warehouse's own forecast.
    tables = load_source_tables(platform.settings.source)
    local = pooling.regional_campaign_rows(reconciled, tables.campaigns, tables.warehouses)
    assert local.any() and (ratio[local] == 1.0).all()
    assert set(reconciled.loc[local, C.WAREHOUSE_ID]) == {"WH001"}
    assert (reconciled[C.P50] <= reconciled[C.P90]).all() and (reconciled[C.P90] <= reconciled[C.P95]).all()


def test_a_fixed_weight_of_one_keeps_the_warehouses_forecasts(platform: Platform) -> None:
    config = {"ops": {C.RECONCILED_FORECASTS: {"config": {"weight": 1.0}}}}
    assert platform.run(C.RECONCILED_FORECASTS, PAST, run_config=config).success
    keys = [C.SKU, C.WAREHOUSE_ID, C.HORIZON]
    own = platform.table(f"SELECT * FROM forecasts WHERE origin_date = '{PAST}'").sort_values(keys)
    reconciled = platform.table(f"SELECT * FROM reconciled_forecasts WHERE origin_date = '{PAST}'")
    reconciled = reconciled.sort_values(keys)
    for column in (C.FORECAST, C.P50, C.P90, C.P95):
        np.testing.assert_array_equal(reconciled[column].to_numpy(), own[column].to_numpy())
    assert (reconciled[C.POOLING_RATIO] == 1.0).all()


def test_refuses_a_day_without_every_warehouses_forecasts(platform: Platform) -> None:
    day = ORIGIN - dt.timedelta(days=1)
    assert platform.run(C.FEATURE_TABLE, day, "WH001").success
    assert platform.run("tier_assignments", day, "WH001").success
    assert platform.run(C.FORECASTS, day, "WH001").success
    result = platform.run(C.RECONCILED_FORECASTS, day, raise_on_error=False)
    assert not result.success
    (failure,) = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    assert "WH002" in str(failure.event_specific_data) and "WH001" not in str(failure.event_specific_data)
    stored = platform.table(f"SELECT count(*) AS n FROM reconciled_forecasts WHERE origin_date = '{day}'")
    assert stored["n"].iloc[0] == 0
