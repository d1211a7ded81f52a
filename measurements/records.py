"""Records kept in the measurement store: frozen dataclasses with JSON round-trips.

Units are in the field names. Every timing carries its spread, never a bare number.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import numbers
import time
from typing import Any, Mapping
from .errors import InputError

__all__ = ["OpTiming", "LatencyRecord", "Trial", "TRIAL_STATUS_RANK", "canonical_json",
           "content_key"]


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


# Trial statuses move forward only: pending -> running -> done | failed (both terminal).
TRIAL_STATUS_RANK: Mapping[str, int] = {"pending": 0, "running": 1, "done": 2, "failed": 2}


@dataclasses.dataclass(frozen=True)
class Trial:
    """One evaluation of a search: the candidate, why it was proposed, and what it gave.

    ``x`` is the candidate as JSON (a list of numbers or a dict of named variables);
    ``values`` holds objectives and constraints by name (``{"f0": 0.3, "g0": -1.0}``, NaN
    for a missing value); ``provenance`` says where they came from (``{"f0": "measured"}``,
    ``cost_s``, ``attempts``, ``error`` of a failed one). ``x``, ``values`` and ``provenance``
    are kept in their JSON form, so a trial read back from the store equals the one written.
    """

    run_id: str
    index: int                  # 0, 1, 2, ... dense within a run
    x: Any
    source: str                 # why it was proposed: "initial", "acquisition", "import", ...
    round: int = 0              # the search round that proposed it
    status: str = "pending"     # pending -> running -> done | failed; forward only
    values: Mapping[str, float] = dataclasses.field(default_factory=dict)
    provenance: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    fingerprint_id: str = ""
    created_at: float = dataclasses.field(default_factory=time.time)
    updated_at: float = dataclasses.field(default_factory=time.time)

    STATUSES = tuple(TRIAL_STATUS_RANK)

    def __post_init__(self):
        if not isinstance(self.run_id, str) or not self.run_id:
            raise InputError(f"Trial.run_id={self.run_id!r}; expected a non-empty string")
        for name in ("index", "round"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 0:
                raise InputError(f"Trial.{name}={v!r}; expected an integer >= 0 (trials of a "
                                 "run are numbered 0, 1, 2, ...)")
            object.__setattr__(self, name, int(v))
        if not isinstance(self.source, str) or not self.source:
            raise InputError(f"Trial.source={self.source!r}; say why the candidate was "
                             "proposed, e.g. 'initial', 'acquisition' or 'import'")
        if self.status not in self.STATUSES:
            raise InputError(f"Trial.status={self.status!r}; expected one of {self.STATUSES}")
        if not isinstance(self.values, Mapping):
            raise InputError(f"Trial.values={self.values!r}; expected a mapping of names to "
                             "floats, e.g. {'f0': 0.3, 'g0': -1.0}")
        values = {}
        for k, v in self.values.items():
            if (not isinstance(k, str) or isinstance(v, bool) or not isinstance(v, numbers.Real)
                    or math.isinf(v)):
                raise InputError(f"Trial.values[{k!r}]={v!r}; values are finite floats (or NaN "
                                 "for a missing one) keyed by name. A failed evaluation is "
                                 "status='failed' with provenance['error'], not an infinite value")
            values[k] = float(v)
        object.__setattr__(self, "values", values)
        if not isinstance(self.provenance, Mapping):
            raise InputError(f"Trial.provenance={self.provenance!r}; expected a mapping, e.g. "
                             "{'f0': 'measured', 'cost_s': 1.5}")
        for name in ("x", "provenance"):
            try:  # the JSON form is what the store keeps (tuples become lists, ...)
                object.__setattr__(self, name, json.loads(canonical_json(getattr(self, name))))
            except (TypeError, ValueError) as e:
                raise InputError(f"Trial.{name}={getattr(self, name)!r} is not JSON ({e}); use "
                                 "lists, dicts, strings and numbers (e.g. array.tolist())") from e

    @property
    def key(self) -> str:
        return content_key("trial", self.run_id, self.index)

    def can_become(self, status: str) -> bool:
        """Forward moves only; ``running`` -> ``running`` is allowed (a retried attempt)."""
        rank = TRIAL_STATUS_RANK
        return rank[status] > rank[self.status] or self.status == status == "running"


# Fields stored as canonical JSON text (anything else is a plain SQL value).
_JSON_FIELDS = frozenset({"features", "arch", "workload", "extra", "provenance", "x", "values"})


def to_row(rec) -> dict:
    """Flatten a record for SQL: nested values become canonical JSON text."""
    row = {}
    for f in dataclasses.fields(rec):
        v = getattr(rec, f.name)
        row[f.name] = canonical_json(v) if f.name in _JSON_FIELDS else v
    row["key"] = rec.key
    return row


def from_row(cls, row: Mapping[str, Any]):
    """Inverse of :func:`to_row`."""
    kwargs = {}
    for f in dataclasses.fields(cls):
        v = row[f.name]
        if f.name in _JSON_FIELDS:
            v = json.loads(v)
        kwargs[f.name] = v
    return cls(**kwargs)
