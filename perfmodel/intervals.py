"""Prediction intervals for program latency: split-conformal bounds on the log ratio.

``fit_from_store`` predicts every profiled program out of fold (its ops never in the training
set of the model that predicts them). The log ratios ``log(measured / predicted)`` of those
programs are exchangeable with the ratio of a new program drawn from the same sample, so their
order statistics bound it (split conformal prediction, Vovk et al. 2005; Lei et al. 2018):
with ``n`` ratios sorted, the ``floor((n + 1) a / 2)``-th and ``ceil((n + 1) (1 - a / 2))``-th
bound a new one with probability at least ``1 - a`` (``n >= 2 / a - 1``: 19 programs for 90%).

Intervals are *Mondrian* by workload (one set of bounds per profiled workload with enough
programs: errors at batch 1 are not those at batch 8) and pooled over every program for a
workload with too few (or never profiled). What they cover is what the ratios came from:
programs like the profiled sample, on the machine as it was when profiled. Drift since then is
not in them; the validation report measures their coverage on the day it runs.
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Iterable, Mapping

import numpy as np

__all__ = ["LEVEL", "conformal_bounds", "interval_table", "interval_for", "has_bounds"]

LEVEL = 0.90


def conformal_bounds(log_ratios: Iterable[float], level: float = LEVEL) -> tuple[float, float] | None:
    """(lower, upper) bounds of a new log ratio at ``level``, or None with too few ratios."""
    if not 0 < level < 1:
        raise ValueError(f"level={level!r}: must be in (0, 1)")
    r = np.sort(np.asarray(list(log_ratios), float))
    r = r[np.isfinite(r)]
    n, a = len(r), 1.0 - level
    # rounded first: (19 + 1) * 0.95 is 19.000000000000004 in floating point, not 19
    lo = math.floor(round((n + 1) * a / 2, 9))
    hi = math.ceil(round((n + 1) * (1 - a / 2), 9))
    if lo < 1 or hi > n:
        return None
    return float(r[lo - 1]), float(r[hi - 1])


def interval_table(log_ratios: Iterable[float], workloads: Iterable[str],
                   level: float = LEVEL) -> dict:
    """Bounds per workload (where it has enough programs) and pooled, as stored in a model's
    summary: ``{"level", "pooled": [lo, hi] | None, "by_workload": {workload: [lo, hi]},
    "programs": {workload: n}}``."""
    r = list(log_ratios)
    groups: dict[str, list[float]] = defaultdict(list)
    for v, w in zip(r, workloads, strict=True):
        groups[str(w)].append(v)
    pooled = conformal_bounds(r, level)
    by = {w: b for w, vs in sorted(groups.items()) if (b := conformal_bounds(vs, level))}
    return {"level": level, "pooled": None if pooled is None else list(pooled),
            "by_workload": {w: list(b) for w, b in by.items()},
            "programs": {w: len(vs) for w, vs in sorted(groups.items())}}


def has_bounds(table: Mapping | None) -> bool:
    """Whether ``table`` gives any workload an interval (pooled or its own bounds)."""
    return bool(table and (table.get("pooled") or table.get("by_workload")))


def interval_for(table: Mapping | None, workload: str, latency_ms: float) -> tuple[float, float]:
    """The interval (ms) around ``latency_ms`` for ``workload``: that workload's bounds, else
    the pooled ones; (nan, nan) when the model has none (too few programs, or fitted before
    intervals were recorded)."""
    if not table:
        return (math.nan, math.nan)
    b = table.get("by_workload", {}).get(str(workload)) or table.get("pooled")
    if not b:
        return (math.nan, math.nan)
    return (latency_ms * math.exp(b[0]), latency_ms * math.exp(b[1]))
