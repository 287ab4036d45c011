"""A read-only HTTP server of the home's reports directory, for the chart links in report metadata.

``demand-platform ui`` starts it next to ``dagster dev`` at ``settings.charts_url`` (default
``http://127.0.0.1:3030``): the accuracy report's metadata links its chart PNGs under that URL instead of
inlining them in the event log, and the Dagster UI shows them from there.
"""

import errno
import functools
import http.server
import threading
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit


class ChartServerError(RuntimeError):
    """The chart server cannot start (bad URL, or its port is taken)."""


class _ReadOnlyHandler(http.server.SimpleHTTPRequestHandler):
    """GET and HEAD of files under the served directory; no directory listing, quiet log."""

    def list_directory(self, path: str | Any) -> None:
        self.send_error(404, "Not Found")
        return None

    def log_message(self, format: str, *args: Any) -> None:
        pass


def bind_address(url: str) -> tuple[str, int]:
    """The host and port an ``http://host:port`` URL is served at (port 80 when the URL has none)."""
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise ChartServerError(f"charts URL {url!r}: expected http://HOST:PORT")
    return parts.hostname, parts.port or 80


class ChartServer:
    """``directory`` served over HTTP at ``host:port`` from a daemon thread (a context manager).

    Only files under ``directory`` are served (``SimpleHTTPRequestHandler`` maps the URL path inside it);
    anything else, directories included, is a 404. The directory is created if missing, so a new home's
    reports appear once written.
    """

    def __init__(self, directory: Path, host: str, port: int) -> None:
        handler = functools.partial(_ReadOnlyHandler, directory=str(directory))
        try:
            self._server = http.server.ThreadingHTTPServer((host, port), handler)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise ChartServerError(
                    f"cannot serve the charts at http://{host}:{port}: the port is taken (another "
                    "`demand-platform ui`?). Stop it, or set DEMAND_PLATFORM_CHARTS_URL to a free port "
                    "(the report's chart links follow it)."
                ) from exc
            raise ChartServerError(f"cannot serve the charts at http://{host}:{port}: {exc}") from exc
        directory.mkdir(parents=True, exist_ok=True)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="chart-server", daemon=True)

    def start(self) -> "ChartServer":
        """Serve from a daemon thread."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and release the port."""
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join()
        self._server.server_close()

    def __enter__(self) -> "ChartServer":
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
