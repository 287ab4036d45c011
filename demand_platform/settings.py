"""Platform settings: where the platform keeps its state and which source it reads.

Everything is read from environment variables so that ``dagster dev``, the CLI and Dagster's run
workers (separate processes) all agree:

* ``DEMAND_PLATFORM_HOME``: the platform's home directory (default ``~/.demand-platform``). It holds
  the DuckDB database, the MLflow store, the Dagster instance (``dagster/``) and reports.
* ``DEMAND_PLATFORM_SOURCE``: the source directory (default ``$DEMAND_PLATFORM_HOME/source``).
* ``DEMAND_PLATFORM_START_DATE``: first daily partition (default: where the bulk of the source's
  transaction history starts; stray lines before or after it never move it).
* ``DEMAND_PLATFORM_END_DATE``: last daily partition (default: yesterday, in the company timezone, so a
  live home's partitions follow time).
* ``DEMAND_PLATFORM_TIMEZONE``: the company timezone (default ``UTC``).
* ``DEMAND_PLATFORM_ENV``: ``local`` (default, embedded DuckDB) or ``test``.
* ``DEMAND_PLATFORM_RETRAIN_EVERY_DAYS``: retraining cadence of the daily schedule (default 1: every day;
  ``n``: days whose offset from the first partition is a multiple of ``n``).
* ``DEMAND_PLATFORM_DATABASE_RUNS``: how many runs touching the platform database the run queue admits at
  once (the ``duckdb`` pool's limit; default 2, one per core of the development box). Their connections
  still take turns on the database file lock (``demand_platform.dbfile``), so their computations overlap.
* ``DEMAND_PLATFORM_WAREHOUSES_PER_RUN``: warehouses one run of the daily schedule covers (default 1: every
  warehouse in runs of its own; more launch fewer runs, and a box fails or retries as a whole).

What the CLI saves in ``$HOME/settings.json`` (so that ``dagster dev`` and the run workers on a home
agree with it) is only what cannot make a later day unreachable: the source, the timezone, the
environment, and a first day the user gave explicitly (``--start``). Partition bounds derived from data
or from ``--through`` are never saved, and bounds saved by older versions are ignored.
"""

import datetime as dt
import json
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

HOME_ENV = "DEMAND_PLATFORM_HOME"
SOURCE_ENV = "DEMAND_PLATFORM_SOURCE"
START_ENV = "DEMAND_PLATFORM_START_DATE"
END_ENV = "DEMAND_PLATFORM_END_DATE"
TIMEZONE_ENV = "DEMAND_PLATFORM_TIMEZONE"
ENV_ENV = "DEMAND_PLATFORM_ENV"
RETRAIN_ENV = "DEMAND_PLATFORM_RETRAIN_EVERY_DAYS"
DATABASE_RUNS_ENV = "DEMAND_PLATFORM_DATABASE_RUNS"
WAREHOUSES_PER_RUN_ENV = "DEMAND_PLATFORM_WAREHOUSES_PER_RUN"
#: Runs on the platform database admitted at once by default.
DEFAULT_DATABASE_RUNS = 2

DEFAULT_HOME = Path("~/.demand-platform").expanduser()
SETTINGS_FILE = "settings.json"
#: Marks a saved start date as given by the user (``--start``); an unmarked saved start (written by
#: versions that saved the first day they derived from the data) is ignored.
EXPLICIT_START_KEY = "start_date_explicit"


def _date(value: str | None) -> dt.date | None:
    return dt.date.fromisoformat(value) if value else None


@dataclass(frozen=True)
class PlatformSettings:
    """Where the platform lives and what it reads.

    Attributes:
        home: Platform home directory.
        source: Source directory (one file per table).
        start_date: First daily partition, or None to take the first transaction date.
        end_date: Last daily partition, or None for "up to yesterday".
        timezone: Company timezone of the daily partitions, schedules and the 08:00 deadline.
        env: Environment name selecting the resources (``local`` or ``test``).
        retrain_every_days: Retraining cadence of the daily schedule.
        database_runs: Runs on the platform database the run queue admits at once (the pool limit).
        warehouses_per_run: Warehouses one run of the daily schedule covers.
    """

    home: Path
    source: Path
    start_date: dt.date | None = None
    end_date: dt.date | None = None
    timezone: str = "UTC"
    env: str = "local"
    retrain_every_days: int = 1
    database_runs: int = DEFAULT_DATABASE_RUNS
    warehouses_per_run: int = 1

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> "PlatformSettings":
        """Read the settings from environment variables (see the module docstring)."""
        env = dict(os.environ if environ is None else environ)
        home = Path(env.get(HOME_ENV) or DEFAULT_HOME).expanduser().resolve()
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
        source = Path(env.get(SOURCE_ENV) or home / "source").expanduser().resolve()
        return cls(
            home=home,
            source=source,
            start_date=_date(env.get(START_ENV)),
            end_date=_date(env.get(END_ENV)),
            timezone=env.get(TIMEZONE_ENV) or "UTC",
            env=env.get(ENV_ENV) or "local",
            retrain_every_days=int(env.get(RETRAIN_ENV) or 1),
            database_runs=int(env.get(DATABASE_RUNS_ENV) or DEFAULT_DATABASE_RUNS),
            warehouses_per_run=int(env.get(WAREHOUSES_PER_RUN_ENV) or 1),
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
            "DAGSTER_HOME": str(self.dagster_home),
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
        """The embedded DuckDB database holding every asset's table."""
        return self.home / "warehouse.duckdb"

    @property
    def mlflow_uri(self) -> str:
        """MLflow tracking store (sqlite: MLflow no longer accepts a ``file:`` store)."""
        return f"sqlite:///{self.home / 'mlflow.db'}"

    @property
    def dagster_home(self) -> Path:
        """The Dagster instance directory (``DAGSTER_HOME``)."""
        return self.home / "dagster"

    @property
    def reports_dir(self) -> Path:
        """Where report files (plots, summaries) are written."""
        return self.home / "reports"
