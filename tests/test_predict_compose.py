"""Composed prediction (perfmodel.parts) against the exact 1/2/3-layer method, and where op
lists come from (disk cache, shipped table, compiles). Tiny programs: the file runs in well
under a minute."""

import gzip
import json
import shutil

import numpy as np
import pytest
import xgboost as xgb

from distill import StudentConfig, Workload
from perfmodel import parts
from perfmodel.features import feature_matrix
from perfmodel.hardware import spec_for
from perfmodel.latency_model import LatencyModel
from perfmodel.opcache import OpListCache, ShippedOpLists, program_key
from perfmodel.predict import Predictor

WL = Workload(2, 16)
_T = dict(vocab_size=1000, max_positions=64, pooler=False)
CONFIGS = [
    # plain BERT with a head count that is not the reference's (4 heads of 16)
    StudentConfig(num_layers=3, hidden_size=64, num_heads=4, ffn_size=128, **_T),
    # bottleneck, three FFNs, factorised embedding, kq sharing, one head
    StudentConfig(num_layers=4, hidden_size=96, intra_size=64, num_heads=1, ffn_size=64,
                  num_ffn=3, embedding_size=32, kq_shared_bottleneck=True, **_T),
    # NoNorm + ReLU (the last layer fuses into one ynn fusion), bottleneck, factorised embedding
    StudentConfig(num_layers=2, hidden_size=128, intra_size=64, num_heads=4, ffn_size=128,
                  num_ffn=2, embedding_size=32, activation="relu", normalization="nonorm", **_T),
]
# measured: composed op, flop and byte totals equal the exact ones on these configs; the worst
# case seen on tiny programs was NoNorm + factorised embedding without a bottleneck, off by
# 2.5e-4 (the embedding's NoNorm is re-computed inside the last layer's fusion). Over 2 x 60
# random default-space architectures see benchmarks/results/predict_speed.json
TOL = 1e-3


def _tiny_model(ops) -> LatencyModel:
    """A small XGBoost op model on made-up targets, with op weights in its composition: the
    composed prediction must follow any per-op model, not only the analytic one."""
    spec = spec_for("cpu")
    X = feature_matrix(ops, spec)
    y = np.log1p(X[:, 0] + 0.1 * X[:, 2])          # a function of log flops and log bytes
    booster = xgb.XGBRegressor(n_estimators=20, max_depth=3, n_jobs=1).fit(X, y)
    return LatencyModel(booster, (5.0, 0.9, 1.5), spec, "test", {},
                        op_weights=((1.0, 1e4), (0.7, 1.1)))


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    """Every program of the exact and the composed method, compiled once into one cache."""
    d = tmp_path_factory.mktemp("oplists")
    comp = Predictor("cpu", cache=OpListCache(d), table=None)
    exact = Predictor("cpu", cache=OpListCache(d), exact=True, table=None)
    for c in CONFIGS:
        comp.totals(c, WL)
        exact.totals(c, WL)
    ops = [o for (cfg, wl) in list(exact._programs) for o in exact.program_ops(cfg, wl)]
    return d, _tiny_model(ops), comp


def _same(p, q):
    return (p.latency_ms, p.n_ops, p.roofline_ms) == (q.latency_ms, q.n_ops, q.roofline_ms)


def _rel(a, b):
    return abs(a - b) / max(abs(b), 1e-30)


@pytest.mark.parametrize("i", range(len(CONFIGS)))
def test_composition_agrees_with_the_exact_method(shared, i):
    d, model, _ = shared
    cfg = CONFIGS[i]
    exact = Predictor("cpu", model, cache=OpListCache(d), exact=True, table=None)
    comp = Predictor("cpu", model, cache=OpListCache(d), table=None)
    assert not comp.exact                                  # composition is the CPU default
    for L in sorted({1, 2, cfg.num_layers, 7}):
        c = cfg.replace(num_layers=L)
        te, tc = exact.totals(c, WL), comp.totals(c, WL)
        for q in ("n_ops", "flops", "bytes_accessed", "roofline_s", "pred_us"):
            assert _rel(tc[q], te[q]) <= TOL, (cfg, L, q, tc[q], te[q])
        pe, pc = exact.predict(c, WL), comp.predict(c, WL)
        assert _rel(pc.latency_ms, pe.latency_ms) <= TOL and pc.calibrated
    assert comp.stats()["signatures"] == 1 and comp.compiles == 0


