"""Platform settings: where the platform keeps its state and which source it reads.

Everything is read from environment variables so that ``dagster dev``, the CLI and Dagster's run
workers (separate processes) all agree:

* ``DEMAND_PLATFORM_HOME``: the platform's home directory (default ``~/.demand-platform``). It holds
  the DuckDB database, the MLflow store, the Dagster instance (``dagster/``) and reports.
* ``DEMAND_PLATFORM_SOURCE``: the source directory (default ``$DEMAND_PLATFORM_HOME/source``), or a
  PostgreSQL database holding the source tables (``postgresql://user@host:port/database``).
* ``DEMAND_PLATFORM_START_DATE``: first daily partition (default: where the bulk of the source's
  transaction history starts; stray lines before or after it never move it).
* ``DEMAND_PLATFORM_END_DATE``: last daily partition (default: yesterday, in the company timezone, so a
  live home's partitions follow time).
* ``DEMAND_PLATFORM_TIMEZONE``: the company timezone (default ``UTC``).
* ``DEMAND_PLATFORM_ENV``: ``local`` (default, embedded DuckDB), ``test``, or ``cluster`` (the Dagster
  instance on PostgreSQL, steps on Celery workers, the tables in a DuckLake: catalog in PostgreSQL, Parquet
  on S3; MLflow on PostgreSQL with artifacts on S3). The cluster reads, all required:

  - ``DEMAND_PLATFORM_INSTANCE_DB``: PostgreSQL URL of the Dagster instance's storage;
  - ``DEMAND_PLATFORM_LAKE_CATALOG``: PostgreSQL URL of the DuckLake catalog database;
  - ``DEMAND_PLATFORM_LAKE_DATA``: where the lake's Parquet files go (``s3://bucket/prefix/``);
  - ``DEMAND_PLATFORM_MLFLOW_URI``: MLflow tracking URI (``postgresql://...``);
  - ``DEMAND_PLATFORM_MLFLOW_ARTIFACTS``: MLflow's artifact location (``s3://bucket/prefix``);
  - ``DEMAND_PLATFORM_CELERY_BROKER``: the Celery broker (and result backend) URL (``redis://...``);
  - ``DEMAND_PLATFORM_STEP_TIMEOUT_S`` (optional, default 7200): longer than any step may run. A step whose
    worker died (the machine was lost) is handed to another worker after this long (Celery's visibility
    timeout); a step still running after it would be handed out a second time;

  and the S3 endpoint and credentials from the standard ``AWS_*`` variables (``AWS_ENDPOINT_URL``,
  ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_REGION``).
* ``DEMAND_PLATFORM_RETRAIN_EVERY_DAYS``: retraining cadence of the daily schedule (default 1: every day;
  ``n``: days whose offset from the first partition is a multiple of ``n``).
* ``DEMAND_PLATFORM_DATABASE_RUNS``: how many runs touching the platform database the run queue admits at
  once (the ``duckdb`` pool's limit; default 2, one per core of the development box). Their connections
  still take turns on the database file lock (``demand_platform.dbfile``), so their computations overlap.
* ``DEMAND_PLATFORM_WAREHOUSES_PER_RUN``: warehouses one run of the daily schedule covers (default 1: every
  warehouse in runs of its own; more launch fewer runs, and a box fails or retries as a whole).
* ``DEMAND_PLATFORM_CHARTS_URL``: the URL at which the reports directory is served (default
  ``http://127.0.0.1:3030``, where ``demand-platform ui`` serves it). Report metadata links the chart files
  under this URL instead of inlining them in the event log.
* ``DEMAND_PLATFORM_FRESHNESS_INTERVAL_S``: seconds between two judgements of the 08:00 deadline by the
  daemon's ``freshness_sensor`` (default 300; see :mod:`assets.operations`).

What the CLI saves in ``$HOME/settings.json`` (so that ``dagster dev`` and the run workers on a home
agree with it) is only what cannot make a later day unreachable: the source, the timezone, the
environment, and a first day the user gave explicitly (``--start``). Partition bounds derived from data
or from ``--through`` are never saved, and bounds saved by older versions are ignored.

Which home a code location loads (:func:`resolve_settings`, for a bare ``dagster dev``): the configured one
when its source exists; otherwise, when neither ``DEMAND_PLATFORM_HOME`` nor ``DEMAND_PLATFORM_SOURCE`` is
set, ``./demo-home`` (what ``demand-platform demo`` writes) when its source exists; otherwise the configured
home without a source (the definitions then load an empty platform that says so).
"""

