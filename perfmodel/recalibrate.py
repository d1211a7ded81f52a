"""Few-shot recalibration: a handful of anchor measurements correct predictions to the machine as
it is now (HELP's few-shot idea, Lee et al. NeurIPS'21, applied to time rather than to a new
device).

A shared host drifts by tens of percent over minutes to days, and not alike for every workload:
the store's issue 15 measured bert-mini at batch 8 running 7% slower than at profiling while batch
1 programs ran 10-35% faster than predicted. One reference program cannot correct that. Here a
few quick anchor programs per serving workload (presets of different shapes) are timed, and each
gives an estimate of how far that workload has moved since profiling.

*What an anchor estimates: the machine's change, not the model's error.* An anchor's
log(measured / predicted) is the machine's change *plus* the model's own error on that
architecture, and the second was the larger: on the very profiles they were trained on, the
model (with its op weights) predicts bert-tiny 12% and 10% low (median log error 0.116 / 0.096,
Intel / AMD grid stores), bert-mini 6% and 3% low, mobilebert-tiny 0.7% and 3.6% low, so
per-workload medians of log(measured / predicted) moved every workload by the anchors' model
error (re-scored on the committed runs, ``python benchmarks/recalibration_policy.py``: within
+-10% 0.861 -> 0.779 on the Intel run with clean anchors, 0.576 with the anchors that run
timed). So an anchor profiled at its
workload (``profiled``: the store's profile records) is compared with its own profiled latency,
log(measured / profiled), free of the model; at a workload it was not profiled at, its
log(measured / predicted) less the model's error on that architecture (its median
log(profiled / predicted) over the workloads it was profiled at).

*Shrunk, because anchors are few and noisy.* Anchors of one workload scatter by 5-6% even when
timed like the held-out programs (log sd 0.060 and 0.054 on the two hosts' runs), and timed
within a few minutes they can be far off: the Intel run's 18 anchors read 0.78-1.36x the same
programs' latency in that run's interleaved rounds (median 6% off), when another tenant's
burst outlasts an anchor's rounds. A workload's offset is its anchors' median shrunk toward
the grand median by how much the workloads' medians differ beyond that noise, and the grand
median shrunk toward 0 by its own standard error (empirical Bayes, :func:`shrink_offsets`):
with no real shift the correction stays near 1, with a shift several times the anchors' noise
it is applied nearly whole. A workload without anchors takes the shrunk grand median
(``pooled``). One anchor architecture's estimates at several workloads share its
profile's error, so the grand median's standard error is at least the anchor architectures'
disagreement over their number. Re-scored (``python benchmarks/recalibration_policy.py
...``), that moved only the case where the correction was spurious: from the Intel run's clean
preset measurements x0.972 instead of x0.966, within +-10% 83.0% instead of 81.8% (86.1%
without recalibration); the other two anchor sets' scores unchanged.

Anchors timed alone are single raw timings on a host whose rounds of one program agree within
+-10% only about half the time (issue 15's run: bert-mini@64x16 read 44.2 and 52.6 ms an hour
apart), and that noise became the correction: scored against drift-corrected measurements, the
raw-anchor recalibration made the predictor worse (MAPE 0.126 vs 0.084). With a ``reference``
program the anchors are timed run by run beside it (:func:`perfmodel.validate.measure_interleaved`)
and corrected to the reference's stored latency, so a recalibration splits into two factors:
``shape`` offsets per workload at the machine speed of profiling (how that workload drifts
*unlike* the reference) and one ``drift``, the reference's median latency this session over its
stored one (1.1: everything runs 10% slower than when profiled).
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
           "latest", "KIND", "estimate", "shrink_offsets", "NOISE_FLOOR"]

KIND = "recalibrate"
ANCHOR_TAG = "anchor"
# small, medium and bottlenecked shapes; quick to time (each well under a second per call)
ANCHOR_PRESETS = ("bert-tiny", "bert-mini", "mobilebert-tiny")
#: the least scatter assumed of one anchor's estimate (log scale), below what clean anchors of
#: one workload scattered by on the two hosts' committed runs (0.060 and 0.054,
#: benchmarks/recalibration_policy.py); it bites when no workload has two anchors to tell
NOISE_FLOOR = 0.05


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
    # how the offsets were formed: "shrunk" (machine change, empirical Bayes; with the
    # anchors' scatter ``noise`` and the workloads' spread beyond it, ``spread``) or "median"
    # (log(measured / predicted) medians, stored before shrinkage)
    method: str = "median"
    noise: float | None = None
    spread: float | None = None

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
                "profiled_speed": self.profiled_speed, "method": self.method,
                "noise": self.noise, "spread": self.spread}

    @classmethod
    def from_dict(cls, d: dict) -> "Recalibration":
        # recalibrations stored before references were used carry none of the last six, those
        # stored before shrinkage none of the last three
        return cls(d["fingerprint_id"], float(d["at"]),
                   {str(k): float(v) for k, v in d["offsets"].items()}, float(d["pooled"]),
                   tuple(d["anchors"]), str(d.get("reference", "")),
                   float(d.get("drift", 1.0)), bool(d.get("profiled_speed", False)),
                   str(d.get("method", "median")), _opt_float(d.get("noise")),
                   _opt_float(d.get("spread")))

    def describe(self) -> str:
        parts = ", ".join(f"{w} x{math.exp(v):.3f}" for w, v in sorted(self.offsets.items()))
        ref = (f"; timed beside {self.reference}, latencies x{self.drift:.3f} vs the speed when "
               "profiled" if self.profiled_speed else
               f"; timed beside {self.reference}" if self.reference else "")
        how = (f" (shrunk: anchors scatter {self.noise:.3f}, workloads differ by "
               f"{self.spread:.3f} beyond it)" if self.method == "shrunk" else "")
        return (f"recalibrated {time.strftime('%Y-%m-%d %H:%M', time.localtime(self.at))} "
                f"({self.age_h():.1f} h ago) from {len(self.anchors)} anchors{how}: {parts}; "
                f"other workloads x{math.exp(self.pooled):.3f}{ref}")


def _opt_float(v) -> float | None:
    return None if v is None else float(v)


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
                profiled: Sequence[LatencyRecord] = (),
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
    _check_predictor(predictor)
    if not anchors:
        raise InputError("recalibration needs at least one anchor program")
    if reference is not None and measure is not None:
        raise InputError("recalibrate times anchors beside a reference itself; pass either "
                         "`reference` or `measure`, not both")
    if reference is None:
        measured, records = _time_alone(anchors, fingerprint, measure, budget_s)
        drift, ref_name = 1.0, ""
    else:
        measured, records, drift = _time_beside(anchors, fingerprint, reference, reference_ms,
                                                rounds, budget_s)
        from .sweep import arch_name
        ref_name = f"{arch_name(reference[0])}@{reference[1]}"
    rec = estimate(predictor, fingerprint.id, anchors, measured, profiled=profiled,
                   reference=ref_name, drift=drift,
                   profiled_speed=reference is not None and reference_ms is not None)
    if progress:
        for r in rec.anchors:
            progress(f"{r['arch']}@{r['workload']}: predicted {r['predicted_ms']:.3f} ms, "
                     f"measured {r['measured_ms']:.3f} ms")
    return rec, records


def estimate(predictor, fingerprint_id: str,
             anchors: Sequence[tuple[str, StudentConfig, Workload]], measured: Sequence[float],
             *, profiled: Sequence[LatencyRecord] = (), reference: str = "", drift: float = 1.0,
             profiled_speed: bool = False, at: float | None = None) -> "Recalibration":
    """The recalibration that anchors' measured latencies (ms, in ``anchors`` order) give:
    what :func:`recalibrate` does once it has timed them (here for measurements taken
    otherwise, e.g. re-scoring a committed run, ``benchmarks/recalibration_policy.py``)."""
    _check_predictor(predictor)
    if not anchors or len(measured) != len(anchors):
        raise InputError(f"{len(measured)} measured latencies for {len(anchors)} anchors: "
                         "need one per anchor, and at least one")
    predicted = [float(predictor.predict(cfg, wl).latency_ms) for _, cfg, wl in anchors]
    model_error = _model_errors(predictor, anchors, predicted, profiled)
    rows = [{"arch": name, "workload": str(wl), "predicted_ms": p, "measured_ms": float(m),
             "model_error": e, "estimate": math.log(m / p) - e}
            for (name, _, wl), p, m, e in zip(anchors, predicted, measured, model_error)]
    estimates: dict[str, list[float]] = {}
    names: dict[str, list[str]] = {}
    for r in rows:
        estimates.setdefault(r["workload"], []).append(r["estimate"])
        names.setdefault(r["workload"], []).append(r["arch"])
    offsets, pooled, noise, spread = shrink_offsets(estimates, groups=names)
    return Recalibration(fingerprint_id, time.time() if at is None else at, offsets, pooled,
                         tuple(rows), reference, drift, profiled_speed, "shrunk", noise, spread)


def _check_predictor(predictor) -> None:
    if predictor.model is None:
        raise InputError("recalibration corrects a learned model; this predictor is analytic. "
                         "Fit one first (`hwdistill fit`)")
    if getattr(predictor, "recalibration", None) is not None:
        raise InputError("recalibrate against the model's own predictions: pass a Predictor "
                         "without a recalibration")


def _model_errors(predictor, anchors, predicted, profiled) -> list[float]:
    """Per anchor, the model's log(profiled / predicted): at its own workload if profiled
    there, else the median over the workloads its architecture was profiled at, else 0."""
    from .sweep import PROFILE_TAG

    def key(d: dict) -> str:
        return json.dumps(dict(d), sort_keys=True)
    archs = {key(cfg.to_dict()): cfg for _, cfg, _ in anchors}
    own_pred = {(key(cfg.to_dict()), key(wl.to_dict())): p
                for (_, cfg, wl), p in zip(anchors, predicted)}
    labels: dict[tuple[str, str], list[float]] = {}
    for r in profiled:
        if r.tag == PROFILE_TAG and key(r.arch) in archs:
            labels.setdefault((key(r.arch), key(r.workload)), []).append(r.latency_ms_median)
    errors: dict[tuple[str, str], float] = {}
    for (a, w), ms in labels.items():
        p = own_pred.get((a, w))
        if p is None:
            p = float(predictor.predict(archs[a], Workload(**json.loads(w))).latency_ms)
        errors[(a, w)] = math.log(float(np.median(ms)) / p)
    out = []
    for _, cfg, wl in anchors:
        a, w = key(cfg.to_dict()), key(wl.to_dict())
        others = [e for (x, _), e in errors.items() if x == a]
        out.append(errors[(a, w)] if (a, w) in errors else
                   float(np.median(others)) if others else 0.0)
    return out


def shrink_offsets(estimates: dict[str, Sequence[float]], *, floor: float = NOISE_FLOOR,
                   groups: dict[str, Sequence[str]] | None = None
                   ) -> tuple[dict[str, float], float, float, float]:
    """Per-workload offsets from the anchors' estimates (log scale), empirically Bayes-shrunk:
    ``(offsets, pooled, noise, spread)``.

    ``noise``: one estimate's standard deviation about its workload's mean, pooled over the
    workloads with >= 2 anchors (at least ``floor``). Deliberately not a robust scale: anchors
    that disagree (one of them hit by another tenant's burst) make the whole correction less
    trusted, which on the committed runs was the better bet (a MAD scale kept more of the
    bursty Intel anchors' correction: within +-10% 0.812 instead of 0.836, none 0.830, with
    the model as fitted before its CV folds held out architectures).

    The grand median g is shrunk toward 0 by its standard error se
    (``pooled = g * max(0, 1 - se**2 / g**2)``); a workload's median m_w toward g by
    ``spread**2 / (spread**2 + noise**2 / n_w)``, with ``spread**2`` the variance of the
    workloads' medians beyond what their noise explains (0 with one workload).

    ``groups``: each estimate's anchor architecture (same layout as ``estimates``). One
    architecture's estimates at several workloads share its profile's error, so they are not
    independent: se**2 is then at least the variance of the architectures' mean estimates over
    their number (with >= 2 of them)."""
    if not estimates or not all(len(v) for v in estimates.values()):
        raise InputError("recalibration needs at least one anchor estimate per workload")
    est = {w: np.asarray(v, float) for w, v in estimates.items()}
    dof = sum(len(v) - 1 for v in est.values())
    ss = sum(float(np.sum((v - v.mean()) ** 2)) for v in est.values())
    noise = max(math.sqrt(ss / dof) if dof else 0.0, floor)
    med = {w: float(np.median(v)) for w, v in est.items()}
    every = np.concatenate(list(est.values()))
    g = float(np.median(every))
    se2 = noise ** 2 / len(every)
    if groups is not None:
        by: dict[str, list[float]] = {}
        for w, v in est.items():
            if len(groups[w]) != len(v):
                raise InputError(f"workload {w}: {len(groups[w])} anchor names for {len(v)} "
                                 "estimates")
            for name, e in zip(groups[w], v):
                by.setdefault(name, []).append(float(e))
        if len(by) >= 2:
            means = [float(np.mean(v)) for v in by.values()]
            se2 = max(se2, float(np.var(means, ddof=1)) / len(means))
    pooled = g * (1.0 - se2 / g ** 2) if g * g > se2 else 0.0
    m = np.array(list(med.values()))
    var_between = float(np.var(m, ddof=1)) if len(m) > 1 else 0.0
    spread2 = max(0.0, var_between - float(np.mean([noise ** 2 / len(v) for v in est.values()])))
    offsets = {w: pooled + (med[w] - g) * (spread2 / (spread2 + noise ** 2 / len(est[w]))
                                           if spread2 else 0.0)
               for w in est}
    return offsets, pooled, noise, math.sqrt(spread2)


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
