"""The source resource hands out the small tables, loaded once while their files are unchanged."""

from pathlib import Path

import pandas as pd

from demand_platform_tests.conftest import write_tiny_source
from resources.source import SourceDataResource


def test_the_resource_loads_once_and_again_when_a_file_changes(tmp_path: Path) -> None:
    src = write_tiny_source(tmp_path / "src")
    resource = SourceDataResource(path=str(src))
    first = resource.tables()
    assert resource.tables() is first
    products = pd.read_parquet(src / "products.parquet").iloc[:2]
    products.to_parquet(src / "products.parquet", index=False)
    second = resource.tables()
    assert second is not first
    assert len(second.products) == 2