import datetime as dt
import json
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from demand_platform import columns as C
from demand_platform import lake
from demand_platform import source as source_files

HOME_ENV = "DEMAND_PLATFORM_HOME"
SOURCE_ENV = "DEMAND_PLATFORM_SOURCE"
START_ENV = "DEMAND_PLATFORM_START_DATE"
END_ENV = "DEMAND_PLATFORM_END_DATE"
TIMEZONE_ENV = "DEMAND_PLATFORM_TIMEZONE"
ENV_ENV = "DEMAND_PLATFORM_ENV"
RETRAIN_ENV = "DEMAND_PLATFORM_RETRAIN_EVERY_DAYS"
DATABASE_RUNS_ENV = "DEMAND_PLATFORM_DATABASE_RUNS"
WAREHOUSES_PER_RUN_ENV = "DEMAND_PLATFORM_WAREHOUSES_PER_RUN"
CHARTS_URL_ENV = "DEMAND_PLATFORM_CHARTS_URL"
#: Where ``demand-platform ui`` serves the reports directory by default.
DEFAULT_CHARTS_URL = "http://127.0.0.1:3030"
FRESHNESS_INTERVAL_ENV = "DEMAND_PLATFORM_FRESHNESS_INTERVAL_S"
INSTANCE_DB_ENV = "DEMAND_PLATFORM_INSTANCE_DB"
LAKE_CATALOG_ENV = "DEMAND_PLATFORM_LAKE_CATALOG"
LAKE_DATA_ENV = "DEMAND_PLATFORM_LAKE_DATA"
MLFLOW_URI_ENV = "DEMAND_PLATFORM_MLFLOW_URI"
MLFLOW_ARTIFACTS_ENV = "DEMAND_PLATFORM_MLFLOW_ARTIFACTS"
CELERY_BROKER_ENV = "DEMAND_PLATFORM_CELERY_BROKER"
STEP_TIMEOUT_ENV = "DEMAND_PLATFORM_STEP_TIMEOUT_S"
DEFAULT_STEP_TIMEOUT_S = 7200
#: The environments :func:`resources.build_resources` knows.
ENVIRONMENTS = ("local", "test", "cluster")
CLUSTER = "cluster"
#: Default seconds between two judgements of the deadline by ``freshness_sensor``.
DEFAULT_FRESHNESS_INTERVAL_S = 300
#: Runs on the platform database admitted at once by default.
DEFAULT_DATABASE_RUNS = 2

DEFAULT_HOME = Path("~/.demand-platform").expanduser()
#: The home ``demand-platform demo`` writes by default, relative to the working directory.
DEMO_HOME = Path("demo-home")
#: What a platform without a source tells the user (the UI and the log of the code location).
NO_SOURCE_HINT = "no source yet: run `demand-platform demo` or set DEMAND_PLATFORM_SOURCE"
SETTINGS_FILE = "settings.json"
#: Marks a saved start date as given by the user (``--start``); an unmarked saved start (written by
#: versions that saved the first day they derived from the data) is ignored.
EXPLICIT_START_KEY = "start_date_explicit"


def is_url(value: str | Path) -> bool:
    """Whether a source is a database URL (``scheme://...``) rather than a directory."""
    return isinstance(value, str) and "://" in value


def _date(value: str | None) -> dt.date | None:
    return dt.date.fromisoformat(value) if value else None


