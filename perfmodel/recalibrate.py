"""Few-shot recalibration: a handful of anchor measurements correct predictions to the machine as
it is now (HELP's few-shot idea, Lee et al. NeurIPS'21, applied to time rather than to a new
device).

A shared host drifts by tens of percent over minutes to days, and not alike for every workload:
the store's issue 15 measured bert-mini at batch 8 running 7% slower than at profiling while batch
1 programs ran 10-35% faster than predicted. One reference program cannot correct that. Here a
few quick anchor programs per serving workload (presets of different shapes) are timed; the
correction of a workload is the median of its anchors' log(measured / predicted) (*Mondrian*
again, as the intervals: batch 1 is corrected by batch-1 anchors) and a workload without anchors
takes the median over all of them. Medians, so one disturbed anchor does not move a workload.

Anchors timed alone are single raw timings on a host whose rounds of one program agree within
+-10% only about half the time (issue 15's run: bert-mini@64x16 read 44.2 and 52.6 ms an hour
apart), and that noise became the correction: scored against drift-corrected measurements, the
raw-anchor recalibration made the predictor worse (MAPE 0.126 vs 0.084). With a ``reference``
program the anchors are timed run by run beside it (:func:`perfmodel.validate.measure_interleaved`)
and corrected to the reference's stored latency, so a recalibration splits into two factors:
``shape`` offsets per workload at the machine speed of profiling (what the model gets wrong about
a workload, and how that workload drifts *unlike* the reference) and one ``drift``, the
reference's median latency this session over its stored one (1.1: everything runs 10% slower
than when profiled).
:meth:`Recalibration.factor` applies both (a prediction for the machine as it is now);
:meth:`Recalibration.shape_factor` only the first (a prediction at the speed of profiling, which
is what a drift-corrected validation measures).

A recalibration is stored with its session: a ``recalibrate`` run in the store (its anchors as
latency records tagged ``anchor``, the offsets in the run's arguments). Predictions use the
latest one of their fingerprint that is younger than ``max_age_h``; an older one describes a
machine that has moved on since.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from typing import Callable, Sequence

import numpy as np

from distill import PRESETS, StudentConfig, Workload
from measurements import HardwareFingerprint, LatencyRecord, Store
from measurements.errors import InputError

__all__ = ["Recalibration", "ANCHOR_PRESETS", "default_anchors", "recalibrate", "save",
           "latest", "KIND"]

KIND = "recalibrate"
ANCHOR_TAG = "anchor"
# small, medium and bottlenecked shapes; quick to time (each well under a second per call)
ANCHOR_PRESETS = ("bert-tiny", "bert-mini", "mobilebert-tiny")


@dataclasses.dataclass(frozen=True)
class Recalibration:
    fingerprint_id: str
    at: float                           # unix time of the anchor measurements
    offsets: dict[str, float]           # workload -> median log(measured / predicted)
    pooled: float                       # median over every anchor: for other workloads
    anchors: tuple[dict, ...]           # {arch, workload, predicted_ms, measured_ms}
    # with a reference: the offsets are at the machine speed of profiling and ``drift`` is the
    # reference's latency today over its stored one; timed alone, the raw offsets carry both
    # and drift is 1
    reference: str = ""                 # "bert-mini@8x128 float32", "" if timed alone
    drift: float = 1.0
    profiled_speed: bool = False        # offsets relative to the reference's *stored* latency

    def shape_factor(self, workload: Workload | str) -> float:
        """Multiply a prediction for ``workload`` by this for the machine speed of profiling
        (the scale of a drift-corrected validation); without a reference the same as
        :meth:`factor`."""
        return math.exp(self.offsets.get(str(workload), self.pooled))

    def factor(self, workload: Workload | str) -> float:
        """Multiply a prediction for ``workload`` by this for the machine as it is now."""
        return self.shape_factor(workload) * self.drift

    def age_h(self, now: float | None = None) -> float:
        return ((now if now is not None else time.time()) - self.at) / 3600.0

    def to_dict(self) -> dict:
        return {"fingerprint_id": self.fingerprint_id, "at": self.at, "offsets": self.offsets,
                "pooled": self.pooled, "anchors": list(self.anchors),
                "reference": self.reference, "drift": self.drift,
                "profiled_speed": self.profiled_speed}

    @classmethod
    def from_dict(cls, d: dict) -> "Recalibration":
        # recalibrations stored before references were used carry none of the last three
        return cls(d["fingerprint_id"], float(d["at"]),
                   {str(k): float(v) for k, v in d["offsets"].items()}, float(d["pooled"]),
                   tuple(d["anchors"]), str(d.get("reference", "")),
                   float(d.get("drift", 1.0)), bool(d.get("profiled_speed", False)))

    def describe(self) -> str:
        parts = ", ".join(f"{w} x{math.exp(v):.3f}" for w, v in sorted(self.offsets.items()))
        ref = (f"; timed beside {self.reference}, latencies x{self.drift:.3f} vs the speed when "
               "profiled" if self.profiled_speed else
               f"; timed beside {self.reference}" if self.reference else "")
        return (f"recalibrated {time.strftime('%Y-%m-%d %H:%M', time.localtime(self.at))} "
                f"({self.age_h():.1f} h ago) from {len(self.anchors)} anchors: {parts}; "
                f"other workloads x{math.exp(self.pooled):.3f}{ref}")


def default_anchors(workloads: Sequence[Workload]) -> list[tuple[str, StudentConfig, Workload]]:
    """Every anchor preset at every workload (3 per workload)."""
    if not workloads:
        raise InputError("recalibration needs at least one workload to anchor, e.g. 1,128")
    return [(name, PRESETS[name], wl) for wl in workloads for name in ANCHOR_PRESETS]


def recalibrate(predictor, fingerprint: HardwareFingerprint,
                anchors: Sequence[tuple[str, StudentConfig, Workload]], *,
                measure: Callable | None = None, budget_s: float = 2.0,
                reference: tuple[StudentConfig, Workload] | None = None,
                reference_ms: float | None = None, rounds: int = 3,
                progress: Callable[[str], None] | None = None
                ) -> tuple["Recalibration", list[LatencyRecord]]:
    """Time ``anchors`` here and compare with ``predictor`` (learned, not recalibrated).

    Alone (no ``reference``), each anchor is timed once by ``measure`` (default
    :func:`perfmodel.measure.measure_latency`). With a ``reference`` program, the anchors are
    timed in ``rounds`` interleaved rounds beside it and drift-corrected; ``reference_ms`` (its
    latency stored at profiling) puts the offsets at the speed of profiling and gives the
    drift (see the module docstring); without it the anchor is the reference's median this
    session and the drift is 1.

    Returns the recalibration and the anchors' latency records (tag ``anchor``) for
    :func:`save`."""
    if predictor.model is None:
        raise InputError("recalibration corrects a learned model; this predictor is analytic. "
                         "Fit one first (`hwdistill fit`)")
    if getattr(predictor, "recalibration", None) is not None:
        raise InputError("recalibrate against the model's own predictions: pass a Predictor "
                         "without a recalibration")
    if not anchors:
        raise InputError("recalibration needs at least one anchor program")
    if reference is not None and measure is not None:
        raise InputError("recalibrate times anchors beside a reference itself; pass either "
                         "`reference` or `measure`, not both")
    predicted = [float(predictor.predict(cfg, wl).latency_ms) for _, cfg, wl in anchors]
    if reference is None:
        measured, records = _time_alone(anchors, fingerprint, measure, budget_s)
        drift, ref_name = 1.0, ""
    else:
        measured, records, drift = _time_beside(anchors, fingerprint, reference, reference_ms,
                                                rounds, budget_s)
        from .sweep import arch_name
        ref_name = f"{arch_name(reference[0])}@{reference[1]}"
    rows = [{"arch": name, "workload": str(wl), "predicted_ms": p, "measured_ms": m}
            for (name, _, wl), p, m in zip(anchors, predicted, measured)]
    if progress:
        for r in rows:
            progress(f"{r['arch']}@{r['workload']}: predicted {r['predicted_ms']:.3f} ms, "
                     f"measured {r['measured_ms']:.3f} ms")
    logs: dict[str, list[float]] = {}
    for r in rows:
        logs.setdefault(r["workload"], []).append(math.log(r["measured_ms"] / r["predicted_ms"]))
    offsets = {w: float(np.median(v)) for w, v in logs.items()}
    pooled = float(np.median([v for vs in logs.values() for v in vs]))
    rec = Recalibration(fingerprint.id, time.time(), offsets, pooled, tuple(rows), ref_name,
                        drift, reference is not None and reference_ms is not None)
    return rec, records


def _time_alone(anchors, fingerprint, measure, budget_s):
    from .measure import to_record
    if measure is None:
        from .measure import measure_latency

        def measure(cfg, wl):
            return measure_latency(cfg, wl, budget_s=budget_s)
    ms = [measure(cfg, wl) for _, cfg, wl in anchors]
    return ([float(m.timing.median_ms) for m in ms],
            [to_record(m, fingerprint, tag=ANCHOR_TAG) for m in ms])


def _time_beside(anchors, fingerprint, reference, reference_ms, rounds, budget_s):
    from .validate import measure_interleaved
    res = measure_interleaved([(cfg, wl) for _, cfg, wl in anchors], rounds=rounds,
                              budget_s=budget_s, reference=reference, reference_ms=reference_ms)
    records = [LatencyRecord(
        fingerprint.id, cfg.to_dict(), wl.to_dict(), float(m),
        float(np.subtract(*np.percentile(r, [75, 25]))), float(np.percentile(r, 90)), len(r),
        tag=ANCHOR_TAG, extra={"rounds_ms": [float(v) for v in r],
                               "uncorrected_ms": float(raw),
                               "reference_anchor_ms": float(res.reference_ms)})
        for (_, cfg, wl), m, r, raw in zip(anchors, res.latency_ms, res.rounds_ms,
                                           res.raw_latency_ms)]
    drift = (res.session_reference_ms / reference_ms) if reference_ms else 1.0
    return [float(v) for v in res.latency_ms], records, float(drift)


def save(store: Store, rec: Recalibration, fingerprint: HardwareFingerprint,
         records: Sequence[LatencyRecord] = ()) -> str:
    """Store a recalibration (and its anchors' latency records) as one run; returns its id."""
    store.register_fingerprint(fingerprint)
    run_id = store.start_run(KIND, fingerprint_id=rec.fingerprint_id, args=rec.to_dict())
    store.put_latencies([dataclasses.replace(r, run_id=run_id) for r in records])
    store.finish_run(run_id)
    return run_id


def latest(store: Store, fingerprint_id: str, *, max_age_h: float = 12.0,
           now: float | None = None) -> Recalibration | None:
    """The newest finished recalibration of ``fingerprint_id`` younger than ``max_age_h``."""
    best = None
    for r in store.runs():
        if r.get("kind") != KIND or r.get("status") != "done" or \
                r.get("fingerprint_id") != fingerprint_id:
            continue
        try:
            rec = Recalibration.from_dict(json.loads(r["args"]))
        except (KeyError, TypeError, ValueError):
            continue               # a damaged record is skipped, never trusted
        if best is None or rec.at > best.at:
            best = rec
    if best is None or best.age_h(now) > max_age_h:
        return None
    return best
