"""Ops that grow with depth: the correction to the linear layer extrapolation.

The predictor extrapolates an L-layer program from its 2- and 3-layer programs, taking every
further layer to add the ops the third added (:mod:`perfmodel.predict`). With NoNorm that is not
what XLA:CPU compiles: NoNorm is affine, and each of a layer's residual fusions re-computes the
residual chain of every sublayer before it, so layer k's fusions are larger than layer k-1's
(measured at 1x32, hidden 192, 4 FFNs: +12 fused instructions, +4 operands, +24,576 flops and
+26,880 bytes per fusion per layer). An L-layer program's flops and bytes grow as L**2, and the
linear extrapolation under-counted mobilebert-tiny@8x128's bytes by 23% and its predicted op
time by 8% against the 24-layer program the op model was trained on.

The growth is an arithmetic progression: the ops the k-th layer adds (``D_k``, a signed op
multiset: the k-layer program's ops minus the (k-1)-layer one's) pair one to one with the
(k-1)-th's, each field a constant step further. So the 4-layer program fixes the step: pairing
``D_3`` with ``D_4`` op by op, ``D_k`` for k > 4 is synthesised field by field (counts of
fused opcodes and operand shapes too), and

    T(L) = T_linear(L) + sum over k = 4..L of (D_k - D_3)

exactly, when the growth is linear (the tests compare with compiled 5- to 8-layer programs).
:func:`layer_growth` returns None when ``D_3`` and ``D_4`` do not pair (another kind of
growth): the predictor then compiles the L-layer program instead.
"""

from __future__ import annotations

import dataclasses
import math
from collections import Counter

from .hlo import HloOp

__all__ = ["LayerGrowth", "layer_growth", "grows_with_depth", "op_key"]


def grows_with_depth(normalization: str) -> bool:
    """Whether a signature's per-layer ops may grow with depth (so its 4-layer program is
    compiled too): NoNorm, measured; LayerNorm programs' 4-layer op lists equal the linear
    extrapolation (the tests check both)."""
    return normalization == "nonorm"


def op_key(o: HloOp) -> tuple:
    """What an op's predicted quantities depend on (not its name or metadata)."""
    return (o.opcode, o.fusion_kind, o.fused_opcodes, o.result, o.operands, o.flops,
            o.transcendentals, o.bytes_accessed, o.dot_dims, o.custom_kind)


def _signed_diff(more: list[HloOp], less: list[HloOp]) -> dict[tuple, tuple[int, HloOp]]:
    """``more - less`` as a signed multiset: key -> (count, an op with that key)."""
    c = Counter(map(op_key, more))
    c.subtract(Counter(map(op_key, less)))
    ops = {op_key(o): o for o in (*less, *more)}
    return {k: (n, ops[k]) for k, n in c.items() if n}


def _units(d: dict[tuple, tuple[int, HloOp]], keys) -> list[tuple[int, HloOp]]:
    """One (sign, op) per unit of count, in a canonical order for pairing."""
    out = [(1 if d[k][0] > 0 else -1, d[k][1]) for k in keys for _ in range(abs(d[k][0]))]
    return sorted(out, key=lambda u: (u[0], _shape_of(u[1]), u[1].flops, u[1].bytes_accessed,
                                      len(u[1].fused_opcodes), len(u[1].operands)))


def _shape_of(o: HloOp) -> tuple:
    """What a growing op keeps from layer to layer."""
    return (o.opcode, o.fusion_kind, o.custom_kind, o.dot_dims,
            tuple((s.dtype, s.dims, s.layout, s.tiling) for s in o.result))


def _step(c3: Counter, c4: Counter, j: int):
    """Counts ``j`` steps past ``c4``; None if one would go negative."""
    out = Counter()
    for k in set(c3) | set(c4):
        n = c4[k] + j * (c4[k] - c3[k])
        if n < 0:
            return None
        if n:
            out[k] = n
    return out


@dataclasses.dataclass(frozen=True)
class LayerGrowth:
    """The ops of ``D_3`` and ``D_4`` that differ, paired: (sign, op in D_3, op in D_4)."""

    pairs: tuple[tuple[int, HloOp, HloOp], ...]

    def layer_ops(self, k: int) -> list[tuple[int, HloOp]]:
        """The changing ops the k-th layer adds (k >= 4), signed."""
        if k < 4:
            raise ValueError(f"layer {k}: growth is defined from the 4th layer on")
        return [(s, _extrapolate(o3, o4, k - 4)) for s, o3, o4 in self.pairs]

    def correction(self, num_layers: int) -> tuple[list[HloOp], list[HloOp]] | None:
        """``sum over k = 4..L of (D_k - D_3)`` as (ops to add, ops to subtract); None when
        the progression leaves what an op can be that far (a count falling below zero)."""
        plus, minus = [], []
        for k in range(4, num_layers + 1):
            for (s, o), (_, o3, _) in zip(self.layer_ops(k), self.pairs):
                if o is None:
                    return None
                (plus if s > 0 else minus).append(o)
                (minus if s > 0 else plus).append(o3)
        return plus, minus


def _extrapolate(o3: HloOp, o4: HloOp, j: int) -> HloOp | None:
    """The op ``j`` layers past ``o4`` on the progression ``o3``, ``o4`` (None: a count or a
    cost would fall below zero)."""
    if j == 0:
        return o4

    def num(a: float, b: float) -> float:
        return b + j * (b - a) if not (math.isnan(a) or math.isnan(b)) else math.nan
    fused = _step(Counter(o3.fused_opcodes), Counter(o4.fused_opcodes), j)
    operands = _step(Counter(o3.operands), Counter(o4.operands), j)
    flops, nbytes = num(o3.flops, o4.flops), num(o3.bytes_accessed, o4.bytes_accessed)
    if fused is None or operands is None or min(flops, nbytes) < 0:
        return None
    return dataclasses.replace(
        o4, name=f"{o4.name}+{j}layers",
        fused_opcodes=tuple(sorted(fused.elements())),
        operands=tuple(sorted(operands.elements(), key=lambda s: (s.dtype, s.dims, s.layout))),
        flops=flops, transcendentals=max(num(o3.transcendentals, o4.transcendentals), 0.0),
        bytes_accessed=nbytes,
        estimated_cycles=num(o3.estimated_cycles, o4.estimated_cycles))


def layer_growth(p2: list[HloOp], p3: list[HloOp], p4: list[HloOp]) -> LayerGrowth | None:
    """How a signature's per-layer ops grow, from its 2-, 3- and 4-layer programs' op lists:
    no pairs when every layer adds the same ops; None when the changes do not pair one to one
    as a progression (same sign, opcode, fusion kind, result and dot shape, and a next layer
    that is an op)."""
    d3, d4 = _signed_diff(p3, p2), _signed_diff(p4, p3)
    same = {k for k in d3 if d4.get(k, (0,))[0] == d3[k][0]}
    u3 = _units(d3, [k for k in d3 if k not in same])
    u4 = _units(d4, [k for k in d4 if k not in same])
    if len(u3) != len(u4):
        return None
    pairs = []
    for (s3, o3), (s4, o4) in zip(u3, u4):
        if s3 != s4 or _shape_of(o3) != _shape_of(o4):
            return None
        if _extrapolate(o3, o4, 1) is None:
            return None
        pairs.append((s3, o3, o4))
    return LayerGrowth(tuple(pairs))
