"""Dagster timing: where the runs of a platform home spend their time.

Modes (``--mode``):

* ``runs``: from the run records of a home's Dagster instance (after ``demand-platform run`` or the daily
  schedule): per job the runs, failures, total / median / max wall seconds and the span from the first
  start to the last end; the per-warehouse ``train_warehouse`` seconds ``trained_models`` keeps (the
  domain call alone); the row counts of the platform's tables.
* ``backfill``: the CLI's path for a 2-year raw_sales backfill, one run per warehouse over all its days
  (the shape of a single-run backfill, created as the CLI creates it) recorded in a real instance under a fresh (or ``--home``) home,
  then feature_table and tier_assignments for the last day (or ``--feature-days`` origins per warehouse,
  the shape of a feature backfill run). On ``--source``, or on a source generated first.
* ``pipeline``: the jobs ``demand-platform run`` launches after ingestion (``--jobs features train forecast
  report``), the same way (in-process runs recorded in the home's instance: one run per warehouse for
  features and forecasts, one run over the day's warehouses for training and the report), on a home
  whose raw_sales is ingested through ``--day``; ``--threads`` sets trained_models' LightGBM threads.
* ``ui``: ``dagster-webserver`` on a home (as ``demand-platform ui`` starts it): seconds from its start to
  the code location loaded, the GraphQL of the UI's asset graph, asset pages (partition counts and health
  bar) and partitions pages per pipeline asset (median of ``--repeats``), and launching a backfill of one
  day x every warehouse (cancelled at once).

Each prints its figures and writes them with the peak memory of this process (runs are in-process) to
``--out``.

Usage (from the repository root):
    python -m bench.dagster_timing --mode runs --home /tmp/full/home --out /tmp/full/runs.json
    python -m bench.dagster_timing --mode backfill --source /tmp/synth/src_full --warehouses 3 --out /tmp/backfill.json
    python -m bench.dagster_timing --mode pipeline --home /tmp/full/home --day 2024-12-30 --jobs train \\
        --warehouses 5 --threads 2 --out /tmp/pipeline.json
    python -m bench.dagster_timing --mode ui --home /tmp/full/home --repeats 3 --out /tmp/full/ui.json
"""

import argparse
import datetime as dt
import shutil
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb

from bench.common import command_line, peak_rss_mib, write_json
from demand_platform.settings import HOME_ENV, PlatformSettings

TABLES = ("raw_sales", "feature_table", "tier_assignments", "forecasts", "accuracy_report")


def mode_runs(args: argparse.Namespace) -> dict[str, Any]:
    """Per-job figures from a home's run records, training seconds and table rows."""
    settings = PlatformSettings.from_env({HOME_ENV: str(args.home)})
    instance = dg.DagsterInstance.from_config(str(settings.dagster_home))
    seconds: dict[str, list[float]] = defaultdict(list)
    failed: dict[str, int] = defaultdict(int)
    first: dict[str, float] = {}
    last: dict[str, float] = {}
    for record in instance.get_run_records():
        if record.start_time is None or record.end_time is None:
            continue
        job = record.dagster_run.job_name
        seconds[job].append(record.end_time - record.start_time)
        failed[job] += record.dagster_run.status != dg.DagsterRunStatus.SUCCESS
        first[job] = min(first.get(job, record.start_time), record.start_time)
        last[job] = max(last.get(job, record.end_time), record.end_time)
    jobs = [
        {
            "job": job,
            "runs": len(seconds[job]),
            "failed": failed[job],
            "total_s": sum(seconds[job]),
            "median_s": statistics.median(seconds[job]),
            "max_s": max(seconds[job]),
            "span_s": last[job] - first[job],
        }
        for job in sorted(seconds, key=lambda j: first[j])
    ]
    for row in jobs:
        print(
            f"{row['job']:<20} {row['runs']:>5} runs {row['failed']:>3} failed {row['total_s']:>9.1f} s "
            f"median {row['median_s']:.2f} s max {row['max_s']:.1f} s span {row['span_s']:.1f} s"
        )
    out: dict[str, Any] = {
        "jobs": jobs,
        "wall_s": max(last.values()) - min(first.values()) if jobs else None,
        "rows": {},
    }
    with duckdb.connect(str(settings.duckdb_path), read_only=True) as con:
        present = {
            name for (name,) in con.execute("SELECT table_name FROM information_schema.tables").fetchall()
        }
        if "trained_models" in present:
            rows = con.execute("SELECT train_seconds, promoted FROM trained_models").fetchall()
            train = [r[0] for r in rows if r[0] is not None]
            out["train_warehouse"] = {
                "models": len(rows),
                "total_s": sum(train),
                "median_s": statistics.median(train) if train else None,
                "max_s": max(train) if train else None,
                "promoted": sum(bool(r[1]) for r in rows),
            }
        for name in TABLES:
            if name in present:
                (count,) = con.execute(f"SELECT count(*) FROM {name}").fetchone() or (0,)
                out["rows"][name] = count
    return out


