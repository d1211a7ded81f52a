"""Few-shot recalibration: anchors timed here correct predictions per workload; the correction
is stored with its session and applied only while it is fresh."""

import dataclasses
import json
import math
import sqlite3

import numpy as np
import pytest
from hypothesis import given, settings, strategies as hs

from distill import PRESETS, Workload
from measurements import LatencyRecord, Store, TimingResult, detect
from measurements.errors import InputError
from perfmodel import Predictor
from perfmodel.measure import Measurement
from perfmodel.recalibrate import (NOISE_FLOOR, Recalibration, default_anchors, estimate, latest,
                                   recalibrate, save, shrink_offsets)

W1, W2 = Workload.parse("1,16"), Workload.parse("2,16")


@pytest.fixture(scope="module")
def anchored(real_model):
    """Real anchor timings on this machine: bert-tiny at two tiny workloads."""
    pred = Predictor("cpu", real_model, exact=True)
    anchors = [("bert-tiny", PRESETS["bert-tiny"], W1), ("bert-tiny", PRESETS["bert-tiny"], W2)]
    rec, records = recalibrate(pred, detect("cpu"), anchors, budget_s=0.2)
    return pred, rec, records


def test_each_workload_is_corrected_by_its_own_anchors(anchored, real_model):
    pred, rec, records = anchored
    assert set(rec.offsets) == {str(W1), str(W2)} and len(rec.anchors) == 2 and len(records) == 2
    assert not rec.profiled_speed and rec.drift == 1.0 and rec.reference == ""
    assert rec.method == "shrunk" and rec.noise >= NOISE_FLOOR and rec.spread >= 0
    for a, r in zip(rec.anchors, records):
        assert a["measured_ms"] == pytest.approx(r.latency_ms_median) and a["predicted_ms"] > 0
        wl = W1 if a["workload"] == str(W1) else W2
        assert r.tag == "anchor" and r.workload == wl.to_dict()
        # nothing profiled to compare with: the estimate is measured / predicted
        assert a["model_error"] == 0.0
        assert a["estimate"] == pytest.approx(math.log(a["measured_ms"] / a["predicted_ms"]))
    offsets, pooled, *_ = shrink_offsets({a["workload"]: [a["estimate"]] for a in rec.anchors})
    assert rec.offsets == pytest.approx(offsets) and rec.pooled == pytest.approx(pooled)
    fixed = Predictor("cpu", real_model, exact=True, recalibration=rec)
    for wl in (W1, W2, Workload.parse("8,128")):          # 8x128 has no anchor: pooled
        before, after = pred.predict(PRESETS["bert-tiny"], wl), fixed.predict(PRESETS["bert-tiny"], wl)
        f = math.exp(rec.offsets.get(str(wl), rec.pooled))
        assert after.latency_ms == pytest.approx(before.latency_ms * f)
        assert after.interval_ms == pytest.approx(tuple(v * f for v in before.interval_ms))
        assert after.method == "learned+recalibrated" and after.calibrated


class _TenMs:                # a learned predictor that says 10 ms for everything
    model, recalibration = object(), None

    def predict(self, cfg, wl):
        return type("P", (), {"latency_ms": 10.0})()


def test_one_disturbed_anchor_cannot_move_a_workload():
    measured = iter([12.0, 12.1, 40.0])                   # the third ran beside a busy job

    def measure(cfg, wl):
        s = next(measured) / 1e3
        return Measurement(cfg, wl, 1, 1.0, 0.0, TimingResult(s, 0.0, s, s, s, s, 5, 0, True))
    rec, records = recalibrate(_TenMs(), detect("cpu"), default_anchors([W1]), measure=measure)
    # anchors that disagree are trusted less: no further than the two agreeing ones (x1.21)
    assert 1.0 <= math.exp(rec.offsets[str(W1)]) <= 1.21
    assert [r.latency_ms_median for r in records] == pytest.approx([12.0, 12.1, 40.0])


def _record(cfg, wl, ms, tag="profile"):
    return LatencyRecord("fp", cfg.to_dict(), wl.to_dict(), ms, 0.0, ms, 5, tag=tag)


