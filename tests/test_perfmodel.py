import gzip
import json
import math
from pathlib import Path

import numpy as np
import pytest

from distill import StudentConfig, Workload
from perfmodel.hardware import TPU_SPECS, spec_for
from perfmodel.hlo import HloOp, HloParseError, executed_ops, totals
from perfmodel.latency_model import LatencyModel, ModelError
from perfmodel.predict import Predictor
from perfmodel.profile import ProfileMismatchError, join_profile, program_key
from perfmodel.program import compile_local
from perfmodel.trace import TraceError, load_trace, op_stats, parse_events, xplane_to_trace_json
from search.space_v1 import SPACE_V1

FIX = Path(__file__).parent / "fixtures"


def _rel(a, b):
    return abs(a - b) / b


def test_cpu_hlo_flops_and_bytes_match_cost_analysis():
    t = totals(executed_ops((FIX / "cpu_tiny.hlo.txt").read_text()))
    ca = json.loads((FIX / "cpu_tiny.cost.json").read_text())
    assert _rel(t["flops"], ca["flops"]) < 1e-3
    assert _rel(t["bytes_accessed"], ca["bytes accessed"]) < 1e-3


def test_tpu_hlo_flops_match_and_estimated_cycles_present():
    ops = executed_ops((FIX / "tpu_v5e_tiny.hlo.txt").read_text())
    t = totals(ops)
    ca = json.loads((FIX / "tpu_v5e_tiny.cost.json").read_text())
    assert _rel(t["flops"], ca["flops"]) < 1e-3
    assert t["transcendentals"] == ca["transcendentals"]
    cycles = [o.estimated_cycles for o in ops if not math.isnan(o.estimated_cycles)]
    assert len(cycles) >= len(ops) // 3 and all(c > 0 for c in cycles)
    assert any(s.tiling.startswith("T(") for o in ops for s in o.result)  # TPU tiling parsed
    assert all(HloOp.from_dict(o.to_dict()) == o for o in ops)


def test_live_students_match_cost_analysis():
    for cfg in [SPACE_V1.decode([1, 2, 1, 0, 1, 2, 1, 1, 1, 1]),
                StudentConfig(2, 64, 4, 128, intra_size=32, kq_shared_bottleneck=True,
                              num_ffn=2, normalization="nonorm", vocab_size=1000)]:
        c = compile_local(cfg, Workload(2, 32))
        t = totals(executed_ops(c.hlo_text))
        assert _rel(t["flops"], c.flops) < 1e-4
        assert _rel(t["bytes_accessed"], c.bytes_accessed) < 1e-3


def test_hlo_parse_errors():
    with pytest.raises(HloParseError, match="no ENTRY"):
        executed_ops("HloModule m\n")
    with pytest.raises(HloParseError, match="not an HLO instruction"):
        executed_ops("HloModule m\nENTRY %e (p: f32[2]) -> f32[2] {\n  garbage line\n}\n")


def test_cpu_trace_joins_every_op():
    hlo = (FIX / "cpu_tiny.hlo.txt").read_text()
    prof = join_profile(hlo, load_trace(FIX / "cpu_tiny.trace.json.gz"), warmup_runs=1)
    assert prof.not_in_trace == ()
    assert len(prof.ops) == len(executed_ops(hlo))
    assert all(s.n_runs == 5 and s.time_us_median > 0 and s.time_us_iqr >= 0
               for _, s in prof.ops)
    assert len(prof.run_sums_us) == 5 and prof.program == program_key(hlo)


def test_trace_of_another_program_is_refused():
    hlo = (FIX / "cpu_tiny.hlo.txt").read_text()
    trace = load_trace(FIX / "cpu_tiny.trace.json.gz")
    for e in trace["traceEvents"]:
        if "hlo_op" in e.get("args", {}):
            e["args"]["hlo_op"] = "fusion.9999"
    with pytest.raises(ProfileMismatchError, match="fusion.9999"):
        join_profile(hlo, trace)
    with pytest.raises(TraceError, match="no op events of module 'other'"):
        op_stats(parse_events(trace), "other")
    with pytest.raises(TraceError, match="all dropped as warm-up"):
        op_stats(parse_events(trace), "jit_f", warmup_runs=99)