@dataclass(frozen=True)
class ClusterSettings:
    """Where the cluster environment keeps its state (servers shared by every machine).

    Attributes:
        instance_db: PostgreSQL URL of the Dagster instance's storage (runs, events, schedules).
        lake_catalog: PostgreSQL URL of the DuckLake catalog (:mod:`demand_platform.lake`).
        lake_data: Where the lake's Parquet files go (``s3://bucket/prefix/``).
        mlflow_uri: MLflow tracking URI.
        mlflow_artifacts: MLflow's artifact location (``s3://bucket/prefix``).
        celery_broker: Celery broker and result backend URL.
        step_timeout_s: Seconds after which the step of a lost worker goes to another worker (longer than any
            step runs).
    """

    instance_db: str
    lake_catalog: str
    lake_data: str
    mlflow_uri: str
    mlflow_artifacts: str
    celery_broker: str
    step_timeout_s: int = DEFAULT_STEP_TIMEOUT_S

    #: Field -> environment variable (required ones).
    ENV = {
        "instance_db": INSTANCE_DB_ENV,
        "lake_catalog": LAKE_CATALOG_ENV,
        "lake_data": LAKE_DATA_ENV,
        "mlflow_uri": MLFLOW_URI_ENV,
        "mlflow_artifacts": MLFLOW_ARTIFACTS_ENV,
        "celery_broker": CELERY_BROKER_ENV,
    }

    @classmethod
    def from_env(cls, env: dict[str, str]) -> "ClusterSettings":
        """Read the cluster's variables; every one is required."""
        missing = [var for var in cls.ENV.values() if not env.get(var)]
        if missing:
            raise ValueError(f"{ENV_ENV}={CLUSTER} needs {', '.join(missing)} (see demand_platform.settings)")
        timeout = int(env.get(STEP_TIMEOUT_ENV) or DEFAULT_STEP_TIMEOUT_S)
        return cls(**{name: env[var] for name, var in cls.ENV.items()}, step_timeout_s=timeout)

    def to_env(self) -> dict[str, str]:
        """The environment variables of these settings."""
        return {
            **{var: getattr(self, name) for name, var in self.ENV.items()},
            STEP_TIMEOUT_ENV: str(self.step_timeout_s),
        }


