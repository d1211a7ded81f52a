"""Costing one HLO instruction from its text, and whole programs as XLA runs them
(perfmodel/hlo_cost.py), on hand-written HLO text; plus a scanned-vs-unrolled JAX model."""

import gzip
import json
import math
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from measurements.errors import HwdistillError
from perfmodel.hlo import DTYPE_BYTES, executed_ops, parse_hlo, totals
from perfmodel.hlo_cost import (InstructionParseError, cost_instruction, program_ops,
                                program_totals, roofline_s, trip_count)

FIX = Path(__file__).parent / "fixtures"


def _t(dtype, dims):
    return f"{dtype}[{','.join(map(str, dims))}]"


def test_elementwise_with_inline_operand_types():
    c = cost_instruction("%a = f32[8,128]{1,0} add(f32[8,128]{1,0} %x, f32[8,128]{1,0} %y)")
    assert (c.flops, c.bytes_read, c.bytes_written, c.kind) == (1024, 8192, 4096, "compute")


def test_dot_with_operand_shapes_argument():
    c = cost_instruction("%d = f32[4,16]{1,0} dot(%a, %b), lhs_contracting_dims={1}, "
                         "rhs_contracting_dims={0}", ["f32[4,8]", "f32[8,16]"])
    assert c.flops == 2 * 4 * 16 * 8
    assert c.bytes_read == (32 + 128) * 4 and c.bytes_written == 64 * 4


_dims = st.lists(st.integers(1, 12), min_size=1, max_size=4)


@st.composite
def _slice_case(draw):
    dims = draw(_dims)
    sizes = [draw(st.integers(1, d)) for d in dims]
    dtype = draw(st.sampled_from(["f32", "bf16", "s8", "s32"]))
    return dtype, dims, sizes


@settings(max_examples=40, deadline=None)
@given(_slice_case())
def test_dynamic_slice_counts_the_slice_not_the_buffer(case):
    dtype, dims, sizes = case
    idx = ", ".join(f"s32[] %i{k}" for k in range(len(dims)))
    text = (f"%ds = {_t(dtype, sizes)} dynamic-slice({_t(dtype, dims)} %buf, {idx}), "
            f"dynamic_slice_sizes={{{','.join(map(str, sizes))}}}")
    c = cost_instruction(text)
    slice_bytes = math.prod(sizes) * DTYPE_BYTES[dtype]
    assert c.bytes_written == slice_bytes
    assert c.bytes_read == slice_bytes + 4 * len(dims)
    assert c.kind == "compute" and c.flops == 0


@settings(max_examples=40, deadline=None)
@given(_slice_case())
def test_dynamic_update_slice_is_in_place(case):
    dtype, dims, sizes = case
    idx = ", ".join(f"s32[] %i{k}" for k in range(len(dims)))
    text = (f"%dus = {_t(dtype, dims)} dynamic-update-slice({_t(dtype, dims)} %buf, "
            f"{_t(dtype, sizes)} %upd, {idx})")
    c = cost_instruction(text)
    upd = math.prod(sizes) * DTYPE_BYTES[dtype]
    assert c.bytes_written == upd and c.bytes_read == upd + 4 * len(dims)


FUSIONS = """HloModule m

%ds_body (p0: f32[16,64,64], p1: s32[]) -> f32[64,64] {
  %p0 = f32[16,64,64]{2,1,0} parameter(0)
  %p1 = s32[] parameter(1)
  %z = s32[] constant(0)
  %ds = f32[1,64,64]{2,1,0} dynamic-slice(%p0, %p1, %z, %z), dynamic_slice_sizes={1,64,64}
  ROOT %b = f32[64,64]{1,0} bitcast(%ds)
}

%dus_body (q0: f32[16,64], q1: f32[1,64], q2: s32[]) -> f32[16,64] {
  %q0 = f32[16,64]{1,0} parameter(0)
  %q1 = f32[1,64]{1,0} parameter(1)
  %q2 = s32[] parameter(2)
  %m = f32[1,64]{1,0} multiply(%q1, %q1)
  %z = s32[] constant(0)
  ROOT %u = f32[16,64]{1,0} dynamic-update-slice(%q0, %m, %q2, %z)
}

ENTRY %e (a: f32[16,64,64], i: s32[], c: f32[16,64], r: f32[1,64]) -> f32[64,64] {
  %a = f32[16,64,64]{2,1,0} parameter(0)
  %i = s32[] parameter(1)
  %c = f32[16,64]{1,0} parameter(2)
  %r = f32[1,64]{1,0} parameter(3)
  %f = f32[64,64]{1,0} fusion(%a, %i), kind=kLoop, calls=%ds_body
  %g = f32[16,64]{1,0} fusion(%c, %r, %i), kind=kLoop, calls=%dus_body
  ROOT %t = (f32[64,64]{1,0}, f32[16,64]{1,0}) tuple(%f, %g)
}
"""