def test_corrupt_trace_files(tmp_path):
    raw = (FIX / "cpu_tiny.trace.json.gz").read_bytes()
    (tmp_path / "t.json.gz").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(TraceError, match="corrupt"):
        load_trace(tmp_path / "t.json.gz")
    (tmp_path / "u.json").write_text('{"foo": 1}')
    with pytest.raises(TraceError, match="no traceEvents"):
        load_trace(tmp_path / "u.json")
    (tmp_path / "x.pb").write_bytes(b"\x00\x01garbage")
    with pytest.raises(TraceError):
        xplane_to_trace_json(tmp_path / "x.pb")


def test_tpu_xplane_parsed_against_xprof_hlo_stats():
    """Real TPU v6e capture: our per-op totals against XProf's own hlo_stats tool."""
    before = sorted(FIX.iterdir())
    events = parse_events(xplane_to_trace_json(FIX / "tpu_inference_2.xplane.pb"))
    assert sorted(FIX.iterdir()) == before        # XProf's cache files go elsewhere
    assert {e.device for e in events} >= {f"/device:TPU:{i}" for i in range(4)}
    ours_n, ours_t = {}, {}
    for e in events:
        ours_n[e.op] = ours_n.get(e.op, 0) + 1
        ours_t[e.op] = ours_t.get(e.op, 0.0) + e.dur_us
    stats = json.loads(gzip.decompress((FIX / "tpu_inference_2.hlo_stats.json.gz").read_bytes()))
    cols = [c["id"] for c in stats["cols"]]
    rows = [dict(zip(cols, [c.get("v") for c in r["c"]])) for r in stats["rows"]]
    for r in rows:
        name = r["hlo_op_name"]
        assert name in ours_n, name
        assert ours_n[name] == r["occurrences"]
        assert _rel(ours_t[name], r["total_time"]) < 1e-3
    s, sums = op_stats(events, "jit_f", device="/device:TPU:0", warmup_runs=1)
    assert s["copy-done"].time_us_median > 1000 and len(sums) > 10


def test_layer_extrapolation_is_exact():
    pred = Predictor("cpu")
    wl = Workload(2, 32)
    cfg = StudentConfig(4, 64, 2, 128, intra_size=32, num_ffn=2, vocab_size=1000)
    ext = pred.op_list_totals(cfg, wl)
    full = totals(executed_ops(compile_local(cfg, wl).hlo_text))
    assert ext["flops"] == full["flops"]
    assert ext["bytes_accessed"] == full["bytes_accessed"]
    assert ext["n_ops"] == full["ops"]
    n = pred.compiles
    pred.predict(cfg.replace(num_layers=7), wl)  # same signature: no new compile
    assert pred.compiles == n


def test_tpu_aot_prediction_is_uncalibrated_with_xla_estimate():
    p = Predictor("tpu-v5e").predict(StudentConfig(2, 64, 4, 128, vocab_size=1000),
                                     Workload(2, 32, "bfloat16"))
    assert not p.calibrated and p.method == "analytic-roofline"
    assert p.latency_ms > 0 and p.xla_estimated_cycles > 0


def test_unknown_hardware_and_bad_models(tmp_path):
    with pytest.raises(ValueError, match="unknown hardware target 'tpu-v9'.*tpu-v5e"):
        spec_for("tpu-v9")
    with pytest.raises(ModelError, match="not a latency model artifact"):
        LatencyModel.load(tmp_path)
    (tmp_path / "meta.json").write_text("{bad")
    (tmp_path / "op_model.json").write_text("{}")
    with pytest.raises(ModelError, match="corrupt"):
        LatencyModel.load(tmp_path)
    assert TPU_SPECS["tpu-v6e"].peak_flops_per_s == 918e12


def test_frozen_v1_space_still_draws_the_profiled_architectures():
    """benchmarks/store/cpu.db was profiled from SPACE_V1.sample(80, 0): it must not change."""
    assert SPACE_V1.sample(5, 3) == SPACE_V1.sample(5, 3)
    assert SPACE_V1.sample(2, 0)[0] == SPACE_V1.decode(
        np.random.default_rng(0).integers(0, SPACE_V1.upper + 1))


