"""What the latency model learns from a profile store: per profiled program, its op features,
its op-time targets and its end-to-end label.

One place builds it, for :func:`perfmodel.latency_model.fit_from_store` and for the studies
that refit parts of the model (``benchmarks/preset_holdout.py`` holds programs out).

``op_target``: "end_to_end" scales each program's traced op times so that they sum to its
end-to-end label; "traced" keeps them as traced, times the program's drift factor (a
drift-corrected profile, :mod:`perfmodel.sweep`, stored its label corrected by that factor).
The targets are log1p of microseconds.
"""

from __future__ import annotations

import dataclasses
import json
from collections import defaultdict

import numpy as np

from distill import Workload
from measurements import Store
from measurements.errors import HwdistillError

from .features import feature_matrix
from .hardware import HardwareSpec
from .hlo import HloOp
from .sweep import PROFILE_TAG

__all__ = ["TrainingSet", "training_set", "OP_TARGETS"]

OP_TARGETS = ("end_to_end", "traced")


@dataclasses.dataclass(frozen=True)
class TrainingSet:
    """Profiled programs in store order; every mapping is keyed by program id."""

    programs: list[str]
    label_us: dict[str, float]      # end-to-end latency (drift-corrected if profiled so)
    workload: dict[str, str]        # "8x128 float32", or a capture's own description
    drift: dict[str, float]         # 1.0 unless the profile was drift-corrected
    arch: dict[str, dict]           # the architecture, as stored
    ops: dict[str, list[HloOp]]
    X: dict[str, np.ndarray]        # op features
    y: dict[str, np.ndarray]        # log1p(op target, us)

    def stack(self, programs) -> tuple[np.ndarray, np.ndarray]:
        """Features and targets of ``programs``, rows concatenated."""
        programs = list(programs)
        return (np.vstack([self.X[p] for p in programs]),
                np.concatenate([self.y[p] for p in programs]))


def training_set(store: Store, fingerprint_id: str, spec: HardwareSpec, *,
                 op_target: str = "end_to_end") -> TrainingSet:
    """Every program of ``fingerprint_id`` that has both op timings and a profile label."""
    if op_target not in OP_TARGETS:
        from .latency_model import ModelError
        raise ModelError(f"op_target {op_target!r}: expected one of {', '.join(OP_TARGETS)}")
    timings: dict[str, list] = defaultdict(list)
    for rec in store.op_timings(fingerprint_id):
        timings[rec.program].append(rec)
    programs, label, workload, drift, arch = [], {}, {}, {}, {}
    for lat in store.latencies(fingerprint_id):
        p = lat.extra.get("program")
        if lat.tag == PROFILE_TAG and p in timings:
            programs.append(p)
            label[p] = lat.latency_ms_median * 1e3
            workload[p] = workload_key(lat.workload)
            drift[p] = float(lat.extra.get("drift_factor", 1.0))
            arch[p] = lat.arch
    ops = {p: [HloOp.from_dict(r.features) for r in timings[p]] for p in programs}
    X = {p: feature_matrix(ops[p], spec) for p in programs}

    def target(p):
        t = np.array([r.time_us_median for r in timings[p]])
        if op_target == "end_to_end" and t.sum() > 0:
            return np.log1p(t * (label[p] / t.sum()))    # (the drift factor cancels here)
        return np.log1p(drift[p] * t)
    return TrainingSet(programs, label, workload, drift, arch, ops, X,
                       {p: target(p) for p in programs})


def workload_key(w) -> str:
    """How intervals name a workload ("8x128 float32"); a record whose workload is not one
    (a program imported from a profiler capture) keeps its own description."""
    try:
        return str(Workload(**w))
    except (TypeError, HwdistillError):
        return json.dumps(dict(w), sort_keys=True)
