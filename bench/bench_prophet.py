"""Does Prophet (through sktime's adapter) earn its cost as the statistical partner of the tier-1 ensemble?

The tier-1 ensemble is LightGBM plus a statistical partner. This benchmark compares the two candidate
partners on their own, on the real M5 HOBBIES_2 / CA_3 subset (149 series, ``bench_m5.load_m5``):

* ``sktime.forecasting.fbprophet.Prophet`` (weekly and yearly seasonality, no daily seasonality, Prophet's
  defaults otherwise, forecasts clipped at 0), fitted series by series on the history from its first sale
  (``peers.trimmed``), fit and predict timed per series (wall, and CPU including the cmdstan child
  process);
* the platform's default partner ``demand_platform.models.statistical.StatCombination()`` (Croston SBA, TSB
  and auto-tuned SES, vectorised over the series, NaN before the first sale);
* their 50/50 blend, and the blend ``w * Prophet + (1 - w) * combination`` with ``w`` in [0, 1] minimising
  the squared error over the same series on the previous window (origin - 28, whose actuals are all known
  at the origin: no peeking).

For every origin (default d_1801, 1829, 1857, 1885, 1913, 1941; horizon 28; history d_1 .. d_origin) the
scores are WRMSSE (``demand_platform.metrics.wrmsse``, weights ``m5_weights``: dollar sales over the 28
days before the origin, renormalised within the set) and WMAPE, on two sets: the ``--top`` series by
dollar sales over the 28 days before the origin (a tier-1 stand-in) and all 149 series.

Then, optionally, Prophet on ``--synthetic`` dense synthetic series (``--synthetic-days`` days, Poisson
around a weekly and yearly pattern) with its default ``uncertainty_samples=1000`` and with 0, beside the
combination on ``--synthetic-stat`` of them, and the extrapolation of the seconds per series to 100,000
tier-1 series on 1 and 2 cores.

Prophet is not a dependency of the project: ``pip install prophet`` before running this script.

Usage (from the repository root, single-threaded):
    OMP_NUM_THREADS=1 python bench/bench_prophet.py --data ../shared/data/m5 --top 30 \\
        --origins 1801 1829 1857 1885 1913 1941
"""

import argparse
import logging
import os
import platform
import resource
import statistics
import sys
import time
import warnings
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np
import pandas as pd
from bench_m5 import M5Data, load_m5
from peers import HORIZON, fmt, trimmed

from demand_platform.metrics import m5_weights, wmape, wrmsse
from demand_platform.models.statistical import StatCombination

TIER1_SERIES = 100_000
INFERENCE_BUDGET_S = 30 * 60
TRAINING_BUDGET_S = 20 * 60
PROPHET = "Prophet (sktime)"
COMBINATION = "StatCombination"
BLEND_HALF = "blend 50/50"
BLEND_PREV = "blend, w from previous window"
METHODS = (PROPHET, COMBINATION, BLEND_HALF, BLEND_PREV)


@dataclass
class Timing:
    """Seconds of one Prophet fit + predict."""

    fit: float
    predict: float
    cpu: float  # this process and its children (cmdstan)

    @property
    def wall(self) -> float:
        return self.fit + self.predict


@dataclass
class OriginFit:
    """Forecasts of all series at one origin."""

    origin: int
    prophet: np.ndarray  # [n_series, h]
    combination: np.ndarray  # [n_series, h]
    timings: dict[int, Timing]  # row -> timing, for the series Prophet fitted
    combination_seconds: float
    failed: list[str] = field(default_factory=list)


def cpu_seconds() -> float:
    """CPU seconds of this process plus its waited-for children (cmdstan runs as a child process)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def quiet() -> None:
    """Silence cmdstanpy's and Prophet's per-fit log lines."""
    for name in ("cmdstanpy", "prophet", "prophet.plot"):
        logging.getLogger(name).setLevel(logging.ERROR)


def prophet_one(
    values: np.ndarray, dates: pd.DatetimeIndex, h: int, uncertainty_samples: int = 1000
) -> tuple[np.ndarray, Timing]:
    """Fit sktime's Prophet on one daily series (no NaN) and forecast ``h`` days, clipped at 0."""
    from sktime.forecasting.fbprophet import Prophet

    y = pd.Series(values, index=dates, dtype=np.float64)
    cpu0 = cpu_seconds()
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        forecaster = Prophet(
            weekly_seasonality=True,
            yearly_seasonality=True,
            daily_seasonality=False,
            uncertainty_samples=uncertainty_samples,
        )
        forecaster.set_config(warnings="off")
        forecaster.fit(y)
        t1 = time.perf_counter()
        pred = forecaster.predict(fh=np.arange(1, h + 1))
    t2 = time.perf_counter()
    timing = Timing(fit=t1 - t0, predict=t2 - t1, cpu=cpu_seconds() - cpu0)
    return np.clip(np.asarray(pred, dtype=np.float64), 0.0, None), timing


