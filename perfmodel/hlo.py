"""Executed ops of an optimised HLO module, parsed from ``compiled.as_text()``.

Pure text parsing (no device): each top-level instruction of the entry computation that runs
as a kernel becomes an :class:`HloOp` with its opcode, fusion kind, the opcodes fused inside,
result/operand shapes, dtypes, layouts and TPU tiling, flops and bytes (counted the way XLA's
``HloCostAnalysis`` counts them, so totals can be checked against ``cost_analysis()``), and on
TPU the compiler's own ``estimated_cycles``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from collections import Counter
from typing import Iterable
from measurements.errors import HwdistillError

__all__ = ["HloOp", "Shape", "HloParseError", "parse_hlo", "executed_ops", "instruction_costs",
           "DTYPE_BYTES"]

DTYPE_BYTES = {"pred": 1, "s4": 0.5, "u4": 0.5, "s8": 1, "u8": 1, "s16": 2, "u16": 2, "s32": 4,
               "u32": 4, "s64": 8, "u64": 8, "f16": 2, "bf16": 2, "f32": 4, "f64": 8,
               "f8e4m3fn": 1, "f8e5m2": 1, "c64": 8, "c128": 16, "token": 0}
# ops that produce no kernel at run time (aliasing, metadata, tuples)
NOT_EXECUTED = {"parameter", "constant", "bitcast", "tuple", "get-tuple-element", "after-all",
                "partition-id", "replica-id", "opt-barrier"}
# HloCostAnalysis counts these as transcendentals, not flops
TRANSCENDENTAL = {"exponential", "exponential-minus-one", "log", "log-plus-one", "tanh", "rsqrt",
                  "sqrt", "cbrt", "power", "logistic", "sine", "cosine", "tan", "atan2", "erf"}
ELEMENTWISE = {"add", "subtract", "multiply", "divide", "maximum", "minimum", "compare",
               "select", "and", "or", "xor", "not", "negate", "abs", "sign", "floor", "ceil",
               "round-nearest-even", "round-nearest-afz", "clamp", "remainder", "convert",
               "shift-left", "shift-right-logical", "shift-right-arithmetic", "is-finite",
               "real", "imag", "atan2", "stochastic-convert", "popcnt", "clz"}


class HloParseError(HwdistillError, ValueError):
    """The HLO text could not be parsed."""


@dataclasses.dataclass(frozen=True)
class Shape:
    dtype: str
    dims: tuple[int, ...]
    layout: str = ""       # minor-to-major, e.g. "1,0"
    tiling: str = ""       # TPU tiling/memory space, e.g. "T(8,128)S(1)"

    @property
    def elements(self) -> int:
        return math.prod(self.dims)

    @property
    def bytes(self) -> float:
        return self.elements * DTYPE_BYTES.get(self.dtype, 4)


@dataclasses.dataclass
class Instr:
    name: str
    opcode: str
    shapes: tuple[Shape, ...]          # one for arrays, several for tuples
    operands: tuple[str, ...]
    attrs: str
    line: str = ""                     # the instruction's text (literals of constants, ...)


@dataclasses.dataclass(frozen=True)
class HloOp:
    """One executed op of the entry computation."""

    name: str
    opcode: str                        # "fusion", "custom-call", "copy", ...
    fusion_kind: str                   # kLoop / kInput / kOutput / kCustom, "" if not a fusion
    fused_opcodes: tuple[str, ...]     # opcodes inside the fusion, sorted; (opcode,) otherwise
    result: tuple[Shape, ...]
    operands: tuple[Shape, ...]
    flops: float
    transcendentals: float
    bytes_accessed: float
    dot_dims: tuple[int, int, int, int] = (0, 0, 0, 0)  # largest dot: (batch, M, N, K)
    custom_kind: str = ""              # e.g. "__ynn_fusion", a custom-call target
    estimated_cycles: float = math.nan  # TPU compiler's estimate, when present
    metadata_op: str = ""              # JAX op name from metadata (for humans)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "HloOp":
        d = dict(d)
        for k in ("result", "operands"):
            d[k] = tuple(Shape(s["dtype"], tuple(s["dims"]), s.get("layout", ""),
                               s.get("tiling", "")) for s in d[k])
        d["fused_opcodes"] = tuple(d["fused_opcodes"])
        d["dot_dims"] = tuple(d["dot_dims"])
        est = d.get("estimated_cycles")
        d["estimated_cycles"] = math.nan if est is None else float(est)
        return cls(**d)

    @property
    def result_bytes(self) -> float:
        return sum(s.bytes for s in self.result)

    @property
    def operand_bytes(self) -> float:
        return sum(s.bytes for s in self.operands)


_SHAPE_RE = re.compile(r"([a-z]\w*)\[([\d,]*)\](?:\{([^}]*)\})?")
_HEADER_RE = re.compile(r"^(ENTRY\s+)?%?([\w.\-]+)\s*\(.*\)\s*->\s*.*\{\s*$")


def _parse_shapes(text: str) -> tuple[Shape, ...]:
    out = []
    for m in _SHAPE_RE.finditer(text):
        dtype, dims, layout = m.group(1), m.group(2), m.group(3) or ""
        if dtype not in DTYPE_BYTES:
            continue
        lay, _, tiling = layout.partition(":")
        out.append(Shape(dtype, tuple(int(d) for d in dims.split(",") if d), lay, tiling))
    return tuple(out)


def _matching(text: str, start: int, open_: str = "(", close: str = ")") -> int:
    """Index of the bracket closing the one at ``start``."""
    depth = 0
    for i in range(start, len(text)):
        c = text[i]
        if c == open_:
            depth += 1
        elif c == close:
            depth -= 1
            if depth == 0:
                return i
    raise HloParseError(f"unbalanced {open_}{close} in HLO line: {text[:120]!r}")


def _parse_instr(line: str) -> Instr:
    body = line.strip()
    if body.startswith("ROOT "):
        body = body[5:]
    name, sep, rest = body.partition(" = ")
    if not sep:
        raise HloParseError(f"not an HLO instruction: {line[:120]!r}")
    rest = rest.lstrip()
    if rest.startswith("("):
        end = _matching(rest, 0)
        type_text, rest = rest[: end + 1], rest[end + 1:].lstrip()
    else:
        type_text, _, rest = rest.partition(" ")
    paren = rest.find("(")
    if paren < 0:
        raise HloParseError(f"no operand list in HLO instruction: {line[:120]!r}")
    opcode = rest[:paren].strip()
    end = _matching(rest, paren)
    operands = tuple(m.group(1) for m in re.finditer(r"%([\w.\-]+)", rest[paren + 1:end]))
    return Instr(name.lstrip("%"), opcode, _parse_shapes(type_text), operands, rest[end + 1:],
                 body)


def parse_hlo(text: str) -> tuple[str, dict[str, list[Instr]]]:
    """(entry computation name, {computation name: instructions})."""
    comps: dict[str, list[Instr]] = {}
    entry, current = None, None
    for line in text.splitlines():
        if not line.strip() or line.startswith(("HloModule", "//")):
            continue
        if current is None:
            m = _HEADER_RE.match(line)
            if m:
                current = m.group(2)
                comps[current] = []
                if m.group(1):
                    entry = current
            continue
        if line.strip() == "}":
            current = None
            continue
        comps[current].append(_parse_instr(line))
    if entry is None:
        raise HloParseError("no ENTRY computation found: is this the text of a compiled HLO "
                            "module (compiled.as_text())?")
    return entry, comps


def _attr(attrs: str, key: str) -> str:
    m = re.search(rf"\b{key}=(%?[\w.\-]+|\{{[^}}]*\}})", attrs)
    return m.group(1).lstrip("%") if m else ""


def _dims(attr: str) -> list[int]:
    return [int(x) for x in attr.strip("{}").split(",") if x.strip()]


def _backend_config(attrs: str) -> dict:
    i = attrs.find("backend_config=")
    if i < 0:
        return {}
    j = i + len("backend_config=")
    if attrs[j] != "{":
        return {}
    try:
        return json.loads(attrs[j:_matching(attrs, j, "{", "}") + 1])
    except (json.JSONDecodeError, HloParseError):
        return {}


def _window(attrs: str) -> dict[str, list[int]]:
    m = re.search(r"window=\{([^}]*)\}", attrs)
    out = {}
    for part in (m.group(1).split() if m else []):
        key, _, val = part.partition("=")
        if key == "pad":
            lo_hi = [p.split("_") for p in val.split("x")]
            out["pad_lo"] = [int(a) for a, _ in lo_hi]
        else:
            out[key] = [int(v) for v in val.split("x")]
    return out


def _conv_flops(lhs, rhs, out, attrs) -> tuple[float, tuple[int, int, int, int]]:
    """Flops of a convolution as HloCostAnalysis counts them: 2 per multiply-add over valid
    (output position, kernel position) pairs, honouring stride, padding and dilation."""
    m = re.search(r"dim_labels=([\w>\-]+)", attrs)
    labels = m.group(1) if m else ""
    try:
        l_lab, rest = labels.split("_")
        r_lab, o_lab = rest.split("->")
    except ValueError:
        raise HloParseError(f"convolution without parsable dim_labels: {attrs[:120]!r}") from None
    spatial = sorted(c for c in l_lab if c.isdigit())
    win = _window(attrs)
    n = len(spatial)
    size = win.get("size", [1] * n)
    stride, pad = win.get("stride", [1] * n), win.get("pad_lo", [0] * n)
    lhs_dil, rhs_dil = win.get("lhs_dilate", [1] * n), win.get("rhs_dilate", [1] * n)
    valid = 1
    for j, c in enumerate(spatial):
        in_size = lhs[l_lab.index(c)]
        out_size = out[o_lab.index(c)]
        dilated = (in_size - 1) * lhs_dil[j] + 1
        count = 0
        for o in range(out_size):
            for k in range(size[j]):
                pos = o * stride[j] - pad[j] + k * rhs_dil[j]
                if 0 <= pos < dilated and pos % lhs_dil[j] == 0:
                    count += 1
        valid *= count
    batch = lhs[l_lab.index("b")]
    in_f, out_f = rhs[r_lab.index("i")], rhs[r_lab.index("o")]
    groups = int(_attr(attrs, "feature_group_count") or 1)
    bgroups = int(_attr(attrs, "batch_group_count") or 1)
    macs = batch * out_f * in_f * valid // max(bgroups, 1)
    del groups  # in_f is already per group in the kernel shape
    return 2.0 * macs, (1, batch * max(valid // max(math.prod(size), 1), 1), out_f,
                        in_f * math.prod(size))


def instruction_costs(instrs: list[Instr], comps: dict, table: dict[str, Instr]):
    """Flops, transcendentals, opcodes and the largest dot of a list of instructions."""
    flops = trans = 0.0
    opcodes: list[str] = []
    best_dot = (0, 0, 0, 0)
    for ins in instrs:
        if ins.opcode == "fusion":
            sub = comps.get(_attr(ins.attrs, "calls"), [])
            f, t, ops, d = instruction_costs(sub, comps, {i.name: i for i in sub})
            flops, trans = flops + f, trans + t
            opcodes += ops
            best_dot = max(best_dot, d, key=math.prod)
            continue
        opcodes.append(ins.opcode)
        out = ins.shapes[0].elements if ins.shapes else 0
        if ins.opcode == "dot":
            lhs = table[ins.operands[0]].shapes[0].dims
            k = math.prod(lhs[i] for i in _dims(_attr(ins.attrs, "lhs_contracting_dims")))
            flops += 2.0 * out * k
            batch = math.prod(lhs[i] for i in _dims(_attr(ins.attrs, "lhs_batch_dims")))
            rest = out // max(batch, 1)
            n = ins.shapes[0].dims[-1] if ins.shapes[0].dims else 1
            d = (batch, rest // max(n, 1), n, k)
            best_dot = max(best_dot, d, key=math.prod)
        elif ins.opcode == "convolution":
            # TPU lowers dots to convolutions (with windows/dilation for batched dots)
            lhs = table[ins.operands[0]].shapes[0].dims
            rhs = table[ins.operands[1]].shapes[0].dims
            f, d = _conv_flops(lhs, rhs, ins.shapes[0].dims, ins.attrs)
            flops += f
            best_dot = max(best_dot, d, key=math.prod)
        elif ins.opcode in ("reduce", "reduce-window"):
            src = table[ins.operands[0]].shapes[0].elements if ins.operands else 0
            flops += max(src - out, 0) if ins.opcode == "reduce" else src
        elif ins.opcode in TRANSCENDENTAL:
            trans += out
        elif ins.opcode in ELEMENTWISE:
            flops += out
    return flops, trans, opcodes, best_dot


def executed_ops(text: str) -> list[HloOp]:
    """The ops that run as kernels, in program order: the entry computation's, with the ops of
    ``while`` bodies repeated by their trip count and those of ``call``/``conditional``
    computations (the most expensive branch) in place of the control op; bytes as
    :mod:`perfmodel.hlo_cost` counts them (dynamic-slice bytes, in-place updates, async copies
    once). A program without control flow, dynamic slices, custom calls, collectives or async
    copies gets the same ops as the entry-only count of earlier versions."""
    from .hlo_cost import walk_module

    entry, comps = parse_hlo(text)
    tables: dict[str, dict[str, Instr]] = {}
    ops = []
    for c in walk_module(entry, comps):
        table = tables.get(c.computation)
        if table is None:
            table = tables[c.computation] = {i.name: i for i in comps[c.computation]}
        op = _hlo_op(c.instr, comps, table, c.cost)
        ops.extend([op] * max(int(round(c.count)), 0))
    return ops


def _hlo_op(ins: Instr, comps: dict, table: dict[str, Instr], cost) -> HloOp:
    _, _, opcodes, dot = instruction_costs([ins], comps, table)
    operand_shapes = tuple(s for o in ins.operands if o in table for s in table[o].shapes)
    cfg = _backend_config(ins.attrs)
    est = _find(cfg, "estimated_cycles")
    custom = (cfg.get("fusion_config", {}).get("kind", "") if ins.opcode == "fusion"
              else _attr(ins.attrs, "custom_call_target").strip('"'))
    meta = re.search(r'op_name="([^"]*)"', ins.attrs)
    return HloOp(
        name=ins.name, opcode=ins.opcode, fusion_kind=_attr(ins.attrs, "kind"),
        fused_opcodes=tuple(sorted(opcodes)), result=ins.shapes, operands=operand_shapes,
        flops=cost.flops, transcendentals=cost.transcendentals,
        bytes_accessed=cost.bytes_accessed,
        dot_dims=dot, custom_kind=custom,
        estimated_cycles=float(est) if est not in (None, "") else math.nan,
        metadata_op=meta.group(1) if meta else "")


def _find(cfg, key):
    """First value of ``key`` anywhere in a nested backend_config."""
    if isinstance(cfg, dict):
        if key in cfg:
            return cfg[key]
        for v in cfg.values():
            r = _find(v, key)
            if r is not None:
                return r
    elif isinstance(cfg, list):
        for v in cfg:
            r = _find(v, key)
            if r is not None:
                return r
    return None


def totals(ops: Iterable[HloOp]) -> dict[str, float]:
    ops = list(ops)
    return {"flops": sum(o.flops for o in ops),
            "transcendentals": sum(o.transcendentals for o in ops),
            "bytes_accessed": sum(o.bytes_accessed for o in ops),
            "ops": len(ops), "opcodes": dict(Counter(o.opcode for o in ops))}