def test_profiled_anchors_estimate_the_machine_not_the_model():
    """An anchor profiled at its workload is compared with its profiled latency; at a workload
    it was not profiled at, measured / predicted less the model's error on it elsewhere."""
    tiny, mini, W3 = PRESETS["bert-tiny"], PRESETS["bert-mini"], Workload.parse("4,16")
    profiled = [_record(tiny, W1, 8.0), _record(tiny, W3, 9.0),
                _record(tiny, W2, 99.0, tag="validate"),       # not a profile: ignored
                _record(mini, W2, 50.0)]                         # another architecture
    anchors = [("bert-tiny", tiny, W1), ("bert-tiny", tiny, W2), ("bert-mini", mini, W1)]
    rec = estimate(_TenMs(), "fp", anchors, [8.8, 11.0, 10.5], profiled=profiled)
    a1, a2, a3 = rec.anchors
    assert a1["estimate"] == pytest.approx(math.log(8.8 / 8.0))          # model-free
    assert a1["model_error"] == pytest.approx(math.log(8.0 / 10.0))
    error = float(np.median([math.log(0.8), math.log(0.9)]))             # bert-tiny elsewhere
    assert a2["model_error"] == pytest.approx(error)
    assert a2["estimate"] == pytest.approx(math.log(11.0 / 10.0) - error)
    # bert-mini was profiled at W2 only: that is its error at W1 too
    assert a3["model_error"] == pytest.approx(math.log(50.0 / 10.0))
    with pytest.raises(InputError, match="one per anchor"):
        estimate(_TenMs(), "fp", anchors, [8.8])


def test_a_clear_shift_is_applied_and_noise_is_not():
    # every anchor reads 20% slow (within 1%): applied nearly whole, everywhere
    offsets, pooled, noise, _ = shrink_offsets({"a": [0.18, 0.19, 0.185], "b": [0.18, 0.182]})
    assert noise == NOISE_FLOOR and math.exp(pooled) == pytest.approx(1.2, rel=0.01)
    assert all(math.exp(v) == pytest.approx(1.2, rel=0.01) for v in offsets.values())
    # one workload moved, the other not: each keeps its own
    offsets, *_ = shrink_offsets({"a": [0.29, 0.30, 0.31], "b": [-0.01, 0.0, 0.01]})
    assert offsets["a"] == pytest.approx(0.30, abs=0.02) and offsets["b"] == pytest.approx(
        0.0, abs=0.02)
    # anchors scattered by 30% around no shift: no correction
    offsets, pooled, noise, spread = shrink_offsets({"a": [0.3, -0.25, 0.02],
                                                     "b": [-0.3, 0.28, -0.01]})
    assert pooled == 0.0 and spread == 0.0 and noise > 0.2
    assert all(v == 0.0 for v in offsets.values())
    with pytest.raises(InputError, match="anchor"):
        shrink_offsets({"a": []})


def test_one_anchors_shared_error_is_not_taken_for_a_shift():
    """Three anchors at four workloads: one of them reads 12% fast at every workload (its
    profile was slow), the other two 2-7% fast. Counted as 12 independent estimates, their
    median shift is mostly kept; one architecture's estimates share its error, so the overall
    shift is shrunk further by the three architectures' disagreement."""
    wls = ["1x128", "8x128", "2x384", "64x16"]
    est = {w: [-0.12, -0.04 + 0.01 * i, -0.035 - 0.01 * i] for i, w in enumerate(wls)}
    names = {w: ["bert-tiny", "bert-mini", "mobilebert-tiny"] for w in wls}
    _, flat, _, _ = shrink_offsets(est)
    _, grouped, _, _ = shrink_offsets(est, groups=names)
    assert flat < -0.02 and flat < grouped <= 0.0
    # agreeing architectures: a real shift is applied alike with or without groups
    shift = {w: [-0.20, -0.21, -0.19] for w in wls}
    assert shrink_offsets(shift, groups=names)[1] == pytest.approx(shrink_offsets(shift)[1])
    with pytest.raises(InputError, match="anchor names"):
        shrink_offsets(shift, groups={w: ["bert-tiny"] for w in wls})


@settings(max_examples=200, deadline=None)
@given(hs.dictionaries(hs.sampled_from(["1x128", "8x128", "2x384", "64x16"]),
                       hs.lists(hs.floats(-1.0, 1.0), min_size=1, max_size=5),
                       min_size=1, max_size=4))
def test_shrinkage_never_overshoots(est):
    """The overall offset lies between 0 and the anchors' median, a workload's between the
    overall one and its own median shifted alike: shrinkage only ever pulls in."""
    g = float(np.median([v for vs in est.values() for v in vs]))
    names = {w: [f"anchor{i}" for i in range(len(vs))] for w, vs in est.items()}
    flat = shrink_offsets(est)[1]
    for groups in (None, names):      # grouped, the overall offset is shrunk at least as much
        offsets, pooled, noise, spread = shrink_offsets(est, groups=groups)
        assert min(0.0, g) - 1e-12 <= pooled <= max(0.0, g) + 1e-12
        assert abs(pooled) <= abs(flat) + 1e-12
        assert noise >= NOISE_FLOOR and spread >= 0.0
        for w, vs in est.items():
            target = pooled + float(np.median(vs)) - g
            assert min(pooled, target) - 1e-12 <= offsets[w] <= max(pooled, target) + 1e-12