def test_fusions_rooted_in_dynamic_slices():
    _, comps = parse_hlo(FUSIONS)
    f = cost_instruction("%f = f32[64,64]{1,0} fusion(%a, %i), kind=kLoop, calls=%ds_body",
                         ["f32[16,64,64]", "s32[]"], comps)
    assert f.bytes_read == 64 * 64 * 4 + 4        # the slice and the index, not 16 x 64 x 64
    assert f.bytes_written == 64 * 64 * 4
    g = cost_instruction("%g = f32[16,64]{1,0} fusion(%c, %r, %i), kind=kLoop, calls=%dus_body",
                         ["f32[16,64]", "f32[1,64]", "s32[]"], comps)
    assert g.bytes_written == 64 * 4 and g.bytes_read == 64 * 4 + 4   # update in place
    assert g.flops == 64
    # whole program: the pass-through tuple and parameters write nothing
    t = program_totals(FUSIONS)["all"]
    assert t["bytes_written"] == 64 * 64 * 4 + 64 * 4 and t["runs"] == 2


@pytest.mark.parametrize("text", [
    "%p = f32[8]{0} parameter(0)",
    "%t = (f32[8]{0}, s32[]) tuple(f32[8]{0} %a, s32[] %b)",
    "%g = f32[8]{0} get-tuple-element((f32[8]{0}, s32[]) %t), index=0",
    "%b = f32[2,4]{1,0} bitcast(f32[8]{0} %a)",
    "%c = s32[] constant(3)",
    '%s = f32[8]{0} custom-call(f32[8]{0} %a), custom_call_target="Sharding"',
])
def test_pass_through_moves_no_bytes(text):
    c = cost_instruction(text)
    assert c.kind == "alias" and c.bytes_read == c.bytes_written == c.flops == 0


def test_custom_calls():
    est = ('%k = f32[128,256]{1,0} custom-call(f32[128,512]{1,0} %a, f32[512,256]{1,0} %b), '
           'custom_call_target="tpu_custom_call", backend_config={"custom_call_config":'
           '{"body":"x","cost_estimate":{"flops":123456,"transcendentals":7,'
           '"bytes_accessed":1000}}}')
    c = cost_instruction(est)
    assert c.flops == 123456 and c.transcendentals == 7 and c.bytes_accessed == 1000
    assert c.rule == "custom-call cost_estimate"
    mm = cost_instruction('%k = f32[128,256]{1,0} custom-call(f32[128,512]{1,0} %a, '
                          'f32[512,256]{1,0} %b), custom_call_target="my_matmul"')
    assert mm.flops == 2 * 128 * 256 * 512 and mm.rule.endswith("matmul-shaped")
    assert mm.bytes_read == (128 * 512 + 512 * 256) * 4 and mm.bytes_written == 128 * 256 * 4
    q = "bf16[2,8,1024,64]{3,2,1,0}"
    att = cost_instruction(f'%o = {q} custom-call({q} %q, {q} %k, {q} %v), '
                           'custom_call_target="tpu_custom_call"')
    assert att.flops == 2 * (2 * 8 * 1024) * 1024 * (64 + 64)
    assert att.rule.endswith("attention-shaped") and att.kind == "compute"
    other = cost_instruction('%o = f32[10]{0} custom-call(f32[1000]{0} %a), '
                             'custom_call_target="topk"')
    assert other.flops == 1000 and other.bytes_accessed == 4040


