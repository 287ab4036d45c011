"""Benchmark of the vectorised statistical forecasters against per-series reference implementations.

Synthesises N intermittent daily series of D days (gamma-Poisson, i.e. negative-binomial, demand
thinned by a per-series demand probability, so most days are zero; 10% of the series launched inside
the window with a NaN prefix), then:

* times every kernel of ``demand_platform.models.statistical`` on all N series (median of
  ``--repeats`` runs) and ``select_by_backtest`` over all registered models (one run);
* times the per-series reference on a sample of ``--sample`` series -- sktime's ``Croston`` (fit +
  predict) for ``croston``, statsforecast's model ``.forecast`` for the others -- checks that the
  forecasts agree, and extrapolates the reference time linearly to N series.

Prints a table with the ratios (reference extrapolated to N / vectorised on N) and the peak RSS.

Usage:
    python bench/bench_statistical.py --series 250000 --days 400 --h 30
"""

import argparse
import resource
import statistics
import time
import warnings
from collections.abc import Callable

import numpy as np
import pandas as pd

from demand_platform.models import statistical as st


def synth_intermittent(n_series: int, n_days: int, rng: np.random.Generator) -> np.ndarray:
    """Intermittent gamma-Poisson demand ``[n_series, n_days]`` with late launches as NaN prefixes.

    Args:
        n_series: Number of series.
        n_days: Number of days.
        rng: Random generator.

    Returns:
        Float64 demand matrix.
    """
    y = np.empty((n_series, n_days), dtype=np.float64)
    chunk = 16384
    for lo in range(0, n_series, chunk):
        n = min(chunk, n_series - lo)
        mean_size = rng.gamma(1.0, 3.0, size=(n, 1)) + 0.2  # mean demand on a demand day
        p_demand = rng.beta(0.6, 2.0, size=(n, 1))  # share of days with demand, mostly small
        shape = 1.5  # gamma shape of the Poisson rate -> negative binomial sizes
        sizes = rng.negative_binomial(shape, shape / (shape + mean_size), size=(n, n_days))
        y[lo : lo + n] = sizes * (rng.random((n, n_days)) < p_demand)
    late = np.flatnonzero(rng.random(n_series) < 0.1)
    launch = rng.integers(1, max(n_days - 30, 2), size=late.size)
    y[late] = np.where(np.arange(n_days)[None, :] < launch[:, None], np.nan, y[late])
    return y


def median_time(fn: Callable[[], object], repeats: int) -> float:
    """Median wall time of ``repeats`` calls.

    Args:
        fn: Callable to time.
        repeats: Number of runs.

    Returns:
        Median seconds.
    """
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def reference_models(h: int) -> dict[str, tuple[str, Callable[[np.ndarray], np.ndarray]]]:
    """Per-series reference forecasters (one 1-D series in, ``h`` values out), by kernel name.

    Args:
        h: Horizon.

    Returns:
        Mapping row name (kernel name first) -> ``(label, forecast function)``.
    """
    from sktime.forecasting.croston import Croston as SktimeCroston
    from statsforecast import models as sf

    fh = np.arange(1, h + 1)

    def sktime_croston(x: np.ndarray) -> np.ndarray:
        return SktimeCroston(smoothing=0.1).fit(pd.Series(x)).predict(fh=fh).to_numpy().ravel()

    def sf_model(model: object) -> Callable[[np.ndarray], np.ndarray]:
        return lambda x: model.forecast(y=x, h=h)["mean"]  # type: ignore[attr-defined]

    return {
        "croston": ("sktime Croston", sktime_croston),
        "croston (sf)": ("statsforecast CrostonClassic", sf_model(sf.CrostonClassic())),
        "croston_sba": ("statsforecast CrostonSBA", sf_model(sf.CrostonSBA())),
        "tsb": ("statsforecast TSB", sf_model(sf.TSB(alpha_d=0.1, alpha_p=0.1))),
        "ses": ("statsforecast SES", sf_model(sf.SimpleExponentialSmoothing(alpha=0.1))),
        "auto_ses": ("statsforecast SESOptimized", sf_model(sf.SimpleExponentialSmoothingOptimized())),
        "seasonal_naive": ("statsforecast SeasonalNaive", sf_model(sf.SeasonalNaive(season_length=7))),
        "moving_average": ("statsforecast WindowAverage", sf_model(sf.WindowAverage(window_size=28))),
        "naive": ("statsforecast Naive", sf_model(sf.Naive())),
    }


