"""Records kept in the measurement store: frozen dataclasses with JSON round-trips.

Units are in the field names. Every timing carries its spread, never a bare number.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from typing import Any, Mapping

__all__ = ["OpTiming", "LatencyRecord", "Evaluation", "canonical_json", "content_key"]


def canonical_json(obj: Any) -> str:
    """JSON with sorted keys and no whitespace: equal content gives equal text."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=_default)


def _default(o):
    if dataclasses.is_dataclass(o):
        return dataclasses.asdict(o)
    if hasattr(o, "item"):  # numpy scalar
        return o.item()
    raise TypeError(f"not JSON serialisable: {type(o).__name__} {o!r}")


def content_key(*parts: Any) -> str:
    """Idempotency key: a hash of the identifying content of a record."""
    return hashlib.sha256(canonical_json(parts).encode()).hexdigest()[:24]


@dataclasses.dataclass(frozen=True)
class OpTiming:
    """Measured time of one executed HLO op of one compiled program."""

    fingerprint_id: str
    program: str            # content hash of the compiled program (module fingerprint)
    op_name: str            # HLO instruction name, e.g. "fusion.12"
    opcode: str             # e.g. "fusion", "dot", "custom-call"
    time_us_median: float
    time_us_iqr: float
    time_us_p90: float
    n_runs: int
    features: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    run_id: str = ""
    tag: str = ""           # distinguishes deliberate repeats of the same measurement
    created_at: float = dataclasses.field(default_factory=time.time)

    @property
    def key(self) -> str:
        return content_key("op", self.fingerprint_id, self.program, self.op_name, self.tag)


@dataclasses.dataclass(frozen=True)
class LatencyRecord:
    """End-to-end latency of one (architecture, workload) on one fingerprint."""

    fingerprint_id: str
    arch: Mapping[str, Any]
    workload: Mapping[str, Any]
    latency_ms_median: float
    latency_ms_iqr: float
    latency_ms_p90: float
    n_runs: int
    compile_s: float = float("nan")
    extra: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    run_id: str = ""
    tag: str = ""
    created_at: float = dataclasses.field(default_factory=time.time)

    @property
    def key(self) -> str:
        return content_key("lat", self.fingerprint_id, self.arch, self.workload, self.tag)


@dataclasses.dataclass(frozen=True)
class Evaluation:
    """One candidate of a search: its objectives once measured, and where they came from."""

    run_id: str
    arch: Mapping[str, Any]
    objectives: Mapping[str, float] = dataclasses.field(default_factory=dict)
    status: str = "pending"  # pending | running | done | failed
    fingerprint_id: str = ""
    provenance: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    created_at: float = dataclasses.field(default_factory=time.time)
    updated_at: float = dataclasses.field(default_factory=time.time)

    STATUSES = ("pending", "running", "done", "failed")

    def __post_init__(self):
        if self.status not in self.STATUSES:
            raise ValueError(f"Evaluation.status={self.status!r}; expected one of {self.STATUSES}")

    @property
    def key(self) -> str:
        return content_key("eval", self.run_id, self.arch)


def to_row(rec) -> dict:
    """Flatten a record for SQL: nested mappings become canonical JSON text."""
    row = {}
    for f in dataclasses.fields(rec):
        v = getattr(rec, f.name)
        row[f.name] = canonical_json(v) if isinstance(v, Mapping) else v
    row["key"] = rec.key
    return row


def from_row(cls, row: Mapping[str, Any]):
    """Inverse of :func:`to_row`."""
    kwargs = {}
    for f in dataclasses.fields(cls):
        v = row[f.name]
        if f.name in ("features", "arch", "workload", "extra", "objectives", "provenance"):
            v = json.loads(v)
        kwargs[f.name] = v
    return cls(**kwargs)
