"""The Dagster UI in a real browser: Chromium (Debian's package) driven by Playwright against
``demand-platform ui`` (``dagster dev`` plus the chart server) on a small home.

What a planner or engineer does first, checked on what the page shows:

* the asset graph shows the six pipeline assets;
* the accuracy report's charts render as images (loaded from the chart server, non-zero size);
* the forecasts partition page lists the warehouses of a day;
* a one-day backfill launched from the UI's materialize dialog completes (the daemon of ``dagster dev``
  runs it through the run queue).

Screenshots go to :data:`SCREENSHOTS` (``ci-artifacts/screenshots/`` at the repository root, named in the
README), kept by CI as artifacts. Chromium comes from Debian's packages (``.ci/run`` installs it);
``DEMAND_PLATFORM_CHROMIUM`` names another executable.
"""

import datetime as dt
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
from playwright.sync_api import Browser, Page, sync_playwright
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from assets.orchestration import run_platform
from assets.partitions import DATE_DIM, WAREHOUSE_DIM
from demand_platform import columns as C
from demand_platform.settings import CHARTS_URL_ENV, PlatformSettings
from demand_platform.synthetic import GeneratorConfig, generate_source

REPO = Path(__file__).resolve().parents[2]
SCREENSHOTS = REPO / "ci-artifacts" / "screenshots"
CHROMIUM_ENV = "DEMAND_PLATFORM_CHROMIUM"
PIPELINE = (
    C.RAW_SALES,
    C.FEATURE_TABLE,
    C.TIER_ASSIGNMENTS,
    C.TRAINED_MODELS,
    C.FORECASTS,
    C.ACCURACY_REPORT,
)
START = dt.date(2023, 1, 1)
DAYS = 240
LAST = START + dt.timedelta(days=DAYS - 1)
WAREHOUSES = ("WH001", "WH002")
#: Seconds to wait for the UI to come up, and for the backfill to finish.
UI_TIMEOUT_S = 180
BACKFILL_TIMEOUT_S = 300

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _chromium() -> str:
    path = os.environ.get(CHROMIUM_ENV) or shutil.which("chromium") or shutil.which("chromium-browser")
    assert path, (
        "the browser test needs Chromium: `apt-get install chromium` (Debian; .ci/run does it) or set "
        f"{CHROMIUM_ENV} to a Chromium executable"
    )
    return path


def _wait_http(url: str, proc: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"the ui exited with {proc.returncode}"
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(1)
    raise AssertionError(f"{url} did not answer within {timeout} s")


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)


@pytest.fixture(scope="module")
def ui(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, PlatformSettings]]:
    """A small home (30 SKUs x 2 warehouses x 240 days, reports of the last 15 days) and the UI on it."""
    root = tmp_path_factory.mktemp("browser")
    generate_source(
        root / "source", GeneratorConfig(n_skus=30, n_warehouses=2, start=START, days=DAYS, seed=5)
    )
    charts_url = f"http://127.0.0.1:{_free_port()}"
    settings = PlatformSettings(
        home=root / "home", source=root / "source", start_date=START, end_date=LAST, charts_url=charts_url
    )
    settings.save(explicit_start=START)
    assert run_platform(settings, LAST, evaluate_days=14, launch="in-process").ok
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEMAND_PLATFORM_")}
    log = (root / "ui.log").open("w")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "assets.cli",
            "ui",
            "--home",
            str(settings.home),
            "--through",
            LAST.isoformat(),
            "--port",
            str(port),
        ],
        env={**env, CHARTS_URL_ENV: charts_url},
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_http(f"{base}/server_info", proc, UI_TIMEOUT_S)
        yield base, settings
    finally:
        _stop(proc)
        log.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=_chromium(), args=["--no-sandbox"])
        try:
            yield chromium
        finally:
            chromium.close()


def _page(browser: Browser, base: str, path: str) -> Page:
    page = browser.new_page(viewport={"width": 1600, "height": 1100})
    page.set_default_timeout(60_000)
    page.goto(base + path)
    # Dagster's first-visit community dialog covers the page until dismissed.
    skip = page.get_by_role("button", name="Skip")
    try:
        skip.wait_for(timeout=5_000)
        skip.click()
    except PlaywrightTimeout:  # not shown
        pass
    return page


def test_the_asset_graph_shows_the_six_pipeline_assets(
    ui: tuple[str, PlatformSettings], browser: Browser
) -> None:
    base, _ = ui
    page = _page(
        browser, base, f"/assets/{C.ACCURACY_REPORT}?view=lineage&lineageScope=upstream&lineageDepth=5"
    )
    for name in PIPELINE:
        page.get_by_text(name, exact=True).first.wait_for(state="visible")
    page.screenshot(path=SCREENSHOTS / "asset_graph.png")
    page.close()


