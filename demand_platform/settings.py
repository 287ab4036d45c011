"""Platform settings: where the platform keeps its state and which source it reads.

Everything is read from environment variables so that ``dagster dev``, the CLI and Dagster's run
workers (separate processes) all agree:

* ``DEMAND_PLATFORM_HOME``: the platform's home directory (default ``~/.demand-platform``). It holds
  the DuckDB database, the MLflow store, the Dagster instance (``dagster/``) and reports.
* ``DEMAND_PLATFORM_SOURCE``: the source directory (default ``$DEMAND_PLATFORM_HOME/source``).
* ``DEMAND_PLATFORM_START_DATE``: first daily partition (default: the first transaction date).
* ``DEMAND_PLATFORM_END_DATE``: last daily partition (default: yesterday, in the company timezone).
* ``DEMAND_PLATFORM_TIMEZONE``: the company timezone (default ``UTC``).
* ``DEMAND_PLATFORM_ENV``: ``local`` (default, embedded DuckDB) or ``test``.
"""

import datetime as dt
import json
import os
from dataclasses import dataclass
from pathlib import Path

HOME_ENV = "DEMAND_PLATFORM_HOME"
SOURCE_ENV = "DEMAND_PLATFORM_SOURCE"
START_ENV = "DEMAND_PLATFORM_START_DATE"
END_ENV = "DEMAND_PLATFORM_END_DATE"
TIMEZONE_ENV = "DEMAND_PLATFORM_TIMEZONE"
ENV_ENV = "DEMAND_PLATFORM_ENV"

DEFAULT_HOME = Path("~/.demand-platform").expanduser()
SETTINGS_FILE = "settings.json"


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
    """

    home: Path
    source: Path
    start_date: dt.date | None = None
    end_date: dt.date | None = None
    timezone: str = "UTC"
    env: str = "local"

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> "PlatformSettings":
        """Read the settings from environment variables (see the module docstring)."""
        env = dict(os.environ if environ is None else environ)
        home = Path(env.get(HOME_ENV) or DEFAULT_HOME).expanduser().resolve()
        # Settings saved by the CLI in the home fill in what the environment leaves unset, so that
        # `dagster dev` on a home sees the same partitions as the run that filled it.
        saved_path = home / SETTINGS_FILE
        saved: dict[str, str] = json.loads(saved_path.read_text()) if saved_path.exists() else {}
        env = {**saved, **{k: v for k, v in env.items() if v}}
        source = Path(env.get(SOURCE_ENV) or home / "source").expanduser().resolve()
        return cls(
            home=home,
            source=source,
            start_date=_date(env.get(START_ENV)),
            end_date=_date(env.get(END_ENV)),
            timezone=env.get(TIMEZONE_ENV) or "UTC",
            env=env.get(ENV_ENV) or "local",
        )

    def to_env(self) -> dict[str, str]:
        """The environment variables that reproduce these settings in another process."""
        out = {
            HOME_ENV: str(self.home),
            SOURCE_ENV: str(self.source),
            TIMEZONE_ENV: self.timezone,
            ENV_ENV: self.env,
            "DAGSTER_HOME": str(self.dagster_home),
        }
        if self.start_date:
            out[START_ENV] = self.start_date.isoformat()
        if self.end_date:
            out[END_ENV] = self.end_date.isoformat()
        return out

    def save(self) -> Path:
        """Write these settings into the home so later processes on the home agree with them."""
        self.home.mkdir(parents=True, exist_ok=True)
        path = self.home / SETTINGS_FILE
        keep = {k: v for k, v in self.to_env().items() if k != HOME_ENV and k != "DAGSTER_HOME"}
        path.write_text(json.dumps(keep, indent=2, sort_keys=True))
        return path

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
