"""The platform database as a DuckLake: catalog in PostgreSQL, data as Parquet files on S3-compatible storage.

The cluster environment stores every table the platform writes (the assets and the side tables) in a
DuckLake instead of one DuckDB file. Every process (run workers and Celery workers on any machine, the CLI,
the daemon) opens an in-memory DuckDB, attaches the lake and makes it the default catalog: the platform's
SQL (DuckDB's dialect, ``main.<table>``) runs unchanged, partition writes are DuckLake transactions (an
atomic snapshot committed in the PostgreSQL catalog), and readers see the last committed snapshot.

Why DuckLake (see BENCHMARKS.md, "Cluster storage"): the platform's SQL is DuckDB's, so a store DuckDB
attaches keeps every query, the IO manager and the side tables as they are; PostgreSQL arbitrates the
commits of writers on different machines, and the data lives as Parquet on the object store, readable by
any engine. Concurrent writers do not wait for each other: DuckLake detects conflicting commits (a
transaction deleted a partition's rows from a table another transaction inserted into meanwhile) and the
loser's transaction is retried by :func:`demand_platform.dbfile.write_transaction`.

A lake is named by its DuckDB attach string, ``ducklake:postgres:<libpq connection string>``; it is created
once with its data path (:func:`create_lake`), which the catalog keeps. S3 credentials and endpoint come
from the standard AWS variables (``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_REGION``,
``AWS_ENDPOINT_URL``), as for every other S3 client of the platform (MLflow's artifacts, boto3).

DuckDB extensions come from the ``duckdb-extension-*`` packages on the package index (pinned to the DuckDB
version in pyproject.toml): they are loaded from the installed package's file, never downloaded.
"""

import importlib
import os
import urllib.parse
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import duckdb

#: Prefix of a DuckLake attach string (the ``database`` of a lake).
LAKE_PREFIX = "ducklake:"
#: The catalog name the lake is attached as (made the default with ``USE``).
LAKE_ALIAS = "platform_lake"
#: DuckDB extensions a lake connection needs, by their package name suffix.
EXTENSIONS = ("ducklake", "postgres_scanner", "httpfs")


class LakeError(RuntimeError):
    """The lake cannot be opened (a missing extension package, a catalog that does not answer)."""


def is_lake(database: str | os.PathLike[str]) -> bool:
    """Whether ``database`` names a DuckLake (else it is a DuckDB file or ``:memory:``)."""
    return os.fspath(database).startswith(LAKE_PREFIX)


def postgres_lake(url: str) -> str:
    """The DuckLake attach string of a catalog in the PostgreSQL database at ``url``.

    Args:
        url: ``postgresql://user[:password]@host[:port]/database`` (a libpq URL).
    """
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("postgresql", "postgres") or not parts.path.strip("/"):
        raise ValueError(
            f"not a PostgreSQL database URL: {url!r} (expected postgresql://user@host:port/database)"
        )
    fields = {
        "dbname": urllib.parse.unquote(parts.path.strip("/")),
        "host": parts.hostname,
        "port": parts.port,
        "user": urllib.parse.unquote(parts.username) if parts.username else None,
        "password": urllib.parse.unquote(parts.password) if parts.password else None,
    }
    conninfo = " ".join(f"{key}={value}" for key, value in fields.items() if value is not None)
    return f"{LAKE_PREFIX}postgres:{conninfo}"


def extension_file(name: str) -> Path:
    """The extension file shipped by the ``duckdb-extension-<name>`` package for this DuckDB version."""
    try:
        package = importlib.import_module(f"duckdb_extension_{name}")
    except ImportError as error:
        raise LakeError(
            f"DuckDB extension {name!r} is not installed: pip install 'duckdb-extension-{name.replace('_', '-')}"
            f"=={duckdb.__version__}' (the cluster extra of pyproject.toml)"
        ) from error
    assert package.__file__ is not None
    wanted = Path(package.__file__).parent / "extensions" / f"v{duckdb.__version__}"
    files = sorted(wanted.glob("*.duckdb_extension"))
    if not files:
        raise LakeError(
            f"duckdb-extension-{name} has no build for DuckDB {duckdb.__version__} (looked in {wanted}); "
            "the extension packages must match the DuckDB version"
        )
    return files[0]


def load_extensions(con: duckdb.DuckDBPyConnection) -> None:
    """Load the lake's extensions from their packages."""
    for name in EXTENSIONS:
        path = str(extension_file(name)).replace("'", "''")
        con.execute(f"LOAD '{path}'")


def _quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def s3_secret_sql(environ: Mapping[str, str] | None = None) -> str | None:
    """The ``CREATE SECRET`` of the S3 credentials in the standard AWS variables (None when none are set)."""
    env = os.environ if environ is None else environ
    key, secret = env.get("AWS_ACCESS_KEY_ID"), env.get("AWS_SECRET_ACCESS_KEY")
    if not key or not secret:
        return None
    options = {
        "TYPE": "s3",
        "KEY_ID": _quote(key),
        "SECRET": _quote(secret),
        "REGION": _quote(env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1"),
    }
    if token := env.get("AWS_SESSION_TOKEN"):
        options["SESSION_TOKEN"] = _quote(token)
    if endpoint := env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL"):
        parsed = urllib.parse.urlsplit(endpoint)
        options["ENDPOINT"] = _quote(parsed.netloc or parsed.path)
        options["USE_SSL"] = "false" if parsed.scheme == "http" else "true"
        options["URL_STYLE"] = _quote("path")  # what S3-compatible stores (MinIO, moto, Ceph) serve
    body = ", ".join(f"{k} {v}" for k, v in options.items())
    return f"CREATE OR REPLACE SECRET platform_s3 ({body})"


def _attach(con: duckdb.DuckDBPyConnection, database: str, options: str = "") -> None:
    try:
        con.execute(f"ATTACH {_quote(database)} AS {LAKE_ALIAS}{options}")
    except duckdb.Error as error:
        raise LakeError(f"cannot attach the lake {redact(database)}: {error}") from error
    con.execute(f"USE {LAKE_ALIAS}")


def redact(database: str) -> str:
    """``database`` without its password (for messages)."""
    return " ".join("password=***" if part.startswith("password=") else part for part in database.split(" "))


def connect(
    database: str, config: dict[str, Any] | None = None, *, data_path: str | None = None
) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with the lake ``database`` attached as its default catalog.

    Args:
        database: ``ducklake:postgres:<conninfo>`` (:func:`postgres_lake`).
        config: DuckDB configuration options.
        data_path: Where the lake's Parquet files go, given when the lake is created (:func:`create_lake`);
            None for an existing lake (its catalog keeps the path).
    """
    con = duckdb.connect(":memory:", config=dict(config or {}))
    try:
        load_extensions(con)
        if secret := s3_secret_sql():
            con.execute(secret)
        _attach(con, database, "" if data_path is None else f" (DATA_PATH {_quote(data_path)})")
    except BaseException:
        con.close()
        raise
    return con


def create_lake(database: str, data_path: str) -> None:
    """Create the lake (its catalog tables and data path) if it does not exist yet; a no-op otherwise.

    Args:
        database: ``ducklake:postgres:<conninfo>``.
        data_path: Where its Parquet files go (``s3://bucket/prefix/`` or a directory).
    """
    connect(database, data_path=data_path).close()
