"""The cost of one HLO instruction, and of a whole program as XLA runs it.

:func:`cost_instruction` costs one instruction from its text and its operands' types (given as
``operand_shapes``, or inline in the text as XProf's ``long_name`` and HLO dumps write them):
an :class:`OpCost` of flops, bytes read, bytes written, bytes over a link, and a category
(``kind``) so that collectives and async copies are never mistaken for compute.
:func:`program_ops` walks a whole module from its entry computation, into ``while`` bodies
(times their trip count), ``call`` and ``conditional`` computations.

Rules (each one testable on hand-written HLO text, ``tests/test_hlo_cost.py``):

* **Compute ops** (fusions, dots, convolutions, elementwise, ...): flops counted as
  :mod:`perfmodel.hlo` counts them (XLA's ``HloCostAnalysis`` conventions, through the fusion's
  body when it is given); every operand read whole, every result written whole, except:
* **dynamic-slice / dynamic-update-slice**, alone or inside a fusion: a fusion parameter read
  only by dynamic-slices (as their sliced operand) counts the slices' bytes, not the buffer; a
  dynamic-update-slice writes its update in place, so it reads and writes the update (plus the
  indices), and the buffer it updates is neither read nor written whole.
* **Pass-through** (parameter, constant, tuple, get-tuple-element, bitcast, opt-barrier, ...)
  moves no data: kind ``alias``, zero bytes.
* **Custom calls** (Pallas/Mosaic kernels, library calls): the kernel's own ``cost_estimate``
  when its backend_config carries one (Pallas writes it there); otherwise bytes = every operand
  read once + every result written once, and flops by shape: attention-shaped (q, k, v of rank
  >= 3 with q/k sharing the head dim) 2 * q_rows * kv_len * (d_qk + d_v); matmul-shaped (two
  operands, lhs[-1] == rhs[-2]) 2 * result elements * K; else one flop per element of the
  largest operand or result. Annotation targets (Sharding, MoveToHost, ...) are ``alias``.
* **Collectives** (all-reduce, all-gather, reduce-scatter, all-to-all, collective-permute,
  collective-broadcast and their async -start/-done): kind ``collective``; ``link_bytes`` is what
  one device sends over ICI in a ring over its replica group of n: all-reduce 2(n-1)/n * S,
  all-gather (n-1)/n * result, reduce-scatter (n-1)/n * operand, all-to-all (n-1)/n * S,
  permute S (n unknown: the limit, factor 1).
* **Async pairs** (copy-start/copy-done, X-start/X-done): the ``-start`` only issues the
  transfer (zero cost); the ``-done``, where the program waits, carries the transfer. An
  ``async-start`` wrapping a computation (``calls=``) is costed as that computation's ops. A
  copy that touches host memory (memory space ``S(5)`` on TPU) goes over the host link.
* **Control flow** (while, call, conditional): zero cost of their own (kind ``control``);
  :func:`program_ops` costs their computations. A ``while`` runs its body ``n`` times and its
  condition ``n + 1`` times, with ``n`` from XLA's ``known_trip_count`` or, failing that, from
  the condition's compare against a constant (with ``known_init_step`` when present). A
  ``conditional`` is costed as its **most expensive branch** (largest bytes, then flops): one
  branch runs per execution and which one is data-dependent, so the max is an upper bound that is
  still a real execution (a mean would need branch probabilities we do not have, and is no
  execution the hardware ever runs).
"""

from __future__ import annotations

import dataclasses
import math
import re
import warnings
from typing import Iterable, Sequence

from .hlo import (NOT_EXECUTED, HloParseError, Instr, Shape, _attr, _backend_config,
                  instruction_costs, _find, _matching, _parse_instr, _parse_shapes, parse_hlo)

__all__ = ["OpCost", "CostedOp", "InstructionParseError", "cost_instruction", "program_ops",
           "program_totals", "trip_count", "roofline_s", "KINDS", "COLLECTIVES"]

KINDS = ("compute", "collective", "async", "alias", "control")
COLLECTIVES = {"all-reduce", "all-gather", "reduce-scatter", "all-to-all", "collective-permute",
               "collective-broadcast", "ragged-all-to-all", "send", "recv"}
CONTROL = {"while", "call", "conditional"}
ALIAS = set(NOT_EXECUTED) | {"domain", "add-dependency", "get-dimension-size"}
# custom-call targets that annotate and move no data
ANNOTATION_TARGETS = {"Sharding", "SPMDFullToShardShape", "SPMDShardToFullShape", "MoveToHost",
                      "MoveToDevice", "annotate_device_placement", "LayoutConstraint",
                      "AllocateBuffer", "PartialReduce"}