def test_a_reference_signature_costs_what_the_exact_method_costs():
    cfg = StudentConfig(num_layers=2, hidden_size=64, num_heads=2, ffn_size=64, **_T)
    assert parts.references(cfg) == {cfg.replace(num_layers=1): 1}
    assert parts.plan(cfg) == parts.plan(cfg, exact=True) and len(parts.plan(cfg)) == 3
    # a sibling with another FFN stack shares the attention and embedding references: 3 more
    sib = parts.plan(cfg.replace(ffn_size=128, num_ffn=2, num_layers=5))
    assert len(set(sib) - set(parts.plan(cfg))) == 3


def test_second_predictor_on_the_same_cache_compiles_nothing(shared):
    d, _, comp = shared
    n = comp.stats()["programs"]
    assert comp.compiles == n == len({p for c in CONFIGS for p in parts.programs(c)})
    b = Predictor("cpu", cache=OpListCache(d), table=None)
    for c in CONFIGS:
        assert _same(b.predict(c, WL), comp.predict(c, WL))
    assert b.compiles == 0 and b.cache.hits == n and b.cache.misses == 0


def test_a_corrupt_cache_entry_is_recompiled(shared, tmp_path):
    d, _, comp = shared
    shutil.copytree(d, tmp_path / "copy")
    victim = sorted((tmp_path / "copy").rglob("*.json.gz"))[0]
    victim.write_bytes(b"\x1f\x8b not gzip")
    c = Predictor("cpu", cache=OpListCache(tmp_path / "copy"), table=None)
    with pytest.warns(UserWarning, match="corrupt"):
        for cfg in CONFIGS:
            assert _same(c.predict(cfg, WL), comp.predict(cfg, WL))
    assert c.compiles == 1 and victim.exists()


def test_shipped_table_serves_op_lists_and_is_ignored_after_a_version_change(
        shared, tmp_path, monkeypatch):
    d, _, comp = shared
    cfg = CONFIGS[2]
    cache = OpListCache(d)
    table = {program_key("cpu", p, WL): cache.get("cpu", p, WL) for p in parts.programs(cfg)}
    path = ShippedOpLists.write(tmp_path / "oplists_cpu.json.gz", "cpu", table,
                                {"note": "test"})
    raw = json.loads(gzip.decompress(path.read_bytes()))
    assert len(raw["ops"]) < sum(len(v) for v in raw["programs"].values())  # ops stored once
    shipped = ShippedOpLists(path)
    assert shipped.info["valid_here"] == {"cpu": True}
    b = Predictor("cpu", cache=None, table=shipped)
    assert _same(b.predict(cfg, WL), comp.predict(cfg, WL))
    assert b.compiles == 0 and shipped.hits == len(table)
    # other compiler flags (or versions): the table's keys no longer match, programs compile
    monkeypatch.setenv("XLA_FLAGS", "--xla_cpu_enable_fast_math=false")
    stale = ShippedOpLists(path)
    assert stale.info["valid_here"] == {"cpu": False}
    c = Predictor("cpu", cache=None, table=stale)
    prog = min(parts.plan(cfg), key=lambda p: p.num_layers)
    assert c.program_totals(prog, WL)["n_ops"] == b.program_totals(prog, WL)["n_ops"]
    assert c.compiles == 1 and stale.hits == 0


def test_tpu_targets_stay_exact():
    assert Predictor("tpu-v5e").exact and not Predictor("cpu").exact
    assert Predictor("cpu", exact=True).exact
