"""The ``demand-platform`` command line (in the Dagster layer: ``run``, ``demo`` and ``ui`` drive Dagster).

Commands: ``generate`` (synthetic source), ``run`` (bring the platform up to date through a day, via
Dagster, recorded in the instance under the home), ``demo`` (generate + run), ``ui`` (``dagster dev``
on the home, its reports served over HTTP), ``chart`` (one SKU's forecast fan chart), ``contract`` (print the source data contract).
"""

import argparse
import datetime as dt
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import warnings
from dataclasses import replace
from pathlib import Path

from demand_platform import columns as C
from demand_platform import dbfile, lake, source
from demand_platform.settings import DEMO_HOME, PlatformSettings

# The forecast columns promised to replenishment, first in an export (override columns follow).
EXPORT_COLUMNS = list(C.FORECAST_COLUMNS)
DEFAULT_DEMO_HOME = DEMO_HOME


def _date(text: str) -> dt.date:
    return dt.date.fromisoformat(text)


def cmd_generate(args: argparse.Namespace) -> int:
    """Write a synthetic source directory."""
    from demand_platform.synthetic import GeneratorConfig, generate_source

    config = GeneratorConfig(
        n_skus=args.skus,
        n_warehouses=args.warehouses,
        start=args.start,
        days=args.days,
        seed=args.seed,
        bad_rows=args.bad_rows,
    )
    summary = generate_source(Path(args.out), config, progress=True)
    print(f"wrote {args.out}: {summary}")
    return 0


def settings_for(
    home: Path, source_dir: Path | str | None, through: dt.date | None = None, start: dt.date | None = None
) -> PlatformSettings:
    """Settings for a home (and source) given on the command line.

    The partitions reach yesterday (company timezone) and at least ``through``; the first day is
    ``start`` (``--start``, saved in the home as the user's choice) or where the bulk of the source's
    history starts (derived when the definitions load, never saved).
    """
    environ = {**os.environ, "DEMAND_PLATFORM_HOME": str(home)}
    if source_dir is not None:  # else the source saved in the home (or $HOME/source)
        environ["DEMAND_PLATFORM_SOURCE"] = str(source_dir)
    base = PlatformSettings.from_env(environ)
    if start is not None:
        base.save(explicit_start=start)
        base = replace(base, start_date=start)
    return base if through is None else base.covering(through)


def cmd_run(args: argparse.Namespace) -> int:
    """Bring the platform up to date through ``--through`` on a source."""
    from assets.orchestration import run_platform

    settings = settings_for(Path(args.home), args.source, args.through, args.start)  # a directory or a URL
    report = run_platform(
        settings,
        args.through,
        warehouses=args.warehouses,
        progress=True,
        evaluate_days=args.evaluate_days,
        late_days=args.late_days,
        retrain_every_days=args.retrain_every,
        launch=args.launch,
    )
    print(report.render())
    return 0 if report.ok else 1


def cmd_demo(args: argparse.Namespace) -> int:
    """Generate the default synthetic source into a home and run the platform through its last day."""
    from assets.orchestration import run_platform
    from demand_platform.synthetic import GeneratorConfig, generate_source

    home = Path(args.home).resolve()
    source_dir = home / "source"
    config = GeneratorConfig(seed=args.seed, bad_rows=args.bad_rows)
    started = time.perf_counter()
    if not source.table_path(source_dir, "transactions"):
        print(f"generating the synthetic source into {source_dir} ...")
        generate_source(source_dir, config, progress=True)
    through = config.start + dt.timedelta(days=config.days - 1)
    settings = settings_for(home, source_dir, through, config.start)
    report = run_platform(
        settings, through, progress=True, evaluate_days=args.evaluate_days, launch=args.launch
    )
    print(report.render())
    print(f"\ndemo finished in {time.perf_counter() - started:.0f} s")
    print(f"Open the UI on this home:  demand-platform ui --home {home}")
    return 0 if report.ok else 1


#: The code location ``demand-platform ui`` loads (the name ``workspace.yaml`` and the CLI's run queue use).
UI_WORKSPACE = """# Written by `demand-platform ui`: the platform's code location, from the installed package.
load_from:
  - python_module:
      module_name: assets.definitions
      location_name: demand_platform
"""


