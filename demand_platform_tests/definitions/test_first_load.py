"""The code location loads before any data exists: configured home, else ./demo-home, else an empty platform.

A user's first ``dagster dev`` in a fresh clone (``[tool.dagster]`` in pyproject.toml) has no source yet;
the definitions then load the asset graph with no partitions and say how to get a source.
"""

import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from assets.definitions import load_definitions
from assets.partitions import WAREHOUSE_DIM
from demand_platform.settings import HOME_ENV, NO_SOURCE_HINT, resolve_settings
from demand_platform_tests.conftest import write_tiny_source

REPO = Path(__file__).resolve().parents[2]


def copy_project(dest: Path) -> Path:
    """Copy the project's files (tracked, and new ones not ignored) as a fresh clone would have them."""
    listed = subprocess.run(
        ["git", "-C", str(REPO), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        check=True,
        capture_output=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = REPO / name
        if source.is_file():  # a tracked file deleted in the working tree is not copied
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)
    return dest


def clean_environ(home: Path) -> dict[str, str]:
    """The environment with ``HOME`` at ``home`` and no platform or Dagster setting."""
    drop = ("DEMAND_PLATFORM_", "DAGSTER_HOME", "PYTHONPATH")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    return {**env, "HOME": str(home)}


def warehouses(defs: dg.Definitions) -> list[str]:
    partitions_def = defs.get_assets_def("raw_sales").partitions_def
    assert isinstance(partitions_def, dg.MultiPartitionsDefinition)
    return list(partitions_def.get_partitions_def_for_dimension(WAREHOUSE_DIM).get_partition_keys())


def test_a_configured_home_with_a_source_is_the_platform(tmp_path: Path) -> None:
    write_tiny_source(tmp_path / "home" / "source")
    environ = {"HOME": str(tmp_path / "user"), HOME_ENV: str(tmp_path / "home")}
    resolved = resolve_settings(environ, cwd=tmp_path)
    assert resolved.has_source and resolved.settings.home == (tmp_path / "home").resolve()
    defs = load_definitions(environ, cwd=tmp_path)
    assert warehouses(defs) == ["W1", "W2"]
    assert {s.name for s in defs.get_repository_def().schedule_defs} >= {"daily_schedule"}


def test_without_a_source_the_empty_platform_loads_and_says_how_to_get_one(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    environ = {"HOME": str(tmp_path / "user")}
    with caplog.at_level(logging.WARNING, logger="dagster.demand_platform"):
        defs = load_definitions(environ, cwd=tmp_path / "clone")
    dg.Definitions.validate_loadable(defs)
    assert warehouses(defs) == []
    partitions_def = defs.get_assets_def("raw_sales").partitions_def
    assert partitions_def is not None and partitions_def.get_partition_keys() == []
    # Every asset says it in the UI (its description), and the code location's log says it.
    graph = defs.resolve_asset_graph()
    keys = graph.get_all_asset_keys()
    assert {dg.AssetKey(name) for name in ("raw_sales", "forecasts", "accuracy_report")} <= keys
    for key in keys:
        assert graph.get(key).description.startswith(f"**{NO_SOURCE_HINT}"), key
    assert NO_SOURCE_HINT in caplog.text
    assert str(tmp_path / "user" / ".demand-platform" / "source") in caplog.text
    # Nothing ticks on a home without a database.
    repo = defs.get_repository_def()
    assert not repo.schedule_defs and not repo.sensor_defs


def test_the_demo_home_in_the_working_directory_is_picked_when_nothing_is_configured(tmp_path: Path) -> None:
    write_tiny_source(tmp_path / "clone" / "demo-home" / "source")
    environ = {"HOME": str(tmp_path / "user")}
    resolved = resolve_settings(environ, cwd=tmp_path / "clone")
    assert resolved.has_source and resolved.settings.home == (tmp_path / "clone" / "demo-home").resolve()
    assert warehouses(load_definitions(environ, cwd=tmp_path / "clone")) == ["W1", "W2"]


def test_a_configured_home_without_a_source_is_not_replaced_by_the_demo_home(tmp_path: Path) -> None:
    write_tiny_source(tmp_path / "clone" / "demo-home" / "source")
    environ = {"HOME": str(tmp_path / "user"), HOME_ENV: str(tmp_path / "mine")}
    resolved = resolve_settings(environ, cwd=tmp_path / "clone")
    assert not resolved.has_source and resolved.settings.home == (tmp_path / "mine").resolve()
    assert str(tmp_path / "mine" / "source") in resolved.note
    assert warehouses(load_definitions(environ, cwd=tmp_path / "clone")) == []


def validate(clone: Path, home: Path) -> subprocess.CompletedProcess[str]:
    """``dagster definitions validate`` in ``clone`` (which reads its pyproject's ``[tool.dagster]``), its
    log in ``stdout``."""
    dagster = Path(sys.executable).with_name("dagster")
    return subprocess.run(
        [str(dagster), "definitions", "validate"],
        cwd=clone,
        env=clean_environ(home),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=180,
    )


@pytest.mark.slow
def test_bare_dagster_in_a_fresh_clone_loads_without_and_with_a_demo_home(tmp_path: Path) -> None:
    clone = copy_project(tmp_path / "clone")
    home = tmp_path / "user"
    home.mkdir()
    empty = validate(clone, home)
    assert empty.returncode == 0, empty.stdout[-3000:]
    assert "Validation successful for code location demand_platform" in empty.stdout
    assert NO_SOURCE_HINT in empty.stdout
    write_tiny_source(clone / "demo-home" / "source")
    demo = validate(clone, home)
    assert demo.returncode == 0, demo.stdout[-3000:]
    assert f"platform home {(clone / 'demo-home').resolve()} (the demo's" in demo.stdout
    assert NO_SOURCE_HINT not in demo.stdout