def main() -> None:
    """Run the benchmark and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, default=250_000, help="number of series N")
    parser.add_argument("--days", type=int, default=400, help="history length D")
    parser.add_argument("--h", type=int, default=30, help="forecast horizon")
    parser.add_argument("--sample", type=int, default=200, help="series timed with the references")
    parser.add_argument("--repeats", type=int, default=3, help="runs per vectorised kernel (median)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-selection", action="store_true", help="skip timing select_by_backtest")
    args = parser.parse_args()
    n, h = args.series, args.h
    warnings.filterwarnings("ignore")

    rng = np.random.default_rng(args.seed)
    t0 = time.perf_counter()
    y = synth_intermittent(n, args.days, rng)
    print(f"synthesised {n:,} x {args.days} in {time.perf_counter() - t0:.1f} s")
    n_valid = (~np.isnan(y)).sum()
    print(
        f"zero share of valid days: {np.nansum(y == 0) / n_valid:.1%}; "
        f"late launches: {np.isnan(y[:, 0]).mean():.1%}; all-zero series: {(np.nansum(y, axis=1) == 0).mean():.1%}"
    )

    kernels: dict[str, Callable[[np.ndarray], np.ndarray]] = {
        "naive": lambda m: st.naive(m, h),
        "seasonal_naive": lambda m: st.seasonal_naive(m, h, season=7),
        "moving_average": lambda m: st.moving_average(m, h, window=28),
        "croston": lambda m: st.croston(m, h, alpha=0.1),
        "croston_sba": lambda m: st.croston_sba(m, h, alpha=0.1),
        "tsb": lambda m: st.tsb(m, h, alpha_d=0.1, alpha_p=0.1),
        "ses": lambda m: st.ses(m, h, alpha=0.1),
        "auto_ses": lambda m: st.auto_ses(m, h),
    }
    ours = {name: median_time(lambda k=kernel: k(y), args.repeats) for name, kernel in kernels.items()}

    sample_rows = rng.choice(n, size=min(args.sample, n), replace=False)
    sample = y[sample_rows]
    series = [row[np.argmax(~np.isnan(row)) :] for row in sample]
    rows = []
    for ref_name, (label, ref_fn) in reference_models(h).items():
        name = ref_name.split(" ")[0]
        t0 = time.perf_counter()
        expected = np.array([ref_fn(x) for x in series])
        ref_s = time.perf_counter() - t0
        got = kernels[name](sample)
        max_diff = float(np.nanmax(np.abs(got - expected)))
        ref_n = ref_s / len(series) * n
        rows.append(
            {
                "kernel": name,
                "vectorised N (s)": ours[name],
                "vec us/series": ours[name] / n * 1e6,
                "reference (per-series loop)": label,
                "ref us/series": ref_s / len(series) * 1e6,
                "ref extrap. N (s)": ref_n,
                "speed-up": ref_n / ours[name],
                "max |diff| on sample": max_diff,
            }
        )
    table = pd.DataFrame(rows)
    print(
        f"\nN={n:,} series, D={args.days} days, h={h}; reference timed on {len(series)} series, extrapolated"
    )
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(
            table.to_string(
                index=False,
                formatters={
                    "vectorised N (s)": "{:.3f}".format,
                    "vec us/series": "{:.2f}".format,
                    "ref us/series": "{:.1f}".format,
                    "ref extrap. N (s)": "{:,.1f}".format,
                    "speed-up": "{:,.0f}x".format,
                    "max |diff| on sample": "{:.1e}".format,
                },
            )
        )
    print("(auto_ses vs SESOptimized: grid search vs golden section, so forecasts differ by design)")

    if not args.no_selection:
        models = list(st.STAT_MODELS.values())
        t0 = time.perf_counter()
        choice, _ = st.select_by_backtest(y, h, models, n_windows=3)
        fc = st.forecast_selected(y, h, models, choice)
        elapsed = time.perf_counter() - t0
        shares = np.bincount(choice, minlength=len(models)) / n
        print(
            f"\nselect_by_backtest ({len(models)} models x 3 windows) + forecast_selected on N: "
            f"{elapsed:.1f} s (1 run), output {fc.shape}"
        )
        print("chosen:", ", ".join(f"{m.name} {s:.1%}" for m, s in zip(models, shares, strict=True)))

    print(f"\npeak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:,.0f} MB")


if __name__ == "__main__":
    main()