def mode_backfill(args: argparse.Namespace) -> dict[str, Any]:
    """raw_sales one run per warehouse over all its days, then the features of the last day(s)."""
    from assets.definitions import FEATURES_JOB, INGEST_JOB, build_definitions
    from assets.orchestration import (
        PLANNED_PER_RUN_MIN_DAYS,
        QUIET,
        day_boxes,
        missing_ranges,
        one_planned_event_per_run,
        prepare_instance,
    )
    from assets.partitions import range_tags, warehouse_keys
    from demand_platform import source
    from demand_platform.synthetic import GeneratorConfig, generate_source

    work = Path(tempfile.mkdtemp(prefix="bench_backfill_"))
    if args.source:
        src = args.source
    else:
        src = work / "source"
        generate_source(
            src, GeneratorConfig(n_skus=args.skus, n_warehouses=args.n_warehouses, days=args.days)
        )
    first, last = (d.date() for d in source.transactions_date_range(src))
    home = args.home or work / "home"
    settings = PlatformSettings(home=home, source=src, start_date=first, end_date=last)
    instance = prepare_instance(settings)
    defs = build_definitions(settings)
    partitions_def = defs.get_assets_def("raw_sales").partitions_def
    assert isinstance(partitions_def, dg.MultiPartitionsDefinition)
    all_wh = warehouse_keys(partitions_def)
    chosen = all_wh[: args.warehouses] if args.warehouses else all_wh
    days = (last - first).days + 1
    ingest = defs.resolve_job_def(INGEST_JOB)
    per_run: list[float] = []
    rows = 0
    started = time.perf_counter()
    done = set(instance.get_materialized_partitions(dg.AssetKey("raw_sales")))
    for wh, start, end in missing_ranges(done, chosen, first, last):
        t0 = time.perf_counter()
        # As the CLI creates them: a long range with one planned event per run.
        with one_planned_event_per_run((end - start).days + 1 > PLANNED_PER_RUN_MIN_DAYS):
            result = ingest.execute_in_process(
                instance=instance, tags=range_tags(start, end, wh), run_config=QUIET
            )
        per_run.append(time.perf_counter() - t0)
        # One materialization per raw_sales partition (the quarantine's events are not raw_sales'); each
        # carries the run's row count.
        events = [
            e.materialization
            for e in result.get_asset_materialization_events()
            if e.materialization.asset_key == dg.AssetKey("raw_sales")
        ]
        rows += int(events[0].metadata["run_rows"].value) if events else 0  # type: ignore[arg-type]
        print(f"  raw_sales {wh}: {per_run[-1]:.1f} s, {len(events)} partitions", flush=True)
    ingest_s = time.perf_counter() - started
    features = defs.resolve_job_def(FEATURES_JOB)
    if args.feature_days <= 1:
        boxes = day_boxes(last, chosen, all_wh)
    else:
        boxes = [range_tags(last - dt.timedelta(days=args.feature_days - 1), last, wh) for wh in chosen]
    started = time.perf_counter()
    feature_ok = all(
        features.execute_in_process(instance=instance, tags=tags, run_config=QUIET).success for tags in boxes
    )
    feature_s = time.perf_counter() - started
    median = statistics.median(per_run) if per_run else None
    out = {
        "source": src,
        "warehouses": len(chosen),
        "source_warehouses": len(all_wh),
        "days": days,
        "raw_sales_runs_s": per_run,
        "raw_sales_s": ingest_s,
        "raw_sales_rows": rows,
        "raw_sales_median_run_s": median,
        "raw_sales_extrapolated_s": median * len(all_wh) if median is not None else None,
        "feature_days": args.feature_days,
        "features_s": feature_s,
        "features_ok": feature_ok,
    }
    print(
        f"raw_sales: {ingest_s:.1f} s for {len(chosen)} warehouses x {days} days, {rows:,} rows; "
        f"features: {feature_s:.1f} s",
        flush=True,
    )
    if not args.home:
        shutil.rmtree(work, ignore_errors=True)
    return out


