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
from measurements import HardwareFingerprint, Store
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

    def factor(self, workload: Workload | str) -> float:
        """Multiply a prediction for ``workload`` by this."""
        return math.exp(self.offsets.get(str(workload), self.pooled))

    def age_h(self, now: float | None = None) -> float:
        return ((now if now is not None else time.time()) - self.at) / 3600.0

    def to_dict(self) -> dict:
        return {"fingerprint_id": self.fingerprint_id, "at": self.at, "offsets": self.offsets,
                "pooled": self.pooled, "anchors": list(self.anchors)}

    @classmethod
    def from_dict(cls, d: dict) -> "Recalibration":
        return cls(d["fingerprint_id"], float(d["at"]),
                   {str(k): float(v) for k, v in d["offsets"].items()}, float(d["pooled"]),
                   tuple(d["anchors"]))

    def describe(self) -> str:
        parts = ", ".join(f"{w} x{math.exp(v):.3f}" for w, v in sorted(self.offsets.items()))
        return (f"recalibrated {time.strftime('%Y-%m-%d %H:%M', time.localtime(self.at))} "
                f"({self.age_h():.1f} h ago) from {len(self.anchors)} anchors: {parts}; "
                f"other workloads x{math.exp(self.pooled):.3f}")


def default_anchors(workloads: Sequence[Workload]) -> list[tuple[str, StudentConfig, Workload]]:
    """Every anchor preset at every workload (3 per workload)."""
    if not workloads:
        raise InputError("recalibration needs at least one workload to anchor, e.g. 1,128")
    return [(name, PRESETS[name], wl) for wl in workloads for name in ANCHOR_PRESETS]


def recalibrate(predictor, fingerprint: HardwareFingerprint,
                anchors: Sequence[tuple[str, StudentConfig, Workload]], *,
                measure: Callable | None = None, budget_s: float = 2.0,
                progress: Callable[[str], None] | None = None) -> tuple["Recalibration", list]:
    """Time ``anchors`` here and compare with ``predictor`` (learned, not recalibrated).
    Returns the recalibration and the anchors' :class:`~perfmodel.measure.Measurement`\\ s."""
    if predictor.model is None:
        raise InputError("recalibration corrects a learned model; this predictor is analytic. "
                         "Fit one first (`hwdistill fit`)")
    if getattr(predictor, "recalibration", None) is not None:
        raise InputError("recalibrate against the model's own predictions: pass a Predictor "
                         "without a recalibration")
    if not anchors:
        raise InputError("recalibration needs at least one anchor program")
    if measure is None:
        from .measure import measure_latency

        def measure(cfg, wl):
            return measure_latency(cfg, wl, budget_s=budget_s)
    rows, ms = [], []
    for name, cfg, wl in anchors:
        p = predictor.predict(cfg, wl).latency_ms
        m = measure(cfg, wl)
        ms.append(m)
        rows.append({"arch": name, "workload": str(wl), "predicted_ms": float(p),
                     "measured_ms": float(m.timing.median_ms)})
        if progress:
            progress(f"{name}@{wl}: predicted {p:.3f} ms, measured {m.timing.median_ms:.3f} ms")
    logs: dict[str, list[float]] = {}
    for r in rows:
        logs.setdefault(r["workload"], []).append(math.log(r["measured_ms"] / r["predicted_ms"]))
    offsets = {w: float(np.median(v)) for w, v in logs.items()}
    pooled = float(np.median([v for vs in logs.values() for v in vs]))
    return Recalibration(fingerprint.id, time.time(), offsets, pooled, tuple(rows)), ms


def save(store: Store, rec: Recalibration, fingerprint: HardwareFingerprint,
         measurements: Sequence = ()) -> str:
    """Store a recalibration (and its anchors' measurements) as one run; returns its id."""
    from .measure import to_record
    store.register_fingerprint(fingerprint)
    run_id = store.start_run(KIND, fingerprint_id=rec.fingerprint_id, args=rec.to_dict())
    store.put_latencies([to_record(m, fingerprint, run_id=run_id, tag=ANCHOR_TAG)
                         for m in measurements])
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