def write_ui_workspace(settings: PlatformSettings) -> Path:
    """Write the workspace file ``demand-platform ui`` starts ``dagster dev`` with, in the Dagster instance.

    It names the installed ``assets.definitions`` module (not a file of a source checkout), so the UI
    works from a regular install as from an editable one.
    """
    path = settings.dagster_home / "workspace.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists() or path.read_text() != UI_WORKSPACE:
        path.write_text(UI_WORKSPACE)
    return path


def cmd_ui(args: argparse.Namespace) -> int:
    """Serve the home's reports at ``settings.charts_url`` and start ``dagster dev`` on the home.

    ``dagster dev`` runs with this interpreter (``python -m dagster``), in the home, on a workspace file
    written into the home's Dagster instance, with the home's settings in its environment. The chart server
    runs in a daemon thread of this process; it stops when ``dagster dev`` ends.
    """
    from assets.chart_server import ChartServer, ChartServerError, bind_address
    from assets.orchestration import prepare_instance

    home = Path(args.home).resolve()
    source_dir = args.source or None  # a directory or a database URL
    settings = settings_for(home, source_dir, args.through)
    try:
        charts = ChartServer(settings.reports_dir, *bind_address(settings.charts_url))
    except ChartServerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    with charts:
        prepare_instance(settings)
        workspace = write_ui_workspace(settings)
        cmd = [sys.executable, "-m", "dagster", "dev", "-w", str(workspace), "-p", str(args.port)]
        print(f"serving {settings.reports_dir} at {settings.charts_url}")
        print("running:", " ".join(cmd), f"(in {settings.home}, DAGSTER_HOME={settings.dagster_home})")
        # dagster dev stops its webserver and daemon on SIGINT, and on SIGTERM only when SIGINT is not
        # ignored (it maps one to the other); a shell's `&` starts this process with SIGINT ignored, which
        # dagster dev would inherit. A handled signal is reset to the default in the child.
        signal.signal(signal.SIGINT, signal.default_int_handler)
        process = subprocess.Popen(cmd, cwd=settings.home, env={**os.environ, **settings.to_env()})
        # A SIGTERM to this process is passed on to dagster dev.
        signal.signal(signal.SIGTERM, lambda *_: process.send_signal(signal.SIGTERM))
        try:
            return process.wait()
        except KeyboardInterrupt:  # dagster dev got the same Ctrl-C: let it shut its processes down
            return process.wait()


def celery_worker_command(
    settings: PlatformSettings, name: str, concurrency: int
) -> tuple[list[str], dict[str, str]]:
    """The command and environment of a Celery worker of the cluster ``settings``.

    What ``dagster-celery worker start`` does, with the platform's settings: the executor's Celery
    configuration (:func:`resources.celery_config`) written as the ``dagster_celery_config`` module that
    ``dagster_celery.app`` imports, and ``celery worker`` on the ``dagster`` queue with this interpreter.
    """
    from resources import celery_config

    if settings.cluster is None:
        raise ValueError(
            f"a worker needs the cluster environment (DEMAND_PLATFORM_ENV=cluster), not {settings.env!r}"
        )
    config = celery_config(settings.cluster)
    config_dir = settings.home / "celery"
    config_dir.mkdir(parents=True, exist_ok=True)
    lines = [f"broker_url = {config['broker']!r}", f"result_backend = {config['backend']!r}"]
    lines += [f"{key} = {value!r}" for key, value in config["config_source"].items()]
    (config_dir / "dagster_celery_config.py").write_text("\n".join(lines) + "\n")
    cmd = [
        *(sys.executable, "-m", "celery", "-A", "dagster_celery.app", "worker"),
        *("--prefetch-multiplier=1", "--loglevel", "INFO", "-Q", "dagster"),
        *("-n", name, "--concurrency", str(concurrency)),
    ]
    pythonpath = os.pathsep.join(filter(None, [str(config_dir), os.environ.get("PYTHONPATH")]))
    return cmd, {**os.environ, **settings.to_env(), "PYTHONPATH": pythonpath}


