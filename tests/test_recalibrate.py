"""Few-shot recalibration: anchors timed here correct predictions per workload; the correction
is stored with its session and applied only while it is fresh."""

import json
import math
import sqlite3

import pytest

from distill import PRESETS, Workload
from measurements import Store, TimingResult, detect
from measurements.errors import InputError
from perfmodel import Predictor
from perfmodel.measure import Measurement
from perfmodel.recalibrate import Recalibration, default_anchors, latest, recalibrate, save

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
    for a, r in zip(rec.anchors, records):
        assert a["measured_ms"] == pytest.approx(r.latency_ms_median) and a["predicted_ms"] > 0
        wl = W1 if a["workload"] == str(W1) else W2
        assert r.tag == "anchor" and r.workload == wl.to_dict()
        assert rec.offsets[a["workload"]] == pytest.approx(
            math.log(a["measured_ms"] / a["predicted_ms"]))     # one anchor: its own ratio
    assert rec.pooled == pytest.approx(sum(rec.offsets.values()) / 2)   # median of two
    fixed = Predictor("cpu", real_model, exact=True, recalibration=rec)
    for wl in (W1, W2, Workload.parse("8,128")):          # 8x128 has no anchor: pooled
        before, after = pred.predict(PRESETS["bert-tiny"], wl), fixed.predict(PRESETS["bert-tiny"], wl)
        f = math.exp(rec.offsets.get(str(wl), rec.pooled))
        assert after.latency_ms == pytest.approx(before.latency_ms * f)
        assert after.interval_ms == pytest.approx(tuple(v * f for v in before.interval_ms))
        assert after.method == "learned+recalibrated" and after.calibrated
    # the anchors themselves are now predicted as measured
    for a in rec.anchors:
        wl = W1 if a["workload"] == str(W1) else W2
        assert fixed.predict(PRESETS["bert-tiny"], wl).latency_ms == pytest.approx(a["measured_ms"])


class _TenMs:                # a learned predictor that says 10 ms for everything
    model, recalibration = object(), None

    def predict(self, cfg, wl):
        return type("P", (), {"latency_ms": 10.0})()


def test_medians_resist_one_disturbed_anchor():
    measured = iter([12.0, 12.1, 40.0])                   # the third ran beside a busy job

    def measure(cfg, wl):
        s = next(measured) / 1e3
        return Measurement(cfg, wl, 1, 1.0, 0.0, TimingResult(s, 0.0, s, s, s, s, 5, 0, True))
    rec, records = recalibrate(_TenMs(), detect("cpu"), default_anchors([W1]), measure=measure)
    assert math.exp(rec.offsets[str(W1)]) == pytest.approx(1.21)
    assert [r.latency_ms_median for r in records] == pytest.approx([12.0, 12.1, 40.0])


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
           if k not in ("reference", "drift", "profiled_speed")}
    assert Recalibration.from_dict(old) == rec
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