def mode_pipeline(args: argparse.Namespace) -> dict[str, Any]:
    """The daily jobs after ingestion, in-process, per job."""
    from assets.definitions import FEATURES_JOB, FORECAST_JOB, REPORT_JOB, TRAIN_JOB, build_definitions
    from assets.orchestration import QUIET, day_boxes, prepare_instance
    from assets.partitions import range_tags, warehouse_keys

    job_names = {"features": FEATURES_JOB, "train": TRAIN_JOB, "forecast": FORECAST_JOB, "report": REPORT_JOB}
    settings = PlatformSettings.from_env({HOME_ENV: str(args.home)})
    instance = prepare_instance(settings)
    defs = build_definitions(settings)
    all_warehouses = warehouse_keys(defs.resolve_job_def(TRAIN_JOB).partitions_def)  # type: ignore[arg-type]
    chosen = all_warehouses[: args.warehouses] if args.warehouses else all_warehouses
    run_config: dict[str, Any] = dict(QUIET)
    if args.threads is not None:
        run_config["ops"] = {"trained_models": {"config": {"num_threads": args.threads}}}
    jobs = []
    for name in args.jobs:
        job_name = job_names[name]
        per_warehouse = job_name in (FEATURES_JOB, FORECAST_JOB)
        boxes = (
            [range_tags(args.day, args.day, wh) for wh in chosen]
            if per_warehouse
            else day_boxes(args.day, chosen, all_warehouses)
        )
        job = defs.resolve_job_def(job_name)
        for _ in range(args.repeats):
            started = time.perf_counter()
            runs, failed = [], 0
            for tags in boxes:
                t0 = time.perf_counter()
                result = job.execute_in_process(
                    instance=instance,
                    tags=tags,
                    raise_on_error=False,
                    run_config=run_config if job_name == TRAIN_JOB else QUIET,
                )
                runs.append(time.perf_counter() - t0)
                failed += not result.success
            wall = time.perf_counter() - started
            jobs.append(
                {
                    "job": name,
                    "runs": len(runs),
                    "failed": failed,
                    "wall_s": wall,
                    "per_warehouse_s": wall / len(chosen),
                    "median_run_s": statistics.median(runs),
                }
            )
            print(f"{name}: {len(runs)} runs, {failed} failed, {wall:.1f} s wall", flush=True)
    return {"day": args.day, "warehouses": len(chosen), "jobs": jobs}