def fit_origin(data: M5Data, origin: int) -> OriginFit:
    """Prophet series by series and the combination on all series, history d_1 .. d_origin."""
    history = trimmed(data.units[:, :origin])
    dates = data.dates[:origin]
    t0 = time.perf_counter()
    combination = np.clip(StatCombination().forecast(history, HORIZON), 0.0, None)
    combination_seconds = time.perf_counter() - t0
    prophet = np.full_like(combination, np.nan)
    timings: dict[int, Timing] = {}
    failed: list[str] = []
    for i, row in enumerate(history):
        on_sale = ~np.isnan(row)
        if on_sale.sum() < 2:  # Prophet needs two observations; use the combination
            failed.append(f"{data.items[i]}: {int(on_sale.sum())} day(s) of history")
            prophet[i] = combination[i]
            continue
        try:
            prophet[i], timings[i] = prophet_one(row[on_sale], dates[on_sale], HORIZON)
        except Exception as err:  # one failed series must not stop the benchmark
            failed.append(f"{data.items[i]}: {type(err).__name__}: {err}")
            prophet[i] = combination[i]
            continue
    return OriginFit(origin, prophet, combination, timings, combination_seconds, failed)


def blend_weight(actual: np.ndarray, prophet: np.ndarray, combination: np.ndarray) -> float:
    """Weight ``w`` in [0, 1] of Prophet minimising sum (w P + (1 - w) C - A)^2 over the pairs."""
    d = prophet - combination
    r = actual - combination
    ok = ~(np.isnan(d) | np.isnan(r))
    denom = float(np.square(d[ok]).sum())
    return 0.5 if denom == 0 else float(np.clip((d[ok] * r[ok]).sum() / denom, 0.0, 1.0))


def top_series(data: M5Data, origin: int, top: int | None) -> np.ndarray:
    """Rows of the ``top`` series by dollar sales over the 28 days before the origin (all rows if None)."""
    if top is None:
        return np.arange(len(data.items))
    dollars = np.nansum(data.units[:, origin - 28 : origin] * data.prices[:, origin - 28 : origin], axis=1)
    return np.sort(np.argsort(-dollars, kind="stable")[:top])


def score(
    data: M5Data, fits: dict[int, OriginFit], origin: int, rows: np.ndarray
) -> tuple[dict[str, dict[str, float]], float]:
    """WRMSSE and WMAPE of every method at ``origin`` on ``rows``; the weight fitted on the previous window."""
    fit, prev = fits[origin], fits[origin - HORIZON]
    w = blend_weight(data.units[rows, origin - HORIZON : origin], prev.prophet[rows], prev.combination[rows])
    p, c = fit.prophet[rows], fit.combination[rows]
    forecasts = {
        PROPHET: p,
        COMBINATION: c,
        BLEND_HALF: 0.5 * p + 0.5 * c,
        BLEND_PREV: w * p + (1 - w) * c,
    }
    history = data.units[rows, :origin]
    actual = data.units[rows, origin : origin + HORIZON]
    weights = m5_weights(history, data.prices[rows, :origin], last=28)
    scores = {
        name: {"wrmsse": wrmsse(actual, fc, history, weights), "wmape": wmape(actual, fc)}
        for name, fc in forecasts.items()
    }
    return scores, w


def synthetic_dense(n_series: int, n_days: int, rng: np.random.Generator) -> np.ndarray:
    """Dense daily Poisson demand around a level, a weekly profile and a yearly wave ``[n_series, n_days]``."""
    t = np.arange(n_days)
    level = rng.gamma(2.0, 5.0, size=(n_series, 1)) + 1.0
    weekly = 1.0 + rng.uniform(0.1, 0.4, size=(n_series, 1)) * np.sin(
        2 * np.pi * (t[None, :] + rng.integers(0, 7, size=(n_series, 1))) / 7
    )
    yearly = 1.0 + rng.uniform(0.0, 0.3, size=(n_series, 1)) * np.sin(2 * np.pi * t[None, :] / 365.25)
    trend = 1.0 + rng.normal(0.0, 0.2, size=(n_series, 1)) * t[None, :] / n_days
    return rng.poisson(level * weekly * yearly * np.clip(trend, 0.2, None)).astype(np.float64)