def cmd_worker(args: argparse.Namespace) -> int:
    """Run a Celery worker of the cluster environment until it is stopped (SIGTERM: a warm shutdown)."""
    settings = settings_for(Path(args.home), args.source)
    try:
        cmd, env = celery_worker_command(settings, args.name, args.concurrency)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print("running:", " ".join(cmd))
    process = subprocess.Popen(cmd, env=env)
    signal.signal(signal.SIGTERM, lambda *_: process.send_signal(signal.SIGTERM))
    try:
        return process.wait()
    except KeyboardInterrupt:
        return process.wait()


def cmd_import_m5(args: argparse.Namespace) -> int:
    """Write a source directory from M5 files."""
    from demand_platform.importers.m5 import import_m5

    print(
        import_m5(args.sales, args.calendar, Path(args.out), prices_csv=args.prices, last_day=args.last_day)
    )
    return 0


def cmd_import_online_retail(args: argparse.Namespace) -> int:
    """Write a source directory from UCI Online Retail (II) order lines."""
    from demand_platform.importers.online_retail import import_online_retail, load_warehouse_map

    mapping = load_warehouse_map(args.warehouse_map) if args.warehouse_map else None
    print(import_online_retail(args.file, Path(args.out), warehouse_map=mapping))
    return 0


def cmd_export_forecasts(args: argparse.Namespace) -> int:
    """Write the forecasts of one origin from a platform home to a parquet or csv file.

    The reconciled forecasts (``reconciled_forecasts``) when the origin has them, else (or with
    ``--per-warehouse``) each warehouse's own ``forecasts``, saying so.
    """

    from demand_platform.store import read_forecasts

    settings = settings_for(Path(args.home), None)
    out = Path(args.out)
    if out.suffix not in (".parquet", ".csv"):
        raise source.SourceError(f"{out}: the output must end in .parquet or .csv")
    table = C.FORECASTS if args.per_warehouse else C.RECONCILED_FORECASTS
    with dbfile.connect(settings.database) as con:  # under the platform lock, like every connection
        frame = read_forecasts(con, args.origin, table)
        if frame.empty and table == C.RECONCILED_FORECASTS:
            table = C.FORECASTS
            frame = read_forecasts(con, args.origin, table)
            if not frame.empty:
                print(
                    f"note: origin {args.origin} is not reconciled across the warehouses yet "
                    f"({C.RECONCILED_FORECASTS}): exporting each warehouse's own {C.FORECASTS}",
                    file=sys.stderr,
                )
    if frame.empty:
        print(
            f"error: no forecasts for origin {args.origin} in {lake.redact(settings.database)}",
            file=sys.stderr,
        )
        return 1
    frame = frame[[*EXPORT_COLUMNS, *[c for c in frame.columns if c not in EXPORT_COLUMNS]]]
    frame[C.ORIGIN_DATE] = frame[C.ORIGIN_DATE].dt.date
    frame[C.TARGET_DATE] = frame[C.TARGET_DATE].dt.date
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix == ".parquet":
        frame.to_parquet(out, index=False)
    else:
        frame.to_csv(out, index=False)
    print(
        f"wrote {len(frame):,} forecast rows ({frame[C.WAREHOUSE_ID].nunique()} warehouses) of {table} to {out}"
    )
    return 0


def cmd_chart(args: argparse.Namespace) -> int:
    """Write the forecast fan chart of one SKU x warehouse (history, D+1..D+30 and its bands)."""
    from demand_platform import store
    from demand_platform.sku_chart import write_sku_chart

    settings = settings_for(Path(args.home), None)
    with dbfile.connect(settings.database) as con:  # under the platform lock, like every connection
        day = args.day or store.latest_forecast_origin(con, args.warehouse)
        if day is None:
            print(
                f"error: no forecasts for warehouse {args.warehouse!r} in {lake.redact(settings.database)}",
                file=sys.stderr,
            )
            return 1
        tables = source.load_source_tables(settings.source)
        default = settings.reports_dir / "sku" / f"{day.isoformat()}_{args.warehouse}_{args.sku}.png"
        out = Path(args.out) if args.out else default
        try:
            path = write_sku_chart(
                con, args.sku, args.warehouse, day, out, tables.products, tables.campaigns, tables.warehouses
            )
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
    print(f"wrote {path}")
    if path.resolve().is_relative_to(settings.reports_dir.resolve()):
        relative = path.resolve().relative_to(settings.reports_dir.resolve()).as_posix()
        print(f"served by `demand-platform ui` at {settings.charts_url}/{relative}")
    return 0