#: GraphQL the UI's pages issue (trimmed to the fields that cost): the asset graph, an asset page's
#: partition health bar and counts, and its partitions page's keys.
UI_QUERIES = {
    "asset graph": "{ assetNodes { id assetKey { path } dependencyKeys { path } } }",
    "asset page: partition stats": (
        "{ assetNodeOrError(assetKey: {path: [ASSET]}) { ... on AssetNode { partitionStats { "
        "numMaterialized numPartitions numFailed numMaterializing } } } }"
    ),
    "asset page: partition health": (
        "{ assetNodeOrError(assetKey: {path: [ASSET]}) { ... on AssetNode { assetPartitionStatuses { "
        "... on MultiPartitionStatuses { ranges { primaryDimStartKey primaryDimEndKey secondaryDim { "
        "... on DefaultPartitionStatuses { materializedPartitions failedPartitions } } } } } } } }"
    ),
    "partitions page: keys": (
        "{ assetNodeOrError(assetKey: {path: [ASSET]}) { ... on AssetNode { partitionKeysByDimension "
        "{ name partitionKeys } } } }"
    ),
}
LOCATION_QUERY = "{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus } } } }"
BACKFILL_MUTATION = (
    "mutation($names: [String!], $assets: [AssetKeyInput!]) { launchPartitionBackfill(backfillParams: "
    "{partitionNames: $names, assetSelection: $assets, fromFailure: false}) { __typename "
    "... on LaunchBackfillSuccess { backfillId } ... on PythonError { message } } }"
)
CANCEL_MUTATION = "mutation($id: String!) { cancelPartitionBackfill(backfillId: $id) { __typename } }"


def _graphql(port: int, query: str, variables: dict[str, Any] | None = None) -> tuple[dict[str, Any], float]:
    """POST a GraphQL query to the webserver; the response and its wall seconds."""
    import json
    import urllib.request

    body = json.dumps({"query": query, "variables": variables or {}}).encode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql", data=body, headers={"Content-Type": "application/json"}
    )
    started = time.perf_counter()
    with urllib.request.urlopen(request, timeout=600) as response:
        payload = json.loads(response.read())
    seconds = time.perf_counter() - started
    if payload.get("errors"):
        raise RuntimeError(f"GraphQL errors: {payload['errors']}")
    return payload["data"], seconds


def mode_ui(args: argparse.Namespace) -> dict[str, Any]:
    """``dagster-webserver`` on a home: code location load, the UI's page queries, a one-day backfill launch.

    The webserver loads the code location as ``demand-platform ui`` does (the workspace file it writes into
    the home's Dagster instance, the home's settings in the environment). Timed: from the process start to the code location ``LOADED``;
    each query of :data:`UI_QUERIES` per pipeline asset ``--repeats`` times (median and max); launching a
    backfill of the last day of the date dimension x every warehouse for raw_sales .. forecasts (the
    mutation the UI's launch dialog sends), cancelled at once so that no daemon runs it later.
    """
    import os
    import signal
    import subprocess

    from assets.operations import NO_TRAIN_ASSETS

    settings = PlatformSettings.from_env({HOME_ENV: str(args.home)})
    from assets.cli import write_ui_workspace

    workspace = write_ui_workspace(settings)
    env = {**os.environ, **settings.to_env()}
    started = time.perf_counter()
    server = subprocess.Popen(
        [str(Path(sys.executable).with_name("dagster-webserver")), "-w", str(workspace)]
        + ["-h", "127.0.0.1", "-p", str(args.port)],
        cwd=settings.home,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        load_s = None
        while time.perf_counter() - started < 600:
            try:
                data, _ = _graphql(args.port, LOCATION_QUERY)
            except OSError:
                time.sleep(0.25)
                continue
            statuses = [e["loadStatus"] for e in data["workspaceOrError"]["locationEntries"]]
            if statuses and all(s == "LOADED" for s in statuses):
                load_s = time.perf_counter() - started
                break
            time.sleep(0.25)
        if load_s is None:
            raise RuntimeError("the code location did not load in 600 s")
        print(f"webserver start -> code location loaded: {load_s:.1f} s", flush=True)
        queries: list[dict[str, Any]] = []
        partitions: dict[str, int] = {}
        assets = [a for a in NO_TRAIN_ASSETS if a != "accuracy_report"] + ["accuracy_report"]
        for name, template in UI_QUERIES.items():
            for asset in assets if "ASSET" in template else [None]:
                query = template.replace("ASSET", f'"{asset}"') if asset else template
                seconds = []
                for _ in range(args.repeats):
                    data, s = _graphql(args.port, query)
                    seconds.append(s)
                if name == "asset page: partition stats" and asset:
                    partitions[asset] = data["assetNodeOrError"]["partitionStats"]["numPartitions"]
                queries.append(
                    {
                        "query": name,
                        "asset": asset,
                        "median_s": statistics.median(seconds),
                        "max_s": max(seconds),
                    }
                )
                print(f"{name} {asset or ''}: median {statistics.median(seconds):.3f} s", flush=True)
        keys, _ = _graphql(args.port, UI_QUERIES["partitions page: keys"].replace("ASSET", '"raw_sales"'))
        dims = {d["name"]: d["partitionKeys"] for d in keys["assetNodeOrError"]["partitionKeysByDimension"]}
        day = dims["date"][-1]
        names = [f"{day}|{wh}" for wh in dims["warehouse"]]
        selection = [{"path": [a]} for a in NO_TRAIN_ASSETS if a != "accuracy_report"]
        data, launch_s = _graphql(args.port, BACKFILL_MUTATION, {"names": names, "assets": selection})
        launched = data["launchPartitionBackfill"]
        if launched["__typename"] != "LaunchBackfillSuccess":
            raise RuntimeError(f"backfill launch failed: {launched}")
        _graphql(args.port, CANCEL_MUTATION, {"id": launched["backfillId"]})
        print(f"backfill of {day} x {len(names)} warehouses launched in {launch_s:.3f} s", flush=True)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=60)
    return {
        "partitions": partitions,
        "code_location_load_s": load_s,
        "queries": queries,
        "backfill": {"day": day, "warehouses": len(names), "launch_s": launch_s},
    }


