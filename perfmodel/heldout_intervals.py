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
measurement is on the scale of profiling) and builds a by-workload table from their
``log(measured / predicted)`` (:func:`held_out_table`: normalised conformal, every workload's
ratios pooled on a common scale); a workload with fewer than ``MIN_PER_WORKLOAD`` such
programs keeps its out-of-fold bounds, and the pooled bounds (for a workload with neither) are
the held-out ones.
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

from .intervals import LEVEL, conformal_bounds
from .sweep import PROFILE_TAG
from .training_set import workload_key

__all__ = ["VALIDATE_TAG", "validation_record", "validation_records", "calibrate",
           "held_out_table", "program_identity"]

VALIDATE_TAG = "validate"
MIN_PER_WORKLOAD = 10      # ratios a workload needs for its own centre and scale


def program_identity(arch, workload) -> tuple[str, str]:
    """(architecture, workload) as comparable text, from configs or from store records."""
    a = arch.to_dict() if isinstance(arch, StudentConfig) else dict(arch)
    w = workload.to_dict() if isinstance(workload, Workload) else dict(workload)
    return (json.dumps(StudentConfig.from_dict(a).to_dict(), sort_keys=True), workload_key(w))


def validation_record(fingerprint_id: str, cfg: StudentConfig, wl: Workload, latency_ms: float,
                      rounds_ms, run_id: str, created_at: float | None = None,
                      **extra) -> LatencyRecord:
    """One validation measurement as a store record: its median (drift-corrected where it was),
    the spread of its rounds, when it was measured (default: now), and ``extra`` (e.g. the
    uncorrected latency, its source)."""
    r = np.asarray(rounds_ms, float)
    return LatencyRecord(fingerprint_id, cfg.to_dict(), wl.to_dict(), float(latency_ms),
                         float(np.subtract(*np.percentile(r, [75, 25]))),
                         float(np.percentile(r, 90)), len(r), run_id=run_id, tag=VALIDATE_TAG,
                         extra={"rounds_ms": r.tolist(), **extra},
                         created_at=time.time() if created_at is None else float(created_at))


def validation_records(store: Store, fingerprint_id: str, *,
                       exclude: Iterable[tuple[str, str]] = ()) -> list[LatencyRecord]:
    """The store's validation measurements of ``fingerprint_id`` whose program was not profiled
    (not a training label) and is not in ``exclude`` (:func:`program_identity` of each)."""
    recs = store.latencies(fingerprint_id)
    trained = {program_identity(r.arch, r.workload) for r in recs if r.tag == PROFILE_TAG}
    skip = trained | set(exclude)
    return [r for r in recs if r.tag == VALIDATE_TAG
            and program_identity(r.arch, r.workload) not in skip]


def calibrate(model, records: Iterable[LatencyRecord], predictor=None, *,
              level: float = LEVEL, progress=None) -> dict | None:
    """The model's interval table recalibrated on held-out ``records`` (see the module), or
    None when they are fewer than the level needs (19 for 90%). The model is not changed:
    ``model.summary["interval"] = table`` applies it. ``progress`` wraps the records while
    they are predicted (e.g. ``tqdm``: a program at a new workload compiles, seconds each)."""
    records = list(records)
    if len(records) < math.ceil(2 / (1 - level) - 1):
        return None
    if predictor is None:
        from .predict import Predictor
        predictor = Predictor("cpu", model)
    pred = np.array([predictor.predict(StudentConfig.from_dict(r.arch),
                                       Workload(**r.workload)).latency_ms
                     for r in (progress or iter)(records)])
    meas = np.array([r.latency_ms_median for r in records])
    dates = [time.strftime("%Y-%m-%d", time.gmtime(r.created_at)) for r in records]
    return held_out_table(model.summary.get("interval"), np.log(meas / pred),
                          [workload_key(r.workload) for r in records],
                          measured=(min(dates), max(dates)), level=level)


def held_out_table(own: dict | None, log_ratios, workloads, *, measured=None,
                   level: float = LEVEL) -> dict | None:
    """An interval table from held-out ``log(measured / predicted)``, or None if too few.

    Mondrian bounds from a few dozen programs per workload are conservative by construction
    (the order statistics of 58 ratios cover 93% on average, not 90%), so the workloads are
    pooled on a common scale instead (normalised conformal): each workload with at least
    ``MIN_PER_WORKLOAD`` ratios is centred on its median and scaled by its median absolute
    deviation, the bounds are the conformal order statistics of every normalised ratio
    together, and each workload's interval is those bounds on its own centre and scale. A
    workload with fewer keeps the model's ``own`` (out-of-fold) bounds; one with neither gets
    the raw pooled bounds."""
    r = np.asarray(log_ratios, float)
    wl = np.asarray([str(w) for w in workloads])
    groups = {w: r[wl == w] for w in dict.fromkeys(wl.tolist())}
    loc = {}
    for w, v in groups.items():
        if len(v) >= MIN_PER_WORKLOAD:
            c = float(np.median(v))
            s = float(np.median(np.abs(v - c)))
            if s > 0:
                loc[w] = (c, s)
    z = np.concatenate([(groups[w] - c) / s for w, (c, s) in loc.items()] or [np.zeros(0)])
    zb, pooled = conformal_bounds(z, level), conformal_bounds(r, level)
    if zb is None or pooled is None:
        return None
    own = own or {}
    if own.get("source", {}).get("kind") == "held-out":     # already calibrated: start over
        own = own.get("out_of_fold") or {}
    held = {w: [c + zb[0] * s, c + zb[1] * s] for w, (c, s) in loc.items()}
    by = {**own.get("by_workload", {}), **held}
    return {"level": level, "pooled": list(pooled), "by_workload": by,
            "programs": {w: len(v) for w, v in groups.items()},
            "by_workload_source": {w: "held-out" if w in held else "out-of-fold" for w in by},
            "normalised": {"bounds": list(zb),
                           "centre_scale": {w: list(cs) for w, cs in loc.items()}},
            "source": {"kind": "held-out", "programs": len(r),
                       "measured": None if measured is None else list(measured),
                       "median_abs_log_error": float(np.median(np.abs(r)))},
            "out_of_fold": own}