def test_anchors_timed_beside_a_reference_split_shape_from_drift():
    """Corrected to the reference's stored latency, the offsets are at the speed of profiling
    and ``drift`` carries today's speed: here the "stored" latency is 1 s for a program that
    runs in about a millisecond, so the machine reads as ~1000x faster than when profiled."""
    anchors = [("bert-tiny", PRESETS["bert-tiny"], W1), ("bert-tiny", PRESETS["bert-tiny"], W2)]
    ref = (PRESETS["bert-tiny"], W1)
    rec, records = recalibrate(_TenMs(), detect("cpu"), anchors, reference=ref,
                               reference_ms=1000.0, rounds=2, budget_s=0.2)
    assert rec.profiled_speed and rec.reference == f"bert-tiny@{W1}"
    assert 1e-5 < rec.drift < 1e-2
    for a, r in zip(rec.anchors, records):
        assert a["measured_ms"] == pytest.approx(r.latency_ms_median)
        assert len(r.extra["rounds_ms"]) == 2 and r.extra["reference_anchor_ms"] == 1000.0
        # corrected x drift is today's latency again (within the session's drift)
        assert 0.5 < a["measured_ms"] * rec.drift / r.extra["uncorrected_ms"] < 2.0
        wl = a["workload"]
        assert rec.factor(wl) == pytest.approx(rec.shape_factor(wl) * rec.drift)
    assert "speed when profiled" in rec.describe()
    # the anchor's own latency this session instead of a stored one: no drift to estimate
    rec2, _ = recalibrate(_TenMs(), detect("cpu"), anchors[:1], reference=ref, rounds=1,
                          budget_s=0.1)
    assert rec2.drift == 1.0 and not rec2.profiled_speed and rec2.reference
    with pytest.raises(InputError, match="not both"):
        recalibrate(_TenMs(), detect("cpu"), anchors, reference=ref, measure=lambda c, w: None)


def test_stored_with_its_session_and_applied_only_while_fresh(anchored, tmp_path):
    _, rec, records = anchored
    fp = detect("cpu")
    with Store(tmp_path / "s.db") as st:
        assert latest(st, fp.id) is None
        run_id = save(st, rec, fp, records)
        got = latest(st, fp.id)
        assert got == rec
        assert len([r for r in st.latencies(fp.id) if r.tag == "anchor"]) == 2
        assert latest(st, "another-machine") is None
        assert latest(st, fp.id, now=rec.at + 13 * 3600) is None          # 12 h by default
        assert latest(st, fp.id, max_age_h=24, now=rec.at + 13 * 3600) == rec
        assert run_id in {r["id"] for r in st.runs()}
    # a damaged record is skipped, never trusted; the good one is still found
    db = sqlite3.connect(tmp_path / "s.db")
    db.execute("INSERT INTO runs VALUES ('recalibrate-bad', 'recalibrate', ?, ?, 'done', ?, ?)",
               (fp.id, json.dumps({"offsets": "garbage"}), rec.at + 1, rec.at + 2))
    db.commit()
    db.close()
    with Store(tmp_path / "s.db") as st:
        assert latest(st, fp.id) == rec


def test_round_trip_and_bad_uses(anchored, real_model):
    pred, rec, _ = anchored
    assert Recalibration.from_dict(json.loads(json.dumps(rec.to_dict()))) == rec
    # stored before anchors could be timed beside a reference: read as timed alone
    old = {k: v for k, v in rec.to_dict().items()
           if k not in ("reference", "drift", "profiled_speed", "method", "noise", "spread")}
    assert Recalibration.from_dict(old) == dataclasses.replace(rec, method="median", noise=None,
                                                               spread=None)
    assert "anchors" in rec.describe()
    with pytest.raises(InputError, match="analytic"):
        recalibrate(Predictor("cpu", None), detect("cpu"), default_anchors([W1]))
    with pytest.raises(InputError, match="without a recalibration"):
        recalibrate(Predictor("cpu", real_model, recalibration=rec), detect("cpu"),
                    default_anchors([W1]))
    with pytest.raises(InputError, match="anchor"):
        recalibrate(pred, detect("cpu"), [])
    with pytest.raises(InputError, match="workload"):
        default_anchors([])
    # an analytic predictor ignores a recalibration (it corrects a learned model only)
    assert Predictor("cpu", None, recalibration=rec).recalibration is None