MODES = {"runs": mode_runs, "backfill": mode_backfill, "pipeline": mode_pipeline, "ui": mode_ui}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--mode", choices=list(MODES), required=True)
    parser.add_argument(
        "--home", type=Path, default=None, help="platform home (runs, pipeline; backfill: reuse)"
    )
    parser.add_argument(
        "--source", type=Path, default=None, help="backfill: existing source (else generated)"
    )
    parser.add_argument("--skus", type=int, default=2000, help="backfill: generated SKUs")
    parser.add_argument("--n-warehouses", type=int, default=4, help="backfill: generated warehouses")
    parser.add_argument("--days", type=int, default=730, help="backfill: generated days")
    parser.add_argument("--warehouses", type=int, default=None, help="only the first N warehouses")
    parser.add_argument("--feature-days", type=int, default=1, help="backfill: origins of the feature runs")
    parser.add_argument("--day", type=dt.date.fromisoformat, default=None, help="pipeline: the origin")
    parser.add_argument(
        "--jobs", nargs="+", choices=["features", "train", "forecast", "report"], default=None
    )
    parser.add_argument(
        "--threads", type=int, default=None, help="pipeline: LightGBM threads of trained_models"
    )
    parser.add_argument(
        "--repeats", type=int, default=1, help="pipeline: runs of each job; ui: of each query"
    )
    parser.add_argument("--port", type=int, default=3399, help="ui: the webserver's port on 127.0.0.1")
    parser.add_argument("--out", type=Path, default=None, help="write the JSON results here")
    args = parser.parse_args(argv)
    if args.mode in ("runs", "pipeline", "ui") and args.home is None:
        parser.error(f"--mode {args.mode} needs --home")
    if args.mode == "pipeline" and args.day is None:
        parser.error("--mode pipeline needs --day")
    args.jobs = args.jobs or ["features", "train", "forecast", "report"]
    if args.home is not None:
        args.home = args.home.resolve()
    return args


def main(argv: list[str] | None = None) -> int:
    """Run one mode, print and write its figures."""
    args = parse_args(argv)
    started = time.perf_counter()
    results = MODES[args.mode](args)
    results = {
        "mode": args.mode,
        **results,
        "command_s": time.perf_counter() - started,
        "peak_rss_mib": peak_rss_mib(),
    }
    print(f"peak RSS of this process: {results['peak_rss_mib']:.0f} MiB")
    write_json(args.out, "dagster_timing", command_line("bench.dagster_timing", argv), vars(args), results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
