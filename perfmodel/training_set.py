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
import functools
import json
from collections import defaultdict

import numpy as np

from distill import Workload
from measurements import LatencyRecord, Store
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
    record: dict[str, LatencyRecord]    # the program's profile label, as stored
    ops: dict[str, list[HloOp]]
    X: dict[str, np.ndarray]            # op features
    y: dict[str, np.ndarray]            # log1p(op target, us)

    @functools.cached_property
    def label_us(self) -> dict[str, float]:
        """End-to-end latency (drift-corrected if profiled so)."""
        return {p: r.latency_ms_median * 1e3 for p, r in self.record.items()}

    @functools.cached_property
    def workload(self) -> dict[str, str]:
        """"8x128 float32", or a capture's own description."""
        return {p: workload_key(r.workload) for p, r in self.record.items()}

    @functools.cached_property
    def drift(self) -> dict[str, float]:
        """1.0 unless the profile was drift-corrected."""
        return {p: _drift(r) for p, r in self.record.items()}

    def stack(self, programs, targets: dict | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Features and targets of ``programs``, rows concatenated (``targets``: per-program
        targets other than :attr:`y`, e.g. on another op scale)."""
        programs = list(programs)
        y = self.y if targets is None else targets
        return (np.vstack([self.X[p] for p in programs]),
                np.concatenate([y[p] for p in programs]))


def _drift(rec: LatencyRecord) -> float:
    return float(rec.extra.get("drift_factor", 1.0))


def training_set(store: Store, fingerprint_id: str, spec: HardwareSpec, *,
                 op_target: str = "end_to_end") -> TrainingSet:
    """Every program of ``fingerprint_id`` that has both op timings and a profile label."""
    if op_target not in OP_TARGETS:
        from .latency_model import ModelError
        raise ModelError(f"op_target {op_target!r}: expected one of {', '.join(OP_TARGETS)}")
    timings: dict[str, list] = defaultdict(list)
    for rec in store.op_timings(fingerprint_id):
        timings[rec.program].append(rec)
    record = {lat.extra["program"]: lat for lat in store.latencies(fingerprint_id)
              if lat.tag == PROFILE_TAG and lat.extra.get("program") in timings}
    programs = list(record)
    ops = {p: [HloOp.from_dict(r.features) for r in timings[p]] for p in programs}
    X = {p: feature_matrix(ops[p], spec) for p in programs}

    def target(p):
        t = np.array([r.time_us_median for r in timings[p]])
        label_us = record[p].latency_ms_median * 1e3
        if op_target == "end_to_end" and t.sum() > 0:
            return np.log1p(t * (label_us / t.sum()))    # (the drift factor cancels here)
        return np.log1p(_drift(record[p]) * t)
    return TrainingSet(programs, record, ops, X, {p: target(p) for p in programs})


def workload_key(w) -> str:
    """How intervals name a workload ("8x128 float32"); a record whose workload is not one
    (a program imported from a profiler capture) keeps its own description."""
    try:
        return str(Workload(**w))
    except (TypeError, HwdistillError):
        return json.dumps(dict(w), sort_keys=True)