def test_collectives_are_not_compute():
    S = 1024 * 4
    ar = cost_instruction("%r = f32[1024]{0} all-reduce(f32[1024]{0} %x), channel_id=1, "
                          "replica_groups={{0,1,2,3}}, to_apply=%add")
    assert ar.kind == "collective" and ar.link == "ici"
    assert ar.link_bytes == pytest.approx(2 * 3 / 4 * S)
    iota = cost_instruction("%r = f32[1024]{0} all-reduce(f32[1024]{0} %x), channel_id=1, "
                            "replica_groups=[4,2]<=[2,4]T(1,0), to_apply=%add")
    assert iota.link_bytes == pytest.approx(S)                       # groups of 2
    ag = cost_instruction("%g = f32[4096]{0} all-gather(f32[1024]{0} %x), dimensions={0}, "
                          "replica_groups={{0,1,2,3}}")
    assert ag.link_bytes == pytest.approx(3 / 4 * 4 * S) and ag.flops == 0
    rs = cost_instruction("%s = f32[256]{0} reduce-scatter(f32[1024]{0} %x), dimensions={0}, "
                          "replica_groups={{0,1,2,3}}, to_apply=%add")
    assert rs.link_bytes == pytest.approx(3 / 4 * S) and rs.kind == "collective"
    cp = cost_instruction("%p = f32[1024]{0} collective-permute(f32[1024]{0} %x), "
                          "source_target_pairs={{0,1},{1,0}}")
    assert cp.link_bytes == S
    a2a = cost_instruction("%a = f32[1024]{0} all-to-all(f32[1024]{0} %x), dimensions={0}, "
                           "replica_groups={{0,1}}")
    assert a2a.link_bytes == pytest.approx(S / 2)
    st_ = cost_instruction("%s = f32[1024]{0} all-reduce-start(f32[1024]{0} %x), "
                           "replica_groups={{0,1}}, to_apply=%add")
    assert st_.kind == "collective" and st_.bytes_accessed == 0
    done = cost_instruction("%d = f32[1024]{0} all-reduce-done(f32[1024]{0} %s)",
                            start="%s = f32[1024]{0} all-reduce-start(f32[1024]{0} %x), "
                                  "replica_groups={{0,1}}, to_apply=%add")
    assert done.kind == "collective" and done.link_bytes == pytest.approx(S)


def test_async_copies_from_the_capture():
    """Host-offload copies of the v6e capture: the -done carries the transfer, over the host."""
    rows = _capture_rows()
    costs = {r["hlo_op_name"]: cost_instruction(r["hlo_op_expression"]) for r in rows}
    assert costs["copy-start.4"].kind == "async" and costs["copy-start.4"].bytes_accessed == 0
    done = costs["copy-done.4"]
    size = 5 * 1024 * 1024 * 256 * 4
    assert done.kind == "async" and done.link == "host" and done.link_bytes == size
    assert costs["all-reduce"].kind == "collective"
    fus = costs["broadcast_add_fusion"]
    assert fus.kind == "compute" and fus.bytes_accessed == 2 * size   # XProf: 10737418240
    assert costs["broadcast.2"].bytes_written == size


def _capture_rows():
    d = json.loads(gzip.decompress((FIX / "tpu_inference_2.hlo_stats.json.gz").read_bytes()))
    cols = [c["id"] for c in d["cols"]]
    return [dict(zip(cols, [c.get("v") for c in r["c"]])) for r in d["rows"]]


def test_roofline_uses_links():
    from perfmodel.hardware import TPU_LINKS, TPU_SPECS
    spec, links = TPU_SPECS["tpu-v6e"], TPU_LINKS["tpu-v6e"]
    host = cost_instruction("%d = f32[1024]{0:S(5)} copy-done((f32[1024]{0:S(5)}, f32[1024]{0}, "
                            "u32[]{:S(2)}) %s)")
    assert roofline_s(host, spec, links) == pytest.approx(4096 / links.host_bytes_per_s)
    assert roofline_s(host, spec) == pytest.approx(8192 / spec.hbm_bytes_per_s)


