"""Ops that grow with depth (perfmodel.growth): with NoNorm, XLA:CPU re-computes the residual
chain in every layer's fusions, so the linear 2/3-layer extrapolation under-counts deep
programs; the growth-corrected one must equal the compiled program."""

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from distill import StudentConfig, Workload
from perfmodel import growth as growth_mod
from perfmodel import parts
from perfmodel.growth import layer_growth
from perfmodel.hlo import HloOp, Shape, executed_ops, totals
from perfmodel.predict import Predictor
from perfmodel.program import ANALYSIS_OPTIONS, compile_local

WL = Workload(2, 16)
_T = dict(vocab_size=1000, max_positions=64, pooler=False)
NONORM = StudentConfig(num_layers=6, hidden_size=64, num_heads=2, ffn_size=64, num_ffn=2,
                       activation="relu", normalization="nonorm", **_T)


def _op(name, flops, nbytes, fused, operands, dims=(32, 64)):
    return HloOp(name=name, opcode="fusion", fusion_kind="kLoop",
                 fused_opcodes=tuple(sorted(fused)),
                 result=(Shape("f32", dims),), operands=tuple(operands), flops=float(flops),
                 transcendentals=0.0, bytes_accessed=float(nbytes))


@st.composite
def progressions(draw):
    """Programs of n layers: static ops repeated per layer, plus per layer one fusion whose
    flops, bytes, fused ops and operands grow by a constant step (what NoNorm does)."""
    f0, df = draw(st.integers(1, 10**6)), draw(st.integers(0, 10**5))
    b0, db = draw(st.integers(1, 10**6)), draw(st.integers(0, 10**5))
    n_add, extra_in = draw(st.integers(0, 5)), draw(st.integers(0, 3))
    static = [_op(f"s{i}", draw(st.integers(0, 10**6)), draw(st.integers(1, 10**6)), ("dot",),
                  (Shape("f32", (32, 64)),), dims=(32, 64 + i)) for i in range(draw(
                      st.integers(0, 3)))]
    vec = Shape("f32", (64,))

    def grown(j):
        return _op(f"g{j}", f0 + j * df, b0 + j * db, ("add",) * (1 + j * n_add),
                   (Shape("f32", (32, 64)),) + (vec,) * (j * extra_in))

    def program(n):
        return [o for _ in range(n) for o in static] + [grown(j) for j in range(1, n + 1)]
    return program, grown


def _sums(ops):
    return {"ops": len(ops), "flops": sum(o.flops for o in ops),
            "bytes": sum(o.bytes_accessed for o in ops),
            "fused": sum(len(o.fused_opcodes) for o in ops),
            "operands": sum(len(o.operands) for o in ops)}


@given(progressions(), st.integers(4, 12))
@settings(max_examples=60, deadline=None)
def test_a_progression_is_extrapolated_exactly(prog, L):
    program, grown = prog
    g = layer_growth(program(2), program(3), program(4))
    assert g is not None
    plus, minus = g.correction(L)
    lin = _sums(program(2))
    d3 = {k: _sums(program(3))[k] - lin[k] for k in lin}
    got = {k: lin[k] + (L - 2) * d3[k] + _sums(plus)[k] - _sums(minus)[k] for k in lin}
    assert got == pytest.approx(_sums(program(L)))
    for k in range(5, L + 1):
        (s, o), = [(s, o) for s, o in g.layer_ops(k)]
        assert s == 1 and dataclasses.replace(o, name="") == dataclasses.replace(
            grown(k), name="")


def test_changes_that_do_not_pair_are_not_extrapolated():
    a = _op("a", 10, 10, ("add",), ())
    b = dataclasses.replace(a, opcode="copy", flops=20.0)
    assert layer_growth([a], [a, a], [a, a, a]).pairs == ()            # no growth
    assert layer_growth([a], [a, a], [a, a, b]) is None                 # another op
    assert layer_growth([a], [a, a], [a, a, a, a]) is None              # another count
    shrink = layer_growth([a], [a, _op("x", 10, 10, ("add",) * 3, ())],
                          [a, _op("x", 10, 10, ("add",) * 3, ()), _op("y", 10, 10, ("add",) * 2,
                                                                       ())])
    assert shrink.correction(6) is not None and shrink.correction(7) is None  # 3, 2, 1, 0, -1


def _compiled(cfg):
    return totals(executed_ops(compile_local(cfg, WL, compiler_options=ANALYSIS_OPTIONS)
                               .hlo_text))


@pytest.fixture(scope="module")
def predictor():
    return Predictor("cpu", exact=True, table=None)


@pytest.mark.parametrize("L", [5, 6])
def test_nonorm_programs_grow_and_the_corrected_extrapolation_is_exact(predictor, L):
    cfg = NONORM.replace(num_layers=L)
    want = _compiled(cfg)
    got = predictor.op_list_totals(cfg, WL)
    assert got["n_ops"] == want["ops"]
    assert got["flops"] == pytest.approx(want["flops"], rel=1e-9)
    assert got["bytes_accessed"] == pytest.approx(want["bytes_accessed"], rel=1e-9)
    # NoNorm does grow (the test means it): the linear 2/3-layer extrapolation under-counts
    t2, t3 = (predictor.program_totals(cfg.replace(num_layers=n), WL) for n in (2, 3))
    linear = t2["bytes_accessed"] + (L - 2) * (t3["bytes_accessed"] - t2["bytes_accessed"])
    assert want["bytes_accessed"] > linear


def test_layernorm_programs_do_not_grow():
    """Why only NoNorm signatures pay a 4-layer compile (growth.grows_with_depth)."""
    cfg = NONORM.replace(normalization="layernorm", activation="gelu")
    p = [executed_ops(compile_local(cfg.replace(num_layers=n), WL,
                                    compiler_options=ANALYSIS_OPTIONS).hlo_text)
         for n in (2, 3, 4)]
    assert layer_growth(*p).pairs == ()
    assert not growth_mod.grows_with_depth("layernorm") and len(parts.programs(cfg)) == len(
        parts.plan(cfg))


def test_growth_that_is_no_progression_falls_back_to_the_compiled_program(monkeypatch):
    monkeypatch.setattr("perfmodel.predict.layer_growth", lambda *a: None)
    pred = Predictor("cpu", exact=True, table=None)
    cfg = NONORM.replace(num_layers=5)
    got, want = pred.op_list_totals(cfg, WL), _compiled(cfg)
    assert got["flops"] == pytest.approx(want["flops"], rel=1e-9) and got["n_ops"] == want["ops"]
    assert pred.compiles == 4 + 1                   # 1/2/3/4 layers, then the 5-layer program
