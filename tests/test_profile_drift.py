"""A drift-corrected profiling sweep (perfmodel.sweep with a reference program): the reference
is profiled first as its own anchor, every other label is corrected against it and keeps what
was measured, a resumed sweep skips everything, and training scales the op times alike."""

import dataclasses
import os
import subprocess
import sys

import numpy as np
import pytest

from distill import StudentConfig, Workload
from measurements import Store, detect
from perfmodel.hardware import spec_for
from perfmodel.latency_model import fit_from_store
from perfmodel import sweep
from perfmodel.sweep import PROFILE_TAG
from measurements.timing import TimingResult

WL = Workload(1, 16)
REF = StudentConfig(num_layers=1, hidden_size=64, num_heads=2, ffn_size=128)
CFGS = [StudentConfig(num_layers=n, hidden_size=h, num_heads=2, ffn_size=2 * h)
        for n, h in ((1, 32), (2, 96), (3, 32), (1, 128))]


SWEEP = """
import sys
from distill import StudentConfig, Workload
from measurements import Store, detect
from perfmodel.sweep import profile_pairs
WL = Workload(1, 16)
REF = StudentConfig(num_layers=1, hidden_size=64, num_heads=2, ffn_size=128)
CFGS = [StudentConfig(num_layers=n, hidden_size=h, num_heads=2, ffn_size=2 * h)
        for n, h in ((1, 32), (2, 96), (3, 32), (1, 128))]
fp = detect("cpu")
with Store(sys.argv[1]) as st:
    st.register_fingerprint(fp)
    for _ in range(2):       # the second sweep is a resume
        seen = []
        res = profile_pairs(st, fp, [(c, WL) for c in CFGS], runs=3, budget_s=0.2,
                            reference=(REF, WL), progress=seen.append)
        print(res.profiled, res.skipped, len(seen))
"""


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    # in a child process: tracing segfaults in a process that has loaded libtpu for an AOT
    # compile, as earlier tests in this session do (docs/architecture.md)
    path = tmp_path_factory.mktemp("drift") / "s.db"
    out = subprocess.run([sys.executable, "-c", SWEEP, str(path)], capture_output=True,
                         text=True, timeout=600, env={**os.environ, "JAX_PLATFORMS": "cpu"})
    assert out.returncode == 0, out.stderr[-2000:]
    (first, second) = [tuple(map(int, ln.split())) for ln in out.stdout.split("\n") if ln]
    fp = detect("cpu")
    with Store(path, readonly=True) as st:
        recs = [r for r in st.latencies(fp.id) if r.tag == PROFILE_TAG]
    return fp, path, first, second, recs


def test_reference_first_then_every_label_corrected(swept):
    fp, _, first, again, recs = swept
    assert first == (len(CFGS) + 1, 0, len(CFGS) + 1)           # (profiled, skipped, progress)
    assert again == (0, len(CFGS), len(CFGS))                   # resumed: all stored
    ref = [r for r in recs if r.arch == REF.to_dict()]
    assert len(ref) == 1 and "drift_factor" not in ref[0].extra      # its own anchor
    assert 1 <= ref[0].extra["anchor_attempts"] <= sweep.ANCHOR_ATTEMPTS
    anchor = ref[0].latency_ms_median
    others = [r for r in recs if r.arch != REF.to_dict()]
    assert len(others) == len(CFGS)
    for r in others:
        e = r.extra
        assert e["reference_anchor_ms"] == pytest.approx(anchor)
        assert e["drift_factor"] == pytest.approx(anchor / e["reference_ms"])
        assert r.latency_ms_median == pytest.approx(e["uncorrected_ms"] * e["drift_factor"])
        assert 0 < e["drift_factor"] < 10 and r.n_runs >= 7
        assert e["reference"] == "1L/H64/F128@1x16" and e["program"] and e["sum_op_us"] > 0


def test_training_scales_op_times_by_the_programs_drift(swept, tmp_path):
    fp, path, *_ = swept
    spec = spec_for("cpu")
    with Store(path, readonly=True) as st:
        base = fit_from_store(st, fp.id, spec, op_target="traced")
        scaled = fit_from_store(st, fp.id, spec)            # op times scaled to the label
        ops = list(st.op_timings(fp.id))
        lats = list(st.latencies(fp.id))
    assert base.summary["drift_corrected_programs"] == len(CFGS)
    # the same measurements, every program's factor doubled: the op model learns ~2x the
    # traced times; scaled to the (unchanged) labels, the factor cancels
    with Store(tmp_path / "x2.db") as st:
        st.register_fingerprint(fp)
        st.put_op_timings(ops)
        st.put_latencies([dataclasses.replace(r, extra={
            **r.extra, "drift_factor": 2 * r.extra.get("drift_factor", 1.0)}) for r in lats])
        doubled = fit_from_store(st, fp.id, spec, op_target="traced")
        doubled_scaled = fit_from_store(st, fp.id, spec)
    from perfmodel.hlo import HloOp
    hops = [HloOp.from_dict(o.features) for o in ops]
    ratio = doubled.predict_ops_us(hops) / base.predict_ops_us(hops)
    assert 1.5 < float(np.median(ratio)) < 2.5
    assert np.allclose(doubled_scaled.predict_ops_us(hops), scaled.predict_ops_us(hops))