def cmd_backtest(args: argparse.Namespace) -> int:
    """Rolling-origin backtest per tier against seasonal naive and a 28-day moving average."""
    import pandas as pd

    from demand_platform import forecasting
    from demand_platform.store import load_history

    settings = settings_for(Path(args.home), None)
    tables = source.load_source_tables(settings.source)
    origins = [args.last_origin - dt.timedelta(days=args.step * k) for k in reversed(range(args.origins))]
    chosen = args.warehouses or tables.warehouse_ids()
    frames = []
    for wh in chosen:
        # The platform lock is held while reading only, not through the backtest's computation.
        with dbfile.connect(settings.database) as con:
            history = load_history(
                con, [wh], origins[0] - dt.timedelta(days=730), args.last_origin + dt.timedelta(days=30)
            )
        table = forecasting.backtest_warehouse(history, tables, wh, origins)
        frames.append(table.assign(**{C.WAREHOUSE_ID: wh}))
    result = pd.concat(frames, ignore_index=True)
    pooled = result[result[C.ORIGIN_DATE].isna()].drop(columns=[C.ORIGIN_DATE])
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(f"backtest over origins {', '.join(str(o) for o in origins)} (pooled per warehouse):")
        print(pooled.round(4).to_string(index=False))
    return 0


def cmd_contract(_: argparse.Namespace) -> int:
    """Print the source data contract."""
    print(source.describe_contract())
    return 0


