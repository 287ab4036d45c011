"""``demand-platform ui``: the chart server of the reports directory, and the UI from a regular install."""

import contextlib
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from assets.chart_server import ChartServer, ChartServerError, bind_address
from assets.cli import main
from demand_platform.settings import CHARTS_URL_ENV, PlatformSettings
from demand_platform_tests.conftest import write_tiny_source
from demand_platform_tests.definitions.test_first_load import clean_environ, copy_project

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(64))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, b""


def raw_request(port: int, method: str, path: str) -> int:
    """The status of a request sent with ``path`` exactly as given (no client-side normalisation)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.putrequest(method, path, skip_accept_encoding=True)
        connection.putheader("Content-Length", "0")
        connection.endheaders()
        return connection.getresponse().status
    finally:
        connection.close()


def write_chart(settings: PlatformSettings) -> str:
    """A PNG under the reports directory; returns its path relative to it."""
    relative = "accuracy_report/W1/2024-01-10.png"
    (settings.reports_dir / relative).parent.mkdir(parents=True, exist_ok=True)
    (settings.reports_dir / relative).write_bytes(PNG)
    return relative


def test_bind_address_is_the_charts_url_host_and_port() -> None:
    assert bind_address("http://127.0.0.1:3030") == ("127.0.0.1", 3030)
    assert bind_address(PlatformSettings.from_env({CHARTS_URL_ENV: "http://localhost:4040/"}).charts_url) == (
        "localhost",
        4040,
    )
    with pytest.raises(ChartServerError, match="http://HOST:PORT"):
        bind_address("ftp://127.0.0.1:3030")


def test_the_chart_server_serves_the_reports_directory_read_only(tmp_path: Path) -> None:
    port = free_port()
    settings = PlatformSettings.from_env(
        {"DEMAND_PLATFORM_HOME": str(tmp_path / "home"), CHARTS_URL_ENV: f"http://127.0.0.1:{port}"}
    )
    relative = write_chart(settings)
    (settings.home / "secret.txt").write_text("outside the reports")
    with ChartServer(settings.reports_dir, *bind_address(settings.charts_url)):
        assert get(f"{settings.charts_url}/{relative}") == (200, PNG)
        assert get(f"{settings.charts_url}/accuracy_report/W1/missing.png")[0] == 404
        assert get(f"{settings.charts_url}/accuracy_report/W1/")[0] == 404  # no directory listing
        # A path climbing out of the reports directory stays inside it.
        assert raw_request(port, "GET", "/../secret.txt") == 404
        assert raw_request(port, "GET", "/%2e%2e/secret.txt") == 404
        assert raw_request(port, "PUT", "/new.png") == 501
        assert raw_request(port, "POST", f"/{relative}") == 501
    assert (settings.reports_dir / relative).read_bytes() == PNG
    with pytest.raises(urllib.error.URLError):  # stopped: the port is released
        urllib.request.urlopen(f"{settings.charts_url}/{relative}", timeout=5)


def test_a_taken_port_is_a_clear_error(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ChartServerError, match=f"127.0.0.1:{port}: the port is taken"):
            ChartServer(tmp_path / "reports", "127.0.0.1", port)


def test_ui_with_the_charts_port_taken_stops_before_starting_dagster(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        monkeypatch.setenv(CHARTS_URL_ENV, f"http://127.0.0.1:{port}")
        assert main(["ui", "--home", str(tmp_path / "home"), "--port", str(free_port())]) == 2
    assert f"127.0.0.1:{port}: the port is taken" in capsys.readouterr().err
    assert not (tmp_path / "home").exists()  # nothing written, no instance prepared, no dagster dev started


def location_status(port: int) -> str | None:
    """The platform code location's load status from the webserver's GraphQL (None: not answering yet)."""
    query = "{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus } } } }"
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql",
        data=json.dumps({"query": query}).encode(),
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            entries = json.loads(response.read())["data"]["workspaceOrError"]["locationEntries"]
    except (OSError, KeyError, TypeError, ValueError):
        return None
    return {entry["name"]: entry["loadStatus"] for entry in entries}.get("demand_platform")


@pytest.mark.slow
def test_ui_from_a_regular_install_loads_the_code_location_and_serves_the_charts(tmp_path: Path) -> None:
    """A non-editable install in a venv (its ``assets``, not the checkout's), run from outside the repo."""
    project = copy_project(tmp_path / "project")
    venv = tmp_path / "venv"
    # No pip in the venv (faster): this interpreter's pip installs into it (--python).
    subprocess.run(
        [sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(venv)],
        check=True,
        timeout=120,
    )
    python = venv / "bin" / "python"
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps", str(project)],
        check=True,
        timeout=180,
        cwd=tmp_path,
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = clean_environ(tmp_path / "user")
    imported = subprocess.run(
        [str(python), "-c", "import assets; print(assets.__file__)"],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert Path(imported).is_relative_to(venv), imported

    home = tmp_path / "home"
    write_tiny_source(home / "source")
    ui_port, charts_port = free_port(), free_port()
    charts_url = f"http://127.0.0.1:{charts_port}"
    settings = PlatformSettings.from_env({"DEMAND_PLATFORM_HOME": str(home), CHARTS_URL_ENV: charts_url})
    relative = write_chart(settings)
    log = tmp_path / "ui.log"
    with log.open("w") as out:
        ui = subprocess.Popen(
            [str(venv / "bin" / "demand-platform"), "ui", "--home", str(home), "--port", str(ui_port)],
            cwd=elsewhere,
            env={**env, CHARTS_URL_ENV: charts_url},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 75
        status = None
        while status != "LOADED" and time.monotonic() < deadline and ui.poll() is None:
            time.sleep(1)
            status = location_status(ui_port)
        assert status == "LOADED", log.read_text()[-3000:]
        assert f"running: {python} -m dagster dev" in log.read_text()
        assert get(f"{charts_url}/{relative}") == (200, PNG)
        assert get(f"{charts_url}/../source/products.parquet")[0] == 404
        # Stopped cleanly: the ui passes SIGTERM on to dagster dev, which stops its services.
        ui.send_signal(signal.SIGTERM)
        assert ui.wait(timeout=45) == 0, log.read_text()[-3000:]
        with pytest.raises(urllib.error.URLError):  # the chart server stopped with it
            urllib.request.urlopen(f"{charts_url}/{relative}", timeout=5)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(ui.pid, signal.SIGKILL)  # whatever is left of the process group
        ui.wait(timeout=30)