def _png_size(path: Path) -> tuple[int, int]:
    """Width and height from a PNG's IHDR chunk."""
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n", path
    return int.from_bytes(header[16:20], "big"), int.from_bytes(header[20:24], "big")


def test_the_report_charts_render_as_images(ui: tuple[str, PlatformSettings], browser: Browser) -> None:
    base, settings = ui
    partition = urllib.parse.quote(f"{LAST.isoformat()}|{WAREHOUSES[0]}")
    page = _page(browser, base, f"/assets/{C.ACCURACY_REPORT}?view=partitions&partition={partition}")
    # The metadata row "charts": markdown embedding each chart by its URL under the chart server.
    row = page.locator("tr").filter(has=page.locator("td", has_text=re.compile(r"^charts$"))).first
    row.locator("img").first.wait_for(state="visible")
    page.wait_for_function(
        "row => Array.from(row.querySelectorAll('img')).every(i => i.complete)", arg=row.element_handle()
    )
    images = row.locator("img").evaluate_all(
        "imgs => imgs.map(i => ({src: i.src, width: i.naturalWidth, height: i.naturalHeight}))"
    )
    row.scroll_into_view_if_needed()
    page.screenshot(path=SCREENSHOTS / "report_charts.png")
    page.close()
    assert len(images) >= 4, images
    for image in images:
        # Served by the chart server, not inlined in the event log ...
        assert image["src"].startswith(settings.charts_url + "/"), image
        # ... and what the browser decoded is the chart file the report wrote (a broken link loads 0 x 0).
        file = settings.reports_dir / image["src"].removeprefix(settings.charts_url + "/")
        assert (image["width"], image["height"]) == _png_size(file), image
        assert image["width"] > 0 and image["height"] > 0, image


def test_the_forecasts_partition_page_lists_the_warehouses(
    ui: tuple[str, PlatformSettings], browser: Browser
) -> None:
    base, _ = ui
    page = _page(browser, base, f"/assets/{C.FORECASTS}?view=partitions")
    page.get_by_placeholder("Filter by date…").fill(LAST.isoformat())
    page.get_by_text(LAST.isoformat(), exact=True).first.click()
    for warehouse in WAREHOUSES:
        page.get_by_text(warehouse, exact=True).first.wait_for(state="visible")
    page.screenshot(path=SCREENSHOTS / "forecasts_partitions.png")
    page.close()


def test_a_one_day_backfill_launched_from_the_ui_completes(
    ui: tuple[str, PlatformSettings], browser: Browser
) -> None:
    base, settings = ui
    day = LAST - dt.timedelta(days=1)
    instance = dg.DagsterInstance.from_config(str(settings.dagster_home))
    before = {b.backfill_id for b in instance.get_backfills()}
    page = _page(browser, base, f"/assets/{C.FORECASTS}?view=partitions")
    page.get_by_role("button", name="Materialize…").first.click()
    dialog = page.get_by_role("dialog")
    dates = dialog.get_by_placeholder("ex: 2023-01-01", exact=False).first
    dates.fill(day.isoformat())
    dates.press("Enter")
    dialog.get_by_role("button", name="All").nth(1).click()  # every warehouse (the second dimension)
    dialog.get_by_text("2 partitions").wait_for(state="visible")
    page.screenshot(path=SCREENSHOTS / "backfill_dialog.png")
    dialog.get_by_role("button", name="Launch backfill").click()

    deadline = time.monotonic() + BACKFILL_TIMEOUT_S
    backfill = None
    while time.monotonic() < deadline:
        new = [b for b in instance.get_backfills() if b.backfill_id not in before]
        if new and new[0].status.value != "REQUESTED":
            backfill = new[0]
            break
        time.sleep(2)
    assert backfill is not None, "the backfill did not finish in time"
    assert backfill.status.value == "COMPLETED_SUCCESS", backfill.status
    keys = {str(dg.MultiPartitionKey({DATE_DIM: day.isoformat(), WAREHOUSE_DIM: wh})) for wh in WAREHOUSES}
    runs = instance.get_runs(filters=dg.RunsFilter(tags={"dagster/backfill": backfill.backfill_id}))
    assert runs and all(run.status == dg.DagsterRunStatus.SUCCESS for run in runs)
    done = {
        record.partition_key
        for record in instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey(C.FORECASTS), asset_partitions=sorted(keys)),
            limit=100,
        ).records
        if record.run_id in {run.run_id for run in runs}
    }
    assert done == keys
    page.goto(f"{base}/runs/b/{backfill.backfill_id}")
    page.get_by_text(backfill.backfill_id).first.wait_for(state="visible")
    page.screenshot(path=SCREENSHOTS / "backfill_done.png")
    page.close()