def test_drift_corrected_measurement_against_itself_reads_the_anchor():
    from perfmodel.validate import measure_interleaved
    cfg, wl = StudentConfig(num_layers=1, hidden_size=64, num_heads=2, ffn_size=128), \
        Workload(1, 16)
    # a program timed against itself has ratio ~1: its corrected latency is the anchor
    m = measure_interleaved([(cfg, wl)], rounds=2, budget_s=0.1, reference=(cfg, wl),
                            reference_ms=10.0)
    assert m.reference_ms == 10.0 and m.session_reference_ms > 0
    assert m.raw_rounds_ms.shape == m.rounds_ms.shape == (1, 2)
    assert 7.0 < m.latency_ms[0] < 13.0
    plain = measure_interleaved([(cfg, wl)], rounds=2, budget_s=0.1)
    assert plain.raw_rounds_ms is None and math.isnan(plain.reference_ms)
    assert plain.raw_noise_within_10pct == plain.noise_within_10pct


def test_interleaved_programs_share_one_set_of_parameters_per_architecture():
    # a validation keeps every program alive; per-program parameters OOM-killed 348 programs
    import numpy as np
    from perfmodel.program import concrete_args
    from perfmodel.validate import shared_args
    a = StudentConfig(num_layers=1, hidden_size=64, num_heads=2, ffn_size=128)
    b = StudentConfig(num_layers=2, hidden_size=64, num_heads=2, ffn_size=128)
    pairs = [(a, Workload(1, 16)), (b, Workload(1, 16)), (a, Workload(4, 8)),
             (a, Workload(1, 16, "bfloat16"))]
    args = shared_args(pairs)
    assert args[0][0] is args[2][0]                      # same architecture and dtype
    assert args[0][0] is not args[1][0] and args[0][0] is not args[3][0]
    for (cfg, wl), (params, ids, mask) in zip(pairs, args):
        assert ids.shape == mask.shape == (wl.batch_size, wl.seq_len)
        ref = concrete_args(cfg, wl)                     # the same values as unshared
        assert np.array_equal(ids, ref[1]) and np.array_equal(mask, ref[2])


def test_stored_latency_lookup_and_program_spec_errors():
    from measurements import LatencyRecord
    from perfmodel.validate import parse_program, stored_latency_ms
    cfg, wl = parse_program("bert-tiny@8,128")
    assert cfg.num_layers == 2 and wl.batch_size == 8 and wl.seq_len == 128
    from perfmodel.sweep import PROFILE_TAG
    recs = [LatencyRecord("fp", cfg.to_dict(), wl.to_dict(), ms, 0.1, ms, 7, tag=PROFILE_TAG)
            for ms in (4.0, 6.0)]
    assert stored_latency_ms(recs, cfg, wl) == 5.0
    assert stored_latency_ms(recs, cfg, Workload(1, 128)) is None
    for bad in ("bert-tiny", "@8,128", "bert-tiny@"):
        with pytest.raises(ValueError, match="ARCH@WORKLOAD"):
            parse_program(bad)
    with pytest.raises((ValueError, FileNotFoundError), match="no-such-arch"):
        parse_program("no-such-arch@8,128")


def test_validation_dated_against_profiling():
    """The goal run must measure on another UTC date than the store was profiled."""
    import datetime as dt

    from hypothesis import given, strategies as st

    from measurements.errors import InputError
    from perfmodel.validate import measured_after_profiling
    day = 86400.0
    t0 = dt.datetime(2026, 11, 29, tzinfo=dt.timezone.utc).timestamp()
    late = measured_after_profiling([t0 + 14 * 3600, t0 + 18 * 3600], t0 + 23.5 * 3600)
    assert not late["another_day"] and late["hours_after_profiling"] == 5.5
    assert late["profiling_dates"] == ["2026-11-29"]
    after = measured_after_profiling([t0 + 18 * 3600], t0 + day + 300)
    assert after["another_day"] and after["measured_at"] == "2026-11-30T00:05:00+00:00"
    # a store profiled on two days, validated on the second: not another day
    assert not measured_after_profiling([t0, t0 + day + 60], t0 + day + 3600)["another_day"]
    with pytest.raises(InputError, match="profile this machine"):
        measured_after_profiling([], t0)

    @given(st.lists(st.floats(0, 30 * day), min_size=1, max_size=20), st.floats(0, 40 * day))
    def prop(offsets, at):
        r = measured_after_profiling([t0 + o for o in offsets], t0 + at)
        dates = {dt.datetime.fromtimestamp(t0 + o, dt.timezone.utc).date() for o in offsets}
        measured = dt.datetime.fromtimestamp(t0 + at, dt.timezone.utc).date()
        assert r["another_day"] == (measured not in dates)
        assert r["hours_after_profiling"] == pytest.approx((at - max(offsets)) / 3600, abs=0.01)
    prop()


