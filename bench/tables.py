"""BENCHMARKS.md tables rendered from the JSON files the entry points write.

A region of the document between ``<!-- bench:NAME -->`` and ``<!-- /bench:NAME -->`` is replaced by the
table of the JSON file given for NAME (``NAME=path.json``); nothing outside the marked regions changes,
and a region without a file keeps its text. The table's shape follows the file's ``benchmark``
(accuracy: method x metric per origin; sweep: setting x origin; speed: the stage's figures;
dagster_timing: per job), and a line under it names the command, the commit and the machine.

Usage (from the repository root):
    python -m bench.tables --doc BENCHMARKS.md accuracy-synthetic=/tmp/g_syn/accuracy.json
    python -m bench.tables accuracy-m5=/tmp/g_m5/accuracy.json     # print the table only
"""

import argparse
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.common import fmt, machine_text

METRIC_LABELS = {
    "wmape": "WMAPE",
    "wrmsse": "WRMSSE",
    "rmsse": "mean RMSSE",
    "bias": "bias",
    "weekly_wmape": "weekly WMAPE",
    "weekly_bias": "weekly bias",
}


def markdown(header: list[str], rows: list[list[str]]) -> str:
    """A markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def accuracy_table(results: dict[str, Any]) -> str:
    """Method x (metric, origin), then the platform's coverage per origin."""
    metrics = results["table_metrics"]
    origins = results["origins"]
    header = ["method"] + [f"{METRIC_LABELS[m]} {o['origin']}" for o in origins for m in metrics]
    rows = [
        [method] + [fmt(o["scores"].get(method, {}).get(m)) for o in origins for m in metrics]
        for method in results["methods"]
    ]
    coverage = "; ".join(
        f"{o['origin']}: p90 {fmt(o['scores']['platform point forecast'].get('coverage_p90'))}, "
        f"p95 {fmt(o['scores']['platform point forecast'].get('coverage_p95'))} ({o['series']} series)"
        for o in origins
    )
    return markdown(header, rows) + f"\n\nPlatform coverage ({results['platform']} path): {coverage}."


def sweep_table(results: dict[str, Any]) -> str:
    """Setting x origin point WRMSSE with the mean, and the best peer per origin."""
    settings = results["settings"]
    origins = [row["origin"] for row in settings[0]["origins"]]
    header = ["setting", "mean WRMSSE", *origins]
    rows = [
        [
            f"`{s['label']}`",
            fmt(s["mean_wrmsse"].get("platform point forecast"), 4),
            *[fmt(row["point_wrmsse"], 4) for row in s["origins"]],
        ]
        for s in settings
    ]
    best = [f"{row['best_peer']} {fmt(row['best_peer_wrmsse'], 4)}" for row in settings[0]["origins"]]
    rows.append(["best peer at that origin", "", *best])
    return markdown(header, rows)


def _flat(value: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """(dotted key, scalar) pairs of a nested dict."""
    if isinstance(value, dict):
        return [pair for k, v in value.items() for pair in _flat(v, f"{prefix}{k}.")]
    return [(prefix.rstrip("."), value)]


def speed_table(results: dict[str, Any]) -> str:
    """The stage's figures (kernel rows for the statistical stage)."""
    if results["stage"] == "statistical":
        rows = [
            [
                k["kernel"],
                fmt(k["vectorised_s"], 2),
                k["reference"],
                fmt(k["reference_extrapolated_s"], 1),
                f"{fmt(k['speed_up'], 0)}x",
                f"{k['max_abs_diff']:.1e}" if k["max_abs_diff"] is not None else "n/a",
            ]
            for k in results["kernels"]
        ]
        table = markdown(
            ["kernel", "vectorised s", "reference", "reference extrapolated s", "speed-up", "max abs diff"],
            rows,
        )
        return table + f"\n\nPeak RSS {fmt(results['peak_rss_mib'], 0)} MiB."
    skip = ("stage", "per_warehouse", "cv_metrics", "config", "seconds", "raw_sales_runs_s")
    rows = [
        [key, fmt(value, 3) if isinstance(value, int | float) and not isinstance(value, bool) else str(value)]
        for name, figure in results.items()
        if name not in skip
        for key, value in _flat(figure, f"{name}.")
    ]
    return markdown(["measure", "figure"], rows)


def dagster_timing_table(results: dict[str, Any]) -> str:
    """Per job (runs, pipeline) or per measure (backfill)."""
    if results["mode"] == "backfill":
        return speed_table({"stage": "backfill", **results})
    jobs = results["jobs"]
    keys = [k for k in jobs[0] if k != "job"] if jobs else []
    rows = [[j["job"], *[fmt(j[k], 2) if isinstance(j[k], float) else str(j[k]) for k in keys]] for j in jobs]
    table = markdown(["job", *keys], rows)
    return table + f"\n\nPeak RSS of the process {fmt(results['peak_rss_mib'], 0)} MiB."


RENDERERS: dict[str, Callable[[dict[str, Any]], str]] = {
    "accuracy": accuracy_table,
    "sweep": sweep_table,
    "speed": speed_table,
    "dagster_timing": dagster_timing_table,
}


def render(document: dict[str, Any]) -> str:
    """The table of one result document, and where it comes from."""
    table = RENDERERS[document["benchmark"]](document["results"])
    commit = (document.get("commit") or "unknown")[:7]
    return (
        f"{table}\n\n`{document['command']}` (commit {commit}, {document['finished']}; "
        f"{machine_text(document['machine'])})"
    )


def replace_regions(text: str, tables: dict[str, str]) -> str:
    """``text`` with each marked region named in ``tables`` replaced by its table.

    Raises:
        ValueError: A name has no marked region, or its region is not closed.
    """
    for name, table in tables.items():
        pattern = re.compile(
            rf"(<!-- bench:{re.escape(name)} -->\n)(.*?)(<!-- /bench:{re.escape(name)} -->)", re.DOTALL
        )
        if not pattern.search(text):
            raise ValueError(f"no region <!-- bench:{name} --> ... <!-- /bench:{name} --> in the document")
        text = pattern.sub(lambda m, t=table: f"{m.group(1)}{t}\n{m.group(3)}", text)
    return text


def main(argv: list[str] | None = None) -> int:
    """Render the given files' tables into the document's regions (or print them)."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "files", nargs="+", help="NAME=path.json: the region NAME gets the table of that file"
    )
    parser.add_argument("--doc", type=Path, default=None, help="the document to rewrite (else print)")
    args = parser.parse_args(argv)
    tables = {}
    for item in args.files:
        name, _, path = item.partition("=")
        if not path:
            parser.error(f"{item}: expected NAME=path.json")
        tables[name] = render(json.loads(Path(path).read_text()))
    if args.doc is None:
        for name, table in tables.items():
            print(f"<!-- bench:{name} -->\n{table}\n<!-- /bench:{name} -->\n")
        return 0
    args.doc.write_text(replace_regions(args.doc.read_text(), tables))
    print(f"{args.doc}: {len(tables)} region(s) rewritten")
    return 0


if __name__ == "__main__":
    sys.exit(main())