@dataclass(frozen=True)
class PlatformSettings:
    """Where the platform lives and what it reads.

    Attributes:
        home: Platform home directory.
        source: Source directory (one file per table), or the URL of a source database.
        start_date: First daily partition, or None to take the first transaction date.
        end_date: Last daily partition, or None for "up to yesterday".
        timezone: Company timezone of the daily partitions, schedules and the 08:00 deadline.
        env: Environment name selecting the resources (``local``, ``test`` or ``cluster``).
        retrain_every_days: Retraining cadence of the daily schedule.
        database_runs: Runs on the platform database the run queue admits at once (the pool limit).
        warehouses_per_run: Warehouses one run of the daily schedule covers.
        charts_url: Base URL at which :attr:`reports_dir` is served (chart links in report metadata).
        freshness_interval_s: Seconds between two judgements of the deadline by ``freshness_sensor``.
        cluster: The servers of the ``cluster`` environment (None in the others).
    """

    home: Path
    source: Path | str
    start_date: dt.date | None = None
    end_date: dt.date | None = None
    timezone: str = "UTC"
    env: str = "local"
    retrain_every_days: int = 1
    database_runs: int = DEFAULT_DATABASE_RUNS
    warehouses_per_run: int = 1
    charts_url: str = DEFAULT_CHARTS_URL
    freshness_interval_s: int = DEFAULT_FRESHNESS_INTERVAL_S
    cluster: ClusterSettings | None = None

    def __post_init__(self) -> None:
        if self.freshness_interval_s < 1:
            raise ValueError(
                f"{FRESHNESS_INTERVAL_ENV} must be a positive number of seconds, got {self.freshness_interval_s}"
            )
        if self.env not in ENVIRONMENTS:
            raise ValueError(f"unknown environment {self.env!r} ({ENV_ENV}); expected one of {ENVIRONMENTS}")
        if (self.env == CLUSTER) != (self.cluster is not None):
            raise ValueError(
                f"the {CLUSTER} environment, and only it, has cluster settings (env {self.env!r})"
            )

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> "PlatformSettings":
        """Read the settings from environment variables (see the module docstring)."""
        env = dict(os.environ if environ is None else environ)
        # The default home follows the given environment's HOME (``~/.demand-platform`` of that user).
        default_home = Path(env["HOME"]) / DEFAULT_HOME.name if env.get("HOME") else DEFAULT_HOME
        home = Path(env.get(HOME_ENV) or default_home).expanduser().resolve()
        # Settings saved by the CLI in the home fill in what the environment leaves unset, so that
        # `dagster dev` on a home sees the same partitions as the run that filled it.
        saved_path = home / SETTINGS_FILE
        saved: dict[str, Any] = json.loads(saved_path.read_text()) if saved_path.exists() else {}
        # Bounds saved by older versions froze the partitions (the day-2 crash): never read them back,
        # except a start date the user gave explicitly.
        saved.pop(END_ENV, None)
        if not saved.pop(EXPLICIT_START_KEY, False):
            saved.pop(START_ENV, None)
        env = {**saved, **{k: v for k, v in env.items() if v}}
        given = env.get(SOURCE_ENV)
        source = given if given and is_url(given) else Path(given or home / "source").expanduser().resolve()
        environment = env.get(ENV_ENV) or "local"
        return cls(
            home=home,
            source=source,
            start_date=_date(env.get(START_ENV)),
            end_date=_date(env.get(END_ENV)),
            timezone=env.get(TIMEZONE_ENV) or "UTC",
            env=environment,
            retrain_every_days=int(env.get(RETRAIN_ENV) or 1),
            database_runs=int(env.get(DATABASE_RUNS_ENV) or DEFAULT_DATABASE_RUNS),
            warehouses_per_run=int(env.get(WAREHOUSES_PER_RUN_ENV) or 1),
            charts_url=(env.get(CHARTS_URL_ENV) or DEFAULT_CHARTS_URL).rstrip("/"),
            freshness_interval_s=int(env.get(FRESHNESS_INTERVAL_ENV) or DEFAULT_FRESHNESS_INTERVAL_S),
            cluster=ClusterSettings.from_env(env) if environment == CLUSTER else None,
        )

    def to_env(self) -> dict[str, str]:
        """The environment variables that reproduce these settings in another process."""
        out = {
            HOME_ENV: str(self.home),
            SOURCE_ENV: str(self.source),
            TIMEZONE_ENV: self.timezone,
            ENV_ENV: self.env,
            RETRAIN_ENV: str(self.retrain_every_days),
            DATABASE_RUNS_ENV: str(self.database_runs),
            WAREHOUSES_PER_RUN_ENV: str(self.warehouses_per_run),
            CHARTS_URL_ENV: self.charts_url,
            FRESHNESS_INTERVAL_ENV: str(self.freshness_interval_s),
            "DAGSTER_HOME": str(self.dagster_home),
            **(self.cluster.to_env() if self.cluster else {}),
        }
        if self.start_date:
            out[START_ENV] = self.start_date.isoformat()
        if self.end_date:
            out[END_ENV] = self.end_date.isoformat()
        return out

    def save(self, explicit_start: dt.date | None = None) -> Path:
        """Write these settings into the home so later processes on the home agree with them.

        Only what cannot make a later day unreachable is written (see the module docstring): never the
        end date, and the start date only when ``explicit_start`` (the user's ``--start``) is given.
        """
        self.home.mkdir(parents=True, exist_ok=True)
        path = self.home / SETTINGS_FILE
        drop = {HOME_ENV, "DAGSTER_HOME", START_ENV, END_ENV}
        keep: dict[str, Any] = {k: v for k, v in self.to_env().items() if k not in drop}
        if explicit_start is not None:
            keep[START_ENV] = explicit_start.isoformat()
            keep[EXPLICIT_START_KEY] = True
        elif path.exists():  # keep an explicit start saved earlier
            old = json.loads(path.read_text())
            if old.get(EXPLICIT_START_KEY) and old.get(START_ENV):
                keep[START_ENV], keep[EXPLICIT_START_KEY] = old[START_ENV], True
        path.write_text(json.dumps(keep, indent=2, sort_keys=True))
        return path

    def yesterday(self, now: dt.datetime | None = None) -> dt.date:
        """Yesterday in the company timezone: the last daily partition of a home without an end date."""
        current = now or dt.datetime.now(ZoneInfo(self.timezone))
        return current.astimezone(ZoneInfo(self.timezone)).date() - dt.timedelta(days=1)

    def covering(self, day: dt.date, now: dt.datetime | None = None) -> "PlatformSettings":
        """These settings with partitions that reach at least ``day`` (``run --through day``).

        An explicit end date before ``day`` is moved to ``day``; without one, the partitions already reach
        yesterday, and a later ``day`` (a source dated ahead of the clock) becomes the end.
        """
        if self.end_date is not None:
            return self if self.end_date >= day else replace(self, end_date=day)
        return self if day <= self.yesterday(now) else replace(self, end_date=day)

    @property
    def duckdb_path(self) -> Path:
        """The embedded DuckDB database holding every asset's table (local and test environments)."""
        return self.home / "warehouse.duckdb"

    @property
    def database(self) -> str:
        """The platform database every connection opens (:func:`demand_platform.dbfile.connect`).

        The embedded DuckDB file, or on the cluster the DuckLake attach string of its catalog.
        """
        if self.cluster is not None:
            return lake.postgres_lake(self.cluster.lake_catalog)
        return str(self.duckdb_path)

    @property
    def mlflow_uri(self) -> str:
        """MLflow tracking store (sqlite under the home: MLflow no longer accepts a ``file:`` store)."""
        if self.cluster is not None:
            return self.cluster.mlflow_uri
        return f"sqlite:///{self.home / 'mlflow.db'}"

    @property
    def mlflow_artifacts(self) -> str | None:
        """Where MLflow's artifacts go (None: beside the SQLite store)."""
        return None if self.cluster is None else self.cluster.mlflow_artifacts

    @property
    def dagster_home(self) -> Path:
        """The Dagster instance directory (``DAGSTER_HOME``)."""
        return self.home / "dagster"

    @property
    def reports_dir(self) -> Path:
        """Where report files (plots, summaries) are written."""
        return self.home / "reports"