def per_series_line(label: str, timings: list[Timing]) -> str:
    wall = [t.wall for t in timings]
    return (
        f"{label}: n={len(timings)}, wall per series median {statistics.median(wall):.3f} s "
        f"(fit {statistics.median([t.fit for t in timings]):.3f} + predict "
        f"{statistics.median([t.predict for t in timings]):.3f}), mean {statistics.fmean(wall):.3f} s, "
        f"max {max(wall):.3f} s, total {sum(wall):.1f} s; CPU incl. cmdstan per series mean "
        f"{statistics.fmean([t.cpu for t in timings]):.3f} s"
    )


def extrapolate(label: str, seconds_per_series: float) -> str:
    one = seconds_per_series * TIER1_SERIES
    two = one / 2
    return (
        f"{label}: {seconds_per_series * 1e3:.3f} ms/series x {TIER1_SERIES:,} = {one / 60:,.1f} min on 1 core, "
        f"{two / 60:,.1f} min on 2 cores (ideal split) = {two / INFERENCE_BUDGET_S:.2f} x the 30-min daily "
        f"inference budget, {two / TRAINING_BUDGET_S:.2f} x the 20-min training budget"
    )


def versions() -> str:
    out = []
    for pkg in ("prophet", "cmdstanpy", "sktime", "numpy", "pandas"):
        try:
            out.append(f"{pkg} {version(pkg)}")
        except PackageNotFoundError:
            out.append(f"{pkg} not installed")
    load = "load average {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())
    return f"Python {platform.python_version()}, {', '.join(out)}; {os.cpu_count()} cores, {load}"


def score_table(data: M5Data, fits: dict[int, OriginFit], origins: list[int], top: int | None) -> list[str]:
    label = f"top {top} series by dollar sales (tier-1 stand-in)" if top else f"all {len(data.items)} series"
    per_origin = {o: score(data, fits, o, top_series(data, o, top)) for o in origins}
    lines = [f"\n## {label}"]
    for metric in ("wrmsse", "wmape"):
        head = ["method", *[f"d_{o}" for o in origins], "mean"]
        lines.append(f"\n{metric.upper()}")
        lines.append("| " + " | ".join(head) + " |")
        lines.append("|" + "---|" * len(head))
        for method in METHODS:
            values = [per_origin[o][0][method][metric] for o in origins]
            cells = [fmt(v) for v in values] + [fmt(float(np.mean(values)))]
            lines.append(f"| {method} | " + " | ".join(cells) + " |")
    weights = ", ".join(f"d_{o}: {per_origin[o][1]:.2f}" for o in origins)
    lines.append(f"\nProphet weight of the fitted blend (from window origin - 28): {weights}")
    return lines