HOST_MEMORY_SPACE = "S(5)"     # TPU memory space of pinned host memory in layouts


class InstructionParseError(HloParseError):
    """One HLO instruction's text could not be costed."""


@dataclasses.dataclass(frozen=True)
class OpCost:
    flops: float
    bytes_read: float
    bytes_written: float
    kind: str                        # one of KINDS
    transcendentals: float = 0.0
    link_bytes: float = 0.0          # bytes one device moves over ICI / the host link
    link: str = ""                   # "ici" | "host" | ""
    rule: str = ""                   # which estimate applied, when not exact

    @property
    def bytes_accessed(self) -> float:
        return self.bytes_read + self.bytes_written


@dataclasses.dataclass(frozen=True)
class CostedOp:
    """One executed instruction of a program and how many times one execution runs it."""

    name: str
    computation: str
    instr: Instr
    cost: OpCost
    count: float


def _nbytes(shapes: Iterable[Shape]) -> float:
    return float(sum(s.bytes for s in shapes))


def _split_top(text: str) -> list[str]:
    """Split at commas not inside (), [], {}."""
    out, depth, cur = [], 0, []
    for c in text:
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        if c == "," and depth == 0:
            out.append("".join(cur))
            cur = []
        else:
            cur.append(c)
    if "".join(cur).strip():
        out.append("".join(cur))
    return [s.strip() for s in out]


def _inline_operand_shapes(line: str, ins: Instr) -> list[tuple[Shape, ...]] | None:
    """Operand types written inline (``fusion(f32[8]{0} %a, ...)``), or None if absent."""
    body = line.strip()
    body = body[5:] if body.startswith("ROOT ") else body
    rest = body.partition(" = ")[2].lstrip()
    if rest.startswith("("):
        rest = rest[_matching(rest, 0) + 1:]
    i = rest.find(ins.opcode + "(")
    if i < 0:
        return None
    j = i + len(ins.opcode)
    parts = [p for p in _split_top(rest[j + 1:_matching(rest, j)]) if "%" in p]
    shapes = [_parse_shapes(p[:p.rfind("%")]) for p in parts]
    if not parts or not all(shapes):
        return None
    return shapes


def _as_shapes(x) -> tuple[Shape, ...]:
    if isinstance(x, Shape):
        return (x,)
    if isinstance(x, str):
        s = _parse_shapes(x)
        if not s:
            raise InstructionParseError(f"operand type {x!r} is not an HLO type; expected e.g. "
                                        "'f32[8,128]' or '(f32[8], s32[])'")
        return s
    return tuple(s for e in x for s in _as_shapes(e))


def _parse_one(text: str) -> Instr:
    line = text.strip()
    if not line or "\n" in line:
        raise InstructionParseError(
            f"cannot cost {text[:160]!r}: expected one HLO instruction on one line, "
            "'%name = f32[8]{0} opcode(%operand, ...), attr=...'")
    try:
        return _parse_instr(line)
    except HloParseError as e:
        raise InstructionParseError(
            f"cannot cost {text[:160]!r}: expected one HLO instruction, "
            f"'%name = f32[8]{{0}} opcode(%operand, ...), attr=...' ({e})") from None


def cost_instruction(text: str, operand_shapes: Sequence | None = None,
                     computations: dict[str, list[Instr]] | None = None, *,
                     start: str | Instr | None = None) -> OpCost:
    """Cost one HLO instruction given as text.

    ``operand_shapes``: one entry per operand (a :class:`Shape`, a tuple of them, or an HLO type
    string such as ``"f32[8,128]"``); may be omitted when the text writes operand types inline.
    ``computations`` (from :func:`perfmodel.hlo.parse_hlo`) gives fusion bodies; without it a
    fusion counts one flop per output element and reads its operands whole. ``start`` is the
    matching ``-start`` instruction of a ``-done`` (for a collective's replica groups).
    """
    ins = _parse_one(text)
    shapes = None
    if operand_shapes is not None:
        shapes = [_as_shapes(s) for s in operand_shapes]
        if len(shapes) != len(ins.operands):
            raise InstructionParseError(
                f"cannot cost {text[:160]!r}: {len(ins.operands)} operand(s) in the text but "
                f"{len(shapes)} operand type(s) given; expected one type per operand")
    else:
        shapes = _inline_operand_shapes(text, ins)
        if shapes is None:
            if ins.operands and ins.opcode not in ALIAS | CONTROL:
                raise InstructionParseError(
                    f"cannot cost {text[:160]!r}: no operand types; expected them inline "
                    "('fusion(f32[8]{0} %a)') or as operand_shapes")
            shapes = [() for _ in ins.operands]
    if isinstance(start, str):
        start = _parse_one(start)
    return _cost(ins, shapes, computations or {}, start)