def _op_signature(hlo_text):
    return sorted((o.opcode, o.fusion_kind, o.fused_opcodes, o.flops, o.bytes_accessed,
                   tuple((s.dtype, s.dims) for s in o.result)) for o in executed_ops(hlo_text))


def test_fast_analysis_compile_gives_the_op_lists_of_the_served_program():
    """Prediction compiles with LLVM optimisation off (ANALYSIS_OPTIONS): the HLO op list the
    model reads must be the one the timed, fully optimised program runs."""
    from perfmodel.program import ANALYSIS_OPTIONS
    from search import DEFAULT_SPACE
    wl = Workload(2, 32)
    cfgs = [c.config.replace(num_layers=2) for c in DEFAULT_SPACE.sample(4, 11)]
    cfgs.append(StudentConfig(num_layers=2, hidden_size=128, num_heads=2, ffn_size=128,
                              intra_size=64, num_ffn=2, embedding_size=64, activation="relu",
                              normalization="nonorm", kq_shared_bottleneck=True))
    for cfg in cfgs:
        full = compile_local(cfg, wl).hlo_text
        fast = compile_local(cfg, wl, compiler_options=ANALYSIS_OPTIONS).hlo_text
        assert _op_signature(full) == _op_signature(fast), cfg


def test_op_list_cache_pays_once_per_signature_and_survives_corruption(tmp_path):
    from perfmodel.opcache import OpListCache
    cfg = StudentConfig(num_layers=2, hidden_size=64, num_heads=2, ffn_size=128)
    wl = Workload(2, 16)
    a = Predictor("cpu", cache=OpListCache(tmp_path))
    first = a.predict(cfg, wl)
    assert a.compiles == 3
    b = Predictor("cpu", cache=OpListCache(tmp_path))        # a new process, the same disk
    assert b.predict(cfg.replace(num_layers=5), wl).n_ops > first.n_ops
    assert b.compiles == 0 and b.cache.hits == 3
    same = lambda p, q: (p.latency_ms, p.n_ops) == (q.latency_ms, q.n_ops)  # noqa: E731
    assert same(b.predict(cfg, wl), first)
    victim = next(tmp_path.rglob("*.json.gz"))
    victim.write_bytes(b"\x1f\x8b not gzip")
    c = Predictor("cpu", cache=OpListCache(tmp_path))
    with pytest.warns(UserWarning, match="corrupt"):
        assert same(c.predict(cfg, wl), first)
    assert c.compiles == 1


def test_op_model_learns_each_programs_untraced_share_by_default(real_store):
    """Traced op times sum to 0.6x-1.9x a program's untraced latency, program by program; by
    default the op model learns them scaled to the program's end-to-end label, so its op
    predictions sum to the label (in sample), which the traced target does not."""
    from collections import defaultdict

    from measurements import Store
    from perfmodel import fit_from_store, spec_for
    path, fp_id = real_store
    with Store(path, readonly=True) as st:
        scaled = fit_from_store(st, fp_id, spec_for("cpu"))
        traced = fit_from_store(st, fp_id, spec_for("cpu"), op_target="traced")
        lats = [r for r in st.latencies(fp_id) if r.tag == "profile"]
        ops = defaultdict(list)
        for o in st.op_timings(fp_id):
            ops[o.program].append(HloOp.from_dict(o.features))
    assert scaled.summary["op_target"] == "end_to_end"
    assert traced.summary["op_target"] == "traced"
    by_wl = scaled.summary["cv_e2e_by_workload"]       # out of fold, per workload
    assert {w: v["programs"] for w, v in by_wl.items()} == {"1x128 float32": 24,
                                                            "8x128 float32": 24}
    assert all(0 < v["mape"] < 1 and abs(v["median_log_bias"]) < 1 for v in by_wl.values())

    def err(model):
        return np.median([abs(math.log(model.predict_ops_us(ops[r.extra["program"]]).sum()
                                       / (r.latency_ms_median * 1e3))) for r in lats])
    assert err(scaled) < 0.5 * err(traced)
    with pytest.raises(ModelError, match="op_target"):
        with Store(path, readonly=True) as st:
            fit_from_store(st, fp_id, spec_for("cpu"), op_target="wall")