def has_source(settings: PlatformSettings) -> bool:
    """Whether the settings' source holds a transactions table (what the partitions are read from)."""
    return source_files.has_table(settings.source, C.TRANSACTIONS)


@dataclass(frozen=True)
class ResolvedSettings:
    """The settings a code location loads, and why (see :func:`resolve_settings`).

    Attributes:
        settings: The settings of the chosen home.
        has_source: Whether that home's source exists (False: the platform has nothing to run yet).
        note: One line for the log and the UI: the home and source chosen, or what is missing and how to
            provide it.
    """

    settings: PlatformSettings
    has_source: bool
    note: str


def resolve_settings(environ: dict[str, str] | None = None, cwd: Path | None = None) -> ResolvedSettings:
    """The home a code location loads: configured, else ``./demo-home``, else none (see the module docstring).

    ``./demo-home`` is taken only when neither the home nor the source is configured: a configured home
    without a source is reported as such, never silently replaced by another home.

    Args:
        environ: Environment variables (default ``os.environ``).
        cwd: Directory ``demo-home`` is relative to (default the working directory).
    """
    env = dict(os.environ if environ is None else environ)
    settings = PlatformSettings.from_env(env)
    if has_source(settings):
        label = source_files.source_label(settings.source)  # a database URL without its password
        return ResolvedSettings(settings, True, f"platform home {settings.home}, source {label}")
    looked = [settings.source]
    if not env.get(HOME_ENV) and not env.get(SOURCE_ENV):
        demo_home = ((Path.cwd() if cwd is None else cwd) / DEMO_HOME).resolve()
        demo = PlatformSettings.from_env({**env, HOME_ENV: str(demo_home)})
        if has_source(demo):
            note = (
                f"no source at {source_files.source_label(settings.source)}; platform home {demo.home} (the "
                f"demo's, in the working directory), source {demo.source}; the demo's runs are in its Dagster instance: "
                f"`demand-platform ui --home {demo.home}`"
            )
            return ResolvedSettings(demo, True, note)
        looked.append(demo.source)
    where = " nor ".join(source_files.source_label(path) for path in looked)
    return ResolvedSettings(settings, False, f"{NO_SOURCE_HINT} (no transactions file in {where})")
