"""Real services for the cluster tests, started by the tests on 127.0.0.1: PostgreSQL, Redis, an S3 endpoint.

PostgreSQL and Redis come from Debian's packages (``.ci/run`` installs ``postgresql`` and ``redis-server``);
the S3 endpoint is ``moto`` in server mode. Each service runs on a free port in a directory of its own and is
stopped (its process group) when the context exits. PostgreSQL refuses to run as root: as root, the cluster
is created and run as the ``postgres`` user the Debian package creates.
"""

import contextlib
import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

HOST = "127.0.0.1"
#: S3 credentials moto accepts (any); the cluster environment reads them like every AWS client.
S3_KEY, S3_SECRET, S3_REGION = "testing", "testing", "us-east-1"


def s3_env(endpoint: str) -> dict[str, str]:
    """The standard AWS variables of an S3 endpoint (what DuckDB's secret, boto3 and MLflow read)."""
    return {
        "AWS_ACCESS_KEY_ID": S3_KEY,
        "AWS_SECRET_ACCESS_KEY": S3_SECRET,
        "AWS_REGION": S3_REGION,
        "AWS_DEFAULT_REGION": S3_REGION,
        "AWS_ENDPOINT_URL": endpoint,
        "MLFLOW_S3_ENDPOINT_URL": endpoint,
    }


def s3_client(endpoint: str):
    """A boto3 S3 client of the endpoint with its credentials."""
    import boto3  # the cluster extra

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name=S3_REGION,
        aws_access_key_id=S3_KEY,
        aws_secret_access_key=S3_SECRET,
    )


def unique_name(hint: str) -> str:
    """A lowercase name unique to this process and moment, valid as a bucket or database name."""
    cleaned = "".join(c if c.isalnum() else "-" for c in hint.lower()).strip("-")[:30] or "t"
    return f"{cleaned}-{os.getpid()}-{time.monotonic_ns() % 10**9}"


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def _wait_for_port(port: int, process: subprocess.Popen[bytes], log: Path, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"service exited with {process.returncode}: {log.read_text()[-2000:]}")
        with contextlib.suppress(OSError), socket.create_connection((HOST, port), timeout=0.5):
            return
        time.sleep(0.1)
    raise TimeoutError(
        f"service did not listen on {HOST}:{port} within {timeout_s} s: {log.read_text()[-2000:]}"
    )


def stop(process: subprocess.Popen[bytes]) -> None:
    """Stop a process started in its own session: SIGTERM to its group, SIGKILL after 20 s."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


def postgres_bindir() -> Path:
    """Where Debian's PostgreSQL server programs are (``initdb`` is not on ``PATH``)."""
    if pg_config := shutil.which("pg_config"):
        found = Path(subprocess.run([pg_config, "--bindir"], capture_output=True, text=True).stdout.strip())
        if (found / "initdb").exists():
            return found
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    if not candidates:
        raise RuntimeError("PostgreSQL server not installed: apt-get install postgresql (see .ci/run)")
    return Path(candidates[-1]).parent


@dataclass(frozen=True)
class Postgres:
    """A running PostgreSQL server (trust authentication on 127.0.0.1).

    Attributes:
        port: Its TCP port.
        user: The superuser to connect as.
    """

    port: int
    user: str = "postgres"

    def url(self, database: str = "postgres") -> str:
        """A SQLAlchemy / libpq URL of ``database``."""
        return f"postgresql://{self.user}@{HOST}:{self.port}/{database}"

    def conninfo(self, database: str = "postgres") -> str:
        """A libpq key-value connection string of ``database`` (what DuckDB's ATTACH takes)."""
        return f"dbname={database} host={HOST} port={self.port} user={self.user}"

    def create_database(self, name: str) -> str:
        """Create database ``name`` (dropped first if it exists) and return its URL."""
        import psycopg2

        con = psycopg2.connect(self.url())
        con.autocommit = True
        try:
            with con.cursor() as cur:
                cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                cur.execute(f'CREATE DATABASE "{name}"')
        finally:
            con.close()
        return self.url(name)


@contextlib.contextmanager
def postgres_server() -> Iterator[Postgres]:
    """A fresh PostgreSQL cluster on a free port, removed afterwards."""
    bindir = postgres_bindir()
    root = Path(tempfile.mkdtemp(prefix="demand-pg-"))
    as_root = os.geteuid() == 0
    run_as: list[str] = ["runuser", "-u", "postgres", "--"] if as_root else []
    if as_root:
        shutil.chown(root, "postgres")
    data, log = root / "data", root / "server.log"
    subprocess.run(
        [*run_as, str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres", "-E", "UTF8"],
        check=True,
        capture_output=True,
    )
    port = free_port()
    settings = [
        "-p", str(port), "-k", str(root), "-c", f"listen_addresses={HOST}", "-c", "max_connections=300",
        "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
    ]  # fmt: skip
    with log.open("wb") as out:
        process = subprocess.Popen(
            [*run_as, str(bindir / "postgres"), "-D", str(data), *settings],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        _wait_for_port(port, process, log)
        _wait_until_ready(bindir, port)
        yield Postgres(port=port)
    finally:
        stop(process)
        shutil.rmtree(root, ignore_errors=True)


def _wait_until_ready(bindir: Path, port: int, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        ready = subprocess.run([str(bindir / "pg_isready"), "-h", HOST, "-p", str(port)], capture_output=True)
        if ready.returncode == 0:
            return
        time.sleep(0.2)
    raise TimeoutError(f"PostgreSQL on port {port} not ready within {timeout_s} s")


@contextlib.contextmanager
def redis_server() -> Iterator[str]:
    """A Redis server without persistence on a free port; yields its URL."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server not installed: apt-get install redis-server (see .ci/run)")
    root = Path(tempfile.mkdtemp(prefix="demand-redis-"))
    port, log = free_port(), root / "redis.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                binary,
                "--port",
                str(port),
                "--bind",
                HOST,
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(root),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        _wait_for_port(port, process, log)
        yield f"redis://{HOST}:{port}/0"
    finally:
        stop(process)
        shutil.rmtree(root, ignore_errors=True)


@contextlib.contextmanager
def s3_server() -> Iterator[str]:
    """An S3 endpoint (``moto`` in server mode) on a free port; yields its URL."""
    root = Path(tempfile.mkdtemp(prefix="demand-s3-"))
    port, log = free_port(), root / "moto.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", HOST, "-p", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://{HOST}:{port}"
    try:
        _wait_for_port(port, process, log)
        with urllib.request.urlopen(url, timeout=10):
            pass
        yield url
    finally:
        stop(process)
        shutil.rmtree(root, ignore_errors=True)
