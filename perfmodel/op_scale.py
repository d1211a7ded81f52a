"""The scale on which the op model learns an op's time.

``log1p``: ``log(1 + t_us)``. A tree model cannot extrapolate: an op larger than any it was
trained on gets the time of the largest it saw. bert-base (768 wide, never profiled) read 1.5-1.8x
its predicted latency at batch 8-16 in issue 15's goal run, and FFNs of 1024-2048 units 1.2x.

``roofline`` (the default): ``log((t_us + c) / (r_us + c))`` with ``r_us`` the op's roofline
time on the model's hardware spec and ``c`` = :data:`ROOFLINE_FLOOR_US`: the model learns how far
above its roofline an op runs, so a larger op's prediction grows with its roofline instead of
flattening; the floor keeps small, dispatch-bound ops (whose roofline time is ~0) additive
rather than a ratio of two tiny numbers. On this machine's grid store (516 programs, 6
workloads; ``python benchmarks/op_scale.py``, results/op_scale.json), leaving each workload out
in turn and, separately, the 15% largest architectures, its MAPE was below log1p's on all 7
splits (largest architectures 0.106 -> 0.062, 8x128 0.083 -> 0.059, 1x32 0.219 -> 0.182), and
with floors of 30 and 300 us on 7 and 6 of them: the floor is not a fine-tuned constant.
"""

from __future__ import annotations

import numpy as np

from .hardware import HardwareSpec
from .hlo import HloOp

__all__ = ["OP_SCALES", "ROOFLINE_FLOOR_US", "roofline_us", "to_target", "from_target"]

OP_SCALES = ("roofline", "log1p")
ROOFLINE_FLOOR_US = 100.0


def roofline_us(ops: list[HloOp], spec: HardwareSpec) -> np.ndarray:
    """Each op's roofline time on ``spec``, in microseconds."""
    return np.array([spec.roofline_s(o.flops, o.bytes_accessed) * 1e6 for o in ops], float)


def to_target(op_us: np.ndarray, roof_us: np.ndarray, scale: str, *,
              floor_us: float = ROOFLINE_FLOOR_US) -> np.ndarray:
    """Op times (us) -> the model's regression target (``floor_us``: the roofline scale's
    floor, for studies of it; a model is fitted and read with the default)."""
    _check(scale)
    op_us = np.asarray(op_us, float)
    if scale == "log1p":
        return np.log1p(op_us)
    return np.log(op_us + floor_us) - np.log(np.asarray(roof_us) + floor_us)


def from_target(y: np.ndarray, roof_us: np.ndarray, scale: str, *,
                floor_us: float = ROOFLINE_FLOOR_US) -> np.ndarray:
    """The model's output -> op times (us), never negative."""
    _check(scale)
    y = np.asarray(y, float)
    if scale == "log1p":
        return np.maximum(np.expm1(y), 0.0)
    return np.maximum(np.exp(y + np.log(np.asarray(roof_us) + floor_us)) - floor_us, 0.0)


def _check(scale: str) -> None:
    if scale not in OP_SCALES:
        from .latency_model import ModelError
        raise ModelError(f"op scale {scale!r}: expected one of {', '.join(OP_SCALES)}")