def _launch_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--launch",
        choices=["queue", "in-process"],
        default="queue",
        help="queue (default): submit the runs to the instance's run queue, which runs as many at once as "
        "the duckdb pool admits (a running daemon dequeues them, else this command does); in-process: "
        "one after the other in this process",
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``demand-platform``."""
    parser = argparse.ArgumentParser(prog="demand-platform", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    gen = sub.add_parser("generate", help="write a deterministic synthetic source directory")
    gen.add_argument("--out", required=True)
    gen.add_argument("--skus", type=int, default=300)
    gen.add_argument("--warehouses", type=int, default=4)
    gen.add_argument("--start", type=_date, default=dt.date(2023, 1, 1))
    gen.add_argument("--days", type=int, default=730)
    gen.add_argument("--seed", type=int, default=42)
    gen.add_argument("--bad-rows", type=int, default=0, help="append deliberately invalid lines")
    gen.set_defaults(func=cmd_generate)

    run = sub.add_parser("run", help="bring the platform up to date through a day, via Dagster")
    run.add_argument("--source", required=True)
    run.add_argument("--home", required=True)
    run.add_argument("--through", type=_date, required=True)
    run.add_argument("--warehouses", nargs="*", default=None, help="only these warehouses")
    run.add_argument("--start", type=_date, default=None, help="first partition day (default: see README)")
    run.add_argument(
        "--evaluate-days",
        type=int,
        default=0,
        help="train N days before --through and forecast every day since, so the report scores them",
    )
    run.add_argument(
        "--late-days",
        type=int,
        default=35,
        help="days before --through whose source lines are compared with what was ingested (late data)",
    )
    run.add_argument(
        "--retrain-every",
        type=int,
        default=1,
        help="train only when a warehouse's latest model is N or more days old (1: every run)",
    )
    _launch_argument(run)
    run.set_defaults(func=cmd_run)

    demo = sub.add_parser("demo", help="generate the default source and run the platform end to end")
    demo.add_argument("--home", default=str(DEFAULT_DEMO_HOME))
    demo.add_argument("--seed", type=int, default=42)
    demo.add_argument("--bad-rows", type=int, default=25)
    demo.add_argument("--evaluate-days", type=int, default=28, help="days of forecasts the report scores")
    _launch_argument(demo)
    demo.set_defaults(func=cmd_demo)

    ui = sub.add_parser(
        "ui",
        help="open the Dagster UI on a platform home, and serve its reports at DEMAND_PLATFORM_CHARTS_URL",
    )
    ui.add_argument("--home", default=str(DEFAULT_DEMO_HOME))
    ui.add_argument("--source", default=None)
    ui.add_argument("--through", type=_date, default=None)
    ui.add_argument("--port", type=int, default=3000)
    ui.set_defaults(func=cmd_ui)

    worker = sub.add_parser(
        "worker", help="run a Celery worker of the cluster environment (executes the steps of the runs)"
    )
    worker.add_argument("--home", required=True)
    worker.add_argument("--source", default=None)
    worker.add_argument("--name", default=f"demand-platform@{socket.gethostname()}", help="unique per worker")
    worker.add_argument("--concurrency", type=int, default=1, help="steps this worker executes at once")
    worker.set_defaults(func=cmd_worker)

    imp = sub.add_parser("import", help="write a source directory from a public data set")
    imp_sub = imp.add_subparsers(dest="dataset", required=True)
    m5 = imp_sub.add_parser("m5", help="Walmart M5: wide daily sales, calendar, weekly prices")
    m5.add_argument("--sales", required=True)
    m5.add_argument("--calendar", required=True)
    m5.add_argument("--prices", default=None)
    m5.add_argument("--last-day", type=int, default=None, help="keep d_1..d_N only (a forecast origin)")
    m5.add_argument("--out", required=True)
    m5.set_defaults(func=cmd_import_m5)
    retail = imp_sub.add_parser("online-retail", help="UCI Online Retail / Online Retail II order lines")
    retail.add_argument("--file", required=True)
    retail.add_argument("--out", required=True)
    retail.add_argument("--warehouse-map", default=None, help="CSV or JSON: country -> warehouse_id")
    retail.set_defaults(func=cmd_import_online_retail)

    export = sub.add_parser("export", help="export platform outputs to a file")
    export_sub = export.add_subparsers(dest="what", required=True)
    fc = export_sub.add_parser("forecasts", help="the forecasts of one origin")
    fc.add_argument("--home", required=True)
    fc.add_argument("--origin", type=_date, required=True)
    fc.add_argument("--out", required=True, help="FILE.parquet or FILE.csv")
    fc.add_argument(
        "--per-warehouse",
        action="store_true",
        help=f"each warehouse's own {C.FORECASTS}, not the {C.RECONCILED_FORECASTS} (the default)",
    )
    fc.set_defaults(func=cmd_export_forecasts)

    chart = sub.add_parser("chart", help="write the forecast fan chart of one SKU x warehouse")
    chart.add_argument("--home", required=True)
    chart.add_argument("--sku", required=True)
    chart.add_argument("--warehouse", required=True)
    chart.add_argument("--day", type=_date, default=None, help="forecast origin (default: the latest)")
    chart.add_argument("--out", default=None, help="PNG path (default: <home>/reports/sku/DAY_WH_SKU.png)")
    chart.set_defaults(func=cmd_chart)

    bt = sub.add_parser("backtest", help="rolling-origin CV per tier vs seasonal naive and a 28-day average")
    bt.add_argument("--home", required=True)
    bt.add_argument("--last-origin", type=_date, required=True)
    bt.add_argument("--origins", type=int, default=3)
    bt.add_argument("--step", type=int, default=30, help="days between origins")
    bt.add_argument("--warehouses", nargs="*", default=None)
    bt.set_defaults(func=cmd_backtest)

    contract = sub.add_parser("contract", help="print the source data contract")
    contract.set_defaults(func=cmd_contract)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``demand-platform`` console script."""
    args = build_parser().parse_args(argv)
    # Beta/preview notices of the Dagster APIs we chose, and pandas deprecation notes, are for
    # developers (the tests show them); a planner running the CLI sees progress and results.
    warnings.simplefilter("ignore")
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # a bar per model load
    logging.getLogger("alembic").setLevel(logging.WARNING)
    try:
        return int(args.func(args))
    except source.SourceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