def synthetic_timing(n_prophet: int, n_stat: int, n_days: int) -> tuple[list[str], float, float]:
    """Prophet on ``n_prophet`` dense series (default and 0 uncertainty samples), the combination on ``n_stat``."""
    rng = np.random.default_rng(7)
    y = synthetic_dense(max(n_prophet, n_stat), n_days, rng)
    dates = pd.date_range("2022-01-01", periods=n_days, freq="D")
    default = [prophet_one(y[i], dates, HORIZON)[1] for i in range(n_prophet)]
    no_intervals = [prophet_one(y[i], dates, HORIZON, uncertainty_samples=0)[1] for i in range(n_prophet)]
    t0 = time.perf_counter()
    StatCombination().forecast(y[:n_stat], HORIZON)
    stat_seconds = time.perf_counter() - t0
    lines = [
        f"\n## synthetic dense series, {n_days} days of history",
        per_series_line("Prophet, uncertainty_samples=1000 (default)", default),
        per_series_line("Prophet, uncertainty_samples=0", no_intervals),
        f"StatCombination on {n_stat:,} series: {stat_seconds:.2f} s ({stat_seconds / n_stat * 1e6:.1f} us/series)",
    ]
    return lines, statistics.fmean([t.wall for t in default]), stat_seconds / n_stat


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--data", type=Path, default=Path("../shared/data/m5"), help="the M5 subset directory"
    )
    parser.add_argument(
        "--origins",
        type=int,
        nargs="+",
        default=[1801, 1829, 1857, 1885, 1913, 1941],
        help="forecast origins d_N (each also needs d_N - 28 for the fitted blend weight)",
    )
    parser.add_argument("--top", type=int, default=30, help="size of the tier-1 stand-in set")
    parser.add_argument(
        "--synthetic", type=int, default=20, help="dense synthetic series for Prophet (0: skip)"
    )
    parser.add_argument(
        "--synthetic-stat", type=int, default=20_000, help="synthetic series for the combination"
    )
    parser.add_argument("--synthetic-days", type=int, default=730, help="days of synthetic history")
    parser.add_argument("--out", type=Path, default=None, help="also write the report here")
    args = parser.parse_args(argv)
    command = "python " + " ".join([sys.argv[0], *(argv if argv is not None else sys.argv[1:])])
    quiet()
    started = time.perf_counter()
    data = load_m5(args.data.resolve())
    origins = sorted(set(args.origins))
    for o in origins:
        if o - HORIZON < 28 or o + HORIZON > data.units.shape[1]:
            raise SystemExit(f"origin d_{o}: needs d_{o - HORIZON - 28} .. d_{o + HORIZON} in the data")
    fits: dict[int, OriginFit] = {}
    for o in sorted({*origins, *(o - HORIZON for o in origins)}):
        t0 = time.perf_counter()
        fits[o] = fit_origin(data, o)
        print(
            f"origin d_{o}: Prophet {sum(t.wall for t in fits[o].timings.values()):.1f} s on {len(fits[o].timings)} "
            f"series, combination {fits[o].combination_seconds:.3f} s, "
            f"{len(fits[o].failed)} fallbacks; {time.perf_counter() - t0:.1f} s",
            flush=True,
        )

    lines = [
        "# Prophet (sktime adapter) vs StatCombination as the tier-1 statistical partner",
        f"command: {command}",
        f"{versions()}",
        f"M5 subset: {len(data.items)} series; origins {', '.join(f'd_{o}' for o in origins)}; horizon {HORIZON}",
    ]
    lines += score_table(data, fits, origins, args.top)
    lines += score_table(data, fits, origins, None)

    lines.append("\n## timing (M5 scored origins)")
    timed = [fits[o] for o in origins]
    all_timings = [t for f in timed for t in f.timings.values()]
    lines.append(per_series_line("Prophet, all series", all_timings))
    top_timings = [
        f.timings[i] for f in timed for i in top_series(data, f.origin, args.top).tolist() if i in f.timings
    ]
    lines.append(per_series_line(f"Prophet, top {args.top} series", top_timings))
    stat_total = sum(f.combination_seconds for f in timed)
    n_stat = len(data.items) * len(timed)
    lines.append(
        f"StatCombination: {stat_total:.3f} s for {n_stat} series-fits ({stat_total / n_stat * 1e3:.3f} ms/series)"
    )
    fallbacks = [f"d_{f.origin} {m}" for f in fits.values() for m in f.failed]
    lines.append(
        f"Prophet fallbacks to the combination: {len(fallbacks)}" + "".join(f"\n  {m}" for m in fallbacks)
    )

    prophet_per_series = statistics.fmean([t.wall for t in all_timings])
    synthetic_prophet, synthetic_stat = np.nan, np.nan
    if args.synthetic > 0:
        extra, synthetic_prophet, synthetic_stat = synthetic_timing(
            args.synthetic, args.synthetic_stat, args.synthetic_days
        )
        lines += extra

    lines.append(f"\n## extrapolation to {TIER1_SERIES:,} tier-1 series (fit + predict, every series)")
    lines.append(extrapolate("Prophet, M5 mean", prophet_per_series))
    lines.append(
        extrapolate(f"Prophet, M5 top {args.top} mean", statistics.fmean([t.wall for t in top_timings]))
    )
    if args.synthetic > 0:
        lines.append(extrapolate(f"Prophet, synthetic {args.synthetic_days}-day mean", synthetic_prophet))
        lines.append(extrapolate("StatCombination, synthetic", synthetic_stat))
    lines.append(extrapolate("StatCombination, M5", stat_total / n_stat))
    lines.append(
        f"\nwall {time.perf_counter() - started:.0f} s; end {versions().split('; ')[-1]}"
        " (another job may share the machine: wall times include that contention)"
    )
    text = "\n".join(lines)
    print("\n" + text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