def _timing(median_ms, iqr_ms):
    s = median_ms / 1e3
    return TimingResult(median_s=s, iqr_s=iqr_ms / 1e3, p10_s=s, p90_s=s, ci_low_s=s,
                        ci_high_s=s, n_runs=10, n_rejected=0, converged=True)


@pytest.mark.parametrize("iqrs, kept, attempts", [
    ((34.0, 3.0, 1.0), 1, 2),          # unsteady, then steady: retaken once, the steady kept
    ((2.0,), 0, 1),                    # steady at once
    ((30.0, 20.0, 40.0, 25.0, 35.0), 1, 5),   # never steady: the steadiest of five
])
def test_the_anchor_is_retaken_until_steady(monkeypatch, iqrs, kept, attempts):
    # the scale of every corrected label is the anchor's: an unsteady timing of it (other
    # processes starting beside the sweep) is retaken, not trusted
    seq = iter([sweep.Measurement(REF, WL, 0, 0.0, 0.0, _timing(50.0 + i, q))
                for i, q in enumerate(iqrs)])
    monkeypatch.setattr(sweep, "measure_latency", lambda *a, **k: next(seq))
    monkeypatch.setattr(sweep.time, "sleep", lambda s: None)
    m, n = sweep._steady_anchor(REF, WL, None, None, 1.0)
    assert n == attempts and m.timing.median_ms == pytest.approx(50.0 + kept)


def test_training_set_targets(swept):
    # what the op model learns: op times summing to the program's end-to-end label, or the
    # traced times scaled by the program's drift factor
    from perfmodel.training_set import training_set
    fp, path, *_ = swept
    spec = spec_for("cpu")
    with Store(path, readonly=True) as st:
        e2e = training_set(st, fp.id, spec)
        traced = training_set(st, fp.id, spec, op_target="traced")
        raw = {p: sum(o.time_us_median for o in st.op_timings(fp.id) if o.program == p)
               for p in e2e.programs}
    assert len(e2e.programs) == len(CFGS) + 1 and e2e.programs == traced.programs
    for p in e2e.programs:
        assert np.expm1(e2e.y[p]).sum() == pytest.approx(e2e.label_us[p], rel=1e-9)
        assert np.expm1(traced.y[p]).sum() == pytest.approx(traced.drift[p] * raw[p], rel=1e-9)
        assert e2e.X[p].shape[0] == len(e2e.ops[p]) == len(e2e.y[p])
    X, y = e2e.stack(e2e.programs[:2])
    assert X.shape[0] == y.shape[0] == sum(len(e2e.y[p]) for p in e2e.programs[:2])


def test_the_sweep_pins_the_cpu_spec_and_every_fit_uses_it(swept, tmp_path):
    # a probe reads the host as it is that moment; fits with two probes were two models
    import json
    import sqlite3
    import warnings

    from perfmodel.hardware import CPU_SPEC_RUN, HardwareSpec, pin_cpu_spec, pinned_cpu_spec
    from perfmodel.hlo import HloOp
    fp, path, *_ = swept
    with Store(path, readonly=True) as st:
        pinned = pinned_cpu_spec(st, fp.id)
        assert pinned is not None and pinned.peak_flops_per_s > 0
        assert sum(r["kind"] == CPU_SPEC_RUN for r in st.runs()) == 1   # not again on resume
        a, b = fit_from_store(st, fp.id), fit_from_store(st, fp.id)
        ops, lats = list(st.op_timings(fp.id)), list(st.latencies(fp.id))
    assert a.spec == pinned and a.summary["spec_source"] == "pinned in the store"
    hops = [HloOp.from_dict(o.features) for o in ops]
    assert np.array_equal(a.predict_ops_us(hops), b.predict_ops_us(hops))   # reproducible
    # another spec gives another model: the pin is what keeps fits of one store alike
    other = HardwareSpec("cpu", pinned.peak_flops_per_s / 3, pinned.hbm_bytes_per_s * 2,
                         pinned.hbm_bytes, "test")
    with Store(tmp_path / "copy.db") as st:
        st.register_fingerprint(fp)
        st.put_op_timings(ops)
        st.put_latencies(lats)
        assert fit_from_store(st, fp.id).summary["spec_source"].startswith("probed")
        assert pin_cpu_spec(st, fp.id, other) == other
        assert pin_cpu_spec(st, fp.id, pinned) == other          # the first pin stays
        c = fit_from_store(st, fp.id)
    assert c.spec == other and not np.array_equal(c.predict_ops_us(hops),
                                                  a.predict_ops_us(hops))
    # a damaged pin (older than the good one) is skipped with a warning, never trusted
    db = sqlite3.connect(tmp_path / "copy.db")
    db.execute("INSERT INTO runs VALUES ('spec-bad', ?, ?, ?, 'done', 0, 1)",
               (CPU_SPEC_RUN, fp.id, json.dumps({"peak_flops_per_s": "fast"})))
    db.commit()
    db.close()
    with Store(tmp_path / "copy.db", readonly=True) as st, warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        assert pinned_cpu_spec(st, fp.id) == other
    assert any("unreadable" in str(x.message) for x in w)