LOOP = """HloModule loop

%body (b: (s32[], f32[8,64], f32[6,64,64])) -> (s32[], f32[8,64], f32[6,64,64]) {
  %b = (s32[], f32[8,64]{1,0}, f32[6,64,64]{2,1,0}) parameter(0)
  %i = s32[] get-tuple-element(%b), index=0
  %x = f32[8,64]{1,0} get-tuple-element(%b), index=1
  %w = f32[6,64,64]{2,1,0} get-tuple-element(%b), index=2
  %one = s32[] constant(1)
  %z = s32[] constant(0)
  %ws = f32[1,64,64]{2,1,0} dynamic-slice(%w, %i, %z, %z), dynamic_slice_sizes={1,64,64}
  %wb = f32[64,64]{1,0} bitcast(%ws)
  %y = f32[8,64]{1,0} dot(%x, %wb), lhs_contracting_dims={1}, rhs_contracting_dims={0}
  %n = s32[] add(%i, %one)
  ROOT %t = (s32[], f32[8,64]{1,0}, f32[6,64,64]{2,1,0}) tuple(%n, %y, %w)
}

%cond (c: (s32[], f32[8,64], f32[6,64,64])) -> pred[] {
  %c = (s32[], f32[8,64]{1,0}, f32[6,64,64]{2,1,0}) parameter(0)
  %ci = s32[] get-tuple-element(%c), index=0
  %lim = s32[] constant(6)
  ROOT %lt = pred[] compare(%ci, %lim), direction=LT
}

%neg (a: f32[8,64]) -> f32[8,64] {
  %a = f32[8,64]{1,0} parameter(0)
  ROOT %r = f32[8,64]{1,0} negate(%a)
}

%big (a: f32[8,64]) -> f32[8,64] {
  %a = f32[8,64]{1,0} parameter(0)
  %e = f32[8,64]{1,0} exponential(%a)
  ROOT %r = f32[8,64]{1,0} multiply(%e, %e)
}

ENTRY %main (x: f32[8,64], w: f32[6,64,64], p: pred[]) -> f32[8,64] {
  %x = f32[8,64]{1,0} parameter(0)
  %w = f32[6,64,64]{2,1,0} parameter(1)
  %p = pred[] parameter(2)
  %z = s32[] constant(0)
  %t = (s32[], f32[8,64]{1,0}, f32[6,64,64]{2,1,0}) tuple(%z, %x, %w)
  %loop = (s32[], f32[8,64]{1,0}, f32[6,64,64]{2,1,0}) while(%t), condition=%cond, body=%body%BC%
  %h = f32[8,64]{1,0} get-tuple-element(%loop), index=1
  %c = f32[8,64]{1,0} call(%h), to_apply=%neg
  ROOT %k = f32[8,64]{1,0} conditional(%p, %c, %c), true_computation=%neg, false_computation=%big
}
"""


@pytest.mark.parametrize("bc", ["", ', backend_config={"known_trip_count":{"n":"6"}}'])
def test_while_call_conditional(bc):
    text = LOOP.replace("%BC%", bc)
    entry, comps = parse_hlo(text)
    loop = next(i for i in comps[entry] if i.opcode == "while")
    assert trip_count(loop, comps) == 6
    ops = {c.name: c for c in program_ops(text)}
    assert ops["y"].count == 6 and ops["ws"].count == 6 and ops["lt"].count == 7
    assert ops["ws"].cost.bytes_read == 64 * 64 * 4 + 3 * 4       # slice + indices, not 6x
    assert "e" in ops and ops["r"].instr.opcode == "multiply"     # conditional: the max branch
    t = program_totals(text)["all"]
    dot = 2 * 8 * 64 * 64
    assert t["flops"] == 6 * (dot + 1) + 7 + 512 + 512 * 1       # + add, compare, neg, multiply
    assert t["transcendentals"] == 512
    hl = executed_ops(text)                                       # the op list used by predict
    assert sum(o.opcode == "dot" for o in hl) == 6
    assert totals(hl)["flops"] == t["flops"]


def test_unknown_trip_count_warns_and_counts_once():
    text = LOOP.replace("%BC%", "").replace("compare(%ci, %lim)", "compare(%ci, %ci)")
    with pytest.warns(UserWarning, match="trip count unknown"):
        ops = {c.name: c for c in program_ops(text)}
    assert ops["y"].count == 1


@pytest.mark.parametrize("text,match", [
    ("garbage", "expected one HLO instruction"),
    ("%a = f32[8]{0} add(%x, %y)", "no operand types"),
    ("%a = f32[8] add(%x, %y)\n%b = f32[8] add(%x, %y)", "one line"),
])
def test_bad_text_raises_a_clear_error(text, match):
    with pytest.raises(InstructionParseError, match=match) as e:
        cost_instruction(text)
    assert isinstance(e.value, HwdistillError) and isinstance(e.value, ValueError)
    assert text[:8] in str(e.value)


def test_operand_count_mismatch():
    with pytest.raises(InstructionParseError, match="1 operand type"):
        cost_instruction("%a = f32[8]{0} add(%x, %y)", ["f32[8]"])
    with pytest.raises(InstructionParseError, match="not an HLO type"):
        cost_instruction("%a = f32[8]{0} add(%x, %y)", ["f32[8]", "nonsense"])


def test_cpu_fixture_op_list_unchanged():
    """The shipped op-list table and the CPU model rely on today's op lists."""
    t = totals(executed_ops((FIX / "cpu_tiny.hlo.txt").read_text()))
    assert (t["ops"], t["flops"], t["bytes_accessed"]) == (32, 848468.0, 422824.0)


# -- a scanned model against its unrolled twin ---------------------------------------------

