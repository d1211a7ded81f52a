"""Op features for the learned latency model: what an op computes (fused opcode classes, dot
dimensions), how much (flops, bytes, elements) and roofline times on the target's spec.
The schema is versioned; a model refuses features of another schema."""

from __future__ import annotations

import math

import numpy as np

from .hardware import HardwareSpec
from .hlo import ELEMENTWISE, TRANSCENDENTAL, HloOp

__all__ = ["FEATURE_SCHEMA", "FEATURE_NAMES", "op_features", "feature_matrix", "op_kind"]

FEATURE_SCHEMA = 1
_CLASSES = {
    "dot": {"dot", "convolution"}, "reduce": {"reduce", "reduce-window"},
    "transcendental": TRANSCENDENTAL, "elementwise": ELEMENTWISE,
    "broadcast": {"broadcast"}, "layout": {"transpose", "copy", "reshape", "bitcast"},
    "gather": {"gather", "scatter", "dynamic-slice", "dynamic-update-slice"},
    "slice": {"slice", "concatenate", "pad"}, "iota": {"iota"},
}
_OPCODES = ("fusion", "custom-call", "copy", "copy-start", "copy-done", "slice-start",
            "slice-done", "convert", "broadcast", "reshape", "transpose", "dot", "reduce")
_KINDS = ("kLoop", "kInput", "kOutput", "kCustom")

FEATURE_NAMES: tuple[str, ...] = (
    "log_flops", "log_transcendentals", "log_bytes", "log_result_bytes", "log_operand_bytes",
    "log_result_elements", "n_operands", "result_rank", "log_last_dim", "last_dim_mod_8",
    "log_dot_batch", "log_dot_m", "log_dot_n", "log_dot_k", "log_n_fused",
    *(f"n_{c}" for c in _CLASSES), *(f"opcode_{o}" for o in _OPCODES), "opcode_other",
    *(f"kind_{k}" for k in _KINDS), "custom_ynn", "dtype_bytes",
    "log_roofline_compute_us", "log_roofline_memory_us", "log_roofline_us", "intensity",
)


def _l(x: float) -> float:
    return math.log1p(max(float(x), 0.0))


def op_features(op: HloOp, spec: HardwareSpec) -> list[float]:
    r = op.result[0] if op.result else None
    counts = {c: sum(o in ops for o in op.fused_opcodes) for c, ops in _CLASSES.items()}
    b, m, n, k = op.dot_dims
    compute_us = op.flops / spec.peak_flops_per_s * 1e6
    memory_us = op.bytes_accessed / spec.hbm_bytes_per_s * 1e6
    from .hlo import DTYPE_BYTES
    f = [
        _l(op.flops), _l(op.transcendentals), _l(op.bytes_accessed), _l(op.result_bytes),
        _l(op.operand_bytes), _l(r.elements if r else 0), len(op.operands),
        len(r.dims) if r else 0, _l(r.dims[-1] if r and r.dims else 1),
        float((r.dims[-1] % 8 == 0) if r and r.dims else 1), _l(b), _l(m), _l(n), _l(k),
        _l(len(op.fused_opcodes)), *(float(counts[c]) for c in _CLASSES),
        *(float(op.opcode == o) for o in _OPCODES), float(op.opcode not in _OPCODES),
        *(float(op.fusion_kind == k_) for k_ in _KINDS), float("ynn" in op.custom_kind),
        float(DTYPE_BYTES.get(r.dtype, 4) if r else 4),
        _l(compute_us), _l(memory_us), _l(max(compute_us, memory_us)),
        op.flops / max(op.bytes_accessed, 1.0),
    ]
    return f


def feature_matrix(ops: list[HloOp], spec: HardwareSpec) -> np.ndarray:
    if not ops:
        return np.zeros((0, len(FEATURE_NAMES)), np.float32)
    return np.asarray([op_features(o, spec) for o in ops], dtype=np.float32)


# the class that names a fusion: its most telling fused opcode class, first match in this order
_KIND_ORDER = ("dot", "reduce", "gather", "transcendental", "elementwise", "broadcast", "slice",
               "layout", "iota")


def op_kind(op: HloOp) -> str:
    """A coarse kind, for reporting what a model was trained on and which ops of a program it
    never saw: the opcode, and for a fusion the class of what it fuses (``fusion:dot`` for any
    fusion with a dot or convolution, then reduce, gather, ...; ``fusion:other``)."""
    if op.opcode != "fusion":
        return op.opcode
    fused = set(op.fused_opcodes)
    for c in _KIND_ORDER:
        if fused & _CLASSES[c]:
            return f"fusion:{c}"
    return "fusion:other"