def test_an_empty_validation_is_refused_not_crashed():
    from measurements.errors import InputError
    from perfmodel.validate import measure_interleaved
    with pytest.raises(InputError, match="nothing to measure"):
        measure_interleaved([], reference=None)


def test_shipped_store_prefers_the_machines_own_grid_store(tmp_path, monkeypatch):
    """`hwdistill predict`'s hint and the benchmarks find a machine's committed store: its own
    cpu_<fp>.db first, else cpu.db if that holds it; a damaged cpu.db is an error."""
    from conftest import make_fp
    from measurements import Store
    from measurements.store import StoreError
    from perfmodel.latency_model import missing_model_message, shipped_store
    here, other = make_fp(cpu_model="Here CPU"), make_fp(cpu_model="Other CPU")
    assert shipped_store(here.id, tmp_path) is None
    with Store(tmp_path / "cpu.db") as st:
        st.register_fingerprint(other)
    assert shipped_store(here.id, tmp_path) is None
    assert shipped_store(other.id, tmp_path) == tmp_path / "cpu.db"
    own = tmp_path / f"cpu_{other.id}.db"
    with Store(own) as st:
        st.register_fingerprint(other)
    assert shipped_store(other.id, tmp_path) == own
    for f in tmp_path.glob("cpu.db*"):
        f.unlink()
    (tmp_path / "cpu.db").write_bytes(b"not a database " * 100)
    with pytest.raises(StoreError, match="cpu.db"):       # a damaged store is not skipped
        shipped_store(here.id, tmp_path)
    monkeypatch.setattr("perfmodel.latency_model.SHIPPED_STORES", tmp_path)
    msg = missing_model_message(here.id)          # the hint goes without it
    assert "no latency model" in msg and "cpu.db" not in msg
    own.rename(tmp_path / f"cpu_{here.id}.db")
    assert f"cpu_{here.id}.db was profiled on this machine" in missing_model_message(here.id)


def test_cross_validation_holds_out_whole_architectures(real_store, real_model, tmp_path):
    """The composition is fitted on out-of-fold sums of unseen architectures (every workload
    of an architecture in one fold); a store of fewer architectures than folds holds out
    programs instead."""
    from measurements import Store
    from perfmodel import fit_from_store, spec_for
    path, fp_id = real_store
    with Store(path, readonly=True) as src:
        lats = [r for r in src.latencies(fp_id) if r.tag == "profile"]
        archs = {json.dumps(dict(r.arch), sort_keys=True) for r in lats}
        assert len(archs) >= 5
        assert real_model.summary["cv"] == "5-fold, grouped by architecture"
        three = sorted(archs)[:3]
        keep = [r for r in lats if json.dumps(dict(r.arch), sort_keys=True) in three]
        ops = [o for r in keep for o in src.op_timings(fp_id, program=r.extra["program"])]
        fp = next(f for f in src.fingerprints() if f.id == fp_id)
    assert len(keep) >= 5
    with Store(tmp_path / "few.db") as dst:
        dst.register_fingerprint(fp)
        dst.put_op_timings(ops)
        dst.put_latencies(keep)
        few = fit_from_store(dst, fp_id, spec_for("cpu"))
    assert few.summary["cv"] == "5-fold, grouped by program"
    assert few.summary["programs"] == len(keep)
