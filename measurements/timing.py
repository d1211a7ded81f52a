"""Robust timing of jitted (or any) callables.

Warm-up and compilation are excluded from the timed runs and reported apart. Runs repeat until
the distribution-free confidence interval of the median is narrower than ``target_rel_ci`` (or a
time budget or run cap is reached). Tukey-fence outliers are rejected and counted. Every result
carries its spread (IQR, p10/p90, CI of the median), never a bare number.
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Any, Callable, Sequence

import numpy as np
from scipy import stats
from . import hostlock
from .errors import InputError

__all__ = ["TimingResult", "time_callable", "time_paired", "median_ci"]


@dataclasses.dataclass(frozen=True)
class TimingResult:
    """Timing statistics of repeated runs, in seconds."""

    median_s: float
    iqr_s: float
    p10_s: float
    p90_s: float
    ci_low_s: float          # confidence interval of the median
    ci_high_s: float
    n_runs: int              # runs kept
    n_rejected: int          # outliers dropped (Tukey fences)
    converged: bool          # CI target met (not stopped by budget or run cap)
    compile_s: float = math.nan
    first_call_s: float = math.nan
    samples_s: tuple[float, ...] = ()

    @property
    def rel_ci(self) -> float:
        """Half-width of the median's CI relative to the median."""
        return (self.ci_high_s - self.ci_low_s) / 2 / self.median_s if self.median_s else math.inf

    @property
    def median_ms(self) -> float:
        return self.median_s * 1e3

    @property
    def iqr_ms(self) -> float:
        return self.iqr_s * 1e3

    @property
    def p90_ms(self) -> float:
        return self.p90_s * 1e3

    def __str__(self) -> str:
        return (f"{self.median_s * 1e3:.3f} ms (IQR {self.iqr_s * 1e3:.3f}, p90 "
                f"{self.p90_s * 1e3:.3f}, CI±{100 * self.rel_ci:.1f}%, n={self.n_runs}"
                f"{', ' + str(self.n_rejected) + ' outliers' if self.n_rejected else ''})")


def median_ci(sorted_x: np.ndarray, confidence: float = 0.95) -> tuple[float, float]:
    """Distribution-free CI of the median from order statistics (binomial ranks)."""
    n = len(sorted_x)
    if n < 3:
        return float(sorted_x[0]), float(sorted_x[-1])
    alpha = 1 - confidence
    lo = int(stats.binom.ppf(alpha / 2, n, 0.5))
    hi = int(stats.binom.isf(alpha / 2, n, 0.5))
    lo, hi = max(lo - 1, 0), min(hi, n - 1)
    return float(sorted_x[lo]), float(sorted_x[hi])


def _summarise(samples: list[float], confidence: float, tukey_k: float):
    x = np.sort(np.asarray(samples, dtype=np.float64))
    q1, q3 = np.percentile(x, [25, 75])
    iqr = q3 - q1
    keep = x[(x >= q1 - tukey_k * iqr) & (x <= q3 + tukey_k * iqr)] if len(x) >= 8 else x
    q1, med, q3, p10, p90 = np.percentile(keep, [25, 50, 75, 10, 90])
    lo, hi = median_ci(keep, confidence)
    return keep, float(med), float(q3 - q1), float(p10), float(p90), lo, hi, len(x) - len(keep)


def _block(out: Any) -> Any:
    try:
        import jax
    except ImportError:  # timing plain Python callables needs no jax
        return out
    return jax.block_until_ready(out)


def time_callable(fn: Callable, *args, warmup: int = 2, min_runs: int = 7,
                  max_runs: int = 500, target_rel_ci: float = 0.02, budget_s: float = 10.0,
                  confidence: float = 0.95, tukey_k: float = 3.0,
                  clock: Callable[[], float] = time.perf_counter) -> TimingResult:
    """Time ``fn(*args)`` robustly.

    If ``fn`` is jitted (has ``.lower``), it is compiled ahead of the timed runs and the compile
    time is reported as ``compile_s``; the compiled executable is what gets timed. Outputs are
    waited for with ``jax.block_until_ready``. The first call after compilation is reported as
    ``first_call_s`` and never counted.
    """
    if warmup < 0 or min_runs < 3 or max_runs < min_runs:
        raise InputError(f"need warmup >= 0 and 3 <= min_runs <= max_runs; got warmup={warmup}, "
                         f"min_runs={min_runs}, max_runs={max_runs}")
    compile_s = math.nan
    if hasattr(fn, "lower"):
        with hostlock.work():    # a timing elsewhere on this host waits for the compile
            t0 = clock()
            fn = fn.lower(*args).compile()
            compile_s = clock() - t0
    with hostlock.timing():      # other hwdistill jobs on this host pause meanwhile
        t0 = clock()
        _block(fn(*args))
        first_call_s = clock() - t0
        for _ in range(warmup):
            _block(fn(*args))

        samples: list[float] = []
        start = clock()
        converged = False
        while len(samples) < max_runs:
            t0 = clock()
            _block(fn(*args))
            samples.append(clock() - t0)
            if len(samples) >= min_runs:
                keep, med, *_rest, lo, hi, _ = _summarise(samples, confidence, tukey_k)
                if med > 0 and (hi - lo) / 2 / med <= target_rel_ci:
                    converged = True
                    break
                if clock() - start > budget_s:
                    break
    keep, med, iqr, p10, p90, lo, hi, rejected = _summarise(samples, confidence, tukey_k)
    return TimingResult(median_s=med, iqr_s=iqr, p10_s=p10, p90_s=p90, ci_low_s=lo,
                        ci_high_s=hi, n_runs=len(keep), n_rejected=rejected,
                        converged=converged, compile_s=compile_s, first_call_s=first_call_s,
                        samples_s=tuple(float(s) for s in samples))


def time_paired(fn: Callable, args: Sequence[Any], ref_fn: Callable, ref_args: Sequence[Any],
                *, budget_s: float = 1.0, min_runs: int = 5, max_runs: int = 500,
                warmup: int = 2, clock: Callable[[], float] = time.perf_counter
                ) -> tuple[np.ndarray, np.ndarray]:
    """Time ``fn`` and a reference ``ref_fn`` alternately, run by run.

    On a shared machine the speed drifts over seconds to minutes (the same program measured a
    minute apart differed by up to 35% here), and the drift moves both programs alike. Timed
    back to back, the ratio of their medians is steadier than either: this is the basis of
    drift-corrected latencies (``perfmodel.validate.measure_interleaved(reference=...)``).
    Returns (program samples, reference samples), in seconds, of equal length.
    """
    if min_runs < 3 or max_runs < min_runs or budget_s < 0:
        raise InputError(f"need 3 <= min_runs <= max_runs and budget_s >= 0; got min_runs="
                         f"{min_runs}, max_runs={max_runs}, budget_s={budget_s}")
    with hostlock.timing():      # other hwdistill jobs on this host pause meanwhile
        for _ in range(warmup):
            _block(ref_fn(*ref_args))
            _block(fn(*args))
        prog, ref = [], []
        start = clock()
        while len(prog) < min_runs or (clock() - start < budget_s and len(prog) < max_runs):
            t0 = clock()
            _block(ref_fn(*ref_args))
            t1 = clock()
            _block(fn(*args))
            t2 = clock()
            ref.append(t1 - t0)
            prog.append(t2 - t1)
    return np.asarray(prog), np.asarray(ref)