# -- the rules ------------------------------------------------------------------------------

def _base(opcode: str) -> tuple[str, str]:
    for suf in ("-start", "-update", "-done"):
        if opcode.endswith(suf):
            return opcode[: -len(suf)], suf
    return opcode, ""


def _group_size(attrs: str) -> int | None:
    """Devices per replica group: ``{{0,1},{2,3}}`` or the iota form ``[4,2]<=[8]``."""
    m = re.search(r"replica_groups=\[(\d+),(\d+)\]<=", attrs)
    if m:
        return int(m.group(2))
    m = re.search(r"replica_groups=\{\{([^}]*)\}", attrs)
    if m:
        return len([x for x in m.group(1).split(",") if x.strip()])
    return None


def _touches_host(shapes: Iterable[Shape]) -> bool:
    return any(HOST_MEMORY_SPACE in s.tiling for s in shapes)


def _collective(ins: Instr, base: str, operands: list[tuple[Shape, ...]], result,
                attrs: str) -> OpCost:
    n = _group_size(attrs)
    f = 1.0 if not n else (n - 1) / n
    s_in = _nbytes(s for o in operands for s in o)
    s_out = _nbytes(result)
    if base == "all-reduce":
        link = 2 * f * s_out
        flops = float(sum(s.elements for s in result))
    elif base == "all-gather":
        link, flops = f * s_out, 0.0
    elif base == "reduce-scatter":
        link, flops = f * s_in, f * sum(s.elements for o in operands for s in o)
    elif base in ("all-to-all", "ragged-all-to-all"):
        link, flops = f * s_out, 0.0
    else:              # collective-permute, collective-broadcast, send, recv
        link, flops = s_out, 0.0
    return OpCost(flops, s_in, s_out, "collective", link_bytes=link, link="ici")


def _fusion_bytes(ins: Instr, operands, body: list[Instr]) -> tuple[float, float, str]:
    """Bytes a fusion reads and writes, honouring dynamic-slice / dynamic-update-slice."""
    params = {}
    for b in body:
        if b.opcode == "parameter":
            m = re.search(r"parameter\((\d+)\)", b.line)
            params[b.name] = int(m.group(1)) if m else len(params)
    users: dict[str, list[tuple[Instr, int]]] = {p: [] for p in params}
    for b in body:
        for pos, o in enumerate(b.operands):
            if o in users:
                users[o].append((b, pos))
    root = body[-1]
    roots = ([next((b for b in body if b.name == o), None) for o in root.operands]
             if root.opcode == "tuple" else [root])
    in_place = {r.operands[0] for r in roots if r is not None
                and r.opcode == "dynamic-update-slice" and r.operands[0] in params}
    read = 0.0
    rule = ""
    for p, k in params.items():
        whole = _nbytes(operands[k]) if k < len(operands) else 0.0
        us = users[p]
        if us and all(u.opcode == "dynamic-slice" and pos == 0 for u, pos in us):
            read += min(whole, _nbytes(s for u, _ in us for s in u.shapes))
            rule = "dynamic-slice bytes"
        elif p in in_place and all(u.opcode == "dynamic-update-slice" and pos == 0
                                   for u, pos in us):
            rule = "dynamic-update-slice in place"
        else:
            read += whole
    written = 0.0
    table = {b.name: b for b in body}
    for r, res in zip(roots, ins.shapes if root.opcode == "tuple" else [ins.shapes]):
        if r is not None and r.opcode == "dynamic-update-slice" and r.operands[0] in in_place:
            upd = table.get(r.operands[1])
            written += _nbytes(upd.shapes) if upd is not None else 0.0
        else:
            written += _nbytes(res if isinstance(res, tuple) else (res,))
    return read, written, rule