def _scan_pair(sharding=None, dtype="float32"):
    import jax
    import jax.numpy as jnp
    L, B, H = 4, 16, 128

    def layer(x, w):
        return jnp.tanh(x @ w[0]) @ w[1]

    def scanned(x, ws):
        return jax.lax.scan(lambda c, w: (layer(c, w), None), x, ws)[0]

    def unrolled(x, ws):
        for i in range(L):
            x = layer(x, ws[i])
        return x

    dt = jnp.dtype(dtype)
    x = jax.ShapeDtypeStruct((B, H), dt, sharding=sharding)
    ws = jax.ShapeDtypeStruct((L, 2, H, H), dt, sharding=sharding)
    return [jax.jit(f).lower(x, ws).compile().as_text() for f in (scanned, unrolled)], L, H


def test_scan_over_layers_costs_like_unrolled_cpu():
    (scan, unroll), L, H = _scan_pair()
    assert "while(" in scan
    ts, tu = program_totals(scan)["all"], program_totals(unroll)["all"]
    assert ts["flops"] == pytest.approx(tu["flops"], rel=1e-3)
    assert totals(executed_ops(scan))["flops"] == pytest.approx(tu["flops"], rel=1e-3)
    # the body slices one layer's weights: the stacked buffer is not read whole L times
    assert ts["bytes_read"] < L * (L * 2 * H * H * 4)


def test_scan_over_layers_costs_like_unrolled_tpu_aot():
    import jax
    from perfmodel.aot import AotUnavailableError, _device
    try:
        dev = _device("tpu-v6e")
    except AotUnavailableError as e:
        pytest.skip(str(e))
    # bf16: with f32 weights the TPU compiler converts the stacked weights once outside the loop
    # (a real op the unrolled program fuses away), which is not what this test is about
    (scan, unroll), _, _ = _scan_pair(jax.sharding.SingleDeviceSharding(dev), "bfloat16")
    assert "while(" in scan
    ts, tu = program_totals(scan)["all"], program_totals(unroll)["all"]
    assert ts["flops"] == pytest.approx(tu["flops"], rel=1e-3)


def test_async_transfer_overlaps_the_ops_between_start_and_done():
    from perfmodel.hlo import _parse_instr
    from perfmodel.hlo_cost import exposed_seconds
    lines = [
        "%cs = (f32[1000]{0}, f32[1000]{0:S(5)}, u32[]) copy-start(f32[1000]{0:S(5)} %p)",
        "%f = f32[1000]{0} add(f32[1000]{0} %a, f32[1000]{0} %b)",
        "%cd = f32[1000]{0} copy-done((f32[1000]{0}, f32[1000]{0:S(5)}, u32[]) %cs)",
    ]
    seq = [(_parse_instr(t).name, _parse_instr(t), cost_instruction(t)) for t in lines]
    times = {"compute": 3.0, "async": 5.0}
    out = exposed_seconds(seq, lambda c: times.get(c.kind, 0.0) if c.bytes_accessed else 0.0)
    assert out == [0.0, 3.0, 2.0]          # 5 s transfer, 3 s of it hidden behind the add


def test_specs_named_as_profilers_name_them():
    from perfmodel.hardware import spec_for_device_type, target_for_device_type
    assert target_for_device_type("TPU v6 Lite") == "tpu-v6e"
    assert target_for_device_type("TPU v5") == "tpu-v5p"
    core, chip = spec_for_device_type("TPU v5", "core"), spec_for_device_type("TPU v5")
    assert core.peak_flops_per_s == chip.peak_flops_per_s / 2       # two TensorCores per v5p
    assert spec_for_device_type("TPU v6 Lite", "core").peak_flops_per_s == 918e12
    with pytest.raises(HwdistillError, match="unknown profiler device type"):
        target_for_device_type("TPU v99")


def test_async_start_wrapping_a_computation_costs_its_ops():
    text = """HloModule a

%wrapped (p: f32[64,64], q: f32[64,64]) -> f32[64,64] {
  %p = f32[64,64]{1,0} parameter(0)
  %q = f32[64,64]{1,0} parameter(1)
  ROOT %d = f32[64,64]{1,0} dot(%p, %q), lhs_contracting_dims={1}, rhs_contracting_dims={0}
}

ENTRY %e (x: f32[64,64]) -> f32[64,64] {
  %x = f32[64,64]{1,0} parameter(0)
  %s = ((f32[64,64]{1,0}, f32[64,64]{1,0}), f32[64,64]{1,0}, s32[]) async-start(%x, %x), calls=%wrapped
  ROOT %r = f32[64,64]{1,0} async-done(%s)
}
"""
    ops = program_ops(text)
    assert [c.name for c in ops] == ["d"] and ops[0].cost.flops == 2 * 64 ** 3
