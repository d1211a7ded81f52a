"""Prediction intervals calibrated on held-out validation measurements.

A model's own intervals (:mod:`perfmodel.intervals`) come from its training programs predicted
out of fold against their *profile labels*: one timing block per program, on the machine as it
was while profiling. A validation measures differently (rounds interleaved beside a reference,
drift-corrected to it), and at batch 1 far more consistently: issue 15's held-out run of 11-28
was covered 98% at 1x128 by out-of-fold bounds of +-0.24 in log (94% over all workloads, for a
90% interval). What split conformal prediction asks for is a calibration set exchangeable with
what the interval must cover: programs outside the training set, measured the way a user
measures them. The store has them: every held-out validation (``hwdistill validate``,
``benchmarks/latency_predictor.py``) records its measurements as latency records tagged
``validate``.

:func:`calibrate` predicts those programs with the model (no recalibration: a drift-corrected
measurement is on the scale of profiling) and builds the same by-workload table from their
``log(measured / predicted)``; a workload with fewer than 19 such programs keeps its
out-of-fold bounds, and the pooled bounds (for a workload with neither) are the held-out ones.
A benchmark that scores intervals must not calibrate on the programs it tests: ``exclude``.
"""

from __future__ import annotations

import json
import math
import time
from typing import Iterable

import numpy as np

from distill import StudentConfig, Workload
from measurements import LatencyRecord, Store

from .intervals import LEVEL, interval_table
from .sweep import PROFILE_TAG
from .training_set import workload_key

__all__ = ["VALIDATE_TAG", "validation_records", "calibrate", "held_out_table", "program_key"]

VALIDATE_TAG = "validate"


def program_key(arch, workload) -> tuple[str, str]:
    """(architecture, workload) as comparable text, from configs or from store records."""
    a = arch.to_dict() if isinstance(arch, StudentConfig) else dict(arch)
    w = workload.to_dict() if isinstance(workload, Workload) else dict(workload)
    return (json.dumps(StudentConfig.from_dict(a).to_dict(), sort_keys=True), workload_key(w))


def validation_records(store: Store, fingerprint_id: str, *,
                       exclude: Iterable[tuple[str, str]] = ()) -> list[LatencyRecord]:
    """The store's validation measurements of ``fingerprint_id`` whose program was not profiled
    (not a training label) and is not in ``exclude`` (:func:`program_key` of each)."""
    recs = store.latencies(fingerprint_id)
    trained = {program_key(r.arch, r.workload) for r in recs if r.tag == PROFILE_TAG}
    skip = trained | set(exclude)
    return [r for r in recs if r.tag == VALIDATE_TAG
            and program_key(r.arch, r.workload) not in skip]


def calibrate(model, records: Iterable[LatencyRecord], predictor=None, *,
              level: float = LEVEL) -> dict | None:
    """The model's interval table recalibrated on held-out ``records`` (see the module), or
    None when they are fewer than the level needs (19 for 90%). The model is not changed:
    ``model.summary["interval"] = table`` applies it."""
    records = list(records)
    if len(records) < math.ceil(2 / (1 - level) - 1):
        return None
    if predictor is None:
        from .predict import Predictor
        predictor = Predictor("cpu", model)
    pred = np.array([predictor.predict(StudentConfig.from_dict(r.arch),
                                       Workload(**r.workload)).latency_ms for r in records])
    meas = np.array([r.latency_ms_median for r in records])
    dates = [time.strftime("%Y-%m-%d", time.gmtime(r.created_at)) for r in records]
    return held_out_table(model.summary.get("interval"), np.log(meas / pred),
                          [workload_key(r.workload) for r in records],
                          measured=(min(dates), max(dates)), level=level)


def held_out_table(own: dict | None, log_ratios, workloads, *, measured=None,
                   level: float = LEVEL) -> dict | None:
    """An interval table from held-out ``log(measured / predicted)`` by workload, falling back
    to the model's ``own`` (out-of-fold) bounds for a workload with too few; None if they are
    too few even pooled."""
    r = np.asarray(log_ratios, float)
    held = interval_table(r, list(workloads), level)
    if held["pooled"] is None:
        return None
    own = own or {}
    if own.get("source", {}).get("kind") == "held-out":     # already calibrated: start over
        own = own.get("out_of_fold") or {}
    by = {**own.get("by_workload", {}), **held["by_workload"]}
    return {"level": level, "pooled": held["pooled"], "by_workload": by,
            "programs": held["programs"],
            "by_workload_source": {w: "held-out" if w in held["by_workload"] else "out-of-fold"
                                   for w in by},
            "source": {"kind": "held-out", "programs": len(r),
                       "measured": None if measured is None else list(measured),
                       "median_abs_log_error": float(np.median(np.abs(r)))},
            "out_of_fold": own}
