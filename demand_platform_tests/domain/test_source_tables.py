"""One frozen object holds the validated small source tables, loaded once."""

import dataclasses
import os
from pathlib import Path

import pandas as pd
import pytest

from demand_platform import columns as C
from demand_platform import source
from demand_platform.synthetic import GeneratorConfig, generate_source
from demand_platform_tests.conftest import write_tiny_source

SYNTHETIC = GeneratorConfig(n_skus=20, n_warehouses=2, days=40, seed=5, bad_rows=12)


def test_source_tables_hold_the_valid_rows_of_every_table(tmp_path: Path) -> None:
    src = tmp_path / "src"
    generate_source(src, SYNTHETIC)
    tables = source.load_source_tables(src)
    for table, frame in (
        (C.PRODUCTS, tables.products),
        (C.WAREHOUSES, tables.warehouses),
        (C.CALENDAR, tables.calendar),
        (C.MARKETING_CAMPAIGNS, tables.campaigns),
        (C.WEATHER, tables.weather),
    ):
        split = source.load_table(src, table)
        if split is None:
            assert frame is None, table
        else:
            assert frame is not None, table
            pd.testing.assert_frame_equal(frame, split.valid)
    assert tables.warehouse_ids() == source.warehouse_ids(src)
    with pytest.raises(dataclasses.FrozenInstanceError):
        tables.products = tables.products  # type: ignore[misc]


def test_rejected_products_are_kept_with_their_reason(tmp_path: Path) -> None:
    src = write_tiny_source(tmp_path / "src")
    products = pd.read_parquet(src / "products.parquet")
    products.loc[0, C.PRICE] = -1.0
    products.to_parquet(src / "products.parquet", index=False)
    tables = source.load_source_tables(src)
    bad_sku = str(products.loc[0, C.SKU])
    assert bad_sku not in set(tables.products[C.SKU])
    assert bad_sku in set(tables.rejected_products[C.SKU])
    reason = tables.rejected_products.loc[tables.rejected_products[C.SKU] == bad_sku, C.REASON].iloc[0]
    assert C.PRICE in reason


def test_absent_optional_tables_are_none_and_missing_required_raise(tmp_path: Path) -> None:
    src = write_tiny_source(tmp_path / "src")
    for table in (C.CALENDAR, C.MARKETING_CAMPAIGNS, C.WEATHER, C.OVERRIDES):
        path = source.table_path(src, table)
        if path is not None:
            os.remove(path)
    tables = source.load_source_tables(src)
    assert tables.calendar is None and tables.campaigns is None and tables.weather is None
    os.remove(source.require_table_path(src, C.WAREHOUSES))
    with pytest.raises(source.SourceError, match=C.WAREHOUSES):
        source.load_source_tables(src)
