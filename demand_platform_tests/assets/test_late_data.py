"""Yesterday's sales late on a live home: the daemon alerts once, and once more when the forecasts are made.

A live home is built in this process on a small synthetic source whose last day is the day before
yesterday (company timezone), so yesterday's partition exists but nothing was sold on it yet. The real
``dagster-daemon`` then runs on the home with the alert webhook pointing at a recorder on 127.0.0.1 and
``freshness_sensor`` judging every few seconds: the check fails naming both warehouses, again and again,
and the webhook gets one alert. Yesterday's lines land, the catch-up makes yesterday's forecasts, the check
passes at the next judgement and the webhook gets one "resolved" notice, and nothing after it.

The company timezone is a fixed-offset zone chosen from the clock so that it is early afternoon there:
past the 08:00 deadline and far from midnight, whenever the test runs.
"""

import contextlib
import datetime as dt
import http.server
import json
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from zoneinfo import ZoneInfo

import dagster as dg
import pandas as pd
import pytest
from dagster._core.scheduler.instigation import InstigatorType

from assets.operations import (
    ALERT_SENSOR,
    FRESHNESS_CHECK_KEY,
    read_alert_cursor,
)
from assets.orchestration import run_platform
from demand_platform import columns as C
from demand_platform.settings import PlatformSettings
from demand_platform.synthetic import GeneratorConfig, generate_source
from demand_platform_tests.assets.test_daemon_path import REPO
from demand_platform_tests.assets.test_soak import cli_env
from resources.alerts import WEBHOOK_ENV

HISTORY_DAYS = 90
#: Seconds between two judgements of freshness_sensor in this test (the default is 300).
INTERVAL_S = 4
#: The local hour the company timezone is chosen to show.
LOCAL_HOUR = 13
FAILURE = "[ERROR] freshness: "
RESOLVED = "[INFO] freshness_resolved: "

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


def company_timezone(now: dt.datetime) -> str:
    """A fixed-offset zone (``Etc/GMT±N``, whose sign is POSIX's: ``Etc/GMT-2`` is UTC+2) where ``now``
    falls in the hour :data:`LOCAL_HOUR`."""
    offset = LOCAL_HOUR - now.astimezone(dt.UTC).hour  # -10 .. +13, within the zones' -12 .. +14
    return "Etc/GMT" if offset == 0 else f"Etc/GMT{'-' if offset > 0 else '+'}{abs(offset)}"


def test_company_timezone_puts_now_in_the_early_afternoon() -> None:
    for hour in range(24):
        now = dt.datetime(2024, 3, 1, hour, 30, tzinfo=dt.UTC)
        assert now.astimezone(ZoneInfo(company_timezone(now))).hour == LOCAL_HOUR