def _custom_call(ins: Instr, operands, target: str) -> OpCost:
    res = ins.shapes
    read, written = _nbytes(s for o in operands for s in o), _nbytes(res)
    est = _find(_backend_config(ins.attrs), "cost_estimate")
    if isinstance(est, dict) and "flops" in est:
        acc = float(est.get("bytes_accessed", read + written))
        frac = read / (read + written) if read + written else 0.5
        return OpCost(float(est["flops"]), acc * frac, acc * (1 - frac), "compute",
                      float(est.get("transcendentals", 0)), rule="custom-call cost_estimate")
    arrays = [o[0] for o in operands if len(o) == 1]
    if (len(arrays) >= 3 and all(len(a.dims) >= 3 for a in arrays[:3])
            and arrays[0].dims[-1] == arrays[1].dims[-1]
            and arrays[1].dims[:-1] == arrays[2].dims[:-1]):
        q, k, v = arrays[:3]
        rows = math.prod(q.dims[:-1])
        flops = 2.0 * rows * k.dims[-2] * (q.dims[-1] + v.dims[-1])
        return OpCost(flops, read, written, "compute", float(rows * k.dims[-2]),
                      rule=f"custom-call {target}: attention-shaped")
    if (len(arrays) == 2 and len(arrays[0].dims) >= 2 and len(arrays[1].dims) >= 2
            and arrays[0].dims[-1] == arrays[1].dims[-2] and res):
        return OpCost(2.0 * res[0].elements * arrays[0].dims[-1], read, written, "compute",
                      rule=f"custom-call {target}: matmul-shaped")
    biggest = max([s.elements for s in res] + [a.elements for a in arrays] + [0])
    return OpCost(float(biggest), read, written, "compute",
                  rule=f"custom-call {target}: one flop per element")


def _cost(ins: Instr, operands: list[tuple[Shape, ...]], comps: dict[str, list[Instr]],
          start: Instr | None = None) -> OpCost:
    op = ins.opcode
    if op in ALIAS:
        return OpCost(0.0, 0.0, 0.0, "alias")
    if op in CONTROL:
        return OpCost(0.0, 0.0, 0.0, "control")
    base, suffix = _base(op)
    if suffix:
        if suffix != "-done":
            return OpCost(0.0, 0.0, 0.0, "collective" if base in COLLECTIVES else "async")
        if base in COLLECTIVES:
            # the -done's operand is the -start's result; the transfer is its own result
            src = start.shapes if start is not None else ins.shapes
            c = _collective(ins, base, [src], ins.shapes, start.attrs if start else "")
            return dataclasses.replace(c, bytes_read=_nbytes(ins.shapes))
        # copy-done((dest, src, context)): the buffer moves once
        every = [s for o in operands for s in o] + list(ins.shapes)
        size = _nbytes(ins.shapes)
        host = _touches_host(every)
        return OpCost(0.0, size, size, "async", link_bytes=size if host else 0.0,
                      link="host" if host else "")
    if base in COLLECTIVES:
        return _collective(ins, base, operands, ins.shapes, ins.attrs)
    read = _nbytes(s for o in operands for s in o)
    written = _nbytes(ins.shapes)
    if op == "custom-call":
        target = _attr(ins.attrs, "custom_call_target").strip('"')
        if not target:
            m = re.search(r'custom_call_target="([^"]*)"', ins.attrs)
            target = m.group(1) if m else ""
        if target in ANNOTATION_TARGETS:
            return OpCost(0.0, 0.0, 0.0, "alias", rule=f"custom-call {target}: annotation")
        return _custom_call(ins, operands, target)
    table = {n: Instr(n, "parameter", s, (), "") for n, s in zip(ins.operands, operands)}
    rule = ""
    if op == "fusion" and _attr(ins.attrs, "calls") not in comps:
        flops, trans = float(sum(s.elements for s in ins.shapes)), 0.0
        rule = "fusion body not given: one flop per output element"
    else:
        try:
            flops, trans, _, _ = instruction_costs([ins], comps, table)
        except (KeyError, IndexError) as e:
            raise InstructionParseError(
                f"cannot cost {ins.name} ({op}): operand types missing or of the wrong rank "
                f"({type(e).__name__}: {e}); expected one array type per operand") from None
    if op == "fusion":
        body = comps.get(_attr(ins.attrs, "calls"))
        if body:
            read, written, r = _fusion_bytes(ins, operands, body)
            rule = rule or r
    elif op == "dynamic-slice":
        idx = _nbytes(s for o in operands[1:] for s in o)
        read, written, rule = written + idx, written, "dynamic-slice bytes"
    elif op == "dynamic-update-slice":
        upd = _nbytes(operands[1]) if len(operands) > 1 else 0.0
        idx = _nbytes(s for o in operands[2:] for s in o)
        read, written, rule = upd + idx, upd, "dynamic-update-slice in place"
    host = op == "copy" and _touches_host(list(ins.shapes) + [s for o in operands for s in o])
    if host:
        return OpCost(flops, read, written, "async", trans, written, "host", "copy to/from host")
    return OpCost(flops, read, written, "compute", trans, rule=rule)


# -- whole programs -------------------------------------------------------------------------

def trip_count(ins: Instr, comps: dict[str, list[Instr]]) -> int | None:
    """Iterations of a ``while``: XLA's ``known_trip_count``, else the condition's compare of
    the induction variable against a constant (init/step from ``known_init_step``, else 0/1)."""
    cfg = _backend_config(ins.attrs)
    n = _find(cfg, "known_trip_count")
    if isinstance(n, dict) and "n" in n:
        return int(n["n"])
    init_step = _find(cfg, "known_init_step") or {}
    init, step = int(init_step.get("init", 0)), int(init_step.get("step", 1))
    cond = comps.get(_attr(ins.attrs, "condition"), [])
    consts = {}
    for c in cond:
        if c.opcode == "constant" and c.shapes and not c.shapes[0].dims:
            m = re.search(r"constant\((-?\d+)\)", c.line)
            if m:
                consts[c.name] = int(m.group(1))
    if not consts or not cond:
        return None
    root = cond[-1]
    cmp = root
    if root.opcode == "fusion":
        sub = comps.get(_attr(root.attrs, "calls"), [])
        cmp = sub[-1] if sub else root
        # map the fused compare's parameters back to the fusion's operands
        pnames = [b.name for b in sub if b.opcode == "parameter"]
        order = {p: root.operands[i] for i, p in enumerate(pnames) if i < len(root.operands)}
        cmp = Instr(cmp.name, cmp.opcode, cmp.shapes,
                    tuple(order.get(o, o) for o in cmp.operands), cmp.attrs)
    if cmp.opcode != "compare" or len(cmp.operands) != 2:
        return None
    direction = _attr(cmp.attrs, "direction")
    lhs, rhs = cmp.operands
    if rhs in consts and lhs not in consts:
        bound = consts[rhs]
    elif lhs in consts and rhs not in consts:
        bound = consts[lhs]
        direction = {"GT": "LT", "GE": "LE", "LT": "GT", "LE": "GE"}.get(direction, direction)
    else:
        return None
    if step <= 0:
        return None
    if direction == "LT":
        return max(0, -(-(bound - init) // step))
    if direction == "LE":
        return max(0, (bound - init) // step + 1)
    if direction == "NE":
        return max(0, (bound - init) // step)
    return None


def _walk(comp: str, comps, count: float, out: list[CostedOp], depth: int = 0) -> None:
    if depth > 64:
        raise HloParseError(f"computation {comp!r} nests control flow over 64 deep; recursive "
                            "HLO is not supported")
    instrs = comps.get(comp)
    if instrs is None:
        raise HloParseError(f"computation {comp!r} is called but not defined in the module")
    table = {i.name: i for i in instrs}
    for ins in instrs:
        op = ins.opcode
        if op in ALIAS:
            continue
        if op == "while":
            n = trip_count(ins, comps)
            if n is None:
                warnings.warn(f"while loop {ins.name}: trip count unknown at compile time "
                              "(no known_trip_count, no compare against a constant); its body "
                              "is costed once", stacklevel=2)
                n = 1
            _walk(_attr(ins.attrs, "condition"), comps, count * (n + 1), out, depth + 1)
            _walk(_attr(ins.attrs, "body"), comps, count * n, out, depth + 1)
            continue
        if op == "call":
            _walk(_attr(ins.attrs, "to_apply"), comps, count, out, depth + 1)
            continue
        if op == "async-start" and _attr(ins.attrs, "calls") in comps:
            # a wrapped computation run asynchronously: its ops are the work
            _walk(_attr(ins.attrs, "calls"), comps, count, out, depth + 1)
            continue
        if op in ("async-update", "async-done") and ins.operands and ins.operands[0] in table \
                and _attr(table[ins.operands[0]].attrs, "calls") in comps:
            continue
        if op == "conditional":
            m = re.search(r"branch_computations=\{([^}]*)\}", ins.attrs)
            names = ([b.strip().lstrip("%") for b in m.group(1).split(",")] if m else
                     [_attr(ins.attrs, "true_computation"), _attr(ins.attrs, "false_computation")])
            best, best_key = None, None
            for b in names:
                sub: list[CostedOp] = []
                _walk(b, comps, count, sub, depth + 1)
                key = (sum(c.cost.bytes_accessed * c.count for c in sub),
                       sum(c.cost.flops * c.count for c in sub))
                if best_key is None or key > best_key:
                    best, best_key = sub, key
            out.extend(best or [])
            continue
        shapes = [table[o].shapes if o in table else () for o in ins.operands]
        start = None
        if op.endswith("-done") and ins.operands and ins.operands[0] in table:
            start = table[ins.operands[0]]
        try:
            c = _cost(ins, shapes, comps, start)
        except InstructionParseError:
            raise
        except (KeyError, IndexError, ValueError) as e:
            raise HloParseError(f"cannot cost {ins.name} ({op}) in {comp}: "
                                f"{type(e).__name__}: {e}") from e
        out.append(CostedOp(ins.name, comp, ins, c, count))


def walk_module(entry: str, comps: dict[str, list[Instr]]) -> list[CostedOp]:
    """:func:`program_ops` on a module already parsed by :func:`perfmodel.hlo.parse_hlo`."""
    out: list[CostedOp] = []
    _walk(entry, comps, 1.0, out)
    return out


def program_ops(text: str) -> list[CostedOp]:
    """Every executed instruction of a compiled module with its cost and how many times one
    execution runs it (``while`` bodies times their trip count)."""
    return walk_module(*parse_hlo(text))


def program_totals(text: str) -> dict[str, dict[str, float]]:
    """Totals per kind (and ``"all"``): flops, transcendentals, bytes, link bytes, op runs."""
    out: dict[str, dict[str, float]] = {}
    for c in program_ops(text):
        for k in (c.cost.kind, "all"):
            d = out.setdefault(k, dict.fromkeys(("flops", "transcendentals", "bytes_read",
                                                 "bytes_written", "link_bytes", "runs"), 0.0))
            d["flops"] += c.count * c.cost.flops
            d["transcendentals"] += c.count * c.cost.transcendentals
            d["bytes_read"] += c.count * c.cost.bytes_read
            d["bytes_written"] += c.count * c.cost.bytes_written
            d["link_bytes"] += c.count * c.cost.link_bytes
            d["runs"] += c.count
    return out


def roofline_s(cost: OpCost, spec, links=None) -> float:
    """Seconds of one op: compute ops max(flops / peak, bytes / HBM bandwidth); collectives
    and host copies also bounded by their link (``links``: a
    :class:`perfmodel.hardware.LinkSpec`; ICI per direction = half the bidirectional figure;
    without it the link is taken as fast as HBM)."""
    t = max(cost.flops / spec.peak_flops_per_s, cost.bytes_accessed / spec.hbm_bytes_per_s)
    if cost.link_bytes and links is not None:
        bw = (links.ici_bytes_per_s / 2 if cost.link == "ici" else links.host_bytes_per_s)
        if bw and bw == bw:
            t = max(t, cost.link_bytes / bw)
    return t


def exposed_seconds(seq: Sequence[tuple[str, Instr, OpCost]], time_s) -> list[float]:
    """Time each op of a scheduled sequence adds to the program, async overlap included.

    ``seq``: (name, instruction, cost) in execution order (a scheduled module's order, or a
    trace's); ``time_s(cost)`` the seconds of one op alone (e.g. :func:`roofline_s`). A
    transfer starts at its ``-start`` (or when its link is free: transfers on one link and
    direction run one after another) and lasts ``time_s`` of its ``-done``; the ``-done`` adds
    only the part not hidden behind the ops run since. Everything else adds ``time_s``."""
    done_of = {ins.operands[0]: cost for _, ins, cost in seq
               if ins.opcode.endswith("-done") and ins.operands}
    t, free, ends, out = 0.0, {}, {}, []
    for name, ins, cost in seq:
        op = ins.opcode
        if op.endswith("-start") and name in done_of:
            d = done_of[name]
            key = (d.link, tuple(HOST_MEMORY_SPACE in s.tiling for s in ins.shapes[:1]))
            begin = max(t, free.get(key, 0.0))
            ends[name] = free[key] = begin + time_s(d)
            out.append(0.0)
        elif op.endswith("-done") and ins.operands and ins.operands[0] in ends:
            wait = max(0.0, ends[ins.operands[0]] - t)
            t += wait
            out.append(wait)
        else:
            dt = time_s(cost)
            t += dt
            out.append(dt)
    return out