class _Recorder(http.server.BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.posts.append(json.loads(body)["text"])  # type: ignore[attr-defined]
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def webhook() -> Iterator[tuple[str, list[str]]]:
    """An HTTP server on 127.0.0.1 recording the text of every alert posted to it."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    server.posts = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook", server.posts  # type: ignore[attr-defined]
    finally:
        server.shutdown()
        server.server_close()


def _write_source(full: Path, live: Path, through: dt.date) -> None:
    """The live source: the full source's tables, its transactions up to ``through``."""
    live.mkdir(exist_ok=True)
    for table in full.glob("*.parquet"):
        if table.name != f"{C.TRANSACTIONS}.parquet":
            shutil.copyfile(table, live / table.name)
    lines = pd.read_parquet(full / f"{C.TRANSACTIONS}.parquet")
    lines[pd.to_datetime(lines[C.TRANSACTION_DATE]).dt.date <= through].to_parquet(
        live / f"{C.TRANSACTIONS}.parquet", index=False
    )


def _freshness(instance: dg.DagsterInstance, day: dt.date) -> list[tuple[int, bool, str, str]]:
    """The freshness executions judging ``day``, oldest first: ``(id, passed, description, run id)``."""
    history = instance.event_log_storage.get_asset_check_execution_history(FRESHNESS_CHECK_KEY, limit=500)
    out = []
    for record in reversed(history):
        evaluation = record.evaluation
        if evaluation is not None and evaluation.metadata["checked_day"].value == day.isoformat():
            out.append((record.id, evaluation.passed, evaluation.description or "", record.run_id))
    return out


def _alert_watermark(instance: dg.DagsterInstance) -> int:
    """The last freshness execution the daemon's alert sensor has handled (0 before its first tick)."""
    for state in instance.all_instigator_state(instigator_type=InstigatorType.SENSOR):
        if state.instigator_name == ALERT_SENSOR and state.instigator_data is not None:
            executions, _ = read_alert_cursor(state.instigator_data.cursor)  # type: ignore[union-attr]
            return executions.get(FRESHNESS_CHECK_KEY.to_user_string(), 0)
    return 0


def _wait(what: str, done: Callable[[], bool], daemon: subprocess.Popen, log: Path, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not done():
        assert daemon.poll() is None, f"daemon exited while waiting for {what}:\n{log.read_text()[-4000:]}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}:\n{log.read_text()[-4000:]}"
        time.sleep(1)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def _stop_group(daemon: subprocess.Popen) -> None:
    """Stop the daemon (SIGINT, its clean shutdown), then what is left of its process group (its code
    server, run workers): SIGTERM, then SIGKILL."""
    os.killpg(daemon.pid, signal.SIGINT)
    with contextlib.suppress(subprocess.TimeoutExpired):
        daemon.wait(timeout=60)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(daemon.pid, sig)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            daemon.poll()  # reap the daemon: a zombie still counts as a member of the group
            if not _group_alive(daemon.pid):
                return
            time.sleep(0.5)


def test_late_sales_alert_once_and_clear_when_the_forecasts_are_made(
    tmp_path: Path, webhook: tuple[str, list[str]]
) -> None:
    url, posts = webhook
    timezone = company_timezone(dt.datetime.now(dt.UTC))
    today = dt.datetime.now(ZoneInfo(timezone)).date()
    late_day = today - dt.timedelta(days=1)  # yesterday: its partition exists, its sales have not landed
    full, live, home = tmp_path / "full", tmp_path / "live", tmp_path / "home"
    generate_source(
        full,
        GeneratorConfig(
            n_skus=6,
            n_warehouses=2,
            start=late_day - dt.timedelta(days=HISTORY_DAYS - 1),
            days=HISTORY_DAYS,
            seed=5,
        ),
    )
    _write_source(full, live, late_day - dt.timedelta(days=1))
    settings = PlatformSettings(home=home, source=live, timezone=timezone, freshness_interval_s=INTERVAL_S)

    # The home as of this morning: everything through the day before yesterday.
    built = run_platform(settings, late_day - dt.timedelta(days=1), launch="in-process", retrain_every_days=7)
    assert built.ok, built.render()

    env = cli_env(tmp_path, **settings.to_env(), **{WEBHOOK_ENV: url})  # the interval: settings.to_env()
    log = tmp_path / "daemon.log"
    instance = dg.DagsterInstance.from_config(str(settings.dagster_home))
    daemon = subprocess.Popen(
        ["dagster-daemon", "run", "-w", str(REPO / "workspace.yaml")],
        cwd=REPO,
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group: the code server and run workers stop with it
    )
    try:
        # Late: judged failing again and again, the alert sensor past at least three failures.
        def three_failures_alerted() -> bool:
            failed = [i for i, passed, _, _ in _freshness(instance, late_day) if not passed]
            return len(failed) >= 3 and _alert_watermark(instance) >= failed[2]

        _wait("three failed judgements alerted", three_failures_alerted, daemon, log, 150)
        judged = _freshness(instance, late_day)
        assert not any(passed for _, passed, _, _ in judged)
        assert all("late in 2 of 2 warehouse(s): WH001, WH002" in text for _, _, text, _ in judged), judged
        failures = [p for p in posts if p.startswith(FAILURE)]
        assert len(failures) == 1, posts
        assert late_day.isoformat() in failures[0] and "WH001, WH002" in failures[0]

        # Yesterday's lines land; the catch-up makes yesterday's forecasts.
        _write_source(full, live, late_day)
        caught_up = run_platform(settings, late_day, launch="in-process", retrain_every_days=7)
        assert caught_up.ok, caught_up.render()

        def passed_and_alerted() -> bool:
            passed = [i for i, ok, _, _ in _freshness(instance, late_day) if ok]
            return bool(passed) and _alert_watermark(instance) >= passed[0]

        _wait("the passing judgement alerted", passed_and_alerted, daemon, log, 120)
        resolved = [p for p in posts if p.startswith(RESOLVED)]
        assert len(resolved) == 1, posts
        assert f"forecasts for {late_day.isoformat()} materialized in all 2 warehouses at " in resolved[0]

        # Quiet afterwards: the day is not judged again (so the alert sensor has no new execution to notify),
        # and no freshness notice followed.
        settled = len(_freshness(instance, late_day))
        time.sleep(3 * INTERVAL_S)
        assert len(_freshness(instance, late_day)) == settled
        assert [p for p in posts if p.startswith((FAILURE, RESOLVED))] == [failures[0], resolved[0]], posts
    finally:
        _stop_group(daemon)
    # Every judgement was the sensor's, recorded without a run.
    assert {run_id for *_, run_id in _freshness(instance, late_day)} == {""}
